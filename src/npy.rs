//! `.npy` files in and out of `ir::Tensor`, with errors that name the file.

use std::path::Path;

use anyhow::Context;
use npyz::WriterBuilder;

use crate::cmd::InputError;

/// Reads an f32 array in C order.
pub fn read(path: &Path) -> anyhow::Result<ir::Tensor> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| InputError(format!("{shown}: {e}")))?;
    let npy =
        npyz::NpyFile::new(&bytes[..]).map_err(|e| InputError(format!("{shown}: not a .npy file: {e}")))?;
    let dtype = npy.dtype();
    if dtype != npyz::DType::new_scalar("<f4".parse().expect("a valid type string")) {
        return Err(
            InputError(format!("{shown}: dtype is {}, expected float32 ('<f4')", dtype.descr())).into()
        );
    }
    if npy.order() != npyz::Order::C {
        return Err(InputError(format!("{shown}: the array is in Fortran order; save it in C order")).into());
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = npy.into_vec().map_err(|e| InputError(format!("{shown}: {e}")))?;
    if data.len() != shape.iter().product::<usize>() {
        return Err(InputError(format!("{shown}: the data does not fill shape {shape:?}")).into());
    }
    Ok(ir::Tensor::new(&shape, data))
}

/// Writes an f32 array atomically: a partial file is renamed over the target when complete.
pub fn write(path: &Path, tensor: &ir::Tensor) -> anyhow::Result<()> {
    let tmp = path.with_extension("npy.partial");
    let shape: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
    let write = || -> std::io::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(file).begin_nd()?;
        writer.extend(tensor.data.iter().copied())?;
        writer.finish()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display())).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
