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
        for level in [Level::O0, Level::O2] {
            let opt = passes::optimize(&graph, &weights, level, None);
            let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0).unwrap();
            let out = ir::Tensor::new(&expected[0].shape, model.run(&input.data));
            let err = out.relative_error(&expected[0]);
            prop_assert!(err < 1e-4, "{level:?}: relative error {err}\n{}", ir::print::to_text(&opt.graph));
        }
    }
}
