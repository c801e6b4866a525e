//! Holders of the sockets a watch finds, by a scan aimed at the likely
//! processes rather than all of /proc at every poll: first the
//! processes that held a socket earlier in the watch (a server holds
//! every connection it accepts, a client makes one after another), then
//! the processes of the socket's uid, then the rest, stopping at the
//! first group that accounts for every socket. The processes of the
//! uid that also live in the watched network namespace come before the
//! others of the uid: on a host of containers, that is a handful of
//! processes instead of thousands. Within a group the highest pids come
//! first: a short-lived client is usually young. A scan stops at its time budget, so that a host with
//! huge fd tables does not hold up the watch: a socket whose holder was
//! not reached is reported without one. Answers are cached per inode
//! until the socket closes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::time::{Duration, Instant};

use nix::fcntl::AtFlags;

use crate::container::Container;
use crate::owners::{self, FdTable};
use crate::sys::ProcRoot;

/// How many recent holders are tried first.
const RECENT_HOLDERS: usize = 32;

/// A process that holds a watched socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its pid, as seen from lsport's pid namespace.
    pub pid: u32,
    /// The fd number that refers to the socket.
    pub fd: u32,
    /// The kernel's command name (comm), raw bytes: escape before
    /// showing.
    pub command: Vec<u8>,
    /// The container or systemd unit its cgroup names, if any.
    pub container: Option<Container>,
}

/// What is known of one socket's holders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// The holders found, one per fd.
    pub found: Vec<Holder>,
    /// None was found, and some processes' fds could not be read: the
    /// holder may be among them (another user's process).
    pub hidden: bool,
}

/// The scan's memory between polls.
pub struct HolderFinder {
    root: ProcRoot,
    proc_dir: Option<File>,
    cache: HashMap<u64, Holders>,
    recent: VecDeque<u32>,
    /// The inode of the watched network namespace, if known.
    netns: Option<u64>,
    /// Sockets whose scan ran out of time: uid, and tries so far.
    unresolved: HashMap<u64, (u32, u32)>,
}

/// How many polls look for a holder before it counts as not found.
const MAX_TRIES: u32 = 5;

impl HolderFinder {
    /// A finder reading `root` (normally /proc), for sockets of the
    /// network namespace whose inode is `netns`.
    pub fn new(root: &ProcRoot, netns: Option<u64>) -> HolderFinder {
        HolderFinder {
            root: root.clone(),
            proc_dir: owners::open_proc(root),
            cache: HashMap::new(),
            recent: VecDeque::new(),
            netns,
            unresolved: HashMap::new(),
        }
    }

    /// The holders of a socket found earlier; empty for one never
    /// looked for (or with no inode).
    pub fn get(&self, inode: u64) -> Holders {
        self.cache.get(&inode).cloned().unwrap_or_default()
    }

    /// Forgets a socket that closed.
    pub fn forget(&mut self, inode: u64) {
        self.cache.remove(&inode);
        self.unresolved.remove(&inode);
    }

    /// Finds the holders of these sockets (inode, uid), those not
    /// already known, within `budget`.
    pub fn resolve(&mut self, sockets: &[(u64, u32)], budget: Duration) {
        let mut wanted: HashMap<u64, u32> = sockets
            .iter()
            .filter(|(inode, _)| *inode != 0 && !self.cache.contains_key(inode))
            .copied()
            .collect();
        wanted.extend(
            self.unresolved
                .iter()
                .map(|(inode, (uid, _))| (*inode, *uid)),
        );
        if wanted.is_empty() {
            return;
        }
        let Some(proc_dir) = &self.proc_dir else {
            return;
        };
        let mut found: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
        let mut visited: HashSet<u32> = HashSet::new();
        let mut unreadable = false;
        let uids: HashSet<u32> = wanted.values().copied().collect();
        let mut all = owners::list_pids(&self.root).unwrap_or_default();
        all.reverse();
        let same_uid: Vec<u32> = all
            .iter()
            .copied()
            .filter(|pid| owner_of(proc_dir, *pid).is_some_and(|u| uids.contains(&u)))
            .collect();
        let same_netns: Vec<u32> = match self.netns {
            Some(netns) => same_uid
                .iter()
                .copied()
                .filter(|pid| netns_of(&self.root, *pid) == Some(netns))
                .collect(),
            None => Vec::new(),
        };
        let tiers: [Vec<u32>; 4] = [
            self.recent.iter().copied().collect(),
            same_netns,
            same_uid,
            all,
        ];
        // The budget is for reading fd tables; listing the processes is
        // bounded by their number.
        let deadline = Instant::now() + budget;
        let mut out_of_time = false;
        'tiers: for tier in tiers {
            for pid in tier {
                if !visited.insert(pid) {
                    continue;
                }
                if Instant::now() >= deadline {
                    out_of_time = true;
                    break 'tiers;
                }
                let table = owners::socket_fds(proc_dir, pid, |inode, fd| {
                    if wanted.contains_key(&inode) {
                        found.entry(inode).or_default().push((pid, fd));
                    }
                });
                unreadable |= table == FdTable::Unreadable;
            }
            wanted.retain(|inode, _| !found.contains_key(inode));
            if wanted.is_empty() {
                break;
            }
        }
        let mut names: HashMap<u32, owners::ProcessInfo> = HashMap::new();
        let found_inodes: Vec<u64> = found.keys().copied().collect();
        for (inode, refs) in found {
            let mut holders = Vec::with_capacity(refs.len());
            for (pid, fd) in refs {
                let info = names
                    .entry(pid)
                    .or_insert_with(|| owners::process_info(&self.root, pid));
                holders.push(Holder {
                    pid,
                    fd,
                    command: info.command.clone(),
                    container: info.container.clone(),
                });
                self.remember(pid);
            }
            holders.sort_by_key(|h| (h.pid, h.fd));
            self.cache.insert(
                inode,
                Holders {
                    found: holders,
                    hidden: false,
                },
            );
        }
        for inode in found_inodes {
            self.unresolved.remove(&inode);
        }
        for (inode, uid) in wanted {
            // Not reached in time: tried again at the next polls, a few
            // times, before it counts as not found.
            if out_of_time {
                let tries = self.unresolved.entry(inode).or_insert((uid, 0));
                tries.1 += 1;
                if tries.1 < MAX_TRIES {
                    continue;
                }
            }
            self.unresolved.remove(&inode);
            self.cache.insert(
                inode,
                Holders {
                    found: Vec::new(),
                    hidden: unreadable,
                },
            );
        }
    }

    fn remember(&mut self, pid: u32) {
        self.recent.retain(|p| *p != pid);
        self.recent.push_front(pid);
        self.recent.truncate(RECENT_HOLDERS);
    }
}

/// The inode of a process's network namespace; None where it may not
/// be read (another user's process) or the process is gone.
fn netns_of(root: &ProcRoot, pid: u32) -> Option<u64> {
    let link = std::fs::read_link(root.path(&format!("{pid}/ns/net"))).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The owner of /proc/PID: the process's effective uid.
fn owner_of(proc_dir: &File, pid: u32) -> Option<u32> {
    nix::sys::stat::fstatat(proc_dir, pid.to_string().as_str(), AtFlags::empty())
        .ok()
        .map(|stat| stat.st_uid)
}
