//! Does a guideline hold here? Each experiment names the configuration its guideline favors
//! and the one it predicts slowest; the verdict compares their speeds at every width, here and
//! in the paper.

use serde::Serialize;

use super::paper::{Experiment, Platform};

/// How much slower the extreme configuration must be to count: timings on a shared machine
/// wander by a few percent, and a trend inside that is no trend.
pub const MARGIN: f64 = 0.05;

/// Whether a guideline's trend shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holds {
    /// The extreme configuration is slower by more than the margin at every width.
    Yes,
    /// At some widths only.
    Partly,
    /// At none.
    No,
}

/// One guideline's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// `G1` to `G4`.
    pub guideline: String,
    /// Whether the trend shows here.
    pub holds: Holds,
    /// The configuration the guideline favors.
    pub favored: String,
    /// The one it predicts slowest.
    pub extreme: String,
    /// Widths at which the extreme one is slower than the favored one by more than [`MARGIN`].
    pub slower_at: usize,
    /// Widths at which the favored one is the fastest of all.
    pub favored_fastest_at: usize,
    /// Widths measured.
    pub widths: usize,
    /// Speed of the extreme configuration over the favored one's, geometric mean over widths:
    /// here, on the paper's GPU and on its ARM CPU.
    pub ratio: Ratios,
    /// The verdict in one sentence.
    pub summary: String,
}

/// The extreme configuration's speed relative to the favored one's, per platform.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Ratios {
    /// Measured here.
    pub here: f64,
    /// The paper's GPU.
    pub gpu: f64,
    /// The paper's ARM CPU.
    pub arm: f64,
}

/// Judges an experiment from the speeds measured here, `[row][column]` (higher is faster).
pub fn judge(e: &Experiment, here: &[Vec<f64>]) -> Verdict {
    // The paper was checked when read: both rows exist.
    let (fav, ext) = (e.row(&e.favored).unwrap_or(0), e.row(&e.extreme).unwrap_or(0));
    let widths = e.columns.len();
    let slower_at = (0..widths).filter(|&c| here[ext][c] < (1.0 - MARGIN) * here[fav][c]).count();
    let favored_fastest_at = (0..widths).filter(|&c| here.iter().all(|row| row[c] <= here[fav][c])).count();
    let paper = |platform: Platform| {
        let speed = |r: usize, c: usize| e.rows[r].on(platform).speed[&e.columns[c]];
        geomean((0..widths).map(|c| speed(ext, c) / speed(fav, c)))
    };
    let ratio = Ratios {
        here: geomean((0..widths).map(|c| here[ext][c] / here[fav][c])),
        gpu: paper(Platform::Gpu),
        arm: paper(Platform::Arm),
    };
    let holds = match slower_at {
        n if n == widths => Holds::Yes,
        0 => Holds::No,
        _ => Holds::Partly,
    };
    let how = match holds {
        Holds::Yes => "holds here".to_string(),
        Holds::Partly => format!("holds here at {slower_at} of {widths} widths"),
        Holds::No => "does not hold here".to_string(),
    };
    let summary = format!(
        "{} {how}: {} runs at {:.2}x the speed of {} (paper: GPU {:.2}x, ARM {:.2}x); {} is the fastest at {} of {} widths.",
        e.guideline,
        quoted(&e.config, &e.extreme),
        ratio.here,
        quoted(&e.config, &e.favored),
        ratio.gpu,
        ratio.arm,
        quoted(&e.config, &e.favored),
        favored_fastest_at,
        widths
    );
    Verdict {
        guideline: e.guideline.clone(),
        holds,
        favored: e.favored.clone(),
        extreme: e.extreme.clone(),
        slower_at,
        favored_fastest_at,
        widths,
        ratio,
        summary,
    }
}

/// A configuration named so a sentence reads: `1:12`, `g = 8`, `(ReLU, shortcut) = (no, no)`.
fn quoted(heading: &str, config: &str) -> String {
    if config.contains(':') || config.contains('-') {
        config.to_string()
    } else if heading.contains(',') {
        format!("({heading}) = ({config})")
    } else {
        format!("{heading} = {config}")
    }
}

/// The geometric mean: the average of ratios.
fn geomean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    if n == 0 { 1.0 } else { (sum / n as f64).exp() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guidelines::Paper;

    fn table(n: usize) -> Experiment {
        Paper::builtin().unwrap().experiments[n - 1].clone()
    }

    #[test]
    fn the_papers_own_numbers_hold() {
        for n in 1..=4 {
            let e = table(n);
            for platform in [Platform::Gpu, Platform::Arm] {
                let speeds: Vec<Vec<f64>> = e
                    .rows
                    .iter()
                    .map(|r| e.columns.iter().map(|c| r.on(platform).speed[c]).collect())
                    .collect();
                let v = judge(&e, &speeds);
                assert_eq!(v.holds, Holds::Yes, "table {n} on {platform:?}: {}", v.summary);
            }
        }
    }

    #[test]
    fn a_slower_extreme_holds_and_says_by_how_much() {
        // Table 1: 1:1 at 100 images/s, 1:12 at 50, 70 and 80% of it.
        let here = vec![
            vec![100.0, 100.0, 100.0],
            vec![90.0, 90.0, 90.0],
            vec![80.0, 80.0, 80.0],
            vec![50.0, 70.0, 80.0],
        ];
        let v = judge(&table(1), &here);
        assert_eq!((v.holds, v.slower_at, v.favored_fastest_at, v.widths), (Holds::Yes, 3, 3, 3));
        let expected = (0.5f64 * 0.7 * 0.8).cbrt();
        assert!((v.ratio.here - expected).abs() < 1e-12);
        assert!((v.ratio.gpu - (748.0 / 1480.0 * 392.0 / 723.0 * 163.0 / 232.0f64).cbrt()).abs() < 1e-12);
        assert!(
            v.summary.starts_with("G1 holds here: 1:12 runs at 0.65x the speed of 1:1 (paper: GPU 0.58x"),
            "{}",
            v.summary
        );
        assert!(v.summary.ends_with("1:1 is the fastest at 3 of 3 widths."), "{}", v.summary);
    }

    #[test]
    fn noise_within_the_margin_is_no_trend() {
        // Table 2: g = 8 within 5% of g = 1 at x1, faster at x2, clearly slower only at x4;
        // g = 2 is the fastest at x1.
        let here = vec![
            vec![100.0, 100.0, 100.0],
            vec![101.0, 90.0, 90.0],
            vec![90.0, 90.0, 90.0],
            vec![97.0, 104.0, 60.0],
        ];
        let v = judge(&table(2), &here);
        assert_eq!((v.holds, v.slower_at, v.favored_fastest_at), (Holds::Partly, 1, 1));
        assert!(v.summary.starts_with("G2 holds here at 1 of 3 widths: g = 8 runs at"), "{}", v.summary);
        let flat = vec![vec![100.0; 3]; 4];
        let v = judge(&table(2), &flat);
        assert_eq!((v.holds, v.slower_at, v.ratio.here), (Holds::No, 0, 1.0));
        assert!(v.summary.starts_with("G2 does not hold here"), "{}", v.summary);
    }

    #[test]
    fn the_favored_row_need_not_be_the_first() {
        // Table 4 favors its last row (no ReLU, no shortcut) and predicts its first slowest.
        let here = vec![vec![80.0; 3], vec![90.0; 3], vec![85.0; 3], vec![100.0; 3]];
        let v = judge(&table(4), &here);
        assert_eq!((v.holds, v.favored_fastest_at), (Holds::Yes, 3));
        assert!((v.ratio.here - 0.8).abs() < 1e-12);
        assert!(v.summary.contains(
            "(ReLU, shortcut) = (yes, yes) runs at 0.80x the speed of (ReLU, shortcut) = (no, no)"
        ));
    }
}
