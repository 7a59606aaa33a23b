//! The depthwise convolution that reads a channel-blocked input (see `blocked`): for each block
//! of `lanes` channels, output row by row, `lanes` pixels of a row at a time, each pixel's
//! window read as one vector of `lanes` channels per tap from the bordered block and multiplied
//! with that tap's vector of weights; the pixels' vectors are then transposed into one vector
//! per channel and stored into the NCHW output planes after the fused epilogues. No window
//! needs edge handling, and stride 2 costs no extra multiply-adds.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::blocked::Blocked;
use crate::lower::{Lowering, task_count, task_items};

/// Tap vectors a task should multiply.
const TASK_WORK: usize = 1 << 14;

impl Lowering<'_> {
    /// Depthwise convolution `id` (with its epilogues `chain`) over the input blocked as
    /// `layout` says.
    pub fn blocked_depthwise(&mut self, f: &mut Function, id: NodeId, chain: &Chain, layout: Blocked) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let out = chain.output(id);
        let ys = graph.shape(out).dims().to_vec();
        let (batch, channels, pixels) = (ys[0], ys[1], ys[2] * ys[3]);
        let lanes = layout.lanes;
        let [kh, kw] = conv.kernel;
        let taps = kh * kw;
        // Weights as `[block][tap][lane]`, one vector per tap of a block.
        let weight = self.param(node, "weight");
        let mut packed = vec![0.0; channels * taps];
        for c in 0..channels {
            for t in 0..taps {
                packed[((c / lanes) * taps + t) * lanes + c % lanes] = weight[c * taps + t];
            }
        }
        let weights = self.push(&packed);
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; channels] };
        let bias = self.push(&bias);
        let blocks = layout.blocks(channels);
        let items = batch * blocks;
        let tasks = task_count(items, TASK_WORK / (pixels * taps).max(1));
        let ty = Ty::Vector(lanes);
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, items);
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                let (n, b) = (f.int("udiv", &item, blocks), f.int("urem", &item, blocks));
                let block = layout.block(f, &n, &b);
                let w0 = f.int("mul", &b, taps * lanes);
                let w0 = f.int("add", &w0, weights);
                let taps: Vec<String> = (0..taps)
                    .map(|t| {
                        let at = f.int("add", &w0, t * lanes);
                        f.load_ty(ty, "%w", &at, None)
                    })
                    .collect();
                let b0 = f.int("mul", &b, lanes);
                let at = f.int("add", &b0, bias);
                let init = f.load_ty(ty, "%w", &at, None);
                // The output and residual planes of the block's channels.
                let planes: Vec<(String, Option<String>)> = (0..lanes)
                    .map(|j| {
                        let c = f.int("add", &b0, j);
                        (l.plane(f, out, &c, &n), chain.residual.map(|r| l.plane(f, r, &c, &n)))
                    })
                    .collect();
                let windows = Windows { layout: &layout, block: &block, taps: &taps, init: &init };
                let out_width = ys[3];
                let (whole, tail) = (out_width / lanes, out_width % lanes);
                // Row `oy` of the block's output: its whole vectors, then its tail. A tail is
                // stored as a whole vector spilling into the next row, which is written after it,
                // except on the last row, on rows too narrow to hold the spill, or where the
                // output adds a residual in place (the spill would overwrite residual values not
                // yet read).
                let row = |f: &mut Function, oy: &str, spill: bool| {
                    let start = f.int("mul", oy, out_width);
                    f.count(whole, |f, v| {
                        let x0 = f.int("mul", v, lanes);
                        let sums = windows.sums(f, oy, &x0, lanes);
                        let at = f.int("add", &start, &x0);
                        store_transposed(f, &planes, &chain.steps, sums, &at, None);
                    });
                    if tail > 0 {
                        let x0 = (whole * lanes).to_string();
                        let sums = windows.sums(f, oy, &x0, tail);
                        let at = f.int("add", &start, &x0);
                        let lanes_kept = (!spill).then_some(tail);
                        store_transposed(f, &planes, &chain.steps, sums, &at, lanes_kept);
                    }
                };
                let spill = tail > 0 && chain.residual.is_none() && lanes - tail <= out_width;
                f.count(ys[2] - 1, |f, oy| row(f, oy, spill));
                row(f, &(ys[2] - 1).to_string(), false);
            });
        });
    }
}

/// One block's windows: its bordered input, its taps' weight vectors, the bias vector.
struct Windows<'a> {
    layout: &'a Blocked,
    block: &'a str,
    taps: &'a [String],
    init: &'a str,
}

impl Windows<'_> {
    /// The sums of the windows of output pixels `x0..x0 + count` of row `oy`, one vector of the
    /// block's channels each. Neighbouring pixels share input vectors, which LLVM then loads
    /// once: the taps are at constant offsets from the row's first window.
    fn sums(&self, f: &mut Function, oy: &str, x0: &str, count: usize) -> Vec<String> {
        let at = self.layout.at;
        let [kh, kw] = at.kernel;
        let (lanes, cols) = (self.layout.lanes, self.layout.cols);
        let ty = Ty::Vector(lanes);
        let y = f.int("mul", oy, at.stride[0] * cols);
        let x = f.int("mul", x0, at.stride[1]);
        let corner = f.int("add", &y, &x);
        let corner = f.int("mul", &corner, lanes);
        let mut acc = vec![self.init.to_string(); count];
        // Tap by tap, every pixel in turn: the pixels' sums are independent chains.
        for ky in 0..kh {
            for kx in 0..kw {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let tap = (ky * at.dilation[0] * cols + j * at.stride[1] + kx * at.dilation[1]) * lanes;
                    let at = f.int("add", &corner, tap);
                    let v = f.load_ty(ty, self.block, &at, None);
                    *acc = f.fma(ty, &v, &self.taps[ky * kw + kx], acc);
                }
            }
        }
        acc
    }
}

/// Transposes the sums of `lanes` pixels (fewer: the rest are not stored) into one vector per
/// channel, applies the epilogue `steps` and stores each at float `at` of its output plane in
/// `planes` (with its residual plane): whole, or only its first `kept` lanes, one by one.
fn store_transposed(
    f: &mut Function,
    planes: &[(String, Option<String>)],
    steps: &[Step],
    mut sums: Vec<String>,
    at: &str,
    kept: Option<usize>,
) {
    let lanes = planes.len();
    let ty = Ty::Vector(lanes);
    sums.resize(lanes, ty.constant(0.0));
    for ((dst, residual), y) in planes.iter().zip(f.transpose(&sums, lanes)) {
        let Some(kept) = kept else {
            let y = epilogue::emit(steps, f, ty, &y, &mut |f| {
                f.load_ty(ty, residual.as_deref().expect("a residual plane"), at, None)
            });
            f.store_ty(ty, &y, dst, at, None);
            continue;
        };
        for j in 0..kept {
            let at = f.int("add", at, j);
            let x = f.let_("x", format!("extractelement {} {y}, i64 {j}", ty.name()));
            let x = epilogue::emit(steps, f, Ty::Scalar, &x, &mut |f| {
                f.load(residual.as_deref().expect("a residual plane"), &at)
            });
            f.store(&x, dst, &at);
        }
    }
}
