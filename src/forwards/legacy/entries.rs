//! The legacy x_tables' rule blob, as IPT_SO_GET_ENTRIES (and
//! IP6T_SO_GET_ENTRIES) return it: entries one after another, each an
//! ipt_entry (or ip6t_entry) with its matches and its target. Built-in
//! chains start at the offsets the table's info gives per hook; a user
//! chain starts after an entry whose target is ERROR and names it; a
//! jump is a standard target whose verdict is the offset of the chain's
//! first entry. Pure functions over bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::forwards::conditions::{
    Action, Branch, Conditions, IPV4, IPV6, PortSet, RuleMeaning, TCP, UDP, protocol_bits,
};
use crate::forwards::model::{
    AddressMatch, Direction, Hook, InterfaceMatch, InterfaceName, RuleSource, TableFamily,
};
use crate::forwards::walk::{ChainRules, Table};
use crate::forwards::xt::{self, MatchMeaning};
use crate::socket::Family;

/// What IPT_SO_GET_INFO says of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    /// Bit N set: the table has a chain at hook N.
    pub valid_hooks: u32,
    /// The offset of each hook's chain.
    pub hook_entry: [u32; 5],
    /// The offset of each hook's policy entry (its last).
    pub underflow: [u32; 5],
    /// The size of the blob.
    pub size: u32,
}

/// sizeof(struct ipt_getinfo), which ip6t_getinfo shares.
pub const INFO_LEN: usize = 84;

impl TableInfo {
    /// The info from the bytes of struct ipt_getinfo { char name[32];
    /// u32 valid_hooks, hook_entry[5], underflow[5], num_entries, size }.
    pub fn decode(bytes: &[u8]) -> Option<TableInfo> {
        if bytes.len() < INFO_LEN {
            return None;
        }
        let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        Some(TableInfo {
            valid_hooks: word(32),
            hook_entry: std::array::from_fn(|i| word(36 + 4 * i)),
            underflow: std::array::from_fn(|i| word(56 + 4 * i)),
            size: word(80),
        })
    }
}

/// The layout of an entry of one family.
struct Layout {
    /// sizeof(struct ipt_entry) or ip6t_entry: where the matches start.
    entry: usize,
    /// offsetof(target_offset); next_offset follows it.
    target_offset: usize,
}

const IPV4_LAYOUT: Layout = Layout {
    entry: 112,
    target_offset: 88,
};
const IPV6_LAYOUT: Layout = Layout {
    entry: 168,
    target_offset: 140,
};

/// The header of a match or target: u16 size, char name[29], u8
/// revision.
const XT_HEADER: usize = 32;

/// The names of the built-in chains, by hook number.
const HOOK_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// One entry, split.
struct Entry<'a> {
    offset: u32,
    header: &'a [u8],
    matches: &'a [u8],
    target_name: String,
    target_revision: u8,
    target_data: &'a [u8],
}

/// The entries of the blob, or what is wrong with it.
fn entries<'a>(blob: &'a [u8], layout: &Layout) -> Result<Vec<Entry<'a>>, String> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset < blob.len() {
        let rest = &blob[offset..];
        if rest.len() < layout.entry {
            return Err(format!("an entry cut short at offset {offset}"));
        }
        let half = |at: usize| usize::from(u16::from_ne_bytes([rest[at], rest[at + 1]]));
        let target_offset = half(layout.target_offset);
        let next_offset = half(layout.target_offset + 2);
        if target_offset < layout.entry
            || target_offset + XT_HEADER > next_offset
            || next_offset > rest.len()
        {
            return Err(format!("an entry with bad offsets at offset {offset}"));
        }
        let target = &rest[target_offset..next_offset];
        let target_size = usize::from(u16::from_ne_bytes([target[0], target[1]]));
        let target_end = target_size.clamp(XT_HEADER, target.len());
        out.push(Entry {
            offset: offset as u32,
            header: &rest[..layout.entry],
            matches: &rest[layout.entry..target_offset],
            target_name: name_of(&target[2..31]),
            target_revision: target[31],
            target_data: &target[XT_HEADER..target_end],
        });
        offset += next_offset;
    }
    Ok(out)
}

fn name_of(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The nat table from its info and blob, its rules interpreted. Rules
/// that cannot meet the ports in `asked` are dropped.
pub fn table_of(
    family: Family,
    name: &str,
    info: &TableInfo,
    blob: &[u8],
    asked: &PortSet,
) -> Result<Table, String> {
    let ipv6 = family == Family::Inet6;
    let layout = if ipv6 { &IPV6_LAYOUT } else { &IPV4_LAYOUT };
    let entries = entries(blob, layout)?;
    // Where each chain starts: the hooks' chains, and after each ERROR
    // entry that names a user chain.
    let mut starts: Vec<(u32, String, Option<Hook>)> = Vec::new();
    for (hook, chain) in HOOK_CHAINS.iter().enumerate() {
        if info.valid_hooks & (1 << hook) != 0 {
            let nat_hook = match hook {
                0 => Some(Hook::Prerouting),
                3 => Some(Hook::Output),
                _ => None,
            };
            starts.push((info.hook_entry[hook], chain.to_string(), nat_hook));
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        if entry.target_name == "ERROR" {
            let chain = name_of(entry.target_data);
            if chain != "ERROR" {
                if let Some(next) = entries.get(i + 1) {
                    starts.push((next.offset, chain, None));
                }
            }
        }
    }
    starts.sort_by_key(|(offset, ..)| *offset);
    let policies: Vec<u32> = (0..5)
        .filter(|hook| info.valid_hooks & (1 << hook) != 0)
        .map(|hook| info.underflow[hook])
        .collect();
    let mut table = Table {
        source: RuleSource::IptablesLegacy,
        family: if ipv6 {
            TableFamily::Ip6
        } else {
            TableFamily::Ip
        },
        name: name.to_string(),
        chains: starts
            .iter()
            .map(|(_, name, hook)| ChainRules {
                name: name.clone(),
                hook: *hook,
                rules: Vec::new(),
            })
            .collect(),
    };
    for entry in &entries {
        if entry.target_name == "ERROR" || policies.contains(&entry.offset) {
            continue;
        }
        // The last chain that starts at or before the entry.
        let Some(index) = starts
            .partition_point(|(start, ..)| *start <= entry.offset)
            .checked_sub(1)
        else {
            continue;
        };
        let chain = &mut table.chains[index];
        let number = chain.rules.len() as u64 + 1;
        let mut meaning = interpret(entry, ipv6, &starts);
        meaning.id = number;
        meaning.branches.retain(|b| b.conditions.ports.meets(asked));
        chain.rules.push(meaning);
    }
    Ok(table)
}

/// What one entry means.
fn interpret(entry: &Entry<'_>, ipv6: bool, starts: &[(u32, String, Option<Hook>)]) -> RuleMeaning {
    let families = if ipv6 { IPV6 } else { IPV4 };
    // A goto (IPT_F_GOTO) is followed like a jump.
    let mut conditions = if ipv6 {
        ip6_conditions(entry.header)
    } else {
        ip_conditions(entry.header)
    };
    let mut comment = None;
    let mut matches = entry.matches;
    while matches.len() >= XT_HEADER {
        let size = usize::from(u16::from_ne_bytes([matches[0], matches[1]]));
        if size < XT_HEADER || size > matches.len() {
            conditions.port_unknown("a match with a bad size");
            break;
        }
        let name = name_of(&matches[2..31]);
        let revision = u32::from(matches[31]);
        match xt::decode_match(&name, revision, &matches[XT_HEADER..size], families) {
            MatchMeaning::Narrow(narrow) => conditions = conditions.and(&narrow),
            MatchMeaning::Comment(text) => comment = Some(text),
        }
        matches = &matches[size..];
    }
    let action = match entry.target_name.as_str() {
        // The standard target: a verdict, or the offset of a jump.
        "" => match entry.target_data.get(0..4) {
            Some(bytes) => {
                let verdict = i32::from_ne_bytes(bytes.try_into().unwrap());
                if verdict < 0 {
                    Action::Stop
                } else {
                    match starts.binary_search_by_key(&(verdict as u32), |(start, ..)| *start) {
                        Ok(i) => Action::Jump(starts[i].1.clone()),
                        Err(_) => Action::Undecoded(format!("a jump to offset {verdict}")),
                    }
                }
            }
            None => Action::Undecoded("a standard target without its verdict".into()),
        },
        name => xt::decode_target(
            name,
            u32::from(entry.target_revision),
            entry.target_data,
            ipv6,
        ),
    };
    RuleMeaning {
        id: 0,
        comment,
        branches: vec![Branch { conditions, action }],
    }
}

/// The conditions of struct ipt_ip { be32 src, dst, smsk, dmsk; char
/// iniface[16], outiface[16]; u8 iniface_mask[16], outiface_mask[16];
/// u16 proto; u8 flags, invflags }.
fn ip_conditions(ip: &[u8]) -> Conditions {
    let mut c = Conditions::any(IPV4);
    let (flags, invflags) = (ip[82], ip[83]);
    // IPT_INV_*: 0x01 in, 0x02 out, 0x08 source, 0x10 destination,
    // 0x40 protocol.
    if ip[12..16] != [0; 4] {
        let mask = &ip[12..16];
        match prefix_of(mask) {
            Some(prefix) => {
                let a: Vec<u8> = ip[4..8].iter().zip(mask).map(|(a, m)| a & m).collect();
                c.destinations.push(AddressMatch {
                    network: IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
                    prefix,
                    negated: invflags & 0x10 != 0,
                });
            }
            None => c.unread("the destination address under a mask that is not a prefix"),
        }
    }
    if ip[8..12] != [0; 4] {
        c.unread("the source address");
    }
    interfaces(
        &mut c,
        &ip[16..32],
        &ip[48..64],
        Direction::In,
        invflags & 0x01 != 0,
    );
    interfaces(
        &mut c,
        &ip[32..48],
        &ip[64..80],
        Direction::Out,
        invflags & 0x02 != 0,
    );
    let proto = u16::from_ne_bytes([ip[80], ip[81]]);
    protocol(&mut c, proto, invflags & 0x40 != 0);
    // IPT_F_FRAG: only second and later fragments, which carry no port.
    if flags & 0x01 != 0 {
        c.unread("fragments");
    }
    c
}

/// The conditions of struct ip6t_ip6 { in6_addr src, dst, smsk, dmsk;
/// char iniface[16], outiface[16]; u8 iniface_mask[16],
/// outiface_mask[16]; u16 proto; u8 tos, flags, invflags }.
fn ip6_conditions(ip: &[u8]) -> Conditions {
    let mut c = Conditions::any(IPV6);
    let (flags, invflags) = (ip[131], ip[132]);
    if ip[48..64] != [0; 16] {
        let mask = &ip[48..64];
        match prefix_of(mask) {
            Some(prefix) => {
                let mut a = [0u8; 16];
                for (i, byte) in a.iter_mut().enumerate() {
                    *byte = ip[16 + i] & mask[i];
                }
                c.destinations.push(AddressMatch {
                    network: IpAddr::V6(Ipv6Addr::from(a)),
                    prefix,
                    negated: invflags & 0x10 != 0,
                });
            }
            None => c.unread("the destination address under a mask that is not a prefix"),
        }
    }
    if ip[32..48] != [0; 16] {
        c.unread("the source address");
    }
    interfaces(
        &mut c,
        &ip[64..80],
        &ip[96..112],
        Direction::In,
        invflags & 0x01 != 0,
    );
    interfaces(
        &mut c,
        &ip[80..96],
        &ip[112..128],
        Direction::Out,
        invflags & 0x02 != 0,
    );
    // IP6T_F_PROTO: the protocol is tested at all.
    if flags & 0x01 != 0 {
        let proto = u16::from_ne_bytes([ip[128], ip[129]]);
        protocol(&mut c, proto, invflags & 0x40 != 0);
    }
    // IP6T_F_TOS.
    if flags & 0x02 != 0 {
        c.unread("the traffic class");
    }
    c
}

fn protocol(c: &mut Conditions, proto: u16, negated: bool) {
    if proto == 0 {
        return;
    }
    let bits = u8::try_from(proto).map(protocol_bits).unwrap_or(0);
    c.protocols = if negated { (TCP | UDP) & !bits } else { bits };
}

/// An interface condition: the name, and the mask iptables writes over
/// it (0xff over the name and its NUL; over the name alone for a
/// wildcard, `eth+`).
fn interfaces(c: &mut Conditions, name: &[u8], mask: &[u8], direction: Direction, negated: bool) {
    let covered = mask.iter().take_while(|&&b| b == 0xff).count();
    if covered == 0 {
        return;
    }
    let text = name_of(name);
    let name = if covered > text.len() {
        InterfaceName::Exact(text)
    } else {
        InterfaceName::Prefix(name_of(&name[..covered]))
    };
    c.interfaces.push(InterfaceMatch {
        direction,
        name,
        negated,
    });
}

/// The prefix length of a mask of contiguous leading ones.
fn prefix_of(mask: &[u8]) -> Option<u8> {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let mut expected = vec![0u8; mask.len()];
    for bit in 0..ones as usize {
        expected[bit / 8] |= 0x80 >> (bit % 8);
    }
    (expected == mask).then_some(ones as u8)
}

#[cfg(test)]
mod tests;
