//! The probe: sources -> model -> join. Sockets and port facts come
//! from inside each network namespace asked for; holders come from one
//! walk for all of them (the kernel's, or /proc's), and only when the
//! query wants them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::collect::{self, Collected};
use crate::error::Error;
use crate::filter::{self, SocketFilter};
use crate::forwards::{self, ForwardScan, Unreadable};
use crate::holders::HolderWalk;
use crate::holders::cgroups::{CgroupTree, Hierarchy, SocketCgroup};
use crate::holders::container;
use crate::holders::hidepid;
use crate::holders::procfs::{self, FdScan};
use crate::holders::search::HolderSearch;
use crate::holders::unseen::Unseen;
use crate::holders::users::UserNames;
use crate::netns::{self, NetnsLabel};
use crate::ports::KernelPortPolicy;
use crate::query::{CgroupDetail, ForwardingRules, HolderDetail, NetnsChoice, Query};
use crate::report::{
    self, ForwardTarget, Inputs, NamespaceReport, Report, Row, TargetListeners, TargetSockets,
};
use crate::socket::{PortRange, Protocol, Socket, State};
use crate::sys::ProcRoot;

/// What one namespace gave before holders are known: its label, its
/// port policy and its sockets.
struct Gathered {
    netns: NetnsLabel,
    policy: KernelPortPolicy,
    collected: Collected,
    /// The namespace's forwarding rules, where the query reads them.
    rules: Option<ForwardScan>,
    /// How to enter the namespace again (its file, and its inode when
    /// found by discovery); None for lsport's own.
    entry: Option<(PathBuf, Option<u64>)>,
}

impl Gathered {
    /// Which of `sockets` of this namespace are still open, asked from
    /// inside it; None when that cannot be known.
    fn still_open(&self, query: &Query, sockets: Vec<Socket>) -> Option<HashSet<(u64, u64)>> {
        let source = self.collected.source;
        let ask = move || collect::still_open(query, source, sockets.iter());
        match &self.entry {
            None => ask(),
            Some((path, inode)) => netns::run_in(path, *inode, ask).ok().flatten(),
        }
    }
}

/// Answers `query`: one report per network namespace asked for, with
/// the namespaces that could not be probed.
pub fn probe(query: &Query) -> Result<Report, Error> {
    let root = &query.proc_root;
    let (filter, filter_tree) = filter::prepare(query)?;
    let filter = &filter;
    let mut search = HolderSearch::plan(query);
    let ((gathered, skipped), scan) = match query.holders {
        HolderDetail::None => (gather_namespaces(query, filter, &|| {})?, FdScan::default()),
        // The holders are searched for while the namespaces are dumped,
        // from the first socket found (see holders/search.rs).
        HolderDetail::Processes => search.run_while(query, |found_some| {
            let (gathered, skipped) = gather_namespaces(query, filter, found_some)?;
            let wanted = wanted_inodes(&gathered);
            Ok::<_, Error>(((gathered, skipped), wanted))
        })?,
    };
    let mut scan = scan;
    let mut gathered = gathered;
    let mut proc_restriction = None;
    if query.holders == HolderDetail::Processes {
        proc_restriction = settle_leftovers(query, search.from, &mut gathered, &mut scan);
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
                sctp_unread,
            } = g.collected;
            let mut blind_spots = collect::blind_spots(source, query);
            if sctp_unread {
                blind_spots.push(crate::source::BlindSpot::Sctp);
            }
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
                blind_spots,
                fallback,
                rules: g.rules,
            })
        })
        .collect();
    name_cgroups(query, &mut namespaces, filter_tree);
    if !query.stop_at_first_match {
        locate_forward_targets(query, &mut namespaces);
    }
    let hidden = namespaces.iter().any(|n| n.hidden_sockets > 0);
    let named_holders = query.holders == HolderDetail::Processes;
    Ok(Report {
        namespaces,
        skipped,
        holders: query.holders,
        holders_from: named_holders.then_some(search.from),
        kernel_walk_unavailable: search.unavailable.filter(|_| named_holders),
        proc_restriction,
        unseen: if hidden {
            Unseen::of(root, &scan)
        } else {
            Unseen::default()
        },
    })
}

/// The socket inodes the namespaces' dumps found (a TIME_WAIT or
/// request socket has none).
fn wanted_inodes(gathered: &[Gathered]) -> HashSet<u64> {
    gathered
        .iter()
        .flat_map(|g| g.collected.sockets.iter().map(|s| s.inode))
        .filter(|i| *i != 0)
        .collect()
}

/// Settles the sockets the first pass found no holder of. They are
/// looked for again (the fd tables read before they were dumped, those
/// of processes started since, and the threads' own: see
/// [`procfs::scan_again`]), and those still without a holder are looked
/// up again, in their namespace: a process that exits between the dump
/// and the fd scan leaves its sockets without a holder, and those that
/// are gone are dropped (nor is "hidden" true of them). Only what is
/// left then may be held by a process lsport could not read, or one
/// /proc hides (hidepid, read from the mount table only then).
fn settle_leftovers(
    query: &Query,
    from: HolderWalk,
    gathered: &mut [Gathered],
    scan: &mut FdScan,
) -> Option<hidepid::ProcRestriction> {
    let root = &query.proc_root;
    let leftover = sockets_without_holders(
        gathered.iter().flat_map(|g| g.collected.sockets.iter()),
        scan,
    );
    if leftover.is_empty() {
        return None;
    }
    // The kernel's walk went over every thread's fd table, and a socket
    // it missed was walked for after the dumps. One still without a
    // holder is closed, held by no fd, or held in a table the kernel
    // keeps even from its own walk, as some sandboxes do (then /proc
    // refuses that table too, and the socket is hidden, not holderless).
    if from == HolderWalk::Kernel {
        if !drop_closed(query, gathered, scan) {
            return None;
        }
        scan.unreadable = procfs::refused_tables(root);
        return restrict(root, scan);
    }
    let later = procfs::scan_again(root, &leftover, scan);
    scan.add(later);
    if !drop_closed(query, gathered, scan) {
        return None;
    }
    restrict(root, scan)
}

/// Drops, in each namespace, the sockets without a holder in `scan` that
/// have closed since they were dumped (one dump on their ports, from
/// inside the namespace); whether some without a holder are left.
fn drop_closed(query: &Query, gathered: &mut [Gathered], scan: &FdScan) -> bool {
    let mut left = false;
    for g in gathered.iter_mut() {
        let unheld = |s: &Socket| without_holder(s, scan);
        let leftover: Vec<Socket> = g
            .collected
            .sockets
            .iter()
            .filter(|s| unheld(s))
            .cloned()
            .collect();
        if leftover.is_empty() {
            continue;
        }
        if let Some(open) = g.still_open(query, leftover) {
            g.collected
                .sockets
                .retain(|s| !unheld(s) || open.contains(&(s.inode, s.cookie)));
        }
        left |= g.collected.sockets.iter().any(unheld);
    }
    left
}

/// What a scan could not see, once some socket is left without a holder:
/// whether /proc hides processes from lsport (read from the mount table),
/// and which refused fd tables may hide one. A kernel thread has no fds
/// to hide, so its refused table hides nothing (for a user other than
/// root, every one is refused).
fn restrict(root: &ProcRoot, scan: &mut FdScan) -> Option<hidepid::ProcRestriction> {
    scan.unreadable
        .retain(|u| !crate::holders::process::is_kernel_thread(root, u.pid));
    let restriction = hidepid::detect(root);
    // Processes hidepid hides are not even listed: no fd table was
    // refused, yet holders may be missing.
    scan.processes_hidden = restriction
        .as_ref()
        .is_some_and(hidepid::ProcRestriction::hides_processes);
    restriction
}

/// Names the namespaces (containers) the forwards' target addresses
/// belong to: one look at the host's namespaces, only when some forward
/// of a verdict has a target address. For a question about ports, what
/// listens on the target ports is probed too, one probe per namespace
/// found (a DNAT to a port nothing listens on is refused there).
fn locate_forward_targets(query: &Query, namespaces: &mut [NamespaceReport]) {
    let wanted: Vec<std::net::IpAddr> = namespaces
        .iter()
        .flat_map(|n| n.ports.iter())
        .flat_map(|v| v.forwards.iter())
        .filter_map(report::target_address)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let found = forwards::targets::locate(&query.proc_root, &wanted);
    for verdict in namespaces.iter_mut().flat_map(|n| n.ports.iter_mut()) {
        let mut targets: Vec<ForwardTarget> = Vec::new();
        for forward in &verdict.forwards {
            let Some(address) = report::target_address(forward) else {
                continue;
            };
            let Some(namespace) = found.get(&address) else {
                continue;
            };
            let index = match targets.iter().position(|t| t.address == address) {
                Some(index) => index,
                None => {
                    targets.push(ForwardTarget {
                        address,
                        netns: namespace.label.clone(),
                        listeners: Vec::new(),
                    });
                    targets.len() - 1
                }
            };
            let target = &mut targets[index];
            let asked = query.forwarding_rules == ForwardingRules::Asked;
            if let Some(ports) = forwards::targets::target_ports(forward, verdict.asked)
                && asked
                && target.listener_for(forward, verdict.asked).is_none()
            {
                target.listeners.push(TargetListeners {
                    protocols: forward.protocols.clone(),
                    ports,
                    found: Err("not looked at".to_string()),
                });
            }
        }
        verdict.forward_targets = targets;
    }
    probe_targets(query, namespaces, &found);
}

/// Fills in what listens on each target's ports: one probe of each
/// namespace the targets live in, for every port and protocol asked of
/// it, with the query's holder detail.
fn probe_targets(
    query: &Query,
    namespaces: &mut [NamespaceReport],
    found: &HashMap<std::net::IpAddr, forwards::targets::TargetNamespace>,
) {
    // Per namespace: the ports and protocols asked of it.
    let mut plan: Vec<(u64, Vec<PortRange>, Vec<Protocol>)> = Vec::new();
    let targets = namespaces
        .iter()
        .flat_map(|n| n.ports.iter())
        .flat_map(|v| v.forward_targets.iter());
    for target in targets {
        let Some(inode) = target.netns.inode else {
            continue;
        };
        let index = match plan.iter().position(|(i, _, _)| *i == inode) {
            Some(index) => index,
            None => {
                plan.push((inode, Vec::new(), Vec::new()));
                plan.len() - 1
            }
        };
        for listeners in &target.listeners {
            plan[index].1.push(listeners.ports);
            plan[index].2.extend(listeners.protocols.iter().copied());
        }
    }
    for (inode, ports, mut protocols) in plan {
        let Some(namespace) = found.values().find(|n| n.label.inode == Some(inode)) else {
            continue;
        };
        if ports.is_empty() {
            continue;
        }
        protocols.sort_unstable();
        protocols.dedup();
        let answer = probe(&target_query(query, &namespace.path, ports, protocols))
            .map_err(|e| e.to_string());
        let targets = namespaces
            .iter_mut()
            .flat_map(|n| n.ports.iter_mut())
            .flat_map(|v| v.forward_targets.iter_mut())
            .filter(|t| t.netns.inode == Some(inode));
        for target in targets {
            let address = target.address;
            for listeners in &mut target.listeners {
                listeners.found = match &answer {
                    Err(message) => Err(message.clone()),
                    Ok(report) => Ok(sockets_at(report, address, listeners)),
                };
            }
        }
    }
}

/// The query that probes a target's ports in its namespace: listeners
/// only, no filter, no forwarding rules of its own.
fn target_query(
    query: &Query,
    path: &std::path::Path,
    ports: Vec<PortRange>,
    protocols: Vec<Protocol>,
) -> Query {
    let mut target = Query::ports(ports);
    target.listening_only = true;
    target.protocols = protocols;
    target.netns = NetnsChoice::One(path.to_path_buf());
    target.source = query.source;
    target.holders = query.holders;
    target.holder_source = query.holder_source;
    target.process_fields = query.process_fields;
    target.user_names = query.user_names;
    target.proc_root = query.proc_root.clone();
    target.services = query.services.clone();
    target
}

/// The listeners of `report` on the ports and protocols of `listeners`:
/// those that take traffic to `address`, and those bound elsewhere.
fn sockets_at(
    report: &Report,
    address: std::net::IpAddr,
    listeners: &TargetListeners,
) -> TargetSockets {
    let mut sockets = TargetSockets::default();
    let rows = report
        .namespaces
        .iter()
        .flat_map(|n| n.rows.iter())
        .filter(|r| r.role == report::Role::Listener)
        .filter(|r| listeners.protocols.contains(&r.socket.protocol))
        .filter(|r| listeners.ports.contains(r.socket.local.port));
    for row in rows {
        if forwards::targets::takes_traffic_to(&row.socket, address) {
            sockets.taking.push(row.clone());
        } else {
            sockets.elsewhere.push(row.clone());
        }
    }
    sockets
}

/// Names the cgroups of the rows the query wants named: one walk of the
/// cgroup v2 hierarchy (none when a filter walked it already), which
/// stops once every id is found, and none at all when no row needs it.
fn name_cgroups(query: &Query, namespaces: &mut [NamespaceReport], tree: Option<CgroupTree>) {
    let wants = |row: &Row| match query.cgroups {
        CgroupDetail::None => false,
        CgroupDetail::Hidden => row.holders_hidden,
        CgroupDetail::Listeners => row.holders_hidden || row.socket.is_listening(),
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
    let named: HashMap<u64, Arc<SocketCgroup>> = wanted
        .into_iter()
        .map(|id| {
            let mut cgroup = SocketCgroup::new(id, tree.path(id));
            cgroup.activates = cgroup
                .socket_unit()
                .and_then(crate::holders::socket_units::activated_service);
            (id, Arc::new(cgroup))
        })
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
/// ([`HolderDetail::None`]): one walk for just their sockets, the
/// kernel's where it may run (as in [`probe`]), else /proc's. A command
/// that shows holders for a few sockets of many (`lsport ephemeral`
/// names those of its risky listeners) reads no more than it shows.
/// Returns the walk that named them; None when no row has a socket a
/// file could refer to.
pub fn find_holders(query: &Query, rows: &mut [Row]) -> Option<HolderWalk> {
    let wanted: HashSet<u64> = rows
        .iter()
        .map(|r| r.socket.inode)
        .filter(|i| *i != 0)
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let mut search = HolderSearch::plan(query);
    let mut scan = search.scan(query, wanted);
    let root = &query.proc_root;
    let leftover = sockets_without_holders(rows.iter().map(|r| &r.socket), &scan);
    if !leftover.is_empty() {
        // As in `settle_leftovers`: /proc's first pass may have read too
        // soon; the kernel's walk may have been kept from some table.
        match search.from {
            HolderWalk::Proc => scan.add(procfs::scan_again(root, &leftover, &scan)),
            HolderWalk::Kernel => scan.unreadable = procfs::refused_tables(root),
        }
        if !sockets_without_holders(rows.iter().map(|r| &r.socket), &scan).is_empty() {
            restrict(root, &mut scan);
        }
    }
    let holders = HolderNames::of(query, &scan);
    report::attach_holders(rows, &scan, &holders.processes, &holders.users);
    Some(search.from)
}

/// Sockets a file refers to (TIME_WAIT and request sockets have none)
/// that the scan found no holder of.
fn sockets_without_holders<'a>(
    sockets: impl Iterator<Item = &'a Socket>,
    scan: &FdScan,
) -> HashSet<u64> {
    sockets
        .filter(|s| without_holder(s, scan))
        .map(|s| s.inode)
        .collect()
}

/// Whether a file refers to the socket and the scan found none.
fn without_holder(socket: &Socket, scan: &FdScan) -> bool {
    socket.inode != 0 && socket.state != State::TimeWait && scan.holders(socket.inode).is_empty()
}

/// What is known about the processes a scan found, and their users.
struct HolderNames {
    processes: HashMap<u32, procfs::ProcessInfo>,
    users: UserNames,
}

impl HolderNames {
    fn of(query: &Query, scan: &FdScan) -> HolderNames {
        let processes: HashMap<u32, procfs::ProcessInfo> = scan
            .holding_pids()
            .into_iter()
            .map(|pid| {
                let info = procfs::process_info(&query.proc_root, pid, query.process_fields);
                (pid, info)
            })
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
            let mut gathered =
                netns::run_in(path, None, || gather(query, filter, label, found_some))
                    .map_err(|e| e.into_error(path))??;
            gathered.entry = Some((path.clone(), None));
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
                    container: container::of_processes(root, &namespace.pids),
                };
                // lsport's own namespace needs no setns (nor its privilege).
                if Some(namespace.inode) == own {
                    gathered.push(gather(query, filter, label, found_some)?);
                    continue;
                }
                match netns::run_in(&namespace.path, Some(namespace.inode), || {
                    gather(query, filter, label, found_some)
                }) {
                    Ok(Ok(mut g)) => {
                        g.entry = Some((namespace.path.clone(), Some(namespace.inode)));
                        gathered.push(g);
                    }
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
        rules: read_rules(query),
        entry: None,
    })
}

/// The forwarding rules of the calling thread's namespace that the
/// query reads: none unless it is about ports. A failure to read them
/// is in the answer as what was not read, never an error of the probe.
fn read_rules(query: &Query) -> Option<ForwardScan> {
    let ports = match query.forwarding_rules {
        ForwardingRules::None => return None,
        ForwardingRules::Asked if query.ports.is_empty() => return None,
        ForwardingRules::Asked => query.merged_ports(),
        ForwardingRules::Every => Vec::new(),
    };
    Some(
        forwards::forwards_for_in(&query.proc_root, &ports).unwrap_or_else(|err| ForwardScan {
            forwards: Vec::new(),
            undecoded: Vec::new(),
            unreadable: vec![Unreadable::Failed {
                message: err.to_string(),
            }],
            read: forwards::RulesRead {
                nftables: Vec::new(),
                legacy: Vec::new(),
                legacy_present: false,
            },
        }),
    )
}

/// An ip-netns name, for a namespace given as a file under /run/netns.
fn name_of_file(path: &std::path::Path) -> Option<String> {
    (path.parent() == Some(std::path::Path::new(netns::IP_NETNS_DIR)))
        .then(|| path.file_name()?.to_str().map(str::to_string))
        .flatten()
}
