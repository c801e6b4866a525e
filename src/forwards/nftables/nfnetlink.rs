//! nfnetlink framing for nf_tables, by hand: the dump requests lsport
//! sends, and the messages and attributes of the replies. Pure
//! functions over bytes; the socket is in `read.rs`.
//!
//! A message is a netlink header (16 bytes, host byte order), the
//! nfnetlink header (family, version, and a resource id that nf_tables
//! fills with the low 16 bits of the rule set's generation), then
//! attributes. nf_tables writes its numbers in network byte order.

/// NFNL_SUBSYS_NFTABLES: the subsystem in the high byte of the type.
const SUBSYS_NFTABLES: u16 = 10;

/// The nf_tables messages lsport asks for; the kernel answers a GET with
/// the matching NEW (one less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    /// NFT_MSG_GETCHAIN: the chains, with the hook of base chains.
    Chains,
    /// NFT_MSG_GETRULE: the rules and their expressions.
    Rules,
    /// NFT_MSG_GETSET: the sets, with their key length and flags.
    Sets,
    /// NFT_MSG_GETSETELEM: the elements of one set.
    SetElements,
}

impl Dump {
    fn request_type(self) -> u16 {
        let message = match self {
            Dump::Chains => 4,
            Dump::Rules => 7,
            Dump::Sets => 10,
            Dump::SetElements => 13,
        };
        (SUBSYS_NFTABLES << 8) | message
    }

    /// The type of the messages that answer it (NFT_MSG_NEW*).
    pub fn reply_type(self) -> u16 {
        self.request_type() - 1
    }

    /// The dump's name in an error message.
    pub fn name(self) -> &'static str {
        match self {
            Dump::Chains => "chain",
            Dump::Rules => "rule",
            Dump::Sets => "set",
            Dump::SetElements => "set element",
        }
    }
}

const NLMSG_HEADER_LEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// Set on a reply when the rule set changed while the dump ran: what
/// came is not one consistent state.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// The attributes of a NFT_MSG_GETSETELEM request.
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;

/// The low 14 bits of an attribute's type; the top two are flags
/// (nested, network byte order).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The bytes of a dump request for one table family (an NFPROTO_*
/// number). For the elements of a set, `set` names its table and
/// itself; the other dumps take every table of the family.
pub fn build_request(dump: Dump, family: u8, set: Option<(&str, &str)>, sequence: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(&0u32.to_ne_bytes()); // length, fixed below
    bytes.extend_from_slice(&dump.request_type().to_ne_bytes());
    bytes.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    bytes.extend_from_slice(&sequence.to_ne_bytes());
    bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    // nfgenmsg: family, NFNETLINK_V0, resource id 0.
    bytes.extend_from_slice(&[family, 0, 0, 0]);
    if let Some((table, name)) = set {
        put_string(&mut bytes, NFTA_SET_ELEM_LIST_TABLE, table);
        put_string(&mut bytes, NFTA_SET_ELEM_LIST_SET, name);
    }
    let length = bytes.len() as u32;
    bytes[0..4].copy_from_slice(&length.to_ne_bytes());
    bytes
}

/// Appends a NUL-terminated string attribute, padded to 4 bytes.
fn put_string(bytes: &mut Vec<u8>, kind: u16, value: &str) {
    let length = 4 + value.len() + 1;
    bytes.extend_from_slice(&(length as u16).to_ne_bytes());
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(value.as_bytes());
    bytes.push(0);
    bytes.resize(bytes.len().next_multiple_of(4), 0);
}

/// One reply message of a dump: what follows the nfnetlink header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The table family of what it describes (NFPROTO_*).
    pub family: u8,
    /// The low 16 bits of the rule set's generation when it was sent.
    pub generation: u16,
    /// The attributes, undecoded.
    pub attributes: Vec<u8>,
    /// NLM_F_DUMP_INTR: the rule set changed while the dump ran, and
    /// the dump is not one consistent state.
    pub interrupted: bool,
}

/// Where a stream of replies stands after one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Read another buffer.
    More,
    /// The kernel ended the dump.
    Done,
}

/// Why a dump failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpFailure {
    /// The kernel answered with an error (the errno, positive).
    Kernel(i32),
    /// The rule set changed while the dump ran (NLM_F_DUMP_INTR).
    Interrupted,
    /// The replies are not well formed.
    Malformed(String),
}

/// Splits one buffer of replies into messages of type `reply_type`,
/// appended to `out`. Messages of other types are skipped; an error
/// from the kernel is an error, never an empty answer. A dump marked as
/// interrupted (on any of its messages) fails at its end, once it has
/// been read whole.
pub fn decode_replies(
    mut buffer: &[u8],
    reply_type: u16,
    out: &mut Vec<Message>,
) -> Result<Progress, DumpFailure> {
    while !buffer.is_empty() {
        if buffer.len() < NLMSG_HEADER_LEN {
            return Err(DumpFailure::Malformed(format!(
                "{} bytes left after the last reply",
                buffer.len()
            )));
        }
        let length = u32::from_ne_bytes(buffer[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buffer[4..6].try_into().unwrap());
        let flags = u16::from_ne_bytes(buffer[6..8].try_into().unwrap());
        if length < NLMSG_HEADER_LEN || length > buffer.len() {
            // An error whose echo of the request was cut short still
            // says what went wrong.
            if kind == NLMSG_ERROR {
                if let Some(code) = error_code(&buffer[NLMSG_HEADER_LEN..]) {
                    return Err(DumpFailure::Kernel(code));
                }
            }
            return Err(DumpFailure::Malformed(format!(
                "a reply with a bad length ({length} bytes)"
            )));
        }
        let interrupted = flags & NLM_F_DUMP_INTR != 0;
        let payload = &buffer[NLMSG_HEADER_LEN..length];
        match kind {
            NLMSG_ERROR | NLMSG_DONE => {
                if let Some(code) = error_code(payload) {
                    return Err(DumpFailure::Kernel(code));
                }
                if kind == NLMSG_DONE {
                    return if interrupted || out.iter().any(|m| m.interrupted) {
                        Err(DumpFailure::Interrupted)
                    } else {
                        Ok(Progress::Done)
                    };
                }
            }
            NLMSG_NOOP => {}
            kind if kind == reply_type => {
                if payload.len() < NFGENMSG_LEN {
                    return Err(DumpFailure::Malformed(
                        "a reply shorter than its nfnetlink header".into(),
                    ));
                }
                out.push(Message {
                    family: payload[0],
                    generation: u16::from_be_bytes([payload[2], payload[3]]),
                    attributes: payload[NFGENMSG_LEN..].to_vec(),
                    interrupted,
                });
            }
            _ => {}
        }
        let advance = length.next_multiple_of(4);
        buffer = buffer.get(advance..).unwrap_or(&[]);
    }
    Ok(Progress::More)
}

/// The errno of an NLMSG_ERROR or NLMSG_DONE payload that reports one.
fn error_code(payload: &[u8]) -> Option<i32> {
    let code = i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?);
    (code < 0).then(|| code.wrapping_neg())
}

/// The attributes in `bytes`, in order, as (type without flags,
/// payload). Iteration stops at the first attribute that does not fit;
/// `malformed` then says so.
pub struct Attributes<'a> {
    rest: &'a [u8],
    /// Set when the bytes ended inside an attribute.
    pub malformed: bool,
}

/// Iterates over the attributes of `bytes`.
pub fn attributes(bytes: &[u8]) -> Attributes<'_> {
    Attributes {
        rest: bytes,
        malformed: false,
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        if self.rest.len() < 4 {
            self.malformed |= !self.rest.is_empty();
            self.rest = &[];
            return None;
        }
        let length = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if length < 4 || length > self.rest.len() {
            self.malformed = true;
            self.rest = &[];
            return None;
        }
        let payload = &self.rest[4..length];
        self.rest = self.rest.get(length.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, payload))
    }
}

/// The payload of the first attribute of type `kind`.
pub fn find(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(bytes).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// A big-endian u32 attribute, as nf_tables writes its numbers.
pub fn be32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.get(0..4)?.try_into().ok()?))
}

/// A big-endian u64 attribute (handles).
pub fn be64(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?))
}

/// A string attribute, up to its NUL; bytes that are not UTF-8 are
/// replaced (names only reach the terminal escaped, by the caller).
pub fn string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_element_request_names_its_table_and_set() {
        let bytes = build_request(Dump::SetElements, 1, Some(("t", "__set0")), 7);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            40, 0, 0, 0,        // length
            0x0d, 0x0a,         // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETSETELEM
            0x01, 0x03,         // NLM_F_REQUEST | NLM_F_DUMP
            7, 0, 0, 0,         // sequence
            0, 0, 0, 0,         // port id
            1, 0, 0, 0,         // nfgenmsg: NFPROTO_INET, version 0, res_id 0
            6, 0, 1, 0,         // NFTA_SET_ELEM_LIST_TABLE, 2 bytes
            b't', 0, 0, 0,      // "t\0" and padding
            11, 0, 2, 0,        // NFTA_SET_ELEM_LIST_SET, 7 bytes
            b'_', b'_', b's', b'e', b't', b'0', 0, 0,
        ];
        assert_eq!(bytes, expected);
        // A rule dump has no attributes.
        assert_eq!(build_request(Dump::Rules, 2, None, 1).len(), 20);
        assert_eq!(Dump::Rules.reply_type(), 0x0a06);
    }

    /// The refusal a user without CAP_NET_ADMIN gets, as captured.
    #[rustfmt::skip]
    const REFUSED: &[u8] = &[
        0x28, 0, 0, 0,          // length 40
        2, 0,                   // NLMSG_ERROR
        0, 1,                   // flags: NLM_F_CAPPED
        1, 0, 0, 0,             // sequence
        0xde, 0x42, 0, 0,       // port id
        0xff, 0xff, 0xff, 0xff, // error -1: EPERM
        // The request's header, echoed.
        0x14, 0, 0, 0, 0x07, 0x0a, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0,
    ];

    #[test]
    fn a_refused_dump_is_an_error_with_its_errno() {
        let mut out = Vec::new();
        assert_eq!(
            decode_replies(REFUSED, Dump::Rules.reply_type(), &mut out),
            Err(DumpFailure::Kernel(1))
        );
        // Cut short, it still gives its errno.
        assert_eq!(
            decode_replies(&REFUSED[..22], Dump::Rules.reply_type(), &mut out),
            Err(DumpFailure::Kernel(1))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn messages_are_split_and_the_done_message_ends_the_dump() {
        #[rustfmt::skip]
        let replies: &[u8] = &[
            // A NEWRULE message with one attribute.
            28, 0, 0, 0, 0x06, 0x0a, 0x02, 0x08, 1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0x12, 0x34,   // NFPROTO_IPV4, version 0, generation 0x1234
            8, 0, 1, 0, b'n', b'a', b't', 0, // NFTA_RULE_TABLE "nat"
            // NLMSG_DONE, code 0.
            20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        let mut out = Vec::new();
        let progress = decode_replies(replies, Dump::Rules.reply_type(), &mut out);
        assert_eq!(progress, Ok(Progress::Done));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].family, 2);
        assert_eq!(out[0].generation, 0x1234);
        assert_eq!(find(&out[0].attributes, 1).map(string), Some("nat".into()));
        // Without its DONE the dump goes on.
        let mut out = Vec::new();
        let first = &replies[..28];
        assert_eq!(
            decode_replies(first, Dump::Rules.reply_type(), &mut out),
            Ok(Progress::More)
        );
        // A message marked as interrupted makes the whole dump void, at
        // its end: the first buffer alone goes on.
        let mut interrupted = replies.to_vec();
        interrupted[6] |= 0x10;
        let mut out = Vec::new();
        assert_eq!(
            decode_replies(&interrupted[..28], Dump::Rules.reply_type(), &mut out),
            Ok(Progress::More)
        );
        assert_eq!(
            decode_replies(&interrupted[28..], Dump::Rules.reply_type(), &mut out),
            Err(DumpFailure::Interrupted)
        );
    }

    #[test]
    fn broken_framing_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        for bytes in [
            &[1u8, 2, 3][..],
            &[200, 0, 0, 0, 6, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(matches!(
                decode_replies(bytes, Dump::Rules.reply_type(), &mut out),
                Err(DumpFailure::Malformed(_))
            ));
        }
        // An attribute longer than its buffer ends the iteration.
        let mut attrs = attributes(&[8, 0, 1, 0, 1, 2]);
        assert_eq!(attrs.next(), None);
        assert!(attrs.malformed);
    }
}
