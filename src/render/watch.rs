//! `lsport watch` as text (one line per event, then a summary) and as
//! JSON lines (one object per event, then the summary), described by
//! doc/schema/watch.schema.json.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::commands::watch::{
    CloseSource, Event, EventKind, GROUPS_SHOWN, GroupStats, Holder, Lifetime, LostEvents,
    LostScope, Others, PacedDumps, PacedKind, ProcessKey, SocketEvent, Summary,
};
use crate::render::escape::escape_bytes;
use crate::render::json::{ContainerView, EndpointView, SCHEMA_VERSION, write_document};
use crate::socket::{Family, Socket};

/// One event as a line of text, without the newline.
pub fn line(event: &Event) -> String {
    match event {
        Event::Lost(lost) => lost_line(lost),
        Event::Paced(paced) => paced_line(paced),
        Event::Socket(event) => socket_line(event),
        Event::Started(started) => format!(
            "{} watching ({} socket{} there already)",
            local_time(started.time),
            started.sockets,
            plural(started.sockets)
        ),
    }
}

fn lost_line(lost: &LostEvents) -> String {
    let count = match lost.count {
        Some(n) => format!("{n} close notification{}", plural(n as usize)),
        None => "close notifications".to_string(),
    };
    format!(
        "{} lost     {count} {} dropped by the kernel (lsport read too slowly); resynchronising with a dump",
        local_time(lost.time),
        scope_text(lost.scope)
    )
}

fn paced_line(paced: &PacedDumps) -> String {
    let change = &paced.change;
    let (what, found) = match paced.kind {
        PacedKind::Connections => ("a dump of the connection table", "connections are"),
        PacedKind::BoundOnly => (
            "looking for bound-only sockets (a walk of every bound socket)",
            "bound-only sockets are",
        ),
    };
    let time = local_time(paced.time);
    if change.period > change.every {
        let closes = match paced.kind {
            PacedKind::Connections => "; closes are still reported as they happen",
            PacedKind::BoundOnly => "",
        };
        format!(
            "{time} slower   {what} takes {} here: {found} looked for every {} instead of every {}, to keep these dumps within {:.0}% of the time{closes}",
            duration_text(change.cost),
            duration_text(change.period),
            duration_text(change.every),
            paced.share * 100.0,
        )
    } else {
        format!(
            "{time} faster   {what} takes {} now: {found} looked for every {} again",
            duration_text(change.cost),
            duration_text(change.every),
        )
    }
}

/// Which closes a count of lost notifications covers, after "N close
/// notifications".
fn scope_text(scope: LostScope) -> &'static str {
    match scope {
        LostScope::WatchedPorts => "on the watched ports",
        LostScope::WatchedPortsAndGaps => "on the watched ports (or a few ports between them)",
        LostScope::Unconnected => "of unconnected sockets",
        LostScope::Everything => "on any port",
    }
}

fn socket_line(event: &SocketEvent) -> String {
    let s = &event.socket;
    let state = match (event.kind, event.last_seen_state) {
        (EventKind::StateChanged { from }, _) => {
            format!("{}>{}", from.kernel_name(), s.state.kernel_name())
        }
        (EventKind::Closed, Some(last)) if last != s.state => {
            format!("{}>{}", last.kernel_name(), s.state.kernel_name())
        }
        _ => s.state.kernel_name().into_owned(),
    };
    let mut out = format!(
        "{} {:<8} {:<5} {:<16} {:<10} {:<22} {:<22} {}",
        local_time(event.time),
        event.kind.name(),
        protocol_name(s),
        state,
        event.role.name(),
        s.local.to_string(),
        s.remote.to_string(),
        holders_text(event),
    );
    if let Some(lifetime) = &event.lifetime {
        let _ = write!(out, " lived {}", lifetime_text(lifetime));
    }
    if event.seen_only_at_close {
        out.push_str(" (seen only at close)");
    }
    if event.close_source == Some(CloseSource::Poll) {
        out.push_str(" (close found by a dump)");
    }
    out
}

fn protocol_name(socket: &Socket) -> String {
    match socket.family {
        Family::Inet => socket.protocol.name().to_string(),
        Family::Inet6 => format!("{}6", socket.protocol.name()),
    }
}

fn holders_text(event: &SocketEvent) -> String {
    let holders = &event.holders;
    if holders.is_empty() {
        return match (&event.likely_holder, event.holders_hidden) {
            (_, true) => "hidden".to_string(),
            (Some(likely), false) => {
                format!("likely {}/{}", likely.pid, escape_bytes(&likely.command))
            }
            (None, false) => "-".to_string(),
        };
    }
    let mut pids: Vec<String> = Vec::new();
    for holder in holders {
        let text = format!("{}/{}", holder.pid, escape_bytes(&holder.command));
        if !pids.contains(&text) {
            pids.push(text);
        }
    }
    pids.join(",")
}

/// `12ms`, `<38ms`, `1.2-1.3s`, `>4.0s` (there before the watch).
fn lifetime_text(lifetime: &Lifetime) -> String {
    match lifetime.at_most {
        None => format!(">{}", duration_text(lifetime.at_least)),
        Some(at_most) if lifetime.at_least.is_zero() => format!("<{}", duration_text(at_most)),
        Some(at_most) => format!(
            "{}-{}",
            duration_text(lifetime.at_least),
            duration_text(at_most)
        ),
    }
}

fn duration_text(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The summary, for people.
pub fn summary_text(summary: &Summary) -> String {
    let mut out = format!(
        "Watched {:.1}s: {} appeared, {} changed state, {} closed ({} seen only at close), {} close notification{} {} lost",
        summary.duration.as_secs_f64(),
        summary.appeared,
        summary.state_changes,
        summary.closed,
        summary.seen_only_at_close,
        summary.lost,
        plural(summary.lost as usize),
        scope_text(summary.lost_scope),
    );
    if summary.overflows > 0 {
        let _ = write!(
            out,
            " in {} overflow{}",
            summary.overflows,
            plural(summary.overflows)
        );
    }
    out.push_str(".\n");
    if !summary.by_process.is_empty() {
        out.push_str("\nSOCKETS  CLOSED  LIFETIMES       PROCESS\n");
        let (shown, others) = summary.by_process.top(GROUPS_SHOWN);
        for (key, stats) in shown {
            let _ = write!(out, "{}{}", stats_columns(stats), process_text(key));
            if stats.inferred > 0 {
                let _ = write!(
                    out,
                    " ({} likely: accepted on its listener)",
                    stats.inferred
                );
            }
            out.push('\n');
        }
        others_row(&mut out, &others, "process", "processes");
    }
    if !summary.by_remote.is_empty() {
        out.push_str("\nSOCKETS  CLOSED  LIFETIMES       REMOTE ADDRESS\n");
        let (shown, others) = summary.by_remote.top(GROUPS_SHOWN);
        for (address, stats) in shown {
            let _ = writeln!(out, "{}{address}", stats_columns(stats));
        }
        others_row(&mut out, &others, "address", "addresses");
    }
    out
}

/// The row of the groups not named: `1004 other addresses`, or `at
/// least 2028 other addresses` once the table has folded some together.
fn others_row(out: &mut String, others: &Others, one: &str, many: &str) {
    if others.groups == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "{}{}{} other {}",
        stats_columns(&others.stats),
        if others.exact { "" } else { "at least " },
        others.groups,
        if others.groups == 1 { one } else { many },
    );
}

fn stats_columns(stats: &GroupStats) -> String {
    format!(
        "{:<8} {:<7} {:<15} ",
        stats.sockets,
        stats.closed,
        lifetimes_text(stats)
    )
}

fn lifetimes_text(stats: &GroupStats) -> String {
    let Some(min) = stats.lifetime_min else {
        return "-".to_string();
    };
    match (stats.lifetime_max, stats.lifetime_unbounded) {
        (_, true) => format!("{}-", duration_text(min)),
        (Some(max), false) => format!("{}-{}", duration_text(min), duration_text(max)),
        (None, false) => duration_text(min),
    }
}

fn process_text(key: &ProcessKey) -> String {
    match key {
        ProcessKey::Process { pid, command, unit } => {
            let mut text = format!("{pid}/{}", escape_bytes(command));
            if let Some(unit) = unit {
                let _ = write!(text, " ({})", escape_bytes(unit.as_bytes()));
            }
            text
        }
        ProcessKey::Hidden => "hidden (another user's process)".to_string(),
        ProcessKey::Unknown => "unknown (seen only at close, or no holder)".to_string(),
    }
}

/// One event as a JSON line.
pub fn write_json_event(event: &Event, sink: &mut dyn io::Write) -> io::Result<()> {
    match event {
        Event::Paced(paced) => write_document(
            &PacedLine {
                schema_version: SCHEMA_VERSION,
                event: "paced",
                time: utc_time(paced.time),
                dumps: match paced.kind {
                    PacedKind::Connections => "connections",
                    PacedKind::BoundOnly => "bound_only",
                },
                dump_ms: millis(paced.change.cost),
                every_ms: millis(paced.change.period),
                asked_ms: millis(paced.change.every),
                share: paced.share,
            },
            sink,
        ),
        Event::Lost(lost) => write_document(
            &LostLine {
                schema_version: SCHEMA_VERSION,
                event: "lost",
                time: utc_time(lost.time),
                count: lost.count,
                covers: lost.scope.name(),
            },
            sink,
        ),
        Event::Socket(event) => write_document(&SocketLine::of(event), sink),
        Event::Started(started) => write_document(
            &StartedLine {
                schema_version: SCHEMA_VERSION,
                event: "started",
                time: utc_time(started.time),
                sockets: started.sockets,
            },
            sink,
        ),
    }
}

/// The summary as the last JSON line.
pub fn write_json_summary(summary: &Summary, sink: &mut dyn io::Write) -> io::Result<()> {
    let (processes, other_processes) = summary.by_process.top(GROUPS_SHOWN);
    let (remotes, other_remotes) = summary.by_remote.top(GROUPS_SHOWN);
    let line = SummaryLine {
        schema_version: SCHEMA_VERSION,
        event: "summary",
        duration_ms: millis(summary.duration),
        appeared: summary.appeared,
        state_changes: summary.state_changes,
        closed: summary.closed,
        seen_only_at_close: summary.seen_only_at_close,
        lost: summary.lost,
        lost_covers: summary.lost_scope.name(),
        overflows: summary.overflows,
        hidden_holders: summary.hidden_holders,
        by_process: processes
            .into_iter()
            .map(|(key, stats)| ProcessGroup::of(key, stats))
            .collect(),
        other_processes: OthersView::of(&other_processes),
        by_remote: remotes
            .into_iter()
            .map(|(address, stats)| RemoteGroup {
                address: *address,
                stats: StatsView::of(stats),
            })
            .collect(),
        other_remotes: OthersView::of(&other_remotes),
    };
    write_document(&line, sink)
}

#[derive(Serialize)]
struct StartedLine {
    schema_version: u32,
    event: &'static str,
    time: String,
    sockets: usize,
}

#[derive(Serialize)]
struct PacedLine {
    schema_version: u32,
    event: &'static str,
    time: String,
    dumps: &'static str,
    dump_ms: f64,
    every_ms: f64,
    asked_ms: f64,
    share: f64,
}

#[derive(Serialize)]
struct LostLine {
    schema_version: u32,
    event: &'static str,
    time: String,
    count: Option<u64>,
    covers: &'static str,
}

#[derive(Serialize)]
struct SocketLine<'a> {
    schema_version: u32,
    event: &'static str,
    time: String,
    protocol: &'static str,
    family: &'static str,
    state: Cow<'static, str>,
    previous_state: Option<String>,
    role: &'static str,
    local: EndpointView,
    remote: EndpointView,
    uid: Option<u32>,
    inode: u64,
    cookie: u64,
    holders: Vec<HolderLine<'a>>,
    holders_hidden: bool,
    likely_holder: Option<LikelyHolderLine<'a>>,
    seen_only_at_close: bool,
    lifetime_ms: Option<LifetimeView>,
    close_source: Option<&'static str>,
}

impl<'a> SocketLine<'a> {
    fn of(event: &'a SocketEvent) -> SocketLine<'a> {
        let s = &event.socket;
        let previous_state = match event.kind {
            EventKind::StateChanged { from } => Some(from),
            EventKind::Closed => event.last_seen_state,
            EventKind::Appeared => None,
        };
        SocketLine {
            schema_version: SCHEMA_VERSION,
            event: event.kind.name(),
            time: utc_time(event.time),
            protocol: s.protocol.name(),
            family: s.family.name(),
            state: s.state.kernel_name(),
            previous_state: previous_state.map(|state| state.kernel_name().into_owned()),
            role: event.role.name(),
            local: EndpointView::of(&s.local),
            remote: EndpointView::of(&s.remote),
            uid: event.uid,
            inode: s.inode,
            cookie: s.cookie,
            holders: event.holders.iter().map(HolderLine::of).collect(),
            holders_hidden: event.holders_hidden,
            likely_holder: event.likely_holder.as_deref().map(LikelyHolderLine::of),
            seen_only_at_close: event.seen_only_at_close,
            lifetime_ms: event.lifetime.as_ref().map(LifetimeView::of),
            close_source: event.close_source.map(|source| match source {
                CloseSource::Notification => "notification",
                CloseSource::Poll => "poll",
            }),
        }
    }
}

#[derive(Serialize)]
struct HolderLine<'a> {
    pid: u32,
    fd: u32,
    command: Cow<'a, str>,
    container: Option<ContainerView<'a>>,
}

impl<'a> HolderLine<'a> {
    fn of(holder: &'a Holder) -> HolderLine<'a> {
        HolderLine {
            pid: holder.pid,
            fd: holder.fd,
            command: String::from_utf8_lossy(&holder.command),
            container: holder.container.as_ref().map(ContainerView::of),
        }
    }
}

#[derive(Serialize)]
struct LikelyHolderLine<'a> {
    pid: u32,
    command: Cow<'a, str>,
    container: Option<ContainerView<'a>>,
    listener_fd: u32,
    because: &'static str,
}

impl<'a> LikelyHolderLine<'a> {
    fn of(holder: &'a Holder) -> LikelyHolderLine<'a> {
        LikelyHolderLine {
            pid: holder.pid,
            command: String::from_utf8_lossy(&holder.command),
            container: holder.container.as_ref().map(ContainerView::of),
            listener_fd: holder.fd,
            because: "sole_listener_holder",
        }
    }
}

#[derive(Serialize)]
struct LifetimeView {
    at_least: f64,
    at_most: Option<f64>,
}

impl LifetimeView {
    fn of(lifetime: &Lifetime) -> LifetimeView {
        LifetimeView {
            at_least: millis(lifetime.at_least),
            at_most: lifetime.at_most.map(millis),
        }
    }
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    schema_version: u32,
    event: &'static str,
    duration_ms: f64,
    appeared: usize,
    state_changes: usize,
    closed: usize,
    seen_only_at_close: usize,
    lost: u64,
    lost_covers: &'static str,
    overflows: usize,
    hidden_holders: usize,
    by_process: Vec<ProcessGroup<'a>>,
    other_processes: OthersView,
    by_remote: Vec<RemoteGroup>,
    other_remotes: OthersView,
}

#[derive(Serialize)]
struct OthersView {
    groups: usize,
    groups_exact: bool,
    #[serde(flatten)]
    stats: StatsView,
}

impl OthersView {
    fn of(others: &Others) -> OthersView {
        OthersView {
            groups: others.groups,
            groups_exact: others.exact,
            stats: StatsView::of(&others.stats),
        }
    }
}

#[derive(Serialize)]
struct StatsView {
    sockets: usize,
    closed: usize,
    lifetime_min_ms: Option<f64>,
    lifetime_max_ms: Option<f64>,
}

impl StatsView {
    fn of(stats: &GroupStats) -> StatsView {
        StatsView {
            sockets: stats.sockets,
            closed: stats.closed,
            lifetime_min_ms: stats.lifetime_min.map(millis),
            lifetime_max_ms: if stats.lifetime_unbounded {
                None
            } else {
                stats.lifetime_max.map(millis)
            },
        }
    }
}

#[derive(Serialize)]
struct ProcessGroup<'a> {
    holder: &'static str,
    pid: Option<u32>,
    command: Option<Cow<'a, str>>,
    unit: Option<&'a str>,
    inferred: usize,
    #[serde(flatten)]
    stats: StatsView,
}

impl<'a> ProcessGroup<'a> {
    fn of(key: &'a ProcessKey, stats: &GroupStats) -> ProcessGroup<'a> {
        let (holder, pid, command, unit) = match key {
            ProcessKey::Process { pid, command, unit } => (
                "process",
                Some(*pid),
                Some(String::from_utf8_lossy(command)),
                unit.as_deref(),
            ),
            ProcessKey::Hidden => ("hidden", None, None, None),
            ProcessKey::Unknown => ("unknown", None, None, None),
        };
        ProcessGroup {
            holder,
            pid,
            command,
            unit,
            inferred: stats.inferred,
            stats: StatsView::of(stats),
        }
    }
}

#[derive(Serialize)]
struct RemoteGroup {
    address: std::net::IpAddr,
    #[serde(flatten)]
    stats: StatsView,
}

/// Milliseconds, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `HH:MM:SS.mmm` in the local time zone (UTC where none is set).
fn local_time(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = !unsafe { libc::localtime_r(&seconds, &mut tm) }.is_null();
    let (h, m, s) = if ok {
        (tm.tm_hour as u64, tm.tm_min as u64, tm.tm_sec as u64)
    } else {
        let day = since.as_secs() % 86_400;
        (day / 3600, day / 60 % 60, day % 60)
    };
    format!("{h:02}:{m:02}:{s:02}.{:03}", since.subsec_millis())
}

/// RFC 3339 in UTC, to the millisecond: `2026-05-01T12:00:00.123Z`.
pub fn utc_time(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let day_secs = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's days-to-civil algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_rfc3339_to_the_millisecond() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(utc_time(at), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_time(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn lifetimes_read_as_bounds() {
        let ms = Duration::from_millis;
        let text = |at_least, at_most| lifetime_text(&Lifetime { at_least, at_most });
        assert_eq!(text(ms(0), Some(ms(38))), "<38ms");
        assert_eq!(text(ms(100), Some(ms(230))), "100ms-230ms");
        assert_eq!(text(ms(12_500), None), ">12.5s");
        assert_eq!(duration_text(Duration::from_micros(4_560)), "4.6ms");
    }
}
