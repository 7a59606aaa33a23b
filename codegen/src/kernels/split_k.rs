//! A 1x1 convolution with its reduction split in two ([`Sweep::SplitK`]): the tasks of the
//! first half of the input channels compute their partial product (with the bias) into
//! scratch, those of the second half theirs (from zero) beside it, and a second pass adds
//! the two, applies the epilogues and writes the output. On two threads each half is one
//! thread's home range of tasks (see the runtime), so that each thread reads the input
//! channels that it wrote itself where the step before split its channels the same way.
//!
//! [`Sweep::SplitK`]: crate::schedule::Sweep::SplitK

use ir::NodeId;

use crate::emit::{Function, Ty, tail_mask};
use crate::epilogue::{self, Chain};
use crate::kernels::gemm::{Operand, Outputs, Part, ScratchRows, Stream};
use crate::lower::{Lowering, task_count, task_items};

/// Multiply-adds a task of one half should hold at least.
const TASK_MACS: usize = 1 << 18;

/// Floats of the sum pass a task should hold.
const SUM_FLOATS: usize = 1 << 13;

impl Lowering<'_> {
    /// 1x1 convolution `id` (one group) with its fused epilogues `chain`, in two halves of its
    /// reduction.
    pub fn split_k_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let pr = self.product(id, chain);
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let (rows, cols, lanes) = (pr.rows, pr.cols(), pr.lanes);
        let half = pr.k / 2;
        let halves =
            [(0..half, None), (half..pr.k, Some(self.push(&vec![0.0; pr.m.next_multiple_of(rows) + lanes])))];
        // Partial sums, `[half][n][m][stride]`.
        let stride = pr.p.next_multiple_of(lanes);
        let half_bytes = pr.batch * pr.m * stride * 4;
        let base = self.scratch_arena(2 * half_bytes);
        let partial = |h: usize| ScratchRows { base: base + h * half_bytes, rows: pr.m, stride };
        let (m_tiles, p_tiles) = (pr.m.div_ceil(rows), pr.p.div_ceil(cols));
        let chunks = task_count(p_tiles, TASK_MACS / (m_tiles * rows * cols * half.max(1)));
        let tiles = self.tiles(&[], &pr, None, Stream::Weights);
        self.parallel(f, 2 * pr.batch * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let rest = f.int("udiv", "%t", chunks);
            let n = f.int("urem", &rest, pr.batch);
            let h = f.int("udiv", &rest, pr.batch);
            for (i, (k, zero_bias)) in halves.iter().enumerate() {
                let this = f.let_("half", format!("icmp eq i64 {h}, {i}"));
                f.when(&this, |f| {
                    let part = Part { k: k.clone(), zero_bias: *zero_bias };
                    let inputs = l.plane_array(f, x, &k.start.to_string(), k.len(), &n);
                    let outputs =
                        Outputs::new(l, f, &Operand::Scratch(partial(i)), &Chain::default(), "0", &pr, &n);
                    let (first, count) = task_items(f, &chunk, chunks, p_tiles);
                    // Every channel tile under one pixel tile: its input stays in L1.
                    f.count(&count, |f, j| {
                        let pt = f.int("add", &first, j);
                        let (p0, p_valid) = pr.pixel_tile(f, &pt);
                        f.count(m_tiles, |f, mt| {
                            tiles.fitting(f, &p_valid, |f, t| {
                                outputs.call_part(f, t, &pr, mt, &part, &inputs, &p0, &p_valid, &p0, None)
                            });
                        });
                    });
                });
            }
        });
        let ty = Ty::Vector(lanes);
        let tail = tail_mask(pr.p, lanes);
        self.parallel_planes(f, pr.batch, pr.m, SUM_FLOATS / stride, |l, f, n, c, _| {
            let [first, second] = [0, 1].map(|h| partial(h).row(f, 1, 0, n, c));
            let dst = l.plane(f, out, c, n);
            let residual = chain.residual.map(|r| l.plane(f, r, c, n));
            let sum = |f: &mut Function, at: &str, mask: Option<&str>| {
                let a = f.load_ty(ty, &first, at, mask);
                let b = f.load_ty(ty, &second, at, mask);
                let s = f.let_("s", format!("fadd {} {a}, {b}", ty.name()));
                let y = epilogue::emit(&chain.steps, f, ty, &s, &mut |f| {
                    f.load_ty(ty, residual.as_deref().expect("a residual plane"), at, mask)
                });
                f.store_ty(ty, &y, &dst, at, mask);
            };
            f.count(pr.p / lanes, |f, v| {
                let at = f.int("mul", v, lanes);
                sum(f, &at, None);
            });
            if let Some(mask) = &tail {
                sum(f, &(pr.p / lanes * lanes).to_string(), Some(mask));
            }
        });
    }
}
