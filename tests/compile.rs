//! `archc compile` end to end: the executable, the C library (static and shared, from a C
//! program written against its header), the object file, assembly and IR, and an ARM
//! executable under qemu, each compared with the reference interpreter.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use npyz::WriterBuilder;

mod common;
use common::archc;

const NETWORK: &str = "zoo/mnist/shufflenet_v2_x0_5.ron";
const SYMBOL: &str = "mnist_shufflenet_v2_x0_5";

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_npy(p: &Path, shape: &[u64], data: &[f32]) {
    let file = std::fs::File::create(p).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn read_npy(p: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(p).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    (npy.shape().to_vec(), npy.into_vec().unwrap())
}

fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    ir::Tensor::new(&[a.len()], a.to_vec()).relative_error(&ir::Tensor::new(&[b.len()], b.to_vec()))
}

/// A batch-2 input, and the interpreter's output on it.
fn reference(dir: &Path) -> (PathBuf, Vec<f32>) {
    let input = dir.join("x.npy");
    let data: Vec<f32> = (0..2 * 28 * 28).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    write_npy(&input, &[2, 1, 28, 28], &data);
    let expected = dir.join("expected.npy");
    ok(archc(&["run", NETWORK, "--input", path(&input), "--output", path(&expected), "--backend", "interp"]));
    (input, read_npy(&expected).1)
}

#[test]
fn executable_runs_without_archc() {
    let dir = tempfile::tempdir().unwrap();
    let (input, expected) = reference(dir.path());
    let exe = dir.path().join("net");
    let out = ok(archc(&["compile", NETWORK, "--batch", "2", "--emit", "exe", "-o", path(&exe)]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote"));
    for threads in ["1", "2"] {
        let y = dir.path().join(format!("y{threads}.npy"));
        ok(Command::new(&exe)
            .args(["--input", path(&input), "--output", path(&y), "--threads", threads])
            .output()
            .unwrap());
        let (shape, data) = read_npy(&y);
        assert_eq!(shape, [2, 10]);
        let err = relative_error(&data, &expected);
        assert!(err < 1e-4, "{threads} threads: relative error {err}");
    }
    let top = ok(Command::new(&exe)
        .args(["--input", path(&input), "--top", "3", "--bench", "5"])
        .output()
        .unwrap());
    let text = String::from_utf8_lossy(&top.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("item ")).count(), 2 * 3, "{text}");
    let json: serde_json::Value =
        serde_json::from_str(text.lines().find(|l| l.starts_with('{')).expect("a JSON line")).unwrap();
    assert_eq!((json["runs"].as_u64(), json["batch"].as_u64()), (Some(5), Some(2)), "{json}");
    assert!(json["median_ms"].as_f64().unwrap() > 0.0);
    // A wrong input: exit status 2, a message naming the file, no output written.
    let bad = dir.path().join("bad.npy");
    write_npy(&bad, &[1, 1, 28, 28], &[0.0; 28 * 28]);
    let y = dir.path().join("never.npy");
    let out = Command::new(&exe).args(["--input", path(&bad), "--output", path(&y)]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.npy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!y.exists());
}

/// A C program written against the library's header: reads raw floats, runs on one thread
/// (checking that no thread was created), then on two (checking that one was), and writes
/// raw floats.
const PROGRAM: &str = r#"
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdio.h>
#include "NAME.h"
static int threads(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}
int main(int argc, char **argv) {
    static float in[NAME_UPPER_INPUT_ELEMS], out[NAME_UPPER_OUTPUT_ELEMS];
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(in, sizeof(float), NAME_UPPER_INPUT_ELEMS, f) != NAME_UPPER_INPUT_ELEMS) return 3;
    fclose(f);
    if (NAME_run(in, out) != 0) return 4;
    if (threads() != 1) return 5;
    NAME_set_threads(2);
    if (NAME_run(in, out) != 0) return 4;
    if (threads() != 2) return 6;
    f = fopen(argv[2], "wb");
    fwrite(out, sizeof(float), NAME_UPPER_OUTPUT_ELEMS, f);
    fclose(f);
    return 0;
}
"#;

fn raw(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_raw(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Builds the C program with `link` arguments, runs it on the raw input and checks its output.
fn check_program(dir: &Path, include: &Path, link: &[&str], input: &[f32], expected: &[f32]) {
    let source = dir.join("main.c");
    let upper = SYMBOL.to_ascii_uppercase();
    std::fs::write(&source, PROGRAM.replace("NAME_UPPER", &upper).replace("NAME", SYMBOL)).unwrap();
    let exe = dir.join("program");
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", "-I", path(include), path(&source), "-o", path(&exe)])
        .args(link)
        .args(["-lm", "-pthread"])
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let (x, y) = (dir.join("x.raw"), dir.join("y.raw"));
    std::fs::write(&x, raw(input)).unwrap();
    let run = Command::new(&exe).args([path(&x), path(&y)]).output().unwrap();
    assert!(run.status.success(), "{:?}", run.status);
    let err = relative_error(&from_raw(&std::fs::read(&y).unwrap()), expected);
    assert!(err < 1e-4, "relative error {err} linking {link:?}");
}

#[test]
fn library_and_object_link_into_c_programs() {
    let dir = tempfile::tempdir().unwrap();
    let (input, expected) = reference(dir.path());
    let input = read_npy(&input).1;
    let lib = dir.path().join("lib");
    ok(archc(&["compile", NETWORK, "--batch", "2", "--emit", "lib", "-o", path(&lib)]));
    let header = std::fs::read_to_string(lib.join(format!("{SYMBOL}.h"))).unwrap();
    assert!(header.contains(&format!("int {SYMBOL}_run(const float *input, float *output);")), "{header}");
    assert!(header.contains("MNIST_SHUFFLENET_V2_X0_5_INPUT_ELEMS 1568"), "{header}");
    assert!(header.contains("Concurrent calls"), "{header}");
    let archive = lib.join(format!("lib{SYMBOL}.a"));
    check_program(dir.path(), &lib, &[path(&archive)], &input, &expected);
    let rpath = format!("-Wl,-rpath,{}", path(&lib));
    check_program(dir.path(), &lib, &["-L", path(&lib), &format!("-l{SYMBOL}"), &rpath], &input, &expected);
    let object = dir.path().join("net.o");
    ok(archc(&["compile", NETWORK, "--batch", "2", "--emit", "obj", "-o", path(&object)]));
    check_program(dir.path(), &lib, &[path(&object)], &input, &expected);
    // Nothing of the build is left beside the results.
    let mut names: Vec<String> = std::fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [format!("lib{SYMBOL}.a"), format!("lib{SYMBOL}.so"), format!("{SYMBOL}.h")]);
}

#[test]
fn assembly_and_ir_name_the_entry_points() {
    let dir = tempfile::tempdir().unwrap();
    let (asm, ir) = (dir.path().join("net.s"), dir.path().join("net.ll"));
    ok(archc(&["compile", NETWORK, "--emit", "asm", "-o", path(&asm)]));
    ok(archc(&["compile", NETWORK, "--emit", "llvm-ir", "-o", path(&ir), "-O", "0"]));
    let asm = std::fs::read_to_string(asm).unwrap();
    assert!(asm.contains(&format!("{SYMBOL}_forward:")), "no entry label");
    let ir = std::fs::read_to_string(ir).unwrap();
    assert!(ir.contains(&format!("define void @{SYMBOL}_forward(")));
    assert!(ir.lines().any(|l| l.starts_with(&format!("@{SYMBOL}_weights = ")) && l.contains(" constant ")));
}

#[test]
fn avx512_code_builds_on_any_x86_machine() {
    let dir = tempfile::tempdir().unwrap();
    let asm = dir.path().join("net.s");
    let flags = ["--target", "x86_64-linux-gnu", "--cpu", "x86-64-v4", "--emit", "asm", "-o", path(&asm)];
    ok(archc(&[&["compile", NETWORK][..], &flags[..]].concat()));
    let asm = std::fs::read_to_string(asm).unwrap();
    assert!(asm.contains("vfmadd231ps\t%zmm") || asm.contains("vfmadd231ps %zmm"), "no AVX-512 FMA");
    let out = archc(&[
        "compile",
        NETWORK,
        "--target",
        "aarch64-linux-gnu",
        "--cpu",
        "x86-64-v4",
        "-o",
        "/tmp/never",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_target_is_a_usage_error() {
    let out = archc(&["compile", NETWORK, "--target", "riscv", "-o", "/tmp/never"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aarch64-linux-gnu"));
}

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn arm_executable_runs_under_qemu() {
    if !installed("aarch64-linux-gnu-gcc") || !installed("qemu-aarch64") {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipped: needs gcc-aarch64-linux-gnu and qemu-user (apt-get install; .ci/run installs them)"
            );
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, expected) = reference(dir.path());
    let exe = dir.path().join("net-arm");
    ok(archc(&[
        "compile",
        NETWORK,
        "--batch",
        "2",
        "--target",
        "aarch64-linux-gnu",
        "--emit",
        "exe",
        "-o",
        path(&exe),
    ]));
    let y = dir.path().join("y.npy");
    let run = Command::new("qemu-aarch64")
        .args([
            "-L",
            "/usr/aarch64-linux-gnu",
            path(&exe),
            "--input",
            path(&input),
            "--output",
            path(&y),
            "--threads",
            "2",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let err = relative_error(&read_npy(&y).1, &expected);
    assert!(err < 1e-4, "relative error {err}");
}

#[test]
fn two_networks_link_into_one_program() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(archc(&["compile", NETWORK, "--emit", "lib", "-o", path(&a)]));
    ok(archc(&["compile", "zoo/mnist/shufflenet_v2_x1_0.ron", "--emit", "lib", "-o", path(&b)]));
    let source = dir.path().join("two.c");
    std::fs::write(
        &source,
        r#"#include "mnist_shufflenet_v2_x0_5.h"
#include "mnist_shufflenet_v2_x1_0.h"
static float in[784], out_a[10], out_b[10];
int main(void) {
    mnist_shufflenet_v2_x0_5_set_threads(2);
    for (int i = 0; i < 784; i++) in[i] = (float)(i % 17) / 17.0f;
    if (mnist_shufflenet_v2_x0_5_run(in, out_a) || mnist_shufflenet_v2_x1_0_run(in, out_b)) return 1;
    for (int i = 0; i < 10; i++) if (out_a[i] == out_b[i]) return 2;
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("two");
    let archives = [a.join("libmnist_shufflenet_v2_x0_5.a"), b.join("libmnist_shufflenet_v2_x1_0.a")];
    let cc = Command::new("cc")
        .args(["-I", path(&a), "-I", path(&b), path(&source), path(&archives[0]), path(&archives[1])])
        .args(["-o", path(&exe), "-lm", "-pthread"])
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    assert!(Command::new(&exe).status().unwrap().success());
}
