//! lsport and ss(8) must see the same sockets and the same holders in
//! the same namespace.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use common::*;

/// (protocol, state, local port, remote port, inode, holders) as ss names them.
type Key = (String, String, u16, u16, u64, Vec<(u32, u32)>);

fn ss_sockets() -> BTreeSet<Key> {
    let output = Command::new("ss")
        .args(["-tuanpeH"])
        .output()
        .expect("running ss");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| {
                field
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap_or(0)
            };
            let inode = fields
                .iter()
                .find_map(|f| f.strip_prefix("ino:"))
                .map_or(0, |n| n.parse().unwrap());
            let mut holders: Vec<(u32, u32)> = line
                .split("pid=")
                .skip(1)
                .map(|rest| {
                    let (pid, rest) = rest.split_once(",fd=").unwrap();
                    let fd: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    (pid.parse().unwrap(), fd.parse().unwrap())
                })
                .collect();
            holders.sort_unstable();
            (
                fields[0].to_string(),
                fields[1].to_string(),
                port(fields[4]),
                port(fields[5]),
                inode,
                holders,
            )
        })
        .collect()
}

fn lsport_sockets() -> BTreeSet<Key> {
    let (doc, output) = lsport_json(&["-a"]);
    assert_eq!(output.status.code(), Some(0));
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let protocol = s["protocol"].as_str().unwrap().to_string();
            // ss's short state names.
            let state = match (protocol.as_str(), s["state"].as_str().unwrap()) {
                ("udp", "CLOSE") => "UNCONN",
                (_, "ESTABLISHED") => "ESTAB",
                (_, "TIME_WAIT") => "TIME-WAIT",
                (_, other) => other,
            }
            .to_string();
            let holders: Vec<(u32, u32)> = holder_pids(s)
                .into_iter()
                .map(|(p, f)| (p as u32, f as u32))
                .collect();
            (
                protocol,
                state,
                s["local"]["port"].as_u64().unwrap() as u16,
                s["remote"]["port"].as_u64().unwrap() as u16,
                s["inode"].as_u64().unwrap(),
                holders,
            )
        })
        .collect()
}

#[test]
fn lsport_and_ss_list_the_same_sockets_and_holders() {
    if !private_netns("lsport_and_ss_list_the_same_sockets_and_holders") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:30010").unwrap();
    let listener6 = TcpListener::bind("[::1]:30011").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:30012").unwrap();
    let udp6 = UdpSocket::bind("[::1]:30013").unwrap();
    let client = TcpStream::connect("127.0.0.1:30010").unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let client6 = TcpStream::connect("[::1]:30011").unwrap();
    let (accepted6, _) = listener6.accept().unwrap();
    // One TIME_WAIT socket.
    let mut closing = TcpStream::connect("127.0.0.1:30010").unwrap();
    let (mut closing_server, _) = listener.accept().unwrap();
    closing.write_all(b"x").unwrap();
    closing_server.read_exact(&mut [0u8; 1]).unwrap();
    drop(closing);
    std::thread::sleep(Duration::from_millis(50));
    drop(closing_server);
    std::thread::sleep(Duration::from_millis(50));
    // Two outside holders of the listener besides this test process.
    let first = hold(&[listener.as_raw_fd()]);
    let second = hold(&[listener.as_raw_fd(), udp.as_raw_fd()]);

    let ours = lsport_sockets();
    let theirs = ss_sockets();
    assert_eq!(ours, theirs, "lsport (left) and ss (right) disagree");
    assert!(ours.len() >= 9, "the load is really there: {ours:#?}");
    assert!(ours.iter().any(|k| k.1 == "TIME-WAIT"));
    assert!(
        ours.iter()
            .any(|k| k.5.iter().any(|(pid, _)| *pid == first.pid()))
    );
    assert!(
        ours.iter()
            .any(|k| k.5.iter().any(|(pid, _)| *pid == second.pid()))
    );
    drop((
        listener, listener6, udp, udp6, client, accepted, client6, accepted6,
    ));
}
