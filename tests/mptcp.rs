//! MPTCP sockets: the kernel's TCP sockets under an MPTCP socket (its
//! listener and its connections' subflows) are labelled mptcp, beside a
//! plain TCP listener that stays tcp.

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use common::*;
use serde_json::Value;

/// IPPROTO_MPTCP.
const IPPROTO_MPTCP: i32 = 262;

/// An MPTCP stream socket, or None when the kernel has no MPTCP.
fn mptcp_socket() -> Option<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new
    // fd that nothing else owns.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            IPPROTO_MPTCP,
        )
    };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn socket_on<'a>(doc: &'a Value, local_port: u64, state: &str) -> &'a Value {
    doc["sockets"]
        .as_array()
        .expect("a sockets list")
        .iter()
        .find(|s| s["local"]["port"] == local_port && s["state"] == state)
        .unwrap_or_else(|| panic!("no {state} socket on port {local_port} in {doc:#}"))
}

#[test]
fn mptcp_listener_and_connection_are_labelled_mptcp_and_tcp_stays_tcp() {
    let test = "mptcp_listener_and_connection_are_labelled_mptcp_and_tcp_stays_tcp";
    if !private_netns(test) {
        return;
    }
    let enabled = Path::new("/proc/sys/net/mptcp/enabled");
    if !enabled.exists() {
        // The kernel was built without MPTCP: nothing to label.
        assert!(
            std::env::var_os("LSPORT_REQUIRE_NETNS").is_none(),
            "{test}: the kernel has no MPTCP, and LSPORT_REQUIRE_NETNS is set"
        );
        eprintln!("SKIPPED {test}: the kernel has no MPTCP (no net.mptcp.enabled)");
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.mptcp.enabled", "1");

    let listener = TcpListener::from(mptcp_socket().expect("an MPTCP socket"));
    let fd = listener.as_raw_fd();
    // An MPTCP socket takes the usual calls; std has no constructor for it.
    let address = nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 7100);
    nix::sys::socket::bind(fd, &address).unwrap();
    nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(16).unwrap()).unwrap();
    let client = TcpStream::from(mptcp_socket().unwrap());
    nix::sys::socket::connect(client.as_raw_fd(), &address).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let plain = tcp4_listener(7101);
    let client_port = u64::from(client.local_addr().unwrap().port());

    let output = lsport(["7100-7101", &client_port.to_string()]);
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{table}{}", stderr(&output));
    let label = |needle: &str| -> String {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle:?} in\n{table}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(label("127.0.0.1:7100  "), "mptcp", "{table}");
    assert_eq!(
        label(&format!("127.0.0.1:{client_port}")),
        "mptcp",
        "{table}"
    );
    assert_eq!(label("127.0.0.1:7101"), "tcp", "{table}");
    let rows = |l: &&str| l.starts_with("mptcp ");
    assert_eq!(table.lines().filter(rows).count(), 3, "{table}");

    let (doc, _) = lsport_json(&["7100-7101", &client_port.to_string()]);
    assert_eq!(socket_on(&doc, 7100, "LISTEN")["mptcp"], true);
    assert_eq!(socket_on(&doc, 7100, "ESTABLISHED")["mptcp"], true);
    assert_eq!(socket_on(&doc, client_port, "ESTABLISHED")["mptcp"], true);
    let tcp = socket_on(&doc, 7101, "LISTEN");
    assert_eq!(tcp["mptcp"], false);
    assert_eq!(tcp["protocol"], "tcp");

    // /proc/net does not say: unknown, and labelled tcp.
    let (proc_doc, _) = lsport_json(&["--source=proc", "7100"]);
    assert_eq!(socket_on(&proc_doc, 7100, "LISTEN")["mptcp"], Value::Null);
    drop((accepted, plain));
}
