//! `lsport why` in words: the verdict line, each cause with its rule in
//! plain words and its sockets, the fixes, the warnings; and the same as
//! one JSON document. The words are written here once: the JSON carries
//! them too, beside stable names.

use std::io;
use std::net::IpAddr;

use serde::Serialize;

use crate::commands::why::{
    BindSpec, Cause, Certainty, Coexistence, Fix, Reason, Rule, Stage, Warning, WhyReport,
};
use crate::netns::NetnsLabel;
use crate::render::escape::{escape_bytes, escape_str};
use crate::render::json::{NetnsView, SCHEMA_VERSION, SocketEntry, write_document};
use crate::report::{Role, Row};
use crate::socket::{Endpoint, Family, Protocol, Socket, State};

/// How many sockets of one cause or warning the text lists.
const SHOWN_PER_GROUP: usize = 5;

/// The verdict, as in `bind(0.0.0.0:8080, tcp, SO_REUSEADDR) would
/// FAIL: address already in use (EADDRINUSE)`.
pub fn verdict(report: &WhyReport) -> String {
    let call = format!(
        "bind({}, {}{})",
        address_port(report.bind.address, report.bind.port),
        report.bind.protocol.name(),
        options_text(report)
    );
    let tcp = report.bind.protocol == Protocol::Tcp;
    match report.outcome.failure {
        None if tcp => format!("{call} and listen() would succeed"),
        None => format!("{call} would succeed"),
        Some((Stage::Listen, errno)) => {
            format!(
                "{call} would succeed, but listen() would FAIL: {}",
                errno_text(errno)
            )
        }
        Some((Stage::Bind, errno)) => format!("{call} would FAIL: {}", errno_text(errno)),
        Some((stage, errno)) => format!(
            "{call} would FAIL at {}(): {}",
            stage.name(),
            errno_text(errno)
        ),
    }
}

fn options_text(report: &WhyReport) -> String {
    let mut options = Vec::new();
    if report.bind.reuseaddr {
        options.push("SO_REUSEADDR".to_string());
    }
    if report.bind.reuseport {
        options.push("SO_REUSEPORT".to_string());
    }
    if report.outcome.v6only == Some(true) {
        options.push("IPV6_V6ONLY".to_string());
    }
    if let Some(user) = &report.as_user {
        options.push(format!("as {}", user_text(user.uid, user.name.as_deref())));
    }
    options.iter().map(|o| format!(", {o}")).collect()
}

fn user_text(uid: u32, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{} (uid {uid})", escape_str(name)),
        None => format!("uid {uid}"),
    }
}

fn address_port(address: IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `address already in use (EADDRINUSE)`.
fn errno_text(errno: i32) -> String {
    let err = nix::errno::Errno::from_raw(errno);
    let mut desc = err.desc().to_string();
    if let Some(first) = desc.get(..1) {
        desc = first.to_lowercase() + &desc[1..];
    }
    format!("{desc} ({err:?})")
}

/// The rule behind a cause, in plain words.
pub fn explanation(report: &WhyReport, cause: &Cause) -> String {
    let spec = &report.bind;
    let port = spec.port;
    let mut text = match cause.reason {
        Reason::Rule(Rule::Listener) => format!(
            "{} {} {}: while a socket listens, another may bind an address it takes only \
             if both set SO_REUSEPORT as the same user",
            plural_word(cause.sockets.len(), "the listener on", "the listeners on"),
            where_words(&cause.sockets),
            if cause.sockets.len() == 1 {
                format!("takes {}", address_port(spec.address, port))
            } else {
                format!("take {}", address_port(spec.address, port))
            }
        ),
        Reason::Rule(Rule::ReuseportOtherUser) => {
            let mut uids: Vec<String> = cause
                .sockets
                .iter()
                .map(|r| r.socket.uid.to_string())
                .collect();
            uids.dedup();
            format!(
                "an SO_REUSEPORT group is shared only by sockets of one user: the listeners \
                 on port {port} belong to uid {}, and the bind ran as uid {}",
                uids.join(", "),
                report.uid
            )
        }
        Reason::Rule(Rule::TimeWait) => "TIME_WAIT blocks binds without SO_REUSEADDR: a closed \
             connection keeps its port for a while (60 s on Linux) so that its late packets \
             are not taken for a new connection's"
            .to_string(),
        Reason::Rule(Rule::TimeWaitWithoutReuse) => "a TIME_WAIT socket left by a socket that \
             did not set SO_REUSEADDR blocks even binds that set it"
            .to_string(),
        Reason::Rule(Rule::BoundOnly) => "a socket that is only bound (bind() without listen() \
             or connect()) holds the port as firmly as a listener unless both sockets set \
             SO_REUSEADDR; ss -l and /proc/net/tcp do not show it"
            .to_string(),
        Reason::Rule(Rule::Connection) => {
            if cause.sockets.iter().any(|r| r.role == Role::Outgoing) {
                format!(
                    "an outgoing connection took port {port} as its source port: its socket \
                     holds the port until it closes, and blocks binds unless both set \
                     SO_REUSEADDR"
                )
            } else {
                format!(
                    "a connection accepted on port {port} holds the port until it closes, and \
                     blocks binds unless both set SO_REUSEADDR"
                )
            }
        }
        Reason::Rule(Rule::Udp) => "UDP sockets share a port only if both set SO_REUSEADDR, or \
             both set SO_REUSEPORT as the same user"
            .to_string(),
        Reason::PrivilegedPort { unprivileged_start } => format!(
            "port {port} is privileged: it is below ip_unprivileged_port_start \
             ({unprivileged_start}) of this network namespace, and binding it needs root or \
             CAP_NET_BIND_SERVICE, which uid {} does not have",
            report.uid
        ),
        Reason::AddressNotAvailable => format!(
            "{} is not an address of this network namespace: a socket may bind only the \
             namespace's own addresses (or any, with IP_FREEBIND or \
             net.ipv4.ip_nonlocal_bind=1)",
            spec.address
        ),
        Reason::Unseen => {
            let why = if report.source == Some(crate::source::SourceKind::Proc) {
                "/proc/net, which answered here, does not list TCP sockets that are only bound"
            } else {
                "a socket may have closed in between, or be bound to a network device"
            };
            format!("no socket lsport can see on port {port} explains it ({why})")
        }
        Reason::Errno => match report.outcome.failure {
            Some((stage, errno)) => format!(
                "the kernel refused {}(): {}",
                stage.name(),
                errno_text(errno)
            ),
            None => String::new(),
        },
    };
    if cause.certainty == Certainty::Possible && matches!(cause.reason, Reason::Rule(_)) {
        text.push_str(
            " (sock_diag does not show another socket's SO_REUSEADDR or SO_REUSEPORT; as \
             the bind fails, this one most likely lacks them)",
        );
    }
    text
}

/// What to do, in words.
pub fn fix_text(report: &WhyReport, fix: &Fix) -> String {
    let port = report.bind.port;
    match fix {
        Fix::StopProcess { pid, command } => {
            format!("stop {} (pid {pid})", escape_bytes(command))
        }
        Fix::StopHiddenHolder { uid } => {
            format!("stop the process of uid {uid} that holds it (run lsport as root to see which)")
        }
        Fix::WaitTimeWait { seconds: Some(s) } => {
            format!("wait {s} s for TIME_WAIT to end")
        }
        Fix::WaitTimeWait { seconds: None } => {
            "wait for TIME_WAIT to end (at most 60 s)".to_string()
        }
        Fix::SetReuseaddr => "set SO_REUSEADDR before bind() (tried: the kernel then accepts \
             this bind)"
            .to_string(),
        Fix::SetV6only => "set IPV6_V6ONLY, so that the socket takes IPv6 only (tried: the \
             kernel then accepts this bind)"
            .to_string(),
        Fix::BindSpecificAddress { taken } => {
            let taken: Vec<String> = taken.iter().map(ToString::to_string).collect();
            format!(
                "bind a specific address other than {} (the sockets in the way hold only \
                 {})",
                taken.join(", "),
                if taken.len() == 1 {
                    "that one"
                } else {
                    "those"
                }
            )
        }
        Fix::ReservePort { .. } => format!(
            "reserve port {port} so that outgoing connections stop taking it (then restart \
             the client that holds it)"
        ),
        Fix::RunAsGroupOwner { uids } => {
            let uids: Vec<String> = uids.iter().map(ToString::to_string).collect();
            format!(
                "run the server as uid {}, the owner of the SO_REUSEPORT group",
                uids.join(" or ")
            )
        }
        Fix::AllowPrivilegedPort => format!(
            "run it as root or with CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep \
             PROGRAM, or AmbientCapabilities= in a systemd unit), or lower \
             ip_unprivileged_port_start to {port}"
        ),
        Fix::BindLocalAddress => "bind an address this namespace has (ip -br addr), or the \
             wildcard"
            .to_string(),
        Fix::PickAnotherPort => "pick another port".to_string(),
    }
}

/// The command line that applies a fix, where there is one.
pub fn fix_command(report: &WhyReport, fix: &Fix) -> Option<String> {
    let port = report.bind.port;
    match fix {
        Fix::StopProcess { pid, .. } => Some(format!("kill {pid}")),
        Fix::ReservePort { reserved_ports } => Some(format!(
            "sysctl -w net.ipv4.ip_local_reserved_ports={reserved_ports}"
        )),
        Fix::AllowPrivilegedPort => Some(format!(
            "sysctl -w net.ipv4.ip_unprivileged_port_start={port}"
        )),
        Fix::PickAnotherPort => Some(format!("lsport suggest --near {port}")),
        _ => None,
    }
}

/// A warning, in words.
pub fn warning_text(report: &WhyReport, warning: &Warning) -> String {
    let port = report.bind.port;
    match warning {
        Warning::Ephemeral { range, .. } => format!(
            "port {port} is in the ephemeral range {range} and not reserved: while your \
             service is down, an outgoing connection may take it, and the next bind fails"
        ),
        Warning::Privileged { unprivileged_start } => format!(
            "port {port} is privileged (below ip_unprivileged_port_start, \
             {unprivileged_start}): the bind succeeds as uid {}, and fails for users \
             without CAP_NET_BIND_SERVICE",
            report.uid
        ),
        Warning::Coexists {
            how: Coexistence::OtherFamily,
            sockets,
        } => {
            let ours_v4 = match report.bind.address {
                IpAddr::V4(_) => true,
                IpAddr::V6(a) => a.to_ipv4_mapped().is_some(),
            };
            let (theirs, ours) = if ours_v4 {
                ("IPv6", "IPv4")
            } else {
                ("IPv4", "IPv6")
            };
            format!(
                "{} on port {port} take{} {theirs} only: {} not answer on {ours}, and \
                 yours will not answer on {theirs}; a client reaches one or the other by the \
                 family it tries (for \"localhost\", often IPv6 first)",
                plural(sockets.len(), "a socket", "sockets"),
                if sockets.len() == 1 { "s" } else { "" },
                if sockets.len() == 1 {
                    "it does"
                } else {
                    "they do"
                },
            )
        }
        Warning::Coexists {
            how: Coexistence::OtherAddress,
            sockets,
        } => format!(
            "{} on port {port} {} other addresses: no conflict; each gets only the traffic \
             sent to its own address",
            plural(sockets.len(), "a socket", "sockets"),
            if sockets.len() == 1 {
                "holds it on"
            } else {
                "hold it on"
            }
        ),
        Warning::Coexists {
            how: Coexistence::SharesPort,
            sockets,
        } => format!(
            "{} on port {port} share{} it with your socket thanks to the options set \
             (SO_REUSEADDR over TIME_WAIT, an SO_REUSEPORT group, or UDP with SO_REUSEADDR \
             on both); without them the bind would fail",
            plural(sockets.len(), "a socket", "sockets"),
            if sockets.len() == 1 { "s" } else { "" }
        ),
        Warning::OtherNamespaces { sockets } => {
            let mut namespaces: Vec<Option<u64>> = sockets.iter().map(|s| s.netns.inode).collect();
            namespaces.sort_unstable();
            namespaces.dedup();
            format!(
                "port {port} is also in use in {}; {} not conflict: each network namespace has \
                 its own ports",
                plural(
                    namespaces.len(),
                    "another network namespace",
                    "other network namespaces"
                ),
                if namespaces.len() == 1 {
                    "it does"
                } else {
                    "they do"
                }
            )
        }
    }
}

/// The command line that a warning suggests, where there is one.
pub fn warning_command(warning: &Warning) -> Option<String> {
    match warning {
        Warning::Ephemeral { reserved_ports, .. } => Some(format!(
            "sysctl -w net.ipv4.ip_local_reserved_ports={reserved_ports}"
        )),
        _ => None,
    }
}

fn plural_word<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// The local ends of some sockets, each once, with what a wildcard
/// takes: `*:8080 (every IPv4 address)`.
fn where_words(rows: &[Row]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for row in rows {
        let mut text = display_endpoint(&row.socket.local);
        if let Some(covers) = coverage_words(&row.socket) {
            text.push_str(&format!(" ({covers})"));
        }
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{n} {many}")
    }
}

/// The whole answer for people.
pub fn text(report: &WhyReport) -> String {
    let mut out = verdict(report);
    out.push('\n');
    let label = |netns: &NetnsLabel| namespace_text(netns);
    if !report.causes.is_empty() {
        out.push_str("\nWhy:\n");
        for cause in &report.causes {
            out.push_str(&format!("  {}.\n", explanation(report, cause)));
            push_sockets(&mut out, cause.sockets.iter().map(|r| (r, None)));
        }
    }
    if !report.fixes.is_empty() {
        out.push_str("\nWhat to do:\n");
        let last = report.fixes.len() - 1;
        for (i, fix) in report.fixes.iter().enumerate() {
            let or = if i == last && i > 0 { "or " } else { "" };
            out.push_str(&format!("  - {or}{}", fix_text(report, fix)));
            match fix_command(report, fix) {
                Some(command) if !matches!(fix, Fix::StopProcess { .. }) => {
                    out.push_str(&format!(": {command}\n"))
                }
                _ => out.push('\n'),
            }
        }
    }
    if !report.warnings.is_empty() {
        out.push_str(if report.would_succeed() {
            "\nBut note:\n"
        } else {
            "\nAlso:\n"
        });
        for warning in &report.warnings {
            out.push_str(&format!("  - {}", warning_text(report, warning)));
            match warning_command(warning) {
                Some(command) => out.push_str(&format!(". Reserve it: {command}\n")),
                None => out.push_str(".\n"),
            }
            match warning {
                Warning::Coexists { sockets, .. } => {
                    push_sockets(&mut out, sockets.iter().map(|r| (r, None)))
                }
                Warning::OtherNamespaces { sockets } => push_sockets(
                    &mut out,
                    sockets.iter().map(|s| (&s.row, Some(label(&s.netns)))),
                ),
                _ => {}
            }
        }
    }
    out
}

fn namespace_text(netns: &NetnsLabel) -> String {
    let mut text = match netns.inode {
        Some(inode) => format!("net:[{inode}]"),
        None => "netns".to_string(),
    };
    if let Some(name) = &netns.name {
        text.push_str(&format!(" {}", escape_str(name)));
    }
    if let Some(container) = &netns.container {
        let name = container.name.as_deref().unwrap_or(&container.id);
        text.push_str(&format!(" ({} {})", container.runtime, escape_str(name)));
    }
    text
}

fn push_sockets<'a>(out: &mut String, rows: impl Iterator<Item = (&'a Row, Option<String>)>) {
    let rows: Vec<(&Row, Option<String>)> = rows.collect();
    for (row, netns) in rows.iter().take(SHOWN_PER_GROUP) {
        out.push_str("      ");
        if let Some(netns) = netns {
            out.push_str(&format!("{netns}: "));
        }
        out.push_str(&socket_line(row));
        out.push('\n');
    }
    if rows.len() > SHOWN_PER_GROUP {
        out.push_str(&format!(
            "      ... and {} more\n",
            rows.len() - SHOWN_PER_GROUP
        ));
    }
}

/// One socket: `tcp LISTEN *:8080 (every IPv4 address), uid 0, held by
/// python3 (pid 4242, fd 3)`.
fn socket_line(row: &Row) -> String {
    let s = &row.socket;
    let mut line = format!(
        "{} {} {}",
        proto_name(s),
        state_name(s),
        display_endpoint(&s.local)
    );
    if s.remote.port != 0 {
        line.push_str(&format!(" -> {}", display_endpoint(&s.remote)));
    } else if let Some(covers) = coverage_words(s) {
        line.push_str(&format!(" ({covers})"));
    }
    if row.role == Role::Outgoing {
        line.push_str(", outgoing");
    }
    line.push_str(&format!(", uid {}", s.uid));
    if let Some(ms) = s.timer_ms.filter(|_| s.state == State::TimeWait) {
        line.push_str(&format!(", {} s left", ms.div_ceil(1000)));
    }
    if !row.holders.is_empty() {
        let holders: Vec<String> = row
            .holders
            .iter()
            .map(|h| format!("{} (pid {}, fd {})", escape_bytes(h.command()), h.pid, h.fd))
            .collect();
        line.push_str(&format!(", held by {}", holders.join(", ")));
    } else if row.holders_hidden {
        line.push_str(", its holder is hidden from this user");
    } else if s.inode == 0 {
        line.push_str(", no process holds it");
    }
    line
}

fn display_endpoint(endpoint: &Endpoint) -> String {
    endpoint.to_string()
}

fn proto_name(s: &Socket) -> String {
    let mut name = s.protocol.name().to_string();
    if s.family == Family::Inet6 {
        name.push('6');
    }
    name
}

fn state_name(s: &Socket) -> String {
    if s.protocol == Protocol::Udp && s.state == State::Close {
        "UNCONN".to_string()
    } else {
        s.state.kernel_name()
    }
}

/// What addresses a listening or bound socket takes, in words.
fn coverage_words(s: &Socket) -> Option<&'static str> {
    match s.local.address {
        IpAddr::V4(a) if a.is_unspecified() => Some("every IPv4 address"),
        IpAddr::V6(a) if a.is_unspecified() => Some(if s.v6only == Some(true) {
            "every IPv6 address, IPV6_V6ONLY"
        } else {
            "every IPv6 and IPv4 address"
        }),
        _ => None,
    }
}

/// `lsport why --json`.
pub fn write_json(report: &WhyReport, sink: &mut dyn io::Write) -> io::Result<()> {
    write_document(&Document::of(report), sink)
}

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    verdict: &'static str,
    message: String,
    bind: BindView<'a>,
    uid: u32,
    failed_at: Option<&'static str>,
    errno: Option<i32>,
    error: Option<String>,
    netns: NetnsView<'a>,
    policy: Option<PolicyView>,
    source: Option<&'static str>,
    causes: Vec<CauseView<'a>>,
    fixes: Vec<FixView>,
    warnings: Vec<WarningView<'a>>,
    hidden_holders: usize,
}

#[derive(Serialize)]
struct BindView<'a> {
    protocol: &'static str,
    family: &'static str,
    address: IpAddr,
    port: u16,
    reuseaddr: bool,
    reuseport: bool,
    v6only: Option<bool>,
    as_user: Option<UserView<'a>>,
}

#[derive(Serialize)]
struct UserView<'a> {
    uid: u32,
    gid: u32,
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct PolicyView {
    ephemeral_range: [u16; 2],
    reserved_ports: Vec<[u16; 2]>,
    unprivileged_port_start: u32,
}

#[derive(Serialize)]
struct CauseView<'a> {
    rule: &'static str,
    certain: bool,
    explanation: String,
    sockets: Vec<SocketEntry<'a>>,
}

#[derive(Serialize)]
struct FixView {
    kind: &'static str,
    text: String,
    command: Option<String>,
    pids: Vec<u32>,
    seconds: Option<u32>,
    verified: bool,
}

#[derive(Serialize)]
struct WarningView<'a> {
    kind: &'static str,
    text: String,
    command: Option<String>,
    sockets: Vec<SocketEntry<'a>>,
}

impl<'a> Document<'a> {
    fn of(report: &'a WhyReport) -> Document<'a> {
        let here = &report.netns;
        Document {
            schema_version: SCHEMA_VERSION,
            verdict: if report.would_succeed() {
                "succeed"
            } else {
                "fail"
            },
            message: verdict(report),
            bind: BindView::of(&report.bind, report),
            uid: report.uid,
            failed_at: report.outcome.failure.map(|(stage, _)| stage.name()),
            errno: report.outcome.errno(),
            error: report
                .outcome
                .errno()
                .map(|e| format!("{:?}", nix::errno::Errno::from_raw(e))),
            netns: NetnsView::of(here),
            policy: report.policy.as_ref().map(|p| PolicyView {
                ephemeral_range: [p.ephemeral.value.lo, p.ephemeral.value.hi],
                reserved_ports: p.reserved.value.iter().map(|r| [r.lo, r.hi]).collect(),
                unprivileged_port_start: p.unprivileged_start.value,
            }),
            source: report.source.map(|s| s.name()),
            causes: report
                .causes
                .iter()
                .map(|cause| CauseView {
                    rule: cause.reason.name(),
                    certain: cause.certainty == Certainty::Certain,
                    explanation: explanation(report, cause),
                    sockets: cause
                        .sockets
                        .iter()
                        .map(|r| SocketEntry::of(r, here))
                        .collect(),
                })
                .collect(),
            fixes: report
                .fixes
                .iter()
                .map(|fix| FixView {
                    kind: fix.name(),
                    text: fix_text(report, fix),
                    command: fix_command(report, fix),
                    pids: match fix {
                        Fix::StopProcess { pid, .. } => vec![*pid],
                        _ => Vec::new(),
                    },
                    seconds: match fix {
                        Fix::WaitTimeWait { seconds } => *seconds,
                        _ => None,
                    },
                    verified: fix.verified(),
                })
                .collect(),
            warnings: report
                .warnings
                .iter()
                .map(|warning| WarningView {
                    kind: warning.name(),
                    text: warning_text(report, warning),
                    command: warning_command(warning),
                    sockets: match warning {
                        Warning::Coexists { sockets, .. } => {
                            sockets.iter().map(|r| SocketEntry::of(r, here)).collect()
                        }
                        Warning::OtherNamespaces { sockets } => sockets
                            .iter()
                            .map(|s| SocketEntry::of(&s.row, &s.netns))
                            .collect(),
                        _ => Vec::new(),
                    },
                })
                .collect(),
            hidden_holders: report.hidden_holders,
        }
    }
}

impl<'a> BindView<'a> {
    fn of(spec: &BindSpec, report: &'a WhyReport) -> BindView<'a> {
        BindView {
            protocol: spec.protocol.name(),
            family: crate::commands::why::rules::family_of(spec.address).name(),
            address: spec.address,
            port: spec.port,
            reuseaddr: spec.reuseaddr,
            reuseport: spec.reuseport,
            v6only: report.outcome.v6only.or(spec.v6only),
            as_user: report.as_user.as_ref().map(|u| UserView {
                uid: u.uid,
                gid: u.gid,
                name: u.name.as_deref(),
            }),
        }
    }
}
