//! Search strategies in ask/tell form: [`Strategy`], the kinds [`strategy`] builds (random,
//! regularized evolution, NSGA-II), and the Pareto utilities they and the reports share.
//!
//! Every strategy is a pure function of its seed, its genes and the sequence of `ask`s and
//! `tell`s it has seen, so a killed search resumes by replaying its journal: re-asking and
//! re-telling in the same order yields the same genomes.
//!
//! ```
//! use search::strategy::{Outcome, Score, StrategyKind, strategy};
//!
//! let kind: StrategyKind = "evolution".parse().unwrap();
//! let mut search = strategy(kind, &[3, 4, 2], 7);
//! for _ in 0..10 {
//!     let genome = search.ask();
//!     let latency_ms = 1.0 + genome.iter().sum::<usize>() as f64;
//!     let accuracy = genome.iter().map(|&g| (g as f64).sqrt()).sum::<f64>();
//!     search.tell(&genome, Outcome::Scored(Score { accuracy, latency_ms, violation: 0.0 }));
//! }
//! ```

mod evolution;
mod nsga2;
pub mod pareto;
mod random;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

/// A point of a search space: for each gene, the index of its chosen option.
pub type Genome = Vec<usize>;

/// What evaluating a genome measured. Accuracy is maximized, latency minimized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Validation accuracy, or any quality to maximize.
    pub accuracy: f64,
    /// Measured latency in milliseconds, to minimize.
    pub latency_ms: f64,
    /// 0 when the candidate meets every constraint, else how far it exceeds them (relative,
    /// summed over the constraints).
    pub violation: f64,
}

impl Score {
    /// Whether the candidate meets every constraint.
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }

    /// The two objectives as `(accuracy, latency_ms)`, the point type of [`pareto`].
    pub fn point(&self) -> (f64, f64) {
        (self.accuracy, self.latency_ms)
    }
}

/// The end of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The candidate was built, trained and measured.
    Scored(Score),
    /// The candidate could not be evaluated (it failed to compile, say); the search goes on.
    Failed,
}

impl Outcome {
    /// The score a strategy may rank. A NaN anywhere counts as a failure, because it would make
    /// domination comparisons meaningless.
    fn usable(self) -> Option<Score> {
        match self {
            Outcome::Scored(s) if !s.accuracy.is_nan() && !s.latency_ms.is_nan() && !s.violation.is_nan() => {
                Some(s)
            }
            _ => None,
        }
    }
}

/// A search strategy in ask/tell form.
///
/// `ask` may be called several times before the matching `tell`s arrive (evaluations run in
/// parallel); tells come in ask order, each with the genome its ask returned.
pub trait Strategy: Send {
    /// The next genome to evaluate.
    fn ask(&mut self) -> Genome;
    /// The outcome of evaluating `genome`, an earlier answer of [`Strategy::ask`].
    fn tell(&mut self, genome: &Genome, outcome: Outcome);
}

/// Which strategy to run, with its parameters.
///
/// Parses from and displays as `random`, `evolution[:POPULATION[:SAMPLE]]` or
/// `nsga2[:POPULATION]`; the bare names take defaults sized for budgets of 20 to 60
/// evaluations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyKind {
    /// Uniform random sampling.
    Random,
    /// Regularized (aging) evolution, Real et al. 2019.
    Evolution {
        /// How many of the latest scored candidates form the population.
        population: usize,
        /// How many members a parent is the best of.
        sample: usize,
    },
    /// NSGA-II with constrained domination, Deb et al. 2002.
    Nsga2 {
        /// Parents kept per generation, and children per generation.
        population: usize,
    },
}

/// The default population: a few generations fit in a budget of 20 to 60 evaluations.
const DEFAULT_POPULATION: usize = 8;
/// The default tournament size of evolution: some selection pressure in a population of 8.
const DEFAULT_SAMPLE: usize = 3;

impl StrategyKind {
    /// Regularized evolution with its default parameters.
    pub const EVOLUTION: StrategyKind =
        StrategyKind::Evolution { population: DEFAULT_POPULATION, sample: DEFAULT_SAMPLE };
    /// NSGA-II with its default population.
    pub const NSGA2: StrategyKind = StrategyKind::Nsga2 { population: DEFAULT_POPULATION };
}

/// A strategy name that [`StrategyKind`] does not know, or bad parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown strategy `{0}`: expected `random`, `evolution[:POPULATION[:SAMPLE]]` or \
     `nsga2[:POPULATION]` (positive integers)"
)]
pub struct ParseStrategyKindError(String);

impl FromStr for StrategyKind {
    type Err = ParseStrategyKindError;

    fn from_str(s: &str) -> Result<StrategyKind, ParseStrategyKindError> {
        let err = || ParseStrategyKindError(s.to_string());
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default();
        let numbers = parts
            .map(|p| p.parse::<usize>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(err)?;
        match (name, numbers.as_slice()) {
            ("random", []) => Ok(StrategyKind::Random),
            ("evolution", []) => Ok(StrategyKind::EVOLUTION),
            ("evolution", &[population]) => {
                Ok(StrategyKind::Evolution { population, sample: DEFAULT_SAMPLE.min(population) })
            }
            ("evolution", &[population, sample]) => Ok(StrategyKind::Evolution { population, sample }),
            ("nsga2", []) => Ok(StrategyKind::NSGA2),
            ("nsga2", &[population]) => Ok(StrategyKind::Nsga2 { population }),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StrategyKind::Random => f.write_str("random"),
            k if k == StrategyKind::EVOLUTION => f.write_str("evolution"),
            StrategyKind::Evolution { population, sample } => {
                write!(f, "evolution:{population}:{sample}")
            }
            k if k == StrategyKind::NSGA2 => f.write_str("nsga2"),
            StrategyKind::Nsga2 { population } => write!(f, "nsga2:{population}"),
        }
    }
}

/// The strategy `kind` over a space where `genes[i]` is the number of options of gene `i`,
/// seeded with `seed`.
///
/// # Panics
///
/// If a gene has no option, or a population or sample size is 0.
pub fn strategy(kind: StrategyKind, genes: &[usize], seed: u64) -> Box<dyn Strategy> {
    assert!(genes.iter().all(|&n| n >= 1), "every gene has an option: {genes:?}");
    let base = Base::new(genes, seed);
    match kind {
        StrategyKind::Random => Box::new(random::Random::new(base)),
        StrategyKind::Evolution { population, sample } => {
            assert!(population >= 1 && sample >= 1, "{kind:?} has an empty population or sample");
            Box::new(evolution::Evolution::new(base, population, sample))
        }
        StrategyKind::Nsga2 { population } => {
            assert!(population >= 1, "{kind:?} has an empty population");
            Box::new(nsga2::Nsga2::new(base, population))
        }
    }
}

/// How many candidates a strategy draws looking for a genome it has not asked before, before
/// it settles for a repeat; bounded so a space smaller than the budget cannot loop forever.
const FRESH_TRIES: usize = 64;

/// What every strategy holds: the space, its random stream and the genomes already asked.
struct Base {
    genes: Vec<usize>,
    rng: Rng,
    asked: HashSet<Genome>,
}

impl Base {
    fn new(genes: &[usize], seed: u64) -> Base {
        Base { genes: genes.to_vec(), rng: Rng::new(seed), asked: HashSet::new() }
    }

    /// The first of up to [`FRESH_TRIES`] draws of `draw` not asked before (else the last
    /// draw), recorded as asked.
    fn fresh(&mut self, mut draw: impl FnMut(&[usize], &mut Rng) -> Genome) -> Genome {
        let mut genome = draw(&self.genes, &mut self.rng);
        for _ in 1..FRESH_TRIES {
            if !self.asked.contains(&genome) {
                break;
            }
            genome = draw(&self.genes, &mut self.rng);
        }
        self.asked.insert(genome.clone());
        genome
    }
}

/// A uniformly random genome.
fn random_genome(genes: &[usize], rng: &mut Rng) -> Genome {
    genes.iter().map(|&n| rng.below(n)).collect()
}

/// Sets gene `i` of `genome` to another of its options, uniformly; a gene with one option
/// stays.
fn mutate_gene(genome: &mut Genome, i: usize, genes: &[usize], rng: &mut Rng) {
    if genes[i] > 1 {
        // Draw among the other options: skip over the current one.
        let other = rng.below(genes[i] - 1);
        genome[i] = if other >= genome[i] { other + 1 } else { other };
    }
}

/// Changes one gene of `genome`, drawn among those with more than one option, so the result
/// differs from the input whenever the space allows it.
fn mutate_one(genome: &mut Genome, genes: &[usize], rng: &mut Rng) {
    let mutable: Vec<usize> = (0..genes.len()).filter(|&i| genes[i] > 1).collect();
    if !mutable.is_empty() {
        let i = mutable[rng.below(mutable.len())];
        mutate_gene(genome, i, genes, rng);
    }
}

/// The strategies' random stream: ChaCha8, whose output for a seed is fixed by its
/// specification, so a journal replays the same on every machine.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `0..n` (Lemire's method, with rejection so it is unbiased).
    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "an empty range has no element");
        let n = n as u64;
        let mut m = u128::from(self.0.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.0.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as usize
    }

    /// True with probability `p` (to 2^-53).
    fn chance(&mut self, p: f64) -> bool {
        ((self.0.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }

    /// A fair coin.
    fn coin(&mut self) -> bool {
        self.0.next_u64() >> 63 == 1
    }

    /// `k` distinct indices of `0..n` (all of them when `k >= n`), by a partial Fisher-Yates
    /// shuffle.
    fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + self.below(n - i);
            order.swap(i, j);
        }
        order.truncate(k);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_display_round_trip() {
        let kinds = [
            StrategyKind::Random,
            StrategyKind::EVOLUTION,
            StrategyKind::Evolution { population: 20, sample: 5 },
            StrategyKind::NSGA2,
            StrategyKind::Nsga2 { population: 12 },
        ];
        for kind in kinds {
            assert_eq!(kind.to_string().parse::<StrategyKind>(), Ok(kind), "{kind}");
        }
        assert_eq!("evolution".parse(), Ok(StrategyKind::Evolution { population: 8, sample: 3 }));
        assert_eq!("nsga2".parse(), Ok(StrategyKind::Nsga2 { population: 8 }));
        assert_eq!("evolution:2".parse(), Ok(StrategyKind::Evolution { population: 2, sample: 2 }));
        assert_eq!(StrategyKind::EVOLUTION.to_string(), "evolution");
    }

    #[test]
    fn bad_kinds_list_the_choices() {
        for bad in ["", "grid", "nsga2:0", "nsga2:x", "random:3", "evolution:1:2:3", "nsga2:"] {
            let err = bad.parse::<StrategyKind>().unwrap_err().to_string();
            assert!(err.contains("random") && err.contains("nsga2"), "{bad}: {err}");
        }
    }

    #[test]
    fn below_is_uniform_and_in_range() {
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
    }

    #[test]
    fn mutation_always_changes_a_mutable_gene() {
        let genes = [1, 2, 5, 1];
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let parent = random_genome(&genes, &mut rng);
            let mut child = parent.clone();
            mutate_one(&mut child, &genes, &mut rng);
            let changed = (0..genes.len()).filter(|&i| child[i] != parent[i]).count();
            assert_eq!(changed, 1, "{parent:?} -> {child:?}");
            assert!(child.iter().zip(&genes).all(|(&g, &n)| g < n));
        }
        let mut fixed = vec![0, 0];
        mutate_one(&mut fixed, &[1, 1], &mut rng);
        assert_eq!(fixed, [0, 0], "nothing to mutate");
    }

    #[test]
    fn distinct_draws_distinct_indices() {
        let mut rng = Rng::new(9);
        for (n, k) in [(8, 3), (3, 3), (2, 5), (1, 1)] {
            let mut d = rng.distinct(n, k);
            assert_eq!(d.len(), k.min(n));
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), k.min(n), "distinct");
            assert!(d.iter().all(|&i| i < n));
        }
    }

    #[test]
    fn nan_scores_count_as_failures() {
        let s = Score { accuracy: f64::NAN, latency_ms: 1.0, violation: 0.0 };
        assert_eq!(Outcome::Scored(s).usable(), None);
        assert_eq!(Outcome::Failed.usable(), None);
        let ok = Score { accuracy: 0.5, latency_ms: 1.0, violation: 0.0 };
        assert_eq!(Outcome::Scored(ok).usable(), Some(ok));
    }
}
