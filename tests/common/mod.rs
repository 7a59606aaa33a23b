//! What the command-line tests share: running `archc` from the repository root.

use std::process::{Command, Output};

/// Runs `archc` with `args` in the repository root.
pub fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("archc runs")
}
