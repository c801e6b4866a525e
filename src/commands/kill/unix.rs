//! `lsport kill PATH` and `kill @NAME`: signal the processes that hold
//! the socket taking connections or datagrams by the name (its listener,
//! or its bound datagram socket), never the clients connected to it,
//! with the same refusals, blast radius, confirmation and grace as for a
//! port; then wait until nothing is bound to the name.
//!
//! The kernel tells of no Unix socket closing: the wait polls the table
//! (as `wait --free PATH` does).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::commands::wait::LeftBehind;
use crate::commands::wait::unix::bound_servers;
use crate::error::Error;
use crate::holders::process::{self, ProcessHandle, Signal};
use crate::query::{HolderDetail, Query, SourceChoice, View};
use crate::unix::probe;
use crate::unix::report::{UnixReport, UnixRole, UnixRow};
use crate::unix::target::UnixTarget;

use super::{
    Fate, Interaction, KillOptions, KillReport, Mode, Outcome, Respawn, Target, blast,
    choose_receivers, foresee_signals, is_wide, signal_all, target_of,
};

/// How often the table is looked at while the signals take effect.
const POLL: Duration = Duration::from_millis(50);

/// The answer of `lsport kill PATH`.
#[derive(Debug, Clone)]
pub struct UnixKillReport {
    /// What the user named.
    pub target: UnixTarget,
    /// The processes signalled and what became of them; its ports are
    /// empty.
    pub kill: KillReport,
    /// The probe's answer on the name before anything was sent: the
    /// servers, and the clients left alone.
    pub before: UnixReport,
    /// The processes holding clients of the name only: never signalled.
    pub clients_left_alone: Vec<u32>,
    /// At the end, a socket file is still at the path (a server killed
    /// before it could remove it leaves it; bind() fails until it goes).
    pub file_remains: bool,
}

/// Frees the query's one Unix target.
pub fn run(
    query: &Query,
    options: &KillOptions,
    interaction: &mut (dyn Interaction + Send),
) -> Result<UnixKillReport, Error> {
    let [target] = &query.unix_targets[..] else {
        return Err(Error::usage("lsport kill takes one socket path or @name"));
    };
    if options.mode == Mode::Sockets {
        return Err(Error::usage(
            "--sockets closes TCP and UDP sockets through sock_diag, which cannot close a Unix socket: signal its holders instead",
        ));
    }
    let mut asked = query.clone();
    asked.view = View::Ports;
    asked.holders = HolderDetail::Processes;
    asked.stop_at_first_match = false;
    let before = probe::probe(&asked)?;
    let source = match before.source {
        crate::source::SourceKind::Proc => SourceChoice::Proc,
        crate::source::SourceKind::Netlink => SourceChoice::Netlink,
    };
    let answer = before
        .targets
        .first()
        .ok_or_else(|| Error::usage("lsport kill takes one socket path or @name"))?;
    let servers: Vec<&UnixRow> = answer.servers(&before.rows).collect();
    let server_pids: Vec<u32> = servers
        .iter()
        .flat_map(|r| r.holders.iter().map(|h| h.pid))
        .collect();
    let mut clients_left_alone: Vec<u32> = answer
        .rows
        .iter()
        .map(|&i| &before.rows[i])
        .filter(|r| matches!(r.role, UnixRole::Client | UnixRole::Waiting))
        .flat_map(|r| r.holders.iter().map(|h| h.pid))
        .filter(|pid| !server_pids.contains(pid))
        .collect();
    clients_left_alone.sort_unstable();
    clients_left_alone.dedup();
    let mut kill = KillReport {
        ports: Vec::new(),
        options: options.clone(),
        targets: targets_of(&servers, &asked),
        sockets: Vec::new(),
        hidden: servers.iter().filter(|r| r.holders_hidden).count(),
        respawns: Vec::new(),
        remaining: Vec::new(),
        time_wait: LeftBehind::NONE,
        orphaned: LeftBehind::NONE,
        left_alone: clients_left_alone.len(),
        wide: false,
        outcome: Outcome::NothingHeld,
        freed_after: None,
        // Forwarding rules and socket units concern ports only.
        forward_targets: Vec::new(),
        rules_unread: Vec::new(),
        socket_units: Vec::new(),
        forwards: Vec::new(),
    };
    let finish = |kill: KillReport| UnixKillReport {
        target: target.clone(),
        kill,
        before: before.clone(),
        clients_left_alone: clients_left_alone.clone(),
        file_remains: match target {
            UnixTarget::Path(path) => std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }),
            UnixTarget::Abstract(_) => false,
        },
    };
    if servers.is_empty() {
        return Ok(finish(kill));
    }
    choose_receivers(&mut kill.targets, options.signal);
    blast::measure(&asked, &mut kill.targets)?;
    kill.wide = is_wide(&[], &kill.targets);
    let unreachable = kill.hidden > 0
        || servers
            .iter()
            .any(|r| r.holders.is_empty() && !r.holders_hidden);
    if options.dry_run {
        foresee_signals(&mut kill.targets);
        let all_reached = kill
            .targets
            .iter()
            .all(|t| matches!(t.fate, Fate::WouldSignal | Fate::LeftToParent(_)));
        kill.outcome = match (all_reached && !unreachable, options.signal.ends_process()) {
            (true, true) => Outcome::WouldFree,
            (true, false) => Outcome::WouldSignal,
            (false, _) => Outcome::WouldNotFree,
        };
        return Ok(finish(kill));
    }
    if kill.wide && !options.yes && !options.interactive && !interaction.confirm_wide(&kill) {
        kill.outcome = Outcome::NotConfirmed;
        return Ok(finish(kill));
    }
    let known: HashSet<u64> = servers.iter().map(|r| r.socket.inode).collect();
    let started = Instant::now();
    let handles = signal_all(&asked, options, &mut kill.targets, interaction);
    if kill.targets.iter().all(|t| t.signals_sent.is_empty()) {
        // Nothing was sent (refused, not permitted, skipped, hidden):
        // nothing to wait for.
        kill.outcome = Outcome::StillHeld;
        return Ok(finish(kill));
    }
    follow(
        &asked,
        Watched {
            target,
            source,
            known: &known,
        },
        options,
        &mut kill,
        &handles,
        started,
        interaction,
    )?;
    if !options.signal.ends_process() && kill.outcome == Outcome::StillHeld && !unreachable {
        kill.outcome = Outcome::Signalled;
    }
    Ok(finish(kill))
}

/// The processes holding the servers, as the port kill names them.
fn targets_of(servers: &[&UnixRow], query: &Query) -> Vec<Target> {
    let chain = process::self_and_ancestors(&query.proc_root);
    let mut by_pid: HashMap<u32, Target> = HashMap::new();
    for row in servers {
        for holder in &row.holders {
            let target = by_pid
                .entry(holder.pid)
                .or_insert_with(|| target_of(holder, query, &chain));
            if !target.inodes.contains(&row.socket.inode) {
                target.inodes.push(row.socket.inode);
            }
        }
    }
    let mut targets: Vec<Target> = by_pid.into_values().collect();
    targets.sort_by_key(|t| t.pid);
    targets
}

/// What the kill follows: the name, the source that answered before
/// the signals, and the inodes of the servers then.
struct Watched<'a> {
    target: &'a UnixTarget,
    source: SourceChoice,
    known: &'a HashSet<u64>,
}

/// Until nothing is bound to the name: SIGKILL after the grace period
/// (a signal meant to end a process only, unless --no-escalate), the
/// timeout after that, then the respawn window. A process found holding
/// the name that was not signalled is named as the port kill names it.
fn follow(
    query: &Query,
    watched: Watched<'_>,
    options: &KillOptions,
    kill: &mut KillReport,
    handles: &HashMap<u32, ProcessHandle>,
    started: Instant,
    interaction: &mut (dyn Interaction + Send),
) -> Result<(), Error> {
    let escalates = options.escalate && options.signal.ends_process();
    let patience = if options.signal.ends_process() {
        options.grace + options.timeout
    } else {
        // A reload: its effect is only watched for, not waited on.
        options.respawn_window
    };
    let Watched {
        target,
        source,
        known,
    } = watched;
    let mut killed = false;
    let stopped = || options.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    let freed = loop {
        settle_fates(kill, handles, killed);
        let bound = bound_servers(query, target, source)?;
        if bound.is_empty() {
            break true;
        }
        // Every process signalled is gone and the name is still bound:
        // by whom, if by someone lsport did not start with.
        if handles.values().all(ProcessHandle::exited) {
            let found = newcomers(query, kill, known)?;
            if !found.is_empty() {
                kill.respawns = found;
                kill.outcome = Outcome::Respawned;
                return Ok(());
            }
        }
        if stopped() {
            kill.outcome = Outcome::Interrupted;
            return Ok(());
        }
        let elapsed = started.elapsed();
        if escalates && !killed && elapsed >= options.grace {
            killed = true;
            for t in kill.targets.iter_mut() {
                let Some(handle) = handles.get(&t.pid) else {
                    continue;
                };
                if handle.exited() {
                    continue;
                }
                interaction.sending(t, Signal::KILL);
                if handle.signal(Signal::KILL).is_ok() {
                    t.signals_sent.push(Signal::KILL);
                }
            }
        }
        if elapsed >= patience {
            break false;
        }
        std::thread::sleep(POLL);
    };
    settle_fates(kill, handles, killed);
    if !freed {
        kill.respawns = newcomers(query, kill, known)?;
        kill.outcome = if options.signal.ends_process() {
            Outcome::TimedOut
        } else {
            Outcome::StillHeld
        };
        return Ok(());
    }
    kill.freed_after = Some(started.elapsed());
    kill.outcome = Outcome::Freed;
    // A supervisor that starts the service again binds the name again.
    let window = Instant::now();
    while window.elapsed() < options.respawn_window && !stopped() {
        std::thread::sleep(POLL);
        if !bound_servers(query, target, source)?.is_empty() {
            kill.respawns = newcomers(query, kill, known)?;
            kill.outcome = Outcome::Respawned;
            break;
        }
    }
    for t in kill.targets.iter_mut() {
        if t.fate == Fate::StillHolding && !t.signals_sent.is_empty() {
            t.fate = Fate::Released;
        }
    }
    Ok(())
}

/// The processes holding the name's servers now that were no target:
/// a supervisor's restart, a successor forked on the signal (holding a
/// server lsport saw before: `known`).
fn newcomers(
    query: &Query,
    kill: &KillReport,
    known: &HashSet<u64>,
) -> Result<Vec<Respawn>, Error> {
    let now = probe::probe(query)?;
    let mut found: Vec<Respawn> = Vec::new();
    let Some(answer) = now.targets.first() else {
        return Ok(found);
    };
    for row in answer.servers(&now.rows) {
        for holder in &row.holders {
            if kill.target(holder.pid).is_none() && found.iter().all(|r| r.pid != holder.pid) {
                found.push(Respawn::of(
                    holder,
                    None,
                    known.contains(&row.socket.inode),
                    &query.proc_root,
                ));
            }
        }
    }
    Ok(found)
}

/// The fate of each signalled process that has exited.
fn settle_fates(kill: &mut KillReport, handles: &HashMap<u32, ProcessHandle>, killed: bool) {
    for t in kill.targets.iter_mut() {
        if t.fate != Fate::StillHolding {
            continue;
        }
        if handles.get(&t.pid).is_some_and(ProcessHandle::exited) {
            t.fate = if killed && t.signals_sent.contains(&Signal::KILL) {
                Fate::Killed
            } else {
                Fate::Exited
            };
        }
    }
}
