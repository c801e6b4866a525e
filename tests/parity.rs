//! sock_diag and /proc/net must give the same sockets and the same
//! holders, apart from what /proc cannot show: bound-only TCP sockets,
//! and IPV6_V6ONLY.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A socket as both sources must agree on it: everything but v6only.
type Key = (
    String,                  // protocol
    String,                  // family
    String,                  // state
    String,                  // role
    String,                  // local
    String,                  // remote
    u64,                     // uid
    u64,                     // inode
    bool,                    // risky
    Vec<(u64, u64, String)>, // holders: pid, fd, command
);

fn key(socket: &Value) -> Key {
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let end = |v: &Value| format!("{}:{}", text(&v["address"]), v["port"]);
    let mut holders: Vec<(u64, u64, String)> = socket["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["pid"].as_u64().unwrap(),
                h["fd"].as_u64().unwrap(),
                text(&h["command"]),
            )
        })
        .collect();
    holders.sort();
    (
        text(&socket["protocol"]),
        text(&socket["family"]),
        text(&socket["state"]),
        text(&socket["role"]),
        end(&socket["local"]),
        end(&socket["remote"]),
        socket["uid"].as_u64().unwrap(),
        socket["inode"].as_u64().unwrap(),
        socket["risky"].as_bool().unwrap(),
        holders,
    )
}

fn sockets(source: &str, args: &[&str]) -> (Value, BTreeSet<Key>) {
    let mut all = vec!["--source", source];
    all.extend_from_slice(args);
    let (doc, output) = lsport_json(&all);
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(1),
        "{source} {args:?}: {}",
        stderr(&output)
    );
    assert_eq!(doc["source"], source);
    let keys = doc["sockets"].as_array().unwrap().iter().map(key).collect();
    (doc, keys)
}

fn connect_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

#[test]
fn netlink_and_proc_see_the_same_sockets_and_holders() {
    if !private_netns("netlink_and_proc_see_the_same_sockets_and_holders") {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");

    // Every fixed port is taken before any connection picks an
    // ephemeral one from the same range.
    let bound_only = tcp4_bound_only(40030);
    let udp4 = UdpSocket::bind("127.0.0.1:40020").unwrap();
    let udp4_connected = UdpSocket::bind("127.0.0.1:40021").unwrap();
    let udp6 = UdpSocket::bind("[::1]:40022").unwrap();
    let v4 = TcpListener::bind("127.0.0.1:40010").unwrap();
    let v6 = TcpListener::bind("[::1]:40011").unwrap();
    let dual = tcp6_socket(40012, false, false, true);
    let dual = TcpListener::from(dual);
    let (c4, s4) = connect_pair(&v4);
    let (c6, s6) = connect_pair(&v6);
    let mapped_client = TcpStream::connect("127.0.0.1:40012").unwrap();
    let (mapped_server, _) = dual.accept().unwrap();

    // TIME_WAIT: the client closes first, then the server.
    let (tw_client, mut tw_server) = connect_pair(&v4);
    let tw_port = tw_client.local_addr().unwrap().port();
    drop(tw_client);
    let mut sink = [0u8; 8];
    tw_server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(tw_server.read(&mut sink).unwrap(), 0, "the client's FIN");
    tw_server.shutdown(Shutdown::Both).unwrap();
    drop(tw_server);

    udp4_connected.connect("127.0.0.1:40020").unwrap();

    // Three holders: a server, a client side, and one sharing the
    // IPv4 listener with the server.
    let server = hold(&[
        v4.as_raw_fd(),
        v6.as_raw_fd(),
        dual.as_raw_fd(),
        s4.as_raw_fd(),
        s6.as_raw_fd(),
        mapped_server.as_raw_fd(),
        udp4.as_raw_fd(),
    ]);
    let clients = hold(&[
        c4.as_raw_fd(),
        c6.as_raw_fd(),
        mapped_client.as_raw_fd(),
        udp4_connected.as_raw_fd(),
        udp6.as_raw_fd(),
    ]);
    let sharer = hold(&[v4.as_raw_fd(), bound_only.as_raw_fd()]);
    let bound_only_inode = {
        let (doc, _) = lsport_json(&["--source", "netlink", "40030"]);
        one_socket(&doc)["inode"].as_u64().unwrap()
    };
    // Only the holders keep the sockets from here on.
    drop((v4, v6, dual, c4, s4, c6, s6, mapped_client, mapped_server));
    drop((udp4, udp4_connected, udp6, bound_only));

    for args in [
        &["-a"][..],
        &[][..],
        &["40010"][..],
        &["--remote", "40010"][..],
        &["-6", "40011", "40012"][..],
        &["-u", "-a"][..],
        &["-l", "40000-40100"][..],
        &["40030"][..],
    ] {
        let (netlink_doc, netlink) = sockets("netlink", args);
        let (proc_doc, proc) = sockets("proc", args);
        assert_eq!(netlink_doc["blind_spots"], serde_json::json!([]));
        assert!(!proc_doc["blind_spots"].as_array().unwrap().is_empty());
        let only_netlink: Vec<&Key> = netlink.difference(&proc).collect();
        let only_proc: Vec<&Key> = proc.difference(&netlink).collect();
        assert!(
            only_proc.is_empty(),
            "{args:?}: only in /proc: {only_proc:#?}"
        );
        // The one difference allowed: the bound-only socket.
        for k in &only_netlink {
            assert_eq!(
                (k.2.as_str(), k.4.as_str(), k.7),
                ("BOUND_INACTIVE", "127.0.0.1:40030", bound_only_inode),
                "{args:?}: only in netlink: {only_netlink:#?}"
            );
        }
        let tcp = !args.contains(&"-u") && !args.contains(&"-6");
        let bound_only_asked = args.contains(&"-a")
            || args.is_empty()
            || args.contains(&"40030")
            || args.contains(&"40000-40100");
        assert_eq!(
            only_netlink.len(),
            usize::from(tcp && bound_only_asked),
            "{args:?}"
        );
        // And v6only, which /proc cannot know.
        for s in proc_doc["sockets"].as_array().unwrap() {
            assert_eq!(s["v6only"], Value::Null);
        }
    }

    // The answer itself is what was built, not merely the same twice.
    let (_, all) = sockets("proc", &["-a"]);
    let on = |port: &str| all.iter().filter(|k| k.4.ends_with(port)).count();
    assert_eq!(on(":40010"), 2, "listener and accepted end: {all:#?}");
    let listener = all
        .iter()
        .find(|k| k.4 == "127.0.0.1:40010" && k.2 == "LISTEN")
        .unwrap();
    let pids: Vec<u64> = listener.9.iter().map(|h| h.0).collect();
    let mut expected = vec![u64::from(server.pid()), u64::from(sharer.pid())];
    expected.sort();
    assert_eq!(pids, expected);
    assert!(
        all.iter()
            .any(|k| k.2 == "TIME_WAIT" && k.4 == format!("127.0.0.1:{tw_port}") && k.9.is_empty())
    );
    assert!(all.iter().any(|k| k.1 == "inet6"
        && k.4 == "127.0.0.1:40012"
        && k.9.iter().any(|h| h.0 == u64::from(server.pid()))));
    assert!(all.iter().any(|k| k.0 == "udp"
        && k.4 == "::1:40022"
        && k.9.iter().any(|h| h.0 == u64::from(clients.pid()))));
    // 3 listeners, 3 pairs, 1 TIME_WAIT, 3 UDP sockets.
    assert_eq!(all.len(), 13, "{all:#?}");
}

fn one_socket(doc: &Value) -> &Value {
    let sockets = doc["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1, "{sockets:#?}");
    &sockets[0]
}
