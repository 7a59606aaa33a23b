//! A network compiled for NVIDIA GPUs, as files: the PTX module, the launch plan that says
//! which kernels to launch in which order with which grid, and the weights blob they read;
//! and a runner for them over the CUDA driver.
//! This crate knows nothing of LLVM: `codegen` writes these files, and they can be run on a
//! GPU machine that has no LLVM. The driver (`libcuda.so`) is loaded when a model is, so
//! the crate builds and its files can be read on machines without one.
#![warn(missing_docs)]

mod error;
mod files;
mod model;
mod plan;

pub use error::{Error, Result};
pub use files::{Files, paths};
pub use model::{CudaModel, Submit, has_driver, require_driver};
pub use plan::{Buffer, Launch, LaunchPlan};
