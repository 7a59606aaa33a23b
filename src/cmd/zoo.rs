//! `archc zoo`: checks every network file under a folder and lists them with their totals.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::thousands;

/// Flags of `archc zoo`.
#[derive(clap::Args)]
pub struct Args {
    /// The zoo folder; every `*.ron` network under it is checked (search spaces excluded).
    #[arg(default_value = "zoo")]
    dir: PathBuf,
}

/// The network files under `dir`, sorted, skipping `spaces/` (search spaces, not networks).
pub fn network_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "spaces") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "ron") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Runs `archc zoo`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let files = network_files(&args.dir)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<44} {:<18} {:>15} {:>11} {:>17} {:>5} {:>5}",
        "file", "input", "MACs", "params", "memory bytes", "frag", "elem"
    )?;
    let mut failures = Vec::new();
    for file in &files {
        let graph =
            ir::from_ron_file(file, &ir::BuildOptions::default()).and_then(|g| ir::verify(&g).map(|()| g));
        let graph = match graph {
            Ok(g) => g,
            Err(e) => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("error: {e}");
                }
                failures.push(e);
                continue;
            }
        };
        let m = ir::metrics::metrics(&graph);
        let input = format!("{}", graph.shape(ir::Value { node: graph.inputs()[0], port: 0 }));
        let shown = file.strip_prefix(&args.dir).unwrap_or(file).display().to_string();
        writeln!(
            out,
            "{:<44} {:<18} {:>15} {:>11} {:>17} {:>5} {:>5}",
            shown,
            input,
            thousands(m.totals.macs),
            thousands(m.totals.params),
            thousands(m.totals.memory_access_bytes),
            m.totals.fragments,
            m.totals.elementwise_ops
        )?;
    }
    writeln!(out, "\n{} networks checked, {} failed", files.len(), failures.len())?;
    let n_failed = failures.len();
    match failures.into_iter().next() {
        Some(first) => Err(first).context(format!("{n_failed} zoo network(s) do not build; the first")),
        None => Ok(()),
    }
}
