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
/// from /proc/net where sock_diag is refused or missing.
pub fn sockets(settings: &Settings) -> Result<Collected, String> {
    match settings.source {
        SourceChoice::Proc => proc_sockets(settings, None),
        SourceChoice::Netlink => netlink_sockets(settings).map_err(|f| {
            if netlink_unavailable(f.errno) {
                format!("{}; --source proc reads /proc/net instead", f.message)
            } else {
                f.message
            }
        }),
        SourceChoice::Auto => match netlink_sockets(settings) {
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

/// One dump per family and protocol, asking the kernel only for the
/// states the view needs.
fn netlink_sockets(settings: &Settings) -> Result<Collected, NetlinkFailure> {
    let mut sockets = Vec::new();
    let mut skipped = 0;
    for &protocol in &settings.protocols {
        let states = wanted_states(settings, protocol);
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
            if let Ok(n) = netlink::dump_tcp_both_families(&request(Family::Inet), &mut sockets) {
                skipped += n;
                continue;
            }
        }
        for &family in &settings.families {
            skipped += netlink::dump(&request(family), &mut sockets).map_err(|e| {
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
    }
    Ok(Collected {
        sockets,
        skipped,
        source: SourceKind::Netlink,
        fallback: None,
    })
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Inet => "IPv4",
        Family::Inet6 => "IPv6",
    }
}
