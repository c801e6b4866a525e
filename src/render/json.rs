//! The `--json` document. Its shape is documented in the README and is
//! stable: fields may be added, never renamed or removed, without a new
//! `schema_version`.

use std::collections::HashMap;
use std::fmt::Write;
use std::io;

use crate::ports::PortRange;
use crate::report::{Holder, PortVerdict, Report, Row};

pub const SCHEMA_VERSION: u32 = 1;

/// Flush to the writer past this many bytes: `-a` on a busy host makes
/// a document of hundreds of megabytes, which need not sit in memory.
const CHUNK: usize = 64 * 1024;

/// Writes the document to `sink` as it is built, a chunk at a time.
pub fn write(report: &Report, sink: &mut impl io::Write) -> io::Result<()> {
    let mut out = String::with_capacity(2 * CHUNK);
    out.push('{');
    let _ = write!(
        out,
        "\"schema_version\":{SCHEMA_VERSION},\"source\":\"netlink\","
    );
    out.push_str("\"netns\":{\"inode\":");
    match report.netns_inode {
        Some(inode) => {
            let _ = write!(out, "{inode}");
        }
        None => out.push_str("null"),
    }
    let policy = &report.policy;
    let range = policy.ephemeral.value;
    let _ = write!(out, ",\"ephemeral_range\":[{},{}]", range.lo, range.hi);
    let _ = write!(
        out,
        ",\"ephemeral_range_assumed\":{}",
        policy.ephemeral.assumed
    );
    out.push_str(",\"reserved_ports\":");
    ranges(&mut out, &policy.reserved.value);
    let _ = write!(
        out,
        ",\"unprivileged_port_start\":{}}}",
        policy.unprivileged_start.value
    );

    out.push_str(",\"ports\":[");
    let mut first = true;
    for verdict in &report.ports {
        port_entries(&mut out, verdict, &mut first);
    }
    out.push_str("],\"sockets\":[");
    let mut processes = ProcessFields::default();
    for (i, row) in report.rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        socket(&mut out, row, &mut processes);
        if out.len() >= CHUNK {
            sink.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    let _ = write!(out, "],\"hidden_holders\":{}}}", report.hidden_sockets);
    out.push('\n');
    sink.write_all(out.as_bytes())
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
fn port_entries(out: &mut String, verdict: &PortVerdict, first: &mut bool) {
    for facts in &verdict.facts {
        if !std::mem::take(first) {
            out.push(',');
        }
        let in_use = verdict.in_use_ports.contains(&facts.port);
        let _ = write!(
            out,
            "{{\"port\":{},\"iana_range\":\"{}\",\"ephemeral\":{},\"reserved\":{},\"privileged\":{},\"in_use\":{}}}",
            facts.port,
            facts.iana_range.name(),
            facts.ephemeral,
            facts.reserved,
            facts.privileged,
            in_use
        );
    }
}

fn socket(out: &mut String, row: &Row, processes: &mut ProcessFields) {
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
    let _ = write!(
        out,
        "\"uid\":{},\"inode\":{},\"risky\":{},\"holders\":[",
        s.uid, s.inode, row.risky
    );
    for (i, holder) in row.holders.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        holder_entry(out, holder, processes);
    }
    let _ = write!(out, "],\"holders_hidden\":{}}}", row.holders_hidden);
}

/// A holder's process fields (command to uid) are the same for every fd
/// of the process: they are escaped once per process, not once per fd
/// (a busy server holds thousands of sockets).
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
