//! Random small CNN graphs for property tests (feature `testing`): a proptest strategy that
//! builds valid networks from the IR's whole vocabulary, plus seeded inputs and weights.
//!
//! A graph is generated as a [`Recipe`]: input dimensions and a list of [`Step`]s, each a
//! [`Block`] kind with a row of dice. [`Recipe::build`] reads the dice against the shape at
//! that point, so every choice fits by construction (nothing is filtered away) and every
//! built graph passes [`verify`](crate::verify). Shrinking removes steps and lowers dice
//! towards 0, and a die of 0 always takes the simplest option, so a failure shrinks to a
//! short network of simple layers.
//!
//! Bounds follow tract's `ConvProblemParams`: batch 1..=2, 1..=12 input channels, height and
//! width 1..=9, 1..=8 steps, convolution kernels 1, 3 or 5 with stride 1 or 2, padding up to
//! half the kernel, dilation 2 where the window still fits, and any group count dividing both
//! channel counts (depthwise included).

use std::collections::HashMap;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::{Conv, Float, Graph, Op, Pool, Shape, Tensor, Value, Weights};

/// Most output channels a generated convolution has.
pub const MAX_CHANNELS: usize = 16;

/// Dice each step carries; a step that needs more reads zeros.
pub const DICE: usize = 40;

/// What a step adds to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    /// relu, relu6, hardswish or sigmoid.
    Activation,
    /// Batch normalization (eps 1e-5 or 1e-3).
    BatchNorm,
    /// Max or average pooling: kernel 2 or 3, stride 1 or 2, padding up to half the kernel.
    Pool,
    /// A convolution: any kernel, stride, padding, dilation and grouping that fits.
    Conv,
    /// `channel_shuffle` with a group count dividing the channels.
    ChannelShuffle,
    /// PyTorch's shuffle: `reshape([g, c / g, h, w])`, a transpose (usually `[1, 0, 2, 3]`,
    /// sometimes another permutation that does not only move channels), `reshape([c, h, w])`.
    ReshapeShuffle,
    /// `add` (or now and then `mul`) of the current tensor and an earlier tensor of the same
    /// shape, or a convolution (a projection shortcut) of an earlier tensor, the current one
    /// included.
    Add,
    /// Squeeze-excite: `mul` by a `[n, c, 1, 1]` scale from `global_avg_pool` of the current
    /// tensor, directly, through a sigmoid, or through 1x1 reduce/expand convolutions.
    SqueezeExcite,
    /// `split` into 2 or 3 equal or unequal parts, up to two ops on each part (activation,
    /// batch norm, shape-keeping convolution, shuffle, or an add with an earlier tensor of the
    /// part's shape, as Res2Net does), then a `concat` of all parts in any order.
    SplitConcat,
}

/// One step of a recipe: a block and the dice that choose its parameters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Step {
    /// What the step adds.
    pub block: Block,
    /// Read in order; each die picks one option (`die % options`), 0 the simplest.
    pub dice: Vec<u8>,
}

impl std::fmt::Debug for Step {
    /// `Conv[3, 0, 1]`: the block and its dice, trailing zeros left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.dice.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
        write!(f, "{:?}{:?}", self.block, &self.dice[..used])
    }
}

impl Step {
    /// A step whose dice start with `dice` and are 0 after.
    pub fn new(block: Block, dice: &[u8]) -> Step {
        let mut all = dice.to_vec();
        all.resize(all.len().max(DICE), 0);
        Step { block, dice: all }
    }
}

/// The network's optional classifier head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// `global_avg_pool` before the linear layer; without it the linear layer reads the
    /// whole `[c, h, w]` feature map, flattened.
    pub pool: bool,
    /// The linear layer's outputs.
    pub out_features: usize,
    /// Whether the linear layer has a bias.
    pub bias: bool,
}

/// How generated nodes are named; either way names are unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Naming {
    /// `{op}{n}`, with `n` counting all nodes: `conv1`, `relu2`, `conv3`.
    Numbered,
    /// `{op}`, then `{op}_1`, `{op}_2`, ...: the RON front-end's names for unnamed layers.
    ByOp,
}

/// Everything that determines a generated graph; [`Recipe::build`] makes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Recipe {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// The body, in order.
    pub steps: Vec<Step>,
    /// An optional classifier head after the body.
    pub head: Option<Head>,
    /// When set, an earlier tensor (picked by this die) is a second graph output.
    pub extra_output: Option<u8>,
    /// How nodes are named.
    pub naming: Naming,
}

/// Random recipes within the module's bounds.
pub fn recipes() -> impl Strategy<Value = Recipe> {
    let block = prop_oneof![
        2 => Just(Block::Activation),
        2 => Just(Block::BatchNorm),
        1 => Just(Block::Pool),
        4 => Just(Block::Conv),
        1 => Just(Block::ChannelShuffle),
        1 => Just(Block::ReshapeShuffle),
        2 => Just(Block::Add),
        1 => Just(Block::SqueezeExcite),
        2 => Just(Block::SplitConcat),
    ];
    let step = (block, vec(any::<u8>(), DICE)).prop_map(|(block, dice)| Step { block, dice });
    let head = (any::<bool>(), 1..=10usize, any::<bool>()).prop_map(|(pool, out_features, bias)| Head {
        pool,
        out_features,
        bias,
    });
    (
        1..=2usize,
        1..=12usize,
        1..=9usize,
        1..=9usize,
        vec(step, 1..=8),
        prop::option::weighted(0.3, head),
        prop::option::weighted(0.2, any::<u8>()),
        prop_oneof![Just(Naming::Numbered), Just(Naming::ByOp)],
    )
        .prop_map(|(batch, channels, height, width, steps, head, extra_output, naming)| Recipe {
            batch,
            channels,
            height,
            width,
            steps,
            head,
            extra_output,
            naming,
        })
}

/// Random graphs: [`recipes`], built.
pub fn graphs() -> impl Strategy<Value = Graph> {
    recipes().prop_map(|r| r.build())
}

impl Recipe {
    /// The graph this recipe describes; it always passes [`verify`](crate::verify).
    ///
    /// Nodes are named as [`Recipe::naming`] says, and the input is `x`.
    pub fn build(&self) -> Graph {
        let mut b = Builder {
            graph: Graph::new("random"),
            naming: self.naming,
            count: 0,
            by_op: HashMap::new(),
            history: Vec::new(),
        };
        let shape = Shape::nchw(self.batch, self.channels, self.height, self.width)
            .expect("bounded dimensions are small");
        let mut cur = b.graph.add_input("x", shape, None);
        b.history.push(cur);
        for step in &self.steps {
            let mut dice = Dice { dice: &step.dice, next: 0 };
            cur = b.step(step.block, cur, &mut dice);
        }
        if let Some(head) = self.head {
            if head.pool {
                cur = b.one(Op::GlobalAvgPool, &[cur]);
            }
            cur = b.one(Op::Linear { out_features: head.out_features, bias: head.bias }, &[cur]);
        }
        let mut outputs = vec![cur];
        if let Some(die) = self.extra_output {
            let earlier: Vec<Value> = b.history.iter().copied().filter(|&v| v != cur).collect();
            if !earlier.is_empty() {
                outputs.push(earlier[usize::from(die) % earlier.len()]);
            }
        }
        b.graph.set_outputs(outputs);
        debug_assert!(crate::verify(&b.graph).is_ok(), "generated an invalid graph");
        b.graph
    }
}

/// Reads a step's dice in order.
struct Dice<'a> {
    dice: &'a [u8],
    next: usize,
}

impl Dice<'_> {
    fn roll(&mut self) -> usize {
        let d = self.dice.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        usize::from(d)
    }

    fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        let r = self.roll();
        options[r % options.len()].clone()
    }

    /// 1..=n.
    fn upto(&mut self, n: usize) -> usize {
        self.roll() % n + 1
    }

    fn flag(&mut self) -> bool {
        self.roll() % 2 == 1
    }
}

struct Builder {
    graph: Graph,
    naming: Naming,
    /// Nodes added so far.
    count: usize,
    /// Nodes added so far, by op.
    by_op: HashMap<&'static str, usize>,
    /// Every 4-d tensor made so far, the input first: the candidates for adds and outputs.
    history: Vec<Value>,
}

/// Kernel, padding and dilation along one axis.
type Window = (usize, usize, usize);

impl Builder {
    /// Adds a node with a fresh name.
    fn add(&mut self, op: Op, operands: &[Value]) -> Vec<Value> {
        self.count += 1;
        let same_op = self.by_op.entry(op.name()).or_insert(0);
        *same_op += 1;
        let name = match (self.naming, *same_op) {
            (Naming::Numbered, _) => format!("{}{}", op.name(), self.count),
            (Naming::ByOp, 1) => op.name().to_string(),
            (Naming::ByOp, n) => format!("{}_{}", op.name(), n - 1),
        };
        let text = op.to_string();
        self.graph
            .add(op, operands, name, None)
            .unwrap_or_else(|e| panic!("the generator built an ill-shaped `{text}`: {e}"))
    }

    /// Adds a single-output node and remembers it when it is 4-d.
    fn one(&mut self, op: Op, operands: &[Value]) -> Value {
        let v = self.add(op, operands)[0];
        if self.shape(v).len() == 4 {
            self.history.push(v);
        }
        v
    }

    fn shape(&self, v: Value) -> &[usize] {
        self.graph.shape(v).dims()
    }

    fn dims(&self, v: Value) -> [usize; 4] {
        self.shape(v).try_into().expect("the body works on 4-d tensors")
    }

    fn step(&mut self, block: Block, cur: Value, d: &mut Dice<'_>) -> Value {
        let [_, c, h, w] = self.dims(cur);
        match block {
            Block::Activation => self.activation(cur, d),
            Block::BatchNorm => self.batch_norm(cur, d),
            Block::Pool => {
                let windows: Vec<Window> = [2, 3]
                    .into_iter()
                    .flat_map(|k| (0..=k / 2).map(move |p| (k, p, 1)))
                    .filter(|&(k, p, _)| h + 2 * p >= k && w + 2 * p >= k)
                    .collect();
                // Kernel 2 with padding 1 fits any map, so there is always a window.
                let (k, p, _) = d.pick(&windows);
                let s = d.pick(&[1, 2]);
                let pool = Pool { kernel: [k, k], stride: [s, s], padding: [p, p] };
                let op = if d.flag() { Op::AvgPool(pool) } else { Op::MaxPool(pool) };
                self.one(op, &[cur])
            }
            Block::Conv => {
                let out = if d.flag() { d.upto(MAX_CHANNELS) } else { c };
                let windows: Vec<Window> = [1, 3, 5]
                    .into_iter()
                    .flat_map(|k| {
                        (0..=k / 2).flat_map(move |p| {
                            let dilations: &[usize] = if k > 1 { &[1, 2] } else { &[1] };
                            dilations.iter().map(move |&dil| (k, p, dil))
                        })
                    })
                    .filter(|&(k, p, dil)| {
                        let span = (k - 1) * dil + 1;
                        h + 2 * p >= span && w + 2 * p >= span
                    })
                    .collect();
                let window = d.pick(&windows);
                let stride = d.pick(&[1, 2]);
                self.conv(cur, out, window, stride, d)
            }
            Block::ChannelShuffle => {
                let groups = d.pick(&shuffle_groups(c));
                self.one(Op::ChannelShuffle { groups }, &[cur])
            }
            Block::ReshapeShuffle => {
                let g = d.pick(&shuffle_groups(c));
                let perm = if d.roll() % 4 < 3 { vec![1, 0, 2, 3] } else { d.pick(&permutations(4)) };
                let r = self.one(Op::Reshape { shape: vec![g, c / g, h, w] }, &[cur]);
                let t = self.one(Op::Transpose { perm }, &[r]);
                self.one(Op::Reshape { shape: vec![c, h, w] }, &[t])
            }
            Block::Add => {
                let other = self.same_shape(cur, d);
                let operands = if d.flag() { [other, cur] } else { [cur, other] };
                // Now and then an element-wise product of two full tensors instead.
                let op = if d.roll() % 4 == 3 { Op::Mul } else { Op::Add };
                self.one(op, &operands)
            }
            Block::SqueezeExcite => {
                let pooled = self.one(Op::GlobalAvgPool, &[cur]);
                let scale = match d.roll() % 3 {
                    0 => self.one(Op::Sigmoid, &[pooled]),
                    1 => pooled,
                    _ => {
                        let reduced = d.upto(c);
                        let r = self.conv(pooled, reduced, (1, 0, 1), 1, d);
                        let r = self.activation(r, d);
                        let e = self.conv(r, c, (1, 0, 1), 1, d);
                        let gate = d.pick(&[Op::Sigmoid, Op::Hardswish, Op::Relu6]);
                        self.one(gate, &[e])
                    }
                };
                self.one(Op::Mul, &[cur, scale])
            }
            Block::SplitConcat => {
                if c < 2 {
                    return self.activation(cur, d);
                }
                let sizes = split_sizes(c, d);
                let parts = self.add(Op::Split { sizes }, &[cur]);
                self.history.extend(&parts);
                let mut branches = Vec::new();
                for &part in &parts {
                    let mut v = part;
                    for _ in 0..d.roll() % 3 {
                        v = self.branch_op(v, d);
                    }
                    branches.push(v);
                }
                let orders = permutations(branches.len());
                let order = d.pick(&orders);
                let operands: Vec<Value> = order.iter().map(|&i| branches[i]).collect();
                self.one(Op::Concat, &operands)
            }
        }
    }

    fn activation(&mut self, x: Value, d: &mut Dice<'_>) -> Value {
        let op = d.pick(&[Op::Relu, Op::Relu6, Op::Hardswish, Op::Sigmoid]);
        self.one(op, &[x])
    }

    fn batch_norm(&mut self, x: Value, d: &mut Dice<'_>) -> Value {
        let eps = d.pick(&[1e-5, 1e-3]);
        self.one(Op::BatchNorm { eps: Float(eps) }, &[x])
    }

    /// A convolution with a square window; the group count and bias come from the dice.
    fn conv(&mut self, x: Value, out: usize, window: Window, stride: usize, d: &mut Dice<'_>) -> Value {
        let c = self.dims(x)[1];
        let divisors = divisors(gcd(c, out));
        let groups = match d.roll() % 3 {
            0 => 1,
            // Depthwise when `out == c`.
            1 => *divisors.last().expect("1 divides everything"),
            _ => d.pick(&divisors),
        };
        let (k, p, dil) = window;
        let conv = Conv {
            out_channels: out,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [p, p],
            dilation: [dil, dil],
            groups,
            bias: d.flag(),
        };
        self.one(Op::Conv(conv), &[x])
    }

    /// An earlier tensor of `cur`'s shape, or a convolution of an earlier tensor (`cur`
    /// included) that has it.
    fn same_shape(&mut self, cur: Value, d: &mut Dice<'_>) -> Value {
        let target = self.dims(cur);
        #[derive(Clone, Copy)]
        enum Source {
            Same(Value),
            Projection(Value, Window, usize),
        }
        let mut options: Vec<Source> = self
            .history
            .iter()
            .filter(|&&v| v != cur && self.shape(v) == target)
            .map(|&v| Source::Same(v))
            .collect();
        for &v in &self.history {
            let [n, _, h, w] = self.dims(v);
            for (k, p) in [(1, 0), (3, 1)] {
                for s in [1, 2] {
                    let fits =
                        |size: usize, goal: usize| size + 2 * p >= k && (size + 2 * p - k) / s + 1 == goal;
                    if n == target[0] && fits(h, target[2]) && fits(w, target[3]) {
                        options.push(Source::Projection(v, (k, p, 1), s));
                    }
                }
            }
        }
        match options[d.roll() % options.len()] {
            Source::Same(v) => v,
            Source::Projection(v, window, stride) => self.conv(v, target[1], window, stride, d),
        }
    }

    /// One op on a split part that keeps its height and width.
    fn branch_op(&mut self, x: Value, d: &mut Dice<'_>) -> Value {
        let [_, c, _, _] = self.dims(x);
        match d.roll() % 6 {
            0 => self.activation(x, d),
            1 => self.batch_norm(x, d),
            2 => {
                let out = if d.flag() { d.upto(8) } else { c };
                let k = d.pick(&[1, 3, 5]);
                let dil = if k > 1 { d.pick(&[1, 2]) } else { 1 };
                self.conv(x, out, (k, dil * (k - 1) / 2, dil), 1, d)
            }
            3 => {
                let groups = d.pick(&shuffle_groups(c));
                self.one(Op::ChannelShuffle { groups }, &[x])
            }
            4 => {
                let other = self.same_shape(x, d);
                self.one(Op::Add, &[x, other])
            }
            _ => {
                let pool = Pool { kernel: [3, 3], stride: [1, 1], padding: [1, 1] };
                let op = if d.flag() { Op::AvgPool(pool) } else { Op::MaxPool(pool) };
                self.one(op, &[x])
            }
        }
    }
}

/// Split sizes for `c >= 2` channels: 2 or 3 parts (3 when there are enough channels),
/// equal when they divide evenly and the dice ask for it.
fn split_sizes(c: usize, d: &mut Dice<'_>) -> Vec<usize> {
    let parts = if c >= 3 { d.pick(&[2, 3]) } else { 2 };
    let unequal = d.flag();
    if !unequal && c.is_multiple_of(parts) {
        return vec![c / parts; parts];
    }
    let first = d.upto(c - (parts - 1));
    if parts == 2 {
        return vec![first, c - first];
    }
    let second = d.upto(c - first - 1);
    vec![first, second, c - first - second]
}

/// Group counts for a shuffle of `c` channels: the divisors, the ones that move channels
/// (neither 1 nor `c`) first.
fn shuffle_groups(c: usize) -> Vec<usize> {
    let all = divisors(c);
    let mut moving: Vec<usize> = all.iter().copied().filter(|&g| g != 1 && g != c).collect();
    moving.extend(all.iter().copied().filter(|&g| g == 1 || g == c));
    moving
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|&d| n.is_multiple_of(d)).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// All permutations of `0..n`, the identity first.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in (0..n).rev() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            all.push(p);
        }
    }
    all
}

/// SplitMix64, for inputs and weights that do not depend on the platform.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi].
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / ((1u64 << 24) - 1) as f32;
        lo + (hi - lo) * unit
    }
}

/// A tensor of `shape` with values in [-1, 1], the same for a given seed on every machine.
pub fn random_input(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix(seed ^ 0x5eed_1e55_da7a_0001);
    Tensor::new(shape, (0..shape.iter().product()).map(|_| rng.uniform(-1.0, 1.0)).collect())
}

/// [`Weights::seeded`], with every batch norm made far from the identity (weight in
/// ±[0.5, 1.5], bias and running mean in [-1, 1], running variance in [0.1, 2]) and every
/// convolution and linear bias in [-0.5, 0.5], so that folding them into other layers matters.
pub fn random_weights(graph: &Graph, seed: u64) -> Weights {
    let mut weights = Weights::seeded(graph, seed);
    for (name, node, spec) in crate::weights::expected_params(graph) {
        let mut rng = SplitMix(seed ^ fnv(&name));
        let mut fill = |f: &mut dyn FnMut(&mut SplitMix) -> f32| {
            Tensor::new(&spec.shape, (0..spec.shape.iter().product()).map(|_| f(&mut rng)).collect())
        };
        let tensor = match (&node.op, spec.suffix) {
            (Op::BatchNorm { .. }, "weight") => fill(&mut |r| {
                let magnitude = r.uniform(0.5, 1.5);
                if r.next() & 1 == 0 { magnitude } else { -magnitude }
            }),
            (Op::BatchNorm { .. }, "bias" | "running_mean") => fill(&mut |r| r.uniform(-1.0, 1.0)),
            (Op::BatchNorm { .. }, "running_var") => fill(&mut |r| r.uniform(0.1, 2.0)),
            (_, "bias") => fill(&mut |r| r.uniform(-0.5, 0.5)),
            _ => continue,
        };
        weights.insert(name, tensor);
    }
    weights
}

/// FNV-1a of a name, to give each tensor its own stream.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Every network file of the repository's zoo (`zoo/**/*.ron`), sorted, skipping `spaces/`
/// as `archc zoo` does: search spaces are not networks, and their templates are checked when
/// the spaces load (`search/tests/space.rs`).
pub fn zoo_networks() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the zoo is readable") {
            let path = entry.expect("the zoo is readable").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "spaces") {
                    walk(&path, files);
                }
            } else if path.extension().is_some_and(|e| e == "ron") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo"), &mut files);
    files.sort();
    files
}

/// A zoo network at a small input size, so the reference interpreter stays quick: 32 pixels
/// for ImageNet networks (enough for five stride-2 stages), 8 for the guideline blocks (which
/// never downsample); MNIST and CIFAR networks keep theirs.
pub fn small_zoo_network(path: &std::path::Path, batch: usize) -> Graph {
    let text = std::fs::read_to_string(path).expect("the zoo is readable");
    let resolution = if text.contains("\"resolution\": 56") { "8" } else { "32" };
    let overrides = if text.contains("\"resolution\"") {
        vec![("resolution".to_string(), resolution.to_string())]
    } else {
        Vec::new()
    };
    crate::from_ron_file(path, &crate::BuildOptions { batch, overrides }).unwrap_or_else(|e| panic!("{e}"))
}

/// Calls `f` on every item, spread over the machine's cores (the zoo tests are long loops of
/// independent networks). A panic in any call fails the caller once all calls have ended.
pub fn for_each_parallel<T: Sync>(items: &[T], f: impl Fn(&T) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    f(item);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn generated_graphs_verify(recipe in recipes()) {
            let graph = recipe.build();
            prop_assert!(crate::verify(&graph).is_ok(), "{}", crate::print::to_text(&graph));
        }
    }

    #[test]
    fn zero_dice_take_the_simplest_options() {
        let recipe = Recipe {
            batch: 1,
            channels: 4,
            height: 3,
            width: 3,
            steps: [Block::Conv, Block::SplitConcat, Block::Add, Block::ReshapeShuffle]
                .into_iter()
                .map(|b| Step::new(b, &[]))
                .collect(),
            head: None,
            extra_output: None,
            naming: Naming::Numbered,
        };
        let text = crate::print::to_text(&recipe.build());
        assert!(text.contains("conv(%0) out=4 kernel=1 stride=1 padding=0 : [1, 4, 3, 3]"), "{text}");
        assert!(text.contains("split(%1) sizes=[2, 2]"), "{text}");
        assert!(text.contains("transpose(%6) perm=[1, 0, 2, 3] : [1, 2, 2, 3, 3]"), "{text}");
    }

    #[test]
    fn random_inputs_are_deterministic_and_bounded() {
        let a = random_input(&[2, 3, 4, 5], 7);
        assert_eq!(a, random_input(&[2, 3, 4, 5], 7));
        assert_ne!(a, random_input(&[2, 3, 4, 5], 8));
        assert!(a.data.iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn permutations_start_with_the_identity() {
        assert_eq!(permutations(3).len(), 6);
        assert_eq!(permutations(3)[0], vec![0, 1, 2]);
        assert_eq!(permutations(1), vec![vec![0]]);
    }
}
