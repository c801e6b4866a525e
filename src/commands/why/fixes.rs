//! What would make a failed bind succeed, each fix checked as far as it
//! can be. A fix that changes the bind itself (an option, the address,
//! the interface, the user, a capability, the port) is tried: the same
//! bind with that change, through the same trial as the verdict, and it
//! is offered only when the kernel accepts it. A fix that changes the
//! world (stop a process, wait for TIME_WAIT, reserve the port) cannot
//! be tried; the rules weigh it instead (does anything stay in the way
//! after it?), and it says so.
//!
//! The same trials also settle what the options of a listener (which
//! `held` never reads) hide: whether a listener of the trial's user
//! lets it into its SO_REUSEPORT group (a bind on that listener's own
//! address), and whether another user's listener is a group of that
//! user (a bind as that user).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::commands::kill;
use crate::commands::suggest::{self, SuggestQuery};
use crate::commands::why::address::{self, LocalAddress};
use crate::commands::why::rules::{self, Certainty, Rule, Side, TrialView};
use crate::commands::why::trial::{Outcome, Scope, Skipped, TrialUser};
use crate::commands::why::{Cause, InTheWay, Knowns, Reason, TrialRun, Verdict, judge_outcome};
use crate::holders::container::Container;
use crate::holders::{process, socket_units};
use crate::ports::KernelPortPolicy;
use crate::report::{self, Row};
use crate::services::Services;
use crate::socket::{Protocol, Socket, State};
use crate::sys::ProcRoot;

/// What the fixes are worked out from.
pub struct Context<'a> {
    /// The trial as the rules see it.
    pub view: TrialView<'a>,
    /// The port's sockets in the trial's namespace.
    pub rows: &'a [Row],
    /// The namespace's port policy.
    pub policy: &'a KernelPortPolicy,
    /// The namespace's addresses, read when the trial failed.
    pub addresses: &'a [LocalAddress],
    /// `--as`.
    pub as_user: Option<&'a TrialUser>,
    /// Whether lsport runs as root, and so may try a bind as another user.
    pub lsport_is_root: bool,
    /// Service names, to keep a suggested port off registered ones.
    pub services: &'a Services,
    /// Where `/proc` is.
    pub proc_root: &'a ProcRoot,
}

/// How a fix was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Tried: the same bind with the fix applied, and the kernel accepted
    /// it.
    Tried,
    /// Not tried, as it changes what a trial cannot; by the kernel's
    /// rules nothing lsport sees stays in the way after it.
    Rules,
    /// Not tried, and something may stay in the way after it (the fix
    /// says what), or the rules cannot tell.
    Unverified,
}

impl Check {
    /// The name in JSON: `trial`, `rules` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Tried => "trial",
            Check::Rules => "rules",
            Check::Unverified => "none",
        }
    }
}

/// Whom to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopTarget {
    /// A systemd unit or container whose processes hold every socket in
    /// the way: stopping it stops them all, and keeps it from starting
    /// them again.
    Supervisor {
        /// The unit or container.
        container: Container,
        /// For a systemd socket unit, the service it starts, where its
        /// unit file says: both are stopped.
        activates: Option<String>,
        /// Its processes that hold the sockets.
        pids: Vec<u32>,
    },
    /// A process, with the workers it started that hold the sockets too
    /// and end with it.
    Process {
        /// Its pid.
        pid: u32,
        /// Its command name, raw (escape before showing).
        command: Vec<u8>,
        /// Its workers among the holders.
        workers: Vec<u32>,
    },
    /// A holder this user cannot see: the socket's owner.
    Hidden {
        /// The owner's uid.
        uid: u32,
    },
    /// A holder lsport would not signal (pid 1, a kernel thread, lsport
    /// or its ancestors): not stopped, and said so.
    Refused {
        /// Its pid.
        pid: u32,
        /// Its command name, raw (escape before showing).
        command: Vec<u8>,
        /// Why.
        refusal: process::Refusal,
    },
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Stop the holders of every socket in the way (all of them: each
    /// alone may not be enough).
    Stop {
        /// Whom.
        targets: Vec<StopTarget>,
        /// Their connections on the port close from this end and stay in
        /// TIME_WAIT, which then blocks the bind (certainly, or if the
        /// connection's socket did not set SO_REUSEADDR).
        time_wait_after: Option<Certainty>,
        /// Sockets in the way that stopping them leaves (TIME_WAIT,
        /// orphaned connections, sockets whose holder is unknown).
        leaves: Vec<Row>,
    },
    /// Wait for TIME_WAIT (and orphaned connections) to end.
    WaitTimeWait {
        /// Seconds left on the longest TIME_WAIT timer, rounded up; None
        /// when the source gives no timer (/proc/net), or none of them
        /// is in TIME_WAIT.
        seconds: Option<u32>,
        /// Some are orphaned connections, which may take longer (their
        /// FIN_WAIT2 timeout, or their retransmissions).
        orphans: bool,
        /// Sockets in the way that do not end by themselves.
        leaves: Vec<Row>,
    },
    /// Set SO_REUSEADDR.
    SetReuseaddr,
    /// Set SO_REUSEPORT, joining the SO_REUSEPORT group in the way.
    SetReuseport,
    /// Set IPV6_V6ONLY.
    SetV6only,
    /// Bind one of these addresses instead of the wildcard.
    BindSpecificAddress {
        /// Addresses the kernel accepted the bind on.
        addresses: Vec<IpAddr>,
    },
    /// Reserve the port so that connect() stops taking it.
    ReservePort {
        /// The new value of `ip_local_reserved_ports`, the current list
        /// kept.
        reserved_ports: String,
    },
    /// Run as the user that owns the SO_REUSEPORT group.
    RunAsGroupOwner {
        /// The group's uid.
        uids: Vec<u32>,
    },
    /// Bind the privileged port with CAP_NET_BIND_SERVICE, or lower the
    /// namespace's `ip_unprivileged_port_start`.
    AllowPrivilegedPort,
    /// Bind the wildcard of the address's family.
    BindWildcard {
        /// The wildcard.
        address: IpAddr,
    },
    /// Set IP_FREEBIND, or the namespace's `ip_nonlocal_bind`.
    SetFreebind,
    /// Give the link-local address its interface.
    GiveScope {
        /// Interfaces that have the address, and the kernel accepted.
        interfaces: Vec<String>,
    },
    /// Wait until duplicate address detection ends.
    WaitForDad {
        /// The address's interface.
        interface: String,
    },
    /// Pick another port.
    PickAnotherPort {
        /// The nearest port `lsport suggest` would give on which the
        /// kernel accepted the same bind.
        port: u16,
    },
}

/// One fix and how it was checked.
#[derive(Debug, Clone)]
pub struct Fix {
    /// What to do.
    pub action: Action,
    /// How it was checked.
    pub check: Check,
}

impl Fix {
    /// The fix's stable name in JSON.
    pub fn name(&self) -> &'static str {
        match &self.action {
            Action::Stop { targets, .. } => match targets[..] {
                [StopTarget::Supervisor { .. }] => "stop_supervisor",
                _ if targets
                    .iter()
                    .all(|t| matches!(t, StopTarget::Hidden { .. })) =>
                {
                    "stop_hidden_holder"
                }
                _ => "stop_process",
            },
            Action::WaitTimeWait { .. } => "wait_time_wait",
            Action::SetReuseaddr => "set_reuseaddr",
            Action::SetReuseport => "set_reuseport",
            Action::SetV6only => "set_v6only",
            Action::BindSpecificAddress { .. } => "bind_specific_address",
            Action::ReservePort { .. } => "reserve_port",
            Action::RunAsGroupOwner { .. } => "run_as_group_owner",
            Action::AllowPrivilegedPort => "allow_privileged_port",
            Action::BindWildcard { .. } => "bind_local_address",
            Action::SetFreebind => "set_freebind",
            Action::GiveScope { .. } => "give_scope",
            Action::WaitForDad { .. } => "wait_for_dad",
            Action::PickAnotherPort { .. } => "pick_another_port",
        }
    }

    /// Whether the kernel was asked and accepted the bind with this fix.
    pub fn verified(&self) -> bool {
        self.check == Check::Tried
    }
}

/// Why a trial of the plan runs.
#[derive(Debug, Clone)]
enum Purpose {
    /// To check a fix, offered if the bind succeeds.
    Fix(Action),
    /// A listener of the trial's user may be in the way, or may let the
    /// trial into its SO_REUSEPORT group: a bind on its own address says.
    LetsIn(Socket),
    /// Another user's listeners: a bind as that user says whether they
    /// are an SO_REUSEPORT group of it (and that running as it works).
    GroupOf { uid: u32, listeners: Vec<Socket> },
}

/// The trials to run for the fixes, and why each.
#[derive(Debug)]
pub struct Plan {
    /// The bind as asked, which each trial changes.
    base: TrialRun,
    planned: Vec<(Purpose, TrialRun)>,
}

/// How many of the namespace's addresses, and of the ports near the one
/// asked, are tried at most.
const MOST_ADDRESSES_TRIED: usize = 6;
const MOST_PORTS_TRIED: usize = 6;

/// The trials that check the fixes for `verdict`, given the first view
/// of the causes.
pub fn plan(context: &Context<'_>, verdict: Verdict, causes: &[Cause]) -> Plan {
    let view = &context.view;
    let spec = view.spec;
    let mut plan = Plan {
        base: TrialRun {
            spec: spec.clone(),
            user: context.as_user.cloned(),
            keep_bind_service: false,
        },
        planned: Vec::new(),
    };
    let reason = |wanted: fn(&Reason) -> bool| causes.iter().any(|c| wanted(&c.reason));
    let errno = match verdict {
        Verdict::Fail { errno, .. } => errno,
        Verdict::Unknown => libc::EADDRINUSE,
        Verdict::Succeed => return plan,
    };
    match errno {
        libc::EADDRINUSE => {
            if !spec.reuseaddr {
                plan.add(Purpose::Fix(Action::SetReuseaddr), |r| {
                    r.spec.reuseaddr = true
                });
            }
            let receivers = causes.iter().any(|c| {
                matches!(
                    c.reason,
                    Reason::Rule(Rule::Listener) | Reason::Rule(Rule::Udp)
                )
            });
            if !spec.reuseport && receivers {
                plan.add(Purpose::Fix(Action::SetReuseport), |r| {
                    r.spec.reuseport = true
                });
            }
            let dual_wildcard = matches!(spec.address, IpAddr::V6(a) if a.is_unspecified())
                && view.v6only == Some(false);
            if dual_wildcard {
                plan.add(Purpose::Fix(Action::SetV6only), |r| {
                    r.spec.v6only = Some(true)
                });
            }
            for address in specific_addresses(context, causes) {
                plan.add(
                    Purpose::Fix(Action::BindSpecificAddress {
                        addresses: vec![address],
                    }),
                    |r| r.spec.address = address,
                );
            }
            if spec.protocol == Protocol::Tcp && spec.reuseport {
                plan_group_trials(context, causes, &mut plan);
            }
            plan_other_ports(context, &mut plan);
        }
        libc::EACCES if reason(|r| matches!(r, Reason::PrivilegedPort { .. })) => {
            if context.as_user.is_some() && context.lsport_is_root {
                plan.add(Purpose::Fix(Action::AllowPrivilegedPort), |r| {
                    r.keep_bind_service = true
                });
            }
            plan_other_ports(context, &mut plan);
        }
        _ => {
            let wildcard = match spec.address {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            if reason(|r| {
                matches!(
                    r,
                    Reason::AddressNotAvailable
                        | Reason::AddressTentative { .. }
                        | Reason::AddressDuplicate { .. }
                )
            }) {
                plan.add(
                    Purpose::Fix(Action::BindWildcard { address: wildcard }),
                    |r| {
                        r.spec.address = wildcard;
                        r.spec.scope = None;
                    },
                );
                plan.add(Purpose::Fix(Action::SetFreebind), |r| {
                    r.spec.freebind = true
                });
            }
            let scoped = causes.iter().find_map(|c| match &c.reason {
                Reason::ScopeMissing { interfaces }
                | Reason::AddressOnOtherInterface { interfaces } => Some(interfaces.clone()),
                Reason::NoSuchInterface => Some(
                    context
                        .addresses
                        .iter()
                        .filter(|a| a.address == spec.address)
                        .map(|a| a.interface.clone())
                        .collect(),
                ),
                _ => None,
            });
            for interface in scoped.unwrap_or_default() {
                plan.add(
                    Purpose::Fix(Action::GiveScope {
                        interfaces: vec![interface.clone()],
                    }),
                    |r| r.spec.scope = Some(Scope::Name(interface.clone())),
                );
            }
        }
    }
    plan
}

/// The namespace's addresses of the bind's family that no socket in the
/// way takes, when the bind is a wildcard and every socket in the way
/// holds a specific address: binding one of them instead may work.
fn specific_addresses(context: &Context<'_>, causes: &[Cause]) -> Vec<IpAddr> {
    let spec = context.view.spec;
    let in_way: Vec<&Row> = causes
        .iter()
        .flat_map(|c| c.sockets.iter().map(|w| &w.row))
        .collect();
    if !rules::is_wildcard(spec.address)
        || in_way.is_empty()
        || in_way
            .iter()
            .any(|r| rules::is_wildcard(r.socket.local.readable_address()))
    {
        return Vec::new();
    }
    let taken: HashSet<IpAddr> = in_way
        .iter()
        .map(|r| r.socket.local.readable_address())
        .collect();
    let mut addresses: Vec<IpAddr> = context
        .addresses
        .iter()
        .filter(|a| a.address.is_ipv4() == spec.address.is_ipv4())
        .filter(|a| !a.tentative && !a.dad_failed && !address::is_link_local(a.address))
        .map(|a| a.address)
        .filter(|a| !taken.contains(a))
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses.truncate(MOST_ADDRESSES_TRIED);
    addresses
}

/// The trials that tell what listeners hide when the bind sets
/// SO_REUSEPORT: a bind on the own address of each listener of the
/// trial's user that may be in the way, and, as root, a bind as each
/// other user whose listeners are in the way.
fn plan_group_trials(context: &Context<'_>, causes: &[Cause], plan: &mut Plan) {
    let view = &context.view;
    let listeners: Vec<(&Socket, Certainty)> = causes
        .iter()
        .filter(|c| c.reason == Reason::Rule(Rule::Listener))
        .flat_map(|c| c.sockets.iter().map(move |w| (&w.row.socket, c.certainty)))
        .collect();
    for (listener, certainty) in &listeners {
        let address = listener.local.address;
        let same_family = address.is_ipv4() == view.spec.address.is_ipv4();
        if listener.uid == view.uid
            && *certainty == Certainty::Possible
            && same_family
            && !address.is_unspecified()
            && address != view.spec.address
        {
            plan.add(Purpose::LetsIn((*listener).clone()), |r| {
                r.spec.address = address;
                r.spec.scope = None;
            });
        }
    }
    if !context.lsport_is_root {
        return;
    }
    let mut others: Vec<u32> = listeners
        .iter()
        .map(|(l, _)| l.uid)
        .filter(|uid| *uid != view.uid)
        .collect();
    others.sort_unstable();
    others.dedup();
    for uid in others {
        let Ok(user) = TrialUser::resolve(&uid.to_string(), std::path::Path::new("/etc/passwd"))
        else {
            continue;
        };
        let theirs: Vec<Socket> = listeners
            .iter()
            .filter(|(l, _)| l.uid == uid)
            .map(|(l, _)| (*l).clone())
            .collect();
        plan.add(
            Purpose::GroupOf {
                uid,
                listeners: theirs,
            },
            |r| r.user = Some(user.clone()),
        );
    }
}

/// The ports near the one asked that `lsport suggest` would give, to be
/// tried with the same bind.
fn plan_other_ports(context: &Context<'_>, plan: &mut Plan) {
    let spec = context.view.spec;
    let as_root = context.view.uid == 0;
    let wanted = SuggestQuery {
        count: MOST_PORTS_TRIED,
        near: Some(spec.port),
        within: None,
        allow_privileged: as_root && context.policy.is_privileged(spec.port),
    };
    let ports = suggest::suggest(
        &wanted,
        context.policy,
        &|port| port == spec.port,
        &|port| !context.services.on_port(port).is_empty(),
    );
    for port in ports {
        plan.add(Purpose::Fix(Action::PickAnotherPort { port }), |r| {
            r.spec.port = port
        });
    }
}

impl Plan {
    /// Plans the bind as asked, changed by `change`, for `purpose`.
    fn add(&mut self, purpose: Purpose, change: impl FnOnce(&mut TrialRun)) {
        let mut run = self.base.clone();
        change(&mut run);
        self.planned.push((purpose, run));
    }

    /// The trials, in order.
    pub fn runs(&self) -> Vec<TrialRun> {
        self.planned.iter().map(|(_, run)| run.clone()).collect()
    }

    /// The fixes the kernel accepted, from the outcomes of [`Plan::runs`];
    /// what the trials told of listeners goes into `knowns`.
    pub fn settle(
        &self,
        context: &Context<'_>,
        outcomes: &[Outcome],
        knowns: &mut Knowns,
    ) -> Vec<Fix> {
        let mut fixes: Vec<Fix> = Vec::new();
        for ((purpose, run), outcome) in self.planned.iter().zip(outcomes) {
            let view = TrialView {
                spec: &run.spec,
                v6only: outcome.v6only,
                uid: run.user.as_ref().map_or(context.view.uid, |u| u.uid),
            };
            let verdict = judge_outcome(&view, outcome, knowns);
            let check = match outcome.skipped {
                Some(Skipped::Bind { .. }) => Check::Rules,
                _ => Check::Tried,
            };
            match purpose {
                Purpose::Fix(action) if verdict == Verdict::Succeed => {
                    merge(&mut fixes, action.clone(), check)
                }
                Purpose::Fix(_) => {}
                Purpose::LetsIn(listener) => {
                    if outcome.succeeded() {
                        knowns.learn_reuseport(listener);
                    }
                }
                Purpose::GroupOf { uid, listeners } => {
                    if verdict == Verdict::Succeed {
                        for listener in listeners {
                            knowns.learn_reuseport(listener);
                        }
                        merge(
                            &mut fixes,
                            Action::RunAsGroupOwner { uids: vec![*uid] },
                            check,
                        );
                    }
                }
            }
        }
        fixes
    }
}

/// Adds a fix, folding addresses and interfaces into one, and keeping
/// only the first port.
fn merge(fixes: &mut Vec<Fix>, action: Action, check: Check) {
    let same_kind = fixes
        .iter_mut()
        .find(|f| std::mem::discriminant(&f.action) == std::mem::discriminant(&action));
    match (same_kind, action) {
        (None, action) => fixes.push(Fix { action, check }),
        (Some(fix), Action::BindSpecificAddress { addresses }) => {
            if let Action::BindSpecificAddress { addresses: all } = &mut fix.action {
                all.extend(addresses);
            }
        }
        (Some(fix), Action::GiveScope { interfaces }) => {
            if let Action::GiveScope { interfaces: all } = &mut fix.action {
                all.extend(interfaces);
            }
        }
        (Some(fix), Action::RunAsGroupOwner { uids }) => {
            if let Action::RunAsGroupOwner { uids: all } = &mut fix.action {
                all.extend(uids);
            }
        }
        (Some(_), _) => {}
    }
}

/// Every fix to offer, most direct first: those weighed by the rules
/// from the final causes, then those the kernel accepted (`tried`).
pub fn offer(
    context: &Context<'_>,
    causes: &[Cause],
    tried: Vec<Fix>,
    knowns: &Knowns,
) -> Vec<Fix> {
    let in_way: Vec<&InTheWay> = causes.iter().flat_map(|c| c.sockets.iter()).collect();
    let mut fixes = Vec::new();
    fixes.extend(stop(context, &in_way, knowns));
    fixes.extend(wait_time_wait(&in_way));
    let port = context.view.spec.port;
    let taken_by_connect = in_way.iter().any(|w| {
        w.side
            == Some(Side::Outgoing {
                kernel_chose_port: Some(true),
            })
    });
    if taken_by_connect && context.policy.may_be_taken_by_outgoing(port) {
        fixes.push(Fix {
            action: Action::ReservePort {
                reserved_ports: report::reserved_ports_with(context.policy, &[port]),
            },
            check: Check::Unverified,
        });
    }
    let privileged = causes
        .iter()
        .any(|c| matches!(c.reason, Reason::PrivilegedPort { .. }));
    if privileged
        && !tried
            .iter()
            .any(|f| matches!(f.action, Action::AllowPrivilegedPort))
    {
        fixes.push(Fix {
            action: Action::AllowPrivilegedPort,
            check: Check::Unverified,
        });
    }
    if let Some(interface) = causes.iter().find_map(|c| match &c.reason {
        Reason::AddressTentative { interface } => Some(interface.clone()),
        _ => None,
    }) {
        fixes.push(Fix {
            action: Action::WaitForDad { interface },
            check: Check::Unverified,
        });
    }
    fixes.extend(tried);
    fixes.sort_by_key(|f| rank(&f.action));
    fixes
}

/// The order fixes are offered in: the most direct first.
fn rank(action: &Action) -> u8 {
    match action {
        Action::Stop { .. } => 0,
        Action::WaitTimeWait { .. } => 1,
        Action::SetReuseaddr => 2,
        Action::SetV6only => 3,
        Action::SetReuseport => 4,
        Action::BindSpecificAddress { .. } => 4,
        Action::ReservePort { .. } => 5,
        Action::RunAsGroupOwner { .. } => 6,
        Action::AllowPrivilegedPort => 7,
        Action::GiveScope { .. } => 8,
        Action::WaitForDad { .. } => 9,
        Action::SetFreebind => 10,
        Action::BindWildcard { .. } => 11,
        Action::PickAnotherPort { .. } => 12,
    }
}

/// A holder of a socket in the way, once.
struct Holding {
    pid: u32,
    command: Vec<u8>,
    container: Option<Container>,
    /// The service the socket unit in `container` starts, if it is one.
    activates: Option<String>,
    pid_in_namespace: Option<u32>,
}

/// Stop every holder of the sockets in the way, weighed by the rules.
fn stop(context: &Context<'_>, in_way: &[&InTheWay], knowns: &Knowns) -> Option<Fix> {
    let mut holders: Vec<Holding> = Vec::new();
    let mut hidden: Vec<u32> = Vec::new();
    for w in in_way {
        for holder in &w.row.holders {
            if !holders.iter().any(|h| h.pid == holder.pid) {
                // A socket unit's listener is the unit's to stop, with
                // the service it starts.
                let unit = w.row.cgroup.as_deref().and_then(|c| {
                    let unit = Container {
                        runtime: "systemd",
                        id: c.socket_unit()?.to_string(),
                        name: None,
                        pod_uid: None,
                    };
                    Some((unit, c.activates.clone()))
                });
                let (container, activates) = match unit {
                    Some((unit, activates)) => (Some(unit), activates),
                    None => (holder.container().cloned(), None),
                };
                holders.push(Holding {
                    pid: holder.pid,
                    command: holder.command().to_vec(),
                    container,
                    activates,
                    pid_in_namespace: holder.pid_in_namespace(),
                });
            }
        }
        if w.row.holders_hidden && !hidden.contains(&w.row.socket.uid) {
            hidden.push(w.row.socket.uid);
        }
    }
    if holders.is_empty() && hidden.is_empty() {
        return None;
    }
    // pid 1, kernel threads, lsport and its ancestors are no one to stop
    // (pid 1 holds the sockets of systemd's socket units).
    let lsport = process::self_and_ancestors(context.proc_root);
    let mut refused = Vec::new();
    holders.retain(|h| {
        match process::refusal(context.proc_root, h.pid, h.pid_in_namespace, &lsport) {
            Some(refusal) => {
                refused.push(StopTarget::Refused {
                    pid: h.pid,
                    command: h.command.clone(),
                    refusal,
                });
                false
            }
            None => true,
        }
    });
    let mut targets = stop_targets(context.proc_root, &holders);
    targets.extend(hidden.into_iter().map(|uid| StopTarget::Hidden { uid }));
    targets.extend(refused);
    let leaves: Vec<Row> = in_way
        .iter()
        .filter(|w| w.row.holders.is_empty() && !w.row.holders_hidden)
        .map(|w| w.row.clone())
        .collect();
    // Stopping a process closes its connections from this end: each
    // stays in TIME_WAIT on the port, with the options its socket had.
    let time_wait_after = in_way
        .iter()
        .filter(|w| !w.row.holders.is_empty() || w.row.holders_hidden)
        .filter(|w| {
            w.row.socket.protocol == Protocol::Tcp
                && matches!(
                    w.row.socket.state,
                    State::Established | State::FinWait1 | State::FinWait2 | State::Closing
                )
        })
        .filter_map(|w| {
            let left = Socket {
                state: State::TimeWait,
                ..w.row.socket.clone()
            };
            match rules::conflicts(&context.view, &left, knowns.of(&w.row.socket)) {
                Some(true) => Some(Certainty::Certain),
                None => Some(Certainty::Possible),
                Some(false) => None,
            }
        })
        .min();
    // That a master stops its workers is what servers do, not a rule.
    let trusts_a_master = targets
        .iter()
        .any(|t| matches!(t, StopTarget::Process { workers, .. } if !workers.is_empty()));
    let any_refused = targets
        .iter()
        .any(|t| matches!(t, StopTarget::Refused { .. }));
    let check =
        if leaves.is_empty() && time_wait_after.is_none() && !trusts_a_master && !any_refused {
            Check::Rules
        } else {
            Check::Unverified
        };
    Some(Fix {
        action: Action::Stop {
            targets,
            time_wait_after,
            leaves,
        },
        check,
    })
}

/// The holders as they are best stopped: their unit or container when
/// one holds them all; else each master with its workers (a holder
/// whose parent holds too, or siblings of one command whose parent has
/// that command too); else each process.
fn stop_targets(root: &ProcRoot, holders: &[Holding]) -> Vec<StopTarget> {
    let stoppable = |c: &Container| {
        c.runtime != "systemd"
            || (c.id.ends_with(".service") && !c.id.starts_with("user@"))
            || socket_units::is_socket_unit(&c.id)
    };
    if let Some(first) = holders.first().and_then(|h| h.container.as_ref()) {
        let one = holders.iter().all(|h| h.container.as_ref() == Some(first));
        if one && stoppable(first) {
            return vec![StopTarget::Supervisor {
                container: first.clone(),
                activates: holders[0].activates.clone(),
                pids: holders.iter().map(|h| h.pid).collect(),
            }];
        }
    }
    let pids: HashSet<u32> = holders.iter().map(|h| h.pid).collect();
    let parents: Vec<Option<(u32, Vec<u8>)>> = holders
        .iter()
        .map(|h| process::parent(root, h.pid))
        .collect();
    let parent_of = |pid: u32| -> Option<u32> {
        holders
            .iter()
            .position(|h| h.pid == pid)
            .and_then(|i| parents[i].as_ref().map(|(p, _)| *p))
            .or_else(|| process::parent(root, pid).map(|(p, _)| p))
    };
    // The top of each chain of holders.
    let top = |pid: u32| {
        let mut at = pid;
        for _ in 0..16 {
            match parent_of(at) {
                Some(parent) if pids.contains(&parent) && parent != at => at = parent,
                _ => break,
            }
        }
        at
    };
    let mut targets: Vec<StopTarget> = Vec::new();
    for holder in holders {
        let master = top(holder.pid);
        match targets
            .iter_mut()
            .find(|t| matches!(t, StopTarget::Process { pid, .. } if *pid == master))
        {
            Some(StopTarget::Process { workers, .. }) => {
                if holder.pid != master {
                    workers.push(holder.pid);
                }
            }
            _ => {
                let command = holders
                    .iter()
                    .find(|h| h.pid == master)
                    .map(|h| h.command.clone())
                    .unwrap_or_default();
                targets.push(StopTarget::Process {
                    pid: master,
                    command,
                    workers: if holder.pid == master {
                        Vec::new()
                    } else {
                        vec![holder.pid]
                    },
                });
            }
        }
    }
    // Workers whose master does not hold the port itself (it handed its
    // socket on, or each worker opened its own): siblings of one command
    // under a parent of that same command.
    if targets.len() > 1 {
        let tops: Vec<u32> = targets
            .iter()
            .filter_map(|t| match t {
                StopTarget::Process { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        let commands: HashSet<&[u8]> = holders.iter().map(|h| h.command.as_slice()).collect();
        let shared_parent = tops
            .iter()
            .map(|pid| process::parent(root, *pid))
            .collect::<Option<Vec<_>>>()
            .filter(|all| all.windows(2).all(|w| w[0].0 == w[1].0))
            .and_then(|all| all.into_iter().next());
        if let Some((parent, command)) = shared_parent {
            let lsport = process::self_and_ancestors(root);
            if parent > 1
                && !lsport.contains(&parent)
                && commands.len() == 1
                && commands.contains(command.as_slice())
            {
                return vec![StopTarget::Process {
                    pid: parent,
                    command,
                    workers: holders.iter().map(|h| h.pid).collect(),
                }];
            }
        }
    }
    targets
}

/// Wait for TIME_WAIT to end, weighed by the rules.
fn wait_time_wait(in_way: &[&InTheWay]) -> Option<Fix> {
    let ending: Vec<&Row> = in_way
        .iter()
        .map(|w| &w.row)
        .filter(|r| r.socket.ends_by_itself())
        .collect();
    if ending.is_empty() {
        return None;
    }
    let longest = ending
        .iter()
        .filter(|r| r.socket.state == State::TimeWait)
        .filter_map(|r| r.socket.timer_ms)
        .max();
    let leaves: Vec<Row> = in_way
        .iter()
        .filter(|w| !w.row.socket.ends_by_itself())
        .map(|w| w.row.clone())
        .collect();
    let check = if leaves.is_empty() {
        Check::Rules
    } else {
        Check::Unverified
    };
    Some(Fix {
        action: Action::WaitTimeWait {
            seconds: longest.map(|ms| ms.div_ceil(1000)),
            orphans: ending.iter().any(|r| r.socket.is_orphaned()),
            leaves,
        },
        check,
    })
}

/// The command line that stops a target, where there is one.
pub fn stop_command(target: &StopTarget) -> Option<String> {
    match target {
        StopTarget::Supervisor {
            container,
            activates,
            ..
        } if socket_units::is_socket_unit(&container.id) && container.runtime == "systemd" => Some(
            kill::SocketUnit {
                unit: container.id.clone(),
                activates: activates.clone(),
            }
            .stop_command(),
        ),
        StopTarget::Supervisor { container, .. } => kill::stop_command(container),
        StopTarget::Process { pid, .. } => Some(format!("kill {pid}")),
        StopTarget::Hidden { .. } | StopTarget::Refused { .. } => None,
    }
}
