//! Weights files: round trips, and every way a file can fail to fit a network.

use ir::{BuildOptions, Tensor, Weights};

fn tiny() -> ir::Graph {
    let text = r#"Network(name: "tiny", input: Image(channels: 3, height: 6, width: 6), body: [
        Conv(name: "stem", out: 4, kernel: 3, bn: true, act: Relu),
        GlobalAvgPool,
        Linear(name: "fc", out: 2),
    ])"#;
    ir::from_ron_str(text, "tiny.ron", &BuildOptions::default()).unwrap()
}

/// Serializes `(name, shape, f32 data)` as safetensors bytes, as PyTorch would.
fn safetensors(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn good() -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    vec![
        ("stem.0.weight", vec![4, 3, 3, 3], vec![0.1; 108]),
        ("stem.1.weight", vec![4], vec![1.0; 4]),
        ("stem.1.bias", vec![4], vec![0.0; 4]),
        ("stem.1.running_mean", vec![4], vec![0.0; 4]),
        ("stem.1.running_var", vec![4], vec![1.0; 4]),
        ("fc.weight", vec![2, 4], vec![0.5; 8]),
        ("fc.bias", vec![2], vec![0.0; 2]),
    ]
}

fn load(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Result<Weights, String> {
    Weights::from_safetensors(&tiny(), &safetensors(tensors), "w.safetensors").map_err(|e| e.to_string())
}

#[test]
fn loads_a_state_dict_and_ignores_num_batches_tracked() {
    let mut tensors = good();
    tensors.push(("stem.1.num_batches_tracked", vec![], vec![0.0]));
    let w = load(&tensors).unwrap();
    assert_eq!(w.get("fc.weight").unwrap().data, vec![0.5; 8]);
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let tensors: Vec<_> = good().into_iter().filter(|t| t.0 != "stem.1.running_var").collect();
    assert_eq!(
        load(&tensors).unwrap_err(),
        "w.safetensors: tensor `stem.1.running_var`: missing; expected shape [4]"
    );
}

#[test]
fn extra_tensors_are_listed() {
    let mut tensors = good();
    tensors.push(("head.weight", vec![1], vec![0.0]));
    tensors.push(("aux.bias", vec![1], vec![0.0]));
    assert_eq!(
        load(&tensors).unwrap_err(),
        "w.safetensors: tensor `aux.bias`: the network has no such parameter (2 unexpected tensor(s): aux.bias, head.weight)"
    );
}

#[test]
fn misshaped_tensor_gives_both_shapes() {
    let mut tensors = good();
    tensors[5] = ("fc.weight", vec![4, 2], vec![0.5; 8]);
    assert_eq!(
        load(&tensors).unwrap_err(),
        "w.safetensors: tensor `fc.weight`: expected shape [2, 4], found [4, 2]"
    );
}

#[test]
fn non_finite_values_are_rejected() {
    let mut tensors = good();
    tensors[2].2[3] = f32::NAN;
    assert_eq!(load(&tensors).unwrap_err(), "w.safetensors: tensor `stem.1.bias`: element 3 is NaN");
    let mut tensors = good();
    tensors[6].2[0] = f32::INFINITY;
    assert_eq!(load(&tensors).unwrap_err(), "w.safetensors: tensor `fc.bias`: element 0 is inf");
}

#[test]
fn garbage_is_not_a_safetensors_file() {
    let err = Weights::from_safetensors(&tiny(), b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "g.bin").unwrap_err();
    assert!(err.to_string().starts_with("g.bin: not a safetensors file"), "{err}");
}

#[test]
fn save_then_load_round_trips() {
    let graph = tiny();
    let w = Weights::seeded(&graph, 42);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    w.save(&path).unwrap();
    assert_eq!(Weights::load(&graph, &path).unwrap(), w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no partial file is left behind");
}

#[test]
fn seeded_init_is_deterministic_and_kaiming_scaled() {
    let graph = tiny();
    let (a, b, c) = (Weights::seeded(&graph, 1), Weights::seeded(&graph, 1), Weights::seeded(&graph, 2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let w = &a.get("stem.0.weight").unwrap().data;
    let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    // Kaiming normal with fan_in = 27: std = sqrt(2 / 27) = 0.27.
    assert!((std - 0.272).abs() < 0.06, "{std}");
    assert_eq!(a.get("stem.1.running_var").unwrap(), &Tensor::full(&[4], 1.0));
    assert_eq!(a.get("fc.bias").unwrap(), &Tensor::zeros(&[2]));
}
