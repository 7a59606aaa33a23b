//! Rewrites a network file's parameter values and name in place, keeping everything else
//! (comments, layout, blocks) as written: how a search writes out the network it found.

use std::sync::Arc;

use super::ast::Network;
use super::expr::{self, Expr};
use super::locate::{Seg, SourceMap};
use super::{Error, Result, parse_ron};

/// The network file `text` with the values of the parameters in `replacements` (`(name,
/// expression)` pairs, as `--set` overrides take them) and, if given, its `name` replaced.
///
/// Literal values (whole numbers, truth values and lists of them) are written as RON, any
/// other expression as a string. `file` names the text in error messages; a parameter the
/// network does not have is an [`Error::Override`].
///
/// ```
/// let text = r#"Network(
///     name: "tiny", // a comment that stays
///     input: Image(channels: 1, height: 8, width: 8),
///     params: {"c": 4, "k": 3},
///     body: [Conv(out: "c", kernel: "k")],
/// )"#;
/// let set = [("c".to_string(), "[8, 16][1]".to_string()), ("k".to_string(), "5".to_string())];
/// let new = ir::front::with_params(text, "tiny.ron", &set, Some("wide")).unwrap();
/// assert!(new.contains(r#"name: "wide", // a comment that stays"#));
/// assert!(new.contains(r#"params: {"c": "[8, 16][1]", "k": 5}"#));
/// ```
pub fn with_params(
    text: &str,
    file: &str,
    replacements: &[(String, String)],
    name: Option<&str>,
) -> Result<String> {
    let network: Network = parse_ron(text, file)?;
    let source = SourceMap::new(Arc::from(file), text);
    let mut edits = Vec::new();
    for (param, value) in replacements {
        let span = network
            .params
            .contains_key(param)
            .then(|| source.span(&[Seg::Key("params".into()), Seg::Key(param.clone())]))
            .flatten()
            .ok_or_else(|| Error::Override {
                key: param.clone(),
                message: format!(
                    "the network has no parameter `{param}`; its parameters are: {}",
                    network.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
        let parsed = expr::parse(value).map_err(|message| Error::Override { key: param.clone(), message })?;
        edits.push((span, ron_value(&parsed, value)));
    }
    if let Some(name) = name {
        let span = source.span(&[Seg::Key("name".into())]).expect("`ron` accepted the network's name");
        edits.push((span, quoted(name)));
    }
    // Later spans first, so that earlier offsets stay valid.
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for (span, new) in edits {
        out.replace_range(span, &new);
    }
    Ok(out)
}

/// `parsed` (whose text is `text`) as a RON value that deserializes to the same expression.
fn ron_value(parsed: &Expr, text: &str) -> String {
    fn literal(e: &Expr) -> bool {
        match e {
            Expr::Lit(expr::Value::Int(_) | expr::Value::Bool(_)) => true,
            Expr::Unary('-', inner) => matches!(**inner, Expr::Lit(expr::Value::Int(_))),
            Expr::List(items) => items.iter().all(literal),
            _ => false,
        }
    }
    if literal(parsed) {
        let value = parsed.eval(&expr::Env::new()).expect("a literal evaluates");
        value.to_string()
    } else {
        quoted(text)
    }
}

/// A RON string literal.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BuildOptions;

    const NET: &str = r#"// a header comment
Network(
    name: "net",
    input: Image(channels: 1, height: 8, width: 8),
    params: {
        "widths": [4, 8], // per stage
        "k": 3,
        "scale": 1.0,
        "on": true,
    },
    body: [
        Conv(out: "widths[0] * scale", kernel: "k"),
        If(cond: "on", then: [Relu]),
        Conv(out: "widths[1]", kernel: 1),
    ],
)"#;

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn printed(text: &str, overrides: Vec<(String, String)>) -> String {
        let options = BuildOptions { batch: 1, overrides };
        crate::print::to_text(&crate::from_ron_str(text, "net.ron", &options).unwrap())
    }

    #[test]
    fn rewritten_file_builds_like_the_overrides() {
        let pairs = set(&[("widths", "[6, 10]"), ("k", "5"), ("scale", "0.5 * 2"), ("on", "false")]);
        let new = with_params(NET, "net.ron", &pairs, None).unwrap();
        assert!(new.contains(r#""widths": [6, 10], // per stage"#), "{new}");
        assert!(new.contains(r#""scale": "0.5 * 2","#), "{new}");
        assert!(new.contains(r#""on": false,"#), "{new}");
        assert!(new.starts_with("// a header comment\n"));
        assert_eq!(printed(&new, Vec::new()), printed(NET, pairs));
    }

    #[test]
    fn renames_the_network() {
        let new = with_params(NET, "net.ron", &[], Some("a \"b\"")).unwrap();
        assert!(new.contains(r#"name: "a \"b\"","#), "{new}");
        assert!(printed(&new, Vec::new()).starts_with("graph a \"b\" {"));
    }

    #[test]
    fn negative_numbers_stay_literals() {
        let new = with_params(NET, "net.ron", &set(&[("k", "-1")]), None).unwrap();
        assert!(new.contains(r#""k": -1,"#), "{new}");
    }

    #[test]
    fn unknown_parameter_is_an_error() {
        let err = with_params(NET, "net.ron", &set(&[("width", "2")]), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--set width: the network has no parameter `width`; its parameters are: k, on, scale, widths"
        );
    }

    #[test]
    fn bad_expression_is_an_error() {
        let err = with_params(NET, "net.ron", &set(&[("k", "3 +")]), None).unwrap_err();
        assert!(err.to_string().starts_with("--set k: "), "{err}");
    }
}
