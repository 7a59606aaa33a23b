//! archc's graph IR: a closed set of tensor ops over static NCHW shapes, the RON network
//! language that builds graphs, shape inference, verification, cost metrics and printing.
#![warn(missing_docs)]

mod error;
pub mod eval;
pub mod front;
mod graph;
mod infer;
pub mod metrics;
mod op;
pub mod print;
mod seeded;
mod shape;
mod tensor;
#[cfg(feature = "testing")]
pub mod testing;
mod train_op;
mod verify;
pub mod weights;

pub use error::{Error, Location, Result};
pub use front::{BuildOptions, from_ron_file, from_ron_str};
pub use graph::{Graph, Node, NodeId, Value};
pub use infer::infer;
pub use op::{Activation, Conv, Float, Op, ParamSpec, Pool, ranges};
pub use shape::Shape;
pub use tensor::Tensor;
pub use train_op::{ParamKind, Sgd, TrainOp};
pub use verify::verify;
pub use weights::Weights;
