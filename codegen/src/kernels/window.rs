//! Sliding windows over one channel plane at a time: depthwise convolutions (any kernel
//! size, stride and dilation) and max / average pooling. Each channel's plane is first copied
//! into a padded scratch plane, so the inner loop along an output row has no bounds checks and
//! LLVM vectorizes it (strided loads for stride 2); kernel weights stay in registers.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty, float};
use crate::epilogue::{self, Chain};
use crate::kernels::gemm::load_padded;
use crate::lower::Lowering;

/// Work (window taps plus padded copies) a task should hold.
const TASK_WORK: usize = 1 << 16;

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

impl Lowering<'_> {
    /// A depthwise convolution or a pooling layer, with its fused epilogues `chain`.
    pub fn window(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let (kernel, stride, padding, dilation, combine) = match &node.op {
            Op::Conv(c) => {
                let weights = self.push(&self.param(node, "weight"));
                let bias = if c.bias { self.param(node, "bias") } else { vec![0.0; c.out_channels] };
                let bias = self.push(&bias);
                (c.kernel, c.stride, c.padding, c.dilation, Combine::Conv { weights, bias })
            }
            Op::MaxPool(p) => (p.kernel, p.stride, p.padding, [1, 1], Combine::Max),
            Op::AvgPool(p) => (p.kernel, p.stride, p.padding, [1, 1], Combine::Average),
            op => unreachable!("{} is no window", op.name()),
        };
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let xs = graph.shape(x).dims().to_vec();
        let ys = graph.shape(out).dims().to_vec();
        let (oh, ow) = (ys[2], ys[3]);
        let [kh, kw] = kernel;
        // The padded plane holds exactly the rows and columns the windows touch.
        let ph = (oh - 1) * stride[0] + (kh - 1) * dilation[0] + 1;
        let pw = (ow - 1) * stride[1] + (kw - 1) * dilation[1] + 1;
        let channels = ys[1];
        let per_task = (TASK_WORK / (oh * ow * kh * kw + ph * pw)).clamp(1, channels);
        let chunks = channels.div_ceil(per_task);
        let pad_value = if matches!(combine, Combine::Max) { "0xFFF0000000000000" } else { "0.0" };
        self.parallel(f, ys[0] * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let n = f.int("udiv", "%t", chunks);
            let padded = f.let_("pad", format!("call ptr @archc_scratch(i64 {})", ph * pw * 4));
            let first = f.int("mul", &chunk, per_task);
            let left = f.int("sub", channels, &first);
            let count = f.umin(&left, per_task);
            f.count(&count, |f, i| {
                let c = f.int("add", &first, i);
                let src = l.plane(f, x, &c, &n);
                let dst = l.plane(f, out, &c, &n);
                let residual = chain.residual.map(|r| l.plane(f, r, &c, &n));
                f.count(ph, |f, py| {
                    let iy = f.int("sub", py, padding[0]);
                    let row = f.int("mul", py, pw);
                    f.count(pw, |f, px| {
                        let ix = f.int("sub", px, padding[1]);
                        let v = load_padded(f, &src, &iy, &ix, xs[2], xs[3], pad_value);
                        let at = f.int("add", &row, px);
                        f.store(&v, &padded, &at);
                    });
                });
                let (taps, init) = match combine {
                    Combine::Conv { weights, bias } => {
                        let first = f.int("mul", &c, kh * kw);
                        let first = f.int("add", &first, weights);
                        let taps: Vec<String> = (0..kh * kw)
                            .map(|t| {
                                let at = f.int("add", &first, t);
                                f.load("%w", &at)
                            })
                            .collect();
                        let at = f.int("add", &c, bias);
                        (taps, f.load("%w", &at))
                    }
                    Combine::Max => (Vec::new(), pad_value.to_string()),
                    Combine::Average => (Vec::new(), "0.0".to_string()),
                };
                f.count(oh, |f, oy| {
                    let top = f.int("mul", oy, stride[0]);
                    f.count(ow, |f, ox| {
                        let left = f.int("mul", ox, stride[1]);
                        let mut acc = init.clone();
                        for ky in 0..kh {
                            let y = f.int("add", &top, ky * dilation[0]);
                            let row = f.int("mul", &y, pw);
                            for kx in 0..kw {
                                let xi = f.int("add", &left, kx * dilation[1]);
                                let at = f.int("add", &row, &xi);
                                let v = f.load(&padded, &at);
                                acc = match combine {
                                    Combine::Conv { .. } => f.fma(&v, &taps[ky * kw + kx], &acc),
                                    Combine::Max => f.let_(
                                        "m",
                                        format!("call float @llvm.maxnum.f32(float {acc}, float {v})"),
                                    ),
                                    Combine::Average => f.let_("m", format!("fadd float {acc}, {v}")),
                                };
                            }
                        }
                        if matches!(combine, Combine::Average) {
                            acc = f.let_("m", format!("fdiv float {acc}, {}", float((kh * kw) as f32)));
                        }
                        let row = f.int("mul", oy, ow);
                        let at = f.int("add", &row, ox);
                        let y = epilogue::emit(&chain.steps, f, Ty::Scalar, &acc, &mut |f| {
                            f.load(residual.as_deref().expect("a residual plane"), &at)
                        });
                        f.store(&y, &dst, &at);
                    });
                });
            });
        });
    }
}
