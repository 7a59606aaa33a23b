//! What can go wrong in the guideline comparison: the paper's data, a network that does not
//! build or compile (its `ir` or `codegen` error kept as the source), the plot.

/// A bad paper data file, a network that fails, a missing measurement, or a plot that could
/// not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The paper's data file does not parse or is incomplete.
    #[error("{at}: {message}")]
    Paper {
        /// `file:line:col`, or the file and the table, row and column at fault.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// A job's network file does not build (bad input: a missing zoo, a bad override).
    #[error("building {label}")]
    Build {
        /// The job.
        label: String,
        /// Why.
        #[source]
        source: ir::Error,
    },
    /// A job's network does not compile.
    #[error("compiling {label}")]
    Compile {
        /// The job.
        label: String,
        /// Why.
        #[source]
        source: codegen::Error,
    },
    /// A table cell or network was not measured.
    #[error("no measurement for {0}")]
    Missing(String),
    /// The SVG could not be drawn or written.
    #[error("plotting {path}: {message}")]
    Plot {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}
