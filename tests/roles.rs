//! Roles from what the kernel knows: whether it chose a socket's port
//! (sock_diag's autobound test) decides what a socket without a listener
//! is. A UDP client is no listener, no risk and no service to reserve a
//! port for; a server's connection stays the server's after its
//! listener closed; a connection its server closed and left to the
//! kernel is orphaned, held by no one, and goes by itself.

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};

use common::*;
use serde_json::Value;

fn setup(test: &str) -> bool {
    if !private_netns(test) {
        return false;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "");
    true
}

fn socket_on(doc: &Value, port: u16, protocol: &str) -> Value {
    let found: Vec<Value> = sockets_on(doc, u64::from(port))
        .into_iter()
        .filter(|s| s["protocol"] == protocol)
        .collect();
    assert_eq!(found.len(), 1, "{doc:#}");
    found.into_iter().next().unwrap()
}

#[test]
fn a_udp_client_is_neither_a_listener_nor_a_risk() {
    if !setup("a_udp_client_is_neither_a_listener_nor_a_risk") {
        return;
    }
    // sendto() without bind(): the kernel picks a port in 40000-40099.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"x", "127.0.0.1:9").unwrap();
    let port = client.local_addr().unwrap().port();
    assert!((40000..=40099).contains(&port));
    // A UDP socket bound on purpose inside the range is a listener, and
    // a risky one.
    let server = UdpSocket::bind("127.0.0.1:40090").unwrap();

    let (doc, _) = lsport_json(&["-a"]);
    let client_row = socket_on(&doc, port, "udp");
    assert_eq!(client_row["role"], "outgoing", "{client_row}");
    assert_eq!(client_row["risky"], false);
    let server_row = socket_on(&doc, 40090, "udp");
    assert_eq!(server_row["role"], "listener");
    assert_eq!(server_row["risky"], true);

    // Not in the listening view.
    let (listening, _) = lsport_json(&[]);
    assert!(
        sockets_on(&listening, u64::from(port)).is_empty(),
        "{listening:#}"
    );
    assert_eq!(sockets_on(&listening, 40090).len(), 1);
    // Nor among the port's listeners (-l), quiet or not.
    let port_arg = port.to_string();
    let listeners = lsport(["-u", "-l", &port_arg]);
    assert_eq!(listeners.status.code(), Some(1), "{}", stdout(&listeners));
    assert!(
        stdout(&listeners)
            .starts_with(&format!("Port {port} has NO LISTENER in network namespace")),
        "{}",
        stdout(&listeners)
    );
    assert_eq!(lsport(["-q", "-u", "-l", &port_arg]).status.code(), Some(1));
    assert_eq!(lsport(["-q", "-u", "-l", "40090"]).status.code(), Some(0));
    // Its port is no service's: nothing to reserve it for. The bound
    // one's is.
    let probe = lsport(["-u", &port_arg]);
    assert_eq!(probe.status.code(), Some(0));
    assert!(
        !stdout(&probe).contains("To keep it for a service"),
        "{}",
        stdout(&probe)
    );
    assert!(
        stdout(&lsport(["-u", "40090"]))
            .contains("To keep it for a service: sysctl -w net.ipv4.ip_local_reserved_ports=40090")
    );

    // lsport ephemeral counts the bound one only.
    let output = lsport(["ephemeral", "--json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let risky: Vec<u64> = report["risky_listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["port"].as_u64().unwrap())
        .collect();
    assert_eq!(risky, vec![40090], "{report:#}");
    drop(server);
    let output = lsport(["ephemeral", "--json"]);
    assert_eq!(output.status.code(), Some(0), "a UDP client is no problem");
    // Alone, it makes no listener for a quiet look either.
    assert_eq!(lsport(["-q", "-u"]).status.code(), Some(1));

    // /proc cannot tell, and says so.
    let (proc, _) = lsport_json(&["-a", "--source", "proc"]);
    assert!(
        proc["blind_spots"]
            .as_array()
            .unwrap()
            .contains(&Value::from("autobound")),
        "{proc:#}"
    );
    drop(client);
}

#[test]
fn a_servers_connection_stays_accepted_after_its_listener_closed() {
    if !setup("a_servers_connection_stays_accepted_after_its_listener_closed") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:7777").unwrap();
    let client = TcpStream::connect("127.0.0.1:7777").unwrap();
    let (server_side, _) = listener.accept().unwrap();
    drop(listener);
    let (doc, _) = lsport_json(&["7777"]);
    let row = socket_on(&doc, 7777, "tcp");
    assert_eq!(row["state"], "ESTABLISHED");
    assert_eq!(row["role"], "accepted", "{row}");
    // The client's end, found by its remote port, is outgoing.
    let (both, _) = lsport_json(&["--remote", "7777"]);
    let client_port = client.local_addr().unwrap().port();
    assert_eq!(socket_on(&both, client_port, "tcp")["role"], "outgoing");
    drop(server_side);
}

#[test]
fn a_udp_socket_bound_and_connected_to_its_client_is_the_servers_side() {
    if !setup("a_udp_socket_bound_and_connected_to_its_client_is_the_servers_side") {
        return;
    }
    // As socat UDP-LISTEN:7778,fork does: the child's socket is bound to
    // the service port and connected to the client.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"x", "127.0.0.1:9").unwrap();
    let server = UdpSocket::bind("127.0.0.1:7778").unwrap();
    server.connect(client.local_addr().unwrap()).unwrap();
    let (doc, _) = lsport_json(&["-u", "7778"]);
    let row = socket_on(&doc, 7778, "udp");
    assert_eq!(row["state"], "ESTABLISHED");
    assert_eq!(row["role"], "accepted", "{row}");
}

#[test]
fn a_tcp_clients_port_is_no_service_to_reserve() {
    if !setup("a_tcp_clients_port_is_no_service_to_reserve") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:7779").unwrap();
    let client = TcpStream::connect("127.0.0.1:7779").unwrap();
    let (server_side, _) = listener.accept().unwrap();
    let port = client.local_addr().unwrap().port();
    assert!((40000..=40099).contains(&port));
    let probe = lsport([port.to_string()]);
    assert_eq!(probe.status.code(), Some(0));
    let text = stdout(&probe);
    assert!(text.contains("outgoing"), "{text}");
    assert!(!text.contains("To keep it for a service"), "{text}");
    // A free port of the range is offered the reservation.
    assert!(
        stdout(&lsport(["40098"])).contains("To keep it for a service"),
        "a free port"
    );
    drop((client, server_side, listener));
}

/// The number of seconds in "within N s" of `text`.
fn seconds_within(text: &str) -> u32 {
    text.split_once("within ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"within N s\" in {text}"))
}

#[test]
fn a_connection_its_server_closed_and_left_is_orphaned_and_ends_by_itself() {
    if !setup("a_connection_its_server_closed_and_left_is_orphaned_and_ends_by_itself") {
        return;
    }
    // The kernel keeps such an orphan as a timewait socket, whose timer
    // says when it goes: within 30 s.
    sysctl("net.ipv4.tcp_fin_timeout", "30");
    let client = orphaned_connection(7780);

    let output = lsport(["7780"]);
    // As for a port that only TIME_WAIT holds: in use.
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let verdict = text.lines().next().unwrap();
    assert!(
        verdict.starts_with(
            "Port 7780 is IN USE: 1 socket, 1 orphaned (closed by its program before the peer did; no process holds it, and the kernel ends it by itself within "
        ),
        "{text}"
    );
    assert!((1..=30).contains(&seconds_within(verdict)), "{verdict}");
    assert!(!text.contains("not yet accepted"), "{text}");

    let (doc, output) = lsport_json(&["7780"]);
    assert_eq!(output.status.code(), Some(0));
    common::schema::assert_valid("probe", &doc);
    let row = socket_on(&doc, 7780, "tcp");
    assert_eq!(row["state"], "FIN_WAIT2", "{row}");
    assert_eq!(row["role"], "orphaned", "{row}");
    assert_eq!(row["inode"], 0, "{row}");
    assert_eq!(row["holders"], Value::Array(Vec::new()), "{row}");
    let ends = row["ends_in_ms"].as_u64().expect("a time left");
    assert!(ends > 0 && ends <= 30_000, "{row}");

    // No listener, and nobody's: neither -l nor --user root shows it.
    let (listening, _) = lsport_json(&[]);
    assert!(sockets_on(&listening, 7780).is_empty(), "{listening:#}");
    let (roots, _) = lsport_json(&["--user", "root", "-a"]);
    assert!(sockets_on(&roots, 7780).is_empty(), "{roots:#}");

    // A TIME_WAIT-only port answers the same way: the server closes
    // first, then its client.
    {
        let listener = TcpListener::bind("127.0.0.1:7781").unwrap();
        let client = TcpStream::connect("127.0.0.1:7781").unwrap();
        let (server_side, _) = listener.accept().unwrap();
        drop(server_side);
        drop(client);
    }
    let time_wait = lsport(["7781"]);
    assert_eq!(time_wait.status.code(), Some(0));
    assert!(
        stdout(&time_wait).contains("in TIME_WAIT, which no process holds"),
        "{}",
        stdout(&time_wait)
    );
    let (doc, _) = lsport_json(&["7781"]);
    let ends = socket_on(&doc, 7781, "tcp")["ends_in_ms"].as_u64().unwrap();
    assert!(ends > 0 && ends <= 60_000, "{doc:#}");

    // Longer than 60 s, the kernel keeps the orphan as a full socket on
    // a keepalive timer, which does not say when it goes: no figure.
    sysctl("net.ipv4.tcp_fin_timeout", "90");
    let long = orphaned_connection(7782);
    let text = stdout(&lsport(["7782"]));
    assert!(
        text.contains("no process holds it, and the kernel ends it by itself)."),
        "{text}"
    );
    let (doc, _) = lsport_json(&["7782"]);
    let row = socket_on(&doc, 7782, "tcp");
    assert_eq!(row["role"], "orphaned", "{row}");
    assert_eq!(row["ends_in_ms"], Value::Null, "{row}");
    drop((client, long));
}
