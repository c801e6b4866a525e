//! A fifo, a device or a huge file where lsport expects a data file or a
//! namespace file: lsport answers at once, with one line about it, and
//! neither hangs nor grows. No namespace needed: these fail before any
//! socket matters, or do not depend on which sockets there are.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A scratch directory with a fifo in it, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lsport-hostile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    fn fifo(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs lsport with `env` and `args`; fails the test if it is still
/// running after five seconds (it would hang forever).
fn run_bounded(env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = lsport_command(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child: Child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running lsport");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lsport {args:?} with {env:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_fifo_as_the_namespace_is_refused_at_once() {
    let scratch = Scratch::new("netns");
    let fifo = scratch.fifo("netns");
    let output = run_bounded(&[], &["--netns", fifo.to_str().unwrap(), "80"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("a fifo, not a namespace file"), "{err}");
    // A regular file is no namespace either.
    let file = scratch.dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    let output = run_bounded(&[], &["--netns", file.to_str().unwrap(), "80"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not a namespace file"));
}

#[test]
fn a_services_file_that_is_no_file_or_too_big_is_left_out_with_a_word() {
    let scratch = Scratch::new("services");
    let fifo = scratch.fifo("services");
    let big = scratch.dir.join("big-services");
    // One byte past the 16 MiB cap.
    std::fs::write(&big, vec![b'#'; (16 << 20) + 1]).unwrap();
    for (file, said) in [
        (Path::new("/dev/zero"), "a character device"),
        (fifo.as_path(), "a fifo"),
        (big.as_path(), "larger than"),
    ] {
        let output = run_bounded(&[("LSPORT_SERVICES_FILE", file)], &["9"]);
        let err = stderr(&output);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{file:?}: the probe still answers: {err}"
        );
        assert!(err.contains(said), "{file:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{file:?}: {err}");
        // IANA's names still work without the local file.
        assert!(stdout(&output).contains("discard"), "{file:?}");
    }
}

#[test]
fn a_device_or_fifo_in_place_of_a_proc_net_table_is_an_error_not_a_hang() {
    let scratch = Scratch::new("proc");
    let root = scratch.dir.join("proc");
    std::fs::create_dir_all(root.join("net")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("net/tcp")).unwrap();
    let args = ["--source", "proc", "-t", "-4", "22"];
    let output = run_bounded(&[("LSPORT_PROC_ROOT", &root)], &args);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("a character device"), "{err}");
    std::fs::remove_file(root.join("net/tcp")).unwrap();
    nix::unistd::mkfifo(
        &root.join("net/tcp"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let output = run_bounded(&[("LSPORT_PROC_ROOT", &root)], &args);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("a fifo"));
}
