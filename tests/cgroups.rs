//! The socket's cgroup, unit and container, from the kernel: named for a
//! user who may not see the holder, under a /proc mounted hidepid=2, and
//! used by the filters of a reverse query (--pid, --user, --unit,
//! --container, --cgroup).
//!
//! Cgroups are made under the cgroup v2 mount (lsport-test.slice/...),
//! and a holder is moved into one before it opens its socket: a socket
//! belongs to the cgroup its creator was in. Needs root, a private
//! network namespace and a cgroup v2 mount; skipped visibly without them
//! (failed instead with LSPORT_REQUIRE_NETNS=1). The tests take turns
//! (see `TURN`).

mod common;

use std::ffi::CString;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use common::*;
use serde_json::Value;

/// The tests of this file run one at a time: one makes and removes
/// lsport-test.slice, and a child forked by one test holds copies of
/// every socket another test has open until it execs (moving into a
/// cgroup first makes that window long), so it would show up as an
/// extra holder there.
static TURN: Mutex<()> = Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

const UNIT: &str = "demo.service";

/// A private network namespace and a cgroup v2 mount, or a visible skip.
fn setup(test: &str) -> Option<PathBuf> {
    if !private_netns(test) {
        return None;
    }
    match cgroup2_mount() {
        Some(mount) => Some(mount),
        None if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() => {
            panic!("{test}: no cgroup v2 mount, and LSPORT_REQUIRE_NETNS is set")
        }
        None => {
            eprintln!("SKIPPED {test}: no cgroup v2 mount");
            None
        }
    }
}

/// `lsport-test.slice/NAME` under the mount, removed (with the slice,
/// once empty) on drop; its processes must be gone by then.
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn new(mount: &Path, name: &str) -> Cgroup {
        let dir = mount.join("lsport-test.slice").join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Cgroup { dir }
    }

    fn procs(&self) -> CString {
        CString::new(
            self.dir
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The last holder may still be on its way out.
        for _ in 0..200 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir(self.dir.parent().unwrap());
    }
}

/// What a child makes before it runs its program.
struct ChildSetup {
    /// Moves itself into this cgroup first (its cgroup.procs).
    cgroup: Option<CString>,
    /// Then takes this uid (and gid).
    uid: Option<u32>,
    /// Then listens on 127.0.0.1:PORT...
    port: u16,
    /// ...as this fd.
    fd: i32,
}

/// Makes `command`'s process move into a cgroup, become a user, and
/// open a TCP listener, in that order, before it runs.
fn prepare(command: &mut Command, setup: ChildSetup) {
    // SAFETY: only system calls between fork and exec, on memory that
    // was allocated before the fork (the path) or lives on the stack.
    unsafe {
        command.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if let Some(path) = &setup.cgroup {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                // "0": the process that writes.
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return fail();
                }
                libc::close(fd);
            }
            if let Some(uid) = setup.uid {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    return fail();
                }
            }
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: setup.port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                },
                sin_zero: [0; 8],
            };
            let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if fd < 0
                || libc::bind(fd, (&raw const address).cast(), length) != 0
                || libc::listen(fd, 16) != 0
            {
                return fail();
            }
            // When the socket already sits on the target fd, dup2 does
            // nothing and the socket would close at exec: clear the flag.
            let placed = if fd == setup.fd {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, setup.fd)
            };
            if placed < 0 {
                return fail();
            }
            Ok(())
        });
    }
}

/// A `sleep 300` holding a listener on `port` it opened after moving
/// into `cgroup`; killed on drop.
fn listener_in(cgroup: &Cgroup, port: u16) -> HeldBy {
    let mut command = Command::new("sleep");
    command
        .arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    prepare(
        &mut command,
        ChildSetup {
            cgroup: Some(cgroup.procs()),
            uid: None,
            port,
            fd: FIRST_HELD_FD,
        },
    );
    let child = command.spawn().expect("starting a holder in a cgroup");
    wait_for_listener(port);
    HeldBy { child }
}

/// The holder is ready once its port is taken.
fn wait_for_listener(port: u16) {
    for _ in 0..500 {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("no listener came up on {port}");
}

/// A copy of lsport that user 65534 may run, and its directory.
fn binary_for_nobody(tag: &str) -> (OpenTempDir, PathBuf) {
    let dir = OpenTempDir::new(tag);
    let binary = dir.path.join("lsport");
    std::fs::copy(lsport_path(), &binary).unwrap();
    (dir, binary)
}

fn as_nobody(binary: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(binary)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running setpriv")
}

fn parse(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)))
}

fn one(sockets: Vec<Value>) -> Value {
    assert_eq!(sockets.len(), 1, "{sockets:#?}");
    sockets.into_iter().next().unwrap()
}

/// The local ports of the sockets of a document, sorted.
fn ports_of(doc: &Value) -> Vec<u64> {
    let mut ports: Vec<u64> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["local"]["port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    ports
}

#[test]
fn a_hidden_holder_is_named_by_the_cgroup_of_its_socket() {
    let test = "a_hidden_holder_is_named_by_the_cgroup_of_its_socket";
    let Some(mount) = setup(test) else { return };
    let _turn = take_turn();
    let cgroup = Cgroup::new(&mount, UNIT);
    let holder = listener_in(&cgroup, 7401);
    let (_dir, binary) = binary_for_nobody("cgroup-hidden");

    let output = as_nobody(&binary, &["--json", "7401"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = parse(&output);
    let socket = one(sockets_on(&doc, 7401));
    assert_eq!(socket["holders_hidden"], true, "{socket}");
    assert_eq!(socket["uid"], 0);
    let path = socket["cgroup"]["path"].as_str().unwrap();
    assert!(path.ends_with("lsport-test.slice/demo.service"), "{path}");
    assert_eq!(socket["cgroup"]["unit"], UNIT);
    assert_eq!(socket["cgroup"]["container"], Value::Null);
    assert!(socket["cgroup"]["id"].as_u64().unwrap() > 1);

    // The table names the owner and the unit, in the row and the verdict.
    let output = as_nobody(&binary, &["7401"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("(hidden) owned by uid 0 (root), in demo.service"),
        "{text}"
    );
    let verdict = text.lines().next().unwrap();
    assert!(
        verdict.contains("IN USE") && verdict.contains("demo.service"),
        "{verdict}"
    );
    let row = text.lines().find(|l| l.starts_with("tcp ")).unwrap();
    assert!(row.split_whitespace().any(|cell| cell == "root"), "{row}");

    // As root, the holder itself, and the cgroup through -o.
    let output = lsport(["-o", "pid,unit,cgroup", "7401"]);
    let text = stdout(&output);
    let row = text.lines().last().unwrap();
    assert!(row.starts_with(&holder.pid().to_string()), "{text}");
    assert!(
        row.contains("demo.service  /lsport-test.slice/demo.service"),
        "{text}"
    );
    drop(holder);
}

#[test]
fn a_hidden_holders_container_column_names_where_its_socket_was_created() {
    let test = "a_hidden_holders_container_column_names_where_its_socket_was_created";
    let Some(mount) = setup(test) else { return };
    let _turn = take_turn();
    let id = "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98";
    let container = Cgroup::new(&mount, &format!("docker-{id}.scope"));
    let holder = listener_in(&container, 7405);
    let (_dir, binary) = binary_for_nobody("cgroup-container");

    let output = as_nobody(&binary, &["-o", "local,command,container", "7405"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let row = text
        .lines()
        .find(|l| l.starts_with("127.0.0.1:7405"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("(hidden)"), "{text}");
    assert!(
        row.trim_end().ends_with("docker:d0b3604b67ac"),
        "the container the socket was created in: {text}"
    );
    // The JSON names the same container.
    let doc = parse(&as_nobody(&binary, &["--json", "7405"]));
    let socket = one(sockets_on(&doc, 7405));
    assert_eq!(socket["cgroup"]["container"]["id"], id, "{socket}");
    drop(holder);
}

#[test]
fn unit_cgroup_and_container_filters_find_the_sockets_created_there() {
    let test = "unit_cgroup_and_container_filters_find_the_sockets_created_there";
    let Some(mount) = setup(test) else { return };
    let _turn = take_turn();
    let id = "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98";
    let service = Cgroup::new(&mount, UNIT);
    let container = Cgroup::new(&mount, &format!("docker-{id}.scope"));
    let in_service = listener_in(&service, 7402);
    let in_container = listener_in(&container, 7403);
    // Outside both: lsport's own cgroup.
    let outside = tcp4_listener(7404);

    let found = |args: &[&str]| -> (Option<i32>, Vec<u64>) {
        let (doc, output) = lsport_json(args);
        (output.status.code(), ports_of(&doc))
    };
    assert_eq!(found(&["--unit", UNIT]), (Some(0), vec![7402]));
    assert_eq!(
        found(&["--unit", "demo"]),
        (Some(0), vec![7402]),
        "a service by its name"
    );
    assert_eq!(
        found(&["--unit", "lsport-test.slice"]),
        (Some(0), vec![7402, 7403])
    );
    assert_eq!(found(&["--unit", "other.service"]), (Some(1), vec![]));
    assert_eq!(found(&["--unit", UNIT, "7402"]), (Some(0), vec![7402]));
    assert_eq!(found(&["--unit", UNIT, "7404"]).0, Some(1));

    let path = "/lsport-test.slice/demo.service";
    assert_eq!(found(&["--cgroup", path]), (Some(0), vec![7402]));
    let dir = service.dir.to_str().unwrap();
    assert_eq!(
        found(&["--cgroup", dir]),
        (Some(0), vec![7402]),
        "as a directory"
    );
    assert_eq!(
        found(&["--cgroup", "/lsport-test.slice/other.service"]),
        (Some(1), vec![])
    );
    assert_eq!(
        found(&["--cgroup", "/lsport-test.slice"]).1,
        vec![7402, 7403]
    );

    assert_eq!(found(&["--container", &id[..12]]), (Some(0), vec![7403]));
    assert_eq!(found(&["--container", "0123456789ab"]), (Some(1), vec![]));
    let (doc, _) = lsport_json(&["--container", &id[..12]]);
    let named = &doc["sockets"][0]["cgroup"];
    assert_eq!(named["container"]["runtime"], "docker");
    assert_eq!(named["container"]["id"], id);
    assert_eq!(named["unit"], format!("docker-{id}.scope"));

    // Every namespace, the test's among them.
    let (doc, output) = lsport_json(&["--all-netns", "--unit", UNIT]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ports_of(&doc), vec![7402]);
    assert_eq!(doc["sockets"][0]["netns"]["inode"], netns_inode());
    // -q stops at the first match: only a socket that passes counts.
    assert_eq!(
        lsport(["-q", "--unit", "other.service"]).status.code(),
        Some(1)
    );
    assert_eq!(lsport(["-q", "--unit", UNIT]).status.code(), Some(0));

    let output = lsport(["--source", "proc", "--unit", UNIT]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("need sock_diag"),
        "{}",
        stderr(&output)
    );
    drop((in_service, in_container, outside));
}

#[test]
fn pid_lists_exactly_the_sockets_of_a_process() {
    let test = "pid_lists_exactly_the_sockets_of_a_process";
    let _turn = take_turn();
    if !private_netns(test) {
        return;
    }
    let first = TcpListener::bind("127.0.0.1:7411").unwrap();
    let second = TcpListener::bind("[::1]:7412").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:7413").unwrap();
    // The outgoing connection goes to a listener this test keeps.
    let server = TcpListener::bind("127.0.0.1:7414").unwrap();
    let outgoing = TcpStream::connect("127.0.0.1:7414").unwrap();
    let client_port = outgoing.local_addr().unwrap().port();
    let holder = hold(&[
        first.as_raw_fd(),
        second.as_raw_fd(),
        udp.as_raw_fd(),
        outgoing.as_raw_fd(),
    ]);
    drop((first, second, udp, outgoing));
    let pid = holder.pid().to_string();

    let (doc, output) = lsport_json(&["--pid", &pid]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut expected = vec![7411, 7412, 7413, u64::from(client_port)];
    expected.sort_unstable();
    assert_eq!(ports_of(&doc), expected, "{doc}");
    for socket in doc["sockets"].as_array().unwrap() {
        assert_eq!(
            holder_pids(socket)[0].0,
            u64::from(holder.pid()),
            "{socket}"
        );
    }
    let roles: Vec<&str> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "outgoing").count(),
        1,
        "{roles:?}"
    );

    // With a port, a list of pids, and -l.
    assert_eq!(
        ports_of(&lsport_json(&["--pid", &pid, "7413"]).0),
        vec![7413]
    );
    let (_, output) = lsport_json(&["--pid", &pid, "7414"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the server is not the holder's"
    );
    let me = std::process::id().to_string();
    let both = format!("{pid},{me}");
    assert!(ports_of(&lsport_json(&["--pid", &both]).0).contains(&7414));
    assert_eq!(
        ports_of(&lsport_json(&["--pid", &pid, "-l"]).0),
        vec![7411, 7412, 7413]
    );

    let output = lsport(["--pid", "4194304"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.trim(), "lsport: --pid 4194304: no such process");
    drop(server);
}

#[test]
fn user_matches_the_owner_by_name_and_by_number() {
    let test = "user_matches_the_owner_by_name_and_by_number";
    let _turn = take_turn();
    if !private_netns(test) {
        return;
    }
    let name = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == "65534").then(|| name.to_string())
        });
    // A listener user 65534 opened, and one of root's.
    let mut command = Command::new("sleep");
    command.arg("300").stdin(Stdio::null());
    prepare(
        &mut command,
        ChildSetup {
            cgroup: None,
            uid: Some(65534),
            port: 7421,
            fd: FIRST_HELD_FD,
        },
    );
    let nobody = HeldBy {
        child: command.spawn().unwrap(),
    };
    wait_for_listener(7421);
    let _root = tcp4_listener(7422);

    let (doc, output) = lsport_json(&["--user", "65534"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ports_of(&doc), vec![7421]);
    assert_eq!(doc["sockets"][0]["uid"], 65534);
    match &name {
        Some(name) => assert_eq!(ports_of(&lsport_json(&["--user", name]).0), vec![7421]),
        None => eprintln!("{test}: no name for uid 65534 in /etc/passwd; by number only"),
    }
    assert_eq!(
        ports_of(&lsport_json(&["--user", "root", "-l"]).0),
        vec![7422]
    );
    assert_eq!(
        lsport_json(&["--user", "0", "7421"]).1.status.code(),
        Some(1)
    );

    let output = lsport(["--user", "no-such-user-x"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("no such user"));
    drop(nobody);
}

#[test]
fn under_hidepid_a_root_listener_is_hidden_and_in_use_with_its_cgroup() {
    let test = "under_hidepid_a_root_listener_is_hidden_and_in_use_with_its_cgroup";
    let Some(mount) = setup(test) else { return };
    let _turn = take_turn();
    let cgroup = Cgroup::new(&mount, UNIT);
    let (_dir, binary) = binary_for_nobody("cgroup-hidepid");
    // In a new mount and pid namespace, /proc remounted hidepid=2: the
    // shell (root, pid 1 there) holds the listener as fd 7 while user
    // 65534 asks, without it.
    let script = format!(
        "mount -o remount,hidepid=2 /proc || exit 97; setpriv --reuid=65534 --regid=65534 --clear-groups -- '{}' --json 7431 7>&-",
        binary.display()
    );
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    prepare(
        &mut command,
        ChildSetup {
            cgroup: Some(cgroup.procs()),
            uid: None,
            port: 7431,
            // Below 10: dash keeps its own fds from 10 up, and `10>&-`
            // would close its copy of stdout instead.
            fd: 7,
        },
    );
    let output = command.output().expect("running unshare");
    assert_ne!(
        output.status.code(),
        Some(97),
        "remount: {}",
        stderr(&output)
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    let line = err
        .lines()
        .find(|l| l.contains("hidepid="))
        .unwrap_or_else(|| panic!("no hidepid line: {err}"));
    assert!(
        line.starts_with("lsport: /proc is mounted hidepid="),
        "{line}"
    );
    let doc = parse(&output);
    assert_eq!(doc["ports"][0]["in_use"], true);
    let socket = one(sockets_on(&doc, 7431));
    assert_eq!(
        socket["holders_hidden"], true,
        "never free, never unowned: {socket}"
    );
    assert_eq!(socket["cgroup"]["unit"], UNIT);
    assert_eq!(doc["hidden_holders"], 1);
}

#[test]
fn without_a_cgroup_v2_mount_the_cgroup_is_null_and_nothing_fails() {
    let test = "without_a_cgroup_v2_mount_the_cgroup_is_null_and_nothing_fails";
    let _turn = take_turn();
    if !private_netns(test) {
        return;
    }
    let _listener = tcp4_listener(7441);
    // As the kernel sees it, from the real /proc: a cgroup (lsport's).
    let (doc, _) = lsport_json(&["7441"]);
    let seen = one(sockets_on(&doc, 7441));
    if seen["cgroup"].is_null() {
        eprintln!("SKIPPED {test}: this kernel or host gives no cgroup to begin with");
        return;
    }
    assert!(seen["cgroup"]["id"].is_u64(), "{seen}");

    // A /proc whose mount table has no cgroup2 line.
    let root = OpenTempDir::new("no-cgroup2");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let without: String = mountinfo
        .lines()
        .filter(|l| !l.contains(" - cgroup2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::create_dir_all(root.path.join("self")).unwrap();
    std::fs::write(root.path.join("self/mountinfo"), without).unwrap();
    let relocated = |args: &[&str]| {
        lsport_command(args)
            .env("LSPORT_PROC_ROOT", &root.path)
            .output()
            .unwrap()
    };
    let output = relocated(&["--json", "7441"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let socket = one(sockets_on(&parse(&output), 7441));
    assert_eq!(socket["cgroup"], Value::Null, "{socket}");
    let output = relocated(&["-o", "local,unit,cgroup", "7441"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("127.0.0.1:7441  -     -"),
        "{}",
        stdout(&output)
    );
    let output = relocated(&["--unit", UNIT]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cgroup v2 hierarchy"),
        "{}",
        stderr(&output)
    );

    // /proc/net gives no cgroup at all.
    let (doc, _) = lsport_json(&["--source", "proc", "7441"]);
    assert_eq!(one(sockets_on(&doc, 7441))["cgroup"], Value::Null);
}
