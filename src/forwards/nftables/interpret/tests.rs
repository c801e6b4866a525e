//! Rules as nft writes them (the expressions `nft --debug=netlink`
//! prints, above each test), interpreted.

use super::*;
use crate::forwards::nftables::objects::decode_rule;

fn rule(expressions: Vec<Expr>) -> Rule {
    Rule {
        table: "t".into(),
        chain: "c".into(),
        handle: 1,
        expressions: Ok(expressions),
        comment: None,
    }
}

fn run(family: TableFamily, expressions: Vec<Expr>, sets: &Sets) -> Vec<Branch> {
    interpret(&rule(expressions), family, sets, &PortSet::all()).branches
}

fn one(branches: Vec<Branch>) -> Branch {
    assert_eq!(branches.len(), 1, "{branches:#?}");
    branches.into_iter().next().unwrap()
}

fn meta(key: u32) -> Expr {
    Expr::Meta { key, dreg: 1 }
}

fn cmp(op: u32, data: &[u8]) -> Expr {
    Expr::Cmp {
        sreg: 1,
        op,
        data: data.to_vec(),
    }
}

fn load(base: u32, offset: u32, len: u32) -> Expr {
    Expr::Payload {
        dreg: 1,
        base,
        offset,
        len,
    }
}

fn dport() -> Expr {
    load(2, 2, 2)
}

fn immediate(dreg: u32, bytes: &[u8]) -> Expr {
    Expr::Immediate {
        dreg,
        data: Data::Value(bytes.to_vec()),
    }
}

fn dnat_v4(addr: u32, port: Option<u32>) -> Expr {
    Expr::Nat {
        kind: 1,
        family: 2,
        addr_min: Some(addr),
        addr_max: Some(addr),
        proto_min: port,
        proto_max: port,
    }
}

fn ports(branch: &Branch) -> Vec<(u16, u16)> {
    branch
        .conditions
        .ports
        .ranges()
        .iter()
        .map(|r| (r.lo, r.hi))
        .collect()
}

fn dnat_target(address: &str, port: Option<u16>) -> Action {
    let address: IpAddr = address.parse().unwrap();
    Action::Forward(Target::Dnat {
        addresses: Some((address, address)),
        ports: port.map(PortRange::single),
    })
}

#[test]
fn docker_s_rule_as_iptables_nft_writes_it() {
    // [ meta load iifname => reg 1 ] [ cmp neq reg 1 "docker0\0" ]
    // [ meta load l4proto => reg 1 ] [ cmp eq reg 1 6 ]
    // [ payload load 2b @ transport header + 2 => reg 1 ] [ cmp eq reg 1 8081 ]
    // [ target name DNAT rev 2 ]
    let rule = decode_rule(crate::forwards::nftables::objects::tests::DOCKER_DNAT_RULE).unwrap();
    let meaning = interpret(&rule, TableFamily::Ip, &Sets::new(), &PortSet::all());
    assert_eq!(meaning.id, 4);
    let branch = one(meaning.branches);
    assert_eq!(branch.conditions.protocols, TCP);
    assert_eq!(ports(&branch), [(8081, 8081)]);
    assert_eq!(
        branch.conditions.interfaces,
        [InterfaceMatch {
            direction: Direction::In,
            name: InterfaceName::Exact("docker0".into()),
            negated: true,
        }]
    );
    assert_eq!(branch.action, dnat_target("172.17.0.2", Some(80)));
    // Asked about another port, the rule is dropped at once.
    let asked = PortSet::of([PortRange::single(8080)]);
    assert!(
        interpret(&rule, TableFamily::Ip, &Sets::new(), &asked)
            .branches
            .is_empty()
    );
}

#[test]
fn a_native_range_on_a_wildcard_interface() {
    // iifname "eth*" tcp dport 8000-8010 dnat ip to 10.0.0.2:80, in an
    // inet table:
    // [ meta load iifname => reg 1 ] [ cmp eq reg 1 "eth" ]
    // [ meta load l4proto => reg 1 ] [ cmp eq reg 1 6 ]
    // [ payload load 2b @ transport header + 2 => reg 1 ]
    // [ cmp gte reg 1 8000 ] [ cmp lte reg 1 8010 ]
    // [ immediate reg 1 10.0.0.2 ] [ immediate reg 2 80 ]
    // [ nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 2 proto_max reg 2 ]
    let branch = one(run(
        TableFamily::Inet,
        vec![
            meta(6),
            cmp(0, b"eth"),
            meta(16),
            cmp(0, &[6]),
            dport(),
            cmp(5, &8000u16.to_be_bytes()),
            cmp(3, &8010u16.to_be_bytes()),
            immediate(1, &[10, 0, 0, 2]),
            immediate(2, &80u16.to_be_bytes()),
            dnat_v4(1, Some(2)),
        ],
        &Sets::new(),
    ));
    assert_eq!(ports(&branch), [(8000, 8010)]);
    assert_eq!(
        branch.conditions.interfaces[0].name,
        InterfaceName::Prefix("eth".into())
    );
    // `dnat ip` in an inet table: IPv4 traffic only.
    assert_eq!(branch.conditions.families, IPV4);
    assert_eq!(branch.action, dnat_target("10.0.0.2", Some(80)));
}

#[test]
fn lt_and_gt_bound_the_port_and_redirect_keeps_or_sets_it() {
    // tcp dport > 9000 tcp dport < 9005 redirect to :80
    let branch = one(run(
        TableFamily::Ip,
        vec![
            dport(),
            cmp(4, &9000u16.to_be_bytes()),
            dport(),
            cmp(2, &9005u16.to_be_bytes()),
            immediate(1, &80u16.to_be_bytes()),
            Expr::Redir {
                proto_min: Some(1),
                proto_max: Some(1),
            },
        ],
        &Sets::new(),
    ));
    assert_eq!(ports(&branch), [(9001, 9004)]);
    assert_eq!(
        branch.action,
        Action::Forward(Target::Redirect {
            ports: Some(PortRange::single(80))
        })
    );
    // `redirect` alone keeps the port.
    let bare = one(run(
        TableFamily::Ip,
        vec![Expr::Redir {
            proto_min: None,
            proto_max: None,
        }],
        &Sets::new(),
    ));
    assert_eq!(
        bare.action,
        Action::Forward(Target::Redirect { ports: None })
    );
    assert_eq!(ports(&bare), [(0, 65535)]);
}

#[test]
fn addresses_by_prefix_masked_or_short_and_ipv6() {
    // ip daddr != 127.0.0.0/8, as iptables-nft writes it: one byte.
    // [ payload load 1b @ network header + 16 => reg 1 ] [ cmp neq reg 1 0x7f ]
    let short = one(run(
        TableFamily::Ip,
        vec![load(1, 16, 1), cmp(1, &[127])],
        &Sets::new(),
    ));
    assert_eq!(
        short.conditions.destinations,
        [AddressMatch {
            network: "127.0.0.0".parse().unwrap(),
            prefix: 8,
            negated: true
        }]
    );
    // ip daddr 10.0.0.0/12: [ payload load 4b @ network header + 16 ]
    // [ bitwise reg 1 = (reg 1 & 0xfff00000) ^ 0 ] [ cmp eq reg 1 10.0.0.0 ]
    let masked = one(run(
        TableFamily::Ip,
        vec![
            load(1, 16, 4),
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                op: 0,
                mask: vec![0xff, 0xf0, 0, 0],
                xor: vec![0; 4],
            },
            cmp(0, &[10, 0, 0, 0]),
        ],
        &Sets::new(),
    ));
    assert_eq!(
        masked.conditions.destinations[0].to_string(),
        "to 10.0.0.0/12"
    );
    // In an inet table: [ meta load nfproto ] [ cmp eq 10 ] first.
    // ip6 daddr fd00::/64: [ payload load 8b @ network header + 24 ]
    let v6 = one(run(
        TableFamily::Inet,
        vec![
            meta(15),
            cmp(0, &[10]),
            load(1, 24, 8),
            cmp(0, &[0xfd, 0, 0, 0, 0, 0, 0, 0]),
        ],
        &Sets::new(),
    ));
    assert_eq!(v6.conditions.families, IPV6);
    assert_eq!(v6.conditions.destinations[0].to_string(), "to fd00::/64");
    // Without the family known, a network header load is not read.
    let unknown = one(run(
        TableFamily::Inet,
        vec![load(1, 16, 4), cmp(0, &[10, 0, 0, 1])],
        &Sets::new(),
    ));
    assert_eq!(unknown.conditions.unread, ["the network header"]);
}

#[test]
fn fib_daddr_type_local() {
    // fib daddr type local: [ fib daddr type => reg 1 ] [ cmp eq reg 1 2 ]
    let branch = one(run(
        TableFamily::Ip,
        vec![
            Expr::Fib {
                dreg: 1,
                result: 3,
                flags: 0x2,
            },
            cmp(0, &2u32.to_ne_bytes()),
        ],
        &Sets::new(),
    ));
    assert_eq!(
        branch.conditions.destination_types,
        [AddressTypeMatch {
            types: AddressTypeMatch::LOCAL,
            negated: false,
            on_incoming_interface: false
        }]
    );
}

fn set(name: &str, flags: u32, key_len: u32, elements: Vec<Element>) -> (String, SetContents) {
    (
        name.to_string(),
        SetContents {
            set: Set {
                table: "t".into(),
                name: name.into(),
                flags,
                key_len,
            },
            elements: Ok(elements),
        },
    )
}

fn element(key: &[u8], flags: u32, data: Option<Data>) -> Element {
    Element {
        key: key.to_vec(),
        key_end: None,
        flags,
        data,
    }
}

fn lookup(set: &str, dreg: Option<u32>, inverted: bool) -> Expr {
    Expr::Lookup {
        set: set.into(),
        sreg: 1,
        dreg,
        inverted,
    }
}

#[test]
fn a_set_of_ports_is_one_branch_and_its_negation_the_rest() {
    // udp dport { 53, 5353 } redirect
    // [ payload load 2b @ transport header + 2 ] [ lookup reg 1 set __set0 ] [ redir ]
    let sets = Sets::from([set(
        "__set0",
        0x3,
        2,
        vec![
            element(&53u16.to_be_bytes(), 0, None),
            element(&5353u16.to_be_bytes(), 0, None),
        ],
    )]);
    let redir = Expr::Redir {
        proto_min: None,
        proto_max: None,
    };
    let branch = one(run(
        TableFamily::Ip,
        vec![dport(), lookup("__set0", None, false), redir.clone()],
        &sets,
    ));
    assert_eq!(ports(&branch), [(53, 53), (5353, 5353)]);
    let negated = one(run(
        TableFamily::Ip,
        vec![dport(), lookup("__set0", None, true), redir],
        &sets,
    ));
    assert_eq!(ports(&negated), [(0, 52), (54, 5352), (5354, 65535)]);
}

#[test]
fn a_verdict_map_of_adjacent_intervals_forks_per_element() {
    // tcp dport vmap { 6100 : jump web, 6101-6105 : goto web }, as the
    // kernel dumps the interval map: an end at 0, two starts, an end.
    let jump = |code| Data::Verdict {
        code,
        chain: Some("web".into()),
    };
    let sets = Sets::from([set(
        "__map0",
        0x4 | 0x8 | 0x3,
        2,
        vec![
            element(&6106u16.to_be_bytes(), ELEMENT_INTERVAL_END, None),
            element(&6101u16.to_be_bytes(), 0, Some(jump(-4))),
            element(&6100u16.to_be_bytes(), 0, Some(jump(-3))),
            element(&0u16.to_be_bytes(), ELEMENT_INTERVAL_END, None),
        ],
    )]);
    let branches = run(
        TableFamily::Ip,
        vec![dport(), lookup("__map0", Some(0), false)],
        &sets,
    );
    let forks: Vec<(Vec<(u16, u16)>, Action)> = branches
        .iter()
        .map(|b| (ports(b), b.action.clone()))
        .collect();
    assert_eq!(
        forks,
        [
            (vec![(6100, 6100)], Action::Jump("web".into())),
            (vec![(6101, 6105)], Action::Jump("web".into())),
        ]
    );
}

#[test]
fn a_map_of_addresses_gives_one_target_per_port() {
    // dnat ip to tcp dport map { 1111 : 10.0.0.1, 2222 : 10.0.0.2 }
    // [ lookup reg 1 set __map0 dreg 1 ] [ nat dnat ip addr_min reg 1 addr_max reg 1 ]
    let sets = Sets::from([set(
        "__map0",
        0xb,
        2,
        vec![
            element(
                &1111u16.to_be_bytes(),
                0,
                Some(Data::Value(vec![10, 0, 0, 1])),
            ),
            element(
                &2222u16.to_be_bytes(),
                0,
                Some(Data::Value(vec![10, 0, 0, 2])),
            ),
        ],
    )]);
    let branches = run(
        TableFamily::Ip,
        vec![
            meta(16),
            cmp(0, &[6]),
            dport(),
            lookup("__map0", Some(1), false),
            dnat_v4(1, None),
        ],
        &sets,
    );
    let targets: Vec<(Vec<(u16, u16)>, Action)> = branches
        .iter()
        .map(|b| (ports(b), b.action.clone()))
        .collect();
    assert_eq!(
        targets,
        [
            (vec![(1111, 1111)], dnat_target("10.0.0.1", None)),
            (vec![(2222, 2222)], dnat_target("10.0.0.2", None)),
        ]
    );
}

#[test]
fn a_concatenation_of_protocol_and_port_ranges() {
    // meta l4proto . th dport { tcp . 6300-6310, udp . 6400 }
    // [ meta load l4proto => reg 1 ] [ byteorder reg 1 = hton(reg 1, 2, 1) ]
    // [ payload load 2b @ transport header + 2 => reg 9 ]
    // [ lookup reg 1 set __set0 ]: keys of 8 bytes, ends in KEY_END.
    let key = |proto: u8, port: u16| {
        let mut key = vec![proto, 0, 0, 0];
        key.extend_from_slice(&port.to_be_bytes());
        key.extend_from_slice(&[0, 0]);
        key
    };
    let range = |proto, lo, hi| Element {
        key: key(proto, lo),
        key_end: Some(key(proto, hi)),
        flags: 0,
        data: None,
    };
    let sets = Sets::from([set(
        "__set0",
        0x80 | 0x4 | 0x3,
        8,
        vec![range(6, 6300, 6310), range(17, 6400, 6400)],
    )]);
    let branches = run(
        TableFamily::Ip,
        vec![
            meta(16),
            Expr::Byteorder {
                sreg: 1,
                dreg: 1,
                len: 1,
                size: 2,
            },
            Expr::Payload {
                dreg: 9,
                base: 2,
                offset: 2,
                len: 2,
            },
            lookup("__set0", None, false),
        ],
        &sets,
    );
    let forks: Vec<(u8, Vec<(u16, u16)>)> = branches
        .iter()
        .map(|b| (b.conditions.protocols, ports(b)))
        .collect();
    assert_eq!(
        forks,
        [(TCP, vec![(6300, 6310)]), (UDP, vec![(6400, 6400)])]
    );
}

#[test]
fn a_set_that_cannot_be_read_makes_the_port_unknown() {
    let sets = Sets::from([(
        "ports".to_string(),
        SetContents {
            set: Set {
                table: "t".into(),
                name: "ports".into(),
                flags: 0,
                key_len: 2,
            },
            elements: Err("they were not read".into()),
        },
    )]);
    let branch = one(run(
        TableFamily::Ip,
        vec![
            dport(),
            lookup("ports", None, false),
            immediate(1, &[10, 0, 0, 1]),
            dnat_v4(1, None),
        ],
        &sets,
    ));
    assert_eq!(
        branch.conditions.port_unknown.as_deref(),
        Some("a lookup in set @ports, whose elements could not be read: they were not read")
    );
    // A set that is not there at all.
    let missing = one(run(
        TableFamily::Ip,
        vec![dport(), lookup("gone", None, false)],
        &Sets::new(),
    ));
    assert!(
        missing
            .conditions
            .port_unknown
            .unwrap()
            .contains("not found")
    );
}

#[test]
fn conditions_lsport_does_not_read_narrow_and_are_named() {
    // tcp dport 6001 ct state new counter dnat ip to 10.0.0.3
    // [ ct load state => reg 1 ] [ bitwise reg 1 = (reg 1 & 8) ^ 0 ] [ cmp neq reg 1 0 ]
    let branch = one(run(
        TableFamily::Ip,
        vec![
            dport(),
            cmp(0, &6001u16.to_be_bytes()),
            Expr::Load {
                what: "ct state".into(),
                dreg: 1,
                reads_port: false,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                op: 0,
                mask: 8u32.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            cmp(1, &[0; 4]),
            Expr::Other {
                name: "counter".into(),
            },
            immediate(1, &[10, 0, 0, 3]),
            dnat_v4(1, None),
        ],
        &Sets::new(),
    ));
    assert_eq!(branch.conditions.unread, ["ct state"]);
    assert_eq!(branch.conditions.port_unknown, None);
    assert_eq!(branch.action, dnat_target("10.0.0.3", None));
}

#[test]
fn unknown_expressions_are_named_never_guessed() {
    // An expression lsport does not know, and no action after it: it
    // may be the action.
    let alone = one(run(
        TableFamily::Ip,
        vec![
            dport(),
            cmp(0, &80u16.to_be_bytes()),
            Expr::Other {
                name: "frob".into(),
            },
        ],
        &Sets::new(),
    ));
    assert_eq!(alone.action, Action::Undecoded("expression frob".into()));
    // Before a dnat, a condition it does not read.
    let before = one(run(
        TableFamily::Ip,
        vec![
            Expr::Other {
                name: "frob".into(),
            },
            immediate(1, &[10, 0, 0, 1]),
            dnat_v4(1, None),
        ],
        &Sets::new(),
    ));
    assert_eq!(before.conditions.unread, ["expression frob"]);
    // A rewrite of the port in the packet itself.
    let rewrite = one(run(
        TableFamily::Ip,
        vec![Expr::PayloadWrite {
            base: 2,
            offset: 2,
            len: 2,
        }],
        &Sets::new(),
    ));
    assert!(matches!(rewrite.action, Action::Undecoded(ref what) if what.contains("payload set")));
    // A dnat whose address comes from something lsport does not read.
    let hashed = one(run(
        TableFamily::Ip,
        vec![
            Expr::Load {
                what: "numgen".into(),
                dreg: 1,
                reads_port: false,
            },
            dnat_v4(1, None),
        ],
        &Sets::new(),
    ));
    assert_eq!(
        hashed.action,
        Action::Undecoded("dnat to an address from numgen".into())
    );
    // A rule whose expressions could not be read at all.
    let mut broken = rule(Vec::new());
    broken.expressions = Err("a cmp expression without its attributes".into());
    let meaning = interpret(&broken, TableFamily::Ip, &Sets::new(), &PortSet::all());
    assert_eq!(
        one(meaning.branches).action,
        Action::Undecoded("a cmp expression without its attributes".into())
    );
}

#[test]
fn verdicts_end_the_rule() {
    // iifname "docker0" return: [ immediate reg 0 return ]
    let ret = one(run(
        TableFamily::Ip,
        vec![
            meta(6),
            cmp(0, b"docker0\0"),
            Expr::Immediate {
                dreg: 0,
                data: Data::Verdict {
                    code: -5,
                    chain: None,
                },
            },
        ],
        &Sets::new(),
    ));
    assert_eq!(ret.action, Action::Stop);
    // A jump, then nothing after it counts.
    let jump = one(run(
        TableFamily::Ip,
        vec![
            Expr::Immediate {
                dreg: 0,
                data: Data::Verdict {
                    code: -3,
                    chain: Some("DOCKER".into()),
                },
            },
            immediate(1, &[10, 0, 0, 1]),
            dnat_v4(1, None),
        ],
        &Sets::new(),
    ));
    assert_eq!(jump.action, Action::Jump("DOCKER".into()));
    // SNAT is not a forward.
    let snat = one(run(
        TableFamily::Ip,
        vec![
            immediate(1, &[10, 0, 0, 1]),
            Expr::Nat {
                kind: 0,
                family: 2,
                addr_min: Some(1),
                addr_max: None,
                proto_min: None,
                proto_max: None,
            },
        ],
        &Sets::new(),
    ));
    assert_eq!(snat.action, Action::Stop);
}

#[test]
fn rules_for_other_protocols_leave_no_branch() {
    // meta l4proto sctp: not a TCP or UDP port.
    assert!(
        run(
            TableFamily::Ip,
            vec![
                meta(16),
                cmp(0, &[132]),
                Expr::Redir {
                    proto_min: None,
                    proto_max: None
                }
            ],
            &Sets::new()
        )
        .is_empty()
    );
    // meta l4proto != tcp: UDP.
    let udp = one(run(
        TableFamily::Ip,
        vec![meta(16), cmp(1, &[6])],
        &Sets::new(),
    ));
    assert_eq!(udp.conditions.protocols, UDP);
}

#[test]
fn interval_sets_pair_starts_with_ends() {
    let set = Set {
        table: "t".into(),
        name: "s".into(),
        flags: SET_INTERVAL,
        key_len: 2,
    };
    // { 80, 8000-8010, 60000-65535 } as the kernel dumps it: an end at
    // 0, each range's start and the key past its end; the last range
    // reaches the end of the key space and has no end.
    let elements = vec![
        element(&0u16.to_be_bytes(), ELEMENT_INTERVAL_END, None),
        element(&8011u16.to_be_bytes(), ELEMENT_INTERVAL_END, None),
        element(&60000u16.to_be_bytes(), 0, None),
        element(&80u16.to_be_bytes(), 0, None),
        element(&81u16.to_be_bytes(), ELEMENT_INTERVAL_END, None),
        element(&8000u16.to_be_bytes(), 0, None),
    ];
    let ranges = element_ranges(&set, &elements).unwrap();
    let spans: Vec<(Vec<u8>, Vec<u8>)> = ranges
        .into_iter()
        .map(|r| match r {
            KeyRange::Span { lo, hi, .. } => (lo, hi),
            KeyRange::Catchall(_) => panic!("no catch-all here"),
        })
        .collect();
    let be = |p: u16| p.to_be_bytes().to_vec();
    assert_eq!(
        spans,
        [
            (be(80), be(80)),
            (be(8000), be(8010)),
            (be(60000), be(65535))
        ]
    );
}

#[test]
fn registers_of_both_sizes_share_their_bytes() {
    // A 16-byte register 2 is 4-byte registers 12 to 15 (slots 4 to 7).
    let mut registers = Registers::default();
    registers.write(2, Value::Bytes((0u8..8).collect()), 8);
    assert_eq!(registers.bytes(12, 4), Some(vec![0, 1, 2, 3]));
    assert_eq!(registers.bytes(13, 2), Some(vec![4, 5]));
    assert_eq!(registers.value(13), None);
    assert_eq!(slot_of(0), None);
    assert_eq!(slot_of(24), None);
}
