//! A folder of images per class: `DIR/CLASS/*.png|*.jpg`, classes numbered in the order of
//! their folder names. Files are decoded by content (PNG or JPEG); other files in a class
//! folder are errors, files directly in `DIR` and hidden entries (`.name`) are ignored.
//!
//! All images take the size and colour of the first one (first class, first file by name):
//! grey if it is grey, else RGB (alpha dropped), and others are resized to its size with a
//! bilinear filter rather than rejected, since photos collected by hand rarely agree in size.
//! Bytes are normalized with [`Normalization::folder`] (onto [-1, 1]).

use std::path::Path;

use image::DynamicImage;
use image::imageops::FilterType;

use super::file::list_dir;
use super::{Dataset, Normalization};
use crate::{Error, Result};

/// Loads the folder.
pub(crate) fn load(dir: &Path) -> Result<Dataset> {
    let layout = |path: &Path, message: String| Error::Layout { path: path.display().to_string(), message };
    let classes: Vec<_> = list_dir(dir)?.into_iter().filter(|(_, p)| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(layout(
            dir,
            "no class folders: expected one subfolder of PNG or JPEG images per class".into(),
        ));
    }
    // (channels, width, height) of the first image.
    let mut target: Option<(usize, u32, u32)> = None;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (label, (name, class_dir)) in classes.iter().enumerate() {
        let files: Vec<_> = list_dir(class_dir)?.into_iter().filter(|(_, p)| p.is_file()).collect();
        if files.is_empty() {
            return Err(layout(class_dir, format!("class `{name}` has no images")));
        }
        for (_, path) in files {
            let image = decode(&path)?;
            let (channels, w, h) = *target.get_or_insert((
                if image.color().has_color() { 3 } else { 1 },
                image.width(),
                image.height(),
            ));
            let image = if (image.width(), image.height()) == (w, h) {
                image
            } else {
                image.resize_exact(w, h, FilterType::Triangle)
            };
            let hwc =
                if channels == 1 { image.into_luma8().into_raw() } else { image.into_rgb8().into_raw() };
            // Interleaved (HWC) to planes (CHW).
            pixels.extend((0..channels).flat_map(|c| hwc.iter().skip(c).step_by(channels)));
            labels.push(label as u32);
        }
    }
    let (channels, w, h) = target.expect("every class has an image");
    let norm = Normalization::folder(channels);
    let images = norm.images(&pixels, (w * h) as usize);
    let names = classes.into_iter().map(|(name, _)| name).collect();
    Ok(Dataset::new(images, labels, [channels, h as usize, w as usize], names).with_normalization(norm))
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: file.clone(), source })?;
    image::load_from_memory(&bytes).map_err(|e| Error::Image { file, message: e.to_string() })
}
