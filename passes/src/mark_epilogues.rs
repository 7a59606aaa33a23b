//! Marks activations and residual adds as fused epilogues of the conv or linear layer that
//! produces their input, so that code generation computes them in that layer's kernel.
//!
//! ```text
//! before: %1 = conv(%0)   %2 = relu(%1)            %3 = add(%x, %2)
//! after:  %1 = conv(%0)   %2 = relu(%1) epilogue   %3 = add(%2, %x) epilogue
//! ```
//! Skipped when the conv's output has other readers: it must reach memory then. An add whose
//! fusable operand is its second has its operands swapped (add commutes).

use ir::{Graph, NodeId, Op, Weights};

/// Marks every fusable node; returns whether any mark changed.
pub fn mark_epilogues(graph: &mut Graph, _weights: &mut Weights) -> bool {
    let mut changed = false;
    for id in graph.topo_order().expect("passes run on verified, acyclic graphs") {
        let slots: &[usize] = match graph.node(id).op {
            Op::Relu | Op::Relu6 | Op::Hardswish | Op::Sigmoid => &[0],
            Op::Add => &[0, 1],
            _ => continue,
        };
        let Some(&slot) = slots.iter().find(|&&s| fusable(graph, id, s)) else { continue };
        if slot == 1 {
            graph.swap_operands(id);
        }
        if !graph.node(id).epilogue {
            graph.set_epilogue(id, true);
            changed = true;
        }
    }
    changed
}

/// Whether operand `slot` of `id` comes from a kernel with epilogues and is read only here.
fn fusable(graph: &Graph, id: NodeId, slot: usize) -> bool {
    let source = graph.operands(id)[slot];
    let producer = graph.node(source.node);
    let has_epilogues = matches!(producer.op, Op::Conv(_) | Op::Linear { .. }) || producer.epilogue;
    has_epilogues && graph.users(source.node).len() == 1 && !graph.outputs().contains(&source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(body: &str) -> String {
        let mut g = crate::test_network(1, 4, 3, body);
        let mut w = Weights::seeded(&g, 0);
        mark_epilogues(&mut g, &mut w);
        ir::verify(&g).unwrap();
        ir::print::to_text(&g)
    }

    #[test]
    fn fuses_conv_relu_and_residual_add() {
        let text = marked(
            r#"Alias(name: "x", from: "input"), Conv(out: 4, kernel: 3, act: Relu), Conv(out: 4, kernel: 1, name: "c"), Add(["x", "c"]), Relu"#,
        );
        insta::assert_snapshot!(text, @r"
        graph t {
          %0 = input : [1, 4, 3, 3]  # input
          %1 = conv(%0) out=4 kernel=3 stride=1 padding=1 : [1, 4, 3, 3]  # conv
          %2 = relu(%1) epilogue : [1, 4, 3, 3]  # relu
          %3 = conv(%2) out=4 kernel=1 stride=1 padding=0 : [1, 4, 3, 3]  # c
          %4 = add(%3, %0) epilogue : [1, 4, 3, 3]  # add
          %5 = relu(%4) epilogue : [1, 4, 3, 3]  # relu_1
          return %5
        }
        ");
    }

    #[test]
    fn keeps_shared_conv_output() {
        let text = marked(
            r#"Conv(out: 4, kernel: 1, name: "c"), Relu, Alias(name: "r", from: "c"), Sigmoid, Add(["r", "c"])"#,
        );
        assert!(!text.contains("epilogue"), "{text}");
    }
}
