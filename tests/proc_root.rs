//! lsport on a fixture tree instead of the live /proc: the /proc/net
//! tables captured on a real machine, sysctl files, and processes made of
//! directories with `socket:[N]` links. Every read must go through the
//! root, or these answers could not come out.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc/net");

fn write(path: &Path, contents: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn process(root: &Path, pid: u32, comm: &str, cmdline: &[&str], uid: u32, fds: &[(u32, u64)]) {
    let dir = root.join(pid.to_string());
    write(&dir.join("comm"), format!("{comm}\n").as_bytes());
    let mut raw = Vec::new();
    for arg in cmdline {
        raw.extend_from_slice(arg.as_bytes());
        raw.push(0);
    }
    write(&dir.join("cmdline"), &raw);
    // A whole status file, as Linux 6.x writes it.
    write(
        &dir.join("status"),
        format!(
            "Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\n\
             Pid:\t{pid}\nPPid:\t1\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
             Gid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t \nNStgid:\t{pid}\nNSpid:\t{pid}\n\
             Threads:\t1\nSigQ:\t0/96365\nSigPnd:\t0000000000000000\n\
             ShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n\
             SigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n\
             CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
             CapEff:\t0000000000000000\n"
        )
        .as_bytes(),
    );
    std::fs::create_dir_all(dir.join("fd")).unwrap();
    for (fd, inode) in fds {
        symlink(
            format!("socket:[{inode}]"),
            dir.join("fd").join(fd.to_string()),
        )
        .unwrap();
    }
    // Not a socket: must be passed over.
    symlink("/dev/null", dir.join("fd").join("0")).unwrap();
}

/// The tree: the captured tables (plus one line no kernel writes), a
/// port policy unlike any real default, and two processes.
fn tree(tag: &str) -> OpenTempDir {
    let dir = OpenTempDir::new(tag);
    let root = &dir.path;
    for name in ["tcp", "tcp6", "udp", "udp6"] {
        let mut text = std::fs::read(Path::new(FIXTURES).join(name)).unwrap();
        if name == "tcp" {
            text.extend_from_slice(b"  99: this line is not a socket\n");
        }
        write(&root.join("net").join(name), &text);
    }
    let sys = root.join("sys/net/ipv4");
    write(&sys.join("ip_local_port_range"), b"8000\t8999\n");
    write(&sys.join("ip_local_reserved_ports"), b"8443\n");
    write(&sys.join("ip_unprivileged_port_start"), b"80\n");
    std::fs::create_dir_all(root.join("self/ns")).unwrap();
    symlink("net:[4026599999]", root.join("self/ns/net")).unwrap();
    // The listener on 127.0.0.1:8080 and its accepted connection.
    process(
        root,
        4242,
        "web",
        &["web", "--port", "8080"],
        1000,
        &[(3, 21732), (7, 21737)],
    );
    // The client end of that connection, and a UDP socket.
    process(
        root,
        5151,
        "curl",
        &["curl", "http://127.0.0.1:8080/"],
        0,
        &[(5, 21736), (6, 21745)],
    );
    dir
}

fn run(root: &Path, args: &[&str]) -> std::process::Output {
    lsport_command(["--source", "proc", "--proc-root"])
        .arg(root)
        .args(args)
        // Only IANA's names: the machine's /etc/services is not part of the fixture.
        .env("LSPORT_SERVICES_FILE", root.join("no-services-file"))
        .output()
        .unwrap()
}

/// (pid, fd) of each holder.
type Holders = Vec<(u64, u64)>;

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)))
}

#[test]
fn a_fixture_tree_answers_who_holds_a_port() {
    let dir = tree("fixture-port");
    let output = run(&dir.path, &["--json", "-n", "8080"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output).trim(),
        "lsport: 1 /proc/net lines could not be decoded and were skipped"
    );
    let doc = json(&output);
    assert_eq!(doc["source"], "proc");
    assert_eq!(
        doc["blind_spots"],
        json!(["tcp_bound_only", "v6only", "autobound"])
    );
    assert_eq!(
        doc["netns"],
        json!({"inode": 4026599999u64, "name": null, "container": null,
               "ephemeral_range": [8000, 8999],
               "ephemeral_range_assumed": false, "reserved_ports": [[8443, 8443]],
               "reserved_ports_assumed": false,
               "unprivileged_port_start": 80, "unprivileged_port_start_assumed": false,
               "port_settings_read_from": "proc"})
    );
    let mut ports = doc["ports"].clone();
    let services = ports[0]
        .as_object_mut()
        .unwrap()
        .remove("services")
        .unwrap();
    assert_eq!(
        ports,
        json!([{"port": 8080, "iana_range": "user", "ephemeral": true, "reserved": false,
                 "privileged": false, "in_use": true, "verdict": "in_use", "forwards": [],
                 "undecoded_rules": [],
                 "netns": {"inode": 4026599999u64, "name": null, "container": null}}])
    );
    assert_eq!(services[0]["name"], "http-alt");
    let sockets = doc["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 2, "{sockets:#?}");
    assert_eq!(sockets[0]["state"], "LISTEN");
    assert_eq!(sockets[0]["role"], "listener");
    assert_eq!(sockets[0]["inode"], 21732);
    assert_eq!(sockets[0]["risky"], true);
    assert_eq!(
        sockets[0]["holders"],
        json!([{"pid": 4242, "command": "web", "cmdline": ["web", "--port", "8080"],
                 "user": null, "uid": 1000, "fd": 3, "pid_in_namespace": null,
                 "container": null, "proxy": null}])
    );
    assert_eq!(sockets[1]["state"], "ESTABLISHED");
    assert_eq!(sockets[1]["role"], "accepted");
    assert_eq!(
        sockets[1]["remote"],
        json!({"address": "127.0.0.1", "port": 41352})
    );
    assert_eq!(holder_pids(&sockets[1]), vec![(4242, 7)]);
}

#[test]
fn remote_matches_and_the_environment_variable_work_too() {
    let dir = tree("fixture-remote");
    let output = lsport_command(["--source", "proc", "--json", "--remote", "8080"])
        .env("LSPORT_PROC_ROOT", &dir.path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    let summary: Vec<(u64, u64, String, Holders)> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["local"]["port"].as_u64().unwrap(),
                s["remote"]["port"].as_u64().unwrap(),
                s["role"].as_str().unwrap().to_string(),
                holder_pids(s),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (8080, 0, "listener".into(), vec![(4242, 3)]),
            (8080, 41352, "accepted".into(), vec![(4242, 7)]),
            (41352, 8080, "outgoing".into(), vec![(5151, 5)]),
            (41358, 8080, "time-wait".into(), vec![]),
        ]
    );
}

#[test]
fn a_port_free_in_the_tables_is_free_only_as_far_as_proc_shows() {
    let dir = tree("fixture-free");
    let output = run(&dir.path, &["8081"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(
            "Port 8081 is FREE as far as /proc shows in network namespace net:[4026599999]"
        ),
        "{text}"
    );
    assert!(text.contains("bound-only TCP sockets"), "{text}");
    assert!(
        text.contains("inside the kernel's ephemeral range 8000-8999"),
        "{text}"
    );

    // The listening view over the same tree: TCP listeners and
    // unconnected UDP sockets of both families, IPv6 ones unmarked as
    // dual-stack since /proc cannot say.
    let doc = json(&run(&dir.path, &["--json"]));
    let listening: Vec<(String, u64)> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["v6only"], Value::Null);
            (
                format!(
                    "{}/{}",
                    s["protocol"].as_str().unwrap(),
                    s["family"].as_str().unwrap()
                ),
                s["local"]["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listening,
        vec![
            ("tcp/inet".into(), 22),
            ("udp/inet6".into(), 123),
            ("udp/inet".into(), 5353),
            ("udp/inet6".into(), 5354),
            ("tcp/inet".into(), 8080),
            ("tcp/inet6".into(), 8443),
            ("tcp/inet6".into(), 60403),
        ]
    );
}

#[test]
fn an_unreadable_table_is_an_error() {
    let dir = tree("fixture-missing");
    std::fs::remove_file(dir.path.join("net/tcp")).unwrap();
    let output = run(&dir.path, &["8080"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("net/tcp: No such file or directory"), "{err}");
    // A missing IPv6 table is a kernel without IPv6, not an error.
    let dir = tree("fixture-no-ipv6");
    std::fs::remove_file(dir.path.join("net/tcp6")).unwrap();
    std::fs::remove_file(dir.path.join("net/udp6")).unwrap();
    let output = run(&dir.path, &["-n", "8080"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn process_files_that_are_devices_or_huge_cost_only_themselves() {
    let dir = tree("hostile-process-files");
    let web = dir.path.join("4242");
    // comm on /dev/zero would be read forever (the command name comes
    // from the status file); a status whose name is cut mid-character
    // must keep its other fields.
    std::fs::remove_file(web.join("comm")).unwrap();
    symlink("/dev/zero", web.join("comm")).unwrap();
    write(
        &web.join("status"),
        b"Name:\tweb-server-\xc3\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t4242\t17\n",
    );
    // A command line of 3 MiB: cut at 1 MiB.
    let mut long = b"web\0".to_vec();
    long.extend(std::iter::repeat_n(b'x', 3 << 20));
    long.push(0);
    write(&web.join("cmdline"), &long);
    let output = run(&dir.path, &["--json", "-n", "8080"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    let holder = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["holders"].as_array().unwrap().iter())
        .find(|h| h["pid"] == 4242)
        .cloned()
        .expect("the web process still holds its sockets");
    // The command name is the status file's (cut mid-character there,
    // and kept so): the comm file is not even opened.
    assert_eq!(holder["command"], "web-server-\u{fffd}", "{holder}");
    assert_eq!(holder["uid"], 1000, "{holder}");
    assert_eq!(holder["pid_in_namespace"], 17, "{holder}");
    let cmdline_len: usize = holder["cmdline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().len())
        .sum();
    assert!(cmdline_len <= 1 << 20, "{cmdline_len}");
    assert!(cmdline_len > 1000);
}

#[test]
fn a_tree_without_sysctls_gives_defaults_marked_assumed_never_the_live_ones() {
    let dir = tree("fixture-no-sysctls");
    std::fs::remove_dir_all(dir.path.join("sys")).unwrap();
    let output = run(&dir.path, &["--json", "-n", "8080"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let netns = &json(&output)["netns"];
    // Not a procfs: no proc instance of lsport's own stands in for it.
    assert_eq!(netns["port_settings_read_from"], Value::Null, "{netns}");
    assert_eq!(netns["ephemeral_range"], json!([32768, 60999]));
    assert_eq!(netns["unprivileged_port_start"], 1024);
    for assumed in [
        "ephemeral_range_assumed",
        "reserved_ports_assumed",
        "unprivileged_port_start_assumed",
    ] {
        assert_eq!(netns[assumed], true, "{assumed}: {netns}");
    }
}
