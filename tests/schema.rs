//! The JSON lsport prints, checked against the JSON Schemas of
//! doc/schema/: the probe (`--json`), `ephemeral --json`,
//! `suggest --json` and `kill --json`. The documents come from the real binary, run against
//! real sockets in a private network namespace; the schemas are also
//! checked for what they promise as documentation (a description on every
//! field, no field left unlisted), and the validator is shown to reject
//! a document with a field renamed or of the wrong type, so that a pass
//! means something.

#![recursion_limit = "256"]

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use jsonschema::Validator;
use serde_json::{Value, json};

const SCHEMAS: [&str; 6] = [
    "probe",
    "ephemeral",
    "suggest",
    "kill",
    "columns",
    "why-unix",
];

fn schema_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("doc/schema")
        .join(format!("{name}.schema.json"))
}

fn schema(name: &str) -> Value {
    let path = schema_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is no JSON: {e}", path.display()))
}

/// One schema of doc/schema/, compiled.
struct Schema {
    name: &'static str,
    validator: Validator,
}

/// A draft 2020-12 validator for one schema, with `format` asserted
/// rather than only noted.
fn validator(name: &'static str) -> Schema {
    Schema {
        name,
        validator: compile(name, &schema(name)),
    }
}

fn compile(name: &str, schema: &Value) -> Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_retriever(common::schema::Siblings)
        .build(schema)
        .unwrap_or_else(|e| panic!("{name}.schema.json does not compile: {e}"))
}

impl Schema {
    /// Why `doc` does not match. A schema whose top level is a `oneOf`
    /// would only say that no branch matched: each branch is tried on
    /// its own instead, and says what it found wrong.
    fn explain(&self, doc: &Value) -> String {
        let whole = schema(self.name);
        let branches = match whole.get("oneOf") {
            Some(Value::Array(branches)) => branches.clone(),
            _ => vec![json!({})],
        };
        let mut out = String::new();
        for (i, branch) in branches.iter().enumerate() {
            let mut alone = whole.clone();
            let map = alone.as_object_mut().unwrap();
            map.remove("oneOf");
            for (key, value) in branch.as_object().unwrap() {
                map.insert(key.clone(), value.clone());
            }
            let validator = compile(self.name, &alone);
            if branches.len() > 1 {
                out.push_str(&format!("as branch {i} of oneOf, {branch}:\n"));
            }
            for error in validator.iter_errors(doc) {
                out.push_str(&format!("  {error} (at {})\n", error.instance_path()));
            }
        }
        out
    }
}

fn assert_valid(schema: &Schema, doc: &Value, what: &str) {
    assert!(
        schema.validator.is_valid(doc),
        "{what}: the document does not match {}.schema.json:\n{}document: {doc:#}",
        schema.name,
        schema.explain(doc)
    );
}

fn assert_invalid(schema: &Schema, doc: &Value, what: &str) {
    assert!(
        !schema.validator.is_valid(doc),
        "{what}: {}.schema.json accepts a document it should reject: {doc:#}",
        schema.name
    );
}

/// A change to make to a document, and what it does.
type Mutation<'a> = (&'a str, &'a dyn Fn(&mut Value));

/// Each change made to a valid document; every one must be rejected.
fn assert_mutations_rejected(schema: &Schema, doc: &Value, what: &str, mutations: &[Mutation<'_>]) {
    assert_valid(schema, doc, what);
    for (change, mutate) in mutations {
        let mut changed = doc.clone();
        mutate(&mut changed);
        assert_ne!(&changed, doc, "{what}: '{change}' changed nothing");
        assert_invalid(schema, &changed, &format!("{what}, {change}"));
    }
}

/// Renames a field of an object, keeping its value.
fn rename(object: &mut Value, from: &str, to: &str) {
    let map = object.as_object_mut().expect("an object");
    let value = map
        .remove(from)
        .unwrap_or_else(|| panic!("no field {from}"));
    map.insert(to.to_string(), value);
}

// ---------------------------------------------------------------------
// The schemas themselves.

/// Every subschema of a schema document, with its JSON pointer.
fn subschemas<'a>(pointer: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            out.push((pointer.clone(), value));
            for (key, child) in map {
                // `properties` and `$defs` hold names, not keywords: their
                // members are schemas all the same.
                subschemas(format!("{pointer}/{key}"), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                subschemas(format!("{pointer}/{i}"), child, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_schemas_are_strict_draft_2020_12_documents_that_describe_every_field() {
    for name in SCHEMAS {
        assert_strict(name);
    }
}

#[test]
fn the_why_schema_is_strict_and_describes_every_field() {
    assert_strict("why");
}

/// A schema is a valid draft 2020-12 document with lsport's `$id`, a
/// description on every field and definition, and objects that list
/// every field as required and allow no other.
fn assert_strict(name: &str) {
    let doc = schema(name);
    if let Err(e) = jsonschema::draft202012::meta::validate(&doc) {
        panic!("{name}.schema.json is no valid draft 2020-12 schema: {e}");
    }
    assert_eq!(
        doc["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{name}"
    );
    assert_eq!(
        doc["$id"],
        format!("https://lsport.invalid/schema/{name}.schema.json"),
        "{name}"
    );
    for key in ["title", "description"] {
        assert!(doc[key].is_string(), "{name}.schema.json has no {key}");
    }
    let mut all = Vec::new();
    subschemas(String::new(), &doc, &mut all);
    for (pointer, subschema) in all {
        if let Some(definitions) = subschema.get("$defs").and_then(Value::as_object) {
            for (def, body) in definitions {
                assert!(
                    body["description"].is_string(),
                    "{name}.schema.json#{pointer}/$defs/{def} has no description"
                );
            }
        }
        let Some(properties) = subschema.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let here = format!("{name}.schema.json#{pointer}");
        for (field, body) in properties {
            assert!(
                body["description"].is_string(),
                "{here}: property {field} has no description"
            );
        }
        // lsport writes every field of an object every time: each is
        // required, and no other may appear.
        assert_eq!(
            subschema["additionalProperties"],
            Value::Bool(false),
            "{here}: additionalProperties is not false"
        );
        let mut required: Vec<&str> = subschema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{here}: no required list"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut listed: Vec<&str> = properties.keys().map(String::as_str).collect();
        required.sort_unstable();
        listed.sort_unstable();
        assert_eq!(required, listed, "{here}: required differs from properties");
    }
}

/// Small documents written by hand, shaped as lsport writes them: the
/// schemas accept them, and reject them once a field is renamed, of the
/// wrong type or out of range. This runs where no namespace can be had.
#[test]
fn the_validator_rejects_renamed_and_mistyped_fields() {
    let netns = json!({"inode": 4026531840u64, "name": null, "container": null});
    let probe = json!({
        "schema_version": 1,
        "source": "netlink",
        "iana_registry_updated": "2026-08-17",
        "blind_spots": [],
        "netns": {"inode": 4026531840u64, "name": "blue", "container": null,
                  "ephemeral_range": [32768, 60999], "ephemeral_range_assumed": false,
                  "reserved_ports": [[9000, 9100]], "reserved_ports_assumed": false,
                  "unprivileged_port_start": 1024, "unprivileged_port_start_assumed": false,
                  "port_settings_read_from": "proc"},
        "namespaces": [{"inode": 4026531840u64, "name": "blue", "container": null,
                        "ephemeral_range": [32768, 60999], "ephemeral_range_assumed": false,
                        "reserved_ports": [[9000, 9100]], "reserved_ports_assumed": false,
                        "unprivileged_port_start": 1024,
                        "unprivileged_port_start_assumed": true,
                        "port_settings_read_from": "private_proc"}],
        "ports": [{"port": 22, "iana_range": "system", "ephemeral": false, "reserved": false,
                   "privileged": true, "in_use": true, "verdict": "in_use",
                   "forwards": [{"source": "nftables", "table_family": "ip", "table": "nat",
                                 "chains": ["PREROUTING", "DOCKER"], "hook": "prerouting",
                                 "rule": 7, "position": 2, "comment": null,
                                 "families": ["inet"], "protocols": ["tcp"],
                                 "ports": [[22, 22]],
                                 "interfaces": [{"direction": "in", "name": "docker0",
                                                 "prefix": null, "index": null,
                                                 "negated": true}],
                                 "destinations": [{"network": "127.0.0.0", "prefix": 8,
                                                   "negated": true}],
                                 "destination_types": ["to an address of type LOCAL"],
                                 "unread_conditions": [],
                                 "target": {"kind": "dnat",
                                            "addresses": ["172.17.0.2", "172.17.0.2"],
                                            "ports": [80, 80], "text": "172.17.0.2:80"},
                                 "target_netns": netns,
                                 "target_sockets": {"protocols": ["tcp"], "ports": [80, 80],
                                                    "taking": [], "elsewhere": [],
                                                    "error": null},
                                 "delete_command": "nft delete rule ip nat DOCKER handle 7"}],
                   "undecoded_rules": [],
                   "services": [{"name": "ssh", "protocol": "tcp",
                                 "description": "The Secure Shell (SSH) Protocol",
                                 "ports": [22, 22], "source": "iana"}],
                   "netns": netns}],
        "sockets": [{"protocol": "tcp", "family": "inet6", "state": "LISTEN", "role": "listener",
                     "local": {"address": "::", "port": 22},
                     "remote": {"address": "::", "port": 0},
                     "v6only": false, "mptcp": false, "service": "ssh", "uid": 0, "inode": 5396,
                     "ends_in_ms": null, "risky": false,
                     "holders": [{"pid": 870, "command": "sshd", "cmdline": ["sshd", "-D"],
                                  "user": "root", "uid": 0, "pid_in_namespace": 1,
                                  "container": {"runtime": "docker", "id": "d0b3604b67ac",
                                                "name": null, "pod_uid": null},
                                  "fd": 3,
                                  "proxy": {"kind": "docker-proxy",
                                            "forwards": [{"protocol": "tcp",
                                                          "host_address": "0.0.0.0",
                                                          "host_ports": [22, 22],
                                                          "target": "172.17.0.2:22",
                                                          "target_address": "172.17.0.2",
                                                          "target_port": 22,
                                                          "target_netns": null}],
                                            "unsaid": null}}],
                     "holders_hidden": false,
                     "cgroup": {"id": 4821, "path": "/system.slice/ssh.service",
                                "unit": "ssh.service", "container": null},
                     "netns": netns}],
        "hidden_holders": 1,
        "unreadable_processes": [{"pid": 1, "command": "init", "uid": 0,
                                  "reason": "fd_links_refused", "error": "Permission denied"}],
        "holders_from": "proc",
        "unix": null
    });
    let probe_schema = validator("probe");
    assert_valid(&probe_schema, &json!({}), "the empty probe document");
    let mut served = probe.clone();
    served["ports"][0]["forwards"][0]["target_sockets"]["taking"] =
        json!([probe["sockets"][0].clone()]);
    assert_valid(
        &probe_schema,
        &served,
        "a target with a socket taking the traffic",
    );
    let mut unprobed = probe.clone();
    unprobed["ports"][0]["forwards"][0]["target_sockets"]["error"] =
        json!("no such network namespace");
    assert_valid(
        &probe_schema,
        &unprobed,
        "a target that could not be probed",
    );
    assert_mutations_rejected(
        &probe_schema,
        &probe,
        "a hand-written probe document",
        &[
            ("schema_version 2", &|d| d["schema_version"] = json!(2)),
            ("sockets[0].role renamed", &|d| {
                rename(&mut d["sockets"][0], "role", "kind")
            }),
            ("sockets[0].local.port a string", &|d| {
                d["sockets"][0]["local"]["port"] = json!("22")
            }),
            ("a port past 65535", &|d| {
                d["ports"][0]["port"] = json!(65536)
            }),
            ("an unknown verdict", &|d| {
                d["ports"][0]["verdict"] = json!("taken")
            }),
            ("a forward from a hook that has no nat", &|d| {
                d["ports"][0]["forwards"][0]["hook"] = json!("input")
            }),
            ("a forward's target of a kind lsport does not read", &|d| {
                d["ports"][0]["forwards"][0]["target"]["kind"] = json!("snat")
            }),
            ("a target's sockets without their ports", &|d| {
                d["ports"][0]["forwards"][0]["target_sockets"]
                    .as_object_mut()
                    .unwrap()
                    .remove("ports");
            }),
            ("a target's socket that is not a socket", &|d| {
                d["ports"][0]["forwards"][0]["target_sockets"]["taking"] = json!([{"port": 80}])
            }),
            ("a target probed for sctp", &|d| {
                d["ports"][0]["forwards"][0]["target_sockets"]["protocols"] = json!(["sctp"])
            }),
            ("a forward's delete command left out", &|d| {
                d["ports"][0]["forwards"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("delete_command");
            }),
            ("a proxy of a kind lsport does not name", &|d| {
                d["sockets"][0]["holders"][0]["proxy"]["kind"] = json!("socat")
            }),
            ("an unknown blind spot", &|d| {
                d["blind_spots"] = json!(["nat_rules"])
            }),
            ("an unknown state name", &|d| {
                d["sockets"][0]["state"] = json!("LISTENING")
            }),
            ("a state number lsport knows", &|d| {
                d["sockets"][0]["state"] = json!("10")
            }),
            ("an unknown role", &|d| {
                d["sockets"][0]["role"] = json!("server")
            }),
            ("a time left in seconds as a string", &|d| {
                d["sockets"][0]["ends_in_ms"] = json!("57s")
            }),
            ("v6only a string", &|d| {
                d["sockets"][0]["v6only"] = json!("no")
            }),
            ("a holder's uid a string", &|d| {
                d["sockets"][0]["holders"][0]["uid"] = json!("0")
            }),
            ("an unknown container runtime", &|d| {
                d["sockets"][0]["holders"][0]["container"]["runtime"] = json!("rkt")
            }),
            ("a container without pod_uid", &|d| {
                d["sockets"][0]["holders"][0]["container"]
                    .as_object_mut()
                    .unwrap()
                    .remove("pod_uid");
            }),
            ("an unknown blind spot", &|d| {
                d["blind_spots"] = json!(["udp_everything"])
            }),
            ("an unknown iana_range", &|d| {
                d["ports"][0]["iana_range"] = json!("private")
            }),
            ("a service source neither iana nor local", &|d| {
                d["ports"][0]["services"][0]["source"] = json!("etc")
            }),
            ("a three-port range", &|d| {
                d["netns"]["reserved_ports"] = json!([[9000, 9050, 9100]])
            }),
            ("a cgroup without its unit", &|d| {
                d["sockets"][0]["cgroup"]
                    .as_object_mut()
                    .unwrap()
                    .remove("unit");
            }),
            ("a cgroup id as a string", &|d| {
                d["sockets"][0]["cgroup"]["id"] = json!("4821")
            }),
            ("a socket without its cgroup", &|d| {
                d["sockets"][0].as_object_mut().unwrap().remove("cgroup");
            }),
            ("an extra top-level field", &|d| d["extra"] = json!(true)),
            ("hidden_holders missing", &|d| {
                d.as_object_mut().unwrap().remove("hidden_holders");
            }),
            ("no namespaces", &|d| d["namespaces"] = json!([])),
            ("unreadable_processes missing", &|d| {
                d.as_object_mut().unwrap().remove("unreadable_processes");
            }),
            ("holders_from missing", &|d| {
                d.as_object_mut().unwrap().remove("holders_from");
            }),
            ("holders from an unknown walk", &|d| {
                d["holders_from"] = json!("bpf")
            }),
            ("an unknown reason a process could not be read", &|d| {
                d["unreadable_processes"][0]["reason"] = json!("forbidden")
            }),
            ("an unreadable process without its pid", &|d| {
                d["unreadable_processes"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("pid");
            }),
            ("reserved_ports_assumed missing", &|d| {
                d["netns"]
                    .as_object_mut()
                    .unwrap()
                    .remove("reserved_ports_assumed");
            }),
            ("unprivileged_port_start_assumed a string", &|d| {
                d["namespaces"][0]["unprivileged_port_start_assumed"] = json!("yes")
            }),
            ("an unknown place the settings were read from", &|d| {
                d["netns"]["port_settings_read_from"] = json!("sysctl")
            }),
            ("a date that is no date", &|d| {
                d["iana_registry_updated"] = json!("2026-13-45")
            }),
            ("an address that is no address", &|d| {
                d["sockets"][0]["local"]["address"] = json!("localhost")
            }),
        ],
    );

    let ephemeral = json!({
        "schema_version": 1, "netns": {"inode": null}, "range": [40000, 40099],
        "range_assumed": false, "size": 100, "reserved_in_range": 1, "same_parity": false,
        "usable": 98, "hard_bound_ports": [40090],
        "in_use": {"established": 1, "closing": 0, "time_wait": 2},
        "destinations": [{"address": "127.0.0.1", "port": 30000, "established": 1,
                          "closing": 0, "time_wait": 2, "headroom": 95,
                          "headroom_percent": 96.94}],
        "risky_listeners": [{"protocol": "tcp", "role": "listener", "address": "127.0.0.1",
                             "port": 40090, "pids": [19162]}],
        "forwarded_ports": [[40060, 40062]],
        "overlaps": [{"planned": [30000, 32767], "overlap": null, "unreserved": 0}],
        "fix": {"reserved_ports": "40050,40090",
                "now": "sysctl -w net.ipv4.ip_local_reserved_ports=40050,40090",
                "persistent_file": "/etc/sysctl.d/90-lsport-reserved-ports.conf",
                "persistent_line": "net.ipv4.ip_local_reserved_ports = 40050,40090"},
        "problems": ["1 listening or bound-only socket inside the ephemeral range and not reserved"],
        "healthy": false
    });
    let ephemeral_schema = validator("ephemeral");
    assert_valid(
        &ephemeral_schema,
        &json!([ephemeral, ephemeral]),
        "a list of ephemeral documents",
    );
    assert_mutations_rejected(
        &ephemeral_schema,
        &ephemeral,
        "a hand-written ephemeral document",
        &[
            ("usable renamed", &|d| rename(d, "usable", "usable_ports")),
            ("a forwarded port alone, not a range", &|d| {
                d["forwarded_ports"][0] = json!(40060)
            }),
            ("headroom_percent a string", &|d| {
                d["destinations"][0]["headroom_percent"] = json!("96.94")
            }),
            ("headroom_percent past 100", &|d| {
                d["destinations"][0]["headroom_percent"] = json!(100.5)
            }),
            ("fix a string", &|d| d["fix"] = json!("none")),
            ("a risky time-wait socket", &|d| {
                d["risky_listeners"][0]["role"] = json!("time-wait")
            }),
            ("netns with a name", &|d| d["netns"]["name"] = json!("blue")),
            ("the list form holding a number", &|d| {
                *d = json!([d.clone(), 1])
            }),
        ],
    );

    let suggest_schema = validator("suggest");
    assert_mutations_rejected(
        &suggest_schema,
        &json!({"schema_version": 1, "ports": [7996, 7995, 7994],
                "blind_spots": ["nftables_rules"]}),
        "a hand-written suggest document",
        &[
            ("a blind spot suggest cannot have", &|d| {
                d["blind_spots"][0] = json!("tcp_bound_only")
            }),
            ("blind_spots left out", &|d| {
                d.as_object_mut().unwrap().remove("blind_spots");
            }),
            ("ports renamed", &|d| rename(d, "ports", "port")),
            ("a port as a string", &|d| d["ports"][0] = json!("7996")),
            ("port 0", &|d| d["ports"][0] = json!(0)),
            ("a port twice", &|d| d["ports"][1] = json!(7996)),
            ("schema_version a string", &|d| {
                d["schema_version"] = json!("1")
            }),
        ],
    );

    // A reload: the master signalled, a worker left to it, a new worker
    // named after it, an orphaned connection left to the kernel.
    let mut kill = json!({
        "schema_version": 1, "action": "kill", "mode": "signal", "dry_run": false,
        "signal": "HUP", "grace_ms": 5000, "escalate": false, "timeout_ms": 5000,
        "ports": [[80, 80]], "unix": null, "with_connections": false, "wide": false,
        "targets": [
            {"pid": 100, "pid_in_namespace": null, "command": "nginx", "user": "root",
             "uid": 0, "container": {"runtime": "systemd", "id": "nginx.service",
                                     "name": "nginx", "pod_uid": null},
             "stop_command": "systemctl stop nginx.service", "parent_pid": 1,
             "parent_command": "systemd", "ports": [80],
             "blast_radius": {"also_listening": [{"protocol": "tcp", "port": 443}],
                              "connections": 2, "shared_with_parent": false},
             "signals_sent": ["HUP"], "result": "still_holding", "refusal": null},
            {"pid": 101, "pid_in_namespace": null, "command": "nginx", "user": "www-data",
             "uid": 33, "container": null, "stop_command": null, "parent_pid": 100,
             "parent_command": "nginx", "ports": [80],
             "blast_radius": {"also_listening": [{"protocol": "tcp", "port": 443}],
                              "connections": 2, "shared_with_parent": true},
             "signals_sent": [], "result": "left_to_parent", "refusal": null}
        ],
        "sockets": [], "hidden_holders": 0, "left_alone": 0,
        "respawns": [{"pid": 102, "command": "nginx", "port": 80, "inherited": true,
                      "supervisor": null, "stop_command": null, "parent_pid": 100,
                      "parent_command": "nginx"}],
        "remaining": [{"protocol": "tcp", "state": "LISTEN",
                       "local": {"address": "0.0.0.0", "port": 80},
                       "remote": {"address": "0.0.0.0", "port": 0}, "uid": 0,
                       "inode": 4242, "holders": [{"pid": 100, "command": "nginx"},
                                                  {"pid": 102, "command": "nginx"}],
                       "holders_hidden": false}],
        "time_wait": {"count": 0, "last_ends_in_ms": null},
        "orphaned": {"count": 1, "last_ends_in_ms": 59000},
        "outcome": "signalled", "freed_after_ms": null,
        "forwards": [{"protocols": ["tcp"], "ports": [[80, 80]], "target": "172.17.0.2:80",
                      "container": {"runtime": "docker", "id": "d0b3604b67ac",
                                    "name": null, "pod_uid": null},
                      "table": "ip nat", "chains": ["PREROUTING", "DOCKER"],
                      "hook": "prerouting", "rule": "rule handle 7",
                      "delete_command": "nft delete rule ip nat DOCKER handle 7"}],
        "socket_units": [{"unit": "web.socket", "activates": "web.service",
                          "stop_command": "systemctl stop web.socket web.service"}]
    });
    // kill's forwards give the probe's target_sockets, holders and all.
    kill["forwards"][0]["target_sockets"] =
        served["ports"][0]["forwards"][0]["target_sockets"].clone();
    assert_mutations_rejected(
        &validator("kill"),
        &kill,
        "a hand-written kill document",
        &[
            ("orphaned renamed", &|d| rename(d, "orphaned", "orphans")),
            ("an unknown outcome", &|d| d["outcome"] = json!("reloaded")),
            ("a socket unit without its stop command", &|d| {
                d["socket_units"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("stop_command");
            }),
            ("a forward from the input hook", &|d| {
                d["forwards"][0]["hook"] = json!("input")
            }),
            ("a forward's container a string", &|d| {
                d["forwards"][0]["container"] = json!("d0b3604b67ac")
            }),
            ("a forward's target socket without its holders", &|d| {
                d["forwards"][0]["target_sockets"]["taking"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("holders");
            }),
            ("a forward's target sockets a list", &|d| {
                d["forwards"][0]["target_sockets"] = json!([])
            }),
            ("an unknown result", &|d| {
                d["targets"][1]["result"] = json!("left")
            }),
            ("connections a string", &|d| {
                d["targets"][0]["blast_radius"]["connections"] = json!("2")
            }),
            ("a listening port without its protocol", &|d| {
                d["targets"][0]["blast_radius"]["also_listening"][0] = json!({"port": 443})
            }),
            ("a holder's pid 0", &|d| {
                d["remaining"][0]["holders"][0]["pid"] = json!(0)
            }),
            ("inherited missing", &|d| {
                d["respawns"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("inherited");
            }),
            ("wide a string", &|d| d["wide"] = json!("no")),
        ],
    );
}

// ---------------------------------------------------------------------
// The real binary.

/// A namespace with a known port policy: ephemeral range 40000-40099,
/// 40050 reserved, ports below 1024 privileged.
fn setup(test: &str) -> bool {
    if !private_netns(test) {
        return false;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "40050");
    sysctl("net.ipv4.ip_unprivileged_port_start", "1024");
    true
}

/// A local services file naming a port IANA leaves unnamed for TCP, so
/// that `"source": "local"` shows up.
struct ServicesFile(OpenTempDir);

const LOCAL_PORT: u16 = 8095;
const LOCAL_NAME: &str = "lsport-schema-check";

impl ServicesFile {
    /// `test` keeps the files of tests running at once apart.
    fn new(test: &str) -> ServicesFile {
        let dir = OpenTempDir::new(&format!("schema-{test}"));
        std::fs::write(
            dir.path.join("services"),
            format!("{LOCAL_NAME}\t{LOCAL_PORT}/tcp\n"),
        )
        .unwrap();
        ServicesFile(dir)
    }

    fn path(&self) -> PathBuf {
        self.0.path.join("services")
    }
}

/// Runs lsport with `args`, checks its exit status is one of `statuses`,
/// and parses what it printed.
fn run(services: &ServicesFile, args: &[&str], statuses: &[i32]) -> Value {
    let output: Output = lsport_command(args)
        .env("LSPORT_SERVICES_FILE", services.path())
        .output()
        .expect("running lsport");
    let code = output.status.code();
    assert!(
        code.is_some_and(|c| statuses.contains(&c)),
        "lsport {args:?} exited {code:?}, not one of {statuses:?}: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "lsport {args:?} printed no JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    })
}

fn sockets(doc: &Value) -> &Vec<Value> {
    doc["sockets"].as_array().expect("a sockets list")
}

/// The distinct values of one field over a document's sockets.
fn values_of(doc: &Value, field: &str) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    for socket in sockets(doc) {
        if !seen.contains(&socket[field]) {
            seen.push(socket[field].clone());
        }
    }
    seen
}

fn assert_has(values: &[Value], wanted: &[Value], what: &str) {
    for value in wanted {
        assert!(
            values.contains(value),
            "{what}: no {value} among {values:?}"
        );
    }
}

#[test]
fn every_json_document_lsport_prints_matches_its_schema() {
    let test = "every_json_document_lsport_prints_matches_its_schema";
    if !setup(test) {
        return;
    }
    let services = ServicesFile::new("every");

    // A TCP listener in the ephemeral range (risky), held by a `sleep`
    // and by this process, with a connection to it: its outgoing end has
    // a local port of the range, its accepted end the listener's port.
    let listener = TcpListener::from(tcp4_listener(40010));
    let sleep = hold(&[listener.as_raw_fd()]);
    let outgoing = TcpStream::connect("127.0.0.1:40010").unwrap();
    let (accepted, _) = listener.accept().unwrap();
    // A connection this end closes first: it stays in TIME_WAIT, held by
    // no process (inode 0).
    {
        let closer = TcpStream::connect("127.0.0.1:40010").unwrap();
        let (other, _) = listener.accept().unwrap();
        drop(closer);
        drop(other);
    }
    // A connection whose server accepted it and exited under its live
    // client: orphaned, with the time left that tcp_fin_timeout gives.
    sysctl("net.ipv4.tcp_fin_timeout", "30");
    let orphan_client = orphaned_connection(7790);
    // TCP that is only bound, IPv6 with and without IPV6_V6ONLY, UDP
    // unconnected (risky, in the range) and connected, and the ssh port.
    let bound_only = tcp4_bound_only(8001);
    let dual_stack = tcp6_socket(8080, false, false, true);
    let v6_only = tcp6_socket(LOCAL_PORT, true, true, true);
    let udp = UdpSocket::bind("127.0.0.1:40020").unwrap();
    let udp6 = UdpSocket::bind("[::1]:8053").unwrap();
    let udp_connected = UdpSocket::bind("127.0.0.1:8054").unwrap();
    udp_connected.connect("127.0.0.1:40020").unwrap();
    let ssh = tcp4_listener(22);
    // An MPTCP listener (IPPROTO_MPTCP, 262): its TCP socket says mptcp.
    sysctl("net.mptcp.enabled", "1");
    // SAFETY: socket(2) takes no pointers; the fd is owned from here on.
    let mptcp = unsafe {
        std::os::fd::OwnedFd::from_raw_fd(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 262))
    };
    assert!(mptcp.as_raw_fd() >= 0, "no MPTCP socket");
    nix::sys::socket::bind(
        mptcp.as_raw_fd(),
        &nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 7310),
    )
    .unwrap();
    nix::sys::socket::listen(&mptcp, nix::sys::socket::Backlog::new(4).unwrap()).unwrap();

    let probe = validator("probe");
    let check = |args: &[&str], statuses: &[i32]| {
        let doc = run(&services, args, statuses);
        assert_valid(&probe, &doc, &format!("lsport {}", args.join(" ")));
        doc
    };

    // One port, and the listening view.
    let port = check(&["--json", "40010"], &[0]);
    assert_eq!(port["ports"][0]["in_use"], true);
    // Which walk named the holders: the kernel's where it may run (CI
    // requires it), /proc when asked for.
    let expected_walk = if std::env::var_os("LSPORT_REQUIRE_BPF").is_some() {
        vec![json!("kernel")]
    } else {
        vec![json!("kernel"), json!("proc")]
    };
    assert!(
        expected_walk.contains(&port["holders_from"]),
        "{}",
        port["holders_from"]
    );
    let from_proc = check(&["--json", "--holders", "proc", "40010"], &[0]);
    assert_eq!(from_proc["holders_from"], "proc");
    let holders = |doc: &Value| -> Vec<(Value, Value)> {
        sockets(doc)
            .iter()
            .map(|s| (s["inode"].clone(), s["holders"].clone()))
            .collect()
    };
    assert_eq!(holders(&from_proc), holders(&port));
    assert_has(
        &values_of(&port, "role"),
        &[json!("listener"), json!("accepted")],
        "--json 40010",
    );
    assert_eq!(values_of(&port, "mptcp"), vec![json!(false)]);
    let mptcp_port = check(&["--json", "7310"], &[0]);
    assert_eq!(values_of(&mptcp_port, "mptcp"), vec![json!(true)]);
    let listening = check(&["--json"], &[0]);
    assert_has(
        &values_of(&listening, "role"),
        &[json!("listener"), json!("bound-only")],
        "--json",
    );
    assert_eq!(listening["ports"], json!([]));

    // Every socket: each role, family, kind of v6only and state made above.
    let all = check(&["-a", "--json"], &[0]);
    assert_has(
        &values_of(&all, "role"),
        &[
            "listener",
            "bound-only",
            "accepted",
            "outgoing",
            "time-wait",
            "orphaned",
        ]
        .map(|r| json!(r)),
        "-a --json",
    );
    assert_has(
        &values_of(&all, "state"),
        &[
            "LISTEN",
            "ESTABLISHED",
            "BOUND_INACTIVE",
            "TIME_WAIT",
            "FIN_WAIT2",
            "CLOSE",
        ]
        .map(|s| json!(s)),
        "-a --json",
    );
    assert!(
        sockets(&all)
            .iter()
            .any(|s| s["role"] == "orphaned" && s["ends_in_ms"].is_u64()),
        "-a --json: no orphan with its time left"
    );
    assert_has(&values_of(&all, "ends_in_ms"), &[Value::Null], "-a --json");
    assert_has(
        &values_of(&all, "v6only"),
        &[json!(true), json!(false), Value::Null],
        "-a --json",
    );
    assert_has(
        &values_of(&all, "protocol"),
        &[json!("tcp"), json!("udp")],
        "-a --json",
    );
    assert_has(
        &values_of(&all, "family"),
        &[json!("inet"), json!("inet6")],
        "-a --json",
    );
    assert_has(
        &values_of(&all, "risky"),
        &[json!(true), json!(false)],
        "-a --json",
    );
    assert!(
        sockets(&all)
            .iter()
            .any(|s| s["inode"] == 0 && s["holders"] == json!([])),
        "-a --json: no socket without holders"
    );

    // The /proc/net tables, with their blind spots.
    let proc = check(&["--json", "--source", "proc", "40010"], &[0]);
    assert_eq!(proc["source"], "proc");
    assert_eq!(
        proc["blind_spots"],
        json!(["tcp_bound_only", "v6only", "autobound"])
    );
    let proc_all = check(&["-a", "--json", "--source=proc"], &[0]);
    assert!(
        sockets(&proc_all).iter().all(|s| s["v6only"].is_null()),
        "--source proc: a v6only that is not null"
    );

    // A range, with names from IANA and from the local services file.
    let range = check(&["--json", "8000-8100"], &[0]);
    let ports: Vec<Value> = range["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].clone())
        .collect();
    assert_has(
        &ports,
        &[8001, 8053, 8054, 8080, LOCAL_PORT].map(|p| json!(p)),
        "--json 8000-8100",
    );
    let sources: Vec<Value> = range["ports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["services"].as_array().unwrap().iter())
        .map(|s| s["source"].clone())
        .collect();
    assert_has(
        &sources,
        &[json!("iana"), json!("local")],
        "--json 8000-8100",
    );

    // A service name, and ports that are free.
    let by_name = check(&["--json", "ssh"], &[0]);
    assert_eq!(by_name["ports"][0]["port"], 22);
    assert_eq!(by_name["ports"][0]["services"][0]["name"], "ssh");
    check(&["--json", "40050", "65000", "1"], &[1]);

    // Other namespaces: this one by its holder's pid, and every one.
    let pid = sleep.pid().to_string();
    check(&["--json", "--netns", &pid, "40010"], &[0]);
    check(&["--json", "--all-netns", "40010"], &[0, 1]);

    // lsport ephemeral, as one document and as a list.
    let ephemeral = validator("ephemeral");
    let check_ephemeral = |args: &[&str]| {
        let doc = run(&services, args, &[0, 3]);
        assert_valid(&ephemeral, &doc, &format!("lsport {}", args.join(" ")));
        doc
    };
    let report = check_ephemeral(&["ephemeral", "--json"]);
    assert!(report.is_object(), "one namespace, one document");
    assert_eq!(report["healthy"], false, "{report:#}");
    assert!(report["fix"].is_object(), "{report:#}");
    assert!(
        report["destinations"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{report:#}"
    );
    let planned = check_ephemeral(&[
        "ephemeral",
        "--format",
        "json",
        "--check-range",
        "40000-40010",
        "--check-range",
        "30000-32767",
    ]);
    assert!(planned["overlaps"][0]["overlap"].is_array(), "{planned:#}");
    assert!(planned["overlaps"][1]["overlap"].is_null(), "{planned:#}");
    check_ephemeral(&["ephemeral", "--json", "--all-netns"]);

    // lsport suggest.
    let suggest = validator("suggest");
    for args in [
        &["suggest", "3", "--json"][..],
        &["suggest", "3", "--json", "--near", "8080"],
    ] {
        let doc = run(&services, args, &[0]);
        assert_valid(&suggest, &doc, &format!("lsport {}", args.join(" ")));
        assert_eq!(doc["ports"].as_array().map(Vec::len), Some(3), "{doc}");
    }

    // lsport kill, dry: the listener's holders (this process among
    // them, refused as lsport's parent) with what goes down with each;
    // with --sockets, its connections.
    let kill = validator("kill");
    let dry = run(&services, &["--json", "kill", "-n", "40010"], &[4]);
    assert_valid(&kill, &dry, "lsport --json kill -n 40010");
    assert_eq!(dry["outcome"], "would_not_free", "{dry:#}");
    let results: Vec<Value> = dry["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["result"].clone())
        .collect();
    assert_has(
        &results,
        &[json!("would_signal"), json!("refused")],
        "kill -n 40010",
    );
    assert!(
        dry["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["blast_radius"].is_object()),
        "{dry:#}"
    );
    let closing = run(
        &services,
        &["--json", "kill", "--sockets", "-n", "40010"],
        &[4],
    );
    assert_valid(&kill, &closing, "lsport --json kill --sockets -n 40010");
    let fates: Vec<Value> = closing["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["result"].clone())
        .collect();
    assert_has(
        &fates,
        &[json!("would_close"), json!("bound_by_program")],
        "kill --sockets -n 40010",
    );

    // The same validators reject the real documents once changed.
    assert_mutations_rejected(
        &probe,
        &all,
        "lsport -a --json",
        &[
            ("a socket's role renamed", &|d| {
                rename(&mut d["sockets"][0], "role", "roles")
            }),
            ("a socket's local port a string", &|d| {
                let port = d["sockets"][0]["local"]["port"].to_string();
                d["sockets"][0]["local"]["port"] = json!(port);
            }),
            ("a holder's pid renamed", &|d| {
                let socket = sockets(d)
                    .iter()
                    .position(|s| s["holders"] != json!([]))
                    .unwrap();
                rename(&mut d["sockets"][socket]["holders"][0], "pid", "process");
            }),
            ("the namespace's inode a string", &|d| {
                d["netns"]["inode"] = json!("4026531840")
            }),
        ],
    );
    assert_mutations_rejected(
        &ephemeral,
        &report,
        "lsport ephemeral --json",
        &[
            ("hard_bound_ports renamed", &|d| {
                rename(d, "hard_bound_ports", "bound_ports")
            }),
            ("size a string", &|d| d["size"] = json!("100")),
        ],
    );
    assert_mutations_rejected(
        &kill,
        &dry,
        "lsport --json kill -n 40010",
        &[
            ("a target's blast radius renamed", &|d| {
                rename(&mut d["targets"][0], "blast_radius", "radius")
            }),
            ("a target's parent pid a string", &|d| {
                d["targets"][0]["parent_pid"] = json!("1")
            }),
        ],
    );

    drop((
        outgoing, accepted, listener, bound_only, dual_stack, v6_only,
    ));
    drop((udp, udp6, udp_connected, ssh, orphan_client, mptcp));
}

/// A cgroup of the v1 `pids` hierarchy that a process is moved into,
/// named as a container runtime names its containers' cgroups. Dropping
/// it moves the process back and removes the directories made.
struct ContainerCgroup {
    /// Outermost first.
    dirs: Vec<PathBuf>,
    pid: u32,
}

const PIDS_HIERARCHY: &str = "/sys/fs/cgroup/pids";

impl ContainerCgroup {
    /// `path` is relative to the hierarchy; every directory of it is
    /// made here (none is shared with other tests). None when the
    /// hierarchy is missing or refuses.
    fn enter(path: &str, pid: u32) -> Option<ContainerCgroup> {
        let mut cgroup = ContainerCgroup {
            dirs: Vec::new(),
            pid,
        };
        let mut dir = PathBuf::from(PIDS_HIERARCHY);
        for component in path.split('/') {
            dir.push(component);
            std::fs::create_dir(&dir).ok()?;
            cgroup.dirs.push(dir.clone());
        }
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(cgroup)
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        let procs = Path::new(PIDS_HIERARCHY).join("cgroup.procs");
        let _ = std::fs::write(procs, self.pid.to_string());
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The container object, as a holder's and as a namespace's, with its
/// optional fields filled: a containerd container of a Kubernetes pod
/// (pod_uid) and an LXC container (name). Where no cgroup v1 `pids`
/// hierarchy can be written, it is skipped as the namespace tests are.
/// The forwards of nft rules and what could not be read: a DNAT to
/// IPv4 on an interface, one to IPv6, a redirect of a range, a port
/// with a socket and a forward, and a user who cannot read the rules.
#[test]
fn forwarding_rules_in_json_match_the_schema() {
    let test = "forwarding_rules_in_json_match_the_schema";
    if !tool_available(test, "nft") || !setup(test) {
        return;
    }
    let services = ServicesFile::new("forwards");
    let rules = "table inet lsport_schema {
        chain pre { type nat hook prerouting priority -100; policy accept;
            iifname \"eth*\" tcp dport 8091 dnat ip to 10.0.0.2:80 comment \"web\"
            tcp dport 8092 dnat ip6 to [fd00::2]:8080
            udp dport 8093-8094 redirect to :53
            tcp dport 8095 dnat ip to 10.0.0.3
            tcp dport 40060 dnat ip to 10.0.0.4:80
        }
    }";
    let file = OpenTempDir::new("forwards-schema");
    let path = file.path.join("rules.nft");
    std::fs::write(&path, rules).unwrap();
    run_tool("nft", &["-f", path.to_str().unwrap()]);
    let socket = tcp4_listener(8095);
    let proxy_socket = tcp4_listener(8097);
    let _proxy = docker_proxy_like(proxy_socket.as_raw_fd(), 8097);
    drop(proxy_socket);

    let probe = validator("probe");
    let check = |args: &[&str], statuses: &[i32]| {
        let doc = run(&services, args, statuses);
        assert_valid(&probe, &doc, &format!("lsport {}", args.join(" ")));
        doc
    };
    let proxied = check(&["--json", "8097"], &[0]);
    let holder = &proxied["sockets"][0]["holders"][0];
    assert_eq!(holder["proxy"]["kind"], "docker-proxy", "{proxied:#}");
    assert_eq!(
        holder["proxy"]["forwards"][0]["target_address"],
        "172.17.0.2"
    );
    let doc = check(
        &["--json", "8091", "8092", "8093-8094", "8095", "8096"],
        &[0],
    );
    let verdicts: Vec<(Value, Value)> = doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].clone(), p["verdict"].clone()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (json!(8091), json!("forwarded")),
            (json!(8092), json!("forwarded")),
            (json!(8093), json!("forwarded")),
            (json!(8094), json!("forwarded")),
            (json!(8095), json!("in_use")),
            (json!(8096), json!("free")),
        ],
        "{doc:#}"
    );
    let forward = &doc["ports"][0]["forwards"][0];
    assert_eq!(forward["interfaces"][0]["prefix"], "eth", "{forward:#}");
    assert_eq!(forward["comment"], "web", "{forward:#}");
    assert_eq!(
        forward["target"]["addresses"],
        json!(["10.0.0.2", "10.0.0.2"])
    );
    assert_eq!(
        doc["ports"][1]["forwards"][0]["target"]["text"],
        "[fd00::2]:8080"
    );
    assert_eq!(doc["ports"][2]["forwards"][0]["target"]["kind"], "redirect");
    assert_eq!(
        doc["ports"][4]["forwards"][0]["target"]["ports"],
        Value::Null
    );
    assert_eq!(doc["blind_spots"], json!([]));
    drop(socket);

    // ephemeral counts a forwarded port of its range as risky.
    let ephemeral = validator("ephemeral");
    let doc = run(&services, &["ephemeral", "--json"], &[3]);
    assert_valid(&ephemeral, &doc, "lsport ephemeral --json");
    assert_eq!(doc["forwarded_ports"], json!([[40060, 40060]]), "{doc:#}");

    // why warns of the rule.
    let why = validator("why");
    let doc = run(&services, &["why", "--json", "8091"], &[0]);
    assert_valid(&why, &doc, "lsport why --json 8091");
    assert_eq!(doc["warnings"][0]["kind"], "forwarded", "{doc:#}");

    // kill names the rule it cannot remove.
    let kill = validator("kill");
    let doc = run(&services, &["kill", "--json", "8091"], &[4]);
    assert_valid(&kill, &doc, "lsport kill --json 8091");
    assert_eq!(doc["outcome"], "forwarded", "{doc:#}");
    assert_eq!(doc["forwards"][0]["target"], "10.0.0.2:80", "{doc:#}");

    // Without CAP_NET_ADMIN: a blind spot, and never plain free.
    let (_dir, binary) = binary_for_nobody("forwards-schema-nobody");
    let output = as_nobody(&binary, &["--json", "8091", "8096"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_valid(&probe, &doc, "lsport --json 8091 8096 as user 65534");
    assert_has(
        doc["blind_spots"].as_array().unwrap(),
        &[json!("nftables_rules")],
        "as user 65534",
    );
    for port in doc["ports"].as_array().unwrap() {
        assert_eq!(port["verdict"], "free_of_sockets", "{port:#}");
    }
    let suggest = validator("suggest");
    let output = as_nobody(&binary, &["suggest", "2", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_valid(&suggest, &doc, "lsport suggest 2 --json as user 65534");
    assert_has(
        doc["blind_spots"].as_array().unwrap(),
        &[json!("nftables_rules")],
        "suggest as user 65534",
    );
    let doc = run(&services, &["suggest", "2", "--json"], &[0]);
    assert_valid(&suggest, &doc, "lsport suggest 2 --json");
    assert_eq!(doc["blind_spots"], json!([]), "{doc:#}");
    let output = as_nobody(&binary, &["why", "--json", "8096"]);
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_valid(&why, &doc, "lsport why --json 8096 as user 65534");
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "rules_not_read"),
        "{doc:#}"
    );
}

#[test]
fn container_fields_match_the_schema() {
    let test = "container_fields_match_the_schema";
    if !setup(test) {
        return;
    }
    let pod_listener = tcp4_listener(40030);
    let lxc_listener = tcp4_listener(40031);
    let pod_holder = hold(&[pod_listener.as_raw_fd()]);
    let lxc_holder = hold(&[lxc_listener.as_raw_fd()]);
    drop((pod_listener, lxc_listener));

    let me = std::process::id();
    let pod_uid = format!("{me:08x}-5c4e-4d00-8000-{:012x}", u64::from(me));
    let id = format!("{:064x}", u128::from(me) << 64 | 0x5c4e);
    let lxc_name = format!("lsport-schema-{me}");
    let pod_path = format!(
        "kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
        pod_uid.replace('-', "_")
    );
    let lxc_path = format!("lxc.payload.{lxc_name}");
    let cgroups = ContainerCgroup::enter(&pod_path, pod_holder.pid())
        .zip(ContainerCgroup::enter(&lxc_path, lxc_holder.pid()));
    if cgroups.is_none() {
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: no writable cgroup v1 pids hierarchy");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no writable cgroup v1 pids hierarchy"
        );
        return;
    }
    let services = ServicesFile::new("container");
    let one = run(&services, &["--json", "40030-40031"], &[0]);
    let every = run(&services, &["--json", "--all-netns", "40030-40031"], &[0]);
    drop(cgroups);

    let probe = validator("probe");
    assert_valid(&probe, &one, "lsport --json 40030-40031");
    assert_valid(&probe, &every, "lsport --json --all-netns 40030-40031");
    let container_on = |port: u16| {
        let socket = sockets(&one)
            .iter()
            .find(|s| s["local"]["port"] == port)
            .unwrap_or_else(|| panic!("no socket on {port}: {one:#}"));
        socket["holders"][0]["container"].clone()
    };
    assert_eq!(
        container_on(40030),
        json!({"runtime": "containerd", "id": id, "name": null, "pod_uid": pod_uid})
    );
    assert_eq!(
        container_on(40031),
        json!({"runtime": "lxc", "id": lxc_name, "name": lxc_name, "pod_uid": null})
    );
    let inode = netns_inode();
    assert!(
        every["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["inode"] == inode && n["container"].is_object()),
        "--all-netns does not name the namespace's container: {every:#}"
    );
    let mut changed = one.clone();
    changed["sockets"][0]["holders"][0]["container"]["pod_uid"] = json!(7);
    assert_invalid(&probe, &changed, "a container whose pod_uid is a number");
}

/// `lsport why --json`: real documents of each way a verdict is reached
/// (a trial; the rules, beside a live UDP socket) match the schema, with
/// the fields that say how; and the schema rejects them once changed.
#[test]
fn why_documents_match_the_schema_and_changed_ones_do_not() {
    if !setup("why_documents") {
        return;
    }
    let services = ServicesFile::new("why_documents");
    // A UDP server that set SO_REUSEADDR, held by this process.
    let server = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::ReuseAddr, &true).unwrap();
    nix::sys::socket::bind(
        server.as_raw_fd(),
        &nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, 7061),
    )
    .unwrap();
    // A TCP listener held by another process.
    let listener = TcpListener::bind("127.0.0.1:7060").unwrap();
    let holder = hold(&[listener.as_raw_fd()]);
    drop(listener);
    let schema = validator("why");
    let by_trial = run(&services, &["why", "--json", "7060"], &[4]);
    let shared = run(&services, &["why", "--json", "-u", "7061"], &[0]);
    let refused = run(
        &services,
        &["why", "--json", "-u", "--no-reuseaddr", "7061"],
        &[4],
    );
    for (doc, what) in [
        (&by_trial, "a trial's failure"),
        (&shared, "the rules' success"),
        (&refused, "the rules' failure"),
    ] {
        assert_valid(&schema, doc, what);
    }
    assert_eq!(by_trial["decided_by"], "trial");
    assert_eq!(by_trial["not_tried"], Value::Null);
    let stop = &by_trial["fixes"][0];
    assert_eq!(stop["kind"], "stop_process");
    assert_eq!(stop["pids"], json!([holder.pid()]));
    assert_eq!(stop["checked_by"], "rules");
    let pick = by_trial["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "pick_another_port")
        .unwrap();
    assert_eq!(pick["checked_by"], "trial");
    assert!(pick["port"].is_u64());
    assert_eq!(shared["decided_by"], "rules");
    assert_eq!(shared["not_tried"], "bind");
    assert_eq!(shared["warnings"][0]["kind"], "takes_datagrams");
    assert_eq!(refused["verdict"], "fail");
    assert_eq!(refused["causes"][0]["sockets"][0]["reuseaddr"], true);
    assert_mutations_rejected(
        &schema,
        &by_trial,
        "lsport why --json 7060",
        &[
            ("decided_by renamed", &|d| {
                rename(d, "decided_by", "decision")
            }),
            ("an unknown verdict", &|d| d["verdict"] = json!("maybe")),
            ("not_tried an unknown call", &|d| {
                d["not_tried"] = json!("connect")
            }),
            ("checked_by an unknown way", &|d| {
                d["fixes"][0]["checked_by"] = json!("kernel")
            }),
            ("a fix without checked_by", &|d| {
                d["fixes"][0].as_object_mut().unwrap().remove("checked_by");
            }),
            ("a fix's port 0", &|d| d["fixes"][0]["port"] = json!(0)),
            ("an unknown fix", &|d| {
                d["fixes"][0]["kind"] = json!("reboot")
            }),
            ("a socket's side an unknown one", &|d| {
                d["causes"][0]["sockets"][0]["side"] = json!("client")
            }),
            ("a socket's reuseaddr a string", &|d| {
                d["causes"][0]["sockets"][0]["reuseaddr"] = json!("no")
            }),
            ("the interface a number", &|d| {
                d["bind"]["interface"] = json!(2)
            }),
            ("an unknown rule", &|d| {
                d["causes"][0]["rule"] = json!("firewall")
            }),
        ],
    );
    assert_mutations_rejected(
        &schema,
        &shared,
        "lsport why --json -u 7061",
        &[
            ("an unknown warning", &|d| {
                d["warnings"][0]["kind"] = json!("steals")
            }),
            ("decided_by missing", &|d| {
                d.as_object_mut().unwrap().remove("decided_by");
            }),
        ],
    );
    drop(server);
}

/// The probe's document with its `unix` part: a path in use with its
/// connection, a datagram socket, a stale file, an abstract name, the
/// listing, and the same from /proc/net/unix.
#[test]
fn the_unix_part_of_the_probe_matches_its_schema() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
    if !private_netns("unix_schema") {
        return;
    }
    let dir = OpenTempDir::new("unix-schema");
    let path = dir.path.join("app.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let waiting = UnixStream::connect(&path).unwrap();
    let dgram = UnixDatagram::bind(dir.path.join("log.sock")).unwrap();
    let stale = dir.path.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let abstract_name = SocketAddr::from_abstract_name(b"lsport-schema").unwrap();
    let named = UnixListener::bind_addr(&abstract_name).unwrap();
    let _held = hold(&[
        listener.as_raw_fd(),
        accepted.as_raw_fd(),
        client.as_raw_fd(),
        waiting.as_raw_fd(),
        dgram.as_raw_fd(),
        named.as_raw_fd(),
    ]);
    let probe = validator("probe");
    let path = path.to_str().unwrap();
    let stale = stale.to_str().unwrap();
    let missing = dir.path.join("missing.sock");
    let missing = missing.to_str().unwrap();
    let dir_arg = dir.path.to_str().unwrap();
    let services = ServicesFile::new("unix");
    for (args, statuses) in [
        (vec!["--json", path], &[0][..]),
        (
            vec!["--json", path, stale, missing, dir_arg, "@lsport-schema"],
            &[0],
        ),
        (vec!["--json", "--source", "proc", path, stale], &[0]),
        (vec!["--json", "--unix"], &[0]),
        (vec!["--json", "--unix", "-a"], &[0]),
        // Selected by the holders' cgroups (every one is below /).
        (vec!["--json", "--unix", "--cgroup", "/"], &[0]),
        (vec!["--json", stale], &[1]),
    ] {
        let doc = run(&services, &args, statuses);
        assert_valid(&probe, &doc, &format!("lsport {}", args.join(" ")));
        assert!(doc["unix"].is_object(), "{doc:#}");
    }
    let doc = run(&services, &["--json", path], &[0]);
    let roles: Vec<&str> = doc["unix"]["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["listener", "accepted", "client", "waiting"]);
    // A renamed field is caught.
    let mut changed = doc.clone();
    changed["unix"]["targets"][0]["verdict"] = json!("busy");
    assert_invalid(&probe, &changed, "a unix verdict that is not one");
}

/// `lsport why --json PATH`: real documents of a live listener, a stale
/// file, a missing directory and a free name match why-unix.schema.json.
#[test]
fn why_on_a_unix_socket_matches_its_schema() {
    use std::os::unix::net::UnixListener;
    if !private_netns("why_unix_schema") {
        return;
    }
    let dir = OpenTempDir::new("why-unix-schema");
    let live = dir.path.join("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    let _held = hold(&[listener.as_raw_fd()]);
    let stale = dir.path.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let services = ServicesFile::new("why_unix");
    let schema = validator("why-unix");
    let live = live.to_str().unwrap();
    let stale = stale.to_str().unwrap();
    let missing = dir.path.join("no/dir/x.sock");
    let missing = missing.to_str().unwrap();
    let free = dir.path.join("free.sock");
    let free = free.to_str().unwrap();
    let mut causes = Vec::new();
    for (target, status) in [
        (live, 4),
        (stale, 4),
        (missing, 4),
        (free, 0),
        ("@lsport-free", 0),
    ] {
        let doc = run(&services, &["why", "--json", target], &[status]);
        assert_valid(&schema, &doc, &format!("lsport why --json {target}"));
        causes.push(doc["cause"].as_str().unwrap().to_string());
        if target == live {
            assert_eq!(doc["in_the_way"][0]["role"], "listener");
            assert!(
                !doc["in_the_way"][0]["holders"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
            let mut changed = doc.clone();
            changed["errno"] = json!(98);
            assert_invalid(&schema, &changed, "an errno that is a number");
        }
    }
    assert_eq!(
        causes,
        [
            "listening",
            "stale_file",
            "missing_directory",
            "would_succeed",
            "would_succeed"
        ]
    );
}

/// `lsport kill --json PATH` and `wait --json PATH`: real documents of a
/// dry run, a real kill, waits met and timed out, match kill.schema.json
/// and wait.schema.json with their `unix` parts.
#[test]
fn kill_and_wait_on_a_unix_socket_match_their_schemas() {
    use std::os::unix::net::{UnixListener, UnixStream};
    if !private_netns("unix_kill_wait_schema") {
        return;
    }
    let dir = OpenTempDir::new("unix-kill-wait-schema");
    let path = dir.path.join("app.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let server = hold(&[listener.as_raw_fd()]);
    let client_holder = hold(&[client.as_raw_fd()]);
    drop((listener, client));
    let services = ServicesFile::new("unix_kill_wait");
    let path = path.to_str().unwrap();
    let (kill, wait) = (validator("kill"), validator("wait"));

    let doc = run(&services, &["wait", "--json", "--listening", path], &[0]);
    assert_valid(&wait, &doc, "lsport wait --json --listening PATH");
    assert_eq!(doc["ports"], json!([]));
    assert_eq!(doc["unix"]["met"], true, "{doc:#}");
    assert_eq!(doc["unix"]["verdict"], "in_use");
    assert_eq!(doc["unix"]["servers"][0]["role"], "listener");
    assert_eq!(
        doc["unix"]["servers"][0]["holders"][0]["pid"],
        json!(server.pid())
    );
    let mut changed = doc.clone();
    changed["unix"]["kind"] = json!("socket");
    assert_invalid(&wait, &changed, "a unix wait of an unknown kind");

    let dry = run(&services, &["kill", "--json", "-n", path], &[0]);
    assert_valid(&kill, &dry, "lsport kill --json -n PATH");
    assert_eq!(dry["outcome"], "would_free", "{dry:#}");
    assert_eq!(dry["ports"], json!([]));
    assert_eq!(dry["unix"]["target"], path);
    assert_eq!(dry["unix"]["kind"], "path");
    assert_eq!(
        dry["unix"]["clients_left_alone"],
        json!([client_holder.pid()])
    );
    assert_eq!(dry["targets"][0]["pid"], json!(server.pid()));
    assert_eq!(dry["targets"][0]["result"], "would_signal");
    let mut changed = dry.clone();
    changed["unix"]
        .as_object_mut()
        .unwrap()
        .remove("file_remains");
    assert_invalid(&kill, &changed, "a unix kill without file_remains");

    let done = run(
        &services,
        &["kill", "--json", "--respawn-window", "0", path],
        &[0],
    );
    assert_valid(&kill, &done, "lsport kill --json PATH");
    assert_eq!(done["outcome"], "freed", "{done:#}");
    assert_eq!(done["targets"][0]["result"], "exited");
    assert!(done["freed_after_ms"].is_u64());
    // sleep leaves its socket file behind.
    assert_eq!(done["unix"]["file_remains"], true);

    let doc = run(&services, &["wait", "--json", "--free", path], &[0]);
    assert_valid(&wait, &doc, "lsport wait --json --free PATH");
    assert_eq!(doc["unix"]["verdict"], "stale", "{doc:#}");
    assert_eq!(doc["unix"]["servers"], json!([]));
    let doc = run(
        &services,
        &[
            "wait",
            "--json",
            "--listening",
            "@lsport-schema-none",
            "--timeout",
            "200ms",
        ],
        &[4],
    );
    assert_valid(
        &wait,
        &doc,
        "lsport wait --json --listening @NAME (timed out)",
    );
    assert_eq!(doc["outcome"], "timed_out");
    assert_eq!(doc["unix"]["met"], false);
    assert_eq!(doc["unix"]["met_after_ms"], json!(null));
    assert_eq!(doc["unix"]["kind"], "abstract");
}
