//! Channel-blocked 1x1 convolutions (see `layout`): register tiles of channel vectors by
//! pixels.
//!
//! A 1x1 tile holds `vectors` blocks of output channels for `pixels` pixels: each step of the
//! reduction loads the tile's weight vectors and broadcasts one input per pixel, from channel
//! planes (consecutive floats) or blocks (a vector apart) alike. 196 pixels are 14 tiles of 14
//! and 49 three of 14 and one of 7, where vectors of pixels leave a 4-pixel or 1-pixel tail on
//! every plane, and a 7x7 plane packs its input into panels first.

use ir::{NodeId, Op, Value};

use crate::emit::{Function, Ty, lane_mask};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::gemm::{balanced_bounds, pack, prefetch_weights, task_tiles};
use crate::lower::{Lowering, planes, task_count};

/// Multiply-adds a task should hold at least.
const TASK_MACS: usize = 1 << 18;

/// Pixels of a 1x1 tile. Each weight vector a tile loads serves this many multiply-adds:
/// tiles of 7 pixels (a 7x7 plane in 7 tiles) streamed their weights from L2 at twice the
/// rate of 14 and ran 10-15% slower (MobileNet V2's 7x7 layers, one thread), though 49 pixels
/// make three tiles of 14 and one of 7.
const PIXELS: usize = 14;

/// The tile of a blocked 1x1 convolution with `blocks` blocks of output channels and `p`
/// pixels: `(vectors, pixels)`, [`PIXELS`] pixels (fewer on smaller planes) by as many channel
/// vectors as fit in `registers` with the tile's weight vectors and a broadcast, dividing
/// `blocks` evenly.
pub(crate) fn tile_shape(blocks: usize, p: usize, registers: usize) -> (usize, usize) {
    let pixels = PIXELS.min(p);
    let most = (registers - 1) / (pixels + 1);
    let vectors = (1..=most).rev().find(|&v| blocks.is_multiple_of(v)).unwrap_or(1);
    (vectors, pixels)
}

/// A blocked 1x1 convolution's shapes, where its weights are, and its tile functions.
pub(crate) struct BlockedProduct {
    /// The input.
    pub x: Value,
    /// Input channels.
    pub k: usize,
    /// Output channels.
    pub m: usize,
    /// Pixels.
    pub p: usize,
    pub batch: usize,
    /// Output channels of a tile.
    pub rows: usize,
    /// Pixels of a full tile.
    pub pixels: usize,
    /// Blob offsets (floats) of the packed weights and the bias.
    a: usize,
    bias: usize,
    /// Bytes from one input pixel to the next, and from one input plane to the next.
    in_pixel: usize,
    x_plane: usize,
    /// The tile functions for full pixel tiles and for the last, shorter one.
    wide: String,
    tail: Option<String>,
    /// Whether they prefetch a far stream.
    far: bool,
}

impl BlockedProduct {
    /// The address of the first input of pixel tile `pt` of item `n`.
    pub fn input(&self, l: &mut Lowering, f: &mut Function, n: &str, pt: &str) -> String {
        let plane = l.plane(f, self.x, "0", n);
        let at = f.int("mul", pt, self.pixels * self.in_pixel);
        f.let_("at", format!("getelementptr inbounds i8, ptr {plane}, i64 {at}"))
    }

    /// Calls the tile function for channel tile `mt` and pixel tile `pt` on the input at
    /// `x_at`, writing the output at `out_at` with the residual at `res_at` (their planes
    /// `out_plane` bytes apart).
    pub fn call(
        &self,
        f: &mut Function,
        [mt, pt]: [&str; 2],
        [x_at, out_at, res_at]: [&str; 3],
        out_plane: usize,
        prefetch: Option<(&str, usize)>,
    ) {
        assert_eq!(prefetch.is_some(), self.far, "a far prefetch where the tiles take one");
        let far = prefetch.map(|(pf, step)| format!(", ptr {pf}, i64 {step}")).unwrap_or_default();
        let a_at = f.int("mul", mt, self.rows * self.k);
        let a_at = f.int("add", &a_at, self.a);
        let a_at = f.float_at("%w", &a_at);
        let b_at = f.int("mul", mt, self.rows);
        let b_at = f.int("add", &b_at, self.bias);
        let b_at = f.float_at("%w", &b_at);
        let (k, x_plane) = (self.k, self.x_plane);
        let call = |f: &mut Function, name: &str| {
            f.line(format!(
                "call void {name}(ptr {x_at}, ptr {a_at}, ptr {b_at}, ptr {out_at}, ptr {res_at}, \
                 i64 {k}, i64 {x_plane}, i64 {out_plane}{far})"
            ))
        };
        match &self.tail {
            None => call(f, &self.wide),
            Some(tail) => {
                let last = f.let_("last", format!("icmp eq i64 {pt}, {}", self.p / self.pixels));
                let full = f.let_("full", format!("xor i1 {last}, true"));
                f.when(&full, |f| call(f, &self.wide));
                f.when(&last, |f| call(f, tail));
            }
        }
    }
}

/// What a blocked 1x1 tile function is defined for: its epilogue steps, `vectors` by
/// `pixels`, whether its input and its output (and residual) are blocked or planes, and
/// whether it prefetches a far stream into L2 as it goes (a classifier's linear weights).
pub(crate) type BlockedTileKey = (Vec<Step>, usize, usize, bool, bool, bool);

impl Lowering<'_> {
    /// The bytes from one channel plane of `v` to the next, for a value the blocked kernels
    /// address as one array: a whole buffer of the plan, or the caller's input.
    pub(crate) fn plane_bytes(&self, v: Value) -> usize {
        if self.external_input == Some(v) {
            return planes(self.graph.shape(v)).1 * 4;
        }
        match self.plan.placements[&v] {
            passes::plan::Placement::Whole(b) => self.plan.buffers[b].plane_bytes,
            passes::plan::Placement::Planes(_) => unreachable!("blocked kernels read whole buffers"),
        }
    }

    /// Packs the weights and bias of 1x1 convolution `id` (epilogues `chain`) into the blob
    /// and defines its tile functions, for an output blocked (`out_blocks`) or in planes, with
    /// a `far` prefetch or not.
    pub(crate) fn blocked_product(
        &mut self,
        id: NodeId,
        chain: &Chain,
        [out_blocks, far]: [bool; 2],
    ) -> BlockedProduct {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let lanes = self.isa.lanes;
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let k = graph.shape(x).channels();
        let (m, p) = planes(graph.shape(out));
        let (vectors, pixels) = tile_shape(m / lanes, p, self.isa.registers);
        let rows = vectors * lanes;
        let w = self.param(node, "weight");
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; m] };
        let (a, bias) = (self.push(&pack(&w, m, k, rows)), self.push(&bias));
        let x_blocks = self.blocking.blocked(x);
        let mut tile =
            |pixels| self.blocked_tile((chain.steps.clone(), vectors, pixels, x_blocks, out_blocks, far));
        let wide = tile(pixels);
        let tail = (p % pixels != 0).then(|| tile(p % pixels));
        BlockedProduct {
            x,
            k,
            m,
            p,
            batch: graph.shape(out).batch(),
            rows,
            pixels,
            a,
            bias,
            in_pixel: if x_blocks { lanes * 4 } else { 4 },
            x_plane: self.plane_bytes(x),
            wide,
            tail,
            far,
        }
    }

    /// 1x1 convolution `id` with its epilogues `chain`, as channel-blocked tiles: its input
    /// and output (and residual) each blocked or in planes, as `self.blocking` has them.
    pub(crate) fn blocked_pointwise(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let out = chain.output(id);
        let out_blocks = self.blocking.blocked(out);
        let pr = self.blocked_product(id, chain, [out_blocks, false]);
        let out_plane = self.plane_bytes(out);
        if let Some(r) = chain.residual {
            let same = self.blocking.blocked(r) == out_blocks && self.plane_bytes(r) == out_plane;
            assert!(same, "a residual is read where the output is written");
        }
        let out_pixel = if out_blocks { self.isa.lanes * 4 } else { 4 };
        let (m_tiles, p_tiles) = (pr.m / pr.rows, pr.p.div_ceil(pr.pixels));
        let tiles = pr.batch * p_tiles * m_tiles;
        let tasks = task_count(tiles, TASK_MACS / (pr.rows * pr.pixels * pr.k));
        // Tasks share the tiles by their pixels: a 7x7 plane's last tile has 7 of 14.
        let bounds =
            balanced_bounds(tasks, tiles, |t| pr.pixels.min(pr.p - t / m_tiles % p_tiles * pr.pixels))
                .map(|b| self.index_table(&b));
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_tiles(f, bounds.as_deref(), "%t", tasks, tiles);
            f.count(&count, |f, i| {
                // Channel tiles innermost: the pixel tile's inputs stay in L1 while the weights
                // stream from L2.
                let t = f.int("add", &first, i);
                let mt = f.int("urem", &t, m_tiles);
                let rest = f.int("udiv", &t, m_tiles);
                let pt = f.int("urem", &rest, p_tiles);
                let n = f.int("udiv", &rest, p_tiles);
                let p0 = f.int("mul", &pt, pr.pixels);
                let m0 = f.int("mul", &mt, pr.rows);
                let base = |l: &mut Self, f: &mut Function, v: Value| {
                    let plane = l.plane(f, v, &m0, &n);
                    let at = f.int("mul", &p0, out_pixel);
                    f.let_("at", format!("getelementptr inbounds i8, ptr {plane}, i64 {at}"))
                };
                let out_at = base(l, f, out);
                let res_at = match chain.residual {
                    Some(r) => base(l, f, r),
                    None => "null".to_string(),
                };
                let x_at = pr.input(l, f, &n, &pt);
                pr.call(f, [&mt, &pt], [&x_at, &out_at, &res_at], out_plane, None);
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
    pub(crate) fn blocked_tile(&mut self, key: BlockedTileKey) -> String {
        if let Some(name) = self.blocked_tiles.get(&key) {
            return name.clone();
        }
        let (steps, vectors, pixels, x_blocks, out_blocks, far) = key.clone();
        let name = self.global_name("blocked_tile");
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let rows = vectors * lanes;
        let mut f = Function::new();
        // Accumulators by pixel, then vector of channels.
        let biases: Vec<String> =
            (0..vectors).map(|v| f.load_ty(ty, "%bias", &(v * lanes).to_string(), None)).collect();
        let acc: Vec<Vec<String>> =
            (0..pixels).map(|_| biases.iter().map(|b| f.slot(ty, b)).collect()).collect();
        let in_pixel = if x_blocks { lanes * 4 } else { 4 };
        // One step of the reduction: input channel `c`, whose tile pixels start at `row`.
        let step = |f: &mut Function, row: &str, c: &str| {
            if far {
                let at = f.int("mul", c, "%pf_step");
                f.prefetch_l2("%pf", &at);
            }
            let a = &f.int("mul", c, rows);
            let ws: Vec<String> = (0..vectors)
                .map(|v| {
                    let at = f.int("add", a, v * lanes);
                    prefetch_weights(f, &at);
                    f.load_ty(ty, "%a", &at, None)
                })
                .collect();
            for (j, acc_j) in acc.iter().enumerate() {
                let p = f.let_("px", format!("getelementptr inbounds i8, ptr {row}, i64 {}", j * in_pixel));
                let xj = f.let_("x", format!("load float, ptr {p}"));
                let xj = f.splat(&xj, lanes);
                for (w, slot) in ws.iter().zip(acc_j) {
                    f.fma_into(ty, slot, w, &xj);
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
                    let row = row_of(f, &block, &lane);
                    step(f, &row, &c);
                }
            });
        });
        let done = f.int("mul", &blocks, lanes);
        let left = f.int("sub", "%k", &done);
        let at = f.int("mul", &blocks, &block_bytes);
        let block = f.let_("block", format!("getelementptr inbounds i8, ptr %x, i64 {at}"));
        f.count(&left, |f, lane| {
            let c = f.int("add", &done, lane);
            let row = row_of(f, &block, lane);
            step(f, &row, &c);
        });
        // Lane `i` of an output vector in planes is plane `i` of its block.
        let lane_offsets = (!out_blocks).then(|| {
            let op = f.splat_i64("%out_plane", lanes);
            let steps: Vec<String> = (0..lanes).map(|i| format!("i64 {i}")).collect();
            f.let_("lanes", format!("mul <{lanes} x i64> {op}, <{}>", steps.join(", ")))
        });
        let out_pixel = if out_blocks { lanes * 4 } else { 4 };
        for (j, acc_j) in acc.iter().enumerate() {
            for (v, slot) in acc_j.iter().enumerate() {
                let at = f.int("mul", "%out_plane", v * lanes);
                let at = f.int("add", &at, j * out_pixel);
                let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                let offsets = lane_offsets.as_deref();
                let y = epilogue::emit(&steps, &mut f, ty, &y, &mut |f| {
                    load_channels(f, "%res", &at, offsets, lanes)
                });
                store_channels(&mut f, &y, "%out", &at, offsets, lanes);
            }
        }
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %x, ptr noalias %a, ptr noalias %bias, ptr noalias %out, \
             ptr noalias %res, i64 %k, i64 %x_plane, i64 %out_plane{})",
            if far { ", ptr %pf, i64 %pf_step" } else { "" }
        )));
        self.blocked_tiles.insert(key, name.clone());
        name
    }
}

/// The address of the vector of `lanes` channels at byte `at` (a register) of `base`: one
/// pointer in blocks, or with `lane_offsets` (the planes' byte offsets from the first), a
/// vector of pointers across planes.
fn channels_at(f: &mut Function, base: &str, at: &str, lane_offsets: Option<&str>, lanes: usize) -> String {
    let p = f.let_("p", format!("getelementptr inbounds i8, ptr {base}, i64 {at}"));
    match lane_offsets {
        None => p,
        Some(offsets) => {
            f.let_("ps", format!("getelementptr inbounds i8, ptr {p}, <{lanes} x i64> {offsets}"))
        }
    }
}

/// Loads the vector of `lanes` channels at byte `at` of `base` (see [`channels_at`]).
fn load_channels(f: &mut Function, base: &str, at: &str, lane_offsets: Option<&str>, lanes: usize) -> String {
    let (t, p) = (Ty::Vector(lanes).name(), channels_at(f, base, at, lane_offsets, lanes));
    if lane_offsets.is_none() {
        return f.let_("v", format!("load {t}, ptr {p}, align 4"));
    }
    let all = lane_mask(std::iter::repeat_n(true, lanes));
    let call = format!(
        "@llvm.masked.gather.v{lanes}f32.v{lanes}p0(<{lanes} x ptr> {p}, i32 4, <{lanes} x i1> {all}, {t} poison)"
    );
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
