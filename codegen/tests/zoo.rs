//! Every zoo network compiled at `-O0` and `-O2` against `ir::eval`.

use std::path::{Path, PathBuf};

use passes::Level;

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

#[test]
fn compiled_zoo_matches_eval() {
    let zoo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo");
    for path in networks(&zoo) {
        let name = path.strip_prefix(&zoo).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let resolution = if text.contains("\"resolution\": 56") { "8" } else { "32" };
        let overrides = if text.contains("\"resolution\"") {
            vec![("resolution".to_string(), resolution.to_string())]
        } else {
            vec![]
        };
        let graph = ir::from_ron_file(&path, &ir::BuildOptions { batch: 2, overrides }).unwrap();
        let weights = ir::Weights::seeded(&graph, 3);
        let shape = graph.node(graph.inputs()[0]).outputs[0].dims().to_vec();
        let n: usize = shape.iter().product();
        let x = ir::Tensor::new(&shape, (0..n).map(|i| ((i * 7919) % 251) as f32 / 125.0 - 1.0).collect());
        let reference = ir::eval::eval(&graph, &weights, std::slice::from_ref(&x)).unwrap();
        for level in [Level::O0, Level::O2] {
            let opt = passes::optimize(&graph, &weights, level, None);
            let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 0)
                .unwrap_or_else(|e| panic!("{name} at {level:?}: {e}"));
            let out = ir::Tensor::new(&reference[0].shape, model.run(&x.data));
            let err = out.relative_error(&reference[0]);
            assert!(err < 1e-4, "{name} at {level:?}: relative error {err}");
        }
    }
}
