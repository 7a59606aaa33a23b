//! From a lowered module to files: LLVM optimizes it for a target and writes object code,
//! assembly or IR; the target's C compiler links objects with the runtime into shared
//! libraries and executables. One path serves the in-process JIT (a shared library loaded
//! with `libloading`, which unlike MCJIT honours the host CPU's features) and AOT builds.

use std::path::{Path, PathBuf};

use inkwell::OptimizationLevel;
use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target as LlvmTarget};

use crate::lower::Lowered;
use crate::runtime::{self, Glue};
use crate::target::Target;
use crate::{Error, llvm};

/// What LLVM writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleFile {
    /// An object file.
    Object,
    /// Assembly text.
    Assembly,
    /// Optimized LLVM IR text.
    LlvmIr,
}

/// Parses the lowered module, optionally embeds the weights as the global
/// `{symbol}_weights`, optimizes it at LLVM's `level` (0 to 3) for `target` and writes `file`
/// to `path`.
pub fn write_module(
    lowered: &Lowered,
    target: &Target,
    level: u8,
    embed_weights: Option<&str>,
    file: ModuleFile,
    path: &Path,
) -> Result<(), Error> {
    let weights = embed_weights.map(|symbol| (symbol, lowered.weights.as_slice()));
    write_ir(&lowered.ir, target, level, weights, file, path)
}

/// Like [`write_module`], for any module's IR text; `weights` embeds `(symbol, data)`.
pub fn write_ir(
    ir: &str,
    target: &Target,
    level: u8,
    weights: Option<(&str, &[f32])>,
    file: ModuleFile,
    path: &Path,
) -> Result<(), Error> {
    LlvmTarget::initialize_all(&InitializationConfig::default());
    let context = Context::create();
    let buffer = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "network");
    let module = context.create_module_from_ir(buffer).map_err(llvm)?;
    if let Some((symbol, weights)) = weights {
        let bytes: Vec<u8> = weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        let data = context.const_string(&bytes, false);
        let global = module.add_global(data.get_type(), None, &format!("{symbol}_weights"));
        global.set_initializer(&data);
        global.set_constant(true);
        global.set_alignment(64);
    }
    let triple = inkwell::targets::TargetTriple::create(&target.triple);
    let llvm_target = LlvmTarget::from_triple(&triple).map_err(llvm)?;
    let machine = llvm_target
        .create_target_machine(
            &triple,
            &target.cpu,
            &target.features,
            if level >= 3 { OptimizationLevel::Aggressive } else { OptimizationLevel::Default },
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| Error::Llvm(format!("no target machine for {}", target.triple)))?;
    module.set_triple(&triple);
    module.set_data_layout(&machine.get_target_data().get_data_layout());
    module.verify().map_err(llvm)?;
    module.run_passes(&format!("default<O{level}>"), &machine, PassBuilderOptions::create()).map_err(llvm)?;
    match file {
        ModuleFile::Object => machine.write_to_file(&module, FileType::Object, path).map_err(llvm),
        ModuleFile::Assembly => machine.write_to_file(&module, FileType::Assembly, path).map_err(llvm),
        ModuleFile::LlvmIr => module.print_to_file(path).map_err(llvm),
    }
}

/// What the C compiler makes of the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linked {
    /// A shared library.
    Shared,
    /// An executable.
    Executable,
    /// One relocatable object holding all the others (`ld -r`).
    Relocatable,
}

/// Links `objects` for `target` into `path`.
pub fn link(target: &Target, objects: &[PathBuf], linked: Linked, path: &Path) -> Result<(), Error> {
    runtime::run_c_compiler(target, |c| {
        match linked {
            Linked::Shared => c.arg("-shared"),
            Linked::Executable => c,
            Linked::Relocatable => c.args(["-r", "-nostdlib"]),
        };
        c.arg("-o").arg(path).args(objects);
        if linked != Linked::Relocatable {
            c.args(["-lm", "-pthread"]);
        }
    })
}

/// Compiles a lowered network with the runtime into a shared library at `dir/lib{symbol}.so`
/// (for loading into this process: no embedded weights, `{symbol}_forward` exported).
pub fn shared_library(
    lowered: &Lowered,
    target: &Target,
    level: u8,
    symbol: &str,
    dir: &Path,
) -> Result<PathBuf, Error> {
    let object = dir.join(format!("{symbol}.o"));
    write_module(lowered, target, level, None, ModuleFile::Object, &object)?;
    let mut objects = runtime::compile(dir, target, symbol, &Glue::Forward, false)?;
    objects.push(object);
    let library = dir.join(format!("lib{symbol}.so"));
    link(target, &objects, Linked::Shared, &library)?;
    Ok(library)
}

/// Runs binutils' `tool` (`ar`, `objcopy`) for `target` with `args`.
fn binutil(target: &Target, tool: &str, args: impl FnOnce(&mut std::process::Command)) -> Result<(), Error> {
    let program = match target.arch() {
        arch if arch == std::env::consts::ARCH => tool.to_string(),
        arch => format!("{arch}-linux-gnu-{tool}"),
    };
    let mut command = std::process::Command::new(&program);
    args(&mut command);
    let out = command.output().map_err(|e| Error::Link(format!("running {program}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Link(format!("{program}: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

/// Links `objects` into one relocatable object at `path` whose runtime symbols are local, so
/// that two networks' objects or static libraries link into one program, each with its own
/// thread pool.
pub fn self_contained_object(target: &Target, objects: &[PathBuf], path: &Path) -> Result<(), Error> {
    link(target, objects, Linked::Relocatable, path)?;
    binutil(target, "objcopy", |c| {
        c.arg("--localize-hidden").arg(path);
    })
}

/// Bundles `object` into the static library `path`.
pub fn archive(target: &Target, object: &Path, path: &Path) -> Result<(), Error> {
    binutil(target, "ar", |c| {
        c.arg("rcs").arg(path).arg(object);
    })
}
