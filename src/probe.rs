//! The probe: sources -> model -> join. Sockets and port facts come
//! from inside each network namespace asked for; holders come from one
//! /proc scan for all of them, and only when the query wants them.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::cgroups::{CgroupTree, Hierarchy, SocketCgroup};
use crate::collect::{self, Collected};
use crate::container::{self, Container};
use crate::error::Error;
use crate::filter::{self, SocketFilter};
use crate::hidepid;
use crate::netns::{self, NetnsLabel};
use crate::overlap;
use crate::owners::{self, FdScan};
use crate::ports::KernelPortPolicy;
use crate::query::{CgroupDetail, HolderDetail, NetnsChoice, Query};
use crate::report::{self, Inputs, NamespaceReport, Report, Row};
use crate::socket::{Socket, State};
use crate::sys::ProcRoot;
use crate::users::UserNames;

/// What one namespace gave before holders are known: its label, its
/// port policy and its sockets.
struct Gathered {
    netns: NetnsLabel,
    policy: KernelPortPolicy,
    collected: Collected,
}

/// Answers `query`: one report per network namespace asked for, with
/// the namespaces that could not be probed.
pub fn probe(query: &Query) -> Result<Report, Error> {
    let root = &query.proc_root;
    let (filter, filter_tree) = filter::prepare(query)?;
    let filter = &filter;
    let ((gathered, skipped), scan) = match query.holders {
        HolderDetail::None => (gather_namespaces(query, filter, &|| {})?, FdScan::default()),
        // The /proc scan runs while the namespaces are dumped, from the
        // first socket found (see overlap.rs).
        HolderDetail::Processes => overlap::scan_while(root, |found_some| {
            let (gathered, skipped) = gather_namespaces(query, filter, found_some)?;
            let wanted: HashSet<u64> = gathered
                .iter()
                .flat_map(|g| g.collected.sockets.iter().map(|s| s.inode))
                .filter(|i| *i != 0)
                .collect();
            Ok::<_, Error>(((gathered, skipped), wanted))
        })?,
    };
    let mut scan = scan;
    let mut proc_restriction = None;
    if query.holders == HolderDetail::Processes {
        let sockets = || gathered.iter().flat_map(|g| g.collected.sockets.iter());
        proc_restriction = complete_scan(root, sockets, &mut scan);
    }
    let holders = HolderNames::of(query, &scan);
    let mut namespaces: Vec<NamespaceReport> = gathered
        .into_iter()
        .map(|g| {
            let Collected {
                sockets,
                skipped: skipped_replies,
                source,
                fallback,
            } = g.collected;
            report::build(Inputs {
                query,
                netns: g.netns,
                policy: g.policy,
                sockets,
                scan: &scan,
                processes: &holders.processes,
                users: &holders.users,
                skipped_replies,
                source,
                blind_spots: collect::blind_spots(source, query),
                fallback,
            })
        })
        .collect();
    name_cgroups(query, &mut namespaces, filter_tree);
    Ok(Report {
        namespaces,
        skipped,
        holders: query.holders,
        proc_restriction,
    })
}

/// Names the cgroups of the rows the query wants named: one walk of the
/// cgroup v2 hierarchy (none when a filter walked it already), which
/// stops once every id is found, and none at all when no row needs it.
fn name_cgroups(query: &Query, namespaces: &mut [NamespaceReport], tree: Option<CgroupTree>) {
    let wants = |row: &Row| match query.cgroups {
        CgroupDetail::None => false,
        CgroupDetail::Hidden => row.holders_hidden,
        CgroupDetail::All => true,
    };
    let rows = || namespaces.iter().flat_map(|n| n.rows.iter());
    let wanted: HashSet<u64> = rows()
        .filter(|r| wants(r))
        .filter_map(|r| r.socket.cgroup_id.map(std::num::NonZeroU64::get))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let tree = match tree {
        Some(tree) => tree,
        None => match Hierarchy::locate(&query.proc_root) {
            Some(hierarchy) => hierarchy.walk(Some(&wanted)),
            // No hierarchy to name them in: the ids alone name nothing.
            None => return,
        },
    };
    let named: HashMap<u64, Rc<SocketCgroup>> = wanted
        .into_iter()
        .map(|id| (id, Rc::new(SocketCgroup::new(id, tree.path(id)))))
        .collect();
    for row in namespaces.iter_mut().flat_map(|n| n.rows.iter_mut()) {
        if wants(row) {
            row.cgroup = row
                .socket
                .cgroup_id
                .and_then(|id| named.get(&id.get()).cloned());
        }
    }
}

/// Finds the holders of `rows` that a probe made without them
/// ([`HolderDetail::None`]): one /proc scan for just their sockets. A
/// command that shows holders for a few sockets of many (`lsport
/// ephemeral` names those of its risky listeners) reads no more than it
/// shows.
pub fn find_holders(query: &Query, rows: &mut [Row]) {
    let wanted: HashSet<u64> = rows
        .iter()
        .map(|r| r.socket.inode)
        .filter(|i| *i != 0)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let Ok(((), mut scan)) = overlap::scan_while(&query.proc_root, |_| {
        Ok::<_, std::convert::Infallible>(((), wanted))
    });
    complete_scan(
        &query.proc_root,
        || rows.iter().map(|r| &r.socket),
        &mut scan,
    );
    let holders = HolderNames::of(query, &scan);
    report::attach_holders(rows, &scan, &holders.processes, &holders.users);
}

/// What the first pass left: the threads' own fd tables are searched for
/// sockets without a holder, and if some are still without one, the
/// mount options of /proc say whether it hides processes (hidepid), whose
/// holders the scan then counts as hidden. When every socket has its
/// holder, the mount table is not read.
fn complete_scan<'a, I: Iterator<Item = &'a Socket>>(
    root: &ProcRoot,
    sockets: impl Fn() -> I,
    scan: &mut FdScan,
) -> Option<hidepid::ProcRestriction> {
    let leftover = sockets_without_holders(sockets(), scan);
    if leftover.is_empty() {
        return None;
    }
    let more = owners::scan_threads(root, &leftover, &scan.unreadable_processes);
    scan.add(more);
    if sockets_without_holders(sockets(), scan).is_empty() {
        return None;
    }
    let restriction = hidepid::detect(root);
    // Processes hidepid hides are not even listed: no fd table was
    // refused, yet holders may be missing.
    scan.processes_hidden = restriction
        .as_ref()
        .is_some_and(hidepid::ProcRestriction::hides_processes);
    restriction
}

/// Sockets a file refers to (TIME_WAIT and request sockets have none)
/// that the scan found no holder of.
fn sockets_without_holders<'a>(
    sockets: impl Iterator<Item = &'a Socket>,
    scan: &FdScan,
) -> HashSet<u64> {
    sockets
        .filter(|s| s.inode != 0 && s.state != State::TimeWait)
        .filter(|s| scan.holders(s.inode).is_empty())
        .map(|s| s.inode)
        .collect()
}

/// What is known about the processes a scan found, and their users.
struct HolderNames {
    processes: HashMap<u32, owners::ProcessInfo>,
    users: UserNames,
}

impl HolderNames {
    fn of(query: &Query, scan: &FdScan) -> HolderNames {
        let processes: HashMap<u32, owners::ProcessInfo> = scan
            .holding_pids()
            .into_iter()
            .map(|pid| (pid, owners::process_info(&query.proc_root, pid)))
            .collect();
        // A hidden holder shows as its socket's owner, named too.
        let users = if !query.user_names || (processes.is_empty() && !scan.may_hide_holders()) {
            UserNames::none()
        } else {
            UserNames::load("/etc/passwd")
        };
        HolderNames { processes, users }
    }
}

/// Sockets and port policy of each namespace asked for, each read from
/// inside it. With --all-netns a namespace that cannot be entered is
/// skipped with a reason (its last process exited: quietly).
/// `found_some` is called once a namespace has sockets to find holders for.
fn gather_namespaces(
    query: &Query,
    filter: &SocketFilter,
    found_some: &(dyn Fn() + Sync),
) -> Result<(Vec<Gathered>, Vec<String>), Error> {
    let root = &query.proc_root;
    match &query.netns {
        NetnsChoice::Current => Ok((
            vec![gather(query, filter, NetnsLabel::default(), found_some)?],
            Vec::new(),
        )),
        NetnsChoice::One(path) => {
            let label = NetnsLabel {
                name: name_of_file(path),
                ..NetnsLabel::default()
            };
            let gathered = netns::run_in(path, None, || gather(query, filter, label, found_some))
                .map_err(|e| e.into_error(path))??;
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
                    gathered.push(gather(query, filter, label, found_some)?);
                    continue;
                }
                match netns::run_in(&namespace.path, Some(namespace.inode), || {
                    gather(query, filter, label, found_some)
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
                return Err(Error::usage(format!(
                    "--all-netns needs root (CAP_SYS_ADMIN to enter other network namespaces, CAP_SYS_PTRACE to find them); {} could not be entered",
                    skipped.len()
                )));
            }
            Ok((gathered, skipped))
        }
    }
}

/// One namespace, from a thread inside it.
fn gather(
    query: &Query,
    filter: &SocketFilter,
    mut netns: NetnsLabel,
    found_some: &(dyn Fn() + Sync),
) -> Result<Gathered, Error> {
    let root = &query.proc_root;
    netns.inode = netns.inode.or_else(|| root.own_netns_inode());
    if netns.name.is_none() {
        netns.name = netns.inode.and_then(netns::ip_netns_name);
    }
    Ok(Gathered {
        netns,
        policy: KernelPortPolicy::read(root),
        collected: collect::sockets(query, filter, found_some)?,
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
        let path = root.path(&format!("{pid}/cgroup"));
        let bytes = crate::files::read_at_most(&path, 64 << 10).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        container::from_proc_cgroup(&text)
    })
}
