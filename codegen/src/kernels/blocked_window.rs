//! Channel-blocked 3x3 depthwise convolutions (see `layout`), alone or in one step with the
//! blocked 1x1 convolution whose output they alone read. A window's taps are whole vectors of
//! 16 channels, loaded aligned, with no permutes and no lanes lost to 28-, 14- or 7-wide rows.
//! Fused, each task expands one channel tile over the whole plane into its thread's scratch
//! (25 KB at 14x14, in L1) and runs the windows of its blocks from there: apart, the expansion
//! went out to the arena and came back (MobileNet V2's 14x14 depthwise steps ran at 45% of the
//! multiply-add peak).

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain, Step};
use crate::lower::{Lowering, task_count, task_items};

/// Output columns computed together: a 14x14 plane's rows whole, a 28x28 plane's in two.
const SEGMENT: usize = 14;

/// Window taps a task should hold at least.
const TASK_TAPS: usize = 1 << 16;

/// Multiply-adds (of the 1x1 convolution) a fused task should hold at least.
const TASK_MACS: usize = 1 << 18;

/// A blocked depthwise convolution: its shapes and where its weights are.
struct Windows {
    /// Input rows and columns, output rows and columns.
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    /// Blob offsets (floats) of the taps, `[block][tap][lane]`, and the bias.
    taps: usize,
    bias: usize,
    steps: Vec<Step>,
}

/// A row of `width` output columns in segments of at most [`SEGMENT`], as even as can be: each
/// segment's accumulators stay in registers while its three input rows are read.
fn segments(width: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let count = width.div_ceil(SEGMENT);
    (0..count).map(move |i| i * width / count..(i + 1) * width / count)
}

impl Lowering<'_> {
    /// Packs the taps and bias of depthwise convolution `id` (epilogues `chain`).
    fn blocked_windows(&mut self, id: NodeId, chain: &Chain) -> Windows {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let lanes = self.isa.lanes;
        let [_, c, h, w] = graph.shape(graph.operands(id)[0]).dims()[..] else { unreachable!("NCHW") };
        let [_, _, oh, ow] = graph.shape(chain.output(id)).dims()[..] else { unreachable!("NCHW") };
        let weight = self.param(node, "weight");
        let packed: Vec<f32> = (0..c * 9)
            .map(|i| {
                let (b, tap, lane) = (i / (9 * lanes), i / lanes % 9, i % lanes);
                weight[(b * lanes + lane) * 9 + tap]
            })
            .collect();
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; c] };
        Windows {
            h,
            w,
            oh,
            ow,
            stride: conv.stride[0],
            taps: self.push(&packed),
            bias: self.push(&bias),
            steps: chain.steps.clone(),
        }
    }

    /// Depthwise 3x3 convolution `id` (padding 1, stride 1 or 2) with its epilogues `chain`,
    /// from blocked input to blocked output, tasks of whole blocks of channels.
    pub(crate) fn blocked_window(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let [batch, c, _, _] = graph.shape(x).dims()[..] else { unreachable!("NCHW") };
        let windows = self.blocked_windows(id, chain);
        let blocks = c / self.isa.lanes;
        let items = batch * blocks;
        let tasks = task_count(items, TASK_TAPS / (windows.oh * windows.ow * 9 * self.isa.lanes));
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, items);
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                let (n, b) = (f.int("udiv", &item, blocks), f.int("urem", &item, blocks));
                let c0 = f.int("mul", &b, l.isa.lanes);
                let src = l.plane(f, x, &c0, &n);
                let dst = l.plane(f, out, &c0, &n);
                l.window_block(f, &windows, &b, &src, &dst);
            });
        });
    }

    /// Blocked 1x1 convolution `id` (epilogues `chain`, no residual) and the depthwise
    /// convolution that alone reads it (with its epilogues, `window`), in one step: each task
    /// expands a channel tile into scratch, then computes its blocks' windows.
    pub(crate) fn blocked_expand_window(
        &mut self,
        f: &mut Function,
        id: NodeId,
        chain: &Chain,
        window: &(NodeId, Chain),
    ) {
        let (dw, dw_chain) = (window.0, &window.1);
        let lanes = self.isa.lanes;
        let pr = self.blocked_product(id, chain, [true, false]);
        let windows = self.blocked_windows(dw, dw_chain);
        let out = dw_chain.output(dw);
        let (m_tiles, p_tiles) = (pr.m / pr.rows, pr.p.div_ceil(pr.pixels));
        let items = pr.batch * m_tiles;
        let tasks = task_count(items, TASK_MACS / (pr.rows * pr.p * pr.k));
        // The scratch's blocks are `p` pixels long: its planes `p * 4` bytes apart.
        let plane = pr.p * 4;
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, items);
            let scratch = f.let_("mid", format!("call ptr @archc_scratch(i64 {})", pr.rows * plane));
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                let (n, mt) = (f.int("udiv", &item, m_tiles), f.int("urem", &item, m_tiles));
                f.count(p_tiles, |f, pt| {
                    let x_at = pr.input(l, f, &n, pt);
                    let at = f.int("mul", pt, pr.pixels * lanes * 4);
                    let out_at = f.let_("at", format!("getelementptr inbounds i8, ptr {scratch}, i64 {at}"));
                    pr.call(f, [&mt, pt], [&x_at, &out_at, "null"], plane, None);
                });
                // A loop, not unrolled: one copy of the windows' code per step.
                f.count(pr.rows / lanes, |f, v| {
                    let b = f.int("mul", &mt, pr.rows / lanes);
                    let b = f.int("add", &b, v);
                    let at = f.int("mul", v, lanes * plane);
                    let src = f.let_("src", format!("getelementptr inbounds i8, ptr {scratch}, i64 {at}"));
                    let c0 = f.int("mul", &b, lanes);
                    let dst = l.plane(f, out, &c0, &n);
                    l.window_block(f, &windows, &b, &src, &dst);
                });
            });
        });
    }

    /// Block `b` (a register) of depthwise convolution `windows` from blocked input `src` to
    /// blocked output `dst`: a row segment of output vectors at a time, each tap's vector of
    /// weights in a register.
    fn window_block(&self, f: &mut Function, windows: &Windows, b: &str, src: &str, dst: &str) {
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let Windows { h, w, oh, ow, stride, .. } = *windows;
        let taps: Vec<String> = (0..9)
            .map(|tap| {
                let at = f.int("mul", b, 9 * lanes);
                let at = f.int("add", &at, windows.taps + tap * lanes);
                f.load_ty(ty, "%w", &at, None)
            })
            .collect();
        let at = f.int("mul", b, lanes);
        let at = f.int("add", &at, windows.bias);
        let bias = f.load_ty(ty, "%w", &at, None);
        f.count(oh, |f, oy| {
            for columns in segments(ow) {
                let acc: Vec<String> = columns.clone().map(|_| f.slot(ty, &bias)).collect();
                let top = f.int("mul", oy, stride);
                for ky in 0..3 {
                    // A padding row's taps multiply a clamped row by zeros.
                    let iy = f.int("add", &top, ky);
                    let iy = f.int("sub", &iy, 1);
                    let valid = f.let_("valid", format!("icmp ult i64 {iy}, {h}"));
                    let row = f.let_("row", format!("select i1 {valid}, i64 {iy}, i64 0"));
                    let row = f.int("mul", &row, w * lanes);
                    for kx in 0..3 {
                        let (t, tap) = (ty.name(), &taps[ky * 3 + kx]);
                        let tap = f.let_("tap", format!("select i1 {valid}, {t} {tap}, {t} zeroinitializer"));
                        for (ox, slot) in columns.clone().zip(&acc) {
                            let Some(ix) = (ox * stride + kx).checked_sub(1).filter(|&ix| ix < w) else {
                                continue;
                            };
                            let at = f.int("add", &row, ix * lanes);
                            let v = f.load_ty(ty, src, &at, None);
                            f.fma_into(ty, slot, &v, &tap);
                        }
                    }
                }
                let row = f.int("mul", oy, ow * lanes);
                for (ox, slot) in columns.zip(&acc) {
                    let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                    let y = epilogue::emit(&windows.steps, f, ty, &y, &mut |_| unreachable!("no residual"));
                    let at = f.int("add", &row, ox * lanes);
                    f.store_ty(ty, &y, dst, &at, None);
                }
            }
        });
    }
}
