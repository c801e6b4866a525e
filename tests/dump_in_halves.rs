//! The dump of every TCP connection may run as two dumps side by side,
//! one per half of the sockets (bytecode::half, split at the middle of
//! the ephemeral range). In a private namespace with a known ephemeral
//! range and connections of every kind on both sides of the split: the
//! kernel's two halves are disjoint, together are the whole, and `-a`
//! lists every connection once, as ss does.

mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use common::*;
use lsport::socket::{Family, Protocol, Socket};
use lsport::source::netlink::{ALL_STATES, DumpRequest, Half, Session};

/// The namespace's ephemeral range, and its middle as lsport splits it.
const EPHEMERAL: (u16, u16) = (40_000, 40_099);
const SPLIT: u16 = 40_000 / 2 + 40_099 / 2;

fn dump(half: Option<Half>) -> Vec<Socket> {
    let request = DumpRequest {
        family: Family::Inet,
        protocol: Protocol::Tcp,
        states: ALL_STATES,
        ports: Vec::new(),
        match_remote: false,
        autobound_only: false,
        cgroups: None,
        half,
    };
    let mut sockets = Vec::new();
    Session::default()
        .dump_tcp_both_families(&request, &mut sockets)
        .unwrap_or_else(|err| panic!("dump {half:?}: {err}"));
    sockets
}

/// What tells two sockets apart in a namespace with one process.
type Key = (u64, String, u16, u16);

fn keys(sockets: &[Socket]) -> BTreeSet<Key> {
    let keys: BTreeSet<Key> = sockets
        .iter()
        .map(|s| {
            (
                s.inode,
                s.state.kernel_name().into_owned(),
                s.local.port,
                s.remote.port,
            )
        })
        .collect();
    assert_eq!(keys.len(), sockets.len(), "a socket came twice");
    keys
}

/// One listener below the split and one above, each with connections
/// from ports on both sides of it; the sockets live as long as the
/// returned vectors.
fn connections_on_both_sides() -> (Vec<TcpListener>, Vec<TcpStream>) {
    let listeners = vec![
        TcpListener::bind("127.0.0.1:30020").unwrap(),
        TcpListener::bind(format!("[::1]:{}", SPLIT + 20)).unwrap(),
    ];
    let mut streams = Vec::new();
    for _ in 0..30 {
        for (listener, address) in listeners.iter().zip([
            "127.0.0.1:30020".to_string(),
            format!("[::1]:{}", SPLIT + 20),
        ]) {
            streams.push(TcpStream::connect(address).unwrap());
            streams.push(listener.accept().unwrap().0);
        }
    }
    (listeners, streams)
}

#[test]
fn the_two_halves_are_disjoint_and_make_the_whole() {
    if !private_netns("the_two_halves_are_disjoint_and_make_the_whole") {
        return;
    }
    sysctl(
        "net.ipv4.ip_local_port_range",
        &format!("{} {}", EPHEMERAL.0, EPHEMERAL.1),
    );
    let (_listeners, _streams) = connections_on_both_sides();

    let whole = keys(&dump(None));
    let upper = dump(Some(Half {
        split: SPLIT,
        upper: true,
    }));
    let lower = dump(Some(Half {
        split: SPLIT,
        upper: false,
    }));
    let exactly_one_above = |s: &Socket| (s.local.port >= SPLIT) != (s.remote.port >= SPLIT);
    assert!(upper.iter().all(exactly_one_above));
    assert!(!lower.iter().any(exactly_one_above));
    let (upper, lower) = (keys(&upper), keys(&lower));
    assert!(upper.is_disjoint(&lower));
    assert_eq!(&upper | &lower, whole);
    // 2 listeners and 120 connection ends. Thirty connections to one
    // listener take ports over more than half of a 100-port range, so
    // each half has connections.
    assert_eq!(whole.len(), 122, "{whole:#?}");
    for half in [&upper, &lower] {
        assert!(half.iter().any(|k| k.1 == "ESTABLISHED"), "{half:#?}");
    }
}

#[test]
fn every_connection_is_listed_once_as_ss_lists_them() {
    if !private_netns("every_connection_is_listed_once_as_ss_lists_them") {
        return;
    }
    sysctl(
        "net.ipv4.ip_local_port_range",
        &format!("{} {}", EPHEMERAL.0, EPHEMERAL.1),
    );
    let (_listeners, _streams) = connections_on_both_sides();

    let (doc, output) = lsport_json(&["-a", "-t"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let ours: Vec<(u64, u64, u64)> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["inode"].as_u64().unwrap(),
                s["local"]["port"].as_u64().unwrap(),
                s["remote"]["port"].as_u64().unwrap(),
            )
        })
        .collect();
    let once: BTreeSet<_> = ours.iter().copied().collect();
    assert_eq!(once.len(), ours.len(), "a socket is listed twice");

    let ss = Command::new("ss").args(["-Htane"]).output().unwrap();
    assert!(ss.status.success());
    let theirs: BTreeSet<(u64, u64, u64)> = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| {
                field
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap_or(0)
            };
            let inode = fields
                .iter()
                .find_map(|f| f.strip_prefix("ino:"))
                .map_or(0, |i| i.parse().unwrap());
            (inode, port(fields[3]), port(fields[4]))
        })
        .collect();
    assert_eq!(once, theirs, "lsport (left) and ss (right) disagree");
    assert_eq!(once.len(), 122);
}
