//! What SIGINT, SIGTERM and SIGHUP do to lsport's output.
//!
//! Without a handler, such a signal ends lsport at once, and a document
//! it was writing (`lsport -a --json` on a big host runs to megabytes)
//! stays cut short on standard output with nothing to say so. So every
//! command runs with one handler: while lsport writes to standard
//! output, it says on stderr that what is there is incomplete; then, and
//! always, lsport dies of the signal as it would have without a handler
//! (the shell still sees 130 for Ctrl-C).
//!
//! `lsport watch` asks for a gentler first signal: SIGINT or SIGTERM
//! only sets [`stop_flag`], and the watch ends with its summary, a whole
//! document. A second signal (when the watch cannot stop, as when its
//! reader does not read), or SIGHUP, ends it at once, said as above.
//!
//! The handler only reads and writes atomics and calls write(2),
//! signal(2) and raise(3), which are async-signal-safe.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// Nothing is being written.
const IDLE: u8 = 0;
/// Text is being written.
const TEXT: u8 = 1;
/// A JSON document (or JSON lines) is being written.
const JSON: u8 = 2;

static WRITING: AtomicU8 = AtomicU8::new(IDLE);
/// The first SIGINT or SIGTERM only asks to stop (`lsport watch`).
static GENTLE: AtomicBool = AtomicBool::new(false);
/// Set by a gentle first signal.
static STOP: AtomicBool = AtomicBool::new(false);

const TEXT_NOTICE: &[u8] =
    b"lsport: interrupted while writing: the output on standard output is incomplete\n";
const JSON_NOTICE: &[u8] =
    b"lsport: interrupted while writing: the JSON document on standard output is incomplete\n";

/// Whether the output is JSON, for the notice.
static JSON_OUTPUT: AtomicBool = AtomicBool::new(false);

/// Installs the handler for SIGINT, SIGTERM and SIGHUP; `json` says
/// what standard output gets. Where it cannot be installed, the signals
/// keep their default action.
pub fn install(json: bool) {
    JSON_OUTPUT.store(json, Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler is async-signal-safe (see the module).
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Makes the first SIGINT or SIGTERM set the returned flag instead of
/// ending lsport.
pub fn stop_flag() -> &'static AtomicBool {
    GENTLE.store(true, Ordering::SeqCst);
    &STOP
}

/// Marks standard output as being written until the guard is dropped:
/// an interrupt meanwhile says the output is incomplete.
#[must_use]
pub fn writing() -> Writing {
    let kind = if JSON_OUTPUT.load(Ordering::SeqCst) {
        JSON
    } else {
        TEXT
    };
    WRITING.store(kind, Ordering::SeqCst);
    Writing(())
}

/// See [`writing`].
pub struct Writing(());

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.store(IDLE, Ordering::SeqCst);
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let gentle = signal == libc::SIGINT || signal == libc::SIGTERM;
    if gentle && GENTLE.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
        return;
    }
    let notice = match WRITING.load(Ordering::SeqCst) {
        TEXT => Some(TEXT_NOTICE),
        JSON => Some(JSON_NOTICE),
        _ => None,
    };
    if let Some(notice) = notice {
        // SAFETY: write(2) of a static buffer; its result does not matter.
        unsafe { libc::write(libc::STDERR_FILENO, notice.as_ptr().cast(), notice.len()) };
    }
    // SAFETY: restores the default action and sends the signal again to
    // this thread; it is delivered as the handler returns, and ends the
    // process as it would have without a handler.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
