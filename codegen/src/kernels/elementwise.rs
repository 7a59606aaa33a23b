//! Light kernels, run on one thread: batch norm, activations and adds that were not fused,
//! channel copies that the memory plan could not turn into views, reshapes, transposes,
//! global average pooling and softmax. Their inner loops run along contiguous channel planes,
//! which LLVM's loop vectorizer turns into vector code.

use std::fmt::Write;

use ir::{Activation, NodeId, Op, Value};

use crate::emit::{Function, Ty, float};
use crate::epilogue::emit_activation;
use crate::lower::{Lowering, planes};

impl Lowering<'_> {
    /// Emits node `id`, one of the light ops, into step body `f`.
    pub fn elementwise(&mut self, f: &mut Function, id: NodeId) {
        let graph = self.graph;
        let node = graph.node(id);
        let operands = graph.operands(id);
        let out = Value { node: id, port: 0 };
        if let Some(activation) = Activation::of(&node.op) {
            return self.map(f, operands[0], out, |f, x, _| emit_activation(activation, f, Ty::Scalar, x));
        }
        match &node.op {
            Op::BatchNorm { eps } => {
                // The raw parameters, so that the blob only copies them (training refreshes
                // it); LLVM hoists the per-channel scale out of the plane loop.
                let [g, b, m, v] = ["weight", "bias", "running_mean", "running_var"].map(|s| {
                    let data = self.param(node, s);
                    self.push(&data)
                });
                self.map(f, operands[0], out, |f, x, ch| {
                    let [g, b, m, v] = [g, b, m, v].map(|at| {
                        let i = f.int("add", ch, at);
                        f.load("%w", &i)
                    });
                    let padded = f.let_("var", format!("fadd float {v}, {}", float(eps.0)));
                    let std = f.let_("std", format!("call float @llvm.sqrt.f32(float {padded})"));
                    let scale = f.let_("scale", format!("fdiv float {g}, {std}"));
                    let centered = f.let_("c", format!("fsub float {x}, {m}"));
                    f.fma(&centered, &scale, &b)
                });
            }
            Op::Add | Op::Mul => self.binary(f, &node.op, operands[0], operands[1], out),
            Op::Concat => {
                let mut start = 0;
                for &v in &operands {
                    let c = self.graph.shape(v).channels();
                    let map: Vec<usize> = (0..c).collect();
                    self.copy_channels(f, v, out, &map, start);
                    start += c;
                }
            }
            Op::Split { sizes } => {
                let mut start = 0;
                for (port, &s) in sizes.iter().enumerate() {
                    let map: Vec<usize> = (start..start + s).collect();
                    self.copy_channels(f, operands[0], Value { node: id, port }, &map, 0);
                    start += s;
                }
            }
            Op::Gather { channels } => self.copy_channels(f, operands[0], out, channels, 0),
            Op::ChannelShuffle { groups } => {
                let c = self.graph.shape(out).channels();
                let map: Vec<usize> = (0..c).map(|o| (o % groups) * (c / groups) + o / groups).collect();
                self.copy_channels(f, operands[0], out, &map, 0);
            }
            Op::GlobalAvgPool => self.global_avg_pool(f, operands[0], out),
            Op::Flatten | Op::Reshape { .. } => {
                let n = self.graph.shape(out).item_numel();
                self.remap(f, operands[0], out, &(0..n).collect::<Vec<_>>());
            }
            Op::Transpose { perm } => {
                // One batch item's worth: the batch axis never moves.
                let mut item = self.graph.shape(operands[0]).dims().to_vec();
                item[0] = 1;
                let index = ir::eval::transpose_sources(&item, perm);
                self.remap(f, operands[0], out, &index);
            }
            Op::Softmax => self.softmax(f, operands[0], out),
            op => unreachable!("{} has its own kernel", op.name()),
        }
    }

    /// `out[n, c, s] = op(x[n, c, s], c)` over every element.
    fn map(
        &mut self,
        f: &mut Function,
        x: Value,
        out: Value,
        op: impl Fn(&mut Function, &str, &str) -> String,
    ) {
        let shape = self.graph.shape(x).clone();
        let (c, inner) = planes(&shape);
        f.count(shape.batch(), |f, n| {
            f.count(c, |f, ch| {
                let src = self.plane(f, x, ch, n);
                let dst = self.plane(f, out, ch, n);
                f.count(inner, |f, s| {
                    let v = f.load(&src, s);
                    let y = op(f, &v, ch);
                    f.store(&y, &dst, s);
                });
            });
        });
    }

    /// Element-wise add or mul; mul's second operand may be `[n, c, 1, 1]`.
    fn binary(&mut self, f: &mut Function, op: &Op, a: Value, b: Value, out: Value) {
        let shape = self.graph.shape(a).clone();
        let (c, inner) = planes(&shape);
        let broadcast = self.graph.shape(b) != &shape;
        let instr = if *op == Op::Add { "fadd" } else { "fmul" };
        f.count(shape.batch(), |f, n| {
            f.count(c, |f, ch| {
                let (pa, pb, dst) =
                    (self.plane(f, a, ch, n), self.plane(f, b, ch, n), self.plane(f, out, ch, n));
                f.count(inner, |f, s| {
                    let x = f.load(&pa, s);
                    let y = f.load(&pb, if broadcast { "0" } else { s });
                    let r = f.let_("r", format!("{instr} float {x}, {y}"));
                    f.store(&r, &dst, s);
                });
            });
        });
    }

    /// A constant global array of `i64`s.
    fn index_table(&mut self, values: &[usize]) -> String {
        let table = self.global_name("idx");
        let items: Vec<String> = values.iter().map(|m| format!("i64 {m}")).collect();
        writeln!(self.globals, "{table} = internal constant [{} x i64] [{}]", values.len(), items.join(", "))
            .expect("writing to a String");
        table
    }

    /// Copies planes: output channel `first + k` is input channel `map[k]`.
    fn copy_channels(&mut self, f: &mut Function, x: Value, out: Value, map: &[usize], first: usize) {
        let shape = self.graph.shape(x).clone();
        let (_, inner) = planes(&shape);
        let table = self.index_table(map);
        f.count(shape.batch(), |f, n| {
            f.count(map.len(), |f, k| {
                let pm = f.let_(
                    "pm",
                    format!("getelementptr inbounds [{} x i64], ptr {table}, i64 0, i64 {k}", map.len()),
                );
                let src_c = f.let_("sc", format!("load i64, ptr {pm}"));
                let dst_c = f.int("add", k, first);
                let src = self.plane(f, x, &src_c, n);
                let dst = self.plane(f, out, &dst_c, n);
                f.count(inner, |f, s| {
                    let v = f.load(&src, s);
                    f.store(&v, &dst, s);
                });
            });
        });
    }

    /// Copies element by element: output item element `i` is input item element `index[i]`.
    fn remap(&mut self, f: &mut Function, x: Value, out: Value, index: &[usize]) {
        let (_, inner_in) = planes(self.graph.shape(x));
        let (_, inner_out) = planes(self.graph.shape(out));
        let table = self.index_table(index);
        f.count(self.graph.shape(out).batch(), |f, n| {
            f.count(index.len(), |f, i| {
                let pi = f.let_(
                    "pi",
                    format!("getelementptr inbounds [{} x i64], ptr {table}, i64 0, i64 {i}", index.len()),
                );
                let j = f.let_("j", format!("load i64, ptr {pi}"));
                let (cin, sin) = (f.int("udiv", &j, inner_in), f.int("urem", &j, inner_in));
                let (cout, sout) = (f.int("udiv", i, inner_out), f.int("urem", i, inner_out));
                let src = self.plane(f, x, &cin, n);
                let dst = self.plane(f, out, &cout, n);
                let v = f.load(&src, &sin);
                f.store(&v, &dst, &sout);
            });
        });
    }

    fn global_avg_pool(&mut self, f: &mut Function, x: Value, out: Value) {
        let (c, inner) = planes(self.graph.shape(x));
        f.count(self.graph.shape(out).batch(), |f, n| {
            f.count(c, |f, ch| {
                let src = self.plane(f, x, ch, n);
                let acc = f.accumulator("0.0");
                f.count(inner, |f, s| {
                    let x = f.load(&src, s);
                    let a = f.let_("a", format!("load float, ptr {acc}"));
                    // Reassociation lets LLVM vectorize the sum.
                    let sum = f.let_("a", format!("fadd reassoc float {a}, {x}"));
                    f.line(format!("store float {sum}, ptr {acc}"));
                });
                let a = f.let_("a", format!("load float, ptr {acc}"));
                let mean = f.let_("a", format!("fdiv float {a}, {}", float(inner as f32)));
                let dst = self.plane(f, out, ch, n);
                f.store(&mean, &dst, "0");
            });
        });
    }

    fn softmax(&mut self, f: &mut Function, x: Value, out: Value) {
        let shape = self.graph.shape(x).clone();
        let features = shape.channels();
        f.count(shape.batch(), |f, n| {
            let max = f.accumulator("0xFFF0000000000000");
            f.count(features, |f, k| {
                let p = self.plane(f, x, k, n);
                let v = f.load(&p, "0");
                let m = f.let_("m", format!("load float, ptr {max}"));
                let m = f.let_("m", format!("call float @llvm.maxnum.f32(float {m}, float {v})"));
                f.line(format!("store float {m}, ptr {max}"));
            });
            let sum = f.accumulator("0.0");
            f.count(features, |f, k| {
                let p = self.plane(f, x, k, n);
                let v = f.load(&p, "0");
                let m = f.let_("m", format!("load float, ptr {max}"));
                let d = f.let_("d", format!("fsub float {v}, {m}"));
                let e = f.let_("e", format!("call float @llvm.exp.f32(float {d})"));
                let q = self.plane(f, out, k, n);
                f.store(&e, &q, "0");
                let s = f.let_("s", format!("load float, ptr {sum}"));
                let s = f.let_("s", format!("fadd float {s}, {e}"));
                f.line(format!("store float {s}, ptr {sum}"));
            });
            f.count(features, |f, k| {
                let q = self.plane(f, out, k, n);
                let e = f.load(&q, "0");
                let s = f.let_("s", format!("load float, ptr {sum}"));
                let r = f.let_("r", format!("fdiv float {e}, {s}"));
                f.store(&r, &q, "0");
            });
        });
    }
}
