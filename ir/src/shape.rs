//! Static tensor shapes: the batch axis first, then channels and spatial axes (NCHW).

use std::fmt;

/// Largest number of elements a tensor may hold (2^31 - 1, 8 GiB of f32).
///
/// Kernels index tensors with 32-bit offsets inside one image; anything larger is a typo in a
/// network file, not a network anybody runs on a CPU.
pub const MAX_ELEMS: usize = i32::MAX as usize;

/// The dimensions of a tensor, outermost first. Rank 4 is `[n, c, h, w]`, rank 2 is `[n, features]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions; `None` when the element count exceeds [`MAX_ELEMS`].
    pub fn new(dims: Vec<usize>) -> Option<Shape> {
        let numel = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        (numel <= MAX_ELEMS).then_some(Shape(dims))
    }

    /// An NCHW shape.
    pub fn nchw(n: usize, c: usize, h: usize, w: usize) -> Option<Shape> {
        Shape::new(vec![n, c, h, w])
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// The batch size (axis 0).
    pub fn batch(&self) -> usize {
        self.0[0]
    }

    /// The channel count (axis 1); a rank-1 tensor (a parameter's gradient, per-channel
    /// statistics) counts as one channel.
    pub fn channels(&self) -> usize {
        self.0.get(1).copied().unwrap_or(1)
    }

    /// The dimensions after the batch axis.
    pub fn item_dims(&self) -> &[usize] {
        &self.0[1..]
    }

    /// Number of elements of one batch item.
    pub fn item_numel(&self) -> usize {
        self.item_dims().iter().product()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_overflowing_shapes() {
        assert!(Shape::new(vec![1 << 40, 1 << 40]).is_none());
        assert!(Shape::new(vec![1, 1 << 31]).is_none());
        assert_eq!(Shape::new(vec![2, 3, 4, 5]).unwrap().numel(), 120);
    }

    #[test]
    fn displays_as_list() {
        assert_eq!(Shape::nchw(1, 3, 224, 224).unwrap().to_string(), "[1, 3, 224, 224]");
    }
}
