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
    /// The interface index of a link-local address.
    scope: u32,
    /// IP_FREEBIND.
    freebind: bool,
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
            scope: 0,
            freebind: false,
        }
    }

    fn udp(address: &'static str, port: u16) -> Try {
        Try {
            udp: true,
            ..Try::tcp(address, port)
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
    if t.freebind {
        match address {
            IpAddr::V4(_) => set(&socket, libc::IPPROTO_IP, libc::IP_FREEBIND, true),
            // IPV6_FREEBIND
            IpAddr::V6(_) => set(&socket, libc::IPPROTO_IPV6, 78, true),
        }
    }
    if let Err(errno) = scoped_bind(&socket, address, t.port, t.scope) {
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
    scoped_bind(socket, address, port, 0)
}

fn scoped_bind(socket: &OwnedFd, address: IpAddr, port: u16, scope: u32) -> Result<(), i32> {
    let addr = match address {
        IpAddr::V6(v6) => std::net::SocketAddr::V6(std::net::SocketAddrV6::new(v6, port, 0, scope)),
        v4 => std::net::SocketAddr::new(v4, port),
    };
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
    let applied = fixes_hold(t, &doc);
    // Shown with --nocapture: what was held against the kernel.
    eprintln!(
        "oracle: lsport {all:?} and the kernel: {}; fixes applied and held: {applied:?}",
        before.map_or("succeed".to_string(), |e| format!("errno {e}"))
    );
    doc
}

/// Each fix lsport offers is checked against the kernel: one it says it
/// checked (by a trial, or by the rules) that changes the bind itself is
/// applied to the same bind, which must then succeed; one that changes
/// processes or time is applied by the tests that can (`stop`); one it
/// did not check says so. Returns the kinds applied here.
fn fixes_hold(t: Try, doc: &Value) -> Vec<String> {
    let mut applied = Vec::new();
    for fix in doc["fixes"].as_array().unwrap() {
        let kind = fix["kind"].as_str().unwrap();
        let checked = fix["checked_by"].as_str().unwrap();
        assert_eq!(fix["verified"], checked == "trial", "{fix:#}");
        let text = fix["text"].as_str().unwrap();
        match checked {
            "trial" => assert!(text.contains("(tried"), "{fix:#}"),
            "rules" => assert!(text.contains("by the kernel's rules"), "{fix:#}"),
            _ => assert!(text.contains("(not tried"), "{fix:#}"),
        }
        if checked == "none" {
            continue;
        }
        let leak = |v: &Value| -> &'static str {
            Box::leak(v.as_str().unwrap().to_string().into_boxed_str())
        };
        let changed: Vec<Try> = match kind {
            "set_reuseaddr" => vec![Try {
                reuseaddr: true,
                ..t
            }],
            "set_reuseport" => vec![Try {
                reuseport: true,
                ..t
            }],
            "set_v6only" => vec![Try {
                v6only: Some(true),
                ..t
            }],
            "set_freebind" => vec![Try {
                freebind: true,
                ..t
            }],
            "bind_specific_address" | "bind_local_address" => fix["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| Try {
                    address: leak(a),
                    scope: 0,
                    ..t
                })
                .collect(),
            "give_scope" => fix["interfaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| Try {
                    scope: interface_index(i.as_str().unwrap()),
                    ..t
                })
                .collect(),
            "run_as_group_owner" => fix["uids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| Try {
                    uid: Some(u.as_u64().unwrap() as u32),
                    ..t
                })
                .collect(),
            "pick_another_port" => {
                vec![Try {
                    port: fix["port"].as_u64().unwrap() as u16,
                    ..t
                }]
            }
            "allow_privileged_port" => {
                // The sysctl the fix names, applied and put back.
                let path = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
                let was = std::fs::read_to_string(path).unwrap();
                sysctl("net.ipv4.ip_unprivileged_port_start", &t.port.to_string());
                let verdict = kernel(t);
                sysctl("net.ipv4.ip_unprivileged_port_start", was.trim());
                assert_eq!(verdict, None, "{kind} does not hold: {fix:#}");
                applied.push(kind.to_string());
                continue;
            }
            // Processes and time: applied where a test can.
            _ => continue,
        };
        for changed in changed {
            assert_eq!(
                kernel(changed),
                None,
                "the fix {kind} does not hold against the kernel: {fix:#}"
            );
        }
        applied.push(kind.to_string());
    }
    applied
}

fn interface_index(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
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
    // This test's own process holds it: lsport's parent, whom it would
    // never tell to stop.
    let stop = entry(&doc, "fixes", "stop_process");
    assert_eq!(stop["pids"], serde_json::json!([]));
    assert_eq!(stop["command"], Value::Null);
    assert_eq!(stop["checked_by"], "none");
    let text = stop["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "(pid {}) holds a socket in the way",
            std::process::id()
        )) && text.contains("an ancestor of lsport, which lsport would not stop"),
        "{text}"
    );
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
    // The trial bound, and did not listen: it would have joined the group.
    assert_eq!(doc["not_tried"], "listen");
    assert_eq!(doc["decided_by"], "rules");
    let group = entry(&doc, "warnings", "joins_group");
    assert_eq!(group["sockets"].as_array().unwrap().len(), 2);
    assert_eq!(group["sockets"][0]["uid"], 65534);
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
    let run_as = entry(&doc, "fixes", "run_as_group_owner");
    assert_eq!(
        run_as["text"],
        "run the server as uid 65534, the owner of the SO_REUSEPORT group (tried: the kernel \
         accepts this bind as that user)"
    );
    assert_eq!(run_as["checked_by"], "trial");
    assert_eq!(run_as["uids"], serde_json::json!([65534]));
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
            // A UDP socket bound beside them would take their datagrams:
            // the verdict is the rules', from the options read of them.
            assert_eq!(doc["not_tried"], "bind", "{doc:#}");
            assert_eq!(doc["decided_by"], "rules", "{doc:#}");
            if doc["verdict"] == "fail" {
                assert_eq!(rules(&doc), ["udp"], "{doc:#}");
                let socket = &doc["causes"][0]["sockets"][0];
                assert_eq!(socket["protocol"], "udp");
                assert_eq!(socket["reuseaddr"], port == 7012, "{doc:#}");
                assert_eq!(doc["causes"][0]["certain"], true);
            } else {
                // Datagrams then go to one socket only.
                let takes = entry(&doc, "warnings", "takes_datagrams");
                assert!(
                    takes["text"].as_str().unwrap().contains("one socket only"),
                    "{takes:#}"
                );
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

// ---------------------------------------------------------------------
// Which sockets are blamed, and which fixes hold (issue 20, items 8-14).

/// A TCP listener on `address:port` created by a thread that took `uid`
/// (so that the kernel records it as that user's), with SO_REUSEPORT as
/// given.
fn listener_as(uid: u32, address: &'static str, port: u16, reuseport: bool) -> OwnedFd {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: plain system calls that change this thread only.
                unsafe {
                    assert_eq!(libc::syscall(libc::SYS_setresgid, uid, uid, uid), 0);
                    assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
                }
                let address: IpAddr = address.parse().unwrap();
                let socket = raw_socket(address, false);
                set(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, true);
                if reuseport {
                    set(&socket, libc::SOL_SOCKET, libc::SO_REUSEPORT, true);
                }
                raw_bind(&socket, address, port).unwrap();
                // SAFETY: plain system call on our descriptor.
                assert_eq!(unsafe { libc::listen(socket.as_raw_fd(), 8) }, 0);
                socket
            })
            .join()
            .unwrap()
    })
}

/// A process holding `socket`, which this test then closes.
fn held(socket: OwnedFd) -> HeldBy {
    let holder = hold(&[socket.as_raw_fd()]);
    drop(socket);
    holder
}

/// Whether `pid` has exited (gone, or a zombie whose files are closed).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_exited(pids: &[u32]) {
    for _ in 0..2500 {
        if pids.iter().all(|p| exited(*p)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    panic!("{pids:?} did not exit");
}

/// Applies a stop fix as its command says (SIGTERM to each pid), and
/// waits for the processes to go.
fn apply_stop(fix: &Value) {
    let pids: Vec<u32> = fix["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert!(!pids.is_empty(), "{fix:#}");
    assert_eq!(
        fix["command"],
        format!(
            "kill {}",
            pids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        )
    );
    for pid in &pids {
        // SAFETY: a plain system call.
        unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
    }
    wait_exited(&pids);
}

fn the_sockets(doc: &Value) -> Vec<&Value> {
    doc["causes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["sockets"].as_array().unwrap())
        .collect()
}

#[test]
fn s14_a_listener_of_another_user_without_reuseport_is_the_plain_listener_rule() {
    if !private_netns("s14") {
        return;
    }
    let holder = held(listener_as(65534, "0.0.0.0", 7020, false));
    let t = Try {
        reuseport: true,
        ..Try::tcp("0.0.0.0", 7020)
    };
    let doc = agrees(t, &["--reuseport", "7020"]);
    assert_eq!(rules(&doc), ["listener"], "{doc:#}");
    assert_eq!(doc["causes"][0]["certain"], true);
    // No group: running as its user is no fix, and the kernel agrees.
    assert!(
        !kinds(&doc, "fixes").contains(&"run_as_group_owner"),
        "{doc:#}"
    );
    let as_owner = Try {
        uid: Some(65534),
        ..t
    };
    assert_eq!(kernel(as_owner), Some(libc::EADDRINUSE));
    let explanation = doc["causes"][0]["explanation"].as_str().unwrap();
    assert!(!explanation.contains("group"), "{explanation}");
    // Stopping its holder is enough, by the rules; and it is.
    let stop = entry(&doc, "fixes", "stop_process");
    assert_eq!(stop["checked_by"], "rules");
    assert_eq!(stop["pids"], serde_json::json!([holder.pid()]));
    apply_stop(stop);
    assert_eq!(kernel(t), None);
}

#[test]
fn s15_a_listener_that_lets_the_trial_into_its_group_is_not_blamed() {
    if !private_netns("s15") {
        return;
    }
    // The caller's own group on 127.0.0.2, another user's on 127.0.0.1.
    let own = held(listener_as(0, "127.0.0.2", 7021, true));
    let other = held(listener_as(65534, "127.0.0.1", 7021, true));
    let t = Try {
        reuseport: true,
        ..Try::tcp("0.0.0.0", 7021)
    };
    let doc = agrees(t, &["--reuseport", "7021"]);
    let blamed = the_sockets(&doc);
    assert_eq!(blamed.len(), 1, "{doc:#}");
    assert_eq!(blamed[0]["uid"], 65534);
    assert_eq!(blamed[0]["local"]["address"], "127.0.0.1");
    assert_eq!(doc["causes"][0]["certain"], true);
    // The kernel agrees: the own listener lets a bind in, the other not.
    assert_eq!(
        kernel(Try {
            address: "127.0.0.2",
            ..t
        }),
        None
    );
    assert_eq!(
        kernel(Try {
            address: "127.0.0.1",
            ..t
        }),
        Some(libc::EADDRINUSE)
    );
    let stop = entry(&doc, "fixes", "stop_process");
    assert_eq!(stop["pids"], serde_json::json!([other.pid()]));
    assert_eq!(stop["checked_by"], "rules");
    apply_stop(stop);
    assert_eq!(kernel(t), None);
    drop(own);
}

#[test]
fn s16_every_socket_in_the_way_is_named_and_stopping_all_of_them_frees_the_port() {
    if !private_netns("s16") {
        return;
    }
    let listener = held(tcp4_listener(7022));
    let bound = raw_socket("127.0.0.2".parse().unwrap(), false);
    raw_bind(&bound, "127.0.0.2".parse().unwrap(), 7022).unwrap();
    let bound = held(bound);
    let t = Try::tcp("0.0.0.0", 7022);
    let doc = agrees(t, &["7022"]);
    assert_eq!(rules(&doc), ["listener", "bound_only"], "{doc:#}");
    for cause in doc["causes"].as_array().unwrap() {
        assert_eq!(cause["certain"], true, "{cause:#}");
    }
    // Its options were read: it did not set SO_REUSEADDR.
    assert_eq!(doc["causes"][1]["sockets"][0]["reuseaddr"], false);
    let stop = entry(&doc, "fixes", "stop_process").clone();
    assert_eq!(
        stop["pids"],
        serde_json::json!([listener.pid(), bound.pid()])
    );
    assert_eq!(stop["checked_by"], "rules");
    // The listener alone is not enough: the kernel still refuses.
    // SAFETY: a plain system call.
    unsafe { libc::kill(listener.pid() as i32, libc::SIGTERM) };
    wait_exited(&[listener.pid()]);
    assert_eq!(kernel(t), Some(libc::EADDRINUSE));
    apply_stop(&stop);
    assert_eq!(kernel(t), None);
}

/// A veth pair d0/d1 with both ends up, once d0's link-local address is
/// no longer tentative; returns it.
fn interfaces_up() -> String {
    let status = Command::new("ip")
        .args(["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .status()
        .unwrap();
    assert!(status.success(), "ip link add veth");
    for name in ["d0", "d1"] {
        assert!(
            Command::new("ip")
                .args(["link", "set", name, "up"])
                .status()
                .unwrap()
                .success()
        );
    }
    for _ in 0..2500 {
        let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap();
        let ready = text.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f[4], 16).unwrap();
            (f[5] == "d0" && f[0].starts_with("fe80") && flags & 0x40 == 0)
                .then(|| f[0].to_string())
        });
        if let Some(hex) = ready {
            let bits = u128::from_str_radix(&hex, 16).unwrap();
            return std::net::Ipv6Addr::from(bits).to_string();
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    panic!("d0 has no usable link-local address");
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

#[test]
fn s17_address_errors_are_said_for_their_family_and_state() {
    if !private_netns("s17") {
        return;
    }
    let link_local = leak(interfaces_up());
    // An address the namespace lacks: the setting of its own family, and
    // no other port (the next one fails alike).
    for (address, setting, other) in [
        ("2001:db8::9", "net.ipv6.ip_nonlocal_bind", "net.ipv4"),
        ("10.9.9.9", "net.ipv4.ip_nonlocal_bind", "net.ipv6"),
    ] {
        let target = if address.contains(':') {
            format!("[{address}]:80")
        } else {
            format!("{address}:80")
        };
        let doc = agrees(Try::tcp(address, 80), &[&target]);
        assert_eq!(rules(&doc), ["address_not_available"]);
        let explanation = doc["causes"][0]["explanation"].as_str().unwrap();
        assert!(explanation.contains(setting), "{explanation}");
        assert!(!explanation.contains(other), "{explanation}");
        let offered = kinds(&doc, "fixes");
        assert!(!offered.contains(&"pick_another_port"), "{doc:#}");
        assert!(offered.contains(&"set_freebind"), "{doc:#}");
        assert!(offered.contains(&"bind_local_address"), "{doc:#}");
    }
    // A tentative address: duplicate address detection still runs.
    sysctl("net.ipv6.conf.d0.dad_transmits", "5");
    sysctl("net.ipv6.neigh.d0.retrans_time_ms", "100000");
    let added = Command::new("ip")
        .args(["addr", "add", "2001:db8::5/64", "dev", "d0"])
        .status()
        .unwrap();
    assert!(added.success());
    let doc = agrees(Try::tcp("2001:db8::5", 80), &["[2001:db8::5]:80"]);
    assert_eq!(rules(&doc), ["address_tentative"], "{doc:#}");
    let explanation = doc["causes"][0]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("duplicate address detection"),
        "{explanation}"
    );
    assert!(!explanation.contains("not an address"), "{explanation}");
    let offered = kinds(&doc, "fixes");
    assert!(offered.contains(&"wait_for_dad") && offered.contains(&"set_freebind"));
    assert!(!offered.contains(&"pick_another_port"));
    // A link-local address with its interface binds, as the kernel does.
    let index = interface_index("d0");
    let scoped = Try {
        scope: index,
        ..Try::tcp(link_local, 80)
    };
    let doc = agrees(scoped, &[&format!("[{link_local}%d0]:80")]);
    assert_eq!(doc["verdict"], "succeed");
    assert_eq!(doc["bind"]["interface"], "d0");
    let doc = agrees(scoped, &[&format!("[{link_local}%{index}]:80")]);
    assert_eq!(doc["verdict"], "succeed");
    // Without it the scope id is missing, and the fix names the interface.
    let doc = agrees(Try::tcp(link_local, 80), &[&format!("[{link_local}]:80")]);
    assert_eq!(doc["error"], "EINVAL");
    assert_eq!(rules(&doc), ["scope_missing"]);
    let explanation = doc["causes"][0]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("the scope id is missing"),
        "{explanation}"
    );
    let scope = entry(&doc, "fixes", "give_scope");
    assert_eq!(scope["interfaces"], serde_json::json!(["d0"]));
    assert_eq!(scope["checked_by"], "trial");
    assert!(!kinds(&doc, "fixes").contains(&"pick_another_port"));
    // On the other interface it is not there.
    let other = Try {
        scope: interface_index("d1"),
        ..Try::tcp(link_local, 80)
    };
    let doc = agrees(other, &[&format!("[{link_local}%d1]:80")]);
    assert_eq!(rules(&doc), ["address_on_other_interface"], "{doc:#}");
    assert_eq!(
        entry(&doc, "fixes", "give_scope")["interfaces"],
        serde_json::json!(["d0"])
    );
    // An interface the namespace lacks.
    let missing = Try {
        scope: 999,
        ..Try::tcp(link_local, 80)
    };
    let doc = agrees(missing, &[&format!("[{link_local}%999]:80")]);
    assert_eq!(rules(&doc), ["no_such_interface"], "{doc:#}");
}

#[test]
fn s18_a_connection_whose_listener_is_gone_is_not_called_outgoing() {
    if !private_netns("s18") {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "32768 60999");
    // A server that did not set SO_REUSEADDR: its accepted socket blocks
    // the bind even with it.
    let server = raw_socket("127.0.0.1".parse().unwrap(), false);
    raw_bind(&server, "127.0.0.1".parse().unwrap(), 40000).unwrap();
    // SAFETY: plain system call on our descriptor.
    assert_eq!(unsafe { libc::listen(server.as_raw_fd(), 8) }, 0);
    let server = TcpListener::from(server);
    let client = TcpStream::connect("127.0.0.1:40000").unwrap();
    let (accepted, _) = server.accept().unwrap();
    drop(server);
    let accepted = held(OwnedFd::from(accepted));
    let _client = held(OwnedFd::from(client));
    let doc = agrees(Try::tcp("0.0.0.0", 40000), &["40000"]);
    assert_eq!(rules(&doc), ["connection"]);
    let socket = &doc["causes"][0]["sockets"][0];
    assert_eq!(socket["side"], "unknown", "{doc:#}");
    assert_eq!(socket["holders"][0]["pid"], accepted.pid());
    let explanation = doc["causes"][0]["explanation"].as_str().unwrap();
    assert!(explanation.contains("does not record"), "{explanation}");
    assert!(
        !explanation.contains("outgoing connection took"),
        "{explanation}"
    );
    // No advice on a guess.
    assert!(!kinds(&doc, "fixes").contains(&"reserve_port"), "{doc:#}");
    let text = stdout(&lsport(["why", "40000"]));
    assert!(text.contains("accepted or outgoing"), "{text}");
    assert!(!text.contains("restart the client"), "{text}");
}

#[test]
fn s19_stopping_a_client_that_bound_the_port_leaves_time_wait_in_the_way() {
    if !private_netns("s19") {
        return;
    }
    let server = TcpListener::bind("127.0.0.1:7031").unwrap();
    // The client binds its port on purpose, without SO_REUSEADDR.
    let client = raw_socket("127.0.0.1".parse().unwrap(), false);
    raw_bind(&client, "127.0.0.1".parse().unwrap(), 7030).unwrap();
    nix::sys::socket::connect(
        client.as_raw_fd(),
        &nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 7031),
    )
    .unwrap();
    let (accepted, _) = server.accept().unwrap();
    let _server = held(OwnedFd::from(accepted));
    let client = held(client);
    let t = Try::tcp("0.0.0.0", 7030);
    let doc = agrees(t, &["7030"]);
    assert_eq!(rules(&doc), ["connection"]);
    let socket = &doc["causes"][0]["sockets"][0];
    assert_eq!(socket["side"], "outgoing", "{doc:#}");
    assert_eq!(socket["reuseaddr"], false, "{doc:#}");
    // It bound the port itself: reserving it would not keep it off.
    assert!(!kinds(&doc, "fixes").contains(&"reserve_port"), "{doc:#}");
    let stop = entry(&doc, "fixes", "stop_process").clone();
    assert_eq!(stop["checked_by"], "none");
    let text = stop["text"].as_str().unwrap();
    assert!(
        text.contains("TIME_WAIT, which blocks the bind for up to 60 s"),
        "{text}"
    );
    // And so it is: once the client is gone, its closed connection still
    // holds the port, even against SO_REUSEADDR.
    apply_stop(&stop);
    assert_eq!(kernel(t), Some(libc::EADDRINUSE));
    let doc = agrees(t, &["7030"]);
    let left = &doc["causes"][0];
    assert!(
        ["time_wait", "time_wait_without_reuseaddr"].contains(&left["rule"].as_str().unwrap()),
        "{doc:#}"
    );
    assert!(kinds(&doc, "fixes").contains(&"wait_time_wait"), "{doc:#}");
    drop(client);
}

#[test]
fn s20_the_workers_of_one_master_are_stopped_through_it() {
    if !private_netns("s20") {
        return;
    }
    let listener = TcpListener::bind("0.0.0.0:7040").unwrap();
    // A master that stops its workers when it is told to stop, as
    // servers do; in a process group of its own.
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "trap 'trap - TERM; kill 0' TERM; sleep 300 & sleep 300 & wait",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    pass_fds(&mut command, &[listener.as_raw_fd()]);
    let master = HeldBy {
        child: command.spawn().unwrap(),
    };
    drop(listener);
    // Wait until both workers hold the socket.
    let mut holders = 0;
    for _ in 0..2500 {
        let (doc, _) = lsport_json(&["7040"]);
        holders = sockets_on(&doc, 7040)
            .first()
            .map_or(0, |s| s["holders"].as_array().unwrap().len());
        if holders == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    assert_eq!(holders, 3);
    let doc = agrees(Try::tcp("0.0.0.0", 7040), &["7040"]);
    let stops: Vec<&Value> = doc["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"].as_str().unwrap().starts_with("stop"))
        .collect();
    assert_eq!(stops.len(), 1, "{doc:#}");
    assert_eq!(stops[0]["pids"], serde_json::json!([master.pid()]));
    let text = stops[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("sh (pid {})", master.pid())),
        "{text}"
    );
    assert!(text.contains("workers (pids "), "{text}");
    // That the workers go with it is what servers do, not a rule.
    assert_eq!(stops[0]["checked_by"], "none");
    let workers: Vec<u32> = the_sockets(&doc)[0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap() as u32)
        .collect();
    apply_stop(stops[0]);
    wait_exited(&workers);
    assert_eq!(kernel(Try::tcp("0.0.0.0", 7040)), None);
}

#[test]
fn s21_the_holders_of_one_unit_are_stopped_through_it() {
    if !private_netns("s21") {
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("s21: no cgroup v2 mount, and LSPORT_REQUIRE_NETNS is set");
        }
        eprintln!("SKIPPED s21: no cgroup v2 mount");
        return;
    };
    let slice = mount.join(format!("lsport-why-{}.slice", std::process::id()));
    let unit = slice.join("demo-why.service");
    std::fs::create_dir_all(&unit).unwrap();
    let procs = std::ffi::CString::new(
        unit.join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let listener = TcpListener::bind("0.0.0.0:7041").unwrap();
    let mut pids = Vec::new();
    let mut children = Vec::new();
    for _ in 0..2 {
        let mut command = Command::new("sleep");
        command
            .arg("300")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        pass_fds(&mut command, &[listener.as_raw_fd()]);
        let procs = procs.clone();
        // SAFETY: only system calls between fork and exec, on memory
        // allocated before the fork.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        pids.push(child.id());
        children.push(HeldBy { child });
    }
    drop(listener);
    for _ in 0..2500 {
        let text = std::fs::read_to_string(unit.join("cgroup.procs")).unwrap();
        if text.lines().count() == 2
            && pids
                .iter()
                .all(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap() == "sleep\n")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    let doc = agrees(Try::tcp("0.0.0.0", 7041), &["7041"]);
    let stop = entry(&doc, "fixes", "stop_supervisor");
    assert_eq!(stop["command"], "systemctl stop demo-why.service");
    assert_eq!(stop["supervisor"]["id"], "demo-why.service");
    let mut listed: Vec<u32> = stop["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    listed.sort_unstable();
    pids.sort_unstable();
    assert_eq!(listed, pids);
    assert_eq!(stop["checked_by"], "rules");
    assert!(
        !kinds(&doc, "fixes").contains(&"stop_process"),
        "one line for the unit, none per process: {doc:#}"
    );
    // What stopping the unit does: every process of its cgroup ends.
    std::fs::write(unit.join("cgroup.kill"), "1").unwrap();
    wait_exited(&pids);
    assert_eq!(kernel(Try::tcp("0.0.0.0", 7041)), None);
    drop(children);
    for _ in 0..500 {
        if std::fs::remove_dir(&unit).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    let _ = std::fs::remove_dir(&slice);
}

#[test]
fn s22_a_service_name_stands_for_its_port() {
    if !private_netns("s22") {
        return;
    }
    let doc = agrees(Try::tcp("0.0.0.0", 22), &["ssh"]);
    assert_eq!(doc["bind"]["port"], 22);
    let doc = agrees(Try::udp("127.0.0.1", 53), &["-u", "127.0.0.1:domain"]);
    assert_eq!(doc["bind"]["port"], 53);
    let output = lsport(["why", "[::1]"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("without a port"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn s23_a_udp_verdict_that_turns_on_options_nobody_may_read_is_unknown() {
    if !private_netns("s23") {
        return;
    }
    // A UDP server of uid 65534 that set SO_REUSEADDR, held by a process
    // of that uid: without CAP_SYS_PTRACE root may not copy its fds.
    let server = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: plain system calls that change this thread only.
                unsafe {
                    assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
                    assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
                }
                let socket = raw_socket("0.0.0.0".parse().unwrap(), true);
                set(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, true);
                raw_bind(&socket, "0.0.0.0".parse().unwrap(), 7050).unwrap();
                socket
            })
            .join()
            .unwrap()
    });
    let mut command = Command::new("sleep");
    command
        .arg("300")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    pass_fds(&mut command, &[server.as_raw_fd()]);
    // SAFETY: plain system calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let holder = HeldBy {
        child: command.spawn().unwrap(),
    };
    drop(server);
    for _ in 0..500 {
        if std::fs::read_to_string(format!("/proc/{}/comm", holder.pid())).unwrap() == "sleep\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    let output = lsport_without_ptrace(&["why", "--json", "-u", "7050"]);
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    common::schema::assert_valid("why", &doc);
    assert_eq!(doc["verdict"], "unknown", "{doc:#}");
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(doc["errno"], Value::Null);
    assert_eq!(rules(&doc), ["udp"]);
    assert_eq!(doc["causes"][0]["certain"], false);
    assert_eq!(doc["causes"][0]["sockets"][0]["reuseaddr"], Value::Null);
    assert!(
        doc["message"]
            .as_str()
            .unwrap()
            .contains("would succeed only if"),
        "{doc:#}"
    );
    // With CAP_SYS_PTRACE lsport reads them, and agrees with the kernel.
    let doc = agrees(Try::udp("0.0.0.0", 7050), &["-u", "7050"]);
    assert_eq!(doc["verdict"], "succeed");
    assert_eq!(
        entry(&doc, "warnings", "takes_datagrams")["sockets"][0]["uid"],
        65534
    );
}

#[test]
fn s24_fixes_that_change_the_bind_are_tried_and_hold() {
    if !private_netns("s24") {
        return;
    }
    // IPV6_V6ONLY: a dual-stack [::] beside an IPv4 listener.
    let _v4 = held(tcp4_listener(7070));
    let dual = Try {
        v6only: Some(false),
        ..Try::tcp("::", 7070)
    };
    let doc = agrees(dual, &["--dual-stack", "-6", "7070"]);
    assert_eq!(entry(&doc, "fixes", "set_v6only")["checked_by"], "trial");
    // SO_REUSEPORT: a live group of lsport's own user.
    let _group = [
        held(listener_as(0, "0.0.0.0", 7071, true)),
        held(listener_as(0, "0.0.0.0", 7071, true)),
    ];
    let doc = agrees(Try::tcp("0.0.0.0", 7071), &["7071"]);
    let join = entry(&doc, "fixes", "set_reuseport");
    assert_eq!(join["checked_by"], "trial");
    assert!(join["text"].as_str().unwrap().contains("joins"), "{join:#}");
    // A specific address: the namespace has 10.0.0.1 besides loopback.
    let added = Command::new("ip")
        .args(["addr", "add", "10.0.0.1/32", "dev", "lo"])
        .status()
        .unwrap();
    assert!(added.success());
    let doc = agrees(Try::tcp("0.0.0.0", 7070), &["7070"]);
    let specific = entry(&doc, "fixes", "bind_specific_address");
    assert_eq!(specific["addresses"], serde_json::json!(["10.0.0.1"]));
    assert_eq!(specific["checked_by"], "trial");
}
