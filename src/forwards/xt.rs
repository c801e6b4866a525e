//! The x_tables match and target blobs: the kernel structures that
//! iptables fills for `-m tcp --dport`, `-m addrtype`, `-j DNAT` and
//! `-j REDIRECT`. iptables-nft wraps them in nf_tables `match` and
//! `target` expressions; iptables-legacy keeps them in its entries. Both
//! come here. Pure functions over bytes.
//!
//! Ports in the match blobs are in host byte order; addresses and ports
//! in the NAT ranges are in network byte order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::socket::PortRange;

use super::conditions::{Action, Conditions, PortSet, TCP, UDP};
use super::model::{AddressTypeMatch, Target};

/// What a match means for the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchMeaning {
    /// Conditions to add to the rule's.
    Narrow(Conditions),
    /// A comment (`-m comment --comment`): no condition.
    Comment(String),
}

/// Matches that test something other than the destination port: a
/// rule with one of them forwards part of the traffic its other
/// conditions describe, and lsport says so without reading them.
const NARROWING_MATCHES: &[&str] = &[
    "cgroup",
    "cluster",
    "connbytes",
    "connlimit",
    "connmark",
    "conntrack",
    "cpu",
    "devgroup",
    "dscp",
    "ecn",
    "hashlimit",
    "helper",
    "hl",
    "iprange",
    "ipvs",
    "length",
    "limit",
    "mac",
    "mark",
    "nfacct",
    "owner",
    "physdev",
    "pkttype",
    "policy",
    "quota",
    "realm",
    "recent",
    "rpfilter",
    "socket",
    "state",
    "statistic",
    "string",
    "time",
    "tos",
    "ttl",
];

/// What the match `name` (revision `revision`) with its blob `info`
/// means, for traffic of `families` (the IPV4/IPV6 bits).
pub fn decode_match(name: &str, revision: u32, info: &[u8], families: u8) -> MatchMeaning {
    let mut conditions = Conditions::any(families);
    let read = match (name, revision) {
        ("tcp", 0) => tcp_or_udp(info, TCP, 12, 11, &mut conditions),
        ("udp", 0) => tcp_or_udp(info, UDP, 10, 8, &mut conditions),
        ("multiport", 0 | 1) => multiport(info, revision, &mut conditions),
        ("addrtype", 0 | 1) => addrtype(info, revision, &mut conditions),
        ("comment", 0) => {
            let end = info.iter().position(|&b| b == 0).unwrap_or(info.len());
            return MatchMeaning::Comment(String::from_utf8_lossy(&info[..end]).into_owned());
        }
        // ICMP is neither TCP nor UDP.
        ("icmp" | "icmp6", _) => {
            conditions.protocols = 0;
            true
        }
        _ if NARROWING_MATCHES.contains(&name) => {
            conditions.unread(format!("xt match {name}"));
            true
        }
        _ => false,
    };
    if !read {
        // It may test the port: lsport cannot say which ports it takes.
        conditions.port_unknown(format!("xt match {name} (revision {revision})"));
    }
    MatchMeaning::Narrow(conditions)
}

fn u16_ne(info: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([info[at], info[at + 1]])
}

/// struct xt_tcp { u16 spts[2], dpts[2]; u8 option, flg_mask, flg_cmp,
/// invflags } and struct xt_udp { u16 spts[2], dpts[2]; u8 invflags }.
/// Bit 0x01 of invflags inverts the source ports, 0x02 the destination.
fn tcp_or_udp(
    info: &[u8],
    protocol: u8,
    size: usize,
    invflags_at: usize,
    conditions: &mut Conditions,
) -> bool {
    if info.len() < size {
        return false;
    }
    conditions.protocols = protocol;
    let invflags = info[invflags_at];
    let (sport_lo, sport_hi) = (u16_ne(info, 0), u16_ne(info, 2));
    let dports = PortSet::of([PortRange {
        lo: u16_ne(info, 4),
        hi: u16_ne(info, 6),
    }]);
    conditions.ports = if invflags & 0x02 != 0 {
        dports.complement()
    } else {
        dports
    };
    if (sport_lo, sport_hi) != (0, 65535) || invflags & 0x01 != 0 {
        conditions.unread("the source port");
    }
    // xt_tcp's option and flags (--syn, --tcp-option).
    if protocol == TCP && (info[8] != 0 || info[9] != 0) {
        conditions.unread("TCP flags or options");
    }
    true
}

/// struct xt_multiport { u8 flags, count; u16 ports[15] } (revision 0)
/// and xt_multiport_v1, which adds u8 pflags[15] (pflags[i] set: ports[i]
/// to ports[i + 1] is a range) and u8 invert. flags: 0 source ports,
/// 1 destination ports, 2 either.
fn multiport(info: &[u8], revision: u32, conditions: &mut Conditions) -> bool {
    let size = if revision == 0 { 32 } else { 48 };
    if info.len() < size {
        return false;
    }
    let (flags, count) = (info[0], usize::from(info[1]).min(15));
    let port = |i: usize| u16_ne(info, 2 + 2 * i);
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < count {
        let is_range = revision == 1 && info[32 + i] != 0 && i + 1 < count;
        if is_range {
            ranges.push(PortRange {
                lo: port(i),
                hi: port(i + 1),
            });
            i += 2;
        } else {
            ranges.push(PortRange::single(port(i)));
            i += 1;
        }
    }
    let mut ports = PortSet::of(ranges);
    if revision == 1 && info[47] != 0 {
        ports = ports.complement();
    }
    match flags {
        0 => conditions.unread("the source port (multiport)"),
        1 => conditions.ports = ports,
        // Source or destination: the destination port alone says nothing.
        _ => conditions.port_unknown("xt match multiport on source or destination ports"),
    }
    true
}

/// struct xt_addrtype_info_v1 { u16 source, dest; u32 flags } and
/// revision 0's { u16 source, dest; u32 invert_source, invert_dest }.
/// source and dest are bit masks of route types (bit N: RTN type N).
fn addrtype(info: &[u8], revision: u32, conditions: &mut Conditions) -> bool {
    let size = if revision == 0 { 12 } else { 8 };
    if info.len() < size {
        return false;
    }
    let (source, dest) = (u16_ne(info, 0), u16_ne(info, 2));
    let word = |at: usize| u32::from_ne_bytes(info[at..at + 4].try_into().unwrap());
    // Revision 1's flags: 0x2 invert dest, 0x4 limit to the incoming
    // interface, 0x8 to the outgoing one.
    let (negated, incoming) = if revision == 0 {
        (word(8) != 0, false)
    } else {
        let flags = word(4);
        (flags & 0x2 != 0, flags & 0x4 != 0)
    };
    if dest != 0 {
        conditions.destination_types.push(AddressTypeMatch {
            types: dest,
            negated,
            on_incoming_interface: incoming,
        });
    }
    if source != 0 {
        conditions.unread("the source address type");
    }
    true
}

/// Targets that do not rewrite the destination: the rule goes on (or
/// ends) without forwarding anything.
const TARGETS_THAT_CONTINUE: &[&str] = &[
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "CONNMARK",
    "CONNSECMARK",
    "CT",
    "DSCP",
    "HL",
    "LOG",
    "MARK",
    "NFLOG",
    "NOTRACK",
    "SECMARK",
    "TCPMSS",
    "TOS",
    "TRACE",
    "TTL",
];

/// Whether the NAT range's flags set addresses (NF_NAT_RANGE_MAP_IPS)
/// and ports (NF_NAT_RANGE_PROTO_SPECIFIED); a port offset
/// (NF_NAT_RANGE_PROTO_OFFSET) shifts ports in a way lsport does not
/// show.
const MAP_IPS: u32 = 0x01;
const PROTO_SPECIFIED: u32 = 0x02;
const PROTO_OFFSET: u32 = 0x20;

/// What the target `name` (revision `revision`) with its blob `info`
/// does, in a table whose traffic is IPv4 (`ipv6` false) or IPv6.
pub fn decode_target(name: &str, revision: u32, info: &[u8], ipv6: bool) -> Action {
    let range = match (name, revision) {
        // struct nf_nat_ipv4_multi_range_compat: IPv4 only.
        ("DNAT", 0) | ("REDIRECT", 0) if !ipv6 => ipv4_compat_range(info),
        // struct nf_nat_range (and IPv6's REDIRECT revision 0).
        ("DNAT", 1) | ("REDIRECT", 0) => nat_range(info, 40, ipv6),
        // struct nf_nat_range2: nf_nat_range and a base port.
        ("DNAT", 2) => nat_range(info, 42, ipv6),
        ("SNAT" | "MASQUERADE", _) => return Action::Stop,
        _ if TARGETS_THAT_CONTINUE.contains(&name) => return Action::Continue,
        _ => {
            return Action::Undecoded(format!("xt target {name} (revision {revision})"));
        }
    };
    let Some(range) = range else {
        return Action::Undecoded(format!(
            "xt target {name} (revision {revision}) with a {}-byte range",
            info.len()
        ));
    };
    if range.flags & PROTO_OFFSET != 0 {
        return Action::Undecoded(format!("xt target {name} with a port offset"));
    }
    let ports = (range.flags & PROTO_SPECIFIED != 0).then_some(PortRange {
        lo: range.min_port,
        hi: range.max_port,
    });
    if name == "REDIRECT" {
        return Action::Forward(Target::Redirect { ports });
    }
    let addresses = (range.flags & MAP_IPS != 0).then_some((range.min_address, range.max_address));
    Action::Forward(Target::Dnat { addresses, ports })
}

/// A NAT range, whichever structure held it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRange {
    /// NF_NAT_RANGE_* flags.
    pub flags: u32,
    /// The first address.
    pub min_address: IpAddr,
    /// The last address.
    pub max_address: IpAddr,
    /// The first port.
    pub min_port: u16,
    /// The last port.
    pub max_port: u16,
}

/// struct nf_nat_ipv4_multi_range_compat { u32 rangesize; struct
/// nf_nat_ipv4_range { u32 flags; be32 min_ip, max_ip; be16 min, max }
/// range[1] }: 20 bytes.
fn ipv4_compat_range(info: &[u8]) -> Option<NatRange> {
    if info.len() < 20 || u32::from_ne_bytes(info[0..4].try_into().ok()?) != 1 {
        return None;
    }
    let address = |at: usize| {
        IpAddr::V4(Ipv4Addr::new(
            info[at],
            info[at + 1],
            info[at + 2],
            info[at + 3],
        ))
    };
    Some(NatRange {
        flags: u32::from_ne_bytes(info[4..8].try_into().ok()?),
        min_address: address(8),
        max_address: address(12),
        min_port: u16::from_be_bytes([info[16], info[17]]),
        max_port: u16::from_be_bytes([info[18], info[19]]),
    })
}

/// struct nf_nat_range { u32 flags; union nf_inet_addr min_addr,
/// max_addr (16 bytes each; IPv4 in the first 4); be16 min_proto,
/// max_proto }: 40 bytes; nf_nat_range2 adds be16 base_proto.
fn nat_range(info: &[u8], size: usize, ipv6: bool) -> Option<NatRange> {
    if info.len() < size {
        return None;
    }
    let address = |at: usize| -> IpAddr {
        if ipv6 {
            let bytes: [u8; 16] = info[at..at + 16].try_into().unwrap();
            IpAddr::V6(Ipv6Addr::from(bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                info[at],
                info[at + 1],
                info[at + 2],
                info[at + 3],
            ))
        }
    };
    Some(NatRange {
        flags: u32::from_ne_bytes(info[0..4].try_into().ok()?),
        min_address: address(4),
        max_address: address(20),
        min_port: u16::from_be_bytes([info[36], info[37]]),
        max_port: u16::from_be_bytes([info[38], info[39]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwards::conditions::IPV4;

    fn narrow(meaning: MatchMeaning) -> Conditions {
        match meaning {
            MatchMeaning::Narrow(conditions) => conditions,
            other => panic!("not a condition: {other:?}"),
        }
    }

    #[test]
    fn tcp_match_with_an_inverted_destination_port() {
        let mut info = Vec::new();
        for port in [0u16, 65535, 8081, 8081] {
            info.extend_from_slice(&port.to_ne_bytes()); // spts, dpts
        }
        info.extend_from_slice(&[0, 0, 0, 0x02]); // option, flg_mask, flg_cmp, invflags
        let conditions = narrow(decode_match("tcp", 0, &info, IPV4));
        assert_eq!(conditions.protocols, TCP);
        assert_eq!(
            conditions.ports.ranges(),
            [
                PortRange { lo: 0, hi: 8080 },
                PortRange {
                    lo: 8082,
                    hi: 65535
                }
            ]
        );
        assert!(conditions.unread.is_empty());
    }

    #[test]
    fn multiport_ranges_and_single_ports() {
        let mut info = vec![1u8, 3]; // destination ports, three entries
        for port in [80u16, 8000, 8010] {
            info.extend_from_slice(&port.to_ne_bytes());
        }
        info.resize(48, 0); // ports[15], then pflags[15] and invert
        info[32 + 1] = 1; // pflags[1]: ports[1]..ports[2] is a range
        let conditions = narrow(decode_match("multiport", 1, &info, IPV4));
        assert_eq!(
            conditions.ports.ranges(),
            [PortRange::single(80), PortRange { lo: 8000, hi: 8010 }]
        );
    }

    #[test]
    fn addrtype_local_as_docker_writes_it() {
        // xt_addrtype_info_v1 as captured from iptables-nft:
        // source 0, dest XT_ADDRTYPE_LOCAL (1 << RTN_LOCAL), flags 0.
        let info = [0, 0, 4, 0, 0, 0, 0, 0];
        let conditions = narrow(decode_match("addrtype", 1, &info, IPV4));
        assert_eq!(
            conditions.destination_types,
            [AddressTypeMatch {
                types: AddressTypeMatch::LOCAL,
                negated: false,
                on_incoming_interface: false
            }]
        );
        assert_eq!(conditions.destination_types[0].type_names(), "LOCAL");
    }

    #[test]
    fn unknown_matches_make_the_port_unknown_and_known_ones_narrow() {
        let set = narrow(decode_match("set", 7, &[], IPV4));
        assert_eq!(
            set.port_unknown.as_deref(),
            Some("xt match set (revision 7)")
        );
        let statistic = narrow(decode_match("statistic", 0, &[0; 24], IPV4));
        assert_eq!(statistic.unread, ["xt match statistic"]);
        assert_eq!(statistic.port_unknown, None);
        let mut comment = b"default/web:http".to_vec();
        comment.resize(256, 0);
        assert_eq!(
            decode_match("comment", 0, &comment, IPV4),
            MatchMeaning::Comment("default/web:http".into())
        );
    }

    #[test]
    fn dnat_revision_2_as_iptables_nft_writes_it() {
        #[rustfmt::skip]
        let info: &[u8] = &[
            0x03, 0, 0, 0,                  // flags: MAP_IPS | PROTO_SPECIFIED
            172, 17, 0, 2, 0, 0, 0, 0,      // min_addr 172.17.0.2
            0, 0, 0, 0, 0, 0, 0, 0,
            172, 17, 0, 2, 0, 0, 0, 0,      // max_addr 172.17.0.2
            0, 0, 0, 0, 0, 0, 0, 0,
            0x00, 0x50, 0x00, 0x50,         // min_proto 80, max_proto 80
            0, 0,                           // base_proto
            0, 0, 0, 0, 0, 0,               // padding to XT_ALIGN (48)
        ];
        assert_eq!(
            decode_target("DNAT", 2, info, false),
            Action::Forward(Target::Dnat {
                addresses: Some(("172.17.0.2".parse().unwrap(), "172.17.0.2".parse().unwrap())),
                ports: Some(PortRange::single(80)),
            })
        );
        // Too short a blob is said, not guessed.
        assert!(matches!(
            decode_target("DNAT", 2, &info[..30], false),
            Action::Undecoded(_)
        ));
    }

    #[test]
    fn the_ipv4_compat_range_of_dnat_and_redirect_revision_0() {
        #[rustfmt::skip]
        let info: &[u8] = &[
            1, 0, 0, 0,         // rangesize 1
            0x02, 0, 0, 0,      // flags: PROTO_SPECIFIED
            0, 0, 0, 0,         // min_ip
            0, 0, 0, 0,         // max_ip
            0x1f, 0x90,         // min port 8080
            0x1f, 0x90,         // max port 8080
        ];
        assert_eq!(
            decode_target("REDIRECT", 0, info, false),
            Action::Forward(Target::Redirect {
                ports: Some(PortRange::single(8080))
            })
        );
        assert_eq!(
            decode_target("DNAT", 0, info, false),
            Action::Forward(Target::Dnat {
                addresses: None,
                ports: Some(PortRange::single(8080))
            })
        );
        assert_eq!(decode_target("MARK", 2, &[], false), Action::Continue);
        assert!(matches!(
            decode_target("NETMAP", 0, info, false),
            Action::Undecoded(_)
        ));
    }
}
