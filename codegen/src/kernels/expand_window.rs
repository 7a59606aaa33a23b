//! A 1x1 convolution that expands its input fused with the depthwise convolution that alone
//! reads it (MobileNet V2's expansion and depthwise steps): each task computes a range of the
//! 1x1's output channels over the whole plane into its thread's scratch, then the depthwise
//! windows of the same channels, which read what the task wrote while it is still in its
//! core's cache. On several threads, planes of many rows split into bands (see
//! `window::banded`): a task then expands only the input rows its band's windows read. Separate steps write an expansion of up to 4.8 MB (MobileNet V2 at 112x112)
//! out to the last-level cache before the depthwise step reads it back, and on two threads
//! split the two steps differently (pixels, channels), so that each thread read half its
//! depthwise input from the other core.

use ir::{NodeId, Op};

use crate::emit::Function;
use crate::epilogue::Chain;
use crate::kernels::gemm::{Outputs, Stream, pointwise};
use crate::kernels::window::depthwise;
use crate::lower::{Lowering, task_count, task_items};

/// Multiply-adds (of the 1x1 convolution) a task should hold at least.
const TASK_MACS: usize = 1 << 18;

/// The depthwise convolution that alone reads `value`, the output of 1x1 convolution `id`
/// (stride 1, one group) after its epilogues, when the two can share a step: where the 1x1
/// expands its input (more output channels than input). ShuffleNet V2's 1x1 convolutions
/// before its depthwise ones keep their width, and ran slower fused on two threads (1.5x:
/// 1.05), their input read whole by every task.
pub(crate) fn fusable_window(graph: &ir::Graph, id: NodeId, value: ir::Value) -> Option<NodeId> {
    let Op::Conv(conv) = &graph.node(id).op else { return None };
    let expands = conv.out_channels > graph.shape(graph.operands(id)[0]).channels();
    if !pointwise(conv) || conv.groups != 1 || !expands || graph.outputs().contains(&value) {
        return None;
    }
    let [(reader, _, _)] = graph.users(value.node)[..] else { return None };
    let Op::Conv(next) = &graph.node(reader).op else { return None };
    depthwise(next, conv.out_channels).then_some(reader)
}

/// The depthwise convolution that [`fusable_window`] fuses 1x1 convolution `id` with, found
/// through its epilogue nodes (each the sole reader of the one before).
pub(crate) fn window_after(graph: &ir::Graph, id: NodeId) -> Option<NodeId> {
    let mut value = ir::Value { node: id, port: 0 };
    while let [(user, _, _)] = graph.users(value.node)[..] {
        if !graph.node(user).epilogue {
            return fusable_window(graph, id, value);
        }
        value = ir::Value { node: user, port: 0 };
    }
    None
}

impl Lowering<'_> {
    /// 1x1 convolution `id` with its epilogues `chain`, and depthwise convolution `dw` with
    /// its own, `dw_chain`, in one step: a task's channels are the output-channel tiles of the
    /// 1x1's micro-kernel.
    pub fn expand_window(
        &mut self,
        f: &mut Function,
        id: NodeId,
        chain: &Chain,
        dw: NodeId,
        dw_chain: &Chain,
    ) {
        let graph = self.graph;
        let pr = self.product(id, chain);
        let windows = self.windows(dw, dw_chain);
        let x = graph.operands(id)[0];
        let (rows, cols) = (pr.rows, pr.cols());
        let m_tiles = pr.m.div_ceil(rows);
        let bands = windows.bands();
        let chunks = task_count(m_tiles, TASK_MACS * bands.len() / (rows * pr.k * pr.p));
        let width = graph.shape(x).dims()[3];
        let tiles = self.tiles(&chain.steps, &pr, None, Stream::Weights);
        // A task's expanded channels go to its thread's scratch, planes padded as the plan pads
        // them, rather than to their buffer in the plan: the next task on the thread writes
        // the same lines again, which stay in its L2, where each task's own part of a buffer of
        // up to 4.8 MB went out dirty to the last-level cache. Peak memory of a MobileNet V2
        // run: 41.7 -> 40.3 MB.
        let plane_floats = passes::plan::padded_plane_bytes(pr.p * 4).div_ceil(4);
        let task_channels = m_tiles.div_ceil(chunks) * rows;
        self.parallel_bands(f, pr.batch, &bands, chunks, |l, f, n, chunk, out_rows| {
            let inputs = l.plane_array(f, x, "0", pr.k, n);
            let (first, count) = task_items(f, chunk, chunks, m_tiles);
            let c0 = f.int("mul", &first, rows);
            let end = f.int("add", &first, &count);
            let end = f.int("mul", &end, rows);
            let end = f.umin(&end, pr.m);
            let channels = f.int("sub", &end, &c0);
            let bytes = task_channels * plane_floats * 4;
            let base = f.let_("mid", format!("call ptr @archc_scratch(i64 {bytes})"));
            // The scratch plane of the task's `i`-th channel.
            let scratch_plane = |f: &mut Function, i: &str| {
                let at = f.int("mul", i, plane_floats);
                f.float_at(&base, &at)
            };
            let outs = f.pointer_array(pr.m);
            f.count(&channels, |f, i| {
                let c = f.int("add", &c0, i);
                let plane = scratch_plane(f, i);
                let slot = f.pointer_at(&outs, &c);
                f.line(format!("store ptr {plane}, ptr {slot}"));
            });
            let outputs = Outputs::to_array(l, f, outs, chain, "0", &pr, n);
            // The expanded pixels that the band's windows read, from a whole vector on.
            let in_rows = windows.input_rows(out_rows.clone());
            let pixels = (in_rows.start * width) / pr.lanes * pr.lanes..in_rows.end * width;
            let p_tiles = pixels.len().div_ceil(cols);
            // Pixel tile by pixel tile, each of the task's channel tiles (two at 112x112) reading
            // its input from L1 after the first, where channel tile by channel tile read the
            // whole input (800 KB at 112x112) from L2 once per tile. MobileNet V2's 112x112 step
            // alone: 379-390 -> 349-356 us (medians).
            f.count(p_tiles, |f, pt| {
                let (p0, p_valid) = pr.pixel_tile_in(f, pixels.clone(), pt);
                f.count(&count, |f, i| {
                    let mt = f.int("add", &first, i);
                    tiles.fitting(f, &p_valid, |f, t| {
                        outputs.call(f, t, &pr, &mt, &inputs, &p0, &p_valid, &p0, None)
                    });
                });
            });
            f.count(&channels, |f, i| {
                let c = f.int("add", &c0, i);
                let plane = scratch_plane(f, i);
                l.window_channel(f, &windows, dw_chain, (&c, n), out_rows.clone(), Some(plane));
            });
        });
    }
}
