//! The command line: clap fills `Args`, which is turned once into an
//! `Invocation`: the library's plain `Query` plus what the binary does
//! with the answer. Only the binary knows clap.

use std::ffi::OsString;
use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum, ValueHint};

use lsport::commands::ephemeral::EphemeralOptions;
use lsport::commands::kill::{KillOptions, Mode as KillMode};
use lsport::commands::suggest::SuggestQuery;
use lsport::commands::wait::{Condition, WaitOptions};
use lsport::commands::watch::WatchOptions;
use lsport::commands::why::{self, BindSpec, TrialUser, WhyOptions};
use lsport::error::Error;
use lsport::holders::process::Signal;
use lsport::query::{
    CgroupDetail, Filters, ForwardingRules, HolderDetail, HolderSource, NetnsChoice, ProcessFields,
    Query, SourceChoice as LibSource,
};
use lsport::render::columns::{self, ColumnId};
use lsport::services::{self, Services};
use lsport::socket::{Family, PortRange, Protocol};
use lsport::sys::ProcRoot;
use lsport::{duration, netns, portspec};

#[derive(Debug, Parser)]
#[command(
    name = "lsport",
    version,
    // `lsport help` would read as a port name; --help is there.
    disable_help_subcommand = true,
    about = "Who holds a TCP or UDP port, and what the port is",
    long_about = "Who holds a TCP or UDP port, and what the port is.\n\n\
        With PORTs, lsport shows every socket whose local port is one of them \
        (TCP in every state, bound-only sockets included, and UDP), the processes \
        that hold each one, and what the port is: its IANA range, and whether it \
        lies in the kernel's ephemeral range, is reserved, or is privileged.\n\n\
        Without PORTs, it shows what is listening: TCP listeners, bound-only TCP \
        sockets and bound UDP sockets.\n\n\
        Sockets come from the kernel's sock_diag interface or, where that is \
        refused or missing, from /proc/net, which cannot see bound-only TCP \
        sockets (see --source).\n\n\
        Exit status: 0 when a socket matched, 1 when none did, 2 on error; \
        lsport ephemeral: 3 when something needs attention; \
        lsport why: 4 when the bind would fail.",
    after_help = "Examples:\n  lsport 8080            who holds port 8080, and what the port is\n  \
        lsport 22 443 8000-8100\n  lsport ssh             the ports registered for ssh\n  \
        lsport                 what is listening\n  \
        lsport -a --json       every socket, as JSON\n  \
        lsport --all-netns 80  port 80 in every network namespace\n  \
        lsport ephemeral       the ephemeral range under load\n  \
        lsport suggest 3       three ports safe for a new service\n  \
        lsport why 8080        would a server's bind on 8080 succeed, and if not, why\n  \
        lsport watch 8080      every socket that takes port 8080, as it comes and goes\n  \
        lsport kill 8080       free port 8080: signal its holders, wait until it is free\n  \
        lsport wait --listening 5432   until something listens on 5432"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Ports to look up: a number (8080), a range (8000-8100) or a service name (ssh);
    /// or a Unix socket: a path (anything with a /, as ./app.sock) or an abstract name (@name).
    #[arg(value_name = "PORT", value_hint = ValueHint::AnyPath)]
    pub ports: Vec<OsString>,

    /// List Unix domain sockets instead of TCP and UDP: those that listen
    /// (and bound datagram sockets), or with -a every one.
    #[arg(short = 'x', long)]
    pub unix: bool,

    /// Show every socket in every state (like `ss -tuanp`).
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Show only listening TCP sockets, bound-only TCP sockets and unconnected UDP sockets
    /// bound on purpose (not a client's whose port the kernel chose); with --unix, only
    /// listening Unix sockets and bound datagram ones, in a reverse query too.
    #[arg(short = 'l', long)]
    pub listening: bool,

    #[command(flatten)]
    pub filter: SocketFilterArgs,

    /// SCTP sockets too (alone without -t or -u), read through
    /// sock_diag where the kernel has sctp_diag.
    #[arg(long)]
    pub sctp: bool,

    /// Also match sockets whose remote port is PORT (as `lsof -i :PORT` does).
    #[arg(long)]
    pub remote: bool,

    /// Only the sockets this process holds; alone, every one of them, in
    /// every state (`lsport --pid 1234`). Repeatable, or a list: 1,2.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<u32>,

    /// Only the sockets this user owns, by name or number. Repeatable.
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    pub user: Vec<String>,

    /// Only the sockets created in this systemd unit or below it
    /// (nginx.service; a name without a suffix is a service). Repeatable.
    #[arg(long, value_name = "UNIT")]
    pub unit: Vec<String>,

    /// Only the sockets created in this container: an id prefix (as
    /// docker ps shows it) or an LXC name. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub container: Vec<String>,

    /// Only the sockets created in this cgroup v2 or below it
    /// (/system.slice/nginx.service, or its directory). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,

    /// Probe another network namespace: a pid, a namespace file
    /// (/run/netns/blue, /proc/1234/ns/net) or an ip-netns name.
    #[arg(
        long,
        value_name = "TARGET",
        global = true,
        conflicts_with = "all_netns"
    )]
    pub netns: Option<String>,

    /// Probe every network namespace on the host (needs root).
    #[arg(long, global = true)]
    pub all_netns: bool,

    /// Show user ids as numbers; do not read /etc/passwd.
    #[arg(short = 'n', long, global = true)]
    pub numeric: bool,

    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// When to use colour.
    #[arg(long, value_name = "WHEN", default_value = "auto", global = true)]
    pub color: ColorChoice,

    /// The table's columns, in order, separated by commas
    /// (`-o proto,local,pid,command`); `-o help` lists them.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "COLUMNS",
        long_help = columns::long_help()
    )]
    pub output: Option<String>,

    /// Do not cut table lines to the terminal's width (they are cut only
    /// on a terminal).
    #[arg(short = 'W', long)]
    pub wide: bool,

    /// Print nothing; report through the exit status only.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// Where sockets come from: auto (sock_diag, or /proc/net where sock_diag is refused or missing), netlink (sock_diag only) or proc (/proc/net only).
    #[arg(long, value_name = "SOURCE", default_value = "auto")]
    pub source: SourceChoice,

    /// Where holders come from: auto (the kernel's walk of every fd table, a BPF iterator, where lsport has CAP_BPF and CAP_PERFMON and reads its own /proc; else /proc), kernel (the same, with one line on stderr where it is unavailable and /proc names them) or proc (a readlink of every fd under /proc only). The JSON's holders_from says which did.
    #[arg(long, value_name = "SOURCE", default_value = "auto", global = true)]
    pub holders: HolderSourceChoice,

    /// Read /proc from this directory instead (for tests; also LSPORT_PROC_ROOT).
    #[arg(
        long,
        value_name = "DIR",
        hide = true,
        env = "LSPORT_PROC_ROOT",
        global = true
    )]
    pub proc_root: Option<std::path::PathBuf>,

    /// Read local service names from this file instead of /etc/services
    /// (also LSPORT_SERVICES_FILE).
    #[arg(long, value_name = "FILE", hide = true, env = "LSPORT_SERVICES_FILE")]
    pub services_file: Option<std::path::PathBuf>,

    /// Print the man page or a shell's completions instead (for packaging).
    #[arg(long, value_name = "WHAT", hide = true)]
    pub generate: Option<Generate>,
}

/// What `--generate` prints: the man page, or completions for one shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    Man,
    Bash,
    Zsh,
    Fish,
}

/// The flag definitions themselves, for the man page and completions.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Args::command()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report on the kernel's ephemeral range: headroom per destination,
    /// listeners an outgoing connection may rob of their port, overlaps.
    /// Exit status 3 when something needs attention.
    Ephemeral(EphemeralArgs),
    /// Suggest ports that are safe for a new service: outside the
    /// ephemeral range, not registered with IANA, not in use.
    Suggest(SuggestArgs),
    /// Try the bind a server would make, and say whether it would
    /// succeed; if not, which sockets stand in the way, by which kernel
    /// rule, and what to do.
    ///
    /// The trial is a real socket (options, bind and for TCP listen, then
    /// close) in the network namespace probed. It never takes traffic
    /// meant for a live server: beside a live SO_REUSEPORT listener it
    /// does not listen, beside a live UDP socket it does not bind, and
    /// the kernel's rules decide that part instead, as the answer says.
    /// Each fix is tried, weighed by the rules, or said to be unverified.
    /// Exit status 0 when the bind would succeed, 4 when it would fail or
    /// the rules cannot tell.
    Why(WhyArgs),
    /// Follow the sockets on PORTs (or, without a PORT, the listeners)
    /// as they appear, change state and close, one line each; a summary
    /// at the end (--for, or Ctrl-C). Short-lived sockets are caught by
    /// the kernel's close notifications.
    Watch(WatchArgs),
    /// Free ports: signal the processes that hold them, and wait until
    /// they are free.
    ///
    /// Signals the processes holding a socket whose local port is PORT
    /// (never clients merely connected to it; in a range, listeners and
    /// bound sockets only), after showing what else goes down with each.
    /// A signal meant to end a process (TERM, INT, QUIT, KILL) is
    /// followed by SIGKILL after a grace period, and lsport waits until
    /// only TIME_WAIT and orphaned connections are left; any other (HUP,
    /// USR1...) goes to each main process only, is never followed by
    /// SIGKILL, and the holders after it are named. Exit status 0 when
    /// freed (or, for such a signal, delivered), 1 when nothing held the
    /// ports, 4 when they are still held (refused, not permitted,
    /// hidden, respawned, timed out, or a wide kill not confirmed). In
    /// this command -n means --dry-run.
    Kill(KillArgs),
    /// Wait until ports listen, or until they are free.
    ///
    /// Waits until each port has a listener (--listening) or no socket
    /// holds it (--free), without connecting to it. Exit status 0 when
    /// met, 4 on timeout.
    Wait(WaitArgs),
}

/// The socket filters the probe, kill, wait and watch share.
#[derive(Debug, clap::Args)]
pub struct SocketFilterArgs {
    /// TCP sockets only.
    #[arg(short = 't', long)]
    pub tcp: bool,

    /// UDP sockets only.
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// IPv4 sockets only.
    #[arg(short = '4', long = "ipv4")]
    pub ipv4: bool,

    /// IPv6 sockets only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
}

impl SocketFilterArgs {
    /// -t, -u, -4, -6, in that order.
    fn flags(&self) -> (bool, bool, bool, bool) {
        (self.tcp, self.udp, self.ipv4, self.ipv6)
    }
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Ports to free: a number (8080), a range (8000-8100) or a service name;
    /// or a Unix socket's path or @name (its listener's holders are signalled).
    #[arg(value_name = "PORT", value_hint = ValueHint::AnyPath)]
    pub ports: Vec<OsString>,

    #[command(flatten)]
    pub filter: SocketFilterArgs,

    /// The signal to send first: a name (TERM, INT, HUP) or a number.
    #[arg(short = 's', long, value_name = "SIG", default_value = "TERM")]
    pub signal: String,

    /// How long to wait after the signal before sending SIGKILL to the
    /// processes still holding the port (500ms, 5s, 2m; a bare number is
    /// seconds). Only a signal meant to end a process (TERM, INT, QUIT)
    /// is ever followed by SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub grace: String,

    /// Never send SIGKILL.
    #[arg(long)]
    pub no_escalate: bool,

    /// How long to wait, after the last signal, until nothing holds the
    /// port but TIME_WAIT and orphaned connections (which the kernel ends
    /// by itself).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub timeout: String,

    /// How long to keep watching a port once it is free, to catch a
    /// supervisor that starts the service again (0 to stop at once);
    /// after a signal not meant to end a process, how long to let it
    /// take effect before the holders are named.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub respawn_window: String,

    /// Print what would be signalled; send nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Ask before signalling each process (needs a terminal).
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Go ahead with a wide kill without asking: more than 10 ports, or
    /// more than 10 processes to signal (a process counted with its
    /// parent when that is signalled too). Without it lsport asks on a
    /// terminal, and elsewhere sends nothing.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// On the ports given as a range: also signal the processes whose
    /// connections (outgoing or accepted) have their local port there.
    /// Without it a range frees only its listeners and bound sockets.
    #[arg(long)]
    pub with_connections: bool,

    /// Close the port's connections instead of signalling processes
    /// (sock_diag SOCK_DESTROY, as `ss -K`; needs CAP_NET_ADMIN). The
    /// programs live on.
    #[arg(long, conflicts_with_all = ["interactive", "signal", "no_escalate", "grace"])]
    pub sockets: bool,

    /// Show user ids as numbers (in this command -n is --dry-run).
    #[arg(long)]
    pub numeric: bool,
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Ports to wait for: a number (5432) or a service name; or a Unix
    /// socket's path or @name.
    #[arg(value_name = "PORT", value_hint = ValueHint::AnyPath)]
    pub ports: Vec<OsString>,

    #[command(flatten)]
    pub filter: SocketFilterArgs,

    /// Until each port has a listener: TCP LISTEN, or with -u an
    /// unconnected UDP socket bound on purpose (not a client's whose port
    /// the kernel chose). Listening is not ready: a server may listen
    /// before it serves.
    #[arg(short = 'l', long, conflicts_with = "free")]
    pub listening: bool,

    /// Until no socket holds each port (TIME_WAIT and orphaned
    /// connections, which the kernel ends by itself, do not count).
    #[arg(long)]
    pub free: bool,

    /// With --free: TIME_WAIT sockets and orphaned connections count too.
    #[arg(long, requires = "free")]
    pub strict: bool,

    /// Stop when the first port meets the condition, not all of them.
    #[arg(long)]
    pub any: bool,

    /// Give up after this long (500ms, 5s, 2m; a bare number is seconds);
    /// exit status 4. Without it, wait for ever.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// The bind to try: PORT (a number or a service name), ADDRESS:PORT,
    /// [IPV6-ADDRESS]:PORT or, for a link-local address, [fe80::1%IF]:PORT;
    /// without an address, the wildcard 0.0.0.0 (or [::] with -6).
    /// Or a Unix socket's path or @name: would a server's bind() on it succeed.
    #[arg(value_name = "[ADDRESS:]PORT", value_hint = ValueHint::AnyPath)]
    pub target: OsString,

    /// Try a UDP bind instead of a TCP one.
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// Without an address: bind the IPv6 wildcard [::] instead of 0.0.0.0.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Set SO_REUSEADDR, as most servers do (the default).
    #[arg(long, overrides_with = "no_reuseaddr")]
    pub reuseaddr: bool,

    /// Do not set SO_REUSEADDR.
    #[arg(long, overrides_with = "reuseaddr")]
    pub no_reuseaddr: bool,

    /// Set SO_REUSEPORT.
    #[arg(long)]
    pub reuseport: bool,

    /// IPv6: set IPV6_V6ONLY, so that the socket takes IPv6 only.
    #[arg(long, conflicts_with = "dual_stack")]
    pub v6only: bool,

    /// IPv6: clear IPV6_V6ONLY, so that the socket also takes IPv4.
    /// Without either, the namespace's default (net.ipv6.bindv6only).
    #[arg(long)]
    pub dual_stack: bool,

    /// Try the bind with this user's uid and gid (a name or a uid; root
    /// only): privileged ports and SO_REUSEPORT groups depend on it. The
    /// trial runs in a child process of its own; lsport keeps its
    /// credentials.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Ports to watch: a number, a range or a service name. None: the listeners on any port.
    #[arg(value_name = "PORT", value_hint = ValueHint::AnyPath)]
    pub ports: Vec<OsString>,

    /// Stop after this long (100ms, 3s, 2m, 1h) and print the summary.
    #[arg(long = "for", value_name = "DURATION")]
    pub for_duration: Option<String>,

    /// The time between two dumps of the sockets.
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    pub interval: String,

    #[command(flatten)]
    pub filter: SocketFilterArgs,

    /// Also match sockets whose remote port is PORT.
    #[arg(long)]
    pub remote: bool,

    /// The receive buffer of the close-notification socket, in bytes (for tests of overload).
    #[arg(long, value_name = "BYTES", hide = true)]
    pub receive_buffer: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct EphemeralArgs {
    /// Check whether a planned port range (e.g. a NodePort range,
    /// 30000-32767) overlaps the ephemeral range. Repeatable.
    #[arg(long, value_name = "LO-HI")]
    pub check_range: Vec<String>,

    /// Warn (exit status 3) when a destination has less than this
    /// percentage of its local ports left.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub warn_headroom: f64,

    /// Output format.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub format: ReportFormat,

    /// How many destinations to show, busiest first.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A report for people
    Text,
    /// One JSON document (a list of them with --all-netns)
    Json,
    /// The Prometheus text exposition format (for node_exporter's textfile collector).
    Prometheus,
}

#[derive(Debug, clap::Args)]
pub struct SuggestArgs {
    /// How many ports to suggest.
    #[arg(value_name = "N", default_value_t = 1)]
    pub count: usize,

    /// Prefer ports close to this one.
    #[arg(long, value_name = "PORT")]
    pub near: Option<String>,

    /// Search only this range.
    #[arg(long, value_name = "LO-HI")]
    pub range: Option<String>,

    /// Also suggest privileged ports (below ip_unprivileged_port_start).
    #[arg(long)]
    pub privileged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set and not empty
    Auto,
    /// Colour always, even into a pipe
    Always,
    /// No colour
    Never,
}

/// Where sockets come from (`--source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceChoice {
    Auto,
    Netlink,
    Proc,
}

impl From<SourceChoice> for LibSource {
    fn from(choice: SourceChoice) -> LibSource {
        match choice {
            SourceChoice::Auto => LibSource::Auto,
            SourceChoice::Netlink => LibSource::Netlink,
            SourceChoice::Proc => LibSource::Proc,
        }
    }
}

/// Where holders come from (`--holders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HolderSourceChoice {
    Auto,
    Kernel,
    Proc,
}

impl From<HolderSourceChoice> for HolderSource {
    fn from(choice: HolderSourceChoice) -> HolderSource {
        match choice {
            HolderSourceChoice::Auto => HolderSource::Auto,
            HolderSourceChoice::Kernel => HolderSource::Kernel,
            HolderSourceChoice::Proc => HolderSource::Proc,
        }
    }
}

/// How the answer is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The verdict and a table of the chosen columns.
    Table {
        color: bool,
        columns: Vec<ColumnId>,
        /// The terminal's width, to cut lines to; None for whole lines.
        width: Option<usize>,
    },
    Json,
    /// Nothing: the exit status says it all.
    Quiet,
}

/// What lsport was asked to do.
#[derive(Debug, Clone)]
pub enum Task {
    /// Who holds these ports (or what is listening).
    Probe,
    Ephemeral(EphemeralSettings),
    Suggest(SuggestQuery),
    Why(WhyOptions),
    /// `why PATH` or `why @NAME`: the target is the query's one Unix
    /// target.
    WhyUnix,
    Watch(WatchOptions),
    Kill(KillSettings),
    Wait(WaitOptions),
    /// `-o help`: the column list.
    ListColumns,
}

#[derive(Debug, Clone)]
pub struct EphemeralSettings {
    pub options: EphemeralOptions,
    pub format: ReportFormat,
    pub top: usize,
}

#[derive(Debug, Clone)]
pub struct KillSettings {
    pub options: KillOptions,
}

/// The validated command line: what to do, the library's query, and how
/// to print the answer.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub task: Task,
    pub query: Query,
    pub output: Output,
    /// Things to say on stderr before the answer: input lsport goes on
    /// without.
    pub warnings: Vec<String>,
}

impl Invocation {
    /// Another namespace than lsport's own was asked for: the output
    /// names the namespace of each part.
    pub fn labels_namespaces(&self) -> bool {
        self.query.netns != NetnsChoice::Current
    }
}

impl Args {
    pub fn into_invocation(self) -> Result<Invocation, Error> {
        let quiet = self.quiet;
        let output_columns = match self.output.as_deref() {
            Some(list) if list.trim().eq_ignore_ascii_case("help") => None,
            Some(list) => Some(columns::parse_list(list)?),
            None => Some(columns::DEFAULT.to_vec()),
        };
        let Some(output_columns) = output_columns else {
            return Ok(Invocation {
                task: Task::ListColumns,
                query: Query::listening(),
                output: if self.json {
                    Output::Json
                } else {
                    Output::Quiet
                },
                warnings: Vec::new(),
            });
        };
        // kill, wait and watch take their own ports and socket filters.
        let own = match &self.command {
            Some(Command::Kill(args)) => Some((&args.ports, args.filter.flags(), false)),
            Some(Command::Wait(args)) => Some((&args.ports, args.filter.flags(), false)),
            Some(Command::Watch(args)) => Some((&args.ports, args.filter.flags(), args.remote)),
            _ => None,
        };
        let port_texts = own.map_or(&self.ports, |(ports, _, _)| ports);
        // /etc/services is read only when something needs it: a port
        // given by name, or an answer that names services.
        let mut warnings = Vec::new();
        let names_given = port_texts
            .iter()
            .any(|p| p.to_str().is_some_and(portspec::is_service_name));
        let services = if names_given || !quiet || self.command.is_some() {
            let file = self
                .services_file
                .clone()
                .unwrap_or_else(|| services::DEFAULT_SERVICES_FILE.into());
            Services::load(&file).unwrap_or_else(|err| {
                warnings.push(format!("{err}; going on without local service names"));
                Services::default()
            })
        } else {
            Services::default()
        };
        let mut asked: Vec<PortRange> = Vec::new();
        let mut unix_targets = Vec::new();
        for text in port_texts {
            match portspec::parse_target(text, &services)? {
                portspec::Target::Ports(ranges) => asked.extend(ranges),
                portspec::Target::Unix(target) => unix_targets.push(target),
            }
        }
        let proc_root = self
            .proc_root
            .clone()
            .map(ProcRoot::new)
            .unwrap_or_default();
        let netns = match (&self.netns, self.all_netns) {
            (_, true) => NetnsChoice::All,
            (Some(target), false) => NetnsChoice::One(netns::resolve_target(target, &proc_root)?),
            (None, false) => NetnsChoice::Current,
        };
        let why_unix = match &self.command {
            Some(Command::Why(args)) => lsport::unix::target::UnixTarget::parse(&args.target),
            _ => None,
        };
        if let (Some(target), Some(Command::Why(args))) = (&why_unix, &self.command) {
            args.check_unix()?;
            unix_targets.push(target.clone());
        }
        let task = match &self.command {
            None => Task::Probe,
            Some(Command::Why(_)) if why_unix.is_some() => Task::WhyUnix,
            Some(Command::Ephemeral(args)) => {
                Task::Ephemeral(args.to_settings(self.json, &services)?)
            }
            Some(Command::Suggest(args)) => Task::Suggest(args.to_settings(&services)?),
            Some(Command::Why(args)) => Task::Why(args.to_options(quiet, &services)?),
            Some(Command::Watch(args)) => Task::Watch(args.to_options()?),
            Some(Command::Kill(args)) => Task::Kill(args.to_settings()?),
            Some(Command::Wait(args)) => Task::Wait(args.to_settings(quiet)?),
        };
        if matches!(task, Task::Kill(_) | Task::Wait(_)) && self.all_netns {
            return Err(Error::usage(
                "kill and wait work in one network namespace: use --netns, not --all-netns",
            ));
        }
        let filters = self.filters()?;
        if self.sctp && !matches!(task, Task::Probe) {
            return Err(Error::usage(
                "--sctp is for the probe (lsport PORT, -l, -a), not for a command",
            ));
        }
        self.check_unix(&task, &asked, &unix_targets, &filters)?;
        // Ports given with --unix are answered too, as with a path.
        let unix_only = (self.unix || !unix_targets.is_empty()) && asked.is_empty();
        let mut query = match &task {
            Task::Watch(_) if asked.is_empty() => Query::listening(),
            Task::Watch(_) | Task::Kill(_) | Task::Wait(_) => Query::ports(asked),
            // The reports look at every socket of the namespace.
            Task::Ephemeral(_)
            | Task::Suggest(_)
            | Task::Why(_)
            | Task::WhyUnix
            | Task::ListColumns => Query::all(),
            Task::Probe if !asked.is_empty() => Query::ports(asked),
            // A reverse query (`--pid 1234`): everything it holds.
            Task::Probe if self.all || !filters.is_empty() => Query::all(),
            Task::Probe => Query::listening(),
        };
        if matches!(task, Task::Probe) {
            query.filters = filters;
        }
        if self.unix && self.all {
            query.view = lsport::query::View::All;
        }
        query.unix = self.unix;
        query.unix_targets = unix_targets;
        query.listening_only = self.listening;
        let ((tcp, udp, ipv4, ipv6), remote) = match own {
            Some((_, flags, remote)) => (flags, remote),
            None => (self.filter.flags(), self.remote),
        };
        // wait --listening means TCP unless -u asks for UDP.
        let tcp_by_default = matches!(&task, Task::Wait(w) if w.condition == Condition::Listening);
        query.protocols = match (tcp, udp) {
            // Unix sockets only: no TCP or UDP socket is dumped.
            _ if unix_only => Vec::new(),
            (true, false) => vec![Protocol::Tcp],
            (false, true) => vec![Protocol::Udp],
            (false, false) if tcp_by_default => vec![Protocol::Tcp],
            (false, false) if self.sctp => Vec::new(),
            _ => vec![Protocol::Tcp, Protocol::Udp],
        };
        if self.sctp && !unix_only {
            query.protocols.push(Protocol::Sctp);
        }
        query.families = match (ipv4, ipv6) {
            (true, false) => vec![Family::Inet],
            (false, true) => vec![Family::Inet6],
            _ => vec![Family::Inet, Family::Inet6],
        };
        query.match_remote = remote;
        query.source = self.source.into();
        query.holder_source = self.holders.into();
        query.netns = netns;
        query.proc_root = proc_root;
        query.services = services;
        let kill_numeric = matches!(&self.command, Some(Command::Kill(args)) if args.numeric);
        query.user_names = !(self.numeric || kill_numeric);
        // Each command gathers only what it shows: the exit status needs
        // no holder, and ephemeral and suggest find their own.
        if quiet
            || !matches!(
                task,
                Task::Probe | Task::Why(_) | Task::WhyUnix | Task::Watch(_)
            )
        {
            query.holders = HolderDetail::None;
        }
        // Every socket's cgroup for JSON and the CGROUP and UNIT columns;
        // else only those of hidden holders, which the table names by it.
        query.cgroups = if quiet || !matches!(task, Task::Probe) {
            CgroupDetail::None
        } else if self.json || output_columns.iter().any(|c| c.is_about_cgroups()) {
            CgroupDetail::All
        } else if query.view == lsport::query::View::Ports {
            // A listener of a socket unit is named by its unit.
            CgroupDetail::Listeners
        } else {
            CgroupDetail::Hidden
        };
        query.stop_at_first_match = quiet && matches!(task, Task::Probe);
        // The probe's table reads of each holder only what its columns
        // show (and a port's holders' command lines, which name the
        // userland proxies); JSON and the other commands show everything.
        if matches!(task, Task::Probe) && !quiet && !self.json {
            query.process_fields = ProcessFields {
                args: output_columns.contains(&ColumnId::Args)
                    || query.view == lsport::query::View::Ports,
                container: output_columns.contains(&ColumnId::Container),
            };
        }
        // Forwarding rules take ports without a socket: read them when
        // the question is about ports, never for every socket.
        if matches!(task, Task::Probe) && query.view == lsport::query::View::Ports {
            query.forwarding_rules = ForwardingRules::Asked;
        }
        let output = if quiet {
            Output::Quiet
        } else if self.json {
            Output::Json
        } else {
            Output::Table {
                color: wants_color(self.color),
                columns: output_columns,
                width: if self.wide { None } else { terminal_width() },
            }
        };
        Ok(Invocation {
            task,
            query,
            output,
            warnings,
        })
    }
}

impl Args {
    /// What Unix targets and --unix go with: a probe takes ports and
    /// Unix targets together; kill and wait one kind at a time; watch
    /// none (it follows ports).
    fn check_unix(
        &self,
        task: &Task,
        asked: &[PortRange],
        unix_targets: &[lsport::unix::target::UnixTarget],
        filters: &Filters,
    ) -> Result<(), Error> {
        if self.unix && !matches!(task, Task::Probe) {
            return Err(Error::usage(
                "--unix lists Unix sockets (lsport --unix); other commands take a socket's path or @name",
            ));
        }
        if unix_targets.is_empty() {
            return Ok(());
        }
        match task {
            Task::Watch(_) => Err(Error::usage(
                "lsport watch follows ports; a Unix socket's path or @name goes to lsport, wait, why or kill",
            )),
            Task::Kill(_) | Task::Wait(_) if !asked.is_empty() => Err(Error::usage(
                "give ports or Unix sockets, not both, to kill and wait",
            )),
            Task::Wait(w) if matches!(w.condition, Condition::Free { strict: true }) => {
                Err(Error::usage(
                    "--strict counts TIME_WAIT and orphaned TCP connections; a Unix socket has none",
                ))
            }
            Task::Kill(_) | Task::Wait(_) if self.all_netns || unix_targets.len() > 1 => Err(
                Error::usage("kill and wait take one Unix socket (a path or @name) at a time"),
            ),
            Task::Probe if !filters.is_empty() => Err(Error::usage(
                "--pid, --user, --unit, --container and --cgroup select sockets without naming them: give no socket path",
            )),
            _ if self.all_netns => Err(Error::usage(
                "Unix sockets are looked up in one network namespace: use --netns, not --all-netns",
            )),
            _ => Ok(()),
        }
    }

    /// The reverse query's filters; a user name is looked up here.
    fn filters(&self) -> Result<Filters, Error> {
        let uids = self
            .user
            .iter()
            .map(|u| lsport::filter::parse_user(u, "/etc/passwd"))
            .collect::<Result<_, _>>()?;
        for (flag, values) in [
            ("--unit", &self.unit),
            ("--container", &self.container),
            ("--cgroup", &self.cgroup),
        ] {
            if values.iter().any(|v| v.trim().is_empty()) {
                return Err(Error::Usage(format!("invalid {flag} '': give a name")));
            }
        }
        Ok(Filters {
            pids: self.pid.clone(),
            uids,
            units: self.unit.clone(),
            containers: self.container.clone(),
            cgroups: self.cgroup.clone(),
        })
    }
}

impl EphemeralArgs {
    fn to_settings(&self, json: bool, services: &Services) -> Result<EphemeralSettings, Error> {
        if !(0.0..=100.0).contains(&self.warn_headroom) {
            return Err(Error::Usage(format!(
                "invalid --warn-headroom {}: a percentage from 0 to 100",
                self.warn_headroom
            )));
        }
        if self.top == 0 {
            return Err(Error::usage(
                "invalid --top 0: show at least one destination",
            ));
        }
        let mut planned = Vec::new();
        for text in &self.check_range {
            planned.extend(portspec::parse_ports(text, services)?);
        }
        let format = if json && self.format == ReportFormat::Text {
            ReportFormat::Json
        } else {
            self.format
        };
        Ok(EphemeralSettings {
            options: EphemeralOptions {
                planned,
                warn_headroom_percent: self.warn_headroom,
            },
            format,
            top: self.top,
        })
    }
}

impl WhyArgs {
    /// `why PATH` tries no bind: the options of a port's bind and --as
    /// do not apply.
    fn check_unix(&self) -> Result<(), Error> {
        let port_options = self.udp
            || self.ipv6
            || self.reuseaddr
            || self.no_reuseaddr
            || self.reuseport
            || self.v6only
            || self.dual_stack;
        if port_options || self.as_user.is_some() {
            return Err(Error::usage(
                "-u, -6, --reuseaddr, --reuseport, --v6only, --dual-stack and --as are for a port; why on a Unix socket takes none of them",
            ));
        }
        Ok(())
    }

    fn to_options(&self, quiet: bool, services: &Services) -> Result<WhyOptions, Error> {
        let why::Target {
            address,
            scope,
            port,
        } = why::parse_target(portspec::text_of(&self.target)?, services)?;
        let address = match address {
            Some(address) if self.ipv6 && address.is_ipv4() => {
                return Err(Error::Usage(format!(
                    "-6 with the IPv4 address {address}: give an IPv6 one, as [::1]:{port}"
                )));
            }
            Some(address) => address,
            None if self.ipv6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
            None => std::net::Ipv4Addr::UNSPECIFIED.into(),
        };
        let v6only = match (self.v6only, self.dual_stack) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        if v6only.is_some() && address.is_ipv4() {
            return Err(Error::usage(
                "--v6only and --dual-stack are IPv6 options: give an IPv6 address or -6",
            ));
        }
        let as_user = self
            .as_user
            .as_deref()
            .map(|user| TrialUser::resolve(user, std::path::Path::new("/etc/passwd")))
            .transpose()?;
        Ok(WhyOptions {
            bind: BindSpec {
                protocol: if self.udp {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                address,
                scope,
                port,
                reuseaddr: !self.no_reuseaddr,
                reuseport: self.reuseport,
                v6only,
                freebind: false,
            },
            as_user,
            explain: !quiet,
        })
    }
}

impl WatchArgs {
    fn to_options(&self) -> Result<WatchOptions, Error> {
        let interval = duration::parse(&self.interval, "--interval")?;
        if interval.is_zero() {
            return Err(Error::usage(format!(
                "invalid --interval {}: longer than 0, please",
                self.interval
            )));
        }
        let duration = self
            .for_duration
            .as_deref()
            .map(|t| duration::parse(t, "--for"))
            .transpose()?;
        Ok(WatchOptions {
            interval,
            duration,
            receive_buffer: self.receive_buffer,
            ..WatchOptions::default()
        })
    }
}

impl KillArgs {
    fn to_settings(&self) -> Result<KillSettings, Error> {
        if self.ports.is_empty() {
            return Err(Error::usage("lsport kill needs at least one port"));
        }
        Ok(KillSettings {
            options: KillOptions {
                mode: if self.sockets {
                    KillMode::Sockets
                } else {
                    KillMode::Signal
                },
                signal: Signal::parse(&self.signal)?,
                grace: duration::parse(&self.grace, "--grace")?,
                escalate: !self.no_escalate,
                timeout: duration::parse(&self.timeout, "--timeout")?,
                dry_run: self.dry_run,
                respawn_window: duration::parse(&self.respawn_window, "--respawn-window")?,
                interactive: self.interactive,
                yes: self.yes,
                with_connections: self.with_connections,
                stop: None,
            },
        })
    }
}

impl WaitArgs {
    fn to_settings(&self, quiet: bool) -> Result<WaitOptions, Error> {
        if self.ports.is_empty() {
            return Err(Error::usage("lsport wait needs at least one port"));
        }
        let condition = match (self.listening, self.free) {
            (true, _) => Condition::Listening,
            (false, true) => Condition::Free {
                strict: self.strict,
            },
            (false, false) => {
                return Err(Error::usage("say what to wait for: --listening or --free"));
            }
        };
        Ok(WaitOptions {
            condition,
            any: self.any,
            timeout: self
                .timeout
                .as_deref()
                .map(|t| duration::parse(t, "--timeout"))
                .transpose()?,
            name_holders: !quiet,
        })
    }
}

impl SuggestArgs {
    fn to_settings(&self, services: &Services) -> Result<SuggestQuery, Error> {
        let near = self
            .near
            .as_deref()
            .map(|text| portspec::parse_port(text, services))
            .transpose()?;
        let within = self
            .range
            .as_deref()
            .map(|text| portspec::parse_range(text, services))
            .transpose()?;
        if self.count == 0 {
            return Err(Error::usage("invalid count 0: ask for at least one port"));
        }
        Ok(SuggestQuery {
            count: self.count,
            near,
            within,
            allow_privileged: self.privileged,
        })
    }
}

/// The width of the terminal stdout is, if it is one.
fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: winsize is plain data that TIOCGWINSZ fills in.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: fd 1 is open (a terminal) and `size` is writable.
    let done = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut size) } == 0;
    (done && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// NO_COLOR (https://no-color.org): any non-empty value turns colour off
/// unless the user asked for it explicitly.
fn wants_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            !no_color && std::io::stdout().is_terminal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use lsport::query::View;

    fn invocation(args: &[&str]) -> Invocation {
        let argv = std::iter::once("lsport").chain(args.iter().copied());
        Args::parse_from(argv).into_invocation().unwrap()
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn no_ports_means_the_listening_view() {
        assert_eq!(invocation(&[]).query.view, View::Listening);
        assert_eq!(invocation(&["-a"]).query.view, View::All);
        let ports = invocation(&["-t", "22", "8000-8100", "22"]).query;
        assert_eq!(ports.view, View::Ports);
        assert_eq!(ports.ports.len(), 2);
        assert_eq!(ports.protocols, vec![Protocol::Tcp]);
    }

    #[test]
    fn the_source_defaults_to_auto() {
        assert_eq!(invocation(&[]).query.source, LibSource::Auto);
        assert_eq!(
            invocation(&["--source", "proc"]).query.source,
            LibSource::Proc
        );
        assert!(Args::try_parse_from(["lsport", "--source", "ss"]).is_err());
    }

    #[test]
    fn each_command_asks_only_for_the_holders_it_shows() {
        assert_eq!(invocation(&["22"]).query.holders, HolderDetail::Processes);
        let quiet = invocation(&["-q", "22"]).query;
        assert_eq!(quiet.holders, HolderDetail::None);
        assert!(quiet.stop_at_first_match);
        assert_eq!(
            invocation(&["suggest", "2"]).query.holders,
            HolderDetail::None
        );
        assert_eq!(invocation(&["ephemeral"]).query.holders, HolderDetail::None);
        // why names the holders of the sockets in the way; -q only tries.
        assert_eq!(
            invocation(&["why", "8080"]).query.holders,
            HolderDetail::Processes
        );
        match invocation(&["why", "-q", "8080"]).task {
            Task::Why(options) => assert!(!options.explain),
            other => panic!("{other:?}"),
        }
    }
}
