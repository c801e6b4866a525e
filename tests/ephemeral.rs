//! `lsport ephemeral` and `lsport suggest` against a narrowed ephemeral
//! range that the test sets and fills.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Range 40000-40099 (100 ports), 40050 reserved, a risky listener on
/// 40090; 90 connections to 127.0.0.1:30000 and 3 to 127.0.0.1:30001,
/// 2 of which end in TIME_WAIT.
struct Load {
    _sockets: Vec<TcpStream>,
    _listeners: Vec<TcpListener>,
}

fn load(test: &str) -> Option<Load> {
    if !private_netns(test) {
        return None;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "40050");
    let busy = TcpListener::bind("127.0.0.1:30000").unwrap();
    let quiet = TcpListener::bind("127.0.0.1:30001").unwrap();
    let risky = TcpListener::bind("127.0.0.1:40090").unwrap();
    let mut sockets = Vec::new();
    for _ in 0..90 {
        sockets.push(TcpStream::connect("127.0.0.1:30000").unwrap());
        sockets.push(busy.accept().unwrap().0);
    }
    sockets.push(TcpStream::connect("127.0.0.1:30001").unwrap());
    sockets.push(quiet.accept().unwrap().0);
    for _ in 0..2 {
        let mut client = TcpStream::connect("127.0.0.1:30001").unwrap();
        let (mut server, _) = quiet.accept().unwrap();
        client.write_all(b"x").unwrap();
        server.read_exact(&mut [0u8; 1]).unwrap();
        drop(client);
        std::thread::sleep(Duration::from_millis(20));
        drop(server);
    }
    std::thread::sleep(Duration::from_millis(50));
    Some(Load {
        _sockets: sockets,
        _listeners: vec![busy, quiet, risky],
    })
}

fn ephemeral_json(extra: &[&str]) -> (Value, Option<i32>) {
    let mut args = vec!["ephemeral", "--format", "json"];
    args.extend_from_slice(extra);
    let output = lsport(&args);
    let doc = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    (doc, output.status.code())
}

#[test]
fn counts_headroom_warnings_and_fixes() {
    let Some(_load) = load("counts_headroom_warnings_and_fixes") else {
        return;
    };
    let (doc, status) = ephemeral_json(&["--check-range", "30000-32767"]);
    assert_eq!(
        status,
        Some(3),
        "a risky listener and a destination under 10%"
    );
    assert_eq!(doc["range"], json!([40000, 40099]));
    assert_eq!(doc["size"], 100);
    assert_eq!(doc["reserved_in_range"], 1);
    assert_eq!(doc["hard_bound_ports"], json!([40090]));
    assert_eq!(doc["usable"], 98);
    assert_eq!(
        doc["in_use"],
        json!({"established": 91, "closing": 0, "time_wait": 2})
    );
    let busiest = &doc["destinations"][0];
    assert_eq!(
        (busiest["address"].as_str(), busiest["port"].as_u64()),
        (Some("127.0.0.1"), Some(30000))
    );
    assert_eq!(busiest["established"], 90);
    assert_eq!(busiest["headroom"], 8);
    let second = &doc["destinations"][1];
    assert_eq!(
        (second["port"].as_u64(), second["time_wait"].as_u64()),
        (Some(30001), Some(2))
    );
    assert_eq!(second["headroom"], 95);
    assert_eq!(doc["risky_listeners"][0]["port"], 40090);
    assert_eq!(
        doc["risky_listeners"][0]["pids"],
        json!([std::process::id()])
    );
    assert_eq!(
        doc["overlaps"],
        json!([{"planned": [30000, 32767], "overlap": null, "unreserved": 0}])
    );
    assert_eq!(
        doc["fix"]["now"],
        "sysctl -w net.ipv4.ip_local_reserved_ports=40050,40090"
    );
    assert_eq!(
        doc["fix"]["persistent_line"],
        "net.ipv4.ip_local_reserved_ports = 40050,40090"
    );
    assert_eq!(doc["problems"].as_array().unwrap().len(), 2);

    // A lower threshold leaves only the risky listener.
    let (doc, status) = ephemeral_json(&["--warn-headroom", "5"]);
    assert_eq!(
        (status, doc["problems"].as_array().unwrap().len()),
        (Some(3), 1)
    );

    let text = stdout(&lsport(["ephemeral"]));
    assert!(text.contains("127.0.0.1:30000  90"), "{text}");
    assert!(
        text.contains("Fix now:      sysctl -w net.ipv4.ip_local_reserved_ports=40050,40090"),
        "{text}"
    );
    assert!(text.contains("/etc/sysctl.d/"), "{text}");
}

#[test]
fn a_healthy_namespace_exits_0_and_overlaps_are_reported() {
    if !private_netns("a_healthy_namespace_exits_0_and_overlaps_are_reported") {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "40000-40004");
    let (doc, status) = ephemeral_json(&[]);
    assert_eq!(status, Some(0));
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["fix"], Value::Null);
    let (doc, status) = ephemeral_json(&["--check-range", "39990-40009"]);
    assert_eq!(status, Some(3), "an unreserved overlap needs attention");
    assert_eq!(
        doc["overlaps"][0],
        json!({"planned": [39990, 40009], "overlap": [40000, 40009], "unreserved": 5})
    );
    assert_eq!(doc["fix"]["reserved_ports"], "40000-40009");
}

#[test]
fn ranges_whose_ends_share_a_parity_are_flagged() {
    if !private_netns("ranges_whose_ends_share_a_parity_are_flagged") {
        return;
    }
    for (range, same) in [
        ("40000 40100", true),
        ("40001 40099", true),
        ("40000 40099", false),
    ] {
        sysctl("net.ipv4.ip_local_port_range", range);
        let (doc, _) = ephemeral_json(&[]);
        assert_eq!(doc["same_parity"], same, "{range}");
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40100");
    let text = stdout(&lsport(["ephemeral"]));
    assert!(text.contains("both ends of the range are even"), "{text}");
    assert!(
        text.contains("ip_local_port_range=\"40000 40099\""),
        "{text}"
    );
}

#[test]
fn prometheus_output_parses_with_a_real_parser() {
    let Some(_load) = load("prometheus_output_parses_with_a_real_parser") else {
        return;
    };
    let output = lsport([
        "ephemeral",
        "--format",
        "prometheus",
        "--check-range",
        "30000-32767",
    ]);
    assert_eq!(output.status.code(), Some(3));
    // prometheus_client's own parser; prints "name{labels} value" per sample.
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()) if k != 'netns')\n\
        \x20       print(f'{s.name}{{{labels}}} {float(s.value)}')\n";
    let mut parser = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(&output.stdout)
        .unwrap();
    let parsed = parser.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "the exposition does not parse: {}",
        stderr(&parsed)
    );
    let samples = stdout(&parsed);
    for expected in [
        "lsport_ephemeral_range_ports{} 100.0",
        "lsport_ephemeral_usable_ports{} 98.0",
        "lsport_ephemeral_ports_in_use{state=established} 91.0",
        "lsport_ephemeral_ports_in_use{state=time_wait} 2.0",
        "lsport_ephemeral_destination_ports_in_use{destination=127.0.0.1:30000,state=established} 90.0",
        "lsport_ephemeral_destination_headroom_ports{destination=127.0.0.1:30000} 8.0",
        "lsport_ephemeral_risky_listeners{} 1.0",
        "lsport_ephemeral_planned_range_unreserved_overlap_ports{planned=30000-32767} 0.0",
    ] {
        assert!(
            samples.lines().any(|l| l == expected),
            "missing {expected:?} in:\n{samples}"
        );
    }
}

#[test]
fn suggestions_are_free_unregistered_and_outside_the_range() {
    let Some(_load) = load("suggestions_are_free_unregistered_and_outside_the_range") else {
        return;
    };
    let suggest = |args: &[&str]| -> Vec<u16> {
        let mut all = vec!["--json", "suggest"];
        all.extend_from_slice(args);
        let output = lsport(&all);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        doc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u16)
            .collect()
    };
    // Near 30000, which is in use, and near the range.
    let ports = suggest(&["20", "--near", "30000"]);
    assert_eq!(ports.len(), 20);
    for port in &ports {
        assert!(*port != 30000 && *port != 30001, "{port} is in use");
        assert!(!(40000..=40099).contains(port), "{port} is ephemeral");
        assert!(*port >= 1024, "{port} is privileged");
        // lsport's own port view agrees: free, and nothing registered.
        let (doc, _) = lsport_json(&[&port.to_string()]);
        assert_eq!(doc["ports"][0]["in_use"], false, "{port}");
        assert_eq!(
            doc["ports"][0]["services"],
            json!([]),
            "{port} is registered"
        );
    }
    let ports = suggest(&["5", "--range", "39990-40200"]);
    assert!(
        ports.iter().all(|p| !(40000..=40099).contains(p)),
        "{ports:?}"
    );
    // A port that was the best answer stops being one once it is taken.
    let best = suggest(&["1", "--near", "31000"])[0];
    let taken = TcpListener::bind(("127.0.0.1", best)).unwrap();
    assert_ne!(suggest(&["1", "--near", "31000"])[0], best);
    drop(taken);
    // A registered port is never suggested: 8080 is http-alt.
    assert_ne!(suggest(&["1", "--near", "8080"])[0], 8080);
    let none = lsport(["suggest", "--range", "40000-40099"]);
    assert_eq!(
        none.status.code(),
        Some(1),
        "nothing safe inside the ephemeral range"
    );
    assert!(stderr(&none).contains("found 0 safe ports"));
    let privileged = suggest(&["1", "--privileged", "--range", "1000-1100"]);
    assert!(privileged[0] < 1024);
}
