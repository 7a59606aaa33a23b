//! Compiling a lowered module to machine code and loading it into the process.
//!
//! One path serves JIT and AOT: LLVM writes an object file for the host, `cc` links it into a
//! shared library, and `libloading` opens it. Unlike MCJIT, this honours the host CPU's
//! features without per-function attributes, and the object can be kept for AOT builds.

use std::path::Path;
use std::process::Command;

use inkwell::OptimizationLevel;
use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine};

use crate::Error;

/// The entry point's type: `(input, output, weights, arena)`.
pub type Entry = unsafe extern "C" fn(*const f32, *mut f32, *const f32, *mut u8);

/// Parses `ir`, optimizes it at LLVM's `level` (0 to 3) for the host CPU and writes an object
/// file to `path`.
pub fn write_object(ir: &str, name: &str, level: u8, path: &Path) -> Result<(), Error> {
    Target::initialize_native(&InitializationConfig::default()).map_err(Error::Llvm)?;
    let context = Context::create();
    let buffer = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), name);
    let module = context.create_module_from_ir(buffer).map_err(|e| Error::Llvm(e.to_string()))?;
    let triple = TargetMachine::get_default_triple();
    let target = Target::from_triple(&triple).map_err(|e| Error::Llvm(e.to_string()))?;
    let machine = target
        .create_target_machine(
            &triple,
            TargetMachine::get_host_cpu_name().to_str().unwrap_or("generic"),
            TargetMachine::get_host_cpu_features().to_str().unwrap_or(""),
            if level >= 3 { OptimizationLevel::Aggressive } else { OptimizationLevel::Default },
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| Error::Llvm(format!("no target machine for {}", triple.as_str().to_string_lossy())))?;
    module.verify().map_err(|e| Error::Llvm(e.to_string()))?;
    module
        .run_passes(&format!("default<O{}>", level), &machine, PassBuilderOptions::create())
        .map_err(|e| Error::Llvm(e.to_string()))?;
    machine.write_to_file(&module, FileType::Object, path).map_err(|e| Error::Llvm(e.to_string()))
}

/// Links an object into a shared library with the system C compiler.
pub fn link_shared(object: &Path, library: &Path) -> Result<(), Error> {
    let out = Command::new("cc")
        .arg("-shared")
        .arg("-o")
        .arg(library)
        .arg(object)
        .output()
        .map_err(|e| Error::Link(format!("running cc: {e}")))?;
    if !out.status.success() {
        return Err(Error::Link(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(())
}
