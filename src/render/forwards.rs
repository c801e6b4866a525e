//! The words for forwarding rules: a forward in one phrase for a
//! verdict, in one line with all its conditions, and what could not be
//! read. Rule, chain and interface names come from the rules, which
//! anyone with CAP_NET_ADMIN may write: they are escaped.

use crate::forwards::proxy::Proxy;
use crate::forwards::{Forward, Hook, Unreadable};
use crate::render::escape::{escape_bytes, escape_str};
use crate::report::{ForwardTarget, Row};
use crate::socket::{PortRange, Protocol};
use std::net::IpAddr;

/// `tcp`, `udp` or `tcp/udp`.
pub fn protocols(forward: &Forward) -> String {
    let names: Vec<&str> = forward.protocols.iter().map(|p| p.name()).collect();
    names.join("/")
}

/// `8081`, `8000-8010, 9000`.
fn ports(ranges: &[PortRange]) -> String {
    let names: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// Whose traffic the forwards of one rule take, from every hook they
/// are reached from: `traffic arriving from outside and traffic
/// generated on this host`.
fn traffic(hooks: &[Hook]) -> String {
    let mut words: Vec<&str> = Vec::new();
    for hook in [Hook::Prerouting, Hook::Output] {
        if hooks.contains(&hook) {
            words.push(hook.traffic());
        }
    }
    words.join(" and ")
}

/// The forwards grouped by the rule that makes them (one rule reached
/// from prerouting and from output is one group), in order.
pub fn by_rule(forwards: &[Forward]) -> Vec<Vec<&Forward>> {
    let mut groups: Vec<Vec<&Forward>> = Vec::new();
    for forward in forwards {
        match groups
            .iter_mut()
            .find(|g| g[0].place.same_rule(&forward.place))
        {
            Some(group) => group.push(forward),
            None => groups.push(vec![forward]),
        }
    }
    groups
}

/// The rule's forward in one phrase, for a verdict: `tcp to
/// 172.17.0.2:80 by nat rule (table ip nat, chain DOCKER), for traffic
/// arriving from outside`. With `with_ports`, the ports it takes come
/// after the protocol (for a range asked).
pub fn phrase(group: &[&Forward], with_ports: bool) -> String {
    let first = group[0];
    let hooks: Vec<Hook> = group.iter().map(|f| f.hook()).collect();
    let ports = if with_ports {
        format!(" {}", self::ports(&first.ports))
    } else {
        String::new()
    };
    let mut text = format!(
        "{}{ports} to {} by nat rule (table {}, chain {}), for {}",
        protocols(first),
        first.target,
        escape_str(&first.place.table_name()),
        escape_str(first.place.chain()),
        traffic(&hooks)
    );
    if let Some(comment) = &first.comment {
        text.push_str(&format!(" (comment \"{}\")", escape_str(comment)));
    }
    text
}

/// One forward with every condition on it, for the lines under a
/// verdict: `tcp 8081 to 172.17.0.2:80: table ip nat, chain PREROUTING
/// -> DOCKER, rule handle 5; traffic arriving from outside, not
/// arriving on docker0, to an address of type LOCAL`.
pub fn line(forward: &Forward) -> String {
    let mut conditions: Vec<String> = vec![forward.hook().traffic().to_string()];
    conditions.extend(
        forward
            .interfaces
            .iter()
            .map(|i| escape_str(&i.to_string())),
    );
    conditions.extend(forward.destinations.iter().map(ToString::to_string));
    conditions.extend(forward.destination_types.iter().map(ToString::to_string));
    let families: Vec<&str> = forward
        .families
        .iter()
        .map(|f| match f {
            crate::socket::Family::Inet => "IPv4",
            crate::socket::Family::Inet6 => "IPv6",
        })
        .collect();
    conditions.push(families.join(" and "));
    let mut text = format!(
        "{} {} to {}: table {}, chain {}, {}; {}",
        protocols(forward),
        ports(&forward.ports),
        forward.target,
        escape_str(&forward.place.table_name()),
        escape_str(&forward.place.path()),
        forward.place.rule_name(),
        conditions.join(", ")
    );
    if !forward.unread_conditions.is_empty() {
        let unread: Vec<String> = forward
            .unread_conditions
            .iter()
            .map(|c| escape_str(c))
            .collect();
        text.push_str(&format!(
            "; and conditions lsport does not read ({}), so it may take only part of that traffic",
            unread.join(", ")
        ));
    }
    text
}

/// The one line for stderr when rules could not be read: which, why,
/// and what reads them.
pub fn unread_notice(unread: &[&Unreadable]) -> Option<String> {
    if unread.is_empty() {
        return None;
    }
    let reasons: Vec<String> = unread
        .iter()
        .map(|u| format!("{}: {}", u.source_name(), u.reason()))
        .collect();
    let root = if unread.iter().any(|u| u.refused()) {
        "; run as root (CAP_NET_ADMIN) to read them"
    } else {
        ""
    };
    Some(format!(
        "forwarding rules were not read ({}): a port without a socket may still be forwarded{root}",
        reasons.join("; ")
    ))
}

/// What a userland proxy holding a socket on `port` does with it, for
/// the holder's name: `docker-proxy forwarding to 172.17.0.2:80`. The
/// target comes from the proxy's command line: escaped.
pub fn proxy_words(proxy: &Proxy, port: u16) -> String {
    let target = proxy
        .forwards
        .iter()
        .find(|f| f.host_ports.contains(port))
        .or(proxy.forwards.first());
    match (target, &proxy.unsaid) {
        (Some(forward), _) => format!(
            "{} forwarding to {}",
            proxy.kind.name(),
            escape_str(&forward.target.to_string())
        ),
        (None, Some(unsaid)) => format!("{}; {}", proxy.kind.name(), escape_str(unsaid)),
        (None, None) => proxy.kind.name().to_string(),
    }
}

/// What listens on a forward target's ports in its namespace, one line
/// each: the sockets that take the traffic with their holders, or that
/// nothing does (the forwarded connections are refused there), or why
/// lsport could not look.
pub fn target_listener_lines(target: &ForwardTarget) -> Vec<String> {
    let mut lines = Vec::new();
    for listeners in &target.listeners {
        let names: Vec<&str> = listeners.protocols.iter().map(|p| p.name()).collect();
        let protocols = names.join("/");
        let ports = listeners.ports;
        let sockets = match &listeners.found {
            Err(message) => {
                lines.push(format!(
                    "{protocols} port {ports} there was not looked at: {}",
                    escape_str(message)
                ));
                continue;
            }
            Ok(sockets) => sockets,
        };
        for row in &sockets.taking {
            lines.push(format!(
                "{} {} listens there, {}",
                row.socket.protocol.name(),
                row.socket.local,
                held_by(row)
            ));
        }
        if sockets.taking.is_empty() {
            let refused = if listeners.protocols == [Protocol::Udp] {
                "datagrams sent there are dropped"
            } else {
                "connections sent there are refused"
            };
            let elsewhere: Vec<String> = sockets
                .elsewhere
                .iter()
                .map(|r| r.socket.local.to_string())
                .collect();
            let aside = if elsewhere.is_empty() {
                String::new()
            } else {
                format!(" (bound to {} only, not to it)", elsewhere.join(", "))
            };
            lines.push(format!(
                "nothing listens on {protocols} {}{aside}: {refused}",
                address_port(target.address, ports)
            ));
        }
    }
    lines
}

/// `10.77.0.2:80`, `[fd00::2]:8000-8010`.
fn address_port(address: IpAddr, ports: PortRange) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}:{ports}"),
        IpAddr::V6(a) => format!("[{a}]:{ports}"),
    }
}

/// `held by nginx (pid 812, user www-data)`, one per holder.
fn held_by(row: &Row) -> String {
    if row.holders.is_empty() {
        return if row.holders_hidden {
            "held by a process lsport could not see".to_string()
        } else {
            "with no holder found".to_string()
        };
    }
    let names: Vec<String> = row
        .holders
        .iter()
        .map(|h| {
            let user = match (h.user(), h.uid()) {
                (Some(user), _) => format!(", user {}", escape_str(user)),
                (None, Some(uid)) => format!(", uid {uid}"),
                (None, None) => String::new(),
            };
            format!("{} (pid {}{user})", escape_bytes(h.command()), h.pid)
        })
        .collect();
    format!("held by {}", names.join(", "))
}
