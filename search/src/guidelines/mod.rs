//! The ShuffleNet V2 paper's four guideline experiments (Tables 1-4) and its Figure-1
//! comparison (Table 8), measured here and set beside the published numbers.
//!
//! [`paper`] holds the published numbers, [`jobs`] says what to build and time, [`run`]
//! compiles and times it with [`crate::measure`], and [`tables`], [`verdict`] and [`figure`] turn the times into
//! the report that [`text`] lays out and [`plot`] draws.

mod error;
pub mod figure;
pub mod jobs;
pub mod paper;
pub mod plot;
pub mod run;
pub mod tables;
pub mod text;
pub mod verdict;

use std::collections::BTreeMap;

use serde::Serialize;

pub use error::Error;
pub use jobs::{Job, Subject};
pub use paper::{Paper, Platform};

use crate::measure::Measured;

/// Everything a run found: the four tables with their verdicts, and the Table-8 networks.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Whose channel counts the tables were measured at.
    pub shapes: Platform,
    /// Tables 1-4.
    pub tables: Vec<tables::TableReport>,
    /// The Table-8 networks measured.
    pub models: Vec<figure::ModelReport>,
}

/// Assembles the report from the measurements of every job of [`jobs::experiment_jobs`] and
/// of those of [`jobs::model_jobs`] that ran.
pub fn report(
    paper: &Paper,
    shapes: Platform,
    measured: &BTreeMap<Subject, Measured>,
) -> Result<Report, Error> {
    Ok(Report {
        shapes,
        tables: tables::assemble(paper, shapes, measured)?,
        models: figure::assemble(paper, measured),
    })
}
