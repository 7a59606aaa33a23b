//! The zoo against published numbers: torchvision's exact totals, the paper's MACs, equal
//! MACs within each guideline table, and snapshots of every network's printed IR.

use std::path::{Path, PathBuf};

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo")
}

fn build(relative: &str, overrides: &[(&str, &str)]) -> ir::Graph {
    let options = ir::BuildOptions {
        batch: 1,
        overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let graph = ir::from_ron_file(&zoo().join(relative), &options).unwrap_or_else(|e| panic!("{e}"));
    ir::verify(&graph).unwrap_or_else(|e| panic!("{e}"));
    graph
}

fn totals(relative: &str) -> ir::metrics::Totals {
    ir::metrics::metrics(&build(relative, &[])).totals
}

#[test]
fn torchvision_totals_match_exactly() {
    // MACs of convs and linears, trainable parameters: torchvision's models at 224x224.
    let expected = [
        ("shufflenet_v2_x0_5.ron", 40_476_448, 1_366_792),
        ("shufflenet_v2_x1_0.ron", 144_907_992, 2_278_604),
        ("shufflenet_v2_x1_5.ron", 295_759_392, 3_503_624),
        ("shufflenet_v2_x2_0.ron", 583_253_464, 7_393_996),
        ("mobilenet_v2.ron", 300_774_272, 3_504_872),
        ("resnet18.ron", 1_814_073_344, 11_689_512),
        ("resnet50.ron", 4_089_184_256, 25_557_032),
    ];
    for (file, macs, params) in expected {
        let t = totals(file);
        assert_eq!((t.macs, t.params), (macs, params), "{file}");
    }
}

#[test]
fn shufflenet_v1_g3_is_near_the_papers_140m() {
    let macs = totals("shufflenet_v1_g3.ron").macs as f64;
    assert!((macs / 140e6 - 1.0).abs() < 0.03, "{macs}");
}

#[test]
fn mobilenet_v1_widths_match_the_papers_table_8() {
    for (width, paper) in [("0.25", 41e6), ("0.5", 149e6), ("0.75", 325e6), ("1.0", 569e6)] {
        let g = build("mobilenet_v1.ron", &[("width", width)]);
        let macs = ir::metrics::metrics(&g).totals.macs as f64;
        assert!((macs / paper - 1.0).abs() < 0.02, "width {width}: {macs}");
    }
}

/// The spread of MACs in a table: (max - min) / max.
fn spread(files: &[&str], width: &str) -> f64 {
    let macs: Vec<f64> = files
        .iter()
        .map(|f| {
            let g = build(&format!("guidelines/{f}.ron"), &[("width", width)]);
            ir::metrics::metrics(&g).totals.macs as f64
        })
        .collect();
    let max = macs.iter().cloned().fold(f64::MIN, f64::max);
    let min = macs.iter().cloned().fold(f64::MAX, f64::min);
    (max - min) / max
}

#[test]
fn guideline_tables_have_equal_macs() {
    let tables: [&[&str]; 4] = [
        &["g1_1to1", "g1_1to2", "g1_1to6", "g1_1to12"],
        &["g2_g1", "g2_g2", "g2_g4", "g2_g8"],
        &["g3_1frag", "g3_2series", "g3_4series", "g3_2parallel", "g3_4parallel"],
        &["g4_relu_shortcut", "g4_relu_noshortcut", "g4_norelu_shortcut", "g4_norelu_noshortcut"],
    ];
    for files in tables {
        for width in ["1", "2", "4"] {
            let s = spread(files, width);
            // The paper's own channel counts (36:432 against 128:128) differ by 5%.
            assert!(s < 0.06, "{files:?} at width {width}: MACs differ by {:.1}%", s * 100.0);
        }
    }
    assert_eq!(spread(tables[3], "1"), 0.0, "G4 only removes element-wise ops");
}

#[test]
fn guideline_g4_counts_elementwise_ops() {
    let count = |f: &str| totals(&format!("guidelines/{f}.ron")).elementwise_ops;
    assert_eq!(count("g4_relu_shortcut"), 40);
    assert_eq!(count("g4_relu_noshortcut"), 30);
    assert_eq!(count("g4_norelu_shortcut"), 10);
    assert_eq!(count("g4_norelu_noshortcut"), 0);
}

#[test]
fn names_follow_torchvision_state_dict_keys() {
    let names = |file: &str| -> Vec<String> {
        let g = build(file, &[]);
        g.node_ids().map(|id| g.node(id).name.clone()).collect()
    };
    let shufflenet = names("shufflenet_v2_x1_0.ron");
    for key in [
        "conv1.0",
        "conv1.1",
        "stage2.0.branch1.0",
        "stage2.0.branch1.4",
        "stage4.3.branch2.7",
        "conv5.1",
        "fc",
    ] {
        assert!(shufflenet.iter().any(|n| n == key), "shufflenet_v2_x1_0 lacks {key}");
    }
    let mobilenet = names("mobilenet_v2.ron");
    for key in [
        "features.0.0",
        "features.1.conv.0.0",
        "features.1.conv.1",
        "features.2.conv.0.1",
        "features.18.1",
        "classifier.1",
    ] {
        assert!(mobilenet.iter().any(|n| n == key), "mobilenet_v2 lacks {key}");
    }
    let resnet = names("resnet50.ron");
    for key in ["conv1", "bn1", "layer1.0.conv3", "layer1.0.downsample.0", "layer4.2.bn3", "fc"] {
        assert!(resnet.iter().any(|n| n == key), "resnet50 lacks {key}");
    }
}

#[test]
fn batch_size_scales_activations_not_params() {
    let one = build("mnist/shufflenet_v2_x0_5.ron", &[]);
    let options = ir::BuildOptions { batch: 8, overrides: Vec::new() };
    let eight = ir::from_ron_file(&zoo().join("mnist/shufflenet_v2_x0_5.ron"), &options).unwrap();
    let (a, b) = (ir::metrics::metrics(&one).totals, ir::metrics::metrics(&eight).totals);
    assert_eq!(a.params, b.params);
    assert_eq!(a.macs * 8, b.macs);
    assert_eq!(a.activation_bytes * 8, b.activation_bytes);
}

#[test]
fn printed_ir_of_every_zoo_network() {
    // The network folders; `spaces/` holds search spaces, which are not networks.
    insta::glob!("../../zoo", "{*.ron,mnist/*.ron,cifar/*.ron,guidelines/*.ron}", |path| {
        let graph = ir::from_ron_file(path, &ir::BuildOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(ir::print::to_text(&graph));
    });
}

#[test]
fn every_zoo_network_runs_in_eval_with_seeded_weights() {
    // Small inputs keep the reference interpreter fast; the structure is the same.
    for entry in glob_ron(&zoo()) {
        let relative = entry.strip_prefix(zoo()).unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&entry).unwrap();
        // ImageNet networks need 32 pixels to keep a pixel after five stride-2 stages; the
        // guideline blocks never downsample.
        let small: &[(&str, &str)] = if text.contains("\"resolution\": 56") {
            &[("resolution", "8")]
        } else if text.contains("\"resolution\"") {
            &[("resolution", "32")]
        } else {
            &[]
        };
        let options = ir::BuildOptions {
            batch: 2,
            overrides: small.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let graph = ir::from_ron_file(&entry, &options).unwrap_or_else(|e| panic!("{e}"));
        let weights = ir::Weights::seeded(&graph, 7);
        let input_shape = graph.node(graph.inputs()[0]).outputs[0].dims().to_vec();
        let n: usize = input_shape.iter().product();
        let input =
            ir::Tensor::new(&input_shape, (0..n).map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5).collect());
        let out = ir::eval::eval(&graph, &weights, &[input]).unwrap();
        let expected = graph.shape(graph.outputs()[0]).dims();
        assert_eq!(out[0].shape, expected, "{relative}");
        assert!(out[0].data.iter().all(|x| x.is_finite()), "{relative}");
        assert!(out[0].data.iter().any(|&x| x != 0.0), "{relative}: all zeros");
    }
}

/// Every `*.ron` under `dir`, sorted.
fn glob_ron(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Search spaces are not networks.
            if path.file_name().is_some_and(|n| n != "spaces") {
                files.extend(glob_ron(&path));
            }
        } else if path.extension().is_some_and(|e| e == "ron") {
            files.push(path);
        }
    }
    files.sort();
    files
}
