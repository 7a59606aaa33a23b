//! `eval`: the reference interpreter. It defines what every op means, so it is written to be
//! read, not to be fast: plain loops over `Vec<f32>`, one function per op, sums accumulated
//! in f64. Every pass and every compiled kernel is tested against it.

use std::collections::BTreeMap;

use crate::{Conv, Error, Graph, Op, Pool, Result, Tensor, Value, Weights};

mod training;

/// Runs `graph` on `inputs` (one per graph input, in order) and returns its outputs.
pub fn eval(graph: &Graph, weights: &Weights, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let values = eval_all(graph, weights, inputs)?;
    Ok(graph.outputs().iter().map(|v| values[v].clone()).collect())
}

/// Like [`eval`], but returns every value the graph computes, for debugging and for
/// comparing intermediate results.
pub fn eval_all(graph: &Graph, weights: &Weights, inputs: &[Tensor]) -> Result<BTreeMap<Value, Tensor>> {
    weights.check(graph)?;
    if inputs.len() != graph.inputs().len() {
        return Err(Error::Input {
            message: format!("the network takes {} input(s), got {}", graph.inputs().len(), inputs.len()),
        });
    }
    let mut values = BTreeMap::new();
    for (&id, x) in graph.inputs().iter().zip(inputs) {
        let expected = graph.node(id).outputs[0].dims();
        if x.shape != expected {
            return Err(Error::Input {
                message: format!(
                    "input `{}` must have shape {expected:?}, got {:?}",
                    graph.node(id).name,
                    x.shape
                ),
            });
        }
        values.insert(Value { node: id, port: 0 }, x.clone());
    }
    for id in graph.topo_order().expect("eval runs verified, acyclic graphs") {
        let node = graph.node(id);
        if node.op == Op::Input {
            continue;
        }
        let operand_values = graph.operands(id);
        let operands: Vec<&Tensor> = operand_values.iter().map(|v| &values[v]).collect();
        let specs = node.op.params(graph.shape(operand_values[0]));
        let params: Vec<&Tensor> = specs.iter().map(|s| weights.param(node, s.suffix)).collect();
        let outputs = apply(&node.op, &operands, &params);
        for (port, t) in outputs.into_iter().enumerate() {
            debug_assert_eq!(t.shape, node.outputs[port].dims(), "{} computed a wrong shape", node.name);
            values.insert(Value { node: id, port }, t);
        }
    }
    Ok(values)
}

/// Applies one op to its operands `x` and parameters `p` (in the order of [`Op::params`]).
/// Shapes are assumed valid (the graph was verified).
pub fn apply(op: &Op, x: &[&Tensor], p: &[&Tensor]) -> Vec<Tensor> {
    let map = |f: &dyn Fn(f32) -> f32| Tensor::new(&x[0].shape, x[0].data.iter().map(|&v| f(v)).collect());
    let one = |t: Tensor| vec![t];
    match op {
        Op::Input => unreachable!("inputs are given, not computed"),
        Op::Conv(c) => one(conv(c, x[0], p[0], p.get(1).copied())),
        Op::BatchNorm { eps } => one(batch_norm(x[0], [p[0], p[1], p[2], p[3]], eps.0)),
        Op::Relu => one(map(&|v| v.max(0.0))),
        Op::Relu6 => one(map(&|v| v.clamp(0.0, 6.0))),
        Op::Hardswish => one(map(&|v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0)),
        Op::Sigmoid => one(map(&|v| 1.0 / (1.0 + (-v).exp()))),
        Op::Add => {
            one(Tensor::new(&x[0].shape, x[0].data.iter().zip(&x[1].data).map(|(a, b)| a + b).collect()))
        }
        Op::Mul => one(mul(x[0], x[1])),
        Op::Concat => one(concat(x)),
        Op::Split { sizes } => split(x[0], sizes),
        Op::Gather { channels } => one(gather(x[0], channels)),
        Op::ChannelShuffle { groups } => one(channel_shuffle(x[0], *groups)),
        Op::MaxPool(p) => one(pool(p, x[0], true)),
        Op::AvgPool(p) => one(pool(p, x[0], false)),
        Op::GlobalAvgPool => one(global_avg_pool(x[0])),
        Op::Linear { .. } => one(linear(x[0], p[0], p.get(1).copied())),
        Op::Flatten => one(Tensor::new(&[x[0].shape[0], x[0].numel() / x[0].shape[0]], x[0].data.clone())),
        Op::Softmax => one(softmax(x[0])),
        Op::Reshape { shape } => {
            let mut dims = vec![x[0].shape[0]];
            dims.extend_from_slice(shape);
            one(Tensor::new(&dims, x[0].data.clone()))
        }
        Op::Transpose { perm } => one(transpose(x[0], perm)),
        Op::Train(t) => training::apply(t, x, p),
    }
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The output shape of conv `c` on an input of `shape` (NCHW).
fn conv_output(c: &Conv, shape: &[usize]) -> [usize; 4] {
    let [n, _, h, w] = shape[..] else { unreachable!("conv input is NCHW") };
    let size =
        |i: usize, k: usize| (i + 2 * c.padding[k] - c.dilation[k] * (c.kernel[k] - 1) - 1) / c.stride[k] + 1;
    [n, c.out_channels, size(h, 0), size(w, 1)]
}

/// Calls `tap(x_index, w_index, y_index)` for every multiply-add of conv `c` on an input of
/// `shape`, output element by output element; taps that read padding are skipped. The forward
/// conv and both of its gradients are this one loop nest.
pub(crate) fn conv_taps(c: &Conv, shape: &[usize], mut tap: impl FnMut(usize, usize, usize)) {
    let [n, ci, h, wd] = shape[..] else { unreachable!("conv input is NCHW") };
    let [_, co_total, oh, ow] = conv_output(c, shape);
    let [kh, kw] = c.kernel;
    let (cin_g, cout_g) = (ci / c.groups, co_total / c.groups);
    for b in 0..n {
        for co in 0..co_total {
            let g = co / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let y_index = ((b * co_total + co) * oh + oy) * ow + ox;
                    for cig in 0..cin_g {
                        let cin = g * cin_g + cig;
                        for ky in 0..kh {
                            // Input row in padded coordinates; rows in the padding are zero.
                            let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - c.padding[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix =
                                    (ox * c.stride[1] + kx * c.dilation[1]) as isize - c.padding[1] as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                let x_index = ((b * ci + cin) * h + iy as usize) * wd + ix as usize;
                                tap(x_index, ((co * cin_g + cig) * kh + ky) * kw + kx, y_index);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Sums in f64 and rounds once, as every reference reduction here does.
pub(crate) fn rounded(sums: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::new(shape, sums.into_iter().map(|v| v as f32).collect())
}

fn conv(c: &Conv, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let shape = conv_output(c, &x.shape);
    let inner = shape[2] * shape[3];
    let mut acc: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|i| b.map_or(0.0, |b| f64::from(b.data[(i / inner) % shape[1]])))
        .collect();
    conv_taps(c, &x.shape, |xi, wi, yi| acc[yi] += f64::from(x.data[xi]) * f64::from(w.data[wi]));
    rounded(acc, &shape)
}

fn batch_norm(x: &Tensor, [gamma, beta, mean, var]: [&Tensor; 4], eps: f32) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner = x.numel() / (n * c);
    let mut y = x.clone();
    for (i, v) in y.data.iter_mut().enumerate() {
        let ch = (i / inner) % c;
        let scale = f64::from(gamma.data[ch]) / (f64::from(var.data[ch]) + f64::from(eps)).sqrt();
        *v = ((f64::from(*v) - f64::from(mean.data[ch])) * scale + f64::from(beta.data[ch])) as f32;
    }
    y
}

fn mul(a: &Tensor, b: &Tensor) -> Tensor {
    if a.shape == b.shape {
        return Tensor::new(&a.shape, a.data.iter().zip(&b.data).map(|(x, y)| x * y).collect());
    }
    // [n, c, h, w] * [n, c, 1, 1]: one scale per channel.
    let inner = a.shape[2] * a.shape[3];
    Tensor::new(&a.shape, a.data.iter().enumerate().map(|(i, x)| x * b.data[i / inner]).collect())
}

fn concat(x: &[&Tensor]) -> Tensor {
    let n = x[0].shape[0];
    let mut shape = x[0].shape.clone();
    shape[1] = x.iter().map(|t| t.shape[1]).sum();
    let mut data = Vec::with_capacity(shape.iter().product());
    for b in 0..n {
        for t in x {
            let item = t.numel() / n;
            data.extend_from_slice(&t.data[b * item..(b + 1) * item]);
        }
    }
    Tensor::new(&shape, data)
}

fn split(x: &Tensor, sizes: &[usize]) -> Vec<Tensor> {
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner = x.numel() / (n * c);
    let mut start = 0;
    let mut parts = Vec::new();
    for &s in sizes {
        let mut shape = x.shape.clone();
        shape[1] = s;
        let mut data = Vec::with_capacity(n * s * inner);
        for b in 0..n {
            let from = (b * c + start) * inner;
            data.extend_from_slice(&x.data[from..from + s * inner]);
        }
        parts.push(Tensor::new(&shape, data));
        start += s;
    }
    parts
}

fn gather(x: &Tensor, channels: &[usize]) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner = x.numel() / (n * c);
    let mut shape = x.shape.clone();
    shape[1] = channels.len();
    let mut data = Vec::with_capacity(n * channels.len() * inner);
    for b in 0..n {
        for &ch in channels {
            let from = (b * c + ch) * inner;
            data.extend_from_slice(&x.data[from..from + inner]);
        }
    }
    Tensor::new(&shape, data)
}

fn channel_shuffle(x: &Tensor, groups: usize) -> Tensor {
    // view [n, g, c/g, ...] -> transpose(1, 2) -> flatten: output channel k*g + gi is input
    // channel gi*(c/g) + k.
    let (n, c) = (x.shape[0], x.shape[1]);
    let per_group = c / groups;
    let inner = x.numel() / (n * c);
    let mut y = Tensor::zeros(&x.shape);
    for b in 0..n {
        for gi in 0..groups {
            for k in 0..per_group {
                let src = (b * c + gi * per_group + k) * inner;
                let dst = (b * c + k * groups + gi) * inner;
                y.data[dst..dst + inner].copy_from_slice(&x.data[src..src + inner]);
            }
        }
    }
    y
}

/// The output shape of pool `p` on an input of `shape` (NCHW).
fn pool_output(p: &Pool, shape: &[usize]) -> [usize; 4] {
    let [n, c, h, w] = shape[..] else { unreachable!("pool input is NCHW") };
    [
        n,
        c,
        (h + 2 * p.padding[0] - p.kernel[0]) / p.stride[0] + 1,
        (w + 2 * p.padding[1] - p.kernel[1]) / p.stride[1] + 1,
    ]
}

/// Calls `window(y_index, x_indices)` for every output of pool `p` on an input of `shape`,
/// with the input elements its window covers (padding left out), in scan order.
pub(crate) fn pool_windows(p: &Pool, shape: &[usize], mut window: impl FnMut(usize, &[usize])) {
    let [n, c, h, w] = shape[..] else { unreachable!("pool input is NCHW") };
    let [_, _, oh, ow] = pool_output(p, shape);
    let mut taps = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for nc in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                taps.clear();
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        let iy = (oy * p.stride[0] + ky) as isize - p.padding[0] as isize;
                        let ix = (ox * p.stride[1] + kx) as isize - p.padding[1] as isize;
                        if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                            taps.push((nc * h + iy as usize) * w + ix as usize);
                        }
                    }
                }
                window((nc * oh + oy) * ow + ox, &taps);
            }
        }
    }
}

fn pool(p: &Pool, x: &Tensor, max: bool) -> Tensor {
    // Padding is -inf for max pooling and 0 (counted) for average pooling.
    let area = (p.kernel[0] * p.kernel[1]) as f64;
    let mut y = Tensor::zeros(&pool_output(p, &x.shape));
    pool_windows(p, &x.shape, |yi, taps| {
        let values = taps.iter().map(|&i| x.data[i]);
        y.data[yi] = if max {
            values.fold(f32::NEG_INFINITY, f32::max)
        } else {
            (values.map(f64::from).sum::<f64>() / area) as f32
        };
    });
    y
}

fn global_avg_pool(x: &Tensor) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner = x.numel() / (n * c);
    let data =
        x.data.chunks(inner).map(|ch| (ch.iter().map(|&v| f64::from(v)).sum::<f64>() / inner as f64) as f32);
    Tensor::new(&[n, c, 1, 1], data.collect())
}

fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let n = x.shape[0];
    let (out, inp) = (w.shape[0], w.shape[1]);
    let mut y = Tensor::zeros(&[n, out]);
    for b_ in 0..n {
        for o in 0..out {
            let mut acc = b.map_or(0.0, |b| f64::from(b.data[o]));
            for i in 0..inp {
                acc += f64::from(x.data[b_ * inp + i]) * f64::from(w.data[o * inp + i]);
            }
            y.data[b_ * out + o] = acc as f32;
        }
    }
    y
}

fn softmax(x: &Tensor) -> Tensor {
    let features = x.shape[1];
    let mut y = x.clone();
    for row in y.data.chunks_mut(features) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        for (v, e) in row.iter_mut().zip(exps) {
            *v = (e / total) as f32;
        }
    }
    y
}

fn transpose(x: &Tensor, perm: &[usize]) -> Tensor {
    let sources = transpose_sources(&x.shape, perm);
    let mut dims = vec![x.shape[0]];
    dims.extend(perm.iter().map(|&p| x.shape[p + 1]));
    Tensor::new(&dims, sources.iter().map(|&i| x.data[i]).collect())
}

/// For a transpose of the non-batch axes of a row-major tensor of `shape`, the flat input
/// index each output element reads, in output order. Code generation and the rewrite rules
/// use it too, so that a transpose means one thing everywhere.
pub fn transpose_sources(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    // Full permutation including the batch axis, which stays first.
    let full: Vec<usize> = std::iter::once(0).chain(perm.iter().map(|p| p + 1)).collect();
    let out_shape: Vec<usize> = full.iter().map(|&a| shape[a]).collect();
    let in_strides = strides(shape);
    let out_strides = strides(&out_shape);
    // Output coordinate along axis k is the input coordinate along axis full[k].
    (0..out_shape.iter().product())
        .map(|i| {
            (0..out_shape.len()).map(|k| (i / out_strides[k]) % out_shape[k] * in_strides[full[k]]).sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BuildOptions, Float, from_ron_str};

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape, data.to_vec())
    }

    fn conv_op(out: usize, k: usize, stride: usize, pad: usize, dilation: usize, groups: usize) -> Op {
        Op::Conv(Conv {
            out_channels: out,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad, pad],
            dilation: [dilation, dilation],
            groups,
            bias: true,
        })
    }

    #[test]
    fn conv_pads_with_zeros_and_adds_bias() {
        // 1 channel 3x3 input, 3x3 kernel of ones, padding 1: each output sums its neighbourhood.
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let w = Tensor::full(&[1, 1, 3, 3], 1.0);
        let b = t(&[1], &[0.5]);
        let y = &apply(&conv_op(1, 3, 1, 1, 1, 1), &[&x], &[&w, &b])[0];
        assert_eq!(y.data, vec![12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5]);
        // Stride 2 keeps the corners; dilation 2 with padding 2 reads every other pixel.
        let y = &apply(&conv_op(1, 3, 2, 1, 1, 1), &[&x], &[&w, &b])[0];
        assert_eq!(y.data, vec![12.5, 16.5, 24.5, 28.5]);
        let y = &apply(&conv_op(1, 3, 1, 2, 2, 1), &[&x], &[&w, &b])[0];
        assert_eq!(y.shape, vec![1, 1, 3, 3]);
        assert_eq!(y.data[0], 1. + 3. + 7. + 9. + 0.5);
        assert_eq!(y.data[4], 5. + 0.5);
    }

    #[test]
    fn grouped_conv_keeps_groups_apart() {
        // Two groups of one channel each: output c reads only input c.
        let x = t(&[1, 2, 1, 1], &[3., 5.]);
        let w = t(&[2, 1, 1, 1], &[10., 100.]);
        let b = t(&[2], &[0., 0.]);
        let y = &apply(&conv_op(2, 1, 1, 0, 1, 2), &[&x], &[&w, &b])[0];
        assert_eq!(y.data, vec![30., 500.]);
    }

    #[test]
    fn batch_norm_normalizes_per_channel() {
        let x = t(&[1, 2, 1, 2], &[1., 3., 10., 20.]);
        let (g, b, m, v) = (t(&[2], &[2., 1.]), t(&[2], &[0., 1.]), t(&[2], &[1., 10.]), t(&[2], &[4., 1.]));
        let y = &apply(&Op::BatchNorm { eps: Float(0.0) }, &[&x], &[&g, &b, &m, &v])[0];
        assert_eq!(y.data, vec![0., 2., 1., 11.]);
    }

    #[test]
    fn pools_follow_pytorch_padding_rules() {
        let x = t(&[1, 1, 2, 2], &[1., -2., -3., -4.]);
        let p = Pool { kernel: [3, 3], stride: [2, 2], padding: [1, 1] };
        // Max ignores padding (the window holds only negatives but 1); average counts it.
        assert_eq!(apply(&Op::MaxPool(p.clone()), &[&x], &[])[0].data, vec![1.]);
        assert_eq!(apply(&Op::AvgPool(p), &[&x], &[])[0].data, vec![-8. / 9.]);
        assert_eq!(apply(&Op::GlobalAvgPool, &[&x], &[])[0].data, vec![-2.]);
    }

    #[test]
    fn shuffle_split_concat_move_channels() {
        let x = t(&[1, 6, 1, 1], &[0., 1., 2., 3., 4., 5.]);
        let y = &apply(&Op::ChannelShuffle { groups: 2 }, &[&x], &[])[0];
        assert_eq!(y.data, vec![0., 3., 1., 4., 2., 5.]);
        let g = &apply(&Op::Gather { channels: vec![5, 0, 0] }, &[&x], &[])[0];
        assert_eq!(g.data, vec![5., 0., 0.]);
        let parts = apply(&Op::Split { sizes: vec![2, 4] }, &[&x], &[]);
        assert_eq!(parts[1].data, vec![2., 3., 4., 5.]);
        assert_eq!(apply(&Op::Concat, &[&parts[0], &parts[1]], &[])[0], x);
    }

    #[test]
    fn channel_shuffle_equals_pytorch_reshape_transpose() {
        let text = |body: &str| {
            format!("Network(name: \"s\", input: Image(channels: 12, height: 2, width: 3), body: [{body}])")
        };
        let opts = BuildOptions { batch: 2, overrides: vec![] };
        let a = from_ron_str(&text("ChannelShuffle(groups: 3)"), "a", &opts).unwrap();
        let b = from_ron_str(
            &text("Reshape(shape: [3, 4, 2, 3]), Transpose(perm: [1, 0, 2, 3]), Reshape(shape: [12, 2, 3])"),
            "b",
            &opts,
        )
        .unwrap();
        let x = Tensor::new(&[2, 12, 2, 3], (0..144).map(|i| i as f32).collect());
        let w = Weights::default();
        assert_eq!(eval(&a, &w, std::slice::from_ref(&x)).unwrap(), eval(&b, &w, &[x]).unwrap());
    }

    #[test]
    fn elementwise_ops() {
        let x = t(&[1, 4], &[-4., -1., 1., 7.]);
        assert_eq!(apply(&Op::Relu, &[&x], &[])[0].data, vec![0., 0., 1., 7.]);
        assert_eq!(apply(&Op::Relu6, &[&x], &[])[0].data, vec![0., 0., 1., 6.]);
        assert_eq!(apply(&Op::Hardswish, &[&x], &[])[0].data, vec![0., -1. / 3., 4. / 6., 7.]);
        let s = &apply(&Op::Sigmoid, &[&x], &[])[0];
        assert!((s.data[2] - 0.731_058_6).abs() < 1e-6);
        let sm = &apply(&Op::Softmax, &[&x], &[])[0];
        assert!((sm.data.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(sm.data[3] > 0.99);
        let scale = t(&[1, 2, 1, 1], &[2., 10.]);
        let y = t(&[1, 2, 1, 2], &[1., 2., 3., 4.]);
        assert_eq!(apply(&Op::Mul, &[&y, &scale], &[])[0].data, vec![2., 4., 30., 40.]);
    }

    #[test]
    fn linear_flattens_its_input() {
        let x = t(&[1, 2, 1, 1], &[1., 2.]);
        let w = t(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
        let b = t(&[3], &[0., 0., 0.5]);
        let y = &apply(&Op::Linear { out_features: 3, bias: true }, &[&x], &[&w, &b])[0];
        assert_eq!(y.shape, vec![1, 3]);
        assert_eq!(y.data, vec![1., 2., 3.5]);
    }

    #[test]
    fn wrong_inputs_are_errors() {
        let g = from_ron_str(
            "Network(name: \"n\", input: Image(channels: 1, height: 2, width: 2), body: [Relu])",
            "n",
            &BuildOptions::default(),
        )
        .unwrap();
        let w = Weights::default();
        let err = eval(&g, &w, &[Tensor::zeros(&[1, 1, 2, 3])]).unwrap_err();
        assert_eq!(err.to_string(), "input `input` must have shape [1, 1, 2, 2], got [1, 1, 2, 3]");
        assert_eq!(eval(&g, &w, &[]).unwrap_err().to_string(), "the network takes 1 input(s), got 0");
    }
}
