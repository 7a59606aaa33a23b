//! Reads a space file and checks it against its network, with every error pointing at the
//! place in the space file (`file:line:col`) through `ir`'s RON locations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ir::front::expr::{self, Value};
use ir::front::{Expression, Seg, SourceMap};
use serde::Deserialize;

use super::defaults::{SearchDefaults, Training};
use super::{Choice, Options, Space};
use crate::{Error, Result};

/// A space file as written (`Space(name: .., network: .., choices: {..}, ..)`).
#[derive(Deserialize, Debug)]
#[serde(rename = "Space", deny_unknown_fields)]
struct SpaceFile {
    name: String,
    network: String,
    choices: BTreeMap<String, ChoiceFile>,
    #[serde(default)]
    baselines: Vec<String>,
    data: Option<String>,
    split: Option<String>,
    #[serde(default)]
    training: Training,
    budget: Option<String>,
}

/// A choice point as written: `One([..])` or `Each([[..], ..])`.
#[derive(Deserialize, Debug)]
enum ChoiceFile {
    One(Vec<Expression>),
    Each(Vec<Vec<Expression>>),
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Errors at places in one space file.
struct Located {
    source: SourceMap,
}

impl Located {
    fn error(&self, path: &[Seg], message: String) -> Error {
        Error::Space { location: self.source.locate(path), message }
    }
}

pub(super) fn load(path: &Path) -> Result<Space> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: shown.clone(), source })?;
    let file: SpaceFile = ir::front::parse_ron(&text, &shown).map_err(|e| match e {
        ir::Error::Source { location, message } => Error::Space { location, message },
        other => unreachable!("parsing reports only located errors: {other}"),
    })?;
    let at = Located { source: SourceMap::new(Arc::from(shown.as_str()), &text) };
    let dir = path.parent().unwrap_or(Path::new(""));

    let network = dir.join(&file.network);
    let template = std::fs::read_to_string(&network).map_err(|e| {
        at.error(&[key("network")], format!("cannot read the network file {}: {e}", network.display()))
    })?;
    let shown_network = network.display().to_string();
    let as_written = ir::BuildOptions::default();
    ir::from_ron_str(&template, &shown_network, &as_written).and_then(|graph| ir::verify(&graph)).map_err(
        |e| at.error(&[key("network")], format!("the network does not build with its defaults: {e}")),
    )?;
    // It built, so its parameters evaluate.
    let defaults = ir::front::parameters(&template, &shown_network, &as_written).expect("the network built");
    let defaults: BTreeMap<String, Value> = defaults.into_iter().collect();
    let choices = file
        .choices
        .iter()
        .map(|(param, choice)| check_choice(&at, &defaults, param, choice))
        .collect::<Result<Vec<_>>>()?;

    let baselines = file
        .baselines
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = dir.join(b);
            match p.is_file() {
                true => Ok(p),
                false => Err(at.error(
                    &[key("baselines"), Seg::Index(i)],
                    format!("baseline {} is not a file", p.display()),
                )),
            }
        })
        .collect::<Result<Vec<_>>>()?;

    let search_defaults = SearchDefaults::parse(
        file.data.as_deref(),
        file.split.as_deref(),
        &file.training,
        file.budget.as_deref(),
    )
    .map_err(|bad| {
        let path = match bad.in_training {
            true => vec![key("training"), key(bad.field)],
            false => vec![key(bad.field)],
        };
        at.error(&path, bad.message)
    })?;

    let space = Space { name: file.name, network, template, choices, baselines, defaults: search_defaults };
    // A space whose first genome does not build would fail a search at its first step; say
    // so now, at the file.
    let first = vec![0; space.genes().len()];
    match space.build(&first, 1) {
        Err(Error::Build { source, .. }) => Err(at.error(
            &[key("choices")],
            format!("the network does not build with the first option of every choice: {source}"),
        )),
        Err(other) => unreachable!("the first genome fits its space: {other}"),
        Ok(_) => Ok(space),
    }
}

/// Checks one choice point against the parameter it sets (`defaults` are the template's
/// parameter values).
fn check_choice(
    at: &Located,
    defaults: &BTreeMap<String, Value>,
    param: &str,
    choice: &ChoiceFile,
) -> Result<Choice> {
    let path = [key("choices"), key(param)];
    let value = defaults.get(param).ok_or_else(|| {
        let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
        at.error(
            &path,
            format!("the network has no parameter `{param}`; its parameters are: {}", known.join(", ")),
        )
    })?;
    // The variant's parenthesized list is item 0 of the choice's value.
    let list = |i: Option<usize>| {
        let mut p = path.to_vec();
        p.push(Seg::Index(0));
        p.extend(i.map(Seg::Index));
        p
    };
    let texts = |options: &[Expression]| options.iter().map(|e| e.text.clone()).collect::<Vec<_>>();
    let options = match choice {
        ChoiceFile::One(options) if options.is_empty() => {
            return Err(at.error(&list(None), format!("`{param}` has no options")));
        }
        ChoiceFile::One(options) => Options::One(texts(options)),
        ChoiceFile::Each(lists) => {
            let Value::List(items) = value else {
                return Err(at.error(
                    &path,
                    format!(
                        "`Each` sets a list parameter element by element, but `{param}` is {}; use `One`",
                        expr::kind(value)
                    ),
                ));
            };
            if lists.len() != items.len() {
                return Err(at.error(
                    &list(None),
                    format!(
                        "`{param}` has {} elements, but `Each` gives options for {}",
                        items.len(),
                        lists.len()
                    ),
                ));
            }
            if let Some(i) = lists.iter().position(Vec::is_empty) {
                return Err(at.error(&list(Some(i)), format!("element {i} of `{param}` has no options")));
            }
            Options::Each(lists.iter().map(|l| texts(l)).collect())
        }
    };
    Ok(Choice { param: param.to_string(), options })
}
