//! `lsport wait`'s answer: one line per port as it meets the condition,
//! naming its holder, a line per port still waited for at the timeout,
//! and the JSON document (doc/schema/wait.schema.json).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::commands::wait::{Condition, HolderName, PortWait, WaitReport};
use crate::duration;
use crate::render::escape::escape_bytes;
use crate::render::json::{SCHEMA_VERSION, write_document};
use crate::render::kill::TimeWaitView;

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
    if matches!(condition, Condition::Free { strict: false }) && wait.time_wait.count > 0 {
        let _ = write!(
            line,
            "; {} TIME_WAIT socket{} left, which only a bind() without SO_REUSEADDR minds",
            wait.time_wait.count,
            if wait.time_wait.count == 1 { "" } else { "s" }
        );
    }
    line
}

/// The lines for the ports still waited for when the timeout passed.
pub fn timeout_lines(report: &WaitReport) -> Vec<String> {
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
            } else if w.time_wait.count > 0 {
                format!(
                    " by {} TIME_WAIT socket{}",
                    w.time_wait.count,
                    if w.time_wait.count == 1 { "" } else { "s" }
                )
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
    let document = WaitDocument {
        schema_version: SCHEMA_VERSION,
        action: "wait",
        condition: match report.condition {
            Condition::Listening => "listening",
            Condition::Free { .. } => "free",
        },
        strict: matches!(report.condition, Condition::Free { strict: true }),
        any,
        ports: report.ports.iter().map(PortView::of).collect(),
        outcome: if report.timed_out { "timed_out" } else { "met" },
        elapsed_ms: report.elapsed.as_millis() as u64,
    };
    write_document(&document, sink)
}

#[derive(Serialize)]
struct WaitDocument<'a> {
    schema_version: u32,
    action: &'static str,
    condition: &'static str,
    strict: bool,
    any: bool,
    ports: Vec<PortView<'a>>,
    outcome: &'static str,
    elapsed_ms: u64,
}

#[derive(Serialize)]
struct PortView<'a> {
    port: u16,
    met: bool,
    met_after_ms: Option<u64>,
    holders: Vec<HolderView<'a>>,
    hidden_holders: usize,
    time_wait: TimeWaitView,
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
            time_wait: TimeWaitView {
                count: wait.time_wait.count,
                last_ends_in_ms: wait.time_wait.last_ends_in_ms,
            },
        }
    }
}

#[derive(Serialize)]
struct HolderView<'a> {
    pid: u32,
    command: Cow<'a, str>,
    user: Option<&'a str>,
    uid: Option<u32>,
}
