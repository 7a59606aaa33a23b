//! A channel-blocked layout for the input of a depthwise convolution, written by the 1x1
//! convolution that computes it: `lanes` channels side by side in every vector, each block's
//! plane bordered by the depthwise convolution's zero padding. The depthwise kernel then reads
//! each tap of `lanes` channels as one vector, with no edge cases, where NCHW planes cost it
//! masked edge vectors, idle lanes on planes narrower than a multiple of the vector (1 of 8 on
//! a 7-wide row) and twice the multiply-adds at stride 2.
//!
//! Block `b` of batch item `n` starts `n * item_bytes + b * block_bytes` into the value's
//! buffer; pixel `(y, x)` of the bordered plane is vector `y * cols + x` of the block.

use ir::{Activation, Graph, NodeId, Op, Value};
use passes::plan::{Buffer, Placement, Plan};

use crate::emit::{Function, Ty};
use crate::kernels::geometry::Window;
use crate::kernels::{gemm, window};
use crate::lower::Group;

/// Where a blocked value lives and the windows that read it.
#[derive(Clone, Copy)]
pub(crate) struct Blocked {
    /// Channels per block: the vector's lanes.
    pub lanes: usize,
    /// The depthwise convolution's windows over the value.
    pub at: Window,
    /// Rows and columns of the bordered plane: the zero padding above and left, and below and
    /// right as far as any window reaches.
    pub rows: usize,
    pub cols: usize,
    /// Bytes from the arena's start to the value's buffer, from one batch item to the next,
    /// and from one block of `lanes` channels to the next.
    pub offset: usize,
    pub item_bytes: usize,
    pub block_bytes: usize,
}

impl Blocked {
    /// The layout of a value read by windows `at`, bordered, its buffer not yet placed.
    fn bordered(at: Window, lanes: usize) -> Blocked {
        let Window { kernel, stride, padding, dilation, input, output } = at;
        let reach = |axis: usize| {
            let last = (output[axis] - 1) * stride[axis] + (kernel[axis] - 1) * dilation[axis] + 1;
            last.max(padding[axis] + input[axis])
        };
        Blocked { lanes, at, rows: reach(0), cols: reach(1), offset: 0, item_bytes: 0, block_bytes: 0 }
    }

    /// Bytes of one bordered plane of one channel.
    fn plane_bytes(&self) -> usize {
        self.rows * self.cols * 4
    }

    /// Blocks of a batch item.
    pub fn blocks(&self, channels: usize) -> usize {
        channels / self.lanes
    }

    /// The address of block `b` (a register) of batch item `n`.
    pub fn block(&self, f: &mut Function, n: &str, b: &str) -> String {
        let item = f.int("mul", n, self.item_bytes);
        let within = f.int("mul", b, self.block_bytes);
        let at = f.int("add", &item, &within);
        let at = f.int("add", &at, self.offset);
        f.let_("block", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"))
    }

    /// The vector index in its block of pixel `p` (a register) of the plane, flat.
    pub fn pixel(&self, f: &mut Function, p: &str) -> String {
        let [top, left] = self.at.padding;
        let width = self.at.input[1];
        let y = f.int("udiv", p, width);
        let x = f.int("urem", p, width);
        let y = f.int("add", &y, top);
        let row = f.int("mul", &y, self.cols);
        let at = f.int("add", &row, &x);
        f.int("add", &at, left)
    }

    /// Stores zero vectors over the border of the block at `block`: every vector of the
    /// bordered plane outside the value's own pixels.
    pub fn zero_border(&self, f: &mut Function, block: &str) {
        let [top, left] = self.at.padding;
        let [height, width] = self.at.input;
        let zero = Ty::Vector(self.lanes).constant(0.0);
        let zero_run = |f: &mut Function, first: &str, count: usize| {
            f.count(count, |f, i| {
                let at = f.int("add", first, i);
                let at = f.int("mul", &at, self.lanes);
                f.store_ty(Ty::Vector(self.lanes), &zero, block, &at, None);
            });
        };
        // Above and left of the first row; from each row's end to the next row's start; after
        // the last row's end.
        zero_run(f, "0", top * self.cols + left);
        f.count(height - 1, |f, y| {
            let row = f.int("add", y, top);
            let row = f.int("mul", &row, self.cols);
            let first = f.int("add", &row, left + width);
            zero_run(f, &first, self.cols - width);
        });
        let end = (top + height - 1) * self.cols + left + width;
        zero_run(f, &end.to_string(), self.rows * self.cols - end);
    }
}

/// The depthwise convolution that alone reads the output of convolution `id` of `graph` (after
/// its fused activations): with a [`Sweep::Blocked`](crate::schedule::Sweep::Blocked) schedule,
/// a 1x1 convolution writes that output blocked for it.
pub(crate) fn depthwise_after(graph: &Graph, id: NodeId) -> Option<NodeId> {
    let mut current = id;
    loop {
        let [(user, 0, 0)] = graph.users(current)[..] else { return None };
        let node = graph.node(user);
        if node.epilogue && Activation::of(&node.op).is_some() {
            current = user;
            continue;
        }
        let Op::Conv(conv) = &node.op else { return None };
        let channels = graph.shape(Value { node: current, port: 0 }).channels();
        return window::depthwise(conv, channels).then_some(user);
    }
}

/// The values of `graph` to lay out blocked for vectors of `lanes`, each with its layout, placed
/// after `plan`'s buffers: the output of every 1x1 convolution whose kernel (`groups`)
/// writes it whole, that `blocked(conv)` says to block, and that only a depthwise convolution
/// reads, its channels filling whole blocks.
pub(crate) fn choose(
    graph: &Graph,
    groups: &[Group],
    plan: &mut Plan,
    lanes: usize,
    blocked: &dyn Fn(NodeId) -> bool,
) -> Vec<(Value, Blocked)> {
    let mut chosen = Vec::new();
    for group in groups {
        let Op::Conv(conv) = &graph.node(group.id).op else { continue };
        if !gemm::pointwise(conv)
            || conv.groups != 1
            || group.classifier.is_some()
            || group.chain.residual.is_some()
            || !blocked(group.id)
        {
            continue;
        }
        let Some(reader) = depthwise_after(graph, group.id) else { continue };
        let v = group.chain.output(group.id);
        let Op::Conv(depthwise) = &graph.node(reader).op else { continue };
        let xs = graph.shape(v).dims();
        if graph.operands(reader)[0] != v
            || !xs[1].is_multiple_of(lanes)
            || graph.outputs().contains(&v)
            || !matches!(plan.placements[&v], Placement::Whole(_))
        {
            continue;
        }
        let ys = graph.shape(Value { node: reader, port: 0 }).dims();
        chosen.push((v, Blocked::bordered(Window::of_conv(depthwise, xs, ys), lanes)));
    }
    // Each blocked value in a region of its own after the planned buffers, alive as long as
    // the buffer planned for it.
    let extra: Vec<Buffer> = chosen
        .iter()
        .map(|(v, blocked)| {
            let Placement::Whole(b) = plan.placements[v] else {
                unreachable!("only whole buffers are chosen")
            };
            let planned = &plan.buffers[b];
            let plane_bytes = blocked.plane_bytes().next_multiple_of(64);
            let items = graph.shape(*v).batch();
            Buffer {
                bytes: items * planned.channels * plane_bytes,
                plane_bytes,
                offset: 0,
                ..planned.clone()
            }
        })
        .collect();
    let planes: Vec<(usize, usize)> = extra.iter().map(|b| (b.channels, b.plane_bytes)).collect();
    let offsets = plan.place_after(extra);
    for (((_, blocked), offset), (channels, plane_bytes)) in chosen.iter_mut().zip(offsets).zip(planes) {
        blocked.offset = offset;
        blocked.item_bytes = channels * plane_bytes;
        blocked.block_bytes = lanes * plane_bytes;
    }
    chosen
}
