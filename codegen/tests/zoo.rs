//! Every zoo network compiled at `-O0` and `-O2` against `ir::eval`, on 1 and 2 threads.

use ir::testing::{for_each_parallel, random_input, small_zoo_network, zoo_networks};
use passes::Level;

#[test]
fn compiled_zoo_matches_eval() {
    for_each_parallel(&zoo_networks(), |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let graph = small_zoo_network(path, 2);
        let weights = ir::Weights::seeded(&graph, 3);
        let x = random_input(graph.node(graph.inputs()[0]).outputs[0].dims(), 3);
        let reference = ir::eval::eval(&graph, &weights, std::slice::from_ref(&x)).unwrap();
        for level in [Level::O0, Level::O2] {
            let opt = passes::optimize(&graph, &weights, level, None);
            let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0)
                .unwrap_or_else(|e| panic!("{name} at {level:?}: {e}"));
            for threads in [1, 2] {
                model.set_threads(threads);
                let out = ir::Tensor::new(&reference[0].shape, model.run(&x.data));
                let err = out.relative_error(&reference[0]);
                assert!(err < 1e-4, "{name} at {level:?}, {threads} threads: relative error {err}");
            }
        }
    });
}
