//! The socket model every source fills and every later stage reads.
//! It depends on nothing else in the crate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
}

/// The kernel's socket state (include/net/tcp_states.h). UDP reuses the
/// same numbers: CLOSE when unconnected, ESTABLISHED when connected.
/// An unknown value is kept, never rejected: one odd socket must not fail
/// a whole dump or a whole /proc file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    BoundInactive,
    Other(u8),
}

impl State {
    pub fn from_kernel(code: u8) -> State {
        match code {
            1 => State::Established,
            2 => State::SynSent,
            3 => State::SynRecv,
            4 => State::FinWait1,
            5 => State::FinWait2,
            6 => State::TimeWait,
            7 => State::Close,
            8 => State::CloseWait,
            9 => State::LastAck,
            10 => State::Listen,
            11 => State::Closing,
            12 => State::NewSynRecv,
            13 => State::BoundInactive,
            other => State::Other(other),
        }
    }

    /// The kernel's number for the state.
    pub fn code(self) -> u8 {
        match self {
            State::Established => 1,
            State::SynSent => 2,
            State::SynRecv => 3,
            State::FinWait1 => 4,
            State::FinWait2 => 5,
            State::TimeWait => 6,
            State::Close => 7,
            State::CloseWait => 8,
            State::LastAck => 9,
            State::Listen => 10,
            State::Closing => 11,
            State::NewSynRecv => 12,
            State::BoundInactive => 13,
            State::Other(code) => code,
        }
    }

    /// The kernel's own name for the state (as in tcp_states.h, without
    /// the TCP_ prefix). Unknown states print as their number.
    pub fn kernel_name(self) -> String {
        let name = match self {
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait1 => "FIN_WAIT1",
            State::FinWait2 => "FIN_WAIT2",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::Closing => "CLOSING",
            State::NewSynRecv => "NEW_SYN_RECV",
            State::BoundInactive => "BOUND_INACTIVE",
            State::Other(code) => return code.to_string(),
        };
        name.to_string()
    }
}

/// One end of a socket: address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn is_unspecified(&self) -> bool {
        self.address.is_unspecified()
    }

    /// The address as people read it: an IPv4-mapped IPv6 address
    /// (::ffff:10.0.0.1) is shown as the IPv4 address it carries.
    pub fn readable_address(&self) -> IpAddr {
        match self.address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let address = match self.readable_address() {
            IpAddr::V4(a) if a == Ipv4Addr::UNSPECIFIED => "*".to_string(),
            IpAddr::V6(a) if a == Ipv6Addr::UNSPECIFIED => "[::]".to_string(),
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        if self.port == 0 {
            write!(f, "{address}:*")
        } else {
            write!(f, "{address}:{}", self.port)
        }
    }
}

/// A socket as a source reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub protocol: Protocol,
    pub family: Family,
    pub state: State,
    pub local: Endpoint,
    pub remote: Endpoint,
    /// IPV6_V6ONLY for IPv6 sockets; None for IPv4 sockets and where the
    /// source does not say.
    pub v6only: Option<bool>,
    /// The uid that created the socket, as the kernel records it.
    pub uid: u32,
    /// The socket's inode: the N in /proc/[pid]/fd/* -> socket:[N].
    /// Zero for sockets no file refers to (TIME_WAIT, request sockets,
    /// connections not yet accepted).
    pub inode: u64,
}

impl Socket {
    /// A socket that is not connected: a TCP listener or a bound-only TCP
    /// socket, or an unconnected UDP socket.
    pub fn is_unconnected(&self) -> bool {
        match self.protocol {
            Protocol::Tcp => matches!(
                self.state,
                State::Listen | State::BoundInactive | State::Close
            ),
            Protocol::Udp => self.state == State::Close,
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_state_has_a_name_and_unknown_ones_are_kept() {
        for code in 1..=13u8 {
            assert!(!matches!(State::from_kernel(code), State::Other(_)));
            assert_eq!(State::from_kernel(code).code(), code);
        }
        assert_eq!(State::from_kernel(200), State::Other(200));
        assert_eq!(State::from_kernel(13).kernel_name(), "BOUND_INACTIVE");
        assert_eq!(State::from_kernel(42).kernel_name(), "42");
    }

    #[test]
    fn mapped_ipv4_addresses_are_shown_as_ipv4() {
        let mapped = Endpoint {
            address: "::ffff:127.0.0.1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(mapped.to_string(), "127.0.0.1:80");
        let v6 = Endpoint {
            address: "::1".parse().unwrap(),
            port: 0,
        };
        assert_eq!(v6.to_string(), "[::1]:*");
    }
}
