//! What a scan of the forwarding rules finds: the forwards that take a
//! port without a socket, the rules lsport could not read, and what it
//! could not see at all. Plain data; nothing here does I/O.

use std::fmt;
use std::net::IpAddr;

use crate::socket::{Family, PortRange, Protocol};

/// Where a rule was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// nf_tables, over netlink: what `nft` and `iptables-nft` write.
    Nftables,
    /// The legacy x_tables (the ip_tables and ip6_tables kernel code):
    /// what `iptables-legacy` writes.
    IptablesLegacy,
}

impl RuleSource {
    /// The name in output: `nftables` or `iptables-legacy`.
    pub fn name(self) -> &'static str {
        match self {
            RuleSource::Nftables => "nftables",
            RuleSource::IptablesLegacy => "iptables-legacy",
        }
    }
}

/// The family of a table, as `nft list table FAMILY NAME` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFamily {
    /// IPv4 only (NFPROTO_IPV4); iptables' tables.
    Ip,
    /// IPv6 only (NFPROTO_IPV6); ip6tables' tables.
    Ip6,
    /// Both (NFPROTO_INET): one nftables table for IPv4 and IPv6.
    Inet,
}

impl TableFamily {
    /// The family's name in nft's syntax: `ip`, `ip6` or `inet`.
    pub fn name(self) -> &'static str {
        match self {
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
            TableFamily::Inet => "inet",
        }
    }

    /// The traffic the table sees.
    pub fn families(self) -> &'static [Family] {
        match self {
            TableFamily::Ip => &[Family::Inet],
            TableFamily::Ip6 => &[Family::Inet6],
            TableFamily::Inet => &[Family::Inet, Family::Inet6],
        }
    }
}

/// The netfilter hook a nat chain is attached to, which says whose
/// traffic its rules rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Before routing: traffic arriving from outside (another host, a
    /// container, a bridge). A local program connecting to the port does
    /// not pass here.
    Prerouting,
    /// Locally generated traffic: programs on this host (in this network
    /// namespace) connecting to the port.
    Output,
}

impl Hook {
    /// The hook's name as nft writes it: `prerouting` or `output`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Output => "output",
        }
    }

    /// Whose traffic passes the hook, for a sentence.
    pub fn traffic(self) -> &'static str {
        match self {
            Hook::Prerouting => "traffic arriving from outside",
            Hook::Output => "traffic generated on this host",
        }
    }
}

/// Where a rule sits: its table, and the chains from the hooked base
/// chain down to the rule's own, in the order a packet takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePlace {
    /// nftables or iptables-legacy.
    pub source: RuleSource,
    /// The table's family.
    pub family: TableFamily,
    /// The table's name (`nat` for iptables).
    pub table: String,
    /// The base chain first, then each chain jumped to; the last one
    /// holds the rule. Never empty.
    pub chains: Vec<String>,
    /// The hook of the base chain.
    pub hook: Hook,
    /// nftables: the rule's handle (`nft -a list ruleset`);
    /// iptables-legacy: its number in its chain, from 1
    /// (`iptables -t nat -L --line-numbers`).
    pub rule: u64,
    /// The rule's place in its chain, from 1: the number iptables gives
    /// it (`iptables -t nat -D CHAIN N`), for iptables-nft's tables too.
    pub position: u64,
}

impl RulePlace {
    /// The chain that holds the rule.
    pub fn chain(&self) -> &str {
        self.chains.last().map(String::as_str).unwrap_or("")
    }

    /// The table as nft names it, `ip nat`; `iptables-legacy nat` for
    /// the legacy tables.
    pub fn table_name(&self) -> String {
        match self.source {
            RuleSource::Nftables => format!("{} {}", self.family.name(), self.table),
            RuleSource::IptablesLegacy => {
                let tool = match self.family {
                    TableFamily::Ip6 => "ip6tables-legacy",
                    _ => "iptables-legacy",
                };
                format!("{tool} {}", self.table)
            }
        }
    }

    /// The chains as a path: `PREROUTING -> DOCKER`.
    pub fn path(&self) -> String {
        self.chains.join(" -> ")
    }

    /// The command that deletes the rule, and with it the forward:
    /// `nft delete rule ip nat DOCKER handle 7` for nf_tables (which
    /// iptables-nft's tables are too), `iptables-legacy -t nat -D DOCKER
    /// 2` for the legacy tables.
    pub fn delete_command(&self) -> String {
        match self.source {
            RuleSource::Nftables => format!(
                "nft delete rule {} {} {} handle {}",
                self.family.name(),
                self.table,
                self.chain(),
                self.rule
            ),
            RuleSource::IptablesLegacy => {
                let tool = match self.family {
                    TableFamily::Ip6 => "ip6tables-legacy",
                    _ => "iptables-legacy",
                };
                format!(
                    "{tool} -t {} -D {} {}",
                    self.table,
                    self.chain(),
                    self.position
                )
            }
        }
    }

    /// Whether `other` is the same rule, reached from the same or
    /// another hook.
    pub fn same_rule(&self, other: &RulePlace) -> bool {
        self.source == other.source
            && self.family == other.family
            && self.table == other.table
            && self.chain() == other.chain()
            && self.rule == other.rule
    }

    /// What the rule is called by the tool that lists it: `rule handle
    /// 7` in nftables (`nft -a`), `rule 2` in iptables-legacy.
    pub fn rule_name(&self) -> String {
        match self.source {
            RuleSource::Nftables => format!("rule handle {}", self.rule),
            RuleSource::IptablesLegacy => format!("rule {}", self.rule),
        }
    }
}

impl fmt::Display for RulePlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {}, chain {}, {}",
            self.table_name(),
            self.path(),
            self.rule_name()
        )
    }
}

/// Which interface a rule asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InterfaceName {
    /// This interface, by name.
    Exact(String),
    /// Any interface whose name starts with this (`eth+` in iptables,
    /// `"eth*"` in nft).
    Prefix(String),
    /// An interface by its index (nft's `iif`/`oif`, which keep the
    /// index and not the name).
    Index(u32),
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceName::Exact(name) => f.write_str(name),
            InterfaceName::Prefix(prefix) => write!(f, "{prefix}*"),
            InterfaceName::Index(index) => write!(f, "interface #{index}"),
        }
    }
}

/// Whether an interface match is on the way in or the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The interface the packet arrived on (`-i`, `iifname`).
    In,
    /// The interface it leaves by (`-o`, `oifname`).
    Out,
}

/// A condition on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InterfaceMatch {
    /// In or out.
    pub direction: Direction,
    /// The interface.
    pub name: InterfaceName,
    /// True for "any interface but this one" (`! -i docker0`).
    pub negated: bool,
}

impl fmt::Display for InterfaceMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (from, not_from) = match self.direction {
            Direction::In => ("arriving on", "not arriving on"),
            Direction::Out => ("leaving by", "not leaving by"),
        };
        let words = if self.negated { not_from } else { from };
        write!(f, "{words} {}", self.name)
    }
}

/// A condition on the destination address: a network, or its negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressMatch {
    /// The network's first address.
    pub network: IpAddr,
    /// The prefix length (32 or 128 for one address).
    pub prefix: u8,
    /// True for "any address outside this network" (`! -d 127.0.0.0/8`).
    pub negated: bool,
}

impl fmt::Display for AddressMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = if self.negated { "not " } else { "" };
        let full = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{not}to {}", self.network)
        } else {
            write!(f, "{not}to {}/{}", self.network, self.prefix)
        }
    }
}

/// A condition on the type of the destination address, as the routing
/// table has it (`-m addrtype --dst-type LOCAL`, `fib daddr type local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressTypeMatch {
    /// Bit N set: route type N (RTN_LOCAL is 2, so LOCAL is bit 2).
    pub types: u16,
    /// True for "of none of these types".
    pub negated: bool,
    /// The type is looked up for the interface the packet arrived on
    /// only (`--limit-iface-in`, `fib daddr . iif type`).
    pub on_incoming_interface: bool,
}

/// The kernel's route types (RTN_*), by number, as iptables names them.
const ROUTE_TYPES: [&str; 12] = [
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
];

impl AddressTypeMatch {
    /// RTN_LOCAL: an address of this host (in this namespace).
    pub const LOCAL: u16 = 1 << 2;

    /// The type names, `LOCAL` or `LOCAL,BROADCAST`.
    pub fn type_names(&self) -> String {
        let mut names = Vec::new();
        for (bit, name) in ROUTE_TYPES.iter().enumerate() {
            if self.types & (1 << bit) != 0 {
                names.push((*name).to_string());
            }
        }
        for bit in ROUTE_TYPES.len()..16 {
            if self.types & (1 << bit) != 0 {
                names.push(format!("type {bit}"));
            }
        }
        names.join(",")
    }
}

impl fmt::Display for AddressTypeMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = if self.negated { "not " } else { "" };
        write!(f, "{not}to an address of type {}", self.type_names())?;
        if self.on_incoming_interface {
            f.write_str(" on the incoming interface")?;
        }
        Ok(())
    }
}

/// Where a forward sends the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Destination NAT: to another address (a container, another host),
    /// and maybe another port.
    Dnat {
        /// The first and last address of the range the kernel picks
        /// from (the same for one address); None keeps the address and
        /// changes only the port.
        addresses: Option<(IpAddr, IpAddr)>,
        /// The new port or range of ports; None keeps the port.
        ports: Option<PortRange>,
    },
    /// Redirect to this host itself (to the primary address of the
    /// incoming interface, or to the loopback for local traffic).
    Redirect {
        /// The new port or range of ports; None keeps the port.
        ports: Option<PortRange>,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = |ports: &Option<PortRange>| match ports {
            Some(range) => format!("port {range}"),
            None => "the same port".to_string(),
        };
        match self {
            Target::Dnat {
                addresses: Some((first, last)),
                ports: port_range,
            } => {
                let address = |a: &IpAddr| match a {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                };
                let addresses = if first == last {
                    address(first)
                } else {
                    format!("{}-{}", address(first), address(last))
                };
                match port_range {
                    Some(range) => write!(f, "{addresses}:{range}"),
                    None => write!(f, "{addresses} (same port)"),
                }
            }
            Target::Dnat {
                addresses: None,
                ports: port_range,
            } => write!(f, "{} (same address)", ports(port_range)),
            Target::Redirect { ports: port_range } => {
                write!(f, "this host, {}", ports(port_range))
            }
        }
    }
}

/// A rule (reached through its chains) that sends a port's traffic
/// elsewhere: no socket holds the port, yet a server bound to it would
/// not get that traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The rule that rewrites the destination, and how it is reached.
    pub place: RulePlace,
    /// The rule's comment (`nft ... comment "..."`, `-m comment`), or
    /// failing that the nearest one on the jumps to it: Kubernetes and
    /// firewalld fill them with what the rule is for.
    pub comment: Option<String>,
    /// The traffic it applies to: IPv4, IPv6 or both.
    pub families: Vec<Family>,
    /// TCP, UDP or both: a rule that names no protocol forwards both.
    pub protocols: Vec<Protocol>,
    /// The destination ports it matches, sorted and disjoint; 0-65535
    /// when it names no port (every port).
    pub ports: Vec<PortRange>,
    /// Conditions on interfaces, all of which hold.
    pub interfaces: Vec<InterfaceMatch>,
    /// Conditions on the destination address, all of which hold.
    pub destinations: Vec<AddressMatch>,
    /// Conditions on the destination address's type, all of which hold.
    pub destination_types: Vec<AddressTypeMatch>,
    /// Further conditions the rule or a chain on the way sets, which
    /// lsport does not read (`ct state new`, `-m statistic`): the forward
    /// may apply to only part of the traffic described above.
    pub unread_conditions: Vec<String>,
    /// Where the traffic goes.
    pub target: Target,
}

impl Forward {
    /// Whether the forward takes `port`.
    pub fn takes(&self, port: u16) -> bool {
        self.ports.iter().any(|range| range.contains(port))
    }

    /// Whether it names no port: every port is forwarded.
    pub fn every_port(&self) -> bool {
        self.ports == [PortRange { lo: 0, hi: 65535 }]
    }

    /// The hook, which says whose traffic is forwarded.
    pub fn hook(&self) -> Hook {
        self.place.hook
    }
}

/// A rule on the way to a forward that lsport could not read: it may
/// forward the port or not, and lsport does not guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodedRule {
    /// Where the rule sits (its chain is the last of `place.chains`).
    pub place: RulePlace,
    /// What lsport could not read, for a sentence.
    pub what: String,
    /// The destination ports it may apply to, as far as lsport could
    /// tell: 0-65535 when it could not tell at all.
    pub ports: Vec<PortRange>,
}

impl fmt::Display for UndecodedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in chain {} (table {}, reached by {}) uses an expression lsport does not decode: {}",
            self.place.rule_name(),
            self.place.chain(),
            self.place.table_name(),
            self.place.path(),
            self.what
        )
    }
}

/// Rules lsport could not read at all: the answer says so, and never
/// calls a port free because of what it did not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// The nf_tables dump was refused (reading rules needs
    /// CAP_NET_ADMIN).
    Nftables {
        /// The errno of the refusal (EPERM).
        errno: i32,
    },
    /// The list of legacy tables (`/proc/net/ip_tables_names` or
    /// `ip6_tables_names`) exists but could not be read.
    LegacyTableNames {
        /// IPv4 (ip_tables) or IPv6 (ip6_tables).
        family: Family,
        /// The errno of the failed read.
        errno: i32,
    },
    /// A legacy nat table exists but could not be read.
    LegacyTable {
        /// IPv4 (ip_tables) or IPv6 (ip6_tables).
        family: Family,
        /// The table, `nat`.
        table: String,
        /// The errno of the refusal (EPERM without CAP_NET_ADMIN).
        errno: i32,
    },
    /// The rules could not be asked for at all, or the replies were
    /// not well formed.
    Failed {
        /// What went wrong, in words.
        message: String,
    },
}

impl Unreadable {
    /// The stable name in a JSON `blind_spots` list.
    pub fn id(&self) -> &'static str {
        match self {
            Unreadable::Nftables { .. } => "nftables_rules",
            Unreadable::LegacyTableNames { .. } | Unreadable::LegacyTable { .. } => {
                "iptables_legacy_rules"
            }
            Unreadable::Failed { .. } => "forwarding_rules",
        }
    }

    /// The errno behind it; 0 for a failure that has none.
    pub fn errno(&self) -> i32 {
        match self {
            Unreadable::Nftables { errno }
            | Unreadable::LegacyTableNames { errno, .. }
            | Unreadable::LegacyTable { errno, .. } => *errno,
            Unreadable::Failed { .. } => 0,
        }
    }

    /// Which rules: `nftables`, `iptables-legacy`, or `rules` for a
    /// failure to ask at all.
    pub fn source_name(&self) -> &'static str {
        match self {
            Unreadable::Nftables { .. } => "nftables",
            Unreadable::LegacyTableNames { .. } | Unreadable::LegacyTable { .. } => {
                "iptables-legacy"
            }
            Unreadable::Failed { .. } => "rules",
        }
    }

    /// Why, in words: the system's words for the errno, or the failure.
    pub fn reason(&self) -> String {
        match self {
            Unreadable::Failed { message } => message.clone(),
            _ => strerror(self.errno()),
        }
    }

    /// Whether root (CAP_NET_ADMIN) would read what was refused here.
    pub fn refused(&self) -> bool {
        matches!(self.errno(), libc::EPERM | libc::EACCES)
    }

    /// What was not read, why, and what shows it, in one line.
    pub fn describe(&self) -> String {
        let why = strerror(self.errno());
        let root = match (self, self.errno()) {
            (Unreadable::LegacyTableNames { .. }, libc::EPERM | libc::EACCES) => {
                "; root reads them"
            }
            (_, libc::EPERM | libc::EACCES) => "; root (CAP_NET_ADMIN) reads them",
            _ => "",
        };
        match self {
            Unreadable::Nftables { .. } => {
                format!("forwarding rules (nftables, iptables-nft) were not read: {why}{root}")
            }
            Unreadable::LegacyTableNames { family, .. } => format!(
                "the legacy {} tables were not listed: {why}{root}",
                legacy_tool(*family)
            ),
            Unreadable::LegacyTable { family, table, .. } => format!(
                "the legacy {} table {table} was not read: {why}{root}",
                legacy_tool(*family)
            ),
            Unreadable::Failed { message } => {
                format!("forwarding rules were not read: {message}")
            }
        }
    }
}

/// The system's words for an errno, without Rust's "(os error N)".
fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

fn legacy_tool(family: Family) -> &'static str {
    match family {
        Family::Inet => "iptables",
        Family::Inet6 => "ip6tables",
    }
}

/// What was read, so that an empty answer can say what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesRead {
    /// The nf_tables families read (ip, ip6, inet); empty when the
    /// kernel has no nf_tables or the dump was refused.
    pub nftables: Vec<TableFamily>,
    /// The legacy tables read, as (family, table name).
    pub legacy: Vec<(Family, String)>,
    /// Whether the kernel has the legacy x_tables at all (the files
    /// `/proc/net/ip_tables_names` or `ip6_tables_names` exist).
    pub legacy_present: bool,
}

impl RulesRead {
    /// What was read, for a sentence: `nftables (ip, ip6, inet),
    /// iptables-legacy nat`; the legacy tables are said to be absent
    /// where the kernel has none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.nftables.is_empty() {
            let families: Vec<&str> = self.nftables.iter().map(|f| f.name()).collect();
            parts.push(format!("nftables ({})", families.join(", ")));
        }
        for (family, table) in &self.legacy {
            parts.push(format!("{}-legacy {table}", legacy_tool(*family)));
        }
        if !self.legacy_present {
            parts.push("no legacy iptables in this kernel".to_string());
        }
        if parts.is_empty() {
            return "no rules".to_string();
        }
        parts.join(", ")
    }
}

/// The answer of a scan: the forwards on the ports asked about, the
/// rules that may be such forwards but could not be read, and what
/// could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardScan {
    /// The forwards that take one of the ports asked about.
    pub forwards: Vec<Forward>,
    /// Rules on the way to a forward that lsport could not decode and
    /// that may apply to a port asked about.
    pub undecoded: Vec<UndecodedRule>,
    /// Rules that could not be read at all: blind spots.
    pub unreadable: Vec<Unreadable>,
    /// What was read.
    pub read: RulesRead,
}

impl ForwardScan {
    /// The forwards that take `port`.
    pub fn forwards_of(&self, port: u16) -> impl Iterator<Item = &Forward> {
        self.forwards.iter().filter(move |f| f.takes(port))
    }

    /// Whether anything kept the scan from being complete: rules that
    /// could not be read or decoded.
    pub fn is_complete(&self) -> bool {
        self.undecoded.is_empty() && self.unreadable.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_an_address_and_a_port() {
        let v6: IpAddr = "fd00::2".parse().unwrap();
        let one = Target::Dnat {
            addresses: Some((v6, v6)),
            ports: Some(PortRange { lo: 80, hi: 81 }),
        };
        assert_eq!(one.to_string(), "[fd00::2]:80-81");
        let first: IpAddr = "10.0.0.9".parse().unwrap();
        let last: IpAddr = "10.0.0.10".parse().unwrap();
        let range = Target::Dnat {
            addresses: Some((first, last)),
            ports: None,
        };
        assert_eq!(range.to_string(), "10.0.0.9-10.0.0.10 (same port)");
        let port_only = Target::Dnat {
            addresses: None,
            ports: Some(PortRange::single(8080)),
        };
        assert_eq!(port_only.to_string(), "port 8080 (same address)");
        let redirect = Target::Redirect { ports: None };
        assert_eq!(redirect.to_string(), "this host, the same port");
    }

    #[test]
    fn what_was_read_and_what_was_not_in_one_line() {
        let read = RulesRead {
            nftables: vec![TableFamily::Ip, TableFamily::Inet],
            legacy: vec![(Family::Inet6, "nat".into())],
            legacy_present: true,
        };
        assert_eq!(read.describe(), "nftables (ip, inet), ip6tables-legacy nat");
        let none = RulesRead {
            nftables: Vec::new(),
            legacy: Vec::new(),
            legacy_present: false,
        };
        assert_eq!(none.describe(), "no legacy iptables in this kernel");
        let names = Unreadable::LegacyTableNames {
            family: Family::Inet,
            errno: libc::EACCES,
        };
        assert_eq!(
            names.describe(),
            "the legacy iptables tables were not listed: Permission denied; root reads them"
        );
        let types = AddressTypeMatch {
            types: AddressTypeMatch::LOCAL | 1 << 3,
            negated: true,
            on_incoming_interface: true,
        };
        assert_eq!(
            types.to_string(),
            "not to an address of type LOCAL,BROADCAST on the incoming interface"
        );
    }
}
