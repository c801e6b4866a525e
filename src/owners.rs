//! Who holds a socket: one pass over /proc/[pid]/fd of every process,
//! matching `socket:[INODE]` links against the inodes wanted.
//!
//! Only thread-group leaders (the numeric entries of /proc) are visited:
//! threads share their leader's fd table. A process that exits during
//! the scan, or an fd that vanishes, is normal and simply skipped. A
//! process whose fds we may not read is counted: its sockets are then
//! "hidden", never "free". Every fd of every process is looked at, even
//! after a holder was found: forked workers share their listeners.
//!
//! This module reads one process at a time; `overlap` runs it on
//! several threads while the sockets are being dumped.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use procfs::FromRead;
use procfs::process::Status;

use crate::container::{self, Container};
use crate::sys::ProcRoot;

/// One process's descriptor for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdRef {
    /// The process holding the descriptor.
    pub pid: u32,
    /// The descriptor's number in `/proc/PID/fd`.
    pub fd: u32,
}

/// The holders found, by socket inode.
#[derive(Debug, Default)]
pub struct FdScan {
    /// Every holder, grouped by inode (in `index` order), each group
    /// sorted. One flat vector rather than a vector per inode: `-a` on a
    /// busy host has hundreds of thousands of inodes.
    refs: Vec<FdRef>,
    /// inode -> the range of `refs` that holds it.
    index: HashMap<u64, (u32, u32)>,
    /// Processes whose fd table we were not allowed to read.
    pub unreadable_processes: Vec<u32>,
}

impl FdScan {
    /// Builds the index from (inode, holder) pairs in any order.
    pub fn new(mut found: Vec<(u64, FdRef)>, mut unreadable_processes: Vec<u32>) -> FdScan {
        found.sort_unstable();
        found.dedup();
        let mut index = HashMap::with_capacity(found.len());
        let mut refs = Vec::with_capacity(found.len());
        for group in found.chunk_by(|a, b| a.0 == b.0) {
            let start = refs.len() as u32;
            refs.extend(group.iter().map(|(_, r)| *r));
            index.insert(group[0].0, (start, refs.len() as u32));
        }
        unreadable_processes.sort_unstable();
        FdScan {
            refs,
            index,
            unreadable_processes,
        }
    }

    /// The descriptors that refer to socket `inode`, by pid and fd.
    pub fn holders(&self, inode: u64) -> &[FdRef] {
        match self.index.get(&inode) {
            Some(&(start, end)) => &self.refs[start as usize..end as usize],
            None => &[],
        }
    }

    /// Every pid that holds one of the sockets, once, in order.
    pub fn holding_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.refs.iter().map(|r| r.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// The numeric entries of /proc: one per process (thread-group leader).
pub fn list_pids(root: &ProcRoot) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(root.base()) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| parse_decimal(entry.ok()?.file_name().as_encoded_bytes()))
        .collect();
    pids.sort_unstable();
    pids
}

/// Opens /proc (or the root tests point at) as a directory to open each
/// process's fd directory relative to, from any thread.
pub fn open_proc(root: &ProcRoot) -> Option<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root.base())
        .ok()
}

/// What became of one process's fd table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdTable {
    Read,
    /// We may not read it (another user's process, without privileges).
    Unreadable,
    /// The process exited, or is no process at all.
    Gone,
}

/// Calls `found(inode, fd)` for every fd of `pid` that is a socket.
/// The link target goes into a stack buffer and only the `socket:[`
/// prefix and the digits are looked at: no allocation and no stat per fd.
pub fn socket_fds(proc_dir: &impl AsFd, pid: u32, mut found: impl FnMut(u64, u32)) -> FdTable {
    let path = format!("{pid}/fd");
    let mut dir = match Dir::openat(
        proc_dir,
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(Errno::EACCES | Errno::EPERM) => return FdTable::Unreadable,
        // ENOENT: the process exited; anything else: nothing to learn.
        Err(_) => return FdTable::Gone,
    };
    let dir_fd = dir.as_raw_fd();
    let mut link = [0u8; 64];
    for entry in dir.iter().flatten() {
        let name: &CStr = entry.file_name();
        let Some(fd) = parse_decimal(name.to_bytes()) else {
            continue;
        };
        // SAFETY: `name` is NUL-terminated, `link` is a valid buffer of
        // the length given, and `dir_fd` stays open for the loop.
        let n = unsafe {
            libc::readlinkat(dir_fd, name.as_ptr(), link.as_mut_ptr().cast(), link.len())
        };
        if n <= 0 {
            continue;
        }
        if let Some(inode) = socket_inode(&link[..n as usize]) {
            found(inode, fd);
        }
    }
    FdTable::Read
}

/// A decimal u32 (a pid or an fd number), without sign or spaces.
fn parse_decimal(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 10 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
    }
    u32::try_from(value).ok()
}

/// The inode in a `socket:[12345]` link target.
pub fn socket_inode(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// What lsport shows about a process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The pid, as seen from lsport's pid namespace.
    pub pid: u32,
    /// The kernel's command name (comm), raw bytes: it is whatever the
    /// process chose, escape sequences included.
    pub command: Vec<u8>,
    /// The command line, one raw argument each; empty for kernel threads
    /// and when it could not be read.
    pub cmdline: Vec<Vec<u8>>,
    /// Effective uid, or None when the process exited before we looked.
    pub uid: Option<u32>,
    /// Its pid inside its own pid namespace, when that differs from the
    /// pid seen here (a process in a container).
    pub pid_in_namespace: Option<u32>,
    /// The container its cgroup names, if any.
    pub container: Option<Container>,
}

// Status and cgroup are parsed by the procfs crate; the fd walk above and
// /proc/net stay hand-written. At bench/run's large load, both builds
// alternating (141 rounds, busy 2-CPU machine): `lsport 60403` 681.5 ms
// against 670.7 ms by hand (paired ratio 0.99); stripped binary +65,920 bytes
// (1,833,720 to 1,899,640). The files are read here, below the ProcRoot:
// Process::new_with_root would read the kernel version from the real /proc.
/// Reads the name, command line and user of one process. Called only for
/// processes that hold a matching socket.
pub fn process_info(root: &ProcRoot, pid: u32) -> ProcessInfo {
    let dir = root.path(&pid.to_string());
    let mut command = std::fs::read(dir.join("comm")).unwrap_or_default();
    if command.last() == Some(&b'\n') {
        command.pop();
    }
    let cmdline = std::fs::read(dir.join("cmdline"))
        .map(|raw| split_cmdline(&raw))
        .unwrap_or_default();
    let (uid, innermost) = std::fs::read(dir.join("status"))
        .map(|raw| status_ids(&raw))
        .unwrap_or_default();
    let container = std::fs::read(dir.join("cgroup"))
        .ok()
        .and_then(|raw| container::from_proc_cgroup(&String::from_utf8_lossy(&raw)));
    ProcessInfo {
        pid,
        command,
        cmdline,
        uid,
        pid_in_namespace: innermost.filter(|inner| *inner != pid),
        container,
    }
}

/// The effective uid (`Uid:`, 2nd field) and the innermost pid (`NSpid:`,
/// last field) of /proc/[pid]/status, as procfs parses it. procfs reads
/// the file line by line as UTF-8 and fails whole on one bad byte; the
/// `Name:` line is the comm, cut at 15 bytes even mid-character, so the
/// bytes are made valid first.
fn status_ids(raw: &[u8]) -> (Option<u32>, Option<u32>) {
    let text = String::from_utf8_lossy(raw);
    match Status::from_read(text.as_bytes()) {
        Ok(status) => (
            Some(status.euid),
            status
                .nspid
                .and_then(|pids| pids.last().copied())
                .and_then(|pid| u32::try_from(pid).ok()),
        ),
        Err(_) => (None, None),
    }
}

fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_socket_links_only() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"socket:[99999999999999999999999]"), None);
        assert_eq!(socket_inode(b"socket:[18446744073709551616]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"socket:[12345"), None);
    }

    #[test]
    fn parses_pids_and_fd_numbers_only() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_decimal(b"4294967296"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"self"), None);
        assert_eq!(parse_decimal(b"12a"), None);
        assert_eq!(parse_decimal(b"+1"), None);
    }

    #[test]
    fn the_index_groups_holders_by_inode() {
        let r = |pid, fd| FdRef { pid, fd };
        let scan = FdScan::new(
            vec![(7, r(20, 4)), (9, r(5, 3)), (7, r(10, 3)), (7, r(20, 4))],
            vec![3, 1],
        );
        assert_eq!(scan.holders(7), &[r(10, 3), r(20, 4)]);
        assert_eq!(scan.holders(9), &[r(5, 3)]);
        assert!(scan.holders(8).is_empty());
        assert_eq!(scan.holding_pids(), vec![5, 10, 20]);
        assert_eq!(scan.unreadable_processes, vec![1, 3]);
    }

    #[test]
    fn splits_command_lines_on_nul() {
        assert_eq!(
            split_cmdline(b"nginx: master\0"),
            vec![b"nginx: master".to_vec()]
        );
        assert_eq!(
            split_cmdline(b"sleep\x00100\x00"),
            vec![b"sleep".to_vec(), b"100".to_vec()]
        );
        assert!(split_cmdline(b"").is_empty());
    }

    /// A /proc/[pid]/status as Linux 6.x writes it: the fields procfs
    /// requires (it fails without any of them), and one it does not know.
    fn status(name: &[u8], uid: &str, nspid: &str) -> Vec<u8> {
        let mut text = b"Name:\t".to_vec();
        text.extend_from_slice(name);
        text.extend_from_slice(
            format!(
                "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\n\
                 Pid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t{uid}\nGid:\t0\t0\t0\t0\n\
                 FDSize:\t64\nGroups:\t \nNStgid:\t{nspid}\nNSpid:\t{nspid}\n\
                 Kthread:\t0\nVmRSS:\t    1748 kB\nThreads:\t1\nSigQ:\t0/96365\n\
                 SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
                 SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n\
                 SigCgt:\t0000000000000000\nCapInh:\t0000000000000000\n\
                 CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n\
                 Cpus_allowed_list:\t0-1\n"
            )
            .as_bytes(),
        );
        text
    }

    #[test]
    fn reads_the_effective_uid_and_the_innermost_pid() {
        let raw = status(b"sleep", "1000\t33\t33\t33", "4242\t17\t1");
        assert_eq!(status_ids(&raw), (Some(33), Some(1)));
        let raw = status(b"sleep", "0\t0\t0\t0", "4242");
        assert_eq!(status_ids(&raw), (Some(0), Some(4242)));
        assert_eq!(status_ids(b"Name:\tx\n"), (None, None));
    }

    #[test]
    fn a_command_name_cut_mid_character_keeps_the_uid() {
        // comm is cut at 15 bytes: "aaaaaaaaaaaaaa\xc3" from "aaaaaaaaaaaaaaé".
        let raw = status(b"aaaaaaaaaaaaaa\xc3", "1000\t33\t33\t33", "4242\t17\t1");
        assert_eq!(status_ids(&raw), (Some(33), Some(1)));
        // procfs alone loses the whole file to the one bad byte.
        assert!(Status::from_read(&raw[..]).is_err());
    }
}
