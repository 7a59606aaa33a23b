//! Memory planning: where every value lives in one activation arena.
//!
//! Phases:
//! 1. Placement, in schedule (topological) order. Inputs are copied into the arena when a run
//!    starts, so every value lives there. A compute op writes a new buffer; a fused
//!    epilogue, and an element-wise op whose input buffer dies there, write in place. With
//!    channel views on (`-O2`), `gather`, `split` and `concat` copy nothing: their values are
//!    tables of channel planes in other buffers, so a concat's inputs stay where their
//!    producers wrote them and a shuffle is only a reordered table. Reshapes of a whole buffer
//!    that keep its channels are views too. What remains a copy counts in `moved_bytes`.
//! 2. Liveness: a buffer lives from its producer's step to the last step that reads any value
//!    placed in it (to the end for graph outputs).
//! 3. Offsets: greedy by size (largest first, each at the lowest offset free for its whole
//!    lifetime), as TensorFlow Lite's arena planner does; `peak_bytes` is the arena's size.
//!
//! A CPU build then pads its larger channel planes ([`Plan::pad_planes`]): planes are read side
//! by side (a 1x1 convolution reads one tile of every input plane), and planes a power-of-two
//! multiple of lines apart (a 112x112 plane is 784 lines) share a few cache sets and evict each
//! other.

use std::collections::BTreeMap;

use ir::{Graph, NodeId, Op, Value};

/// Buffers start at multiples of this many bytes (a cache line, and an AVX-512 vector).
const ALIGN: usize = 64;

/// Channel planes of at least this many bytes are padded by [`Plan::pad_planes`]. From 14x14
/// (784 bytes) up: a product split among threads by pixel tiles then writes no cache line from
/// two cores, where an unpadded plane's line at the split went back and forth between them
/// (MobileNet V2 on two threads: 0.98 against padding from 1 KiB, ShuffleNet V2 1.5x 0.96).
const PADDED_FROM: usize = 512;

/// One contiguous allocation: batch items of `channels` planes of `plane_bytes` each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Size in bytes.
    pub bytes: usize,
    /// Channels (axis 1) of the tensor it was made for.
    pub channels: usize,
    /// Bytes from one channel plane of an item to the next: the plane's data, and any padding
    /// after it.
    pub plane_bytes: usize,
    /// Offset in the arena.
    pub offset: usize,
    /// Schedule step that writes it first.
    pub first: usize,
    /// Last schedule step that reads it.
    pub last: usize,
}

/// Where a value's data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// All of one buffer, row-major.
    Whole(usize),
    /// Channel `i` of the value is channel plane `planes[i] = (buffer, channel)`.
    Planes(Vec<(usize, usize)>),
}

/// The memory plan of a graph.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The execution order.
    pub schedule: Vec<NodeId>,
    /// Every buffer.
    pub buffers: Vec<Buffer>,
    /// Every value's placement.
    pub placements: BTreeMap<Value, Placement>,
    /// Size of the arena.
    pub peak_bytes: usize,
    /// Bytes written by data-movement ops that had to copy.
    pub moved_bytes: u64,
    /// Nodes that write into their input's buffer.
    pub in_place: usize,
    /// Nodes realized as views: they compute nothing at run time.
    pub views: std::collections::BTreeSet<NodeId>,
}

/// The bytes [`Plan::pad_planes`] gives a channel plane of `bytes`: an odd number of cache
/// lines from [`PADDED_FROM`] bytes on, so that consecutive planes start in different cache sets.
pub fn padded_plane_bytes(bytes: usize) -> usize {
    if bytes >= PADDED_FROM { (bytes.div_ceil(ALIGN) | 1) * ALIGN } else { bytes }
}

impl Plan {
    /// Pads every channel plane of at least [`PADDED_FROM`] bytes to an odd number of cache
    /// lines, so that the planes of a buffer start in different cache sets, and places the
    /// buffers again. Only kernels that address every plane through the plan (the CPU
    /// inference kernels) may read a padded plan; a buffer is no longer one flat array.
    pub fn pad_planes(&mut self) {
        for b in &mut self.buffers {
            let padded = padded_plane_bytes(b.plane_bytes);
            if padded != b.plane_bytes {
                let items = b.bytes / (b.channels * b.plane_bytes);
                b.plane_bytes = padded;
                b.bytes = items * b.channels * b.plane_bytes;
            }
        }
        self.peak_bytes = assign_offsets(&mut self.buffers);
    }

    /// Makes the buffers of `value` alive from schedule step `step` on, and places the
    /// buffers again: a kernel computes `value` at that earlier step (a code generator's
    /// fusion of its node into an earlier one's kernel), while what that step reads is still
    /// alive and must keep its bytes.
    pub fn write_earlier(&mut self, value: Value, step: usize) {
        let buffers: Vec<usize> = match &self.placements[&value] {
            Placement::Whole(b) => vec![*b],
            Placement::Planes(planes) => planes.iter().map(|&(b, _)| b).collect(),
        };
        for b in buffers {
            self.buffers[b].first = self.buffers[b].first.min(step);
        }
        self.peak_bytes = assign_offsets(&mut self.buffers);
    }

    /// Gives the buffer of `value` no arena bytes, and places the buffers again: a code
    /// generator's fused kernel keeps the value in scratch of its own, and no kernel reads it
    /// from the arena.
    pub fn leave_out(&mut self, value: Value) {
        if let Placement::Whole(b) = self.placements[&value] {
            self.buffers[b].bytes = 0;
        }
        self.peak_bytes = assign_offsets(&mut self.buffers);
    }

    /// Checks the plan's invariant: buffers alive at the same time never share arena bytes,
    /// and all fit in `peak_bytes`.
    pub fn check(&self) -> Result<(), String> {
        for (i, a) in self.buffers.iter().enumerate() {
            if a.offset + a.bytes > self.peak_bytes {
                return Err(format!("{a:?} ends past the arena's {} bytes", self.peak_bytes));
            }
            for b in &self.buffers[i + 1..] {
                let live_together = a.first <= b.last && b.first <= a.last;
                let overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                if live_together && overlap {
                    return Err(format!("{a:?} and {b:?} are alive together and share bytes"));
                }
            }
        }
        Ok(())
    }
}

/// Plans `graph`'s memory; `views` turns channel plumbing into zero-copy views.
pub fn plan(graph: &Graph, views: bool) -> Plan {
    let schedule = graph.topo_order().expect("planning needs an acyclic graph");
    let step_of: BTreeMap<NodeId, usize> = schedule.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut placements: BTreeMap<Value, Placement> = BTreeMap::new();
    let mut moved_bytes = 0u64;
    let mut in_place = 0;
    let mut view_nodes = std::collections::BTreeSet::new();
    // The values placed in each buffer, whole or as channel views.
    let mut referrers: Vec<Vec<Value>> = Vec::new();
    let last_reader = |v: Value| -> usize {
        let readers = graph.users(v.node).into_iter().filter(|&(_, _, port)| port == v.port);
        let last = readers.map(|(user, _, _)| step_of[&user]).max().unwrap_or(step_of[&v.node]);
        if graph.outputs().contains(&v) { schedule.len() } else { last }
    };
    for (step, &id) in schedule.iter().enumerate() {
        let node = graph.node(id);
        let operands = graph.operands(id);
        let planes_of = |v: Value, placements: &BTreeMap<Value, Placement>| match &placements[&v] {
            Placement::Planes(p) => p.clone(),
            Placement::Whole(b) => (0..graph.shape(v).channels()).map(|c| (*b, c)).collect(),
        };
        let view: Option<Vec<Placement>> = match &node.op {
            _ if !views => None,
            Op::Gather { channels } => {
                let src = planes_of(operands[0], &placements);
                Some(vec![Placement::Planes(channels.iter().map(|&c| src[c]).collect())])
            }
            Op::Split { sizes } => {
                let src = planes_of(operands[0], &placements);
                let mut start = 0;
                Some(
                    sizes
                        .iter()
                        .map(|&s| {
                            start += s;
                            Placement::Planes(src[start - s..start].to_vec())
                        })
                        .collect(),
                )
            }
            Op::Concat => {
                let planes = operands.iter().flat_map(|&v| planes_of(v, &placements)).collect();
                Some(vec![simplify(planes, &buffers)])
            }
            // A reshape is a view of a whole buffer only when it keeps the buffer's channels:
            // channel tables count planes in the buffer's own layout.
            Op::Flatten | Op::Reshape { .. } => match &placements[&operands[0]] {
                Placement::Whole(b) if node.outputs[0].channels() == buffers[*b].channels => {
                    Some(vec![Placement::Whole(*b)])
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(view) = view {
            view_nodes.insert(id);
            for (port, p) in view.into_iter().enumerate() {
                let v = Value { node: id, port };
                for b in referenced(&p) {
                    referrers[b].push(v);
                }
                placements.insert(v, p);
            }
            continue;
        }
        if node.op.is_data_movement() {
            moved_bytes += node.outputs.iter().map(|s| s.numel() as u64 * 4).sum::<u64>();
        }
        // In place: a fused epilogue always (its input never leaves the kernel); an element-wise
        // op when its first operand is a whole arena buffer that nobody reads afterwards,
        // through that value or any view of the buffer (a gather of it read by this very op
        // would see channels it already overwrote).
        let reuse = operands.first().and_then(|&x| match placements[&x] {
            Placement::Whole(b)
                if (node.epilogue
                    || (node.op.is_elementwise()
                        && last_reader(x) == step
                        && referrers[b].iter().all(|&v| v == x || last_reader(v) < step)))
                    && graph.shape(x) == &node.outputs[0] =>
            {
                Some(b)
            }
            _ => None,
        });
        for (port, shape) in node.outputs.iter().enumerate() {
            let b = match reuse {
                Some(b) => {
                    in_place += 1;
                    b
                }
                None => {
                    // Every input is copied in before the first step runs.
                    let first = if node.op == Op::Input { 0 } else { step };
                    buffers.push(Buffer {
                        bytes: shape.numel() * 4,
                        channels: shape.channels(),
                        plane_bytes: shape.item_numel() / shape.channels() * 4,
                        offset: 0,
                        first,
                        last: step,
                    });
                    referrers.push(Vec::new());
                    buffers.len() - 1
                }
            };
            referrers[b].push(Value { node: id, port });
            placements.insert(Value { node: id, port }, Placement::Whole(b));
        }
    }
    // Liveness: every read of a value keeps all buffers it references alive.
    for (v, p) in &placements {
        let last = last_reader(*v);
        for b in referenced(p) {
            buffers[b].last = buffers[b].last.max(last);
        }
    }
    let peak_bytes = assign_offsets(&mut buffers);
    Plan { schedule, buffers, placements, peak_bytes, moved_bytes, in_place, views: view_nodes }
}

/// The buffers a placement reads, each once.
fn referenced(p: &Placement) -> std::collections::BTreeSet<usize> {
    match p {
        Placement::Whole(b) => std::collections::BTreeSet::from([*b]),
        Placement::Planes(planes) => planes.iter().map(|&(b, _)| b).collect(),
    }
}

/// A table that covers one whole buffer in order is that buffer.
fn simplify(planes: Vec<(usize, usize)>, buffers: &[Buffer]) -> Placement {
    let b = planes[0].0;
    let whole = planes.len() == buffers[b].channels && planes.iter().enumerate().all(|(i, &p)| p == (b, i));
    if whole { Placement::Whole(b) } else { Placement::Planes(planes) }
}

/// Greedy by size: each buffer, largest first, goes to the lowest aligned offset where it does
/// not overlap a placed buffer that is alive at the same time. Returns the arena's size.
fn assign_offsets(buffers: &mut [Buffer]) -> usize {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(buffers[b].bytes), b));
    let mut placed: Vec<usize> = Vec::new();
    let mut peak = 0;
    for b in order {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&o| buffers[o].first <= buffers[b].last && buffers[b].first <= buffers[o].last)
            .map(|&o| (buffers[o].offset, buffers[o].offset + buffers[o].bytes))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + buffers[b].bytes <= start {
                break;
            }
            offset = offset.max(end.next_multiple_of(ALIGN));
        }
        buffers[b].offset = offset;
        peak = peak.max(offset + buffers[b].bytes);
        placed.push(b);
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(body: &str) -> Graph {
        crate::test_network(1, 4, 8, body)
    }

    fn assert_disjoint(plan: &Plan) {
        plan.check().unwrap();
    }

    /// The plan of `network(body)` and the value of each step of its schedule.
    fn plan_with_values(body: &str) -> (Plan, Vec<Value>) {
        let p = plan(&network(body), true);
        let values = p.schedule.iter().map(|&node| Value { node, port: 0 }).collect();
        (p, values)
    }

    #[test]
    fn only_reshapes_that_keep_channels_are_views() {
        // Channel tables count planes in a buffer's own layout: a reshape to other channels
        // must get a buffer of its own, or a split after it would address the wrong planes.
        let g = network(
            r#"Reshape(shape: [4, 64]), Reshape(shape: [2, 128]), Split(parts: 2, names: ["a", "b"])"#,
        );
        let p = plan(&g, true);
        let reshapes: Vec<NodeId> =
            g.node_ids().filter(|&id| matches!(g.node(id).op, Op::Reshape { .. })).collect();
        assert!(p.views.contains(&reshapes[0]), "[4, 64] keeps the 4 channels of [4, 8, 8]");
        assert!(!p.views.contains(&reshapes[1]), "[2, 128] regroups them");
        assert_eq!(p.moved_bytes, 4 * 8 * 8 * 4);
    }

    #[test]
    fn padding_gives_large_planes_an_odd_number_of_lines() {
        // 16x16 planes (1 KiB, 16 lines) are padded to 17 lines, 14x14 ones (784 bytes, 12.25
        // lines) to 13; the pooled 7x7 planes are not.
        let g = crate::test_network(
            2,
            3,
            16,
            "Conv(out: 5, kernel: 3), Conv(out: 4, kernel: 3, padding: 0), MaxPool(kernel: 2), \
             Conv(out: 6, kernel: 1)",
        );
        let mut p = plan(&g, true);
        let before = p.clone();
        p.pad_planes();
        assert_disjoint(&p);
        for (old, new) in before.buffers.iter().zip(&p.buffers) {
            let items = old.bytes / (old.channels * old.plane_bytes);
            assert_eq!(items, 2, "batch 2");
            assert_eq!(new.bytes, items * new.channels * new.plane_bytes);
            match old.plane_bytes {
                1024 => assert_eq!(new.plane_bytes, 17 * 64),
                784 => assert_eq!(new.plane_bytes, 13 * 64),
                small => assert_eq!(new.plane_bytes, small, "a plane under 512 bytes stays as it is"),
            }
        }
        for bytes in [1024, 784, 196] {
            assert!(before.buffers.iter().any(|b| b.plane_bytes == bytes), "{bytes}");
        }
        assert!(p.peak_bytes > before.peak_bytes);
    }

    #[test]
    fn a_chain_reuses_memory() {
        let g = network(
            "Conv(out: 4, kernel: 3), Conv(out: 4, kernel: 3), Conv(out: 4, kernel: 3), Conv(out: 4, kernel: 3)",
        );
        let p = plan(&g, true);
        assert_disjoint(&p);
        let one = 4 * 8 * 8 * 4;
        assert_eq!(p.buffers.len(), 5, "the input and four conv outputs");
        assert_eq!(p.peak_bytes, 2 * one, "two buffers suffice for a chain");
    }

    #[test]
    fn a_value_written_earlier_keeps_apart_from_what_that_step_reads() {
        // Conv 3 may take conv 1's bytes, dead after conv 2; written at conv 2's step (fused
        // into its kernel), it must not.
        let (mut p, values) =
            plan_with_values("Conv(out: 4, kernel: 3), Conv(out: 4, kernel: 3), Conv(out: 4, kernel: 3)");
        let (first, third) = (values[1], values[3]);
        let offset = |p: &Plan, v: Value| match p.placements[&v] {
            Placement::Whole(b) => p.buffers[b].offset,
            Placement::Planes(_) => unreachable!("a conv's output is a whole buffer"),
        };
        assert_eq!(offset(&p, first), offset(&p, third), "the chain reuses conv 1's bytes");
        p.write_earlier(third, 2);
        assert_disjoint(&p);
        assert_ne!(offset(&p, first), offset(&p, third));
    }

    #[test]
    fn a_value_left_out_takes_no_arena_bytes() {
        // An expansion kept in a fused kernel's scratch: the arena holds its input and the
        // depthwise output alone.
        let (mut p, values) =
            plan_with_values("Conv(out: 16, kernel: 1), Conv(out: 16, kernel: 3, groups: 16)");
        let (expansion, depthwise) = (values[1], values[2]);
        p.write_earlier(depthwise, 1);
        let plane = 8 * 8 * 4;
        assert_eq!(p.peak_bytes, (4 + 16 + 16) * plane, "the input, expansion and depthwise output");
        p.leave_out(expansion);
        assert_disjoint(&p);
        assert_eq!(p.peak_bytes, (4 + 16) * plane, "the input and the depthwise output");
    }

    #[test]
    fn elementwise_ops_write_in_place_when_their_input_dies() {
        let g = network(r#"Conv(out: 4, kernel: 3, name: "c"), Relu, Sigmoid"#);
        assert_eq!(plan(&g, true).in_place, 2);
        let shared =
            network(r#"Conv(out: 4, kernel: 3, name: "c"), Relu, Alias(name: "r"), Add(["r", "c"])"#);
        assert_eq!(
            plan(&shared, true).in_place,
            1,
            "relu's input is still read by the add; the add reuses relu's buffer"
        );
    }

    #[test]
    fn elementwise_ops_never_overwrite_a_buffer_a_view_still_reads() {
        // Found by the random-graph property test: `add(s, gather(s))` in place in `s` read
        // channels it had already overwritten.
        for relu_first in [false, true] {
            let mut g = Graph::new("v");
            let x = g.add_input("x", ir::Shape::nchw(1, 2, 1, 2).unwrap(), None);
            let s = g.add(Op::Sigmoid, &[x], "s", None).unwrap()[0];
            let swapped = g.add(Op::Gather { channels: vec![1, 0] }, &[s], "g", None).unwrap()[0];
            let first = if relu_first { g.add(Op::Relu, &[s], "r", None).unwrap()[0] } else { s };
            let sum = g.add(Op::Add, &[first, swapped], "a", None).unwrap()[0];
            g.set_outputs(vec![sum]);
            let p = plan(&g, true);
            assert_disjoint(&p);
            let Placement::Planes(planes) = &p.placements[&swapped] else { panic!("a gather is a view") };
            let source = planes[0].0;
            for v in [first, sum] {
                if v != s {
                    assert_ne!(p.placements[&v], Placement::Whole(source), "relu first: {relu_first}");
                }
            }
        }
    }

    #[test]
    fn channel_plumbing_is_a_view_only_with_views_on() {
        let body = r#"Split(parts: 2, names: ["a", "b"]), Sequence(name: "r", from: "b", body: [Conv(out: 2, kernel: 1)]), Concat(["r", "a"]), ChannelShuffle(groups: 2)"#;
        let g = network(body);
        let copies = plan(&g, false);
        let bytes = |c: u64| c * 8 * 8 * 4;
        // split (2 + 2 channels), concat (4), shuffle (4).
        assert_eq!(copies.moved_bytes, bytes(12));
        let views = plan(&g, true);
        // The shuffle still copies: views cover gather, split and concat (-O2 rewrites shuffles
        // into gathers first).
        assert_eq!(views.moved_bytes, bytes(4));
        let concat = g.node_ids().find(|&id| g.node(id).op == Op::Concat).unwrap();
        let Placement::Planes(planes) = &views.placements[&Value { node: concat, port: 0 }] else {
            panic!("a concat of two buffers is a table of planes")
        };
        let input = views.placements[&Value { node: g.inputs()[0], port: 0 }].clone();
        let Placement::Whole(input) = input else { panic!("inputs are whole buffers") };
        assert_eq!(planes[2..], [(input, 0), (input, 1)], "a's planes stay in the input buffer");
        assert_disjoint(&views);
    }

    /// Every input is copied in when a run starts, so its buffer is taken from step 0, even
    /// when its first reader runs late.
    #[test]
    fn inputs_live_from_the_start() {
        let mut g = network("Relu, Conv(out: 2, kernel: 1)");
        let late = g.add_input("late", ir::Shape::new(vec![1, 2]).unwrap(), None);
        let mut outputs = g.outputs().to_vec();
        outputs.push(late);
        g.set_outputs(outputs);
        let p = plan(&g, false);
        let Placement::Whole(b) = p.placements[&late] else { panic!("an input is a whole buffer") };
        assert_eq!(p.buffers[b].first, 0);
        p.check().unwrap();
    }
}
