//! A listener of a systemd socket unit: created in a cgroup v2 directory
//! named like a `.socket` unit, held by a process whose name is
//! `systemd` (pid 1's fds are unreadable here, and no systemd runs, so
//! pid 1 itself cannot stand in). lsport names the unit, the service it
//! starts, and how to stop both; `kill` signals nothing.
//!
//! Needs root, a private network namespace, a cgroup v2 mount and
//! python3; skipped visibly where one is missing (failed instead with
//! LSPORT_REQUIRE_NETNS=1).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// A cgroup `NAME` at the top of the mount, removed on drop (with the
/// unit file, when one was written).
struct UnitCgroup {
    dir: PathBuf,
    unit_file: Option<PathBuf>,
}

impl Drop for UnitCgroup {
    fn drop(&mut self) {
        for _ in 0..200 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Some(file) = &self.unit_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A python3 that moves itself into `cgroup`, listens on 127.0.0.1:PORT
/// there, names itself `systemd` and waits; returned once it listens.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listener_in(cgroup: &Path, port: u16) -> Holder {
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3");
    let script = format!(
        "import socket, sys, time\n\
         open({procs:?}, 'w').write('0')\n\
         s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n\
         open('/proc/self/comm', 'w').write('systemd')\n\
         print('up', flush=True)\n\
         time.sleep(300)\n",
        procs = cgroup.join("cgroup.procs").display().to_string(),
    );
    let mut child = Command::new(python)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "up\n", "the listener did not come up");
    Holder(child)
}

fn setup(test: &str, unit: &str, unit_text: Option<&str>) -> Option<UnitCgroup> {
    if !tool_available(test, "python3") || !private_netns(test) {
        return None;
    }
    let Some(mount) = cgroup2_mount() else {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: no cgroup v2 mount, and LSPORT_REQUIRE_NETNS is set");
        }
        eprintln!("SKIPPED {test}: no cgroup v2 mount");
        return None;
    };
    let dir = mount.join(unit);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    // The unit file where systemd keeps runtime units: the service it
    // names is read from it.
    let unit_file = unit_text.map(|text| {
        let file = Path::new("/run/systemd/system").join(unit);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        file
    });
    Some(UnitCgroup { dir, unit_file })
}

#[test]
fn a_socket_unit_s_listener_is_named_by_its_unit_and_not_signalled() {
    let test = "a_socket_unit_s_listener_is_named_by_its_unit_and_not_signalled";
    let unit = format!("lsport-test-{}.socket", std::process::id());
    let Some(cgroup) = setup(
        test,
        &unit,
        Some("[Socket]\nListenStream=127.0.0.1:7601\nService=lsport-web.service\n"),
    ) else {
        return;
    };
    let holder = listener_in(&cgroup.dir, 7601);
    let pid = holder.0.id();

    let output = lsport(["7601"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "Port 7601 is IN USE: 1 socket, held by systemd (pid {pid}) for socket unit {unit}."
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  Socket unit {unit} holds it (systemd socket activation; it starts lsport-web.service). To free it: systemctl stop {unit} lsport-web.service"
        )),
        "{text}"
    );

    // kill signals nothing, and says what to stop; in a dry run too.
    for args in [&["kill", "7601"][..], &["kill", "--dry-run", "7601"]] {
        let output = lsport(args);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {text}");
        assert!(
            text.contains(&format!(
                "port 7601 is the listener of socket unit {unit} (systemd socket activation; it starts lsport-web.service): its holders were not signalled; stop the unit, with: systemctl stop {unit} lsport-web.service"
            )),
            "{args:?}: {text}"
        );
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&lsport(["kill", "--json", "7601"]).stdout).unwrap();
    assert_eq!(doc["targets"][0]["refusal"], "socket_unit", "{doc:#}");
    assert_eq!(doc["socket_units"][0]["activates"], "lsport-web.service");
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the holder was signalled"
    );

    // why gives the same command.
    let output = lsport(["why", "127.0.0.1:7601"]);
    let text = stdout(&output);
    assert!(
        text.contains(&format!("systemctl stop {unit} lsport-web.service")),
        "{text}"
    );
    drop(holder);
}

#[test]
fn a_socket_unit_without_a_unit_file_is_named_all_the_same() {
    let test = "a_socket_unit_without_a_unit_file_is_named_all_the_same";
    let unit = format!("lsport-bare-{}.socket", std::process::id());
    let Some(cgroup) = setup(test, &unit, None) else {
        return;
    };
    let holder = listener_in(&cgroup.dir, 7602);
    let text = stdout(&lsport(["7602"]));
    assert!(
        text.contains(&format!(
            "  Socket unit {unit} holds it (systemd socket activation; the service it starts could not be read). To free it: systemctl stop {unit}"
        )),
        "{text}"
    );
    drop(holder);
}
