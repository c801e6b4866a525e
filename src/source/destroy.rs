//! Closing a socket from outside: sock_diag's SOCK_DESTROY request, as
//! `ss -K` sends it. The kernel aborts the socket (a TCP peer gets a
//! reset) and its program sees ECONNABORTED on its next call. It needs
//! CAP_NET_ADMIN in the socket's network namespace and a kernel built
//! with CONFIG_INET_DIAG_DESTROY.
//!
//! Building the request is a pure function over the model; `destroy`
//! does the I/O.

use std::net::IpAddr;

use netlink_sys::{Socket as NetlinkSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use crate::socket::{Endpoint, Family, Protocol, Socket};

/// SOCK_DESTROY, the request type (include/uapi/linux/sock_diag.h).
const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HEADER_LEN: usize = 16;
/// sizeof(struct inet_diag_req_v2).
const INET_DIAG_REQ_V2_LEN: usize = 56;
/// Every TCP state: the request names one socket by its id and cookie,
/// the states only have to include its own.
const ANY_STATE: u32 = !0;

/// The bytes of a SOCK_DESTROY request for `socket`: nlmsghdr, then
/// struct inet_diag_req_v2 (family, protocol, extensions, pad, states,
/// and the socket id: ports in network order, 16 bytes of each address,
/// the interface and the cookie as two 32-bit halves, low half first).
/// The cookie makes the kernel refuse (ESTALE) a different socket that
/// has since taken the same addresses and ports.
pub fn build_request(socket: &Socket, sequence: u32) -> Vec<u8> {
    let total = NLMSG_HEADER_LEN + INET_DIAG_REQ_V2_LEN;
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&(total as u32).to_ne_bytes());
    bytes.extend_from_slice(&SOCK_DESTROY.to_ne_bytes());
    bytes.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    bytes.extend_from_slice(&sequence.to_ne_bytes());
    bytes.extend_from_slice(&0u32.to_ne_bytes());
    bytes.push(match socket.family {
        Family::Inet => libc::AF_INET as u8,
        Family::Inet6 => libc::AF_INET6 as u8,
    });
    bytes.push(match socket.protocol {
        Protocol::Tcp => libc::IPPROTO_TCP as u8,
        Protocol::Udp => libc::IPPROTO_UDP as u8,
        Protocol::Sctp => libc::IPPROTO_SCTP as u8,
    });
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&ANY_STATE.to_ne_bytes());
    bytes.extend_from_slice(&socket.local.port.to_be_bytes());
    bytes.extend_from_slice(&socket.remote.port.to_be_bytes());
    push_address(&mut bytes, &socket.local);
    push_address(&mut bytes, &socket.remote);
    bytes.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    bytes.extend_from_slice(&(socket.cookie as u32).to_ne_bytes());
    bytes.extend_from_slice(&((socket.cookie >> 32) as u32).to_ne_bytes());
    debug_assert_eq!(bytes.len(), total);
    bytes
}

/// An address in the id's 16-byte slot: IPv4 in the first four bytes.
fn push_address(bytes: &mut Vec<u8>, endpoint: &Endpoint) {
    let mut slot = [0u8; 16];
    match endpoint.address {
        IpAddr::V4(v4) => slot[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => slot.copy_from_slice(&v6.octets()),
    }
    bytes.extend_from_slice(&slot);
}

/// The kernel's answer to one request: Ok, or the errno it gave.
pub fn decode_ack(reply: &[u8]) -> Result<(), i32> {
    if reply.len() < NLMSG_HEADER_LEN + 4 {
        return Err(libc::EPROTO);
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != NLMSG_ERROR {
        return Err(libc::EPROTO);
    }
    let code = i32::from_ne_bytes(reply[16..20].try_into().unwrap_or([0; 4]));
    if code < 0 { Err(-code) } else { Ok(()) }
}

/// Closes `socket` through SOCK_DESTROY in the calling thread's network
/// namespace. Err carries the errno: EPERM without CAP_NET_ADMIN,
/// ENOENT when the socket is gone (or cannot be found by its id, as a
/// bound-only socket cannot), ESTALE when its cookie no longer matches,
/// EOPNOTSUPP when the kernel cannot destroy sockets.
pub fn destroy(socket: &Socket) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let mut netlink = NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(errno)?;
    netlink.bind_auto().map_err(errno)?;
    netlink.connect(&SocketAddr::new(0, 0)).map_err(errno)?;
    netlink.send(&build_request(socket, 1), 0).map_err(errno)?;
    let mut buffer = vec![0u8; 4096];
    let received = netlink.recv(&mut &mut buffer[..], 0).map_err(errno)?;
    decode_ack(&buffer[..received.min(buffer.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::State;

    #[test]
    fn the_request_names_the_socket_by_ports_addresses_and_cookie() {
        let socket = Socket {
            protocol: Protocol::Tcp,
            family: Family::Inet,
            state: State::Established,
            local: Endpoint {
                address: "127.0.0.1".parse().unwrap(),
                port: 8080,
            },
            remote: Endpoint {
                address: "127.0.0.2".parse().unwrap(),
                port: 40000,
            },
            v6only: None,
            uid: 0,
            inode: 7,
            cookie: 0x0000_0002_0000_0001,
            timer_ms: None,
            autobound: None,
            cgroup_id: None,
            mptcp: None,
        };
        let bytes = build_request(&socket, 5);
        assert_eq!(bytes.len(), 72);
        let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(0), 72);
        assert_eq!(u16_at(4), SOCK_DESTROY);
        assert_eq!(u16_at(6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(8), 5);
        assert_eq!(bytes[16], libc::AF_INET as u8);
        assert_eq!(bytes[17], libc::IPPROTO_TCP as u8);
        // The id: source port, destination port, in network order.
        assert_eq!(&bytes[24..26], &8080u16.to_be_bytes());
        assert_eq!(&bytes[26..28], &40000u16.to_be_bytes());
        assert_eq!(&bytes[28..32], &[127, 0, 0, 1]);
        assert_eq!(&bytes[44..48], &[127, 0, 0, 2]);
        assert_eq!(u32_at(60), 0, "interface");
        assert_eq!((u32_at(64), u32_at(68)), (1, 2), "cookie, low half first");
    }

    #[test]
    fn an_ack_is_ok_and_an_error_gives_its_errno() {
        let mut reply = vec![0u8; 36];
        reply[0..4].copy_from_slice(&36u32.to_ne_bytes());
        reply[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(decode_ack(&reply), Ok(()));
        reply[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(decode_ack(&reply), Err(libc::EPERM));
        assert_eq!(decode_ack(&reply[..10]), Err(libc::EPROTO));
    }
}
