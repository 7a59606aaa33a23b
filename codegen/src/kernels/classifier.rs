//! A network's classifier tail as one kernel: a 1x1 convolution whose output only a global
//! average pool reads, and whose pooled features only a linear layer reads (ShuffleNet's
//! conv5, MobileNet V2's last conv). The linear layer's weights (4-8 MB) come from memory on
//! every run, and alone it would wait on them; here each task computes whole output-channel
//! tiles of the convolution, pools them, and multiplies them into its partial sums of the
//! linear layer, while its micro-kernel prefetches the linear weights of its next tile into
//! L2. The weights stream under the convolution's arithmetic instead of after it. The blob
//! holds them transposed but unchanged, so reloadable models refresh them like any other.

use ir::{Graph, NodeId, Op, Value};

use crate::emit::{Function, Ty, float};
use crate::epilogue::{self, Chain};
use crate::kernels::gemm::{self, Outputs};
use crate::lower::{Lowering, task_count, task_items};

/// Multiply-adds of the smallest task (see [`task_count`]).
const TASK_MACS: usize = 1 << 20;

/// The global average pool and linear layer that convolution `id`, with its epilogues
/// `chain`, feeds alone, when the three run as one kernel.
pub(crate) fn tail(graph: &Graph, id: NodeId, chain: &Chain) -> Option<(NodeId, NodeId)> {
    let Op::Conv(conv) = &graph.node(id).op else { return None };
    if !gemm::pointwise(conv) || conv.groups != 1 || chain.residual.is_some() {
        return None;
    }
    let only_user = |v: Value| match graph.users(v.node)[..] {
        [(user, 0, 0)] if !graph.outputs().contains(&v) => Some(user),
        _ => None,
    };
    let pool = only_user(chain.output(id))?;
    let linear = only_user(Value { node: pool, port: 0 })?;
    let is_pool = graph.node(pool).op == Op::GlobalAvgPool;
    (is_pool && matches!(graph.node(linear).op, Op::Linear { .. })).then_some((pool, linear))
}

impl Lowering<'_> {
    /// Convolution `id` (epilogues `chain`), the global average pool of its output and linear
    /// layer `linear` (epilogues `linear_chain`) on it; from blocks where `layout` keeps the
    /// input channel-blocked.
    pub(crate) fn classifier(
        &mut self,
        f: &mut Function,
        id: NodeId,
        chain: &Chain,
        linear: NodeId,
        linear_chain: &Chain,
    ) {
        let graph = self.graph;
        if self.blocking.blocked(graph.operands(id)[0]) {
            return self.blocked_classifier(f, id, chain, (linear, linear_chain));
        }
        let pr = self.product(id, chain);
        let (rows, lanes) = (pr.rows, pr.lanes);
        let (wt, width, linear_bias) = self.linear_slices(linear, pr.m.next_multiple_of(rows), rows);
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let cols = pr.cols();
        let p_tiles = pr.p.div_ceil(cols);
        let panels = self.pack_panels(f, &pr, x, p_tiles);
        let m_tiles = pr.m.div_ceil(rows);
        let chunks = task_count(m_tiles, TASK_MACS / (rows * pr.p * pr.k));
        // Each task's partial sums of the linear layer, after the packed panels.
        let panel_bytes = (pr.batch * p_tiles * pr.k * cols * 4).next_multiple_of(64);
        self.scratch_arena(panel_bytes + pr.batch * chunks * width * 4);
        let partials = panels + panel_bytes;
        // A tile's slice of the transposed weights, prefetched over the full-width pixel tiles
        // of the tile before it: each call a share, a little further at each step of k.
        let slice_bytes = rows * width * 4;
        let full_tiles = (pr.p / cols).max(1);
        let share = slice_bytes.div_ceil(full_tiles);
        let step = share.div_ceil(pr.k);
        let tiles = self.tiles(&chain.steps, &pr, Some(cols), gemm::Stream::Far);
        self.parallel(f, pr.batch * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let n = f.int("udiv", "%t", chunks);
            let outputs = Outputs::new(l, f, &gemm::Operand::Planes(out), chain, "0", &pr, &n);
            let part = partial_sums(f, partials, width);
            let (first, count) = task_items(f, &chunk, chunks, m_tiles);
            f.count(&count, |f, i| {
                let mt = f.int("add", &first, i);
                let next = next_slice(f, &mt, rows, (wt, width));
                f.count(p_tiles, |f, pt| {
                    let (p0, p_valid) = pr.pixel_tile(f, pt);
                    let panel = gemm::packed_panel(f, &pr, panels, p_tiles, &n, pt);
                    let ahead = f.int("mul", pt, share);
                    let ahead = f.let_("pf", format!("getelementptr i8, ptr {next}, i64 {ahead}"));
                    tiles.fitting(f, &p_valid, |f, t| {
                        let prefetch = (t == tiles.wide).then_some((ahead.as_str(), step));
                        outputs.call(f, t, &pr, &mt, &panel, "0", &p_valid, &p0, prefetch);
                    });
                });
                // Pool the tile's channels (their planes are still in L1) and multiply them
                // into the partial sums; a spare row pools zeros against zero weights.
                let m0 = f.int("mul", &mt, rows);
                let pooled: Vec<String> = (0..rows)
                    .map(|r| {
                        let c = f.int("add", &m0, r);
                        let live = f.let_("live", format!("icmp ult i64 {c}, {}", pr.m));
                        let c = f.umin(&c, pr.m - 1);
                        let sum = l.plane_sum(f, out, &c, &n);
                        let mean = f.let_("g", format!("fmul float {sum}, {}", float(1.0 / pr.p as f32)));
                        let sum = f.let_("g", format!("select i1 {live}, float {mean}, float 0.0"));
                        f.splat(&sum, lanes)
                    })
                    .collect();
                add_pooled(f, &part, &pooled, (&m0, wt, width), lanes);
            });
        });
        self.classifier_outputs(f, (linear, linear_chain), pr.batch, chunks, [partials, width, linear_bias]);
    }

    /// [`Lowering::classifier`] on a channel-blocked input (see `layout`): each task's
    /// convolution tiles write one channel tile of every pixel into its thread's scratch, in
    /// blocks, whose pixels then sum a vector of channels at a time. The layer before it then
    /// writes blocks, not planes by scatter: MobileNet V2 paired against the planes kernel
    /// after the scatter, 0.996 on one thread and 0.992 on two.
    fn blocked_classifier(&mut self, f: &mut Function, id: NodeId, chain: &Chain, linear: (NodeId, &Chain)) {
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let pr = self.blocked_product(id, chain, [true, true]);
        let rows = pr.rows;
        let (wt, width, linear_bias) = self.linear_slices(linear.0, pr.m, rows);
        let (m_tiles, p_tiles) = (pr.m / rows, pr.p.div_ceil(pr.pixels));
        let chunks = task_count(m_tiles, TASK_MACS / (rows * pr.p * pr.k));
        let partials = self.scratch_arena(pr.batch * chunks * width * 4);
        // The scratch's blocks are `p` pixels long: its planes `p * 4` bytes apart.
        let plane = pr.p * 4;
        // A tile's slice of the transposed weights, prefetched over the pixel tiles of the tile
        // before it: each call a share, a little further at each step of k.
        let share = (rows * width * 4).div_ceil(p_tiles);
        let step = share.div_ceil(pr.k);
        self.parallel(f, pr.batch * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let n = f.int("udiv", "%t", chunks);
            let part = partial_sums(f, partials, width);
            let scratch = f.let_("mid", format!("call ptr @archc_scratch(i64 {})", rows * plane));
            let (first, count) = task_items(f, &chunk, chunks, m_tiles);
            f.count(&count, |f, i| {
                let mt = f.int("add", &first, i);
                let next = next_slice(f, &mt, rows, (wt, width));
                f.count(p_tiles, |f, pt| {
                    let x_at = pr.input(l, f, &n, pt);
                    let at = f.int("mul", pt, pr.pixels * lanes * 4);
                    let out_at = f.let_("at", format!("getelementptr inbounds i8, ptr {scratch}, i64 {at}"));
                    let ahead = f.int("mul", pt, share);
                    let ahead = f.let_("pf", format!("getelementptr i8, ptr {next}, i64 {ahead}"));
                    pr.call(f, [&mt, pt], [&x_at, &out_at, "null"], plane, Some((&ahead, step)));
                });
                // Each block's pixels summed (still in L1), a row of the tile per lane.
                let mean = ty.constant(1.0 / pr.p as f32);
                let pooled: Vec<String> = (0..rows / lanes)
                    .flat_map(|v| {
                        let sum = f.slot(ty, "zeroinitializer");
                        f.count(pr.p, |f, j| {
                            let at = f.int("mul", j, lanes);
                            let at = f.int("add", &at, v * lanes * pr.p);
                            let x = f.load_ty(ty, &scratch, &at, None);
                            f.add_vector(ty, &sum, &x);
                        });
                        let sum = f.let_("g", format!("load {}, ptr {sum}", ty.name()));
                        let sum = f.let_("g", format!("fmul {} {sum}, {mean}", ty.name()));
                        (0..lanes)
                            .map(|lane| {
                                let g =
                                    f.let_("g", format!("extractelement {} {sum}, i64 {lane}", ty.name()));
                                f.splat(&g, lanes)
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let m0 = f.int("mul", &mt, rows);
                add_pooled(f, &part, &pooled, (&m0, wt, width), lanes);
            });
        });
        self.classifier_outputs(f, linear, pr.batch, chunks, [partials, width, linear_bias]);
    }

    /// The linear layer `linear`'s weights transposed into the blob, one row of `width` floats
    /// (the features rounded up to a vector) per input feature, zero rows past the `m` features
    /// for a tile's spare rows and `rows` more (a prefetch of the slice after the last tile's):
    /// copies of the parameters, which reloadable models refresh in place (the pool's
    /// `1 / pixels` scales the pooled sums instead). Returns their blob offset, `width`, and
    /// the blob offset of the bias.
    fn linear_slices(&mut self, linear: NodeId, m: usize, rows: usize) -> (usize, usize, usize) {
        let node = self.graph.node(linear);
        let Op::Linear { out_features, bias } = node.op else { unreachable!("a linear layer") };
        let width = out_features.next_multiple_of(self.isa.lanes);
        let w = self.param(node, "weight");
        let features = w.len() / out_features;
        let mut transposed = vec![0.0; (m + rows) * width];
        for (j, row) in w.chunks(features).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                transposed[c * width + j] = x;
            }
        }
        let wt = self.push(&transposed);
        let linear_bias = if bias { self.param(node, "bias") } else { vec![0.0; out_features] };
        (wt, width, self.push(&linear_bias))
    }

    /// Adds the tasks' partial sums of the linear layer (`chunks` per item, `width` floats
    /// each, from arena byte `partials`), in vectors, into each item's first, then writes them
    /// with the bias (blob offset `linear_bias`) and the linear layer's epilogues as its output.
    fn classifier_outputs(
        &mut self,
        f: &mut Function,
        (linear, linear_chain): (NodeId, &Chain),
        batch: usize,
        chunks: usize,
        [partials, width, linear_bias]: [usize; 3],
    ) {
        let Op::Linear { out_features, .. } = self.graph.node(linear).op else {
            unreachable!("a linear layer")
        };
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let y = linear_chain.output(linear);
        f.count(batch, |f, n| {
            let first = f.int("mul", n, chunks * width * 4);
            let first = f.int("add", &first, partials);
            let sums = f.let_("sums", format!("getelementptr inbounds i8, ptr %arena, i64 {first}"));
            f.count(width / lanes, |f, v| {
                let at = f.int("mul", v, lanes);
                let mut acc = f.load_ty(ty, &sums, &at, None);
                for chunk in 1..chunks {
                    let at = f.int("add", &at, chunk * width);
                    let part = f.load_ty(ty, &sums, &at, None);
                    acc = f.let_("y", format!("fadd {} {acc}, {part}", ty.name()));
                }
                f.store_ty(ty, &acc, &sums, &at, None);
            });
            f.count(out_features, |f, j| {
                let at = f.int("add", j, linear_bias);
                let b = f.load("%w", &at);
                let part = f.load(&sums, j);
                let sum = f.let_("y", format!("fadd float {b}, {part}"));
                let residual = linear_chain.residual.map(|r| self.plane(f, r, j, n));
                let value = epilogue::emit(&linear_chain.steps, f, Ty::Scalar, &sum, &mut |f| {
                    f.load(residual.as_deref().expect("a residual plane"), "0")
                });
                let dst = self.plane(f, y, j, n);
                f.store(&value, &dst, "0");
            });
        });
    }
}

/// Multiplies the pooled features of a tile (`pooled`, one splat of `lanes` per row, from
/// feature `m0`, a register) into the task's partial sums `part` of the linear layer, whose
/// transposed weights start at blob offset `wt`, rows of `width` floats.
fn add_pooled(
    f: &mut Function,
    part: &str,
    pooled: &[String],
    (m0, wt, width): (&str, usize, usize),
    lanes: usize,
) {
    let ty = Ty::Vector(lanes);
    let first_row = f.int("mul", m0, width);
    let first_row = f.int("add", &first_row, wt);
    f.count(width / lanes, |f, v| {
        let at = f.int("mul", v, lanes);
        let mut acc = f.load_ty(ty, part, &at, None);
        for (r, g) in pooled.iter().enumerate() {
            let w_at = f.int("add", &first_row, r * width);
            let w_at = f.int("add", &w_at, &at);
            let wv = f.load_ty(ty, "%w", &w_at, None);
            acc = f.fma(ty, &wv, g, &acc);
        }
        f.store_ty(ty, &acc, part, &at, None);
    });
}

/// Task `%t`'s partial sums of the linear layer, `width` floats from arena byte `partials`
/// on, zeroed.
fn partial_sums(f: &mut Function, partials: usize, width: usize) -> String {
    let part = f.int("mul", "%t", width * 4);
    let part = f.int("add", &part, partials);
    let part = f.let_("part", format!("getelementptr inbounds i8, ptr %arena, i64 {part}"));
    f.fill(&part, 0, width, "0.0");
    part
}

/// The address of the slice of the transposed linear weights (from blob offset `wt`, rows of
/// `width` floats) that the channel tile after tile `mt` (of `rows` rows) multiplies.
fn next_slice(f: &mut Function, mt: &str, rows: usize, (wt, width): (usize, usize)) -> String {
    let next = f.int("add", mt, 1);
    let next = f.int("mul", &next, rows * width);
    let next = f.int("add", &next, wt);
    f.float_at("%w", &next)
}
