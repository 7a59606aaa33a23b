//! IDX files, the format of LeCun's MNIST distribution: unsigned-byte images (`idx3-ubyte`,
//! magic 0x00000803, then count, rows, cols as big-endian `u32`, then the pixels row by row)
//! and labels (`idx1-ubyte`, magic 0x00000801, then count, then one byte per label). Files are
//! read plain or gzipped, whichever their first bytes say.

use std::io::Write;
use std::path::Path;

use super::file::DataFile;
use crate::{Error, Result};

/// The magic number of an unsigned-byte, three-dimensional IDX file (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an unsigned-byte, one-dimensional IDX file (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;

/// The contents of an IDX images file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// How many images.
    pub count: usize,
    /// Rows (height) of each image.
    pub rows: usize,
    /// Columns (width) of each image.
    pub cols: usize,
    /// `count * rows * cols` bytes, image by image, row by row (0 = background).
    pub pixels: Vec<u8>,
}

/// Reads an IDX images file, plain or gzipped.
pub fn read_images(path: &Path) -> Result<Images> {
    parse_images(&DataFile::read(path)?)
}

/// Reads an IDX labels file, plain or gzipped: one byte per example.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let file = DataFile::read(path)?;
    Ok(parse_labels(&file)?.to_vec())
}

/// Writes an IDX images file, gzipped (deterministically: no name, time 0) when `gzip`.
///
/// # Panics
/// When `pixels` is not `count * rows * cols` long.
pub fn write_images(path: &Path, images: &Images, gzip: bool) -> Result<()> {
    assert_eq!(images.pixels.len(), images.count * images.rows * images.cols, "IDX images: pixel count");
    let mut bytes = header(IMAGES_MAGIC, &[images.count, images.rows, images.cols]);
    bytes.extend_from_slice(&images.pixels);
    write(path, bytes, gzip)
}

/// Writes an IDX labels file, gzipped when `gzip`.
pub fn write_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<()> {
    let mut bytes = header(LABELS_MAGIC, &[labels.len()]);
    bytes.extend_from_slice(labels);
    write(path, bytes, gzip)
}

fn header(magic: u32, dims: &[usize]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for &d in dims {
        let d = u32::try_from(d).expect("IDX dimensions fit in u32");
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes
}

fn write(path: &Path, bytes: Vec<u8>, gzip: bool) -> Result<()> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let bytes = if gzip {
        let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
        enc.write_all(&bytes).map_err(io)?;
        enc.finish().map_err(io)?
    } else {
        bytes
    };
    std::fs::write(path, bytes).map_err(io)
}

/// Checks the magic number and that the whole header is there.
fn check_header(file: &DataFile, magic: u32, header_len: usize, format: &'static str) -> Result<()> {
    let len = file.bytes.len();
    if len >= 4 && file.u32_at(0) != magic {
        return Err(Error::Magic { file: file.name.clone(), found: file.u32_at(0), expected: magic, format });
    }
    if len < header_len {
        return Err(file.truncated(header_len as u64, format!("the {header_len}-byte {format} header")));
    }
    Ok(())
}

/// Parses an images file already in memory.
pub(crate) fn parse_images(file: &DataFile) -> Result<Images> {
    check_header(file, IMAGES_MAGIC, IMAGES_HEADER, "IDX images (idx3-ubyte)")?;
    let [count, rows, cols] = [4, 8, 12].map(|at| file.u32_at(at) as u64);
    if rows == 0 || cols == 0 {
        return Err(file.malformed(8, format!("images of {rows}x{cols} pixels")));
    }
    let size = rows * cols;
    let expected_len =
        count.checked_mul(size).and_then(|n| n.checked_add(IMAGES_HEADER as u64)).ok_or_else(|| {
            file.malformed(4, format!("{count} images of {rows}x{cols} pixels do not fit in memory"))
        })?;
    file.expect_len(expected_len, |len| {
        format!("{size} bytes of image {}", (len - IMAGES_HEADER as u64) / size)
    })?;
    Ok(Images {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        pixels: file.bytes[IMAGES_HEADER..].to_vec(),
    })
}

/// Parses a labels file already in memory: the label bytes (label `i` is at byte `8 + i`).
pub(crate) fn parse_labels(file: &DataFile) -> Result<&[u8]> {
    check_header(file, LABELS_MAGIC, LABELS_HEADER, "IDX labels (idx1-ubyte)")?;
    let count = u64::from(file.u32_at(4));
    file.expect_len(LABELS_HEADER as u64 + count, |len| format!("label {}", len - LABELS_HEADER as u64))?;
    Ok(&file.bytes[LABELS_HEADER..])
}
