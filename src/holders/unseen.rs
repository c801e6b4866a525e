//! Why some holders could not be seen, told as what could not be read:
//! the processes whose fd tables were refused, each named with the
//! reason; /proc hiding other users' processes (hidepid); /proc not
//! readable at all. Who lsport runs as decides the advice: "run as root"
//! helps a user, not root, who is told instead which process kept its
//! fds to itself.

use crate::holders::hidepid;
pub use crate::holders::procfs::FdRefusal;
use crate::holders::procfs::{self, FdScan};
use crate::sys::ProcRoot;

/// A process whose fd table could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableProcess {
    /// Its pid, as seen from lsport's pid namespace.
    pub pid: u32,
    /// Its command name (comm), raw bytes; empty if it exited since.
    pub command: Vec<u8>,
    /// Its effective uid, when its status could be read.
    pub uid: Option<u32>,
    /// Why its fds could not be read.
    pub why: FdRefusal,
}

/// What kept holders out of sight; empty when nothing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unseen {
    /// The processes whose fd tables could not be read, by pid.
    pub processes: Vec<UnreadableProcess>,
    /// /proc hides other users' processes (hidepid): they are not even
    /// listed.
    pub processes_hidden: bool,
    /// /proc could not be read: no holder is known at all.
    pub blind: bool,
    /// lsport runs with effective uid 0.
    pub as_root: bool,
    /// lsport holds CAP_SYS_PTRACE.
    pub ptrace: bool,
}

impl Unseen {
    /// What the scan could not read, with each unreadable process named.
    /// Reads two small files per such process: called only when some
    /// socket is left without a holder it may have.
    pub fn of(root: &ProcRoot, scan: &FdScan) -> Unseen {
        Unseen {
            processes: scan
                .unreadable
                .iter()
                .map(|u| {
                    let (command, uid) = procfs::command_and_uid(root, u.pid);
                    UnreadableProcess {
                        pid: u.pid,
                        command,
                        uid,
                        why: u.why,
                    }
                })
                .collect(),
            processes_hidden: scan.processes_hidden,
            blind: scan.blind,
            as_root: nix::unistd::geteuid().is_root(),
            ptrace: hidepid::has_ptrace(root),
        }
    }
}
