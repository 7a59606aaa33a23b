//! One epoch of a data set as batches: in a seeded random order with seeded augmentation for
//! training, or in order for evaluation.
//!
//! The order is [`permutation`]`(len, seed, epoch)`; augmentation draws come from the
//! `augment` stream of the same seed and epoch, per image in batch order (crop row offset,
//! crop column offset, then the flip coin, each only when enabled). So a run is reproduced by
//! its seed, and each epoch differs.

use super::augment::shift_flip;
use super::rng::Stream;
use super::{Augment, Dataset, permutation};

/// A batch: `len` images as `[len, c, h, w]` and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The images, NCHW.
    pub images: Vec<f32>,
    /// Their labels.
    pub labels: Vec<u32>,
    /// Which examples of the data set they are.
    pub indices: Vec<usize>,
    /// `[len, c, h, w]`.
    pub shape: [usize; 4],
}

impl Batch {
    /// How many examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty (never, from [`Batches`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// An iterator over one epoch's batches.
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    next: usize,
    size: usize,
    drop_last: bool,
    augment: Augment,
    rng: Stream,
}

impl<'a> Batches<'a> {
    /// Training batches of `batch` examples for `epoch`: shuffled and augmented by `seed` and
    /// `epoch`. The last batch may be smaller; see [`Batches::drop_last`].
    ///
    /// # Panics
    /// When `batch` is 0.
    pub fn new(dataset: &'a Dataset, batch: usize, seed: u64, epoch: u64, augment: Augment) -> Batches<'a> {
        let order = permutation(dataset.len(), seed, epoch);
        Batches::with_order(dataset, batch, order, augment, Stream::new(seed, "augment", epoch))
    }

    /// Evaluation batches: every example in order, not augmented.
    ///
    /// # Panics
    /// When `batch` is 0.
    pub fn sequential(dataset: &'a Dataset, batch: usize) -> Batches<'a> {
        let order = (0..dataset.len()).collect();
        Batches::with_order(dataset, batch, order, Augment::NONE, Stream::new(0, "augment", 0))
    }

    fn with_order(
        data: &'a Dataset,
        size: usize,
        order: Vec<usize>,
        augment: Augment,
        rng: Stream,
    ) -> Batches<'a> {
        assert!(size > 0, "a batch holds at least one example");
        Batches { data, order, next: 0, size, drop_last: false, augment, rng }
    }

    /// Whether to leave out a last batch smaller than the batch size (for a network compiled
    /// for one batch size, or to keep batch statistics comparable).
    pub fn drop_last(mut self, drop: bool) -> Batches<'a> {
        self.drop_last = drop;
        self
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let remaining = self.order.len() - self.next;
        if remaining == 0 || (self.drop_last && remaining < self.size) {
            return None;
        }
        let indices = self.order[self.next..self.next + remaining.min(self.size)].to_vec();
        self.next += indices.len();
        let shape = self.data.shape();
        let n = self.data.image_len();
        let mut images = vec![0.0; indices.len() * n];
        for (&i, dst) in indices.iter().zip(images.chunks_exact_mut(n)) {
            let src = self.data.image(i);
            if self.augment.is_none() {
                dst.copy_from_slice(src);
                continue;
            }
            let Augment { pad, flip } = self.augment;
            let mut offset = || self.rng.below(2 * pad as u64 + 1) as isize - pad as isize;
            let (dy, dx) = if pad > 0 { (offset(), offset()) } else { (0, 0) };
            let flip = flip && self.rng.coin();
            shift_flip(src, shape, dy, dx, flip, dst);
        }
        let labels = indices.iter().map(|&i| self.data.labels()[i]).collect();
        Some(Batch { images, labels, shape: [indices.len(), shape[0], shape[1], shape[2]], indices })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.order.len() - self.next;
        let n = if self.drop_last { remaining / self.size } else { remaining.div_ceil(self.size) };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}
