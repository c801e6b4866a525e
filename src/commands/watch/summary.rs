//! What a watch saw, once it ends: counts, and lifetimes per process
//! and per remote address.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::{Event, EventKind, SocketEvent};

/// Who a group of sockets belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProcessKey {
    /// A holder was found: its pid and command (raw bytes) and the
    /// container or unit its cgroup names.
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
    /// The shortest lifetime any closed socket may have had.
    pub lifetime_min: Option<Duration>,
    /// The longest lifetime any closed socket may have had; None when
    /// one was there before the watch started (no upper bound).
    pub lifetime_max: Option<Duration>,
    /// Whether some closed socket has no upper bound on its lifetime.
    pub lifetime_unbounded: bool,
}

impl GroupStats {
    fn add(&mut self, event: &SocketEvent, first: bool) {
        if first {
            self.sockets += 1;
        }
        if event.kind != EventKind::Closed {
            return;
        }
        self.closed += 1;
        let Some(lifetime) = &event.lifetime else {
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
    pub lost_scope: super::LostScope,
    /// Times the kernel said notifications were dropped.
    pub overflows: usize,
    /// Sockets whose holders this user may not see.
    pub hidden_holders: usize,
    /// Per holding process, ordered by process.
    pub by_process: BTreeMap<ProcessKey, GroupStats>,
    /// Per remote address, for connected sockets.
    pub by_remote: BTreeMap<IpAddr, GroupStats>,
    counted: HashSet<u64>,
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
            Event::Started(_) => return,
        };
        // A socket counts once, at its first event (its close, if the
        // watch saw nothing before).
        let first = match event.kind {
            EventKind::Closed => !self.counted.remove(&event.socket.cookie),
            _ => self.counted.insert(event.socket.cookie),
        };
        match event.kind {
            EventKind::Appeared => self.appeared += 1,
            EventKind::StateChanged { .. } => self.state_changes += 1,
            EventKind::Closed => {
                self.closed += 1;
                self.seen_only_at_close += usize::from(event.seen_only_at_close);
            }
        }
        if first && event.holders_hidden {
            self.hidden_holders += 1;
        }
        let key = match (event.holders.first(), event.holders_hidden) {
            (Some(holder), _) => ProcessKey::Process {
                pid: holder.pid,
                command: holder.command.clone(),
                unit: holder.container.as_ref().map(|c| c.id.clone()),
            },
            (None, true) => ProcessKey::Hidden,
            (None, false) => ProcessKey::Unknown,
        };
        self.by_process.entry(key).or_default().add(event, first);
        if event.socket.remote.port != 0 {
            let remote = event.socket.remote.readable_address();
            self.by_remote.entry(remote).or_default().add(event, first);
        }
    }
}
