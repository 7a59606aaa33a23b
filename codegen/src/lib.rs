//! archc's code generation through LLVM: CPU code for this process (JIT) and for files (AOT:
//! executables, C libraries, objects, for the host or cross targets). LLVM types never leave
//! this crate: callers see [`CompiledModel`] and [`aot::build`].
#![warn(missing_docs)]

pub mod aot;
pub mod bench;
mod build;
mod emit;
mod epilogue;
pub mod gpu;
mod huge;
mod kernels;
mod layout;
mod lower;
mod reload;
mod runtime;
pub mod schedule;
mod target;
mod train;
pub mod tune;

use std::time::{Duration, Instant};

use crate::huge::HugeBuffer;

pub use lower::{Lowered, StepInfo, lower};
pub use reload::Reloadable;
pub use target::{HostTarget, Isa, TARGET_NAMES, Target, host_target};
pub use train::{CompiledTraining, Probe, StepResult};

/// What can go wrong while compiling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The graph or the request uses something code generation does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// LLVM rejected the module or could not emit code (a bug in the lowering).
    #[error("LLVM: {0}")]
    Llvm(String),
    /// The C compiler or linker failed, or is missing.
    #[error("linking: {0}")]
    Link(String),
    /// The schedule cache file is unreadable or malformed.
    #[error("schedule cache {0}")]
    BadCache(String),
    /// A file could not be written or a library loaded.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Wraps an LLVM message.
fn llvm(message: impl ToString) -> Error {
    Error::Llvm(message.to_string())
}

/// The symbol prefix of everything generated for the in-process library.
const JIT_SYMBOL: &str = "net";

/// A network step's entry point: `(input, output, weights, arena)`.
type Step = unsafe extern "C" fn(*const f32, *mut f32, *const f32, *mut u8);

/// A network compiled to native code for this machine, ready to run.
pub struct CompiledModel {
    // Keeps the shared library mapped while the function pointers may be called.
    _library: libloading::Library,
    forward: Step,
    steps: Vec<Step>,
    set_threads: unsafe extern "C" fn(i32),
    info: Vec<StepInfo>,
    weights: HugeBuffer<f32>,
    arena: HugeBuffer<u64>,
    inputs: Vec<Vec<usize>>,
    outputs: Vec<Vec<usize>>,
    compile_time: Duration,
    // The library file's folder, removed when the model is dropped.
    _dir: tempfile::TempDir,
}

impl CompiledModel {
    /// Compiles `graph` with `weights`, placed by `plan`, for the host CPU; `llvm_level` (0 to 3)
    /// trades compile time for speed (tests use 0, runs 3). Runs on one thread until
    /// [`CompiledModel::set_threads`].
    pub fn compile(
        graph: &ir::Graph,
        weights: &ir::Weights,
        plan: &passes::plan::Plan,
        llvm_level: u8,
    ) -> Result<CompiledModel, Error> {
        CompiledModel::compile_for(&Target::host(), graph, weights, plan, llvm_level)
    }

    /// Like [`CompiledModel::compile`], for a `target` whose code this machine can run (to
    /// test the AVX2 kernels on an AVX-512 machine, say).
    pub fn compile_for(
        target: &Target,
        graph: &ir::Graph,
        weights: &ir::Weights,
        plan: &passes::plan::Plan,
        llvm_level: u8,
    ) -> Result<CompiledModel, Error> {
        CompiledModel::compile_tuned(target, graph, weights, plan, llvm_level, &schedule::DEFAULTS)
    }

    /// Like [`CompiledModel::compile_for`], each convolution computed by its schedule in
    /// `schedules` (measured by `archc tune`) where it has one.
    pub fn compile_tuned(
        target: &Target,
        graph: &ir::Graph,
        weights: &ir::Weights,
        plan: &passes::plan::Plan,
        llvm_level: u8,
        schedules: &schedule::Schedules,
    ) -> Result<CompiledModel, Error> {
        if !target.runs_here() {
            return Err(Error::Unsupported(format!("running code for {} on this machine", target.triple)));
        }
        let start = Instant::now();
        let lowered = lower(graph, weights, plan, target.isa(), schedules, JIT_SYMBOL)?;
        CompiledModel::load(lowered, target, llvm_level, start)
    }

    /// Builds a lowered module into a shared library and loads it; `start` is when compiling
    /// began.
    fn load(
        lowered: Lowered,
        target: &Target,
        llvm_level: u8,
        start: Instant,
    ) -> Result<CompiledModel, Error> {
        let dir = tempfile::tempdir()?;
        let library = build::shared_library(&lowered, target, llvm_level, JIT_SYMBOL, dir.path())?;
        // SAFETY: the library was just built from our own module and runtime, whose only
        // constructors are the C runtime's.
        let handle = unsafe { libloading::Library::new(&library) }.map_err(|e| Error::Link(e.to_string()))?;
        let symbol = |name: String| Error::Link(format!("{name} missing from the compiled library"));
        // SAFETY: each symbol is defined by the lowering or the glue with the type it is read as.
        let (forward, steps, set_threads) = unsafe {
            let forward = *handle
                .get::<Step>(lowered.forward.as_bytes())
                .map_err(|_| symbol(lowered.forward.clone()))?;
            let steps_name = format!("{JIT_SYMBOL}_steps");
            let table = *handle.get::<*const Step>(steps_name.as_bytes()).map_err(|_| symbol(steps_name))?;
            let steps = std::slice::from_raw_parts(table, lowered.steps.len()).to_vec();
            let threads_name = format!("{JIT_SYMBOL}_set_threads");
            let set_threads = *handle
                .get::<unsafe extern "C" fn(i32)>(threads_name.as_bytes())
                .map_err(|_| symbol(threads_name))?;
            (forward, steps, set_threads)
        };
        Ok(CompiledModel {
            _library: handle,
            forward,
            steps,
            set_threads,
            arena: HugeBuffer::zeroed(lowered.arena_bytes.div_ceil(8)),
            weights: HugeBuffer::from_slice(&lowered.weights),
            info: lowered.steps,
            inputs: lowered.inputs,
            outputs: lowered.outputs,
            compile_time: start.elapsed(),
            _dir: dir,
        })
    }

    /// Sets the number of threads runs use (the calling one included); 1 spawns none.
    pub fn set_threads(&mut self, threads: usize) {
        // SAFETY: the runtime's setter takes any int; no run is in progress (`&mut self`).
        unsafe { (self.set_threads)(i32::try_from(threads).unwrap_or(i32::MAX)) }
    }

    /// The (first) input's shape (NCHW, the batch included).
    pub fn input_shape(&self) -> &[usize] {
        &self.inputs[0]
    }

    /// The (first) output's shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.outputs[0]
    }

    /// The weights blob the generated code reads, for training to refresh between steps.
    pub(crate) fn weights_mut(&mut self) -> &mut [f32] {
        &mut self.weights
    }

    /// What each step computes, in order.
    pub fn steps(&self) -> &[StepInfo] {
        &self.info
    }

    /// How long compiling took, lowering and linking included.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Runs the network on one NCHW input (its length must be the compiled input's; a
    /// graph's several inputs one after the other) and returns the output (outputs).
    pub fn run(&mut self, input: &[f32]) -> Vec<f32> {
        let mut output = vec![0.0; total(&self.outputs)];
        self.run_into(input, &mut output);
        output
    }

    /// Runs the network, writing into `output`.
    pub fn run_into(&mut self, input: &[f32], output: &mut [f32]) {
        self.check(input, output);
        // SAFETY: the buffers have the sizes the generated code was specialized to: input and
        // output checked above, weights and arena allocated from the same lowering.
        unsafe {
            (self.forward)(
                input.as_ptr(),
                output.as_mut_ptr(),
                self.weights.as_ptr(),
                self.arena.as_mut_ptr().cast(),
            )
        }
    }

    /// Runs the network step by step and returns each step's wall time.
    pub fn run_profiled(&mut self, input: &[f32], output: &mut [f32]) -> Vec<Duration> {
        self.check(input, output);
        let mut times = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let start = Instant::now();
            // SAFETY: as in `run_into`; the steps run in the order `forward` runs them.
            unsafe {
                step(
                    input.as_ptr(),
                    output.as_mut_ptr(),
                    self.weights.as_ptr(),
                    self.arena.as_mut_ptr().cast(),
                )
            }
            times.push(start.elapsed());
        }
        times
    }

    fn check(&self, input: &[f32], output: &[f32]) {
        assert_eq!(input.len(), total(&self.inputs), "input length");
        assert_eq!(output.len(), total(&self.outputs), "output length");
    }
}

/// Elements of arrays of `shapes`, together.
fn total(shapes: &[Vec<usize>]) -> usize {
    shapes.iter().map(|s| s.iter().product::<usize>()).sum()
}
