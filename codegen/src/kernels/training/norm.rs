//! Batch normalization in training mode and its gradient: one task per channel, each
//! reducing over the batch and the channel's planes.

use ir::{NodeId, Value};

use crate::emit::{Function, Ty, float};
use crate::lower::{Lowering, planes};

impl Lowering<'_> {
    /// Loops `body(f, planes, index, mask)` over channel `%t` of `values` (all of one shape), batch
    /// item by batch item, a vector of `lanes` elements at a time: `planes` are the values'
    /// planes, `mask` the valid lanes of a plane's last vector.
    pub(super) fn channel_vectors(&mut self, f: &mut Function, values: &[Value], body: &mut VectorBody<'_>) {
        let shape = self.graph.shape(values[0]).clone();
        let (_, inner) = planes(&shape);
        let lanes = self.isa.lanes;
        let whole = inner / lanes;
        let mask = crate::emit::tail_mask(inner, lanes);
        f.count(shape.batch(), |f, n| {
            let ps: Vec<String> = values.iter().map(|&v| self.plane(f, v, "%t", n)).collect();
            f.count(whole, |f, v| {
                let at = f.int("mul", v, lanes);
                body(f, &ps, &at, None);
            });
            if let Some(mask) = &mask {
                body(f, &ps, &(whole * lanes).to_string(), Some(mask));
            }
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
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        // The running variance takes the unbiased batch variance, as PyTorch's does.
        let unbiased = if count > 1 { count as f32 / (count - 1) as f32 } else { 1.0 };
        self.parallel(f, channels, |l, f| {
            // Masked loads read zeros past a plane's end, which add nothing to the sum.
            let sum = f.slot(ty, "zeroinitializer");
            l.channel_vectors(f, &[x], &mut |f, ps, at, mask| {
                let v = f.load_ty(ty, &ps[0], at, mask);
                f.add_vector(ty, &sum, &v);
            });
            let total = f.vector_sum(ty, &sum);
            let mean = f.let_("mean", format!("fmul float {total}, {}", float(1.0 / count as f32)));
            let mean_v = f.splat(&mean, lanes);
            let squares = f.slot(ty, "zeroinitializer");
            l.channel_vectors(f, &[x], &mut |f, ps, at, mask| {
                let v = f.load_ty(ty, &ps[0], at, mask);
                let d = f.let_("d", format!("fsub {} {v}, {mean_v}", ty.name()));
                // Past the end `d` is `-mean`: keep it out of the sum.
                let d = match mask {
                    Some(m) => f.let_(
                        "d",
                        format!(
                            "select <{lanes} x i1> {m}, {} {d}, {} zeroinitializer",
                            ty.name(),
                            ty.name()
                        ),
                    ),
                    None => d,
                };
                let sq = f.let_("sq", format!("fmul {} {d}, {d}", ty.name()));
                f.add_vector(ty, &squares, &sq);
            });
            let sq = f.vector_sum(ty, &squares);
            let var = f.let_("var", format!("fmul float {sq}, {}", float(1.0 / count as f32)));
            let padded = f.let_("var", format!("fadd float {var}, {}", float(eps)));
            let std = f.let_("std", format!("call float @llvm.sqrt.f32(float {padded})"));
            let inv = f.let_("inv", format!("fdiv float {}, {std}", float(1.0)));
            let g = param(f, gamma);
            let b = param(f, beta);
            let scale = f.let_("scale", format!("fmul float {g}, {inv}"));
            let shifted = f.let_("m", format!("fmul float {mean}, {scale}"));
            let shift = f.let_("shift", format!("fsub float {b}, {shifted}"));
            let (scale_v, shift_v) = (f.splat(&scale, lanes), f.splat(&shift, lanes));
            l.channel_vectors(f, &[x, out(0)], &mut |f, ps, at, mask| {
                let v = f.load_ty(ty, &ps[0], at, mask);
                let r = f.fma(ty, &v, &scale_v, &shift_v);
                f.store_ty(ty, &r, &ps[1], at, mask);
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
                let new = f.fma(Ty::Scalar, &batch, &float(momentum), &kept);
                let dst = l.flat(f, out(port));
                f.store(&new, &dst, "%t");
            }
        });
    }

    /// `BatchNormGrad`: `dx`, `d weight` and `d bias` from the saved batch statistics.
    pub(super) fn batch_norm_grad(&mut self, f: &mut Function, id: NodeId) {
        let operands = self.graph.operands(id);
        let (x, dy, mean_v, inv_v) = (operands[0], operands[1], operands[2], operands[3]);
        let dx = Value { node: id, port: 0 };
        let count = self.per_channel(x);
        let gamma = self.param_at(id, "weight");
        let channels = self.graph.shape(x).channels();
        let ty = Ty::Vector(self.isa.lanes);
        let lanes = self.isa.lanes;
        self.parallel(f, channels, |l, f| {
            let mean_p = l.flat(f, mean_v);
            let mean = f.load(&mean_p, "%t");
            let inv_p = l.flat(f, inv_v);
            let inv = f.load(&inv_p, "%t");
            let mean_s = f.splat(&mean, lanes);
            let (d_beta, d_centered) = (f.slot(ty, "zeroinitializer"), f.slot(ty, "zeroinitializer"));
            // Masked loads read zero gradients past a plane's end: both sums stay exact.
            l.channel_vectors(f, &[x, dy], &mut |f, ps, at, mask| {
                let (v, g) = (f.load_ty(ty, &ps[0], at, mask), f.load_ty(ty, &ps[1], at, mask));
                f.add_vector(ty, &d_beta, &g);
                let d = f.let_("d", format!("fsub {} {v}, {mean_s}", ty.name()));
                let p = f.let_("p", format!("fmul {} {g}, {d}", ty.name()));
                f.add_vector(ty, &d_centered, &p);
            });
            let db = f.vector_sum(ty, &d_beta);
            let centered = f.vector_sum(ty, &d_centered);
            let dg = f.let_("dg", format!("fmul float {centered}, {inv}"));
            // dx = k (count dy - db - x_hat dg) with k = gamma inv / count, as
            // a dy + b (x - mean) + c.
            let g = param(f, gamma);
            let a = f.let_("k", format!("fmul float {g}, {inv}"));
            let kc = f.let_("kc", format!("fmul float {a}, {}", float(1.0 / count as f32)));
            let kdg = f.let_("kdg", format!("fmul float {kc}, {dg}"));
            let b = f.let_("b", format!("fmul float {kdg}, {inv}"));
            let nb = f.let_("nb", format!("fneg float {b}"));
            let kdb = f.let_("kdb", format!("fmul float {kc}, {db}"));
            let c = f.let_("c", format!("fneg float {kdb}"));
            let [a_v, nb_v, c_v] = [&a, &nb, &c].map(|s| f.splat(s, lanes));
            l.channel_vectors(f, &[x, dy, dx], &mut |f, ps, at, mask| {
                let (v, g) = (f.load_ty(ty, &ps[0], at, mask), f.load_ty(ty, &ps[1], at, mask));
                let t = ty.name();
                let d = f.let_("d", format!("fsub {t} {v}, {mean_s}"));
                let u = f.fma(ty, &d, &nb_v, &c_v);
                let r = f.fma(ty, &g, &a_v, &u);
                f.store_ty(ty, &r, &ps[2], at, mask);
            });
            for (port, value) in [(1, dg), (2, db)] {
                let dst = l.flat(f, Value { node: id, port });
                f.store(&value, &dst, "%t");
            }
        });
    }
}

/// The body of a loop over a channel's vectors: `(f, planes, index, mask)`.
type VectorBody<'a> = dyn FnMut(&mut Function, &[String], &str, Option<&str>) + 'a;

/// Loads blob element `offset + %t` (a per-channel parameter).
fn param(f: &mut Function, offset: usize) -> String {
    let at = f.int("add", "%t", offset);
    f.load("%w", &at)
}
