use super::*;
use crate::forwards::model::Target;
use crate::forwards::walk::walk;
use crate::socket::PortRange;

/// An entry of an IPv4 table, laid out field by field.
struct EntryBuilder {
    bytes: Vec<u8>,
}

impl EntryBuilder {
    fn new() -> EntryBuilder {
        // struct ipt_entry: ipt_ip (84 bytes), nfcache (4),
        // target_offset (2), next_offset (2), comefrom (4), counters
        // (16): 112 bytes, all zero (no condition).
        EntryBuilder {
            bytes: vec![0; 112],
        }
    }

    /// ipt_ip.proto at 80 (host order).
    fn protocol(mut self, proto: u16) -> EntryBuilder {
        self.bytes[80..82].copy_from_slice(&proto.to_ne_bytes());
        self
    }

    /// ipt_ip.iniface at 16 and iniface_mask at 48; invflags at 83
    /// (IPT_INV_VIA_IN 0x01).
    fn incoming(mut self, name: &str, negated: bool) -> EntryBuilder {
        self.bytes[16..16 + name.len()].copy_from_slice(name.as_bytes());
        for byte in &mut self.bytes[48..48 + name.len() + 1] {
            *byte = 0xff;
        }
        if negated {
            self.bytes[83] |= 0x01;
        }
        self
    }

    /// A match: u16 size, char name[29], u8 revision, then its data.
    fn with_match(mut self, name: &str, revision: u8, data: &[u8]) -> EntryBuilder {
        self.bytes
            .extend(xt_header(name, revision, 32 + data.len()));
        self.bytes.extend_from_slice(data);
        self
    }

    /// Ends the entry with its target and fixes the offsets at 88, 90.
    fn target(mut self, name: &str, revision: u8, data: &[u8]) -> Vec<u8> {
        let target_offset = self.bytes.len();
        self.bytes
            .extend(xt_header(name, revision, 32 + data.len()));
        self.bytes.extend_from_slice(data);
        let next_offset = self.bytes.len();
        self.bytes[88..90].copy_from_slice(&(target_offset as u16).to_ne_bytes());
        self.bytes[90..92].copy_from_slice(&(next_offset as u16).to_ne_bytes());
        self.bytes
    }
}

fn xt_header(name: &str, revision: u8, size: usize) -> Vec<u8> {
    let mut header = vec![0u8; 32];
    header[0..2].copy_from_slice(&(size as u16).to_ne_bytes());
    header[2..2 + name.len()].copy_from_slice(name.as_bytes());
    header[31] = revision;
    header
}

/// The standard target's verdict, an int padded to 8 bytes.
fn verdict(value: i32) -> Vec<u8> {
    let mut data = value.to_ne_bytes().to_vec();
    data.resize(8, 0);
    data
}

/// xt_tcp: spts 0-65535, dpts port-port, no option, no flags.
fn tcp_dport(port: u16) -> Vec<u8> {
    let mut data = Vec::new();
    for value in [0u16, 65535, port, port] {
        data.extend_from_slice(&value.to_ne_bytes());
    }
    data.extend_from_slice(&[0, 0, 0, 0]);
    data
}

/// A nat table with PREROUTING (hook 0) and a user chain WEB:
/// PREROUTING: ! -i lo -j WEB, policy ACCEPT; WEB: -p tcp --dport 8080
/// -j REDIRECT --to-ports 80, then its RETURN.
fn hand_built() -> (TableInfo, Vec<u8>) {
    let mut blob = Vec::new();
    let mut offsets = Vec::new();
    let mut push = |entry: Vec<u8>, blob: &mut Vec<u8>| {
        offsets.push(blob.len() as u32);
        blob.extend(entry);
    };
    // The jump's offset is known once WEB's first rule is placed: the
    // entries before it have fixed sizes (112 + 40 each, ERROR 112 + 64).
    let web_first = (112 + 40) * 2 + (112 + 64);
    push(
        EntryBuilder::new()
            .incoming("lo", true)
            .target("", 0, &verdict(web_first)),
        &mut blob,
    );
    push(EntryBuilder::new().target("", 0, &verdict(-2)), &mut blob); // ACCEPT policy
    let mut name = b"WEB".to_vec();
    name.resize(32, 0);
    push(EntryBuilder::new().target("ERROR", 0, &name), &mut blob);
    // struct nf_nat_ipv4_multi_range_compat: rangesize 1, flags
    // PROTO_SPECIFIED, addresses 0, ports 80-80.
    let mut range = Vec::new();
    range.extend_from_slice(&1u32.to_ne_bytes());
    range.extend_from_slice(&2u32.to_ne_bytes());
    range.extend_from_slice(&[0; 8]);
    range.extend_from_slice(&[0, 80, 0, 80]);
    range.resize(24, 0);
    push(
        EntryBuilder::new()
            .protocol(6)
            .with_match("tcp", 0, &tcp_dport(8080))
            .target("REDIRECT", 0, &range),
        &mut blob,
    );
    push(EntryBuilder::new().target("", 0, &verdict(-5)), &mut blob); // RETURN
    let mut error = b"ERROR".to_vec();
    error.resize(32, 0);
    push(EntryBuilder::new().target("ERROR", 0, &error), &mut blob);
    assert_eq!(offsets[3], web_first as u32);
    let info = TableInfo {
        valid_hooks: 1,
        hook_entry: [0; 5],
        underflow: [offsets[1], 0, 0, 0, 0],
        size: blob.len() as u32,
    };
    (info, blob)
}

#[test]
fn a_hand_built_table_jumps_to_its_user_chain() {
    let (info, blob) = hand_built();
    let table = table_of(Family::Inet, "nat", &info, &blob, &PortSet::all()).unwrap();
    let names: Vec<&str> = table.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["PREROUTING", "WEB"]);
    // The policy is not a rule; WEB's RETURN is its rule 2.
    assert_eq!(table.chains[0].rules.len(), 1);
    assert_eq!(
        table.chains[0].rules[0].branches[0].action,
        Action::Jump("WEB".into())
    );
    let condition = &table.chains[0].rules[0].branches[0].conditions.interfaces[0];
    assert_eq!(condition.to_string(), "not arriving on lo");
    let found = walk(&table, &PortSet::asked(&[PortRange::single(8080)]));
    assert_eq!(found.forwards.len(), 1);
    let forward = &found.forwards[0];
    assert_eq!(
        forward.place.to_string(),
        "table iptables-legacy nat, chain PREROUTING -> WEB, rule 1"
    );
    assert_eq!(
        forward.target,
        Target::Redirect {
            ports: Some(PortRange::single(80))
        }
    );
    assert_eq!(forward.ports, [PortRange::single(8080)]);
}

#[test]
fn a_blob_cut_short_is_an_error() {
    let (info, blob) = hand_built();
    assert!(table_of(Family::Inet, "nat", &info, &blob[..200], &PortSet::all()).is_err());
    let mut bad = blob.clone();
    bad[90..92].copy_from_slice(&5000u16.to_ne_bytes()); // next_offset past the end
    assert!(table_of(Family::Inet, "nat", &info, &bad, &PortSet::all()).is_err());
}

#[test]
fn masks_that_are_not_prefixes_are_said_not_read() {
    assert_eq!(prefix_of(&[255, 255, 240, 0]), Some(20));
    assert_eq!(prefix_of(&[255, 0, 255, 0]), None);
    assert_eq!(prefix_of(&[0; 16]), Some(0));
}
