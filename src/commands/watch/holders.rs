//! Holders of the sockets a watch finds, by a scan aimed at the likely
//! processes rather than all of /proc at every poll: first the
//! processes that held a socket earlier in the watch (a server holds
//! every connection it accepts, a client makes one after another), then
//! the processes of the cgroup the socket was created in (a service's
//! few, where the kernel names it), then the processes of the socket's
//! uid, then the rest, stopping at the first group that accounts for
//! every socket. The processes of the uid that also live in the watched
//! network namespace come before the others of the uid: on a host of
//! containers, that is a handful of processes instead of thousands.
//! Within a group the highest pids come first: a short-lived client is
//! usually young.
//!
//! Reading fd tables is what a watch spends most on, so the scans share
//! an allowance of CPU time: [`SCAN_SHARE`] of the time that passes,
//! saved up to [`SCAN_BURST`] (CPU time, not the wall clock: on a loaded
//! machine a scan that waits for the CPU costs nothing meanwhile). A
//! listener that appears now and then is searched for
//! in full; a stream of short-lived connections by unknown processes
//! does not make the watch a busy loop. A scan also stops as soon as the
//! sockets it looks for have closed. A socket whose holder was not
//! reached is reported without one. Answers are cached per inode until
//! the socket closes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::time::{Duration, Instant};

use nix::fcntl::AtFlags;

use crate::holders::cgroups::Hierarchy;
use crate::holders::container::Container;
use crate::holders::procfs::{self, FdTable};
use crate::query::ProcessFields;
use crate::sys::ProcRoot;

use super::keys::{KeyMap, KeySet};
use super::pace::thread_cpu_time;

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
    cache: KeyMap<Holders>,
    recent: VecDeque<u32>,
    /// The inode of the watched network namespace, if known.
    netns: Option<u64>,
    /// Sockets whose scan ran out of time: uid, and tries so far.
    unresolved: KeyMap<(Sought, u32)>,
    /// The cgroup v2 hierarchy, to read the processes of a cgroup.
    hierarchy: Option<Hierarchy>,
    /// The path of each cgroup id met, None where not found.
    cgroup_paths: HashMap<u64, Option<String>>,
    /// What decides the order of a search, per process, read once.
    processes: HashMap<u32, ProcessFacts>,
    /// The scan time available now, and when it was last topped up.
    allowance: Duration,
    allowance_at: Instant,
    /// lsport's effective uid.
    own_uid: u32,
    /// Sockets of lsport's own user that a whole search did not find
    /// while some processes could not be read, and when it ended: hidden
    /// if a later dump still finds them (see [`HolderFinder::seen_alive`]).
    suspects: KeyMap<Instant>,
}

/// The most sockets one search looks for. A watch of every port of a big
/// host starts with hundreds of thousands, of which a search within its
/// share of the CPU finds a few thousand; keeping the rest in its books
/// would cost more than it finds.
pub const MAX_SOUGHT: usize = 4096;

/// How many polls look for a holder before it counts as not found.
const MAX_TRIES: u32 = 5;

/// The share of the time that scans may spend reading fd tables.
pub const SCAN_SHARE: f64 = 0.02;

/// The most scan time saved up, and so the longest one scan.
pub const SCAN_BURST: Duration = Duration::from_millis(50);

/// The longest a scan may take by the wall clock, however little CPU
/// time it used (on a machine too loaded to give it any).
const WALL_CEILING: Duration = Duration::from_secs(1);

/// How often a scan asks which of its sockets closed.
const CLOSED_CHECK_EVERY: Duration = Duration::from_millis(1);

/// A socket whose holders are looked for: its owner and, where the
/// kernel gave it, the id of the cgroup it was created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sought {
    pub uid: u32,
    pub cgroup: Option<u64>,
}

/// The owner and network namespace of a process; None where they may
/// not be read.
struct ProcessFacts {
    uid: Option<u32>,
    netns: Option<u64>,
}

/// One search through fd tables.
struct Scan<'a> {
    /// The sockets not found yet: inode, uid.
    wanted: KeyMap<Sought>,
    /// The sockets found: inode, then (pid, fd) of each holder.
    found: KeyMap<Vec<(u32, u32)>>,
    visited: HashSet<u32>,
    /// The wall clock's limit: notifications are read during a scan, but
    /// the watch goes on only after it.
    deadline: Instant,
    /// The limit in this thread's CPU time, which is what a scan costs
    /// the machine (a loaded machine's wall clock would overstate it).
    cpu_deadline: Option<Duration>,
    out_of_time: bool,
    /// Some fd table could not be read.
    unreadable: bool,
    /// Asked now and then which sockets closed.
    closed: Option<&'a mut dyn FnMut() -> KeySet>,
    next_closed_check: Instant,
    /// The sockets that closed before they were found.
    gone: Vec<u64>,
}

impl<'a> Scan<'a> {
    fn new(wanted: KeyMap<Sought>, deadline: Instant) -> Scan<'a> {
        Scan {
            wanted,
            found: KeyMap::default(),
            visited: HashSet::new(),
            deadline,
            cpu_deadline: None,
            out_of_time: false,
            unreadable: false,
            closed: None,
            next_closed_check: Instant::now() + CLOSED_CHECK_EVERY,
            gone: Vec::new(),
        }
    }

    /// Drops the sockets that closed, now and then; false when none is
    /// left to look for.
    fn still_looking(&mut self, now: Instant) -> bool {
        if now >= self.next_closed_check {
            self.next_closed_check = now + CLOSED_CHECK_EVERY;
            if let Some(closed) = self.closed.as_mut() {
                let closed = closed();
                let found = &self.found;
                let gone = &mut self.gone;
                self.wanted.retain(|inode, _| {
                    let drop = closed.contains(inode) && !found.contains_key(inode);
                    if drop {
                        gone.push(*inode);
                    }
                    !drop
                });
            }
        }
        !self.wanted.is_empty()
    }
}

impl HolderFinder {
    /// A finder reading `root` (normally /proc), for sockets of the
    /// network namespace whose inode is `netns`.
    pub fn new(root: &ProcRoot, netns: Option<u64>) -> HolderFinder {
        HolderFinder {
            root: root.clone(),
            proc_dir: procfs::open_proc(root),
            cache: KeyMap::default(),
            recent: VecDeque::new(),
            netns,
            unresolved: KeyMap::default(),
            processes: HashMap::new(),
            hierarchy: Hierarchy::locate(root),
            cgroup_paths: HashMap::new(),
            allowance: SCAN_BURST,
            allowance_at: Instant::now(),
            own_uid: nix::unistd::geteuid().as_raw(),
            suspects: KeyMap::default(),
        }
    }

    /// The scan time available now: what was saved, plus the share of
    /// the time since, up to the burst.
    fn top_up(&mut self) -> Duration {
        let now = Instant::now();
        let earned = now.duration_since(self.allowance_at).mul_f64(SCAN_SHARE);
        self.allowance = (self.allowance + earned).min(SCAN_BURST);
        self.allowance_at = now;
        self.allowance
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
        self.suspects.remove(&inode);
    }

    /// Whether some socket waits for a dump to say it outlived the
    /// search that did not find its holder.
    pub fn has_suspects(&self) -> bool {
        !self.suspects.is_empty()
    }

    /// A dump that started at `dump_start` found the socket: if a search
    /// that ended before did not find its holder while some processes
    /// could not be read, its holder is hidden among them.
    pub fn seen_alive(&mut self, inode: u64, dump_start: Instant) {
        if let Some(&ended) = self.suspects.get(&inode)
            && dump_start > ended
        {
            self.suspects.remove(&inode);
            if let Some(holders) = self.cache.get_mut(&inode) {
                holders.hidden = true;
            }
        }
    }

    /// The first step of a search: looks for the holders of these
    /// sockets (inode, owner), those not already known, among the recent
    /// holders only, which is cheap and where most are. Returns the
    /// sockets still looked for, with those left from earlier polls, for
    /// [`HolderFinder::resolve`]. At most [`MAX_SOUGHT`] are looked for,
    /// the first ones given first: the others are reported without
    /// holders.
    pub fn resolve_recent(&mut self, sockets: &[(u64, Sought)]) -> Vec<(u64, Sought)> {
        let mut wanted: KeyMap<Sought> = sockets
            .iter()
            .filter(|(inode, _)| *inode != 0 && !self.cache.contains_key(inode))
            .take(MAX_SOUGHT)
            .copied()
            .collect();
        let room = MAX_SOUGHT.saturating_sub(wanted.len());
        let left: Vec<(u64, Sought)> = self
            .unresolved
            .iter()
            .map(|(inode, (sought, _))| (*inode, *sought))
            .collect();
        let (kept, dropped) = left.split_at(room.min(left.len()));
        wanted.extend(kept.iter().copied());
        for (inode, _) in dropped {
            self.unresolved.remove(inode);
        }
        if wanted.is_empty() || self.proc_dir.is_none() {
            return Vec::new();
        }
        let recent: Vec<u32> = self.recent.iter().copied().collect();
        let mut scan = Scan::new(wanted, Instant::now() + Duration::from_secs(1));
        self.scan_tier(&recent, &mut scan);
        let rest = scan.wanted.iter().map(|(i, w)| (*i, *w)).collect();
        self.record_found(scan.found);
        rest
    }

    /// The second step: looks for the holders of `sockets` (what
    /// [`HolderFinder::resolve_recent`] returned) through the rest of
    /// /proc, the likeliest processes first, within `budget` of CPU
    /// time and the
    /// allowance. `closed` names the inodes of sockets known to have
    /// closed: they are looked for no further. What is not reached is
    /// looked for again at the next polls, a few times, before it counts
    /// as not found.
    pub fn resolve(
        &mut self,
        sockets: &[(u64, Sought)],
        budget: Duration,
        closed: &mut dyn FnMut() -> KeySet,
    ) {
        let wanted: KeyMap<Sought> = sockets.iter().copied().collect();
        if wanted.is_empty() {
            return;
        }
        let budget = budget.min(self.top_up());
        let began = thread_cpu_time();
        let ceiling = Instant::now() + WALL_CEILING;
        self.resolve_within(wanted, ceiling, began + budget, closed);
        let spent = thread_cpu_time().saturating_sub(began);
        self.allowance = self.allowance.saturating_sub(spent);
    }

    fn resolve_within(
        &mut self,
        wanted: KeyMap<Sought>,
        deadline: Instant,
        cpu_deadline: Duration,
        closed: &mut dyn FnMut() -> KeySet,
    ) {
        if self.proc_dir.is_none() {
            return;
        }
        let uids: HashSet<u32> = wanted.values().map(|w| w.uid).collect();
        let cgroups: HashSet<u64> = wanted.values().filter_map(|w| w.cgroup).collect();
        let same_cgroup = self.processes_in(&cgroups);
        let mut all = procfs::list_pids(&self.root).unwrap_or_default();
        all.reverse();
        self.learn_processes(&all);
        let same_uid: Vec<u32> = all
            .iter()
            .copied()
            .filter(|pid| self.processes[pid].uid.is_some_and(|u| uids.contains(&u)))
            .collect();
        let same_netns: Vec<u32> = match self.netns {
            Some(netns) => same_uid
                .iter()
                .copied()
                .filter(|pid| self.processes[pid].netns == Some(netns))
                .collect(),
            None => Vec::new(),
        };
        // The smaller of the two first: a service's cgroup on a systemd
        // host, the namespace's processes on a host of containers (and
        // where every process shares one cgroup, without systemd).
        let (closest, close) = if same_netns.is_empty() || same_cgroup.len() <= same_netns.len() {
            (same_cgroup, same_netns)
        } else {
            (same_netns, same_cgroup)
        };
        let mut scan = Scan::new(wanted, deadline);
        scan.cpu_deadline = Some(cpu_deadline);
        scan.closed = Some(closed);
        // The recent holders were just read: skip them.
        scan.visited.extend(self.recent.iter().copied());
        for tier in [closest, close, same_uid, all] {
            if scan.wanted.is_empty() || scan.out_of_time {
                break;
            }
            self.scan_tier(&tier, &mut scan);
        }
        let Scan {
            wanted,
            found,
            unreadable,
            out_of_time,
            gone,
            ..
        } = scan;
        // Closed before they were found: nothing more to learn.
        for inode in gone {
            self.unresolved.remove(&inode);
        }
        self.record_found(found);
        for (inode, sought) in wanted {
            if out_of_time {
                let tries = self.unresolved.entry(inode).or_insert((sought, 0));
                tries.1 += 1;
                if tries.1 < MAX_TRIES {
                    continue;
                }
            }
            self.unresolved.remove(&inode);
            // Hidden when some process could not be read and the search
            // went through all the others, or the socket is another
            // user's, whose processes are the unreadable ones. A search
            // that ran out of time knows nothing of the processes it did
            // not reach: a socket of lsport's own user is then unknown.
            // And one of lsport's own user may simply have closed while
            // it was looked for (its notice can come late): hidden only
            // once a dump after the search still finds it.
            let others = sought.uid != self.own_uid;
            let hidden = unreadable && (!out_of_time || others);
            if hidden && !others {
                self.suspects.insert(inode, Instant::now());
            }
            self.cache.insert(
                inode,
                Holders {
                    found: Vec::new(),
                    hidden: hidden && others,
                },
            );
        }
    }

    /// Reads the fd tables of `pids` not yet visited, until every socket
    /// is found or the time is up.
    fn scan_tier(&self, pids: &[u32], scan: &mut Scan) {
        let Some(proc_dir) = &self.proc_dir else {
            return;
        };
        for &pid in pids {
            if !scan.visited.insert(pid) {
                continue;
            }
            let now = Instant::now();
            if now >= scan.deadline || scan.cpu_deadline.is_some_and(|d| thread_cpu_time() >= d) {
                scan.out_of_time = true;
                break;
            }
            if !scan.still_looking(now) {
                break;
            }
            let mut hits = Vec::new();
            let table = procfs::socket_fds(proc_dir, pid, |inode, fd| {
                if scan.wanted.contains_key(&inode) {
                    hits.push((inode, fd));
                }
            });
            scan.unreadable |= table == FdTable::Unreadable;
            for (inode, fd) in hits {
                scan.found.entry(inode).or_default().push((pid, fd));
            }
        }
        // A socket may have several holders (a server's workers share its
        // listener): what was found is looked for no further only once
        // the whole tier, where the others likely are, was read.
        scan.wanted
            .retain(|inode, _| !scan.found.contains_key(inode));
    }

    /// Names the processes found and caches each socket's holders.
    fn record_found(&mut self, found: KeyMap<Vec<(u32, u32)>>) {
        let mut names: HashMap<u32, procfs::ProcessInfo> = HashMap::new();
        for (inode, refs) in found {
            let mut holders = Vec::with_capacity(refs.len());
            for (pid, fd) in refs {
                let info = names
                    .entry(pid)
                    .or_insert_with(|| procfs::process_info(&self.root, pid, ProcessFields::ALL));
                holders.push(Holder {
                    pid,
                    fd,
                    command: info.command.clone(),
                    container: info.container.clone(),
                });
                self.remember(pid);
            }
            holders.sort_by_key(|h| (h.pid, h.fd));
            self.unresolved.remove(&inode);
            self.cache.insert(
                inode,
                Holders {
                    found: holders,
                    hidden: false,
                },
            );
        }
    }

    /// The processes of these cgroups, youngest first. A cgroup's path is
    /// looked up once (a walk of the hierarchy, for all new ids at once).
    fn processes_in(&mut self, cgroups: &HashSet<u64>) -> Vec<u32> {
        let Some(hierarchy) = &self.hierarchy else {
            return Vec::new();
        };
        let unknown: HashSet<u64> = cgroups
            .iter()
            .copied()
            .filter(|id| !self.cgroup_paths.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            let tree = hierarchy.walk(Some(&unknown));
            for id in unknown {
                self.cgroup_paths
                    .insert(id, tree.path(id).map(str::to_string));
            }
        }
        let mut pids: Vec<u32> = cgroups
            .iter()
            .filter_map(|id| self.cgroup_paths.get(id)?.as_deref())
            .flat_map(|path| hierarchy.processes(path))
            .collect();
        pids.sort_unstable_by(|a, b| b.cmp(a));
        pids.dedup();
        pids
    }

    /// Reads the uid and network namespace of the processes not seen
    /// before, and forgets those gone. A process that changes either
    /// later is only searched in a less likely place.
    fn learn_processes(&mut self, pids: &[u32]) {
        let Some(proc_dir) = &self.proc_dir else {
            return;
        };
        let alive: HashSet<u32> = pids.iter().copied().collect();
        self.processes.retain(|pid, _| alive.contains(pid));
        for &pid in pids {
            self.processes.entry(pid).or_insert_with(|| ProcessFacts {
                uid: owner_of(proc_dir, pid),
                netns: netns_of(&self.root, pid),
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_time_up_to_the_burst() {
        let mut finder = HolderFinder::new(&ProcRoot::new("/proc"), None);
        finder.allowance = Duration::ZERO;
        finder.allowance_at = Instant::now() - Duration::from_secs(1);
        let after_a_second = finder.top_up();
        // 2% of a second, give or take the time the test takes.
        assert!(
            after_a_second >= Duration::from_millis(20)
                && after_a_second < Duration::from_millis(25),
            "{after_a_second:?}"
        );
        finder.allowance_at = Instant::now() - Duration::from_secs(3600);
        assert_eq!(finder.top_up(), SCAN_BURST);
    }

    #[test]
    fn a_scan_drops_the_sockets_that_closed_before_they_were_found() {
        let sought = Sought {
            uid: 0,
            cgroup: None,
        };
        let wanted: KeyMap<Sought> = [(1, sought), (2, sought), (3, sought)]
            .into_iter()
            .collect();
        let mut closed = || KeySet::from_iter([2, 3]);
        let mut scan = Scan::new(wanted, Instant::now() + SCAN_BURST);
        scan.closed = Some(&mut closed);
        // Socket 3 was found before it closed: its holder is known.
        scan.found.insert(3, vec![(100, 4)]);
        let later = Instant::now() + CLOSED_CHECK_EVERY;
        assert!(scan.still_looking(later));
        let mut left: Vec<u64> = scan.wanted.keys().copied().collect();
        left.sort_unstable();
        assert_eq!(left, [1, 3]);
        assert_eq!(scan.gone, [2]);

        // Once every socket left has closed, the scan stops.
        let mut all_closed = || KeySet::from_iter([1, 2, 3]);
        let one: KeyMap<Sought> = [(1, sought)].into_iter().collect();
        let mut scan = Scan::new(one, Instant::now() + SCAN_BURST);
        scan.closed = Some(&mut all_closed);
        assert!(!scan.still_looking(Instant::now() + CLOSED_CHECK_EVERY));
    }

    #[test]
    fn the_processes_of_a_sockets_cgroup_come_youngest_first() {
        use std::os::unix::fs::MetadataExt;
        // Any directory tree walks the same way as cgroupfs.
        let base =
            std::env::temp_dir().join(format!("lsport-holders-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("a.slice/b.service")).unwrap();
        std::fs::write(base.join("a.slice/b.service/cgroup.procs"), "12\n300\n").unwrap();
        std::fs::write(base.join("a.slice/cgroup.procs"), "7\n").unwrap();
        let id = |p: &str| std::fs::metadata(base.join(p)).unwrap().ino();
        let mut finder = HolderFinder::new(&ProcRoot::new("/proc"), None);
        finder.hierarchy = Some(Hierarchy {
            dir: base.clone(),
            root: "/".to_string(),
        });
        let both = HashSet::from([id("a.slice/b.service"), id("a.slice")]);
        assert_eq!(finder.processes_in(&both), [300, 12, 7]);
        // Unknown ids are looked up once, and stay unknown.
        assert!(finder.processes_in(&HashSet::from([u64::MAX])).is_empty());
        assert_eq!(finder.cgroup_paths.get(&u64::MAX), Some(&None));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
