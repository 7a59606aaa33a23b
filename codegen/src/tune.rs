//! Measured tuning: every convolution of a network that has a choice of schedule is compiled
//! alone (same input shape, same parameters, its input written by a step before it as in the
//! network, its output read by a window step after it where a depthwise step reads it there)
//! under each candidate and its step (with that reader) timed on this machine, candidates
//! taking turns in rounds so that the machine's drift hits them alike; the fastest median
//! wins, unless the schedule recorded before measures within [`KEEP_WITHIN`] of it.

use std::time::Duration;

use ir::{Graph, Op, Value};

use crate::bench::{LLVM_LEVEL, Timing};
use crate::schedule::{Schedule, Schedules, kernel_key};
use crate::{CompiledModel, Error, Target};

/// How much faster than the recorded schedule a candidate must measure to replace it. Two
/// tunings of one convolution on these machines differ by 1-2% in their medians: a choice
/// that followed them would flip between near-equal schedules, and the networks compiled
/// from the cache with it, from one tuning to the next.
pub const KEEP_WITHIN: f64 = 0.02;

/// How candidates are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Threads per run, the calling one included.
    pub threads: usize,
    /// Turns in which every candidate is timed once more.
    pub rounds: usize,
    /// Time each candidate runs for in one round (at least one run).
    pub per_round: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { threads: 1, rounds: 5, per_round: Duration::from_millis(20) }
    }
}

/// One convolution's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuned {
    /// Its [`kernel_key`].
    pub kernel: String,
    /// Each candidate with its median milliseconds, the default first (where it is a candidate:
    /// see `balanced_fused_tiles`).
    pub times: Vec<(Schedule, f64)>,
}

impl Tuned {
    /// The fastest candidate and its median.
    pub fn best(&self) -> (Schedule, f64) {
        *self.times.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("at least one candidate")
    }

    /// The default schedule's median.
    pub fn default_ms(&self) -> f64 {
        self.times[0].1
    }

    /// The schedule to record and its median: `recorded` (the cache's choice from an earlier
    /// tuning) while it measures within [`KEEP_WITHIN`] of the fastest, else the fastest.
    pub fn choice(&self, recorded: Option<Schedule>) -> (Schedule, f64) {
        let (best, best_ms) = self.best();
        recorded
            .and_then(|r| self.times.iter().find(|(s, _)| *s == r))
            .filter(|(_, ms)| *ms <= best_ms * (1.0 + KEEP_WITHIN))
            .copied()
            .unwrap_or((best, best_ms))
    }
}

/// The distinct convolutions of `graph` (optimized) that have more than one candidate
/// schedule on `target`, one node each, by kernel key; the channel-blocked ones (see
/// `layout`) have none.
pub fn tunable(graph: &Graph, target: &Target) -> Vec<(String, ir::NodeId)> {
    let blocking = crate::layout::choose(graph, &passes::plan::plan(graph, true), target.isa());
    let mut found: Vec<(String, ir::NodeId)> = Vec::new();
    for id in graph.node_ids() {
        if blocking.kernels.contains(&id) || Schedule::candidates(graph, id, target.isa(), 1).len() < 2 {
            continue;
        }
        if let Some(key) = kernel_key(graph, id).filter(|key| found.iter().all(|(k, _)| k != key)) {
            found.push((key, id));
        }
    }
    found
}

/// Times every candidate schedule of each tunable convolution of `graph` (as it will be
/// compiled: optimized) on `target`, which must be this machine; `progress(done, total, key)`
/// is called before each convolution.
pub fn tune(
    graph: &Graph,
    target: &Target,
    options: &Options,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Vec<Tuned>, Error> {
    let convs = tunable(graph, target);
    let mut tuned = Vec::new();
    for (done, (key, id)) in convs.iter().enumerate() {
        progress(done, convs.len(), key);
        let alone = alone(graph, *id);
        let weights = ir::Weights::seeded(&alone, 0);
        let opt = passes::optimize(&alone, &weights, passes::Level::O2, None);
        let mut candidates = Schedule::candidates(graph, *id, target.isa(), options.threads);
        if let Some(balanced) = balanced_fused_tiles(graph, *id, options.threads)
            && candidates.iter().any(&balanced)
        {
            candidates.retain(&balanced);
        }
        let mut models = candidates
            .iter()
            .map(|&schedule| {
                let schedules = Schedules::only(key.clone(), schedule);
                let mut model = CompiledModel::compile_tuned(
                    target,
                    &opt.graph,
                    &opt.weights,
                    &opt.plan,
                    LLVM_LEVEL,
                    &schedules,
                )?;
                model.set_threads(options.threads);
                Ok(model)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // The convolution reads the pool's output from the arena, on huge pages as in the
        // network. Only the convolution's own step (and the reader after it) is timed, not the
        // pool before it or the copy of the output (megabytes for early layers) that add the
        // same to every candidate.
        let input = vec![0.5; models[0].input_shape().iter().product()];
        let mut output = vec![0.0; models[0].output_shape().iter().product()];
        // The convolution's step: the one that computes (the copies in and out multiply nothing),
        // whatever the passes named it.
        let steps = models[0].steps();
        let step = (0..steps.len()).max_by_key(|&i| steps[i].macs).expect("a compiled model has steps");
        let timed: Vec<usize> = (0..steps.len()).filter(|&i| i == step || steps[i].name == READER).collect();
        let time = |model: &mut CompiledModel, output: &mut [f32]| -> Duration {
            let all = model.run_profiled(&input, output);
            timed.iter().map(|&i| all[i]).sum()
        };
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); models.len()];
        for _ in 0..options.rounds.max(1) {
            for (model, times) in models.iter_mut().zip(&mut times) {
                let per_run = time(model, &mut output).max(Duration::from_micros(1));
                let runs =
                    (options.per_round.as_secs_f64() / per_run.as_secs_f64()).clamp(1.0, 1000.0) as usize;
                times.extend((0..runs).map(|_| time(model, &mut output)));
            }
        }
        let times = candidates.into_iter().zip(times.iter().map(|t| Timing::of(t).median_ms)).collect();
        tuned.push(Tuned { kernel: key.clone(), times });
    }
    Ok(tuned)
}

/// Least share of the ideal that threads splitting a fused expansion's output-channel tiles
/// may reach, for a tile to be a candidate.
const MIN_TILE_BALANCE: f64 = 0.95;

/// For a 1x1 convolution fused with its depthwise reader (`kernels::expand_window`) timed on
/// several threads: which tiles split its output channels evenly enough among them. Its tasks
/// split only channel tiles (within a band of rows, where the depthwise step bands its planes:
/// then any tile), so that 11 tiles leave one of two threads idle for a twelfth of the step;
/// timed alone, such a tile measured up to 2% faster than an even one all the same (tuning
/// scatter), and MobileNet V2 on two threads ran 0.985-0.994 with the even one.
fn balanced_fused_tiles(graph: &Graph, id: ir::NodeId, threads: usize) -> Option<impl Fn(&Schedule) -> bool> {
    crate::kernels::expand_window::window_after(graph, id)
        .filter(|&dw| threads > 1 && !crate::kernels::window::banded(graph, dw))?;
    let m = graph.shape(Value { node: id, port: 0 }).channels();
    Some(move |s: &Schedule| {
        let tiles = m.div_ceil(s.tile[0]);
        tiles as f64 / (threads * tiles.div_ceil(threads)) as f64 >= MIN_TILE_BALANCE
    })
}

/// A network of convolution `id` of `graph` alone: its input shape, its parameters, its input
/// written by a step before it as in the network (split into bands of rows on several threads
/// where the network's writer is). A 3x3 max pool (a window kernel, its
/// channel planes split among the threads as a depthwise convolution's are) writes it: on
/// several threads, each thread then holds the planes it wrote, and the convolution reads
/// the others' from the other cores' caches. An input written once and only read (shared by
/// every core's cache) hid that traffic: on two threads, MobileNet V2's 384 to 64 channel
/// projection at 14x14 timed 0.034 ms alone by the pixel sweep, and 0.070 ms in the network
/// (packed panels: 0.044 ms there). Where the convolution's output goes to a window step in
/// the network, a step named [`READER`] reads it: how the convolution's tasks split its
/// output decides what that step finds in its own cache. It is the network's depthwise
/// convolution where that is the reader (an expansion then shares its step, as in the
/// network: `kernels::expand_window`, whose tasks split only output-channel tiles, so that
/// the tile's rows decide their balance), else another max pool.
fn alone(graph: &Graph, id: ir::NodeId) -> Graph {
    let x = graph.shape(graph.operands(id)[0]).clone();
    let mut alone = Graph::new("tune");
    let pool = || Op::MaxPool(ir::Pool { kernel: [3, 3], stride: [1, 1], padding: [1, 1] });
    // Where the network's writer splits its planes into bands of rows on several threads, a
    // stride-2 pool from twice the rows and columns does too (`window::banded`).
    let (input, writer) = match crate::kernels::window::banded_writer(graph, id) {
        true => {
            let d = x.dims();
            let doubled = ir::Shape::new(vec![d[0], d[1], 2 * d[2], 2 * d[3]]).expect("a valid shape");
            let pool = Op::MaxPool(ir::Pool { kernel: [3, 3], stride: [2, 2], padding: [1, 1] });
            (alone.add_input("x", doubled, None), pool)
        }
        false => (alone.add_input("x", x, None), pool()),
    };
    let written = alone.add(writer, &[input], "written", None).expect("the pool writes the input's shape");
    let op: Op = graph.node(id).op.clone();
    let mut out: Vec<Value> =
        alone.add(op, &written, "conv", None).expect("the shapes fit as they did in the network");
    if let Some(reader) = window_reader(graph, id) {
        let reader = if matches!(reader, Op::Conv(_)) { reader } else { pool() };
        out = alone.add(reader, &out, READER, None).expect("the reader's shapes fit as in the network");
    }
    alone.set_outputs(out);
    alone
}

/// The name of the step after the convolution in [`alone`], timed with it.
const READER: &str = "reader";

/// The window step (a depthwise convolution or a pool) that reads node `id`'s output, through
/// the epilogues fused into its step, if any.
fn window_reader(graph: &Graph, id: ir::NodeId) -> Option<Op> {
    graph.users(id).into_iter().find_map(|(user, _, _)| {
        let node = graph.node(user);
        if crate::kernels::window::is_window(graph, user) {
            Some(node.op.clone())
        } else if node.epilogue {
            window_reader(graph, user)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Sweep;

    fn schedule(rows: usize) -> Schedule {
        Schedule { tile: [rows, 2], winograd: true, sweep: Sweep::Channels }
    }

    #[test]
    fn a_convolution_read_by_a_depthwise_step_is_timed_with_a_window_step_after_it() {
        // An inverted residual: the expansion (through its fused ReLU6) feeds the depthwise
        // convolution, the projection a 1x1 classifier-like convolution.
        let text = r#"Network(name: "n", input: Image(channels: 8, height: 6, width: 6), body: [
            Conv(name: "expand", out: 16, kernel: 1, bn: true, act: Relu6),
            Conv(out: 16, kernel: 3, groups: 16, bn: true, act: Relu6),
            Conv(name: "project", out: 8, kernel: 1, bn: true),
            Conv(name: "last", out: 4, kernel: 1)])"#;
        let graph =
            ir::from_ron_str(text, "n.ron", &ir::BuildOptions { batch: 1, overrides: vec![] }).unwrap();
        let weights = ir::Weights::seeded(&graph, 0);
        let graph = passes::optimize(&graph, &weights, passes::Level::O2, None).graph;
        // With a batch norm, a statement's conv is `NAME.0` (its activation `NAME.2`).
        let conv = |name: &str| graph.node_ids().find(|&id| graph.node(id).name == name).expect(name);
        assert!(matches!(window_reader(&graph, conv("expand.0")), Some(Op::Conv(_))));
        assert!(window_reader(&graph, conv("project.0")).is_none());
        let readers = |id| {
            let alone = alone(&graph, id);
            alone.node_ids().filter(|&n| alone.node(n).name == READER).count()
        };
        assert_eq!((readers(conv("expand.0")), readers(conv("project.0"))), (1, 0));
    }

    #[test]
    fn a_convolution_after_a_banded_step_is_timed_after_one() {
        // MobileNet V2's fourth block: its stride-2 depthwise step reads 56 rows.
        let text = r#"Network(name: "n", input: Image(channels: 24, height: 56, width: 56), body: [
            Conv(name: "expand", out: 144, kernel: 1, act: Relu6),
            Conv(out: 144, kernel: 3, stride: 2, padding: 1, groups: 144, act: Relu6),
            Conv(name: "project", out: 32, kernel: 1), Conv(name: "last", out: 16, kernel: 1)])"#;
        let graph =
            ir::from_ron_str(text, "n.ron", &ir::BuildOptions { batch: 1, overrides: vec![] }).unwrap();
        let graph = passes::optimize(&graph, &ir::Weights::seeded(&graph, 0), passes::Level::O2, None).graph;
        let conv = |name: &str| graph.node_ids().find(|&id| graph.node(id).name == name).expect(name);
        for (name, writer_banded) in [("project", true), ("last", false)] {
            let alone = alone(&graph, conv(name));
            let written = alone.node_ids().find(|&n| alone.node(n).name == "written").unwrap();
            assert_eq!(crate::kernels::window::banded(&alone, written), writer_banded, "{name}");
            let input = alone.shape(alone.operands(written)[0]).dims()[2];
            assert_eq!(input, if writer_banded { 56 } else { 28 }, "{name}");
        }
    }

    #[test]
    fn a_fused_expansion_on_several_threads_takes_only_tiles_that_split_its_channels_evenly() {
        let text = r#"Network(name: "n", input: Image(channels: 16, height: 8, width: 8), body: [
            Conv(name: "expand", out: 96, kernel: 1, act: Relu6), Conv(out: 96, kernel: 3, groups: 96),
            Conv(name: "project", out: 16, kernel: 1)])"#;
        let graph =
            ir::from_ron_str(text, "n.ron", &ir::BuildOptions { batch: 1, overrides: vec![] }).unwrap();
        let graph = passes::optimize(&graph, &ir::Weights::seeded(&graph, 0), passes::Level::O2, None).graph;
        let conv = |name: &str| graph.node_ids().find(|&id| graph.node(id).name == name).expect(name);
        let balanced = balanced_fused_tiles(&graph, conv("expand"), 2).expect("a fused expansion");
        // 96 channels: 16 tiles of 6 rows split 8 / 8, 11 of 9 rows 6 / 5.
        assert!(balanced(&schedule(6)));
        assert!(!balanced(&schedule(9)));
        assert!(balanced_fused_tiles(&graph, conv("expand"), 1).is_none(), "one thread: any tile");
        assert!(balanced_fused_tiles(&graph, conv("project"), 2).is_none(), "not fused: any tile");
    }

    #[test]
    fn a_recorded_schedule_stays_while_within_the_margin_of_the_fastest() {
        let tuned = Tuned {
            kernel: "conv".into(),
            times: vec![(schedule(6), 1.0), (schedule(4), 0.99), (schedule(2), 0.95)],
        };
        assert_eq!(tuned.choice(None), (schedule(2), 0.95), "nothing recorded: the fastest");
        assert_eq!(tuned.choice(Some(schedule(4))).0, schedule(2), "4.2% slower: replaced");
        let close =
            Tuned { times: vec![(schedule(6), 1.0), (schedule(4), 0.965), (schedule(2), 0.95)], ..tuned };
        assert_eq!(
            close.choice(Some(schedule(4))),
            (schedule(4), 0.965),
            "1.6% slower: kept, its own median"
        );
        assert_eq!(close.choice(Some(schedule(3))).0, schedule(2), "no longer a candidate: the fastest");
    }
}
