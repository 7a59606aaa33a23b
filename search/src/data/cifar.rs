//! CIFAR-10's binary version: files of 10,000 records, each one label byte (0-9) and 3,072
//! pixel bytes (1,024 red, 1,024 green, 1,024 blue, rows of 32), `data_batch_1.bin` to
//! `data_batch_5.bin` for training and `test_batch.bin` for testing. The folder may be the
//! one the archive unpacks to (`cifar-10-batches-bin`) or the one holding it. Images are
//! normalized with [`Normalization::cifar10`].

use std::path::{Path, PathBuf};

use super::file::{DataFile, list_dir};
use super::{Dataset, Normalization};
use crate::{Error, Result};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;
const NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Loads every `data_batch_N.bin` of the folder, in order of `N`.
pub(crate) fn load_train(dir: &Path) -> Result<Dataset> {
    let dir = batches_dir(dir)?;
    let mut batches: Vec<(u32, PathBuf)> = list_dir(&dir)?
        .into_iter()
        .filter_map(|(name, path)| {
            let n = name.strip_prefix("data_batch_")?.strip_suffix(".bin")?.parse().ok()?;
            Some((n, path))
        })
        .collect();
    batches.sort();
    if batches.is_empty() {
        return Err(Error::Layout {
            path: dir.display().to_string(),
            message: "no training batches: expected data_batch_1.bin ... data_batch_5.bin".into(),
        });
    }
    let paths: Vec<PathBuf> = batches.into_iter().map(|(_, p)| p).collect();
    load_files(&paths)
}

/// Loads `test_batch.bin` if the folder has it.
pub(crate) fn load_test(dir: &Path) -> Result<Option<Dataset>> {
    let path = batches_dir(dir)?.join("test_batch.bin");
    if !path.exists() {
        return Ok(None);
    }
    load_files(&[path]).map(Some)
}

/// `dir/cifar-10-batches-bin` when `dir` holds it, else `dir`.
fn batches_dir(dir: &Path) -> Result<PathBuf> {
    let inner = dir.join("cifar-10-batches-bin");
    if inner.is_dir() {
        return Ok(inner);
    }
    if !dir.is_dir() {
        return Err(Error::Layout { path: dir.display().to_string(), message: "not a folder".into() });
    }
    Ok(dir.to_path_buf())
}

fn load_files(paths: &[PathBuf]) -> Result<Dataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let file = DataFile::read(path)?;
        parse(&file, &mut pixels, &mut labels)?;
    }
    let norm = Normalization::cifar10();
    let images = norm.images(&pixels, SIDE * SIDE);
    let classes = NAMES.iter().map(|s| s.to_string()).collect();
    Ok(Dataset::new(images, labels, [3, SIDE, SIDE], classes).with_normalization(norm))
}

/// Appends the records of one batch file.
pub(crate) fn parse(file: &DataFile, pixels: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<()> {
    let len = file.bytes.len();
    if len == 0 {
        return Err(file.malformed(0, format!("holds no records of {RECORD} bytes")));
    }
    let records = len.div_ceil(RECORD);
    file.expect_len((records * RECORD) as u64, |_| format!("{RECORD} bytes of record {}", records - 1))?;
    for (i, record) in file.bytes.chunks_exact(RECORD).enumerate() {
        labels.push(file.label_at(i * RECORD, NAMES.len())?);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(())
}
