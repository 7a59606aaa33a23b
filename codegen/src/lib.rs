//! archc's code generation through LLVM: CPU code (JIT and AOT) and NVPTX. LLVM types never
//! leave this crate.
#![warn(missing_docs)]

mod target;

pub use target::{HostTarget, host_target};
