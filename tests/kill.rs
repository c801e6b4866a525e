//! `lsport kill` against real processes holding real sockets, each test
//! in its own network namespace: who is signalled (the holders of the
//! port, never a client connected to it), escalation, the dry run,
//! refusals (another user's process, pid 1 of a pid namespace), a
//! respawning listener, and `--sockets`. Every JSON document printed is
//! validated against doc/schema/kill.schema.json.

mod common;

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/schema/kill.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("kill.schema.json compiles")
}

/// `lsport --json kill ARGS`, its document checked against the schema.
fn kill_json(args: &[&str]) -> (Value, Output) {
    let mut all = vec!["--json", "kill"];
    all.extend_from_slice(args);
    let output = lsport(&all);
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "kill {args:?} printed no JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    let validator = validator();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
    (doc, output)
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

fn target(doc: &Value, pid: u32) -> Value {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("no target {pid} in {doc:#}"))
}

/// Whether anything but TIME_WAIT holds `port`, by lsport's probe.
fn held(port: u16) -> bool {
    let output = lsport(["-q", &port.to_string()]);
    output.status.code() == Some(0)
}

#[test]
fn the_holder_of_the_port_is_signalled_and_a_client_connected_to_it_is_not() {
    if !private_netns("kill_spares_clients") {
        return;
    }
    let listener = tcp4_listener(47001);
    let mut server = hold(&[listener.as_raw_fd()]);
    drop(listener);
    // The client's local port is ephemeral; its *remote* port is 47001,
    // which is what `lsof -ti :47001 | xargs kill` would also match.
    let client = TcpStream::connect("127.0.0.1:47001").unwrap();
    let mut client_holder = hold(&[client.as_raw_fd()]);
    drop(client);

    let (doc, output) = kill_json(&["47001"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["outcome"], "freed");
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "only the listener's holder: {doc:#}");
    assert_eq!(targets[0]["pid"], server.pid());
    assert_eq!(targets[0]["result"], "exited");
    assert_eq!(targets[0]["signals_sent"], serde_json::json!(["TERM"]));
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !alive(&mut server.child),
        "the listener's holder was not signalled"
    );
    assert!(alive(&mut client_holder.child), "the client was signalled");
    assert!(!held(47001));
}

#[test]
fn a_holder_that_ignores_term_gets_sigkill_after_the_grace_period() {
    if !private_netns("kill_escalates") {
        return;
    }
    let listener = tcp4_listener(47002);
    // SIG_IGN survives exec: sleep itself ignores TERM.
    let mut command = Command::new("sh");
    command
        .args(["-c", "trap '' TERM; exec sleep 300"])
        .stdin(Stdio::null());
    let mut holder = HeldBy {
        child: spawn_holding(command, listener.as_raw_fd()),
    };
    drop(listener);
    wait_for_comm(holder.pid(), "sleep");

    let started = Instant::now();
    let (doc, output) = kill_json(&["--grace", "1s", "47002"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    let t = target(&doc, holder.pid());
    assert_eq!(t["result"], "killed", "{doc:#}");
    assert_eq!(t["signals_sent"], serde_json::json!(["TERM", "KILL"]));
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL came before the grace period ended: {took:?}"
    );
    assert!(doc["freed_after_ms"].as_u64().unwrap() >= 1000);
    let status = holder.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigkill()));
}

fn libc_sigkill() -> i32 {
    9
}

/// Waits until the process runs `name` (after its shell exec'd it).
fn wait_for_comm(pid: u32, name: &str) {
    for _ in 0..500 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name) {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("{pid} never ran {name}");
}

#[test]
fn a_dry_run_signals_nothing() {
    if !private_netns("kill_dry_run") {
        return;
    }
    let listener = tcp4_listener(47003);
    let mut holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let (doc, output) = kill_json(&["--dry-run", "47003"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["outcome"], "would_free");
    assert_eq!(target(&doc, holder.pid())["result"], "would_signal");
    assert_eq!(
        target(&doc, holder.pid())["signals_sent"],
        serde_json::json!([])
    );
    // -n is --dry-run in this command, as text.
    let text = lsport(["kill", "-n", "47003"]);
    assert_eq!(text.status.code(), Some(0));
    assert!(
        stdout(&text).contains(&format!("would send TERM to pid {}", holder.pid())),
        "{}",
        stdout(&text)
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(&mut holder.child));
    assert!(held(47003));
}

/// Runs the binary as uid 65534 (a copy it may execute), with the given
/// capabilities kept (e.g. "+sys_ptrace,+dac_read_search").
fn lsport_as_nobody(dir: &OpenTempDir, caps: Option<&str>, args: &[&str]) -> Output {
    let binary = dir.path.join("lsport");
    if !binary.exists() {
        std::fs::copy(lsport_path(), &binary).unwrap();
    }
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if let Some(caps) = caps {
        command.arg(format!("--inh-caps={caps}"));
        command.arg(format!("--ambient-caps={caps}"));
    }
    command
        .arg("--")
        .arg(&binary)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    command.output().expect("running setpriv")
}

#[test]
fn another_users_process_is_not_permitted_and_nothing_is_killed() {
    if !private_netns("kill_eperm") {
        return;
    }
    let listener = tcp4_listener(47004);
    let mut holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let dir = OpenTempDir::new("kill-eperm");

    // With the capabilities to read other processes' fds but not to
    // signal them: the holder is seen, and the kernel says EPERM.
    let output = lsport_as_nobody(
        &dir,
        Some("+sys_ptrace,+dac_read_search"),
        &["--json", "kill", "47004"],
    );
    let doc: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(validator().is_valid(&doc), "{doc:#}");
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(target(&doc, holder.pid())["result"], "not_permitted");
    assert_eq!(doc["outcome"], "still_held");

    // Without them the holder is hidden, and said to be.
    let plain = lsport_as_nobody(&dir, None, &["kill", "47004"]);
    assert_eq!(plain.status.code(), Some(4), "{}", stdout(&plain));
    assert!(
        stdout(&plain).contains("hidden from this user"),
        "{}",
        stdout(&plain)
    );
    assert!(stderr(&plain).is_empty(), "{}", stderr(&plain));

    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(&mut holder.child), "root's process was killed");
    assert!(held(47004));
}

#[test]
fn pid_1_of_a_pid_namespace_is_refused() {
    if !private_netns("kill_pid1") {
        return;
    }
    let listener = tcp4_listener(47005);
    // `unshare --pid --fork` makes sleep pid 1 of a new pid namespace.
    let fd = listener.as_raw_fd();
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "sleep", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut unshare = spawn_holding(command, fd);
    drop(listener);
    let sleeper = wait_for_child_named(unshare.id(), "sleep");
    // It would outlive unshare (and this test, should it fail).
    let pid1 = KilledOnDrop(sleeper);

    let (doc, output) = kill_json(&["47005"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    let t = target(&doc, sleeper);
    assert_eq!(t["result"], "refused");
    assert_eq!(t["refusal"], "pid1");
    assert_eq!(t["pid_in_namespace"], 1);
    assert!(
        std::fs::metadata(format!("/proc/{sleeper}")).is_ok(),
        "pid 1 was killed"
    );
    drop(pid1);
    let _ = unshare.kill();
    let _ = unshare.wait();
}

/// Spawns `command` with `fd` kept open across exec as fd 10.
fn spawn_holding(mut command: Command, fd: i32) -> Child {
    pass_fds(&mut command, &[fd]);
    command.spawn().expect("spawning")
}

/// A process that is not the test's child, killed when dropped.
struct KilledOnDrop(u32);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The pid of a child of `parent` running `name`.
fn wait_for_child_named(parent: u32, name: &str) -> u32 {
    for _ in 0..1000 {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
            {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no child {name} of {parent}");
}

#[test]
fn a_listener_restarted_by_a_shell_loop_is_reported_as_respawned() {
    if !private_netns("kill_respawn") {
        return;
    }
    // Each round binds the port afresh in a new python process.
    let script = "import socket,time\n\
        s=socket.socket()\n\
        s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
        s.bind(('127.0.0.1',47006))\n\
        s.listen()\n\
        time.sleep(300)\n";
    let mut looping = Command::new("sh")
        .args(["-c", "while :; do python3 -c \"$0\"; done", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ready = lsport(["wait", "--listening", "--timeout", "20s", "47006"]);
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));

    // Python may take a while to start again on a busy machine.
    let (doc, output) = kill_json(&["--timeout", "10s", "--respawn-window", "10s", "47006"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(doc["outcome"], "respawned", "{doc:#}");
    let respawn = &doc["respawns"][0];
    assert_eq!(respawn["port"], 47006);
    assert_eq!(respawn["parent_pid"], looping.id(), "{doc:#}");
    let text = lsport(["kill", "--respawn-window", "10s", "47006"]);
    assert_eq!(text.status.code(), Some(4));
    assert!(
        stdout(&text).contains("respawned: pid"),
        "{}",
        stdout(&text)
    );
    let _ = looping.kill();
    let _ = looping.wait();
    let _ = lsport(["kill", "47006"]);
}

#[test]
fn sockets_frees_a_port_held_by_a_connection_and_its_process_lives_on() {
    if !private_netns("kill_sockets") {
        return;
    }
    // The server accepted a connection and closed its listener: only the
    // accepted end holds 47007 now.
    let listener = std::net::TcpListener::bind("127.0.0.1:47007").unwrap();
    let client = TcpStream::connect("127.0.0.1:47007").unwrap();
    let (accepted, _) = listener.accept().unwrap();
    drop(listener);
    let mut server = hold(&[accepted.as_raw_fd()]);
    let mut client_holder = hold(&[client.as_raw_fd()]);
    drop((accepted, client));
    assert!(held(47007));
    assert!(
        !binds_without_reuse(47007),
        "the connection does not hold the port"
    );

    let (doc, output) = kill_json(&["--sockets", "47007"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["mode"], "sockets");
    assert_eq!(doc["outcome"], "freed");
    let sockets = doc["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1, "{doc:#}");
    assert_eq!(sockets[0]["result"], "closed");
    assert_eq!(sockets[0]["pids"], serde_json::json!([server.pid()]));
    assert!(alive(&mut server.child) && alive(&mut client_holder.child));
    // Free for real: even a bind() without SO_REUSEADDR succeeds now.
    assert!(binds_without_reuse(47007));
}

/// Whether a TCP socket without SO_REUSEADDR can bind 127.0.0.1:port
/// (std's TcpListener sets SO_REUSEADDR, which would bind beside a
/// connection).
fn binds_without_reuse(port: u16) -> bool {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).is_ok()
}

#[test]
fn a_listener_is_left_to_its_program_with_sockets() {
    if !private_netns("kill_sockets_listener") {
        return;
    }
    let listener = tcp4_listener(47008);
    let mut holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let (doc, output) = kill_json(&["--sockets", "47008"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(doc["sockets"][0]["result"], "bound_by_program");
    assert!(alive(&mut holder.child));
    assert!(held(47008));
}

#[test]
fn nothing_on_the_port_exits_1_and_bad_input_exits_2() {
    if !private_netns("kill_nothing") {
        return;
    }
    let (doc, output) = kill_json(&["47009"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(doc["outcome"], "nothing_held");
    for args in [
        vec!["kill"],
        vec!["kill", "--grace", "soon", "80"],
        vec!["kill", "--signal", "NOPE", "80"],
        vec!["kill", "--all-netns", "80"],
    ] {
        let output = lsport(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lsport: "), "{err}");
    }
}
