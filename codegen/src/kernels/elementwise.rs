//! Light kernels: batch norm, activations and adds that were not fused, channel copies that
//! the memory plan could not turn into views, reshapes, transposes, global average pooling
//! and softmax. They run on one thread (global average pooling excepted) along contiguous
//! channel planes, which LLVM's loop vectorizer turns into vector code.

use std::fmt::Write;

use ir::{Activation, NodeId, Op, Value};

use crate::emit::{Function, Ty, float};
use crate::epilogue::emit_activation;
use crate::lower::{Lowering, planes};

/// Floats a global-average-pool task should sum.
const TASK_FLOATS: usize = 1 << 14;

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
                let params = self.batch_norm_params(node);
                self.map(f, operands[0], out, |f, x, ch| batch_norm(f, x, ch, params, eps.0));
            }
            Op::Add | Op::Mul => self.binary(f, &node.op, operands[0], operands[1], out),
            Op::Concat | Op::Split { .. } | Op::Gather { .. } | Op::ChannelShuffle { .. } => {
                for copy in channel_copies(graph, id) {
                    self.copy_channels(f, copy.from, copy.to, &copy.map, copy.first);
                }
            }
            Op::GlobalAvgPool => self.global_avg_pool(f, operands[0], out),
            Op::Flatten | Op::Reshape { .. } | Op::Transpose { .. } => {
                self.remap(f, operands[0], out, &element_sources(graph, id));
            }
            Op::Softmax => self.softmax(f, operands[0], out),
            op => unreachable!("{} has its own kernel", op.name()),
        }
    }

    /// Pushes a batch norm's raw parameters (weight, bias, mean, variance) to the blob and
    /// returns their offsets: the blob only copies them, so that training can refresh it.
    pub(crate) fn batch_norm_params(&mut self, node: &ir::Node) -> [usize; 4] {
        ["weight", "bias", "running_mean", "running_var"].map(|s| {
            let data = self.param(node, s);
            self.push(&data)
        })
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
    pub(crate) fn index_table(&mut self, values: &[usize]) -> String {
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
                let src_c = f.table_entry(&table, map.len(), k);
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
                let j = f.table_entry(&table, index.len(), i);
                let (cin, sin) = (f.int("udiv", &j, inner_in), f.int("urem", &j, inner_in));
                let (cout, sout) = (f.int("udiv", i, inner_out), f.int("urem", i, inner_out));
                let src = self.plane(f, x, &cin, n);
                let dst = self.plane(f, out, &cout, n);
                let v = f.load(&src, &sin);
                f.store(&v, &dst, &sout);
            });
        });
    }

    /// Each channel plane's mean, summed in vectors (a scalar remainder loop would cost more
    /// than the vectors on 7x7 planes), planes split among the threads.
    fn global_avg_pool(&mut self, f: &mut Function, x: Value, out: Value) {
        let shape = self.graph.shape(x).clone();
        let (c, inner) = planes(&shape);
        self.parallel_planes(f, shape.batch(), c, TASK_FLOATS / inner, |l, f, n, ch, _| {
            let total = l.plane_sum(f, x, ch, n);
            let mean = f.let_("a", format!("fdiv float {total}, {}", float(inner as f32)));
            let dst = l.plane(f, out, ch, n);
            f.store(&mean, &dst, "0");
        });
    }

    /// The sum of plane `ch` of batch item `n` of `x`, in vectors (the tail masked).
    pub(crate) fn plane_sum(&mut self, f: &mut Function, x: Value, ch: &str, n: &str) -> String {
        let (_, inner) = planes(self.graph.shape(x));
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let src = self.plane(f, x, ch, n);
        let acc = f.slot(ty, "zeroinitializer");
        f.count(inner / lanes, |f, v| {
            let at = f.int("mul", v, lanes);
            let x = f.load_ty(ty, &src, &at, None);
            f.add_vector(ty, &acc, &x);
        });
        if let Some(mask) = crate::emit::tail_mask(inner, lanes) {
            let x = f.load_ty(ty, &src, &(inner / lanes * lanes).to_string(), Some(&mask));
            f.add_vector(ty, &acc, &x);
        }
        f.vector_sum(ty, &acc)
    }

    /// Channel `ch` of batch item `n` of `out` is the mean of that plane of `x`.
    pub(crate) fn mean_plane(&mut self, f: &mut Function, x: Value, out: Value, ch: &str, n: &str) {
        let (_, inner) = planes(self.graph.shape(x));
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
    }

    fn softmax(&mut self, f: &mut Function, x: Value, out: Value) {
        f.count(self.graph.shape(x).batch(), |f, n| self.softmax_item(f, x, out, n));
    }

    /// Softmax over the features of batch item `n`.
    pub(crate) fn softmax_item(&mut self, f: &mut Function, x: Value, out: Value, n: &str) {
        let features = self.graph.shape(x).channels();
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
            let e = f.exp(Ty::Scalar, &d);
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
    }
}

/// `(x - mean) * weight / sqrt(var + eps) + bias` for channel `ch`, reading the parameters at
/// the blob offsets `params` (see [`Lowering::batch_norm_params`]).
pub(crate) fn batch_norm(f: &mut Function, x: &str, ch: &str, params: [usize; 4], eps: f32) -> String {
    let [g, b, m, v] = params.map(|at| {
        let i = f.int("add", ch, at);
        f.load("%w", &i)
    });
    let padded = f.let_("var", format!("fadd float {v}, {}", float(eps)));
    let std = f.let_("std", format!("call float @llvm.sqrt.f32(float {padded})"));
    let scale = f.let_("scale", format!("fdiv float {g}, {std}"));
    let centered = f.let_("c", format!("fsub float {x}, {m}"));
    f.fma(Ty::Scalar, &centered, &scale, &b)
}

/// Plane copies of a channel op: output channel `first + k` of `to` is channel `map[k]` of
/// `from`.
pub(crate) struct ChannelCopy {
    pub from: Value,
    pub to: Value,
    pub map: Vec<usize>,
    pub first: usize,
}

/// The plane copies that compute concat, split, gather or channel shuffle node `id`.
pub(crate) fn channel_copies(graph: &ir::Graph, id: NodeId) -> Vec<ChannelCopy> {
    let operands = graph.operands(id);
    let out = Value { node: id, port: 0 };
    match &graph.node(id).op {
        Op::Concat => {
            let mut first = 0;
            operands
                .iter()
                .map(|&from| {
                    let c = graph.shape(from).channels();
                    first += c;
                    ChannelCopy { from, to: out, map: (0..c).collect(), first: first - c }
                })
                .collect()
        }
        Op::Split { sizes } => {
            let mut start = 0;
            sizes
                .iter()
                .enumerate()
                .map(|(port, &s)| {
                    start += s;
                    let to = Value { node: id, port };
                    ChannelCopy { from: operands[0], to, map: (start - s..start).collect(), first: 0 }
                })
                .collect()
        }
        Op::Gather { channels } => {
            vec![ChannelCopy { from: operands[0], to: out, map: channels.clone(), first: 0 }]
        }
        Op::ChannelShuffle { groups } => {
            let c = graph.shape(out).channels();
            let map = (0..c).map(|o| (o % groups) * (c / groups) + o / groups).collect();
            vec![ChannelCopy { from: operands[0], to: out, map, first: 0 }]
        }
        op => unreachable!("{} is no channel op", op.name()),
    }
}

/// For flatten, reshape or transpose node `id`: the element of one input batch item that
/// each element of an output item copies (the batch axis never moves).
pub(crate) fn element_sources(graph: &ir::Graph, id: NodeId) -> Vec<usize> {
    let x = graph.operands(id)[0];
    match &graph.node(id).op {
        Op::Transpose { perm } => {
            let mut item = graph.shape(x).dims().to_vec();
            item[0] = 1;
            ir::eval::transpose_sources(&item, perm)
        }
        _ => (0..graph.shape(x).item_numel()).collect(),
    }
}
