//! Any bytes as a /proc/net table: no panic, every line either a
//! socket, a bad line, a header or blank, and each socket of the family
//! and protocol asked for.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsport::socket::{Family, PortRange, Protocol};
use lsport::source::procfs::{Filter, parse_table};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the table and the filter; the rest is the text.
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let family = if mode & 1 == 0 {
        Family::Inet
    } else {
        Family::Inet6
    };
    let protocol = if mode & 2 == 0 {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    let ports = [PortRange { lo: 1000, hi: 9000 }];
    let filter = if mode & 4 == 0 {
        Filter::everything()
    } else {
        Filter {
            states: u32::from(mode) << 5,
            ports: &ports,
            match_remote: mode & 8 != 0,
        }
    };
    let mut out = Vec::new();
    let bad = parse_table(text, family, protocol, &filter, &mut out);
    let lines = text.split(|b| *b == b'\n').count();
    assert!(out.len() + bad <= lines);
    for socket in &out {
        assert_eq!((socket.family, socket.protocol), (family, protocol));
        assert_eq!(socket.v6only, None);
        assert_eq!(socket.local.address.is_ipv4(), family == Family::Inet);
    }
});
