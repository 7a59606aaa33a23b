//! A labelled image data set held in memory as normalized `f32` NCHW, and loading one from a
//! [`DataSpec`].

use std::ops::Range;

use super::{DataSpec, Normalization, Split, cifar, folder, mnist};
use crate::{Error, Result};

/// Images and their labels, in memory.
///
/// Images are `f32`, NCHW, one after another, already normalized (see [`Normalization`]);
/// labels are class ids below [`Dataset::num_classes`].
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    images: Vec<f32>,
    labels: Vec<u32>,
    shape: [usize; 3],
    classes: Vec<String>,
    normalization: Option<Normalization>,
}

impl Dataset {
    /// A data set from normalized images (`labels.len()` images of `shape` = `[c, h, w]`),
    /// their labels and the names of the classes (class `i` is `classes[i]`).
    ///
    /// # Panics
    /// When the lengths disagree or a label is not below `classes.len()`: the caller built
    /// inconsistent vectors, a bug rather than bad input.
    pub fn new(images: Vec<f32>, labels: Vec<u32>, shape: [usize; 3], classes: Vec<String>) -> Dataset {
        assert_eq!(images.len(), labels.len() * shape.iter().product::<usize>(), "images of {shape:?}");
        assert!(labels.iter().all(|&l| (l as usize) < classes.len()), "labels below {}", classes.len());
        Dataset { images, labels, shape, classes, normalization: None }
    }

    /// Records how bytes were turned into these images, for whoever feeds the trained network
    /// new images.
    pub fn with_normalization(mut self, normalization: Normalization) -> Dataset {
        self.normalization = Some(normalization);
        self
    }

    /// Loads the training part of a data set: `train-*` IDX files (or the only pair) for MNIST,
    /// `data_batch_*.bin` for CIFAR-10, the whole folder, or the generated synthetic set.
    pub fn load(spec: &DataSpec) -> Result<Dataset> {
        match spec {
            DataSpec::Mnist(dir) => mnist::load_train(dir),
            DataSpec::Cifar10(dir) => cifar::load_train(dir),
            DataSpec::Folder(dir) => folder::load(dir),
            DataSpec::Synthetic(s) => {
                // A spec parsed from text is checked already; one built in code may not be.
                s.check().map_err(|message| Error::DataSpec { spec: spec.to_string(), message })?;
                Ok(s.generate())
            }
        }
    }

    /// Loads the test part of a data set when it has one: `t10k-*` (or `test-*`) IDX files for
    /// MNIST, `test_batch.bin` for CIFAR-10. Folders and synthetic sets have none (split them).
    pub fn load_test(spec: &DataSpec) -> Result<Option<Dataset>> {
        match spec {
            DataSpec::Mnist(dir) => mnist::load_test(dir),
            DataSpec::Cifar10(dir) => cifar::load_test(dir),
            DataSpec::Folder(_) | DataSpec::Synthetic(_) => Ok(None),
        }
    }

    /// The training examples and the validation examples, if any: the two parts of `split`,
    /// or without one the training part and the data set's own test part (which folders
    /// and synthetic sets lack).
    pub fn train_and_validation(spec: &DataSpec, split: Option<Split>) -> Result<(Dataset, Option<Dataset>)> {
        let data = Dataset::load(spec)?;
        Ok(match split {
            Some(split) => {
                let (train, validation) = data.split(split)?;
                (train, Some(validation))
            }
            None => (data, Dataset::load_test(spec)?),
        })
    }

    /// How many examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// One image's shape, `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Floats per image, `c * h * w`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// How many classes (labels are below this).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The classes' names: digits for MNIST, CIFAR-10's names, folder names.
    pub fn class_names(&self) -> &[String] {
        &self.classes
    }

    /// All images, `[len, c, h, w]`.
    pub fn images(&self) -> &[f32] {
        &self.images
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Image `i`, `[c, h, w]`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// How bytes became these images, when they came from bytes (not for synthetic data).
    pub fn normalization(&self) -> Option<&Normalization> {
        self.normalization.as_ref()
    }

    /// How many examples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The examples `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            images: indices.iter().flat_map(|&i| self.image(i)).copied().collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.empty_like()
        }
    }

    /// The examples in `range`.
    ///
    /// # Panics
    /// When the range is out of bounds.
    pub fn slice(&self, range: Range<usize>) -> Dataset {
        let n = self.image_len();
        Dataset {
            images: self.images[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
            ..self.empty_like()
        }
    }

    /// Keeps the first `len` examples.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.images.truncate(len * self.image_len());
        self.labels.truncate(len);
    }

    fn empty_like(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            shape: self.shape,
            classes: self.classes.clone(),
            normalization: self.normalization.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four 1x1x2 images whose pixels are `[i, -i]`, labels `i % 2`.
    pub(crate) fn tiny() -> Dataset {
        let images = (0..4).flat_map(|i| [i as f32, -(i as f32)]).collect();
        Dataset::new(images, vec![0, 1, 0, 1], [1, 1, 2], vec!["even".into(), "odd".into()])
    }

    #[test]
    fn subsets_and_slices_keep_images_with_their_labels() {
        let d = tiny();
        let s = d.subset(&[3, 0, 3]);
        assert_eq!(s.images(), [3.0, -3.0, 0.0, -0.0, 3.0, -3.0]);
        assert_eq!(s.labels(), [1, 0, 1]);
        assert_eq!(s.class_counts(), [1, 2]);
        let s = d.slice(1..3);
        assert_eq!(s.images(), [1.0, -1.0, 2.0, -2.0]);
        assert_eq!(s.labels(), [1, 0]);
        assert_eq!(s.class_names(), ["even", "odd"]);
    }
}
