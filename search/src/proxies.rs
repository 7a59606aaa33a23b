//! Zero-cost proxies: signals of how well a network will learn, taken before any training from
//! one probe of its compiled training step (the loss's gradients at the initial weights).

use codegen::Probe;
use ir::Weights;
use nalgebra::{DMatrix, SymmetricEigen};

/// The proxies of one network, each larger for networks expected to learn better.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proxies {
    /// SNIP (Lee et al., 2019), summed over the network as in Abdelfattah et al. (2021): the
    /// sum of |weight x gradient| over every trainable parameter.
    pub snip: f64,
    /// The 2-norm of the gradient of all parameters.
    pub grad_norm: f64,
    /// jacob_cov (Mellor et al., 2021): how uncorrelated the input gradients of different
    /// images are. Here they are the gradients of the loss (Mellor et al. use the sum of the
    /// outputs); correlations do not depend on their scale. `None` when an image's gradient
    /// is constant, so that its correlations are undefined.
    pub jacob_cov: Option<f64>,
}

/// The proxies of a probe at `weights` of a batch of `batch` images.
pub fn proxies(weights: &Weights, probe: &Probe, batch: usize) -> Proxies {
    let (mut snip, mut squares) = (0.0f64, 0.0f64);
    for (name, gradient) in probe.gradients.iter() {
        let weight = weights.get(name).expect("gradients are named after parameters");
        for (w, g) in weight.data.iter().zip(&gradient.data) {
            snip += f64::from((w * g).abs());
            squares += f64::from(g * g);
        }
    }
    let jacob_cov = probe.input_gradient.as_deref().and_then(|rows| jacob_cov(rows, batch));
    Proxies { snip, grad_norm: squares.sqrt(), jacob_cov }
}

/// `-sum(ln(v + k) + 1 / (v + k))` over the eigenvalues `v` of the correlation matrix of the
/// `batch` rows of `gradients`, with `k = 1e-5` (Mellor et al.'s score).
fn jacob_cov(gradients: &[f32], batch: usize) -> Option<f64> {
    const K: f64 = 1e-5;
    let width = gradients.len() / batch;
    let mut rows = DMatrix::<f64>::zeros(batch, width);
    for (i, row) in gradients.chunks(width).enumerate() {
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / width as f64;
        let norm = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        for (j, &v) in row.iter().enumerate() {
            rows[(i, j)] = (f64::from(v) - mean) / norm;
        }
    }
    let correlation = &rows * rows.transpose();
    let eigen = SymmetricEigen::new(correlation);
    // Rounding can make the smallest eigenvalues of a singular matrix slightly negative.
    Some(-eigen.eigenvalues.iter().map(|&v| v.max(0.0) + K).map(|v| v.ln() + 1.0 / v).sum::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncorrelated_gradients_score_higher_than_correlated_ones() {
        // Orthogonal rows: the correlation matrix is close to the identity.
        let orthogonal = [1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0];
        // Equal rows: one eigenvalue 2, one 0, and 1 / (0 + k) dominates.
        let equal = [1.0, -1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0];
        let (a, b) = (jacob_cov(&orthogonal, 2).unwrap(), jacob_cov(&equal, 2).unwrap());
        // The identity's two eigenvalues of 1 are not quite that here (the rows are centred).
        assert!(a > -10.0, "{a}");
        assert!(b < -1e4, "{b}");
    }

    #[test]
    fn a_constant_row_has_no_score() {
        assert_eq!(jacob_cov(&[1.0, 1.0, 1.0, 0.0, 1.0, 2.0], 2), None);
    }

    #[test]
    fn snip_and_norm_sum_over_parameters() {
        let mut weights = Weights::default();
        weights.insert("a.weight", ir::Tensor::new(&[2], vec![2.0, -1.0]));
        weights.insert("b.bias", ir::Tensor::new(&[1], vec![3.0]));
        let mut gradients = Weights::default();
        gradients.insert("a.weight", ir::Tensor::new(&[2], vec![0.5, 4.0]));
        gradients.insert("b.bias", ir::Tensor::new(&[1], vec![-1.0]));
        let probe =
            Probe { step: codegen::StepResult { loss: 1.0, correct: 0 }, gradients, input_gradient: None };
        let p = proxies(&weights, &probe, 1);
        assert_eq!(p.snip, 1.0 + 4.0 + 3.0);
        assert!((p.grad_norm - (0.25f64 + 16.0 + 1.0).sqrt()).abs() < 1e-12);
        assert_eq!(p.jacob_cov, None);
    }
}
