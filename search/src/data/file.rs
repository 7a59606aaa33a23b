//! A data file read whole into memory, gunzipped when its first bytes are the gzip magic
//! (never judged by its name), with errors that name the file and the byte offset.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The two bytes every gzip stream starts with (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes of one data file, decompressed.
pub(crate) struct DataFile {
    /// The path as shown in errors.
    pub name: String,
    /// The (decompressed) contents.
    pub bytes: Vec<u8>,
}

impl DataFile {
    /// Reads `path`, gunzipping it if it is gzipped.
    pub fn read(path: &Path) -> Result<DataFile> {
        let name = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| Error::Io { path: name.clone(), source })?;
        DataFile::from_bytes(name, raw)
    }

    /// Takes the contents of a file named `name`, gunzipping them if they are gzipped.
    pub fn from_bytes(name: String, raw: Vec<u8>) -> Result<DataFile> {
        if !raw.starts_with(&GZIP_MAGIC) {
            return Ok(DataFile { name, bytes: raw });
        }
        let mut bytes = Vec::new();
        // On error, `read_to_end` keeps what was decompressed so far, which is where it broke.
        match flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut bytes) {
            Ok(_) => Ok(DataFile { name, bytes }),
            Err(e) => Err(Error::Malformed {
                offset: bytes.len() as u64,
                message: format!("broken or truncated gzip stream (decompressed offset): {e}"),
                file: name,
            }),
        }
    }

    /// The big-endian `u32` at `offset`; the caller has checked the length.
    pub fn u32_at(&self, offset: usize) -> u32 {
        let b = &self.bytes[offset..offset + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Checks that the file holds `expected_len` bytes. A short file is `Truncated`, its message
    /// built by `missing(len)` (what the bytes from `len` on should have been); a long one is
    /// `Malformed` (trailing bytes).
    pub fn expect_len(&self, expected_len: u64, missing: impl FnOnce(u64) -> String) -> Result<()> {
        let len = self.bytes.len() as u64;
        if len < expected_len {
            return Err(self.truncated(expected_len, missing(len)));
        }
        if len > expected_len {
            return Err(self
                .malformed(expected_len, format!("{} bytes after the end of the data", len - expected_len)));
        }
        Ok(())
    }

    /// A `Truncated` error: the file ends at its length instead of at `expected_len`, where
    /// `expected` should have followed.
    pub fn truncated(&self, expected_len: u64, expected: String) -> Error {
        Error::Truncated { file: self.name.clone(), offset: self.bytes.len() as u64, expected_len, expected }
    }

    /// A `Malformed` error at `offset`.
    pub fn malformed(&self, offset: u64, message: String) -> Error {
        Error::Malformed { file: self.name.clone(), offset, message }
    }

    /// The label byte at `offset`, checked against `classes`.
    pub fn label_at(&self, offset: usize, classes: usize) -> Result<u32> {
        let label = u32::from(self.bytes[offset]);
        if label as usize >= classes {
            return Err(Error::LabelOutOfRange {
                file: self.name.clone(),
                offset: offset as u64,
                label,
                classes,
            });
        }
        Ok(label)
    }
}

/// The entries of `dir` as `(name, path)`, sorted by name, hidden ones (`.name`) left out.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            entries.push((name, entry.path()));
        }
    }
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_is_detected_by_content_not_name() {
        let plain = b"\x00\x00\x08\x01hello".to_vec();
        let f = DataFile::from_bytes("x.gz".into(), plain.clone()).unwrap();
        assert_eq!(f.bytes, plain, "a plain file named .gz is read as it is");
        let f = DataFile::from_bytes("x".into(), gzip(&plain)).unwrap();
        assert_eq!(f.bytes, plain, "a gzipped file without .gz is gunzipped");
    }

    #[test]
    fn a_cut_gzip_stream_is_an_error_naming_the_file() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let z = gzip(&data);
        let err = DataFile::from_bytes("d/x.gz".into(), z[..z.len() / 2].to_vec()).err().unwrap();
        let Error::Malformed { file, offset, .. } = &err else { panic!("{err}") };
        assert_eq!(file, "d/x.gz");
        assert!(*offset < data.len() as u64, "{err}");
    }

    #[test]
    fn length_checks_report_offsets() {
        let f = DataFile { name: "f".into(), bytes: vec![0; 10] };
        let err = f.expect_len(16, |at| format!("more after {at}")).unwrap_err();
        assert_eq!(err.to_string(), "f: truncated at byte 10 of 16: expected more after 10");
        let err = f.expect_len(8, |_| unreachable!()).unwrap_err();
        assert_eq!(err.to_string(), "f: at byte 8: 2 bytes after the end of the data");
        assert!(f.expect_len(10, |_| unreachable!()).is_ok());
    }
}
