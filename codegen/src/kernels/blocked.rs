//! The channel-blocked kernels (see `layout`): 1x1 convolutions as register tiles of channel
//! vectors by pixels, and 3x3 depthwise convolutions a row of channel vectors at a time.
//!
//! A 1x1 tile holds `vectors` blocks of output channels for `pixels` pixels: each step of the
//! reduction loads the tile's weight vectors and broadcasts one input per pixel, from channel
//! planes (consecutive floats) or blocks (a vector apart) alike. 196 pixels are 14 tiles of 14
//! and 49 are 7 of 7, where vectors of pixels leave a 4-pixel or 1-pixel tail on every plane.
//! A depthwise window's taps are whole vectors of 16 channels, loaded aligned, with no
//! permutes and no lanes lost to 14- or 7-wide rows.

use ir::{NodeId, Op, Value};

use crate::emit::{Function, Ty, lane_mask};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::gemm::{pack, prefetch_weights};
use crate::lower::{Lowering, planes, task_count, task_items};

/// Multiply-adds a task of a 1x1 kernel should hold at least.
const TASK_MACS: usize = 1 << 18;

/// Output columns a depthwise kernel computes together: a 14x14 plane's rows whole, a 28x28
/// plane's in two.
const SEGMENT: usize = 14;

/// Window taps a task of a depthwise kernel should hold at least.
const TASK_TAPS: usize = 1 << 16;

/// Pixels of a 1x1 tile. Each weight vector a tile loads serves this many multiply-adds:
/// tiles of 7 pixels (a 7x7 plane in 7 tiles) streamed their weights from L2 at twice the
/// rate of 14 and ran 10-15% slower (MobileNet V2's 7x7 layers, one thread), though 49 pixels
/// make three tiles of 14 and one of 7.
const PIXELS: usize = 14;

/// The tile of a blocked 1x1 convolution with `blocks` blocks of output channels and `p`
/// pixels: `(vectors, pixels)`, [`PIXELS`] pixels (fewer on smaller planes) by as many channel
/// vectors as fit in `registers` with the tile's weight vectors and a broadcast, dividing
/// `blocks` evenly.
fn tile_shape(blocks: usize, p: usize, registers: usize) -> (usize, usize) {
    let pixels = PIXELS.min(p);
    let most = (registers - 1) / (pixels + 1);
    let vectors = (1..=most).rev().find(|v| blocks % v == 0).unwrap_or(1);
    (vectors, pixels)
}

/// What a blocked 1x1 tile function is defined for: its epilogue steps, `vectors` by
/// `pixels`, and whether its input and its output (and residual) are blocked or planes.
pub(crate) type BlockedTileKey = (Vec<Step>, usize, usize, bool, bool);

impl Lowering<'_> {
    /// The bytes from one channel plane of `v` to the next, for a value the blocked kernels
    /// address as one array: a whole buffer of the plan, or the caller's input.
    fn plane_bytes(&self, v: Value) -> usize {
        if self.external_input == Some(v) {
            return planes(self.graph.shape(v)).1 * 4;
        }
        match self.plan.placements[&v] {
            passes::plan::Placement::Whole(b) => self.plan.buffers[b].plane_bytes,
            passes::plan::Placement::Planes(_) => unreachable!("blocked kernels read whole buffers"),
        }
    }

    /// 1x1 convolution `id` with its epilogues `chain`, as channel-blocked tiles: its input
    /// and output (and residual) each blocked or in planes, as `self.blocking` has them.
    pub fn blocked_pointwise(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let lanes = self.isa.lanes;
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let k = graph.shape(x).channels();
        let (m, p) = planes(graph.shape(out));
        let batch = graph.shape(out).batch();
        let (vectors, pixels) = tile_shape(m / lanes, p, self.isa.registers);
        let rows = vectors * lanes;
        let w = self.param(node, "weight");
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; m] };
        let a = self.push(&pack(&w, m, k, rows));
        let bias = self.push(&bias);
        let (x_blocks, out_blocks) = (self.blocking.blocked(x), self.blocking.blocked(out));
        let (x_plane, out_plane) = (self.plane_bytes(x), self.plane_bytes(out));
        if let Some(r) = chain.residual {
            let same = self.blocking.blocked(r) == out_blocks && self.plane_bytes(r) == out_plane;
            assert!(same, "a residual is read where the output is written");
        }
        let in_pixel = if x_blocks { lanes * 4 } else { 4 };
        let out_pixel = if out_blocks { lanes * 4 } else { 4 };
        let tile = |l: &mut Self, pixels| l.blocked_tile((chain.steps.clone(), vectors, pixels, x_blocks, out_blocks));
        let wide = tile(self, pixels);
        let tail = (p % pixels != 0).then(|| tile(self, p % pixels));
        let (m_tiles, p_tiles) = (m / rows, p.div_ceil(pixels));
        let tiles = batch * p_tiles * m_tiles;
        let tasks = task_count(tiles, TASK_MACS / (rows * pixels * k));
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, tiles);
            f.count(&count, |f, i| {
                // Channel tiles innermost: the pixel tile's inputs stay in L1 while the weights
                // stream from L2.
                let t = f.int("add", &first, i);
                let mt = f.int("urem", &t, m_tiles);
                let rest = f.int("udiv", &t, m_tiles);
                let pt = f.int("urem", &rest, p_tiles);
                let n = f.int("udiv", &rest, p_tiles);
                let p0 = f.int("mul", &pt, pixels);
                let base = |l: &mut Self, f: &mut Function, v: Value, channel: &str, pixel: usize| {
                    let plane = l.plane(f, v, channel, &n);
                    let at = f.int("mul", &p0, pixel);
                    f.let_("at", format!("getelementptr inbounds i8, ptr {plane}, i64 {at}"))
                };
                let x_at = base(l, f, x, "0", in_pixel);
                let m0 = f.int("mul", &mt, rows);
                let out_at = base(l, f, out, &m0, out_pixel);
                let res_at = match chain.residual {
                    Some(r) => base(l, f, r, &m0, out_pixel),
                    None => "null".to_string(),
                };
                let a_at = f.int("mul", &mt, rows * k);
                let a_at = f.int("add", &a_at, a);
                let a_at = f.float_at("%w", &a_at);
                let b_at = f.int("add", &m0, bias);
                let b_at = f.float_at("%w", &b_at);
                let call = |f: &mut Function, name: &str| {
                    f.line(format!(
                        "call void {name}(ptr {x_at}, ptr {a_at}, ptr {b_at}, ptr {out_at}, ptr {res_at}, \
                         i64 {k}, i64 {x_plane}, i64 {out_plane})"
                    ))
                };
                match &tail {
                    None => call(f, &wide),
                    Some(tail) => {
                        let last = f.let_("last", format!("icmp eq i64 {pt}, {}", p_tiles - 1));
                        let full = f.let_("full", format!("xor i1 {last}, true"));
                        f.when(&full, |f| call(f, &wide));
                        f.when(&last, |f| call(f, tail));
                    }
                }
            });
        });
    }

    /// The tile function of blocked 1x1 convolutions, defined on first use for `key` (steps,
    /// vectors, pixels, input blocked, output blocked): `tile(x, a, bias, out, residual, k,
    /// x_plane, out_plane)` computes `vectors` blocks of output channels for `pixels` pixels
    /// over `k` input channels; `x` and `out` (and `residual`) point at the tile's first
    /// pixel of its first channel, their planes `x_plane` and `out_plane` bytes apart; `a`
    /// holds the tile's packed weights, `[k][vectors * lanes]`, and `bias` its bias. One
    /// function serves every convolution of its key: unrolled and specialized to each, a
    /// network's tiles took 200 KB of code and, run after another network, cost more in
    /// instruction fetches than their tiles saved (MobileNet V2 paired 1.061 against 0.975).
    fn blocked_tile(&mut self, key: BlockedTileKey) -> String {
        if let Some(name) = self.blocked_tiles.get(&key) {
            return name.clone();
        }
        let (steps, vectors, pixels, x_blocks, out_blocks) = key.clone();
        let name = self.global_name("blocked_tile");
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let rows = vectors * lanes;
        let mut f = Function::new();
        let acc: Vec<Vec<String>> = (0..vectors)
            .map(|v| {
                let b = f.load_ty(ty, "%bias", &(v * lanes).to_string(), None);
                (0..pixels).map(|_| f.slot(ty, &b)).collect()
            })
            .collect();
        let in_pixel = if x_blocks { lanes * 4 } else { 4 };
        // One step of the reduction: the input channel whose tile pixels start at `row`, with
        // weights from float `a` of the tile's.
        let step = |f: &mut Function, row: &str, a: &str| {
            let ws: Vec<String> = (0..vectors)
                .map(|v| {
                    let at = f.int("add", a, v * lanes);
                    prefetch_weights(f, &at);
                    f.load_ty(ty, "%a", &at, None)
                })
                .collect();
            for j in 0..pixels {
                let p = f.let_("px", format!("getelementptr inbounds i8, ptr {row}, i64 {}", j * in_pixel));
                let xj = f.let_("x", format!("load float, ptr {p}"));
                let xj = f.splat(&xj, lanes);
                for (v, w) in ws.iter().enumerate() {
                    f.fma_into(ty, &acc[v][j], w, &xj);
                }
            }
        };
        // The row of channel `lane` of the block at `block`: a plane apart, or a float in a block.
        let row_of = |f: &mut Function, block: &str, lane: &str| {
            let lane_bytes = if x_blocks { "4" } else { "%x_plane" };
            let at = f.int("mul", lane, lane_bytes);
            f.let_("row", format!("getelementptr inbounds i8, ptr {block}, i64 {at}"))
        };
        // Blocks of `lanes` channels, four steps at a time, then (planes only) the rest.
        let block_bytes = f.int("mul", "%x_plane", lanes);
        let blocks = f.int("udiv", "%k", lanes);
        f.count(&blocks, |f, b| {
            let at = f.int("mul", b, &block_bytes);
            let block = f.let_("block", format!("getelementptr inbounds i8, ptr %x, i64 {at}"));
            f.count(lanes / 4, |f, q| {
                for l in 0..4 {
                    let lane = f.int("mul", q, 4);
                    let lane = f.int("add", &lane, l);
                    let c = f.int("mul", b, lanes);
                    let c = f.int("add", &c, &lane);
                    let a = f.int("mul", &c, rows);
                    let row = row_of(f, &block, &lane);
                    step(f, &row, &a);
                }
            });
        });
        let done = f.int("mul", &blocks, lanes);
        let left = f.int("sub", "%k", &done);
        let at = f.int("mul", &blocks, &block_bytes);
        let block = f.let_("block", format!("getelementptr inbounds i8, ptr %x, i64 {at}"));
        f.count(&left, |f, lane| {
            let c = f.int("add", &done, lane);
            let a = f.int("mul", &c, rows);
            let row = row_of(f, &block, lane);
            step(f, &row, &a);
        });
        // Lane `i` of an output vector in planes is plane `i` of its block.
        let lane_offsets = (!out_blocks).then(|| {
            let op = f.splat_i64("%out_plane", lanes);
            let steps: Vec<String> = (0..lanes).map(|i| format!("i64 {i}")).collect();
            f.let_("lanes", format!("mul <{lanes} x i64> {op}, <{}>", steps.join(", ")))
        });
        let out_pixel = if out_blocks { lanes * 4 } else { 4 };
        for (v, acc_v) in acc.iter().enumerate() {
            for (j, slot) in acc_v.iter().enumerate() {
                let at = f.int("mul", "%out_plane", v * lanes);
                let at = f.int("add", &at, j * out_pixel);
                let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                let offsets = lane_offsets.as_deref();
                let y = epilogue::emit(&steps, &mut f, ty, &y, &mut |f| load_channels(f, "%res", &at, offsets, lanes));
                store_channels(&mut f, &y, "%out", &at, offsets, lanes);
            }
        }
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %x, ptr noalias %a, ptr noalias %bias, ptr noalias %out, \
             ptr noalias %res, i64 %k, i64 %x_plane, i64 %out_plane)"
        )));
        self.blocked_tiles.insert(key, name.clone());
        name
    }

    /// Depthwise 3x3 convolution `id` (padding 1, stride 1 or 2) with its epilogues `chain`,
    /// from blocked input to blocked output: each task takes whole blocks of channels, a row of
    /// output vectors at a time, each tap's vector of weights in a register.
    pub fn blocked_window(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let [batch, c, h, w] = graph.shape(x).dims()[..] else { unreachable!("NCHW") };
        let [_, _, oh, ow] = graph.shape(out).dims()[..] else { unreachable!("NCHW") };
        let stride = conv.stride[0];
        let blocks = c / lanes;
        // Weights as `[block][tap][lane]`, bias as `[block][lane]`.
        let weight = self.param(node, "weight");
        let packed: Vec<f32> = (0..blocks * 9 * lanes)
            .map(|i| {
                let (b, tap, lane) = (i / (9 * lanes), i / lanes % 9, i % lanes);
                weight[(b * lanes + lane) * 9 + tap]
            })
            .collect();
        let weights = self.push(&packed);
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; c] };
        let bias = self.push(&bias);
        let items = batch * blocks;
        let tasks = task_count(items, TASK_TAPS / (oh * ow * 9 * lanes));
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, items);
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                let (n, b) = (f.int("udiv", &item, blocks), f.int("urem", &item, blocks));
                let c0 = f.int("mul", &b, lanes);
                let src = l.plane(f, x, &c0, &n);
                let dst = l.plane(f, out, &c0, &n);
                let taps: Vec<String> = (0..9)
                    .map(|tap| {
                        let at = f.int("mul", &b, 9 * lanes);
                        let at = f.int("add", &at, weights + tap * lanes);
                        f.load_ty(ty, "%w", &at, None)
                    })
                    .collect();
                let at = f.int("add", &c0, bias);
                let b = f.load_ty(ty, "%w", &at, None);
                f.count(oh, |f, oy| {
                    for columns in segments(ow) {
                        let acc: Vec<String> = columns.clone().map(|_| f.slot(ty, &b)).collect();
                        let top = f.int("mul", oy, stride);
                        for ky in 0..3 {
                            // A padding row's taps multiply a clamped row by zeros.
                            let iy = f.int("add", &top, ky);
                            let iy = f.int("sub", &iy, 1);
                            let valid = f.let_("valid", format!("icmp ult i64 {iy}, {h}"));
                            let row = f.let_("row", format!("select i1 {valid}, i64 {iy}, i64 0"));
                            let row = f.int("mul", &row, w * lanes);
                            for kx in 0..3 {
                                let (t, tap) = (ty.name(), &taps[ky * 3 + kx]);
                                let tap = f.let_("tap", format!("select i1 {valid}, {t} {tap}, {t} zeroinitializer"));
                                for (ox, slot) in columns.clone().zip(&acc) {
                                    let Some(ix) = (ox * stride + kx).checked_sub(1).filter(|&ix| ix < w) else {
                                        continue;
                                    };
                                    let at = f.int("add", &row, ix * lanes);
                                    let v = f.load_ty(ty, &src, &at, None);
                                    f.fma_into(ty, slot, &v, &tap);
                                }
                            }
                        }
                        let row = f.int("mul", oy, ow * lanes);
                        for (ox, slot) in columns.zip(&acc) {
                            let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                            let y = epilogue::emit(&chain.steps, f, ty, &y, &mut |_| unreachable!("no residual"));
                            let at = f.int("add", &row, ox * lanes);
                            f.store_ty(ty, &y, &dst, &at, None);
                        }
                    }
                });
            });
        });
    }
}

/// The address of the vector of `lanes` channels at byte `at` (a register) of `base`: one
/// pointer in blocks, or with `lane_offsets` (the planes' byte offsets from the first), a
/// vector of pointers across planes.
fn channels_at(f: &mut Function, base: &str, at: &str, lane_offsets: Option<&str>, lanes: usize) -> String {
    let p = f.let_("p", format!("getelementptr inbounds i8, ptr {base}, i64 {at}"));
    match lane_offsets {
        None => p,
        Some(offsets) => f.let_("ps", format!("getelementptr inbounds i8, ptr {p}, <{lanes} x i64> {offsets}")),
    }
}

/// Loads the vector of `lanes` channels at byte `at` of `base` (see [`channels_at`]).
fn load_channels(f: &mut Function, base: &str, at: &str, lane_offsets: Option<&str>, lanes: usize) -> String {
    let (t, p) = (Ty::Vector(lanes).name(), channels_at(f, base, at, lane_offsets, lanes));
    if lane_offsets.is_none() {
        return f.let_("v", format!("load {t}, ptr {p}, align 4"));
    }
    let all = lane_mask(std::iter::repeat_n(true, lanes));
    let call = format!("@llvm.masked.gather.v{lanes}f32.v{lanes}p0(<{lanes} x ptr> {p}, i32 4, <{lanes} x i1> {all}, {t} poison)");
    f.let_("v", format!("call {t} {call}"))
}

/// Stores `y`, a vector of `lanes` channels, at byte `at` of `base` (see [`channels_at`]).
fn store_channels(f: &mut Function, y: &str, base: &str, at: &str, lane_offsets: Option<&str>, lanes: usize) {
    let (t, p) = (Ty::Vector(lanes).name(), channels_at(f, base, at, lane_offsets, lanes));
    if lane_offsets.is_none() {
        return f.line(format!("store {t} {y}, ptr {p}, align 4"));
    }
    let all = lane_mask(std::iter::repeat_n(true, lanes));
    f.line(format!(
        "call void @llvm.masked.scatter.v{lanes}f32.v{lanes}p0({t} {y}, <{lanes} x ptr> {p}, i32 4, <{lanes} x i1> {all})"
    ));
}

/// A row of `width` output columns in segments of at most [`SEGMENT`], as even as can be: each
/// segment's accumulators stay in registers while its three input rows are read.
fn segments(width: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let count = width.div_ceil(SEGMENT);
    (0..count).map(move |i| i * width / count..(i + 1) * width / count)
}
