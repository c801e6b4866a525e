//! `lsport why`: the kernel is the oracle. Each scenario builds its
//! sockets in a private network namespace, then the test itself tries
//! the same bind (and for TCP listen) with the same options and user,
//! before and after lsport does; lsport's verdict must equal the
//! kernel's, and the cause it names must be the right one. Every
//! document is validated against doc/schema/why.schema.json.

mod common;

use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A bind as the test tries it, independently of lsport.
#[derive(Clone, Copy)]
struct Try {
    udp: bool,
    address: &'static str,
    port: u16,
    reuseaddr: bool,
    reuseport: bool,
    v6only: Option<bool>,
    uid: Option<u32>,
}

impl Try {
    fn tcp(address: &'static str, port: u16) -> Try {
        Try {
            udp: false,
            address,
            port,
            reuseaddr: true,
            reuseport: false,
            v6only: None,
            uid: None,
        }
    }
}

/// What the kernel says to the bind: None, or the errno. Runs on a
/// thread of its own (in the test thread's namespace) so that a uid can
/// be taken for it alone.
fn kernel(t: Try) -> Option<i32> {
    std::thread::scope(|scope| scope.spawn(move || attempt(t)).join().unwrap())
}

fn attempt(t: Try) -> Option<i32> {
    let address: IpAddr = t.address.parse().unwrap();
    if let Some(uid) = t.uid {
        // Only this thread: the raw system calls, not libc's wrappers.
        // SAFETY: plain system calls with integer arguments.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setgroups, 0usize, 0usize), 0);
            assert_eq!(libc::syscall(libc::SYS_setresgid, uid, uid, uid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
    }
    let socket = raw_socket(address, t.udp);
    set(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, t.reuseaddr);
    if t.reuseport {
        set(&socket, libc::SOL_SOCKET, libc::SO_REUSEPORT, true);
    }
    if let Some(on) = t.v6only {
        set(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on);
    }
    if let Err(errno) = raw_bind(&socket, address, t.port) {
        return Some(errno);
    }
    // SAFETY: plain system call on a descriptor we own.
    if !t.udp && unsafe { libc::listen(socket.as_raw_fd(), 1) } != 0 {
        return std::io::Error::last_os_error().raw_os_error();
    }
    None
}

fn raw_socket(address: IpAddr, udp: bool) -> OwnedFd {
    let domain = if address.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = if udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    // SAFETY: a new descriptor, owned at once.
    unsafe {
        let fd = libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        OwnedFd::from_raw_fd(fd)
    }
}

fn set(socket: &OwnedFd, level: i32, name: i32, on: bool) {
    let value: libc::c_int = on.into();
    // SAFETY: a c_int option passed with its size.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            4,
        )
    };
    assert_eq!(status, 0);
}

fn raw_bind(socket: &OwnedFd, address: IpAddr, port: u16) -> Result<(), i32> {
    let addr = std::net::SocketAddr::new(address, port);
    let sockaddr: Box<dyn nix::sys::socket::SockaddrLike> = match addr {
        std::net::SocketAddr::V4(a) => Box::new(nix::sys::socket::SockaddrIn::from(a)),
        std::net::SocketAddr::V6(a) => Box::new(nix::sys::socket::SockaddrIn6::from(a)),
    };
    nix::sys::socket::bind(socket.as_raw_fd(), &*sockaddr).map_err(|e| e as i32)
}

/// Runs `lsport why --json ARGS`, with the kernel asked the same before
/// and after; returns the document once both agree with lsport.
fn agrees(t: Try, args: &[&str]) -> Value {
    let before = kernel(t);
    let mut all = vec!["why", "--json"];
    all.extend_from_slice(args);
    let output = lsport(&all);
    let after = kernel(t);
    assert_eq!(before, after, "the kernel changed its mind during the test");
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "lsport {all:?} printed no JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    common::schema::assert_valid("why", &doc);
    let expected_status = if before.is_none() { 0 } else { 4 };
    assert_eq!(
        output.status.code(),
        Some(expected_status),
        "{all:?}: {doc:#}"
    );
    assert_eq!(
        doc["errno"].as_i64().map(|e| e as i32),
        before,
        "lsport's verdict differs from the kernel's for {all:?}: {doc:#}"
    );
    assert_eq!(
        doc["verdict"],
        if before.is_none() { "succeed" } else { "fail" }
    );
    doc
}

fn rules(doc: &Value) -> Vec<&str> {
    doc["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rule"].as_str().unwrap())
        .collect()
}

fn kinds<'a>(doc: &'a Value, list: &str) -> Vec<&'a str> {
    doc[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect()
}

fn entry<'a>(doc: &'a Value, list: &str, kind: &str) -> &'a Value {
    doc[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {list}: {doc:#}"))
}

/// A TIME_WAIT socket on 127.0.0.1:port and nothing else: the server
/// side closes first, so the TIME_WAIT keeps the server's port.
fn time_wait_only(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(server);
    std::thread::sleep(Duration::from_millis(20));
    drop(client);
    drop(listener);
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn s01_time_wait_does_not_block_a_bind_with_reuseaddr() {
    if !private_netns("s01") {
        return;
    }
    time_wait_only(7001);
    let doc = agrees(Try::tcp("0.0.0.0", 7001), &["7001"]);
    assert_eq!(doc["verdict"], "succeed");
    let shares = entry(&doc, "warnings", "shares_port");
    assert_eq!(shares["sockets"][0]["state"], "TIME_WAIT");
}

#[test]
fn s02_time_wait_blocks_a_bind_without_reuseaddr_and_its_timer_is_stated() {
    if !private_netns("s02") {
        return;
    }
    time_wait_only(7002);
    let t = Try {
        reuseaddr: false,
        ..Try::tcp("0.0.0.0", 7002)
    };
    let doc = agrees(t, &["--no-reuseaddr", "7002"]);
    assert_eq!(doc["verdict"], "fail");
    assert_eq!(doc["error"], "EADDRINUSE");
    assert_eq!(rules(&doc), ["time_wait"]);
    assert_eq!(doc["causes"][0]["sockets"][0]["state"], "TIME_WAIT");
    let wait = entry(&doc, "fixes", "wait_time_wait");
    let seconds = wait["seconds"].as_u64().unwrap();
    assert!((1..=60).contains(&seconds), "{wait}");
    assert!(
        wait["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{seconds} s"))
    );
    assert_eq!(entry(&doc, "fixes", "set_reuseaddr")["verified"], true);
    // The text says the same.
    let text = stdout(&lsport(["why", "--no-reuseaddr", "7002"]));
    assert!(
        text.starts_with("bind(0.0.0.0:7002, tcp) would FAIL: address already in use"),
        "{text}"
    );
    assert!(text.contains("TIME_WAIT blocks binds without SO_REUSEADDR"));
}

#[test]
fn s03_a_wildcard_listener_takes_loopback_too() {
    if !private_netns("s03") {
        return;
    }
    let listener = TcpListener::bind("0.0.0.0:7003").unwrap();
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let doc = agrees(Try::tcp("127.0.0.1", 7003), &["127.0.0.1:7003"]);
    assert_eq!(rules(&doc), ["listener"]);
    let socket = &doc["causes"][0]["sockets"][0];
    assert_eq!(socket["local"]["address"], "0.0.0.0");
    assert_eq!(socket["holders"][0]["pid"], holder.pid());
    assert_eq!(
        entry(&doc, "fixes", "stop_process")["pids"][0],
        holder.pid()
    );
    let text = stdout(&lsport(["why", "127.0.0.1:7003"]));
    assert!(
        text.contains("the listener on *:7003 (every IPv4 address) takes 127.0.0.1:7003"),
        "{text}"
    );
    assert!(text.contains(&format!("stop sleep (pid {})", holder.pid())));
}

#[test]
fn s04_a_listener_on_one_loopback_address_leaves_another() {
    if !private_netns("s04") {
        return;
    }
    let _listener = TcpListener::bind("127.0.0.1:7004").unwrap();
    let doc = agrees(Try::tcp("127.0.0.2", 7004), &["127.0.0.2:7004"]);
    assert_eq!(doc["verdict"], "succeed");
    assert_eq!(
        entry(&doc, "warnings", "other_address")["sockets"][0]["local"]["address"],
        "127.0.0.1"
    );
}

#[test]
fn s05_a_dual_stack_wildcard_takes_ipv4() {
    if !private_netns("s05") {
        return;
    }
    let _listener = tcp6_socket(7005, false, false, true);
    let doc = agrees(Try::tcp("0.0.0.0", 7005), &["0.0.0.0:7005"]);
    assert_eq!(rules(&doc), ["listener"]);
    let socket = &doc["causes"][0]["sockets"][0];
    assert_eq!(socket["family"], "inet6");
    assert_eq!(socket["v6only"], false);
}

#[test]
fn s06_a_v6only_wildcard_leaves_ipv4() {
    if !private_netns("s06") {
        return;
    }
    let _listener = tcp6_socket(7006, false, true, true);
    let doc = agrees(Try::tcp("0.0.0.0", 7006), &["0.0.0.0:7006"]);
    assert_eq!(doc["verdict"], "succeed");
    assert_eq!(
        entry(&doc, "warnings", "other_family")["sockets"][0]["v6only"],
        true
    );
}

#[test]
fn s07_a_loopback_v6_listener_does_not_answer_on_ipv4() {
    if !private_netns("s07") {
        return;
    }
    let _listener = tcp6_socket(7007, true, false, true);
    let doc = agrees(Try::tcp("127.0.0.1", 7007), &["127.0.0.1:7007"]);
    assert_eq!(doc["verdict"], "succeed");
    let note = entry(&doc, "warnings", "other_family");
    assert!(
        note["text"]
            .as_str()
            .unwrap()
            .contains("does not answer on IPv4"),
        "{note}"
    );
    assert_eq!(note["sockets"][0]["local"]["address"], "::1");
}

#[test]
fn s08_a_bound_only_socket_blocks_the_port() {
    if !private_netns("s08") {
        return;
    }
    let _bound = tcp4_bound_only(7008);
    let doc = agrees(Try::tcp("0.0.0.0", 7008), &["7008"]);
    assert_eq!(rules(&doc), ["bound_only"]);
    assert_eq!(doc["causes"][0]["sockets"][0]["state"], "BOUND_INACTIVE");
}

#[test]
fn s09_an_outgoing_connection_that_took_the_port_is_named_with_its_process() {
    if !private_netns("s09") {
        return;
    }
    let server = TcpListener::bind("127.0.0.1:7009").unwrap();
    let client = TcpStream::connect("127.0.0.1:7009").unwrap();
    let (_accepted, _) = server.accept().unwrap();
    let port = client.local_addr().unwrap().port();
    let client = OwnedFd::from(client);
    let holder = hold(&[client.as_raw_fd()]);
    drop(client);
    let port_text = port.to_string();
    let doc = agrees(Try::tcp("0.0.0.0", port), &[&port_text]);
    assert_eq!(rules(&doc), ["connection"]);
    let socket = &doc["causes"][0]["sockets"][0];
    assert_eq!(socket["role"], "outgoing");
    assert_eq!(socket["remote"]["port"], 7009);
    assert_eq!(socket["holders"][0]["pid"], holder.pid());
    assert_eq!(socket["holders"][0]["command"], "sleep");
    assert!(
        doc["causes"][0]["explanation"]
            .as_str()
            .unwrap()
            .contains("outgoing connection took port")
    );
    // The default ephemeral range holds every port connect() picks.
    let reserve = entry(&doc, "fixes", "reserve_port");
    assert_eq!(
        reserve["command"],
        format!("sysctl -w net.ipv4.ip_local_reserved_ports={port}")
    );
}

/// Two SO_REUSEPORT listeners on 0.0.0.0:port owned by `uid`, created
/// on a thread that took that uid.
fn reuseport_group(port: u16, uid: u32) -> Vec<OwnedFd> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: plain system calls that change this thread only.
                unsafe {
                    assert_eq!(libc::syscall(libc::SYS_setresgid, uid, uid, uid), 0);
                    assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
                }
                (0..2)
                    .map(|_| {
                        let socket = raw_socket("0.0.0.0".parse().unwrap(), false);
                        set(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, true);
                        set(&socket, libc::SOL_SOCKET, libc::SO_REUSEPORT, true);
                        raw_bind(&socket, "0.0.0.0".parse().unwrap(), port).unwrap();
                        // SAFETY: plain system call on our descriptor.
                        assert_eq!(unsafe { libc::listen(socket.as_raw_fd(), 8) }, 0);
                        socket
                    })
                    .collect()
            })
            .join()
            .unwrap()
    })
}

#[test]
fn s10_a_reuseport_group_admits_its_own_user() {
    if !private_netns("s10") {
        return;
    }
    let _group = reuseport_group(7010, 65534);
    let t = Try {
        reuseport: true,
        uid: Some(65534),
        ..Try::tcp("0.0.0.0", 7010)
    };
    let doc = agrees(t, &["--reuseport", "--as", "65534", "7010"]);
    assert_eq!(doc["verdict"], "succeed");
    assert_eq!(doc["uid"], 65534);
    assert_eq!(
        entry(&doc, "warnings", "shares_port")["sockets"][0]["uid"],
        65534
    );
}

#[test]
fn s11_a_reuseport_group_refuses_another_user() {
    if !private_netns("s11") {
        return;
    }
    let _group = reuseport_group(7011, 65534);
    let t = Try {
        reuseport: true,
        uid: Some(12345),
        ..Try::tcp("0.0.0.0", 7011)
    };
    let doc = agrees(t, &["--reuseport", "--as", "12345", "7011"]);
    assert_eq!(rules(&doc), ["reuseport_other_user"]);
    assert_eq!(doc["bind"]["as_user"]["gid"], 12345);
    assert_eq!(
        entry(&doc, "fixes", "run_as_group_owner")["text"],
        "run the server as uid 65534, the owner of the SO_REUSEPORT group"
    );
    // Root is another user too.
    let root = Try { uid: None, ..t };
    let doc = agrees(root, &["--reuseport", "7011"]);
    assert_eq!(rules(&doc), ["reuseport_other_user"]);
}

#[test]
fn s12_udp_shares_a_port_as_the_kernel_says() {
    if !private_netns("s12") {
        return;
    }
    // One socket that set SO_REUSEADDR, one that did not.
    let shared = raw_socket("0.0.0.0".parse().unwrap(), true);
    set(&shared, libc::SOL_SOCKET, libc::SO_REUSEADDR, true);
    raw_bind(&shared, "0.0.0.0".parse().unwrap(), 7012).unwrap();
    let _alone = UdpSocket::bind("0.0.0.0:7013").unwrap();
    let mut verdicts = Vec::new();
    for (port, port_text) in [(7012, "7012"), (7013, "7013")] {
        for reuseaddr in [true, false] {
            let t = Try {
                udp: true,
                reuseaddr,
                ..Try::tcp("0.0.0.0", port)
            };
            let flag = if reuseaddr {
                "--reuseaddr"
            } else {
                "--no-reuseaddr"
            };
            let doc = agrees(t, &["-u", flag, port_text]);
            if doc["verdict"] == "fail" {
                assert_eq!(rules(&doc), ["udp"], "{doc:#}");
                assert_eq!(doc["causes"][0]["sockets"][0]["protocol"], "udp");
            }
            verdicts.push(doc["verdict"].as_str().unwrap().to_string());
        }
    }
    // Whatever the kernel says, these four binds do not all agree.
    assert!(verdicts.contains(&"succeed".to_string()) && verdicts.contains(&"fail".to_string()));
}

#[test]
fn s13_a_privileged_port_refuses_nobody() {
    if !private_netns("s13") {
        return;
    }
    sysctl("net.ipv4.ip_unprivileged_port_start", "1024");
    let t = Try {
        uid: Some(65534),
        ..Try::tcp("0.0.0.0", 80)
    };
    let doc = agrees(t, &["--as", "65534", "80"]);
    assert_eq!(doc["error"], "EACCES");
    assert_eq!(rules(&doc), ["privileged_port"]);
    assert!(
        doc["causes"][0]["explanation"]
            .as_str()
            .unwrap()
            .contains("below ip_unprivileged_port_start (1024)")
    );
    assert_eq!(
        entry(&doc, "fixes", "allow_privileged_port")["command"],
        "sysctl -w net.ipv4.ip_unprivileged_port_start=80"
    );
    // As root it succeeds, with the warning for other users.
    let doc = agrees(Try::tcp("0.0.0.0", 80), &["80"]);
    assert_eq!(kinds(&doc, "warnings"), ["privileged"]);
}

#[test]
fn the_trial_runs_in_the_namespace_asked_for_and_others_do_not_conflict() {
    if !private_netns("netns") {
        return;
    }
    let listener = TcpListener::bind("0.0.0.0:7014").unwrap();
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let target = format!("/proc/{}/ns/net", holder.pid());
    // lsport itself in a fresh namespace, where the port is free.
    let run = |args: &[&str]| {
        let output = Command::new("unshare")
            .arg("-n")
            .arg(lsport_path())
            .args(["why", "--json"])
            .args(args)
            .env_clear()
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
        common::schema::assert_valid("why", &doc);
        (doc, output.status.code())
    };
    let (doc, status) = run(&["--netns", &target, "7014"]);
    assert_eq!(status, Some(4), "{doc:#}");
    assert_eq!(rules(&doc), ["listener"]);
    let (doc, status) = run(&["--all-netns", "7014"]);
    assert_eq!(status, Some(0), "{doc:#}");
    let elsewhere = entry(&doc, "warnings", "other_namespaces");
    assert!(elsewhere["text"].as_str().unwrap().contains("not conflict"));
    let inode = netns_inode();
    assert!(
        elsewhere["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["netns"]["inode"] == inode && s["holders"][0]["pid"] == holder.pid()),
        "{elsewhere:#}"
    );
}

#[test]
fn quiet_answers_by_the_exit_status_alone() {
    if !private_netns("quiet") {
        return;
    }
    let _listener = TcpListener::bind("0.0.0.0:7015").unwrap();
    let taken = lsport(["why", "-q", "7015"]);
    assert_eq!(taken.status.code(), Some(4));
    assert!(taken.stdout.is_empty() && taken.stderr.is_empty());
    assert_eq!(lsport(["why", "-q", "7016"]).status.code(), Some(0));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for args in [
        &["why", "1.2.3:80"][..],
        &["why", "::1:80"],
        &["why", "[::1]80"],
        &["why", "localhost:80"],
        &["why", "70000"],
        &["why", "0"],
        &["why", "--as", "no-such-user-lsport", "8080"],
        &["why", "-6", "127.0.0.1:80"],
        &["why", "--v6only", "8080"],
        &["why", "--v6only", "--dual-stack", "-6", "8080"],
        &["why"],
    ] {
        let output = lsport(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr(&output);
        assert!(err.starts_with("lsport: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
