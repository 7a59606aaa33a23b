//! Compiled training steps against `ir::eval` of the same training graph: after a few steps
//! with momentum, the losses, the correct counts and every tensor of the state (parameters,
//! momentum buffers, running statistics) agree, for networks covering every training op.

use codegen::CompiledTraining;
use ir::testing::{random_input, random_weights};
use ir::{BuildOptions, Graph, Tensor};
use passes::autodiff::{SgdOptions, TrainOptions, training_graph};

/// `(name, input [c, h, w], body)`; each network ends in `Flatten, Linear(out: 5)`.
const CASES: &[(&str, [usize; 3], &str)] = &[
    (
        "stem_pool_dense",
        [3, 9, 9],
        "Conv(out: 6, kernel: 3, stride: 2, padding: 1, bias: true, bn: true, act: Relu), \
         MaxPool(kernel: 3, stride: 2, padding: 1)",
    ),
    (
        "depthwise_strided",
        [5, 7, 7],
        "Conv(out: 5, kernel: 3, stride: 2, padding: 1, groups: 5, bn: true), \
         Conv(out: 7, kernel: 1, bn: true, act: Relu6)",
    ),
    (
        "shuffle_unit",
        [6, 5, 5],
        r#"Split(parts: 2, names: ["keep", "x"]),
           Sequence(name: "b", from: "x", body: [
               Conv(out: 3, kernel: 1, bn: true, act: Relu),
               Conv(out: 3, kernel: 3, padding: 1, groups: 3, bn: true),
               Conv(out: 3, kernel: 1, bn: true, act: Hardswish)]),
           Sequence(name: "u", body: [Concat(["keep", "b"]), ChannelShuffle(groups: 2)]),
           AvgPool(kernel: 2, stride: 2)"#,
    ),
    (
        "squeeze_excite_residual",
        [4, 6, 6],
        r#"Conv(name: "stem", out: 4, kernel: 3, padding: 1, dilation: 1),
           Sequence(name: "se", body: [GlobalAvgPool, Conv(out: 4, kernel: 1, bias: true, act: Sigmoid)]),
           Sequence(name: "scaled", body: [Mul(["stem", "se"])]),
           Add(["stem", "scaled"]), GlobalAvgPool"#,
    ),
    (
        "grouped_pointwise",
        [6, 3, 5],
        "Conv(out: 9, kernel: 1, groups: 3, bias: true), Relu, Conv(out: 4, kernel: 1)",
    ),
    ("dilated_grouped", [4, 8, 8], "Conv(out: 6, kernel: 3, padding: 2, dilation: 2, groups: 2, bias: true)"),
];

const BATCH: usize = 3;

fn network(channels: usize, side: [usize; 2], body: &str) -> Graph {
    let text = format!(
        "Network(name: \"t\", input: Image(channels: {channels}, height: {}, width: {}), \
         body: [{body}, Flatten, Linear(name: \"head\", out: 5)])",
        side[0], side[1]
    );
    let graph = ir::from_ron_str(&text, "t.ron", &BuildOptions { batch: BATCH, overrides: Vec::new() })
        .unwrap_or_else(|e| panic!("{e}"));
    ir::verify(&graph).unwrap();
    graph
}

/// How closely the compiled state must follow the interpreter's.
#[derive(Clone, Copy)]
enum Tolerance {
    /// Every tensor within 1e-4 of its largest value (a floor of 1e-2 for tensors whose true
    /// value is zero, such as the bias of a conv before a batch norm: both sides hold noise).
    PerTensor,
    /// All tensors together within 1e-2 in the 2-norm. Deep networks need it: a ReLU input
    /// within rounding of zero takes the other side of the kink in one of the two, and its whole
    /// gradient moves to or from the weights upstream.
    Overall,
}

/// Runs `steps` steps compiled and interpreted from the same state; compares as it goes.
fn compare(name: &str, forward: &Graph, steps: usize, threads: usize, tolerance: Tolerance) {
    let options = TrainOptions {
        label_smoothing: 0.1,
        bn_momentum: 0.1,
        optimizer: Some(SgdOptions { momentum: 0.9, nesterov: true, weight_decay: 1e-3 }),
        input_gradient: false,
    };
    let t = training_graph(forward, &options).unwrap();
    let mut state = t.initial_state(&random_weights(forward, 4));
    let mut compiled = CompiledTraining::compile(&t, &state, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
    compiled.set_threads(threads);
    let shape = forward.node(forward.inputs()[0]).outputs[0].dims().to_vec();
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| (i * 3 + 1) % 5).collect();
    let label_tensor = Tensor::new(&[BATCH, 1], labels.iter().map(|&l| l as f32).collect());
    for step in 0..steps {
        let x = random_input(&shape, step as u64);
        let lr = 0.05 / (step + 1) as f32;
        let out = ir::eval::eval(
            &t.graph,
            &state,
            &[x.clone(), label_tensor.clone(), Tensor::new(&[1, 1], vec![lr])],
        )
        .unwrap();
        let expected_loss = out[t.loss].data.iter().sum::<f32>() / BATCH as f32;
        t.apply_state(&out, &mut state);
        let result = compiled.step(&x.data, &labels, lr);
        assert!(
            (result.loss - expected_loss).abs() <= 1e-4 * expected_loss.abs(),
            "{name} step {step}: loss {} against {expected_loss}",
            result.loss
        );
        let got = compiled.state();
        let (mut error, mut norm) = (0.0f64, 0.0f64);
        for (tensor, _) in &t.state {
            let (a, b) = (got.get(tensor).unwrap(), state.get(tensor).unwrap());
            let scale = b.data.iter().fold(1e-2f32, |m, v| m.max(v.abs()));
            let diff = a.data.iter().zip(&b.data).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            if let Tolerance::PerTensor = tolerance {
                assert!(
                    diff <= 1e-4 * scale,
                    "{name} step {step}: {tensor} off by {diff:.1e} (largest {scale:.1e})"
                );
            }
            error += a.data.iter().zip(&b.data).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>();
            norm += b.data.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>();
        }
        let relative = (error / norm).sqrt();
        assert!(relative < 1e-2, "{name} step {step}: the state is off by {relative:.1e} in the 2-norm");
    }
}

#[test]
fn compiled_steps_match_the_interpreter() {
    for &(name, [c, h, w], body) in CASES {
        compare(name, &network(c, [h, w], body), 2, 1, Tolerance::PerTensor);
    }
}

#[test]
fn compiled_steps_match_on_three_threads() {
    for &(name, [c, h, w], body) in CASES {
        compare(name, &network(c, [h, w], body), 2, 3, Tolerance::PerTensor);
    }
}

#[test]
fn mnist_shufflenet_step_matches_the_interpreter() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo/mnist/shufflenet_v2_x0_5.ron");
    let forward = ir::from_ron_file(&path, &BuildOptions { batch: BATCH, overrides: Vec::new() }).unwrap();
    compare("mnist_shufflenet_v2_x0_5", &forward, 1, 2, Tolerance::Overall);
}

/// A probe returns the interpreter's gradients (of the parameters and of the input) and leaves
/// the state as it was, momentum buffers and running statistics included.
#[test]
fn probe_measures_gradients_and_changes_nothing() {
    let options = TrainOptions { input_gradient: true, ..TrainOptions::default() };
    for &(name, [c, h, w], body) in CASES {
        let forward = network(c, [h, w], body);
        let t = training_graph(&forward, &options).unwrap();
        let state = t.initial_state(&random_weights(&forward, 7));
        let mut compiled = CompiledTraining::compile(&t, &state, 0).unwrap();
        let shape = forward.node(forward.inputs()[0]).outputs[0].dims().to_vec();
        let x = random_input(&shape, 11);
        let labels: Vec<u32> = (0..BATCH as u32).map(|i| (i + 2) % 5).collect();
        let label_tensor = Tensor::new(&[BATCH, 1], labels.iter().map(|&l| l as f32).collect());
        let out =
            ir::eval::eval(&t.graph, &state, &[x.clone(), label_tensor, Tensor::new(&[1, 1], vec![0.0])])
                .unwrap();
        let before = compiled.state();
        let probe = compiled.probe(&x.data, &labels);
        assert_eq!(compiled.state(), before, "{name}: a probe changed the state");
        assert_eq!(probe.gradients.iter().count(), t.gradients.len(), "{name}");
        let close = |what: &str, got: &[f32], want: &[f32]| {
            let scale = want.iter().fold(1e-2f32, |m, v| m.max(v.abs()));
            let diff = got.iter().zip(want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-4 * scale, "{name}: {what} off by {diff:.1e} (largest {scale:.1e})");
        };
        for (param, index) in &t.gradients {
            close(param, &probe.gradients.get(param).unwrap().data, &out[*index].data);
        }
        let input = probe.input_gradient.expect("asked for");
        close("input gradient", &input, &out[t.input_gradient.unwrap()].data);
    }
}
