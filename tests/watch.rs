//! `lsport watch` against real sockets in a private network namespace:
//! short-lived connections, a listener that comes and goes, an overload
//! of close notifications, and a user who may not see root's holders.

mod common;

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Starts `lsport watch --json ARGS` (through `wrapper` if given) and
/// waits until it listens for close notifications and has made its
/// first dump, as its first line says.
fn start_watch(wrapper: &[&str], binary: &std::path::Path, args: &[&str]) -> Watching {
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(["watch", "--json"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lsport watch");
    // The first line says the first dump is made: what happens from
    // then on is reported.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("a first line");
    let first: Value = serde_json::from_str(&first).expect("a JSON line first");
    assert_eq!(first["event"], "started");
    check_against_schema(&first);
    // Read on, so that a full pipe never holds the watch up.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        rest
    });
    Watching { child, reader }
}

/// A running watch and the thread that reads its output.
struct Watching {
    child: Child,
    reader: std::thread::JoinHandle<String>,
}

/// The JSON lines of a finished watch, each checked against the schema.
fn finish(watch: Watching) -> (Vec<Value>, String, Option<i32>) {
    let output = watch.child.wait_with_output().unwrap();
    let text = watch.reader.join().unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for line in &lines {
        check_against_schema(line);
    }
    assert_eq!(
        lines.last().map(|l| l["event"].clone()),
        Some(Value::from("summary")),
        "the summary comes last: {text}"
    );
    each_socket_counts_once(&lines);
    (lines, stderr(&output), output.status.code())
}

/// The summary's tables count every socket that had an event exactly
/// once, named or among the others, and every close.
fn each_socket_counts_once(lines: &[Value]) {
    let summary = lines.last().unwrap();
    let sockets: HashSet<u64> = lines
        .iter()
        .filter(|l| ["appeared", "state", "closed"].contains(&l["event"].as_str().unwrap()))
        .map(|l| l["cookie"].as_u64().unwrap())
        .collect();
    let total = |table: &str, others: &str, field: &str| -> u64 {
        let named: u64 = summary[table]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g[field].as_u64().unwrap())
            .sum();
        named + summary[others][field].as_u64().unwrap()
    };
    assert_eq!(
        total("by_process", "other_processes", "sockets"),
        sockets.len() as u64,
        "{summary}"
    );
    assert_eq!(
        total("by_process", "other_processes", "closed"),
        summary["closed"].as_u64().unwrap(),
        "{summary}"
    );
}

/// Each JSON line against doc/schema/watch.schema.json, compiled once:
/// a watch may print thousands of lines.
fn check_against_schema(line: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/schema/watch.schema.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("watch.schema.json compiles")
    });
    if !validator.is_valid(line) {
        // The shared helper names each error.
        common::schema::assert_valid("watch", line);
    }
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

/// One connection to `port` that lives about `life`; returns the
/// client's port.
fn connect_briefly(listener: &TcpListener, port: u16, life: Duration) -> u16 {
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    std::thread::sleep(life);
    let client_port = client.local_addr().unwrap().port();
    drop(client);
    drop(server);
    client_port
}

#[test]
fn short_lived_connections_are_each_reported_with_ports_state_and_lifetime() {
    if !private_netns("short_lived_connections_are_each_reported_with_ports_state_and_lifetime") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:41000").unwrap();
    let watch = start_watch(&[], &lsport_path(), &["--for", "4s", "41000"]);
    let mut clients = Vec::new();
    let begin = Instant::now();
    while begin.elapsed() < Duration::from_secs(2) {
        clients.push(connect_briefly(&listener, 41000, Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(45));
    }
    let (lines, _, status) = finish(watch);
    assert_eq!(status, Some(0));
    let closed: Vec<&Value> = events(&lines, "closed")
        .into_iter()
        .filter(|e| e["role"] == "accepted" && e["local"]["port"] == 41000)
        .collect();
    let reported: HashSet<u64> = closed
        .iter()
        .map(|e| e["remote"]["port"].as_u64().unwrap())
        .collect();
    let found = clients
        .iter()
        .filter(|p| reported.contains(&u64::from(**p)))
        .count();
    let missed: Vec<&u16> = clients
        .iter()
        .filter(|p| !reported.contains(&u64::from(**p)))
        .collect();
    assert!(
        found * 100 >= clients.len() * 99,
        "{found} of {} connections reported; missed {missed:?} in {lines:#?}",
        clients.len()
    );
    for event in &closed {
        assert_eq!(event["protocol"], "tcp");
        assert_eq!(event["local"]["address"], "127.0.0.1");
        assert_eq!(event["state"], "CLOSE", "{event}");
        let at_least = event["lifetime_ms"]["at_least"].as_f64().unwrap();
        let at_most = event["lifetime_ms"]["at_most"].as_f64().unwrap();
        // Each lived about 5 ms: the bounds hold that, within polls.
        assert!(at_least <= 5.0 && at_most >= 4.0, "{event}");
        assert!(at_most < 4000.0, "{event}");
    }
    // Most lived shorter than a poll: only their close was seen.
    let only_at_close = closed
        .iter()
        .filter(|e| e["seen_only_at_close"] == true)
        .count();
    assert!(only_at_close > 0);
    let summary = lines.last().unwrap();
    assert!(summary["closed"].as_u64().unwrap() >= found as u64);
    assert_eq!(summary["lost"], 0);
}

#[test]
fn a_listener_that_starts_and_stops_is_reported_with_its_holder() {
    if !private_netns("a_listener_that_starts_and_stops_is_reported_with_its_holder") {
        return;
    }
    // No port: every listener.
    let watch = start_watch(&[], &lsport_path(), &["--for", "1500ms"]);
    let listener = tcp4_listener(41001);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    std::thread::sleep(Duration::from_millis(400));
    let pid = u64::from(holder.pid());
    drop(holder);
    let (lines, _, status) = finish(watch);
    assert_eq!(status, Some(0));
    let on_port = |kind| -> Vec<&Value> {
        events(&lines, kind)
            .into_iter()
            .filter(|e| e["local"]["port"] == 41001)
            .collect()
    };
    let (appeared, closed) = (on_port("appeared"), on_port("closed"));
    assert_eq!((appeared.len(), closed.len()), (1, 1), "{lines:?}");
    for event in [appeared[0], closed[0]] {
        assert_eq!(event["role"], "listener");
        assert_eq!(event["holders"][0]["pid"], pid, "{event}");
        assert_eq!(event["holders"][0]["command"], "sleep");
        assert_eq!(event["cookie"], appeared[0]["cookie"]);
    }
    assert_eq!(appeared[0]["state"], "LISTEN");
    assert_eq!(closed[0]["previous_state"], "LISTEN");
    assert_eq!(closed[0]["seen_only_at_close"], false);
    let lifetime = &closed[0]["lifetime_ms"];
    assert!(lifetime["at_most"].as_f64().unwrap() >= 300.0, "{lifetime}");
}

/// Bound-only sockets are looked for once a second: one that lives
/// through many polls is reported once when it appears, not closed in
/// between, and followed when it listens and when it closes.
#[test]
fn a_bound_only_socket_is_followed_between_the_polls_that_look_for_it() {
    if !private_netns("a_bound_only_socket_is_followed_between_the_polls_that_look_for_it") {
        return;
    }
    let watch = start_watch(&[], &lsport_path(), &["--for", "4s", "41005"]);
    let bound = tcp4_bound_only(41005);
    // Long enough for a poll that looks for it (one a second) to find
    // it, and for those that do not to pass.
    std::thread::sleep(Duration::from_millis(2500));
    nix::sys::socket::listen(&bound, nix::sys::socket::Backlog::new(4).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    drop(bound);
    let (lines, _, status) = finish(watch);
    assert_eq!(status, Some(0));
    let on_port: Vec<&Value> = lines
        .iter()
        .filter(|e| e["local"]["port"] == 41005)
        .collect();
    let kinds: Vec<(&str, &str)> = on_port
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("appeared", "BOUND_INACTIVE"),
            ("state", "LISTEN"),
            ("closed", "CLOSE")
        ],
        "{on_port:#?}"
    );
    assert_eq!(on_port[0]["role"], "bound-only");
    assert_eq!(on_port[1]["previous_state"], "BOUND_INACTIVE");
    assert_eq!(on_port[2]["previous_state"], "LISTEN");
    assert_eq!(on_port[2]["seen_only_at_close"], false);
    // Born after the watch began, and closed about 2.9 s after that.
    let lifetime = &on_port[2]["lifetime_ms"];
    let at_most = lifetime["at_most"].as_f64().unwrap();
    assert!(
        lifetime["at_least"].as_f64().unwrap() >= 300.0 && at_most >= 2800.0,
        "{lifetime}"
    );
}

#[test]
fn an_overload_of_closes_is_reported_as_lost_and_the_watch_goes_on() {
    if !private_netns("an_overload_of_closes_is_reported_as_lost_and_the_watch_goes_on") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:41002").unwrap();
    let watch = start_watch(
        &[],
        &lsport_path(),
        &["--for", "6s", "--receive-buffer", "1024", "41002"],
    );
    let mut burst = Vec::new();
    for _ in 0..1000 {
        burst.push(TcpStream::connect("127.0.0.1:41002").unwrap());
        burst.push(listener.accept().unwrap().0);
    }
    drop(burst); // 1000 closes on the port at once
    std::thread::sleep(Duration::from_millis(400));
    // After the burst: still watching. The connection lives long enough
    // for a dump to see it even on a busy machine, whose close is then
    // reported whether its notification fits in the tiny buffer or not.
    let after = connect_briefly(&listener, 41002, Duration::from_millis(1000));
    let (lines, stderr, status) = finish(watch);
    assert_eq!(status, Some(0), "{stderr} {lines:?}");
    let lost = events(&lines, "lost");
    assert!(!lost.is_empty(), "no loss reported");
    assert!(
        lost.iter().any(|l| l["count"].as_u64().unwrap_or(0) > 0),
        "{lost:?}"
    );
    let summary = lines.last().unwrap();
    assert!(summary["lost"].as_u64().unwrap() > 0);
    for kind in ["appeared", "closed"] {
        assert!(
            events(&lines, kind)
                .iter()
                .any(|e| e["remote"]["port"] == after),
            "the connection after the burst: no {kind} event"
        );
    }
}

#[test]
fn another_user_sees_roots_short_lived_connections_with_holders_hidden() {
    if !private_netns("another_user_sees_roots_short_lived_connections_with_holders_hidden") {
        return;
    }
    let dir = OpenTempDir::new("watch-unprivileged");
    let binary = dir.path.join("lsport");
    std::fs::copy(lsport_path(), &binary).unwrap();
    let watch = start_watch(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        &binary,
        &["--for", "1500ms", "41003"],
    );
    let listener = tcp4_listener(41003);
    let _holder = hold(&[listener.as_raw_fd()]);
    let listener = TcpListener::from(listener);
    std::thread::sleep(Duration::from_millis(300));
    let clients: Vec<u16> = (0..10)
        .map(|_| connect_briefly(&listener, 41003, Duration::from_millis(5)))
        .collect();
    let (lines, stderr, status) = finish(watch);
    assert_eq!(status, Some(0), "{stderr}");
    let appeared = events(&lines, "appeared");
    let root_listener = appeared
        .iter()
        .find(|e| e["role"] == "listener" && e["local"]["port"] == 41003)
        .expect("root's listener appeared");
    assert_eq!(root_listener["uid"], 0);
    assert_eq!(root_listener["holders"], Value::Array(Vec::new()));
    assert_eq!(root_listener["holders_hidden"], true);
    let closed: HashSet<u64> = events(&lines, "closed")
        .iter()
        .filter(|e| e["role"] == "accepted")
        .map(|e| e["remote"]["port"].as_u64().unwrap())
        .collect();
    for port in clients {
        assert!(
            closed.contains(&u64::from(port)),
            "connection from {port} unreported"
        );
    }
    assert!(lines.last().unwrap()["hidden_holders"].as_u64().unwrap() >= 1);
    assert!(stderr.contains("hidden from this user"), "{stderr}");
}

#[test]
fn bad_durations_and_all_netns_are_refused_in_one_line() {
    for args in [
        &["watch", "--for", "3 days"][..],
        &["watch", "--interval", "0"],
        &["watch", "--all-netns"],
    ] {
        let output = lsport(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("lsport: "), "{err}");
    }
}

/// The kernel counts as lost only the notifications the watch asks
/// about: a watch of an idle port beside a busy one loses none of the
/// busy port's, and a watch of the busy port counts only its own closes
/// (the server ends), not those of the clients connected to it.
#[test]
fn lost_notifications_are_counted_for_the_watched_ports_only() {
    if !private_netns("lost_notifications_are_counted_for_the_watched_ports_only") {
        return;
    }
    let busy = TcpListener::bind("127.0.0.1:41010").unwrap();
    let _idle = TcpListener::bind("127.0.0.1:41011").unwrap();
    // Both with a receive buffer that holds a couple of notifications.
    let tiny = ["--for", "6s", "--receive-buffer", "1024"];
    let idle_watch = start_watch(&[], &lsport_path(), &[&tiny[..], &["41011"]].concat());
    let busy_watch = start_watch(&[], &lsport_path(), &[&tiny[..], &["41010"]].concat());
    const CONNECTIONS: u64 = 300;
    let mut burst = Vec::new();
    for _ in 0..CONNECTIONS {
        burst.push(TcpStream::connect("127.0.0.1:41010").unwrap());
        burst.push(busy.accept().unwrap().0);
    }
    drop(burst); // 600 closes at once: 300 on port 41010, 300 clients'
    let (idle_lines, stderr, status) = finish(idle_watch);
    assert_eq!(status, Some(1), "nothing happened on 41011: {stderr}");
    let summary = idle_lines.last().unwrap();
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["lost_covers"], "watched_ports");
    assert!(events(&idle_lines, "lost").is_empty(), "{idle_lines:?}");

    let (busy_lines, stderr, status) = finish(busy_watch);
    assert_eq!(status, Some(0), "{stderr}");
    let summary = busy_lines.last().unwrap();
    let lost = summary["lost"].as_u64().unwrap();
    let notified = events(&busy_lines, "closed")
        .iter()
        .filter(|e| e["close_source"] == "notification")
        .count() as u64;
    assert!(lost > 0, "the tiny buffer overflowed: {summary}");
    assert!(
        lost + notified <= CONNECTIONS,
        "{lost} lost and {notified} received of {CONNECTIONS} closes on the port"
    );
    for lost in events(&busy_lines, "lost") {
        assert_eq!(lost["covers"], "watched_ports");
    }
}

/// `lsport watch PORT | head -1` on a quiet port: once head has its line
/// and exits, the watch notices the closed pipe without an event to
/// write, and ends quietly.
#[test]
fn a_watch_whose_reader_went_away_ends_without_waiting_for_an_event() {
    if !private_netns("a_watch_whose_reader_went_away_ends_without_waiting_for_an_event") {
        return;
    }
    let mut child = lsport_command(["watch", "--for", "120s", "41012"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // head -1: one line, then the reading end closes.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("watching"), "{first}");
    drop(stdout);
    // Nothing happens on the port. The watch should end within a poll
    // or two; a minute allows for a loaded machine and still tells it
    // from the two minutes of --for.
    let begin = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if begin.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the watch ran on after its reader had gone");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    // Nothing was reported: 1, as for any watch that saw nothing; and
    // no complaint about the pipe.
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(stderr(&output), "");
}

/// Thousands of peers, each from its own address: the summary names the
/// busiest few and counts the rest in one row, and its memory stays
/// bounded (a table folds its smallest groups together once it fills).
#[test]
fn a_summary_of_many_peers_names_the_busiest_and_counts_the_rest() {
    if !private_netns("a_summary_of_many_peers_names_the_busiest_and_counts_the_rest") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:41020").unwrap();
    let watch = start_watch(&[], &lsport_path(), &["--for", "6s", "41020"]);
    // One busy peer, then 3,000 others of one connection each, each from
    // an address of its own in 127.0.0.0/8.
    let connect_from = |address: std::net::Ipv4Addr| {
        let socket = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let from = nix::sys::socket::SockaddrIn::from(std::net::SocketAddrV4::new(address, 0));
        nix::sys::socket::bind(socket.as_raw_fd(), &from).unwrap();
        let to = nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 41020);
        nix::sys::socket::connect(socket.as_raw_fd(), &to).unwrap();
        let client = TcpStream::from(socket);
        let (server, _) = listener.accept().unwrap();
        drop(client);
        drop(server);
    };
    for _ in 0..50 {
        connect_from(std::net::Ipv4Addr::new(127, 0, 0, 9));
    }
    const PEERS: u32 = 3000;
    for n in 0..PEERS {
        connect_from(std::net::Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8));
    }
    let (lines, stderr, status) = finish(watch);
    assert_eq!(status, Some(0), "{stderr}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["lost"], 0, "a test of the summary, not of losses");
    let remotes = summary["by_remote"].as_array().unwrap();
    assert_eq!(remotes.len(), 20, "the busiest 20 are named");
    assert_eq!(remotes[0]["address"], "127.0.0.9");
    assert_eq!(remotes[0]["sockets"], 50);
    let others = &summary["other_remotes"];
    let named: u64 = remotes.iter().map(|r| r["sockets"].as_u64().unwrap()).sum();
    assert_eq!(
        named + others["sockets"].as_u64().unwrap(),
        50 + u64::from(PEERS),
        "every connection counted: {others}"
    );
    // 3,001 addresses do not fit: the table folded some together, and
    // says how many others there are at least.
    assert_eq!(others["groups_exact"], false, "{others}");
    let groups = others["groups"].as_u64().unwrap();
    assert!((2048 - 20..=3000).contains(&groups), "{others}");
    // The whole summary line stays small.
    let size = serde_json::to_string(summary).unwrap().len();
    assert!(size < 20_000, "a summary line of {size} bytes");
}

/// Connections accepted on a listener that one process alone holds are
/// named as that process's, as likely: most are seen only at close, when
/// the kernel no longer says which process held them. A listener whose
/// connections were seen held elsewhere (handed to another process) is
/// not used to infer.
#[test]
fn accepted_connections_are_given_their_listeners_holder_as_likely() {
    if !private_netns("accepted_connections_are_given_their_listeners_holder_as_likely") {
        return;
    }
    // Held by this test process alone; it accepts and keeps what it
    // accepts, as a server does.
    let listener = TcpListener::bind("127.0.0.1:41021").unwrap();
    // Held by this process too, but its connections go to a child.
    let handing = TcpListener::bind("127.0.0.1:41022").unwrap();
    let watch = start_watch(&[], &lsport_path(), &["--for", "8s", "41021", "41022"]);
    // The listeners' holder is looked for at the start, within a share
    // of the CPU: on a loaded machine that takes a moment.
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..20 {
        connect_briefly(&listener, 41021, Duration::from_millis(2));
    }
    // One handed to a child for long enough to be seen held there (the
    // holder search takes a small share of the time) ...
    let client = TcpStream::connect("127.0.0.1:41022").unwrap();
    let (server, _) = handing.accept().unwrap();
    let child = hold(&[server.as_raw_fd()]);
    drop(server);
    std::thread::sleep(Duration::from_millis(2500));
    drop(child);
    drop(client);
    std::thread::sleep(Duration::from_millis(300));
    // ... then short ones, which no dump sees.
    for _ in 0..10 {
        connect_briefly(&handing, 41022, Duration::from_millis(2));
    }
    let (lines, stderr, status) = finish(watch);
    assert_eq!(status, Some(0), "{stderr}");
    let me = u64::from(std::process::id());
    let accepted = |port: u64| -> Vec<&Value> {
        events(&lines, "closed")
            .into_iter()
            .filter(|e| e["role"] == "accepted" && e["local"]["port"] == port)
            .collect()
    };
    let kept = accepted(41021);
    assert_eq!(kept.len(), 20, "{lines:?}");
    let mut inferred = 0;
    for event in &kept {
        if event["holders"].as_array().unwrap().is_empty() {
            let likely = &event["likely_holder"];
            assert_eq!(likely["pid"], me, "{event}");
            assert_eq!(likely["because"], "sole_listener_holder");
            inferred += 1;
        } else {
            assert_eq!(event["holders"][0]["pid"], me, "{event}");
            assert_eq!(event["likely_holder"], Value::Null);
        }
    }
    assert!(inferred > 0, "none was seen only at close: {kept:?}");
    let handed = accepted(41022);
    assert_eq!(handed.len(), 11, "{lines:?}");
    assert_eq!(
        handed[0]["holders"][0]["command"], "sleep",
        "{:?}",
        handed[0]
    );
    for event in &handed {
        assert_eq!(event["likely_holder"], Value::Null, "{event}");
    }
    // The summary counts the inferred ones with this process, said so.
    let summary = lines.last().unwrap();
    let mine: Vec<&Value> = summary["by_process"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pid"] == me)
        .collect();
    assert_eq!(mine.len(), 1, "{summary}");
    assert_eq!(mine[0]["inferred"], inferred, "{summary}");
}
