//! `lsport kill`'s answer: a few lines for people (each process and its
//! fate, a respawn and what restarts it, the TIME_WAIT left over) and
//! its JSON document (doc/schema/kill.schema.json).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::commands::kill::{
    Fate, KillReport, Mode, Outcome, Respawn, SocketFate, Target, stop_command,
};
use crate::commands::wait::TimeWaitLeft;
use crate::duration;
use crate::render::escape::escape_bytes;
use crate::render::json::{ContainerView, SCHEMA_VERSION, write_document};
use crate::socket::Socket;

/// The report as text, one line per process or socket and per finding.
pub fn text(report: &KillReport) -> String {
    let mut out = String::new();
    let ports = report
        .ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let dry = report.options.dry_run;
    if report.outcome == Outcome::NothingHeld {
        let _ = writeln!(out, "nothing holds port {ports}");
        time_wait_line(&mut out, &report.time_wait);
        return out;
    }
    for target in &report.targets {
        let _ = writeln!(out, "{}", target_line(target, report));
    }
    for action in &report.sockets {
        let what = match &action.fate {
            SocketFate::WouldClose => "would close".to_string(),
            SocketFate::Closed => "closed".to_string(),
            SocketFate::BoundByProgram => {
                "left open: its program bound the port, which stays bound until the program closes it; signal the program instead".to_string()
            }
            SocketFate::Failed(errno) => format!(
                "could not close it: {}{}",
                io::Error::from_raw_os_error(*errno),
                if *errno == libc::EPERM {
                    " (closing sockets needs CAP_NET_ADMIN)"
                } else {
                    ""
                }
            ),
        };
        let _ = writeln!(
            out,
            "{} {} {} -> {} ({}): {what}",
            action.socket.protocol.name(),
            action.role.name(),
            action.socket.local,
            action.socket.remote,
            action.socket.state.kernel_name()
        );
    }
    if report.hidden > 0 {
        let _ = writeln!(
            out,
            "{} socket{} on the port ha{} holders hidden from this user: they cannot be signalled; run as root to see them",
            report.hidden,
            plural(report.hidden),
            if report.hidden == 1 { "s" } else { "ve" }
        );
    }
    for respawn in &report.respawns {
        respawn_lines(&mut out, respawn);
    }
    match report.outcome {
        Outcome::Freed => {
            let after = report
                .freed_after
                .map(|d| format!(" after {}", duration::display(d)))
                .unwrap_or_default();
            let _ = writeln!(out, "port {ports} is free{after}");
        }
        Outcome::WouldFree => {
            let _ = writeln!(out, "dry run: nothing was sent");
        }
        Outcome::WouldNotFree => {
            let _ = writeln!(
                out,
                "dry run: nothing was sent; the port would stay held by what cannot be {}",
                if report.options.mode == Mode::Sockets {
                    "closed"
                } else {
                    "signalled"
                }
            );
        }
        Outcome::Respawned => {
            let _ = writeln!(out, "port {ports} was taken again");
        }
        Outcome::StillHeld | Outcome::TimedOut => {
            let why = if report.outcome == Outcome::TimedOut {
                format!(
                    "still held after --timeout {}",
                    duration::display(report.options.timeout)
                )
            } else {
                "still held".to_string()
            };
            let _ = writeln!(out, "port {ports} is {why}:");
            for socket in &report.remaining {
                let _ = writeln!(out, "  {}", socket_line(socket));
            }
        }
        Outcome::NothingHeld => {}
    }
    if !dry {
        time_wait_line(&mut out, &report.time_wait);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn who(target: &Target) -> String {
    let user = match (&target.user, target.uid) {
        (Some(name), _) => escape_bytes(name.as_bytes()),
        (None, Some(uid)) => uid.to_string(),
        (None, None) => "?".to_string(),
    };
    format!(
        "pid {} ({}, {user})",
        target.pid,
        escape_bytes(&target.command)
    )
}

fn target_line(target: &Target, report: &KillReport) -> String {
    let ports = target
        .ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let signal = report.options.signal.name();
    let sent = target
        .signals_sent
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", then ");
    let who = who(target);
    match target.fate {
        Fate::WouldSignal => format!("would send {signal} to {who}, holding {ports}"),
        Fate::Refused(why) => format!("{who} holds {ports}: refused, {}", why.describe()),
        Fate::Skipped => format!("{who} holds {ports}: skipped"),
        Fate::NotPermitted => {
            format!("{who} holds {ports}: not permitted to signal it (EPERM)")
        }
        Fate::GoneBefore => format!("{who} had let go of {ports} before it was signalled"),
        Fate::Exited => format!("sent {sent} to {who}: exited"),
        Fate::Killed => format!(
            "sent {sent} to {who}: killed after the grace period ({})",
            duration::display(report.options.grace)
        ),
        Fate::Released => format!("sent {sent} to {who}: still running, but let go of {ports}"),
        Fate::StillHolding if target.signals_sent.is_empty() => {
            format!("{who} holds {ports}")
        }
        Fate::StillHolding => format!("sent {sent} to {who}: still holding {ports}"),
    }
}

fn respawn_lines(out: &mut String, respawn: &Respawn) {
    let _ = writeln!(
        out,
        "respawned: pid {} ({}) took port {}",
        respawn.pid,
        escape_bytes(&respawn.command),
        respawn.port
    );
    match &respawn.supervisor {
        Some(supervisor) => {
            let name = match supervisor.runtime {
                "systemd" => format!("systemd unit {}", escape_bytes(supervisor.id.as_bytes())),
                runtime => format!(
                    "{runtime} container {}",
                    escape_bytes(
                        supervisor
                            .id
                            .chars()
                            .take(12)
                            .collect::<String>()
                            .as_bytes()
                    )
                ),
            };
            match stop_command(supervisor) {
                Some(command) => {
                    let _ = writeln!(
                        out,
                        "  it runs under {name}, which restarts it; stop it with: {}",
                        escape_bytes(command.as_bytes())
                    );
                }
                None => {
                    let _ = writeln!(out, "  it runs under {name}, which restarts it");
                }
            }
        }
        None => {
            if let Some((pid, command)) = &respawn.parent {
                let _ = writeln!(
                    out,
                    "  its parent, pid {pid} ({}), may be what restarts it",
                    escape_bytes(command)
                );
            }
        }
    }
}

fn socket_line(socket: &Socket) -> String {
    format!(
        "{} {} {} -> {} (uid {})",
        socket.protocol.name(),
        socket.state.kernel_name(),
        socket.local,
        socket.remote,
        socket.uid
    )
}

fn time_wait_line(out: &mut String, time_wait: &TimeWaitLeft) {
    if time_wait.count == 0 {
        return;
    }
    let ends = time_wait
        .last_ends_in_ms
        .map(|ms| {
            format!(
                "; the last ends in {}",
                duration::display(std::time::Duration::from_millis(u64::from(ms)))
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} TIME_WAIT socket{} remain{}: servers that set SO_REUSEADDR can bind the port now{ends}",
        time_wait.count,
        plural(time_wait.count),
        if time_wait.count == 1 { "s" } else { "" }
    );
}

/// `lsport kill --json`.
pub fn write_json(report: &KillReport, sink: &mut dyn io::Write) -> io::Result<()> {
    let options = &report.options;
    let document = KillDocument {
        schema_version: SCHEMA_VERSION,
        action: "kill",
        mode: match options.mode {
            Mode::Signal => "signal",
            Mode::Sockets => "sockets",
        },
        dry_run: options.dry_run,
        signal: (options.mode == Mode::Signal).then(|| options.signal.name()),
        grace_ms: duration_ms(options.grace),
        escalate: options.escalate && options.mode == Mode::Signal,
        timeout_ms: duration_ms(options.timeout),
        ports: report.ports.iter().map(|r| [r.lo, r.hi]).collect(),
        targets: report.targets.iter().map(TargetView::of).collect(),
        sockets: report
            .sockets
            .iter()
            .map(|a| SocketView {
                protocol: a.socket.protocol.name(),
                state: a.socket.state.kernel_name(),
                role: a.role.name(),
                local: EndpointView::of(&a.socket.local),
                remote: EndpointView::of(&a.socket.remote),
                pids: &a.pids,
                result: a.fate.id(),
                errno: match a.fate {
                    SocketFate::Failed(errno) => Some(errno),
                    _ => None,
                },
            })
            .collect(),
        hidden_holders: report.hidden,
        respawns: report.respawns.iter().map(RespawnView::of).collect(),
        remaining: report
            .remaining
            .iter()
            .filter(|_| !matches!(report.outcome, Outcome::Freed | Outcome::NothingHeld))
            .map(|s| RemainingView {
                protocol: s.protocol.name(),
                state: s.state.kernel_name(),
                local: EndpointView::of(&s.local),
                remote: EndpointView::of(&s.remote),
                uid: s.uid,
                inode: s.inode,
            })
            .collect(),
        time_wait: TimeWaitView {
            count: report.time_wait.count,
            last_ends_in_ms: report.time_wait.last_ends_in_ms,
        },
        outcome: report.outcome.id(),
        freed_after_ms: report.freed_after.map(duration_ms),
    };
    write_document(&document, sink)
}

fn duration_ms(d: std::time::Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[derive(Serialize)]
struct KillDocument<'a> {
    schema_version: u32,
    action: &'static str,
    mode: &'static str,
    dry_run: bool,
    signal: Option<String>,
    grace_ms: u64,
    escalate: bool,
    timeout_ms: u64,
    ports: Vec<[u16; 2]>,
    targets: Vec<TargetView<'a>>,
    sockets: Vec<SocketView<'a>>,
    hidden_holders: usize,
    respawns: Vec<RespawnView<'a>>,
    remaining: Vec<RemainingView>,
    time_wait: TimeWaitView,
    outcome: &'static str,
    freed_after_ms: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct TimeWaitView {
    pub(crate) count: usize,
    pub(crate) last_ends_in_ms: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct EndpointView {
    address: std::net::IpAddr,
    port: u16,
}

impl EndpointView {
    fn of(endpoint: &crate::socket::Endpoint) -> EndpointView {
        EndpointView {
            address: endpoint.readable_address(),
            port: endpoint.port,
        }
    }
}

#[derive(Serialize)]
struct TargetView<'a> {
    pid: u32,
    pid_in_namespace: Option<u32>,
    command: Cow<'a, str>,
    user: Option<&'a str>,
    uid: Option<u32>,
    container: Option<ContainerView<'a>>,
    ports: &'a [u16],
    signals_sent: Vec<String>,
    result: &'static str,
    refusal: Option<&'static str>,
}

impl<'a> TargetView<'a> {
    fn of(target: &'a Target) -> TargetView<'a> {
        TargetView {
            pid: target.pid,
            pid_in_namespace: target.pid_in_namespace,
            command: String::from_utf8_lossy(&target.command),
            user: target.user.as_deref(),
            uid: target.uid,
            container: target.container.as_ref().map(ContainerView::of),
            ports: &target.ports,
            signals_sent: target.signals_sent.iter().map(|s| s.name()).collect(),
            result: target.fate.id(),
            refusal: match target.fate {
                Fate::Refused(why) => Some(why.id()),
                _ => None,
            },
        }
    }
}

#[derive(Serialize)]
struct SocketView<'a> {
    protocol: &'static str,
    state: String,
    role: &'static str,
    local: EndpointView,
    remote: EndpointView,
    pids: &'a [u32],
    result: &'static str,
    errno: Option<i32>,
}

#[derive(Serialize)]
struct RemainingView {
    protocol: &'static str,
    state: String,
    local: EndpointView,
    remote: EndpointView,
    uid: u32,
    inode: u64,
}

#[derive(Serialize)]
struct RespawnView<'a> {
    pid: u32,
    command: Cow<'a, str>,
    port: u16,
    supervisor: Option<ContainerView<'a>>,
    stop_command: Option<String>,
    parent_pid: Option<u32>,
    parent_command: Option<Cow<'a, str>>,
}

impl<'a> RespawnView<'a> {
    fn of(respawn: &'a Respawn) -> RespawnView<'a> {
        RespawnView {
            pid: respawn.pid,
            command: String::from_utf8_lossy(&respawn.command),
            port: respawn.port,
            supervisor: respawn.supervisor.as_ref().map(ContainerView::of),
            stop_command: respawn.supervisor.as_ref().and_then(stop_command),
            parent_pid: respawn.parent.as_ref().map(|(pid, _)| *pid),
            parent_command: respawn
                .parent
                .as_ref()
                .map(|(_, c)| String::from_utf8_lossy(c)),
        }
    }
}
