//! Where sockets come from: sock_diag (netlink) first, the /proc/net
//! tables when sock_diag is refused.

pub mod activity;
mod bytecode;
pub mod destroy;
pub mod events;
pub mod netlink;
pub mod notice_filter;
pub mod procfs;
pub mod unix;

/// The source that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// sock_diag over netlink.
    Netlink,
    /// The /proc/net tables (tcp, tcp6, udp, udp6).
    Proc,
}

impl SourceKind {
    /// The source's name in JSON output: `netlink` or `proc`.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Netlink => "netlink",
            SourceKind::Proc => "proc",
        }
    }
}

/// Something the source that answered cannot see. Stated in every
/// output, so that "free" is never claimed where it cannot be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlindSpot {
    /// /proc/net/tcp lists no TCP socket that is only bound.
    TcpBoundOnly,
    /// /proc/net/tcp6 and udp6 do not show IPV6_V6ONLY.
    V6Only,
    /// /proc/net does not say whether the kernel chose a socket's port:
    /// an unconnected UDP client looks like a listener.
    AutoBound,
    /// SCTP was asked for and the kernel has it, but its sockets could
    /// not be read: no sctp_diag (or /proc/net alone answered). Never
    /// said where the kernel has no SCTP: then there is none to miss.
    Sctp,
}

impl BlindSpot {
    /// The stable name in the JSON `blind_spots` list.
    pub fn id(self) -> &'static str {
        match self {
            BlindSpot::TcpBoundOnly => "tcp_bound_only",
            BlindSpot::V6Only => "v6only",
            BlindSpot::AutoBound => "autobound",
            BlindSpot::Sctp => "sctp",
        }
    }

    /// What cannot be seen, in one line for the user.
    pub fn describe(self) -> &'static str {
        match self {
            BlindSpot::TcpBoundOnly => {
                "bound-only TCP sockets (bind() without listen() or connect(), state BOUND_INACTIVE) cannot be seen, yet they hold their port"
            }
            BlindSpot::V6Only => {
                "whether an IPv6 socket also takes IPv4 (IPV6_V6ONLY) cannot be seen"
            }
            BlindSpot::AutoBound => {
                "whether the kernel chose a socket's port cannot be seen: an unconnected UDP client (sendto() without bind()) is shown as a listener, and roles without a listener follow the port alone"
            }
            BlindSpot::Sctp => {
                "SCTP sockets could not be read, though the kernel has SCTP (sock_diag has no sctp_diag here, or /proc/net answered): a port may be held by one"
            }
        }
    }
}

/// Errors of socket() or of the dump that mean "sock_diag is not
/// available here" (refused by policy, or missing from the kernel),
/// rather than "something went wrong".
pub fn netlink_unavailable(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(
            libc::EPERM
                | libc::EACCES
                | libc::EPROTONOSUPPORT
                | libc::EAFNOSUPPORT
                | libc::ENOENT
                | libc::EINVAL
        )
    )
}
