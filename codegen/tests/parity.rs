//! The torchvision-parity fixtures (`ir/tests/parity/`, written by `scripts/torch_parity.py`)
//! through the compiled path: PyTorch's outputs reproduced by native code at `-O2`.

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ir/tests/parity")
}

fn read_npy(path: &Path) -> ir::Tensor {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    ir::Tensor::new(&shape, npy.into_vec::<f32>().unwrap())
}

fn check(model: &str) {
    let input = read_npy(&fixtures().join(format!("{model}.input.npy")));
    let expected = read_npy(&fixtures().join(format!("{model}.output.npy")));
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{model}.json"))).unwrap())
            .unwrap();
    let overrides =
        spec["overrides"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(spec["network"].as_str().unwrap());
    let graph = ir::from_ron_file(&path, &ir::BuildOptions { batch: input.shape[0], overrides }).unwrap();
    let weights = ir::Weights::load(&graph, &fixtures().join(format!("{model}.safetensors"))).unwrap();
    let opt = passes::optimize(&graph, &weights, passes::Level::O2, None);
    let mut model_code = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 2).unwrap();
    model_code.set_threads(2);
    let out = ir::Tensor::new(&expected.shape, model_code.run(&input.data));
    let err = out.relative_error(&expected);
    assert!(err < 1e-4, "{model}: relative error {err}");
}

#[test]
fn compiled_shufflenet_v2_x0_5_matches_torchvision() {
    check("shufflenet_v2_x0_5");
}

#[test]
fn compiled_mobilenet_v2_matches_torchvision() {
    check("mobilenet_v2");
}
