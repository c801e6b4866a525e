//! The stages in order: sources -> model -> join -> render.

use std::collections::{HashMap, HashSet};

use crate::cli::{Settings, SuggestSettings, View};
use crate::owners;
use crate::ports::KernelPortPolicy;
use crate::report::{self, Inputs, Report};
use crate::socket::{Family, Protocol, Socket};
use crate::source::netlink::{self, DumpRequest};
use crate::suggest::{self, SuggestQuery};
use crate::users::UserNames;

pub fn probe(settings: &Settings) -> Result<Report, String> {
    let root = &settings.proc_root;
    let policy = KernelPortPolicy::read(root);
    let netns_inode = root.own_netns_inode();

    let (sockets, skipped_replies) = collect_sockets(settings)?;

    let wanted: HashSet<u64> = sockets
        .iter()
        .map(|s| s.inode)
        .filter(|i| *i != 0)
        .collect();
    let scan = owners::scan(root, &wanted);
    let mut pids: Vec<u32> = scan.by_inode.values().flatten().map(|r| r.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    let processes: HashMap<u32, owners::ProcessInfo> = pids
        .into_iter()
        .map(|pid| (pid, owners::process_info(root, pid)))
        .collect();
    let users = if settings.numeric || processes.is_empty() {
        UserNames::none()
    } else {
        UserNames::load("/etc/passwd")
    };

    Ok(report::build(Inputs {
        view: settings.view,
        asked: &settings.asked,
        ports: &settings.ports,
        match_remote: settings.match_remote,
        listening_only: settings.listening_only,
        protocols: &settings.protocols,
        families: &settings.families,
        netns_inode,
        policy,
        sockets,
        scan: &scan,
        processes: &processes,
        users: &users,
        skipped_replies,
    }))
}

/// Ports safe for a new service, given every socket of the namespace.
pub fn suggest_ports(task: &SuggestSettings, report: &Report) -> Vec<u16> {
    let in_use: HashSet<u16> = report.rows.iter().map(|r| r.socket.local.port).collect();
    let query = SuggestQuery {
        count: task.count,
        near: task.near,
        within: task.within,
        allow_privileged: task.allow_privileged,
    };
    suggest::suggest(
        &query,
        &report.policy,
        &|p| in_use.contains(&p),
        &iana_registered,
    )
}

fn iana_registered(_port: u16) -> bool {
    false
}

/// One dump per family and protocol, asking the kernel only for the
/// states the view needs.
fn collect_sockets(settings: &Settings) -> Result<(Vec<Socket>, usize), String> {
    let listening = settings.view == View::Listening || settings.listening_only;
    let mut sockets = Vec::new();
    let mut skipped = 0;
    for &protocol in &settings.protocols {
        let states = match (protocol, listening) {
            (Protocol::Tcp, true) => netlink::TCP_UNCONNECTED,
            (Protocol::Udp, true) => netlink::UDP_UNCONNECTED,
            (_, false) => netlink::ALL_STATES,
        };
        for &family in &settings.families {
            let request = DumpRequest {
                family,
                protocol,
                states,
                ports: settings.ports.clone(),
                match_remote: settings.match_remote,
            };
            skipped += netlink::dump(&request, &mut sockets).map_err(|e| {
                let hint = match e.errno {
                    Some(libc::EPROTONOSUPPORT | libc::ENOENT) => {
                        " (is the kernel's inet_diag / tcp_diag / udp_diag support loaded?)"
                    }
                    Some(libc::EPERM | libc::EACCES) => " (netlink sockets are refused here)",
                    _ => "",
                };
                format!(
                    "{e} while asking for {} {} sockets{hint}",
                    protocol.name(),
                    family_name(family)
                )
            })?;
        }
    }
    Ok((sockets, skipped))
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Inet => "IPv4",
        Family::Inet6 => "IPv6",
    }
}
