//! The windows' evidence kept on the device, one value per window position,
//! and turned into the per-pixel mean by two matrix products.
//!
//! Windows sit on a grid: start positions `ys` down and `xs` across (see
//! `windows::positions`). With A_y the `H x ny` matrix that is 1 where row y
//! lies in window row iy (and A_x likewise for columns), the sum over the
//! windows that contain pixel (y, x) of their values E is
//! `(A_y E A_x^T)[y, x]`, and the count of those windows is the product of
//! the per-axis counts. Each window writes its own cell once, so the map
//! does not depend on the order windows were computed in: schedules and
//! batch sizes cannot change it, and a tile read while later windows are
//! still missing (zeros that touch no pixel of the tile) already has its
//! final value.

use tch::{Device, Kind, Tensor};

use super::device::upload;
use super::windows::{coarse_positions, positions, Window};

pub struct EvidenceGrid {
    xs: Vec<usize>,
    ys: Vec<usize>,
    /// A_y, `[H, ny]` f64.
    rows: Tensor,
    /// A_x^T, `[nx, W]` f64.
    columns: Tensor,
    /// Windows per pixel, `[H, W]` f64.
    counts: Tensor,
    /// The same for the coarse windows of `Schedule::CoarseToFine` only.
    coarse: Axes,
}

/// Membership matrices and counts of a subset of the grid's rows and columns.
struct Axes {
    /// Which grid rows and columns (`[n]` i64 each).
    row_cells: Tensor,
    column_cells: Tensor,
    rows: Tensor,
    columns: Tensor,
    counts: Tensor,
}

impl Axes {
    fn new(
        (height, width): (usize, usize),
        (ys, xs): (&[usize], &[usize]),
        (all_ys, all_xs): (&[usize], &[usize]),
        window: usize,
        device: Device,
    ) -> Self {
        let cells = |chosen: &[usize], all: &[usize]| {
            let index: Vec<i64> = chosen
                .iter()
                .map(|p| all.binary_search(p).expect("a start of the grid") as i64)
                .collect();
            Tensor::from_slice(&index).to_device(device)
        };
        let rows = membership(height, ys, window, device);
        let columns = membership(width, xs, window, device).tr().contiguous();
        let per_row = rows.sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        let per_column = columns.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
        Axes {
            row_cells: cells(ys, all_ys),
            column_cells: cells(xs, all_xs),
            counts: per_row.outer(&per_column),
            rows,
            columns,
        }
    }
}

/// `[length, starts]` 0/1: whether pixel i lies in the window starting at
/// `starts[j]`.
fn membership(length: usize, starts: &[usize], window: usize, device: Device) -> Tensor {
    let mut values = vec![0f64; length * starts.len()];
    for (j, &start) in starts.iter().enumerate() {
        for i in start..start + window {
            values[i * starts.len() + j] = 1.0;
        }
    }
    Tensor::from_slice(&values)
        .view([length as i64, starts.len() as i64])
        .to_device(device)
}

impl EvidenceGrid {
    pub fn new(height: usize, width: usize, window: usize, stride: usize, device: Device) -> Self {
        let ys = positions(height, window, stride);
        let xs = positions(width, window, stride);
        let size = (height, width);
        let all = Axes::new(size, (&ys, &xs), (&ys, &xs), window, device);
        let (coarse_ys, coarse_xs) = (coarse_positions(&ys, window), coarse_positions(&xs, window));
        let coarse = Axes::new(size, (&coarse_ys, &coarse_xs), (&ys, &xs), window, device);
        EvidenceGrid {
            xs,
            ys,
            rows: all.rows,
            columns: all.columns,
            counts: all.counts,
            coarse,
        }
    }

    /// Number of window positions (grid cells).
    pub fn cells(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    /// The grid cell of each window (`[B]` i64 on `device`).
    pub fn cell_indices(&self, windows: &[Window], device: Device) -> Tensor {
        let index =
            |starts: &[usize], at: usize| starts.binary_search(&at).expect("a window of this grid");
        let cells: Vec<i64> = windows
            .iter()
            .map(|w| (index(&self.ys, w.y) * self.xs.len() + index(&self.xs, w.x)) as i64)
            .collect();
        upload(&cells, device)
    }

    /// The per-pixel mean, `[H, W]` f64, of one value per cell (`[cells]`
    /// f64; cells not computed yet hold 0).
    pub fn per_pixel_mean(&self, values: &Tensor) -> Tensor {
        let grid = values
            .contiguous()
            .view([self.ys.len() as i64, self.xs.len() as i64]);
        self.rows.matmul(&grid).matmul(&self.columns) / &self.counts
    }

    /// The per-pixel mean over the coarse windows only (see
    /// `windows::coarse_positions`), `[H, W]` f64.
    pub fn coarse_mean(&self, values: &Tensor) -> Tensor {
        let c = &self.coarse;
        let grid = values
            .contiguous()
            .view([self.ys.len() as i64, self.xs.len() as i64])
            .index_select(0, &c.row_cells)
            .index_select(1, &c.column_cells);
        c.rows.matmul(&grid).matmul(&c.columns) / &c.counts
    }
}
