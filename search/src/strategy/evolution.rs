//! Regularized (aging) evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
//! Architecture Search"), with tournaments decided by constrained Pareto rank because the
//! search trades accuracy against latency.
//!
//! The first `population` asks are random. Afterwards a parent is the best of `sample`
//! distinct members of the current population, and the child changes one of its genes. Best
//! means the lowest constrained rank, then the largest crowding distance within that rank,
//! then the highest accuracy. Without the crowding step, ties on the front go to its accurate,
//! slow end, the population drifts there, and on the test space the search covers less of the
//! front than random sampling does. Every
//! scored tell joins the population and, once it is full, pushes out the oldest member, so a
//! lucky early candidate cannot dominate forever. Failed candidates never join.

use std::collections::VecDeque;

use super::{Base, Genome, Outcome, Score, Strategy, mutate_one, pareto, random_genome};

/// Regularized evolution's state: the living population, oldest first.
pub(super) struct Evolution {
    base: Base,
    population: usize,
    sample: usize,
    members: VecDeque<(Genome, Score)>,
    asks: usize,
}

impl Evolution {
    pub(super) fn new(base: Base, population: usize, sample: usize) -> Evolution {
        Evolution { base, population, sample, members: VecDeque::new(), asks: 0 }
    }
}

impl Strategy for Evolution {
    fn ask(&mut self) -> Genome {
        self.asks += 1;
        // Random until the first `population` asks are out, and for as long as nothing has
        // been scored (pipelined asks, or every early candidate failed).
        if self.asks <= self.population || self.members.is_empty() {
            return self.base.fresh(random_genome);
        }
        let scores: Vec<Score> = self.members.iter().map(|m| m.1).collect();
        let (rank, crowding) = rank_of(&scores);
        let members = &self.members;
        let sample = self.sample;
        self.base.fresh(|genes, rng| {
            let drawn = rng.distinct(members.len(), sample);
            let mut child = members[best(drawn, &scores, &rank, &crowding)].0.clone();
            mutate_one(&mut child, genes, rng);
            child
        })
    }

    fn tell(&mut self, genome: &Genome, outcome: Outcome) {
        if let Some(score) = outcome.usable() {
            self.members.push_back((genome.clone(), score));
            if self.members.len() > self.population {
                self.members.pop_front();
            }
        }
    }
}

/// Each score's constrained non-domination rank (0 is best) and its crowding distance within
/// that rank.
fn rank_of(scores: &[Score]) -> (Vec<usize>, Vec<f64>) {
    let mut rank = vec![0; scores.len()];
    let mut crowding = vec![0.0; scores.len()];
    for (r, front) in pareto::constrained_sort(scores).iter().enumerate() {
        let points: Vec<(f64, f64)> = front.iter().map(|&i| scores[i].point()).collect();
        for (&i, d) in front.iter().zip(pareto::crowding_distance(&points)) {
            rank[i] = r;
            crowding[i] = d;
        }
    }
    (rank, crowding)
}

/// The best of the `drawn` members: lowest constrained rank, then largest crowding distance,
/// then highest accuracy, then the older member, so the choice is a pure function of the draw.
fn best(drawn: Vec<usize>, scores: &[Score], rank: &[usize], crowding: &[f64]) -> usize {
    let better = |i: usize, j: usize| {
        rank[i]
            .cmp(&rank[j])
            .then(crowding[j].total_cmp(&crowding[i]))
            .then(scores[j].accuracy.total_cmp(&scores[i].accuracy))
            .then(i.cmp(&j))
    };
    drawn.into_iter().min_by(|&i, &j| better(i, j)).expect("the population is not empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(accuracy: f64, latency_ms: f64, violation: f64) -> Score {
        Score { accuracy, latency_ms, violation }
    }

    #[test]
    fn best_prefers_rank_then_spread_then_accuracy() {
        let scores = [
            score(0.99, 1.0, 0.3), // infeasible
            score(0.5, 4.0, 0.0),  // dominated by the next
            score(0.6, 3.0, 0.0),  // the fast end of the front
            score(0.7, 5.0, 0.0),  // inside the front
            score(0.8, 9.0, 0.0),  // the accurate end
        ];
        let (rank, crowding) = rank_of(&scores);
        assert_eq!(rank, [2, 1, 0, 0, 0]);
        let pick = |drawn: &[usize]| best(drawn.to_vec(), &scores, &rank, &crowding);
        assert_eq!(pick(&[0, 1]), 1, "feasible first");
        assert_eq!(pick(&[1, 3]), 3, "lower rank");
        assert_eq!(pick(&[3, 2]), 2, "an end of the front over its more accurate inside");
        assert_eq!(pick(&[0, 1, 2, 3, 4]), 4, "two ends: the more accurate");
    }

    #[test]
    fn aging_keeps_the_latest_scored_members() {
        let mut evolution = Evolution::new(Base::new(&[4, 4], 1), 3, 2);
        for g in 0..4 {
            let genome = vec![g, g];
            evolution.tell(&genome, Outcome::Scored(score(0.1 * g as f64, 1.0, 0.0)));
            evolution.tell(&vec![g, 0], Outcome::Failed);
        }
        let kept: Vec<&Genome> = evolution.members.iter().map(|m| &m.0).collect();
        assert_eq!(kept, [&vec![1, 1], &vec![2, 2], &vec![3, 3]], "oldest out, failures never in");
    }

    #[test]
    fn children_differ_from_a_member_by_one_gene() {
        let genes = [5, 5, 5];
        let mut evolution = Evolution::new(Base::new(&genes, 2), 4, 2);
        for _ in 0..4 {
            let genome = evolution.ask();
            let accuracy = genome.iter().sum::<usize>() as f64;
            evolution.tell(&genome, Outcome::Scored(score(accuracy, 1.0, 0.0)));
        }
        let parents: Vec<Genome> = evolution.members.iter().map(|m| m.0.clone()).collect();
        let child = evolution.ask();
        let distance = |p: &Genome| p.iter().zip(&child).filter(|(a, b)| a != b).count();
        assert!(parents.iter().any(|p| distance(p) == 1), "{child:?} from {parents:?}");
    }
}
