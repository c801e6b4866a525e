//! `lsport PATH`, `lsport @NAME`, `lsport --unix` and the commands on
//! Unix sockets, through the built binary, against real sockets held by
//! real processes: each test runs in a private network namespace (its
//! own Unix socket table and abstract names) and a private mount
//! namespace with a tmpfs of its own for the socket files.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{HeldBy, TestCgroup, cgroup2_mount_for, hold, lsport, private_netns, stderr, stdout};
use nix::sched::{CloneFlags, unshare};
use serde_json::Value;

/// A tmpfs mounted in a private mount namespace of the calling thread,
/// unmounted on drop. Mode 1777, as /tmp: user 65534 may use it.
struct PrivateTmpfs {
    dir: PathBuf,
}

impl PrivateTmpfs {
    /// The namespaces and the tmpfs, or None after saying why (a panic
    /// with LSPORT_REQUIRE_NETNS=1).
    fn new(test: &str) -> Option<PrivateTmpfs> {
        if !private_netns(test) {
            return None;
        }
        if let Err(err) = unshare(CloneFlags::CLONE_NEWNS) {
            if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
                panic!("{test}: unshare(CLONE_NEWNS) failed: {err}");
            }
            eprintln!("SKIPPED {test}: unshare(CLONE_NEWNS) failed: {err}");
            return None;
        }
        mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE);
        let dir =
            std::env::temp_dir().join(format!("lsport-unixcli-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        mount(Some("tmpfs"), &dir, Some("tmpfs"), 0);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Some(PrivateTmpfs { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
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

fn fd_of(socket: &impl AsRawFd) -> i32 {
    socket.as_raw_fd()
}

/// Runs `lsport --json ARGS` and parses the document.
fn json(args: &[&str]) -> (Value, Output) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = lsport(&all);
    let doc = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", stdout(&output), stderr(&output)));
    (doc, output)
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The unix sockets of the document with `role`.
fn with_role<'a>(doc: &'a Value, role: &str) -> Vec<&'a Value> {
    doc["unix"]["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["role"] == role)
        .collect()
}

fn pids(holders: &Value) -> Vec<u64> {
    holders
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap())
        .collect()
}

/// A stream server on `path` held by one process (listener and the
/// accepted end), its client held by another.
struct StreamServer {
    server: HeldBy,
    client: HeldBy,
}

fn stream_server(path: &Path) -> StreamServer {
    let listener = UnixListener::bind(path).unwrap();
    let client = UnixStream::connect(path).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let server = hold(&[fd_of(&listener), fd_of(&accepted)]);
    let client_holder = hold(&[fd_of(&client)]);
    StreamServer {
        server,
        client: client_holder,
    }
}

#[test]
fn a_stream_listener_shows_its_connections_and_the_pids_of_both_ends() {
    let Some(tmp) = PrivateTmpfs::new("stream") else {
        return;
    };
    let path = tmp.path("app.sock");
    let held = stream_server(&path);
    let (doc, output) = json(&[arg(&path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let target = &doc["unix"]["targets"][0];
    assert_eq!(target["verdict"], "in_use");
    assert_eq!(target["matched_by"], "file");
    assert_eq!(target["file"]["kind"], "socket");
    assert_eq!(target["file"]["may_connect"], true);
    let listener = with_role(&doc, "listener");
    assert_eq!(listener.len(), 1, "{doc:#}");
    assert_eq!(listener[0]["type"], "stream");
    assert_eq!(
        pids(&listener[0]["holders"]),
        [u64::from(held.server.pid())]
    );
    assert!(listener[0]["queue"]["backlog"].as_u64().unwrap() > 0);
    assert_eq!(listener[0]["queue"]["pending"], 0);
    let accepted = with_role(&doc, "accepted");
    assert_eq!(accepted.len(), 1, "{doc:#}");
    assert_eq!(
        pids(&accepted[0]["holders"]),
        [u64::from(held.server.pid())]
    );
    assert_eq!(
        pids(&accepted[0]["peer_holders"]),
        [u64::from(held.client.pid())]
    );
    let client = with_role(&doc, "client");
    assert_eq!(client.len(), 1, "{doc:#}");
    assert_eq!(pids(&client[0]["holders"]), [u64::from(held.client.pid())]);
    assert_eq!(client[0]["peer_inode"], accepted[0]["inode"]);
    // The table says it too.
    let text = lsport([arg(&path)]);
    let out = stdout(&text);
    assert!(out.contains(": IN USE (stream listener)"), "{out}");
    assert!(out.contains(&held.client.pid().to_string()), "{out}");
    // As ss sees it.
    let ss = Command::new("ss").args(["-xlpn"]).output().unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(ss.contains(&format!("pid={}", held.server.pid())), "{ss}");
}

#[test]
fn an_abstract_name_and_a_datagram_socket() {
    let Some(tmp) = PrivateTmpfs::new("abstract") else {
        return;
    };
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(b"lsport-test/abs").unwrap();
    let listener = UnixListener::bind_addr(&address).unwrap();
    let dgram_path = tmp.path("log.sock");
    let dgram = UnixDatagram::bind(&dgram_path).unwrap();
    let sender = UnixDatagram::unbound().unwrap();
    sender.connect(&dgram_path).unwrap();
    let server = hold(&[fd_of(&listener), fd_of(&dgram)]);
    let sending = hold(&[fd_of(&sender)]);
    drop((listener, dgram, sender));

    let (doc, output) = json(&["@lsport-test/abs"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(doc["unix"]["targets"][0]["verdict"], "in_use");
    assert_eq!(doc["unix"]["targets"][0]["matched_by"], "abstract_name");
    let listener = with_role(&doc, "listener");
    assert_eq!(pids(&listener[0]["holders"]), [u64::from(server.pid())]);
    assert_eq!(listener[0]["name"], "@lsport-test/abs");

    let (doc, output) = json(&[arg(&dgram_path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bound = with_role(&doc, "bound");
    assert_eq!(bound.len(), 1, "{doc:#}");
    assert_eq!(bound[0]["type"], "dgram");
    let clients = with_role(&doc, "client");
    assert_eq!(pids(&clients[0]["holders"]), [u64::from(sending.pid())]);

    // Another abstract name is free.
    let free = lsport(["@lsport-test/none"]);
    assert_eq!(free.status.code(), Some(1));
    assert!(stdout(&free).contains("FREE"), "{}", stdout(&free));

    // The listing has both servers, not the sender.
    let (doc, output) = json(&["--unix"]);
    assert_eq!(output.status.code(), Some(0));
    let names: Vec<&str> = doc["unix"]["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert!(names.contains(&"@lsport-test/abs"), "{names:?}");
    assert!(names.contains(&arg(&dgram_path)), "{names:?}");
    assert_eq!(names.len(), 2, "{names:?}");
    // -a has the sender too.
    let (doc, _) = json(&["--unix", "-a"]);
    assert!(doc["unix"]["sockets"].as_array().unwrap().len() >= 3);
    // --pid keeps the sender's.
    let (doc, _) = json(&["--unix", "-a", "--pid", &sending.pid().to_string()]);
    let sockets = doc["unix"]["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1, "{doc:#}");
    assert_eq!(sockets[0]["role"], "client");
}

#[test]
fn a_stale_file_exits_1_and_says_so() {
    let Some(tmp) = PrivateTmpfs::new("stale") else {
        return;
    };
    let path = tmp.path("stale.sock");
    common::stale_socket_file(&path);
    let output = lsport([arg(&path)]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.contains("STALE: a socket file with nothing bound to it"),
        "{out}"
    );
    let (doc, _) = json(&[arg(&path)]);
    assert_eq!(doc["unix"]["targets"][0]["verdict"], "stale");
    // A file that is not a socket, and no file at all.
    let plain = tmp.path("plain");
    std::fs::write(&plain, b"").unwrap();
    let output = lsport([arg(&plain)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("NOT A SOCKET"),
        "{}",
        stdout(&output)
    );
    let output = lsport([arg(&tmp.path("missing.sock"))]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("FREE (no such file"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_socket_file_reached_by_a_symlink_or_a_second_hard_link_is_the_same_file() {
    let Some(tmp) = PrivateTmpfs::new("links") else {
        return;
    };
    let path = tmp.path("real.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let held = hold(&[fd_of(&listener)]);
    drop(listener);
    let symlink = tmp.path("via-symlink.sock");
    std::os::unix::fs::symlink(&path, &symlink).unwrap();
    let hard = tmp.path("hard.sock");
    std::fs::hard_link(&path, &hard).unwrap();
    for name in [&symlink, &hard] {
        let (doc, output) = json(&[arg(name)]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            name.display(),
            stderr(&output)
        );
        assert_eq!(doc["unix"]["targets"][0]["matched_by"], "file");
        let listener = with_role(&doc, "listener");
        assert_eq!(pids(&listener[0]["holders"]), [u64::from(held.pid())]);
        // The kernel keeps the name it was bound by.
        assert_eq!(listener[0]["name"], arg(&path));
    }
    // A new file at the old name is another file: the socket is not on it.
    std::fs::remove_file(&path).unwrap();
    common::stale_socket_file(&path);
    let output = lsport([arg(&path)]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("STALE"), "{}", stdout(&output));
    // The hard link still leads to the live one.
    assert_eq!(lsport([arg(&hard)]).status.code(), Some(0));
}

/// A copy of lsport that user 65534 may run.
fn binary_for_nobody(tmp: &PrivateTmpfs) -> PathBuf {
    let binary = tmp.path("lsport");
    std::fs::copy(common::lsport_path(), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    binary
}

fn as_nobody(binary: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(binary)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running setpriv")
}

#[test]
fn user_65534_sees_roots_socket_in_use_with_its_holder_hidden() {
    let Some(tmp) = PrivateTmpfs::new("nobody") else {
        return;
    };
    let path = tmp.path("root.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let held = hold(&[fd_of(&listener)]);
    drop(listener);
    let binary = binary_for_nobody(&tmp);
    let output = as_nobody(&binary, &["--json", arg(&path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let target = &doc["unix"]["targets"][0];
    assert_eq!(target["verdict"], "in_use");
    assert_eq!(target["file"]["may_connect"], false);
    let listener = with_role(&doc, "listener");
    assert_eq!(listener[0]["uid"], 0);
    assert_eq!(listener[0]["holders_hidden"], true, "{doc:#}");
    assert!(listener[0]["holders"].as_array().unwrap().is_empty());
    assert!(doc["unix"]["hidden_holders"].as_u64().unwrap() >= 1);
    let text = as_nobody(&binary, &[arg(&path)]);
    assert!(stdout(&text).contains("(hidden)"), "{}", stdout(&text));
    assert!(!stdout(&text).contains(&held.pid().to_string()));
    assert!(
        stdout(&text).contains("may not connect"),
        "{}",
        stdout(&text)
    );
    // Its kill cannot reach the hidden holder: exit 4 at once, nothing sent.
    let output = as_nobody(&binary, &["kill", arg(&path)]);
    assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("hidden from this user"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("is still held"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_path_the_user_may_not_reach_is_matched_by_name_and_said_so() {
    let Some(tmp) = PrivateTmpfs::new("unreadable") else {
        return;
    };
    let dir = tmp.path("private");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("app.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let _held = hold(&[fd_of(&listener)]);
    drop(listener);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let binary = binary_for_nobody(&tmp);
    let output = as_nobody(&binary, &["--json", arg(&path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let target = &doc["unix"]["targets"][0];
    assert_eq!(target["verdict"], "in_use");
    assert_eq!(target["matched_by"], "name");
    assert!(target["file"].is_null());
    assert!(
        target["file_error"]
            .as_str()
            .unwrap()
            .contains("ermission denied")
    );
    let text = as_nobody(&binary, &[arg(&path)]);
    assert!(
        stdout(&text).contains("matched by name"),
        "{}",
        stdout(&text)
    );
    // wait --free does not take the unreachable file for free.
    let output = as_nobody(
        &binary,
        &["wait", "--free", arg(&path), "--timeout", "300ms"],
    );
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let output = as_nobody(
        &binary,
        &["wait", "--listening", arg(&path), "--timeout", "5s"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // A stale file there cannot be told: unknown, not free.
    let stale = dir.join("stale.sock");
    common::stale_socket_file(&stale);
    let output = as_nobody(&binary, &[arg(&stale)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("UNKNOWN"), "{}", stdout(&output));
}

/// lsport under a seccomp filter that refuses netlink sockets: the
/// fallback to /proc/net/unix.
fn lsport_without_netlink(args: &[&str]) -> Output {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    use std::os::unix::process::CommandExt;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut filter = vec![
        stmt(load, 4),
        jump(AUDIT_ARCH, 0, 5),
        stmt(load, 0),
        jump(libc::SYS_socket as u32, 0, 3),
        stmt(load, 16),
        jump(libc::AF_NETLINK as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let mut command = common::lsport_command(args);
    // SAFETY: between fork and exec only prctl is called, on memory
    // prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("running lsport under seccomp")
}

#[test]
fn without_sock_diag_paths_are_matched_by_name_from_proc_net_unix() {
    let Some(tmp) = PrivateTmpfs::new("fallback") else {
        return;
    };
    let path = tmp.path("app.sock");
    let held = stream_server(&path);
    let output = lsport_without_netlink(&["--json", arg(&path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["unix"]["source"], "proc");
    assert!(
        doc["unix"]["blind_spots"]
            .as_array()
            .unwrap()
            .contains(&Value::from("unix_no_bound_file"))
    );
    let target = &doc["unix"]["targets"][0];
    assert_eq!(target["matched_by"], "name");
    let listener = with_role(&doc, "listener");
    assert_eq!(
        pids(&listener[0]["holders"]),
        [u64::from(held.server.pid())]
    );
    // No peers: the accepted end is there, its client cannot be paired.
    assert_eq!(with_role(&doc, "accepted").len(), 1);
    assert!(with_role(&doc, "client").is_empty());
    let text = lsport_without_netlink(&[arg(&path)]);
    assert!(
        stdout(&text).contains("matched by name: /proc/net/unix"),
        "{}",
        stdout(&text)
    );
    assert!(
        stderr(&text).contains("reading /proc/net/unix instead"),
        "{}",
        stderr(&text)
    );
    // --source proc chooses it without a refusal.
    let (doc, _) = json(&["--source", "proc", arg(&path)]);
    assert_eq!(doc["unix"]["source"], "proc");
    // A path nothing is bound to by name: stale, said by name.
    let stale = tmp.path("stale.sock");
    common::stale_socket_file(&stale);
    assert_eq!(
        lsport_without_netlink(&[arg(&stale)]).status.code(),
        Some(1)
    );
    // why's fix says the check was by name only.
    let why = lsport_without_netlink(&["why", arg(&stale)]);
    assert_eq!(why.status.code(), Some(4));
    assert!(
        stdout(&why).contains("checked by name only"),
        "{}",
        stdout(&why)
    );
}

#[test]
fn bad_unix_arguments_are_one_line_and_exit_2() {
    for args in [
        vec!["@"],
        vec!["watch", "/run/x.sock"],
        vec!["--unix", "--unit", ""],
        vec!["kill", "/a.sock", "/b.sock"],
        vec!["--pid", "1", "/a.sock"],
    ] {
        let output = lsport(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(
            stderr(&output).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn why_names_the_cause_of_each_failing_bind() {
    let Some(tmp) = PrivateTmpfs::new("why") else {
        return;
    };
    let live = tmp.path("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(b"lsport-why").unwrap();
    let named = UnixListener::bind_addr(&address).unwrap();
    let held = hold(&[fd_of(&listener), fd_of(&named)]);
    drop((listener, named));
    let why = |target: &str| {
        let output = lsport(["why", target]);
        (output.status.code(), stdout(&output))
    };
    let (code, out) = why(arg(&live));
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("bind() fails with EADDRINUSE: a stream listener"),
        "{out}"
    );
    assert!(out.contains(&format!("pid {}", held.pid())), "{out}");

    let stale = tmp.path("stale.sock");
    common::stale_socket_file(&stale);
    let (code, out) = why(arg(&stale));
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("bind() fails with EADDRINUSE: the file remains from a socket that closed; nothing listens on it"),
        "{out}"
    );
    assert!(
        out.contains(&format!("fix: remove the file: rm {}", arg(&stale))),
        "{out}"
    );
    // The fix is right: once removed, a bind succeeds, and why says it would.
    std::fs::remove_file(&stale).unwrap();
    let (code, out) = why(arg(&stale));
    assert_eq!(code, Some(0), "{out}");
    common::stale_socket_file(&stale);

    let (code, out) = why(arg(&tmp.path("no/such/dir/x.sock")));
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("bind() fails with ENOENT"), "{out}");

    let long = tmp.path(&"x".repeat(120));
    let (code, out) = why(arg(&long));
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("sun_path holds 107"), "{out}");

    let (code, out) = why("@lsport-why");
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("EADDRINUSE"), "{out}");
    assert_eq!(why("@lsport-why-free").0, Some(0));

    // A directory user 65534 may not write: EACCES, as its bind() says.
    let locked = tmp.path("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = binary_for_nobody(&tmp);
    let target = locked.join("x.sock");
    let output = as_nobody(&binary, &["why", arg(&target)]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("bind() fails with EACCES"),
        "{}",
        stdout(&output)
    );
    let bind = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "python3",
            "-c",
            "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        stderr(&bind).contains("Permission denied"),
        "{}",
        stderr(&bind)
    );
    // why never bound anything on the user's path.
    assert!(!target.exists());
}

/// Waits for a started lsport to end, for at most a minute.
fn finish(mut child: std::process::Child) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "lsport wait never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn start(args: &[&str]) -> std::process::Child {
    common::lsport_command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn wait_sees_a_server_that_starts_after_it_began_and_its_end() {
    let Some(tmp) = PrivateTmpfs::new("wait") else {
        return;
    };
    let path = tmp.path("late.sock");
    let waiting = start(&["wait", "--listening", arg(&path), "--timeout", "50"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let listener = UnixListener::bind(&path).unwrap();
    let server = hold(&[fd_of(&listener)]);
    drop(listener);
    let output = finish(waiting);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains(": listening: stream listener"), "{out}");
    assert!(out.contains(&format!("pid {}", server.pid())), "{out}");

    // --free: met once the server is gone; the file it leaves is said.
    let freeing = start(&["wait", "--free", arg(&path), "--timeout", "50"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(server);
    let output = finish(freeing);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("its file remains"),
        "{}",
        stdout(&output)
    );

    // A bound file whose socket listens only later: bound is not listening.
    let late = tmp.path("bound-then-listen.sock");
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::empty(),
        None,
    )
    .unwrap();
    let address = nix::sys::socket::UnixAddr::new(&late).unwrap();
    nix::sys::socket::bind(socket.as_raw_fd(), &address).unwrap();
    let mut waiting = start(&["wait", "--listening", arg(&late), "--timeout", "50"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "bound is not listening"
    );
    nix::sys::socket::listen(&socket, nix::sys::socket::Backlog::new(4).unwrap()).unwrap();
    let output = finish(waiting);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // Timeouts: exit 4, one line on stderr.
    let output = lsport(["wait", "-l", "@lsport-never", "--timeout", "200ms"]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
}

#[test]
fn kill_signals_the_listeners_holder_and_leaves_its_client_alive() {
    let Some(tmp) = PrivateTmpfs::new("kill") else {
        return;
    };
    let path = tmp.path("app.sock");
    let mut held = stream_server(&path);
    // A dry run sends nothing and names the client left alone.
    let output = lsport(["kill", "-n", arg(&path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains(&format!("would send TERM to pid {}", held.server.pid())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "left alone: the client connected to it (pid {})",
            held.client.pid()
        )),
        "{out}"
    );
    assert!(held.server.child.try_wait().unwrap().is_none());

    let output = lsport(["kill", "--respawn-window", "0", arg(&path)]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let out = stdout(&output);
    assert!(out.contains("exited"), "{out}");
    assert!(out.contains("is free"), "{out}");
    // sleep does not remove its socket file: said.
    assert!(out.contains("its socket file remains"), "{out}");
    assert!(
        held.server.child.try_wait().unwrap().is_some(),
        "the server lives on"
    );
    assert!(
        held.client.child.try_wait().unwrap().is_none(),
        "the client was signalled"
    );
    // Nothing listens now: exit 1.
    assert_eq!(lsport(["kill", arg(&path)]).status.code(), Some(1));
    // --sockets cannot close a Unix socket: one line, exit 2.
    let output = lsport(["kill", "--sockets", arg(&path)]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn names_are_escaped_and_ports_and_paths_go_together() {
    let Some(tmp) = PrivateTmpfs::new("escape") else {
        return;
    };
    let path = tmp.path("evil\x1b[2J.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:40777").unwrap();
    let _held = hold(&[fd_of(&listener), fd_of(&tcp)]);
    drop((listener, tcp));
    let output = lsport(["40777", arg(&path)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("evil\\x1b[2J.sock: IN USE"), "{out}");
    assert!(out.contains("40777"), "{out}");
    let (doc, _) = json(&["40777", arg(&path)]);
    assert_eq!(doc["ports"][0]["in_use"], true, "{doc:#}");
    assert_eq!(doc["unix"]["targets"][0]["verdict"], "in_use");
    // The listing escapes names too.
    assert!(!stdout(&lsport(["--unix"])).contains('\x1b'));
    // A port given with --unix is answered as well, from a real dump.
    let output = lsport(["--unix", "40777"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Port 40777 is IN USE"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("evil\\x1b[2J.sock"));
}

#[test]
fn a_name_without_a_slash_is_a_service_with_a_hint_when_a_file_has_it() {
    let Some(tmp) = PrivateTmpfs::new("hint") else {
        return;
    };
    common::stale_socket_file(&tmp.path("app.sock"));
    let output = common::lsport_command(["app.sock"])
        .current_dir(&tmp.dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("written ./app.sock"),
        "{}",
        stderr(&output)
    );
    let output = common::lsport_command(["./app.sock"])
        .current_dir(&tmp.dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("./app.sock: STALE"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn another_network_namespace_has_its_own_abstract_names() {
    let Some(_tmp) = PrivateTmpfs::new("netns") else {
        return;
    };
    // A server in a namespace of its own: unshare(1) makes it, python
    // binds the name there and says so on stdout.
    let mut server = Command::new("unshare")
        .args([
            "-n",
            "python3",
            "-c",
            "import socket,sys,time\n\
             s=socket.socket(socket.AF_UNIX); s.bind('\\0lsport-elsewhere'); s.listen(1)\n\
             print('ready', flush=True); time.sleep(300)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = server.id().to_string();
    let here = lsport(["@lsport-elsewhere"]);
    let there = lsport(["--netns", &pid, "@lsport-elsewhere"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(here.status.code(), Some(1), "{}", stdout(&here));
    assert_eq!(there.status.code(), Some(0), "{}", stderr(&there));
    assert!(
        stdout(&there).contains(&format!("  {pid}  ")),
        "{}",
        stdout(&there)
    );
}

/// The paths of the listeners (and bound sockets) of a document's `unix`
/// part, by file name, sorted.
fn listed_names(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = doc["unix"]["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["role"] == "listener")
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            name.rsplit('/').next().unwrap().to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn unit_container_and_cgroup_select_unix_sockets_by_their_holders_cgroups() {
    let test = "unix_cgroups";
    let Some(tmp) = PrivateTmpfs::new(test) else {
        return;
    };
    let Some(mount) = cgroup2_mount_for(test) else {
        return;
    };
    // A slice of this run's own, a unit and a Docker-like container in
    // it (dropped last: the holders below go first).
    let slice_name = format!("lsport-unix-{}.slice", std::process::id());
    let id = format!("{:016x}", std::process::id()).repeat(4);
    let slice = TestCgroup::new(&mount, &format!("/{slice_name}"));
    let unit = TestCgroup::new(&mount, &format!("{}/demo-unix.service", slice.path));
    let container = TestCgroup::new(&mount, &format!("{}/docker-{id}.scope", slice.path));

    let in_unit = UnixListener::bind(tmp.path("in-unit.sock")).unwrap();
    let shared = UnixListener::bind(tmp.path("shared.sock")).unwrap();
    let in_container = UnixListener::bind(tmp.path("in-container.sock")).unwrap();
    let outside = UnixListener::bind(tmp.path("outside.sock")).unwrap();
    // A client held outside, connected to the unit's server.
    let client = UnixStream::connect(tmp.path("in-unit.sock")).unwrap();
    let (accepted, _) = in_unit.accept().unwrap();
    // shared.sock is held inside the unit and outside it.
    let unit_holder = hold(&[fd_of(&in_unit), fd_of(&accepted), fd_of(&shared)]);
    let container_holder = hold(&[fd_of(&in_container)]);
    let outside_holder = hold(&[fd_of(&outside), fd_of(&shared), fd_of(&client)]);
    drop((in_unit, accepted, shared, in_container, outside, client));
    unit.move_in(unit_holder.pid());
    container.move_in(container_holder.pid());

    let listed = |args: &[&str]| {
        let mut all = vec!["--unix"];
        all.extend_from_slice(args);
        let (doc, output) = json(&all);
        (output.status.code(), listed_names(&doc), doc)
    };
    let unit_sockets = vec!["in-unit.sock".to_string(), "shared.sock".to_string()];
    let (code, names, doc) = listed(&["--unit", "demo-unix.service"]);
    assert_eq!((code, &names), (Some(0), &unit_sockets), "{doc:#}");
    assert_eq!(doc["unix"]["untested_by_filter"], 0);
    // A holder outside the unit is still named: the socket is kept
    // whole, with every holder.
    let shared_row = doc["unix"]["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("/shared.sock"))
        })
        .unwrap();
    let mut shared_pids = pids(&shared_row["holders"]);
    shared_pids.sort_unstable();
    let mut both = vec![
        u64::from(unit_holder.pid()),
        u64::from(outside_holder.pid()),
    ];
    both.sort_unstable();
    assert_eq!(shared_pids, both);
    // A unit without its suffix is a service; the slice holds both.
    assert_eq!(listed(&["--unit", "demo-unix"]).1, unit_sockets);
    assert_eq!(
        listed(&["--unit", &slice_name]).1,
        ["in-container.sock", "in-unit.sock", "shared.sock"]
    );
    let (code, names, _) = listed(&["--unit", "other-unix.service"]);
    assert_eq!((code, names), (Some(1), vec![]));
    // --cgroup: as /proc/PID/cgroup names it, or as a directory.
    assert_eq!(listed(&["--cgroup", &unit.path]).1, unit_sockets);
    assert_eq!(
        listed(&["--cgroup", unit.dir.to_str().unwrap()]).1,
        unit_sockets
    );
    // --container: an id prefix, as docker ps shows it.
    let (code, names, _) = listed(&["--container", &id[..12]]);
    assert_eq!(
        (code, names),
        (Some(0), vec!["in-container.sock".to_string()])
    );
    assert_eq!(listed(&["--container", "0123456789ab"]).0, Some(1));
    // Filters add up: the unit and a pid outside it hold shared.sock.
    let outside_pid = outside_holder.pid().to_string();
    assert_eq!(
        listed(&["--unit", "demo-unix", "--pid", &outside_pid]).1,
        ["shared.sock"]
    );
    // A reverse query shows every socket held, as for ports: the
    // accepted end its holder keeps in the unit, not the client held
    // outside.
    let (_, _, doc) = listed(&["--unit", "demo-unix"]);
    assert_eq!(with_role(&doc, "accepted").len(), 1, "{doc:#}");
    assert!(with_role(&doc, "client").is_empty(), "{doc:#}");
    // -l keeps the servers only.
    let (code, names, doc) = listed(&["-l", "--unit", "demo-unix"]);
    assert_eq!((code, &names), (Some(0), &unit_sockets), "{doc:#}");
    assert!(with_role(&doc, "accepted").is_empty(), "{doc:#}");
    // The table, and -q's exit status (holders are looked for even when
    // none is shown).
    let out = stdout(&lsport(["--unix", "--unit", "demo-unix"]));
    assert!(out.contains("in-unit.sock"), "{out}");
    assert!(!out.contains("outside.sock"), "{out}");
    assert!(!out.contains("in-container.sock"), "{out}");
    assert_eq!(
        lsport(["-q", "--unix", "--unit", "demo-unix"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        lsport(["-q", "--unix", "--unit", "other-unix"])
            .status
            .code(),
        Some(1)
    );
    // A user who sees no holder cannot tell which sockets are the
    // unit's: none is shown as matching, and the six left out (four
    // listeners, both ends of the connection) are said.
    let binary = binary_for_nobody(&tmp);
    let output = as_nobody(&binary, &["--json", "--unix", "--unit", "demo-unix"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["unix"]["sockets"], serde_json::json!([]));
    assert_eq!(doc["unix"]["untested_by_filter"], 6, "{doc:#}");
    let output = as_nobody(&binary, &["--unix", "--unit", "demo-unix"]);
    assert!(
        stderr(&output).contains("6 Unix sockets are left out"),
        "{}",
        stderr(&output)
    );
    drop((unit_holder, container_holder, outside_holder));
    drop((container, unit, slice));
}

/// The children of `pid`, from the kernel's list.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn kill_names_the_process_a_supervisor_restarts_on_the_same_path() {
    let test = "unix_respawn";
    if !common::tool_available(test, "python3") {
        return;
    }
    let Some(tmp) = PrivateTmpfs::new(test) else {
        return;
    };
    let path = tmp.path("app.sock");
    // A supervisor that forks a server on the path, and again a second
    // after each one ends (the server removes the stale file first).
    let script = "import os, socket, sys, time\n\
                  path = sys.argv[1]\n\
                  while True:\n\
                  \x20   pid = os.fork()\n\
                  \x20   if pid == 0:\n\
                  \x20       try: os.unlink(path)\n\
                  \x20       except FileNotFoundError: pass\n\
                  \x20       s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen()\n\
                  \x20       time.sleep(300); os._exit(0)\n\
                  \x20   os.waitpid(pid, 0)\n\
                  \x20   time.sleep(1)\n";
    let supervisor = HeldBy {
        child: Command::new("python3")
            .args(["-c", script, arg(&path)])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let first = loop {
        let children = children_of(supervisor.pid());
        if children.len() == 1 && UnixStream::connect(&path).is_ok() {
            break children[0];
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (doc, output) = json(&["kill", "--respawn-window", "30", arg(&path)]);
    // Respawned: not done, exit 4.
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(doc["outcome"], "respawned", "{doc:#}");
    assert_eq!(doc["targets"][0]["pid"], first);
    let respawn = &doc["respawns"][0];
    let newcomer = respawn["pid"].as_u64().unwrap();
    assert_ne!(newcomer, u64::from(first));
    assert!(
        children_of(supervisor.pid()).contains(&(newcomer as u32)),
        "{doc:#}"
    );
    assert_eq!(respawn["parent_pid"], supervisor.pid(), "{doc:#}");
    assert_eq!(respawn["parent_command"], "python3");
    assert_eq!(respawn["command"], "python3");
    assert_eq!(respawn["port"], Value::Null);
    assert_eq!(respawn["inherited"], false, "it bound a socket of its own");
    // The text names it the same way.
    let second = newcomer as u32;
    let output = lsport(["kill", "--respawn-window", "30", arg(&path)]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains(&format!("sent TERM to pid {second}")), "{out}");
    assert!(
        out.contains("respawned: pid ")
            && out.contains(&format!("(python3) took {}", path.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "its parent, pid {} (python3), may be what restarts it",
            supervisor.pid()
        )),
        "{out}"
    );
    assert!(out.contains("was bound again"), "{out}");
}

#[test]
fn a_path_that_is_not_utf8_is_taken_raw_and_printed_escaped() {
    use std::ffi::{OsStr, OsString};
    let Some(tmp) = PrivateTmpfs::new("not_utf8") else {
        return;
    };
    let mut raw = tmp.dir.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/bad\xff.sock");
    let path = PathBuf::from(OsStr::from_bytes(&raw));
    let listener = UnixListener::bind(&path).unwrap();
    let server = hold(&[fd_of(&listener)]);
    drop(listener);
    let shown = format!("{}/bad\\xff.sock", tmp.dir.display());
    let with = |args: &[&str]| -> Vec<OsString> {
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push(path.clone().into_os_string());
        all
    };
    // The probe: found by its file, the name escaped.
    let output = lsport(with(&[]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains(&format!("{shown}: IN USE")), "{out}");
    assert!(!out.as_bytes().contains(&0xff));
    assert!(out.contains(&format!("  {}  ", server.pid())), "{out}");
    // JSON: the name with the byte replaced, matched by the file.
    let output = lsport(with(&["--json"]));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["unix"]["targets"][0]["matched_by"], "file", "{doc:#}");
    assert!(
        doc["unix"]["targets"][0]["target"]
            .as_str()
            .unwrap()
            .ends_with("/bad\u{fffd}.sock")
    );
    // why, wait and kill take it too.
    let output = lsport(with(&["why"]));
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stdout(&output).contains(&shown), "{}", stdout(&output));
    let output = lsport(with(&["wait", "--listening"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(&shown), "{}", stdout(&output));
    let output = lsport(with(&["kill", "-n"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("would send TERM to pid {}", server.pid())),
        "{}",
        stdout(&output)
    );
    // Anything else that is not UTF-8 is no port: one line, exit 2.
    let output = lsport([OsStr::from_bytes(b"80\xff")]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("not UTF-8"), "{}", stderr(&output));
    assert!(!stderr(&output).as_bytes().contains(&0xff));
}
