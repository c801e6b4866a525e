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
        .with_retriever(common::schema::Siblings)
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
    let text = stdout(&lsport(["kill", "47005"]));
    assert!(
        text.contains("stopping it would end every process of its pid namespace"),
        "{text}"
    );

    // Pid 1 of a container: how to stop the container instead.
    if let Some(mount) = cgroup2_mount("kill_pid1") {
        let id = format!("{:064x}", u128::from(sleeper) << 64 | 0x4b11);
        let scope = CgroupDir::new(&mount, "pid1", &format!("docker-{id}.scope"));
        scope.enter(sleeper);
        let (doc, _) = kill_json(&["47005"]);
        let t = target(&doc, sleeper);
        assert_eq!(t["container"]["runtime"], "docker", "{doc:#}");
        assert_eq!(t["stop_command"], format!("docker stop {}", &id[..12]));
        let text = stdout(&lsport(["kill", "47005"]));
        assert!(
            text.contains(&format!(
                "it is pid 1 of docker container {}: stop that instead, with: docker stop {}",
                &id[..12],
                &id[..12]
            )),
            "{text}"
        );
        drop(pid1);
        let _ = unshare.kill();
        let _ = unshare.wait();
        scope.wait_empty();
        return;
    }
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
    let looping = Group::start(Command::new("sh").args([
        "-c",
        "while :; do python3 -c \"$0\"; done",
        script,
    ]));
    let ready = lsport(["wait", "--listening", "--timeout", "20s", "47006"]);
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));

    // Python may take a while to start again on a busy machine.
    let (doc, output) = kill_json(&["--timeout", "10s", "--respawn-window", "10s", "47006"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(doc["outcome"], "respawned", "{doc:#}");
    let respawn = &doc["respawns"][0];
    assert_eq!(respawn["port"], 47006);
    assert_eq!(respawn["parent_pid"], looping.pid(), "{doc:#}");
    assert_eq!(respawn["inherited"], false, "it opened its own: {doc:#}");
    let text = lsport(["kill", "--respawn-window", "10s", "47006"]);
    assert_eq!(text.status.code(), Some(4));
    assert!(
        stdout(&text).contains("respawned: pid"),
        "{}",
        stdout(&text)
    );
    drop(looping);
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

/// A program started in a process group of its own: the whole group
/// (workers and successors it forks included) is killed when this is
/// dropped, even when the test fails first.
struct Group {
    child: Child,
}

impl Group {
    fn start(command: &mut Command) -> Group {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting a process group");
        Group { child }
    }

    /// `python3 -c CODE ARGS...`.
    fn python(code: &str, args: &[&str]) -> Group {
        Group::start(Command::new("python3").arg("-c").arg(code).args(args))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// Waits until something listens on `port` (TCP).
fn wait_listening(port: u16) {
    let ready = lsport(["wait", "--listening", "--timeout", "30s", &port.to_string()]);
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));
}

/// The children of `pid`, as the kernel lists them.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits until `pid` has `count` children, and returns them.
fn wait_for_children(pid: u32, count: usize) -> Vec<u32> {
    for _ in 0..3000 {
        let children = children_of(pid);
        if children.len() == count {
            return children;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{pid} never had {count} children: {:?}", children_of(pid));
}

fn pids_of(values: &Value) -> Vec<u64> {
    let mut pids: Vec<u64> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pid"].as_u64().unwrap())
        .collect();
    pids.sort_unstable();
    pids
}

/// A master that listens, forks two workers that share its listener,
/// and on SIGHUP reloads as nginx does: two new workers take over the
/// listener and the old ones are told to go. A worker that gets SIGHUP
/// itself writes so to the file named by its second argument.
const RELOADING_MASTER: &str = r#"
import os, signal, socket, sys, time
port, log = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen()
workers = []
def worker_got_hup(*_):
    with open(log, "a") as f:
        f.write("HUP %d\n" % os.getpid())
def spawn():
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGHUP, worker_got_hup)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        while True:
            time.sleep(300)
    workers.append(pid)
def reload(*_):
    old = list(workers)
    workers.clear()
    spawn(); spawn()
    for pid in old:
        os.kill(pid, signal.SIGTERM)
def reap(*_):
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
signal.signal(signal.SIGHUP, reload)
signal.signal(signal.SIGCHLD, reap)
spawn(); spawn()
while True:
    signal.pause()
"#;

#[test]
fn a_reload_signal_goes_to_the_master_only_is_never_escalated_and_the_new_workers_are_named() {
    if !private_netns("kill_reload") {
        return;
    }
    let dir = OpenTempDir::new("kill-reload");
    let log = dir.path.join("worker-hups");
    let master = Group::python(RELOADING_MASTER, &["47011", log.to_str().unwrap()]);
    wait_listening(47011);
    let old_workers = wait_for_children(master.pid(), 2);

    // Escalation, were there any, would come after 1s, while lsport
    // still watches (2s).
    let (doc, output) = kill_json(&[
        "--signal",
        "HUP",
        "--grace",
        "1s",
        "--respawn-window",
        "2s",
        "47011",
    ]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["outcome"], "signalled", "{doc:#}");
    assert_eq!(doc["escalate"], false);
    let m = target(&doc, master.pid());
    assert_eq!(m["signals_sent"], serde_json::json!(["HUP"]), "{doc:#}");
    assert_eq!(m["result"], "still_holding");
    for worker in &old_workers {
        let w = target(&doc, *worker);
        assert_eq!(w["result"], "left_to_parent", "{doc:#}");
        assert_eq!(w["parent_pid"], master.pid());
        assert_eq!(w["signals_sent"], serde_json::json!([]));
    }
    assert!(
        std::fs::read_to_string(&log).unwrap_or_default().is_empty(),
        "a worker got HUP"
    );
    // The new workers are named, with their parent.
    let new_workers = wait_for_children(master.pid(), 2);
    assert!(new_workers.iter().all(|w| !old_workers.contains(w)));
    let respawns = doc["respawns"].as_array().unwrap();
    let mut named: Vec<u64> = respawns
        .iter()
        .map(|r| r["pid"].as_u64().unwrap())
        .collect();
    named.sort_unstable();
    let mut expected: Vec<u64> = new_workers.iter().map(|p| u64::from(*p)).collect();
    expected.sort_unstable();
    assert_eq!(named, expected, "{doc:#}");
    for respawn in respawns {
        assert_eq!(respawn["parent_pid"], master.pid());
        assert_eq!(respawn["inherited"], true);
    }
    let mut holders = expected.clone();
    holders.push(u64::from(master.pid()));
    holders.sort_unstable();
    assert_eq!(pids_of(&doc["remaining"][0]["holders"]), holders, "{doc:#}");
    assert!(
        std::fs::metadata(format!("/proc/{}", master.pid())).is_ok(),
        "the master was killed"
    );

    // As text: the signal as it goes, the holders after it by name.
    let text = lsport(["kill", "--signal", "HUP", "--respawn-window", "1s", "47011"]);
    let out = stdout(&text);
    assert_eq!(text.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("sending HUP to pid {}", master.pid())),
        "{out}"
    );
    assert!(out.contains("new holder since HUP: pid"), "{out}");
    assert!(out.contains("port 47011 is held after HUP:"), "{out}");
    assert!(
        out.contains(&format!("held by pid {} (python3)", master.pid())),
        "{out}"
    );
    assert!(out.contains("lsport sends no KILL after it"), "{out}");
    let (dry, _) = kill_json(&["-n", "--signal", "USR1", "47011"]);
    assert_eq!(dry["outcome"], "would_signal", "{dry:#}");
}

#[test]
fn what_goes_down_with_a_process_is_shown_before_it_is_signalled() {
    if !private_netns("kill_blast_radius") {
        return;
    }
    // Another process's server on 47030, which the holder is a client of.
    let server = tcp4_listener(47030);
    let server_holder = hold(&[server.as_raw_fd()]);
    let first = tcp4_listener(47020);
    let second = tcp4_listener(47021);
    let client = TcpStream::connect("127.0.0.1:47030").unwrap();
    let mut holder = hold(&[first.as_raw_fd(), second.as_raw_fd(), client.as_raw_fd()]);
    drop((server, first, second, client));

    let (doc, output) = kill_json(&["--dry-run", "47020"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(
        target(&doc, holder.pid())["blast_radius"],
        serde_json::json!({
            "also_listening": [{"protocol": "tcp", "port": 47021}],
            "connections": 1,
            "shared_with_parent": false
        }),
        "{doc:#}"
    );
    assert_eq!(target(&doc, holder.pid())["parent_pid"], std::process::id());
    let dry = lsport(["kill", "-n", "47020"]);
    assert!(
        stdout(&dry).contains(
            "it also listens on tcp 47021 and holds 1 connection: they would go down with it"
        ),
        "{}",
        stdout(&dry)
    );

    // --interactive says it before the question.
    let asked = on_a_terminal(&["kill", "-i", "47020"], "n\n");
    assert!(
        asked.contains("it also listens on tcp 47021 and holds 1 connection"),
        "{asked}"
    );
    assert!(
        asked.contains(&format!("send TERM to pid {}? [y/N]", holder.pid())),
        "{asked}"
    );
    assert!(asked.contains("skipped"), "{asked}");
    assert!(alive(&mut holder.child), "signalled after a no");

    // The real run says it before it signals.
    let run = lsport(["kill", "47020"]);
    let out = stdout(&run);
    assert_eq!(run.status.code(), Some(0), "{out}");
    let sending = out
        .find(&format!(
            "sending TERM to pid {} (sleep, root), holding 47020",
            holder.pid()
        ))
        .unwrap_or_else(|| panic!("{out}"));
    let blast = out
        .find("it also listens on tcp 47021 and holds 1 connection: they go down with it")
        .unwrap_or_else(|| panic!("{out}"));
    let sent = out
        .find(&format!("sent TERM to pid {}", holder.pid()))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(sending < blast && blast < sent, "{out}");
    drop(server_holder);
}

/// Runs lsport on a pseudo-terminal (script(1)), with `input` typed in,
/// and returns everything the terminal showed.
fn on_a_terminal(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let line = std::iter::once(lsport_path().to_str().unwrap().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running script(1)");
    script
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = script.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).replace('\r', "")
}

#[test]
fn an_orphaned_connection_is_left_to_the_kernel_and_never_waited_for() {
    if !private_netns("kill_orphan") {
        return;
    }
    sysctl("net.ipv4.tcp_fin_timeout", "20");
    let listener = std::net::TcpListener::bind("127.0.0.1:47040").unwrap();
    let client = TcpStream::connect("127.0.0.1:47040").unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let server = hold(&[listener.as_raw_fd(), accepted.as_raw_fd()]);
    // The client lives on and never closes its end.
    let client_holder = hold(&[client.as_raw_fd()]);
    drop((listener, accepted, client));

    // Were the orphan waited for, this would time out (exit 4).
    let (doc, output) = kill_json(&["--grace", "2s", "--timeout", "2s", "47040"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["outcome"], "freed", "{doc:#}");
    assert_eq!(target(&doc, server.pid())["result"], "exited");
    assert_eq!(doc["orphaned"]["count"], 1, "{doc:#}");
    let left = doc["orphaned"]["last_ends_in_ms"]
        .as_u64()
        .expect("a timer");
    assert!(left <= 20_000, "{doc:#}");
    assert_eq!(doc["remaining"], serde_json::json!([]));

    // Nothing is left to signal: nothing holds the port, and a server
    // that sets SO_REUSEADDR binds beside the orphan.
    let (again, output) = kill_json(&["47040"]);
    assert_eq!(output.status.code(), Some(1), "{again:#}");
    assert_eq!(again["outcome"], "nothing_held");
    assert_eq!(again["orphaned"]["count"], 1, "{again:#}");
    let text = lsport(["kill", "47040"]);
    assert!(
        stdout(&text).contains("closed by its program under a live peer remains: no process holds it, the kernel ends it by itself"),
        "{}",
        stdout(&text)
    );
    drop(tcp4_listener(47040));
    drop((server, client_holder));
}

/// A process whose main thread exits while another thread keeps its
/// listener: its /proc/PID/fd is empty, its threads' tables are not.
/// The first argument is the port, the second the number of the exit
/// system call (it ends the calling thread only).
const LEADER_EXITS: &str = r#"
import ctypes, socket, sys, threading, time
port, sys_exit = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen()
threading.Thread(target=lambda: time.sleep(300)).start()
ctypes.CDLL(None).syscall(sys_exit, 0)
"#;

#[test]
fn a_holder_whose_main_thread_has_exited_is_signalled_through_its_threads() {
    if !private_netns("kill_leader_exited") {
        return;
    }
    let holder = Group::python(LEADER_EXITS, &["47045", &libc::SYS_exit.to_string()]);
    wait_listening(47045);
    // The main thread is gone: its fd table reads empty.
    let fd_dir = format!("/proc/{}/fd", holder.pid());
    for _ in 0..3000 {
        if std::fs::read_dir(&fd_dir).is_ok_and(|mut d| d.next().is_none()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        std::fs::read_dir(&fd_dir).unwrap().next().is_none(),
        "the main thread did not exit"
    );

    let (dry, output) = kill_json(&["-n", "47045"]);
    assert_eq!(output.status.code(), Some(0), "{dry:#}");
    assert_eq!(target(&dry, holder.pid())["result"], "would_signal");
    let (doc, output) = kill_json(&["--signal", "KILL", "47045"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["outcome"], "freed", "{doc:#}");
    let t = target(&doc, holder.pid());
    assert_eq!(t["signals_sent"], serde_json::json!(["KILL"]), "{doc:#}");
    assert_eq!(t["result"], "exited");
    assert!(!held(47045));
}

/// Runs lsport as pid 1 of a new pid namespace with its own /proc: it
/// sees no process but itself, so a socket without a holder is one no
/// process holds, not one whose holder it may not read.
fn lsport_alone(args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(lsport_path())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running unshare")
}

#[test]
fn the_dry_run_predicts_a_port_no_process_holds() {
    if !private_netns("kill_no_process") {
        return;
    }
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    // A listener in flight over a unix socket: the message holds it,
    // no process does.
    let (sender, receiver) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let listener = tcp4_listener(47050);
    send_fd(sender.as_raw_fd(), listener.as_raw_fd());
    drop((listener, sender));
    // A kernel socket: a VXLAN device's UDP port.
    let vxlan = Command::new("ip")
        .args(["link", "add", "vx47051", "type", "vxlan", "id", "47"])
        .args(["dstport", "47051", "local", "127.0.0.1", "dev", "lo"])
        .status()
        .unwrap();
    let up = Command::new("ip")
        .args(["link", "set", "vx47051", "up"])
        .status()
        .unwrap();
    let mut ports = vec!["47050"];
    if vxlan.success() && up.success() {
        ports.push("47051");
    } else {
        eprintln!("kill_no_process: no VXLAN device here; the kernel socket is not tried");
    }
    for port in ports {
        let dry = lsport_alone(&["--json", "kill", "-n", port]);
        let doc: Value = serde_json::from_slice(&dry.stdout).expect("JSON");
        assert!(validator().is_valid(&doc), "{doc:#}");
        assert_eq!(dry.status.code(), Some(4), "{port}: {doc:#}");
        assert_eq!(doc["outcome"], "would_not_free", "{doc:#}");
        let real = lsport_alone(&["--json", "kill", port]);
        let doc: Value = serde_json::from_slice(&real.stdout).expect("JSON");
        assert!(validator().is_valid(&doc), "{doc:#}");
        assert_eq!(real.status.code(), Some(4), "{port}: {doc:#}");
        assert_eq!(doc["outcome"], "still_held", "{doc:#}");
        assert_eq!(doc["remaining"][0]["holders"], serde_json::json!([]));
        assert_eq!(doc["remaining"][0]["holders_hidden"], false, "{doc:#}");
        let text = lsport_alone(&["kill", "-n", port]);
        assert!(
            stdout(&text).contains("no process in sight holds it"),
            "{}",
            stdout(&text)
        );
    }
    drop(receiver);
}

/// On SIGTERM, forks a successor that keeps the listener, and exits.
const FORKS_ON_TERM: &str = r#"
import os, signal, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
def successor(*_):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(300)
    os._exit(0)
signal.signal(signal.SIGTERM, successor)
while True:
    signal.pause()
"#;

#[test]
fn a_successor_forked_on_term_is_named() {
    if !private_netns("kill_successor") {
        return;
    }
    let holder = Group::python(FORKS_ON_TERM, &["47055"]);
    wait_listening(47055);
    let (doc, output) = kill_json(&["--respawn-window", "0", "47055"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(doc["outcome"], "respawned", "{doc:#}");
    assert_eq!(target(&doc, holder.pid())["result"], "exited");
    let respawn = &doc["respawns"][0];
    assert_eq!(respawn["inherited"], true, "{doc:#}");
    assert_eq!(respawn["command"], "python3");
    let successor = respawn["pid"].as_u64().unwrap();
    assert_ne!(successor, u64::from(holder.pid()));
    assert_eq!(
        pids_of(&doc["remaining"][0]["holders"]),
        vec![successor],
        "{doc:#}"
    );
    // The probe agrees on who holds it now.
    let (probe, _) = lsport_json(&["47055"]);
    assert_eq!(probe["sockets"][0]["holders"][0]["pid"], successor);
    drop(holder);
    // As text, with another one: each signal as it goes, and the
    // successor by name.
    let other = Group::python(FORKS_ON_TERM, &["47056"]);
    wait_listening(47056);
    let text = lsport(["kill", "--respawn-window", "0", "47056"]);
    let out = stdout(&text);
    assert_eq!(text.status.code(), Some(4), "{out}");
    assert!(
        out.contains(&format!("sending TERM to pid {} (python3", other.pid())),
        "{out}"
    );
    assert!(
        out.contains("holds port 47056 on a socket it took over"),
        "{out}"
    );
    assert!(out.contains("port 47056 was taken again:"), "{out}");
}

#[test]
fn a_range_frees_listeners_and_leaves_clients_and_asks_when_wide() {
    if !private_netns("kill_range") {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    let listener = std::net::TcpListener::bind("127.0.0.1:40010").unwrap();
    // The client's port is chosen by the kernel inside the range asked.
    let client = TcpStream::connect("127.0.0.1:40010").unwrap();
    assert!((40000..=40099).contains(&client.local_addr().unwrap().port()));
    let (accepted, _) = listener.accept().unwrap();
    let mut server = hold(&[listener.as_raw_fd(), accepted.as_raw_fd()]);
    let mut client_holder = hold(&[client.as_raw_fd()]);
    let udp = std::net::UdpSocket::bind("127.0.0.1:40020").unwrap();
    let mut udp_holder = hold(&[udp.as_raw_fd()]);
    drop((listener, accepted, client, udp));

    // 100 ports: wide. Not on a terminal and without --yes, nothing goes.
    let (doc, output) = kill_json(&["40000-40099"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(doc["outcome"], "not_confirmed", "{doc:#}");
    assert_eq!(doc["wide"], true);
    let mut targets = pids_of(&doc["targets"]);
    let mut expected = vec![u64::from(server.pid()), u64::from(udp_holder.pid())];
    expected.sort_unstable();
    targets.sort_unstable();
    assert_eq!(targets, expected, "only the listeners' holders: {doc:#}");
    assert_eq!(doc["left_alone"], 1, "{doc:#}");
    let text = lsport(["kill", "40000-40099"]);
    assert!(
        stdout(&text).contains("not done: 100 ports asked, more than a handful (10)"),
        "{}",
        stdout(&text)
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(&mut server.child) && alive(&mut udp_holder.child));

    // Connections only when asked for.
    let (with, _) = kill_json(&["-n", "--with-connections", "40000-40099"]);
    assert_eq!(
        target(&with, client_holder.pid())["result"],
        "would_signal",
        "{with:#}"
    );

    // On a terminal it asks once; no is no.
    let refused = on_a_terminal(&["kill", "40000-40099"], "n\n");
    assert!(refused.contains("send TERM to 2 processes"), "{refused}");
    assert!(alive(&mut server.child) && alive(&mut udp_holder.child));

    let (doc, output) = kill_json(&["--yes", "40000-40099"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["outcome"], "freed", "{doc:#}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(&mut server.child) && !alive(&mut udp_holder.child));
    assert!(alive(&mut client_holder.child), "the client was signalled");
}

#[test]
fn more_than_a_handful_of_processes_is_wide_on_one_port() {
    if !private_netns("kill_many_processes") {
        return;
    }
    let listener = tcp4_listener(47060);
    let mut holders: Vec<HeldBy> = (0..11).map(|_| hold(&[listener.as_raw_fd()])).collect();
    drop(listener);
    let (dry, output) = kill_json(&["-n", "47060"]);
    assert_eq!(output.status.code(), Some(0), "{dry:#}");
    assert_eq!(dry["wide"], true);
    let (doc, output) = kill_json(&["47060"]);
    assert_eq!(output.status.code(), Some(4), "{doc:#}");
    assert_eq!(doc["outcome"], "not_confirmed");
    assert!(holders.iter_mut().all(|h| alive(&mut h.child)));
    let (doc, output) = kill_json(&["-y", "47060"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(holders.iter_mut().all(|h| !alive(&mut h.child)));
}

#[test]
fn a_dry_run_of_sockets_says_when_the_kernel_would_refuse() {
    if !private_netns("kill_sockets_eperm") {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:47065").unwrap();
    let client = TcpStream::connect("127.0.0.1:47065").unwrap();
    let (accepted, _) = listener.accept().unwrap();
    drop(listener);
    let server = hold(&[accepted.as_raw_fd()]);
    let client_holder = hold(&[client.as_raw_fd()]);
    drop((accepted, client));
    // Root without CAP_NET_ADMIN.
    let without = |args: &[&str]| {
        let output = Command::new("setpriv")
            .args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
            .arg("--")
            .arg(lsport_path())
            .args(args)
            .env_clear()
            .output()
            .expect("running setpriv");
        let doc: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert!(validator().is_valid(&doc), "{doc:#}");
        (doc, output)
    };
    let (dry, output) = without(&["--json", "kill", "--sockets", "-n", "47065"]);
    assert_eq!(output.status.code(), Some(4), "{dry:#}");
    assert_eq!(dry["outcome"], "would_not_free");
    assert_eq!(dry["sockets"][0]["result"], "would_fail", "{dry:#}");
    assert_eq!(dry["sockets"][0]["errno"], libc::EPERM);
    let (real, output) = without(&["--json", "kill", "--sockets", "47065"]);
    assert_eq!(output.status.code(), Some(4), "{real:#}");
    assert_eq!(real["sockets"][0]["result"], "failed");
    assert_eq!(real["sockets"][0]["errno"], libc::EPERM);
    // With it, the dry run says it would close it.
    let (able, output) = kill_json(&["--sockets", "-n", "47065"]);
    assert_eq!(output.status.code(), Some(0), "{able:#}");
    assert_eq!(able["sockets"][0]["result"], "would_close");
    drop((server, client_holder));
}

/// The cgroup v2 mount, or None after saying why (a failure with
/// LSPORT_REQUIRE_NETNS=1, as the namespace tests do).
fn cgroup2_mount(test: &str) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let point = before.split(' ').nth(4)?;
        after
            .starts_with("cgroup2 ")
            .then(|| std::path::PathBuf::from(point))
    });
    if mount.is_none() {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: no cgroup v2 mount, and LSPORT_REQUIRE_NETNS is set");
        }
        eprintln!("SKIPPED part of {test}: no cgroup v2 mount");
    }
    mount
}

/// `lsport-kill-TAG-PID.slice/LEAF` under the cgroup v2 mount, removed
/// on drop once its processes are gone.
struct CgroupDir {
    leaf: std::path::PathBuf,
}

impl CgroupDir {
    fn new(mount: &Path, tag: &str, leaf: &str) -> CgroupDir {
        let slice = mount.join(format!("lsport-kill-{tag}-{}.slice", std::process::id()));
        let leaf = slice.join(leaf);
        std::fs::create_dir_all(&leaf).unwrap_or_else(|e| panic!("mkdir {}: {e}", leaf.display()));
        CgroupDir { leaf }
    }

    fn enter(&self, pid: u32) {
        std::fs::write(self.leaf.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.leaf.display()));
    }

    /// Waits until the processes that were in it are gone.
    fn wait_empty(&self) {
        for _ in 0..1000 {
            let procs = std::fs::read_to_string(self.leaf.join("cgroup.procs")).unwrap_or_default();
            if procs.trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        for _ in 0..200 {
            if std::fs::remove_dir(&self.leaf).is_ok() || !self.leaf.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir(self.leaf.parent().unwrap());
    }
}

#[test]
fn a_holder_in_a_systemd_unit_comes_with_how_to_stop_the_unit() {
    if !private_netns("kill_unit") {
        return;
    }
    let Some(mount) = cgroup2_mount("kill_unit") else {
        return;
    };
    let listener = tcp4_listener(47070);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let unit = format!("web-{}.service", holder.pid());
    let cgroup = CgroupDir::new(&mount, "unit", &unit);
    cgroup.enter(holder.pid());

    let (doc, output) = kill_json(&["-n", "47070"]);
    assert_eq!(output.status.code(), Some(0), "{doc:#}");
    let t = target(&doc, holder.pid());
    assert_eq!(t["container"]["runtime"], "systemd", "{doc:#}");
    assert_eq!(t["stop_command"], format!("systemctl stop {unit}"));
    let text = stdout(&lsport(["kill", "-n", "47070"]));
    assert!(
        text.contains(&format!(
            "it runs under systemd unit {unit}, which may start it again; to stop it for good: systemctl stop {unit}"
        )),
        "{text}"
    );
    drop(holder);
    cgroup.wait_empty();
}

/// Sends `fd` over the unix socket `over` (SCM_RIGHTS), with one byte.
fn send_fd(over: i32, fd: i32) {
    let mut byte = [b'x'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: a zeroed msghdr is valid; its pointers are set below to
    // buffers that outlive the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space as _;
    // SAFETY: the control buffer holds one header and one fd, as
    // CMSG_SPACE sized it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<i32>(), fd);
        assert_eq!(libc::sendmsg(over, &message, 0), 1, "sendmsg");
    }
}

/// Listens, and on SIGTERM writes so to the file named by its second
/// argument and lives on.
const NOTES_TERM: &str = r#"
import signal, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
def note(*_):
    with open(sys.argv[2], "a") as f:
        f.write("TERM\n")
signal.signal(signal.SIGTERM, note)
while True:
    signal.pause()
"#;

#[test]
fn an_interrupted_kill_reports_the_signals_it_sent() {
    if !private_netns("kill_interrupted") {
        return;
    }
    let dir = OpenTempDir::new("kill-interrupted");
    let got = dir.path.join("got-term");
    let holder = Group::python(NOTES_TERM, &["47075", got.to_str().unwrap()]);
    wait_listening(47075);

    for json in [true, false] {
        let _ = std::fs::remove_file(&got);
        let mut args = vec!["kill", "--grace", "60s", "47075"];
        if json {
            args.insert(0, "--json");
        }
        let running = lsport_command(&args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..6000 {
            if got.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(got.exists(), "TERM never came");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(running.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let output = running.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
        if json {
            let doc: Value = serde_json::from_slice(&output.stdout).expect("JSON");
            assert!(validator().is_valid(&doc), "{doc:#}");
            assert_eq!(doc["outcome"], "interrupted");
            assert_eq!(doc["targets"].as_array().unwrap().len(), 1, "{doc:#}");
            assert_eq!(
                target(&doc, holder.pid())["signals_sent"],
                serde_json::json!(["TERM"])
            );
        } else {
            let out = stdout(&output);
            assert!(out.contains("sending TERM to pid"), "{out}");
            assert!(
                out.contains("port 47075 is still held (interrupted):"),
                "{out}"
            );
        }
    }
}
