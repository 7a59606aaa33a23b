//! Ahead-of-time builds, `archc compile`'s outputs: standalone executables, C libraries
//! (static and shared, with a header), relocatable objects, assembly and LLVM IR, for the host
//! or a cross target. Weights are embedded. Files appear only when the whole build succeeded.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::build::{self, Linked, ModuleFile};
use crate::lower::{Lowered, lower};
use crate::runtime::{self, Glue};
use crate::target::Target;

/// What to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// A standalone executable: `OUT --input X.npy [--output Y.npy] [--top K] [--threads T] [--bench N]`.
    Exe,
    /// A folder with `lib<name>.a`, `lib<name>.so` and `<name>.h`.
    Lib,
    /// One relocatable object with the network, its weights and the runtime.
    Obj,
    /// Optimized LLVM IR of the network.
    LlvmIr,
    /// Assembly of the network.
    Asm,
}

/// How to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// The machine the code is for.
    pub target: Target,
    /// LLVM's optimization level, 0 to 3.
    pub llvm_level: u8,
    /// What to build.
    pub emit: Emit,
    /// Measured schedules of convolutions (`archc tune`); the rest take their defaults.
    pub schedules: crate::schedule::Schedules,
}

/// The C identifier a network's symbols start with: its name with every other character
/// replaced by `_`.
pub fn symbol_for(name: &str) -> String {
    let mut symbol: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if !symbol.starts_with(|c: char| c.is_ascii_alphabetic()) {
        symbol.insert(0, 'n');
    }
    symbol
}

/// Builds `graph` (with `weights`, placed by `plan`) as `options` say, into `out` (a file, or a
/// folder for [`Emit::Lib`]); returns the files written.
pub fn build(
    graph: &ir::Graph,
    weights: &ir::Weights,
    plan: &passes::plan::Plan,
    options: &Options,
    out: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let symbol = symbol_for(graph.name());
    let lowered = lower(graph, weights, plan, options.target.isa(), &options.schedules, &symbol)?;
    lowered.single_io()?;
    // Build beside the destination, so that moving the results into place is a rename.
    let parent = match out.parent() {
        _ if options.emit == Emit::Lib => out.to_path_buf(),
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let work = tempfile::Builder::new().prefix(".archc-build-").tempdir_in(&parent)?;
    let dir = work.path();
    let (target, level) = (&options.target, options.llvm_level);
    let module = |file, path: &Path| build::write_module(&lowered, target, level, Some(&symbol), file, path);
    let glue = Glue::Run {
        arena_bytes: lowered.arena_bytes,
        weights_bytes: lowered.weights.len() * 4,
        name: graph.name(),
    };
    let mut results: Vec<(PathBuf, PathBuf)> = Vec::new();
    match options.emit {
        Emit::LlvmIr | Emit::Asm => {
            let file = if options.emit == Emit::Asm { ModuleFile::Assembly } else { ModuleFile::LlvmIr };
            module(file, &dir.join("module"))?;
            results.push((dir.join("module"), out.to_path_buf()));
        }
        Emit::Obj | Emit::Exe => {
            let object = dir.join("network.o");
            module(ModuleFile::Object, &object)?;
            let exe = options.emit == Emit::Exe;
            if exe {
                std::fs::write(dir.join("archc_net.h"), main_config(&symbol, graph.name(), &lowered))?;
            }
            let mut objects = runtime::compile(dir, target, &symbol, &glue, exe)?;
            objects.push(object);
            let linked = dir.join("linked");
            if exe {
                build::link(target, &objects, Linked::Executable, &linked)?;
            } else {
                build::self_contained_object(target, &objects, &linked)?;
            }
            results.push((linked, out.to_path_buf()));
        }
        Emit::Lib => {
            let object = dir.join("network.o");
            module(ModuleFile::Object, &object)?;
            let mut objects = runtime::compile(dir, target, &symbol, &glue, false)?;
            objects.push(object);
            let combined = dir.join("combined.o");
            build::self_contained_object(target, &objects, &combined)?;
            let (shared, archive, header) =
                (format!("lib{symbol}.so"), format!("lib{symbol}.a"), format!("{symbol}.h"));
            build::link(target, std::slice::from_ref(&combined), Linked::Shared, &dir.join(&shared))?;
            build::archive(target, &combined, &dir.join(&archive))?;
            std::fs::write(dir.join(&header), header_text(&symbol, graph.name(), &lowered))?;
            for name in [shared, archive, header] {
                results.push((dir.join(&name), out.join(&name)));
            }
        }
    }
    for (from, to) in &results {
        std::fs::rename(from, to)?;
    }
    Ok(results.into_iter().map(|(_, to)| to).collect())
}

fn shape_list(shape: &[usize]) -> String {
    shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// `archc_net.h`, which the executable's `main` reads.
fn main_config(symbol: &str, name: &str, lowered: &Lowered) -> String {
    let (input, output) = lowered.single_io().expect("checked when lowered");
    format!(
        "#define ARCHC_NAME \"{name}\"\n#define ARCHC_RUN {symbol}_run\n#define ARCHC_SET_THREADS {symbol}_set_threads\n\
         #define ARCHC_INPUT_RANK {}\n#define ARCHC_INPUT_SHAPE {{{}}}\n\
         #define ARCHC_OUTPUT_RANK {}\n#define ARCHC_OUTPUT_SHAPE {{{}}}\n",
        input.len(),
        shape_list(input),
        output.len(),
        shape_list(output),
    )
}

/// The C header of a library.
fn header_text(symbol: &str, name: &str, lowered: &Lowered) -> String {
    let (input, output) = lowered.single_io().expect("checked when lowered");
    let upper = symbol.to_ascii_uppercase();
    let mut h = String::new();
    let _ = write!(
        h,
        "/* {name}, compiled by archc {version}: a neural network as a C function.\n\
         \n\
         Input:  float32, NCHW, shape [{input}], {upper}_INPUT_ELEMS floats.\n\
         Output: float32, shape [{output}], {upper}_OUTPUT_ELEMS floats.\n\
         The batch size is fixed at compile time (archc compile --batch). The weights are inside the library;\n\
         the first run copies them, beside the activations, into memory backed by huge pages where the\n\
         system allows (Linux's transparent huge pages): fewer TLB misses when they stream from memory.\n\
         \n\
         Threads: {symbol}_run uses the number of threads set by {symbol}_set_threads (default 1: no\n\
         thread is ever created). Concurrent calls to {symbol}_run are safe: they share one activation\n\
         arena and are serialized (one runs at a time). Link with -lm -pthread. */\n\
         #ifndef {upper}_H\n#define {upper}_H\n\n\
         #ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n\
         #define {upper}_INPUT_ELEMS {in_elems}\n#define {upper}_OUTPUT_ELEMS {out_elems}\n\n\
         /* Runs the network on `input` ({upper}_INPUT_ELEMS floats) and writes `output`\n   \
         ({upper}_OUTPUT_ELEMS floats). Returns 0 on success. */\n\
         int {symbol}_run(const float *input, float *output);\n\n\
         /* Sets the number of threads runs use, the caller's included; n < 1 means 1. Call it between runs. */\n\
         void {symbol}_set_threads(int n);\n\n\
         #ifdef __cplusplus\n}}\n#endif\n\n#endif\n",
        version = env!("CARGO_PKG_VERSION"),
        input = shape_list(input),
        output = shape_list(output),
        in_elems = input.iter().product::<usize>(),
        out_elems = output.iter().product::<usize>(),
    );
    h
}
