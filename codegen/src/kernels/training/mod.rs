//! Kernels of the training ops (see `ir::TrainOp`): plain loop nests along contiguous planes,
//! with reductions marked reassociable, which LLVM's loop vectorizer turns into vector code;
//! the heavier ones split over channels on the thread pool.
//!
//! Activations are read and written through channel planes, as views may place them;
//! per-channel and parameter-shaped values, which no view makes, are addressed flat
//! ([`Lowering::flat`]).

mod conv;
mod dense;
mod dot;
mod norm;

use ir::{NodeId, TrainOp, Value};
use passes::plan::Placement;

use crate::emit::Function;
use crate::kernels::gemm::pointwise;
use crate::lower::Lowering;

impl Lowering<'_> {
    /// Emits training op `op` of node `id` into step body `f`.
    pub fn training(&mut self, f: &mut Function, id: NodeId, op: &TrainOp) {
        match op {
            TrainOp::BatchNormTrain { eps, momentum } => self.batch_norm_train(f, id, eps.0, momentum.0),
            TrainOp::BatchNormGrad => self.batch_norm_grad(f, id),
            TrainOp::ConvGradInput { conv, .. } if pointwise(conv) => {
                self.pointwise_grad_input(f, id, conv.groups)
            }
            TrainOp::ConvGradInput { conv, .. } => self.conv_grad_input(f, id, conv),
            TrainOp::ConvGradWeight(conv) if pointwise(conv) => {
                self.pointwise_grad_weight(f, id, conv.groups)
            }
            TrainOp::ConvGradWeight(conv) => self.conv_grad_weight(f, id, conv),
            TrainOp::AvgPoolGrad { pool, .. } => self.avg_pool_grad(f, id, pool),
            TrainOp::MaxPoolGrad(pool) => self.max_pool_grad(f, id, pool),
            TrainOp::GlobalAvgPoolGrad { .. } => self.global_avg_pool_grad(f, id),
            TrainOp::SoftmaxCrossEntropy { label_smoothing } => {
                self.cross_entropy(f, id, label_smoothing.0, false)
            }
            TrainOp::SoftmaxCrossEntropyGrad { label_smoothing } => {
                self.cross_entropy(f, id, label_smoothing.0, true)
            }
            TrainOp::ChannelSum => self.channel_sum(f, id),
            TrainOp::ActivationGrad(a) => self.activation_grad(f, id, *a),
            TrainOp::LinearGradInput { .. } => self.linear_grad_input(f, id),
            TrainOp::LinearGradWeight => self.linear_grad_weight(f, id),
            TrainOp::SpatialDot => self.spatial_dot(f, id),
            TrainOp::SoftmaxGrad => self.softmax_grad(f, id),
            TrainOp::SgdUpdate(sgd) => self.sgd_update(f, id, sgd),
        }
    }

    /// The address of the first element of `v`, a whole buffer.
    pub fn flat(&mut self, f: &mut Function, v: Value) -> String {
        assert!(
            matches!(self.plan.placements[&v], Placement::Whole(_)),
            "flat values are whole buffers: views only place activations"
        );
        self.plane(f, v, "0", "0")
    }

    /// The blob offset of parameter `suffix` of node `id`, pushed in its own layout.
    pub fn param_at(&mut self, id: NodeId, suffix: &str) -> usize {
        let data = self.param(self.graph.node(id), suffix);
        self.push(&data)
    }
}

/// The outputs `lo..hi` of a window axis whose tap at offset `tap` (kernel position times
/// dilation, minus padding) reads inside an input of `size`: `0 <= o * stride + tap < size`.
pub(crate) fn valid_outputs(tap: isize, stride: usize, size: usize, outputs: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if tap < 0 { (-tap + s - 1) / s } else { 0 };
    let last = size as isize - 1 - tap;
    let hi = if last < 0 { 0 } else { (last / s + 1).min(outputs as isize) };
    (lo as usize, hi.max(lo) as usize)
}

#[cfg(test)]
mod tests {
    use super::valid_outputs;

    #[test]
    fn valid_outputs_keep_taps_inside_the_input() {
        // 3x3, padding 1, stride 1 over 5 pixels: tap -1 skips output 0, tap +1 skips output 4.
        assert_eq!(valid_outputs(-1, 1, 5, 5), (1, 5));
        assert_eq!(valid_outputs(1, 1, 5, 5), (0, 4));
        // Stride 2, padding 1, 7 pixels, 4 outputs: tap -1 reads 1, 3, 5 from outputs 1..4.
        assert_eq!(valid_outputs(-1, 2, 7, 4), (1, 4));
        assert_eq!(valid_outputs(1, 2, 7, 4), (0, 3));
        // A tap past the input reads nothing.
        assert_eq!(valid_outputs(9, 1, 5, 5), (0, 0));
    }
}
