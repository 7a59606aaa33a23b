//! Random CNN graphs (`ir::testing`) compiled to native code, at `-O0` and `-O2`, against
//! `ir::eval`: odd channel counts, strides, paddings, groups and channel views.

use ir::testing::{graphs, random_input, random_weights};
use passes::Level;
use proptest::prelude::*;

proptest! {
    // Each case compiles twice through LLVM (at its level 0, to keep the suite fast).
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn compiled_random_graphs_match_eval(graph in graphs(), seed in 0u64..1000) {
        prop_assume!(graph.outputs().len() == 1, "code generation takes one output");
        let weights = random_weights(&graph, seed);
        let shape = graph.node(graph.inputs()[0]).outputs[0].dims().to_vec();
        let input = random_input(&shape, seed);
        let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
        // The host's kernels at -O0 and -O2 on 1 and 2 threads, and the AVX2 kernels (another
        // vector width and register tile) where this machine runs them.
        let avx2 = codegen::Target::named("x86_64-linux-gnu").unwrap();
        let targets = [Some(codegen::Target::host()), avx2.runs_here().then_some(avx2)];
        for (level, target, threads) in [(Level::O0, &targets[0], 1), (Level::O2, &targets[0], 2), (Level::O2, &targets[1], 1)] {
            let Some(target) = target else { continue };
            let opt = passes::optimize(&graph, &weights, level, None);
            let mut model = codegen::CompiledModel::compile_for(target, &opt.graph, &opt.weights, &opt.plan, 0).unwrap();
            model.set_threads(threads);
            let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
            let err = out.relative_error(&expected[0]);
            prop_assert!(
                err < 1e-4,
                "{level:?} for {} on {threads} threads: relative error {err}\n{}",
                target.cpu,
                ir::print::to_text(&opt.graph)
            );
        }
    }
}

/// Found by the property test: a split of a reshape that regrouped a transpose's channels read
/// planes of the transpose's size; the memory plan made that reshape a view of a buffer with
/// other channels.
#[test]
fn split_after_a_channel_regrouping_reshape() {
    let text = r#"Network(name: "r", input: Image(channels: 2, height: 4, width: 1), body: [
        Reshape(shape: [1, 2, 4, 1]), Transpose(perm: [2, 1, 0, 3]), Reshape(shape: [2, 4, 1]),
        Split(parts: 2, names: ["a", "b"]), Sequence(name: "bn", from: "a", body: [BatchNorm()]),
        Concat(["bn", "b"]), Linear(out: 9, bias: false)])"#;
    let graph = ir::from_ron_str(text, "r.ron", &ir::BuildOptions::default()).unwrap();
    let weights = random_weights(&graph, 1);
    let input = random_input(&[1, 2, 4, 1], 1);
    let expected = ir::eval::eval(&graph, &weights, std::slice::from_ref(&input)).unwrap();
    for level in [Level::O0, Level::O2] {
        let opt = passes::optimize(&graph, &weights, level, None);
        let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0).unwrap();
        let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
        assert!(out.relative_error(&expected[0]) < 1e-4, "{level:?}");
    }
}

/// Found by the property test (2 threads, -O2): a channel gather of a sigmoid added to that
/// sigmoid, after a squeeze-excite scale.
#[test]
fn gather_added_to_its_source_after_a_channel_scale() {
    use ir::{Graph, Op, Shape};
    let mut g = Graph::new("g");
    let x = g.add_input("x", Shape::nchw(1, 2, 1, 2).unwrap(), None);
    let mut add = |op: Op, operands: &[ir::Value], name: &str| g.add(op, operands, name, None).unwrap()[0];
    let pool = add(Op::GlobalAvgPool, &[x], "pool");
    let gate = add(Op::Sigmoid, &[pool], "gate");
    let scaled = add(Op::Mul, &[x, gate], "scaled");
    let relu = add(Op::Relu, &[scaled], "relu");
    let sig = add(Op::Sigmoid, &[relu], "sig");
    let swapped = add(Op::Gather { channels: vec![1, 0] }, &[sig], "swapped");
    let sum = add(Op::Add, &[sig, swapped], "sum");
    let pool2 = add(Op::GlobalAvgPool, &[sum], "pool2");
    let fc = add(Op::Linear { out_features: 4, bias: true }, &[pool2], "fc");
    g.set_outputs(vec![fc]);
    for seed in 0..3 {
        let weights = random_weights(&g, seed);
        let input = random_input(&[1, 2, 1, 2], seed);
        let expected = ir::eval::eval(&g, &weights, std::slice::from_ref(&input)).unwrap();
        // Channel views (and so the hazard) exist at -O2 only.
        let opt = passes::optimize(&g, &weights, Level::O2, None);
        let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0).unwrap();
        for threads in [1, 2] {
            model.set_threads(threads);
            let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
            let err = out.relative_error(&expected[0]);
            assert!(err < 1e-4, "{threads} threads, seed {seed}: relative error {err}");
        }
    }
}
