//! `archc-gpu` on bad flags and files: exit status 2 and the file named, before any GPU is
//! needed; and, on a machine without a driver, status 3 and the one sentence that says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use cuda::{Files, LaunchPlan};
use npyz::WriterBuilder;

/// A one-kernel network written into a fresh folder, with `x.npy` fitting its input.
fn network() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    // The plan as a person would write it, which also pins its JSON field names.
    let plan: LaunchPlan = serde_json::from_str(
        r#"{"network": "tiny", "arch": "sm_90", "parameters": ["input", "output", "weights", "arena"],
            "arena_bytes": 0, "weight_floats": 2, "inputs": [[1, 4]], "outputs": [[1, 2]],
            "kernels": [{"entry": "k0", "node": "fc", "op": "matmul", "blocks": 1, "threads": 32,
                         "shared_bytes": 0, "macs": 8}]}"#,
    )
    .unwrap();
    let ptx = dir.path().join("tiny.ptx");
    Files { ptx: ".version 7.8\n".into(), plan, weights: vec![0.5, 1.0] }.write(&ptx).unwrap();
    write_npy(&dir.path().join("x.npy"), &[1, 4]);
    write_npy(&dir.path().join("y.npy"), &[1, 2]);
    (dir, ptx)
}

fn write_npy(path: &Path, shape: &[u64]) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    writer.extend((0..shape.iter().product::<u64>()).map(|i| i as f32)).unwrap();
    writer.finish().unwrap();
}

/// Runs archc-gpu in `dir`; returns its exit status and stderr.
fn archc_gpu(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_archc-gpu")).current_dir(dir).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn check(dir: &Path, input: &str) -> (i32, String) {
    archc_gpu(dir, &["check", "tiny.ptx", "--input", input, "--expected", "y.npy"])
}

#[test]
fn bad_flags_exit_2() {
    let (dir, _) = network();
    let (status, stderr) = archc_gpu(dir.path(), &["bench", "tiny.ptx", "--runs", "0"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("--runs"), "{stderr}");
    assert_eq!(archc_gpu(dir.path(), &["check", "tiny.ptx"]).0, 2);
}

#[test]
fn missing_and_malformed_files_are_named() {
    let (dir, ptx) = network();
    let (status, stderr) = check(dir.path(), "absent.npy");
    assert_eq!(status, 2);
    assert!(stderr.starts_with("error: absent.npy: "), "{stderr}");

    std::fs::write(dir.path().join("junk.npy"), "not an array").unwrap();
    let (status, stderr) = check(dir.path(), "junk.npy");
    assert_eq!(status, 2);
    assert!(stderr.starts_with("error: junk.npy: not a .npy file"), "{stderr}");

    std::fs::write(ptx.with_extension("weights"), [0u8; 4]).unwrap();
    let (status, stderr) = check(dir.path(), "x.npy");
    assert_eq!(status, 2);
    assert!(stderr.starts_with("error: tiny.weights: 4 bytes, expected 8"), "{stderr}");

    std::fs::remove_file(&ptx).unwrap();
    let (status, stderr) = archc_gpu(dir.path(), &["bench", "tiny.ptx"]);
    assert_eq!(status, 2);
    assert!(stderr.starts_with("error: tiny.ptx: "), "{stderr}");
}

#[test]
fn inputs_of_the_wrong_shape_are_named() {
    let (dir, _) = network();
    let (status, stderr) = check(dir.path(), "y.npy");
    assert_eq!(status, 2);
    assert_eq!(stderr, "error: y.npy: shape [1, 2]; the network takes [1, 4]\n");
}

#[test]
fn without_a_driver_bench_says_so_and_exits_3() {
    if cuda::has_driver() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("note: libcuda.so is present, so the no-driver error cannot be checked here");
        }
        return;
    }
    let (dir, ptx) = network();
    // Bench needs no weights file: it times zeros.
    std::fs::remove_file(ptx.with_extension("weights")).unwrap();
    let (status, stderr) = archc_gpu(dir.path(), &["bench", "tiny.ptx", "--json"]);
    assert_eq!(status, 3, "{stderr}");
    assert_eq!(
        stderr,
        "error: no CUDA driver: libcuda.so could not be loaded; running on a GPU needs an NVIDIA GPU and its driver\n"
    );
}
