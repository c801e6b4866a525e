//! The human view: the verdict first, in plain words, then an aligned
//! table of sockets and holders.

use std::collections::HashMap;
use std::fmt::Write;
use std::io;

use crate::holders::container::Container;
use crate::holders::unseen::Unseen;
use crate::netns::NetnsLabel;
use crate::ports::{IanaRange, KernelPortPolicy, PortFacts, SettingsSource};
use crate::query::View;
use crate::render::columns::{CellSource, Column, ColumnId, protocol_label};
use crate::render::escape::{escape_bytes, escape_str};
use crate::render::unseen::{hidden_phrase, owner_words};
use crate::render::{forwards, ordered};
use crate::report::{
    Holder, NamespaceReport, PortVerdict, Report, Row, RulesCoverage, reserved_ports_with,
};
use crate::socket::{Protocol, State};
use crate::source::BlindSpot;

/// How the table is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Start each namespace with a line that names it.
    pub label_namespaces: bool,
    /// Colour the verdicts (for a terminal).
    pub color: bool,
    /// The table's columns, in order.
    pub columns: Vec<ColumnId>,
    /// Cut each table line to this many characters (a terminal's width,
    /// as `ps` does); None for whole lines.
    pub width: Option<usize>,
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }
    fn red(&self, text: &str) -> String {
        self.wrap("1;31", text)
    }
    fn green(&self, text: &str) -> String {
        self.wrap("1;32", text)
    }
    fn yellow(&self, text: &str) -> String {
        self.wrap("33", text)
    }
}

/// Every namespace probed, one after the other, written to `sink`. With
/// `label_namespaces` each starts with a line that names it. With
/// several, the port view leaves out the namespaces where nothing
/// matched and says how many there were. The table is written a line at
/// a time: `-a` on a busy host has hundreds of thousands of rows.
pub fn write(report: &Report, options: &TableOptions, sink: &mut dyn io::Write) -> io::Result<()> {
    let paint = Paint { on: options.color };
    let report_unseen = &report.unseen;
    let reports = &report.namespaces;
    let several = reports.len() > 1;
    let mut shown: Vec<&NamespaceReport> = reports
        .iter()
        .filter(|r| !several || r.view != View::Ports || r.any_match())
        .collect();
    // Nothing matched anywhere: the first namespace still gives the facts.
    if shown.is_empty() {
        shown.extend(reports.first());
    }
    for (i, report) in shown.iter().enumerate() {
        let mut out = String::new();
        if options.label_namespaces {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "{}",
                paint.bold(&format!(
                    "== Network namespace {} ==",
                    netns_label(&report.netns)
                ))
            );
        }
        write_one(&mut out, report, report_unseen, options, &paint, sink)?;
    }
    let free = reports.len() - shown.len();
    if free > 0 {
        writeln!(
            sink,
            "\nNo socket matched in the {free} other network namespace{} probed.",
            plural(free)
        )?;
    }
    Ok(())
}

/// One namespace: `out` holds what comes before it, the verdict is added,
/// then the table is streamed after it.
fn write_one(
    out: &mut String,
    report: &NamespaceReport,
    unseen: &Unseen,
    options: &TableOptions,
    paint: &Paint,
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    match report.view {
        View::Ports => {
            for verdict in &report.ports {
                port_verdict(out, verdict, report, unseen, paint);
            }
        }
        View::Listening | View::All => {
            let what = if report.view == View::Listening {
                "Listening"
            } else {
                "Sockets"
            };
            // The table has a line per holder: say so when the counts differ.
            let lines: usize = report.rows.iter().map(|r| r.holders.len().max(1)).sum();
            let sockets = report.rows.len();
            let lines_note = if lines == sockets {
                String::new()
            } else {
                format!(" in {lines} lines, one per holder")
            };
            let _ = writeln!(
                out,
                "{} in network namespace {}: {sockets} socket{}{lines_note}.",
                paint.bold(what),
                netns_label(&report.netns),
                plural(sockets)
            );
        }
    }
    if !report.rows.is_empty() {
        out.push('\n');
        sink.write_all(out.as_bytes())?;
        out.clear();
        // Risky listeners are marked in every view; the port view gives
        // the fix in its facts already.
        let table = Table {
            rows: &report.rows,
            netns: &report.netns,
            columns: &options.columns,
            mark_risky: true,
            width: options.width,
        };
        table.write(paint, sink)?;
        legend(out, report, options, paint);
    }
    blind_spots(out, report, paint);
    sink.write_all(out.as_bytes())
}

/// Said whenever the source that answered cannot see everything.
fn blind_spots(out: &mut String, report: &NamespaceReport, paint: &Paint) {
    let (sctp, from_proc): (Vec<&BlindSpot>, Vec<&BlindSpot>) = report
        .blind_spots
        .iter()
        .partition(|s| **s == BlindSpot::Sctp);
    if !from_proc.is_empty() {
        let _ = writeln!(
            out,
            "\n{} read from /proc/net, not sock_diag:",
            paint.yellow("note:")
        );
        for spot in from_proc {
            let _ = writeln!(out, "  {}.", spot.describe());
        }
    }
    for spot in sctp {
        let _ = writeln!(out, "\n{} {}.", paint.yellow("note:"), spot.describe());
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `net:[INODE]`, with its name and container where known.
fn netns_label(netns: &NetnsLabel) -> String {
    let mut label = netns
        .inode
        .map_or_else(|| "(unknown)".to_string(), |i| format!("net:[{i}]"));
    let mut known = Vec::new();
    if let Some(name) = &netns.name {
        known.push(escape_str(name));
    }
    if let Some(container) = &netns.container {
        known.push(container_label(container));
    }
    if !known.is_empty() {
        let _ = write!(label, " ({})", known.join(", "));
    }
    label
}

/// `docker 0123456789ab`, `lxc web01`, `systemd nginx.service`, with the
/// Kubernetes pod where there is one.
fn container_label(container: &Container) -> String {
    let name = container
        .name
        .clone()
        .unwrap_or_else(|| container.id.chars().take(12).collect());
    let mut label = format!("{} {}", container.runtime, escape_str(&name));
    if let Some(pod) = &container.pod_uid {
        let _ = write!(label, ", pod {}", escape_str(pod));
    }
    label
}

fn protocols_label(report: &NamespaceReport) -> &'static str {
    match report.protocols.as_slice() {
        [Protocol::Tcp] => "TCP",
        [Protocol::Udp] => "UDP",
        [Protocol::Sctp] => "SCTP",
        [Protocol::Tcp, Protocol::Sctp] => "TCP or SCTP",
        [Protocol::Udp, Protocol::Sctp] => "UDP or SCTP",
        [_, _, _] => "TCP, UDP or SCTP",
        _ => "TCP or UDP",
    }
}

fn port_verdict(
    out: &mut String,
    verdict: &PortVerdict,
    report: &NamespaceReport,
    unseen: &Unseen,
    paint: &Paint,
) {
    let asked = verdict.asked;
    let single = asked.lo == asked.hi;
    let subject = if single {
        format!("Port {asked}")
    } else {
        format!("Ports {asked}")
    };
    if verdict.in_use() {
        let holders = holder_summary(report, verdict, unseen);
        let ports = if single {
            String::new()
        } else {
            let list: Vec<String> = verdict
                .in_use_ports
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                " on {} port{} ({})",
                list.len(),
                plural(list.len()),
                list.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "{} {} {}: {} socket{}{ports}, {holders}.",
            paint.bold(&subject),
            if single { "is" } else { "are" },
            paint.red("IN USE"),
            verdict.sockets,
            plural(verdict.sockets),
        );
    } else if verdict.forwarded() {
        let groups = forwards::by_rule(&verdict.forwards);
        let others = match groups.len() - 1 {
            0 => String::new(),
            1 => "; and 1 other rule".to_string(),
            n => format!("; and {n} other rules"),
        };
        let _ = writeln!(
            out,
            "{} {} {}: {}{others}; no socket holds {} here.",
            paint.bold(&subject),
            if single { "is" } else { "are" },
            paint.red("FORWARDED"),
            forwards::phrase(&groups[0], !single),
            if single { "it" } else { "them" },
        );
    } else {
        // /proc/net cannot show every socket that holds a port.
        let hedge = if report.blind_spots.contains(&BlindSpot::TcpBoundOnly) {
            " as far as /proc shows"
        } else {
            ""
        };
        // Rules not read or not decoded may forward it: never plain FREE.
        let (free, rules_caveat) = match (verdict.rules, verdict.undecoded.is_empty()) {
            (RulesCoverage::Incomplete, true) => (
                "FREE of sockets",
                "; forwarding rules were not read, so it may still be forwarded",
            ),
            (RulesCoverage::Incomplete, false) => (
                "FREE of sockets",
                "; a forwarding rule lsport could not decode may take it (below)",
            ),
            _ => ("FREE", ""),
        };
        if report.listening_only {
            // Connections were not asked for: the port may hold some.
            let _ = writeln!(
                out,
                "{} {} {}{hedge} in network namespace {}: no {} socket waits on {}; -l leaves out connections and UDP sockets whose port the kernel chose{rules_caveat}.",
                paint.bold(&subject),
                if single { "has" } else { "have" },
                paint.yellow("NO LISTENER"),
                netns_label(&report.netns),
                protocols_label(report),
                if single { "it" } else { "any of them" },
            );
        } else {
            let _ = writeln!(
                out,
                "{} {} {}{hedge} in network namespace {}: no {} socket has {} as its local port{rules_caveat}.",
                paint.bold(&subject),
                if single { "is" } else { "are" },
                paint.green(free),
                netns_label(&report.netns),
                protocols_label(report),
                if single { "it" } else { "any of them" },
            );
        }
    }
    forward_lines(out, verdict, paint);
    socket_unit_lines(out, verdict, report);
    if let (true, Some(facts)) = (single, verdict.facts.first()) {
        // A port only clients hold serves no one: no reservation "for a
        // service" is offered for it.
        let offer_reservation = !verdict.held_by_clients_only(&report.rows);
        port_facts(out, facts, &report.policy, offer_reservation, paint);
        super::services::lines(out, facts);
    } else {
        range_facts(out, verdict, &report.policy);
        super::services::range_lines(out, verdict);
    }
}

/// The forwards on the port, one line each, and the rules that may be
/// forwards but could not be decoded. Under a verdict of IN USE they say
/// where the outside traffic goes instead of to those sockets.
fn forward_lines(out: &mut String, verdict: &PortVerdict, paint: &Paint) {
    if verdict.forwarded() && verdict.in_use() {
        let groups = forwards::by_rule(&verdict.forwards);
        let _ = writeln!(
            out,
            "  {} {}: that traffic goes there, not to the sockets here.",
            paint.yellow("Also FORWARDED:"),
            forwards::phrase(&groups[0], verdict.asked.lo != verdict.asked.hi),
        );
    }
    for forward in &verdict.forwards {
        let _ = writeln!(out, "  forward: {}.", forwards::line(forward));
    }
    for target in &verdict.forward_targets {
        let _ = writeln!(
            out,
            "  target: {} is an address of network namespace {}.",
            target.address,
            netns_label(&target.netns)
        );
        for line in forwards::target_listener_lines(target) {
            let _ = writeln!(out, "  target: {line}.");
        }
    }
    for rule in &verdict.undecoded {
        let _ = writeln!(
            out,
            "  {} {}.",
            paint.yellow("not decoded:"),
            escape_str(&rule.to_string())
        );
    }
}

/// The systemd socket units whose listeners hold the port, each with
/// the service it starts and the command that stops both.
fn socket_unit_lines(out: &mut String, verdict: &PortVerdict, report: &NamespaceReport) {
    let mut seen: Vec<&str> = Vec::new();
    for row in verdict.rows.iter().map(|&i| &report.rows[i]) {
        let Some(cgroup) = row.cgroup.as_deref() else {
            continue;
        };
        let Some(unit) = cgroup.socket_unit() else {
            continue;
        };
        if seen.contains(&unit) {
            continue;
        }
        seen.push(unit);
        let (starts, stop) = match &cgroup.activates {
            Some(service) => (
                format!("it starts {}", escape_str(service)),
                format!(
                    "systemctl stop {} {}",
                    escape_str(unit),
                    escape_str(service)
                ),
            ),
            None => (
                "the service it starts could not be read".to_string(),
                format!("systemctl stop {}", escape_str(unit)),
            ),
        };
        let _ = writeln!(
            out,
            "  Socket unit {} holds it (systemd socket activation; {starts}). To free it: {stop}",
            escape_str(unit)
        );
    }
}

fn holder_summary(report: &NamespaceReport, verdict: &PortVerdict, unseen: &Unseen) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut hidden = 0;
    let mut hidden_owners: Vec<String> = Vec::new();
    let mut time_wait = 0;
    let mut unaccepted = 0;
    let mut orphaned = 0;
    // When the last orphan goes, if the kernel says for each.
    let mut orphan_ends_ms: Option<u32> = Some(0);
    let mut no_process = 0;
    for row in verdict.rows.iter().map(|&i| &report.rows[i]) {
        match (row.holders.is_empty(), row.holders_hidden, row.socket.inode) {
            (false, _, _) => {}
            (true, true, _) => {
                hidden += 1;
                let owner = owner_words(row);
                if !hidden_owners.contains(&owner) {
                    hidden_owners.push(owner);
                }
            }
            // No file refers to it: nothing to hold.
            (true, false, 0) if row.socket.state == State::TimeWait => time_wait += 1,
            (true, false, 0) if row.socket.is_orphaned() => {
                orphaned += 1;
                orphan_ends_ms = orphan_ends_ms
                    .zip(row.socket.timer_ms)
                    .map(|(a, b)| a.max(b));
            }
            (true, false, 0) => unaccepted += 1,
            (true, false, _) => no_process += 1,
        }
        let unit = row.cgroup.as_deref().and_then(|c| c.socket_unit());
        for h in &row.holders {
            let name = match (h.proxy(), unit) {
                (_, Some(unit)) => format!(
                    "{} (pid {}) for socket unit {}",
                    escape_bytes(h.command()),
                    h.pid,
                    escape_str(unit)
                ),
                (None, None) if h.pid == 1 && h.command() == b"systemd" => {
                    "systemd (pid 1, for a socket unit)".to_string()
                }
                (proxy, None) => match proxy {
                    Some(proxy) => format!(
                        "{} (pid {}, a userland proxy: {})",
                        escape_bytes(h.command()),
                        h.pid,
                        forwards::proxy_words(proxy, row.socket.local.port)
                    ),
                    None => format!("{} (pid {})", escape_bytes(h.command()), h.pid),
                },
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut parts = Vec::new();
    if !names.is_empty() {
        let shown: Vec<String> = names.iter().take(4).cloned().collect();
        let more = if names.len() > 4 {
            format!(" and {} more", names.len() - 4)
        } else {
            String::new()
        };
        parts.push(format!("held by {}{more}", shown.join(", ")));
    }
    if hidden > 0 {
        let more = if hidden_owners.len() > 4 {
            format!(" and {} more", hidden_owners.len() - 4)
        } else {
            String::new()
        };
        hidden_owners.truncate(4);
        parts.push(format!(
            "{hidden} {} ({}{more})",
            hidden_phrase(hidden, unseen),
            hidden_owners.join("; ")
        ));
    }
    if time_wait > 0 {
        parts.push(format!("{time_wait} in TIME_WAIT, which no process holds"));
    }
    if orphaned > 0 {
        let (its, them, last) = if orphaned == 1 {
            ("its", "it", "")
        } else {
            ("their", "them", ", the last")
        };
        let ends = orphan_ends_ms
            .map(|ms| format!("{last} within {} s", ms.div_ceil(1000)))
            .unwrap_or_default();
        parts.push(format!(
            "{orphaned} orphaned (closed by {its} program before the peer did; no process holds {them}, and the kernel ends {them} by itself{ends})"
        ));
    }
    if unaccepted > 0 {
        parts.push(format!(
            "{unaccepted} not yet accepted by {}listener",
            if unaccepted == 1 { "its " } else { "their " }
        ));
    }
    if no_process > 0 {
        parts.push(format!(
            "{no_process} that no process in sight has open (the kernel's own, such as a tunnel's port; in flight over a unix socket; or held from outside this pid namespace)"
        ));
    }
    parts.join("; ")
}

fn port_facts(
    out: &mut String,
    facts: &PortFacts,
    policy: &KernelPortPolicy,
    offer_reservation: bool,
    paint: &Paint,
) {
    let range = policy.ephemeral.value;
    let assumed = if policy.ephemeral.assumed {
        " (assumed: the kernel default, as ip_local_port_range could not be read)"
    } else {
        ""
    };
    let reserved_assumed = if policy.reserved.assumed {
        " (assumed: ip_local_reserved_ports could not be read)"
    } else {
        ""
    };
    let _ = writeln!(out, "  {}: a {}.", facts.port, facts.iana_range.describe());
    let ephemeral = match (facts.ephemeral, facts.reserved) {
        (true, false) => paint.yellow(&format!(
            "inside the kernel's ephemeral range {range}{assumed} and not reserved{reserved_assumed}: outgoing connections may take it"
        )),
        (true, true) => format!(
            "inside the kernel's ephemeral range {range}{assumed} but reserved (ip_local_reserved_ports): outgoing connections will not take it"
        ),
        (false, true) => format!(
            "outside the kernel's ephemeral range {range}{assumed}, and reserved: outgoing connections do not take it"
        ),
        (false, false) => format!(
            "outside the kernel's ephemeral range {range}{assumed}: outgoing connections do not take it"
        ),
    };
    let _ = writeln!(out, "  {}: {ephemeral}.", facts.port);
    if facts.ephemeral && !facts.reserved && offer_reservation {
        let _ = writeln!(
            out,
            "  To keep it for a service: sysctl -w net.ipv4.ip_local_reserved_ports={}",
            reserved_ports_with(policy, &[facts.port])
        );
    }
    let start = policy.unprivileged_start.value;
    let start = if policy.unprivileged_start.assumed {
        format!(
            "ip_unprivileged_port_start is assumed {start}, the kernel default, as it could not be read"
        )
    } else {
        format!("ip_unprivileged_port_start is {start}")
    };
    let privileged = if facts.privileged {
        format!("privileged: binding it needs root or CAP_NET_BIND_SERVICE ({start})")
    } else {
        format!("not privileged: any user may bind it ({start})")
    };
    let _ = writeln!(out, "  {}: {privileged}.", facts.port);
    settings_source(out, policy);
}

/// Where the port settings came from, when not from /proc/sys as usual.
fn settings_source(out: &mut String, policy: &KernelPortPolicy) {
    match policy.read_from {
        SettingsSource::Proc => {}
        SettingsSource::PrivateProc => {
            let _ = writeln!(
                out,
                "  (The port settings were read from a proc instance of lsport's own: the /proc here has no sys/, as when mounted subset=pid.)"
            );
        }
        SettingsSource::Nowhere => {
            let _ = writeln!(
                out,
                "  (No port setting could be read: /proc/sys is missing or unreadable, as when /proc is mounted subset=pid, and a proc instance of lsport's own takes CAP_SYS_ADMIN; the values shown are the kernel's defaults.)"
            );
        }
    }
}

fn range_facts(out: &mut String, verdict: &PortVerdict, policy: &KernelPortPolicy) {
    let asked = verdict.asked;
    let iana: Vec<&str> = [IanaRange::System, IanaRange::User, IanaRange::Dynamic]
        .into_iter()
        .filter(|r| {
            let (lo, hi) = r.bounds();
            asked.lo <= hi && lo <= asked.hi
        })
        .map(IanaRange::describe)
        .collect();
    let _ = writeln!(out, "  {asked}: {}.", iana.join(", "));
    let eph = policy.ephemeral.value;
    let eph = if policy.ephemeral.assumed {
        format!("{eph} (assumed: the kernel default, as ip_local_port_range could not be read)")
    } else {
        eph.to_string()
    };
    let eph_value = policy.ephemeral.value;
    let overlap_lo = asked.lo.max(eph_value.lo);
    let overlap_hi = asked.hi.min(eph_value.hi);
    if overlap_lo <= overlap_hi {
        let unreserved = (overlap_lo..=overlap_hi)
            .filter(|p| !policy.is_reserved(*p))
            .count();
        let reserved_assumed = if policy.reserved.assumed {
            " (assumed: ip_local_reserved_ports could not be read)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {asked}: {overlap_lo}-{overlap_hi} lies inside the kernel's ephemeral range {eph}; {unreserved} of those ports are not reserved{reserved_assumed}, and outgoing connections may take them."
        );
    } else {
        let _ = writeln!(
            out,
            "  {asked}: outside the kernel's ephemeral range {eph}."
        );
    }
    settings_source(out, policy);
}

/// The socket table: one line per holder, or one for a socket without
/// a visible holder.
struct Table<'a> {
    rows: &'a [Row],
    netns: &'a NetnsLabel,
    columns: &'a [ColumnId],
    mark_risky: bool,
    width: Option<usize>,
}

impl Table<'_> {
    /// Two passes over the rows: the first measures the columns, the
    /// second writes the lines, chunk by chunk (render/ordered.rs), so
    /// that no more than a few chunks of formatted rows are kept. Both
    /// run on several threads. The cells that depend only on a holder's
    /// process (its command line above all) are made once per process
    /// and thread.
    fn write(&self, paint: &Paint, sink: &mut dyn io::Write) -> io::Result<()> {
        let columns: Vec<&Column> = self.columns.iter().map(|id| id.column()).collect();
        let last = columns.len().saturating_sub(1);
        let widths = self.widths(&columns);
        let mut line = String::new();
        let mut chars = 0;
        for (i, column) in columns.iter().enumerate() {
            line.push_str(column.header);
            chars += column.header.len();
            if i < last {
                chars += pad(&mut line, widths[i] - column.header.len());
            }
        }
        finish_line(&mut line, chars, self.width);
        writeln!(sink, "{}", paint.bold(&line))?;
        ordered::write(
            self.rows,
            HashMap::new,
            |per_process, _, rows, buffer| {
                let mut line = String::new();
                self.each_line(rows, &columns, per_process, |source, process| {
                    line.clear();
                    let mut chars = 0;
                    for (i, column) in columns.iter().enumerate() {
                        let start = line.len();
                        let width = match process.and_then(|p| p[i].as_ref()) {
                            Some(cell) => {
                                line.push_str(&cell.text);
                                cell.width
                            }
                            None => {
                                (column.cell)(source, &mut line);
                                line[start..].chars().count()
                            }
                        };
                        chars += width;
                        if i < last {
                            chars += pad(&mut line, widths[i] - width);
                        }
                    }
                    finish_line(&mut line, chars, self.width);
                    line.push('\n');
                    buffer.extend_from_slice(line.as_bytes());
                    Ok(())
                })
            },
            sink,
        )
    }

    /// The width of each column: its header's or its widest cell's.
    fn widths(&self, columns: &[&Column]) -> Vec<usize> {
        let headers: Vec<usize> = columns.iter().map(|c| c.header.len()).collect();
        let per_thread = ordered::fold(
            self.rows,
            || (headers.clone(), HashMap::new()),
            |(widths, per_process), rows| {
                let mut scratch = String::new();
                let _ = self.each_line(rows, columns, per_process, |source, process| {
                    for (i, column) in columns.iter().enumerate() {
                        let width = match process.and_then(|p| p[i].as_ref()) {
                            Some(cell) => cell.width,
                            None => {
                                scratch.clear();
                                (column.cell)(source, &mut scratch);
                                scratch.chars().count()
                            }
                        };
                        widths[i] = widths[i].max(width);
                    }
                    Ok(())
                });
            },
        );
        per_thread
            .into_iter()
            .fold(headers, |mut all, (widths, _)| {
                for (all, width) in all.iter_mut().zip(widths) {
                    *all = (*all).max(width);
                }
                all
            })
    }

    /// Calls `line` with what the cells of each line of `rows` are made
    /// from, in turn, and the cells of the holder's process.
    /// `per_process` keeps, by pid, the cells of the columns that depend
    /// only on the holder's process (None in the other columns), made at
    /// its first line.
    fn each_line(
        &self,
        rows: &[Row],
        columns: &[&Column],
        per_process: &mut HashMap<u32, Vec<Option<Cell>>>,
        mut line: impl FnMut(&CellSource<'_>, Option<&[Option<Cell>]>) -> io::Result<()>,
    ) -> io::Result<()> {
        let no_holder = [None];
        for row in rows {
            let holders = row.holders.iter().map(Some);
            let holders: Box<dyn Iterator<Item = Option<&Holder>>> = if row.holders.is_empty() {
                Box::new(no_holder.iter().copied())
            } else {
                Box::new(holders)
            };
            for holder in holders {
                let source = CellSource {
                    row,
                    holder,
                    netns: self.netns,
                    mark_risky: self.mark_risky,
                };
                let process = holder.map(|h| {
                    per_process
                        .entry(h.pid)
                        .or_insert_with(|| {
                            columns
                                .iter()
                                .map(|c| c.id.is_per_process().then(|| Cell::of(c, &source)))
                                .collect()
                        })
                        .as_slice()
                });
                line(&source, process)?;
            }
        }
        Ok(())
    }
}

/// A cell's text and how many characters wide it is, counted once.
struct Cell {
    text: String,
    width: usize,
}

impl Cell {
    fn of(column: &Column, source: &CellSource<'_>) -> Cell {
        let mut text = String::new();
        (column.cell)(source, &mut text);
        let width = text.chars().count();
        Cell { text, width }
    }
}

/// Appends the spaces that fill a cell `short` characters short of its
/// column's width, and the two between columns; returns how many.
fn pad(line: &mut String, short: usize) -> usize {
    let spaces = short + 2;
    line.extend(std::iter::repeat_n(' ', spaces));
    spaces
}

/// Drops a line's trailing blanks (`chars` counts its characters) and,
/// with `limit`, cuts it to that many characters, its last one `…` when
/// cut.
fn finish_line(line: &mut String, chars: usize, limit: Option<usize>) {
    let trimmed = line.trim_end().len();
    let chars = chars - (line.len() - trimmed);
    line.truncate(trimmed);
    if let Some(limit) = limit.filter(|&l| l > 0 && chars > l) {
        let cut = line
            .char_indices()
            .nth(limit - 1)
            .map_or(line.len(), |(at, _)| at);
        line.truncate(cut);
        line.push('…');
    }
}

/// What the marks in the shown columns mean. The port view gives the
/// fix in its facts already.
fn legend(out: &mut String, report: &NamespaceReport, options: &TableOptions, paint: &Paint) {
    let rows = &report.rows;
    let with_fix = report.view != View::Ports;
    let shows = |id| options.columns.contains(&id);
    if shows(ColumnId::Proto)
        && rows
            .iter()
            .any(|r| protocol_label(&r.socket).ends_with("46"))
    {
        let _ = writeln!(
            out,
            "\ntcp46/udp46: an IPv6 wildcard socket that also takes IPv4 (v6only off)."
        );
    }
    if !shows(ColumnId::Role) {
        return;
    }
    let mut risky: Vec<u16> = rows
        .iter()
        .filter(|r| r.risky)
        .map(|r| r.socket.local.port)
        .collect();
    risky.sort_unstable();
    risky.dedup();
    if !risky.is_empty() {
        let policy = &report.policy;
        let range = match (policy.ephemeral.assumed, policy.reserved.assumed) {
            (false, false) => policy.ephemeral.value.to_string(),
            _ => format!(
                "{} (assumed: the port settings could not all be read)",
                policy.ephemeral.value
            ),
        };
        let _ = writeln!(
            out,
            "\n{} {} port{} inside the ephemeral range {range} and not reserved (marked !): an outgoing connection may take {} while the service is down, and its restart then fails with \"address already in use\".",
            paint.yellow("warning:"),
            risky.len(),
            plural(risky.len()),
            if risky.len() == 1 { "it" } else { "them" },
        );
        if with_fix {
            let _ = writeln!(
                out,
                "Fix: sysctl -w net.ipv4.ip_local_reserved_ports={}",
                reserved_ports_with(&report.policy, &risky)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(cells: &[&str], widths: &[usize], limit: Option<usize>) -> String {
        let mut line = String::new();
        let mut chars = 0;
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            let width = cell.chars().count();
            chars += width;
            if i + 1 < cells.len() {
                chars += pad(&mut line, widths[i] - width);
            }
        }
        finish_line(&mut line, chars, limit);
        line
    }

    #[test]
    fn cells_are_padded_to_their_column_and_the_line_ends_without_blanks() {
        assert_eq!(finished(&["tcp", "é", ""], &[5, 3, 4], None), "tcp    é");
        assert_eq!(finished(&["a", "b"], &[1, 9], None), "a  b");
    }

    #[test]
    fn a_line_past_the_limit_is_cut_at_a_character_with_an_ellipsis() {
        let line = finished(&["ééé", "xyz"], &[3, 3], Some(6));
        assert_eq!(line, "ééé  …");
        assert_eq!(line.chars().count(), 6);
        // At the limit exactly, or without one, nothing is cut.
        assert_eq!(finished(&["ééé", "x"], &[3, 1], Some(6)), "ééé  x");
        assert_eq!(finished(&["ééé", "x"], &[3, 1], Some(0)), "ééé  x");
    }
}
