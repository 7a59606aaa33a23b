//! `archc-gpu`: checks and times a network that `archc compile --target cuda --emit ptx` wrote,
//! on a GPU machine that cannot run archc itself (it has no LLVM).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cuda::{CudaModel, Files, Submit};

#[derive(Parser)]
#[command(
    name = "archc-gpu",
    about = "Checks and times a network compiled by `archc compile --target cuda --emit ptx` on an NVIDIA GPU",
    after_help = "Exit status: 0 done, 1 a check over its tolerance, 2 bad flags or files, 3 no GPU or a CUDA failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the network once on an input and compares its output with the expected one.
    Check {
        /// NAME.ptx; NAME.launch.json and NAME.weights lie beside it.
        ptx: PathBuf,
        /// The input, float32 .npy (all inputs back to back when the network has several).
        #[arg(long)]
        input: PathBuf,
        /// The output expected, float32 .npy, e.g. from `archc run --backend interp`.
        #[arg(long)]
        expected: PathBuf,
        /// Largest relative error accepted: max |output - expected| / max |expected|.
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f32,
        /// Print one JSON object: {"network", "batch", "device", "max_relative_error",
        /// "non_finite", "tolerance", "pass"}.
        #[arg(long)]
        json: bool,
    },
    /// Times the network's kernels: median and fastest of timed runs, by CUDA events.
    Bench {
        /// NAME.ptx; NAME.launch.json lies beside it. NAME.weights may be absent: then the
        /// weights are zeros (and so is the input), since a kernel takes as long whatever
        /// values it reads.
        ptx: PathBuf,
        /// Timed runs.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Untimed runs first.
        #[arg(long, default_value_t = 5)]
        warmup: u32,
        /// Launch the kernels one by one each run, instead of replaying them captured once
        /// in a CUDA graph.
        #[arg(long)]
        stream: bool,
        /// Print one JSON object: {"network", "batch", "device", "median_ms", "min_ms",
        /// "p90_ms", "runs", "warmup", "submit", "kernels", "macs"}.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed: what to say and the exit status.
struct Failure {
    message: String,
    status: u8,
}

impl From<cuda::Error> for Failure {
    fn from(e: cuda::Error) -> Failure {
        Failure { status: if e.is_bad_input() { 2 } else { 3 }, message: e.to_string() }
    }
}

fn bad_input(message: String) -> Failure {
    Failure { message, status: 2 }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Check { ptx, input, expected, tolerance, json } => {
            check(&ptx, &input, &expected, tolerance, json)
        }
        Command::Bench { ptx, runs, warmup, stream, json } => {
            let submit = if stream { Submit::Stream } else { Submit::Graph };
            bench(&ptx, runs as usize, warmup as usize, submit, json)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(f) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {}", f.message);
            }
            ExitCode::from(f.status)
        }
    }
}

/// Runs once and compares; `Ok(false)` when the error is over `tolerance`.
#[allow(clippy::print_stdout)]
fn check(ptx: &Path, input: &Path, expected: &Path, tolerance: f32, json: bool) -> Result<bool, Failure> {
    let files = Files::read(ptx)?;
    let x = read_npy(input, &files.plan.inputs)?;
    let y = read_npy(expected, &files.plan.outputs)?;
    let mut model = CudaModel::load(&files.ptx, &files.plan, &files.weights)?;
    let out = ir::Tensor::new(&y.shape, model.run(&x.data)?);
    // relative_error's max ignores NaN: count the non-finite outputs apart.
    let non_finite = out.data.iter().filter(|v| !v.is_finite()).count();
    let error = out.relative_error(&y);
    let pass = non_finite == 0 && error <= tolerance;
    if json {
        let row = serde_json::json!({
            "network": files.plan.network, "batch": batch(&files.plan), "device": model.device_name(),
            "max_relative_error": error, "non_finite": non_finite, "tolerance": tolerance, "pass": pass,
        });
        println!("{row}");
    } else {
        let verdict = if pass { "ok" } else { "FAILED" };
        println!(
            "{}: max relative error {error:.3e} (tolerance {tolerance:.0e}), {non_finite} non-finite outputs, on {}: {verdict}",
            ptx.display(),
            model.device_name()
        );
    }
    Ok(pass)
}

#[allow(clippy::print_stdout)]
fn bench(ptx: &Path, runs: usize, warmup: usize, submit: Submit, json: bool) -> Result<bool, Failure> {
    let files = Files::read_for_timing(ptx)?;
    let plan = &files.plan;
    let mut model = CudaModel::load(&files.ptx, plan, &files.weights)?;
    let input = vec![0.0; plan.inputs.iter().map(|s| s.iter().product::<usize>()).sum()];
    let mut ms = model.time(&input, warmup, runs, submit)?;
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let (median, min) = ((ms[(n - 1) / 2] + ms[n / 2]) / 2.0, ms[0]);
    let p90 = ms[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1];
    let batch = batch(plan);
    let submit = if submit == Submit::Graph { "graph" } else { "stream" };
    if json {
        let row = serde_json::json!({
            "network": plan.network, "batch": batch, "device": model.device_name(),
            "median_ms": median, "min_ms": min, "p90_ms": p90, "runs": runs, "warmup": warmup,
            "submit": submit, "kernels": plan.kernels.len(), "macs": plan.macs(),
        });
        println!("{row}");
    } else {
        println!(
            "{} (batch {batch}, {} kernels, {submit}) on {}: median {median:.3} ms, min {min:.3} ms, p90 {p90:.3} ms over {runs} runs",
            plan.network,
            plan.kernels.len(),
            model.device_name()
        );
    }
    Ok(true)
}

/// The batch size: the first input's outermost dimension.
fn batch(plan: &cuda::LaunchPlan) -> usize {
    plan.inputs.first().and_then(|s| s.first()).copied().unwrap_or(1)
}

/// Reads a float32 .npy that must hold `shapes`: exactly that shape for one tensor, or as
/// many floats as all of them for several.
fn read_npy(path: &Path, shapes: &[Vec<usize>]) -> Result<ir::Tensor, Failure> {
    let fail = |what: String| bad_input(format!("{}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| fail(format!("not a .npy file: {e}")))?;
    let f32_type = npyz::DType::new_scalar("<f4".parse().expect("a valid type string"));
    if npy.dtype() != f32_type || npy.order() != npyz::Order::C {
        let found = format!("{} in {:?} order", npy.dtype().descr(), npy.order());
        return Err(fail(format!("holds {found}; expected float32 ('<f4') in C order")));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = npy.into_vec().map_err(|e| fail(e.to_string()))?;
    let floats: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let fits = match shapes {
        [one] => shape == *one,
        _ => shape.iter().product::<usize>() == floats,
    };
    if !fits || data.len() != floats {
        return Err(fail(format!("shape {shape:?}; the network takes {}", describe(shapes))));
    }
    Ok(ir::Tensor::new(&shape, data))
}

fn describe(shapes: &[Vec<usize>]) -> String {
    match shapes {
        [one] => format!("{one:?}"),
        _ => format!("{shapes:?} back to back"),
    }
}
