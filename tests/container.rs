//! The static binary in a minimal container: alone in an otherwise empty
//! root (no /etc, no libraries, no loader), with a fresh /proc, inside a
//! private network namespace that holds known sockets. This stands in for
//! a `FROM scratch` image (packaging/Containerfile), which no container
//! engine here can build.
//!
//! LSPORT_STATIC_BIN names the static binary (.ci/run builds it with
//! packaging/build and sets it); without it the test says so and skips.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn static_binary(test: &str) -> Option<PathBuf> {
    match std::env::var_os("LSPORT_STATIC_BIN") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: LSPORT_STATIC_BIN is not set (packaging/build makes the binary)"
            );
            None
        }
    }
}

/// A root that holds the binary as /lsport and an empty /proc to mount
/// on, and nothing else.
fn empty_root(binary: &Path, tag: &str) -> OpenTempDir {
    let root = OpenTempDir::new(tag);
    std::fs::copy(binary, root.path.join("lsport")).expect("copying the static binary");
    std::fs::create_dir(root.path.join("proc")).unwrap();
    let mut entries: Vec<String> = std::fs::read_dir(&root.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["lsport", "proc"]);
    root
}

/// Runs /lsport in `root` with a fresh /proc. With `own_pids` it also
/// gets its own pid namespace, as in a container run without --pid=host.
fn run_in_root(root: &Path, own_pids: bool, args: &[&str]) -> Output {
    let mut command = Command::new("unshare");
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if own_pids {
        command.args(["--fork", "--pid"]);
    }
    command
        .arg("--mount")
        .arg(format!("--root={}", root.display()))
        .arg("--mount-proc")
        .arg("/lsport")
        .args(args);
    command.output().expect("running unshare(1)")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", stdout(output), stderr(output)))
}

/// Port policy the tests set in their namespace, so that the answers can
/// only come from this namespace's /proc/sys.
fn set_port_policy() {
    sysctl("net.ipv4.ip_local_port_range", "40000 50001");
    sysctl("net.ipv4.ip_local_reserved_ports", "45010,45020-45029");
    sysctl("net.ipv4.ip_unprivileged_port_start", "2000");
}

fn assert_port_policy(doc: &serde_json::Value) {
    let netns = &doc["netns"];
    assert_eq!(netns["ephemeral_range"], serde_json::json!([40000, 50001]));
    assert_eq!(netns["ephemeral_range_assumed"], false);
    assert_eq!(
        netns["reserved_ports"],
        serde_json::json!([[45010, 45010], [45020, 45029]])
    );
    assert_eq!(netns["unprivileged_port_start"], 2000);
}

#[test]
fn alone_in_an_empty_root_it_finds_sockets_holders_and_facts() {
    // One test, not several: a test thread that forks while another one
    // writes the binary's copy would hand the child a writable descriptor
    // for it, and exec would fail with ETXTBSY.
    let test = "alone_in_an_empty_root_it_finds_sockets_holders_and_facts";
    let Some(binary) = static_binary(test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    set_port_policy();
    let listener = tcp4_listener(45001);
    let bound = tcp4_bound_only(45003);
    let udp = std::net::UdpSocket::bind("127.0.0.1:45021").unwrap();
    let holder = hold(&[listener.as_raw_fd(), bound.as_raw_fd(), udp.as_raw_fd()]);
    // Only the holder keeps them.
    drop((listener, bound, udp));
    let root = empty_root(&binary, "container");

    // As with --pid=host: the container sees the host's processes.
    let output = run_in_root(
        &root.path,
        false,
        &["--json", "45001", "45003", "45021", "45002"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert_port_policy(&doc);
    let ports = doc["ports"].as_array().unwrap();
    let facts: Vec<(u64, bool, bool, bool, bool)> = ports
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["in_use"].as_bool().unwrap(),
                p["ephemeral"].as_bool().unwrap(),
                p["reserved"].as_bool().unwrap(),
                p["privileged"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        facts,
        [
            (45001, true, true, false, false),
            (45003, true, true, false, false),
            (45021, true, true, true, false),
            (45002, false, true, false, false),
        ]
    );

    let expected = [
        (45001, "tcp", "LISTEN", "listener", FIRST_HELD_FD),
        (
            45003,
            "tcp",
            "BOUND_INACTIVE",
            "bound-only",
            FIRST_HELD_FD + 1,
        ),
        (45021, "udp", "CLOSE", "listener", FIRST_HELD_FD + 2),
    ];
    for (port, protocol, state, role, fd) in expected {
        let sockets = sockets_on(&doc, port);
        assert_eq!(sockets.len(), 1, "{port}: {sockets:?}");
        let socket = &sockets[0];
        assert_eq!(socket["protocol"], protocol, "{port}");
        assert_eq!(socket["state"], state, "{port}");
        assert_eq!(socket["role"], role, "{port}");
        assert_eq!(
            holder_pids(socket),
            [(u64::from(holder.pid()), fd as u64)],
            "{port}"
        );
        // No /etc/passwd in the root: the user is a number only.
        let held = &socket["holders"][0];
        assert_eq!(held["uid"], 0, "{port}");
        assert_eq!(held["user"], serde_json::Value::Null, "{port}");
        assert_eq!(held["command"], "sleep", "{port}");
    }

    // The table shows the uid in the USER column.
    let output = run_in_root(&root.path, false, &["45001"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = stdout(&output);
    let row = table
        .lines()
        .find(|line| line.starts_with("tcp ") && line.contains(":45001"))
        .unwrap_or_else(|| panic!("no row for 45001 in:\n{table}"));
    // PID, USER and FD, found by the header (no cell before ARGS has a space).
    let header: Vec<&str> = table
        .lines()
        .find(|line| line.starts_with("PROTO"))
        .unwrap()
        .split_whitespace()
        .collect();
    let pid_column = header.iter().position(|h| *h == "PID").unwrap();
    assert_eq!(header[pid_column + 1..pid_column + 3], ["USER", "FD"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[pid_column..pid_column + 3],
        [holder.pid().to_string().as_str(), "0", "10"],
        "{row}"
    );

    // A free port: exit 1, and the facts still come from this namespace.
    let output = run_in_root(&root.path, false, &["45002"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("Port 45002 is FREE"), "{text}");
    assert!(text.contains("ephemeral range 40000-50001"), "{text}");

    // As in a container with --net=host but not --pid=host: the holder
    // lives in a pid namespace lsport cannot see into.
    let output = run_in_root(&root.path, true, &["--json", "45001"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert_port_policy(&doc);
    assert_eq!(doc["ports"][0]["in_use"], true);
    let sockets = sockets_on(&doc, 45001);
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    assert_eq!(sockets[0]["role"], "listener");
    assert_eq!(sockets[0]["holders"], serde_json::json!([]));

    let output = run_in_root(&root.path, true, &["-q", "45002"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());

    let output = run_in_root(&root.path, true, &["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output).trim(),
        format!("lsport {}", env!("CARGO_PKG_VERSION"))
    );
    drop(holder);
}
