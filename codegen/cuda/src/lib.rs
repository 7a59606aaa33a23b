//! A network compiled for NVIDIA GPUs, as files: the PTX module, the launch plan that says
//! which kernels to launch in which order with which grid, and the weights blob they read.
//! This crate knows nothing of LLVM: `codegen` writes these files, and they can be run on a
//! GPU machine that has no LLVM.
#![warn(missing_docs)]

mod plan;

pub use plan::{Buffer, Launch, LaunchPlan};
