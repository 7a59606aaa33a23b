//! `archc run`: runs a network on an `.npy` input and writes its output as `.npy`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{InputError, NetworkArgs};

/// Where the network runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Backend {
    /// The reference interpreter, `ir::eval`: slow and obviously correct.
    Interp,
    /// Native code for this CPU, compiled through LLVM.
    Cpu,
    /// An NVIDIA GPU: PTX compiled through LLVM, run through the CUDA driver.
    Cuda,
}

/// Flags of `archc run`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    weights: super::WeightsArgs,
    /// Input array: f32, NCHW; its first axis is the batch size.
    #[arg(long)]
    input: PathBuf,
    /// Output array to write.
    #[arg(long)]
    output: PathBuf,
    /// Also print the K highest-scoring classes of each batch item.
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// Where to run.
    #[arg(long, visible_alias = "device", value_enum, default_value = "interp")]
    backend: Backend,
    /// Threads of the `cpu` backend, the calling one included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    #[command(flatten)]
    level: super::opt::LevelArg,
}

/// Runs `archc run`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let input = crate::npy::read(&args.input)?;
    if input.shape.len() != 4 || input.shape[0] == 0 {
        return Err(InputError(format!(
            "{}: shape {:?} is not an NCHW batch",
            args.input.display(),
            input.shape
        ))
        .into());
    }
    let graph = args.network.build_with_batch(input.shape[0])?;
    let expected = graph.node(graph.inputs()[0]).outputs[0].dims();
    if input.shape != expected {
        let message = format!("input `input` must have shape {expected:?}, got {:?}", input.shape);
        return Err(
            anyhow::Error::new(ir::Error::Input { message }).context(format!("running {}", graph.name()))
        );
    }
    let weights = args.weights.load(&graph)?;
    let opt = passes::optimize(&graph, &weights, args.level.level(), None);
    let output = match args.backend {
        Backend::Interp => ir::eval::eval(&opt.graph, &opt.weights, std::slice::from_ref(&input))
            .with_context(|| format!("running {} on {}", graph.name(), args.input.display()))?
            .remove(0),
        Backend::Cpu => {
            let mut model = codegen::CompiledModel::compile(&opt.graph, &opt.weights, &opt.plan, 3)
                .with_context(|| format!("compiling {}", graph.name()))?;
            model.set_threads(args.threads as usize);
            let shape = opt.graph.shape(opt.graph.outputs()[0]).dims().to_vec();
            ir::Tensor::new(&shape, model.run(&input.data))
        }
        Backend::Cuda => {
            let files = super::compile_for_gpu(graph.name(), &opt)?;
            let mut model = cuda::CudaModel::load(&files.ptx, &files.plan, &files.weights)?;
            let shape = opt.graph.shape(opt.graph.outputs()[0]).dims().to_vec();
            ir::Tensor::new(&shape, model.run(&input.data)?)
        }
    };
    crate::npy::write(&args.output, &output)?;
    if let Some(k) = args.top {
        print_top(&output, k)?;
    }
    Ok(())
}

/// Prints the `k` largest scores of each row of a `[n, classes]` output.
fn print_top(output: &ir::Tensor, k: usize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let classes = output.numel() / output.shape[0];
    for (item, row) in output.data.chunks(classes).enumerate() {
        let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> = ranked.iter().take(k).map(|(c, s)| format!("{c} ({s:.4})")).collect();
        writeln!(out, "item {item}: {}", top.join(", "))?;
    }
    Ok(())
}
