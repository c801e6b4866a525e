//! `lsport why`: would this bind succeed, and if not, why not. The
//! verdict comes from a real trial in the namespace probed (see
//! [`trial`]), which stops short of any call that would take traffic
//! from a live server; the rules then judge what it left (see [`rules`]).
//! The causes come from one probe of the port, sorted by the kernel's
//! rules; each fix is checked as far as it can be: those that change the
//! bind itself are tried, the others are weighed by the rules or said to
//! be unverified (see [`fixes`]).

pub mod address;
pub mod as_user;
pub mod fixes;
pub mod guard;
pub mod held;
pub mod rules;
pub mod trial;
pub mod unix;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::Error;
use crate::forwards::Forward;
use crate::netns::{self, NetnsLabel};
use crate::ports::KernelPortPolicy;
use crate::probe::probe;
use crate::query::{CgroupDetail, ForwardingRules, HolderDetail, NetnsChoice, Query, View};
use crate::report::{self, Row};
use crate::services::Services;
use crate::socket::{Family, PortRange, Protocol, Socket, State};
use crate::source::SourceKind;

use address::LocalAddress;
use guard::Lookout;

pub use fixes::{Action, Check, Fix, StopTarget};
pub use rules::{Certainty, Coexistence, Known, Rule, Side};
pub use trial::{BindSpec, Outcome, Scope, Skipped, Stage, TrialUser};

/// What `lsport why` tries.
#[derive(Debug, Clone)]
pub struct WhyOptions {
    /// The bind.
    pub bind: BindSpec,
    /// Run the trial as this user instead of lsport's own (root only).
    pub as_user: Option<TrialUser>,
    /// Probe the port for causes, fixes and warnings; off when only the
    /// verdict is wanted (`-q`), which then reads no socket table beyond
    /// what the trial's lookout needs, unless the verdict itself must
    /// come from the rules.
    pub explain: bool,
}

/// Whether the bind would succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It would (and for TCP listen() too).
    Succeed,
    /// It would fail at this call with this errno.
    Fail {
        /// The call.
        stage: Stage,
        /// The errno.
        errno: i32,
    },
    /// The rules cannot tell: it turns on options of live sockets lsport
    /// could not read, and the trial could not be made without taking
    /// their traffic.
    Unknown,
}

impl Verdict {
    /// The verdict's name in JSON: `succeed`, `fail` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Succeed => "succeed",
            Verdict::Fail { .. } => "fail",
            Verdict::Unknown => "unknown",
        }
    }

    /// The failed call and its errno, for a failure.
    pub fn failure(self) -> Option<(Stage, i32)> {
        match self {
            Verdict::Fail { stage, errno } => Some((stage, errno)),
            _ => None,
        }
    }
}

/// Why a bind fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Sockets in the way, by one rule.
    Rule(Rule),
    /// The port is below `ip_unprivileged_port_start` and the trial ran
    /// without CAP_NET_BIND_SERVICE (EACCES).
    PrivilegedPort {
        /// `ip_unprivileged_port_start` of the namespace.
        unprivileged_start: u32,
    },
    /// The address is not one of the namespace's (EADDRNOTAVAIL).
    AddressNotAvailable,
    /// IPv6: the address is the namespace's, but duplicate address
    /// detection is still running on it (EADDRNOTAVAIL).
    AddressTentative {
        /// Its interface.
        interface: String,
    },
    /// IPv6: duplicate address detection found another host with the
    /// address; the kernel keeps it unusable (EADDRNOTAVAIL).
    AddressDuplicate {
        /// Its interface.
        interface: String,
    },
    /// A link-local address of another interface than the one given
    /// (EADDRNOTAVAIL).
    AddressOnOtherInterface {
        /// The interfaces that have it.
        interfaces: Vec<String>,
    },
    /// A link-local address without its interface (EINVAL).
    ScopeMissing {
        /// The interfaces that have it.
        interfaces: Vec<String>,
    },
    /// The interface given does not exist in the namespace (ENODEV).
    NoSuchInterface,
    /// The port is in use, yet no socket lsport can see explains it.
    Unseen,
    /// Another errno, said as the kernel said it.
    Errno,
}

impl Reason {
    /// The reason's stable name in JSON: a [`Rule`]'s name, or one of
    /// its own.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Rule(rule) => rule.name(),
            Reason::PrivilegedPort { .. } => "privileged_port",
            Reason::AddressNotAvailable => "address_not_available",
            Reason::AddressTentative { .. } => "address_tentative",
            Reason::AddressDuplicate { .. } => "address_duplicate",
            Reason::AddressOnOtherInterface { .. } => "address_on_other_interface",
            Reason::ScopeMissing { .. } => "scope_missing",
            Reason::NoSuchInterface => "no_such_interface",
            Reason::Unseen => "no_visible_socket",
            Reason::Errno => "errno",
        }
    }
}

/// A socket in the way, with what lsport knows of it.
#[derive(Debug, Clone)]
pub struct InTheWay {
    /// The socket and its holders.
    pub row: Row,
    /// Its SO_REUSEADDR and SO_REUSEPORT, where known.
    pub known: Known,
    /// For a TCP connection: which end it is, as far as the kernel tells.
    pub side: Option<Side>,
}

/// One cause of a failed bind: a reason, and the sockets it applies to.
#[derive(Debug, Clone)]
pub struct Cause {
    /// Why.
    pub reason: Reason,
    /// Whether the rules are sure (see [`Certainty`]).
    pub certainty: Certainty,
    /// The sockets in the way, with their holders; empty for reasons
    /// that are no socket's.
    pub sockets: Vec<InTheWay>,
}

/// A socket found in some namespace.
#[derive(Debug, Clone)]
pub struct FoundSocket {
    /// The socket and its holders.
    pub row: Row,
    /// Its namespace.
    pub netns: NetnsLabel,
}

/// What could make a bind that succeeds now fail later, or surprise.
#[derive(Debug, Clone)]
pub enum Warning {
    /// The port is in the ephemeral range and not reserved: an outgoing
    /// connection may take it while the service is down.
    Ephemeral {
        /// The namespace's ephemeral range.
        range: PortRange,
        /// The new value of `ip_local_reserved_ports` that reserves it.
        reserved_ports: String,
    },
    /// The port needs CAP_NET_BIND_SERVICE: the bind succeeded as root,
    /// and would fail for another user.
    Privileged {
        /// `ip_unprivileged_port_start` of the namespace.
        unprivileged_start: u32,
    },
    /// Sockets on the port in this namespace that do not conflict.
    Coexists {
        /// How they live beside the new socket.
        how: Coexistence,
        /// The sockets.
        sockets: Vec<Row>,
    },
    /// The port is in use in other network namespaces (`--all-netns`),
    /// which never conflict with this one.
    OtherNamespaces {
        /// The sockets there.
        sockets: Vec<FoundSocket>,
    },
    /// Forwarding rules take the port: the bind succeeds, but the
    /// traffic they take never reaches the new server.
    Forwarded {
        /// The rules' forwards on the port (a rule reached from two
        /// hooks twice).
        forwards: Vec<Forward>,
    },
    /// The forwarding rules could not be read: the port may be
    /// forwarded elsewhere all the same.
    RulesNotRead {
        /// What was not read and why, each in one line.
        what: Vec<String>,
    },
}

impl Warning {
    /// The warning's stable name in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Warning::Ephemeral { .. } => "ephemeral",
            Warning::Privileged { .. } => "privileged",
            Warning::Coexists { how, .. } => how.name(),
            Warning::OtherNamespaces { .. } => "other_namespaces",
            Warning::Forwarded { .. } => "forwarded",
            Warning::RulesNotRead { .. } => "rules_not_read",
        }
    }
}

/// `lsport why`'s answer.
#[derive(Debug)]
pub struct WhyReport {
    /// The bind as asked.
    pub bind: BindSpec,
    /// The user the trial ran as, if not lsport's own.
    pub as_user: Option<TrialUser>,
    /// The uid the trial ran as.
    pub uid: u32,
    /// What the trial did and the kernel said.
    pub outcome: Outcome,
    /// The verdict: the trial's, or the rules' for a call it left.
    pub verdict: Verdict,
    /// The namespace of the trial.
    pub netns: NetnsLabel,
    /// Its port policy; None when nothing was probed.
    pub policy: Option<KernelPortPolicy>,
    /// Why it fails; empty when it succeeds.
    pub causes: Vec<Cause>,
    /// What to do, most direct first; empty when it succeeds.
    pub fixes: Vec<Fix>,
    /// What could make it fail later; other namespaces' sockets are
    /// listed whatever the verdict.
    pub warnings: Vec<Warning>,
    /// Where the sockets came from, when probed.
    pub source: Option<SourceKind>,
    /// Sockets whose holders this user may not see.
    pub hidden_holders: usize,
    /// Namespaces that could not be probed (`--all-netns`).
    pub skipped: Vec<String>,
}

impl WhyReport {
    /// Whether the bind (and for TCP the listen) would succeed.
    pub fn would_succeed(&self) -> bool {
        self.verdict == Verdict::Succeed
    }
}

impl TrialUser {
    /// USER as `--as` takes it: a name from the passwd file, or a uid
    /// (its entry's gid, or the same number when it has none or the file
    /// cannot be read). The file is read bounded (see
    /// `holders::users::read_passwd`): a fifo or a device there is
    /// refused at once.
    pub fn resolve(user: &str, passwd: &std::path::Path) -> Result<TrialUser, Error> {
        let uid = user.parse::<u32>().ok().filter(|uid| *uid != u32::MAX);
        let text = match crate::holders::users::read_passwd(passwd) {
            Ok(text) => text,
            Err(err) if uid.is_none() => {
                return Err(Error::Usage(format!(
                    "--as {user}: {} cannot be read ({err}): give the user as a uid",
                    passwd.display()
                )));
            }
            Err(_) => String::new(),
        };
        if let Some(account) = crate::holders::users::find_account(&text, user) {
            return Ok(TrialUser {
                uid: account.uid,
                gid: account.gid,
                name: Some(account.name),
            });
        }
        match uid {
            Some(uid) => Ok(TrialUser {
                uid,
                gid: uid,
                name: None,
            }),
            None => Err(Error::Usage(format!(
                "unknown user '{user}': not a name in {} nor a uid",
                passwd.display()
            ))),
        }
    }
}

/// What `[ADDRESS:]PORT` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address; None when not given (or `*`).
    pub address: Option<IpAddr>,
    /// The interface of a link-local IPv6 address (`%eth0`).
    pub scope: Option<Scope>,
    /// The port.
    pub port: u16,
}

/// `[ADDRESS:]PORT` as `lsport why` takes it: `8080`, `ssh`,
/// `127.0.0.1:8080`, `[::1]:8080`, `[fe80::1%eth0]:8080`, `*:8080`. A
/// service name stands for its port (one, whatever the protocol).
pub fn parse_target(text: &str, services: &Services) -> Result<Target, Error> {
    let bad_address = |address: &str| {
        Error::Usage(format!(
            "invalid address '{address}' in '{text}': give an IPv4 address (127.0.0.1:8080) \
             or an IPv6 one in brackets ([::1]:8080)"
        ))
    };
    let no_port = |example: String| {
        Error::Usage(format!(
            "'{text}' is an address without a port: give one, as {example}"
        ))
    };
    if text.is_empty() {
        return Err(Error::usage("empty port argument: give a port, as 8080"));
    }
    let (address, scope, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| bad_address(text))?;
        let (address, scope) = parse_scoped_v6(inside).ok_or_else(|| bad_address(inside))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(no_port(format!("[{inside}]:8080"))),
            None => return Err(bad_address(text)),
        };
        (Some(IpAddr::V6(address)), scope, port)
    } else {
        if text.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()) {
            return Err(no_port(format!("{text}:8080")));
        }
        if parse_scoped_v6(text).is_some() {
            return Err(no_port(format!("[{text}]:8080")));
        }
        match text.rsplit_once(':') {
            None => (None, None, text),
            Some((address, _)) if address.contains(':') => return Err(bad_address(address)),
            Some(("*", port)) => (None, None, port),
            Some((address, port)) => {
                let address: std::net::Ipv4Addr =
                    address.parse().map_err(|_| bad_address(address))?;
                (Some(IpAddr::V4(address)), None, port)
            }
        }
    };
    let port = parse_port(port, services)?;
    if scope.is_some() && !address.is_some_and(address::is_link_local) {
        return Err(Error::Usage(format!(
            "'{text}': only a link-local address (fe80::/10) takes an interface after %"
        )));
    }
    Ok(Target {
        address,
        scope,
        port,
    })
}

/// `fe80::1%eth0`, `fe80::1%2` or `::1`.
fn parse_scoped_v6(text: &str) -> Option<(std::net::Ipv6Addr, Option<Scope>)> {
    let (address, scope) = match text.split_once('%') {
        Some((address, scope)) => (address, Some(scope)),
        None => (text, None),
    };
    let address: std::net::Ipv6Addr = address.parse().ok()?;
    let scope = match scope {
        None => None,
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(Scope::Index(s.parse().ok()?))
        }
        // IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and
        // whitespace in a name.
        Some(s)
            if !s.is_empty()
                && s.len() < 16
                && !s
                    .bytes()
                    .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace()) =>
        {
            Some(Scope::Name(s.to_string()))
        }
        Some(_) => return None,
    };
    Some((address, scope))
}

/// The port of a target, as every command reads one (see
/// [`crate::portspec`]); 0 is no port to try.
fn parse_port(text: &str, services: &Services) -> Result<u16, Error> {
    if text.is_empty() {
        return Err(Error::usage("the port is missing: give one, as 8080"));
    }
    match crate::portspec::parse_port(text, services)? {
        0 => Err(Error::usage(
            "port 0 asks the kernel to pick a port: give the port to check",
        )),
        port => Ok(port),
    }
}

/// One trial to run: a bind, as a user, maybe keeping
/// CAP_NET_BIND_SERVICE.
#[derive(Debug, Clone)]
pub struct TrialRun {
    /// The bind.
    pub spec: BindSpec,
    /// The user, when not lsport's own.
    pub user: Option<TrialUser>,
    /// Keep CAP_NET_BIND_SERVICE after becoming `user`.
    pub keep_bind_service: bool,
}

/// Runs `work` where the trials belong: on a thread inside the
/// namespace asked for, or here (lsport's own namespace, which is also
/// where `--all-netns` tries the bind).
fn in_namespace<T: Send>(
    query: &Query,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    match &query.netns {
        NetnsChoice::One(path) => {
            netns::run_in(path, None, work).map_err(|e| e.into_error(path))?
        }
        _ => work(),
    }
}

/// One trial, here, or in a child process of its own when it runs as
/// another user (see [`as_user`]).
fn run_one(lookout: &Lookout, run: &TrialRun) -> Result<Outcome, Error> {
    let guard = |spec: &BindSpec, v6only| lookout.sharers(spec, v6only);
    match &run.user {
        None => trial::attempt(&run.spec, &guard),
        Some(user) => as_user::attempt(user, run.keep_bind_service, &run.spec, &guard),
    }
}

/// Runs trials in the namespace of `query`, in order.
fn run_trials(query: &Query, lookout: &Lookout, runs: &[TrialRun]) -> Result<Vec<Outcome>, Error> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    in_namespace(query, || {
        runs.iter().map(|run| run_one(lookout, run)).collect()
    })
}

/// What lsport knows of the options of the port's sockets, by inode.
#[derive(Debug, Default, Clone)]
pub struct Knowns {
    by_inode: HashMap<u64, Known>,
}

/// How many sockets' options are read, at most (a few microseconds
/// each): beyond that, on a port busier still, the rest stay unknown.
const MOST_OPTIONS_READ: usize = 4096;

impl Knowns {
    /// Reads the options of the rows whose verdict or certainty turns on
    /// them: the UDP sockets the trial would share the port with, and the
    /// sockets only possibly in the way.
    fn read(view: &rules::TrialView<'_>, rows: &[Row]) -> Knowns {
        let mut by_inode = HashMap::new();
        let worth = rows.iter().filter(|row| {
            let s = &row.socket;
            s.inode != 0
                && !row.holders.is_empty()
                && view.meets(s)
                && (s.protocol == Protocol::Udp
                    || rules::judge(view, s, Known::default())
                        .is_some_and(|(_, c)| c == Certainty::Possible))
        });
        let mut reader = held::Reader::default();
        for row in worth.take(MOST_OPTIONS_READ) {
            by_inode.insert(row.socket.inode, reader.options_of(row));
        }
        Knowns { by_inode }
    }

    /// What is known of `socket`.
    pub fn of(&self, socket: &Socket) -> Known {
        if socket.inode == 0 {
            return Known::default();
        }
        self.by_inode
            .get(&socket.inode)
            .copied()
            .unwrap_or_default()
    }

    /// Learns that `socket` set SO_REUSEPORT (a trial said so).
    fn learn_reuseport(&mut self, socket: &Socket) {
        if socket.inode != 0 {
            self.by_inode.entry(socket.inode).or_default().reuseport = Some(true);
        }
    }
}

/// The verdict on an outcome: the kernel's answer, or the rules' on the
/// call the trial left.
fn judge_outcome(view: &rules::TrialView<'_>, outcome: &Outcome, knowns: &Knowns) -> Verdict {
    if let Some((stage, errno)) = outcome.failure {
        return Verdict::Fail { stage, errno };
    }
    match &outcome.skipped {
        // The kernel checks listen() by the rules it checked bind() by.
        None | Some(Skipped::Listen { .. }) => Verdict::Succeed,
        Some(Skipped::Bind { sharers }) => {
            let mut unknown = false;
            for sharer in sharers {
                match rules::conflicts(view, sharer, knowns.of(sharer)) {
                    Some(true) => {
                        return Verdict::Fail {
                            stage: Stage::Bind,
                            errno: libc::EADDRINUSE,
                        };
                    }
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            if unknown {
                Verdict::Unknown
            } else {
                Verdict::Succeed
            }
        }
    }
}

/// Runs the trial, then probes the port in the same namespace, and
/// explains. `query` names the namespace(s) and how much to learn about
/// holders; its view, ports and protocols are set here.
pub fn run(query: &Query, options: &WhyOptions) -> Result<WhyReport, Error> {
    let spec = &options.bind;
    if spec.port == 0 {
        return Err(Error::usage(
            "port 0 asks the kernel to pick a port: give the port to check",
        ));
    }
    let own_uid = nix::unistd::geteuid().as_raw();
    let uid = options.as_user.as_ref().map_or(own_uid, |u| u.uid);
    let lookout = Lookout::new(query);
    let main = TrialRun {
        spec: spec.clone(),
        user: options.as_user.clone(),
        keep_bind_service: false,
    };
    let (outcome, addresses) = in_namespace(query, || {
        let outcome = run_one(&lookout, &main)?;
        // What a failed bind asked for, and what else a fix may bind.
        let addresses = if outcome.succeeded() {
            Vec::new()
        } else {
            address::local_addresses(&query.proc_root)
        };
        Ok((outcome, addresses))
    })?;
    let left_to_rules =
        matches!(outcome.skipped, Some(Skipped::Bind { .. })) && outcome.succeeded();
    let mut answer = WhyReport {
        bind: spec.clone(),
        as_user: options.as_user.clone(),
        uid,
        verdict: judge_outcome(
            &rules::TrialView {
                spec,
                v6only: outcome.v6only,
                uid,
            },
            &outcome,
            &Knowns::default(),
        ),
        outcome,
        netns: NetnsLabel::default(),
        policy: None,
        causes: Vec::new(),
        fixes: Vec::new(),
        warnings: Vec::new(),
        source: None,
        hidden_holders: 0,
        skipped: Vec::new(),
    };
    if !options.explain && !left_to_rules {
        return Ok(answer);
    }
    // Every socket of the trial's protocol on the port, both families:
    // a dual-stack socket of either family may be the one in the way.
    let mut asked = query.clone();
    asked.view = View::Ports;
    asked.ports = vec![PortRange::single(spec.port)];
    asked.protocols = vec![spec.protocol];
    asked.families = vec![Family::Inet, Family::Inet6];
    asked.match_remote = false;
    asked.listening_only = false;
    asked.stop_at_first_match = false;
    // The rules need the holders to read the sockets' options.
    asked.holders = HolderDetail::Processes;
    // A listener of a socket unit is named by its cgroup.
    asked.cgroups = if options.explain {
        CgroupDetail::Listeners
    } else {
        CgroupDetail::None
    };
    asked.forwarding_rules = if options.explain {
        ForwardingRules::Asked
    } else {
        ForwardingRules::None
    };
    let report = probe(&asked)?;
    answer.hidden_holders = report.hidden_sockets();
    answer.skipped = report.skipped;
    let own = match query.netns {
        NetnsChoice::All => query.proc_root.own_netns_inode(),
        _ => None,
    };
    let mut here = None;
    let mut elsewhere = Vec::new();
    for namespace in report.namespaces {
        let is_here = here.is_none() && (own.is_none() || namespace.netns.inode == own);
        if is_here {
            here = Some(namespace);
        } else {
            let label = namespace.netns;
            elsewhere.extend(namespace.rows.into_iter().map(|row| FoundSocket {
                row,
                netns: label.clone(),
            }));
        }
    }
    let Some(here) = here else {
        return Err(Error::Netns {
            target: "lsport's own".into(),
            reason: "its network namespace was not among those probed".into(),
        });
    };
    let forward = forward_warning(&here);
    answer.netns = here.netns;
    answer.source = Some(here.source);
    let view = rules::TrialView {
        spec,
        v6only: answer.outcome.v6only,
        uid,
    };
    let mut knowns = Knowns::read(&view, &here.rows);
    answer.verdict = judge_outcome(&view, &answer.outcome, &knowns);
    answer.policy = Some(here.policy.clone());
    if !options.explain {
        return Ok(answer);
    }
    let context = fixes::Context {
        view,
        rows: &here.rows,
        policy: &here.policy,
        addresses: &addresses,
        as_user: options.as_user.as_ref(),
        lsport_is_root: own_uid == 0,
        services: &query.services,
        proc_root: &query.proc_root,
    };
    if answer.verdict == Verdict::Succeed {
        answer.warnings = warnings(&view, &here.rows, &here.policy, &knowns);
    } else {
        let peers = peer_listeners(query, &view, &here.rows, &here.policy, &knowns)?;
        let first = causes(&context, answer.verdict, &knowns, &peers);
        let plan = fixes::plan(&context, answer.verdict, &first);
        let outcomes = run_trials(query, &lookout, &plan.runs())?;
        let tried = plan.settle(&context, &outcomes, &mut knowns);
        answer.causes = causes(&context, answer.verdict, &knowns, &peers);
        answer.fixes = fixes::offer(&context, &answer.causes, tried, &knowns);
    }
    answer.warnings.extend(forward);
    if !elsewhere.is_empty() {
        answer
            .warnings
            .push(Warning::OtherNamespaces { sockets: elsewhere });
    }
    Ok(answer)
}

/// What the namespace's forwarding rules say of the port: the rules
/// that take it, or that they could not all be read.
fn forward_warning(here: &report::NamespaceReport) -> Option<Warning> {
    let forwards: Vec<Forward> = here
        .ports
        .iter()
        .flat_map(|v| v.forwards.iter().cloned())
        .collect();
    if !forwards.is_empty() {
        return Some(Warning::Forwarded { forwards });
    }
    let mut what: Vec<String> = here.rules_unread().iter().map(|u| u.describe()).collect();
    what.extend(
        here.ports
            .iter()
            .flat_map(|v| v.undecoded.iter().map(ToString::to_string)),
    );
    (!what.is_empty()).then_some(Warning::RulesNotRead { what })
}

/// The TCP listeners on the ports the port's connections are connected
/// to, where those peers are local: a connection whose peer listens is
/// the client end (see [`rules::connection_side`]). One more probe, made
/// only when some connection's side is otherwise unknown.
fn peer_listeners(
    query: &Query,
    view: &rules::TrialView<'_>,
    rows: &[Row],
    policy: &KernelPortPolicy,
    knowns: &Knowns,
) -> Result<Vec<Socket>, Error> {
    let listeners = tcp_listeners(rows);
    let mut ports: Vec<u16> = rows
        .iter()
        .filter(|row| {
            row.socket.protocol == Protocol::Tcp
                && rules::judge(view, &row.socket, knowns.of(&row.socket))
                    .is_some_and(|(rule, _)| rule == Rule::Connection)
                && rules::connection_side(&row.socket, &listeners, &[], policy) == Side::Unknown
        })
        .map(|row| row.socket.remote.port)
        .filter(|port| *port != 0)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports.truncate(64);
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let mut asked = query.clone();
    asked.view = View::Ports;
    asked.ports = ports.into_iter().map(PortRange::single).collect();
    asked.protocols = vec![Protocol::Tcp];
    asked.families = vec![Family::Inet, Family::Inet6];
    asked.listening_only = true;
    asked.match_remote = false;
    asked.stop_at_first_match = false;
    asked.holders = HolderDetail::None;
    asked.cgroups = CgroupDetail::None;
    if asked.netns == NetnsChoice::All {
        asked.netns = NetnsChoice::Current;
    }
    let report = probe(&asked)?;
    Ok(report
        .namespaces
        .into_iter()
        .flat_map(|n| n.rows.into_iter().map(|r| r.socket))
        .filter(|s| s.state == State::Listen)
        .collect())
}

/// Why the bind fails, from the verdict and the port's sockets.
fn causes(
    context: &fixes::Context<'_>,
    verdict: Verdict,
    knowns: &Knowns,
    peers: &[Socket],
) -> Vec<Cause> {
    let view = &context.view;
    let spec = view.spec;
    let (stage, errno) = match verdict {
        Verdict::Succeed => return Vec::new(),
        Verdict::Fail { stage, errno } => (stage, errno),
        // Unknown comes only from the sharing rules.
        Verdict::Unknown => (Stage::Bind, libc::EADDRINUSE),
    };
    let alone = |reason| {
        vec![Cause {
            reason,
            certainty: Certainty::Certain,
            sockets: Vec::new(),
        }]
    };
    match errno {
        libc::EADDRINUSE => {}
        libc::EACCES if stage == Stage::Bind && context.policy.is_privileged(spec.port) => {
            return alone(Reason::PrivilegedPort {
                unprivileged_start: context.policy.unprivileged_start.value,
            });
        }
        libc::EADDRNOTAVAIL => return alone(address_reason(spec, context.addresses)),
        libc::EINVAL if spec.scope.is_none() && address::is_link_local(spec.address) => {
            return alone(Reason::ScopeMissing {
                interfaces: interfaces_with(spec.address, context.addresses),
            });
        }
        libc::ENODEV if spec.scope.is_some() => return alone(Reason::NoSuchInterface),
        _ => return alone(Reason::Errno),
    }
    let listeners = tcp_listeners(context.rows);
    let mut causes: Vec<Cause> = Vec::new();
    for row in context.rows {
        let known = knowns.of(&row.socket);
        let Some((rule, certainty)) = rules::judge(view, &row.socket, known) else {
            continue;
        };
        let side = (rule == Rule::Connection)
            .then(|| rules::connection_side(&row.socket, &listeners, peers, context.policy));
        let entry = InTheWay {
            row: row.clone(),
            known,
            side,
        };
        let reason = Reason::Rule(rule);
        match causes
            .iter_mut()
            .find(|c| c.reason == reason && c.certainty == certainty)
        {
            Some(cause) => cause.sockets.push(entry),
            None => causes.push(Cause {
                reason,
                certainty,
                sockets: vec![entry],
            }),
        }
    }
    if causes.is_empty() {
        return vec![Cause {
            reason: Reason::Unseen,
            certainty: Certainty::Possible,
            sockets: Vec::new(),
        }];
    }
    // Certain causes first, each group in the order of the rules.
    causes.sort_by_key(|c| {
        (
            c.certainty,
            match c.reason {
                Reason::Rule(rule) => rule,
                _ => Rule::Udp,
            },
        )
    });
    causes
}

/// The TCP listeners among the port's sockets.
fn tcp_listeners(rows: &[Row]) -> Vec<Socket> {
    rows.iter()
        .map(|r| &r.socket)
        .filter(|s| s.protocol == Protocol::Tcp && s.state == State::Listen)
        .cloned()
        .collect()
}

/// Why the kernel refused the address (EADDRNOTAVAIL).
fn address_reason(spec: &BindSpec, addresses: &[LocalAddress]) -> Reason {
    let same: Vec<&LocalAddress> = addresses
        .iter()
        .filter(|a| a.address == spec.address)
        .collect();
    if let Some(scope) = &spec.scope {
        let on_scope = |a: &&LocalAddress| match scope {
            Scope::Index(index) => a.index == *index,
            Scope::Name(name) => a.interface == *name,
        };
        if !same.is_empty() && !same.iter().any(on_scope) {
            return Reason::AddressOnOtherInterface {
                interfaces: interfaces_with(spec.address, addresses),
            };
        }
    }
    if let Some(a) = same.iter().find(|a| a.dad_failed) {
        return Reason::AddressDuplicate {
            interface: a.interface.clone(),
        };
    }
    if let Some(a) = same.iter().find(|a| a.tentative) {
        return Reason::AddressTentative {
            interface: a.interface.clone(),
        };
    }
    Reason::AddressNotAvailable
}

/// The interfaces that have `address`, each once.
fn interfaces_with(address: IpAddr, addresses: &[LocalAddress]) -> Vec<String> {
    let mut names: Vec<String> = addresses
        .iter()
        .filter(|a| a.address == address)
        .map(|a| a.interface.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn warnings(
    view: &rules::TrialView<'_>,
    rows: &[Row],
    policy: &KernelPortPolicy,
    knowns: &Knowns,
) -> Vec<Warning> {
    let port = view.spec.port;
    let mut warnings = Vec::new();
    if policy.may_be_taken_by_outgoing(port) {
        warnings.push(Warning::Ephemeral {
            range: policy.ephemeral.value,
            reserved_ports: report::reserved_ports_with(policy, &[port]),
        });
    }
    if policy.is_privileged(port) {
        warnings.push(Warning::Privileged {
            unprivileged_start: policy.unprivileged_start.value,
        });
    }
    for how in [
        Coexistence::TakesDatagrams,
        Coexistence::JoinsGroup,
        Coexistence::OtherFamily,
        Coexistence::OtherAddress,
        Coexistence::SharesPort,
    ] {
        let sockets: Vec<Row> = rows
            .iter()
            .filter(|row| {
                rules::coexistence(view, &row.socket, knowns.of(&row.socket)) == Some(how)
            })
            .cloned()
            .collect();
        if !sockets.is_empty() {
            warnings.push(Warning::Coexists { how, sockets });
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Result<Target, Error> {
        parse_target(text, &Services::default())
    }

    #[test]
    fn targets_take_an_optional_address_of_either_family() {
        let plain = |address: Option<&str>, port| Target {
            address: address.map(|a| a.parse().unwrap()),
            scope: None,
            port,
        };
        assert_eq!(target("8080").unwrap(), plain(None, 8080));
        assert_eq!(target("*:8080").unwrap(), plain(None, 8080));
        assert_eq!(
            target("127.0.0.1:80").unwrap(),
            plain(Some("127.0.0.1"), 80)
        );
        assert_eq!(target("[::1]:80").unwrap(), plain(Some("::1"), 80));
        assert_eq!(target("ssh").unwrap(), plain(None, 22));
        assert_eq!(
            target("127.0.0.1:ssh").unwrap(),
            plain(Some("127.0.0.1"), 22)
        );
        assert_eq!(
            target("[fe80::1%eth0]:80").unwrap(),
            Target {
                address: Some("fe80::1".parse().unwrap()),
                scope: Some(Scope::Name("eth0".into())),
                port: 80
            }
        );
        assert_eq!(
            target("[fe80::1%2]:80").unwrap().scope,
            Some(Scope::Index(2))
        );
        for bad in [
            "::1:80",
            "1.2.3:80",
            "[::1]80",
            "[1.2.3.4]:80",
            "x:80",
            "70000",
            "0",
            "",
            "-1",
            "[::1%eth0]:80",
            "[fe80::1%]:80",
            "[fe80::1%a/b]:80",
            "no-such-service-lsport",
            "x11",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
        let message = |text| target(text).unwrap_err().to_string();
        assert!(message("70000").contains("0 to 65535"));
        for address_alone in ["[::1]", "::1", "127.0.0.1", "fe80::1%eth0"] {
            let text = message(address_alone);
            assert!(text.contains("without a port"), "{address_alone}: {text}");
        }
        assert!(message("x11").contains("several ports"));
    }
}
