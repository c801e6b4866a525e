//! The command line: clap fills `Args`, which is turned once into plain
//! `Settings`. Nothing below this module knows about clap.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::netns;
use crate::ports::PortRange;
use crate::portspec;
use crate::services::{self, Services};
use crate::socket::{Family, Protocol};
use crate::sys::ProcRoot;

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

/// Which sockets the user asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Sockets on the given ports.
    Ports,
    /// What is listening (no ports given).
    Listening,
    /// Every socket (`-a`).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table { color: bool },
    Json,
    Quiet,
}

/// Which network namespaces to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsChoice {
    /// The one lsport runs in.
    Current,
    /// The namespace this file refers to.
    One(PathBuf),
    /// Every namespace on the host.
    All,
}

/// What lsport was asked to do.
#[derive(Debug, Clone)]
pub enum Task {
    /// Who holds these ports (or what is listening).
    Probe,
    Ephemeral(EphemeralSettings),
    Suggest(SuggestSettings),
}

#[derive(Debug, Clone)]
pub struct EphemeralSettings {
    pub planned: Vec<PortRange>,
    pub warn_headroom_percent: f64,
    pub format: ReportFormat,
    pub top: usize,
}

#[derive(Debug, Clone)]
pub struct SuggestSettings {
    pub count: usize,
    pub near: Option<u16>,
    pub within: Option<PortRange>,
    pub allow_privileged: bool,
}

/// The validated query: everything the rest of lsport needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub task: Task,
    pub view: View,
    /// The ports as the user gave them, in order, duplicates removed.
    pub asked: Vec<PortRange>,
    /// The same ports, sorted and merged: what the filter matches.
    pub ports: Vec<PortRange>,
    pub listening_only: bool,
    pub protocols: Vec<Protocol>,
    pub families: Vec<Family>,
    pub match_remote: bool,
    pub numeric: bool,
    pub output: Output,
    pub source: SourceChoice,
    pub netns: NetnsChoice,
    pub proc_root: ProcRoot,
    /// IANA's registry and the local names it lacks.
    pub services: Services,
}

impl Args {
    pub fn into_settings(self) -> Result<Settings, String> {
        let services_file = self
            .services_file
            .unwrap_or_else(|| services::DEFAULT_SERVICES_FILE.into());
        let services = Services::load(&services_file);
        let mut asked: Vec<PortRange> = Vec::new();
        for text in &self.ports {
            for range in port_arg(text, &services)? {
                if !asked.contains(&range) {
                    asked.push(range);
                }
            }
        }
        let ports = portspec::normalize(asked.clone());
        let proc_root = self.proc_root.map(ProcRoot::new).unwrap_or_default();
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
        // The reports look at every socket of the namespace.
        let view = if !matches!(task, Task::Probe) {
            View::All
        } else if !ports.is_empty() {
            View::Ports
        } else if self.all {
            View::All
        } else {
            View::Listening
        };
        let protocols = match (self.tcp, self.udp) {
            (true, false) => vec![Protocol::Tcp],
            (false, true) => vec![Protocol::Udp],
            _ => vec![Protocol::Tcp, Protocol::Udp],
        };
        let families = match (self.ipv4, self.ipv6) {
            (true, false) => vec![Family::Inet],
            (false, true) => vec![Family::Inet6],
            _ => vec![Family::Inet, Family::Inet6],
        };
        let output = if self.quiet {
            Output::Quiet
        } else if self.json {
            Output::Json
        } else {
            Output::Table {
                color: wants_color(self.color),
            }
        };
        Ok(Settings {
            task,
            view,
            asked,
            ports,
            listening_only: self.listening,
            protocols,
            families,
            match_remote: self.remote,
            numeric: self.numeric,
            output,
            source: self.source,
            netns,
            proc_root,
            services,
        })
    }
}

/// A number or a range as portspec reads it; anything with a letter in
/// it is a service name, which stands for each of its ports.
fn port_arg(text: &str, services: &Services) -> Result<Vec<PortRange>, String> {
    match portspec::parse_port_arg(text) {
        Ok(range) => Ok(vec![range]),
        Err(_) if text.bytes().any(|b| b.is_ascii_alphabetic()) => services.resolve(text),
        Err(message) => Err(message),
    }
}

impl EphemeralArgs {
    fn to_settings(&self, json: bool) -> Result<EphemeralSettings, String> {
        if !(0.0..=100.0).contains(&self.warn_headroom) {
            return Err(format!(
                "invalid --warn-headroom {}: a percentage from 0 to 100",
                self.warn_headroom
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
            planned,
            warn_headroom_percent: self.warn_headroom,
            format,
            top: self.top,
        })
    }
}

impl SuggestArgs {
    fn to_settings(&self) -> Result<SuggestSettings, String> {
        let near = match &self.near {
            Some(text) => {
                let range = portspec::parse_port_arg(text)?;
                if range.lo != range.hi {
                    return Err(format!("invalid --near {text}: one port, not a range"));
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
            return Err("invalid count 0: ask for at least one port".to_string());
        }
        Ok(SuggestSettings {
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

    #[test]
    fn the_command_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn no_ports_means_the_listening_view() {
        let settings = Args::parse_from(["lsport"]).into_settings().unwrap();
        assert_eq!(settings.view, View::Listening);
        let settings = Args::parse_from(["lsport", "-a"]).into_settings().unwrap();
        assert_eq!(settings.view, View::All);
        let settings = Args::parse_from(["lsport", "-t", "22", "8000-8100", "22"])
            .into_settings()
            .unwrap();
        assert_eq!(settings.view, View::Ports);
        assert_eq!(settings.asked.len(), 2);
        assert_eq!(settings.protocols, vec![Protocol::Tcp]);
    }

    #[test]
    fn the_source_defaults_to_auto() {
        let settings = Args::parse_from(["lsport"]).into_settings().unwrap();
        assert_eq!(settings.source, SourceChoice::Auto);
        let settings = Args::parse_from(["lsport", "--source", "proc"])
            .into_settings()
            .unwrap();
        assert_eq!(settings.source, SourceChoice::Proc);
        assert!(Args::try_parse_from(["lsport", "--source", "ss"]).is_err());
    }

    #[test]
    fn names_stand_for_ports_and_numbers_keep_their_errors() {
        let services = Services::default();
        assert_eq!(port_arg("SSH", &services), Ok(vec![PortRange::single(22)]));
        assert_eq!(
            port_arg("6000-6001", &services),
            Ok(vec![PortRange { lo: 6000, hi: 6001 }])
        );
        // No letter: a bad number, not an unknown name.
        assert!(
            port_arg("9000-8000", &services)
                .unwrap_err()
                .contains("greater")
        );
        assert!(
            port_arg("70000", &services)
                .unwrap_err()
                .contains("0 to 65535")
        );
        let err = port_arg("no-such-service-x", &services).unwrap_err();
        assert!(err.starts_with("unknown port or service name"), "{err}");
    }
}
