//! Lowering: a verified graph and its memory plan become one LLVM module, one kernel function
//! per node, specialized to the node's static shapes, and a `run` entry point.
//!
//! Every value is addressed through a table of channel planes (byte offset of the plane of
//! batch item 0 in the arena, and the stride between batch items), so the zero-copy channel
//! views of the memory plan need no special cases: a kernel reading a gathered or
//! concatenated value simply follows a different table. Weights travel in one f32 blob;
//! batch norm is pre-computed into a per-channel scale and shift.

use std::collections::BTreeMap;
use std::fmt::Write;

use ir::{Graph, Op, Value, Weights};
use passes::plan::{Placement, Plan};

use crate::Error;
use crate::emit::{Function, float};

/// A lowered network: LLVM IR text and the data it runs with.
pub struct Lowered {
    /// The module, as LLVM IR text.
    pub ir: String,
    /// The name of the entry point: `void {symbol}(const float *in, float *out, const float *w, void *arena)`.
    pub entry: String,
    /// The weights blob the entry point reads.
    pub weights: Vec<f32>,
    /// Bytes of the activation arena.
    pub arena_bytes: usize,
    /// Elements of the input (NCHW, the batch included).
    pub input_elems: usize,
    /// Elements of the output.
    pub output_elems: usize,
}

/// Lowers `graph` (with `weights`, placed by `plan`) into a module whose entry point is
/// `{symbol}_run`.
pub fn lower(graph: &Graph, weights: &Weights, plan: &Plan, symbol: &str) -> Result<Lowered, Error> {
    let [input] = graph.inputs() else {
        return Err(Error::Unsupported(format!(
            "{} inputs; archc compiles networks with one",
            graph.inputs().len()
        )));
    };
    let [output] = graph.outputs() else {
        return Err(Error::Unsupported(format!(
            "{} outputs; archc compiles networks with one",
            graph.outputs().len()
        )));
    };
    let mut l = Lowering {
        graph,
        weights,
        plan,
        symbol,
        globals: String::new(),
        tables: BTreeMap::new(),
        blob: Vec::new(),
        kernels: String::new(),
    };
    let input_value = Value { node: *input, port: 0 };
    let mut run = Function::new();
    // Copy the input into its arena buffer, run every kernel, copy the output out.
    l.copy_external(&mut run, input_value, "%in", true);
    for (step, &id) in plan.schedule.iter().enumerate() {
        let node = graph.node(id);
        if node.op == Op::Input || plan.views.contains(&id) {
            continue;
        }
        let name = format!("@{symbol}_k{step}");
        l.kernel(id, &name)?;
        run.line(format!("call void {name}(ptr %arena, ptr %w)"));
    }
    l.copy_external(&mut run, *output, "%out", false);
    let entry = format!("{symbol}_run");
    let mut ir = String::new();
    ir.push_str("declare float @llvm.fmuladd.f32(float, float, float)\n");
    ir.push_str("declare float @llvm.maxnum.f32(float, float)\n");
    ir.push_str("declare float @llvm.minnum.f32(float, float)\n");
    ir.push_str("declare float @llvm.exp.f32(float)\n\n");
    ir.push_str(&l.globals);
    ir.push_str(&l.kernels);
    ir.push_str(&run.finish(&format!(
        "define void @{entry}(ptr noalias %in, ptr noalias %out, ptr noalias %w, ptr noalias %arena)"
    )));
    Ok(Lowered {
        ir,
        entry,
        weights: l.blob,
        arena_bytes: plan.peak_bytes,
        input_elems: graph.shape(input_value).numel(),
        output_elems: graph.shape(*output).numel(),
    })
}

struct Lowering<'a> {
    graph: &'a Graph,
    weights: &'a Weights,
    plan: &'a Plan,
    symbol: &'a str,
    globals: String,
    tables: BTreeMap<Value, String>,
    blob: Vec<f32>,
    kernels: String,
}

/// Channels and elements per channel plane of a shape (`[n, f]` has planes of one element).
fn planes(shape: &ir::Shape) -> (usize, usize) {
    let c = shape.channels();
    (c, shape.item_numel() / c)
}

impl Lowering<'_> {
    /// The global table of channel planes of `v`: `[c x {i64 offset, i64 item_stride}]`.
    fn table(&mut self, v: Value) -> String {
        if let Some(t) = self.tables.get(&v) {
            return t.clone();
        }
        let shape = self.graph.shape(v);
        let (c, inner) = planes(shape);
        let n = shape.batch();
        let entries: Vec<(usize, usize)> = match &self.plan.placements[&v] {
            Placement::Whole(b) => {
                let base = self.plan.buffers[*b].offset;
                (0..c).map(|ch| (base + ch * inner * 4, c * inner * 4)).collect()
            }
            Placement::Planes(planes) => planes
                .iter()
                .map(|&(b, ch)| {
                    let buffer = &self.plan.buffers[b];
                    let plane_bytes = buffer.bytes / (n * buffer.channels);
                    (buffer.offset + ch * plane_bytes, buffer.channels * plane_bytes)
                })
                .collect(),
        };
        let name = format!("@{}_t{}_{}", self.symbol, self.tables.len(), v.port);
        let items: Vec<String> =
            entries.iter().map(|(o, s)| format!("{{ i64, i64 }} {{ i64 {o}, i64 {s} }}")).collect();
        writeln!(self.globals, "{name} = internal constant [{c} x {{ i64, i64 }}] [{}]", items.join(", "))
            .expect("writing to a String");
        self.tables.insert(v, name.clone());
        name
    }

    /// Emits the address of channel `c` of batch item `n` of `v`: arithmetic for a whole
    /// buffer, a table lookup for a view.
    fn plane(&mut self, f: &mut Function, v: Value, c: &str, n: &str) -> String {
        if let Placement::Whole(b) = self.plan.placements[&v] {
            let (channels, inner) = planes(self.graph.shape(v));
            let base = self.plan.buffers[b].offset;
            let within = f.int("mul", c, inner * 4);
            let item = f.int("mul", n, channels * inner * 4);
            let off = f.int("add", &within, &item);
            let at = f.int("add", &off, base);
            return f.let_("plane", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"));
        }
        let table = self.table(v);
        let (channels, _) = planes(self.graph.shape(v));
        let ty = format!("[{channels} x {{ i64, i64 }}]");
        let po = f.let_("po", format!("getelementptr inbounds {ty}, ptr {table}, i64 0, i64 {c}, i32 0"));
        let ps = f.let_("ps", format!("getelementptr inbounds {ty}, ptr {table}, i64 0, i64 {c}, i32 1"));
        let off = f.let_("off", format!("load i64, ptr {po}"));
        let stride = f.let_("stride", format!("load i64, ptr {ps}"));
        let item = f.int("mul", n, &stride);
        let at = f.int("add", &off, &item);
        f.let_("plane", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"))
    }

    /// Appends `data` to the weights blob and returns its offset (in floats).
    fn push(&mut self, data: &[f32]) -> usize {
        let at = self.blob.len();
        self.blob.extend_from_slice(data);
        at
    }

    /// Copies between a contiguous NCHW array (`ptr`) and a value's planes.
    fn copy_external(&mut self, f: &mut Function, v: Value, ptr: &str, into_arena: bool) {
        let shape = self.graph.shape(v).clone();
        let (c, inner) = planes(&shape);
        f.count(shape.batch(), |f, n| {
            f.count(c, |f, ch| {
                let plane = self.plane(f, v, ch, n);
                let item = f.int("mul", n, c);
                let row = f.int("add", &item, ch);
                let base = f.int("mul", &row, inner);
                f.count(inner, |f, s| {
                    let flat = f.int("add", &base, s);
                    if into_arena {
                        let x = f.load(ptr, &flat);
                        f.store(&x, &plane, s);
                    } else {
                        let x = f.load(&plane, s);
                        f.store(&x, ptr, &flat);
                    }
                });
            });
        });
    }

    /// Emits the kernel of node `id` as function `name`.
    fn kernel(&mut self, id: ir::NodeId, name: &str) -> Result<(), Error> {
        let graph = self.graph;
        let node = graph.node(id);
        let operands = graph.operands(id);
        let out = Value { node: id, port: 0 };
        let mut f = Function::new();
        match &node.op {
            Op::Conv(conv) => self.conv(&mut f, conv, operands[0], out, node),
            Op::Linear { .. } => self.linear(&mut f, operands[0], out, node),
            Op::BatchNorm { eps } => {
                let p = |s: &str| self.weights.param(node, s).data.clone();
                let (g, b, m, v) = (p("weight"), p("bias"), p("running_mean"), p("running_var"));
                let scale: Vec<f32> = (0..g.len())
                    .map(|i| (f64::from(g[i]) / (f64::from(v[i]) + f64::from(eps.0)).sqrt()) as f32)
                    .collect();
                let shift: Vec<f32> = (0..g.len()).map(|i| b[i] - m[i] * scale[i]).collect();
                let (so, ho) = (self.push(&scale), self.push(&shift));
                self.map(&mut f, operands[0], out, |f, x, ch| {
                    let si = f.int("add", ch, so);
                    let hi = f.int("add", ch, ho);
                    let s = f.load("%w", &si);
                    let h = f.load("%w", &hi);
                    f.fma(x, &s, &h)
                });
            }
            Op::Relu => self.map(&mut f, operands[0], out, |f, x, _| {
                f.let_("r", format!("call float @llvm.maxnum.f32(float {x}, float 0.0)"))
            }),
            Op::Relu6 => self.map(&mut f, operands[0], out, |f, x, _| {
                let r = f.let_("r", format!("call float @llvm.maxnum.f32(float {x}, float 0.0)"));
                f.let_("r", format!("call float @llvm.minnum.f32(float {r}, float 6.0)"))
            }),
            Op::Hardswish => self.map(&mut f, operands[0], out, |f, x, _| {
                let p = f.let_("h", format!("fadd float {x}, 3.0"));
                let r = f.let_("h", format!("call float @llvm.maxnum.f32(float {p}, float 0.0)"));
                let c = f.let_("h", format!("call float @llvm.minnum.f32(float {r}, float 6.0)"));
                let m = f.let_("h", format!("fmul float {x}, {c}"));
                f.let_("h", format!("fdiv float {m}, 6.0"))
            }),
            Op::Sigmoid => self.map(&mut f, operands[0], out, |f, x, _| {
                let neg = f.let_("s", format!("fneg float {x}"));
                let e = f.let_("s", format!("call float @llvm.exp.f32(float {neg})"));
                let d = f.let_("s", format!("fadd float {e}, 1.0"));
                f.let_("s", format!("fdiv float 1.0, {d}"))
            }),
            Op::Add | Op::Mul => self.binary(&mut f, &node.op, operands[0], operands[1], out),
            Op::Concat => {
                let mut start = 0;
                for &v in &operands {
                    let c = self.graph.shape(v).channels();
                    let map: Vec<usize> = (0..c).collect();
                    self.copy_channels(&mut f, v, out, &map, start);
                    start += c;
                }
            }
            Op::Split { sizes } => {
                let mut start = 0;
                for (port, &s) in sizes.iter().enumerate() {
                    let map: Vec<usize> = (start..start + s).collect();
                    self.copy_channels(&mut f, operands[0], Value { node: id, port }, &map, 0);
                    start += s;
                }
            }
            Op::Gather { channels } => self.copy_channels(&mut f, operands[0], out, channels, 0),
            Op::ChannelShuffle { groups } => {
                let c = self.graph.shape(out).channels();
                let map: Vec<usize> = (0..c).map(|o| (o % groups) * (c / groups) + o / groups).collect();
                self.copy_channels(&mut f, operands[0], out, &map, 0);
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                self.pool(&mut f, p, matches!(node.op, Op::MaxPool(_)), operands[0], out)
            }
            Op::GlobalAvgPool => {
                let (c, inner) = planes(self.graph.shape(operands[0]));
                f.count(self.graph.shape(out).batch(), |f, n| {
                    f.count(c, |f, ch| {
                        let src = self.plane(f, operands[0], ch, n);
                        let acc = f.accumulator("0.0");
                        f.count(inner, |f, s| {
                            let x = f.load(&src, s);
                            let a = f.let_("a", format!("load float, ptr {acc}"));
                            let sum = f.let_("a", format!("fadd float {a}, {x}"));
                            f.line(format!("store float {sum}, ptr {acc}"));
                        });
                        let a = f.let_("a", format!("load float, ptr {acc}"));
                        let mean = f.let_("a", format!("fdiv float {a}, {}", float(inner as f32)));
                        let dst = self.plane(f, out, ch, n);
                        f.store(&mean, &dst, "0");
                    });
                });
            }
            Op::Flatten | Op::Reshape { .. } => {
                let n = self.graph.shape(out).item_numel();
                self.remap(&mut f, operands[0], out, &(0..n).collect::<Vec<_>>());
            }
            Op::Transpose { perm } => {
                // One batch item's worth: the batch axis never moves.
                let mut item = self.graph.shape(operands[0]).dims().to_vec();
                item[0] = 1;
                let index = ir::eval::transpose_sources(&item, perm);
                self.remap(&mut f, operands[0], out, &index);
            }
            Op::Softmax => self.softmax(&mut f, operands[0], out),
            Op::Input => unreachable!("inputs are copied in by the entry point"),
        }
        self.kernels
            .push_str(&f.finish(&format!("define internal void {name}(ptr noalias %arena, ptr noalias %w)")));
        self.kernels.push('\n');
        Ok(())
    }

    /// `out[n, c, s] = f(x[n, c, s], c)` over every element.
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

    /// Copies planes: output channel `first + k` is input channel `map[k]`.
    fn copy_channels(&mut self, f: &mut Function, x: Value, out: Value, map: &[usize], first: usize) {
        let shape = self.graph.shape(x).clone();
        let (_, inner) = planes(&shape);
        let table = format!("@{}_map{}", self.symbol, self.globals.len());
        let items: Vec<String> = map.iter().map(|m| format!("i64 {m}")).collect();
        writeln!(self.globals, "{table} = internal constant [{} x i64] [{}]", map.len(), items.join(", "))
            .expect("writing to a String");
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
        let table = format!("@{}_idx{}", self.symbol, self.globals.len());
        let items: Vec<String> = index.iter().map(|m| format!("i64 {m}")).collect();
        writeln!(self.globals, "{table} = internal constant [{} x i64] [{}]", index.len(), items.join(", "))
            .expect("writing to a String");
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

    fn conv(&mut self, f: &mut Function, conv: &ir::Conv, x: Value, out: Value, node: &ir::Node) {
        let w = self.push(&self.weights.param(node, "weight").data.clone());
        let bias = conv.bias.then(|| self.push(&self.weights.param(node, "bias").data.clone()));
        let xs = self.graph.shape(x).dims().to_vec();
        let ys = self.graph.shape(out).dims().to_vec();
        let (h, wd, oh, ow) = (xs[2] as i64, xs[3] as i64, ys[2], ys[3]);
        let (cin_g, cout_g) = (xs[1] / conv.groups, conv.out_channels / conv.groups);
        let [kh, kw] = conv.kernel;
        f.count(ys[0], |f, n| {
            f.count(conv.out_channels, |f, co| {
                let dst = self.plane(f, out, co, n);
                let g = f.int("udiv", co, cout_g);
                let first_in = f.int("mul", &g, cin_g);
                f.count(oh, |f, oy| {
                    f.count(ow, |f, ox| {
                        let init = match bias {
                            Some(b) => {
                                let bi = f.int("add", co, b);
                                f.load("%w", &bi)
                            }
                            None => "0.0".to_string(),
                        };
                        let acc = f.accumulator(&init);
                        f.count(cin_g, |f, cig| {
                            let cin = f.int("add", &first_in, cig);
                            let src = self.plane(f, x, &cin, n);
                            let wrow = f.int("mul", co, cin_g);
                            let wrow = f.int("add", &wrow, cig);
                            f.count(kh, |f, ky| {
                                let iy = f.int("mul", oy, conv.stride[0]);
                                let dy = f.int("mul", ky, conv.dilation[0]);
                                let iy = f.int("add", &iy, &dy);
                                let iy = f.int("sub", &iy, conv.padding[0]);
                                let lo = f.let_("ok", format!("icmp sge i64 {iy}, 0"));
                                let hi = f.let_("ok", format!("icmp slt i64 {iy}, {h}"));
                                let ok = f.let_("ok", format!("and i1 {lo}, {hi}"));
                                f.when(&ok, |f| {
                                    f.count(kw, |f, kx| {
                                        let ix = f.int("mul", ox, conv.stride[1]);
                                        let dx = f.int("mul", kx, conv.dilation[1]);
                                        let ix = f.int("add", &ix, &dx);
                                        let ix = f.int("sub", &ix, conv.padding[1]);
                                        let lo = f.let_("ok", format!("icmp sge i64 {ix}, 0"));
                                        let hi = f.let_("ok", format!("icmp slt i64 {ix}, {wd}"));
                                        let ok = f.let_("ok", format!("and i1 {lo}, {hi}"));
                                        f.when(&ok, |f| {
                                            let row = f.int("mul", &iy, wd);
                                            let at = f.int("add", &row, &ix);
                                            let xv = f.load(&src, &at);
                                            let wi = f.int("mul", &wrow, kh);
                                            let wi = f.int("add", &wi, ky);
                                            let wi = f.int("mul", &wi, kw);
                                            let wi = f.int("add", &wi, kx);
                                            let wi = f.int("add", &wi, w);
                                            let wv = f.load("%w", &wi);
                                            let a = f.let_("a", format!("load float, ptr {acc}"));
                                            let s = f.fma(&xv, &wv, &a);
                                            f.line(format!("store float {s}, ptr {acc}"));
                                        });
                                    });
                                });
                            });
                        });
                        let a = f.let_("a", format!("load float, ptr {acc}"));
                        let row = f.int("mul", oy, ow);
                        let at = f.int("add", &row, ox);
                        f.store(&a, &dst, &at);
                    });
                });
            });
        });
    }

    fn linear(&mut self, f: &mut Function, x: Value, out: Value, node: &ir::Node) {
        let Op::Linear { out_features, bias } = node.op else { unreachable!("a linear layer") };
        let w = self.push(&self.weights.param(node, "weight").data.clone());
        let b = bias.then(|| self.push(&self.weights.param(node, "bias").data.clone()));
        let (c, inner) = planes(self.graph.shape(x));
        let features = c * inner;
        f.count(self.graph.shape(out).batch(), |f, n| {
            f.count(out_features, |f, o| {
                let init = match b {
                    Some(b) => {
                        let bi = f.int("add", o, b);
                        f.load("%w", &bi)
                    }
                    None => "0.0".to_string(),
                };
                let acc = f.accumulator(&init);
                let wrow = f.int("mul", o, features);
                let wrow = f.int("add", &wrow, w);
                f.count(c, |f, ch| {
                    let src = self.plane(f, x, ch, n);
                    let wc = f.int("mul", ch, inner);
                    let wc = f.int("add", &wc, &wrow);
                    f.count(inner, |f, s| {
                        let xv = f.load(&src, s);
                        let wi = f.int("add", &wc, s);
                        let wv = f.load("%w", &wi);
                        let a = f.let_("a", format!("load float, ptr {acc}"));
                        let r = f.fma(&xv, &wv, &a);
                        f.line(format!("store float {r}, ptr {acc}"));
                    });
                });
                let a = f.let_("a", format!("load float, ptr {acc}"));
                let dst = self.plane(f, out, o, n);
                f.store(&a, &dst, "0");
            });
        });
    }

    fn pool(&mut self, f: &mut Function, p: &ir::Pool, max: bool, x: Value, out: Value) {
        let xs = self.graph.shape(x).dims().to_vec();
        let ys = self.graph.shape(out).dims().to_vec();
        let (h, wd) = (xs[2] as i64, xs[3] as i64);
        let [kh, kw] = p.kernel;
        f.count(ys[0], |f, n| {
            f.count(ys[1], |f, ch| {
                let src = self.plane(f, x, ch, n);
                let dst = self.plane(f, out, ch, n);
                f.count(ys[2], |f, oy| {
                    f.count(ys[3], |f, ox| {
                        let acc = f.accumulator(if max { "0xFFF0000000000000" } else { "0.0" });
                        f.count(kh, |f, ky| {
                            f.count(kw, |f, kx| {
                                let iy = f.int("mul", oy, p.stride[0]);
                                let iy = f.int("add", &iy, ky);
                                let iy = f.int("sub", &iy, p.padding[0]);
                                let ix = f.int("mul", ox, p.stride[1]);
                                let ix = f.int("add", &ix, kx);
                                let ix = f.int("sub", &ix, p.padding[1]);
                                let c1 = f.let_("ok", format!("icmp sge i64 {iy}, 0"));
                                let c2 = f.let_("ok", format!("icmp slt i64 {iy}, {h}"));
                                let c3 = f.let_("ok", format!("icmp sge i64 {ix}, 0"));
                                let c4 = f.let_("ok", format!("icmp slt i64 {ix}, {wd}"));
                                let a = f.let_("ok", format!("and i1 {c1}, {c2}"));
                                let b = f.let_("ok", format!("and i1 {c3}, {c4}"));
                                let ok = f.let_("ok", format!("and i1 {a}, {b}"));
                                f.when(&ok, |f| {
                                    let row = f.int("mul", &iy, wd);
                                    let at = f.int("add", &row, &ix);
                                    let v = f.load(&src, &at);
                                    let cur = f.let_("a", format!("load float, ptr {acc}"));
                                    let next = if max {
                                        f.let_(
                                            "a",
                                            format!("call float @llvm.maxnum.f32(float {cur}, float {v})"),
                                        )
                                    } else {
                                        f.let_("a", format!("fadd float {cur}, {v}"))
                                    };
                                    f.line(format!("store float {next}, ptr {acc}"));
                                });
                            });
                        });
                        let a = f.let_("a", format!("load float, ptr {acc}"));
                        let r = if max {
                            a
                        } else {
                            f.let_("a", format!("fdiv float {a}, {}", float((kh * kw) as f32)))
                        };
                        let row = f.int("mul", oy, ys[3]);
                        let at = f.int("add", &row, ox);
                        f.store(&r, &dst, &at);
                    });
                });
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
