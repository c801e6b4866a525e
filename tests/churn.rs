//! lsport under churn: four processes open and close sockets as fast as
//! they can on ports near a stable listener (connect/accept loops,
//! short-lived listeners, UDP sockets, forked children), while lsport is
//! asked again and again. The stable port must always be in use with its
//! holder named, every JSON document must parse, and nothing may go
//! wrong on stderr.

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Each loop pauses 0.2 ms a turn: thousands of sockets per second
/// still, without taking every CPU from the probes.
/// Each churner runs for at most this long, then exits by itself (the
/// test ends them sooner).
const CHURN_SECONDS: u32 = 600;

const CHURNERS: [&str; 4] = [
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

/// Stderr may carry the notice about hidden holders (a socket that
/// closed between the dump and the fd scan has none to find), and
/// nothing else.
fn only_notices(stderr: &str) -> bool {
    stderr
        .lines()
        .all(|line| line.contains("holders hidden from this user"))
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
    let listener = tcp4_listener(7500);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let churners = Churners(
        CHURNERS
            .iter()
            .map(|code| {
                Command::new("python3")
                    .args(["-c", &code.replace("SECONDS", &CHURN_SECONDS.to_string())])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting a churner")
            })
            .collect(),
    );
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    for round in 0..300 {
        let (doc, output) = lsport_json(&["7500"]);
        assert_eq!(output.status.code(), Some(0), "probe {round}");
        let err = stderr(&output);
        assert!(only_notices(&err), "probe {round}: {err}");
        let named = doc["sockets"].as_array().unwrap().iter().any(|s| {
            s["state"] == "LISTEN"
                && s["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["pid"] == holder.pid())
        });
        assert!(named, "probe {round} lost the holder: {doc:#}");
        if round % 15 == 0 {
            let output = lsport(["-a", "--json"]);
            assert_eq!(output.status.code(), Some(0), "-a, round {round}");
            let parsed: Result<Value, _> = serde_json::from_slice(&output.stdout);
            assert!(parsed.is_ok(), "-a --json, round {round}: {parsed:?}");
            let err = stderr(&output);
            assert!(only_notices(&err), "-a, round {round}: {err}");
        }
    }
    // The churn really ran all along.
    let mut still = churners;
    for child in &mut still.0 {
        assert!(child.try_wait().unwrap().is_none(), "a churner died early");
    }
    eprintln!(
        "churn: 300 probes and 20 full listings in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
