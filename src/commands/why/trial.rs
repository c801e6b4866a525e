//! The trial: a real socket with the options asked for, bound (and for
//! TCP put to listen()) in the namespace probed, then closed at once.
//! The kernel's answer is the verdict; no table of rules is.
//!
//! A trial never takes a packet or a connection meant for a live
//! server. A bound TCP socket receives nothing, but once it listens it
//! joins any SO_REUSEPORT group on its address, and the kernel hands it
//! some of the group's connections, which its close resets; a UDP
//! socket receives from the moment it is bound, and beside another
//! socket on the port it takes datagrams meant for that one. So before
//! those two calls the trial asks a [`Guard`] which live sockets it would
//! share traffic with, and when there are some it stops short: a TCP
//! trial keeps its bind()'s answer and does not listen (the kernel runs
//! the same conflict check at listen() as at bind()); a UDP trial does
//! not bind at all, and a TCP socket bound to the same address and port
//! (which receives nothing) checks what does not depend on the sharing:
//! the address and the privilege. The caller then judges the sharing by
//! the kernel's rules ([`Skipped`]).
//!
//! `--as USER` runs these calls in a short-lived child process that
//! alone takes the user's credentials (see `as_user`).

use std::ffi::CString;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::Error;
use crate::socket::{Protocol, Socket};

/// The bind to try: what a server would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    /// TCP (bind, then listen) or UDP (bind).
    pub protocol: Protocol,
    /// The local address: the wildcard 0.0.0.0 or `::` for every address.
    pub address: IpAddr,
    /// The interface of an IPv6 link-local address (`fe80::1%eth0`).
    pub scope: Option<Scope>,
    /// The port; never 0.
    pub port: u16,
    /// SO_REUSEADDR.
    pub reuseaddr: bool,
    /// SO_REUSEPORT.
    pub reuseport: bool,
    /// IPV6_V6ONLY for an IPv6 address: `Some` to set it, `None` to leave
    /// the namespace's default (`net.ipv6.bindv6only`). Always `None` for
    /// IPv4.
    pub v6only: Option<bool>,
    /// IP_FREEBIND (IPV6_FREEBIND): bind an address the namespace does
    /// not have (yet). Only fixes set it.
    pub freebind: bool,
}

impl BindSpec {
    /// A plain TCP bind of `address:port` with SO_REUSEADDR, as most
    /// servers make it.
    pub fn tcp(address: IpAddr, port: u16) -> BindSpec {
        BindSpec {
            protocol: Protocol::Tcp,
            address,
            scope: None,
            port,
            reuseaddr: true,
            reuseport: false,
            v6only: None,
            freebind: false,
        }
    }
}

/// The interface that scopes an IPv6 link-local address: the part after
/// `%` in `fe80::1%eth0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// An interface index, as `%2`.
    Index(u32),
    /// An interface name, looked up in the trial's namespace.
    Name(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Index(index) => write!(f, "{index}"),
            Scope::Name(name) => f.write_str(name),
        }
    }
}

/// The user a trial runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialUser {
    /// The uid.
    pub uid: u32,
    /// The primary gid, which is also the only supplementary group.
    pub gid: u32,
    /// The name from /etc/passwd, where there is one.
    pub name: Option<String>,
}

/// The call of a server's start-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// socket(2).
    Socket,
    /// setsockopt(2) of one of the options.
    Option,
    /// bind(2).
    Bind,
    /// listen(2), TCP only.
    Listen,
}

impl Stage {
    /// The stage's name in JSON: `socket`, `setsockopt`, `bind` or `listen`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Socket => "socket",
            Stage::Option => "setsockopt",
            Stage::Bind => "bind",
            Stage::Listen => "listen",
        }
    }
}

/// A call the trial did not make, so as not to take traffic from the
/// live sockets it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// TCP: bind() was made, listen() was not: the socket would have
    /// joined the SO_REUSEPORT group of these listeners.
    Listen {
        /// The live listeners whose addresses overlap the trial's.
        listeners: Vec<Socket>,
    },
    /// UDP: bind() was not made: the socket would have shared the port
    /// with these sockets. A TCP socket bound to the same address and
    /// port checked the address and the privilege.
    Bind {
        /// The live UDP sockets whose addresses overlap the trial's.
        sharers: Vec<Socket>,
    },
}

/// What the kernel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Where the trial failed and with which errno; None when every call
    /// made succeeded.
    pub failure: Option<(Stage, i32)>,
    /// IPV6_V6ONLY as the socket had it (read back), for IPv6.
    pub v6only: Option<bool>,
    /// The call left to the rules, if one was (see the module's comment).
    pub skipped: Option<Skipped>,
}

impl Outcome {
    /// Whether every call made succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// The errno of the failure, if there was one.
    pub fn errno(&self) -> Option<i32> {
        self.failure.map(|(_, errno)| errno)
    }
}

/// Asked before the calls that would take traffic: the live sockets a
/// socket bound as `spec` (with IPV6_V6ONLY as given) would share its
/// traffic with, read from the kernel in the trial's namespace. For TCP
/// the listeners of the port, for UDP every socket of it, whose
/// addresses overlap the trial's.
pub type Guard<'a> = dyn Fn(&BindSpec, Option<bool>) -> Result<Vec<Socket>, Error> + 'a;

/// Creates, binds (and for TCP listens on) one socket on the calling
/// thread, and closes it; stops short where `guard` names live sockets
/// the socket would take traffic from.
pub fn attempt(spec: &BindSpec, guard: &Guard<'_>) -> Result<Outcome, Error> {
    let scope = scope_index(spec);
    let mut skipped = None;
    let mut ask = |v6only| {
        let live = guard(spec, v6only)?;
        let stop = !live.is_empty();
        if stop {
            skipped = Some(Skipped::of(spec.protocol, live));
        }
        Ok(stop)
    };
    let made = calls(spec, scope, &mut ask)?;
    Ok(Outcome {
        failure: made.failure,
        v6only: made.v6only,
        skipped,
    })
}

impl Skipped {
    /// The call a trial of `protocol` leaves when it asks before it and
    /// hears of `live` sockets (see [`calls`]): TCP asks before
    /// listen(), UDP before bind().
    pub(crate) fn of(protocol: Protocol, live: Vec<Socket>) -> Skipped {
        match protocol {
            Protocol::Tcp | Protocol::Sctp => Skipped::Listen { listeners: live },
            Protocol::Udp => Skipped::Bind { sharers: live },
        }
    }
}

/// What the calls of a trial gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Made {
    /// The call that failed, with its errno.
    pub failure: Option<(Stage, i32)>,
    /// IPV6_V6ONLY as the socket had it, for IPv6.
    pub v6only: Option<bool>,
}

/// The calls of a trial on the calling thread: socket, options, bind
/// and for TCP listen, with `ask` called (with IPV6_V6ONLY as the
/// socket has it) before the call that would take traffic: for UDP
/// before bind(), for TCP with SO_REUSEPORT before listen(). `ask`
/// answers whether live sockets would share it (then the call is not
/// made), or an error that ends the trial. `scope` is the interface
/// index of the bind, or the errno of looking it up ([`scope_index`]).
///
/// It allocates nothing and takes no lock: a forked child runs it
/// between fork() and _exit() (see `as_user`).
pub(crate) fn calls<E>(
    spec: &BindSpec,
    scope: Result<u32, i32>,
    ask: &mut dyn FnMut(Option<bool>) -> Result<bool, E>,
) -> Result<Made, E> {
    let mut made = Made {
        failure: None,
        v6only: None,
    };
    if let Err(failure) = try_bind(spec, scope, ask, &mut made)? {
        made.failure = Some(failure);
    }
    Ok(made)
}

type Calls = Result<(), (Stage, i32)>;

fn try_bind<E>(
    spec: &BindSpec,
    scope: Result<u32, i32>,
    ask: &mut dyn FnMut(Option<bool>) -> Result<bool, E>,
    made: &mut Made,
) -> Result<Calls, E> {
    let socket = match configured_socket(spec, spec.protocol, spec.reuseaddr, spec.reuseport) {
        Ok(socket) => socket,
        Err(failure) => return Ok(Err(failure)),
    };
    if spec.address.is_ipv6() {
        made.v6only = get_flag(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
    }
    let scope = match scope {
        Ok(scope) => scope,
        Err(errno) => return Ok(Err((Stage::Bind, errno))),
    };
    if spec.protocol == Protocol::Udp && ask(made.v6only)? {
        return Ok(stand_in_bind(spec, scope));
    }
    if let Err(errno) = bind(&socket, spec.address, spec.port, scope) {
        return Ok(Err((Stage::Bind, errno)));
    }
    if spec.protocol == Protocol::Tcp {
        if spec.reuseport && ask(made.v6only)? {
            return Ok(Ok(()));
        }
        // SAFETY: a plain system call on a descriptor we own.
        if unsafe { libc::listen(socket.as_raw_fd(), 1) } != 0 {
            return Ok(Err((Stage::Listen, last_errno())));
        }
    }
    Ok(Ok(()))
}

/// A socket of `protocol` with the options of `spec` set, SO_REUSEADDR
/// and SO_REUSEPORT as given.
fn configured_socket(
    spec: &BindSpec,
    protocol: Protocol,
    reuseaddr: bool,
    reuseport: bool,
) -> Result<OwnedFd, (Stage, i32)> {
    let domain = match spec.address {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    let kind = match protocol {
        Protocol::Tcp => libc::SOCK_STREAM,
        Protocol::Udp => libc::SOCK_DGRAM,
        // SCTP's one-to-many style, its default for SOCK_SEQPACKET.
        Protocol::Sctp => libc::SOCK_SEQPACKET,
    };
    // SAFETY: a plain system call; the fd it returns is owned below.
    let raw = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err((Stage::Socket, last_errno()));
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let option = |level, name, on: bool| {
        set_flag(&socket, level, name, on).map_err(|errno| (Stage::Option, errno))
    };
    option(libc::SOL_SOCKET, libc::SO_REUSEADDR, reuseaddr)?;
    if reuseport {
        option(libc::SOL_SOCKET, libc::SO_REUSEPORT, true)?;
    }
    if spec.freebind {
        match spec.address {
            IpAddr::V4(_) => option(libc::IPPROTO_IP, libc::IP_FREEBIND, true)?,
            IpAddr::V6(_) => option(libc::IPPROTO_IPV6, IPV6_FREEBIND, true)?,
        }
    }
    if spec.address.is_ipv6() {
        if let Some(on) = spec.v6only {
            option(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)?;
        }
    }
    Ok(socket)
}

/// IPV6_FREEBIND (linux/in6.h), which the libc crate does not name.
const IPV6_FREEBIND: i32 = 78;

/// The bind of a UDP trial that would share the port, made with a TCP
/// socket instead: one that is only bound receives nothing. The kernel
/// checks the address and the privilege the same way for both
/// protocols, before it looks at the port; what it says of the port
/// (EADDRINUSE) is of TCP's sockets and does not count. It sets
/// SO_REUSEADDR and SO_REUSEPORT so as to stand in the way of a TCP
/// server that starts at that instant as little as the kernel allows.
fn stand_in_bind(spec: &BindSpec, scope: u32) -> Calls {
    let socket = configured_socket(spec, Protocol::Tcp, true, true)?;
    match bind(&socket, spec.address, spec.port, scope) {
        Ok(()) => Ok(()),
        Err(libc::EADDRINUSE) => Ok(()),
        Err(errno) => Err((Stage::Bind, errno)),
    }
}

/// The interface index of the bind's scope: 0 for none, ENODEV for a
/// name the namespace does not have. Looked up before the calls, in the
/// trial's namespace: it allocates.
pub(crate) fn scope_index(spec: &BindSpec) -> Result<u32, i32> {
    match &spec.scope {
        None => Ok(0),
        Some(Scope::Index(index)) => Ok(*index),
        Some(Scope::Name(name)) => {
            let name = CString::new(name.as_bytes()).map_err(|_| libc::ENODEV)?;
            // SAFETY: a NUL-terminated string that lives across the call.
            match unsafe { libc::if_nametoindex(name.as_ptr()) } {
                0 => Err(libc::ENODEV),
                index => Ok(index),
            }
        }
    }
}

fn bind(socket: &OwnedFd, address: IpAddr, port: u16, scope: u32) -> Result<(), i32> {
    let fd = socket.as_raw_fd();
    // SAFETY: each sockaddr is fully initialised (zeroed, then filled)
    // and passed with its own size.
    let status = unsafe {
        match address {
            IpAddr::V4(v4) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = port.to_be();
                sa.sin_addr.s_addr = u32::from(v4).to_be();
                libc::bind(
                    fd,
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            IpAddr::V6(v6) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = port.to_be();
                sa.sin6_addr.s6_addr = v6.octets();
                sa.sin6_scope_id = scope;
                libc::bind(
                    fd,
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if status == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

fn set_flag(socket: &OwnedFd, level: i32, name: i32, on: bool) -> Result<(), i32> {
    let value: libc::c_int = on.into();
    // SAFETY: the option value is a c_int passed with its size.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// A boolean socket option, or None when the kernel refuses to say.
pub(crate) fn get_flag(socket: &impl AsRawFd, level: i32, name: i32) -> Option<bool> {
    let mut value: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `size` bytes into `value`.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut size,
        )
    };
    (status == 0).then_some(value != 0)
}

pub(crate) fn last_errno() -> i32 {
    nix::errno::Errno::last_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_guard(_: &BindSpec, _: Option<bool>) -> Result<Vec<Socket>, Error> {
        Ok(Vec::new())
    }

    #[test]
    fn a_port_that_is_taken_fails_at_bind_and_a_free_one_succeeds() {
        // Loopback exists in every namespace; port 0 is never tried by
        // lsport, but a socket bound to it gives a port that is taken.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let spec = BindSpec::tcp("127.0.0.1".parse().unwrap(), port);
        assert_eq!(
            attempt(&spec, &no_guard).unwrap().failure,
            Some((Stage::Bind, libc::EADDRINUSE))
        );
        drop(held);
        assert!(attempt(&spec, &no_guard).unwrap().succeeded());
    }

    #[test]
    fn a_udp_trial_beside_a_live_socket_does_not_bind_it() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let spec = BindSpec {
            protocol: Protocol::Udp,
            reuseaddr: false,
            ..BindSpec::tcp("127.0.0.1".parse().unwrap(), port)
        };
        // The guard names the live socket: no UDP bind, so no failure
        // either; the stand-in's EADDRINUSE, if any, does not count.
        let live = |_: &BindSpec, _: Option<bool>| {
            Ok(vec![Socket::example(
                crate::socket::State::Close,
                &format!("127.0.0.1:{port}"),
                "0.0.0.0:0",
            )])
        };
        let outcome = attempt(&spec, &live).unwrap();
        assert_eq!(outcome.failure, None);
        assert!(matches!(outcome.skipped, Some(Skipped::Bind { .. })));
        // Without the guard the kernel refuses the bind.
        let outcome = attempt(&spec, &no_guard).unwrap();
        assert_eq!(outcome.failure, Some((Stage::Bind, libc::EADDRINUSE)));
    }
}
