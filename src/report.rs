//! The join: sockets, their holders and the port facts become one
//! report. Roles, filters and order are decided here; no I/O happens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::forwards::proxy::{self, Proxy};
use crate::forwards::{Forward, ForwardScan, UndecodedRule, Unreadable};
use crate::holders::HolderWalk;
use crate::holders::cgroups::SocketCgroup;
use crate::holders::container::Container;
use crate::holders::hidepid::ProcRestriction;
use crate::holders::kernel::Unavailable;
use crate::holders::procfs::{FdScan, ProcessInfo};
use crate::holders::unseen::Unseen;
use crate::holders::users::UserNames;
use crate::int_hash::IntMap;
use crate::netns::NetnsLabel;
use crate::ports::{KernelPortPolicy, PortFacts};
use crate::query::{HolderDetail, Query, View};
use crate::services::{Service, Services};
use crate::socket::{PortRange, Protocol, Socket, State};
use crate::source::{BlindSpot, SourceKind};

/// What a socket is doing with its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A TCP listener, or an unconnected UDP socket that receives on the port.
    Listener,
    /// A TCP socket that holds the port with bind() alone.
    BoundOnly,
    /// The server end of a connection to a local listener on the port.
    Accepted,
    /// A client end of a connection.
    Outgoing,
    /// A closed TCP connection the kernel keeps in TIME_WAIT for a while;
    /// no process holds it, yet it keeps its port pair.
    TimeWait,
    /// A connection its program closed before the peer did: the kernel
    /// finishes the close by itself (FIN_WAIT1, FIN_WAIT2, CLOSING,
    /// LAST_ACK) and no process holds it.
    Orphaned,
}

impl Role {
    /// The role's name in the table and JSON output: `listener`,
    /// `bound-only`, `accepted`, `outgoing`, `time-wait` or `orphaned`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Listener => "listener",
            Role::BoundOnly => "bound-only",
            Role::Accepted => "accepted",
            Role::Outgoing => "outgoing",
            Role::TimeWait => "time-wait",
            Role::Orphaned => "orphaned",
        }
    }
}

/// Text that many rows share, such as a service name: one allocation,
/// and a thin pointer to keep each row small (`-a` on a busy host holds
/// hundreds of thousands of rows).
pub type SharedText = Arc<String>;

/// A socket's holders: one inline, as nearly every socket has exactly
/// one; more spill to the heap.
pub type Holders = smallvec::SmallVec<[Holder; 1]>;

/// A process holding a socket through one of its fds. What is known
/// about the process is shared (`Arc`) by all its fds: a busy server
/// holds thousands of sockets, and `-a` would otherwise copy its command
/// line for each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The process's pid, as seen from lsport's pid namespace.
    pub pid: u32,
    /// The fd number that refers to the socket in `/proc/PID/fd`.
    pub fd: u32,
    process: Arc<HolderProcess>,
}

#[derive(Debug, PartialEq, Eq)]
struct HolderProcess {
    command: Vec<u8>,
    cmdline: Vec<Vec<u8>>,
    uid: Option<u32>,
    user: Option<String>,
    pid_in_namespace: Option<u32>,
    container: Option<Container>,
    proxy: Option<Proxy>,
}

impl Holder {
    /// The kernel's command name, raw bytes (escape before showing).
    pub fn command(&self) -> &[u8] {
        &self.process.command
    }

    /// The command line, one raw argument each (escape before showing);
    /// empty for kernel threads and when it could not be read.
    pub fn cmdline(&self) -> &[Vec<u8>] {
        &self.process.cmdline
    }

    /// Effective uid, or None when the process exited before we looked.
    pub fn uid(&self) -> Option<u32> {
        self.process.uid
    }

    /// The name of the effective uid; None when the uid is unknown, has
    /// no `/etc/passwd` entry, or [`Query::user_names`] is off.
    pub fn user(&self) -> Option<&str> {
        self.process.user.as_deref()
    }

    /// Its pid inside its own pid namespace, where that differs.
    pub fn pid_in_namespace(&self) -> Option<u32> {
        self.process.pid_in_namespace
    }

    /// The container its cgroup names, if any.
    pub fn container(&self) -> Option<&Container> {
        self.process.container.as_ref()
    }

    /// The userland proxy its command line says it is (docker-proxy,
    /// rootlessport, pasta, slirp4netns, kubectl port-forward), with
    /// where it sends what arrives on its ports.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.process.proxy.as_ref()
    }
}

/// One socket of the report, with what it does and who holds it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The socket as the source reported it.
    pub socket: Socket,
    /// What the socket is doing with its local port.
    pub role: Role,
    /// The processes holding the socket, one per fd; empty when none was
    /// seen or none was looked for ([`HolderDetail::None`]).
    pub holders: Holders,
    /// The socket has an inode but no holder we could see, and some
    /// processes' fds were unreadable: its holder may be among them.
    pub holders_hidden: bool,
    /// A listener or bound-only socket whose port an outgoing connection
    /// may take (inside the ephemeral range, not reserved).
    pub risky: bool,
    /// The service name registered on the local port for this socket's
    /// protocol.
    /// Shared by every row on the same port and protocol (a busy
    /// listener has thousands of connections).
    pub service: Option<SharedText>,
    /// The cgroup the socket was created in, named, where the query asked
    /// for it ([`Query::cgroups`]), the kernel gave one and a cgroup v2
    /// hierarchy is mounted to name it in. Shared by the sockets of one
    /// cgroup.
    pub cgroup: Option<Arc<SocketCgroup>>,
    /// The name of the socket's owner (its uid) from `/etc/passwd`, for a
    /// socket whose holders are hidden: the owner is then all there is
    /// to show of them.
    pub owner: Option<SharedText>,
}

/// The verdict on one port, or on one range as the user asked for it.
#[derive(Debug, Clone)]
pub struct PortVerdict {
    /// The port or range as asked.
    pub asked: PortRange,
    /// The facts of each port this verdict speaks for: the single port
    /// asked, or each port of a range that is in use.
    pub facts: Vec<PortFacts>,
    /// How many sockets of the report are on the port or range.
    pub sockets: usize,
    /// The ports of the range that a matching socket uses, sorted, each
    /// once.
    pub in_use_ports: Vec<u16>,
    /// For a range: the registrations that span exactly that range, as
    /// `lsport x11` asks for 6000-6063.
    pub range_services: Vec<Service>,
    /// Where those sockets are in the report's rows, in order.
    pub rows: Vec<usize>,
    /// The forwarding rules that take the port (or a port of the range)
    /// without a socket: its incoming traffic goes elsewhere.
    pub forwards: Vec<Forward>,
    /// Rules lsport could not decode that may forward the port.
    pub undecoded: Vec<UndecodedRule>,
    /// How far the forwarding rules were read for this verdict.
    pub rules: RulesCoverage,
    /// The other network namespaces on the host (containers') that the
    /// forwards' target addresses belong to, where found, with what
    /// listens there.
    pub forward_targets: Vec<ForwardTarget>,
}

/// Where a forward's traffic lands on this host: the other network
/// namespace that has the target address as its own, and what listens
/// on the target ports there.
#[derive(Debug, Clone)]
pub struct ForwardTarget {
    /// The target address.
    pub address: IpAddr,
    /// The namespace (and container) it belongs to.
    pub netns: NetnsLabel,
    /// What listens there, one entry per protocols and ports the
    /// forwards send to; empty where it was not looked at (a command
    /// that reads every forward, such as `suggest`).
    pub listeners: Vec<TargetListeners>,
}

/// The listeners on a forward's target ports, in the target's namespace.
#[derive(Debug, Clone)]
pub struct TargetListeners {
    /// The protocols forwarded.
    pub protocols: Vec<Protocol>,
    /// The ports the traffic arrives on there.
    pub ports: PortRange,
    /// What listens there, or why lsport could not look.
    pub found: Result<TargetSockets, String>,
}

/// The sockets on a target's ports, in its namespace.
#[derive(Debug, Clone, Default)]
pub struct TargetSockets {
    /// Those that take the forwarded traffic: listeners (and unconnected
    /// UDP sockets) bound to the target address or to every address.
    pub taking: Vec<Row>,
    /// Listeners on the ports bound only to other addresses (a server
    /// on 127.0.0.1 in a container): the forwarded traffic misses them.
    pub elsewhere: Vec<Row>,
}

impl ForwardTarget {
    /// What listens on the forward's target ports, where looked at.
    pub fn listener_for(&self, forward: &Forward, asked: PortRange) -> Option<&TargetListeners> {
        let ports = crate::forwards::targets::target_ports(forward, asked)?;
        self.listeners
            .iter()
            .find(|l| l.ports == ports && l.protocols == forward.protocols)
    }
}

/// How far a verdict knows the forwarding rules of its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesCoverage {
    /// They were not asked for (the command does not read them).
    NotRead,
    /// Every rule was read and decoded as far as the port goes.
    Complete,
    /// Some could not be read or decoded: a port without a socket may
    /// still be forwarded.
    Incomplete,
}

impl PortVerdict {
    /// Whether any socket is on the port or range.
    pub fn in_use(&self) -> bool {
        self.sockets > 0
    }

    /// Whether a forwarding rule takes the port (or a port of the range).
    pub fn forwarded(&self) -> bool {
        !self.forwards.is_empty()
    }

    /// Whether the port is taken as far as a new server is concerned:
    /// a socket holds it or a rule forwards its traffic elsewhere.
    pub fn taken(&self) -> bool {
        self.in_use() || self.forwarded()
    }

    /// The forwards that take `port`.
    pub fn forwards_of(&self, port: u16) -> impl Iterator<Item = &Forward> {
        self.forwards.iter().filter(move |f| f.takes(port))
    }

    /// The namespace the forward's target address belongs to, where
    /// found.
    pub fn target_netns(&self, forward: &Forward) -> Option<&NetnsLabel> {
        self.target_of(forward).map(|t| &t.netns)
    }

    /// Where the forward's target address lives on this host, where
    /// found.
    pub fn target_of(&self, forward: &Forward) -> Option<&ForwardTarget> {
        let address = target_address(forward)?;
        self.forward_targets.iter().find(|t| t.address == address)
    }

    /// What listens on the forward's target ports, where looked at.
    pub fn target_listeners(&self, forward: &Forward) -> Option<&TargetListeners> {
        self.target_of(forward)?.listener_for(forward, self.asked)
    }

    /// Whether the sockets whose local port this is are all a client's:
    /// outgoing ones (a connect(), or a UDP socket whose port the kernel
    /// chose for sendto()), with what closed ones leave behind (TIME_WAIT,
    /// orphaned connections). No service holds the port then. `rows` are
    /// the rows of the report the verdict belongs to.
    pub fn held_by_clients_only(&self, rows: &[Row]) -> bool {
        let on_port = self
            .rows
            .iter()
            .map(|&i| &rows[i])
            .filter(|r| self.asked.contains(r.socket.local.port));
        let mut outgoing = false;
        for row in on_port {
            match row.role {
                Role::Outgoing => outgoing = true,
                Role::TimeWait | Role::Orphaned => {}
                Role::Listener | Role::BoundOnly | Role::Accepted => return false,
            }
        }
        outgoing
    }
}

/// The (first) address a forward sends its traffic to; None for a
/// redirect or a DNAT of the port only.
pub fn target_address(forward: &Forward) -> Option<IpAddr> {
    match forward.target {
        crate::forwards::Target::Dnat {
            addresses: Some((first, _)),
            ..
        } => Some(first),
        _ => None,
    }
}

/// A probe's answer: one report per network namespace probed.
#[derive(Debug)]
pub struct Report {
    /// One per namespace, in the order probed.
    pub namespaces: Vec<NamespaceReport>,
    /// The namespaces that could not be probed, each with the reason.
    pub skipped: Vec<String>,
    /// How much was learnt about holders: with [`HolderDetail::None`]
    /// every row has no holder because none was looked for.
    pub holders: HolderDetail,
    /// Which walk named the holders; None when none was looked for.
    pub holders_from: Option<HolderWalk>,
    /// Why the kernel's walk did not name them, where holders were
    /// looked for and it did not.
    pub kernel_walk_unavailable: Option<Unavailable>,
    /// How the /proc that was scanned for holders hides processes from
    /// lsport (hidepid, subset=pid), if it does.
    pub proc_restriction: Option<ProcRestriction>,
    /// What kept some holders out of sight (the processes whose fds
    /// could not be read, named); empty when no socket's holder is
    /// hidden.
    pub unseen: Unseen,
}

impl Report {
    /// Whether any socket matched in any namespace.
    pub fn any_match(&self) -> bool {
        self.namespaces.iter().any(NamespaceReport::any_match)
    }

    /// Whether a forwarding rule takes a port asked, in any namespace.
    pub fn any_forwarded(&self) -> bool {
        self.namespaces
            .iter()
            .any(|n| n.ports.iter().any(PortVerdict::forwarded))
    }

    /// What kept the forwarding rules from being read, over every
    /// namespace, each kind once (in the order first met).
    pub fn rules_unread(&self) -> Vec<&Unreadable> {
        let mut unread: Vec<&Unreadable> = Vec::new();
        for spot in self.namespaces.iter().flat_map(|n| n.rules_unread()) {
            if !unread.iter().any(|u| u.id() == spot.id()) {
                unread.push(spot);
            }
        }
        unread
    }

    /// Sockets whose holders could not be seen, over every namespace.
    pub fn hidden_sockets(&self) -> usize {
        self.namespaces.iter().map(|r| r.hidden_sockets).sum()
    }
}

/// What one network namespace holds on the ports asked for.
#[derive(Debug)]
pub struct NamespaceReport {
    /// Which sockets the query asked for.
    pub view: View,
    /// Only sockets that wait on their port were asked for
    /// ([`Query::listening_only`]): a port none waits on may still have
    /// connections.
    pub listening_only: bool,
    /// The network namespace the sockets and port facts belong to.
    pub netns: NetnsLabel,
    /// The namespace's ephemeral range, reserved and privileged ports.
    pub policy: KernelPortPolicy,
    /// One verdict per port or range of [`Query::ports`], in that order.
    pub ports: Vec<PortVerdict>,
    /// The sockets shown, ordered by local port, protocol, family, role
    /// and addresses.
    pub rows: Vec<Row>,
    /// The protocols the query looked at.
    pub protocols: Vec<Protocol>,
    /// Sockets whose holders could not be seen.
    pub hidden_sockets: usize,
    /// Replies (or /proc/net lines) the source could not decode and skipped.
    pub skipped_replies: usize,
    /// The source that answered.
    pub source: SourceKind,
    /// What that source cannot see; empty for sock_diag.
    pub blind_spots: Vec<BlindSpot>,
    /// Why sock_diag was given up for /proc, when it was.
    pub fallback: Option<String>,
    /// The namespace's forwarding rules, where the query read them
    /// ([`Query::forwarding_rules`]).
    pub rules: Option<ForwardScan>,
}

impl NamespaceReport {
    /// Whether any socket matched in this namespace.
    pub fn any_match(&self) -> bool {
        !self.rows.is_empty()
    }

    /// The forwarding rules that could not be read here.
    pub fn rules_unread(&self) -> &[Unreadable] {
        self.rules.as_ref().map_or(&[], |r| r.unreadable.as_slice())
    }
}

/// Everything the join needs.
pub(crate) struct Inputs<'a> {
    /// What was asked: the view, the ports, the filters.
    pub query: &'a Query,
    /// The network namespace the sockets and port facts belong to.
    pub netns: NetnsLabel,
    pub policy: KernelPortPolicy,
    pub sockets: Vec<Socket>,
    pub scan: &'a FdScan,
    pub processes: &'a HashMap<u32, ProcessInfo>,
    pub users: &'a UserNames,
    pub skipped_replies: usize,
    pub source: SourceKind,
    pub blind_spots: Vec<BlindSpot>,
    pub fallback: Option<String>,
    /// The forwarding rules read in the namespace, if any.
    pub rules: Option<ForwardScan>,
}

/// How many sockets move into rows between two returns of memory.
const SHRINK_STEP: usize = 4096;

pub(crate) fn build(inputs: Inputs<'_>) -> NamespaceReport {
    let query = inputs.query;
    let services = &query.services;
    let ports = query.merged_ports();
    let listeners = listener_index(&inputs.sockets);
    let shared = shared_processes(inputs.processes, inputs.users);
    let in_ports = |port: u16| in_ranges(&ports, port);
    let mut sockets = inputs.sockets;
    sockets.retain(|s| {
        let shown = match query.view {
            View::Ports => {
                in_ports(s.local.port) || (query.match_remote && in_ports(s.remote.port))
            }
            View::Listening => s.is_listening(),
            View::All => true,
        };
        shown && query.wants(s.protocol, s.family) && (!query.listening_only || s.is_listening())
    });
    let maker = RowMaker {
        listeners: &listeners,
        policy: &inputs.policy,
        scan: inputs.scan,
        processes: &shared,
        users: inputs.users,
        services,
    };
    let rows = maker.rows(sockets);

    let by_remote = remote_index(&rows, query.match_remote);
    let ports = query
        .ports
        .iter()
        .map(|asked| {
            let mut verdict = verdict(*asked, &rows, &by_remote, &inputs.policy, services);
            add_forwards(&mut verdict, inputs.rules.as_ref(), query, &inputs.policy);
            verdict
        })
        .collect();
    let hidden_sockets = rows.iter().filter(|r| r.holders_hidden).count();
    NamespaceReport {
        view: query.view,
        listening_only: query.listening_only,
        netns: inputs.netns,
        policy: inputs.policy,
        ports,
        rows,
        protocols: query.protocols.clone(),
        hidden_sockets,
        skipped_replies: inputs.skipped_replies,
        source: inputs.source,
        blind_spots: inputs.blind_spots,
        fallback: inputs.fallback,
        rules: inputs.rules,
    }
}

/// The forwards and undecoded rules of `rules` on the verdict's port or
/// range, of the protocols and families asked; a range's facts then
/// cover its forwarded ports too.
fn add_forwards(
    verdict: &mut PortVerdict,
    rules: Option<&ForwardScan>,
    query: &Query,
    policy: &KernelPortPolicy,
) {
    let Some(rules) = rules else {
        return;
    };
    let asked = verdict.asked;
    let overlaps =
        |ranges: &[PortRange]| ranges.iter().any(|r| r.lo <= asked.hi && asked.lo <= r.hi);
    verdict.forwards = rules
        .forwards
        .iter()
        .filter(|f| overlaps(&f.ports))
        .filter(|f| {
            f.protocols.iter().any(|p| query.protocols.contains(p))
                && f.families.iter().any(|a| query.families.contains(a))
        })
        .cloned()
        .collect();
    verdict.undecoded = rules
        .undecoded
        .iter()
        .filter(|u| overlaps(&u.ports))
        .cloned()
        .collect();
    verdict.rules = if rules.unreadable.is_empty() && verdict.undecoded.is_empty() {
        RulesCoverage::Complete
    } else {
        RulesCoverage::Incomplete
    };
    if asked.lo == asked.hi || verdict.forwards.is_empty() {
        return;
    }
    let mut ports: Vec<u16> = verdict.facts.iter().map(|f| f.port).collect();
    for forward in &verdict.forwards {
        for range in &forward.ports {
            let (lo, hi) = (range.lo.max(asked.lo), range.hi.min(asked.hi));
            if lo <= hi {
                ports.extend(lo..=hi);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    verdict.facts = ports
        .into_iter()
        .map(|port| PortFacts::of(port, policy, &query.services))
        .collect();
}

/// From this many sockets on, the rows are made on two threads.
const ROWS_ON_TWO_THREADS: usize = 16 * 1024;

/// Makes rows of sockets: their roles, holders and service names.
struct RowMaker<'a> {
    listeners: &'a ListenerIndex,
    policy: &'a KernelPortPolicy,
    scan: &'a FdScan,
    processes: &'a IntMap<u32, Arc<HolderProcess>>,
    users: &'a UserNames,
    services: &'a Services,
}

impl RowMaker<'_> {
    /// The rows of `sockets`, sorted. On a busy host they are made on two
    /// threads, one for the sockets below a local port that splits them
    /// in two and one for the rest: each sorts its own, and as rows are
    /// ordered by local port first, the second's follow the first's.
    fn rows(&self, mut sockets: Vec<Socket>) -> Vec<Row> {
        let spare_cpu = crate::sys::usable_cpus() > 1;
        if sockets.len() < ROWS_ON_TWO_THREADS || !spare_cpu {
            return self.sorted_rows(sockets, 0, row_order);
        }
        let total = sockets.len();
        let upper = std::sync::Mutex::new(split_at_middle_port(&mut sockets));
        let take_upper = || std::mem::take(&mut *upper.lock().unwrap_or_else(|e| e.into_inner()));
        // The upper half's rows are sorted in reverse, so that they move
        // into the whole from the back of their vector, which gives its
        // memory back as it empties (as the sockets' does).
        let reversed = |a: &Row, b: &Row| row_order(b, a);
        std::thread::scope(|scope| {
            let upper_thread = std::thread::Builder::new()
                .spawn_scoped(scope, || self.sorted_rows(take_upper(), 0, reversed))
                .ok();
            let mut rows = self.sorted_rows(sockets, total, row_order);
            let mut upper_rows = match upper_thread.map(|thread| thread.join()) {
                Some(Ok(rows)) => rows,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                // The thread did not start: its share is made here.
                None => self.sorted_rows(take_upper(), 0, reversed),
            };
            while let Some(row) = upper_rows.pop() {
                rows.push(row);
                if upper_rows.capacity() - upper_rows.len() >= SHRINK_STEP {
                    upper_rows.shrink_to_fit();
                }
            }
            rows
        })
    }

    /// The rows of `sockets`, sorted by `order`, on this thread, in a
    /// vector with room for at least `room` rows. The sockets move into
    /// rows from the back, and their vector gives its memory back as it
    /// empties: with `-a` on a busy host, a full copy of both would be
    /// most of lsport's peak memory.
    fn sorted_rows(
        &self,
        mut sockets: Vec<Socket>,
        room: usize,
        order: impl Fn(&Row, &Row) -> std::cmp::Ordering,
    ) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::with_capacity(sockets.len().max(room));
        let mut service_names: IntMap<(u16, Protocol), Option<SharedText>> = IntMap::default();
        while let Some(socket) = sockets.pop() {
            let role = role_of(&socket, self.listeners, self.policy);
            let holders = holders_of(&socket, self.scan, self.processes);
            let holders_hidden =
                holders.is_empty() && socket.inode != 0 && self.scan.may_hide_holders();
            let owner = owner_name(&socket, holders_hidden, self.users);
            let risky = matches!(role, Role::Listener | Role::BoundOnly)
                && self.policy.may_be_taken_by_outgoing(socket.local.port);
            // Many sockets share a port (connections to one listener):
            // look each port and protocol up once.
            let service = service_names
                .entry((socket.local.port, socket.protocol))
                .or_insert_with(|| {
                    self.services
                        .name_for(socket.local.port, socket.protocol)
                        .map(Arc::new)
                })
                .clone();
            rows.push(Row {
                socket,
                role,
                holders,
                holders_hidden,
                risky,
                service,
                cgroup: None,
                owner,
            });
            // Give memory back every few thousand sockets: a large
            // vector shrinks in place (mremap), so this costs no copy,
            // and the peak stays near the rows alone.
            if sockets.capacity() - sockets.len() >= SHRINK_STEP {
                sockets.shrink_to_fit();
            }
        }
        // The key tells every two sockets apart (their addresses, ports
        // and inodes differ), so an unstable sort, which needs no scratch
        // memory, gives the one order.
        rows.sort_unstable_by(order);
        rows
    }
}

/// Moves out of `sockets` those on the upper half of the local ports in
/// use, and returns them: every socket left has a lower local port than
/// every socket moved. Sockets all on one port stay where they are.
fn split_at_middle_port(sockets: &mut Vec<Socket>) -> Vec<Socket> {
    let mut on_port = vec![0u32; 1 << 16];
    for socket in sockets.iter() {
        on_port[usize::from(socket.local.port)] += 1;
    }
    // The lowest port with at least half of the sockets below it.
    let half = sockets.len() / 2;
    let mut below = 0usize;
    let mut split = on_port.len();
    for (port, &count) in on_port.iter().enumerate() {
        if below >= half && below > 0 {
            split = port;
            break;
        }
        below += count as usize;
    }
    let mut lower_end = 0;
    let mut upper_start = sockets.len();
    while lower_end < upper_start {
        if usize::from(sockets[lower_end].local.port) < split {
            lower_end += 1;
        } else {
            upper_start -= 1;
            sockets.swap(lower_end, upper_start);
        }
    }
    sockets.split_off(lower_end)
}

/// Whether `port` is in one of `ranges` (sorted and merged): a binary
/// search, as a query may hold thousands of ranges.
fn in_ranges(ranges: &[PortRange], port: u16) -> bool {
    let after = ranges.partition_point(|r| r.hi < port);
    ranges.get(after).is_some_and(|r| r.contains(port))
}

/// Fills in the holders of rows built without them, from a later scan.
pub(crate) fn attach_holders(
    rows: &mut [Row],
    scan: &FdScan,
    processes: &HashMap<u32, ProcessInfo>,
    users: &UserNames,
) {
    let shared = shared_processes(processes, users);
    for row in rows {
        row.holders = holders_of(&row.socket, scan, &shared);
        row.holders_hidden =
            row.holders.is_empty() && row.socket.inode != 0 && scan.may_hide_holders();
        row.owner = owner_name(&row.socket, row.holders_hidden, users);
    }
}

/// The owner's name for a socket whose holders are hidden.
fn owner_name(socket: &Socket, holders_hidden: bool, users: &UserNames) -> Option<SharedText> {
    holders_hidden
        .then(|| {
            users
                .name(socket.uid)
                .map(|name| Arc::new(name.to_string()))
        })
        .flatten()
}

fn verdict(
    asked: PortRange,
    rows: &[Row],
    by_remote: &[(u16, usize)],
    policy: &KernelPortPolicy,
    services: &Services,
) -> PortVerdict {
    // Rows are sorted by local port first, and `by_remote` by remote
    // port: both are binary searches, so thousands of ports asked cost
    // no scan of every socket each.
    let local_start = rows.partition_point(|r| r.socket.local.port < asked.lo);
    let local_end = rows.partition_point(|r| r.socket.local.port <= asked.hi);
    let remote_start = by_remote.partition_point(|(port, _)| *port < asked.lo);
    let remote_end = by_remote.partition_point(|(port, _)| *port <= asked.hi);
    let mut matching: Vec<usize> = (local_start..local_end)
        .chain(by_remote[remote_start..remote_end].iter().map(|(_, i)| *i))
        .collect();
    matching.sort_unstable();
    matching.dedup();
    let mut in_use_ports: Vec<u16> = matching
        .iter()
        .flat_map(|&i| [rows[i].socket.local.port, rows[i].socket.remote.port])
        .filter(|port| asked.contains(*port) && *port != 0)
        .collect();
    in_use_ports.sort_unstable();
    in_use_ports.dedup();
    let fact_ports: Vec<u16> = if asked.lo == asked.hi {
        vec![asked.lo]
    } else {
        in_use_ports.clone()
    };
    let range_services = if asked.lo == asked.hi {
        Vec::new()
    } else {
        let mut on = services.on_port(asked.lo);
        on.retain(|s| s.ports == asked);
        on
    };
    PortVerdict {
        asked,
        facts: fact_ports
            .into_iter()
            .map(|port| PortFacts::of(port, policy, services))
            .collect(),
        sockets: matching.len(),
        in_use_ports,
        range_services,
        rows: matching,
        forwards: Vec::new(),
        undecoded: Vec::new(),
        rules: RulesCoverage::NotRead,
        forward_targets: Vec::new(),
    }
}

/// With `--remote`: (remote port, row) for every row, sorted by port.
fn remote_index(rows: &[Row], match_remote: bool) -> Vec<(u16, usize)> {
    if !match_remote {
        return Vec::new();
    }
    let mut index: Vec<(u16, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.socket.remote.port, i))
        .collect();
    index.sort_unstable();
    index
}

/// Listening TCP sockets by port, to tell accepted connections from
/// outgoing ones.
pub(crate) type ListenerIndex = IntMap<u16, Vec<IpAddr>>;

/// The [`ListenerIndex`] of `sockets`.
pub(crate) fn listener_index(sockets: &[Socket]) -> ListenerIndex {
    let mut index = ListenerIndex::default();
    for socket in sockets {
        if socket.protocol == Protocol::Tcp && socket.state == State::Listen {
            index
                .entry(socket.local.port)
                .or_default()
                .push(socket.local.readable_address());
        }
    }
    index
}

/// What a socket does with its port. The rules (also in the man page):
/// the state decides where it can; a connection is accepted when a local
/// listener takes its address and port; without one, and for UDP, it
/// depends on who chose the port (see `without_listener`).
pub(crate) fn role_of(
    socket: &Socket,
    listeners: &ListenerIndex,
    policy: &KernelPortPolicy,
) -> Role {
    if socket.is_orphaned() {
        return Role::Orphaned;
    }
    match (socket.protocol, socket.state) {
        // An SCTP endpoint: listening, or bound and closed; else one
        // end of an association.
        (Protocol::Sctp, State::Listen) => Role::Listener,
        (Protocol::Sctp, State::Close) => Role::BoundOnly,
        (Protocol::Sctp, _) => without_listener(socket, policy),
        (Protocol::Tcp, State::Listen) => Role::Listener,
        (Protocol::Tcp, State::BoundInactive | State::Close) => Role::BoundOnly,
        (Protocol::Tcp, State::TimeWait) => Role::TimeWait,
        (Protocol::Tcp, State::SynRecv | State::NewSynRecv) => Role::Accepted,
        (Protocol::Tcp, State::SynSent) => Role::Outgoing,
        (Protocol::Tcp, _) => {
            // The kernel does not record which side opened a connection;
            // a connection whose local port has a matching local listener
            // was accepted by it.
            let listens_at = |endpoint: &crate::socket::Endpoint| {
                let address = endpoint.readable_address();
                listeners
                    .get(&endpoint.port)
                    .is_some_and(|addrs| addrs.iter().any(|a| a.is_unspecified() || *a == address))
            };
            if listens_at(&socket.local) {
                Role::Accepted
            } else if listens_at(&socket.remote) {
                // The client end of a connection to a local listener.
                Role::Outgoing
            } else {
                without_listener(socket, policy)
            }
        }
        // An unconnected UDP socket whose port the kernel chose (sendto()
        // without bind()) is a client: it receives only replies.
        (Protocol::Udp, State::Close) if socket.autobound == Some(true) => Role::Outgoing,
        (Protocol::Udp, State::Close) => Role::Listener,
        (Protocol::Udp, _) => without_listener(socket, policy),
    }
}

/// A connected socket with no listener behind it.
///
/// TCP: the kernel's "chose the port" test cannot tell a client from an
/// accepted connection (an accepted socket never keeps its listener's
/// port lock), but a connection that does keep the lock was bound on
/// purpose by a client (an NFS mount from a reserved port). Otherwise the
/// port decides: connect() takes ports only inside the ephemeral range,
/// so a connection on a port outside it is a server's whose listener has
/// gone (sshd's sessions after it stopped).
///
/// UDP has no accept(): a socket bound on purpose to a port outside the
/// ephemeral range and connected to a peer whose port looks chosen by
/// its kernel is the server's side (a `socat UDP-LISTEN,fork` child); one
/// connected to a service port is a client that bound its own (an NTP
/// client on 123).
fn without_listener(socket: &Socket, policy: &KernelPortPolicy) -> Role {
    let local_is_ephemeral = policy.is_ephemeral(socket.local.port);
    let server_side = match (socket.protocol, socket.autobound) {
        (Protocol::Tcp | Protocol::Sctp, Some(false)) => false,
        (Protocol::Tcp | Protocol::Sctp, _) => !local_is_ephemeral,
        (Protocol::Udp, Some(true)) => false,
        (Protocol::Udp, _) => !local_is_ephemeral && policy.is_ephemeral(socket.remote.port),
    };
    if server_side {
        Role::Accepted
    } else {
        Role::Outgoing
    }
}

/// What is known about each holding process, once, for its fds to share.
fn shared_processes(
    processes: &HashMap<u32, ProcessInfo>,
    users: &UserNames,
) -> IntMap<u32, Arc<HolderProcess>> {
    processes
        .iter()
        .map(|(&pid, info)| {
            let process = HolderProcess {
                command: info.command.clone(),
                cmdline: info.cmdline.clone(),
                uid: info.uid,
                user: info.uid.and_then(|u| users.name(u)).map(str::to_string),
                pid_in_namespace: info.pid_in_namespace,
                container: info.container.clone(),
                proxy: {
                    let args: Vec<&[u8]> = info.cmdline.iter().map(Vec::as_slice).collect();
                    proxy::recognize_args(&args)
                },
            };
            (pid, Arc::new(process))
        })
        .collect()
}

/// What is known about each holding process, shared by its fds, for a
/// join other than this module's (the Unix sockets' report).
pub struct HolderBook(IntMap<u32, Arc<HolderProcess>>);

impl HolderBook {
    /// The processes a scan found, with their users' names.
    pub fn new(processes: &HashMap<u32, ProcessInfo>, users: &UserNames) -> HolderBook {
        HolderBook(shared_processes(processes, users))
    }

    /// The holders of the socket with `inode`, as the scan found them.
    pub fn holders(&self, inode: u64, scan: &FdScan) -> Holders {
        holders_of_inode(inode, scan, &self.0)
    }
}

fn holders_of(
    socket: &Socket,
    scan: &FdScan,
    processes: &IntMap<u32, Arc<HolderProcess>>,
) -> Holders {
    holders_of_inode(socket.inode, scan, processes)
}

fn holders_of_inode(
    inode: u64,
    scan: &FdScan,
    processes: &IntMap<u32, Arc<HolderProcess>>,
) -> Holders {
    if inode == 0 {
        return Holders::new();
    }
    scan.holders(inode)
        .iter()
        .map(|r| Holder {
            pid: r.pid,
            fd: r.fd,
            process: processes.get(&r.pid).cloned().unwrap_or_else(|| {
                // The process exited before its name could be read.
                Arc::new(HolderProcess {
                    command: Vec::new(),
                    cmdline: Vec::new(),
                    uid: None,
                    user: None,
                    pid_in_namespace: None,
                    container: None,
                    proxy: None,
                })
            }),
        })
        .collect()
}

/// The rows' order: local port, protocol, family, role, addresses,
/// remote port, inode. Compared field by field, so that most pairs are
/// told apart by their first fields without reading the rest.
fn row_order(a: &Row, b: &Row) -> std::cmp::Ordering {
    let (x, y) = (&a.socket, &b.socket);
    x.local
        .port
        .cmp(&y.local.port)
        .then_with(|| x.protocol.cmp(&y.protocol))
        .then_with(|| x.family.cmp(&y.family))
        .then_with(|| a.role.cmp(&b.role))
        .then_with(|| x.local.address.cmp(&y.local.address))
        .then_with(|| x.remote.address.cmp(&y.remote.address))
        .then_with(|| x.remote.port.cmp(&y.remote.port))
        .then_with(|| x.inode.cmp(&y.inode))
}

/// The ports to add to ip_local_reserved_ports so that no outgoing
/// connection takes them: the current list plus `extra`, merged.
pub fn reserved_ports_with(policy: &KernelPortPolicy, extra: &[u16]) -> String {
    let mut ranges = policy.reserved.value.clone();
    ranges.extend(extra.iter().map(|p| PortRange::single(*p)));
    crate::portspec::normalize(ranges)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(state: State, local: &str, remote: &str) -> Socket {
        Socket::example(state, local, remote)
    }

    #[test]
    fn the_sockets_split_at_a_port_into_halves() {
        let ports = [
            80u16, 80, 80, 443, 5000, 5000, 40_000, 40_001, 60_000, 65_535,
        ];
        let mut sockets: Vec<Socket> = ports
            .iter()
            .map(|p| tcp(State::Established, &format!("127.0.0.1:{p}"), "127.0.0.1:9"))
            .collect();
        let upper = split_at_middle_port(&mut sockets);
        let lower_ports: Vec<u16> = sockets.iter().map(|s| s.local.port).collect();
        let upper_ports: Vec<u16> = upper.iter().map(|s| s.local.port).collect();
        assert_eq!(lower_ports.len() + upper_ports.len(), ports.len());
        // Half is five; the split falls after port 5000, whose two sockets
        // stay together below it.
        assert!(lower_ports.iter().all(|&p| p < 40_000), "{lower_ports:?}");
        assert!(upper_ports.iter().all(|&p| p >= 40_000), "{upper_ports:?}");
        assert_eq!(upper_ports.len(), 4);

        let mut one_port: Vec<Socket> = (0..4)
            .map(|_| tcp(State::Established, "127.0.0.1:8080", "127.0.0.1:9"))
            .collect();
        assert!(split_at_middle_port(&mut one_port).is_empty());
        assert_eq!(one_port.len(), 4);
    }

    #[test]
    fn connections_to_a_local_listener_are_accepted_and_others_outgoing() {
        let sockets = vec![
            tcp(State::Listen, "0.0.0.0:8080", "0.0.0.0:0"),
            tcp(State::Established, "127.0.0.1:8080", "127.0.0.1:40001"),
            tcp(State::Established, "127.0.0.1:40001", "127.0.0.1:8080"),
        ];
        let index = listener_index(&sockets);
        let policy = KernelPortPolicy::kernel_defaults();
        let roles: Vec<Role> = sockets
            .iter()
            .map(|s| role_of(s, &index, &policy))
            .collect();
        assert_eq!(roles, vec![Role::Listener, Role::Accepted, Role::Outgoing]);
    }

    #[test]
    fn a_listener_on_another_address_does_not_make_a_connection_accepted() {
        let sockets = vec![
            tcp(State::Listen, "127.0.0.2:40001", "0.0.0.0:0"),
            tcp(State::Established, "127.0.0.1:40001", "127.0.0.1:22"),
        ];
        let index = listener_index(&sockets);
        let policy = KernelPortPolicy::kernel_defaults();
        assert_eq!(role_of(&sockets[1], &index, &policy), Role::Outgoing);
    }

    #[test]
    fn without_a_listener_who_chose_the_port_decides_the_role() {
        let policy = KernelPortPolicy::kernel_defaults();
        let none = ListenerIndex::default();
        let with = |mut socket: Socket, autobound| {
            socket.autobound = autobound;
            role_of(&socket, &none, &policy)
        };
        // sshd's session after its listener stopped: an accepted socket
        // looks kernel-bound, but 22 is outside the ephemeral range.
        let session = tcp(State::Established, "10.0.0.1:22", "10.0.0.2:50000");
        assert_eq!(with(session.clone(), Some(true)), Role::Accepted);
        assert_eq!(with(session, None), Role::Accepted);
        // A client whose port the kernel chose.
        let client = tcp(State::Established, "10.0.0.2:50000", "10.0.0.1:22");
        assert_eq!(with(client.clone(), Some(true)), Role::Outgoing);
        assert_eq!(with(client, None), Role::Outgoing);
        // A client bound to a reserved port to reach a service (NFS).
        let nfs = tcp(State::Established, "10.0.0.2:800", "10.0.0.1:2049");
        assert_eq!(with(nfs, Some(false)), Role::Outgoing);
        // UDP: a sendto() client is no listener; a socat fork child is the server's side.
        let mut udp = tcp(State::Close, "0.0.0.0:40000", "0.0.0.0:0");
        udp.protocol = Protocol::Udp;
        assert_eq!(with(udp.clone(), Some(true)), Role::Outgoing);
        assert!(
            !Socket {
                autobound: Some(true),
                ..udp.clone()
            }
            .is_listening()
        );
        assert_eq!(with(udp.clone(), Some(false)), Role::Listener);
        assert_eq!(with(udp, None), Role::Listener);
        let mut child = tcp(State::Established, "127.0.0.1:5353", "127.0.0.1:45000");
        child.protocol = Protocol::Udp;
        assert_eq!(with(child, Some(false)), Role::Accepted);
        let mut ntp = tcp(State::Established, "10.0.0.2:123", "10.0.0.1:123");
        ntp.protocol = Protocol::Udp;
        assert_eq!(with(ntp, Some(false)), Role::Outgoing);
    }

    #[test]
    fn a_closing_connection_no_process_holds_is_orphaned_whatever_its_side() {
        let sockets = vec![
            tcp(State::Listen, "0.0.0.0:8080", "0.0.0.0:0"),
            Socket {
                inode: 0,
                ..tcp(State::FinWait2, "127.0.0.1:8080", "127.0.0.1:40001")
            },
            Socket {
                inode: 0,
                ..tcp(State::LastAck, "127.0.0.1:40002", "127.0.0.1:8080")
            },
            // Still open in its program: the side decides.
            tcp(State::FinWait2, "127.0.0.1:8080", "127.0.0.1:40003"),
        ];
        let index = listener_index(&sockets);
        let policy = KernelPortPolicy::kernel_defaults();
        let roles: Vec<Role> = sockets
            .iter()
            .map(|s| role_of(s, &index, &policy))
            .collect();
        assert_eq!(
            roles,
            vec![
                Role::Listener,
                Role::Orphaned,
                Role::Orphaned,
                Role::Accepted
            ]
        );
    }

    #[test]
    fn a_port_only_clients_hold_is_told_apart() {
        let row = |role, local: &str, remote: &str| Row {
            socket: tcp(State::Established, local, remote),
            role,
            holders: Holders::new(),
            holders_hidden: false,
            risky: false,
            service: None,
            cgroup: None,
            owner: None,
        };
        let rows = vec![
            row(Role::Outgoing, "127.0.0.1:40001", "127.0.0.1:80"),
            row(Role::TimeWait, "127.0.0.1:40001", "127.0.0.1:81"),
            row(Role::Listener, "127.0.0.1:40002", "0.0.0.0:0"),
            row(Role::Outgoing, "127.0.0.1:40002", "127.0.0.1:80"),
            row(Role::TimeWait, "127.0.0.1:40003", "127.0.0.1:80"),
            // A client whose remote port is 40001: asked with --remote,
            // it is on the verdict but not on the port.
            row(Role::Accepted, "127.0.0.1:80", "127.0.0.1:40001"),
        ];
        let verdict = |port: u16, on: Vec<usize>| PortVerdict {
            asked: PortRange::single(port),
            facts: Vec::new(),
            sockets: on.len(),
            in_use_ports: vec![port],
            range_services: Vec::new(),
            rows: on,
            forwards: Vec::new(),
            undecoded: Vec::new(),
            rules: RulesCoverage::NotRead,
            forward_targets: Vec::new(),
        };
        assert!(verdict(40001, vec![0, 1, 5]).held_by_clients_only(&rows));
        assert!(!verdict(40002, vec![2, 3]).held_by_clients_only(&rows));
        // TIME_WAIT alone may be either side's.
        assert!(!verdict(40003, vec![4]).held_by_clients_only(&rows));
        assert!(!verdict(40004, vec![]).held_by_clients_only(&rows));
    }

    #[test]
    fn the_reserved_ports_fix_keeps_what_is_already_reserved() {
        let policy = KernelPortPolicy::known(
            PortRange {
                lo: 32768,
                hi: 60999,
            },
            vec![PortRange { lo: 9000, hi: 9100 }],
            1024,
        );
        assert_eq!(
            reserved_ports_with(&policy, &[40000, 9050, 40001]),
            "9000-9100,40000-40001"
        );
    }
}
