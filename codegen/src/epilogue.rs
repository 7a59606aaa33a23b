//! Element-wise functions computed inside the kernel that produces their input: activations
//! and residual adds (the nodes `passes::mark_epilogues` marks), on scalars or vectors.

use ir::{Activation, Graph, NodeId, Value};

use crate::emit::{Function, Ty};

/// One fused step after a conv or linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// An activation function.
    Activation(Activation),
    /// `+ residual`, the add's second operand, read at the same position.
    AddResidual,
}

/// Emits `activation(x)` for values of type `ty`.
pub fn emit_activation(activation: Activation, f: &mut Function, ty: Ty, x: &str) -> String {
    let (t, s) = (ty.name(), ty.suffix());
    let zero = ty.constant(0.0);
    let six = ty.constant(6.0);
    match activation {
        Activation::Relu => f.let_("r", format!("call {t} @llvm.maxnum.{s}({t} {x}, {t} {zero})")),
        Activation::Relu6 => {
            let r = f.let_("r", format!("call {t} @llvm.maxnum.{s}({t} {x}, {t} {zero})"));
            f.let_("r", format!("call {t} @llvm.minnum.{s}({t} {r}, {t} {six})"))
        }
        Activation::Hardswish => {
            let p = f.let_("h", format!("fadd {t} {x}, {}", ty.constant(3.0)));
            let r = f.let_("h", format!("call {t} @llvm.maxnum.{s}({t} {p}, {t} {zero})"));
            let c = f.let_("h", format!("call {t} @llvm.minnum.{s}({t} {r}, {t} {six})"));
            let m = f.let_("h", format!("fmul {t} {x}, {c}"));
            f.let_("h", format!("fdiv {t} {m}, {six}"))
        }
        Activation::Sigmoid => {
            let neg = f.let_("s", format!("fneg {t} {x}"));
            let e = f.exp(ty, &neg);
            let d = f.let_("s", format!("fadd {t} {e}, {}", ty.constant(1.0)));
            f.let_("s", format!("fdiv {t} {}, {d}", ty.constant(1.0)))
        }
    }
}

/// The epilogues fused into the kernel of `producer`, in order, and the residual they add.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    /// The fused nodes.
    pub nodes: Vec<NodeId>,
    /// What each computes.
    pub steps: Vec<Step>,
    /// The value added by the `AddResidual` step (at most one per chain).
    pub residual: Option<Value>,
}

impl Chain {
    /// Follows the epilogue nodes after `producer` that can run in its kernel at its place in
    /// `schedule`: a residual must already be computed there, and one residual per kernel.
    pub fn after(graph: &Graph, producer: NodeId, position: &dyn Fn(NodeId) -> usize) -> Chain {
        let mut chain = Chain::default();
        let mut current = producer;
        while let [(user, 0, 0)] = graph.users(current)[..] {
            let node = graph.node(user);
            if !node.epilogue || graph.outputs().contains(&Value { node: current, port: 0 }) {
                break;
            }
            let step = match Activation::of(&node.op) {
                Some(a) => Step::Activation(a),
                None => {
                    let residual = graph.operands(user)[1];
                    if chain.residual.is_some() || position(residual.node) > position(producer) {
                        break;
                    }
                    chain.residual = Some(residual);
                    Step::AddResidual
                }
            };
            chain.nodes.push(user);
            chain.steps.push(step);
            current = user;
        }
        chain
    }

    /// The value the kernel finally writes: the last fused node's, or the producer's.
    pub fn output(&self, producer: NodeId) -> Value {
        Value { node: *self.nodes.last().unwrap_or(&producer), port: 0 }
    }
}

/// Emits `steps` on `x`; `residual` loads the residual at the same position.
pub fn emit(
    steps: &[Step],
    f: &mut Function,
    ty: Ty,
    x: &str,
    residual: &mut dyn FnMut(&mut Function) -> String,
) -> String {
    let mut y = x.to_string();
    for step in steps {
        y = match step {
            Step::Activation(a) => emit_activation(*a, f, ty, &y),
            Step::AddResidual => {
                let r = residual(f);
                f.let_("e", format!("fadd {} {y}, {r}", ty.name()))
            }
        };
    }
    y
}
