//! Measuring a run's jobs: every network built and compiled first, in parallel, then timed in
//! turns with nothing else of the run competing.

use std::collections::BTreeMap;

use super::Error;
use super::jobs::{Job, Subject};
use crate::measure::{Measured, Protocol, prepare_all, time_all};

/// Builds, compiles and times every job by `protocol`; `round` is called as each round of
/// timing begins.
pub fn measure(
    jobs: &[Job],
    protocol: &Protocol,
    round: impl FnMut(usize),
) -> Result<BTreeMap<Subject, Measured>, Error> {
    let graphs = jobs
        .iter()
        .map(|job| job.build().map_err(|source| Error::Build { label: job.label.clone(), source }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut prepared = jobs
        .iter()
        .zip(prepare_all(&graphs, protocol.threads))
        .map(|(job, p)| p.map_err(|source| Error::Compile { label: job.label.clone(), source }))
        .collect::<Result<Vec<_>, _>>()?;
    let measured = time_all(&mut prepared, protocol, round);
    Ok(jobs.iter().map(|job| job.subject).zip(measured).collect())
}
