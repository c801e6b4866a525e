//! Forwarding rules written by the real tools (nft, iptables-nft,
//! iptables-legacy) in a private network namespace, read back by the
//! library. The command line does not show forwards yet; these tests
//! call `lsport::forwards` directly.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{DOCKER_PUBLISHES_8081, private_netns};
use lsport::forwards::{
    self, AddressTypeMatch, Direction, Forward, ForwardScan, Hook, InterfaceName, RuleSource,
    TableFamily, Target, Unreadable,
};
use lsport::socket::{Family, PortRange, Protocol};

/// A tool the test needs, found on the PATH or in the sbin
/// directories; None, after saying so, when it is missing. With
/// LSPORT_REQUIRE_NETNS=1 (as CI sets it) a missing tool fails the test.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let reason = format!("needs {name} (apt-get install nftables iptables)");
        if std::env::var_os("LSPORT_REQUIRE_NETNS").is_some() {
            panic!("{test}: {reason}, and LSPORT_REQUIRE_NETNS is set");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
    }
    found
}

/// Runs a tool with arguments in the calling thread's namespace.
/// iptables is told to wait for its lock (`-w`): iptables-legacy takes
/// one lock for every namespace, and tests run side by side.
fn run(program: &PathBuf, args: &[&str]) {
    let is_iptables = program
        .file_name()
        .is_some_and(|name| name.to_string_lossy().contains("tables"));
    let output = Command::new(program)
        .args(if is_iptables { &["-w"][..] } else { &[] })
        .args(args)
        .output()
        .expect("running a rule tool");
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Loads an nft script.
fn nft(nft: &PathBuf, script: &str) {
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "nft -f: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scan(ports: &[u16]) -> ForwardScan {
    let ports: Vec<PortRange> = ports.iter().map(|&p| PortRange::single(p)).collect();
    let scan = forwards::forwards_for(&ports).expect("reading the forwarding rules");
    assert!(scan.unreadable.is_empty(), "{:?}", scan.unreadable);
    assert!(scan.undecoded.is_empty(), "{:?}", scan.undecoded);
    scan
}

fn address(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn dnat_to(address_text: &str, port: u16) -> Target {
    let address = address(address_text);
    Target::Dnat {
        addresses: Some((address, address)),
        ports: Some(PortRange::single(port)),
    }
}

fn only(forwards: Vec<&Forward>) -> &Forward {
    assert_eq!(forwards.len(), 1, "{forwards:#?}");
    forwards[0]
}

#[test]
fn native_nft_dnat_and_redirect() {
    let test = "native_nft_dnat_and_redirect";
    let Some(nft_path) = tool("nft", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    nft(
        &nft_path,
        "table ip web {
            chain pre {
                type nat hook prerouting priority dstnat;
                tcp dport 8080 dnat to 10.0.0.2:80
                tcp dport 8090 redirect to :80
            }
            chain out {
                type nat hook output priority -100;
                tcp dport 8080 dnat to 10.0.0.2:80
            }
        }",
    );
    let found = scan(&[8080, 8090]);
    let to_server: Vec<&Forward> = found.forwards_of(8080).collect();
    let hooks: Vec<Hook> = to_server.iter().map(|f| f.hook()).collect();
    assert_eq!(hooks, [Hook::Prerouting, Hook::Output]);
    let forward = to_server[0];
    assert_eq!(forward.place.source, RuleSource::Nftables);
    assert_eq!(forward.place.table_name(), "ip web");
    assert_eq!(forward.place.chains, ["pre"]);
    assert_eq!(forward.protocols, [Protocol::Tcp]);
    assert_eq!(forward.families, [Family::Inet]);
    assert_eq!(forward.target, dnat_to("10.0.0.2", 80));
    let redirect = only(found.forwards_of(8090).collect());
    assert_eq!(
        redirect.target,
        Target::Redirect {
            ports: Some(PortRange::single(80))
        }
    );
    // A port no rule names has no forward.
    assert!(scan(&[8081]).forwards.is_empty());
}

/// Docker's rules for `docker run -p 8081:80`, as dockerd writes them
/// with iptables 1.8 (iptables-nft).
fn docker_rules(iptables: &PathBuf) {
    for args in DOCKER_PUBLISHES_8081 {
        run(iptables, args);
    }
}

/// What Docker's forward of 8081 must look like, from either source.
fn check_docker_forwards(found: &ForwardScan, source: RuleSource) {
    let forwards: Vec<&Forward> = found.forwards_of(8081).collect();
    let paths: Vec<(Hook, String)> = forwards
        .iter()
        .map(|f| (f.hook(), f.place.path()))
        .collect();
    assert_eq!(
        paths,
        [
            (Hook::Prerouting, "PREROUTING -> DOCKER".to_string()),
            (Hook::Output, "OUTPUT -> DOCKER".to_string()),
        ]
    );
    let forward = forwards[0];
    assert_eq!(forward.place.source, source);
    assert_eq!(forward.place.family, TableFamily::Ip);
    assert_eq!(forward.place.table, "nat");
    // Docker's DNAT is the second rule of DOCKER, after its RETURN:
    // `iptables -t nat -D DOCKER 2` removes it, whichever iptables.
    assert_eq!(forward.place.position, 2);
    assert_eq!(forward.protocols, [Protocol::Tcp]);
    assert_eq!(forward.ports, [PortRange::single(8081)]);
    assert_eq!(forward.target, dnat_to("172.17.0.2", 80));
    assert_eq!(forward.target.to_string(), "172.17.0.2:80");
    assert_eq!(forward.interfaces.len(), 1);
    let interface = &forward.interfaces[0];
    assert_eq!(
        (interface.direction, &interface.name, interface.negated),
        (Direction::In, &InterfaceName::Exact("docker0".into()), true)
    );
    assert_eq!(
        forward.destination_types,
        [AddressTypeMatch {
            types: AddressTypeMatch::LOCAL,
            negated: false,
            on_incoming_interface: false,
        }]
    );
    // The OUTPUT path keeps Docker's `! -d 127.0.0.0/8`.
    let output = &forwards[1];
    assert_eq!(output.destinations.len(), 1);
    assert_eq!(output.destinations[0].to_string(), "not to 127.0.0.0/8");
}

#[test]
fn docker_s_rules_written_by_iptables_nft() {
    let test = "docker_s_rules_written_by_iptables_nft";
    let Some(iptables) = tool("iptables-nft", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    docker_rules(&iptables);
    let found = scan(&[8081]);
    check_docker_forwards(&found, RuleSource::Nftables);
    // Docker's RETURN for traffic from docker0 is not a forward, and
    // the port next to it is free of rules.
    assert!(scan(&[8080]).forwards.is_empty());
}

#[test]
fn docker_s_rules_written_by_iptables_legacy() {
    let test = "docker_s_rules_written_by_iptables_legacy";
    let Some(iptables) = tool("iptables-legacy", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    docker_rules(&iptables);
    let found = scan(&[8081]);
    assert!(found.read.legacy.contains(&(Family::Inet, "nat".into())));
    check_docker_forwards(&found, RuleSource::IptablesLegacy);
    assert_eq!(found.forwards[0].place.rule, 2);
}

#[test]
fn the_scan_never_creates_a_legacy_table() {
    // Asking the kernel for a legacy table that does not exist creates
    // it, hooks and all: the scan only reads the tables already listed.
    let test = "the_scan_never_creates_a_legacy_table";
    if !private_netns(test) {
        return;
    }
    let names = "/proc/thread-self/net/ip_tables_names";
    let before = std::fs::read_to_string(names).unwrap_or_default();
    assert!(!before.lines().any(|l| l == "nat"), "{before}");
    let found = scan(&[80]);
    assert!(found.forwards.is_empty());
    assert!(found.read.legacy.is_empty());
    let after = std::fs::read_to_string(names).unwrap_or_default();
    assert_eq!(before, after);
}

#[test]
fn an_ipv6_rule() {
    let test = "an_ipv6_rule";
    let Some(ip6tables) = tool("ip6tables-nft", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    run(
        &ip6tables,
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            "fd00:1::/64",
            "-p",
            "tcp",
            "--dport",
            "8443",
            "-j",
            "DNAT",
            "--to-destination",
            "[fd00:2::5]:443",
        ],
    );
    let found = scan(&[8443]);
    let forward = only(found.forwards_of(8443).collect());
    assert_eq!(forward.place.family, TableFamily::Ip6);
    assert_eq!(forward.families, [Family::Inet6]);
    assert_eq!(forward.target, dnat_to("fd00:2::5", 443));
    assert_eq!(forward.target.to_string(), "[fd00:2::5]:443");
    assert_eq!(forward.destinations[0].to_string(), "to fd00:1::/64");
}

#[test]
fn a_port_range() {
    let test = "a_port_range";
    let Some(nft_path) = tool("nft", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    nft(
        &nft_path,
        "table ip games {
            chain pre {
                type nat hook prerouting priority dstnat;
                udp dport 27000-27015 dnat to 10.0.0.3:27000-27015
            }
        }",
    );
    let found = scan(&[27005]);
    let forward = only(found.forwards_of(27005).collect());
    assert_eq!(forward.protocols, [Protocol::Udp]);
    assert_eq!(
        forward.ports,
        [PortRange {
            lo: 27000,
            hi: 27015
        }]
    );
    assert_eq!(
        forward.target,
        Target::Dnat {
            addresses: Some((address("10.0.0.3"), address("10.0.0.3"))),
            ports: Some(PortRange {
                lo: 27000,
                hi: 27015
            }),
        }
    );
    // Just outside the range.
    assert!(scan(&[26999, 27016]).forwards.is_empty());
}

#[test]
fn a_rule_on_an_interface() {
    let test = "a_rule_on_an_interface";
    let (Some(nft_path), Some(iptables)) = (tool("nft", test), tool("iptables-nft", test)) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    nft(
        &nft_path,
        "table ip edge {
            chain pre {
                type nat hook prerouting priority dstnat;
                iifname \"eth0\" tcp dport 8082 redirect to :80
            }
        }",
    );
    // iptables' wildcard: any interface whose name starts with wg.
    run(
        &iptables,
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-i",
            "wg+",
            "-p",
            "tcp",
            "--dport",
            "8083",
            "-j",
            "REDIRECT",
            "--to-ports",
            "81",
        ],
    );
    let found = scan(&[8082, 8083]);
    let exact = only(found.forwards_of(8082).collect());
    assert_eq!(exact.interfaces.len(), 1);
    assert_eq!(
        exact.interfaces[0].name,
        InterfaceName::Exact("eth0".into())
    );
    assert!(!exact.interfaces[0].negated);
    assert_eq!(exact.interfaces[0].to_string(), "arriving on eth0");
    let wildcard = only(found.forwards_of(8083).collect());
    assert_eq!(
        wildcard.interfaces[0].name,
        InterfaceName::Prefix("wg".into())
    );
}

#[test]
fn an_inet_family_table_with_sets_and_maps() {
    let test = "an_inet_family_table_with_sets_and_maps";
    let Some(nft_path) = tool("nft", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    nft(
        &nft_path,
        "table inet lb {
            chain pre {
                type nat hook prerouting priority dstnat;
                udp dport { 53, 5353 } redirect
                tcp dport vmap { 7000 : jump web }
                ip6 daddr fd00::/64 tcp dport 7100 dnat ip6 to [fd00::7]:80
            }
            chain web {
                meta l4proto tcp dnat ip to 10.0.0.70:80 comment \"web\"
            }
        }",
    );
    let found = scan(&[53, 7000, 7100]);
    let dns = only(found.forwards_of(53).collect());
    assert_eq!(dns.place.family, TableFamily::Inet);
    // An inet table's redirect takes both families.
    assert_eq!(dns.families, [Family::Inet, Family::Inet6]);
    assert_eq!(dns.ports, [PortRange::single(53), PortRange::single(5353)]);
    let web = only(found.forwards_of(7000).collect());
    assert_eq!(web.place.path(), "pre -> web");
    assert_eq!(web.families, [Family::Inet]);
    assert_eq!(web.comment.as_deref(), Some("web"));
    assert_eq!(web.target, dnat_to("10.0.0.70", 80));
    let v6 = only(found.forwards_of(7100).collect());
    assert_eq!(v6.families, [Family::Inet6]);
    assert_eq!(v6.target, dnat_to("fd00::7", 80));
}

/// Runs `f` on a new thread of this namespace whose credentials `drop`
/// first lowers (capabilities and ids belong to a thread; the rest of
/// the test process keeps its own).
fn on_thread_with<T: Send + 'static>(drop: fn(), f: fn() -> T) -> T {
    std::thread::spawn(move || {
        drop();
        f()
    })
    .join()
    .unwrap()
}

/// Drops CAP_NET_ADMIN from the calling thread (capget, then capset
/// without bit 12 in the effective and permitted sets).
fn drop_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words of each set.
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a header and two data words, as the
    // kernel expects for version 3; only this thread is changed.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        let net_admin = 1u32 << 12;
        data[0].effective &= !net_admin;
        data[0].permitted &= !net_admin;
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}

/// Becomes uid and gid 65534 on the calling thread only (the raw
/// system calls, not libc's, which would change every thread); the
/// kernel clears the capabilities with the uid.
fn become_nobody() {
    // SAFETY: plain system calls on the calling thread's credentials.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
            0
        );
        assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
        assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
    }
}

fn scan_any() -> ForwardScan {
    forwards::forwards_for(&[PortRange::single(8081)]).expect("a scan, refused or not")
}

#[test]
fn without_cap_net_admin_the_rules_are_not_readable() {
    let test = "without_cap_net_admin_the_rules_are_not_readable";
    let (Some(iptables), Some(legacy)) =
        (tool("iptables-nft", test), tool("iptables-legacy", test))
    else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    docker_rules(&iptables);
    docker_rules(&legacy);
    // Root without CAP_NET_ADMIN: nf_tables refuses the dump and the
    // legacy table refuses its entries; never "no rules".
    let found = on_thread_with(drop_net_admin, scan_any);
    assert!(found.forwards.is_empty());
    assert_eq!(
        found.unreadable,
        [
            Unreadable::Nftables { errno: libc::EPERM },
            Unreadable::LegacyTable {
                family: Family::Inet,
                table: "nat".into(),
                errno: libc::EPERM
            },
        ]
    );
    assert!(!found.is_complete());
    assert_eq!(found.unreadable[0].id(), "nftables_rules");
    assert_eq!(
        found.unreadable[0].describe(),
        "forwarding rules (nftables, iptables-nft) were not read: Operation not permitted; \
         root (CAP_NET_ADMIN) reads them"
    );
    // The same process, with its capabilities, reads them all.
    let all = scan(&[8081]);
    assert_eq!(all.forwards.len(), 4);
}

#[test]
fn an_unprivileged_user_reads_nothing_and_is_told_so() {
    let test = "an_unprivileged_user_reads_nothing_and_is_told_so";
    let Some(iptables) = tool("iptables-nft", test) else {
        return;
    };
    if !private_netns(test) {
        return;
    }
    docker_rules(&iptables);
    let found = on_thread_with(become_nobody, scan_any);
    assert!(found.forwards.is_empty());
    assert_eq!(
        found.unreadable[0],
        Unreadable::Nftables { errno: libc::EPERM }
    );
    // The legacy tables' names are root's to read, where the kernel has
    // them.
    if std::path::Path::new("/proc/net/ip_tables_names").exists() {
        assert!(found.unreadable.contains(&Unreadable::LegacyTableNames {
            family: Family::Inet,
            errno: libc::EACCES
        }));
        assert_eq!(
            found.unreadable.last().unwrap().id(),
            "iptables_legacy_rules"
        );
    }
}
