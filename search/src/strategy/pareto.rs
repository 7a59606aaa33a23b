//! Pareto utilities over (accuracy, latency) points, accuracy maximized and latency minimized:
//! domination, the front, non-dominated sorting, crowding distance and the 2-d hypervolume;
//! plus Deb's constrained domination over [`Score`]s, which the strategies rank by.
//!
//! Points are `(accuracy, latency)` pairs. NaN coordinates are not expected (the strategies
//! treat a NaN score as a failure); sorting uses `total_cmp` so they cannot cause a panic.

use super::Score;

/// Whether `a` dominates `b`: at least as accurate and as fast, and strictly better in one.
pub fn dominates(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 >= b.0 && a.1 <= b.1 && (a.0 > b.0 || a.1 < b.1)
}

/// Deb's constrained domination: a feasible score dominates an infeasible one, of two
/// infeasible scores the smaller violation dominates, and two feasible scores compare by
/// [`dominates`].
pub fn constrained_dominates(a: &Score, b: &Score) -> bool {
    match (a.feasible(), b.feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => dominates(a.point(), b.point()),
    }
}

/// Indices of the points no other point dominates, sorted by latency (then by index). Equal
/// points are all kept.
pub fn front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (points[i], points[j]);
        a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)).then(i.cmp(&j))
    });
    // Sweep by latency: a point survives when it is the most accurate of its latency and
    // strictly more accurate than everything faster.
    let mut kept = Vec::new();
    let mut best_faster: Option<f64> = None;
    let mut start = 0;
    while start < order.len() {
        let latency = points[order[start]].1;
        let end = start + order[start..].iter().take_while(|&&i| points[i].1 == latency).count();
        let best_here = points[order[start]].0;
        if best_faster.is_none_or(|b| best_here > b) {
            kept.extend(order[start..end].iter().filter(|&&i| points[i].0 == best_here));
            best_faster = Some(best_here);
        }
        start = end;
    }
    kept
}

/// The non-dominated fronts of `points`: front 0 is [`front`]'s set, front 1 is what is
/// non-dominated once front 0 is removed, and so on. Each front lists indices in increasing
/// order.
pub fn nondominated_sort(points: &[(f64, f64)]) -> Vec<Vec<usize>> {
    fronts_by(points.len(), |i, j| dominates(points[i], points[j]))
}

/// [`nondominated_sort`] under [`constrained_dominates`]: feasible scores come first, by
/// non-domination rank, then infeasible ones by increasing violation.
pub fn constrained_sort(scores: &[Score]) -> Vec<Vec<usize>> {
    fronts_by(scores.len(), |i, j| constrained_dominates(&scores[i], &scores[j]))
}

/// Deb's fast non-dominated sort of `0..n` under the relation `dominates(i, j)`, O(n^2).
fn fronts_by(n: usize, dominates: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let beats: Vec<Vec<usize>> =
        (0..n).map(|i| (0..n).filter(|&j| i != j && dominates(i, j)).collect()).collect();
    let mut beaten_by = vec![0usize; n];
    for &j in beats.iter().flatten() {
        beaten_by[j] += 1;
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| beaten_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &beats[i] {
                beaten_by[j] -= 1;
                if beaten_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// The crowding distance of each point of one front (Deb et al. 2002): for each objective,
/// the gap between its two neighbours normalized by the objective's range, summed. The
/// extremes of each objective get infinity, so they are always preferred.
pub fn crowding_distance(points: &[(f64, f64)]) -> Vec<f64> {
    let n = points.len();
    let mut distance = vec![0.0; n];
    for objective in 0..2 {
        let value = |i: usize| if objective == 0 { points[i].0 } else { points[i].1 };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| value(i).total_cmp(&value(j)).then(i.cmp(&j)));
        let (Some(&lo), Some(&hi)) = (order.first(), order.last()) else {
            return distance;
        };
        distance[lo] = f64::INFINITY;
        distance[hi] = f64::INFINITY;
        let range = value(hi) - value(lo);
        if range > 0.0 {
            for w in order.windows(3) {
                distance[w[1]] += (value(w[2]) - value(w[0])) / range;
            }
        }
    }
    distance
}

/// The area dominated by `points` and bounded by `reference`, the (worst accuracy, worst
/// latency) corner. Points no better than the reference in both objectives add nothing.
pub fn hypervolume(points: &[(f64, f64)], reference: (f64, f64)) -> f64 {
    let inside: Vec<(f64, f64)> =
        points.iter().copied().filter(|p| p.0 > reference.0 && p.1 < reference.1).collect();
    let front: Vec<(f64, f64)> = front(&inside).into_iter().map(|i| inside[i]).collect();
    // Along the front accuracy rises with latency, so between one point's latency and the
    // next the dominated strip reaches up to that point's accuracy.
    let mut area = 0.0;
    for (k, p) in front.iter().enumerate() {
        let next_latency = front.get(k + 1).map_or(reference.1, |q| q.1);
        area += (next_latency - p.1) * (p.0 - reference.0);
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domination_needs_one_strict_improvement() {
        assert!(dominates((0.9, 1.0), (0.8, 1.0)));
        assert!(dominates((0.8, 0.5), (0.8, 1.0)));
        assert!(!dominates((0.8, 1.0), (0.8, 1.0)), "equal points do not dominate");
        assert!(!dominates((0.9, 2.0), (0.8, 1.0)), "a trade-off");
    }

    #[test]
    fn front_keeps_equal_points_and_sorts_by_latency() {
        let points = [(0.5, 3.0), (0.9, 5.0), (0.5, 3.0), (0.4, 4.0), (0.2, 1.0), (0.9, 6.0)];
        assert_eq!(front(&points), [4, 0, 2, 1]);
        assert_eq!(front(&[]), Vec::<usize>::new());
    }

    #[test]
    fn constrained_domination_prefers_feasible_then_small_violation() {
        let s = |accuracy, latency_ms, violation| Score { accuracy, latency_ms, violation };
        let scores = [s(0.9, 9.0, 0.5), s(0.1, 9.0, 0.0), s(0.99, 1.0, 0.2), s(0.5, 5.0, 0.0)];
        assert_eq!(constrained_sort(&scores), [vec![3], vec![1], vec![2], vec![0]]);
        assert!(constrained_dominates(&scores[1], &scores[2]), "feasible beats infeasible");
    }

    #[test]
    fn crowding_favours_extremes_and_isolated_points() {
        let d = crowding_distance(&[(0.1, 1.0), (0.5, 2.0), (0.55, 2.1), (0.9, 4.0)]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!(d[1] > 0.0 && d[2] > d[1], "{d:?}");
        assert!(crowding_distance(&[(0.5, 1.0)])[0].is_infinite());
        assert!(crowding_distance(&[]).is_empty());
    }

    #[test]
    fn hypervolume_of_a_staircase() {
        // Reference (0, 10); steps (0.5, 2) and (1, 6): 4 * 0.5 + 4 * 1.
        let hv = hypervolume(&[(0.5, 2.0), (1.0, 6.0), (0.4, 3.0), (2.0, 12.0)], (0.0, 10.0));
        assert_eq!(hv, 6.0);
        assert_eq!(hypervolume(&[], (0.0, 1.0)), 0.0);
    }
}
