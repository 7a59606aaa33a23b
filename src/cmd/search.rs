//! `archc search`: find the networks of a search space on the speed/accuracy front of this
//! machine, each scored by its measured latency and its accuracy after training; and
//! `archc search-worker`, the process that evaluates one network for it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use search::candidate::LatencyProtocol;
use search::driver::{Settings, Status, Summary, search};
use search::space::{Space, parse_duration};
use search::strategy::StrategyKind;

/// `archc search SPACE.ron`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The search space (e.g. zoo/spaces/shufflenet_v2_mnist.ron).
    space: PathBuf,
    /// The data (as for `archc train`); default: the space's.
    #[arg(long, value_name = "SPEC")]
    data: Option<String>,
    /// Train/validation split (as for `archc train`); default: the space's.
    #[arg(long)]
    split: Option<String>,
    /// Wall time for the whole search, final training included: 90s, 10m, 1h30m; default: the space's.
    #[arg(long, value_parser = parse_duration)]
    budget: Option<Duration>,
    /// Stop proposing after this many candidates.
    #[arg(long, value_name = "N")]
    max_candidates: Option<usize>,
    /// random, evolution[:POPULATION[:SAMPLE]] or nsga2[:POPULATION].
    #[arg(long, default_value = "nsga2")]
    strategy: StrategyKind,
    /// Seed of the strategy.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Candidates slower than this (median, batch 1) are infeasible.
    #[arg(long, value_name = "MS")]
    max_latency_ms: Option<f64>,
    /// Candidates with more parameters are infeasible.
    #[arg(long, value_name = "N")]
    max_params: Option<u64>,
    /// Epochs of every candidate's training; default: the space's.
    #[arg(long)]
    epochs: Option<usize>,
    /// Epochs of the final training of the best candidates and the baselines (0: none); default: the space's.
    #[arg(long)]
    long_epochs: Option<usize>,
    /// How many candidates on or near the front get the final training.
    #[arg(long, default_value_t = 3)]
    finalists: usize,
    /// Threads of each latency measurement (batch 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    latency_threads: u64,
    /// Evaluations at a time (default: one per CPU; compiles are single-threaded).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: Option<u64>,
    /// Training threads of each evaluation.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
    /// Time limit of one evaluation; a candidate past it is recorded as failed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    candidate_timeout: Duration,
    /// Output folder: journal, front.json, candidates.jsonl, front.svg, report.html, front/*.ron.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Where evaluations run: `local` (worker processes here) or `ray` (tasks on a Ray cluster).
    #[arg(long, default_value = "local", value_parser = ["local", "ray"])]
    executor: String,
    /// The Ray cluster's address (`ray start --head` prints it); without, a local one is started.
    #[arg(long, value_name = "ADDR")]
    ray_address: Option<String>,
    /// With Ray: the custom resource of the nodes that measure latencies (`ray start --resources '{"NAME": 1}'`).
    #[arg(long, value_name = "NAME")]
    target_resource: Option<String>,
    /// Continue the search journalled in the output folder.
    #[arg(long)]
    resume: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `archc search-worker`: reads one request on stdin, answers on stdout.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let space = Space::load(&args.space)?;
    let defaults = space.defaults();
    let mut recipe = defaults.recipe.clone();
    if let Some(epochs) = args.epochs {
        recipe.epochs = epochs;
    }
    let data =
        args.data.clone().or_else(|| defaults.data.clone()).ok_or_else(|| {
            super::InputError(format!("{} names no data: give --data", args.space.display()))
        })?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = Settings {
        strategy: args.strategy,
        seed: args.seed,
        budget: args.budget.unwrap_or(defaults.budget),
        max_candidates: args.max_candidates,
        data,
        split: args.split.clone().or_else(|| defaults.split.clone()),
        recipe,
        long_epochs: args.long_epochs.unwrap_or(defaults.long_epochs),
        finalists: args.finalists,
        latency: LatencyProtocol { threads: args.latency_threads as usize, warmup: 10, runs: 50 },
        max_latency_ms: args.max_latency_ms,
        max_params: args.max_params,
        jobs: args.jobs.map_or(cpus, |j| j as usize),
        threads: args.threads as usize,
        limit: args.candidate_timeout,
        worker: worker_command()?,
        out: args.out.clone().unwrap_or_else(|| PathBuf::from("archc-search").join(space.name())),
        ray: (args.executor == "ray").then(|| search::ray::RayOptions {
            // The interpreter that has `ray` installed.
            python: std::env::var("ARCHC_PYTHON").unwrap_or_else(|_| "python3".into()),
            address: args.ray_address.clone(),
            target_resource: args.target_resource.clone(),
        }),
        resume: args.resume,
    };
    // The data is checked here, once, rather than failing every candidate.
    let spec: search::data::DataSpec = settings.data.parse()?;
    let split = settings.split.as_deref().map(str::parse::<search::data::Split>).transpose()?;
    let (_, validation) = search::data::Dataset::train_and_validation(&spec, split)?;
    if validation.is_none() {
        return Err(super::InputError(format!(
            "{} has no test part to validate on: give --split",
            settings.data
        ))
        .into());
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(250));
    let summary = search(&space, &settings, &mut |status| bar.set_message(progress(status)))
        .with_context(|| format!("searching {}", args.space.display()))?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        print_summary(&mut out, &summary, &settings)?;
    }
    Ok(())
}

pub fn run_worker(_: &WorkerArgs) -> anyhow::Result<()> {
    // A worker outlives no driver: one killed with kill -9 must not leave training running.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    let stdin = std::io::stdin();
    search::worker::serve(&mut stdin.lock(), &mut std::io::stdout().lock())?;
    Ok(())
}

/// The worker program: this executable, unless `ARCHC_SEARCH_WORKER` names another command
/// (a wrapper that runs it elsewhere, or a test's stand-in).
fn worker_command() -> anyhow::Result<Vec<String>> {
    if let Ok(command) = std::env::var("ARCHC_SEARCH_WORKER") {
        return Ok(command.split_whitespace().map(String::from).collect());
    }
    let exe = std::env::current_exe().context("finding archc's own executable")?;
    Ok(vec![exe.display().to_string(), "search-worker".into()])
}

fn progress(s: &Status) -> String {
    let minutes = |d: Duration| format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60);
    let best = s.best_accuracy.map_or_else(|| "-".into(), |a| format!("{:.1}%", 100.0 * a));
    format!(
        "{}: {} candidates ({} failed), best {best}, front {}, {} of {} (about {} left)",
        s.phase,
        s.done,
        s.failed,
        s.front,
        minutes(s.elapsed),
        minutes(s.budget),
        minutes(s.budget.saturating_sub(s.elapsed))
    )
}

fn print_summary(out: &mut dyn Write, summary: &Summary, settings: &Settings) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} candidates ({} failed) in {:.0} s; the front, fastest first:",
        summary.candidates, summary.failed, summary.elapsed_s
    )?;
    writeln!(
        out,
        "{:<28} {:>11} {:>9} {:>10} {:>12}",
        "network", "latency ms", "accuracy", "params", "MACs"
    )?;
    let line = |out: &mut dyn Write, m: &search::report::Row, name: &str| {
        writeln!(
            out,
            "{:<28} {:>11.3} {:>8.1}% {:>10} {:>12}",
            name,
            m.latency_ms,
            100.0 * m.accuracy,
            super::thousands(m.params),
            super::thousands(m.macs)
        )
    };
    for m in &summary.front {
        line(out, m, m.file.as_deref().unwrap_or(&m.name))?;
    }
    if !summary.baselines.is_empty() {
        writeln!(out, "baselines:")?;
        for m in &summary.baselines {
            line(out, m, &m.name)?;
        }
    }
    for b in &summary.beats {
        writeln!(
            out,
            "{} is {:.2}x the latency of {} and {:+.1} points as accurate",
            b.network,
            b.latency_ratio,
            b.baseline,
            100.0 * b.accuracy_gain
        )?;
    }
    writeln!(out, "report: {}", settings.out.join("report.html").display())?;
    Ok(())
}
