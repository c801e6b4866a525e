//! `lsport ephemeral` as text, JSON and Prometheus metrics.

use std::fmt::Write;

use crate::commands::ephemeral::{Analysis, Destination, EphemeralReport, StateCounts};
use crate::ports::KernelPortPolicy;
use crate::render::escape::escape_bytes;
use crate::report::reserved_ports_with;
use crate::socket::PortRange;

/// Where `lsport ephemeral` suggests the persistent fix goes.
pub const SYSCTL_D_FILE: &str = "/etc/sysctl.d/90-lsport-reserved-ports.conf";

/// The ports to reserve so that no risky listener and no planned range
/// can lose a port to an outgoing connection, merged with what is
/// reserved already. None when nothing needs reserving.
pub fn reserved_fix(analysis: &Analysis, policy: &KernelPortPolicy) -> Option<String> {
    let mut ports: Vec<u16> = analysis.risky.iter().map(|r| r.socket.local.port).collect();
    ports.extend(analysis.forwarded.iter().flat_map(|r| r.lo..=r.hi));
    for overlap in &analysis.overlaps {
        if let (Some(range), true) = (overlap.overlap, overlap.unreserved > 0) {
            ports.extend(range.lo..=range.hi);
        }
    }
    if ports.is_empty() {
        return None;
    }
    Some(reserved_ports_with(policy, &ports))
}

fn range_text(range: PortRange) -> String {
    format!("{}-{}", range.lo, range.hi)
}

/// The report for people: one section per namespace.
pub fn text(report: &EphemeralReport, top: usize) -> String {
    let sections: Vec<String> = report
        .namespaces
        .iter()
        .map(|n| section(&n.analysis, &n.policy, n.netns.inode, top, &n.problems))
        .collect();
    sections.join("\n")
}

fn section(
    analysis: &Analysis,
    policy: &KernelPortPolicy,
    netns: Option<u64>,
    top: usize,
    problems: &[String],
) -> String {
    let mut out = String::new();
    let a = analysis;
    let netns = netns.map_or_else(|| "(unknown)".to_string(), |i| format!("net:[{i}]"));
    let assumed = if a.range_assumed {
        " (assumed: the kernel default)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "Ephemeral range {}{assumed} in network namespace {netns}: {} ports, {} reserved, {} held by listeners or bound-only sockets; {} usable by connect().",
        range_text(a.range),
        a.size,
        a.reserved_in_range,
        a.hard_bound_ports.len(),
        a.usable
    );
    if a.same_parity {
        let _ = writeln!(
            out,
            "warning: both ends of the range are {}: the kernel prefers even ports for connect() and odd ones for bind(0), and warns when the ends share a parity. For example: sysctl -w net.ipv4.ip_local_port_range=\"{} {}\"",
            if a.range.lo % 2 == 0 { "even" } else { "odd" },
            a.range.lo,
            a.range.hi.saturating_sub(1)
        );
    }
    let _ = writeln!(
        out,
        "Outgoing TCP connections on ports of the range: {} (established {}, closing {}, time-wait {}).",
        a.in_use.total(),
        a.in_use.established,
        a.in_use.closing,
        a.in_use.time_wait
    );
    if !a.destinations.is_empty() {
        out.push('\n');
        destinations_table(&mut out, &a.destinations[..a.destinations.len().min(top)]);
        if a.destinations.len() > top {
            let _ = writeln!(
                out,
                "... and {} more destinations",
                a.destinations.len() - top
            );
        }
    }
    if !a.forwarded.is_empty() {
        let ranges: Vec<String> = a.forwarded.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "\nPorts that forwarding rules take inside the range and not reserved ({}): {}. An outgoing connection may take one while nothing listens behind the rule.",
            a.forwarded_ports(),
            ranges.join(", ")
        );
    }
    if !a.risky.is_empty() {
        let _ = writeln!(
            out,
            "\nListening or bound-only sockets inside the range and not reserved ({}): an outgoing connection may take their port while the service is down, and its restart then fails with \"address already in use\".",
            a.risky.len()
        );
        for row in &a.risky {
            let holders: Vec<String> = row
                .holders
                .iter()
                .map(|h| format!("{} (pid {})", escape_bytes(h.command()), h.pid))
                .collect();
            let holders = if holders.is_empty() {
                if row.holders_hidden {
                    "holder hidden".to_string()
                } else {
                    "no holder".to_string()
                }
            } else {
                holders.join(", ")
            };
            let _ = writeln!(
                out,
                "  {} {} {}: {holders}",
                row.socket.protocol.name(),
                row.role.name(),
                row.socket.local
            );
        }
    }
    for overlap in &a.overlaps {
        match overlap.overlap {
            None => {
                let _ = writeln!(
                    out,
                    "\nPlanned range {}: no overlap with the ephemeral range.",
                    range_text(overlap.planned)
                );
            }
            Some(range) => {
                let _ = writeln!(
                    out,
                    "\nPlanned range {}: {} lies inside the ephemeral range; {} of those ports are not reserved, and outgoing connections may take them.",
                    range_text(overlap.planned),
                    range_text(range),
                    overlap.unreserved
                );
            }
        }
    }
    if let Some(ports) = reserved_fix(a, policy) {
        let _ = writeln!(
            out,
            "\nFix now:      sysctl -w net.ipv4.ip_local_reserved_ports={ports}"
        );
        let _ = writeln!(
            out,
            "Fix for good: echo 'net.ipv4.ip_local_reserved_ports = {ports}' > {SYSCTL_D_FILE}"
        );
    }
    out.push('\n');
    if problems.is_empty() {
        out.push_str("Status: healthy.\n");
    } else {
        let _ = writeln!(
            out,
            "Status: {} problem{}:",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for problem in problems {
            let _ = writeln!(out, "  - {problem}");
        }
    }
    out
}

fn destinations_table(out: &mut String, destinations: &[Destination]) {
    let rows: Vec<[String; 5]> = destinations
        .iter()
        .map(|d| {
            [
                d.remote.to_string(),
                d.in_use.established.to_string(),
                d.in_use.closing.to_string(),
                d.in_use.time_wait.to_string(),
                format!("{} ({:.1}%)", d.headroom, d.headroom_percent),
            ]
        })
        .collect();
    let headers = [
        "DESTINATION",
        "ESTABLISHED",
        "CLOSING",
        "TIME_WAIT",
        "HEADROOM",
    ];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.extend(std::iter::repeat_n(' ', widths[i] - cell.len() + 2));
            }
        }
        text
    };
    let _ = writeln!(out, "{}", line(headers));
    for row in &rows {
        let _ = writeln!(
            out,
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4]])
        );
    }
}

/// The Prometheus text exposition format, for node_exporter's textfile
/// collector. Every series carries the namespace inode as `netns`.
pub fn prometheus(report: &EphemeralReport, top: usize) -> String {
    let per_namespace: Vec<(String, Vec<MetricFamily>)> = report
        .namespaces
        .iter()
        .map(|n| {
            let netns = n.netns.inode.map_or_else(String::new, |i| i.to_string());
            (netns, families(&n.analysis, top, &n.problems))
        })
        .collect();
    let mut out = String::new();
    let Some((_, first)) = per_namespace.first() else {
        return out;
    };
    // Each family once, with the samples of every namespace under it.
    for (index, (name, help, _)) in first.iter().enumerate() {
        let _ = writeln!(out, "# HELP lsport_{name} {help}");
        let _ = writeln!(out, "# TYPE lsport_{name} gauge");
        for (netns, families) in &per_namespace {
            for (labels, value) in &families[index].2 {
                let _ = writeln!(out, "lsport_{name}{{netns=\"{netns}\"{labels}}} {value}");
            }
        }
    }
    out
}

/// A metric family: name (after `lsport_`), help, and samples as
/// (extra labels, value).
type MetricFamily = (&'static str, &'static str, Vec<(String, f64)>);

fn families(analysis: &Analysis, top: usize, problems: &[String]) -> Vec<MetricFamily> {
    let a = analysis;
    let mut out: Vec<MetricFamily> = Vec::new();
    let mut metric = |name: &'static str, help: &'static str, samples: &[(String, f64)]| {
        out.push((name, help, samples.to_vec()));
    };
    let plain = |value: f64| vec![(String::new(), value)];
    metric(
        "ephemeral_range_start",
        "First port of ip_local_port_range.",
        &plain(f64::from(a.range.lo)),
    );
    metric(
        "ephemeral_range_end",
        "Last port of ip_local_port_range.",
        &plain(f64::from(a.range.hi)),
    );
    metric(
        "ephemeral_range_ports",
        "Ports in the ephemeral range.",
        &plain(f64::from(a.size)),
    );
    metric(
        "ephemeral_reserved_ports",
        "Ports of the ephemeral range in ip_local_reserved_ports.",
        &plain(f64::from(a.reserved_in_range)),
    );
    metric(
        "ephemeral_hard_bound_ports",
        "Ports of the ephemeral range held by TCP listeners or bound-only sockets.",
        &plain(a.hard_bound_ports.len() as f64),
    );
    metric(
        "ephemeral_usable_ports",
        "Ports of the ephemeral range that connect() may use.",
        &plain(f64::from(a.usable)),
    );
    metric(
        "ephemeral_range_same_parity",
        "1 when both ends of the range have the same parity (the kernel warns).",
        &plain(if a.same_parity { 1.0 } else { 0.0 }),
    );
    let states = |c: &StateCounts, extra: &str| {
        vec![
            (
                format!("{extra},state=\"established\""),
                f64::from(c.established),
            ),
            (format!("{extra},state=\"closing\""), f64::from(c.closing)),
            (
                format!("{extra},state=\"time_wait\""),
                f64::from(c.time_wait),
            ),
        ]
    };
    metric(
        "ephemeral_ports_in_use",
        "Outgoing TCP sockets on ports of the ephemeral range, by state.",
        &states(&a.in_use, ""),
    );
    let shown = &a.destinations[..a.destinations.len().min(top)];
    let mut per_destination = Vec::new();
    let mut headroom = Vec::new();
    let mut ratio = Vec::new();
    for d in shown {
        let label = format!(",destination=\"{}\"", label_value(&d.remote.to_string()));
        per_destination.extend(states(&d.in_use, &label));
        headroom.push((label.clone(), f64::from(d.headroom)));
        ratio.push((label, d.headroom_percent / 100.0));
    }
    metric(
        "ephemeral_destination_ports_in_use",
        "Local ports of the ephemeral range in use toward one destination (busiest first), by state.",
        &per_destination,
    );
    metric(
        "ephemeral_destination_headroom_ports",
        "Local ports left for new connections to one destination.",
        &headroom,
    );
    metric(
        "ephemeral_destination_headroom_ratio",
        "Share of usable ports left for new connections to one destination.",
        &ratio,
    );
    metric(
        "ephemeral_risky_listeners",
        "Listening or bound-only sockets inside the ephemeral range and not reserved.",
        &plain(a.risky.len() as f64),
    );
    let overlaps: Vec<(String, f64)> = a
        .overlaps
        .iter()
        .map(|o| {
            (
                format!(",planned=\"{}\"", range_text(o.planned)),
                f64::from(o.unreserved),
            )
        })
        .collect();
    metric(
        "ephemeral_planned_range_unreserved_overlap_ports",
        "Ports of a planned range (--check-range) inside the ephemeral range and not reserved.",
        &overlaps,
    );
    metric(
        "ephemeral_problems",
        "Problems found (0 when healthy).",
        &plain(problems.len() as f64),
    );
    out
}

/// Escapes a label value as the exposition format requires.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
