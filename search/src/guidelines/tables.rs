//! Tables 1-4 as measured here beside the paper's: speed per configuration and width, each
//! column also divided by its first row, so that trends compare across platforms whose speeds
//! differ a hundredfold.

use std::collections::BTreeMap;

use serde::Serialize;

use super::jobs::{Subject, channels};
use super::paper::{Paper, Platform};
use super::verdict::{Verdict, judge};
use super::{Error, Measured};

/// One experiment, measured.
#[derive(Clone, Debug, Serialize)]
pub struct TableReport {
    /// The paper's table number.
    pub table: u32,
    /// `G1` to `G4`.
    pub guideline: String,
    /// What the guideline says.
    pub claim: String,
    /// The heading of the configuration column.
    pub config: String,
    /// The width columns (`x1`, `x2`, `x4`).
    pub columns: Vec<String>,
    /// One per configuration, in the paper's order.
    pub rows: Vec<RowReport>,
    /// Whether the trend holds here.
    pub verdict: Verdict,
}

/// One configuration, measured at every width.
#[derive(Clone, Debug, Serialize)]
pub struct RowReport {
    /// The configuration as the paper writes it.
    pub config: String,
    /// The zoo network.
    pub network: String,
    /// One per column.
    pub cells: Vec<Cell>,
}

/// One configuration at one width: here and in the paper.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// The column (`x2`).
    pub column: String,
    /// The channels built here (the experiment's parameters, in order).
    pub channels: Vec<u32>,
    /// Multiply-adds of the network.
    pub macs: u64,
    /// Median time of one image, in milliseconds.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Images per second (batch 1): 1000 / median_ms.
    pub images_per_s: f64,
    /// `images_per_s` divided by the first row's in this column.
    pub relative: f64,
    /// The paper's GPU speed (batches/s).
    pub paper_gpu: f64,
    /// It, divided by the first row's.
    pub paper_gpu_relative: f64,
    /// The paper's ARM speed (images/s).
    pub paper_arm: f64,
    /// It, divided by the first row's.
    pub paper_arm_relative: f64,
}

/// Each value divided by the first one: the paper's speeds and ours on one scale.
pub fn relative(values: &[f64]) -> Vec<f64> {
    let first = values.first().copied().unwrap_or(1.0);
    values.iter().map(|v| v / first).collect()
}

/// Speeds of one experiment, `[row][column]`, from a speed per row and column.
fn grid(rows: usize, columns: usize, mut speed: impl FnMut(usize, usize) -> f64) -> Vec<Vec<f64>> {
    (0..rows).map(|r| (0..columns).map(|c| speed(r, c)).collect()).collect()
}

/// Column `c` of a `[row][column]` grid, divided by its first row.
fn relative_column(grid: &[Vec<f64>], c: usize) -> Vec<f64> {
    relative(&grid.iter().map(|row| row[c]).collect::<Vec<_>>())
}

/// Tables 1-4 from the measurements of every cell.
pub fn assemble(
    paper: &Paper,
    shapes: Platform,
    measured: &BTreeMap<Subject, Measured>,
) -> Result<Vec<TableReport>, Error> {
    let mut tables = Vec::new();
    for (i, e) in paper.experiments.iter().enumerate() {
        let (n_rows, n_cols) = (e.rows.len(), e.columns.len());
        let mut times = Vec::new();
        for r in 0..n_rows {
            for c in 0..n_cols {
                let key = Subject::Cell { experiment: i, row: r, column: c };
                let m = measured.get(&key).ok_or_else(|| {
                    Error::Missing(format!("table {}, {} {}", e.table, e.rows[r].config, e.columns[c]))
                })?;
                times.push(*m);
            }
        }
        let here = grid(n_rows, n_cols, |r, c| 1e3 / times[r * n_cols + c].timing.median_ms);
        let paper_speed = |platform| grid(n_rows, n_cols, |r, c| e.rows[r].on(platform).speed[&e.columns[c]]);
        let (gpu, arm) = (paper_speed(Platform::Gpu), paper_speed(Platform::Arm));
        let relatives = |g: &[Vec<f64>]| (0..n_cols).map(|c| relative_column(g, c)).collect::<Vec<_>>();
        let (here_rel, gpu_rel, arm_rel) = (relatives(&here), relatives(&gpu), relatives(&arm));
        let rows = e
            .rows
            .iter()
            .enumerate()
            .map(|(r, row)| RowReport {
                config: row.config.clone(),
                network: row.network.clone(),
                cells: (0..n_cols)
                    .map(|c| {
                        let m = &times[r * n_cols + c];
                        Cell {
                            column: e.columns[c].clone(),
                            channels: channels(paper, shapes, i, r, c),
                            macs: m.macs,
                            median_ms: m.timing.median_ms,
                            min_ms: m.timing.min_ms,
                            p90_ms: m.timing.p90_ms,
                            images_per_s: here[r][c],
                            relative: here_rel[c][r],
                            paper_gpu: gpu[r][c],
                            paper_gpu_relative: gpu_rel[c][r],
                            paper_arm: arm[r][c],
                            paper_arm_relative: arm_rel[c][r],
                        }
                    })
                    .collect(),
            })
            .collect();
        tables.push(TableReport {
            table: e.table,
            guideline: e.guideline.clone(),
            claim: e.claim.clone(),
            config: e.config.clone(),
            columns: e.columns.clone(),
            rows,
            verdict: judge(e, &here),
        });
    }
    Ok(tables)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use codegen::bench::Timing;

    /// Made-up measurements of every cell: `ms(experiment, row, column)` milliseconds.
    pub(crate) fn made_up(
        paper: &Paper,
        ms: impl Fn(usize, usize, usize) -> f64,
    ) -> BTreeMap<Subject, Measured> {
        let mut measured = BTreeMap::new();
        for (i, e) in paper.experiments.iter().enumerate() {
            for r in 0..e.rows.len() {
                for c in 0..e.columns.len() {
                    let t = ms(i, r, c);
                    let timing = Timing { median_ms: t, min_ms: t * 0.9, p90_ms: t * 1.1 };
                    let m = Measured { timing, macs: 1000, compile_s: 0.5 };
                    measured.insert(Subject::Cell { experiment: i, row: r, column: c }, m);
                }
            }
        }
        measured
    }

    #[test]
    fn relative_divides_by_the_first() {
        assert_eq!(relative(&[4.0, 2.0, 8.0]), [1.0, 0.5, 2.0]);
        assert!(relative(&[]).is_empty());
    }

    #[test]
    fn cells_carry_speed_and_both_normalizations() {
        let paper = Paper::builtin().unwrap();
        // Row r of every table takes (r + 1) ms at x1, twice that at x2, four times at x4.
        let measured = made_up(&paper, |_, r, c| (r + 1) as f64 * f64::from(1u32 << c));
        let tables = assemble(&paper, Platform::Arm, &measured).unwrap();
        assert_eq!(tables.len(), 4);
        let cell = &tables[0].rows[3].cells[2]; // table 1, 1:12, x4
        assert_eq!((cell.column.as_str(), cell.median_ms, cell.min_ms), ("x4", 16.0, 16.0 * 0.9));
        assert_eq!(cell.channels, [36, 432]);
        assert!((cell.images_per_s - 62.5).abs() < 1e-9);
        assert!((cell.relative - 0.25).abs() < 1e-12, "{}", cell.relative);
        assert_eq!((cell.paper_gpu, cell.paper_arm), (163.0, 4.4));
        assert!((cell.paper_gpu_relative - 163.0 / 232.0).abs() < 1e-12);
        assert!((cell.paper_arm_relative - 4.4 / 5.3).abs() < 1e-12);
        for t in &tables {
            assert!(t.rows[0].cells.iter().all(|c| c.relative == 1.0 && c.paper_gpu_relative == 1.0));
        }
    }

    #[test]
    fn a_missing_cell_is_an_error() {
        let paper = Paper::builtin().unwrap();
        let mut measured = made_up(&paper, |_, _, _| 1.0);
        measured.remove(&Subject::Cell { experiment: 2, row: 1, column: 0 });
        let err = assemble(&paper, Platform::Arm, &measured).unwrap_err().to_string();
        assert_eq!(err, "no measurement for table 3, 2-fragment-series x1");
    }
}
