//! Learning-rate schedules: the rate as a function of training progress, with optional
//! linear warm-up, as the training loop asks for it before every step.

use std::str::FromStr;

use crate::Error;

/// How the learning rate changes over training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Half a cosine from the base rate to zero (SGDR without restarts).
    Cosine,
    /// The base rate times `gamma` after every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor of each decay.
        gamma: f32,
    },
}

impl Schedule {
    /// The rate at `epoch` (fractional: 1.5 is half-way through the second epoch) of `epochs`,
    /// for base rate `base`, after `warmup` epochs of linear warm-up from zero.
    pub fn rate(&self, base: f32, epoch: f64, epochs: usize, warmup: f64) -> f32 {
        if epoch < warmup {
            return base * ((epoch + 1e-3) / warmup).min(1.0) as f32;
        }
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let span = (epochs as f64 - warmup).max(1e-9);
                let progress = ((epoch - warmup) / span).clamp(0.0, 1.0);
                base * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
            }
            Schedule::Step { every, gamma } => base * gamma.powi((epoch as usize / every.max(1)) as i32),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `constant`, `cosine` or `step:EVERY:GAMMA` (e.g. `step:30:0.1`).
    fn from_str(s: &str) -> Result<Schedule, Error> {
        let bad = |message: &str| Error::Schedule { spec: s.to_string(), message: message.to_string() };
        match s {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            _ => {
                let rest = s
                    .strip_prefix("step:")
                    .ok_or_else(|| bad("expected constant, cosine or step:EVERY:GAMMA"))?;
                let (every, gamma) = rest.split_once(':').ok_or_else(|| bad("expected step:EVERY:GAMMA"))?;
                let every: usize = every
                    .parse()
                    .ok()
                    .filter(|&e| e > 0)
                    .ok_or_else(|| bad("EVERY must be a whole number of epochs above 0"))?;
                let gamma: f32 = gamma
                    .parse()
                    .ok()
                    .filter(|g: &f32| *g > 0.0 && g.is_finite())
                    .ok_or_else(|| bad("GAMMA must be a positive number"))?;
                Ok(Schedule::Step { every, gamma })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        assert_eq!(Schedule::Constant.rate(0.1, 3.0, 10, 0.0), 0.1);
        assert!((Schedule::Cosine.rate(0.1, 0.0, 10, 0.0) - 0.1).abs() < 1e-7);
        assert!((Schedule::Cosine.rate(0.1, 5.0, 10, 0.0) - 0.05).abs() < 1e-7);
        assert!(Schedule::Cosine.rate(0.1, 10.0, 10, 0.0).abs() < 1e-7);
        let step = Schedule::Step { every: 2, gamma: 0.5 };
        assert_eq!(step.rate(0.4, 1.9, 10, 0.0), 0.4);
        assert_eq!(step.rate(0.4, 4.0, 10, 0.0), 0.1);
        // Warm-up rises linearly, then the schedule takes over from the base rate.
        assert!((Schedule::Cosine.rate(0.1, 0.5, 10, 1.0) - 0.05).abs() < 1e-3);
        assert!((Schedule::Cosine.rate(0.1, 1.0, 10, 1.0) - 0.1).abs() < 1e-7);
    }

    #[test]
    fn schedules_parse() {
        assert_eq!("cosine".parse::<Schedule>().unwrap(), Schedule::Cosine);
        assert_eq!("step:30:0.1".parse::<Schedule>().unwrap(), Schedule::Step { every: 30, gamma: 0.1 });
        let err = "step:0:0.1".parse::<Schedule>().unwrap_err().to_string();
        assert_eq!(err, "bad schedule `step:0:0.1`: EVERY must be a whole number of epochs above 0");
        assert!("linear".parse::<Schedule>().is_err());
    }
}
