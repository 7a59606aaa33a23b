//! archc's architecture search: search spaces, strategies, measurement, training, the
//! journal and reports. Results are keyed by where they were measured, see [`fingerprint`];
//! training data comes from [`data`]; every latency is taken by [`measure`]. [`guidelines`]
//! reproduces the ShuffleNet V2 paper's controlled experiments. A [`space::Space`] is a network
//! template with choice points, read from `zoo/spaces/*.ron`; [`strategy`] proposes candidates
//! from it and holds the Pareto utilities; [`driver`] runs the search loop.
#![warn(missing_docs)]

pub mod candidate;
pub mod data;
pub mod driver;
mod error;
pub mod evaluate;
mod fingerprint;
pub mod guidelines;
pub mod journal;
pub mod measure;
pub mod proxies;
pub mod ray;
pub mod report;
mod schedule;
pub mod space;
pub mod strategy;
pub mod train;
pub mod worker;

pub use error::{Error, Result};
pub use fingerprint::{Fingerprint, fingerprint};
pub use schedule::Schedule;
