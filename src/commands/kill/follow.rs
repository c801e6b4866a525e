//! After the signals (or the closes): the ports are watched until
//! nothing holds them but sockets the kernel ends by itself (TIME_WAIT,
//! orphaned connections), SIGKILL goes out when the grace period ends
//! (only after a signal meant to end a process), and whoever holds the
//! ports when the watch stops is named: pid, command, parent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::commands::wait::{self, Poller, TimeWaitLeft};
use crate::error::Error;
use crate::holders::process::{self, ProcessHandle, Signal};
use crate::probe::probe;
use crate::query::Query;
use crate::socket::{Socket, State};

use super::{
    Fate, Interaction, KillOptions, KillReport, Mode, Outcome, RemainingSocket, Respawn, Scope,
    Target, left_on, remaining_of, rows_of,
};

/// The interval between dumps while a kill is followed: short, since the
/// wait is short and its end is what the user waits for.
const KILL_POLL_CAP: Duration = Duration::from_millis(20);

/// Why the watch stopped.
enum Stop {
    /// Nothing held the ports for the whole respawn window; they were
    /// first seen free this long after the signals.
    Freed(Duration),
    /// A process lsport did not start with opened a socket on a port.
    Respawned,
    /// Every process signalled has exited or let go, and the ports are
    /// still held.
    SignalledGone,
    /// After a signal not meant to end a process: the time to settle
    /// (the respawn window) has passed.
    Settled,
    /// `--timeout` ran out.
    TimedOut,
    /// Stopped from outside.
    Interrupted,
}

/// What the watch saw last.
struct Seen {
    stop: Stop,
    time_wait: TimeWaitLeft,
    orphaned: TimeWaitLeft,
}

/// Follows the signals sent (their pidfds in `handles`) or the sockets
/// closed, and fills in the rest of `kill`: each target's fate, the
/// newcomers on the ports, what remains and the outcome. `known` holds
/// the inodes of the sockets that held the ports at the start.
pub(super) fn follow(
    query: &Query,
    scope: &Scope,
    kill: &mut KillReport,
    known: &HashSet<u64>,
    handles: &HashMap<u32, ProcessHandle>,
    interaction: &mut (dyn Interaction + Send),
) -> Result<(), Error> {
    let options = kill.options.clone();
    let started = Instant::now();
    let signalled: Vec<u32> = handles.keys().copied().collect();
    let ends = options.mode == Mode::Sockets || options.signal.ends_process();
    let escalate_at = (options.mode == Mode::Signal
        && ends
        && options.escalate
        && options.signal != Signal::KILL
        && !signalled.is_empty())
    .then(|| started + options.grace);
    let mut targets = std::mem::take(&mut kill.targets);
    let mut respawns: Vec<Respawn> = Vec::new();
    let watch = Watch {
        options: &options,
        scope,
        known,
        handles,
        escalate_at,
        started,
        ends,
    };
    let watched = wait::in_namespace(query, |here| {
        let seen = watch.run(here, &mut targets, interaction, &mut respawns)?;
        let named = match seen.stop {
            Stop::Freed(_) => None,
            _ => Some(holders_now(here, scope, &targets, known, None)?),
        };
        Ok((seen, named))
    });
    kill.targets = targets;
    let (seen, named) = watched?;
    kill.time_wait = seen.time_wait;
    kill.orphaned = seen.orphaned;
    let mut newcomers = false;
    let (remaining, found) = named.unwrap_or_default();
    for respawn in found {
        if kill
            .respawns
            .iter()
            .chain(&respawns)
            .all(|r| r.pid != respawn.pid)
        {
            newcomers = true;
            respawns.push(respawn);
        }
    }
    newcomers |= !respawns.is_empty();
    kill.respawns.extend(respawns);
    kill.remaining = remaining;
    let freed_now = || Some(started.elapsed());
    kill.outcome = match seen.stop {
        Stop::Freed(after) => {
            kill.freed_after = Some(after);
            Outcome::Freed
        }
        // Gone between the last dump and the probe that named them.
        _ if kill.remaining.is_empty() => {
            kill.freed_after = freed_now();
            Outcome::Freed
        }
        Stop::Interrupted => Outcome::Interrupted,
        Stop::Respawned => Outcome::Respawned,
        Stop::SignalledGone if newcomers => Outcome::Respawned,
        Stop::SignalledGone => Outcome::StillHeld,
        // Decided when the signals went out: reached or not.
        Stop::Settled => kill.outcome,
        Stop::TimedOut => Outcome::TimedOut,
    };
    // The processes still alive: do they still hold a socket on the port?
    for target in kill.targets.iter_mut() {
        if target.fate == Fate::StillHolding
            && signalled.contains(&target.pid)
            && !process::held_sockets(&query.proc_root, target.pid, &target.inodes)
                .holds_any(&target.inodes)
        {
            target.fate = Fate::Released;
        }
    }
    Ok(())
}

/// What the watch goes by.
struct Watch<'a> {
    options: &'a KillOptions,
    scope: &'a Scope,
    /// The inodes of the sockets that held the ports at the start.
    known: &'a HashSet<u64>,
    /// The processes signalled.
    handles: &'a HashMap<u32, ProcessHandle>,
    /// When SIGKILL goes out, if it does.
    escalate_at: Option<Instant>,
    /// When the first signal went out.
    started: Instant,
    /// The signal is meant to end processes (or sockets were closed):
    /// the ports are waited for; otherwise they settle, then are named.
    ends: bool,
}

impl Watch<'_> {
    /// Watches the ports from the namespace `here` is in; `respawns`
    /// gets the processes that open new sockets on them.
    fn run(
        &self,
        here: &Query,
        targets: &mut [Target],
        interaction: &mut (dyn Interaction + Send),
        respawns: &mut Vec<Respawn>,
    ) -> Result<Seen, Error> {
        let Watch {
            options,
            scope,
            known,
            handles,
            escalate_at,
            started,
            ends,
        } = *self;
        let ports = here.merged_ports();
        let mut poller = Poller::new(here, &ports, false)?;
        let mut deadline = match (ends, escalate_at) {
            (false, _) => started + options.respawn_window,
            (true, Some(at)) => at + options.timeout,
            (true, None) => started + options.timeout,
        };
        let mut escalated = false;
        let mut interval = wait::FIRST_INTERVAL;
        let mut looked_at: HashSet<u64> = HashSet::new();
        let mut freed: Option<Instant> = None;
        // As in wait: the costly walk for bound-only sockets only while one
        // is seen, and to confirm that the ports look free.
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
            if !bound_seen && !sockets.iter().any(|s| scope.holds(s)) {
                sockets = poller.sockets(true)?;
            }
            bound_seen = sockets.iter().any(|s| s.state == State::BoundInactive);
            let now = Instant::now();
            let seen = |stop| Seen {
                stop,
                time_wait: left_on(sockets.iter(), |s| s.state == State::TimeWait),
                orphaned: left_on(sockets.iter(), Socket::is_orphaned),
            };
            if options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(seen(Stop::Interrupted));
            }
            let holding: Vec<&Socket> = sockets.iter().filter(|s| scope.holds(s)).collect();
            if holding.is_empty() {
                // Free: watch a while longer, since a supervisor may be
                // about to start the service again.
                let freed_at = *freed.get_or_insert(now);
                if now - freed_at >= options.respawn_window {
                    return Ok(seen(Stop::Freed(freed_at - started)));
                }
                std::thread::sleep(
                    wait::FIRST_INTERVAL
                        .max(interval)
                        .min(options.respawn_window),
                );
                continue;
            }
            freed = None;
            // A socket lsport did not see at the start: someone took the
            // port. Its holders are looked up once.
            let fresh: Vec<u64> = holding
                .iter()
                .map(|s| s.inode)
                .filter(|i| *i != 0 && !known.contains(i) && !looked_at.contains(i))
                .collect();
            if !fresh.is_empty() {
                looked_at.extend(&fresh);
                let (_, found) = holders_now(here, scope, targets, known, Some(&fresh))?;
                for respawn in found {
                    if respawns.iter().all(|r| r.pid != respawn.pid) {
                        respawns.push(respawn);
                    }
                }
                // After a reload signal new holders are expected: they are
                // named at the end.
                if ends && !respawns.is_empty() {
                    return Ok(seen(Stop::Respawned));
                }
            }
            let signalled_alive = targets
                .iter()
                .any(|t| handles.contains_key(&t.pid) && t.fate == Fate::StillHolding);
            // What remains is held by processes lsport did not signal
            // (sockets with an inode still have an fd, or are the kernel's):
            // they are named. Sockets without one (a connection not yet
            // accepted) go with their listener.
            if ends && !signalled_alive && holding.iter().all(|s| s.inode != 0) {
                return Ok(seen(Stop::SignalledGone));
            }
            if let Some(at) = escalate_at {
                if !escalated && now >= at {
                    escalated = true;
                    for target in targets.iter_mut().filter(|t| t.fate == Fate::StillHolding) {
                        if let Some(handle) = handles.get(&target.pid) {
                            interaction.sending(target, Signal::KILL);
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
                return Ok(seen(if ends { Stop::TimedOut } else { Stop::Settled }));
            }
            let mut sleep = interval.min(deadline - now);
            if let Some(at) = escalate_at.filter(|_| !escalated) {
                sleep = sleep.min(at.saturating_duration_since(now));
            }
            std::thread::sleep(sleep);
            interval = (interval * 3 / 2).min(KILL_POLL_CAP);
        }
    }
}

/// One probe of the ports with their holders: the sockets that hold
/// them now (only those of the inodes `only`, if given), with their
/// holders, and the processes among those holders that lsport did not
/// start with, each with what may have started it.
fn holders_now(
    here: &Query,
    scope: &Scope,
    targets: &[Target],
    known: &HashSet<u64>,
    only: Option<&[u64]>,
) -> Result<(Vec<RemainingSocket>, Vec<Respawn>), Error> {
    let report = probe(here)?;
    let mut remaining = Vec::new();
    let mut newcomers: Vec<Respawn> = Vec::new();
    for row in rows_of(&report) {
        if !scope.holds(&row.socket) || only.is_some_and(|o| !o.contains(&row.socket.inode)) {
            continue;
        }
        remaining.push(remaining_of(row));
        for holder in &row.holders {
            if targets.iter().any(|t| t.pid == holder.pid)
                || newcomers.iter().any(|r| r.pid == holder.pid)
            {
                continue;
            }
            newcomers.push(Respawn::of(
                holder,
                Some(row.socket.local.port),
                known.contains(&row.socket.inode),
                &here.proc_root,
            ));
        }
    }
    Ok((remaining, newcomers))
}
