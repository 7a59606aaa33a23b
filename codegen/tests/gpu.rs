//! The GPU kernels, run by the emulated grid on this CPU, against `ir::eval`: every zoo
//! network at `-O0` (unfused batch norms, copies) and `-O2` (fused epilogues, channel views),
//! and random graphs with odd shapes; and their PTX, which must hold one `.entry` per launch.

use ir::testing::{for_each_parallel, graphs, random_input, random_weights, small_zoo_network, zoo_networks};
use passes::Level;
use proptest::prelude::*;

/// Runs `graph` through the emulated grid at `level` and returns the relative error against
/// `ir::eval`.
fn emulated_error(graph: &ir::Graph, weights: &ir::Weights, level: Level, seed: u64) -> f32 {
    let input = random_input(graph.node(graph.inputs()[0]).outputs[0].dims(), seed);
    let reference = ir::eval::eval(graph, weights, std::slice::from_ref(&input)).unwrap();
    let opt = passes::optimize(graph, weights, level, None);
    let mut model = codegen::gpu::compile_emulated(&opt.graph, &opt.weights, &opt.plan, 0)
        .unwrap_or_else(|e| panic!("{}: {e}", graph.name()));
    model.set_threads(2);
    let out = ir::Tensor::new(&reference[0].shape, model.run(&input.data));
    out.relative_error(&reference[0])
}

#[test]
fn emulated_grid_matches_eval_on_the_zoo() {
    for_each_parallel(&zoo_networks(), |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let graph = small_zoo_network(path, 2);
        let weights = ir::Weights::seeded(&graph, 5);
        for level in [Level::O0, Level::O2] {
            let err = emulated_error(&graph, &weights, level, 5);
            assert!(err < 1e-4, "{name} at {level:?}: relative error {err}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn emulated_grid_matches_eval_on_random_graphs(graph in graphs(), seed in 0u64..1000) {
        prop_assume!(graph.outputs().len() == 1, "code generation takes one output");
        let weights = random_weights(&graph, seed);
        for level in [Level::O0, Level::O2] {
            let err = emulated_error(&graph, &weights, level, seed);
            prop_assert!(err < 1e-4, "{level:?}: relative error {err}\n{}", ir::print::to_text(&graph));
        }
    }
}

/// GEMM tiles with ragged edges on every axis: channels and pixels that are not multiples of
/// the tile, several reduction steps, groups, and a fused residual add and activation. The
/// 9x11 planes take 16x16 tiles, the 32x34 planes 32x32 and the 64x66 planes 64x64 (the
/// largest that still gives enough blocks).
#[test]
fn pointwise_gemm_tiles_with_ragged_edges() {
    let cases = [(1, 37, 70, 9), (2, 38, 134, 9), (1, 16, 64, 9), (1, 70, 134, 32), (1, 70, 134, 64)];
    for (groups, channels, out, side) in cases {
        let width = side + 2;
        let text = format!(
            r#"Network(name: "p", input: Image(channels: {channels}, height: {side}, width: {width}), body: [
                Alias(name: "x"), Conv(out: {channels}, kernel: 1, groups: {groups}, bn: false, act: None, name: "c"),
                Add(["x", "c"]), Relu, Conv(out: {out}, kernel: 1, groups: {groups}, bias: true, bn: false, act: Relu6)])"#
        );
        let graph = ir::from_ron_str(&text, "p.ron", &ir::BuildOptions { batch: 2, ..Default::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        let weights = ir::Weights::seeded(&graph, 7);
        for level in [Level::O0, Level::O2] {
            let err = emulated_error(&graph, &weights, level, 7);
            assert!(err < 1e-4, "groups {groups}, {channels} -> {out} on {side}x{width} at {level:?}: {err}");
        }
    }
}
