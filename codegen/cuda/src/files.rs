//! A compiled network on disk: `NAME.ptx`, `NAME.launch.json` and `NAME.weights` side by side.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, LaunchPlan, Result};

/// A network compiled for NVIDIA GPUs, in memory: what its three files hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Files {
    /// The PTX module's text.
    pub ptx: String,
    /// How to launch its kernels.
    pub plan: LaunchPlan,
    /// The weights blob, `plan.weight_floats` long.
    pub weights: Vec<f32>,
}

/// Where the files of the network whose PTX is at `ptx` lie: `[ptx, plan, weights]`.
/// Errs unless `ptx` ends in `.ptx`, so that a slip of the hand cannot make the plan or
/// weights path land on an unrelated file.
pub fn paths(ptx: &Path) -> Result<[PathBuf; 3]> {
    if ptx.extension().is_none_or(|e| e != "ptx") {
        return Err(bad(ptx, "expected the path of a .ptx file"));
    }
    Ok([ptx.to_path_buf(), ptx.with_extension("launch.json"), ptx.with_extension("weights")])
}

impl Files {
    /// Writes the three files next to each other, each through a temporary file in the
    /// same folder renamed over the target, so that no reader sees half a file. The PTX
    /// goes last: a reader that finds it finds the others complete.
    pub fn write(&self, ptx: &Path) -> Result<()> {
        let [ptx, plan, weights] = paths(ptx)?;
        let weight_bytes: Vec<u8> = self.weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut json = serde_json::to_string_pretty(&self.plan).expect("a launch plan serializes");
        json.push('\n');
        write_atomically(&weights, &weight_bytes)?;
        write_atomically(&plan, json.as_bytes())?;
        write_atomically(&ptx, self.ptx.as_bytes())
    }

    /// Reads and checks the three files of the network whose PTX is at `ptx`.
    pub fn read(ptx: &Path) -> Result<Files> {
        let (mut files, weights) = read_ptx_and_plan(ptx)?;
        files.weights = read_weights(&weights, files.plan.weight_floats)?;
        Ok(files)
    }

    /// Like `read`, but zeros stand in for the weights when their file is absent: a kernel
    /// takes as long on zeros as on trained weights, so a benchmark needs only the PTX and
    /// the plan.
    pub fn read_for_timing(ptx: &Path) -> Result<Files> {
        let (mut files, weights) = read_ptx_and_plan(ptx)?;
        files.weights = if weights.exists() {
            read_weights(&weights, files.plan.weight_floats)?
        } else {
            vec![0.0; float_count(&weights, files.plan.weight_floats)?]
        };
        Ok(files)
    }
}

/// Reads the PTX and the plan, and says where the weights are; `weights` is left empty.
fn read_ptx_and_plan(ptx: &Path) -> Result<(Files, PathBuf)> {
    let [ptx, plan, weights] = paths(ptx)?;
    let text = String::from_utf8(read(&ptx)?).map_err(|_| bad(&ptx, "not PTX text: it is not UTF-8"))?;
    if text.contains('\0') {
        return Err(bad(&ptx, "not PTX text: it holds a NUL byte"));
    }
    let plan_value =
        serde_json::from_slice(&read(&plan)?).map_err(|e| bad(&plan, &format!("not a launch plan: {e}")))?;
    Ok((Files { ptx: text, plan: plan_value, weights: Vec::new() }, weights))
}

/// Reads a weights file of `floats` little-endian f32.
fn read_weights(path: &Path, floats: u64) -> Result<Vec<f32>> {
    let bytes = read(path)?;
    let expected = float_count(path, floats)?;
    if bytes.len() != expected * 4 {
        let message = format!(
            "{} bytes, expected {} ({floats} floats, as the launch plan says)",
            bytes.len(),
            expected * 4
        );
        return Err(bad(path, &message));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The plan's float count as a length this machine can hold.
fn float_count(path: &Path, floats: u64) -> Result<usize> {
    usize::try_from(floats)
        .ok()
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| bad(path, &format!("the launch plan's {floats} weight floats do not fit in memory")))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Readable by all, as a file written in place would be (a temporary file is private).
    let readable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
    let mut tmp = tempfile::Builder::new().permissions(readable).tempfile_in(folder).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    // The temporary file is deleted if anything above or the rename fails.
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn bad(path: &Path, message: &str) -> Error {
    Error::BadFile { path: path.to_path_buf(), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Buffer, Launch};

    fn example() -> Files {
        let kernel = Launch {
            entry: "conv_0".into(),
            node: "conv0".into(),
            op: "conv+relu".into(),
            blocks: 8,
            threads: 128,
            shared_bytes: 4096,
            macs: 1000,
            arena_offset: Some(256),
        };
        let plan = LaunchPlan {
            network: "tiny".into(),
            arch: "sm_90".into(),
            parameters: vec![Buffer::Input, Buffer::Output, Buffer::Weights, Buffer::Arena],
            arena_bytes: 256,
            weight_floats: 3,
            inputs: vec![vec![1, 3, 4, 4]],
            outputs: vec![vec![1, 10]],
            kernels: vec![kernel],
        };
        Files { ptx: ".version 7.8\n.target sm_90\n".into(), plan, weights: vec![1.5, -2.0, 0.25] }
    }

    /// Writes `example()` into a fresh folder and returns it with its three paths.
    fn written() -> (tempfile::TempDir, [PathBuf; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let ptx = dir.path().join("tiny.ptx");
        example().write(&ptx).unwrap();
        let paths = paths(&ptx).unwrap();
        (dir, paths)
    }

    /// The names of the files in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn read_error(ptx: &Path) -> String {
        Files::read(ptx).unwrap_err().to_string()
    }

    #[test]
    fn round_trips_and_leaves_no_temporary_files() {
        let (dir, [ptx, plan, weights]) = written();
        assert_eq!(Files::read(&ptx).unwrap(), example());
        assert_eq!(std::fs::read(&weights).unwrap().len(), 12);
        assert!(std::fs::read_to_string(&plan).unwrap().contains("\n  \"network\": \"tiny\""));
        assert_eq!(names(dir.path()), ["tiny.launch.json", "tiny.ptx", "tiny.weights"]);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let ptx = dir.path().join("tiny.ptx");
        // A folder where the PTX should go: the rename over it fails.
        std::fs::create_dir(&ptx).unwrap();
        let err = example().write(&ptx).unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if *path == ptx), "{err}");
        assert_eq!(names(dir.path()), ["tiny.launch.json", "tiny.ptx", "tiny.weights"]);
    }

    #[test]
    fn truncated_weights_are_named() {
        let (_dir, [ptx, _, weights]) = written();
        std::fs::write(&weights, [0u8; 10]).unwrap();
        let message = read_error(&ptx);
        assert!(message.starts_with(&weights.display().to_string()), "{message}");
        assert!(message.contains("10 bytes, expected 12 (3 floats"), "{message}");
    }

    #[test]
    fn bad_json_is_named() {
        let (_dir, [ptx, plan, _]) = written();
        std::fs::write(&plan, "{\"network\": \"tiny\"").unwrap();
        let message = read_error(&ptx);
        assert!(message.starts_with(&format!("{}: not a launch plan", plan.display())), "{message}");
    }

    #[test]
    fn missing_files_are_named() {
        let (_dir, [ptx, plan, weights]) = written();
        std::fs::remove_file(&weights).unwrap();
        assert!(read_error(&ptx).starts_with(&weights.display().to_string()));
        std::fs::remove_file(&plan).unwrap();
        assert!(read_error(&ptx).starts_with(&plan.display().to_string()));
        std::fs::remove_file(&ptx).unwrap();
        let err = Files::read(&ptx).unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if *path == ptx), "{err}");
    }

    #[test]
    fn timing_reads_zeros_for_absent_weights_only() {
        let (_dir, [ptx, _, weights]) = written();
        std::fs::remove_file(&weights).unwrap();
        assert_eq!(Files::read_for_timing(&ptx).unwrap().weights, [0.0; 3]);
        std::fs::write(&weights, [0u8; 8]).unwrap();
        assert!(Files::read_for_timing(&ptx).unwrap_err().to_string().contains("8 bytes, expected 12"));
    }

    #[test]
    fn nul_in_ptx_and_other_extensions_are_refused() {
        let (dir, [ptx, plan, _]) = written();
        std::fs::write(&ptx, ".version 7.8\0").unwrap();
        assert!(read_error(&ptx).ends_with("not PTX text: it holds a NUL byte"));
        let message = example().write(&plan).unwrap_err().to_string();
        assert!(message.ends_with("expected the path of a .ptx file"), "{message}");
        assert!(!dir.path().join("tiny.launch.launch.json").exists());
    }
}
