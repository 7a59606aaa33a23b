//! A dense f32 tensor in row-major order: the currency of weights, inputs and `eval`.

/// Dimensions plus row-major f32 data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// A tensor from data; panics when the lengths disagree (a bug in the caller).
    pub fn new(shape: &[usize], data: Vec<f32>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "data does not fill shape {shape:?}");
        Tensor { shape: shape.to_vec(), data }
    }

    /// A tensor of `value` everywhere.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor { shape: shape.to_vec(), data: vec![value; shape.iter().product()] }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The largest `|a - b|` over all elements divided by the largest `|b|`: the relative
    /// error of `self` against the reference `b`, as the parity tests state it.
    pub fn relative_error(&self, reference: &Tensor) -> f32 {
        assert_eq!(self.shape, reference.shape, "comparing tensors of different shapes");
        // NaN wins the fold (`f32::max` would drop it), so that NaN outputs never pass.
        let max_diff = self
            .data
            .iter()
            .zip(&reference.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, |m: f32, d| if d > m || d.is_nan() { d } else { m });
        let max_ref = reference.data.iter().map(|b| b.abs()).fold(0.0, f32::max);
        if max_diff == 0.0 { 0.0 } else { max_diff / max_ref.max(f32::MIN_POSITIVE) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_scales_by_the_reference() {
        let a = Tensor::new(&[3], vec![1.0, 2.0, 4.1]);
        let b = Tensor::new(&[3], vec![1.0, 2.0, 4.0]);
        assert!((a.relative_error(&b) - 0.1 / 4.0).abs() < 1e-6);
        assert_eq!(b.relative_error(&b), 0.0);
        let nan = Tensor::new(&[3], vec![f32::NAN, 2.0, 4.0]);
        assert!(nan.relative_error(&b).is_nan(), "a NaN output is no small error");
        let late = Tensor::new(&[3], vec![1.5, 2.0, f32::NAN]);
        assert!(late.relative_error(&b).is_nan(), "nor after a larger difference");
    }
}
