//! The `lsport` command: parse, dispatch one function per command,
//! print, exit. Everything it prints comes from the library.

mod cli;
mod generate;
mod interrupt;
mod memory;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use lsport::commands::watch::{Event, Watch, WatchOptions};
use lsport::commands::{ephemeral, kill, suggest, wait, why};
use lsport::query::HolderSource;
use lsport::render::{self, escape::escape_str};
use lsport::report::Report;
use lsport::source::SourceKind;

use crate::cli::{Args, Invocation, Output, ReportFormat, Task};

/// grep-style exit statuses.
const EXIT_MATCH: u8 = 0;
const EXIT_NO_MATCH: u8 = 1;
const EXIT_ERROR: u8 = 2;
/// `lsport ephemeral` found something that needs attention.
const EXIT_UNHEALTHY: u8 = 3;
/// Cannot be done now: `lsport why`'s bind would fail; `kill` and `wait`
/// are not done (still held, refused, timed out).
const EXIT_CANNOT_NOW: u8 = 4;

/// The stack lsport's work runs on. clap's derived parser alone builds
/// every flag in one frame of about 25 KB, so under a small
/// `ulimit -s` (40 KB) the main thread overflowed before `--version`
/// could answer. A thread's stack is mapped at the size asked for,
/// whatever RLIMIT_STACK says, so the main thread only starts it.
const WORK_STACK: usize = 8 << 20;

fn main() -> ExitCode {
    match std::thread::Builder::new()
        .name("lsport".into())
        .stack_size(WORK_STACK)
        .spawn(run)
    {
        Ok(work) => work.join().unwrap_or(ExitCode::from(EXIT_ERROR)),
        // No thread to be had: do the work here.
        Err(_) => run(),
    }
}

fn run() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => return clap_error(err),
    };
    if let Some(what) = args.generate {
        return match generate::render(what) {
            Ok(bytes) => finish(print(|out| out.write_all(&bytes)).map(|()| EXIT_MATCH)),
            Err(message) => fail(&message),
        };
    }
    let invocation = match args.into_invocation() {
        Ok(invocation) => invocation,
        Err(err) => return fail(&err.to_string()),
    };
    interrupt::install(invocation.output == Output::Json);
    if invocation.output != Output::Quiet {
        invocation.warnings.iter().for_each(|w| say(w));
    }
    // The probe says why from its report; the other commands that name
    // holders through it are told here, before they start.
    let names_holders = matches!(
        invocation.task,
        Task::Ephemeral(_) | Task::Why(_) | Task::Kill(_) | Task::Wait(_)
    );
    if invocation.query.holder_source == HolderSource::Kernel
        && names_holders
        && invocation.output != Output::Quiet
    {
        if let Err(why) = lsport::holders::kernel_walk_possible(&invocation.query.proc_root) {
            say_kernel_walk_unavailable(&why);
        }
    }
    let status = match &invocation.task {
        Task::Probe => run_probe(&invocation),
        Task::Ephemeral(settings) => run_ephemeral(&invocation, settings),
        Task::Suggest(wanted) => run_suggest(&invocation, wanted),
        Task::Why(options) => run_why(&invocation, options),
        Task::WhyUnix => run_why_unix(&invocation),
        Task::Watch(options) => run_watch(&invocation, options),
        Task::Kill(settings) => run_kill(&invocation, settings),
        Task::Wait(options) => run_wait(&invocation, options),
        Task::ListColumns if invocation.output == Output::Json => {
            print(render::json::write_columns).map(|()| EXIT_MATCH)
        }
        Task::ListColumns => {
            print(|out| out.write_all(render::columns::list().as_bytes())).map(|()| EXIT_MATCH)
        }
    };
    finish(status)
}

/// What a command ends with: its exit status, or an error to say.
type Outcome = Result<u8, Failure>;

/// Why a command could not finish.
enum Failure {
    /// The library's error.
    Lsport(lsport::Error),
    /// Writing the answer failed.
    Output(std::io::Error),
}

impl From<lsport::Error> for Failure {
    fn from(err: lsport::Error) -> Failure {
        Failure::Lsport(err)
    }
}

fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(status) => ExitCode::from(status),
        Err(Failure::Lsport(err)) => fail(&err.to_string()),
        Err(Failure::Output(err)) => fail(&format!("writing output: {err}")),
    }
}

/// The size of the blocks the answer is written in, off a terminal.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// Runs `write` on a locked stdout and flushes it. A closed pipe
/// (`lsport | head -1`) is not an error worth a word; a stdout that is
/// closed or read-only is (Rust's stdout would drop the answer
/// silently).
fn print(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), Failure> {
    stdout_writable().map_err(Failure::Output)?;
    let mut stdout = std::io::stdout().lock();
    let _writing = interrupt::writing();
    // Rust's stdout writes each line as it ends, even into a pipe or a
    // file: a table of 200,000 rows would be 200,000 write()s. Off a
    // terminal the answer goes out in large blocks, flushed at the end.
    let written = if stdout.is_terminal() {
        write(&mut stdout)
    } else {
        let mut buffered = std::io::BufWriter::with_capacity(OUTPUT_BUFFER, &mut stdout);
        write(&mut buffered).and_then(|()| buffered.flush())
    };
    match written.and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Output(err)),
        _ => Ok(()),
    }
}

/// Whether fd 1 is open for writing. (A closed fd 1 is /dev/null by
/// now: Rust's runtime opens it there before `main`.)
fn stdout_writable() -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};

    let flags = fcntl(std::io::stdout(), FcntlArg::F_GETFL)?;
    let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
    if mode == OFlag::O_RDONLY {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "standard output is open for reading only",
        ));
    }
    Ok(())
}

/// `lsport [PORT...]`: who holds the ports, or what is listening.
fn run_probe(invocation: &Invocation) -> Outcome {
    if invocation.query.unix || !invocation.query.unix_targets.is_empty() {
        return run_unix_probe(invocation);
    }
    let report = lsport::probe(&invocation.query)?;
    // A forwarded port is in use for whoever would start a server on it.
    let status = if report.any_match() || report.any_forwarded() {
        EXIT_MATCH
    } else {
        EXIT_NO_MATCH
    };
    if invocation.output == Output::Quiet {
        return Ok(status);
    }
    warn_about_gaps(invocation, &report);
    print(|out| match &invocation.output {
        Output::Json => render::json::write_probe(&report, out),
        Output::Table {
            color,
            columns,
            width,
        } => {
            let options = render::table::TableOptions {
                label_namespaces: invocation.labels_namespaces(),
                color: *color,
                columns: columns.clone(),
                width: *width,
            };
            render::table::write(&report, &options, out)
        }
        Output::Quiet => Ok(()),
    })?;
    Ok(status)
}

/// `lsport PATH`, `lsport @NAME`, `lsport --unix`: who is on a Unix
/// socket, or what listens. Ports given too are answered first, as
/// without Unix targets; JSON is the probe's document with a `unix`
/// part (its ports and sockets empty when none was asked).
fn run_unix_probe(invocation: &Invocation) -> Outcome {
    let query = &invocation.query;
    let unix = lsport::unix::probe::probe(query)?;
    let ports_asked = !query.ports.is_empty();
    let mut ports = if ports_asked {
        Some(lsport::probe(query)?)
    } else if invocation.output == Output::Json {
        // The document's empty port part: no filter to prepare for it.
        let empty = lsport::query::Query {
            filters: lsport::query::Filters::default(),
            ..query.clone()
        };
        Some(lsport::probe(&empty)?)
    } else {
        None
    };
    // Without ports, the document's holders are the Unix sockets'.
    if let Some(report) = ports.as_mut().filter(|_| !ports_asked) {
        report.holders_from = unix.holders_from;
    }
    let port_match = ports_asked && ports.as_ref().is_some_and(Report::any_match);
    let status = if unix.any_match() || port_match {
        EXIT_MATCH
    } else {
        EXIT_NO_MATCH
    };
    if invocation.output == Output::Quiet {
        return Ok(status);
    }
    if let Some(report) = ports.as_ref().filter(|_| ports_asked) {
        warn_about_gaps(invocation, report);
    }
    warn_about_unix_gaps(&unix);
    print(|out| match (&invocation.output, &ports) {
        (Output::Json, Some(report)) => {
            render::json::write_probe_with_unix(report, Some(&unix), out)
        }
        (
            Output::Table {
                color,
                columns,
                width,
            },
            _,
        ) => {
            if let Some(report) = ports.as_ref().filter(|_| ports_asked) {
                let options = render::table::TableOptions {
                    label_namespaces: invocation.labels_namespaces(),
                    color: *color,
                    columns: columns.clone(),
                    width: *width,
                };
                render::table::write(report, &options, out)?;
                writeln!(out)?;
            }
            out.write_all(render::unix::text(&unix).as_bytes())
        }
        _ => Ok(()),
    })?;
    Ok(status)
}

/// One line on stderr for each thing the Unix answer could not cover.
fn warn_about_unix_gaps(unix: &lsport::unix::report::UnixReport) {
    if let Some(reason) = &unix.fallback {
        say(&format!(
            "sock_diag is not available ({reason}); reading /proc/net/unix instead, which gives no bound files, peers, queues or uids: paths are matched by name"
        ));
    }
    if unix.skipped > 0 {
        say(&format!(
            "{} Unix socket entries could not be decoded and were skipped",
            unix.skipped
        ));
    }
    if let Some(line) = render::unseen::notice(unix.hidden_holders(), &unix.unseen) {
        say(&line);
    }
    if unix.untested_by_filter > 0 {
        let n = unix.untested_by_filter;
        // Root is refused only by the kernel or a sandbox: nothing to advise.
        let remedy = if nix::unistd::geteuid().is_root() {
            ": the fd tables that hold them are refused even to root"
        } else {
            " (run as root)"
        };
        say(&format!(
            "{n} Unix socket{} left out: {} holders are hidden from this user, so whether {} in the unit, container or cgroup asked for cannot be told{remedy}",
            if n == 1 { " is" } else { "s are" },
            if n == 1 { "its" } else { "their" },
            if n == 1 { "it is" } else { "they are" },
        ));
    }
}

/// `lsport ephemeral`: the ephemeral range under load.
fn run_ephemeral(invocation: &Invocation, settings: &cli::EphemeralSettings) -> Outcome {
    let report = ephemeral::run(&invocation.query, &settings.options)?;
    let status = if report.healthy() {
        EXIT_MATCH
    } else {
        EXIT_UNHEALTHY
    };
    if invocation.output == Output::Quiet {
        return Ok(status);
    }
    warn_hidden(report.hidden_holders);
    warn_skipped(&report.skipped);
    warn_rules_unread(&report.rules_unread);
    print(|out| match settings.format {
        ReportFormat::Json => render::json::write_ephemeral(&report, settings.top, out),
        ReportFormat::Prometheus => {
            out.write_all(render::ephemeral::prometheus(&report, settings.top).as_bytes())
        }
        ReportFormat::Text => {
            out.write_all(render::ephemeral::text(&report, settings.top).as_bytes())
        }
    })?;
    Ok(status)
}

/// `lsport suggest`: ports safe for a new service.
fn run_suggest(invocation: &Invocation, wanted: &suggest::SuggestQuery) -> Outcome {
    let suggestions = suggest::run(&invocation.query, wanted)?;
    let ports = suggestions.ports;
    let status = if ports.len() == wanted.count {
        EXIT_MATCH
    } else {
        EXIT_NO_MATCH
    };
    if invocation.output == Output::Quiet {
        return Ok(status);
    }
    warn_rules_unread(&suggestions.rules_unread);
    if ports.len() < wanted.count {
        say(&format!(
            "found {} safe port{} of the {} asked for",
            ports.len(),
            if ports.len() == 1 { "" } else { "s" },
            wanted.count
        ));
    }
    print(|out| match invocation.output {
        Output::Json => render::json::write_suggestions(&ports, &suggestions.rules_unread, out),
        _ => ports.iter().try_for_each(|p| writeln!(out, "{p}")),
    })?;
    Ok(status)
}

/// `lsport why`: would this bind succeed, and why not.
fn run_why(invocation: &Invocation, options: &why::WhyOptions) -> Outcome {
    let answer = why::run(&invocation.query, options)?;
    let status = if answer.would_succeed() {
        EXIT_MATCH
    } else {
        EXIT_CANNOT_NOW
    };
    if invocation.output == Output::Quiet {
        return Ok(status);
    }
    warn_hidden(answer.hidden_holders);
    warn_skipped(&answer.skipped);
    print(|out| match invocation.output {
        Output::Json => render::why::write_json(&answer, out),
        _ => out.write_all(render::why::text(&answer).as_bytes()),
    })?;
    Ok(status)
}

/// `lsport why PATH`: would a server's bind() on this Unix socket
/// succeed, and why not.
fn run_why_unix(invocation: &Invocation) -> Outcome {
    let answer = why::unix::run(&invocation.query)?;
    let status = if answer.would_succeed() {
        EXIT_MATCH
    } else {
        EXIT_CANNOT_NOW
    };
    if invocation.output == Output::Quiet {
        return Ok(status);
    }
    warn_about_unix_gaps(&answer.report);
    print(|out| match invocation.output {
        Output::Json => render::unix::write_why_json(&answer, out),
        _ => out.write_all(render::unix::why_text(&answer).as_bytes()),
    })?;
    Ok(status)
}

/// `lsport watch`: each event printed as it comes, then the summary.
/// The first SIGINT or SIGTERM ends it with the summary.
fn run_watch(invocation: &Invocation, options: &WatchOptions) -> Outcome {
    let json = invocation.output == Output::Json;
    let quiet = invocation.output == Output::Quiet;
    let options = WatchOptions {
        stop: Some(interrupt::stop_flag()),
        // The watch ends when its reader goes away (a quiet one writes
        // nothing, and runs on).
        output: (!quiet).then_some(libc::STDOUT_FILENO),
        ..options.clone()
    };
    let mut watch = Watch::start(&invocation.query, &options)?;
    let mut failure = None;
    let mut reported = 0usize;
    let mut reader_gone = false;
    let mut stdout = std::io::stdout().lock();
    // The lines and the summary are one document: cut short until the
    // summary is out.
    let writing = (!quiet).then(interrupt::writing);
    for event in &mut watch {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                failure = Some(err);
                break;
            }
        };
        match &event {
            Event::Socket(_) => reported += 1,
            // Never silent, even with -q.
            Event::Lost(_) if quiet => say(&render::watch::line(&event)),
            Event::Lost(_) | Event::Started(_) | Event::Paced(_) => {}
        }
        if quiet {
            continue;
        }
        let written = if json {
            render::watch::write_json_event(&event, &mut stdout)
        } else {
            writeln!(stdout, "{}", render::watch::line(&event))
        };
        if let Err(err) = written.and_then(|()| stdout.flush()) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                // The reader went away: nothing more can be written.
                reader_gone = true;
                break;
            }
            return Err(Failure::Output(err));
        }
    }
    drop(stdout);
    let summary = watch.summary();
    if !quiet && !reader_gone && !watch.output_closed() {
        if summary.hidden_holders > 0 {
            warn_hidden(summary.hidden_holders);
        }
        print(|out| {
            if json {
                render::watch::write_json_summary(&summary, out)
            } else {
                writeln!(out)?;
                out.write_all(render::watch::summary_text(&summary).as_bytes())
            }
        })?;
    }
    drop(writing);
    if let Some(err) = failure {
        return Err(err.into());
    }
    Ok(if reported > 0 {
        EXIT_MATCH
    } else {
        EXIT_NO_MATCH
    })
}

/// `lsport kill`: free the ports.
fn run_kill(invocation: &Invocation, settings: &cli::KillSettings) -> Outcome {
    use std::io::IsTerminal;
    if settings.options.interactive && !std::io::stdin().is_terminal() {
        return Err(lsport::Error::usage(
            "--interactive asks on a terminal, and standard input is not one",
        )
        .into());
    }
    let options = kill::KillOptions {
        stop: Some(&STOP_KILLING),
        ..settings.options.clone()
    };
    let mut user = KillUser {
        progress: matches!(invocation.output, Output::Table { .. }),
        grace: options.grace,
        interrupt_armed: false,
    };
    if !invocation.query.unix_targets.is_empty() {
        let report = kill::unix::run(&invocation.query, &options, &mut user)?;
        let status = match report.kill.outcome {
            kill::Outcome::NothingHeld => EXIT_NO_MATCH,
            outcome if outcome.done() => EXIT_MATCH,
            _ => EXIT_CANNOT_NOW,
        };
        print(|out| match invocation.output {
            Output::Json => render::unix::write_kill_json(&report, out),
            Output::Table { .. } => out.write_all(render::unix::kill_text(&report).as_bytes()),
            Output::Quiet => Ok(()),
        })?;
        return Ok(status);
    }
    let report = kill::run(&invocation.query, &options, &mut user)?;
    if report.outcome == kill::Outcome::NothingHeld && invocation.output != Output::Quiet {
        warn_rules_unread(&report.rules_unread);
    }
    let status = match report.outcome {
        kill::Outcome::NothingHeld => EXIT_NO_MATCH,
        outcome if outcome.done() => EXIT_MATCH,
        _ => EXIT_CANNOT_NOW,
    };
    print(|out| match invocation.output {
        Output::Json => render::kill::write_json(&report, out),
        Output::Table { .. } => out.write_all(render::kill::text(&report).as_bytes()),
        Output::Quiet => Ok(()),
    })?;
    Ok(status)
}

/// Set by SIGINT and SIGTERM once a kill has sent its first signal: it
/// stops following them and reports what it sent.
static STOP_KILLING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn stop_killing(_signal: libc::c_int) {
    STOP_KILLING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Where `lsport kill` talks with its user: questions on stderr,
/// answers on stdin, each signal on stdout as it goes (text output).
struct KillUser {
    progress: bool,
    grace: std::time::Duration,
    interrupt_armed: bool,
}

impl KillUser {
    /// Until the first signal, Ctrl-C ends lsport at once (nothing was
    /// sent; a question waiting for its answer must not swallow it);
    /// from then on it ends the wait with the report.
    fn arm_interrupt(&mut self) {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        if self.interrupt_armed {
            return;
        }
        self.interrupt_armed = true;
        let action = SigAction::new(
            SigHandler::Handler(stop_killing),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic. Should it
            // fail, Ctrl-C still ends lsport, only without the report.
            let _ = unsafe { sigaction(signal, &action) };
        }
    }
}

impl kill::Interaction for KillUser {
    fn confirm_wide(&mut self, plan: &kill::KillReport) -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal() && ask(&render::kill::wide_question(plan))
    }

    fn confirm(&mut self, target: &kill::Target, signal: lsport::holders::process::Signal) -> bool {
        ask(&render::kill::question(target, signal))
    }

    fn sending(&mut self, target: &kill::Target, signal: lsport::holders::process::Signal) {
        self.arm_interrupt();
        if self.progress {
            let lines = render::kill::sending_lines(target, signal, self.grace);
            let _ = print(|out| out.write_all(lines.as_bytes()));
        }
    }
}

/// One question on stderr (already escaped by render), one answer line
/// on stdin; anything but y or yes is no.
fn ask(question: &str) -> bool {
    let _ = write!(std::io::stderr().lock(), "{question}");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `lsport wait`: until the ports listen or are free.
fn run_wait(invocation: &Invocation, options: &wait::WaitOptions) -> Outcome {
    if !invocation.query.unix_targets.is_empty() {
        return run_wait_unix(invocation, options);
    }
    let lines = matches!(invocation.output, Output::Table { .. });
    let quiet = invocation.output == Output::Quiet;
    let condition = options.condition;
    let asked = invocation.query.protocols.clone();
    let mut on_progress = |progress: wait::Progress<'_>| match progress {
        wait::Progress::Met(port) if lines => {
            let line = render::wait::met_line(&condition, port);
            let _ = print(|out| writeln!(out, "{line}"));
        }
        wait::Progress::Met(_) => {}
        wait::Progress::ListensOver { port, protocols } if !quiet => {
            say(&render::wait::other_protocols_line(
                port, &protocols, &asked,
            ));
        }
        wait::Progress::ListensOver { .. } => {}
    };
    let report = wait::run(&invocation.query, options, &mut on_progress)?;
    let status = if report.met() {
        EXIT_MATCH
    } else {
        EXIT_CANNOT_NOW
    };
    match invocation.output {
        Output::Json => print(|out| render::wait::write_json(&report, options.any, out))?,
        Output::Table { .. } => render::wait::timeout_lines(&report)
            .iter()
            .for_each(|line| say(line)),
        Output::Quiet => {}
    }
    Ok(status)
}

/// `lsport wait PATH`: until a socket takes connections by the name,
/// or until none is bound to it.
fn run_wait_unix(invocation: &Invocation, options: &wait::WaitOptions) -> Outcome {
    let report = wait::unix::run(
        &invocation.query,
        &options.condition,
        options.timeout,
        options.name_holders,
    )?;
    let status = if report.met {
        EXIT_MATCH
    } else {
        EXIT_CANNOT_NOW
    };
    match invocation.output {
        Output::Quiet => return Ok(status),
        Output::Json => {
            print(|out| render::unix::write_wait_json(&options.condition, &report, out))?;
            return Ok(status);
        }
        Output::Table { .. } => {}
    }
    let line = render::unix::wait_line(&options.condition, &report);
    if report.met {
        print(|out| writeln!(out, "{line}"))?;
    } else {
        say(&line);
    }
    Ok(status)
}

/// One line on stderr for each thing the answer could not cover.
fn warn_about_gaps(invocation: &Invocation, report: &Report) {
    if let Some(line) = report.proc_restriction.as_ref().and_then(|r| r.describe()) {
        say(&line);
    }
    if let Some(line) = render::unseen::notice(report.hidden_sockets(), &report.unseen) {
        say(&line);
    }
    for namespace in &report.namespaces {
        if namespace.skipped_replies > 0 {
            let what = match namespace.source {
                SourceKind::Netlink => "sock_diag replies",
                SourceKind::Proc => "/proc/net lines",
            };
            say(&format!(
                "{} {what} could not be decoded and were skipped",
                namespace.skipped_replies
            ));
        }
        if let (Some(reason), Output::Table { .. }) = (&namespace.fallback, &invocation.output) {
            say(&format!(
                "sock_diag is not available ({reason}); reading /proc/net instead"
            ));
        }
    }
    // The rules not read matter where no socket holds a port asked.
    let some_free = report
        .namespaces
        .iter()
        .any(|n| n.ports.iter().any(|v| !v.in_use()));
    if let (true, Some(line)) = (
        some_free,
        render::forwards::unread_notice(&report.rules_unread()),
    ) {
        say(&line);
    }
    warn_skipped(&report.skipped);
    if invocation.query.holder_source == HolderSource::Kernel {
        if let Some(why) = &report.kernel_walk_unavailable {
            say_kernel_walk_unavailable(why);
        }
    }
}

/// `--holders kernel` where the kernel's walk is unavailable: the
/// holders come from /proc, and the user is told once.
fn say_kernel_walk_unavailable(why: &lsport::holders::kernel::Unavailable) {
    say(&format!(
        "--holders kernel: the kernel's walk of fd tables is unavailable ({why}); holders are named from /proc"
    ));
}

fn warn_hidden(hidden: usize) {
    if hidden == 0 {
        return;
    }
    let why = if nix::unistd::geteuid().is_root() {
        "lsport could not read the file descriptors of some processes (it needs CAP_SYS_PTRACE and free file descriptors, and /proc without hidepid)"
    } else {
        "run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them"
    };
    say(&format!(
        "{hidden} socket{} ha{} holders hidden from this user; {why}",
        if hidden == 1 { "" } else { "s" },
        if hidden == 1 { "s" } else { "ve" },
    ));
}

/// One line, when forwarding rules could not be read.
fn warn_rules_unread(unread: &[lsport::forwards::Unreadable]) {
    let unread: Vec<&lsport::forwards::Unreadable> = unread.iter().collect();
    if let Some(line) = render::forwards::unread_notice(&unread) {
        say(&line);
    }
}

fn warn_skipped(skipped: &[String]) {
    if !skipped.is_empty() {
        say(&format!(
            "skipped {} network namespace{}: {}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            skipped.join("; ")
        ));
    }
}

/// One line on stderr, escaped: messages quote arguments, paths and
/// names that may hold anything. A stderr that cannot be written loses
/// the line, never the exit status.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "lsport: {}", escape_str(message));
}

fn fail(message: &str) -> ExitCode {
    say(message);
    ExitCode::from(EXIT_ERROR)
}

/// clap's own errors are several lines long; lsport says one. clap also
/// strips escape sequences from the value it quotes: the value is put
/// back as given, and escaped visibly like every message.
fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => Some(value.as_str()),
        _ => None,
    };
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(arg.as_str()),
        _ => None,
    };
    let message = match (err.kind(), value, arg) {
        (ErrorKind::InvalidValue, Some(value), Some(arg)) => {
            format!("invalid value '{value}' for '{arg}'")
        }
        (ErrorKind::ValueValidation, Some(value), Some(arg)) => {
            use std::error::Error as _;
            match err.source() {
                Some(why) => format!("invalid value '{value}' for '{arg}': {why}"),
                None => format!("invalid value '{value}' for '{arg}'"),
            }
        }
        (ErrorKind::UnknownArgument, _, Some(arg)) => format!("unexpected argument '{arg}'"),
        _ => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    };
    fail(&format!("{message} (see 'lsport --help')"))
}
