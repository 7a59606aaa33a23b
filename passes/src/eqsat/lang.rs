//! The e-graph language: the IR's ops with their attributes as leaf children, a split as a
//! tuple read through `get` projections (as Tensat does), and compile-time weight expressions
//! so that rewrites which change weights (BN folding, permutations absorbed into a conv) stay
//! symbolic until extraction.

use std::fmt;
use std::str::FromStr;

use egg::{Id, define_language};

/// A leaf carrying data: the attributes of an op, a channel list, an index or a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// A graph op's attributes (the op itself; its operands are the e-node's other children).
    Op(ir::Op),
    /// A channel list: `gather`'s selection, or the permutation applied to weights.
    Channels(Vec<usize>),
    /// A split output's index, or the length of a zero vector.
    Index(usize),
    /// The name of an input or of a parameter tensor.
    Name(String),
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Op(op) => write!(f, "{op}"),
            Attr::Channels(c) => f.write_str(&ir::ranges(c)),
            Attr::Index(i) => write!(f, "{i}"),
            Attr::Name(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Attr {
    type Err = String;

    /// Attributes are never parsed: rules bind them with pattern variables, and appliers that
    /// need new attributes build them in Rust.
    fn from_str(s: &str) -> Result<Attr, String> {
        Err(format!("attributes are not parsed from text (`{s}`)"))
    }
}

define_language! {
    /// Tensor programs over NCHW f32 tensors, plus compile-time weight expressions. The
    /// variants are documented by the comments below (the macro takes no doc attributes).
    #[allow(missing_docs)]
    pub enum Tensor {
        // A network input: `(input name)`.
        "input" = Input(Id),
        // `(conv op x weight bias)`; bias is `(zeros n)` when the conv has none.
        "conv" = Conv([Id; 4]),
        // `(batch_norm op x weight bias mean var)`.
        "batch_norm" = BatchNorm([Id; 6]),
        // `(relu x)`.
        "relu" = Relu(Id),
        // `(relu6 x)`.
        "relu6" = Relu6(Id),
        // `(hardswish x)`.
        "hardswish" = Hardswish(Id),
        // `(sigmoid x)`.
        "sigmoid" = Sigmoid(Id),
        // `(add a b)`.
        "add" = Add([Id; 2]),
        // `(mul a b)`.
        "mul" = Mul([Id; 2]),
        // `(concat a b)`: binary; n-ary concats nest to the left.
        "concat" = Concat([Id; 2]),
        // `(split op x)`: a tuple of parts.
        "split" = Split([Id; 2]),
        // `(get index tuple)`: one part of a split.
        "get" = Get([Id; 2]),
        // `(gather channels x)`: output channel i is channel `channels[i]` of x.
        "gather" = Gather([Id; 2]),
        // `(channel_shuffle op x)`.
        "channel_shuffle" = ChannelShuffle([Id; 2]),
        // `(max_pool op x)`.
        "max_pool" = MaxPool([Id; 2]),
        // `(avg_pool op x)`.
        "avg_pool" = AvgPool([Id; 2]),
        // `(global_avg_pool x)`.
        "global_avg_pool" = GlobalAvgPool(Id),
        // `(linear op x weight bias)`.
        "linear" = Linear([Id; 4]),
        // `(flatten x)`.
        "flatten" = Flatten(Id),
        // `(softmax x)`.
        "softmax" = Softmax(Id),
        // `(reshape op x)`.
        "reshape" = Reshape([Id; 2]),
        // `(transpose op x)`.
        "transpose" = Transpose([Id; 2]),
        // The root: the graph outputs in order.
        "outputs" = Outputs(Box<[Id]>),
        // A weight tensor of the input graph: `(param name)`.
        "param" = Param(Id),
        // A zero vector: `(zeros n)`.
        "zeros" = Zeros(Id),
        // `(rows channels w)`: `w'[i, ..] = w[channels[i], ..]`.
        "rows" = Rows([Id; 2]),
        // `(cols channels w)`: `w'[o, i, ..] = w[o, channels[i], ..]`, input channels in blocks.
        "cols" = Cols([Id; 2]),
        // `(fold_weight op gamma var w)`: `w * gamma / sqrt(var + eps)` per output row.
        "fold_weight" = FoldWeight([Id; 4]),
        // `(fold_bias op gamma beta mean var b)`: `(b - mean) * gamma / sqrt(var + eps) + beta`.
        "fold_bias" = FoldBias([Id; 6]),
        // An attribute leaf.
        Attr(Attr),
    }
}

impl Tensor {
    /// Whether the node is part of a compile-time weight expression.
    pub fn is_weight_expr(&self) -> bool {
        matches!(
            self,
            Tensor::Param(_)
                | Tensor::Zeros(_)
                | Tensor::Rows(_)
                | Tensor::Cols(_)
                | Tensor::FoldWeight(_)
                | Tensor::FoldBias(_)
        )
    }
}

/// The IR op an e-node computes and the e-classes of its tensor operands, or `None` for
/// e-nodes that are not graph ops (attributes, weight expressions, `get`, `outputs`, inputs).
/// `attr(id)` returns the attribute leaf of a child class.
pub fn graph_op<'a>(node: &Tensor, attr: impl Fn(Id) -> &'a Attr) -> Option<(ir::Op, Vec<Id>)> {
    let with_attr = |a: Id| match attr(a) {
        Attr::Op(op) => op.clone(),
        other => panic!("expected op attributes, found `{other}`"),
    };
    let op = match node {
        Tensor::Conv([a, x, ..]) | Tensor::Linear([a, x, ..]) | Tensor::BatchNorm([a, x, ..]) => {
            return Some((with_attr(*a), vec![*x]));
        }
        Tensor::Split([a, x])
        | Tensor::ChannelShuffle([a, x])
        | Tensor::MaxPool([a, x])
        | Tensor::AvgPool([a, x])
        | Tensor::Reshape([a, x])
        | Tensor::Transpose([a, x]) => return Some((with_attr(*a), vec![*x])),
        Tensor::Gather([c, x]) => match attr(*c) {
            Attr::Channels(channels) => {
                return Some((ir::Op::Gather { channels: channels.clone() }, vec![*x]));
            }
            other => panic!("gather expects channels, found `{other}`"),
        },
        Tensor::Relu(x) => (ir::Op::Relu, x),
        Tensor::Relu6(x) => (ir::Op::Relu6, x),
        Tensor::Hardswish(x) => (ir::Op::Hardswish, x),
        Tensor::Sigmoid(x) => (ir::Op::Sigmoid, x),
        Tensor::GlobalAvgPool(x) => (ir::Op::GlobalAvgPool, x),
        Tensor::Flatten(x) => (ir::Op::Flatten, x),
        Tensor::Softmax(x) => (ir::Op::Softmax, x),
        Tensor::Add([a, b]) => return Some((ir::Op::Add, vec![*a, *b])),
        Tensor::Mul([a, b]) => return Some((ir::Op::Mul, vec![*a, *b])),
        Tensor::Concat([a, b]) => return Some((ir::Op::Concat, vec![*a, *b])),
        _ => return None,
    };
    Some((op.0, vec![*op.1]))
}
