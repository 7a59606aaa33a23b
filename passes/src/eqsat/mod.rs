//! Equality saturation with egg: the graph is loaded into an e-graph, the rules of
//! [`rules`] add every equal form they can find within fixed limits, and extraction keeps the
//! cheapest by the [`cost`] model, weights materialized.
//!
//! Phases: load (Graph -> e-graph, weights as symbolic `param` leaves), saturate (node,
//! iteration and time limits always set; the stop reason is reported), extract (bottom-up by
//! cost), rebuild (e-graph -> Graph, weight expressions evaluated).

pub mod analysis;
mod convert;
pub mod cost;
pub mod lang;
pub mod rules;

use std::collections::BTreeMap;
use std::time::Duration;

use egg::{Rewrite, Runner};

/// Bounds on saturation. Tests set node and iteration limits only, so their results do not
/// depend on the machine's speed.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most e-nodes.
    pub nodes: usize,
    /// Most iterations.
    pub iterations: usize,
    /// Most wall time.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { nodes: 200_000, iterations: 40, time: Duration::from_secs(5) }
    }
}

/// What saturation did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Why saturation stopped (`Saturated` when no rule had anything left to add).
    pub stop_reason: String,
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes at the end.
    pub egraph_nodes: usize,
    /// E-classes at the end.
    pub egraph_classes: usize,
    /// Times each rule applied, by rule name.
    pub applied: BTreeMap<String, usize>,
    /// Cost of the graph before and after, by the cost model (each node counted once).
    pub cost_before: f64,
    /// See `cost_before`.
    pub cost_after: f64,
}

/// Saturates `graph` with `rules` and returns the cheapest equal graph with its weights.
pub fn optimize(
    graph: &ir::Graph,
    weights: &ir::Weights,
    rules: &[Rewrite<lang::Tensor, analysis::Shapes>],
    limits: &Limits,
) -> (ir::Graph, ir::Weights, Report) {
    let loaded = convert::load(graph);
    let runner = Runner::default()
        .with_egraph(loaded.egraph)
        .with_node_limit(limits.nodes)
        .with_iter_limit(limits.iterations)
        .with_time_limit(limits.time)
        .run(rules);
    let stop_reason =
        format!("{:?}", runner.stop_reason.as_ref().expect("a finished runner has a stop reason"));
    log::info!("eqsat on {}: {stop_reason} after {} iterations", graph.name(), runner.iterations.len());
    let mut applied = BTreeMap::new();
    for iteration in &runner.iterations {
        for (rule, n) in &iteration.applied {
            *applied.entry(rule.to_string()).or_insert(0) += n;
        }
    }
    let loaded = convert::Loaded { egraph: runner.egraph, ..loaded };
    let cost = cost::Cost { egraph: &loaded.egraph, model: &cost::Analytic };
    let (optimized, new_weights) = convert::extract(&loaded, cost, weights, graph.name());
    let report = Report {
        stop_reason,
        iterations: runner.iterations.len(),
        egraph_nodes: loaded.egraph.total_size(),
        egraph_classes: loaded.egraph.number_of_classes(),
        applied,
        cost_before: cost::graph_cost(graph, &cost::Analytic),
        cost_after: cost::graph_cost(&optimized, &cost::Analytic),
    };
    (optimized, new_weights, report)
}
