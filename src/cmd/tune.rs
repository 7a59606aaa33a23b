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
    /// Thread counts to time each candidate on, the calling one included, comma-separated
    /// [default: 1,2, or 1 on a one-core machine]. Choices on one thread serve runs on one;
    /// those on the fewest above one serve runs on several, where they differ.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Vec<u32>,
    /// Turns in which every candidate of a convolution is timed once more.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// Print every candidate's median under its convolution, not only the choice.
    #[arg(long)]
    all: bool,
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts: Vec<usize> = match args.threads.is_empty() {
        true => vec![1, 2].into_iter().filter(|&t| t <= cores).collect(),
        false => args.threads.iter().map(|&t| t as usize).collect(),
    };
    counts.sort_unstable();
    counts.dedup();
    for threads in counts {
        let options = codegen::tune::Options {
            threads,
            rounds: args.rounds as usize,
            ..codegen::tune::Options::default()
        };
        tune_on(&graph, &opt.graph, &target, &options, args.all, &mut cache)?;
        // Written after each count: minutes of timing survive an interrupted later one.
        cache.save(&path).with_context(|| format!("writing {}", path.display()))?;
    }
    writeln!(std::io::stdout(), "wrote {}", path.display())?;
    Ok(())
}

/// Tunes `optimized` (the network `graph` after its passes) on `options.threads` threads,
/// prints a table of the choices (with `all`, every candidate's median under each) and records
/// them in `cache`.
fn tune_on(
    graph: &ir::Graph,
    optimized: &ir::Graph,
    target: &codegen::Target,
    options: &codegen::tune::Options,
    all: bool,
    cache: &mut codegen::schedule::Cache,
) -> anyhow::Result<()> {
    let mut err = std::io::stderr();
    let tuned = codegen::tune::tune(optimized, target, options, &mut |done, total, key| {
        // Progress only; a closed stderr must not stop the tuning.
        let _ = writeln!(err, "[{}/{total}] {key}", done + 1);
    })
    .with_context(|| format!("tuning {}", graph.name()))?;
    let cpu = codegen::schedule::cpu_name(target);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<56} {:>10} {:>10} {:>7}  chosen", "convolution", "default ms", "chosen ms", "gain")?;
    let kept_note =
        format!(" (recorded before, within {}% of the fastest)", codegen::tune::KEEP_WITHIN * 100.0);
    let mut chosen_ms = 0.0;
    for t in &tuned {
        // A recorded choice stays on a near tie (see KEEP_WITHIN): on several threads the
        // one-thread choice, so that a step holds a second kernel only where it measurably
        // pays (on two threads these timings scatter more, and near ties flip between
        // tunings); on one thread the choice recorded before.
        let recorded = [1, options.threads]
            .iter()
            .find_map(|&threads| cache.entry(&cpu, &t.kernel, threads))
            .map(|e| e.schedule);
        let (choice, ms) = t.choice(recorded);
        chosen_ms += ms;
        writeln!(
            out,
            "{:<56} {:>10.4} {:>10.4} {:>6.2}x  {}{}",
            t.kernel,
            t.default_ms(),
            ms,
            t.default_ms() / ms,
            describe(&choice),
            if choice == t.best().0 { "" } else { &kept_note },
        )?;
        for (candidate, ms) in t.times.iter().filter(|_| all) {
            writeln!(
                out,
                "  {:<54} {:>10.4} {:>10} {:>6.2}x",
                describe(candidate),
                ms,
                "",
                t.default_ms() / ms
            )?;
        }
        cache.record(codegen::schedule::Entry {
            cpu: cpu.clone(),
            kernel: t.kernel.clone(),
            schedule: choice,
            threads: options.threads,
            median_ms: ms,
            default_ms: t.default_ms(),
        });
    }
    let default: f64 = tuned.iter().map(|t| t.default_ms()).sum();
    writeln!(
        out,
        "{} convolutions of {} tuned for {cpu} on {} thread(s): {default:.3} -> {chosen_ms:.3} ms summed once each",
        tuned.len(),
        graph.name(),
        options.threads,
    )?;
    Ok(())
}

/// A schedule as the table names it: `tile 9x3, Streamed sweep[, no winograd]`.
fn describe(s: &codegen::schedule::Schedule) -> String {
    let winograd = if s.winograd { "" } else { ", no winograd" };
    format!("tile {}x{}, {:?} sweep{winograd}", s.tile[0], s.tile[1], s.sweep)
}
