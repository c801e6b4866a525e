//! What an argument names when it is a Unix socket, and which sockets
//! are on it.
//!
//! An argument with a `/` is a path (`./app.sock` too); one that starts
//! with `@` is an abstract name, as ss and lsof print them. A path is
//! matched by its file: the device and inode stat() gives, against the
//! bound file sock_diag reports (UNIX_DIAG_VFS). Never by name: the
//! kernel keeps the name as given to bind(), possibly relative, and a
//! file may be reached by several names (a symlink, a second hard link,
//! a bind mount) while a name may since point at another file.
//!
//! Only [`SocketFile::stat`] and [`path_names`] do I/O; the matching is
//! pure, over sockets any source gave.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::socket::{DeviceNumber, UnixName, UnixPeer, UnixSocket};

/// sizeof(sun_path): a path bound must fit in it with its NUL, an
/// abstract name with its leading NUL.
pub const SUN_PATH_LEN: usize = 108;

/// A Unix socket as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixTarget {
    /// A path in the filesystem, as typed.
    Path(PathBuf),
    /// An abstract name: the bytes after the `@`.
    Abstract(Vec<u8>),
}

impl UnixTarget {
    /// The target an argument names, or None when it names no Unix
    /// socket (a port, a service name). `@` first: abstract names often
    /// hold slashes (`@/containerd-shim/...`).
    pub fn parse(argument: &OsStr) -> Option<UnixTarget> {
        let bytes = argument.as_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            return Some(UnixTarget::Abstract(name.to_vec()));
        }
        bytes
            .contains(&b'/')
            .then(|| UnixTarget::Path(PathBuf::from(argument)))
    }

    /// Whether a socket could be bound to this at all: a path of at most
    /// 107 bytes, an abstract name of at most 107. A longer path may
    /// still name a socket bound by a shorter, relative name.
    pub fn fits_sun_path(&self) -> bool {
        match self {
            UnixTarget::Path(path) => path.as_os_str().len() < SUN_PATH_LEN,
            UnixTarget::Abstract(name) => name.len() < SUN_PATH_LEN,
        }
    }
}

/// What kind of file a path leads to (after symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A socket file: what bind() leaves.
    Socket,
    /// A directory.
    Directory,
    /// Anything else: a regular file, a fifo, a device.
    Other,
}

/// The facts of the file a path leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketFile {
    /// The path as typed.
    pub path: PathBuf,
    /// The filesystem's device.
    pub device: DeviceNumber,
    /// The inode number.
    pub inode: u64,
    /// What the file is.
    pub kind: FileKind,
    /// The owner's uid.
    pub uid: u32,
    /// The group's gid.
    pub gid: u32,
    /// The permission bits (the low 12 bits of st_mode).
    pub mode: u32,
    /// Whether lsport's user (its real uid and gid) may connect: write
    /// permission on the file and search permission on every directory
    /// on the way, as access(W_OK) checks them.
    pub may_connect: bool,
}

impl SocketFile {
    /// stat() of `path`, following symlinks: a socket is reached through
    /// a symlink as connect() reaches it.
    pub fn stat(path: &Path) -> io::Result<SocketFile> {
        let meta = std::fs::metadata(path)?;
        let file_type = meta.file_type();
        let kind = if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Other
        };
        let may_connect = nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok();
        Ok(SocketFile {
            path: path.to_path_buf(),
            device: DeviceNumber::from_userspace(meta.dev()),
            inode: meta.ino(),
            kind,
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            may_connect,
        })
    }
}

/// The sockets bound to the file, by device and inode: its listener or
/// bound datagram socket, and the accepted ends of connections made
/// through it (they carry the listener's file). Indexes into `sockets`.
pub fn on_file(file: &SocketFile, sockets: &[UnixSocket]) -> Vec<usize> {
    positions(sockets, |socket| {
        socket
            .bound_file
            .is_some_and(|bound| bound.is(file.device, file.inode))
    })
}

/// The sockets bound to an abstract name: the listener or bound datagram
/// socket and the accepted ends of its connections. Compared as ss
/// prints names, each NUL as `@`, which is also all /proc/net/unix
/// gives: `@a@b` names both `a\0b` and `a@b`.
pub fn on_abstract_name(name: &[u8], sockets: &[UnixSocket]) -> Vec<usize> {
    let wanted = UnixName::Abstract(name.to_vec());
    let wanted = wanted.printed();
    positions(sockets, |socket| {
        matches!(socket.name, UnixName::Abstract(_)) && socket.name.printed() == wanted
    })
}

/// The sockets whose bound name is one of `names`: how a path is matched
/// where sources give no bound file (/proc/net/unix). It misses a socket
/// bound by a relative name or reached by another name, and it takes a
/// socket bound to a file since replaced for one bound to this file.
pub fn on_path_name(names: &[PathBuf], sockets: &[UnixSocket]) -> Vec<usize> {
    positions(sockets, |socket| match &socket.name {
        UnixName::Path(bound) => names.iter().any(|name| name == bound),
        _ => false,
    })
}

/// The names a path may have been bound by, for matching by name: as
/// typed, and its canonical form when that differs (symlinks resolved,
/// `.` and `..` removed).
pub fn path_names(path: &Path) -> Vec<PathBuf> {
    let mut names = vec![path.to_path_buf()];
    if let Ok(canonical) = std::fs::canonicalize(path) {
        if canonical != path {
            names.push(canonical);
        }
    }
    names
}

fn positions(sockets: &[UnixSocket], wanted: impl Fn(&UnixSocket) -> bool) -> Vec<usize> {
    sockets
        .iter()
        .enumerate()
        .filter(|(_, socket)| wanted(socket))
        .map(|(index, _)| index)
        .collect()
}

/// What a path is, against the sockets bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileVerdict {
    /// Sockets are bound to the file.
    InUse,
    /// A socket file no socket is bound to: left by a socket that
    /// closed. connect() fails with ECONNREFUSED, and bind() with
    /// EADDRINUSE until the file is removed.
    Stale,
    /// Not a socket file.
    NotASocket,
}

/// The verdict on a file, from the sockets [`on_file`] found bound to it.
/// "Stale" holds only for the sockets given: sock_diag answers for one
/// network namespace, and a process in another may be bound to the same
/// file (a container sharing a directory), so the caller must have
/// dumped every namespace it can reach, or say which it looked in.
pub fn file_verdict(file: &SocketFile, bound: &[usize]) -> FileVerdict {
    match (file.kind, bound.is_empty()) {
        (FileKind::Socket, false) => FileVerdict::InUse,
        (FileKind::Socket, true) => FileVerdict::Stale,
        _ => FileVerdict::NotASocket,
    }
}

/// The sockets on one file or name, by what they are to it. Indexes
/// into the slice given to [`UnixGroup::of`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixGroup {
    /// Listeners and bound datagram sockets: what takes connections or
    /// datagrams by the name.
    pub servers: Vec<usize>,
    /// The accepted (server) ends of connections made through the name.
    pub accepted: Vec<usize>,
    /// The client ends of accepted connections, and the datagram sockets
    /// connected to a server.
    pub clients: Vec<usize>,
    /// Clients whose connections wait in a listener's queue (not yet
    /// accepted).
    pub waiting: Vec<usize>,
}

impl UnixGroup {
    /// Sorts `bound` (what [`on_file`] or a name match found) into
    /// servers and accepted connections, and finds in `sockets` the
    /// clients by peer inode: the peer of each accepted end, the
    /// sockets a listener's queue names, the datagram sockets whose
    /// peer is a server. Without peers (/proc/net/unix) there are no
    /// clients to find.
    pub fn of(sockets: &[UnixSocket], bound: &[usize]) -> UnixGroup {
        let mut group = UnixGroup::default();
        for &index in bound {
            let socket = &sockets[index];
            // Bound ends that are connected, of a connection type, were
            // accepted: only one socket can bind a file or a name.
            if socket.socket_type.is_connection_oriented() && !socket.is_listening() {
                group.accepted.push(index);
            } else {
                group.servers.push(index);
            }
        }
        let by_inode: std::collections::HashMap<u64, usize> = sockets
            .iter()
            .enumerate()
            .map(|(index, socket)| (socket.inode, index))
            .collect();
        let mut clients: Vec<usize> = group
            .accepted
            .iter()
            .filter_map(|&index| sockets[index].peer_inode())
            .filter_map(|inode| by_inode.get(&inode).copied())
            .collect();
        let servers: Vec<u64> = group.servers.iter().map(|&i| sockets[i].inode).collect();
        clients.extend(
            sockets
                .iter()
                .enumerate()
                .filter(|(_, s)| s.peer_inode().is_some_and(|p| servers.contains(&p)))
                .map(|(index, _)| index),
        );
        let mut waiting: Vec<usize> = group
            .servers
            .iter()
            .filter_map(|&index| sockets[index].pending_connections.as_deref())
            .flatten()
            .filter_map(|inode| by_inode.get(inode).copied())
            .filter(|&index| sockets[index].peer == Some(UnixPeer::AwaitingAccept))
            .collect();
        for list in [&mut clients, &mut waiting] {
            list.sort_unstable();
            list.dedup();
        }
        group.clients = clients;
        group.waiting = waiting;
        group
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unix::socket::{BoundFile, UnixQueue, UnixState, UnixType};

    #[test]
    fn an_argument_is_a_unix_socket_by_a_slash_or_a_leading_at() {
        let parse = |s: &str| UnixTarget::parse(OsStr::new(s));
        assert_eq!(
            parse("/run/a.sock"),
            Some(UnixTarget::Path("/run/a.sock".into()))
        );
        assert_eq!(
            parse("./app.sock"),
            Some(UnixTarget::Path("./app.sock".into()))
        );
        assert_eq!(
            parse("@/containerd-shim/x.sock"),
            Some(UnixTarget::Abstract(b"/containerd-shim/x.sock".to_vec()))
        );
        assert_eq!(parse("@"), Some(UnixTarget::Abstract(Vec::new())));
        for not_unix in ["8080", "http", "8000-8010", "app.sock", ""] {
            assert_eq!(parse(not_unix), None, "{not_unix}");
        }
        // Bytes that are not UTF-8 are a path like any other.
        let odd = OsStr::from_bytes(b"/tmp/\xff.sock");
        assert!(matches!(UnixTarget::parse(odd), Some(UnixTarget::Path(_))));
    }

    #[test]
    fn sun_path_holds_107_bytes_and_the_nul() {
        let path = |n: usize| UnixTarget::Path(PathBuf::from(format!("/{}", "a".repeat(n - 1))));
        assert!(path(107).fits_sun_path());
        assert!(!path(108).fits_sun_path());
        assert!(UnixTarget::Abstract(vec![b'x'; 107]).fits_sun_path());
        assert!(!UnixTarget::Abstract(vec![b'x'; 108]).fits_sun_path());
    }

    fn file(device: DeviceNumber, inode: u64, kind: FileKind) -> SocketFile {
        SocketFile {
            path: "/run/app.sock".into(),
            device,
            inode,
            kind,
            uid: 0,
            gid: 0,
            mode: 0o777,
            may_connect: true,
        }
    }

    const DEV: DeviceNumber = DeviceNumber {
        major: 254,
        minor: 0,
    };

    /// A stream listener on /run/app.sock (inode 10, file inode 500),
    /// one accepted connection (11) with its client (21), one client
    /// waiting (22), and sockets on another file and unnamed.
    fn stream_server() -> Vec<UnixSocket> {
        let path = UnixName::Path("/run/app.sock".into());
        let bound = Some(BoundFile {
            device: DEV,
            inode: 500,
        });
        let mut listener = UnixSocket::new(UnixType::Stream, UnixState::Listen, 10, path.clone());
        listener.bound_file = bound;
        listener.pending_connections = Some(vec![22, 0]);
        listener.queue = Some(UnixQueue::Listener {
            pending: 2,
            backlog: 5,
        });
        let mut accepted = UnixSocket::new(UnixType::Stream, UnixState::Connected, 11, path);
        accepted.bound_file = bound;
        accepted.peer = Some(UnixPeer::Socket(21));
        let mut client = UnixSocket::new(
            UnixType::Stream,
            UnixState::Connected,
            21,
            UnixName::Unnamed,
        );
        client.peer = Some(UnixPeer::Socket(11));
        let mut waiting = UnixSocket::new(
            UnixType::Stream,
            UnixState::Connected,
            22,
            UnixName::Unnamed,
        );
        waiting.peer = Some(UnixPeer::AwaitingAccept);
        let mut elsewhere = UnixSocket::new(
            UnixType::Stream,
            UnixState::Listen,
            30,
            UnixName::Path("/run/app.sock".into()),
        );
        // Same name, other file: bound before the file was replaced, or
        // in another mount namespace.
        elsewhere.bound_file = Some(BoundFile {
            device: DEV,
            inode: 501,
        });
        let stray = UnixSocket::new(
            UnixType::Stream,
            UnixState::Connected,
            40,
            UnixName::Unnamed,
        );
        vec![listener, accepted, client, waiting, elsewhere, stray]
    }

    #[test]
    fn a_file_is_matched_by_device_and_inode_not_by_name() {
        let sockets = stream_server();
        let bound = on_file(&file(DEV, 500, FileKind::Socket), &sockets);
        assert_eq!(bound, [0, 1]);
        assert_eq!(
            file_verdict(&file(DEV, 500, FileKind::Socket), &bound),
            FileVerdict::InUse
        );
        // The same inode number on another device is another file.
        let other_device = DeviceNumber {
            major: 0,
            minor: 27,
        };
        assert!(on_file(&file(other_device, 500, FileKind::Socket), &sockets).is_empty());
        // By name, both sockets called /run/app.sock and the connection
        // match: the name cannot tell them apart.
        let names = [PathBuf::from("/run/app.sock")];
        assert_eq!(on_path_name(&names, &sockets), [0, 1, 4]);
    }

    #[test]
    fn a_socket_file_nothing_is_bound_to_is_stale() {
        let sockets = stream_server();
        let orphan = file(DEV, 777, FileKind::Socket);
        let bound = on_file(&orphan, &sockets);
        assert!(bound.is_empty());
        assert_eq!(file_verdict(&orphan, &bound), FileVerdict::Stale);
        assert_eq!(
            file_verdict(&file(DEV, 777, FileKind::Other), &bound),
            FileVerdict::NotASocket
        );
        assert_eq!(
            file_verdict(&file(DEV, 777, FileKind::Directory), &[]),
            FileVerdict::NotASocket
        );
    }

    #[test]
    fn a_group_pairs_connections_by_peer_inode() {
        let sockets = stream_server();
        let group = UnixGroup::of(&sockets, &[0, 1]);
        assert_eq!(
            group,
            UnixGroup {
                servers: vec![0],
                accepted: vec![1],
                clients: vec![2],
                waiting: vec![3],
            }
        );
        // Without peers (as from /proc/net/unix): servers and accepted
        // ends by name, no clients.
        let blind: Vec<UnixSocket> = sockets
            .into_iter()
            .map(|s| UnixSocket {
                peer: None,
                pending_connections: None,
                bound_file: None,
                ..s
            })
            .collect();
        let group = UnixGroup::of(&blind, &[0, 1]);
        assert_eq!((group.clients.len(), group.waiting.len()), (0, 0));
        assert_eq!((group.servers, group.accepted), (vec![0], vec![1]));
    }

    #[test]
    fn datagram_senders_are_clients_of_the_bound_socket() {
        let name = UnixName::Abstract(b"log".to_vec());
        let server = UnixSocket::new(UnixType::Dgram, UnixState::Connected, 5, name);
        let mut sender =
            UnixSocket::new(UnixType::Dgram, UnixState::Connected, 6, UnixName::Unnamed);
        sender.peer = Some(UnixPeer::Socket(5));
        let other = UnixSocket::new(
            UnixType::Dgram,
            UnixState::Unconnected,
            7,
            UnixName::Unnamed,
        );
        let sockets = vec![server, sender, other];
        let bound = on_abstract_name(b"log", &sockets);
        assert_eq!(bound, [0]);
        let group = UnixGroup::of(&sockets, &bound);
        assert_eq!((group.servers, group.clients), (vec![0], vec![1]));
    }

    #[test]
    fn abstract_names_compare_as_printed() {
        let sockets = vec![
            UnixSocket::new(
                UnixType::Stream,
                UnixState::Listen,
                1,
                UnixName::Abstract(b"a\0b".to_vec()),
            ),
            UnixSocket::new(
                UnixType::Stream,
                UnixState::Listen,
                2,
                UnixName::Abstract(b"ab".to_vec()),
            ),
            // A path that reads like the abstract name is not one.
            UnixSocket::new(
                UnixType::Stream,
                UnixState::Listen,
                3,
                UnixName::Path("@a@b".into()),
            ),
        ];
        assert_eq!(on_abstract_name(b"a@b", &sockets), [0]);
        assert_eq!(on_abstract_name(b"a\0b", &sockets), [0]);
        assert_eq!(on_abstract_name(b"ab", &sockets), [1]);
        assert!(on_abstract_name(b"", &sockets).is_empty());
    }
}
