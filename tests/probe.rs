//! The core probe against real sockets in a private network namespace.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Every test starts in its own namespace with a known port policy:
/// ephemeral range 40000-40099, port 40050 reserved.
fn setup(test: &str) -> bool {
    if !private_netns(test) {
        return false;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "40050");
    sysctl("net.ipv4.ip_unprivileged_port_start", "1024");
    true
}

fn one(sockets: Vec<Value>) -> Value {
    assert_eq!(sockets.len(), 1, "expected one socket, got {sockets:#?}");
    sockets.into_iter().next().unwrap()
}

#[test]
fn ipv4_listener_with_its_holder_and_port_facts() {
    if !setup("ipv4_listener_with_its_holder_and_port_facts") {
        return;
    }
    let listener = tcp4_listener(40010);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);

    let (doc, output) = lsport_json(&["40010"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        doc["ports"],
        json!([{"port": 40010, "iana_range": "user", "ephemeral": true, "reserved": false,
                 "privileged": false, "in_use": true, "verdict": "in_use", "forwards": [],
                 "undecoded_rules": [], "services": [],
                 "netns": {"inode": netns_inode(), "name": null, "container": null}}])
    );
    let socket = one(sockets_on(&doc, 40010));
    assert_eq!(socket["protocol"], "tcp");
    assert_eq!(socket["family"], "inet");
    assert_eq!(socket["state"], "LISTEN");
    assert_eq!(socket["role"], "listener");
    assert_eq!(
        socket["local"],
        json!({"address": "127.0.0.1", "port": 40010})
    );
    assert_eq!(socket["v6only"], Value::Null);
    assert_eq!(socket["holders_hidden"], false);
    let holders = socket["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0]["pid"], holder.pid());
    assert_eq!(holders[0]["fd"], FIRST_HELD_FD);
    assert_eq!(holders[0]["command"], "sleep");
    assert_eq!(holders[0]["cmdline"], json!(["sleep", "300"]));
    assert_eq!(holders[0]["uid"], 0);

    let text = stdout(&lsport(["40010"]));
    assert!(
        text.starts_with("Port 40010 is IN USE: 1 socket, held by sleep"),
        "{text}"
    );
    assert!(text.contains("inside the kernel's ephemeral range 40000-40099 and not reserved: outgoing connections may take it"), "{text}");
    assert!(
        text.contains("sysctl -w net.ipv4.ip_local_reserved_ports=40010,40050"),
        "{text}"
    );
}

#[test]
fn port_verdicts_follow_the_namespace_sysctls() {
    if !setup("port_verdicts_follow_the_namespace_sysctls") {
        return;
    }
    sysctl("net.ipv4.ip_unprivileged_port_start", "2000");
    let (doc, output) = lsport_json(&["40050", "40099", "40100", "1999", "2000", "50000"]);
    assert_eq!(output.status.code(), Some(1), "nothing is bound: exit 1");
    let facts: Vec<(u64, bool, bool, bool, &str)> = doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["ephemeral"].as_bool().unwrap(),
                p["reserved"].as_bool().unwrap(),
                p["privileged"].as_bool().unwrap(),
                p["iana_range"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        facts,
        vec![
            (40050, true, true, false, "user"),
            (40099, true, false, false, "user"),
            (40100, false, false, false, "user"),
            (1999, false, false, true, "user"),
            (2000, false, false, false, "user"),
            (50000, false, false, false, "dynamic"),
        ]
    );
    assert_eq!(doc["netns"]["inode"], netns_inode());
    assert_eq!(doc["netns"]["ephemeral_range"], json!([40000, 40099]));
    assert_eq!(doc["netns"]["reserved_ports"], json!([[40050, 40050]]));
    assert_eq!(doc["netns"]["unprivileged_port_start"], 2000);

    let text = stdout(&lsport(["40050"]));
    assert!(
        text.starts_with("Port 40050 is FREE in network namespace"),
        "{text}"
    );
    assert!(
        text.contains(
            "but reserved (ip_local_reserved_ports): outgoing connections will not take it"
        ),
        "{text}"
    );
}

#[test]
fn ipv6_listeners_say_whether_they_take_ipv4() {
    if !setup("ipv6_listeners_say_whether_they_take_ipv4") {
        return;
    }
    let dual = tcp6_socket(40020, false, false, true);
    let v6 = tcp6_socket(40021, false, true, true);
    let (doc, _) = lsport_json(&["40020", "40021"]);
    let dual_json = one(sockets_on(&doc, 40020));
    let v6_json = one(sockets_on(&doc, 40021));
    assert_eq!(dual_json["family"], "inet6");
    assert_eq!(dual_json["local"]["address"], "::");
    assert_eq!(dual_json["v6only"], false);
    assert_eq!(v6_json["v6only"], true);

    let text = stdout(&lsport(["40020", "40021"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("tcp46 ") && l.contains("[::]:40020")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tcp6 ") && l.contains("[::]:40021")),
        "{text}"
    );
    // why labels the sockets in the way as the table does.
    let why_dual = stdout(&lsport(["why", "40020"]));
    assert!(why_dual.contains("tcp46 LISTEN [::]:40020"), "{why_dual}");
    let why_v6 = stdout(&lsport(["why", "--ipv6", "40021"]));
    assert!(why_v6.contains("tcp6 LISTEN [::]:40021"), "{why_v6}");
    drop((dual, v6));
}

#[test]
fn an_ipv4_connection_on_an_ipv6_socket_is_written_as_the_kernel_has_it() {
    if !setup("an_ipv4_connection_on_an_ipv6_socket_is_written_as_the_kernel_has_it") {
        return;
    }
    // A dual-stack listener accepts an IPv4 client: the accepted socket
    // is an IPv6 socket on an IPv4-mapped address.
    let dual = TcpListener::from(tcp6_socket(40022, false, false, true));
    let client = TcpStream::connect("127.0.0.1:40022").unwrap();
    let (accepted, _) = dual.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();

    let text = stdout(&lsport(["-o", "proto,state,local,remote", "40022"]));
    let row = text
        .lines()
        .find(|l| l.contains("ESTABLISHED"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "tcp6",
            "ESTABLISHED",
            "[::ffff:127.0.0.1]:40022",
            &format!("[::ffff:127.0.0.1]:{client_port}"),
        ],
        "{text}"
    );
    // No IPv6 label above what reads as an IPv4 address.
    for line in text.lines().filter(|l| l.starts_with("tcp6 ")) {
        assert!(!line.contains(" 127.0.0.1:"), "{text}");
    }
    // JSON keeps the family and the IPv4 address it carries, as documented.
    let (doc, _) = lsport_json(&["40022"]);
    let accepted_json = sockets_on(&doc, 40022)
        .into_iter()
        .find(|s| s["state"] == "ESTABLISHED")
        .unwrap();
    assert_eq!(accepted_json["family"], "inet6");
    assert_eq!(accepted_json["local"]["address"], "127.0.0.1");
    drop((dual, client, accepted));
}

#[test]
fn a_bound_only_socket_holds_its_port() {
    if !setup("a_bound_only_socket_holds_its_port") {
        return;
    }
    let bound = tcp4_bound_only(40030);
    let (doc, output) = lsport_json(&["40030"]);
    assert_eq!(output.status.code(), Some(0));
    let socket = one(sockets_on(&doc, 40030));
    assert_eq!(socket["state"], "BOUND_INACTIVE");
    assert_eq!(socket["role"], "bound-only");
    assert_eq!(socket["holders"][0]["pid"], std::process::id());

    // The listening view shows it too, flagged as risky.
    let (doc, _) = lsport_json(&[]);
    let socket = one(sockets_on(&doc, 40030));
    assert_eq!(socket["risky"], true);
    drop(bound);
}

#[test]
fn udp_bound_and_connected() {
    if !setup("udp_bound_and_connected") {
        return;
    }
    let server = UdpSocket::bind("127.0.0.1:40040").unwrap();
    let client = UdpSocket::bind("127.0.0.1:40041").unwrap();
    client.connect("127.0.0.1:40040").unwrap();
    let (doc, output) = lsport_json(&["-u", "40040", "40041"]);
    assert_eq!(output.status.code(), Some(0));
    let bound = one(sockets_on(&doc, 40040));
    assert_eq!(
        (bound["protocol"].as_str(), bound["state"].as_str()),
        (Some("udp"), Some("CLOSE"))
    );
    assert_eq!(bound["role"], "listener");
    let connected = one(sockets_on(&doc, 40041));
    assert_eq!(connected["state"], "ESTABLISHED");
    assert_eq!(connected["role"], "outgoing");
    assert_eq!(
        connected["remote"],
        json!({"address": "127.0.0.1", "port": 40040})
    );

    // -t leaves UDP out.
    let output = lsport(["-t", "40040"]);
    assert_eq!(output.status.code(), Some(1));
    drop((server, client));
}

#[test]
fn an_established_pair_shows_both_ends_with_their_roles() {
    if !setup("an_established_pair_shows_both_ends_with_their_roles") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:40060").unwrap();
    let client = TcpStream::connect("127.0.0.1:40060").unwrap();
    let (server_end, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();
    assert!(
        (40000..=40099).contains(&client_port),
        "the kernel picks from the range we set"
    );

    let (doc, _) = lsport_json(&["40060"]);
    let roles: Vec<String> = sockets_on(&doc, 40060)
        .iter()
        .map(|s| s["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, vec!["listener", "accepted"]);

    let (doc, _) = lsport_json(&[&client_port.to_string()]);
    let outgoing = one(sockets_on(&doc, client_port.into()));
    assert_eq!(outgoing["role"], "outgoing");
    assert_eq!(outgoing["remote"]["port"], 40060);
    // Found only by the last dump (the walk of connections), after the
    // holders' scan would otherwise have started: its holder is there.
    assert_eq!(outgoing["holders"][0]["pid"], std::process::id());

    // --remote also matches the client end, as lsof -i :PORT does.
    let (doc, _) = lsport_json(&["--remote", "40060"]);
    assert_eq!(doc["sockets"].as_array().unwrap().len(), 3);
    drop((listener, client, server_end));
}

#[test]
fn time_wait_sockets_are_listed_without_holders() {
    if !setup("time_wait_sockets_are_listed_without_holders") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:40070").unwrap();
    let mut client = TcpStream::connect("127.0.0.1:40070").unwrap();
    let (mut server_end, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();
    client.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    server_end.read_exact(&mut byte).unwrap();
    // The client closes first, so its end goes to TIME_WAIT.
    drop(client);
    std::thread::sleep(Duration::from_millis(50));
    drop(server_end);
    std::thread::sleep(Duration::from_millis(50));

    let (doc, output) = lsport_json(&[&client_port.to_string()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a TIME_WAIT socket holds the port"
    );
    let socket = one(sockets_on(&doc, client_port.into()));
    assert_eq!(socket["state"], "TIME_WAIT");
    assert_eq!(socket["role"], "time-wait");
    assert_eq!(socket["holders"], json!([]));
    assert_eq!(socket["holders_hidden"], false);
    assert_eq!(socket["inode"], 0);
    drop(listener);
}

#[test]
fn a_socket_shared_by_two_processes_lists_both() {
    if !setup("a_socket_shared_by_two_processes_lists_both") {
        return;
    }
    let listener = tcp4_listener(40075);
    let first = hold(&[listener.as_raw_fd()]);
    let second = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let (doc, _) = lsport_json(&["40075"]);
    let socket = one(sockets_on(&doc, 40075));
    let mut expected = vec![(u64::from(first.pid()), 10), (u64::from(second.pid()), 10)];
    expected.sort_unstable();
    assert_eq!(holder_pids(&socket), expected);

    let text = stdout(&lsport(["40075"]));
    let rows = text.lines().filter(|l| l.starts_with("tcp ")).count();
    assert_eq!(rows, 2, "one row per holder: {text}");
}

#[test]
fn holders_other_users_own_are_hidden_but_the_port_is_in_use() {
    if !setup("holders_other_users_own_are_hidden_but_the_port_is_in_use") {
        return;
    }
    let listener = tcp4_listener(40080);
    let _holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    // A copy of the binary that user 65534 may run.
    let dir = OpenTempDir::new("unprivileged");
    let binary = dir.path.join("lsport");
    std::fs::copy(lsport_path(), &binary).unwrap();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&binary)
        .args(["--json", "40080"])
        .env_clear()
        .output()
        .expect("running setpriv");
    assert_eq!(
        output.status.code(),
        Some(0),
        "in use, holder hidden: {}",
        stderr(&output)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let socket = one(sockets_on(&doc, 40080));
    assert_eq!(socket["holders"], json!([]));
    assert_eq!(socket["holders_hidden"], true);
    assert_eq!(socket["uid"], 0, "sock_diag still tells the owner");
    assert_eq!(doc["ports"][0]["in_use"], true);
    let err = stderr(&output);
    assert!(
        err.contains("1 socket has holders hidden from this user") && err.contains("root"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_process_named_with_an_escape_sequence_cannot_reach_the_terminal() {
    if !setup("a_process_named_with_an_escape_sequence_cannot_reach_the_terminal") {
        return;
    }
    let dir = OpenTempDir::new("escape");
    let evil = dir.path.join("\x1b[2J\x07");
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(sleep, &evil).unwrap();
    let listener = tcp4_listener(40085);
    let holder = hold_with(&evil, &[listener.as_raw_fd()]);
    drop(listener);

    let output = lsport(["40085"]);
    let raw = output.stdout.clone();
    assert!(
        !raw.contains(&0x1b) && !raw.contains(&0x07),
        "raw control bytes reached stdout"
    );
    let text = stdout(&output);
    assert!(text.contains("\\x1b[2J\\x07"), "{text}");
    assert!(text.contains(&holder.pid().to_string()));

    let (doc, output) = lsport_json(&["40085"]);
    assert!(
        !output.stdout.contains(&0x1b),
        "JSON escapes control characters"
    );
    assert_eq!(
        one(sockets_on(&doc, 40085))["holders"][0]["command"],
        "\x1b[2J\x07"
    );
}

#[test]
fn the_listening_view_flags_listeners_inside_the_ephemeral_range() {
    if !setup("the_listening_view_flags_listeners_inside_the_ephemeral_range") {
        return;
    }
    let inside = TcpListener::bind("127.0.0.1:40090").unwrap();
    let outside = TcpListener::bind("127.0.0.1:30000").unwrap();
    let reserved = TcpListener::bind("127.0.0.1:40050").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:30001").unwrap();
    let client = TcpStream::connect("127.0.0.1:30000").unwrap();

    let (doc, output) = lsport_json(&[]);
    assert_eq!(output.status.code(), Some(0));
    let mut seen: Vec<(u64, &str, bool)> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["local"]["port"].as_u64().unwrap(),
                s["role"].as_str().unwrap(),
                s["risky"].as_bool().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (30000, "listener", false),
            (30001, "listener", false),
            (40050, "listener", false),
            (40090, "listener", true)
        ],
        "connections are not part of the listening view"
    );
    let text = stdout(&lsport(Vec::<&str>::new()));
    assert!(text.contains("listener!"), "{text}");
    assert!(
        text.contains("Fix: sysctl -w net.ipv4.ip_local_reserved_ports=40050,40090"),
        "{text}"
    );

    // -a shows the connection as well.
    let (doc, _) = lsport_json(&["-a"]);
    assert_eq!(doc["sockets"].as_array().unwrap().len(), 6);
    drop((inside, outside, reserved, udp, client));
}

#[test]
fn family_filters_and_ranges() {
    if !setup("family_filters_and_ranges") {
        return;
    }
    let v4 = TcpListener::bind("127.0.0.1:40001").unwrap();
    let v6 = TcpListener::bind("[::1]:40002").unwrap();
    let count = |args: &[&str]| lsport_json(args).0["sockets"].as_array().unwrap().len();
    assert_eq!(count(&["40000-40010"]), 2);
    assert_eq!(count(&["-4", "40000-40010"]), 1);
    assert_eq!(count(&["-6", "40000-40010"]), 1);
    assert_eq!(count(&["-u", "40000-40010"]), 0);
    assert_eq!(count(&["-l", "40001", "40002"]), 2);
    let (doc, _) = lsport_json(&["40000-40010"]);
    let ports: Vec<u64> = doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ports,
        vec![40001, 40002],
        "a range reports the ports in use within it"
    );
    let text = stdout(&lsport(["40000-40010"]));
    assert!(
        text.starts_with("Ports 40000-40010 are IN USE: 2 sockets on 2 ports (40001, 40002)"),
        "{text}"
    );
    drop((v4, v6));
}

#[test]
fn exit_status_and_quiet_mode() {
    if !setup("exit_status_and_quiet_mode") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:40095").unwrap();
    let used = lsport(["-q", "40095"]);
    assert_eq!(
        (used.status.code(), used.stdout.len(), used.stderr.len()),
        (Some(0), 0, 0)
    );
    let free = lsport(["-q", "40096"]);
    assert_eq!(
        (free.status.code(), free.stdout.len(), free.stderr.len()),
        (Some(1), 0, 0)
    );
    let text = lsport(["40096"]);
    assert_eq!(text.status.code(), Some(1));
    drop(listener);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    if !setup("colour_only_when_asked_or_on_a_terminal") {
        return;
    }
    let _listener = TcpListener::bind("127.0.0.1:40097").unwrap();
    let plain = lsport(["40097"]);
    assert!(!plain.stdout.contains(&0x1b), "not a terminal: no colour");
    let always = lsport(["--color=always", "40097"]);
    assert!(always.stdout.contains(&0x1b));
    let never = lsport_command(["--color=never", "40097"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!never.stdout.contains(&0x1b));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    if !setup("a_closed_stdout_ends_quietly") {
        return;
    }
    let listeners: Vec<TcpListener> = (30000..30400)
        .map(|p| TcpListener::bind(("127.0.0.1", p)).unwrap())
        .collect();
    let mut child = lsport_command(["-a"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "no panic, no signal");
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    drop(listeners);
}

#[test]
fn unreadable_sysctls_fall_back_to_the_kernel_defaults_marked_assumed() {
    if !setup("unreadable_sysctls_fall_back_to_the_kernel_defaults_marked_assumed") {
        return;
    }
    let output = lsport_command(["--json", "40010"])
        .env("LSPORT_PROC_ROOT", "/nonexistent")
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["netns"]["ephemeral_range"], json!([32768, 60999]));
    assert_eq!(doc["netns"]["ephemeral_range_assumed"], true);
    let text = stdout(
        &lsport_command(["40010"])
            .env("LSPORT_PROC_ROOT", "/nonexistent")
            .output()
            .unwrap(),
    );
    assert!(text.contains("assumed"), "{text}");
}

#[test]
fn chosen_columns_in_the_order_given() {
    if !setup("chosen_columns_in_the_order_given") {
        return;
    }
    let listener = tcp4_listener(40020);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);

    let output = lsport(["-o", "proto,local,pid,command", "40020"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let table: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("PROTO"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table,
        vec![
            vec!["PROTO", "LOCAL", "PID", "COMMAND"],
            vec!["tcp", "127.0.0.1:40020", &holder.pid().to_string(), "sleep"],
        ],
        "{text}"
    );

    // Columns beyond the default ones, in another order.
    let output = lsport(["-o", "inode,uid,netns,role", "40020"]);
    let text = stdout(&output);
    let last: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("INODE"))
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    let (doc, _) = lsport_json(&["40020"]);
    let socket = one(sockets_on(&doc, 40020));
    assert_eq!(
        last,
        vec![
            socket["inode"].to_string(),
            "0".to_string(),
            netns_inode().to_string(),
            // Inside the ephemeral range, not reserved: marked.
            "listener!".to_string()
        ],
        "{text}"
    );
}
