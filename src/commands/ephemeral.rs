//! The kernel's ephemeral range under load: how many local ports are
//! left toward each destination, which listeners an outgoing connection
//! could rob of their port, and whether planned port ranges overlap it.
//! Pure analysis over a report's rows; no I/O.

use std::collections::{HashMap, HashSet};

use crate::error::Error;
use crate::forwards::Forward;
use crate::netns::NetnsLabel;
use crate::ports::KernelPortPolicy;
use crate::probe::{find_holders, probe};
use crate::query::{ForwardingRules, HolderDetail, Query, View};
use crate::report::{Role, Row};
use crate::socket::{Endpoint, PortRange, Protocol, State};

/// What `lsport ephemeral` checks beyond the range itself.
#[derive(Debug, Clone, PartialEq)]
pub struct EphemeralOptions {
    /// Planned port ranges (a NodePort range, say) to check against the
    /// ephemeral range.
    pub planned: Vec<PortRange>,
    /// A destination with less than this share of its local ports left
    /// is a problem.
    pub warn_headroom_percent: f64,
}

/// One namespace's analysis, with what it needs to be shown.
#[derive(Debug)]
pub struct NamespaceAnalysis {
    /// The namespace.
    pub netns: NetnsLabel,
    /// Its port policy.
    pub policy: KernelPortPolicy,
    /// What was found.
    pub analysis: Analysis,
    /// What needs attention, in plain words; empty when healthy.
    pub problems: Vec<String>,
}

/// `lsport ephemeral` over every namespace probed.
#[derive(Debug)]
pub struct EphemeralReport {
    /// One per namespace probed.
    pub namespaces: Vec<NamespaceAnalysis>,
    /// The namespaces that could not be probed, each with the reason.
    pub skipped: Vec<String>,
    /// Risky listeners whose holders could not be seen.
    pub hidden_holders: usize,
    /// The forwarding rules that could not be read (without
    /// CAP_NET_ADMIN): forwarded ports may be missing from the counts.
    pub rules_unread: Vec<crate::forwards::Unreadable>,
}

impl EphemeralReport {
    /// No namespace has a problem.
    pub fn healthy(&self) -> bool {
        self.namespaces.iter().all(|n| n.problems.is_empty())
    }
}

/// Probes every socket of the namespaces `query` names, analyses each
/// namespace's ephemeral range, and then names the holders of the risky
/// listeners only: the one part of the answer that shows processes.
pub fn run(query: &Query, options: &EphemeralOptions) -> Result<EphemeralReport, Error> {
    let mut everything = query.clone();
    everything.view = View::All;
    everything.holders = HolderDetail::None;
    everything.stop_at_first_match = false;
    // A port a forwarding rule takes is in use as a listener's is.
    everything.forwarding_rules = ForwardingRules::Every;
    let report = probe(&everything)?;
    let rules_unread = report.rules_unread().into_iter().cloned().collect();
    let mut namespaces = Vec::with_capacity(report.namespaces.len());
    let mut hidden_holders = 0;
    for namespace in report.namespaces {
        let mut analysis = analyze(&namespace.policy, &namespace.rows, &options.planned);
        if let Some(rules) = &namespace.rules {
            analysis.forwarded = forwarded_in_range(&namespace.policy, &rules.forwards);
        }
        find_holders(query, &mut analysis.risky);
        hidden_holders += analysis.risky.iter().filter(|r| r.holders_hidden).count();
        let problems = problems(&analysis, options.warn_headroom_percent);
        namespaces.push(NamespaceAnalysis {
            netns: namespace.netns,
            policy: namespace.policy,
            analysis,
            problems,
        });
    }
    Ok(EphemeralReport {
        namespaces,
        skipped: report.skipped,
        hidden_holders,
        rules_unread,
    })
}

/// Sockets counted by the kind of state that keeps their port busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// ESTABLISHED and the connecting states.
    pub established: u32,
    /// FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING.
    pub closing: u32,
    /// TIME_WAIT: closed connections whose port the kernel still keeps.
    pub time_wait: u32,
}

impl StateCounts {
    /// Every socket counted, whatever its state: the ports they take.
    pub fn total(&self) -> u32 {
        self.established + self.closing + self.time_wait
    }

    fn add(&mut self, state: State) {
        match state {
            State::TimeWait => self.time_wait += 1,
            State::FinWait1
            | State::FinWait2
            | State::CloseWait
            | State::LastAck
            | State::Closing => self.closing += 1,
            _ => self.established += 1,
        }
    }
}

/// The outgoing connections toward one remote address and port. The
/// kernel needs a distinct local port per connection to the same
/// destination, so this is where "cannot assign requested address"
/// starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// The remote address and port (an IPv4-mapped address as IPv4).
    pub remote: Endpoint,
    /// The outgoing TCP sockets toward it whose local port is in the
    /// range, TIME_WAIT included.
    pub in_use: StateCounts,
    /// Local ports left for new connections to this destination.
    pub headroom: u32,
    /// `headroom` as a share of the ports connect() may use at all.
    pub headroom_percent: f64,
}

/// A planned port range (`--check-range`) against the ephemeral range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The planned range as given.
    pub planned: PortRange,
    /// The part of the planned range inside the ephemeral range.
    pub overlap: Option<PortRange>,
    /// Ports of that part that are not reserved: outgoing connections may take them.
    pub unreserved: u32,
}

/// One namespace's ephemeral range against the sockets it holds.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The ephemeral range, `ip_local_port_range`.
    pub range: PortRange,
    /// The range could not be read: it is the kernel default.
    pub range_assumed: bool,
    /// How many ports the range holds, both ends included.
    pub size: u32,
    /// How many ports of the range are in `ip_local_reserved_ports`.
    pub reserved_in_range: u32,
    /// Both ends of the range have the same parity: the kernel warns,
    /// as it prefers even ports for connect() and odd ones for bind(0).
    pub same_parity: bool,
    /// Distinct TCP ports inside the range held by a listener or a
    /// bound-only socket: connect() skips them for every destination.
    pub hard_bound_ports: Vec<u16>,
    /// Ports connect() may hand out: the range less reserved and hard-bound ports.
    pub usable: u32,
    /// Outgoing TCP sockets with a local port in the range, all destinations.
    pub in_use: StateCounts,
    /// Busiest first.
    pub destinations: Vec<Destination>,
    /// Listening or bound-only sockets (TCP, and unconnected UDP) whose
    /// port is inside the range and not reserved.
    pub risky: Vec<Row>,
    /// Each planned range against the ephemeral range, in the order
    /// given.
    pub overlaps: Vec<Overlap>,
    /// Ports inside the range and not reserved that forwarding rules
    /// take (DNAT, REDIRECT), as sorted ranges: at risk as a listener's
    /// port is, for the service behind the rule.
    pub forwarded: Vec<PortRange>,
}

/// The ports of `forwards` inside the ephemeral range of `policy` and
/// not reserved, merged into sorted ranges.
pub fn forwarded_in_range(policy: &KernelPortPolicy, forwards: &[Forward]) -> Vec<PortRange> {
    let range = policy.ephemeral.value;
    let mut ranges: Vec<PortRange> = Vec::new();
    for forward in forwards {
        for ports in &forward.ports {
            let (lo, hi) = (ports.lo.max(range.lo), ports.hi.min(range.hi));
            if lo <= hi {
                ranges.push(PortRange { lo, hi });
            }
        }
    }
    let mut ports: Vec<u16> = crate::portspec::normalize(ranges)
        .into_iter()
        .flat_map(|r| r.lo..=r.hi)
        .filter(|p| !policy.is_reserved(*p))
        .collect();
    ports.dedup();
    let mut merged: Vec<PortRange> = Vec::new();
    for port in ports {
        match merged.last_mut() {
            Some(last) if u32::from(last.hi) + 1 == u32::from(port) => last.hi = port,
            _ => merged.push(PortRange::single(port)),
        }
    }
    merged
}

impl Analysis {
    /// How many ports [`Analysis::forwarded`] holds.
    pub fn forwarded_ports(&self) -> u32 {
        self.forwarded
            .iter()
            .map(|r| u32::from(r.hi) - u32::from(r.lo) + 1)
            .sum()
    }
}

/// Analyses the ephemeral range of `policy` against `rows`, a report's
/// rows (every socket, for true counts), and checks each `planned` range
/// against it.
pub fn analyze(policy: &KernelPortPolicy, rows: &[Row], planned: &[PortRange]) -> Analysis {
    let range = policy.ephemeral.value;
    let in_range = |port: u16| range.contains(port);
    let reserved_in_range = (range.lo..=range.hi)
        .filter(|p| policy.is_reserved(*p))
        .count() as u32;

    let mut hard_bound_ports: Vec<u16> = rows
        .iter()
        .filter(|r| r.socket.protocol == Protocol::Tcp)
        .filter(|r| matches!(r.role, Role::Listener | Role::BoundOnly))
        .map(|r| r.socket.local.port)
        .filter(|p| in_range(*p) && !policy.is_reserved(*p))
        .collect();
    hard_bound_ports.sort_unstable();
    hard_bound_ports.dedup();
    let size = u32::from(range.hi) - u32::from(range.lo) + 1;
    let usable = size - reserved_in_range - hard_bound_ports.len() as u32;

    // An orphaned connection on a listener's port was a server's; any
    // other keeps the port a client's connect() took, as TIME_WAIT does.
    let listening: HashSet<u16> = rows
        .iter()
        .filter(|r| r.socket.protocol == Protocol::Tcp && r.role == Role::Listener)
        .map(|r| r.socket.local.port)
        .collect();
    let mut in_use = StateCounts::default();
    let mut by_destination: HashMap<Endpoint, StateCounts> = HashMap::new();
    for row in rows {
        let socket = &row.socket;
        let outgoing = match row.role {
            Role::Outgoing | Role::TimeWait => true,
            Role::Orphaned => !listening.contains(&socket.local.port),
            Role::Listener | Role::BoundOnly | Role::Accepted => false,
        };
        if socket.protocol != Protocol::Tcp || !outgoing || !in_range(socket.local.port) {
            continue;
        }
        let remote = Endpoint {
            address: socket.remote.readable_address(),
            port: socket.remote.port,
        };
        in_use.add(socket.state);
        by_destination.entry(remote).or_default().add(socket.state);
    }
    let mut destinations: Vec<Destination> = by_destination
        .into_iter()
        .map(|(remote, counts)| {
            let headroom = usable.saturating_sub(counts.total());
            let headroom_percent = if usable == 0 {
                0.0
            } else {
                100.0 * f64::from(headroom) / f64::from(usable)
            };
            Destination {
                remote,
                in_use: counts,
                headroom,
                headroom_percent,
            }
        })
        .collect();
    destinations.sort_by(|a, b| {
        b.in_use
            .total()
            .cmp(&a.in_use.total())
            .then(a.remote.cmp(&b.remote))
    });

    let risky = rows.iter().filter(|r| r.risky).cloned().collect();
    let overlaps = planned.iter().map(|p| overlap_of(*p, policy)).collect();
    Analysis {
        range,
        range_assumed: policy.ephemeral.assumed,
        size,
        reserved_in_range,
        same_parity: range.lo % 2 == range.hi % 2,
        hard_bound_ports,
        usable,
        in_use,
        destinations,
        risky,
        overlaps,
        forwarded: Vec::new(),
    }
}

fn overlap_of(planned: PortRange, policy: &KernelPortPolicy) -> Overlap {
    let range = policy.ephemeral.value;
    let lo = planned.lo.max(range.lo);
    let hi = planned.hi.min(range.hi);
    if lo > hi {
        return Overlap {
            planned,
            overlap: None,
            unreserved: 0,
        };
    }
    let unreserved = (lo..=hi).filter(|p| !policy.is_reserved(*p)).count() as u32;
    Overlap {
        planned,
        overlap: Some(PortRange { lo, hi }),
        unreserved,
    }
}

/// What makes the report unhealthy (exit status 3), in plain words.
pub fn problems(analysis: &Analysis, warn_headroom_percent: f64) -> Vec<String> {
    let mut problems = Vec::new();
    if !analysis.risky.is_empty() {
        problems.push(format!(
            "{} listening or bound-only socket{} inside the ephemeral range and not reserved",
            analysis.risky.len(),
            if analysis.risky.len() == 1 { "" } else { "s" }
        ));
    }
    let forwarded = analysis.forwarded_ports();
    if forwarded > 0 {
        problems.push(format!(
            "{forwarded} port{} that forwarding rules take inside the ephemeral range and not reserved",
            if forwarded == 1 { "" } else { "s" }
        ));
    }
    for d in analysis
        .destinations
        .iter()
        .filter(|d| d.headroom_percent < warn_headroom_percent)
    {
        problems.push(format!(
            "only {} local ports ({:.1}%) left toward {}",
            d.headroom, d.headroom_percent, d.remote
        ));
    }
    for o in analysis.overlaps.iter().filter(|o| o.unreserved > 0) {
        problems.push(format!(
            "planned range {}-{} has {} unreserved ports inside the ephemeral range",
            o.planned.lo, o.planned.hi, o.unreserved
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::Socket;

    fn policy(lo: u16, hi: u16, reserved: Vec<PortRange>) -> KernelPortPolicy {
        KernelPortPolicy::known(PortRange { lo, hi }, reserved, 1024)
    }

    fn row(state: State, role: Role, local: u16, remote: u16, risky: bool) -> Row {
        Row {
            socket: Socket::example(
                state,
                &format!("127.0.0.1:{local}"),
                &format!("127.0.0.1:{remote}"),
            ),
            role,
            holders: Default::default(),
            holders_hidden: false,
            service: None,
            risky,
            cgroup: None,
            owner: None,
        }
    }

    #[test]
    fn headroom_counts_every_state_and_excludes_reserved_and_bound_ports() {
        let policy = policy(40000, 40099, vec![PortRange::single(40050)]);
        let mut rows = vec![row(State::Listen, Role::Listener, 40090, 0, true)];
        for port in 40000..40010 {
            rows.push(row(State::Established, Role::Outgoing, port, 30000, false));
        }
        rows.push(row(State::TimeWait, Role::TimeWait, 40010, 30000, false));
        rows.push(row(State::FinWait2, Role::Outgoing, 40011, 30000, false));
        rows.push(row(State::Established, Role::Outgoing, 40012, 30001, false));
        // A client's connection its program closed keeps its port; a
        // server's, on its listener's port, takes none of the range.
        rows.push(row(State::FinWait2, Role::Orphaned, 40013, 30002, false));
        rows.push(row(State::FinWait2, Role::Orphaned, 40090, 30003, false));
        // Outside the range: not counted.
        rows.push(row(State::Established, Role::Outgoing, 20000, 30000, false));
        let analysis = analyze(&policy, &rows, &[]);
        assert_eq!(analysis.size, 100);
        assert_eq!(analysis.reserved_in_range, 1);
        assert_eq!(analysis.hard_bound_ports, vec![40090]);
        assert_eq!(analysis.usable, 98);
        assert_eq!(
            analysis.in_use,
            StateCounts {
                established: 11,
                closing: 2,
                time_wait: 1
            }
        );
        assert!(
            analysis.destinations.iter().all(|d| d.remote.port != 30003),
            "a server's orphan is no outgoing connection"
        );
        let busiest = &analysis.destinations[0];
        assert_eq!(busiest.remote.port, 30000);
        assert_eq!(
            busiest.in_use,
            StateCounts {
                established: 10,
                closing: 1,
                time_wait: 1
            }
        );
        assert_eq!(busiest.headroom, 86);
        assert!((busiest.headroom_percent - 100.0 * 86.0 / 98.0).abs() < 1e-9);
        assert_eq!(problems(&analysis, 10.0).len(), 1, "the risky listener");
        assert_eq!(
            problems(&analysis, 99.5).len(),
            4,
            "and the three destinations under 99.5%"
        );
    }

    #[test]
    fn parity_and_overlaps() {
        let odd_even = policy(32768, 60999, vec![]);
        assert!(!analyze(&odd_even, &[], &[]).same_parity);
        let same = policy(
            40000,
            40100,
            vec![PortRange {
                lo: 30000,
                hi: 30099,
            }],
        );
        let analysis = analyze(
            &same,
            &[],
            &[
                PortRange {
                    lo: 30000,
                    hi: 40009,
                },
                PortRange { lo: 1, hi: 10 },
            ],
        );
        assert!(analysis.same_parity);
        assert_eq!(
            problems(&analysis, 10.0),
            vec!["planned range 30000-40009 has 10 unreserved ports inside the ephemeral range"]
        );
        assert_eq!(
            analysis.overlaps,
            vec![
                Overlap {
                    planned: PortRange {
                        lo: 30000,
                        hi: 40009
                    },
                    overlap: Some(PortRange {
                        lo: 40000,
                        hi: 40009
                    }),
                    unreserved: 10
                },
                Overlap {
                    planned: PortRange { lo: 1, hi: 10 },
                    overlap: None,
                    unreserved: 0
                },
            ]
        );
    }
}
