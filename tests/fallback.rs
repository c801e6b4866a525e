//! The fallback under a real seccomp filter: lsport runs with
//! socket(AF_NETLINK, ...) refused with EPERM, as container runtimes'
//! default profiles refuse it. Nothing in lsport is told; it must find
//! out from the kernel.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// seccomp_data: nr at 0, arch at 4, args[0] at 16 (its low half on a
/// little-endian machine).
fn no_netlink_filter() -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    vec![
        stmt(load, 4),
        jump(AUDIT_ARCH, 0, 5),
        stmt(load, 0),
        jump(libc::SYS_socket as u32, 0, 3),
        stmt(load, 16),
        jump(libc::AF_NETLINK as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Runs lsport under the filter.
fn lsport_without_netlink(args: &[&str]) -> Output {
    let mut filter = no_netlink_filter();
    let mut command: Command = lsport_command(args);
    // SAFETY: between fork and exec only prctl is called, on memory
    // prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("running lsport under seccomp")
}

/// (pid, fd) of each holder.
type Holders = Vec<(u64, u64)>;

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)))
}

#[test]
fn auto_falls_back_to_proc_when_netlink_sockets_are_refused() {
    if !private_netns("auto_falls_back_to_proc_when_netlink_sockets_are_refused") {
        return;
    }
    let listener = tcp4_listener(40200);
    let v6 = tcp6_socket(40200, true, true, true);
    let bound_only = tcp4_bound_only(40201);
    let holder = hold(&[listener.as_raw_fd(), v6.as_raw_fd(), bound_only.as_raw_fd()]);
    drop((listener, v6, bound_only));

    // Outside the filter, sock_diag answers.
    let free = lsport_json(&["40200"]).0;
    assert_eq!(free["source"], "netlink");
    assert_eq!(free["blind_spots"], serde_json::json!([]));

    // Under it: the same answer, from /proc, said to be from /proc.
    let output = lsport_without_netlink(&["--json", "40200"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "JSON mode says nothing on stderr");
    let doc = json(&output);
    assert_eq!(doc["source"], "proc");
    // Without netlink the forwarding rules cannot be asked for either.
    assert_eq!(
        doc["blind_spots"],
        serde_json::json!(["tcp_bound_only", "v6only", "autobound", "forwarding_rules"])
    );
    let mut answer: Vec<(String, String, Holders)> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["local"]["address"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
                holder_pids(s),
            )
        })
        .collect();
    answer.sort();
    let pid = u64::from(holder.pid());
    assert_eq!(
        answer,
        vec![
            ("127.0.0.1".into(), "LISTEN".into(), vec![(pid, 10)]),
            ("::1".into(), "LISTEN".into(), vec![(pid, 11)]),
        ]
    );
    let unfiltered: Vec<Value> = free["sockets"].as_array().unwrap().clone();
    assert_eq!(unfiltered.len(), 2);

    // Human mode: one line on stderr says what happened.
    let output = lsport_without_netlink(&["40200"]);
    assert_eq!(output.status.code(), Some(0));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("lsport: sock_diag is not available (")
            && err.contains("Operation not permitted")
            && err.trim_end().ends_with("reading /proc/net instead"),
        "{err}"
    );
    let text = stdout(&output);
    assert!(
        text.starts_with("Port 40200 is IN USE: 2 sockets, held by sleep"),
        "{text}"
    );
    assert!(text.contains("bound-only TCP sockets"), "{text}");

    // The blind spot, in the open: the bound-only port looks free, and
    // is said to be free only as far as /proc shows (and of sockets
    // only: without netlink the forwarding rules are not read either).
    let output = lsport_without_netlink(&["40201"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("Port 40201 is FREE of sockets as far as /proc shows"),
        "{}",
        stdout(&output)
    );
    let (seen, output) = lsport_json(&["40201"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(seen["sockets"][0]["state"], "BOUND_INACTIVE");
}

#[test]
fn netlink_only_fails_with_exit_2_when_netlink_sockets_are_refused() {
    if !private_netns("netlink_only_fails_with_exit_2_when_netlink_sockets_are_refused") {
        return;
    }
    let listener = tcp4_listener(40210);
    let _holder = hold(&[listener.as_raw_fd()]);
    for args in [
        &["--source", "netlink", "40210"][..],
        &["--source=netlink", "--json", "-a"][..],
    ] {
        let output = lsport_without_netlink(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("lsport: sock_diag socket: Operation not permitted"),
            "{err}"
        );
        assert!(
            err.contains("--source proc reads /proc/net instead"),
            "{err}"
        );
    }
    // /proc alone needs no netlink socket at all.
    let output = lsport_without_netlink(&["--source", "proc", "-q", "40210"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
