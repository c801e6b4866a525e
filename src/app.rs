//! The stages in order: sources -> model -> join -> render.

use std::collections::{HashMap, HashSet};

use crate::cli::{Settings, View};
use crate::overlap;
use crate::owners;
use crate::ports::KernelPortPolicy;
use crate::report::{self, Inputs, Report};
use crate::socket::{Family, Protocol, Socket};
use crate::source::netlink::{self, DumpRequest};
use crate::users::UserNames;

pub fn probe(settings: &Settings) -> Result<Report, String> {
    let root = &settings.proc_root;
    let policy = KernelPortPolicy::read(root);
    let netns_inode = root.own_netns_inode();

    // The /proc scan runs while the sockets are dumped (see overlap.rs).
    let ((sockets, skipped_replies), scan) = overlap::scan_while(root, || {
        let (sockets, skipped) = collect_sockets(settings)?;
        let wanted: HashSet<u64> = sockets
            .iter()
            .map(|s| s.inode)
            .filter(|i| *i != 0)
            .collect();
        Ok::<_, String>(((sockets, skipped), wanted))
    })?;
    let pids = scan.holding_pids();
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
