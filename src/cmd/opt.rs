//! `archc opt`: runs an optimization pipeline and shows the result and what it took.

use std::collections::BTreeMap;
use std::io::Write;

use super::NetworkArgs;

/// Flags of `archc opt`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    level: LevelArg,
    #[command(flatten)]
    weights: super::WeightsArgs,
    /// Print the optimized graph.
    #[arg(long)]
    print: bool,
    /// Print how often each rewrite rule applied.
    #[arg(long)]
    stats: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Stop after the pass of this name (to bisect a miscompile).
    #[arg(long, value_name = "PASS")]
    stop_after: Option<String>,
}

/// `-O0`, `-O1` or `-O2`.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct LevelArg {
    /// Optimization level: 0 (none), 1 (folding, fusion), 2 (everything).
    #[arg(short = 'O', value_name = "LEVEL", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    level: u8,
}

impl LevelArg {
    /// The level chosen.
    pub fn level(&self) -> passes::Level {
        match self.level {
            0 => passes::Level::O0,
            1 => passes::Level::O1,
            _ => passes::Level::O2,
        }
    }
}

/// Runs `archc opt`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let graph = args.network.build()?;
    let weights = args.weights.load(&graph)?;
    let level = args.level.level();
    if let Some(name) = &args.stop_after
        && !passes::pipeline(level).iter().any(|(n, _)| n == name)
    {
        let names: Vec<&str> = passes::pipeline(level).iter().map(|(n, _)| *n).collect();
        return Err(super::InputError(format!(
            "no pass `{name}` at -O{}; its passes are: {}",
            args.level.level,
            names.join(", ")
        ))
        .into());
    }
    let started = std::time::Instant::now();
    let opt = passes::optimize(&graph, &weights, level, args.stop_after.as_deref());
    let seconds = started.elapsed().as_secs_f64();
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for id in opt.graph.node_ids() {
        *ops.entry(opt.graph.node(id).op.name()).or_insert(0) += 1;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "name": graph.name(),
            "level": format!("-O{}", args.level.level),
            "nodes_before": graph.len(),
            "nodes_after": opt.graph.len(),
            "ops": ops,
            "moved_bytes": opt.plan.moved_bytes,
            "peak_activation_bytes": opt.plan.peak_bytes,
            "in_place": opt.plan.in_place,
            "passes": opt.passes.iter().map(|(n, c)| serde_json::json!({"name": n, "changed": c})).collect::<Vec<_>>(),
            "eqsat": opt.eqsat,
            "seconds": seconds,
        });
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(());
    }
    if args.print {
        write!(out, "{}", ir::print::to_text(&opt.graph))?;
    }
    if args.stats
        && let Some(report) = &opt.eqsat
    {
        writeln!(out, "{:<28} {:>8}", "rule", "applied")?;
        for (rule, n) in &report.applied {
            writeln!(out, "{rule:<28} {n:>8}")?;
        }
        writeln!(
            out,
            "saturation: {} after {} iterations, {} e-nodes in {} e-classes",
            report.stop_reason, report.iterations, report.egraph_nodes, report.egraph_classes
        )?;
    }
    if !args.print || args.stats {
        let summary: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
        writeln!(
            out,
            "{} at -O{}: {} nodes -> {}",
            graph.name(),
            args.level.level,
            graph.len(),
            opt.graph.len()
        )?;
        writeln!(out, "ops: {}", summary.join(", "))?;
        writeln!(out, "moved bytes: {}", super::thousands(opt.plan.moved_bytes))?;
        writeln!(out, "peak activation bytes: {}", super::thousands(opt.plan.peak_bytes as u64))?;
        writeln!(out, "optimized in {:.3} s", seconds)?;
    }
    Ok(())
}
