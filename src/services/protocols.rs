//! Sets of transport protocols, as registrations name them: IANA's rows
//! and /etc/services lines both say which protocols a name covers.

use crate::socket::Protocol;

/// A set of transport protocols, as bits. ANY marks a registration made
/// without a protocol, which covers them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols(pub u8);

impl Protocols {
    /// The bits, as tools/gen-iana.py writes them.
    const NAMES: [(u8, &'static str); 5] = [
        (1, "tcp"),
        (2, "udp"),
        (4, "sctp"),
        (8, "dccp"),
        (Self::ANY, "any"),
    ];
    const ANY: u8 = 16;

    /// A protocol as /etc/services spells it; None for one lsport does
    /// not know (ddp).
    pub fn named(name: &str) -> Option<Protocols> {
        Self::NAMES
            .iter()
            .take(4)
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(bit, _)| Protocols(*bit))
    }

    /// The set holding only a socket's protocol.
    pub fn of(protocol: Protocol) -> Protocols {
        match protocol {
            Protocol::Tcp => Protocols(1),
            Protocol::Udp => Protocols(2),
            Protocol::Sctp => Protocols(4),
        }
    }

    /// True when a socket of `protocol` falls under this registration.
    pub fn covers(self, protocol: Protocol) -> bool {
        self.overlaps(Protocols::of(protocol))
    }

    /// True when the two share a protocol, counting ANY as every one.
    pub fn overlaps(self, other: Protocols) -> bool {
        self.0 & (other.0 | Self::ANY) != 0 || other.0 & Self::ANY != 0
    }

    /// Each protocol's name, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| name)
    }

    /// The names joined with commas, e.g. "tcp, udp".
    pub fn label(self) -> String {
        self.names().collect::<Vec<_>>().join(", ")
    }
}
