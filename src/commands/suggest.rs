//! Ports that are safe for a new service: outside the ephemeral range
//! (so no outgoing connection can take them while the service is down),
//! not registered with IANA, not in use, and unprivileged unless asked.

use std::collections::HashSet;

use crate::error::Error;
use crate::ports::KernelPortPolicy;
use crate::probe::probe;
use crate::query::{ForwardingRules, HolderDetail, Query, View};
use crate::socket::PortRange;

/// What `lsport suggest` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestQuery {
    /// How many ports.
    pub count: usize,
    /// Prefer ports close to this one.
    pub near: Option<u16>,
    /// Search only here.
    pub within: Option<PortRange>,
    /// Also suggest ports below ip_unprivileged_port_start.
    pub allow_privileged: bool,
}

/// The ports `lsport suggest` found, with what it could not check.
#[derive(Debug, Clone)]
pub struct Suggestions {
    /// The safe ports, nearest first or ascending.
    pub ports: Vec<u16>,
    /// The forwarding rules that could not be read (without
    /// CAP_NET_ADMIN): a port suggested may still be forwarded.
    pub rules_unread: Vec<crate::forwards::Unreadable>,
}

/// Ports safe for a new service in the namespaces `query` names: a port
/// in use in any of them is not safe, and the first namespace's policy
/// (lsport's own, or the one asked for) decides what is ephemeral. Reads
/// no process's fds: who holds a port does not matter here.
pub fn run(query: &Query, wanted: &SuggestQuery) -> Result<Suggestions, Error> {
    let mut everything = query.clone();
    everything.view = View::All;
    everything.holders = HolderDetail::None;
    everything.stop_at_first_match = false;
    // A port a forwarding rule takes is never safe: a server there does
    // not get the traffic the rule sends elsewhere.
    everything.forwarding_rules = ForwardingRules::Every;
    let report = probe(&everything)?;
    let in_use: HashSet<u16> = report
        .namespaces
        .iter()
        .flat_map(|r| r.rows.iter().map(|row| row.socket.local.port))
        .collect();
    let forwarded: Vec<PortRange> = report
        .namespaces
        .iter()
        .filter_map(|n| n.rules.as_ref())
        .flat_map(|rules| rules.forwards.iter().flat_map(|f| f.ports.iter().copied()))
        .collect();
    let forwarded = crate::portspec::normalize(forwarded);
    let rules_unread = report.rules_unread().into_iter().cloned().collect();
    let Some(first) = report.namespaces.first() else {
        return Ok(Suggestions {
            ports: Vec::new(),
            rules_unread,
        });
    };
    let services = &query.services;
    Ok(Suggestions {
        ports: suggest(
            wanted,
            &first.policy,
            &|p| in_use.contains(&p) || forwarded.iter().any(|r| r.contains(p)),
            // IANA's registrations, "Reserved" included, and local names.
            &|p| !services.on_port(p).is_empty(),
        ),
        rules_unread,
    })
}

/// Up to `query.count` ports, nearest to `near` first (ties to the lower
/// port), or in ascending order.
pub fn suggest(
    query: &SuggestQuery,
    policy: &KernelPortPolicy,
    in_use: &dyn Fn(u16) -> bool,
    registered: &dyn Fn(u16) -> bool,
) -> Vec<u16> {
    let within = query.within.unwrap_or(PortRange { lo: 1, hi: 65535 });
    let safe = |port: u16| {
        port != 0
            && !policy.is_ephemeral(port)
            && (query.allow_privileged || !policy.is_privileged(port))
            && !registered(port)
            && !in_use(port)
    };
    let mut candidates: Vec<u16> = (within.lo..=within.hi).filter(|p| safe(*p)).collect();
    if let Some(near) = query.near {
        candidates.sort_by_key(|p| (p.abs_diff(near), *p));
    }
    candidates.truncate(query.count);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> KernelPortPolicy {
        KernelPortPolicy::known(
            PortRange {
                lo: 40000,
                hi: 40099,
            },
            vec![],
            1024,
        )
    }

    #[test]
    fn never_suggests_ephemeral_used_registered_or_privileged_ports() {
        let query = SuggestQuery {
            count: 3,
            near: Some(40098),
            within: None,
            allow_privileged: false,
        };
        let ports = suggest(&query, &policy(), &|p| p == 39999, &|p| p == 40101);
        assert_eq!(ports, vec![40100, 40102, 40103]);
        let query = SuggestQuery {
            count: 2,
            near: None,
            within: Some(PortRange { lo: 1000, hi: 1100 }),
            allow_privileged: false,
        };
        assert_eq!(
            suggest(&query, &policy(), &|_| false, &|_| false),
            vec![1024, 1025]
        );
        let query = SuggestQuery {
            count: 2,
            near: None,
            within: Some(PortRange { lo: 1000, hi: 1100 }),
            allow_privileged: true,
        };
        assert_eq!(
            suggest(&query, &policy(), &|_| false, &|_| false),
            vec![1000, 1001]
        );
    }
}
