//! The model of a Unix domain socket (AF_UNIX), as sock_diag
//! (unix_diag) and /proc/net/unix describe it. It depends on nothing
//! else in the crate.
//!
//! A field that a source cannot see is `None`: /proc/net/unix gives no
//! cookie, bound file, peer, queue or uid, where sock_diag gives them
//! all. For sock_diag, `None` means the kernel sent no such attribute
//! (an unnamed socket has no bound file, an unconnected one no peer).

use std::borrow::Cow;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The kernel's socket type (sk_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnixType {
    /// SOCK_STREAM (1): connections, a byte stream.
    Stream,
    /// SOCK_DGRAM (2): datagrams, no connections needed.
    Dgram,
    /// SOCK_SEQPACKET (5): connections that keep message boundaries.
    SeqPacket,
    /// A number this version does not know, kept as the kernel gave it.
    Other(u8),
}

impl UnixType {
    /// The type for the kernel's number.
    pub fn from_kernel(code: u8) -> UnixType {
        match code {
            1 => UnixType::Stream,
            2 => UnixType::Dgram,
            5 => UnixType::SeqPacket,
            other => UnixType::Other(other),
        }
    }

    /// The kernel's number for the type.
    pub fn code(self) -> u8 {
        match self {
            UnixType::Stream => 1,
            UnixType::Dgram => 2,
            UnixType::SeqPacket => 5,
            UnixType::Other(code) => code,
        }
    }

    /// `stream`, `dgram`, `seqpacket`; an unknown type prints as its number.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            UnixType::Stream => "stream".into(),
            UnixType::Dgram => "dgram".into(),
            UnixType::SeqPacket => "seqpacket".into(),
            UnixType::Other(code) => code.to_string().into(),
        }
    }

    /// Whether the type has connections made by connect() and accept().
    pub fn is_connection_oriented(self) -> bool {
        matches!(self, UnixType::Stream | UnixType::SeqPacket)
    }
}

/// The kernel's state of a Unix socket (sk_state). af_unix borrows
/// three of TCP's numbers. An unknown value is kept, never rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnixState {
    /// TCP_ESTABLISHED (1): a connected socket. A datagram socket that
    /// others connect() to shows it too, without a peer of its own.
    Connected,
    /// TCP_CLOSE (7): neither connected nor listening.
    Unconnected,
    /// TCP_LISTEN (10): a listener.
    Listen,
    /// A number this version does not know, kept as the kernel gave it.
    Other(u8),
}

impl UnixState {
    /// The state for the kernel's number.
    pub fn from_kernel(code: u8) -> UnixState {
        match code {
            1 => UnixState::Connected,
            7 => UnixState::Unconnected,
            10 => UnixState::Listen,
            other => UnixState::Other(other),
        }
    }

    /// The kernel's number for the state.
    pub fn code(self) -> u8 {
        match self {
            UnixState::Connected => 1,
            UnixState::Unconnected => 7,
            UnixState::Listen => 10,
            UnixState::Other(code) => code,
        }
    }

    /// The kernel's name for the number (tcp_states.h, without TCP_):
    /// `ESTABLISHED`, `CLOSE`, `LISTEN`; unknown states print as their
    /// number.
    pub fn kernel_name(self) -> Cow<'static, str> {
        match self {
            UnixState::Connected => "ESTABLISHED".into(),
            UnixState::Unconnected => "CLOSE".into(),
            UnixState::Listen => "LISTEN".into(),
            UnixState::Other(code) => code.to_string().into(),
        }
    }
}

/// The name a socket is bound to (its sun_path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnixName {
    /// Not bound: most clients, and the accepted end of nothing.
    Unnamed,
    /// A path in the filesystem, as given to bind(): relative when it
    /// was bound by a relative name, so not always a path to open. A
    /// socket is matched to a file by its bound file, not by this.
    Path(PathBuf),
    /// An abstract name (sun_path starts with a NUL): the bytes after
    /// that NUL, which may hold more NULs. Abstract names belong to a
    /// network namespace. From /proc/net/unix every NUL already reads
    /// `@` (as the kernel prints it).
    Abstract(Vec<u8>),
}

impl UnixName {
    /// The name from the bytes of sun_path the kernel reports (the
    /// address length less the family): a leading NUL makes it
    /// abstract; a path ends at its first NUL.
    pub fn from_sun_path(bytes: &[u8]) -> UnixName {
        match bytes.split_first() {
            None => UnixName::Unnamed,
            Some((0, name)) => UnixName::Abstract(name.to_vec()),
            Some(_) => {
                let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                UnixName::Path(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end])))
            }
        }
    }

    /// Whether the socket is bound to a name.
    pub fn is_named(&self) -> bool {
        !matches!(self, UnixName::Unnamed)
    }

    /// The name as ss and /proc/net/unix print it: a path as it is, an
    /// abstract name as `@` and its bytes with each NUL as `@`, an
    /// unnamed socket as nothing. Raw bytes: whoever prints them
    /// escapes them.
    pub fn printed(&self) -> Cow<'_, [u8]> {
        match self {
            UnixName::Unnamed => Cow::Borrowed(b""),
            UnixName::Path(path) => Cow::Borrowed(path.as_os_str().as_bytes()),
            UnixName::Abstract(name) => {
                let mut out = Vec::with_capacity(name.len() + 1);
                out.push(b'@');
                out.extend(name.iter().map(|b| if *b == 0 { b'@' } else { *b }));
                Cow::Owned(out)
            }
        }
    }
}

/// A device number split into its parts. The kernel and userspace
/// encode a dev_t differently, and sock_diag speaks the kernel's
/// encoding while stat() speaks userspace's: both are decoded into this,
/// and only this is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceNumber {
    /// The major number (12 bits in the kernel's encoding).
    pub major: u32,
    /// The minor number (20 bits in the kernel's encoding).
    pub minor: u32,
}

impl DeviceNumber {
    /// Bits of the minor number in the kernel's internal dev_t
    /// (MINORBITS in include/linux/kdev_t.h).
    const KERNEL_MINOR_BITS: u32 = 20;

    /// From the kernel's internal dev_t, `major << 20 | minor`: what
    /// unix_diag puts in udiag_vfs_dev (the superblock's s_dev).
    pub fn from_kernel(dev: u32) -> DeviceNumber {
        DeviceNumber {
            major: dev >> Self::KERNEL_MINOR_BITS,
            minor: dev & ((1 << Self::KERNEL_MINOR_BITS) - 1),
        }
    }

    /// The kernel's internal dev_t for this number.
    pub fn to_kernel(self) -> u32 {
        self.major << Self::KERNEL_MINOR_BITS | (self.minor & ((1 << Self::KERNEL_MINOR_BITS) - 1))
    }

    /// From stat()'s st_dev: the minor's low 8 bits, then the major's
    /// low 12 bits, then the minor's other bits, then the major's other
    /// bits (what glibc's major() and minor() undo).
    pub fn from_userspace(dev: u64) -> DeviceNumber {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        DeviceNumber {
            major: major as u32,
            minor: minor as u32,
        }
    }
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// The file a socket is bound to (UNIX_DIAG_VFS): the device of the
/// filesystem that holds it and its inode. Accepted connections carry
/// their listener's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BoundFile {
    /// The filesystem's device.
    pub device: DeviceNumber,
    /// The low 32 bits of the file's inode number: the kernel's field is
    /// 32 bits wide, where some filesystems number inodes with 64.
    pub inode: u32,
}

impl BoundFile {
    /// Whether this is the file with `device` and inode number `inode`
    /// (as stat() gives them). Inodes are compared on their low 32 bits,
    /// all the kernel sends.
    pub fn is(&self, device: DeviceNumber, inode: u64) -> bool {
        self.device == device && u64::from(self.inode) == inode & u64::from(u32::MAX)
    }
}

/// The other end of a connection (UNIX_DIAG_PEER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnixPeer {
    /// The peer socket's inode.
    Socket(u64),
    /// A client whose connection waits in a listener's queue: the
    /// server's end exists but has no inode until accept() (the kernel
    /// reports inode 0). The listener names the client among its
    /// pending connections.
    AwaitingAccept,
}

/// Queue lengths (UNIX_DIAG_RQLEN): their meaning depends on whether
/// the socket listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnixQueue {
    /// A listener.
    Listener {
        /// Connections made and not yet accepted.
        pending: u32,
        /// The most that may wait: listen()'s backlog, capped by
        /// net.core.somaxconn. Past it, connect() blocks or fails with
        /// EAGAIN.
        backlog: u32,
    },
    /// Any other socket.
    Data {
        /// Bytes received and not yet read (for a datagram socket, the
        /// size of the next datagram).
        receive: u32,
        /// Bytes sent and not yet read by the peer (the send buffer in
        /// use).
        send: u32,
    },
}

/// One Unix domain socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Stream, datagram or seqpacket.
    pub socket_type: UnixType,
    /// Listening, connected or neither.
    pub state: UnixState,
    /// The socket's inode: what `/proc/PID/fd/N -> socket:[INODE]`
    /// names. Never 0: sources leave out the not-yet-accepted ends of
    /// connections, which have none.
    pub inode: u64,
    /// The kernel's cookie for the socket (sock_diag only).
    pub cookie: Option<u64>,
    /// The name the socket is bound to; accepted connections carry their
    /// listener's.
    pub name: UnixName,
    /// The file the socket is bound to, if bound to a path (sock_diag
    /// only).
    pub bound_file: Option<BoundFile>,
    /// The peer (sock_diag only).
    pub peer: Option<UnixPeer>,
    /// Queue lengths (sock_diag only).
    pub queue: Option<UnixQueue>,
    /// The uid that created the socket, in lsport's user namespace
    /// (sock_diag, Linux 5.3 and later).
    pub uid: Option<u32>,
    /// A listener's queue: the inodes of the clients whose connections
    /// wait for accept(), oldest first; 0 for a client already gone
    /// (sock_diag only, and only for listeners).
    pub pending_connections: Option<Vec<u64>>,
    /// Which directions are shut down: bit 0 receive, bit 1 send
    /// (sock_diag only).
    pub shutdown: Option<u8>,
}

impl UnixSocket {
    /// A listener of a connection-oriented type.
    pub fn is_listening(&self) -> bool {
        self.state == UnixState::Listen
    }

    /// A socket that takes connections or datagrams by its name: a
    /// listener, or a named datagram socket not connected to a peer
    /// (the counterpart of an unconnected bound UDP socket). A named
    /// datagram socket with a peer is a client that bound a name to
    /// receive replies.
    pub fn takes_by_name(&self) -> bool {
        self.is_listening()
            || (self.socket_type == UnixType::Dgram
                && self.name.is_named()
                && !matches!(self.peer, Some(UnixPeer::Socket(_))))
    }

    /// The peer's inode, when the peer has one.
    pub fn peer_inode(&self) -> Option<u64> {
        match self.peer {
            Some(UnixPeer::Socket(inode)) => Some(inode),
            _ => None,
        }
    }

    /// A socket of which only the type, state, inode and name are known
    /// (all /proc/net/unix gives); sock_diag's decoder fills in the rest.
    pub fn new(socket_type: UnixType, state: UnixState, inode: u64, name: UnixName) -> Self {
        UnixSocket {
            socket_type,
            state,
            inode,
            cookie: None,
            name,
            bound_file: None,
            peer: None,
            queue: None,
            uid: None,
            pending_connections: None,
            shutdown: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_states_are_kept() {
        for code in 0..=255u8 {
            assert_eq!(UnixType::from_kernel(code).code(), code);
            assert_eq!(UnixState::from_kernel(code).code(), code);
        }
        assert_eq!(UnixType::from_kernel(3), UnixType::Other(3));
        assert_eq!(UnixType::from_kernel(3).name(), "3");
        assert_eq!(UnixState::from_kernel(2).kernel_name(), "2");
        assert_eq!(UnixType::from_kernel(5).name(), "seqpacket");
        assert_eq!(UnixState::from_kernel(10), UnixState::Listen);
    }

    #[test]
    fn names_come_from_sun_path_as_the_kernel_gives_it() {
        // A path: the kernel's length counts the terminating NUL.
        assert_eq!(
            UnixName::from_sun_path(b"/run/app.sock\0"),
            UnixName::Path("/run/app.sock".into())
        );
        // Without a NUL (a kernel that kept the caller's length), and with
        // bytes after it: the path ends at the first NUL.
        assert_eq!(
            UnixName::from_sun_path(b"rel.sock"),
            UnixName::Path("rel.sock".into())
        );
        assert_eq!(
            UnixName::from_sun_path(b"a\0junk"),
            UnixName::Path("a".into())
        );
        // Abstract: everything after the leading NUL, NULs included.
        assert_eq!(
            UnixName::from_sun_path(b"\0abs\0x"),
            UnixName::Abstract(b"abs\0x".to_vec())
        );
        assert_eq!(
            UnixName::from_sun_path(b"\0"),
            UnixName::Abstract(Vec::new())
        );
        assert_eq!(UnixName::from_sun_path(b""), UnixName::Unnamed);
    }

    #[test]
    fn names_print_as_ss_and_the_kernel_print_them() {
        assert_eq!(
            &*UnixName::Abstract(b"abs\0x".to_vec()).printed(),
            b"@abs@x"
        );
        assert_eq!(&*UnixName::Abstract(Vec::new()).printed(), b"@");
        assert_eq!(&*UnixName::Path("/a b\n".into()).printed(), b"/a b\n");
        assert_eq!(&*UnixName::Unnamed.printed(), b"");
    }

    #[test]
    fn device_numbers_decode_from_both_encodings() {
        // /dev/vda is 254:0: the kernel says 254 << 20, stat() 0xfe00.
        let vda = DeviceNumber {
            major: 254,
            minor: 0,
        };
        assert_eq!(DeviceNumber::from_kernel(254 << 20), vda);
        assert_eq!(DeviceNumber::from_userspace(0xfe00), vda);
        assert_eq!(vda.to_kernel(), 0x0fe0_0000);
        // The same number read in the wrong encoding is another device:
        // ss prints this one as "0/65024".
        assert_ne!(DeviceNumber::from_kernel(0xfe00), vda);
        // Against libc's own makedev/major/minor, across the bit ranges:
        // small numbers, minors past 8 bits, majors past 8 and 12 bits.
        for (major, minor) in [
            (0u32, 0u32),
            (0, 27),
            (0, 300),
            (8, 1),
            (254, 0),
            (259, 3),
            (7, 0xfffff),
            (0xfff, 0xfffff),
        ] {
            let number = DeviceNumber { major, minor };
            let user = libc::makedev(major, minor);
            assert_eq!(DeviceNumber::from_userspace(user), number);
            assert_eq!((libc::major(user), libc::minor(user)), (major, minor));
            assert_eq!(DeviceNumber::from_kernel(number.to_kernel()), number);
        }
    }

    #[test]
    fn a_bound_file_compares_the_inode_on_32_bits() {
        let device = DeviceNumber {
            major: 0,
            minor: 27,
        };
        let file = BoundFile { device, inode: 5 };
        assert!(file.is(device, 5));
        assert!(
            file.is(device, (1 << 32) | 5),
            "the kernel sends the low half"
        );
        assert!(!file.is(device, 6));
        assert!(!file.is(
            DeviceNumber {
                major: 0,
                minor: 28
            },
            5
        ));
    }

    #[test]
    fn a_named_datagram_socket_takes_datagrams_unless_it_has_a_peer() {
        let named = UnixName::Abstract(b"log".to_vec());
        let mut socket = UnixSocket::new(UnixType::Dgram, UnixState::Connected, 9, named);
        // Others connected to it: ESTABLISHED, yet no peer of its own.
        assert!(socket.takes_by_name());
        socket.peer = Some(UnixPeer::Socket(10));
        assert!(!socket.takes_by_name());
        let unnamed = UnixSocket::new(
            UnixType::Dgram,
            UnixState::Unconnected,
            11,
            UnixName::Unnamed,
        );
        assert!(!unnamed.takes_by_name());
        let listener = UnixSocket::new(
            UnixType::SeqPacket,
            UnixState::Listen,
            12,
            UnixName::Unnamed,
        );
        assert!(listener.takes_by_name());
    }
}
