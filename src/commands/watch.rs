//! `lsport watch`: every socket that takes a port, over time.
//!
//! Two sources joined by the kernel's socket cookie: a filtered
//! sock_diag dump at every interval finds new sockets and state
//! changes, and the kernel's destroy notifications report every close,
//! including sockets that lived shorter than one poll ("seen only at
//! close"). [`Watch`] is an iterator of [`Event`]s, each returned as soon
//! as it is known; [`Watch::summary`] gives the totals at the end.
//!
//! Times are when lsport learned of an event. A lifetime is given as
//! bounds: a socket was born after the last dump that did not see it and
//! before the first that did, and closed after the last dump that saw it.
//!
//! TIME_WAIT entries and request sockets (NEW_SYN_RECV) are left out of
//! the dumps: they are what remains of a connection that closed, or one
//! not yet accepted, and have no process. A connection is reported from
//! its full socket, and closes when that socket is destroyed.
//!
//! The view is dumped in parts, each as often as it needs and as its
//! cost allows (see `dumps`): listeners and UDP sockets at every poll,
//! connections when the namespace's TCP counters moved, bound-only
//! sockets once every [`BOUND_SWEEP_EVERY`] intervals; the costly walks
//! within a share of the time, said by an [`Event::Paced`] line when
//! that makes them rarer than asked.

mod dumps;
mod holders;
mod keys;
mod likely;
mod pace;
mod summary;

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use dumps::{BOUND_SWEEP_EVERY, SWEEP_SHARE, WALK_SHARE};
pub use holders::{Holder, Holders};
pub use pace::PaceChange;
pub use summary::{GROUPS_SHOWN, GroupStats, Groups, Others, ProcessKey, Summary};

use dumps::{Batch, Dumps, Part};
use holders::{HolderFinder, Sought};
use keys::{KeyMap, KeySet};
use likely::Listeners;
use pace::thread_cpu_time;

use crate::error::Error;
use crate::netns;
use crate::ports::KernelPortPolicy;
use crate::query::{NetnsChoice, Query, View};
use crate::report::{self, Role};
use crate::socket::{Family, PortRange, Protocol, Socket, State};
use crate::source::activity::TcpActivity;
use crate::source::events::{DestroyListener, Dumper};
use crate::source::netlink::DumpError;
use crate::source::notice_filter::NoticeFilter;

/// The default time between two dumps.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// How a watch runs, beyond what its [`Query`] asks.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The time between two dumps.
    pub interval: Duration,
    /// Stop after this long, counted from the first event (the first
    /// dump made); None runs until `stop` is set.
    pub duration: Option<Duration>,
    /// The receive buffer of the notification socket, in bytes (the
    /// kernel doubles it); None makes it as large as allowed. A small one
    /// loses notifications under load (for tests).
    pub receive_buffer: Option<usize>,
    /// Set from elsewhere (a signal handler) to end the watch; it is
    /// looked at least once per interval, and whenever a signal
    /// interrupts the wait.
    pub stop: Option<&'static AtomicBool>,
    /// Where the events go (standard output): the watch ends when this
    /// descriptor reports an error or a hang-up, as a pipe does once its
    /// reader has gone (`lsport watch PORT | head -1` after head exits),
    /// without waiting for an event to write.
    pub output: Option<RawFd>,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            interval: DEFAULT_INTERVAL,
            duration: None,
            receive_buffer: None,
            stop: None,
            output: None,
        }
    }
}

/// What happened to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A dump found it for the first time.
    Appeared,
    /// A dump found it in another state than the one before.
    StateChanged {
        /// The state before.
        from: State,
    },
    /// It closed: the kernel destroyed it, or a dump no longer found it.
    Closed,
}

impl EventKind {
    /// The event's name in output: `appeared`, `state` or `closed`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Appeared => "appeared",
            EventKind::StateChanged { .. } => "state",
            EventKind::Closed => "closed",
        }
    }
}

/// How a close became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseSource {
    /// The kernel's destroy notification.
    Notification,
    /// A dump no longer found the socket, and no notification came (one
    /// was lost, or the socket left the view without closing).
    Poll,
}

/// Bounds on how long a socket lived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// It lived at least this long.
    pub at_least: Duration,
    /// It lived at most this long; None for a socket that was there
    /// before the watch started.
    pub at_most: Option<Duration>,
}

/// One socket's event.
#[derive(Debug, Clone)]
pub struct SocketEvent {
    /// When lsport learned of it.
    pub time: SystemTime,
    /// What happened.
    pub kind: EventKind,
    /// The socket: as the last dump saw it, or, for a socket seen only at
    /// close, as the notification gave it. For a close, `state` is the
    /// kernel's state at destruction (CLOSE), or the last state seen when
    /// the close was found by a dump.
    pub socket: Socket,
    /// The uid that created the socket; None for a socket seen only at
    /// close (the notification does not carry it).
    pub uid: Option<u32>,
    /// What the socket does with its local port.
    pub role: Role,
    /// The processes holding it, when known.
    pub holders: Vec<Holder>,
    /// Its holder is another user's process that this user may not see.
    pub holders_hidden: bool,
    /// When no holder was found (and none is hidden): the process that
    /// most likely holds it, inferred, not seen. For a connection
    /// accepted on a listener that one process alone holds, that process
    /// (a server holds what it accepts), unless a connection of that
    /// listener was found held by another. Its `fd` is the listener's.
    pub likely_holder: Option<Box<Holder>>,
    /// The socket lived and closed between two dumps: only the close
    /// notification saw it.
    pub seen_only_at_close: bool,
    /// For a close: the last state a dump saw, if one did.
    pub last_seen_state: Option<State>,
    /// For a close: how long the socket lived.
    pub lifetime: Option<Lifetime>,
    /// For a close: how it became known.
    pub close_source: Option<CloseSource>,
}

/// Notifications the kernel dropped because lsport read too slowly.
#[derive(Debug, Clone)]
pub struct LostEvents {
    /// When lsport learned of it.
    pub time: SystemTime,
    /// How many were dropped since the last report, from the socket's
    /// drop counter; None where the kernel does not give it.
    pub count: Option<u64>,
    /// Which closes the count covers.
    pub scope: LostScope,
}

/// Which closes a count of lost notifications covers. The kernel filters
/// the notifications by port before it queues them (see
/// [`crate::source::notice_filter`]), and counts as dropped only those
/// its filter kept: the closes the watch asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LostScope {
    /// Closes of sockets on the watched ports.
    WatchedPorts,
    /// The same, and of ports in a few narrow gaps between them: the
    /// ports were more ranges than the kernel's filter takes.
    WatchedPortsAndGaps,
    /// Closes of sockets without a peer: listeners, bound-only sockets,
    /// unconnected UDP sockets (the listening view).
    Unconnected,
    /// Every close in the namespace: no filter could be set.
    #[default]
    Everything,
}

impl LostScope {
    /// The scope's name in output.
    pub fn name(self) -> &'static str {
        match self {
            LostScope::WatchedPorts => "watched_ports",
            LostScope::WatchedPortsAndGaps => "watched_ports_and_gaps",
            LostScope::Unconnected => "unconnected",
            LostScope::Everything => "everything",
        }
    }
}

/// The watch is under way: the first event.
#[derive(Debug, Clone)]
pub struct Started {
    /// When the first dump ended; what happens from then on is reported.
    pub time: SystemTime,
    /// Sockets there already, which are reported only when something
    /// happens to them.
    pub sockets: usize,
}

/// One line of a watch.
#[derive(Debug, Clone)]
pub enum Event {
    /// The first event: listening for closes, the first dump made.
    Started(Started),
    /// Something happened to a socket.
    Socket(SocketEvent),
    /// Close notifications were lost; a dump follows at once, and
    /// reports the closes it can still find.
    Lost(LostEvents),
    /// A costly kind of dump runs less often than asked (or again as
    /// asked), to keep within its share of the time.
    Paced(PacedDumps),
}

/// What is dumped less often than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacedKind {
    /// The connection table: new connections and their states are found
    /// less often (their closes are still heard as they happen).
    Connections,
    /// The bind table: bound-only sockets are looked for less often.
    BoundOnly,
}

/// A change in how often a costly kind of dump runs.
#[derive(Debug, Clone)]
pub struct PacedDumps {
    /// When lsport decided it.
    pub time: SystemTime,
    /// Which dumps.
    pub kind: PacedKind,
    /// The share of the time they may take.
    pub share: f64,
    /// What the last one took, the period from now on, and the one
    /// asked for.
    pub change: PaceChange,
}

/// A socket the watch knows to be alive.
struct Tracked {
    socket: Socket,
    role: Role,
    /// The end of the first dump that saw it.
    first_seen_end: Instant,
    /// The start of the dump before that one: it was born after this.
    /// None for a socket there when the watch started.
    born_after: Option<Instant>,
    /// The start of the last dump that saw it.
    last_seen_start: Instant,
    /// The end of the first dump that no longer found it.
    missing_since: Option<Instant>,
}

/// How long a socket that dumps no longer find is waited for before it
/// counts as closed: its close notification may come late.
const MISSING_GRACE: Duration = Duration::from_secs(1);

/// How many closed cookies are remembered, so that a close is reported
/// once even when a dump and a notification both see it.
const CLOSED_MEMORY: usize = 4096;

/// A running watch: an iterator of events.
pub struct Watch {
    query: Query,
    options: WatchOptions,
    ports: Vec<PortRange>,
    dumps: Dumps,
    listener: DestroyListener,
    /// The watched namespace's port policy, read once at the start.
    policy: KernelPortPolicy,
    finder: HolderFinder,
    table: KeyMap<Tracked>,
    /// The cookies of the sockets in the table that the cheap dumps of
    /// every poll look for (listeners, UDP): those alone are checked
    /// for being missing after a poll.
    cheap: KeySet,
    listeners: report::ListenerIndex,
    /// The listeners again, with what names the likely holders of what
    /// they accept.
    accepting: Listeners,
    closed: KeySet,
    closed_order: VecDeque<u64>,
    pending: VecDeque<Event>,
    /// Notifications read but not yet taken in.
    received: Vec<Socket>,
    started: Instant,
    started_wall: SystemTime,
    deadline: Option<Instant>,
    next_poll: Instant,
    drops_reported: u64,
    last_overflow: Option<Instant>,
    summary: Summary,
    /// The output's reader went away.
    output_closed: bool,
    finished: bool,
}

impl Watch {
    /// Starts watching: subscribes to the destroy notifications, then
    /// dumps what is there now (which is not reported: only what
    /// happens to it later) and finds its holders.
    pub fn start(query: &Query, options: &WatchOptions) -> Result<Watch, Error> {
        if options.interval.is_zero() {
            return Err(Error::usage("the interval must be longer than 0"));
        }
        let netns_path = match &query.netns {
            NetnsChoice::Current => None,
            NetnsChoice::One(path) => Some(path.clone()),
            NetnsChoice::All => {
                return Err(Error::usage(
                    "lsport watch follows one network namespace: use --netns, not --all-netns",
                ));
            }
        };
        let wanted: Vec<(Protocol, Family)> = query
            .protocols
            .iter()
            .flat_map(|p| query.families.iter().map(move |f| (*p, *f)))
            .collect();
        let receive_buffer = options.receive_buffer;
        let root = query.proc_root.clone();
        let (mut listener, dumpers, policy, activity) = open_in(netns_path.as_ref(), move || {
            Ok((
                DestroyListener::open(&wanted, receive_buffer)?,
                (Dumper::open()?, Dumper::open()?),
                // The namespace's ephemeral range: roles depend on it.
                KernelPortPolicy::read(&root),
                // Its TCP counters, which say when connections changed.
                TcpActivity::open(&root.path("thread-self/net/snmp")),
            ))
        })?;
        let lost_scope = restrict_notices(&mut listener, query);
        let watched_netns = match &netns_path {
            None => query.proc_root.own_netns_inode(),
            Some(path) => netns::inode_of(path),
        };
        let now = Instant::now();
        let mut watch = Watch {
            ports: query.merged_ports(),
            dumps: Dumps::new(query, options.interval, netns_path, dumpers, activity)?,
            query: query.clone(),
            options: options.clone(),
            listener,
            policy,
            finder: HolderFinder::new(&query.proc_root, watched_netns),
            table: KeyMap::default(),
            cheap: KeySet::default(),
            listeners: report::ListenerIndex::default(),
            accepting: Listeners::default(),
            closed: KeySet::default(),
            closed_order: VecDeque::new(),
            pending: VecDeque::new(),
            received: Vec::new(),
            started: now,
            started_wall: SystemTime::now(),
            deadline: None,
            next_poll: now,
            drops_reported: 0,
            last_overflow: None,
            summary: Summary::default(),
            output_closed: false,
            finished: false,
        };
        watch.summary.lost_scope = lost_scope;
        watch.drops_reported = watch.listener.drops().unwrap_or(0);
        watch.poll(true)?;
        let now = Instant::now();
        // --for counts from here: what happens from now on is reported.
        watch.deadline = options.duration.map(|d| now + d);
        // What the first dumps taught of their pace is said after this.
        for event in &mut watch.pending {
            if let Event::Paced(paced) = event {
                paced.time = watch.started_wall + now.duration_since(watch.started);
            }
        }
        watch.pending.push_front(Event::Started(Started {
            time: watch.wall(now),
            sockets: watch.table.len(),
        }));
        Ok(watch)
    }

    /// The totals so far; complete once the iterator has ended.
    pub fn summary(&self) -> Summary {
        self.summary.taken(self.started.elapsed())
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.started_wall + at.saturating_duration_since(self.started)
    }

    /// Whether the watch ended because its output's reader went away
    /// (see [`WatchOptions::output`]): nothing more can be written there.
    pub fn output_closed(&self) -> bool {
        self.output_closed
    }

    fn stopping(&self) -> bool {
        self.output_closed
            || self.options.stop.is_some_and(|s| s.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits for notifications until the next poll (or the end),
    /// whichever comes first.
    fn wait(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let until = match self.deadline {
            Some(deadline) => self.next_poll.min(deadline),
            None => self.next_poll,
        };
        let timeout = until.saturating_duration_since(now);
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // The output is polled for nothing: poll(2) reports an error or a
        // hang-up whatever is asked (a pipe's writer sees POLLERR once
        // its reader is gone). A negative fd is left out.
        let mut fds = [
            libc::pollfd {
                fd: self.listener.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.options.output.unwrap_or(-1),
                events: 0,
                revents: 0,
            },
            libc::pollfd {
                fd: self.dumps.ready_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: three valid pollfds for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, millis) };
        if ready > 0 && fds[1].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            self.output_closed = true;
        }
        if ready > 0 && fds[0].revents != 0 {
            self.drain()?;
        }
        if ready > 0 && fds[2].revents != 0 {
            // A walk is done: its sockets are taken in while they are news.
            if let Some(batch) = self.dumps.done() {
                self.drain()?;
                self.join(batch?, false)?;
            }
        }
        // EINTR (a signal) and timeouts need nothing: the caller looks at
        // the stop flag and the clock.
        Ok(())
    }

    /// Reads the queued notifications and takes them in.
    fn drain(&mut self) -> Result<(), Error> {
        self.receive()?;
        self.take_in_received();
        Ok(())
    }

    /// Takes in the notifications received so far.
    fn take_in_received(&mut self) {
        let now = Instant::now();
        for socket in std::mem::take(&mut self.received) {
            self.destroyed(socket, now);
        }
    }

    /// Reads the queued notifications into `received`, and reports
    /// those the kernel dropped.
    fn receive(&mut self) -> Result<(), Error> {
        let drained = self
            .listener
            .drain(&mut self.received)
            .map_err(netlink_error)?;
        if drained.overflowed {
            self.note_overflow();
        }
        Ok(())
    }

    /// Reports the notifications the kernel dropped, and makes the next
    /// poll come at once.
    fn note_overflow(&mut self) {
        let now = Instant::now();
        let drops = self.listener.drops();
        let count = drops.map(|d| d.saturating_sub(self.drops_reported));
        if let Some(drops) = drops {
            self.drops_reported = drops;
        }
        self.last_overflow = Some(now);
        self.pending.push_back(Event::Lost(LostEvents {
            time: self.wall(now),
            count,
            scope: self.summary.lost_scope,
        }));
        // Resynchronise at once, every part as soon as its pace allows:
        // the dumps find what closed unseen.
        self.next_poll = now;
        self.dumps.resynchronise();
    }

    /// A close notification. A socket that no dump saw was born after
    /// its part of the view was last known whole.
    fn destroyed(&mut self, socket: Socket, now: Instant) {
        if self.closed.contains(&socket.cookie) {
            return;
        }
        if let Some(tracked) = self.untrack(socket.cookie) {
            let lifetime = Lifetime {
                at_least: tracked
                    .last_seen_start
                    .saturating_duration_since(tracked.first_seen_end),
                at_most: tracked.born_after.map(|b| now.saturating_duration_since(b)),
            };
            let mut closed = socket;
            closed.uid = tracked.socket.uid;
            closed.inode = tracked.socket.inode;
            closed.v6only = tracked.socket.v6only;
            self.close(
                tracked,
                closed,
                now,
                lifetime,
                CloseSource::Notification,
                false,
            );
            return;
        }
        // Never seen by a dump: reported only where the view takes any
        // socket on the port; the listening view would otherwise list
        // every short-lived unconnected UDP socket (each DNS lookup).
        if !self.takes_unseen(&socket) {
            return;
        }
        let role = role_at_close(&socket, &self.listeners, &self.policy);
        let born_after = self.dumps.known().unseen_born_after(&socket);
        let tracked = Tracked {
            socket: socket.clone(),
            role,
            first_seen_end: now,
            born_after: Some(born_after),
            last_seen_start: now,
            missing_since: None,
        };
        let lifetime = Lifetime {
            at_least: Duration::ZERO,
            at_most: Some(now.saturating_duration_since(born_after)),
        };
        self.close(
            tracked,
            socket,
            now,
            lifetime,
            CloseSource::Notification,
            true,
        );
    }

    /// Whether a close that no dump saw belongs to the view.
    fn takes_unseen(&self, socket: &Socket) -> bool {
        if self.query.view != View::Ports || self.query.listening_only {
            return false;
        }
        let in_ports = |port: u16| self.ports.iter().any(|r| r.contains(port));
        self.query.wants(socket.protocol, socket.family)
            && (in_ports(socket.local.port)
                || (self.query.match_remote && in_ports(socket.remote.port)))
    }

    fn close(
        &mut self,
        tracked: Tracked,
        socket: Socket,
        now: Instant,
        lifetime: Lifetime,
        source: CloseSource,
        seen_only_at_close: bool,
    ) {
        let holders = self.finder.get(tracked.socket.inode);
        self.finder.forget(tracked.socket.inode);
        self.remember_closed(socket.cookie);
        self.push_socket_event(SocketEvent {
            time: self.wall(now),
            kind: EventKind::Closed,
            uid: (!seen_only_at_close).then_some(tracked.socket.uid),
            role: tracked.role,
            holders: holders.found,
            holders_hidden: holders.hidden,
            likely_holder: None,
            seen_only_at_close,
            last_seen_state: (!seen_only_at_close).then_some(tracked.socket.state),
            lifetime: Some(lifetime),
            close_source: Some(source),
            socket,
        });
    }

    /// Queues an event, naming the likely holder of an accepted
    /// connection whose own was not seen.
    fn push_socket_event(&mut self, mut event: SocketEvent) {
        if event.role == Role::Accepted {
            event.likely_holder = self
                .accepting
                .attribute(
                    &event.socket,
                    &event.holders,
                    event.holders_hidden,
                    &self.finder,
                )
                .map(Box::new);
        }
        self.pending.push_back(Event::Socket(event));
    }

    fn remember_closed(&mut self, cookie: u64) {
        if self.closed.insert(cookie) {
            self.closed_order.push_back(cookie);
            if self.closed_order.len() > CLOSED_MEMORY {
                if let Some(old) = self.closed_order.pop_front() {
                    self.closed.remove(&old);
                }
            }
        }
    }

    /// One poll: notifications first, then the dumps (the cheap ones
    /// now, the costly ones that finished in the background), then the
    /// notifications that came during them; then the join, batch by
    /// batch. The first poll only learns what is there.
    fn poll(&mut self, first: bool) -> Result<(), Error> {
        self.drain()?;
        self.dumps.promote();
        let batches = self.dumps.poll(first)?;
        self.drain()?;
        // The listeners of this poll, to tell accepted connections from
        // outgoing ones in every batch.
        if let Some(cheap) = batches.iter().find(|b| b.cheap) {
            self.listeners = report::listener_index(&cheap.sockets);
            self.accepting.update(&cheap.sockets);
        }
        for batch in batches {
            self.join(batch, first)?;
        }
        Ok(())
    }

    /// Takes in what one batch of dumps found: new sockets, state
    /// changes, their holders; then the sockets of its parts it no
    /// longer found.
    fn join(&mut self, mut batch: Batch, first: bool) -> Result<(), Error> {
        let joining = thread_cpu_time();
        let known = *self.dumps.known();
        let (start, end) = (batch.start, batch.end);
        let sockets = std::mem::take(&mut batch.sockets);
        let mut seen = KeySet::with_capacity_and_hasher(sockets.len(), keys::Keys);
        // Grown once, not doubled step by step while the batch is still
        // held: on a big host that doubling was the peak of the memory.
        self.table
            .reserve(sockets.len().saturating_sub(self.table.len()));
        let mut changed: Vec<(u64, State)> = Vec::new();
        let mut new: Vec<u64> = Vec::new();
        let suspects = self.finder.has_suspects();
        for socket in sockets {
            if self.closed.contains(&socket.cookie) || !seen.insert(socket.cookie) {
                continue;
            }
            if suspects {
                self.finder.seen_alive(socket.inode, start);
            }
            match self.table.get_mut(&socket.cookie) {
                // A walk that began before a later poll saw the socket
                // knows less of it.
                Some(tracked) if tracked.last_seen_start > start => {}
                Some(tracked) => {
                    tracked.last_seen_start = start;
                    tracked.missing_since = None;
                    if tracked.socket.state != socket.state {
                        changed.push((socket.cookie, tracked.socket.state));
                        tracked.role = report::role_of(&socket, &self.listeners, &self.policy);
                        if is_cheap(&socket) {
                            self.cheap.insert(socket.cookie);
                        } else {
                            self.cheap.remove(&socket.cookie);
                        }
                    }
                    tracked.socket = socket;
                }
                None => {
                    new.push(socket.cookie);
                    // Born after its part was last known whole.
                    let born_after = known.at(Part::of(&socket));
                    let tracked = Tracked {
                        role: report::role_of(&socket, &self.listeners, &self.policy),
                        socket,
                        first_seen_end: end,
                        born_after: (!first).then_some(born_after),
                        last_seen_start: start,
                        missing_since: None,
                    };
                    if is_cheap(&tracked.socket) {
                        self.cheap.insert(tracked.socket.cookie);
                    }
                    self.table.insert(tracked.socket.cookie, tracked);
                }
            }
        }
        let mut join = thread_cpu_time().saturating_sub(joining);
        // Listeners and other unconnected sockets first: when there are
        // more than one search takes, they are the ones worth naming.
        let mut inodes: Vec<(bool, u64, Sought)> = new
            .iter()
            .chain(changed.iter().map(|(cookie, _)| cookie))
            .map(|cookie| {
                let socket = &self.table[cookie].socket;
                let (inode, sought) = sought(socket);
                (socket.remote.port != 0, inode, sought)
            })
            .collect();
        inodes.sort_by_key(|(connected, _, _)| *connected);
        let inodes: Vec<(u64, Sought)> = inodes.into_iter().map(|(_, i, s)| (i, s)).collect();
        self.find_holders(&inodes)?;
        let joining = thread_cpu_time();
        for (cookie, from) in changed {
            let event = self.event_for(cookie, EventKind::StateChanged { from }, end);
            self.push_socket_event(event);
        }
        if !first {
            for cookie in new {
                // Closed while its holder was looked for: no more here.
                if self.table.contains_key(&cookie) {
                    let event = self.event_for(cookie, EventKind::Appeared, end);
                    self.push_socket_event(event);
                }
            }
        }
        // Closes read while holders were looked for: the sockets are in
        // the table now, and close as sockets a dump saw.
        self.take_in_received();
        self.missing(&seen, &batch, end);
        join += thread_cpu_time().saturating_sub(joining);
        let now = Instant::now();
        for paced in self.dumps.taken_in(&batch, join) {
            let (kind, share, change) = match paced {
                dumps::Paced::Connections(change) => (PacedKind::Connections, WALK_SHARE, change),
                dumps::Paced::BoundOnly(change) => (PacedKind::BoundOnly, SWEEP_SHARE, change),
            };
            self.pending.push_back(Event::Paced(PacedDumps {
                time: self.wall(now),
                kind,
                share,
                change,
            }));
        }
        Ok(())
    }

    /// Looks for the holders of `sockets` (inode, owner), all in the
    /// table: first among the recent holders; then through the rest of
    /// /proc, reading the notifications as it goes (keeping them to take
    /// in later): a socket that closed is not looked for further, which
    /// would cost a whole scan in vain.
    fn find_holders(&mut self, sockets: &[(u64, Sought)]) -> Result<(), Error> {
        let rest = self.finder.resolve_recent(sockets);
        if rest.is_empty() {
            return Ok(());
        }
        let table = &self.table;
        let listener = &mut self.listener;
        let received = &mut self.received;
        let mut failure = None;
        let mut overflowed = false;
        let mut closed = || {
            match listener.drain(received) {
                Ok(drained) => overflowed |= drained.overflowed,
                Err(err) => failure = Some(err),
            }
            received
                .iter()
                .filter_map(|closed| table.get(&closed.cookie))
                .map(|tracked| tracked.socket.inode)
                .collect()
        };
        // At most half an interval of CPU time, within the allowance;
        // what is not reached is looked for at the next polls.
        let budget = self.options.interval / 2;
        self.finder.resolve(&rest, budget, &mut closed);
        if overflowed {
            self.note_overflow();
        }
        match failure {
            Some(err) => Err(netlink_error(err)),
            None => Ok(()),
        }
    }

    fn event_for(&self, cookie: u64, kind: EventKind, at: Instant) -> SocketEvent {
        let tracked = &self.table[&cookie];
        let holders = self.finder.get(tracked.socket.inode);
        SocketEvent {
            time: self.wall(at),
            kind,
            socket: tracked.socket.clone(),
            uid: Some(tracked.socket.uid),
            role: tracked.role,
            holders: holders.found,
            holders_hidden: holders.hidden,
            likely_holder: None,
            seen_only_at_close: false,
            last_seen_state: None,
            lifetime: None,
            close_source: None,
        }
    }

    /// Sockets a dump no longer found. The notification of a close may
    /// trail the dump (the kernel sends it from a work queue, late on a
    /// loaded machine), so a socket is given another dump and
    /// [`MISSING_GRACE`]; then it is reported closed if notifications were lost since it was last
    /// seen, or in the port view (where only a close takes a socket out),
    /// and otherwise dropped quietly: it left the listening view by
    /// connecting. A socket counts as missing only after a dump of its
    /// part of the view (see [`Batch::covers`]).
    fn missing(&mut self, seen: &KeySet, batch: &Batch, end: Instant) {
        let candidates: Vec<u64> = if batch.cheap {
            self.cheap.iter().copied().collect()
        } else {
            self.table.keys().copied().collect()
        };
        let mut gone = Vec::new();
        for cookie in candidates {
            if seen.contains(&cookie) {
                continue;
            }
            let Some(tracked) = self.table.get_mut(&cookie) else {
                continue;
            };
            if !batch.covers(Part::of(&tracked.socket)) || tracked.last_seen_start > batch.start {
                continue;
            }
            match tracked.missing_since {
                None => tracked.missing_since = Some(end),
                Some(since) if end.saturating_duration_since(since) >= MISSING_GRACE => {
                    gone.push(cookie);
                }
                Some(_) => {}
            }
        }
        let port_view = self.query.view == View::Ports && !self.query.listening_only;
        for cookie in gone {
            let Some(tracked) = self.untrack(cookie) else {
                continue;
            };
            let lost = self
                .last_overflow
                .is_some_and(|at| at >= tracked.last_seen_start);
            if !(port_view || lost) {
                self.finder.forget(tracked.socket.inode);
                self.summary.forget(cookie);
                continue;
            }
            let missing_since = tracked.missing_since.unwrap_or(end);
            let lifetime = Lifetime {
                at_least: tracked
                    .last_seen_start
                    .saturating_duration_since(tracked.first_seen_end),
                at_most: tracked
                    .born_after
                    .map(|b| missing_since.saturating_duration_since(b)),
            };
            let socket = tracked.socket.clone();
            self.close(tracked, socket, end, lifetime, CloseSource::Poll, false);
        }
    }
}

impl Iterator for Watch {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Result<Event, Error>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.summary.record(&event);
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if self.stopping() {
                // What is queued now still belongs to the watch.
                self.finished = true;
                if let Err(err) = self.drain() {
                    return Some(Err(err));
                }
                continue;
            }
            let step = if Instant::now() >= self.next_poll {
                self.next_poll = next_tick(self.next_poll, self.options.interval);
                self.poll(false)
            } else {
                self.wait()
            };
            if let Err(err) = step {
                self.finished = true;
                return Some(Err(err));
            }
        }
    }
}

impl Watch {
    /// Takes a socket out of the table.
    fn untrack(&mut self, cookie: u64) -> Option<Tracked> {
        self.cheap.remove(&cookie);
        self.table.remove(&cookie)
    }
}

/// Whether the cheap dumps of every poll look for this socket.
fn is_cheap(socket: &Socket) -> bool {
    matches!(Part::of(socket), Part::Listening | Part::Udp)
}

/// What the holder search needs of a socket: its inode, owner and cgroup.
fn sought(socket: &Socket) -> (u64, Sought) {
    let sought = Sought {
        uid: socket.uid,
        cgroup: socket.cgroup_id.map(|id| id.get()),
    };
    (socket.inode, sought)
}

/// The poll after `previous`: on the interval's grid, skipping ticks
/// that a slow poll overran.
fn next_tick(previous: Instant, interval: Duration) -> Instant {
    let now = Instant::now();
    let mut next = previous + interval;
    if next <= now {
        let behind = now.duration_since(previous).as_nanos() / interval.as_nanos().max(1);
        next = previous + interval * (behind as u32 + 1);
    }
    next
}

/// The role of a socket seen only at close, whose state is CLOSE by
/// then: a connection (it has a peer) was accepted when a local listener
/// has its port, else outgoing; one without a peer was bound only, or,
/// for UDP, received on its port.
fn role_at_close(
    socket: &Socket,
    listeners: &report::ListenerIndex,
    policy: &KernelPortPolicy,
) -> Role {
    if socket.remote.port == 0 {
        return match socket.protocol {
            Protocol::Tcp | Protocol::Sctp => Role::BoundOnly,
            Protocol::Udp => Role::Listener,
        };
    }
    match socket.protocol {
        Protocol::Udp | Protocol::Sctp => Role::Outgoing,
        Protocol::Tcp => {
            let mut connected = socket.clone();
            connected.state = State::Established;
            report::role_of(&connected, listeners, policy)
        }
    }
}

/// Asks the kernel to pass the listener only the closes the view can
/// use, so that the others neither cost a wake-up nor count as lost;
/// returns what a count of lost notifications then covers.
fn restrict_notices(listener: &mut DestroyListener, query: &Query) -> LostScope {
    let filter = if query.unconnected_only() {
        NoticeFilter::Unconnected
    } else if query.view == View::Ports {
        NoticeFilter::Ports {
            ports: query.merged_ports(),
            match_remote: query.match_remote,
        }
    } else {
        return LostScope::Everything;
    };
    match (listener.restrict(&filter), &filter) {
        (Ok(Some(true)), NoticeFilter::Unconnected) => LostScope::Unconnected,
        (Ok(Some(true)), NoticeFilter::Ports { .. }) => LostScope::WatchedPorts,
        (Ok(Some(false)), _) => LostScope::WatchedPortsAndGaps,
        // No filter: every close reaches lsport, and counts when lost.
        (Ok(None) | Err(_), _) => LostScope::Everything,
    }
}

/// Opens sockets inside the namespace asked for (a netlink socket keeps
/// the namespace it was made in).
fn open_in<T: Send>(
    netns_path: Option<&PathBuf>,
    open: impl FnOnce() -> Result<T, DumpError> + Send,
) -> Result<T, Error> {
    match netns_path {
        None => open().map_err(netlink_error),
        Some(path) => netns::run_in(path, None, open)
            .map_err(|e| e.into_error(path))?
            .map_err(netlink_error),
    }
}

fn netlink_error(err: DumpError) -> Error {
    let hint = match err.errno {
        Some(libc::EPERM | libc::EACCES) => {
            " (lsport watch needs sock_diag, which is refused here)"
        }
        Some(libc::EPROTONOSUPPORT | libc::ENOENT) => {
            " (is the kernel's inet_diag / tcp_diag / udp_diag support loaded?)"
        }
        _ => "",
    };
    Error::Netlink {
        errno: err.errno,
        message: format!("{err}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_tcp(local: u16, remote: u16) -> Socket {
        Socket {
            inode: 0,
            cookie: 1,
            ..Socket::example(
                State::Close,
                &format!("127.0.0.1:{local}"),
                &format!("127.0.0.1:{remote}"),
            )
        }
    }

    #[test]
    fn a_connection_seen_only_at_close_is_accepted_where_a_listener_has_its_port() {
        let listeners =
            report::ListenerIndex::from_iter([(7000, vec!["127.0.0.1".parse().unwrap()])]);
        let policy = KernelPortPolicy::kernel_defaults();
        assert_eq!(
            role_at_close(&closed_tcp(7000, 40000), &listeners, &policy),
            Role::Accepted
        );
        assert_eq!(
            role_at_close(&closed_tcp(40000, 7000), &listeners, &policy),
            Role::Outgoing
        );
        assert_eq!(
            role_at_close(&closed_tcp(7000, 0), &listeners, &policy),
            Role::BoundOnly
        );
    }

    #[test]
    fn ticks_stay_on_the_grid() {
        let start = Instant::now() - Duration::from_millis(350);
        let next = next_tick(start, Duration::from_millis(100));
        assert_eq!(next.duration_since(start), Duration::from_millis(400));
    }
}
