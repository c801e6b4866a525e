//! Shared helpers for black-box tests: a private network namespace for
//! the calling test thread, sockets held by real processes, and a way to
//! run the built binary inside that namespace.
//!
//! A network namespace belongs to a thread, so each test calls
//! `private_netns()` on its own thread; sockets it creates and processes
//! it spawns afterwards live in that namespace.

#![allow(dead_code)]

pub mod schema;

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, listen, setsockopt,
    socket, sockopt,
};

/// Moves the calling thread into a new network namespace with `lo` up.
/// Returns false, after saying so on the terminal, when that is not
/// possible (not root, no user namespaces). With LSPORT_REQUIRE_NETNS=1
/// (as CI sets it) a missing namespace fails the test instead.
#[must_use]
pub fn private_netns(test: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("needs root to create a network namespace".to_string())
    } else if let Err(err) = unshare(CloneFlags::CLONE_NEWNET) {
        Some(format!("unshare(CLONE_NEWNET) failed: {err}"))
    } else {
        None
    };
    if let Some(reason) = reason {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: {reason}, and LSPORT_REQUIRE_NETNS is set");
        }
        // Written straight to stderr, past the test harness's capture,
        // so that a skip is always visible.
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
        return false;
    }
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("running ip(8)");
    assert!(status.success(), "ip link set lo up failed");
    true
}

/// Sets a sysctl of the calling thread's network namespace.
pub fn sysctl(name: &str, value: &str) {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::write(&path, value).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// The inode of the calling thread's network namespace.
pub fn netns_inode() -> u64 {
    let link = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let text = link.to_str().unwrap();
    text.trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

pub fn lsport_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lsport"))
}

/// Runs lsport with a clean environment (so NO_COLOR and the like from
/// the developer's shell do not leak in).
pub fn lsport<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    lsport_command(args).output().expect("running lsport")
}

pub fn lsport_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(lsport_path());
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    command
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs lsport as root without CAP_SYS_PTRACE, as in Docker's default
/// capability set: other processes' /proc/PID/fd opens, but each link is
/// refused. Nor has it CAP_BPF and CAP_PERFMON (Docker's set lacks them
/// too), with which the kernel's walk would read every fd table.
pub fn lsport_without_ptrace(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--bounding-set",
            "-sys_ptrace,-bpf,-perfmon",
            "--inh-caps",
            "-sys_ptrace,-bpf,-perfmon",
            "--",
        ])
        .arg(lsport_path())
        .args(args)
        .env_clear()
        .output()
        .expect("running setpriv")
}

/// Runs `lsport --json ARGS` and parses the document.
pub fn lsport_json(args: &[&str]) -> (serde_json::Value, Output) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = lsport(&all);
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "lsport --json {args:?} printed no JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (value, output)
}

pub fn tcp4_listener(port: u16) -> OwnedFd {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
    listen(&fd, Backlog::new(16).unwrap()).unwrap();
    fd
}

/// A TCP socket on [::]:port or [::1]:port with IPV6_V6ONLY as given.
pub fn tcp6_socket(port: u16, loopback: bool, v6only: bool, listening: bool) -> OwnedFd {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::Ipv6V6Only, &v6only).unwrap();
    let address = if loopback {
        std::net::Ipv6Addr::LOCALHOST
    } else {
        std::net::Ipv6Addr::UNSPECIFIED
    };
    let sockaddr = SockaddrIn6::from(std::net::SocketAddrV6::new(address, port, 0, 0));
    bind(fd.as_raw_fd(), &sockaddr).unwrap();
    if listening {
        listen(&fd, Backlog::new(16).unwrap()).unwrap();
    }
    fd
}

/// A TCP socket that is bound to 127.0.0.1:port and nothing more.
pub fn tcp4_bound_only(port: u16) -> OwnedFd {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
    fd
}

/// A connection whose server accepted it and then exited while its
/// client stays: the server's end is left to the kernel in FIN_WAIT2,
/// with no process and no inode (an orphan), until tcp_fin_timeout of
/// the calling thread's namespace. The listener goes with the server.
/// Returns the client's end, to keep open as long as the orphan is
/// wanted as it is.
pub fn orphaned_connection(port: u16) -> std::net::TcpStream {
    let listener = std::net::TcpListener::from(tcp4_listener(port));
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let server = hold(&[listener.as_raw_fd(), accepted.as_raw_fd()]);
    drop((listener, accepted));
    // The server exits: its last fds close, its end sends FIN, the
    // client's kernel acknowledges it.
    drop(server);
    for _ in 0..500 {
        if tcp_states_on(port).contains(&(FIN_WAIT2, 0)) {
            return client;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!(
        "no orphaned FIN_WAIT2 connection on port {port}: {:?}",
        tcp_states_on(port)
    );
}

/// The kernel's number for FIN_WAIT2.
const FIN_WAIT2: u8 = 5;

/// (state, inode) of every IPv4 TCP socket whose local port is `port`
/// in the calling thread's namespace, from /proc/thread-self/net/tcp.
fn tcp_states_on(port: u16) -> Vec<(u8, u64)> {
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            (u16::from_str_radix(local_port, 16).ok()? == port).then_some(())?;
            let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((state, inode))
        })
        .collect()
}

/// A process that holds the given sockets, as fds 10, 11, ... It is
/// killed when dropped.
pub struct HeldBy {
    pub child: Child,
}

impl HeldBy {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HeldBy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const FIRST_HELD_FD: RawFd = 10;

/// Starts `program` (default: sleep) holding `fds`.
pub fn hold(fds: &[RawFd]) -> HeldBy {
    hold_with(Path::new("sleep"), fds)
}

pub fn hold_with(program: &Path, fds: &[RawFd]) -> HeldBy {
    hold_running(program, &["300"], fds)
}

/// Starts `program ARGS` holding `fds` as fds 10, 11, ...
pub fn hold_running(program: &Path, args: &[&str], fds: &[RawFd]) -> HeldBy {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    pass_fds(&mut command, fds);
    let child = command.spawn().expect("starting a holder process");
    wait_until_execed(child.id(), program);
    HeldBy { child }
}

/// Makes `command`'s process keep `fds` open across exec, as fds 10,
/// 11, ...
pub fn pass_fds(command: &mut Command, fds: &[RawFd]) {
    let fds = fds.to_vec();
    let mut staged = fds.clone();
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and
    // exec, and no allocation: `staged` is written in place.
    unsafe {
        command.pre_exec(move || {
            // First move every socket above the targets, so that placing
            // one on fd 10+i cannot close another that happens to sit
            // there, and so that dup2 never meets a socket already in
            // place (it would do nothing and leave it close-on-exec).
            for (slot, fd) in staged.iter_mut().zip(&fds) {
                *slot = libc_dup_above(*fd, STAGING_FD);
                if *slot < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in staged.iter().enumerate() {
                // dup2 clears FD_CLOEXEC on the new descriptor.
                if libc_dup2(*fd, FIRST_HELD_FD + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Where sockets wait, close-on-exec, before they are placed.
const STAGING_FD: RawFd = 1000;

/// fcntl(fd, F_DUPFD_CLOEXEC, min): a close-on-exec copy at or above `min`.
fn libc_dup_above(fd: RawFd, min: RawFd) -> i32 {
    const F_DUPFD_CLOEXEC: i32 = 1030;
    unsafe extern "C" {
        fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    }
    // SAFETY: plain system call on descriptors we own.
    unsafe { fcntl(fd, F_DUPFD_CLOEXEC, min) }
}

fn libc_dup2(from: RawFd, to: RawFd) -> i32 {
    unsafe extern "C" {
        fn dup2(oldfd: i32, newfd: i32) -> i32;
    }
    // SAFETY: plain system call on descriptors we own.
    unsafe { dup2(from, to) }
}

/// A holder is only useful once it runs the new program: before exec its
/// comm and fds are still those of the test binary.
fn wait_until_execed(pid: u32, program: &Path) {
    let name = program.file_name().unwrap().as_encoded_bytes();
    let expected: Vec<u8> = name.iter().take(15).copied().collect();
    for _ in 0..500 {
        if let Ok(mut comm) = std::fs::read(format!("/proc/{pid}/comm")) {
            comm.pop();
            if comm == expected {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("holder {pid} did not start {}", program.display());
}

/// A directory under the system temp dir that everyone may enter (so a
/// binary copied into it runs as another user), removed on drop.
pub struct OpenTempDir {
    pub path: PathBuf,
}

impl OpenTempDir {
    pub fn new(tag: &str) -> OpenTempDir {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("lsport-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        OpenTempDir { path }
    }
}

impl Drop for OpenTempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The sockets in a JSON report whose local port is `port`.
pub fn sockets_on(doc: &serde_json::Value, port: u64) -> Vec<serde_json::Value> {
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["local"]["port"].as_u64() == Some(port))
        .cloned()
        .collect()
}

/// (pid, fd) of every holder of a JSON socket, sorted.
pub fn holder_pids(socket: &serde_json::Value) -> Vec<(u64, u64)> {
    let mut pids: Vec<(u64, u64)> = socket["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].as_u64().unwrap(), h["fd"].as_u64().unwrap()))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `program` runs (`program --version`); when it does not, says
/// so on the terminal and the test is skipped, or fails with
/// LSPORT_REQUIRE_NETNS=1 (CI installs what the tests need).
#[must_use]
pub fn tool_available(test: &str, program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: {program} is missing, and LSPORT_REQUIRE_NETNS is set");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {program} is not installed"
        );
    }
    found
}

/// The cgroup v2 mount, from this process's mount table.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let point = before.split(' ').nth(4)?;
        after.starts_with("cgroup2 ").then(|| PathBuf::from(point))
    })
}

/// The cgroup v2 mount, or None after saying why (a failure with
/// LSPORT_REQUIRE_NETNS=1).
pub fn cgroup2_mount_for(test: &str) -> Option<PathBuf> {
    let mount = cgroup2_mount();
    if mount.is_none() {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: no cgroup v2 mount, and LSPORT_REQUIRE_NETNS is set");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: no cgroup v2 mount");
    }
    mount
}

/// A cgroup made under the cgroup v2 mount, removed on drop: its
/// processes must be gone by then (the last may still be on its way
/// out), and cgroups made below it dropped first.
pub struct TestCgroup {
    /// Its directory under the mount.
    pub dir: PathBuf,
    /// Its path in the hierarchy (`/a.slice/b.service`), as
    /// /proc/PID/cgroup names it.
    pub path: String,
}

impl TestCgroup {
    /// Makes `path` (`/a.slice/b.service`) under `mount`.
    pub fn new(mount: &Path, path: &str) -> TestCgroup {
        let dir = mount.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup {
            dir,
            path: path.to_string(),
        }
    }

    /// Moves a running process into it.
    pub fn move_in(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.path));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..400 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Runs `program ARGS` in the calling thread's network namespace, and
/// fails the test if it fails (`nft add rule ...`, `iptables ...`).
pub fn run_tool(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A copy of lsport that user 65534 may run, in a directory of its own.
pub fn binary_for_nobody(tag: &str) -> (OpenTempDir, PathBuf) {
    let dir = OpenTempDir::new(tag);
    let binary = dir.path.join("lsport");
    std::fs::copy(lsport_path(), &binary).unwrap();
    (dir, binary)
}

/// Runs `binary ARGS` as user and group 65534, without capabilities.
/// A copy just made may be busy for a moment (a child forked by another
/// test while it was written keeps it open for writing until it execs):
/// that is tried again.
pub fn as_nobody(binary: &Path, args: &[&str]) -> Output {
    for _ in 0..200 {
        let output = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(binary)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .expect("running setpriv");
        let busy = output.status.code() == Some(126)
            && String::from_utf8_lossy(&output.stderr).contains("Text file busy");
        if !busy {
            return output;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} stayed busy", binary.display());
}

/// A process that holds `fd` (as fd 10) under a command line that
/// mimics Docker's `docker-proxy` for `port`: python3, started with
/// argv[0] `/usr/bin/docker-proxy` and docker-proxy's flags after its
/// own (it ignores them). Killed when dropped.
pub fn docker_proxy_like(fd: RawFd, port: u16) -> HeldBy {
    let port = port.to_string();
    // The interpreter itself: a wrapper script (pyenv's shim) would
    // start it again under its own name.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3");
    let mut command = Command::new(python);
    command
        .arg0("/usr/bin/docker-proxy")
        .args(["-c", "import time; time.sleep(300)"])
        .args(["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", &port])
        .args(["-container-ip", "172.17.0.2", "-container-port", "80"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    pass_fds(&mut command, &[fd]);
    let held = HeldBy {
        child: command.spawn().expect("starting python3"),
    };
    // Until it has exec'd: its command line is then docker-proxy's.
    let pid = held.pid();
    for _ in 0..1000 {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"/usr/bin/docker-proxy\0") {
            return held;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("python3 as docker-proxy did not start");
}

/// The nat rules dockerd writes for `docker run -p 8081:80` with the
/// userland proxy off, as arguments to iptables (nft or legacy): a DOCKER
/// chain jumped to from PREROUTING and OUTPUT for local addresses, and
/// the DNAT of 8081 to the container's port 80.
pub const DOCKER_PUBLISHES_8081: [&[&str]; 5] = [
    &["-t", "nat", "-N", "DOCKER"],
    &[
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-m",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "-j",
        "DOCKER",
    ],
    &[
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "!",
        "-d",
        "127.0.0.0/8",
        "-m",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "-j",
        "DOCKER",
    ],
    &["-t", "nat", "-A", "DOCKER", "-i", "docker0", "-j", "RETURN"],
    &[
        "-t",
        "nat",
        "-A",
        "DOCKER",
        "!",
        "-i",
        "docker0",
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        "8081",
        "-j",
        "DNAT",
        "--to-destination",
        "172.17.0.2:80",
    ],
];

/// Leaves a socket file at `path` with nothing bound to it (a stale
/// file): the socket is bound in a child process that then exits. Bound
/// and closed here, it could outlive the close for a moment in a
/// process another test thread forked meanwhile, whose copy of the fd
/// lasts until it execs.
pub fn stale_socket_file(path: &Path) {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    let address = nix::sys::socket::UnixAddr::new(path).unwrap();
    // SAFETY: the child calls only async-signal-safe functions (socket,
    // bind, _exit) before it exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let bound = fd >= 0
                && libc::bind(
                    fd,
                    address.as_ptr().cast(),
                    nix::sys::socket::SockaddrLike::len(&address),
                ) == 0;
            libc::_exit(if bound { 0 } else { 1 });
        },
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).unwrap();
            assert_eq!(
                status,
                WaitStatus::Exited(child, 0),
                "binding {path:?} in a child process"
            );
        }
    }
}
