//! The measurement protocol every latency in archc comes from: warm-up runs, then the median,
//! minimum and 90th percentile of timed runs on the same input; per-step times on request.

use std::time::{Duration, Instant};

use crate::CompiledModel;

/// Summary of timed runs, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The median.
    pub median_ms: f64,
    /// The fastest run.
    pub min_ms: f64,
    /// The 90th percentile (nearest rank).
    pub p90_ms: f64,
}

impl Timing {
    /// Summarizes durations (at least one).
    pub fn of(times: &[Duration]) -> Timing {
        let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        let median = if ms.len() % 2 == 1 {
            ms[ms.len() / 2]
        } else {
            (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
        };
        Timing { median_ms: median, min_ms: ms[0], p90_ms: rank(0.9) }
    }
}

/// Runs `model` `warmup` times, then times `runs` runs (at least one) of `input`.
pub fn measure(model: &mut CompiledModel, input: &[f32], warmup: usize, runs: usize) -> Timing {
    let mut output = vec![0.0; model.output_shape().iter().product()];
    for _ in 0..warmup {
        model.run_into(input, &mut output);
    }
    let times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            model.run_into(input, &mut output);
            start.elapsed()
        })
        .collect();
    Timing::of(&times)
}

/// Times `runs` step-by-step runs (after one warm-up) and returns each step's median in
/// milliseconds.
pub fn profile(model: &mut CompiledModel, input: &[f32], runs: usize) -> Vec<f64> {
    let mut output = vec![0.0; model.output_shape().iter().product()];
    model.run_profiled(input, &mut output);
    let samples: Vec<Vec<Duration>> =
        (0..runs.max(1)).map(|_| model.run_profiled(input, &mut output)).collect();
    (0..samples[0].len())
        .map(|step| Timing::of(&samples.iter().map(|s| s[step]).collect::<Vec<_>>()).median_ms)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_statistics() {
        let t = |ms: &[u64]| Timing::of(&ms.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>());
        assert_eq!(t(&[5]), Timing { median_ms: 5.0, min_ms: 5.0, p90_ms: 5.0 });
        let s = t(&[9, 1, 2, 3, 4, 5, 6, 7, 8, 10]);
        assert_eq!((s.median_ms, s.min_ms, s.p90_ms), (5.5, 1.0, 9.0));
    }
}
