//! The one place that talks to nf_tables: a NETLINK_NETFILTER socket
//! that runs dumps one after another. What the replies mean is decoded
//! elsewhere.

use std::io;

use netlink_sys::{Socket as NetlinkSocket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::nfnetlink::{Dump, DumpFailure, Message, Progress, build_request, decode_replies};

/// The kernel sends dumps in chunks of at most 32 KiB.
const RECEIVE_BUFFER_LEN: usize = 64 * 1024;

/// Why a dump gave no answer.
#[derive(Debug)]
pub enum SessionError {
    /// The socket could not be opened or used.
    Io(io::Error),
    /// The kernel or the replies failed the dump.
    Dump(DumpFailure),
}

/// A netlink socket for nf_tables dumps in the calling thread's network
/// namespace.
pub struct Session {
    socket: NetlinkSocket,
    buffer: Vec<u8>,
    sequence: u32,
}

impl Session {
    /// Opens the socket. A kernel without nfnetlink refuses it with
    /// EPROTONOSUPPORT.
    pub fn open() -> Result<Session, SessionError> {
        let mut socket = NetlinkSocket::new(NETLINK_NETFILTER).map_err(SessionError::Io)?;
        // An error echoes only the request's header.
        let _ = socket.set_cap_ack(true);
        socket.bind_auto().map_err(SessionError::Io)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(SessionError::Io)?;
        Ok(Session {
            socket,
            buffer: vec![0; RECEIVE_BUFFER_LEN],
            sequence: 0,
        })
    }

    /// Runs one dump for a table family (NFPROTO_*); `set` names the
    /// table and set of a set element dump.
    pub fn dump(
        &mut self,
        dump: Dump,
        family: u8,
        set: Option<(&str, &str)>,
    ) -> Result<Vec<Message>, SessionError> {
        self.sequence = self.sequence.wrapping_add(1);
        let request = build_request(dump, family, set, self.sequence);
        self.socket.send(&request, 0).map_err(SessionError::Io)?;
        let mut out = Vec::new();
        // A failed dump is not read to its end: the caller drops the
        // session rather than reuse a socket with replies left in it.
        loop {
            let received = match self.socket.recv(&mut &mut self.buffer[..], libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SessionError::Io(e)),
            };
            if received > self.buffer.len() {
                return Err(SessionError::Dump(DumpFailure::Malformed(format!(
                    "a reply of {received} bytes, larger than the buffer"
                ))));
            }
            if received == 0 {
                return Err(SessionError::Dump(DumpFailure::Malformed(
                    "the dump ended early".into(),
                )));
            }
            let progress = decode_replies(&self.buffer[..received], dump.reply_type(), &mut out)
                .map_err(SessionError::Dump)?;
            if progress == Progress::Done {
                return Ok(out);
            }
        }
    }
}
