//! The committed man page is what `lsport --generate man` prints, so it
//! cannot drift from the flags. After changing a flag or
//! man/lsport.1.in, regenerate it with
//!
//!     cargo run -- --generate man > man/lsport.1

mod common;

use common::*;

#[test]
fn the_committed_man_page_is_up_to_date() {
    let output = lsport(["--generate", "man"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let generated = stdout(&output);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/lsport.1");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "man/lsport.1 is stale (first difference on line {}); regenerate it with\n    \
             cargo run -- --generate man > man/lsport.1",
            line + 1
        );
    }
}

#[test]
fn the_man_page_names_every_visible_flag_of_help() {
    // --help and the page come from the same definitions: every long
    // flag that --help shows is in OPTIONS.
    let help = stdout(&lsport(["--help"]));
    let page = stdout(&lsport(["--generate", "man"]));
    let options = page
        .split("\n.SH OPTIONS\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .expect("an OPTIONS section");
    let mut seen = 0;
    for word in help.split_whitespace() {
        if let Some(flag) = word.strip_prefix("--") {
            let flag = flag.trim_end_matches(|c: char| !c.is_alphanumeric());
            let roff = format!("\\fB\\-\\-{}\\fR", flag.replace('-', "\\-"));
            assert!(options.contains(&roff), "--{flag} is not in OPTIONS");
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} flags found in --help");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef lsport"),
        ("fish", "complete -c lsport"),
    ] {
        let output = lsport(["--generate", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(stdout(&output).contains(marker), "{shell}");
    }
    let output = lsport(["--generate", "powershell"]);
    assert_eq!(output.status.code(), Some(2));
}
