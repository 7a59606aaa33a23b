//! Lowering: a verified graph and its memory plan become one LLVM module: a step function per
//! kernel (a conv or linear layer with its fused epilogues, a pool, a copy, ...), specialized
//! to its static shapes, and a `forward` entry point that calls the steps in order.
//!
//! Every value is addressed through a table of channel planes (byte offset of the plane of
//! batch item 0 in the arena, and the stride between batch items), so the zero-copy channel
//! views of the memory plan need no special cases: a kernel reading a gathered or
//! concatenated value simply follows a different table. Weights travel in one f32 blob,
//! pre-packed into the layouts the kernels read. Heavy kernels split their work into tasks
//! that the runtime's thread pool runs (`archc_parallel_for`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use ir::{Graph, NodeId, Op, Value, Weights};
use passes::plan::{Placement, Plan};

use crate::Error;
use crate::emit::{self, Function};
use crate::epilogue::{Chain, Step};
use crate::kernels::classifier;
use crate::kernels::expand_window::fusable_window;
use crate::layout::Blocking;
use crate::schedule::{self, Schedule, Schedules};
use crate::target::Isa;

/// A lowered network: LLVM IR text and the data it runs with.
pub struct Lowered {
    /// The module, as LLVM IR text.
    pub ir: String,
    /// The entry point, `void {symbol}_forward(const float *in, float *out, const float *w, void *arena)`.
    /// `in` holds the graph's inputs one after the other, `out` its outputs.
    pub forward: String,
    /// The steps `forward` calls, in order; the module exports them, with the same signature,
    /// as the array `{symbol}_steps`, so that a profiler can time each.
    pub steps: Vec<StepInfo>,
    /// The weights blob the entry point reads.
    pub weights: Vec<f32>,
    /// Bytes of the activation arena.
    pub arena_bytes: usize,
    /// The inputs' shapes (NCHW, the batch included), in the order `in` holds them.
    pub inputs: Vec<Vec<usize>>,
    /// The outputs' shapes, in the order `out` holds them.
    pub outputs: Vec<Vec<usize>>,
}

impl Lowered {
    /// The shapes of the only input and the only output; executables and libraries take one
    /// array in and give one out.
    pub fn single_io(&self) -> Result<(&[usize], &[usize]), Error> {
        match (&self.inputs[..], &self.outputs[..]) {
            ([input], [output]) => Ok((input, output)),
            _ => Err(Error::Unsupported(format!(
                "{} inputs and {} outputs; executables and libraries have one of each",
                self.inputs.len(),
                self.outputs.len()
            ))),
        }
    }
}

/// What one step computes.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// The name of the node it computes (its fused epilogues included), or `input` / `output`
    /// for the copies in and out of the arena.
    pub name: String,
    /// The op, as printed (`conv`, `max_pool`, ...), with `+relu` etc. for fused epilogues.
    pub op: String,
    /// Multiply-adds.
    pub macs: u64,
}

/// Lowers `graph` (with `weights`, placed by `plan`) for a CPU with vector shape `isa`, each
/// convolution by its schedule in `schedules` or its default, into a module whose symbols start
/// with `symbol`.
pub fn lower(
    graph: &Graph,
    weights: &Weights,
    plan: &Plan,
    isa: Isa,
    schedules: &Schedules,
    symbol: &str,
) -> Result<Lowered, Error> {
    // Inference kernels address every plane through the plan, so a network's planes can be
    // padded; training kernels read some buffers as flat arrays.
    let blocking = crate::layout::choose(graph, plan, isa);
    let groups = kernel_groups(graph, plan, Some(&blocking.kernels));
    let mut padded = plan.clone();
    // A fused depthwise convolution writes its output at its 1x1 convolution's step, and
    // reads the 1x1's from scratch.
    for group in &groups {
        if let Some((dw, dw_chain)) = &group.window {
            let at = plan.schedule.iter().position(|&id| id == group.id).expect("a scheduled node");
            padded.write_earlier(dw_chain.output(*dw), at);
            padded.leave_out(group.chain.output(group.id));
        }
    }
    if !graph.node_ids().any(|id| matches!(graph.node(id).op, Op::Train(_))) {
        padded.pad_planes();
    }
    let plan = &padded;
    let mut l = Lowering::new(graph, weights, plan, isa, symbol);
    l.schedules = schedules;
    l.blocking = blocking;
    let inputs = input_values(graph);
    let read_only = |(user, _, _): &(NodeId, usize, usize)| {
        matches!(graph.node(*user).op, Op::Conv(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::Linear { .. })
            && !plan.views.contains(user)
    };
    // A single input read only by kernels that only read it is read from the caller's array
    // in place; anything else (an element-wise op could write in place, a view could point
    // into it) gets a copy.
    match &inputs[..] {
        [only] if graph.users(only.node).iter().all(read_only) && !graph.outputs().contains(only) => {
            l.external_input = Some(*only);
        }
        _ => l.step(StepInfo { name: "input".into(), op: "copy".into(), macs: 0 }, |l, f| {
            l.copy_external(f, &inputs, "%in", true)
        }),
    }
    for group in groups {
        l.step(group.info.clone(), |l, f| l.kernel(f, &group))?;
    }
    l.step(StepInfo { name: "output".into(), op: "copy".into(), macs: 0 }, |l, f| {
        l.copy_external(f, graph.outputs(), "%out", false)
    });
    Ok(l.finish())
}

/// The graph's inputs, as values, in order.
pub(crate) fn input_values(graph: &Graph) -> Vec<Value> {
    graph.inputs().iter().map(|&node| Value { node, port: 0 }).collect()
}

/// The shapes (NCHW, the batch included) of `values`.
pub(crate) fn shapes(graph: &Graph, values: &[Value]) -> Vec<Vec<usize>> {
    values.iter().map(|&v| graph.shape(v).dims().to_vec()).collect()
}

/// One step's kernel: node `id` with its fused epilogues `chain`, and what the step computes.
pub(crate) struct Group {
    pub id: NodeId,
    pub chain: Chain,
    /// The linear layer (and its epilogues) of a classifier tail run in the same kernel: `id`
    /// is then the 1x1 convolution whose pooled output it reads (see `kernels::classifier`).
    pub classifier: Option<(NodeId, Chain)>,
    /// The depthwise convolution (and its epilogues) that alone reads a 1x1 convolution `id`,
    /// run in the same kernel (see `kernels::expand_window`).
    pub window: Option<(NodeId, Chain)>,
    pub info: StepInfo,
}

/// The network's kernels in schedule order: each node that computes something (not an input,
/// a view, or an epilogue fused into an earlier node). With `fuse` (CPU kernels), a 1x1
/// convolution takes the pool and linear layer it feeds, or the depthwise convolution that
/// alone reads it, into its step, unless `fuse` has it among the channel-blocked kernels.
pub(crate) fn kernel_groups(graph: &Graph, plan: &Plan, fuse: Option<&BTreeSet<NodeId>>) -> Vec<Group> {
    let position: BTreeMap<NodeId, usize> =
        plan.schedule.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut fused = BTreeSet::new();
    let mut groups = Vec::new();
    for &id in &plan.schedule {
        let node = graph.node(id);
        if node.op == Op::Input || plan.views.contains(&id) || fused.contains(&id) {
            continue;
        }
        let chain = match node.op {
            Op::Conv(_) | Op::Linear { .. } => Chain::after(graph, id, &|n| position[&n]),
            _ => Chain::default(),
        };
        let mut members = chain.nodes.clone();
        // A blocked 1x1 convolution fuses only with a blocked depthwise one, and no residual.
        let blocked = fuse.filter(|blocked| blocked.contains(&id));
        let fuse_window = fuse.is_some()
            && blocked.is_none_or(|blocked| {
                chain.residual.is_none() && {
                    crate::kernels::expand_window::window_after(graph, id)
                        .is_some_and(|dw| blocked.contains(&dw))
                }
            });
        let fuse = fuse.is_some() && blocked.is_none();
        let classifier = fuse.then(|| classifier::tail(graph, id, &chain)).flatten().map(|(pool, linear)| {
            let linear_chain = Chain::after(graph, linear, &|n| position[&n]);
            members.extend([pool, linear].iter().chain(&linear_chain.nodes));
            (linear, linear_chain)
        });
        // The depthwise step moves up to the 1x1's place: its residual must be ready there.
        let window = fuse_window
            .then(|| fusable_window(graph, id, chain.output(id)))
            .flatten()
            .filter(|dw| !plan.views.contains(dw))
            .map(|dw| (dw, Chain::after(graph, dw, &|n| position[&n])))
            .filter(|(_, dw_chain)| dw_chain.residual.is_none_or(|r| position[&r.node] < position[&id]));
        if let Some((dw, dw_chain)) = &window {
            members.extend(std::iter::once(dw).chain(&dw_chain.nodes));
        }
        fused.extend(members.iter().copied());
        let mut op = node.op.name().to_string();
        for &e in &members {
            op.push('+');
            op.push_str(graph.node(e).op.name());
        }
        let macs = std::iter::once(&id)
            .chain(&members)
            .map(|&e| {
                let inputs: Vec<&ir::Shape> = graph.operands(e).iter().map(|&v| graph.shape(v)).collect();
                ir::metrics::macs(&graph.node(e).op, &inputs, &graph.node(e).outputs)
            })
            .sum();
        groups.push(Group {
            id,
            chain,
            classifier,
            window,
            info: StepInfo { name: node.name.clone(), op, macs },
        });
    }
    groups
}

/// What a GEMM micro-kernel is defined for: its epilogue sequence, tile shape (rows, vectors;
/// 0 vectors for a column tile), panel stride, and whether it prefetches for a later kernel.
pub(crate) type TileKey = (Vec<Step>, usize, usize, Option<usize>, crate::kernels::gemm::Stream);

pub(crate) struct Lowering<'a> {
    pub graph: &'a Graph,
    pub weights: &'a Weights,
    pub plan: &'a Plan,
    pub symbol: &'a str,
    pub isa: Isa,
    /// How convolutions with a choice are computed.
    pub schedules: &'a Schedules,
    /// Whether the kernel being lowered is the several-threads variant of its step.
    pub(crate) parallel_variant: bool,
    /// Blob offsets of a convolution's packed weights and bias, by (convolution, tile rows):
    /// a step's two thread-count variants share them where their tiles have as many rows.
    pub packed_weights: BTreeMap<(NodeId, usize), (usize, usize)>,
    /// Blob offsets of a depthwise convolution's weights and bias, pushed once per node.
    pub window_weights: BTreeMap<NodeId, (usize, usize)>,
    pub globals: String,
    tables: BTreeMap<Value, String>,
    blob: Vec<f32>,
    functions: String,
    /// The GEMM micro-kernels by what they are defined for.
    pub tiles: BTreeMap<TileKey, String>,
    /// The channel-blocked 1x1 tile functions by what they are defined for.
    pub(crate) blocked_tiles: BTreeMap<crate::kernels::blocked::BlockedTileKey, String>,
    steps: Vec<StepInfo>,
    names: usize,
    /// Bytes after the memory plan's buffers that kernels use for scratch within one step.
    scratch_bytes: usize,
    /// The input, when kernels read it from the caller's array (`%in`, NCHW) instead of a copy.
    pub(crate) external_input: Option<Value>,
    /// The channel-blocked kernels and values.
    pub(crate) blocking: Blocking,
}

/// Task counts are rounded up to a multiple of this, so that two or four threads claiming
/// equal tasks finish together (5 tasks on 2 threads leave one idle for a fifth of the step).
const TASK_MULTIPLE: usize = 4;

/// Tasks grow to this many times the smallest task a kernel asks for while that leaves
/// [`BALANCED_TASKS`] of them, and shrink (down to the smallest) only to reach that many:
/// fewer task setups, the same balance.
const TASK_GROWTH: usize = 4;

/// Tasks enough for the dynamic claiming of two to four threads to end together.
const BALANCED_TASKS: usize = 8;

/// How many tasks share `items` equal items, at least `per_task` each and up to
/// [`TASK_GROWTH`] times that (see [`task_items`]).
pub(crate) fn task_count(items: usize, per_task: usize) -> usize {
    let per_task = per_task.max(1);
    let large = items.div_ceil(TASK_GROWTH * per_task);
    let small = items.div_ceil(per_task);
    match large.max(small.min(BALANCED_TASKS)) {
        0 | 1 => items.min(1),
        tasks => tasks.next_multiple_of(TASK_MULTIPLE).min(items),
    }
}

/// The items of task `task` (a register) among `tasks` sharing `items`: the first and how
/// many, as registers; the tasks' shares differ by one item at most.
pub(crate) fn task_items(f: &mut Function, task: &str, tasks: usize, items: usize) -> (String, String) {
    let start = f.int("mul", task, items);
    let first = f.int("udiv", &start, tasks);
    let end = f.int("add", &start, items);
    let end = f.int("udiv", &end, tasks);
    let count = f.int("sub", &end, &first);
    (first, count)
}

/// Channels and elements per channel plane of a shape (`[n, f]` has planes of one element).
pub(crate) fn planes(shape: &ir::Shape) -> (usize, usize) {
    let c = shape.channels();
    (c, shape.item_numel() / c)
}

/// The signature of step functions.
pub(crate) const STEP_PARAMS: &str =
    "(ptr noalias %in, ptr noalias %out, ptr noalias %w, ptr noalias %arena)";

impl<'a> Lowering<'a> {
    /// Starts lowering `graph` (with `weights`, placed by `plan`) into a module whose symbols
    /// start with `symbol`.
    pub fn new(graph: &'a Graph, weights: &'a Weights, plan: &'a Plan, isa: Isa, symbol: &'a str) -> Self {
        Lowering {
            graph,
            weights,
            plan,
            symbol,
            isa,
            schedules: &schedule::DEFAULTS,
            parallel_variant: false,
            packed_weights: BTreeMap::new(),
            window_weights: BTreeMap::new(),
            globals: String::new(),
            tables: BTreeMap::new(),
            blob: Vec::new(),
            functions: String::new(),
            tiles: BTreeMap::new(),
            blocked_tiles: BTreeMap::new(),
            steps: Vec::new(),
            names: 0,
            scratch_bytes: 0,
            external_input: None,
            blocking: Blocking::default(),
        }
    }

    /// Emits one step function; its body sees `%in`, `%out`, `%w` and `%arena`.
    pub fn step<T>(&mut self, info: StepInfo, body: impl FnOnce(&mut Self, &mut Function) -> T) -> T {
        let mut f = Function::new();
        let result = body(self, &mut f);
        let name = format!("@{}_s{}", self.symbol, self.steps.len());
        self.functions.push_str(&f.finish(&format!("define internal void {name}{STEP_PARAMS}")));
        self.functions.push('\n');
        self.steps.push(info);
        result
    }

    /// Adds a function definition to the module.
    pub fn define(&mut self, text: &str) {
        self.functions.push_str(text);
        self.functions.push('\n');
    }

    /// Arena space of `bytes` bytes for one step's own use, after every planned buffer (steps
    /// run one at a time, so they share it); returns its byte offset.
    pub fn scratch_arena(&mut self, bytes: usize) -> usize {
        self.scratch_bytes = self.scratch_bytes.max(bytes);
        self.plan.peak_bytes.next_multiple_of(64)
    }

    /// A fresh global symbol.
    pub fn global_name(&mut self, what: &str) -> String {
        self.names += 1;
        format!("@{}_{what}{}", self.symbol, self.names)
    }

    /// Runs `tasks` tasks on the thread pool from step body `f`: `body` writes the task
    /// function, whose task index is `%t` and which sees the step's `%arena`, `%w`, `%in`
    /// and `%out`.
    pub fn parallel(&mut self, f: &mut Function, tasks: usize, body: impl FnOnce(&mut Self, &mut Function)) {
        const SHARED: [&str; 4] = ["%arena", "%w", "%in", "%out"];
        let name = self.global_name("task");
        let mut task = Function::new();
        for (i, register) in SHARED.iter().enumerate() {
            let slot = task.pointer_at("%ctx", &i.to_string());
            task.line(format!("{register} = load ptr, ptr {slot}"));
        }
        body(self, &mut task);
        self.define(&task.finish(&format!("define internal void {name}(ptr noalias %ctx, i64 %t)")));
        let ctx = f.pointer_array(SHARED.len());
        for (i, register) in SHARED.iter().enumerate() {
            let slot = f.pointer_at(&ctx, &i.to_string());
            f.line(format!("store ptr {register}, ptr {slot}"));
        }
        f.line(format!("call void @archc_parallel_for(ptr {name}, ptr {ctx}, i64 {tasks})"));
    }

    /// Runs `body(l, f, n, c, plane)` on the thread pool for channel plane `c` of batch item
    /// `n` (flat index `plane = n * channels + c`) of every item, `per_task` planes per task.
    pub fn parallel_planes(
        &mut self,
        f: &mut Function,
        batch: usize,
        channels: usize,
        per_task: usize,
        body: impl FnOnce(&mut Self, &mut Function, &str, &str, &str),
    ) {
        let planes = batch * channels;
        let tasks = task_count(planes, per_task);
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, planes);
            f.count(&count, |f, i| {
                let plane = f.int("add", &first, i);
                let (n, c) = (f.int("udiv", &plane, channels), f.int("urem", &plane, channels));
                body(l, f, &n, &c, &plane);
            });
        });
    }

    /// The global table of channel planes of `v`: `[c x {i64 offset, i64 item_stride}]`.
    fn table(&mut self, v: Value) -> String {
        if let Some(t) = self.tables.get(&v) {
            return t.clone();
        }
        let c = self.graph.shape(v).channels();
        // Plane `ch` of buffer `b`: its offset, and the stride between batch items.
        let entry = |(b, ch): (usize, usize)| {
            let buffer = &self.plan.buffers[b];
            (buffer.offset + ch * buffer.plane_bytes, buffer.channels * buffer.plane_bytes)
        };
        let entries: Vec<(usize, usize)> = match &self.plan.placements[&v] {
            Placement::Whole(b) => (0..c).map(|ch| entry((*b, ch))).collect(),
            Placement::Planes(planes) => planes.iter().copied().map(entry).collect(),
        };
        let name = format!("@{}_t{}_{}", self.symbol, self.tables.len(), v.port);
        let items: Vec<String> =
            entries.iter().map(|(o, s)| format!("{{ i64, i64 }} {{ i64 {o}, i64 {s} }}")).collect();
        writeln!(self.globals, "{name} = internal constant [{c} x {{ i64, i64 }}] [{}]", items.join(", "))
            .expect("writing to a String");
        self.tables.insert(v, name.clone());
        name
    }

    /// Emits the address of channel `c` of batch item `n` of `v`: arithmetic for a whole
    /// buffer, a table lookup for a view.
    pub fn plane(&mut self, f: &mut Function, v: Value, c: &str, n: &str) -> String {
        if self.external_input == Some(v) {
            let (channels, inner) = planes(self.graph.shape(v));
            let item = f.int("mul", n, channels);
            let row = f.int("add", &item, c);
            let at = f.int("mul", &row, inner);
            return f.float_at("%in", &at);
        }
        if let Placement::Whole(b) = self.plan.placements[&v] {
            let buffer = &self.plan.buffers[b];
            let within = f.int("mul", c, buffer.plane_bytes);
            let item = f.int("mul", n, buffer.channels * buffer.plane_bytes);
            let off = f.int("add", &within, &item);
            let at = f.int("add", &off, buffer.offset);
            return f.let_("plane", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"));
        }
        let table = self.table(v);
        let (channels, _) = planes(self.graph.shape(v));
        let ty = format!("[{channels} x {{ i64, i64 }}]");
        let po = f.let_("po", format!("getelementptr inbounds {ty}, ptr {table}, i64 0, i64 {c}, i32 0"));
        let ps = f.let_("ps", format!("getelementptr inbounds {ty}, ptr {table}, i64 0, i64 {c}, i32 1"));
        let off = f.let_("off", format!("load i64, ptr {po}"));
        let stride = f.let_("stride", format!("load i64, ptr {ps}"));
        let item = f.int("mul", n, &stride);
        let at = f.int("add", &off, &item);
        f.let_("plane", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"))
    }

    /// A stack array of the plane addresses of channels `first..first + count` of `v` for
    /// batch item `n`.
    pub fn plane_array(&mut self, f: &mut Function, v: Value, first: &str, count: usize, n: &str) -> String {
        let array = f.pointer_array(count);
        f.count(count, |f, k| {
            let c = f.int("add", first, k);
            let p = self.plane(f, v, &c, n);
            let slot = f.pointer_at(&array, k);
            f.line(format!("store ptr {p}, ptr {slot}"));
        });
        array
    }

    /// Appends `data` to the weights blob, aligned to a cache line, and returns its offset
    /// (in floats).
    pub fn push(&mut self, data: &[f32]) -> usize {
        self.blob.resize(self.blob.len().next_multiple_of(16), 0.0);
        let at = self.blob.len();
        self.blob.extend_from_slice(data);
        at
    }

    /// A parameter tensor of a node.
    pub fn param(&self, node: &ir::Node, name: &str) -> Vec<f32> {
        self.weights.param(node, name).data.clone()
    }

    /// Copies between contiguous row-major arrays, one after the other from `ptr`, and the
    /// planes of `values`.
    pub fn copy_external(&mut self, f: &mut Function, values: &[Value], ptr: &str, into_arena: bool) {
        let mut start = 0;
        for &v in values {
            let shape = self.graph.shape(v).clone();
            let (c, inner) = planes(&shape);
            f.count(shape.batch(), |f, n| {
                f.count(c, |f, ch| {
                    let plane = self.plane(f, v, ch, n);
                    let item = f.int("mul", n, c);
                    let row = f.int("add", &item, ch);
                    let within = f.int("mul", &row, inner);
                    let base = f.int("add", &within, start);
                    f.count(inner, |f, s| {
                        let flat = f.int("add", &base, s);
                        if into_arena {
                            let x = f.load(ptr, &flat);
                            f.store(&x, &plane, s);
                        } else {
                            let x = f.load(&plane, s);
                            f.store(&x, ptr, &flat);
                        }
                    });
                });
            });
            start += shape.numel();
        }
    }

    /// Emits the kernel of `group` (a node, its fused epilogues and nodes) into step body `f`.
    fn kernel(&mut self, f: &mut Function, group: &Group) -> Result<(), Error> {
        let (id, chain) = (group.id, &group.chain);
        if self.blocking.kernels.contains(&id) {
            match &group.window {
                Some(window) => self.blocked_expand_window(f, id, chain, window),
                None if crate::kernels::window::is_window(self.graph, id) => {
                    self.blocked_window(f, id, chain)
                }
                None => self.blocked_pointwise(f, id, chain),
            }
            return Ok(());
        }
        if let Some((linear, linear_chain)) = &group.classifier {
            self.classifier(f, id, chain, *linear, linear_chain);
            return Ok(());
        }
        let graph = self.graph;
        let node = graph.node(id);
        let emit = |l: &mut Self, f: &mut Function| match (&node.op, &group.window) {
            (Op::Conv(_), Some((dw, dw_chain))) => l.expand_window(f, id, chain, *dw, dw_chain),
            (Op::Conv(_), None) => l.conv(f, id, chain),
            (Op::Linear { .. }, _) => l.linear(f, id, chain),
            (Op::MaxPool(_) | Op::AvgPool(_), _) => l.window(f, id, chain),
            (Op::Input, _) => unreachable!("inputs are copied in by the first step"),
            (Op::Train(t), _) => l.training(f, id, t),
            _ => l.elementwise(f, id),
        };
        // The step's window node, if any: the depthwise convolution fused after a 1x1, or the
        // node itself.
        let window = group
            .window
            .as_ref()
            .map(|(dw, _)| *dw)
            .or(crate::kernels::window::is_window(graph, id).then_some(id));
        let variants = matches!(node.op, Op::Conv(_))
            && self.schedules.get_parallel(graph, id, self.isa).is_some()
            || window.is_some_and(|w| crate::kernels::window::banded(graph, w));
        if variants {
            // Both variants, chosen at run time by the pool's thread count.
            let threads = f.let_("threads", "call i32 @archc_threads()");
            let parallel = f.let_("parallel", format!("icmp sgt i32 {threads}, 1"));
            let serial = f.let_("serial", format!("xor i1 {parallel}, true"));
            f.when(&serial, |f| emit(self, f));
            self.parallel_variant = true;
            f.when(&parallel, |f| emit(self, f));
            self.parallel_variant = false;
        } else {
            emit(self, f);
        }
        Ok(())
    }

    /// Emits convolution `id` and its fused epilogues `chain` into step body `f`, by the
    /// kernel its shape and schedule call for.
    fn conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let Op::Conv(conv) = &self.graph.node(id).op else { unreachable!("a convolution") };
        let x = self.graph.operands(id)[0];
        let cin = self.graph.shape(x).channels();
        if crate::kernels::gemm::pointwise(conv) {
            self.pointwise_conv(f, id, chain);
        } else if crate::kernels::window::depthwise(conv, cin) {
            self.window(f, id, chain);
        } else if crate::kernels::direct::suits(conv, cin) {
            self.direct_conv(f, id, chain);
        } else if crate::kernels::winograd::suits(conv, cin) && self.schedule(id).winograd {
            self.winograd_conv(f, id, chain);
        } else if conv.stride == [1, 1] && self.rows_fill_tiles(id) {
            self.shifted_conv(f, id, chain);
        } else {
            self.im2col_conv(f, id, chain);
        }
    }

    /// How convolution `id` is computed (in the several-threads variant of its step, by the
    /// choice measured on several threads).
    pub fn schedule(&self, id: NodeId) -> Schedule {
        let serial = || self.schedules.get(self.graph, id, self.isa);
        match self.parallel_variant {
            true => self.schedules.get_parallel(self.graph, id, self.isa).unwrap_or_else(serial),
            false => serial(),
        }
    }

    /// Whether tiles kept within output rows (shifted convolutions) use most of their lanes:
    /// 7-wide rows fill less than half of a 16-pixel tile, where im2col tiles fill 77%.
    fn rows_fill_tiles(&self, id: NodeId) -> bool {
        let width = self.graph.shape(Value { node: id, port: 0 }).dims()[3];
        let cols = self.schedule(id).tile[1] * self.isa.lanes;
        width as f64 / (width.div_ceil(cols) * cols) as f64 >= 0.7
    }

    /// The module's global constants and function definitions, and the weights blob, for
    /// a module that is not a CPU network (a GPU kernel module).
    pub fn into_parts(self) -> (String, String, Vec<f32>) {
        (self.globals, self.functions, self.blob)
    }

    /// The CPU module: `forward` calling every step in order, and the exported step table.
    pub fn finish(self) -> Lowered {
        let inputs = shapes(self.graph, &input_values(self.graph));
        let outputs = shapes(self.graph, self.graph.outputs());
        let symbol = self.symbol;
        let forward = format!("{symbol}_forward");
        let mut ir = String::new();
        ir.push_str(&emit::intrinsics(self.isa.lanes));
        ir.push_str("declare void @archc_parallel_for(ptr, ptr, i64)\n");
        ir.push_str("declare i32 @archc_threads()\n");
        ir.push_str("declare noalias ptr @archc_scratch(i64)\n\n");
        ir.push_str(&self.globals);
        ir.push_str(&self.functions);
        let names: Vec<String> = (0..self.steps.len()).map(|i| format!("@{symbol}_s{i}")).collect();
        let mut body = String::new();
        for name in &names {
            writeln!(body, "  call void {name}(ptr %in, ptr %out, ptr %w, ptr %arena)")
                .expect("writing to a String");
        }
        write!(ir, "define void @{forward}{STEP_PARAMS} {{\nentry:\n{body}  ret void\n}}\n\n")
            .expect("writing to a String");
        let pointers: Vec<String> = names.iter().map(|n| format!("ptr {n}")).collect();
        writeln!(ir, "@{symbol}_steps = constant [{} x ptr] [{}]", names.len(), pointers.join(", "))
            .expect("writing to a String");
        Lowered {
            ir,
            forward,
            steps: self.steps,
            weights: self.blob,
            arena_bytes: self.plan.peak_bytes.next_multiple_of(64) + self.scratch_bytes,
            inputs,
            outputs,
        }
    }
}
