//! The kernels a step can run, each an `impl Lowering` block that writes LLVM IR.

mod elementwise;
mod gemm;
mod linear;
mod window;
