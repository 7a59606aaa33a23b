//! `archc`: the command line over the archc libraries. The only code that prints.

mod cmd;
mod npy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Architecture exploration and model compilation for efficient CNNs.
#[derive(Parser)]
#[command(name = "archc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a network for this CPU and measure its latency (median, min, p90; per kernel with --profile).
    Bench(cmd::bench::Args),
    /// Build a network, check its shapes, and print per-layer costs and totals.
    Check(cmd::check::Args),
    /// Compile a network ahead of time: executable, C library, object, assembly or LLVM IR.
    Compile(cmd::compile::Args),
    /// Measure a network's accuracy on a data set (compiled, batch norm in inference mode).
    Eval(cmd::eval::Args),
    /// Print a network's graph as text IR or Graphviz DOT.
    Graph(cmd::graph::Args),
    /// Measure the ShuffleNet V2 paper's four guideline experiments and its Figure-1 networks here, beside the paper's numbers.
    Guidelines(cmd::guidelines::Args),
    /// Optimize a network and show the result: ops left, bytes moved, peak memory, rule statistics.
    Opt(cmd::opt::Args),
    /// Run a network on an input array and write its output array.
    Run(cmd::run::Args),
    /// Search a space for the networks on this machine's speed/accuracy front (measured latency, trained accuracy).
    Search(cmd::search::Args),
    /// Evaluate one network for `archc search` (a request on stdin, messages on stdout).
    #[command(hide = true)]
    SearchWorker(cmd::search::WorkerArgs),
    /// Train a network with its compiled training step; write the weights as safetensors.
    Train(cmd::train::Args),
    /// Time each convolution's candidate schedules on this machine and cache the fastest for compile and bench
    /// (a schedule cached before stays while it measures near the fastest).
    Tune(cmd::tune::Args),
    /// Check every network of the zoo and list them with their totals.
    Zoo(cmd::zoo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Check(args) => cmd::check::run(&args),
        Command::Compile(args) => cmd::compile::run(&args),
        Command::Eval(args) => cmd::eval::run(&args),
        Command::Graph(args) => cmd::graph::run(&args),
        Command::Guidelines(args) => cmd::guidelines::run(&args),
        Command::Opt(args) => cmd::opt::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Search(args) => cmd::search::run(&args),
        Command::SearchWorker(args) => cmd::search::run_worker(&args),
        Command::Train(args) => cmd::train::run(&args),
        Command::Tune(args) => cmd::tune::run(&args),
        Command::Zoo(args) => cmd::zoo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {}", cmd::message(&e));
            }
            ExitCode::from(cmd::exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
