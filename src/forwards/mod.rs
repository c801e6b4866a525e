//! What takes a port without a socket of its own: forwarding rules
//! (DNAT and REDIRECT in nat chains) and userland proxies.
//!
//! A port can be in use with nothing bound to it: Docker, Kubernetes
//! (kube-proxy), firewalld and plain `nft` or `iptables` rules send its
//! incoming traffic elsewhere, and a server started on it binds fine but
//! never gets a connection from outside. [`forwards_for`] reads the
//! rules of the calling thread's network namespace, once per table
//! family, and returns the forwards on the ports asked about; what it
//! could not decode or could not read at all is in the answer too, so
//! that a port is never called free for want of looking.
//!
//! Sources: nf_tables over netlink (`nftables/`: native `nat` and
//! `redir` expressions, and the x_tables `match` and `target`
//! expressions of iptables-nft, decoded in `xt.rs`) and the legacy
//! x_tables (`legacy/`). Both come down to one meaning per rule
//! (`conditions.rs`), which `walk.rs` follows from each nat chain hooked
//! at prerouting or output down the jumps. [`proxy`] names userland
//! proxies by their command lines. This module sees only the model
//! ([`crate::socket`]) and the system helpers.
//!
//! # Example
//!
//! ```
//! use lsport::forwards;
//! use lsport::socket::PortRange;
//!
//! match forwards::forwards_for(&[PortRange::single(8080)]) {
//!     Ok(scan) => {
//!         for forward in &scan.forwards {
//!             println!("{:?} to {} ({})", forward.protocols, forward.target, forward.place);
//!         }
//!         // Without CAP_NET_ADMIN the rules are not readable: say so.
//!         for spot in &scan.unreadable {
//!             println!("{}", spot.describe());
//!         }
//!     }
//!     Err(err) => eprintln!("lsport: {err}"),
//! }
//! ```

mod conditions;
mod legacy;
mod model;
mod nftables;
pub mod proxy;
pub(crate) mod targets;
mod walk;
mod xt;

pub use model::{
    AddressMatch, AddressTypeMatch, Direction, Forward, ForwardScan, Hook, InterfaceMatch,
    InterfaceName, RulePlace, RuleSource, RulesRead, TableFamily, Target, UndecodedRule,
    Unreadable,
};

use crate::Error;
use crate::socket::PortRange;
use crate::sys::ProcRoot;
use conditions::PortSet;
use walk::{Table, walk};

/// The forwards on `ports` in the calling thread's network namespace
/// (every forward when `ports` is empty), with the rules that may be
/// forwards but could not be decoded, and what could not be read.
///
/// Reads nf_tables once per family (ip, ip6, inet) and the legacy nat
/// tables where the kernel has them. Without CAP_NET_ADMIN the rules
/// are refused: that is [`ForwardScan::unreadable`], not an error and
/// not "no rules". An error is a failure to ask at all, or replies that
/// are not well formed.
pub fn forwards_for(ports: &[PortRange]) -> Result<ForwardScan, Error> {
    forwards_for_in(&ProcRoot::default(), ports)
}

/// [`forwards_for`] with /proc elsewhere (for the legacy tables' names).
pub fn forwards_for_in(proc: &ProcRoot, ports: &[PortRange]) -> Result<ForwardScan, Error> {
    let asked = PortSet::asked(ports);
    let mut scan = empty_scan();
    match nftables::read(&asked)? {
        nftables::Outcome::Read { tables, families } => {
            add_found(&mut scan, &tables, &asked);
            scan.read.nftables = families;
        }
        nftables::Outcome::Refused(errno) => scan.unreadable.push(Unreadable::Nftables { errno }),
        nftables::Outcome::Absent => {}
    }
    let legacy = legacy::read(proc, &asked);
    add_found(&mut scan, &legacy.tables, &asked);
    scan.unreadable.extend(legacy.unreadable);
    scan.read.legacy = legacy.read;
    scan.read.legacy_present = legacy.present;
    Ok(scan)
}

fn empty_scan() -> ForwardScan {
    ForwardScan {
        forwards: Vec::new(),
        undecoded: Vec::new(),
        unreadable: Vec::new(),
        read: RulesRead {
            nftables: Vec::new(),
            legacy: Vec::new(),
            legacy_present: false,
        },
    }
}

fn add_found(scan: &mut ForwardScan, tables: &[Table], asked: &PortSet) {
    for table in tables {
        let found = walk(table, asked);
        scan.forwards.extend(found.forwards);
        scan.undecoded.extend(found.undecoded);
    }
}

/// The forwards on `ports` in one family's nf_tables dumps, given as
/// buffers of replies (each a dump's messages, as the kernel sent
/// them): what [`forwards_for`] does after the reading, for tests and
/// the fuzzer. An error names a buffer that is not well formed.
pub fn scan_nftables_replies(
    family: TableFamily,
    chains: &[u8],
    rules: &[u8],
    sets: &[u8],
    elements: &[u8],
    ports: &[PortRange],
) -> Result<ForwardScan, String> {
    use nftables::nfnetlink::{Dump, decode_replies};
    let mut replies = nftables::Replies::default();
    for (bytes, dump, out) in [
        (chains, Dump::Chains, &mut replies.chains),
        (rules, Dump::Rules, &mut replies.rules),
        (sets, Dump::Sets, &mut replies.sets),
        (elements, Dump::SetElements, &mut replies.elements),
    ] {
        decode_replies(bytes, dump.reply_type(), out)
            .map_err(|failure| format!("{} dump: {failure:?}", dump.name()))?;
    }
    let asked = PortSet::asked(ports);
    let tables = nftables::tables_of(family, &replies, &asked);
    let mut scan = empty_scan();
    scan.read.nftables.push(family);
    add_found(&mut scan, &tables, &asked);
    Ok(scan)
}

/// The forwards on `ports` in a legacy nat table, given as the bytes of
/// struct ipt_getinfo and of the entries that IPT_SO_GET_ENTRIES
/// returns: what [`forwards_for`] does after the reading, for tests and
/// the fuzzer.
pub fn scan_legacy_entries(
    family: crate::socket::Family,
    info: &[u8],
    entries: &[u8],
    ports: &[PortRange],
) -> Result<ForwardScan, String> {
    let info = legacy::entries::TableInfo::decode(info).ok_or("a table info cut short")?;
    let asked = PortSet::asked(ports);
    let table = legacy::entries::table_of(family, "nat", &info, entries, &asked)?;
    let mut scan = empty_scan();
    scan.read.legacy.push((family, "nat".into()));
    scan.read.legacy_present = true;
    add_found(&mut scan, &[table], &asked);
    Ok(scan)
}

/// The pipeline from the kernel's bytes to forwards, on dumps captured
/// from iptables-nft 1.8.9, nft 1.0.6 and iptables-legacy on Linux 6.18
/// (x86-64: the netlink headers and the legacy blob are in host order).
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::socket::{Family, Protocol};

    const FIXTURES: &str = "tests/fixtures/forwards";

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/{FIXTURES}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn docker_forward_checks(scan: &ForwardScan) {
        let hooks: Vec<(Hook, String)> = scan
            .forwards
            .iter()
            .map(|f| (f.hook(), f.place.path()))
            .collect();
        assert_eq!(
            hooks,
            [
                (Hook::Prerouting, "PREROUTING -> DOCKER".to_string()),
                (Hook::Output, "OUTPUT -> DOCKER".to_string()),
            ]
        );
        let forward = &scan.forwards[0];
        assert_eq!(forward.protocols, [Protocol::Tcp]);
        assert_eq!(forward.families, [Family::Inet]);
        assert_eq!(forward.ports, [PortRange::single(8081)]);
        assert_eq!(forward.target.to_string(), "172.17.0.2:80");
        assert_eq!(
            forward
                .interfaces
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["not arriving on docker0"]
        );
        assert_eq!(
            forward.destination_types[0].to_string(),
            "to an address of type LOCAL"
        );
        // The OUTPUT path adds Docker's `! -d 127.0.0.0/8`.
        assert_eq!(
            scan.forwards[1].destinations[0].to_string(),
            "not to 127.0.0.0/8"
        );
        assert!(scan.undecoded.is_empty());
    }

    #[test]
    fn docker_s_rules_as_iptables_nft_writes_them() {
        let scan = scan_nftables_replies(
            TableFamily::Ip,
            &fixture("docker-nft.chains"),
            &fixture("docker-nft.rules"),
            &fixture("docker-nft.sets"),
            &[],
            &[PortRange::single(8081)],
        )
        .unwrap();
        docker_forward_checks(&scan);
        assert_eq!(scan.forwards[0].place.table_name(), "ip nat");
        // Nothing on the port next to it.
        let other = scan_nftables_replies(
            TableFamily::Ip,
            &fixture("docker-nft.chains"),
            &fixture("docker-nft.rules"),
            &fixture("docker-nft.sets"),
            &[],
            &[PortRange::single(8080)],
        )
        .unwrap();
        assert!(other.forwards.is_empty() && other.undecoded.is_empty());
    }

    #[test]
    fn docker_s_rules_as_iptables_legacy_writes_them() {
        let scan = scan_legacy_entries(
            Family::Inet,
            &fixture("docker-legacy.info"),
            &fixture("docker-legacy.entries"),
            &[PortRange::single(8081)],
        )
        .unwrap();
        docker_forward_checks(&scan);
        assert_eq!(scan.forwards[0].place.rule_name(), "rule 2");
    }

    #[test]
    fn sets_maps_and_verdict_maps_of_an_inet_table() {
        // tcp dport vmap { 6100 : jump web, 6101-6105 : goto web }
        // meta l4proto . th dport { tcp . 6300-6310, udp . 6400 } dnat ip to 10.0.0.63
        // udp dport { 53, 5353 } redirect
        // chain web: meta l4proto tcp dnat ip to 10.0.0.80:80 comment "web"
        let scan = scan_nftables_replies(
            TableFamily::Inet,
            &fixture("sets-nft.chains"),
            &fixture("sets-nft.rules"),
            &fixture("sets-nft.sets"),
            &fixture("sets-nft.elements"),
            &[],
        )
        .unwrap();
        assert!(scan.undecoded.is_empty(), "{:?}", scan.undecoded);
        let found: Vec<String> = scan
            .forwards
            .iter()
            .map(|f| {
                let ports: Vec<String> = f.ports.iter().map(|p| p.to_string()).collect();
                format!(
                    "{:?} {} -> {} via {}",
                    f.protocols,
                    ports.join(","),
                    f.target,
                    f.place.path()
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                "[Tcp] 6100 -> 10.0.0.80:80 via pre -> web",
                "[Tcp] 6101-6105 -> 10.0.0.80:80 via pre -> web",
                "[Tcp] 6300-6310 -> 10.0.0.63 (same port) via pre",
                "[Udp] 6400 -> 10.0.0.63 (same port) via pre",
                "[Udp] 53,5353 -> this host, the same port via pre",
            ]
        );
        assert_eq!(scan.forwards[0].comment.as_deref(), Some("web"));
        // The redirect applies to both families; the dnat to IPv4 only.
        assert_eq!(scan.forwards[4].families, [Family::Inet, Family::Inet6]);
        assert_eq!(scan.forwards[2].families, [Family::Inet]);
    }

    #[test]
    fn replies_that_are_not_well_formed_are_an_error() {
        let rules = fixture("docker-nft.rules");
        let cut = &rules[..rules.len() / 2];
        assert!(scan_nftables_replies(TableFamily::Ip, &[], cut, &[], &[], &[]).is_err());
        assert!(scan_legacy_entries(Family::Inet, &[0; 10], &[], &[]).is_err());
    }
}
