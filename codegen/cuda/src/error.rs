//! The crate's one error type.

use std::path::PathBuf;

use cudarc::driver::DriverError;

/// What went wrong reading a compiled network's files or running it on a GPU.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `libcuda.so` could not be loaded: this machine has no NVIDIA driver.
    #[error(
        "no CUDA driver: libcuda.so could not be loaded; running on a GPU needs an NVIDIA GPU and its driver"
    )]
    NoDriver,
    /// The driver loaded, but `cuInit` failed: no GPU, or a driver that does not match its
    /// kernel module.
    #[error("the CUDA driver found no usable GPU: {}", describe(source))]
    NoDevice {
        /// The driver's answer.
        source: DriverError,
    },
    /// A driver call failed: creating the context, loading the PTX (which the driver
    /// compiles, so PTX the driver rejects shows up here), allocating, launching, copying.
    #[error("CUDA, {doing}: {}", describe(source))]
    Driver {
        /// What was being done, e.g. `launching kernel conv_3`.
        doing: String,
        /// The driver's answer.
        source: DriverError,
    },
    /// The input given to `run` or `time` is not as long as the plan's inputs together.
    #[error("the input has {got} floats; the network's inputs {shapes:?} take {expected}")]
    InputLength {
        /// Floats given.
        got: usize,
        /// Floats the plan's inputs take.
        expected: usize,
        /// The plan's input shapes.
        shapes: Vec<Vec<usize>>,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's answer.
        source: std::io::Error,
    },
    /// A file is there but is not what it should be: a launch plan that does not parse,
    /// weights of the wrong length, PTX text with a NUL byte, a path that does not end in
    /// `.ptx`.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// What `CudaModel::load` was given does not fit together: weights of another length
    /// than the plan's, PTX text or an entry name with a NUL byte.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Whether the error is in what was given (files, input) rather than in the GPU or its
    /// driver: command lines exit with a different status for each.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InputLength { .. } | Error::Io { .. } | Error::BadFile { .. } | Error::Invalid(_)
        )
    }
}

/// The driver's words for an error, and its name: `out of memory (CUDA_ERROR_OUT_OF_MEMORY)`.
fn describe(e: &DriverError) -> String {
    match e.error_string() {
        Ok(text) => format!("{} ({:?})", text.to_string_lossy(), e.0),
        Err(_) => format!("{:?}", e.0),
    }
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
