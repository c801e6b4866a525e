//! An interrupted JSON document: lsport either ends it cleanly (`watch`
//! at its first SIGINT or SIGTERM) or says on stderr that what standard
//! output holds is incomplete, and dies of the signal.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const NOTICE: &str =
    "lsport: interrupted while writing: the JSON document on standard output is incomplete";

/// Bytes waiting in a pipe.
fn queued(fd: RawFd) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut bytes) };
    assert_eq!(rc, 0);
    bytes as usize
}

/// Waits until `child` has filled its stdout pipe and sits blocked on
/// it: the pipe holds as much as it can and no more arrives.
fn wait_until_blocked_on_a_full_pipe(child: &mut Child) {
    let fd = child.stdout.as_ref().unwrap().as_raw_fd();
    let begin = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "lsport ended before its output filled the pipe"
        );
        let now = queued(fd);
        if now != last.0 {
            last = (now, Instant::now());
        } else if now >= 4096 && last.1.elapsed() > Duration::from_millis(500) {
            return;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(120),
            "the pipe never filled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// The rest of the output, the stderr and how lsport ended.
fn finish(mut child: Child) -> (String, String, std::process::ExitStatus) {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (out, stderr(&output), output.status)
}

fn killed_by(status: std::process::ExitStatus, signal: Signal) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(signal as i32), "{status:?}");
}

#[test]
fn a_document_cut_short_by_a_signal_is_said_to_be_incomplete() {
    if !private_netns("a_document_cut_short_by_a_signal_is_said_to_be_incomplete") {
        return;
    }
    // Enough sockets for a document far bigger than a pipe holds.
    let listeners: Vec<TcpListener> = (0..800)
        .map(|n| TcpListener::bind(("127.0.0.1", 42000 + n)).unwrap())
        .collect();
    for sent in [Signal::SIGINT, Signal::SIGTERM] {
        let mut child = lsport_command(["-a", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until_blocked_on_a_full_pipe(&mut child);
        signal(&child, sent);
        let (out, err, status) = finish(child);
        killed_by(status, sent);
        assert_eq!(err.trim_end(), NOTICE, "{sent}");
        assert!(out.len() > 4096);
        assert!(
            serde_json::from_str::<Value>(&out).is_err(),
            "a whole document after {sent}?"
        );
    }
    drop(listeners);
}

#[test]
fn a_watch_ends_its_document_at_the_first_signal_and_says_so_at_the_second() {
    if !private_netns("a_watch_ends_its_document_at_the_first_signal_and_says_so_at_the_second") {
        return;
    }
    // A quiet watch: SIGINT and SIGTERM end it with its summary.
    for sent in [Signal::SIGINT, Signal::SIGTERM] {
        let mut child = lsport_command(["watch", "--json", "42001"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        signal(&child, sent);
        let (rest, err, status) = finish(child);
        assert_eq!(status.code(), Some(1), "nothing reported: {err}");
        assert_eq!(err, "");
        let text = format!("{}{rest}", first[0] as char);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.first().unwrap()["event"], "started");
        assert_eq!(lines.last().unwrap()["event"], "summary", "{sent}");
    }

    // A watch whose reader does not read cannot end cleanly: its first
    // SIGINT asks it to stop, its second ends it, said so.
    let listener = TcpListener::bind("127.0.0.1:42002").unwrap();
    let mut child = lsport_command(["watch", "--json", "42002"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fd = child.stdout.as_ref().unwrap().as_raw_fd();
    let begin = Instant::now();
    while queued(fd) == 0 {
        assert!(begin.elapsed() < Duration::from_secs(60), "no first line");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Hundreds of closes make more lines than the pipe holds.
    let churn = std::thread::spawn(move || {
        for _ in 0..3000 {
            let client = TcpStream::connect("127.0.0.1:42002").unwrap();
            drop(listener.accept().unwrap());
            drop(client);
        }
    });
    wait_until_blocked_on_a_full_pipe(&mut child);
    churn.join().unwrap();
    signal(&child, Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "blocked on its output, the watch cannot end by itself"
    );
    signal(&child, Signal::SIGINT);
    let (out, err, status) = finish(child);
    killed_by(status, Signal::SIGINT);
    assert_eq!(err.trim_end(), NOTICE);
    assert!(!out.contains("\"summary\""));
}
