//! How a GPU kernel is written once and lowered twice: for the device (NVPTX: one thread per
//! hardware thread, `bar.sync` between phases) and for the host as an emulated grid (each
//! block a task of the CPU thread pool, each phase a loop over the block's threads).
//!
//! A kernel body is block-level code: uniform values (the block index, counters of loops
//! every thread runs alike) and phases, [`Block::threads`], whose code runs on every thread.
//! Phases are separated by barriers, so a phase sees everything earlier phases wrote to
//! shared memory. Values live within one phase; what a thread carries across phases (GEMM
//! accumulators) lives in [`Private`] storage. The emulation honours barriers by
//! construction: one phase finishes on every thread before the next starts.

use crate::emit::Function;

/// Which code a kernel lowers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// NVPTX for an NVIDIA GPU.
    Device,
    /// Host code that runs the grid block by block.
    Emulated,
}

/// A kernel's launch shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Blocks (one-dimensional).
    pub blocks: usize,
    /// Threads per block.
    pub threads: usize,
    /// Floats of shared memory per block.
    pub shared_floats: usize,
}

/// The block-level writer of one kernel body.
pub struct Block<'f> {
    /// The function being written.
    pub f: &'f mut Function,
    dialect: Dialect,
    threads: usize,
    /// The block index, an `i64` register.
    pub id: String,
    /// The block's shared memory (floats), a pointer register.
    pub shared: String,
    /// On the device, the thread index register.
    thread: String,
    phases: usize,
}

/// Per-thread storage of some floats that lives across phases.
#[derive(Clone, Debug)]
pub struct Private {
    base: String,
    floats: usize,
    dialect: Dialect,
}

impl Private {
    /// The address of float `index` (a constant or `i64` register) of `thread`'s storage.
    pub fn at(&self, f: &mut Function, thread: &str, index: impl std::fmt::Display) -> String {
        match self.dialect {
            Dialect::Device => f.float_at(&self.base, &index.to_string()),
            Dialect::Emulated => {
                let row = f.int("mul", thread, self.floats);
                let at = f.int("add", &row, index);
                f.float_at(&self.base, &at)
            }
        }
    }
}

impl<'f> Block<'f> {
    /// A writer over `f` for a block of `threads` threads; `id`, `thread` and `shared` are the
    /// registers of the block index, the thread index (device only) and shared memory.
    pub fn new(
        f: &'f mut Function,
        dialect: Dialect,
        threads: usize,
        id: &str,
        thread: &str,
        shared: &str,
    ) -> Self {
        Block { f, dialect, threads, id: id.into(), shared: shared.into(), thread: thread.into(), phases: 0 }
    }

    /// A phase: `body(f, thread)` runs on every thread of the block, after every earlier
    /// phase has finished on all of them.
    pub fn threads(&mut self, body: impl FnOnce(&mut Function, &str)) {
        match self.dialect {
            Dialect::Device => {
                // A barrier before every phase but the first: inside a uniform loop this also
                // separates one iteration's last phase from the next one's first.
                if self.phases > 0 {
                    self.f.line("call void @llvm.nvvm.barrier0()");
                }
                body(self.f, &self.thread);
            }
            Dialect::Emulated => self.f.count(self.threads, body),
        }
        self.phases += 1;
    }

    /// `body(block, i)` for `i` in `0..count`, run alike by every thread, so that its phases
    /// may hold barriers.
    pub fn repeat(&mut self, count: usize, body: impl FnOnce(&mut Block<'_>, &str)) {
        let (dialect, threads, id, shared, thread) =
            (self.dialect, self.threads, self.id.clone(), self.shared.clone(), self.thread.clone());
        let mut phases = self.phases;
        self.f.count(count, |f, i| {
            let mut inner = Block { f, dialect, threads, id, shared, thread, phases };
            body(&mut inner, i);
            phases = inner.phases;
        });
        self.phases = phases;
    }

    /// Storage of `floats` floats for each thread, for values that outlive a phase.
    pub fn private(&mut self, floats: usize) -> Private {
        let count = match self.dialect {
            Dialect::Device => floats,
            Dialect::Emulated => floats * self.threads,
        };
        Private { base: self.f.stack_floats(count), floats, dialect: self.dialect }
    }
}
