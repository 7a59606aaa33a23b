//! Convolutions as matrix products: `Y[co, p] = sum_k W[co, k] X[k, p]`, with `X` the input
//! planes themselves for a 1x1 convolution and an im2col copy of one block of pixels for the
//! rest (stem, ResNet). One register-blocked micro-kernel computes every product: a tile of
//! `tile_rows` output channels by `tile_vectors` vectors of pixels stays in registers over the
//! whole reduction, reading weights pre-packed as `[tile][k][tile_rows]` and broadcasting
//! them against vectors of input pixels; bias and fused epilogues are applied before the one
//! store. Tails of pixels use masked loads and stores; tails of channels skip rows.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain, Step};
use crate::lower::{Lowering, planes};

/// Multiply-adds a task should hold: enough to hide the pool's wake-up, small enough to
/// balance two to a few dozen threads.
const TASK_MACS: usize = 1 << 19;

/// Scratch floats an im2col block may use, per thread.
const IM2COL_FLOATS: usize = 1 << 14;

/// Packs the `rows x k` row-major matrix `w` into micro-tiles of `tile_rows` rows:
/// `[tile][k][tile_rows]`, zero-padded.
fn pack(w: &[f32], rows: usize, k: usize, tile_rows: usize) -> Vec<f32> {
    let tiles = rows.div_ceil(tile_rows);
    let mut packed = vec![0.0; tiles * k * tile_rows];
    for r in 0..rows {
        let (tile, within) = (r / tile_rows, r % tile_rows);
        for j in 0..k {
            packed[(tile * k + j) * tile_rows + within] = w[r * k + j];
        }
    }
    packed
}

/// The shapes of one convolution as a product of matrices, per group.
struct Product {
    groups: usize,
    /// Output channels per group.
    m: usize,
    /// Reduction length per group.
    k: usize,
    /// Output pixels.
    p: usize,
    batch: usize,
    /// Offsets of the packed weights and the bias in the blob.
    a: usize,
    bias: usize,
}

impl Lowering<'_> {
    /// Packs the weights and bias of conv `id` into the blob and returns its product's shapes.
    fn product(&mut self, id: NodeId, chain: &Chain) -> Product {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let out = graph.shape(chain.output(id));
        let k = graph.shape(graph.operands(id)[0]).channels() / conv.groups * conv.kernel[0] * conv.kernel[1];
        let m = conv.out_channels / conv.groups;
        let w = self.param(node, "weight");
        let rows = self.isa.tile_rows;
        let packed: Vec<f32> =
            (0..conv.groups).flat_map(|g| pack(&w[g * m * k..(g + 1) * m * k], m, k, rows)).collect();
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; conv.out_channels] };
        let (a, bias) = (self.push(&packed), self.push(&bias));
        Product { groups: conv.groups, m, k, p: planes(out).1, batch: out.batch(), a, bias }
    }

    /// A 1x1 convolution (stride 1, no padding): the input planes are the matrix `X`.
    pub fn pointwise_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let pr = self.product(id, chain);
        let (rows, cols) = (self.isa.tile_rows, self.isa.tile_cols());
        let m_tiles = pr.m.div_ceil(rows);
        let tiles = m_tiles * pr.p.div_ceil(cols);
        let per_task = (TASK_MACS / (rows * cols * pr.k)).clamp(1, tiles);
        let chunks = tiles.div_ceil(per_task);
        let tile = self.tile(&chain.steps);
        let (x, out) = (self.graph.operands(id)[0], chain.output(id));
        self.parallel(f, pr.batch * pr.groups * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let rest = f.int("udiv", "%t", chunks);
            let (group, n) = (f.int("urem", &rest, pr.groups), f.int("udiv", &rest, pr.groups));
            let first_in = f.int("mul", &group, pr.k);
            let inputs = l.plane_array(f, x, &first_in, pr.k, &n);
            let outputs = Outputs::new(l, f, out, chain, &group, &pr, &n);
            let first_tile = f.int("mul", &chunk, per_task);
            f.count(per_task, |f, i| {
                let t = f.int("add", &first_tile, i);
                let valid = f.let_("ok", format!("icmp ult i64 {t}, {tiles}"));
                f.when(&valid, |f| {
                    let (pt, mt) = (f.int("udiv", &t, m_tiles), f.int("urem", &t, m_tiles));
                    let p0 = f.int("mul", &pt, cols);
                    let left = f.int("sub", pr.p, &p0);
                    let p_valid = f.umin(&left, cols);
                    outputs.call(f, &tile, &pr, &mt, &inputs, &p0, &p_valid, &p0);
                });
            });
        });
    }

    /// Any other convolution: each task copies a block of pixels' receptive fields into
    /// scratch rows (im2col) and multiplies them with a range of output-channel tiles.
    pub fn im2col_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let Op::Conv(conv) = &graph.node(id).op else { unreachable!("a convolution") };
        let pr = self.product(id, chain);
        let (rows, cols) = (self.isa.tile_rows, self.isa.tile_cols());
        let x = graph.operands(id)[0];
        let xs = graph.shape(x).dims().to_vec();
        let out = chain.output(id);
        let ow = graph.shape(out).dims()[3];
        let [kh, kw] = conv.kernel;
        let cin = xs[1] / conv.groups;
        let block = cols * (IM2COL_FLOATS / (pr.k * cols)).clamp(1, pr.p.div_ceil(cols));
        let blocks = pr.p.div_ceil(block);
        let m_tiles = pr.m.div_ceil(rows);
        // Few pixel blocks (deep layers): split output channels too, so every thread has work.
        let base = pr.batch * pr.groups * blocks;
        let per_chunk = m_tiles.div_ceil((8usize.div_ceil(base)).min(m_tiles));
        let chunks = m_tiles.div_ceil(per_chunk);
        let tile = self.tile(&chain.steps);
        self.parallel(f, base * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let rest = f.int("udiv", "%t", chunks);
            let b = f.int("urem", &rest, blocks);
            let rest = f.int("udiv", &rest, blocks);
            let (group, n) = (f.int("urem", &rest, pr.groups), f.int("udiv", &rest, pr.groups));
            let scratch = f.let_("scratch", format!("call ptr @archc_scratch(i64 {})", pr.k * block * 4));
            let p_start = f.int("mul", &b, block);
            let left = f.int("sub", pr.p, &p_start);
            let p_count = f.umin(&left, block);
            let first_in = f.int("mul", &group, cin);
            let sources = l.plane_array(f, x, &first_in, cin, &n);
            let inputs = f.pointer_array(pr.k);
            f.count(pr.k, |f, k| {
                let ci = f.int("udiv", k, kh * kw);
                let r = f.int("urem", k, kh * kw);
                let (ky, kx) = (f.int("udiv", &r, kw), f.int("urem", &r, kw));
                let dy = f.int("mul", &ky, conv.dilation[0]);
                let dy = f.int("sub", &dy, conv.padding[0]);
                let dx = f.int("mul", &kx, conv.dilation[1]);
                let dx = f.int("sub", &dx, conv.padding[1]);
                let slot = f.pointer_at(&sources, &ci);
                let src = f.let_("src", format!("load ptr, ptr {slot}"));
                let at = f.int("mul", k, block);
                let dst = f.float_at(&scratch, &at);
                let slot = f.pointer_at(&inputs, k);
                f.line(format!("store ptr {dst}, ptr {slot}"));
                f.count(&p_count, |f, j| {
                    let p = f.int("add", &p_start, j);
                    let (oy, ox) = (f.int("udiv", &p, ow), f.int("urem", &p, ow));
                    let iy = f.int("mul", &oy, conv.stride[0]);
                    let iy = f.int("add", &iy, &dy);
                    let ix = f.int("mul", &ox, conv.stride[1]);
                    let ix = f.int("add", &ix, &dx);
                    let v = load_padded(f, &src, &iy, &ix, xs[2], xs[3], "0.0");
                    f.store(&v, &dst, j);
                });
            });
            let outputs = Outputs::new(l, f, out, chain, &group, &pr, &n);
            let first_m = f.int("mul", &chunk, per_chunk);
            let left = f.int("sub", m_tiles, &first_m);
            let m_count = f.umin(&left, per_chunk);
            let p_tiles = f.ceil_div(&p_count, cols);
            f.count(&p_tiles, |f, pt| {
                let offset = f.int("mul", pt, cols);
                let left = f.int("sub", &p_count, &offset);
                let p_valid = f.umin(&left, cols);
                let p0 = f.int("add", &p_start, &offset);
                f.count(&m_count, |f, i| {
                    let mt = f.int("add", &first_m, i);
                    outputs.call(f, &tile, &pr, &mt, &inputs, &offset, &p_valid, &p0);
                });
            });
        });
    }

    /// The micro-kernel with epilogue `steps`, defined on first use:
    /// `tile(rows, k, in_off, p_valid, a, bias, outs, residuals, out_off, m_valid)` computes
    /// `outs[r][out_off + j] = epilogue(bias[r] + sum_k a[k][r] rows[k][in_off + j])` for
    /// `r < m_valid`, `j < p_valid`.
    fn tile(&mut self, steps: &[Step]) -> String {
        if let Some(name) = self.tiles.get(steps) {
            return name.clone();
        }
        let name = self.global_name("tile");
        let isa = self.isa;
        let (lanes, rows, vectors) = (isa.lanes, isa.tile_rows, isa.tile_vectors);
        let ty = Ty::Vector(lanes);
        let mut f = Function::new();
        let acc: Vec<Vec<String>> =
            (0..rows).map(|_| (0..vectors).map(|_| f.slot(ty, "zeroinitializer")).collect()).collect();
        // Lane j of vector v is valid when v * lanes + j < p_valid.
        let valid = f.let_("pv", "trunc i64 %p_valid to i32");
        let one = f.let_("pv", format!("insertelement <{lanes} x i32> poison, i32 {valid}, i64 0"));
        let bound = f.let_(
            "pv",
            format!(
                "shufflevector <{lanes} x i32> {one}, <{lanes} x i32> poison, <{lanes} x i32> zeroinitializer"
            ),
        );
        let masks: Vec<String> = (0..vectors)
            .map(|v| {
                let lane: Vec<String> = (0..lanes).map(|j| format!("i32 {}", v * lanes + j)).collect();
                f.let_("mask", format!("icmp ult <{lanes} x i32> <{}>, {bound}", lane.join(", ")))
            })
            .collect();
        let full = f.let_("full", format!("icmp eq i64 %p_valid, {}", isa.tile_cols()));
        let partial = f.let_("partial", format!("xor i1 {full}, true"));
        for (condition, masked) in [(&full, false), (&partial, true)] {
            f.when(condition, |f| {
                f.count("%k", |f, k| {
                    let slot = f.pointer_at("%rows", k);
                    let row = f.let_("row", format!("load ptr, ptr {slot}"));
                    let xs: Vec<String> = (0..vectors)
                        .map(|v| {
                            let at = f.int("add", "%in_off", v * lanes);
                            f.load_ty(ty, &row, &at, masked.then_some(masks[v].as_str()))
                        })
                        .collect();
                    let a = f.int("mul", k, rows);
                    for (r, acc_r) in acc.iter().enumerate() {
                        let at = f.int("add", &a, r);
                        let w = f.load("%a", &at);
                        let w = f.splat(&w, lanes);
                        for (x, slot) in xs.iter().zip(acc_r) {
                            let t = ty.name();
                            let sum = f.let_("s", format!("load {t}, ptr {slot}"));
                            let sum = f.let_(
                                "s",
                                format!(
                                    "call {t} @llvm.fmuladd.{}({t} {w}, {t} {x}, {t} {sum})",
                                    ty.suffix()
                                ),
                            );
                            f.line(format!("store {t} {sum}, ptr {slot}"));
                        }
                    }
                });
            });
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let live = f.let_("live", format!("icmp ult i64 {r}, %m_valid"));
            f.when(&live, |f| {
                let slot = f.pointer_at("%outs", &r.to_string());
                let out = f.let_("out", format!("load ptr, ptr {slot}"));
                let residual = steps.contains(&Step::AddResidual).then(|| {
                    let slot = f.pointer_at("%residuals", &r.to_string());
                    f.let_("res", format!("load ptr, ptr {slot}"))
                });
                let b = f.load("%bias", &r.to_string());
                let b = f.splat(&b, lanes);
                for (v, slot) in acc_r.iter().enumerate() {
                    let at = f.int("add", "%out_off", v * lanes);
                    let sum = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                    let y = f.let_("y", format!("fadd {} {sum}, {b}", ty.name()));
                    let mask = Some(masks[v].as_str());
                    let y = epilogue::emit(steps, f, ty, &y, &mut |f| {
                        f.load_ty(ty, residual.as_deref().expect("a residual row"), &at, mask)
                    });
                    f.store_ty(ty, &y, &out, &at, mask);
                }
            });
        }
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %rows, i64 %k, i64 %in_off, i64 %p_valid, ptr noalias %a, \
             ptr noalias %bias, ptr noalias %outs, ptr %residuals, i64 %out_off, i64 %m_valid)"
        )));
        self.tiles.insert(steps.to_vec(), name.clone());
        name
    }
}

/// Where the tiles of one group of a product read their weights and write their results.
struct Outputs {
    outs: String,
    residuals: Option<String>,
    /// Blob offsets of the group's packed weights and bias.
    a: String,
    bias: String,
    rows: usize,
}

impl Outputs {
    fn new(
        l: &mut Lowering<'_>,
        f: &mut Function,
        out: ir::Value,
        chain: &Chain,
        group: &str,
        pr: &Product,
        n: &str,
    ) -> Outputs {
        let rows = l.isa.tile_rows;
        let first = f.int("mul", group, pr.m);
        let outs = l.plane_array(f, out, &first, pr.m, n);
        let residuals = chain.residual.map(|r| l.plane_array(f, r, &first, pr.m, n));
        let a = f.int("mul", group, pr.m.div_ceil(rows) * pr.k * rows);
        let a = f.int("add", &a, pr.a);
        let bias = f.int("add", &first, pr.bias);
        Outputs { outs, residuals, a, bias, rows }
    }

    /// Calls `tile` for output-channel tile `mt`.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        f: &mut Function,
        tile: &str,
        pr: &Product,
        mt: &str,
        inputs: &str,
        in_off: &str,
        p_valid: &str,
        out_off: &str,
    ) {
        let m0 = f.int("mul", mt, self.rows);
        let left = f.int("sub", pr.m, &m0);
        let m_valid = f.umin(&left, self.rows);
        let a = f.int("mul", mt, pr.k * self.rows);
        let a = f.int("add", &a, &self.a);
        let a = f.float_at("%w", &a);
        let bias = f.int("add", &self.bias, &m0);
        let bias = f.float_at("%w", &bias);
        let outs = f.pointer_at(&self.outs, &m0);
        let residuals = match &self.residuals {
            Some(r) => f.pointer_at(r, &m0),
            None => "null".into(),
        };
        f.line(format!(
            "call void {tile}(ptr {inputs}, i64 {}, i64 {in_off}, i64 {p_valid}, ptr {a}, ptr {bias}, ptr {outs}, \
             ptr {residuals}, i64 {out_off}, i64 {m_valid})",
            pr.k
        ));
    }
}

/// Loads `src[iy * width + ix]`, or `pad` outside `0..height` x `0..width`, without branches.
pub(crate) fn load_padded(
    f: &mut Function,
    src: &str,
    iy: &str,
    ix: &str,
    height: usize,
    width: usize,
    pad: &str,
) -> String {
    let c1 = f.let_("in", format!("icmp ult i64 {iy}, {height}"));
    let c2 = f.let_("in", format!("icmp ult i64 {ix}, {width}"));
    let inside = f.let_("in", format!("and i1 {c1}, {c2}"));
    let row = f.int("mul", iy, width);
    let at = f.int("add", &row, ix);
    let safe = f.let_("at", format!("select i1 {inside}, i64 {at}, i64 0"));
    let v = f.load(src, &safe);
    f.let_("v", format!("select i1 {inside}, float {v}, float {pad}"))
}
