//! Removes nodes whose outputs never reach a graph output.
//!
//! ```text
//! before: %1, %2 = split(%0)   %3 = relu(%1)   return %2
//! after:  %1, %2 = split(%0)                  return %2
//! ```
//! Inputs stay, even when unused: they are the network's interface.

use std::collections::BTreeSet;

use ir::{Graph, NodeId, Weights};

/// Removes every node that no graph output depends on; returns whether any was removed.
pub fn eliminate_dead_nodes(graph: &mut Graph, _weights: &mut Weights) -> bool {
    let mut live: BTreeSet<NodeId> = graph.inputs().iter().copied().collect();
    let mut pending: Vec<NodeId> = graph.outputs().iter().map(|v| v.node).collect();
    while let Some(id) = pending.pop() {
        if live.insert(id) {
            pending.extend(graph.operands(id).iter().map(|v| v.node));
        }
    }
    let order = graph.topo_order().expect("passes run on verified, acyclic graphs");
    let dead: Vec<NodeId> = order.into_iter().rev().filter(|id| !live.contains(id)).collect();
    for &id in &dead {
        graph.remove(id);
    }
    !dead.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(body: &str) -> Graph {
        crate::test_network(1, 4, 3, body)
    }

    #[test]
    fn removes_unused_branch() {
        let mut g = build(
            r#"Split(parts: 2, names: ["a", "b"]), Sequence(from: "a", body: [Relu]), Alias(name: "out", from: "b"), Sigmoid"#,
        );
        assert_eq!(g.len(), 4);
        assert!(eliminate_dead_nodes(&mut g, &mut Weights::default()));
        ir::verify(&g).unwrap();
        let ops: Vec<&str> = g.node_ids().map(|id| g.node(id).op.name()).collect();
        assert_eq!(ops, ["input", "split", "sigmoid"]);
    }

    #[test]
    fn keeps_live_graph() {
        let mut g = build("Relu, Sigmoid");
        assert!(!eliminate_dead_nodes(&mut g, &mut Weights::default()));
        assert_eq!(g.len(), 3);
    }
}
