//! The GPU kernels: one thread per output element for convolutions in general (depthwise
//! ones included: neighbouring threads read neighbouring pixels, so loads coalesce), pools,
//! linear layers and the light ops; 1x1 convolutions as GEMMs tiled through shared memory.
//! Element bodies, epilogues and channel maps are the CPU kernels' own.

use ir::{Activation, NodeId, Op, Value};

use super::grid::Grid;
use super::{Kernels, THREADS};
use crate::Error;
use crate::emit::{Function, Ty, float};
use crate::epilogue::{self, Chain, emit_activation};
use crate::kernels::elementwise::{batch_norm, channel_copies, element_sources};
use crate::kernels::geometry::Window;
use crate::lower::{Lowering, StepInfo, planes};

/// GEMM reduction step: floats of `k` per shared-memory tile.
const TILE_K: usize = 16;

/// A block's GEMM tile: `size` output channels by `size` pixels, each thread computing `sub x
/// sub` of them, strided by `THREADS / (size / sub)`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct GemmTile {
    size: usize,
    sub: usize,
}

/// The tiles a GEMM may take, largest (most reuse of what each block loads) first.
const GEMM_TILES: [GemmTile; 3] =
    [GemmTile { size: 64, sub: 4 }, GemmTile { size: 32, sub: 2 }, GemmTile { size: 16, sub: 1 }];

/// Blocks a GEMM should launch to fill the GPU: about one per SM (132 on an H100 or H200). A
/// batch-1 7x7 plane gives 32 blocks of 64x64 even for 2048 channels. Measured on an H200
/// against 264: the same at batch 1, and 8% faster at batch 64 on ShuffleNet V2 0.5x and
/// 1.0x, whose 7x7 stages give 128 blocks of 64x64.
const ENOUGH_BLOCKS: usize = 128;

/// The largest tile that gives `blocks(tile)` at least [`ENOUGH_BLOCKS`], else the smallest.
fn gemm_tile(blocks: impl Fn(GemmTile) -> usize) -> GemmTile {
    GEMM_TILES.into_iter().find(|&t| blocks(t) >= ENOUGH_BLOCKS).unwrap_or(GEMM_TILES[2])
}

impl Kernels<'_> {
    /// The kernel(s) of node `id` and its fused epilogues `chain`.
    pub(super) fn node(&mut self, info: StepInfo, id: NodeId, chain: &Chain) -> Result<(), Error> {
        let graph = self.l.graph;
        let node = graph.node(id);
        let operands = graph.operands(id);
        let out = Value { node: id, port: 0 };
        if let Some(activation) = Activation::of(&node.op) {
            self.map(info, operands[0], out, move |_, f, x, _| emit_activation(activation, f, Ty::Scalar, x));
            return Ok(());
        }
        match &node.op {
            Op::Conv(conv) if crate::kernels::gemm::pointwise(conv) => self.pointwise(info, id, chain),
            Op::Conv(_) => self.conv(info, id, chain),
            Op::Linear { .. } => self.linear(info, id, chain),
            Op::MaxPool(_) | Op::AvgPool(_) => self.pool(info, id),
            Op::GlobalAvgPool => {
                let x = operands[0];
                let shape = graph.shape(x);
                self.each(info, &[shape.batch(), shape.channels()], |l, f, i| {
                    l.mean_plane(f, x, out, &i[1], &i[0])
                });
            }
            Op::Softmax => {
                let x = operands[0];
                self.each(info, &[graph.shape(x).batch()], |l, f, i| l.softmax_item(f, x, out, &i[0]));
            }
            Op::BatchNorm { eps } => {
                let params = self.l.batch_norm_params(node);
                let eps = eps.0;
                self.map(info, operands[0], out, move |_, f, x, ch| batch_norm(f, x, ch, params, eps));
            }
            Op::Add | Op::Mul => {
                let (a, b) = (operands[0], operands[1]);
                let broadcast = graph.shape(b) != graph.shape(a);
                let instr = if node.op == Op::Add { "fadd" } else { "fmul" };
                let shape = graph.shape(a);
                let (c, inner) = planes(shape);
                self.each(info, &[shape.batch(), c, inner], |l, f, i| {
                    let (pa, pb, dst) = (
                        l.plane(f, a, &i[1], &i[0]),
                        l.plane(f, b, &i[1], &i[0]),
                        l.plane(f, out, &i[1], &i[0]),
                    );
                    let x = f.load(&pa, &i[2]);
                    let y = f.load(&pb, if broadcast { "0" } else { &i[2] });
                    let r = f.let_("r", format!("{instr} float {x}, {y}"));
                    f.store(&r, &dst, &i[2]);
                });
            }
            Op::Concat | Op::Split { .. } | Op::Gather { .. } | Op::ChannelShuffle { .. } => {
                for copy in channel_copies(graph, id) {
                    self.writes = Some(copy.to);
                    let inner = planes(graph.shape(copy.from)).1;
                    let table = self.l.index_table(&copy.map);
                    let count = copy.map.len();
                    let dims = [graph.shape(copy.to).batch(), count, inner];
                    self.each(info.clone(), &dims, |l, f, i| {
                        let from = f.let_(
                            "pm",
                            format!(
                                "getelementptr inbounds [{count} x i64], ptr {table}, i64 0, i64 {}",
                                i[1]
                            ),
                        );
                        let from = f.let_("sc", format!("load i64, ptr {from}"));
                        let to = f.int("add", &i[1], copy.first);
                        let src = l.plane(f, copy.from, &from, &i[0]);
                        let dst = l.plane(f, copy.to, &to, &i[0]);
                        let v = f.load(&src, &i[2]);
                        f.store(&v, &dst, &i[2]);
                    });
                }
            }
            Op::Flatten | Op::Reshape { .. } | Op::Transpose { .. } => {
                let x = operands[0];
                let index = element_sources(graph, id);
                let (inner_in, inner_out) = (planes(graph.shape(x)).1, planes(graph.shape(out)).1);
                let table = self.l.index_table(&index);
                let len = index.len();
                self.each(info, &[graph.shape(out).batch(), len], |l, f, i| {
                    let at = f.let_(
                        "pi",
                        format!("getelementptr inbounds [{len} x i64], ptr {table}, i64 0, i64 {}", i[1]),
                    );
                    let j = f.let_("j", format!("load i64, ptr {at}"));
                    let (cin, sin) = (f.int("udiv", &j, inner_in), f.int("urem", &j, inner_in));
                    let (cout, sout) = (f.int("udiv", &i[1], inner_out), f.int("urem", &i[1], inner_out));
                    let src = l.plane(f, x, &cin, &i[0]);
                    let dst = l.plane(f, out, &cout, &i[0]);
                    let v = f.load(&src, &sin);
                    f.store(&v, &dst, &sout);
                });
            }
            op => return Err(Error::Unsupported(format!("{} on a GPU", op.name()))),
        }
        Ok(())
    }

    /// `out[n, c, s] = op(l, f, x[n, c, s], c)` over every element.
    fn map(
        &mut self,
        info: StepInfo,
        x: Value,
        out: Value,
        op: impl FnOnce(&mut Lowering<'_>, &mut Function, &str, &str) -> String,
    ) {
        let shape = self.l.graph.shape(x);
        let (c, inner) = planes(shape);
        self.each(info, &[shape.batch(), c, inner], |l, f, i| {
            let src = l.plane(f, x, &i[1], &i[0]);
            let v = f.load(&src, &i[2]);
            let y = op(l, f, &v, &i[1]);
            let dst = l.plane(f, out, &i[1], &i[0]);
            f.store(&y, &dst, &i[2]);
        });
    }

    /// Any convolution, one thread per output element, with its epilogues.
    fn conv(&mut self, info: StepInfo, id: NodeId, chain: &Chain) {
        let graph = self.l.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let weights = self.l.push(&self.l.param(node, "weight"));
        let bias = self.bias(node, conv.bias, conv.out_channels);
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let cin = graph.shape(x).channels();
        let [n, cout, oh, ow] = graph.shape(out).dims()[..] else { unreachable!("conv output is NCHW") };
        let (group_in, group_out) = (cin / conv.groups, cout / conv.groups);
        let [kh, kw] = conv.kernel;
        let window = Window::of(&node.op, graph.shape(x).dims(), graph.shape(out).dims());
        let chain = chain.clone();
        self.each(info, &[n, cout, oh, ow], |l, f, i| {
            let (item, co, oy, ox) = (&i[0], &i[1], &i[2], &i[3]);
            let acc = bias_accumulator(f, bias, co);
            let group = f.int("udiv", co, group_out);
            let first_in = f.int("mul", &group, group_in);
            let row = f.int("mul", co, group_in);
            f.count(group_in, |f, ci| {
                let c = f.int("add", &first_in, ci);
                let src = l.plane(f, x, &c, item);
                let taps = f.int("add", &row, ci);
                let taps = f.int("mul", &taps, kh * kw);
                let taps = f.int("add", &taps, weights);
                window_taps(f, [oy, ox], window, |f, ky, kx, pixel| {
                    let v = f.load(&src, pixel);
                    let tap = f.int("mul", ky, kw);
                    let tap = f.int("add", &tap, kx);
                    let tap = f.int("add", &tap, &taps);
                    let wv = f.load("%w", &tap);
                    f.fma_into(Ty::Scalar, &acc, &v, &wv);
                });
            });
            let pixel = f.int("mul", oy, ow);
            let pixel = f.int("add", &pixel, ox);
            finish_output(l, f, &chain, &acc, out, co, item, &pixel);
        });
    }

    /// A 1x1 convolution (any groups) as a GEMM per batch item and group, `out[m, p] = sum_k
    /// w[m, k] x[k, p]`, tiled per block through shared memory: 64x64 tiles, or smaller
    /// where those would leave SMs idle ([`gemm_tile`]).
    fn pointwise(&mut self, info: StepInfo, id: NodeId, chain: &Chain) {
        let graph = self.l.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let [batch, cout, oh, ow] = graph.shape(out).dims()[..] else { unreachable!("conv output is NCHW") };
        let groups = conv.groups;
        let (k_len, m_len, p_len) = (graph.shape(x).channels() / groups, cout / groups, oh * ow);
        // Weights as [group][k][m], so that neighbouring threads load neighbouring floats.
        let natural = self.l.param(node, "weight");
        let mut packed = vec![0.0; natural.len()];
        for g in 0..groups {
            for m in 0..m_len {
                for k in 0..k_len {
                    packed[(g * k_len + k) * m_len + m] = natural[(g * m_len + m) * k_len + k];
                }
            }
        }
        let weights = self.l.push(&packed);
        let bias = self.bias(node, conv.bias, cout);
        let tile = gemm_tile(|t| batch * groups * m_len.div_ceil(t.size) * p_len.div_ceil(t.size));
        let GemmTile { size, sub } = tile;
        let (m_tiles, p_tiles) = (m_len.div_ceil(size), p_len.div_ceil(size));
        let grid = Grid {
            blocks: batch * groups * m_tiles * p_tiles,
            threads: THREADS,
            shared_floats: TILE_K * 2 * size,
        };
        let chain = chain.clone();
        let columns = size / sub;
        self.launch(info, grid, |l, b| {
            let f = &mut *b.f;
            let p_tile = f.int("urem", &b.id, p_tiles);
            let rest = f.int("udiv", &b.id, p_tiles);
            let m_tile = f.int("urem", &rest, m_tiles);
            let rest = f.int("udiv", &rest, m_tiles);
            let group = f.int("urem", &rest, groups);
            let item = f.int("udiv", &rest, groups);
            let m0 = f.int("mul", &m_tile, size);
            let p0 = f.int("mul", &p_tile, size);
            let k_first = f.int("mul", &group, k_len);
            let m_first = f.int("mul", &group, m_len);
            let a_tile = b.shared.clone();
            let b_tile = b.f.float_at(&a_tile, &(TILE_K * size).to_string());
            let acc = b.private(sub * sub);
            b.threads(|f, t| {
                f.count(sub * sub, |f, i| {
                    let slot = acc.at(f, t, i);
                    f.store("0.0", &slot, "0");
                })
            });
            b.repeat(k_len.div_ceil(TILE_K), |b, kt| {
                let k0 = b.f.int("mul", kt, TILE_K);
                b.threads(|f, t| {
                    // Each thread loads (TILE_K * size) / THREADS floats of each tile; the
                    // element index `e` is the row-major position in the tile.
                    f.count(TILE_K * size / THREADS, |f, r| {
                        let e = f.int("mul", r, THREADS);
                        let e = f.int("add", &e, t);
                        let kk = f.int("udiv", &e, size);
                        let k = f.int("add", &k0, &kk);
                        let col = f.int("urem", &e, size);
                        let m = f.int("add", &m0, &col);
                        f.store("0.0", &a_tile, &e);
                        let valid = both_below(f, &k, k_len, &m, m_len);
                        f.when(&valid, |f| {
                            let at = f.int("add", &k_first, &k);
                            let at = f.int("mul", &at, m_len);
                            let at = f.int("add", &at, &m);
                            let at = f.int("add", &at, weights);
                            let v = f.load("%w", &at);
                            f.store(&v, &a_tile, &e);
                        });
                        let p = f.int("add", &p0, &col);
                        f.store("0.0", &b_tile, &e);
                        let valid = both_below(f, &k, k_len, &p, p_len);
                        f.when(&valid, |f| {
                            let c = f.int("add", &k_first, &k);
                            let src = l.plane(f, x, &c, &item);
                            let v = f.load(&src, &p);
                            f.store(&v, &b_tile, &e);
                        });
                    });
                });
                b.threads(|f, t| {
                    let (row, column) = (f.int("udiv", t, columns), f.int("urem", t, columns));
                    f.count(TILE_K, |f, kk| {
                        let a_row = f.int("mul", kk, size);
                        let a_row = f.int("add", &a_row, &row);
                        let b_row = f.int("mul", kk, size);
                        let b_row = f.int("add", &b_row, &column);
                        f.count(sub, |f, i| {
                            let at = f.int("mul", i, THREADS / columns);
                            let at = f.int("add", &at, &a_row);
                            let a = f.load(&a_tile, &at);
                            f.count(sub, |f, j| {
                                let at = f.int("mul", j, columns);
                                let at = f.int("add", &at, &b_row);
                                let bv = f.load(&b_tile, &at);
                                let slot = f.int("mul", i, sub);
                                let slot = f.int("add", &slot, j);
                                let slot = acc.at(f, t, &slot);
                                f.fma_into(Ty::Scalar, &slot, &a, &bv);
                            });
                        });
                    });
                });
            });
            b.threads(|f, t| {
                let (row, column) = (f.int("udiv", t, columns), f.int("urem", t, columns));
                f.count(sub, |f, i| {
                    let m = f.int("mul", i, THREADS / columns);
                    let m = f.int("add", &m, &row);
                    let m = f.int("add", &m, &m0);
                    f.count(sub, |f, j| {
                        let p = f.int("mul", j, columns);
                        let p = f.int("add", &p, &column);
                        let p = f.int("add", &p, &p0);
                        let valid = both_below(f, &m, m_len, &p, p_len);
                        f.when(&valid, |f| {
                            let slot = f.int("mul", i, sub);
                            let slot = f.int("add", &slot, j);
                            let slot = acc.at(f, t, &slot);
                            let co = f.int("add", &m_first, &m);
                            let acc = bias_accumulator(f, bias, &co);
                            let sum = f.let_("s", format!("load float, ptr {slot}"));
                            f.add_to(&acc, &sum);
                            finish_output(l, f, &chain, &acc, out, &co, &item, &p);
                        });
                    });
                });
            });
        });
    }

    /// A fully connected layer, one thread per output feature, weights transposed so that
    /// neighbouring threads read neighbouring floats.
    fn linear(&mut self, info: StepInfo, id: NodeId, chain: &Chain) {
        let graph = self.l.graph;
        let node = graph.node(id);
        let Op::Linear { out_features, bias } = node.op else { unreachable!("a linear layer") };
        let x = graph.operands(id)[0];
        let (channels, inner) = planes(graph.shape(x));
        let features = channels * inner;
        let natural = self.l.param(node, "weight");
        let transposed: Vec<f32> = (0..features * out_features)
            .map(|i| natural[(i % out_features) * features + i / out_features])
            .collect();
        let weights = self.l.push(&transposed);
        let bias = self.bias(node, bias, out_features);
        let out = chain.output(id);
        let chain = chain.clone();
        self.each(info, &[graph.shape(out).batch(), out_features], |l, f, i| {
            let (item, o) = (&i[0], &i[1]);
            let acc = bias_accumulator(f, bias, o);
            f.count(channels, |f, c| {
                let src = l.plane(f, x, c, item);
                let k0 = f.int("mul", c, inner);
                f.count(inner, |f, s| {
                    let v = f.load(&src, s);
                    let k = f.int("add", &k0, s);
                    let at = f.int("mul", &k, out_features);
                    let at = f.int("add", &at, o);
                    let at = f.int("add", &at, weights);
                    let wv = f.load("%w", &at);
                    f.fma_into(Ty::Scalar, &acc, &v, &wv);
                });
            });
            finish_output(l, f, &chain, &acc, out, o, item, "0");
        });
    }

    /// Max or average pooling (PyTorch's padding rules), one thread per output element.
    fn pool(&mut self, info: StepInfo, id: NodeId) {
        let graph = self.l.graph;
        let (pool, max) = match &graph.node(id).op {
            Op::MaxPool(p) => (p.clone(), true),
            Op::AvgPool(p) => (p.clone(), false),
            _ => unreachable!("a pool"),
        };
        let x = graph.operands(id)[0];
        let out = Value { node: id, port: 0 };
        let [n, c, oh, ow] = graph.shape(out).dims()[..] else { unreachable!("pool output is NCHW") };
        let window = Window::of(&graph.node(id).op, graph.shape(x).dims(), graph.shape(out).dims());
        self.each(info, &[n, c, oh, ow], |l, f, i| {
            let (item, ch, oy, ox) = (&i[0], &i[1], &i[2], &i[3]);
            let acc = f.accumulator(if max { "0xFFF0000000000000" } else { "0.0" });
            let src = l.plane(f, x, ch, item);
            window_taps(f, [oy, ox], window, |f, _, _, pixel| {
                let v = f.load(&src, pixel);
                let a = f.read(&acc);
                let r = if max {
                    f.let_("m", format!("call float @llvm.maxnum.f32(float {a}, float {v})"))
                } else {
                    f.let_("s", format!("fadd float {a}, {v}"))
                };
                f.line(format!("store float {r}, ptr {acc}"));
            });
            let mut y = f.read(&acc);
            if !max {
                let area = (pool.kernel[0] * pool.kernel[1]) as f32;
                y = f.let_("avg", format!("fdiv float {y}, {}", float(area)));
            }
            let dst = l.plane(f, out, ch, item);
            let pixel = f.int("mul", oy, ow);
            let pixel = f.int("add", &pixel, ox);
            f.store(&y, &dst, &pixel);
        });
    }

    /// Pushes a layer's bias (zeros without one) and returns its blob offset.
    fn bias(&mut self, node: &ir::Node, has_bias: bool, len: usize) -> usize {
        let bias = if has_bias { self.l.param(node, "bias") } else { vec![0.0; len] };
        self.l.push(&bias)
    }
}

/// Emits `body(f, ky, kx, pixel)` for each tap `(ky, kx)` of output `(oy, ox)`'s window that
/// lies inside the input, `pixel` being the tap's flat index in the input plane.
fn window_taps(
    f: &mut Function,
    [oy, ox]: [&str; 2],
    window: Window,
    body: impl Fn(&mut Function, &str, &str, &str),
) {
    let Window { kernel, stride, padding, dilation, input: [h, w], .. } = window;
    let y0 = f.int("mul", oy, stride[0]);
    let y0 = f.int("sub", &y0, padding[0]);
    let x0 = f.int("mul", ox, stride[1]);
    let x0 = f.int("sub", &x0, padding[1]);
    f.count(kernel[0], |f, ky| {
        let dy = f.int("mul", ky, dilation[0]);
        let iy = f.int("add", &y0, &dy);
        f.count(kernel[1], |f, kx| {
            let dx = f.int("mul", kx, dilation[1]);
            let ix = f.int("add", &x0, &dx);
            let inside = f.inside(&iy, h as isize, &ix, w as isize);
            f.when(&inside, |f| {
                let pixel = f.int("mul", &iy, w);
                let pixel = f.int("add", &pixel, &ix);
                body(f, ky, kx, &pixel);
            });
        });
    });
}

/// An accumulator initialized to `bias[channel]`.
fn bias_accumulator(f: &mut Function, bias: usize, channel: &str) -> String {
    let at = f.int("add", channel, bias);
    let b = f.load("%w", &at);
    f.accumulator(&b)
}

/// `a < a_len && b < b_len` for unsigned `i64`s.
fn both_below(f: &mut Function, a: &str, a_len: usize, b: &str, b_len: usize) -> String {
    let a_in = f.let_("in", format!("icmp ult i64 {a}, {a_len}"));
    let b_in = f.let_("in", format!("icmp ult i64 {b}, {b_len}"));
    f.let_("in", format!("and i1 {a_in}, {b_in}"))
}

/// Applies `chain`'s epilogues to the accumulator `acc` and stores the result at element
/// `pixel` of channel `channel` of batch item `item` of `out`.
#[allow(clippy::too_many_arguments)]
fn finish_output(
    l: &mut Lowering<'_>,
    f: &mut Function,
    chain: &Chain,
    acc: &str,
    out: Value,
    channel: &str,
    item: &str,
    pixel: &str,
) {
    let y = f.read(acc);
    let residual = chain.residual.map(|r| l.plane(f, r, channel, item));
    let y = epilogue::emit(&chain.steps, f, Ty::Scalar, &y, &mut |f| {
        f.load(residual.as_deref().expect("a residual plane"), pixel)
    });
    let dst = l.plane(f, out, channel, item);
    f.store(&y, &dst, pixel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_tiles_shrink_until_the_gpu_is_filled() {
        let blocks = |batch: usize, m: usize, p: usize| {
            move |t: GemmTile| batch * m.div_ceil(t.size) * p.div_ceil(t.size)
        };
        // ShuffleNet V2 2.0x's last 1x1 conv (2048 channels on 7x7): 32 blocks of 64x64 at
        // batch 1, 128 of 32x32.
        assert_eq!(gemm_tile(blocks(1, 2048, 49)), GemmTile { size: 32, sub: 2 });
        // ShuffleNet V2 1.0x's 7x7 stage (116 channels): 8 blocks of 32x32 at batch 1, 128 of
        // 64x64 at batch 64.
        assert_eq!(gemm_tile(blocks(1, 116, 49)), GemmTile { size: 16, sub: 1 });
        assert_eq!(gemm_tile(blocks(64, 116, 49)), GemmTile { size: 64, sub: 4 });
    }
}
