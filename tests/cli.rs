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
        &["-o", "proto,comand", "22"],
        &["-o", "proto,,pid", "22"],
        &["-o", "", "22"],
        &["ephemeral", "--top", "0"],
        &["suggest", "0"],
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

#[test]
fn an_unknown_column_names_the_close_ones() {
    let output = lsport(["-o", "proto,comand", "22"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(err.contains("unknown column 'comand'"), "{err}");
    assert!(err.contains("did you mean: command"), "{err}");
}

#[test]
fn column_help_lists_every_column_with_its_json_key() {
    let output = lsport(["-o", "help"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for name in [
        "proto",
        "state",
        "role",
        "local",
        "service",
        "remote",
        "pid",
        "user",
        "fd",
        "command",
        "args",
        "uid",
        "inode",
        "netns",
        "container",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches([' ', '*']).starts_with(name)),
            "-o help lacks {name}: {text}"
        );
    }
    assert!(text.contains("JSON: holders[].pid"), "{text}");
    // --help carries the same list, from the same registry.
    let help = stdout(&lsport(["--help"]));
    assert!(help.contains("Columns: proto, state, role"), "{help}");
}

#[test]
fn an_unwritable_stderr_loses_the_message_not_the_status() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED an_unwritable_stderr_loses_the_message_not_the_status: no /dev/full\n",
        );
        return;
    };
    let output = lsport_command(["99999"])
        .stderr(full)
        .output()
        .expect("running lsport");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_small_stack_limit_still_answers() {
    use std::os::unix::process::CommandExt;
    for args in [&["--version"][..], &["-q", "9"], &["--json", "-a"]] {
        let mut command = lsport_command(args);
        // SAFETY: setrlimit is async-signal-safe. 40 KB, as `ulimit -s 40`.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 40 << 10,
                    rlim_max: 40 << 10,
                };
                if libc::setrlimit(libc::RLIMIT_STACK, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let output = command.output().expect("running lsport");
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{args:?} under a 40 KB stack: {:?} {}",
            output.status,
            stderr(&output)
        );
    }
}

#[test]
fn a_read_only_stdout_is_an_error_and_bad_values_are_escaped_not_stripped() {
    let read_only = std::fs::File::open("/dev/null").unwrap();
    let output = lsport_command(["-a"])
        .stdout(read_only)
        .output()
        .expect("running lsport");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("writing output: standard output is open for reading only"),
        "{}",
        stderr(&output)
    );

    let output = lsport(["--color", "x\x1b[31my", "22"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(err.contains("invalid value 'x\\x1b[31my'"), "{err}");
}

/// clap quotes an unknown flag or a value its parser refused after
/// stripping the escape sequences in it; lsport puts them back, escaped.
#[test]
fn unknown_flags_and_refused_values_are_quoted_escaped_not_stripped() {
    for (args, quoted) in [
        (
            vec!["--fo\x1b[31mo", "22"],
            "unexpected argument '--fo\\x1b[31mo'",
        ),
        (
            vec!["ephemeral", "--top", "\x1b[2J"],
            "invalid value '\\x1b[2J' for '--top <N>'",
        ),
    ] {
        let output = lsport(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr(&output);
        assert!(!err.contains('\x1b'), "{args:?}: {err:?}");
        assert!(err.contains(quoted), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// `-o help --json` is the same registry as `-o help`, as a document.
#[test]
fn column_help_as_json_lists_the_same_columns() {
    let text = stdout(&lsport(["-o", "help"]));
    let output = lsport(["-o", "help", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("one JSON document");
    common::schema::assert_valid("columns", &doc);
    let listed: Vec<(bool, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let default = l.trim_start().starts_with('*');
            let name = l.trim_start_matches([' ', '*']).split(' ').next().unwrap();
            (default, name.to_string())
        })
        .collect();
    let columns: Vec<(bool, String)> = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["default"].as_bool().unwrap(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(columns, listed);
}

/// Every command that takes a port, with the argument last.
const PORT_TAKERS: &[&[&str]] = &[
    &[],
    &["why"],
    &["kill", "-n"],
    &["wait", "--listening", "--timeout", "0"],
    &["watch", "--for", "1ms"],
    &["suggest", "--near"],
    &["suggest", "--range"],
    &["ephemeral", "--check-range"],
];

fn with_port(command: &[&str], port: &str) -> std::process::Output {
    let mut args = command.to_vec();
    args.push(port);
    lsport(&args)
}

/// One parser reads a port for every command: the same spelling is
/// refused by each with the same line, and a name is read as its number.
#[test]
fn every_command_reads_a_port_the_same_way() {
    if !private_netns("one-port-parser") {
        return;
    }
    for (spelling, says) in [
        (
            "+22",
            "invalid port '+22': a port is plain digits, without a sign or leading zeros: write 22",
        ),
        (
            "022",
            "invalid port '022': a port is plain digits, without a sign or leading zeros: write 22",
        ),
        (
            "00",
            "invalid port '00': a port is plain digits, without a sign or leading zeros: write 0",
        ),
        (
            "+080-090",
            "invalid port '+080-090': a port is plain digits, without a sign or leading zeros: write 80-90",
        ),
        (" 22", "invalid port ' 22': not a number"),
        ("22.0", "invalid port '22.0': not a number"),
        (
            "\u{ff12}\u{ff12}",
            "invalid port '\u{ff12}\u{ff12}': not a number",
        ),
        ("65536", "invalid port '65536': ports go from 0 to 65535"),
        (
            "99999999999999999999",
            "invalid port '99999999999999999999': ports go from 0 to 65535",
        ),
        (
            "22-",
            "invalid port range '22-': expected LOW-HIGH, e.g. 8000-8100",
        ),
        ("23-22", "invalid port range '23-22': 23 is greater than 22"),
        ("", "empty port argument: give a port, as 8080"),
        (
            "0x16",
            "unknown port or service name '0x16' (did you mean: x11?)",
        ),
    ] {
        for command in PORT_TAKERS {
            let output = with_port(command, spelling);
            let err = stderr(&output);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command:?} {spelling:?}: {err}"
            );
            assert!(output.stdout.is_empty(), "{command:?} {spelling:?}");
            // Escaped as every message is: the fullwidth digits stay.
            assert_eq!(err, format!("lsport: {says}\n"), "{command:?} {spelling:?}");
        }
    }
    for (name, number) in [("ssh", "22"), ("SSH", "22"), ("http", "80")] {
        for command in PORT_TAKERS {
            let by_name = with_port(command, name);
            let by_number = with_port(command, number);
            let what = format!("{command:?} {name} against {number}");
            assert_ne!(
                by_name.status.code(),
                Some(2),
                "{what}: {}",
                stderr(&by_name)
            );
            assert_eq!(by_name.status.code(), by_number.status.code(), "{what}");
            // watch starts each line with the time, its "slower" line
            // gives the dump time it measured, and its summary how long
            // it watched.
            let untimed = |output: &std::process::Output| -> Vec<String> {
                stdout(output)
                    .lines()
                    .filter(|l| !l.contains(" slower "))
                    .map(|l| {
                        let l = l.trim_start_matches(|c: char| {
                            c.is_ascii_digit() || c == ':' || c == '.'
                        });
                        match l.strip_prefix("Watched ").and_then(|r| r.split_once(": ")) {
                            Some((_, rest)) => format!("Watched: {rest}"),
                            None => l.to_string(),
                        }
                    })
                    .collect()
            };
            assert_eq!(untimed(&by_name), untimed(&by_number), "{what}");
        }
    }
}
