//! Deterministic text and Graphviz renderings of a graph, for people and snapshot tests.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::{Graph, NodeId, Value};

/// Numbers values `%0, %1, ...` in topological order, so that the text depends only on the
/// graph's structure and creation order.
fn numbering(graph: &Graph, order: &[NodeId]) -> BTreeMap<Value, usize> {
    let mut ids = BTreeMap::new();
    for &id in order {
        for port in 0..graph.node(id).outputs.len() {
            let next = ids.len();
            ids.insert(Value { node: id, port }, next);
        }
    }
    ids
}

/// The graph as text, one node a line:
///
/// ```text
/// graph tiny {
///   %0 = input : [1, 3, 8, 8]  # input
///   %1 = conv(%0) out=4 kernel=3 stride=1 padding=1 : [1, 4, 8, 8]  # 0
///   return %1
/// }
/// ```
pub fn to_text(graph: &Graph) -> String {
    let order = graph.topo_order().expect("printing needs an acyclic graph");
    let ids = numbering(graph, &order);
    let mut out = format!("graph {} {{\n", graph.name());
    for &id in &order {
        let node = graph.node(id);
        let results: Vec<String> =
            (0..node.outputs.len()).map(|port| format!("%{}", ids[&Value { node: id, port }])).collect();
        let operands: Vec<String> = graph.operands(id).iter().map(|v| format!("%{}", ids[v])).collect();
        let shapes: Vec<String> = node.outputs.iter().map(|s| s.to_string()).collect();
        let mut line = format!("  {} = {}", results.join(", "), node.op.name());
        if !operands.is_empty() {
            write!(line, "({})", operands.join(", ")).expect("writing to a String");
        }
        for (k, v) in node.op.attributes() {
            write!(line, " {k}={v}").expect("writing to a String");
        }
        if node.epilogue {
            line.push_str(" epilogue");
        }
        writeln!(out, "{line} : {}  # {}", shapes.join(", "), node.name).expect("writing to a String");
    }
    let outputs: Vec<String> = graph.outputs().iter().map(|v| format!("%{}", ids[v])).collect();
    writeln!(out, "  return {}\n}}", outputs.join(", ")).expect("writing to a String");
    out
}

/// The graph in Graphviz DOT: one box per node (op, attributes, name), edges labelled with
/// the shapes they carry.
pub fn to_dot(graph: &Graph) -> String {
    let order = graph.topo_order().expect("printing needs an acyclic graph");
    let index: BTreeMap<NodeId, usize> = order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out =
        format!("digraph \"{}\" {{\n  node [shape=box, fontname=\"monospace\"];\n", escape(graph.name()));
    for &id in &order {
        let node = graph.node(id);
        let label = format!("{}\\n{}", escape(&node.op.to_string()), escape(&node.name));
        writeln!(out, "  n{} [label=\"{label}\"];", index[&id]).expect("writing to a String");
    }
    for &id in &order {
        for v in graph.operands(id) {
            writeln!(out, "  n{} -> n{} [label=\"{}\"];", index[&v.node], index[&id], graph.shape(v))
                .expect("writing to a String");
        }
    }
    out.push_str("}\n");
    out
}
