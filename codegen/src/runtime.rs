//! archc's C runtime (thread pool, scratch memory, the `main` of executables) and the glue
//! that exports a network's C API, compiled with the target's C compiler and linked with the
//! network's object file.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::target::Target;

const RUNTIME_H: &str = include_str!("../runtime/runtime.h");
const RUNTIME_C: &str = include_str!("../runtime/runtime.c");
const SCRATCH_C: &str = include_str!("../runtime/scratch.c");
const MAIN_C: &str = include_str!("../runtime/main.c");

/// Flags for every C file: position independent (for shared libraries), every runtime
/// symbol hidden so that two networks in one process keep their own pools.
const CFLAGS: [&str; 5] = ["-std=c11", "-O2", "-fPIC", "-fvisibility=hidden", "-pthread"];

/// What the glue exports besides `{symbol}_set_threads`.
pub enum Glue<'a> {
    /// Nothing: the caller passes weights and arena to `{symbol}_forward` (in-process use).
    Forward,
    /// `int {symbol}_run(const float *in, float *out)` over weights embedded as the global
    /// `{symbol}_weights` (`weights_bytes` bytes), copied by the first run into memory backed by
    /// huge pages where the system has them, beside an arena of `arena_bytes`.
    Run { arena_bytes: usize, weights_bytes: usize, name: &'a str },
}

/// Writes the runtime's sources and the glue into `dir` and compiles them for `target`;
/// returns the object files. With `main`, the `main` of an executable is included, reading
/// `archc_net.h` (which the caller writes into `dir`).
pub fn compile(
    dir: &Path,
    target: &Target,
    symbol: &str,
    glue: &Glue<'_>,
    main: bool,
) -> Result<Vec<PathBuf>, Error> {
    let mut sources = vec![("runtime.c", RUNTIME_C.to_string()), ("scratch.c", SCRATCH_C.to_string())];
    sources.push(("glue.c", glue_source(symbol, glue)));
    if main {
        sources.push(("main.c", MAIN_C.to_string()));
    }
    std::fs::write(dir.join("runtime.h"), RUNTIME_H)?;
    let mut objects = Vec::new();
    for (name, text) in sources {
        let source = dir.join(name);
        let object = source.with_extension("o");
        // `main.c` reads the build's own `archc_net.h`; every other source depends only on its
        // text and runtime.h, so its object is compiled once per process and compiler.
        let key = (name != "main.c").then(|| (target.c_compiler(), text.clone()));
        let cached =
            key.as_ref().and_then(|k| OBJECTS.lock().unwrap_or_else(|e| e.into_inner()).get(k).cloned());
        match cached {
            Some(bytes) => std::fs::write(&object, bytes)?,
            None => {
                std::fs::write(&source, &text)?;
                run_c_compiler(target, |c| {
                    c.args(CFLAGS).arg("-I").arg(dir).arg("-c").arg(&source).arg("-o").arg(&object);
                })?;
                if let Some(key) = key {
                    let bytes = std::fs::read(&object)?;
                    OBJECTS.lock().unwrap_or_else(|e| e.into_inner()).insert(key, bytes);
                }
            }
        }
        objects.push(object);
    }
    Ok(objects)
}

/// Objects already compiled in this process, by (C compiler, source text): a search or a test
/// suite compiles hundreds of networks, each with the same runtime.
static OBJECTS: std::sync::Mutex<BTreeMap<(String, String), Vec<u8>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Runs the target's C compiler with the arguments `args` adds.
pub fn run_c_compiler(target: &Target, args: impl FnOnce(&mut Command)) -> Result<(), Error> {
    let compiler = target.c_compiler();
    let mut command = Command::new(&compiler);
    args(&mut command);
    let out = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Link(format!(
            "`{compiler}` is not installed; it links code for {} (on Debian: apt-get install {})",
            target.triple,
            if compiler == "cc" { "gcc".to_string() } else { format!("gcc-{}-linux-gnu", target.arch()) }
        )),
        _ => Error::Link(format!("running {compiler}: {e}")),
    })?;
    if !out.status.success() {
        return Err(Error::Link(format!("{compiler}: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

/// The C source exporting a network's API.
fn glue_source(symbol: &str, glue: &Glue<'_>) -> String {
    let mut c = String::from("/* Exports a compiled network's C API. */\n#include \"runtime.h\"\n\n");
    c.push_str("#define ARCHC_EXPORT __attribute__((visibility(\"default\")))\n\n");
    writeln!(c, "ARCHC_EXPORT void {symbol}_set_threads(int n) {{ archc_set_threads(n); }}\n")
        .expect("to a String");
    if let Glue::Run { arena_bytes, weights_bytes, name } = glue {
        writeln!(
            c,
            "#include <stdlib.h>\n#include <string.h>\n\n\
             extern const float {symbol}_weights[];\n\
             void {symbol}_forward(const float *in, float *out, const float *w, void *arena);\n\n\
             /* The activations of {name} and a copy of its weights, in memory that may be backed by\n\
                transparent huge pages, made on the first run and reused by every run. */\n\
             static float *weights;\nstatic void *arena;\n\n\
             __attribute__((destructor)) static void release(void) {{\n    free(weights);\n    free(arena);\n}}\n\n\
             ARCHC_EXPORT int {symbol}_run(const float *input, float *output) {{\n    \
             archc_lock();\n    \
             if (arena == NULL) {{\n        \
             weights = archc_huge_alloc({w});\n        \
             memcpy(weights, {symbol}_weights, {w});\n        \
             arena = archc_huge_alloc({a});\n    }}\n    \
             {symbol}_forward(input, output, weights, arena);\n    \
             archc_unlock();\n    return 0;\n}}",
            w = weights_bytes.max(&1),
            a = arena_bytes.max(&1)
        )
        .expect("to a String");
    }
    c
}
