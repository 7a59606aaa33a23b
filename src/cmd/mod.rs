//! One module per subcommand, and what they share: reading a network from the flags.

pub mod bench;
pub mod check;
pub mod compile;
mod data;
pub mod eval;
pub mod graph;
pub mod guidelines;
pub mod opt;
pub mod run;
pub mod search;
pub mod train;
pub mod tune;
pub mod zoo;

use std::path::PathBuf;

use anyhow::Context;

/// Flags that choose how a network file is instantiated.
#[derive(clap::Args, Clone, Debug)]
pub struct NetworkArgs {
    /// The network file (RON).
    pub network: PathBuf,
    /// Batch size of the input.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch: u32,
    /// Replace a network parameter: `--set width=0.5` (repeatable).
    #[arg(long = "set", value_name = "NAME=EXPR", value_parser = parse_override)]
    pub overrides: Vec<(String, String)>,
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=EXPR, got `{s}`"))?;
    if k.trim().is_empty() || v.trim().is_empty() {
        return Err(format!("expected NAME=EXPR, got `{s}`"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

impl NetworkArgs {
    /// Reads, builds and verifies the network.
    pub fn build(&self) -> anyhow::Result<ir::Graph> {
        self.build_with_batch(self.batch as usize)
    }

    /// Like `build`, with the batch size given instead of taken from `--batch`.
    pub fn build_with_batch(&self, batch: usize) -> anyhow::Result<ir::Graph> {
        let graph = self.build_graph(batch)?;
        ir::verify(&graph).with_context(|| format!("verifying {}", self.network.display()))?;
        Ok(graph)
    }

    /// Builds the network for `batch` (and verifies it), with the `ir` crate's error.
    pub fn build_graph(&self, batch: usize) -> ir::Result<ir::Graph> {
        let options = ir::BuildOptions { batch, overrides: self.overrides.clone() };
        let graph = ir::from_ron_file(&self.network, &options)?;
        ir::verify(&graph)?;
        Ok(graph)
    }
}

/// Flags that choose a network's weights.
#[derive(clap::Args, Clone, Debug)]
pub struct WeightsArgs {
    /// Weights (safetensors, PyTorch `state_dict` names); seeded initialization without.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the initialization when no weights are given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl WeightsArgs {
    /// Loads the weights file for `graph`, or initializes them from the seed.
    pub fn load(&self, graph: &ir::Graph) -> anyhow::Result<ir::Weights> {
        Ok(match &self.weights {
            Some(path) => ir::Weights::load(graph, path)?,
            None => ir::Weights::seeded(graph, self.seed),
        })
    }
}

/// The flag that chooses the schedule cache `archc tune` writes and `compile` and `bench` read.
#[derive(clap::Args, Clone, Debug)]
pub struct ScheduleArgs {
    /// The schedule cache (JSON) [default: $ARCHC_SCHEDULES, else
    /// $XDG_CACHE_HOME/archc/schedules.json, else ~/.cache/archc/schedules.json].
    #[arg(long, value_name = "FILE")]
    pub schedules: Option<PathBuf>,
}

impl ScheduleArgs {
    /// The cache file's path.
    pub fn path(&self) -> PathBuf {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        self.schedules
            .clone()
            .or_else(|| env("ARCHC_SCHEDULES"))
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("archc/schedules.json")))
            .or_else(|| env("HOME").map(|d| d.join(".cache/archc/schedules.json")))
            .unwrap_or_else(|| PathBuf::from("archc-schedules.json"))
    }

    /// The schedules measured on `target`'s CPU (none where the cache has none).
    pub fn load_for(&self, target: &codegen::Target) -> anyhow::Result<codegen::schedule::Schedules> {
        Ok(codegen::schedule::Cache::load(&self.path())?.schedules_for(target))
    }
}

/// Bad input found by the command line itself (an array file of the wrong kind, say).
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// The error and its causes joined by ": ", leaving out a cause whose text the message so far
/// already ends with: typed errors such as `path: reason` show their source themselves, and
/// anyhow's `{:#}` would print the reason twice.
pub fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if text.is_empty() {
            text = cause;
        } else if !text.ends_with(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// Exit status for an error: 2 for bad input (files, flags, networks), 1 for anything else.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let bad_input = |c: &(dyn std::error::Error + 'static)| {
        c.is::<ir::Error>()
            || c.is::<InputError>()
            || c.is::<::search::Error>()
            || c.downcast_ref::<cuda::Error>().is_some_and(cuda::Error::is_bad_input)
            || matches!(c.downcast_ref::<codegen::Error>(), Some(codegen::Error::BadCache(_)))
    };
    if e.chain().any(bad_input) { 2 } else { 1 }
}

/// Compiles an optimized network to PTX for the GPU `run` and `bench` use; fails first, with
/// one sentence, where this machine has no CUDA driver to run it.
pub fn compile_for_gpu(name: &str, opt: &passes::Optimized) -> anyhow::Result<cuda::Files> {
    cuda::require_driver()?;
    codegen::gpu::compile_ptx(&opt.graph, &opt.weights, &opt.plan, codegen::gpu::ARCHS[0])
        .with_context(|| format!("compiling {name} for a GPU"))
}

/// Formats an integer with thousands separators (`1,366,792`), as the paper's tables read.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_366_792), "1,366,792");
    }

    #[test]
    fn overrides_need_a_name_and_a_value() {
        assert_eq!(parse_override("width = 0.5"), Ok(("width".into(), "0.5".into())));
        assert!(parse_override("width").is_err());
        assert!(parse_override("=3").is_err());
    }
}
