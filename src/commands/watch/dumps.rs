//! The dumps a watch makes, part by part, and when.
//!
//! The kernel answers a dump by walking a whole table of the machine,
//! whatever the port filter: what a dump costs follows the machine's
//! sockets, not the watched ones. So the view is dumped in parts, each
//! as often as it needs and can afford:
//!
//! - **listeners** (TCP LISTEN) walk the small listening table, and
//!   **UDP** sockets the UDP table: every poll, the cheap dumps;
//! - **connections** (TCP, the other states but TIME_WAIT and request
//!   sockets) walk every connection of the machine: only when the
//!   namespace's TCP counters moved since the last walk (nothing can be
//!   new otherwise; closes come from the notifications), and no more
//!   often than keeps the walks within [`WALK_SHARE`] of a CPU;
//! - **bound-only** TCP sockets walk every bound socket of the machine:
//!   once every [`BOUND_SWEEP_EVERY`] intervals (a bind before listen or
//!   connect lasts microseconds; a socket that stays bound is rare),
//!   within [`SWEEP_SHARE`] of a CPU.
//!
//! The costly walks run on a thread of their own, one set at a time, so
//! that a poll costs what the cheap dumps cost and keeps its interval on
//! the biggest machine; their sockets are taken in when they are done.
//! Where a pace stretches past what was asked, the watch says so.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::query::{Query, View};
use crate::socket::{Family, Protocol, Socket, State};
use crate::source::activity::TcpActivity;
use crate::source::events::Dumper;
use crate::source::netlink::{self, DumpRequest};

use super::pace::{Pace, PaceChange, thread_cpu_time};
use super::{netlink_error, open_in};

/// A poll looks for bound-only TCP sockets when this many intervals
/// passed since the last one did (once a second at the default
/// interval); so do the first, and the one after notifications were
/// lost.
pub const BOUND_SWEEP_EVERY: u32 = 10;

/// The most of the time dumps of the connection table may take.
pub const WALK_SHARE: f64 = 0.10;

/// The most of the time looking for bound-only sockets may take.
pub const SWEEP_SHARE: f64 = 0.02;

const LISTEN: u32 = 1 << 10;
const TIME_WAIT: u32 = 1 << 6;
const NEW_SYN_RECV: u32 = 1 << 12;
const BOUND_INACTIVE: u32 = 1 << 13;

/// The part of the kernel's tables a socket is found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// TCP listeners.
    Listening,
    /// TCP sockets only bound.
    Bound,
    /// TCP connections: every other state.
    Connections,
    /// UDP sockets.
    Udp,
}

impl Part {
    /// Where a socket, as a dump saw it, is found.
    pub fn of(socket: &Socket) -> Part {
        match (socket.protocol, socket.state) {
            (Protocol::Udp, _) => Part::Udp,
            (Protocol::Tcp | Protocol::Sctp, State::Listen) => Part::Listening,
            (Protocol::Tcp | Protocol::Sctp, State::BoundInactive) => Part::Bound,
            (Protocol::Tcp | Protocol::Sctp, _) => Part::Connections,
        }
    }
}

/// When each part of the view was last known whole: the start of its
/// last dump (for connections, or the last moment the TCP counters said
/// nothing had changed since). A socket not seen then was born after.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    listening: Instant,
    bound: Instant,
    connections: Instant,
    udp: Instant,
}

impl Known {
    fn all(at: Instant) -> Known {
        Known {
            listening: at,
            bound: at,
            connections: at,
            udp: at,
        }
    }

    /// When the part was last known whole.
    pub fn at(&self, part: Part) -> Instant {
        match part {
            Part::Listening => self.listening,
            Part::Bound => self.bound,
            Part::Connections => self.connections,
            Part::Udp => self.udp,
        }
    }

    /// For a socket that no dump saw, known only by its close (state
    /// CLOSE): when it was not there yet. With a peer it was a
    /// connection; without one, a listener or only bound.
    pub fn unseen_born_after(&self, socket: &Socket) -> Instant {
        match (socket.protocol, socket.remote.port) {
            (Protocol::Udp, _) => self.udp,
            (Protocol::Tcp | Protocol::Sctp, 0) => self.listening.min(self.bound),
            (Protocol::Tcp | Protocol::Sctp, _) => self.connections,
        }
    }
}

/// Which parts the costly dumps of a poll walk.
#[derive(Debug, Clone, Copy)]
struct Plan {
    sweep: bool,
    walk: bool,
    /// No connection can have appeared or changed since the last walk,
    /// as of this moment (the counters did not move).
    quiet_at: Option<Instant>,
}

/// What one set of dumps found: the cheap parts of a poll, or the costly
/// ones when they are done.
pub struct Batch {
    /// The sockets, of every part dumped.
    pub sockets: Vec<Socket>,
    /// When the dumps started.
    pub start: Instant,
    /// When they ended.
    pub end: Instant,
    /// The listeners and UDP sockets of a poll (else a walk or a sweep).
    pub cheap: bool,
    plan: Plan,
    walk_cost: Duration,
    sweep_cost: Duration,
}

impl Batch {
    /// Whether a socket of `part` that the dumps did not find is gone
    /// (or left the view): its part was dumped, and, for a bound-only
    /// socket, the connections are known too (it may have connected).
    pub fn covers(&self, part: Part) -> bool {
        if self.cheap {
            return matches!(part, Part::Listening | Part::Udp);
        }
        let connections = self.plan.walk || self.plan.quiet_at.is_some();
        match part {
            Part::Listening | Part::Udp => false,
            Part::Bound => self.plan.sweep && connections,
            Part::Connections => self.plan.walk,
        }
    }
}

/// A change of pace, for a line of the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paced {
    /// Dumps of the connection table.
    Connections(PaceChange),
    /// Looking for bound-only sockets.
    BoundOnly(PaceChange),
}

/// One request, and the part it dumps.
#[derive(Debug, Clone)]
struct Request {
    request: DumpRequest,
    /// TCP of both families in one request.
    both_families: bool,
    part: Part,
}

/// The costly dumps, made on a thread of their own so that polls go on
/// at their interval meanwhile; one set at a time.
struct Background {
    jobs: Sender<Plan>,
    done: Receiver<Result<Batch, Error>>,
    /// Readable when a set is done (an eventfd), to wake the watch: a
    /// walk's sockets are taken in at once, while they are news.
    ready: OwnedFd,
    busy: bool,
}

/// The dumps of one watch.
pub struct Dumps {
    /// The cheap requests: TCP listeners, UDP.
    requests: Vec<Request>,
    /// Whether the view has connections (not the listening view).
    has_connections: bool,
    netns_path: Option<PathBuf>,
    dumper: Dumper,
    background: Background,
    /// The namespace's TCP counters; None where they cannot be read
    /// (then every walk the pace allows is made).
    activity: Option<TcpActivity>,
    /// The counters read before the last walk.
    counters_at_walk: Option<String>,
    walks: Pace,
    sweeps: Pace,
    /// A walk or a sweep was wanted and not yet made.
    walk_due: bool,
    sweep_due: bool,
    /// What the notifications are judged by (see [`Dumps::promote`]).
    known: Known,
    /// What the dumps taken in made known, from the next poll on.
    learnt: Known,
}

impl Dumps {
    /// The dumps of `query`'s view, through `dumper` and, for the costly
    /// ones, `walker` (both opened in the namespace of `netns_path`),
    /// with the TCP counters of `activity`.
    pub fn new(
        query: &Query,
        interval: Duration,
        netns_path: Option<PathBuf>,
        (dumper, walker): (Dumper, Dumper),
        activity: Option<TcpActivity>,
    ) -> Result<Dumps, Error> {
        let (cheap, costly): (Vec<Request>, Vec<Request>) = requests(query)
            .into_iter()
            .partition(|r| matches!(r.part, Part::Listening | Part::Udp));
        let has_connections = costly.iter().any(|r| r.part == Part::Connections);
        let (jobs, job) = mpsc::channel();
        let (finished, done) = mpsc::channel();
        let path = netns_path.clone();
        // SAFETY: eventfd(2) returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::usage(format!("eventfd: {e}")));
        }
        // SAFETY: `raw` is a descriptor of our own, owned from here on.
        let ready = unsafe { OwnedFd::from_raw_fd(raw) };
        let wake = ready
            .try_clone()
            .map_err(|e| Error::usage(format!("eventfd: {e}")))?;
        std::thread::Builder::new()
            .name("lsport-walks".into())
            .spawn(move || walk(walker, path, costly, &job, &finished, &wake))
            .map_err(|e| Error::usage(format!("starting the thread of the costly dumps: {e}")))?;
        let now = Instant::now();
        Ok(Dumps {
            requests: cheap,
            has_connections,
            netns_path,
            dumper,
            background: Background {
                jobs,
                done,
                ready,
                busy: false,
            },
            activity,
            counters_at_walk: None,
            walks: Pace::new(WALK_SHARE, interval),
            sweeps: Pace::new(SWEEP_SHARE, interval * BOUND_SWEEP_EVERY),
            walk_due: true,
            sweep_due: true,
            known: Known::all(now),
            learnt: Known::all(now),
        })
    }

    /// When each part was last known whole.
    pub fn known(&self) -> &Known {
        &self.known
    }

    /// Judges what comes from now on by what the dumps taken in since
    /// the last poll made known. Until now, the old knowledge held: a
    /// socket that closed during a dump may have been missed by it while
    /// born before it, and the kernel sends its notification a little
    /// later (from a work queue). So a dump's knowledge is taken up only
    /// at the next poll, once the notifications of what closed during it
    /// were read.
    pub fn promote(&mut self) {
        self.known = self.learnt;
    }

    /// After lost notifications: the next polls dump every part, as soon
    /// as their pace allows, to find the closes that were not heard.
    pub fn resynchronise(&mut self) {
        self.walk_due = true;
        self.sweep_due = true;
    }

    /// One poll's dumps: the costly ones that are due start in the
    /// background (unless some still run there), the cheap ones are made
    /// now. Returns what is done: the costly ones that finished since the
    /// last poll, then the cheap ones. The first poll waits for all.
    pub fn poll(&mut self, first: bool) -> Result<Vec<Batch>, Error> {
        let mut batches = Vec::new();
        if !self.background.busy {
            if let Some(plan) = self.plan(first) {
                // The thread lives as long as this end of the channel.
                let _ = self.background.jobs.send(plan);
                self.background.busy = true;
            }
        }
        if first && self.background.busy {
            batches.push(self.wait_for_background()?);
        }
        let cheap = self.cheap()?;
        if let Some(done) = self.done() {
            batches.push(done?);
        }
        batches.push(cheap);
        Ok(batches)
    }

    /// The descriptor that is readable when the costly dumps are done.
    pub fn ready_fd(&self) -> RawFd {
        self.background.ready.as_raw_fd()
    }

    /// The costly dumps, when they are done.
    pub fn done(&mut self) -> Option<Result<Batch, Error>> {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; the eventfd is
        // non-blocking, and reading it resets it.
        unsafe { libc::read(self.ready_fd(), count.as_mut_ptr().cast(), count.len()) };
        let done = self.background.done.try_recv().ok()?;
        self.background.busy = false;
        Some(done)
    }

    fn wait_for_background(&mut self) -> Result<Batch, Error> {
        self.background.busy = false;
        match self.background.done.recv() {
            Ok(done) => done,
            Err(_) => Err(Error::usage("the thread of the costly dumps ended")),
        }
    }

    /// Which costly parts to dump now, if any.
    fn plan(&mut self, first: bool) -> Option<Plan> {
        let now = Instant::now();
        let sweep = first || ((self.sweep_due || self.sweeps.due(now)) && self.sweeps.allows(now));
        if sweep {
            self.sweep_due = false;
        }
        if !self.has_connections {
            // The view has no connections (the listening view).
            return sweep.then_some(Plan {
                sweep,
                walk: false,
                quiet_at: Some(now),
            });
        }
        let counters = self.activity.as_mut().and_then(TcpActivity::read);
        let moved = counters.is_none() || counters != self.counters_at_walk;
        let walk = first || ((self.walk_due || moved) && self.walks.allows(now));
        if walk {
            self.counters_at_walk = counters;
            self.walk_due = false;
        } else if moved {
            // Wanted, and not allowed yet: made as soon as it is.
            self.walk_due = true;
        }
        let quiet_at = (!walk && !self.walk_due).then_some(now);
        if let Some(at) = quiet_at {
            // Nothing new among the connections as of now.
            self.learnt.connections = self.learnt.connections.max(at);
        }
        (walk || sweep).then_some(Plan {
            sweep,
            walk,
            quiet_at,
        })
    }

    /// The cheap dumps: TCP listeners and UDP sockets.
    fn cheap(&mut self) -> Result<Batch, Error> {
        let start = Instant::now();
        let plan = Plan {
            sweep: false,
            walk: false,
            quiet_at: None,
        };
        let mut sockets = Vec::new();
        dump_all(
            &mut self.dumper,
            self.netns_path.as_ref(),
            &mut self.requests,
            &mut sockets,
        )?;
        Ok(Batch {
            sockets,
            start,
            end: Instant::now(),
            cheap: true,
            plan,
            walk_cost: Duration::ZERO,
            sweep_cost: Duration::ZERO,
        })
    }

    /// Takes a batch in once its sockets are joined (`join` is the CPU
    /// time the joining took, counted to the walk, which brings most of
    /// the sockets): the parts dumped are known whole from the dumps'
    /// start (from the next poll on: [`Dumps::promote`]), and the paces
    /// learn what the dumps cost. Returns the changes of pace worth a
    /// line.
    pub fn taken_in(&mut self, batch: &Batch, join: Duration) -> Vec<Paced> {
        let mut changes = Vec::new();
        if batch.cheap {
            self.learnt.listening = batch.start;
            self.learnt.udp = batch.start;
            return changes;
        }
        let plan = batch.plan;
        if plan.walk {
            self.learnt.connections = self.learnt.connections.max(batch.start);
            if let Some(change) = self.walks.ran(batch.start, batch.walk_cost + join) {
                changes.push(Paced::Connections(change));
            }
        }
        if plan.sweep {
            self.learnt.bound = batch.start;
            if let Some(change) = self.sweeps.ran(batch.start, batch.sweep_cost) {
                changes.push(Paced::BoundOnly(change));
            }
        }
        changes
    }
}

/// The thread of the costly dumps: one set per plan received, until the
/// watch is gone.
fn walk(
    mut dumper: Dumper,
    netns_path: Option<PathBuf>,
    mut requests: Vec<Request>,
    jobs: &Receiver<Plan>,
    done: &Sender<Result<Batch, Error>>,
    ready: &OwnedFd,
) {
    for plan in jobs {
        let start = Instant::now();
        let mut sockets = Vec::new();
        let mut result = Ok(());
        let (mut walk_cost, mut sweep_cost) = (Duration::ZERO, Duration::ZERO);
        for part in [Part::Bound, Part::Connections] {
            let wanted = match part {
                Part::Bound => plan.sweep,
                _ => plan.walk,
            };
            if !wanted || result.is_err() {
                continue;
            }
            let mut of_part: Vec<Request> = requests
                .iter()
                .filter(|r| r.part == part)
                .cloned()
                .collect();
            let began = thread_cpu_time();
            result = dump_all(&mut dumper, netns_path.as_ref(), &mut of_part, &mut sockets);
            let cost = thread_cpu_time().saturating_sub(began);
            match part {
                Part::Bound => sweep_cost = cost,
                _ => walk_cost = cost,
            }
            // A request split by family stays split.
            requests.retain(|r| r.part != part);
            requests.extend(of_part);
        }
        let batch = result.map(|()| Batch {
            sockets,
            start,
            end: Instant::now(),
            cheap: false,
            plan,
            walk_cost,
            sweep_cost,
        });
        if done.send(batch).is_err() {
            return;
        }
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes to an eventfd of our own.
        unsafe { libc::write(ready.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// Makes `requests` in order, appending what they find to `sockets`. A
/// dump that fails is tried once more on a new socket; TCP of both
/// families falls back to one family at a time where the kernel refuses
/// the combined request (and `requests` keeps that).
fn dump_all(
    dumper: &mut Dumper,
    netns_path: Option<&PathBuf>,
    requests: &mut Vec<Request>,
    sockets: &mut Vec<Socket>,
) -> Result<(), Error> {
    let mut index = 0;
    let from = sockets.len();
    while index < requests.len() {
        let Request {
            request,
            both_families,
            ..
        } = requests[index].clone();
        if let Err(first) = dumper.dump(&request, both_families, sockets) {
            *dumper = open_in(netns_path, Dumper::open)?;
            if both_families {
                // Family by family from now on; these requests again.
                let combined = requests.remove(index);
                for family in [Family::Inet6, Family::Inet] {
                    let mut one = combined.clone();
                    one.request.family = family;
                    one.both_families = false;
                    requests.insert(index, one);
                }
                sockets.truncate(from);
                index = 0;
                continue;
            }
            dumper
                .dump(&request, false, sockets)
                .map_err(|_| netlink_error(first))?;
        }
        index += 1;
    }
    Ok(())
}

/// The requests of the view: TCP (both families in one request where
/// both are asked for) and UDP, in the states that hold a port, without
/// TIME_WAIT and request sockets. TCP listeners, bound-only sockets and
/// connections are asked apart: they walk different tables.
fn requests(query: &Query) -> Vec<Request> {
    let ports = if query.view == View::Ports {
        query.merged_ports()
    } else {
        Vec::new()
    };
    let mut parts: Vec<(Protocol, u32, Part)> = Vec::new();
    for &protocol in &query.protocols {
        match protocol {
            Protocol::Tcp => {
                parts.push((protocol, LISTEN, Part::Listening));
                parts.push((protocol, BOUND_INACTIVE, Part::Bound));
                if !query.unconnected_only() {
                    let connected = netlink::ALL_STATES
                        & !TIME_WAIT
                        & !NEW_SYN_RECV
                        & !LISTEN
                        & !BOUND_INACTIVE;
                    parts.push((protocol, connected, Part::Connections));
                }
            }
            Protocol::Udp if query.unconnected_only() => {
                parts.push((protocol, netlink::UDP_UNCONNECTED, Part::Udp));
            }
            Protocol::Udp => parts.push((protocol, netlink::ALL_STATES, Part::Udp)),
            // watch is not asked about SCTP (--sctp is the probe's).
            Protocol::Sctp => {}
        }
    }
    let mut requests = Vec::new();
    for (protocol, states, part) in parts {
        let request = |family| DumpRequest {
            family,
            protocol,
            states,
            ports: ports.clone(),
            match_remote: query.match_remote,
            autobound_only: false,
            half: None,
            cgroups: None,
        };
        if protocol == Protocol::Tcp && query.families.len() == 2 {
            requests.push(Request {
                request: request(Family::Inet),
                both_families: true,
                part,
            });
        } else {
            requests.extend(query.families.iter().map(|f| Request {
                request: request(*f),
                both_families: false,
                part,
            }));
        }
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::PortRange;

    #[test]
    fn listeners_bound_sockets_and_connections_are_asked_apart() {
        let requests = requests(&Query::ports([PortRange::single(7000)]));
        let parts: Vec<(Protocol, Part, bool)> = requests
            .iter()
            .map(|r| (r.request.protocol, r.part, r.both_families))
            .collect();
        assert_eq!(
            parts,
            [
                (Protocol::Tcp, Part::Listening, true),
                (Protocol::Tcp, Part::Bound, true),
                (Protocol::Tcp, Part::Connections, true),
                (Protocol::Udp, Part::Udp, false),
                (Protocol::Udp, Part::Udp, false),
            ]
        );
        assert_eq!(requests[0].request.states, LISTEN);
        assert_eq!(requests[1].request.states, BOUND_INACTIVE);
        let connections = requests[2].request.states;
        for absent in [TIME_WAIT, NEW_SYN_RECV, LISTEN, BOUND_INACTIVE] {
            assert_eq!(connections & absent, 0);
        }
        assert_ne!(connections & (1 << 1), 0, "ESTABLISHED");
        let listening = super::requests(&Query::listening());
        assert!(listening.iter().all(|r| r.part != Part::Connections));
        assert!(listening.iter().all(|r| r.request.ports.is_empty()));
        assert_eq!(
            listening[0].request.states | listening[1].request.states,
            netlink::TCP_UNCONNECTED
        );
    }

    #[test]
    fn a_bound_only_socket_counts_as_gone_only_once_the_connections_are_known() {
        let now = Instant::now();
        let batch = |cheap, sweep, walk, quiet: bool| Batch {
            sockets: Vec::new(),
            start: now,
            end: now,
            cheap,
            plan: Plan {
                sweep,
                walk,
                quiet_at: quiet.then_some(now),
            },
            walk_cost: Duration::ZERO,
            sweep_cost: Duration::ZERO,
        };
        // Swept, but it may have connected since the last walk.
        assert!(!batch(false, true, false, false).covers(Part::Bound));
        assert!(batch(false, true, true, false).covers(Part::Bound));
        assert!(batch(false, true, false, true).covers(Part::Bound));
        assert!(!batch(false, false, true, false).covers(Part::Bound));
        assert!(!batch(false, false, false, true).covers(Part::Connections));
        // The cheap dumps cover listeners and UDP, and nothing else.
        assert!(batch(true, false, false, false).covers(Part::Listening));
        assert!(batch(true, false, false, false).covers(Part::Udp));
        assert!(!batch(true, false, false, false).covers(Part::Connections));
        assert!(!batch(false, true, true, false).covers(Part::Listening));
    }
}
