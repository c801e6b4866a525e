//! The kernel's bind rules, as far as they explain a trial's answer, or
//! stand in for a call the trial did not make (see `trial`). They name
//! which sockets of the probe stand in the way, and which share the
//! port harmlessly. What sock_diag does not tell (another socket's
//! SO_REUSEADDR and SO_REUSEPORT) is read from the socket where its
//! holder allows (see `held`); where it is not known, a socket that
//! conflicts unless it set them is only a possible cause.
//!
//! The rules (net/ipv4/inet_connection_sock.c, net/ipv4/udp.c), for a
//! new socket beside another on the same port whose addresses overlap:
//!
//! - TCP: they coexist when both set SO_REUSEADDR and the other one is
//!   not listening, or when both set SO_REUSEPORT and the other one is
//!   of the same user (a TIME_WAIT socket counts as any user's). The
//!   same test runs at bind() and at listen().
//! - UDP: they coexist when both set SO_REUSEADDR, or both set
//!   SO_REUSEPORT as the same user.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::commands::why::trial::BindSpec;
use crate::ports::KernelPortPolicy;
use crate::socket::{Family, Protocol, Socket, State};

/// The addresses a socket receives on: some of IPv4, some of IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Coverage {
    v4: Part<Ipv4Addr>,
    v6: Part<Ipv6Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<A> {
    Nothing,
    Every,
    One(A),
}

impl<A: PartialEq> Part<A> {
    fn meets(&self, other: &Part<A>) -> bool {
        match (self, other) {
            (Part::Nothing, _) | (_, Part::Nothing) => false,
            (Part::Every, _) | (_, Part::Every) => true,
            (Part::One(a), Part::One(b)) => a == b,
        }
    }
}

/// What an address bound with IPV6_V6ONLY as given covers. An IPv6
/// socket whose V6ONLY is unknown (/proc/net) is taken as dual-stack,
/// the kernel's default.
fn coverage(address: IpAddr, v6only: Option<bool>) -> Coverage {
    match address {
        IpAddr::V4(a) if a.is_unspecified() => Coverage {
            v4: Part::Every,
            v6: Part::Nothing,
        },
        IpAddr::V4(a) => Coverage {
            v4: Part::One(a),
            v6: Part::Nothing,
        },
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            // An IPv4-mapped address is an IPv4 bind made on an IPv6 socket.
            Some(v4) => coverage(IpAddr::V4(v4), None),
            None if a.is_unspecified() => Coverage {
                v4: if v6only == Some(true) {
                    Part::Nothing
                } else {
                    Part::Every
                },
                v6: Part::Every,
            },
            None => Coverage {
                v4: Part::Nothing,
                v6: Part::One(a),
            },
        },
    }
}

fn overlaps(a: Coverage, b: Coverage) -> bool {
    a.v4.meets(&b.v4) || a.v6.meets(&b.v6)
}

/// The trial as the rules see it: the bind, with IPV6_V6ONLY as the
/// socket had it, and the uid it ran as.
#[derive(Debug, Clone, Copy)]
pub struct TrialView<'a> {
    /// The bind tried.
    pub spec: &'a BindSpec,
    /// IPV6_V6ONLY as the trial socket had it.
    pub v6only: Option<bool>,
    /// The uid the trial ran as.
    pub uid: u32,
}

impl TrialView<'_> {
    fn coverage(&self) -> Coverage {
        coverage(self.spec.address, self.v6only)
    }

    /// Whether `socket` is on the trial's protocol and port, with
    /// addresses that overlap the trial's.
    pub fn meets(&self, socket: &Socket) -> bool {
        socket.protocol == self.spec.protocol
            && socket.local.port == self.spec.port
            && overlaps(
                self.coverage(),
                coverage(socket.local.address, socket.v6only),
            )
    }
}

/// What lsport knows of another socket's SO_REUSEADDR and SO_REUSEPORT:
/// each None where it could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Known {
    /// SO_REUSEADDR.
    pub reuseaddr: Option<bool>,
    /// SO_REUSEPORT.
    pub reuseport: Option<bool>,
}

/// Three-valued logic over what is known: None is "unknown".
fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// Whether a bind as `trial` conflicts with `socket`, by the rules in
/// the module's comment: Some(true) whatever is unknown, Some(false)
/// never, None when it turns on an option not known.
pub fn conflicts(trial: &TrialView<'_>, socket: &Socket, known: Known) -> Option<bool> {
    if !trial.meets(socket) {
        return Some(false);
    }
    let spec = trial.spec;
    let same_user = socket.uid == trial.uid;
    let coexist = match spec.protocol {
        Protocol::Tcp | Protocol::Sctp => {
            // Request sockets live on their listener, not on the port.
            if matches!(socket.state, State::SynRecv | State::NewSynRecv) {
                return Some(false);
            }
            let not_listening = Some(socket.state != State::Listen);
            // TIME_WAIT counts as any user's; so does an orphaned
            // connection, which the kernel may already keep as one.
            let any_user = socket.ends_by_itself() || same_user;
            or(
                and(Some(spec.reuseaddr), and(known.reuseaddr, not_listening)),
                and(Some(spec.reuseport), and(known.reuseport, Some(any_user))),
            )
        }
        Protocol::Udp => or(
            and(Some(spec.reuseaddr), known.reuseaddr),
            and(Some(spec.reuseport), and(known.reuseport, Some(same_user))),
        ),
    };
    coexist.map(|c| !c)
}

/// Why a socket stands in the way of the bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A TCP listener whose addresses overlap: it blocks every other
    /// bind unless both set SO_REUSEPORT as the same user.
    Listener,
    /// An SO_REUSEPORT group of another user: SO_REUSEPORT was set on
    /// both (the kernel said so to a trial as that user), but a group is
    /// shared only by sockets of one uid.
    ReuseportOtherUser,
    /// A TIME_WAIT socket (or an orphaned connection), which blocks binds
    /// without SO_REUSEADDR.
    TimeWait,
    /// A TIME_WAIT socket left by a socket without SO_REUSEADDR, which
    /// blocks even a bind with it.
    TimeWaitWithoutReuse,
    /// A TCP socket that is only bound.
    BoundOnly,
    /// A connection that uses the port as its local port: an outgoing
    /// connection that took it as its source port, or an accepted one.
    Connection,
    /// A UDP socket: UDP sockets share a port only when both set
    /// SO_REUSEADDR (or both SO_REUSEPORT, as one user).
    Udp,
}

impl Rule {
    /// The rule's stable name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Listener => "listener",
            Rule::ReuseportOtherUser => "reuseport_other_user",
            Rule::TimeWait => "time_wait",
            Rule::TimeWaitWithoutReuse => "time_wait_without_reuseaddr",
            Rule::BoundOnly => "bound_only",
            Rule::Connection => "connection",
            Rule::Udp => "udp",
        }
    }
}

/// How sure the rules are that a socket is in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Certainty {
    /// Whatever is not known of it, it conflicts.
    Certain,
    /// It conflicts unless it set options lsport could not read.
    Possible,
}

/// Whether `socket` stands in the way of the trial, and by which rule:
/// certain when it conflicts whatever is unknown of it, possible when
/// that turns on an option lsport could not read. None: it cannot
/// (another protocol, address or family, a request socket, which holds
/// no port of its own, or options that let both have the port).
pub fn judge(trial: &TrialView<'_>, socket: &Socket, known: Known) -> Option<(Rule, Certainty)> {
    let certainty = match conflicts(trial, socket, known) {
        Some(true) => Certainty::Certain,
        None => Certainty::Possible,
        Some(false) => return None,
    };
    Some((rule_of(trial, socket, known), certainty))
}

fn rule_of(trial: &TrialView<'_>, socket: &Socket, known: Known) -> Rule {
    let spec = trial.spec;
    match spec.protocol {
        Protocol::Udp => Rule::Udp,
        Protocol::Tcp | Protocol::Sctp => match socket.state {
            State::Listen
                if spec.reuseport && socket.uid != trial.uid && known.reuseport == Some(true) =>
            {
                Rule::ReuseportOtherUser
            }
            State::Listen => Rule::Listener,
            _ if socket.ends_by_itself() && spec.reuseaddr => Rule::TimeWaitWithoutReuse,
            _ if socket.ends_by_itself() => Rule::TimeWait,
            State::BoundInactive | State::Close => Rule::BoundOnly,
            _ => Rule::Connection,
        },
    }
}

/// Why a socket on the same port does not stop the bind, for the notes
/// given when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coexistence {
    /// Same family, another address: each gets its own address's traffic.
    OtherAddress,
    /// One takes only IPv4 and the other only IPv6 (a `::1` listener and
    /// 127.0.0.1; a V6ONLY `[::]` and 0.0.0.0): neither answers on the
    /// other's family.
    OtherFamily,
    /// The addresses overlap, but the options let both have the port
    /// (SO_REUSEADDR over TIME_WAIT or a bound-only socket); it takes no
    /// traffic from the new socket.
    SharesPort,
    /// A live SO_REUSEPORT group (TCP listeners, UDP sockets): the new
    /// socket joins it, and the kernel spreads new connections or
    /// datagrams over every member.
    JoinsGroup,
    /// A UDP socket that shares the port through SO_REUSEADDR: each
    /// unicast datagram goes to one socket only, so the new one takes
    /// traffic meant for the other.
    TakesDatagrams,
}

impl Coexistence {
    /// The stable name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Coexistence::OtherAddress => "other_address",
            Coexistence::OtherFamily => "other_family",
            Coexistence::SharesPort => "shares_port",
            Coexistence::JoinsGroup => "joins_group",
            Coexistence::TakesDatagrams => "takes_datagrams",
        }
    }
}

/// How a socket on the port lives beside the trial's socket, when the
/// bind succeeded. Only sockets that receive on the port, or TIME_WAIT
/// ones, are worth a note; connections are not.
pub fn coexistence(trial: &TrialView<'_>, socket: &Socket, known: Known) -> Option<Coexistence> {
    let spec = trial.spec;
    if socket.protocol != spec.protocol || socket.local.port != spec.port {
        return None;
    }
    let receives = match socket.protocol {
        Protocol::Tcp | Protocol::Sctp => {
            matches!(
                socket.state,
                State::Listen | State::BoundInactive | State::Close
            ) || socket.ends_by_itself()
        }
        Protocol::Udp => socket.state == State::Close,
    };
    if !receives {
        return None;
    }
    let ours = trial.coverage();
    let theirs = coverage(socket.local.address, socket.v6only);
    if overlaps(ours, theirs) {
        return Some(match (socket.protocol, socket.state) {
            (Protocol::Tcp | Protocol::Sctp, State::Listen) => Coexistence::JoinsGroup,
            (Protocol::Tcp | Protocol::Sctp, _) => Coexistence::SharesPort,
            (Protocol::Udp, _) => {
                let group =
                    spec.reuseport && known.reuseport == Some(true) && socket.uid == trial.uid;
                if group && !(spec.reuseaddr && known.reuseaddr == Some(true)) {
                    Coexistence::JoinsGroup
                } else {
                    Coexistence::TakesDatagrams
                }
            }
        });
    }
    if socket.ends_by_itself() {
        return None;
    }
    let families_apart = (ours.v4 == Part::Nothing) != (theirs.v4 == Part::Nothing)
        && (ours.v6 == Part::Nothing) != (theirs.v6 == Part::Nothing);
    if families_apart {
        Some(Coexistence::OtherFamily)
    } else {
        Some(Coexistence::OtherAddress)
    }
}

/// Which end of a connection a socket is, as far as the kernel tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Accepted by a listener on the port (one is there still, or the
    /// port is outside the ephemeral range, where connect() never
    /// picks).
    Accepted,
    /// A client's: the connection is being opened, its port was bound
    /// on purpose (accepted sockets never keep that mark), or its peer
    /// is a local listener.
    Outgoing {
        /// Whether connect() picked the port (the kernel says so:
        /// INET_DIAG_BC_AUTO); None where the source cannot tell.
        kernel_chose_port: Option<bool>,
    },
    /// Either: the kernel does not record whether a client's connect()
    /// took the port or a listener that has gone accepted it.
    Unknown,
}

/// The side of the TCP connection `socket`, given the listeners of its
/// port (`listeners`) and those of its peers' ports (`peer_listeners`).
pub fn connection_side(
    socket: &Socket,
    listeners: &[Socket],
    peer_listeners: &[Socket],
    policy: &KernelPortPolicy,
) -> Side {
    if socket.state == State::SynSent {
        return Side::Outgoing {
            kernel_chose_port: socket.autobound,
        };
    }
    if listens_at(listeners.iter(), &socket.local) {
        return Side::Accepted;
    }
    if socket.autobound == Some(false) {
        return Side::Outgoing {
            kernel_chose_port: Some(false),
        };
    }
    let remote = socket.remote.readable_address();
    let local_peer = remote.is_loopback() || remote == socket.local.readable_address();
    if local_peer && listens_at(peer_listeners.iter(), &socket.remote) {
        return Side::Outgoing {
            kernel_chose_port: socket.autobound,
        };
    }
    if !policy.is_ephemeral(socket.local.port) {
        return Side::Accepted;
    }
    Side::Unknown
}

/// Whether one of `listeners` takes the address and port `at`.
fn listens_at<'s>(
    mut listeners: impl Iterator<Item = &'s Socket>,
    at: &crate::socket::Endpoint,
) -> bool {
    let address = at.readable_address();
    listeners.any(|l| {
        l.protocol == Protocol::Tcp
            && l.state == State::Listen
            && l.local.port == at.port
            && (l.local.address.is_unspecified() || l.local.readable_address() == address)
    })
}

/// Whether the address is the wildcard of its family.
pub fn is_wildcard(address: IpAddr) -> bool {
    address.is_unspecified()
}

/// The family of an address, in the model's terms.
pub fn family_of(address: IpAddr) -> Family {
    match address {
        IpAddr::V4(_) => Family::Inet,
        IpAddr::V6(_) => Family::Inet6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::Endpoint;

    fn spec(address: &str, reuseaddr: bool) -> BindSpec {
        BindSpec {
            reuseaddr,
            ..BindSpec::tcp(address.parse().unwrap(), 8080)
        }
    }

    fn socket(state: State, address: &str, v6only: Option<bool>) -> Socket {
        let ip: IpAddr = address.parse().unwrap();
        Socket {
            family: family_of(ip),
            local: Endpoint {
                address: ip,
                port: 8080,
            },
            v6only,
            ..Socket::example(state, "0.0.0.0:8080", "0.0.0.0:0")
        }
    }

    fn view(spec: &BindSpec) -> TrialView<'_> {
        TrialView {
            spec,
            v6only: matches!(spec.address, IpAddr::V6(_)).then_some(false),
            uid: 0,
        }
    }

    const UNKNOWN: Known = Known {
        reuseaddr: None,
        reuseport: None,
    };

    #[test]
    fn a_dual_stack_wildcard_covers_ipv4_and_a_v6only_one_does_not() {
        let any4 = spec("0.0.0.0", true);
        let dual = socket(State::Listen, "::", Some(false));
        let v6only = socket(State::Listen, "::", Some(true));
        assert_eq!(
            judge(&view(&any4), &dual, UNKNOWN),
            Some((Rule::Listener, Certainty::Certain))
        );
        assert_eq!(judge(&view(&any4), &v6only, UNKNOWN), None);
        assert_eq!(
            coexistence(&view(&any4), &v6only, UNKNOWN),
            Some(Coexistence::OtherFamily)
        );
    }

    #[test]
    fn loopback_of_one_family_does_not_meet_the_other() {
        let lo4 = spec("127.0.0.1", true);
        let lo6 = socket(State::Listen, "::1", Some(false));
        assert_eq!(judge(&view(&lo4), &lo6, UNKNOWN), None);
        assert_eq!(
            coexistence(&view(&lo4), &lo6, UNKNOWN),
            Some(Coexistence::OtherFamily)
        );
        let other = socket(State::Listen, "127.0.0.2", None);
        assert_eq!(
            coexistence(&view(&lo4), &other, UNKNOWN),
            Some(Coexistence::OtherAddress)
        );
        let mapped = socket(State::Listen, "::ffff:127.0.0.1", Some(false));
        assert!(judge(&view(&lo4), &mapped, UNKNOWN).is_some());
    }

    #[test]
    fn time_wait_is_certain_without_reuseaddr_and_possible_with_it() {
        let tw = socket(State::TimeWait, "127.0.0.1", None);
        assert_eq!(
            judge(&view(&spec("0.0.0.0", false)), &tw, UNKNOWN),
            Some((Rule::TimeWait, Certainty::Certain))
        );
        assert_eq!(
            judge(&view(&spec("0.0.0.0", true)), &tw, UNKNOWN),
            Some((Rule::TimeWaitWithoutReuse, Certainty::Possible))
        );
        // An orphaned connection is judged as TIME_WAIT is.
        let orphan = Socket {
            inode: 0,
            ..socket(State::FinWait2, "127.0.0.1", None)
        };
        assert_eq!(
            judge(&view(&spec("0.0.0.0", false)), &orphan, UNKNOWN),
            Some((Rule::TimeWait, Certainty::Certain))
        );
    }

    #[test]
    fn a_listener_of_another_user_is_in_the_way_whatever_its_options() {
        let mut group = spec("0.0.0.0", true);
        group.reuseport = true;
        let mut listener = socket(State::Listen, "0.0.0.0", None);
        listener.uid = 1000;
        // Unknown SO_REUSEPORT: the plain listener rule, certain.
        assert_eq!(
            judge(&view(&group), &listener, UNKNOWN),
            Some((Rule::Listener, Certainty::Certain))
        );
        // Known to be a group: the rule of groups.
        let in_group = Known {
            reuseaddr: None,
            reuseport: Some(true),
        };
        assert_eq!(
            judge(&view(&group), &listener, in_group),
            Some((Rule::ReuseportOtherUser, Certainty::Certain))
        );
        // A listener of the same user is in the way only if it lacks
        // SO_REUSEPORT.
        listener.uid = 0;
        assert_eq!(
            judge(&view(&group), &listener, UNKNOWN),
            Some((Rule::Listener, Certainty::Possible))
        );
        assert_eq!(judge(&view(&group), &listener, in_group), None);
    }

    #[test]
    fn options_read_from_a_socket_settle_what_was_possible() {
        let bound = socket(State::BoundInactive, "127.0.0.2", None);
        let trial = spec("0.0.0.0", true);
        assert_eq!(
            judge(&view(&trial), &bound, UNKNOWN),
            Some((Rule::BoundOnly, Certainty::Possible))
        );
        let without = Known {
            reuseaddr: Some(false),
            reuseport: Some(false),
        };
        assert_eq!(
            judge(&view(&trial), &bound, without),
            Some((Rule::BoundOnly, Certainty::Certain))
        );
        let with = Known {
            reuseaddr: Some(true),
            reuseport: Some(false),
        };
        assert_eq!(judge(&view(&trial), &bound, with), None);
    }

    #[test]
    fn udp_shares_by_reuseaddr_on_both_or_a_group_of_one_user() {
        let udp = |reuseaddr, reuseport| BindSpec {
            protocol: Protocol::Udp,
            reuseaddr,
            reuseport,
            ..BindSpec::tcp("0.0.0.0".parse().unwrap(), 8080)
        };
        let server = Socket {
            protocol: Protocol::Udp,
            ..socket(State::Close, "0.0.0.0", None)
        };
        let known = |a, p| Known {
            reuseaddr: Some(a),
            reuseport: Some(p),
        };
        let trial = udp(true, false);
        assert_eq!(
            conflicts(&view(&trial), &server, known(true, false)),
            Some(false)
        );
        assert_eq!(
            conflicts(&view(&trial), &server, known(false, false)),
            Some(true)
        );
        assert_eq!(conflicts(&view(&trial), &server, UNKNOWN), None);
        // Without SO_REUSEADDR the trial conflicts whatever the other set
        // (unless both are in one group).
        assert_eq!(
            conflicts(&view(&udp(false, false)), &server, UNKNOWN),
            Some(true)
        );
        let group = udp(false, true);
        assert_eq!(
            conflicts(&view(&group), &server, known(false, true)),
            Some(false)
        );
        assert_eq!(
            coexistence(&view(&group), &server, known(false, true)),
            Some(Coexistence::JoinsGroup)
        );
        assert_eq!(
            coexistence(&view(&trial), &server, known(true, false)),
            Some(Coexistence::TakesDatagrams)
        );
    }

    #[test]
    fn a_connection_without_a_listener_in_the_ephemeral_range_is_either_side() {
        let policy = KernelPortPolicy::kernel_defaults();
        let mut connection =
            Socket::example(State::Established, "10.0.0.1:40000", "10.0.0.9:51000");
        connection.autobound = Some(true);
        assert_eq!(
            connection_side(&connection, &[], &[], &policy),
            Side::Unknown
        );
        // Its port kept the bind lock: a client bound it on purpose.
        connection.autobound = Some(false);
        assert_eq!(
            connection_side(&connection, &[], &[], &policy),
            Side::Outgoing {
                kernel_chose_port: Some(false)
            }
        );
        // A local peer that listens: the client end.
        let mut local = Socket::example(State::Established, "127.0.0.1:40000", "127.0.0.1:8080");
        local.autobound = Some(true);
        let listener = Socket::example(State::Listen, "0.0.0.0:8080", "0.0.0.0:0");
        assert_eq!(
            connection_side(&local, &[], &[listener], &policy),
            Side::Outgoing {
                kernel_chose_port: Some(true)
            }
        );
        // A listener on the port itself: accepted.
        let own = Socket::example(State::Listen, "0.0.0.0:40000", "0.0.0.0:0");
        assert_eq!(
            connection_side(&local, &[own], &[], &policy),
            Side::Accepted
        );
        // Outside the ephemeral range connect() never picks: accepted.
        let sshd = Socket::example(State::Established, "10.0.0.1:22", "10.0.0.9:51000");
        assert_eq!(connection_side(&sshd, &[], &[], &policy), Side::Accepted);
    }
}
