//! Channel planes copied with their padding, columns split into phases, for the kernels that
//! read windows from scratch copies: the direct stem convolution, convolutions as sums of
//! shifted 1x1 products, and Winograd tiles.

use crate::emit::{Function, Ty};

/// A channel plane copied with its padding, columns split into phases: row-major rows of
/// `phases` blocks of `cols` floats.
pub(crate) struct Padded {
    pub rows: usize,
    pub cols: usize,
    pub phases: usize,
    /// The vector width rows are copied with.
    pub lanes: usize,
}

impl Padded {
    /// The layout for `rows` rows of windows producing `out_width` outputs each, computed in
    /// whole vectors of `lanes`: the plane holds exactly the columns the windows touch, and
    /// the phases are wide enough for the last vector's taps to read padding, so that only its
    /// store is masked.
    pub fn for_windows(
        rows: usize,
        out_width: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        lanes: usize,
    ) -> Padded {
        let width = (out_width - 1) * stride + (kernel - 1) * dilation + 1;
        let reach = (kernel - 1) * dilation / stride;
        Padded {
            rows,
            cols: width.div_ceil(stride).max(out_width.div_ceil(lanes) * lanes + reach),
            phases: stride,
            lanes,
        }
    }

    /// Where, within a padded row, the tap `offset` columns right of a window's first column
    /// starts: its phase's block, shifted.
    pub fn tap(&self, offset: usize) -> usize {
        offset % self.phases * self.cols + offset / self.phases
    }

    pub fn row_floats(&self) -> usize {
        self.phases * self.cols
    }

    pub fn floats(&self) -> usize {
        self.rows * self.row_floats()
    }

    /// Copies the `[h, w]` plane `src` into `dst`, `pad` around it. The split into padding and
    /// interior is known at compile time, so each part is a plain loop.
    pub fn fill(
        &self,
        f: &mut Function,
        dst: &str,
        src: &str,
        [h, w]: [usize; 2],
        padding: [usize; 2],
        pad: &str,
    ) {
        let top = padding[0];
        let first_row = top.min(self.rows);
        let end_row = (top + h).min(self.rows).max(first_row);
        f.fill(dst, 0, first_row * self.row_floats(), pad);
        f.count(end_row - first_row, |f, r| {
            let py = f.int("add", r, first_row);
            let iy = f.int("sub", &py, top);
            self.copy_row(f, dst, &py, src, &iy, w, padding[1], pad);
        });
        f.fill(dst, end_row * self.row_floats(), (self.rows - end_row) * self.row_floats(), pad);
    }

    /// Fills padded row `py` of `dst` from input row `iy` of `src` (of width `w`), or with
    /// `pad` when `iy` is outside `0..h`.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_row(
        &self,
        f: &mut Function,
        dst: &str,
        py: &str,
        src: &str,
        iy: &str,
        [h, w]: [usize; 2],
        left: usize,
        pad: &str,
    ) {
        let inside = f.let_("in", format!("icmp ult i64 {iy}, {h}"));
        f.when(&inside, |f| self.copy_row(f, dst, py, src, iy, w, left, pad));
        let outside = f.let_("out", format!("xor i1 {inside}, true"));
        f.when(&outside, |f| {
            let first = f.int("mul", py, self.row_floats());
            f.fill(dst, &first, self.row_floats(), pad);
        });
    }

    /// Copies input row `iy` into padded row `py`, split into phases, `pad` left and right.
    /// The row is copied in chunks of `lanes` positions of every phase (fewer in a row narrower
    /// than that; the last chunk overlaps the one before): each chunk loads its `phases`
    /// vectors of input columns whole, or masked where they cross the input's edge, and deals
    /// them out to the phases by shuffles. Chunks wholly inside the input run in a loop.
    #[allow(clippy::too_many_arguments)]
    fn copy_row(
        &self,
        f: &mut Function,
        dst: &str,
        py: &str,
        src: &str,
        iy: &str,
        w: usize,
        left: usize,
        pad: &str,
    ) {
        let (s, lanes) = (self.phases, self.lanes);
        let width = lanes.min(self.cols);
        let span = width * s;
        let loads = span.div_ceil(lanes);
        let row = f.int("mul", py, self.row_floats());
        let source_row = f.int("mul", iy, w);
        let ty = Ty::Vector(lanes);
        let pad_vector = format!("<{}>", vec![format!("float {pad}"); lanes].join(", "));
        // Copies the chunk of positions `c..c + width` of every phase. With `at`, the chunk is
        // at position `at` and its lanes are loaded only where inside the input; without, it is
        // wholly inside.
        let chunk = |f: &mut Function, c: &str, at: Option<usize>| {
            let first = f.int("mul", c, s);
            let first = f.int("sub", &first, left);
            let first = f.int("add", &source_row, &first);
            let vectors: Vec<String> = (0..loads)
                .map(|j| {
                    let valid: Vec<bool> = (0..lanes)
                        .map(|k| {
                            let lane = j * lanes + k;
                            let column = at.map_or(0, |at| (at * s + lane) as i64 - left as i64);
                            lane < span && (0..w as i64).contains(&column)
                        })
                        .collect();
                    let index = f.int("add", &first, j * lanes);
                    // Lanes left of the input start lie before its plane: never read.
                    match at {
                        None => f.load_ty(ty, src, &index, None),
                        Some(_) => f
                            .load_valid(lanes, src, &index, &valid, &pad_vector)
                            .unwrap_or_else(|| pad_vector.clone()),
                    }
                })
                .collect();
            let (all, wide) = f.concatenate(&vectors, lanes);
            for phase in 0..s {
                let v = if s == 1 && width == lanes {
                    all.clone()
                } else {
                    f.pick((&all, wide), (0..width).map(|j| j * s + phase))
                };
                let to = f.int("add", &row, phase * self.cols);
                let to = f.int("add", &to, c);
                f.store_ty(Ty::Vector(width), &v, dst, &to, None);
            }
        };
        // Chunks `inside.start..inside.end` read only columns inside the input.
        let chunks = self.cols / width;
        let end = ((w + left) / span).min(chunks);
        let inside = if width == lanes { left.div_ceil(span).min(end)..end } else { 0..0 };
        for i in (0..inside.start).chain(inside.end..chunks) {
            chunk(f, &(i * width).to_string(), Some(i * width));
        }
        f.count(inside.len(), |f, i| {
            let c = f.int("add", i, inside.start);
            let c = f.int("mul", &c, width);
            chunk(f, &c, None);
        });
        if !self.cols.is_multiple_of(width) {
            let at = self.cols - width;
            chunk(f, &at.to_string(), Some(at));
        }
    }
}
