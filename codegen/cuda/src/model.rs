//! Running a compiled network on GPU 0 through the CUDA driver, which is loaded at run time.

use std::sync::Arc;

use cudarc::driver::sys::{CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
};

use crate::{Buffer, Error, LaunchPlan, Result};

/// How `CudaModel::time` submits the launches of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submit {
    /// All launches captured once into a CUDA graph, which each run replays: one submission
    /// per run, so the times hold next to no host-side launch overhead.
    Graph,
    /// One `cuLaunchKernel` per kernel per run, as `run` does.
    Stream,
}

/// A network loaded onto GPU 0: its kernels, its weights uploaded once, and its input,
/// output and arena buffers.
pub struct CudaModel {
    stream: Arc<CudaStream>,
    kernels: Vec<(String, CudaFunction, LaunchConfig)>,
    parameters: Vec<Buffer>,
    inputs: Vec<Vec<usize>>,
    input: CudaSlice<f32>,
    output: CudaSlice<f32>,
    weights: CudaSlice<f32>,
    arena: CudaSlice<u8>,
    input_floats: usize,
    output_floats: usize,
    graph: Option<CudaGraph>,
    device_name: String,
}

impl CudaModel {
    /// Loads `ptx` (the driver compiles it for the GPU), finds every kernel of `plan`,
    /// uploads `weights` and allocates the buffers.
    pub fn load(ptx: &str, plan: &LaunchPlan, weights: &[f32]) -> Result<CudaModel> {
        if weights.len() as u64 != plan.weight_floats {
            let message =
                format!("{} weights given; the launch plan takes {}", weights.len(), plan.weight_floats);
            return Err(Error::Invalid(message));
        }
        // CString::new in cudarc panics on a NUL byte: refuse it here instead.
        if ptx.contains('\0') {
            return Err(Error::Invalid("the PTX text holds a NUL byte".into()));
        }
        if let Some(k) = plan.kernels.iter().find(|k| k.entry.contains('\0')) {
            return Err(Error::Invalid(format!("kernel entry name {:?} holds a NUL byte", k.entry)));
        }
        let ctx = context()?;
        let device_name = ctx.name().map_err(driver("reading the device name"))?;
        // One stream orders every use of every buffer, so cudarc need not record events
        // per buffer; those events would also break graph capture.
        // SAFETY: no buffer was allocated before this call, and only `stream` uses them.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(driver(&format!(
            "loading the PTX module (`ptxas -arch={}` on it says why)",
            plan.arch
        )))?;
        let kernels = plan
            .kernels
            .iter()
            .map(|k| {
                let function =
                    module.load_function(&k.entry).map_err(driver(&format!("finding kernel {}", k.entry)))?;
                let config = LaunchConfig {
                    grid_dim: (k.blocks, 1, 1),
                    block_dim: (k.threads, 1, 1),
                    // Shared memory is static, declared in the PTX.
                    shared_mem_bytes: 0,
                };
                Ok((k.entry.clone(), function, config))
            })
            .collect::<Result<Vec<_>>>()?;
        let count = |shapes: &[Vec<usize>]| shapes.iter().map(|s| s.iter().product::<usize>()).sum::<usize>();
        let (input_floats, output_floats) = (count(&plan.inputs), count(&plan.outputs));
        let arena_bytes = usize::try_from(plan.arena_bytes).map_err(|_| {
            Error::Invalid(format!(
                "an arena of {} bytes does not fit in this machine's memory",
                plan.arena_bytes
            ))
        })?;
        let mut weight_buffer = alloc(&stream, weights.len())?;
        if !weights.is_empty() {
            stream.memcpy_htod(weights, &mut weight_buffer).map_err(driver("uploading the weights"))?;
        }
        Ok(CudaModel {
            input: alloc(&stream, input_floats)?,
            output: alloc(&stream, output_floats)?,
            weights: weight_buffer,
            arena: alloc(&stream, arena_bytes)?,
            stream,
            kernels,
            parameters: plan.parameters.clone(),
            inputs: plan.inputs.clone(),
            input_floats,
            output_floats,
            graph: None,
            device_name,
        })
    }

    /// The GPU's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Runs the network once on `input` (all inputs back to back) and returns its outputs,
    /// back to back.
    pub fn run(&mut self, input: &[f32]) -> Result<Vec<f32>> {
        self.upload(input)?;
        self.launch_all()?;
        let mut output = self.stream.clone_dtoh(&self.output).map_err(driver("running the kernels"))?;
        output.truncate(self.output_floats);
        Ok(output)
    }

    /// Milliseconds of each of `runs` runs on `input`, after `warmup` untimed ones, by CUDA
    /// events recorded around the launches alone (no copies).
    pub fn time(&mut self, input: &[f32], warmup: usize, runs: usize, submit: Submit) -> Result<Vec<f64>> {
        self.upload(input)?;
        if submit == Submit::Graph && self.graph.is_none() {
            self.graph = Some(self.capture()?);
        }
        let event = || self.stream.context().new_event(Some(CUevent_flags::CU_EVENT_DEFAULT));
        let (start, end) =
            (event().map_err(driver("creating an event"))?, event().map_err(driver("creating an event"))?);
        for _ in 0..warmup {
            self.submit(submit)?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            start.record(&self.stream).map_err(driver("recording an event"))?;
            self.submit(submit)?;
            end.record(&self.stream).map_err(driver("recording an event"))?;
            end.synchronize().map_err(driver("running the kernels"))?;
            times.push(f64::from(start.elapsed_ms(&end).map_err(driver("reading an event's time"))?));
        }
        Ok(times)
    }

    fn upload(&mut self, input: &[f32]) -> Result<()> {
        if input.len() != self.input_floats {
            let shapes = self.inputs.clone();
            return Err(Error::InputLength { got: input.len(), expected: self.input_floats, shapes });
        }
        if !input.is_empty() {
            self.stream.memcpy_htod(input, &mut self.input).map_err(driver("uploading the input"))?;
        }
        Ok(())
    }

    fn submit(&self, submit: Submit) -> Result<()> {
        match (submit, &self.graph) {
            (Submit::Graph, Some(graph)) => graph.launch().map_err(driver("launching the CUDA graph")),
            _ => self.launch_all(),
        }
    }

    /// Launches every kernel in order on the stream.
    fn launch_all(&self) -> Result<()> {
        for (entry, function, config) in &self.kernels {
            let mut args = self.stream.launch_builder(function);
            for parameter in &self.parameters {
                match parameter {
                    Buffer::Input => args.arg(&self.input),
                    Buffer::Output => args.arg(&self.output),
                    Buffer::Weights => args.arg(&self.weights),
                    Buffer::Arena => args.arg(&self.arena),
                };
            }
            // SAFETY: the plan says each kernel takes exactly these device pointers, in this
            // order, and the buffers are as long as it says.
            unsafe { args.launch(*config) }.map_err(driver(&format!("launching kernel {entry}")))?;
        }
        Ok(())
    }

    /// Captures one run's launches into a CUDA graph.
    fn capture(&self) -> Result<CudaGraph> {
        let mode = CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        self.stream.begin_capture(mode).map_err(driver("starting a graph capture"))?;
        let launched = self.launch_all();
        // End the capture even when a launch failed, so that the stream is usable again.
        let ended = self.stream.end_capture(CUgraphInstantiate_flags(0));
        launched?;
        ended
            .map_err(driver("capturing the launches into a CUDA graph"))?
            .ok_or_else(|| Error::Invalid("the launch plan has no kernels to capture".into()))
    }
}

/// Whether this machine has a CUDA driver that can be loaded (`libcuda.so`); it may still
/// have no GPU.
pub fn has_driver() -> bool {
    // SAFETY: is_culib_present only opens and closes the library, calling nothing in it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Errs with [`Error::NoDriver`] unless [`has_driver`]: for callers that would otherwise
/// compile a network only to find that it cannot run.
pub fn require_driver() -> Result<()> {
    if has_driver() { Ok(()) } else { Err(Error::NoDriver) }
}

/// A context on GPU 0, or the reason there is none. Probes for libcuda first: cudarc's
/// dynamic loading panics when the library is missing.
fn context() -> Result<Arc<CudaContext>> {
    if !has_driver() {
        return Err(Error::NoDriver);
    }
    cudarc::driver::result::init().map_err(|source| Error::NoDevice { source })?;
    CudaContext::new(0).map_err(driver("creating a context on GPU 0"))
}

/// A zeroed buffer of `len` elements; of one where `len` is 0, since the driver refuses
/// to allocate nothing.
fn alloc<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>> {
    stream.alloc_zeros(len.max(1)).map_err(driver(&format!("allocating {len} elements")))
}

/// Wraps a driver error with what was being done.
fn driver(doing: &str) -> impl FnOnce(DriverError) -> Error + '_ {
    move |source| Error::Driver { doing: doing.to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_without_a_driver_says_so() {
        let plan = LaunchPlan {
            network: "empty".into(),
            arch: "sm_90".into(),
            parameters: vec![Buffer::Input, Buffer::Output],
            arena_bytes: 0,
            weight_floats: 0,
            inputs: vec![vec![1, 2]],
            outputs: vec![vec![1, 2]],
            kernels: vec![],
        };
        if has_driver() {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("note: libcuda.so is present, so the no-driver error cannot be checked here");
            }
            assert!(!matches!(CudaModel::load("", &plan, &[]), Err(Error::NoDriver)));
            return;
        }
        let err = CudaModel::load("", &plan, &[]).err().expect("no driver here");
        assert!(matches!(err, Error::NoDriver));
        assert_eq!(
            err.to_string(),
            "no CUDA driver: libcuda.so could not be loaded; running on a GPU needs an NVIDIA GPU and its driver"
        );
        assert!(!err.is_bad_input());
    }

    #[test]
    fn wrong_weights_are_refused_before_the_driver_is_asked() {
        let plan = LaunchPlan {
            network: "w".into(),
            arch: "sm_90".into(),
            parameters: vec![Buffer::Weights],
            arena_bytes: 0,
            weight_floats: 4,
            inputs: vec![],
            outputs: vec![],
            kernels: vec![],
        };
        let err = CudaModel::load("", &plan, &[1.0]).err().unwrap();
        assert_eq!(err.to_string(), "1 weights given; the launch plan takes 4");
        let err = CudaModel::load("a\0b", &plan, &[0.0; 4]).err().unwrap();
        assert_eq!(err.to_string(), "the PTX text holds a NUL byte");
    }
}
