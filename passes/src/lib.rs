//! archc's graph rewrites. Each pass lives in its own file, takes a verified graph, leaves a
//! verified graph, and returns whether it changed anything; [`PIPELINE`] runs them in order.
#![warn(missing_docs)]

mod eliminate_dead_nodes;

pub use eliminate_dead_nodes::eliminate_dead_nodes;

/// A pass: rewrites the graph in place and says whether it changed it.
pub type Pass = fn(&mut ir::Graph) -> bool;

/// The passes, by name, in the order they run.
pub const PIPELINE: &[(&str, Pass)] = &[("eliminate-dead-nodes", eliminate_dead_nodes)];

/// Runs the pipeline's passes in order, up to and including the one named `stop_after`
/// (to bisect a miscompile), and returns the names of the passes that changed the graph.
///
/// In debug builds the graph is re-verified after every pass: a pass that breaks an
/// invariant is a bug, and the panic names it.
pub fn run_pipeline(graph: &mut ir::Graph, stop_after: Option<&str>) -> Vec<&'static str> {
    let mut changed = Vec::new();
    for &(name, pass) in PIPELINE {
        if pass(graph) {
            changed.push(name);
        }
        log::debug!("{name}: {} nodes", graph.len());
        if cfg!(debug_assertions)
            && let Err(e) = ir::verify(graph)
        {
            panic!("pass `{name}` broke the graph: {e}");
        }
        if stop_after == Some(name) {
            break;
        }
    }
    changed
}
