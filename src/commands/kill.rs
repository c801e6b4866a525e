//! `lsport kill`: free a port by signalling the processes that hold a
//! socket whose local port it is, and only those (a client connected
//! *to* the port from another local port keeps running), or by closing
//! its connections through SOCK_DESTROY (`--sockets`). Then it waits
//! until nothing but TIME_WAIT holds the port, and says what became of
//! each process, whether another one took the port meanwhile (and what
//! restarts it), and when the TIME_WAIT sockets left over go.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::commands::wait::{self, Poller, TimeWaitLeft};
use crate::container::{self, Container};
use crate::error::Error;
use crate::probe::probe;
use crate::process::{self, ProcessHandle, Refusal, Signal};
use crate::query::{HolderDetail, Query, View};
use crate::report::{Report, Role};
use crate::socket::{PortRange, Socket, State};
use crate::source::destroy;

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
    /// Send SIGKILL to processes still holding the port after `grace`.
    pub escalate: bool,
    /// How long to wait for the port after the last signal.
    pub timeout: Duration,
    /// Say what would be done; do nothing.
    pub dry_run: bool,
    /// How long to keep watching a port once it is free, to see whether
    /// a supervisor starts its service again.
    pub respawn_window: Duration,
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
    /// The ports of its sockets that were asked for, sorted.
    pub ports: Vec<u16>,
    /// Its sockets on those ports, by inode.
    pub inodes: Vec<u64>,
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
            SocketFate::Closed => "closed",
            SocketFate::BoundByProgram => "bound_by_program",
            SocketFate::Failed(_) => "failed",
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

/// A process that took a port while lsport waited for it to be free.
#[derive(Debug, Clone)]
pub struct Respawn {
    /// Its pid.
    pub pid: u32,
    /// Its command name, raw bytes.
    pub command: Vec<u8>,
    /// The port it took.
    pub port: u16,
    /// The supervisor its cgroup names (a systemd unit, a container).
    pub supervisor: Option<Container>,
    /// Its parent process (pid and command), which may be what restarts it.
    pub parent: Option<(u32, Vec<u8>)>,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing but TIME_WAIT held the ports to begin with.
    NothingHeld,
    /// Dry run: every holder would be signalled (or every connection
    /// closed).
    WouldFree,
    /// Dry run: some holder could not be (refused, not permitted,
    /// hidden, bound by its program).
    WouldNotFree,
    /// The ports are free but for TIME_WAIT.
    Freed,
    /// Another process took a port.
    Respawned,
    /// Sockets remain whose holders were not or could not be signalled.
    StillHeld,
    /// The timeout passed with the ports still held.
    TimedOut,
}

impl Outcome {
    /// The stable name in JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Outcome::NothingHeld => "nothing_held",
            Outcome::WouldFree => "would_free",
            Outcome::WouldNotFree => "would_not_free",
            Outcome::Freed => "freed",
            Outcome::Respawned => "respawned",
            Outcome::StillHeld => "still_held",
            Outcome::TimedOut => "timed_out",
        }
    }

    /// Whether the job was done (or, dry, could be).
    pub fn done(self) -> bool {
        matches!(self, Outcome::Freed | Outcome::WouldFree)
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
    /// Sockets other than TIME_WAIT still on the ports at the end.
    pub remaining: Vec<Socket>,
    /// TIME_WAIT sockets left on the ports.
    pub time_wait: TimeWaitLeft,
    /// How it ended.
    pub outcome: Outcome,
    /// From the first signal (or close) to the ports being free.
    pub freed_after: Option<Duration>,
}

/// Frees the ports of `query` (its protocols, families and namespace
/// apply; never its remote ports). `confirm` is asked before each
/// process is signalled (`--interactive`; say yes otherwise).
pub fn run(
    query: &Query,
    options: &KillOptions,
    confirm: &mut dyn FnMut(&Target) -> bool,
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
    let report = probe(&asked)?;
    let mut kill = KillReport {
        ports: query.ports.clone(),
        options: options.clone(),
        targets: targets_of(&report, &asked),
        sockets: Vec::new(),
        hidden: report.hidden_sockets(),
        respawns: Vec::new(),
        remaining: Vec::new(),
        time_wait: time_wait_of(rows_sockets(&report).into_iter(), &asked.merged_ports()),
        outcome: Outcome::NothingHeld,
        freed_after: None,
    };
    let holding: Vec<Socket> = rows_sockets(&report)
        .into_iter()
        .filter(|s| s.state != State::TimeWait)
        .collect();
    if holding.is_empty() {
        return Ok(kill);
    }
    kill.remaining = holding.clone();
    let handles = match options.mode {
        Mode::Signal => signal_all(&asked, options, &mut kill, confirm),
        Mode::Sockets => {
            close_all(&asked, &report, options, &mut kill)?;
            HashMap::new()
        }
    };
    if options.dry_run {
        kill.outcome = dry_outcome(&kill);
        return Ok(kill);
    }
    let known: HashSet<u64> = holding
        .iter()
        .map(|s| s.inode)
        .filter(|i| *i != 0)
        .collect();
    let started = Instant::now();
    follow(&asked, options, &mut kill, &known, &handles, started)?;
    Ok(kill)
}

fn rows_sockets(report: &Report) -> Vec<Socket> {
    report
        .namespaces
        .iter()
        .flat_map(|n| n.rows.iter().map(|r| r.socket.clone()))
        .collect()
}

fn time_wait_of(sockets: impl Iterator<Item = Socket>, ports: &[PortRange]) -> TimeWaitLeft {
    let waiting: Vec<Socket> = sockets
        .filter(|s| s.state == State::TimeWait && ports.iter().any(|r| r.contains(s.local.port)))
        .collect();
    TimeWaitLeft {
        count: waiting.len(),
        last_ends_in_ms: waiting.iter().filter_map(|s| s.timer_ms).max(),
    }
}

/// Every process holding a socket of the report (TIME_WAIT sockets have
/// none), once, with the refusals decided.
fn targets_of(report: &Report, query: &Query) -> Vec<Target> {
    let chain = process::self_and_ancestors(&query.proc_root);
    let mut by_pid: HashMap<u32, Target> = HashMap::new();
    for row in report.namespaces.iter().flat_map(|n| &n.rows) {
        for holder in &row.holders {
            let target = by_pid.entry(holder.pid).or_insert_with(|| Target {
                pid: holder.pid,
                pid_in_namespace: holder.pid_in_namespace(),
                command: holder.command().to_vec(),
                uid: holder.uid(),
                user: holder.user().map(str::to_string),
                container: holder.container().cloned(),
                ports: Vec::new(),
                inodes: Vec::new(),
                signals_sent: Vec::new(),
                fate: match process::refusal(
                    &query.proc_root,
                    holder.pid,
                    holder.pid_in_namespace(),
                    &chain,
                ) {
                    Some(why) => Fate::Refused(why),
                    None => Fate::StillHolding,
                },
            });
            if !target.ports.contains(&row.socket.local.port) {
                target.ports.push(row.socket.local.port);
            }
            if !target.inodes.contains(&row.socket.inode) {
                target.inodes.push(row.socket.inode);
            }
        }
    }
    let mut targets: Vec<Target> = by_pid.into_values().collect();
    for target in &mut targets {
        target.ports.sort_unstable();
    }
    targets.sort_by_key(|t| t.pid);
    targets
}

/// Sends the first signal to every target lsport may signal; with a dry
/// run only checks that it could. Returns the pidfds of the processes
/// signalled, by pid, for the wait that follows.
fn signal_all(
    query: &Query,
    options: &KillOptions,
    kill: &mut KillReport,
    confirm: &mut dyn FnMut(&Target) -> bool,
) -> HashMap<u32, ProcessHandle> {
    let mut handles = HashMap::new();
    for target in &mut kill.targets {
        if matches!(target.fate, Fate::Refused(_)) {
            continue;
        }
        let handle = match ProcessHandle::open(target.pid) {
            Ok(handle) => handle,
            Err(_) => {
                target.fate = Fate::GoneBefore;
                continue;
            }
        };
        if options.dry_run {
            target.fate = match handle.may_signal() {
                Err(libc::EPERM) => Fate::NotPermitted,
                Err(_) => Fate::GoneBefore,
                Ok(()) => Fate::WouldSignal,
            };
            continue;
        }
        if !confirm(target) {
            target.fate = Fate::Skipped;
            continue;
        }
        // The pid was read before the pidfd was opened: make sure it is
        // still the process that holds the socket.
        if !process::still_holds(&query.proc_root, target.pid, &target.inodes) {
            target.fate = Fate::GoneBefore;
            continue;
        }
        match handle.signal(options.signal) {
            Ok(()) => {
                target.signals_sent.push(options.signal);
                target.fate = Fate::StillHolding;
                handles.insert(target.pid, handle);
            }
            Err(libc::EPERM) => target.fate = Fate::NotPermitted,
            Err(_) => target.fate = Fate::GoneBefore,
        }
    }
    handles
}

/// `--sockets`: closes each connection on the ports; listeners,
/// bound-only and unconnected UDP sockets are left, since the kernel
/// keeps their port bound until their program closes them (checked on
/// 6.18: after SOCK_DESTROY a listener vanishes from sock_diag while
/// bind() still fails with EADDRINUSE).
fn close_all(
    query: &Query,
    report: &Report,
    options: &KillOptions,
    kill: &mut KillReport,
) -> Result<(), Error> {
    let rows: Vec<(Socket, Role, Vec<u32>)> = report
        .namespaces
        .iter()
        .flat_map(|n| &n.rows)
        .filter(|r| r.role != Role::TimeWait)
        .map(|r| {
            let mut pids: Vec<u32> = r.holders.iter().map(|h| h.pid).collect();
            pids.dedup();
            (r.socket.clone(), r.role, pids)
        })
        .collect();
    let dry = options.dry_run;
    let actions = wait::in_namespace(query, move |_| {
        Ok(rows
            .into_iter()
            .map(|(socket, role, pids)| {
                let fate = if socket.is_unconnected() {
                    SocketFate::BoundByProgram
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
    // Nothing was signalled: the processes are reported as they are.
    for target in &mut kill.targets {
        if !matches!(target.fate, Fate::Refused(_)) {
            target.fate = Fate::StillHolding;
        }
    }
    Ok(())
}

fn dry_outcome(kill: &KillReport) -> Outcome {
    let blocked = kill.hidden > 0
        || kill
            .targets
            .iter()
            .any(|t| matches!(t.fate, Fate::Refused(_) | Fate::NotPermitted))
            && kill.options.mode == Mode::Signal
        || kill
            .sockets
            .iter()
            .any(|s| s.fate == SocketFate::BoundByProgram);
    if blocked {
        Outcome::WouldNotFree
    } else {
        Outcome::WouldFree
    }
}

/// After the signals: watches the ports until nothing but TIME_WAIT holds
/// them, escalating to SIGKILL when the grace period ends, and stops
/// early when a new process takes a port or when what remains is held
/// only by processes lsport did not signal.
fn follow(
    query: &Query,
    options: &KillOptions,
    kill: &mut KillReport,
    known: &HashSet<u64>,
    handles: &HashMap<u32, ProcessHandle>,
    started: Instant,
) -> Result<(), Error> {
    let signalled: Vec<u32> = handles.keys().copied().collect();
    let escalate_at = (options.escalate && options.mode == Mode::Signal && !signalled.is_empty())
        .then(|| started + options.grace);
    let ports = query.merged_ports();
    let mut targets = std::mem::take(&mut kill.targets);
    let followed = wait::in_namespace(query, |here| {
        let mut poller = Poller::new(here, &ports, false)?;
        let mut deadline = match escalate_at {
            Some(at) => at + options.timeout,
            None => started + options.timeout,
        };
        let mut escalated = false;
        let mut interval = wait::FIRST_INTERVAL;
        let mut looked_at: HashSet<u64> = HashSet::new();
        let mut freed: Option<Instant> = None;
        // As in wait: the costly walk for bound-only sockets only while
        // one is seen, and to confirm that the ports look free.
        let mut bound_seen = true;
        loop {
            // Exits first, then the dump: a process's files are closed
            // before its pidfd says it exited, so the dump that follows
            // cannot show a socket it held.
            for target in targets.iter_mut() {
                if let Some(handle) = handles.get(&target.pid) {
                    if target.fate == Fate::StillHolding && handle.exited() {
                        target.fate = if escalated {
                            Fate::Killed
                        } else {
                            Fate::Exited
                        };
                    }
                }
            }
            let mut sockets = poller.sockets(bound_seen)?;
            if !bound_seen && sockets.iter().all(|s| s.state == State::TimeWait) {
                sockets = poller.sockets(true)?;
            }
            bound_seen = sockets.iter().any(|s| s.state == State::BoundInactive);
            let now = Instant::now();
            let holding: Vec<Socket> = sockets
                .iter()
                .filter(|s| s.state != State::TimeWait)
                .cloned()
                .collect();
            let time_wait = time_wait_of(sockets.into_iter(), &ports);
            if holding.is_empty() {
                // Free: watch a while longer, since a supervisor may be
                // about to start the service again.
                let freed_at = *freed.get_or_insert(now);
                if now - freed_at >= options.respawn_window {
                    return Ok((
                        Outcome::Freed,
                        Some(freed_at - started),
                        holding,
                        time_wait,
                        Vec::new(),
                    ));
                }
                std::thread::sleep(
                    wait::FIRST_INTERVAL
                        .max(interval)
                        .min(options.respawn_window),
                );
                continue;
            }
            // A socket lsport did not see at the start: someone took the
            // port. Its holders are looked up once.
            let fresh: Vec<u64> = holding
                .iter()
                .map(|s| s.inode)
                .filter(|i| *i != 0 && !known.contains(i) && !looked_at.contains(i))
                .collect();
            if !fresh.is_empty() {
                looked_at.extend(&fresh);
                let respawns = respawns_on(here, &ports, &fresh, &signalled)?;
                if !respawns.is_empty() {
                    return Ok((Outcome::Respawned, None, holding, time_wait, respawns));
                }
            }
            let ours_alive = targets
                .iter()
                .any(|t| signalled.contains(&t.pid) && t.fate == Fate::StillHolding);
            // What remains is held by processes lsport did not signal
            // (sockets with an inode still have an fd); orphaned
            // connections (inode 0) end by themselves, so keep waiting.
            if !ours_alive && holding.iter().all(|s| s.inode != 0) {
                return Ok((Outcome::StillHeld, None, holding, time_wait, Vec::new()));
            }
            if let Some(at) = escalate_at {
                if !escalated && now >= at {
                    escalated = true;
                    for target in targets.iter_mut().filter(|t| t.fate == Fate::StillHolding) {
                        if let Some(handle) = handles.get(&target.pid) {
                            if handle.signal(Signal::KILL).is_ok() {
                                target.signals_sent.push(Signal::KILL);
                            }
                        }
                    }
                    deadline = now + options.timeout;
                    interval = wait::FIRST_INTERVAL;
                }
            }
            if now >= deadline {
                return Ok((Outcome::TimedOut, None, holding, time_wait, Vec::new()));
            }
            let mut sleep = interval.min(deadline - now);
            if let Some(at) = escalate_at.filter(|_| !escalated) {
                sleep = sleep.min(at.saturating_duration_since(now));
            }
            std::thread::sleep(sleep);
            interval = (interval * 3 / 2).min(KILL_POLL_CAP);
        }
    });
    let (outcome, freed_after, remaining, time_wait, respawns) = match followed {
        Ok(result) => result,
        Err(err) => {
            kill.targets = targets;
            return Err(err);
        }
    };
    // The processes still alive: do they still hold a socket on the port?
    for target in targets.iter_mut().filter(|t| t.fate == Fate::StillHolding) {
        if signalled.contains(&target.pid)
            && !process::still_holds(&query.proc_root, target.pid, &target.inodes)
        {
            target.fate = Fate::Released;
        }
    }
    kill.targets = targets;
    kill.outcome = outcome;
    kill.freed_after = freed_after;
    kill.remaining = remaining;
    kill.time_wait = time_wait;
    kill.respawns = respawns;
    Ok(())
}

/// The interval between dumps while a kill is followed: short, since the
/// wait is short and its end is what the user waits for.
const KILL_POLL_CAP: Duration = Duration::from_millis(20);

/// The processes holding the `fresh` sockets that lsport did not signal,
/// each with what may restart it.
fn respawns_on(
    query: &Query,
    ports: &[PortRange],
    fresh: &[u64],
    signalled: &[u32],
) -> Result<Vec<Respawn>, Error> {
    let mut asked = query.clone();
    asked.view = View::Ports;
    asked.ports = ports.to_vec();
    asked.holders = HolderDetail::Processes;
    let report = probe(&asked)?;
    let mut respawns: Vec<Respawn> = Vec::new();
    for row in report.namespaces.iter().flat_map(|n| &n.rows) {
        if !fresh.contains(&row.socket.inode) {
            continue;
        }
        for holder in &row.holders {
            if signalled.contains(&holder.pid) || respawns.iter().any(|r| r.pid == holder.pid) {
                continue;
            }
            let supervisor = holder.container().cloned().or_else(|| {
                let text = std::fs::read_to_string(
                    query.proc_root.path(&format!("{}/cgroup", holder.pid)),
                )
                .ok()?;
                container::from_proc_cgroup(&text)
            });
            respawns.push(Respawn {
                pid: holder.pid,
                command: holder.command().to_vec(),
                port: row.socket.local.port,
                supervisor,
                parent: process::parent(&query.proc_root, holder.pid),
            });
        }
    }
    Ok(respawns)
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
}
