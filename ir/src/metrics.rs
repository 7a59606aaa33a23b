//! Cost metrics per layer and in total: multiply-adds, parameters, memory access cost, and
//! the ShuffleNet V2 paper's fragment (G3) and element-wise (G4) counts.

use serde::Serialize;

use crate::{Graph, Op, Shape};

/// Bytes per element: every tensor is f32.
const F32_BYTES: u64 = 4;

/// The costs of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerMetrics {
    /// The node's name.
    pub name: String,
    /// The op's printed name.
    pub op: &'static str,
    /// The first output's dimensions.
    pub shape: Vec<usize>,
    /// Multiply-adds (the paper's "FLOPs"): convolutions and linear layers only.
    pub macs: u64,
    /// Trainable parameters (BN running statistics excluded).
    pub params: u64,
    /// Bytes read and written: every operand, every output and every parameter tensor
    /// (running statistics included), once each.
    pub memory_access_bytes: u64,
    /// Bytes of the outputs.
    pub activation_bytes: u64,
}

/// The sums over all layers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Multiply-adds.
    pub macs: u64,
    /// Trainable parameters.
    pub params: u64,
    /// Memory access cost in bytes.
    pub memory_access_bytes: u64,
    /// Bytes of all activations (every node's outputs, the input included).
    pub activation_bytes: u64,
    /// Compute kernels the paper's G3 counts as fragments (convs, pools, linear layers).
    pub fragments: u64,
    /// Element-wise ops (the paper's G4: activations, batch norm, add, mul).
    pub elementwise_ops: u64,
}

/// The costs of a whole graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// The network's name.
    pub name: String,
    /// Sums over all layers.
    pub totals: Totals,
    /// One entry per node, in topological order.
    pub layers: Vec<LayerMetrics>,
}

/// Multiply-adds of `op` (convolutions and linear layers; zero for everything else).
pub fn macs(op: &Op, inputs: &[&Shape], outputs: &[Shape]) -> u64 {
    let out_elems: u64 = outputs.iter().map(|s| s.numel() as u64).sum();
    match op {
        Op::Conv(c) => out_elems * (inputs[0].channels() / c.groups * c.kernel[0] * c.kernel[1]) as u64,
        Op::Linear { .. } => out_elems * inputs[0].item_numel() as u64,
        _ => 0,
    }
}

/// Bytes `op` reads and writes: every operand, every output and every parameter, once each.
pub fn memory_access_bytes(op: &Op, inputs: &[&Shape], outputs: &[Shape]) -> u64 {
    let elems = |shapes: &mut dyn Iterator<Item = &Shape>| shapes.map(|s| s.numel() as u64).sum::<u64>();
    let params: u64 = inputs
        .first()
        .map(|x| op.params(x).iter().map(|p| p.shape.iter().product::<usize>() as u64).sum())
        .unwrap_or(0);
    (elems(&mut inputs.iter().copied()) + elems(&mut outputs.iter()) + params) * F32_BYTES
}

/// Computes the metrics of a graph whose nodes are in a valid order (any verified graph).
pub fn metrics(graph: &Graph) -> Metrics {
    let order = graph.topo_order().expect("metrics need an acyclic graph");
    let mut totals = Totals::default();
    let mut layers = Vec::with_capacity(order.len());
    for id in order {
        let node = graph.node(id);
        let operands: Vec<&Shape> = graph.operands(id).iter().map(|&v| graph.shape(v)).collect();
        let out_elems: u64 = node.outputs.iter().map(|s| s.numel() as u64).sum();
        let specs = operands.first().map(|x| node.op.params(x)).unwrap_or_default();
        let params: u64 = specs
            .iter()
            .filter(|p| p.trainable && !p.borrowed)
            .map(|p| p.shape.iter().product::<usize>() as u64)
            .sum();
        let layer = LayerMetrics {
            name: node.name.clone(),
            op: node.op.name(),
            shape: node.outputs[0].dims().to_vec(),
            macs: macs(&node.op, &operands, &node.outputs),
            params,
            memory_access_bytes: memory_access_bytes(&node.op, &operands, &node.outputs),
            activation_bytes: out_elems * F32_BYTES,
        };
        totals.macs += layer.macs;
        totals.params += layer.params;
        totals.memory_access_bytes += layer.memory_access_bytes;
        totals.activation_bytes += layer.activation_bytes;
        totals.fragments += u64::from(node.op.is_fragment());
        totals.elementwise_ops += u64::from(node.op.is_elementwise());
        layers.push(layer);
    }
    Metrics { name: graph.name().to_string(), totals, layers }
}
