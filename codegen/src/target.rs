//! What code is compiled for: a target triple, CPU model and features, and the vector shape
//! (SIMD width, GEMM register tile) that the kernels take from them.

use inkwell::targets::{InitializationConfig, Target as LlvmTarget, TargetMachine};

use crate::Error;

/// A machine code can be compiled for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The LLVM target triple, e.g. `x86_64-pc-linux-gnu`.
    pub triple: String,
    /// The CPU model, e.g. `znver4`.
    pub cpu: String,
    /// The CPU features, comma-separated `+feature` / `-feature` flags.
    pub features: String,
}

/// The names `--target` accepts.
pub const TARGET_NAMES: [&str; 3] = ["host", "x86_64-linux-gnu", "aarch64-linux-gnu"];

impl Target {
    /// The machine archc runs on, with all its CPU features.
    pub fn host() -> Target {
        LlvmTarget::initialize_native(&InitializationConfig::default())
            .expect("LLVM supports the machine it was built for");
        Target {
            triple: TargetMachine::get_default_triple().as_str().to_string_lossy().into_owned(),
            cpu: TargetMachine::get_host_cpu_name().to_string(),
            features: TargetMachine::get_host_cpu_features().to_string(),
        }
    }

    /// A target by its `--target` name: `host`, `x86_64-linux-gnu` (any x86-64 CPU with AVX2
    /// and FMA, i.e. `x86-64-v3`) or `aarch64-linux-gnu` (ARMv8-A with NEON).
    pub fn named(name: &str) -> Result<Target, Error> {
        let (triple, cpu, features) = match name {
            "host" => return Ok(Target::host()),
            "x86_64-linux-gnu" => ("x86_64-pc-linux-gnu", "x86-64-v3", "+avx2,+fma"),
            "aarch64-linux-gnu" => ("aarch64-unknown-linux-gnu", "generic", "+neon"),
            other => {
                return Err(Error::Unsupported(format!(
                    "target `{other}`; known targets: {}",
                    TARGET_NAMES.join(", ")
                )));
            }
        };
        Ok(Target { triple: triple.into(), cpu: cpu.into(), features: features.into() })
    }

    /// The target with another CPU model: for x86-64, one of the micro-architecture levels
    /// `x86-64-v2` (SSE4.2), `x86-64-v3` (AVX2, FMA) or `x86-64-v4` (AVX-512), so that code
    /// for a machine with AVX-512 can be built on one without.
    pub fn with_cpu(mut self, cpu: &str) -> Result<Target, Error> {
        let features = match (self.arch(), cpu) {
            ("x86_64", "x86-64-v2") => "+sse4.2,+popcnt",
            ("x86_64", "x86-64-v3") => "+avx2,+fma",
            ("x86_64", "x86-64-v4") => "+avx2,+fma,+avx512f,+avx512bw,+avx512dq,+avx512vl",
            (arch, _) => {
                return Err(Error::Unsupported(format!(
                    "CPU `{cpu}` for {arch}; known: x86-64-v2, x86-64-v3, x86-64-v4 (x86_64 targets)"
                )));
            }
        };
        self.cpu = cpu.into();
        self.features = features.into();
        Ok(self)
    }

    /// Whether the target has a CPU feature, such as `avx512f` or `neon`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.split(',').any(|f| f.strip_prefix('+') == Some(feature))
    }

    /// Whether code for this target runs on this machine.
    pub fn runs_here(&self) -> bool {
        let host = Target::host();
        self.arch() == host.arch()
            && self.features.split(',').filter_map(|f| f.strip_prefix('+')).all(|f| host.has_feature(f))
    }

    /// The architecture, the triple's first part (`x86_64`, `aarch64`).
    pub fn arch(&self) -> &str {
        self.triple.split('-').next().unwrap_or("")
    }

    /// The vector shape kernels are written for on this target.
    pub fn isa(&self) -> Isa {
        if self.has_feature("avx512f") {
            // 27 accumulators, 3 pixel vectors and a broadcast: `archc tune`'s most frequent
            // one-thread choice on an AVX-512 Xeon (50 of 107 MobileNet V2 and ShuffleNet V2
            // kernels; 12x2, 18).
            Isa { lanes: 16, registers: 32, tile_rows: 9, tile_vectors: 3 }
        } else if self.has_feature("avx2") {
            Isa { lanes: 8, registers: 16, tile_rows: 6, tile_vectors: 2 }
        } else if self.arch() == "aarch64" {
            // 32 NEON registers: 16 accumulators, 2 input vectors and broadcasts fit.
            Isa { lanes: 4, registers: 32, tile_rows: 8, tile_vectors: 2 }
        } else {
            Isa { lanes: 4, registers: 16, tile_rows: 4, tile_vectors: 2 }
        }
    }

    /// The C compiler that links code for this target.
    pub fn c_compiler(&self) -> String {
        match self.arch() {
            arch if arch == std::env::consts::ARCH => "cc".into(),
            arch => format!("{arch}-linux-gnu-gcc"),
        }
    }
}

/// The vector shape of generated kernels: SIMD width and the register tile of the GEMM
/// micro-kernel (`tile_rows` output channels by `tile_vectors` vectors of pixels, all in
/// registers while the reduction runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa {
    /// Floats per vector register.
    pub lanes: usize,
    /// Vector registers.
    pub registers: usize,
    /// Output channels per micro-tile.
    pub tile_rows: usize,
    /// Vectors of pixels per micro-tile.
    pub tile_vectors: usize,
}

impl Isa {
    /// Pixels per micro-tile.
    pub fn tile_cols(self) -> usize {
        self.lanes * self.tile_vectors
    }
}

/// The host as LLVM sees it, for fingerprints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTarget {
    /// The target triple, e.g. `x86_64-pc-linux-gnu`.
    pub triple: String,
    /// The CPU model, e.g. `znver4`.
    pub cpu: String,
    /// The CPU features, comma-separated `+feature` / `-feature` flags.
    pub features: String,
    /// The LLVM version archc was built against, e.g. `19.1`.
    pub llvm_version: String,
}

/// Asks LLVM about the host. Cheap; initializes LLVM's native target on first use.
pub fn host_target() -> HostTarget {
    let host = Target::host();
    let (major, minor, _) = inkwell::support::get_llvm_version();
    HostTarget {
        triple: host.triple,
        cpu: host.cpu,
        features: host.features,
        llvm_version: format!("{major}.{minor}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let host = host_target();
        assert!(host.triple.starts_with(std::env::consts::ARCH), "{host:?}");
        assert!(host.llvm_version.starts_with("19."), "{host:?}");
        assert!(!host.cpu.is_empty());
        let target = Target::host();
        if cfg!(target_arch = "x86_64") {
            assert!(target.has_feature("sse2"), "{target:?}");
        }
        assert!(!target.has_feature("no-such-feature"));
        assert!(target.runs_here());
    }

    #[test]
    fn named_targets_pick_their_vector_shape() {
        let arm = Target::named("aarch64-linux-gnu").unwrap();
        assert_eq!((arm.isa().lanes, arm.c_compiler().as_str()), (4, "aarch64-linux-gnu-gcc"));
        assert_eq!(Target::named("x86_64-linux-gnu").unwrap().isa().lanes, 8);
        let v4 = Target::named("x86_64-linux-gnu").unwrap().with_cpu("x86-64-v4").unwrap();
        assert_eq!((v4.isa().lanes, v4.isa().tile_rows, v4.isa().tile_vectors), (16, 9, 3));
        assert!(arm.with_cpu("x86-64-v4").is_err());
        let err = Target::named("riscv").unwrap_err().to_string();
        assert!(err.contains("aarch64-linux-gnu"), "{err}");
    }
}
