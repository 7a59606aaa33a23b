//! Sliding windows over one channel plane at a time: depthwise convolutions (any kernel
//! size, stride and dilation) and max / average pooling, computed a vector of output columns
//! by a block of output rows at a time, the kernel's weights in registers. Stride 1 reads the
//! input planes where they are: taps on padding rows are left out and the vectors that cross
//! the plane's left or right edge are loaded masked, so that only the edge columns and rows
//! pay for the padding. Other strides first copy each plane, padded and with its columns
//! split into phases, so that every tap reads consecutive floats along an output row.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty, lane_mask, tail_mask};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::geometry::Window;
use crate::lower::{Lowering, task_count, task_items};

/// Work (window taps plus padded copies) a task should hold.
const TASK_WORK: usize = 1 << 16;

/// Padded planes up to this size are filled a channel ahead, in a second buffer.
const DOUBLE_BUFFERED_BYTES: usize = 4 << 10;

/// Most output rows computed together: with a 3x3 window, 4 rows read 6 input rows instead of 12.
const MAX_BLOCK_ROWS: usize = 4;

/// How a window's values combine.
enum Combine {
    /// `bias + sum w * x`, weights and bias at these blob offsets.
    Conv {
        weights: usize,
        bias: usize,
    },
    Max,
    /// The mean over the whole window, padding included (PyTorch's `count_include_pad`).
    Average,
}

/// Whether conv `conv` reading `channels` input channels is depthwise (one window per channel).
pub fn depthwise(conv: &ir::Conv, channels: usize) -> bool {
    conv.groups == channels && conv.out_channels == channels
}

/// One channel's windows, ready to be computed block by block: how they combine, the
/// kernel's taps (splat weights) and starting value, and where the results go.
struct ChannelWindows<'a> {
    combine: &'a Combine,
    taps: Vec<String>,
    init: String,
    at: Window,
    lanes: usize,
    dst: String,
    residual: Option<String>,
    steps: &'a [Step],
}

/// The vector of tap `kx` (a column offset of `kx * dilation`) of input row `j` of a block
/// (counted from the block's first output row times the stride), or none where the tap lies
/// wholly on padding that leaves the result as it is.
type Input<'i> = dyn FnMut(&mut Function, usize, usize) -> Option<String> + 'i;

impl Lowering<'_> {
    /// A depthwise convolution or a pooling layer, with its fused epilogues `chain`.
    pub fn window(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let combine = match &node.op {
            Op::Conv(c) => {
                let weights = self.push(&self.param(node, "weight"));
                let bias = if c.bias { self.param(node, "bias") } else { vec![0.0; c.out_channels] };
                let bias = self.push(&bias);
                Combine::Conv { weights, bias }
            }
            Op::MaxPool(_) => Combine::Max,
            Op::AvgPool(_) => Combine::Average,
            op => unreachable!("{} is no window", op.name()),
        };
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let xs = graph.shape(x).dims().to_vec();
        let ys = graph.shape(out).dims().to_vec();
        let at = Window::of(&node.op, &xs, &ys);
        let Window { kernel, stride, padding, dilation, .. } = at;
        let [oh, ow] = at.output;
        let [kh, kw] = kernel;
        let direct = stride == [1, 1];
        // Copied planes hold exactly the rows and columns the windows touch; with a column
        // stride s their columns are stored in s phases (column px at phase px % s, position
        // px / s).
        let ph = (oh - 1) * stride[0] + (kh - 1) * dilation[0] + 1;
        let pw = (ow - 1) * stride[1] + (kw - 1) * dilation[1] + 1;
        let lanes = self.isa.lanes;
        let layout = Padded::for_windows(ph, ow, kw, stride[1], dilation[1], lanes);
        let copied = if direct { 0 } else { ph * pw };
        let channels = ys[1];
        let chunks = task_count(channels, TASK_WORK / (oh * ow * kh * kw + copied));
        // Output rows computed together: their accumulators and the kernel's taps stay in
        // registers, with a few to spare for the loaded inputs.
        let weights_held = if matches!(combine, Combine::Conv { .. }) { kh * kw } else { 0 };
        let rows_per_block = self.isa.registers.saturating_sub(weights_held + 3).clamp(1, MAX_BLOCK_ROWS);
        let pad_value = if matches!(combine, Combine::Max) { f32::NEG_INFINITY } else { 0.0 };
        // Whole-vector tails spill into the next row, unless that row is a residual the
        // epilogue reads after the spill (an in-place add).
        let spill = chain.residual.is_none();
        self.parallel(f, ys[0] * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let n = f.int("udiv", "%t", chunks);
            // Small copied planes take two padded planes in turn: the next channel's is filled
            // before this one's windows are computed, so that the windows never load floats
            // still in flight from the copy's stores (a load spanning two pending stores waits
            // for both to reach the cache, and on a small plane the windows start right after
            // the copy). Larger planes keep one, which stays in L1.
            let floats = layout.floats();
            let ahead = !direct && floats * 4 <= DOUBLE_BUFFERED_BYTES;
            let buffers = match (direct, ahead) {
                (true, _) => 0,
                (false, true) => 2,
                (false, false) => 1,
            };
            let planes = (buffers > 0)
                .then(|| f.let_("pad", format!("call ptr @archc_scratch(i64 {})", buffers * floats * 4)));
            let pad = Ty::Scalar.constant(pad_value);
            let fill = |l: &mut Lowering, f: &mut Function, c: &str, slot: &str| {
                let src = l.plane(f, x, c, &n);
                let at = f.int("mul", slot, floats);
                let padded = f.float_at(planes.as_deref().expect("copied planes"), &at);
                layout.fill(f, &padded, &src, [xs[2], xs[3]], padding, &pad);
            };
            let (first, count) = task_items(f, &chunk, chunks, channels);
            if ahead {
                fill(l, f, &first, "0");
            }
            f.count(&count, |f, i| {
                let c = f.int("add", &first, i);
                let slot = if ahead {
                    let next = f.int("add", i, 1);
                    let more = f.let_("more", format!("icmp ult i64 {next}, {count}"));
                    f.when(&more, |f| {
                        let following = f.int("add", &c, 1);
                        let slot = f.int("and", &next, 1);
                        fill(l, f, &following, &slot);
                    });
                    f.int("and", i, 1)
                } else {
                    if !direct {
                        fill(l, f, &c, "0");
                    }
                    "0".to_string()
                };
                let ty = Ty::Vector(lanes);
                let (taps, init) = match combine {
                    Combine::Conv { weights, bias } => {
                        let first = f.int("mul", &c, kh * kw);
                        let first = f.int("add", &first, weights);
                        let taps: Vec<String> = (0..kh * kw)
                            .map(|t| {
                                let at = f.int("add", &first, t);
                                let tap = f.load("%w", &at);
                                f.splat(&tap, lanes)
                            })
                            .collect();
                        let at = f.int("add", &c, bias);
                        let bias = f.load("%w", &at);
                        (taps, f.splat(&bias, lanes))
                    }
                    Combine::Max => (Vec::new(), ty.constant(f32::NEG_INFINITY)),
                    Combine::Average => (Vec::new(), ty.constant(0.0)),
                };
                let windows = ChannelWindows {
                    combine: &combine,
                    taps,
                    init,
                    at,
                    lanes,
                    dst: l.plane(f, out, &c, &n),
                    residual: chain.residual.map(|r| l.plane(f, r, &c, &n)),
                    steps: &chain.steps,
                };
                if direct {
                    let src = l.plane(f, x, &c, &n);
                    windows.direct(f, &src, rows_per_block, spill, pad_value);
                    return;
                }
                let at = f.int("mul", &slot, floats);
                let padded = f.float_at(planes.as_deref().expect("copied planes"), &at);
                f.vector_blocks(oh, ow, lanes, (rows_per_block, spill), |f, oy, rows, first, mask| {
                    let top = f.int("mul", oy, stride[0]);
                    windows.block(f, oy, rows, first, mask, &mut |f, j, kx| {
                        let y = f.int("add", &top, j);
                        let row = f.int("mul", &y, layout.row_floats());
                        let row = f.int("add", &row, first);
                        let at = f.int("add", &row, layout.tap(kx * dilation[1]));
                        Some(f.load_ty(ty, &padded, &at, None))
                    });
                });
            });
        });
    }
}

impl ChannelWindows<'_> {
    /// One vector of outputs from column `first` on of each of the `rows` output rows from
    /// `oy` on, stored masked by `mask`, its taps read by `input`. The rows' windows overlap
    /// (by `kernel - stride` input rows), and each input vector is loaded once for every
    /// output row it feeds.
    fn block(
        &self,
        f: &mut Function,
        oy: &str,
        rows: usize,
        first: &str,
        mask: Option<&str>,
        input: &mut Input,
    ) {
        let Window { kernel: [kh, kw], stride, dilation, output: [_, ow], .. } = self.at;
        let ty = Ty::Vector(self.lanes);
        let t = ty.name();
        let lanes = self.lanes;
        let mut accs = vec![self.init.clone(); rows];
        for j in 0..(rows - 1) * stride[0] + (kh - 1) * dilation[0] + 1 {
            // The (output row, kernel row) pairs that read input row `j` of the block.
            let readers: Vec<(usize, usize)> = (0..rows)
                .filter_map(|r| {
                    let d = j.checked_sub(r * stride[0])?;
                    (d % dilation[0] == 0 && d / dilation[0] < kh).then_some((r, d / dilation[0]))
                })
                .collect();
            if readers.is_empty() {
                continue;
            }
            for kx in 0..kw {
                let Some(v) = input(f, j, kx) else { continue };
                for &(r, ky) in &readers {
                    let acc = &accs[r];
                    accs[r] = match self.combine {
                        Combine::Conv { .. } => f.fma(ty, &v, &self.taps[ky * kw + kx], acc),
                        // `v > acc ? v : acc`: one max instruction where maxnum takes three
                        // (x86's max returns its second operand on NaN, maxnum the number).
                        // The accumulator starts at -inf and never takes a NaN, so NaN inputs
                        // are ignored all the same.
                        Combine::Max => {
                            let greater = f.let_("gt", format!("fcmp ogt {t} {v}, {acc}"));
                            f.let_("m", format!("select <{lanes} x i1> {greater}, {t} {v}, {t} {acc}"))
                        }
                        Combine::Average => f.let_("m", format!("fadd {t} {acc}, {v}")),
                    };
                }
            }
        }
        for (r, mut acc) in accs.into_iter().enumerate() {
            if matches!(self.combine, Combine::Average) {
                acc = f.let_("m", format!("fdiv {t} {acc}, {}", ty.constant((kh * kw) as f32)));
            }
            let y = f.int("add", oy, r);
            let row = f.int("mul", &y, ow);
            let at = f.int("add", &row, first);
            let y = epilogue::emit(self.steps, f, ty, &acc, &mut |f| {
                f.load_ty(ty, self.residual.as_deref().expect("a residual plane"), &at, mask)
            });
            f.store_ty(ty, &y, &self.dst, &at, mask);
        }
    }

    /// Stride 1 from the input plane `src` where it is. Output rows whose taps reach above or
    /// below the input are blocks of one row with their padding taps left out; the rows
    /// between run in blocks of `rows_per_block`. Along a row, the vectors whose taps all lie
    /// inside the input run in a loop, and the others (at the edges) load each tap masked to
    /// the input's columns, `pad` elsewhere. With `spill`, a row's last vector is stored
    /// whole into the next row, which is computed after it (as in [`Function::vector_blocks`]).
    fn direct(&self, f: &mut Function, src: &str, rows_per_block: usize, spill: bool, pad: f32) {
        let Window {
            kernel: [kh, kw], padding: [top, left], dilation, input: [h, w], output: [oh, ow], ..
        } = self.at;
        let lanes = self.lanes;
        let pad = Ty::Vector(lanes).constant(pad);
        // Output rows `inner` read only rows inside the input; columns from `inner_columns.start`
        // to its end, vectors whose taps read only columns inside.
        let inner = top.min(oh)..(h + top).saturating_sub((kh - 1) * dilation[0]).clamp(top.min(oh), oh);
        let inside =
            |x0: usize| x0 >= left && x0 + (kw - 1) * dilation[1] + lanes <= w + left && x0 + lanes <= ow;
        let whole = ow / lanes;
        let inner_columns = match (0..whole).find(|&v| inside(v * lanes)) {
            Some(a) => a..(a..whole).find(|&v| !inside(v * lanes)).unwrap_or(whole),
            None => 0..0,
        };
        let spill = spill && ow + ow % lanes >= lanes;
        let tail = tail_mask(ow, lanes);
        // Output column `x0` (a constant, or none in the loop over the inner columns at
        // `first`) of `rows` rows from `oy` (known to be `known` when it is a constant).
        let column = |f: &mut Function,
                      (oy, known): (&str, Option<usize>),
                      rows: usize,
                      (x0, first): (Option<usize>, &str),
                      mask: Option<&str>| {
            self.block(f, oy, rows, first, mask, &mut |f, j, kx| {
                let iy = match known {
                    Some(oy) => {
                        let iy = (oy + j).checked_sub(top).filter(|&iy| iy < h)?;
                        iy.to_string()
                    }
                    None => {
                        let y = f.int("add", oy, j);
                        f.int("sub", &y, top)
                    }
                };
                let row = f.int("mul", &iy, w);
                let shift = (kx * dilation[1]) as isize - left as isize;
                let Some(x0) = x0 else {
                    let at = f.int("add", &row, first);
                    let at = f.int("add", &at, shift);
                    return Some(f.load_ty(Ty::Vector(lanes), src, &at, None));
                };
                let start = x0 as isize + shift;
                let valid: Vec<bool> =
                    (0..lanes as isize).map(|j| (0..w as isize).contains(&(start + j))).collect();
                let at = f.int("add", &row, start);
                if valid.iter().all(|&v| v) {
                    Some(f.load_ty(Ty::Vector(lanes), src, &at, None))
                } else if valid.contains(&true) {
                    Some(f.load_masked(lanes, src, &at, &lane_mask(valid), &pad))
                } else {
                    None
                }
            });
        };
        // A block of `rows` rows from `oy`; `last` when it holds the plane's last row, whose
        // tail stays within the plane. The tail goes first: the other columns overwrite what
        // it spilled into the rows below.
        let rows_block = |f: &mut Function, (oy, known): (&str, Option<usize>), rows: usize, last: bool| {
            if let Some(mask) = &tail {
                let x0 = whole * lanes;
                let spilling = if !spill { 0 } else { rows - usize::from(last) };
                if spilling > 0 {
                    column(f, (oy, known), spilling, (Some(x0), &x0.to_string()), None);
                }
                if spilling < rows {
                    let below = f.int("add", oy, spilling);
                    column(
                        f,
                        (&below, known.map(|k| k + spilling)),
                        rows - spilling,
                        (Some(x0), &x0.to_string()),
                        Some(mask),
                    );
                }
            }
            for v in (0..whole).filter(|v| !inner_columns.contains(v)) {
                let x0 = v * lanes;
                column(f, (oy, known), rows, (Some(x0), &x0.to_string()), None);
            }
            f.count(inner_columns.len(), |f, i| {
                let v = f.int("add", i, inner_columns.start);
                let first = f.int("mul", &v, lanes);
                column(f, (oy, known), rows, (None, &first), None);
            });
        };
        for oy in 0..inner.start {
            rows_block(f, (&oy.to_string(), Some(oy)), 1, oy + 1 == oh);
        }
        // All inner blocks but the last in a loop; the last (the rows left over, or a whole
        // block) after it, as it may hold the plane's last row.
        let (blocks, rest) = (inner.len() / rows_per_block, inner.len() % rows_per_block);
        let looped = blocks.saturating_sub(usize::from(rest == 0));
        f.count(looped, |f, b| {
            let oy = f.int("mul", b, rows_per_block);
            let oy = f.int("add", &oy, inner.start);
            rows_block(f, (&oy, None), rows_per_block, false);
        });
        let last = inner.start + looped * rows_per_block;
        if last < inner.end {
            rows_block(f, (&last.to_string(), Some(last)), inner.end - last, inner.end == oh);
        }
        for oy in inner.end..oh {
            rows_block(f, (&oy.to_string(), Some(oy)), 1, oy + 1 == oh);
        }
    }
}
/// A channel plane copied with its padding, columns split into phases: row-major rows of
/// `phases` blocks of `cols` floats.
pub(crate) struct Padded {
    pub rows: usize,
    pub cols: usize,
    pub phases: usize,
    /// The vector width rows are copied with.
    pub lanes: usize,
}

impl Padded {
    /// The layout for `rows` rows of windows producing `out_width` outputs each, computed in
    /// whole vectors of `lanes`: the plane holds exactly the columns the windows touch, and
    /// the phases are wide enough for the last vector's taps to read padding, so that only its
    /// store is masked.
    pub fn for_windows(
        rows: usize,
        out_width: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        lanes: usize,
    ) -> Padded {
        let width = (out_width - 1) * stride + (kernel - 1) * dilation + 1;
        let reach = (kernel - 1) * dilation / stride;
        Padded {
            rows,
            cols: width.div_ceil(stride).max(out_width.div_ceil(lanes) * lanes + reach),
            phases: stride,
            lanes,
        }
    }

    /// Where, within a padded row, the tap `offset` columns right of a window's first column
    /// starts: its phase's block, shifted.
    pub fn tap(&self, offset: usize) -> usize {
        offset % self.phases * self.cols + offset / self.phases
    }

    pub fn row_floats(&self) -> usize {
        self.phases * self.cols
    }

    pub fn floats(&self) -> usize {
        self.rows * self.row_floats()
    }

    /// Copies the `[h, w]` plane `src` into `dst`, `pad` around it. The split into padding and
    /// interior is known at compile time, so each part is a plain loop.
    pub fn fill(
        &self,
        f: &mut Function,
        dst: &str,
        src: &str,
        [h, w]: [usize; 2],
        padding: [usize; 2],
        pad: &str,
    ) {
        let top = padding[0];
        let first_row = top.min(self.rows);
        let end_row = (top + h).min(self.rows).max(first_row);
        f.fill(dst, 0, first_row * self.row_floats(), pad);
        f.count(end_row - first_row, |f, r| {
            let py = f.int("add", r, first_row);
            let iy = f.int("sub", &py, top);
            self.copy_row(f, dst, &py, src, &iy, w, padding[1], pad);
        });
        f.fill(dst, end_row * self.row_floats(), (self.rows - end_row) * self.row_floats(), pad);
    }

    /// Fills padded row `py` of `dst` from input row `iy` of `src` (of width `w`), or with
    /// `pad` when `iy` is outside `0..h`.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_row(
        &self,
        f: &mut Function,
        dst: &str,
        py: &str,
        src: &str,
        iy: &str,
        [h, w]: [usize; 2],
        left: usize,
        pad: &str,
    ) {
        let inside = f.let_("in", format!("icmp ult i64 {iy}, {h}"));
        f.when(&inside, |f| self.copy_row(f, dst, py, src, iy, w, left, pad));
        let outside = f.let_("out", format!("xor i1 {inside}, true"));
        f.when(&outside, |f| {
            let first = f.int("mul", py, self.row_floats());
            f.fill(dst, &first, self.row_floats(), pad);
        });
    }

    /// Copies input row `iy` into padded row `py`, split into phases, `pad` left and right.
    /// The row is copied in chunks of `lanes` positions of every phase (fewer in a row narrower
    /// than that; the last chunk overlaps the one before): each chunk loads its `phases`
    /// vectors of input columns whole, or masked where they cross the input's edge, and deals
    /// them out to the phases by shuffles. Chunks wholly inside the input run in a loop.
    #[allow(clippy::too_many_arguments)]
    fn copy_row(
        &self,
        f: &mut Function,
        dst: &str,
        py: &str,
        src: &str,
        iy: &str,
        w: usize,
        left: usize,
        pad: &str,
    ) {
        let (s, lanes) = (self.phases, self.lanes);
        let width = lanes.min(self.cols);
        let span = width * s;
        let loads = span.div_ceil(lanes);
        let row = f.int("mul", py, self.row_floats());
        let source_row = f.int("mul", iy, w);
        let ty = Ty::Vector(lanes);
        let pad_vector = format!("<{}>", vec![format!("float {pad}"); lanes].join(", "));
        // Copies the chunk of positions `c..c + width` of every phase. With `at`, the chunk is
        // at position `at` and its lanes are loaded only where inside the input; without, it is
        // wholly inside.
        let chunk = |f: &mut Function, c: &str, at: Option<usize>| {
            let first = f.int("mul", c, s);
            let first = f.int("sub", &first, left);
            let first = f.int("add", &source_row, &first);
            let vectors: Vec<String> = (0..loads)
                .map(|j| {
                    let valid: Vec<bool> = (0..lanes)
                        .map(|k| {
                            let lane = j * lanes + k;
                            let column = at.map_or(0, |at| (at * s + lane) as i64 - left as i64);
                            lane < span && (0..w as i64).contains(&column)
                        })
                        .collect();
                    let index = f.int("add", &first, j * lanes);
                    if at.is_none() || valid.iter().all(|&v| v) {
                        f.load_ty(ty, src, &index, None)
                    } else if !valid.contains(&true) {
                        pad_vector.clone()
                    } else {
                        // Lanes left of the input start lie before its plane: never read.
                        f.load_masked(lanes, src, &index, &crate::emit::lane_mask(valid), &pad_vector)
                    }
                })
                .collect();
            let (all, wide) = concatenate(f, &vectors, lanes);
            let wide = Ty::Vector(wide).name();
            for phase in 0..s {
                let picks: Vec<String> = (0..width).map(|j| format!("i32 {}", j * s + phase)).collect();
                let v = if s == 1 && width == lanes {
                    all.clone()
                } else {
                    f.let_(
                        "ph",
                        format!(
                            "shufflevector {wide} {all}, {wide} poison, <{width} x i32> <{}>",
                            picks.join(", ")
                        ),
                    )
                };
                let to = f.int("add", &row, phase * self.cols);
                let to = f.int("add", &to, c);
                f.store_ty(Ty::Vector(width), &v, dst, &to, None);
            }
        };
        // Chunks `inside.start..inside.end` read only columns inside the input.
        let chunks = self.cols / width;
        let end = ((w + left) / span).min(chunks);
        let inside = if width == lanes { left.div_ceil(span).min(end)..end } else { 0..0 };
        for i in (0..inside.start).chain(inside.end..chunks) {
            chunk(f, &(i * width).to_string(), Some(i * width));
        }
        f.count(inside.len(), |f, i| {
            let c = f.int("add", i, inside.start);
            let c = f.int("mul", &c, width);
            chunk(f, &c, None);
        });
        if !self.cols.is_multiple_of(width) {
            let at = self.cols - width;
            chunk(f, &at.to_string(), Some(at));
        }
    }
}

/// The `vectors` (of `lanes` each) one after another, as one vector, and its width (rounded up
/// to a power of two times `lanes`, the rest poison).
fn concatenate(f: &mut Function, vectors: &[String], lanes: usize) -> (String, usize) {
    let mut parts = vectors.to_vec();
    let mut width = lanes;
    while parts.len() > 1 {
        let ty = Ty::Vector(width).name();
        let picks: Vec<String> = (0..2 * width).map(|j| format!("i32 {j}")).collect();
        parts = parts
            .chunks(2)
            .map(|pair| {
                let second = pair.get(1).map_or("poison", String::as_str);
                f.let_(
                    "cat",
                    format!(
                        "shufflevector {ty} {}, {ty} {second}, <{} x i32> <{}>",
                        pair[0],
                        2 * width,
                        picks.join(", ")
                    ),
                )
            })
            .collect();
        width *= 2;
    }
    (parts.remove(0), width)
}
