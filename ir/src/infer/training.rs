//! Shape inference for the training ops that the autodiff pass makes: each checks that its
//! operands are what the forward op it differentiates would give, so a training graph is
//! verified like any other.

use super::{conv_shape, make, pool_shape, rank_at_least, rank_exactly};
use crate::{Float, Shape, TrainOp};

/// The output shapes of a training op, or why the operands do not fit.
pub(super) fn infer(op: &TrainOp, inputs: &[&Shape]) -> Result<Vec<Shape>, String> {
    let same = |a: &Shape, b: &Shape, what: &str| {
        if a == b { Ok(()) } else { Err(format!("{what} must have shape {a}, got {b}")) }
    };
    let channels = |x: &Shape| make(vec![x.channels()]);
    match op {
        TrainOp::BatchNormTrain { eps, momentum } => {
            positive_finite("eps", *eps)?;
            fraction("momentum", *momentum, true)?;
            let x = rank_at_least(inputs[0], 2)?;
            let c = channels(x)?;
            Ok(vec![x.clone(), c.clone(), c.clone(), c.clone(), c])
        }
        TrainOp::BatchNormGrad => {
            let x = rank_at_least(inputs[0], 2)?;
            same(x, inputs[1], "dy")?;
            let c = channels(x)?;
            same(&c, inputs[2], "mean")?;
            same(&c, inputs[3], "inv_std")?;
            Ok(vec![x.clone(), c.clone(), c])
        }
        TrainOp::SoftmaxCrossEntropy { label_smoothing }
        | TrainOp::SoftmaxCrossEntropyGrad { label_smoothing } => {
            fraction("label_smoothing", *label_smoothing, false)?;
            let logits = rank_exactly(inputs[0], 2)?;
            same(&make(vec![logits.batch(), 1])?, inputs[1], "labels")?;
            let out = if matches!(op, TrainOp::SoftmaxCrossEntropy { .. }) { inputs[1] } else { logits };
            Ok(vec![out.clone()])
        }
        TrainOp::ConvGradInput { conv, input: [c, h, w] } => {
            let dy = rank_exactly(inputs[0], 4)?;
            let x = make(vec![dy.batch(), *c, *h, *w])?;
            same(&conv_shape(conv, &x)?, dy, "dy")?;
            Ok(vec![x])
        }
        TrainOp::ConvGradWeight(conv) => {
            let x = rank_exactly(inputs[0], 4)?;
            same(&conv_shape(conv, x)?, inputs[1], "dy")?;
            let [kh, kw] = conv.kernel;
            Ok(vec![make(vec![conv.out_channels, x.channels() / conv.groups, kh, kw])?])
        }
        TrainOp::ChannelSum => Ok(vec![channels(rank_at_least(inputs[0], 2)?)?]),
        TrainOp::ActivationGrad(_) | TrainOp::SoftmaxGrad => {
            same(inputs[0], inputs[1], "dy")?;
            Ok(vec![inputs[0].clone()])
        }
        TrainOp::MaxPoolGrad(pool) => {
            same(&pool_shape(pool, inputs[0])?, inputs[1], "dy")?;
            Ok(vec![inputs[0].clone()])
        }
        TrainOp::AvgPoolGrad { pool, input: [h, w] } => {
            let dy = rank_exactly(inputs[0], 4)?;
            let x = make(vec![dy.batch(), dy.channels(), *h, *w])?;
            same(&pool_shape(pool, &x)?, dy, "dy")?;
            Ok(vec![x])
        }
        TrainOp::GlobalAvgPoolGrad { input: [h, w] } => {
            let dy = rank_exactly(inputs[0], 4)?;
            same(&make(vec![dy.batch(), dy.channels(), 1, 1])?, dy, "dy")?;
            Ok(vec![make(vec![dy.batch(), dy.channels(), *h, *w])?])
        }
        TrainOp::LinearGradInput { in_features } => {
            let dy = rank_exactly(inputs[0], 2)?;
            Ok(vec![make(vec![dy.batch(), *in_features])?])
        }
        TrainOp::LinearGradWeight => {
            let x = rank_at_least(inputs[0], 2)?;
            let dy = rank_exactly(inputs[1], 2)?;
            if dy.batch() != x.batch() {
                return Err(format!("dy {dy} and x {x} differ in batch size"));
            }
            Ok(vec![make(vec![dy.channels(), x.item_numel()])?])
        }
        TrainOp::SpatialDot => {
            let a = rank_exactly(inputs[0], 4)?;
            same(a, inputs[1], "the second operand")?;
            Ok(vec![make(vec![a.batch(), a.channels(), 1, 1])?])
        }
        TrainOp::SgdUpdate(sgd) => {
            fraction("momentum", sgd.momentum, false)?;
            if !(sgd.weight_decay.0 >= 0.0 && sgd.weight_decay.0.is_finite()) {
                return Err(format!(
                    "weight_decay must be finite and not negative, got {}",
                    sgd.weight_decay.0
                ));
            }
            same(&make(vec![1, 1])?, inputs[1], "lr")?;
            Ok(vec![inputs[0].clone(), inputs[0].clone()])
        }
    }
}

fn positive_finite(what: &str, v: Float) -> Result<(), String> {
    if v.0 > 0.0 && v.0.is_finite() {
        Ok(())
    } else {
        Err(format!("{what} must be positive and finite, got {}", v.0))
    }
}

/// Checks `0 <= v < 1`, or `0 <= v <= 1` when `inclusive`.
fn fraction(what: &str, v: Float, inclusive: bool) -> Result<(), String> {
    let ok = v.0 >= 0.0 && (v.0 < 1.0 || (inclusive && v.0 == 1.0));
    let bound = if inclusive { "[0, 1]" } else { "[0, 1)" };
    if ok { Ok(()) } else { Err(format!("{what} must be in {bound}, got {}", v.0)) }
}
