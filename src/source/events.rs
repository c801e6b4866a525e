//! sock_diag over time: the kernel's notifications of destroyed sockets,
//! and a dump socket that stays open between polls.
//!
//! When a socket is freed, sock_diag sends an inet_diag_msg for it to
//! the multicast groups `SKNLGRP_INET{,6}_{TCP,UDP}_DESTROY`
//! (include/uapi/linux/sock_diag.h), to any listener in the socket's
//! network namespace, whatever its user. The message keeps the family,
//! the ports, the addresses, the state (CLOSE by then) and the cookie;
//! the uid and the inode are zero, and the protocol comes as the
//! INET_DIAG_PROTOCOL attribute. A listener that reads too slowly loses
//! messages: the next read fails with ENOBUFS once, and the socket's
//! drop counter (SO_MEMINFO) says how many were lost.
//!
//! Decoding is a pure function over bytes; `DestroyListener` and
//! `Dumper` do the I/O.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::NlasIterator;
use netlink_packet_sock_diag::constants::{
    INET_DIAG_PROTOCOL, IPPROTO_TCP, IPPROTO_UDP, SOCK_DIAG_BY_FAMILY,
};
use netlink_sys::{Socket as NetlinkSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use crate::socket::{Family, Protocol, Socket, State};
use crate::source::netlink::{self, DumpError, DumpRequest, Progress};
use crate::source::notice_filter::{self, NoticeFilter};

// enum sknetlink_groups in include/uapi/linux/sock_diag.h.
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET_UDP_DESTROY: u32 = 2;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
const SKNLGRP_INET6_UDP_DESTROY: u32 = 4;

const NLMSG_HEADER_LEN: usize = 16;
/// sizeof(struct inet_diag_msg).
const INET_DIAG_MSG_LEN: usize = 72;
/// enum { SK_MEMINFO_RMEM_ALLOC, ..., SK_MEMINFO_DROPS (8), SK_MEMINFO_VARS }
/// in include/uapi/linux/sock_diag.h: the drop counter's index in SO_MEMINFO.
const SK_MEMINFO_DROPS: usize = 8;
const SK_MEMINFO_VARS: usize = 9;

/// The multicast group that carries the destroyed sockets of one
/// protocol and family.
/// SCTP has none.
pub fn destroy_group(protocol: Protocol, family: Family) -> Option<u32> {
    Some(match (family, protocol) {
        (Family::Inet, Protocol::Tcp) => SKNLGRP_INET_TCP_DESTROY,
        (Family::Inet, Protocol::Udp) => SKNLGRP_INET_UDP_DESTROY,
        (Family::Inet6, Protocol::Tcp) => SKNLGRP_INET6_TCP_DESTROY,
        (Family::Inet6, Protocol::Udp) => SKNLGRP_INET6_UDP_DESTROY,
        (_, Protocol::Sctp) => return None,
    })
}

/// One destroy notification's payload (the inet_diag_msg and its
/// attributes) as a socket. The state is the kernel's at destruction,
/// as it gave it (a TCP socket is CLOSE by then, which a dump would
/// call BOUND_INACTIVE); uid and inode are zero, as the kernel leaves
/// them. None for anything but TCP and UDP.
pub fn decode_destroyed(payload: &[u8]) -> Option<Socket> {
    let mut protocol = None;
    for attribute in NlasIterator::new(payload.get(INET_DIAG_MSG_LEN..)?) {
        let Ok(attribute) = attribute else { break };
        if attribute.kind() == INET_DIAG_PROTOCOL {
            protocol = match attribute.value().first() {
                Some(&IPPROTO_TCP) => Some(Protocol::Tcp),
                Some(&IPPROTO_UDP) => Some(Protocol::Udp),
                _ => return None,
            };
        }
    }
    let mut socket = netlink::decode_socket(payload, protocol?)?;
    socket.state = State::from_kernel(*payload.get(1)?);
    Some(socket)
}

/// Decodes one buffer of notifications, appending the destroyed
/// sockets to `out`; returns how many messages could not be decoded.
pub fn decode_notifications(mut buffer: &[u8], out: &mut Vec<Socket>) -> usize {
    let mut skipped = 0;
    while buffer.len() >= NLMSG_HEADER_LEN {
        let length = u32::from_ne_bytes(buffer[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buffer[4..6].try_into().unwrap());
        if length < NLMSG_HEADER_LEN || length > buffer.len() {
            return skipped + 1;
        }
        if kind == SOCK_DIAG_BY_FAMILY {
            match decode_destroyed(&buffer[NLMSG_HEADER_LEN..length]) {
                Some(socket) => out.push(socket),
                None => skipped += 1,
            }
        }
        buffer = buffer.get((length + 3) & !3..).unwrap_or(&[]);
    }
    skipped
}

/// What one read of the notifications brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Messages that could not be decoded.
    pub skipped: usize,
    /// The kernel said (ENOBUFS) that notifications were dropped since
    /// the last read; `DestroyListener::drops` says how many.
    pub overflowed: bool,
}

/// A netlink socket subscribed to the destroy notifications of the
/// network namespace it was opened in. Reads never block.
pub struct DestroyListener {
    socket: NetlinkSocket,
    buffer: Vec<u8>,
}

impl DestroyListener {
    /// Subscribes to the groups of the protocols and families given.
    /// `receive_buffer` sets the socket's receive buffer in bytes (the
    /// kernel doubles it); by default it is made as large as allowed,
    /// for bursts.
    pub fn open(
        wanted: &[(Protocol, Family)],
        receive_buffer: Option<usize>,
    ) -> Result<DestroyListener, DumpError> {
        let io_error = |what: &str, e: io::Error| DumpError {
            errno: e.raw_os_error(),
            message: format!("sock_diag destroy notifications: {what}: {e}"),
        };
        let mut socket =
            NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(|e| io_error("socket", e))?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| io_error("bind", e))?;
        for &(protocol, family) in wanted {
            let Some(group) = destroy_group(protocol, family) else {
                continue;
            };
            socket
                .add_membership(group)
                .map_err(|e| io_error("joining the multicast group", e))?;
        }
        socket
            .set_non_blocking(true)
            .map_err(|e| io_error("non-blocking", e))?;
        match receive_buffer {
            Some(bytes) => set_int_option(socket.as_raw_fd(), libc::SO_RCVBUF, bytes)
                .map_err(|e| io_error("receive buffer", e))?,
            None => {
                // Root may go past net.core.rmem_max; others get its value.
                const WANTED: usize = 8 << 20;
                if set_int_option(socket.as_raw_fd(), libc::SO_RCVBUFFORCE, WANTED).is_err() {
                    let _ = set_int_option(socket.as_raw_fd(), libc::SO_RCVBUF, WANTED);
                }
            }
        }
        Ok(DestroyListener {
            socket,
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Asks the kernel to pass only the notifications `filter` keeps
    /// (see [`notice_filter`]): the others then cost nothing and are
    /// not counted by [`DestroyListener::drops`]. Returns whether the
    /// filter is exact (false: some ports between the ones asked for
    /// pass too), or None when every notification passes anyway.
    pub fn restrict(&mut self, filter: &NoticeFilter) -> Result<Option<bool>, DumpError> {
        let Some(program) = notice_filter::program(filter) else {
            return Ok(None);
        };
        let fprog = libc::sock_fprog {
            len: program.instructions.len() as libc::c_ushort,
            filter: program.instructions.as_ptr().cast_mut(),
        };
        // SAFETY: the kernel copies the program during the call; `fprog`
        // and the instructions it points to outlive it.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(DumpError {
                errno: e.raw_os_error(),
                message: format!("sock_diag destroy notifications: attaching the port filter: {e}"),
            });
        }
        Ok(Some(program.exact))
    }

    /// The descriptor to poll(2) for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Reads every notification queued, appending the destroyed sockets
    /// to `out`.
    pub fn drain(&mut self, out: &mut Vec<Socket>) -> Result<Drained, DumpError> {
        let mut drained = Drained::default();
        loop {
            let mut window = &mut self.buffer[..];
            match self.socket.recv(&mut window, 0) {
                Ok(0) => return Ok(drained),
                Ok(n) => {
                    let n = n.min(self.buffer.len());
                    drained.skipped += decode_notifications(&self.buffer[..n], out);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => drained.overflowed = true,
                Err(e) => {
                    return Err(DumpError {
                        errno: e.raw_os_error(),
                        message: format!("sock_diag destroy notifications: receive: {e}"),
                    });
                }
            }
        }
    }

    /// How many notifications the kernel dropped for this socket so far
    /// (its sk_drops, through SO_MEMINFO); None where it does not say.
    pub fn drops(&self) -> Option<u64> {
        let mut info = [0u32; SK_MEMINFO_VARS];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`,
        // which stays alive for the call.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let wanted = (SK_MEMINFO_DROPS + 1) * 4;
        (rc == 0 && len as usize >= wanted).then(|| u64::from(info[SK_MEMINFO_DROPS]))
    }
}

fn set_int_option(fd: RawFd, option: libc::c_int, value: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: a plain setsockopt with an int that lives for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A sock_diag socket for repeated dumps, opened once in the network
/// namespace it will dump (a netlink socket keeps the namespace it was
/// created in, whichever thread uses it later).
pub struct Dumper {
    socket: NetlinkSocket,
    buffer: Vec<u8>,
    sequence: u32,
}

impl Dumper {
    /// A socket for dumps of the calling thread's network namespace.
    pub fn open() -> Result<Dumper, DumpError> {
        let io_error = |what: &str, e: io::Error| DumpError {
            errno: e.raw_os_error(),
            message: format!("sock_diag {what}: {e}"),
        };
        let mut socket =
            NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(|e| io_error("socket", e))?;
        socket.bind_auto().map_err(|e| io_error("bind", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_error("connect", e))?;
        Ok(Dumper {
            socket,
            buffer: vec![0; 64 * 1024],
            sequence: 0,
        })
    }

    /// One dump: of `request`'s family, or of TCP in both families at
    /// once (`both_tcp_families`), appending to `out`. Returns the
    /// replies that could not be decoded. After an error the caller
    /// opens a new `Dumper`: the rest of the failed dump would still
    /// arrive on this one.
    pub fn dump(
        &mut self,
        request: &DumpRequest,
        both_tcp_families: bool,
        out: &mut Vec<Socket>,
    ) -> Result<usize, DumpError> {
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = if both_tcp_families {
            netlink::build_both_families_request(request, self.sequence)
        } else {
            netlink::build_request(request, self.sequence)
        };
        self.socket.send(&bytes, 0).map_err(|e| DumpError {
            errno: e.raw_os_error(),
            message: format!("sock_diag send: {e}"),
        })?;
        let mut skipped = 0;
        loop {
            let mut window = &mut self.buffer[..];
            let received = match self.socket.recv(&mut window, 0) {
                Ok(n) => n.min(self.buffer.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DumpError {
                        errno: e.raw_os_error(),
                        message: format!("sock_diag receive: {e}"),
                    });
                }
            };
            if received == 0 {
                return Err(DumpError {
                    errno: None,
                    message: "sock_diag dump ended early".into(),
                });
            }
            let progress = netlink::decode_replies(
                &self.buffer[..received],
                request.protocol,
                out,
                &mut skipped,
            )?;
            if progress == Progress::Done {
                return Ok(skipped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destroy notification as the kernel sends it: nlmsghdr, then an
    /// inet_diag_msg with uid and inode zero, then INET_DIAG_PROTOCOL.
    fn notification(protocol: u8, state: u8, cookie: u64) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&[libc::AF_INET as u8, state, 0, 0]);
        msg.extend_from_slice(&7000u16.to_be_bytes()); // source port
        msg.extend_from_slice(&51070u16.to_be_bytes()); // destination port
        msg.extend_from_slice(&[127, 0, 0, 1]);
        msg.extend_from_slice(&[0u8; 12]);
        msg.extend_from_slice(&[127, 0, 0, 2]);
        msg.extend_from_slice(&[0u8; 12]);
        msg.extend_from_slice(&0u32.to_ne_bytes()); // interface
        msg.extend_from_slice(&(cookie as u32).to_ne_bytes());
        msg.extend_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 20]); // expires, rqueue, wqueue, uid, inode
        msg.extend_from_slice(&5u16.to_ne_bytes());
        msg.extend_from_slice(&INET_DIAG_PROTOCOL.to_ne_bytes());
        msg.extend_from_slice(&[protocol, 0, 0, 0]);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((16 + msg.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        bytes.extend_from_slice(&[0u8; 10]);
        bytes.extend_from_slice(&msg);
        bytes
    }

    #[test]
    fn a_destroyed_tcp_socket_keeps_its_ports_cookie_and_close_state() {
        let mut stream = notification(IPPROTO_TCP, 7, 0x2_0000_0005);
        stream.extend(notification(IPPROTO_UDP, 7, 9));
        let mut out = Vec::new();
        assert_eq!(decode_notifications(&stream, &mut out), 0);
        assert_eq!(out.len(), 2);
        let tcp = &out[0];
        assert_eq!(tcp.protocol, Protocol::Tcp);
        assert_eq!(tcp.state, State::Close, "not renamed BOUND_INACTIVE");
        assert_eq!(tcp.cookie, 0x2_0000_0005);
        assert_eq!(tcp.local.to_string(), "127.0.0.1:7000");
        assert_eq!(tcp.remote.to_string(), "127.0.0.2:51070");
        assert_eq!((tcp.uid, tcp.inode), (0, 0));
        assert_eq!(out[1].protocol, Protocol::Udp);
    }

    #[test]
    fn other_protocols_and_broken_messages_are_skipped() {
        let mut stream = notification(132, 7, 1); // SCTP
        stream.extend(notification(IPPROTO_TCP, 7, 2));
        stream.extend_from_slice(&[0xff; 20]);
        let mut out = Vec::new();
        assert_eq!(decode_notifications(&stream, &mut out), 2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cookie, 2);
    }

    #[test]
    fn each_protocol_and_family_has_its_group() {
        let mut groups: Vec<u32> = [Protocol::Tcp, Protocol::Udp]
            .into_iter()
            .flat_map(|p| [Family::Inet, Family::Inet6].map(|f| destroy_group(p, f)))
            .flatten()
            .collect();
        groups.sort_unstable();
        assert_eq!(groups, vec![1, 2, 3, 4]);
    }
}

/// What one [`DestroyEvents::wait`] heard.
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

/// A [`DestroyListener`] to sleep on: `lsport wait --free` wakes when a
/// socket is destroyed instead of dumping often.
pub struct DestroyEvents {
    listener: DestroyListener,
}

impl DestroyEvents {
    /// Subscribes to the notices of these protocols and families, in the
    /// calling thread's network namespace.
    pub fn subscribe(protocols: &[Protocol], families: &[Family]) -> io::Result<DestroyEvents> {
        let wanted: Vec<(Protocol, Family)> = protocols
            .iter()
            .flat_map(|&p| families.iter().map(move |&f| (p, f)))
            .collect();
        let listener = DestroyListener::open(&wanted, None)
            .map_err(|e| io::Error::from_raw_os_error(e.errno.unwrap_or(libc::EIO)))?;
        Ok(DestroyEvents { listener })
    }

    /// Sleeps until a notice arrives or `timeout` passes, then takes
    /// every notice waiting.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Heard {
        let mut polled = [libc::pollfd {
            fd: self.listener.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `polled` is a valid array of one pollfd.
        let ready = unsafe { libc::poll(polled.as_mut_ptr(), 1, millis) };
        if ready <= 0 {
            return Heard::Nothing;
        }
        let mut destroyed = Vec::new();
        match self.listener.drain(&mut destroyed) {
            Ok(drained) if drained.overflowed => Heard::Lost,
            Ok(_) if destroyed.is_empty() => Heard::Nothing,
            Ok(_) => Heard::Destroyed(destroyed),
            Err(_) => Heard::Lost,
        }
    }
}
