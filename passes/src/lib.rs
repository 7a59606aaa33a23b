//! archc's graph rewrites. Each pass lives in its own file, takes a verified graph and its
//! weights, leaves a verified graph, and returns whether it changed anything. The named
//! pipelines `-O0`, `-O1` and `-O2` run them in order; [`plan`] then places every value in
//! one activation arena.
#![warn(missing_docs)]

pub mod autodiff;
mod eliminate_dead_nodes;
pub mod eqsat;
mod mark_epilogues;
pub mod plan;

pub use eliminate_dead_nodes::eliminate_dead_nodes;
pub use mark_epilogues::mark_epilogues;

use ir::{Graph, Weights};

/// The crate's one way for unit tests to build a network: `body` (RON statements) over an
/// input of `[batch, channels, side, side]`.
#[cfg(test)]
fn test_network(batch: usize, channels: usize, side: usize, body: &str) -> Graph {
    let text = format!(
        "Network(name: \"t\", input: Image(channels: {channels}, height: {side}, width: {side}), body: [{body}])"
    );
    let options = ir::BuildOptions { batch, overrides: Vec::new() };
    ir::from_ron_str(&text, "t.ron", &options).unwrap_or_else(|e| panic!("{e}"))
}

/// An optimization level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Level {
    /// Nothing: the graph as written.
    O0,
    /// Folding and fusion: batch norm folded into convs, epilogues marked.
    O1,
    /// Everything: channel plumbing turned into algebra and views, too.
    O2,
}

/// One step of a pipeline.
#[derive(Clone, Copy)]
pub enum Pass {
    /// Equality saturation with the given rule set.
    Eqsat(fn() -> Vec<egg::Rewrite<eqsat::lang::Tensor, eqsat::analysis::Shapes>>),
    /// A pass written directly over the graph.
    Direct(fn(&mut Graph, &mut Weights) -> bool),
}

/// The passes of a level, by name, in the order they run.
pub fn pipeline(level: Level) -> Vec<(&'static str, Pass)> {
    let tail = [
        ("eliminate-dead-nodes", Pass::Direct(eliminate_dead_nodes)),
        ("mark-epilogues", Pass::Direct(mark_epilogues)),
    ];
    match level {
        Level::O0 => Vec::new(),
        Level::O1 => [("eqsat-fold", Pass::Eqsat(eqsat::rules::folding))].into_iter().chain(tail).collect(),
        Level::O2 => [("eqsat", Pass::Eqsat(eqsat::rules::all))].into_iter().chain(tail).collect(),
    }
}

/// What a pipeline produced.
pub struct Optimized {
    /// The optimized graph.
    pub graph: Graph,
    /// Its weights.
    pub weights: Weights,
    /// The passes that ran, with whether each changed the graph.
    pub passes: Vec<(&'static str, bool)>,
    /// Saturation statistics, when a pass saturated.
    pub eqsat: Option<eqsat::Report>,
    /// The memory plan (channel views at `-O2`).
    pub plan: plan::Plan,
}

/// Runs the pipeline of `level` up to and including the pass named `stop_after` (to bisect a
/// miscompile), then plans memory.
///
/// Training graphs skip equality saturation: its language has no training ops.
///
/// In debug builds the graph is re-verified after every pass: a pass that breaks an invariant
/// is a bug, and the panic names it.
pub fn optimize(graph: &Graph, weights: &Weights, level: Level, stop_after: Option<&str>) -> Optimized {
    let (mut graph, mut weights) = (graph.clone(), weights.clone());
    let mut passes = Vec::new();
    let mut report = None;
    let training = graph.node_ids().any(|id| matches!(graph.node(id).op, ir::Op::Train(_)));
    for (name, pass) in pipeline(level) {
        let changed = match pass {
            Pass::Eqsat(_) if training => false,
            Pass::Eqsat(rules) => {
                let (g, w, r) = eqsat::optimize(&graph, &weights, &rules(), &eqsat::Limits::default());
                graph = g;
                weights = w;
                let changed = r.applied.values().any(|&n| n > 0);
                report = Some(r);
                changed
            }
            Pass::Direct(f) => f(&mut graph, &mut weights),
        };
        log::debug!("{name}: {} nodes", graph.len());
        if cfg!(debug_assertions)
            && let Err(e) = ir::verify(&graph).and_then(|()| weights.check(&graph))
        {
            panic!("pass `{name}` broke the graph: {e}");
        }
        passes.push((name, changed));
        if stop_after == Some(name) {
            break;
        }
    }
    let plan = plan::plan(&graph, level == Level::O2);
    Optimized { graph, weights, passes, eqsat: report, plan }
}
