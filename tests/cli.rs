//! The `archc` command line end to end: outputs, JSON shape, and exit status 2 on bad input.

use std::path::Path;
use std::process::{Command, Output};

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("archc runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_json_has_totals_and_layers() {
    let out = archc(&["check", "zoo/shufflenet_v2_x0_5.ron", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["name"], "shufflenet_v2_x0_5");
    assert_eq!(json["totals"]["macs"], 40_476_448);
    assert_eq!(json["totals"]["params"], 1_366_792);
    assert!(json["totals"]["memory_access_bytes"].as_u64().unwrap() > 0);
    assert!(json["totals"]["activation_bytes"].as_u64().unwrap() > 0);
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers[1]["name"], "conv1.0");
    assert_eq!(layers[1]["macs"], 24 * 112 * 112 * 27);
}

#[test]
fn check_table_ends_with_totals() {
    let out = archc(&["check", "zoo/resnet18.ron"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("MACs                1,814,073,344"), "{text}");
    assert!(text.contains("layer1.0.conv1"), "{text}");
}

#[test]
fn set_and_batch_change_the_network() {
    let out = archc(&["check", "zoo/guidelines/g2_g1.ron", "--json", "--set", "width=2", "--batch", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["layers"][0]["shape"], serde_json::json!([2, 256, 56, 56]));
}

#[test]
fn graph_prints_text_and_dot() {
    let text = stdout(&archc(&["graph", "zoo/mnist/shufflenet_v2_x0_5.ron"]));
    assert!(text.starts_with("graph mnist_shufflenet_v2_x0_5 {\n  %0 = input : [1, 1, 28, 28]"), "{text}");
    assert!(text.contains("channel_shuffle"));
    let dot = stdout(&archc(&["graph", "zoo/mnist/shufflenet_v2_x0_5.ron", "--format", "dot"]));
    assert!(dot.starts_with("digraph "), "{dot}");
    assert!(dot.contains("->"));
}

#[test]
fn zoo_lists_every_network() {
    let out = archc(&["zoo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let n_files = ["zoo", "zoo/mnist", "zoo/cifar", "zoo/guidelines"]
        .iter()
        .flat_map(|d| std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(d)).unwrap())
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "ron"))
        .count();
    assert!(text.contains(&format!("{n_files} networks checked, 0 failed")), "{text}");
}

#[test]
fn bad_input_exits_2_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ron");
    std::fs::write(&bad, "Network(\n  name: \"x\",\n  input: Image(channels: 3, height: 8, width: 8),\n  body: [Conv(out: 4, kernel: 3, groups: 2)],\n)").unwrap();
    let out = archc(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.ron:4:10: conv `conv`: groups 2 does not divide 3 input channels"), "{err}");

    let missing = archc(&["check", "no/such/file.ron"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no/such/file.ron"));

    let unknown_param = archc(&["check", "zoo/resnet18.ron", "--set", "widht=2"]);
    assert_eq!(unknown_param.status.code(), Some(2));
    assert!(stderr(&unknown_param).contains("--set widht: the network has no parameter `widht`"));

    let bad_flag = archc(&["check", "zoo/resnet18.ron", "--batch", "0"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}
