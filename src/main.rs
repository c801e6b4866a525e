//! lsport: who holds a TCP or UDP port, and what the port is.

mod app;
mod cli;
mod collect;
mod ephemeral;
mod owners;
mod ports;
mod portspec;
mod render;
mod report;
mod services;
mod socket;
mod source;
mod suggest;
mod sys;
mod users;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Args, Output, ReportFormat, Settings, Task};
use crate::source::SourceKind;

/// grep-style exit statuses.
const EXIT_MATCH: u8 = 0;
const EXIT_NO_MATCH: u8 = 1;
const EXIT_ERROR: u8 = 2;
/// `lsport ephemeral` found something that needs attention.
const EXIT_UNHEALTHY: u8 = 3;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => return clap_error(err),
    };
    let settings = match args.into_settings() {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    let report = match app::probe(&settings) {
        Ok(report) => report,
        Err(message) => return fail(&message),
    };

    if report.hidden_sockets > 0 && settings.output != Output::Quiet {
        eprintln!(
            "lsport: {} socket{} ha{} holders hidden from this user; run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them",
            report.hidden_sockets,
            if report.hidden_sockets == 1 { "" } else { "s" },
            if report.hidden_sockets == 1 {
                "s"
            } else {
                "ve"
            },
        );
    }
    if report.skipped_replies > 0 && settings.output != Output::Quiet {
        let what = match report.source {
            SourceKind::Netlink => "sock_diag replies",
            SourceKind::Proc => "/proc/net lines",
        };
        eprintln!(
            "lsport: {} {what} could not be decoded and were skipped",
            report.skipped_replies
        );
    }
    if let (Some(reason), Output::Table { .. }) = (&report.fallback, settings.output) {
        eprintln!("lsport: sock_diag is not available ({reason}); reading /proc/net instead");
    }
    let (text, status) = respond(&settings, &report);
    if let Err(err) = std::io::stdout().lock().write_all(text.as_bytes()) {
        // A closed pipe (`lsport | head -1`) is not an error worth a word.
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            return fail(&format!("writing output: {err}"));
        }
    }
    ExitCode::from(status)
}

/// The text to print and the exit status, for the task asked.
fn respond(settings: &Settings, report: &report::Report) -> (String, u8) {
    let quiet = settings.output == Output::Quiet;
    match &settings.task {
        Task::Probe => {
            let text = match settings.output {
                Output::Quiet => String::new(),
                Output::Json => render::json::render(report),
                Output::Table { color } => render::table::render(report, color),
            };
            (
                text,
                if report.any_match() {
                    EXIT_MATCH
                } else {
                    EXIT_NO_MATCH
                },
            )
        }
        Task::Ephemeral(task) => {
            let analysis = ephemeral::analyze(&report.policy, &report.rows, &task.planned);
            let problems = ephemeral::problems(&analysis, task.warn_headroom_percent);
            let (policy, netns) = (&report.policy, report.netns_inode);
            let text = match task.format {
                _ if quiet => String::new(),
                ReportFormat::Text => {
                    render::ephemeral::text(&analysis, policy, netns, task.top, &problems)
                }
                ReportFormat::Json => {
                    render::ephemeral::json_document(&analysis, policy, netns, task.top, &problems)
                }
                ReportFormat::Prometheus => {
                    render::ephemeral::prometheus(&analysis, netns, task.top, &problems)
                }
            };
            (
                text,
                if problems.is_empty() {
                    EXIT_MATCH
                } else {
                    EXIT_UNHEALTHY
                },
            )
        }
        Task::Suggest(task) => {
            let ports = app::suggest_ports(task, report, &settings.services);
            if ports.len() < task.count && !quiet {
                eprintln!(
                    "lsport: found {} safe port{} of the {} asked for",
                    ports.len(),
                    if ports.len() == 1 { "" } else { "s" },
                    task.count
                );
            }
            let text = match settings.output {
                Output::Quiet => String::new(),
                Output::Json => render::json::suggestions(&ports),
                Output::Table { .. } => ports.iter().map(|p| format!("{p}\n")).collect(),
            };
            (
                text,
                if ports.len() == task.count {
                    EXIT_MATCH
                } else {
                    EXIT_NO_MATCH
                },
            )
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lsport: {message}");
    ExitCode::from(EXIT_ERROR)
}

/// clap's own errors are several lines long; lsport says one.
fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    fail(&format!("{first} (see 'lsport --help')"))
}
