//! Who holds a socket: one pass over /proc/[pid]/fd of every process,
//! matching `socket:[INODE]` links against the inodes wanted.
//!
//! Only thread-group leaders (the numeric entries of /proc) are visited:
//! threads share their leader's fd table. A process that exits during
//! the scan, or an fd that vanishes, is normal and simply skipped. A
//! process whose fds we may not read is counted: its sockets are then
//! "hidden", never "free".

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::container::{self, Container};
use crate::sys::ProcRoot;

/// One process's descriptor for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdRef {
    pub pid: u32,
    pub fd: u32,
}

#[derive(Debug, Default)]
pub struct FdScan {
    pub by_inode: HashMap<u64, Vec<FdRef>>,
    /// Processes whose fd table we were not allowed to read.
    pub unreadable_processes: Vec<u32>,
    pub processes_scanned: usize,
}

/// Walks /proc/*/fd once, recording every fd that refers to one of the
/// `wanted` socket inodes.
pub fn scan(root: &ProcRoot, wanted: &HashSet<u64>) -> FdScan {
    let mut result = FdScan::default();
    if wanted.is_empty() {
        return result;
    }
    let Ok(entries) = std::fs::read_dir(root.base()) else {
        return result;
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        result.processes_scanned += 1;
        scan_process(root.base(), pid, wanted, &mut result);
    }
    for refs in result.by_inode.values_mut() {
        refs.sort_unstable();
    }
    result
}

fn scan_process(base: &Path, pid: u32, wanted: &HashSet<u64>, result: &mut FdScan) {
    let fd_dir = base.join(pid.to_string()).join("fd");
    let dir = match Dir::open(
        &fd_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(Errno::EACCES | Errno::EPERM) => {
            result.unreadable_processes.push(pid);
            return;
        }
        // ENOENT: the process exited; anything else: nothing to learn.
        Err(_) => return,
    };
    let dir_fd = dir.as_raw_fd();
    let mut link = [0u8; 64];
    for entry in dir.into_iter().flatten() {
        let name = entry.file_name();
        let Some(fd) = parse_fd_name(name) else {
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
            if wanted.contains(&inode) {
                result
                    .by_inode
                    .entry(inode)
                    .or_default()
                    .push(FdRef { pid, fd });
            }
        }
    }
}

fn parse_fd_name(name: &CStr) -> Option<u32> {
    std::str::from_utf8(name.to_bytes()).ok()?.parse().ok()
}

/// The inode in a `socket:[12345]` link target.
pub fn socket_inode(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What lsport shows about a process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The kernel's command name (comm), raw bytes: it is whatever the
    /// process chose, escape sequences included.
    pub command: Vec<u8>,
    pub cmdline: Vec<Vec<u8>>,
    /// Effective uid, or None when the process exited before we looked.
    pub uid: Option<u32>,
    /// Its pid inside its own pid namespace, when that differs from the
    /// pid seen here (a process in a container).
    pub pid_in_namespace: Option<u32>,
    /// The container its cgroup names, if any.
    pub container: Option<Container>,
}

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
    let status = std::fs::read(dir.join("status")).unwrap_or_default();
    let container = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|text| container::from_proc_cgroup(&text));
    ProcessInfo {
        pid,
        command,
        cmdline,
        uid: effective_uid(&status),
        pid_in_namespace: innermost_pid(&status).filter(|inner| *inner != pid),
        container,
    }
}

/// The last pid of the `NSpid:` line of /proc/[pid]/status: the pid the
/// process has in its own (innermost) pid namespace.
fn innermost_pid(status: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

/// The effective uid from /proc/[pid]/status (`Uid: real effective ...`).
fn effective_uid(status: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
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

    #[test]
    fn reads_the_pid_in_the_innermost_namespace() {
        assert_eq!(
            innermost_pid(b"Name:\tsleep\nNSpid:\t4242\t17\t1\n"),
            Some(1)
        );
        assert_eq!(innermost_pid(b"NSpid:\t4242\n"), Some(4242));
        assert_eq!(innermost_pid(b"Name:\tsleep\n"), None);
    }

    #[test]
    fn reads_the_effective_uid() {
        let status = b"Name:\tx\nUid:\t1000\t33\t33\t33\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(33));
        assert_eq!(effective_uid(b"Name: x\n"), None);
    }
}
