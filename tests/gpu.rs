//! The GPU from the command line: `archc compile --target cuda --emit ptx` writes the PTX, the
//! launch plan and the weights; bad flag combinations are usage errors; and without a CUDA
//! driver, `run --device cuda` and `bench --device cuda` fail with one sentence and write
//! nothing.

use std::path::Path;

use npyz::WriterBuilder;

mod common;
use common::archc;

const NETWORK: &str = "zoo/mnist/shufflenet_v2_x0_5.ron";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn compile_writes_ptx_with_its_launch_plan_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let ptx = dir.path().join("net.ptx");
    let out = archc(&[
        "compile",
        NETWORK,
        "--batch",
        "2",
        "--target",
        "cuda",
        "--arch",
        "sm_90",
        "--emit",
        "ptx",
        "-o",
        ptx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = cuda::Files::read(&ptx).unwrap();
    assert_eq!(files.plan.arch, "sm_90");
    assert_eq!(files.plan.inputs, [[2, 1, 28, 28]]);
    assert_eq!(files.plan.outputs, [[2, 10]]);
    let entries = files.ptx.lines().filter(|l| l.starts_with(".visible .entry ")).count();
    assert_eq!(entries, files.plan.kernels.len());
    assert!(files.ptx.contains(".target sm_90"));
    let options = ir::BuildOptions { batch: 2, ..Default::default() };
    let graph = ir::from_ron_file(Path::new(NETWORK), &options).unwrap();
    let macs = ir::metrics::metrics(&graph).totals.macs;
    assert_eq!(files.plan.macs(), macs, "the kernels account for every multiply-add");
}

#[test]
fn gpu_flags_that_do_not_fit_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ptx = dir.path().join("net.ptx");
    let ptx = ptx.to_str().unwrap();
    let exe = dir.path().join("net");
    let cases: [(&[&str], &str); 4] = [
        (&["--target", "cuda", "-o", ptx], "--emit ptx"),
        (&["--emit", "ptx", "-o", ptx], "--emit ptx"),
        (&["--arch", "sm_80", "-o", exe.to_str().unwrap()], "--arch"),
        (&["--target", "cuda", "--emit", "ptx", "-o", exe.to_str().unwrap()], ".ptx"),
    ];
    for (flags, said) in cases {
        let mut args = vec!["compile", NETWORK];
        args.extend_from_slice(flags);
        let out = archc(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(said), "{flags:?}: {}", stderr(&out));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn without_a_driver_running_on_the_gpu_fails_in_one_sentence() {
    if cuda::has_driver() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: this machine has a CUDA driver");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npy");
    let file = std::fs::File::create(&input).unwrap();
    let mut w =
        npyz::WriteOptions::new().default_dtype().shape(&[1, 1, 28, 28]).writer(file).begin_nd().unwrap();
    w.extend(std::iter::repeat_n(0.5f32, 28 * 28)).unwrap();
    w.finish().unwrap();
    let output = dir.path().join("y.npy");
    let (input, output_path) = (input.to_str().unwrap(), output.to_str().unwrap());
    for args in [
        vec!["run", NETWORK, "--device", "cuda", "--input", input, "--output", output_path],
        vec!["bench", NETWORK, "--device", "cuda"],
    ] {
        let out = archc(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(text.contains("no CUDA driver"), "{args:?}: {text}");
    }
    assert!(!output.exists());
}
