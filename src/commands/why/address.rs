//! The addresses of the trial's namespace, read there: which one a
//! failed bind asked for and in what state it is (IPv6 duplicate address
//! detection), and which others a fix may bind instead. IPv6 addresses
//! come from `/proc/net/if_inet6`, which carries their flags; IPv4 ones
//! from getifaddrs(3).

use std::net::{IpAddr, Ipv6Addr};

use crate::sys::ProcRoot;

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    /// The address.
    pub address: IpAddr,
    /// The interface's name.
    pub interface: String,
    /// The interface's index (0 where not known).
    pub index: u32,
    /// IPv6: duplicate address detection is still running, and the
    /// kernel does not let a socket bind it until it ends.
    pub tentative: bool,
    /// IPv6: duplicate address detection found another host with it.
    pub dad_failed: bool,
}

/// IFA_F_* flags (linux/if_addr.h).
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

/// Every address of the calling thread's namespace.
pub fn local_addresses(root: &ProcRoot) -> Vec<LocalAddress> {
    let mut addresses: Vec<LocalAddress> = nix::ifaddrs::getifaddrs()
        .map(|all| {
            all.filter_map(|entry| {
                let v4 = entry.address?.as_sockaddr_in()?.ip();
                Some(LocalAddress {
                    address: IpAddr::V4(v4),
                    index: 0,
                    interface: entry.interface_name,
                    tentative: false,
                    dad_failed: false,
                })
            })
            .collect()
        })
        .unwrap_or_default();
    if let Ok(text) = std::fs::read_to_string(root.thread_path("net/if_inet6")) {
        addresses.extend(parse_if_inet6(&text));
    }
    addresses
}

/// `/proc/net/if_inet6`: per line the address in 32 hex digits, the
/// interface index, prefix length, scope and flags in hex, and the name.
pub fn parse_if_inet6(text: &str) -> Vec<LocalAddress> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [hex, index, _prefix, _scope, flags, name] = fields[..] else {
                return None;
            };
            let bits = u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)?;
            let flags = u32::from_str_radix(flags, 16).ok()?;
            Some(LocalAddress {
                address: IpAddr::V6(Ipv6Addr::from(bits)),
                interface: name.to_string(),
                index: u32::from_str_radix(index, 16).ok()?,
                tentative: flags & IFA_F_TENTATIVE != 0,
                dad_failed: flags & IFA_F_DADFAILED != 0,
            })
        })
        .collect()
}

/// Whether an IPv6 address is link-local (fe80::/10), which a bind
/// takes only with its interface (a scope id).
pub fn is_link_local(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_inet6_lines_give_address_interface_and_dad_state() {
        let text = "\
fe80000000000000a43424fffed2ec52 03 40 20 80       d0
20010db8000000000000000000000005 03 40 00 c0       d0
20010db8000000000000000000000006 03 40 00 88       d0
00000000000000000000000000000001 01 80 10 80       lo
garbage
";
        let parsed = parse_if_inet6(text);
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[0].address,
            "fe80::a434:24ff:fed2:ec52".parse::<IpAddr>().unwrap()
        );
        assert_eq!((parsed[0].interface.as_str(), parsed[0].index), ("d0", 3));
        assert!(!parsed[0].tentative && is_link_local(parsed[0].address));
        assert!(parsed[1].tentative && !parsed[1].dad_failed);
        assert!(parsed[2].dad_failed);
        assert!(!is_link_local(parsed[3].address));
    }
}
