//! The errors of the `ir` crate and the source locations they point at.

use std::fmt;
use std::sync::Arc;

/// A position in a network file, shown as `file:line:col` so editors can jump to it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Location {
    /// The file's path as given (or `<string>` for in-memory sources).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Everything that can go wrong while reading, building or checking a network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network text is not valid RON, or does not fit the network schema (unknown
    /// statement, missing field, wrong type), or means nothing valid (unknown name, bad
    /// expression, sizes that do not fit).
    #[error("{location}: {message}")]
    Source {
        /// Where in the file.
        location: Location,
        /// What is wrong and, where it helps, what was expected.
        message: String,
    },
    /// A graph breaks an invariant that `verify` checks; `node` names the offending node.
    #[error("{}node `{node}`: {message}", prefix(location))]
    Verify {
        /// The node's name.
        node: String,
        /// Where the node came from, when it came from a file.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
    /// A `--set name=expression` override names no parameter of the network, or its
    /// expression does not parse or evaluate.
    #[error("--set {key}: {message}")]
    Override {
        /// The parameter named.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A weights file is malformed or does not fit the network: a tensor is missing, extra,
    /// mis-shaped, of an unsupported dtype, or holds NaN or infinity.
    #[error("{file}: {}{message}", tensor_prefix(tensor))]
    Weights {
        /// The weights file.
        file: String,
        /// The tensor's name (empty when the file as a whole is unreadable).
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// An input tensor does not fit the network (wrong count, shape or dtype).
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn prefix(location: &Option<Location>) -> String {
    location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default()
}

fn tensor_prefix(tensor: &str) -> String {
    if tensor.is_empty() { String::new() } else { format!("tensor `{tensor}`: ") }
}

/// The `ir` crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
