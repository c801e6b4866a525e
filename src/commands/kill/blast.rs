//! What else goes down with a process that is signalled: the other
//! ports it listens on and the connections it holds. Read from each
//! process's fd tables and one dump of every socket of the namespace,
//! before anything is sent, so that the user sees it first.

use std::collections::HashMap;

use crate::commands::wait::{self, Poller};
use crate::error::Error;
use crate::holders::process::{self, HeldSockets};
use crate::query::Query;
use crate::socket::{Family, Protocol, Socket};

use super::Target;

/// The rest of what a process holds, which ends with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlastRadius {
    /// The ports it listens on or has bound besides those it is
    /// signalled for, by protocol, sorted, each once.
    pub also_listening: Vec<(Protocol, u16)>,
    /// The connections it holds, on any port: connected TCP and UDP
    /// sockets, and UDP client sockets whose port the kernel chose.
    pub connections: usize,
    /// Every socket it holds, its parent (signalled too) holds as well,
    /// as a worker shares its master's: they go down with the group.
    pub shared_with_parent: bool,
}

impl BlastRadius {
    /// Whether nothing else goes down with the process.
    pub fn is_empty(&self) -> bool {
        self.also_listening.is_empty() && self.connections == 0
    }
}

/// Fills in each target's blast radius (every protocol and family of
/// the namespace, whatever the query's filters: all of it goes down).
pub(super) fn measure(query: &Query, targets: &mut [Target]) -> Result<(), Error> {
    if targets.is_empty() {
        return Ok(());
    }
    let held: Vec<Vec<u64>> = targets
        .iter()
        .map(
            |t| match process::held_sockets(&query.proc_root, t.pid, &t.inodes) {
                HeldSockets::Read(inodes) => inodes,
                HeldSockets::Unreadable | HeldSockets::Gone => Vec::new(),
            },
        )
        .collect();
    let mut whole = query.clone();
    whole.protocols = vec![Protocol::Tcp, Protocol::Udp];
    whole.families = vec![Family::Inet, Family::Inet6];
    let sockets = wait::in_namespace(&whole, |here| Poller::new(here, &[], false)?.sockets(true))?;
    let by_inode: HashMap<u64, &Socket> = sockets
        .iter()
        .filter(|s| s.inode != 0)
        .map(|s| (s.inode, s))
        .collect();
    let held_by: HashMap<u32, &Vec<u64>> = targets.iter().map(|t| t.pid).zip(&held).collect();
    let radii: Vec<BlastRadius> = targets
        .iter()
        .zip(&held)
        .map(|(target, inodes)| {
            let parent_holds = target
                .parent
                .as_ref()
                .and_then(|(parent, _)| held_by.get(parent));
            BlastRadius {
                shared_with_parent: parent_holds.is_some_and(|theirs| {
                    !inodes.is_empty() && inodes.iter().all(|i| theirs.binary_search(i).is_ok())
                }),
                ..radius_of(inodes, &by_inode, &target.ports)
            }
        })
        .collect();
    for (target, radius) in targets.iter_mut().zip(radii) {
        target.blast = Some(radius);
    }
    Ok(())
}

/// What the sockets `inodes` are, but for those on `own_ports`.
fn radius_of(inodes: &[u64], sockets: &HashMap<u64, &Socket>, own_ports: &[u16]) -> BlastRadius {
    let mut radius = BlastRadius::default();
    for socket in inodes.iter().filter_map(|i| sockets.get(i)) {
        if socket.ends_by_itself() {
            continue;
        }
        if socket.is_listening() {
            if !own_ports.contains(&socket.local.port) {
                radius
                    .also_listening
                    .push((socket.protocol, socket.local.port));
            }
        } else {
            radius.connections += 1;
        }
    }
    radius.also_listening.sort_unstable();
    radius.also_listening.dedup();
    radius
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::State;

    #[test]
    fn other_listeners_are_named_once_and_connections_counted() {
        let listener = |port: u16, inode: u64| Socket {
            inode,
            ..Socket::example(State::Listen, &format!("0.0.0.0:{port}"), "0.0.0.0:0")
        };
        let sockets = [
            listener(7800, 1),
            listener(7801, 2),
            // The same port over IPv6: named once.
            Socket {
                inode: 3,
                ..Socket::example(State::Listen, "[::]:7801", "[::]:0")
            },
            Socket {
                inode: 4,
                ..Socket::example(State::Established, "127.0.0.1:40100", "127.0.0.1:8000")
            },
            Socket {
                inode: 5,
                protocol: Protocol::Udp,
                ..Socket::example(State::Close, "0.0.0.0:5353", "0.0.0.0:0")
            },
        ];
        let by_inode: HashMap<u64, &Socket> = sockets.iter().map(|s| (s.inode, s)).collect();
        let radius = radius_of(&[1, 2, 3, 4, 5, 99], &by_inode, &[7800]);
        assert_eq!(
            radius.also_listening,
            vec![(Protocol::Tcp, 7801), (Protocol::Udp, 5353)]
        );
        assert_eq!(radius.connections, 1);
        assert!(radius_of(&[1], &by_inode, &[7800]).is_empty());
    }
}
