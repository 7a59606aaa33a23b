//! The kernels a step can run, each an `impl Lowering` block that writes LLVM IR.

pub(crate) mod blocked;
mod blocked_window;
pub(crate) mod classifier;
pub mod direct;
pub mod elementwise;
pub(crate) mod expand_window;
pub mod gemm;
pub(crate) mod geometry;
pub(crate) mod im2col;
mod linear;
pub(crate) mod padded;
mod split_k;
mod training;
pub mod window;
pub mod winograd;
