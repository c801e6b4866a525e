//! `lsport why` never takes traffic meant for a live server: its trial
//! socket neither joins a live SO_REUSEPORT group (TCP: it does not
//! listen) nor binds beside a live UDP socket. Each test runs a server
//! in a private network namespace, keeps traffic flowing to it while
//! lsport runs again and again, and counts what went astray: resets,
//! refused connections, lost datagrams. Zero, and asserted. strace(1)
//! then shows the calls themselves were not made (a count of zero under
//! a timing could be luck; a trace is not). The kernel is asked the
//! same bind afterwards, with the traffic stopped: lsport's verdict,
//! reached by the rules, must be its.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How many times lsport runs while the traffic flows.
const RUNS: usize = 25;

fn socket_with(udp: bool, reuseaddr: bool, reuseport: bool) -> OwnedFd {
    let kind = if udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    // SAFETY: a new descriptor, owned at once; c_int options passed with
    // their size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let socket = OwnedFd::from_raw_fd(fd);
        for (name, on) in [
            (libc::SO_REUSEADDR, reuseaddr),
            (libc::SO_REUSEPORT, reuseport),
        ] {
            let value: libc::c_int = on.into();
            let status = libc::setsockopt(fd, libc::SOL_SOCKET, name, (&raw const value).cast(), 4);
            assert_eq!(status, 0);
        }
        socket
    }
}

fn bind_any(socket: &OwnedFd, port: u16) {
    let address = nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, port);
    nix::sys::socket::bind(socket.as_raw_fd(), &address).unwrap();
}

/// The kernel's answer to the same bind lsport tried: a TCP one listens.
fn kernel(udp: bool, reuseaddr: bool, reuseport: bool, port: u16) -> Option<i32> {
    let socket = socket_with(udp, reuseaddr, reuseport);
    let address = nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, port);
    if let Err(e) = nix::sys::socket::bind(socket.as_raw_fd(), &address) {
        return Some(e as i32);
    }
    // SAFETY: plain system call on our descriptor.
    if !udp && unsafe { libc::listen(socket.as_raw_fd(), 1) } != 0 {
        return std::io::Error::last_os_error().raw_os_error();
    }
    None
}

/// `lsport why --json ARGS`, as it printed it.
fn why_raw(args: &[&str]) -> std::process::Output {
    let mut all = vec!["why", "--json"];
    all.extend_from_slice(args);
    lsport(&all)
}

/// The document of one run, checked against the schema.
fn parse(output: &std::process::Output) -> Value {
    let doc: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)));
    common::schema::assert_valid("why", &doc);
    doc
}

fn why(args: &[&str]) -> Value {
    parse(&why_raw(args))
}

fn strace_available(test: &str) -> bool {
    let found = Command::new("strace").arg("-V").output().is_ok();
    if !found {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: strace is missing, and LSPORT_REQUIRE_NETNS is set");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: strace is not installed");
    }
    found
}

/// The system calls lsport made, as strace(1) writes them, with each
/// `slow` call made to return 300 ms late, as in a preempted lsport: a
/// trial socket that took traffic would take plenty then.
fn traced_slowly(calls: &str, slow: Option<&str>, args: &[&str]) -> Vec<String> {
    // The tests run on threads of one process: each trace its own file.
    static TRACES: AtomicU64 = AtomicU64::new(0);
    let log = std::env::temp_dir().join(format!(
        "lsport-why-traffic-{}-{}",
        std::process::id(),
        TRACES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e"])
        .arg(format!("trace={calls}"));
    if let Some(slow) = slow {
        command
            .arg("-e")
            .arg(format!("inject={slow}:delay_exit=300000"));
    }
    let output = command
        .arg("-o")
        .arg(&log)
        .arg(lsport_path())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running strace");
    assert!(output.status.code().is_some(), "{output:?}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    text.lines().map(str::to_string).collect()
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    served: AtomicU64,
    reset: AtomicU64,
    failed: AtomicU64,
}

#[test]
fn a_tcp_trial_beside_a_live_reuseport_group_takes_none_of_its_connections() {
    if !private_netns("why_traffic_tcp") {
        return;
    }
    let port = 7100;
    // The group: two listeners with SO_REUSEPORT, of lsport's own user,
    // each answering every connection with "ok".
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..2 {
        let socket = socket_with(false, true, true);
        bind_any(&socket, port);
        // SAFETY: plain system call on our descriptor.
        assert_eq!(unsafe { libc::listen(socket.as_raw_fd(), 1024) }, 0);
        let listener = TcpListener::from(socket);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                // The client closes first, so that the TIME_WAIT sockets
                // are the clients', not on the port.
                let _ = stream.write_all(b"ok");
                let _ = stream.read_to_end(&mut Vec::new());
            }
        });
    }
    // Clients connecting in a loop; a connection the kernel handed to a
    // trial socket is reset when the trial closes it.
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || {
                let to: SocketAddr = ([127, 0, 0, 1], port).into();
                while !stop.load(Ordering::Relaxed) {
                    let outcome = TcpStream::connect_timeout(&to, Duration::from_secs(10))
                        .and_then(|mut stream| {
                            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                            let mut answer = [0u8; 2];
                            stream.read_exact(&mut answer)?;
                            Ok(answer.to_vec())
                        });
                    let counter = match outcome {
                        Ok(answer) if answer == b"ok" => &tally.served,
                        Ok(_) => &tally.reset,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => &tally.reset,
                        Err(_) => &tally.failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // A steady stream, a few thousand a second, that
                    // leaves the machine to lsport too.
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        })
        .collect();
    while tally.served.load(Ordering::Relaxed) < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Some runs with every listen() slowed down, should lsport make one.
    let slowed = strace_available("why_traffic_tcp");
    let mut traces = Vec::new();
    let mut outputs = Vec::new();
    for run in 0..RUNS {
        if slowed && run % 5 == 0 {
            traces.push(traced_slowly(
                "bind,listen",
                Some("listen"),
                &["why", "--reuseport", &port.to_string()],
            ));
        }
        outputs.push(why_raw(&["--reuseport", &port.to_string()]));
        assert_eq!(
            lsport(["why", "-q", "--reuseport", &port.to_string()])
                .status
                .code(),
            Some(0)
        );
    }
    let served_during = tally.served.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let (reset, failed) = (
        tally.reset.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "{} runs of lsport why --reuseport beside a live group ({} with listen() slowed by \
         300 ms under strace): {served_during} connections served, {reset} reset, {failed} \
         failed",
        2 * RUNS + traces.len(),
        traces.len()
    );
    assert_eq!((reset, failed), (0, 0));
    assert!(served_during > 100);
    for doc in outputs.iter().map(parse) {
        assert_eq!(doc["verdict"], "succeed", "{doc:#}");
        assert_eq!(doc["not_tried"], "listen");
        assert_eq!(doc["decided_by"], "rules");
        let message = doc["message"].as_str().unwrap();
        assert!(
            message.contains("listen() too by the kernel's rules"),
            "{message}"
        );
        let group = doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["kind"] == "joins_group")
            .unwrap_or_else(|| panic!("no joins_group: {doc:#}"));
        assert_eq!(group["sockets"].as_array().unwrap().len(), 2);
    }
    // The kernel, with the traffic stopped: the same bind and listen
    // succeed, as the rules said.
    assert_eq!(kernel(false, true, true, port), None);
    // No listen() at all, while the bind was made.
    for calls in &traces {
        assert!(
            calls
                .iter()
                .any(|c| c.contains("bind(") && c.contains(&format!("sin_port=htons({port})"))),
            "{calls:#?}"
        );
        assert!(!calls.iter().any(|c| c.contains("listen(")), "{calls:#?}");
    }
}

/// Sends numbered datagrams to 127.0.0.1:port until stopped; returns how
/// many it sent.
fn sender(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..10 {
                socket
                    .send_to(&sent.to_be_bytes(), ("127.0.0.1", port))
                    .unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    })
}

/// Receives on `socket` into `count` until `stop` and nothing more comes.
fn receiver(
    socket: OwnedFd,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    // Room for every datagram of a slow moment: only a trial may lose one.
    let room: libc::c_int = 16 << 20;
    // SAFETY: a c_int option passed with its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const room).cast(),
            4,
        );
    }
    let socket = UdpSocket::from(socket);
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 64];
        loop {
            match socket.recv(&mut buffer) {
                Ok(_) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) => {}
            }
        }
    })
}

/// What a run of datagrams saw.
struct Flow {
    sent: u64,
    received: u64,
    /// Each `lsport why --json` run's output.
    outputs: Vec<std::process::Output>,
    /// The traces of the slowed runs.
    traces: Vec<Vec<String>>,
}

impl Flow {
    /// Nothing lost, then no UDP bind on `port` in any trace, then the
    /// documents.
    fn checked(self, port: u16, what: &str) -> Vec<Value> {
        eprintln!(
            "{} runs of lsport why {what} ({} with bind() slowed by 300 ms under strace): {} \
             datagrams sent, {} received, {} lost",
            self.outputs.len() + self.traces.len(),
            self.traces.len(),
            self.sent,
            self.received,
            self.sent - self.received
        );
        assert_eq!(self.received, self.sent);
        for calls in &self.traces {
            assert_no_udp_bind(port, calls);
        }
        self.outputs.iter().map(parse).collect()
    }
}

/// Runs `lsport why ARGS` RUNS times while datagrams flow to the live
/// sockets `servers` on `port`, and returns (sent, received, documents).
fn under_datagrams(port: u16, servers: Vec<OwnedFd>, args: &[&str], slowed: bool) -> Flow {
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = servers
        .into_iter()
        .map(|s| receiver(s, received.clone(), done.clone()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sending = sender(port, stop.clone());
    while received.load(Ordering::Relaxed) < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Some runs with every bind() slowed down, should lsport bind a UDP
    // socket beside the live ones; they also show which binds it made.
    let mut outputs = Vec::new();
    let mut traces = Vec::new();
    for run in 0..RUNS {
        if slowed && run % 5 == 0 {
            let mut all = vec!["why"];
            all.extend_from_slice(args);
            traces.push(traced_slowly("socket,bind", Some("bind"), &all));
        }
        outputs.push(why_raw(args));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sending.join().unwrap();
    done.store(true, Ordering::Relaxed);
    for receiver in receivers {
        receiver.join().unwrap();
    }
    Flow {
        sent,
        received: received.load(Ordering::Relaxed),
        outputs,
        traces,
    }
}

/// No UDP socket lsport made was bound to `port`: each bind's fd is
/// matched to the socket() call that last returned it.
fn assert_no_udp_bind(port: u16, calls: &[String]) {
    let mut kinds: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let mut binds = 0;
    for call in calls {
        if call.contains("socket(") {
            if let Some((_, fd)) = call.rsplit_once("= ") {
                kinds.insert(fd.trim().to_string(), call.contains("SOCK_DGRAM"));
            }
        } else if call.contains(&format!("sin_port=htons({port})")) {
            let fd = call
                .split_once("bind(")
                .and_then(|(_, rest)| rest.split_once(','))
                .map(|(fd, _)| fd.trim().to_string())
                .unwrap_or_default();
            assert_eq!(
                kinds.get(&fd),
                Some(&false),
                "a UDP socket (or one not seen made) was bound to {port}: {call}\n{calls:#?}"
            );
            binds += 1;
        }
    }
    assert!(binds > 0, "the stand-in TCP bind is missing: {calls:#?}");
}

#[test]
fn a_udp_trial_beside_a_live_server_takes_none_of_its_datagrams() {
    if !private_netns("why_traffic_udp") {
        return;
    }
    let port = 5353;
    // A server that set SO_REUSEADDR, as mDNS responders do: a trial
    // bound beside it with SO_REUSEADDR would take its datagrams.
    let server = socket_with(true, true, false);
    bind_any(&server, port);
    let slowed = strace_available("why_traffic_udp");
    let docs = under_datagrams(
        port,
        vec![server.try_clone().unwrap()],
        &["-u", "5353"],
        slowed,
    )
    .checked(port, "-u beside a live UDP server");
    for doc in &docs {
        assert_eq!(doc["verdict"], "succeed", "{doc:#}");
        assert_eq!(doc["not_tried"], "bind");
        assert_eq!(doc["decided_by"], "rules");
        assert!(
            doc["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["kind"] == "takes_datagrams"),
            "{doc:#}"
        );
    }
    // The kernel agrees, asked with the traffic stopped.
    assert_eq!(kernel(true, true, false, port), None);
    assert_eq!(kernel(true, false, false, port), Some(libc::EADDRINUSE));
    let doc = why(&["-u", "--no-reuseaddr", "5353"]);
    assert_eq!(doc["error"], "EADDRINUSE", "{doc:#}");
    drop(server);
}

#[test]
fn a_udp_trial_beside_a_live_reuseport_group_takes_none_of_its_datagrams() {
    if !private_netns("why_traffic_udp_group") {
        return;
    }
    let port = 5354;
    let servers: Vec<OwnedFd> = (0..2)
        .map(|_| {
            let socket = socket_with(true, false, true);
            bind_any(&socket, port);
            socket
        })
        .collect();
    let copies = servers.iter().map(|s| s.try_clone().unwrap()).collect();
    let slowed = strace_available("why_traffic_udp_group");
    let docs = under_datagrams(port, copies, &["-u", "--reuseport", "5354"], slowed)
        .checked(port, "-u --reuseport beside a live UDP group");
    for doc in &docs {
        assert_eq!(doc["verdict"], "succeed", "{doc:#}");
        assert_eq!(doc["decided_by"], "rules");
        assert!(
            doc["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["kind"] == "joins_group"),
            "{doc:#}"
        );
    }
    // The kernel agrees, asked with the traffic stopped.
    assert_eq!(kernel(true, true, true, port), None);
    assert_eq!(kernel(true, true, false, port), Some(libc::EADDRINUSE));
    let doc = why(&["-u", "5354"]);
    assert_eq!(doc["verdict"], "fail", "{doc:#}");
    assert_eq!(doc["error"], "EADDRINUSE");
    drop(servers);
}
