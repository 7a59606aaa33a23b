//! Augmentation for CIFAR-style training: a random crop of the image padded with zeros on
//! every side, then a random horizontal flip (torchvision's `RandomCrop(size, padding)` and
//! `RandomHorizontalFlip()`). It works on normalized images, so the padding is 0 after
//! normalization: the data set's mean colour rather than black.

use std::str::FromStr;

use crate::{Error, Result};

/// Which augmentations to apply to each training image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding on each side before a crop of the original size at a uniformly random
    /// offset; 0 means no cropping.
    pub pad: usize,
    /// Whether to mirror left-right with probability one half.
    pub flip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment { pad: 0, flip: false };
    /// The usual CIFAR-10 recipe: pad 4, crop, flip.
    pub const CIFAR: Augment = Augment { pad: 4, flip: true };

    /// Whether this changes nothing.
    pub fn is_none(&self) -> bool {
        *self == Augment::NONE
    }
}

impl FromStr for Augment {
    type Err = Error;

    /// `none`, `cifar` or `shift:N` (crops of the image padded by N pixels, N from 1 to 16:
    /// shifts without flips, for digits).
    fn from_str(s: &str) -> Result<Augment> {
        match s {
            "none" => Ok(Augment::NONE),
            "cifar" => Ok(Augment::CIFAR),
            _ => s
                .strip_prefix("shift:")
                .and_then(|n| n.parse().ok())
                .filter(|&pad| (1..=16).contains(&pad))
                .map(|pad| Augment { pad, flip: false })
                .ok_or_else(|| Error::Augment {
                    spec: s.to_string(),
                    message: "expected none, cifar or shift:N (N from 1 to 16)".to_string(),
                }),
        }
    }
}

/// Writes into `dst` the image `src` (`shape` = `[c, h, w]`) shifted by `(dy, dx)` and then,
/// if `flip`, mirrored: `dst[c][y][x] = src[c][y + dy][x' + dx]` with `x' = w - 1 - x` when
/// flipping (else `x`), and 0 where that falls outside `src`. A crop at offset `(oy, ox)` of
/// the image padded by `pad` is the shift `(oy - pad, ox - pad)`.
pub fn shift_flip(src: &[f32], shape: [usize; 3], dy: isize, dx: isize, flip: bool, dst: &mut [f32]) {
    let [c, h, w] = shape;
    assert_eq!(src.len(), c * h * w, "source image of {shape:?}");
    assert_eq!(dst.len(), src.len(), "destination image of {shape:?}");
    for (plane_src, plane_dst) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
        for y in 0..h {
            let sy = y as isize + dy;
            let row = &mut plane_dst[y * w..(y + 1) * w];
            if !(0..h as isize).contains(&sy) {
                row.fill(0.0);
                continue;
            }
            let src_row = &plane_src[sy as usize * w..(sy as usize + 1) * w];
            for (x, out) in row.iter_mut().enumerate() {
                let sx = if flip { w - 1 - x } else { x } as isize + dx;
                *out = if (0..w as isize).contains(&sx) { src_row[sx as usize] } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_then_flip() {
        // One 3x3 plane holding 1..9, and a second plane holding their negatives.
        let src: Vec<f32> = (1..=9).chain((1..=9).map(|v: i32| -v)).map(|v| v as f32).collect();
        let mut dst = vec![f32::NAN; 18];
        shift_flip(&src, [2, 3, 3], 1, -1, false, &mut dst);
        #[rustfmt::skip]
        assert_eq!(dst[..9], [0.0, 4.0, 5.0,
                              0.0, 7.0, 8.0,
                              0.0, 0.0, 0.0]);
        assert_eq!(dst[9..12], [0.0, -4.0, -5.0], "every channel moves alike");
        shift_flip(&src, [2, 3, 3], 0, 0, true, &mut dst);
        #[rustfmt::skip]
        assert_eq!(dst[..9], [3.0, 2.0, 1.0,
                              6.0, 5.0, 4.0,
                              9.0, 8.0, 7.0]);
        // Flip after the crop: the crop's column 0 (zeros from the left pad) ends up on the right.
        shift_flip(&src, [2, 3, 3], 0, -1, true, &mut dst);
        assert_eq!(dst[..3], [2.0, 1.0, 0.0]);
    }
}
