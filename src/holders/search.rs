//! Which walk names the holders, for every command that names them: the
//! kernel's (a BPF iterator) where the query allows it and lsport may,
//! else `/proc`'s; and running it beside the socket dumps, so that the
//! two costs overlap (see `early` for the kernel's walk, `overlap` for
//! the /proc walk). Where the kernel refuses the walk after all, /proc
//! is walked instead and the reason kept.

use std::collections::HashSet;

use super::early::{self, EarlyWalk};
use super::kernel::Unavailable;
use super::procfs::{self, FdScan};
use super::{HolderWalk, kernel_scan, kernel_walk_possible, overlap};
use crate::query::{HolderSource, Query};
use crate::sys::ProcRoot;

/// Which walk names the holders, and why the kernel's did not.
pub struct HolderSearch {
    /// The walk that names them (once a search ran: the one that did).
    pub from: HolderWalk,
    /// Why the kernel's walk was not used, where it was not.
    pub unavailable: Option<Unavailable>,
}

impl HolderSearch {
    /// The kernel's walk where the query allows it and it looks possible
    /// (checked without loading anything); else the /proc walk.
    pub fn plan(query: &Query) -> HolderSearch {
        let possible = match query.holder_source {
            HolderSource::Proc => return HolderSearch::proc(None),
            HolderSource::Auto | HolderSource::Kernel => kernel_walk_possible(&query.proc_root),
        };
        match possible {
            Ok(()) => HolderSearch {
                from: HolderWalk::Kernel,
                unavailable: None,
            },
            Err(why) => HolderSearch::proc(Some(why)),
        }
    }

    fn proc(unavailable: Option<Unavailable>) -> HolderSearch {
        HolderSearch {
            from: HolderWalk::Proc,
            unavailable,
        }
    }

    /// Runs `dump` while the holders are searched for, from the moment
    /// it calls the start function it is given (once it found a socket);
    /// `dump` returns its result and the socket inodes whose holders are
    /// wanted. An error from `dump` is returned as is.
    pub fn run_while<T, E>(
        &mut self,
        query: &Query,
        dump: impl FnOnce(&(dyn Fn() + Sync)) -> Result<(T, HashSet<u64>), E>,
    ) -> Result<(T, FdScan), E> {
        match self.from {
            HolderWalk::Kernel => {
                let ((value, wanted), walked) = early::walk_while(dump)?;
                Ok((value, self.scan_after(query, wanted, walked)))
            }
            HolderWalk::Proc => overlap::scan_while(&query.proc_root, dump),
        }
    }

    /// After the kernel's walk, where some of `wanted` has no holder:
    /// notes the fd tables /proc refuses, which may hold it (a sandbox
    /// may keep a table from the kernel's walk too), so that the socket
    /// is hidden, not holderless. The /proc walk notes them itself.
    pub fn note_refused_tables(&self, root: &ProcRoot, scan: &mut FdScan, wanted: &HashSet<u64>) {
        if self.from == HolderWalk::Kernel && wanted.iter().any(|i| scan.holders(*i).is_empty()) {
            scan.unreadable = procfs::refused_tables(root);
        }
    }

    /// The holders of `wanted`, from the kernel's walk, or from the /proc
    /// walk where the kernel refuses it after all.
    pub fn scan(&mut self, query: &Query, wanted: HashSet<u64>) -> FdScan {
        if wanted.is_empty() {
            return FdScan::default();
        }
        if self.from == HolderWalk::Kernel {
            match kernel_scan(&wanted) {
                Ok(scan) => return scan,
                Err(why) => *self = HolderSearch::proc(Some(why)),
            }
        }
        let Ok(((), scan)) = overlap::scan_while(&query.proc_root, |_| {
            Ok::<_, std::convert::Infallible>(((), wanted))
        });
        scan
    }

    /// The holders of `wanted`, from the kernel's walk that ran during
    /// the dumps (and a second for what it missed); from a walk now
    /// where it never started, or from /proc where the kernel refused.
    fn scan_after(&mut self, query: &Query, wanted: HashSet<u64>, early: EarlyWalk) -> FdScan {
        match early {
            _ if wanted.is_empty() => FdScan::default(),
            None => self.scan(query, wanted),
            Some(walked) => match walked.and_then(|all| early::scan_after(all, &wanted)) {
                Ok(scan) => scan,
                Err(why) => {
                    *self = HolderSearch::proc(Some(why));
                    self.scan(query, wanted)
                }
            },
        }
    }
}
