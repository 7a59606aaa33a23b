//! Every zoo network through `-O1` and `-O2`: the same outputs as `-O0`, no batch norm left,
//! ShuffleNet V2's channel plumbing gone, and snapshots of the optimized IR.

use std::path::{Path, PathBuf};

use passes::Level;

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo")
}

/// Every network file under the zoo, sorted.
fn networks(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(networks(&path));
        } else if path.extension().is_some_and(|e| e == "ron") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The network at a small input size (the reference interpreter is slow), batch 2.
fn small(path: &Path) -> ir::Graph {
    let text = std::fs::read_to_string(path).unwrap();
    let resolution = if text.contains("\"resolution\": 56") { "8" } else { "32" };
    let overrides = if text.contains("\"resolution\"") {
        vec![("resolution".to_string(), resolution.to_string())]
    } else {
        vec![]
    };
    ir::from_ron_file(path, &ir::BuildOptions { batch: 2, overrides }).unwrap_or_else(|e| panic!("{e}"))
}

fn count(graph: &ir::Graph, op: &str) -> usize {
    graph.node_ids().filter(|&id| graph.node(id).op.name() == op).count()
}

#[test]
fn optimized_zoo_computes_the_same_outputs() {
    for path in networks(&zoo()) {
        let name = path.strip_prefix(zoo()).unwrap().display().to_string();
        let graph = small(&path);
        let weights = ir::Weights::seeded(&graph, 11);
        let shape = graph.node(graph.inputs()[0]).outputs[0].dims().to_vec();
        let n: usize = shape.iter().product();
        let x = ir::Tensor::new(&shape, (0..n).map(|i| ((i * 7919) % 251) as f32 / 125.0 - 1.0).collect());
        let reference = ir::eval::eval(&graph, &weights, std::slice::from_ref(&x)).unwrap();
        for level in [Level::O1, Level::O2] {
            let opt = passes::optimize(&graph, &weights, level, None);
            let out = ir::eval::eval(&opt.graph, &opt.weights, std::slice::from_ref(&x)).unwrap();
            let err = out[0].relative_error(&reference[0]);
            assert!(err < 1e-4, "{name} at {level:?}: relative error {err}");
            opt.plan.check().unwrap_or_else(|e| panic!("{name} at {level:?}: {e}"));
            assert_eq!(count(&opt.graph, "batch_norm"), 0, "{name} at {level:?} keeps a batch norm");
        }
    }
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
    insta::glob!("../../zoo", "**/*.ron", |path| {
        let graph = small(path);
        let weights = ir::Weights::seeded(&graph, 0);
        let opt = passes::optimize(&graph, &weights, Level::O2, None);
        insta::assert_snapshot!(ir::print::to_text(&opt.graph));
    });
}
