//! A hasher for the integer keys lsport looks up by the hundred thousand
//! per run (socket inodes, pids, ports): `-a` on a busy host joins
//! 200,000 sockets to their holders, and the standard SipHash, made to
//! resist keys chosen by an attacker, costs more there than the lookups
//! themselves. These keys are numbers the kernel hands out, so a
//! multiply-and-rotate mix is enough.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Maps keyed by an integer.
pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;
/// Sets of integers.
pub type IntSet<K> = HashSet<K, BuildHasherDefault<IntHasher>>;

/// The hasher of [`IntMap`] and [`IntSet`].
#[derive(Debug, Default, Clone, Copy)]
pub struct IntHasher(u64);

/// 2^64 divided by the golden ratio, odd: multiplying by it spreads
/// consecutive keys (inodes come from a counter) over the high bits.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

impl IntHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// The table picks buckets by the low bits: fold the well-mixed high
    /// bits into them.
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_and_strided_keys_spread_over_the_buckets() {
        // 4,096 keys into 256 buckets by the low bits of their hashes:
        // each bucket gets a few, none a pile.
        for stride in [1u64, 2, 4096, 1 << 32] {
            let mut buckets = [0u32; 256];
            for i in 0..4096u64 {
                let mut h = IntHasher::default();
                h.write_u64(1_000_000 + i * stride);
                buckets[(h.finish() & 255) as usize] += 1;
            }
            let fullest = buckets.iter().max().unwrap();
            assert!(*fullest <= 40, "stride {stride}: {fullest} in one bucket");
        }
    }

    #[test]
    fn maps_and_sets_work_as_usual() {
        let mut map: IntMap<u64, &str> = IntMap::default();
        map.insert(7, "seven");
        map.insert(1 << 40, "big");
        assert_eq!(map.get(&7), Some(&"seven"));
        assert_eq!(map.get(&(1 << 40)), Some(&"big"));
        let set: IntSet<(u16, u8)> = [(80, 6), (80, 17)].into_iter().collect();
        assert!(set.contains(&(80, 17)) && !set.contains(&(81, 6)));
    }
}
