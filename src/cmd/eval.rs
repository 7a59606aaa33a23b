//! `archc eval`: the accuracy of a network's weights on a data set, measured by the compiled
//! network.

use std::io::Write;

use super::NetworkArgs;
use super::data::DataArgs;

/// Flags of `archc eval`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    weights: super::WeightsArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Threads of the compiled network.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Print JSON: {"top1", "top5", "loss", "samples"} (accuracies as fractions).
    #[arg(long)]
    json: bool,
}

/// Runs `archc eval`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let data = args.data.evaluation()?;
    let graph = args.network.build()?;
    let weights = args.weights.load(&graph)?;
    let network = |batch: usize| args.network.build_graph(batch);
    let accuracy = search::evaluate::evaluate(
        &network,
        &weights,
        &data,
        args.network.batch as usize,
        args.threads as usize,
    )?;
    let mut out = std::io::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&accuracy)?)?;
    } else {
        writeln!(out, "top-1     {:.2}%", 100.0 * accuracy.top1)?;
        if let Some(top5) = accuracy.top5 {
            writeln!(out, "top-5     {:.2}%", 100.0 * top5)?;
        }
        writeln!(out, "loss      {:.4}", accuracy.loss)?;
        writeln!(out, "samples   {}", accuracy.samples)?;
    }
    Ok(())
}
