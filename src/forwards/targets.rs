//! Where a forward sends its traffic: the other network namespace on the
//! host (a container's, most often) that has the target address as one
//! of its own. Read from `/proc/PID/net` of one process per namespace
//! (the local /32 entries of `fib_trie`, and `if_inet6`), without
//! entering any; done only when some forward has a target address.
//! Which ports to look at there, and which sockets take the traffic,
//! are decided here too; the probe looks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::{Forward, Target};
use crate::netns::{self, NetnsLabel};
use crate::socket::{PortRange, Socket};
use crate::sys::ProcRoot;

/// The namespace a target address belongs to, and how to enter it.
#[derive(Debug, Clone)]
pub struct TargetNamespace {
    /// How reports name it.
    pub label: NetnsLabel,
    /// A file that refers to it, to probe it through.
    pub path: PathBuf,
}

/// The namespace each of `wanted` belongs to, among the namespaces other
/// than lsport's own that have a process to read them through. An
/// address found in several namespaces is named by none: lsport does not
/// guess which one the traffic reaches.
pub fn locate(root: &ProcRoot, wanted: &[IpAddr]) -> HashMap<IpAddr, TargetNamespace> {
    // Each address once: one met twice in a namespace would read as
    // found in two.
    let mut wanted: Vec<IpAddr> = wanted
        .iter()
        .copied()
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut found: HashMap<IpAddr, Option<TargetNamespace>> = HashMap::new();
    if wanted.is_empty() {
        return HashMap::new();
    }
    let own = root.own_netns_inode();
    for namespace in netns::discover(root) {
        if Some(namespace.inode) == own {
            continue;
        }
        let Some(pid) = namespace.pids.first() else {
            continue;
        };
        let addresses = addresses_of(root, *pid);
        for address in wanted.iter().filter(|a| addresses.contains(a)) {
            let label = TargetNamespace {
                label: NetnsLabel {
                    inode: Some(namespace.inode),
                    name: namespace.name.clone().or(namespace.docker_sandbox.clone()),
                    container: crate::holders::container::of_processes(root, &namespace.pids),
                },
                path: namespace.path.clone(),
            };
            found
                .entry(*address)
                .and_modify(|seen| *seen = None)
                .or_insert(Some(label));
        }
    }
    found
        .into_iter()
        .filter_map(|(address, label)| Some((address, label?)))
        .collect()
}

/// The ports a forward's traffic arrives on at its target, for the
/// port or range `asked`: the rule's new port or range, or, where it
/// keeps the port, the ports asked that it takes. None for a redirect,
/// or where it takes none of them.
pub fn target_ports(forward: &Forward, asked: PortRange) -> Option<PortRange> {
    match forward.target {
        Target::Dnat {
            ports: Some(range), ..
        } => Some(range),
        Target::Dnat { ports: None, .. } => forward.ports.iter().find_map(|range| {
            let lo = range.lo.max(asked.lo);
            let hi = range.hi.min(asked.hi);
            (lo <= hi).then_some(PortRange { lo, hi })
        }),
        Target::Redirect { .. } => None,
    }
}

/// Whether `socket`, a listener at the target, takes traffic sent to
/// `address`: bound to it, or to every address of its family (an IPv6
/// socket to IPv4 too, unless it is IPv6-only).
pub fn takes_traffic_to(socket: &Socket, address: IpAddr) -> bool {
    let local = socket.local.address;
    if local == address {
        return true;
    }
    match (local, address) {
        (IpAddr::V4(l), IpAddr::V4(_)) => l.is_unspecified(),
        (IpAddr::V6(l), IpAddr::V6(_)) => l.is_unspecified(),
        (IpAddr::V6(l), IpAddr::V4(a)) => {
            (l.is_unspecified() && socket.v6only != Some(true)) || l.to_ipv4_mapped() == Some(a)
        }
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

/// The addresses of the namespace process `pid` lives in.
fn addresses_of(root: &ProcRoot, pid: u32) -> Vec<IpAddr> {
    let read = |file: &str| {
        crate::files::read_at_most(&root.path(&format!("{pid}/net/{file}")), 4 << 20)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let mut addresses: Vec<IpAddr> = local_v4(&read("fib_trie"))
        .into_iter()
        .map(IpAddr::V4)
        .collect();
    addresses.extend(local_v6(&read("if_inet6")).into_iter().map(IpAddr::V6));
    addresses
}

/// The addresses `fib_trie` marks `/32 host LOCAL`: each follows the
/// `|-- ADDRESS` line of its leaf.
fn local_v4(text: &str) -> Vec<Ipv4Addr> {
    let mut leaf: Option<Ipv4Addr> = None;
    let mut local = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(address) = line.strip_prefix("|-- ") {
            leaf = address.parse().ok();
        } else if line.starts_with("/32 host LOCAL") {
            if let Some(address) = leaf.filter(|a| !local.contains(a)) {
                local.push(address);
            }
        }
    }
    local
}

/// The addresses of `if_inet6`: 32 hex digits first on each line.
fn local_v6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            (hex.len() == 32)
                .then(|| u128::from_str_radix(hex, 16).ok())
                .flatten()
                .map(Ipv6Addr::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwards::{Hook, RulePlace, RuleSource, TableFamily};
    use crate::socket::{Family, Protocol, State};

    fn dnat(ports: Vec<PortRange>, to: Option<PortRange>) -> Forward {
        Forward {
            place: RulePlace {
                source: RuleSource::Nftables,
                family: TableFamily::Ip,
                table: "nat".into(),
                chains: vec!["pre".into()],
                hook: Hook::Prerouting,
                rule: 2,
                position: 1,
            },
            comment: None,
            families: vec![Family::Inet],
            protocols: vec![Protocol::Tcp],
            ports,
            interfaces: Vec::new(),
            destinations: Vec::new(),
            destination_types: Vec::new(),
            unread_conditions: Vec::new(),
            target: Target::Dnat {
                addresses: Some(("10.77.0.2".parse().unwrap(), "10.77.0.2".parse().unwrap())),
                ports: to,
            },
        }
    }

    #[test]
    fn the_target_ports_are_the_rule_s_or_else_the_ports_asked_it_takes() {
        let range = |lo, hi| PortRange { lo, hi };
        let asked = range(8080, 8080);
        // dnat to :80: port 80 there.
        let to_80 = dnat(vec![asked], Some(range(80, 80)));
        assert_eq!(target_ports(&to_80, asked), Some(range(80, 80)));
        // dnat to the address alone: the port asked, within the rule's.
        let same = dnat(vec![range(8000, 8100)], None);
        assert_eq!(target_ports(&same, asked), Some(asked));
        assert_eq!(
            target_ports(&same, range(8090, 8200)),
            Some(range(8090, 8100))
        );
        assert_eq!(target_ports(&same, range(9000, 9000)), None);
        let redirect = Forward {
            target: Target::Redirect { ports: None },
            ..same
        };
        assert_eq!(target_ports(&redirect, asked), None);
    }

    #[test]
    fn a_listener_takes_the_traffic_on_its_address_or_every_address() {
        let target: IpAddr = "10.77.0.2".parse().unwrap();
        let on = |local: &str, v6only: Option<bool>| Socket {
            v6only,
            ..Socket::example(State::Listen, local, "0.0.0.0:0")
        };
        assert!(takes_traffic_to(&on("0.0.0.0:80", None), target));
        assert!(takes_traffic_to(&on("10.77.0.2:80", None), target));
        assert!(!takes_traffic_to(&on("127.0.0.1:80", None), target));
        assert!(takes_traffic_to(&on("[::]:80", Some(false)), target));
        assert!(!takes_traffic_to(&on("[::]:80", Some(true)), target));
        assert!(takes_traffic_to(
            &on("[::ffff:10.77.0.2]:80", Some(false)),
            target
        ));
        assert!(!takes_traffic_to(
            &on("0.0.0.0:80", None),
            "fd00::2".parse().unwrap()
        ));
    }

    #[test]
    fn fib_trie_s_local_host_entries_are_the_namespace_s_addresses() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.77.0.0\n        /24 link UNICAST\n     |-- 10.77.0.2\n        /32 host LOCAL\n     |-- 127.0.0.0\n        /8 host LOCAL\nLocal:\n     |-- 10.77.0.2\n        /32 host LOCAL\n";
        assert_eq!(local_v4(text), [Ipv4Addr::new(10, 77, 0, 2)]);
        let v6 = "fd000000000000000000000000000002 02 80 00 80     eth0\n";
        assert_eq!(local_v6(v6), ["fd00::2".parse::<Ipv6Addr>().unwrap()]);
    }
}
