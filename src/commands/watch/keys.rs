//! Hash maps keyed by the kernel's numbers: socket cookies and inodes.
//! The default hasher (SipHash) resists keys chosen to collide, which
//! these are not (the kernel hands them out); a watch of every socket
//! of a big host hashes hundreds of thousands of them at every walk, so
//! they get a multiplicative hash, a multiplication per key.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A map keyed by a cookie or an inode.
pub type KeyMap<V> = HashMap<u64, V, Keys>;

/// A set of cookies or inodes.
pub type KeySet = HashSet<u64, Keys>;

/// Builds [`KeyHasher`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keys;

impl BuildHasher for Keys {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// 2^64 divided by the golden ratio: consecutive keys (cookies are a
/// counter) spread over the whole table.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// A multiplicative hash of whole numbers.
#[derive(Debug, Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SPREAD);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_keys_spread_over_the_buckets_and_the_top_bits() {
        let hash = |n: u64| Keys.hash_one(n);
        let low: HashSet<u64> = (1000..2024).map(|n| hash(n) & 1023).collect();
        let top: HashSet<u64> = (1000..2024).map(|n| hash(n) >> 57).collect();
        assert!(low.len() > 600, "{}", low.len());
        assert_eq!(top.len(), 128);
        let mut map: KeyMap<u64> = KeyMap::default();
        map.extend((0..10_000).map(|n| (n, n * 2)));
        assert_eq!(map[&4321], 8642);
    }
}
