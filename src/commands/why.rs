//! `lsport why`: would this bind succeed, and if not, why not. The
//! verdict comes from a real trial in the namespace probed (see
//! [`trial`]); the causes come from one probe of the port, sorted by the
//! kernel's rules (see [`rules`]); the fixes that change the bind's own
//! options are tried too, so that only those the kernel accepts are
//! offered.

pub mod rules;
pub mod trial;

use std::collections::HashSet;
use std::net::IpAddr;

use crate::error::Error;
use crate::netns::{self, NetnsLabel};
use crate::ports::KernelPortPolicy;
use crate::probe::probe;
use crate::query::{NetnsChoice, Query, View};
use crate::report::{self, Role, Row};
use crate::socket::{Family, PortRange, State};
use crate::source::SourceKind;

pub use rules::{Certainty, Coexistence, Rule};
pub use trial::{BindSpec, Outcome, Stage, TrialUser};

/// What `lsport why` tries.
#[derive(Debug, Clone)]
pub struct WhyOptions {
    /// The bind.
    pub bind: BindSpec,
    /// Run the trial as this user instead of lsport's own (root only).
    pub as_user: Option<TrialUser>,
    /// Probe the port for causes, fixes and warnings; off when only the
    /// verdict is wanted (`-q`), which then reads no socket table at all.
    pub explain: bool,
}

/// Why a bind fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The port is in use, yet no socket lsport can see explains it.
    Unseen,
    /// Another errno, said as the kernel said it.
    Errno,
}

impl Reason {
    /// The reason's stable name in JSON: a [`Rule`]'s name, or
    /// `privileged_port`, `address_not_available`, `no_visible_socket`,
    /// `errno`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Rule(rule) => rule.name(),
            Reason::PrivilegedPort { .. } => "privileged_port",
            Reason::AddressNotAvailable => "address_not_available",
            Reason::Unseen => "no_visible_socket",
            Reason::Errno => "errno",
        }
    }
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
    pub sockets: Vec<Row>,
}

/// What would make the bind succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Stop the process that holds a socket in the way.
    StopProcess {
        /// Its pid.
        pid: u32,
        /// Its command name, raw (escape before showing).
        command: Vec<u8>,
    },
    /// Stop the holder of a socket whose holders this user cannot see.
    StopHiddenHolder {
        /// The socket's owner.
        uid: u32,
    },
    /// Wait for TIME_WAIT to end.
    WaitTimeWait {
        /// Seconds left on the longest TIME_WAIT timer, rounded up; None
        /// when the source gives no timer (/proc/net).
        seconds: Option<u32>,
    },
    /// Set SO_REUSEADDR: tried, and the kernel accepts the bind with it.
    SetReuseaddr,
    /// Set IPV6_V6ONLY: tried, and the kernel accepts the bind with it.
    SetV6only,
    /// Bind one address instead of the wildcard: the sockets in the way
    /// hold only these.
    BindSpecificAddress {
        /// The addresses taken.
        taken: Vec<IpAddr>,
    },
    /// Reserve the port so that outgoing connections stop taking it.
    ReservePort {
        /// The new value of `ip_local_reserved_ports`, the current list
        /// kept.
        reserved_ports: String,
    },
    /// Run as the user that owns the SO_REUSEPORT group.
    RunAsGroupOwner {
        /// The group's uids.
        uids: Vec<u32>,
    },
    /// Bind the privileged port with CAP_NET_BIND_SERVICE, or lower the
    /// namespace's `ip_unprivileged_port_start`.
    AllowPrivilegedPort,
    /// Bind an address the namespace has, or the wildcard.
    BindLocalAddress,
    /// Pick another port (`lsport suggest`).
    PickAnotherPort,
}

impl Fix {
    /// The fix's stable name in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Fix::StopProcess { .. } => "stop_process",
            Fix::StopHiddenHolder { .. } => "stop_hidden_holder",
            Fix::WaitTimeWait { .. } => "wait_time_wait",
            Fix::SetReuseaddr => "set_reuseaddr",
            Fix::SetV6only => "set_v6only",
            Fix::BindSpecificAddress { .. } => "bind_specific_address",
            Fix::ReservePort { .. } => "reserve_port",
            Fix::RunAsGroupOwner { .. } => "run_as_group_owner",
            Fix::AllowPrivilegedPort => "allow_privileged_port",
            Fix::BindLocalAddress => "bind_local_address",
            Fix::PickAnotherPort => "pick_another_port",
        }
    }

    /// Whether the kernel was asked and accepted the bind with this fix.
    pub fn verified(&self) -> bool {
        matches!(self, Fix::SetReuseaddr | Fix::SetV6only)
    }
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
}

impl Warning {
    /// The warning's stable name in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Warning::Ephemeral { .. } => "ephemeral",
            Warning::Privileged { .. } => "privileged",
            Warning::Coexists { how, .. } => how.name(),
            Warning::OtherNamespaces { .. } => "other_namespaces",
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
    /// The kernel's answer.
    pub outcome: Outcome,
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
        self.outcome.succeeded()
    }
}

impl TrialUser {
    /// USER as `--as` takes it: a name from the passwd file, or a uid
    /// (its entry's gid, or the same number when it has none).
    pub fn resolve(user: &str, passwd: &std::path::Path) -> Result<TrialUser, Error> {
        let text = std::fs::read(passwd).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if let Some(account) = crate::users::find_account(&text, user) {
            return Ok(TrialUser {
                uid: account.uid,
                gid: account.gid,
                name: Some(account.name),
            });
        }
        match user.parse::<u32>() {
            Ok(uid) if uid != u32::MAX => Ok(TrialUser {
                uid,
                gid: uid,
                name: None,
            }),
            _ => Err(Error::Usage(format!(
                "unknown user '{user}': not a name in {} nor a uid",
                passwd.display()
            ))),
        }
    }
}

/// `[ADDRESS:]PORT` as `lsport why` takes it: `8080`, `127.0.0.1:8080`,
/// `[::1]:8080`, `*:8080`. The address is None when not given (or `*`).
pub fn parse_target(text: &str) -> Result<(Option<IpAddr>, u16), Error> {
    let bad_address = |address: &str| {
        Error::Usage(format!(
            "invalid address '{address}' in '{text}': give an IPv4 address (127.0.0.1:8080) \
             or an IPv6 one in brackets ([::1]:8080)"
        ))
    };
    let (address, port) = if let Some(rest) = text.strip_prefix('[') {
        let (address, port) = rest.split_once("]:").ok_or_else(|| bad_address(text))?;
        let address: std::net::Ipv6Addr = address.parse().map_err(|_| bad_address(address))?;
        (Some(IpAddr::V6(address)), port)
    } else {
        match text.rsplit_once(':') {
            None => (None, text),
            Some((address, _)) if address.contains(':') => return Err(bad_address(address)),
            Some(("*", port)) => (None, port),
            Some((address, port)) => {
                let address: std::net::Ipv4Addr =
                    address.parse().map_err(|_| bad_address(address))?;
                (Some(IpAddr::V4(address)), port)
            }
        }
    };
    let port = match port.parse::<u16>() {
        Ok(0) => {
            return Err(Error::usage(
                "port 0 asks the kernel to pick a port: give the port to check",
            ));
        }
        Ok(port) => port,
        _ => {
            return Err(Error::Usage(format!(
                "invalid port '{port}': a number from 1 to 65535"
            )));
        }
    };
    Ok((address, port))
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
    let uid = options
        .as_user
        .as_ref()
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |u| u.uid);
    let trials = run_trials(query, spec, options.as_user.as_ref())?;
    let mut answer = WhyReport {
        bind: spec.clone(),
        as_user: options.as_user.clone(),
        uid,
        outcome: trials.outcome,
        netns: NetnsLabel::default(),
        policy: None,
        causes: Vec::new(),
        fixes: Vec::new(),
        warnings: Vec::new(),
        source: None,
        hidden_holders: 0,
        skipped: Vec::new(),
    };
    if !options.explain {
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
    answer.netns = here.netns;
    answer.source = Some(here.source);
    let view = rules::TrialView {
        spec,
        v6only: trials.outcome.v6only,
        uid,
    };
    if let Some((stage, errno)) = trials.outcome.failure {
        answer.causes = causes(&view, stage, errno, &here.rows, &here.policy);
        answer.fixes = fixes(&view, &answer.causes, &trials, &here.policy);
    } else {
        answer.warnings = warnings(&view, &here.rows, &here.policy);
    }
    if !elsewhere.is_empty() {
        answer
            .warnings
            .push(Warning::OtherNamespaces { sockets: elsewhere });
    }
    answer.policy = Some(here.policy);
    Ok(answer)
}

/// The kernel's answers: the bind as asked, and, when it failed for a
/// port in use, the same bind with each option that might help.
struct Trials {
    outcome: Outcome,
    with_reuseaddr: Option<Outcome>,
    with_v6only: Option<Outcome>,
}

/// Runs the trials where they belong: inside the namespace asked for
/// (on a thread that entered it), and as the user asked for (on a
/// thread of its own, see [`trial`]).
fn run_trials(query: &Query, spec: &BindSpec, user: Option<&TrialUser>) -> Result<Trials, Error> {
    let work = || -> Result<Trials, Error> {
        if let Some(user) = user {
            trial::become_user(user)?;
        }
        let outcome = trial::attempt(spec);
        let in_use = outcome.errno() == Some(libc::EADDRINUSE);
        let with_reuseaddr = (in_use && !spec.reuseaddr).then(|| {
            trial::attempt(&BindSpec {
                reuseaddr: true,
                ..spec.clone()
            })
        });
        let dual_wildcard = matches!(spec.address, IpAddr::V6(a) if a.is_unspecified())
            && outcome.v6only == Some(false);
        let with_v6only = (in_use && dual_wildcard).then(|| {
            trial::attempt(&BindSpec {
                v6only: Some(true),
                ..spec.clone()
            })
        });
        Ok(Trials {
            outcome,
            with_reuseaddr,
            with_v6only,
        })
    };
    match &query.netns {
        NetnsChoice::One(path) => {
            netns::run_in(path, None, work).map_err(|e| e.into_error(path))?
        }
        _ if user.is_some() => std::thread::scope(|scope| {
            scope
                .spawn(work)
                .join()
                .unwrap_or_else(|_| Err(Error::usage("the trial's thread panicked")))
        }),
        _ => work(),
    }
}

fn causes(
    view: &rules::TrialView<'_>,
    stage: Stage,
    errno: i32,
    rows: &[Row],
    policy: &KernelPortPolicy,
) -> Vec<Cause> {
    let reason = match errno {
        libc::EADDRINUSE => None,
        libc::EACCES if stage == Stage::Bind && policy.is_privileged(view.spec.port) => {
            Some(Reason::PrivilegedPort {
                unprivileged_start: policy.unprivileged_start.value,
            })
        }
        libc::EADDRNOTAVAIL => Some(Reason::AddressNotAvailable),
        _ => Some(Reason::Errno),
    };
    if let Some(reason) = reason {
        return vec![Cause {
            reason,
            certainty: Certainty::Certain,
            sockets: Vec::new(),
        }];
    }
    let judged: Vec<(&Row, Rule, Certainty)> = rows
        .iter()
        .filter_map(|row| {
            rules::in_the_way(view, &row.socket).map(|(rule, certainty)| (row, rule, certainty))
        })
        .collect();
    // Accepted connections come and go with their listener, which is
    // the cause worth naming when there is one.
    let sure = |(_, rule, certainty): &&(&Row, Rule, Certainty)| {
        *certainty == Certainty::Certain
            && !(*rule == Rule::Connection && judged.iter().any(|(_, r, _)| *r == Rule::Listener))
    };
    let certainty = if judged.iter().any(|j| sure(&j)) {
        Certainty::Certain
    } else {
        Certainty::Possible
    };
    let chosen: Vec<&(&Row, Rule, Certainty)> = judged
        .iter()
        .filter(|j| certainty == Certainty::Possible || sure(j))
        .collect();
    if chosen.is_empty() {
        return vec![Cause {
            reason: Reason::Unseen,
            certainty: Certainty::Possible,
            sockets: Vec::new(),
        }];
    }
    let mut causes: Vec<Cause> = Vec::new();
    for (row, rule, _) in chosen {
        let reason = Reason::Rule(*rule);
        match causes.iter_mut().find(|c| c.reason == reason) {
            Some(cause) => cause.sockets.push((*row).clone()),
            None => causes.push(Cause {
                reason,
                certainty,
                sockets: vec![(*row).clone()],
            }),
        }
    }
    causes
}

fn fixes(
    view: &rules::TrialView<'_>,
    causes: &[Cause],
    trials: &Trials,
    policy: &KernelPortPolicy,
) -> Vec<Fix> {
    let spec = view.spec;
    let mut fixes = Vec::new();
    let rows = || causes.iter().flat_map(|c| c.sockets.iter());
    let mut seen_pids = HashSet::new();
    let mut seen_uids = HashSet::new();
    for row in rows() {
        for holder in &row.holders {
            if seen_pids.insert(holder.pid) {
                fixes.push(Fix::StopProcess {
                    pid: holder.pid,
                    command: holder.command().to_vec(),
                });
            }
        }
        if row.holders_hidden && seen_uids.insert(row.socket.uid) {
            fixes.push(Fix::StopHiddenHolder {
                uid: row.socket.uid,
            });
        }
    }
    let time_wait: Vec<&Row> = rows()
        .filter(|r| r.socket.state == State::TimeWait)
        .collect();
    if !time_wait.is_empty() {
        let longest = time_wait.iter().filter_map(|r| r.socket.timer_ms).max();
        fixes.push(Fix::WaitTimeWait {
            seconds: longest.map(|ms| ms.div_ceil(1000)),
        });
    }
    if trials.with_reuseaddr.is_some_and(|o| o.succeeded()) {
        fixes.push(Fix::SetReuseaddr);
    }
    if trials.with_v6only.is_some_and(|o| o.succeeded()) {
        fixes.push(Fix::SetV6only);
    }
    let mut taken: Vec<IpAddr> = rows().map(|r| r.socket.local.readable_address()).collect();
    taken.sort_unstable();
    taken.dedup();
    if rules::is_wildcard(spec.address)
        && !taken.is_empty()
        && taken.iter().all(|a| !rules::is_wildcard(*a))
    {
        fixes.push(Fix::BindSpecificAddress { taken });
    }
    let outgoing = rows().any(|r| r.role == Role::Outgoing);
    if outgoing && policy.may_be_taken_by_outgoing(spec.port) {
        fixes.push(Fix::ReservePort {
            reserved_ports: report::reserved_ports_with(policy, &[spec.port]),
        });
    }
    for cause in causes {
        match cause.reason {
            Reason::Rule(Rule::ReuseportOtherUser) => {
                let mut uids: Vec<u32> = cause.sockets.iter().map(|r| r.socket.uid).collect();
                uids.sort_unstable();
                uids.dedup();
                fixes.push(Fix::RunAsGroupOwner { uids });
            }
            Reason::PrivilegedPort { .. } => fixes.push(Fix::AllowPrivilegedPort),
            Reason::AddressNotAvailable => fixes.push(Fix::BindLocalAddress),
            _ => {}
        }
    }
    fixes.push(Fix::PickAnotherPort);
    fixes
}

fn warnings(view: &rules::TrialView<'_>, rows: &[Row], policy: &KernelPortPolicy) -> Vec<Warning> {
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
        Coexistence::OtherFamily,
        Coexistence::OtherAddress,
        Coexistence::SharesPort,
    ] {
        let sockets: Vec<Row> = rows
            .iter()
            .filter(|row| rules::coexistence(view, &row.socket) == Some(how))
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

    #[test]
    fn targets_take_an_optional_address_of_either_family() {
        assert_eq!(parse_target("8080").unwrap(), (None, 8080));
        assert_eq!(parse_target("*:8080").unwrap(), (None, 8080));
        assert_eq!(
            parse_target("127.0.0.1:80").unwrap(),
            (Some("127.0.0.1".parse().unwrap()), 80)
        );
        assert_eq!(
            parse_target("[::1]:80").unwrap(),
            (Some("::1".parse().unwrap()), 80)
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
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        let message = parse_target("70000").unwrap_err().to_string();
        assert!(message.contains("1 to 65535"), "{message}");
    }
}
