//! What a new user notices first: names rather than numbers, counts
//! that match the table, the risky mark wherever a risky socket shows.

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;

use common::*;

fn setup(test: &str) -> bool {
    if !private_netns(test) {
        return false;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "");
    true
}

#[test]
fn a_risky_listener_is_marked_in_the_port_view_too() {
    if !setup("a_risky_listener_is_marked_in_the_port_view_too") {
        return;
    }
    let listener = tcp4_listener(40010);
    let _holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    for args in [&["40010"][..], &[]] {
        let text = stdout(&lsport(args));
        let row = text
            .lines()
            .find(|l| l.contains("127.0.0.1:40010"))
            .unwrap_or_else(|| panic!("{args:?}: {text}"));
        assert!(row.contains("listener!"), "{args:?}: {text}");
        assert!(text.contains("(marked !)"), "{args:?}: {text}");
    }
}

#[test]
fn the_count_says_when_the_table_has_a_line_per_holder() {
    if !setup("the_count_says_when_the_table_has_a_line_per_holder") {
        return;
    }
    let listener = tcp4_listener(8080);
    let _first = hold(&[listener.as_raw_fd()]);
    let _second = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let text = stdout(&lsport(["-t"]));
    assert!(
        text.contains(": 1 socket in 2 lines, one per holder."),
        "{text}"
    );
    let table_lines = text
        .lines()
        .filter(|l| l.contains("127.0.0.1:8080"))
        .count();
    assert_eq!(table_lines, 2, "{text}");
}

#[test]
fn a_hidden_holders_owner_is_named() {
    if !setup("a_hidden_holders_owner_is_named") {
        return;
    }
    let listener = tcp4_listener(8081);
    let _holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    // Root without CAP_SYS_PTRACE cannot read the holder's fds.
    let output = lsport_without_ptrace(&["-o", "local,user,command", "8081"]);
    let text = stdout(&output);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.contains(":8081"))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "127.0.0.1:8081",
            "root",
            "(hidden)",
            "owned",
            "by",
            "uid",
            "0",
            "(root)"
        ],
        "{text}"
    );
    // -n keeps the number.
    let output = lsport_without_ptrace(&["-n", "-o", "local,user", "8081"]);
    assert!(
        stdout(&output)
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["127.0.0.1:8081", "0"]),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_namespace_entered_by_pid_or_by_ip_netns_exec_is_named() {
    if !nix::unistd::geteuid().is_root() {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("needs root for ip netns add, and LSPORT_REQUIRE_NETNS is set");
        }
        eprintln!("SKIPPED a_namespace_entered_by_pid_or_by_ip_netns_exec_is_named: needs root");
        return;
    }
    let name = format!("lsport-test-{}", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(added.success());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _remove = Remove(name.clone());
    let output = Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(lsport_path())
        .args(["--json", "9"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["netns"]["name"], name.as_str(), "inside ip netns exec");

    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "30"])
        .spawn()
        .unwrap();
    // Wait until the sleeper is inside the namespace.
    let pid = sleeper.id();
    for _ in 0..200 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (doc, _) = lsport_json(&["--netns", &pid.to_string(), "9"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(doc["netns"]["name"], name.as_str(), "--netns PID");
}

#[test]
fn on_a_terminal_lines_fit_its_width_and_wide_shows_them_whole() {
    if !setup("on_a_terminal_lines_fit_its_width_and_wide_shows_them_whole") {
        return;
    }
    let listener = tcp4_listener(8082);
    // A long command line: sleep adds up all its arguments.
    let zeros: Vec<&str> = std::iter::repeat_n("0", 60).collect();
    let mut args = vec!["300"];
    args.extend(&zeros);
    let _holder = hold_running(
        std::path::Path::new("sleep"),
        &args,
        &[listener.as_raw_fd()],
    );
    drop(listener);
    // script(1) gives lsport a terminal 60 columns wide.
    let on_terminal = |extra: &str| {
        let inner = format!(
            "stty cols 60; {} --color never {extra} 8082",
            lsport_path().display()
        );
        let output = Command::new("script")
            .args(["-qfec", &inner, "/dev/null"])
            .output()
            .expect("running script(1)");
        String::from_utf8_lossy(&output.stdout).replace('\r', "")
    };
    let text = on_terminal("");
    let row = text
        .lines()
        .find(|l| l.contains("127.0.0.1:8082"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.chars().count(), 60, "{text}");
    assert!(row.ends_with('…'), "{text}");
    let text = on_terminal("-W");
    let row = text
        .lines()
        .find(|l| l.contains("127.0.0.1:8082"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.ends_with(&zeros.join(" ")), "{text}");
    // Not on a terminal: whole lines.
    let piped = stdout(&lsport(["8082"]));
    assert!(piped.contains(&zeros.join(" ")), "{piped}");
}

#[test]
fn invisible_characters_in_a_command_name_are_shown_escaped() {
    if !setup("invisible_characters_in_a_command_name_are_shown_escaped") {
        return;
    }
    // A line separator, an Arabic letter mark and a soft hyphen: each
    // would hide or break the table on a terminal.
    let dir = common::OpenTempDir::new("invisible");
    let name = dir.path.join("a\u{2028}b\u{61c}c\u{ad}");
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(sleep, &name).unwrap();
    let listener = tcp4_listener(8083);
    let _holder = hold_with(&name, &[listener.as_raw_fd()]);
    drop(listener);
    let output = lsport(["8083"]);
    let text = stdout(&output);
    for raw in ['\u{2028}', '\u{61c}', '\u{ad}'] {
        assert!(!text.contains(raw), "{raw:?} reached the table: {text:?}");
    }
    assert!(text.contains("a\\u{2028}b\\u{61c}c\\u{ad}"), "{text}");
}

#[test]
fn a_socket_without_a_holder_says_why_it_has_none() {
    if !setup("a_socket_without_a_holder_says_why_it_has_none") {
        return;
    }
    // TIME_WAIT: the side that closes first keeps it.
    let listener = std::net::TcpListener::bind("127.0.0.1:8084").unwrap();
    let client = std::net::TcpStream::connect("127.0.0.1:8084").unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(server);
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(client);
    drop(listener);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let text = stdout(&lsport(["8084"]));
    assert!(
        text.contains("in TIME_WAIT, which no process holds"),
        "{text}"
    );
    assert!(!text.contains("held from another pid namespace"), "{text}");
}

#[test]
fn a_missing_namespace_is_said_as_such() {
    let output = lsport(["--netns", "999999999", "80"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no such process 999999999"),
        "{}",
        stderr(&output)
    );
    let output = lsport(["--netns", "lsport-no-such-name", "80"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no such network namespace"),
        "{}",
        stderr(&output)
    );
}
