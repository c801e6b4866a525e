//! The kernel's bind rules, as far as they explain a trial's answer.
//! The verdict never comes from here (the trial gives it); these rules
//! only name which sockets of the probe stand in the way, and which
//! share the port harmlessly. What sock_diag does not tell (another
//! socket's SO_REUSEADDR and SO_REUSEPORT) makes some of them only
//! possible causes, named when no certain one is found.
//!
//! The rules (net/ipv4/inet_connection_sock.c, net/ipv4/udp.c): two
//! sockets on one port conflict when their addresses overlap, unless
//! both set SO_REUSEADDR and the other one is not listening (TCP; for
//! UDP, both set it), or both set SO_REUSEPORT and belong to the same
//! user (a TIME_WAIT socket counts as any user's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::commands::why::trial::BindSpec;
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
}

/// Why a socket stands in the way of the bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A TCP listener whose addresses overlap: it blocks every other
    /// bind unless both set SO_REUSEPORT as the same user.
    Listener,
    /// An SO_REUSEPORT group of another user: SO_REUSEPORT was set, but
    /// the group is shared only by sockets of one uid.
    ReuseportOtherUser,
    /// A TIME_WAIT socket, which blocks binds without SO_REUSEADDR.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certainty {
    /// Whatever its own options, it conflicts.
    Certain,
    /// It conflicts unless it set options sock_diag does not show.
    Possible,
}

/// Whether `socket` may stand in the way of the trial, and by which
/// rule. None: it cannot (another protocol, address or family, or a
/// request socket, which holds no port of its own).
pub fn in_the_way(trial: &TrialView<'_>, socket: &Socket) -> Option<(Rule, Certainty)> {
    let spec = trial.spec;
    if socket.protocol != spec.protocol || socket.local.port != spec.port {
        return None;
    }
    if !overlaps(
        trial.coverage(),
        coverage(socket.local.address, socket.v6only),
    ) {
        return None;
    }
    let same_user = socket.uid == trial.uid;
    // Both sockets in one SO_REUSEPORT group would be allowed, if the
    // other one set it: unknown, so at most possible.
    let group_may_admit = spec.reuseport && (same_user || socket.state == State::TimeWait);
    let unless_reuse = |rule| {
        if spec.reuseaddr || group_may_admit {
            Some((rule, Certainty::Possible))
        } else {
            Some((rule, Certainty::Certain))
        }
    };
    match spec.protocol {
        Protocol::Udp => unless_reuse(Rule::Udp),
        Protocol::Tcp => match socket.state {
            State::Listen if spec.reuseport && !same_user => {
                Some((Rule::ReuseportOtherUser, Certainty::Certain))
            }
            State::Listen => Some((Rule::Listener, Certainty::Certain)),
            State::TimeWait if spec.reuseaddr => {
                Some((Rule::TimeWaitWithoutReuse, Certainty::Possible))
            }
            State::TimeWait => unless_reuse(Rule::TimeWait),
            State::BoundInactive | State::Close => unless_reuse(Rule::BoundOnly),
            // Request sockets live on their listener, not on the port.
            State::SynRecv | State::NewSynRecv => None,
            _ => unless_reuse(Rule::Connection),
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
    /// (SO_REUSEADDR over TIME_WAIT, an SO_REUSEPORT group, UDP with
    /// SO_REUSEADDR on both).
    SharesPort,
}

impl Coexistence {
    /// The stable name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Coexistence::OtherAddress => "other_address",
            Coexistence::OtherFamily => "other_family",
            Coexistence::SharesPort => "shares_port",
        }
    }
}

/// How a socket on the port lives beside the trial's socket, when the
/// bind succeeded. Only sockets that receive on the port, or TIME_WAIT
/// ones, are worth a note; connections are not.
pub fn coexistence(trial: &TrialView<'_>, socket: &Socket) -> Option<Coexistence> {
    let spec = trial.spec;
    if socket.protocol != spec.protocol || socket.local.port != spec.port {
        return None;
    }
    let receives = match socket.protocol {
        Protocol::Tcp => matches!(
            socket.state,
            State::Listen | State::BoundInactive | State::Close | State::TimeWait
        ),
        Protocol::Udp => socket.state == State::Close,
    };
    if !receives {
        return None;
    }
    let ours = trial.coverage();
    let theirs = coverage(socket.local.address, socket.v6only);
    if overlaps(ours, theirs) {
        return Some(Coexistence::SharesPort);
    }
    if socket.state == State::TimeWait {
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
            protocol: Protocol::Tcp,
            address: address.parse().unwrap(),
            port: 8080,
            reuseaddr,
            reuseport: false,
            v6only: None,
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

    #[test]
    fn a_dual_stack_wildcard_covers_ipv4_and_a_v6only_one_does_not() {
        let any4 = spec("0.0.0.0", true);
        let dual = socket(State::Listen, "::", Some(false));
        let v6only = socket(State::Listen, "::", Some(true));
        assert_eq!(
            in_the_way(&view(&any4), &dual),
            Some((Rule::Listener, Certainty::Certain))
        );
        assert_eq!(in_the_way(&view(&any4), &v6only), None);
        assert_eq!(
            coexistence(&view(&any4), &v6only),
            Some(Coexistence::OtherFamily)
        );
    }

    #[test]
    fn loopback_of_one_family_does_not_meet_the_other() {
        let lo4 = spec("127.0.0.1", true);
        let lo6 = socket(State::Listen, "::1", Some(false));
        assert_eq!(in_the_way(&view(&lo4), &lo6), None);
        assert_eq!(
            coexistence(&view(&lo4), &lo6),
            Some(Coexistence::OtherFamily)
        );
        let other = socket(State::Listen, "127.0.0.2", None);
        assert_eq!(
            coexistence(&view(&lo4), &other),
            Some(Coexistence::OtherAddress)
        );
        let mapped = socket(State::Listen, "::ffff:127.0.0.1", Some(false));
        assert!(in_the_way(&view(&lo4), &mapped).is_some());
    }

    #[test]
    fn time_wait_is_certain_without_reuseaddr_and_possible_with_it() {
        let tw = socket(State::TimeWait, "127.0.0.1", None);
        assert_eq!(
            in_the_way(&view(&spec("0.0.0.0", false)), &tw),
            Some((Rule::TimeWait, Certainty::Certain))
        );
        assert_eq!(
            in_the_way(&view(&spec("0.0.0.0", true)), &tw),
            Some((Rule::TimeWaitWithoutReuse, Certainty::Possible))
        );
    }

    #[test]
    fn reuseport_of_another_user_is_named_as_such() {
        let mut group = spec("0.0.0.0", true);
        group.reuseport = true;
        let mut listener = socket(State::Listen, "0.0.0.0", None);
        listener.uid = 1000;
        assert_eq!(
            in_the_way(&view(&group), &listener),
            Some((Rule::ReuseportOtherUser, Certainty::Certain))
        );
    }
}
