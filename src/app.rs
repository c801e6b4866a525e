//! The stages in order: sources -> model -> join -> render.

use std::collections::{HashMap, HashSet};

use crate::cli::{Settings, SuggestSettings};
use crate::collect::{self, Collected};
use crate::owners;
use crate::ports::KernelPortPolicy;
use crate::report::{self, Inputs, Report};
use crate::services::Services;
use crate::suggest::{self, SuggestQuery};
use crate::users::UserNames;

pub fn probe(settings: &Settings) -> Result<Report, String> {
    let root = &settings.proc_root;
    let policy = KernelPortPolicy::read(root);
    let netns_inode = root.own_netns_inode();

    let Collected {
        sockets,
        skipped: skipped_replies,
        source,
        fallback,
    } = collect::sockets(settings)?;

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
        services: &settings.services,
        skipped_replies,
        source,
        blind_spots: collect::blind_spots(source, settings),
        fallback,
    }))
}

/// Ports safe for a new service, given every socket of the namespace.
pub fn suggest_ports(task: &SuggestSettings, report: &Report, services: &Services) -> Vec<u16> {
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
        // IANA's registrations, "Reserved" included, and local names.
        &|p| !services.on_port(p).is_empty(),
    )
}
