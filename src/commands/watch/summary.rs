//! What a watch saw, once it ends: counts, and lifetimes per process
//! and per remote address, the busiest groups named and the rest
//! counted together.
//!
//! A socket counts once, in one group of each table: where its holder
//! is best known over all its events (a holder found beats one inferred,
//! which beats hidden, which beats unknown). It is added to its groups
//! when it closes, or, if still open, when the summary is taken; until
//! then only its placement is kept, so memory follows the sockets alive.
//!
//! Memory stays bounded however many peers come and go: each table keeps
//! at most `2 * GROUPS_KEPT` groups, folding the half with the fewest
//! sockets into one group of the rest when it fills.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use super::{Event, EventKind, Lifetime, LostScope, SocketEvent};

/// How many groups of each table are kept once a table fills; it fills
/// at twice this many.
pub const GROUPS_KEPT: usize = 1024;

/// How many groups of each table a summary names; the others are
/// counted in one row.
pub const GROUPS_SHOWN: usize = 20;

/// Who a group of sockets belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessKey {
    /// A holder was found (or inferred): its pid and command (raw bytes)
    /// and the container or unit its cgroup names.
    Process {
        /// The pid.
        pid: u32,
        /// The command name, raw bytes.
        command: Vec<u8>,
        /// The container id or systemd unit, where the cgroup names one.
        unit: Option<String>,
    },
    /// The holder is another user's process that this user may not see.
    Hidden,
    /// No holder is known: the socket lived shorter than one poll, or no
    /// process held it when it was looked for.
    Unknown,
}

/// Counts and lifetimes of one group of sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Sockets of the group that had an event.
    pub sockets: usize,
    /// Of those, the ones that closed.
    pub closed: usize,
    /// Of those, the ones whose holder was inferred, not seen (see
    /// [`SocketEvent::likely_holder`]).
    pub inferred: usize,
    /// The shortest lifetime any closed socket may have had.
    pub lifetime_min: Option<Duration>,
    /// The longest lifetime any closed socket may have had; None when
    /// one was there before the watch started (no upper bound).
    pub lifetime_max: Option<Duration>,
    /// Whether some closed socket has no upper bound on its lifetime.
    pub lifetime_unbounded: bool,
}

impl GroupStats {
    fn add(&mut self, lifetime: Option<&Lifetime>, closed: bool, inferred: bool) {
        self.sockets += 1;
        self.inferred += usize::from(inferred);
        if !closed {
            return;
        }
        self.closed += 1;
        let Some(lifetime) = lifetime else {
            return;
        };
        self.lifetime_min = Some(match self.lifetime_min {
            Some(min) => min.min(lifetime.at_least),
            None => lifetime.at_least,
        });
        match lifetime.at_most {
            Some(at_most) => {
                self.lifetime_max = Some(self.lifetime_max.map_or(at_most, |m| m.max(at_most)));
            }
            None => self.lifetime_unbounded = true,
        }
    }

    fn merge(&mut self, other: &GroupStats) {
        self.sockets += other.sockets;
        self.closed += other.closed;
        self.inferred += other.inferred;
        self.lifetime_min = match (self.lifetime_min, other.lifetime_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.lifetime_max = match (self.lifetime_max, other.lifetime_max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.lifetime_unbounded |= other.lifetime_unbounded;
    }
}

/// The groups that are not named: their sockets together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Others {
    /// How many groups: exactly, or at least this many (`exact` false)
    /// when the table filled and folded some together.
    pub groups: usize,
    /// Whether `groups` is exact.
    pub exact: bool,
    /// Their sockets, counts and lifetimes.
    pub stats: GroupStats,
}

/// One table of the summary: groups by key, bounded.
#[derive(Debug, Clone)]
pub struct Groups<K> {
    kept: HashMap<K, GroupStats>,
    /// What was folded out of `kept` when it filled.
    folded: GroupStats,
    /// The most groups kept at once, once the table has filled: there
    /// were at least that many.
    filled_at: usize,
}

impl<K> Default for Groups<K> {
    fn default() -> Groups<K> {
        Groups {
            kept: HashMap::new(),
            folded: GroupStats::default(),
            filled_at: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Groups<K> {
    /// Whether no socket was counted.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.folded.sockets == 0
    }

    fn add(&mut self, key: &K, lifetime: Option<&Lifetime>, closed: bool, inferred: bool) {
        match self.kept.get_mut(key) {
            Some(stats) => stats.add(lifetime, closed, inferred),
            None => {
                let mut stats = GroupStats::default();
                stats.add(lifetime, closed, inferred);
                self.kept.insert(key.clone(), stats);
                if self.kept.len() >= 2 * GROUPS_KEPT {
                    self.fold();
                }
            }
        }
    }

    /// Folds the half of the groups with the fewest sockets into the
    /// rest.
    fn fold(&mut self) {
        self.filled_at = self.filled_at.max(self.kept.len());
        let mut ranked: Vec<(K, GroupStats)> = self.kept.drain().collect();
        ranked.sort_unstable_by(|a, b| rank(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
        for (_, stats) in ranked.drain(GROUPS_KEPT..) {
            self.folded.merge(&stats);
        }
        self.kept.extend(ranked);
    }

    /// The `n` groups with the most sockets, most first, and the others
    /// together.
    pub fn top(&self, n: usize) -> (Vec<(&K, &GroupStats)>, Others) {
        let mut ranked: Vec<(&K, &GroupStats)> = self.kept.iter().collect();
        ranked.sort_unstable_by(|a, b| rank(a.1, b.1).then_with(|| a.0.cmp(b.0)));
        let rest = ranked.split_off(n.min(ranked.len()));
        let mut others = Others {
            groups: rest.len(),
            exact: self.filled_at == 0,
            stats: self.folded.clone(),
        };
        if !others.exact {
            // When it filled, the table held `filled_at` different groups,
            // of which at most `n` are named.
            others.groups = others.groups.max(self.filled_at - ranked.len());
        }
        for (_, stats) in rest {
            others.stats.merge(stats);
        }
        (ranked, others)
    }
}

/// Most sockets first, then most closed.
fn rank(a: &GroupStats, b: &GroupStats) -> std::cmp::Ordering {
    b.sockets.cmp(&a.sockets).then(b.closed.cmp(&a.closed))
}

/// Where a socket counts: its holder as best known, and its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    process: ProcessKey,
    /// The holder was inferred, not seen.
    inferred: bool,
    remote: Option<IpAddr>,
}

impl Placement {
    fn of(event: &SocketEvent) -> Placement {
        let process_of = |holder: &super::Holder| ProcessKey::Process {
            pid: holder.pid,
            command: holder.command.clone(),
            unit: holder.container.as_ref().map(|c| c.id.clone()),
        };
        let (process, inferred) = match (&event.holders[..], &event.likely_holder) {
            ([holder, ..], _) => (process_of(holder), false),
            ([], Some(likely)) => (process_of(likely), true),
            ([], None) if event.holders_hidden => (ProcessKey::Hidden, false),
            ([], None) => (ProcessKey::Unknown, false),
        };
        let remote =
            (event.socket.remote.port != 0).then(|| event.socket.remote.readable_address());
        Placement {
            process,
            inferred,
            remote,
        }
    }

    /// How well the holder is known: seen, inferred, hidden, unknown.
    fn certainty(&self) -> u8 {
        match (&self.process, self.inferred) {
            (ProcessKey::Process { .. }, false) => 3,
            (ProcessKey::Process { .. }, true) => 2,
            (ProcessKey::Hidden, _) => 1,
            (ProcessKey::Unknown, _) => 0,
        }
    }

    /// The better of what was known and what an event says.
    fn improved_by(self, later: Placement) -> Placement {
        let remote = self.remote.or(later.remote);
        let mut best = if later.certainty() > self.certainty() {
            later
        } else {
            self
        };
        best.remote = remote;
        best
    }
}

/// The watch's totals.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// How long the watch ran.
    pub duration: Duration,
    /// Sockets that appeared.
    pub appeared: usize,
    /// State changes seen.
    pub state_changes: usize,
    /// Sockets that closed.
    pub closed: usize,
    /// Of those, the ones no poll saw: they lived shorter than one poll.
    pub seen_only_at_close: usize,
    /// Destroy notifications the kernel dropped because lsport read too
    /// slowly, as its drop counter says.
    pub lost: u64,
    /// Which closes `lost` covers.
    pub lost_scope: LostScope,
    /// Times the kernel said notifications were dropped.
    pub overflows: usize,
    /// Sockets whose holders this user may not see.
    pub hidden_holders: usize,
    /// Per holding process.
    pub by_process: Groups<ProcessKey>,
    /// Per remote address, for connected sockets.
    pub by_remote: Groups<IpAddr>,
    /// Sockets that had an event and have not closed: where they count.
    open: HashMap<u64, Placement>,
}

impl Summary {
    /// Adds one event.
    pub(super) fn record(&mut self, event: &Event) {
        let event = match event {
            Event::Socket(event) => event,
            Event::Lost(lost) => {
                self.overflows += 1;
                self.lost += lost.count.unwrap_or(0);
                return;
            }
            Event::Started(_) | Event::Paced(_) => return,
        };
        match event.kind {
            EventKind::Appeared => self.appeared += 1,
            EventKind::StateChanged { .. } => self.state_changes += 1,
            EventKind::Closed => {
                self.closed += 1;
                self.seen_only_at_close += usize::from(event.seen_only_at_close);
            }
        }
        let cookie = event.socket.cookie;
        let known = if event.kind == EventKind::Closed {
            self.open.remove(&cookie)
        } else {
            self.open.get(&cookie).cloned()
        };
        if known.is_none() && event.holders_hidden {
            self.hidden_holders += 1;
        }
        let offered = Placement::of(event);
        let placement = match known {
            Some(known) => known.improved_by(offered),
            None => offered,
        };
        if event.kind == EventKind::Closed {
            self.count(&placement, event.lifetime.as_ref(), true);
        } else {
            self.open.insert(cookie, placement);
        }
    }

    /// Forgets a socket that left the view without closing: it counts
    /// as it was, still open.
    pub(super) fn forget(&mut self, cookie: u64) {
        if let Some(placement) = self.open.remove(&cookie) {
            self.count(&placement, None, false);
        }
    }

    fn count(&mut self, placement: &Placement, lifetime: Option<&Lifetime>, closed: bool) {
        self.by_process
            .add(&placement.process, lifetime, closed, placement.inferred);
        if let Some(remote) = &placement.remote {
            self.by_remote.add(remote, lifetime, closed, false);
        }
    }

    /// The totals as they stand, the sockets still open included.
    pub(super) fn taken(&self, duration: Duration) -> Summary {
        let mut summary = self.clone();
        summary.duration = duration;
        let open = std::mem::take(&mut summary.open);
        for placement in open.values() {
            summary.count(placement, None, false);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_after(ms: u64) -> Lifetime {
        Lifetime {
            at_least: Duration::ZERO,
            at_most: Some(Duration::from_millis(ms)),
        }
    }

    #[test]
    fn a_full_table_keeps_the_busiest_groups_and_counts_the_rest() {
        let mut groups: Groups<u32> = Groups::default();
        // Group 0 is busy from the start; thousands of one-socket groups
        // come after it.
        for _ in 0..50 {
            groups.add(&0, Some(&closed_after(5)), true, false);
        }
        let peers = 10 * GROUPS_KEPT as u32;
        for key in 1..=peers {
            groups.add(&key, Some(&closed_after(7)), true, false);
        }
        assert!(groups.kept.len() < 2 * GROUPS_KEPT);
        let (shown, others) = groups.top(GROUPS_SHOWN);
        assert_eq!(shown.len(), GROUPS_SHOWN);
        assert_eq!((shown[0].0, shown[0].1.sockets), (&0, 50));
        // Every socket is counted, named or not.
        let named: usize = shown.iter().map(|(_, s)| s.sockets).sum();
        assert_eq!(named + others.stats.sockets, 50 + peers as usize);
        assert_eq!(others.stats.closed, others.stats.sockets);
        assert_eq!(others.stats.lifetime_max, Some(Duration::from_millis(7)));
        // Not every group is known any more: a lower bound, said so.
        assert!(!others.exact);
        assert!(others.groups >= 2 * GROUPS_KEPT - GROUPS_SHOWN);
        assert!(others.groups < peers as usize);
    }

    #[test]
    fn a_table_that_never_filled_counts_its_other_groups_exactly() {
        let mut groups: Groups<u32> = Groups::default();
        for key in 0..30 {
            groups.add(&key, None, false, false);
        }
        let (shown, others) = groups.top(GROUPS_SHOWN);
        assert_eq!(shown.len(), 20);
        assert!(others.exact);
        assert_eq!((others.groups, others.stats.sockets), (10, 10));
    }

    #[test]
    fn a_socket_counts_once_where_its_holder_is_best_known() {
        let seen = ProcessKey::Process {
            pid: 7,
            command: b"server".to_vec(),
            unit: None,
        };
        let place = |process: ProcessKey, inferred| Placement {
            process,
            inferred,
            remote: None,
        };
        // Seen with its holder, closed hidden: it stays with the holder.
        let first = place(seen.clone(), false);
        assert_eq!(
            first.clone().improved_by(place(ProcessKey::Hidden, false)),
            first
        );
        // Unknown first, found later: it moves to the holder.
        assert_eq!(
            place(ProcessKey::Unknown, false).improved_by(first.clone()),
            first
        );
        // Inferred, then seen: seen wins.
        let inferred = place(seen.clone(), true);
        assert_eq!(inferred.improved_by(first.clone()), first);
        // Hidden beats unknown.
        assert_eq!(
            place(ProcessKey::Unknown, false)
                .improved_by(place(ProcessKey::Hidden, false))
                .process,
            ProcessKey::Hidden
        );
    }
}
