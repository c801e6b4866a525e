//! What one rule means, whichever tool wrote it: the conditions a packet
//! must meet, and what the rule then does. nf_tables expressions
//! (`interpret.rs`) and legacy iptables entries (`legacy.rs`) both come
//! down to this; the chain walk (`walk.rs`) joins them along a path.

use crate::socket::{Family, PortRange, Protocol};

use super::model::{AddressMatch, AddressTypeMatch, InterfaceMatch, TableFamily, Target};

/// A set of ports: sorted, disjoint, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet(Vec<PortRange>);

impl PortSet {
    /// Every port, 0 to 65535.
    pub fn all() -> PortSet {
        PortSet(vec![PortRange { lo: 0, hi: 65535 }])
    }

    /// No port.
    #[cfg(test)]
    pub fn none() -> PortSet {
        PortSet(Vec::new())
    }

    /// The union of `ranges`, in any order (a range with lo > hi is
    /// empty).
    pub fn of(ranges: impl IntoIterator<Item = PortRange>) -> PortSet {
        let mut ranges: Vec<PortRange> = ranges.into_iter().filter(|r| r.lo <= r.hi).collect();
        ranges.sort_unstable();
        let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(range.lo) <= u32::from(last.hi) + 1 => {
                    last.hi = last.hi.max(range.hi);
                }
                _ => merged.push(range),
            }
        }
        PortSet(merged)
    }

    /// The ports asked about: every port when none is named.
    pub fn asked(ports: &[PortRange]) -> PortSet {
        if ports.is_empty() {
            PortSet::all()
        } else {
            PortSet::of(ports.iter().copied())
        }
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    /// Whether no port is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ports in both sets.
    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let lo = a.lo.max(b.lo);
            let hi = a.hi.min(b.hi);
            if lo <= hi {
                out.push(PortRange { lo, hi });
            }
            if a.hi < b.hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        PortSet(out)
    }

    /// The ports not in the set.
    pub fn complement(&self) -> PortSet {
        let mut out = Vec::new();
        let mut next: u32 = 0;
        for range in &self.0 {
            if u32::from(range.lo) > next {
                out.push(PortRange {
                    lo: next as u16,
                    hi: range.lo - 1,
                });
            }
            next = u32::from(range.hi) + 1;
        }
        if next <= 65535 {
            out.push(PortRange {
                lo: next as u16,
                hi: 65535,
            });
        }
        PortSet(out)
    }

    /// Whether the sets share a port.
    pub fn meets(&self, other: &PortSet) -> bool {
        !self.intersect(other).is_empty()
    }
}

/// The address families a condition leaves, as bits.
pub const IPV4: u8 = 1;
/// See [`IPV4`].
pub const IPV6: u8 = 2;
/// The transport protocols lsport knows, as bits. A rule for another
/// protocol (SCTP, DCCP) takes no TCP or UDP port and is left out.
pub const TCP: u8 = 1;
/// See [`TCP`].
pub const UDP: u8 = 2;

/// The protocol bits for an IP protocol number.
pub fn protocol_bits(number: u8) -> u8 {
    match number {
        6 => TCP,
        17 => UDP,
        _ => 0,
    }
}

/// The family bits of the traffic a table sees.
pub fn table_families(family: TableFamily) -> u8 {
    match family {
        TableFamily::Ip => IPV4,
        TableFamily::Ip6 => IPV6,
        TableFamily::Inet => IPV4 | IPV6,
    }
}

/// The family bits for an NFPROTO_* number.
pub fn family_bits(nfproto: u8) -> u8 {
    match nfproto {
        2 => IPV4,
        10 => IPV6,
        _ => 0,
    }
}

/// What a packet must meet for a rule (or a path of rules) to apply.
/// Every field narrows: a packet meets the conditions when it meets all
/// of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// IPV4 and/or IPV6.
    pub families: u8,
    /// TCP and/or UDP.
    pub protocols: u8,
    /// The destination ports.
    pub ports: PortSet,
    /// Conditions on interfaces.
    pub interfaces: Vec<InterfaceMatch>,
    /// Conditions on the destination address.
    pub destinations: Vec<AddressMatch>,
    /// Conditions on the destination address's type.
    pub destination_types: Vec<AddressTypeMatch>,
    /// Conditions lsport does not read, which narrow further.
    pub unread: Vec<String>,
    /// Set when something lsport could not decode reads the destination
    /// port: the ports above are then a bound, not the answer.
    pub port_unknown: Option<String>,
}

impl Conditions {
    /// No condition: every packet of the families in `families`.
    pub fn any(families: u8) -> Conditions {
        Conditions {
            families,
            protocols: TCP | UDP,
            ports: PortSet::all(),
            interfaces: Vec::new(),
            destinations: Vec::new(),
            destination_types: Vec::new(),
            unread: Vec::new(),
            port_unknown: None,
        }
    }

    /// Whether some packet can still meet the conditions.
    pub fn possible(&self) -> bool {
        self.families != 0 && self.protocols != 0 && !self.ports.is_empty()
    }

    /// Both sets of conditions at once.
    pub fn and(&self, other: &Conditions) -> Conditions {
        let mut out = self.clone();
        out.families &= other.families;
        out.protocols &= other.protocols;
        out.ports = out.ports.intersect(&other.ports);
        extend_new(&mut out.interfaces, &other.interfaces);
        extend_new(&mut out.destinations, &other.destinations);
        extend_new(&mut out.destination_types, &other.destination_types);
        extend_new(&mut out.unread, &other.unread);
        if out.port_unknown.is_none() {
            out.port_unknown.clone_from(&other.port_unknown);
        }
        out
    }

    /// Adds a condition lsport does not read.
    pub fn unread(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.unread.contains(&what) {
            self.unread.push(what);
        }
    }

    /// Records that the destination port is read by something lsport
    /// could not decode (the first such thing is kept).
    pub fn port_unknown(&mut self, what: impl Into<String>) {
        if self.port_unknown.is_none() {
            self.port_unknown = Some(what.into());
        }
    }

    /// The families as the model has them.
    pub fn family_list(&self) -> Vec<Family> {
        let mut out = Vec::new();
        if self.families & IPV4 != 0 {
            out.push(Family::Inet);
        }
        if self.families & IPV6 != 0 {
            out.push(Family::Inet6);
        }
        out
    }

    /// The protocols as the model has them.
    pub fn protocol_list(&self) -> Vec<Protocol> {
        let mut out = Vec::new();
        if self.protocols & TCP != 0 {
            out.push(Protocol::Tcp);
        }
        if self.protocols & UDP != 0 {
            out.push(Protocol::Udp);
        }
        out
    }
}

fn extend_new<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

/// What a rule does once its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing that ends the rule (a counter, a log): the next rule.
    Continue,
    /// DNAT or REDIRECT: the port's traffic goes elsewhere.
    Forward(Target),
    /// Jump or goto to a chain of the same table.
    Jump(String),
    /// A verdict that ends the walk down this path (accept, drop,
    /// return, queue): no forward past it.
    Stop,
    /// Something lsport cannot read, which may rewrite the destination.
    Undecoded(String),
}

/// One way through a rule: when `conditions` hold, `action`. Most rules
/// have one; a lookup in a map or verdict map has one per element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// What the packet must meet.
    pub conditions: Conditions,
    /// What the rule then does.
    pub action: Action,
}

/// A rule, as the chain walk needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeaning {
    /// The nft handle, or the legacy rule's number in its chain.
    pub id: u64,
    /// The rule's comment, if any.
    pub comment: Option<String>,
    /// The ways through it.
    pub branches: Vec<Branch>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u16, u16)]) -> PortSet {
        PortSet::of(ranges.iter().map(|&(lo, hi)| PortRange { lo, hi }))
    }

    #[test]
    fn port_sets_merge_intersect_and_complement() {
        assert_eq!(
            set(&[(5, 9), (1, 3), (4, 4), (20, 30)]),
            set(&[(1, 9), (20, 30)])
        );
        assert_eq!(
            set(&[(1, 9), (20, 30)]).intersect(&set(&[(5, 25)])),
            set(&[(5, 9), (20, 25)])
        );
        assert_eq!(set(&[(22, 22)]).complement(), set(&[(0, 21), (23, 65535)]));
        assert_eq!(set(&[(0, 65535)]).complement(), PortSet::none());
        assert_eq!(PortSet::none().complement(), PortSet::all());
        assert!(set(&[(8000, 8010)]).meets(&PortSet::asked(&[PortRange::single(8005)])));
        assert!(!set(&[(8000, 8010)]).meets(&PortSet::asked(&[PortRange::single(80)])));
        assert_eq!(PortSet::asked(&[]), PortSet::all());
    }

    #[test]
    fn conditions_narrow_and_become_impossible() {
        let mut tcp = Conditions::any(IPV4 | IPV6);
        tcp.protocols = TCP;
        let mut udp = Conditions::any(IPV4);
        udp.protocols = UDP;
        let both = tcp.and(&udp);
        assert_eq!(both.families, IPV4);
        assert!(!both.possible());
        let mut narrow = Conditions::any(IPV4);
        narrow.unread("ct state");
        narrow.port_unknown("a set");
        let joined = tcp.and(&narrow).and(&narrow);
        assert_eq!(joined.unread, ["ct state"]);
        assert_eq!(joined.port_unknown.as_deref(), Some("a set"));
        assert!(joined.possible());
    }
}
