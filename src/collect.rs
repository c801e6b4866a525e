//! Which source answers: sock_diag first, the /proc/net tables where
//! sock_diag is refused or missing (`--source auto`), or the one the
//! user named.

use crate::cli::{Settings, SourceChoice, View};
use crate::socket::{Family, Protocol, Socket};
use crate::source::netlink::{self, DumpRequest};
use crate::source::procfs::{self, Filter};
use crate::source::{BlindSpot, SourceKind, netlink_unavailable};

/// The sockets one source gave.
pub struct Collected {
    pub sockets: Vec<Socket>,
    pub skipped: usize,
    pub source: SourceKind,
    /// Why sock_diag was given up for /proc, when it was.
    pub fallback: Option<String>,
}

/// Why a netlink dump failed: the message for the user, and the errno
/// that decides whether /proc may stand in.
struct NetlinkFailure {
    errno: Option<i32>,
    message: String,
}

/// Sockets from the source asked for; with `auto`, from sock_diag, or
/// from /proc/net where sock_diag is refused or missing. `found_some` is
/// called as soon as some socket is known (and maybe more than once), so
/// that the search for holders can start.
pub fn sockets(settings: &Settings, found_some: &dyn Fn()) -> Result<Collected, String> {
    let collected = from_source(settings, found_some)?;
    if !collected.sockets.is_empty() {
        found_some();
    }
    Ok(collected)
}

fn from_source(settings: &Settings, found_some: &dyn Fn()) -> Result<Collected, String> {
    match settings.source {
        SourceChoice::Proc => proc_sockets(settings, None),
        SourceChoice::Netlink => netlink_sockets(settings, found_some).map_err(|f| {
            if netlink_unavailable(f.errno) {
                format!("{}; --source proc reads /proc/net instead", f.message)
            } else {
                f.message
            }
        }),
        SourceChoice::Auto => match netlink_sockets(settings, found_some) {
            Ok(collected) => Ok(collected),
            // Whatever netlink gave before it failed is dropped: the
            // answer comes from one source.
            Err(failure) if netlink_unavailable(failure.errno) => {
                proc_sockets(settings, Some(failure.message))
            }
            Err(failure) => Err(failure.message),
        },
    }
}

/// The /proc/net tables, filtered here as the kernel filters a dump.
fn proc_sockets(settings: &Settings, fallback: Option<String>) -> Result<Collected, String> {
    let mut sockets = Vec::new();
    let mut skipped = 0;
    for &protocol in &settings.protocols {
        for &family in &settings.families {
            let filter = Filter {
                states: wanted_states(settings, protocol),
                ports: &settings.ports,
                match_remote: settings.match_remote,
            };
            skipped +=
                procfs::read_table(&settings.proc_root, family, protocol, &filter, &mut sockets)
                    .map_err(|e| {
                        let path = settings
                            .proc_root
                            .thread_path(procfs::table_path(family, protocol));
                        format!("reading {}: {e}", path.display())
                    })?;
        }
    }
    Ok(Collected {
        sockets,
        skipped,
        source: SourceKind::Proc,
        fallback,
    })
}

/// What the answer cannot show, given the source and the query.
pub fn blind_spots(source: SourceKind, settings: &Settings) -> Vec<BlindSpot> {
    let mut spots = Vec::new();
    if source == SourceKind::Proc {
        if settings.protocols.contains(&Protocol::Tcp) {
            spots.push(BlindSpot::TcpBoundOnly);
        }
        if settings.families.contains(&Family::Inet6) {
            spots.push(BlindSpot::V6Only);
        }
    }
    spots
}

/// The kernel states the view needs, as a state bitmask.
fn wanted_states(settings: &Settings, protocol: Protocol) -> u32 {
    let listening = settings.view == View::Listening || settings.listening_only;
    match (protocol, listening) {
        (Protocol::Tcp, true) => netlink::TCP_UNCONNECTED,
        (Protocol::Udp, true) => netlink::UDP_UNCONNECTED,
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
fn dump_stages(settings: &Settings) -> Vec<(Protocol, u32)> {
    let mut stages = Vec::new();
    for &protocol in &settings.protocols {
        let states = wanted_states(settings, protocol);
        match protocol {
            Protocol::Tcp => stages.push((protocol, states & netlink::TCP_LISTENING)),
            Protocol::Udp => stages.push((protocol, states)),
        }
    }
    if settings.protocols.contains(&Protocol::Tcp) {
        let states = wanted_states(settings, Protocol::Tcp);
        stages.push((Protocol::Tcp, states & !netlink::TCP_LISTENING));
    }
    stages.retain(|&(_, states)| states != 0);
    stages
}

/// Every dump of `dump_stages`, asking the kernel only for the states
/// the view needs.
fn netlink_sockets(
    settings: &Settings,
    found_some: &dyn Fn(),
) -> Result<Collected, NetlinkFailure> {
    let mut sockets = Vec::new();
    let mut skipped = 0;
    let mut session = netlink::Session::default();
    for (protocol, states) in dump_stages(settings) {
        skipped += dump_stage(&mut session, settings, protocol, states, &mut sockets)?;
        if !sockets.is_empty() {
            found_some();
        }
    }
    Ok(Collected {
        sockets,
        skipped,
        source: SourceKind::Netlink,
        fallback: None,
    })
}

/// One protocol in the given states, for every family asked.
fn dump_stage(
    session: &mut netlink::Session,
    settings: &Settings,
    protocol: Protocol,
    states: u32,
    sockets: &mut Vec<Socket>,
) -> Result<usize, NetlinkFailure> {
    let request = |family| DumpRequest {
        family,
        protocol,
        states,
        ports: settings.ports.clone(),
        match_remote: settings.match_remote,
    };
    // Both TCP families in one walk of the kernel's tables when the
    // kernel takes the request; family by family otherwise.
    if protocol == Protocol::Tcp && settings.families.len() == 2 {
        if let Ok(skipped) = session.dump_tcp_both_families(&request(Family::Inet), sockets) {
            return Ok(skipped);
        }
    }
    let mut skipped = 0;
    for &family in &settings.families {
        skipped += session.dump(&request(family), sockets).map_err(|e| {
            let hint = match e.errno {
                Some(libc::EPROTONOSUPPORT | libc::ENOENT) => {
                    " (is the kernel's inet_diag / tcp_diag / udp_diag support loaded?)"
                }
                Some(libc::EPERM | libc::EACCES) => " (netlink sockets are refused here)",
                _ => "",
            };
            NetlinkFailure {
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
    use crate::cli::Args;
    use clap::Parser;

    fn stages(args: &[&str]) -> Vec<(Protocol, u32)> {
        let argv = std::iter::once("lsport").chain(args.iter().copied());
        dump_stages(&Args::parse_from(argv).into_settings().unwrap())
    }

    const LISTEN: u32 = netlink::TCP_LISTENING;

    #[test]
    fn listeners_and_udp_come_before_the_walk_of_connections() {
        let rest = netlink::ALL_STATES & !LISTEN;
        assert_eq!(
            stages(&["22"]),
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
            stages(&["--tcp"]),
            vec![(Protocol::Tcp, LISTEN), (Protocol::Tcp, bound_only)]
        );
        assert_eq!(
            stages(&["-u", "53"]),
            vec![(Protocol::Udp, netlink::ALL_STATES)]
        );
        assert_eq!(
            stages(&["-l", "-t", "80"]),
            vec![(Protocol::Tcp, LISTEN), (Protocol::Tcp, bound_only)]
        );
    }
}
