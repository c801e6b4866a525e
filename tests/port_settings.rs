//! The port settings of a namespace when lsport's /proc has no sys/:
//! mounted `subset=pid` in a private mount namespace, as some sandboxes
//! and hardened containers mount it. Every port fact is then read
//! another way (a proc instance of lsport's own, which takes
//! CAP_SYS_ADMIN) and says so, or is marked assumed, in text and JSON:
//! never a default told as this namespace's value.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

/// A private network namespace whose port settings differ from every
/// kernel default: ephemeral range 40000-40999, ports 1500 and 40500
/// reserved, ports below 2000 privileged.
fn setup(test: &str) -> bool {
    if !private_netns(test) {
        return false;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40999");
    sysctl("net.ipv4.ip_local_reserved_ports", "1500,40500");
    sysctl("net.ipv4.ip_unprivileged_port_start", "2000");
    true
}

/// Runs lsport in a private mount namespace whose /proc is a new proc
/// mounted subset=pid (no sys/), in the test's network namespace; with
/// `without_sys_admin`, lsport runs without CAP_SYS_ADMIN.
fn run_under_subset_pid(without_sys_admin: bool, args: &[&str]) -> Output {
    let exec = if without_sys_admin {
        r#"exec setpriv --bounding-set -sys_admin --inh-caps -sys_admin -- "$0" "$@""#
    } else {
        r#"exec "$0" "$@""#
    };
    let script = format!(
        "mount -t proc -o subset=pid proc /proc || exit 111\n\
         test -e /proc/sys && exit 112\n\
         {exec}"
    );
    let output = Command::new("unshare")
        .args(["--mount", "--", "sh", "-c", &script])
        .arg(lsport_path())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running unshare(1)");
    match output.status.code() {
        Some(111) => panic!("mount -o subset=pid failed: {}", stderr(&output)),
        Some(112) => panic!("/proc mounted subset=pid still has sys/: the test proves nothing"),
        _ => output,
    }
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", stdout(output), stderr(output)))
}

/// Each port fact line of the text, for `port`.
fn fact_lines(text: &str, port: u16) -> Vec<String> {
    let prefix = format!("  {port}: ");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn under_subset_pid_the_settings_are_read_from_a_private_proc_instance() {
    let test = "under_subset_pid_the_settings_are_read_from_a_private_proc_instance";
    if !setup(test) {
        return;
    }
    let output = run_under_subset_pid(false, &["--json", "1500", "40500"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc = json_of(&output);
    common::schema::assert_valid("probe", &doc);
    let netns = &doc["netns"];
    assert_eq!(netns["port_settings_read_from"], "private_proc", "{netns}");
    assert_eq!(netns["ephemeral_range"], json!([40000, 40999]));
    assert_eq!(
        netns["reserved_ports"],
        json!([[1500, 1500], [40500, 40500]])
    );
    assert_eq!(netns["unprivileged_port_start"], 2000);
    for assumed in [
        "ephemeral_range_assumed",
        "reserved_ports_assumed",
        "unprivileged_port_start_assumed",
    ] {
        assert_eq!(netns[assumed], false, "{assumed}: {netns}");
    }
    let facts = |port: u64| {
        doc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .cloned()
            .unwrap()
    };
    assert_eq!(facts(1500)["reserved"], true);
    assert_eq!(facts(1500)["privileged"], true);
    assert_eq!(facts(40500)["ephemeral"], true);
    assert_eq!(facts(40500)["reserved"], true);

    let output = run_under_subset_pid(false, &["1500"]);
    let text = stdout(&output);
    let lines = fact_lines(&text, 1500).join("\n");
    assert!(
        lines.contains("ephemeral range 40000-40999, and reserved"),
        "{text}"
    );
    assert!(
        lines.contains("privileged: binding it needs root or CAP_NET_BIND_SERVICE (ip_unprivileged_port_start is 2000)"),
        "{text}"
    );
    assert!(!text.contains("assumed"), "{text}");
    assert!(
        text.contains("read from a proc instance of lsport's own"),
        "where they were read is said: {text}"
    );
}

#[test]
fn under_subset_pid_without_a_way_to_read_them_every_setting_is_marked_assumed() {
    let test = "under_subset_pid_without_a_way_to_read_them_every_setting_is_marked_assumed";
    if !setup(test) {
        return;
    }
    let output = run_under_subset_pid(true, &["--json", "1500", "40500"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc = json_of(&output);
    common::schema::assert_valid("probe", &doc);
    let netns = &doc["netns"];
    assert_eq!(netns["port_settings_read_from"], Value::Null, "{netns}");
    for assumed in [
        "ephemeral_range_assumed",
        "reserved_ports_assumed",
        "unprivileged_port_start_assumed",
    ] {
        assert_eq!(netns[assumed], true, "{assumed}: {netns}");
    }
    // The kernel's defaults stand in, and say so.
    assert_eq!(netns["ephemeral_range"], json!([32768, 60999]));
    assert_eq!(netns["unprivileged_port_start"], 1024);

    let output = run_under_subset_pid(true, &["1500", "40500"]);
    let text = stdout(&output);
    // Port 1500: privileged or not rests on the assumed 1024.
    let lines = fact_lines(&text, 1500);
    let privileged = lines
        .iter()
        .find(|l| l.contains("privileged"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        privileged.contains("ip_unprivileged_port_start is assumed 1024"),
        "{text}"
    );
    // Port 40500 is reserved here: "not reserved" is said to be unchecked.
    let lines = fact_lines(&text, 40500);
    let ephemeral = lines
        .iter()
        .find(|l| l.contains("ephemeral range"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        ephemeral.contains("32768-60999 (assumed")
            && ephemeral
                .contains("not reserved (assumed: ip_local_reserved_ports could not be read)"),
        "{text}"
    );
    assert!(
        text.contains("No port setting could be read"),
        "why is said: {text}"
    );
}
