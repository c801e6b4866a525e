//! lsport: who holds a TCP or UDP port, and what the port is.

mod app;
mod cli;
mod overlap;
mod owners;
mod ports;
mod portspec;
mod render;
mod report;
mod socket;
mod source;
mod sys;
mod users;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Args, Output};

/// grep-style exit statuses.
const EXIT_MATCH: u8 = 0;
const EXIT_NO_MATCH: u8 = 1;
const EXIT_ERROR: u8 = 2;

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
        eprintln!(
            "lsport: {} sock_diag replies could not be decoded and were skipped",
            report.skipped_replies
        );
    }
    let mut stdout = std::io::stdout().lock();
    let written = match settings.output {
        Output::Quiet => Ok(()),
        Output::Json => render::json::write(&report, &mut stdout),
        Output::Table { color } => {
            stdout.write_all(render::table::render(&report, color).as_bytes())
        }
    };
    if let Err(err) = written.and_then(|()| stdout.flush()) {
        // A closed pipe (`lsport | head -1`) is not an error worth a word.
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            return fail(&format!("writing output: {err}"));
        }
    }
    ExitCode::from(if report.any_match() {
        EXIT_MATCH
    } else {
        EXIT_NO_MATCH
    })
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
