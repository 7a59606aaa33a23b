//! The autodiff pass against finite differences: for small networks covering every op, the
//! gradients the training graph computes (through `ir::eval`) match central differences of
//! its loss; SGD and the running statistics follow PyTorch's formulas; every zoo network
//! differentiates into a verified graph.

use ir::testing::{random_input, random_weights};
use ir::{BuildOptions, Graph, Tensor, Weights};
use passes::autodiff::{SgdOptions, TrainOptions, Training, training_graph};

const BATCH: usize = 3;
const CLASSES: usize = 5;

/// A network of `body` (RON statements) over `[BATCH, channels, side, side]`, ending in logits.
fn network(channels: usize, side: usize, body: &str) -> Graph {
    let text = format!(
        "Network(name: \"t\", input: Image(channels: {channels}, height: {side}, width: {side}), \
         body: [{body}, Flatten, Linear(name: \"head\", out: {CLASSES})])"
    );
    let graph = ir::from_ron_str(&text, "t.ron", &BuildOptions { batch: BATCH, overrides: Vec::new() })
        .unwrap_or_else(|e| panic!("{e}"));
    ir::verify(&graph).unwrap();
    graph
}

fn gradients_only() -> TrainOptions {
    TrainOptions { label_smoothing: 0.1, optimizer: None, input_gradient: true, ..TrainOptions::default() }
}

fn labels() -> Tensor {
    Tensor::new(&[BATCH, 1], (0..BATCH).map(|i| (i * 2 % CLASSES) as f32).collect())
}

/// The training weights: the network's, with batch norm running statistics away from the batch's.
fn weights_for(forward: &Graph, seed: u64) -> Weights {
    random_weights(forward, seed)
}

/// The batch's mean loss.
fn mean_loss(t: &Training, weights: &Weights, x: &Tensor) -> f64 {
    let out = ir::eval::eval(&t.graph, weights, &[x.clone(), labels()]).unwrap();
    out[t.loss].data.iter().map(|&v| f64::from(v)).sum::<f64>() / BATCH as f64
}

/// Compares `analytic` with central differences of the loss along a few coordinates of the
/// tensor `perturb` replaces; returns the worst error relative to the tensor's largest gradient.
fn check(t: &Training, analytic: &Tensor, perturb: &dyn Fn(usize, f32) -> (Weights, Tensor)) -> f64 {
    let scale = analytic.data.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    let n = analytic.numel();
    let picks: Vec<usize> = (0..6).map(|k| (k * 7919 + 13) % n).collect();
    let eps = 1e-3f32;
    let mut worst = 0.0f64;
    for i in picks {
        let (w_plus, x_plus) = perturb(i, eps);
        let (w_minus, x_minus) = perturb(i, -eps);
        let fd = (mean_loss(t, &w_plus, &x_plus) - mean_loss(t, &w_minus, &x_minus)) / (2.0 * f64::from(eps));
        worst = worst.max((fd - f64::from(analytic.data[i])).abs() / f64::from(scale));
    }
    worst
}

/// Checks every parameter gradient and the input gradient of `forward`.
fn gradient_check(forward: &Graph) {
    let t = training_graph(forward, &gradients_only()).unwrap_or_else(|e| panic!("{e}"));
    ir::verify(&t.graph).unwrap_or_else(|e| panic!("{e}"));
    let weights = weights_for(forward, 3);
    weights.check(&t.graph).unwrap();
    let shape = forward.node(forward.inputs()[0]).outputs[0].dims().to_vec();
    let x = random_input(&shape, 5);
    let out = ir::eval::eval(&t.graph, &weights, &[x.clone(), labels()]).unwrap();
    assert!(!t.gradients.is_empty());
    for (name, index) in &t.gradients {
        let perturb = |i: usize, d: f32| {
            let mut w = weights.clone();
            let mut p = w.get(name).unwrap().clone();
            p.data[i] += d;
            w.insert(name.clone(), p);
            (w, x.clone())
        };
        let err = check(&t, &out[*index], &perturb);
        assert!(
            err < 1e-2,
            "{}: gradient of {name} is off by {err:.2e} of its largest value",
            forward.node(forward.outputs()[0].node).name
        );
    }
    let perturb = |i: usize, d: f32| {
        let mut x = x.clone();
        x.data[i] += d;
        (weights.clone(), x)
    };
    let err = check(&t, &out[t.input_gradient.unwrap()], &perturb);
    assert!(err < 1e-2, "input gradient is off by {err:.2e} of its largest value");
}

#[test]
fn convolutions() {
    gradient_check(&network(3, 6, "Conv(out: 4, kernel: 3, stride: 2, padding: 1, bias: true)"));
    gradient_check(&network(4, 5, "Conv(out: 4, kernel: 3, groups: 4, dilation: 2, padding: 2)"));
    gradient_check(&network(4, 4, "Conv(out: 6, kernel: 1, groups: 2)"));
}

#[test]
fn batch_norm_in_training_mode() {
    gradient_check(&network(2, 4, "Conv(out: 3, kernel: 3, padding: 1, bn: true)"));
}

#[test]
fn activations() {
    for act in ["Relu", "Relu6", "Hardswish", "Sigmoid"] {
        gradient_check(&network(2, 4, &format!("Conv(out: 3, kernel: 1, bias: true), {act}")));
    }
}

#[test]
fn pools() {
    gradient_check(&network(2, 7, "MaxPool(kernel: 3, stride: 2, padding: 1)"));
    gradient_check(&network(2, 5, "AvgPool(kernel: 3, stride: 2, padding: 1)"));
    gradient_check(&network(2, 5, "Conv(out: 3, kernel: 1), GlobalAvgPool"));
}

#[test]
fn channel_plumbing() {
    gradient_check(&network(
        4,
        3,
        "Split(parts: 2, names: [\"a\", \"b\"]), \
         Sequence(name: \"branch\", from: \"b\", body: [Conv(out: 2, kernel: 3, padding: 1)]), \
         Concat([\"a\", \"branch\"]), ChannelShuffle(groups: 2)",
    ));
}

#[test]
fn reshapes_transposes_gathers_and_softmax() {
    gradient_check(&network(
        4,
        3,
        "Reshape(shape: [2, 2, 9]), Transpose(perm: [1, 0, 2]), Reshape(shape: [4, 3, 3])",
    ));
    gradient_check(&network(2, 3, "Flatten, Linear(out: 6), Softmax"));
    // Gathers come from the optimizer, not from network files: build one by hand.
    let mut forward = Graph::new("gather");
    let x = forward.add_input("input", ir::Shape::nchw(BATCH, 3, 2, 2).unwrap(), None);
    let g = forward.add(ir::Op::Gather { channels: vec![2, 0, 1] }, &[x], "gather", None).unwrap();
    let f = forward.add(ir::Op::Flatten, &g, "flatten", None).unwrap();
    let y = forward.add(ir::Op::Linear { out_features: CLASSES, bias: true }, &f, "head", None).unwrap();
    forward.set_outputs(y);
    gradient_check(&forward);
}

#[test]
fn residual_add_and_channel_scale() {
    gradient_check(&network(
        3,
        4,
        "Conv(name: \"stem\", out: 4, kernel: 1), \
         Sequence(name: \"se\", body: [GlobalAvgPool, Conv(out: 4, kernel: 1, bias: true), Sigmoid]), \
         Sequence(name: \"scaled\", body: [Mul([\"stem\", \"se\"])]), \
         Add([\"stem\", \"scaled\"])",
    ));
}

/// Two SGD steps (momentum, Nesterov, weight decay, label smoothing, batch norm in training
/// mode) on `fixtures/train_step/net.ron` match PyTorch's (`make.py` beside it): the losses,
/// every parameter, momentum buffer and running statistic.
#[test]
fn two_sgd_steps_match_pytorch() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train_step");
    let bytes = std::fs::read(dir.join("fixture.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensor = |name: &str| {
        let view = file.tensor(name).unwrap_or_else(|_| panic!("{name} missing from the fixture"));
        let data =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Tensor::new(view.shape(), data)
    };
    let forward =
        ir::from_ron_file(&dir.join("net.ron"), &BuildOptions { batch: 4, overrides: Vec::new() }).unwrap();
    let options = TrainOptions {
        label_smoothing: 0.1,
        bn_momentum: 0.1,
        optimizer: Some(SgdOptions { momentum: 0.9, nesterov: true, weight_decay: 1e-3 }),
        input_gradient: false,
    };
    let t = training_graph(&forward, &options).unwrap();
    let mut network = Weights::default();
    for (name, _, _) in ir::weights::expected_params(&forward) {
        network.insert(name.clone(), tensor(&format!("before/{name}")));
    }
    let mut state = t.initial_state(&network);
    state.check(&t.graph).unwrap();
    let (x, labels, lrs, losses) = (tensor("input"), tensor("labels"), tensor("lr"), tensor("loss"));
    for (lr, expected) in lrs.data.iter().zip(&losses.data) {
        let lr = Tensor::new(&[1, 1], vec![*lr]);
        let out = ir::eval::eval(&t.graph, &state, &[x.clone(), labels.clone(), lr]).unwrap();
        let loss = out[t.loss].data.iter().sum::<f32>() / 4.0;
        assert!((loss - expected).abs() < 1e-5 * expected.abs(), "loss {loss}, PyTorch {expected}");
        t.apply_state(&out, &mut state);
    }
    assert_eq!(t.state.len(), 3 * 2 + 13 * 2, "running statistics of 3 batch norms, 13 parameters");
    for (name, _) in &t.state {
        let expected = tensor(&format!("after/{name}"));
        let got = state.get(name).unwrap();
        // Relative to the tensor's largest value, floored: branch.1's bias has a zero gradient
        // (branch.3's batch norm removes any shift it makes), so both sides hold rounding noise.
        let scale = expected.data.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let diff = got.data.iter().zip(&expected.data).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-4 * scale, "{name} is off by {diff:.1e} (largest value {scale:.1e})");
    }
}

/// Every zoo network with logits differentiates into a verified graph whose weights are the
/// network's plus momentum buffers; the guideline blocks (no logits) are refused in words.
#[test]
fn every_zoo_network_differentiates() {
    for path in ir::testing::zoo_networks() {
        let forward = ir::testing::small_zoo_network(&path, 2);
        let result = training_graph(&forward, &TrainOptions::default());
        if forward.shape(forward.outputs()[0]).rank() != 2 {
            let err = result.expect_err("a network without logits cannot be trained").to_string();
            assert!(err.contains("logits"), "{}: {err}", path.display());
            continue;
        }
        let t = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ir::verify(&t.graph).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let state = t.initial_state(&Weights::seeded(&forward, 0));
        state.check(&t.graph).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let trainable = ir::weights::expected_params(&forward).iter().filter(|(_, _, s)| s.trainable).count();
        let running = ir::weights::expected_params(&forward).len() - trainable;
        assert_eq!(t.state.len(), 2 * trainable + running, "{}", path.display());
    }
}

/// A few steps of SGD on one MNIST-sized batch through `ir::eval` lower the loss.
#[test]
fn sgd_steps_lower_the_loss_of_a_zoo_network() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo/mnist/shufflenet_v2_x0_5.ron");
    let forward = ir::from_ron_file(&path, &BuildOptions { batch: 4, overrides: Vec::new() }).unwrap();
    let t = training_graph(&forward, &TrainOptions::default()).unwrap();
    let mut state = t.initial_state(&Weights::seeded(&forward, 1));
    let x = random_input(&[4, 1, 28, 28], 2);
    let labels = Tensor::new(&[4, 1], vec![3.0, 1.0, 4.0, 1.0]);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let lr = Tensor::new(&[1, 1], vec![0.01]);
        let out = ir::eval::eval(&t.graph, &state, &[x.clone(), labels.clone(), lr]).unwrap();
        losses.push(out[t.loss].data.iter().sum::<f32>() / 4.0);
        t.apply_state(&out, &mut state);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[2] < losses[0] * 0.9, "the loss did not fall: {losses:?}");
}

/// Without `input_gradient`, nothing computes a gradient for the input: the first layer's
/// input gradient and what would feed it are left out.
#[test]
fn no_work_towards_the_input() {
    let forward = network(2, 4, "Relu, Conv(out: 3, kernel: 3, padding: 1)");
    let t = training_graph(&forward, &TrainOptions::default()).unwrap();
    let ops: Vec<String> = t.graph.node_ids().map(|id| t.graph.node(id).op.name().to_string()).collect();
    assert!(!ops.iter().any(|o| o == "conv_grad_input" || o == "activation_grad"), "{ops:?}");
    assert!(ops.iter().any(|o| o == "conv_grad_weight"), "{ops:?}");
}
