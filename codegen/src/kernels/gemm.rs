//! Convolutions as matrix products: `Y[co, p] = sum_k W[co, k] X[k, p]`, with `X` the input
//! planes themselves for a 1x1 convolution, and packed panels of their receptive fields for
//! the rest (`kernels::im2col`). One register-blocked micro-kernel computes every product: a tile of
//! `tile_rows` output channels by `tile_vectors` vectors of pixels stays in registers over the
//! whole reduction, reading weights pre-packed as `[tile][k][tile_rows]` and broadcasting
//! them against vectors of input pixels; bias and fused epilogues are applied before the one
//! store. Tails of pixels use masked loads and stores; tails of channels skip rows.

use std::ops::Range;

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::padded::Padded;
use crate::lower::{Lowering, planes, task_count, task_items};
use crate::schedule::{Schedule, Sweep};

/// Multiply-adds of the smallest task: enough to hide the pool's wake-up and the task's own
/// setup (its table of input planes, its first panel).
const TASK_MACS: usize = 1 << 18;

/// Floats of padded planes a padding task should copy.
const TASK_WORK: usize = 1 << 16;

/// How far ahead of its reads a micro-kernel prefetches its weights, in bytes.
const WEIGHTS_AHEAD: usize = 4096;

/// Accumulators of a column tile: its vectors of rows, for each of its phases of k.
const COLUMN_ACCUMULATORS: usize = 8;

/// Pixels up to which a tail tile is a column tile (see [`Lowering::column_tile`]).
pub(crate) const COLUMN_PIXELS: usize = 4;

/// Independent accumulators that keep both FMA pipes busy through the multiply-add latency
/// (2 pipes x 4 cycles, on Zen as on recent Intel cores), and the most phases of k a tile
/// splits its reduction into to reach them.
const MIN_ACCUMULATORS: usize = 8;
const MAX_PHASES: usize = 4;

/// Whether `conv` is a 1x1 convolution with stride 1 and no padding: its input planes are the
/// product's matrix `X` as they are.
pub(crate) fn pointwise(conv: &ir::Conv) -> bool {
    conv.kernel == [1, 1] && conv.stride == [1, 1] && conv.padding == [0, 0]
}

/// Packs the `rows x k` row-major matrix `w` into micro-tiles of `tile_rows` rows:
/// `[tile][k][tile_rows]`, zero-padded.
pub(crate) fn pack(w: &[f32], rows: usize, k: usize, tile_rows: usize) -> Vec<f32> {
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

/// The micro-tile of at most `tile[0]` rows that takes as many tiles to cover `m` channels
/// and shares them evenly: 64 channels in 8 tiles of 8 rather than 7 of 9 and one of 1, whose
/// multiply-adds for its 8 zero rows cost as much as a full tile's (measured on MobileNet V2,
/// one thread 0.977, two threads 0.983-0.988).
pub(crate) fn balanced_tile([rows, vectors]: [usize; 2], m: usize) -> [usize; 2] {
    let tiles = m.div_ceil(rows).max(1);
    [m.div_ceil(tiles).clamp(1, rows), vectors]
}

/// Where a shifted convolution's padded input planes are: arena byte offset `base`, plane
/// `n * channels + c` at `plane_floats` floats each, `row` floats per padded row; the output
/// has `rows` rows of `out_row` pixels.
pub(crate) struct Shift {
    base: usize,
    plane_floats: usize,
    channels: usize,
    row: usize,
    out_row: usize,
    rows: usize,
}

/// A matrix of a product kept in arena scratch rather than in a value's channel planes: row
/// `r` of group `g` of batch item `n` starts at byte `base + ((n * groups + g) * rows + r) *
/// stride * 4`.
#[derive(Clone)]
pub(crate) struct ScratchRows {
    pub base: usize,
    /// Rows per group.
    pub rows: usize,
    /// Floats from one row to the next.
    pub stride: usize,
}

impl ScratchRows {
    /// The address of row `r` of group `group` (of `groups`) of item `n`.
    pub fn row(
        &self,
        f: &mut Function,
        groups: usize,
        group: impl std::fmt::Display,
        n: &str,
        r: &str,
    ) -> String {
        let item = f.int("mul", n, groups);
        let item = f.int("add", &item, group);
        let row = f.int("mul", &item, self.rows);
        let row = f.int("add", &row, r);
        let at = f.int("mul", &row, self.stride * 4);
        let at = f.int("add", &at, self.base);
        f.let_("row", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"))
    }

    /// A stack array of the addresses of the rows of group `group` (of `groups`) of item `n`.
    fn array(&self, f: &mut Function, groups: usize, group: &str, n: &str) -> String {
        let array = f.pointer_array(self.rows);
        f.count(self.rows, |f, r| {
            let p = self.row(f, groups, group, n, r);
            let slot = f.pointer_at(&array, r);
            f.line(format!("store ptr {p}, ptr {slot}"));
        });
        array
    }
}

/// Where a product's input or output matrix lives.
pub(crate) enum Operand {
    /// The channel planes of a value: row `g * rows + r` of group `g` is channel plane `r`.
    Planes(ir::Value),
    Scratch(ScratchRows),
    /// Panels packed before the product, at this arena offset (see [`packed_panel`]): an
    /// input only, read by the packed sweeps.
    Panels(usize),
}

/// The shapes of one convolution as a product of matrices, per group.
pub(crate) struct Product {
    pub groups: usize,
    /// Output channels per group.
    pub m: usize,
    /// Reduction length per group.
    pub k: usize,
    /// Output pixels.
    pub p: usize,
    pub batch: usize,
    /// Offsets of the packed weights and the bias in the blob.
    a: usize,
    bias: usize,
    /// The micro-tile: output channels by vectors of pixels.
    pub rows: usize,
    pub vectors: usize,
    pub lanes: usize,
    /// The order of the tiles.
    pub sweep: Sweep,
}

impl Product {
    /// Pixels per micro-tile.
    pub fn cols(&self) -> usize {
        self.vectors * self.lanes
    }

    /// The first pixel of pixel tile `pt` (a register) and how many of its pixels there are
    /// (fewer than [`Product::cols`] in the last tile).
    pub fn pixel_tile(&self, f: &mut Function, pt: &str) -> (String, String) {
        self.pixel_tile_in(f, 0..self.p, pt)
    }

    /// As [`Product::pixel_tile`], for the tiles of the pixels `pixels` only.
    pub fn pixel_tile_in(&self, f: &mut Function, pixels: Range<usize>, pt: &str) -> (String, String) {
        let cols = self.cols();
        let p0 = f.int("mul", pt, cols);
        let p0 = f.int("add", &p0, pixels.start);
        let left = f.int("sub", pixels.end, &p0);
        let p_valid = f.umin(&left, cols);
        (p0, p_valid)
    }
}

impl Lowering<'_> {
    /// Packs the weights and bias of conv `id` into the blob and returns its product's shapes.
    pub(crate) fn product(&mut self, id: NodeId, chain: &Chain) -> Product {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let k = graph.shape(graph.operands(id)[0]).channels() / conv.groups * conv.kernel[0] * conv.kernel[1];
        let w = self.param(node, "weight");
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; conv.out_channels] };
        let out = graph.shape(chain.output(id));
        let schedule = self.schedule(id);
        // A step's other thread-count variant may have packed them for the same tile already.
        let key = (id, schedule.tile[0]);
        let pushed = self.packed_weights.get(&key).copied();
        let pr =
            self.product_over(&w, bias, [conv.groups, k], [out.batch(), planes(out).1], schedule, pushed);
        self.packed_weights.insert(key, (pr.a, pr.bias));
        pr
    }

    /// Packs a product's weights `w` (per group, `m x k` row-major, `m = bias.len() / groups`)
    /// and `bias` into the blob (unless `pushed` has their blob offsets from an earlier packing
    /// for the same tile), for `batch` items of `p` output pixels computed in micro-tiles and
    /// ordered by `schedule`.
    pub(crate) fn product_over(
        &mut self,
        w: &[f32],
        bias: Vec<f32>,
        [groups, k]: [usize; 2],
        [batch, p]: [usize; 2],
        schedule: Schedule,
        pushed: Option<(usize, usize)>,
    ) -> Product {
        let m = bias.len() / groups;
        let [rows, vectors] = balanced_tile(schedule.tile, m);
        let (a, bias) = pushed.unwrap_or_else(|| {
            // Zeros after the last tile: a column tile reads whole vectors of a tile's rows.
            let packed: Vec<f32> = (0..groups)
                .flat_map(|g| pack(&w[g * m * k..(g + 1) * m * k], m, k, rows))
                .chain(std::iter::repeat_n(0.0, 2 * self.isa.lanes))
                .collect();
            // Zeros after the bias too: tiles start their accumulators at the bias of all their
            // rows, those past the last channel included.
            let bias: Vec<f32> =
                bias.into_iter().chain(std::iter::repeat_n(0.0, rows + self.isa.lanes)).collect();
            (self.push(&packed), self.push(&bias))
        });
        Product {
            groups,
            m,
            k,
            p,
            batch,
            a,
            bias,
            rows,
            vectors,
            lanes: self.isa.lanes,
            sweep: schedule.sweep,
        }
    }

    /// The gradient of a 1x1 convolution (stride 1, groups `groups`) with respect to its input:
    /// `dx = w^T dy`, the same product as a 1x1 convolution with transposed weights.
    pub fn pointwise_grad_input(&mut self, f: &mut Function, id: NodeId, groups: usize) {
        let graph = self.graph;
        let dy = graph.operands(id)[0];
        let dx = ir::Value { node: id, port: 0 };
        let (cin, cout) = (graph.shape(dx).channels(), graph.shape(dy).channels());
        let (m, k) = (cin / groups, cout / groups);
        let w = self.param(graph.node(id), "weight");
        // Group g's `[k, m]` block, transposed to `[m, k]`.
        let transposed: Vec<f32> =
            (0..groups * m * k).map(|i| w[(i / (m * k)) * m * k + (i % k) * m + (i / k) % m]).collect();
        let (out, basic) = (graph.shape(dx), Schedule::basic(self.isa));
        let pr = self.product_over(
            &transposed,
            vec![0.0; cin],
            [groups, k],
            [out.batch(), planes(out).1],
            basic,
            None,
        );
        self.gemm(f, pr, Operand::Planes(dy), Operand::Planes(dx), &Chain::default(), None);
    }

    /// A 1x1 convolution (stride 1, no padding): the input planes are the matrix `X`.
    pub fn pointwise_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let Op::Conv(conv) = &self.graph.node(id).op else { unreachable!("a convolution") };
        match self.schedule(id).sweep {
            Sweep::SplitK if conv.groups == 1 => self.split_k_conv(f, id, chain),
            _ => self.planes_gemm(f, id, chain, None),
        }
    }

    /// A convolution with stride 1 and a larger kernel, as a sum of 1x1 convolutions over
    /// shifted inputs: the input planes are first copied, padded, to scratch arena space;
    /// row `(ci, ky, kx)` of `X` is then padded plane `ci` shifted by `(ky, kx)`. Micro-tiles
    /// stay within one output row, so each reads consecutive floats of every shifted plane.
    pub fn shifted_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let Op::Conv(conv) = &graph.node(id).op else { unreachable!("a convolution") };
        let x = graph.operands(id)[0];
        let xs = graph.shape(x).dims().to_vec();
        let ys = graph.shape(chain.output(id)).dims().to_vec();
        let layout = Padded {
            rows: ys[2] + (conv.kernel[0] - 1) * conv.dilation[0],
            cols: ys[3] + (conv.kernel[1] - 1) * conv.dilation[1],
            phases: 1,
            lanes: self.isa.lanes,
        };
        let plane_floats = layout.floats();
        let base = self.scratch_arena(xs[0] * xs[1] * plane_floats * 4);
        self.parallel_planes(f, xs[0], xs[1], TASK_WORK / plane_floats, |l, f, n, c, plane| {
            let src = l.plane(f, x, c, n);
            let at = f.int("mul", plane, plane_floats * 4);
            let at = f.int("add", &at, base);
            let dst = f.let_("dst", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"));
            layout.fill(f, &dst, &src, [xs[2], xs[3]], conv.padding, "0.0");
        });
        let shift =
            Shift { base, plane_floats, channels: xs[1], row: layout.cols, out_row: ys[3], rows: ys[2] };
        self.planes_gemm(f, id, chain, Some(shift));
    }

    /// Tiles of conv `id`'s product whose `X` rows are input planes (`shift` none), or padded
    /// input planes shifted by kernel taps.
    fn planes_gemm(&mut self, f: &mut Function, id: NodeId, chain: &Chain, shift: Option<Shift>) {
        let graph = self.graph;
        let Op::Conv(conv) = &graph.node(id).op else { unreachable!("a convolution") };
        let pr = self.product(id, chain);
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        self.gemm(f, pr, Operand::Planes(x), Operand::Planes(out), chain, shift.map(|s| (s, conv.clone())));
    }

    /// Tiles of product `pr` from `x` (or, with `shift`, the padded planes of the
    /// convolution's input shifted by its taps) into `out`.
    pub(crate) fn gemm(
        &mut self,
        f: &mut Function,
        pr: Product,
        x: Operand,
        out: Operand,
        chain: &Chain,
        shift: Option<(Shift, ir::Conv)>,
    ) {
        let (rows, cols) = (pr.rows, pr.cols());
        let m_tiles = pr.m.div_ceil(rows);
        // Pixel tiles: along the flat plane, or within output rows for shifted planes.
        let row_tiles = shift.as_ref().map(|(s, _)| s.out_row.div_ceil(cols));
        let p_tiles = match (&shift, row_tiles) {
            (Some((s, _)), Some(per_row)) => s.rows * per_row,
            _ => pr.p.div_ceil(cols),
        };
        let tiles = m_tiles * p_tiles;
        // Consecutive tiles of a task share their input pixels (channel sweep) or their weights
        // (pixel sweep), which stay in L1 while the other operand streams.
        // Panels are packed from input planes read in flat tiles (1x1 convolutions); elsewhere
        // the packed sweeps keep only their order. Packed panels spare a task its own packing,
        // not its tables of planes: longer tasks.
        let packs = matches!(pr.sweep, Sweep::Packed | Sweep::PackedPixels)
            && shift.is_none()
            && matches!(x, Operand::Planes(_) | Operand::Panels(_));
        let task_macs = if packs { 4 * TASK_MACS } else { TASK_MACS };
        let chunks = task_count(tiles, task_macs / (rows * cols * pr.k));
        // Where tail tiles make some pixel tiles cheaper, tasks share the tiles by cost.
        let pixels = |pt: usize| match (&shift, row_tiles) {
            (Some((s, _)), Some(per_row)) => (s.out_row - pt % per_row * cols).min(cols),
            _ => (pr.p - pt * cols).min(cols),
        };
        let pixel_major = !matches!(pr.sweep, Sweep::Pixels | Sweep::PackedPixels);
        let bounds = balanced_bounds(chunks, tiles, |t| {
            let pt = if pixel_major { t / m_tiles } else { t % p_tiles };
            tile_cost(pixels(pt), rows, pr.lanes)
        })
        .map(|b| self.index_table(&b));
        // A panel holds one pixel tile of every input row, `cols` floats apart: one per task in
        // thread scratch (panel sweep), or all of them packed before the product.
        let panel = ((pr.sweep == Sweep::Panel || packs) && shift.is_none()).then_some(cols);
        let packed = match &x {
            Operand::Planes(x) if packs => Some(self.pack_panels(f, &pr, *x, p_tiles)),
            Operand::Panels(base) => Some(*base),
            _ => None,
        };
        let kernels = self.tiles(&chain.steps, &pr, panel, Stream::Weights);
        // A streamed sweep's first channel tile of each pixel tile asks for the next one's input
        // while it computes.
        let ahead = (pr.sweep == Sweep::Streamed && shift.is_none())
            .then(|| self.tile_prefetching(&chain.steps, pr.rows, pr.vectors, panel, Stream::NextPixels));
        self.parallel(f, pr.batch * pr.groups * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let rest = f.int("udiv", "%t", chunks);
            let (group, n) = (f.int("urem", &rest, pr.groups), f.int("udiv", &rest, pr.groups));
            let inputs = match (&shift, &x) {
                // Packed panels are all a task reads.
                _ if packed.is_some() => String::new(),
                (None, Operand::Planes(x)) => {
                    let first_in = f.int("mul", &group, pr.k);
                    l.plane_array(f, *x, &first_in, pr.k, &n)
                }
                (None, Operand::Scratch(rows)) => rows.array(f, pr.groups, &group, &n),
                (None, Operand::Panels(_)) => unreachable!("packed panels are read by packed sweeps"),
                (Some((s, conv)), _) => {
                    let [kh, kw] = conv.kernel;
                    let inputs = f.pointer_array(pr.k);
                    let cin = pr.k / (kh * kw);
                    let first = f.int("mul", &n, s.channels);
                    let group_first = f.int("mul", &group, cin);
                    let first = f.int("add", &first, &group_first);
                    f.count(pr.k, |f, k| {
                        let ci = f.int("udiv", k, kh * kw);
                        let tap = f.int("urem", k, kh * kw);
                        let (ky, kx) = (f.int("udiv", &tap, kw), f.int("urem", &tap, kw));
                        let plane = f.int("add", &first, &ci);
                        let at = f.int("mul", &plane, s.plane_floats);
                        let dy = f.int("mul", &ky, conv.dilation[0] * s.row);
                        let dx = f.int("mul", &kx, conv.dilation[1]);
                        let at = f.int("add", &at, &dy);
                        let at = f.int("add", &at, &dx);
                        let at = f.int("mul", &at, 4);
                        let at = f.int("add", &at, s.base);
                        let row = f.let_("row", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"));
                        let slot = f.pointer_at(&inputs, k);
                        f.line(format!("store ptr {row}, ptr {slot}"));
                    });
                    inputs
                }
            };
            let outputs = Outputs::new(l, f, &out, chain, &group, &pr, &n);
            let panel_at = (panel.is_some() && !packs)
                .then(|| f.let_("panel", format!("call ptr @archc_scratch(i64 {})", pr.k * cols * 4)));
            let (first_tile, count) = task_tiles(f, bounds.as_deref(), &chunk, chunks, tiles);
            f.count(&count, |f, i| {
                let t = f.int("add", &first_tile, i);
                let (pt, mt) = match pr.sweep {
                    Sweep::Channels | Sweep::Streamed | Sweep::Panel | Sweep::Packed | Sweep::SplitK => {
                        (f.int("udiv", &t, m_tiles), f.int("urem", &t, m_tiles))
                    }
                    Sweep::Pixels | Sweep::PackedPixels => {
                        (f.int("urem", &t, p_tiles), f.int("udiv", &t, p_tiles))
                    }
                };
                let (in_off, p_valid, out_off) = match (&shift, row_tiles) {
                    (Some((s, _)), Some(per_row)) => {
                        let (oy, c) = (f.int("udiv", &pt, per_row), f.int("urem", &pt, per_row));
                        let ox = f.int("mul", &c, cols);
                        let left = f.int("sub", s.out_row, &ox);
                        let p_valid = f.umin(&left, cols);
                        let in_off = f.int("mul", &oy, s.row);
                        let in_off = f.int("add", &in_off, &ox);
                        let out_off = f.int("mul", &oy, s.out_row);
                        let out_off = f.int("add", &out_off, &ox);
                        (in_off, p_valid, out_off)
                    }
                    _ => {
                        let (p0, p_valid) = pr.pixel_tile(f, &pt);
                        (p0.clone(), p_valid, p0)
                    }
                };
                let (rows_of, in_off) = match (&panel_at, packed) {
                    (Some(at), _) => {
                        // A task's first tile and each new pixel tile pack their pixels.
                        let first = f.let_("first", format!("icmp eq i64 {i}, 0"));
                        let top = f.let_("top", format!("icmp eq i64 {mt}, 0"));
                        let fresh = f.let_("fresh", format!("or i1 {first}, {top}"));
                        f.when(&fresh, |f| pack_panel(f, &inputs, at, &in_off, &p_valid, &pr));
                        (at.clone(), "0".to_string())
                    }
                    (None, Some(base)) => {
                        let item = f.int("mul", &n, pr.groups);
                        let item = f.int("add", &item, &group);
                        (packed_panel(f, &pr, base, p_tiles, &item, &pt), "0".to_string())
                    }
                    (None, None) => (inputs.clone(), in_off),
                };
                let call = |f: &mut Function, t: &str| {
                    outputs.call(f, t, &pr, &mt, &rows_of, &in_off, &p_valid, &out_off, None)
                };
                kernels.fitting(f, &p_valid, |f, t| match &ahead {
                    // Direct calls both: a call through a selected pointer lets the tiles' address
                    // escape, and LLVM no longer specializes them to their constant arguments
                    // (measured 1.1% slower on MobileNet V2).
                    Some(ahead) if t == kernels.wide => {
                        let first = f.let_("first", format!("icmp eq i64 {mt}, 0"));
                        let later = f.let_("later", format!("xor i1 {first}, true"));
                        f.when(&first, |f| call(f, ahead));
                        f.when(&later, |f| call(f, t));
                    }
                    _ => call(f, t),
                });
            });
        });
    }

    /// Copies every pixel tile of the input planes `x` of product `pr` into its panel in arena
    /// scratch (see [`packed_panel`]), in parallel; returns the panels' byte offset.
    pub(crate) fn pack_panels(
        &mut self,
        f: &mut Function,
        pr: &Product,
        x: ir::Value,
        p_tiles: usize,
    ) -> usize {
        let panel_floats = pr.k * pr.cols();
        let base = self.scratch_arena(pr.batch * pr.groups * p_tiles * panel_floats * 4);
        let chunks = task_count(p_tiles, TASK_WORK / panel_floats);
        self.parallel(f, pr.batch * pr.groups * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let item = f.int("udiv", "%t", chunks);
            let (group, n) = (f.int("urem", &item, pr.groups), f.int("udiv", &item, pr.groups));
            let first_in = f.int("mul", &group, pr.k);
            let inputs = l.plane_array(f, x, &first_in, pr.k, &n);
            let (first, count) = task_items(f, &chunk, chunks, p_tiles);
            f.count(&count, |f, i| {
                let pt = f.int("add", &first, i);
                let (p0, p_valid) = pr.pixel_tile(f, &pt);
                let panel = packed_panel(f, pr, base, p_tiles, &item, &pt);
                pack_panel(f, &inputs, &panel, &p0, &p_valid, pr);
            });
        });
        base
    }

    /// The micro-kernels of product `pr` with epilogue `steps` (see [`Tiles`]), reading
    /// planes or, with `panel`, packed panels; the full tile prefetches what `stream` says.
    pub(crate) fn tiles(
        &mut self,
        steps: &[Step],
        pr: &Product,
        panel: Option<usize>,
        stream: Stream,
    ) -> Tiles {
        Tiles {
            wide: self.tile_prefetching(steps, pr.rows, pr.vectors, panel, stream),
            narrow: (pr.vectors > 1).then(|| self.tile(steps, pr.rows, 1, panel)),
            column: self.column_tile(steps, pr.rows, panel),
            lanes: pr.lanes,
        }
    }

    /// The micro-kernel with epilogue `steps`, defined on first use:
    /// `tile(rows, k, in_off, p_valid, a, bias, outs, residuals, out_off, m_valid)` computes
    /// `outs[r][out_off + j] = epilogue(bias[r] + sum_k a[k][r] rows[k][in_off + j])` for
    /// `r < m_valid`, `j < p_valid`. With `panel`, `rows` is instead a packed panel whose
    /// row `k` starts `k * panel` floats in, read whole (its lanes past `p_valid` are spare).
    pub(crate) fn tile(
        &mut self,
        steps: &[Step],
        rows: usize,
        vectors: usize,
        panel: Option<usize>,
    ) -> String {
        self.tile_prefetching(steps, rows, vectors, panel, Stream::Weights)
    }

    /// [`Lowering::tile`], prefetching besides its weights what `stream` says (with
    /// [`Stream::Far`], two more arguments).
    pub(crate) fn tile_prefetching(
        &mut self,
        steps: &[Step],
        rows: usize,
        vectors: usize,
        panel: Option<usize>,
        stream: Stream,
    ) -> String {
        let key = (steps.to_vec(), rows, vectors, panel, stream);
        if let Some(name) = self.tiles.get(&key) {
            return name.clone();
        }
        let name = self.global_name("tile");
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let mut f = Function::new();
        // A tile with too few accumulators to cover the multiply-add latency (a narrow tail
        // tile) keeps one set per phase of k, consecutive k in different sets, summed at the end.
        let phases = (MIN_ACCUMULATORS.div_ceil(rows * vectors)).clamp(1, MAX_PHASES);
        // The first phase's accumulators start at the bias: one add fewer per accumulator, which
        // counts in short reductions (MobileNet V2's expansions reduce over 16 to 32 channels).
        let biases: Vec<String> = (0..rows)
            .map(|r| {
                let b = f.load("%bias", &r.to_string());
                f.splat(&b, lanes)
            })
            .collect();
        let acc: Vec<Vec<Vec<String>>> = (0..phases)
            .map(|phase| {
                (0..rows)
                    .map(|r| {
                        let init = if phase == 0 { biases[r].as_str() } else { "zeroinitializer" };
                        (0..vectors).map(|_| f.slot(ty, init)).collect()
                    })
                    .collect()
            })
            .collect();
        let masks = lane_masks(&mut f, "%p_valid", lanes, vectors);
        let full = f.let_("full", format!("icmp eq i64 %p_valid, {}", vectors * lanes));
        let partial = f.let_("partial", format!("xor i1 {full}, true"));
        // Multiply-adds the products of step `k` into accumulator set `acc`.
        let step = |f: &mut Function, k: &str, acc: &[Vec<String>], masked: bool| {
            let row = match panel {
                Some(stride) => {
                    let at = f.int("mul", k, stride);
                    f.float_at("%rows", &at)
                }
                None => {
                    let slot = f.pointer_at("%rows", k);
                    f.let_("row", format!("load ptr, ptr {slot}"))
                }
            };
            let xs: Vec<String> = (0..vectors)
                .map(|v| {
                    let at = f.int("add", "%in_off", v * lanes);
                    let mask = (masked && panel.is_none()).then_some(masks[v].as_str());
                    f.load_ty(ty, &row, &at, mask)
                })
                .collect();
            match stream {
                Stream::Weights => {}
                Stream::Far => {
                    let at = f.int("mul", k, "%pf_step");
                    f.prefetch_l2("%pf", &at);
                }
                Stream::NextPixels => {
                    // Every line that the next tile's `cols` floats of this row touch: one per
                    // 64 bytes from its first float, and the line of its last.
                    let cols = vectors * lanes;
                    let first = f.int("add", "%in_off", cols);
                    let first = f.int("mul", &first, 4);
                    for byte in (0..cols * 4).step_by(64).chain([cols * 4 - 4]) {
                        let at = f.int("add", &first, byte);
                        f.prefetch(&row, &at);
                    }
                }
            }
            let a = f.int("mul", k, rows);
            prefetch_weights(f, &a);
            for (r, acc_r) in acc.iter().enumerate() {
                let at = f.int("add", &a, r);
                let w = f.load("%a", &at);
                let w = f.splat(&w, lanes);
                for (x, slot) in xs.iter().zip(acc_r) {
                    f.fma_into(ty, slot, &w, x);
                }
            }
        };
        for (condition, masked) in [(&full, false), (&partial, true)] {
            f.when(condition, |f| {
                in_phases(f, phases, |f, k, phase| step(f, k, &acc[phase], masked));
            });
        }
        for (r, first) in acc[0].iter().enumerate() {
            sum_phases(&mut f, ty, first, acc[1..].iter().map(|phase| &phase[r]));
        }
        let acc = &acc[0];
        for (r, acc_r) in acc.iter().enumerate() {
            let live = f.let_("live", format!("icmp ult i64 {r}, %m_valid"));
            f.when(&live, |f| {
                let slot = f.pointer_at("%outs", &r.to_string());
                let out = f.let_("out", format!("load ptr, ptr {slot}"));
                let residual = steps.contains(&Step::AddResidual).then(|| {
                    let slot = f.pointer_at("%residuals", &r.to_string());
                    f.let_("res", format!("load ptr, ptr {slot}"))
                });
                // Masked stores only on partial tiles: AMD's masked stores are microcoded and
                // cost as much as the multiply-adds of a short reduction.
                for (condition, masked) in [(&full, false), (&partial, true)] {
                    f.when(condition, |f| {
                        for (v, slot) in acc_r.iter().enumerate() {
                            let at = f.int("add", "%out_off", v * lanes);
                            let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                            let mask = masked.then_some(masks[v].as_str());
                            let y = epilogue::emit(steps, f, ty, &y, &mut |f| {
                                f.load_ty(ty, residual.as_deref().expect("a residual row"), &at, mask)
                            });
                            f.store_ty(ty, &y, &out, &at, mask);
                        }
                    });
                }
            });
        }
        let far_params = if stream == Stream::Far { ", ptr %pf, i64 %pf_step" } else { "" };
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %rows, i64 %k, i64 %in_off, i64 %p_valid, ptr noalias %a, \
             ptr noalias %bias, ptr noalias %outs, ptr %residuals, i64 %out_off, i64 %m_valid{far_params})"
        )));
        self.tiles.insert(key, name.clone());
        name
    }
}

impl Lowering<'_> {
    /// The column micro-kernel with epilogue `steps`, defined on first use: the same call as
    /// [`Lowering::tile`], for at most [`COLUMN_PIXELS`] pixels, computing each pixel as a sum
    /// over k of a vector of the tile's `rows` weights (one packed row of `a`) times that
    /// pixel's input, all its pixels together, in phases of k with independent accumulators.
    /// A tail of a few pixels (a 7x7 plane's 49th, a 14x14 plane's last 4) then costs about
    /// one cycle per k, plus half one per pixel, rather than the five of a 9-row narrow tile.
    /// From a panel, it reads the pixels packed row after row, `p_valid` floats per row. One
    /// pixel alone is summed in blocks of steps of k instead (see [`column_blocks`]).
    pub(crate) fn column_tile(&mut self, steps: &[Step], rows: usize, panel: Option<usize>) -> String {
        // Zero vectors: no tile of `tile`'s is zero vectors wide.
        let key = (steps.to_vec(), rows, 0, panel, Stream::Weights);
        if let Some(name) = self.tiles.get(&key) {
            return name.clone();
        }
        let name = self.global_name("column");
        let lanes = self.isa.lanes;
        let mut f = Function::new();
        // One body for each count of pixels, their loads and multiply-adds unrolled.
        for pixels in 1..=COLUMN_PIXELS {
            let exactly = f.let_("px", format!("icmp eq i64 %p_valid, {pixels}"));
            f.when(&exactly, |f| column_pixels(f, steps, rows, panel, pixels, lanes));
        }
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %rows, i64 %k, i64 %in_off, i64 %p_valid, ptr noalias %a, \
             ptr noalias %bias, ptr noalias %outs, ptr %residuals, i64 %out_off, i64 %m_valid)"
        )));
        self.tiles.insert(key, name.clone());
        name
    }
}

/// The body of a column tile (see [`Lowering::column_tile`]) for exactly `pixels` pixels.
fn column_pixels(
    f: &mut Function,
    steps: &[Step],
    rows: usize,
    panel: Option<usize>,
    pixels: usize,
    lanes: usize,
) {
    let ty = Ty::Vector(lanes);
    let vectors = rows.div_ceil(lanes);
    // One pixel sums most of k in blocks (see `column_blocks`), the rest in one phase.
    let blocked = pixels == 1;
    let phases = if blocked { 1 } else { (COLUMN_ACCUMULATORS / (vectors * pixels)).max(1) };
    // Accumulator `j * vectors + v` of each phase: vector `v` of the rows of pixel `j`; the
    // first phase starts at the bias, as in `tile`.
    let acc: Vec<Vec<String>> = (0..phases)
        .map(|phase| {
            (0..pixels * vectors)
                .map(|i| {
                    let init = match phase {
                        0 => f.load_ty(ty, "%bias", &(i % vectors * lanes).to_string(), None),
                        _ => "zeroinitializer".to_string(),
                    };
                    f.slot(ty, &init)
                })
                .collect()
        })
        .collect();
    let step = |f: &mut Function, k: &str, acc: &[String]| {
        // Row `k` of the input and its first pixel: a panel of a column tile's pixels has them
        // row after row (see [`panel_stride`]).
        let (row, first) = match panel {
            Some(_) => {
                let at = f.int("mul", k, pixels);
                ("%rows".to_string(), f.int("add", &at, "%in_off"))
            }
            None => {
                let slot = f.pointer_at("%rows", k);
                (f.let_("row", format!("load ptr, ptr {slot}")), "%in_off".to_string())
            }
        };
        let xs: Vec<String> = (0..pixels)
            .map(|j| {
                let at = f.int("add", &first, j);
                let x = f.load(&row, &at);
                f.splat(&x, lanes)
            })
            .collect();
        let a = f.int("mul", k, rows);
        prefetch_weights(f, &a);
        for v in 0..vectors {
            let at = f.int("add", &a, v * lanes);
            let w = f.load_ty(ty, "%a", &at, None);
            for (j, x) in xs.iter().enumerate() {
                f.fma_into(ty, &acc[j * vectors + v], &w, x);
            }
        }
    };
    if blocked {
        let done = column_blocks(f, rows, lanes, panel.is_some(), &acc[0]);
        let tail = f.int("sub", "%k", &done);
        f.count(&tail, |f, i| {
            let k = f.int("add", &done, i);
            step(f, &k, &acc[0]);
        });
    } else {
        in_phases(f, phases, |f, k, phase| step(f, k, &acc[phase]));
    }
    sum_phases(f, ty, &acc[0], acc[1..].iter());
    for j in 0..pixels {
        let at = f.int("add", "%out_off", j);
        for r in 0..rows {
            let live = f.let_("live", format!("icmp ult i64 {r}, %m_valid"));
            f.when(&live, |f| {
                let sums =
                    f.let_("s", format!("load {}, ptr {}", ty.name(), acc[0][j * vectors + r / lanes]));
                let y = f.let_("s", format!("extractelement {} {sums}, i64 {}", ty.name(), r % lanes));
                let y = epilogue::emit(steps, f, Ty::Scalar, &y, &mut |f| {
                    let slot = f.pointer_at("%residuals", &r.to_string());
                    let residual = f.let_("res", format!("load ptr, ptr {slot}"));
                    f.load(&residual, &at)
                });
                let slot = f.pointer_at("%outs", &r.to_string());
                let out = f.let_("out", format!("load ptr, ptr {slot}"));
                f.store(&y, &out, &at);
            });
        }
    }
}

/// Adds one pixel's products over k into `acc` (its vectors of the tile's `rows` rows), `lanes`
/// steps of k at a time, and returns the first step of k left (`%k` rounded down to `lanes`).
/// The packed weights of a block of `lanes` steps, `[k][rows]`, are `rows` whole vectors;
/// lane j of vector v holds flat weight `i = v * lanes + j`, of step `i / rows` and row
/// `i % rows`, and multiplies the pixel's input of that step, permuted from one vector of
/// the block's `lanes` inputs (consecutive in a `panel`, else gathered from the rows, as
/// MobileNet V2's 7x7 projections on two threads read them). Each lane sums its own (step,
/// row) pairs, and the flat sums fold back into rows once, through the stack. Per step of k
/// that is `rows / lanes` loads, permutes and multiply-adds, where a vector of rows per step
/// costs a load across cache lines, a broadcast and a multiply-add: MobileNet V2's 7x7 planes
/// have one pixel past their three vectors, and its column took 11-13% of the 7x7 layers'
/// time; the 960 to 320 projection alone: 176-184 -> 160-168 us.
fn column_blocks(f: &mut Function, rows: usize, lanes: usize, panel: bool, acc: &[String]) -> String {
    let ty = Ty::Vector(lanes);
    let flat: Vec<String> = (0..rows).map(|_| f.slot(ty, "zeroinitializer")).collect();
    let blocks = f.int("udiv", "%k", lanes);
    f.count(&blocks, |f, b| {
        let k0 = f.int("mul", b, lanes);
        // The pixel's inputs of the block's steps: consecutive in a panel, else one from each row.
        let x = if panel {
            let at = f.int("add", &k0, "%in_off");
            f.load_ty(ty, "%rows", &at, None)
        } else {
            (0..lanes).fold("poison".to_string(), |v, j| {
                let k = f.int("add", &k0, j);
                let slot = f.pointer_at("%rows", &k);
                let row = f.let_("row", format!("load ptr, ptr {slot}"));
                let x = f.load(&row, "%in_off");
                f.let_("x", format!("insertelement {} {v}, float {x}, i64 {j}", ty.name()))
            })
        };
        let a0 = f.int("mul", &k0, rows);
        for (v, slot) in flat.iter().enumerate() {
            let at = f.int("add", &a0, v * lanes);
            prefetch_weights(f, &at);
            let w = f.load_ty(ty, "%a", &at, None);
            let xs = f.pick((&x, lanes), (0..lanes).map(|j| (v * lanes + j) / rows));
            f.fma_into(ty, slot, &w, &xs);
        }
    });
    // Flat sum i, stored at float i, is row i % rows of the `lanes` rows of a `[lanes][rows]`
    // matrix: row r's total is that matrix's column r. Zeros past the flat sums fill the
    // spare lanes of the last row's vectors.
    let vectors = rows.div_ceil(lanes);
    let sums = f.stack_floats((rows + vectors) * lanes);
    for (v, slot) in flat.iter().enumerate() {
        let value = f.let_("flat", format!("load {}, ptr {slot}", ty.name()));
        f.store_ty(ty, &value, &sums, &(v * lanes).to_string(), None);
    }
    for v in 0..vectors {
        f.store_ty(ty, "zeroinitializer", &sums, &((rows + v) * lanes).to_string(), None);
    }
    for q in 0..lanes {
        for (v, slot) in acc.iter().enumerate() {
            let part = f.load_ty(ty, &sums, &(q * rows + v * lanes).to_string(), None);
            f.add_vector(ty, slot, &part);
        }
    }
    f.int("mul", &blocks, lanes)
}

/// Where the tiles of one group of a product read their weights and write their results.
pub(crate) struct Outputs {
    outs: String,
    residuals: Option<String>,
    /// Blob offsets of the group's packed weights and bias.
    a: String,
    bias: String,
    rows: usize,
}

impl Outputs {
    pub(crate) fn new(
        l: &mut Lowering<'_>,
        f: &mut Function,
        out: &Operand,
        chain: &Chain,
        group: &str,
        pr: &Product,
        n: &str,
    ) -> Outputs {
        let first = f.int("mul", group, pr.m);
        let outs = match out {
            Operand::Planes(out) => l.plane_array(f, *out, &first, pr.m, n),
            Operand::Scratch(rows) => rows.array(f, pr.groups, group, n),
            Operand::Panels(_) => unreachable!("packed panels are an input"),
        };
        Outputs::to_array(l, f, outs, chain, group, pr, n)
    }

    /// As [`Outputs::new`], the output rows' addresses in the array `outs` (one pointer per
    /// output channel of the group).
    pub(crate) fn to_array(
        l: &mut Lowering<'_>,
        f: &mut Function,
        outs: String,
        chain: &Chain,
        group: &str,
        pr: &Product,
        n: &str,
    ) -> Outputs {
        let rows = pr.rows;
        let first = f.int("mul", group, pr.m);
        let residuals = chain.residual.map(|r| l.plane_array(f, r, &first, pr.m, n));
        let a = f.int("mul", group, pr.m.div_ceil(rows) * pr.k * rows);
        let a = f.int("add", &a, pr.a);
        let bias = f.int("add", &first, pr.bias);
        Outputs { outs, residuals, a, bias, rows }
    }

    /// Calls `tile` for output-channel tile `mt`; a tile defined to prefetch (see
    /// [`Lowering::tile_prefetching`]) takes `prefetch`, its first address and step per k.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call(
        &self,
        f: &mut Function,
        tile: &str,
        pr: &Product,
        mt: &str,
        inputs: &str,
        in_off: &str,
        p_valid: &str,
        out_off: &str,
        prefetch: Option<(&str, usize)>,
    ) {
        let whole = Part { k: 0..pr.k, zero_bias: None };
        self.call_part(f, tile, pr, mt, &whole, inputs, in_off, p_valid, out_off, prefetch);
    }

    /// [`Outputs::call`] over the reduction rows `part.k` alone, `inputs` holding just those.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call_part(
        &self,
        f: &mut Function,
        tile: &str,
        pr: &Product,
        mt: &str,
        part: &Part,
        inputs: &str,
        in_off: &str,
        p_valid: &str,
        out_off: &str,
        prefetch: Option<(&str, usize)>,
    ) {
        let m0 = f.int("mul", mt, self.rows);
        let left = f.int("sub", pr.m, &m0);
        let m_valid = f.umin(&left, self.rows);
        let a = f.int("mul", mt, pr.k * self.rows);
        let a = f.int("add", &a, &self.a);
        let a = f.int("add", &a, part.k.start * self.rows);
        let a = f.float_at("%w", &a);
        let bias = match part.zero_bias {
            Some(zeros) => f.float_at("%w", &zeros.to_string()),
            None => {
                let bias = f.int("add", &self.bias, &m0);
                f.float_at("%w", &bias)
            }
        };
        let outs = f.pointer_at(&self.outs, &m0);
        let residuals = match &self.residuals {
            Some(r) => f.pointer_at(r, &m0),
            None => "null".into(),
        };
        f.line(format!(
            "call void {tile}(ptr {inputs}, i64 {}, i64 {in_off}, i64 {p_valid}, ptr {a}, ptr {bias}, ptr {outs}, \
             ptr {residuals}, i64 {out_off}, i64 {m_valid}{})",
            part.k.len(),
            prefetch.map_or(String::new(), |(at, step)| format!(", ptr {at}, i64 {step}"))
        ));
    }
}

/// The reduction rows a tile call sums over, and, for a call that leaves the bias to another
/// part, the blob offset of zeros to start from instead.
pub(crate) struct Part {
    pub k: std::ops::Range<usize>,
    pub zero_bias: Option<usize>,
}

/// Emits `step(k, phase)` for every `k < %k`: `phases` consecutive steps per round, each
/// with its own phase (its own accumulators), then the rest of k in phase 0.
fn in_phases(f: &mut Function, phases: usize, step: impl Fn(&mut Function, &str, usize)) {
    let rounds = f.int("udiv", "%k", phases);
    f.count(&rounds, |f, round| {
        let first = f.int("mul", round, phases);
        for phase in 0..phases {
            let k = f.int("add", &first, phase);
            step(f, &k, phase);
        }
    });
    let done = f.int("mul", &rounds, phases);
    let tail = f.int("sub", "%k", &done);
    f.count(&tail, |f, i| {
        let k = f.int("add", &done, i);
        step(f, &k, 0);
    });
}

/// Adds the accumulators of every later phase into the first phase's `first`, slot by slot.
fn sum_phases<'a>(f: &mut Function, ty: Ty, first: &[String], later: impl Iterator<Item = &'a Vec<String>>) {
    for phase in later {
        for (slot, other) in first.iter().zip(phase) {
            let v = f.let_("p", format!("load {}, ptr {other}", ty.name()));
            f.add_vector(ty, slot, &v);
        }
    }
}

/// What a micro-kernel prefetches besides its own weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stream {
    /// Nothing more.
    Weights,
    /// A second stream into L2, for what runs after the tile: two more arguments, `ptr %pf,
    /// i64 %pf_step`, and each step `k` of the reduction asks for byte `k * pf_step` from `pf`.
    Far,
    /// The next pixel tile of each input row (read from planes, not a panel), into L1.
    NextPixels,
}

/// Prefetches the weights `WEIGHTS_AHEAD` bytes past float `a` of a micro-kernel's `%a`.
pub(crate) fn prefetch_weights(f: &mut Function, a: &str) {
    let ahead = f.int("mul", a, 4);
    let ahead = f.int("add", &ahead, WEIGHTS_AHEAD);
    f.prefetch("%a", &ahead);
}

/// The masks of the `vectors` vectors of a tile of which the first `p_valid` lanes are valid.
pub(crate) fn lane_masks(f: &mut Function, p_valid: &str, lanes: usize, vectors: usize) -> Vec<String> {
    let valid = f.let_("pv", format!("trunc i64 {p_valid} to i32"));
    let one = f.let_("pv", format!("insertelement <{lanes} x i32> poison, i32 {valid}, i64 0"));
    let bound = f.let_(
        "pv",
        format!(
            "shufflevector <{lanes} x i32> {one}, <{lanes} x i32> poison, <{lanes} x i32> zeroinitializer"
        ),
    );
    (0..vectors)
        .map(|v| {
            let lane: Vec<String> = (0..lanes).map(|j| format!("i32 {}", v * lanes + j)).collect();
            f.let_("mask", format!("icmp ult <{lanes} x i32> <{}>, {bound}", lane.join(", ")))
        })
        .collect()
}

/// The address of the packed panel of pixel tile `pt` of item `item` (`n * groups + group`):
/// `k` rows of `cols` floats from arena byte `base`, the panels of one item's group in order.
pub(crate) fn packed_panel(
    f: &mut Function,
    pr: &Product,
    base: usize,
    p_tiles: usize,
    item: &str,
    pt: &str,
) -> String {
    let panel = f.int("mul", item, p_tiles);
    let panel = f.int("add", &panel, pt);
    let at = f.int("mul", &panel, pr.k * pr.cols() * 4);
    let at = f.int("add", &at, base);
    f.let_("panel", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"))
}

/// Whether a tile of `p_valid` pixels (a register) is few enough for the column tile (at most
/// [`COLUMN_PIXELS`]).
fn column_pixels_only(f: &mut Function, p_valid: &str) -> String {
    f.let_("few", format!("icmp ule i64 {p_valid}, {COLUMN_PIXELS}"))
}

/// The floats from one row of a pixel tile's panel to the next: `cols`, one tile wide, or, for
/// the `p_valid` pixels of a column tile (`few`: at most [`COLUMN_PIXELS`]), `p_valid`, row
/// after row with no gap, so that the column tile's reads stay in a few lines (as
/// [`Lowering::column_tile`] reads them). Both packers, 1x1 (`pack_panel`) and im2col, lay
/// panels out by it; a constant where the tile's kind is known (measured: a register stride
/// slowed MobileNet V2's 960 to 320 packing step by 1-3%).
fn panel_stride(few: bool, p_valid: &str, cols: usize) -> String {
    if few { p_valid.to_string() } else { cols.to_string() }
}

/// The row stride of the panel of a tile of `p_valid` pixels (see [`panel_stride`]), for a
/// tile whose kind is known only at run time.
pub(crate) fn panel_row_stride(f: &mut Function, p_valid: &str, cols: usize) -> String {
    let few = column_pixels_only(f, p_valid);
    let (few_stride, stride) = (panel_stride(true, p_valid, cols), panel_stride(false, p_valid, cols));
    f.let_("stride", format!("select i1 {few}, i64 {few_stride}, i64 {stride}"))
}

/// Copies the pixels `in_off..in_off + p_valid` of every row of `rows` (an array of `pr.k`
/// row addresses) into the panel at `panel`, its rows laid out by [`panel_stride`].
fn pack_panel(f: &mut Function, rows: &str, panel: &str, in_off: &str, p_valid: &str, pr: &Product) {
    let (lanes, cols) = (pr.lanes, pr.cols());
    let ty = Ty::Vector(lanes);
    let few = column_pixels_only(f, p_valid);
    // A column tile's few pixels one float at a time.
    f.when(&few, |f| {
        f.count(pr.k, |f, k| {
            let slot = f.pointer_at(rows, k);
            let row = f.let_("row", format!("load ptr, ptr {slot}"));
            let to = f.int("mul", k, panel_stride(true, p_valid, cols));
            f.count(p_valid, |f, j| {
                let at = f.int("add", in_off, j);
                let x = f.load(&row, &at);
                let at = f.int("add", &to, j);
                f.store(&x, panel, &at);
            });
        });
    });
    let more = f.let_("more", format!("xor i1 {few}, true"));
    let full = f.let_("full", format!("icmp eq i64 {p_valid}, {cols}"));
    let partial = f.let_("partial", format!("xor i1 {full}, true"));
    let partial = f.let_("partial", format!("and i1 {partial}, {more}"));
    for (condition, masked) in [(&full, false), (&partial, true)] {
        f.when(condition, |f| {
            let masks = if masked { lane_masks(f, p_valid, lanes, pr.vectors) } else { Vec::new() };
            f.count(pr.k, |f, k| {
                let slot = f.pointer_at(rows, k);
                let row = f.let_("row", format!("load ptr, ptr {slot}"));
                let to = f.int("mul", k, panel_stride(false, p_valid, cols));
                for v in 0..pr.vectors {
                    let at = f.int("add", in_off, v * lanes);
                    let x = f.load_ty(ty, &row, &at, masks.get(v).map(String::as_str));
                    let at = f.int("add", &to, v * lanes);
                    f.store_ty(ty, &x, panel, &at, None);
                }
            });
        });
    }
}

/// The micro-kernels a product's tiles take: `wide`, the schedule's tile; `narrow`, one vector
/// wide for tiles several vectors wide, so that a pixel tail that fits one vector costs half
/// the multiply-adds; and `column`, for a tail of up to [`COLUMN_PIXELS`] pixels.
pub(crate) struct Tiles {
    pub wide: String,
    narrow: Option<String>,
    column: String,
    lanes: usize,
}

impl Tiles {
    /// Emits `call(f, tile)` with the micro-kernel that fits `p_valid` pixels: `column` for up
    /// to [`COLUMN_PIXELS`], `narrow` (when there is one) for one vector, else `wide`.
    pub(crate) fn fitting(&self, f: &mut Function, p_valid: &str, call: impl Fn(&mut Function, &str)) {
        let few = column_pixels_only(f, p_valid);
        let more = f.let_("more", format!("xor i1 {few}, true"));
        f.when(&few, |f| call(f, &self.column));
        f.when(&more, |f| {
            let Some(narrow) = &self.narrow else { return call(f, &self.wide) };
            let short = f.let_("short", format!("icmp ule i64 {p_valid}, {}", self.lanes));
            let long = f.let_("long", format!("xor i1 {short}, true"));
            f.when(&short, |f| call(f, narrow));
            f.when(&long, |f| call(f, &self.wide));
        });
    }
}

/// The relative time of a micro-tile of `rows` output channels over `pixels` pixels, per step
/// of the reduction, in multiply-adds issued two per cycle: a full or narrow tile's; a column
/// tile's (at most [`COLUMN_PIXELS`]) loads, a broadcast per pixel and a vector per vector of
/// rows, issued two per cycle too.
fn tile_cost(pixels: usize, rows: usize, lanes: usize) -> usize {
    let vectors = rows.div_ceil(lanes);
    match pixels <= COLUMN_PIXELS {
        true => (pixels + vectors).max(pixels * vectors),
        false => rows * pixels.div_ceil(lanes),
    }
}

/// The first tile and the count of tiles (registers) of task `task` among `tasks` sharing
/// `tiles` tiles: from the table of [`balanced_bounds`] where there is one, else evenly.
pub(crate) fn task_tiles(
    f: &mut Function,
    bounds: Option<&str>,
    task: &str,
    tasks: usize,
    tiles: usize,
) -> (String, String) {
    match bounds {
        Some(table) => {
            let first = f.table_entry(table, tasks + 1, task);
            let next = f.int("add", task, 1);
            let end = f.table_entry(table, tasks + 1, &next);
            let count = f.int("sub", &end, &first);
            (first, count)
        }
        None => task_items(f, task, tasks, tiles),
    }
}

/// The first tile of each of `tasks` tasks sharing `tiles` tiles of cost `cost(t)`, and
/// `tiles` last, so that each task's cost is within a tile of an even share; `None` when every tile costs
/// the same (then [`task_items`] shares them by count). A pixel tail otherwise falls into the
/// last tasks, cheap ones: MobileNet V2's 14x14 expansions (seven pixel tiles, the last of 4
/// pixels) left one of two threads idle for a tenth of the step.
pub(crate) fn balanced_bounds(
    tasks: usize,
    tiles: usize,
    cost: impl Fn(usize) -> usize,
) -> Option<Vec<usize>> {
    let costs: Vec<usize> = (0..tiles).map(cost).collect();
    if costs.windows(2).all(|w| w[0] == w[1]) {
        return None;
    }
    let total: usize = costs.iter().sum();
    let mut bounds = Vec::with_capacity(tasks + 1);
    let mut done = 0;
    for (t, c) in costs.iter().enumerate() {
        // Task `bounds.len()` starts at the first tile reached past its share of the total.
        while bounds.len() < tasks && done * tasks >= bounds.len() * total {
            bounds.push(t);
        }
        done += c;
    }
    bounds.resize(tasks, tiles);
    bounds.push(tiles);
    Some(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_tiles_keep_their_count_and_share_rows_evenly() {
        assert_eq!(balanced_tile([9, 3], 64), [8, 3]);
        assert_eq!(balanced_tile([14, 2], 64), [13, 2]);
        assert_eq!(balanced_tile([9, 3], 576), [9, 3]);
        assert_eq!(balanced_tile([9, 3], 4), [4, 3]);
        assert_eq!(balanced_tile([9, 3], 0), [1, 3]);
        for m in 1..200 {
            for rows in 1..=16 {
                let [balanced, _] = balanced_tile([rows, 2], m);
                assert!(balanced <= rows);
                assert_eq!(m.div_ceil(balanced), m.div_ceil(rows), "{m} channels, {rows} rows");
            }
        }
    }

    /// The costs of each task under `bounds`.
    fn task_costs(bounds: &[usize], cost: impl Fn(usize) -> usize) -> Vec<usize> {
        bounds.windows(2).map(|w| (w[0]..w[1]).map(&cost).sum()).collect()
    }

    #[test]
    fn tasks_share_tiles_by_cost() {
        assert_eq!(balanced_bounds(8, 100, |_| 3), None, "equal tiles: shared by count");
        // MobileNet V2's 96->576 at 14x14 on a 9x3 tile: 64 channel tiles under each of 5
        // pixel tiles, the last of 4 pixels (a column tile), pixel-major.
        let cost = |t: usize| if t / 64 == 4 { tile_cost(4, 9, 16) } else { tile_cost(48, 9, 16) };
        let bounds = balanced_bounds(8, 5 * 64, cost).unwrap();
        assert_eq!((bounds.len(), bounds[0], bounds[8]), (9, 0, 5 * 64));
        assert!(bounds.windows(2).all(|w| w[0] <= w[1]), "{bounds:?}");
        let costs = task_costs(&bounds, cost);
        let (least, most) = (costs.iter().min().unwrap(), costs.iter().max().unwrap());
        assert!(most - least < 2 * tile_cost(48, 9, 16), "{costs:?}");
        // By count, the last task would hold only the cheap tail: a fifth of another's cost.
        let by_count: Vec<usize> = (0..=8).map(|j| j * 5 * 64 / 8).collect();
        let uneven = task_costs(&by_count, cost);
        assert!(uneven[7] * 3 < uneven[0], "{uneven:?}");
    }

    #[test]
    fn more_tasks_than_tiles_leave_some_empty() {
        let bounds = balanced_bounds(4, 2, |t| [5, 1][t]).unwrap();
        assert_eq!(bounds.len(), 5);
        assert_eq!(task_costs(&bounds, |t| [5, 1][t]).iter().sum::<usize>(), 6);
        assert_eq!(bounds[4], 2);
    }
}
