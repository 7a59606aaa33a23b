//! The `archc` command line end to end: outputs, JSON shape, and exit status 2 on bad input.

use std::path::Path;
use std::process::Output;

mod common;
use common::archc;

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
    // The reason once: the file's error shows it, and the chain of causes does not repeat it.
    let reason = std::io::Error::from_raw_os_error(2);
    assert_eq!(stderr(&missing).trim(), format!("error: no/such/file.ron: {reason}"));

    let unknown_param = archc(&["check", "zoo/resnet18.ron", "--set", "widht=2"]);
    assert_eq!(unknown_param.status.code(), Some(2));
    assert!(stderr(&unknown_param).contains("--set widht: the network has no parameter `widht`"));

    let bad_flag = archc(&["check", "zoo/resnet18.ron", "--batch", "0"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}

/// Writes an f32 `.npy` array the way numpy does.
fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Runs `archc run` on a parity fixture (`ir/tests/parity/MODEL.*`, network and overrides
/// from its JSON) with `extra` flags, and asserts that the output equals torch's within 1e-4
/// relative. Returns the run's output.
fn run_on_fixture(model: &str, extra: &[&str]) -> Output {
    let fixture = format!("ir/tests/parity/{model}");
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/{fixture}.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("y.npy");
    let (weights, input) = (format!("{fixture}.safetensors"), format!("{fixture}.input.npy"));
    let mut args = vec!["run", spec["network"].as_str().unwrap(), "--weights", &weights, "--input", &input];
    args.extend(["--output", out.to_str().unwrap()]);
    let overrides: Vec<String> =
        spec["overrides"].as_object().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
    for o in &overrides {
        args.extend(["--set", o]);
    }
    args.extend(extra);
    let res = archc(&args);
    assert!(res.status.success(), "{}", stderr(&res));
    assert_matches_fixture(&out, &fixture);
    res
}

/// Asserts that the array at `out` equals the fixture's torch output within 1e-4 relative.
fn assert_matches_fixture(out: &Path, fixture: &str) {
    let read = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f32>().unwrap()
    };
    let torch = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{fixture}.output.npy")));
    let ours = read(out);
    let max_diff = ours.iter().zip(&torch).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let max_ref = torch.iter().map(|b| b.abs()).fold(0.0, f32::max);
    assert!(max_diff / max_ref < 1e-4, "{max_diff} / {max_ref}");
}

#[test]
fn run_matches_torchvision_through_the_cli() {
    let res = run_on_fixture("shufflenet_v2_x0_5", &["--top", "3"]);
    let text = stdout(&res);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with("item 0: "), "{text}");
}

#[test]
fn run_rejects_bad_inputs_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &Path| {
        let out = dir.path().join("y.npy");
        let res = archc(&[
            "run",
            "zoo/mnist/shufflenet_v2_x0_5.ron",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(!out.exists(), "no output is written on failure");
        res
    };
    let wrong_shape = dir.path().join("wrong_shape.npy");
    write_npy(&wrong_shape, &[1, 3, 28, 28], &vec![0.0; 3 * 28 * 28]);
    let res = run(&wrong_shape);
    assert_eq!(res.status.code(), Some(2));
    assert!(
        stderr(&res).contains("input `input` must have shape [1, 1, 28, 28], got [1, 3, 28, 28]"),
        "{}",
        stderr(&res)
    );

    let not_nchw = dir.path().join("flat.npy");
    write_npy(&not_nchw, &[784], &vec![0.0; 784]);
    let res = run(&not_nchw);
    assert_eq!(res.status.code(), Some(2));
    assert!(stderr(&res).contains("is not an NCHW batch"), "{}", stderr(&res));

    let f64_file = dir.path().join("f64.npy");
    {
        use npyz::WriterBuilder;
        let file = std::io::BufWriter::new(std::fs::File::create(&f64_file).unwrap());
        let mut w =
            npyz::WriteOptions::new().default_dtype().shape(&[1, 1, 28, 28]).writer(file).begin_nd().unwrap();
        w.extend(std::iter::repeat_n(0.0f64, 784)).unwrap();
        w.finish().unwrap();
    }
    let res = run(&f64_file);
    assert_eq!(res.status.code(), Some(2));
    assert!(stderr(&res).contains("dtype is '<f8', expected float32"), "{}", stderr(&res));

    let garbage = dir.path().join("garbage.npy");
    std::fs::write(&garbage, b"not numpy").unwrap();
    assert_eq!(run(&garbage).status.code(), Some(2));
}

#[test]
fn run_batches_and_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npy");
    let data: Vec<f32> = (0..3 * 784).map(|i| (i % 17) as f32 / 17.0).collect();
    write_npy(&input, &[3, 1, 28, 28], &data);
    let run = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        let res = archc(&[
            "run",
            "zoo/mnist/shufflenet_v2_x0_5.ron",
            "--seed",
            seed,
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(res.status.success(), "{}", stderr(&res));
        std::fs::read(out).unwrap()
    };
    let (a, b, c) = (run("1", "a.npy"), run("1", "b.npy"), run("2", "c.npy"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let npy = npyz::NpyFile::new(&a[..]).unwrap();
    assert_eq!(npy.shape(), &[3, 10]);
}

#[test]
fn opt_json_reports_ops_moved_bytes_and_peak() {
    let json = |level: &str| {
        let out = archc(&["opt", "zoo/shufflenet_v2_x0_5.ron", level, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (o0, o2) = (json("-O0"), json("-O2"));
    assert!(o0["moved_bytes"].as_u64().unwrap() > 0);
    assert_eq!(o0["ops"]["channel_shuffle"], 16);
    assert_eq!(o2["moved_bytes"], 0);
    assert!(o2["ops"].get("channel_shuffle").is_none());
    assert!(o2["ops"].get("batch_norm").is_none());
    assert!(o2["peak_activation_bytes"].as_u64().unwrap() > 0);
    assert!(o2["eqsat"]["applied"]["shuffle-to-gather"].as_u64().unwrap() > 0);
}

#[test]
fn opt_prints_and_explains() {
    let out = archc(&["opt", "zoo/mnist/shufflenet_v2_x0_5.ron", "-O1", "--print", "--stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("conv-bn-fold"), "{text}");
    assert!(text.contains("epilogue"), "{text}");
    let bad = archc(&["opt", "zoo/mnist/shufflenet_v2_x0_5.ron", "--stop-after", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad)
            .contains("no pass `nope` at -O2; its passes are: eqsat, eliminate-dead-nodes, mark-epilogues")
    );
    assert_eq!(archc(&["opt", "zoo/mnist/shufflenet_v2_x0_5.ron", "-O3"]).status.code(), Some(2));
}

#[test]
fn native_code_matches_torchvision() {
    run_on_fixture("shufflenet_v2_x0_5", &["-O2", "--backend", "cpu"]);
}

#[test]
fn run_at_o2_still_matches_torchvision() {
    run_on_fixture("mobilenet_v2", &["-O2"]);
}

#[test]
fn bench_json_reports_the_protocol_and_layers() {
    let out = archc(&[
        "bench",
        "zoo/mnist/shufflenet_v2_x0_5.ron",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ms = |k: &str| json[k].as_f64().unwrap_or_else(|| panic!("{k} in {json}"));
    assert!(
        0.0 < ms("min_ms") && ms("min_ms") <= ms("median_ms") && ms("median_ms") <= ms("p90_ms"),
        "{json}"
    );
    assert_eq!(
        (json["runs"].as_u64(), json["threads"].as_u64(), json["batch"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    let layers = json["layers"].as_array().unwrap();
    // The stem reads the caller's input in place: no copy step.
    assert_eq!(layers[0]["name"], "conv1.0");
    let conv1 = layers.iter().find(|l| l["name"] == "conv1.0").expect("conv1.0 is a step");
    assert_eq!(conv1["op"], "conv+relu", "BN folded, ReLU fused: {conv1}");
    assert_eq!(conv1["macs"], 24 * 28 * 28 * 9);
    let share: f64 = layers.iter().map(|l| l["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-6, "{share}");
}

#[test]
fn bench_rejects_zero_runs() {
    let out = archc(&["bench", "zoo/mnist/shufflenet_v2_x0_5.ron", "--runs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn tune_writes_the_cache_that_bench_and_compile_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("schedules.json");
    let cache_arg = cache.to_str().unwrap();
    let net = "zoo/mnist/shufflenet_v2_x0_5.ron";
    let out = archc(&["tune", net, "--rounds", "1", "--threads", "1,2", "--schedules", cache_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    let entries = written["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{written}");
    for e in entries {
        // On two threads the one-thread choice stays while within the margin of the fastest.
        let margin = if e["threads"] == 1 { 1.0 } else { 1.0 + codegen::tune::KEEP_WITHIN };
        assert!(
            e["median_ms"].as_f64().unwrap() <= e["default_ms"].as_f64().unwrap() * margin,
            "the fastest is kept: {e}"
        );
        assert!(e["kernel"].as_str().unwrap().starts_with("conv 1x"), "{e}");
    }
    // Each kernel once per thread count.
    for threads in [1, 2] {
        let count = entries.iter().filter(|e| e["threads"].as_u64() == Some(threads)).count();
        assert_eq!(count * 2, entries.len(), "{written}");
        let (head, tail) = (format!("{count} convolutions of"), format!("on {threads} thread(s)"));
        let summary = stdout(&out).lines().any(|l| l.starts_with(&head) && l.contains(&tail));
        assert!(summary, "{}", stdout(&out));
    }

    // A second tuning (one thread) records the same kernels again, leaving the two-thread
    // entries; a choice it keeps from the first is at most KEEP_WITHIN slower than its
    // fastest, so than the default.
    let again = archc(&["tune", net, "--rounds", "1", "--threads", "1", "--all", "--schedules", cache_arg]);
    assert!(again.status.success(), "{}", stderr(&again));
    // `--all`: every candidate's median under its convolution (two or more each), the default
    // first, at 1.00x of itself.
    let listed = stdout(&again);
    let kernels = entries.len() / 2;
    assert!(listed.lines().filter(|l| l.starts_with("  tile ")).count() >= 2 * kernels, "{listed}");
    let first = listed.lines().skip_while(|l| !l.starts_with("conv 1x")).nth(1);
    assert!(first.is_some_and(|l| l.starts_with("  tile ") && l.ends_with(" 1.00x")), "{listed}");
    let rewritten: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    let kernels = |v: &serde_json::Value| {
        let mut k: Vec<String> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kernel"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kernels(&rewritten), kernels(&written));
    for e in rewritten["entries"].as_array().unwrap() {
        let (chosen, default) = (e["median_ms"].as_f64().unwrap(), e["default_ms"].as_f64().unwrap());
        assert!(chosen <= default * (1.0 + codegen::tune::KEEP_WITHIN), "{e}");
    }

    let bench = archc(&["bench", net, "--runs", "2", "--warmup", "0", "--json", "--schedules", cache_arg]);
    assert!(bench.status.success(), "{}", stderr(&bench));
    let json: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(json["tuned_schedules"].as_u64(), Some(entries.len() as u64), "{json}");

    let lib = dir.path().join("lib");
    let compile =
        archc(&["compile", net, "--emit", "lib", "-o", lib.to_str().unwrap(), "--schedules", cache_arg]);
    assert!(compile.status.success(), "{}", stderr(&compile));
    assert!(stdout(&compile).contains(&format!("{} tuned schedules", entries.len())), "{}", stdout(&compile));

    std::fs::write(&cache, "{ not json").unwrap();
    for args in [vec!["bench", net, "--runs", "1"], vec!["tune", net, "--rounds", "1"]] {
        let out = archc(&[&args[..], &["--schedules", cache_arg]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("schedules.json") && stderr(&out).contains("line 1"),
            "{}",
            stderr(&out)
        );
    }
}
