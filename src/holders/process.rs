//! Acting on a process: which signal a name or number means, a pidfd
//! that keeps naming the same process however its pid is reused, and
//! the facts that make lsport refuse to signal it (pid 1 of a pid
//! namespace, a kernel thread, lsport itself or one of its ancestors),
//! and whether it still holds a socket.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;

use nix::sys::signal::Signal as Known;

use crate::error::Error;
use crate::holders::procfs::{self, FdTable};
use crate::sys::ProcRoot;

/// A signal number, 1 to 64: the named ones and the realtime ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// SIGTERM, the default.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// SIGKILL, after the grace period.
    pub const KILL: Signal = Signal(libc::SIGKILL);

    /// `TERM`, `SIGTERM`, `term` or `15`.
    pub fn parse(text: &str) -> Result<Signal, Error> {
        let bad = || {
            Error::Usage(format!(
                "invalid --signal '{text}': a name (TERM, INT, HUP, KILL, USR1...) or a number from 1 to 64"
            ))
        };
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i32>() {
            return if (1..=64).contains(&number) {
                Ok(Signal(number))
            } else {
                Err(bad())
            };
        }
        let upper = trimmed.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        Known::from_str(&name)
            .map(|s| Signal(s as i32))
            .map_err(|_| bad())
    }

    /// Whether the signal is meant to end a process: TERM, INT, QUIT or
    /// KILL. Only these may be followed by SIGKILL: any other (HUP,
    /// USR1, USR2, WINCH...) asks a program to do something and live on,
    /// often to reload, and its holders are expected to keep the port.
    pub fn ends_process(self) -> bool {
        matches!(
            self.0,
            libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGKILL
        )
    }

    /// The name without SIG (`TERM`), or the number for a realtime signal.
    pub fn name(self) -> String {
        match Known::try_from(self.0) {
            Ok(known) => known.as_str().trim_start_matches("SIG").to_string(),
            Err(_) => self.0.to_string(),
        }
    }
}

/// A process held by a pidfd: signals go to it and to no later process
/// that reuses its pid, and its exit can be seen without a pid race.
#[derive(Debug)]
pub struct ProcessHandle {
    pid: u32,
    pidfd: Option<OwnedFd>,
}

impl ProcessHandle {
    /// Opens a pidfd for `pid` (Linux 5.3+); without one, signals go by
    /// pid. Err(ESRCH) when the process is gone.
    pub fn open(pid: u32) -> Result<ProcessHandle, i32> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd
        // or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd >= 0 {
            // SAFETY: the kernel just gave us this fd and nobody else owns it.
            let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            return Ok(ProcessHandle {
                pid,
                pidfd: Some(pidfd),
            });
        }
        match errno() {
            libc::ESRCH => Err(libc::ESRCH),
            _ => Ok(ProcessHandle { pid, pidfd: None }),
        }
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal`; Err carries the errno (EPERM, ESRCH).
    pub fn signal(&self, signal: Signal) -> Result<(), i32> {
        // SAFETY: plain system calls with integer arguments and a null
        // siginfo, which the kernel fills in as kill() would.
        let result = unsafe {
            match &self.pidfd {
                Some(fd) => libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal.0,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                ) as i32,
                None => libc::kill(self.pid as libc::pid_t, signal.0),
            }
        };
        if result == 0 { Ok(()) } else { Err(errno()) }
    }

    /// Whether this user may signal the process (signal 0 checks
    /// without sending): Err(EPERM) when not.
    pub fn may_signal(&self) -> Result<(), i32> {
        self.signal(Signal(0))
    }

    /// Whether the process has exited (a pidfd becomes readable then).
    pub fn exited(&self) -> bool {
        match &self.pidfd {
            Some(fd) => {
                let mut polled = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, no wait.
                unsafe { libc::poll(&mut polled, 1, 0) > 0 }
            }
            None => {
                // SAFETY: signal 0 only checks that the pid exists.
                let alive = unsafe { libc::kill(self.pid as libc::pid_t, 0) } == 0;
                !alive && errno() == libc::ESRCH
            }
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Why lsport will not signal a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Pid 1 of its pid namespace: the namespace dies with it (the host's
    /// init, or a container's).
    InitOfNamespace,
    /// A kernel thread.
    KernelThread,
    /// lsport itself.
    Lsport,
    /// The shell or program that runs lsport, or one above it.
    AncestorOfLsport,
    /// It holds the listener of a systemd socket unit: systemd holds it
    /// too and starts the service again on the next connection, so the
    /// unit is what to stop.
    SocketUnit,
}

impl Refusal {
    /// The stable name in JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Refusal::InitOfNamespace => "pid1",
            Refusal::KernelThread => "kernel_thread",
            Refusal::Lsport => "lsport",
            Refusal::AncestorOfLsport => "ancestor",
            Refusal::SocketUnit => "socket_unit",
        }
    }

    /// Why, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::InitOfNamespace => "pid 1 of its pid namespace",
            Refusal::KernelThread => "a kernel thread",
            Refusal::Lsport => "lsport itself",
            Refusal::AncestorOfLsport => "an ancestor of lsport",
            Refusal::SocketUnit => "it holds a systemd socket unit's listener: stop the unit",
        }
    }
}

/// PF_KTHREAD in the flags of /proc/PID/stat.
const PF_KTHREAD: u64 = 0x0020_0000;

/// What /proc/PID/stat says that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFacts {
    /// The parent's pid.
    pub ppid: u32,
    /// The kernel's per-process flags.
    pub flags: u64,
}

/// Parses /proc/PID/stat: the command in parentheses may hold anything,
/// spaces and parentheses included, so fields are counted after the last
/// ')'. Then come state, ppid, pgrp, session, tty, tpgid, flags.
pub fn parse_stat(text: &str) -> Option<StatFacts> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(StatFacts {
        ppid: fields.get(1)?.parse().ok()?,
        flags: fields.get(6)?.parse().ok()?,
    })
}

/// The facts of `pid`'s stat file, if it still exists.
pub fn stat(root: &ProcRoot, pid: u32) -> Option<StatFacts> {
    parse_stat(&fs::read_to_string(root.path(&format!("{pid}/stat"))).ok()?)
}

/// Whether `pid` is a kernel thread, which holds no file descriptor of
/// its own (its fd directory is closed to other users all the same).
pub fn is_kernel_thread(root: &ProcRoot, pid: u32) -> bool {
    stat(root, pid).is_some_and(|s| s.flags & PF_KTHREAD != 0)
}

/// lsport's own pid and every ancestor's, up to the top of what it sees.
pub fn self_and_ancestors(root: &ProcRoot) -> Vec<u32> {
    let mut chain = vec![std::process::id()];
    let mut pid = std::process::id();
    while let Some(facts) = stat(root, pid) {
        if facts.ppid == 0 || chain.contains(&facts.ppid) {
            break;
        }
        chain.push(facts.ppid);
        pid = facts.ppid;
    }
    chain
}

/// Why `pid` may not be signalled, if it may not. `pid_in_namespace` is
/// its pid in its own pid namespace.
pub fn refusal(
    root: &ProcRoot,
    pid: u32,
    pid_in_namespace: Option<u32>,
    lsport_chain: &[u32],
) -> Option<Refusal> {
    if pid == 1 || pid_in_namespace == Some(1) {
        return Some(Refusal::InitOfNamespace);
    }
    if pid == std::process::id() {
        return Some(Refusal::Lsport);
    }
    if lsport_chain.contains(&pid) {
        return Some(Refusal::AncestorOfLsport);
    }
    if stat(root, pid).is_some_and(|s| s.flags & PF_KTHREAD != 0) {
        return Some(Refusal::KernelThread);
    }
    None
}

/// The socket inodes a process holds, as far as lsport may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldSockets {
    /// Its fd tables were read: these inodes, sorted, once each.
    Read(Vec<u64>),
    /// It is there, but its fds may not be read.
    Unreadable,
    /// It has exited (or the pid names no process).
    Gone,
}

impl HeldSockets {
    /// Whether it holds one of `inodes`. Unknown (unreadable): true, so
    /// as not to skip a process that may still hold the port.
    pub fn holds_any(&self, inodes: &[u64]) -> bool {
        match self {
            HeldSockets::Read(held) => inodes.iter().any(|i| held.binary_search(i).is_ok()),
            HeldSockets::Unreadable => true,
            HeldSockets::Gone => false,
        }
    }
}

/// The socket inodes `pid` holds: its own fd table (`/proc/PID/fd`),
/// and, when that holds none of `expected`, its threads' tables too, as
/// the probe reads them: a thread that unshared its table, or the
/// threads of a process whose main thread has exited, whose
/// `/proc/PID/fd` is then empty while they still hold their fds.
pub fn held_sockets(root: &ProcRoot, pid: u32, expected: &[u64]) -> HeldSockets {
    let Some(proc_dir) = procfs::open_proc(root) else {
        return HeldSockets::Unreadable;
    };
    let mut held: Vec<u64> = Vec::new();
    match procfs::socket_fds(&proc_dir, pid, |inode, _| held.push(inode)) {
        FdTable::Gone => return HeldSockets::Gone,
        FdTable::Unreadable => return HeldSockets::Unreadable,
        FdTable::Read => {}
    }
    if !expected.iter().any(|i| held.contains(i)) {
        if let Ok(tasks) = fs::read_dir(root.path(&format!("{pid}/task"))) {
            for task in tasks.flatten() {
                let tid = task
                    .file_name()
                    .to_str()
                    .and_then(|t| t.parse::<u32>().ok());
                if let Some(tid) = tid.filter(|tid| *tid != pid) {
                    procfs::thread_socket_fds(&proc_dir, pid, tid, |inode, _| held.push(inode));
                }
            }
        }
    }
    held.sort_unstable();
    held.dedup();
    HeldSockets::Read(held)
}

/// The parent of `pid` and its command name, if both can be read.
pub fn parent(root: &ProcRoot, pid: u32) -> Option<(u32, Vec<u8>)> {
    let ppid = stat(root, pid)?.ppid;
    if ppid == 0 {
        return None;
    }
    let mut comm = fs::read(root.path(&format!("{ppid}/comm"))).ok()?;
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    Some((ppid, comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(Signal::parse("TERM").unwrap(), Signal::TERM);
        assert_eq!(Signal::parse("sigkill").unwrap(), Signal::KILL);
        assert_eq!(Signal::parse("hup").unwrap(), Signal(libc::SIGHUP));
        assert_eq!(Signal::parse("15").unwrap(), Signal::TERM);
        assert_eq!(Signal::parse("40").unwrap(), Signal(40));
        for bad in ["0", "65", "-9", "TERMINATE", ""] {
            assert!(Signal::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Signal::TERM.name(), "TERM");
        assert_eq!(Signal(40).name(), "40");
    }

    #[test]
    fn only_term_int_quit_and_kill_are_meant_to_end_a_process() {
        for name in ["TERM", "INT", "QUIT", "KILL"] {
            assert!(Signal::parse(name).unwrap().ends_process(), "{name}");
        }
        for name in ["HUP", "USR1", "USR2", "WINCH", "40"] {
            assert!(!Signal::parse(name).unwrap().ends_process(), "{name}");
        }
    }

    #[test]
    fn the_sockets_of_this_process_are_read_and_a_missing_one_is_gone() {
        let root = ProcRoot::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let link = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&listener)
        ))
        .unwrap();
        let inode = procfs::socket_inode(link.as_os_str().as_encoded_bytes()).unwrap();
        let held = held_sockets(&root, std::process::id(), &[inode]);
        assert!(held.holds_any(&[inode]), "{held:?}");
        assert!(!held.holds_any(&[u64::MAX]));
        // Pids stop below 2^22.
        assert_eq!(held_sockets(&root, 1 << 30, &[inode]), HeldSockets::Gone);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let text = "42 (a) b) (c) S 7 42 42 0 -1 2097216 0 0";
        assert_eq!(
            parse_stat(text),
            Some(StatFacts {
                ppid: 7,
                flags: 2_097_216
            })
        );
        assert!(parse_stat(text).unwrap().flags & PF_KTHREAD != 0);
        assert_eq!(parse_stat("42 (x"), None);
    }

    #[test]
    fn pid_one_and_lsport_are_refused() {
        let root = ProcRoot::default();
        assert_eq!(refusal(&root, 1, None, &[]), Some(Refusal::InitOfNamespace));
        assert_eq!(
            refusal(&root, 4242, Some(1), &[]),
            Some(Refusal::InitOfNamespace)
        );
        let chain = self_and_ancestors(&root);
        assert_eq!(chain[0], std::process::id());
        assert_eq!(
            refusal(&root, std::process::id(), None, &chain),
            Some(Refusal::Lsport)
        );
        if let Some(parent) = chain.get(1).filter(|p| **p != 1) {
            assert_eq!(
                refusal(&root, *parent, None, &chain),
                Some(Refusal::AncestorOfLsport)
            );
        }
        // kthreadd is pid 2 wherever the kernel's threads are visible.
        if stat(&root, 2).is_some_and(|s| s.ppid == 0) {
            assert_eq!(refusal(&root, 2, None, &chain), Some(Refusal::KernelThread));
        }
    }
}
