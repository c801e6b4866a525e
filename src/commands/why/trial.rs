//! The trial: a real socket with the options asked for, bound (and for
//! TCP put to listen()) in the namespace probed, then closed at once.
//! The kernel's answer is the verdict; no table of rules is.
//!
//! `--as USER` runs the trial with that user's uid and gid. lsport does
//! not fork for it: a forked child of a program that may be running
//! threads could only make async-signal-safe calls, and re-executing
//! lsport would cost a process start. Instead the trial runs on a thread
//! of its own that changes its own credentials with the raw setgroups,
//! setresgid and setresuid system calls. In Linux credentials belong to
//! a thread; only the C library's wrappers copy a change to every thread
//! of the process, and the raw calls skip them. Leaving uid 0 clears the
//! thread's capabilities (CAP_NET_BIND_SERVICE too), and a socket takes
//! its owner (the uid SO_REUSEPORT compares) from the thread that
//! creates it. The thread ends with the trial, and its credentials with
//! it; the rest of lsport keeps root.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::Error;
use crate::socket::Protocol;

/// The bind to try: what a server would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    /// TCP (bind, then listen) or UDP (bind).
    pub protocol: Protocol,
    /// The local address: the wildcard 0.0.0.0 or `::` for every address.
    pub address: IpAddr,
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

/// What the kernel said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Where the trial failed and with which errno; None when every call
    /// succeeded.
    pub failure: Option<(Stage, i32)>,
    /// IPV6_V6ONLY as the socket had it (read back), for IPv6.
    pub v6only: Option<bool>,
}

impl Outcome {
    /// Whether the bind (and listen) succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// The errno of the failure, if there was one.
    pub fn errno(&self) -> Option<i32> {
        self.failure.map(|(_, errno)| errno)
    }
}

/// Creates, binds (and for TCP listens on) one socket on the calling
/// thread, and closes it.
pub fn attempt(spec: &BindSpec) -> Outcome {
    let mut v6only = None;
    let failure = try_bind(spec, &mut v6only).err();
    Outcome { failure, v6only }
}

fn try_bind(spec: &BindSpec, v6only_seen: &mut Option<bool>) -> Result<(), (Stage, i32)> {
    let domain = match spec.address {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    let kind = match spec.protocol {
        Protocol::Tcp => libc::SOCK_STREAM,
        Protocol::Udp => libc::SOCK_DGRAM,
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
    option(libc::SOL_SOCKET, libc::SO_REUSEADDR, spec.reuseaddr)?;
    if spec.reuseport {
        option(libc::SOL_SOCKET, libc::SO_REUSEPORT, true)?;
    }
    if spec.address.is_ipv6() {
        if let Some(on) = spec.v6only {
            option(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)?;
        }
        *v6only_seen = get_flag(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
    }
    bind(&socket, spec.address, spec.port).map_err(|errno| (Stage::Bind, errno))?;
    if spec.protocol == Protocol::Tcp {
        // SAFETY: a plain system call on a descriptor we own.
        if unsafe { libc::listen(socket.as_raw_fd(), 1) } != 0 {
            return Err((Stage::Listen, last_errno()));
        }
    }
    Ok(())
}

fn bind(socket: &OwnedFd, address: IpAddr, port: u16) -> Result<(), i32> {
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

fn get_flag(socket: &OwnedFd, level: i32, name: i32) -> Option<bool> {
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

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Gives the calling thread, and only it, `user`'s uid and gid (see the
/// module's comment). Call it only on a thread that ends afterwards.
pub fn become_user(user: &TrialUser) -> Result<(), Error> {
    let gid = user.gid as libc::gid_t;
    let fail = |call: &str| {
        let err = std::io::Error::last_os_error();
        let hint = if err.raw_os_error() == Some(libc::EPERM) {
            " (running a trial as another user needs root)"
        } else {
            ""
        };
        Error::usage(format!("--as {}: {call}: {err}{hint}", user.uid))
    };
    // SAFETY: raw system calls that change only this thread's
    // credentials; the group list is one gid that lives across the call.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, 1usize, &raw const gid) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            return Err(fail("setresgid"));
        }
        let uid = user.uid as libc::uid_t;
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return Err(fail("setresuid"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_that_is_taken_fails_at_bind_and_a_free_one_succeeds() {
        // Loopback exists in every namespace; port 0 is never tried by
        // lsport, but a socket bound to it gives a port that is taken.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let spec = BindSpec {
            protocol: Protocol::Tcp,
            address: "127.0.0.1".parse().unwrap(),
            port,
            reuseaddr: true,
            reuseport: false,
            v6only: None,
        };
        assert_eq!(
            attempt(&spec).failure,
            Some((Stage::Bind, libc::EADDRINUSE))
        );
        drop(held);
        assert!(attempt(&spec).succeeded());
    }
}
