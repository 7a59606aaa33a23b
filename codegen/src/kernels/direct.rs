//! Direct convolution for layers with few input channels (stems: 3 channels, 3x3 stride 2):
//! too short a reduction for the GEMM tile to pay for its epilogue, too many output channels
//! for one window per channel. Each task takes a band of output rows, copies the input rows
//! it needs into padded phase planes (as the window kernels do), and computes a block of
//! output channels at a time over a vector of output columns, each input tap loaded once per
//! block and multiplied with the block's broadcast weights (vectors two registers wide, so
//! the block holds enough independent accumulators).

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain};
use crate::kernels::padded::Padded;
use crate::lower::Lowering;

/// Multiply-adds a task should hold.
const TASK_MACS: usize = 1 << 19;

/// Whether conv `conv` reading `channels` input channels takes this kernel.
pub fn suits(conv: &ir::Conv, channels: usize) -> bool {
    conv.groups == 1 && channels <= 4
}

impl Lowering<'_> {
    /// A convolution with few input channels, with its fused epilogues `chain`.
    pub fn direct_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let weights = self.push(&self.param(node, "weight"));
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; conv.out_channels] };
        let bias = self.push(&bias);
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let xs = graph.shape(x).dims().to_vec();
        let ys = graph.shape(out).dims().to_vec();
        let (cin, cout, oh, ow) = (xs[1], ys[1], ys[2], ys[3]);
        let ([kh, kw], stride, padding, dilation) = (conv.kernel, conv.stride, conv.padding, conv.dilation);
        let taps = cin * kh * kw;
        // Two registers of pixels per vector: a block's 2 x tile_rows accumulators cover the
        // multiply-add latency on both pipes, as the GEMM tile's do.
        let lanes = 2 * self.isa.lanes;
        let block = self.isa.tile_rows;
        let band = (TASK_MACS / (ow * cout * taps)).clamp(1, oh);
        let bands = oh.div_ceil(band);
        let band_rows = (band - 1) * stride[0] + (kh - 1) * dilation[0] + 1;
        let layout = Padded::for_windows(band_rows, ow, kw, stride[1], dilation[1], lanes);
        self.parallel(f, ys[0] * bands, |l, f| {
            let b = f.int("urem", "%t", bands);
            let n = f.int("udiv", "%t", bands);
            let scratch =
                f.let_("pad", format!("call ptr @archc_scratch(i64 {})", cin * layout.floats() * 4));
            let oy0 = f.int("mul", &b, band);
            let left = f.int("sub", oh, &oy0);
            let rows = f.umin(&left, band);
            let iy0 = f.int("mul", &oy0, stride[0]);
            let iy0 = f.int("sub", &iy0, padding[0]);
            let planes: Vec<String> = (0..cin)
                .map(|ci| {
                    let src = l.plane(f, x, &ci.to_string(), &n);
                    let padded = f.float_at(&scratch, &(ci * layout.floats()).to_string());
                    f.count(layout.rows, |f, py| {
                        let iy = f.int("add", &iy0, py);
                        layout.fill_row(f, &padded, py, &src, &iy, [xs[2], xs[3]], padding[1], "0.0");
                    });
                    padded
                })
                .collect();
            // One block of `count` output channels from `co0` on.
            let mut channels = |f: &mut Function, co0: &str, count: usize| {
                let dst: Vec<(String, String, Option<String>)> = (0..count)
                    .map(|j| {
                        let co = f.int("add", co0, j);
                        let at = f.int("add", &co, bias);
                        let b = f.load("%w", &at);
                        let residual = chain.residual.map(|r| l.plane(f, r, &co, &n));
                        (l.plane(f, out, &co, &n), b, residual)
                    })
                    .collect();
                let w0 = f.int("mul", co0, taps);
                let w0 = f.int("add", &w0, weights);
                let vector = |f: &mut Function, r: &str, first: &str, lanes: usize, mask: Option<&str>| {
                    let ty = Ty::Vector(lanes);
                    let mut acc: Vec<String> = dst.iter().map(|d| f.splat(&d.1, lanes)).collect();
                    let top = f.int("mul", r, stride[0]);
                    for (ci, plane) in planes.iter().enumerate() {
                        for ky in 0..kh {
                            let y = f.int("add", &top, ky * dilation[0]);
                            let row = f.int("mul", &y, layout.row_floats());
                            let row = f.int("add", &row, first);
                            for kx in 0..kw {
                                let at = f.int("add", &row, layout.tap(kx * dilation[1]));
                                let v = f.load_ty(ty, plane, &at, None);
                                let tap = (ci * kh + ky) * kw + kx;
                                for (j, a) in acc.iter_mut().enumerate() {
                                    let wi = f.int("add", &w0, j * taps + tap);
                                    let wv = f.load("%w", &wi);
                                    let wv = f.splat(&wv, lanes);
                                    *a = f.fma(ty, &v, &wv, a);
                                }
                            }
                        }
                    }
                    let oy = f.int("add", &oy0, r);
                    let o = f.int("mul", &oy, ow);
                    let o = f.int("add", &o, first);
                    for ((d, _, residual), a) in dst.iter().zip(&acc) {
                        let y = epilogue::emit(&chain.steps, f, ty, a, &mut |f| {
                            f.load_ty(ty, residual.as_deref().expect("a residual plane"), &o, mask)
                        });
                        f.store_ty(ty, &y, d, &o, mask);
                    }
                };
                f.vector_rows(&rows, ow, lanes, vector);
            };
            // As many blocks as a full block each needs, their sizes at most one apart: a
            // short last block (32 channels as 5 x 6 + 2) holds too few accumulators to cover
            // the multiply-add latency, and costs about as long as a full one.
            let blocks = cout.div_ceil(block);
            let (small, larger) = (cout / blocks, cout % blocks);
            let runs = [(larger, small + 1, 0), (blocks - larger, small, larger * (small + 1))];
            for (count, size, first) in runs.into_iter().filter(|&(count, ..)| count > 0) {
                f.count(count, |f, b| {
                    let co0 = f.int("mul", b, size);
                    let co0 = f.int("add", &co0, first);
                    channels(f, &co0, size);
                });
            }
        });
    }
}
