//! The light training kernels, on one thread over flat buffers: the loss and its gradient,
//! bias and channel-scale sums, activation and softmax gradients, the linear layer's
//! gradients and the SGD step.

use ir::{Activation, NodeId, Sgd, Value};

use crate::emit::{Function, Ty, float};
use crate::lower::{Lowering, planes};

impl Lowering<'_> {
    /// `SoftmaxCrossEntropy` (one loss per item) or, with `grad`, its batch-mean gradient.
    pub(super) fn cross_entropy(&mut self, f: &mut Function, id: NodeId, smoothing: f32, grad: bool) {
        let operands = self.graph.operands(id);
        let dims = self.graph.shape(operands[0]).dims().to_vec();
        let (n, k) = (dims[0], dims[1]);
        let (z, labels, out) =
            (self.flat(f, operands[0]), self.flat(f, operands[1]), self.flat(f, Value { node: id, port: 0 }));
        let (off, on) = (smoothing / k as f32, 1.0 - smoothing + smoothing / k as f32);
        f.count(n, |f, row| {
            let base = f.int("mul", row, k);
            let max = f.accumulator(&float(f32::NEG_INFINITY));
            f.count(k, |f, j| {
                let at = f.int("add", &base, j);
                let v = f.load(&z, &at);
                let m = f.read(&max);
                let r = f.let_("m", format!("call float @llvm.maxnum.f32(float {m}, float {v})"));
                f.line(format!("store float {r}, ptr {max}"));
            });
            let m = f.read(&max);
            let total = f.accumulator("0.0");
            f.count(k, |f, j| {
                let at = f.int("add", &base, j);
                let v = f.load(&z, &at);
                let d = f.let_("d", format!("fsub float {v}, {m}"));
                let e = f.let_("e", format!("call float @llvm.exp.f32(float {d})"));
                f.add_to(&total, &e);
            });
            let sum = f.read(&total);
            let log_sum = f.let_("ls", format!("call float @llvm.log.f32(float {sum})"));
            let lse = f.let_("lse", format!("fadd float {m}, {log_sum}"));
            let label = f.load(&labels, row);
            let class = f.let_("class", format!("fptosi float {label} to i64"));
            let loss = f.accumulator("0.0");
            f.count(k, |f, j| {
                let at = f.int("add", &base, j);
                let v = f.load(&z, &at);
                let hit = f.let_("hit", format!("icmp eq i64 {j}, {class}"));
                let q = f.let_("q", format!("select i1 {hit}, float {}, float {}", float(on), float(off)));
                if grad {
                    // (softmax - q) / n
                    let d = f.let_("d", format!("fsub float {v}, {lse}"));
                    let p = f.let_("p", format!("call float @llvm.exp.f32(float {d})"));
                    let g = f.let_("g", format!("fsub float {p}, {q}"));
                    let g = f.let_("g", format!("fmul float {g}, {}", float(1.0 / n as f32)));
                    f.store(&g, &out, &at);
                } else {
                    // -q (z - lse)
                    let d = f.let_("d", format!("fsub float {lse}, {v}"));
                    f.add_product(&loss, &q, &d);
                }
            });
            if !grad {
                let l = f.read(&loss);
                f.store(&l, &out, row);
            }
        });
    }

    /// `ChannelSum`: per-channel sums over the batch and the planes.
    pub(super) fn channel_sum(&mut self, f: &mut Function, id: NodeId) {
        let x = self.graph.operands(id)[0];
        let shape = self.graph.shape(x).clone();
        let (c, inner) = planes(&shape);
        let out = self.flat(f, Value { node: id, port: 0 });
        f.count(c, |f, ch| {
            let acc = f.accumulator("0.0");
            f.count(shape.batch(), |f, n| {
                let p = self.plane(f, x, ch, n);
                f.count(inner, |f, i| {
                    let v = f.load(&p, i);
                    f.add_to(&acc, &v);
                });
            });
            let s = f.read(&acc);
            f.store(&s, &out, ch);
        });
    }

    /// `ActivationGrad`: `dy` times the activation's derivative at `x` (PyTorch's
    /// boundaries), one channel per task, in vectors; through channel planes, as a gradient can
    /// be a view (the part of a concat's gradient).
    pub(super) fn activation_grad(&mut self, f: &mut Function, id: NodeId, activation: Activation) {
        let operands = self.graph.operands(id);
        let values = [operands[0], operands[1], Value { node: id, port: 0 }];
        let channels = self.graph.shape(operands[0]).channels();
        let ty = Ty::Vector(self.isa.lanes);
        let (t, i1) = (ty.name(), format!("<{} x i1>", self.isa.lanes));
        let (zero, one) = (ty.constant(0.0), ty.constant(1.0));
        self.parallel(f, channels, |l, f| {
            l.channel_vectors(f, &values, &mut |f, ps, at, mask| {
                let (v, g) = (f.load_ty(ty, &ps[0], at, mask), f.load_ty(ty, &ps[1], at, mask));
                let slope = match activation {
                    Activation::Relu => {
                        let pos = f.let_("pos", format!("fcmp ogt {t} {v}, {zero}"));
                        f.let_("d", format!("select {i1} {pos}, {t} {one}, {t} {zero}"))
                    }
                    Activation::Relu6 => {
                        let pos = f.let_("pos", format!("fcmp ogt {t} {v}, {zero}"));
                        let low = f.let_("low", format!("fcmp olt {t} {v}, {}", ty.constant(6.0)));
                        let both = f.let_("in", format!("and {i1} {pos}, {low}"));
                        f.let_("d", format!("select {i1} {both}, {t} {one}, {t} {zero}"))
                    }
                    Activation::Hardswish => {
                        let third = f.let_("m", format!("fmul {t} {v}, {}", ty.constant(1.0 / 3.0)));
                        let mid = f.let_("m", format!("fadd {t} {third}, {}", ty.constant(0.5)));
                        let below = f.let_("lo", format!("fcmp olt {t} {v}, {}", ty.constant(-3.0)));
                        let above = f.let_("hi", format!("fcmp ogt {t} {v}, {}", ty.constant(3.0)));
                        let d = f.let_("d", format!("select {i1} {above}, {t} {one}, {t} {mid}"));
                        f.let_("d", format!("select {i1} {below}, {t} {zero}, {t} {d}"))
                    }
                    Activation::Sigmoid => {
                        let neg = f.let_("n", format!("fneg {t} {v}"));
                        let e = f.let_("e", format!("call {t} @llvm.exp.{}({t} {neg})", ty.suffix()));
                        let den = f.let_("den", format!("fadd {t} {e}, {one}"));
                        let s = f.let_("s", format!("fdiv {t} {one}, {den}"));
                        let rest = f.let_("r", format!("fsub {t} {one}, {s}"));
                        f.let_("d", format!("fmul {t} {s}, {rest}"))
                    }
                };
                let r = f.let_("g", format!("fmul {t} {g}, {slope}"));
                f.store_ty(ty, &r, &ps[2], at, mask);
            });
        });
    }

    /// `LinearGradInput`: `dx[n, i] = sum over o of dy[n, o] w[o, i]`.
    pub(super) fn linear_grad_input(&mut self, f: &mut Function, id: NodeId) {
        let dy = self.graph.operands(id)[0];
        let dims = self.graph.shape(dy).dims().to_vec();
        let features = self.graph.shape(Value { node: id, port: 0 }).dims()[1];
        let w = self.param_at(id, "weight");
        let (g, dx) = (self.flat(f, dy), self.flat(f, Value { node: id, port: 0 }));
        f.fill(&dx, 0, dims[0] * features, &float(0.0));
        f.count(dims[0], |f, n| {
            let x_row = f.int("mul", n, features);
            f.count(dims[1], |f, o| {
                let gi = f.int("mul", n, dims[1]);
                let gi = f.int("add", &gi, o);
                let gv = f.load(&g, &gi);
                let w_row = f.int("mul", o, features);
                let w_row = f.int("add", &w_row, w);
                f.count(features, |f, i| {
                    let wi = f.int("add", &w_row, i);
                    let xi = f.int("add", &x_row, i);
                    let (wv, old) = (f.load("%w", &wi), f.load(&dx, &xi));
                    let r = f.fma(Ty::Scalar, &gv, &wv, &old);
                    f.store(&r, &dx, &xi);
                });
            });
        });
    }

    /// `LinearGradWeight`: `dw[o, i] = sum over n of dy[n, o] x[n, i]`, `x` read by planes.
    pub(super) fn linear_grad_weight(&mut self, f: &mut Function, id: NodeId) {
        let operands = self.graph.operands(id);
        let (x, dy) = (operands[0], operands[1]);
        let dims = self.graph.shape(dy).dims().to_vec();
        let (channels, inner) = planes(self.graph.shape(x));
        let features = channels * inner;
        let (g, dw) = (self.flat(f, dy), self.flat(f, Value { node: id, port: 0 }));
        f.fill(&dw, 0, dims[1] * features, &float(0.0));
        f.count(dims[0], |f, n| {
            f.count(channels, |f, c| {
                let xp = self.plane(f, x, c, n);
                let feature = f.int("mul", c, inner);
                f.count(dims[1], |f, o| {
                    let gi = f.int("mul", n, dims[1]);
                    let gi = f.int("add", &gi, o);
                    let gv = f.load(&g, &gi);
                    let w_row = f.int("mul", o, features);
                    let w_row = f.int("add", &w_row, &feature);
                    f.count(inner, |f, i| {
                        let wi = f.int("add", &w_row, i);
                        let (xv, old) = (f.load(&xp, i), f.load(&dw, &wi));
                        let r = f.fma(Ty::Scalar, &gv, &xv, &old);
                        f.store(&r, &dw, &wi);
                    });
                });
            });
        });
    }

    /// `SpatialDot`: per-plane sums of `a * b`.
    pub(super) fn spatial_dot(&mut self, f: &mut Function, id: NodeId) {
        let operands = self.graph.operands(id);
        let shape = self.graph.shape(operands[0]).clone();
        let (c, inner) = planes(&shape);
        let out = self.flat(f, Value { node: id, port: 0 });
        f.count(shape.batch(), |f, n| {
            f.count(c, |f, ch| {
                let (a, b) = (self.plane(f, operands[0], ch, n), self.plane(f, operands[1], ch, n));
                let acc = f.accumulator("0.0");
                f.count(inner, |f, i| {
                    let (u, v) = (f.load(&a, i), f.load(&b, i));
                    f.add_product(&acc, &u, &v);
                });
                let s = f.read(&acc);
                let item = f.int("mul", n, c);
                let at = f.int("add", &item, ch);
                f.store(&s, &out, &at);
            });
        });
    }

    /// `SoftmaxGrad`: `y (dy - sum(dy y))` per row.
    pub(super) fn softmax_grad(&mut self, f: &mut Function, id: NodeId) {
        let operands = self.graph.operands(id);
        let dims = self.graph.shape(operands[0]).dims().to_vec();
        let (y, dy, dx) =
            (self.flat(f, operands[0]), self.flat(f, operands[1]), self.flat(f, Value { node: id, port: 0 }));
        f.count(dims[0], |f, n| {
            let base = f.int("mul", n, dims[1]);
            let acc = f.accumulator("0.0");
            f.count(dims[1], |f, j| {
                let at = f.int("add", &base, j);
                let (a, b) = (f.load(&y, &at), f.load(&dy, &at));
                f.add_product(&acc, &a, &b);
            });
            let dot = f.read(&acc);
            f.count(dims[1], |f, j| {
                let at = f.int("add", &base, j);
                let (a, b) = (f.load(&y, &at), f.load(&dy, &at));
                let d = f.let_("d", format!("fsub float {b}, {dot}"));
                let r = f.let_("r", format!("fmul float {a}, {d}"));
                f.store(&r, &dx, &at);
            });
        });
    }

    /// `SgdUpdate`: one step of SGD with momentum on one parameter, as `torch.optim.SGD`.
    pub(super) fn sgd_update(&mut self, f: &mut Function, id: NodeId, sgd: &Sgd) {
        let operands = self.graph.operands(id);
        let numel = self.graph.shape(operands[0]).numel();
        let param = self.param_at(id, sgd.param.suffix());
        let buffer = self.param_at(id, sgd.param.momentum_suffix());
        let (grad, lr_p) = (self.flat(f, operands[0]), self.flat(f, operands[1]));
        let (new_param, new_buffer) =
            (self.flat(f, Value { node: id, port: 0 }), self.flat(f, Value { node: id, port: 1 }));
        let lr = f.load(&lr_p, "0");
        let neg_lr = f.let_("nlr", format!("fneg float {lr}"));
        let (m, wd) = (float(sgd.momentum.0), float(sgd.weight_decay.0));
        f.count(numel, |f, i| {
            let pi = f.int("add", i, param);
            let bi = f.int("add", i, buffer);
            let (p, b, g) = (f.load("%w", &pi), f.load("%w", &bi), f.load(&grad, i));
            let g = f.fma(Ty::Scalar, &wd, &p, &g);
            let b = f.fma(Ty::Scalar, &m, &b, &g);
            let step = if sgd.nesterov { f.fma(Ty::Scalar, &m, &b, &g) } else { b.clone() };
            let p = f.fma(Ty::Scalar, &neg_lr, &step, &p);
            f.store(&p, &new_param, i);
            f.store(&b, &new_buffer, i);
        });
    }
}
