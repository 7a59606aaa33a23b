//! Rank correlations (Kendall's tau-b, Spearman's rho) and how well each cheap signal of a
//! search ranked the networks' final accuracy.
//!
//! Both correlations are O(n²) or O(n log n) on a few hundred candidates, so the simple
//! pairwise count is used for tau rather than Knight's merge-sort algorithm.

use super::Row;

/// Fewer rows than this leave a signal's correlations unreported: with two points any
/// signal ranks them perfectly or inversely, which says nothing.
pub const MIN_ROWS: usize = 3;

/// Kendall's tau-b of `x` and `y`: concordant minus discordant pairs, normalized so that ties
/// in either variable still allow ±1 (as scipy's `kendalltau`).
///
/// `None` when undefined: fewer than two pairs of values, a non-finite value, or a constant
/// `x` or `y`.
///
/// # Panics
/// If `x` and `y` have different lengths (a bug in the caller).
pub fn kendall_tau(x: &[f64], y: &[f64]) -> Option<f64> {
    if !defined(x, y) {
        return None;
    }
    let n = x.len();
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i].total_cmp(&x[j]);
            let dy = y[i].total_cmp(&y[j]);
            match (dx.is_eq(), dy.is_eq()) {
                (true, true) => {
                    tied_x += 1;
                    tied_y += 1;
                }
                (true, false) => tied_x += 1,
                (false, true) => tied_y += 1,
                (false, false) if dx == dy => concordant += 1,
                (false, false) => discordant += 1,
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as u64;
    let denominator = (((pairs - tied_x) * (pairs - tied_y)) as f64).sqrt();
    (denominator > 0.0).then(|| (concordant as f64 - discordant as f64) / denominator)
}

/// Spearman's rho of `x` and `y`: the Pearson correlation of their ranks, tied values sharing
/// the average of the ranks they span (as scipy's `spearmanr`).
///
/// `None` when undefined: fewer than two pairs of values, a non-finite value, or a constant
/// `x` or `y`.
///
/// # Panics
/// If `x` and `y` have different lengths (a bug in the caller).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if !defined(x, y) {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let mean = (x.len() as f64 + 1.0) / 2.0;
    let (mut cov, mut var_x, mut var_y) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        cov += (a - mean) * (b - mean);
        var_x += (a - mean) * (a - mean);
        var_y += (b - mean) * (b - mean);
    }
    (var_x > 0.0 && var_y > 0.0).then(|| cov / (var_x * var_y).sqrt())
}

/// Whether a correlation can be computed at all; constant inputs are caught by each
/// correlation's own zero denominator.
fn defined(x: &[f64], y: &[f64]) -> bool {
    assert_eq!(x.len(), y.len(), "rank correlation of series of different lengths");
    x.len() >= 2 && x.iter().chain(y).all(|v| v.is_finite())
}

/// 1-based ranks of `values`, ties getting the average of the ranks they span.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold equal values: ranks start+1 ..= end, averaged.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// How well one cheap signal ranked the final accuracy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SignalRank {
    /// The signal's name, e.g. `snip`.
    pub name: String,
    /// How many rows have a finite value of the signal.
    pub n: usize,
    /// Kendall's tau-b against the final accuracy; `None` below [`MIN_ROWS`] rows or when
    /// undefined.
    pub tau: Option<f64>,
    /// Spearman's rho against the final accuracy; `None` below [`MIN_ROWS`] rows or when
    /// undefined.
    pub rho: Option<f64>,
}

/// Each signal present in `rows`, in order of first appearance, with its rank correlations
/// against [`Row::accuracy`] over the rows that have a finite value of it (baselines included).
pub fn signal_ranks(rows: &[Row]) -> Vec<SignalRank> {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        for (name, _) in &row.signals {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let (signal, accuracy): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|row| {
                    let value = row.signals.iter().find(|(n, _)| n == name)?.1;
                    (value.is_finite() && row.accuracy.is_finite()).then_some((value, row.accuracy))
                })
                .unzip();
            let enough = signal.len() >= MIN_ROWS;
            SignalRank {
                name: name.to_string(),
                n: signal.len(),
                tau: kendall_tau(&signal, &accuracy).filter(|_| enough),
                rho: spearman(&signal, &accuracy).filter(|_| enough),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn perfect_and_inverse_orders() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let up = [10.0, 20.0, 30.0, 40.0, 50.0];
        let down = [0.5, 0.4, 0.3, 0.2, 0.1];
        assert!(close(kendall_tau(&x, &up), 1.0));
        assert!(close(spearman(&x, &up), 1.0));
        assert!(close(kendall_tau(&x, &down), -1.0));
        assert!(close(spearman(&x, &down), -1.0));
    }

    #[test]
    fn two_swapped_pairs() {
        // (1,2) and (3,4) are discordant, the other 8 of 10 pairs concordant: tau = 6/10.
        // Rank differences -1, 1, -1, 1, 0: rho = 1 - 6 * 4 / (5 * 24) = 0.8.
        let (x, y) = ([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]);
        assert!(close(kendall_tau(&x, &y), 0.6));
        assert!(close(spearman(&x, &y), 0.8));
    }

    #[test]
    fn ties_in_one_variable() {
        // 5 concordant pairs, 1 tied in x only: tau-b = 5 / sqrt((6 - 1) * 6).
        // Ranks of x 1, 2.5, 2.5, 4: rho = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10).
        let (x, y) = ([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]);
        assert!(close(kendall_tau(&x, &y), 5.0 / 30f64.sqrt()));
        assert!(close(spearman(&x, &y), 3.0 / 10f64.sqrt()));
    }

    #[test]
    fn scipy_examples() {
        // scipy.stats.kendalltau's docs: -0.47140452079103173. By hand: 2 concordant,
        // 6 discordant, 2 ties in x (one also tied in y), 1 tie in y: -4 / sqrt(8 * 9).
        let tau = kendall_tau(&[12.0, 2.0, 1.0, 12.0, 2.0], &[1.0, 4.0, 7.0, 1.0, 0.0]);
        assert!(close(tau, -4.0 / 72f64.sqrt()), "{tau:?}");
        assert!(close(tau, -0.47140452079103173));
        // scipy.stats.spearmanr's docs: 0.8207826816681233 = 8 / sqrt(10 * 9.5).
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
        assert!(close(rho, 0.8207826816681233), "{rho:?}");
    }

    #[test]
    fn undefined_correlations_are_none() {
        assert_eq!(kendall_tau(&[], &[]), None);
        assert_eq!(spearman(&[1.0], &[2.0]), None);
        assert_eq!(kendall_tau(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]), None);
        assert_eq!(kendall_tau(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn average_ranks_of_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]), [4.0, 1.0, 4.0, 2.0, 4.0]);
    }

    fn row(accuracy: f64, signals: &[(&str, f64)]) -> Row {
        Row {
            name: "c".into(),
            baseline: false,
            choices: Vec::new(),
            latency_ms: 1.0,
            accuracy,
            short_accuracy: accuracy,
            long_accuracy: None,
            params: 1,
            macs: 1,
            signals: signals.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            on_front: false,
            file: None,
        }
    }

    #[test]
    fn signals_are_ranked_over_the_rows_that_have_them() {
        let rows = [
            row(0.9, &[("snip", 3.0), ("params", 1.0)]),
            row(0.8, &[("snip", 2.0)]),
            row(0.7, &[("snip", 1.0), ("params", 2.0)]),
            row(0.6, &[("snip", f64::NAN)]),
        ];
        let ranks = signal_ranks(&rows);
        assert_eq!(ranks.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["snip", "params"]);
        assert_eq!((ranks[0].n, ranks[0].tau, ranks[0].rho), (3, Some(1.0), Some(1.0)));
        // Two rows rank any signal perfectly or inversely: too few to report.
        assert_eq!((ranks[1].n, ranks[1].tau, ranks[1].rho), (2, None, None));
    }
}
