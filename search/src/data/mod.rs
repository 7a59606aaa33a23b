//! Data sets for training and validating candidates: loading MNIST (IDX), CIFAR-10 (binary
//! batches), folders of PNG/JPEG images and generated data into memory, and serving them as
//! seeded, shuffled, augmented batches.
//!
//! ```no_run
//! use search::data::{Augment, Batches, DataSpec, Dataset, Split};
//! # fn main() -> search::Result<()> {
//! let spec: DataSpec = "mnist:data/mnist-2k".parse()?;
//! let (train, validation) = Dataset::load(&spec)?.split(Split::Last(400))?;
//! for epoch in 0..3 {
//!     for batch in Batches::new(&train, 64, 42, epoch, Augment::NONE).drop_last(true) {
//!         // batch.images: [64, 1, 28, 28], batch.labels: [64]
//!     }
//! }
//! for batch in Batches::sequential(&validation, 100) { /* ... */ }
//! # Ok(()) }
//! ```
//!
//! Everything random is fixed by a seed and independent of the machine (see [`permutation`]).
//! Malformed files are errors naming the file and the byte offset, never panics.

mod augment;
mod batches;
mod cifar;
mod dataset;
mod file;
mod folder;
pub mod idx;
mod mnist;
mod normalize;
mod rng;
mod spec;
mod split;
mod synthetic;

pub use augment::{Augment, shift_flip};
pub use batches::{Batch, Batches};
pub use dataset::Dataset;
pub use normalize::Normalization;
pub use rng::permutation;
pub use spec::DataSpec;
pub use split::Split;
pub use synthetic::{MAX_CLASSES, Synthetic};
