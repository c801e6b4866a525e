//! The Unix socket sources and path matching, through the library, against
//! real sockets: each test runs in a private network namespace (its own
//! Unix socket table, its own abstract names) and, where it makes files,
//! a private mount namespace with a tmpfs of its own. Where it helps, ss
//! gives the ground truth.

mod common;

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use lsport::source::unix::netlink::{ALL_STATES, LISTENING, UnixSession};
use lsport::source::unix::procfs::{self, TableCounts};
use lsport::sys::ProcRoot;
use lsport::unix::socket::{
    DeviceNumber, UnixName, UnixPeer, UnixQueue, UnixSocket, UnixState, UnixType,
};
use lsport::unix::target::{
    self, FileKind, FileVerdict, SocketFile, UnixGroup, UnixTarget, file_verdict, on_file,
};
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};

/// Every Unix socket of the calling thread's network namespace, from
/// sock_diag.
fn dump() -> Vec<UnixSocket> {
    let mut out = Vec::new();
    UnixSession::default()
        .dump(ALL_STATES, &mut |_| true, &mut out)
        .unwrap_or_else(|err| panic!("unix_diag dump: {err}"));
    out
}

/// The same namespace's sockets from /proc/net/unix.
fn proc_table() -> (Vec<UnixSocket>, TableCounts) {
    let mut out = Vec::new();
    let counts = procfs::read_table(&ProcRoot::default(), &mut |_| true, &mut out).unwrap();
    (out, counts)
}

/// The socket inode behind an fd, as /proc/PID/fd names it.
fn inode_of(fd: &impl AsRawFd) -> u64 {
    std::fs::metadata(format!("/proc/thread-self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .ino()
}

fn find(sockets: &[UnixSocket], inode: u64) -> &UnixSocket {
    sockets
        .iter()
        .find(|s| s.inode == inode)
        .unwrap_or_else(|| panic!("no socket {inode} in {sockets:#?}"))
}

fn inodes(sockets: &[UnixSocket], indexes: &[usize]) -> Vec<u64> {
    indexes.iter().map(|&i| sockets[i].inode).collect()
}

fn unix_socket(kind: SockType) -> OwnedFd {
    socket(AddressFamily::Unix, kind, SockFlag::SOCK_CLOEXEC, None).unwrap()
}

/// A listener of `kind` bound to `address`, with `backlog`.
fn listener_at(kind: SockType, address: &UnixAddr, backlog: i32) -> OwnedFd {
    let fd = unix_socket(kind);
    bind(fd.as_raw_fd(), address).unwrap();
    listen(&fd, Backlog::new(backlog).unwrap()).unwrap();
    fd
}

/// A tmpfs mounted in a private mount namespace of the calling thread
/// (its own cwd too), unmounted and removed on drop.
struct PrivateTmpfs {
    dir: PathBuf,
}

impl PrivateTmpfs {
    /// None, after saying so, where mount namespaces cannot be made
    /// (private_netns has already failed the test where they must).
    fn new(test: &str) -> Option<PrivateTmpfs> {
        if let Err(err) = unshare(CloneFlags::CLONE_NEWNS) {
            if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
                panic!("{test}: unshare(CLONE_NEWNS) failed: {err}");
            }
            eprintln!("SKIPPED {test}: unshare(CLONE_NEWNS) failed: {err}");
            return None;
        }
        // Nothing mounted here may reach the rest of the system.
        mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE);
        let dir = std::env::temp_dir().join(format!("lsport-unix-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        mount(Some("tmpfs"), &dir, Some("tmpfs"), 0);
        Some(PrivateTmpfs { dir })
    }
}

impl Drop for PrivateTmpfs {
    fn drop(&mut self) {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: a plain system call on a path we own.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn mount(source: Option<&str>, target: &Path, fstype: Option<&str>, flags: libc::c_ulong) {
    use std::ffi::CString;
    let source = source.map(|s| CString::new(s).unwrap());
    let fstype = fstype.map(|s| CString::new(s).unwrap());
    let target_c = CString::new(target.as_os_str().as_bytes()).unwrap();
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

/// One socket as `ss -xan` prints it: netid, state, Recv-Q, Send-Q,
/// name, inode, peer inode.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SsLine {
    netid: String,
    state: String,
    recv_q: u32,
    send_q: u32,
    name: String,
    inode: u64,
    peer: u64,
}

/// `ss -xan` in the calling thread's namespace. Names may hold spaces:
/// the line is read from both ends.
fn ss_unix() -> Vec<SsLine> {
    let output = Command::new("ss")
        .args(["-xanH"])
        .output()
        .expect("running ss");
    assert!(output.status.success());
    let mut lines: Vec<SsLine> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let n = fields.len();
            SsLine {
                netid: fields[0].into(),
                state: fields[1].into(),
                recv_q: fields[2].parse().unwrap(),
                send_q: fields[3].parse().unwrap(),
                name: fields[4..n - 3].join(" "),
                inode: fields[n - 3].parse().unwrap(),
                peer: fields[n - 1].parse().unwrap(),
            }
        })
        .collect();
    lines.sort();
    lines
}

/// lsport's sockets in the form ss prints.
fn as_ss(sockets: &[UnixSocket]) -> Vec<SsLine> {
    let mut lines: Vec<SsLine> = sockets
        .iter()
        .map(|s| {
            let (recv_q, send_q) = match s.queue.unwrap() {
                UnixQueue::Listener { pending, backlog } => (pending, backlog),
                UnixQueue::Data { receive, send } => (receive, send),
            };
            let name = match &s.name {
                UnixName::Unnamed => "*".to_string(),
                name => String::from_utf8(name.printed().into_owned()).unwrap(),
            };
            SsLine {
                netid: match s.socket_type {
                    UnixType::Stream => "u_str",
                    UnixType::Dgram => "u_dgr",
                    UnixType::SeqPacket => "u_seq",
                    UnixType::Other(_) => "?",
                }
                .into(),
                state: match s.state {
                    UnixState::Listen => "LISTEN",
                    UnixState::Connected => "ESTAB",
                    UnixState::Unconnected => "UNCONN",
                    UnixState::Other(_) => "?",
                }
                .into(),
                recv_q,
                send_q,
                name,
                inode: s.inode,
                peer: s.peer_inode().unwrap_or(0),
            }
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_stream_listener_its_connections_and_its_queue() {
    if !common::private_netns("a_stream_listener_its_connections_and_its_queue") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("stream") else {
        return;
    };
    let path = tmp.dir.join("app server.sock");
    let listener = UnixListener::from(listener_at(
        SockType::Stream,
        &UnixAddr::new(&path).unwrap(),
        5,
    ));
    let first = UnixStream::connect(&path).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    // Two more clients that the server has not accepted yet.
    let second = UnixStream::connect(&path).unwrap();
    let third = UnixStream::connect(&path).unwrap();

    let sockets = dump();
    let file = SocketFile::stat(&path).unwrap();
    assert_eq!(file.kind, FileKind::Socket);
    let bound = on_file(&file, &sockets);
    assert_eq!(file_verdict(&file, &bound), FileVerdict::InUse);
    let group = UnixGroup::of(&sockets, &bound);
    assert_eq!(inodes(&sockets, &group.servers), [inode_of(&listener)]);
    assert_eq!(inodes(&sockets, &group.accepted), [inode_of(&accepted)]);
    assert_eq!(inodes(&sockets, &group.clients), [inode_of(&first)]);
    let mut waiting = inodes(&sockets, &group.waiting);
    waiting.sort_unstable();
    let mut expected = vec![inode_of(&second), inode_of(&third)];
    expected.sort_unstable();
    assert_eq!(waiting, expected);

    let server = find(&sockets, inode_of(&listener));
    assert_eq!(
        (server.socket_type, server.state),
        (UnixType::Stream, UnixState::Listen)
    );
    assert_eq!(server.name, UnixName::Path(path.clone()));
    assert_eq!(
        server.queue,
        Some(UnixQueue::Listener {
            pending: 2,
            backlog: 5
        })
    );
    // Oldest first.
    assert_eq!(
        server.pending_connections,
        Some(vec![inode_of(&second), inode_of(&third)])
    );
    assert_eq!(server.uid, Some(0));
    // The ends of the accepted connection name each other; the waiting
    // clients' peer has no inode yet.
    assert_eq!(
        find(&sockets, inode_of(&accepted)).peer,
        Some(UnixPeer::Socket(inode_of(&first)))
    );
    assert_eq!(
        find(&sockets, inode_of(&first)).peer,
        Some(UnixPeer::Socket(inode_of(&accepted)))
    );
    assert_eq!(
        find(&sockets, inode_of(&second)).peer,
        Some(UnixPeer::AwaitingAccept)
    );
    // The accepted end carries the listener's name and file.
    let accepted_socket = find(&sockets, inode_of(&accepted));
    assert_eq!(accepted_socket.name, server.name);
    assert_eq!(accepted_socket.bound_file, server.bound_file);
    // ss agrees on every socket: names, states, queues, peers.
    assert_eq!(as_ss(&sockets), ss_unix());

    // A listeners-only dump has the listener alone.
    let mut listeners = Vec::new();
    UnixSession::default()
        .dump(LISTENING, &mut |_| true, &mut listeners)
        .unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0], *server);
}

#[test]
fn a_socket_is_looked_up_by_inode_and_cookie() {
    if !common::private_netns("a_socket_is_looked_up_by_inode_and_cookie") {
        return;
    }
    let listener = UnixListener::from(listener_at(
        SockType::Stream,
        &UnixAddr::new_abstract(b"lookup").unwrap(),
        4,
    ));
    let _client = UnixStream::connect_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(b"lookup").unwrap(),
    )
    .unwrap();
    let dumped = dump();
    let inode = inode_of(&listener);
    let expected = find(&dumped, inode);
    let mut session = UnixSession::default();
    assert_eq!(
        session.lookup(inode, None).unwrap().as_ref(),
        Some(expected)
    );
    assert_eq!(
        session.lookup(inode, expected.cookie).unwrap().as_ref(),
        Some(expected)
    );
    // Another cookie: a socket that closed and whose inode was reused.
    let other_cookie = expected.cookie.map(|c| c ^ 1);
    assert_eq!(session.lookup(inode, other_cookie).unwrap(), None);
    // No such socket; and the session still answers after that.
    assert_eq!(session.lookup(u64::from(u32::MAX) - 7, None).unwrap(), None);
    assert_eq!(
        session.lookup(inode, None).unwrap().as_ref(),
        Some(expected)
    );
}

#[test]
fn an_abstract_name_belongs_to_its_network_namespace() {
    if !common::private_netns("an_abstract_name_belongs_to_its_network_namespace") {
        return;
    }
    let name = b"/lsport/test\0abstract";
    let listener = listener_at(SockType::Stream, &UnixAddr::new_abstract(name).unwrap(), 8);
    let sockets = dump();
    for typed in [&b"/lsport/test@abstract"[..], name] {
        let bound = target::on_abstract_name(typed, &sockets);
        assert_eq!(inodes(&sockets, &bound), [inode_of(&listener)]);
    }
    assert_eq!(
        UnixTarget::parse(OsStr::new("@/lsport/test@abstract")),
        Some(UnixTarget::Abstract(b"/lsport/test@abstract".to_vec()))
    );
    // Another namespace neither sees the name nor is kept from binding it.
    std::thread::spawn(move || {
        assert!(common::private_netns(
            "an_abstract_name_belongs_to_its_network_namespace"
        ));
        let sockets = dump();
        assert!(target::on_abstract_name(name, &sockets).is_empty());
        let other = listener_at(SockType::Stream, &UnixAddr::new_abstract(name).unwrap(), 8);
        let sockets = dump();
        assert_eq!(
            inodes(&sockets, &target::on_abstract_name(name, &sockets)),
            [inode_of(&other)]
        );
    })
    .join()
    .unwrap();
}

#[test]
fn datagram_and_seqpacket_sockets() {
    if !common::private_netns("datagram_and_seqpacket_sockets") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("dgram") else {
        return;
    };
    // A datagram server on a path, one sender connected to it with 100
    // bytes unread, one sender that is not connected.
    let path = tmp.dir.join("log.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    let sender = UnixDatagram::unbound().unwrap();
    sender.connect(&path).unwrap();
    sender.send(&[7u8; 100]).unwrap();
    let loose = UnixDatagram::unbound().unwrap();
    loose.send_to(b"x", &path).unwrap();
    // A seqpacket listener on an abstract name, one connection accepted.
    let seq = UnixListener::from(listener_at(
        SockType::SeqPacket,
        &UnixAddr::new_abstract(b"seq").unwrap(),
        3,
    ));
    let seq_client = unix_socket(SockType::SeqPacket);
    nix::sys::socket::connect(
        seq_client.as_raw_fd(),
        &UnixAddr::new_abstract(b"seq").unwrap(),
    )
    .unwrap();
    let (seq_accepted, _) = seq.accept().unwrap();

    let sockets = dump();
    let bound = on_file(&SocketFile::stat(&path).unwrap(), &sockets);
    let group = UnixGroup::of(&sockets, &bound);
    assert_eq!(inodes(&sockets, &group.servers), [inode_of(&server)]);
    assert_eq!(inodes(&sockets, &group.clients), [inode_of(&sender)]);
    assert!(group.accepted.is_empty() && group.waiting.is_empty());
    let dgram = find(&sockets, inode_of(&server));
    assert_eq!(dgram.socket_type, UnixType::Dgram);
    assert!(dgram.takes_by_name());
    // The next datagram's size.
    assert!(matches!(
        dgram.queue,
        Some(UnixQueue::Data { receive: 100, .. })
    ));
    assert_eq!(
        find(&sockets, inode_of(&sender)).peer,
        Some(UnixPeer::Socket(inode_of(&server)))
    );
    assert_eq!(find(&sockets, inode_of(&loose)).peer, None);

    let seq_bound = target::on_abstract_name(b"seq", &sockets);
    let seq_group = UnixGroup::of(&sockets, &seq_bound);
    assert_eq!(inodes(&sockets, &seq_group.servers), [inode_of(&seq)]);
    assert_eq!(
        inodes(&sockets, &seq_group.accepted),
        [inode_of(&seq_accepted)]
    );
    assert_eq!(
        inodes(&sockets, &seq_group.clients),
        [inode_of(&seq_client)]
    );
    assert!(
        seq_group
            .servers
            .iter()
            .chain(&seq_group.accepted)
            .chain(&seq_group.clients)
            .all(|&i| sockets[i].socket_type == UnixType::SeqPacket)
    );
    assert_eq!(as_ss(&sockets), ss_unix());
}

#[test]
fn a_socket_file_left_by_a_closed_socket_is_stale() {
    if !common::private_netns("a_socket_file_left_by_a_closed_socket_is_stale") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("stale") else {
        return;
    };
    let path = tmp.dir.join("crashed.sock");
    common::stale_socket_file(&path);
    let file = SocketFile::stat(&path).unwrap();
    assert_eq!(file.kind, FileKind::Socket);
    let sockets = dump();
    assert_eq!(
        file_verdict(&file, &on_file(&file, &sockets)),
        FileVerdict::Stale
    );
    // What the verdict means: bind() fails, connect() is refused.
    let err = UnixListener::bind(&path).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let err = UnixStream::connect(&path).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    // A listener on another file of the same directory changes nothing.
    let _other = UnixListener::bind(tmp.dir.join("live.sock")).unwrap();
    let sockets = dump();
    assert_eq!(
        file_verdict(&file, &on_file(&file, &sockets)),
        FileVerdict::Stale
    );
    // A regular file is no socket file.
    let plain = tmp.dir.join("plain");
    std::fs::write(&plain, b"").unwrap();
    let plain = SocketFile::stat(&plain).unwrap();
    assert_eq!(
        file_verdict(&plain, &on_file(&plain, &sockets)),
        FileVerdict::NotASocket
    );
    // The file's own facts.
    assert_eq!((file.uid, file.mode & 0o777 != 0), (0, true));
    assert!(file.may_connect, "root may connect to any socket file");
}

#[test]
fn a_file_bound_from_another_network_namespace_looks_stale_from_this_one() {
    // What "stale" cannot see: sock_diag answers for one network
    // namespace, and a socket file may be bound from another one (a
    // container sharing a directory). Whoever says "stale" must have
    // looked in every namespace.
    if !common::private_netns("a_file_bound_from_another_network_namespace") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("othernetns") else {
        return;
    };
    let path = tmp.dir.join("shared.sock");
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread_path = path.clone();
    // A new thread shares this thread's mount namespace, then leaves its
    // network namespace.
    let other = std::thread::spawn(move || {
        assert!(common::private_netns(
            "a_file_bound_from_another_network_namespace"
        ));
        let listener = UnixListener::bind(&thread_path).unwrap();
        let sockets = dump();
        let file = SocketFile::stat(&thread_path).unwrap();
        bound_tx
            .send(inodes(&sockets, &on_file(&file, &sockets)))
            .unwrap();
        bound_tx.send(vec![inode_of(&listener)]).unwrap();
        done_rx.recv().unwrap();
    });
    let there = bound_rx.recv().unwrap();
    let listener_inode = bound_rx.recv().unwrap();
    assert_eq!(there, listener_inode, "its own namespace sees it");
    let file = SocketFile::stat(&path).unwrap();
    let here = dump();
    assert_eq!(
        file_verdict(&file, &on_file(&file, &here)),
        FileVerdict::Stale
    );
    // Yet it listens: connect() reaches a path's socket across namespaces.
    UnixStream::connect(&path).unwrap();
    done_tx.send(()).unwrap();
    other.join().unwrap();
}

#[test]
fn one_file_by_symlink_hard_link_bind_mount_and_relative_name() {
    if !common::private_netns("one_file_by_symlink_hard_link_bind_mount") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("names") else {
        return;
    };
    let dir = tmp.dir.join("run");
    std::fs::create_dir(&dir).unwrap();
    // Bound by a relative name: the kernel keeps "rel.sock". This
    // thread's cwd is its own since it left the mount namespace.
    std::env::set_current_dir(&dir).unwrap();
    let listener = UnixListener::bind("rel.sock").unwrap();
    std::env::set_current_dir("/").unwrap();
    let real = dir.join("rel.sock");
    let symlink = tmp.dir.join("link.sock");
    std::os::unix::fs::symlink(&real, &symlink).unwrap();
    let hard = tmp.dir.join("hard.sock");
    std::fs::hard_link(&real, &hard).unwrap();
    let mounted = tmp.dir.join("elsewhere");
    std::fs::create_dir(&mounted).unwrap();
    mount(Some(dir.to_str().unwrap()), &mounted, None, libc::MS_BIND);
    let through_mount = mounted.join("rel.sock");

    let sockets = dump();
    assert_eq!(
        find(&sockets, inode_of(&listener)).name,
        UnixName::Path("rel.sock".into())
    );
    for path in [&real, &symlink, &hard, &through_mount] {
        let file = SocketFile::stat(path).unwrap();
        let bound = on_file(&file, &sockets);
        assert_eq!(
            inodes(&sockets, &bound),
            [inode_of(&listener)],
            "{}",
            path.display()
        );
        // By name, as the /proc fallback must match, none of them is found.
        let by_name = target::on_path_name(&target::path_names(path), &sockets);
        assert!(by_name.is_empty(), "{}", path.display());
    }
    // Every name connects to the one listener.
    for path in [&symlink, &hard, &through_mount] {
        UnixStream::connect(path).unwrap();
        listener.accept().unwrap();
    }
}

#[test]
fn by_name_a_symlink_finds_a_socket_bound_by_its_full_path() {
    if !common::private_netns("by_name_a_symlink_finds_a_socket_bound_by_its_full_path") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("byname") else {
        return;
    };
    let real = tmp.dir.join("full.sock");
    let listener = UnixListener::bind(&real).unwrap();
    let symlink = tmp.dir.join("link.sock");
    std::os::unix::fs::symlink(&real, &symlink).unwrap();
    let (sockets, _) = proc_table();
    for path in [&real, &symlink] {
        let by_name = target::on_path_name(&target::path_names(path), &sockets);
        assert_eq!(inodes(&sockets, &by_name), [inode_of(&listener)]);
    }
}

#[test]
fn devices_match_on_the_root_filesystem_and_on_tmpfs() {
    // sock_diag reports the kernel's dev_t (major << 20 | minor), stat()
    // userspace's: a file on a disk (major > 0) tells them apart.
    if !common::private_netns("devices_match_on_the_root_filesystem_and_on_tmpfs") {
        return;
    }
    let on_disk = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("unix-source-{}", std::process::id()));
    std::fs::create_dir_all(&on_disk).unwrap();
    let disk_path = on_disk.join("d.sock");
    let _ = std::fs::remove_file(&disk_path);
    let disk_listener = UnixListener::bind(&disk_path).unwrap();
    let Some(tmp) = PrivateTmpfs::new("devices") else {
        return;
    };
    let tmpfs_path = tmp.dir.join("t.sock");
    let tmpfs_listener = UnixListener::bind(&tmpfs_path).unwrap();
    let sockets = dump();
    let mut differing = Vec::new();
    for (path, listener) in [(&disk_path, &disk_listener), (&tmpfs_path, &tmpfs_listener)] {
        let file = SocketFile::stat(path).unwrap();
        let bound = on_file(&file, &sockets);
        assert_eq!(
            inodes(&sockets, &bound),
            [inode_of(listener)],
            "{}",
            path.display()
        );
        let st_dev = std::fs::metadata(path).unwrap().dev();
        let device = sockets[bound[0]].bound_file.unwrap().device;
        assert_eq!(device, DeviceNumber::from_userspace(st_dev));
        if u64::from(device.to_kernel()) != st_dev {
            differing.push(path.display().to_string());
        }
    }
    let _ = std::fs::remove_file(&disk_path);
    let _ = std::fs::remove_dir(&on_disk);
    if differing.is_empty() {
        // Both on filesystems without a disk (major 0, minor < 256):
        // the two encodings agree and this run proves less.
        eprintln!(
            "NOTE devices_match_on_the_root_filesystem_and_on_tmpfs: {} is on a device whose two encodings agree",
            disk_path.display()
        );
    }
}

#[test]
fn the_uid_is_the_creators() {
    if !common::private_netns("the_uid_is_the_creators") {
        return;
    }
    // A socket's uid is the fsuid of the thread that created it, which
    // setfsuid() changes for this thread alone.
    // SAFETY: plain system calls; the uid is set back before returning.
    unsafe { libc::setfsuid(65534) };
    let nobody = UnixDatagram::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(b"nobody").unwrap(),
    );
    unsafe { libc::setfsuid(0) };
    let nobody = nobody.unwrap();
    let root = UnixDatagram::unbound().unwrap();
    let sockets = dump();
    assert_eq!(find(&sockets, inode_of(&nobody)).uid, Some(65534));
    assert_eq!(find(&sockets, inode_of(&root)).uid, Some(0));
}

#[test]
fn the_proc_table_lists_the_same_sockets_with_less() {
    if !common::private_netns("the_proc_table_lists_the_same_sockets_with_less") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new("proc") else {
        return;
    };
    let path = tmp.dir.join("a b.sock");
    let listener = UnixListener::from(listener_at(
        SockType::Stream,
        &UnixAddr::new(&path).unwrap(),
        4,
    ));
    let _first = UnixStream::connect(&path).unwrap();
    let _accepted = listener.accept().unwrap();
    let _waiting = [
        UnixStream::connect(&path).unwrap(),
        UnixStream::connect(&path).unwrap(),
    ];
    let _dgram = UnixDatagram::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(b"abs\0x").unwrap(),
    )
    .unwrap();
    let _seq = listener_at(
        SockType::SeqPacket,
        &UnixAddr::new_abstract(b"seq").unwrap(),
        2,
    );
    let _unnamed = UnixDatagram::unbound().unwrap();

    let from_diag = dump();
    let (from_proc, counts) = proc_table();
    // The server ends of the two waiting connections: in the table with
    // inode 0, left out as sock_diag leaves them out.
    assert_eq!(
        counts,
        TableCounts {
            bad: 0,
            awaiting_accept: 2
        }
    );
    let key = |s: &UnixSocket| {
        (
            s.inode,
            s.socket_type,
            s.state,
            s.name.printed().into_owned(),
        )
    };
    let mut diag_keys: Vec<_> = from_diag.iter().map(key).collect();
    let mut proc_keys: Vec<_> = from_proc.iter().map(key).collect();
    diag_keys.sort();
    proc_keys.sort();
    assert_eq!(proc_keys, diag_keys);
    assert_eq!(from_proc.len(), 8);
    assert!(
        from_proc
            .iter()
            .all(|s| s.bound_file.is_none() && s.peer.is_none())
    );
    // By name, the path finds the listener and its accepted connection.
    let by_name = target::on_path_name(&target::path_names(&path), &from_proc);
    let group = UnixGroup::of(&from_proc, &by_name);
    assert_eq!(inodes(&from_proc, &group.servers), [inode_of(&listener)]);
    assert_eq!(group.accepted.len(), 1);
    assert!(group.clients.is_empty(), "no peers in /proc/net/unix");
}
