//! Sockets as they are destroyed: sock_diag broadcasts each socket the
//! kernel frees to the SKNLGRP_*_DESTROY multicast groups of its network
//! namespace, and any user may listen. `lsport wait --free` sleeps on
//! these instead of dumping often. By the time a notice is sent the
//! socket's inode is 0; its cookie, addresses, ports and state remain.
//! TIME_WAIT sockets are not full sockets and send no notice.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_sys::{Socket as NetlinkSocket, protocols::NETLINK_SOCK_DIAG};

use crate::socket::{Family, Protocol, Socket};
use crate::source::netlink::{Progress, decode_replies};

/// The multicast groups (include/uapi/linux/sock_diag.h).
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET_UDP_DESTROY: u32 = 2;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
const SKNLGRP_INET6_UDP_DESTROY: u32 = 4;

/// The group that carries the notices of one protocol and family.
pub fn group(protocol: Protocol, family: Family) -> u32 {
    match (protocol, family) {
        (Protocol::Tcp, Family::Inet) => SKNLGRP_INET_TCP_DESTROY,
        (Protocol::Udp, Family::Inet) => SKNLGRP_INET_UDP_DESTROY,
        (Protocol::Tcp, Family::Inet6) => SKNLGRP_INET6_TCP_DESTROY,
        (Protocol::Udp, Family::Inet6) => SKNLGRP_INET6_UDP_DESTROY,
    }
}

/// What one wait heard.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// Nothing before the timeout.
    Nothing,
    /// These sockets were destroyed.
    Destroyed(Vec<Socket>),
    /// Notices were lost (the socket's buffer overflowed on a busy
    /// host): anything may have been destroyed.
    Lost,
}

/// A subscription to the destroy notices of the calling thread's network
/// namespace: one netlink socket per protocol, since a notice does not
/// say its protocol.
pub struct DestroyEvents {
    listeners: Vec<(Protocol, NetlinkSocket)>,
    buffer: Vec<u8>,
}

impl DestroyEvents {
    /// Subscribes to the notices of these protocols and families.
    pub fn subscribe(protocols: &[Protocol], families: &[Family]) -> io::Result<DestroyEvents> {
        let mut listeners = Vec::new();
        for &protocol in protocols {
            let mut socket = NetlinkSocket::new(NETLINK_SOCK_DIAG)?;
            socket.bind_auto()?;
            for &family in families {
                socket.add_membership(group(protocol, family))?;
            }
            socket.set_non_blocking(true)?;
            listeners.push((protocol, socket));
        }
        Ok(DestroyEvents {
            listeners,
            buffer: vec![0u8; 64 * 1024],
        })
    }

    /// Sleeps until a notice arrives or `timeout` passes, then takes
    /// every notice waiting.
    pub fn wait(&mut self, timeout: Duration) -> Heard {
        let mut polled: Vec<libc::pollfd> = self
            .listeners
            .iter()
            .map(|(_, s)| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let millis = timeout.as_millis().clamp(0, i32::MAX as u128) as i32;
        // SAFETY: `polled` is a valid array of pollfd of the length given.
        let ready =
            unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, millis) };
        if ready <= 0 {
            return Heard::Nothing;
        }
        self.drain()
    }

    /// Reads every notice waiting, without blocking.
    fn drain(&mut self) -> Heard {
        let mut destroyed = Vec::new();
        for (protocol, socket) in &self.listeners {
            loop {
                let mut window = &mut self.buffer[..];
                match socket.recv(&mut window, 0) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut skipped = 0;
                        let received = &self.buffer[..n.min(self.buffer.len())];
                        // A notice is a lone message, not part of a dump:
                        // it never ends with NLMSG_DONE.
                        if let Err(_) | Ok(Progress::Done) =
                            decode_replies(received, *protocol, &mut destroyed, &mut skipped)
                        {
                            return Heard::Lost;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // ENOBUFS: the kernel dropped notices.
                    Err(_) => return Heard::Lost,
                }
            }
        }
        if destroyed.is_empty() {
            Heard::Nothing
        } else {
            Heard::Destroyed(destroyed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_and_family_has_its_group() {
        let mut groups: Vec<u32> = [Protocol::Tcp, Protocol::Udp]
            .iter()
            .flat_map(|&p| [Family::Inet, Family::Inet6].map(|f| group(p, f)))
            .collect();
        groups.sort_unstable();
        assert_eq!(groups, vec![1, 2, 3, 4]);
    }
}
