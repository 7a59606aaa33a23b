//! Search spaces: a network template (a network file whose parameters have defaults) and
//! choice points, each setting one of its parameters, read from `zoo/spaces/*.ron` (the
//! format is in `zoo/README.md`, "Search spaces").
//!
//! A genome picks one option per gene. `One([..])` is one gene; `Each([[..], [..]])` is one
//! gene per element of a list parameter (one per stage, say). Genes are ordered by parameter
//! name, then by element. A genome becomes `--set` overrides of the template, so that a
//! network found by a search is the template with some parameter values replaced.

mod defaults;
mod file;

use std::path::{Path, PathBuf};

pub use defaults::{SearchDefaults, parse_duration};

use crate::{Error, Result};

/// A network template and its choice points, with the defaults of a search over it.
///
/// ```no_run
/// let space = search::space::Space::load("zoo/spaces/shufflenet_v2_mnist.ron".as_ref()).unwrap();
/// let smallest = vec![0; space.genes().len()];
/// let graph = space.build(&smallest, 1).unwrap();
/// println!("{} {:?}", space.name(), space.choices(&smallest).unwrap());
/// # let _ = graph;
/// ```
#[derive(Debug)]
pub struct Space {
    name: String,
    /// The template network file and its text.
    network: PathBuf,
    template: String,
    choices: Vec<Choice>,
    baselines: Vec<PathBuf>,
    defaults: SearchDefaults,
}

/// One choice point: a parameter of the template and its options, as expression texts.
#[derive(Debug)]
struct Choice {
    param: String,
    options: Options,
}

#[derive(Debug)]
enum Options {
    /// One gene: the parameter is one of these.
    One(Vec<String>),
    /// One gene per element of a list parameter: element `i` is one of `lists[i]`.
    Each(Vec<Vec<String>>),
}

impl Space {
    /// Reads the space file at `path` and checks it against its network; errors point at the
    /// place in the file as `file:line:col`.
    pub fn load(path: &Path) -> Result<Space> {
        file::load(path)
    }

    /// The space's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template network file.
    pub fn network(&self) -> &Path {
        &self.network
    }

    /// The number of options of each gene, in genome order.
    pub fn genes(&self) -> Vec<usize> {
        self.choices
            .iter()
            .flat_map(|c| match &c.options {
                Options::One(options) => vec![options.len()],
                Options::Each(lists) => lists.iter().map(Vec::len).collect(),
            })
            .collect()
    }

    /// The number of distinct genomes (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        self.genes().iter().fold(1u128, |n, &g| n.saturating_mul(g as u128))
    }

    /// The parameter values a genome chooses, as `(name, expression)` pairs: `--set`
    /// overrides of the template, and the genome's description in reports.
    pub fn choices(&self, genome: &[usize]) -> Result<Vec<(String, String)>> {
        self.check(genome)?;
        let mut genes = genome.iter().copied();
        let mut pick = |options: &[String]| options[genes.next().expect("checked length")].clone();
        Ok(self
            .choices
            .iter()
            .map(|c| {
                let value = match &c.options {
                    Options::One(options) => pick(options),
                    Options::Each(lists) => {
                        let items: Vec<String> = lists.iter().map(|l| pick(l)).collect();
                        format!("[{}]", items.join(", "))
                    }
                };
                (c.param.clone(), value)
            })
            .collect())
    }

    /// Builds and verifies the network a genome chooses, for a batch of `batch` images.
    pub fn build(&self, genome: &[usize], batch: usize) -> Result<ir::Graph> {
        let overrides = self.choices(genome)?;
        let options = ir::BuildOptions { batch, overrides };
        ir::from_ron_str(&self.template, &self.network.display().to_string(), &options)
            .and_then(|graph| ir::verify(&graph).map(|()| graph))
            .map_err(|source| self.build_error(&options.overrides, source))
    }

    /// The network a genome chooses as a standalone network file named `name`: the template
    /// with the chosen parameter values written in, comments and layout kept. It builds the
    /// same graph as [`Space::build`] (but for its name).
    pub fn network_text(&self, genome: &[usize], name: &str) -> Result<String> {
        let overrides = self.choices(genome)?;
        ir::front::with_params(&self.template, &self.network.display().to_string(), &overrides, Some(name))
            .map_err(|source| self.build_error(&overrides, source))
    }

    /// Hand-designed networks to compare the search's results with.
    pub fn baselines(&self) -> &[PathBuf] {
        &self.baselines
    }

    /// The defaults of a search over this space.
    pub fn defaults(&self) -> &SearchDefaults {
        &self.defaults
    }

    fn check(&self, genome: &[usize]) -> Result<()> {
        let genes = self.genes();
        let bad = |message| Err(Error::Genome { space: self.name.clone(), message });
        if genome.len() != genes.len() {
            return bad(format!("a genome has {} genes, not {}", genes.len(), genome.len()));
        }
        match genome.iter().zip(&genes).position(|(g, n)| g >= n) {
            Some(i) => bad(format!("gene {i} is {}, but it has {} options", genome[i], genes[i])),
            None => Ok(()),
        }
    }

    fn build_error(&self, overrides: &[(String, String)], source: ir::Error) -> Error {
        let choices: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Error::Build { space: self.name.clone(), choices: choices.join(" "), source: Box::new(source) }
    }
}
