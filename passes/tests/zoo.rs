//! Every zoo network through `-O1` and `-O2`: the same outputs as `-O0`, no batch norm left,
//! ShuffleNet V2's channel plumbing gone, and snapshots of the optimized IR.

use std::path::{Path, PathBuf};

use ir::testing::{for_each_parallel, random_input, small_zoo_network, zoo_networks};
use passes::Level;

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo")
}

fn count(graph: &ir::Graph, op: &str) -> usize {
    graph.node_ids().filter(|&id| graph.node(id).op.name() == op).count()
}

#[test]
fn optimized_zoo_computes_the_same_outputs() {
    for_each_parallel(&zoo_networks(), |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let graph = small_zoo_network(path, 2);
        let weights = ir::Weights::seeded(&graph, 11);
        let x = random_input(graph.node(graph.inputs()[0]).outputs[0].dims(), 11);
        let reference = ir::eval::eval(&graph, &weights, std::slice::from_ref(&x)).unwrap();
        for level in [Level::O1, Level::O2] {
            let opt = passes::optimize(&graph, &weights, level, None);
            let out = ir::eval::eval(&opt.graph, &opt.weights, std::slice::from_ref(&x)).unwrap();
            let err = out[0].relative_error(&reference[0]);
            assert!(err < 1e-4, "{name} at {level:?}: relative error {err}");
            opt.plan.check().unwrap_or_else(|e| panic!("{name} at {level:?}: {e}"));
            assert_eq!(count(&opt.graph, "batch_norm"), 0, "{name} at {level:?} keeps a batch norm");
        }
    });
}

#[test]
fn shufflenet_v2_moves_no_bytes_at_o2() {
    for width in ["x0_5", "x1_0", "x1_5", "x2_0", "x2_0_se"] {
        let path = zoo().join(format!("shufflenet_v2_{width}.ron"));
        let graph = ir::from_ron_file(&path, &ir::BuildOptions::default()).unwrap();
        let weights = ir::Weights::seeded(&graph, 0);
        let before = passes::optimize(&graph, &weights, Level::O0, None);
        assert!(before.plan.moved_bytes > 0, "{width}: -O0 copies its channel plumbing");
        let opt = passes::optimize(&graph, &weights, Level::O2, None);
        for op in ["channel_shuffle", "split", "batch_norm", "transpose", "reshape"] {
            assert_eq!(count(&opt.graph, op), 0, "{width}: {op} left at -O2");
        }
        assert_eq!(opt.plan.moved_bytes, 0, "{width}");
        assert!(opt.plan.peak_bytes > 0);
    }
}

#[test]
fn o2_ir_of_every_zoo_network() {
    // The network folders; `spaces/` holds search spaces, which are not networks.
    insta::glob!("../../zoo", "{*.ron,mnist/*.ron,cifar/*.ron,guidelines/*.ron}", |path| {
        let graph = small_zoo_network(path, 2);
        let weights = ir::Weights::seeded(&graph, 0);
        let opt = passes::optimize(&graph, &weights, Level::O2, None);
        insta::assert_snapshot!(ir::print::to_text(&opt.graph));
    });
}
