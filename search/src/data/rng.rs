//! Seeded random streams for shuffling, augmentation and synthetic data: ChaCha8, whose output
//! for a given key and stream is fixed by its specification, so a seed means the same thing on
//! every machine and every version. Integers below a bound use Lemire's unbiased method and
//! floats use 24 bits; no libm function is involved.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

/// One random stream: a seed, what it is for, and a stream number (an epoch, say).
pub(crate) struct Stream(ChaCha8Rng);

impl Stream {
    /// The stream for `seed`, `purpose` and `stream`. The key is the seed's 8 little-endian
    /// bytes then `purpose` (at most 24 bytes), so different jobs draw unrelated numbers from
    /// one seed.
    pub fn new(seed: u64, purpose: &str, stream: u64) -> Stream {
        assert!(purpose.len() <= 24, "purpose names are short");
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..8 + purpose.len()].copy_from_slice(purpose.as_bytes());
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream);
        Stream(rng)
    }

    /// Uniform in `0..n` (Lemire 2019, "Fast random integer generation in an interval").
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "an empty range has no element");
        let mut m = u128::from(self.0.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.0.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform in [0, 1), a multiple of 2^-24 (every such float is exact).
    pub fn unit(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.0.next_u32() >> 31 == 1
    }
}

/// A permutation of `0..n`, fixed by `seed` and `epoch` (Fisher-Yates on the `shuffle` stream).
pub fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Stream::new(seed, "shuffle", epoch);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_fixed_by_seed_and_epoch() {
        let p = permutation(1000, 7, 0);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "a permutation");
        assert_eq!(p, permutation(1000, 7, 0), "same seed and epoch, same order");
        assert_ne!(p, permutation(1000, 8, 0), "another seed");
        assert_ne!(p, permutation(1000, 7, 1), "another epoch");
        assert_ne!(p, sorted, "shuffled");
        // Pinned, so a change of generator or algorithm shows here rather than as results
        // that silently stop reproducing; computed independently by
        // scripts/seeded_data_pins.py.
        assert_eq!(permutation(10, 0, 0), PINNED);
    }

    const PINNED: [usize; 10] = [2, 5, 9, 3, 8, 6, 4, 1, 0, 7];

    #[test]
    fn below_is_uniform_enough() {
        let mut rng = Stream::new(1, "test", 0);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
        let units: Vec<f32> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = units.iter().sum::<f32>() / units.len() as f32;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }
}
