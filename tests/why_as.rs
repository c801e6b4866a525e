//! `lsport why --as USER` where things go wrong: the trial's process
//! exposed to USER and lsport not; no process or thread to be had (a
//! pids cgroup at its limit, a small address space); a passwd file that
//! is a device or a fifo. Each ends in an answer or in one line and exit
//! status 2: never a panic, an abort or a hang.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use lsport::commands::why::as_user;

/// nobody, on every Linux.
const NOBODY: u32 = 65534;

/// Waits for `child` up to `bound`, and kills it after: a hang is a
/// failure, not a stuck test run.
fn output_within(mut child: Child, bound: Duration, what: &str) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waiting for a child").is_some() {
            return child.wait_with_output().expect("collecting output");
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let output = child.wait_with_output();
            panic!("{what}: no answer within {bound:?} ({output:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a command")
}

/// An error as lsport says one: exit status 2, one line on stderr,
/// nothing on stdout.
fn assert_one_line_error(output: &Output, what: &str) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{what}: {:?} {}{err}",
        output.status,
        stdout(output)
    );
    assert!(err.starts_with("lsport: "), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(output.stdout.is_empty(), "{what}: {}", stdout(output));
    err
}

fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
        panic!("{test}: {reason}, and LSPORT_REQUIRE_NETNS is set");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

// ---------------------------------------------------------------------
// Who may signal whom while the trial runs.

/// The uid line of a task's status: real, effective, saved, filesystem.
fn uids(status_path: &Path) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect(),
    )
}

fn field(pid: u32, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    Some(line[name.len()..].trim().to_string())
}

/// The threads of `pid`.
fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The children of `pid` (every thread's).
fn children(pid: u32) -> Vec<u32> {
    threads(pid)
        .into_iter()
        .flat_map(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether a process of uid `uid` may signal the task `id` (a thread id
/// names one task to kill(2)): `kill -0` checks the permission and
/// sends nothing.
fn may_signal_as(uid: u32, id: u32) -> bool {
    Command::new("kill")
        .args(["-0", &id.to_string()])
        .uid(uid)
        .gid(uid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running kill")
        .success()
}

#[test]
fn only_the_trials_own_process_takes_the_users_credentials() {
    if !private_netns("as-user-signals") {
        return;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        return skip_or_fail("as-user-signals", "strace is not installed");
    }
    // strace holds the trial's listen() for 5 s: the window, made wide.
    let strace = spawn(
        Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=listen"])
            .args(["-e", "inject=listen:delay_enter=5s"])
            .arg(lsport_path())
            .args(["why", "--as", &NOBODY.to_string(), "7080"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    let started = Instant::now();
    let lsport = loop {
        if let Some(&pid) = children(strace.id()).first() {
            if field(pid, "Name:").as_deref() == Some("lsport") {
                break pid;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no lsport");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Until some task of lsport or of its children runs as nobody.
    let is_nobody = |path: PathBuf| uids(&path).is_some_and(|u| u.contains(&NOBODY));
    let trial = loop {
        let as_nobody: Vec<u32> = children(lsport)
            .into_iter()
            .filter(|pid| is_nobody(format!("/proc/{pid}/status").into()))
            .collect();
        let threads_as_nobody: Vec<u32> = threads(lsport)
            .into_iter()
            .filter(|tid| is_nobody(format!("/proc/{lsport}/task/{tid}/status").into()))
            .collect();
        assert!(
            threads_as_nobody.is_empty(),
            "threads {threads_as_nobody:?} of lsport ({lsport}) run as uid {NOBODY}"
        );
        if let Some(&pid) = as_nobody.first() {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no task of lsport ({lsport}) ever ran as uid {NOBODY}"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    // The trial is held in listen(): lsport's every thread is root's
    // through and through, and nobody may signal none of them.
    for tid in threads(lsport) {
        let status: PathBuf = format!("/proc/{lsport}/task/{tid}/status").into();
        assert_eq!(uids(&status), Some(vec![0, 0, 0, 0]), "thread {tid}");
        assert!(
            !may_signal_as(NOBODY, tid),
            "uid {NOBODY} may signal thread {tid} of lsport"
        );
    }
    // The trial's process is nobody's, and nobody may signal it: the
    // check above would have seen a thread so exposed. It is still in
    // its listen(), so the checks above ran while the trial did.
    assert_eq!(field(trial, "PPid:"), Some(lsport.to_string()));
    assert_eq!(
        uids(Path::new(&format!("/proc/{trial}/status"))),
        Some(vec![NOBODY; 4])
    );
    assert!(may_signal_as(NOBODY, trial));
    let output = output_within(strace, Duration::from_secs(120), "why --as under strace");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("would succeed"),
        "{}",
        stdout(&output)
    );
}

/// `lsport why --as nobody PORT` under strace, which does `inject` to the
/// trial's listen() (strace's own lines on stderr are left out).
fn why_as_with_listen(inject: &str, port: &str, what: &str) -> Option<String> {
    if Command::new("strace").arg("-V").output().is_err() {
        skip_or_fail(what, "strace is not installed");
        return None;
    }
    let strace = spawn(
        Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=listen"])
            .args(["-e", &format!("inject=listen:{inject}")])
            .arg(lsport_path())
            .args(["why", "--as", &NOBODY.to_string(), port])
            .env_clear(),
    );
    let output = output_within(strace, Duration::from_secs(120), what);
    let lines: Vec<&str> = std::str::from_utf8(&output.stderr)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("strace: "))
        .collect();
    assert_eq!(output.status.code(), Some(2), "{what}: {lines:?}");
    assert_eq!(lines.len(), 1, "{what}: {lines:?}");
    assert!(output.stdout.is_empty(), "{what}");
    Some(lines[0].to_string())
}

#[test]
fn a_trial_that_dies_before_it_answers_is_said_in_one_line() {
    if !private_netns("as-user-killed") {
        return;
    }
    // As a process of nobody may kill it.
    let what = "trial killed";
    let Some(line) = why_as_with_listen("signal=KILL", "7081", what) else {
        return;
    };
    assert!(
        line.starts_with("lsport: --as 65534: the trial's process was killed by SIGKILL"),
        "{line}"
    );
}

#[test]
fn a_trial_that_does_not_answer_is_killed_and_said_in_one_line() {
    if !private_netns("as-user-silent") {
        return;
    }
    // As a process of nobody may stop it: held past the time lsport
    // waits for an answer.
    let delay = as_user::ANSWER_TIMEOUT + Duration::from_secs(2);
    let inject = format!("delay_enter={}s", delay.as_secs());
    let what = "trial silent";
    let Some(line) = why_as_with_listen(&inject, "7085", what) else {
        return;
    };
    assert!(line.contains("did not answer within 10 s"), "{line}");
    assert!(line.contains("it was killed"), "{line}");
}

// ---------------------------------------------------------------------
// No process or thread to be had.

/// A pids controller: a cgroup v1 hierarchy that has it, or a cgroup v2
/// one that offers it, found in the mount table.
fn pids_controller() -> Option<(PathBuf, bool)> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let point = PathBuf::from(before.split(' ').nth(4)?);
        let mut after = after.split(' ');
        let kind = after.next()?;
        let options = after.nth(1)?;
        match kind {
            "cgroup" if options.split(',').any(|o| o == "pids") => Some((point, false)),
            "cgroup2" => {
                let offered = std::fs::read_to_string(point.join("cgroup.controllers")).ok()?;
                offered
                    .split_whitespace()
                    .any(|c| c == "pids")
                    .then_some((point, true))
            }
            _ => None,
        }
    })
}

/// A cgroup of its own under the pids controller, removed on drop.
struct PidsCgroup {
    path: PathBuf,
}

impl PidsCgroup {
    fn new(root: &Path, v2: bool, tag: &str) -> PidsCgroup {
        if v2 {
            // Children of the root get the controller only when asked.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+pids");
        }
        let path = root.join(format!("lsport-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        PidsCgroup { path }
    }

    /// Runs `command` inside the cgroup, alone and at its limit: pids.max
    /// is the one process it starts as.
    fn run_at_limit(&self, command: &mut Command, what: &str) -> Output {
        std::fs::write(self.path.join("pids.max"), "1").unwrap();
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
            .unwrap();
        let fd = procs.as_raw_fd();
        // SAFETY: one write(2) between fork and exec: "0" moves the
        // writer itself.
        unsafe {
            command.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let output = output_within(spawn(command), Duration::from_secs(120), what);
        drop(procs);
        output
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[test]
fn inside_a_pids_cgroup_at_its_limit_why_answers_or_says_why_not() {
    if !private_netns("as-user-pids") {
        return;
    }
    let Some((root, v2)) = pids_controller() else {
        return skip_or_fail(
            "as-user-pids",
            "no pids controller in /proc/self/mountinfo (cgroup v1 or v2)",
        );
    };
    let cgroup = PidsCgroup::new(&root, v2, "pids");
    // The trial as nobody needs a process: refused in one line.
    let output = cgroup.run_at_limit(
        &mut lsport_command(["why", "--as", "nobody", "7082"]),
        "why --as at the pids limit",
    );
    let err = assert_one_line_error(&output, "why --as at the pids limit");
    assert!(err.contains("cannot start the trial's process"), "{err}");
    assert!(err.contains("pids.max"), "{err}");
    // lsport's own threads are not needed: without --as it answers.
    let output = cgroup.run_at_limit(
        &mut lsport_command(["why", "7082"]),
        "why at the pids limit",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("would succeed"));
    // Entering another namespace takes a thread: refused in one line.
    let holder = hold(&[]);
    let target = format!("/proc/{}/ns/net", holder.pid());
    let output = cgroup.run_at_limit(
        &mut lsport_command(["why", "--netns", &target, "--as", "nobody", "7082"]),
        "why --netns at the pids limit",
    );
    let err = assert_one_line_error(&output, "why --netns at the pids limit");
    assert!(err.contains("cannot start a thread"), "{err}");
}

/// `command` with RLIMIT_AS set to `bytes` in its process.
fn with_address_space(mut command: Command, bytes: u64) -> Command {
    // SAFETY: one setrlimit(2) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

#[test]
fn under_a_small_address_space_why_as_answers_or_says_why_not() {
    if !private_netns("as-user-rlimit-as") {
        return;
    }
    let mut answered = 0;
    let mut refused = Vec::new();
    // From below what the binary needs to load to well above what it
    // needs to work, by 1 MiB.
    for mib in 2..=64u64 {
        let bytes = mib << 20;
        let version = with_address_space(lsport_command(["--version"]), bytes)
            .output()
            .unwrap();
        if !version.status.success() {
            // The loader could not map lsport or its C library: nothing
            // of lsport ran.
            continue;
        }
        let mut why = with_address_space(
            lsport_command(["why", "--as", &NOBODY.to_string(), "7083"]),
            bytes,
        );
        let what = format!("why --as under RLIMIT_AS {mib} MiB");
        let output = output_within(spawn(&mut why), Duration::from_secs(60), &what);
        if output.status.code() == Some(0) {
            assert!(stdout(&output).contains("would succeed"), "{what}");
            answered += 1;
        } else {
            let err = assert_one_line_error(&output, &what);
            refused.push((mib, err));
        }
    }
    eprintln!("answered under {answered} limits; refused under {refused:?}");
    assert!(answered > 0, "never answered: {refused:?}");
}

// ---------------------------------------------------------------------
// The passwd file: read bounded, like every table lsport reads.

/// Runs `lsport ARGS` in a private mount namespace where `source` is
/// mounted over /etc/passwd (the real file is never touched), with 1 GiB
/// of address space (a passwd read without a bound would grow to that).
fn with_passwd(source: &Path, args: &[&str]) -> Output {
    let mut script = format!(
        "mount --bind '{}' /etc/passwd && exec '{}'",
        source.display(),
        lsport_path().display()
    );
    for arg in args {
        script.push_str(&format!(" '{arg}'"));
    }
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let mut command = with_address_space(command, 1 << 30);
    let what = format!("{args:?} with {} as /etc/passwd", source.display());
    output_within(spawn(&mut command), Duration::from_secs(60), &what)
}

#[test]
fn a_passwd_file_that_is_a_device_or_a_fifo_is_refused_at_once() {
    if !private_netns("as-user-passwd") {
        return;
    }
    let dir = OpenTempDir::new("passwd");
    let fifo = dir.path.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for (source, kind) in [
        (Path::new("/dev/zero"), "a character device"),
        (fifo.as_path(), "a fifo"),
    ] {
        let output = with_passwd(source, &["why", "--as", "nobody", "7084"]);
        let err = assert_one_line_error(&output, kind);
        assert!(
            err.contains("--as nobody: /etc/passwd cannot be read") && err.contains(kind),
            "{err}"
        );
        assert!(err.contains("give the user as a uid"), "{err}");
        // A uid needs no file.
        let output = with_passwd(source, &["why", "--as", "65534", "7084"]);
        assert_eq!(output.status.code(), Some(0), "{kind}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("as uid 65534"),
            "{kind}: {}",
            stdout(&output)
        );
    }
}
