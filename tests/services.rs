//! What ports are registered for: the IANA table inside the binary, the
//! local services file (a fixture, through LSPORT_SERVICES_FILE), names
//! as port arguments, and the SERVICE column.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Output;

use common::*;
use serde_json::{Value, json};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/services")
}

/// lsport with the fixture as its local services file, or with none.
fn run(args: &[&str], local: bool) -> Output {
    let file = if local {
        fixture()
    } else {
        PathBuf::from("/nonexistent/services")
    };
    lsport_command(args)
        .env("LSPORT_SERVICES_FILE", file)
        .output()
        .expect("running lsport")
}

fn json_of(args: &[&str], local: bool) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = run(&all, local);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {}", stderr(&output)))
}

/// (name, protocol, source) of each service of the port entry for `port`.
fn services_of(doc: &Value, port: u64) -> Vec<(Value, String, String)> {
    let entry = doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .unwrap_or_else(|| panic!("no entry for {port}: {doc}"));
    entry["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].clone(),
                s["protocol"].as_str().unwrap().to_string(),
                s["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn asked_ports(doc: &Value) -> Vec<u64> {
    doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect()
}

fn iana(name: &str, protocol: &str) -> (Value, String, String) {
    (json!(name), protocol.to_string(), "iana".to_string())
}

#[test]
fn ssh_is_registered_on_22_over_tcp_udp_and_sctp() {
    if !private_netns("ssh_is_registered_on_22_over_tcp_udp_and_sctp") {
        return;
    }
    let doc = json_of(&["22"], false);
    assert_eq!(
        services_of(&doc, 22),
        vec![iana("ssh", "tcp"), iana("ssh", "udp"), iana("ssh", "sctp")]
    );
    let services = &doc["ports"][0]["services"];
    assert_eq!(
        services[0]["description"],
        "The Secure Shell (SSH) Protocol"
    );
    assert_eq!(services[2]["description"], "SSH");
    assert_eq!(services[0]["ports"], json!([22, 22]));

    let output = run(&["22"], false);
    assert_eq!(output.status.code(), Some(1), "nothing holds 22 here");
    let text = stdout(&output);
    // One line per name: IANA's three rows for ssh merge.
    assert!(
        text.contains(
            "  22: IANA service ssh (tcp, udp, sctp): The Secure Shell (SSH) Protocol.\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("IANA service ssh").count(), 1, "{text}");
}

#[test]
fn a_socket_shows_the_name_registered_for_its_own_protocol() {
    if !private_netns("a_socket_shows_the_name_registered_for_its_own_protocol") {
        return;
    }
    // IANA registers 514 as shell on tcp and syslog on udp; 8080 as
    // http-alt on both.
    let shell = TcpListener::bind("127.0.0.1:514").unwrap();
    let syslog = UdpSocket::bind("127.0.0.1:514").unwrap();
    let http_alt = TcpListener::bind("127.0.0.1:8080").unwrap();

    for args in [&["514", "8080"][..], &[][..]] {
        let doc = json_of(args, false);
        let named: Vec<(u64, &str, &str)> = doc["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["local"]["port"].as_u64().unwrap(),
                    s["protocol"].as_str().unwrap(),
                    s["service"].as_str().unwrap_or("(none)"),
                )
            })
            .collect();
        assert_eq!(
            named,
            vec![
                (514, "tcp", "shell"),
                (514, "udp", "syslog"),
                (8080, "tcp", "http-alt")
            ],
            "{args:?}"
        );
    }
    let doc = json_of(&["8080"], false);
    assert_eq!(
        services_of(&doc, 8080),
        vec![iana("http-alt", "tcp"), iana("http-alt", "udp")]
    );
    assert_eq!(doc["ports"][0]["in_use"], true);

    // The table has a SERVICE column, in the port view and the listing view.
    for args in [&["514"][..], &["-l"][..]] {
        let text = stdout(&run(args, false));
        let lines: Vec<&str> = text.lines().collect();
        let header = lines.iter().find(|l| l.starts_with("PROTO")).unwrap();
        let at = header.find("SERVICE").expect("a SERVICE column");
        let tcp = lines
            .iter()
            .find(|l| l.starts_with("tcp ") && l.contains(":514 "))
            .unwrap();
        let udp = lines
            .iter()
            .find(|l| l.starts_with("udp ") && l.contains(":514 "))
            .unwrap();
        assert!(tcp[at..].starts_with("shell "), "{text}");
        assert!(udp[at..].starts_with("syslog "), "{text}");
    }
    drop((shell, syslog, http_alt));
}

#[test]
fn x11_covers_its_whole_range() {
    if !private_netns("x11_covers_its_whole_range") {
        return;
    }
    let doc = json_of(&["6010"], false);
    assert_eq!(
        services_of(&doc, 6010),
        vec![iana("x11", "tcp"), iana("x11", "udp")]
    );
    assert_eq!(doc["ports"][0]["services"][0]["ports"], json!([6000, 6063]));
    let text = stdout(&run(&["6010"], false));
    assert!(
        text.contains("  6010: IANA service x11 (tcp, udp; ports 6000-6063): X Window System.\n"),
        "{text}"
    );

    let text = stdout(&run(&["x11"], false));
    assert!(
        text.contains(
            "  6000-6063: IANA service x11 (tcp, udp; ports 6000-6063): X Window System.\n"
        ),
        "{text}"
    );
    // `lsport x11` probes the whole range and finds a socket inside it.
    let listener = TcpListener::bind("127.0.0.1:6010").unwrap();
    let output = run(&["--json", "x11"], false);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(asked_ports(&doc), vec![6010], "one entry per port in use");
    assert_eq!(sockets_on(&doc, 6010).len(), 1);
    assert_eq!(sockets_on(&doc, 6010)[0]["service"], "x11");
    drop(listener);
}

#[test]
fn reserved_ports_say_so() {
    if !private_netns("reserved_ports_say_so") {
        return;
    }
    let doc = json_of(&["1023", "1024", "49151"], false);
    for port in [1023, 1024, 49151] {
        let entry = doc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .unwrap();
        let services = entry["services"].as_array().unwrap();
        assert!(!services.is_empty(), "{port}");
        for s in services {
            assert_eq!(s["name"], Value::Null, "{port}");
            assert_eq!(s["description"], "Reserved", "{port}");
            assert_eq!(s["source"], "iana", "{port}");
        }
    }
    // 49151 was reserved without a protocol: it covers them all.
    assert_eq!(
        services_of(&doc, 49151),
        vec![(Value::Null, "any".to_string(), "iana".to_string())]
    );
    let text = stdout(&run(&["1024"], false));
    assert!(
        text.contains("  1024: IANA: Reserved (tcp, udp).\n"),
        "{text}"
    );
}

#[test]
fn nothing_is_registered_in_the_dynamic_range() {
    if !private_netns("nothing_is_registered_in_the_dynamic_range") {
        return;
    }
    let doc = json_of(&["60403"], false);
    assert_eq!(doc["ports"][0]["services"], json!([]));
    let text = stdout(&run(&["60403"], false));
    assert!(
        text.contains("  60403: nothing is registered on it with IANA: ports 49152-65535 are dynamic/private and never assigned.\n"),
        "{text}"
    );
}

#[test]
fn names_stand_for_their_ports() {
    if !private_netns("names_stand_for_their_ports") {
        return;
    }
    for (name, ports) in [
        ("ssh", vec![22]),
        ("HTTP", vec![80]),
        ("postgresql", vec![5432]),
        ("msp", vec![18, 2438]),
        ("http-alt", vec![591, 8008, 8080]),
        ("Http-Alt", vec![591, 8008, 8080]),
    ] {
        let output = run(&["--json", name], false);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(asked_ports(&doc), ports, "{name}");
    }
    // Names and numbers mix; a port asked twice is probed once.
    let doc = json_of(&["ssh", "22", "8080", "http-alt"], false);
    assert_eq!(asked_ports(&doc), vec![22, 8080, 591, 8008]);
    // msp's two ports have their own descriptions.
    let doc = json_of(&["msp"], false);
    assert_eq!(
        doc["ports"][0]["services"][0]["description"],
        "Message Send Protocol (historic)"
    );
    assert_eq!(doc["ports"][1]["services"][0]["description"], "MSP");
}

#[test]
fn an_unknown_name_exits_2_with_suggestions() {
    for (args, local, expected) in [
        (
            &["postgress"][..],
            false,
            "lsport: unknown port or service name 'postgress' (did you mean: postgresql?)\n",
        ),
        (
            &["22", "postgress"][..],
            true,
            "lsport: unknown port or service name 'postgress' (did you mean: postgres, postgresql?)\n",
        ),
        (
            &["xqzxqzxqz"][..],
            false,
            "lsport: unknown port or service name 'xqzxqzxqz'\n",
        ),
    ] {
        let output = run(args, local);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert_eq!(stderr(&output), expected, "{args:?}");
    }
}

#[test]
fn the_local_services_file_adds_what_iana_lacks() {
    if !private_netns("the_local_services_file_adds_what_iana_lacks") {
        return;
    }
    let local = |name: &str, protocol: &str| (json!(name), protocol.to_string(), "local".into());
    let doc = json_of(&["40123"], true);
    assert_eq!(
        services_of(&doc, 40123),
        vec![
            local("lsport-test", "tcp"),
            local("lsport-test", "udp"),
            local("lsport-alias", "tcp")
        ]
    );
    assert_eq!(doc["ports"][0]["services"][0]["description"], Value::Null);
    // Names IANA already has on that port and protocol are not repeated.
    let doc = json_of(&["22", "5432"], true);
    assert_eq!(
        services_of(&doc, 22),
        vec![iana("ssh", "tcp"), iana("ssh", "udp"), iana("ssh", "sctp")]
    );
    assert!(services_of(&doc, 5432).contains(&local("postgres", "tcp")));
    assert!(!services_of(&doc, 5432).contains(&local("postgresql", "tcp")));

    // Local names resolve, without regard to case; a socket on their
    // port shows them.
    let listener = TcpListener::bind("127.0.0.1:40123").unwrap();
    let output = run(&["--json", "LSPORT-ALIAS"], true);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(asked_ports(&doc), vec![40123]);
    assert_eq!(sockets_on(&doc, 40123)[0]["service"], "lsport-test");
    let text = stdout(&run(&["40123"], true));
    assert!(
        text.contains(
            "  40123: local service lsport-test (tcp, udp), from the local services file.\n"
        ),
        "{text}"
    );
    drop(listener);

    // Malformed lines are skipped, not fatal; their names mean nothing.
    for name in ["broken-port", "no-protocol", "bad-number", "rtmp"] {
        let output = run(&[name], true);
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(
            stderr(&output).starts_with(&format!("lsport: unknown port or service name '{name}'")),
            "{name}: {}",
            stderr(&output)
        );
    }
    // Without the file, the local names are gone and IANA's remain.
    let output = run(&["lsport-test"], false);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        services_of(&json_of(&["22"], false), 22).len(),
        3,
        "IANA needs no /etc"
    );
}
