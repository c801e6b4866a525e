//! Roles from what the kernel knows: whether it chose a socket's port
//! (sock_diag's autobound test) decides what a socket without a listener
//! is. A UDP client is no listener and no risk; a server's connection
//! stays the server's after its listener closed.

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
