//! Fully connected layers: each task gathers one batch item's features into contiguous
//! scratch and computes a range of outputs as dot products with the weight rows (reassociated
//! so that LLVM vectorizes them). Linear layers read their weights once per item, so memory
//! bandwidth, not arithmetic, bounds them.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain};
use crate::lower::{Lowering, planes, task_count, task_items};

/// Weights (floats) a task should read.
const TASK_FLOATS: usize = 1 << 16;

impl Lowering<'_> {
    /// A linear layer with its fused epilogues `chain`.
    pub fn linear(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Linear { out_features, bias } = node.op else { unreachable!("a linear layer") };
        let weights = self.push(&self.param(node, "weight"));
        let bias = if bias { self.param(node, "bias") } else { vec![0.0; out_features] };
        let bias = self.push(&bias);
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let (channels, inner) = planes(graph.shape(x));
        let features = channels * inner;
        let chunks = task_count(out_features, TASK_FLOATS / features);
        self.parallel(f, graph.shape(out).batch() * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let n = f.int("udiv", "%t", chunks);
            let xs = f.let_("xs", format!("call ptr @archc_scratch(i64 {})", features * 4));
            f.count(channels, |f, c| {
                let src = l.plane(f, x, c, &n);
                let base = f.int("mul", c, inner);
                f.count(inner, |f, s| {
                    let v = f.load(&src, s);
                    let at = f.int("add", &base, s);
                    f.store(&v, &xs, &at);
                });
            });
            let (first, count) = task_items(f, &chunk, chunks, out_features);
            f.count(&count, |f, i| {
                let o = f.int("add", &first, i);
                let row = f.int("mul", &o, features);
                let row = f.int("add", &row, weights);
                let acc = f.accumulator("0.0");
                f.count(features, |f, k| {
                    let xv = f.load(&xs, k);
                    let at = f.int("add", &row, k);
                    let wv = f.load("%w", &at);
                    f.add_product(&acc, &xv, &wv);
                });
                let sum = f.read(&acc);
                let at = f.int("add", &o, bias);
                let b = f.load("%w", &at);
                let y = f.let_("y", format!("fadd float {sum}, {b}"));
                let dst = l.plane(f, out, &o, &n);
                let residual = chain.residual.map(|r| l.plane(f, r, &o, &n));
                let y = epilogue::emit(&chain.steps, f, Ty::Scalar, &y, &mut |f| {
                    f.load(residual.as_deref().expect("a residual plane"), "0")
                });
                f.store(&y, &dst, "0");
            });
        });
    }
}
