//! The stages in order: sources -> model -> join -> render.

use std::collections::{HashMap, HashSet};

use crate::cli::{NetnsChoice, Settings, SuggestSettings};
use crate::collect::{self, Collected};
use crate::container::{self, Container};
use crate::netns::{self, NetnsLabel};
use crate::overlap;
use crate::owners;
use crate::ports::KernelPortPolicy;
use crate::report::{self, Inputs, Report};
use crate::services::Services;
use crate::suggest::{self, SuggestQuery};
use crate::sys::ProcRoot;
use crate::users::UserNames;

/// What one namespace gave before holders are known: its label, its
/// port policy and its sockets.
struct Gathered {
    netns: NetnsLabel,
    policy: KernelPortPolicy,
    collected: Collected,
}

/// The probe, one report per network namespace asked for. Sockets and
/// port facts come from inside each namespace; holders come from one
/// /proc scan for all of them.
pub fn probe(settings: &Settings) -> Result<Probe, String> {
    let root = &settings.proc_root;
    // The /proc scan runs while the namespaces are dumped, from the
    // first socket found (see overlap.rs).
    let ((gathered, skipped), scan) = overlap::scan_while(root, |found_some| {
        let (gathered, skipped) = gather_namespaces(settings, found_some)?;
        let wanted: HashSet<u64> = gathered
            .iter()
            .flat_map(|g| g.collected.sockets.iter().map(|s| s.inode))
            .filter(|i| *i != 0)
            .collect();
        Ok::<_, String>(((gathered, skipped), wanted))
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

    let reports = gathered
        .into_iter()
        .map(|g| {
            let Collected {
                sockets,
                skipped: skipped_replies,
                source,
                fallback,
            } = g.collected;
            report::build(Inputs {
                view: settings.view,
                asked: &settings.asked,
                ports: &settings.ports,
                match_remote: settings.match_remote,
                listening_only: settings.listening_only,
                protocols: &settings.protocols,
                families: &settings.families,
                netns: g.netns,
                policy: g.policy,
                sockets,
                scan: &scan,
                processes: &processes,
                users: &users,
                services: &settings.services,
                skipped_replies,
                source,
                blind_spots: collect::blind_spots(source, settings),
                fallback,
            })
        })
        .collect();
    Ok(Probe { reports, skipped })
}

/// The reports, and the namespaces that could not be probed.
pub struct Probe {
    pub reports: Vec<Report>,
    pub skipped: Vec<String>,
}

impl Probe {
    pub fn any_match(&self) -> bool {
        self.reports.iter().any(Report::any_match)
    }
}

/// Sockets and port policy of each namespace asked for, each read from
/// inside it. With --all-netns a namespace that cannot be entered is
/// skipped with a reason (its last process exited: quietly).
/// `found_some` is called once a namespace has sockets to find holders for.
fn gather_namespaces(
    settings: &Settings,
    found_some: &(dyn Fn() + Sync),
) -> Result<(Vec<Gathered>, Vec<String>), String> {
    let root = &settings.proc_root;
    match &settings.netns {
        NetnsChoice::Current => Ok((
            vec![gather(settings, NetnsLabel::default(), found_some)?],
            Vec::new(),
        )),
        NetnsChoice::One(path) => {
            let label = NetnsLabel {
                name: name_of_file(path),
                ..NetnsLabel::default()
            };
            let gathered = netns::run_in(path, None, || gather(settings, label, found_some))??;
            Ok((vec![gathered], Vec::new()))
        }
        NetnsChoice::All => {
            let mut gathered = Vec::new();
            let mut skipped = Vec::new();
            let own = root.own_netns_inode();
            for namespace in netns::discover(root) {
                let label = NetnsLabel {
                    inode: Some(namespace.inode),
                    name: namespace.name.clone().or(namespace.docker_sandbox.clone()),
                    container: first_container(root, &namespace.pids),
                };
                // lsport's own namespace needs no setns (nor its privilege).
                if Some(namespace.inode) == own {
                    gathered.push(gather(settings, label, found_some)?);
                    continue;
                }
                match netns::run_in(&namespace.path, Some(namespace.inode), || {
                    gather(settings, label, found_some)
                }) {
                    Ok(Ok(g)) => gathered.push(g),
                    Ok(Err(message)) => {
                        skipped.push(format!("net:[{}]: {message}", namespace.inode))
                    }
                    Err(netns::EnterError::Gone) => {}
                    Err(netns::EnterError::Refused(message)) => skipped.push(message),
                }
            }
            let root_user = nix::unistd::geteuid().is_root();
            if !root_user && gathered.len() <= 1 {
                return Err(format!(
                    "--all-netns needs root (CAP_SYS_ADMIN to enter other network namespaces, CAP_SYS_PTRACE to find them); {} could not be entered",
                    skipped.len()
                ));
            }
            Ok((gathered, skipped))
        }
    }
}

/// One namespace, from a thread inside it.
fn gather(
    settings: &Settings,
    mut netns: NetnsLabel,
    found_some: &(dyn Fn() + Sync),
) -> Result<Gathered, String> {
    let root = &settings.proc_root;
    netns.inode = netns.inode.or_else(|| root.own_netns_inode());
    Ok(Gathered {
        netns,
        policy: KernelPortPolicy::read(root),
        collected: collect::sockets(settings, found_some)?,
    })
}

/// An ip-netns name, for a namespace given as a file under /run/netns.
fn name_of_file(path: &std::path::Path) -> Option<String> {
    (path.parent() == Some(std::path::Path::new(netns::IP_NETNS_DIR)))
        .then(|| path.file_name()?.to_str().map(str::to_string))
        .flatten()
}

/// The container the namespace's processes belong to, from the first
/// few of them that name one.
fn first_container(root: &ProcRoot, pids: &[u32]) -> Option<Container> {
    pids.iter().take(16).find_map(|pid| {
        let text = std::fs::read_to_string(root.path(&format!("{pid}/cgroup"))).ok()?;
        container::from_proc_cgroup(&text)
    })
}

/// Ports safe for a new service, given every socket of the namespace.
/// With several namespaces, a port in use in any of them is not safe,
/// and the first namespace's policy (lsport's own, or the one asked
/// for) decides what is ephemeral.
pub fn suggest_ports(task: &SuggestSettings, probe: &Probe, services: &Services) -> Vec<u16> {
    let in_use: HashSet<u16> = probe
        .reports
        .iter()
        .flat_map(|r| r.rows.iter().map(|row| row.socket.local.port))
        .collect();
    let Some(report) = probe.reports.first() else {
        return Vec::new();
    };
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
