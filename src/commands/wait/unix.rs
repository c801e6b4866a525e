//! `lsport wait --listening PATH` and `--free PATH` (or `@NAME`): until a
//! socket takes connections or datagrams by the name, or until none is
//! bound to it.
//!
//! The kernel tells of no Unix socket closing (sock_diag's destroy
//! groups cover TCP and UDP only) nor of a listen(): the namespace's
//! table is dumped every 100 ms, and only what is bound to the target
//! is kept. A file appearing in the path's directory (a server's bind())
//! wakes the wait at once through inotify, so a path is looked at again
//! as soon as it exists.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::query::{HolderDetail, NetnsChoice, Query, SourceChoice};
use crate::source::unix::netlink::{ALL_STATES, UnixSession};
use crate::source::unix::procfs;
use crate::source::{SourceKind, netlink_unavailable};
use crate::unix::probe;
use crate::unix::report::UnixReport;
use crate::unix::socket::UnixSocket;
use crate::unix::target::{self, FileKind, SocketFile, UnixTarget};

use super::Condition;

/// How often the table is dumped: the wait's promise of 100 ms.
pub const POLL: Duration = Duration::from_millis(100);

/// How the wait on a Unix socket ended.
#[derive(Debug, Clone)]
pub struct UnixWaitReport {
    /// What was waited for.
    pub target: UnixTarget,
    /// Whether the condition was met (else the timeout came).
    pub met: bool,
    /// How long it took.
    pub waited: Duration,
    /// The probe's answer on the target at the end, with holders (when
    /// asked to name them).
    pub report: Option<UnixReport>,
}

/// Waits until `condition` holds for the query's one Unix target.
pub fn run(
    query: &Query,
    condition: &Condition,
    timeout: Option<Duration>,
    name_holders: bool,
) -> Result<UnixWaitReport, Error> {
    let [target] = &query.unix_targets[..] else {
        return Err(Error::usage("lsport wait takes one socket path or @name"));
    };
    if query.netns == NetnsChoice::All {
        return Err(Error::usage(
            "kill and wait work in one network namespace: use --netns, not --all-netns",
        ));
    }
    let started = Instant::now();
    let watch = match target {
        UnixTarget::Path(path) => DirectoryWatch::new(path),
        UnixTarget::Abstract(_) => None,
    };
    let mut source = query.source;
    let met = loop {
        let servers = match bound_servers(query, target, source) {
            Ok(servers) => servers,
            // sock_diag refused: /proc/net/unix from now on.
            Err(Error::Netlink { errno, .. })
                if source == SourceChoice::Auto && netlink_unavailable(errno) =>
            {
                source = SourceChoice::Proc;
                continue;
            }
            Err(err) => return Err(err),
        };
        let listening = !servers.is_empty();
        let done = match condition {
            Condition::Listening => listening,
            Condition::Free { .. } => !listening,
        };
        if done {
            break true;
        }
        let left = match timeout {
            Some(limit) => match limit.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => left.min(POLL),
                _ => break false,
            },
            None => POLL,
        };
        match &watch {
            Some(watch) => watch.wait(left),
            None => std::thread::sleep(left),
        }
    };
    let waited = started.elapsed();
    let report = if name_holders {
        let mut query = query.clone();
        query.source = source;
        query.holders = HolderDetail::Processes;
        Some(probe::probe(&query)?)
    } else {
        None
    };
    Ok(UnixWaitReport {
        target: target.clone(),
        met,
        waited,
        report,
    })
}

/// The sockets that take connections or datagrams by the target's name
/// now: its file stat()ed again (it may have appeared or been
/// replaced), the table dumped keeping only what is bound to it.
pub(crate) fn bound_servers(
    query: &Query,
    target: &UnixTarget,
    source: SourceChoice,
) -> Result<Vec<UnixSocket>, Error> {
    let file = match target {
        UnixTarget::Path(path) => match SocketFile::stat(path) {
            Ok(file) if file.kind == FileKind::Socket => Some(file),
            // No socket file: nothing can be bound to it by this path.
            Ok(_) => return Ok(Vec::new()),
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Ok(Vec::new());
            }
            // A file this user cannot reach: matched by name, never
            // taken for free.
            Err(_) => None,
        },
        UnixTarget::Abstract(_) => None,
    };
    let names = match target {
        UnixTarget::Path(path) => target::path_names(path),
        UnixTarget::Abstract(_) => Vec::new(),
    };
    let dump = |kind: SourceKind| -> Result<Vec<UnixSocket>, Error> {
        let mut out = Vec::new();
        let mut keep = |socket: &UnixSocket| {
            socket.takes_by_name()
                && match (target, &file) {
                    (UnixTarget::Abstract(name), _) => {
                        !target::on_abstract_name(name, std::slice::from_ref(socket)).is_empty()
                    }
                    (UnixTarget::Path(_), Some(file)) if kind == SourceKind::Netlink => socket
                        .bound_file
                        .is_some_and(|bound| bound.is(file.device, file.inode)),
                    (UnixTarget::Path(_), _) => {
                        !target::on_path_name(&names, std::slice::from_ref(socket)).is_empty()
                    }
                }
        };
        match kind {
            SourceKind::Netlink => {
                UnixSession::default()
                    .dump(ALL_STATES, &mut keep, &mut out)
                    .map_err(|e| Error::Netlink {
                        errno: e.errno,
                        message: e.message,
                    })?;
            }
            SourceKind::Proc => {
                procfs::read_table(&query.proc_root, &mut keep, &mut out).map_err(|source| {
                    Error::Io {
                        path: query.proc_root.thread_path("net/unix"),
                        source,
                    }
                })?;
            }
        }
        Ok(out)
    };
    let kind = match source {
        SourceChoice::Proc => SourceKind::Proc,
        SourceChoice::Auto | SourceChoice::Netlink => SourceKind::Netlink,
    };
    match &query.netns {
        NetnsChoice::One(path) => {
            crate::netns::run_in(path, None, || dump(kind)).map_err(|e| e.into_error(path))?
        }
        _ => dump(kind),
    }
}

/// inotify on the directory of a path: a file created, moved in,
/// removed or changed there ends the sleep early.
struct DirectoryWatch {
    fd: OwnedFd,
}

impl DirectoryWatch {
    /// None where the directory cannot be watched (it does not exist
    /// yet, or inotify is refused): the wait then polls alone.
    fn new(path: &Path) -> Option<DirectoryWatch> {
        let directory = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = CString::new(directory.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain system calls; the fd is owned at once.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd was just returned by inotify_init1 and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mask = libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_ATTRIB;
        // SAFETY: a valid fd and a NUL-terminated path.
        let watch = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), name.as_ptr(), mask) };
        (watch >= 0).then_some(DirectoryWatch { fd })
    }

    /// Sleeps until an event or `limit`, then drains the events.
    fn wait(&self, limit: Duration) {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, millis) };
        let mut buffer = [0u8; 4096];
        // SAFETY: reads into a buffer we own; the fd is non-blocking.
        while unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        } > 0
        {}
    }
}
