//! The kernel's walk of fd tables (a BPF `task_file` iterator) against
//! a walk of /proc done here: every (inode, pid, fd) of real processes
//! must come out of both, for plain holders, a thread with an fd table
//! of its own, a process whose leader thread exited, processes in
//! another pid namespace, processes exiting during the walk, and a few
//! processes holding thousands of sockets; with the kernel's inode
//! filter and without it. And who may use it: a process without CAP_BPF
//! and CAP_PERFMON gets the typed refusal, one with both sees root's
//! processes.
//!
//! The holders are this test binary run again with `LSPORT_TEST_ROLE`
//! set: a constructor below runs the role before the test harness
//! starts, so the role owns the main thread (the leader that exits) and
//! can fork while it has no other thread. A role prints `ready` once its
//! sockets are in place and exits when its stdin closes.
//!
//! The command itself, `lsport -a --json`, must name the same holders
//! with `--holders kernel`, `--holders proc` and, without CAP_BPF and
//! CAP_PERFMON, with auto (which then walks /proc without a word).
//!
//! Needs root (CAP_BPF, CAP_PERFMON, namespaces). Where the kernel's walk
//! is unavailable the tests say so and skip, unless LSPORT_REQUIRE_BPF
//! is set (CI sets it), when they fail.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lsport::holders::kernel::{SocketFd, Unavailable, kernel_fd_walk};

/// (inode, pid, fd), ordered by inode.
type Triple = (u64, u32, u32);

const ROLE: &str = "LSPORT_TEST_ROLE";

// Runs a role instead of the tests when the binary is started as one.
#[used]
#[unsafe(link_section = ".init_array")]
static RUN_ROLE: extern "C" fn() = run_role_if_asked;

extern "C" fn run_role_if_asked() {
    if let Some(role) = std::env::var_os(ROLE) {
        roles::run(&role.to_string_lossy());
    }
}

/// What a holder does, in its own process.
mod roles {
    use std::io::Write;
    use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
    use std::sync::mpsc;

    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket, socketpair,
    };

    pub fn run(role: &str) -> ! {
        match role {
            "plain" => plain(),
            "own-table" => own_table(),
            "leader-exits" => leader_exits(),
            "pid-namespace" => pid_namespace(),
            "churn" => churn(),
            "many" => many(),
            "load" => load(),
            "walk" => walk(),
            _ => {
                eprintln!("unknown role {role}");
                exit(2)
            }
        }
    }

    /// Ends the whole process without running anything of the harness.
    fn exit(code: i32) -> ! {
        // SAFETY: _exit ends the process; nothing runs after it.
        unsafe { libc::_exit(code) }
    }

    fn say(line: &str) {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Blocks until the test closes stdin, then ends the process.
    fn wait_for_eof() -> ! {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a local buffer of the length given.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0
                || (n < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
            {
                exit(0)
            }
        }
    }

    fn tcp_listener() -> OwnedFd {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        listen(&fd, Backlog::new(8).unwrap()).unwrap();
        fd
    }

    fn udp() -> OwnedFd {
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::empty(),
            None,
        )
        .unwrap()
    }

    /// A UDP socket bound to a port of the kernel's choosing: one that
    /// sock_diag lists.
    fn bound_udp() -> OwnedFd {
        let fd = udp();
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        fd
    }

    fn unix_pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::empty(),
        )
        .unwrap()
    }

    /// Keeps an fd open for the rest of the process.
    fn keep(fd: OwnedFd) -> RawFd {
        fd.into_raw_fd()
    }

    fn dup_to(fd: RawFd, target: RawFd) {
        // SAFETY: dup2 on descriptors this process owns.
        assert!(unsafe { libc::dup2(fd, target) } == target);
    }

    /// Sockets of several kinds, a pipe and a file (which are no
    /// sockets), and one socket under a second fd number.
    fn plain() -> ! {
        let listener = keep(tcp_listener());
        keep(udp());
        let (a, b) = unix_pair();
        keep(a);
        keep(b);
        dup_to(listener, 100);
        let (r, w) = nix::unistd::pipe().unwrap();
        keep(r);
        keep(w);
        keep(std::fs::File::open("/dev/null").unwrap().into());
        say("ready");
        wait_for_eof()
    }

    /// A thread that unshares its fd table, closes one socket in it,
    /// opens another and moves a third to a new number: its table and
    /// its leader's now differ.
    fn own_table() -> ! {
        let only_leader = keep(udp());
        let both = keep(tcp_listener());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: unshare of this thread's own fd table.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_FILES) }, 0);
            // SAFETY: closes this thread's copy only.
            unsafe { libc::close(only_leader) };
            keep(bound_udp());
            dup_to(both, 200);
            tx.send(()).unwrap();
            wait_for_eof()
        });
        rx.recv().unwrap();
        say("ready");
        wait_for_eof()
    }

    /// The main thread exits (only it: SYS_exit, not exit_group) while
    /// another thread keeps the process and its sockets.
    fn leader_exits() -> ! {
        keep(tcp_listener());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            keep(udp());
            tx.send(()).unwrap();
            wait_for_eof()
        });
        rx.recv().unwrap();
        say("ready");
        // SAFETY: ends the calling thread only; the other goes on.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!("SYS_exit returned")
    }

    /// A new pid namespace: its pid 1 and pid 2 hold sockets. This
    /// process (outside it) holds none.
    fn pid_namespace() -> ! {
        use nix::unistd::{ForkResult, fork, pipe, read, write};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).unwrap();
        let (ready_r, ready_w) = pipe().unwrap();
        // SAFETY: this process has one thread (the harness has not
        // started), and the child only makes sockets and waits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                assert_eq!(std::process::id(), 1);
                keep(tcp_listener());
                keep(udp());
                let (inner_r, inner_w) = pipe().unwrap();
                // SAFETY: as above, one thread.
                if let ForkResult::Child = unsafe { fork() }.unwrap() {
                    keep(udp());
                    let (a, b) = unix_pair();
                    keep(a);
                    keep(b);
                    write(&inner_w, b"x").unwrap();
                    wait_for_eof()
                }
                read(&inner_r, &mut [0u8; 1]).unwrap();
                write(&ready_w, b"x").unwrap();
                wait_for_eof()
            }
            ForkResult::Parent { .. } => {
                read(&ready_r, &mut [0u8; 1]).unwrap();
                say("ready");
                wait_for_eof()
            }
        }
    }

    /// Forks children that open sockets and exit within a few
    /// milliseconds, four at a time, until stdin closes.
    fn churn() -> ! {
        use nix::unistd::{ForkResult, fork};
        keep(tcp_listener());
        say("ready");
        let mut round = 0u64;
        loop {
            let mut poll = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polls one pollfd, without waiting.
            if unsafe { libc::poll(&mut poll, 1, 0) } != 0 {
                exit(0);
            }
            let mut children = Vec::new();
            for i in 0..4u64 {
                // SAFETY: one thread; the child makes sockets, sleeps, exits.
                match unsafe { fork() }.unwrap() {
                    ForkResult::Child => {
                        for _ in 0..10 {
                            keep(bound_udp());
                        }
                        let ms = (round + i) % 3;
                        std::thread::sleep(std::time::Duration::from_millis(ms));
                        exit(0)
                    }
                    ForkResult::Parent { child } => children.push(child),
                }
            }
            for child in children {
                let _ = nix::sys::wait::waitpid(child, None);
            }
            round += 1;
        }
    }

    /// `LSPORT_TEST_SOCKETS` sockets, some under two fd numbers, then
    /// two forked workers that share them all (as a preforking server's).
    fn many() -> ! {
        let count: u64 = std::env::var("LSPORT_TEST_SOCKETS")
            .unwrap()
            .parse()
            .unwrap();
        let limit = libc::rlimit {
            rlim_cur: count * 2 + 1000,
            rlim_max: count * 2 + 1000,
        };
        // SAFETY: sets this process's own limit from a local struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let mut made = 0;
        while made < count {
            let (a, b) = unix_pair();
            let a = keep(a);
            keep(b);
            keep(udp());
            if made % 10 == 0 {
                // SAFETY: dup of an fd this process owns.
                unsafe { libc::dup(a) };
            }
            made += 3;
        }
        for _ in 0..2 {
            // SAFETY: one thread; the worker only waits.
            if let nix::unistd::ForkResult::Child = unsafe { nix::unistd::fork() }.unwrap() {
                wait_for_eof()
            }
        }
        say("ready");
        wait_for_eof()
    }

    /// `LSPORT_TEST_SOCKETS` TCP listeners on 127.0.0.1, each with one
    /// connection to it (both ends kept), and a bound UDP socket each;
    /// then two forked workers that share them all.
    fn load() -> ! {
        let count: u64 = std::env::var("LSPORT_TEST_SOCKETS")
            .unwrap()
            .parse()
            .unwrap();
        for _ in 0..count {
            let listener = std::net::TcpListener::from(tcp_listener());
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            keep(listener.into());
            keep(client.into());
            keep(accepted.into());
            keep(bound_udp());
        }
        for _ in 0..2 {
            // SAFETY: one thread; the worker only waits.
            if let nix::unistd::ForkResult::Child = unsafe { nix::unistd::fork() }.unwrap() {
                wait_for_eof()
            }
        }
        say("ready");
        wait_for_eof()
    }

    /// Installs a seccomp filter under which bpf(2) fails with `errno`
    /// and every other call is allowed (classic BPF: load the syscall
    /// number, compare, return).
    fn refuse_bpf(errno: u32) {
        const LD_W_ABS: u16 = 0x20;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        const RET_ERRNO: u32 = 0x0005_0000;
        const RET_ALLOW: u32 = 0x7fff_0000;
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut filter = [
            op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
            op(JEQ_K, 0, 1, libc::SYS_bpf as u32),
            op(RET_K, 0, 0, RET_ERRNO | errno),
            op(RET_K, 0, 0, RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: prctl with a filter that outlives the call (the kernel
        // copies it).
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog),
                0
            );
        }
    }

    /// Walks once and says how it went: `ok COUNT PIDS` or `unavailable
    /// CODE MESSAGE`. `LSPORT_TEST_INODES` (comma-separated) is the
    /// filter; with `LSPORT_TEST_SECCOMP_ERRNO`, a seccomp filter first
    /// makes bpf(2) fail with that errno, as a container profile would.
    fn walk() -> ! {
        if let Ok(errno) = std::env::var("LSPORT_TEST_SECCOMP_ERRNO") {
            refuse_bpf(errno.parse().unwrap());
        }
        let filter: Option<Vec<u64>> = std::env::var("LSPORT_TEST_INODES")
            .ok()
            .map(|s| s.split(',').map(|i| i.parse().unwrap()).collect());
        match lsport::holders::kernel::kernel_fd_walk(filter.as_deref()) {
            Ok(found) => {
                let pids: Vec<String> = found.iter().map(|f| f.pid.to_string()).collect();
                say(&format!("ok {} {}", found.len(), pids.join(",")))
            }
            Err(err) => say(&format!("unavailable {} {err}", err.code())),
        }
        exit(0)
    }
}

/// A running role; dropping it closes its stdin (every process of the
/// role exits) and reaps it.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    fn start(role: &str, env: &[(&str, &str)]) -> Holder {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(ROLE, role)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("starting a holder");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("role {role} not ready after 120 s"));
        assert_eq!(line.trim(), "ready", "role {role}");
        Holder { child, stdin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the kernel's walk runs here; says why not and skips, or
/// fails under LSPORT_REQUIRE_BPF.
fn kernel_walk_available(test: &str) -> bool {
    if !common::private_netns(test) {
        return false;
    }
    match kernel_fd_walk(Some(&[0])) {
        Ok(_) => true,
        Err(err) => {
            if std::env::var_os("LSPORT_REQUIRE_BPF").is_some() {
                panic!(
                    "{test}: the kernel's walk is unavailable ({err}), and LSPORT_REQUIRE_BPF is set: {err:?}"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: the kernel's walk is unavailable: {err}"
            );
            false
        }
    }
}

/// `pids` and every process descended from them, from /proc/*/stat.
fn with_descendants(pids: &[u32]) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name's closing parenthesis: state, ppid.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = BTreeSet::new();
    let mut todo = pids.to_vec();
    while let Some(pid) = todo.pop() {
        if found.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    found
}

/// Every socket fd of these processes, from the fd table of each of
/// their threads (`/proc/PID/task/TID/fd`): the leader's, and any a
/// thread has of its own.
fn proc_walk(pids: &BTreeSet<u32>) -> BTreeSet<Triple> {
    let mut found = BTreeSet::new();
    for &pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(fds) = std::fs::read_dir(task.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let target = target.to_string_lossy();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    let fd_number = fd.file_name().to_string_lossy().parse().unwrap();
                    found.insert((inode.parse().unwrap(), pid, fd_number));
                }
            }
        }
    }
    found
}

fn triples(found: &[SocketFd]) -> BTreeSet<Triple> {
    found.iter().map(|f| (f.inode, f.pid, f.fd)).collect()
}

/// The kernel's walk, unfiltered and filtered, against the /proc walk
/// of `pids` and their descendants. The filter leaves out one inode,
/// which must then be missing too. Returns what /proc found.
fn assert_same_holders(what: &str, pids: &[u32]) -> BTreeSet<Triple> {
    let scope = with_descendants(pids);
    let truth = proc_walk(&scope);
    assert!(
        !truth.is_empty(),
        "{what}: /proc shows no socket for {scope:?}"
    );

    let everything = kernel_fd_walk(None).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert!(
        everything.windows(2).all(|w| w[0] < w[1]),
        "{what}: not sorted, or repeats"
    );
    let seen: BTreeSet<Triple> = triples(&everything)
        .into_iter()
        .filter(|t| scope.contains(&t.1))
        .collect();
    assert_eq!(seen, truth, "{what}: unfiltered, processes {scope:?}");

    let inodes: BTreeSet<u64> = truth.iter().map(|t| t.0).collect();
    let left_out = *inodes.iter().next().unwrap();
    let asked: Vec<u64> = inodes.iter().copied().filter(|&i| i != left_out).collect();
    let expected: BTreeSet<Triple> = truth.iter().copied().filter(|t| t.0 != left_out).collect();
    let filtered = kernel_fd_walk(Some(&asked)).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(
        triples(&filtered),
        expected,
        "{what}: filtered, processes {scope:?}"
    );
    truth
}

#[test]
fn plain_holders_are_found_with_every_fd() {
    if !kernel_walk_available("plain_holders_are_found_with_every_fd") {
        return;
    }
    let holders = [Holder::start("plain", &[]), Holder::start("plain", &[])];
    let truth = assert_same_holders("plain", &[holders[0].pid(), holders[1].pid()]);
    // Four sockets each (listener, UDP, a unix pair), the listener twice.
    assert_eq!(truth.len(), 10, "{truth:?}");
    assert!(truth.iter().any(|t| t.2 == 100));
}

#[test]
fn a_thread_with_its_own_fd_table_is_walked() {
    if !kernel_walk_available("a_thread_with_its_own_fd_table_is_walked") {
        return;
    }
    let holder = Holder::start("own-table", &[]);
    let truth = assert_same_holders("own table", &[holder.pid()]);
    // The leader's UDP socket and listener, the thread's new UDP socket
    // and the listener again as fd 200, all under the process's pid.
    assert_eq!(
        truth.iter().map(|t| t.0).collect::<BTreeSet<_>>().len(),
        3,
        "{truth:?}"
    );
    assert!(truth.iter().any(|t| t.2 == 200));
    assert!(truth.iter().all(|t| t.1 == holder.pid()));
}

#[test]
fn a_process_whose_leader_exited_is_walked_through_its_thread() {
    if !kernel_walk_available("a_process_whose_leader_exited_is_walked_through_its_thread") {
        return;
    }
    let holder = Holder::start("leader-exits", &[]);
    // The leader is a zombie once it has exited; its thread goes on.
    let stat = format!("/proc/{}/stat", holder.pid());
    let zombie = (0..1200).any(|_| {
        let state = std::fs::read_to_string(&stat).unwrap_or_default();
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie {
            std::thread::sleep(Duration::from_millis(50));
        }
        zombie
    });
    assert!(zombie, "the leader of {} did not exit", holder.pid());
    assert!(
        std::fs::read_dir(format!("/proc/{}/fd", holder.pid())).map_or(true, |d| d.count() == 0),
        "the exited leader still shows fds"
    );
    let truth = assert_same_holders("leader exited", &[holder.pid()]);
    assert_eq!(truth.len(), 2, "{truth:?}");
}

#[test]
fn processes_in_another_pid_namespace_are_named_by_their_pids_here() {
    if !kernel_walk_available("processes_in_another_pid_namespace_are_named_by_their_pids_here") {
        return;
    }
    let holder = Holder::start("pid-namespace", &[]);
    let truth = assert_same_holders("pid namespace", &[holder.pid()]);
    let pids: BTreeSet<u32> = truth.iter().map(|t| t.1).collect();
    // Its pid 1 and pid 2, by the pids this namespace gives them.
    assert_eq!(pids.len(), 2, "{truth:?}");
    assert!(!pids.contains(&holder.pid()) && !pids.contains(&1));
}

#[test]
fn processes_exiting_during_the_walk_do_not_stop_it() {
    if !kernel_walk_available("processes_exiting_during_the_walk_do_not_stop_it") {
        return;
    }
    let stable = Holder::start("plain", &[]);
    let _churn = Holder::start("churn", &[]);
    let stable_scope = with_descendants(&[stable.pid()]);
    let truth = proc_walk(&stable_scope);
    let inodes: Vec<u64> = truth.iter().map(|t| t.0).collect();
    let mut churn_seen = 0;
    let mut walks = 0;
    while walks < 30 || (churn_seen == 0 && walks < 1000) {
        walks += 1;
        let all = triples(&kernel_fd_walk(None).unwrap_or_else(|e| panic!("walk {walks}: {e:?}")));
        assert!(
            truth.is_subset(&all),
            "walk {walks}: a living holder is missing"
        );
        let pids: BTreeSet<u32> = all.iter().map(|t| t.1).collect();
        churn_seen += pids
            .iter()
            .filter(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            .count();
        let filtered =
            kernel_fd_walk(Some(&inodes)).unwrap_or_else(|e| panic!("walk {walks}: {e:?}"));
        assert_eq!(triples(&filtered), truth, "walk {walks}: filtered");
    }
    // The walks met processes that were gone by the time they ended.
    assert!(churn_seen > 0, "{walks} walks never met an exiting process");
}

#[test]
fn thousands_of_sockets_in_several_processes_agree() {
    if !kernel_walk_available("thousands_of_sockets_in_several_processes_agree") {
        return;
    }
    let holders: Vec<Holder> = (0..3)
        .map(|_| Holder::start("many", &[("LSPORT_TEST_SOCKETS", "6000")]))
        .collect();
    let pids: Vec<u32> = holders.iter().map(Holder::pid).collect();
    let truth = assert_same_holders("many", &pids);
    // Three holders and their two workers each, 6,000 sockets and 200
    // copies apiece.
    assert_eq!(truth.len(), 9 * 6200, "{} fds", truth.len());
    // That filter was too large for the kernel's map; a few thousand
    // inodes still go into it.
    let inodes: BTreeSet<u64> = truth.iter().map(|t| t.0).take(4000).collect();
    let asked: Vec<u64> = inodes.iter().copied().collect();
    let found = kernel_fd_walk(Some(&asked)).unwrap();
    let expected: BTreeSet<Triple> = truth
        .iter()
        .copied()
        .filter(|t| inodes.contains(&t.0))
        .collect();
    assert_eq!(triples(&found), expected);
}

/// Runs this binary's `walk` role under setpriv with `args`, from a
/// copy that any user may run.
fn walk_as(args: &[&str], inodes: &str) -> String {
    let dir = common::OpenTempDir::new("kernel-walk");
    let copy = dir.path.join("kernel_holders");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new("setpriv")
        .args(args)
        .arg("--")
        .arg(Path::new(&copy))
        .env(ROLE, "walk")
        .env("LSPORT_TEST_INODES", inodes)
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn capabilities_decide_who_may_walk() {
    if !kernel_walk_available("capabilities_decide_who_may_walk") {
        return;
    }
    let holder = Holder::start("plain", &[]);
    let inodes: Vec<String> = proc_walk(&with_descendants(&[holder.pid()]))
        .iter()
        .map(|t| t.0.to_string())
        .collect();
    let inodes = inodes.join(",");
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];

    let plain = walk_as(&[&nobody[..], &["--inh-caps=-all"]].concat(), &inodes);
    assert!(plain.starts_with("unavailable not-permitted "), "{plain}");
    let bpf_only = walk_as(
        &[&nobody[..], &["--inh-caps=+bpf", "--ambient-caps=+bpf"]].concat(),
        &inodes,
    );
    assert!(
        bpf_only.starts_with("unavailable not-permitted "),
        "{bpf_only}"
    );

    // With both, another user's (root's) fds are seen.
    let both = walk_as(
        &[
            &nobody[..],
            &["--inh-caps=+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon"],
        ]
        .concat(),
        &inodes,
    );
    assert_eq!(
        both,
        format!("ok 5 {}", vec![holder.pid().to_string(); 5].join(","))
    );
}

#[test]
fn a_seccomp_profile_that_refuses_bpf_is_a_typed_reason() {
    if !kernel_walk_available("a_seccomp_profile_that_refuses_bpf_is_a_typed_reason") {
        return;
    }
    for (errno, code) in [(libc::EPERM, "not-permitted"), (libc::ENOSYS, "no-bpf")] {
        let output = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, "walk")
            .env("LSPORT_TEST_SECCOMP_ERRNO", errno.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8(output.stdout).unwrap();
        assert!(
            said.starts_with(&format!("unavailable {code} ")),
            "errno {errno}: {said}"
        );
    }
}

#[test]
fn outside_the_initial_pid_namespace_the_walk_is_unavailable() {
    if !kernel_walk_available("outside_the_initial_pid_namespace_the_walk_is_unavailable") {
        return;
    }
    // The kernel would name holders by the initial namespace's pids, and
    // walk only the caller's namespace.
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--"])
        .arg(std::env::current_exe().unwrap())
        .env(ROLE, "walk")
        .stdin(Stdio::null())
        .output()
        .expect("running unshare(1)");
    let said = String::from_utf8(output.stdout).unwrap();
    assert!(
        said.starts_with("unavailable other-pid-namespace "),
        "{said}"
    );
}

#[test]
fn unavailable_reasons_read_as_one_line() {
    let reason = Unavailable::NotPermitted {
        step: lsport::holders::kernel::Step::LoadProgram,
    };
    assert_eq!(reason.code(), "not-permitted");
    assert!(reason.to_string().contains("CAP_BPF and CAP_PERFMON"));
    assert!(!reason.to_string().contains('\n'));
}

/// Every (inode, pid, fd) a `-a --json` document names, and the walk
/// it says named them.
fn named_holders(output: &std::process::Output, what: &str) -> (BTreeSet<Triple>, String) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {}",
        common::stderr(output)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{what}: no JSON ({e}): {}", common::stderr(output)));
    assert_eq!(doc["hidden_holders"], 0, "{what}");
    let mut found = BTreeSet::new();
    for socket in doc["sockets"].as_array().unwrap() {
        let inode = socket["inode"].as_u64().unwrap();
        // Every socket a file refers to is held here.
        assert!(
            inode == 0 || !socket["holders"].as_array().unwrap().is_empty(),
            "{what}: no holder: {socket}"
        );
        for holder in socket["holders"].as_array().unwrap() {
            let pid = holder["pid"].as_u64().unwrap() as u32;
            let fd = holder["fd"].as_u64().unwrap() as u32;
            found.insert((inode, pid, fd));
        }
    }
    let from = doc["holders_from"].as_str().unwrap_or("null").to_string();
    (found, from)
}

/// `lsport -a --json --holders SOURCE`, as root.
fn lsport_all(source: &str) -> std::process::Output {
    common::lsport(["-a", "--json", "--holders", source])
}

/// `lsport -a --json ARGS` as root without CAP_BPF and CAP_PERFMON.
fn lsport_all_without_bpf(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--bounding-set",
            "-bpf,-perfmon",
            "--inh-caps",
            "-bpf,-perfmon",
            "--",
        ])
        .arg(common::lsport_path())
        .args(["-a", "--json"])
        .args(args)
        .env_clear()
        .output()
        .expect("running setpriv")
}

/// Waits until the leader of `pid` has exited (a zombie while its other
/// thread runs on).
fn wait_for_leader_exit(pid: u32) {
    let stat = format!("/proc/{pid}/stat");
    let zombie = (0..1200).any(|_| {
        let state = std::fs::read_to_string(&stat).unwrap_or_default();
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie {
            std::thread::sleep(Duration::from_millis(50));
        }
        zombie
    });
    assert!(zombie, "the leader of {pid} did not exit");
}

/// The command itself: `-a --json` names the same holders, fd for fd,
/// with the kernel's walk, with the /proc walk, and with auto where
/// lsport lacks CAP_BPF and CAP_PERFMON; over a few hundred sockets in
/// three processes that share them, a thread with its own fd table, a
/// process whose leader exited, and processes in another pid namespace.
#[test]
fn lsport_names_the_same_holders_from_either_walk() {
    if !kernel_walk_available("lsport_names_the_same_holders_from_either_walk") {
        return;
    }
    let load = Holder::start("load", &[("LSPORT_TEST_SOCKETS", "100")]);
    let own_table = Holder::start("own-table", &[]);
    let leader_exits = Holder::start("leader-exits", &[]);
    let pid_namespace = Holder::start("pid-namespace", &[]);
    wait_for_leader_exit(leader_exits.pid());

    let (kernel, from) = named_holders(&lsport_all("kernel"), "--holders kernel");
    assert_eq!(from, "kernel");
    let (proc, from) = named_holders(&lsport_all("proc"), "--holders proc");
    assert_eq!(from, "proc");
    let output = lsport_all_without_bpf(&[]);
    assert_eq!(common::stderr(&output), "", "auto falls back silently");
    let (auto, from) = named_holders(&output, "auto without CAP_BPF");
    assert_eq!(from, "proc");
    // Asked for by name, the kernel's walk is missed in one line.
    let output = lsport_all_without_bpf(&["--holders", "kernel"]);
    let (asked, from) = named_holders(&output, "--holders kernel without CAP_BPF");
    assert_eq!(from, "proc");
    assert_eq!(asked, proc);
    let err = common::stderr(&output);
    assert_eq!(
        err,
        "lsport: --holders kernel: the kernel's walk of fd tables is unavailable \
         (it needs CAP_BPF and CAP_PERFMON, which lsport does not have); \
         holders are named from /proc\n"
    );
    let differences = |a: &BTreeSet<Triple>, b: &BTreeSet<Triple>| {
        let only_a: Vec<_> = a.difference(b).collect();
        let only_b: Vec<_> = b.difference(a).collect();
        format!("only in the first: {only_a:?}; only in the second: {only_b:?}")
    };
    // The same holders of the same sockets. Fd for fd, one difference:
    // /proc's walk reads a thread's own fd table only for sockets left
    // without a holder, so the listener the thread also has as fd 200 is
    // named there by the kernel's walk alone.
    let pairs = |set: &BTreeSet<Triple>| -> BTreeSet<(u64, u32)> {
        set.iter().map(|t| (t.0, t.1)).collect()
    };
    assert!(
        pairs(&kernel) == pairs(&proc),
        "the kernel's walk against /proc's: {}",
        differences(&kernel, &proc)
    );
    let only_kernel: Vec<&Triple> = kernel.difference(&proc).collect();
    assert!(
        proc.is_subset(&kernel)
            && only_kernel
                .iter()
                .all(|t| t.1 == own_table.pid() && t.2 == 200),
        "the kernel's walk against /proc's: {}",
        differences(&kernel, &proc)
    );
    assert!(
        auto == proc,
        "auto without CAP_BPF against /proc's: {}",
        differences(&auto, &proc)
    );

    // 100 listeners, 200 connection ends and 100 UDP sockets, in the
    // load's process and its two workers.
    let load_pids = with_descendants(&[load.pid()]);
    assert_eq!(load_pids.len(), 3);
    let of_load = kernel.iter().filter(|t| load_pids.contains(&t.1)).count();
    assert_eq!(of_load, 3 * 400, "{kernel:?}");
    // The thread's copy of the listener under fd 200, and the UDP
    // socket only the thread's table has (found by /proc's second pass).
    assert!(
        kernel.iter().any(|t| t.1 == own_table.pid() && t.2 == 200),
        "{kernel:?}"
    );
    assert_eq!(
        pairs(&proc)
            .iter()
            .filter(|p| p.1 == own_table.pid())
            .count(),
        2,
        "{proc:?}"
    );
    // The listener of a process whose leader exited.
    assert!(
        kernel.iter().any(|t| t.1 == leader_exits.pid()),
        "{kernel:?}"
    );
    // The other pid namespace's pid 1, by the pid it has here.
    let inner = with_descendants(&[pid_namespace.pid()]);
    assert!(
        kernel
            .iter()
            .any(|t| inner.contains(&t.1) && t.1 != pid_namespace.pid()),
        "{kernel:?}"
    );
}

/// Processes that open bound sockets and exit within milliseconds,
/// while `lsport -a --json --holders kernel` runs again and again:
/// every run answers, no socket is left with a hidden holder (one
/// whose process exited is dropped as closed), and the stable holder
/// is named every time.
#[test]
fn lsport_with_the_kernels_walk_copes_with_processes_exiting() {
    if !kernel_walk_available("lsport_with_the_kernels_walk_copes_with_processes_exiting") {
        return;
    }
    let stable = Holder::start("plain", &[]);
    let _churn = Holder::start("churn", &[]);
    let stable_truth = proc_walk(&with_descendants(&[stable.pid()]));
    for round in 0..20 {
        let what = format!("round {round}");
        let (named, from) = named_holders(&lsport_all("kernel"), &what);
        assert_eq!(from, "kernel", "{what}");
        // The stable holder's listener (twice) and UDP socket: the
        // sockets lsport lists of those /proc shows (not the unix pair).
        let of_stable: BTreeSet<Triple> = named
            .iter()
            .copied()
            .filter(|t| t.1 == stable.pid())
            .collect();
        assert_eq!(of_stable.len(), 2, "{what}: {of_stable:?}");
        assert!(of_stable.is_subset(&stable_truth), "{what}");
    }
}

/// Where /proc refuses pid 1's fd links even to root (a sandbox's init,
/// as on the machines lsport is built on), the kernel's walk reports
/// none of pid 1's fds either. Either walk must then call pid 1's
/// sockets hidden and name pid 1 as unreadable: a socket left without a
/// holder while some table was refused is never said to have none.
/// Runs in the host's network namespace, where pid 1's sockets are;
/// skipped (and said so) where pid 1's fds are readable or it holds no
/// socket.
#[test]
fn sockets_in_a_table_proc_refuses_are_hidden_on_either_walk() {
    let test = "sockets_in_a_table_proc_refuses_are_hidden_on_either_walk";
    let skip = |why: &str| {
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    };
    match std::fs::read_link("/proc/1/fd/0") {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {}
        _ => return skip("pid 1's fd links are readable here"),
    }
    if let Err(err) = kernel_fd_walk(Some(&[0])) {
        if std::env::var_os("LSPORT_REQUIRE_BPF").is_some() {
            panic!("{test}: the kernel's walk is unavailable: {err:?}");
        }
        return skip(&format!("the kernel's walk is unavailable: {err}"));
    }
    for source in ["proc", "kernel"] {
        let output = common::lsport(["-a", "--json", "--holders", source]);
        assert!(output.status.code().is_some_and(|c| c <= 1), "{output:?}");
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(doc["holders_from"], source, "{source}");
        if source == "proc" && doc["hidden_holders"] == 0 {
            return skip("pid 1 holds no socket here");
        }
        let unreadable: Vec<u64> = doc["unreadable_processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        assert!(unreadable.contains(&1), "{source}: {unreadable:?}");
        assert!(doc["hidden_holders"].as_u64().unwrap() >= 1, "{source}");
        let holderless: Vec<&serde_json::Value> = doc["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["inode"] != 0
                    && s["role"] != "time-wait"
                    && s["holders"].as_array().unwrap().is_empty()
                    && s["holders_hidden"] == false
            })
            .collect();
        assert!(holderless.is_empty(), "{source}: {holderless:#?}");
    }
}
