//! Measuring a run's jobs: every network built and compiled first, in parallel, then timed one
//! at a time so that nothing else of the run competes with the timed one.

use std::collections::BTreeMap;

use super::Error;
use super::jobs::{Job, Subject};
use crate::measure::{Measured, Protocol, prepare_all};

/// Builds, compiles and times every job by `protocol`, calling `timed` after each timing.
pub fn measure(
    jobs: &[Job],
    protocol: &Protocol,
    mut timed: impl FnMut(&Job, &Measured),
) -> Result<BTreeMap<Subject, Measured>, Error> {
    let graphs = jobs
        .iter()
        .map(|job| job.build().map_err(|source| Error::Build { label: job.label.clone(), source }))
        .collect::<Result<Vec<_>, _>>()?;
    let prepared = jobs
        .iter()
        .zip(prepare_all(&graphs))
        .map(|(job, p)| p.map_err(|source| Error::Compile { label: job.label.clone(), source }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut measured = BTreeMap::new();
    for (job, prepared) in jobs.iter().zip(prepared) {
        let m = prepared.time(protocol);
        timed(job, &m);
        measured.insert(job.subject, m);
    }
    Ok(measured)
}
