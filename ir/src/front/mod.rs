//! The RON front-end: reads a network file, expands its blocks and parameters, and builds a
//! shape-checked [`Graph`](crate::Graph). The language is described in `zoo/README.md`.

mod ast;
mod expand;
pub mod expr;
mod locate;
mod rewrite;

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{Error, Graph, Result};

pub use ast::Expression;
pub use locate::{Seg, SourceMap, location_of};
pub use rewrite::with_params;

/// Choices made when a network file is instantiated.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The batch size of the input (and so of every tensor).
    pub batch: usize,
    /// `(name, expression)` pairs that replace network parameters (`--set width=0.5`).
    pub overrides: Vec<(String, String)>,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions { batch: 1, overrides: Vec::new() }
    }
}

/// Builds the network written in `text`; `file` names it in error messages.
///
/// ```
/// let text = r#"Network(
///     name: "tiny",
///     input: Image(channels: 3, height: 8, width: 8),
///     body: [Conv(out: 4, kernel: 3, bn: true, act: Relu), GlobalAvgPool, Linear(out: 10)],
/// )"#;
/// let graph = ir::from_ron_str(text, "tiny.ron", &ir::BuildOptions::default()).unwrap();
/// assert_eq!(graph.shape(graph.outputs()[0]).dims(), &[1, 10]);
/// ```
pub fn from_ron_str(text: &str, file: &str, options: &BuildOptions) -> Result<Graph> {
    let file: Arc<str> = file.into();
    let network: ast::Network = parse_ron(text, &file)?;
    expand::expand(&network, SourceMap::new(file, text), options)
}

/// The values of the network's parameters in `text`, after `options.overrides`, in the
/// order they were settled (each after the parameters it uses).
///
/// ```
/// let text = r#"Network(name: "n", input: Image(channels: 1, height: 4, width: 4),
///     params: {"c": "2 * w", "w": 8, "stages": [1, "w"]}, body: [Relu])"#;
/// let params = ir::front::parameters(text, "n.ron", &ir::BuildOptions::default()).unwrap();
/// let c = params.iter().position(|(name, _)| name == "c").unwrap();
/// assert!(params[..c].iter().any(|(name, _)| name == "w"), "w is settled before c");
/// assert_eq!(params[c].1.to_string(), "16");
/// let stages = params.iter().find(|(name, _)| name == "stages").unwrap();
/// assert_eq!(stages.1.to_string(), "[1, 8]");
/// ```
pub fn parameters(text: &str, file: &str, options: &BuildOptions) -> Result<Vec<(String, expr::Value)>> {
    let file: Arc<str> = file.into();
    let network: ast::Network = parse_ron(text, &file)?;
    expand::eval_params(&network, &SourceMap::new(file, text), options)
}

/// Reads and builds the network file at `path`.
pub fn from_ron_file(path: &std::path::Path, options: &BuildOptions) -> Result<Graph> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: shown.clone(), source })?;
    from_ron_str(&text, &shown, options)
}

/// Deserializes RON text, with the network files' extensions and with errors as
/// `file:line:col: message` ([`Error::Source`]). Other RON formats of archc (search spaces)
/// read their files with it, and locate later errors with a [`SourceMap`] of the same text.
pub fn parse_ron<T: DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    let options = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    options.from_str(text).map_err(|e| {
        // `ron` starts some spans (trailing characters, an unexpected end) at the whitespace or
        // comment before the offending token; the token, or the end of the file, is the place.
        // An unclosed comment's span starts inside it; its opening `/*` is the place.
        let start = locate::offset_of(text, e.span.start.line, e.span.start.col);
        let at = match e.code {
            ron::Error::UnclosedBlockComment => text[..start].rfind("/*").unwrap_or(start),
            _ => locate::skip_trivia(text, start),
        };
        let location = location_of(&file.into(), text, at);
        Error::Source { location, message: describe(&e.code) }
    })
}

/// Rewords `ron`'s messages, which talk about Rust types, in the language's own terms.
fn describe(code: &ron::Error) -> String {
    let text = code.to_string();
    text.replace("enum `Statement`", "the statements")
        .replace("struct `Network`", "Network(..)")
        .replace("in `Statement::", "in `")
}
