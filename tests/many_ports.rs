//! Long port lists against real sockets: thousands of separate ports,
//! more than one kernel filter program holds. Every held port in the
//! list must be reported in use, and the sockets must be those ss(8)
//! shows on those ports, from sock_diag and from /proc alike.

mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// Ports held by a TCP listener and a UDP socket, on IPv4 and IPv6 each.
const HELD: [u16; 11] = [
    1, 2, 1000, 1003, 29998, 30000, 30001, 39197, 39199, 39200, 65535,
];

/// (protocol, state as ss names it, local port, remote port, inode).
type Key = (String, String, u16, u16, u64);

/// The sockets of the test, alive while it runs.
struct Load {
    _tcp: Vec<TcpListener>,
    _udp: Vec<UdpSocket>,
    _connections: Vec<TcpStream>,
}

/// A private namespace with the load in place; None when no namespace
/// can be had (the skip has been reported).
fn setup(test: &str) -> Option<Load> {
    if !private_netns(test) {
        return None;
    }
    // Clients take ports 40000-40099: above every list but the odd ports.
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for port in HELD {
        for address in ["127.0.0.1", "[::1]"] {
            let at = format!("{address}:{port}");
            tcp.push(TcpListener::bind(&at).unwrap_or_else(|e| panic!("tcp {at}: {e}")));
            udp.push(UdpSocket::bind(&at).unwrap_or_else(|e| panic!("udp {at}: {e}")));
        }
    }
    // Two connections, each with a server end on a held port and a client
    // end whose remote port is that held port.
    let mut connections = Vec::new();
    for port in [29998, 30001] {
        connections.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
        let listener = tcp.iter().find(|l| l.local_addr().unwrap().port() == port);
        connections.push(listener.unwrap().accept().unwrap().0);
    }
    Some(Load {
        _tcp: tcp,
        _udp: udp,
        _connections: connections,
    })
}

fn seq(first: u32, step: usize, last: u32) -> Vec<u16> {
    (first..=last)
        .step_by(step)
        .map(|p| u16::try_from(p).unwrap())
        .collect()
}

/// Starts `lsport --json [--remote] [--source SOURCE] PORTS...`.
fn start(ports: &[u16], remote: bool, source: &str) -> Child {
    let mut args = vec!["--json".to_string(), format!("--source={source}")];
    if remote {
        args.push("--remote".into());
    }
    args.extend(ports.iter().map(u16::to_string));
    lsport_command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lsport")
}

fn finish(child: Child, what: &str) -> Value {
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: exit status 0 (some port in use): {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{what}: no JSON ({e}): {}", stderr(&output)))
}

fn sockets_of(doc: &Value) -> BTreeSet<Key> {
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let protocol = s["protocol"].as_str().unwrap().to_string();
            let state = match (protocol.as_str(), s["state"].as_str().unwrap()) {
                ("udp", "CLOSE") => "UNCONN",
                (_, "ESTABLISHED") => "ESTAB",
                (_, other) => other,
            }
            .to_string();
            let port = |end: &str| u16::try_from(s[end]["port"].as_u64().unwrap()).unwrap();
            (
                protocol,
                state,
                port("local"),
                port("remote"),
                s["inode"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every socket of the namespace as `ss -tuanHe` lists it.
fn ss_sockets() -> Vec<Key> {
    let output = Command::new("ss")
        .args(["-tuanHe"])
        .output()
        .expect("running ss");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| field.rsplit(':').next().unwrap().parse().unwrap_or(0);
            let inode = fields
                .iter()
                .find_map(|f| f.strip_prefix("ino:"))
                .map_or(0, |n| n.parse().unwrap());
            (
                fields[0].to_string(),
                fields[1].to_string(),
                port(fields[4]),
                port(fields[5]),
                inode,
            )
        })
        .collect()
}

/// The ss sockets on `ports`, locally or, with `remote`, at either end.
fn expected(ports: &[u16], remote: bool) -> BTreeSet<Key> {
    let asked: BTreeSet<u16> = ports.iter().copied().collect();
    ss_sockets()
        .into_iter()
        .filter(|k| asked.contains(&k.2) || (remote && asked.contains(&k.3)))
        .collect()
}

/// The ports a document says are in use, and those it says are free.
fn verdicts(doc: &Value) -> (BTreeSet<u16>, BTreeSet<u16>) {
    let (mut in_use, mut free) = (BTreeSet::new(), BTreeSet::new());
    for verdict in doc["ports"].as_array().unwrap() {
        let port = u16::try_from(verdict["port"].as_u64().unwrap()).unwrap();
        if verdict["in_use"].as_bool().unwrap() {
            in_use.insert(port);
        } else {
            free.insert(port);
        }
    }
    (in_use, free)
}

/// Runs the list through sock_diag and /proc side by side and checks
/// both against ss and against the ports the test holds.
fn check(ports: &[u16], remote: bool) {
    let netlink = start(ports, remote, "netlink");
    let proc = start(ports, remote, "proc");
    let want = expected(ports, remote);
    let asked: BTreeSet<u16> = ports.iter().copied().collect();
    // ss sees the load: each held port in the list has four sockets.
    for port in HELD.iter().filter(|p| asked.contains(p)) {
        let on_port = want.iter().filter(|k| k.2 == *port).count();
        assert!(on_port >= 4, "ss shows {on_port} sockets on {port}");
    }
    let in_use_want: BTreeSet<u16> = want
        .iter()
        .flat_map(|k| [k.2, k.3])
        .filter(|p| asked.contains(p))
        .collect();
    for (child, source) in [(netlink, "netlink"), (proc, "proc")] {
        let what = format!("{} ports, remote {remote}, {source}", ports.len());
        let doc = finish(child, &what);
        assert_eq!(doc["source"], source, "{what}");
        let got = sockets_of(&doc);
        assert_eq!(got, want, "{what}: lsport (left) and ss (right) disagree");
        let (in_use, free) = verdicts(&doc);
        assert_eq!(in_use, in_use_want, "{what}: ports in use");
        assert_eq!(
            in_use.len() + free.len(),
            asked.len(),
            "{what}: one verdict a port"
        );
        for port in HELD.iter().filter(|p| asked.contains(p)) {
            assert!(
                in_use.contains(port),
                "{what}: held port {port} reported free"
            );
        }
    }
}

#[test]
fn every_odd_port() {
    let Some(_load) = setup("every_odd_port") else {
        return;
    };
    check(&seq(1, 2, 65535), false);
}

#[test]
fn every_third_port_from_1000_to_30000_local_and_remote() {
    let Some(_load) = setup("every_third_port_from_1000_to_30000_local_and_remote") else {
        return;
    };
    let ports = seq(1000, 3, 30000);
    check(&ports, false);
    // The client end of the connection to 29998 is on a port above the
    // list: only its remote port brings it in.
    check(&ports, true);
}

#[test]
fn odd_ports_up_to_39199() {
    let Some(_load) = setup("odd_ports_up_to_39199") else {
        return;
    };
    check(&seq(1, 2, 39199), false);
}
