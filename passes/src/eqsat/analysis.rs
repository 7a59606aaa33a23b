//! The e-class analysis: the static shape of every class (a tensor, a split's tuple, a weight),
//! or the attribute a leaf carries. Rules read it to check conditions and build attributes.

use std::collections::HashMap;

use egg::{Analysis, DidMerge, EGraph, Id};

use super::lang::{Attr, Tensor, graph_op};

/// What is known of an e-class.
#[derive(Clone, Debug, PartialEq)]
pub enum Info {
    /// A tensor of this shape.
    Tensor(ir::Shape),
    /// A split's parts.
    Tuple(Vec<ir::Shape>),
    /// A compile-time weight tensor of this shape.
    Weight(Vec<usize>),
    /// An attribute leaf.
    Attr(Attr),
    /// The root.
    Outputs,
}

impl Info {
    /// The tensor shape; panics on anything else (a rule matched the wrong kind of class).
    pub fn shape(&self) -> &ir::Shape {
        match self {
            Info::Tensor(s) => s,
            other => panic!("expected a tensor, found {other:?}"),
        }
    }

    /// The attribute; panics on anything else.
    pub fn attr(&self) -> &Attr {
        match self {
            Info::Attr(a) => a,
            other => panic!("expected an attribute, found {other:?}"),
        }
    }
}

/// Shape inference over the e-graph; knows the shapes of inputs and parameters.
#[derive(Default)]
pub struct Shapes {
    /// Input shapes by name.
    pub inputs: HashMap<String, ir::Shape>,
    /// Parameter shapes by name.
    pub params: HashMap<String, Vec<usize>>,
}

/// The e-graph archc saturates.
pub type Graph = EGraph<Tensor, Shapes>;

impl Analysis<Tensor> for Shapes {
    type Data = Info;

    fn make(egraph: &mut Graph, node: &Tensor, _id: Id) -> Info {
        let data = |id: Id| &egraph[id].data;
        let name = |id: Id| match data(id).attr() {
            Attr::Name(n) => n.clone(),
            other => panic!("expected a name, found `{other}`"),
        };
        let weight = |id: Id| match data(id) {
            Info::Weight(s) => s.clone(),
            other => panic!("expected a weight, found {other:?}"),
        };
        match node {
            Tensor::Attr(a) => Info::Attr(a.clone()),
            Tensor::Outputs(_) => Info::Outputs,
            Tensor::Input(n) => Info::Tensor(egraph.analysis.inputs[&name(*n)].clone()),
            Tensor::Param(n) => Info::Weight(egraph.analysis.params[&name(*n)].clone()),
            Tensor::Zeros(n) => match data(*n).attr() {
                Attr::Index(len) => Info::Weight(vec![*len]),
                other => panic!("zeros expects a length, found `{other}`"),
            },
            Tensor::Rows([c, w]) => {
                let mut shape = weight(*w);
                if let Attr::Channels(channels) = data(*c).attr() {
                    shape[0] = channels.len();
                }
                Info::Weight(shape)
            }
            Tensor::Cols([_, w]) | Tensor::FoldWeight([_, _, _, w]) | Tensor::FoldBias([.., w]) => {
                Info::Weight(weight(*w))
            }
            Tensor::Get([i, t]) => match (data(*i).attr(), data(*t)) {
                (Attr::Index(i), Info::Tuple(parts)) => Info::Tensor(parts[*i].clone()),
                other => panic!("get expects an index and a tuple, found {other:?}"),
            },
            _ => {
                let (op, operands) =
                    graph_op(node, |id| data(id).attr()).expect("every other e-node is a graph op");
                let shapes: Vec<&ir::Shape> = operands.iter().map(|&id| data(id).shape()).collect();
                let mut outputs = ir::infer(&op, &shapes)
                    .unwrap_or_else(|e| panic!("a rewrite built an ill-shaped {}: {e}", op.name()));
                if matches!(op, ir::Op::Split { .. }) {
                    Info::Tuple(outputs)
                } else {
                    Info::Tensor(outputs.remove(0))
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Info, b: Info) -> DidMerge {
        // Equal classes compute the same value, so their shapes agree; anything else is a
        // wrong rewrite.
        debug_assert_eq!(*a, b, "merged classes disagree on their shape");
        DidMerge(false, false)
    }
}
