//! The weight gradient of a 1x1 convolution, `dw[co, ci] = sum over items and pixels of
//! dy[co] x[ci]`, on the GEMM micro-kernel: per batch item, `dy` is packed as the kernel's
//! weights (`[group][tile][pixel][rows]`) and `x` transposed to pixel-major rows, so that the
//! pixels become the reduction and the input channels the vector columns; the kernel's
//! residual add accumulates each item's product into `dw`.

use ir::{NodeId, Value};

use crate::emit::{Function, float};
use crate::epilogue::Step;
use crate::lower::{Lowering, planes};

/// Multiply-adds a task should hold.
const TASK_MACS: usize = 1 << 18;

impl Lowering<'_> {
    /// `ConvGradWeight` of a 1x1 convolution with stride 1 and `groups` groups.
    pub(super) fn pointwise_grad_weight(&mut self, f: &mut Function, id: NodeId, groups: usize) {
        let operands = self.graph.operands(id);
        let (x, dy) = (operands[0], operands[1]);
        let dw = Value { node: id, port: 0 };
        let (cin, cout) = (self.graph.shape(x).channels(), self.graph.shape(dy).channels());
        let (k, m) = (cin / groups, cout / groups);
        let (batch, p) = (self.graph.shape(x).batch(), planes(self.graph.shape(x)).1);
        let (rows, vectors, lanes) = (self.isa.tile_rows, self.isa.tile_vectors, self.isa.lanes);
        let cols = vectors * lanes;
        let (m_tiles, k_tiles) = (m.div_ceil(rows), k.div_ceil(cols));
        // Scratch floats: the transposed input `[p][cin]`, then the packed gradient.
        let packed_at = p * cin;
        let base = self.scratch_arena((packed_at + groups * m_tiles * p * rows) * 4);
        let zeros = self.push(&vec![0.0; rows]);
        let tile = self.tile(&[Step::AddResidual], rows, vectors, None);
        let tiles = m_tiles * k_tiles;
        let per_task = (TASK_MACS / (rows * cols * p)).clamp(1, tiles);
        let chunks = tiles.div_ceil(per_task);
        let out = self.flat(f, dw);
        f.fill(&out, 0, cout * k, &float(0.0));
        let scratch = f.let_("scratch", format!("getelementptr inbounds i8, ptr %arena, i64 {base}"));
        f.count(batch, |f, n| {
            // x^T: row `q` (a pixel) holds every input channel.
            f.count(cin, |f, ci| {
                let src = self.plane(f, x, ci, n);
                f.count(p, |f, q| {
                    let v = f.load(&src, q);
                    let at = f.int("mul", q, cin);
                    let at = f.int("add", &at, ci);
                    f.store(&v, &scratch, &at);
                });
            });
            // dy packed as weights, group by group; rows past a group's end are zero.
            f.count(groups * m_tiles * rows, |f, r| {
                let (g, rest) = (f.int("udiv", r, m_tiles * rows), f.int("urem", r, m_tiles * rows));
                let (mt, within) = (f.int("udiv", &rest, rows), f.int("urem", &rest, rows));
                let tile_at = f.int("mul", &g, m_tiles);
                let tile_at = f.int("add", &tile_at, &mt);
                let tile_at = f.int("mul", &tile_at, p * rows);
                let tile_at = f.int("add", &tile_at, packed_at);
                let tile_at = f.int("add", &tile_at, &within);
                let live = f.let_("live", format!("icmp ult i64 {rest}, {m}"));
                let co = f.umin(&rest, m - 1);
                let first = f.int("mul", &g, m);
                let co = f.int("add", &co, &first);
                let src = self.plane(f, dy, &co, n);
                f.count(p, |f, q| {
                    let v = f.load(&src, q);
                    let v = f.let_("v", format!("select i1 {live}, float {v}, float 0.0"));
                    let at = f.int("mul", q, rows);
                    let at = f.int("add", &at, &tile_at);
                    f.store(&v, &scratch, &at);
                });
            });
            self.parallel(f, groups * chunks, |l, f| {
                let scratch = f.let_("scratch", format!("getelementptr inbounds i8, ptr %arena, i64 {base}"));
                let (g, chunk) = (f.int("udiv", "%t", chunks), f.int("urem", "%t", chunks));
                let dw_base = l.flat(f, dw);
                let inputs = f.pointer_array(p);
                let group_cols = f.int("mul", &g, k);
                f.count(p, |f, q| {
                    let at = f.int("mul", q, cin);
                    let row = f.float_at(&scratch, &at);
                    let slot = f.pointer_at(&inputs, q);
                    f.line(format!("store ptr {row}, ptr {slot}"));
                });
                let outs = f.pointer_array(rows);
                let first = f.int("mul", &chunk, per_task);
                f.count(per_task, |f, i| {
                    let t = f.int("add", &first, i);
                    let valid = f.let_("ok", format!("icmp ult i64 {t}, {tiles}"));
                    f.when(&valid, |f| {
                        let (mt, kt) = (f.int("udiv", &t, k_tiles), f.int("urem", &t, k_tiles));
                        let m0 = f.int("mul", &mt, rows);
                        let left = f.int("sub", m, &m0);
                        let m_valid = f.umin(&left, rows);
                        let k0 = f.int("mul", &kt, cols);
                        let left = f.int("sub", k, &k0);
                        let k_valid = f.umin(&left, cols);
                        // Rows past the group's end point at its last row; the kernel stores none.
                        f.count(rows, |f, r| {
                            let within = f.int("add", &m0, r);
                            let within = f.umin(&within, m - 1);
                            let co = f.int("mul", &g, m);
                            let co = f.int("add", &co, &within);
                            let at = f.int("mul", &co, k);
                            let row = f.float_at(&dw_base, &at);
                            let slot = f.pointer_at(&outs, r);
                            f.line(format!("store ptr {row}, ptr {slot}"));
                        });
                        let a = f.int("mul", &g, m_tiles);
                        let a = f.int("add", &a, &mt);
                        let a = f.int("mul", &a, p * rows);
                        let a = f.int("add", &a, packed_at);
                        let a = f.float_at(&scratch, &a);
                        let bias = f.float_at("%w", &zeros.to_string());
                        let in_off = f.int("add", &group_cols, &k0);
                        f.line(format!(
                            "call void {tile}(ptr {inputs}, i64 {p}, i64 {in_off}, i64 {k_valid}, ptr {a}, ptr {bias}, \
                             ptr {outs}, ptr {outs}, i64 {k0}, i64 {m_valid})"
                        ));
                    });
                });
            });
        });
    }
}
