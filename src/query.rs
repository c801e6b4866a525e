//! What to probe: plain data that the command line (or another program)
//! fills in, and that every command reads. Nothing here does I/O.

use std::path::PathBuf;

use crate::portspec;
use crate::services::Services;
use crate::socket::{Family, PortRange, Protocol};
use crate::sys::ProcRoot;
use crate::unix::target::UnixTarget;

/// Which sockets a probe reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Sockets on the ports of [`Query::ports`].
    Ports,
    /// What is listening: TCP listeners, bound-only TCP sockets and
    /// unconnected UDP sockets.
    Listening,
    /// Every socket, in every state.
    All,
}

/// Where sockets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// sock_diag, or the /proc/net tables where sock_diag is refused or
    /// missing.
    Auto,
    /// sock_diag only: an error where it is not available.
    Netlink,
    /// The /proc/net tables only, which cannot see bound-only TCP sockets.
    Proc,
}

/// Where holders come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderSource {
    /// The kernel's walk of every fd table (a BPF iterator) where this
    /// process may load it and `/proc` is its own pid namespace's; the
    /// `/proc` walk everywhere else.
    Auto,
    /// The kernel's walk; the `/proc` walk, said on stderr, where it is
    /// unavailable.
    Kernel,
    /// The `/proc` walk only.
    Proc,
}

/// What is read about each holder process besides its pid, fd, command
/// name, user and pid in its own namespace: what the output shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFields {
    /// Its command line (`/proc/PID/cmdline`).
    pub args: bool,
    /// Its container (`/proc/PID/cgroup`).
    pub container: bool,
}

impl ProcessFields {
    /// Everything: for JSON, and for commands that show it all.
    pub const ALL: ProcessFields = ProcessFields {
        args: true,
        container: true,
    };
}

/// Which network namespaces to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsChoice {
    /// The one the calling thread runs in.
    Current,
    /// The namespace this file refers to (`/proc/PID/ns/net`,
    /// `/run/netns/NAME`).
    One(PathBuf),
    /// Every namespace on the host (needs root).
    All,
}

/// How much a probe learns about the processes that hold each socket.
/// Each level costs more than the one before it: `Processes` opens every
/// `/proc/PID/fd` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HolderDetail {
    /// No holders: only the sockets and the port facts. Reads no
    /// process's fds.
    None,
    /// Each holder's pid and fd, and what its process is: command,
    /// arguments, user, container.
    Processes,
}

/// How many sockets get their cgroup named (its path, unit and
/// container). Naming walks the cgroup v2 hierarchy once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CgroupDetail {
    /// None: no walk.
    None,
    /// Only the sockets whose holders are hidden, which the cgroup names
    /// in their place.
    Hidden,
    /// Those, and the listeners (TCP listeners, bound-only sockets,
    /// unconnected UDP sockets): a listener created in a systemd socket
    /// unit's cgroup is that unit's.
    Listeners,
    /// Every socket the kernel gives a cgroup for.
    All,
}

/// Which forwarding rules (DNAT and REDIRECT) a probe reads: they take
/// a port without a socket of their own. Reading them is one netlink
/// dump per table family, done only when the question is about ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingRules {
    /// None: the listening view, `-a` and commands that do not show
    /// them.
    None,
    /// The forwards on the ports of [`Query::ports`].
    Asked,
    /// Every forward of the namespace, whatever port (`suggest`,
    /// `ephemeral`, which judge ports by the whole namespace).
    Every,
}

/// The sockets of a process, a user, a unit, a container or a cgroup:
/// a reverse query (`lsport --pid 1234`), alone or on top of ports.
/// Each list that is not empty must match (a socket of any of its
/// values); all empty: no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// The sockets these processes hold (pids as lsport sees them).
    pub pids: Vec<u32>,
    /// The sockets these uids own, as the kernel records the owner.
    pub uids: Vec<u32>,
    /// Sockets created in these systemd units or below them
    /// (`nginx.service`; a name without a suffix is a service).
    pub units: Vec<String>,
    /// Sockets created in these containers: an id prefix or a name.
    pub containers: Vec<String>,
    /// Sockets created in these cgroups or below them
    /// (`/system.slice/nginx.service`, or its directory on the mount).
    pub cgroups: Vec<String>,
}

impl Filters {
    /// Whether no filter is asked for.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.uids.is_empty() && !self.by_cgroup()
    }

    /// Whether a filter asks about the socket's cgroup.
    pub fn by_cgroup(&self) -> bool {
        !(self.units.is_empty() && self.containers.is_empty() && self.cgroups.is_empty())
    }
}

/// A probe's question: which sockets, from where, and how much to learn
/// about them. Build one with [`Query::ports`], [`Query::listening`] or
/// [`Query::all`], then adjust its fields.
#[derive(Debug, Clone)]
pub struct Query {
    /// Which sockets are reported.
    pub view: View,
    /// The ports asked for, in the order given, duplicates removed. Used
    /// by [`View::Ports`]; each gets its own verdict in the report.
    pub ports: Vec<PortRange>,
    /// Keep only sockets that wait on their port (listeners, bound-only
    /// TCP sockets, unconnected UDP sockets bound on purpose; not a UDP
    /// socket whose port the kernel chose), whatever the view.
    pub listening_only: bool,
    /// The protocols to look at.
    pub protocols: Vec<Protocol>,
    /// The address families to look at.
    pub families: Vec<Family>,
    /// Also match sockets whose remote port is one of [`Query::ports`].
    pub match_remote: bool,
    /// Where sockets come from.
    pub source: SourceChoice,
    /// Which network namespaces to probe.
    pub netns: NetnsChoice,
    /// How much to learn about the holders.
    pub holders: HolderDetail,
    /// Which walk finds the holders.
    pub holder_source: HolderSource,
    /// What is read about each holder process.
    pub process_fields: ProcessFields,
    /// Name holders' users from `/etc/passwd` (off: numbers only).
    pub user_names: bool,
    /// Keep only the sockets of these processes, users, units,
    /// containers or cgroups.
    pub filters: Filters,
    /// Which sockets get their cgroup named.
    pub cgroups: CgroupDetail,
    /// The caller needs only to know whether any socket matched: the
    /// probe may stop at the first one it finds, and reports only those
    /// it found by then.
    pub stop_at_first_match: bool,
    /// Which forwarding rules to read, in each namespace probed.
    pub forwarding_rules: ForwardingRules,
    /// Where `/proc` is (a test fixture may stand in for it).
    pub proc_root: ProcRoot,
    /// IANA's registry and the local names it lacks.
    pub services: Services,
    /// Unix sockets asked for by path or abstract name: each answered
    /// apart from the ports (see `unix::probe`).
    pub unix_targets: Vec<UnixTarget>,
    /// List Unix sockets (`--unix`): those that take connections or
    /// datagrams by name, or with the All view every one.
    pub unix: bool,
}

impl Query {
    fn with_view(view: View, ports: Vec<PortRange>) -> Query {
        let mut asked: Vec<PortRange> = Vec::with_capacity(ports.len());
        let mut seen = std::collections::HashSet::with_capacity(ports.len());
        for range in ports {
            if seen.insert(range) {
                asked.push(range);
            }
        }
        Query {
            view,
            ports: asked,
            listening_only: false,
            protocols: vec![Protocol::Tcp, Protocol::Udp],
            families: vec![Family::Inet, Family::Inet6],
            match_remote: false,
            source: SourceChoice::Auto,
            netns: NetnsChoice::Current,
            holders: HolderDetail::Processes,
            holder_source: HolderSource::Auto,
            process_fields: ProcessFields::ALL,
            user_names: true,
            filters: Filters::default(),
            cgroups: CgroupDetail::Hidden,
            stop_at_first_match: false,
            forwarding_rules: ForwardingRules::None,
            proc_root: ProcRoot::default(),
            services: Services::default(),
            unix_targets: Vec::new(),
            unix: false,
        }
    }

    /// Every socket whose local port is in `ports`, over TCP and UDP,
    /// IPv4 and IPv6, with its holders. Duplicates are dropped; the order
    /// is kept.
    pub fn ports(ports: impl IntoIterator<Item = PortRange>) -> Query {
        Query::with_view(View::Ports, ports.into_iter().collect())
    }

    /// What is listening, with holders.
    pub fn listening() -> Query {
        Query::with_view(View::Listening, Vec::new())
    }

    /// Every socket in every state, with holders.
    pub fn all() -> Query {
        Query::with_view(View::All, Vec::new())
    }

    /// The ports asked for, sorted and merged: what the kernel's filter
    /// matches.
    pub fn merged_ports(&self) -> Vec<PortRange> {
        portspec::normalize(self.ports.clone())
    }

    /// Whether a socket of this protocol and family is asked for.
    pub fn wants(&self, protocol: Protocol, family: Family) -> bool {
        self.protocols.contains(&protocol) && self.families.contains(&family)
    }

    /// Whether only unconnected sockets are wanted, by the view or by
    /// [`Query::listening_only`].
    pub fn unconnected_only(&self) -> bool {
        self.view == View::Listening || self.listening_only
    }
}
