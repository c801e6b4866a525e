//! A port taken without a socket: forwarding rules written with nft,
//! iptables-nft (exactly as Docker writes them) and iptables-legacy in a
//! private network namespace, and lsport's answer through the built
//! binary. Needs root, a namespace and the tools; skipped visibly where
//! one is missing (failed instead with LSPORT_REQUIRE_NETNS=1).

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

/// A private namespace with `tools` installed, or a visible skip.
fn namespace_with(test: &str, tools: &[&str]) -> bool {
    tools.iter().all(|tool| tool_available(test, tool)) && private_netns(test)
}

/// Loads an nft ruleset from text; `test` keeps the files of tests
/// running at once apart.
fn nft(test: &str, rules: &str) {
    let dir = OpenTempDir::new(test);
    let path = dir.path.join("rules.nft");
    std::fs::write(&path, rules).unwrap();
    run_tool("nft", &["-f", path.to_str().unwrap()]);
}

/// The verdict line (the first line) of `lsport ARGS`, with its status.
fn verdict(args: &[&str]) -> (String, Option<i32>, Output) {
    let output = lsport(args);
    let first = stdout(&output).lines().next().unwrap_or("").to_string();
    (first, output.status.code(), output)
}

fn parse(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)))
}

#[test]
fn native_dnat_and_redirect_forward_a_port_without_a_socket() {
    let test = "native_dnat_and_redirect_forward_a_port_without_a_socket";
    if !namespace_with(test, &["nft"]) {
        return;
    }
    nft(
        test,
        "table ip nat {
        chain pre { type nat hook prerouting priority -100; policy accept;
            tcp dport 8080 dnat to 172.17.0.2:80
            udp dport 5300-5310 redirect to :53
            iifname \"veth0\" tcp dport 8088 dnat to 10.1.0.8
        }
        chain out { type nat hook output priority -100; policy accept;
            tcp dport 8089 redirect to :80
        }
    }",
    );

    let (line, status, output) = verdict(&["8080"]);
    assert_eq!(
        line,
        "Port 8080 is FORWARDED: tcp to 172.17.0.2:80 by nat rule (table ip nat, chain pre), for traffic arriving from outside; no socket holds it here.",
        "{}",
        stdout(&output)
    );
    assert_eq!(status, Some(0));
    assert!(
        stdout(&output)
            .contains("forward: tcp 8080 to 172.17.0.2:80: table ip nat, chain pre, rule handle "),
        "{}",
        stdout(&output)
    );

    // A redirect of a range, asked for one port of it and for a range
    // that overlaps it.
    let (line, status, _) = verdict(&["-u", "5305"]);
    assert_eq!(
        line,
        "Port 5305 is FORWARDED: udp to this host, port 53 by nat rule (table ip nat, chain pre), for traffic arriving from outside; no socket holds it here."
    );
    assert_eq!(status, Some(0));
    let (line, status, _) = verdict(&["5308-5320"]);
    assert!(
        line.starts_with("Ports 5308-5320 are FORWARDED: udp 5300-5310 to this host, port 53"),
        "{line}"
    );
    assert_eq!(status, Some(0));
    let doc = parse(&lsport(["--json", "5308-5320"]));
    let forwarded: Vec<u64> = doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(forwarded, [5308, 5309, 5310], "{doc:#}");

    // A rule on an interface says so; one at output is about this host.
    let (_, status, output) = verdict(&["8088"]);
    assert_eq!(status, Some(0));
    assert!(
        stdout(&output).contains("to 10.1.0.8 (same port): table ip nat, chain pre, rule handle")
            && stdout(&output).contains("traffic arriving from outside, arriving on veth0, IPv4"),
        "{}",
        stdout(&output)
    );
    let (line, _, _) = verdict(&["8089"]);
    assert!(
        line.ends_with("for traffic generated on this host; no socket holds it here."),
        "{line}"
    );

    // TCP only: the UDP redirect does not take 5305 over TCP, nor does
    // anything take 8081.
    let (line, status, _) = verdict(&["-t", "5305"]);
    assert!(line.contains("is FREE in network namespace"), "{line}");
    assert_eq!(status, Some(1));
    let (line, status, _) = verdict(&["8081"]);
    assert!(
        line.starts_with("Port 8081 is FREE in network namespace"),
        "{line}"
    );
    assert_eq!(status, Some(1));
}

#[test]
fn a_socket_and_a_forward_on_one_port_are_both_shown() {
    let test = "a_socket_and_a_forward_on_one_port_are_both_shown";
    if !namespace_with(test, &["nft"]) {
        return;
    }
    nft(
        test,
        "table inet lsport_both {
        chain pre { type nat hook prerouting priority -100; policy accept;
            tcp dport 8090 dnat ip to 10.0.0.90:80
        }
    }",
    );
    let listener = tcp4_listener(8090);
    let (line, status, output) = verdict(&["8090"]);
    assert!(line.starts_with("Port 8090 is IN USE: 1 socket"), "{line}");
    assert_eq!(status, Some(0));
    assert!(
        stdout(&output).contains(
            "  Also FORWARDED: tcp to 10.0.0.90:80 by nat rule (table inet lsport_both, chain pre), for traffic arriving from outside: that traffic goes there, not to the sockets here."
        ),
        "{}",
        stdout(&output)
    );
    let doc = parse(&lsport(["--json", "8090"]));
    assert_eq!(doc["ports"][0]["verdict"], "in_use");
    assert_eq!(doc["ports"][0]["forwards"][0]["table_family"], "inet");
    drop(listener);
}

#[test]
fn an_ipv6_rule_forwards_ipv6_traffic() {
    let test = "an_ipv6_rule_forwards_ipv6_traffic";
    if !namespace_with(test, &["nft"]) {
        return;
    }
    nft(
        test,
        "table ip6 nat6 {
        chain pre { type nat hook prerouting priority -100; policy accept;
            tcp dport 8443 dnat to [fd00::2]:443
        }
    }",
    );
    let (line, status, _) = verdict(&["8443"]);
    assert_eq!(
        line,
        "Port 8443 is FORWARDED: tcp to [fd00::2]:443 by nat rule (table ip6 nat6, chain pre), for traffic arriving from outside; no socket holds it here."
    );
    assert_eq!(status, Some(0));
    let doc = parse(&lsport(["--json", "8443"]));
    let forward = &doc["ports"][0]["forwards"][0];
    assert_eq!(forward["families"], serde_json::json!(["inet6"]));
    assert_eq!(forward["target"]["addresses"][0], "fd00::2");
    // Asked about IPv4 only, the rule takes nothing: a server bound
    // for IPv4 gets its traffic.
    let (line, status, _) = verdict(&["-4", "8443"]);
    assert!(line.contains("is FREE in network namespace"), "{line}");
    assert_eq!(status, Some(1));
}

/// Docker's rules, as `iptables` (the nf_tables one or the legacy one)
/// writes them for a port published with the userland proxy off.
fn docker_rules(iptables: &str) {
    for rule in DOCKER_PUBLISHES_8081 {
        run_tool(iptables, rule);
    }
}

#[test]
fn docker_s_iptables_nft_rules_forward_the_published_port() {
    let test = "docker_s_iptables_nft_rules_forward_the_published_port";
    if !namespace_with(test, &["iptables-nft"]) {
        return;
    }
    docker_rules("iptables-nft");
    let (line, status, output) = verdict(&["8081"]);
    assert_eq!(
        line,
        "Port 8081 is FORWARDED: tcp to 172.17.0.2:80 by nat rule (table ip nat, chain DOCKER), for traffic arriving from outside and traffic generated on this host; no socket holds it here.",
        "{}",
        stdout(&output)
    );
    assert_eq!(status, Some(0));
    let text = stdout(&output);
    assert!(
        text.contains("chain PREROUTING -> DOCKER, rule handle")
            && text.contains("traffic arriving from outside, not arriving on docker0, to an address of type LOCAL, IPv4.")
            && text.contains("traffic generated on this host, not arriving on docker0, not to 127.0.0.0/8, to an address of type LOCAL, IPv4."),
        "{text}"
    );
    let doc = parse(&lsport(["--json", "8081"]));
    let forwards = doc["ports"][0]["forwards"].as_array().unwrap();
    assert_eq!(forwards.len(), 2, "{doc:#}");
    assert_eq!(
        forwards[0]["chains"],
        serde_json::json!(["PREROUTING", "DOCKER"])
    );
    assert_eq!(forwards[0]["position"], 2, "RETURN first, then the DNAT");
    let handle = forwards[0]["rule"].as_u64().unwrap();
    assert_eq!(
        forwards[0]["delete_command"],
        format!("nft delete rule ip nat DOCKER handle {handle}")
    );
    // The port next to it is free: Docker's chain takes only 8081.
    let (line, status, _) = verdict(&["8082"]);
    assert!(line.contains("is FREE in network namespace"), "{line}");
    assert_eq!(status, Some(1));
}

#[test]
fn docker_s_iptables_legacy_rules_forward_the_published_port() {
    let test = "docker_s_iptables_legacy_rules_forward_the_published_port";
    if !namespace_with(test, &["iptables-legacy"]) {
        return;
    }
    if !std::path::Path::new("/proc/net/ip_tables_names").exists() {
        let _ = writeln_skip(test, "the kernel has no legacy ip_tables");
        return;
    }
    docker_rules("iptables-legacy");
    let (line, status, output) = verdict(&["8081"]);
    assert_eq!(
        line,
        "Port 8081 is FORWARDED: tcp to 172.17.0.2:80 by nat rule (table iptables-legacy nat, chain DOCKER), for traffic arriving from outside and traffic generated on this host; no socket holds it here.",
        "{}",
        stdout(&output)
    );
    assert_eq!(status, Some(0));
    let doc = parse(&lsport(["--json", "8081"]));
    assert_eq!(
        doc["ports"][0]["forwards"][0]["delete_command"],
        "iptables-legacy -t nat -D DOCKER 2"
    );
}

fn writeln_skip(test: &str, reason: &str) -> std::io::Result<()> {
    use std::io::Write;
    if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
        panic!("{test}: {reason}, and LSPORT_REQUIRE_NETNS is set");
    }
    writeln!(std::io::stderr(), "SKIPPED {test}: {reason}")
}

#[test]
fn without_cap_net_admin_a_free_port_is_only_free_of_sockets() {
    let test = "without_cap_net_admin_a_free_port_is_only_free_of_sockets";
    if !namespace_with(test, &["nft", "setpriv"]) {
        return;
    }
    nft(
        test,
        "table ip nat {
        chain pre { type nat hook prerouting priority -100; policy accept;
            tcp dport 8080 dnat to 172.17.0.2:80
        }
    }",
    );
    let (_dir, binary) = binary_for_nobody("forwarded-nobody");
    let output = as_nobody(&binary, &["8080", "8081"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Port ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        assert!(
            line.contains(" is FREE of sockets in network namespace")
                && line
                    .ends_with("; forwarding rules were not read, so it may still be forwarded."),
            "{line}"
        );
    }
    // One line on stderr, once, for both ports.
    let warnings: Vec<String> = stderr(&output)
        .lines()
        .filter(|l| l.contains("forwarding rules were not read"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&output));
    assert!(
        warnings[0].starts_with(
            "lsport: forwarding rules were not read (nftables: Operation not permitted"
        ) && warnings[0].ends_with("run as root (CAP_NET_ADMIN) to read them"),
        "{}",
        warnings[0]
    );
    // kill, suggest and ephemeral say it too, once.
    for args in [&["kill", "8080"][..], &["suggest"], &["ephemeral"]] {
        let output = as_nobody(&binary, args);
        let said = stderr(&output)
            .lines()
            .filter(|l| l.starts_with("lsport: forwarding rules were not read (nftables"))
            .count();
        assert_eq!(said, 1, "{args:?}: {}", stderr(&output));
    }
    // Root, in the same namespace, sees the forward.
    let (line, status, _) = verdict(&["8080"]);
    assert!(line.contains("FORWARDED"), "{line}");
    assert_eq!(status, Some(0));
}

#[test]
fn the_listening_view_reads_no_rules() {
    let test = "the_listening_view_reads_no_rules";
    if !namespace_with(test, &["nft", "setpriv"]) {
        return;
    }
    // As user 65534 the rules are refused: a view that read them would
    // say so on stderr.
    let (_dir, binary) = binary_for_nobody("forwarded-listening");
    let listener = tcp4_listener(8070);
    for args in [&[][..], &["-a"], &["-l"]] {
        let output = as_nobody(&binary, args);
        assert!(
            !stderr(&output).contains("forwarding rules"),
            "lsport {args:?} read the rules: {}",
            stderr(&output)
        );
    }
    drop(listener);
}

#[test]
fn kill_of_a_forwarded_port_signals_nothing_and_names_the_rule() {
    let test = "kill_of_a_forwarded_port_signals_nothing_and_names_the_rule";
    if !namespace_with(test, &["iptables-nft"]) {
        return;
    }
    docker_rules("iptables-nft");
    let doc = parse(&lsport(["--json", "8081"]));
    let handle = doc["ports"][0]["forwards"][0]["rule"].as_u64().unwrap();
    let remove = format!("    to remove it: nft delete rule ip nat DOCKER handle {handle}");
    for args in [&["kill", "8081"][..], &["kill", "--dry-run", "8081"]] {
        let output = lsport(args);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "nothing to signal: no socket holds port 8081, but a forwarding rule takes it:",
                "  tcp 8081 to 172.17.0.2:80 by nat rule (table ip nat, chain DOCKER), for traffic arriving from outside and traffic generated on this host",
                remove.as_str(),
            ],
            "{args:?}: {text}"
        );
    }
    let output = lsport(["kill", "--json", "8081"]);
    assert_eq!(output.status.code(), Some(4));
    let doc = parse(&output);
    assert_eq!(doc["outcome"], "forwarded");
    assert_eq!(doc["targets"], serde_json::json!([]));
    assert_eq!(
        doc["forwards"][0]["delete_command"],
        format!("nft delete rule ip nat DOCKER handle {handle}")
    );

    // With a listener too, the listener goes and the rule is named: it
    // stays.
    let listener = tcp4_listener(8081);
    let holder = hold(&[std::os::fd::AsRawFd::as_raw_fd(&listener)]);
    drop(listener);
    let output = lsport(["kill", "8081"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the port stays forwarded, whatever holds it (no signal removes a rule):")
            && text.contains(&remove),
        "{text}"
    );
    drop(holder);
}

#[test]
fn why_says_the_bind_succeeds_but_the_forwarded_traffic_goes_elsewhere() {
    let test = "why_says_the_bind_succeeds_but_the_forwarded_traffic_goes_elsewhere";
    if !namespace_with(test, &["iptables-nft", "setpriv"]) {
        return;
    }
    docker_rules("iptables-nft");
    let output = lsport(["why", "8081"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("bind(0.0.0.0:8081, tcp, SO_REUSEADDR) and listen() would succeed"),
        "{text}"
    );
    assert!(
        text.contains(
            "  - port 8081 is forwarded elsewhere: tcp to 172.17.0.2:80 by nat rule (table ip nat, chain DOCKER), for traffic arriving from outside and traffic generated on this host (to remove it: nft delete rule ip nat DOCKER handle "
        ) && text.contains(
            "the bind succeeds, but connections from outside never reach the new server."
        ),
        "{text}"
    );
    // Another port has no such warning; as user 65534, a caveat.
    let text = stdout(&lsport(["why", "8082"]));
    assert!(!text.contains("forwarded"), "{text}");
    let (_dir, binary) = binary_for_nobody("forwarded-why");
    let text = stdout(&as_nobody(&binary, &["why", "8082"]));
    assert!(
        text.contains(
            "  - port 8082 may be forwarded elsewhere, as not every forwarding rule was read: forwarding rules (nftables, iptables-nft) were not read: Operation not permitted"
        ),
        "{text}"
    );
}

#[test]
fn suggest_skips_and_ephemeral_counts_forwarded_ports() {
    let test = "suggest_skips_and_ephemeral_counts_forwarded_ports";
    if !namespace_with(test, &["nft"]) {
        return;
    }
    sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    sysctl("net.ipv4.ip_local_reserved_ports", "40011");
    let suggested = |args: &[&str]| -> Vec<u16> {
        let output = lsport(args);
        stdout(&output)
            .lines()
            .map(|l| l.parse().unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    };
    let before = suggested(&["suggest", "--range", "30000-30999", "3"]);
    assert_eq!(before.len(), 3, "{before:?}");
    let ephemeral = lsport(["ephemeral"]);
    assert_eq!(ephemeral.status.code(), Some(0), "{}", stdout(&ephemeral));

    nft(
        test,
        &format!(
            "table inet lsport_suggest {{
            chain pre {{ type nat hook prerouting priority -100; policy accept;
                tcp dport {{ {}, 40010-40012 }} dnat ip to 10.0.0.7:80
            }}
        }}",
            before[0]
        ),
    );
    let after = suggested(&["suggest", "--range", "30000-30999", "3"]);
    assert!(!after.contains(&before[0]), "{before:?} then {after:?}");
    assert_eq!(after[..2], before[1..], "the others stay");

    // 40011 is reserved: 40010 and 40012 are at risk.
    let output = lsport(["ephemeral"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(
        text.contains(
            "Ports that forwarding rules take inside the range and not reserved (2): 40010, 40012."
        ) && text.contains(
            "  - 2 ports that forwarding rules take inside the ephemeral range and not reserved"
        ) && text.contains("ip_local_reserved_ports=40010-40012"),
        "{text}"
    );
}

#[test]
fn a_docker_proxy_is_named_with_the_address_it_forwards_to() {
    let test = "a_docker_proxy_is_named_with_the_address_it_forwards_to";
    if !namespace_with(test, &["python3"]) {
        return;
    }
    let listener = tcp4_listener(8085);
    let proxy = docker_proxy_like(std::os::fd::AsRawFd::as_raw_fd(&listener), 8085);
    drop(listener);
    let (line, status, output) = verdict(&["8085"]);
    assert_eq!(status, Some(0));
    assert_eq!(
        line,
        format!(
            "Port 8085 is IN USE: 1 socket, held by python3 (pid {}, a userland proxy: docker-proxy forwarding to 172.17.0.2:80).",
            proxy.pid()
        ),
        "{}",
        stdout(&output)
    );
    let doc = parse(&lsport(["--json", "8085"]));
    let holder = &doc["sockets"][0]["holders"][0];
    assert_eq!(holder["proxy"]["kind"], "docker-proxy");
    assert_eq!(
        holder["proxy"]["forwards"][0]["host_ports"],
        serde_json::json!([8085, 8085])
    );
    assert_eq!(holder["proxy"]["forwards"][0]["target"], "172.17.0.2:80");
    assert_eq!(holder["proxy"]["forwards"][0]["target_port"], 80);
    // Any other program is no proxy.
    let listener = tcp4_listener(8086);
    let _sleep = hold(&[std::os::fd::AsRawFd::as_raw_fd(&listener)]);
    drop(listener);
    let doc = parse(&lsport(["--json", "8086"]));
    assert_eq!(doc["sockets"][0]["holders"][0]["proxy"], Value::Null);
}

/// An ip-netns namespace of the test's own, removed on drop.
struct IpNetns(String);

impl Drop for IpNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// A cgroup v1 `pids` directory `lsport-fwd-PID/docker/ID` with `pid`
/// in it, so that the process is a Docker container's as its cgroup
/// says; None where that hierarchy cannot be written.
struct DockerCgroup {
    dirs: Vec<std::path::PathBuf>,
    pid: u32,
}

impl DockerCgroup {
    fn enter(id: &str, pid: u32) -> Option<DockerCgroup> {
        let base = std::path::Path::new("/sys/fs/cgroup/pids");
        let mut cgroup = DockerCgroup {
            dirs: Vec::new(),
            pid,
        };
        let mut dir = base.to_path_buf();
        for part in [&format!("lsport-fwd-{}", std::process::id()), "docker", id] {
            dir.push(part);
            std::fs::create_dir(&dir).ok()?;
            cgroup.dirs.push(dir.clone());
        }
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(cgroup)
    }
}

impl Drop for DockerCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/fs/cgroup/pids/cgroup.procs", self.pid.to_string());
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The container: an ip-netns namespace `name` with `address` on its
/// loopback and a process living in it (removed and ended on drop).
fn container_namespace(name: &str, address: &str) -> (IpNetns, HeldBy) {
    run_tool("ip", &["netns", "add", name]);
    let netns = IpNetns(name.to_string());
    run_tool("ip", &["-n", name, "link", "set", "lo", "up"]);
    let cidr = format!("{address}/32");
    run_tool("ip", &["-n", name, "addr", "add", &cidr, "dev", "lo"]);
    let mut command = std::process::Command::new("ip");
    command.args(["netns", "exec", name, "sleep", "300"]);
    let sleeper = HeldBy {
        child: command.spawn().unwrap(),
    };
    for _ in 0..500 {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", sleeper.pid()));
        if comm.is_ok_and(|c| c == "sleep\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    (netns, sleeper)
}

/// A socket made inside the ip-netns namespace `name`, by `make`.
fn socket_in<T: Send>(name: &str, make: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                make()
            })
            .join()
            .unwrap()
    })
}

#[test]
fn the_socket_at_a_forward_s_target_is_shown_with_its_holder() {
    let test = "the_socket_at_a_forward_s_target_is_shown_with_its_holder";
    if !namespace_with(test, &["nft"]) {
        return;
    }
    // The container listens on 80 on every address, on 81 only on its
    // loopback, and not at all on 82.
    let name = format!("lsport-fwt-{}", std::process::id());
    let (netns, _sleeper) = container_namespace(&name, "10.78.0.2");
    let server = socket_in(&name, || std::net::TcpListener::bind("0.0.0.0:80").unwrap());
    let loopback = socket_in(&name, || tcp4_listener(81));
    let held = hold(&[
        std::os::fd::AsRawFd::as_raw_fd(&server),
        std::os::fd::AsRawFd::as_raw_fd(&loopback),
    ]);
    drop((server, loopback));
    nft(
        test,
        "table ip nat {
        chain pre { type nat hook prerouting priority -100; policy accept;
            tcp dport 8180 dnat to 10.78.0.2:80
            tcp dport 8181 dnat to 10.78.0.2:81
            tcp dport 8182 dnat to 10.78.0.2:82
        }
    }",
    );
    let output = lsport(["8180", "8181", "8182"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let pid = held.pid();
    assert!(
        text.contains(&format!(
            "  target: tcp *:80 listens there, held by sleep (pid {pid}, user root)."
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "  target: nothing listens on tcp 10.78.0.2:81 (bound to 127.0.0.1:81 only, not to it): connections sent there are refused."
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  target: nothing listens on tcp 10.78.0.2:82: connections sent there are refused."
        ),
        "{text}"
    );

    let doc = parse(&lsport(["--json", "8180", "8181", "8182"]));
    common::schema::assert_valid("probe", &doc);
    let at = |i: usize| doc["ports"][i]["forwards"][0]["target_sockets"].clone();
    let serving = at(0);
    assert_eq!(serving["ports"], serde_json::json!([80, 80]), "{doc:#}");
    assert_eq!(serving["error"], Value::Null, "{doc:#}");
    assert_eq!(serving["taking"][0]["state"], "LISTEN", "{doc:#}");
    assert_eq!(serving["taking"][0]["holders"][0]["pid"], pid, "{doc:#}");
    let inode = std::fs::metadata(format!("/run/netns/{name}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(serving["taking"][0]["netns"]["inode"], inode, "{doc:#}");
    let aside = at(1);
    assert_eq!(aside["taking"], serde_json::json!([]), "{doc:#}");
    assert_eq!(aside["elsewhere"][0]["local"]["address"], "127.0.0.1");
    let dead = at(2);
    assert_eq!(dead["taking"], serde_json::json!([]), "{doc:#}");
    assert_eq!(dead["elsewhere"], serde_json::json!([]), "{doc:#}");
    assert_eq!(dead["error"], Value::Null, "{doc:#}");

    // kill's dry run says where the forwarded traffic goes, too.
    let text = stdout(&lsport(["kill", "--dry-run", "8182"]));
    assert!(
        text.contains("nothing listens on tcp 10.78.0.2:82: connections sent there are refused"),
        "{text}"
    );

    // kill's JSON gives each forward the probe's target_sockets, dry or
    // not: nothing holds the ports here, so nothing is signalled (the
    // holder at the target lives on) and the answer is 4.
    for dry in [true, false] {
        let mut args = vec!["kill", "--json"];
        if dry {
            args.push("--dry-run");
        }
        args.extend(["8180", "8181", "8182"]);
        let output = lsport(&args);
        assert_eq!(
            output.status.code(),
            Some(4),
            "{args:?}: {}",
            stderr(&output)
        );
        let doc = parse(&output);
        common::schema::assert_valid("kill", &doc);
        assert_eq!(doc["outcome"], "forwarded", "{args:?}: {doc:#}");
        assert_eq!(doc["targets"], serde_json::json!([]), "{args:?}: {doc:#}");
        let at = |port: u16| {
            let forward = doc["forwards"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["ports"] == serde_json::json!([[port, port]]))
                .unwrap_or_else(|| panic!("{args:?}: no forward of {port}: {doc:#}"));
            forward["target_sockets"].clone()
        };
        let serving = at(8180);
        assert_eq!(serving["ports"], serde_json::json!([80, 80]), "{doc:#}");
        assert_eq!(serving["error"], Value::Null, "{doc:#}");
        assert_eq!(serving["taking"][0]["state"], "LISTEN", "{doc:#}");
        assert_eq!(serving["taking"][0]["holders"][0]["pid"], pid, "{doc:#}");
        assert_eq!(serving["taking"][0]["netns"]["inode"], inode, "{doc:#}");
        let aside = at(8181);
        assert_eq!(aside["ports"], serde_json::json!([81, 81]), "{doc:#}");
        assert_eq!(aside["taking"], serde_json::json!([]), "{doc:#}");
        assert_eq!(aside["elsewhere"][0]["local"]["address"], "127.0.0.1");
        let dead = at(8182);
        assert_eq!(dead["ports"], serde_json::json!([82, 82]), "{doc:#}");
        assert_eq!(dead["taking"], serde_json::json!([]), "{doc:#}");
        assert_eq!(dead["elsewhere"], serde_json::json!([]), "{doc:#}");
        assert_eq!(dead["error"], Value::Null, "{doc:#}");
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = state.rsplit_once(") ").unwrap().1;
        assert!(
            state.starts_with('S'),
            "{args:?}: the holder at the target: {state}"
        );
    }

    // A redirect has no target namespace: null, as in the probe.
    nft(
        test,
        "table ip nat {
        chain out { type nat hook output priority -100; policy accept;
            tcp dport 8183 redirect to :9183
        }
    }",
    );
    let output = lsport(["kill", "--json", "8183"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let doc = parse(&output);
    common::schema::assert_valid("kill", &doc);
    assert_eq!(doc["forwards"][0]["target_sockets"], Value::Null, "{doc:#}");
    drop(held);
    drop(netns);
}

#[test]
fn a_target_in_another_namespace_is_named_with_its_container() {
    let test = "a_target_in_another_namespace_is_named_with_its_container";
    if !namespace_with(test, &["nft"]) {
        return;
    }
    let name = format!("lsport-fwd-{}", std::process::id());
    let (netns, sleeper) = container_namespace(&name, "10.77.0.2");
    let id = "0123456789ab".repeat(5) + "cdef";
    let docker = DockerCgroup::enter(&id, sleeper.pid());
    nft(
        test,
        "table ip nat {
        chain pre { type nat hook prerouting priority -100; policy accept;
            tcp dport 8087 dnat to 10.77.0.2:80
        }
    }",
    );
    let inode = std::fs::metadata(format!("/run/netns/{name}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let output = lsport(["8087"]);
    let text = stdout(&output);
    let container = if docker.is_some() {
        ", docker 0123456789ab"
    } else {
        ""
    };
    assert!(
        text.contains(&format!(
            "  target: 10.77.0.2 is an address of network namespace net:[{inode}] ({name}{container})."
        )),
        "{text}"
    );
    let doc = parse(&lsport(["--json", "8087"]));
    let target = &doc["ports"][0]["forwards"][0]["target_netns"];
    assert_eq!(target["inode"], inode, "{doc:#}");
    if docker.is_some() {
        assert_eq!(target["container"]["id"], id.as_str(), "{doc:#}");
        let text = stdout(&lsport(["kill", "8087"]));
        assert!(
            text.contains(
                "    it forwards to docker container 0123456789ab; to remove it: docker stop 0123456789ab (or delete the rule: nft delete rule ip nat pre handle "
            ),
            "{text}"
        );
        let doc = parse(&lsport(["kill", "--json", "8087"]));
        common::schema::assert_valid("kill", &doc);
        assert_eq!(
            doc["forwards"][0]["container"]["id"],
            id.as_str(),
            "{doc:#}"
        );
    } else {
        eprintln!("{test}: no cgroup v1 pids hierarchy to name a container by; the namespace only");
    }
    drop(docker);
    drop(sleeper);
    drop(netns);
}
