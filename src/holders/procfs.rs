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

use std::collections::HashSet;
use std::ffi::CStr;
use std::fs::File;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::holders::container::{self, Container};
use crate::int_hash::IntMap;
use crate::query::ProcessFields;
use crate::sys::ProcRoot;

/// One process's descriptor for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdRef {
    /// The process holding the descriptor.
    pub pid: u32,
    /// The descriptor's number in `/proc/PID/fd`.
    pub fd: u32,
}

/// The holders of one socket. Most sockets have one, kept in the index
/// itself: the join of `-a` on a busy host looks up every socket, and
/// a second random read (into `refs`) per socket was a fifth of its time.
#[derive(Debug, Clone, Copy)]
enum Held {
    Once(FdRef),
    /// The range of `FdScan::refs` with its holders.
    More(u32, u32),
}

/// The holders found, by socket inode.
#[derive(Debug, Default)]
pub struct FdScan {
    /// The holders of the sockets held more than once, grouped by
    /// inode, each group sorted. One flat vector rather than a vector
    /// per inode: `-a` on a busy host has hundreds of thousands of inodes.
    refs: Vec<FdRef>,
    /// inode -> its holders.
    index: IntMap<u64, Held>,
    /// Processes whose fd table could not be read, by pid, with why.
    pub unreadable: Vec<Unreadable>,
    /// The processes the pass listed, sorted.
    pub listed: Vec<u32>,
    /// Those of them read before every socket was dumped (the pass runs
    /// while the dumps do), sorted: they may have opened a socket the
    /// dump found after their fds were read.
    pub read_early: Vec<u32>,
    /// /proc itself could not be read: no holder is known at all.
    pub blind: bool,
    /// /proc hides other users' processes (hidepid): they are not even
    /// listed, so any holder may be among them.
    pub processes_hidden: bool,
}

/// One inode's group of (inode, holder) pairs as the index keeps it,
/// adding a group of several to `refs`.
fn held(group: &[(u64, FdRef)], refs: &mut Vec<FdRef>) -> Held {
    match group {
        [(_, holder)] => Held::Once(*holder),
        _ => {
            let start = refs.len() as u32;
            refs.extend(group.iter().map(|(_, r)| *r));
            Held::More(start, refs.len() as u32)
        }
    }
}

impl FdScan {
    /// Builds the index from (inode, holder) pairs in any order.
    pub fn new(mut found: Vec<(u64, FdRef)>, mut unreadable: Vec<Unreadable>) -> FdScan {
        found.sort_unstable();
        found.dedup();
        let mut index = IntMap::with_capacity_and_hasher(found.len(), Default::default());
        let mut refs = Vec::new();
        for group in found.chunk_by(|a, b| a.0 == b.0) {
            index.insert(group[0].0, held(group, &mut refs));
        }
        unreadable.sort_unstable_by_key(|u| u.pid);
        unreadable.dedup_by_key(|u| u.pid);
        FdScan {
            refs,
            index,
            unreadable,
            listed: Vec::new(),
            read_early: Vec::new(),
            blind: false,
            processes_hidden: false,
        }
    }

    /// A scan that could not read /proc at all.
    pub fn blind() -> FdScan {
        FdScan {
            blind: true,
            ..FdScan::default()
        }
    }

    /// Whether a socket without a holder in this scan may still have one
    /// that lsport could not see.
    pub fn may_hide_holders(&self) -> bool {
        self.blind || self.processes_hidden || !self.unreadable.is_empty()
    }

    /// Whether the fd table of `pid` could not be read.
    pub fn is_unreadable(&self, pid: u32) -> bool {
        self.unreadable
            .binary_search_by_key(&pid, |u| u.pid)
            .is_ok()
    }

    /// Adds what a later pass ([`scan_again`]) found: holders of inodes
    /// the first pass did not find, and processes it could not read.
    pub fn add(&mut self, later: LaterPass) {
        let LaterPass {
            mut found,
            unreadable,
        } = later;
        self.unreadable.extend(unreadable);
        self.unreadable.sort_unstable_by_key(|u| u.pid);
        self.unreadable.dedup_by_key(|u| u.pid);
        found.sort_unstable();
        found.dedup();
        for group in found.chunk_by(|a, b| a.0 == b.0) {
            if self.index.contains_key(&group[0].0) {
                continue;
            }
            let held = held(group, &mut self.refs);
            self.index.insert(group[0].0, held);
        }
    }

    /// The descriptors that refer to socket `inode`, by pid and fd.
    pub fn holders(&self, inode: u64) -> &[FdRef] {
        match self.index.get(&inode) {
            Some(Held::Once(holder)) => std::slice::from_ref(holder),
            Some(&Held::More(start, end)) => &self.refs[start as usize..end as usize],
            None => &[],
        }
    }

    /// Every pid that holds one of the sockets, once, in order.
    pub fn holding_pids(&self) -> Vec<u32> {
        // The sockets held more than once have all their holders in refs.
        let once = self.index.values().filter_map(|held| match held {
            Held::Once(holder) => Some(holder.pid),
            Held::More(..) => None,
        });
        let mut pids: Vec<u32> = self.refs.iter().map(|r| r.pid).chain(once).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// The numeric entries of /proc: one per process (thread-group leader).
/// None when /proc cannot be listed (missing, or no fd left to list it
/// with): then no holder can be known.
pub fn list_pids(root: &ProcRoot) -> Option<Vec<u32>> {
    let entries = std::fs::read_dir(root.base()).ok()?;
    let mut pids: Vec<u32> = Vec::new();
    for entry in entries {
        pids.extend(parse_decimal(entry.ok()?.file_name().as_encoded_bytes()));
    }
    pids.sort_unstable();
    Some(pids)
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

/// Why a process's fd table could not be read: what the answer then
/// says of the sockets it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdRefusal {
    /// `/proc/PID/fd` itself could not be opened or listed (another
    /// user's process, for a user without privileges); the errno.
    Directory(i32),
    /// The directory was listed but its links were refused (root without
    /// CAP_SYS_PTRACE; a process the kernel or a security module keeps
    /// even from root); the errno.
    Links(i32),
    /// lsport ran out of file descriptors (EMFILE, ENFILE) or memory.
    Exhausted(i32),
}

impl FdRefusal {
    fn of_open(errno: Errno) -> FdRefusal {
        match errno {
            Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM => FdRefusal::Exhausted(errno as i32),
            other => FdRefusal::Directory(other as i32),
        }
    }

    /// The stable name in JSON output: `fd_directory_refused`,
    /// `fd_links_refused` or `out_of_resources`.
    pub fn id(self) -> &'static str {
        match self {
            FdRefusal::Directory(_) => "fd_directory_refused",
            FdRefusal::Links(_) => "fd_links_refused",
            FdRefusal::Exhausted(_) => "out_of_resources",
        }
    }

    /// Why, in a few words: `fd links refused`.
    pub fn describe(self) -> &'static str {
        match self {
            FdRefusal::Directory(_) => "fd directory refused",
            FdRefusal::Links(_) => "fd links refused",
            FdRefusal::Exhausted(_) => "lsport ran out of file descriptors",
        }
    }

    /// The kernel's error, in words: `Permission denied`.
    pub fn error(self) -> &'static str {
        Errno::from_raw(self.errno()).desc()
    }

    /// The errno the kernel gave.
    pub fn errno(self) -> i32 {
        match self {
            FdRefusal::Directory(e) | FdRefusal::Links(e) | FdRefusal::Exhausted(e) => e,
        }
    }
}

/// A process whose fd table could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    /// The process.
    pub pid: u32,
    /// Why.
    pub why: FdRefusal,
}

/// What became of one fd table, with why it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRead {
    Read,
    Gone,
    Refused(FdRefusal),
}

impl TableRead {
    /// The outcome without the reason.
    pub fn table(self) -> FdTable {
        match self {
            TableRead::Read => FdTable::Read,
            TableRead::Gone => FdTable::Gone,
            TableRead::Refused(_) => FdTable::Unreadable,
        }
    }
}

/// Calls `found(inode, fd)` for every fd of `pid` that is a socket.
/// The link target goes into a stack buffer and only the `socket:[`
/// prefix and the digits are looked at: no allocation and no stat per fd.
///
/// A table we could not read whole is `Unreadable`, never `Read`: the
/// directory may open while each link is refused (root without
/// CAP_SYS_PTRACE, as in Docker's default set), and running out of file
/// descriptors (EMFILE) hides holders just the same. Its sockets are then
/// reported with hidden holders rather than with none.
pub fn socket_fds(proc_dir: &impl AsFd, pid: u32, found: impl FnMut(u64, u32)) -> FdTable {
    read_socket_fds(proc_dir, pid, found).table()
}

/// [`socket_fds`], saying why a table could not be read.
pub fn read_socket_fds(proc_dir: &impl AsFd, pid: u32, found: impl FnMut(u64, u32)) -> TableRead {
    socket_fds_at(proc_dir, &pid.to_string(), found)
}

/// [`socket_fds`] for the fd table of one thread of `pid`
/// (`/proc/PID/task/TID/fd`), which has a table of its own after
/// `unshare(CLONE_FILES)`.
pub fn thread_socket_fds(
    proc_dir: &impl AsFd,
    pid: u32,
    tid: u32,
    found: impl FnMut(u64, u32),
) -> FdTable {
    socket_fds_at(proc_dir, &format!("{pid}/task/{tid}"), found).table()
}

/// [`socket_fds`] for the fd table under `dir` (`PID` or `PID/task/TID`,
/// relative to `proc_dir`).
fn socket_fds_at(proc_dir: &impl AsFd, dir: &str, mut found: impl FnMut(u64, u32)) -> TableRead {
    fd_links_at(proc_dir, dir, |link, fd| {
        if let Some(inode) = socket_inode(link) {
            found(inode, fd);
        }
        ControlFlow::Continue(())
    })
}

/// Reads the links of the fd table under `dir` (relative to
/// `proc_dir`), handing each to `each` with its fd number until it says
/// to stop.
fn fd_links_at(
    proc_dir: &impl AsFd,
    dir: &str,
    mut each: impl FnMut(&[u8], u32) -> ControlFlow<()>,
) -> TableRead {
    let path = format!("{dir}/fd");
    let mut dir = match Dir::openat(
        proc_dir,
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        // The process exited, or the entry is no process at all.
        Err(Errno::ENOENT | Errno::ESRCH | Errno::ENOTDIR) => return TableRead::Gone,
        // EACCES, EPERM, EMFILE, ENFILE, ENOMEM...: it is there, unseen.
        Err(errno) => return TableRead::Refused(FdRefusal::of_open(errno)),
    };
    let dir_fd = dir.as_raw_fd();
    let mut link = [0u8; 64];
    let mut refused = None;
    for entry in dir.iter() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(Errno::ENOENT | Errno::ESRCH) => break, // it exited meanwhile
            Err(errno) => {
                refused = Some(FdRefusal::of_open(errno));
                break;
            }
        };
        let name: &CStr = entry.file_name();
        let Some(fd) = parse_decimal(name.to_bytes()) else {
            continue;
        };
        // SAFETY: `name` is NUL-terminated, `link` is a valid buffer of
        // the length given, and `dir_fd` stays open for the loop.
        let n = unsafe {
            libc::readlinkat(dir_fd, name.as_ptr(), link.as_mut_ptr().cast(), link.len())
        };
        let Ok(len) = usize::try_from(n) else {
            // The fd closed meanwhile (ENOENT) is nothing; a refusal is,
            // and the next link would be refused just the same.
            match Errno::last() {
                Errno::ENOENT | Errno::ESRCH => continue,
                errno @ (Errno::ENOMEM | Errno::EMFILE | Errno::ENFILE) => {
                    refused = Some(FdRefusal::Exhausted(errno as i32));
                }
                errno => refused = Some(FdRefusal::Links(errno as i32)),
            }
            break;
        };
        if each(&link[..len], fd).is_break() {
            break;
        }
    }
    match refused {
        Some(why) => TableRead::Refused(why),
        None => TableRead::Read,
    }
}

/// What a later pass found.
#[derive(Debug, Default)]
pub struct LaterPass {
    /// Holders of the inodes it looked for.
    pub found: Vec<(u64, FdRef)>,
    /// Processes it could not read.
    pub unreadable: Vec<Unreadable>,
}

/// The processes whose fd tables `/proc` refuses, found by reading at
/// most one link of each (a table that gives one gives all). For when
/// another walk (the kernel's) found no holder of some socket: a sandbox
/// may keep a table from that walk as it keeps it from `/proc`.
pub fn refused_tables(root: &ProcRoot) -> Vec<Unreadable> {
    let Some(proc_dir) = open_proc(root) else {
        return Vec::new();
    };
    list_pids(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let why = table_refusal(&proc_dir, pid)?;
            Some(Unreadable { pid, why })
        })
        .collect()
}

/// Why `/proc/PID/fd` is refused, from its first link; None when it is
/// readable, empty or gone.
fn table_refusal(proc_dir: &impl AsFd, pid: u32) -> Option<FdRefusal> {
    match fd_links_at(proc_dir, &pid.to_string(), |_, _| ControlFlow::Break(())) {
        TableRead::Refused(why) => Some(why),
        TableRead::Read | TableRead::Gone => None,
    }
}

/// The second pass, for sockets the first found no holder of and that
/// are still open. It reads again the fd tables the first pass may have
/// read too soon: it runs while the sockets are dumped, so a process
/// read then may have opened a socket the dump found after; a process
/// started since the listing may hold one its parent has closed. And it
/// reads every process's other threads' tables (`/proc/PID/task/TID/fd`):
/// a thread has a table of its own after `unshare(CLONE_FILES)`, and once
/// the thread-group leader has exited its `/proc/PID/fd` is empty while
/// the other threads still hold their fds. Visiting every thread costs a
/// walk as long as the first pass per thread, so it runs only when some
/// socket is left without a holder.
pub fn scan_again(root: &ProcRoot, wanted: &HashSet<u64>, first: &FdScan) -> LaterPass {
    let mut pass = LaterPass::default();
    let Some(proc_dir) = open_proc(root) else {
        return pass;
    };
    for pid in list_pids(root).unwrap_or_default() {
        // Its threads' tables are as closed to us as its own.
        if first.is_unreadable(pid) {
            continue;
        }
        let mut keep = |inode, fd| {
            if wanted.contains(&inode) {
                pass.found.push((inode, FdRef { pid, fd }));
            }
        };
        let read_too_soon = first.read_early.binary_search(&pid).is_ok()
            || first.listed.binary_search(&pid).is_err();
        if read_too_soon {
            match socket_fds_at(&proc_dir, &pid.to_string(), &mut keep) {
                TableRead::Refused(why) => {
                    pass.unreadable.push(Unreadable { pid, why });
                    continue;
                }
                TableRead::Gone => continue,
                TableRead::Read => {}
            }
        }
        let Ok(tasks) = std::fs::read_dir(root.path(&format!("{pid}/task"))) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = parse_decimal(task.file_name().as_encoded_bytes()) else {
                continue;
            };
            if tid == pid {
                continue; // the leader's table is /proc/PID/fd
            }
            let table = format!("{pid}/task/{tid}");
            socket_fds_at(&proc_dir, &table, &mut keep);
        }
    }
    pass
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

/// How much of a process's files is read: the kernel keeps a command
/// name to 16 bytes and a status file to a few kilobytes; a command line
/// can be as long as the argument space (ARG_MAX, a quarter of the stack
/// limit), so it is cut at 1 MiB, which no table or JSON reader needs
/// more of. A file where /proc should be cannot make lsport grow past
/// these.
const COMM_LIMIT: usize = 64;
const CMDLINE_LIMIT: usize = 1 << 20;
const STATUS_LIMIT: usize = 64 << 10;
const CGROUP_LIMIT: usize = 64 << 10;

// The procfs crate parses each holder's cgroup file (container.rs); its
// status file stays parsed here, by bytes. Measured at bench/run's large
// load with procfs parsing both (141 rounds, both builds alternating):
// `lsport 60403` 681.5 ms against 670.7 ms by hand (paired ratio 0.99),
// stripped binary +65,920 bytes. But procfs's Status rejects the whole
// file when any of the twenty-odd fields it expects is missing or odd,
// and takes 12-14 us a file against 0.3 us: the two fields lsport needs
// are read here, field by field, so that nothing else in the file can
// cost them. The fd walk and /proc/net stay hand-written (hot paths).
/// Reads the name, user and pid in its namespace of one process (from
/// its status file alone), and its command line and container where
/// `fields` asks for them. Called only for processes that hold a
/// matching socket.
pub fn process_info(root: &ProcRoot, pid: u32, fields: ProcessFields) -> ProcessInfo {
    let dir = root.path(&pid.to_string());
    let read = |name: &str, limit| crate::files::read_at_most(&dir.join(name), limit);
    let status = read("status", STATUS_LIMIT).unwrap_or_default();
    let command = match status_field(&status, b"Name") {
        Some(name) => unescape_status_name(name),
        // A status without its name: ask the comm file.
        None => {
            let mut command = read("comm", COMM_LIMIT).unwrap_or_default();
            if command.last() == Some(&b'\n') {
                command.pop();
            }
            command
        }
    };
    let mut cmdline = Vec::new();
    if fields.args {
        cmdline = read("cmdline", CMDLINE_LIMIT)
            .map(|raw| split_cmdline(&raw))
            .unwrap_or_default();
        if cmdline.is_empty() {
            cmdline = live_thread_cmdline(root, pid);
        }
    }
    let container = fields
        .container
        .then(|| read("cgroup", CGROUP_LIMIT).ok())
        .flatten()
        .and_then(|bytes| container::from_proc_cgroup(&String::from_utf8_lossy(&bytes)));
    ProcessInfo {
        pid,
        command,
        cmdline,
        uid: effective_uid(&status),
        pid_in_namespace: innermost_pid(&status).filter(|inner| *inner != pid),
        container,
    }
}

/// The command name from the `Name:` line of a status file: the comm
/// file's bytes, but with a newline written `\n` and a backslash `\\`
/// (the only two the kernel escapes there), and a tab before it.
fn unescape_status_name(value: &[u8]) -> Vec<u8> {
    let value = value.strip_prefix(b"\t").unwrap_or(value);
    let mut name = Vec::with_capacity(value.len());
    let mut bytes = value.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            name.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => name.push(b'\n'),
            Some(other) => name.push(other),
            None => name.push(b'\\'),
        }
    }
    name
}

/// The command name and effective uid of `pid`: what names a process
/// whose fds could not be read (its comm and status can be, by anyone).
pub fn command_and_uid(root: &ProcRoot, pid: u32) -> (Vec<u8>, Option<u32>) {
    let dir = root.path(&pid.to_string());
    let read = |name: &str, limit| crate::files::read_at_most(&dir.join(name), limit);
    let mut command = read("comm", COMM_LIMIT).unwrap_or_default();
    if command.last() == Some(&b'\n') {
        command.pop();
    }
    let status = read("status", STATUS_LIMIT).unwrap_or_default();
    (command, effective_uid(&status))
}

/// The command line as another thread of `pid` reads it: once the
/// thread-group leader has exited (a program whose main thread called
/// pthread_exit), `/proc/PID/cmdline` reads empty while the process runs
/// on in its other threads, which share the arguments. Empty for a
/// kernel thread, which has no arguments and no other thread.
fn live_thread_cmdline(root: &ProcRoot, pid: u32) -> Vec<Vec<u8>> {
    let Ok(tasks) = std::fs::read_dir(root.path(&format!("{pid}/task"))) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| parse_decimal(task.file_name().as_encoded_bytes()).is_some_and(|t| t != pid))
        .find_map(|task| {
            let raw =
                crate::files::read_at_most(&task.path().join("cmdline"), CMDLINE_LIMIT).ok()?;
            Some(split_cmdline(&raw)).filter(|args| !args.is_empty())
        })
        .unwrap_or_default()
}

/// The value of one `Field:` line of /proc/PID/status, as bytes. The
/// file is read field by field, never as text: the `Name:` line holds a
/// command name the kernel cut to 15 bytes, which can split a UTF-8
/// character, and that must not cost the fields after it.
fn status_field<'a>(status: &'a [u8], field: &[u8]) -> Option<&'a [u8]> {
    status.split(|b| *b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(field)?;
        rest.strip_prefix(b":")
    })
}

/// The whitespace-separated numbers of a status field.
fn status_numbers(value: &[u8]) -> impl Iterator<Item = Option<u32>> + '_ {
    value
        .split(|b| b.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
        .map(|word| std::str::from_utf8(word).ok()?.parse().ok())
}

/// The last pid of the `NSpid:` line of /proc/PID/status: the pid the
/// process has in its own (innermost) pid namespace.
fn innermost_pid(status: &[u8]) -> Option<u32> {
    status_numbers(status_field(status, b"NSpid")?).last()?
}

fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

/// The effective uid from /proc/PID/status (`Uid: real effective ...`).
fn effective_uid(status: &[u8]) -> Option<u32> {
    status_numbers(status_field(status, b"Uid")?).nth(1)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_with_a_name_cut_mid_character_keeps_its_other_fields() {
        // "Name:" ends in half of a two-byte character, as the kernel's
        // 15-byte cut can leave it.
        let mut status = b"Name:\tserver-\xc3\nUmask:\t0022\nState:\tS (sleeping)\n".to_vec();
        status.extend_from_slice(b"Uid:\t1000\t33\t33\t33\nGid:\t33\t33\t33\t33\n");
        status.extend_from_slice(b"NSpid:\t4242\t7\n");
        assert!(std::str::from_utf8(&status).is_err());
        assert_eq!(effective_uid(&status), Some(33));
        assert_eq!(innermost_pid(&status), Some(7));
        assert_eq!(effective_uid(b"Name:\tx\n"), None);
        assert_eq!(innermost_pid(b"NSpid:\t12\n"), Some(12));
    }

    #[test]
    fn the_status_name_is_the_command_with_its_escapes_undone() {
        assert_eq!(unescape_status_name(b"\tnginx"), b"nginx".to_vec());
        assert_eq!(unescape_status_name(b"\ta\\nb\\\\c"), b"a\nb\\c".to_vec());
        // Escape sequences for a terminal are not the kernel's to undo.
        assert_eq!(
            unescape_status_name(b"\t\x1b[31mred"),
            b"\x1b[31mred".to_vec()
        );
        assert_eq!(unescape_status_name(b"\tsrv-\xc3"), b"srv-\xc3".to_vec());
    }

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
        let refused = |pid| Unreadable {
            pid,
            why: FdRefusal::Links(libc::EACCES),
        };
        let scan = FdScan::new(
            vec![(7, r(20, 4)), (9, r(5, 3)), (7, r(10, 3)), (7, r(20, 4))],
            vec![refused(3), refused(1), refused(3)],
        );
        assert_eq!(scan.holders(7), &[r(10, 3), r(20, 4)]);
        assert_eq!(scan.holders(9), &[r(5, 3)]);
        assert!(scan.holders(8).is_empty());
        assert_eq!(scan.holding_pids(), vec![5, 10, 20]);
        assert_eq!(scan.unreadable, vec![refused(1), refused(3)]);
        assert!(scan.is_unreadable(3) && !scan.is_unreadable(2));
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
    /// A whole status file, as a 6.x kernel writes it.
    fn status(name: &[u8], uid: &str, nspid: &str) -> Vec<u8> {
        let mut text = b"Name:\t".to_vec();
        text.extend_from_slice(name);
        text.extend_from_slice(
            format!(
                "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\n\
                 Pid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t{uid}\nGid:\t0\t0\t0\t0\n\
                 FDSize:\t64\nGroups:\t \nNStgid:\t{nspid}\nNSpid:\t{nspid}\n\
                 Kthread:\t0\nVmRSS:\t    1748 kB\nThreads:\t1\n"
            )
            .as_bytes(),
        );
        text
    }

    #[test]
    fn reads_the_effective_uid_and_the_innermost_pid() {
        let raw = status(b"sleep", "1000\t33\t33\t33", "4242\t17\t1");
        assert_eq!(
            (effective_uid(&raw), innermost_pid(&raw)),
            (Some(33), Some(1))
        );
        let raw = status(b"sleep", "0\t0\t0\t0", "4242");
        assert_eq!(
            (effective_uid(&raw), innermost_pid(&raw)),
            (Some(0), Some(4242))
        );
        // A status with only some fields still gives them.
        assert_eq!(effective_uid(b"Name:\tx\nUid:\t5\t6\t7\t8\n"), Some(6));
        assert_eq!(innermost_pid(b"Name:\tx\n"), None);
    }
}
