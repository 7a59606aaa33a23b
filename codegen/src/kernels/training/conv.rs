//! Gradients of convolutions and pools. Each tap of a window is its own loop nest with
//! bounds fixed at compile time ([`valid_outputs`]), so the inner loops have no branches:
//! the input gradient scatters `w * dy` into each input channel's planes (one task per input
//! channel, so tasks never write the same plane), and the weight gradient sums `dy * x` over
//! the batch and the output pixels (one task per output channel).

use ir::{Conv, NodeId, Pool, Value};

use super::valid_outputs;
use crate::emit::{Function, Ty, float};
use crate::kernels::geometry::Window;
use crate::lower::Lowering;

impl Window {
    /// Emits `body(f, x_index, y_index, mask)` over the output pixels that tap `(ky, kx)`
    /// reads inside the input: `lanes` consecutive output columns at a time when the stride
    /// along a row is 1 (`mask` the valid lanes of a row's last vector), else one at a time
    /// (`lanes` 1, no mask).
    fn tap(&self, f: &mut Function, ky: usize, kx: usize, lanes: usize, body: &mut Tap<'_>) {
        let offset = |axis: usize, k: usize| (k * self.dilation[axis]) as isize - self.padding[axis] as isize;
        let (ty, tx) = (offset(0, ky), offset(1, kx));
        let (y0, y1) = valid_outputs(ty, self.stride[0], self.input[0], self.output[0]);
        let (x0, x1) = valid_outputs(tx, self.stride[1], self.input[1], self.output[1]);
        let (iw, ow) = (self.input[1] as isize, self.output[1]);
        let (sy, sx) = (self.stride[0] as isize, self.stride[1]);
        let lanes = if sx == 1 { lanes } else { 1 };
        let width = x1 - x0;
        let whole = width / lanes;
        let mask = crate::emit::tail_mask(width, lanes);
        f.count(y1 - y0, |f, r| {
            let oy = f.int("add", r, y0);
            let y_row = f.int("mul", &oy, ow);
            // Input row `oy * sy + ty`, as a flat offset of the row start plus `tx`.
            let iy = f.int("mul", &oy, sy);
            let iy = f.int("add", &iy, ty);
            let x_row = f.int("mul", &iy, iw);
            let x_row = f.int("add", &x_row, tx);
            let mut at = |f: &mut Function, ox: &str, mask: Option<&str>| {
                let yi = f.int("add", &y_row, ox);
                let ix = f.int("mul", ox, sx);
                let xi = f.int("add", &x_row, &ix);
                body(f, &xi, &yi, mask);
            };
            f.count(whole, |f, c| {
                let ox = f.int("mul", c, lanes);
                let ox = f.int("add", &ox, x0);
                at(f, &ox, None);
            });
            if let Some(mask) = &mask {
                at(f, &(x0 + whole * lanes).to_string(), Some(mask));
            }
        });
    }
}

/// The body of a window tap's loop: `(f, x_index, y_index, mask)`.
type Tap<'a> = dyn FnMut(&mut Function, &str, &str, Option<&str>) + 'a;

/// Where a gradient's window weights come from.
#[derive(Clone, Copy)]
enum Weight {
    /// The conv weights at this blob offset, `[out, in / groups, kh, kw]`.
    Blob(usize),
    /// One value for every tap (average pooling).
    Constant(f32),
}

impl Lowering<'_> {
    /// `ConvGradInput`: `dx[ci] = sum over co, taps of w * dy[co]`, scattered.
    pub(super) fn conv_grad_input(&mut self, f: &mut Function, id: NodeId, conv: &Conv) {
        let weights = self.param_at(id, "weight");
        self.scatter_grad(f, id, conv, Weight::Blob(weights));
    }

    /// `AvgPoolGrad`: a depthwise scatter with every weight `1 / area`.
    pub(super) fn avg_pool_grad(&mut self, f: &mut Function, id: NodeId, pool: &Pool) {
        let channels = self.graph.shape(Value { node: id, port: 0 }).channels();
        let conv = Conv {
            out_channels: channels,
            kernel: pool.kernel,
            stride: pool.stride,
            padding: pool.padding,
            dilation: [1, 1],
            groups: channels,
            bias: false,
        };
        let area = (pool.kernel[0] * pool.kernel[1]) as f32;
        self.scatter_grad(f, id, &conv, Weight::Constant(1.0 / area));
    }

    fn scatter_grad(&mut self, f: &mut Function, id: NodeId, conv: &Conv, weight: Weight) {
        let dy = self.graph.operands(id)[0];
        let dx = Value { node: id, port: 0 };
        let (xs, ys) = (self.graph.shape(dx).dims().to_vec(), self.graph.shape(dy).dims().to_vec());
        let window = Window::of_conv(conv, &xs, &ys);
        let (cin_g, cout_g) = (xs[1] / conv.groups, conv.out_channels / conv.groups);
        let [kh, kw] = conv.kernel;
        self.parallel(f, xs[1], |l, f| {
            let g = f.int("udiv", "%t", cin_g);
            let cig = f.int("urem", "%t", cin_g);
            f.count(xs[0], |f, n| {
                let p = l.plane(f, dx, "%t", n);
                f.fill(&p, 0, xs[2] * xs[3], &float(0.0));
            });
            f.count(cout_g, |f, j| {
                let co = f.int("mul", &g, cout_g);
                let co = f.int("add", &co, j);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let w = match weight {
                            Weight::Constant(v) => float(v),
                            Weight::Blob(at) => {
                                let row = f.int("mul", &co, cin_g);
                                let row = f.int("add", &row, &cig);
                                let tap = f.int("mul", &row, kh * kw);
                                let tap = f.int("add", &tap, at + ky * kw + kx);
                                f.load("%w", &tap)
                            }
                        };
                        let lanes = if conv.stride[1] == 1 { l.isa.lanes } else { 1 };
                        let ty = if lanes > 1 { Ty::Vector(lanes) } else { Ty::Scalar };
                        let wv = if lanes > 1 { f.splat(&w, lanes) } else { w.clone() };
                        f.count(xs[0], |f, n| {
                            let xp = l.plane(f, dx, "%t", n);
                            let yp = l.plane(f, dy, &co, n);
                            window.tap(f, ky, kx, lanes, &mut |f, xi, yi, mask| {
                                let (old, g) = (f.load_ty(ty, &xp, xi, mask), f.load_ty(ty, &yp, yi, mask));
                                let r = f.fma(ty, &wv, &g, &old);
                                f.store_ty(ty, &r, &xp, xi, mask);
                            });
                        });
                    }
                }
            });
        });
    }

    /// `ConvGradWeight`: `dw[co, ci, ky, kx] = sum over items and pixels of dy[co] * x[ci]`.
    pub(super) fn conv_grad_weight(&mut self, f: &mut Function, id: NodeId, conv: &Conv) {
        let operands = self.graph.operands(id);
        let (x, dy) = (operands[0], operands[1]);
        let dw = Value { node: id, port: 0 };
        let (xs, ys) = (self.graph.shape(x).dims().to_vec(), self.graph.shape(dy).dims().to_vec());
        let window = Window::of_conv(conv, &xs, &ys);
        let (cin_g, cout_g) = (xs[1] / conv.groups, conv.out_channels / conv.groups);
        let [kh, kw] = conv.kernel;
        self.parallel(f, conv.out_channels, |l, f| {
            let g = f.int("udiv", "%t", cout_g);
            let out = l.flat(f, dw);
            f.count(cin_g, |f, cig| {
                let ci = f.int("mul", &g, cin_g);
                let ci = f.int("add", &ci, cig);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let lanes = if conv.stride[1] == 1 { l.isa.lanes } else { 1 };
                        let ty = if lanes > 1 { Ty::Vector(lanes) } else { Ty::Scalar };
                        let acc = f.slot(ty, if lanes > 1 { "zeroinitializer" } else { "0.0" });
                        f.count(xs[0], |f, n| {
                            let xp = l.plane(f, x, &ci, n);
                            let yp = l.plane(f, dy, "%t", n);
                            window.tap(f, ky, kx, lanes, &mut |f, xi, yi, mask| {
                                // Masked loads give zeros past the row's end: they add nothing.
                                let (a, b) = (f.load_ty(ty, &yp, yi, mask), f.load_ty(ty, &xp, xi, mask));
                                f.fma_into(ty, &acc, &a, &b);
                            });
                        });
                        let row = f.int("mul", "%t", cin_g);
                        let row = f.int("add", &row, cig);
                        let at = f.int("mul", &row, kh * kw);
                        let at = f.int("add", &at, ky * kw + kx);
                        let sum = if lanes > 1 { f.vector_sum(ty, &acc) } else { f.read(&acc) };
                        f.store(&sum, &out, &at);
                    }
                }
            });
        });
    }

    /// `MaxPoolGrad`: each window's gradient goes to its first maximum.
    pub(super) fn max_pool_grad(&mut self, f: &mut Function, id: NodeId, pool: &Pool) {
        let operands = self.graph.operands(id);
        let (x, dy) = (operands[0], operands[1]);
        let dx = Value { node: id, port: 0 };
        let (xs, ys) = (self.graph.shape(x).dims().to_vec(), self.graph.shape(dy).dims().to_vec());
        let (h, w, oh, ow) = (xs[2] as isize, xs[3] as isize, ys[2], ys[3]);
        self.parallel(f, xs[1], |l, f| {
            f.count(xs[0], |f, n| {
                let (xp, yp, gp) = (l.plane(f, x, "%t", n), l.plane(f, dy, "%t", n), l.plane(f, dx, "%t", n));
                f.fill(&gp, 0, xs[2] * xs[3], &float(0.0));
                f.count(oh, |f, oy| {
                    f.count(ow, |f, ox| {
                        let best = f.accumulator(&float(f32::NEG_INFINITY));
                        let at = f.slot_i64("-1");
                        for ky in 0..pool.kernel[0] {
                            for kx in 0..pool.kernel[1] {
                                let iy = f.int("mul", oy, pool.stride[0]);
                                let iy = f.int("add", &iy, ky as isize - pool.padding[0] as isize);
                                let ix = f.int("mul", ox, pool.stride[1]);
                                let ix = f.int("add", &ix, kx as isize - pool.padding[1] as isize);
                                let inside = f.inside(&iy, h, &ix, w);
                                let row = f.int("mul", &iy, w);
                                let flat = f.int("add", &row, &ix);
                                let safe = f.let_("idx", format!("select i1 {inside}, i64 {flat}, i64 0"));
                                let v = f.load(&xp, &safe);
                                let old = f.read(&best);
                                let more = f.let_("gt", format!("fcmp ogt float {v}, {old}"));
                                let take = f.let_("take", format!("and i1 {inside}, {more}"));
                                let nb = f.let_("b", format!("select i1 {take}, float {v}, float {old}"));
                                f.line(format!("store float {nb}, ptr {best}"));
                                let oi = f.let_("i", format!("load i64, ptr {at}"));
                                let ni = f.let_("i", format!("select i1 {take}, i64 {flat}, i64 {oi}"));
                                f.line(format!("store i64 {ni}, ptr {at}"));
                            }
                        }
                        let row = f.int("mul", oy, ow);
                        let yi = f.int("add", &row, ox);
                        let g = f.load(&yp, &yi);
                        let i = f.let_("i", format!("load i64, ptr {at}"));
                        let old = f.load(&gp, &i);
                        let new = f.let_("g", format!("fadd float {old}, {g}"));
                        f.store(&new, &gp, &i);
                    });
                });
            });
        });
    }

    /// `GlobalAvgPoolGrad`: each plane gets its `dy / area`.
    pub(super) fn global_avg_pool_grad(&mut self, f: &mut Function, id: NodeId) {
        let dy = self.graph.operands(id)[0];
        let dx = Value { node: id, port: 0 };
        let xs = self.graph.shape(dx).dims().to_vec();
        let area = xs[2] * xs[3];
        f.count(xs[0], |f, n| {
            f.count(xs[1], |f, c| {
                let src = self.plane(f, dy, c, n);
                let g = f.load(&src, "0");
                let v = f.let_("v", format!("fmul float {g}, {}", float(1.0 / area as f32)));
                let p = self.plane(f, dx, c, n);
                f.fill(&p, 0, area, &v);
            });
        });
    }
}
