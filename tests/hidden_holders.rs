//! Holders lsport cannot see are reported hidden, never dropped: fds
//! that even root may not read, a process out of file descriptors, and a
//! socket that only one thread's own fd table holds; a process whose
//! main thread has exited is still named with its command line.

mod common;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

fn setup(test: &str) -> bool {
    private_netns(test)
}

fn only_socket(doc: &Value, port: u64) -> Value {
    let sockets = sockets_on(doc, port);
    assert_eq!(sockets.len(), 1, "{sockets:#?}");
    sockets.into_iter().next().unwrap()
}

#[test]
fn fds_root_may_not_read_make_the_holder_hidden() {
    if !setup("fds_root_may_not_read_make_the_holder_hidden") {
        return;
    }
    let listener = tcp4_listener(7401);
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    // Root without CAP_SYS_PTRACE, as in Docker's default set: /proc/PID/fd
    // opens, but each link is refused.
    let output = lsport_without_ptrace(&["--json", "7401"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let socket = only_socket(&doc, 7401);
    assert_eq!(socket["holders"], json!([]));
    assert_eq!(socket["holders_hidden"], true, "{socket}");
    assert_eq!(doc["hidden_holders"], 1);
    // The holder is among the processes named as unread, with why.
    let named = doc["unreadable_processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == holder.pid())
        .unwrap_or_else(|| panic!("{}", doc["unreadable_processes"]));
    assert_eq!(
        named,
        &json!({"pid": holder.pid(), "command": "sleep", "uid": 0,
                "reason": "fd_links_refused", "error": "Permission denied"})
    );
    // Root is not told to run as root, nor that it is another user.
    let err = stderr(&output);
    assert!(
        err.contains("1 socket has no holder lsport could see"),
        "{err}"
    );
    assert!(
        err.contains("fd links refused (Permission denied)"),
        "{err}"
    );
    assert!(err.contains("lsport runs without CAP_SYS_PTRACE"), "{err}");
    assert!(
        !err.contains("run as root") && !err.contains("hidden from this user"),
        "{err}"
    );
    let text = stdout(&lsport_without_ptrace(&["7401"]));
    let verdict = text.lines().next().unwrap();
    assert!(
        verdict.contains("1 whose holder lsport could not see (owned by uid 0 (root))"),
        "{text}"
    );
    // Nor when it asks for that process's sockets.
    let output = lsport_without_ptrace(&["--pid", &holder.pid().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim_end(),
        format!(
            "lsport: --pid {}: its file descriptors cannot be read: fd links refused (Permission denied)",
            holder.pid()
        )
    );
}

#[test]
fn the_process_whose_fds_cannot_be_read_is_named_by_pid_and_command() {
    if !setup("the_process_whose_fds_cannot_be_read_is_named_by_pid_and_command") {
        return;
    }
    // A pid namespace of its own, with its own /proc: a `sleep` with
    // every capability holds the listener, and lsport, without
    // CAP_SYS_PTRACE, may not read it. Nothing else runs there: it is
    // the one process named.
    let listener = tcp4_listener(7406);
    let mut command = Command::new("unshare");
    command
        // bash: sh (dash) takes `10>&-` for an argument and `>&-`.
        .args(["--fork", "--pid", "--mount-proc", "--", "bash", "-c"])
        .arg(
            "sleep 300 & \
             until [ \"$(cat /proc/$!/comm)\" = sleep ]; do sleep 0.01; done; \
             exec setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace -- \"$0\" \"$@\" 10>&-",
        )
        .arg(lsport_path())
        .arg("7406")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    pass_fds(&mut command, &[listener.as_raw_fd()]);
    let output = command.output().expect("running unshare(1)");
    drop(listener);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(
        err.trim_end(),
        "lsport: 1 socket has no holder lsport could see; the file descriptors of processes \
         that may hold it could not be read: pid 2 (sleep): fd links refused (Permission denied); \
         lsport runs without CAP_SYS_PTRACE, which reading other processes' file descriptors takes"
    );
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.contains("127.0.0.1:7406") && l.ends_with("(hidden) owned by uid 0 (root)")),
        "{text}"
    );
}

#[test]
fn running_out_of_file_descriptors_hides_holders_rather_than_losing_them() {
    if !setup("running_out_of_file_descriptors_hides_holders_rather_than_losing_them") {
        return;
    }
    let listener = tcp4_listener(7402);
    let _holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let mut command = lsport_command(["--json", "7402"]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 5,
                rlim_max: 5,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().expect("running lsport");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let socket = only_socket(&doc, 7402);
    let named = !socket["holders"].as_array().unwrap().is_empty();
    assert!(
        named || socket["holders_hidden"] == true,
        "the holder is either found or hidden, never silently absent: {socket}"
    );
}

#[test]
fn a_socket_only_one_thread_holds_is_found_in_that_threads_table() {
    if !setup("a_socket_only_one_thread_holds_is_found_in_that_threads_table") {
        return;
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // A thread of this test process unshares its fd table, then opens
    // the listener: only /proc/PID/task/TID/fd refers to it.
    let thread = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).expect("unshare(CLONE_FILES)");
        let listener = TcpListener::bind("127.0.0.1:7403").unwrap();
        let tid = nix::unistd::gettid().as_raw();
        ready_tx.send((tid, listener.as_raw_fd())).unwrap();
        let _ = done_rx.recv();
        drop(listener);
    });
    let (tid, fd) = ready_rx.recv().unwrap();
    let pid = std::process::id();
    let in_thread = std::fs::read_link(format!("/proc/{pid}/task/{tid}/fd/{fd}")).unwrap();
    assert!(in_thread.to_string_lossy().starts_with("socket:"));
    // Other tests of this file run as threads of this process, and the
    // same fd number in the shared table may be theirs: only the link
    // to this very socket must be missing there.
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok(),
        Some(in_thread),
        "the process's own table must not hold it, or the test proves nothing"
    );

    let (doc, output) = lsport_json(&["7403"]);
    done_tx.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let socket = only_socket(&doc, 7403);
    assert_eq!(
        socket["holders"][0]["pid"], pid,
        "the thread's process holds it: {socket}"
    );
    assert_eq!(socket["holders"][0]["fd"], fd);
}

#[test]
fn a_command_name_cut_mid_character_keeps_the_user_and_pids() {
    if !setup("a_command_name_cut_mid_character_keeps_the_user_and_pids") {
        return;
    }
    // 14 bytes, then a two-byte character: the kernel keeps 15 bytes of
    // the name, half of that character.
    let dir = OpenTempDir::new("cut-name");
    let name = dir.path.join("aaaaaaaaaaaaaaé");
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(sleep, &name).unwrap();
    let listener = tcp4_listener(7404);
    let holder = hold_with(&name, &[listener.as_raw_fd()]);
    drop(listener);
    let status = std::fs::read(format!("/proc/{}/status", holder.pid())).unwrap();
    assert!(
        std::str::from_utf8(&status).is_err(),
        "the kernel's cut left a broken character, or the test proves nothing"
    );
    let (doc, output) = lsport_json(&["7404"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let socket = only_socket(&doc, 7404);
    let found = &socket["holders"][0];
    assert_eq!(found["pid"], holder.pid());
    assert_eq!(found["uid"], 0, "{found}");
    assert_eq!(found["user"], "root", "{found}");
}

#[test]
fn a_process_whose_main_thread_exited_shows_the_command_line_of_a_live_thread() {
    let test = "a_process_whose_main_thread_exited_shows_the_command_line_of_a_live_thread";
    if !setup(test) {
        return;
    }
    if Command::new("python3").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("LSPORT_REQUIRE_NETNS").is_none(),
            "{test}: python3 is missing, and LSPORT_REQUIRE_NETNS is set"
        );
        eprintln!("SKIPPED {test}: python3 is not installed");
        return;
    }
    // The main thread binds the port, starts a thread that lives on, and
    // exits by itself (pthread_exit): the process runs on, its leader a
    // zombie whose /proc/PID/cmdline reads empty.
    let code = r#"
import ctypes, socket, sys, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 7405)); s.listen()
threading.Thread(target=time.sleep, args=(300,)).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"#;
    let mut child = Command::new("python3")
        .args(["-c", code, "--marker-argument"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting python3");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let pid = child.id();
    let leader_exited = (0..500).any(|_| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
        zombie || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        }
    });
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let (doc, output) = lsport_json(&["7405"]);
    let text = stdout(&lsport(["-o", "pid,command,args", "7405"]));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        leader_exited && cmdline.is_empty(),
        "the leader must have exited, its cmdline empty, or the test proves nothing"
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let socket = only_socket(&doc, 7405);
    let holder = &socket["holders"][0];
    assert_eq!(holder["pid"], pid, "{socket}");
    let args: Vec<&str> = holder["cmdline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.last(), Some(&"--marker-argument"), "{holder}");
    assert_eq!(args.get(1), Some(&"-c"), "{holder}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&pid.to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.ends_with("--marker-argument"), "{text}");
}
