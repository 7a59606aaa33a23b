//! MNIST-style folders: IDX files named `PREFIXimages-idx3-ubyte[.gz]` and
//! `PREFIXlabels-idx1-ubyte[.gz]` (`.idx3-ubyte` with a dot is accepted too), paired by
//! prefix. Prefixes starting `t10k` or `test` are the test part; the one other prefix
//! (`train-` in the original distribution, none in `mnist-8k`) is the training part.
//! Images are normalized with [`Normalization::mnist`]; labels must be below 10.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::{DataFile, list_dir};
use super::{Dataset, Normalization, idx};
use crate::{Error, Result};

const CLASSES: usize = 10;
const IMAGES: [&str; 2] = ["images-idx3-ubyte", "images.idx3-ubyte"];
const LABELS: [&str; 2] = ["labels-idx1-ubyte", "labels.idx1-ubyte"];

/// The images and labels files of one part, by prefix.
#[derive(Default)]
struct Pair {
    images: Option<PathBuf>,
    labels: Option<PathBuf>,
}

/// Loads the training part of the folder.
pub(crate) fn load_train(dir: &Path) -> Result<Dataset> {
    load_part(dir, false)?.ok_or_else(|| {
        layout(dir, format!("no training images: expected a file named *{}[.gz], not t10k-*", IMAGES[0]))
    })
}

/// Loads the test part of the folder, if it has one.
pub(crate) fn load_test(dir: &Path) -> Result<Option<Dataset>> {
    load_part(dir, true)
}

fn load_part(dir: &Path, test: bool) -> Result<Option<Dataset>> {
    let mut found: Vec<(String, Pair)> =
        pairs(dir)?.into_iter().filter(|(p, _)| is_test(p) == test).collect();
    match found.len() {
        0 => Ok(None),
        1 => load_pair(dir, found.pop().unwrap()).map(Some),
        _ => Err(ambiguous(dir, &found)),
    }
}

fn is_test(prefix: &str) -> bool {
    let p = prefix.to_ascii_lowercase();
    p.starts_with("t10k") || p.starts_with("test")
}

fn layout(dir: &Path, message: String) -> Error {
    Error::Layout { path: dir.display().to_string(), message }
}

fn ambiguous(dir: &Path, found: &[(String, Pair)]) -> Error {
    let names: Vec<String> = found
        .iter()
        .filter_map(|(_, pair)| pair.images.as_ref().or(pair.labels.as_ref()))
        .map(|p| file_name(p))
        .collect();
    layout(dir, format!("more than one set of images, cannot choose: {}", names.join(", ")))
}

/// The IDX files of `dir`, by prefix; a role filled twice (plain and gzipped, say) is an error.
fn pairs(dir: &Path) -> Result<BTreeMap<String, Pair>> {
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    for (name, path) in list_dir(dir)? {
        let base = name.strip_suffix(".gz").unwrap_or(&name);
        let roles = [(IMAGES, false), (LABELS, true)];
        let Some((prefix, is_labels)) = roles
            .iter()
            .find_map(|(suffixes, l)| suffixes.iter().find_map(|s| base.strip_suffix(s)).map(|p| (p, *l)))
        else {
            continue;
        };
        let pair = pairs.entry(prefix.to_string()).or_default();
        let slot = if is_labels { &mut pair.labels } else { &mut pair.images };
        if let Some(other) = slot.replace(path.clone()) {
            return Err(layout(dir, format!("both {} and {name} found; keep one", file_name(&other))));
        }
    }
    Ok(pairs)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn load_pair(dir: &Path, (prefix, pair): (String, Pair)) -> Result<Dataset> {
    let (images_path, labels_path) = match (pair.images, pair.labels) {
        (Some(i), Some(l)) => (i, l),
        (Some(i), None) => {
            return Err(layout(
                dir,
                format!("{} has no labels file ({prefix}{}[.gz])", file_name(&i), LABELS[0]),
            ));
        }
        (None, Some(l)) => {
            return Err(layout(
                dir,
                format!("{} has no images file ({prefix}{}[.gz])", file_name(&l), IMAGES[0]),
            ));
        }
        (None, None) => unreachable!("a prefix is recorded with a file"),
    };
    let images_file = DataFile::read(&images_path)?;
    let images = idx::parse_images(&images_file)?;
    if images.count == 0 {
        return Err(images_file.malformed(4, "holds no images".into()));
    }
    let labels_file = DataFile::read(&labels_path)?;
    let label_count = idx::parse_labels(&labels_file)?.len();
    if label_count != images.count {
        return Err(Error::CountMismatch {
            images: images_file.name,
            image_count: images.count,
            labels: labels_file.name,
            label_count,
        });
    }
    let labels = (0..images.count).map(|i| labels_file.label_at(8 + i, CLASSES)).collect::<Result<_>>()?;
    let norm = Normalization::mnist();
    let data = norm.images(&images.pixels, images.rows * images.cols);
    let classes = (0..CLASSES).map(|d| d.to_string()).collect();
    Ok(Dataset::new(data, labels, [1, images.rows, images.cols], classes).with_normalization(norm))
}
