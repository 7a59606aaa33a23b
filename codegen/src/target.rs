//! What LLVM knows of the machine it runs on: the target triple, CPU model and features that
//! host code is compiled for.

use inkwell::targets::{InitializationConfig, Target, TargetMachine};

/// The host as LLVM sees it.
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

impl HostTarget {
    /// Whether the host has a CPU feature, such as `avx512f` or `neon`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.split(',').any(|f| f.strip_prefix('+') == Some(feature))
    }
}

/// Asks LLVM about the host. Cheap; initializes LLVM's native target on first use.
pub fn host_target() -> HostTarget {
    Target::initialize_native(&InitializationConfig::default())
        .expect("LLVM supports the machine it was built for");
    let (major, minor, _) = inkwell::support::get_llvm_version();
    HostTarget {
        triple: TargetMachine::get_default_triple().as_str().to_string_lossy().into_owned(),
        cpu: TargetMachine::get_host_cpu_name().to_string(),
        features: TargetMachine::get_host_cpu_features().to_string(),
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
        if cfg!(target_arch = "x86_64") {
            assert!(host.has_feature("sse2"), "{host:?}");
        }
        assert!(!host.has_feature("no-such-feature"));
    }
}
