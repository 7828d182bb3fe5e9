//! Writes a float32 matrix as a NumPy `.npy` file (the encoding is shared
//! with the page, in `lens_proto::npy`).

use std::path::Path;

pub fn write_f32(path: &Path, values: &[f32], height: usize, width: usize) -> std::io::Result<()> {
    std::fs::write(path, lens_proto::npy::f32_matrix(values, height, width))
}

/// Reads a 2-D float32 `.npy` (little-endian, row-major, as `write_f32`
/// and NumPy write it): the values, height and width.
pub fn read_f32(path: &Path) -> anyhow::Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path)?;
    let bad = |why: &str| anyhow::anyhow!("{} is not a float32 matrix .npy: {why}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy header"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown format version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("only little-endian float32 in C order is read"));
    }
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|dims| {
            dims.trim_start_matches([' ', '('])
                .split(',')
                .filter_map(|d| d.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [height, width] = shape[..] else {
        return Err(bad("not two-dimensional"));
    };
    let data = &bytes[start + header_len..];
    if data.len() != height * width * 4 {
        return Err(bad("the data does not match its shape"));
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((values, height, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_matrix_reads_back() {
        let path = std::env::temp_dir().join(format!("npy-{}.npy", std::process::id()));
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        write_f32(&path, &values, 3, 4).unwrap();
        assert_eq!(read_f32(&path).unwrap(), (values, 3, 4));
        std::fs::write(&path, b"not npy").unwrap();
        let error = read_f32(&path).unwrap_err().to_string();
        assert!(error.contains("no NumPy header"), "{error}");
        std::fs::remove_file(path).unwrap();
    }
}
