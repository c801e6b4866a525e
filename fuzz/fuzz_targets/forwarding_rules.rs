//! Any bytes as forwarding rules: nf_tables dump replies, a legacy
//! iptables table, or a proxy's command line. An answer or an error,
//! never a panic, and every forward within the ports asked about.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsport::forwards::{self, ForwardScan, TableFamily, proxy};
use lsport::socket::{Family, PortRange};

/// The next buffer: a 2-byte length (little-endian), then that many
/// bytes (or what is left).
fn take(bytes: &[u8]) -> (&[u8], &[u8]) {
    let Some((length, rest)) = bytes.split_first_chunk::<2>() else {
        return (&[], &[]);
    };
    let length = usize::from(u16::from_le_bytes(*length)).min(rest.len());
    rest.split_at(length)
}

fn check(scan: &ForwardScan, ports: &[PortRange]) {
    for forward in &scan.forwards {
        assert!(!forward.place.chains.is_empty());
        assert!(!forward.protocols.is_empty() && !forward.families.is_empty());
        assert!(
            forward
                .ports
                .iter()
                .any(|r| ports.iter().any(|p| r.lo <= p.hi && p.lo <= r.hi))
        );
    }
    for rule in &scan.undecoded {
        assert!(!rule.to_string().contains('\n') || rule.what.contains('\n'));
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the input and, for rules, the family.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ports = [PortRange { lo: 1, hi: 9000 }];
    match mode % 3 {
        0 => {
            let family = [TableFamily::Ip, TableFamily::Ip6, TableFamily::Inet][usize::from(mode / 3 % 3)];
            // Chains, rules and sets each after a length; elements last.
            let (chains, rest) = take(rest);
            let (rules, rest) = take(rest);
            let (sets, elements) = take(rest);
            if let Ok(scan) =
                forwards::scan_nftables_replies(family, chains, rules, sets, elements, &ports)
            {
                check(&scan, &ports);
            }
        }
        1 => {
            let family = if mode & 0x10 == 0 { Family::Inet } else { Family::Inet6 };
            let (info, entries) = rest.split_at(rest.len().min(84));
            if let Ok(scan) = forwards::scan_legacy_entries(family, info, entries, &ports) {
                check(&scan, &ports);
            }
        }
        _ => {
            if let Some(found) = proxy::recognize(rest) {
                for forward in &found.forwards {
                    assert!(forward.host_ports.lo <= forward.host_ports.hi);
                }
            }
        }
    }
});
