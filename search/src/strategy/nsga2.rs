//! NSGA-II (Deb et al. 2002, "A Fast and Elitist Multiobjective Genetic Algorithm") with
//! constrained domination, in ask/tell form.
//!
//! The first `population` asks are random. Later asks breed a child from the current parents:
//! two binary tournaments (constrained rank, then crowding distance), uniform crossover, then
//! per-gene mutation with probability 1/len, at least one gene changed. Scored tells collect
//! into an offspring pool; when it holds `population` children, parents and offspring together
//! are cut back to `population` by non-dominated sorting, the last front that only partly fits
//! by crowding distance. Asks that run ahead of their tells breed from the parents of the
//! moment, so pipelined evaluation needs no special case.

use super::{Base, Genome, Outcome, Rng, Score, Strategy, mutate_gene, mutate_one, pareto, random_genome};

/// NSGA-II's state: the parents with their rank and crowding distance, and the children told
/// since the last generation.
pub(super) struct Nsga2 {
    base: Base,
    population: usize,
    parents: Vec<(Genome, Score)>,
    rank: Vec<usize>,
    crowding: Vec<f64>,
    offspring: Vec<(Genome, Score)>,
    asks: usize,
}

impl Nsga2 {
    pub(super) fn new(base: Base, population: usize) -> Nsga2 {
        Nsga2 {
            base,
            population,
            parents: Vec::new(),
            rank: Vec::new(),
            crowding: Vec::new(),
            offspring: Vec::new(),
            asks: 0,
        }
    }

    /// Replaces the parents by the best `population` of parents and offspring together.
    fn next_generation(&mut self) {
        let mut pool = std::mem::take(&mut self.parents);
        pool.append(&mut self.offspring);
        let scores: Vec<Score> = pool.iter().map(|m| m.1).collect();
        let mut chosen = Vec::with_capacity(self.population);
        for front in pareto::constrained_sort(&scores) {
            let room = self.population - chosen.len();
            if front.len() <= room {
                chosen.extend(front);
            } else {
                let points: Vec<(f64, f64)> = front.iter().map(|&i| scores[i].point()).collect();
                let crowding = pareto::crowding_distance(&points);
                let mut order: Vec<usize> = (0..front.len()).collect();
                // Stable, so equally crowded members keep their order and the cut is
                // reproducible.
                order.sort_by(|&a, &b| crowding[b].total_cmp(&crowding[a]));
                chosen.extend(order[..room].iter().map(|&k| front[k]));
            }
            if chosen.len() == self.population {
                break;
            }
        }
        chosen.sort_unstable();
        let mut pool: Vec<Option<(Genome, Score)>> = pool.into_iter().map(Some).collect();
        self.parents = chosen.into_iter().map(|i| pool[i].take().expect("chosen once")).collect();
        self.rank_parents();
    }

    /// Sets each parent's constrained rank and its crowding distance within its front.
    fn rank_parents(&mut self) {
        let scores: Vec<Score> = self.parents.iter().map(|m| m.1).collect();
        self.rank = vec![0; scores.len()];
        self.crowding = vec![0.0; scores.len()];
        for (r, front) in pareto::constrained_sort(&scores).into_iter().enumerate() {
            let points: Vec<(f64, f64)> = front.iter().map(|&i| scores[i].point()).collect();
            for (&i, d) in front.iter().zip(pareto::crowding_distance(&points)) {
                self.rank[i] = r;
                self.crowding[i] = d;
            }
        }
    }
}

impl Strategy for Nsga2 {
    fn ask(&mut self) -> Genome {
        self.asks += 1;
        // Random until the first `population` asks are out, and until a first generation of
        // parents exists (its tells may lag, or early candidates may have failed).
        if self.asks <= self.population || self.parents.is_empty() {
            return self.base.fresh(random_genome);
        }
        let (parents, rank, crowding) = (&self.parents, &self.rank, &self.crowding);
        self.base.fresh(|genes, rng| {
            let a = &parents[tournament(rank, crowding, rng)].0;
            let b = &parents[tournament(rank, crowding, rng)].0;
            let mut child: Genome = a.iter().zip(b).map(|(&x, &y)| if rng.coin() { x } else { y }).collect();
            mutate(&mut child, genes, rng);
            child
        })
    }

    fn tell(&mut self, genome: &Genome, outcome: Outcome) {
        if let Some(score) = outcome.usable() {
            self.offspring.push((genome.clone(), score));
            if self.offspring.len() >= self.population {
                self.next_generation();
            }
        }
    }
}

/// The index of the better of two parents drawn at random: lower rank, then larger crowding
/// distance, then the earlier parent.
fn tournament(rank: &[usize], crowding: &[f64], rng: &mut Rng) -> usize {
    let better =
        |i: usize, j: usize| rank[i].cmp(&rank[j]).then(crowding[j].total_cmp(&crowding[i])).then(i.cmp(&j));
    let pair = rng.distinct(rank.len(), 2);
    pair.into_iter().min_by(|&i, &j| better(i, j)).expect("parents exist")
}

/// Changes each gene that has a choice with probability 1/(number of such genes), and one of
/// them when none changed, so a child never merely repeats its crossover.
fn mutate(genome: &mut Genome, genes: &[usize], rng: &mut Rng) {
    let mutable: Vec<usize> = (0..genes.len()).filter(|&i| genes[i] > 1).collect();
    let p = 1.0 / mutable.len() as f64;
    let mut changed = false;
    for &i in &mutable {
        if rng.chance(p) {
            mutate_gene(genome, i, genes, rng);
            changed = true;
        }
    }
    if !changed {
        mutate_one(genome, genes, rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(accuracy: f64, latency_ms: f64) -> Score {
        Score { accuracy, latency_ms, violation: 0.0 }
    }

    #[test]
    fn a_generation_keeps_the_front_then_the_least_crowded() {
        let mut nsga2 = Nsga2::new(Base::new(&[10], 0), 3);
        // The front is 0..4, where 2 crowds 1; 4 is dominated.
        let told = [(0.1, 1.0), (0.3, 3.0), (0.29, 2.9), (0.9, 9.0), (0.05, 5.0)];
        for (g, &(a, l)) in told.iter().enumerate() {
            nsga2.offspring.push((vec![g], score(a, l)));
        }
        nsga2.next_generation();
        let kept: Vec<usize> = nsga2.parents.iter().map(|m| m.0[0]).collect();
        assert_eq!(kept, [0, 1, 3], "the extremes and the less crowded of 1 and 2");
        assert_eq!(nsga2.rank, [0, 0, 0]);
        assert!(nsga2.offspring.is_empty());
    }

    #[test]
    fn offspring_wait_for_a_full_pool() {
        let mut nsga2 = Nsga2::new(Base::new(&[4, 4], 5), 2);
        nsga2.tell(&vec![0, 0], Outcome::Scored(score(0.1, 1.0)));
        nsga2.tell(&vec![1, 0], Outcome::Failed);
        assert!(nsga2.parents.is_empty(), "one child of two");
        nsga2.tell(&vec![1, 1], Outcome::Scored(score(0.2, 2.0)));
        assert_eq!(nsga2.parents.len(), 2);
    }

    #[test]
    fn mutation_changes_at_least_one_gene() {
        let genes = [1, 3, 3, 3, 3];
        let mut rng = Rng::new(4);
        let mut total = 0;
        for _ in 0..500 {
            let mut genome = vec![0; 5];
            mutate(&mut genome, &genes, &mut rng);
            let changed = genome.iter().filter(|&&g| g != 0).count();
            assert!(changed >= 1 && genome[0] == 0, "{genome:?}");
            total += changed;
        }
        // One change expected from the per-gene rate, plus the forced change when none happens
        // (probability (3/4)^4 ≈ 0.32).
        assert!((550..800).contains(&total), "{total}");
    }
}
