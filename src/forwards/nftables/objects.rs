//! nf_tables objects from their netlink messages: chains, rules and
//! their expressions, sets and set elements. Pure functions; the
//! meaning of a rule's expressions is worked out in `interpret.rs`.

use super::nfnetlink::{attributes, be32, be64, find, string};

/// A chain, with its hook if it is a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The table's name.
    pub table: String,
    /// The chain's name.
    pub name: String,
    /// The netfilter hook number of a base chain (NF_INET_PRE_ROUTING
    /// is 0, NF_INET_LOCAL_OUT 3); None for a chain only jumped to.
    pub hook: Option<u32>,
    /// A base chain's type: `nat`, `filter`, `route`.
    pub kind: Option<String>,
}

// enum nft_chain_attributes
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;

/// A chain from the attributes of a NFT_MSG_NEWCHAIN message; None when
/// it has no table or name.
pub fn decode_chain(bytes: &[u8]) -> Option<Chain> {
    let mut chain = Chain {
        table: String::new(),
        name: String::new(),
        hook: None,
        kind: None,
    };
    for (kind, value) in attributes(bytes) {
        match kind {
            NFTA_CHAIN_TABLE => chain.table = string(value),
            NFTA_CHAIN_NAME => chain.name = string(value),
            NFTA_CHAIN_HOOK => chain.hook = find(value, NFTA_HOOK_HOOKNUM).and_then(be32),
            NFTA_CHAIN_TYPE => chain.kind = Some(string(value)),
            _ => {}
        }
    }
    (!chain.table.is_empty() && !chain.name.is_empty()).then_some(chain)
}

/// A value loaded into a register, or a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Bytes (NFTA_DATA_VALUE).
    Value(Vec<u8>),
    /// A verdict (NFTA_DATA_VERDICT): its code (NF_ACCEPT 1, NF_DROP 0,
    /// NFT_JUMP -3, NFT_GOTO -4, NFT_RETURN -5, ...) and the chain of a
    /// jump or goto.
    Verdict {
        /// The verdict code.
        code: i32,
        /// The chain jumped to.
        chain: Option<String>,
    },
}

// enum nft_data_attributes, enum nft_verdict_attributes
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

fn decode_data(bytes: &[u8]) -> Option<Data> {
    if let Some(value) = find(bytes, NFTA_DATA_VALUE) {
        return Some(Data::Value(value.to_vec()));
    }
    let verdict = find(bytes, NFTA_DATA_VERDICT)?;
    Some(Data::Verdict {
        code: be32(find(verdict, NFTA_VERDICT_CODE)?)? as i32,
        chain: find(verdict, NFTA_VERDICT_CHAIN).map(string),
    })
}

/// One expression of a rule, as far as lsport reads it. Registers are
/// the kernel's numbers: 0 the verdict, 1 to 4 the old 16-byte
/// registers, 8 to 23 the 4-byte ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `payload`: load `len` bytes at `offset` of a header (base 0 link
    /// layer, 1 network, 2 transport, 3 inner) into `dreg`.
    Payload {
        /// The destination register.
        dreg: u32,
        /// Which header.
        base: u32,
        /// The offset in it.
        offset: u32,
        /// How many bytes.
        len: u32,
    },
    /// `payload` with a source register: writes the packet.
    PayloadWrite {
        /// Which header.
        base: u32,
        /// The offset in it.
        offset: u32,
        /// How many bytes.
        len: u32,
    },
    /// `cmp`: compare a register with bytes (op: 0 eq, 1 neq, 2 lt,
    /// 3 lte, 4 gt, 5 gte).
    Cmp {
        /// The register compared.
        sreg: u32,
        /// The operation.
        op: u32,
        /// The bytes compared with.
        data: Vec<u8>,
    },
    /// `range`: whether a register lies in [from, to] (op 0) or not (1).
    Range {
        /// The register compared.
        sreg: u32,
        /// The operation.
        op: u32,
        /// The first value.
        from: Vec<u8>,
        /// The last value.
        to: Vec<u8>,
    },
    /// `lookup`: whether a register's bytes are in a set; with `dreg`, a
    /// map (or, with register 0, a verdict map).
    Lookup {
        /// The set's name.
        set: String,
        /// The register looked up.
        sreg: u32,
        /// Where a map puts its value.
        dreg: Option<u32>,
        /// NFT_LOOKUP_F_INV: "not in the set".
        inverted: bool,
    },
    /// `meta` load of `key` (NFT_META_*) into `dreg`.
    Meta {
        /// The key.
        key: u32,
        /// The destination register.
        dreg: u32,
    },
    /// `fib`: a routing lookup; result 3 is the address type.
    Fib {
        /// The destination register.
        dreg: u32,
        /// NFT_FIB_RESULT_*.
        result: u32,
        /// NFTA_FIB_F_*: 0x2 the destination address, 0x8 the incoming
        /// interface.
        flags: u32,
    },
    /// `immediate`: load bytes or set a verdict.
    Immediate {
        /// The destination register (0: the verdict).
        dreg: u32,
        /// What is loaded.
        data: Data,
    },
    /// `bitwise`: dreg = (sreg & mask) ^ xor, or a shift.
    Bitwise {
        /// The source register.
        sreg: u32,
        /// The destination register.
        dreg: u32,
        /// NFT_BITWISE_* (0: mask and xor).
        op: u32,
        /// The mask.
        mask: Vec<u8>,
        /// The xor.
        xor: Vec<u8>,
    },
    /// `byteorder`: converts `len` bytes of `sreg` into `dreg` between
    /// host and network order, in elements of `size` bytes.
    Byteorder {
        /// The source register.
        sreg: u32,
        /// The destination register.
        dreg: u32,
        /// How many bytes.
        len: u32,
        /// The size of each element converted.
        size: u32,
    },
    /// `nat`: type 1 is DNAT, 0 SNAT; family NFPROTO_*; the registers
    /// holding the address and port ranges.
    Nat {
        /// NFT_NAT_SNAT (0) or NFT_NAT_DNAT (1).
        kind: u32,
        /// NFPROTO_IPV4 or NFPROTO_IPV6.
        family: u32,
        /// Register of the first address.
        addr_min: Option<u32>,
        /// Register of the last address.
        addr_max: Option<u32>,
        /// Register of the first port.
        proto_min: Option<u32>,
        /// Register of the last port.
        proto_max: Option<u32>,
    },
    /// `redir`: redirect to this host, with the registers of the ports.
    Redir {
        /// Register of the first port.
        proto_min: Option<u32>,
        /// Register of the last port.
        proto_max: Option<u32>,
    },
    /// `match`: an x_tables match (iptables-nft).
    Match {
        /// Its name (`addrtype`).
        name: String,
        /// Its revision.
        revision: u32,
        /// The kernel structure it carries.
        info: Vec<u8>,
    },
    /// `target`: an x_tables target (iptables-nft).
    Target {
        /// Its name (`DNAT`).
        name: String,
        /// Its revision.
        revision: u32,
        /// The kernel structure it carries.
        info: Vec<u8>,
    },
    /// An expression that loads a register with something lsport does
    /// not read (`ct`, `numgen`, `hash`, a `meta` key it ignores).
    Load {
        /// What it loads, for a sentence (`ct state`).
        what: String,
        /// The destination register.
        dreg: u32,
        /// Whether what it loads is the destination port by another
        /// name (`ct original proto-dst`).
        reads_port: bool,
    },
    /// Any other expression, by name (`counter`, `log`, `limit`...).
    Other {
        /// Its name.
        name: String,
    },
}

/// Expressions that load a register and are not read further: their
/// name and the attribute that holds the destination register.
const LOADERS: &[(&str, u16)] = &[
    ("numgen", 1),
    ("hash", 2),
    ("rt", 1),
    ("socket", 2),
    ("exthdr", 1),
    ("osf", 1),
    ("xfrm", 1),
    ("tunnel", 2),
];

/// enum nft_ct_keys, by number, as nft names them.
const CT_KEYS: [&str; 24] = [
    "state",
    "direction",
    "status",
    "mark",
    "secmark",
    "expiration",
    "helper",
    "l3proto",
    "saddr",
    "daddr",
    "protocol",
    "proto-src",
    "proto-dst",
    "label",
    "packets",
    "bytes",
    "avgpkt",
    "zone",
    "event",
    "ip saddr",
    "ip daddr",
    "ip6 saddr",
    "ip6 daddr",
    "id",
];

fn reg(bytes: &[u8], kind: u16) -> Option<u32> {
    find(bytes, kind).and_then(be32)
}

/// One expression from its NFTA_LIST_ELEM payload; an error names what
/// could not be read.
pub fn decode_expression(bytes: &[u8]) -> Result<Expr, String> {
    let name = find(bytes, 1)
        .map(string)
        .ok_or("an expression without a name")?;
    let data = find(bytes, 2).unwrap_or(&[]);
    let need = |what: Option<u32>| {
        what.ok_or_else(|| format!("a {name} expression without its attributes"))
    };
    let expr = match name.as_str() {
        "payload" => match reg(data, 5) {
            Some(_) => Expr::PayloadWrite {
                base: need(reg(data, 2))?,
                offset: need(reg(data, 3))?,
                len: need(reg(data, 4))?,
            },
            None => Expr::Payload {
                dreg: need(reg(data, 1))?,
                base: need(reg(data, 2))?,
                offset: need(reg(data, 3))?,
                len: need(reg(data, 4))?,
            },
        },
        "cmp" => Expr::Cmp {
            sreg: need(reg(data, 1))?,
            op: need(reg(data, 2))?,
            data: value_of(data, 3).ok_or("a cmp expression without data")?,
        },
        "range" => Expr::Range {
            sreg: need(reg(data, 1))?,
            op: need(reg(data, 2))?,
            from: value_of(data, 3).ok_or("a range expression without its first value")?,
            to: value_of(data, 4).ok_or("a range expression without its last value")?,
        },
        "lookup" => Expr::Lookup {
            set: find(data, 1)
                .map(string)
                .ok_or("a lookup without a set name")?,
            sreg: need(reg(data, 2))?,
            dreg: reg(data, 3),
            inverted: reg(data, 5).unwrap_or(0) & 1 != 0,
        },
        "meta" => match reg(data, 1) {
            Some(dreg) => Expr::Meta {
                key: need(reg(data, 2))?,
                dreg,
            },
            // With a source register, meta sets (a mark, a priority).
            None => Expr::Other {
                name: "meta set".into(),
            },
        },
        "fib" => Expr::Fib {
            dreg: need(reg(data, 1))?,
            result: need(reg(data, 2))?,
            flags: reg(data, 3).unwrap_or(0),
        },
        "immediate" => Expr::Immediate {
            dreg: need(reg(data, 1))?,
            data: find(data, 2)
                .and_then(decode_data)
                .ok_or("an immediate without data")?,
        },
        "bitwise" => Expr::Bitwise {
            sreg: need(reg(data, 1))?,
            dreg: need(reg(data, 2))?,
            op: reg(data, 6).unwrap_or(0),
            mask: value_of(data, 4).unwrap_or_default(),
            xor: value_of(data, 5).unwrap_or_default(),
        },
        "byteorder" => Expr::Byteorder {
            sreg: need(reg(data, 1))?,
            dreg: need(reg(data, 2))?,
            len: need(reg(data, 4))?,
            size: need(reg(data, 5))?,
        },
        "nat" => Expr::Nat {
            kind: need(reg(data, 1))?,
            family: need(reg(data, 2))?,
            addr_min: reg(data, 3),
            addr_max: reg(data, 4),
            proto_min: reg(data, 5),
            proto_max: reg(data, 6),
        },
        "redir" => Expr::Redir {
            proto_min: reg(data, 1),
            proto_max: reg(data, 2),
        },
        "match" | "target" => {
            let xt_name = find(data, 1)
                .map(string)
                .ok_or("an xt expression without a name")?;
            let revision = reg(data, 2).unwrap_or(0);
            let info = find(data, 3).unwrap_or(&[]).to_vec();
            if name == "match" {
                Expr::Match {
                    name: xt_name,
                    revision,
                    info,
                }
            } else {
                Expr::Target {
                    name: xt_name,
                    revision,
                    info,
                }
            }
        }
        "ct" => match reg(data, 1) {
            Some(dreg) => {
                let key = reg(data, 2).unwrap_or(u32::MAX);
                let what = match CT_KEYS.get(key as usize) {
                    Some(key) => format!("ct {key}"),
                    None => format!("ct key {key}"),
                };
                Expr::Load {
                    what,
                    dreg,
                    // NFT_CT_PROTO_DST: the port before any NAT.
                    reads_port: key == 12,
                }
            }
            None => Expr::Other {
                name: "ct set".into(),
            },
        },
        _ => match LOADERS.iter().find(|(n, _)| *n == name) {
            Some((_, dreg_attribute)) => match reg(data, *dreg_attribute) {
                Some(dreg) => Expr::Load {
                    what: name,
                    dreg,
                    reads_port: false,
                },
                // ct and exthdr without a destination set something.
                None => Expr::Other {
                    name: format!("{name} set"),
                },
            },
            None => Expr::Other { name },
        },
    };
    Ok(expr)
}

/// The bytes of a nested nft_data value attribute.
fn value_of(bytes: &[u8], kind: u16) -> Option<Vec<u8>> {
    match decode_data(find(bytes, kind)?)? {
        Data::Value(value) => Some(value),
        Data::Verdict { .. } => None,
    }
}

/// A rule from a NFT_MSG_NEWRULE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The table's name.
    pub table: String,
    /// The chain's name.
    pub chain: String,
    /// The rule's handle.
    pub handle: u64,
    /// Its expressions, in order, or what kept lsport from reading them.
    pub expressions: Result<Vec<Expr>, String>,
    /// The comment kept in the rule's user data.
    pub comment: Option<String>,
}

// enum nft_rule_attributes
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;

/// A rule from the attributes of a NFT_MSG_NEWRULE message; None when
/// it has no table or chain.
pub fn decode_rule(bytes: &[u8]) -> Option<Rule> {
    let mut rule = Rule {
        table: String::new(),
        chain: String::new(),
        handle: 0,
        expressions: Ok(Vec::new()),
        comment: None,
    };
    for (kind, value) in attributes(bytes) {
        match kind {
            NFTA_RULE_TABLE => rule.table = string(value),
            NFTA_RULE_CHAIN => rule.chain = string(value),
            NFTA_RULE_HANDLE => rule.handle = be64(value).unwrap_or(0),
            NFTA_RULE_EXPRESSIONS => rule.expressions = decode_expressions(value),
            NFTA_RULE_USERDATA => rule.comment = comment_of(value),
            _ => {}
        }
    }
    (!rule.table.is_empty() && !rule.chain.is_empty()).then_some(rule)
}

fn decode_expressions(bytes: &[u8]) -> Result<Vec<Expr>, String> {
    let mut list = attributes(bytes);
    let mut out = Vec::new();
    for (kind, value) in list.by_ref() {
        if kind == NFTA_LIST_ELEM {
            out.push(decode_expression(value)?);
        }
    }
    if list.malformed {
        return Err("a list of expressions cut short".into());
    }
    Ok(out)
}

/// The comment in a rule's user data: type-length-value records of one
/// byte each, the comment being type 0 (NFTNL_UDATA_RULE_COMMENT), a
/// NUL-terminated string.
fn comment_of(bytes: &[u8]) -> Option<String> {
    let mut rest = bytes;
    while let [kind, length, tail @ ..] = rest {
        let value = tail.get(..usize::from(*length))?;
        if *kind == 0 {
            let text = string(value);
            return (!text.is_empty()).then_some(text);
        }
        rest = &tail[usize::from(*length)..];
    }
    None
}

/// A set: what its keys look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// The table's name.
    pub table: String,
    /// The set's name (`__set0` for an anonymous one).
    pub name: String,
    /// NFT_SET_* flags: 0x4 interval, 0x8 map, 0x80 concatenation.
    pub flags: u32,
    /// The length of a key, in bytes.
    pub key_len: u32,
}

/// NFT_SET_INTERVAL: elements are ranges.
pub const SET_INTERVAL: u32 = 0x4;

/// A set from the attributes of a NFT_MSG_NEWSET message.
pub fn decode_set(bytes: &[u8]) -> Option<Set> {
    Some(Set {
        table: find(bytes, 1).map(string)?,
        name: find(bytes, 2).map(string)?,
        flags: find(bytes, 3).and_then(be32).unwrap_or(0),
        key_len: find(bytes, 5).and_then(be32)?,
    })
}

/// One element of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The key (the first value of a range).
    pub key: Vec<u8>,
    /// The last value of a range, in sets of concatenated ranges.
    pub key_end: Option<Vec<u8>>,
    /// NFT_SET_ELEM_INTERVAL_END (0x1): the key is one past the end of
    /// a range; NFT_SET_ELEM_CATCHALL (0x2): matches every key.
    pub flags: u32,
    /// A map's value for the key.
    pub data: Option<Data>,
}

/// NFT_SET_ELEM_INTERVAL_END.
pub const ELEMENT_INTERVAL_END: u32 = 0x1;
/// NFT_SET_ELEM_CATCHALL.
pub const ELEMENT_CATCHALL: u32 = 0x2;

/// The elements in the attributes of a NFT_MSG_NEWSETELEM message.
pub fn decode_elements(bytes: &[u8], out: &mut Vec<Element>) -> Result<(), String> {
    // NFTA_SET_ELEM_LIST_ELEMENTS, a list of NFTA_LIST_ELEM.
    let Some(list) = find(bytes, 3) else {
        return Ok(());
    };
    let mut items = attributes(list);
    for (kind, element) in items.by_ref() {
        if kind != NFTA_LIST_ELEM {
            continue;
        }
        let flags = find(element, 3).and_then(be32).unwrap_or(0);
        let key = find(element, 1).and_then(decode_data);
        let key = match key {
            Some(Data::Value(key)) => key,
            _ if flags & ELEMENT_CATCHALL != 0 => Vec::new(),
            _ => return Err("a set element without a key".into()),
        };
        let key_end = match find(element, 10).and_then(decode_data) {
            Some(Data::Value(end)) => Some(end),
            _ => None,
        };
        out.push(Element {
            key,
            key_end,
            flags,
            data: find(element, 2).and_then(decode_data),
        });
    }
    if items.malformed {
        return Err("a list of set elements cut short".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The attributes of the rule iptables-nft writes for Docker's
    /// `-A DOCKER ! -i docker0 -p tcp --dport 8081 -j DNAT
    /// --to-destination 172.17.0.2:80`, as captured (after the
    /// nfnetlink header), its counter left out.
    #[rustfmt::skip]
    pub(crate) const DOCKER_DNAT_RULE: &[u8] = &[
        0x08, 0x00, 0x01, 0x00, b'n', b'a', b't', 0x00,     // NFTA_RULE_TABLE "nat"
        0x0b, 0x00, 0x02, 0x00, b'D', b'O', b'C', b'K',     // NFTA_RULE_CHAIN "DOCKER"
        b'E', b'R', 0x00, 0x00,
        0x0c, 0x00, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 4,     // NFTA_RULE_HANDLE 4
        0x64, 0x01, 0x04, 0x00,                             // NFTA_RULE_EXPRESSIONS
        // meta load iifname => reg 1
        0x24, 0x00, 0x01, 0x00,                             //  NFTA_LIST_ELEM
        0x09, 0x00, 0x01, 0x00, b'm', b'e', b't', b'a',     //   NFTA_EXPR_NAME "meta"
        0x00, 0x00, 0x00, 0x00,
        0x14, 0x00, 0x02, 0x00,                             //   NFTA_EXPR_DATA
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 6,                 //    NFTA_META_KEY IIFNAME
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1,                 //    NFTA_META_DREG 1
        // cmp neq reg 1 "docker0\0"
        0x30, 0x00, 0x01, 0x00,
        0x08, 0x00, 0x01, 0x00, b'c', b'm', b'p', 0x00,     //   "cmp"
        0x24, 0x00, 0x02, 0x00,
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1,                 //    NFTA_CMP_SREG 1
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 1,                 //    NFTA_CMP_OP NEQ
        0x10, 0x00, 0x03, 0x00,                             //    NFTA_CMP_DATA
        0x0c, 0x00, 0x01, 0x00,                             //     NFTA_DATA_VALUE
        b'd', b'o', b'c', b'k', b'e', b'r', b'0', 0x00,
        // meta load l4proto => reg 1
        0x24, 0x00, 0x01, 0x00,
        0x09, 0x00, 0x01, 0x00, b'm', b'e', b't', b'a', 0, 0, 0, 0,
        0x14, 0x00, 0x02, 0x00,
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 0x10,              //    NFTA_META_KEY L4PROTO
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1,
        // cmp eq reg 1 6 (TCP)
        0x2c, 0x00, 0x01, 0x00,
        0x08, 0x00, 0x01, 0x00, b'c', b'm', b'p', 0x00,
        0x20, 0x00, 0x02, 0x00,
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1,
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 0,                 //    NFTA_CMP_OP EQ
        0x0c, 0x00, 0x03, 0x00,
        0x05, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00,     //     one byte: 6
        // payload load 2b @ transport header + 2 => reg 1
        0x34, 0x00, 0x01, 0x00,
        0x0c, 0x00, 0x01, 0x00, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0x00,
        0x24, 0x00, 0x02, 0x00,
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1,                 //    NFTA_PAYLOAD_DREG 1
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 2,                 //    BASE transport
        0x08, 0x00, 0x03, 0x00, 0, 0, 0, 2,                 //    OFFSET 2
        0x08, 0x00, 0x04, 0x00, 0, 0, 0, 2,                 //    LEN 2
        // cmp eq reg 1 0x1f91 (8081)
        0x2c, 0x00, 0x01, 0x00,
        0x08, 0x00, 0x01, 0x00, b'c', b'm', b'p', 0x00,
        0x20, 0x00, 0x02, 0x00,
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1,
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 0,
        0x0c, 0x00, 0x03, 0x00,
        0x06, 0x00, 0x01, 0x00, 0x1f, 0x91, 0x00, 0x00,
        // target DNAT revision 2, struct nf_nat_range2
        0x5c, 0x00, 0x01, 0x00,
        0x0b, 0x00, 0x01, 0x00, b't', b'a', b'r', b'g', b'e', b't', 0, 0,
        0x4c, 0x00, 0x02, 0x00,
        0x09, 0x00, 0x01, 0x00, b'D', b'N', b'A', b'T', 0, 0, 0, 0, // NFTA_TARGET_NAME
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 2,                 //    NFTA_TARGET_REV 2
        0x34, 0x00, 0x03, 0x00,                             //    NFTA_TARGET_INFO, 48 bytes
        0x03, 0x00, 0x00, 0x00,                             //     flags MAP_IPS|PROTO_SPECIFIED
        172, 17, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //     min_addr
        172, 17, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //     max_addr
        0x00, 0x50, 0x00, 0x50,                             //     min_proto, max_proto 80
        0, 0, 0, 0, 0, 0, 0, 0,                             //     base_proto, padding
    ];

    #[test]
    fn docker_s_dnat_rule_decodes_expression_by_expression() {
        let rule = decode_rule(DOCKER_DNAT_RULE).expect("a rule");
        assert_eq!(
            (rule.table.as_str(), rule.chain.as_str(), rule.handle),
            ("nat", "DOCKER", 4)
        );
        let expressions = rule.expressions.expect("expressions");
        assert_eq!(expressions.len(), 7);
        assert_eq!(expressions[0], Expr::Meta { key: 6, dreg: 1 });
        assert_eq!(
            expressions[1],
            Expr::Cmp {
                sreg: 1,
                op: 1,
                data: b"docker0\0".to_vec()
            }
        );
        assert_eq!(
            expressions[4],
            Expr::Payload {
                dreg: 1,
                base: 2,
                offset: 2,
                len: 2
            }
        );
        assert!(
            matches!(&expressions[6], Expr::Target { name, revision: 2, info } if name == "DNAT" && info.len() == 48)
        );
    }

    #[test]
    fn a_base_chain_has_its_hook_and_type() {
        #[rustfmt::skip]
        let bytes: &[u8] = &[
            0x08, 0x00, 0x01, 0x00, b'n', b'a', b't', 0x00,  // NFTA_CHAIN_TABLE
            0x0f, 0x00, 0x03, 0x00, b'P', b'R', b'E', b'R',  // NFTA_CHAIN_NAME
            b'O', b'U', b'T', b'I', b'N', b'G', 0x00, 0x00,
            0x14, 0x00, 0x04, 0x00,                          // NFTA_CHAIN_HOOK
            0x08, 0x00, 0x01, 0x00, 0, 0, 0, 0,              //  HOOKNUM 0: prerouting
            0x08, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0x9c,  //  PRIORITY -100
            0x08, 0x00, 0x07, 0x00, b'n', b'a', b't', 0x00,  // NFTA_CHAIN_TYPE
        ];
        assert_eq!(
            decode_chain(bytes),
            Some(Chain {
                table: "nat".into(),
                name: "PREROUTING".into(),
                hook: Some(0),
                kind: Some("nat".into())
            })
        );
    }

    #[test]
    fn set_elements_with_a_jump_verdict() {
        #[rustfmt::skip]
        let bytes: &[u8] = &[
            0x06, 0x00, 0x01, 0x00, b't', 0, 0, 0,           // NFTA_SET_ELEM_LIST_TABLE
            0x30, 0x00, 0x03, 0x00,                          // NFTA_SET_ELEM_LIST_ELEMENTS
            0x2c, 0x00, 0x01, 0x00,                          //  NFTA_LIST_ELEM
            0x0c, 0x00, 0x01, 0x00,                          //   NFTA_SET_ELEM_KEY
            0x06, 0x00, 0x01, 0x00, 0x1f, 0x90, 0, 0,        //    NFTA_DATA_VALUE 8080
            0x1c, 0x00, 0x02, 0x00,                          //   NFTA_SET_ELEM_DATA
            0x18, 0x00, 0x02, 0x00,                          //    NFTA_DATA_VERDICT
            0x08, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xfd,  //     NFTA_VERDICT_CODE NFT_JUMP
            0x0b, 0x00, 0x02, 0x00, b'w', b'e', b'b', b'-',  //     NFTA_VERDICT_CHAIN "web-80"
            b'8', b'0', 0x00, 0x00,
        ];
        let mut out = Vec::new();
        decode_elements(bytes, &mut out).unwrap();
        assert_eq!(
            out,
            [Element {
                key: vec![0x1f, 0x90],
                key_end: None,
                flags: 0,
                data: Some(Data::Verdict {
                    code: -3,
                    chain: Some("web-80".into())
                }),
            }]
        );
    }

    #[test]
    fn the_comment_is_read_from_the_user_data() {
        // NFTNL_UDATA_RULE_EBTABLES_POLICY (1) first, then the comment.
        let bytes = [1, 1, 0, 0, 6, b'h', b'e', b'l', b'l', b'o', 0];
        assert_eq!(comment_of(&bytes).as_deref(), Some("hello"));
        assert_eq!(comment_of(&[0, 9, b'x']), None);
    }

    #[test]
    fn an_expression_missing_its_attributes_is_an_error() {
        let bytes = [0x08, 0x00, 0x01, 0x00, b'c', b'm', b'p', 0];
        assert!(decode_expression(&bytes).is_err());
    }
}
