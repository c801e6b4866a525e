//! Input handling: bad input gets one line on stderr and exit status 2.
//! These need no namespace: they fail before any socket is looked at.

mod common;

use common::*;

#[test]
fn bad_input_gets_one_clear_line_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["abc"],
        &["70000"],
        &["--", "-1"],
        &["9000-8000"],
        &["1-2-3"],
        &[""],
        &["65536"],
        &["--color=sometimes", "22"],
        &["--no-such-flag"],
    ];
    for args in cases {
        let output = lsport(*args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("lsport: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let help = lsport(["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Usage: lsport"));
    let version = lsport(["-V"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        stdout(&version).trim(),
        format!("lsport {}", env!("CARGO_PKG_VERSION"))
    );
}
