//! What an nf_tables rule means: its expressions run over a model of
//! the registers, so that `payload load 2b @ transport header + 2 => reg
//! 1` followed by `cmp eq reg 1 0x1f90` reads as "destination port
//! 8080". A lookup in a set or map forks the rule into one branch per
//! element. Whatever lsport cannot read is named, never guessed: as a
//! condition it does not read (`ct state new`), or, when it reads the
//! destination port or may rewrite the destination, as undecoded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::socket::PortRange;

use super::objects::{
    Data, ELEMENT_CATCHALL, ELEMENT_INTERVAL_END, Element, Expr, Rule, SET_INTERVAL, Set,
};
use crate::forwards::conditions::{
    Action, Branch, Conditions, IPV4, IPV6, PortSet, RuleMeaning, TCP, UDP, family_bits,
    protocol_bits, table_families,
};
use crate::forwards::model::{
    AddressMatch, AddressTypeMatch, Direction, InterfaceMatch, InterfaceName, TableFamily, Target,
};
use crate::forwards::xt::{self, MatchMeaning};

/// A set and its elements, as read from the kernel.
#[derive(Debug, Clone)]
pub struct SetContents {
    /// The set's key length and flags.
    pub set: Set,
    /// Its elements, or why they could not be read.
    pub elements: Result<Vec<Element>, String>,
}

/// The sets of one table, by name.
pub type Sets = HashMap<String, SetContents>;

/// A rule lookup may fork into at most this many branches (after those
/// that cannot meet the ports asked about are dropped); past it, the
/// rule is said to be undecoded rather than followed in part.
const MAX_BRANCHES: usize = 10_000;

/// What a packet field loaded into a register is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The transport header's destination port.
    Dport,
    /// The destination address; `start` is the first byte loaded, from
    /// the address's own start.
    Daddr { v6: bool, start: u32 },
    /// The layer 4 protocol (meta l4proto, ip protocol, ip6 nexthdr).
    L4proto,
    /// NFPROTO_* (meta nfproto).
    Nfproto,
    /// The ethertype (meta protocol), in network byte order.
    EtherType,
    /// The name of the incoming or outgoing interface.
    IfName(Direction),
    /// The index of the incoming or outgoing interface.
    IfIndex(Direction),
    /// The route type of the destination address (fib daddr type).
    DaddrType { incoming: bool },
    /// Something lsport knows and does not read (the source port...).
    Known(&'static str),
}

/// What a register holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// A field of the packet, `len` bytes, maybe masked (bitwise).
    Field {
        field: Field,
        len: usize,
        mask: Option<Vec<u8>>,
    },
    /// Bytes put there by `immediate` or by a map.
    Bytes(Vec<u8>),
    /// Something loaded by an expression lsport does not read.
    Unread { what: String, reads_port: bool },
}

/// The registers as 16 slots of 4 bytes (NFT_REG32_00 to 15; the old
/// 16-byte registers 1 to 4 are slots 0, 4, 8 and 12). A value longer
/// than 4 bytes fills the slots after its first; each slot keeps the
/// value and its own offset in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Registers {
    slots: [Option<(Value, usize)>; 16],
}

fn slot_of(register: u32) -> Option<usize> {
    match register {
        1..=4 => Some((register as usize - 1) * 4),
        8..=23 => Some(register as usize - 8),
        _ => None,
    }
}

impl Registers {
    fn write(&mut self, register: u32, value: Value, len: usize) {
        let Some(first) = slot_of(register) else {
            return;
        };
        let count = len.div_ceil(4).max(1);
        for i in 0..count {
            if let Some(slot) = self.slots.get_mut(first + i) {
                *slot = Some((value.clone(), 4 * i));
            }
        }
    }

    /// The value whose first byte is in `register`'s slot.
    fn value(&self, register: u32) -> Option<&Value> {
        match self.slots.get(slot_of(register)?)? {
            Some((value, 0)) => Some(value),
            _ => None,
        }
    }

    /// `len` bytes from `register` on, where they are plain bytes (the
    /// tail of a longer value included: a map's address . port).
    fn bytes(&self, register: u32, len: usize) -> Option<Vec<u8>> {
        match self.slots.get(slot_of(register)?)? {
            Some((Value::Bytes(bytes), offset)) => {
                bytes.get(*offset..*offset + len).map(<[u8]>::to_vec)
            }
            _ => None,
        }
    }

    /// The fields a key of `len` bytes read from `register` is made of,
    /// with their offsets in the key (each starts on a 4-byte boundary).
    fn key_fields(&self, register: u32, len: usize) -> Option<Vec<(usize, Value)>> {
        let first = slot_of(register)?;
        let mut fields = Vec::new();
        let mut offset = 0;
        while offset < len {
            let (value, 0) = self.slots.get(first + offset / 4)?.clone()? else {
                return None;
            };
            let value_len = match &value {
                Value::Field { len, .. } => *len,
                Value::Bytes(bytes) => bytes.len(),
                Value::Unread { .. } => 4,
            };
            fields.push((offset, value));
            offset += value_len.div_ceil(4).max(1) * 4;
        }
        Some(fields)
    }
}

/// One way through the rule being interpreted.
#[derive(Debug, Clone)]
struct State {
    conditions: Conditions,
    registers: Registers,
    /// Set once a verdict or NAT ends the rule for this branch.
    action: Option<Action>,
    /// An expression lsport does not know, which may be an action.
    unknown: Option<String>,
}

/// What `rule` means, in a table of `family`, with the table's `sets`.
/// Branches that cannot meet the ports in `asked` are dropped.
pub fn interpret(rule: &Rule, family: TableFamily, sets: &Sets, asked: &PortSet) -> RuleMeaning {
    let mut meaning = RuleMeaning {
        id: rule.handle,
        comment: rule.comment.clone(),
        branches: Vec::new(),
    };
    let expressions = match &rule.expressions {
        Ok(expressions) => expressions,
        Err(what) => {
            meaning.branches.push(Branch {
                conditions: Conditions::any(table_families(family)),
                action: Action::Undecoded(what.clone()),
            });
            return meaning;
        }
    };
    // iptables-nft keeps `-m comment` as an xt match.
    for expr in expressions {
        if let Expr::Match {
            name,
            revision,
            info,
        } = expr
        {
            if let MatchMeaning::Comment(text) = xt::decode_match(name, *revision, info, 0) {
                meaning.comment.get_or_insert(text);
            }
        }
    }
    let mut states = vec![State {
        conditions: Conditions::any(table_families(family)),
        registers: Registers::default(),
        action: None,
        unknown: None,
    }];
    for expr in expressions {
        let mut next = Vec::with_capacity(states.len());
        for mut state in states {
            if state.action.is_some() {
                next.push(state);
                continue;
            }
            match expr {
                Expr::Lookup {
                    set,
                    sreg,
                    dreg,
                    inverted,
                } => lookup(state, set, *sreg, *dreg, *inverted, sets, &mut next),
                _ => {
                    step(&mut state, expr, family);
                    next.push(state);
                }
            }
        }
        next.retain(|s| s.conditions.possible() && s.conditions.ports.meets(asked));
        if next.len() > MAX_BRANCHES {
            meaning.branches.push(Branch {
                conditions: Conditions::any(table_families(family)),
                action: Action::Undecoded(format!(
                    "a lookup with more than {MAX_BRANCHES} elements on the ports asked about"
                )),
            });
            return meaning;
        }
        states = next;
    }
    for state in states {
        meaning.branches.push(finish(state));
    }
    meaning
}

/// The branch a state ends as once every expression ran.
fn finish(state: State) -> Branch {
    let mut conditions = state.conditions;
    let action = match (state.action, state.unknown) {
        (Some(Action::Forward(target)), Some(unknown)) => {
            conditions.unread(format!("expression {unknown}"));
            Action::Forward(target)
        }
        (Some(Action::Jump(chain)), Some(unknown)) => {
            conditions.unread(format!("expression {unknown}"));
            Action::Jump(chain)
        }
        (Some(action), _) => action,
        // An expression lsport does not know may have been the action.
        (None, Some(unknown)) => Action::Undecoded(format!("expression {unknown}")),
        (None, None) => Action::Continue,
    };
    Branch { conditions, action }
}

/// Runs one expression (other than a lookup) on one branch.
fn step(state: &mut State, expr: &Expr, family: TableFamily) {
    match expr {
        Expr::Payload {
            dreg,
            base,
            offset,
            len,
        } => {
            let value = payload_field(*base, *offset, *len, state.conditions.families);
            state.registers.write(*dreg, value, *len as usize);
        }
        Expr::PayloadWrite { base, offset, len } => {
            let value = payload_field(*base, *offset, *len, state.conditions.families);
            if let Value::Field {
                field: Field::Dport | Field::Daddr { .. },
                ..
            } = value
            {
                state.action = Some(Action::Undecoded(
                    "a rewrite of the destination in the packet itself (payload set)".into(),
                ));
            }
        }
        Expr::Meta { key, dreg } => {
            let (value, len) = meta_field(*key);
            state.registers.write(*dreg, value, len);
        }
        Expr::Fib {
            dreg,
            result,
            flags,
        } => {
            // NFT_FIB_RESULT_ADDRTYPE of NFTA_FIB_F_DADDR, maybe with
            // NFTA_FIB_F_IIF: `fib daddr [. iif] type`.
            let value = if *result == 3 && flags & 0x2 != 0 && flags & 0x1 == 0 {
                field(
                    Field::DaddrType {
                        incoming: flags & 0x8 != 0,
                    },
                    4,
                )
            } else {
                Value::Unread {
                    what: "fib".into(),
                    reads_port: false,
                }
            };
            state.registers.write(*dreg, value, 4);
        }
        Expr::Immediate { dreg: 0, data } => verdict(state, data),
        Expr::Immediate {
            dreg,
            data: Data::Value(bytes),
        } => state
            .registers
            .write(*dreg, Value::Bytes(bytes.clone()), bytes.len()),
        Expr::Immediate { .. } => {}
        Expr::Bitwise {
            sreg,
            dreg,
            op,
            mask,
            xor,
        } => {
            let value = match state.registers.value(*sreg) {
                // (field & mask) ^ 0: a prefix or a wildcard.
                Some(Value::Field { field, len, .. })
                    if *op == 0 && xor.iter().all(|&b| b == 0) && mask.len() == *len =>
                {
                    Value::Field {
                        field: *field,
                        len: *len,
                        mask: Some(mask.clone()),
                    }
                }
                Some(Value::Field { field, .. }) => Value::Unread {
                    what: format!("a bit operation on {}", describe(*field)),
                    reads_port: *field == Field::Dport,
                },
                Some(Value::Unread { what, reads_port }) => Value::Unread {
                    what: what.clone(),
                    reads_port: *reads_port,
                },
                _ => Value::Unread {
                    what: "a bit operation".into(),
                    reads_port: false,
                },
            };
            state.registers.write(*dreg, value, mask.len().max(4));
        }
        Expr::Byteorder {
            sreg,
            dreg,
            len,
            size,
        } => {
            // Swapping one-byte elements, or fewer bytes than one element
            // in place, changes nothing: nft does the latter to `meta
            // l4proto` in a concatenation.
            let identity = *size == 1 || (len < size && sreg == dreg);
            let value = match state.registers.value(*sreg) {
                Some(value) if identity => value.clone(),
                Some(Value::Field { field, .. }) => Value::Unread {
                    what: format!("a byte order conversion of {}", describe(*field)),
                    reads_port: *field == Field::Dport,
                },
                _ => Value::Unread {
                    what: "a byte order conversion".into(),
                    reads_port: false,
                },
            };
            let len = match &value {
                Value::Field { len, .. } => *len,
                Value::Bytes(bytes) => bytes.len(),
                Value::Unread { .. } => 4,
            };
            state.registers.write(*dreg, value, len);
        }
        Expr::Cmp { sreg, op, data } => {
            let Some(bounds) = cmp_bounds(*op, data) else {
                unread_register(state, *sreg, "a comparison");
                return;
            };
            compare(state, *sreg, &bounds);
        }
        Expr::Range { sreg, op, from, to } => {
            let bounds = Bounds {
                lo: from.clone(),
                hi: to.clone(),
                negated: *op == 1,
            };
            compare(state, *sreg, &bounds);
        }
        Expr::Nat {
            kind,
            family: nat_family,
            addr_min,
            addr_max,
            proto_min,
            proto_max,
        } => {
            // NFT_NAT_SNAT: the source, not a forward.
            if *kind != 1 {
                state.action = Some(Action::Stop);
                return;
            }
            let ipv6 = match nat_family {
                2 => false,
                10 => true,
                _ => {
                    state.action = Some(Action::Undecoded(format!("dnat of family {nat_family}")));
                    return;
                }
            };
            state.conditions.families &= if ipv6 { IPV6 } else { IPV4 };
            state.action = Some(dnat(
                &state.registers,
                ipv6,
                *addr_min,
                *addr_max,
                *proto_min,
                *proto_max,
            ));
        }
        Expr::Redir {
            proto_min,
            proto_max,
        } => {
            state.action = Some(match ports_from(&state.registers, *proto_min, *proto_max) {
                Ok(ports) => Action::Forward(Target::Redirect { ports }),
                Err(what) => Action::Undecoded(what),
            });
        }
        Expr::Match {
            name,
            revision,
            info,
        } => {
            if let MatchMeaning::Narrow(conditions) =
                xt::decode_match(name, *revision, info, state.conditions.families)
            {
                state.conditions = state.conditions.and(&conditions);
            }
        }
        Expr::Target {
            name,
            revision,
            info,
        } => match xt::decode_target(name, *revision, info, family == TableFamily::Ip6) {
            Action::Continue => {}
            action => state.action = Some(action),
        },
        Expr::Load {
            what,
            dreg,
            reads_port,
        } => state.registers.write(
            *dreg,
            Value::Unread {
                what: what.clone(),
                reads_port: *reads_port,
            },
            4,
        ),
        Expr::Other { name } => other(state, name),
        Expr::Lookup { .. } => unreachable!("lookups fork and are run by `lookup`"),
    }
}

fn field(field: Field, len: usize) -> Value {
    Value::Field {
        field,
        len,
        mask: None,
    }
}

/// What a payload load reads, for traffic of `families`.
fn payload_field(base: u32, offset: u32, len: u32, families: u8) -> Value {
    let known = |what: &'static str| field(Field::Known(what), len as usize);
    match (base, offset, len) {
        // The transport header: source port at 0, destination at 2.
        (2, 2, 2) => field(Field::Dport, 2),
        (2, 0, 2) => known("the source port"),
        (2, ..) => known("the transport header"),
        (1, ..) if families == IPV4 => match (offset, len) {
            (9, 1) => field(Field::L4proto, 1),
            (16..=19, _) if offset + len <= 20 => field(
                Field::Daddr {
                    v6: false,
                    start: offset - 16,
                },
                len as usize,
            ),
            (12..=15, _) if offset + len <= 16 => known("the source address"),
            _ => known("the IPv4 header"),
        },
        (1, ..) if families == IPV6 => match (offset, len) {
            (6, 1) => field(Field::L4proto, 1),
            (24..=39, _) if offset + len <= 40 => field(
                Field::Daddr {
                    v6: true,
                    start: offset - 24,
                },
                len as usize,
            ),
            (8..=23, _) if offset + len <= 24 => known("the source address"),
            _ => known("the IPv6 header"),
        },
        (1, ..) => known("the network header"),
        (0, ..) => known("the link layer header"),
        _ => known("the inner header"),
    }
}

/// What a meta load reads, and its length.
fn meta_field(key: u32) -> (Value, usize) {
    match key {
        1 => (field(Field::EtherType, 2), 2),
        4 => (field(Field::IfIndex(Direction::In), 4), 4),
        5 => (field(Field::IfIndex(Direction::Out), 4), 4),
        6 => (field(Field::IfName(Direction::In), 16), 16),
        7 => (field(Field::IfName(Direction::Out), 16), 16),
        15 => (field(Field::Nfproto, 1), 1),
        16 => (field(Field::L4proto, 1), 1),
        _ => {
            let name = META_KEYS.get(key as usize).copied().unwrap_or("key");
            (
                Value::Unread {
                    what: format!("meta {name}"),
                    reads_port: false,
                },
                4,
            )
        }
    }
}

/// enum nft_meta_keys, by number, as nft names them (the keys lsport
/// reads are decoded above).
const META_KEYS: [&str; 27] = [
    "length",
    "protocol",
    "priority",
    "mark",
    "iif",
    "oif",
    "iifname",
    "oifname",
    "iiftype",
    "oiftype",
    "skuid",
    "skgid",
    "nftrace",
    "rtclassid",
    "secmark",
    "nfproto",
    "l4proto",
    "ibrname",
    "obrname",
    "pkttype",
    "cpu",
    "iifgroup",
    "oifgroup",
    "cgroup",
    "random",
    "secpath",
    "iifkind",
];

fn describe(field: Field) -> &'static str {
    match field {
        Field::Dport => "the destination port",
        Field::Daddr { .. } => "the destination address",
        Field::L4proto => "the protocol",
        Field::Nfproto | Field::EtherType => "the address family",
        Field::IfName(_) | Field::IfIndex(_) => "the interface",
        Field::DaddrType { .. } => "the destination address type",
        Field::Known(what) => what,
    }
}

/// The values a comparison accepts: [lo, hi], or everything outside
/// it. Bytes compare as the kernel compares them for lt/gt: as a
/// big-endian number.
#[derive(Debug, Clone)]
struct Bounds {
    lo: Vec<u8>,
    hi: Vec<u8>,
    negated: bool,
}

/// The bounds of `cmp OP data` (op: eq, neq, lt, lte, gt, gte).
fn cmp_bounds(op: u32, data: &[u8]) -> Option<Bounds> {
    let zero = vec![0u8; data.len()];
    let max = vec![0xffu8; data.len()];
    let (lo, hi, negated) = match op {
        0 => (data.to_vec(), data.to_vec(), false),
        1 => (data.to_vec(), data.to_vec(), true),
        2 => (zero, decrement(data)?, false),
        3 => (zero, data.to_vec(), false),
        4 => (increment(data)?, max, false),
        5 => (data.to_vec(), max, false),
        _ => return None,
    };
    Some(Bounds { lo, hi, negated })
}

fn decrement(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for byte in out.iter_mut().rev() {
        if *byte > 0 {
            *byte -= 1;
            return Some(out);
        }
        *byte = 0xff;
    }
    None
}

fn increment(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for byte in out.iter_mut().rev() {
        if *byte < 0xff {
            *byte += 1;
            return Some(out);
        }
        *byte = 0;
    }
    None
}

/// Notes that a register lsport could not interpret was tested.
fn unread_register(state: &mut State, register: u32, how: &str) {
    match state.registers.value(register) {
        Some(Value::Field {
            field: Field::Dport,
            ..
        }) => state.conditions.port_unknown(format!(
            "{how} of the destination port that lsport does not read"
        )),
        Some(Value::Field { field, .. }) => state.conditions.unread(describe(*field)),
        Some(Value::Unread {
            what,
            reads_port: true,
        }) => state.conditions.port_unknown(what.clone()),
        Some(Value::Unread { what, .. }) => state.conditions.unread(what.clone()),
        Some(Value::Bytes(_)) => state.conditions.unread("a comparison of constants"),
        None => state
            .conditions
            .port_unknown(format!("{how} of a register no expression loaded")),
    }
}

/// A comparison of a register against bounds.
fn compare(state: &mut State, register: u32, bounds: &Bounds) {
    let value = state.registers.value(register).cloned();
    match value {
        Some(Value::Field { field, len, mask }) => {
            let narrowed = field_condition(
                field,
                len,
                mask.as_deref(),
                bounds,
                state.conditions.families,
            );
            match narrowed {
                Some(conditions) => state.conditions = state.conditions.and(&conditions),
                None => unread_register(state, register, "a comparison"),
            }
        }
        _ => unread_register(state, register, "a comparison"),
    }
}

/// The conditions "field in bounds", or None where lsport cannot say
/// them.
fn field_condition(
    field: Field,
    len: usize,
    mask: Option<&[u8]>,
    bounds: &Bounds,
    families: u8,
) -> Option<Conditions> {
    let mut out = Conditions::any(families);
    let exact = bounds.lo == bounds.hi;
    if bounds.lo.len() != bounds.hi.len() || bounds.lo.len() > len {
        return None;
    }
    match field {
        Field::Dport if mask.is_none() && bounds.lo.len() == 2 => {
            let ports = PortSet::of([PortRange {
                lo: u16::from_be_bytes([bounds.lo[0], bounds.lo[1]]),
                hi: u16::from_be_bytes([bounds.hi[0], bounds.hi[1]]),
            }]);
            out.ports = if bounds.negated {
                ports.complement()
            } else {
                ports
            };
        }
        Field::L4proto | Field::Nfproto if mask.is_none() && bounds.lo.len() == 1 => {
            let (lo, hi) = (bounds.lo[0], bounds.hi[0]);
            let bits = |n: u8| {
                if field == Field::L4proto {
                    protocol_bits(n)
                } else {
                    family_bits(n)
                }
            };
            let mut inside = 0;
            for n in [2u8, 6, 10, 17] {
                if lo <= n && n <= hi {
                    inside |= bits(n);
                }
            }
            let all = if field == Field::L4proto {
                TCP | UDP
            } else {
                IPV4 | IPV6
            };
            let keep = if bounds.negated {
                all & !inside
            } else {
                inside
            };
            if field == Field::L4proto {
                out.protocols = keep;
            } else {
                out.families &= keep;
            }
        }
        Field::EtherType if mask.is_none() && exact && bounds.lo.len() == 2 => {
            let bits = match u16::from_be_bytes([bounds.lo[0], bounds.lo[1]]) {
                0x0800 => IPV4,
                0x86dd => IPV6,
                _ => 0,
            };
            out.families &= if bounds.negated { !bits } else { bits };
        }
        Field::Daddr { v6, start: 0 } if exact => {
            out.destinations
                .push(address_match(v6, &bounds.lo, mask, bounds.negated)?);
        }
        Field::IfName(direction) if exact && mask.is_none() => {
            let bytes = &bounds.lo;
            let name = match bytes.iter().position(|&b| b == 0) {
                Some(end) => {
                    InterfaceName::Exact(String::from_utf8_lossy(&bytes[..end]).into_owned())
                }
                None => InterfaceName::Prefix(String::from_utf8_lossy(bytes).into_owned()),
            };
            out.interfaces.push(InterfaceMatch {
                direction,
                name,
                negated: bounds.negated,
            });
        }
        Field::IfIndex(direction) if exact && mask.is_none() && bounds.lo.len() == 4 => {
            out.interfaces.push(InterfaceMatch {
                direction,
                name: InterfaceName::Index(u32::from_ne_bytes(bounds.lo[..4].try_into().ok()?)),
                negated: bounds.negated,
            });
        }
        Field::DaddrType { incoming } if mask.is_none() && bounds.lo.len() == 4 => {
            // The route type is a host-order u32 (RTN_*).
            let lo = u32::from_ne_bytes(bounds.lo[..4].try_into().ok()?);
            let hi = u32::from_ne_bytes(bounds.hi[..4].try_into().ok()?);
            let mut types = 0u16;
            for t in lo..=hi.min(15) {
                types |= 1 << t;
            }
            if types == 0 {
                return None;
            }
            out.destination_types.push(AddressTypeMatch {
                types,
                negated: bounds.negated,
                on_incoming_interface: incoming,
            });
        }
        _ => return None,
    }
    Some(out)
}

/// The network an address comparison names: the bytes compared,
/// masked, as a prefix.
fn address_match(
    v6: bool,
    bytes: &[u8],
    mask: Option<&[u8]>,
    negated: bool,
) -> Option<AddressMatch> {
    let full = if v6 { 16 } else { 4 };
    let mut address = vec![0u8; full];
    address[..bytes.len()].copy_from_slice(bytes);
    let prefix = match mask {
        None => 8 * bytes.len(),
        Some(mask) => {
            let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
            let contiguous = mask
                .iter()
                .map(|b| u128::from(*b))
                .fold(0u128, |acc, b| (acc << 8) | b);
            let expected = if ones == 0 {
                0
            } else {
                (!0u128 << (8 * mask.len() as u32 - ones))
                    & ((1u128 << (8 * mask.len() as u32)) - 1)
            };
            if contiguous != expected {
                return None;
            }
            for (byte, m) in address.iter_mut().zip(mask) {
                *byte &= m;
            }
            ones as usize
        }
    };
    let network = if v6 {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(address).ok()?))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            address[0], address[1], address[2], address[3],
        ))
    };
    Some(AddressMatch {
        network,
        prefix: prefix as u8,
        negated,
    })
}

/// A verdict set by `immediate` (or by a verdict map's element).
fn verdict(state: &mut State, data: &Data) {
    let Data::Verdict { code, chain } = data else {
        return;
    };
    state.action = match (*code, chain) {
        // NFT_JUMP, NFT_GOTO.
        (-3 | -4, Some(chain)) => Some(Action::Jump(chain.clone())),
        (-3 | -4, None) => Some(Action::Undecoded("a jump without a chain".into())),
        // NFT_CONTINUE: on to the next expression.
        (-1, _) => None,
        // NFT_BREAK: the rule does not apply after all.
        (-2, _) => Some(Action::Continue),
        // NFT_RETURN, accept, drop, queue, stolen: nothing further.
        _ => Some(Action::Stop),
    };
}

/// The target of a `nat` expression of type DNAT.
fn dnat(
    registers: &Registers,
    ipv6: bool,
    addr_min: Option<u32>,
    addr_max: Option<u32>,
    proto_min: Option<u32>,
    proto_max: Option<u32>,
) -> Action {
    let len = if ipv6 { 16 } else { 4 };
    let address = |register: u32| -> Option<IpAddr> {
        let bytes = registers.bytes(register, len)?;
        Some(if ipv6 {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))
        } else {
            IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
        })
    };
    let addresses = match addr_min {
        None => None,
        Some(min) => {
            let Some(first) = address(min) else {
                return Action::Undecoded(format!(
                    "dnat to an address from {}",
                    source_of(registers, min)
                ));
            };
            let last = match addr_max {
                Some(max) => match address(max) {
                    Some(last) => last,
                    None => {
                        return Action::Undecoded(format!(
                            "dnat to an address range ending at {}",
                            source_of(registers, max)
                        ));
                    }
                },
                None => first,
            };
            Some((first, last))
        }
    };
    match ports_from(registers, proto_min, proto_max) {
        Ok(ports) => Action::Forward(Target::Dnat { addresses, ports }),
        Err(what) => Action::Undecoded(what),
    }
}

/// The ports a `nat` or `redir` expression takes from registers.
fn ports_from(
    registers: &Registers,
    min: Option<u32>,
    max: Option<u32>,
) -> Result<Option<PortRange>, String> {
    let port = |register: u32| -> Result<u16, String> {
        let bytes = registers
            .bytes(register, 2)
            .ok_or_else(|| format!("a port from {}", source_of(registers, register)))?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let Some(min) = min else {
        return Ok(None);
    };
    let lo = port(min)?;
    let hi = match max {
        Some(max) => port(max)?,
        None => lo,
    };
    Ok(Some(PortRange { lo, hi }))
}

/// What a register holds, for a sentence.
fn source_of(registers: &Registers, register: u32) -> String {
    match registers.value(register) {
        Some(Value::Field { field, .. }) => describe(*field).to_string(),
        Some(Value::Unread { what, .. }) => what.clone(),
        _ => format!("register {register}"),
    }
}

/// Expressions with no register of interest, by name.
fn other(state: &mut State, name: &str) {
    match name {
        // Counting, logging and setting marks change nothing here.
        "counter" | "log" | "last" | "notrack" | "meta set" | "ct set" | "exthdr set"
        | "flow_offload" | "dup" | "synproxy" => {}
        // Conditions on rates and counts.
        "limit" | "quota" | "connlimit" | "objref" | "dynset" => state.conditions.unread(name),
        // Verdicts that end the rule without NAT.
        "reject" | "queue" | "fwd" | "tproxy" | "masq" => state.action = Some(Action::Stop),
        _ => {
            state.unknown.get_or_insert_with(|| name.to_string());
        }
    }
}

/// A lookup in a set or map: the branch forks into one per element (or
/// stays one, for a set of ports).
fn lookup(
    state: State,
    name: &str,
    sreg: u32,
    dreg: Option<u32>,
    inverted: bool,
    sets: &Sets,
    out: &mut Vec<State>,
) {
    let mut state = state;
    let what = format!("a lookup in set @{name}");
    let Some(contents) = sets.get(name) else {
        undecodable_lookup(
            &mut state,
            sreg,
            dreg,
            &format!("{what}, which was not found"),
        );
        out.push(state);
        return;
    };
    let elements = match &contents.elements {
        Ok(elements) => elements,
        Err(why) => {
            undecodable_lookup(
                &mut state,
                sreg,
                dreg,
                &format!("{what}, whose elements could not be read: {why}"),
            );
            out.push(state);
            return;
        }
    };
    let key_len = contents.set.key_len as usize;
    let Some(fields) = state.registers.key_fields(sreg, key_len) else {
        undecodable_lookup(
            &mut state,
            sreg,
            dreg,
            &format!("{what} keyed on registers lsport does not follow"),
        );
        out.push(state);
        return;
    };
    let Some(ranges) = element_ranges(&contents.set, elements) else {
        undecodable_lookup(
            &mut state,
            sreg,
            dreg,
            &format!("{what}, whose intervals lsport could not pair"),
        );
        out.push(state);
        return;
    };
    let only_port = matches!(
        fields.as_slice(),
        [(
            0,
            Value::Field {
                field: Field::Dport,
                mask: None,
                ..
            }
        )]
    );
    if dreg.is_none() && only_port {
        // The common case, `tcp dport { 80, 443 }`: one branch.
        let ports = PortSet::of(ranges.iter().filter_map(|r| match r {
            KeyRange::Catchall(_) => Some(PortRange { lo: 0, hi: 65535 }),
            KeyRange::Span { lo, hi, .. } => Some(PortRange {
                lo: u16::from_be_bytes([*lo.first()?, *lo.get(1)?]),
                hi: u16::from_be_bytes([*hi.first()?, *hi.get(1)?]),
            }),
        }));
        let ports = if inverted { ports.complement() } else { ports };
        state.conditions.ports = state.conditions.ports.intersect(&ports);
        out.push(state);
        return;
    }
    if inverted {
        // "Not in the set" over other fields: a condition lsport leaves
        // unread (it only narrows), unless it reads the port.
        if fields.iter().any(|(_, v)| reads_port(v)) {
            state.conditions.port_unknown(format!("{what}, inverted"));
        } else {
            state.conditions.unread(format!("not in set @{name}"));
        }
        out.push(state);
        return;
    }
    for range in &ranges {
        let mut branch = state.clone();
        let data = match range {
            KeyRange::Catchall(data) => data,
            KeyRange::Span { lo, hi, data } => {
                for (offset, value) in &fields {
                    key_field_condition(&mut branch, value, lo, hi, *offset, name);
                }
                data
            }
        };
        match (dreg, data) {
            (None, _) => {}
            (Some(0), Some(data)) => verdict(&mut branch, data),
            (Some(register), Some(Data::Value(bytes))) => {
                branch
                    .registers
                    .write(register, Value::Bytes(bytes.clone()), bytes.len());
            }
            (Some(_), _) => {
                branch.action = Some(Action::Undecoded(format!(
                    "{what}, an element without a value"
                )));
            }
        }
        out.push(branch);
    }
}

/// Whether a key field is, or may be, the destination port.
fn reads_port(value: &Value) -> bool {
    matches!(
        value,
        Value::Field {
            field: Field::Dport,
            ..
        } | Value::Unread {
            reads_port: true,
            ..
        }
    )
}

/// A lookup lsport cannot follow: a map's result is unknown (the rule
/// is undecoded); a set's test is a condition it does not read, or an
/// unknown port when it reads the port.
fn undecodable_lookup(state: &mut State, sreg: u32, dreg: Option<u32>, what: &str) {
    if dreg.is_some() {
        state.action = Some(Action::Undecoded(what.to_string()));
        return;
    }
    let port = match state.registers.value(sreg) {
        Some(value) => reads_port(value),
        None => true,
    };
    if port {
        state.conditions.port_unknown(what);
    } else {
        state.conditions.unread(what);
    }
}

/// The condition one field of a key puts on a branch.
fn key_field_condition(
    state: &mut State,
    value: &Value,
    lo: &[u8],
    hi: &[u8],
    offset: usize,
    set: &str,
) {
    match value {
        Value::Field { field, len, mask } => {
            let (Some(lo), Some(hi)) = (lo.get(offset..offset + len), hi.get(offset..offset + len))
            else {
                state.conditions.port_unknown(format!(
                    "a lookup in set @{set} with keys shorter than its fields"
                ));
                return;
            };
            let bounds = Bounds {
                lo: lo.to_vec(),
                hi: hi.to_vec(),
                negated: false,
            };
            let families = state.conditions.families;
            match field_condition(*field, *len, mask.as_deref(), &bounds, families) {
                Some(conditions) => state.conditions = state.conditions.and(&conditions),
                None if *field == Field::Dport => state
                    .conditions
                    .port_unknown(format!("a lookup in set @{set} on the destination port")),
                None => state
                    .conditions
                    .unread(format!("{} in set @{set}", describe(*field))),
            }
        }
        Value::Unread { what, reads_port } => {
            let what = format!("{what} in set @{set}");
            if *reads_port {
                state.conditions.port_unknown(what);
            } else {
                state.conditions.unread(what);
            }
        }
        Value::Bytes(_) => state.conditions.unread(format!("a constant in set @{set}")),
    }
}

/// One element of a set as a range of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyRange<'a> {
    /// A key range [lo, hi] and the element's value.
    Span {
        lo: Vec<u8>,
        hi: Vec<u8>,
        data: &'a Option<Data>,
    },
    /// The catch-all element (`*`): every key.
    Catchall(&'a Option<Data>),
}

/// The elements as key ranges. An interval set without end keys sends
/// each range as its first key and, flagged INTERVAL_END, the key one
/// past its last; a range to the end of the key space has no end
/// element, and adjacent ranges none between them. None when a key
/// cannot be stepped back.
fn element_ranges<'a>(set: &Set, elements: &'a [Element]) -> Option<Vec<KeyRange<'a>>> {
    let mut out = Vec::with_capacity(elements.len());
    let mut plain: Vec<&Element> = Vec::new();
    for element in elements {
        if element.flags & ELEMENT_CATCHALL != 0 {
            out.push(KeyRange::Catchall(&element.data));
        } else if let Some(end) = &element.key_end {
            out.push(KeyRange::Span {
                lo: element.key.clone(),
                hi: end.clone(),
                data: &element.data,
            });
        } else {
            plain.push(element);
        }
    }
    if set.flags & SET_INTERVAL == 0 {
        for element in plain {
            out.push(KeyRange::Span {
                lo: element.key.clone(),
                hi: element.key.clone(),
                data: &element.data,
            });
        }
        return Some(out);
    }
    plain.sort_by(|a, b| a.key.cmp(&b.key));
    let mut open: Option<&Element> = None;
    for element in plain {
        let is_end = element.flags & ELEMENT_INTERVAL_END != 0;
        match (open, is_end) {
            (Some(start), true) => {
                out.push(KeyRange::Span {
                    lo: start.key.clone(),
                    hi: decrement(&element.key)?,
                    data: &start.data,
                });
                open = None;
            }
            // An end with no start: the gap before the first range.
            (None, true) => {}
            (None, false) => open = Some(element),
            // Adjacent ranges with different values: the first ends
            // where the next starts.
            (Some(start), false) => {
                out.push(KeyRange::Span {
                    lo: start.key.clone(),
                    hi: decrement(&element.key)?,
                    data: &start.data,
                });
                open = Some(element);
            }
        }
    }
    if let Some(start) = open {
        out.push(KeyRange::Span {
            lo: start.key.clone(),
            hi: vec![0xff; start.key.len()],
            data: &start.data,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests;
