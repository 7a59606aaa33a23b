//! The launch plan: what a host does to run a PTX module's network.

use serde::{Deserialize, Serialize};

/// A device buffer every kernel takes a pointer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Buffer {
    /// The network's inputs, NCHW f32, one after the other.
    Input,
    /// The network's outputs, one after the other.
    Output,
    /// The weights blob.
    Weights,
    /// The activation arena, `arena_bytes` long (no initial contents needed).
    Arena,
}

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// The `.entry` symbol in the PTX module.
    pub entry: String,
    /// The graph node it computes (its fused epilogues included), or `input` / `output`.
    pub node: String,
    /// The op, as printed, with `+relu` etc. for fused epilogues.
    pub op: String,
    /// Blocks in the grid (one-dimensional).
    pub blocks: u32,
    /// Threads per block (one-dimensional).
    pub threads: u32,
    /// Bytes of static shared memory per block.
    pub shared_bytes: u32,
    /// Multiply-adds.
    pub macs: u64,
    /// Byte offset in the arena of the buffer it writes (none for the copy to the output).
    pub arena_offset: Option<u64>,
}

/// How to run a network's PTX module: launch `kernels` in order, on one stream, each with
/// the device pointers of `parameters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// The network's name.
    pub network: String,
    /// The GPU architecture the PTX targets, e.g. `sm_80`.
    pub arch: String,
    /// Every kernel's parameters, in order.
    pub parameters: Vec<Buffer>,
    /// Bytes of the activation arena.
    pub arena_bytes: u64,
    /// Floats in the weights blob.
    pub weight_floats: u64,
    /// The inputs' shapes (NCHW, the batch included), in the order the input buffer holds them.
    pub inputs: Vec<Vec<usize>>,
    /// The outputs' shapes, in the order the output buffer holds them.
    pub outputs: Vec<Vec<usize>>,
    /// The launches, in order.
    pub kernels: Vec<Launch>,
}

impl LaunchPlan {
    /// Multiply-adds of one run.
    pub fn macs(&self) -> u64 {
        self.kernels.iter().map(|k| k.macs).sum()
    }
}
