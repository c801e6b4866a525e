//! The /proc scan runs on worker threads while the caller dumps the
//! sockets, so that the two costs overlap instead of adding up.
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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::owners::{self, FdRef, FdScan, FdTable};
use crate::sys::ProcRoot;

/// At most this many scanning threads: past a few, the kernel's own
/// locks on /proc and the fd tables decide the speed, not the threads.
const MAX_THREADS: usize = 8;

/// Runs `dump` on the calling thread while worker threads scan
/// /proc/*/fd; `dump` returns its result and the socket inodes whose
/// holders are wanted. An error from `dump` stops the workers and is
/// returned as is.
pub fn scan_while<T, E>(
    root: &ProcRoot,
    dump: impl FnOnce() -> Result<(T, HashSet<u64>), E>,
) -> Result<(T, FdScan), E> {
    let Some(proc_dir) = owners::open_proc(root) else {
        // No /proc to read: every socket keeps an empty holder list.
        let (value, _) = dump()?;
        return Ok((value, FdScan::default()));
    };
    let pids = owners::list_pids(root);
    let shared = Shared {
        proc_dir: &proc_dir,
        pids: &pids,
        next: AtomicUsize::new(0),
        wanted: OnceLock::new(),
    };
    let jobs = thread_count();
    let (dumped, outputs) = thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .filter_map(|_| {
                thread::Builder::new()
                    .spawn_scoped(scope, || shared.work())
                    .ok()
            })
            .collect();
        // Publish what to look for, or tell the workers to stop.
        let dumped = match dump() {
            Ok((value, wanted)) => {
                let _ = shared.wanted.set(Some(wanted));
                Ok(value)
            }
            Err(err) => {
                let _ = shared.wanted.set(None);
                Err(err)
            }
        };
        let mut outputs: Vec<WorkerOutput> =
            workers.into_iter().filter_map(|w| w.join().ok()).collect();
        if outputs.is_empty() && dumped.is_ok() {
            // No thread could be started: scan here instead.
            outputs.push(shared.work());
        }
        (dumped, outputs)
    });
    let value = dumped?;
    let wanted = shared.wanted.into_inner().flatten().unwrap_or_default();
    Ok((value, merge(outputs, &wanted)))
}

/// How many threads scan: one per CPU this process may use, capped.
/// `LSPORT_SCAN_THREADS` overrides it (to measure, or to be gentle).
fn thread_count() -> usize {
    let requested = std::env::var("LSPORT_SCAN_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let available = thread::available_parallelism().map_or(1, |n| n.get());
    requested.unwrap_or(available).clamp(1, MAX_THREADS)
}

struct Shared<'a> {
    proc_dir: &'a File,
    pids: &'a [u32],
    /// Index of the next pid to scan.
    next: AtomicUsize,
    /// Set once the dump is done: the wanted inodes, or None when the
    /// dump failed and the scan is pointless.
    wanted: OnceLock<Option<HashSet<u64>>>,
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
    unreadable: Vec<u32>,
}

impl Shared<'_> {
    fn work(&self) -> WorkerOutput {
        let mut out = WorkerOutput::default();
        loop {
            let wanted = match self.wanted.get() {
                Some(None) => break,
                // Nothing to look for: no socket, so no holder either.
                Some(Some(set)) if set.is_empty() => break,
                Some(Some(set)) => Some(set),
                None => None,
            };
            let Some(&pid) = self.pids.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let table = match wanted {
                Some(set) => owners::socket_fds(self.proc_dir, pid, |inode, fd| {
                    if set.contains(&inode) {
                        out.found.push((inode, FdRef { pid, fd }));
                    }
                }),
                None => owners::socket_fds(self.proc_dir, pid, |inode, fd| {
                    if let Ok(inode) = u32::try_from(inode) {
                        out.early.push((inode, FdRef { pid, fd }));
                    }
                }),
            };
            match table {
                FdTable::Unreadable => out.unreadable.push(pid),
                FdTable::Read | FdTable::Gone => {}
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
