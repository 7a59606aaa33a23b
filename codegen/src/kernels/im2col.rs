//! Convolutions no other kernel takes (strided and dilated k x k convolutions, 1x1
//! convolutions of stride 2: ResNet's downsampling) as products over im2col panels: the
//! receptive fields of a pixel tile packed once (one row per step of the reduction, one tile
//! of pixels wide), then read as the packed sweeps of 1x1 convolutions read theirs
//! (`kernels::gemm`). Each task had copied the fields of its own block of pixels, by gathers
//! (stride 2), again for each range of output channels it shared the block with, and a block
//! of the last pixel or few of a 7x7 plane read all of the weights once more: ResNet-18's
//! stride-2 3x3 convolutions ran at 37-49% of the FMA peak, their copies 29-37% of the time.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::Chain;
use crate::kernels::gemm::{Operand, Outputs, Product, Stream, lane_masks, packed_panel, panel_row_stride};
use crate::lower::{Lowering, task_count, task_items};
use crate::schedule::Sweep;

/// Floats of panels a packing task should write.
const TASK_FLOATS: usize = 1 << 16;

/// Multiply-adds of the smallest task that packs its own panels.
const TASK_MACS: usize = 1 << 20;

/// Pixel tiles from which each task packs the panels of its own (see
/// [`Lowering::im2col_by_tiles`]): enough to share among the threads.
const TASK_TILES: usize = 8;

impl Lowering<'_> {
    /// Convolution `id` with its fused epilogues `chain`, over im2col panels: the product's
    /// tiles in the packed order that reads the weights once for each pixel tile (`Packed`),
    /// or once in all (`PackedPixels`, where the schedule sweeps pixels).
    pub fn im2col_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let Op::Conv(conv) = &graph.node(id).op else { unreachable!("a convolution") };
        let mut pr = self.product(id, chain);
        pr.sweep = match pr.sweep {
            Sweep::Pixels | Sweep::PackedPixels => Sweep::PackedPixels,
            _ => Sweep::Packed,
        };
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let ow = graph.shape(out).dims()[3];
        let fields = Fields::of(graph.shape(x).dims(), ow, conv, &pr, self.isa.lanes);
        let p_tiles = pr.p.div_ceil(pr.cols());
        if pr.sweep == Sweep::Packed && p_tiles >= TASK_TILES {
            self.im2col_by_tiles(f, pr, (x, out), &fields, chain, p_tiles);
        } else {
            let panels = self.pack_receptive_fields(f, &pr, x, &fields, p_tiles);
            self.gemm(f, pr, Operand::Panels(panels), Operand::Planes(out), chain, None);
        }
    }

    /// Packs the receptive fields of every pixel tile of product `pr` (over `x`) into panels
    /// in arena scratch, laid out as `pack_panels` lays out a 1x1 convolution's. Tasks take a
    /// range of rows of one tile, so that a deep layer's few tiles still split among the
    /// threads. Returns the arena offset.
    fn pack_receptive_fields(
        &mut self,
        f: &mut Function,
        pr: &Product,
        x: ir::Value,
        fields: &Fields,
        p_tiles: usize,
    ) -> usize {
        let panel_floats = pr.k * pr.cols();
        let base = self.scratch_arena(pr.batch * pr.groups * p_tiles * panel_floats * 4);
        let k_chunks = panel_floats.div_ceil(TASK_FLOATS).clamp(1, pr.k);
        self.parallel(f, pr.batch * pr.groups * p_tiles * k_chunks, |l, f| {
            let chunk = f.int("urem", "%t", k_chunks);
            let rest = f.int("udiv", "%t", k_chunks);
            let pt = f.int("urem", &rest, p_tiles);
            let item = f.int("udiv", &rest, p_tiles);
            let (group, n) = (f.int("urem", &item, pr.groups), f.int("udiv", &item, pr.groups));
            let sources = fields.sources(l, f, x, (&group, &n));
            let tile = pr.pixel_tile(f, &pt);
            let panel = packed_panel(f, pr, base, p_tiles, &item, &pt);
            let rows = task_items(f, &chunk, k_chunks, pr.k);
            fields.pack(f, &sources, &panel, (&tile.0, &tile.1), (&rows.0, &rows.1));
        });
        base
    }

    /// Product `pr` over `x` into `out`, where its pixel tiles are enough to share among the
    /// threads: each task packs the panel of each of its pixel tiles into its thread's scratch
    /// and multiplies it with every output-channel tile. As fast as one pass packing them all
    /// on ResNet-18's first stride-2 convolution (900 µs alone), without an arena that holds
    /// every panel (1.8 MB there, eight times that at batch 8).
    fn im2col_by_tiles(
        &mut self,
        f: &mut Function,
        pr: Product,
        (x, out): (ir::Value, ir::Value),
        fields: &Fields,
        chain: &Chain,
        p_tiles: usize,
    ) {
        let cols = pr.cols();
        let m_tiles = pr.m.div_ceil(pr.rows);
        let chunks = task_count(p_tiles, TASK_MACS / (pr.m * cols * pr.k));
        let tiles = self.tiles(&chain.steps, &pr, Some(cols), Stream::Weights);
        let out = Operand::Planes(out);
        self.parallel(f, pr.batch * pr.groups * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let item = f.int("udiv", "%t", chunks);
            let (group, n) = (f.int("urem", &item, pr.groups), f.int("udiv", &item, pr.groups));
            let sources = fields.sources(l, f, x, (&group, &n));
            let outputs = Outputs::new(l, f, &out, chain, &group, &pr, &n);
            let panel = f.let_("panel", format!("call ptr @archc_scratch(i64 {})", pr.k * cols * 4));
            let (first, count) = task_items(f, &chunk, chunks, p_tiles);
            f.count(&count, |f, i| {
                let pt = f.int("add", &first, i);
                let (p0, p_valid) = pr.pixel_tile(f, &pt);
                fields.pack(f, &sources, &panel, (&p0, &p_valid), ("0", &pr.k.to_string()));
                f.count(m_tiles, |f, mt| {
                    tiles.fitting(f, &p_valid, |f, t| {
                        outputs.call(f, t, &pr, mt, &panel, "0", &p_valid, &p0, None)
                    });
                });
            });
        });
    }
}

/// How a convolution's receptive fields fill panels: row `k` of a pixel tile's panel holds,
/// for each of its pixels, the input of channel `k / (kh * kw)` of the group at kernel tap
/// `k % (kh * kw)`, its rows laid out as `gemm::panel_stride` says.
struct Fields<'a> {
    conv: &'a ir::Conv,
    /// Input channels per group, height and width.
    channels: usize,
    input: [usize; 2],
    /// Output columns.
    ow: usize,
    cols: usize,
    lanes: usize,
}

impl<'a> Fields<'a> {
    /// The fields of `conv` from an input of dimensions `xs` into `ow` output columns.
    fn of(xs: &[usize], ow: usize, conv: &'a ir::Conv, pr: &Product, lanes: usize) -> Fields<'a> {
        Fields { conv, channels: xs[1] / pr.groups, input: [xs[2], xs[3]], ow, cols: pr.cols(), lanes }
    }

    /// The table of the input planes of group `group` of batch item `n`.
    fn sources(&self, l: &mut Lowering, f: &mut Function, x: ir::Value, (group, n): (&str, &str)) -> String {
        let first = f.int("mul", group, self.channels);
        l.plane_array(f, x, &first, self.channels, n)
    }

    /// Rows `first..first + count` of the panel at `panel` of the pixels `p0..p0 + p_valid`,
    /// from the input planes in the table `sources`.
    fn pack(
        &self,
        f: &mut Function,
        sources: &str,
        panel: &str,
        (p0, p_valid): (&str, &str),
        (first, count): (&str, &str),
    ) {
        let [kh, kw] = self.conv.kernel;
        let stride = panel_row_stride(f, p_valid, self.cols);
        f.count(count, |f, i| {
            let k = f.int("add", first, i);
            let ci = f.int("udiv", &k, kh * kw);
            let r = f.int("urem", &k, kh * kw);
            let (ky, kx) = (f.int("udiv", &r, kw), f.int("urem", &r, kw));
            let dy = f.int("mul", &ky, self.conv.dilation[0]);
            let dy = f.int("sub", &dy, self.conv.padding[0]);
            let dx = f.int("mul", &kx, self.conv.dilation[1]);
            let dx = f.int("sub", &dx, self.conv.padding[1]);
            let slot = f.pointer_at(sources, &ci);
            let src = f.let_("src", format!("load ptr, ptr {slot}"));
            let at = f.int("mul", &k, &stride);
            let dst = f.float_at(panel, &at);
            let field =
                Field { src: &src, dy: &dy, dx: &dx, input: self.input, ow: self.ow, lanes: self.lanes };
            field.copy(f, &dst, p0, p_valid, self.conv.stride);
        });
    }
}

/// One row of im2col: the input at kernel offset `(dy, dx)` (registers) of each output
/// pixel's window, from the input plane `src` of `input` (height, width) rows and columns.
struct Field<'a> {
    src: &'a str,
    dy: &'a str,
    dx: &'a str,
    input: [usize; 2],
    /// Output columns.
    ow: usize,
    lanes: usize,
}

impl Field<'_> {
    /// Writes `dst[j]` for the pixels `p_start + j` (`j < p_count`), zero outside the input.
    /// Pixels are walked output row by output row, each split into its zero head, its
    /// interior and its zero tail. Where the columns are consecutive, or (stride 2) every
    /// other one, the interior is copied a vector at a time (see [`Field::columns`]); other
    /// strides copy it one float at a time.
    fn copy(&self, f: &mut Function, dst: &str, p_start: &str, p_count: &str, [sy, sx]: [usize; 2]) {
        let ([h, w], ow, lanes) = (self.input, self.ow, self.lanes);
        // Output columns whose input column is inside: [first_in, end_in).
        let neg = f.int("sub", 0, self.dx);
        let neg = f.smax(&neg, 0);
        let first_in = f.ceil_div(&neg, sx);
        let span = f.int("sub", w as i64 - 1, self.dx);
        let end_in = f.int("sdiv", &span, sx);
        let end_in = f.int("add", &end_in, 1);
        let negative = f.let_("neg", format!("icmp slt i64 {span}, 0"));
        let end_in = f.let_("end", format!("select i1 {negative}, i64 0, i64 {end_in}"));
        let end_in = f.smin(&end_in, ow);
        // Output columns up to which whole vectors of the interior load only floats of the
        // row: the two vectors a stride-2 one loads reach one column past its last window.
        let vectors_end = match sx {
            1 => Some(end_in.clone()),
            2 => {
                let room = f.int("sub", w as i64, self.dx);
                Some(f.int("sdiv", &room, 2))
            }
            _ => None,
        };
        let oy_first = f.int("udiv", p_start, ow);
        let p_end = f.int("add", p_start, p_count);
        let last = f.int("sub", &p_end, 1);
        let oy_last = f.int("udiv", &last, ow);
        let rows = f.int("sub", &oy_last, &oy_first);
        let rows = f.int("add", &rows, 1);
        f.count(&rows, |f, r| {
            let oy = f.int("add", &oy_first, r);
            let row0 = f.int("mul", &oy, ow);
            let lo = f.smax(p_start, &row0);
            let lo = f.int("sub", &lo, &row0);
            let row_end = f.int("add", &row0, ow);
            let hi = f.smin(&p_end, &row_end);
            let hi = f.int("sub", &hi, &row0);
            // dst[base + ox] holds output column ox of this row (base < 0 on the tile's first row).
            let base = f.int("sub", &row0, p_start);
            let iy = f.int("mul", &oy, sy);
            let iy = f.int("add", &iy, self.dy);
            let row_in = f.let_("in", format!("icmp ult i64 {iy}, {h}"));
            let in_lo = f.smax(&lo, &first_in);
            let in_lo = f.smin(&in_lo, &hi);
            let in_lo = f.let_("lo", format!("select i1 {row_in}, i64 {in_lo}, i64 {hi}"));
            let in_hi = f.smin(&hi, &end_in);
            let in_hi = f.smax(&in_hi, &in_lo);
            let head = f.int("sub", &in_lo, &lo);
            let first = f.int("add", &base, &lo);
            f.fill(dst, &first, &head, "0.0");
            let row = f.int("mul", &iy, w);
            let row = f.int("add", &row, self.dx);
            match &vectors_end {
                Some(end) => {
                    let end = f.smin(end, &in_hi);
                    let end = f.smax(&end, &in_lo);
                    let n = f.int("sub", &end, &in_lo);
                    let vectors = f.int("udiv", &n, lanes);
                    f.count(&vectors, |f, v| {
                        let ox = f.int("mul", v, lanes);
                        let ox = f.int("add", &in_lo, &ox);
                        self.columns(f, dst, (&row, &base, &ox), sx, None);
                    });
                    // What is left (fewer than a vector, and a stride-2 row's last column) in
                    // one vector stored masked, its loads masked to the columns it reads.
                    let copied = f.int("mul", &vectors, lanes);
                    let ox = f.int("add", &in_lo, &copied);
                    let left = f.int("sub", &in_hi, &ox);
                    let any = f.let_("any", format!("icmp sgt i64 {left}, 0"));
                    f.when(&any, |f| self.columns(f, dst, (&row, &base, &ox), sx, Some(&left)));
                }
                None => {
                    let inside = f.int("sub", &in_hi, &in_lo);
                    f.count(&inside, |f, i| {
                        let ox = f.int("add", &in_lo, i);
                        let ix = f.int("mul", &ox, sx);
                        let at = f.int("add", &row, &ix);
                        let v = f.load(self.src, &at);
                        let to = f.int("add", &base, &ox);
                        f.store(&v, dst, &to);
                    });
                }
            }
            let tail = f.int("sub", &hi, &in_hi);
            let first = f.int("add", &base, &in_hi);
            f.fill(dst, &first, &tail, "0.0");
        });
    }

    /// One vector of the interior of a row from output column `ox` on (`row`, the float of
    /// its kernel offset in the plane; `base`, where output column 0 goes in `dst`): the
    /// consecutive input columns (stride 1) or the even ones of two vectors (stride 2), all
    /// `lanes` of them, or with `count` that many (loads and store masked).
    fn columns(
        &self,
        f: &mut Function,
        dst: &str,
        (row, base, ox): (&str, &str, &str),
        sx: usize,
        count: Option<&str>,
    ) {
        let (lanes, ty) = (self.lanes, Ty::Vector(self.lanes));
        let ix = f.int("mul", ox, sx);
        let at = f.int("add", row, &ix);
        // The masks of the floats read (`sx * count - sx + 1` of them) and of the store.
        let (reads, store) = match count {
            Some(count) => {
                let read = f.int("mul", count, sx);
                let read = f.int("sub", &read, sx - 1);
                (lane_masks(f, &read, lanes, sx), lane_masks(f, count, lanes, 1).pop())
            }
            None => (Vec::new(), None),
        };
        let value = f.load_ty(ty, self.src, &at, reads.first().map(String::as_str));
        let value = if sx == 1 {
            value
        } else {
            let at = f.int("add", &at, lanes);
            let next = f.load_ty(ty, self.src, &at, reads.get(1).map(String::as_str));
            f.shuffle(&value, &next, lanes, (0..lanes).map(|l| 2 * l))
        };
        let to = f.int("add", base, ox);
        f.store_ty(ty, &value, dst, &to, store.as_deref());
    }
}
