//! `archc bench`: compiles a network for this CPU (or an NVIDIA GPU) and measures it with the
//! bench protocol.

use std::io::Write;

use anyhow::Context;

use super::NetworkArgs;

/// Flags of `archc bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    level: super::opt::LevelArg,
    #[command(flatten)]
    weights: super::WeightsArgs,
    #[command(flatten)]
    schedules: super::ScheduleArgs,
    /// Threads per run, the calling one included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Timed runs.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    runs: u32,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    /// Also print each kernel's time, MACs, GFLOP/s (and as a share of the FMA peak measured on
    /// one core) and share of the total.
    #[arg(long)]
    profile: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Where to run: this CPU, or an NVIDIA GPU (PTX through the CUDA driver; times by CUDA
    /// events around one replay of the launches captured as a CUDA graph).
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
}

/// What `--device` accepts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    /// This machine's CPU.
    Cpu,
    /// GPU 0, through the CUDA driver.
    Cuda,
}

/// Runs `archc bench`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let graph = args.network.build()?;
    let weights = args.weights.load(&graph)?;
    if args.device == Device::Cuda {
        return bench_cuda(args, &graph, &weights);
    }
    let schedules = args.schedules.load_for(&codegen::Target::host())?;
    let mut model = search::measure::compile_tuned(&graph, &weights, args.level.level(), &schedules)
        .with_context(|| format!("compiling {}", graph.name()))?;
    model.set_threads(args.threads as usize);
    let input = search::measure::input(&model);
    let timing = codegen::bench::measure(&mut model, &input, args.warmup as usize, args.runs as usize);
    let layers = codegen::bench::profile(&mut model, &input, (args.runs as usize).min(20));
    let peak = codegen::bench::fma_peak_gflops().context("measuring the FMA peak")?;
    let total: f64 = layers.iter().sum();
    let rows: Vec<serde_json::Value> = model
        .steps()
        .iter()
        .zip(&layers)
        .map(|(step, &ms)| {
            serde_json::json!({
                "name": step.name, "op": step.op, "median_ms": ms, "macs": step.macs,
                "gflops": gflops(step.macs, ms), "of_peak": gflops(step.macs, ms) / peak,
                "share": if total > 0.0 { ms / total } else { 0.0 },
            })
        })
        .collect();
    let batch = model.input_shape()[0];
    let macs: u64 = model.steps().iter().map(|s| s.macs).sum();
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "network": graph.name(), "median_ms": timing.median_ms, "min_ms": timing.min_ms,
            "p90_ms": timing.p90_ms, "runs": args.runs, "threads": args.threads, "batch": batch,
            "macs": macs, "compile_s": model.compile_time().as_secs_f64(), "fma_peak_gflops": peak,
            "tuned_schedules": schedules.len(),
            "layers": rows,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: batch {batch}, {} thread(s), {} runs: median {:.3} ms, min {:.3} ms, p90 {:.3} ms \
         ({:.1} GFLOP/s, {:.0}% of one core's FMA peak of {peak:.0}; compiled in {:.2} s, {} tuned schedules)",
        graph.name(),
        args.threads,
        args.runs,
        timing.median_ms,
        timing.min_ms,
        timing.p90_ms,
        gflops(macs, timing.median_ms),
        100.0 * gflops(macs, timing.median_ms) / peak,
        model.compile_time().as_secs_f64(),
        schedules.len()
    )?;
    if args.profile {
        writeln!(
            out,
            "{:<32} {:<28} {:>9} {:>13} {:>8} {:>6} {:>6}",
            "step", "op", "ms", "MACs", "GFLOP/s", "peak", "share"
        )?;
        for row in &rows {
            writeln!(
                out,
                "{:<32} {:<28} {:>9.4} {:>13} {:>8.1} {:>5.0}% {:>5.1}%",
                row["name"].as_str().unwrap_or(""),
                row["op"].as_str().unwrap_or(""),
                row["median_ms"].as_f64().unwrap_or(0.0),
                super::thousands(row["macs"].as_u64().unwrap_or(0)),
                row["gflops"].as_f64().unwrap_or(0.0),
                100.0 * row["of_peak"].as_f64().unwrap_or(0.0),
                100.0 * row["share"].as_f64().unwrap_or(0.0),
            )?;
        }
    }
    Ok(())
}

/// `archc bench --device cuda`: the same protocol on GPU 0.
fn bench_cuda(args: &Args, graph: &ir::Graph, weights: &ir::Weights) -> anyhow::Result<()> {
    if args.profile {
        return Err(super::InputError(
            "`--profile` times CPU kernels; it is not available with `--device cuda`".into(),
        )
        .into());
    }
    let start = std::time::Instant::now();
    let opt = passes::optimize(graph, weights, args.level.level(), None);
    let files = super::compile_for_gpu(graph.name(), &opt)?;
    let compile_s = start.elapsed().as_secs_f64();
    let mut model = cuda::CudaModel::load(&files.ptx, &files.plan, &files.weights)?;
    let input_shape = &files.plan.inputs[0];
    let input = search::measure::input_of_shape(input_shape);
    let ms = model.time(&input, args.warmup as usize, args.runs as usize, cuda::Submit::Graph)?;
    let timing = codegen::bench::Timing::of(
        &ms.iter().map(|&m| std::time::Duration::from_secs_f64(m / 1e3)).collect::<Vec<_>>(),
    );
    let (batch, macs) = (input_shape[0], files.plan.macs());
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "network": graph.name(), "median_ms": timing.median_ms, "min_ms": timing.min_ms,
            "p90_ms": timing.p90_ms, "runs": args.runs, "batch": batch, "macs": macs,
            "compile_s": compile_s, "device": model.device_name(), "kernels": files.plan.kernels.len(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} on {}: batch {batch}, {} kernels, {} runs: median {:.3} ms, min {:.3} ms, p90 {:.3} ms ({:.1} GFLOP/s)",
        graph.name(),
        model.device_name(),
        files.plan.kernels.len(),
        args.runs,
        timing.median_ms,
        timing.min_ms,
        timing.p90_ms,
        gflops(macs, timing.median_ms),
    )?;
    Ok(())
}

/// Billions of floating-point operations (two per multiply-add) per second.
fn gflops(macs: u64, ms: f64) -> f64 {
    if ms > 0.0 { 2.0 * macs as f64 / (ms * 1e6) } else { 0.0 }
}
