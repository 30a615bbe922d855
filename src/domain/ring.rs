//! A consistent-hash ring with virtual nodes (seed 002): clients map to
//! workers by a hash of their address, and a worker joining or leaving moves
//! only the keys it gains or loses.
//!
//! The hash is FNV-1a (64 bits) finished with the SplitMix64 mixer: fixed by
//! this code, so every front server computes the same ring from the same
//! worker set, whatever its platform or process.

/// Virtual nodes per worker by default (seed 002's `CONSISTENT_HASH_REPLICAS`).
pub const DEFAULT_REPLICAS: usize = 150;

/// A stable 64-bit hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64's finalizer spreads FNV's low-entropy high bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The ring over a set of workers (by id).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ring {
    /// Points on the ring, sorted: (hash, index into `workers`).
    points: Vec<(u64, usize)>,
    workers: Vec<String>,
}

impl Ring {
    /// A ring of `workers` with `replicas` virtual nodes each. The order of
    /// `workers` does not matter.
    pub fn new(workers: &[String], replicas: usize) -> Self {
        let mut workers = workers.to_vec();
        workers.sort();
        workers.dedup();
        let mut points = Vec::with_capacity(workers.len() * replicas);
        for (i, w) in workers.iter().enumerate() {
            for r in 0..replicas {
                points.push((hash(format!("{w}:{r}").as_bytes()), i));
            }
        }
        // Equal hashes (astronomically rare) go to the smaller id, on every server alike.
        points.sort_unstable();
        Self { points, workers }
    }

    /// The worker for `key`: the first point at or after the key's hash,
    /// wrapping around; `None` for an empty ring.
    pub fn get(&self, key: &str) -> Option<&str> {
        let h = hash(key.as_bytes());
        let at = self.points.partition_point(|(p, _)| *p < h);
        let (_, i) = self.points.get(at).or_else(|| self.points.first())?;
        Some(&self.workers[*i])
    }

    /// The workers on the ring, sorted.
    pub fn workers(&self) -> &[String] {
        &self.workers
    }

    /// Virtual nodes on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no worker.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn workers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("worker-{i}")).collect()
    }

    fn keys() -> impl Iterator<Item = String> {
        (0..100_000u32).map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
    }

    /// The documented bound: with 10 workers and 150 virtual nodes, every
    /// worker gets within 25 % of the mean share of 100 000 keys.
    #[test]
    fn ten_workers_with_150_virtual_nodes_share_100k_keys_within_25_percent_of_the_mean() {
        let ring = Ring::new(&workers(10), DEFAULT_REPLICAS);
        assert_eq!(ring.len(), 1500);
        let mut load: HashMap<&str, usize> = HashMap::new();
        for k in keys() {
            *load.entry(ring.get(&k).unwrap()).or_default() += 1;
        }
        assert_eq!(load.len(), 10, "every worker gets keys");
        let mean = 100_000.0 / 10.0;
        for (w, n) in &load {
            let off = (*n as f64 - mean).abs() / mean;
            assert!(off <= 0.25, "{w} has {n} keys, {:.1} % off the mean", off * 100.0);
        }
    }

    #[test]
    fn one_worker_leaving_remaps_only_its_own_keys_about_a_tenth() {
        let all = workers(10);
        let before = Ring::new(&all, DEFAULT_REPLICAS);
        let after = Ring::new(&all[1..], DEFAULT_REPLICAS);
        let mut moved = 0;
        for k in keys() {
            let (was, now) = (before.get(&k).unwrap(), after.get(&k).unwrap());
            if was != now {
                assert_eq!(was, "worker-0", "a key of another worker moved: {k}");
                moved += 1;
            }
        }
        let share = moved as f64 / 100_000.0;
        assert!((0.075..=0.125).contains(&share), "{:.1} % moved, about 10 % expected", share * 100.0);
    }

    #[test]
    fn the_ring_depends_on_the_worker_set_only_and_an_empty_ring_maps_nothing() {
        let mut shuffled = workers(5);
        shuffled.reverse();
        let (a, b) = (Ring::new(&workers(5), 150), Ring::new(&shuffled, 150));
        assert_eq!(a, b);
        assert!(keys().take(1000).all(|k| a.get(&k) == b.get(&k)));
        assert_eq!(Ring::new(&[], 150).get("10.0.0.1"), None);
        // Pinned: servers of different versions in one cluster must agree.
        assert_eq!(hash(b"10.0.0.1"), 0x7fb1_b600_f0f5_c6d3);
    }
}
