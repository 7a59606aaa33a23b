//! Shape inference: the output shapes of an op from its input shapes, or why they do not fit.

use crate::{Conv, Op, Pool, Shape};

mod training;

/// The output shapes of `op` applied to inputs of the given shapes.
///
/// The error is a sentence about the mismatch; callers add which node and where.
pub fn infer(op: &Op, inputs: &[&Shape]) -> Result<Vec<Shape>, String> {
    check_arity(op, inputs.len())?;
    let one = |dims: Vec<usize>| make(dims).map(|s| vec![s]);
    match op {
        Op::Train(t) => training::infer(t, inputs),
        Op::Input => Err("an input has no operands; it is created with its shape".into()),
        Op::Conv(conv) => conv_shape(conv, inputs[0]).map(|s| vec![s]),
        Op::BatchNorm { eps } => {
            if !(eps.0 > 0.0 && eps.0.is_finite()) {
                return Err(format!("eps must be positive and finite, got {}", eps.0));
            }
            rank_at_least(inputs[0], 2)?;
            Ok(vec![inputs[0].clone()])
        }
        Op::Relu | Op::Relu6 | Op::Hardswish | Op::Sigmoid => Ok(vec![inputs[0].clone()]),
        Op::Add => {
            if inputs[0] != inputs[1] {
                return Err(format!("add needs operands of one shape, got {} and {}", inputs[0], inputs[1]));
            }
            Ok(vec![inputs[0].clone()])
        }
        Op::Mul => mul_shape(inputs[0], inputs[1]).map(|s| vec![s]),
        Op::Concat => concat_shape(inputs).map(|s| vec![s]),
        Op::Split { sizes } => split_shapes(sizes, inputs[0]),
        Op::Gather { channels } => {
            let x = rank_at_least(inputs[0], 2)?;
            if channels.is_empty() {
                return Err("gather needs at least one channel".to_string());
            }
            if let Some(&bad) = channels.iter().find(|&&c| c >= x.channels()) {
                return Err(format!("gather reads channel {bad} of a tensor with {} channels", x.channels()));
            }
            let mut dims = x.dims().to_vec();
            dims[1] = channels.len();
            make(dims).map(|s| vec![s])
        }
        Op::ChannelShuffle { groups } => {
            let x = rank_at_least(inputs[0], 2)?;
            let c = x.channels();
            if *groups == 0 || !c.is_multiple_of(*groups) {
                return Err(format!("channel_shuffle groups {groups} does not divide {c} channels"));
            }
            Ok(vec![x.clone()])
        }
        Op::MaxPool(pool) | Op::AvgPool(pool) => pool_shape(pool, inputs[0]).map(|s| vec![s]),
        Op::GlobalAvgPool => {
            let x = rank_exactly(inputs[0], 4)?;
            one(vec![x.batch(), x.channels(), 1, 1])
        }
        Op::Linear { out_features, .. } => {
            let x = rank_at_least(inputs[0], 2)?;
            positive("out", *out_features)?;
            let in_features = x.item_numel();
            in_features
                .checked_mul(*out_features)
                .filter(|&n| n <= crate::shape::MAX_ELEMS)
                .ok_or_else(|| format!("linear weights [{out_features}, {in_features}] are too large"))?;
            one(vec![x.batch(), *out_features])
        }
        Op::Flatten => {
            let x = rank_at_least(inputs[0], 2)?;
            one(vec![x.batch(), x.item_numel()])
        }
        Op::Softmax => {
            let x = rank_exactly(inputs[0], 2)?;
            Ok(vec![x.clone()])
        }
        Op::Reshape { shape } => {
            let x = inputs[0];
            for &d in shape {
                positive("reshape dimension", d)?;
            }
            let numel: Option<usize> = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if shape.is_empty() || numel != Some(x.item_numel()) {
                return Err(format!(
                    "reshape to {:?} needs {} elements per item to match the input's {} (shape {x})",
                    shape,
                    numel.map_or("too many".to_string(), |n| n.to_string()),
                    x.item_numel()
                ));
            }
            let mut dims = vec![x.batch()];
            dims.extend_from_slice(shape);
            one(dims)
        }
        Op::Transpose { perm } => {
            let x = inputs[0];
            let n = x.rank() - 1;
            let mut seen = vec![false; n];
            let valid =
                perm.len() == n && perm.iter().all(|&p| p < n && !std::mem::replace(&mut seen[p], true));
            if !valid {
                return Err(format!(
                    "transpose perm {perm:?} is not a permutation of the {n} non-batch axes of {x}"
                ));
            }
            let mut dims = vec![x.batch()];
            dims.extend(perm.iter().map(|&p| x.item_dims()[p]));
            one(dims)
        }
    }
}

fn check_arity(op: &Op, n: usize) -> Result<(), String> {
    match op.arity() {
        Some(k) if k != n => Err(format!("{} takes {k} operand(s), got {n}", op.name())),
        None if n == 0 => Err(format!("{} takes at least one operand", op.name())),
        _ => Ok(()),
    }
}

fn make(dims: Vec<usize>) -> Result<Shape, String> {
    let text = format!("{dims:?}");
    Shape::new(dims).ok_or_else(|| format!("shape {text} has more than 2^31 - 1 elements"))
}

fn positive(what: &str, v: usize) -> Result<(), String> {
    if v == 0 {
        return Err(format!("{what} must be at least 1, got 0"));
    }
    Ok(())
}

fn rank_at_least(x: &Shape, r: usize) -> Result<&Shape, String> {
    if x.rank() < r {
        return Err(format!("needs a tensor of rank {r} or more, got {x}"));
    }
    Ok(x)
}

fn rank_exactly(x: &Shape, r: usize) -> Result<&Shape, String> {
    if x.rank() != r {
        return Err(format!("needs a tensor of rank {r}, got {x}"));
    }
    Ok(x)
}

/// Output size of a sliding window along one axis, PyTorch's floor formula.
fn window_out(
    axis: &str,
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize, String> {
    positive(&format!("{axis} kernel"), kernel)?;
    positive(&format!("{axis} stride"), stride)?;
    positive(&format!("{axis} dilation"), dilation)?;
    let span = (kernel - 1)
        .checked_mul(dilation)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(|| format!("{axis} kernel {kernel} with dilation {dilation} is too large"))?;
    let padded = padding
        .checked_mul(2)
        .and_then(|p| p.checked_add(size))
        .ok_or_else(|| format!("{axis} padding {padding} is too large"))?;
    if padded < span {
        return Err(format!(
            "{axis} window {span} is larger than the padded input {padded} ({size} + 2 * {padding})"
        ));
    }
    Ok((padded - span) / stride + 1)
}

fn conv_shape(conv: &Conv, x: &Shape) -> Result<Shape, String> {
    let x = rank_exactly(x, 4)?;
    let c = x.channels();
    positive("out", conv.out_channels)?;
    positive("groups", conv.groups)?;
    if !c.is_multiple_of(conv.groups) {
        return Err(format!("groups {} does not divide {c} input channels", conv.groups));
    }
    if !conv.out_channels.is_multiple_of(conv.groups) {
        return Err(format!("groups {} does not divide {} output channels", conv.groups, conv.out_channels));
    }
    let [kh, kw] = conv.kernel;
    let oh = window_out("height", x.dims()[2], kh, conv.stride[0], conv.padding[0], conv.dilation[0])?;
    let ow = window_out("width", x.dims()[3], kw, conv.stride[1], conv.padding[1], conv.dilation[1])?;
    make(vec![conv.out_channels, c / conv.groups, kh, kw])
        .map_err(|_| "conv weights are too large".to_string())?;
    make(vec![x.batch(), conv.out_channels, oh, ow])
}

fn pool_shape(pool: &Pool, x: &Shape) -> Result<Shape, String> {
    let x = rank_exactly(x, 4)?;
    let [kh, kw] = pool.kernel;
    for (axis, k, p) in [("height", kh, pool.padding[0]), ("width", kw, pool.padding[1])] {
        // PyTorch's rule: padding at most half the window, so every window sees real input.
        if p > k / 2 {
            return Err(format!("{axis} padding {p} is more than half the window {k}"));
        }
    }
    let oh = window_out("height", x.dims()[2], kh, pool.stride[0], pool.padding[0], 1)?;
    let ow = window_out("width", x.dims()[3], kw, pool.stride[1], pool.padding[1], 1)?;
    make(vec![x.batch(), x.channels(), oh, ow])
}

fn mul_shape(a: &Shape, b: &Shape) -> Result<Shape, String> {
    let broadcast = a.rank() == 4
        && b.rank() == 4
        && b.batch() == a.batch()
        && b.channels() == a.channels()
        && b.dims()[2..] == [1, 1];
    if a == b || broadcast {
        Ok(a.clone())
    } else {
        Err(format!("mul needs operands of one shape, or [n, c, h, w] by [n, c, 1, 1]; got {a} and {b}"))
    }
}

fn concat_shape(inputs: &[&Shape]) -> Result<Shape, String> {
    let first = rank_at_least(inputs[0], 2)?;
    let mut channels = 0usize;
    for (i, x) in inputs.iter().enumerate() {
        if x.rank() != first.rank() || x.batch() != first.batch() || x.dims()[2..] != first.dims()[2..] {
            return Err(format!(
                "concat operands must agree on all axes but channels: operand 0 is {first}, operand {i} is {x}"
            ));
        }
        channels =
            channels.checked_add(x.channels()).ok_or_else(|| "concat has too many channels".to_string())?;
    }
    let mut dims = first.dims().to_vec();
    dims[1] = channels;
    make(dims)
}

fn split_shapes(sizes: &[usize], x: &Shape) -> Result<Vec<Shape>, String> {
    let x = rank_at_least(x, 2)?;
    if sizes.len() < 2 {
        return Err(format!("split needs at least 2 parts, got {}", sizes.len()));
    }
    for &s in sizes {
        positive("split part", s)?;
    }
    let total = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s));
    if total != Some(x.channels()) {
        return Err(format!("split sizes {sizes:?} do not add up to the {} input channels", x.channels()));
    }
    Ok(sizes
        .iter()
        .map(|&s| {
            let mut dims = x.dims().to_vec();
            dims[1] = s;
            Shape::new(dims).expect("a part is no larger than its whole")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &[usize]) -> Shape {
        Shape::new(d.to_vec()).unwrap()
    }

    fn conv(out: usize, k: usize, stride: usize, pad: usize, groups: usize) -> Op {
        Op::Conv(Conv {
            out_channels: out,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad, pad],
            dilation: [1, 1],
            groups,
            bias: false,
        })
    }

    #[test]
    fn conv_follows_pytorch_formula() {
        let out = infer(&conv(24, 3, 2, 1, 1), &[&s(&[1, 3, 224, 224])]).unwrap();
        assert_eq!(out, vec![s(&[1, 24, 112, 112])]);
        let dw = infer(&conv(58, 3, 2, 1, 58), &[&s(&[2, 58, 7, 7])]).unwrap();
        assert_eq!(dw, vec![s(&[2, 58, 4, 4])]);
    }

    #[test]
    fn conv_rejects_groups_that_do_not_divide() {
        let err = infer(&conv(24, 1, 1, 0, 5), &[&s(&[1, 24, 8, 8])]).unwrap_err();
        assert_eq!(err, "groups 5 does not divide 24 input channels");
    }

    #[test]
    fn conv_rejects_window_larger_than_input() {
        let err = infer(&conv(8, 7, 1, 0, 1), &[&s(&[1, 3, 4, 4])]).unwrap_err();
        assert_eq!(err, "height window 7 is larger than the padded input 4 (4 + 2 * 0)");
    }

    #[test]
    fn split_and_concat_round_trip() {
        let x = s(&[1, 116, 28, 28]);
        let parts = infer(&Op::Split { sizes: vec![58, 58] }, &[&x]).unwrap();
        assert_eq!(parts, vec![s(&[1, 58, 28, 28]), s(&[1, 58, 28, 28])]);
        let back = infer(&Op::Concat, &[&parts[0], &parts[1]]).unwrap();
        assert_eq!(back, vec![x]);
    }

    #[test]
    fn split_rejects_sizes_that_miss_the_total() {
        let err = infer(&Op::Split { sizes: vec![3, 3] }, &[&s(&[1, 7, 2, 2])]).unwrap_err();
        assert_eq!(err, "split sizes [3, 3] do not add up to the 7 input channels");
    }

    #[test]
    fn mul_broadcasts_channel_scales_only() {
        let x = s(&[2, 16, 5, 5]);
        let scale = s(&[2, 16, 1, 1]);
        assert_eq!(infer(&Op::Mul, &[&x, &scale]).unwrap(), vec![x.clone()]);
        assert!(infer(&Op::Mul, &[&scale, &x]).is_err());
    }

    #[test]
    fn reshape_transpose_express_a_shuffle() {
        let x = s(&[1, 8, 3, 3]);
        let r = &infer(&Op::Reshape { shape: vec![2, 4, 3, 3] }, &[&x]).unwrap()[0];
        let t = &infer(&Op::Transpose { perm: vec![1, 0, 2, 3] }, &[r]).unwrap()[0];
        assert_eq!(t, &s(&[1, 4, 2, 3, 3]));
        let back = &infer(&Op::Reshape { shape: vec![8, 3, 3] }, &[t]).unwrap()[0];
        assert_eq!(back, &x);
        assert!(infer(&Op::Transpose { perm: vec![0, 0, 1, 2] }, &[r]).is_err());
    }

    #[test]
    fn arity_is_checked() {
        let x = s(&[1, 2, 3, 3]);
        assert_eq!(infer(&Op::Add, &[&x]).unwrap_err(), "add takes 2 operand(s), got 1");
        assert_eq!(infer(&Op::Concat, &[]).unwrap_err(), "concat takes at least one operand");
    }
}
