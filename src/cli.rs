//! The command line: clap fills `Args`, which is turned once into an
//! `Invocation`: the library's plain `Query` plus what the binary does
//! with the answer. Only the binary knows clap.

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};

use lsport::commands::ephemeral::EphemeralOptions;
use lsport::commands::suggest::SuggestQuery;
use lsport::error::Error;
use lsport::query::{
    CgroupDetail, Filters, HolderDetail, NetnsChoice, Query, SourceChoice as LibSource,
};
use lsport::render::columns::{self, ColumnId};
use lsport::services::{self, Services};
use lsport::socket::{Family, PortRange, Protocol};
use lsport::sys::ProcRoot;
use lsport::{netns, portspec};

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
        lsport ephemeral: 3 when something needs attention.",
    after_help = "Examples:\n  lsport 8080            who holds port 8080, and what the port is\n  \
        lsport 22 443 8000-8100\n  lsport ssh             the ports registered for ssh\n  \
        lsport                 what is listening\n  \
        lsport -a --json       every socket, as JSON\n  \
        lsport --all-netns 80  port 80 in every network namespace\n  \
        lsport ephemeral       the ephemeral range under load\n  \
        lsport suggest 3       three ports safe for a new service"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Ports to look up: a number (8080), a range (8000-8100) or a service name (ssh).
    #[arg(value_name = "PORT")]
    pub ports: Vec<String>,

    /// Show every socket in every state (like `ss -tuanp`).
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Show only listening TCP sockets, bound-only TCP sockets and unconnected UDP sockets.
    #[arg(short = 'l', long)]
    pub listening: bool,

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

    /// Print nothing; report through the exit status only.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// Where sockets come from: auto (sock_diag, or /proc/net where sock_diag is refused or missing), netlink (sock_diag only) or proc (/proc/net only).
    #[arg(long, value_name = "SOURCE", default_value = "auto")]
    pub source: SourceChoice,

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

/// How the answer is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The verdict and a table of the chosen columns.
    Table {
        color: bool,
        columns: Vec<ColumnId>,
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
    /// `-o help`: the column list.
    ListColumns,
}

#[derive(Debug, Clone)]
pub struct EphemeralSettings {
    pub options: EphemeralOptions,
    pub format: ReportFormat,
    pub top: usize,
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
                output: Output::Quiet,
                warnings: Vec::new(),
            });
        };
        // /etc/services is read only when something needs it: a port
        // given by name, or an answer that names services.
        let mut warnings = Vec::new();
        let names_given = self
            .ports
            .iter()
            .any(|p| p.bytes().any(|b| b.is_ascii_alphabetic()));
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
        for text in &self.ports {
            asked.extend(port_arg(text, &services)?);
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
        let task = match &self.command {
            None => Task::Probe,
            Some(Command::Ephemeral(args)) => Task::Ephemeral(args.to_settings(self.json)?),
            Some(Command::Suggest(args)) => Task::Suggest(args.to_settings()?),
        };
        let filters = self.filters()?;
        let mut query = if !matches!(task, Task::Probe) {
            // The reports look at every socket of the namespace.
            Query::all()
        } else if !asked.is_empty() {
            Query::ports(asked)
        } else if self.all || !filters.is_empty() {
            // A reverse query (`--pid 1234`): everything it holds.
            Query::all()
        } else {
            Query::listening()
        };
        if matches!(task, Task::Probe) {
            query.filters = filters;
        }
        query.listening_only = self.listening;
        query.protocols = match (self.tcp, self.udp) {
            (true, false) => vec![Protocol::Tcp],
            (false, true) => vec![Protocol::Udp],
            _ => vec![Protocol::Tcp, Protocol::Udp],
        };
        query.families = match (self.ipv4, self.ipv6) {
            (true, false) => vec![Family::Inet],
            (false, true) => vec![Family::Inet6],
            _ => vec![Family::Inet, Family::Inet6],
        };
        query.match_remote = self.remote;
        query.source = self.source.into();
        query.netns = netns;
        query.proc_root = proc_root;
        query.services = services;
        query.user_names = !self.numeric;
        // Each command gathers only what it shows: the exit status needs
        // no holder, and ephemeral and suggest find their own.
        if quiet || !matches!(task, Task::Probe) {
            query.holders = HolderDetail::None;
        }
        // Every socket's cgroup for JSON and the CGROUP and UNIT columns;
        // else only those of hidden holders, which the table names by it.
        query.cgroups = if quiet || !matches!(task, Task::Probe) {
            CgroupDetail::None
        } else if self.json || output_columns.iter().any(|c| c.is_about_cgroups()) {
            CgroupDetail::All
        } else {
            CgroupDetail::Hidden
        };
        query.stop_at_first_match = quiet && matches!(task, Task::Probe);
        let output = if quiet {
            Output::Quiet
        } else if self.json {
            Output::Json
        } else {
            Output::Table {
                color: wants_color(self.color),
                columns: output_columns,
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

/// A number or a range as portspec reads it; anything with a letter in
/// it is a service name, which stands for each of its ports.
fn port_arg(text: &str, services: &Services) -> Result<Vec<PortRange>, Error> {
    match portspec::parse_port_arg(text) {
        Ok(range) => Ok(vec![range]),
        Err(_) if text.bytes().any(|b| b.is_ascii_alphabetic()) => services.resolve(text),
        Err(message) => Err(message),
    }
}

impl EphemeralArgs {
    fn to_settings(&self, json: bool) -> Result<EphemeralSettings, Error> {
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
        let planned = self
            .check_range
            .iter()
            .map(|text| portspec::parse_port_arg(text))
            .collect::<Result<_, _>>()?;
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

impl SuggestArgs {
    fn to_settings(&self) -> Result<SuggestQuery, Error> {
        let near = match &self.near {
            Some(text) => {
                let range = portspec::parse_port_arg(text)?;
                if range.lo != range.hi {
                    return Err(Error::Usage(format!(
                        "invalid --near {text}: one port, not a range"
                    )));
                }
                Some(range.lo)
            }
            None => None,
        };
        let within = self
            .range
            .as_deref()
            .map(portspec::parse_port_arg)
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
    }

    #[test]
    fn names_stand_for_ports_and_numbers_keep_their_errors() {
        let services = Services::default();
        assert_eq!(
            port_arg("SSH", &services).unwrap(),
            vec![PortRange::single(22)]
        );
        assert_eq!(
            port_arg("6000-6001", &services).unwrap(),
            vec![PortRange { lo: 6000, hi: 6001 }]
        );
        let message = |text| port_arg(text, &services).unwrap_err().to_string();
        // No letter: a bad number, not an unknown name.
        assert!(message("9000-8000").contains("greater"));
        assert!(message("70000").contains("0 to 65535"));
        let err = message("no-such-service-x");
        assert!(err.starts_with("unknown port or service name"), "{err}");
    }
}
