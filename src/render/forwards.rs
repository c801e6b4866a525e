//! The words for forwarding rules: a forward in one phrase for a
//! verdict, in one line with all its conditions, and what could not be
//! read. Rule, chain and interface names come from the rules, which
//! anyone with CAP_NET_ADMIN may write: they are escaped.

use crate::forwards::proxy::Proxy;
use crate::forwards::{Forward, Hook, Unreadable};
use crate::render::escape::escape_str;
use crate::socket::PortRange;

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
