//! `--as USER`: the trial in a short-lived child process that alone
//! takes USER's credentials.
//!
//! Credentials decide who may signal whom: a process of USER may send
//! any signal, SIGSTOP and SIGKILL too, to a task whose real or saved
//! uid is USER's. A thread of lsport that took USER's uid would have let
//! USER's processes stop or kill lsport, root, through that thread
//! (tgkill(2), or kill(2) of its thread id; SIGSTOP and SIGKILL act on
//! the whole process) for as long as the trial ran. So lsport forks: the
//! child takes USER's uid and gid with the raw setgroups, setresgid and
//! setresuid system calls, makes the trial's calls, and exits; the
//! parent never changes its credentials. The child asks the parent the
//! guard's question (which live sockets the socket would share traffic
//! with, see `trial`) over a socket pair and waits for the answer;
//! lsport's other descriptors are closed in it first.
//!
//! Leaving uid 0 clears the child's capabilities (CAP_NET_BIND_SERVICE
//! too, unless asked to keep that one), and a socket takes its owner
//! (the uid SO_REUSEPORT compares) from the process that creates it.
//!
//! Between fork() and _exit() the child of a program that may be
//! running threads may make only async-signal-safe calls: it makes
//! system calls and nothing else, and allocates nothing
//! (`trial::calls`). What USER may do to the child is said, not
//! suffered: a child that cannot be started (a pids limit), that dies
//! before it answers (a signal from USER) or that does not answer within
//! [`ANSWER_TIMEOUT`] (stopped by USER) is an error in one line.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::commands::why::trial::{self, BindSpec, Guard, Made, Outcome, Stage, TrialUser};
use crate::error::Error;

/// How long the parent waits for each message of the child. The child's
/// calls take microseconds; only a child stopped, or a machine stalled,
/// takes longer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One message either way: a kind and up to three numbers.
type Message = [i32; 4];

// The child's messages.
/// Asks the guard: `[ASK, v6only]`.
const ASK: i32 = 1;
/// The calls are made and the socket closed: `[DONE, stage, errno, v6only]`.
const DONE: i32 = 2;
/// A credential call failed: `[REFUSED, call, errno]`.
const REFUSED: i32 = 3;

// The parent's answers to ASK.
/// No live socket would share the traffic: make the call.
const GO: i32 = 0;
/// Live sockets would: stop short (see `trial`).
const STOP: i32 = 1;
/// The guard failed: end the trial.
const ABORT: i32 = 2;

/// The credential calls, in order, as the child names them.
const CALLS: [&str; 5] = [
    "prctl(PR_SET_KEEPCAPS)",
    "setgroups",
    "setresgid",
    "setresuid",
    "capset",
];

/// The trial's calls made by a child process that takes `user`'s uid and
/// gid (keeping CAP_NET_BIND_SERVICE alone with `keep_bind_service`);
/// `guard` is asked here, in lsport, as [`trial::attempt`] asks it.
pub fn attempt(
    user: &TrialUser,
    keep_bind_service: bool,
    spec: &BindSpec,
    guard: &Guard<'_>,
) -> Result<Outcome, Error> {
    let who = user.uid;
    // Looked up here: it allocates, and the child may not.
    let scope = trial::scope_index(spec);
    let (ours, theirs) = socket_pair().map_err(|err| {
        Error::usage(format!(
            "--as {who}: cannot make the trial's socket pair: {err}"
        ))
    })?;
    // SAFETY: the child makes only system calls and ends with _exit()
    // (see `child`); nothing of this process is used there otherwise.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = std::io::Error::last_os_error();
        let hint = match err.raw_os_error() {
            Some(libc::EAGAIN) => {
                " (the limit on processes is reached: a pids cgroup's pids.max, or RLIMIT_NPROC)"
            }
            Some(libc::ENOMEM) => " (out of memory)",
            _ => "",
        };
        return Err(Error::usage(format!(
            "--as {who}: cannot start the trial's process: fork: {err}{hint}"
        )));
    }
    if pid == 0 {
        child(
            theirs.as_raw_fd(),
            ours.as_raw_fd(),
            user,
            keep_bind_service,
            spec,
            scope,
        );
    }
    drop(theirs);
    let mut skipped = None;
    let mut guard_failed = None;
    let ending = loop {
        let message = match receive_within(&ours, ANSWER_TIMEOUT) {
            Received::Message(message) => message,
            Received::Closed => break Ending::Died,
            Received::Silent => break Ending::Silent,
        };
        match message {
            [ASK, v6only, ..] => {
                let answer = match guard(spec, decode_flag(v6only)) {
                    Ok(live) if live.is_empty() => GO,
                    Ok(live) => {
                        skipped = Some(trial::Skipped::of(spec.protocol, live));
                        STOP
                    }
                    Err(err) => {
                        guard_failed = Some(err);
                        ABORT
                    }
                };
                // A child gone by now is seen at the next receive.
                let _ = send(ours.as_raw_fd(), [answer, 0, 0, 0]);
                if answer == ABORT {
                    break Ending::Aborted;
                }
            }
            [DONE, stage, errno, v6only] => {
                break Ending::Done(Made {
                    failure: decode_stage(stage).map(|stage| (stage, errno)),
                    v6only: decode_flag(v6only),
                });
            }
            [REFUSED, call, errno, _] => break Ending::Refused { call, errno },
            _ => break Ending::Garbled,
        }
    };
    drop(ours);
    let status = reap(pid, matches!(ending, Ending::Died));
    match ending {
        Ending::Done(made) => Ok(Outcome {
            failure: made.failure,
            v6only: made.v6only,
            skipped,
        }),
        Ending::Aborted => Err(guard_failed
            .unwrap_or_else(|| Error::usage(format!("--as {who}: the trial's guard failed")))),
        Ending::Refused { call, errno } => {
            let call = usize::try_from(call)
                .ok()
                .and_then(|i| CALLS.get(i))
                .unwrap_or(&"a credential call");
            let err = std::io::Error::from_raw_os_error(errno);
            let hint = if errno == libc::EPERM {
                " (running a trial as another user needs root)"
            } else {
                ""
            };
            Err(Error::usage(format!("--as {who}: {call}: {err}{hint}")))
        }
        Ending::Died => Err(Error::usage(format!(
            "--as {who}: the trial's process {} before it answered \
             (while it runs as uid {who}, that user's processes may signal it)",
            describe(status)
        ))),
        Ending::Silent => Err(Error::usage(format!(
            "--as {who}: the trial's process (pid {pid}) did not answer within {} s \
             (stopped?); it was killed",
            ANSWER_TIMEOUT.as_secs()
        ))),
        Ending::Garbled => Err(Error::usage(format!(
            "--as {who}: the trial's process sent a message lsport does not know"
        ))),
    }
}

/// How the exchange with the child ended.
enum Ending {
    Done(Made),
    Aborted,
    Refused { call: i32, errno: i32 },
    Died,
    Silent,
    Garbled,
}

/// The child: takes the user's credentials, makes the calls, says what
/// they gave, and exits. Never returns; a panic (there is none to be had
/// on this path) exits too rather than unwind into lsport's frames.
fn child(
    end: RawFd,
    parents_end: RawFd,
    user: &TrialUser,
    keep_bind_service: bool,
    spec: &BindSpec,
    scope: Result<u32, i32>,
) -> ! {
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        close_all_but(end, parents_end);
        if let Err((call, errno)) = become_user(user, keep_bind_service) {
            let _ = send(end, [REFUSED, call, errno, 0]);
            return;
        }
        let mut ask = |v6only: Option<bool>| -> Result<bool, ()> {
            send(end, [ASK, encode_flag(v6only), 0, 0])?;
            match receive(end) {
                Some([GO, ..]) => Ok(false),
                Some([STOP, ..]) => Ok(true),
                _ => Err(()),
            }
        };
        if let Ok(made) = trial::calls(spec, scope, &mut ask) {
            let (stage, errno) = made.failure.map_or((-1, 0), |(s, e)| (encode_stage(s), e));
            let _ = send(end, [DONE, stage, errno, encode_flag(made.v6only)]);
        }
    }));
    // SAFETY: _exit ends the child without running anything of lsport's.
    unsafe { libc::_exit(if done.is_ok() { 0 } else { 127 }) }
}

/// Closes every descriptor above stderr but `end`: the child, running as
/// another user, keeps none of lsport's (sock_diag sockets, pidfds).
/// The parent's end of the pair goes first, whatever close_range says.
fn close_all_but(end: RawFd, parents_end: RawFd) {
    // SAFETY: plain system calls on descriptors this process owns; an
    // old kernel without close_range leaves the rest open.
    unsafe {
        libc::close(parents_end);
        let end = end as libc::c_uint;
        if end > 3 {
            libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, end - 1, 0);
        }
        libc::syscall(libc::SYS_close_range, end + 1, libc::c_uint::MAX, 0);
    }
}

/// CAP_NET_BIND_SERVICE (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;

/// Gives the calling process `user`'s uid and gid through the raw system
/// calls; with `keep_bind_service`, it keeps CAP_NET_BIND_SERVICE and
/// no other capability. The error is the failed call (an index into
/// [`CALLS`]) and its errno. Async-signal-safe: system calls only.
fn become_user(user: &TrialUser, keep_bind_service: bool) -> Result<(), (i32, i32)> {
    let gid = user.gid as libc::gid_t;
    let uid = user.uid as libc::uid_t;
    let failed = |call: i32| (call, trial::last_errno());
    // SAFETY: raw system calls; the group list is one gid that lives
    // across the call, and the capability structures are filled before
    // capset reads them.
    unsafe {
        if keep_bind_service && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(failed(0));
        }
        if libc::syscall(libc::SYS_setgroups, 1usize, &raw const gid) != 0 {
            return Err(failed(1));
        }
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            return Err(failed(2));
        }
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return Err(failed(3));
        }
        if keep_bind_service {
            // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
            let header: [u32; 2] = [0x2008_0522, 0];
            let bit = 1u32 << CAP_NET_BIND_SERVICE;
            // effective, permitted, inheritable; then the upper words.
            let data: [u32; 6] = [bit, bit, 0, 0, 0, 0];
            if libc::syscall(libc::SYS_capset, &raw const header, &raw const data) != 0 {
                return Err(failed(4));
            }
        }
    }
    Ok(())
}

/// A connected pair of datagram-like sockets (each message whole),
/// closed on exec.
fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: the kernel fills the two descriptors, owned below.
    let status = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two new descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn send(fd: RawFd, message: Message) -> Result<(), ()> {
    // SAFETY: the message is plain data passed with its size; no SIGPIPE
    // when the other end is gone.
    let sent = unsafe {
        libc::send(
            fd,
            message.as_ptr().cast(),
            std::mem::size_of::<Message>(),
            libc::MSG_NOSIGNAL,
        )
    };
    if sent == std::mem::size_of::<Message>() as isize {
        Ok(())
    } else {
        Err(())
    }
}

/// One whole message, or None at the end (or on an error or a short one).
fn receive(fd: RawFd) -> Option<Message> {
    let mut message: Message = [0; 4];
    loop {
        // SAFETY: the kernel writes at most the message's size into it.
        let got = unsafe {
            libc::recv(
                fd,
                message.as_mut_ptr().cast(),
                std::mem::size_of::<Message>(),
                0,
            )
        };
        if got < 0 && trial::last_errno() == libc::EINTR {
            continue;
        }
        return (got == std::mem::size_of::<Message>() as isize).then_some(message);
    }
}

enum Received {
    Message(Message),
    /// The child closed its end: it has exited (or sent something short).
    Closed,
    /// Nothing within the time.
    Silent,
}

fn receive_within(fd: &OwnedFd, timeout: Duration) -> Received {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Received::Silent;
        }
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: one pollfd, passed with its count.
        let ready = unsafe { libc::poll(&raw mut poll, 1, millis) };
        if ready < 0 && trial::last_errno() == libc::EINTR {
            continue;
        }
        if ready == 0 {
            continue;
        }
        return match receive(fd.as_raw_fd()) {
            Some(message) => Received::Message(message),
            None => Received::Closed,
        };
    }
}

/// Waits for the child to end and returns its wait status. The child
/// has nothing left to do (or is silent): it is killed first, so that a
/// child stopped by its user cannot hold lsport here, unless it has
/// already `exited` (then its status says how).
fn reap(pid: libc::pid_t, exited: bool) -> Option<libc::c_int> {
    // SAFETY: plain system calls on our own child.
    unsafe {
        if !exited && libc::kill(pid, libc::SIGKILL) != 0 {
            // Not ours to kill (lsport without CAP_KILL): take its status
            // if it has ended, else leave it to end on its own.
            let mut status = 0;
            return (libc::waitpid(pid, &raw mut status, libc::WNOHANG) == pid).then_some(status);
        }
        let mut status = 0;
        loop {
            let done = libc::waitpid(pid, &raw mut status, 0);
            if done == pid {
                return Some(status);
            }
            if done < 0 && trial::last_errno() != libc::EINTR {
                return None;
            }
        }
    }
}

/// How the child ended, in words.
fn describe(status: Option<libc::c_int>) -> String {
    match status {
        Some(status) if libc::WIFSIGNALED(status) => {
            let signal = libc::WTERMSIG(status);
            match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => format!("was killed by {name}"),
                Err(_) => format!("was killed by signal {signal}"),
            }
        }
        Some(status) if libc::WIFEXITED(status) => {
            format!("exited with status {}", libc::WEXITSTATUS(status))
        }
        _ => "ended".to_string(),
    }
}

fn encode_flag(flag: Option<bool>) -> i32 {
    match flag {
        None => -1,
        Some(on) => i32::from(on),
    }
}

fn decode_flag(code: i32) -> Option<bool> {
    match code {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

const STAGES: [Stage; 4] = [Stage::Socket, Stage::Option, Stage::Bind, Stage::Listen];

fn encode_stage(stage: Stage) -> i32 {
    STAGES
        .iter()
        .position(|s| *s == stage)
        .map_or(-1, |i| i as i32)
}

fn decode_stage(code: i32) -> Option<Stage> {
    usize::try_from(code)
        .ok()
        .and_then(|i| STAGES.get(i))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_carry_flags_and_stages_both_ways() {
        for flag in [None, Some(false), Some(true)] {
            assert_eq!(decode_flag(encode_flag(flag)), flag);
        }
        for stage in STAGES {
            assert_eq!(decode_stage(encode_stage(stage)), Some(stage));
        }
        assert_eq!(decode_stage(-1), None);
        assert_eq!(decode_stage(9), None);
    }
}
