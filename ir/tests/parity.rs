//! `ir::eval` against PyTorch: torchvision models with seeded random weights and randomized BN
//! statistics, written by `scripts/torch_parity.py` (one in F32, one in F16 weights).

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity")
}

fn read_npy(path: &Path) -> ir::Tensor {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    ir::Tensor::new(&shape, npy.into_vec::<f32>().unwrap())
}

/// Builds the fixture's network as `scripts/torch_parity.py` describes it in `MODEL.json`.
fn network(model: &str, batch: usize) -> ir::Graph {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{model}.json"))).unwrap())
            .unwrap();
    let overrides =
        spec["overrides"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(spec["network"].as_str().unwrap());
    ir::from_ron_file(&path, &ir::BuildOptions { batch, overrides }).unwrap()
}

fn check(model: &str) {
    let input = read_npy(&fixtures().join(format!("{model}.input.npy")));
    let expected = read_npy(&fixtures().join(format!("{model}.output.npy")));
    let graph = network(model, input.shape[0]);
    let weights = ir::Weights::load(&graph, &fixtures().join(format!("{model}.safetensors"))).unwrap();
    let out = ir::eval::eval(&graph, &weights, &[input]).unwrap();
    let err = out[0].relative_error(&expected);
    assert!(err < 1e-4, "{model}: relative error {err}");
}

#[test]
fn shufflenet_v2_x0_5_matches_torchvision() {
    check("shufflenet_v2_x0_5");
}

#[test]
fn mobilenet_v2_matches_torchvision_with_f16_weights() {
    check("mobilenet_v2");
}
