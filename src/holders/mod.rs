//! Who holds a socket: the search for the processes behind socket
//! inodes, and what is read about them. [`kernel`] asks the kernel to
//! walk every task's fd table in one pass (a BPF iterator); the `/proc`
//! walk (`procfs`, run on worker threads by `overlap`) is the other
//! source, and the one used wherever the kernel's is unavailable.

pub mod cgroups;
pub mod container;
pub(crate) mod early;
pub mod hidepid;
pub mod kernel;
pub mod mountinfo;
pub(crate) mod overlap;
pub mod process;
pub(crate) mod procfs;
pub(crate) mod search;
pub mod socket_units;
pub mod unseen;
pub(crate) mod users;

use std::collections::HashSet;

use self::procfs::{FdRef, FdScan};
use crate::sys::ProcRoot;
use kernel::Unavailable;

/// Which walk named the holders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderWalk {
    /// The kernel's walk of every fd table (a BPF iterator).
    Kernel,
    /// A `readlinkat` of each fd under `/proc`.
    Proc,
}

impl HolderWalk {
    /// Its name in JSON: `kernel` or `proc`.
    pub fn id(self) -> &'static str {
        match self {
            HolderWalk::Kernel => "kernel",
            HolderWalk::Proc => "proc",
        }
    }
}

/// Whether the kernel's walk may name the holders for a query reading
/// `root`, checked without loading anything: `root` must be the procfs
/// of lsport's own pid namespace (the pids the kernel reports are that
/// namespace's, and the process details are read there afterwards),
/// lsport must run in the initial pid namespace, and hold CAP_BPF and
/// CAP_PERFMON. The load itself may still be refused (a seccomp profile,
/// a security module, a kernel without BTF).
pub fn kernel_walk_possible(root: &ProcRoot) -> Result<(), Unavailable> {
    if !is_own_procfs(root) {
        return Err(Unavailable::OtherProcRoot);
    }
    kernel::check_pid_namespace()?;
    match kernel::capabilities::may_load_tracing_programs() {
        Some(false) => Err(Unavailable::MissingCapabilities),
        Some(true) | None => Ok(()),
    }
}

/// Whether `root` is a procfs whose `self` is this process: the real
/// `/proc` of lsport's pid namespace, not a fixture nor another
/// namespace's.
fn is_own_procfs(root: &ProcRoot) -> bool {
    const PROC_SUPER_MAGIC: u64 = 0x9fa0;
    let Ok(link) = std::fs::read_link(root.path("self")) else {
        return false;
    };
    if link.as_os_str().as_encoded_bytes() != std::process::id().to_string().as_bytes() {
        return false;
    }
    nix::sys::statfs::statfs(root.base())
        .is_ok_and(|fs| fs.filesystem_type().0 as u64 == PROC_SUPER_MAGIC)
}

/// The holders of `wanted` from the kernel's walk: every fd that refers
/// to one, threads with fd tables of their own included. No fd table is
/// refused to the kernel, so nothing is unreadable.
pub(crate) fn kernel_scan(wanted: &HashSet<u64>) -> Result<FdScan, Unavailable> {
    let inodes: Vec<u64> = wanted.iter().copied().collect();
    let found = kernel::kernel_fd_walk(Some(&inodes))?;
    let found = found
        .into_iter()
        .map(|f| {
            (
                f.inode,
                FdRef {
                    pid: f.pid,
                    fd: f.fd,
                },
            )
        })
        .collect();
    Ok(FdScan::new(found, Vec::new()))
}
