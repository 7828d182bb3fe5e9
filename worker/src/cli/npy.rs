//! Writes a float32 matrix as a NumPy `.npy` file (the encoding is shared
//! with the page, in `lens_proto::npy`).

use std::path::Path;

pub fn write_f32(path: &Path, values: &[f32], height: usize, width: usize) -> std::io::Result<()> {
    std::fs::write(path, lens_proto::npy::f32_matrix(values, height, width))
}
