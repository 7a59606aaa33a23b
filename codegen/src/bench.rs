//! The measurement protocol every latency in archc comes from: warm-up runs, then the median,
//! minimum and 90th percentile of timed runs on the same input; per-step times on request.

use std::time::{Duration, Instant};

use crate::emit::{Function, Ty};
use crate::{CompiledModel, Error, Target, build};

/// LLVM's optimization level for code that is timed: the fastest code, whatever it costs to make.
pub const LLVM_LEVEL: u8 = 3;

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
    Timing::of(&samples(model, input, warmup, runs))
}

/// What [`measure`] summarizes: the durations of the timed runs. For callers that time several
/// networks in turns and summarize each one's runs of all turns together.
pub fn samples(model: &mut CompiledModel, input: &[f32], warmup: usize, runs: usize) -> Vec<Duration> {
    let mut output = vec![0.0; model.output_shape().iter().product()];
    for _ in 0..warmup {
        model.run_into(input, &mut output);
    }
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            model.run_into(input, &mut output);
            start.elapsed()
        })
        .collect()
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

/// Independent multiply-add chains of the peak loop: enough to cover the FMA latency (4 to 5
/// cycles) on two pipes, few enough to stay in AVX2's 16 registers with the two constants.
const CHAINS: usize = 12;

/// Measures this CPU's single-thread fp32 FMA peak in GFLOP/s (two per multiply-add): a loop
/// of independent vector multiply-adds, compiled for the host like any network, timed at its
/// best of a few runs. Kernels' GFLOP/s read against it.
pub fn fma_peak_gflops() -> Result<f64, Error> {
    let target = Target::host();
    let lanes = target.isa().lanes;
    let ty = Ty::Vector(lanes);
    let t = ty.name();
    let mut f = Function::new();
    let slots: Vec<String> = (0..CHAINS).map(|_| f.slot(ty, "zeroinitializer")).collect();
    let (a, b) = (ty.constant(0.999), ty.constant(1e-3));
    f.count("%n", |f, _| {
        for slot in &slots {
            let x = f.let_("x", format!("load {t}, ptr {slot}"));
            let y = f.fma(ty, &x, &a, &b);
            f.line(format!("store {t} {y}, ptr {slot}"));
        }
    });
    // Keep the results alive.
    for (i, slot) in slots.iter().enumerate() {
        let x = f.let_("x", format!("load {t}, ptr {slot}"));
        let at = f.int("mul", i, lanes);
        f.store_ty(ty, &x, "%out", &at, None);
    }
    let ir =
        format!("{}\n{}", crate::emit::intrinsics(lanes), f.finish("define void @peak(i64 %n, ptr %out)"));
    let dir = tempfile::tempdir()?;
    let (object, library) = (dir.path().join("peak.o"), dir.path().join("libpeak.so"));
    build::write_ir(&ir, &target, 3, None, build::ModuleFile::Object, &object)?;
    build::link(&target, &[object], build::Linked::Shared, &library)?;
    // SAFETY: the library was just built from the module above, which defines `peak`.
    let handle = unsafe { libloading::Library::new(&library) }.map_err(|e| Error::Link(e.to_string()))?;
    // SAFETY: `peak` has this signature and writes `CHAINS * lanes` floats to `out`.
    let peak = unsafe {
        *handle.get::<unsafe extern "C" fn(i64, *mut f32)>(b"peak").map_err(|e| Error::Link(e.to_string()))?
    };
    let mut out = vec![0.0f32; CHAINS * lanes];
    let iterations = 2_000_000i64;
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            // SAFETY: `out` holds `CHAINS * lanes` floats.
            unsafe { peak(iterations, out.as_mut_ptr()) };
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    Ok(2.0 * (CHAINS * lanes) as f64 * iterations as f64 / best / 1e9)
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

    #[test]
    fn fma_peak_is_plausible() {
        // Between one scalar FMA per nanosecond and 64 vector lanes at 5 GHz, two pipes.
        let peak = fma_peak_gflops().unwrap();
        assert!((2.0..2.0 * 64.0 * 5.0 * 2.0).contains(&peak), "{peak}");
    }
}
