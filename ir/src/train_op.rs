//! The ops of training graphs: training-mode batch norm, the loss, the gradient of every
//! forward op and the optimizer step. The autodiff pass makes them; network files never
//! name them.
//!
//! Values that belong to a parameter (its gradient, per-channel statistics) have the
//! parameter's shape and no batch axis. A backward op carries the name of its forward node
//! and *borrows* that node's parameters (see [`ParamSpec::borrowed`]), so it reads the same
//! tensors the forward op reads.

use crate::{Activation, Conv, Float, Op, ParamSpec, Pool, Shape};

/// A training op, inside [`Op::Train`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum TrainOp {
    /// Training-mode batch normalization: normalizes with the batch's own statistics over
    /// `n, h, w`. Outputs: `y`, the batch mean `[c]`, the batch's `1 / sqrt(var + eps)` `[c]`,
    /// and the updated running mean and running variance `[c]` (PyTorch's rule:
    /// `(1 - momentum) * running + momentum * batch`, with the unbiased batch variance).
    BatchNormTrain {
        /// Added to the variance before the square root.
        eps: Float,
        /// Weight of the batch statistics in the running statistics.
        momentum: Float,
    },
    /// Gradients of [`TrainOp::BatchNormTrain`]'s `y`: operands `(x, dy, mean, inv_std)`, borrows
    /// `weight`; outputs `dx`, `d weight [c]`, `d bias [c]`.
    BatchNormGrad,
    /// Softmax cross-entropy of logits `[n, k]` against class labels `[n, 1]` (class indices
    /// stored as f32), with the targets smoothed towards uniform: one loss per item, `[n, 1]`.
    SoftmaxCrossEntropy {
        /// Probability mass spread evenly over all classes (PyTorch's `label_smoothing`).
        label_smoothing: Float,
    },
    /// The gradient of the batch's mean [`TrainOp::SoftmaxCrossEntropy`] with respect to the logits:
    /// `(softmax - target) / n`, operands `(logits, labels)`.
    SoftmaxCrossEntropyGrad {
        /// As in the loss.
        label_smoothing: Float,
    },
    /// A convolution's gradient with respect to its input: operand `dy`, borrows `weight`.
    ConvGradInput {
        /// The forward convolution.
        conv: Conv,
        /// The forward input's channels, height and width (strides make them ambiguous).
        input: [usize; 3],
    },
    /// A convolution's gradient with respect to its weights: operands `(x, dy)`, output shaped
    /// like the weights.
    ConvGradWeight(Conv),
    /// Sums over every axis but channels (axis 1): `[n, c, ..]` becomes `[c]`. A bias gradient.
    ChannelSum,
    /// An activation's gradient: operands `(x, dy)` where `x` is the forward input.
    ActivationGrad(Activation),
    /// Max pooling's gradient: operands `(x, dy)`; each window's gradient goes to its first
    /// maximum, as in PyTorch.
    MaxPoolGrad(Pool),
    /// Average pooling's gradient: operand `dy`.
    AvgPoolGrad {
        /// The forward window.
        pool: Pool,
        /// The forward input's height and width.
        input: [usize; 2],
    },
    /// Global average pooling's gradient: operand `dy` `[n, c, 1, 1]`, spread evenly.
    GlobalAvgPoolGrad {
        /// The forward input's height and width.
        input: [usize; 2],
    },
    /// A linear layer's gradient with respect to its (flattened) input: operand `dy`, borrows
    /// `weight`; output `[n, in_features]`.
    LinearGradInput {
        /// The forward layer's input features.
        in_features: usize,
    },
    /// A linear layer's gradient with respect to its weights: operands `(x, dy)`, output
    /// `[out, in]`.
    LinearGradWeight,
    /// Sum over height and width of `a * b`, both `[n, c, h, w]`: `[n, c, 1, 1]`. The gradient
    /// of a channel scale (squeeze-excite's `mul`).
    SpatialDot,
    /// Softmax's gradient: operands `(y, dy)` where `y` is the forward output.
    SoftmaxGrad,
    /// One step of SGD on one parameter: operands `(gradient, lr [1, 1])`, borrows the
    /// parameter, owns its momentum buffer; outputs the new parameter and the new buffer.
    SgdUpdate(Sgd),
}

impl From<TrainOp> for Op {
    fn from(op: TrainOp) -> Op {
        Op::Train(op)
    }
}

impl TrainOp {
    /// The op's printed name, in snake case.
    pub fn name(&self) -> &'static str {
        match self {
            TrainOp::BatchNormTrain { .. } => "batch_norm_train",
            TrainOp::BatchNormGrad => "batch_norm_grad",
            TrainOp::SoftmaxCrossEntropy { .. } => "softmax_cross_entropy",
            TrainOp::SoftmaxCrossEntropyGrad { .. } => "softmax_cross_entropy_grad",
            TrainOp::ConvGradInput { .. } => "conv_grad_input",
            TrainOp::ConvGradWeight(_) => "conv_grad_weight",
            TrainOp::ChannelSum => "channel_sum",
            TrainOp::ActivationGrad(_) => "activation_grad",
            TrainOp::MaxPoolGrad(_) => "max_pool_grad",
            TrainOp::AvgPoolGrad { .. } => "avg_pool_grad",
            TrainOp::GlobalAvgPoolGrad { .. } => "global_avg_pool_grad",
            TrainOp::LinearGradInput { .. } => "linear_grad_input",
            TrainOp::LinearGradWeight => "linear_grad_weight",
            TrainOp::SpatialDot => "spatial_dot",
            TrainOp::SoftmaxGrad => "softmax_grad",
            TrainOp::SgdUpdate(_) => "sgd_update",
        }
    }

    /// How many operands the op takes.
    pub fn arity(&self) -> usize {
        match self {
            TrainOp::BatchNormGrad => 4,
            TrainOp::SoftmaxCrossEntropy { .. }
            | TrainOp::SoftmaxCrossEntropyGrad { .. }
            | TrainOp::ConvGradWeight(_)
            | TrainOp::ActivationGrad(_)
            | TrainOp::MaxPoolGrad(_)
            | TrainOp::LinearGradWeight
            | TrainOp::SpatialDot
            | TrainOp::SoftmaxGrad
            | TrainOp::SgdUpdate(_) => 2,
            TrainOp::BatchNormTrain { .. }
            | TrainOp::ConvGradInput { .. }
            | TrainOp::ChannelSum
            | TrainOp::AvgPoolGrad { .. }
            | TrainOp::GlobalAvgPoolGrad { .. }
            | TrainOp::LinearGradInput { .. } => 1,
        }
    }

    /// The parameter tensors the op reads or owns, given the shape of its first operand.
    pub fn params(&self, input: &Shape) -> Vec<ParamSpec> {
        match self {
            TrainOp::BatchNormTrain { .. } => Op::BatchNorm { eps: Float(1.0) }.params(input),
            TrainOp::BatchNormGrad => vec![ParamSpec::borrowed("weight", vec![input.channels()])],
            TrainOp::ConvGradInput { conv, input: [c, _, _] } => {
                vec![ParamSpec::borrowed("weight", conv.weight_shape(*c))]
            }
            TrainOp::LinearGradInput { in_features } => {
                vec![ParamSpec::borrowed("weight", vec![input.channels(), *in_features])]
            }
            TrainOp::SgdUpdate(sgd) => vec![
                ParamSpec::borrowed(sgd.param.suffix(), input.dims().to_vec()),
                ParamSpec::owned(sgd.param.momentum_suffix(), input.dims().to_vec(), false),
            ],
            _ => Vec::new(),
        }
    }

    /// The op's attributes as `key=value` pairs, in a fixed order, for printing.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let list = |v: &[usize]| format!("{v:?}");
        match self {
            TrainOp::BatchNormTrain { eps, momentum } => {
                vec![("eps", eps.to_string()), ("momentum", momentum.to_string())]
            }
            TrainOp::SoftmaxCrossEntropy { label_smoothing }
            | TrainOp::SoftmaxCrossEntropyGrad { label_smoothing } => {
                vec![("label_smoothing", label_smoothing.to_string())]
            }
            TrainOp::ConvGradInput { conv, input } => {
                let mut attrs = Op::Conv(conv.clone()).attributes();
                attrs.push(("input", list(input)));
                attrs
            }
            TrainOp::ConvGradWeight(conv) => Op::Conv(conv.clone()).attributes(),
            TrainOp::ActivationGrad(a) => vec![("of", a.op().name().to_string())],
            TrainOp::MaxPoolGrad(p) => Op::MaxPool(p.clone()).attributes(),
            TrainOp::AvgPoolGrad { pool, input } => {
                let mut attrs = Op::AvgPool(pool.clone()).attributes();
                attrs.push(("input", list(input)));
                attrs
            }
            TrainOp::GlobalAvgPoolGrad { input } => vec![("input", list(input))],
            TrainOp::LinearGradInput { in_features } => vec![("in", in_features.to_string())],
            TrainOp::SgdUpdate(sgd) => vec![
                ("param", sgd.param.suffix().to_string()),
                ("momentum", sgd.momentum.to_string()),
                ("nesterov", sgd.nesterov.to_string()),
                ("weight_decay", sgd.weight_decay.to_string()),
            ],
            _ => Vec::new(),
        }
    }
}

/// Which trainable parameter of a node an [`TrainOp::SgdUpdate`] steps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ParamKind {
    /// `{node}.weight`.
    Weight,
    /// `{node}.bias`.
    Bias,
}

impl ParamKind {
    /// The parameter's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            ParamKind::Weight => "weight",
            ParamKind::Bias => "bias",
        }
    }

    /// The suffix of its momentum buffer (PyTorch's optimizer state calls it so).
    pub fn momentum_suffix(self) -> &'static str {
        match self {
            ParamKind::Weight => "weight_momentum_buffer",
            ParamKind::Bias => "bias_momentum_buffer",
        }
    }
}

/// SGD with momentum, as PyTorch's `torch.optim.SGD` (dampening 0):
/// `g = grad + weight_decay * p; buf = momentum * buf + g; p -= lr * (nesterov ? g + momentum * buf : buf)`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Sgd {
    /// The parameter stepped.
    pub param: ParamKind,
    /// Momentum factor.
    pub momentum: Float,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty folded into the gradient.
    pub weight_decay: Float,
}
