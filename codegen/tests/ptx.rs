//! PTX for every zoo network and both architectures: one `.entry` per launch, and, where
//! `ptxas` is found (`ARCHC_PTXAS`, `PATH`, or the pip package `nvidia-cuda-nvcc` in
//! `.ci-venv`, which CI installs), assembled without errors or register spills. Snapshots pin
//! the PTX of small kernels.

use std::path::{Path, PathBuf};
use std::process::Command;

use ir::testing::{for_each_parallel, zoo_networks};
use passes::Level;

/// `ptxas`, where this machine has one.
fn ptxas() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci-venv/lib");
    let from_venv = std::fs::read_dir(&venv).ok().into_iter().flatten().flatten().find_map(|python| {
        let nvidia = python.path().join("site-packages/nvidia");
        std::fs::read_dir(nvidia).ok()?.flatten().map(|cu| cu.path().join("bin/ptxas")).find(|p| p.is_file())
    });
    let candidates = [std::env::var_os("ARCHC_PTXAS").map(PathBuf::from), Some("ptxas".into()), from_venv];
    candidates
        .into_iter()
        .flatten()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
}

fn compile(graph: &ir::Graph, level: Level, arch: &str) -> cuda::Files {
    let weights = ir::Weights::seeded(graph, 1);
    let opt = passes::optimize(graph, &weights, level, None);
    codegen::gpu::compile_ptx(&opt.graph, &opt.weights, &opt.plan, arch)
        .unwrap_or_else(|e| panic!("{}: {e}", graph.name()))
}

#[test]
fn every_zoo_network_assembles_for_every_architecture() {
    let ptxas = ptxas();
    if ptxas.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must find ptxas (.ci/run installs nvidia-cuda-nvcc)");
        #[allow(clippy::print_stderr)]
        {
            eprintln!("ptxas not found: checking the PTX text only (pip install nvidia-cuda-nvcc)");
        }
    }
    for_each_parallel(&zoo_networks(), |path| {
        let graph = ir::from_ron_file(path, &ir::BuildOptions::default()).unwrap();
        for arch in codegen::gpu::ARCHS {
            let module = compile(&graph, Level::O2, arch);
            let entries: Vec<&str> =
                module.ptx.lines().filter_map(|l| l.strip_prefix(".visible .entry ")).collect();
            assert_eq!(entries.len(), module.plan.kernels.len(), "{}: one .entry per launch", graph.name());
            for (entry, launch) in entries.iter().zip(&module.plan.kernels) {
                assert!(entry.starts_with(&format!("{}(", launch.entry)), "{entry} for {}", launch.entry);
            }
            assert!(module.ptx.contains(&format!(".target {arch}")));
            assert_eq!(module.weights.len() as u64, module.plan.weight_floats);
            let Some(ptxas) = &ptxas else { continue };
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("net.ptx");
            std::fs::write(&file, &module.ptx).unwrap();
            let out = Command::new(ptxas)
                .args(["-v", &format!("-arch={arch}"), "-o"])
                .arg(dir.path().join("net.cubin"))
                .arg(&file)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{} for {arch}: {log}", graph.name());
            let spills = log
                .lines()
                .filter(|l| l.contains("spill") && !l.contains(" 0 bytes spill stores, 0 bytes spill loads"));
            assert_eq!(spills.count(), 0, "{} for {arch} spills registers:\n{log}", graph.name());
            assert!(!log.contains("warning"), "{} for {arch}: {log}", graph.name());
        }
    });
}

/// The PTX of a small network: a depthwise 3x3 conv with its fused ReLU, a 1x1 conv (the
/// shared-memory GEMM) and a global average pool.
#[test]
fn ptx_of_small_kernels() {
    let text = r#"Network(name: "small", input: Image(channels: 8, height: 6, width: 6), body: [
        Conv(out: 8, kernel: 3, groups: 8, bn: false, act: Relu), Conv(out: 16, kernel: 1, bn: false, act: None),
        GlobalAvgPool])"#;
    let graph = ir::from_ron_str(text, "small.ron", &ir::BuildOptions::default()).unwrap();
    let module = compile(&graph, Level::O2, "sm_80");
    let plan = serde_json::to_string_pretty(&module.plan).unwrap();
    insta::assert_snapshot!("small_launch_plan", plan);
    insta::assert_snapshot!("small_ptx", module.ptx);
}
