//! Unix sockets from sock_diag (unix_diag): one dump of the network
//! namespace's table, or one socket looked up by inode.
//!
//! unix_diag filters by state only: no name or file filter runs in the
//! kernel, so a dump sends every socket in the states asked for and the
//! caller's test runs here, on each buffer as it arrives. Building the
//! requests and decoding the replies are pure functions over bytes; only
//! `UnixSession` does I/O.
//!
//! The replies are decoded here, not by the crate's unix types: those
//! keep the bound file's device and inode private, know no uid
//! attribute, and reject a whole socket whose path lacks its NUL.

use std::io;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NlasIterator};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    SOCK_DIAG_BY_FAMILY, UDIAG_SHOW_ICONS, UDIAG_SHOW_NAME, UDIAG_SHOW_PEER, UDIAG_SHOW_RQLEN,
    UDIAG_SHOW_VFS, UNIX_DIAG_ICONS, UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN,
    UNIX_DIAG_SHUTDOWN, UNIX_DIAG_VFS,
};
use netlink_packet_sock_diag::unix::{ShowFlags, StateFlags, UnixRequest};
use netlink_sys::{Socket as NetlinkSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use crate::source::netlink::{DumpError, Progress, walk_replies};
use crate::unix::socket::{
    BoundFile, DeviceNumber, UnixName, UnixPeer, UnixQueue, UnixSocket, UnixState, UnixType,
};

/// sizeof(struct unix_diag_msg): family, type, state, pad, inode,
/// cookie.
const UNIX_DIAG_MSG_LEN: usize = 16;
/// AF_UNIX.
const AF_UNIX: u8 = 1;
/// Asks for the creator's uid (Linux 5.3); the crate does not name it.
const UDIAG_SHOW_UID: u32 = 0x40;
/// The uid attribute that answers it.
const UNIX_DIAG_UID: u16 = 7;
/// What every request asks the kernel to show: name, bound file, peer,
/// pending connections, queue lengths and uid. The shutdown state comes
/// unasked; the memory figures are not wanted.
const SHOW: u32 = UDIAG_SHOW_NAME
    | UDIAG_SHOW_VFS
    | UDIAG_SHOW_PEER
    | UDIAG_SHOW_ICONS
    | UDIAG_SHOW_RQLEN
    | UDIAG_SHOW_UID;
/// The cookie that tells the kernel not to check one (INET_DIAG_NOCOOKIE
/// in both halves).
const NO_COOKIE: u64 = u64::MAX;
/// The reply buffer: the kernel sends dumps in chunks of at most 32 KiB.
const RECEIVE_BUFFER_LEN: usize = 64 * 1024;

/// Which states a dump asks for: bit N keeps sockets in kernel state N.
/// Every state: listeners, connected and unconnected sockets.
pub const ALL_STATES: u32 = u32::MAX;
/// Listeners only (TCP_LISTEN): streams and seqpackets that listen().
/// Bound datagram sockets are in other states; ask for [`ALL_STATES`]
/// and keep [`UnixSocket::takes_by_name`] to have them too.
pub const LISTENING: u32 = 1 << 10;

/// The bytes of a dump request for the sockets in `states`.
pub fn build_dump_request(states: u32, sequence: u32) -> Vec<u8> {
    build(NLM_F_REQUEST | NLM_F_DUMP, states, 0, NO_COOKIE, sequence)
}

/// The bytes of a request for the one socket with `inode` (and, when
/// given, `cookie`: a socket that closed and whose inode number was
/// reused then gives ESTALE rather than the newcomer). None for an
/// inode of 0 or past 32 bits, which the request cannot carry and no
/// socket has.
pub fn build_lookup_request(inode: u64, cookie: Option<u64>, sequence: u32) -> Option<Vec<u8>> {
    let inode = u32::try_from(inode).ok().filter(|inode| *inode != 0)?;
    Some(build(
        NLM_F_REQUEST,
        ALL_STATES,
        inode,
        cookie.unwrap_or(NO_COOKIE),
        sequence,
    ))
}

fn build(flags: u16, states: u32, inode: u32, cookie: u64, sequence: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    // udiag_cookie is two u32s, the low half first, each in host order.
    let mut cookie_bytes = [0u8; 8];
    cookie_bytes[..4].copy_from_slice(&(cookie as u32).to_ne_bytes());
    cookie_bytes[4..].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::UnixRequest(UnixRequest {
            // The crate's flags know two states and no uid bit: the
            // bits are kept as given.
            state_flags: StateFlags::from_bits_retain(states),
            inode,
            show_flags: ShowFlags::from_bits_retain(SHOW),
            cookie: cookie_bytes,
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// Decodes one buffer of replies, appending to `out` the sockets `keep`
/// accepts. A message that cannot be decoded is skipped by its header
/// length and counted in `skipped`; a failed request (NLMSG_ERROR or
/// NLMSG_DONE with a negative code) is an error, never an empty answer.
/// A lookup's one reply comes without NLMSG_DONE: the caller ends there.
pub fn decode_replies(
    buffer: &[u8],
    keep: &mut dyn FnMut(&UnixSocket) -> bool,
    out: &mut Vec<UnixSocket>,
    skipped: &mut usize,
) -> Result<Progress, DumpError> {
    walk_replies(buffer, "sock_diag (unix)", skipped, &mut |kind, payload| {
        if kind != SOCK_DIAG_BY_FAMILY {
            return false;
        }
        match decode_socket(payload) {
            Some(socket) => {
                if keep(&socket) {
                    out.push(socket);
                }
                true
            }
            None => false,
        }
    })
}

fn io_error(what: &str, err: io::Error) -> DumpError {
    DumpError {
        errno: err.raw_os_error(),
        message: format!("sock_diag (unix) {what}: {err}"),
    }
}

/// One unix_diag_msg and its attributes. None when the message is too
/// short or not AF_UNIX; an attribute too short for its kind is left
/// out, not trusted.
pub fn decode_socket(payload: &[u8]) -> Option<UnixSocket> {
    let header = payload.get(..UNIX_DIAG_MSG_LEN)?;
    if header[0] != AF_UNIX {
        return None;
    }
    let u32_at = |bytes: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let inode = u32_at(header, 4)?;
    let cookie = u64::from(u32_at(header, 8)?) | u64::from(u32_at(header, 12)?) << 32;
    let state = UnixState::from_kernel(header[2]);
    let mut socket = UnixSocket::new(
        UnixType::from_kernel(header[1]),
        state,
        u64::from(inode),
        UnixName::Unnamed,
    );
    socket.cookie = Some(cookie);
    for attribute in NlasIterator::new(&payload[UNIX_DIAG_MSG_LEN..]) {
        let Ok(attribute) = attribute else { break };
        let value = attribute.value();
        match attribute.kind() {
            UNIX_DIAG_NAME => socket.name = UnixName::from_sun_path(value),
            UNIX_DIAG_VFS => {
                // struct unix_diag_vfs: inode, then device (the kernel's
                // encoding, major << 20 | minor).
                if let (Some(inode), Some(device)) = (u32_at(value, 0), u32_at(value, 4)) {
                    socket.bound_file = Some(BoundFile {
                        device: DeviceNumber::from_kernel(device),
                        inode,
                    });
                }
            }
            UNIX_DIAG_PEER => {
                socket.peer = u32_at(value, 0).map(|peer| match peer {
                    // The peer is the server end of a connection not yet
                    // accepted, which has no inode.
                    0 => UnixPeer::AwaitingAccept,
                    inode => UnixPeer::Socket(u64::from(inode)),
                });
            }
            UNIX_DIAG_ICONS => {
                socket.pending_connections = Some(
                    value
                        .chunks_exact(4)
                        .map(|b| u64::from(u32::from_ne_bytes(b.try_into().unwrap())))
                        .collect(),
                );
            }
            UNIX_DIAG_RQLEN => {
                if let (Some(first), Some(second)) = (u32_at(value, 0), u32_at(value, 4)) {
                    socket.queue = Some(if state == UnixState::Listen {
                        UnixQueue::Listener {
                            pending: first,
                            backlog: second,
                        }
                    } else {
                        UnixQueue::Data {
                            receive: first,
                            send: second,
                        }
                    });
                }
            }
            UNIX_DIAG_SHUTDOWN => socket.shutdown = value.first().copied(),
            UNIX_DIAG_UID => socket.uid = u32_at(value, 0),
            _ => {}
        }
    }
    Some(socket)
}

/// One netlink socket for the Unix dumps and lookups of a network
/// namespace (the one of the thread that first uses it). A request that
/// fails leaves the socket to be replaced: what the kernel still had to
/// say must not reach the next.
pub struct UnixSession {
    socket: Option<NetlinkSocket>,
    buffer: Vec<u8>,
    sequence: u32,
}

impl Default for UnixSession {
    fn default() -> UnixSession {
        UnixSession {
            socket: None,
            buffer: vec![0u8; RECEIVE_BUFFER_LEN],
            sequence: 0,
        }
    }
}

impl UnixSession {
    /// Dumps the sockets in `states` ([`ALL_STATES`], [`LISTENING`], or
    /// any mask of kernel states), appending to `out` those `keep`
    /// accepts. Returns how many messages could not be decoded.
    pub fn dump(
        &mut self,
        states: u32,
        keep: &mut dyn FnMut(&UnixSocket) -> bool,
        out: &mut Vec<UnixSocket>,
    ) -> Result<usize, DumpError> {
        self.sequence = self.sequence.wrapping_add(1);
        let request = build_dump_request(states, self.sequence);
        let before = out.len();
        let result = self.exchange(&request, keep, out, false);
        if result.is_err() {
            out.truncate(before);
            self.socket = None;
        }
        result
    }

    /// The one socket with `inode` (and `cookie`, when given), or None
    /// when the namespace has no such socket (ENOENT), or has one with
    /// that inode and another cookie (ESTALE). Not-yet-accepted ends have
    /// no inode and cannot be looked up.
    pub fn lookup(
        &mut self,
        inode: u64,
        cookie: Option<u64>,
    ) -> Result<Option<UnixSocket>, DumpError> {
        self.sequence = self.sequence.wrapping_add(1);
        let Some(request) = build_lookup_request(inode, cookie, self.sequence) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(1);
        match self.exchange(&request, &mut |_| true, &mut out, true) {
            Ok(_) => Ok(out.pop()),
            Err(err) if matches!(err.errno, Some(libc::ENOENT | libc::ESTALE)) => Ok(None),
            Err(err) => {
                self.socket = None;
                Err(err)
            }
        }
    }

    fn exchange(
        &mut self,
        request: &[u8],
        keep: &mut dyn FnMut(&UnixSocket) -> bool,
        out: &mut Vec<UnixSocket>,
        single: bool,
    ) -> Result<usize, DumpError> {
        let socket = match &mut self.socket {
            Some(socket) => socket,
            empty => empty.insert(open_socket()?),
        };
        socket.send(request, 0).map_err(|e| io_error("send", e))?;
        let mut skipped = 0;
        loop {
            let mut window = &mut self.buffer[..];
            let received = match socket.recv(&mut window, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("receive", e)),
            };
            let received = received.min(self.buffer.len());
            if received == 0 {
                return Err(DumpError {
                    errno: None,
                    message: "sock_diag (unix) answer ended early".into(),
                });
            }
            let progress = decode_replies(&self.buffer[..received], keep, out, &mut skipped)?;
            // A lookup is answered by one message, or one error.
            if single || progress == Progress::Done {
                return Ok(skipped);
            }
        }
    }
}

fn open_socket() -> Result<NetlinkSocket, DumpError> {
    let mut socket = NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(|e| io_error("socket", e))?;
    // An error then echoes only the request's header.
    let _ = socket.set_cap_ack(true);
    socket.bind_auto().map_err(|e| io_error("bind", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| io_error("connect", e))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;

    /// An nlmsghdr of `kind` around `payload`, padded to 4 bytes.
    fn frame(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&[0u8; 10]); // flags, sequence, port id
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    /// An attribute: length (header included), kind, value, padding.
    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(value);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    fn words(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    /// The reply for a stream listener on "/tmp/uexp/a b.sock", laid out
    /// as a 6.18 kernel sent it (inode 17860, file inode 10018919 on
    /// /dev/vda, 254:0; two clients waiting, 17862 and 17863; backlog 7).
    fn listener_reply() -> Vec<u8> {
        let mut msg = vec![AF_UNIX, 1, 10, 0]; // family, SOCK_STREAM, TCP_LISTEN, pad
        msg.extend(words(&[17860])); // udiag_ino
        msg.extend(words(&[0x89ab_cdef, 0x12])); // udiag_cookie: low, high
        msg.extend(attribute(UNIX_DIAG_NAME, b"/tmp/uexp/a b.sock\0"));
        msg.extend(attribute(UNIX_DIAG_VFS, &words(&[10018919, 254 << 20])));
        msg.extend(attribute(UNIX_DIAG_ICONS, &words(&[17862, 17863])));
        msg.extend(attribute(UNIX_DIAG_RQLEN, &words(&[2, 7])));
        msg.extend(attribute(UNIX_DIAG_SHUTDOWN, &[0]));
        msg.extend(attribute(UNIX_DIAG_UID, &words(&[0])));
        frame(SOCK_DIAG_BY_FAMILY, &msg)
    }

    /// A client waiting in that listener's queue: no name, peer 0.
    fn waiting_client_reply() -> Vec<u8> {
        let mut msg = vec![AF_UNIX, 1, 1, 0]; // SOCK_STREAM, TCP_ESTABLISHED
        msg.extend(words(&[17862, 1, 0]));
        msg.extend(attribute(UNIX_DIAG_PEER, &words(&[0])));
        msg.extend(attribute(UNIX_DIAG_RQLEN, &words(&[0, 0])));
        msg.extend(attribute(UNIX_DIAG_SHUTDOWN, &[0]));
        msg.extend(attribute(UNIX_DIAG_UID, &words(&[1000])));
        frame(SOCK_DIAG_BY_FAMILY, &msg)
    }

    /// A datagram socket bound to the abstract name "abs\0x", written to
    /// by one sender: 300 bytes wait in its queue.
    fn abstract_dgram_reply() -> Vec<u8> {
        let mut msg = vec![AF_UNIX, 2, 7, 0]; // SOCK_DGRAM, TCP_CLOSE
        msg.extend(words(&[17865, 3, 0]));
        msg.extend(attribute(UNIX_DIAG_NAME, b"\0abs\0x"));
        msg.extend(attribute(UNIX_DIAG_RQLEN, &words(&[300, 0])));
        msg.extend(attribute(UNIX_DIAG_SHUTDOWN, &[2]));
        frame(SOCK_DIAG_BY_FAMILY, &msg)
    }

    fn decode_all(stream: &[u8]) -> (Result<Progress, DumpError>, Vec<UnixSocket>, usize) {
        let (mut out, mut skipped) = (Vec::new(), 0);
        let result = decode_replies(stream, &mut |_| true, &mut out, &mut skipped);
        (result, out, skipped)
    }

    #[test]
    fn the_dump_request_asks_every_attribute_and_the_states() {
        let bytes = build_dump_request(LISTENING, 9);
        let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        // nlmsghdr (16) + unix_diag_req (24).
        assert_eq!(bytes.len(), 40);
        assert_eq!(u32_at(0), 40);
        assert_eq!(
            u16::from_ne_bytes(bytes[4..6].try_into().unwrap()),
            SOCK_DIAG_BY_FAMILY
        );
        assert_eq!(
            u16::from_ne_bytes(bytes[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_DUMP
        );
        assert_eq!(u32_at(8), 9, "sequence");
        assert_eq!(&bytes[16..20], &[AF_UNIX, 0, 0, 0], "family, protocol, pad");
        assert_eq!(u32_at(20), 1 << 10, "udiag_states");
        assert_eq!(u32_at(24), 0, "udiag_ino");
        assert_eq!(
            u32_at(28),
            0x5f,
            "udiag_show: name, vfs, peer, icons, rqlen, uid"
        );
        assert_eq!((u32_at(32), u32_at(36)), (u32::MAX, u32::MAX), "no cookie");
    }

    #[test]
    fn the_lookup_request_names_the_inode_and_cookie_without_dump() {
        let bytes = build_lookup_request(17860, Some(0x12_89ab_cdef), 3).unwrap();
        let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(
            u16::from_ne_bytes(bytes[6..8].try_into().unwrap()),
            NLM_F_REQUEST
        );
        assert_eq!(u32_at(24), 17860);
        assert_eq!((u32_at(32), u32_at(36)), (0x89ab_cdef, 0x12));
        let unchecked = build_lookup_request(17860, None, 3).unwrap();
        assert_eq!(&unchecked[32..40], &[0xff; 8]);
        // Inodes the request cannot carry, or no socket has.
        assert_eq!(build_lookup_request(1 << 32, None, 1), None);
        assert_eq!(build_lookup_request(0, None, 1), None);
    }

    #[test]
    fn decodes_a_listener_with_its_file_queue_and_waiting_clients() {
        let mut stream = listener_reply();
        stream.extend(waiting_client_reply());
        stream.extend(abstract_dgram_reply());
        stream.extend(frame(NLMSG_DONE, &0i32.to_ne_bytes()));
        let (result, out, skipped) = decode_all(&stream);
        assert_eq!(result.unwrap(), Progress::Done);
        assert_eq!((out.len(), skipped), (3, 0));

        let listener = &out[0];
        assert_eq!(listener.socket_type, UnixType::Stream);
        assert_eq!(listener.state, UnixState::Listen);
        assert_eq!(listener.inode, 17860);
        assert_eq!(listener.cookie, Some(0x12_89ab_cdef));
        assert_eq!(listener.name, UnixName::Path("/tmp/uexp/a b.sock".into()));
        let file = listener.bound_file.unwrap();
        assert_eq!(
            file.device,
            DeviceNumber {
                major: 254,
                minor: 0
            }
        );
        assert!(file.is(DeviceNumber::from_userspace(0xfe00), 10018919));
        assert_eq!(listener.pending_connections, Some(vec![17862, 17863]));
        assert_eq!(
            listener.queue,
            Some(UnixQueue::Listener {
                pending: 2,
                backlog: 7
            })
        );
        assert_eq!(
            (listener.uid, listener.shutdown, listener.peer),
            (Some(0), Some(0), None)
        );

        let client = &out[1];
        assert_eq!(client.peer, Some(UnixPeer::AwaitingAccept));
        assert_eq!(client.name, UnixName::Unnamed);
        assert_eq!(client.uid, Some(1000));
        assert_eq!(client.pending_connections, None);

        let dgram = &out[2];
        assert_eq!(dgram.socket_type, UnixType::Dgram);
        assert_eq!(dgram.state, UnixState::Unconnected);
        assert_eq!(dgram.name, UnixName::Abstract(b"abs\0x".to_vec()));
        assert_eq!(
            dgram.queue,
            Some(UnixQueue::Data {
                receive: 300,
                send: 0
            })
        );
        assert_eq!((dgram.uid, dgram.bound_file), (None, None));
        assert_eq!(dgram.shutdown, Some(2));
    }

    #[test]
    fn the_caller_keeps_what_it_asked_for() {
        let mut stream = listener_reply();
        stream.extend(waiting_client_reply());
        let (mut out, mut skipped) = (Vec::new(), 0);
        decode_replies(&stream, &mut |s| s.name.is_named(), &mut out, &mut skipped).unwrap();
        assert_eq!(out.iter().map(|s| s.inode).collect::<Vec<_>>(), [17860]);
    }

    #[test]
    fn short_attributes_are_left_out_and_odd_messages_skipped() {
        let mut msg = vec![AF_UNIX, 9, 2, 0]; // an unknown type and state
        msg.extend(words(&[5, 0, 0]));
        msg.extend(attribute(UNIX_DIAG_VFS, &words(&[1]))); // 4 of 8 bytes
        msg.extend(attribute(UNIX_DIAG_PEER, &[1, 2])); // 2 of 4
        msg.extend(attribute(UNIX_DIAG_ICONS, &[1, 0, 0, 0, 9])); // a stray byte
        msg.extend(attribute(UNIX_DIAG_NAME, b""));
        let mut stream = frame(SOCK_DIAG_BY_FAMILY, &msg);
        // Too short for a unix_diag_msg; another family.
        stream.extend(frame(SOCK_DIAG_BY_FAMILY, &[AF_UNIX, 1, 10]));
        let mut inet = vec![2u8, 1, 10, 0];
        inet.extend(words(&[7, 0, 0]));
        stream.extend(frame(SOCK_DIAG_BY_FAMILY, &inet));
        let (result, out, skipped) = decode_all(&stream);
        assert_eq!(result.unwrap(), Progress::More);
        assert_eq!((out.len(), skipped), (1, 2));
        let socket = &out[0];
        assert_eq!(socket.socket_type, UnixType::Other(9));
        assert_eq!(socket.state, UnixState::Other(2));
        assert_eq!((socket.bound_file, socket.peer), (None, None));
        assert_eq!(socket.pending_connections, Some(vec![1]));
        assert_eq!(socket.name, UnixName::Unnamed);
    }

    #[test]
    fn errors_are_errors_and_broken_framing_no_panic() {
        let (result, _, _) = decode_all(&frame(NLMSG_ERROR, &(-2i32).to_ne_bytes()));
        assert_eq!(result.unwrap_err().errno, Some(libc::ENOENT));
        let (result, _, _) = decode_all(&frame(NLMSG_DONE, &(-13i32).to_ne_bytes()));
        assert_eq!(result.unwrap_err().errno, Some(13));
        let (result, _, _) = decode_all(&frame(NLMSG_DONE, &i32::MIN.to_ne_bytes()));
        assert!(result.is_err());
        // A length past the buffer.
        let mut stream = listener_reply();
        stream[0..4].copy_from_slice(&4000u32.to_ne_bytes());
        let (result, out, _) = decode_all(&stream);
        assert!(result.is_err() && out.is_empty());
        // An error whose echo was cut short.
        let mut stream = frame(NLMSG_ERROR, &(-22i32).to_ne_bytes());
        stream[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(decode_all(&stream).0.unwrap_err().errno, Some(22));
        // Less than a header: nothing yet.
        assert_eq!(decode_all(&[1, 2, 3]).0.unwrap(), Progress::More);
    }
}
