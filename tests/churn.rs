//! lsport under churn: processes open and close sockets as fast as they
//! can on and near a stable listener (connections to it that live a few
//! milliseconds, connect/accept loops, short-lived listeners, UDP
//! sockets, forked children), while lsport is asked again and again.
//! The stable port must always be in use with its holder named, every
//! JSON document must parse, and a socket that closed while lsport
//! looked for its holder is never reported with a hidden holder.
//!
//! Every churner runs without CAP_SYS_PTRACE, and so do half of the
//! probes: lsport then reads the churners' fds (their capabilities are
//! no more than its own) but not those of a process with every
//! capability, which holds one more socket. That socket alone has a
//! hidden holder, and that process is named; when root with every
//! capability probes, nothing is hidden at all.

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Each churner runs for at most this long, then exits by itself (the
/// test ends them sooner): far longer than the test takes on a loaded
/// machine.
const CHURN_SECONDS: u32 = 3600;

/// The stable listener: it accepts every connection and keeps the last
/// twenty open, so that connections on its port close all the time,
/// each a few milliseconds after it was dumped.
const STABLE: &str = r#"
import collections, socket, sys, time
end = time.time() + SECONDS
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 7500)); l.listen(512); l.settimeout(1)
print("ready", flush=True)
kept = collections.deque()
while time.time() < end:
    try:
        s, _ = l.accept()
    except OSError:
        continue
    kept.append(s)
    if len(kept) > 20: kept.popleft().close()
"#;

/// Each loop pauses 0.2 ms a turn: thousands of sockets per second
/// still, without taking every CPU from the probes.
const CHURNERS: [&str; 5] = [
    // connections to the stable listener, the last twenty kept open
    r#"
import collections, socket, time
end = time.time() + SECONDS
kept = collections.deque()
while time.time() < end:
    try:
        kept.append(socket.create_connection(("127.0.0.1", 7500)))
    except OSError:
        pass
    if len(kept) > 20: kept.popleft().close()
    time.sleep(0.0002)
"#,
    // connect and accept, close both
    r#"
import socket, time
end = time.time() + SECONDS
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 7501)); l.listen(512)
while time.time() < end:
    c = socket.create_connection(("127.0.0.1", 7501)); s, _ = l.accept()
    c.close(); s.close()
    time.sleep(0.0002)
"#,
    // short-lived listeners on nearby ports
    r#"
import socket, time
end = time.time() + SECONDS
while time.time() < end:
    for port in range(7502, 7510):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port)); s.listen(1)
        except OSError:
            pass
        s.close()
    time.sleep(0.0002)
"#,
    // UDP sockets, bound and not
    r#"
import socket, time
end = time.time() + SECONDS
while time.time() < end:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.sendto(b"x", a.getsockname())
    a.close(); b.close()
    time.sleep(0.0002)
"#,
    // forked children that each open a socket and exit
    r#"
import os, socket, time
end = time.time() + SECONDS
while time.time() < end:
    pid = os.fork()
    if pid == 0:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", 7511)); s.listen(1)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.0002)
"#,
];

struct Churners(Vec<Child>);

impl Drop for Churners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn python_available(test: &str) -> bool {
    let found = Command::new("python3").arg("-V").output().is_ok();
    if !found {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: python3 is missing, and LSPORT_REQUIRE_NETNS is set");
        }
        eprintln!("SKIPPED {test}: python3 is not installed");
    }
    found
}

/// `python3 -c CODE` without CAP_SYS_PTRACE (nor CAP_BPF and
/// CAP_PERFMON), as the probes run that lack it: they may read its fds,
/// whose capabilities are no more than theirs.
fn python_without_ptrace(code: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--bounding-set",
            "-sys_ptrace,-bpf,-perfmon",
            "--inh-caps",
            "-sys_ptrace,-bpf,-perfmon",
            "--",
            "python3",
            "-c",
        ])
        .arg(code.replace("SECONDS", &CHURN_SECONDS.to_string()));
    command
}

/// The pids of the processes a document names as unreadable.
fn unreadable_pids(doc: &Value) -> Vec<u64> {
    doc["unreadable_processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

/// The local ports of the sockets a document says have hidden holders.
fn hidden_ports(doc: &Value) -> Vec<u64> {
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["holders_hidden"] == true)
        .map(|s| s["local"]["port"].as_u64().unwrap())
        .collect()
}

#[test]
fn probes_stay_right_while_sockets_churn_around_them() {
    let test = "probes_stay_right_while_sockets_churn_around_them";
    if !python_available(test) || !private_netns(test) {
        return;
    }
    // The connect/accept loop leaves thousands of TIME_WAIT sockets a
    // second; capped, so that each `-a` lists thousands, not a hundred
    // thousand.
    sysctl("net.ipv4.tcp_max_tw_buckets", "2000");
    // A process with every capability, which lsport without
    // CAP_SYS_PTRACE may not read: it holds 7599.
    let listener = tcp4_listener(7599);
    let unreadable = hold_running(
        std::path::Path::new("sleep"),
        &[&CHURN_SECONDS.to_string()],
        &[listener.as_raw_fd()],
    );
    drop(listener);
    let mut stable = python_without_ptrace(STABLE)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the stable listener");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(stable.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "the stable listener did not start");
    let stable_pid = stable.id();
    let mut children = vec![stable];
    children.extend(CHURNERS.iter().map(|code| {
        python_without_ptrace(code)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting a churner")
    }));
    let churners = Churners(children);
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    for round in 0..300 {
        // Root with every capability, and without CAP_SYS_PTRACE, in turn.
        let with_ptrace = round % 2 == 0;
        let run = |args: &[&str]| {
            if with_ptrace {
                lsport(args)
            } else {
                lsport_without_ptrace(args)
            }
        };
        let output = run(&["--json", "7500"]);
        assert_eq!(output.status.code(), Some(0), "probe {round}");
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        // Nothing on 7500 is held by a process lsport may not read.
        let err = stderr(&output);
        assert!(err.is_empty(), "probe {round}: {err}");
        assert_eq!(doc["hidden_holders"], 0, "probe {round}: {doc:#}");
        let named = doc["sockets"].as_array().unwrap().iter().any(|s| {
            s["state"] == "LISTEN"
                && s["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["pid"] == stable_pid)
        });
        assert!(named, "probe {round} lost the holder: {doc:#}");
        // Every 15 rounds, with CAP_SYS_PTRACE and without in turn.
        if round % 15 == 0 {
            let output = run(&["-a", "--json"]);
            assert_eq!(output.status.code(), Some(0), "-a, round {round}");
            let doc: Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|e| panic!("-a --json, round {round}: {e}"));
            let err = stderr(&output);
            if with_ptrace {
                assert!(err.is_empty(), "-a, round {round}: {err}");
                assert_eq!(hidden_ports(&doc), Vec::<u64>::new(), "-a, round {round}");
            } else {
                // Only the unreadable process's socket, and it is named.
                assert_eq!(hidden_ports(&doc), vec![7599], "-a, round {round}");
                assert!(
                    unreadable_pids(&doc).contains(&u64::from(unreadable.pid())),
                    "-a, round {round}: {}",
                    doc["unreadable_processes"]
                );
                assert_eq!(err.lines().count(), 1, "-a, round {round}: {err}");
                assert!(
                    err.starts_with(
                        "lsport: 1 socket has no holder lsport could see; the file descriptors of processes that may hold it could not be read: "
                    ) && err.contains("fd links refused (Permission denied)"),
                    "-a, round {round}: {err}"
                );
            }
        }
        if round % 15 == 2 {
            // Nothing hidden stops the dry run of kill.
            let output = lsport(["kill", "-n", "7500"]);
            assert_eq!(
                output.status.code(),
                Some(0),
                "kill -n, round {round}: {}{}",
                stdout(&output),
                stderr(&output)
            );
        }
    }
    // The churn really ran all along.
    let mut still = churners;
    for child in &mut still.0 {
        assert!(child.try_wait().unwrap().is_none(), "a churner died early");
    }
    eprintln!(
        "churn: 300 probes, 20 full listings and 20 dry runs of kill in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
