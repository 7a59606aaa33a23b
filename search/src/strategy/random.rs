//! Uniform random sampling, the baseline every other strategy must beat.

use super::{Base, Genome, Outcome, Strategy, random_genome};

/// Draws each genome uniformly, preferring genomes not asked before.
pub(super) struct Random {
    base: Base,
}

impl Random {
    pub(super) fn new(base: Base) -> Random {
        Random { base }
    }
}

impl Strategy for Random {
    fn ask(&mut self) -> Genome {
        self.base.fresh(random_genome)
    }

    fn tell(&mut self, _genome: &Genome, _outcome: Outcome) {}
}
