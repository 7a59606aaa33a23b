//! archc's architecture search: search spaces, strategies, measurement, training, the
//! journal and reports. Results are keyed by where they were measured, see [`fingerprint`].
#![warn(missing_docs)]

mod fingerprint;

pub use fingerprint::{Fingerprint, fingerprint};
