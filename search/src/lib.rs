//! archc's architecture search: search spaces, strategies, measurement, training, the
//! journal and reports. Results are keyed by where they were measured, see [`fingerprint`];
//! every latency is taken by [`measure`]. [`guidelines`] reproduces the ShuffleNet V2 paper's
//! controlled experiments.
#![warn(missing_docs)]

mod fingerprint;
pub mod guidelines;
pub mod measure;

pub use fingerprint::{Fingerprint, fingerprint};
