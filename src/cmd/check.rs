//! `archc check`: builds a network and prints its per-layer costs and totals.

use std::io::Write;

use super::{NetworkArgs, thousands};

/// Flags of `archc check`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `archc check`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let graph = args.network.build()?;
    let m = ir::metrics::metrics(&graph);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &m)?;
        writeln!(out)?;
        return Ok(());
    }
    let name_width = m.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).max(5);
    writeln!(
        out,
        "{:<name_width$}  {:<16} {:<20} {:>15} {:>11} {:>15}",
        "layer", "op", "output", "MACs", "params", "memory bytes"
    )?;
    for l in &m.layers {
        let shape = format!("{:?}", l.shape);
        writeln!(
            out,
            "{:<name_width$}  {:<16} {:<20} {:>15} {:>11} {:>15}",
            l.name,
            l.op,
            shape,
            thousands(l.macs),
            thousands(l.params),
            thousands(l.memory_access_bytes)
        )?;
    }
    let t = &m.totals;
    writeln!(out)?;
    writeln!(out, "network             {}", m.name)?;
    writeln!(out, "MACs                {}", thousands(t.macs))?;
    writeln!(out, "params              {}", thousands(t.params))?;
    writeln!(out, "memory access       {} bytes", thousands(t.memory_access_bytes))?;
    writeln!(out, "activations         {} bytes", thousands(t.activation_bytes))?;
    writeln!(out, "fragments (G3)      {}", t.fragments)?;
    writeln!(out, "element-wise (G4)   {}", t.elementwise_ops)?;
    Ok(())
}
