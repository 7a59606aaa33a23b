//! Generated data for tests: each class is a striped pattern of its own spatial frequency,
//! each example its class's pattern plus uniform noise. Deterministic by seed, and learnable
//! both by a linear classifier (the patterns' phases are fixed) and by convolutions with
//! global pooling (stripe direction and spacing are local features), so a short training run
//! can be checked to learn.
//!
//! Class `k` has the `k`-th frequency `(u, v)` (whole cycles across the width and the height)
//! of the list ordered by ring `max(|u|, |v|)` = 1, 2, 3, 4, one of each `±(u, v)` pair: 4, 8,
//! 12 and 16 of them, hence at most 40 classes, and images at least `2 ring + 1` pixels on
//! each side so that the stripes are not aliased. Pixel `(c, y, x)` of its pattern is a square
//! wave, `+1` when `(u x H + v y W + phase_k + c W H / 4) mod W H` is below `W H / 2` and `-1`
//! otherwise, with `phase_k` drawn from the seed: integer arithmetic only, so the data are the
//! same on every machine. Noise is uniform on [-sqrt 3, sqrt 3] (variance 1). Example `i` has
//! label `i mod classes`, so classes are balanced. The values are used as they are (no
//! normalization: mean 0, variance 2).

use super::Dataset;
use super::rng::Stream;

/// The highest ring of frequencies used.
const MAX_RING: i64 = 4;

/// The most classes a synthetic set can have: the frequencies of rings 1 to 4.
pub const MAX_CLASSES: usize = 40;

/// The first `n` frequencies `(u, v)`, by ring, then `u`, then `v`, one of each `±(u, v)` pair.
fn frequencies(n: usize) -> Vec<(i64, i64)> {
    let mut all: Vec<(i64, i64)> = (0..=MAX_RING)
        .flat_map(|u| (-MAX_RING..=MAX_RING).map(move |v| (u, v)))
        .filter(|&(u, v)| u > 0 || v > 0)
        .collect();
    all.sort_by_key(|&(u, v)| (u.max(v.abs()), u, v));
    all.truncate(n);
    all
}

/// The most floats a synthetic set may hold (4 GiB), against typos on the command line.
const MAX_FLOATS: usize = 1 << 30;

/// The parameters of a synthetic data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synthetic {
    /// Number of classes, 2 to [`MAX_CLASSES`].
    pub classes: usize,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of examples.
    pub count: usize,
    /// The seed the patterns' phases and the noise come from.
    pub seed: u64,
}

impl Default for Synthetic {
    /// MNIST-shaped: 10 classes of 1x28x28 images, 2000 examples, seed 0.
    fn default() -> Synthetic {
        Synthetic { classes: 10, channels: 1, height: 28, width: 28, count: 2000, seed: 0 }
    }
}

impl Synthetic {
    /// Checks the parameters; the message names the one out of range.
    pub fn check(&self) -> Result<(), String> {
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            return Err(format!("CLASSES must be 2 to {MAX_CLASSES}, not {}", self.classes));
        }
        for (name, v) in [
            ("CHANNELS", self.channels),
            ("HEIGHT", self.height),
            ("WIDTH", self.width),
            ("COUNT", self.count),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        let ring = frequencies(self.classes).iter().map(|&(u, v)| u.max(v.abs())).max().unwrap_or(1);
        let side = 2 * ring as usize + 1;
        if self.height < side || self.width < side {
            return Err(format!(
                "{} classes need images of at least {side}x{side} pixels, not {}x{}",
                self.classes, self.height, self.width
            ));
        }
        let floats = [self.channels, self.height, self.width, self.count]
            .iter()
            .try_fold(1usize, |acc, &v| acc.checked_mul(v))
            .filter(|&n| n <= MAX_FLOATS);
        if floats.is_none() {
            return Err(format!("too large: more than {MAX_FLOATS} values"));
        }
        Ok(())
    }

    /// Each class's noiseless pattern, `[classes, c, h, w]`.
    pub(crate) fn patterns(&self) -> Vec<f32> {
        let mut rng = Stream::new(self.seed, "synthetic", 0);
        let mut out = Vec::with_capacity(self.classes * self.channels * self.height * self.width);
        let (h, w) = (self.height as i64, self.width as i64);
        let period = h * w;
        for (u, v) in frequencies(self.classes) {
            let phase = rng.below(period as u64) as i64;
            for c in 0..self.channels as i64 {
                for y in 0..h {
                    for x in 0..w {
                        let t = (u * x * h + v * y * w + phase + c * period / 4).rem_euclid(period);
                        out.push(if t < period / 2 { 1.0 } else { -1.0 });
                    }
                }
            }
        }
        out
    }

    /// Generates the data set.
    ///
    /// # Panics
    /// When [`Synthetic::check`] fails (a `DataSpec` never holds such parameters).
    pub fn generate(&self) -> Dataset {
        if let Err(e) = self.check() {
            panic!("synthetic data set: {e}");
        }
        let patterns = self.patterns();
        let n = self.channels * self.height * self.width;
        let mut rng = Stream::new(self.seed, "synthetic", 1);
        let spread = 2.0 * 3f32.sqrt();
        let mut images = Vec::with_capacity(self.count * n);
        let mut labels = Vec::with_capacity(self.count);
        for i in 0..self.count {
            let label = i % self.classes;
            labels.push(label as u32);
            images
                .extend(patterns[label * n..(label + 1) * n].iter().map(|p| p + (rng.unit() - 0.5) * spread));
        }
        let classes = (0..self.classes).map(|k| format!("pattern{k}")).collect();
        Dataset::new(images, labels, [self.channels, self.height, self.width], classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Synthetic {
        Synthetic { classes: 12, channels: 2, height: 12, width: 10, count: 240, seed }
    }

    #[test]
    fn deterministic_by_seed() {
        let a = small(5).generate();
        assert_eq!(a, small(5).generate());
        assert_ne!(a.images(), small(6).generate().images());
        assert_eq!(a.shape(), [2, 12, 10]);
        assert_eq!(a.class_counts(), [20; 12]);
        let mean = a.images().iter().sum::<f32>() / a.images().len() as f32;
        assert!(mean.abs() < 0.1, "{mean}");
    }

    #[test]
    fn patterns_are_distinct() {
        let s = Synthetic { classes: MAX_CLASSES, channels: 1, height: 28, width: 28, count: 64, seed: 0 };
        let p = s.patterns();
        let n = 28 * 28;
        for i in 0..s.classes {
            for j in 0..i {
                let same = (0..n).filter(|&x| p[i * n + x] == p[j * n + x]).count();
                assert!(same < n * 3 / 4, "classes {i} and {j} agree on {same} of {n} pixels");
            }
        }
    }

    #[test]
    fn nearest_pattern_classifies_the_examples() {
        // What a linear classifier can reach; a training run is expected to get close to it.
        let s = small(1);
        let (d, p) = (s.generate(), s.patterns());
        let n = d.image_len();
        let right = (0..d.len())
            .filter(|&i| {
                let score =
                    |k: usize| -> f32 { d.image(i).iter().zip(&p[k * n..]).map(|(x, q)| x * q).sum() };
                let best = (0..s.classes).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap();
                best == d.labels()[i] as usize
            })
            .count();
        assert!(right >= d.len() * 95 / 100, "{right} of {}", d.len());
    }
}
