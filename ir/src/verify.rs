//! `verify`: the invariants every graph keeps, before and after every pass.

use std::collections::BTreeMap;

use crate::{Error, Graph, NodeId, Op, Result, infer};

/// Checks that `graph` is a well-formed network:
/// - it is acyclic and has at least one input and one output;
/// - every node has as many operands as its op takes, in slots `0..n`, each reading an
///   existing output of its source;
/// - every node's stored output shapes are what shape inference gives for its operands;
/// - every parameter (`{node}.{suffix}`) has one owner, and a borrowed parameter (a backward
///   op reading its forward node's weights) names an owned one of the same shape;
/// - a fused epilogue is an activation or add whose first operand comes from a conv, a linear
///   layer or another epilogue, and is read by nothing else.
pub fn verify(graph: &Graph) -> Result<()> {
    let fail = |id: NodeId, message: String| {
        let node = graph.node(id);
        Error::Verify { node: node.name.clone(), location: node.location.clone(), message }
    };
    let order = graph.topo_order().map_err(|id| fail(id, "the node is on a cycle".to_string()))?;
    let Some(&first) = order.first() else {
        return Err(Error::Verify {
            node: graph.name().to_string(),
            location: None,
            message: "the graph is empty".into(),
        });
    };
    if graph.inputs().is_empty() || graph.outputs().is_empty() {
        return Err(fail(first, "the graph needs at least one input and one output".to_string()));
    }
    let mut owned: BTreeMap<String, (NodeId, Vec<usize>)> = BTreeMap::new();
    let mut borrowed: Vec<(NodeId, String, Vec<usize>)> = Vec::new();
    for &id in &order {
        let node = graph.node(id);
        let slots = graph.operand_slots(id);
        if slots.iter().enumerate().any(|(i, &s)| i != s) {
            return Err(fail(id, format!("operand slots {slots:?} are not 0..{}", slots.len())));
        }
        let operands = graph.operands(id);
        for v in &operands {
            if v.port >= graph.node(v.node).outputs.len() {
                return Err(fail(
                    id,
                    format!("reads output {} of `{}`, which has fewer", v.port, graph.node(v.node).name),
                ));
            }
        }
        if node.op == Op::Input {
            if !operands.is_empty() || node.outputs.len() != 1 {
                return Err(fail(id, "an input has no operands and one output".to_string()));
            }
            continue;
        }
        let shapes: Vec<_> = operands.iter().map(|&v| graph.shape(v)).collect();
        let inferred = infer(&node.op, &shapes).map_err(|m| fail(id, m))?;
        if inferred != node.outputs {
            return Err(fail(
                id,
                format!("stored output shapes {:?} differ from inferred {:?}", node.outputs, inferred),
            ));
        }
        if node.epilogue {
            check_epilogue(graph, id).map_err(|m| fail(id, m))?;
        }
        for spec in node.op.params(shapes[0]) {
            let name = format!("{}.{}", node.name, spec.suffix);
            if spec.borrowed {
                borrowed.push((id, name, spec.shape));
            } else if let Some((other, _)) = owned.insert(name.clone(), (id, spec.shape)) {
                let other = &graph.node(other).name;
                return Err(fail(
                    id,
                    format!("parameter `{name}` is also owned by another node named `{other}`"),
                ));
            }
        }
    }
    for (id, name, shape) in borrowed {
        match owned.get(&name) {
            Some((_, owner_shape)) if *owner_shape == shape => {}
            Some((_, owner_shape)) => {
                return Err(fail(id, format!("borrows `{name}` as {shape:?}, but it is {owner_shape:?}")));
            }
            None => return Err(fail(id, format!("borrows `{name}`, which no node owns"))),
        }
    }
    for v in graph.outputs() {
        if v.port >= graph.node(v.node).outputs.len() {
            return Err(fail(v.node, format!("graph output reads missing output {}", v.port)));
        }
    }
    Ok(())
}

fn check_epilogue(graph: &Graph, id: NodeId) -> std::result::Result<(), String> {
    let node = graph.node(id);
    if !matches!(node.op, Op::Relu | Op::Relu6 | Op::Hardswish | Op::Sigmoid | Op::Add) {
        return Err(format!("{} cannot be a fused epilogue", node.op.name()));
    }
    let source = graph.operands(id)[0];
    let producer = graph.node(source.node);
    if !(matches!(producer.op, Op::Conv(_) | Op::Linear { .. }) || producer.epilogue) {
        return Err(format!("its first operand comes from {}, which has no epilogues", producer.op.name()));
    }
    let users = graph.users(source.node);
    if users.len() != 1 || graph.outputs().contains(&source) {
        return Err(format!("`{}` is read by more than its epilogue", producer.name));
    }
    Ok(())
}
