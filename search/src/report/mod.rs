//! The search's report: what a finished search found, written as `front.svg` ([`write_svg`])
//! and a self-contained `report.html` ([`write_html`]); [`rank`] scores the cheap signals.
//!
//! ```no_run
//! use search::report::{Report, write_html, write_svg};
//! # fn main() -> search::Result<()> {
//! let report = Report {
//!     space: "shufflenet-v2".into(),
//!     strategy: "nsga2".into(),
//!     device: "archc 0.1.0 (LLVM 19.1) on x86_64-unknown-linux-gnu/znver3 x2".into(),
//!     settings: vec![("budget".into(), "10m".into())],
//!     elapsed_s: 600.0,
//!     rows: Vec::new(),
//!     failures: Vec::new(),
//! };
//! let dir = std::path::Path::new("runs/0");
//! write_svg(&dir.join("front.svg"), &report)?;
//! write_html(&dir.join("report.html"), &report)?;
//! # Ok(())
//! # }
//! ```

mod html;
pub mod rank;
mod svg;

pub use html::write_html;
pub use svg::write_svg;

/// A finished search: where and how it ran, every network it evaluated, and those that failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// The search space's name.
    pub space: String,
    /// The strategy's name, e.g. `nsga2`.
    pub strategy: String,
    /// The device fingerprint's text, e.g. `archc 0.1.0 (LLVM 19.1) on x86_64-unknown-linux-gnu/znver3 x2`.
    pub device: String,
    /// Other settings worth showing, in order, e.g. `("data", "mnist:data/mnist-2k")`.
    pub settings: Vec<(String, String)>,
    /// Wall-clock seconds the search took.
    pub elapsed_s: f64,
    /// Every network evaluated, the zoo's baselines included.
    pub rows: Vec<Row>,
    /// The candidates that could not be built, compiled, measured or trained.
    pub failures: Vec<Failure>,
}

/// One evaluated network: a candidate of the space or a baseline from the zoo.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// The candidate's name (`c017`), or the zoo network's for a baseline.
    pub name: String,
    /// A hand-designed network from the zoo, drawn as a labelled point.
    pub baseline: bool,
    /// Parameter name and chosen value, in the space's order (empty for baselines).
    pub choices: Vec<(String, String)>,
    /// Median latency at batch 1, in milliseconds.
    pub latency_ms: f64,
    /// Final top-1 accuracy as a fraction in [0, 1]: the longer training's when it ran, else the
    /// short one's.
    pub accuracy: f64,
    /// Top-1 accuracy after the short training.
    pub short_accuracy: f64,
    /// Top-1 accuracy after the longer training, for the candidates that got one.
    pub long_accuracy: Option<f64>,
    /// Number of trainable parameters.
    pub params: u64,
    /// Multiply-adds of one image's forward pass.
    pub macs: u64,
    /// Cheap signals measured before (or instead of) the final training, each oriented so that
    /// higher predicts better, e.g. `("snip", ..)` or `("short_accuracy", ..)`.
    pub signals: Vec<(String, f64)>,
    /// On the latency/accuracy Pareto front.
    pub on_front: bool,
    /// The candidate's RON file, relative to the report's folder (front members).
    pub file: Option<String>,
}

/// A candidate that failed, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// The candidate's name.
    pub name: String,
    /// Parameter name and chosen value, in the space's order.
    pub choices: Vec<(String, String)>,
    /// The error's text, causes included.
    pub error: String,
}
