//! The likely holder of an accepted connection whose own holder was not
//! seen (most of them: a connection that lives shorter than one poll is
//! seen only at close, when the kernel no longer says which file held
//! it). A server holds the connections it accepts, so when one process
//! alone holds the listener a connection was accepted on, that process
//! is named, as likely, not as seen.
//!
//! Not every server keeps what it accepts: an inetd-style one (systemd's
//! `Accept=yes`) hands each connection to a new process. So a listener
//! whose connections were once seen held by another process is not used
//! to infer again. Where several processes hold the listener (a
//! master and its workers), none is named.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::socket::{Family, Protocol, Socket, State};

use super::holders::{Holder, HolderFinder};

/// The listeners of the last dump, and what was learnt of the
/// processes holding what they accepted.
#[derive(Default)]
pub struct Listeners {
    /// Listening TCP sockets by port: family, address, inode.
    by_port: HashMap<u16, Vec<(Family, IpAddr, u64)>>,
    /// Ports whose accepted connections were seen held by a process
    /// other than their listener's holder.
    disputed: HashSet<u16>,
}

impl Listeners {
    /// Takes the listeners of a new dump.
    pub fn update(&mut self, sockets: &[Socket]) {
        self.by_port.clear();
        for socket in sockets {
            if socket.protocol == Protocol::Tcp && socket.state == State::Listen {
                self.by_port.entry(socket.local.port).or_default().push((
                    socket.family,
                    socket.local.readable_address(),
                    socket.inode,
                ));
            }
        }
    }

    /// The one process that holds the listeners `socket` may have been
    /// accepted on, with its fd for the first of them; None when there
    /// are none, several, or they are not known.
    fn sole_holder(&self, socket: &Socket, finder: &HolderFinder) -> Option<Holder> {
        let address = socket.local.readable_address();
        let mut sole: Option<Holder> = None;
        for &(family, listening, inode) in self.by_port.get(&socket.local.port)? {
            if family != socket.family || !(listening.is_unspecified() || listening == address) {
                continue;
            }
            let holders = finder.get(inode);
            if holders.found.is_empty() {
                // A listener whose holder is unknown may be anyone's.
                return None;
            }
            for holder in holders.found {
                match &sole {
                    None => sole = Some(holder),
                    Some(known) if known.pid == holder.pid => {}
                    Some(_) => return None,
                }
            }
        }
        sole
    }

    /// For an accepted connection: the likely holder when none was seen
    /// (and none is hidden); when one was seen, learns whether the
    /// listener's holder keeps what it accepts. Returns the likely one.
    pub fn attribute(
        &mut self,
        socket: &Socket,
        seen: &[Holder],
        hidden: bool,
        finder: &HolderFinder,
    ) -> Option<Holder> {
        let port = socket.local.port;
        if !seen.is_empty() {
            if let Some(listening) = self.sole_holder(socket, finder)
                && !seen.iter().any(|h| h.pid == listening.pid)
            {
                self.disputed.insert(port);
            }
            return None;
        }
        if hidden || self.disputed.contains(&port) {
            return None;
        }
        self.sole_holder(socket, finder)
    }
}
