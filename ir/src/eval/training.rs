//! The reference meaning of the training ops: training-mode batch norm, the loss, every
//! gradient and the SGD step, as plain loops with f64 sums, like the rest of `eval`.

use super::{conv_taps, pool_windows, rounded, softmax};
use crate::{Activation, Sgd, Tensor, TrainOp};

/// Applies one training op to its operands `x` and parameters `p` (in the order of
/// [`TrainOp::params`]). Shapes are assumed valid (the graph was verified).
pub(super) fn apply(op: &TrainOp, x: &[&Tensor], p: &[&Tensor]) -> Vec<Tensor> {
    match op {
        TrainOp::BatchNormTrain { eps, momentum } => {
            batch_norm_train(x[0], [p[0], p[1], p[2], p[3]], eps.0, momentum.0)
        }
        TrainOp::BatchNormGrad => batch_norm_grad(x[0], x[1], x[2], x[3], p[0]),
        TrainOp::SoftmaxCrossEntropy { label_smoothing } => {
            vec![cross_entropy(x[0], x[1], label_smoothing.0)]
        }
        TrainOp::SoftmaxCrossEntropyGrad { label_smoothing } => {
            vec![cross_entropy_grad(x[0], x[1], label_smoothing.0)]
        }
        TrainOp::ConvGradInput { conv, input } => {
            let dy = x[0];
            let shape = [dy.shape[0], input[0], input[1], input[2]];
            let mut dx = vec![0.0f64; shape.iter().product()];
            conv_taps(conv, &shape, |xi, wi, yi| dx[xi] += f64::from(p[0].data[wi]) * f64::from(dy.data[yi]));
            vec![rounded(dx, &shape)]
        }
        TrainOp::ConvGradWeight(conv) => {
            let (input, dy) = (x[0], x[1]);
            let shape = conv.weight_shape(input.shape[1]);
            let mut dw = vec![0.0f64; shape.iter().product()];
            conv_taps(conv, &input.shape, |xi, wi, yi| {
                dw[wi] += f64::from(input.data[xi]) * f64::from(dy.data[yi]);
            });
            vec![rounded(dw, &shape)]
        }
        TrainOp::ChannelSum => {
            let (c, sums) = channel_sums(x[0], |i| f64::from(x[0].data[i]));
            vec![rounded(sums, &[c])]
        }
        TrainOp::ActivationGrad(a) => vec![activation_grad(*a, x[0], x[1])],
        TrainOp::MaxPoolGrad(pool) => {
            let (input, dy) = (x[0], x[1]);
            let mut dx = vec![0.0f64; input.numel()];
            pool_windows(pool, &input.shape, |yi, taps| {
                // The first maximum in scan order takes the gradient, as in PyTorch.
                let first_max =
                    taps.iter().copied().reduce(|a, b| if input.data[b] > input.data[a] { b } else { a });
                if let Some(i) = first_max {
                    dx[i] += f64::from(dy.data[yi]);
                }
            });
            vec![rounded(dx, &input.shape)]
        }
        TrainOp::AvgPoolGrad { pool, input } => {
            let dy = x[0];
            let shape = [dy.shape[0], dy.shape[1], input[0], input[1]];
            let area = (pool.kernel[0] * pool.kernel[1]) as f64;
            let mut dx = vec![0.0f64; shape.iter().product()];
            pool_windows(pool, &shape, |yi, taps| {
                for &i in taps {
                    dx[i] += f64::from(dy.data[yi]) / area;
                }
            });
            vec![rounded(dx, &shape)]
        }
        TrainOp::GlobalAvgPoolGrad { input: [h, w] } => {
            let dy = x[0];
            let area = (h * w) as f32;
            let data = dy.data.iter().flat_map(|&g| std::iter::repeat_n(g / area, h * w)).collect();
            vec![Tensor::new(&[dy.shape[0], dy.shape[1], *h, *w], data)]
        }
        TrainOp::LinearGradInput { in_features } => {
            let (dy, w) = (x[0], p[0]);
            let (n, out) = (dy.shape[0], dy.shape[1]);
            let dx = (0..n * in_features).map(|k| {
                let (b, i) = (k / in_features, k % in_features);
                (0..out)
                    .map(|o| f64::from(dy.data[b * out + o]) * f64::from(w.data[o * in_features + i]))
                    .sum()
            });
            vec![rounded(dx.collect(), &[n, *in_features])]
        }
        TrainOp::LinearGradWeight => {
            let (input, dy) = (x[0], x[1]);
            let (n, out) = (dy.shape[0], dy.shape[1]);
            let inp = input.numel() / n;
            let dw = (0..out * inp).map(|k| {
                let (o, i) = (k / inp, k % inp);
                (0..n).map(|b| f64::from(dy.data[b * out + o]) * f64::from(input.data[b * inp + i])).sum()
            });
            vec![rounded(dw.collect(), &[out, inp])]
        }
        TrainOp::SpatialDot => {
            let (a, b) = (x[0], x[1]);
            let inner = a.shape[2] * a.shape[3];
            let sums = a
                .data
                .chunks(inner)
                .zip(b.data.chunks(inner))
                .map(|(ra, rb)| ra.iter().zip(rb).map(|(&u, &v)| f64::from(u) * f64::from(v)).sum());
            vec![rounded(sums.collect(), &[a.shape[0], a.shape[1], 1, 1])]
        }
        TrainOp::SoftmaxGrad => {
            let (y, dy) = (x[0], x[1]);
            let k = y.shape[1];
            let mut dx = Vec::with_capacity(y.numel());
            for (ry, rd) in y.data.chunks(k).zip(dy.data.chunks(k)) {
                let dot: f64 = ry.iter().zip(rd).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                dx.extend(ry.iter().zip(rd).map(|(&a, &b)| (f64::from(a) * (f64::from(b) - dot)) as f32));
            }
            vec![Tensor::new(&y.shape, dx)]
        }
        TrainOp::SgdUpdate(sgd) => sgd_update(sgd, x[0], x[1].data[0], p[0], p[1]),
    }
}

/// Per-channel sums of `value(i)` over every element `i` of `x` (all axes but 1).
fn channel_sums(x: &Tensor, value: impl Fn(usize) -> f64) -> (usize, Vec<f64>) {
    let c = x.shape[1];
    let inner = x.numel() / (x.shape[0] * c);
    let mut sums = vec![0.0f64; c];
    for i in 0..x.numel() {
        sums[(i / inner) % c] += value(i);
    }
    (c, sums)
}

fn batch_norm_train(
    x: &Tensor,
    [gamma, beta, mean, var]: [&Tensor; 4],
    eps: f32,
    momentum: f32,
) -> Vec<Tensor> {
    let c = x.shape[1];
    let count = (x.numel() / c) as f64;
    let inner = x.numel() / (x.shape[0] * c);
    let (_, sums) = channel_sums(x, |i| f64::from(x.data[i]));
    let batch_mean: Vec<f64> = sums.iter().map(|s| s / count).collect();
    let (_, squares) = channel_sums(x, |i| (f64::from(x.data[i]) - batch_mean[(i / inner) % c]).powi(2));
    let batch_var: Vec<f64> = squares.iter().map(|s| s / count).collect();
    let inv_std: Vec<f64> = batch_var.iter().map(|v| 1.0 / (v + f64::from(eps)).sqrt()).collect();
    let y = (0..x.numel()).map(|i| {
        let ch = (i / inner) % c;
        ((f64::from(x.data[i]) - batch_mean[ch]) * inv_std[ch] * f64::from(gamma.data[ch])
            + f64::from(beta.data[ch])) as f32
    });
    let m = f64::from(momentum);
    // The running variance takes the unbiased batch variance, as PyTorch's does.
    let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
    let running = |old: &Tensor, batch: &dyn Fn(usize) -> f64| {
        let data = (0..c).map(|ch| ((1.0 - m) * f64::from(old.data[ch]) + m * batch(ch)) as f32);
        Tensor::new(&[c], data.collect())
    };
    vec![
        Tensor::new(&x.shape, y.collect()),
        rounded(batch_mean.clone(), &[c]),
        rounded(inv_std.clone(), &[c]),
        running(mean, &|ch| batch_mean[ch]),
        running(var, &|ch| batch_var[ch] * unbiased),
    ]
}

fn batch_norm_grad(x: &Tensor, dy: &Tensor, mean: &Tensor, inv_std: &Tensor, gamma: &Tensor) -> Vec<Tensor> {
    let c = x.shape[1];
    let count = (x.numel() / c) as f64;
    let inner = x.numel() / (x.shape[0] * c);
    let ch = |i: usize| (i / inner) % c;
    let x_hat =
        |i: usize| (f64::from(x.data[i]) - f64::from(mean.data[ch(i)])) * f64::from(inv_std.data[ch(i)]);
    let (_, d_beta) = channel_sums(x, |i| f64::from(dy.data[i]));
    let (_, d_gamma) = channel_sums(x, |i| f64::from(dy.data[i]) * x_hat(i));
    let dx = (0..x.numel()).map(|i| {
        let k = ch(i);
        let scale = f64::from(gamma.data[k]) * f64::from(inv_std.data[k]) / count;
        (scale * (count * f64::from(dy.data[i]) - d_beta[k] - x_hat(i) * d_gamma[k])) as f32
    });
    vec![Tensor::new(&x.shape, dx.collect()), rounded(d_gamma, &[c]), rounded(d_beta, &[c])]
}

/// The smoothed target distribution of one item: `1 - s + s / k` on its class, `s / k` elsewhere.
fn target(label: f32, k: usize, smoothing: f32) -> impl Fn(usize) -> f64 {
    let class = label as usize;
    assert!(label >= 0.0 && label.fract() == 0.0 && class < k, "label {label} is not a class of {k}");
    let (s, k) = (f64::from(smoothing), k as f64);
    move |j| if j == class { 1.0 - s + s / k } else { s / k }
}

fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f32) -> Tensor {
    let k = logits.shape[1];
    let losses = logits.data.chunks(k).zip(&labels.data).map(|(row, &label)| {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = f64::from(max) + row.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln();
        let q = target(label, k, smoothing);
        -row.iter().enumerate().map(|(j, &z)| q(j) * (f64::from(z) - lse)).sum::<f64>() as f32
    });
    Tensor::new(&labels.shape, losses.collect())
}

fn cross_entropy_grad(logits: &Tensor, labels: &Tensor, smoothing: f32) -> Tensor {
    let (n, k) = (logits.shape[0], logits.shape[1]);
    let probabilities = softmax(logits);
    let grads = probabilities.data.chunks(k).zip(&labels.data).flat_map(|(row, &label)| {
        let q = target(label, k, smoothing);
        row.iter().enumerate().map(move |(j, &p)| ((f64::from(p) - q(j)) / n as f64) as f32)
    });
    Tensor::new(&logits.shape, grads.collect())
}

fn activation_grad(a: Activation, x: &Tensor, dy: &Tensor) -> Tensor {
    // PyTorch's backward formulas, boundaries included.
    let derivative = |v: f32| -> f32 {
        match a {
            Activation::Relu => f32::from(v > 0.0),
            Activation::Relu6 => f32::from(v > 0.0 && v < 6.0),
            Activation::Hardswish if v < -3.0 => 0.0,
            Activation::Hardswish if v <= 3.0 => v / 3.0 + 0.5,
            Activation::Hardswish => 1.0,
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-v).exp());
                s * (1.0 - s)
            }
        }
    };
    Tensor::new(&x.shape, x.data.iter().zip(&dy.data).map(|(&v, &g)| g * derivative(v)).collect())
}

fn sgd_update(sgd: &Sgd, grad: &Tensor, lr: f32, param: &Tensor, buffer: &Tensor) -> Vec<Tensor> {
    // f32 arithmetic in PyTorch's order, so one step matches torch.optim.SGD closely.
    let (m, wd) = (sgd.momentum.0, sgd.weight_decay.0);
    let mut new_param = param.clone();
    let mut new_buffer = buffer.clone();
    for i in 0..grad.numel() {
        let g = grad.data[i] + wd * param.data[i];
        let b = m * buffer.data[i] + g;
        let step = if sgd.nesterov { g + m * b } else { b };
        new_buffer.data[i] = b;
        new_param.data[i] = param.data[i] - lr * step;
    }
    vec![new_param, new_buffer]
}
