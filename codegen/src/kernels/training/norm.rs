//! Batch normalization in training mode and its gradient: one task per channel, each
//! reducing over the batch and the channel's planes.

use ir::{NodeId, Value};

use crate::emit::{Function, float};
use crate::lower::{Lowering, planes};

impl Lowering<'_> {
    /// Loops `body(f, plane, index)` over every element of channel `%t` of `v`, batch item by
    /// batch item.
    fn channel_elements(
        &mut self,
        f: &mut Function,
        v: Value,
        body: &mut dyn FnMut(&mut Function, &str, &str),
    ) {
        let shape = self.graph.shape(v).clone();
        let (_, inner) = planes(&shape);
        f.count(shape.batch(), |f, n| {
            let p = self.plane(f, v, "%t", n);
            f.count(inner, |f, i| body(f, &p, i));
        });
    }

    /// Elements per channel of `v`, over the batch.
    fn per_channel(&self, v: Value) -> usize {
        let shape = self.graph.shape(v);
        shape.batch() * planes(shape).1
    }

    /// `BatchNormTrain`: batch statistics, normalization, updated running statistics.
    pub(super) fn batch_norm_train(&mut self, f: &mut Function, id: NodeId, eps: f32, momentum: f32) {
        let x = self.graph.operands(id)[0];
        let out = |port| Value { node: id, port };
        let count = self.per_channel(x);
        let [gamma, beta, mean_at, var_at] =
            ["weight", "bias", "running_mean", "running_var"].map(|s| self.param_at(id, s));
        let channels = self.graph.shape(x).channels();
        // The running variance takes the unbiased batch variance, as PyTorch's does.
        let unbiased = if count > 1 { count as f32 / (count - 1) as f32 } else { 1.0 };
        self.parallel(f, channels, |l, f| {
            let sum = f.accumulator("0.0");
            l.channel_elements(f, x, &mut |f, p, i| {
                let v = f.load(p, i);
                f.add_to(&sum, &v);
            });
            let total = f.read(&sum);
            let mean = f.let_("mean", format!("fmul float {total}, {}", float(1.0 / count as f32)));
            let squares = f.accumulator("0.0");
            l.channel_elements(f, x, &mut |f, p, i| {
                let v = f.load(p, i);
                let d = f.let_("d", format!("fsub float {v}, {mean}"));
                f.add_product(&squares, &d, &d);
            });
            let sq = f.read(&squares);
            let var = f.let_("var", format!("fmul float {sq}, {}", float(1.0 / count as f32)));
            let padded = f.let_("var", format!("fadd float {var}, {}", float(eps)));
            let std = f.let_("std", format!("call float @llvm.sqrt.f32(float {padded})"));
            let inv = f.let_("inv", format!("fdiv float {}, {std}", float(1.0)));
            let g = param(f, gamma);
            let b = param(f, beta);
            let scale = f.let_("scale", format!("fmul float {g}, {inv}"));
            let shifted = f.let_("m", format!("fmul float {mean}, {scale}"));
            let shift = f.let_("shift", format!("fsub float {b}, {shifted}"));
            let (batch, inner) = (l.graph.shape(x).batch(), planes(l.graph.shape(x)).1);
            f.count(batch, |f, n| {
                let xp = l.plane(f, x, "%t", n);
                let yp = l.plane(f, out(0), "%t", n);
                f.count(inner, |f, i| {
                    let v = f.load(&xp, i);
                    let r = f.fma(&v, &scale, &shift);
                    f.store(&r, &yp, i);
                });
            });
            for (port, value) in [(1, &mean), (2, &inv)] {
                let dst = l.flat(f, out(port));
                f.store(value, &dst, "%t");
            }
            for (port, old_at, batch) in [(3, mean_at, mean.clone()), (4, var_at, var.clone())] {
                let batch = if port == 4 {
                    f.let_("uv", format!("fmul float {batch}, {}", float(unbiased)))
                } else {
                    batch
                };
                let old = param(f, old_at);
                let kept = f.let_("k", format!("fmul float {old}, {}", float(1.0 - momentum)));
                let new = f.fma(&batch, &float(momentum), &kept);
                let dst = l.flat(f, out(port));
                f.store(&new, &dst, "%t");
            }
        });
    }

    /// `BatchNormGrad`: `dx`, `d weight` and `d bias` from the saved batch statistics.
    pub(super) fn batch_norm_grad(&mut self, f: &mut Function, id: NodeId) {
        let operands = self.graph.operands(id);
        let (x, dy, mean_v, inv_v) = (operands[0], operands[1], operands[2], operands[3]);
        let count = self.per_channel(x);
        let gamma = self.param_at(id, "weight");
        let channels = self.graph.shape(x).channels();
        self.parallel(f, channels, |l, f| {
            let mean_p = l.flat(f, mean_v);
            let mean = f.load(&mean_p, "%t");
            let inv_p = l.flat(f, inv_v);
            let inv = f.load(&inv_p, "%t");
            let (d_beta, d_gamma) = (f.accumulator("0.0"), f.accumulator("0.0"));
            let (x_shape, inner) = (l.graph.shape(x).clone(), planes(l.graph.shape(x)).1);
            f.count(x_shape.batch(), |f, n| {
                let xp = l.plane(f, x, "%t", n);
                let gp = l.plane(f, dy, "%t", n);
                f.count(inner, |f, i| {
                    let (v, g) = (f.load(&xp, i), f.load(&gp, i));
                    f.add_to(&d_beta, &g);
                    let d = f.let_("d", format!("fsub float {v}, {mean}"));
                    let h = f.let_("h", format!("fmul float {d}, {inv}"));
                    f.add_product(&d_gamma, &g, &h);
                });
            });
            let (db, dg) = (f.read(&d_beta), f.read(&d_gamma));
            // dx = k (count dy - db - x_hat dg) with k = gamma inv / count, as
            // a dy + b (x - mean) + c.
            let g = param(f, gamma);
            let k = f.let_("k", format!("fmul float {g}, {inv}"));
            let a = k.clone();
            let kc = f.let_("kc", format!("fmul float {k}, {}", float(1.0 / count as f32)));
            let kdg = f.let_("kdg", format!("fmul float {kc}, {dg}"));
            let b = f.let_("b", format!("fmul float {kdg}, {inv}"));
            let nb = f.let_("nb", format!("fneg float {b}"));
            let kdb = f.let_("kdb", format!("fmul float {kc}, {db}"));
            let c = f.let_("c", format!("fneg float {kdb}"));
            let dx = Value { node: id, port: 0 };
            f.count(x_shape.batch(), |f, n| {
                let xp = l.plane(f, x, "%t", n);
                let gp = l.plane(f, dy, "%t", n);
                let op = l.plane(f, dx, "%t", n);
                f.count(inner, |f, i| {
                    let (v, g) = (f.load(&xp, i), f.load(&gp, i));
                    let d = f.let_("d", format!("fsub float {v}, {mean}"));
                    let t = f.fma(&d, &nb, &c);
                    let r = f.fma(&g, &a, &t);
                    f.store(&r, &op, i);
                });
            });
            for (port, value) in [(1, dg), (2, db)] {
                let dst = l.flat(f, Value { node: id, port });
                f.store(&value, &dst, "%t");
            }
        });
    }
}

/// Loads blob element `offset + %t` (a per-channel parameter).
fn param(f: &mut Function, offset: usize) -> String {
    let at = f.int("add", "%t", offset);
    f.load("%w", &at)
}
