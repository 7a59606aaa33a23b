//! A small writer of textual LLVM IR: fresh SSA names, counted loops, plane addressing.
//!
//! Loop counters live in `alloca`s of the function's entry block and LLVM's `mem2reg` turns them
//! into registers; this keeps the writer free of phi bookkeeping. The IR is then parsed by LLVM
//! (through inkwell) and optimized like any front-end's output.

use std::fmt::Write;

/// One function's body being written.
pub struct Function {
    allocas: String,
    body: String,
    next: usize,
    nvptx: bool,
}

impl Function {
    /// An empty body.
    pub fn new() -> Function {
        Function { allocas: String::new(), body: String::new(), next: 0, nvptx: false }
    }

    /// An empty body of a GPU kernel: NVPTX has no `exp` to call, so [`Function::exp`] uses
    /// the hardware's `2^x` there.
    pub fn for_nvptx() -> Function {
        Function { nvptx: true, ..Function::new() }
    }

    /// `e^x` for values of type `ty` (scalars only on NVPTX).
    pub fn exp(&mut self, ty: Ty, x: &str) -> String {
        let t = ty.name();
        if self.nvptx {
            let scaled = self.let_("x2", format!("fmul {t} {x}, {}", ty.constant(std::f32::consts::LOG2_E)));
            return self.let_("e", format!("call {t} @llvm.nvvm.ex2.approx.f({t} {scaled})"));
        }
        self.let_("e", format!("call {t} @llvm.exp.{}({t} {x})", ty.suffix()))
    }

    /// A fresh SSA name with a readable prefix.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("%{prefix}{}", self.next)
    }

    /// Appends one instruction line.
    pub fn line(&mut self, text: impl AsRef<str>) {
        self.body.push_str("  ");
        self.body.push_str(text.as_ref());
        self.body.push('\n');
    }

    /// Assigns the result of `rhs` to a fresh register and returns its name.
    pub fn let_(&mut self, prefix: &str, rhs: impl AsRef<str>) -> String {
        let r = self.fresh(prefix);
        self.line(format!("{r} = {}", rhs.as_ref()));
        r
    }

    /// Emits `for i in 0..count { body(i) }` with an `i64` counter; `count` is a constant or
    /// an `i64` register.
    pub fn count(&mut self, count: impl std::fmt::Display, body: impl FnOnce(&mut Function, &str)) {
        let slot = self.fresh("slot");
        writeln!(self.allocas, "  {slot} = alloca i64").expect("writing to a String");
        let (cond, run, done) = (self.fresh("cond"), self.fresh("body"), self.fresh("done"));
        let label = |l: &str| l.trim_start_matches('%').to_string();
        self.line(format!("store i64 0, ptr {slot}"));
        self.line(format!("br label {cond}"));
        self.body.push_str(&format!("{}:\n", label(&cond)));
        let i = self.let_("i", format!("load i64, ptr {slot}"));
        let more = self.let_("more", format!("icmp slt i64 {i}, {count}"));
        self.line(format!("br i1 {more}, label {run}, label {done}"));
        self.body.push_str(&format!("{}:\n", label(&run)));
        body(self, &i);
        let next = self.let_("next", format!("add i64 {i}, 1"));
        self.line(format!("store i64 {next}, ptr {slot}"));
        self.line(format!("br label {cond}"));
        self.body.push_str(&format!("{}:\n", label(&done)));
    }

    /// Loads entry `index` of the constant `[len x i64]` global array `table`.
    pub fn table_entry(&mut self, table: &str, len: usize, index: &str) -> String {
        let slot = self
            .let_("entry", format!("getelementptr inbounds [{len} x i64], ptr {table}, i64 0, i64 {index}"));
        self.let_("entry", format!("load i64, ptr {slot}"))
    }

    /// Emits `if cond { body }`.
    pub fn when(&mut self, cond: &str, body: impl FnOnce(&mut Function)) {
        let (then, end) = (self.fresh("then"), self.fresh("end"));
        self.line(format!("br i1 {cond}, label {then}, label {end}"));
        self.body.push_str(&format!("{}:\n", then.trim_start_matches('%')));
        body(self);
        self.line(format!("br label {end}"));
        self.body.push_str(&format!("{}:\n", end.trim_start_matches('%')));
    }

    /// A stack slot for an f32 accumulator, initialized to `init`.
    pub fn accumulator(&mut self, init: &str) -> String {
        self.slot(Ty::Scalar, init)
    }

    /// `*acc += a * b` on an f32 accumulator, reassociable so that LLVM vectorizes the sum.
    pub fn add_product(&mut self, acc: &str, a: &str, b: &str) {
        let p = self.let_("p", format!("fmul reassoc contract float {a}, {b}"));
        self.add_to(acc, &p);
    }

    /// `*acc += v` on an f32 accumulator, reassociable so that LLVM vectorizes the sum.
    pub fn add_to(&mut self, acc: &str, v: &str) {
        let a = self.let_("a", format!("load float, ptr {acc}"));
        let s = self.let_("s", format!("fadd reassoc contract float {a}, {v}"));
        self.line(format!("store float {s}, ptr {acc}"));
    }

    /// An `i64` stack slot initialized to `init`.
    pub fn slot_i64(&mut self, init: &str) -> String {
        let slot = self.fresh("idx");
        writeln!(self.allocas, "  {slot} = alloca i64").expect("writing to a String");
        self.line(format!("store i64 {init}, ptr {slot}"));
        slot
    }

    /// Whether `0 <= y < h` and `0 <= x < w` (signed `i64`s), as an `i1`.
    pub fn inside(&mut self, y: &str, h: isize, x: &str, w: isize) -> String {
        // One unsigned compare per axis: negative values wrap to huge ones.
        let in_y = self.let_("in", format!("icmp ult i64 {y}, {h}"));
        let in_x = self.let_("in", format!("icmp ult i64 {x}, {w}"));
        self.let_("in", format!("and i1 {in_y}, {in_x}"))
    }

    /// `*slot = a * b + *slot` on an accumulator of type `ty`, as one fused multiply-add.
    pub fn fma_into(&mut self, ty: Ty, slot: &str, a: &str, b: &str) {
        let t = ty.name();
        let old = self.let_("s", format!("load {t}, ptr {slot}"));
        let sum = self.fma(ty, a, b, &old);
        self.line(format!("store {t} {sum}, ptr {slot}"));
    }

    /// `*slot += v` on an accumulator of type `ty`.
    pub fn add_vector(&mut self, ty: Ty, slot: &str, v: &str) {
        let t = ty.name();
        let a = self.let_("a", format!("load {t}, ptr {slot}"));
        let s = self.let_("s", format!("fadd {t} {a}, {v}"));
        self.line(format!("store {t} {s}, ptr {slot}"));
    }

    /// The sum of the lanes of a vector accumulator of type `ty`.
    pub fn vector_sum(&mut self, ty: Ty, slot: &str) -> String {
        let t = ty.name();
        let v = self.let_("v", format!("load {t}, ptr {slot}"));
        self.let_(
            "sum",
            format!("call reassoc float @llvm.vector.reduce.fadd.{}(float 0.0, {t} {v})", ty.suffix()),
        )
    }

    /// The value of an f32 accumulator.
    pub fn read(&mut self, acc: &str) -> String {
        self.let_("a", format!("load float, ptr {acc}"))
    }

    /// A stack slot of type `ty` (promoted to a register by LLVM), initialized to `init`.
    pub fn slot(&mut self, ty: Ty, init: &str) -> String {
        let slot = self.fresh("acc");
        writeln!(self.allocas, "  {slot} = alloca {}, align 64", ty.name()).expect("writing to a String");
        self.line(format!("store {} {init}, ptr {slot}", ty.name()));
        slot
    }

    /// A stack array of `count` floats, allocated once per call.
    pub fn stack_floats(&mut self, count: usize) -> String {
        let array = self.fresh("floats");
        writeln!(self.allocas, "  {array} = alloca [{} x float], align 16", count.max(1))
            .expect("writing to a String");
        array
    }

    /// A stack array of `count` pointers, allocated once per call.
    pub fn pointer_array(&mut self, count: usize) -> String {
        let array = self.fresh("ptrs");
        writeln!(self.allocas, "  {array} = alloca [{} x ptr]", count.max(1)).expect("writing to a String");
        array
    }

    /// `array[index]` of an array of pointers.
    pub fn pointer_at(&mut self, array: &str, index: &str) -> String {
        self.let_("pp", format!("getelementptr inbounds ptr, ptr {array}, i64 {index}"))
    }

    /// `value` in every lane of a `lanes`-wide vector.
    pub fn splat(&mut self, value: &str, lanes: usize) -> String {
        let one = self.let_("one", format!("insertelement <{lanes} x float> poison, float {value}, i64 0"));
        self.let_(
            "splat",
            format!("shufflevector <{lanes} x float> {one}, <{lanes} x float> poison, <{lanes} x i32> zeroinitializer"),
        )
    }

    /// `value`, an `i64`, in every lane of a `lanes`-wide vector.
    pub fn splat_i64(&mut self, value: &str, lanes: usize) -> String {
        let one = self.let_("one", format!("insertelement <{lanes} x i64> poison, i64 {value}, i64 0"));
        self.let_(
            "splat",
            format!(
                "shufflevector <{lanes} x i64> {one}, <{lanes} x i64> poison, <{lanes} x i32> zeroinitializer"
            ),
        )
    }

    /// Loads a value of type `ty` from `ptr + index` floats; lanes where `mask` is false are
    /// not read and come out zero.
    pub fn load_ty(&mut self, ty: Ty, ptr: &str, index: &str, mask: Option<&str>) -> String {
        let p = self.float_at(ptr, index);
        match (ty, mask) {
            (Ty::Vector(lanes), Some(m)) => self.masked_load(lanes, &p, m, "zeroinitializer"),
            _ => self.let_("v", format!("load {}, ptr {p}, align 4", ty.name())),
        }
    }

    /// Loads `lanes` floats from `ptr + index` floats where `mask` is true, and takes
    /// `passthru`'s lanes elsewhere. The address is formed without `inbounds`: masked-off
    /// lanes may lie outside `ptr`'s object (left of a plane's start), and are never read.
    pub fn load_masked(
        &mut self,
        lanes: usize,
        ptr: &str,
        index: &str,
        mask: &str,
        passthru: &str,
    ) -> String {
        let p = self.let_("p", format!("getelementptr float, ptr {ptr}, i64 {index}"));
        self.masked_load(lanes, &p, mask, passthru)
    }

    /// Loads `lanes` floats from `ptr + index` floats where `valid` is true, `passthru`'s lanes
    /// elsewhere: a plain load when every lane is valid, a masked one (see
    /// [`Function::load_masked`]) when some are, none when no lane is.
    pub fn load_valid(
        &mut self,
        lanes: usize,
        ptr: &str,
        index: &str,
        valid: &[bool],
        passthru: &str,
    ) -> Option<String> {
        if valid.iter().all(|&v| v) {
            Some(self.load_ty(Ty::Vector(lanes), ptr, index, None))
        } else if valid.contains(&true) {
            Some(self.load_masked(lanes, ptr, index, &lane_mask(valid.iter().copied()), passthru))
        } else {
            None
        }
    }

    /// The `llvm.masked.load` of `lanes` floats at address `p`.
    fn masked_load(&mut self, lanes: usize, p: &str, mask: &str, passthru: &str) -> String {
        let (t, l) = (Ty::Vector(lanes).name(), lanes);
        self.let_(
            "v",
            format!(
                "call {t} @llvm.masked.load.v{l}f32.p0(ptr {p}, i32 4, <{l} x i1> {mask}, {t} {passthru})"
            ),
        )
    }

    /// Stores `value` of type `ty` to `ptr + index` floats, only the lanes where `mask` is true.
    pub fn store_ty(&mut self, ty: Ty, value: &str, ptr: &str, index: &str, mask: Option<&str>) {
        let p = self.float_at(ptr, index);
        match (ty, mask) {
            (Ty::Vector(l), Some(m)) => self.line(format!(
                "call void @llvm.masked.store.v{l}f32.p0(<{l} x float> {value}, ptr {p}, i32 4, <{l} x i1> {m})"
            )),
            _ => self.line(format!("store {} {value}, ptr {p}, align 4", ty.name())),
        }
    }

    /// `ptr + index` floats.
    pub fn float_at(&mut self, ptr: &str, index: &str) -> String {
        self.let_("p", format!("getelementptr inbounds float, ptr {ptr}, i64 {index}"))
    }

    /// Asks for the cache line holding byte `ptr + bytes` to be read into L1; an address past
    /// the end of `ptr`'s object is allowed (the hint never faults).
    pub fn prefetch(&mut self, ptr: &str, bytes: impl std::fmt::Display) {
        let p = self.let_("pf", format!("getelementptr i8, ptr {ptr}, i64 {bytes}"));
        self.line(format!("call void @llvm.prefetch.p0(ptr {p}, i32 0, i32 3, i32 1)"));
    }

    /// Asks for the cache line holding byte `ptr + bytes` to be read into L2 (not L1, whose
    /// lines the running loop needs); the hint never faults.
    pub fn prefetch_l2(&mut self, ptr: &str, bytes: impl std::fmt::Display) {
        let p = self.let_("pf", format!("getelementptr i8, ptr {ptr}, i64 {bytes}"));
        self.line(format!("call void @llvm.prefetch.p0(ptr {p}, i32 0, i32 2, i32 1)"));
    }

    /// Loads `ptr[index]`.
    pub fn load(&mut self, ptr: &str, index: &str) -> String {
        let p = self.float_at(ptr, index);
        self.let_("v", format!("load float, ptr {p}"))
    }

    /// Stores `value` to `ptr[index]`.
    pub fn store(&mut self, value: &str, ptr: &str, index: &str) {
        let p = self.float_at(ptr, index);
        self.line(format!("store float {value}, ptr {p}"));
    }

    /// `a * b + c` of type `ty` as one fused multiply-add.
    pub fn fma(&mut self, ty: Ty, a: &str, b: &str, c: &str) -> String {
        let t = ty.name();
        self.let_("f", format!("call {t} @llvm.fmuladd.{}({t} {a}, {t} {b}, {t} {c})", ty.suffix()))
    }

    /// Integer arithmetic on i64: `op a, b`.
    pub fn int(&mut self, op: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.let_("n", format!("{op} i64 {a}, {b}"))
    }

    /// The smaller of two unsigned `i64`s.
    pub fn umin(&mut self, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.let_("min", format!("call i64 @llvm.umin.i64(i64 {a}, i64 {b})"))
    }

    /// The larger of two signed `i64`s.
    pub fn smax(&mut self, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.let_("max", format!("call i64 @llvm.smax.i64(i64 {a}, i64 {b})"))
    }

    /// The smaller of two signed `i64`s.
    pub fn smin(&mut self, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.let_("min", format!("call i64 @llvm.smin.i64(i64 {a}, i64 {b})"))
    }

    /// Stores `value` to `ptr[first..first + count]`.
    pub fn fill(
        &mut self,
        ptr: &str,
        first: impl std::fmt::Display,
        count: impl std::fmt::Display,
        value: &str,
    ) {
        let first = first.to_string();
        self.count(count, |f, i| {
            let at = f.int("add", &first, i);
            f.store(value, ptr, &at);
        });
    }

    /// Emits `body(row, first, lanes, mask)` over `rows` rows of `width` outputs in vectors
    /// of `lanes`: whole vectors in a loop (`mask` none), then the row's tail once, with a
    /// constant mask of its valid lanes, in a vector half as wide where it fits one (a
    /// 112-wide row in 32-lane vectors: 3 and a half, not 4).
    pub fn vector_rows(
        &mut self,
        rows: impl std::fmt::Display,
        width: usize,
        lanes: usize,
        body: impl Fn(&mut Function, &str, &str, usize, Option<&str>),
    ) {
        let tail = width % lanes;
        let tail_lanes = if lanes.is_multiple_of(2) && tail <= lanes / 2 { lanes / 2 } else { lanes };
        let tail_mask = tail_mask(tail, tail_lanes);
        self.count(rows, |f, row| {
            f.count(width / lanes, |f, v| {
                let first = f.int("mul", v, lanes);
                body(f, row, &first, lanes, None);
            });
            if tail > 0 {
                body(f, row, &(width / lanes * lanes).to_string(), tail_lanes, tail_mask.as_deref());
            }
        });
    }

    /// The `vectors` (of `lanes` each) one after another, as one vector, and its width (rounded
    /// up to a power of two times `lanes`, the rest poison).
    pub fn concatenate(&mut self, vectors: &[String], lanes: usize) -> (String, usize) {
        let mut parts = vectors.to_vec();
        let mut width = lanes;
        while parts.len() > 1 {
            let ty = Ty::Vector(width).name();
            let picks: Vec<String> = (0..2 * width).map(|j| format!("i32 {j}")).collect();
            parts = parts
                .chunks(2)
                .map(|pair| {
                    let second = pair.get(1).map_or("poison", String::as_str);
                    self.let_(
                        "cat",
                        format!(
                            "shufflevector {ty} {}, {ty} {second}, <{} x i32> <{}>",
                            pair[0],
                            2 * width,
                            picks.join(", ")
                        ),
                    )
                })
                .collect();
            width *= 2;
        }
        (parts.remove(0), width)
    }

    /// The lanes `picks` of `a` followed by `b` (`lanes` each), as a vector: one permute.
    pub fn shuffle(
        &mut self,
        a: &str,
        b: &str,
        lanes: usize,
        picks: impl IntoIterator<Item = usize>,
    ) -> String {
        let picks: Vec<String> = picks.into_iter().map(|j| format!("i32 {j}")).collect();
        let ty = Ty::Vector(lanes).name();
        self.let_(
            "shuf",
            format!("shufflevector {ty} {a}, {ty} {b}, <{} x i32> <{}>", picks.len(), picks.join(", ")),
        )
    }

    /// The lanes `picks` of the `width`-lane vector `all`, as a vector.
    pub fn pick(&mut self, (all, width): (&str, usize), picks: impl IntoIterator<Item = usize>) -> String {
        self.shuffle(all, "poison", width, picks)
    }

    /// `ceil(a / b)` of unsigned `i64`s.
    pub fn ceil_div(&mut self, a: &str, b: usize) -> String {
        let up = self.int("add", a, b - 1);
        self.int("udiv", &up, b)
    }

    /// The function as text, with its signature line.
    pub fn finish(self, signature: &str) -> String {
        format!("{signature} {{\nentry:\n{}{}  ret void\n}}\n", self.allocas, self.body)
    }
}

/// The constant mask of the valid lanes of a row's last vector, when `width` leaves one
/// partly filled.
pub fn tail_mask(width: usize, lanes: usize) -> Option<String> {
    let tail = width % lanes;
    (tail > 0).then(|| lane_mask((0..lanes).map(|j| j < tail)))
}

/// The constant lane mask with `valid`'s lanes true.
pub fn lane_mask(valid: impl IntoIterator<Item = bool>) -> String {
    let bits: Vec<String> = valid.into_iter().map(|v| format!("i1 {v}")).collect();
    format!("<{}>", bits.join(", "))
}

/// The type of values an element-wise computation works on: one float or a vector of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `float`.
    Scalar,
    /// `<lanes x float>`.
    Vector(usize),
}

impl Ty {
    /// The LLVM type.
    pub fn name(self) -> String {
        match self {
            Ty::Scalar => "float".into(),
            Ty::Vector(l) => format!("<{l} x float>"),
        }
    }

    /// The suffix of overloaded intrinsics: `f32` or `v16f32`.
    pub fn suffix(self) -> String {
        match self {
            Ty::Scalar => "f32".into(),
            Ty::Vector(l) => format!("v{l}f32"),
        }
    }

    /// The constant `x` of this type.
    pub fn constant(self, x: f32) -> String {
        match self {
            Ty::Scalar => float(x),
            Ty::Vector(l) => format!("<{}>", vec![format!("float {}", float(x)); l].join(", ")),
        }
    }
}

/// Declarations of the intrinsics generated code may call, for scalars and `lanes`-wide vectors.
pub fn intrinsics(lanes: usize) -> String {
    let mut out = String::new();
    for ty in [Ty::Scalar, Ty::Vector(lanes), Ty::Vector(2 * lanes)] {
        let (t, s) = (ty.name(), ty.suffix());
        writeln!(out, "declare {t} @llvm.fmuladd.{s}({t}, {t}, {t})").expect("writing to a String");
        writeln!(out, "declare {t} @llvm.exp.{s}({t})").expect("writing to a String");
        writeln!(out, "declare {t} @llvm.log.{s}({t})").expect("writing to a String");
        writeln!(out, "declare {t} @llvm.sqrt.{s}({t})").expect("writing to a String");
        for binary in ["maxnum", "minnum"] {
            writeln!(out, "declare {t} @llvm.{binary}.{s}({t}, {t})").expect("writing to a String");
        }
    }
    for op in ["umin", "smin", "smax"] {
        writeln!(out, "declare i64 @llvm.{op}.i64(i64, i64)").expect("writing to a String");
    }
    writeln!(out, "declare void @llvm.prefetch.p0(ptr, i32, i32, i32)").expect("writing to a String");
    let l = lanes;
    writeln!(out, "declare float @llvm.vector.reduce.fadd.v{l}f32(float, <{l} x float>)")
        .expect("writing to a String");
    for l in [lanes, 2 * lanes] {
        writeln!(
            out,
            "declare <{l} x float> @llvm.masked.load.v{l}f32.p0(ptr, i32, <{l} x i1>, <{l} x float>)"
        )
        .expect("writing to a String");
        writeln!(out, "declare void @llvm.masked.store.v{l}f32.p0(<{l} x float>, ptr, i32, <{l} x i1>)")
            .expect("writing to a String");
    }
    let l = lanes;
    writeln!(out, "declare <{l} x float> @llvm.masked.gather.v{l}f32.v{l}p0(<{l} x ptr>, i32, <{l} x i1>, <{l} x float>)")
        .expect("writing to a String");
    writeln!(
        out,
        "declare void @llvm.masked.scatter.v{l}f32.v{l}p0(<{l} x float>, <{l} x ptr>, i32, <{l} x i1>)"
    )
    .expect("writing to a String");
    out
}

/// An f32 constant in the exact hexadecimal form LLVM requires.
pub fn float(x: f32) -> String {
    format!("0x{:016X}", f64::from(x).to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_exact() {
        assert_eq!(float(1.0), "0x3FF0000000000000");
        assert_eq!(float(0.1), format!("0x{:016X}", f64::from(0.1f32).to_bits()));
    }

    #[test]
    fn loops_nest_with_unique_labels() {
        let mut f = Function::new();
        f.count(3, |f, i| {
            f.count(4, |f, j| {
                f.int("add", i, j);
            })
        });
        let text = f.finish("define void @t()");
        assert_eq!(text.matches("alloca i64").count(), 2);
        assert_eq!(text.matches("icmp slt i64").count(), 2);
        assert!(text.ends_with("  ret void\n}\n"));
    }
}
