//! Socket holders from the kernel: a BPF `task_file` iterator walks
//! every task's fd table in the kernel and writes (inode, tgid, fd) for
//! each socket, optionally only for the sockets asked about. One read
//! loop replaces a `readlinkat` per fd under `/proc`.
//!
//! Nothing is compiled at build time: the program's instructions are
//! written (`program.rs`, with the assembler in `insn.rs`) from the
//! field offsets in the running kernel's BTF ([`btf`], `layout.rs`), and
//! loaded with bpf(2) (`bpf.rs`). Loading
//! needs CAP_BPF and CAP_PERFMON (root has both); with them a process
//! sees every process's fds, as CAP_SYS_PTRACE would let it through
//! `/proc`. Anything that stops the walk is an [`Unavailable`], for the
//! caller to fall back to `/proc`.
//!
//! The iterator visits each process, and each thread whose fd table is
//! not its leader's (after `unshare(CLONE_FILES)`, or when the leader
//! has exited): the records name the thread group, and repeats are
//! removed.

mod bpf;
pub mod btf;
pub(crate) mod capabilities;
mod insn;
mod layout;
mod program;
mod records;
mod vmlinux;

use std::collections::HashSet;
use std::ffi::CStr;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};

use btf::{Btf, BtfError};
use layout::KernelLayout;
pub use records::SocketFd;

/// The licence the program declares. The verifier lets a program read
/// kernel structs through their BTF types (and call `bpf_seq_write`)
/// only when its licence is GPL-compatible: with "MIT" the load fails
/// with "Cannot access kernel 'struct file' from non-GPL compatible
/// program". It counts "Dual MIT/GPL" as compatible; the program is
/// lsport's own (MIT OR Apache-2.0), offered to the kernel under the GPL
/// as well.
const LICENSE: &CStr = c"Dual MIT/GPL";

/// The names the kernel shows for the program and the filter map.
const PROGRAM_NAME: &str = "lsport_holders";
const MAP_NAME: &str = "lsport_inodes";

/// Up to this many inodes are looked up in the kernel; past it, filling
/// the map costs more than it saves (at 43,000 socket fds: about 1.5 us
/// an inode, against 20 ms for copying out and sorting every record),
/// and the walk keeps every socket and the asked ones are picked here.
const KERNEL_FILTER_LIMIT: usize = 4096;

/// The inode of the initial pid namespace (`PROC_PID_INIT_INO`): the
/// tgids the program reads are that namespace's pids.
const INITIAL_PID_NAMESPACE: u64 = 0xeffffffc;

/// One step of the walk, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the map of the inodes asked about.
    CreateFilter,
    /// Filling it.
    FillFilter,
    /// Loading the program.
    LoadProgram,
    /// Attaching it as an iterator.
    Attach,
    /// Starting a walk.
    StartWalk,
    /// Reading the walk's output.
    Read,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Step::CreateFilter => "creating the inode map",
            Step::FillFilter => "filling the inode map",
            Step::LoadProgram => "loading the program",
            Step::Attach => "attaching the iterator",
            Step::StartWalk => "starting the walk",
            Step::Read => "reading the walk",
        }
    }
}

/// Why the kernel cannot name the holders here; the caller walks /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// bpf(2) said EPERM or EACCES outside the verifier: the process
    /// lacks CAP_BPF and CAP_PERFMON, or a seccomp profile or security
    /// module refuses the call.
    NotPermitted {
        /// Where it was refused.
        step: Step,
    },
    /// bpf(2) does not exist here (ENOSYS): a kernel without it, a
    /// seccomp profile that hides it, or a sandbox such as gVisor.
    NoBpf,
    /// The kernel's BTF could not be read: a kernel built without
    /// CONFIG_DEBUG_INFO_BTF, or /sys not mounted.
    NoBtf {
        /// The errno of the open or read.
        errno: i32,
    },
    /// The kernel's BTF is not what this reader understands.
    BadBtf(BtfError),
    /// A type or member the program needs is not in the kernel's BTF:
    /// a kernel older than the `task_file` iterator (5.8), or different.
    MissingType {
        /// What was looked for.
        what: String,
    },
    /// The verifier refused the program.
    Refused {
        /// The errno of the load.
        errno: i32,
        /// The verifier's log (for debugging; not for the terminal).
        log: String,
    },
    /// Another bpf(2) call or a read failed.
    Failed {
        /// Which one.
        step: Step,
        /// Its errno.
        errno: i32,
    },
    /// lsport does not run in the initial pid namespace: the pids the
    /// kernel reports would not be the pids /proc shows.
    OtherPidNamespace,
    /// The `/proc` lsport reads is not its own pid namespace's procfs
    /// (`--proc-root` names another, or a copy): the processes the
    /// kernel names could not be looked up there.
    OtherProcRoot,
    /// lsport's effective capabilities lack CAP_BPF or CAP_PERFMON
    /// (CAP_SYS_ADMIN stands for both), seen before trying.
    MissingCapabilities,
    /// The walk's output was not whole records.
    BadOutput {
        /// The bytes left over.
        trailing: usize,
    },
}

impl Unavailable {
    /// A short stable name for the reason, for JSON and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Unavailable::NotPermitted { .. } => "not-permitted",
            Unavailable::NoBpf => "no-bpf",
            Unavailable::NoBtf { .. } => "no-btf",
            Unavailable::BadBtf(_) => "bad-btf",
            Unavailable::MissingType { .. } => "missing-type",
            Unavailable::Refused { .. } => "refused",
            Unavailable::Failed { .. } => "failed",
            Unavailable::OtherPidNamespace => "other-pid-namespace",
            Unavailable::OtherProcRoot => "other-proc-root",
            Unavailable::MissingCapabilities => "missing-capabilities",
            Unavailable::BadOutput { .. } => "bad-output",
        }
    }

    /// The errno of a failed bpf(2) call, mapped to its reason.
    fn from_errno(step: Step, errno: i32) -> Unavailable {
        match errno {
            libc::EPERM | libc::EACCES => Unavailable::NotPermitted { step },
            libc::ENOSYS => Unavailable::NoBpf,
            _ => Unavailable::Failed { step, errno },
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errno = |e: i32| std::io::Error::from_raw_os_error(e);
        match self {
            Unavailable::NotPermitted { step } => write!(
                f,
                "bpf(2) was refused while {}: it needs CAP_BPF and CAP_PERFMON, \
                 and no seccomp profile or security module that refuses it",
                step.describe()
            ),
            Unavailable::NoBpf => f.write_str("bpf(2) is not available here"),
            Unavailable::NoBtf { errno: e } => {
                write!(f, "cannot read {}: {}", vmlinux::PATH, errno(*e))
            }
            Unavailable::BadBtf(err) => write!(f, "cannot parse {}: {err}", vmlinux::PATH),
            Unavailable::MissingType { what } => {
                write!(f, "the kernel's BTF has no {what}")
            }
            Unavailable::Refused { errno: e, .. } => {
                write!(f, "the kernel refused the program: {}", errno(*e))
            }
            Unavailable::Failed { step, errno: e } => {
                write!(f, "{} failed: {}", step.describe(), errno(*e))
            }
            Unavailable::OtherPidNamespace => f.write_str("not in the initial pid namespace"),
            Unavailable::OtherProcRoot => {
                f.write_str("the proc root is not the /proc of lsport's own pid namespace")
            }
            Unavailable::MissingCapabilities => {
                f.write_str("it needs CAP_BPF and CAP_PERFMON, which lsport does not have")
            }
            Unavailable::BadOutput { trailing } => {
                write!(f, "the walk's output ends in {trailing} stray bytes")
            }
        }
    }
}

impl std::error::Error for Unavailable {}

/// Every socket fd of every process, as (inode, pid, fd), sorted and
/// without repeats. With `filter`, only the fds of those socket inodes,
/// chosen in the kernel when there are at most a few thousand; an empty
/// filter asks for nothing and gets nothing, without loading anything.
pub fn kernel_fd_walk(filter: Option<&[u64]>) -> Result<Vec<SocketFd>, Unavailable> {
    match filter {
        Some([]) => Ok(Vec::new()),
        Some(inodes) if inodes.len() > KERNEL_FILTER_LIMIT => {
            let wanted: HashSet<u64> = inodes.iter().copied().collect();
            let mut found = walk(None)?;
            found.retain(|f| wanted.contains(&f.inode));
            Ok(found)
        }
        filter => walk(filter),
    }
}

/// Every socket fd of every process, in the order the kernel walked
/// them, repeats included (a thread's own table repeats its leader's
/// sockets): for a caller that keeps a few of them and sorts those.
pub fn every_socket_fd() -> Result<Vec<SocketFd>, Unavailable> {
    walk_unsorted(None)
}

/// One walk, sorted and without repeats; `filter` goes into the kernel.
fn walk(filter: Option<&[u64]>) -> Result<Vec<SocketFd>, Unavailable> {
    let mut found = walk_unsorted(filter)?;
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// One walk, as the kernel wrote it; `filter` goes into the kernel.
fn walk_unsorted(filter: Option<&[u64]>) -> Result<Vec<SocketFd>, Unavailable> {
    check_pid_namespace()?;
    let layout = read_layout()?;
    let map = filter.map(filter_map).transpose()?;
    let insns = program::build(&layout, map.as_ref().map(|m| m.as_raw_fd()));
    let prog = load_program(&insns, layout.iterator_btf_id)?;
    // The program holds its own reference to the map.
    drop(map);
    let link =
        bpf::create_iterator_link(&prog).map_err(|e| Unavailable::from_errno(Step::Attach, e))?;
    drop(prog);
    let walk =
        bpf::create_iterator(&link).map_err(|e| Unavailable::from_errno(Step::StartWalk, e))?;
    let bytes = read_walk(&walk).map_err(|e| Unavailable::from_errno(Step::Read, e))?;
    let mut found = Vec::new();
    records::decode(&bytes, &mut found).map_err(|r| Unavailable::BadOutput {
        trailing: r.trailing,
    })?;
    Ok(found)
}

/// Loads the program; a refusal with the verifier's log is `Refused`.
fn load_program(insns: &[insn::Insn], attach_btf_id: u32) -> Result<OwnedFd, Unavailable> {
    bpf::load_iterator_program(PROGRAM_NAME, insns, LICENSE, attach_btf_id).map_err(|err| {
        match err.errno {
            libc::EPERM => Unavailable::NotPermitted {
                step: Step::LoadProgram,
            },
            libc::ENOSYS => Unavailable::NoBpf,
            // Refused without a word from the verifier: a security
            // module, or a seccomp profile that says EACCES.
            errno if err.log.is_empty() => Unavailable::from_errno(Step::LoadProgram, errno),
            errno => Unavailable::Refused {
                errno,
                log: err.log,
            },
        }
    })
}

/// The program's field offsets, from the running kernel's BTF.
fn read_layout() -> Result<KernelLayout, Unavailable> {
    let bytes = vmlinux::KernelBtf::load().map_err(|e| Unavailable::NoBtf {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    })?;
    let btf = Btf::parse(&bytes).map_err(Unavailable::BadBtf)?;
    KernelLayout::find(&btf).map_err(|m| Unavailable::MissingType { what: m.0 })
}

/// The kernel reads a task's `tgid` as the initial pid namespace sees
/// it, and walks only the tasks of the caller's namespace.
pub(crate) fn check_pid_namespace() -> Result<(), Unavailable> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(ns) if ns.ino() == INITIAL_PID_NAMESPACE => Ok(()),
        _ => Err(Unavailable::OtherPidNamespace),
    }
}

/// The map of the inodes asked about.
fn filter_map(inodes: &[u64]) -> Result<OwnedFd, Unavailable> {
    let mut keys = inodes.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let entries = u32::try_from(keys.len()).map_err(|_| Unavailable::Failed {
        step: Step::CreateFilter,
        errno: libc::E2BIG,
    })?;
    let map = bpf::create_hash_set(MAP_NAME, entries)
        .map_err(|e| Unavailable::from_errno(Step::CreateFilter, e))?;
    bpf::fill_hash_set(&map, &keys).map_err(|e| Unavailable::from_errno(Step::FillFilter, e))?;
    Ok(map)
}

/// Reads the walk to its end. The kernel fills up to eight pages per
/// read; EAGAIN means it visited a million files without output and
/// wants to be asked again.
fn read_walk(walk: &OwnedFd) -> Result<Vec<u8>, i32> {
    const CHUNK: usize = 64 * 1024;
    let mut bytes: Vec<u8> = Vec::with_capacity(CHUNK);
    loop {
        if bytes.capacity() - bytes.len() < CHUNK {
            bytes.reserve(bytes.capacity().max(CHUNK));
        }
        let spare = bytes.spare_capacity_mut();
        // SAFETY: reads at most `spare.len()` bytes into the vector's
        // unused capacity, which `set_len` then admits.
        let n = unsafe {
            libc::read(
                walk.as_raw_fd(),
                spare.as_mut_ptr() as *mut libc::c_void,
                spare.len(),
            )
        };
        match n {
            0 => return Ok(bytes),
            // SAFETY: the kernel initialised these `n` bytes.
            n if n > 0 => unsafe { bytes.set_len(bytes.len() + n as usize) },
            _ => match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN) => continue,
                errno => return Err(errno.unwrap_or(libc::EIO)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// The verifier's refusal comes back typed, with its log: here for
    /// a program that reads `ctx->task` without testing it for NULL.
    /// Needs CAP_BPF and CAP_PERFMON; skipped (and said so) without.
    #[test]
    fn a_program_the_verifier_refuses_comes_back_with_its_log() {
        let skip = |err: Unavailable| {
            if std::env::var_os("LSPORT_REQUIRE_BPF").is_some() {
                panic!("the kernel's walk is unavailable: {err:?}");
            }
            // Past the harness's capture, so that the skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED a_program_the_verifier_refuses_comes_back_with_its_log: {err}"
            );
        };
        let layout = match read_layout() {
            Ok(layout) => layout,
            Err(err) => return skip(err),
        };
        let insns = program::build(&layout, None);
        let mut broken = insns.clone();
        // Instruction 2 is `if r7 == 0 goto out`; make it a jump to the
        // next instruction (`ja +0`).
        assert_eq!(broken[2].code, 0x15);
        broken[2] = insn::Insn {
            code: 0x05,
            regs: 0,
            off: 0,
            imm: 0,
        };
        if let Err(err) = load_program(&insns, layout.iterator_btf_id) {
            return skip(err);
        }
        match load_program(&broken, layout.iterator_btf_id) {
            Err(Unavailable::Refused { errno, log }) => {
                assert_eq!(errno, libc::EACCES);
                assert!(log.contains("invalid mem access"), "{log}");
            }
            other => panic!("{other:?}"),
        }
    }
}
