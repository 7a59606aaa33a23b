//! archc's architecture search: search spaces, strategies, measurement, training, the
//! journal and reports. Results are keyed by where they were measured, see [`fingerprint`];
//! training data comes from [`data`].
#![warn(missing_docs)]

pub mod data;
mod error;
mod fingerprint;

pub use error::{Error, Result};
pub use fingerprint::{Fingerprint, fingerprint};
