//! `archc graph`: prints a network's graph as text IR or Graphviz DOT.

use std::io::Write;

use super::NetworkArgs;

/// Output formats of `archc graph`.
#[derive(clap::ValueEnum, Clone, Copy)]
enum Format {
    /// The deterministic text IR.
    Text,
    /// Graphviz DOT.
    Dot,
}

/// Flags of `archc graph`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Runs `archc graph`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let graph = args.network.build()?;
    let text = match args.format {
        Format::Text => ir::print::to_text(&graph),
        Format::Dot => ir::print::to_dot(&graph),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
