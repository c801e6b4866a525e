//! Which source answers: sock_diag first, the /proc/net tables where
//! sock_diag is refused or missing (`--source auto`), or the one the
//! user named.

use std::collections::HashSet;

use crate::error::Error;
use crate::filter::SocketFilter;
use crate::query::{Query, SourceChoice, View};
use crate::socket::{Family, PortRange, Protocol, Socket, State};
use crate::source::netlink::{self, DumpRequest};
use crate::source::procfs::{self, Filter};
use crate::source::{BlindSpot, SourceKind, netlink_unavailable};

/// The sockets one source gave.
pub struct Collected {
    /// The sockets on the ports and in the states asked for.
    pub sockets: Vec<Socket>,
    /// Replies (or /proc/net lines) that could not be decoded.
    pub skipped: usize,
    /// The source that answered.
    pub source: SourceKind,
    /// Why sock_diag was given up for /proc, when it was.
    pub fallback: Option<String>,
    /// SCTP was asked for, and its sockets could not be read though the
    /// kernel has SCTP.
    pub sctp_unread: bool,
}

/// Sockets from the source asked for; with `auto`, from sock_diag, or
/// from /proc/net where sock_diag is refused or missing; only those that
/// pass `filter`. `found_some` is called as soon as some socket is known
/// (and maybe more than once), so that the search for holders can start.
pub fn sockets(
    query: &Query,
    filter: &SocketFilter,
    found_some: &dyn Fn(),
) -> Result<Collected, Error> {
    let ports = query.merged_ports();
    let wanted = Wanted {
        ports: &ports,
        filter,
    };
    let mut collected = from_source(query, &wanted, found_some)?;
    // sock_diag's sockets are filtered as each dump ends; /proc's here.
    if filter.is_active() && collected.source == SourceKind::Proc {
        collected.sockets.retain(|s| filter.matches(s));
    }
    if !collected.sockets.is_empty() {
        found_some();
    }
    Ok(collected)
}

/// What the dumps keep: the merged ports, and the reverse query's filter.
struct Wanted<'a> {
    ports: &'a [PortRange],
    filter: &'a SocketFilter,
}

fn from_source(
    query: &Query,
    wanted: &Wanted<'_>,
    found_some: &dyn Fn(),
) -> Result<Collected, Error> {
    let ports = wanted.ports;
    match query.source {
        SourceChoice::Proc => proc_sockets(query, ports, None),
        SourceChoice::Netlink => netlink_sockets(query, wanted, found_some).map_err(|e| match e {
            Error::Netlink { errno, message } if netlink_unavailable(errno) => Error::Netlink {
                errno,
                message: format!("{message}; --source proc reads /proc/net instead"),
            },
            other => other,
        }),
        SourceChoice::Auto => match netlink_sockets(query, wanted, found_some) {
            Ok(collected) => Ok(collected),
            // Whatever netlink gave before it failed is dropped: the
            // answer comes from one source.
            Err(Error::Netlink { errno, message }) if netlink_unavailable(errno) => {
                proc_sockets(query, ports, Some(message))
            }
            Err(other) => Err(other),
        },
    }
}

/// The /proc/net tables, filtered here as the kernel filters a dump.
fn proc_sockets(
    query: &Query,
    ports: &[PortRange],
    fallback: Option<String>,
) -> Result<Collected, Error> {
    let mut sockets = Vec::new();
    let mut skipped = 0;
    // SCTP comes from sock_diag alone (a blind spot here).
    for protocol in query
        .protocols
        .iter()
        .copied()
        .filter(|p| *p != Protocol::Sctp)
    {
        for &family in &query.families {
            let filter = Filter {
                states: wanted_states(query, protocol),
                ports,
                match_remote: query.match_remote,
            };
            skipped +=
                procfs::read_table(&query.proc_root, family, protocol, &filter, &mut sockets)
                    .map_err(|source| Error::Io {
                        path: query
                            .proc_root
                            .thread_path(procfs::table_path(family, protocol)),
                        source,
                    })?;
        }
    }
    Ok(Collected {
        sockets,
        skipped,
        source: SourceKind::Proc,
        fallback,
        sctp_unread: false,
    })
}

/// Which of `sockets`, which `source` gave in this network namespace,
/// are still open: one dump per protocol, on their local ports, from the
/// same source. A socket is still open when one with its inode (and its
/// cookie, where the source gives one) is found; a connection closed
/// since keeps its cookie in TIME_WAIT but loses its inode. None when a
/// dump failed: then nothing is known.
///
/// When every TCP socket asked about is unconnected (a listener or a
/// bound one, as the sockets of a process lsport may not read usually
/// are), the dump asks for the unconnected states only, which the
/// kernel finds without walking its table of connections (every
/// namespace's): a listener that is shut down stays bound, but never
/// connects again.
pub fn still_open<'a>(
    query: &Query,
    source: SourceKind,
    sockets: impl Iterator<Item = &'a Socket> + Clone,
) -> Option<HashSet<(u64, u64)>> {
    let mut found = Vec::new();
    let mut again = query.clone();
    again.match_remote = false;
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let of_protocol = sockets.clone().filter(|s| s.protocol == protocol);
        let ports: Vec<PortRange> = of_protocol
            .clone()
            .map(|s| PortRange::single(s.local.port))
            .collect();
        if ports.is_empty() {
            continue;
        }
        let ports = crate::portspec::normalize(ports);
        again.families = [Family::Inet, Family::Inet6]
            .into_iter()
            .filter(|f| of_protocol.clone().any(|s| s.family == *f))
            .collect();
        match source {
            SourceKind::Netlink => {
                let unconnected = protocol == Protocol::Tcp
                    && of_protocol
                        .clone()
                        .all(|s| UNCONNECTED & (1 << s.state.code()) != 0);
                let stage = Stage {
                    protocol,
                    states: if unconnected {
                        UNCONNECTED
                    } else {
                        netlink::ALL_STATES
                    },
                    ports: &ports,
                    cgroups: None,
                    autobound_only: false,
                };
                let mut session = netlink::Session::default();
                dump_stage(&mut session, &again, &stage, &mut found).ok()?;
            }
            SourceKind::Proc => {
                let filter = Filter {
                    states: netlink::ALL_STATES,
                    ports: &ports,
                    match_remote: false,
                };
                for &family in &again.families {
                    procfs::read_table(&query.proc_root, family, protocol, &filter, &mut found)
                        .ok()?;
                }
            }
        }
    }
    Some(
        found
            .iter()
            .filter(|s| s.inode != 0)
            .map(|s| (s.inode, s.cookie))
            .collect(),
    )
}

/// Whether the calling thread's namespace has SCTP: the kernel's sctp
/// module makes /proc/net/sctp in each namespace.
fn sctp_in_kernel(query: &Query) -> bool {
    query.proc_root.thread_path("net/sctp").exists()
}

/// The SCTP sockets on the ports asked, from sock_diag, into `out`.
/// sctp_diag runs no filter program, so the ports are kept here. False
/// where they could not be read though the kernel has SCTP: a dump
/// without sctp_diag ends in ENOENT, which where the kernel has no SCTP
/// at all hides nothing.
fn dump_sctp(query: &Query, stage: &Stage<'_>, out: &mut Vec<Socket>) -> bool {
    let mut session = netlink::Session::default();
    let mut found = Vec::new();
    for &family in &query.families {
        let request = DumpRequest {
            family,
            protocol: Protocol::Sctp,
            states: stage.states,
            ports: stage.ports.to_vec(),
            match_remote: query.match_remote,
            cgroups: None,
            autobound_only: false,
            half: None,
        };
        if let Err(e) = session.dump(&request, &mut found) {
            return e.errno == Some(libc::ENOENT) && !sctp_in_kernel(query);
        }
    }
    let asked = |port: u16| stage.ports.is_empty() || stage.ports.iter().any(|r| r.contains(port));
    out.extend(
        found
            .into_iter()
            .filter(|s| asked(s.local.port) || (query.match_remote && asked(s.remote.port))),
    );
    true
}

/// What the answer cannot show, given the source and the query.
pub fn blind_spots(source: SourceKind, query: &Query) -> Vec<BlindSpot> {
    let mut spots = Vec::new();
    if source == SourceKind::Proc {
        if query.protocols.contains(&Protocol::Tcp) {
            spots.push(BlindSpot::TcpBoundOnly);
        }
        if query.families.contains(&Family::Inet6) {
            spots.push(BlindSpot::V6Only);
        }
        spots.push(BlindSpot::AutoBound);
        // /proc/net/sctp is of another format, not read.
        if query.protocols.contains(&Protocol::Sctp) && sctp_in_kernel(query) {
            spots.push(BlindSpot::Sctp);
        }
    }
    spots
}

/// The kernel states the view needs, as a state bitmask.
fn wanted_states(query: &Query, protocol: Protocol) -> u32 {
    match (protocol, query.unconnected_only()) {
        (Protocol::Tcp, true) => netlink::TCP_UNCONNECTED,
        (Protocol::Udp, true) => netlink::UDP_UNCONNECTED,
        // An SCTP endpoint listens, or is closed and bound.
        (Protocol::Sctp, true) => netlink::SCTP_UNCONNECTED,
        (_, false) => netlink::ALL_STATES,
    }
}

/// The dumps in order, each a protocol and the states it asks for:
/// listening TCP and UDP first, then the rest of TCP. The kernel finds
/// listeners without walking its tables of connections and of bound
/// ports, walks that take 2-3 ms even on an idle host, so holders of a
/// listener are looked for while they run. (Splitting the rest further
/// would cost more: a dump of bound-only sockets alone still walks the
/// table of connections.)
fn dump_stages(query: &Query) -> Vec<(Protocol, u32)> {
    let mut stages = Vec::new();
    for &protocol in &query.protocols {
        let states = wanted_states(query, protocol);
        match protocol {
            Protocol::Tcp => stages.push((protocol, states & netlink::TCP_LISTENING)),
            Protocol::Udp | Protocol::Sctp => stages.push((protocol, states)),
        }
    }
    if query.protocols.contains(&Protocol::Tcp) {
        let states = wanted_states(query, Protocol::Tcp);
        stages.push((Protocol::Tcp, states & !netlink::TCP_LISTENING));
    }
    stages.retain(|&(_, states)| states != 0);
    stages
}

/// Every dump of `dump_stages`, asking the kernel only for the states
/// the view needs. When the caller needs only to know whether anything
/// matched, the dumps stop after the first stage that found a socket.
fn netlink_sockets(
    query: &Query,
    wanted: &Wanted<'_>,
    found_some: &dyn Fn(),
) -> Result<Collected, Error> {
    let mut sockets = Vec::new();
    let mut skipped = 0;
    let mut sctp_unread = false;
    let mut session = netlink::Session::default();
    for (protocol, states) in dump_stages(query) {
        let stage = Stage {
            protocol,
            states,
            ports: wanted.ports,
            cgroups: wanted.filter.kernel_cgroups(),
            autobound_only: false,
        };
        let start = sockets.len();
        if protocol == Protocol::Sctp {
            sctp_unread |= !dump_sctp(query, &stage, &mut sockets);
        } else {
            skipped += dump_stage(&mut session, query, &stage, &mut sockets)?;
        }
        if wanted.filter.is_active() {
            let mut index = 0;
            sockets.retain(|s| {
                index += 1;
                index <= start || wanted.filter.matches(s)
            });
        }
        if protocol == Protocol::Udp && query.unconnected_only() {
            // A UDP socket whose port the kernel chose waits for no one:
            // left out at once, so that a quiet probe does not stop at
            // it as if it listened.
            mark_autobound_udp(&mut session, query, wanted.ports, &mut sockets[start..]);
            let mut index = 0;
            sockets.retain(|s| {
                index += 1;
                index <= start || s.is_listening()
            });
        }
        if !sockets.is_empty() {
            found_some();
            if query.stop_at_first_match {
                break;
            }
        }
    }
    if !query.stop_at_first_match {
        mark_autobound(&mut session, query, wanted.ports, &mut sockets);
    }
    Ok(Collected {
        sockets,
        skipped,
        source: SourceKind::Netlink,
        fallback: None,
        sctp_unread,
    })
}

/// One dump: a protocol in some states, on the merged ports, in the
/// cgroups a filter asks for.
struct Stage<'a> {
    protocol: Protocol,
    states: u32,
    ports: &'a [PortRange],
    cgroups: Option<&'a [u64]>,
    /// Only the sockets whose port the kernel chose.
    autobound_only: bool,
}

/// The dump of every TCP connection, on a busy host the largest by far,
/// made as two dumps side by side, one for each half of the sockets
/// (bytecode::half): the kernel fills each half's replies on a CPU of
/// its own, and each thread decodes its own. Only for a dump with no
/// other filter, with a CPU to spare. None where it was not done or
/// failed (`sockets` as it was): the caller then makes one dump.
fn dump_tcp_in_halves(
    query: &Query,
    request: &DumpRequest,
    sockets: &mut Vec<Socket>,
) -> Option<usize> {
    let unfiltered =
        request.ports.is_empty() && request.cgroups.is_none() && !request.autobound_only;
    let spare_cpu = crate::sys::usable_cpus() > 1;
    if !unfiltered || request.states & TCP_CONNECTED == 0 || query.stop_at_first_match || !spare_cpu
    {
        return None;
    }
    // The middle of the range the kernel picks ephemeral ports from: the
    // halves are even where those ports are spread over it. Another
    // split only makes them uneven, never wrong.
    let ephemeral = query
        .proc_root
        .read_to_string("sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| crate::ports::parse_port_range_sysctl(&text))
        .unwrap_or(crate::ports::DEFAULT_EPHEMERAL);
    let split = (ephemeral.lo / 2 + ephemeral.hi / 2).max(1);
    let half = |upper| DumpRequest {
        half: Some(netlink::Half { split, upper }),
        ..request.clone()
    };
    let before = sockets.len();
    let (upper, lower) = std::thread::scope(|scope| {
        // A thread starts in the network namespace of the one that
        // starts it: the one being probed.
        let upper = std::thread::Builder::new()
            .spawn_scoped(scope, || {
                let mut found = Vec::new();
                netlink::Session::default()
                    .dump_tcp_both_families(&half(true), &mut found)
                    .map(|skipped| (skipped, found))
            })
            .ok();
        let lower = netlink::Session::default().dump_tcp_both_families(&half(false), sockets);
        (upper.map(|thread| thread.join()), lower)
    });
    match (upper, lower) {
        (Some(Ok(Ok((skipped_upper, mut found)))), Ok(skipped_lower)) => {
            sockets.append(&mut found);
            Some(skipped_upper + skipped_lower)
        }
        _ => {
            sockets.truncate(before);
            None
        }
    }
}

/// TCP states of a socket that is not connected: listening, bound
/// (BOUND_INACTIVE, 6.5+), or closed and still bound (CLOSE, as a
/// listener that was shut down, and bound sockets before 6.5).
const UNCONNECTED: u32 = netlink::TCP_UNCONNECTED | (1 << 7);

/// TCP states of a connection, whichever side opened it.
const TCP_CONNECTED: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 11);

/// Asks the kernel which sockets had their port chosen by it, where the
/// answer decides a role: every UDP socket (an unconnected one whose port
/// the kernel chose is a client, not a listener), and, when ports were
/// asked, the TCP connections with no listener on their port (one that
/// keeps its port lock is a client that bound its port on purpose). One
/// more dump each, filtered to those sockets' ports; a failed one leaves
/// the answer unknown.
fn mark_autobound(
    session: &mut netlink::Session,
    query: &Query,
    ports: &[PortRange],
    sockets: &mut [Socket],
) {
    if sockets
        .iter()
        .any(|s| s.protocol == Protocol::Udp && s.autobound.is_none())
    {
        mark_autobound_udp(session, query, ports, sockets);
    }
    if query.view != View::Ports {
        // Every outgoing connection would be in question: the walk would
        // cost as much as the probe. Roles keep to the port rules.
        return;
    }
    let listening: HashSet<u16> = sockets
        .iter()
        .filter(|s| s.protocol == Protocol::Tcp && s.state == State::Listen)
        .map(|s| s.local.port)
        .collect();
    let in_question = |s: &Socket| {
        s.protocol == Protocol::Tcp
            && TCP_CONNECTED & (1 << s.state.code()) != 0
            && !listening.contains(&s.local.port)
    };
    let their_ports: Vec<PortRange> = sockets
        .iter()
        .filter(|s| in_question(s))
        .map(|s| PortRange::single(s.local.port))
        .collect();
    if their_ports.is_empty() {
        return;
    }
    let their_ports = crate::portspec::normalize(their_ports);
    let mut local_only = query.clone();
    local_only.match_remote = false;
    let stage = Stage {
        protocol: Protocol::Tcp,
        states: TCP_CONNECTED,
        ports: &their_ports,
        cgroups: None,
        autobound_only: true,
    };
    let chosen = cookies(session, &local_only, &stage);
    for socket in sockets.iter_mut().filter(|s| in_question(s)) {
        socket.autobound = chosen.as_ref().map(|c| c.contains(&socket.cookie));
    }
}

/// Marks whether the kernel chose the port of each UDP socket of
/// `sockets`: one dump of the UDP sockets on `ports` whose port it chose.
fn mark_autobound_udp(
    session: &mut netlink::Session,
    query: &Query,
    ports: &[PortRange],
    sockets: &mut [Socket],
) {
    if !sockets.iter().any(|s| s.protocol == Protocol::Udp) {
        return;
    }
    let stage = Stage {
        protocol: Protocol::Udp,
        states: wanted_states(query, Protocol::Udp),
        ports,
        cgroups: None,
        autobound_only: true,
    };
    let chosen = cookies(session, query, &stage);
    for socket in sockets.iter_mut().filter(|s| s.protocol == Protocol::Udp) {
        socket.autobound = chosen.as_ref().map(|c| c.contains(&socket.cookie));
    }
}

/// The cookies of the sockets one stage finds; None if its dump failed.
fn cookies(
    session: &mut netlink::Session,
    query: &Query,
    stage: &Stage<'_>,
) -> Option<HashSet<u64>> {
    let mut found = Vec::new();
    dump_stage(session, query, stage, &mut found).ok()?;
    Some(found.iter().map(|s| s.cookie).collect())
}

/// One protocol in the given states, for every family asked.
fn dump_stage(
    session: &mut netlink::Session,
    query: &Query,
    stage: &Stage<'_>,
    sockets: &mut Vec<Socket>,
) -> Result<usize, Error> {
    let protocol = stage.protocol;
    let request = |family| DumpRequest {
        family,
        protocol,
        states: stage.states,
        ports: stage.ports.to_vec(),
        match_remote: query.match_remote,
        cgroups: stage.cgroups.map(<[u64]>::to_vec),
        autobound_only: stage.autobound_only,
        half: None,
    };
    // Both TCP families in one walk of the kernel's tables when the
    // kernel takes the request; family by family otherwise.
    if protocol == Protocol::Tcp && query.families.len() == 2 {
        if let Some(skipped) = dump_tcp_in_halves(query, &request(Family::Inet), sockets) {
            return Ok(skipped);
        }
        if let Ok(skipped) = session.dump_tcp_both_families(&request(Family::Inet), sockets) {
            return Ok(skipped);
        }
    }
    let mut skipped = 0;
    for &family in &query.families {
        skipped += session.dump(&request(family), sockets).map_err(|e| {
            let hint = match e.errno {
                Some(libc::EPROTONOSUPPORT | libc::ENOENT) => {
                    " (is the kernel's inet_diag / tcp_diag / udp_diag support loaded?)"
                }
                Some(libc::EPERM | libc::EACCES) => " (netlink sockets are refused here)",
                _ => "",
            };
            Error::Netlink {
                errno: e.errno,
                message: format!(
                    "{e} while asking for {} {} sockets{hint}",
                    protocol.name(),
                    family_name(family)
                ),
            }
        })?;
    }
    Ok(skipped)
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Inet => "IPv4",
        Family::Inet6 => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn stages(query: Query) -> Vec<(Protocol, u32)> {
        dump_stages(&query)
    }

    fn only(mut query: Query, protocol: Protocol) -> Query {
        query.protocols = vec![protocol];
        query
    }

    const LISTEN: u32 = netlink::TCP_LISTENING;

    #[test]
    fn listeners_and_udp_come_before_the_walk_of_connections() {
        let rest = netlink::ALL_STATES & !LISTEN;
        assert_eq!(
            stages(Query::ports([PortRange::single(22)])),
            vec![
                (Protocol::Tcp, LISTEN),
                (Protocol::Udp, netlink::ALL_STATES),
                (Protocol::Tcp, rest),
            ]
        );
        // Every TCP state is asked for exactly once.
        assert_eq!(LISTEN | rest, netlink::ALL_STATES);
        assert_eq!(LISTEN & rest, 0);
    }

    #[test]
    fn the_stages_follow_the_view_and_the_protocols() {
        let bound_only = netlink::TCP_UNCONNECTED & !LISTEN;
        assert_eq!(
            stages(only(Query::listening(), Protocol::Tcp)),
            vec![(Protocol::Tcp, LISTEN), (Protocol::Tcp, bound_only)]
        );
        assert_eq!(
            stages(only(Query::ports([PortRange::single(53)]), Protocol::Udp)),
            vec![(Protocol::Udp, netlink::ALL_STATES)]
        );
        assert_eq!(
            stages({
                let mut query = only(Query::ports([PortRange::single(80)]), Protocol::Tcp);
                query.listening_only = true;
                query
            }),
            vec![(Protocol::Tcp, LISTEN), (Protocol::Tcp, bound_only)]
        );
    }
}
