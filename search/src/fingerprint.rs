//! The identity of a measurement's conditions: the compiler version and the device. A latency
//! measured on one machine says nothing about another, so cached results are keyed by it.

use std::fmt;

/// Which compiler measured on which device.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// archc's version.
    pub compiler: String,
    /// The LLVM version archc compiles with.
    pub llvm: String,
    /// The host's target triple and CPU model, e.g. `x86_64-pc-linux-gnu/znver4`.
    pub device: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "archc {} (LLVM {}) on {} x{}", self.compiler, self.llvm, self.device, self.cpus)
    }
}

/// The fingerprint of this process on this machine.
pub fn fingerprint() -> Fingerprint {
    let host = codegen::host_target();
    Fingerprint {
        compiler: env!("CARGO_PKG_VERSION").to_string(),
        llvm: host.llvm_version,
        device: format!("{}/{}", host.triple, host.cpu),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_within_a_process() {
        let a = fingerprint();
        assert_eq!(a, fingerprint());
        assert!(a.cpus >= 1);
        assert!(a.to_string().contains(&a.device));
    }
}
