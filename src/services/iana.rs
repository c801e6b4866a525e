//! Reading the IANA table compiled into the binary (iana_table.rs,
//! made by tools/gen-iana.py). Nothing is parsed at start-up: lookups
//! binary-search sorted static arrays.

use super::iana_table::{BY_NAME, BY_PORT, DESCRIPTIONS, ENTRIES, Entry, NAMES};
use super::protocols::Protocols;

impl Entry {
    /// The registration's first and last port.
    pub fn ports(&self) -> (u16, u16) {
        (self.lo, self.hi)
    }

    /// The protocols the registration is for.
    pub fn protocols(&self) -> Protocols {
        Protocols(self.protocols)
    }

    /// Empty for unnamed rows such as "Reserved".
    pub fn name(&self) -> &'static str {
        let at = usize::from(self.name_at);
        &NAMES[at..at + usize::from(self.name_len)]
    }

    /// IANA's description; empty for the rows that have none.
    pub fn description(&self) -> &'static str {
        let at = (self.description >> 8) as usize;
        let len = (self.description & 0xff) as usize;
        &DESCRIPTIONS[at..at + len]
    }
}

/// Every registration on `port`, in the registry's order: a binary
/// search of BY_PORT, so O(log n).
pub fn on_port(port: u16) -> impl Iterator<Item = &'static Entry> {
    let start = BY_PORT.partition_point(|&(p, _)| p < port);
    BY_PORT[start..]
        .iter()
        .take_while(move |&&(p, _)| p == port)
        .map(|&(_, i)| &ENTRIES[usize::from(i)])
}

/// Every registration named `name`, compared without regard to ASCII
/// case: a binary search of BY_NAME.
pub fn named(name: &str) -> impl Iterator<Item = &'static Entry> {
    let order = move |i: &u16| fold_cmp(ENTRIES[usize::from(*i)].name(), name);
    let start = BY_NAME.partition_point(|i| order(i).is_lt());
    BY_NAME[start..]
        .iter()
        .take_while(move |i| order(i).is_eq())
        .map(|&i| &ENTRIES[usize::from(i)])
}

/// Compares as the generator sorted: by lower-case bytes.
fn fold_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Every distinct name, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    let mut last = "";
    BY_NAME.iter().filter_map(move |&i| {
        let name = ENTRIES[usize::from(i)].name();
        if name.eq_ignore_ascii_case(last) {
            None
        } else {
            last = name;
            Some(name)
        }
    })
}

/// The date of the registry the table was made from, `YYYY-MM-DD`.
pub fn updated() -> &'static str {
    super::iana_table::UPDATED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexes_are_sorted_and_point_inside_the_table() {
        assert!(BY_PORT.windows(2).all(|w| w[0] <= w[1]));
        for &(port, i) in &BY_PORT {
            let (lo, hi) = ENTRIES[usize::from(i)].ports();
            assert!(lo <= port && port <= hi);
        }
        let lower: Vec<String> = BY_NAME
            .iter()
            .map(|&i| ENTRIES[usize::from(i)].name().to_ascii_lowercase())
            .collect();
        assert!(lower.windows(2).all(|w| w[0] <= w[1]));
        assert!(lower.iter().all(|n| !n.is_empty()));
    }

    #[test]
    fn every_entry_has_known_protocols_and_unnamed_ones_a_description() {
        for e in &ENTRIES {
            assert!(!e.name().is_empty() || !e.description().is_empty(), "{e:?}");
            assert!(e.protocols().0 != 0 && e.protocols().0 < 32, "{e:?}");
        }
    }
}
