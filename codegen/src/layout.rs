//! Which values a CPU network keeps channel-blocked, and which kernels compute in that layout.
//!
//! A channel-blocked value (oneDNN's `nChw16c`) stores each block of `lanes` channels pixel
//! after pixel, one vector of the block's channels per pixel, in the same bytes as the block's
//! channel planes (block `b` of item `n` starts where plane `b * lanes` does; its pixel `p` is
//! `p * lanes` floats in). On planes of 28x28 pixels and less, the vectors of a plane layout
//! lose lanes to every row or plane tail (a 7x7 plane is three vectors and one pixel, a
//! 28-wide row one and three quarters), while blocked tiles and windows use every lane:
//! `kernels::blocked` and `kernels::blocked_window` compute the 1x1 and 3x3 depthwise
//! convolutions there, and `kernels::classifier` a classifier tail. A value is blocked only
//! where its writer and every reader are such kernels; a blocked 1x1 convolution reads planes
//! as well as blocks (it broadcasts single inputs), and writes planes where a reader needs
//! them, so the layout changes at the region's edges without copies. MobileNet V2, paired
//! against planes: 0.93 on one thread, 0.95 on two (BENCHMARKS.md, session 26).

use std::collections::{BTreeMap, BTreeSet};

use ir::{Graph, NodeId, Op, Value};
use passes::plan::{Placement, Plan};

use crate::epilogue::Chain;
use crate::kernels::{classifier, expand_window, gemm, window};
use crate::target::Isa;

/// Output pixels of a step up to which its convolution is computed channel-blocked: 28x28.
/// Larger planes fill their vectors, and MobileNet V2's have 24 channels.
const BLOCKED_PIXELS: usize = 784;

/// The channel-blocked part of a network.
#[derive(Clone, Debug, Default)]
pub(crate) struct Blocking {
    /// The convolutions computed by the channel-blocked kernels.
    pub kernels: BTreeSet<NodeId>,
    /// The values stored channel-blocked (written by those kernels, after their epilogues).
    pub values: BTreeSet<Value>,
}

impl Blocking {
    /// Whether value `v` is stored channel-blocked.
    pub fn blocked(&self, v: Value) -> bool {
        self.values.contains(&v)
    }
}

/// Chooses the channel-blocked kernels and values of `graph`, placed by `plan`, for vectors of
/// `isa`: AVX-512 only (16 lanes, 32 registers), inference only.
pub(crate) fn choose(graph: &Graph, plan: &Plan, isa: Isa) -> Blocking {
    let training = graph.node_ids().any(|id| matches!(graph.node(id).op, Op::Train(_)));
    if isa.lanes != 16 || isa.registers < 32 || training {
        return Blocking::default();
    }
    let position: BTreeMap<NodeId, usize> =
        plan.schedule.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let whole = |v: Value| matches!(plan.placements.get(&v), Some(Placement::Whole(_)));
    let mut pointwise = BTreeMap::new();
    let mut windows = BTreeMap::new();
    // Classifier tails (`kernels::classifier`) whose convolution reads blocks as well.
    let mut classifiers = BTreeSet::new();
    for &id in &plan.schedule {
        if plan.views.contains(&id) || graph.node(id).epilogue {
            continue;
        }
        let Op::Conv(conv) = &graph.node(id).op else { continue };
        let chain = Chain::after(graph, id, &|n| position[&n]);
        let out = chain.output(id);
        let (c, pixels) = crate::lower::planes(graph.shape(out));
        // An expansion that shares its step with the depthwise convolution after it writes
        // only scratch: the depthwise output's plane counts (a stride-2 one from 56x56).
        let window = expand_window::window_after(graph, id);
        let step_pixels =
            window.map_or(pixels, |dw| crate::lower::planes(graph.shape(Value { node: dw, port: 0 })).1);
        if c % isa.lanes != 0 || step_pixels > BLOCKED_PIXELS || !whole(out) {
            continue;
        }
        if gemm::pointwise(conv) && conv.groups == 1 {
            // Its operands are addressed as whole buffers (or the caller's input).
            let input = whole(graph.operands(id)[0]);
            match classifier::tail(graph, id, &chain) {
                Some(_) if input => {
                    classifiers.insert(id);
                }
                None if input && chain.residual.is_none_or(whole) => {
                    pointwise.insert(id, chain);
                }
                _ => {}
            }
        } else if blocked_window(conv, c) && chain.residual.is_none() {
            windows.insert(id, chain);
        }
    }
    loop {
        let values = blocked_values(graph, &pointwise, &windows, &classifiers);
        // A depthwise kernel reads and writes blocks only.
        let planar: Vec<NodeId> = windows
            .iter()
            .filter(|&(&id, chain)| {
                !values.contains(&graph.operands(id)[0]) || !values.contains(&chain.output(id))
            })
            .map(|(&id, _)| id)
            .collect();
        if planar.is_empty() {
            // A 1x1 convolution with planes on both sides keeps its own kernel (and its fusion
            // with the depthwise one after it).
            pointwise.retain(|&id, chain| {
                values.contains(&graph.operands(id)[0]) || values.contains(&chain.output(id))
            });
            let kernels = pointwise.keys().chain(windows.keys()).copied().collect();
            return Blocking { kernels, values };
        }
        for id in planar {
            windows.remove(&id);
        }
    }
}

/// Whether depthwise convolution `conv` over `channels` channels has a channel-blocked
/// kernel: 3x3 windows with padding 1, stride 1 or 2.
fn blocked_window(conv: &ir::Conv, channels: usize) -> bool {
    window::depthwise(conv, channels)
        && conv.kernel == [3, 3]
        && conv.padding == [1, 1]
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && conv.stride[0] <= 2
}

/// The outputs of the candidate kernels that every reader can read blocked: a candidate 1x1
/// convolution (any operand layout), a candidate depthwise one, a classifier tail's, or the
/// residual add of a candidate whose own output is blocked (a residual is read where the
/// output is written).
fn blocked_values(
    graph: &Graph,
    pointwise: &BTreeMap<NodeId, Chain>,
    windows: &BTreeMap<NodeId, Chain>,
    classifiers: &BTreeSet<NodeId>,
) -> BTreeSet<Value> {
    let chains = || pointwise.iter().chain(windows.iter());
    let mut values: BTreeSet<Value> =
        chains().map(|(&id, chain)| chain.output(id)).filter(|v| !graph.outputs().contains(v)).collect();
    loop {
        let residual_of = |user: NodeId| {
            chains()
                .find(|(_, chain)| chain.nodes.contains(&user))
                .filter(|(_, chain)| chain.residual.is_some())
                .map(|(&id, chain)| chain.output(id))
        };
        let readable = |v: &Value| {
            graph.users(v.node).iter().all(|&(user, slot, port)| {
                port != v.port
                    || (slot == 0
                        && (pointwise.contains_key(&user)
                            || windows.contains_key(&user)
                            || classifiers.contains(&user)))
                    || residual_of(user).is_some_and(|out| values.contains(&out))
            })
        };
        // A blocked output needs a blocked residual.
        let consistent = |v: &Value| {
            chains()
                .filter(|&(&id, chain)| chain.output(id) == *v)
                .all(|(_, chain)| chain.residual.is_none_or(|r| values.contains(&r)))
        };
        let keep: BTreeSet<Value> = values.iter().copied().filter(|v| readable(v) && consistent(v)).collect();
        if keep.len() == values.len() {
            return values;
        }
        values = keep;
    }
}
