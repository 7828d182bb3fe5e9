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
    window: usize,
    /// Every window.
    all: Axes,
    /// The coarse windows of `Schedule::CoarseToFine` only, and which grid
    /// rows and columns they are (`[n]` i64 each).
    coarse: Axes,
    coarse_rows: Tensor,
    coarse_columns: Tensor,
}

/// A_y (`[H, ny]`), A_x^T (`[nx, W]`) and windows per pixel (`[H, W]`), f64,
/// of windows starting at `ys` x `xs`.
struct Axes {
    rows: Tensor,
    columns: Tensor,
    counts: Tensor,
}

impl Axes {
    fn new(
        size: (usize, usize),
        starts: (&[usize], &[usize]),
        window: usize,
        device: Device,
    ) -> Self {
        let rows = membership(size.0, starts.0, window, device);
        let columns = membership(size.1, starts.1, window, device)
            .tr()
            .contiguous();
        let per_row = rows.sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        let per_column = columns.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
        Axes {
            counts: per_row.outer(&per_column),
            rows,
            columns,
        }
    }

    /// The per-pixel mean of one value per window, `grid` `[ny, nx]`.
    fn mean(&self, grid: &Tensor) -> Tensor {
        self.rows.matmul(grid).matmul(&self.columns) / &self.counts
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
        let (coarse_ys, coarse_xs) = (coarse_positions(&ys, window), coarse_positions(&xs, window));
        let cells = |chosen: &[usize], all: &[usize]| {
            let index: Vec<i64> = chosen
                .iter()
                .map(|p| all.binary_search(p).expect("a start of the grid") as i64)
                .collect();
            Tensor::from_slice(&index).to_device(device)
        };
        EvidenceGrid {
            all: Axes::new(size, (&ys, &xs), window, device),
            coarse: Axes::new(size, (&coarse_ys, &coarse_xs), window, device),
            coarse_rows: cells(&coarse_ys, &ys),
            coarse_columns: cells(&coarse_xs, &xs),
            xs,
            ys,
            window,
        }
    }

    /// Number of window positions (grid cells).
    pub fn cells(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    /// Window positions down the image (grid rows).
    pub fn rows(&self) -> usize {
        self.ys.len()
    }

    /// Window positions across the image (grid columns).
    pub fn columns(&self) -> usize {
        self.xs.len()
    }

    /// The window of a grid cell (row-major).
    pub fn window_of(&self, cell: usize) -> Window {
        Window {
            x: self.xs[cell % self.xs.len()],
            y: self.ys[cell / self.xs.len()],
            size: self.window,
        }
    }

    /// The grid cell of a window.
    pub fn cell_of(&self, w: &Window) -> usize {
        let index =
            |starts: &[usize], at: usize| starts.binary_search(&at).expect("a window of this grid");
        index(&self.ys, w.y) * self.xs.len() + index(&self.xs, w.x)
    }

    /// The grid cell of each window (`[B]` i64 on `device`).
    pub fn cell_indices(&self, windows: &[Window], device: Device) -> Tensor {
        let cells: Vec<i64> = windows.iter().map(|w| self.cell_of(w) as i64).collect();
        upload(&cells, device)
    }

    /// The per-pixel mean, `[H, W]` f64, of one value per cell (`[cells]`
    /// f64; cells not computed yet hold 0).
    pub fn per_pixel_mean(&self, values: &Tensor) -> Tensor {
        self.all.mean(&self.as_grid(values))
    }

    /// The per-pixel mean over the coarse windows only (see
    /// `windows::coarse_positions`), `[H, W]` f64.
    pub fn coarse_mean(&self, values: &Tensor) -> Tensor {
        let grid = self
            .as_grid(values)
            .index_select(0, &self.coarse_rows)
            .index_select(1, &self.coarse_columns);
        self.coarse.mean(&grid)
    }

    fn as_grid(&self, values: &Tensor) -> Tensor {
        values
            .contiguous()
            .view([self.ys.len() as i64, self.xs.len() as i64])
    }
}
