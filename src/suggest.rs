//! Ports that are safe for a new service: outside the ephemeral range
//! (so no outgoing connection can take them while the service is down),
//! not registered with IANA, not in use, and unprivileged unless asked.

use crate::ports::{KernelPortPolicy, PortRange};

pub struct SuggestQuery {
    pub count: usize,
    /// Prefer ports close to this one.
    pub near: Option<u16>,
    /// Search only here.
    pub within: Option<PortRange>,
    pub allow_privileged: bool,
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
