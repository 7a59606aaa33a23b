//! The 1x1 convolution that writes a channel-blocked value (see `blocked`): output channels in
//! the vector lanes, a tile of `blocks` vectors of packed weights by `pixels` input pixels
//! broadcast, held in registers over the whole reduction, and each pixel's vectors stored whole
//! at its place in the bordered blocks. The NCHW micro-kernel holds pixels in its lanes instead,
//! and would need a transpose per tile. Each task also zeroes the borders of its share of the
//! blocks, since the arena's bytes there held other values.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain, Step};
use crate::kernels::blocked::Blocked;
use crate::kernels::gemm::pack;
use crate::lower::{Lowering, task_count, task_items};
use crate::schedule::L2_BYTES;

/// Multiply-adds of the smallest task.
const TASK_MACS: usize = 1 << 18;

/// Blocks of output channels in a tile: two weight vectors per step of the reduction, as the
/// NCHW tile's two pixel vectors.
const TILE_BLOCKS: usize = 2;

/// Floats a packing task should copy.
const PACK_WORK: usize = 1 << 14;

/// Most pixels in a tile.
const MAX_TILE_PIXELS: usize = 12;

impl Lowering<'_> {
    /// 1x1 convolution `id` (with its epilogues `chain`, no residual) writing its output blocked
    /// as `layout` says.
    pub fn blocked_pointwise(&mut self, f: &mut Function, id: NodeId, chain: &Chain, layout: Blocked) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let x = graph.operands(id)[0];
        let xs = graph.shape(x).dims().to_vec();
        let (batch, k, pixels, m) = (xs[0], xs[1], xs[2] * xs[3], conv.out_channels);
        let lanes = layout.lanes;
        let weights = self.push(&pack(&self.param(node, "weight"), m, k, lanes));
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; m] };
        let bias = self.push(&bias);
        let blocks = layout.blocks(m);
        // Every accumulator, the tile's weight vectors and one broadcast pixel in registers.
        let tile_blocks = TILE_BLOCKS.min(blocks);
        let tile_pixels = ((self.isa.registers - tile_blocks - 1) / tile_blocks).min(MAX_TILE_PIXELS);
        let (whole, tail) = (pixels / tile_pixels, pixels % tile_pixels);
        let tiles = whole + usize::from(tail > 0);
        // The tiles this product calls, by blocks and pixels.
        let odd = !blocks.is_multiple_of(tile_blocks);
        let kinds = [tile_pixels, tail]
            .into_iter()
            .filter(|&p| p > 0)
            .flat_map(|p| std::iter::once((tile_blocks, p)).chain(odd.then_some((1, p))));
        let panel = (k * m * 4 > L2_BYTES).then_some(tile_pixels);
        let defined: Vec<((usize, usize), String)> =
            kinds.map(|kind| (kind, self.blocked_tile(&chain.steps, &layout, k, panel, kind))).collect();
        let tile =
            |kind: (usize, usize)| defined.iter().find(|(d, _)| *d == kind).map(|(_, name)| name.clone());
        // Pixel tiles, each under every channel tile, while the weights stay in L2; else channel
        // tiles, each over every pixel tile, so that each weight is read once.
        let channel_tiles = blocks.div_ceil(tile_blocks);
        let pixel_order = panel.is_none();
        let (items, item_macs) = match pixel_order {
            true => (tiles, tile_pixels * m * k),
            false => (channel_tiles, tile_blocks * lanes * pixels * k),
        };
        // In channel order, each pixel tile's input (`k` rows of `tile_pixels` floats) is packed
        // first into a panel that every channel tile then reads in order: from the planes, the
        // rows of every pixel tile passed through L1 again for each channel tile, at 71% of
        // peak against 94% (160 to 960 channels at 14x14).
        let panel_floats = k * tile_pixels;
        let panels = (!pixel_order).then(|| self.scratch_arena(batch * tiles * panel_floats * 4));
        if let Some(panels) = panels {
            self.pack_blocked_panels(f, x, panels, (tile_pixels, tail), tiles);
        }
        let chunks = task_count(items, TASK_MACS / item_macs);
        self.parallel(f, batch * chunks, |l, f| {
            let chunk = f.int("urem", "%t", chunks);
            let n = f.int("udiv", "%t", chunks);
            let (first, count) = task_items(f, &chunk, chunks, blocks);
            f.count(&count, |f, i| {
                let b = f.int("add", &first, i);
                let block = layout.block(f, &n, &b);
                layout.zero_border(f, &block);
            });
            let rows = panels.is_none().then(|| l.plane_array(f, x, "0", k, &n));
            // Pixel tile `t` of channel tile `ct`: whole or the tail, a pair of blocks or the odd
            // one out.
            let call = |f: &mut Function, t: &str, ct: &str| {
                let p0 = f.int("mul", t, tile_pixels);
                let b0 = f.int("mul", ct, tile_blocks);
                let a = f.int("mul", &b0, k * lanes);
                let a = f.int("add", &a, weights);
                let a = f.float_at("%w", &a);
                let c = f.int("mul", &b0, lanes);
                let c = f.int("add", &c, bias);
                let c = f.float_at("%w", &c);
                let out = layout.block(f, &n, &b0);
                let input = match (&rows, panels) {
                    (Some(rows), _) => rows.clone(),
                    (None, Some(panels)) => {
                        let item = f.int("mul", &n, tiles);
                        let item = f.int("add", &item, t);
                        let at = f.int("mul", &item, panel_floats * 4);
                        let at = f.int("add", &at, panels);
                        f.let_("panel", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"))
                    }
                    (None, None) => unreachable!("planes or panels"),
                };
                let is_whole = f.let_("whole", format!("icmp ult i64 {t}, {whole}"));
                let is_pair = f.let_("pair", format!("icmp ult i64 {ct}, {}", blocks / tile_blocks));
                for (pixels, wanted) in [(tile_pixels, true), (tail, false)] {
                    for (tile_blocks, pair) in [(tile_blocks, true), (1, false)] {
                        let Some(tile) = tile((tile_blocks, pixels)).filter(|_| pixels > 0) else { continue };
                        if !pair && !odd {
                            continue;
                        }
                        let pixels_match = f.let_("match", format!("icmp eq i1 {is_whole}, {wanted}"));
                        let blocks_match = f.let_("match", format!("icmp eq i1 {is_pair}, {pair}"));
                        let both = f.let_("both", format!("and i1 {pixels_match}, {blocks_match}"));
                        f.when(&both, |f| {
                            f.line(format!(
                                "call void {tile}(ptr {input}, i64 {p0}, ptr {a}, ptr {c}, ptr {out})"
                            ));
                        });
                    }
                }
            };
            let (first, count) = task_items(f, &chunk, chunks, items);
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                match pixel_order {
                    true => f.count(channel_tiles, |f, ct| call(f, &item, ct)),
                    false => f.count(tiles, |f, t| call(f, t, &item)),
                }
            });
        });
    }

    /// The micro-kernel of a blocked 1x1 convolution with epilogue `steps` over reductions of
    /// `k`: `tile(input, p0, a, bias, out)` computes blocks `r < blocks` of pixels
    /// `p0..p0 + pixels`: `epilogue(bias[r] + sum_k a[r][k] x[k][p])`, stored at pixel `p`'s
    /// place in block `out + r * block_bytes`, where `x[k][p]` is `input[k][p]` (an array of
    /// row pointers) or, with a `panel` stride, `input[k * stride + p - p0]`.
    fn blocked_tile(
        &mut self,
        steps: &[Step],
        layout: &Blocked,
        k: usize,
        panel: Option<usize>,
        (blocks, pixels): (usize, usize),
    ) -> String {
        let name = self.global_name("blocked_tile");
        let lanes = layout.lanes;
        let ty = Ty::Vector(lanes);
        let mut f = Function::new();
        let acc: Vec<Vec<String>> = (0..blocks)
            .map(|r| {
                let b = f.load_ty(ty, "%bias", &(r * lanes).to_string(), None);
                (0..pixels).map(|_| f.slot(ty, &b)).collect()
            })
            .collect();
        f.count(k, |f, kk| {
            let row = match panel {
                Some(stride) => {
                    let at = f.int("mul", kk, stride);
                    f.float_at("%input", &at)
                }
                None => {
                    let slot = f.pointer_at("%input", kk);
                    let row = f.let_("row", format!("load ptr, ptr {slot}"));
                    f.float_at(&row, "%p0")
                }
            };
            let ws: Vec<String> = (0..blocks)
                .map(|r| {
                    let at = f.int("add", kk, r * k);
                    let at = f.int("mul", &at, lanes);
                    f.load_ty(ty, "%a", &at, None)
                })
                .collect();
            for j in 0..pixels {
                let x = f.load(&row, &j.to_string());
                let x = f.splat(&x, lanes);
                for (w, acc) in ws.iter().zip(&acc) {
                    f.fma_into(ty, &acc[j], w, &x);
                }
            }
        });
        for j in 0..pixels {
            let p = f.int("add", "%p0", j);
            let at = layout.pixel(&mut f, &p);
            let at = f.int("mul", &at, lanes);
            for (r, acc) in acc.iter().enumerate() {
                let y = f.let_("y", format!("load {}, ptr {}", ty.name(), acc[j]));
                let y = epilogue::emit(steps, &mut f, ty, &y, &mut |_| unreachable!("no residual"));
                let block = f.let_(
                    "out",
                    format!("getelementptr inbounds i8, ptr %out, i64 {}", r * layout.block_bytes),
                );
                f.store_ty(ty, &y, &block, &at, None);
            }
        }
        self.define(&f.finish(&format!(
            "define internal void {name}(ptr noalias %input, i64 %p0, ptr noalias %a, ptr noalias %bias, \
             ptr noalias %out)"
        )));
        name
    }

    /// Packs pixel tile `t` of every batch item of `x`, `tail` pixels for the last of `tiles`
    /// and `tile_pixels` for the others, into the panel at arena byte `panels + (n * tiles + t)
    /// * k * tile_pixels * 4`: row after row of the tile's pixels.
    fn pack_blocked_panels(
        &mut self,
        f: &mut Function,
        x: ir::Value,
        panels: usize,
        (tile_pixels, tail): (usize, usize),
        tiles: usize,
    ) {
        let xs = self.graph.shape(x).dims().to_vec();
        let (batch, k) = (xs[0], xs[1]);
        let whole = tiles - usize::from(tail > 0);
        let panel_floats = k * tile_pixels;
        let tasks = task_count(batch * tiles, PACK_WORK / panel_floats);
        self.parallel(f, tasks, |l, f| {
            let (first, count) = task_items(f, "%t", tasks, batch * tiles);
            f.count(&count, |f, i| {
                let item = f.int("add", &first, i);
                let (n, t) = (f.int("udiv", &item, tiles), f.int("urem", &item, tiles));
                let rows = l.plane_array(f, x, "0", k, &n);
                let p0 = f.int("mul", &t, tile_pixels);
                let at = f.int("mul", &item, panel_floats * 4);
                let at = f.int("add", &at, panels);
                let panel = f.let_("panel", format!("getelementptr inbounds i8, ptr %arena, i64 {at}"));
                let is_whole = f.let_("whole", format!("icmp ult i64 {t}, {whole}"));
                let is_tail = f.let_("tail", format!("xor i1 {is_whole}, true"));
                for (condition, pixels) in [(is_whole, tile_pixels), (is_tail, tail)] {
                    f.when(&condition, |f| {
                        f.count(k, |f, kk| {
                            let slot = f.pointer_at(&rows, kk);
                            let row = f.let_("row", format!("load ptr, ptr {slot}"));
                            let to = f.int("mul", kk, tile_pixels);
                            for j in 0..pixels {
                                let from = f.int("add", &p0, j);
                                let v = f.load(&row, &from);
                                let to = f.int("add", &to, j);
                                f.store(&v, &panel, &to);
                            }
                        });
                    });
                }
            });
        });
    }
}
