//! The kernels a step can run, each an `impl Lowering` block that writes LLVM IR.

pub(crate) mod classifier;
pub mod direct;
pub mod elementwise;
pub mod gemm;
pub(crate) mod geometry;
mod linear;
pub(crate) mod padded;
mod training;
pub mod window;
pub mod winograd;
