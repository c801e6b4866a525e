//! The answer on Unix sockets: the verdict per target, the file's facts
//! and the socket table for people, and the `unix` part of the probe's
//! JSON document.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

use serde::Serialize;

use crate::commands::kill::unix::UnixKillReport;
use crate::commands::wait::Condition;
use crate::commands::wait::unix::UnixWaitReport;
use crate::commands::why::unix::{UnixCause, UnixWhyAnswer};
use crate::report::Holder;
use crate::source::SourceKind;
use crate::unix::report::{MatchedBy, TargetAnswer, UnixReport, UnixRow, UnixVerdict, kind_name};
use crate::unix::socket::{UnixQueue, UnixSocket};
use crate::unix::target::{FileKind, SocketFile, UnixTarget};

use super::escape::escape_bytes;
use super::json::HolderEntry;

/// The target as the user typed it, raw.
pub fn target_bytes(target: &UnixTarget) -> Cow<'_, [u8]> {
    match target {
        UnixTarget::Path(path) => Cow::Borrowed(path.as_os_str().as_bytes()),
        UnixTarget::Abstract(name) => {
            let mut out = b"@".to_vec();
            out.extend_from_slice(name);
            Cow::Owned(out)
        }
    }
}

/// The verdict on one target, in one line.
pub fn verdict_line(answer: &TargetAnswer, report: &UnixReport) -> String {
    let name = escape_bytes(&target_bytes(&answer.target));
    let here = "in this network namespace";
    let words = match answer.verdict {
        UnixVerdict::InUse => {
            let servers: Vec<String> = answer
                .servers(&report.rows)
                .map(|row| format!("{} {}", row.socket.socket_type.name(), row.role.name()))
                .collect();
            if servers.is_empty() {
                "IN USE (connections through it; no listener left)".to_string()
            } else {
                format!("IN USE ({})", servers.join(", "))
            }
        }
        UnixVerdict::Free => match &answer.file {
            Some(Err(err)) => format!("FREE (no such file: {})", err.message),
            _ => format!("FREE (no socket has this abstract name {here})"),
        },
        UnixVerdict::Stale => format!(
            "STALE: a socket file with nothing bound to it {here}; connect() is refused and bind() fails until it is removed"
        ),
        UnixVerdict::NotASocket => {
            let kind = match &answer.file {
                Some(Ok(file)) if file.kind == FileKind::Directory => "a directory",
                _ => "a file that is not a socket",
            };
            format!("NOT A SOCKET: {kind}; no socket can be bound there")
        }
        UnixVerdict::Unknown => {
            let why = match &answer.file {
                Some(Err(err)) => err.message.clone(),
                _ => String::new(),
            };
            format!(
                "UNKNOWN: the file cannot be looked at ({why}), and no socket is bound by this name"
            )
        }
    };
    format!("{name}: {words}")
}

/// How the sockets were matched, when it is worth saying.
pub fn match_note(answer: &TargetAnswer, report: &UnixReport) -> Option<String> {
    let missing = matches!(&answer.file, Some(Err(err)) if err.is_missing());
    if answer.matched_by != MatchedBy::Name || (missing && answer.rows.is_empty()) {
        return None;
    }
    Some(if report.source == SourceKind::Proc {
        "matched by name: /proc/net/unix gives no bound file, so a socket bound by another name (a relative one, a symlink, a hard link) is missed, and one bound to a file since replaced is taken for this one".to_string()
    } else {
        "matched by name: the file cannot be looked at, so a socket bound by another name is missed"
            .to_string()
    })
}

/// The file's facts in one line.
pub fn file_line(file: &SocketFile) -> String {
    let connect = if file.may_connect {
        "this user may connect (write permission on the file, search on its directories)"
    } else {
        "this user may not connect (it needs write permission on the file and search on its directories)"
    };
    format!(
        "file: {}, owner {}:{}, mode {:04o}, device {} inode {}; {connect}",
        kind_name(file.kind),
        file.uid,
        file.gid,
        file.mode,
        file.device,
        file.inode
    )
}

const HEADERS: [&str; 11] = [
    "TYPE", "ROLE", "STATE", "INODE", "PEER", "QUEUE", "PID", "USER", "FD", "COMMAND", "ARGS",
];

/// The arguments shown in the table, at most this many characters (JSON
/// has them whole).
const ARGS_SHOWN: usize = 60;

/// The queue column: pending/backlog for a listener, receive/send bytes
/// for others.
fn queue_text(socket: &UnixSocket) -> String {
    match socket.queue {
        Some(UnixQueue::Listener { pending, backlog }) => format!("{pending}/{backlog}"),
        Some(UnixQueue::Data { receive, send }) => format!("{receive}:{send}"),
        None => "-".into(),
    }
}

fn holder_cells(holder: Option<&Holder>, row: &UnixRow) -> [String; 5] {
    match holder {
        Some(h) => {
            let user = match (h.user(), h.uid()) {
                (Some(name), _) => name.to_string(),
                (None, Some(uid)) => uid.to_string(),
                (None, None) => "-".into(),
            };
            // Programs that rewrite their title (postgres) leave empty
            // arguments behind.
            let args: Vec<String> = h
                .cmdline()
                .iter()
                .skip(1)
                .filter(|a| !a.is_empty())
                .map(|a| escape_bytes(a))
                .collect();
            let mut args = args.join(" ");
            if args.chars().count() > ARGS_SHOWN {
                args = args.chars().take(ARGS_SHOWN - 3).collect::<String>() + "...";
            }
            [
                h.pid.to_string(),
                user,
                h.fd.to_string(),
                escape_bytes(h.command()),
                args,
            ]
        }
        None => {
            let owner = row
                .owner
                .clone()
                .or_else(|| row.socket.uid.map(|u| u.to_string()))
                .unwrap_or_else(|| "-".into());
            let what = if row.holders_hidden {
                "(hidden)"
            } else {
                "(no process)"
            };
            ["-".into(), owner, "-".into(), what.into(), String::new()]
        }
    }
}

/// The table of rows, one line per holder.
pub fn table(report: &UnixReport, rows: &[usize], show_name: bool) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut headers: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
    if show_name {
        headers.insert(3, "NAME".into());
    }
    lines.push(headers);
    for &index in rows {
        let row = &report.rows[index];
        let s = &row.socket;
        let peer = s.peer_inode().map_or("-".into(), |p| p.to_string());
        let holders: Vec<Option<&Holder>> = if row.holders.is_empty() {
            vec![None]
        } else {
            row.holders.iter().map(Some).collect()
        };
        for holder in holders {
            let mut cells = vec![
                s.socket_type.name().into_owned(),
                row.role.name().into(),
                s.state.kernel_name().into_owned(),
                s.inode.to_string(),
                peer.clone(),
                queue_text(s),
            ];
            if show_name {
                let name = s.name.printed();
                cells.insert(
                    3,
                    if name.is_empty() {
                        "-".into()
                    } else {
                        escape_bytes(&name)
                    },
                );
            }
            cells.extend(holder_cells(holder, row));
            lines.push(cells);
        }
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == columns {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `lsport PATH` / `lsport --unix` for people.
pub fn text(report: &UnixReport) -> String {
    let mut out = String::new();
    if report.targets.is_empty() {
        if report.rows.is_empty() {
            out.push_str("no Unix sockets matched\n");
        } else {
            let all: Vec<usize> = (0..report.rows.len()).collect();
            out.push_str(&table(report, &all, true));
        }
        return out;
    }
    for (n, answer) in report.targets.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&verdict_line(answer, report));
        out.push('\n');
        if let Some(Ok(file)) = &answer.file {
            out.push_str("  ");
            out.push_str(&file_line(file));
            out.push('\n');
        }
        if let Some(note) = match_note(answer, report) {
            out.push_str("  ");
            out.push_str(&note);
            out.push('\n');
        }
        if !answer.rows.is_empty() {
            out.push_str(&table(report, &answer.rows, false));
        }
    }
    out
}

/// The `unix` part of the probe's JSON document.
#[derive(Serialize)]
pub(crate) struct UnixPart<'a> {
    source: &'static str,
    blind_spots: Vec<&'static str>,
    targets: Vec<TargetView<'a>>,
    sockets: Vec<UnixSocketView<'a>>,
    hidden_holders: usize,
    untested_by_filter: usize,
}

impl<'a> UnixPart<'a> {
    pub(crate) fn of(report: &'a UnixReport) -> UnixPart<'a> {
        UnixPart {
            source: report.source.name(),
            blind_spots: report.blind_spots.iter().map(|b| b.id()).collect(),
            targets: report.targets.iter().map(TargetView::of).collect(),
            sockets: report
                .rows
                .iter()
                .map(|row| UnixSocketView::of(row, report))
                .collect(),
            hidden_holders: report.hidden_holders(),
            untested_by_filter: report.untested_by_filter,
        }
    }
}

#[derive(Serialize)]
struct TargetView<'a> {
    target: String,
    kind: &'static str,
    verdict: &'static str,
    matched_by: &'static str,
    file: Option<FileView>,
    file_error: Option<&'a str>,
    sockets: &'a [usize],
}

impl<'a> TargetView<'a> {
    fn of(answer: &'a TargetAnswer) -> TargetView<'a> {
        TargetView {
            target: String::from_utf8_lossy(&target_bytes(&answer.target)).into_owned(),
            kind: match answer.target {
                UnixTarget::Path(_) => "path",
                UnixTarget::Abstract(_) => "abstract",
            },
            verdict: answer.verdict.id(),
            matched_by: answer.matched_by.id(),
            file: match &answer.file {
                Some(Ok(file)) => Some(FileView::of(file)),
                _ => None,
            },
            file_error: match &answer.file {
                Some(Err(err)) => Some(&err.message),
                _ => None,
            },
            sockets: &answer.rows,
        }
    }
}

#[derive(Serialize)]
struct FileView {
    kind: &'static str,
    uid: u32,
    gid: u32,
    mode: u32,
    device: String,
    inode: u64,
    may_connect: bool,
}

impl FileView {
    fn of(file: &SocketFile) -> FileView {
        FileView {
            kind: kind_name(file.kind),
            uid: file.uid,
            gid: file.gid,
            mode: file.mode,
            device: file.device.to_string(),
            inode: file.inode,
            may_connect: file.may_connect,
        }
    }
}

#[derive(Serialize)]
struct UnixSocketView<'a> {
    inode: u64,
    cookie: Option<u64>,
    #[serde(rename = "type")]
    socket_type: Cow<'static, str>,
    state: Cow<'static, str>,
    role: &'static str,
    name: Option<String>,
    bound_file: Option<BoundFileView>,
    peer_inode: Option<u64>,
    queue: Option<QueueView>,
    uid: Option<u32>,
    owner: Option<&'a str>,
    holders: Vec<HolderEntry<'a>>,
    holders_hidden: bool,
    peer_holders: Vec<HolderEntry<'a>>,
}

#[derive(Serialize)]
struct BoundFileView {
    device: String,
    inode: u32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum QueueView {
    Listener { pending: u32, backlog: u32 },
    Data { receive: u32, send: u32 },
}

impl<'a> UnixSocketView<'a> {
    fn of(row: &'a UnixRow, report: &'a UnixReport) -> UnixSocketView<'a> {
        let s = &row.socket;
        let name = s.name.printed();
        UnixSocketView {
            inode: s.inode,
            cookie: s.cookie,
            socket_type: s.socket_type.name(),
            state: s.state.kernel_name(),
            role: row.role.name(),
            name: (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned()),
            bound_file: s.bound_file.map(|b| BoundFileView {
                device: b.device.to_string(),
                inode: b.inode,
            }),
            peer_inode: s.peer_inode(),
            queue: s.queue.map(|q| match q {
                UnixQueue::Listener { pending, backlog } => {
                    QueueView::Listener { pending, backlog }
                }
                UnixQueue::Data { receive, send } => QueueView::Data { receive, send },
            }),
            uid: s.uid,
            owner: row.owner.as_deref(),
            holders: row.holders.iter().map(HolderEntry::of).collect(),
            holders_hidden: row.holders_hidden,
            peer_holders: row
                .peer_row
                .map(|p| report.rows[p].holders.iter().map(HolderEntry::of).collect())
                .unwrap_or_default(),
        }
    }
}

/// `lsport why PATH` for people: the verdict, the cause, the sockets in
/// the way, the fix.
pub fn why_text(answer: &UnixWhyAnswer) -> String {
    let (what, fix) = why_words(answer);
    let mut out = String::new();
    out.push_str(&what);
    out.push('\n');
    if let Some(answer_on_target) = answer.answer() {
        if let Some(Ok(file)) = &answer_on_target.file {
            out.push_str("  ");
            out.push_str(&file_line(file));
            out.push('\n');
        }
        if let Some(note) = match_note(answer_on_target, &answer.report) {
            out.push_str("  ");
            out.push_str(&note);
            out.push('\n');
        }
        if !answer.would_succeed() && !answer_on_target.rows.is_empty() {
            out.push_str(&table(&answer.report, &answer_on_target.rows, false));
        }
    }
    if let Some(fix) = fix {
        out.push_str("fix: ");
        out.push_str(&fix);
        out.push('\n');
    }
    out.push_str(NO_TRIAL);
    out.push('\n');
    out
}

/// What `why PATH` says of the way it checked.
const NO_TRIAL: &str = "checked against the kernel's socket table and the filesystem; no trial bind was made (one on this name would take it from a starting server)";

/// The verdict with its cause, in one line, and the fix.
fn why_words(answer: &UnixWhyAnswer) -> (String, Option<String>) {
    use crate::unix::target::SUN_PATH_LEN;
    let name = escape_bytes(&target_bytes(&answer.target));
    let shown = |path: &std::path::Path| escape_bytes(path.as_os_str().as_bytes());
    match &answer.cause {
        UnixCause::WouldSucceed => (
            match answer.target {
                UnixTarget::Path(_) => format!(
                    "{name}: bind() would succeed: no file is there, and this user may create one in its directory"
                ),
                UnixTarget::Abstract(_) => format!(
                    "{name}: bind() would succeed: no socket has this abstract name in this network namespace"
                ),
            },
            None,
        ),
        UnixCause::Listening => {
            let servers: Vec<String> = answer
                .answer()
                .map(|a| {
                    a.servers(&answer.report.rows)
                        .map(|row| {
                            let holders: Vec<String> = row
                                .holders
                                .iter()
                                .map(|h| format!("pid {} ({})", h.pid, escape_bytes(h.command())))
                                .collect();
                            let held = if holders.is_empty() {
                                if row.holders_hidden {
                                    "a holder hidden from this user".to_string()
                                } else {
                                    "no process".to_string()
                                }
                            } else {
                                holders.join(", ")
                            };
                            format!(
                                "a {} {} (inode {}) held by {held}",
                                row.socket.socket_type.name(),
                                row.role.name(),
                                row.socket.inode
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                format!(
                    "{name}: bind() fails with EADDRINUSE: {} is bound to it",
                    servers.join("; ")
                ),
                Some(format!(
                    "stop the server first (lsport kill {name}), or bind another name"
                )),
            )
        }
        UnixCause::Stale => (
            format!(
                "{name}: bind() fails with EADDRINUSE: the file remains from a socket that closed; nothing listens on it"
            ),
            Some(
                if answer
                    .answer()
                    .is_some_and(|a| a.matched_by == MatchedBy::Name)
                {
                    format!(
                        "remove the file: rm {name}, once sure nothing is bound to it by another name (lsport checked by name only: see above)"
                    )
                } else {
                    format!(
                        "remove the file: rm {name} (lsport just checked that no socket in this network namespace is bound to it; a server that unlinks its socket file before bind() does this itself)"
                    )
                },
            ),
        ),
        UnixCause::ListenerClosed => (
            format!(
                "{name}: bind() fails with EADDRINUSE: the file remains; its listener closed, and connections it accepted are still open"
            ),
            Some(format!(
                "remove the file: rm {name} (nothing listens on it; the open connections do not need it)"
            )),
        ),
        UnixCause::NotASocket(kind) => (
            format!(
                "{name}: bind() fails with EADDRINUSE: a {} is at this path, not a socket file",
                match kind {
                    FileKind::Directory => "directory",
                    _ => "file",
                }
            ),
            Some("bind another path: lsport does not suggest removing a file that is not a socket".to_string()),
        ),
        UnixCause::MissingDirectory(dir) => (
            format!(
                "{name}: bind() fails with ENOENT: the directory {} does not exist",
                shown(dir)
            ),
            Some(format!("create it first: mkdir -p {}", shown(dir))),
        ),
        UnixCause::DirectoryNotWritable(dir) => (
            format!(
                "{name}: bind() fails with EACCES: this user may not create files in {}",
                shown(dir)
            ),
            Some(
                "run the server as a user who may write there, or bind in a directory of its own (as /run/NAME, made by its service manager)"
                    .to_string(),
            ),
        ),
        UnixCause::ReadOnly(dir) => (
            format!(
                "{name}: bind() fails with EROFS: {} is on a read-only filesystem",
                shown(dir)
            ),
            Some("bind in a writable directory (/run, /tmp)".to_string()),
        ),
        UnixCause::PathNotSearchable(why) => (
            format!(
                "{name}: bind() fails with EACCES: a directory on the way may not be searched by this user ({why})"
            ),
            Some("run the server as a user who may reach the directory, or bind elsewhere".to_string()),
        ),
        UnixCause::TooLong(length) => (
            format!(
                "{name}: the name is {length} bytes; sun_path holds {} and a NUL: bind() cannot take it (the kernel refuses a longer address with EINVAL, and C programs that copy it into sun_path cut it silently)",
                SUN_PATH_LEN - 1
            ),
            Some(
                "use a shorter path: bind a relative name after chdir() into the directory, or a shorter directory"
                    .to_string(),
            ),
        ),
    }
}

/// The line that ends `lsport wait PATH`: met (stdout) or timed out
/// (stderr).
pub fn wait_line(condition: &Condition, report: &UnixWaitReport) -> String {
    let name = escape_bytes(&target_bytes(&report.target));
    let waited = format!("{:.1}s", report.waited.as_secs_f64());
    let answer = report
        .report
        .as_ref()
        .and_then(|r| r.targets.first().map(|a| (r, a)));
    let servers = answer
        .map(|(r, a)| {
            a.servers(&r.rows)
                .map(|row| {
                    let holders: Vec<String> = row
                        .holders
                        .iter()
                        .map(|h| format!("pid {} ({})", h.pid, escape_bytes(h.command())))
                        .collect();
                    let held = if holders.is_empty() {
                        String::new()
                    } else {
                        format!(" held by {}", holders.join(", "))
                    };
                    format!(
                        "{} {}{held}",
                        row.socket.socket_type.name(),
                        row.role.name()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let stale = answer.is_some_and(|(_, a)| a.verdict == UnixVerdict::Stale);
    match (condition, report.met) {
        (Condition::Listening, true) if servers.is_empty() => {
            format!("{name}: listening (after {waited})")
        }
        (Condition::Listening, true) => format!("{name}: listening: {servers} (after {waited})"),
        (Condition::Free { .. }, true) if stale => format!(
            "{name}: free: nothing is bound to it (after {waited}); its file remains, and a server's bind() fails until it is removed"
        ),
        (Condition::Free { .. }, true) => {
            format!("{name}: free: nothing is bound to it (after {waited})")
        }
        (Condition::Listening, false) => {
            format!("{name}: timed out after {waited}: nothing listens on it yet")
        }
        (Condition::Free { .. }, false) if servers.is_empty() => {
            format!("{name}: timed out after {waited}: still bound")
        }
        (Condition::Free { .. }, false) => {
            format!("{name}: timed out after {waited}: still bound: {servers}")
        }
    }
}

/// The target in JSON: its name (invalid UTF-8 replaced) and kind.
fn target_view(target: &UnixTarget) -> (String, &'static str) {
    (
        String::from_utf8_lossy(&target_bytes(target)).into_owned(),
        match target {
            UnixTarget::Path(_) => "path",
            UnixTarget::Abstract(_) => "abstract",
        },
    )
}

/// `lsport wait --json PATH`: wait's document with a `unix` part.
pub fn write_wait_json(
    condition: &Condition,
    report: &UnixWaitReport,
    sink: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct ServerView<'a> {
        inode: u64,
        #[serde(rename = "type")]
        socket_type: Cow<'static, str>,
        role: &'static str,
        holders: Vec<super::wait::HolderView<'a>>,
        holders_hidden: bool,
    }
    #[derive(Serialize)]
    struct UnixWaitPart<'a> {
        target: String,
        kind: &'static str,
        met: bool,
        met_after_ms: Option<u64>,
        verdict: Option<&'static str>,
        servers: Vec<ServerView<'a>>,
        hidden_holders: usize,
    }
    let answer = report
        .report
        .as_ref()
        .and_then(|r| r.targets.first().map(|a| (r, a)));
    let servers: Vec<ServerView<'_>> = answer
        .map(|(r, a)| {
            a.servers(&r.rows)
                .map(|row| ServerView {
                    inode: row.socket.inode,
                    socket_type: row.socket.socket_type.name(),
                    role: row.role.name(),
                    holders: row
                        .holders
                        .iter()
                        .map(super::wait::HolderView::of_holder)
                        .collect(),
                    holders_hidden: row.holders_hidden,
                })
                .collect()
        })
        .unwrap_or_default();
    let (target, kind) = target_view(&report.target);
    let part = UnixWaitPart {
        target,
        kind,
        met: report.met,
        met_after_ms: report
            .met
            .then(|| report.waited.as_millis().min(u128::from(u64::MAX)) as u64),
        verdict: answer.map(|(_, a)| a.verdict.id()),
        hidden_holders: servers.iter().filter(|s| s.holders_hidden).count(),
        servers,
    };
    super::wait::write_unix_json(condition, report.met, report.waited, part, sink)
}

/// `lsport kill --json PATH`: kill's document with a `unix` part.
pub fn write_kill_json(
    report: &UnixKillReport,
    sink: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct UnixKillPart<'a> {
        target: String,
        kind: &'static str,
        clients_left_alone: &'a [u32],
        file_remains: bool,
    }
    let (target, kind) = target_view(&report.target);
    let part = UnixKillPart {
        target,
        kind,
        clients_left_alone: &report.clients_left_alone,
        file_remains: report.file_remains,
    };
    super::kill::write_unix_json(&report.kill, part, sink)
}

/// `lsport kill PATH` for people: each process and what became of it,
/// the clients left alone, how it ended.
pub fn kill_text(report: &UnixKillReport) -> String {
    use crate::commands::kill::{Fate, Outcome};
    let name = escape_bytes(&target_bytes(&report.target));
    let kill = &report.kill;
    let signal = kill.options.signal.name();
    let mut out = String::new();
    if kill.outcome == Outcome::NothingHeld {
        let stale = report
            .before
            .targets
            .first()
            .is_some_and(|a| a.verdict == UnixVerdict::Stale);
        let _ = writeln!(
            out,
            "nothing listens on {name}{}",
            if stale {
                " (a stale socket file: lsport why explains)"
            } else {
                ""
            }
        );
        return out;
    }
    let planned = kill.options.dry_run || kill.outcome == Outcome::NotConfirmed;
    for target in &kill.targets {
        let who = format!(
            "pid {} ({}, {})",
            target.pid,
            escape_bytes(&target.command),
            target
                .user
                .clone()
                .or_else(|| target.uid.map(|u| u.to_string()))
                .unwrap_or_else(|| "?".into())
        );
        let sent = target
            .signals_sent
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", then ");
        let line = match target.fate {
            Fate::WouldSignal => format!("would send {signal} to {who}, holding {name}"),
            Fate::Refused(why) => format!("{who} holds {name}: refused, {}", why.describe()),
            Fate::Skipped => format!("{who} holds {name}: skipped"),
            Fate::NotPermitted => format!("{who} holds {name}: not permitted to signal it (EPERM)"),
            Fate::GoneBefore => format!("{who} had let go of {name} before it was signalled"),
            Fate::LeftToParent(parent) => format!(
                "{who} holds {name}: left to its parent pid {parent} ({signal} goes to the main process only)"
            ),
            Fate::Exited => format!("sent {sent} to {who}: exited"),
            Fate::Killed => format!("sent {sent} to {who}: killed after the grace period"),
            Fate::Released => format!("sent {sent} to {who}: still running, but let go of {name}"),
            Fate::StillHolding if target.signals_sent.is_empty() => format!("{who} holds {name}"),
            Fate::StillHolding => format!("sent {sent} to {who}: still running, holding {name}"),
        };
        let _ = writeln!(out, "{line}");
        if planned && matches!(target.fate, Fate::WouldSignal | Fate::StillHolding) {
            if let Some(blast) = target
                .blast
                .as_ref()
                .and_then(|b| super::kill::blast_line(b, true, kill.options.signal))
            {
                let _ = writeln!(out, "{blast}");
            }
        }
    }
    if kill.hidden > 0 {
        let _ = writeln!(
            out,
            "{} socket{} on {name} ha{} holders hidden from this user: they cannot be signalled",
            kill.hidden,
            if kill.hidden == 1 { "" } else { "s" },
            if kill.hidden == 1 { "s" } else { "ve" }
        );
    }
    if !report.clients_left_alone.is_empty() {
        let pids: Vec<String> = report
            .clients_left_alone
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "left alone: the client{} connected to it (pid {})",
            if pids.len() == 1 { "" } else { "s" },
            pids.join(", ")
        );
    }
    let reload = !kill.options.signal.ends_process();
    for respawn in &kill.respawns {
        super::kill::respawn_lines(
            &mut out,
            respawn,
            reload.then_some(kill.options.signal),
            &name,
        );
    }
    let after = kill
        .freed_after
        .map(|d| format!(" after {:.1}s", d.as_secs_f64()))
        .unwrap_or_default();
    let line = match kill.outcome {
        Outcome::WouldFree => format!("{name} would be free"),
        Outcome::WouldSignal => format!("{signal} would reach every holder of {name}"),
        Outcome::WouldNotFree => format!("{name} would stay held: some holder cannot be signalled"),
        Outcome::NotConfirmed => "not confirmed: nothing was sent (--yes goes ahead)".to_string(),
        Outcome::Freed => format!("{name} is free{after}"),
        Outcome::Signalled => format!("{signal} reached every holder of {name}"),
        Outcome::Respawned => format!("{name} was bound again after it was freed{after}"),
        Outcome::StillHeld => format!("{name} is still held"),
        Outcome::TimedOut => format!("{name} is still held: timed out"),
        Outcome::Interrupted => "interrupted: the signals above were sent".to_string(),
        // Forwarding rules take ports, never a Unix socket's name.
        Outcome::NothingHeld | Outcome::Forwarded => String::new(),
    };
    let _ = writeln!(out, "{line}");
    if report.file_remains && matches!(kill.outcome, Outcome::Freed) {
        let _ = writeln!(
            out,
            "its socket file remains: a server's bind() on it fails until it is removed (lsport why {name})"
        );
    }
    out
}

/// `lsport why --json PATH`: its own document
/// (doc/schema/why-unix.schema.json).
pub fn write_why_json(
    answer: &UnixWhyAnswer,
    sink: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct HolderView<'a> {
        pid: u32,
        command: Cow<'a, str>,
        uid: Option<u32>,
    }
    #[derive(Serialize)]
    struct InTheWay<'a> {
        inode: u64,
        #[serde(rename = "type")]
        socket_type: Cow<'static, str>,
        role: &'static str,
        holders: Vec<HolderView<'a>>,
        holders_hidden: bool,
    }
    #[derive(Serialize)]
    struct WhyUnixDocument<'a> {
        schema_version: u32,
        target: String,
        kind: &'static str,
        verdict: &'static str,
        cause: &'static str,
        errno: Option<&'static str>,
        message: String,
        fix: Option<String>,
        source: &'static str,
        matched_by: Option<&'static str>,
        in_the_way: Vec<InTheWay<'a>>,
        trial_bind: bool,
    }
    let (message, fix) = why_words(answer);
    let target = answer.answer();
    let in_the_way = match target {
        Some(t) if !answer.would_succeed() => t
            .rows
            .iter()
            .map(|&i| &answer.report.rows[i])
            .filter(|row| {
                row.role.is_server() || row.role == crate::unix::report::UnixRole::Accepted
            })
            .map(|row| InTheWay {
                inode: row.socket.inode,
                socket_type: row.socket.socket_type.name(),
                role: row.role.name(),
                holders: row
                    .holders
                    .iter()
                    .map(|h| HolderView {
                        pid: h.pid,
                        command: String::from_utf8_lossy(h.command()),
                        uid: h.uid(),
                    })
                    .collect(),
                holders_hidden: row.holders_hidden,
            })
            .collect(),
        _ => Vec::new(),
    };
    let document = WhyUnixDocument {
        schema_version: 1,
        target: String::from_utf8_lossy(&target_bytes(&answer.target)).into_owned(),
        kind: match answer.target {
            UnixTarget::Path(_) => "path",
            UnixTarget::Abstract(_) => "abstract",
        },
        verdict: if answer.would_succeed() {
            "would_succeed"
        } else {
            "would_fail"
        },
        cause: answer.cause.id(),
        errno: answer.cause.errno_name(),
        message,
        fix,
        source: answer.report.source.name(),
        matched_by: target.map(|t| t.matched_by.id()),
        in_the_way,
        trial_bind: false,
    };
    super::json::write_document(&document, sink)
}
