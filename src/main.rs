//! lsport: who holds a TCP or UDP port, and what the port is.

mod app;
mod cli;
mod collect;
mod container;
mod ephemeral;
mod generate;
mod netns;
mod overlap;
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
    if let Some(what) = args.generate {
        return match generate::render(what) {
            Ok(bytes) => write_stdout(&bytes),
            Err(message) => fail(&message),
        };
    }
    let settings = match args.into_settings() {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    let probe = match app::probe(&settings) {
        Ok(probe) => probe,
        Err(message) => return fail(&message),
    };
    if settings.output != Output::Quiet {
        warn_about_gaps(&settings, &probe);
    }
    let mut stdout = std::io::stdout().lock();
    let (written, status) = respond(&settings, &probe, &mut stdout);
    if let Err(code) = check_written(written.and_then(|()| stdout.flush())) {
        return code;
    }
    ExitCode::from(status)
}

/// Writes the answer for the task asked; returns how the writing went
/// and the exit status.
fn respond(
    settings: &Settings,
    probe: &app::Probe,
    sink: &mut impl Write,
) -> (std::io::Result<()>, u8) {
    let quiet = settings.output == Output::Quiet;
    let reports = &probe.reports;
    let (text, status) = match &settings.task {
        Task::Probe => {
            let status = if probe.any_match() {
                EXIT_MATCH
            } else {
                EXIT_NO_MATCH
            };
            let text = match settings.output {
                Output::Quiet => String::new(),
                // Streamed: `-a --json` on a busy host is large.
                Output::Json => return (render::json::write(reports, sink), status),
                Output::Table { color } => {
                    let label = settings.netns != cli::NetnsChoice::Current;
                    render::table::render(reports, label, color)
                }
            };
            (text, status)
        }
        Task::Ephemeral(task) => {
            let analyses: Vec<(ephemeral::Analysis, Vec<String>)> = reports
                .iter()
                .map(|report| {
                    let analysis = ephemeral::analyze(&report.policy, &report.rows, &task.planned);
                    let problems = ephemeral::problems(&analysis, task.warn_headroom_percent);
                    (analysis, problems)
                })
                .collect();
            let text = if quiet {
                String::new()
            } else {
                ephemeral_text(task, reports, &analyses)
            };
            let healthy = analyses.iter().all(|(_, problems)| problems.is_empty());
            (text, if healthy { EXIT_MATCH } else { EXIT_UNHEALTHY })
        }
        Task::Suggest(task) => {
            let ports = app::suggest_ports(task, probe, &settings.services);
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
            let status = if ports.len() == task.count {
                EXIT_MATCH
            } else {
                EXIT_NO_MATCH
            };
            (text, status)
        }
    };
    (sink.write_all(text.as_bytes()), status)
}

/// `lsport ephemeral` for each namespace probed: text sections, one JSON
/// document (a list of them with several namespaces), or one set of
/// metrics labelled by namespace.
fn ephemeral_text(
    task: &cli::EphemeralSettings,
    reports: &[report::Report],
    analyses: &[(ephemeral::Analysis, Vec<String>)],
) -> String {
    let each = reports.iter().zip(analyses);
    match task.format {
        ReportFormat::Prometheus => {
            let namespaces: Vec<render::ephemeral::NamespaceAnalysis<'_>> = each
                .map(
                    |(report, (analysis, problems))| render::ephemeral::NamespaceAnalysis {
                        analysis,
                        netns: report.netns.inode,
                        problems,
                    },
                )
                .collect();
            render::ephemeral::prometheus(&namespaces, task.top)
        }
        ReportFormat::Json => {
            let documents: Vec<String> = each
                .map(|(report, (analysis, problems))| {
                    let netns = report.netns.inode;
                    render::ephemeral::json_document(
                        analysis,
                        &report.policy,
                        netns,
                        task.top,
                        problems,
                    )
                })
                .collect();
            if documents.len() == 1 {
                documents.concat()
            } else {
                let trimmed: Vec<&str> = documents.iter().map(|d| d.trim_end()).collect();
                format!("[{}]\n", trimmed.join(","))
            }
        }
        ReportFormat::Text => each
            .map(|(report, (analysis, problems))| {
                render::ephemeral::text(
                    analysis,
                    &report.policy,
                    report.netns.inode,
                    task.top,
                    problems,
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// One line on stderr for each thing the answer could not cover.
fn warn_about_gaps(settings: &Settings, probe: &app::Probe) {
    let hidden: usize = probe.reports.iter().map(|r| r.hidden_sockets).sum();
    if hidden > 0 {
        eprintln!(
            "lsport: {hidden} socket{} ha{} holders hidden from this user; run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them",
            if hidden == 1 { "" } else { "s" },
            if hidden == 1 { "s" } else { "ve" },
        );
    }
    for report in &probe.reports {
        if report.skipped_replies > 0 {
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
    }
    if !probe.skipped.is_empty() {
        eprintln!(
            "lsport: skipped {} network namespace{}: {}",
            probe.skipped.len(),
            if probe.skipped.len() == 1 { "" } else { "s" },
            probe.skipped.join("; ")
        );
    }
}

fn write_stdout(bytes: &[u8]) -> ExitCode {
    match write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn write_all(bytes: &[u8]) -> Result<(), ExitCode> {
    let mut stdout = std::io::stdout().lock();
    check_written(stdout.write_all(bytes).and_then(|()| stdout.flush()))
}

fn check_written(written: std::io::Result<()>) -> Result<(), ExitCode> {
    match written {
        // A closed pipe (`lsport | head -1`) is not an error worth a word.
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(fail(&format!("writing output: {err}")))
        }
        _ => Ok(()),
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
