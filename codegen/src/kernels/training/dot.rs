//! The weight gradient of a 1x1 convolution, `dw[co, ci] = sum over items and pixels of
//! dy[co] x[ci]`: a product whose operands both run along the pixels. A register tile of
//! `DOT_ROWS` output channels by `DOT_COLS` input channels keeps one vector of partial sums
//! per pair across the whole reduction, loading each plane's vector once per step, and sums
//! the lanes at the end.

use ir::{NodeId, Value};

use crate::emit::{Function, Ty};
use crate::lower::{Lowering, planes};

/// Output channels per tile.
const DOT_ROWS: usize = 3;
/// Input channels per tile: 3 x 3 partial sums and 6 loaded vectors fit AVX2's 16 registers.
const DOT_COLS: usize = 3;
/// Multiply-adds a task should hold.
const TASK_MACS: usize = 1 << 20;

impl Lowering<'_> {
    /// `ConvGradWeight` of a 1x1 convolution with stride 1 and `groups` groups.
    pub(super) fn pointwise_grad_weight(&mut self, f: &mut Function, id: NodeId, groups: usize) {
        let operands = self.graph.operands(id);
        let (x, dy) = (operands[0], operands[1]);
        let dw = Value { node: id, port: 0 };
        let (cin_g, cout_g) =
            (self.graph.shape(x).channels() / groups, self.graph.shape(dy).channels() / groups);
        let (batch, p) = (self.graph.shape(x).batch(), planes(self.graph.shape(x)).1);
        let (row_tiles, col_tiles) = (cout_g.div_ceil(DOT_ROWS), cin_g.div_ceil(DOT_COLS));
        let tiles = groups * row_tiles * col_tiles;
        let per_task = (TASK_MACS / (DOT_ROWS * DOT_COLS * batch * p)).clamp(1, tiles);
        let tasks = tiles.div_ceil(per_task);
        let lanes = self.isa.lanes;
        let ty = Ty::Vector(lanes);
        let (whole, tail) = (p / lanes, p % lanes);
        let tail_mask = (tail > 0).then(|| {
            let bits: Vec<&str> = (0..lanes).map(|j| if j < tail { "i1 true" } else { "i1 false" }).collect();
            format!("<{}>", bits.join(", "))
        });
        self.parallel(f, tasks, |l, f| {
            let out = l.flat(f, dw);
            let first = f.int("mul", "%t", per_task);
            let left = f.int("sub", tiles, &first);
            let count = f.umin(&left, per_task);
            f.count(&count, |f, i| {
                let tile = f.int("add", &first, i);
                let ct = f.int("urem", &tile, col_tiles);
                let rest = f.int("udiv", &tile, col_tiles);
                let rt = f.int("urem", &rest, row_tiles);
                let g = f.int("udiv", &rest, row_tiles);
                // Rows and columns past the group's end repeat its last one, and are not stored.
                let channels = |f: &mut Function, tile: &str, size: usize, per_group: usize| -> Vec<String> {
                    (0..size)
                        .map(|j| {
                            let at = f.int("mul", tile, size);
                            let at = f.int("add", &at, j);
                            let within = f.umin(&at, per_group - 1);
                            let base = f.int("mul", &g, per_group);
                            f.int("add", &base, &within)
                        })
                        .collect()
                };
                let co = channels(f, &rt, DOT_ROWS, cout_g);
                let ci = channels(f, &ct, DOT_COLS, cin_g);
                let acc: Vec<Vec<String>> = (0..DOT_ROWS)
                    .map(|_| (0..DOT_COLS).map(|_| f.slot(ty, "zeroinitializer")).collect())
                    .collect();
                f.count(batch, |f, n| {
                    let ys: Vec<String> = co.iter().map(|c| l.plane(f, dy, c, n)).collect();
                    let xs: Vec<String> = ci.iter().map(|c| l.plane(f, x, c, n)).collect();
                    let step = |f: &mut Function, at: &str, mask: Option<&str>| {
                        let a: Vec<String> = ys.iter().map(|y| f.load_ty(ty, y, at, mask)).collect();
                        let b: Vec<String> = xs.iter().map(|x| f.load_ty(ty, x, at, mask)).collect();
                        for (r, acc_r) in acc.iter().enumerate() {
                            for (c, slot) in acc_r.iter().enumerate() {
                                let t = ty.name();
                                let s = f.let_("s", format!("load {t}, ptr {slot}"));
                                let s = f.let_(
                                    "s",
                                    format!(
                                        "call {t} @llvm.fmuladd.{}({t} {}, {t} {}, {t} {s})",
                                        ty.suffix(),
                                        a[r],
                                        b[c]
                                    ),
                                );
                                f.line(format!("store {t} {s}, ptr {slot}"));
                            }
                        }
                    };
                    f.count(whole, |f, v| {
                        let at = f.int("mul", v, lanes);
                        step(f, &at, None);
                    });
                    if let Some(mask) = &tail_mask {
                        step(f, &(whole * lanes).to_string(), Some(mask));
                    }
                });
                for (r, acc_r) in acc.iter().enumerate() {
                    for (c, slot) in acc_r.iter().enumerate() {
                        let row = f.int("mul", &rt, DOT_ROWS);
                        let row = f.int("add", &row, r);
                        let col = f.int("mul", &ct, DOT_COLS);
                        let col = f.int("add", &col, c);
                        let in_rows = f.let_("ok", format!("icmp ult i64 {row}, {cout_g}"));
                        let in_cols = f.let_("ok", format!("icmp ult i64 {col}, {cin_g}"));
                        let ok = f.let_("ok", format!("and i1 {in_rows}, {in_cols}"));
                        f.when(&ok, |f| {
                            let sum = f.vector_sum(ty, slot);
                            let at = f.int("mul", &co[r], cin_g);
                            let at = f.int("add", &at, &col);
                            f.store(&sum, &out, &at);
                        });
                    }
                }
            });
        });
    }
}
