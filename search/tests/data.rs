//! The data sets through the public API: every format read from files written here, the
//! committed MNIST subset, malformed files, and the batches a training loop sees.

use std::path::{Path, PathBuf};

use search::Error;
use search::data::{Augment, Batches, DataSpec, Dataset, Split, idx, shift_flip};

fn load(spec: &str) -> search::Result<Dataset> {
    Dataset::load(&spec.parse()?)
}

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-2k")
}

/// `count` 28x28 images whose pixels are `i + j` (mod 256) for image `i`, pixel `j`.
fn digits(count: usize) -> idx::Images {
    let pixels = (0..count * 784).map(|k| ((k / 784 + k % 784) % 256) as u8).collect();
    idx::Images { count, rows: 28, cols: 28, pixels }
}

fn write_mnist(dir: &Path, prefix: &str, count: usize, gzip: bool) {
    let gz = if gzip { ".gz" } else { "" };
    idx::write_images(&dir.join(format!("{prefix}images-idx3-ubyte{gz}")), &digits(count), gzip).unwrap();
    let labels: Vec<u8> = (0..count).map(|i| (i * 3 % 10) as u8).collect();
    idx::write_labels(&dir.join(format!("{prefix}labels-idx1-ubyte{gz}")), &labels, gzip).unwrap();
}

#[test]
fn idx_round_trips_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let (images, labels) = (dir.path().join(format!("i{gzip}")), dir.path().join(format!("l{gzip}")));
        let written = digits(5);
        idx::write_images(&images, &written, gzip).unwrap();
        idx::write_labels(&labels, &[3, 1, 4, 1, 5], gzip).unwrap();
        assert_eq!(idx::read_images(&images).unwrap(), written);
        assert_eq!(idx::read_labels(&labels).unwrap(), [3, 1, 4, 1, 5]);
        let raw = std::fs::read(&images).unwrap();
        assert_eq!(raw.starts_with(&[0x1f, 0x8b]), gzip);
        if !gzip {
            assert_eq!(raw.len(), 16 + 5 * 784);
            assert_eq!(raw[..16], [0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28]);
        }
    }
}

#[test]
fn the_committed_subset_loads() {
    let d = Dataset::load(&DataSpec::Mnist(committed())).unwrap();
    assert_eq!(d.len(), 2000);
    assert_eq!(d.shape(), [1, 28, 28]);
    assert_eq!(d.num_classes(), 10);
    assert_eq!(d.class_counts(), [206, 226, 188, 214, 203, 144, 210, 201, 216, 192]);
    // MNIST normalization: background (0) and full ink (255).
    let (lo, hi) = (-0.1307 / 0.3081, (1.0 - 0.1307) / 0.3081);
    assert_eq!(d.image(0)[0], lo);
    assert!(d.images().iter().all(|&x| (lo..=hi).contains(&x)));
    assert!(d.images().contains(&hi));
    assert!(Dataset::load_test(&DataSpec::Mnist(committed())).unwrap().is_none(), "no t10k files");
    let (train, validation) = d.split(Split::Last(400)).unwrap();
    assert_eq!((train.len(), validation.len()), (1600, 400));
}

/// The subset is the start of the shared 8,000 digits, where those are present.
#[test]
fn the_committed_subset_is_the_start_of_mnist_8k() {
    let shared = Path::new("/work/shared/data/mnist-8k");
    if !shared.exists() {
        return;
    }
    let full = Dataset::load(&DataSpec::Mnist(shared.into())).unwrap();
    assert_eq!(full.len(), 8000);
    assert_eq!(full.slice(0..2000), Dataset::load(&DataSpec::Mnist(committed())).unwrap());
    // The bar "train on the first 7,000, validate on the last 1,000".
    let (train, validation) = full.split(Split::Counts { train: 7000, validation: 1000 }).unwrap();
    assert_eq!((train.len(), validation.len()), (7000, 1000));
    assert_eq!(validation.class_counts(), [90, 113, 88, 101, 106, 87, 109, 116, 87, 103]);
}

#[test]
fn mnist_folders_with_the_original_names_have_train_and_test_parts() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), "train-", 12, true);
    write_mnist(dir.path(), "t10k-", 7, false);
    std::fs::write(dir.path().join("README"), "not data").unwrap();
    let spec = DataSpec::Mnist(dir.path().into());
    let train = Dataset::load(&spec).unwrap();
    let test = Dataset::load_test(&spec).unwrap().unwrap();
    assert_eq!((train.len(), test.len()), (12, 7));
    assert_eq!(train.labels()[..4], [0, 3, 6, 9]);
    // Image 2's pixel 5 is byte 7.
    assert_eq!(train.image(2)[5], (7.0 / 255.0 - 0.1307) / 0.3081);
    assert_eq!(train.class_names()[7], "7");

    // The names of some redistributions: a dot before idx3.
    let dotted = tempfile::tempdir().unwrap();
    idx::write_images(&dotted.path().join("train-images.idx3-ubyte"), &digits(2), false).unwrap();
    idx::write_labels(&dotted.path().join("train-labels.idx1-ubyte"), &[4, 2], false).unwrap();
    assert_eq!(Dataset::load(&DataSpec::Mnist(dotted.path().into())).unwrap().labels(), [4, 2]);
}

#[test]
fn mnist_folders_that_are_ambiguous_or_incomplete_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DataSpec::Mnist(dir.path().into());
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    assert!(err.to_string().contains("no training images"), "{err}");

    write_mnist(dir.path(), "", 3, true);
    write_mnist(dir.path(), "", 3, false);
    let err = Dataset::load(&spec).unwrap_err().to_string();
    assert!(err.ends_with("both images-idx3-ubyte and images-idx3-ubyte.gz found; keep one"), "{err}");

    std::fs::remove_file(dir.path().join("images-idx3-ubyte")).unwrap();
    std::fs::remove_file(dir.path().join("labels-idx1-ubyte")).unwrap();
    std::fs::remove_file(dir.path().join("labels-idx1-ubyte.gz")).unwrap();
    let err = Dataset::load(&spec).unwrap_err().to_string();
    assert!(err.ends_with("images-idx3-ubyte.gz has no labels file (labels-idx1-ubyte[.gz])"), "{err}");

    write_mnist(dir.path(), "", 3, true);
    write_mnist(dir.path(), "extra-", 3, true);
    let err = Dataset::load(&spec).unwrap_err().to_string();
    assert!(err.contains("more than one set of images"), "{err}");

    let err = load("mnist:/no/such/folder").unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if path == "/no/such/folder"), "{err}");
}

/// A folder holding `images` as its images file and a good labels file of `labels`.
fn mnist_with_images(images: &[u8], labels: &[u8]) -> (tempfile::TempDir, DataSpec) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("images-idx3-ubyte"), images).unwrap();
    idx::write_labels(&dir.path().join("labels-idx1-ubyte"), labels, false).unwrap();
    let spec = DataSpec::Mnist(dir.path().into());
    (dir, spec)
}

fn idx_bytes(images: &idx::Images) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x");
    idx::write_images(&path, images, false).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn truncated_files_name_the_byte_and_the_image() {
    let bytes = idx_bytes(&digits(10));
    let cut = 16 + 9 * 784 + 778;
    let (dir, spec) = mnist_with_images(&bytes[..cut], &[0; 10]);
    let err = Dataset::load(&spec).unwrap_err();
    let file = dir.path().join("images-idx3-ubyte");
    assert_eq!(
        err.to_string(),
        format!("{}: truncated at byte 7850 of 7856: expected 784 bytes of image 9", file.display())
    );

    // Gzipped, offsets count decompressed bytes.
    std::fs::remove_file(&file).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes[..cut]).unwrap();
    std::fs::write(file.with_extension("gz"), gz.finish().unwrap()).unwrap();
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(&err, Error::Truncated { offset: 7850, expected_len: 7856, .. }), "{err}");

    let (_dir, spec) = mnist_with_images(&bytes[..10], &[0; 10]);
    let err = Dataset::load(&spec).unwrap_err().to_string();
    assert!(
        err.ends_with("truncated at byte 10 of 16: expected the 16-byte IDX images (idx3-ubyte) header"),
        "{err}"
    );

    let (_dir, spec) = mnist_with_images(&[&bytes[..], &[0]].concat(), &[0; 10]);
    let err = Dataset::load(&spec).unwrap_err().to_string();
    assert!(err.ends_with("at byte 7856: 1 bytes after the end of the data"), "{err}");
}

#[test]
fn wrong_magic_counts_and_labels_are_errors() {
    let bytes = idx_bytes(&digits(4));
    let (_dir, spec) = mnist_with_images(&[&[0, 0, 8, 1], &bytes[4..]].concat(), &[0; 4]);
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(err, Error::Magic { found: 0x801, expected: 0x803, .. }), "{err}");
    let wanted = "wrong magic number 0x00000801 at byte 0, expected 0x00000803 (IDX images (idx3-ubyte))";
    assert!(err.to_string().ends_with(wanted), "{err}");

    let (_dir, spec) = mnist_with_images(&bytes, &[0; 5]);
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(err, Error::CountMismatch { image_count: 4, label_count: 5, .. }), "{err}");

    let (_dir, spec) = mnist_with_images(&bytes, &[0, 9, 10, 0]);
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(err, Error::LabelOutOfRange { offset: 10, label: 10, classes: 10, .. }), "{err}");

    let (_dir, spec) = mnist_with_images(&idx_bytes(&digits(0)), &[]);
    let err = Dataset::load(&spec).unwrap_err().to_string();
    assert!(err.ends_with("at byte 4: holds no images"), "{err}");
}

/// A CIFAR-10 record: `label`, then the R, G and B planes filled with `label`, `label + 1`,
/// `label + 2`, except pixel (row 1, column 2) of the blue plane, which is 255.
fn cifar_record(label: u8) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3u8 {
        r.extend(std::iter::repeat_n(label + c, 1024));
    }
    r[1 + 2048 + 32 + 2] = 255;
    r
}

#[test]
fn cifar10_batches_are_read_record_by_record() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), [cifar_record(4), cifar_record(9)].concat()).unwrap();
    std::fs::write(dir.join("data_batch_1.bin"), cifar_record(0)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), cifar_record(7)).unwrap();
    let spec = DataSpec::Cifar10(root.path().into());
    let d = Dataset::load(&spec).unwrap();
    assert_eq!(d.labels(), [0, 4, 9], "batches in numeric order");
    assert_eq!(d.shape(), [3, 32, 32]);
    assert_eq!(d.class_names()[9], "truck");
    let image = d.image(1);
    let norm = d.normalization().unwrap();
    assert_eq!(image[0], (4.0 / 255.0 - 0.4914) / 0.2470);
    assert_eq!(image[1024], norm.apply(1, 5));
    assert_eq!(image[2048], norm.apply(2, 6));
    assert_eq!(image[2048 + 32 + 2], (1.0 - 0.4465) / 0.2616);
    assert_eq!(Dataset::load_test(&spec).unwrap().unwrap().labels(), [7]);

    let batch = dir.join("data_batch_1.bin");
    std::fs::write(&batch, [cifar_record(0), cifar_record(1)[..100].to_vec()].concat()).unwrap();
    let err = Dataset::load(&spec).unwrap_err();
    let wanted =
        format!("{}: truncated at byte 3173 of 6146: expected 3073 bytes of record 1", batch.display());
    assert_eq!(err.to_string(), wanted);
    std::fs::write(&batch, [cifar_record(0), cifar_record(10)].concat()).unwrap();
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(err, Error::LabelOutOfRange { offset: 3073, label: 10, .. }), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = Dataset::load(&DataSpec::Cifar10(empty.path().into())).unwrap_err();
    assert!(err.to_string().contains("no training batches"), "{err}");
}

/// A grey PNG whose pixel (x, y) is `value + x + 10 y`.
fn save_png(path: &Path, w: u32, h: u32, value: u8) {
    let image = image::GrayImage::from_fn(w, h, |x, y| image::Luma([value.wrapping_add((x + 10 * y) as u8)]));
    image.save(path).unwrap();
}

#[test]
fn folders_of_images_are_labelled_by_sorted_class_names() {
    let dir = tempfile::tempdir().unwrap();
    for (class, values) in [("dog", [100u8, 110]), ("cat", [0, 10])] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for v in values {
            save_png(&dir.path().join(class).join(format!("{v:03}.png")), 4, 3, v);
        }
    }
    // Larger, so resized to 4x3; a PNG named .jpg decodes by its content.
    save_png(&dir.path().join("dog/big.jpg"), 8, 6, 0);
    std::fs::write(dir.path().join("notes.txt"), "ignored: not in a class folder").unwrap();
    let d = load(&format!("folder:{}", dir.path().display())).unwrap();
    assert_eq!(d.class_names(), ["cat", "dog"]);
    assert_eq!(d.labels(), [0, 0, 1, 1, 1]);
    assert_eq!(d.shape(), [1, 3, 4], "grey, the first image's size");
    let to_byte = |x: f32| ((x * 0.5 + 0.5) * 255.0).round() as u8;
    // dog/100.png, pixel (row 1, column 2) = 100 + 2 + 10.
    assert_eq!(to_byte(d.image(2)[4 + 2]), 112);
    assert_eq!(d.image(0)[0], -1.0);

    // RGB images give three planes.
    let rgb = tempfile::tempdir().unwrap();
    std::fs::create_dir(rgb.path().join("a")).unwrap();
    image::RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 51])).save(rgb.path().join("a/x.png")).unwrap();
    let d = Dataset::load(&DataSpec::Folder(rgb.path().into())).unwrap();
    assert_eq!(d.shape(), [3, 2, 2]);
    assert_eq!(d.image(0), [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -0.6, -0.6, -0.6, -0.6]);
}

#[test]
fn bad_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DataSpec::Folder(dir.path().into());
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(err, Error::Layout { .. }) && err.to_string().contains("no class folders"), "{err}");

    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let err = Dataset::load(&spec).unwrap_err();
    assert!(err.to_string().ends_with("class `empty` has no images"), "{err}");

    save_png(&dir.path().join("empty/a.png"), 2, 2, 0);
    let junk = dir.path().join("empty/b.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let err = Dataset::load(&spec).unwrap_err();
    assert!(matches!(&err, Error::Image { file, .. } if *file == junk.display().to_string()), "{err}");
}

#[test]
fn shuffled_batches_cover_every_example_once_per_epoch() {
    let d = load("synthetic:3,1,3,3,10,0").unwrap();
    let epoch = |seed, epoch| -> Vec<Vec<usize>> {
        Batches::new(&d, 4, seed, epoch, Augment::NONE).map(|b| b.indices).collect()
    };
    let first = epoch(1, 0);
    assert_eq!(first.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let mut all: Vec<usize> = first.concat();
    assert_ne!(all, (0..10).collect::<Vec<_>>(), "shuffled");
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>(), "each example once");
    assert_eq!(epoch(1, 0), first, "same seed and epoch, same batches");
    assert_ne!(epoch(1, 1), first, "a new epoch, a new order");
    assert_ne!(epoch(2, 0), first, "a new seed, a new order");

    let batches = Batches::new(&d, 4, 1, 0, Augment::NONE).drop_last(true);
    assert_eq!(batches.len(), 2);
    for b in batches {
        assert_eq!(b.shape, [4, 1, 3, 3]);
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(&b.images[k * 9..(k + 1) * 9], d.image(i));
            assert_eq!(b.labels[k], d.labels()[i]);
        }
    }
    let seq: Vec<Vec<usize>> = Batches::sequential(&d, 3).map(|b| b.indices).collect();
    assert_eq!(seq, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);
}

#[test]
fn augmentation_is_a_seeded_crop_and_flip() {
    // One 1x3x3 image holding 1..9.
    let d = Dataset::new((1..=9).map(|v| v as f32).collect(), vec![0], [1, 3, 3], vec!["x".into()]);
    let aug = Augment { pad: 1, flip: true };
    let image = |seed, epoch| Batches::new(&d, 1, seed, epoch, aug).next().unwrap().images;
    // Pinned (scripts/seeded_data_pins.py): seed 5, epoch 0 draws the shift (-1, -1) and a
    // flip, so row y shows row y - 1 mirrored, its columns taken from x - 1.
    #[rustfmt::skip]
    assert_eq!(image(5, 0), [0.0, 0.0, 0.0,
                             2.0, 1.0, 0.0,
                             5.0, 4.0, 0.0]);
    // Over many epochs every crop offset and both flips occur, and nothing else.
    let mut seen = std::collections::BTreeSet::new();
    for epoch in 0..400 {
        let out = image(3, epoch);
        let found = (-1..=1)
            .flat_map(|dy| (-1..=1).flat_map(move |dx| [(dy, dx, false), (dy, dx, true)]))
            .find(|&(dy, dx, flip)| {
                let mut want = vec![0.0; 9];
                shift_flip(d.image(0), [1, 3, 3], dy, dx, flip, &mut want);
                want == out
            });
        seen.insert(found.unwrap_or_else(|| panic!("epoch {epoch}: {out:?} is no crop and flip")));
    }
    assert_eq!(seen.len(), 18);
    let plain = Batches::new(&d, 1, 3, 0, Augment::NONE).next().unwrap().images;
    assert_eq!(plain, d.image(0));
}

#[test]
fn synthetic_specs_are_deterministic() {
    let a = load("synthetic:4,3,8,8,40,11").unwrap();
    assert_eq!(a, load("synthetic:4,3,8,8,40,11").unwrap());
    assert_ne!(a.images(), load("synthetic:4,3,8,8,40,12").unwrap().images());
    assert_eq!((a.len(), a.shape(), a.num_classes()), (40, [3, 8, 8], 4));
    assert!(a.normalization().is_none());
    let bad = search::data::Synthetic { classes: 40, height: 8, ..Default::default() };
    let err = Dataset::load(&DataSpec::Synthetic(bad)).unwrap_err().to_string();
    assert!(err.ends_with("40 classes need images of at least 9x9 pixels, not 8x28"), "{err}");
    let d = load("synthetic").unwrap();
    assert_eq!((d.len(), d.shape(), d.num_classes()), (2000, [1, 28, 28], 10));
}
