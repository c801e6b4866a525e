//! Each command gathers only what it shows: strace(1) records which
//! files lsport opens, and a command that shows no holder must open no
//! process's fd table, command line or status, nor /etc/passwd.
//!
//! Needs strace and a private network namespace; skipped visibly where
//! either is missing (failed instead with LSPORT_REQUIRE_NETNS=1, as CI
//! sets it, since CI installs strace).

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;

use common::*;

/// What one traced run opened, and how it ended.
struct Trace {
    status: Option<i32>,
    stdout: String,
    opened: Vec<String>,
}

impl Trace {
    /// Opens of a process's fd table, name, command line or status, or
    /// of the user database.
    fn process_reads(&self) -> Vec<&String> {
        self.opened
            .iter()
            .filter(|path| {
                path.ends_with("/fd")
                    || path.ends_with("/cmdline")
                    || path.ends_with("/status")
                    || path.ends_with("/comm")
                    || path.ends_with("passwd")
            })
            .collect()
    }
}

fn strace_available(test: &str) -> bool {
    let found = Command::new("strace").arg("-V").output().is_ok();
    if !found {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: strace is missing, and LSPORT_REQUIRE_NETNS is set");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: strace is not installed");
    }
    found
}

/// Runs lsport under strace and collects the paths of every open.
fn traced(args: &[&str]) -> Trace {
    let log = tempfile_path("gathers");
    let output = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(lsport_path())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running strace");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let opened = text
        .lines()
        .filter_map(|line| {
            let start = line.find('"')? + 1;
            let end = start + line[start..].find('"')?;
            Some(line[start..end].to_string())
        })
        .collect();
    Trace {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        opened,
    }
}

fn tempfile_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "lsport-{tag}-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ))
}

#[test]
fn quiet_suggest_and_a_healthy_ephemeral_read_no_process() {
    let test = "quiet_suggest_and_a_healthy_ephemeral_read_no_process";
    if !strace_available(test) || !private_netns(test) {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    // A listener outside the range, held by another process, with a
    // connection to it: something to find, nothing risky.
    let listener = TcpListener::bind("127.0.0.1:8080").unwrap();
    let _held = hold(&[listener.as_raw_fd()]);
    let _client = TcpStream::connect("127.0.0.1:8080").unwrap();

    // The full answer does read the holder: the trace can tell.
    let full = traced(&["8080"]);
    assert_eq!(full.status, Some(0), "{}", full.stdout);
    assert!(
        !full.process_reads().is_empty(),
        "lsport 8080 named its holder without reading /proc? {:?}",
        full.opened
    );

    let quiet = traced(&["-q", "8080"]);
    assert_eq!(quiet.status, Some(0));
    assert!(quiet.stdout.is_empty());
    assert_eq!(quiet.process_reads(), Vec::<&String>::new(), "lsport -q");

    let free = traced(&["-q", "8081"]);
    assert_eq!(free.status, Some(1));
    assert_eq!(
        free.process_reads(),
        Vec::<&String>::new(),
        "lsport -q, free"
    );

    let suggest = traced(&["suggest", "2"]);
    assert_eq!(suggest.status, Some(0), "{}", suggest.stdout);
    assert_eq!(suggest.stdout.lines().count(), 2);
    assert_eq!(
        suggest.process_reads(),
        Vec::<&String>::new(),
        "lsport suggest"
    );

    let ephemeral = traced(&["ephemeral"]);
    assert_eq!(ephemeral.status, Some(0), "{}", ephemeral.stdout);
    assert_eq!(
        ephemeral.process_reads(),
        Vec::<&String>::new(),
        "lsport ephemeral with no risky listener"
    );
}

#[test]
fn ephemeral_reads_fds_only_to_name_risky_listeners() {
    let test = "ephemeral_reads_fds_only_to_name_risky_listeners";
    if !strace_available(test) || !private_netns(test) {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    let risky = TcpListener::bind("127.0.0.1:40090").unwrap();
    let held = hold(&[risky.as_raw_fd()]);
    let trace = traced(&["ephemeral", "--format", "json"]);
    assert_eq!(trace.status, Some(3), "{}", trace.stdout);
    let doc: serde_json::Value = serde_json::from_str(&trace.stdout).unwrap();
    let pids: Vec<u64> = doc["risky_listeners"][0]["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(
        pids.contains(&u64::from(held.pid())),
        "the risky listener's holder {} is named: {pids:?}",
        held.pid()
    );
    assert!(!trace.process_reads().is_empty());
}
