//! The RON front-end: reads a network file, expands its blocks and parameters, and builds a
//! shape-checked [`Graph`](crate::Graph). The language is described in `zoo/README.md`.

mod ast;
mod expand;
pub mod expr;
mod locate;

use std::sync::Arc;

use crate::{Error, Graph, Result};

pub use locate::location_of;

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
    let network = parse(text, &file)?;
    expand::expand(&network, locate::SourceMap::new(file, text), options)
}

/// Reads and builds the network file at `path`.
pub fn from_ron_file(path: &std::path::Path, options: &BuildOptions) -> Result<Graph> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: shown.clone(), source })?;
    from_ron_str(&text, &shown, options)
}

fn parse(text: &str, file: &Arc<str>) -> Result<ast::Network> {
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
        let location = location_of(file, text, at);
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
