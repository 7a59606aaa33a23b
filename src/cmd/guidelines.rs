//! `archc guidelines`: the ShuffleNet V2 paper's four guideline experiments (Tables 1-4) and
//! its Figure-1 comparison, measured on this machine and printed beside the paper's numbers.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use search::guidelines::{self, Platform, jobs, plot, text};
use search::measure::Protocol;

use super::InputError;

/// Flags of `archc guidelines`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to measure: this machine's CPU, or an NVIDIA GPU (not yet: see `archc bench --device cuda`).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// Threads per run, the calling one included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Fewer runs per network, and of Table 8 only the ~140M networks: under two minutes.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
    /// Folder for speed_vs_macs.svg (made if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Build the experiments with the channels the paper used on its GPU or on its ARM CPU
    /// [default: arm on cpu].
    #[arg(long, value_enum)]
    shapes: Option<Shapes>,
    /// The zoo folder (the experiments are its `guidelines/` networks).
    #[arg(long, value_name = "DIR", default_value = "zoo")]
    zoo: PathBuf,
    /// Timed runs per network instead of the mode's (tests make runs short).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    runs: Option<u32>,
    /// Input resolution of every network instead of its own (tests make networks small).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(8..=4096))]
    resolution: Option<u32>,
    /// Blocks per guideline network instead of the paper's 10 (tests make compiling quick).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    blocks: Option<u32>,
}

/// Where the networks run.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Device {
    /// This machine's CPU.
    Cpu,
    /// An NVIDIA GPU.
    Cuda,
}

/// Whose channel counts the experiments are built with.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Shapes {
    /// The paper's GTX 1080Ti channels (the zoo networks' own widths).
    Gpu,
    /// The paper's Snapdragon 810 channels (half or a quarter of the GPU's in Tables 1-3).
    Arm,
}

/// How much a run measures.
struct Mode {
    name: &'static str,
    /// Untimed runs of a network at the start of each round.
    warmup: u32,
    /// Timed runs of a network, over all rounds.
    runs: u32,
    rounds: u32,
    /// The one Table-8 complexity class measured, or all of them.
    models: Option<&'static str>,
}

/// 85 s on a busy 2-core machine: compiling the 55 networks (in parallel) takes about half of
/// it, timing the other half.
const QUICK: Mode = Mode { name: "quick", warmup: 1, runs: 12, rounds: 3, models: Some("~140M") };

/// `archc bench`'s 50 timed runs, and all sixteen Table-8 networks: about three minutes.
const FULL: Mode = Mode { name: "full", warmup: 2, runs: 50, rounds: 5, models: None };

/// Runs `archc guidelines`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.device == Device::Cuda {
        let message = "--device cuda: the guideline experiments are timed on the CPU only so far \
                       (`archc bench --device cuda` times one network on a GPU); measure with --device cpu";
        return Err(InputError(message.into()).into());
    }
    let start = Instant::now();
    let paper = guidelines::Paper::builtin()?;
    let shapes = match args.shapes {
        Some(Shapes::Gpu) => Platform::Gpu,
        // The paper's CPU experiment is the comparable one on a CPU.
        Some(Shapes::Arm) | None => Platform::Arm,
    };
    let mode = if args.quick { QUICK } else { FULL };
    let protocol = Protocol {
        threads: args.threads as usize,
        warmup: mode.warmup as usize,
        runs: args.runs.unwrap_or(mode.runs) as usize,
        rounds: mode.rounds as usize,
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| InputError(format!("--out {}: {e}", args.out.display())))?;
    let work = work(args, &paper, shapes, &mode);
    #[allow(clippy::print_stderr)]
    let measured = {
        eprintln!("compiling {} networks", work.len());
        let rounds = protocol.rounds;
        let measured = guidelines::run::measure(&work, &protocol, |r| {
            eprintln!("timing round {} of {rounds}: every network in turn", r + 1);
        })?;
        for (job, m) in work.iter().filter_map(|job| Some((job, measured.get(&job.subject)?))) {
            eprintln!(
                "{:<28} {:>10.3} ms  (compiled in {:.1} s)",
                job.label, m.timing.median_ms, m.compile_s
            );
        }
        measured
    };
    let report = guidelines::report(&paper, shapes, &measured)?;
    let svg = args.out.join("speed_vs_macs.svg");
    plot::speed_vs_macs(&report.models, &svg)?;
    let run = Run {
        machine: search::fingerprint().to_string(),
        device: "cpu",
        mode: mode.name,
        threads: protocol.threads,
        warmup: protocol.warmup,
        runs: protocol.runs,
        rounds: protocol.rounds,
        batch: 1,
        resolution: args.resolution,
        blocks: args.blocks,
        paper: &paper.source,
        paper_gpu: &paper.gpu,
        paper_arm: &paper.arm,
        margin: guidelines::verdict::MARGIN,
        report: &report,
        fastest: guidelines::figure::fastest(&report.models),
        svg: svg.display().to_string(),
        wall_s: start.elapsed().as_secs_f64(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&run)?)?;
    } else {
        write!(out, "{}", render(&run))?;
    }
    Ok(())
}

/// The jobs of a run: every experiment cell, and the mode's Table-8 networks.
fn work(args: &Args, paper: &guidelines::Paper, shapes: Platform, mode: &Mode) -> Vec<guidelines::Job> {
    let resolution: Vec<(String, String)> =
        args.resolution.iter().map(|px| ("resolution".to_string(), px.to_string())).collect();
    // Only the guideline networks have a `blocks` parameter.
    let blocks = args.blocks.iter().map(|n| ("blocks".to_string(), n.to_string()));
    let small: Vec<(String, String)> = resolution.iter().cloned().chain(blocks).collect();
    let mut work = jobs::experiment_jobs(paper, &args.zoo, shapes, &small);
    work.extend(jobs::model_jobs(paper, &args.zoo, mode.models, &resolution));
    work
}

/// A run as `--json` prints it: its conditions, then the report's fields.
#[derive(serde::Serialize)]
struct Run<'a> {
    machine: String,
    device: &'static str,
    mode: &'static str,
    threads: usize,
    warmup: usize,
    runs: usize,
    rounds: usize,
    batch: usize,
    resolution: Option<u32>,
    blocks: Option<u32>,
    paper: &'a str,
    paper_gpu: &'a str,
    paper_arm: &'a str,
    margin: f64,
    #[serde(flatten)]
    report: &'a guidelines::Report,
    fastest: Vec<guidelines::figure::Fastest>,
    svg: String,
    wall_s: f64,
}

/// The run as text: what was measured and how, the four tables, the Figure-1 table.
fn render(run: &Run) -> String {
    let quick = if run.mode == QUICK.name {
        format!(
            "; of Table 8 only the ~140M networks (full: {} runs in {} rounds, all of its networks)",
            FULL.runs, FULL.rounds
        )
    } else {
        String::new()
    };
    let platform = match run.report.shapes {
        Platform::Gpu => "GPU",
        Platform::Arm => "ARM CPU",
    };
    let mut s = format!(
        "The ShuffleNet V2 guidelines ({}) on {}\n\
         {} run: {} timed runs per network in {} rounds (each network in turn, {} warm-up run(s) first), \
         {} thread(s), batch {}{quick}\n\
         Built with the channels the paper used on its {platform}. Per width: images/s here and, in \
         brackets, relative to the first row; GPU and ARM: the paper's speeds relative to the first row.\n\n",
        run.paper, run.machine, run.mode, run.runs, run.rounds, run.warmup, run.threads, run.batch
    );
    for table in &run.report.tables {
        s += &text::table(table);
        s.push('\n');
    }
    s += &text::figure(&run.report.models);
    s += &format!("\nWrote {}; measured in {:.0} s.\n", run.svg, run.wall_s);
    s
}
