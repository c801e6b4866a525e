//! `lsport wait`'s answer: one line per port as it meets the condition,
//! naming its holder and what the kernel still ends by itself, a note
//! when a port listens over a protocol not asked for, a line per port
//! still waited for at the timeout, and the JSON document
//! (doc/schema/wait.schema.json).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::commands::wait::{Condition, HolderName, LeftBehind, PortWait, WaitReport};
use crate::duration;
use crate::render::escape::escape_bytes;
use crate::render::json::{SCHEMA_VERSION, write_document};
use crate::socket::Protocol;

/// The line said when `wait` meets the condition on a port.
pub fn met_line(condition: &Condition, wait: &PortWait) -> String {
    let after = wait
        .met_after
        .map(|d| format!(" after {}", duration::display(d)))
        .unwrap_or_default();
    let mut line = match condition {
        Condition::Listening => {
            let by = if wait.holders.is_empty() && wait.hidden > 0 {
                " (holder hidden from this user)".to_string()
            } else if wait.holders.is_empty() {
                String::new()
            } else {
                format!(" by {}", names(&wait.holders))
            };
            format!("port {} is listening{by}{after}", wait.port)
        }
        Condition::Free { .. } => {
            let was = if wait.holders.is_empty() {
                String::new()
            } else {
                format!(" (was held by {})", names(&wait.holders))
            };
            format!("port {} is free{after}{was}", wait.port)
        }
    };
    if let (Condition::Free { strict: false }, Some((left, when))) = (condition, left_behind(wait))
    {
        let _ = write!(
            line,
            "; {left} left, which only a bind() without SO_REUSEADDR minds{when}"
        );
    }
    line
}

/// What is left on the port that the kernel ends by itself, counted
/// ("2 TIME_WAIT sockets and 1 orphaned connection"), and when the last
/// goes where the kernel says (" (the kernel ends them within 57 s)",
/// else empty). None when nothing is.
fn left_behind(wait: &PortWait) -> Option<(String, String)> {
    let kinds = [
        (&wait.time_wait, "TIME_WAIT socket"),
        (&wait.orphaned, "orphaned connection"),
    ];
    let present: Vec<&(&LeftBehind, &str)> = kinds.iter().filter(|(l, _)| l.count > 0).collect();
    if present.is_empty() {
        return None;
    }
    let counted: Vec<String> = present
        .iter()
        .map(|(left, what)| format!("{} {what}{}", left.count, plural(left.count)))
        .collect();
    let total: usize = present.iter().map(|(left, _)| left.count).sum();
    let ends: Option<Vec<u32>> = present.iter().map(|(l, _)| l.last_ends_in_ms).collect();
    let when = ends
        .and_then(|e| e.into_iter().max())
        .map(|ms| {
            format!(
                " (the kernel ends {} within {} s)",
                if total == 1 { "it" } else { "them" },
                ms.div_ceil(1000)
            )
        })
        .unwrap_or_default();
    Some((counted.join(" and "), when))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The note said when a wait for a listener starts on a port that
/// listens over a protocol not asked for.
pub fn other_protocols_line(port: u16, protocols: &[Protocol], asked: &[Protocol]) -> String {
    let names = |list: &[Protocol]| {
        list.iter()
            .map(|p| p.name().to_uppercase())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let flags: Vec<&str> = protocols
        .iter()
        .map(|p| match p {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp",
        })
        .collect();
    format!(
        "port {port} has a {} listener, which lsport wait counts only with {}; waiting for a {} listener",
        names(protocols),
        flags.join(" "),
        names(asked)
    )
}

/// The lines for the ports still waited for when the timeout passed;
/// none when the wait ended met (with `--any`, other ports may be unmet).
pub fn timeout_lines(report: &WaitReport) -> Vec<String> {
    if !report.timed_out {
        return Vec::new();
    }
    let what = match report.condition {
        Condition::Listening => "nothing listens on",
        Condition::Free { .. } => "still held:",
    };
    report
        .ports
        .iter()
        .filter(|w| w.met_after.is_none())
        .map(|w| {
            let by = if !w.holders.is_empty() {
                format!(" by {}", names(&w.holders))
            } else if w.hidden > 0 {
                " by a holder hidden from this user".to_string()
            } else if let Some((left, when)) = left_behind(w) {
                format!(" by {left}{when}")
            } else {
                String::new()
            };
            format!(
                "timed out after {}: {what} port {}{by}",
                duration::display(report.elapsed),
                w.port
            )
        })
        .collect()
}

fn names(holders: &[HolderName]) -> String {
    holders
        .iter()
        .map(|h| {
            let user = match (&h.user, h.uid) {
                (Some(name), _) => escape_bytes(name.as_bytes()),
                (None, Some(uid)) => uid.to_string(),
                (None, None) => "?".to_string(),
            };
            format!("{} (pid {}, {user})", escape_bytes(&h.command), h.pid)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `lsport wait --json`.
pub fn write_json(report: &WaitReport, any: bool, sink: &mut dyn io::Write) -> io::Result<()> {
    let document = WaitDocument::<()> {
        schema_version: SCHEMA_VERSION,
        action: "wait",
        condition: condition_id(&report.condition),
        strict: matches!(report.condition, Condition::Free { strict: true }),
        any,
        ports: report.ports.iter().map(PortView::of).collect(),
        outcome: if report.timed_out { "timed_out" } else { "met" },
        elapsed_ms: report.elapsed.as_millis() as u64,
        unix: None,
    };
    write_document(&document, sink)
}

/// `lsport wait --json PATH`: the same document, its ports empty and
/// its `unix` part on the socket.
pub(crate) fn write_unix_json<T: Serialize>(
    condition: &Condition,
    met: bool,
    elapsed: std::time::Duration,
    unix: T,
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    let document = WaitDocument {
        schema_version: SCHEMA_VERSION,
        action: "wait",
        condition: condition_id(condition),
        strict: false,
        any: false,
        ports: Vec::new(),
        outcome: if met { "met" } else { "timed_out" },
        elapsed_ms: elapsed.as_millis() as u64,
        unix: Some(unix),
    };
    write_document(&document, sink)
}

fn condition_id(condition: &Condition) -> &'static str {
    match condition {
        Condition::Listening => "listening",
        Condition::Free { .. } => "free",
    }
}

#[derive(Serialize)]
struct WaitDocument<'a, T> {
    schema_version: u32,
    action: &'static str,
    condition: &'static str,
    strict: bool,
    any: bool,
    ports: Vec<PortView<'a>>,
    outcome: &'static str,
    elapsed_ms: u64,
    /// The Unix socket waited on (`wait PATH`); null for ports.
    unix: Option<T>,
}

#[derive(Serialize)]
struct PortView<'a> {
    port: u16,
    met: bool,
    met_after_ms: Option<u64>,
    holders: Vec<HolderView<'a>>,
    hidden_holders: usize,
    time_wait: LeftView,
    orphaned: LeftView,
}

/// Sockets of one kind the kernel ends by itself.
#[derive(Serialize)]
struct LeftView {
    count: usize,
    last_ends_in_ms: Option<u32>,
}

impl LeftView {
    fn of(left: &LeftBehind) -> LeftView {
        LeftView {
            count: left.count,
            last_ends_in_ms: left.last_ends_in_ms,
        }
    }
}

impl<'a> PortView<'a> {
    fn of(wait: &'a PortWait) -> PortView<'a> {
        PortView {
            port: wait.port,
            met: wait.met_after.is_some(),
            met_after_ms: wait.met_after.map(|d| d.as_millis() as u64),
            holders: wait
                .holders
                .iter()
                .map(|h| HolderView {
                    pid: h.pid,
                    command: String::from_utf8_lossy(&h.command),
                    user: h.user.as_deref(),
                    uid: h.uid,
                })
                .collect(),
            hidden_holders: wait.hidden,
            time_wait: LeftView::of(&wait.time_wait),
            orphaned: LeftView::of(&wait.orphaned),
        }
    }
}

/// A holder as wait's JSON names it.
#[derive(Serialize)]
pub(crate) struct HolderView<'a> {
    pid: u32,
    command: Cow<'a, str>,
    user: Option<&'a str>,
    uid: Option<u32>,
}

impl<'a> HolderView<'a> {
    /// A holder of a Unix socket.
    pub(crate) fn of_holder(holder: &'a crate::report::Holder) -> HolderView<'a> {
        HolderView {
            pid: holder.pid,
            command: String::from_utf8_lossy(holder.command()),
            user: holder.user(),
            uid: holder.uid(),
        }
    }
}
