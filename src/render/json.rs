//! The `--json` document. Its shape is documented in the README and is
//! stable: fields may be added, never renamed or removed, without a new
//! `schema_version`.

use std::collections::HashMap;
use std::fmt::Write;
use std::io;

use crate::container::Container;
use crate::netns::NetnsLabel;
use crate::ports::PortRange;
use crate::report::{Holder, PortVerdict, Report, Row};
use crate::services::{Service, Services};

pub const SCHEMA_VERSION: u32 = 1;

/// One document for the namespaces probed (one, unless --netns or
/// --all-netns says otherwise). The top-level `netns` is the first
/// namespace's; `namespaces` lists them all; every port verdict and
/// socket names its own.
///
/// The document is written to `sink` as it is built, a chunk at a time:
/// `-a` on a busy host makes hundreds of megabytes, which need not sit in
/// memory.
pub fn write(reports: &[Report], sink: &mut impl io::Write) -> io::Result<()> {
    let mut out = String::with_capacity(2 * CHUNK);
    let Some(first) = reports.first() else {
        return sink.write_all(b"{}\n");
    };
    out.push('{');
    let _ = write!(
        out,
        "\"schema_version\":{SCHEMA_VERSION},\"source\":\"{}\",\"iana_registry_updated\":\"{}\",\"blind_spots\":[",
        first.source.name(),
        Services::iana_updated()
    );
    for (i, spot) in first.blind_spots.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\"", spot.id());
    }
    out.push_str("],\"netns\":");
    namespace_with_policy(&mut out, first);
    out.push_str(",\"namespaces\":[");
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        namespace_with_policy(&mut out, report);
    }
    out.push_str("],\"ports\":[");
    let mut first_port = true;
    for report in reports {
        for verdict in &report.ports {
            port_entries(&mut out, verdict, &report.netns, &mut first_port);
        }
    }
    out.push_str("],\"sockets\":[");
    let mut first_socket = true;
    for report in reports {
        let mut processes = ProcessFields::default();
        for row in &report.rows {
            if !std::mem::take(&mut first_socket) {
                out.push(',');
            }
            socket(&mut out, row, &report.netns, &mut processes);
            if out.len() >= CHUNK {
                sink.write_all(out.as_bytes())?;
                out.clear();
            }
        }
    }
    let hidden: usize = reports.iter().map(|r| r.hidden_sockets).sum();
    let _ = write!(out, "],\"hidden_holders\":{hidden}}}");
    out.push('\n');
    sink.write_all(out.as_bytes())
}

/// Flush to the writer past this many bytes.
const CHUNK: usize = 64 * 1024;

/// A namespace's label and its port policy.
fn namespace_with_policy(out: &mut String, report: &Report) {
    netns_fields(out, &report.netns);
    let policy = &report.policy;
    let range = policy.ephemeral.value;
    let _ = write!(out, ",\"ephemeral_range\":[{},{}]", range.lo, range.hi);
    let _ = write!(
        out,
        ",\"ephemeral_range_assumed\":{}",
        policy.ephemeral.assumed
    );
    out.push_str(",\"reserved_ports\":");
    ranges(out, &policy.reserved.value);
    let _ = write!(
        out,
        ",\"unprivileged_port_start\":{}}}",
        policy.unprivileged_start.value
    );
}

/// `{"inode":..,"name":..,"container":..}`, left open for more fields.
fn netns_fields(out: &mut String, netns: &NetnsLabel) {
    out.push_str("{\"inode\":");
    match netns.inode {
        Some(inode) => {
            let _ = write!(out, "{inode}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"name\":");
    optional_string(out, netns.name.as_ref());
    out.push_str(",\"container\":");
    container(out, netns.container.as_ref());
}

fn netns_object(out: &mut String, netns: &NetnsLabel) {
    netns_fields(out, netns);
    out.push('}');
}

fn container(out: &mut String, container: Option<&Container>) {
    let Some(c) = container else {
        out.push_str("null");
        return;
    };
    let _ = write!(out, "{{\"runtime\":\"{}\",\"id\":", c.runtime);
    string(out, &c.id);
    out.push_str(",\"name\":");
    optional_string(out, c.name.as_ref());
    out.push_str(",\"pod_uid\":");
    optional_string(out, c.pod_uid.as_ref());
    out.push('}');
}

/// `lsport suggest --json`.
pub fn suggestions(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
    format!(
        "{{\"schema_version\":{SCHEMA_VERSION},\"ports\":[{}]}}\n",
        list.join(",")
    )
}

fn ranges(out: &mut String, list: &[PortRange]) {
    out.push('[');
    for (i, r) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[{},{}]", r.lo, r.hi);
    }
    out.push(']');
}

/// One entry per port the verdict speaks for: the port asked, or each
/// port of an asked range that is in use.
fn port_entries(out: &mut String, verdict: &PortVerdict, netns: &NetnsLabel, first: &mut bool) {
    for facts in &verdict.facts {
        if !std::mem::take(first) {
            out.push(',');
        }
        let in_use = verdict.in_use_ports.contains(&facts.port);
        let _ = write!(
            out,
            "{{\"port\":{},\"iana_range\":\"{}\",\"ephemeral\":{},\"reserved\":{},\"privileged\":{},\"in_use\":{},\"services\":[",
            facts.port,
            facts.iana_range.name(),
            facts.ephemeral,
            facts.reserved,
            facts.privileged,
            in_use
        );
        let mut first_service = true;
        for service in &facts.services {
            service_entries(out, service, &mut first_service);
        }
        out.push_str("],\"netns\":");
        netns_object(out, netns);
        out.push('}');
    }
}

/// One entry per protocol of a registration, as a JSON consumer filters
/// by protocol: ssh on tcp and udp gives two.
fn service_entries(out: &mut String, service: &Service, first: &mut bool) {
    for protocol in service.protocols.names() {
        if !std::mem::take(first) {
            out.push(',');
        }
        out.push_str("{\"name\":");
        optional_string(out, Some(&service.name).filter(|n| !n.is_empty()));
        let _ = write!(out, ",\"protocol\":\"{protocol}\",\"description\":");
        optional_string(out, service.description.as_ref());
        let _ = write!(
            out,
            ",\"ports\":[{},{}],\"source\":\"{}\"}}",
            service.ports.lo,
            service.ports.hi,
            service.source.name()
        );
    }
}

fn optional_string(out: &mut String, text: Option<&String>) {
    match text {
        Some(text) => string(out, text),
        None => out.push_str("null"),
    }
}

fn socket(out: &mut String, row: &Row, netns: &NetnsLabel, processes: &mut ProcessFields) {
    let s = &row.socket;
    let _ = write!(
        out,
        "{{\"protocol\":\"{}\",\"family\":\"{}\",\"state\":\"{}\",\"role\":\"{}\",",
        s.protocol.name(),
        s.family.name(),
        s.state.kernel_name(),
        row.role.name()
    );
    let _ = write!(
        out,
        "\"local\":{{\"address\":\"{}\",\"port\":{}}},\"remote\":{{\"address\":\"{}\",\"port\":{}}},",
        s.local.readable_address(),
        s.local.port,
        s.remote.readable_address(),
        s.remote.port
    );
    match s.v6only {
        Some(flag) => {
            let _ = write!(out, "\"v6only\":{flag},");
        }
        None => out.push_str("\"v6only\":null,"),
    }
    out.push_str("\"service\":");
    optional_string(out, row.service.as_ref());
    let _ = write!(
        out,
        ",\"uid\":{},\"inode\":{},\"risky\":{},\"holders\":[",
        s.uid, s.inode, row.risky
    );
    for (i, holder) in row.holders.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        holder_entry(out, holder, processes);
    }
    let _ = write!(
        out,
        "],\"holders_hidden\":{},\"netns\":",
        row.holders_hidden
    );
    netns_object(out, netns);
    out.push('}');
}

/// A holder's process fields (command to container) are the same for
/// every fd of the process: they are escaped once per process, not once
/// per fd (a busy server holds thousands of sockets).
#[derive(Default)]
struct ProcessFields(HashMap<u32, String>);

fn holder_entry(out: &mut String, holder: &Holder, processes: &mut ProcessFields) {
    let _ = write!(out, "{{\"pid\":{},", holder.pid);
    let fields = processes
        .0
        .entry(holder.pid)
        .or_insert_with(|| process_fields(holder));
    out.push_str(fields);
    let _ = write!(out, ",\"fd\":{}}}", holder.fd);
}

fn process_fields(holder: &Holder) -> String {
    let mut out = String::from("\"command\":");
    string(&mut out, &String::from_utf8_lossy(holder.command()));
    out.push_str(",\"cmdline\":[");
    for (i, arg) in holder.cmdline().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, &String::from_utf8_lossy(arg));
    }
    out.push_str("],\"user\":");
    match holder.user() {
        Some(name) => string(&mut out, name),
        None => out.push_str("null"),
    }
    out.push_str(",\"uid\":");
    match holder.uid() {
        Some(uid) => {
            let _ = write!(out, "{uid}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"pid_in_namespace\":");
    match holder.pid_in_namespace() {
        Some(pid) => {
            let _ = write!(out, "{pid}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"container\":");
    container(&mut out, holder.container());
    out
}

/// A JSON string: control characters are always escaped, so nothing a
/// process named itself can reach a terminal that shows the JSON.
pub fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_control_characters() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\x1b[2J\u{9b}");
        assert_eq!(out, r#""a\"b\\c\u001b[2J\u009b""#);
    }
}
