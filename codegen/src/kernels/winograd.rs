//! Winograd convolution F(2x2, 3x3) for 3x3 stride-1 convolutions (ResNet's layers), with
//! 2.25x fewer multiply-adds than the direct product. Each 4x4 input tile `d` becomes
//! `V = Bᵀ d B`; the 16 positions of the transformed tiles are 16 independent products
//! `M = U V` with weights transformed once at compile time (`U = G g Gᵀ`), run by the GEMM
//! micro-kernel; each output tile is `Y = Aᵀ M A`, to which the bias and fused epilogues apply.
//! The transforms run over vectors of neighbouring tiles along a row of tiles.

use ir::{NodeId, Op};

use crate::emit::{Function, Ty};
use crate::epilogue::{self, Chain};
use crate::kernels::gemm::{Operand, ScratchRows};
use crate::kernels::padded::Padded;
use crate::lower::Lowering;

/// Positions of a transformed 4x4 tile: one product each.
const POSITIONS: usize = 16;

/// Floats of padded input planes an input-transform task should cover.
const TASK_WORK: usize = 1 << 15;

/// Whether conv `conv` reading `channels` input channels takes this kernel: a 3x3 stride-1
/// convolution with enough channels for the products to outweigh the transforms.
pub fn suits(conv: &ir::Conv, channels: usize) -> bool {
    conv.kernel == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && channels >= 8
        && conv.out_channels >= 8
}

/// `U = G g Gᵀ` for the 3x3 kernel `g` (row-major), row-major 4x4; computed in f64.
fn transform_kernel(g: &[f32]) -> [f32; POSITIONS] {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let gg: Vec<[f64; 3]> = G
        .iter()
        .map(|row| std::array::from_fn(|j| (0..3).map(|k| row[k] * f64::from(g[k * 3 + j])).sum()))
        .collect();
    std::array::from_fn(|at| {
        let (i, j) = (at / 4, at % 4);
        (0..3).map(|k| gg[i][k] * G[j][k]).sum::<f64>() as f32
    })
}

/// Tile geometry of one convolution.
struct Tiles {
    /// Rows and columns of 2x2 output tiles.
    rows: usize,
    cols: usize,
    /// Floats from one row of a transformed matrix to the next: every tile, and one vector of
    /// slack that the last row of tiles' whole-vector stores may spill into.
    stride: usize,
}

impl Lowering<'_> {
    /// A 3x3 stride-1 convolution by Winograd's F(2x2, 3x3), with its fused epilogues `chain`.
    pub fn winograd_conv(&mut self, f: &mut Function, id: NodeId, chain: &Chain) {
        let graph = self.graph;
        let node = graph.node(id);
        let Op::Conv(conv) = &node.op else { unreachable!("a convolution") };
        let x = graph.operands(id)[0];
        let out = chain.output(id);
        let xs = graph.shape(x).dims().to_vec();
        let ys = graph.shape(out).dims().to_vec();
        let (batch, cin, cout, oh, ow) = (xs[0], xs[1], ys[1], ys[2], ys[3]);
        let lanes = self.isa.lanes;
        let tiles = Tiles {
            rows: oh.div_ceil(2),
            cols: ow.div_ceil(2),
            stride: (oh.div_ceil(2) * ow.div_ceil(2) + lanes).next_multiple_of(16),
        };
        // Weights: position-major, each position's `[cout][cin]` matrix packed for the GEMM.
        let w = self.param(node, "weight");
        let u: Vec<[f32; POSITIONS]> = w.chunks(9).map(transform_kernel).collect();
        let by_position: Vec<f32> =
            (0..POSITIONS).flat_map(|at| u.iter().map(move |kernel| kernel[at])).collect();
        let product = self.product_over(
            &by_position,
            vec![0.0; POSITIONS * cout],
            [POSITIONS, cin],
            [batch, tiles.rows * tiles.cols],
            self.schedule(id),
            None,
        );
        let bias = if conv.bias { self.param(node, "bias") } else { vec![0.0; cout] };
        let bias = self.push(&bias);
        let v_bytes = batch * POSITIONS * cin * tiles.stride * 4;
        let base = self.scratch_arena(v_bytes + batch * POSITIONS * cout * tiles.stride * 4);
        let v = ScratchRows { base, rows: cin, stride: tiles.stride };
        let m = ScratchRows { base: base + v_bytes, rows: cout, stride: tiles.stride };
        self.input_transform(f, x, conv.padding, &tiles, &v);
        self.gemm(f, product, Operand::Scratch(v), Operand::Scratch(m.clone()), &Chain::default(), None);
        self.output_transform(f, out, chain, bias, &tiles, &m);
    }

    /// `V = Bᵀ d B` of every input tile of every plane of `x` into `v`: each task copies its
    /// planes, padded, to thread scratch, then transforms a vector of tiles at a time.
    fn input_transform(
        &mut self,
        f: &mut Function,
        x: ir::Value,
        padding: [usize; 2],
        tiles: &Tiles,
        v: &ScratchRows,
    ) {
        let xs = self.graph.shape(x).dims().to_vec();
        let (cin, lanes) = (xs[1], self.isa.lanes);
        let vectors = tiles.cols.div_ceil(lanes);
        // Every vector's loads (two of 2 * lanes floats per row) stay inside the padded plane.
        let layout = Padded { rows: 2 * tiles.rows + 2, cols: 2 * vectors * lanes + 2, phases: 1, lanes };
        let (ty, wide) = (Ty::Vector(lanes), Ty::Vector(2 * lanes));
        self.parallel_planes(f, xs[0], cin, TASK_WORK / layout.floats(), |l, f, n, c, _| {
            let padded = f.let_("pad", format!("call ptr @archc_scratch(i64 {})", layout.floats() * 4));
            let src = l.plane(f, x, c, n);
            layout.fill(f, &padded, &src, [xs[2], xs[3]], padding, "0.0");
            let rows = position_rows(f, v, n, c);
            // Tile rows in order: a row's last vector spills into the next row's first
            // tiles, which that row then overwrites.
            f.count(tiles.rows, |f, tr| {
                f.count(vectors, |f, vx| {
                    let top = f.int("mul", tr, 2 * layout.row_floats());
                    let left = f.int("mul", vx, 2 * lanes);
                    let corner = f.int("add", &top, &left);
                    // d[r][k]: column 2 tx + k of padded row 2 ty + r, for the vector's tiles.
                    let d: Vec<[String; 4]> = (0..4)
                        .map(|r| {
                            let at = f.int("add", &corner, r * layout.row_floats());
                            let a = f.load_ty(wide, &padded, &at, None);
                            let at = f.int("add", &at, 2);
                            let b = f.load_ty(wide, &padded, &at, None);
                            [
                                deal(f, &a, lanes, 0),
                                deal(f, &a, lanes, 1),
                                deal(f, &b, lanes, 0),
                                deal(f, &b, lanes, 1),
                            ]
                        })
                        .collect();
                    let columns: Vec<[String; 4]> =
                        (0..4).map(|k| input_1d(f, ty, [&d[0][k], &d[1][k], &d[2][k], &d[3][k]])).collect();
                    let tile = f.int("mul", tr, tiles.cols);
                    let first = f.int("mul", vx, lanes);
                    let tile = f.int("add", &tile, &first);
                    for r in 0..4 {
                        let transformed =
                            input_1d(f, ty, [&columns[0][r], &columns[1][r], &columns[2][r], &columns[3][r]]);
                        for (k, value) in transformed.iter().enumerate() {
                            f.store_ty(ty, value, &rows[r * 4 + k], &tile, None);
                        }
                    }
                });
            });
        });
    }

    /// `Y = Aᵀ M A` of every output tile from `m`, plus the bias and the epilogues of `chain`,
    /// into the planes of `out`.
    fn output_transform(
        &mut self,
        f: &mut Function,
        out: ir::Value,
        chain: &Chain,
        bias: usize,
        tiles: &Tiles,
        m: &ScratchRows,
    ) {
        let ys = self.graph.shape(out).dims().to_vec();
        let (cout, oh, ow, lanes) = (ys[1], ys[2], ys[3], self.isa.lanes);
        let ty = Ty::Vector(lanes);
        let t = ty.name();
        // Output vectors of 2 * lanes columns, as two halves of `lanes`; the row's tail has
        // `valid` columns in each half.
        let (whole, tail) = (ow / (2 * lanes), ow % (2 * lanes));
        let tail_halves = [tail.min(lanes), tail.saturating_sub(lanes)];
        let per_task = TASK_WORK / (POSITIONS * tiles.rows * tiles.cols);
        self.parallel_planes(f, ys[0], cout, per_task, |l, f, n, c, _| {
            let dst = l.plane(f, out, c, n);
            let residual = chain.residual.map(|r| l.plane(f, r, c, n));
            let at = f.int("add", c, bias);
            let b = f.load("%w", &at);
            let b = f.splat(&b, lanes);
            let rows = position_rows(f, m, n, c);
            // Output rows 2 tr and, when `both`, 2 tr + 1, from vector `vx` of tile row `tr`.
            let vector = |f: &mut Function, tr: &str, vx: &str, halves: [usize; 2], both: bool| {
                let tile = f.int("mul", tr, tiles.cols);
                let first = f.int("mul", vx, lanes);
                let tile = f.int("add", &tile, &first);
                let mm: Vec<String> = rows.iter().map(|row| f.load_ty(ty, row, &tile, None)).collect();
                let columns: Vec<[String; 2]> =
                    (0..4).map(|k| output_1d(f, ty, [&mm[k], &mm[4 + k], &mm[8 + k], &mm[12 + k]])).collect();
                let [top, bottom] = [0, 1].map(|r| [0, 1, 2, 3].map(|k| columns[k][r].as_str()));
                let output_rows = if both { vec![top, bottom] } else { vec![top] };
                for (r, row) in output_rows.into_iter().enumerate() {
                    let y = output_1d(f, ty, row);
                    let oy = f.int("mul", tr, 2);
                    let oy = f.int("add", &oy, r);
                    let row = f.int("mul", &oy, ow);
                    let column = f.int("mul", vx, 2 * lanes);
                    let row = f.int("add", &row, &column);
                    for (h, &valid) in halves.iter().enumerate().filter(|(_, valid)| **valid > 0) {
                        // Lane j: column j / 2 of the half's tiles, left or right of its tile.
                        let picks: Vec<String> = (0..lanes)
                            .map(|j| format!("i32 {}", j % 2 * lanes + h * lanes / 2 + j / 2))
                            .collect();
                        let v = f.let_(
                            "y",
                            format!(
                                "shufflevector {t} {}, {t} {}, <{lanes} x i32> <{}>",
                                y[0],
                                y[1],
                                picks.join(", ")
                            ),
                        );
                        let v = f.let_("y", format!("fadd {t} {v}, {b}"));
                        let at = f.int("add", &row, h * lanes);
                        // `valid` is 1..=lanes: a mask exactly when the vector is not full.
                        let mask = crate::emit::tail_mask(valid, lanes);
                        let v = epilogue::emit(&chain.steps, f, ty, &v, &mut |f| {
                            f.load_ty(
                                ty,
                                residual.as_deref().expect("a residual plane"),
                                &at,
                                mask.as_deref(),
                            )
                        });
                        f.store_ty(ty, &v, &dst, &at, mask.as_deref());
                    }
                }
            };
            let row_vectors = |f: &mut Function, tr: &str, both: bool| {
                f.count(whole, |f, vx| vector(f, tr, vx, [lanes, lanes], both));
                if tail > 0 {
                    vector(f, tr, &whole.to_string(), tail_halves, both);
                }
            };
            f.count(oh / 2, |f, tr| row_vectors(f, tr, true));
            if oh % 2 == 1 {
                row_vectors(f, &(oh / 2).to_string(), false);
            }
        });
    }
}

/// The addresses of row `c` of each position's matrix in `rows`, for batch item `n`.
fn position_rows(f: &mut Function, rows: &ScratchRows, n: &str, c: &str) -> Vec<String> {
    (0..POSITIONS).map(|at| rows.row(f, POSITIONS, at, n, c)).collect()
}

/// `Bᵀ x` for a column `x` of four vectors.
fn input_1d(f: &mut Function, ty: Ty, [x0, x1, x2, x3]: [&str; 4]) -> [String; 4] {
    let t = ty.name();
    [
        f.let_("b", format!("fsub {t} {x0}, {x2}")),
        f.let_("b", format!("fadd {t} {x1}, {x2}")),
        f.let_("b", format!("fsub {t} {x2}, {x1}")),
        f.let_("b", format!("fsub {t} {x1}, {x3}")),
    ]
}

/// `Aᵀ x` for a column `x` of four vectors.
fn output_1d(f: &mut Function, ty: Ty, [x0, x1, x2, x3]: [&str; 4]) -> [String; 2] {
    let t = ty.name();
    let s = f.let_("a", format!("fadd {t} {x0}, {x1}"));
    let d = f.let_("a", format!("fsub {t} {x1}, {x2}"));
    [f.let_("a", format!("fadd {t} {s}, {x2}")), f.let_("a", format!("fsub {t} {d}, {x3}"))]
}

/// Lanes `phase`, `phase + 2`, ... of the `2 * lanes`-wide vector `v`: one of its two phases.
fn deal(f: &mut Function, v: &str, lanes: usize, phase: usize) -> String {
    let picks: Vec<String> = (0..lanes).map(|j| format!("i32 {}", 2 * j + phase)).collect();
    let wide = Ty::Vector(2 * lanes).name();
    f.let_("ph", format!("shufflevector {wide} {v}, {wide} poison, <{lanes} x i32> <{}>", picks.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D identity behind the kernel: `Aᵀ ((G g) ⊙ (Bᵀ d)) = ` the 2-output correlation.
    #[test]
    fn kernel_transform_matches_correlation() {
        let g = [0.3f32, -1.2, 0.7, 2.0, 0.1, -0.4, 1.5, 0.9, -0.6];
        let d: [[f32; 4]; 4] =
            std::array::from_fn(|r| std::array::from_fn(|c| (r * 4 + c) as f32 * 0.37 - 2.0));
        let u = transform_kernel(&g);
        let bt = |x: [f32; 4]| [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]];
        let columns: Vec<[f32; 4]> = (0..4).map(|k| bt([d[0][k], d[1][k], d[2][k], d[3][k]])).collect();
        let v: Vec<[f32; 4]> =
            (0..4).map(|r| bt([columns[0][r], columns[1][r], columns[2][r], columns[3][r]])).collect();
        let m: Vec<f32> = (0..16).map(|at| u[at] * v[at / 4][at % 4]).collect();
        let at = |x: [f32; 4]| [x[0] + x[1] + x[2], x[1] - x[2] - x[3]];
        let columns: Vec<[f32; 2]> = (0..4).map(|k| at([m[k], m[4 + k], m[8 + k], m[12 + k]])).collect();
        for r in 0..2 {
            let y = at([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]);
            for (c, value) in y.iter().enumerate() {
                let direct: f32 = (0..9).map(|t| g[t] * d[r + t / 3][c + t % 3]).sum();
                assert!((value - direct).abs() < 1e-4, "y[{r}][{c}] = {value}, direct {direct}");
            }
        }
    }
}
