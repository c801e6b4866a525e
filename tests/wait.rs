//! `lsport wait` against real sockets in a private network namespace:
//! it sees a listen() within 100 ms, returns when the last holder of a
//! port closes it, and at once beside what the kernel ends by itself (an
//! orphaned connection), times out with status 4, takes no UDP client
//! for a listener, hints at -u, and refuses bad input in one line. Its
//! JSON document is validated against doc/schema/wait.schema.json.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn valid(doc: &Value) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/schema/wait.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("wait.schema.json compiles");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
    true
}

/// A delay between 150 and 650 ms that differs from run to run.
fn random_delay() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(150 + u64::from(nanos % 500))
}

#[test]
fn listening_is_seen_within_100_ms_of_listen() {
    if !private_netns("wait_listening") {
        return;
    }
    // The detection itself: -q names no holder, so the exit marks the
    // moment lsport saw the listener.
    let mut quiet = lsport_command(["wait", "-q", "--listening", "--timeout", "10s", "47101"])
        .spawn()
        .unwrap();
    std::thread::sleep(random_delay());
    let listened = Instant::now();
    let listener = tcp4_listener(47101);
    let status = quiet.wait().unwrap();
    let seen = listened.elapsed();
    assert!(status.success());
    assert!(
        seen < Duration::from_millis(100),
        "seen {seen:?} after listen()"
    );
    drop(listener);

    // Without -q, the line names the holder.
    let mut child = lsport_command(["wait", "--listening", "--timeout", "10s", "47101"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    std::thread::sleep(random_delay());
    let listener = tcp4_listener(47101);
    let line = lines.next().expect("a line").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(line.starts_with("port 47101 is listening by "), "{line}");
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    drop(listener);
}

#[test]
fn free_returns_when_the_last_holder_closes() {
    if !private_netns("wait_free") {
        return;
    }
    let listener = tcp4_listener(47102);
    let first = hold(&[listener.as_raw_fd()]);
    let second = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let child = lsport_command(["--json", "wait", "--free", "--timeout", "10s", "47102"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let closed = Instant::now();
    drop(second);
    let output = child.wait_with_output().unwrap();
    let took = closed.elapsed();
    assert_eq!(output.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(valid(&doc));
    assert_eq!(doc["outcome"], "met");
    // It waited through the first close (600 ms after the start, less
    // lsport's own start-up, which the test's clock also counts).
    assert!(doc["elapsed_ms"].as_u64().unwrap() >= 500, "{doc:#}");
    // It named both holders it waited for.
    assert_eq!(
        doc["ports"][0]["holders"].as_array().unwrap().len(),
        2,
        "{doc:#}"
    );
    // Woken by the close notice, not by the 10 s timeout.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_timeout_on_a_held_port_exits_4_after_about_that_long() {
    if !private_netns("wait_timeout") {
        return;
    }
    let listener = tcp4_listener(47103);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let started = Instant::now();
    let output = lsport(["wait", "--free", "--timeout", "1s", "47103"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(4));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let err = stderr(&output);
    assert!(
        err.contains("timed out after 1") && err.contains("still held"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", holder.pid())), "{err}");
    // --json says so too, and -q says nothing.
    let json = lsport([
        "--json",
        "wait",
        "--listening",
        "--timeout",
        "200ms",
        "47104",
    ]);
    assert_eq!(json.status.code(), Some(4));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(valid(&doc));
    assert_eq!(doc["outcome"], "timed_out");
    assert_eq!(doc["ports"][0]["met"], false);
    let quiet = lsport(["-q", "wait", "--listening", "--timeout", "100ms", "47104"]);
    assert_eq!(quiet.status.code(), Some(4));
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
}

#[test]
fn bad_durations_and_no_ports_exit_2_with_one_line() {
    for args in [
        vec!["wait", "--listening"],
        vec!["wait", "--free"],
        vec!["wait", "--listening", "--timeout", "5x", "80"],
        vec!["wait", "--free", "--timeout", "-1", "80"],
        vec!["wait", "--free", "--timeout", "", "80"],
        vec!["wait", "80"],
        vec!["wait", "--listening", "8000-8010"],
        vec!["wait", "--listening", "--free", "80"],
    ] {
        let output = lsport(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lsport: "), "{args:?}: {err}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn any_stops_at_the_first_port_and_udp_counts_with_u() {
    if !private_netns("wait_any_udp") {
        return;
    }
    let udp = std::net::UdpSocket::bind("127.0.0.1:47105").unwrap();
    let output = lsport([
        "wait",
        "--listening",
        "-u",
        "--any",
        "--timeout",
        "2s",
        "47106",
        "47105",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("port 47105 is listening"),
        "{}",
        stdout(&output)
    );
    // Met: no word of a timeout for the port still waited for.
    assert_eq!(stderr(&output), "");
    // Without -u a UDP socket is no listener.
    let tcp_only = lsport(["wait", "--listening", "--timeout", "200ms", "47105"]);
    assert_eq!(tcp_only.status.code(), Some(4));
    drop(udp);
}

#[test]
fn free_is_met_at_once_beside_an_orphaned_connection_and_strict_waits_for_it() {
    if !private_netns("wait_orphan") {
        return;
    }
    // The orphan's timer is then known: it goes within 30 s.
    sysctl("net.ipv4.tcp_fin_timeout", "30");
    let client = orphaned_connection(47110);

    let output = lsport(["wait", "--free", "--timeout", "20s", "47110"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let line = stdout(&output);
    assert!(line.starts_with("port 47110 is free after "), "{line}");
    assert!(
        line.contains(
            "; 1 orphaned connection left, which only a bind() without SO_REUSEADDR minds (the kernel ends it within "
        ),
        "{line}"
    );
    let seconds: u32 = line
        .rsplit_once("within ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time left in {line}"));
    assert!((1..=30).contains(&seconds), "{line}");

    let json = lsport(["--json", "wait", "--free", "--timeout", "20s", "47110"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(valid(&doc));
    assert_eq!(doc["outcome"], "met");
    let port = &doc["ports"][0];
    assert_eq!(port["orphaned"]["count"], 1, "{doc:#}");
    let ends = port["orphaned"]["last_ends_in_ms"].as_u64().unwrap();
    assert!(ends > 0 && ends <= 30_000, "{doc:#}");
    assert_eq!(port["time_wait"]["count"], 0, "{doc:#}");
    assert_eq!(port["holders"], serde_json::json!([]), "{doc:#}");

    // --strict counts it as it counts TIME_WAIT, and says what is left.
    let strict = lsport(["wait", "--free", "--strict", "--timeout", "300ms", "47110"]);
    assert_eq!(strict.status.code(), Some(4));
    let err = stderr(&strict);
    assert!(
        err.contains("still held: port 47110 by 1 orphaned connection (the kernel ends it within "),
        "{err}"
    );
    drop(client);
}

#[test]
fn a_udp_socket_whose_port_the_kernel_chose_is_no_listener() {
    if !private_netns("wait_udp_client") {
        return;
    }
    // sendto() without bind(): the kernel chooses the port. SO_REUSEADDR
    // lets a server bind beside it below.
    let client = std::net::UdpSocket::from(udp4_reuseaddr(None));
    client.send_to(b"x", "127.0.0.1:9").unwrap();
    let port = client.local_addr().unwrap().port();
    let output = lsport([
        "wait",
        "-u",
        "--listening",
        "--timeout",
        "300ms",
        &port.to_string(),
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
    assert!(
        stderr(&output).contains(&format!("nothing listens on port {port}")),
        "{}",
        stderr(&output)
    );
    // Nor is it one for the hint of a wait over TCP.
    let tcp = lsport([
        "wait",
        "--listening",
        "--timeout",
        "100ms",
        &port.to_string(),
    ]);
    assert_eq!(tcp.status.code(), Some(4));
    assert!(!stderr(&tcp).contains("-u"), "{}", stderr(&tcp));
    // A UDP socket bound on purpose beside it is one.
    let server = udp4_reuseaddr(Some(port));
    let met = lsport([
        "wait",
        "-u",
        "--listening",
        "--timeout",
        "10s",
        &port.to_string(),
    ]);
    assert_eq!(met.status.code(), Some(0), "{}", stderr(&met));
    drop((client, server));
}

/// A UDP socket with SO_REUSEADDR, bound to 127.0.0.1:port if given.
fn udp4_reuseaddr(port: Option<u16>) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
    if let Some(port) = port {
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
    }
    fd
}

#[test]
fn a_wait_for_tcp_on_a_port_only_udp_listens_on_hints_at_u() {
    if !private_netns("wait_udp_hint") {
        return;
    }
    let udp = std::net::UdpSocket::bind("127.0.0.1:47111").unwrap();
    let output = lsport(["wait", "--listening", "--timeout", "300ms", "47111"]);
    assert_eq!(output.status.code(), Some(4));
    let err = stderr(&output);
    assert!(
        err.contains(
            "lsport: port 47111 has a UDP listener, which lsport wait counts only with -u; waiting for a TCP listener"
        ),
        "{err}"
    );
    assert!(err.contains("nothing listens on port 47111"), "{err}");
    // -q says nothing; with -u it is met.
    let quiet = lsport(["-q", "wait", "--listening", "--timeout", "100ms", "47111"]);
    assert_eq!(quiet.status.code(), Some(4));
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    let with_u = lsport(["wait", "-u", "--listening", "--timeout", "2s", "47111"]);
    assert_eq!(with_u.status.code(), Some(0));
    assert_eq!(stderr(&with_u), "");
    // A TCP listener on a port waited for over UDP: the hint names -t.
    let tcp = tcp4_listener(47112);
    let output = lsport(["wait", "-u", "--listening", "--timeout", "100ms", "47112"]);
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr(&output)
            .contains("port 47112 has a TCP listener, which lsport wait counts only with -t"),
        "{}",
        stderr(&output)
    );
    drop((udp, tcp));
}

#[test]
fn the_static_binary_waits_in_an_empty_root() {
    // LSPORT_STATIC_BIN names the static binary (packaging/build makes
    // it); without it the test says so and skips, as tests/container.rs.
    let Some(binary) = std::env::var_os("LSPORT_STATIC_BIN") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_static_binary_waits_in_an_empty_root: LSPORT_STATIC_BIN is not set"
        );
        return;
    };
    if !private_netns("wait_empty_root") {
        return;
    }
    let root = OpenTempDir::new("wait-root");
    std::fs::copy(&binary, root.path.join("lsport")).unwrap();
    std::fs::create_dir(root.path.join("proc")).unwrap();
    let listener = tcp4_listener(47107);
    let udp = std::net::UdpSocket::bind("127.0.0.1:47108").unwrap();
    let holder = hold(&[listener.as_raw_fd(), udp.as_raw_fd()]);
    drop((listener, udp));
    let run = |args: &[&str]| {
        std::process::Command::new("unshare")
            .env_clear()
            .args(["--mount", "--fork", "--pid"])
            .arg(format!("--root={}", root.path.display()))
            .args(["--mount-proc", "/lsport"])
            .args(args)
            .output()
            .unwrap()
    };
    let listening = run(&[
        "wait",
        "--listening",
        "-t",
        "-u",
        "--timeout",
        "2s",
        "47107",
        "47108",
    ]);
    assert_eq!(listening.status.code(), Some(0), "{}", stderr(&listening));
    assert_eq!(
        stdout(&listening).lines().count(),
        2,
        "{}",
        stdout(&listening)
    );
    let held = run(&["wait", "--free", "--timeout", "300ms", "47107"]);
    assert_eq!(held.status.code(), Some(4), "{}", stderr(&held));
    drop(holder);
    let free = run(&["wait", "--free", "--timeout", "2s", "47107", "47108"]);
    assert_eq!(free.status.code(), Some(0), "{}", stderr(&free));
}
