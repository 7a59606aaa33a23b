//! `archc tune`: times every candidate schedule of each convolution of a network on this
//! machine and records the fastest in the schedule cache that `compile` and `bench` read (a
//! schedule recorded before stays while it measures within `KEEP_WITHIN` of the fastest).

use std::io::Write;

use anyhow::Context;

use super::{NetworkArgs, ScheduleArgs};

/// Flags of `archc tune`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    level: super::opt::LevelArg,
    #[command(flatten)]
    schedules: ScheduleArgs,
    /// Threads each candidate runs on, the calling one included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Turns in which every candidate of a convolution is timed once more.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
}

/// Runs `archc tune`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let graph = args.network.build()?;
    let weights = ir::Weights::seeded(&graph, 0);
    let opt = passes::optimize(&graph, &weights, args.level.level(), None);
    let target = codegen::Target::host();
    let path = args.schedules.path();
    // Read first: a malformed cache stops before minutes of timing.
    let mut cache = codegen::schedule::Cache::load(&path)?;
    let options = codegen::tune::Options {
        threads: args.threads as usize,
        rounds: args.rounds as usize,
        ..codegen::tune::Options::default()
    };
    let mut err = std::io::stderr();
    let tuned = codegen::tune::tune(&opt.graph, &target, &options, &mut |done, total, key| {
        // Progress only; a closed stderr must not stop the tuning.
        let _ = writeln!(err, "[{}/{total}] {key}", done + 1);
    })
    .with_context(|| format!("tuning {}", graph.name()))?;
    let cpu = codegen::schedule::cpu_name(&target);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<56} {:>10} {:>10} {:>7}  chosen", "convolution", "default ms", "chosen ms", "gain")?;
    let kept_note =
        format!(" (recorded before, within {}% of the fastest)", codegen::tune::KEEP_WITHIN * 100.0);
    let mut chosen_ms = 0.0;
    for t in &tuned {
        // A choice recorded with the same threads stays on a near tie (see KEEP_WITHIN).
        let recorded =
            cache.entry(&cpu, &t.kernel).filter(|e| e.threads == options.threads).map(|e| e.schedule);
        let (choice, ms) = t.choice(recorded);
        chosen_ms += ms;
        writeln!(
            out,
            "{:<56} {:>10.4} {:>10.4} {:>6.2}x  tile {}x{}, {:?} sweep{}{}",
            t.kernel,
            t.default_ms(),
            ms,
            t.default_ms() / ms,
            choice.tile[0],
            choice.tile[1],
            choice.sweep,
            if choice.winograd { "" } else { ", no winograd" },
            if choice == t.best().0 { "" } else { &kept_note },
        )?;
        cache.record(codegen::schedule::Entry {
            cpu: cpu.clone(),
            kernel: t.kernel.clone(),
            schedule: choice,
            threads: options.threads,
            median_ms: ms,
            default_ms: t.default_ms(),
        });
    }
    cache.save(&path).with_context(|| format!("writing {}", path.display()))?;
    let default: f64 = tuned.iter().map(|t| t.default_ms()).sum();
    writeln!(
        out,
        "{} convolutions of {} tuned for {cpu} on {} thread(s): {default:.3} -> {chosen_ms:.3} ms summed once each; wrote {}",
        tuned.len(),
        graph.name(),
        options.threads,
        path.display()
    )?;
    Ok(())
}
