//! `archc compile`: builds a network ahead of time into an executable, a C library, an
//! object, assembly or LLVM IR, for this machine or a cross target.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use codegen::aot::{self, Emit};

use super::{InputError, NetworkArgs};

/// What `--emit` accepts.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum EmitArg {
    /// A standalone executable with the weights inside: `OUT --input X.npy --output Y.npy`.
    Exe,
    /// A folder OUT with lib<name>.a, lib<name>.so and <name>.h.
    Lib,
    /// One relocatable object: network, weights and runtime.
    Obj,
    /// Optimized LLVM IR.
    LlvmIr,
    /// Assembly.
    Asm,
    /// PTX, for `--target cuda`: OUT.ptx, with OUT.launch.json (the launch plan) and
    /// OUT.weights (the weights blob) beside it.
    Ptx,
}

/// Flags of `archc compile`.
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
    /// The machine to compile for: a CPU, or `cuda` for an NVIDIA GPU (with `--emit ptx`).
    #[arg(long, default_value = "host", value_parser = clap::builder::PossibleValuesParser::new(codegen::TARGET_NAMES.into_iter().chain(["cuda"])))]
    target: String,
    /// The GPU architecture, for `--target cuda` (PTX for sm_80 also runs on later GPUs).
    #[arg(long, value_parser = codegen::gpu::ARCHS)]
    arch: Option<String>,
    /// The CPU model, for x86_64 targets: x86-64-v2, x86-64-v3 (the default of x86_64-linux-gnu)
    /// or x86-64-v4 (AVX-512).
    #[arg(long, value_parser = ["x86-64-v2", "x86-64-v3", "x86-64-v4"])]
    cpu: Option<String>,
    /// What to build.
    #[arg(long, value_enum, default_value = "exe")]
    emit: EmitArg,
    /// Where to write it (a folder for `--emit lib`).
    #[arg(short, long)]
    output: PathBuf,
}

/// Runs `archc compile`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let graph = args.network.build()?;
    let weights = args.weights.load(&graph)?;
    let opt = passes::optimize(&graph, &weights, args.level.level(), None);
    if (args.target == "cuda") != matches!(args.emit, EmitArg::Ptx) {
        return Err(InputError("`--target cuda` goes with `--emit ptx`, and only it".into()).into());
    }
    if args.target == "cuda" {
        return compile_ptx(args, &graph, &opt, start);
    }
    if args.arch.is_some() {
        return Err(InputError("`--arch` is for `--target cuda`; CPUs take `--cpu`".into()).into());
    }
    let emit = match args.emit {
        EmitArg::Ptx => unreachable!("PTX is compiled above"),
        EmitArg::Exe => Emit::Exe,
        EmitArg::Lib => Emit::Lib,
        EmitArg::Obj => Emit::Obj,
        EmitArg::LlvmIr => Emit::LlvmIr,
        EmitArg::Asm => Emit::Asm,
    };
    let mut target = codegen::Target::named(&args.target)?;
    if let Some(cpu) = &args.cpu {
        target = target.with_cpu(cpu).map_err(|e| InputError(e.to_string()))?;
    }
    let schedules = args.schedules.load_for(&target)?;
    let tuned = schedules.len();
    let options = aot::Options { target, llvm_level: 3, emit, schedules };
    let files = aot::build(&opt.graph, &opt.weights, &opt.plan, &options, &args.output)
        .with_context(|| format!("compiling {} for {}", graph.name(), options.target.triple))?;
    let mut out = std::io::stdout().lock();
    for file in &files {
        let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        writeln!(out, "wrote {} ({:.1} MB)", file.display(), bytes as f64 / 1e6)?;
    }
    writeln!(
        out,
        "compiled {} for {} in {:.2} s ({tuned} tuned schedules for its CPU in {})",
        graph.name(),
        options.target.triple,
        start.elapsed().as_secs_f64(),
        args.schedules.path().display()
    )?;
    Ok(())
}

/// `archc compile --target cuda --emit ptx`: the PTX module, its launch plan and weights.
fn compile_ptx(
    args: &Args,
    graph: &ir::Graph,
    opt: &passes::Optimized,
    start: Instant,
) -> anyhow::Result<()> {
    if args.cpu.is_some() {
        return Err(InputError("`--cpu` is for CPU targets; GPUs take `--arch`".into()).into());
    }
    if args.output.extension().is_none_or(|e| e != "ptx") {
        let message = format!("{}: the output of `--emit ptx` must end in .ptx", args.output.display());
        return Err(InputError(message).into());
    }
    let arch = args.arch.as_deref().unwrap_or(codegen::gpu::ARCHS[0]);
    let files = codegen::gpu::compile_ptx(&opt.graph, &opt.weights, &opt.plan, arch)
        .with_context(|| format!("compiling {} for {arch}", graph.name()))?;
    files.write(&args.output).with_context(|| format!("writing {}", args.output.display()))?;
    let mut out = std::io::stdout().lock();
    for file in cuda::paths(&args.output)? {
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        writeln!(out, "wrote {} ({:.1} MB)", file.display(), bytes as f64 / 1e6)?;
    }
    writeln!(
        out,
        "compiled {} for {arch}: {} kernels in {:.2} s",
        graph.name(),
        files.plan.kernels.len(),
        start.elapsed().as_secs_f64()
    )?;
    Ok(())
}
