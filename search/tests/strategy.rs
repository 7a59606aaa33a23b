//! The search strategies on a synthetic space whose Pareto front is known exactly, and the
//! Pareto helpers against brute force.
//!
//! The space has 6 genes of 5 options. Latency is 1 + the sum of the genes; accuracy is
//! `sum_i 0.5^i * sqrt(g_i)`, concave with falling weights, so each latency has one best
//! allocation and the true front (25 points) takes a brute-force pass over all 5^6 genomes.
//! Every run is seeded, so the thresholds below are fixed outcomes with margin, not odds.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;
use search::strategy::{Genome, Outcome, Score, StrategyKind, pareto, strategy};

const GENES: [usize; 6] = [5; 6];
/// Worst accuracy (the all-zero genome) and worst latency of the space.
const REFERENCE: (f64, f64) = (0.0, 25.0);
const SEEDS: [u64; 4] = [0, 1, 2, 3];

/// `(accuracy, latency)` of a genome.
fn objectives(genome: &Genome) -> (f64, f64) {
    let latency = 1.0 + genome.iter().sum::<usize>() as f64;
    let accuracy = genome.iter().enumerate().map(|(i, &g)| 0.5f64.powi(i as i32) * (g as f64).sqrt());
    (accuracy.sum(), latency)
}

/// Every genome of the space.
fn all_genomes() -> Vec<Genome> {
    let count = GENES.iter().product::<usize>();
    (0..count)
        .map(|mut k| {
            GENES
                .iter()
                .map(|&n| {
                    let g = k % n;
                    k /= n;
                    g
                })
                .collect()
        })
        .collect()
}

fn true_hypervolume() -> f64 {
    let points: Vec<(f64, f64)> = all_genomes().iter().map(objectives).collect();
    pareto::hypervolume(&points, REFERENCE)
}

/// A finished search: every genome asked, in order, with its outcome.
struct Run {
    asked: Vec<Genome>,
    outcomes: Vec<Outcome>,
}

impl Run {
    fn points(&self) -> Vec<(f64, f64)> {
        self.outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Scored(s) => Some(s.point()),
                Outcome::Failed => None,
            })
            .collect()
    }

    fn hypervolume_ratio(&self) -> f64 {
        pareto::hypervolume(&self.points(), REFERENCE) / true_hypervolume()
    }
}

/// Runs `kind` for `budget` evaluations, asking `ahead` genomes before telling the oldest (as
/// a driver with `ahead + 1` parallel evaluations would), scoring each with `evaluate`.
fn run(
    kind: StrategyKind,
    genes: &[usize],
    seed: u64,
    budget: usize,
    ahead: usize,
    mut evaluate: impl FnMut(&Genome) -> Outcome,
) -> Run {
    let mut search = strategy(kind, genes, seed);
    let mut pending = VecDeque::new();
    let mut result = Run { asked: Vec::new(), outcomes: Vec::new() };
    for k in 0..budget + ahead {
        if k < budget {
            let genome = search.ask();
            assert_eq!(genome.len(), genes.len());
            assert!(genome.iter().zip(genes).all(|(&g, &n)| g < n), "{genome:?} outside {genes:?}");
            result.asked.push(genome.clone());
            pending.push_back(genome);
        }
        if k >= ahead {
            let genome = pending.pop_front().expect("asked before told");
            let outcome = evaluate(&genome);
            search.tell(&genome, outcome);
            result.outcomes.push(outcome);
        }
    }
    result
}

fn unconstrained(genome: &Genome) -> Outcome {
    let (accuracy, latency_ms) = objectives(genome);
    Outcome::Scored(Score { accuracy, latency_ms, violation: 0.0 })
}

/// Latency above 10 ms violates the constraint, in proportion to the excess.
fn latency_limited(genome: &Genome) -> Outcome {
    let (accuracy, latency_ms) = objectives(genome);
    Outcome::Scored(Score { accuracy, latency_ms, violation: (latency_ms / 10.0 - 1.0).max(0.0) })
}

fn kind(name: &str) -> StrategyKind {
    name.parse().expect("a known strategy")
}

/// Hypervolume ratios of `kind` over [`SEEDS`].
fn ratios(kind: StrategyKind, budget: usize, ahead: usize) -> Vec<f64> {
    SEEDS.iter().map(|&s| run(kind, &GENES, s, budget, ahead, unconstrained).hypervolume_ratio()).collect()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[test]
fn brute_force_front_is_one_point_per_latency() {
    let points: Vec<(f64, f64)> = all_genomes().iter().map(objectives).collect();
    assert_eq!(points.len(), 15_625);
    let front = pareto::front(&points);
    let latencies: Vec<f64> = front.iter().map(|&i| points[i].1).collect();
    assert_eq!(latencies, (1..=25).map(f64::from).collect::<Vec<_>>());
}

#[test]
fn same_seed_and_tells_give_the_same_asks() {
    // Failures and pipelining included, as in a journal replay.
    let flaky = |g: &Genome| if g[1] == 3 { Outcome::Failed } else { latency_limited(g) };
    for name in ["random", "evolution", "nsga2"] {
        let first = run(kind(name), &GENES, 11, 60, 2, flaky);
        let again = run(kind(name), &GENES, 11, 60, 2, flaky);
        let other = run(kind(name), &GENES, 12, 60, 2, flaky);
        assert_eq!(first.asked, again.asked, "{name}");
        assert_ne!(first.asked, other.asked, "{name}: the seed matters");
    }
}

#[test]
fn nsga2_approaches_the_true_front_and_beats_random() {
    let nsga2 = ratios(kind("nsga2"), 150, 0);
    let random = ratios(kind("random"), 150, 0);
    assert!(nsga2.iter().all(|&r| r >= 0.9), "{nsga2:?}");
    assert!(mean(&nsga2) > mean(&random) + 0.03, "{nsga2:?} vs {random:?}");
}

#[test]
fn evolution_approaches_the_true_front_and_beats_random() {
    let evolution = ratios(kind("evolution"), 300, 0);
    let random = ratios(kind("random"), 300, 0);
    assert!(evolution.iter().all(|&r| r >= 0.88), "{evolution:?}");
    assert!(mean(&evolution) >= 0.9, "{evolution:?}");
    assert!(mean(&evolution) > mean(&random), "{evolution:?} vs {random:?}");
}

#[test]
fn pipelined_asks_still_converge() {
    let nsga2 = ratios(kind("nsga2"), 150, 3);
    let evolution = ratios(kind("evolution"), 300, 3);
    assert!(nsga2.iter().all(|&r| r >= 0.85), "{nsga2:?}");
    assert!(evolution.iter().all(|&r| r >= 0.85), "{evolution:?}");
}

#[test]
fn constraints_make_late_asks_feasible() {
    let late_feasible = |name: &str, seed: u64| {
        let done = run(kind(name), &GENES, seed, 60, 0, latency_limited);
        let late = &done.asked[30..];
        late.iter().filter(|g| objectives(g).1 <= 10.0).count() as f64 / late.len() as f64
    };
    for seed in SEEDS {
        let random = late_feasible("random", seed);
        for name in ["evolution", "nsga2"] {
            let guided = late_feasible(name, seed);
            assert!(guided >= 0.65 && guided > random + 0.3, "{name} seed {seed}: {guided} vs {random}");
        }
    }
}

#[test]
fn failures_are_tolerated() {
    // A third of the space fails to evaluate; the searches keep going around it.
    let flaky = |g: &Genome| if (g[0] + g[2]).is_multiple_of(3) { Outcome::Failed } else { unconstrained(g) };
    for name in ["evolution", "nsga2"] {
        let done = run(kind(name), &GENES, 5, 150, 1, flaky);
        let ratio = done.hypervolume_ratio();
        assert!(ratio >= 0.8, "{name}: {ratio}");
    }
    // When everything fails there is nothing to learn from, but asks stay fresh.
    for name in ["random", "evolution", "nsga2"] {
        let done = run(kind(name), &GENES, 5, 40, 0, |_| Outcome::Failed);
        let distinct: HashSet<&Genome> = done.asked.iter().collect();
        assert_eq!(distinct.len(), 40, "{name}");
    }
}

#[test]
fn asks_avoid_repeats_while_the_space_allows() {
    for name in ["random", "evolution", "nsga2"] {
        let done = run(kind(name), &GENES, 8, 60, 0, unconstrained);
        let distinct: HashSet<&Genome> = done.asked.iter().collect();
        assert_eq!(distinct.len(), 60, "{name}");
    }
}

#[test]
fn tiny_spaces_do_not_hang() {
    for name in ["random", "evolution", "nsga2", "evolution:2:2", "nsga2:1"] {
        let done = run(kind(name), &[2], 1, 50, 1, unconstrained);
        let first: HashSet<&Genome> = done.asked[..2].iter().collect();
        assert_eq!(first.len(), 2, "{name}: both genomes before any repeat");
        let single = run(kind(name), &[1, 1], 1, 20, 0, unconstrained);
        assert!(single.asked.iter().all(|g| g == &[0, 0]), "{name}");
        let empty = run(kind(name), &[], 1, 5, 0, unconstrained);
        assert!(empty.asked.iter().all(Vec::is_empty), "{name}");
    }
}

/// Small integer coordinates, so ties and equal points are common.
fn point_sets() -> impl proptest::strategy::Strategy<Value = Vec<(f64, f64)>> {
    proptest::collection::vec((0..8i32, 0..8i32).prop_map(|(a, l)| (f64::from(a), f64::from(l))), 0..24)
}

proptest! {
    #[test]
    fn front_matches_brute_force(points in point_sets()) {
        let front = pareto::front(&points);
        let brute: Vec<usize> = (0..points.len())
            .filter(|&i| !points.iter().any(|&q| pareto::dominates(q, points[i])))
            .collect();
        let mut sorted = front.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, brute);
        prop_assert!(front.windows(2).all(|w| points[w[0]].1 <= points[w[1]].1), "by latency");
    }

    #[test]
    fn nondominated_sort_peels_fronts(points in point_sets()) {
        let fronts = pareto::nondominated_sort(&points);
        let mut left: Vec<usize> = (0..points.len()).collect();
        for front in &fronts {
            let rest: Vec<(f64, f64)> = left.iter().map(|&i| points[i]).collect();
            let mut expected: Vec<usize> = pareto::front(&rest).into_iter().map(|k| left[k]).collect();
            expected.sort_unstable();
            prop_assert_eq!(front, &expected);
            left.retain(|i| !front.contains(i));
        }
        prop_assert!(left.is_empty(), "every point in some front");
    }

    #[test]
    fn hypervolume_matches_counted_cells(points in point_sets(), reference in (0..3i32, 5..10i32)) {
        let reference = (f64::from(reference.0), f64::from(reference.1));
        // Unit cell [l, l+1] x [a, a+1] is dominated when some point is at least as accurate
        // as its top and at least as fast as its left side.
        let mut cells = 0;
        for l in reference.1 as i32 - 10..reference.1 as i32 {
            for a in reference.0 as i32..reference.0 as i32 + 10 {
                let (l, a) = (f64::from(l), f64::from(a));
                cells += usize::from(points.iter().any(|p| p.1 <= l && p.0 >= a + 1.0));
            }
        }
        prop_assert_eq!(pareto::hypervolume(&points, reference), cells as f64);
    }

    #[test]
    fn crowding_is_infinite_at_the_extremes(points in point_sets()) {
        let d = pareto::crowding_distance(&points);
        prop_assert_eq!(d.len(), points.len());
        prop_assert!(d.iter().all(|&x| x >= 0.0));
        // The least accurate point, first by index, ends the accuracy order.
        if let Some(worst) = (0..points.len()).min_by(|&i, &j| points[i].0.total_cmp(&points[j].0)) {
            prop_assert!(d[worst].is_infinite());
        }
    }
}
