//! What extraction minimizes: for each op, its multiply-adds plus the bytes it reads and
//! writes (the paper's memory access cost). Channel views cost almost nothing, weight
//! expressions nothing at all (they are evaluated once, at compile time).

use egg::{CostFunction, Id, Language};

use super::analysis::{Graph, Info};
use super::lang::{Tensor, graph_op};

/// The cost of running one op on given shapes; the hook through which measured per-op costs
/// can replace the analytic model.
pub trait OpCost {
    /// The cost of `op` reading `inputs` and writing `outputs`.
    fn cost(&self, op: &ir::Op, inputs: &[&ir::Shape], outputs: &[ir::Shape]) -> f64;
}

/// Multiply-adds plus memory access bytes; channel views (`gather`, `split`, `concat`) cost 1,
/// because the memory plan realizes them without copies.
pub struct Analytic;

impl OpCost for Analytic {
    fn cost(&self, op: &ir::Op, inputs: &[&ir::Shape], outputs: &[ir::Shape]) -> f64 {
        if matches!(op, ir::Op::Gather { .. } | ir::Op::Split { .. } | ir::Op::Concat) {
            return 1.0;
        }
        let bytes = ir::metrics::memory_access_bytes(op, inputs, outputs);
        (ir::metrics::macs(op, inputs, outputs) + bytes) as f64
    }
}

/// The cost of a whole graph: every node counted once.
pub fn graph_cost(graph: &ir::Graph, model: &dyn OpCost) -> f64 {
    graph
        .node_ids()
        .filter(|&id| graph.node(id).op != ir::Op::Input)
        .map(|id| {
            let inputs: Vec<&ir::Shape> = graph.operands(id).iter().map(|&v| graph.shape(v)).collect();
            model.cost(&graph.node(id).op, &inputs, &graph.node(id).outputs)
        })
        .sum()
}

/// Extraction's cost function over an e-graph. Extraction sums costs over trees, so a
/// subexpression shared by two consumers counts twice there; the choice in each class is still
/// the cheapest, and reports use [`graph_cost`].
pub struct Cost<'a> {
    /// The saturated e-graph (for shapes).
    pub egraph: &'a Graph,
    /// The per-op model.
    pub model: &'a dyn OpCost,
}

impl CostFunction<Tensor> for Cost<'_> {
    type Cost = f64;

    fn cost<C: FnMut(Id) -> f64>(&mut self, node: &Tensor, mut costs: C) -> f64 {
        let attr = |id: Id| self.egraph[id].data.attr();
        let own = match graph_op(node, attr) {
            Some((op, operands)) => {
                let shapes: Vec<&ir::Shape> =
                    operands.iter().map(|&id| self.egraph[id].data.shape()).collect();
                let outputs = ir::infer(&op, &shapes).expect("e-graph nodes are well-shaped");
                self.model.cost(&op, &shapes, &outputs)
            }
            None => 0.0,
        };
        node.fold(own, |sum, id| match self.egraph[id].data {
            // Attributes are free; everything else adds what it costs to compute.
            Info::Attr(_) => sum,
            _ => sum + costs(id),
        })
    }
}
