//! The /proc scan runs on worker threads while the caller dumps the
//! sockets, so that the two costs overlap instead of adding up. It starts
//! when the dump finds its first socket: a port nobody holds is answered
//! without reading any process's fds.
//!
//! Until the dump is done nobody knows which inodes are wanted, so the
//! workers note every socket fd they see (inode, pid, fd). Once the
//! wanted set is published they keep only the fds that refer to it. At
//! the end the early notes are filtered against the set as well: the
//! result is the same as a scan that started after the dump, holder for
//! holder. Work is handed out one process at a time from a shared
//! counter, so a process with a huge fd table does not leave one thread
//! busy while the others idle.

use std::collections::HashSet;
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Scope, ScopedJoinHandle};

use crate::holders::procfs::{self, FdRef, FdScan, TableRead, Unreadable};
use crate::sys::ProcRoot;

/// At most this many scanning threads: past a few, the kernel's own
/// locks on /proc and the fd tables decide the speed, not the threads.
const MAX_THREADS: usize = 8;

/// Runs `dump` on the calling thread; `dump` returns its result and the
/// socket inodes whose holders are wanted. The /proc scan starts on
/// worker threads when `dump` calls the start function it is given
/// (from any thread, as often as it likes: once it found a socket), or
/// else after `dump` returns, and only if it wants some inode. An error
/// from `dump` stops the workers and is returned as is.
pub fn scan_while<T, E>(
    root: &ProcRoot,
    dump: impl FnOnce(&(dyn Fn() + Sync)) -> Result<(T, HashSet<u64>), E>,
) -> Result<(T, FdScan), E> {
    scan_with(root, &OnceLock::new(), dump)
}

/// `scan_while`, with the scan's state where a test can see whether it
/// ever started.
fn scan_with<T, E>(
    root: &ProcRoot,
    shared: &OnceLock<Option<Shared>>,
    dump: impl FnOnce(&(dyn Fn() + Sync)) -> Result<(T, HashSet<u64>), E>,
) -> Result<(T, FdScan), E> {
    let wanted: OnceLock<Option<HashSet<u64>>> = OnceLock::new();
    // How many processes had been handed out when the wanted set was
    // published: those may have been read before their sockets existed.
    let mut handed_out_early = 0;
    let (dumped, outputs) = thread::scope(|scope| {
        let workers = Workers {
            scope,
            root,
            shared,
            wanted: &wanted,
            handles: Mutex::new(None),
        };
        // Publish what to look for, or tell the workers to stop.
        let dumped = match dump(&|| workers.start()) {
            Ok((value, found)) => {
                let any = !found.is_empty();
                let _ = wanted.set(Some(found));
                if let Some(Some(started)) = shared.get() {
                    handed_out_early = started.next.load(Ordering::SeqCst);
                }
                if any {
                    workers.start();
                }
                Ok(value)
            }
            Err(err) => {
                let _ = wanted.set(None);
                Err(err)
            }
        };
        (dumped, workers.finish())
    });
    let value = dumped?;
    // Started, and /proc could not be read: every holder is unknown.
    if matches!(shared.get(), Some(None)) {
        return Ok((value, FdScan::blind()));
    }
    let wanted = wanted.into_inner().flatten().unwrap_or_default();
    let mut scan = merge(outputs, &wanted);
    if let Some(Some(started)) = shared.get() {
        scan.listed = started.pids.clone();
        scan.read_early = started.pids[..handed_out_early.min(started.pids.len())].to_vec();
    }
    Ok((value, scan))
}

/// The scan's threads, started at most once.
struct Workers<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    root: &'env ProcRoot,
    /// The processes to visit, listed when the scan starts; None when
    /// there is no /proc to read (every socket keeps no holder).
    shared: &'env OnceLock<Option<Shared>>,
    wanted: &'env OnceLock<Option<HashSet<u64>>>,
    /// None until started.
    handles: Mutex<Option<Vec<ScopedJoinHandle<'scope, WorkerOutput>>>>,
}

impl<'scope, 'env> Workers<'scope, 'env> {
    fn start(&self) {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if handles.is_some() {
            return;
        }
        let root = self.root;
        let wanted = self.wanted;
        let Some(shared) = self.shared.get_or_init(|| Shared::open(root)) else {
            *handles = Some(Vec::new());
            return;
        };
        let started = (0..thread_count())
            .filter_map(|_| {
                thread::Builder::new()
                    .spawn_scoped(self.scope, move || shared.work(wanted))
                    .ok()
            })
            .collect();
        *handles = Some(started);
    }

    /// Waits for the workers; scans on this thread if none could start.
    fn finish(self) -> Vec<WorkerOutput> {
        let handles = self.handles.into_inner().unwrap_or_else(|e| e.into_inner());
        let Some(handles) = handles else {
            return Vec::new(); // never started: nothing wanted
        };
        let mut outputs: Vec<WorkerOutput> =
            handles.into_iter().filter_map(|w| w.join().ok()).collect();
        if outputs.is_empty() {
            if let Some(Some(shared)) = self.shared.get() {
                outputs.push(shared.work(self.wanted));
            }
        }
        outputs
    }
}

/// How many threads scan: one per CPU this process may use, capped.
/// `LSPORT_SCAN_THREADS` overrides it (to measure, or to be gentle).
fn thread_count() -> usize {
    let requested = std::env::var("LSPORT_SCAN_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let available = crate::sys::usable_cpus();
    requested.unwrap_or(available).clamp(1, MAX_THREADS)
}

struct Shared {
    proc_dir: File,
    pids: Vec<u32>,
    /// Index of the next pid to scan.
    next: AtomicUsize,
}

impl Shared {
    fn open(root: &ProcRoot) -> Option<Shared> {
        Some(Shared {
            proc_dir: procfs::open_proc(root)?,
            pids: procfs::list_pids(root)?,
            next: AtomicUsize::new(0),
        })
    }
}

/// What one worker found.
#[derive(Default)]
struct WorkerOutput {
    /// Fds that refer to a wanted inode.
    found: Vec<(u64, FdRef)>,
    /// Every socket fd seen before the wanted set was known. Socket
    /// inodes come from a 32-bit counter (and sock_diag reports them in
    /// 32 bits), so 12 bytes each keep this small.
    early: Vec<(u32, FdRef)>,
    unreadable: Vec<Unreadable>,
}

impl Shared {
    /// `wanted` is set once the dump is done: the wanted inodes, or None
    /// when the dump failed and the scan is pointless.
    fn work(&self, wanted: &OnceLock<Option<HashSet<u64>>>) -> WorkerOutput {
        let mut out = WorkerOutput::default();
        loop {
            let wanted = match wanted.get() {
                Some(None) => break,
                // Nothing to look for: no socket, so no holder either.
                Some(Some(set)) if set.is_empty() => break,
                Some(Some(set)) => Some(set),
                None => None,
            };
            let Some(&pid) = self.pids.get(self.next.fetch_add(1, Ordering::SeqCst)) else {
                break;
            };
            let table = match wanted {
                Some(set) => procfs::read_socket_fds(&self.proc_dir, pid, |inode, fd| {
                    if set.contains(&inode) {
                        out.found.push((inode, FdRef { pid, fd }));
                    }
                }),
                None => procfs::read_socket_fds(&self.proc_dir, pid, |inode, fd| {
                    if let Ok(inode) = u32::try_from(inode) {
                        out.early.push((inode, FdRef { pid, fd }));
                    }
                }),
            };
            match table {
                TableRead::Refused(why) => out.unreadable.push(Unreadable { pid, why }),
                TableRead::Read | TableRead::Gone => {}
            }
        }
        out
    }
}

/// Joins the workers' findings: the early notes count only where they
/// refer to a wanted inode.
fn merge(outputs: Vec<WorkerOutput>, wanted: &HashSet<u64>) -> FdScan {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for out in outputs {
        found.extend(out.found);
        found.extend(
            out.early
                .into_iter()
                .map(|(inode, r)| (u64::from(inode), r))
                .filter(|(inode, _)| wanted.contains(inode)),
        );
        unreadable.extend(out.unreadable);
    }
    FdScan::new(found, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A /proc with two processes, each holding one socket.
    fn fake_proc() -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!(
            "lsport-overlap-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, fd, inode) in [(10, 3, 777), (11, 4, 888)] {
            let fds = root.join(format!("{pid}/fd"));
            std::fs::create_dir_all(&fds).unwrap();
            symlink(format!("socket:[{inode}]"), fds.join(fd.to_string())).unwrap();
        }
        root
    }

    fn wanted(inodes: &[u64]) -> HashSet<u64> {
        inodes.iter().copied().collect()
    }

    #[test]
    fn nothing_wanted_means_no_process_is_read() {
        let dir = fake_proc();
        let root = ProcRoot::new(dir.clone());
        let shared = OnceLock::new();
        let (_, scan) = scan_with(&root, &shared, |_| Ok::<_, ()>(((), wanted(&[])))).unwrap();
        assert!(shared.get().is_none(), "the scan never started");
        assert!(scan.holders(777).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn holders_are_the_same_whenever_the_scan_starts() {
        let dir = fake_proc();
        let root = ProcRoot::new(dir.clone());
        let holder = [FdRef { pid: 10, fd: 3 }];
        // Never started by the dump: the scan runs after it.
        let shared = OnceLock::new();
        let (_, after) = scan_with(&root, &shared, |_| Ok::<_, ()>(((), wanted(&[777])))).unwrap();
        assert!(shared.get().is_some());
        assert_eq!(after.holders(777), &holder);
        assert!(after.holders(888).is_empty(), "not wanted, not kept");
        // Started at once: early notes are filtered against the set.
        let (_, during) = scan_while(&root, |start| {
            start();
            start();
            Ok::<_, ()>(((), wanted(&[777])))
        })
        .unwrap();
        assert_eq!(during.holders(777), &holder);
        assert!(during.holders(888).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn processes_read_while_the_dump_runs_are_marked_read_early() {
        let dir = fake_proc();
        let root = ProcRoot::new(dir.clone());
        // Started after the dump: nothing was read early.
        let shared = OnceLock::new();
        let (_, after) = scan_with(&root, &shared, |_| Ok::<_, ()>(((), wanted(&[777])))).unwrap();
        assert_eq!(after.listed, vec![10, 11]);
        assert!(after.read_early.is_empty());
        // Started by the dump, which ends once both were handed out.
        let shared = OnceLock::new();
        let (_, during) = scan_with(&root, &shared, |start| {
            start();
            let handed_out = || match shared.get() {
                Some(Some(s)) => s.next.load(Ordering::SeqCst),
                _ => 0,
            };
            while handed_out() < 2 {
                thread::yield_now();
            }
            Ok::<_, ()>(((), wanted(&[777])))
        })
        .unwrap();
        assert_eq!(during.read_early, vec![10, 11]);
        assert_eq!(during.holders(777), &[FdRef { pid: 10, fd: 3 }]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_dump_is_returned_after_the_workers_stop() {
        let dir = fake_proc();
        let root = ProcRoot::new(dir.clone());
        let result = scan_while(&root, |start| {
            start();
            Err::<((), HashSet<u64>), _>("dump failed")
        });
        assert_eq!(result.err(), Some("dump failed"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
