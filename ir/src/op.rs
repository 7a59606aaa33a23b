//! The closed set of tensor operations, their attributes and their parameters.
//!
//! Every op works on f32 tensors with NCHW semantics. An op never changes the batch axis,
//! so the batch size is chosen when a network is instantiated, not when it is written.

use std::fmt;

use crate::{Shape, TrainOp};

/// An f32 attribute that can be compared and hashed (by its bits), so that `Op` can derive
/// `Eq` and `Hash` and serve as an e-graph node or a map key.
#[derive(Clone, Copy, Debug)]
pub struct Float(pub f32);

impl PartialEq for Float {
    fn eq(&self, other: &Float) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Float {}
impl std::hash::Hash for Float {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Float) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Float) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:e}", self.0)
    }
}

/// A 2-d convolution over NCHW input, weights `[out, in / groups, kh, kw]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Conv {
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding added on both sides of height and width.
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Channel groups; `groups == in_channels == out_channels` is a depthwise conv.
    pub groups: usize,
    /// Whether a per-output-channel bias is added.
    pub bias: bool,
}

impl Conv {
    /// The shape of its weights for an input of `in_channels` channels.
    pub fn weight_shape(&self, in_channels: usize) -> Vec<usize> {
        vec![self.out_channels, in_channels / self.groups, self.kernel[0], self.kernel[1]]
    }
}

/// A 2-d pooling window (PyTorch semantics, floor mode).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Pool {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding on both sides of height and width (max pooling ignores it; average pooling
    /// counts the padded zeros, as PyTorch's default `count_include_pad=True` does).
    pub padding: [usize; 2],
}

/// A tensor operation. The variant, the RON statement and the printed name are the same word
/// (`Op::MaxPool`, `MaxPool(..)`, `max_pool`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Op {
    /// A network input; its shape is fixed when the graph is built.
    Input,
    /// 2-d convolution.
    Conv(Conv),
    /// Inference-mode batch normalization over channels:
    /// `(x - running_mean) / sqrt(running_var + eps) * weight + bias`.
    BatchNorm {
        /// Added to the variance before the square root.
        eps: Float,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * relu6(x + 3) / 6`.
    Hardswish,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Element-wise sum of two tensors of one shape.
    Add,
    /// Element-wise product; the second operand may be `[n, c, 1, 1]` against an `[n, c, h, w]`
    /// first operand (squeeze-excite's channel scale).
    Mul,
    /// Concatenation along channels (axis 1).
    Concat,
    /// Split along channels into consecutive parts of the given sizes; one output per part.
    Split {
        /// Channels of each part, in order; they sum to the input's channels.
        sizes: Vec<usize>,
    },
    /// Selects and reorders channels: output channel `i` is input channel `channels[i]`.
    /// Optimized graphs use it for permutations and slices, which the memory plan realizes as
    /// zero-copy views.
    Gather {
        /// Input channel of each output channel (any order, repeats allowed).
        channels: Vec<usize>,
    },
    /// ShuffleNet's channel shuffle: view channels as `[groups, c / groups]`, transpose, flatten.
    ChannelShuffle {
        /// Number of groups; divides the channel count.
        groups: usize,
    },
    /// Max pooling.
    MaxPool(Pool),
    /// Average pooling.
    AvgPool(Pool),
    /// Mean over height and width; `[n, c, h, w]` becomes `[n, c, 1, 1]`.
    GlobalAvgPool,
    /// Fully connected layer over all non-batch axes (flattened): weights `[out, in]`.
    Linear {
        /// Output features.
        out_features: usize,
        /// Whether a bias is added.
        bias: bool,
    },
    /// Collapses all non-batch axes into one.
    Flatten,
    /// Softmax over axis 1 of a rank-2 tensor.
    Softmax,
    /// Reinterprets the non-batch axes with new dimensions (row-major, no data reordering).
    Reshape {
        /// The new non-batch dimensions.
        shape: Vec<usize>,
    },
    /// Permutes the non-batch axes: output axis `i + 1` is input axis `perm[i] + 1`.
    Transpose {
        /// A permutation of `0..rank - 1`.
        perm: Vec<usize>,
    },

    /// An op of training graphs, made by the autodiff pass and never written in network files.
    Train(TrainOp),
}

/// The element-wise activation functions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Activation {
    /// [`Op::Relu`].
    Relu,
    /// [`Op::Relu6`].
    Relu6,
    /// [`Op::Hardswish`].
    Hardswish,
    /// [`Op::Sigmoid`].
    Sigmoid,
}

impl Activation {
    /// The activation an op computes, if it is one.
    pub fn of(op: &Op) -> Option<Activation> {
        match op {
            Op::Relu => Some(Activation::Relu),
            Op::Relu6 => Some(Activation::Relu6),
            Op::Hardswish => Some(Activation::Hardswish),
            Op::Sigmoid => Some(Activation::Sigmoid),
            _ => None,
        }
    }

    /// The op that computes it.
    pub fn op(self) -> Op {
        match self {
            Activation::Relu => Op::Relu,
            Activation::Relu6 => Op::Relu6,
            Activation::Hardswish => Op::Hardswish,
            Activation::Sigmoid => Op::Sigmoid,
        }
    }
}

/// What a parameter tensor of an op is for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParamSpec {
    /// Suffix after the node's name, as in PyTorch's `state_dict` (`weight`, `running_mean`, ..).
    pub suffix: &'static str,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Whether training updates it (BN running statistics are not trainable).
    pub trainable: bool,
    /// Whether the tensor belongs to another node of the same name (a backward op reads its
    /// forward node's weights); every other parameter has exactly one owner.
    pub borrowed: bool,
}

impl ParamSpec {
    /// A parameter the node owns.
    pub(crate) fn owned(suffix: &'static str, shape: Vec<usize>, trainable: bool) -> ParamSpec {
        ParamSpec { suffix, shape, trainable, borrowed: false }
    }

    /// A trainable parameter of the forward node of the same name.
    pub(crate) fn borrowed(suffix: &'static str, shape: Vec<usize>) -> ParamSpec {
        ParamSpec { suffix, shape, trainable: true, borrowed: true }
    }
}

impl Op {
    /// The op's printed name, in snake case.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv(_) => "conv",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::Hardswish => "hardswish",
            Op::Sigmoid => "sigmoid",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Concat => "concat",
            Op::Split { .. } => "split",
            Op::Gather { .. } => "gather",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool(_) => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Flatten => "flatten",
            Op::Softmax => "softmax",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Train(t) => t.name(),
        }
    }

    /// How many inputs the op takes: `None` for any number of at least one (concat).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input => Some(0),
            Op::Add | Op::Mul => Some(2),
            Op::Train(t) => Some(t.arity()),
            Op::Concat => None,
            _ => Some(1),
        }
    }

    /// Whether the op applies one function to each element independently (the paper's G4
    /// "element-wise" operations, which cost memory traffic but no multiply-adds).
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::BatchNorm { .. } | Op::Relu | Op::Relu6 | Op::Hardswish | Op::Sigmoid | Op::Add | Op::Mul
        )
    }

    /// Whether the op only moves data (the paper's G2/G3 data movement).
    pub fn is_data_movement(&self) -> bool {
        matches!(
            self,
            Op::Concat
                | Op::Split { .. }
                | Op::Gather { .. }
                | Op::ChannelShuffle { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Flatten
        )
    }

    /// Whether the op is a separate compute kernel that the paper's G3 counts as a fragment.
    pub fn is_fragment(&self) -> bool {
        matches!(self, Op::Conv(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::GlobalAvgPool | Op::Linear { .. })
    }

    /// The parameter tensors the op needs, given the shape of its first input.
    pub fn params(&self, input: &Shape) -> Vec<ParamSpec> {
        let own = ParamSpec::owned;
        match self {
            Op::Conv(c) => {
                let mut specs = vec![own("weight", c.weight_shape(input.channels()), true)];
                if c.bias {
                    specs.push(own("bias", vec![c.out_channels], true));
                }
                specs
            }
            Op::BatchNorm { .. } => {
                let ch = input.channels();
                vec![
                    own("weight", vec![ch], true),
                    own("bias", vec![ch], true),
                    own("running_mean", vec![ch], false),
                    own("running_var", vec![ch], false),
                ]
            }
            Op::Linear { out_features, bias } => {
                let mut specs = vec![own("weight", vec![*out_features, input.item_numel()], true)];
                if *bias {
                    specs.push(own("bias", vec![*out_features], true));
                }
                specs
            }
            Op::Train(t) => t.params(input),
            _ => Vec::new(),
        }
    }

    /// The op's attributes as `key=value` pairs, in a fixed order, for printing.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let pair = |v: [usize; 2]| {
            if v[0] == v[1] { v[0].to_string() } else { format!("{}x{}", v[0], v[1]) }
        };
        let list = |v: &[usize]| {
            let items: Vec<String> = v.iter().map(usize::to_string).collect();
            format!("[{}]", items.join(", "))
        };
        match self {
            Op::Conv(c) => {
                let mut attrs = vec![
                    ("out", c.out_channels.to_string()),
                    ("kernel", pair(c.kernel)),
                    ("stride", pair(c.stride)),
                    ("padding", pair(c.padding)),
                ];
                if c.dilation != [1, 1] {
                    attrs.push(("dilation", pair(c.dilation)));
                }
                if c.groups != 1 {
                    attrs.push(("groups", c.groups.to_string()));
                }
                if c.bias {
                    attrs.push(("bias", "true".to_string()));
                }
                attrs
            }
            Op::BatchNorm { eps } => vec![("eps", eps.to_string())],
            Op::Split { sizes } => vec![("sizes", list(sizes))],
            Op::Gather { channels } => vec![("channels", ranges(channels))],
            Op::ChannelShuffle { groups } => vec![("groups", groups.to_string())],
            Op::MaxPool(p) | Op::AvgPool(p) => {
                vec![("kernel", pair(p.kernel)), ("stride", pair(p.stride)), ("padding", pair(p.padding))]
            }
            Op::Linear { out_features, bias } => {
                let mut attrs = vec![("out", out_features.to_string())];
                if !bias {
                    attrs.push(("bias", "false".to_string()));
                }
                attrs
            }
            Op::Reshape { shape } => vec![("shape", list(shape))],
            Op::Transpose { perm } => vec![("perm", list(perm))],
            Op::Train(t) => t.attributes(),
            _ => Vec::new(),
        }
    }
}

/// A channel list in short form: runs of constant step print as `start..end` (step 1) or
/// `start..end:step`, and interleaved runs (a shuffle's channels) as `zip(0..58, 116..174)`,
/// so that optimized graphs stay readable.
pub fn ranges(channels: &[usize]) -> String {
    let range = |start: usize, step: usize, count: usize| {
        let end = start + step * (count - 1) + 1;
        if step == 1 { format!("{start}..{end}") } else { format!("{start}..{end}:{step}") }
    };
    let mut parts = Vec::new();
    let mut i = 0;
    'outer: while i < channels.len() {
        // Interleaved runs: `width` progressions of one step, taken in turn.
        for width in 1..=8 {
            let Some(step) = channels.get(i + width).and_then(|&n| n.checked_sub(channels[i])) else { break };
            if step == 0 {
                continue;
            }
            let mut count = 1;
            while (0..width).all(|j| {
                let k = i + count * width + j;
                k < channels.len() && channels[k] == channels[i + j] + count * step
            }) {
                count += 1;
            }
            if count >= 3 {
                let runs: Vec<String> = (0..width).map(|j| range(channels[i + j], step, count)).collect();
                parts.push(if width == 1 { runs[0].clone() } else { format!("zip({})", runs.join(", ")) });
                i += count * width;
                continue 'outer;
            }
        }
        parts.push(channels[i].to_string());
        i += 1;
    }
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        for (key, value) in self.attributes() {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn channel_lists_print_as_runs() {
        assert_eq!(ranges(&[0, 1, 2, 3]), "[0..4]");
        assert_eq!(ranges(&[0, 2, 4, 6, 1, 3, 5, 7]), "[0..7:2, 1..8:2]");
        assert_eq!(ranges(&[5, 0, 0, 9]), "[5, 0, 0, 9]");
        assert_eq!(ranges(&[3, 4]), "[3, 4]");
        let shuffle: Vec<usize> = (0..4).flat_map(|k| [k, 4 + k]).collect();
        assert_eq!(ranges(&shuffle), "[zip(0..4, 4..8)]");
    }
}
