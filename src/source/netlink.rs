//! Sockets from the kernel's sock_diag interface (NETLINK_SOCK_DIAG).
//!
//! One dump per family and protocol. When ports are asked for, the port
//! filter runs in the kernel as inet_diag bytecode (bytecode.rs), so a
//! busy host sends back only the sockets on those ports. When more
//! ranges are asked for than one program holds, the kernel gets a
//! coarser filter; either way every socket a dump returns is tested
//! again here, so what a dump gives is exactly what was asked. Building
//! the request and decoding the replies are pure functions over bytes;
//! only `Session` does I/O.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::Parseable;
use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NlasIterator};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_SKV6ONLY, IPPROTO_TCP, IPPROTO_UDP, SOCK_DIAG_BY_FAMILY,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_sys::{Socket as NetlinkSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use super::bytecode;
use crate::socket::PortRange;
use crate::socket::{Endpoint, Family, Protocol, Socket, State};

const NLMSG_HEADER_LEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// sizeof(struct inet_diag_msg): the fixed part of every reply.
const INET_DIAG_MSG_LEN: usize = 72;
/// TCPDIAG_GETSOCK, the first inet_diag request. The kernel answers it
/// for both address families in one walk of its TCP tables (it dumps
/// with family AF_UNSPEC), where SOCK_DIAG_BY_FAMILY walks them once per
/// family. On a busy host the walk, not the answer, is the cost: every
/// connection is visited even when the filter keeps two sockets, and
/// asking for bound-only sockets adds a walk of the bind table.
const TCPDIAG_GETSOCK: u16 = 18;
/// sizeof(struct inet_diag_req), the request of TCPDIAG_GETSOCK.
const INET_DIAG_REQ_V1_LEN: usize = 60;
/// The request attribute that carries the filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// The reply attribute with the socket's cgroup v2 id (a u64), which
/// the kernel sends for every full socket since Linux 5.7, unasked.
const INET_DIAG_CGROUP_ID: u16 = 21;
/// INET_DIAG_INFO: struct tcp_info. Asking for it (bit INET_DIAG_INFO - 1
/// of idiag_ext) is what makes the kernel also name a TCP socket's upper
/// layer protocol; lsport reads only that name.
const INET_DIAG_INFO: u16 = 2;
/// INET_DIAG_ULP_INFO: nested; INET_ULP_INFO_NAME inside is the name.
const INET_DIAG_ULP_INFO: u16 = 19;
const INET_ULP_INFO_NAME: u16 = 1;
/// The reply buffer: the kernel sends dumps in chunks of at most 32 KiB.
const RECEIVE_BUFFER_LEN: usize = 64 * 1024;

/// Every TCP state bit, 1 (ESTABLISHED) through 13 (BOUND_INACTIVE).
/// The crate's `StateFlags::all()` stops at CLOSING (11) and so would
/// miss request sockets (12) and bound-only sockets (13).
pub const ALL_STATES: u32 = ((1 << 14) - 1) & !1;
/// Unconnected UDP sockets are in state CLOSE (7).
pub const UDP_UNCONNECTED: u32 = 1 << 7;
/// Listening TCP sockets.
pub const TCP_LISTENING: u32 = 1 << 10;
/// SCTP endpoints that wait on their port: LISTEN (10), or bound and
/// CLOSE (7); sctp_diag reports an SCTP socket's state in TCP's numbers.
pub const SCTP_UNCONNECTED: u32 = (1 << 10) | (1 << 7);
/// The SCTP protocol number (netinet/in.h), which sctp_diag answers to.
pub const IPPROTO_SCTP: u8 = 132;
/// TCP sockets that hold a port without a connection: LISTEN and
/// BOUND_INACTIVE.
pub const TCP_UNCONNECTED: u32 = (1 << 10) | (1 << 13);

/// What one dump asks the kernel for.
#[derive(Debug, Clone)]
pub struct DumpRequest {
    /// The address family to dump.
    pub family: Family,
    /// The protocol to dump.
    pub protocol: Protocol,
    /// Bit N set asks for sockets in kernel state N.
    pub states: u32,
    /// Empty means every port.
    pub ports: Vec<PortRange>,
    /// Also match sockets whose remote port is in `ports`.
    pub match_remote: bool,
    /// Only sockets whose port the kernel chose (no bind() to a port).
    pub autobound_only: bool,
    /// Keep only sockets created in one of these cgroups (ids), where the
    /// kernel can test it (Linux 5.8+, at most
    /// `bytecode::MAX_CGROUP_IDS`); None: any cgroup. The caller tests
    /// the cgroup again: a kernel without the test is asked without it.
    pub cgroups: Option<Vec<u64>>,
    /// One of two halves of the sockets, for two dumps run side by side
    /// (see `bytecode::half`); only for a request with no other filter.
    pub half: Option<Half>,
}

/// Which of the two halves a dump asks for; the two together are every
/// socket, each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Half {
    /// The port that splits the ephemeral range in two.
    pub split: u16,
    /// The sockets with exactly one port at or above `split`; the
    /// others when false.
    pub upper: bool,
}

/// Why a dump failed. `errno` lets the caller decide whether to fall
/// back to /proc.
#[derive(Debug)]
pub struct DumpError {
    /// The errno of the failed call or of the kernel's answer (positive);
    /// None when the replies themselves were malformed.
    pub errno: Option<i32>,
    /// What failed, in one line for the user.
    pub message: String,
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl DumpError {
    fn from_io(what: &str, err: io::Error) -> DumpError {
        DumpError {
            errno: err.raw_os_error(),
            message: format!("sock_diag {what}: {err}"),
        }
    }
}

/// The filter program sent for `ports`, or None for no filter (no ports
/// asked: every port). Past what one program holds it filters on a
/// cover of `ports` (bytecode::kernel_cover), which `PortMatch` narrows
/// again; should even that not encode, the kernel is sent no filter.
pub fn compile_port_filter(ports: &[PortRange], match_remote: bool) -> Option<Vec<u8>> {
    if ports.is_empty() {
        return None;
    }
    let cover = bytecode::kernel_cover(ports, match_remote);
    bytecode::compile(&cover, match_remote).ok()
}

/// The filter program sent for `request`: its ports (see
/// [`compile_port_filter`]) and, where it has them and they are few
/// enough, its cgroups. None for no filter.
pub fn compile_filter(request: &DumpRequest) -> Option<Vec<u8>> {
    if let Some(half) = request.half {
        debug_assert!(request.ports.is_empty() && request.cgroups.is_none());
        return Some(bytecode::half(half.split, half.upper));
    }
    let cgroups = request
        .cgroups
        .as_deref()
        .filter(|ids| ids.len() <= bytecode::MAX_CGROUP_IDS);
    let Some(cgroups) = cgroups else {
        return compile_port_filter(&request.ports, request.match_remote);
    };
    let cover = bytecode::kernel_cover(&request.ports, request.match_remote);
    bytecode::compile_with_cgroups(&cover, request.match_remote, Some(cgroups)).ok()
}

/// The one local port a TCP dump can name in the request's socket id,
/// besides its filter program: a dump for exactly one local port. The
/// kernel compares that field before it runs the program, so every
/// other socket costs one compare instead of a program run: at 41,000
/// sockets a dump takes about 2 ms instead of 11. Only for TCP, where
/// it was checked; UDP dumps cost little either way.
fn kernel_local_port(request: &DumpRequest) -> Option<u16> {
    match request.ports.as_slice() {
        [range] if range.lo == range.hi && range.lo != 0 => {
            (request.protocol == Protocol::Tcp && !request.match_remote).then_some(range.lo)
        }
        _ => None,
    }
}

/// The bytes of one SOCK_DIAG_BY_FAMILY dump request.
pub fn build_request(request: &DumpRequest, sequence: u32) -> Vec<u8> {
    let (family, mut socket_id) = match request.family {
        Family::Inet => (AF_INET, SocketId::new_v4()),
        Family::Inet6 => (AF_INET6, SocketId::new_v6()),
    };
    socket_id.source_port = kernel_local_port(request).unwrap_or(0);
    let protocol = match request.protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
        Protocol::Sctp => IPPROTO_SCTP,
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = sequence;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol,
            extensions: extensions_for(request),
            states: StateFlags::from_bits_retain(request.states),
            socket_id,
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);

    // The crate's request type has no attributes.
    append_filter(&mut bytes, request);
    bytes
}

/// The extensions asked for: INET_DIAG_INFO, whose replies then name a
/// TCP socket's upper layer protocol (MPTCP subflows and listeners), for
/// TCP dumps that are small: on some ports, or of listening and
/// bound-only sockets alone. It brings a struct tcp_info with every
/// socket, which makes a dump of every connection about three times the
/// bytes (measured: 4.96 MB against 16.3 MB for 40,000 connections).
fn extensions_for(request: &DumpRequest) -> ExtensionFlags {
    let small = !request.ports.is_empty() || request.states & !TCP_UNCONNECTED == 0;
    match request.protocol {
        Protocol::Tcp if small => ExtensionFlags::from_bits_retain(1 << (INET_DIAG_INFO - 1)),
        _ => ExtensionFlags::empty(),
    }
}

/// Appends the filter program, if any, as an INET_DIAG_REQ_BYTECODE
/// attribute and fixes the message length. A program whose attribute
/// length would not fit in 16 bits is left out rather than sent with a
/// length that wrapped (bytecode::compile never makes one).
fn append_filter(bytes: &mut Vec<u8>, request: &DumpRequest) {
    let program = match (request.autobound_only, compile_filter(request)) {
        (true, filter) => match bytecode::autobound_only(filter) {
            Ok(program) => program,
            Err(_) => return,
        },
        (false, Some(program)) => program,
        (false, None) => return,
    };
    let Ok(attribute_len) = u16::try_from(bytecode::ATTRIBUTE_HEADER_LEN + program.len()) else {
        return;
    };
    let Ok(total) = u32::try_from(bytes.len() + usize::from(attribute_len)) else {
        return;
    };
    bytes.extend_from_slice(&attribute_len.to_ne_bytes());
    bytes.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    bytes.extend_from_slice(&program);
    bytes[0..4].copy_from_slice(&total.to_ne_bytes());
}

/// The bytes of one TCPDIAG_GETSOCK dump request: TCP sockets of both
/// families in the states and on the ports of `request` (its family is
/// not used). The crates build only the newer request, so this one is
/// laid out here: nlmsghdr, then struct inet_diag_req (family, source
/// and destination prefix lengths, extensions, the 48-byte socket id,
/// states, tables), all zero but the states.
pub fn build_both_families_request(request: &DumpRequest, sequence: u32) -> Vec<u8> {
    const TOTAL: usize = NLMSG_HEADER_LEN + INET_DIAG_REQ_V1_LEN;
    let mut bytes = Vec::with_capacity(TOTAL);
    bytes.extend_from_slice(&(TOTAL as u32).to_ne_bytes());
    bytes.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    bytes.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    bytes.extend_from_slice(&sequence.to_ne_bytes());
    bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    bytes.push(AF_INET); // ignored by the kernel for dumps
    bytes.extend_from_slice(&[0; 2]); // prefix lengths
    bytes.push(
        extensions_for(&DumpRequest {
            protocol: Protocol::Tcp,
            ..request.clone()
        })
        .bits(),
    );
    // The socket id: source port (network order), then zeros.
    let source_port = kernel_local_port(request).unwrap_or(0);
    bytes.extend_from_slice(&source_port.to_be_bytes());
    bytes.extend_from_slice(&[0; 46]);
    bytes.extend_from_slice(&request.states.to_ne_bytes());
    bytes.extend_from_slice(&0u32.to_ne_bytes());
    debug_assert_eq!(bytes.len(), TOTAL);
    append_filter(&mut bytes, request);
    bytes
}

/// The exact port test of a request, run on every socket a dump
/// returns: the kernel may have been sent a coarser filter, or none.
struct PortMatch {
    /// Normalized; empty means every port.
    ranges: Vec<PortRange>,
    match_remote: bool,
}

impl PortMatch {
    fn new(request: &DumpRequest) -> PortMatch {
        PortMatch {
            ranges: bytecode::normalize(&request.ports),
            match_remote: request.match_remote,
        }
    }

    fn matches(&self, socket: &Socket) -> bool {
        self.ranges.is_empty()
            || bytecode::contains(&self.ranges, socket.local.port)
            || (self.match_remote && bytecode::contains(&self.ranges, socket.remote.port))
    }

    /// Drops the sockets from `out[start..]` that were not asked for,
    /// keeping the order of the others.
    fn retain_from(&self, out: &mut Vec<Socket>, start: usize) {
        if self.ranges.is_empty() {
            return;
        }
        let mut kept = start;
        for i in start..out.len() {
            if self.matches(&out[i]) {
                out.swap(kept, i);
                kept += 1;
            }
        }
        out.truncate(kept);
    }
}

/// Errors that may come from the filter itself: the kernel's checker
/// refusing it (EINVAL), or a request larger than the socket's send
/// buffer (EMSGSIZE). Neither is the answer while a dump without a
/// filter may still give one.
fn filter_refused(errno: Option<i32>) -> bool {
    matches!(errno, Some(EINVAL | EMSGSIZE))
}

// The errno values of asm-generic/errno-base.h and errno.h, which x86
// and arm use; spelled out because this file is also compiled without
// the libc crate (by the fuzz targets). A test checks them against libc.
const EINVAL: i32 = 22;
const EMSGSIZE: i32 = 90;

/// Where a stream of replies stands after one buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The dump is not finished: read another buffer.
    More,
    /// The kernel ended the dump (NLMSG_DONE).
    Done,
}

/// Decodes one buffer of replies, appending sockets to `out`. A message
/// that cannot be decoded is skipped by its header length and counted in
/// `skipped`; a dump that failed in the kernel (NLMSG_DONE or NLMSG_ERROR
/// with a negative code) is an error, never an empty answer.
pub fn decode_replies(
    buffer: &[u8],
    protocol: Protocol,
    out: &mut Vec<Socket>,
    skipped: &mut usize,
) -> Result<Progress, DumpError> {
    walk_replies(buffer, "sock_diag dump", skipped, &mut |kind, payload| {
        if !matches!(kind, SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK) {
            return false;
        }
        match decode_socket(payload, protocol) {
            Some(socket) => {
                out.push(socket);
                true
            }
            None => false,
        }
    })
}

/// Walks one buffer of sock_diag replies, of any family: checks the
/// framing, ends at NLMSG_DONE, makes a negative code in NLMSG_DONE or
/// NLMSG_ERROR an error (`what` names the dump in its message), passes
/// over NLMSG_NOOP, and hands every other message's type and payload to
/// `message`, which says whether it could use it (a message it could not
/// is counted in `skipped`).
pub fn walk_replies(
    mut buffer: &[u8],
    what: &str,
    skipped: &mut usize,
    message: &mut dyn FnMut(u16, &[u8]) -> bool,
) -> Result<Progress, DumpError> {
    let kernel_error = |code: i32| {
        let errno = code.wrapping_neg();
        DumpError {
            errno: Some(errno),
            message: format!("{what} failed: {}", io::Error::from_raw_os_error(errno)),
        }
    };
    while buffer.len() >= NLMSG_HEADER_LEN {
        let length = u32::from_ne_bytes(buffer[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buffer[4..6].try_into().unwrap());
        if length < NLMSG_HEADER_LEN || length > buffer.len() {
            // An error whose echo of the request was cut short still says
            // what went wrong.
            if matches!(kind, NLMSG_ERROR | NLMSG_DONE) {
                if let Some(code) = negative_code(&buffer[NLMSG_HEADER_LEN..]) {
                    return Err(kernel_error(code));
                }
            }
            // The framing itself is broken: nothing after this can be trusted.
            *skipped += 1;
            return Err(DumpError {
                errno: None,
                message: format!("{what}: a reply with a bad length ({length} bytes)"),
            });
        }
        let payload = &buffer[NLMSG_HEADER_LEN..length];
        match kind {
            NLMSG_DONE | NLMSG_ERROR => {
                if let Some(code) = negative_code(payload) {
                    return Err(kernel_error(code));
                }
                if kind == NLMSG_DONE {
                    return Ok(Progress::Done);
                }
            }
            NLMSG_NOOP => {}
            _ => {
                if !message(kind, payload) {
                    *skipped += 1;
                }
            }
        }
        // Messages are aligned to 4 bytes.
        let advance = (length + 3) & !3;
        buffer = buffer.get(advance..).unwrap_or(&[]);
    }
    Ok(Progress::More)
}

/// The negative code at the start of an NLMSG_ERROR or NLMSG_DONE
/// payload; None for success (0) or no code.
fn negative_code(payload: &[u8]) -> Option<i32> {
    let code = i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?);
    (code < 0).then_some(code)
}

/// One inet_diag_msg and its attributes.
pub fn decode_socket(payload: &[u8], protocol: Protocol) -> Option<Socket> {
    let header = InetResponseHeader::parse(payload).ok()?;
    let family = match header.family {
        AF_INET => Family::Inet,
        AF_INET6 => Family::Inet6,
        _ => return None,
    };
    let mut v6only = None;
    let mut cgroup_id = None;
    let mut has_info = false;
    let mut mptcp_ulp = false;
    for attribute in NlasIterator::new(payload.get(INET_DIAG_MSG_LEN..)?) {
        let Ok(attribute) = attribute else { break };
        match attribute.kind() {
            INET_DIAG_SKV6ONLY if family == Family::Inet6 => {
                v6only = attribute.value().first().map(|v| *v != 0);
            }
            INET_DIAG_CGROUP_ID => {
                cgroup_id = attribute
                    .value()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_ne_bytes)
                    // Ids start at 1 (the root cgroup): 0 is no cgroup.
                    .and_then(std::num::NonZeroU64::new);
            }
            // Only full sockets carry tcp_info; TIME_WAIT and request
            // sockets have no upper layer protocol to tell.
            INET_DIAG_INFO => has_info = true,
            INET_DIAG_ULP_INFO => mptcp_ulp = ulp_is_mptcp(attribute.value()),
            _ => {}
        }
    }
    let mptcp = (protocol == Protocol::Tcp && has_info).then_some(mptcp_ulp);
    let id = &header.socket_id;
    let state = match (protocol, State::from_kernel(header.state)) {
        // The kernel reports a bound-only TCP socket with its real state,
        // CLOSE; only the request names it BOUND_INACTIVE. A TCP socket
        // in CLOSE reaches a dump through that request alone.
        (Protocol::Tcp, State::Close) => State::BoundInactive,
        (_, state) => state,
    };
    Some(Socket {
        protocol,
        family,
        state,
        local: endpoint(id.source_address, id.source_port),
        remote: endpoint(id.destination_address, id.destination_port),
        v6only,
        uid: header.uid,
        inode: u64::from(header.inode),
        cookie: cookie_of(payload),
        timer_ms: timer_of(payload),
        autobound: None,
        cgroup_id,
        mptcp,
    })
}

/// Whether INET_ULP_INFO_NAME inside INET_DIAG_ULP_INFO is "mptcp".
fn ulp_is_mptcp(nested: &[u8]) -> bool {
    NlasIterator::new(nested)
        .map_while(Result::ok)
        .filter(|a| a.kind() == INET_ULP_INFO_NAME)
        .any(|a| a.value().split(|b| *b == 0).next() == Some(&b"mptcp"[..]))
}

/// idiag_cookie: two native-endian u32s at bytes 44..52 of
/// inet_diag_msg, the low half first.
fn cookie_of(payload: &[u8]) -> u64 {
    let half = |at: usize| {
        payload
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_ne_bytes)
    };
    u64::from(half(44)) | u64::from(half(48)) << 32
}

/// idiag_expires (bytes 52..56), when idiag_timer (byte 2) is the
/// TIME_WAIT timer (3): the milliseconds until the kernel ends the
/// socket. TIME_WAIT sockets run it, and so do orphaned FIN_WAIT2
/// connections once the kernel made them timewait sockets (when
/// tcp_fin_timeout is 60 s or less). The other timers (retransmission,
/// keepalive, zero-window probe) say when the kernel next acts on the
/// socket, not when it goes: no figure is made of them.
fn timer_of(payload: &[u8]) -> Option<u32> {
    const TIME_WAIT_TIMER: u8 = 3;
    if *payload.get(2)? != TIME_WAIT_TIMER {
        return None;
    }
    payload
        .get(52..56)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}

fn endpoint(address: IpAddr, port: u16) -> Endpoint {
    Endpoint { address, port }
}

/// One netlink socket and reply buffer for the dumps of a namespace,
/// asked one after another. A dump that fails leaves the socket to be
/// replaced: what the kernel still had to say must not reach the next.
pub struct Session {
    socket: Option<NetlinkSocket>,
    /// The kernel sends dumps in chunks of at most 32 KiB; one buffer is
    /// reused for all of them and replies are decoded in place.
    buffer: Vec<u8>,
    sequence: u32,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            socket: None,
            buffer: vec![0u8; RECEIVE_BUFFER_LEN],
            sequence: 0,
        }
    }
}

/// Builds the bytes of a request.
type Build = fn(&DumpRequest, u32) -> Vec<u8>;

impl Session {
    /// Runs one dump against the kernel. The sockets it adds to `out` are
    /// exactly those on the ports of `request`.
    pub fn dump(
        &mut self,
        request: &DumpRequest,
        out: &mut Vec<Socket>,
    ) -> Result<usize, DumpError> {
        self.filtered_dump(request, build_request, request.protocol, out)
    }

    /// Runs one TCP dump for both families (see TCPDIAG_GETSOCK). On
    /// error `out` is as it was, so that the caller can ask family by
    /// family.
    pub fn dump_tcp_both_families(
        &mut self,
        request: &DumpRequest,
        out: &mut Vec<Socket>,
    ) -> Result<usize, DumpError> {
        let before = out.len();
        let result = self.filtered_dump(request, build_both_families_request, Protocol::Tcp, out);
        if result.is_err() {
            out.truncate(before);
        }
        result
    }

    /// One dump with the kernel filtering on the ports of `request` (or a
    /// cover of them) and lsport on exactly those; if the kernel or the
    /// socket refuses the filter, one more dump without it.
    fn filtered_dump(
        &mut self,
        request: &DumpRequest,
        build: Build,
        protocol: Protocol,
        out: &mut Vec<Socket>,
    ) -> Result<usize, DumpError> {
        let exact = PortMatch::new(request);
        let before = out.len();
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = build(request, self.sequence);
        let mut result = self.run(&bytes, protocol, &exact, out);
        // A kernel without the cgroup test (before 5.8) refuses it: ask
        // again with the ports alone, then with no filter at all.
        let fallbacks = [
            (request.cgroups.is_some(), request.ports.clone()),
            (!request.ports.is_empty(), Vec::new()),
        ];
        for (worth_trying, ports) in fallbacks {
            match &result {
                Err(err) if filter_refused(err.errno) => {
                    if !worth_trying {
                        continue;
                    }
                    out.truncate(before);
                    let simpler = DumpRequest {
                        family: request.family,
                        protocol: request.protocol,
                        states: request.states,
                        ports,
                        match_remote: request.match_remote,
                        cgroups: None,
                        autobound_only: request.autobound_only,
                        half: None,
                    };
                    self.sequence = self.sequence.wrapping_add(1);
                    let bytes = build(&simpler, self.sequence);
                    result = self.run(&bytes, protocol, &exact, out);
                }
                _ => break,
            }
        }
        result
    }

    fn run(
        &mut self,
        request: &[u8],
        protocol: Protocol,
        exact: &PortMatch,
        out: &mut Vec<Socket>,
    ) -> Result<usize, DumpError> {
        let result = self.exchange(request, protocol, exact, out);
        if result.is_err() {
            self.socket = None;
        }
        result
    }

    fn exchange(
        &mut self,
        request: &[u8],
        protocol: Protocol,
        exact: &PortMatch,
        out: &mut Vec<Socket>,
    ) -> Result<usize, DumpError> {
        let socket = match &mut self.socket {
            Some(socket) => socket,
            empty => empty.insert(open_socket()?),
        };
        socket
            .send(request, 0)
            .map_err(|e| DumpError::from_io("send", e))?;
        let mut skipped = 0;
        loop {
            let mut window = &mut self.buffer[..];
            let received = match socket.recv(&mut window, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DumpError::from_io("receive", e)),
            };
            let received = received.min(self.buffer.len());
            if received == 0 {
                return Err(DumpError {
                    errno: None,
                    message: "sock_diag dump ended early".into(),
                });
            }
            let start = out.len();
            let progress = decode_replies(&self.buffer[..received], protocol, out, &mut skipped);
            // Filtered as each buffer arrives, so that a coarse filter
            // never holds more than one buffer of unwanted sockets.
            exact.retain_from(out, start);
            if progress? == Progress::Done {
                return Ok(skipped);
            }
        }
    }
}

fn open_socket() -> Result<NetlinkSocket, DumpError> {
    let mut socket =
        NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(|e| DumpError::from_io("socket", e))?;
    // An error then echoes only the header of the request, not the
    // filter (Linux 4.2 and later; before, the request is kept small
    // enough that its echo fits the buffer anyway).
    let _ = socket.set_cap_ack(true);
    socket
        .bind_auto()
        .map_err(|e| DumpError::from_io("bind", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| DumpError::from_io("connect", e))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytecode::kernel::{audit, keeps};

    /// A request with no remote match, no autobound test and no cgroups.
    fn request(
        family: Family,
        protocol: Protocol,
        states: u32,
        ports: Vec<PortRange>,
    ) -> DumpRequest {
        DumpRequest {
            family,
            protocol,
            states,
            ports,
            match_remote: false,
            autobound_only: false,
            half: None,
            cgroups: None,
        }
    }

    #[test]
    fn tcp_info_and_so_the_upper_layer_protocol_is_asked_for_small_tcp_dumps_only() {
        let info = 1 << (INET_DIAG_INFO - 1);
        let port = vec![PortRange::single(8080)];
        let ext = |r: &DumpRequest| extensions_for(r).bits();
        assert_eq!(
            ext(&request(
                Family::Inet,
                Protocol::Tcp,
                ALL_STATES,
                port.clone()
            )),
            info
        );
        assert_eq!(
            ext(&request(
                Family::Inet,
                Protocol::Tcp,
                TCP_UNCONNECTED,
                vec![]
            )),
            info
        );
        assert_eq!(
            ext(&request(Family::Inet, Protocol::Tcp, ALL_STATES, vec![])),
            0
        );
        assert_eq!(
            ext(&request(
                Family::Inet,
                Protocol::Udp,
                ALL_STATES,
                port.clone()
            )),
            0
        );
        // struct inet_diag_req: idiag_ext is its fourth byte.
        let both =
            build_both_families_request(&request(Family::Inet, Protocol::Tcp, ALL_STATES, port), 1);
        assert_eq!(both[NLMSG_HEADER_LEN + 3], info);
    }

    #[test]
    fn the_mptcp_upper_layer_protocol_is_read_from_its_nested_name() {
        let nested = |name: &[u8]| {
            let mut bytes = ((4 + name.len()) as u16).to_ne_bytes().to_vec();
            bytes.extend_from_slice(&INET_ULP_INFO_NAME.to_ne_bytes());
            bytes.extend_from_slice(name);
            bytes.resize(bytes.len().div_ceil(4) * 4, 0);
            bytes
        };
        assert!(ulp_is_mptcp(&nested(b"mptcp\0")));
        assert!(!ulp_is_mptcp(&nested(b"tls\0")));
        assert!(!ulp_is_mptcp(&nested(b"mptcpx\0")));
        assert!(!ulp_is_mptcp(&[]));
    }

    #[test]
    fn the_request_carries_all_states_and_the_filter() {
        let request = request(
            Family::Inet6,
            Protocol::Tcp,
            ALL_STATES,
            vec![PortRange::single(60403)],
        );
        let bytes = build_request(&request, 7);
        // nlmsghdr (16) + inet_diag_req_v2 (56) + attribute header (4) + 20.
        assert_eq!(bytes.len(), 16 + 56 + 4 + 20);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(
            u16::from_ne_bytes(bytes[4..6].try_into().unwrap()),
            SOCK_DIAG_BY_FAMILY
        );
        assert_eq!(bytes[16], AF_INET6);
        assert_eq!(bytes[17], IPPROTO_TCP);
        let states = u32::from_ne_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(
            states, 0x3ffe,
            "bits 1..=13, including NEW_SYN_RECV and BOUND_INACTIVE"
        );
        assert_eq!(
            u16::from_ne_bytes(bytes[74..76].try_into().unwrap()),
            INET_DIAG_REQ_BYTECODE
        );
        // One local port also goes in the socket id, in network order.
        assert_eq!(
            &bytes[24..28],
            &[0xeb, 0xf3, 0, 0],
            "idiag_sport, idiag_dport"
        );
    }

    #[test]
    fn the_socket_id_names_a_port_only_for_one_local_tcp_port() {
        let one = request(
            Family::Inet,
            Protocol::Tcp,
            ALL_STATES,
            vec![PortRange::single(80)],
        );
        assert_eq!(kernel_local_port(&one), Some(80));
        let not_named = [
            DumpRequest {
                match_remote: true,
                ..one.clone()
            },
            DumpRequest {
                protocol: Protocol::Udp,
                ..one.clone()
            },
            DumpRequest {
                ports: vec![PortRange::single(80), PortRange::single(443)],
                ..one.clone()
            },
            DumpRequest {
                ports: vec![PortRange { lo: 80, hi: 81 }],
                ..one.clone()
            },
            DumpRequest {
                ports: Vec::new(),
                ..one.clone()
            },
        ];
        for request in &not_named {
            assert_eq!(kernel_local_port(request), None, "{request:?}");
            assert_eq!(&build_request(request, 1)[24..26], &[0, 0]);
        }
    }

    #[test]
    fn the_both_families_request_is_an_inet_diag_req_with_the_filter() {
        let request = request(
            Family::Inet6,
            Protocol::Tcp,
            TCP_UNCONNECTED,
            vec![PortRange::single(60403)],
        );
        let bytes = build_both_families_request(&request, 9);
        // nlmsghdr (16) + inet_diag_req (60) + attribute header (4) + 20.
        assert_eq!(bytes.len(), 16 + 60 + 4 + 20);
        let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        let u16_at = |at: usize| u16::from_ne_bytes(bytes[at..at + 2].try_into().unwrap());
        assert_eq!(u32_at(0) as usize, bytes.len());
        assert_eq!(u16_at(4), TCPDIAG_GETSOCK);
        assert_eq!(u16_at(6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_at(8), 9);
        assert_eq!(
            &bytes[20..24],
            &[0xeb, 0xf3, 0, 0],
            "idiag_sport, idiag_dport"
        );
        assert_eq!(u32_at(16 + 52), TCP_UNCONNECTED, "idiag_states");
        assert_eq!(u32_at(16 + 56), 0, "idiag_dbs");
        assert_eq!(u16_at(76), 24, "attribute length");
        assert_eq!(u16_at(78), INET_DIAG_REQ_BYTECODE);
        assert_eq!(
            &bytes[80..],
            &compile_port_filter(&request.ports, false).unwrap()[..]
        );
        let unfiltered = DumpRequest {
            ports: Vec::new(),
            ..request
        };
        assert_eq!(build_both_families_request(&unfiltered, 1).len(), 76);
    }

    fn odd_ports(last: u16) -> Vec<PortRange> {
        (1..=last).step_by(2).map(PortRange::single).collect()
    }

    /// The filter attribute of a request: its length field and program.
    fn filter_of(bytes: &[u8], header_len: usize) -> (u16, &[u8]) {
        let at = NLMSG_HEADER_LEN + header_len;
        let attribute_len = u16::from_ne_bytes(bytes[at..at + 2].try_into().unwrap());
        let kind = u16::from_ne_bytes(bytes[at + 2..at + 4].try_into().unwrap());
        assert_eq!(kind, INET_DIAG_REQ_BYTECODE);
        (attribute_len, &bytes[at + 4..])
    }

    #[test]
    fn any_number_of_ports_makes_a_request_the_kernel_takes_whole() {
        for ports in [
            odd_ports(6551),  // 3,276 ranges
            odd_ports(6553),  // 3,277
            odd_ports(13105), // 6,553
            odd_ports(32767), // 16,384
            odd_ports(65535), // every odd port
            (1000..=30000).step_by(3).map(PortRange::single).collect(),
        ] {
            for match_remote in [false, true] {
                let request = DumpRequest {
                    match_remote,
                    ..request(Family::Inet, Protocol::Udp, ALL_STATES, ports.clone())
                };
                for (bytes, header_len) in [
                    (build_request(&request, 1), 56),
                    (
                        build_both_families_request(&request, 1),
                        INET_DIAG_REQ_V1_LEN,
                    ),
                ] {
                    let total = u32::from_ne_bytes(bytes[0..4].try_into().unwrap());
                    assert_eq!(total as usize, bytes.len());
                    let (attribute_len, program) = filter_of(&bytes, header_len);
                    // Nothing wrapped: the attribute is the rest of the message.
                    assert_eq!(usize::from(attribute_len), 4 + program.len());
                    assert!(audit(program).is_some());
                    // Every asked port passes the kernel's filter, locally
                    // and, with match_remote, as the remote port.
                    for range in &ports {
                        for port in [range.lo, range.hi] {
                            assert!(keeps(program, port, 0));
                            if match_remote {
                                assert!(keeps(program, 0, port));
                            }
                        }
                    }
                    // The kernel's error echoes the request after an
                    // nlmsghdr and the error code: even without
                    // NETLINK_CAP_ACK that fits the buffer.
                    assert!(NLMSG_HEADER_LEN + 4 + bytes.len() <= RECEIVE_BUFFER_LEN);
                }
            }
        }
    }

    fn socket_on(local: u16, remote: u16) -> Socket {
        Socket {
            inode: u64::from(local) << 16 | u64::from(remote),
            ..Socket::example(
                State::Established,
                &format!("127.0.0.1:{local}"),
                &format!("127.0.0.1:{remote}"),
            )
        }
    }

    #[test]
    fn sockets_a_coarse_filter_let_through_are_dropped_here() {
        let request = |match_remote| DumpRequest {
            match_remote,
            ..request(Family::Inet, Protocol::Tcp, ALL_STATES, odd_ports(65535))
        };
        let mut out = vec![socket_on(2, 2)];
        out.extend((0..=20).map(|p| socket_on(p, 40000 + p)));
        out.push(socket_on(2, 7));
        PortMatch::new(&request(false)).retain_from(&mut out, 1);
        let locals: Vec<u16> = out.iter().map(|s| s.local.port).collect();
        // The socket before `start` is not looked at.
        assert_eq!(locals, [2, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);

        let exact = PortMatch::new(&request(true));
        assert!(exact.matches(&socket_on(2, 7)));
        assert!(exact.matches(&socket_on(7, 2)));
        assert!(!exact.matches(&socket_on(2, 8)));
        let every_port = DumpRequest {
            ports: Vec::new(),
            ..request(false)
        };
        assert!(PortMatch::new(&every_port).matches(&socket_on(2, 2)));
    }

    /// A request whose filter the kernel's checker refuses: its first op
    /// has an unknown code.
    fn refused_filter(request: &DumpRequest, sequence: u32) -> Vec<u8> {
        let mut bytes = build_request(request, sequence);
        if !request.ports.is_empty() {
            bytes[NLMSG_HEADER_LEN + 56 + 4] = 0xff;
        }
        bytes
    }

    #[test]
    fn a_filter_the_kernel_refuses_gives_way_to_a_dump_without_one() {
        let asked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = asked.local_addr().unwrap().port();
        let request = request(
            Family::Inet,
            Protocol::Tcp,
            TCP_LISTENING,
            vec![PortRange::single(port)],
        );
        let exact = PortMatch::new(&request);
        let mut session = Session::default();
        let mut out = Vec::new();
        // Alone, the refused filter is an error...
        let bytes = refused_filter(&request, 1);
        match session.run(&bytes, Protocol::Tcp, &exact, &mut out) {
            Err(err)
                if crate::source::netlink_unavailable(err.errno) && err.errno != Some(EINVAL) =>
            {
                eprintln!(
                    "SKIPPED a_filter_the_kernel_refuses_gives_way_to_a_dump_without_one: {err}"
                );
                return;
            }
            Err(err) => assert_eq!(err.errno, Some(EINVAL), "{err}"),
            Ok(_) => panic!("the kernel took an unknown op"),
        }
        // ...which the dump answers by asking again without it, and
        // keeping only the port asked.
        out.clear();
        session
            .filtered_dump(&request, refused_filter, Protocol::Tcp, &mut out)
            .unwrap();
        let ports: Vec<u16> = out.iter().map(|s| s.local.port).collect();
        assert_eq!(ports, [port]);
    }

    #[test]
    fn an_error_whose_echo_was_cut_short_still_gives_its_errno() {
        // NLMSG_ERROR, code -EINVAL, then an echo longer than was received.
        let mut stream = frame(NLMSG_ERROR, &(-22i32).to_ne_bytes());
        let claimed = (RECEIVE_BUFFER_LEN + 4096) as u32;
        stream[0..4].copy_from_slice(&claimed.to_ne_bytes());
        stream.extend_from_slice(&[0u8; 64]);
        let (mut out, mut skipped) = (Vec::new(), 0);
        let err = decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap_err();
        assert_eq!(err.errno, Some(libc::EINVAL));
        assert!(filter_refused(err.errno));
        assert!(filter_refused(Some(libc::EMSGSIZE)));
        assert_eq!((EINVAL, EMSGSIZE), (libc::EINVAL, libc::EMSGSIZE));
        // A code that is no errno at all is still no panic.
        let stream = frame(NLMSG_DONE, &i32::MIN.to_ne_bytes());
        assert!(decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).is_err());
    }

    #[test]
    fn replies_to_the_old_request_type_decode_like_the_new() {
        let mut stream = listen_reply_v6(Some(1));
        stream[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        let (mut out, mut skipped) = (Vec::new(), 0);
        decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap();
        assert_eq!((out.len(), skipped), (1, 0));
        assert_eq!(out[0].local.to_string(), "[::1]:60403");
    }

    /// A reply for [::1]:60403 in LISTEN, built field by field.
    #[test]
    fn the_cookie_and_the_time_wait_timer_are_kept() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&[AF_INET, 6, 3, 0]); // TIME_WAIT, timer 3 (time-wait)
        msg.extend_from_slice(&8080u16.to_be_bytes());
        msg.extend_from_slice(&40000u16.to_be_bytes());
        msg.extend_from_slice(&[127, 0, 0, 1]);
        msg.extend_from_slice(&[0u8; 12]);
        msg.extend_from_slice(&[127, 0, 0, 1]);
        msg.extend_from_slice(&[0u8; 12]);
        msg.extend_from_slice(&0u32.to_ne_bytes()); // interface
        msg.extend_from_slice(&0x0000_1234u32.to_ne_bytes()); // cookie, low half
        msg.extend_from_slice(&0x0000_0001u32.to_ne_bytes()); // cookie, high half
        for value in [42_000u32, 0, 0, 0, 0] {
            msg.extend_from_slice(&value.to_ne_bytes()); // expires, rqueue, wqueue, uid, inode
        }
        let socket = decode_socket(&msg, Protocol::Tcp).unwrap();
        assert_eq!(socket.state, State::TimeWait);
        assert_eq!(socket.cookie, 0x1_0000_1234);
        assert_eq!(socket.timer_ms, Some(42_000));
        // No timer running, or one that does not end the socket (an
        // orphan's retransmission, keepalive or window probe timer): no
        // figure, whatever idiag_expires holds.
        for timer in [0, 1, 2, 4] {
            msg[2] = timer;
            assert_eq!(decode_socket(&msg, Protocol::Tcp).unwrap().timer_ms, None);
        }
        // An orphaned FIN_WAIT2 connection the kernel keeps as a
        // timewait socket runs the TIME_WAIT timer: the figure stands.
        msg[1] = 5;
        msg[2] = 3;
        let orphan = decode_socket(&msg, Protocol::Tcp).unwrap();
        assert_eq!(
            (orphan.state, orphan.timer_ms),
            (State::FinWait2, Some(42_000))
        );
    }

    /// One attribute: its length, kind and value, padded to 4 bytes.
    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut bytes = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(value);
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        bytes
    }

    /// A struct sockaddr_storage (128 bytes) holding an IPv4 address, as
    /// sctp_diag puts each address of INET_DIAG_LOCALS and _PEERS.
    fn sockaddr_storage_v4(address: [u8; 4], port: u16) -> Vec<u8> {
        let mut bytes = vec![0; 128];
        bytes[0..2].copy_from_slice(&u16::from(AF_INET).to_ne_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[4..8].copy_from_slice(&address);
        bytes
    }

    #[test]
    fn an_sctp_dump_asks_for_protocol_132() {
        let request = request(Family::Inet, Protocol::Sctp, SCTP_UNCONNECTED, vec![]);
        let bytes = build_request(&request, 3);
        // inet_diag_req_v2: sdiag_family, sdiag_protocol, idiag_ext, pad,
        // idiag_states.
        assert_eq!(bytes[16], AF_INET);
        assert_eq!(bytes[17], 132);
        assert_eq!(bytes[18], 0, "no tcp_info asked of sctp_diag");
        assert_eq!(
            u32::from_ne_bytes(bytes[20..24].try_into().unwrap()),
            (1 << 10) | (1 << 7)
        );
    }

    #[test]
    fn an_sctp_endpoint_reply_is_decoded_past_its_address_lists() {
        // inet_diag_msg of a listening endpoint on 10.0.0.1:5000,
        // multi-homed (two addresses in INET_DIAG_LOCALS), then its
        // cgroup: the attribute walk must step over the 256-byte list.
        let mut msg = vec![0u8; INET_DIAG_MSG_LEN];
        msg[0] = AF_INET;
        msg[1] = 10; // LISTEN, in TCP's numbers
        msg[4..6].copy_from_slice(&5000u16.to_be_bytes());
        msg[8..12].copy_from_slice(&[10, 0, 0, 1]);
        msg[64..68].copy_from_slice(&0u32.to_ne_bytes()); // uid
        msg[68..72].copy_from_slice(&4242u32.to_ne_bytes()); // inode
        let mut locals = sockaddr_storage_v4([10, 0, 0, 1], 5000);
        locals.extend(sockaddr_storage_v4([10, 0, 1, 1], 5000));
        msg.extend(attribute(12, &locals)); // INET_DIAG_LOCALS
        msg.extend(attribute(INET_DIAG_CGROUP_ID, &7u64.to_ne_bytes()));
        let mut stream = ((NLMSG_HEADER_LEN + msg.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        stream.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        stream.extend_from_slice(&[0; 10]); // flags, sequence, port id
        stream.extend(msg);
        let (mut out, mut skipped) = (Vec::new(), 0);
        decode_replies(&stream, Protocol::Sctp, &mut out, &mut skipped).unwrap();
        assert_eq!(skipped, 0);
        let socket = &out[0];
        assert_eq!(socket.protocol, Protocol::Sctp);
        assert_eq!(socket.state, State::Listen);
        assert_eq!(socket.local.to_string(), "10.0.0.1:5000");
        assert_eq!((socket.inode, socket.mptcp), (4242, None));
        assert_eq!(socket.cgroup_id.map(|id| id.get()), Some(7));
        // A closed (bound) SCTP endpoint stays CLOSE: only a TCP socket
        // in CLOSE is one only bound.
        stream[NLMSG_HEADER_LEN + 1] = 7;
        out.clear();
        decode_replies(&stream, Protocol::Sctp, &mut out, &mut skipped).unwrap();
        assert_eq!(out[0].state, State::Close);
    }

    #[test]
    fn a_dump_without_a_handler_for_its_protocol_ends_in_enoent() {
        // What a kernel without sctp_diag answers an SCTP dump: NLMSG_DONE
        // carrying -ENOENT. It is an error with its errno, never an empty
        // answer; the caller decides what it hides.
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
        done.extend_from_slice(&[0; 10]); // flags, sequence, port id
        done.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        let (mut out, mut skipped) = (Vec::new(), 0);
        let error = decode_replies(&done, Protocol::Sctp, &mut out, &mut skipped).unwrap_err();
        assert_eq!(error.errno, Some(libc::ENOENT));
        assert!(out.is_empty());
    }

    #[test]
    fn the_cgroup_id_is_read_after_padding_in_either_family() {
        let mut stream = listen_reply_v6(Some(1));
        // nla_put_u64_64bit may put an empty INET_DIAG_PAD (14) first.
        let mut attributes = Vec::new();
        attributes.extend_from_slice(&4u16.to_ne_bytes());
        attributes.extend_from_slice(&14u16.to_ne_bytes());
        attributes.extend_from_slice(&12u16.to_ne_bytes());
        attributes.extend_from_slice(&INET_DIAG_CGROUP_ID.to_ne_bytes());
        attributes.extend_from_slice(&0x1_0000_0042u64.to_ne_bytes());
        stream.extend_from_slice(&attributes);
        let total = stream.len() as u32;
        stream[0..4].copy_from_slice(&total.to_ne_bytes());
        let (mut out, mut skipped) = (Vec::new(), 0);
        decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap();
        assert_eq!(out[0].cgroup_id.map(|id| id.get()), Some(0x1_0000_0042));
        assert_eq!(out[0].v6only, Some(true));
        // An IPv4 reply carries it too; one without it has none.
        let mut v4 = stream.clone();
        v4[16] = AF_INET;
        out.clear();
        decode_replies(&v4, Protocol::Tcp, &mut out, &mut skipped).unwrap();
        assert_eq!(
            (out[0].cgroup_id.map(|id| id.get()), out[0].v6only),
            (Some(0x1_0000_0042), None)
        );
        out.clear();
        decode_replies(
            &listen_reply_v6(None),
            Protocol::Tcp,
            &mut out,
            &mut skipped,
        )
        .unwrap();
        assert_eq!(out[0].cgroup_id, None);
        // Cut short: no id rather than a wrong one.
        let mut short = listen_reply_v6(None);
        short.extend_from_slice(&8u16.to_ne_bytes());
        short.extend_from_slice(&INET_DIAG_CGROUP_ID.to_ne_bytes());
        short.extend_from_slice(&[1, 2, 3, 4]);
        let total = short.len() as u32;
        short[0..4].copy_from_slice(&total.to_ne_bytes());
        out.clear();
        decode_replies(&short, Protocol::Tcp, &mut out, &mut skipped).unwrap();
        assert_eq!(out[0].cgroup_id, None);
    }

    /// This process's cgroup id: the inode of its cgroup's directory.
    fn own_cgroup_id() -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let root = crate::sys::ProcRoot::default();
        let hierarchy = crate::holders::cgroups::Hierarchy::locate(&root)?;
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = hierarchy.dir.join(path.trim_start_matches('/'));
        Some(std::fs::metadata(dir).ok()?.ino())
    }

    #[test]
    fn the_kernel_keeps_only_the_cgroups_asked_for() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let Some(own) = own_cgroup_id() else {
            eprintln!("SKIPPED the_kernel_keeps_only_the_cgroups_asked_for: no cgroup v2 here");
            return;
        };
        let request = |cgroups: Option<Vec<u64>>| DumpRequest {
            cgroups,
            ..request(
                Family::Inet,
                Protocol::Tcp,
                TCP_LISTENING,
                vec![PortRange::single(port)],
            )
        };
        let mut session = Session::default();
        let mut dump = |cgroups| {
            let mut out = Vec::new();
            match session.dump(&request(cgroups), &mut out) {
                Ok(_) => Some(out),
                Err(err) if crate::source::netlink_unavailable(err.errno) => None,
                Err(err) => panic!("{err}"),
            }
        };
        let Some(mine) = dump(Some(vec![own])) else {
            eprintln!("SKIPPED the_kernel_keeps_only_the_cgroups_asked_for: no sock_diag");
            return;
        };
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].cgroup_id.map(|id| id.get()), Some(own));
        // Session::dump tests only the ports: an empty answer here can
        // only be the kernel's cgroup test at work.
        let other = dump(Some(vec![own + 1_000_000])).unwrap();
        assert!(other.is_empty(), "{other:?}");
        assert!(dump(Some(Vec::new())).unwrap().is_empty());
    }

    #[test]
    fn a_kernel_without_the_cgroup_test_is_asked_for_the_ports_alone() {
        let asked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = asked.local_addr().unwrap().port();
        // What each request asked: (a cgroup test, a port filter).
        static ASKED: std::sync::Mutex<Vec<(bool, bool)>> = std::sync::Mutex::new(Vec::new());
        // As a kernel before 5.8 answers a cgroup test: EINVAL.
        fn no_cgroup_op(request: &DumpRequest, sequence: u32) -> Vec<u8> {
            ASKED
                .lock()
                .unwrap()
                .push((request.cgroups.is_some(), !request.ports.is_empty()));
            let mut bytes = build_request(request, sequence);
            if request.cgroups.is_some() {
                bytes[NLMSG_HEADER_LEN + 56 + 4] = 0xff;
            }
            bytes
        }
        let request = DumpRequest {
            cgroups: Some(vec![1]),
            ..request(
                Family::Inet,
                Protocol::Tcp,
                TCP_LISTENING,
                vec![PortRange::single(port)],
            )
        };
        let exact = PortMatch::new(&request);
        let mut session = Session::default();
        let mut out = Vec::new();
        if let Err(err) = session.run(&no_cgroup_op(&request, 1), Protocol::Tcp, &exact, &mut out) {
            if crate::source::netlink_unavailable(err.errno) && err.errno != Some(EINVAL) {
                eprintln!(
                    "SKIPPED a_kernel_without_the_cgroup_test_is_asked_for_the_ports_alone: {err}"
                );
                return;
            }
        }
        out.clear();
        ASKED.lock().unwrap().clear();
        session
            .filtered_dump(&request, no_cgroup_op, Protocol::Tcp, &mut out)
            .unwrap();
        let ports: Vec<u16> = out.iter().map(|s| s.local.port).collect();
        assert_eq!(ports, [port]);
        assert_eq!(
            *ASKED.lock().unwrap(),
            [(true, true), (false, true)],
            "refused, then asked again with the port filter and no cgroup test"
        );
    }

    fn listen_reply_v6(with_v6only: Option<u8>) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&[AF_INET6, 10, 0, 0]); // family, state LISTEN, timer, retransmits
        msg.extend_from_slice(&60403u16.to_be_bytes()); // source port
        msg.extend_from_slice(&0u16.to_be_bytes()); // destination port
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        msg.extend_from_slice(&loopback); // source address ::1
        msg.extend_from_slice(&[0u8; 16]); // destination address ::
        msg.extend_from_slice(&0u32.to_ne_bytes()); // interface
        msg.extend_from_slice(&[0u8; 8]); // cookie
        for value in [0u32, 0, 0, 1000, 424242] {
            msg.extend_from_slice(&value.to_ne_bytes()); // expires, rqueue, wqueue, uid, inode
        }
        if let Some(flag) = with_v6only {
            msg.extend_from_slice(&5u16.to_ne_bytes());
            msg.extend_from_slice(&INET_DIAG_SKV6ONLY.to_ne_bytes());
            msg.extend_from_slice(&[flag, 0, 0, 0]);
        }
        frame(SOCK_DIAG_BY_FAMILY, &msg)
    }

    fn frame(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&[0u8; 10]);
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    #[test]
    fn decodes_a_reply_with_its_v6only_flag() {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut stream = listen_reply_v6(Some(1));
        stream.extend(frame(NLMSG_DONE, &0i32.to_ne_bytes()));
        let progress = decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap();
        assert_eq!(progress, Progress::Done);
        assert_eq!(skipped, 0);
        assert_eq!(out.len(), 1);
        let socket = &out[0];
        assert_eq!(socket.state, State::Listen);
        assert_eq!(socket.local.to_string(), "[::1]:60403");
        assert_eq!(socket.v6only, Some(true));
        assert_eq!(socket.uid, 1000);
        assert_eq!(socket.inode, 424242);
    }

    #[test]
    fn a_message_that_cannot_be_decoded_is_skipped_not_fatal() {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut stream = frame(SOCK_DIAG_BY_FAMILY, &[1, 2, 3]);
        stream.extend(listen_reply_v6(Some(0)));
        let progress = decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap();
        assert_eq!(progress, Progress::More);
        assert_eq!((out.len(), skipped), (1, 1));
        assert_eq!(out[0].v6only, Some(false));
    }

    #[test]
    fn a_failed_dump_is_an_error_not_an_empty_answer() {
        let mut out = Vec::new();
        let mut skipped = 0;
        let stream = frame(NLMSG_DONE, &(-22i32).to_ne_bytes());
        let err = decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap_err();
        assert_eq!(err.errno, Some(22));
        let stream = frame(NLMSG_ERROR, &(-1i32).to_ne_bytes());
        let err = decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).unwrap_err();
        assert_eq!(err.errno, Some(1));
    }

    #[test]
    fn broken_framing_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut stream = frame(SOCK_DIAG_BY_FAMILY, &[0u8; 80]);
        stream[0..4].copy_from_slice(&4000u32.to_ne_bytes());
        assert!(decode_replies(&stream, Protocol::Tcp, &mut out, &mut skipped).is_err());
        assert_eq!(
            decode_replies(&[1, 2, 3], Protocol::Tcp, &mut out, &mut skipped).unwrap(),
            Progress::More
        );
    }
}
