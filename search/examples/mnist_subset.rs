//! Writes the first N digits of an MNIST-style folder (`images-idx3-ubyte.gz`,
//! `labels-idx1-ubyte.gz`) as gzipped IDX files of the same names: how `data/mnist-2k` was made.
//!
//! ```sh
//! cargo run -p search --example mnist_subset -- /work/shared/data/mnist-8k data/mnist-2k 2000
//! ```

use std::path::PathBuf;

use search::data::idx;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to, n] = &args[..] else {
        return Err("usage: mnist_subset FROM_DIR TO_DIR N".into());
    };
    let (from, to, n) = (PathBuf::from(from), PathBuf::from(to), n.parse::<usize>()?);
    let mut images = idx::read_images(&from.join("images-idx3-ubyte.gz"))?;
    let mut labels = idx::read_labels(&from.join("labels-idx1-ubyte.gz"))?;
    if n > images.count || n > labels.len() {
        return Err(format!("{} holds only {} digits", from.display(), images.count).into());
    }
    images.pixels.truncate(n * images.rows * images.cols);
    images.count = n;
    labels.truncate(n);
    std::fs::create_dir_all(&to)?;
    idx::write_images(&to.join("images-idx3-ubyte.gz"), &images, true)?;
    idx::write_labels(&to.join("labels-idx1-ubyte.gz"), &labels, true)?;
    Ok(())
}
