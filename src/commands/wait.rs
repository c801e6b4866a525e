//! `lsport wait`: until each port has a listener, or until no socket
//! holds it. The kernel is asked directly and often, cheaply: the dump
//! for `--listening` asks only for listening states (the kernel then
//! walks only its listening table), the interval between dumps grows
//! from 5 ms to a cap below the promised 100 ms, and `--free` sleeps on
//! sock_diag's destroy notices, which wake it as the holder's socket is
//! freed. Nothing connects to the port, so UDP and bound-only sockets
//! count, and no shell or `nc` is needed. What the kernel ends by itself
//! (TIME_WAIT, orphaned connections) leaves a port free unless `strict`.

pub mod unix;

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::netns;
use crate::probe::probe;
use crate::query::{HolderDetail, NetnsChoice, Query, SourceChoice};
use crate::report::{Report, Role};
use crate::socket::{PortRange, Protocol, Socket, State};
use crate::source::events::{DestroyEvents, Heard};
use crate::source::netlink::{self, DumpRequest};
use crate::source::{netlink_unavailable, procfs};

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// A listener on the port: TCP LISTEN, or (with UDP asked for) an
    /// unconnected UDP socket bound on purpose (one whose port the
    /// kernel chose for sendto() is a client).
    Listening,
    /// No socket on the port. Sockets the kernel ends by itself, with no
    /// process to wait for (TIME_WAIT, orphaned connections), count only
    /// when `strict`: they block only a bind() without SO_REUSEADDR.
    Free {
        /// Count TIME_WAIT sockets and orphaned connections as holding
        /// the port.
        strict: bool,
    },
}

/// `lsport wait`'s own options.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The condition each port must meet.
    pub condition: Condition,
    /// Stop when the first port meets it, rather than all.
    pub any: bool,
    /// Give up after this long; None waits for ever.
    pub timeout: Option<Duration>,
    /// Name the processes holding each port in the answer (reads their
    /// fds once, when a port meets its condition or at the timeout).
    pub name_holders: bool,
}

/// A process that holds (or held) a port, as far as the answer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderName {
    /// Its pid.
    pub pid: u32,
    /// The kernel's command name, raw bytes (escape before showing).
    pub command: Vec<u8>,
    /// Its effective uid, where known.
    pub uid: Option<u32>,
    /// The name of that uid, where known.
    pub user: Option<String>,
}

/// Sockets of one kind left on a port that no process holds and the
/// kernel ends by itself: TIME_WAIT sockets, or orphaned connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftBehind {
    /// How many.
    pub count: usize,
    /// Milliseconds until the last of them goes, where the kernel says
    /// for each.
    pub last_ends_in_ms: Option<u32>,
}

impl LeftBehind {
    /// None left.
    pub const NONE: LeftBehind = LeftBehind {
        count: 0,
        last_ends_in_ms: None,
    };
}

/// TIME_WAIT sockets left on a port.
pub type TimeWaitLeft = LeftBehind;

/// One port's wait.
#[derive(Debug, Clone)]
pub struct PortWait {
    /// The port.
    pub port: u16,
    /// How long after the start the condition was met; None if it was not.
    pub met_after: Option<Duration>,
    /// For `--listening`: the listener's holders once met. For `--free`:
    /// the holders when the wait began (met) or at the timeout (not met).
    pub holders: Vec<HolderName>,
    /// Sockets on the port whose holders this user may not see.
    pub hidden: usize,
    /// TIME_WAIT sockets on the port at the end.
    pub time_wait: TimeWaitLeft,
    /// Orphaned connections on the port at the end (see
    /// [`Socket::is_orphaned`]).
    pub orphaned: LeftBehind,
}

/// What [`run`] tells as it goes, before its answer.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A port met the condition.
    Met(&'a PortWait),
    /// At the start of a wait for a listener: nothing listens on `port`
    /// over the protocols asked for, but something does over these
    /// others (a UDP service waited for without `-u`).
    ListensOver {
        /// The port.
        port: u16,
        /// The protocols not asked for that have a listener on it.
        protocols: Vec<Protocol>,
    },
}

/// The answer of `lsport wait`.
#[derive(Debug, Clone)]
pub struct WaitReport {
    /// The condition waited for.
    pub condition: Condition,
    /// One entry per port, in the order asked.
    pub ports: Vec<PortWait>,
    /// The timeout passed before the condition was met.
    pub timed_out: bool,
    /// How long the wait took.
    pub elapsed: Duration,
}

impl WaitReport {
    /// Whether the wait ended because the condition was met (on every
    /// port, or on one with `any`).
    pub fn met(&self) -> bool {
        !self.timed_out
    }
}

/// Waits on the single ports of `query` (its protocols, families, source
/// and namespace apply). `on_progress` is called as each port meets the
/// condition, and with what the start showed, so that the caller can say
/// so at once.
pub fn run(
    query: &Query,
    options: &WaitOptions,
    on_progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<WaitReport, Error> {
    let mut ports: Vec<u16> = Vec::new();
    for range in &query.ports {
        if range.lo != range.hi {
            return Err(Error::Usage(format!(
                "lsport wait takes single ports, not the range {range}"
            )));
        }
        if !ports.contains(&range.lo) {
            ports.push(range.lo);
        }
    }
    if ports.is_empty() {
        return Err(Error::usage("lsport wait needs at least one port"));
    }
    in_namespace(query, |inner| {
        wait_here(inner, &ports, options, on_progress)
    })
}

/// Runs `work` inside the namespace `query` names, with a query that
/// then means "this namespace".
pub(crate) fn in_namespace<T: Send>(
    query: &Query,
    work: impl FnOnce(&Query) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    match &query.netns {
        NetnsChoice::Current => work(query),
        NetnsChoice::One(path) => {
            let mut inner = query.clone();
            inner.netns = NetnsChoice::Current;
            netns::run_in(path, None, move || work(&inner)).map_err(|e| e.into_error(path))?
        }
        NetnsChoice::All => Err(Error::usage(
            "this command works in one network namespace: use --netns, not --all-netns",
        )),
    }
}

fn wait_here(
    query: &Query,
    ports: &[u16],
    options: &WaitOptions,
    on_progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<WaitReport, Error> {
    let start = Instant::now();
    let deadline = options.timeout.map(|t| start + t);
    let listening = options.condition == Condition::Listening;
    let ranges: Vec<PortRange> = ports.iter().map(|p| PortRange::single(*p)).collect();
    let mut poller = Poller::new(query, &ranges, listening)?;
    // Destroy notices wake `--free` early; without them (never seen on
    // Linux 4.9+) the interval stays short instead.
    let mut events = match options.condition {
        Condition::Free { .. } => DestroyEvents::subscribe(&query.protocols, &query.families).ok(),
        Condition::Listening => None,
    };
    let cap = match (&options.condition, &events) {
        (Condition::Free { .. }, Some(_)) => FREE_CAP_WITH_NOTICES,
        _ => POLL_CAP,
    };
    let mut waits: Vec<PortWait> = ports
        .iter()
        .map(|&port| PortWait {
            port,
            met_after: None,
            holders: Default::default(),
            hidden: 0,
            time_wait: LeftBehind::NONE,
            orphaned: LeftBehind::NONE,
        })
        .collect();
    let mut first = true;
    let mut interval = FIRST_INTERVAL;
    // Bound-only sockets are found by a walk of the kernel's whole bind
    // table, the costliest part of a dump: they are asked for at the
    // start, while one holds a port, and to confirm a port looks free.
    let mut bound_seen = true;
    loop {
        let mut sockets = poller.sockets(bound_seen)?;
        if !bound_seen
            && !listening
            && ports
                .iter()
                .any(|p| condition_met(&options.condition, &sockets, *p))
        {
            sockets = poller.sockets(true)?;
        }
        bound_seen = sockets.iter().any(|s| s.state == State::BoundInactive);
        let now = Instant::now();
        for wait in waits.iter_mut().filter(|w| w.met_after.is_none()) {
            wait.time_wait = time_wait_on(&sockets, wait.port);
            wait.orphaned = orphans_on(&sockets, wait.port);
            if !condition_met(&options.condition, &sockets, wait.port) {
                // Who is being waited for, named once at the start.
                if first && options.name_holders && !listening {
                    (wait.holders, wait.hidden) = holders_on(query, wait.port, false)?;
                }
                continue;
            }
            wait.met_after = Some(now - start);
            if options.name_holders && listening {
                (wait.holders, wait.hidden) = holders_on(query, wait.port, true)?;
            }
            on_progress(Progress::Met(wait));
        }
        if first && listening {
            let unmet: Vec<u16> = waits
                .iter()
                .filter(|w| w.met_after.is_none())
                .map(|w| w.port)
                .collect();
            for (port, protocols) in listeners_over_other_protocols(query, &unmet) {
                on_progress(Progress::ListensOver { port, protocols });
            }
        }
        first = false;
        let met = waits.iter().filter(|w| w.met_after.is_some()).count();
        if met == waits.len() || (options.any && met > 0) {
            return Ok(WaitReport {
                condition: options.condition,
                ports: waits,
                timed_out: false,
                elapsed: start.elapsed(),
            });
        }
        if deadline.is_some_and(|d| now >= d) {
            if options.name_holders && !listening {
                for wait in waits.iter_mut().filter(|w| w.met_after.is_none()) {
                    (wait.holders, wait.hidden) = holders_on(query, wait.port, false)?;
                }
            }
            return Ok(WaitReport {
                condition: options.condition,
                ports: waits,
                timed_out: true,
                elapsed: start.elapsed(),
            });
        }
        let mut sleep = interval;
        // TIME_WAIT (and an orphan the kernel keeps as a timewait socket)
        // ends without a notice: with --strict, wake as the first one on
        // a port waited for expires.
        if let Condition::Free { strict: true } = options.condition {
            if let Some(ends) = waits
                .iter()
                .filter(|w| w.met_after.is_none())
                .flat_map(|w| [w.time_wait.last_ends_in_ms, w.orphaned.last_ends_in_ms])
                .flatten()
                .min()
            {
                sleep = sleep.min(Duration::from_millis(u64::from(ends) + 2));
            }
        }
        if let Some(d) = deadline {
            sleep = sleep.min(d.saturating_duration_since(Instant::now()));
        }
        interval = (interval * 3 / 2).min(cap);
        match events.as_mut().map(|e| e.wait(sleep)) {
            Some(Heard::Destroyed(gone)) if gone.iter().any(|s| ports.contains(&s.local.port)) => {
                interval = FIRST_INTERVAL;
            }
            Some(Heard::Lost) => interval = FIRST_INTERVAL,
            Some(_) => {}
            None => std::thread::sleep(sleep),
        }
    }
}

/// The first interval between two dumps; it grows by half each time up
/// to the cap.
pub(crate) const FIRST_INTERVAL: Duration = Duration::from_millis(5);
/// The longest interval between dumps when nothing else wakes the wait:
/// a change is seen within this (plus one dump) of happening.
pub(crate) const POLL_CAP: Duration = Duration::from_millis(50);
/// With destroy notices a dump only backs them up.
const FREE_CAP_WITH_NOTICES: Duration = Duration::from_millis(500);

/// The state bit of bound-only TCP sockets (BOUND_INACTIVE, 13).
const BOUND_INACTIVE: u32 = 1 << 13;

/// Whether the sockets on `port` meet the condition.
pub fn condition_met(condition: &Condition, sockets: &[Socket], port: u16) -> bool {
    let mut on_port = sockets.iter().filter(|s| s.local.port == port);
    match condition {
        Condition::Listening => on_port.any(is_listener),
        Condition::Free { strict } => !on_port.any(|s| *strict || !s.ends_by_itself()),
    }
}

/// A TCP listener, or a UDP socket that receives on a port it bound on
/// purpose: one whose port the kernel chose (sendto() without bind())
/// is a client. Where the source cannot say (/proc/net), an unconnected
/// UDP socket counts.
fn is_listener(socket: &Socket) -> bool {
    match socket.protocol {
        Protocol::Tcp | Protocol::Sctp => socket.state == State::Listen,
        Protocol::Udp => socket.state == State::Close && socket.autobound != Some(true),
    }
}

/// The TIME_WAIT sockets on `port` and when the last of them goes.
pub fn time_wait_on(sockets: &[Socket], port: u16) -> TimeWaitLeft {
    left_on(sockets, port, |s| s.state == State::TimeWait)
}

/// The orphaned connections on `port` and when the last of them goes.
pub fn orphans_on(sockets: &[Socket], port: u16) -> LeftBehind {
    left_on(sockets, port, Socket::is_orphaned)
}

fn left_on(sockets: &[Socket], port: u16, kind: impl Fn(&Socket) -> bool) -> LeftBehind {
    let left: Vec<&Socket> = sockets
        .iter()
        .filter(|s| s.local.port == port && kind(s))
        .collect();
    // A figure for the last only when the kernel gave one for each.
    let ends: Option<Vec<u32>> = left.iter().map(|s| s.timer_ms).collect();
    LeftBehind {
        count: left.len(),
        last_ends_in_ms: ends.and_then(|e| e.into_iter().max()),
    }
}

/// The ports of `ports` that have a listener over a protocol `query`
/// does not ask for, with those protocols: one dump of their listening
/// sockets. Said only to help, so a failed dump says nothing.
fn listeners_over_other_protocols(query: &Query, ports: &[u16]) -> Vec<(u16, Vec<Protocol>)> {
    let others: Vec<Protocol> = [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .filter(|p| !query.protocols.contains(p))
        .collect();
    if others.is_empty() || ports.is_empty() {
        return Vec::new();
    }
    let mut elsewhere = query.clone();
    elsewhere.protocols = others;
    let ranges: Vec<PortRange> = ports.iter().map(|p| PortRange::single(*p)).collect();
    let Ok(sockets) = Poller::new(&elsewhere, &ranges, true).and_then(|mut p| p.sockets(false))
    else {
        return Vec::new();
    };
    ports
        .iter()
        .filter_map(|&port| {
            let mut protocols: Vec<Protocol> = sockets
                .iter()
                .filter(|s| s.local.port == port && is_listener(s))
                .map(|s| s.protocol)
                .collect();
            protocols.sort_unstable();
            protocols.dedup();
            (!protocols.is_empty()).then_some((port, protocols))
        })
        .collect()
}

/// The processes holding `port` (its listeners only, with `listeners`),
/// and how many of its sockets have holders hidden from this user: one
/// probe of the port with its holders.
fn holders_on(
    query: &Query,
    port: u16,
    listeners: bool,
) -> Result<(Vec<HolderName>, usize), Error> {
    let mut one = query.clone();
    one.ports = vec![PortRange::single(port)];
    one.view = crate::query::View::Ports;
    one.listening_only = listeners;
    one.holders = HolderDetail::Processes;
    one.stop_at_first_match = false;
    let report = probe(&one)?;
    Ok((names_in(&report, listeners), report.hidden_sockets()))
}

/// Every holding process of the report's rows, once each, by pid.
pub(crate) fn names_in(report: &Report, listeners_only: bool) -> Vec<HolderName> {
    let mut names: Vec<HolderName> = Vec::new();
    for row in report.namespaces.iter().flat_map(|n| &n.rows) {
        if listeners_only && row.role != Role::Listener {
            continue;
        }
        for holder in &row.holders {
            if names.iter().all(|n| n.pid != holder.pid) {
                names.push(HolderName {
                    pid: holder.pid,
                    command: holder.command().to_vec(),
                    uid: holder.uid(),
                    user: holder.user().map(str::to_string),
                });
            }
        }
    }
    names.sort_by_key(|n| n.pid);
    names
}

/// The dumps a wait repeats: the same requests each time over one
/// netlink socket, or the /proc/net tables where sock_diag is refused.
pub(crate) struct Poller {
    session: netlink::Session,
    requests: Vec<DumpRequest>,
    use_proc: bool,
    query: Query,
    ports: Vec<PortRange>,
    /// Only listeners are asked for: a UDP socket whose port the kernel
    /// chose is then told apart, as it is no listener.
    listening_only: bool,
}

impl Poller {
    /// The dumps for `ports` in `query`'s protocols and families: only
    /// listening states with `listening_only`, every state otherwise.
    pub(crate) fn new(
        query: &Query,
        ports: &[PortRange],
        listening_only: bool,
    ) -> Result<Poller, Error> {
        let mut requests = Vec::new();
        for &protocol in &query.protocols {
            let states = match (protocol, listening_only) {
                (Protocol::Tcp, true) => netlink::TCP_LISTENING,
                (Protocol::Udp, true) => netlink::UDP_UNCONNECTED,
                (Protocol::Sctp, true) => netlink::SCTP_UNCONNECTED,
                (_, false) => netlink::ALL_STATES,
            };
            for &family in &query.families {
                requests.push(DumpRequest {
                    family,
                    protocol,
                    states,
                    ports: crate::portspec::normalize(ports.to_vec()),
                    match_remote: false,
                    autobound_only: false,
                    half: None,
                    cgroups: None,
                });
            }
        }
        let mut poller = Poller {
            session: netlink::Session::default(),
            requests,
            use_proc: query.source == SourceChoice::Proc,
            query: query.clone(),
            ports: crate::portspec::normalize(ports.to_vec()),
            listening_only,
        };
        // The first dump decides the source, as a probe does.
        poller.sockets(false)?;
        Ok(poller)
    }

    /// The sockets on the ports now; bound-only TCP sockets only when
    /// `with_bound_only` (their walk costs most). For listeners only,
    /// each unconnected UDP socket says whether the kernel chose its port
    /// (sock_diag only).
    pub(crate) fn sockets(&mut self, with_bound_only: bool) -> Result<Vec<Socket>, Error> {
        if !self.use_proc {
            match self.dump(with_bound_only) {
                Ok(mut sockets) => {
                    if self.listening_only {
                        self.mark_autobound_udp(&mut sockets);
                    }
                    return Ok(sockets);
                }
                Err(e)
                    if self.query.source == SourceChoice::Auto && netlink_unavailable(e.errno) =>
                {
                    self.use_proc = true;
                }
                Err(e) => {
                    return Err(Error::Netlink {
                        errno: e.errno,
                        message: e.message,
                    });
                }
            }
        }
        self.read_proc()
    }

    fn dump(&mut self, with_bound_only: bool) -> Result<Vec<Socket>, netlink::DumpError> {
        let mut sockets = Vec::new();
        let mut both_tcp_done = false;
        for request in &self.requests {
            let trimmed;
            let request = if with_bound_only || request.protocol != Protocol::Tcp {
                request
            } else {
                trimmed = DumpRequest {
                    states: request.states & !BOUND_INACTIVE,
                    ..request.clone()
                };
                &trimmed
            };
            if request.protocol == Protocol::Tcp && self.query.families.len() == 2 {
                // One walk for both families when the kernel takes it.
                if both_tcp_done {
                    continue;
                }
                if self
                    .session
                    .dump_tcp_both_families(request, &mut sockets)
                    .is_ok()
                {
                    both_tcp_done = true;
                    continue;
                }
            }
            self.session.dump(request, &mut sockets)?;
        }
        Ok(sockets)
    }

    /// One more dump, of the UDP sockets on the ports whose port the
    /// kernel chose, when there is an unconnected UDP socket to tell
    /// apart; a failed one leaves the answer unknown.
    fn mark_autobound_udp(&mut self, sockets: &mut [Socket]) {
        let unconnected_udp = |s: &Socket| s.protocol == Protocol::Udp && s.state == State::Close;
        if !sockets.iter().any(unconnected_udp) {
            return;
        }
        let mut chosen: Option<Vec<Socket>> = Some(Vec::new());
        for request in self.requests.iter().filter(|r| r.protocol == Protocol::Udp) {
            let autobound = DumpRequest {
                autobound_only: true,
                half: None,
                ..request.clone()
            };
            if let Some(found) = chosen.as_mut() {
                if self.session.dump(&autobound, found).is_err() {
                    chosen = None;
                }
            }
        }
        let Some(chosen) = chosen else { return };
        for socket in sockets.iter_mut().filter(|s| unconnected_udp(s)) {
            socket.autobound = Some(chosen.iter().any(|c| c.cookie == socket.cookie));
        }
    }

    fn read_proc(&self) -> Result<Vec<Socket>, Error> {
        let mut sockets = Vec::new();
        for request in &self.requests {
            let filter = procfs::Filter {
                states: request.states,
                ports: &self.ports,
                match_remote: false,
            };
            procfs::read_table(
                &self.query.proc_root,
                request.family,
                request.protocol,
                &filter,
                &mut sockets,
            )
            .map_err(|source| Error::Io {
                path: self
                    .query
                    .proc_root
                    .thread_path(procfs::table_path(request.family, request.protocol)),
                source,
            })?;
        }
        Ok(sockets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(protocol: Protocol, state: State, port: u16, timer_ms: Option<u32>) -> Socket {
        Socket {
            protocol,
            timer_ms,
            ..Socket::example(state, &format!("0.0.0.0:{port}"), "0.0.0.0:0")
        }
    }

    #[test]
    fn a_listener_is_tcp_listen_or_unconnected_udp() {
        let tcp = [socket(Protocol::Tcp, State::Established, 80, None)];
        assert!(!condition_met(&Condition::Listening, &tcp, 80));
        let tcp = [socket(Protocol::Tcp, State::Listen, 80, None)];
        assert!(condition_met(&Condition::Listening, &tcp, 80));
        assert!(!condition_met(&Condition::Listening, &tcp, 81));
        let udp = [socket(Protocol::Udp, State::Close, 53, None)];
        assert!(condition_met(&Condition::Listening, &udp, 53));
    }

    #[test]
    fn time_wait_holds_a_port_only_when_strict() {
        let sockets = [
            socket(Protocol::Tcp, State::TimeWait, 80, Some(30_000)),
            socket(Protocol::Tcp, State::TimeWait, 80, Some(50_000)),
        ];
        assert!(condition_met(
            &Condition::Free { strict: false },
            &sockets,
            80
        ));
        assert!(!condition_met(
            &Condition::Free { strict: true },
            &sockets,
            80
        ));
        assert_eq!(
            time_wait_on(&sockets, 80),
            TimeWaitLeft {
                count: 2,
                last_ends_in_ms: Some(50_000)
            }
        );
        let held = [socket(Protocol::Tcp, State::BoundInactive, 80, None)];
        assert!(!condition_met(
            &Condition::Free { strict: false },
            &held,
            80
        ));
    }

    #[test]
    fn orphaned_connections_hold_a_port_only_when_strict_as_time_wait() {
        let orphan = |state, timer_ms| Socket {
            inode: 0,
            ..socket(Protocol::Tcp, state, 80, timer_ms)
        };
        let sockets = [
            orphan(State::FinWait2, Some(40_000)),
            socket(Protocol::Tcp, State::TimeWait, 80, Some(50_000)),
        ];
        assert!(condition_met(
            &Condition::Free { strict: false },
            &sockets,
            80
        ));
        assert!(!condition_met(
            &Condition::Free { strict: true },
            &sockets,
            80
        ));
        assert_eq!(
            orphans_on(&sockets, 80),
            LeftBehind {
                count: 1,
                last_ends_in_ms: Some(40_000)
            }
        );
        assert_eq!(time_wait_on(&sockets, 80).count, 1);
        // One orphan without a figure (its timer does not say when it
        // goes): no figure for the last.
        let unknown = [
            orphan(State::FinWait2, Some(40_000)),
            orphan(State::FinWait1, None),
        ];
        assert_eq!(
            orphans_on(&unknown, 80),
            LeftBehind {
                count: 2,
                last_ends_in_ms: None
            }
        );
        // A closing connection its program still holds is waited for.
        let held = [socket(Protocol::Tcp, State::FinWait2, 80, None)];
        assert!(!condition_met(
            &Condition::Free { strict: false },
            &held,
            80
        ));
    }

    #[test]
    fn a_udp_socket_whose_port_the_kernel_chose_is_no_listener() {
        let udp = |autobound| Socket {
            autobound,
            ..socket(Protocol::Udp, State::Close, 53, None)
        };
        assert!(!condition_met(
            &Condition::Listening,
            &[udp(Some(true))],
            53
        ));
        assert!(condition_met(
            &Condition::Listening,
            &[udp(Some(false))],
            53
        ));
        // /proc/net cannot say: it counts.
        assert!(condition_met(&Condition::Listening, &[udp(None)], 53));
    }
}
