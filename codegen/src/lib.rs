//! archc's code generation through LLVM: CPU code (JIT and AOT) and NVPTX. LLVM types never
//! leave this crate: callers see [`CompiledModel`].
#![warn(missing_docs)]

mod emit;
mod jit;
mod lower;
mod target;

pub use lower::{Lowered, lower};
pub use target::{HostTarget, host_target};

/// What can go wrong while compiling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The graph uses something code generation does not handle yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// LLVM rejected the module or could not emit code (a bug in the lowering).
    #[error("LLVM: {0}")]
    Llvm(String),
    /// The system linker failed.
    #[error("linking: {0}")]
    Link(String),
    /// A temporary file could not be written or a library loaded.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A network compiled to native code for this machine, ready to run.
pub struct CompiledModel {
    // Keeps the shared library mapped while `entry` may be called.
    _library: libloading::Library,
    entry: jit::Entry,
    weights: Vec<f32>,
    arena: Vec<u64>,
    input_elems: usize,
    output_elems: usize,
    // The library file's folder, removed when the model is dropped.
    _dir: tempfile::TempDir,
}

impl CompiledModel {
    /// Compiles `graph` with `weights`, placed by `plan`, for the host CPU; `llvm_level` (0 to 3)
    /// trades compile time for speed (tests use 0, runs 3).
    pub fn compile(
        graph: &ir::Graph,
        weights: &ir::Weights,
        plan: &passes::plan::Plan,
        llvm_level: u8,
    ) -> Result<CompiledModel, Error> {
        let lowered = lower(graph, weights, plan, "net")?;
        let dir = tempfile::tempdir()?;
        let (object, library) = (dir.path().join("net.o"), dir.path().join("libnet.so"));
        jit::write_object(&lowered.ir, graph.name(), llvm_level, &object)?;
        jit::link_shared(&object, &library)?;
        // SAFETY: the library was just built from our own module; loading runs no constructors
        // beyond the C runtime's.
        let library_handle =
            unsafe { libloading::Library::new(&library) }.map_err(|e| Error::Link(e.to_string()))?;
        // SAFETY: the symbol is the entry point the lowering defined, with the `Entry` signature.
        let entry: jit::Entry = unsafe {
            *library_handle
                .get::<jit::Entry>(lowered.entry.as_bytes())
                .map_err(|e| Error::Link(e.to_string()))?
        };
        Ok(CompiledModel {
            _library: library_handle,
            entry,
            weights: lowered.weights,
            arena: vec![0; lowered.arena_bytes.div_ceil(8)],
            input_elems: lowered.input_elems,
            output_elems: lowered.output_elems,
            _dir: dir,
        })
    }

    /// Runs the network on one NCHW input (its length must be the compiled input's) and
    /// returns the output.
    pub fn run(&mut self, input: &[f32]) -> Vec<f32> {
        assert_eq!(input.len(), self.input_elems, "input length");
        let mut output = vec![0.0; self.output_elems];
        // SAFETY: the buffers have the sizes the generated code was specialized to: input and
        // output checked above, weights and arena allocated from the same lowering.
        unsafe {
            (self.entry)(
                input.as_ptr(),
                output.as_mut_ptr(),
                self.weights.as_ptr(),
                self.arena.as_mut_ptr().cast(),
            );
        }
        output
    }
}
