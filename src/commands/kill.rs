//! `lsport kill`: free a port by signalling the processes that hold a
//! socket whose local port it is, and only those (a client connected
//! *to* the port from another local port keeps running), or by closing
//! its connections through SOCK_DESTROY (`--sockets`).
//!
//! Before anything is sent it finds what else goes down with each
//! process (`blast`). A signal meant to end a process (TERM, INT, QUIT,
//! KILL) is followed (`follow`) until nothing holds the port but sockets
//! the kernel ends by itself (TIME_WAIT, orphaned connections), with
//! SIGKILL after the grace period; any other signal (HUP, USR1...) goes
//! to the main process of each group of holders only, is never followed
//! by SIGKILL, and the port's holders are named after it. Whoever holds
//! the port at the end is named: pid, command, parent.
//!
//! A port asked as part of a range frees only its listeners and bound
//! sockets (never connections, unless asked), and a kill of more than a
//! handful of ports or processes asks first.

mod blast;
mod follow;
mod permission;
pub mod unix;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use blast::BlastRadius;

use crate::commands::wait::{self, HolderName, TimeWaitLeft};
use crate::error::Error;
use crate::forwards::Forward;
use crate::holders::container::Container;
use crate::holders::process::{self, ProcessHandle, Refusal, Signal};
use crate::probe::probe;
use crate::query::{CgroupDetail, ForwardingRules, HolderDetail, Query, View};
use crate::report::{Holder, Report, Role, Row};
use crate::socket::{PortRange, Socket, State};
use crate::source::destroy;

/// How many ports, or processes, make a kill wide: one of more asks
/// before it acts (on a terminal; `--yes` elsewhere).
pub const HANDFUL: usize = 10;

/// How the port is freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signal the holding processes.
    Signal,
    /// Close the port's connections from outside (SOCK_DESTROY); the
    /// processes live on.
    Sockets,
}

/// `lsport kill`'s own options.
#[derive(Debug, Clone)]
pub struct KillOptions {
    /// Signal processes, or close sockets.
    pub mode: Mode,
    /// The first signal.
    pub signal: Signal,
    /// How long to wait after it before SIGKILL.
    pub grace: Duration,
    /// Send SIGKILL to processes still holding the port after `grace`
    /// (only ever after a signal meant to end a process).
    pub escalate: bool,
    /// How long to wait for the port after the last signal.
    pub timeout: Duration,
    /// Say what would be done; do nothing.
    pub dry_run: bool,
    /// How long to keep watching a port once it is free, to see whether
    /// a supervisor starts its service again; after a signal not meant
    /// to end a process, how long to wait before naming the holders.
    pub respawn_window: Duration,
    /// Ask before each process is signalled ([`Interaction::confirm`]).
    pub interactive: bool,
    /// A wide kill goes ahead without asking (`--yes`).
    pub yes: bool,
    /// On the ports asked as ranges: also the processes whose
    /// connections have a local port there.
    pub with_connections: bool,
    /// Set from outside (Ctrl-C) to stop following the signals; the
    /// report then says what was sent.
    pub stop: Option<&'static AtomicBool>,
}

/// Where the caller talks with the user while the kill runs. Each
/// method is called on the thread that runs the kill.
pub trait Interaction {
    /// A wide kill (see [`KillReport::wide`]) is about to start; `plan`
    /// lists the processes and what goes down with them. False sends
    /// nothing.
    fn confirm_wide(&mut self, plan: &KillReport) -> bool;
    /// With [`KillOptions::interactive`]: whether to signal `target`.
    fn confirm(&mut self, target: &Target, signal: Signal) -> bool;
    /// `signal` is about to go to `target` (SIGKILL after the grace
    /// period included), so that the user learns of each as it is sent.
    fn sending(&mut self, target: &Target, signal: Signal);
}

/// What became of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dry run: it would be signalled.
    WouldSignal,
    /// lsport will not signal it.
    Refused(Refusal),
    /// The user said no (`--interactive`).
    Skipped,
    /// The kernel refused the signal (EPERM).
    NotPermitted,
    /// It had exited, or let go of the port, before it was signalled.
    GoneBefore,
    /// Not signalled: a signal not meant to end a process goes to the
    /// main process of a group only, and its parent (this pid), which
    /// holds the port too, gets it.
    LeftToParent(u32),
    /// It exited after the first signal.
    Exited,
    /// It exited after SIGKILL, sent when the grace period ended.
    Killed,
    /// It lives on but no longer holds a socket on the port.
    Released,
    /// It still holds the port.
    StillHolding,
}

impl Fate {
    /// The stable name in JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Fate::WouldSignal => "would_signal",
            Fate::Refused(_) => "refused",
            Fate::Skipped => "skipped",
            Fate::NotPermitted => "not_permitted",
            Fate::GoneBefore => "gone",
            Fate::LeftToParent(_) => "left_to_parent",
            Fate::Exited => "exited",
            Fate::Killed => "killed",
            Fate::Released => "released",
            Fate::StillHolding => "still_holding",
        }
    }
}

/// A process that holds a socket on a port asked for.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its pid.
    pub pid: u32,
    /// Its pid inside its own pid namespace, where that differs.
    pub pid_in_namespace: Option<u32>,
    /// The kernel's command name, raw bytes (escape before showing).
    pub command: Vec<u8>,
    /// Its effective uid, where known.
    pub uid: Option<u32>,
    /// The name of that uid, where known.
    pub user: Option<String>,
    /// The container or systemd unit its cgroup names.
    pub container: Option<Container>,
    /// Its parent (pid and command name), where it could be read.
    pub parent: Option<(u32, Vec<u8>)>,
    /// The ports of its sockets that were asked for, sorted.
    pub ports: Vec<u16>,
    /// Its sockets on those ports, by inode.
    pub inodes: Vec<u64>,
    /// What else goes down with it; None where nothing is signalled
    /// (`--sockets`).
    pub blast: Option<BlastRadius>,
    /// The signals sent to it, in order.
    pub signals_sent: Vec<Signal>,
    /// What became of it.
    pub fate: Fate,
}

/// What became of one socket with `--sockets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketFate {
    /// Dry run: it would be closed.
    WouldClose,
    /// Dry run: the kernel would refuse (the errno: EPERM without
    /// CAP_NET_ADMIN).
    WouldFail(i32),
    /// Closed through SOCK_DESTROY.
    Closed,
    /// Not closed: a listener, a bound-only or an unconnected UDP
    /// socket keeps its port bound until its program closes it, even
    /// when destroyed, so closing it would not free the port.
    BoundByProgram,
    /// The kernel refused (the errno).
    Failed(i32),
}

impl SocketFate {
    /// The stable name in JSON output.
    pub fn id(&self) -> &'static str {
        match self {
            SocketFate::WouldClose => "would_close",
            SocketFate::WouldFail(_) => "would_fail",
            SocketFate::Closed => "closed",
            SocketFate::BoundByProgram => "bound_by_program",
            SocketFate::Failed(_) => "failed",
        }
    }

    /// The errno of a refusal, real or foreseen.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SocketFate::WouldFail(errno) | SocketFate::Failed(errno) => Some(*errno),
            _ => None,
        }
    }
}

/// One socket of the port and what `--sockets` did with it.
#[derive(Debug, Clone)]
pub struct SocketAction {
    /// The socket.
    pub socket: Socket,
    /// What it does with the port.
    pub role: Role,
    /// The pids holding it.
    pub pids: Vec<u32>,
    /// What became of it.
    pub fate: SocketFate,
}

/// A process that holds a port it did not hold when lsport began: a
/// restart, a successor forked on the signal, new workers.
#[derive(Debug, Clone)]
pub struct Respawn {
    /// Its pid.
    pub pid: u32,
    /// Its command name, raw bytes.
    pub command: Vec<u8>,
    /// The port it took; None on a Unix socket (the one name the kill
    /// was given).
    pub port: Option<u16>,
    /// It holds a socket lsport saw before the signal (inherited by a
    /// fork, or passed on), rather than one it opened.
    pub inherited: bool,
    /// The supervisor its cgroup names (a systemd unit, a container).
    pub supervisor: Option<Container>,
    /// Its parent process (pid and command), which may be what restarts it.
    pub parent: Option<(u32, Vec<u8>)>,
}

impl Respawn {
    /// `holder`, found holding a socket lsport did not start with (on
    /// `port`, or on the Unix socket when None), named with what may
    /// have started it: its supervisor, its parent.
    pub(crate) fn of(
        holder: &crate::report::Holder,
        port: Option<u16>,
        inherited: bool,
        root: &crate::sys::ProcRoot,
    ) -> Respawn {
        Respawn {
            pid: holder.pid,
            command: holder.command().to_vec(),
            port,
            inherited,
            supervisor: holder.container().cloned(),
            parent: process::parent(root, holder.pid),
        }
    }
}

/// A socket still on a port at the end, with whoever holds it then.
#[derive(Debug, Clone)]
pub struct RemainingSocket {
    /// The socket.
    pub socket: Socket,
    /// The processes holding it, by pid.
    pub holders: Vec<HolderName>,
    /// It has holders this user may not see.
    pub holders_hidden: bool,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing held the ports to begin with but sockets the kernel ends
    /// by itself (TIME_WAIT, orphaned connections).
    NothingHeld,
    /// No socket held the ports, but forwarding rules take them: there
    /// is nothing to signal, and the rules are named with how to remove
    /// them.
    Forwarded,
    /// Dry run: every holder would be signalled with a signal meant to
    /// end it (or every connection closed).
    WouldFree,
    /// Dry run: a signal not meant to end a process would reach every
    /// holder it is meant for.
    WouldSignal,
    /// Dry run: some holder could not be (refused, not permitted,
    /// hidden, held by no process, bound by its program, or closing is
    /// not permitted).
    WouldNotFree,
    /// A wide kill was not confirmed: nothing was sent.
    NotConfirmed,
    /// The ports are free but for sockets the kernel ends by itself.
    Freed,
    /// A signal not meant to end a process reached every holder it was
    /// meant for; the ports are still held, by the processes named.
    Signalled,
    /// Another process took a port.
    Respawned,
    /// Sockets remain whose holders were not or could not be signalled.
    StillHeld,
    /// The timeout passed with the ports still held.
    TimedOut,
    /// Stopped from outside (Ctrl-C) while lsport followed the signals.
    Interrupted,
}

impl Outcome {
    /// The stable name in JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Outcome::NothingHeld => "nothing_held",
            Outcome::Forwarded => "forwarded",
            Outcome::WouldFree => "would_free",
            Outcome::WouldSignal => "would_signal",
            Outcome::WouldNotFree => "would_not_free",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::Freed => "freed",
            Outcome::Signalled => "signalled",
            Outcome::Respawned => "respawned",
            Outcome::StillHeld => "still_held",
            Outcome::TimedOut => "timed_out",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether the job was done (or, dry, could be).
    pub fn done(self) -> bool {
        matches!(
            self,
            Outcome::Freed | Outcome::WouldFree | Outcome::Signalled | Outcome::WouldSignal
        )
    }
}

/// The answer of `lsport kill`.
#[derive(Debug, Clone)]
pub struct KillReport {
    /// The ports asked for.
    pub ports: Vec<PortRange>,
    /// The options it ran with.
    pub options: KillOptions,
    /// The processes holding the ports, in pid order.
    pub targets: Vec<Target>,
    /// With `--sockets`: each socket and what became of it.
    pub sockets: Vec<SocketAction>,
    /// Sockets on the ports whose holders this user may not see.
    pub hidden: usize,
    /// Processes that took a port while lsport waited.
    pub respawns: Vec<Respawn>,
    /// Sockets still holding the ports at the end (none of those the
    /// kernel ends by itself), with their holders then.
    pub remaining: Vec<RemainingSocket>,
    /// TIME_WAIT sockets left on the ports.
    pub time_wait: TimeWaitLeft,
    /// Orphaned connections left on the ports (closed by their program
    /// under a live peer): like TIME_WAIT, the kernel ends them by
    /// itself and no process can be signalled for them.
    pub orphaned: TimeWaitLeft,
    /// Processes left alone because their only sockets on the ports
    /// asked as ranges are connections.
    pub left_alone: usize,
    /// More than [`HANDFUL`] ports asked, or more than [`HANDFUL`]
    /// processes to signal (a process whose parent is signalled too
    /// counted with it): asked before it acts.
    pub wide: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// From the first signal (or close) to the ports being free.
    pub freed_after: Option<Duration>,
    /// The containers (network namespaces) the forwards' target
    /// addresses belong to, where found.
    pub forward_targets: Vec<crate::report::ForwardTarget>,
    /// The forwarding rules that could not be read (without
    /// CAP_NET_ADMIN): a port nothing holds may still be forwarded.
    pub rules_unread: Vec<crate::forwards::Unreadable>,
    /// The systemd socket units whose listeners hold the ports: their
    /// holders are not signalled, the unit is what to stop.
    pub socket_units: Vec<SocketUnit>,
    /// The forwarding rules that take the ports asked (a rule reached
    /// from two hooks twice): no signal removes them, and a server started on a port they take
    /// does not get the traffic they send elsewhere.
    pub forwards: Vec<Forward>,
}

impl KillReport {
    /// The target with this pid.
    pub fn target(&self, pid: u32) -> Option<&Target> {
        self.targets.iter().find(|t| t.pid == pid)
    }
}

/// Which sockets a kill acts on: on a port asked alone, every socket
/// (a connection from the port keeps it from being bound as much as a
/// listener); on a port asked only as part of a range, its listeners
/// and bound sockets, never its connections (a client's port the kernel
/// chose falls in any wide range), unless asked.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    singles: Vec<u16>,
    ranges: Vec<PortRange>,
    with_connections: bool,
}

impl Scope {
    fn new(ports: &[PortRange], with_connections: bool) -> Scope {
        let (singles, ranges): (Vec<PortRange>, Vec<PortRange>) =
            ports.iter().partition(|r| r.lo == r.hi);
        Scope {
            singles: singles.iter().map(|r| r.lo).collect(),
            ranges,
            with_connections,
        }
    }

    /// Whether the kill acts on the socket.
    fn covers(&self, socket: &Socket) -> bool {
        let port = socket.local.port;
        self.singles.contains(&port)
            || (self.ranges.iter().any(|r| r.contains(port))
                && (self.with_connections || socket.is_listening()))
    }

    /// Whether the socket keeps the kill from being done: one it acts on
    /// that the kernel does not end by itself.
    fn holds(&self, socket: &Socket) -> bool {
        self.covers(socket) && !socket.ends_by_itself()
    }
}

/// Frees the ports of `query` (its protocols, families and namespace
/// apply; never its remote ports). `interaction` is asked before a wide
/// kill and, with `--interactive`, before each process, and told of
/// each signal as it goes.
pub fn run(
    query: &Query,
    options: &KillOptions,
    interaction: &mut (dyn Interaction + Send),
) -> Result<KillReport, Error> {
    if query.ports.is_empty() {
        return Err(Error::usage("lsport kill needs at least one port"));
    }
    let mut asked = query.clone();
    asked.view = View::Ports;
    asked.match_remote = false;
    asked.listening_only = false;
    asked.holders = HolderDetail::Processes;
    asked.stop_at_first_match = false;
    asked.forwarding_rules = ForwardingRules::Asked;
    // A listener of a socket unit is named by its cgroup.
    asked.cgroups = CgroupDetail::Listeners;
    let report = probe(&asked)?;
    let scope = Scope::new(&query.ports, options.with_connections);
    let rows = rows_of(&report);
    let holding: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| scope.holds(&r.socket))
        .collect();
    let targets = targets_of(&holding, &asked);
    let all_sockets = || rows.iter().map(|r| &r.socket);
    let mut kill = KillReport {
        ports: query.ports.clone(),
        options: options.clone(),
        left_alone: left_alone(&rows, &scope, &targets),
        targets,
        sockets: Vec::new(),
        hidden: holding.iter().filter(|r| r.holders_hidden).count(),
        respawns: Vec::new(),
        remaining: holding.iter().map(|r| remaining_of(r)).collect(),
        time_wait: left_on(all_sockets(), |s| s.state == State::TimeWait),
        orphaned: left_on(all_sockets(), Socket::is_orphaned),
        wide: false,
        outcome: Outcome::NothingHeld,
        freed_after: None,
        forwards: forwards_of(&report),
        socket_units: socket_units_of(&holding),
        rules_unread: report.rules_unread().into_iter().cloned().collect(),
        forward_targets: report
            .namespaces
            .iter()
            .flat_map(|n| n.ports.iter())
            .flat_map(|v| v.forward_targets.iter().cloned())
            .collect(),
    };
    if holding.is_empty() {
        kill.remaining.clear();
        if !kill.forwards.is_empty() {
            kill.outcome = Outcome::Forwarded;
        }
        return Ok(kill);
    }
    let known: HashSet<u64> = holding
        .iter()
        .map(|r| r.socket.inode)
        .filter(|i| *i != 0)
        .collect();
    if options.mode == Mode::Sockets {
        close_all(&asked, &holding, options, &mut kill)?;
        if options.dry_run {
            kill.outcome = dry_outcome(&kill, &holding);
            return Ok(kill);
        }
        return follow::follow(
            &asked,
            &scope,
            &mut kill,
            &known,
            &HashMap::new(),
            interaction,
        )
        .map(|()| kill);
    }
    choose_receivers(&mut kill.targets, options.signal);
    blast::measure(&asked, &mut kill.targets)?;
    kill.wide = is_wide(&kill.ports, &kill.targets);
    if options.dry_run {
        foresee_signals(&mut kill.targets);
        kill.outcome = dry_outcome(&kill, &holding);
        return Ok(kill);
    }
    if kill.wide && !options.yes && !options.interactive && !interaction.confirm_wide(&kill) {
        kill.outcome = Outcome::NotConfirmed;
        return Ok(kill);
    }
    let handles = signal_all(&asked, options, &mut kill.targets, interaction);
    if !options.signal.ends_process() {
        // What a reload signal could not reach decides the outcome, as
        // in a dry run; the follow only waits and names the holders.
        kill.outcome = if unreached(&kill, &holding) {
            Outcome::StillHeld
        } else {
            Outcome::Signalled
        };
    }
    follow::follow(&asked, &scope, &mut kill, &known, &handles, interaction)?;
    Ok(kill)
}

/// A systemd socket unit whose listener holds a port asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketUnit {
    /// The unit (`ssh.socket`).
    pub unit: String,
    /// The service it starts, where its unit file could be read.
    pub activates: Option<String>,
}

impl SocketUnit {
    /// `systemctl stop ssh.socket ssh.service`: the unit first, so that
    /// it does not start the service again.
    pub fn stop_command(&self) -> String {
        match &self.activates {
            // A template (`ssh@.service`) stops as its instances.
            Some(service) if service.contains("@.") => format!(
                "systemctl stop {} '{}'",
                self.unit,
                service.replace("@.", "@*.")
            ),
            Some(service) => format!("systemctl stop {} {service}", self.unit),
            None => format!("systemctl stop {}", self.unit),
        }
    }
}

/// The socket units of the sockets held, each once.
fn socket_units_of(holding: &[&Row]) -> Vec<SocketUnit> {
    let mut units: Vec<SocketUnit> = Vec::new();
    for cgroup in holding.iter().filter_map(|r| r.cgroup.as_deref()) {
        if let Some(unit) = cgroup.socket_unit() {
            let unit = SocketUnit {
                unit: unit.to_string(),
                activates: cgroup.activates.clone(),
            };
            if !units.contains(&unit) {
                units.push(unit);
            }
        }
    }
    units
}

/// The forwards on the ports asked, each once (a port asked twice, or
/// in two ranges, finds the same).
fn forwards_of(report: &Report) -> Vec<Forward> {
    let mut forwards: Vec<Forward> = Vec::new();
    let all = report
        .namespaces
        .iter()
        .flat_map(|n| n.ports.iter())
        .flat_map(|v| v.forwards.iter());
    for forward in all {
        if !forwards.contains(forward) {
            forwards.push(forward.clone());
        }
    }
    forwards
}

fn rows_of(report: &Report) -> Vec<&Row> {
    report
        .namespaces
        .iter()
        .flat_map(|n| n.rows.iter())
        .collect()
}

/// The sockets of one kind left on the ports, and when the last goes.
fn left_on<'a>(
    sockets: impl Iterator<Item = &'a Socket>,
    kind: impl Fn(&Socket) -> bool,
) -> TimeWaitLeft {
    let mut left = TimeWaitLeft {
        count: 0,
        last_ends_in_ms: None,
    };
    for socket in sockets.filter(|s| kind(s)) {
        left.count += 1;
        left.last_ends_in_ms = left.last_ends_in_ms.max(socket.timer_ms);
    }
    left
}

fn remaining_of(row: &Row) -> RemainingSocket {
    let mut holders: Vec<HolderName> = Vec::new();
    for holder in &row.holders {
        if holders.iter().all(|h| h.pid != holder.pid) {
            holders.push(HolderName {
                pid: holder.pid,
                command: holder.command().to_vec(),
                uid: holder.uid(),
                user: holder.user().map(str::to_string),
            });
        }
    }
    RemainingSocket {
        socket: row.socket.clone(),
        holders,
        holders_hidden: row.holders_hidden,
    }
}

/// A holder as a target of the kill, with its refusal decided (`chain`:
/// lsport and its ancestors); its ports and inodes are added by the
/// caller.
fn target_of(holder: &Holder, query: &Query, chain: &[u32]) -> Target {
    Target {
        pid: holder.pid,
        pid_in_namespace: holder.pid_in_namespace(),
        command: holder.command().to_vec(),
        uid: holder.uid(),
        user: holder.user().map(str::to_string),
        container: holder.container().cloned(),
        parent: process::parent(&query.proc_root, holder.pid),
        ports: Vec::new(),
        inodes: Vec::new(),
        blast: None,
        signals_sent: Vec::new(),
        fate: match process::refusal(
            &query.proc_root,
            holder.pid,
            holder.pid_in_namespace(),
            chain,
        ) {
            Some(why) => Fate::Refused(why),
            None => Fate::StillHolding,
        },
    }
}

/// Every process holding one of the `rows`, once, with the refusals
/// decided.
fn targets_of(rows: &[&Row], query: &Query) -> Vec<Target> {
    let chain = process::self_and_ancestors(&query.proc_root);
    let mut by_pid: HashMap<u32, Target> = HashMap::new();
    for row in rows {
        for holder in &row.holders {
            let target = by_pid
                .entry(holder.pid)
                .or_insert_with(|| target_of(holder, query, &chain));
            if !target.ports.contains(&row.socket.local.port) {
                target.ports.push(row.socket.local.port);
            }
            if !target.inodes.contains(&row.socket.inode) {
                target.inodes.push(row.socket.inode);
            }
        }
    }
    // The holders of a socket unit's listener are left to the unit: pid 1
    // holds it too, and starts the service again on a connection.
    let of_units: HashSet<u32> = rows
        .iter()
        .filter(|r| {
            r.cgroup
                .as_deref()
                .is_some_and(|c| c.socket_unit().is_some())
        })
        .flat_map(|r| r.holders.iter().map(|h| h.pid))
        .collect();
    let mut targets: Vec<Target> = by_pid.into_values().collect();
    for target in &mut targets {
        target.ports.sort_unstable();
        if of_units.contains(&target.pid) && !matches!(target.fate, Fate::Refused(_)) {
            target.fate = Fate::Refused(Refusal::SocketUnit);
        }
    }
    targets.sort_by_key(|t| t.pid);
    targets
}

/// The processes holding only connections on the ports asked as ranges,
/// which the kill leaves alone.
fn left_alone(rows: &[&Row], scope: &Scope, targets: &[Target]) -> usize {
    let mut pids: Vec<u32> = rows
        .iter()
        .filter(|r| !scope.covers(&r.socket) && !r.socket.ends_by_itself())
        .flat_map(|r| r.holders.iter().map(|h| h.pid))
        .filter(|pid| targets.iter().all(|t| t.pid != *pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}

/// Who gets the signal. One meant to end a process goes to every holder:
/// the port is free only once all have let go. Any other goes to the
/// main process of each group of holders only, as a reload is sent to
/// a service's main process: a holder whose parent holds the port too
/// (a worker of its master) is left to that parent.
fn choose_receivers(targets: &mut [Target], signal: Signal) {
    if signal.ends_process() {
        return;
    }
    let receivers: HashSet<u32> = targets
        .iter()
        .filter(|t| !matches!(t.fate, Fate::Refused(_)))
        .map(|t| t.pid)
        .collect();
    for target in targets.iter_mut() {
        if let Some((parent, _)) = &target.parent {
            if receivers.contains(&target.pid) && receivers.contains(parent) {
                target.fate = Fate::LeftToParent(*parent);
            }
        }
    }
}

/// Whether the kill is wide: more than a handful of ports asked (a
/// range counts each of its ports), or more than a handful of processes
/// to signal, a process counted with its parent when that is signalled
/// too.
fn is_wide(ports: &[PortRange], targets: &[Target]) -> bool {
    let asked: usize = ports.iter().map(|r| usize::from(r.hi - r.lo) + 1).sum();
    let receivers: HashSet<u32> = targets
        .iter()
        .filter(|t| !matches!(t.fate, Fate::Refused(_) | Fate::LeftToParent(_)))
        .map(|t| t.pid)
        .collect();
    let groups = targets
        .iter()
        .filter(|t| receivers.contains(&t.pid))
        .filter(|t| {
            !t.parent
                .as_ref()
                .is_some_and(|(p, _)| receivers.contains(p))
        })
        .count();
    asked > HANDFUL || groups > HANDFUL
}

/// Dry run: whether each receiver could be signalled.
fn foresee_signals(targets: &mut [Target]) {
    for target in targets.iter_mut() {
        if target.fate != Fate::StillHolding {
            continue;
        }
        target.fate = match ProcessHandle::open(target.pid).map(|h| h.may_signal()) {
            Ok(Ok(())) => Fate::WouldSignal,
            Ok(Err(libc::EPERM)) => Fate::NotPermitted,
            Ok(Err(_)) | Err(_) => Fate::GoneBefore,
        };
    }
}

/// Sends the first signal to every receiver lsport may signal, each
/// checked again first (the pidfd is opened after the probe read the
/// pid). Returns the pidfds of the processes signalled, by pid.
fn signal_all(
    query: &Query,
    options: &KillOptions,
    targets: &mut [Target],
    interaction: &mut (dyn Interaction + Send),
) -> HashMap<u32, ProcessHandle> {
    let mut handles = HashMap::new();
    for target in targets.iter_mut() {
        if target.fate != Fate::StillHolding {
            continue;
        }
        let Ok(handle) = ProcessHandle::open(target.pid) else {
            target.fate = Fate::GoneBefore;
            continue;
        };
        if options.interactive && !interaction.confirm(target, options.signal) {
            target.fate = Fate::Skipped;
            continue;
        }
        // Read through its threads' tables too: a process whose main
        // thread has exited still holds its sockets in the others'.
        if !process::held_sockets(&query.proc_root, target.pid, &target.inodes)
            .holds_any(&target.inodes)
        {
            target.fate = Fate::GoneBefore;
            continue;
        }
        interaction.sending(target, options.signal);
        match handle.signal(options.signal) {
            Ok(()) => {
                target.signals_sent.push(options.signal);
                handles.insert(target.pid, handle);
            }
            Err(libc::EPERM) => target.fate = Fate::NotPermitted,
            Err(_) => target.fate = Fate::GoneBefore,
        }
    }
    handles
}

/// Whether some socket holding the ports has a holder the signal does
/// not (or would not) reach: one lsport may not see, none at all (a
/// kernel socket, one in flight over a unix socket), or a process it
/// refused, may not signal, or was told to skip.
fn unreached(kill: &KillReport, holding: &[&Row]) -> bool {
    let reached = |pid: u32| match kill.target(pid).map(|t| t.fate) {
        Some(Fate::LeftToParent(parent)) => kill.target(parent).is_some_and(gets_signal),
        // It let go of the port by itself: nothing to reach.
        Some(Fate::GoneBefore) => true,
        Some(_) => kill.target(pid).is_some_and(gets_signal),
        None => false,
    };
    holding.iter().any(|row| {
        row.holders_hidden
            || (row.socket.inode != 0 && row.holders.is_empty())
            || row.holders.iter().any(|h| !reached(h.pid))
    })
}

fn gets_signal(target: &Target) -> bool {
    target.fate == Fate::WouldSignal || !target.signals_sent.is_empty()
}

/// A dry run's verdict, by the rules the real run follows.
fn dry_outcome(kill: &KillReport, holding: &[&Row]) -> Outcome {
    let blocked = match kill.options.mode {
        // Closing needs no holder: only what cannot be closed counts.
        Mode::Sockets => kill.sockets.iter().any(|s| {
            matches!(
                s.fate,
                SocketFate::BoundByProgram | SocketFate::WouldFail(_)
            )
        }),
        Mode::Signal => unreached(kill, holding),
    };
    match (
        blocked,
        kill.options.signal.ends_process() || kill.options.mode == Mode::Sockets,
    ) {
        (true, _) => Outcome::WouldNotFree,
        (false, true) => Outcome::WouldFree,
        (false, false) => Outcome::WouldSignal,
    }
}

/// `--sockets`: closes each connection on the ports; listeners,
/// bound-only and unconnected UDP sockets are left, since the kernel
/// keeps their port bound until their program closes them (checked on
/// 6.18: after SOCK_DESTROY a listener vanishes from sock_diag while
/// bind() still fails with EADDRINUSE). A dry run asks whether the
/// kernel would permit it.
fn close_all(
    query: &Query,
    holding: &[&Row],
    options: &KillOptions,
    kill: &mut KillReport,
) -> Result<(), Error> {
    let rows: Vec<(Socket, Role, Vec<u32>)> = holding
        .iter()
        .map(|r| {
            let mut pids: Vec<u32> = r.holders.iter().map(|h| h.pid).collect();
            pids.dedup();
            (r.socket.clone(), r.role, pids)
        })
        .collect();
    let dry = options.dry_run;
    let actions = wait::in_namespace(query, move |here| {
        let permitted = !dry || permission::may_close_sockets(&here.proc_root);
        Ok(rows
            .into_iter()
            .map(|(socket, role, pids)| {
                let fate = if socket.is_unconnected() {
                    SocketFate::BoundByProgram
                } else if dry && !permitted {
                    SocketFate::WouldFail(libc::EPERM)
                } else if dry {
                    SocketFate::WouldClose
                } else {
                    match destroy::destroy(&socket) {
                        Ok(()) | Err(libc::ENOENT) => SocketFate::Closed,
                        Err(errno) => SocketFate::Failed(errno),
                    }
                };
                SocketAction {
                    socket,
                    role,
                    pids,
                    fate,
                }
            })
            .collect::<Vec<_>>())
    })?;
    kill.sockets = actions;
    Ok(())
}

/// The command that stops a supervisor, where one is known.
pub fn stop_command(supervisor: &Container) -> Option<String> {
    let short = |id: &str| id.chars().take(12).collect::<String>();
    match supervisor.runtime {
        "systemd" => Some(format!("systemctl stop {}", supervisor.id)),
        "docker" => Some(format!("docker stop {}", short(&supervisor.id))),
        "podman" => Some(format!("podman stop {}", short(&supervisor.id))),
        "lxc" => Some(format!("lxc-stop -n {}", supervisor.id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holders::container;

    #[test]
    fn supervisors_come_with_the_command_that_stops_them() {
        let unit = container::from_path("/system.slice/web.service").unwrap();
        assert_eq!(
            stop_command(&unit).as_deref(),
            Some("systemctl stop web.service")
        );
        let id = "0123456789abcdef".repeat(4);
        let docker = container::from_path(&format!("/system.slice/docker-{id}.scope")).unwrap();
        assert_eq!(
            stop_command(&docker).as_deref(),
            Some("docker stop 0123456789ab")
        );
        let pod = container::from_path(&format!(
            "/kubepods/besteffort/pod01234567-89ab-cdef-0123-456789abcdef/{id}"
        ))
        .unwrap();
        assert_eq!(stop_command(&pod), None);
    }

    #[test]
    fn a_range_acts_on_listeners_and_bound_sockets_and_a_single_port_on_all() {
        let listener = Socket::example(State::Listen, "0.0.0.0:40010", "0.0.0.0:0");
        let client = Socket::example(State::Established, "127.0.0.1:40033", "127.0.0.1:40010");
        let bound = Socket::example(State::BoundInactive, "0.0.0.0:40020", "0.0.0.0:0");
        let orphan = Socket {
            inode: 0,
            ..Socket::example(State::FinWait2, "127.0.0.1:40010", "127.0.0.1:40044")
        };
        let range = [PortRange {
            lo: 40000,
            hi: 40099,
        }];
        let scope = Scope::new(&range, false);
        assert!(scope.holds(&listener) && scope.holds(&bound));
        assert!(!scope.covers(&client));
        assert!(Scope::new(&range, true).holds(&client));
        let single = Scope::new(&[PortRange::single(40033)], false);
        assert!(single.holds(&client));
        assert!(!single.holds(&listener));
        // Ended by the kernel, never waited for.
        assert!(!Scope::new(&[PortRange::single(40010)], false).holds(&orphan));
    }

    fn target(pid: u32, parent: u32) -> Target {
        Target {
            pid,
            pid_in_namespace: None,
            command: b"worker".to_vec(),
            uid: Some(0),
            user: None,
            container: None,
            parent: Some((parent, b"master".to_vec())),
            ports: vec![80],
            inodes: vec![1],
            blast: None,
            signals_sent: Vec::new(),
            fate: Fate::StillHolding,
        }
    }

    #[test]
    fn a_reload_signal_goes_to_the_main_process_and_an_ending_one_to_all() {
        let group = || vec![target(100, 1), target(101, 100), target(102, 100)];
        let mut hup = group();
        choose_receivers(&mut hup, Signal(libc::SIGHUP));
        let fates: Vec<Fate> = hup.iter().map(|t| t.fate).collect();
        assert_eq!(
            fates,
            [
                Fate::StillHolding,
                Fate::LeftToParent(100),
                Fate::LeftToParent(100)
            ]
        );
        let mut term = group();
        choose_receivers(&mut term, Signal::TERM);
        assert!(term.iter().all(|t| t.fate == Fate::StillHolding));
        // A refused parent does not take its children's signal.
        let mut under_init = vec![target(100, 1), target(101, 100)];
        under_init[0].fate = Fate::Refused(Refusal::InitOfNamespace);
        choose_receivers(&mut under_init, Signal(libc::SIGHUP));
        assert_eq!(under_init[1].fate, Fate::StillHolding);
    }

    #[test]
    fn wide_means_more_than_a_handful_of_ports_or_of_process_groups() {
        let ports = |hi: u16| [PortRange { lo: 8000, hi }];
        assert!(!is_wide(&ports(8009), &[]));
        assert!(is_wide(&ports(8010), &[]));
        // A master and its workers are one group.
        let mut workers: Vec<Target> = (101..=150).map(|pid| target(pid, 100)).collect();
        workers.push(target(100, 1));
        assert!(!is_wide(&ports(8000), &workers));
        let strangers: Vec<Target> = (101..=111).map(|pid| target(pid, 1)).collect();
        assert!(is_wide(&ports(8000), &strangers));
        assert!(!is_wide(&ports(8000), &strangers[..10]));
    }
}
