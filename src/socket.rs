//! The socket model every source fills and every later stage reads.
//! It depends on nothing else in the crate.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP, read only where the kernel has sctp_diag, and only when
    /// asked for (`--sctp`).
    Sctp,
}

impl Protocol {
    /// The protocol's name as ss prints it: `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 (AF_INET).
    Inet,
    /// IPv6 (AF_INET6), which also carries IPv4-mapped addresses.
    Inet6,
}

impl Family {
    /// The family's name as ss prints it: `inet` or `inet6`.
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
    /// A connected socket (1); for UDP, a connected socket.
    Established,
    /// A TCP connect in progress: SYN sent, no answer yet (2).
    SynSent,
    /// A TCP handshake answered with SYN-ACK, waiting for the final ACK (3).
    SynRecv,
    /// This side closed first and sent its FIN (4).
    FinWait1,
    /// This side's FIN was acknowledged; waiting for the peer's FIN (5).
    FinWait2,
    /// Closed on both sides; the port pair is kept a while so late
    /// segments are not taken for a new connection (6).
    TimeWait,
    /// Not connected and not listening (7): for UDP, an unconnected
    /// socket; for TCP, a closed socket or one bound on an older kernel.
    Close,
    /// The peer closed first; this side has not closed yet (8).
    CloseWait,
    /// The peer closed first, then this side; waiting for the last ACK (9).
    LastAck,
    /// A TCP listener (10).
    Listen,
    /// Both sides closed at the same time (11).
    Closing,
    /// A request socket: a connection whose handshake is still under way
    /// on a listener (12).
    NewSynRecv,
    /// A TCP socket that is bound but neither listening nor connected
    /// (13, reported since Linux 6.5).
    BoundInactive,
    /// A number this version does not know, kept as the kernel gave it.
    Other(u8),
}

impl State {
    /// The state for the kernel's number; an unknown number gives
    /// [`State::Other`].
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
    pub fn kernel_name(self) -> Cow<'static, str> {
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
            State::Other(code) => return Cow::Owned(code.to_string()),
        };
        Cow::Borrowed(name)
    }
}

/// One end of a socket: address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The address as the source gave it; unspecified (0.0.0.0 or ::)
    /// for a socket bound to every address or with no peer.
    pub address: IpAddr,
    /// The port; 0 where none is bound or there is no peer.
    pub port: u16,
}

impl Endpoint {
    /// Whether the address is the wildcard 0.0.0.0 or ::, that is every
    /// local address (or, for a remote end, no peer).
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

/// `ADDRESS:PORT` as the kernel has it: an IPv4-mapped address of an
/// IPv6 socket stays `[::ffff:10.0.0.1]`, as ss writes it, so that a
/// `tcp6` label is never followed by what looks like an IPv4 socket;
/// `*` and `[::]` for the wildcards, `:*` for no port.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written straight to `f`: the table writes two per line.
        match self.address {
            IpAddr::V4(a) if a == Ipv4Addr::UNSPECIFIED => f.write_str("*")?,
            IpAddr::V6(a) if a == Ipv6Addr::UNSPECIFIED => f.write_str("[::]")?,
            IpAddr::V4(a) => write!(f, "{a}")?,
            IpAddr::V6(a) => write!(f, "[{a}]")?,
        }
        if self.port == 0 {
            f.write_str(":*")
        } else {
            write!(f, ":{}", self.port)
        }
    }
}

/// A socket as a source reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// IPv4 or IPv6.
    pub family: Family,
    /// The kernel's state for the socket.
    pub state: State,
    /// The local end: the address and port the socket is bound to.
    pub local: Endpoint,
    /// The peer; the unspecified address and port 0 when not connected.
    pub remote: Endpoint,
    /// IPV6_V6ONLY for IPv6 sockets; None for IPv4 sockets and where the
    /// source does not say.
    pub v6only: Option<bool>,
    /// The uid that created the socket, as the kernel records it.
    pub uid: u32,
    /// The socket's inode: the N in `/proc/PID/fd/* -> socket:[N]`.
    /// Zero for sockets no file refers to (TIME_WAIT, request sockets,
    /// connections not yet accepted).
    pub inode: u64,
    /// The kernel's cookie for the socket, which names it while it lives
    /// (SOCK_DESTROY and the destroy notifications use it). Zero where the
    /// source does not say (/proc/net).
    pub cookie: u64,
    /// Milliseconds until the kernel ends the socket by itself, where its
    /// timer says so: TIME_WAIT sockets, and orphaned FIN_WAIT2
    /// connections kept as timewait sockets (tcp_fin_timeout of 60 s or
    /// less). None for any other timer (it says when the kernel next acts
    /// on the socket, not when the socket goes), where none runs, or where
    /// the source does not say (/proc/net).
    pub timer_ms: Option<u32>,
    /// Whether the kernel chose the socket's port (no bind() to a port:
    /// a client's connect(), or sendto() on an unbound UDP socket).
    /// None where it was not asked or the source cannot say (/proc/net).
    pub autobound: Option<bool>,
    /// The id of the cgroup v2 the socket was created in (the inode of
    /// its directory on the cgroup2 mount). None where the source does
    /// not say: /proc/net, kernels before 5.7, and TIME_WAIT and request
    /// sockets, which keep no cgroup.
    pub cgroup_id: Option<std::num::NonZeroU64>,
    /// Whether the TCP socket is a subflow or listener of an MPTCP socket
    /// (its upper layer protocol is "mptcp"). None where the kernel was
    /// not asked (UDP, dumps of every connection on every port) or does
    /// not say (TIME_WAIT and request sockets), and with /proc/net.
    pub mptcp: Option<bool>,
}

impl Socket {
    /// A socket that waits for others on its port: a TCP listener or
    /// bound-only socket, or an unconnected UDP socket that was bound on
    /// purpose (one whose port the kernel chose is a client).
    pub fn is_listening(&self) -> bool {
        self.is_unconnected() && !(self.protocol == Protocol::Udp && self.autobound == Some(true))
    }

    /// A TCP connection its program has closed while the peer had not:
    /// the kernel finishes the close by itself (FIN_WAIT1, FIN_WAIT2,
    /// CLOSING, LAST_ACK) and no file refers to it (inode 0), so no
    /// process holds it and none can be signalled. Like TIME_WAIT, it
    /// goes by itself (tcp_fin_timeout, retransmission limits), and a
    /// bind() with SO_REUSEADDR succeeds beside it.
    pub fn is_orphaned(&self) -> bool {
        self.protocol == Protocol::Tcp
            && self.inode == 0
            && matches!(
                self.state,
                State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck
            )
    }

    /// A socket that keeps its port only until the kernel ends it by
    /// itself, with no process to signal: TIME_WAIT, or an orphaned
    /// connection (see [`Socket::is_orphaned`]).
    pub fn ends_by_itself(&self) -> bool {
        self.state == State::TimeWait || self.is_orphaned()
    }

    /// A socket that is not connected: a TCP listener or a bound-only TCP
    /// socket, or an unconnected UDP socket.
    pub fn is_unconnected(&self) -> bool {
        match self.protocol {
            Protocol::Tcp | Protocol::Sctp => matches!(
                self.state,
                State::Listen | State::BoundInactive | State::Close
            ),
            Protocol::Udp => self.state == State::Close,
        }
    }
}

#[cfg(test)]
impl Socket {
    /// A socket for unit tests: TCP between two endpoints written as
    /// `ADDRESS:PORT` (`[::1]:80` for IPv6), of the family of the local
    /// address, uid 0, inode 1, and nothing else known. Tests set the
    /// fields they care about with `..Socket::example(..)`.
    pub(crate) fn example(state: State, local: &str, remote: &str) -> Socket {
        let endpoint = |text: &str| {
            let (address, port) = text.rsplit_once(':').expect("ADDRESS:PORT");
            Endpoint {
                address: address
                    .trim_matches(['[', ']'])
                    .parse()
                    .expect("an address"),
                port: port.parse().expect("a port"),
            }
        };
        let local = endpoint(local);
        Socket {
            protocol: Protocol::Tcp,
            family: if local.address.is_ipv4() {
                Family::Inet
            } else {
                Family::Inet6
            },
            state,
            local,
            remote: endpoint(remote),
            v6only: None,
            uid: 0,
            inode: 1,
            cookie: 0,
            timer_ms: None,
            autobound: None,
            cgroup_id: None,
            mptcp: None,
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// The first port of the range.
    pub lo: u16,
    /// The last port of the range, included; equal to `lo` for one port.
    pub hi: u16,
}

impl PortRange {
    /// The range holding only `port`.
    pub fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Whether `port` lies in the range, both ends included.
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
    fn mapped_ipv4_addresses_are_written_as_the_kernel_has_them() {
        let mapped = Endpoint {
            address: "::ffff:127.0.0.1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(mapped.to_string(), "[::ffff:127.0.0.1]:80");
        // JSON and the role rules read the IPv4 address it carries.
        assert_eq!(mapped.readable_address().to_string(), "127.0.0.1");
        let v6 = Endpoint {
            address: "::1".parse().unwrap(),
            port: 0,
        };
        assert_eq!(v6.to_string(), "[::1]:*");
    }

    #[test]
    fn a_closing_connection_no_file_refers_to_is_orphaned() {
        let closing = |state, inode| Socket {
            inode,
            ..Socket::example(state, "127.0.0.1:80", "127.0.0.1:40000")
        };
        for state in [
            State::FinWait1,
            State::FinWait2,
            State::Closing,
            State::LastAck,
        ] {
            assert!(closing(state, 0).is_orphaned(), "{state:?}");
            assert!(closing(state, 0).ends_by_itself(), "{state:?}");
            // Its program still has it open: closing, not orphaned.
            assert!(!closing(state, 7).is_orphaned(), "{state:?}");
        }
        // Not yet accepted (the peer closed first): its listener holds it.
        assert!(!closing(State::CloseWait, 0).is_orphaned());
        assert!(!closing(State::Established, 0).is_orphaned());
        assert!(closing(State::TimeWait, 0).ends_by_itself());
        assert!(!closing(State::Listen, 7).ends_by_itself());
    }
}
