//! The command line: clap fills `Args`, which is turned once into plain
//! `Settings`. Nothing below this module knows about clap.

use std::io::IsTerminal;

use clap::{Parser, ValueEnum};

use crate::ports::PortRange;
use crate::portspec;
use crate::socket::{Family, Protocol};
use crate::sys::ProcRoot;

#[derive(Debug, Parser)]
#[command(
    name = "lsport",
    version,
    about = "Who holds a TCP or UDP port, and what the port is",
    long_about = "Who holds a TCP or UDP port, and what the port is.\n\n\
        With PORTs, lsport shows every socket whose local port is one of them \
        (TCP in every state, bound-only sockets included, and UDP), the processes \
        that hold each one, and what the port is: its IANA range, and whether it \
        lies in the kernel's ephemeral range, is reserved, or is privileged.\n\n\
        Without PORTs, it shows what is listening: TCP listeners, bound-only TCP \
        sockets and bound UDP sockets.\n\n\
        Exit status: 0 when a socket matched, 1 when none did, 2 on error.",
    after_help = "Examples:\n  lsport 8080            who holds port 8080, and what the port is\n  \
        lsport 22 443 8000-8100\n  lsport                 what is listening\n  \
        lsport -a --json       every socket, as JSON"
)]
pub struct Args {
    /// Ports to look up: a number (8080) or a range (8000-8100).
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

    /// Show user ids as numbers; do not read /etc/passwd.
    #[arg(short = 'n', long)]
    pub numeric: bool,

    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,

    /// When to use colour.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,

    /// Print nothing; report through the exit status only.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Read /proc from this directory instead (for tests; also LSPORT_PROC_ROOT).
    #[arg(long, value_name = "DIR", hide = true, env = "LSPORT_PROC_ROOT")]
    pub proc_root: Option<std::path::PathBuf>,

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set and not empty
    Auto,
    /// Colour always, even into a pipe
    Always,
    /// No colour
    Never,
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

/// The validated query: everything the rest of lsport needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
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
    pub proc_root: ProcRoot,
}

impl Args {
    pub fn into_settings(self) -> Result<Settings, String> {
        let mut asked: Vec<PortRange> = Vec::new();
        for text in &self.ports {
            let range = portspec::parse_port_arg(text)?;
            if !asked.contains(&range) {
                asked.push(range);
            }
        }
        let ports = portspec::normalize(asked.clone());
        let view = if !ports.is_empty() {
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
            view,
            asked,
            ports,
            listening_only: self.listening,
            protocols,
            families,
            match_remote: self.remote,
            numeric: self.numeric,
            output,
            proc_root: self.proc_root.map(ProcRoot::new).unwrap_or_default(),
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
}
