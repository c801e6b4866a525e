//! `lsport kill`'s answer: a few lines for people (each process, what
//! goes down with it and its fate, the newcomers on the port and what
//! starts them, who holds the port at the end, the sockets the kernel
//! ends by itself) and its JSON document (doc/schema/kill.schema.json).
//! Also the lines said while it runs: each signal as it goes, and the
//! questions of `--interactive` and of a wide kill.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::commands::kill::{
    BlastRadius, Fate, HANDFUL, KillReport, Mode, Outcome, RemainingSocket, Respawn, SocketFate,
    Target, stop_command,
};
use crate::commands::wait::TimeWaitLeft;
use crate::duration;
use crate::holders::container::Container;
use crate::holders::process::{Refusal, Signal};
use crate::render::columns::{protocol_label, socket_state_label};
use crate::render::escape::{escape_bytes, escape_str};
use crate::render::forwards;
use crate::render::json::{ContainerView, SCHEMA_VERSION, TargetSocketsEntry, write_document};
use crate::socket::Protocol;

/// How many remaining sockets the text lists before it counts the rest.
const SHOWN_SOCKETS: usize = 20;
/// How many other listening ports of a process the text lists.
const SHOWN_PORTS: usize = 12;

/// The report as text, one line per process or socket and per finding.
pub fn text(report: &KillReport) -> String {
    let mut out = String::new();
    let ports = ports_asked(report);
    let dry = report.options.dry_run;
    if report.outcome == Outcome::NothingHeld {
        let _ = writeln!(out, "nothing holds port {ports}");
        left_lines(&mut out, report);
        return out;
    }
    if report.outcome == Outcome::Forwarded {
        let rules = forwards::by_rule(&report.forwards).len();
        let _ = writeln!(
            out,
            "nothing to signal: no socket holds port {ports}, but {} {}:",
            if rules == 1 {
                "a forwarding rule takes"
            } else {
                "forwarding rules take"
            },
            if ports.contains(',') || ports.contains('-') {
                "them"
            } else {
                "it"
            }
        );
        forward_lines(&mut out, report);
        left_lines(&mut out, report);
        return out;
    }
    // The blast radius was said as each signal went; a plan shows it.
    let planned = dry || report.outcome == Outcome::NotConfirmed;
    for target in &report.targets {
        target_lines(&mut out, target, report, planned);
    }
    for action in &report.sockets {
        let what = match &action.fate {
            SocketFate::WouldClose => "would close".to_string(),
            SocketFate::Closed => "closed".to_string(),
            SocketFate::BoundByProgram => {
                "left open: its program bound the port, which stays bound until the program closes it; signal the program instead".to_string()
            }
            SocketFate::WouldFail(errno) => format!(
                "would not close: the kernel would refuse ({}){}",
                io::Error::from_raw_os_error(*errno),
                net_admin_hint(*errno)
            ),
            SocketFate::Failed(errno) => format!(
                "could not close it: {}{}",
                io::Error::from_raw_os_error(*errno),
                net_admin_hint(*errno)
            ),
        };
        let _ = writeln!(
            out,
            "{} {} {} -> {} ({}): {what}",
            protocol_label(&action.socket),
            action.role.name(),
            action.socket.local,
            action.socket.remote,
            socket_state_label(&action.socket)
        );
    }
    if report.hidden > 0 {
        let _ = writeln!(
            out,
            "{} socket{} on the port ha{} holders hidden from this user: they cannot be signalled{}",
            report.hidden,
            plural(report.hidden),
            if report.hidden == 1 { "s" } else { "ve" },
            if is_root() {
                ""
            } else {
                "; run as root to see them"
            }
        );
    }
    if report.left_alone > 0 {
        let _ = writeln!(
            out,
            "left alone: {} process{} whose only sockets in the ranges asked are connections (a range frees listeners and bound sockets; --with-connections takes connections too)",
            report.left_alone,
            if report.left_alone == 1 { "" } else { "es" }
        );
    }
    let reload = report.options.mode == Mode::Signal && !report.options.signal.ends_process();
    for respawn in &report.respawns {
        respawn_lines(
            &mut out,
            respawn,
            reload.then_some(report.options.signal),
            "",
        );
    }
    outcome_lines(&mut out, report, &ports);
    for unit in &report.socket_units {
        let starts = unit
            .activates
            .as_deref()
            .map(|s| format!("; it starts {}", escape_str(s)))
            .unwrap_or_else(|| "; the service it starts could not be read".to_string());
        let _ = writeln!(
            out,
            "port {ports} is the listener of socket unit {} (systemd socket activation{starts}): its holders were not signalled; stop the unit, with: {}",
            escape_str(&unit.unit),
            escape_str(&unit.stop_command())
        );
    }
    if !report.forwards.is_empty() {
        let _ = writeln!(
            out,
            "the port{} stay{} forwarded, whatever holds {} (no signal removes a rule):",
            if report.ports.len() == 1 && report.ports[0].lo == report.ports[0].hi {
                ""
            } else {
                "s"
            },
            if report.ports.len() == 1 && report.ports[0].lo == report.ports[0].hi {
                "s"
            } else {
                ""
            },
            if report.ports.len() == 1 && report.ports[0].lo == report.ports[0].hi {
                "it"
            } else {
                "them"
            },
        );
        forward_lines(&mut out, report);
    }
    if !dry {
        left_lines(&mut out, report);
    }
    out
}

/// Each rule that takes the ports, and the command that removes it: the
/// container's stop where the rule forwards to a container (its runtime
/// deletes the rule with it), else the rule's deletion.
fn forward_lines(out: &mut String, report: &KillReport) {
    for group in forwards::by_rule(&report.forwards) {
        let _ = writeln!(out, "  {}", forwards::phrase(&group, true));
        let target = crate::report::target_address(group[0])
            .and_then(|a| report.forward_targets.iter().find(|t| t.address == a));
        for line in target
            .map(forwards::target_listener_lines)
            .unwrap_or_default()
        {
            let _ = writeln!(out, "    at the target: {line}");
        }
        let container = target
            .and_then(|t| t.netns.container.as_ref())
            .and_then(|c| stop_command(c).map(|stop| (c, stop)));
        match container {
            Some((container, stop)) => {
                let _ = writeln!(
                    out,
                    "    it forwards to {}; to remove it: {} (or delete the rule: {})",
                    supervisor_name(container),
                    escape_str(&stop),
                    escape_str(&group[0].place.delete_command())
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "    to remove it: {}",
                    escape_str(&group[0].place.delete_command())
                );
            }
        }
    }
    if !report.forwards.is_empty() {
        let _ = writeln!(
            out,
            "  (a rule that Docker, kube-proxy or firewalld wrote comes back unless that tool is told: stop the container or service that published the port)"
        );
    }
}

fn ports_asked(report: &KillReport) -> String {
    report
        .ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_lines(out: &mut String, report: &KillReport, ports: &str) {
    let signal = report.options.signal.name();
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
        Outcome::WouldSignal => {
            let _ = writeln!(
                out,
                "dry run: nothing was sent; {signal} is not meant to end a process, so no KILL would follow it"
            );
        }
        Outcome::WouldNotFree => {
            for remaining in report.remaining.iter().filter(|r| r.holders.is_empty()) {
                let _ = writeln!(out, "{}", remaining_line(remaining));
            }
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
        Outcome::NotConfirmed => {
            let _ = writeln!(
                out,
                "not done: {}; nothing was sent. Confirm on a terminal, or add --yes",
                wide_reason(report)
            );
        }
        Outcome::Respawned => {
            let _ = writeln!(out, "port {ports} was taken again:");
            remaining_lines(out, &report.remaining);
        }
        Outcome::Signalled => {
            let _ = writeln!(out, "port {ports} is held after {signal}:");
            remaining_lines(out, &report.remaining);
            let _ = writeln!(
                out,
                "{signal} is not meant to end a process: lsport sends no KILL after it"
            );
        }
        Outcome::StillHeld | Outcome::TimedOut | Outcome::Interrupted => {
            let why = match report.outcome {
                Outcome::TimedOut => format!(
                    "still held after --timeout {}",
                    duration::display(report.options.timeout)
                ),
                Outcome::Interrupted => "still held (interrupted)".to_string(),
                _ => "still held".to_string(),
            };
            let _ = writeln!(out, "port {ports} is {why}:");
            remaining_lines(out, &report.remaining);
        }
        Outcome::NothingHeld | Outcome::Forwarded => {}
    }
}

/// Why a kill is wide, in words.
fn wide_reason(report: &KillReport) -> String {
    let asked: usize = report
        .ports
        .iter()
        .map(|r| usize::from(r.hi - r.lo) + 1)
        .sum();
    let receivers = report
        .targets
        .iter()
        .filter(|t| !matches!(t.fate, Fate::Refused(_) | Fate::LeftToParent(_)))
        .count();
    if asked > HANDFUL {
        format!("{asked} ports asked, more than a handful ({HANDFUL})")
    } else {
        format!("{receivers} processes to signal, more than a handful ({HANDFUL})")
    }
}

fn net_admin_hint(errno: i32) -> &'static str {
    if errno == libc::EPERM {
        " (closing sockets needs CAP_NET_ADMIN)"
    } else {
        ""
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
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

fn port_list(ports: &[u16]) -> String {
    // A Unix socket's holder has no port: `kill PATH`.
    if ports.is_empty() {
        return "the Unix socket".to_string();
    }
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn target_lines(out: &mut String, target: &Target, report: &KillReport, planned: bool) {
    let ports = port_list(&target.ports);
    let signal = report.options.signal.name();
    let sent = target
        .signals_sent
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", then ");
    let who = who(target);
    let line = match target.fate {
        Fate::WouldSignal => format!("would send {signal} to {who}, holding {ports}"),
        Fate::Refused(why) => format!("{who} holds {ports}: refused, {}", why.describe()),
        Fate::Skipped => format!("{who} holds {ports}: skipped"),
        Fate::NotPermitted => {
            format!("{who} holds {ports}: not permitted to signal it (EPERM)")
        }
        Fate::GoneBefore => format!("{who} had let go of {ports} before it was signalled"),
        Fate::LeftToParent(parent) => format!(
            "{who} holds {ports}: left to its parent pid {parent} ({signal} goes to the main process only)"
        ),
        Fate::Exited => format!("sent {sent} to {who}: exited"),
        Fate::Killed => format!(
            "sent {sent} to {who}: killed after the grace period ({})",
            duration::display(report.options.grace)
        ),
        Fate::Released => format!("sent {sent} to {who}: still running, but let go of {ports}"),
        Fate::StillHolding if target.signals_sent.is_empty() => {
            format!("{who} holds {ports}")
        }
        Fate::StillHolding => format!("sent {sent} to {who}: still running, holding {ports}"),
    };
    let _ = writeln!(out, "{line}");
    let goes_down = matches!(target.fate, Fate::WouldSignal | Fate::StillHolding);
    if planned && goes_down {
        if let Some(blast) = target
            .blast
            .as_ref()
            .and_then(|b| blast_line(b, true, report.options.signal))
        {
            let _ = writeln!(out, "{blast}");
        }
    }
    if let Some(line) = supervisor_line(target) {
        let _ = writeln!(out, "{line}");
    }
}

/// What else goes down with a process, on one indented line; None when
/// nothing does, or when its parent, signalled too, holds all it holds
/// (a worker of its master: said once, with the master).
pub fn blast_line(blast: &BlastRadius, dry: bool, signal: Signal) -> Option<String> {
    if blast.is_empty() || blast.shared_with_parent {
        return None;
    }
    let mut parts = Vec::new();
    if !blast.also_listening.is_empty() {
        parts.push(format!(
            "listens on {}",
            listening_list(&blast.also_listening)
        ));
    }
    if blast.connections > 0 {
        parts.push(format!(
            "holds {} connection{}",
            blast.connections,
            plural(blast.connections)
        ));
    }
    let they = if parts.len() > 1 || blast.also_listening.len() + blast.connections > 1 {
        "they"
    } else {
        "it"
    };
    let fate = match (signal.ends_process(), dry) {
        (true, true) => format!(": {they} would go down with it"),
        (true, false) if they == "it" => ": it goes down with it".to_string(),
        (true, false) => ": they go down with it".to_string(),
        (false, _) => format!(
            ", which {} down with it only should {} end it",
            if they == "it" { "goes" } else { "go" },
            signal.name()
        ),
    };
    Some(format!("  it also {}{fate}", parts.join(" and ")))
}

/// `tcp 7801, 8088; udp 5353`, the first few only.
fn listening_list(ports: &[(Protocol, u16)]) -> String {
    let mut groups: Vec<String> = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let of: Vec<String> = ports
            .iter()
            .filter(|(p, _)| *p == protocol)
            .take(SHOWN_PORTS)
            .map(|(_, port)| port.to_string())
            .collect();
        if !of.is_empty() {
            groups.push(format!("{} {}", protocol.name(), of.join(", ")));
        }
    }
    let hidden = ports
        .len()
        .saturating_sub(groups.iter().map(|g| g.matches(',').count() + 1).sum());
    let more = if hidden > 0 {
        format!(" and {hidden} more")
    } else {
        String::new()
    };
    format!("{}{more}", groups.join("; "))
}

/// What runs the process and how to stop that, where its cgroup says:
/// killing a service's process is undone by its supervisor, and pid 1
/// of a container is the container.
fn supervisor_line(target: &Target) -> Option<String> {
    let init = target.fate == Fate::Refused(Refusal::InitOfNamespace);
    match (&target.container, init) {
        (Some(supervisor), true) => Some(format!(
            "  it is pid 1 of {}: stop that instead{}",
            supervisor_name(supervisor),
            stop_command(supervisor)
                .map(|c| format!(", with: {}", escape_bytes(c.as_bytes())))
                .unwrap_or_default()
        )),
        (Some(supervisor), false) => Some(format!(
            "  it runs under {}, which may start it again{}",
            supervisor_name(supervisor),
            stop_command(supervisor)
                .map(|c| format!("; to stop it for good: {}", escape_bytes(c.as_bytes())))
                .unwrap_or_default()
        )),
        (None, true) if target.command == b"systemd" => Some(
            "  it is systemd, holding the listener of a socket unit: find the unit with systemctl list-sockets, and stop it with systemctl stop UNIT.socket"
                .to_string(),
        ),
        (None, true) => Some(
            "  stopping it would end every process of its pid namespace: stop its container or service with the tool that started it"
                .to_string(),
        ),
        (None, false) => None,
    }
}

fn supervisor_name(supervisor: &Container) -> String {
    match supervisor.runtime {
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
    }
}

/// The line said as `signal` goes to `target`, with what goes down
/// with it the first time.
pub fn sending_lines(target: &Target, signal: Signal, grace: std::time::Duration) -> String {
    let mut out = String::new();
    if target.signals_sent.is_empty() {
        let _ = writeln!(
            out,
            "sending {} to {}, holding {}",
            signal.name(),
            who(target),
            port_list(&target.ports)
        );
        if let Some(blast) = target
            .blast
            .as_ref()
            .and_then(|b| blast_line(b, false, signal))
        {
            let _ = writeln!(out, "{blast}");
        }
    } else {
        let _ = writeln!(
            out,
            "sending {} to {}: still holding {} after the grace period ({})",
            signal.name(),
            who(target),
            port_list(&target.ports),
            duration::display(grace)
        );
    }
    out
}

/// `--interactive`: what is about to happen to one process, and the
/// question (on stderr; the answer is read from stdin).
pub fn question(target: &Target, signal: Signal) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} holds {}", who(target), port_list(&target.ports));
    if let Some(blast) = target
        .blast
        .as_ref()
        .and_then(|b| blast_line(b, true, signal))
    {
        let _ = writeln!(out, "{blast}");
    }
    if let Some(line) = supervisor_line(target) {
        let _ = writeln!(out, "{line}");
    }
    let _ = write!(
        out,
        "lsport: send {} to pid {}? [y/N] ",
        signal.name(),
        target.pid
    );
    out
}

/// A wide kill: the plan, and the one question before it is carried out.
pub fn wide_question(report: &KillReport) -> String {
    let mut out = String::new();
    let mut receivers = 0;
    for target in &report.targets {
        target_lines(&mut out, target, report, true);
        if target.fate == Fate::StillHolding {
            receivers += 1;
        }
    }
    let _ = write!(
        out,
        "lsport: {}: send {} to {receivers} process{} holding ports in {}? [y/N] ",
        wide_reason(report),
        report.options.signal.name(),
        if receivers == 1 { "" } else { "es" },
        ports_asked(report)
    );
    out
}

/// The lines naming a newcomer: its pid and command, what it took (its
/// port, or `unix_name`, the escaped name of the Unix socket killed),
/// and what may restart it.
pub(crate) fn respawn_lines(
    out: &mut String,
    respawn: &Respawn,
    reload: Option<Signal>,
    unix_name: &str,
) {
    let label = match reload {
        Some(signal) => format!("new holder since {}", signal.name()),
        None => "respawned".to_string(),
    };
    let what = match respawn.port {
        Some(port) => format!("port {port}"),
        None => unix_name.to_string(),
    };
    let how = if respawn.inherited {
        format!("holds {what} on a socket it took over")
    } else {
        format!("took {what}")
    };
    let _ = writeln!(
        out,
        "{label}: pid {} ({}) {how}",
        respawn.pid,
        escape_bytes(&respawn.command),
    );
    match (&respawn.supervisor, &respawn.parent) {
        (Some(supervisor), _) => {
            let name = supervisor_name(supervisor);
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
        (None, Some((pid, command))) if reload.is_none() => {
            let _ = writeln!(
                out,
                "  its parent, pid {pid} ({}), may be what restarts it",
                escape_bytes(command)
            );
        }
        (None, Some((pid, command))) => {
            let _ = writeln!(out, "  its parent is pid {pid} ({})", escape_bytes(command));
        }
        (None, None) => {}
    }
}

fn remaining_lines(out: &mut String, remaining: &[RemainingSocket]) {
    for socket in remaining.iter().take(SHOWN_SOCKETS) {
        let _ = writeln!(out, "{}", remaining_line(socket));
    }
    if remaining.len() > SHOWN_SOCKETS {
        let _ = writeln!(
            out,
            "  and {} more sockets (--json lists them all)",
            remaining.len() - SHOWN_SOCKETS
        );
    }
}

fn remaining_line(remaining: &RemainingSocket) -> String {
    let socket = &remaining.socket;
    let held = if !remaining.holders.is_empty() {
        let names: Vec<String> = remaining
            .holders
            .iter()
            .map(|h| format!("pid {} ({})", h.pid, escape_bytes(&h.command)))
            .collect();
        format!("held by {}", names.join(", "))
    } else if remaining.holders_hidden {
        "its holders are hidden from this user".to_string()
    } else if socket.inode == 0 {
        "no process holds it".to_string()
    } else {
        "no process in sight holds it (the kernel's own, such as a tunnel's port; one in flight over a unix socket; or one held from outside this pid namespace): nothing can be signalled for it".to_string()
    };
    format!(
        "  {} {} {} -> {} (uid {}): {held}",
        protocol_label(socket),
        socket_state_label(socket),
        socket.local,
        socket.remote,
        socket.uid
    )
}

/// The sockets the kernel ends by itself, left on the ports.
fn left_lines(out: &mut String, report: &KillReport) {
    let ends = |left: &TimeWaitLeft, lead: &str| {
        left.last_ends_in_ms
            .map(|ms| {
                format!(
                    "{lead}{}",
                    duration::display(std::time::Duration::from_millis(u64::from(ms)))
                )
            })
            .unwrap_or_default()
    };
    let time_wait = &report.time_wait;
    if time_wait.count > 0 {
        let _ = writeln!(
            out,
            "{} TIME_WAIT socket{} remain{}: servers that set SO_REUSEADDR can bind the port now{}",
            time_wait.count,
            plural(time_wait.count),
            if time_wait.count == 1 { "s" } else { "" },
            ends(time_wait, "; the last ends in ")
        );
    }
    let orphaned = &report.orphaned;
    if orphaned.count > 0 {
        let _ = writeln!(
            out,
            "{} connection{} closed by {} program under a live peer remain{}: no process holds {}, the kernel ends {} by itself{}; servers that set SO_REUSEADDR can bind the port now",
            orphaned.count,
            plural(orphaned.count),
            if orphaned.count == 1 { "its" } else { "their" },
            if orphaned.count == 1 { "s" } else { "" },
            if orphaned.count == 1 { "it" } else { "them" },
            if orphaned.count == 1 { "it" } else { "them" },
            ends(orphaned, ", at the latest in ")
        );
    }
}

/// `lsport kill --json`.
pub fn write_json(report: &KillReport, sink: &mut dyn io::Write) -> io::Result<()> {
    write_document(&document::<()>(report, None), sink)
}

/// `lsport kill --json PATH`: the same document, its ports empty and its
/// `unix` part naming the socket.
pub(crate) fn write_unix_json<T: Serialize>(
    report: &KillReport,
    unix: T,
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    write_document(&document(report, Some(unix)), sink)
}

fn document<T: Serialize>(report: &KillReport, unix: Option<T>) -> KillDocument<'_, T> {
    let options = &report.options;
    KillDocument {
        schema_version: SCHEMA_VERSION,
        action: "kill",
        mode: match options.mode {
            Mode::Signal => "signal",
            Mode::Sockets => "sockets",
        },
        dry_run: options.dry_run,
        signal: (options.mode == Mode::Signal).then(|| options.signal.name()),
        grace_ms: duration_ms(options.grace),
        escalate: options.escalate
            && options.mode == Mode::Signal
            && options.signal.ends_process()
            && options.signal != Signal::KILL,
        timeout_ms: duration_ms(options.timeout),
        ports: report.ports.iter().map(|r| [r.lo, r.hi]).collect(),
        with_connections: options.with_connections,
        wide: report.wide,
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
                errno: a.fate.errno(),
            })
            .collect(),
        hidden_holders: report.hidden,
        left_alone: report.left_alone,
        respawns: report.respawns.iter().map(RespawnView::of).collect(),
        remaining: report
            .remaining
            .iter()
            .filter(|_| {
                !matches!(
                    report.outcome,
                    Outcome::Freed | Outcome::NothingHeld | Outcome::Forwarded
                )
            })
            .map(RemainingView::of)
            .collect(),
        time_wait: TimeWaitView::of(&report.time_wait),
        orphaned: TimeWaitView::of(&report.orphaned),
        outcome: report.outcome.id(),
        freed_after_ms: report.freed_after.map(duration_ms),
        forwards: report
            .forwards
            .iter()
            .map(|f| ForwardView::of(f, report))
            .collect(),
        socket_units: report
            .socket_units
            .iter()
            .map(|u| SocketUnitView {
                unit: u.unit.clone(),
                activates: u.activates.clone(),
                stop_command: u.stop_command(),
            })
            .collect(),
        unix,
    }
}

fn duration_ms(d: std::time::Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[derive(Serialize)]
struct KillDocument<'a, T> {
    schema_version: u32,
    action: &'static str,
    mode: &'static str,
    dry_run: bool,
    signal: Option<String>,
    grace_ms: u64,
    escalate: bool,
    timeout_ms: u64,
    ports: Vec<[u16; 2]>,
    with_connections: bool,
    wide: bool,
    targets: Vec<TargetView<'a>>,
    sockets: Vec<SocketView<'a>>,
    hidden_holders: usize,
    left_alone: usize,
    respawns: Vec<RespawnView<'a>>,
    remaining: Vec<RemainingView<'a>>,
    time_wait: TimeWaitView,
    orphaned: TimeWaitView,
    outcome: &'static str,
    freed_after_ms: Option<u64>,
    forwards: Vec<ForwardView<'a>>,
    socket_units: Vec<SocketUnitView>,
    /// The Unix socket killed (`kill PATH`); null for ports.
    unix: Option<T>,
}

/// A systemd socket unit whose listener holds a port asked.
#[derive(Serialize)]
struct SocketUnitView {
    unit: String,
    activates: Option<String>,
    stop_command: String,
}

/// A forwarding rule that takes a port asked, as kill's JSON gives it.
#[derive(Serialize)]
struct ForwardView<'a> {
    protocols: Vec<&'static str>,
    ports: Vec<[u16; 2]>,
    target: String,
    container: Option<ContainerView<'a>>,
    table: String,
    chains: Vec<String>,
    hook: &'static str,
    rule: String,
    delete_command: String,
    target_sockets: Option<TargetSocketsEntry<'a>>,
}

impl<'a> ForwardView<'a> {
    fn of(forward: &crate::forwards::Forward, report: &'a KillReport) -> ForwardView<'a> {
        let place = &forward.place;
        let container = crate::report::target_address(forward)
            .and_then(|a| report.forward_targets.iter().find(|t| t.address == a))
            .and_then(|t| t.netns.container.as_ref());
        ForwardView {
            protocols: forward.protocols.iter().map(|p| p.name()).collect(),
            ports: forward.ports.iter().map(|r| [r.lo, r.hi]).collect(),
            target: forward.target.to_string(),
            container: container.map(ContainerView::of),
            table: place.table_name(),
            chains: place.chains.clone(),
            hook: place.hook.name(),
            rule: place.rule_name(),
            delete_command: place.delete_command(),
            target_sockets: target_sockets(forward, report),
        }
    }
}

/// What listens at the forward's target, as the probe's JSON gives it.
/// Each port asked has its own verdict, and so its own entry for the
/// target's namespace: the one that looked at this forward's ports
/// answers.
fn target_sockets<'a>(
    forward: &crate::forwards::Forward,
    report: &'a KillReport,
) -> Option<TargetSocketsEntry<'a>> {
    let address = crate::report::target_address(forward)?;
    report
        .forward_targets
        .iter()
        .filter(|t| t.address == address)
        .find_map(|t| {
            let listeners = report
                .ports
                .iter()
                .find_map(|asked| t.listener_for(forward, *asked))?;
            Some(TargetSocketsEntry::of(listeners, &t.netns))
        })
}

/// Sockets the kernel ends by itself, left on the ports: TIME_WAIT, or
/// orphaned connections.
#[derive(Serialize)]
pub(crate) struct TimeWaitView {
    pub(crate) count: usize,
    pub(crate) last_ends_in_ms: Option<u32>,
}

impl TimeWaitView {
    fn of(left: &TimeWaitLeft) -> TimeWaitView {
        TimeWaitView {
            count: left.count,
            last_ends_in_ms: left.last_ends_in_ms,
        }
    }
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
    stop_command: Option<String>,
    parent_pid: Option<u32>,
    parent_command: Option<Cow<'a, str>>,
    ports: &'a [u16],
    blast_radius: Option<BlastView>,
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
            stop_command: target.container.as_ref().and_then(stop_command),
            parent_pid: target.parent.as_ref().map(|(pid, _)| *pid),
            parent_command: target
                .parent
                .as_ref()
                .map(|(_, c)| String::from_utf8_lossy(c)),
            ports: &target.ports,
            blast_radius: target.blast.as_ref().map(BlastView::of),
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
struct BlastView {
    also_listening: Vec<ListeningView>,
    connections: usize,
    shared_with_parent: bool,
}

#[derive(Serialize)]
struct ListeningView {
    protocol: &'static str,
    port: u16,
}

impl BlastView {
    fn of(blast: &BlastRadius) -> BlastView {
        BlastView {
            also_listening: blast
                .also_listening
                .iter()
                .map(|(protocol, port)| ListeningView {
                    protocol: protocol.name(),
                    port: *port,
                })
                .collect(),
            connections: blast.connections,
            shared_with_parent: blast.shared_with_parent,
        }
    }
}

#[derive(Serialize)]
struct SocketView<'a> {
    protocol: &'static str,
    state: Cow<'static, str>,
    role: &'static str,
    local: EndpointView,
    remote: EndpointView,
    pids: &'a [u32],
    result: &'static str,
    errno: Option<i32>,
}

#[derive(Serialize)]
struct RemainingView<'a> {
    protocol: &'static str,
    state: Cow<'static, str>,
    local: EndpointView,
    remote: EndpointView,
    uid: u32,
    inode: u64,
    holders: Vec<HolderView<'a>>,
    holders_hidden: bool,
}

#[derive(Serialize)]
struct HolderView<'a> {
    pid: u32,
    command: Cow<'a, str>,
}

impl<'a> RemainingView<'a> {
    fn of(remaining: &'a RemainingSocket) -> RemainingView<'a> {
        let socket = &remaining.socket;
        RemainingView {
            protocol: socket.protocol.name(),
            state: socket.state.kernel_name(),
            local: EndpointView::of(&socket.local),
            remote: EndpointView::of(&socket.remote),
            uid: socket.uid,
            inode: socket.inode,
            holders: remaining
                .holders
                .iter()
                .map(|h| HolderView {
                    pid: h.pid,
                    command: String::from_utf8_lossy(&h.command),
                })
                .collect(),
            holders_hidden: remaining.holders_hidden,
        }
    }
}

#[derive(Serialize)]
struct RespawnView<'a> {
    pid: u32,
    command: Cow<'a, str>,
    port: Option<u16>,
    inherited: bool,
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
            inherited: respawn.inherited,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blast_radius_reads_as_one_line() {
        let blast = BlastRadius {
            also_listening: vec![
                (Protocol::Tcp, 7801),
                (Protocol::Tcp, 8088),
                (Protocol::Udp, 5353),
            ],
            connections: 1,
            shared_with_parent: false,
        };
        assert_eq!(
            blast_line(&blast, false, Signal::TERM).unwrap(),
            "  it also listens on tcp 7801, 8088; udp 5353 and holds 1 connection: they go down with it"
        );
        let one = BlastRadius {
            connections: 1,
            ..BlastRadius::default()
        };
        assert_eq!(
            blast_line(&one, true, Signal::TERM).unwrap(),
            "  it also holds 1 connection: it would go down with it"
        );
        assert_eq!(
            blast_line(&one, false, Signal::TERM).unwrap(),
            "  it also holds 1 connection: it goes down with it"
        );
        assert_eq!(
            blast_line(&one, false, Signal(libc::SIGHUP)).unwrap(),
            "  it also holds 1 connection, which goes down with it only should HUP end it"
        );
        let worker = BlastRadius {
            shared_with_parent: true,
            ..blast
        };
        assert_eq!(blast_line(&worker, true, Signal::TERM), None);
        assert_eq!(
            blast_line(&BlastRadius::default(), true, Signal::TERM),
            None
        );
        let many: Vec<(Protocol, u16)> = (1..=20).map(|p| (Protocol::Tcp, p)).collect();
        assert!(listening_list(&many).ends_with("12 and 8 more"));
    }
}
