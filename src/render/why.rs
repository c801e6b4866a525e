//! `lsport why` in words: the verdict line, each cause with its rule in
//! plain words and its sockets, the fixes with how each was checked, the
//! warnings; and the same as one JSON document. The words are written
//! here once: the JSON carries them too, beside stable names.

use std::io;
use std::net::IpAddr;

use serde::Serialize;

use crate::commands::why::{
    Action, BindSpec, Cause, Certainty, Check, Coexistence, Fix, InTheWay, Reason, Rule, Side,
    Skipped, Stage, StopTarget, Verdict, Warning, WhyReport, fixes,
};
use crate::forwards::Hook;
use crate::netns::NetnsLabel;
use crate::render::columns::{protocol_label, socket_state_label};
use crate::render::escape::{escape_bytes, escape_str};
use crate::render::forwards;
use crate::render::json::{ContainerView, NetnsView, SCHEMA_VERSION, SocketEntry, write_document};
use crate::report::{Role, Row};
use crate::socket::{Endpoint, Protocol, Socket, State};

/// How many sockets of one cause or warning the text lists.
const SHOWN_PER_GROUP: usize = 5;

/// Where a verdict comes from when the trial stopped short.
const NOT_TRIED_LISTEN: &str = "not tried, as the socket would join the SO_REUSEPORT group of the \
     live listeners below and take some of their connections";
const NOT_TRIED_BIND: &str =
    "not tried, as the socket would take datagrams meant for the live sockets below";

/// The verdict, as in `bind(0.0.0.0:8080, tcp, SO_REUSEADDR) would
/// FAIL: address already in use (EADDRINUSE)`.
pub fn verdict(report: &WhyReport) -> String {
    let call = format!(
        "bind({}, {}{})",
        bind_address(&report.bind),
        report.bind.protocol.name(),
        options_text(report)
    );
    let tcp = report.bind.protocol == Protocol::Tcp;
    let skipped = report.outcome.skipped.as_ref();
    match (report.verdict, skipped) {
        (Verdict::Succeed, Some(Skipped::Listen { .. })) => format!(
            "{call} would succeed, and listen() too by the kernel's rules ({NOT_TRIED_LISTEN})"
        ),
        (Verdict::Succeed, Some(Skipped::Bind { .. })) => {
            format!("{call} would succeed by the kernel's rules ({NOT_TRIED_BIND})")
        }
        (Verdict::Succeed, None) if tcp => format!("{call} and listen() would succeed"),
        (Verdict::Succeed, None) => format!("{call} would succeed"),
        (Verdict::Unknown, _) => format!(
            "{call} would succeed only if the live sockets below set {}, which lsport could \
             not read; else it would FAIL: address already in use (EADDRINUSE) ({NOT_TRIED_BIND})",
            sharing_options(&report.bind)
        ),
        (Verdict::Fail { stage, errno }, Some(Skipped::Bind { .. })) => {
            if errno == libc::EADDRINUSE {
                format!(
                    "{call} would FAIL: {}, by the kernel's rules ({NOT_TRIED_BIND})",
                    errno_text(errno)
                )
            } else {
                format!(
                    "{call} would FAIL at {}(): {} (tried with a TCP socket bound to the same \
                     address and port, which takes no datagrams: the kernel checks the address \
                     and the privilege alike for both)",
                    stage.name(),
                    errno_text(errno)
                )
            }
        }
        (
            Verdict::Fail {
                stage: Stage::Listen,
                errno,
            },
            _,
        ) => {
            format!(
                "{call} would succeed, but listen() would FAIL: {}",
                errno_text(errno)
            )
        }
        (
            Verdict::Fail {
                stage: Stage::Bind,
                errno,
            },
            _,
        ) => format!("{call} would FAIL: {}", errno_text(errno)),
        (Verdict::Fail { stage, errno }, _) => format!(
            "{call} would FAIL at {}(): {}",
            stage.name(),
            errno_text(errno)
        ),
    }
}

/// The options of a UDP bind that let it share a port.
fn sharing_options(spec: &BindSpec) -> &'static str {
    match (spec.reuseaddr, spec.reuseport) {
        (true, true) => "SO_REUSEADDR (or SO_REUSEPORT, as the same user)",
        (false, true) => "SO_REUSEPORT as the same user",
        _ => "SO_REUSEADDR",
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

/// The bind's address and port, with its interface: `[fe80::1%eth0]:80`.
fn bind_address(spec: &BindSpec) -> String {
    match (&spec.scope, spec.address) {
        (Some(scope), IpAddr::V6(a)) => {
            format!("[{a}%{}]:{}", escape_str(&scope.to_string()), spec.port)
        }
        _ => address_port(spec.address, spec.port),
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

/// `net.ipv4.ip_nonlocal_bind` or `net.ipv6.ip_nonlocal_bind`.
fn nonlocal_bind_sysctl(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "net.ipv4.ip_nonlocal_bind",
        IpAddr::V6(_) => "net.ipv6.ip_nonlocal_bind",
    }
}

fn list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn escaped_list(names: &[String]) -> String {
    list(&names.iter().map(|n| escape_str(n)).collect::<Vec<_>>())
}

/// The rule behind a cause, in plain words.
pub fn explanation(report: &WhyReport, cause: &Cause) -> String {
    let spec = &report.bind;
    let port = spec.port;
    let rows: Vec<&Row> = cause.sockets.iter().map(|w| &w.row).collect();
    let mut text = match &cause.reason {
        Reason::Rule(Rule::Listener) => format!(
            "{} {} {}: while a socket listens, another may bind an address it takes only \
             if both set SO_REUSEPORT as the same user",
            plural_word(rows.len(), "the listener on", "the listeners on"),
            where_words(&rows),
            if rows.len() == 1 {
                format!("takes {}", address_port(spec.address, port))
            } else {
                format!("take {}", address_port(spec.address, port))
            }
        ),
        Reason::Rule(Rule::ReuseportOtherUser) => {
            let mut uids: Vec<String> = rows.iter().map(|r| r.socket.uid.to_string()).collect();
            uids.sort();
            uids.dedup();
            format!(
                "the listeners on port {port} form an SO_REUSEPORT group of uid {} (a trial as \
                 that user joined it), and a group admits only sockets of its own user: the \
                 bind ran as uid {}",
                uids.join(", "),
                report.uid
            )
        }
        Reason::Rule(rule @ (Rule::TimeWait | Rule::TimeWaitWithoutReuse)) => {
            let orphans = rows.iter().any(|r| r.socket.is_orphaned());
            let what = if orphans {
                "TIME_WAIT, or a connection its program closed that the kernel still finishes \
                 (FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK),"
            } else {
                "TIME_WAIT"
            };
            if *rule == Rule::TimeWait {
                format!(
                    "{what} blocks binds without SO_REUSEADDR: a closed connection keeps its \
                     port for a while (60 s on Linux) so that its late packets are not taken \
                     for a new connection's"
                )
            } else {
                format!(
                    "{what} left by a socket that did not set SO_REUSEADDR blocks even binds \
                     that set it"
                )
            }
        }
        Reason::Rule(Rule::BoundOnly) => "a socket that is only bound (bind() without listen() \
             or connect()) holds the port as firmly as a listener unless both sockets set \
             SO_REUSEADDR; ss -l and /proc/net/tcp do not show it"
            .to_string(),
        Reason::Rule(Rule::Connection) => connection_words(cause, port),
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
             namespace's own addresses (or any, with IP_FREEBIND or {}=1)",
            spec.address,
            nonlocal_bind_sysctl(spec.address)
        ),
        Reason::AddressTentative { interface } => format!(
            "{} is an address of {}, but duplicate address detection is still running on it \
             (it is tentative): the kernel lets no socket bind it until that ends, unless the \
             socket sets IP_FREEBIND or {}=1",
            spec.address,
            escape_str(interface),
            nonlocal_bind_sysctl(spec.address)
        ),
        Reason::AddressDuplicate { interface } => format!(
            "{} is an address of {}, but duplicate address detection found another host on \
             the link with it (dadfailed): the kernel keeps it unusable until it is removed \
             and added again",
            spec.address,
            escape_str(interface)
        ),
        Reason::AddressOnOtherInterface { interfaces } => format!(
            "{} is a link-local address of {}, not of {}: each interface has its own \
             link-local addresses",
            spec.address,
            escaped_list(interfaces),
            spec.scope
                .as_ref()
                .map_or_else(String::new, |s| escape_str(&s.to_string()))
        ),
        Reason::ScopeMissing { interfaces } => {
            let example = interfaces
                .first()
                .map_or("eth0".to_string(), |i| escape_str(i));
            let whose = if interfaces.is_empty() {
                "no interface of this namespace has it".to_string()
            } else {
                format!("it is on {}", escaped_list(interfaces))
            };
            format!(
                "{} is a link-local address, which every interface may have: a bind needs its \
                 interface too, and the scope id is missing (as [{}%{example}]:{port}); {whose}",
                spec.address, spec.address
            )
        }
        Reason::NoSuchInterface => format!(
            "there is no interface {} in this network namespace",
            spec.scope
                .as_ref()
                .map_or_else(String::new, |s| escape_str(&s.to_string()))
        ),
        Reason::Unseen => {
            let why = if report.source == Some(crate::source::SourceKind::Proc) {
                "/proc/net, which answered here, does not list TCP sockets that are only bound"
            } else {
                "a socket may have closed in between, or be bound to a network device"
            };
            format!("no socket lsport can see on port {port} explains it ({why})")
        }
        Reason::Errno => match report.verdict.failure() {
            Some((stage, errno)) => format!(
                "the kernel refused {}(): {}",
                stage.name(),
                errno_text(errno)
            ),
            None => String::new(),
        },
    };
    if cause.certainty == Certainty::Possible && matches!(cause.reason, Reason::Rule(_)) {
        text.push_str(&format!(" ({})", possibly_words(report, cause)));
    }
    text
}

/// What a possible cause turns on: the options lsport could not read.
fn possibly_words(report: &WhyReport, cause: &Cause) -> String {
    let spec = &report.bind;
    let listening = cause
        .sockets
        .iter()
        .any(|w| w.row.socket.protocol == Protocol::Tcp && w.row.socket.state == State::Listen);
    let mut options = Vec::new();
    if spec.reuseaddr && !listening {
        options.push("SO_REUSEADDR");
    }
    if spec.reuseport {
        options.push("SO_REUSEPORT");
    }
    let options = options.join(" or ");
    let why = if listening {
        "lsport does not read a listener's options, and a trial on its own address could not \
         tell"
    } else if cause.sockets.iter().all(|w| w.row.socket.inode == 0) {
        "no process holds it to ask"
    } else {
        "lsport could not read them from its holder"
    };
    format!("possibly: only if it did not set {options}; {why}")
}

fn connection_words(cause: &Cause, port: u16) -> String {
    let sides: Vec<Option<Side>> = cause.sockets.iter().map(|w| w.side).collect();
    let all = |wanted: fn(Option<Side>) -> bool| sides.iter().all(|s| wanted(*s));
    let blocks = "holds the port until it closes, and blocks binds unless both set SO_REUSEADDR";
    if all(|s| {
        matches!(
            s,
            Some(Side::Outgoing {
                kernel_chose_port: Some(false)
            })
        )
    }) {
        format!("a client bound port {port} on purpose for its outgoing connection, which {blocks}")
    } else if all(|s| matches!(s, Some(Side::Outgoing { .. }))) {
        format!("an outgoing connection took port {port} as its source port: its socket {blocks}")
    } else if all(|s| s == Some(Side::Accepted)) {
        format!("a connection accepted on port {port} {blocks}")
    } else {
        format!(
            "a connection has port {port} as its local port: the kernel does not record whether \
             a client's connect() took the port or a listener since gone accepted it; either \
             way its socket {blocks}"
        )
    }
}

/// What to do, in words, with how it was checked.
pub fn fix_text(report: &WhyReport, fix: &Fix) -> String {
    let mut text = action_text(report, &fix.action);
    text.push_str(&format!(" ({})", check_words(fix)));
    text
}

fn check_words(fix: &Fix) -> String {
    let tried = match &fix.action {
        Action::BindSpecificAddress { .. } => "the kernel accepts this bind on those addresses",
        Action::RunAsGroupOwner { .. } => "the kernel accepts this bind as that user",
        Action::AllowPrivilegedPort => {
            "with CAP_NET_BIND_SERVICE the kernel accepts this bind as that user"
        }
        Action::GiveScope { .. } => "the kernel accepts this bind with that interface",
        Action::PickAnotherPort { .. } => "the kernel accepts this bind there",
        _ => "the kernel then accepts this bind",
    };
    match fix.check {
        Check::Tried => format!("tried: {tried}"),
        Check::Rules if changes_world(&fix.action) => {
            "not tried; by the kernel's rules nothing else lsport sees stands in the way after it"
                .to_string()
        }
        // Only a UDP bind beside live sockets is left to the rules.
        Check::Rules => "by the kernel's rules the bind then succeeds: not tried, as the \
             socket would take datagrams meant for the live sockets"
            .to_string(),
        Check::Unverified => "not tried".to_string(),
    }
}

/// Whether a fix changes something a trial cannot (processes, time,
/// sysctls) rather than the bind.
fn changes_world(action: &Action) -> bool {
    matches!(
        action,
        Action::Stop { .. } | Action::WaitTimeWait { .. } | Action::ReservePort { .. }
    )
}

fn action_text(report: &WhyReport, action: &Action) -> String {
    let spec = &report.bind;
    let port = spec.port;
    match action {
        Action::Stop {
            targets,
            time_wait_after,
            leaves,
        } => {
            let (refused, stoppable): (Vec<&StopTarget>, Vec<&StopTarget>) = targets
                .iter()
                .partition(|t| matches!(t, StopTarget::Refused { .. }));
            let whom: Vec<String> = stoppable.into_iter().map(target_text).collect();
            let mut parts = Vec::new();
            if !whom.is_empty() {
                parts.push(format!("stop {}", list(&whom)));
            }
            parts.extend(refused.into_iter().map(target_text));
            let mut text = parts.join("; ");
            if let Some(certainty) = time_wait_after {
                text.push_str(&time_wait_after_words(spec, *certainty));
            }
            if !leaves.is_empty() {
                text.push_str(&format!("; {}", leaves_words(leaves)));
            }
            text
        }
        Action::WaitTimeWait {
            seconds,
            orphans,
            leaves,
        } => {
            let mut text = match seconds {
                Some(s) => format!("wait {s} s for TIME_WAIT to end"),
                None => "wait for TIME_WAIT to end (at most 60 s)".to_string(),
            };
            if *orphans {
                text.push_str(
                    ", and for the kernel to finish the connections their programs closed \
                     (FIN_WAIT2 ends after net.ipv4.tcp_fin_timeout; a peer that does not \
                     answer takes as long as the retransmissions)",
                );
            }
            if !leaves.is_empty() {
                text.push_str(&format!("; {}", leaves_words(leaves)));
            }
            text
        }
        Action::SetReuseaddr => "set SO_REUSEADDR before bind()".to_string(),
        Action::SetV6only => "set IPV6_V6ONLY, so that the socket takes IPv6 only".to_string(),
        Action::SetReuseport => "set SO_REUSEPORT too, so that the socket joins the \
             SO_REUSEPORT group in the way: the kernel then spreads connections or datagrams \
             over every member, yours included"
            .to_string(),
        Action::BindSpecificAddress { addresses } => {
            let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            format!(
                "bind {} instead of the wildcard, as the sockets in the way hold only other \
                 addresses",
                if addresses.len() == 1 {
                    addresses[0].clone()
                } else {
                    format!("one of {}", list(&addresses))
                }
            )
        }
        Action::ReservePort { .. } => format!(
            "reserve port {port} so that connect() stops taking it, then restart the client \
             that holds it; its closed connection keeps the port in TIME_WAIT for up to 60 s, \
             and the bind waits that long"
        ),
        Action::RunAsGroupOwner { uids } => {
            let uids: Vec<String> = uids.iter().map(ToString::to_string).collect();
            format!(
                "run the server as uid {}, the owner of the SO_REUSEPORT group",
                uids.join(" or ")
            )
        }
        Action::AllowPrivilegedPort => format!(
            "give it CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep PROGRAM, or \
             AmbientCapabilities= in a systemd unit), or lower ip_unprivileged_port_start to \
             {port}, which the kernel treats alike"
        ),
        Action::BindWildcard { address } => {
            format!("bind the wildcard {address} instead, which takes every address")
        }
        Action::SetFreebind => format!(
            "set IP_FREEBIND before bind() (or {}=1 for the whole namespace), so that a socket \
             may bind an address the namespace does not have yet",
            nonlocal_bind_sysctl(spec.address)
        ),
        Action::GiveScope { interfaces } => {
            let forms: Vec<String> = interfaces
                .iter()
                .map(|i| format!("[{}%{}]:{port}", spec.address, escape_str(i)))
                .collect();
            format!(
                "give the interface: {}",
                list(&forms).replace(" and ", " or ")
            )
        }
        Action::WaitForDad { interface } => format!(
            "wait until duplicate address detection on {} ends (a second or so by default: \
             dad_transmits times retrans_time_ms)",
            escape_str(interface)
        ),
        Action::PickAnotherPort { port } => format!("pick another port, such as {port}"),
    }
}

fn target_text(target: &StopTarget) -> String {
    match target {
        StopTarget::Supervisor {
            container, pids, ..
        } => {
            let what = match container.runtime {
                "systemd" => format!("the unit {}", escape_str(&container.id)),
                runtime => format!(
                    "the {runtime} container {}",
                    escape_str(
                        container
                            .name
                            .as_deref()
                            .unwrap_or(&short_id(&container.id))
                    )
                ),
            };
            let pids: Vec<String> = pids.iter().map(ToString::to_string).collect();
            format!(
                "{what}, which runs the {} that {} the sockets in the way ({} {}), and with \
                 it every other process it runs",
                plural_word(pids.len(), "process", "processes"),
                plural_word(pids.len(), "holds", "hold"),
                plural_word(pids.len(), "pid", "pids"),
                pids.join(", ")
            )
        }
        StopTarget::Process {
            pid,
            command,
            workers,
        } => {
            let mut text = format!("{} (pid {pid})", escape_bytes(command));
            if !workers.is_empty() {
                let workers: Vec<String> = workers.iter().map(ToString::to_string).collect();
                text.push_str(&format!(
                    ", whose {} ({} {}) {} the port too: a server's master stops its workers \
                     with it, but stop any that outlive it",
                    plural_word(workers.len(), "worker", "workers"),
                    plural_word(workers.len(), "pid", "pids"),
                    workers.join(", "),
                    plural_word(workers.len(), "holds", "hold"),
                ));
            }
            text
        }
        StopTarget::Hidden { uid } => {
            format!("the process of uid {uid} that holds it (run lsport as root to see which)")
        }
        StopTarget::Refused {
            pid,
            command,
            refusal,
        } => {
            let mut text = format!(
                "{} (pid {pid}) holds a socket in the way, and is {}, which lsport would not stop",
                escape_bytes(command),
                refusal.describe()
            );
            if *refusal == crate::holders::process::Refusal::InitOfNamespace {
                text.push_str(
                    ": if it holds the port for a systemd socket unit, stop that unit \
                     (systemctl list-sockets shows which)",
                );
            }
            text
        }
    }
}

fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

fn time_wait_after_words(spec: &BindSpec, certainty: Certainty) -> String {
    let then = "; its connections on the port then close from this end and stay in TIME_WAIT";
    match certainty {
        Certainty::Certain if spec.reuseaddr => format!(
            "{then}, which blocks the bind for up to 60 s, as their sockets did not set \
             SO_REUSEADDR"
        ),
        Certainty::Certain => {
            format!("{then}, which blocks the bind for up to 60 s unless it sets SO_REUSEADDR")
        }
        Certainty::Possible => format!(
            "{then}, which blocks the bind for up to 60 s if their sockets did not set \
             SO_REUSEADDR (lsport could not read them)"
        ),
    }
}

/// What stays in the way after a fix: `a socket the kernel is closing
/// (TIME_WAIT) stays in the way`.
fn leaves_words(leaves: &[Row]) -> String {
    let count = |keep: &dyn Fn(&Row) -> bool| leaves.iter().filter(|r| keep(r)).count();
    let ending = count(&|r| r.socket.ends_by_itself());
    let held =
        count(&|r| !r.socket.ends_by_itself() && (!r.holders.is_empty() || r.holders_hidden));
    let unheld = leaves.len() - ending - held;
    let mut parts = Vec::new();
    if ending > 0 {
        parts.push(format!(
            "{} the kernel is closing (TIME_WAIT)",
            plural(ending, "a socket", "sockets")
        ));
    }
    if held > 0 {
        parts.push(format!(
            "{} held by other processes",
            plural(held, "a socket", "sockets")
        ));
    }
    if unheld > 0 {
        parts.push(format!(
            "{} no process lsport sees holds",
            plural(unheld, "a socket", "sockets")
        ));
    }
    format!(
        "{} {} in the way",
        list(&parts),
        if leaves.len() == 1 { "stays" } else { "stay" }
    )
}

/// The command line that applies a fix, where there is one.
pub fn fix_command(report: &WhyReport, fix: &Fix) -> Option<String> {
    let port = report.bind.port;
    match &fix.action {
        Action::Stop { targets, .. } => {
            let supervisors: Vec<String> = targets
                .iter()
                .filter(|t| matches!(t, StopTarget::Supervisor { .. }))
                .filter_map(fixes::stop_command)
                .collect();
            if !supervisors.is_empty() {
                return Some(supervisors.join("; "));
            }
            let pids: Vec<String> = stop_pids(targets).iter().map(ToString::to_string).collect();
            (!pids.is_empty()).then(|| format!("kill {}", pids.join(" ")))
        }
        Action::ReservePort { reserved_ports } => Some(format!(
            "sysctl -w net.ipv4.ip_local_reserved_ports={reserved_ports}"
        )),
        Action::AllowPrivilegedPort => Some(format!(
            "sysctl -w net.ipv4.ip_unprivileged_port_start={port}"
        )),
        Action::PickAnotherPort { .. } => Some(format!("lsport suggest --near {port}")),
        _ => None,
    }
}

/// The processes a stop signals: each lone holder or master; for a
/// supervisor, its processes.
fn stop_pids(targets: &[StopTarget]) -> Vec<u32> {
    targets
        .iter()
        .flat_map(|t| match t {
            StopTarget::Supervisor { pids, .. } => pids.clone(),
            StopTarget::Process { pid, .. } => vec![*pid],
            StopTarget::Hidden { .. } | StopTarget::Refused { .. } => Vec::new(),
        })
        .collect()
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
             (SO_REUSEADDR over TIME_WAIT or a socket that is only bound), and take{} no \
             traffic from it; without them the bind would fail",
            plural(sockets.len(), "a socket", "sockets"),
            if sockets.len() == 1 { "s" } else { "" },
            if sockets.len() == 1 { "s" } else { "" }
        ),
        Warning::Coexists {
            how: Coexistence::JoinsGroup,
            sockets,
        } => {
            let tcp = report.bind.protocol == Protocol::Tcp;
            format!(
                "{} on port {port} {} an SO_REUSEPORT group that your socket would join: the \
                 kernel then spreads {} over every member, yours included, so your server \
                 would take a share of what {} get now",
                plural(
                    sockets.len(),
                    if tcp { "a listener" } else { "a UDP socket" },
                    if tcp { "listeners" } else { "UDP sockets" }
                ),
                if sockets.len() == 1 { "is" } else { "form" },
                if tcp {
                    "new connections"
                } else {
                    "datagrams (by their addresses and ports)"
                },
                if sockets.len() == 1 { "it" } else { "they" }
            )
        }
        Warning::Coexists {
            how: Coexistence::TakesDatagrams,
            sockets,
        } => format!(
            "{} on port {port} would share it with yours through SO_REUSEADDR: the kernel \
             delivers each unicast datagram to one socket only, so your server would take \
             datagrams meant for {} (broadcast and multicast go to both)",
            plural(sockets.len(), "a UDP socket", "UDP sockets"),
            if sockets.len() == 1 { "it" } else { "them" }
        ),
        Warning::Forwarded { forwards } => {
            let groups = forwards::by_rule(forwards);
            let rules: Vec<String> = groups
                .iter()
                .map(|group| {
                    format!(
                        "{} (to remove it: {})",
                        forwards::phrase(group, false),
                        escape_str(&group[0].place.delete_command())
                    )
                })
                .collect();
            let outside = forwards.iter().any(|f| f.hook() == Hook::Prerouting);
            format!(
                "port {port} is forwarded elsewhere: {}; the bind succeeds, but {} never \
                 reach the new server",
                rules.join("; "),
                if outside {
                    "connections from outside"
                } else {
                    "connections made on this host"
                }
            )
        }
        Warning::RulesNotRead { what } => format!(
            "port {port} may be forwarded elsewhere, as not every forwarding rule was read: {}",
            escape_str(&what.join("; "))
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
fn where_words(rows: &[&Row]) -> String {
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
            push_lines(&mut out, cause.sockets.iter().map(way_line));
        }
    }
    if !report.fixes.is_empty() {
        out.push_str("\nWhat to do:\n");
        let last = report.fixes.len() - 1;
        for (i, fix) in report.fixes.iter().enumerate() {
            let or = if i == last && i > 0 { "or " } else { "" };
            out.push_str(&format!("  - {or}{}", fix_text(report, fix)));
            match fix_command(report, fix) {
                Some(command) => out.push_str(&format!(": {command}\n")),
                None => out.push('\n'),
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
                    push_lines(&mut out, sockets.iter().map(|r| socket_line(r, None)))
                }
                Warning::OtherNamespaces { sockets } => push_lines(
                    &mut out,
                    sockets
                        .iter()
                        .map(|s| format!("{}: {}", label(&s.netns), socket_line(&s.row, None))),
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

fn push_lines(out: &mut String, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    for line in lines.iter().take(SHOWN_PER_GROUP) {
        out.push_str(&format!("      {line}\n"));
    }
    if lines.len() > SHOWN_PER_GROUP {
        out.push_str(&format!(
            "      ... and {} more\n",
            lines.len() - SHOWN_PER_GROUP
        ));
    }
}

fn way_line(way: &InTheWay) -> String {
    let mut line = socket_line(&way.row, way.side);
    let option = |name: &str, value: Option<bool>| {
        value.map(|on| format!(", {name} {}", if on { "set" } else { "not set" }))
    };
    line.extend(option("SO_REUSEADDR", way.known.reuseaddr));
    line.extend(option("SO_REUSEPORT", way.known.reuseport));
    line
}

/// One socket: `tcp LISTEN *:8080 (every IPv4 address), uid 0, held by
/// python3 (pid 4242, fd 3)`.
fn socket_line(row: &Row, side: Option<Side>) -> String {
    let s = &row.socket;
    let mut line = format!(
        "{} {} {}",
        protocol_label(s),
        socket_state_label(s),
        display_endpoint(&s.local)
    );
    if s.remote.port != 0 {
        line.push_str(&format!(" -> {}", display_endpoint(&s.remote)));
    } else if let Some(covers) = coverage_words(s) {
        line.push_str(&format!(" ({covers})"));
    }
    match side {
        Some(Side::Accepted) => line.push_str(", accepted"),
        Some(Side::Outgoing { .. }) => line.push_str(", outgoing"),
        Some(Side::Unknown) => line.push_str(", accepted or outgoing"),
        None if row.role == Role::Outgoing => line.push_str(", outgoing"),
        None => {}
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
    decided_by: &'static str,
    not_tried: Option<&'static str>,
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
    fixes: Vec<FixView<'a>>,
    warnings: Vec<WarningView<'a>>,
    hidden_holders: usize,
}

#[derive(Serialize)]
struct BindView<'a> {
    protocol: &'static str,
    family: &'static str,
    address: IpAddr,
    interface: Option<String>,
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
    sockets: Vec<WaySocketView<'a>>,
}

/// A socket in the way: as in `lsport --json`, with what lsport knows
/// of its options and which end of a connection it is.
#[derive(Serialize)]
struct WaySocketView<'a> {
    #[serde(flatten)]
    socket: SocketEntry<'a>,
    reuseaddr: Option<bool>,
    reuseport: Option<bool>,
    side: Option<&'static str>,
}

#[derive(Serialize)]
struct FixView<'a> {
    kind: &'static str,
    text: String,
    command: Option<String>,
    pids: Vec<u32>,
    uids: Vec<u32>,
    supervisor: Option<ContainerView<'a>>,
    seconds: Option<u32>,
    port: Option<u16>,
    addresses: Vec<IpAddr>,
    interfaces: Vec<&'a str>,
    verified: bool,
    checked_by: &'static str,
}

#[derive(Serialize)]
struct WarningView<'a> {
    kind: &'static str,
    text: String,
    command: Option<String>,
    sockets: Vec<SocketEntry<'a>>,
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Accepted => "accepted",
        Side::Outgoing { .. } => "outgoing",
        Side::Unknown => "unknown",
    }
}

impl<'a> Document<'a> {
    fn of(report: &'a WhyReport) -> Document<'a> {
        let here = &report.netns;
        let failure = report.verdict.failure();
        let not_tried = match report.outcome.skipped {
            Some(Skipped::Listen { .. }) => Some("listen"),
            Some(Skipped::Bind { .. }) => Some("bind"),
            None => None,
        };
        // A UDP bind that was not made is decided by the rules, unless
        // the stand-in's own call failed (address, privilege).
        let by_rules = match report.outcome.skipped {
            Some(Skipped::Listen { .. }) => report.verdict == Verdict::Succeed,
            Some(Skipped::Bind { .. }) => report.outcome.failure.is_none(),
            None => false,
        };
        Document {
            schema_version: SCHEMA_VERSION,
            verdict: report.verdict.name(),
            decided_by: if by_rules { "rules" } else { "trial" },
            not_tried,
            message: verdict(report),
            bind: BindView::of(&report.bind, report),
            uid: report.uid,
            failed_at: failure.map(|(stage, _)| stage.name()),
            errno: failure.map(|(_, errno)| errno),
            error: failure.map(|(_, e)| format!("{:?}", nix::errno::Errno::from_raw(e))),
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
                        .map(|w| WaySocketView {
                            socket: SocketEntry::of(&w.row, here),
                            reuseaddr: w.known.reuseaddr,
                            reuseport: w.known.reuseport,
                            side: w.side.map(side_name),
                        })
                        .collect(),
                })
                .collect(),
            fixes: report
                .fixes
                .iter()
                .map(|fix| FixView::of(report, fix))
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

impl<'a> FixView<'a> {
    fn of(report: &'a WhyReport, fix: &'a Fix) -> FixView<'a> {
        let mut view = FixView {
            kind: fix.name(),
            text: fix_text(report, fix),
            command: fix_command(report, fix),
            pids: Vec::new(),
            uids: Vec::new(),
            supervisor: None,
            seconds: None,
            port: None,
            addresses: Vec::new(),
            interfaces: Vec::new(),
            verified: fix.verified(),
            checked_by: fix.check.name(),
        };
        match &fix.action {
            Action::Stop { targets, .. } => {
                view.pids = stop_pids(targets);
                for target in targets {
                    match target {
                        StopTarget::Supervisor { container, .. } => {
                            view.supervisor = Some(ContainerView::of(container));
                        }
                        StopTarget::Hidden { uid } => view.uids.push(*uid),
                        StopTarget::Process { .. } | StopTarget::Refused { .. } => {}
                    }
                }
            }
            Action::WaitTimeWait { seconds, .. } => view.seconds = *seconds,
            Action::RunAsGroupOwner { uids } => view.uids = uids.clone(),
            Action::BindSpecificAddress { addresses } => view.addresses = addresses.clone(),
            Action::BindWildcard { address } => view.addresses = vec![*address],
            Action::GiveScope { interfaces } => {
                view.interfaces = interfaces.iter().map(String::as_str).collect();
            }
            Action::PickAnotherPort { port } => view.port = Some(*port),
            _ => {}
        }
        view
    }
}

impl<'a> BindView<'a> {
    fn of(spec: &BindSpec, report: &'a WhyReport) -> BindView<'a> {
        BindView {
            protocol: spec.protocol.name(),
            family: crate::commands::why::rules::family_of(spec.address).name(),
            address: spec.address,
            interface: spec.scope.as_ref().map(ToString::to_string),
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
