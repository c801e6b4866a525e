//! --netns and --all-netns against namespaces the test makes: two
//! unnamed ones (unshare) and one named with ip-netns, each holding a
//! listener on the same port, each with its own ephemeral range.

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PORT: u16 = 45000;

/// A namespace with a listener on PORT held by a `sleep`, and the
/// namespace's inode.
struct Held {
    holder: HeldBy,
    inode: u64,
}

/// Builds the namespace on a thread of its own, so the test's thread
/// stays where it is. `enter` is None for a fresh unnamed namespace, or
/// the ip-netns file to enter.
fn namespace_with_listener(test: &str, range: &str, enter: Option<&Path>) -> Option<Held> {
    let range = range.to_string();
    let enter = enter.map(Path::to_path_buf);
    let test = test.to_string();
    std::thread::spawn(move || {
        match enter {
            None => {
                if !private_netns(&test) {
                    return None;
                }
            }
            Some(path) => {
                let file = std::fs::File::open(&path).unwrap();
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let up = Command::new("ip")
                    .args(["link", "set", "lo", "up"])
                    .status()
                    .unwrap();
                assert!(up.success());
            }
        }
        sysctl("net.ipv4.ip_local_port_range", &range);
        let listener = tcp4_listener(PORT);
        let holder = hold(&[listener.as_raw_fd()]);
        Some(Held {
            holder,
            inode: netns_inode(),
        })
    })
    .join()
    .unwrap()
}

/// An ip-netns namespace, deleted on drop.
struct Named {
    name: String,
}

impl Named {
    fn add(tag: &str) -> Named {
        let name = format!("lsport-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(status.success(), "ip netns add {name}");
        Named { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Three namespaces: A (range 45000-45100, so PORT is ephemeral), B
/// (30000-31000, so it is not), and the named C (40000-49999).
fn three(test: &str) -> Option<(Held, Held, Held, Named)> {
    let a = namespace_with_listener(test, "45000 45100", None)?;
    let b = namespace_with_listener(test, "30000 31000", None)?;
    let named = Named::add(test.split('_').next().unwrap_or("t"));
    let c = namespace_with_listener(test, "40000 49999", Some(Path::new(&named.path())))?;
    Some((a, b, c, named))
}

fn sockets_in(doc: &Value, inode: u64) -> Vec<&Value> {
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["netns"]["inode"] == inode && s["local"]["port"] == PORT)
        .collect()
}

fn verdict_in(doc: &Value, inode: u64) -> &Value {
    doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["netns"]["inode"] == inode)
        .unwrap_or_else(|| panic!("no verdict for net:[{inode}]"))
}

#[test]
fn all_netns_finds_every_namespace_with_its_own_facts() {
    let Some((a, b, c, named)) = three("all_netns_finds_every_namespace_with_its_own_facts") else {
        return;
    };
    let (doc, output) = lsport_json(&["--all-netns", &PORT.to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for (held, ephemeral) in [(&a, true), (&b, false), (&c, true)] {
        let sockets = sockets_in(&doc, held.inode);
        assert_eq!(sockets.len(), 1, "net:[{}]: {sockets:#?}", held.inode);
        assert_eq!(sockets[0]["holders"][0]["pid"], held.holder.pid());
        let verdict = verdict_in(&doc, held.inode);
        assert_eq!(verdict["in_use"], true);
        assert_eq!(verdict["ephemeral"], ephemeral, "net:[{}]", held.inode);
    }
    assert_eq!(
        sockets_in(&doc, c.inode)[0]["netns"]["name"],
        named.name.as_str()
    );
    assert_eq!(
        verdict_in(&doc, c.inode)["netns"]["name"],
        named.name.as_str()
    );
    let ranges: Vec<(u64, Value)> = doc["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["inode"].as_u64().unwrap(), n["ephemeral_range"].clone()))
        .collect();
    assert!(
        ranges.contains(&(a.inode, serde_json::json!([45000, 45100]))),
        "{ranges:?}"
    );
    assert!(
        ranges.contains(&(b.inode, serde_json::json!([30000, 31000]))),
        "{ranges:?}"
    );

    let text = stdout(&lsport(["--all-netns", &PORT.to_string()]));
    let header = format!("== Network namespace net:[{}] ({}) ==", c.inode, named.name);
    assert!(text.contains(&header), "{text}");
    assert!(
        text.contains("inside the kernel's ephemeral range 45000-45100"),
        "{text}"
    );
    assert!(
        text.contains("outside the kernel's ephemeral range 30000-31000"),
        "{text}"
    );
}

#[test]
fn netns_probes_only_the_namespace_named() {
    let Some((a, b, c, named)) = three("netns_probes_only_the_namespace_named") else {
        return;
    };
    let port = PORT.to_string();
    let pid = a.holder.pid().to_string();
    let file = named.path();
    for (target, expected) in [
        (pid.as_str(), &a),
        (file.as_str(), &c),
        (named.name.as_str(), &c),
    ] {
        let (doc, output) = lsport_json(&["--netns", target, &port]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{target}: {}",
            stderr(&output)
        );
        let inodes: Vec<u64> = doc["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["netns"]["inode"].as_u64().unwrap())
            .collect();
        assert_eq!(inodes, vec![expected.inode], "{target}");
        assert_eq!(doc["netns"]["inode"], expected.inode);
    }
    let (doc, _) = lsport_json(&["--netns", &named.name, &port]);
    assert_eq!(doc["netns"]["name"], named.name.as_str());
    // B's range makes the port non-ephemeral there, and only there.
    let (doc, _) = lsport_json(&["--netns", &b.holder.pid().to_string(), &port]);
    assert_eq!(doc["ports"][0]["ephemeral"], false);
    // A namespace that does not exist is an error, in one line.
    let output = lsport(["--netns", "no-such-netns-here", &port]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
}

#[test]
fn namespaces_that_vanish_during_the_scan_are_skipped_quietly() {
    let Some(held) = namespace_with_listener(
        "namespaces_that_vanish_during_the_scan_are_skipped_quietly",
        "45000 45100",
        None,
    ) else {
        return;
    };
    // Short-lived namespaces come and go while lsport walks them.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = Command::new("unshare")
                    .args(["-n", "sleep", "0.01"])
                    .status();
            }
        });
        // Stops the churn even when an assertion fails, or the scope
        // would wait for it forever.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        for _ in 0..8 {
            let output = lsport(["--all-netns", "--json", &PORT.to_string()]);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            // Nothing to say about a namespace that went away. (A line
            // about holders lsport could not see may come: a socket
            // without a holder in some other test's namespace, where
            // some process, pid 1 of a sandbox say, cannot be read.)
            let err = stderr(&output);
            assert!(
                err.lines()
                    .all(|l| l.contains("no holder lsport could see") && !l.contains("namespace")),
                "nothing to say about a namespace that went away: {err}"
            );
            let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(sockets_in(&doc, held.inode).len(), 1);
        }
    });
}

#[test]
fn a_holder_in_another_pid_namespace_shows_both_pids() {
    let test = "a_holder_in_another_pid_namespace_shows_both_pids";
    if !private_netns(test) {
        return;
    }
    let listener = tcp4_listener(PORT);
    let _holder = hold_running(
        Path::new("unshare"),
        &["--pid", "--fork", "--kill-child", "sleep", "300"],
        &[listener.as_raw_fd()],
    );
    drop(listener);
    // unshare forks the sleep that is pid 1 of the new pid namespace.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (doc, _) = lsport_json(&[&PORT.to_string()]);
        let holders = doc["sockets"][0]["holders"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(inner) = holders.iter().find(|h| h["command"] == "sleep") {
            assert_eq!(inner["pid_in_namespace"], 1, "{holders:#?}");
            let pid = inner["pid"].as_u64().unwrap();
            let text = stdout(&lsport([PORT.to_string()]));
            assert!(text.contains(&format!(" {pid}/1 ")), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sleep never showed: {holders:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_holder_in_a_container_cgroup_names_the_container() {
    let test = "a_holder_in_a_container_cgroup_names_the_container";
    let Some(held) = namespace_with_listener(test, "45000 45100", None) else {
        return;
    };
    // Docker's cgroupfs layout: /docker/<64 hex digits>, in the pids
    // hierarchy where this machine has a writable cgroup v1 tree.
    let id = format!("{:064x}", u128::from(std::process::id()) << 64 | 0x1b5);
    let dir = Path::new("/sys/fs/cgroup/pids/docker").join(&id);
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join("cgroup.procs"), held.holder.pid().to_string()).is_err()
    {
        let _ = std::fs::remove_dir(&dir);
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: no writable cgroup v1 pids hierarchy");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no writable cgroup v1 pids hierarchy"
        );
        return;
    }
    let (doc, _) = lsport_json(&["--all-netns", &PORT.to_string()]);
    let socket = sockets_in(&doc, held.inode)[0].clone();
    // Move the holder back and remove the cgroup before asserting.
    let _ = std::fs::write(
        "/sys/fs/cgroup/pids/cgroup.procs",
        held.holder.pid().to_string(),
    );
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir("/sys/fs/cgroup/pids/docker");
    assert_eq!(socket["holders"][0]["container"]["runtime"], "docker");
    assert_eq!(socket["holders"][0]["container"]["id"], id.as_str());
    assert_eq!(socket["netns"]["container"]["id"], id.as_str());
}

#[test]
fn all_netns_without_root_says_it_needs_root() {
    let Some(_held) = namespace_with_listener(
        "all_netns_without_root_says_it_needs_root",
        "45000 45100",
        None,
    ) else {
        return;
    };
    let dir = OpenTempDir::new("netns-unprivileged");
    let binary = dir.path.join("lsport");
    std::fs::copy(lsport_path(), &binary).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&binary)
        .args(["--all-netns", &PORT.to_string()])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(
        err.contains("--all-netns needs root") && err.contains("CAP_SYS_ADMIN"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
