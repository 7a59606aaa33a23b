//! What a run measures: one job per configuration and width of Tables 1-4, one per Table-8
//! network, each a zoo file with the parameters that give it the paper's shape.

use std::path::{Path, PathBuf};

use super::paper::{Paper, Platform};

/// What a job's measurement stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// Table `experiment` (an index into [`Paper::experiments`]), its `row`, its `column`.
    Cell {
        /// Index of the experiment.
        experiment: usize,
        /// Index of the row.
        row: usize,
        /// Index of the column.
        column: usize,
    },
    /// An entry of [`Paper::models`].
    Model(usize),
}

/// One network to build and time.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// What it stands for.
    pub subject: Subject,
    /// A short name for progress lines: `g1_1to2 x4`, `mobilenet_v2 0.75`.
    pub label: String,
    /// The network file.
    pub file: PathBuf,
    /// Parameters set on it.
    pub overrides: Vec<(String, String)>,
}

impl Job {
    /// Reads, builds and verifies the job's network at batch 1.
    pub fn build(&self) -> Result<ir::Graph, ir::Error> {
        let options = ir::BuildOptions { batch: 1, overrides: self.overrides.clone() };
        let graph = ir::from_ron_file(&self.file, &options)?;
        ir::verify(&graph)?;
        Ok(graph)
    }
}

/// The channels a row of an experiment is built with at one column, on the platform whose
/// shapes are measured: the x1 channels times the column's multiplier, rounded (half up) to
/// the row's channel multiple.
pub fn channels(paper: &Paper, shapes: Platform, experiment: usize, row: usize, column: usize) -> Vec<u32> {
    let e = &paper.experiments[experiment];
    let k = e.multipliers()[column];
    let m = e.rows[row].channel_multiple.unwrap_or(1);
    e.rows[row].on(shapes).channels.iter().map(|c| (c * k + m / 2) / m * m).collect()
}

/// Every configuration and width of Tables 1-4, at the channels the paper used on `shapes`,
/// with `extra` parameters set on every network (tests make them small).
pub fn experiment_jobs(paper: &Paper, zoo: &Path, shapes: Platform, extra: &[(String, String)]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, e) in paper.experiments.iter().enumerate() {
        for (r, row) in e.rows.iter().enumerate() {
            for (c, column) in e.columns.iter().enumerate() {
                let mut overrides: Vec<(String, String)> = e
                    .params
                    .iter()
                    .zip(channels(paper, shapes, i, r, c))
                    .map(|(p, ch)| (p.clone(), ch.to_string()))
                    .collect();
                overrides.extend_from_slice(extra);
                jobs.push(Job {
                    subject: Subject::Cell { experiment: i, row: r, column: c },
                    label: format!("{} {column}", row.network),
                    file: zoo.join("guidelines").join(format!("{}.ron", row.network)),
                    overrides,
                });
            }
        }
    }
    jobs
}

/// The Table-8 entries archc has a network for, limited to one complexity class (`~140M`)
/// when `column` says so, with `extra` parameters set on every network.
pub fn model_jobs(paper: &Paper, zoo: &Path, column: Option<&str>, extra: &[(String, String)]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, m) in paper.models.iter().enumerate() {
        let Some(network) = &m.network else { continue };
        if column.is_some_and(|c| c != m.column) {
            continue;
        }
        let mut overrides: Vec<(String, String)> =
            m.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        overrides.extend_from_slice(extra);
        jobs.push(Job {
            subject: Subject::Model(i),
            label: format!("{network} {}", m.width).trim_end().to_string(),
            file: zoo.join(format!("{network}.ron")),
            overrides,
        });
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo")
    }

    fn macs(job: &Job) -> u64 {
        ir::metrics::metrics(&job.build().unwrap_or_else(|e| panic!("{}: {e}", job.label))).totals.macs
    }

    #[test]
    fn one_job_per_cell_and_per_measured_model() {
        let paper = Paper::builtin().unwrap();
        let jobs = experiment_jobs(&paper, &zoo(), Platform::Arm, &[]);
        assert_eq!(jobs.len(), (4 + 4 + 5 + 4) * 3);
        let g1 = &jobs[3 + 2]; // table 1, row 1:2 (three columns per row), x4
        assert_eq!(g1.label, "g1_1to2 x4");
        assert_eq!(
            g1.overrides,
            [("c1".to_string(), "88".to_string()), ("c2".to_string(), "176".to_string())]
        );
        let g2 = |column| channels(&paper, Platform::Arm, 1, 3, column);
        assert_eq!((g2(0), g2(1), g2(2)), (vec![184], vec![360], vec![720]), "g = 8 needs multiples of 8");
        assert_eq!(model_jobs(&paper, &zoo(), None, &[]).len(), 16);
        let small = [("resolution".to_string(), "32".to_string())];
        let quick = model_jobs(&paper, &zoo(), Some("~140M"), &small);
        assert_eq!(quick.len(), 4);
        assert!(quick.iter().all(|j| j.overrides.ends_with(&small)));
    }

    #[test]
    fn the_papers_gpu_channels_are_the_networks_own_widths() {
        // The zoo's networks are written at the GPU channels, `width` multiplying them: the
        // paper's data and the networks must agree on every cell.
        let paper = Paper::builtin().unwrap();
        for job in experiment_jobs(&paper, &zoo(), Platform::Gpu, &[]) {
            let Subject::Cell { experiment, column, .. } = job.subject else { unreachable!() };
            let k = paper.experiments[experiment].multipliers()[column];
            let own = Job { overrides: vec![("width".into(), k.to_string())], ..job.clone() };
            assert_eq!(macs(&job), macs(&own), "{}", job.label);
        }
    }

    #[test]
    fn every_measured_network_builds_near_the_papers_flops() {
        let paper = Paper::builtin().unwrap();
        for job in experiment_jobs(&paper, &zoo(), Platform::Arm, &[("resolution".into(), "8".into())]) {
            job.build().unwrap_or_else(|e| panic!("{}: {e}", job.label));
        }
        for job in model_jobs(&paper, &zoo(), None, &[]) {
            let Subject::Model(i) = job.subject else { unreachable!() };
            let ratio = macs(&job) as f64 / (paper.models[i].mflops * 1e6);
            // MobileNet V2 0.4 and 0.75 are the exceptions the data file explains.
            let allowed = if job.label.starts_with("mobilenet_v2 0.") { 2.0 } else { 1.15 };
            assert!((1.0 / allowed..allowed).contains(&ratio), "{}: {ratio:.2}", job.label);
        }
    }
}
