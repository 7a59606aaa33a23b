//! Compiling a network for this CPU and timing it with codegen's bench protocol: the one way
//! archc takes a latency, shared by `archc bench` and `archc guidelines`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use codegen::CompiledModel;
use codegen::bench::{LLVM_LEVEL, Timing};

/// How networks are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Threads per run, the calling one included.
    pub threads: usize,
    /// Untimed runs before a network's timed runs of each round.
    pub warmup: usize,
    /// Timed runs per network (at least one), spread evenly over the rounds.
    pub runs: usize,
    /// Turns: in each, every network is timed once more (at least one).
    pub rounds: usize,
}

impl Protocol {
    /// Timed runs in round `round`: the runs dealt out evenly, the first rounds taking the rest.
    fn runs_in(&self, round: usize) -> usize {
        let (runs, rounds) = (self.runs.max(1), self.rounds.max(1));
        runs / rounds + usize::from(round < runs % rounds)
    }
}

/// What timing one network gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Median, minimum and 90th percentile of the timed runs.
    pub timing: Timing,
    /// The network's multiply-adds as written (before optimization), as the paper counts them.
    pub macs: u64,
    /// Seconds codegen spent compiling it (LLVM and linking).
    pub compile_s: f64,
}

/// Optimizes `graph` at `level` and compiles it for this CPU, ready to time.
pub fn compile(
    graph: &ir::Graph,
    weights: &ir::Weights,
    level: passes::Level,
) -> Result<CompiledModel, codegen::Error> {
    compile_tuned(graph, weights, level, &codegen::schedule::DEFAULTS)
}

/// Like [`compile`], each convolution by its schedule in `schedules` where it has one.
pub fn compile_tuned(
    graph: &ir::Graph,
    weights: &ir::Weights,
    level: passes::Level,
    schedules: &codegen::schedule::Schedules,
) -> Result<CompiledModel, codegen::Error> {
    let opt = passes::optimize(graph, weights, level, None);
    CompiledModel::compile_tuned(
        &codegen::Target::host(),
        &opt.graph,
        &opt.weights,
        &opt.plan,
        LLVM_LEVEL,
        schedules,
    )
}

/// The input every timed run reads. Speed does not depend on the values, so it is always the same.
pub fn input(model: &CompiledModel) -> Vec<f32> {
    input_of_shape(model.input_shape())
}

/// The timed runs' input for a network whose input has `shape`.
pub fn input_of_shape(shape: &[usize]) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    (0..numel).map(|i| (i % 255) as f32 / 127.5 - 1.0).collect()
}

/// A network compiled at `-O2` with seeded weights, ready to time.
pub struct Prepared {
    model: CompiledModel,
    input: Vec<f32>,
    macs: u64,
}

/// Compiles `graph` at `-O2` with seeded weights (speed does not depend on their values), to
/// run on `threads` threads.
pub fn prepare(graph: &ir::Graph, threads: usize) -> Result<Prepared, codegen::Error> {
    let weights = ir::Weights::seeded(graph, 0);
    let model = match threads {
        0 | 1 => {
            compile_tuned(graph, &weights, passes::Level::O2, &codegen::schedule::DEFAULTS.one_thread())?
        }
        _ => compile(graph, &weights, passes::Level::O2)?,
    };
    let input = input(&model);
    Ok(Prepared { model, input, macs: ir::metrics::metrics(graph).totals.macs })
}

/// Compiles every graph to run on `threads` threads, on as many threads as there are CPUs:
/// compiling, unlike timing, does not need the machine to itself. The results are in the order
/// of `graphs`.
pub fn prepare_all(graphs: &[ir::Graph], threads: usize) -> Vec<Result<Prepared, codegen::Error>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Prepared, codegen::Error>>>> =
        graphs.iter().map(|_| Mutex::new(None)).collect();
    let compilers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(graphs.len());
    std::thread::scope(|scope| {
        for _ in 0..compilers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(graph) = graphs.get(i) else { break };
                    let prepared = prepare(graph, threads);
                    *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(prepared);
                }
            });
        }
    });
    // `scope` re-raises a compile thread's panic, so here every slot is filled.
    slots
        .into_iter()
        .map(|slot| slot.into_inner().ok().flatten().expect("every graph was compiled"))
        .collect()
}

/// Times every network by `protocol`, in turns: in each round every network gets `warmup`
/// untimed runs and its share of the timed ones, so that a burst of load from elsewhere on the
/// machine slows all networks a little rather than a few a lot. `round` is called as each
/// round begins. Each network's timed runs of all rounds are summarized together.
pub fn time_all(
    prepared: &mut [Prepared],
    protocol: &Protocol,
    mut round: impl FnMut(usize),
) -> Vec<Measured> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); prepared.len()];
    for p in prepared.iter_mut() {
        p.model.set_threads(protocol.threads);
    }
    for r in 0..protocol.rounds.max(1) {
        let runs = protocol.runs_in(r);
        if runs == 0 {
            continue;
        }
        round(r);
        for (p, times) in prepared.iter_mut().zip(&mut samples) {
            times.extend(codegen::bench::samples(&mut p.model, &p.input, protocol.warmup, runs));
        }
    }
    prepared
        .iter()
        .zip(&samples)
        .map(|(p, times)| Measured {
            timing: Timing::of(times),
            macs: p.macs,
            compile_s: p.model.compile_time().as_secs_f64(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_dealt_over_the_rounds() {
        let p = |runs, rounds| Protocol { threads: 1, warmup: 0, runs, rounds };
        let dealt = |p: Protocol| (0..p.rounds).map(|r| p.runs_in(r)).collect::<Vec<_>>();
        assert_eq!(dealt(p(11, 3)), [4, 4, 3]);
        assert_eq!(dealt(p(50, 5)), [10; 5]);
        assert_eq!(dealt(p(1, 3)), [1, 0, 0]);
    }

    #[test]
    fn compiles_in_parallel_and_times_in_turns() {
        let net = |out: u32| {
            let text = format!(
                r#"Network(name: "t", input: Image(channels: 4, height: 8, width: 8),
                          body: [Conv(out: {out}, kernel: 1), Relu])"#
            );
            ir::from_ron_str(&text, "t.ron", &ir::BuildOptions::default()).unwrap()
        };
        let graphs = [net(8), net(16), net(4)];
        let mut prepared: Vec<Prepared> = prepare_all(&graphs, 1).into_iter().map(Result::unwrap).collect();
        let mut rounds = Vec::new();
        let protocol = Protocol { threads: 1, warmup: 0, runs: 5, rounds: 2 };
        let measured = time_all(&mut prepared, &protocol, |r| rounds.push(r));
        assert_eq!(rounds, [0, 1]);
        let macs: Vec<u64> = measured.iter().map(|m| m.macs).collect();
        assert_eq!(macs, [4 * 8 * 64, 4 * 16 * 64, 4 * 4 * 64]);
        for m in measured {
            assert!(m.timing.min_ms <= m.timing.median_ms && m.timing.median_ms <= m.timing.p90_ms);
        }
    }
}
