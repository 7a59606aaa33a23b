//! The channel-blocked kernels (see `layout`): 1x1 convolutions as register tiles of channel
//! vectors by pixels, and 3x3 depthwise convolutions a row of channel vectors at a time.
//!
//! A 1x1 tile holds `vectors` blocks of output channels for `pixels` pixels: each step of the
//! reduction loads the tile's weight vectors and broadcasts one input per pixel, from channel
//! planes (consecutive floats) or blocks (a vector apart) alike. 196 pixels are 14 tiles of 14
//! and 49 are 7 of 7, where vectors of pixels leave a 4-pixel or 1-pixel tail on every plane.
//! A depthwise window's taps are whole vectors of 16 channels, loaded aligned, with no
//! permutes and no lanes lost to 14- or 7-wide rows.

use ir::{NodeId, Op, Value};

use crate::emit::{Function, Ty, lane_mask};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::gemm::pack;
use crate::lower::{Lowering, planes, task_count, task_items};

/// Multiply-adds a task of a 1x1 kernel should hold at least.
const TASK_MACS: usize = 1 << 18;

/// Window taps a task of a depthwise kernel should hold at least.
const TASK_TAPS: usize = 1 << 16;

/// The tile of a blocked 1x1 convolution with `blocks` blocks of output channels and `p`
/// pixels: `(vectors, pixels)`, as many pixels as divide the plane evenly (14 or 7) and as
/// many channel vectors as fit in `registers` with the tile's weight vectors and a broadcast,
/// dividing `blocks` evenly.
fn tile_shape(blocks: usize, p: usize, registers: usize) -> (usize, usize) {
    let pixels = [14, 7].into_iter().find(|n| p % n == 0).unwrap_or(8).min(p);
    let most = (registers - 1) / (pixels + 1);
    let vectors = (1..=most).rev().find(|v| blocks % v == 0).unwrap_or(1);
    (vectors, pixels)
}

/// How a blocked kernel addresses one operand from its base (channel 0 or the tile's first
/// channel, the tile's first pixel), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Strides {
    /// From one block of channels to the next.
    block: usize,
    /// From one channel to the next within a block.
    lane: usize,
    /// From one pixel to the next.
    pixel: usize,
}

impl Strides {
    /// An operand whose channel planes are `plane_bytes` apart: blocked or in planes.
    fn of(blocked: bool, plane_bytes: usize, lanes: usize) -> Strides {
        match blocked {
            true => Strides { block: lanes * plane_bytes, lane: 4, pixel: lanes * 4 },
            false => Strides { block: lanes * plane_bytes, lane: plane_bytes, pixel: 4 },
        }
    }
}

impl Lowering<'_> {
    /// The bytes from one channel plane of `v` to the next, for a value the blocked kernels
    /// address as one array: a whole buffer of the plan, or the caller's input.
    fn plane_bytes(&self, v: Value) -> usize {
        if self.external_input == Some(v) {
            return planes(self.graph.shape(v)).1 * 4;
        }
        match self.plan.placements[&v] {
            passes::plan::Placement::Whole(b) => self.plan.buffers[b].plane_bytes,
            passes::plan::Placement::Planes(_) => unreachable!("blocked kernels read whole buffers"),
        }
    }

    /// 1x1 convolution `id` with its epilogues `chain`, as channel-blocked tiles: its input
    /// and output (and residual) each blocked or in planes, as `self.blocking` has them.
    pub fn blocked_pointwise(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let lanes = self.isa.lanes;
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let k = graph.shape(x).channels();
        let (m, p) = planes(graph.shape(out));
        let batch = graph.shape(out).batch();
        let (vectors, pixels) = tile_shape(m / lanes, p, self.isa.registers);
        let rows = vectors * lanes;
        let w = self.param(node, "weight");
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; m] };
        let a = self.push(&pack(&w, m, k, rows));
        let bias = self.push(&bias);
        let input = Strides::of(self.blocking.blocked(x), self.plane_bytes(x), lanes);
        let output = Strides::of(self.blocking.blocked(out), self.plane_bytes(out), lanes);
        let residual = chain.residual.map(|r| {
            let strides = Strides::of(self.blocking.blocked(r), self.plane_bytes(r), lanes);
            assert_eq!(strides, output, "a residual is read where the output is written");
            r
        });
        let tile = |l: &mut Self, pixels| l.blocked_tile(&chain.steps, k, vectors, pixels, input, output);
        let wide = tile(self, pixels);
        let tail = (p % pixels != 0).then(|| tile(self, p % pixels));
        let (m_tiles, p_tiles) = (m / rows, p.div_ceil(pixels));
        let tiles = batch * p_tiles * m_tiles;
        let tasks = task_count(tiles, TASK_MACS / (rows * pixels * k));
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, tiles);
            f.count(&count, |f, i| {
                // Channel tiles innermost: the pixel tile's inputs stay in L1 while the weights
                // stream from L2.
                let t = f.int("add", &first, i);
                let mt = f.int("urem", &t, m_tiles);
                let rest = f.int("udiv", &t, m_tiles);
                let pt = f.int("urem", &rest, p_tiles);
                let n = f.int("udiv", &rest, p_tiles);
                let p0 = f.int("mul", &pt, pixels);
                let base = |l: &mut Self, f: &mut Function, v: Value, channel: &str, strides: Strides| {
                    let plane = l.plane(f, v, channel, &n);
                    let at = f.int("mul", &p0, strides.pixel);
                    f.let_("at", format!("getelementptr inbounds i8, ptr {plane}, i64 {at}"))
                };
                let x_at = base(l, f, x, "0", input);
                let m0 = f.int("mul", &mt, rows);
                let out_at = base(l, f, out, &m0, output);
                let res_at = match residual {
                    Some(r) => base(l, f, r, &m0, output),
                    None => "null".to_string(),
                };
                let a_at = f.int("mul", &mt, rows * k);
                let a_at = f.int("add", &a_at, a);
                let a_at = f.float_at("%w", &a_at);
                let b_at = f.int("add", &m0, bias);
                let b_at = f.float_at("%w", &b_at);
                let call = |f: &mut Function, name: &str| {
                    f.line(format!("call void {name}(ptr {x_at}, ptr {a_at}, ptr {b_at}, ptr {out_at}, ptr {res_at})"))
                };
                match &tail {
                    None => call(f, &wide),
                    Some(tail) => {
                        let last = f.let_("last", format!("icmp eq i64 {pt}, {}", p_tiles - 1));
                        let full = f.let_("full", format!("xor i1 {last}, true"));
                        f.when(&full, |f| call(f, &wide));
                        f.when(&last, |f| call(f, tail));
                    }
                }
            });
        });
    }

    /// The tile function of a blocked 1x1 convolution: `tile(x, a, bias, out, residual)`
    /// computes `vectors` blocks of output channels for `pixels` pixels over `k` input
    /// channels, `x` addressed by `input` and `out` (and `residual`) by `output`; `a` holds the
    /// tile's packed weights, `[k][vectors * lanes]`, and `bias` its bias.
    fn blocked_tile(
        &mut self,
        steps: &[Step],
        k: usize,
        vectors: usize,
        pixels: usize,
        input: Strides,
        output: Strides,
    ) -> String {
        let name = self.global_name("blocked_tile");
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let mut f = Function::new();
        let acc: Vec<Vec<String>> = (0..vectors)
            .map(|v| {
                let b = f.load_ty(ty, "%bias", &(v * lanes).to_string(), None);
                (0..pixels).map(|_| f.slot(ty, &b)).collect()
            })
            .collect();
        // One step of the reduction: input channel `lane` of the block at byte `block`, whose
        // weights are the `rows` floats at float `a`.
        let step = |f: &mut Function, block: &str, lane: usize, a: &str| {
            let ws: Vec<String> = (0..vectors)
                .map(|v| {
                    let at = f.int("add", a, v * lanes);
                    f.load_ty(ty, "%a", &at, None)
                })
                .collect();
            for j in 0..pixels {
                let at = f.int("add", block, lane * input.lane + j * input.pixel);
                let p = f.let_("px", format!("getelementptr inbounds i8, ptr %x, i64 {at}"));
                let xj = f.let_("x", format!("load float, ptr {p}"));
                let xj = f.splat(&xj, lanes);
                for (v, w) in ws.iter().enumerate() {
                    f.fma_into(ty, &acc[v][j], w, &xj);
                }
            }
        };
        let rows = vectors * lanes;
        f.count(k / lanes, |f, b| {
            let block = f.int("mul", b, input.block);
            let a = f.int("mul", b, lanes * rows);
            for lane in 0..lanes {
                let a = f.int("add", &a, lane * rows);
                step(f, &block, lane, &a);
            }
        });
        let done = k / lanes * lanes;
        for lane in 0..k % lanes {
            step(&mut f, &(done / lanes * input.block).to_string(), lane, &((done + lane) * rows).to_string());
        }
        for (v, acc_v) in acc.iter().enumerate() {
            for (j, slot) in acc_v.iter().enumerate() {
                let at = v * output.block + j * output.pixel;
                let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                let y = epilogue::emit(steps, &mut f, ty, &y, &mut |f| load_channels(f, "%res", at, output, lanes));
                store_channels(&mut f, &y, "%out", at, output, lanes);
            }
        }
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %x, ptr noalias %a, ptr noalias %bias, ptr noalias %out, ptr noalias %res)"
        )));
        name
    }

    /// Depthwise 3x3 convolution `id` (padding 1, stride 1 or 2) with its epilogues `chain`,
    /// from blocked input to blocked output: each task takes whole blocks of channels, a row of
    /// output vectors at a time, each tap's vector of weights in a register.
    pub fn blocked_window(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let (x, out) = (graph.operands(id)[0], chain.output(id));
        let [batch, c, h, w] = graph.shape(x).dims()[..] else { unreachable!("NCHW") };
        let [_, _, oh, ow] = graph.shape(out).dims()[..] else { unreachable!("NCHW") };
        let stride = conv.stride[0];
        let blocks = c / lanes;
        // Weights as `[block][tap][lane]`, bias as `[block][lane]`.
        let weight = self.param(node, "weight");
        let packed: Vec<f32> = (0..blocks * 9 * lanes)
            .map(|i| {
                let (b, tap, lane) = (i / (9 * lanes), i / lanes % 9, i % lanes);
                weight[(b * lanes + lane) * 9 + tap]
            })
            .collect();
        let weights = self.push(&packed);
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; c] };
        let bias = self.push(&bias);
        let items = batch * blocks;
        let tasks = task_count(items, TASK_TAPS / (oh * ow * 9 * lanes));
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, items);
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                let (n, b) = (f.int("udiv", &item, blocks), f.int("urem", &item, blocks));
                let c0 = f.int("mul", &b, lanes);
                let src = l.plane(f, x, &c0, &n);
                let dst = l.plane(f, out, &c0, &n);
                let taps: Vec<String> = (0..9)
                    .map(|tap| {
                        let at = f.int("mul", &b, 9 * lanes);
                        let at = f.int("add", &at, weights + tap * lanes);
                        f.load_ty(ty, "%w", &at, None)
                    })
                    .collect();
                let at = f.int("add", &c0, bias);
                let b = f.load_ty(ty, "%w", &at, None);
                f.count(oh, |f, oy| {
                    let acc: Vec<String> = (0..ow).map(|_| f.slot(ty, &b)).collect();
                    let top = f.int("mul", oy, stride);
                    for ky in 0..3 {
                        // A padding row's taps multiply a clamped row by zeros.
                        let iy = f.int("add", &top, ky);
                        let iy = f.int("sub", &iy, 1);
                        let valid = f.let_("valid", format!("icmp ult i64 {iy}, {h}"));
                        let row = f.let_("row", format!("select i1 {valid}, i64 {iy}, i64 0"));
                        let row = f.int("mul", &row, w * lanes);
                        for kx in 0..3 {
                            let tap = &taps[ky * 3 + kx];
                            let tap = f.let_("tap", format!("select i1 {valid}, {} {tap}, {} zeroinitializer", ty.name(), ty.name()));
                            for (ox, slot) in acc.iter().enumerate() {
                                let Some(ix) = (ox * stride + kx).checked_sub(1).filter(|&ix| ix < w) else { continue };
                                let at = f.int("add", &row, ix * lanes);
                                let v = f.load_ty(ty, &src, &at, None);
                                f.fma_into(ty, slot, &v, &tap);
                            }
                        }
                    }
                    let row = f.int("mul", oy, ow * lanes);
                    for (ox, slot) in acc.iter().enumerate() {
                        let y = f.let_("s", format!("load {}, ptr {slot}", ty.name()));
                        let y = epilogue::emit(&chain.steps, f, ty, &y, &mut |_| unreachable!("no residual"));
                        let at = f.int("add", &row, ox * lanes);
                        f.store_ty(ty, &y, &dst, &at, None);
                    }
                });
            });
        });
    }
}

/// The address of the vector of `lanes` channels at byte `at` of `base`, addressed by
/// `strides`: one pointer in blocks, a vector of pointers (one per plane) across planes.
fn channels_at(f: &mut Function, base: &str, at: usize, strides: Strides, lanes: usize) -> String {
    if strides.lane == 4 {
        return f.let_("p", format!("getelementptr inbounds i8, ptr {base}, i64 {at}"));
    }
    let offsets: Vec<String> = (0..lanes).map(|lane| format!("i64 {}", at + lane * strides.lane)).collect();
    f.let_("ps", format!("getelementptr inbounds i8, ptr {base}, <{lanes} x i64> <{}>", offsets.join(", ")))
}

/// Loads the vector of `lanes` channels at byte `at` of `base` (see [`channels_at`]).
fn load_channels(f: &mut Function, base: &str, at: usize, strides: Strides, lanes: usize) -> String {
    let (t, p) = (Ty::Vector(lanes).name(), channels_at(f, base, at, strides, lanes));
    if strides.lane == 4 {
        return f.let_("v", format!("load {t}, ptr {p}, align 4"));
    }
    let all = lane_mask(std::iter::repeat_n(true, lanes));
    let call = format!("@llvm.masked.gather.v{lanes}f32.v{lanes}p0(<{lanes} x ptr> {p}, i32 4, <{lanes} x i1> {all}, {t} poison)");
    f.let_("v", format!("call {t} {call}"))
}

/// Stores `y`, a vector of `lanes` channels, at byte `at` of `base` (see [`channels_at`]).
fn store_channels(f: &mut Function, y: &str, base: &str, at: usize, strides: Strides, lanes: usize) {
    let (t, p) = (Ty::Vector(lanes).name(), channels_at(f, base, at, strides, lanes));
    if strides.lane == 4 {
        return f.line(format!("store {t} {y}, ptr {p}, align 4"));
    }
    let all = lane_mask(std::iter::repeat_n(true, lanes));
    f.line(format!(
        "call void @llvm.masked.scatter.v{lanes}f32.v{lanes}p0({t} {y}, <{lanes} x ptr> {p}, i32 4, <{lanes} x i1> {all})"
    ));
}
