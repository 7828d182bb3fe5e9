//! The interpolated plain stride: a plain coarser stride's windows with
//! every window of the reference grid between them estimated bilinearly,
//! then the per-pixel mean as for a full map. It is what the refinement
//! must beat to be worth its choices: the same estimate, no choosing.

use lens_engine::engine::{bracket, lattice};

/// For each position on an axis of `cells`, the two positions of the
/// lattice of `step` around it and the weight of the second (the
/// refinement's own lattice and brackets).
fn brackets(cells: usize, step: usize) -> Vec<(usize, usize, f64)> {
    let at = lattice(cells, step);
    (0..cells).map(|i| bracket(i, &at)).collect()
}

/// How many windows the lattice of `step` computes on a `rows` x `columns`
/// grid.
pub fn lattice_windows(rows: usize, columns: usize, step: usize) -> usize {
    lattice(rows, step).len() * lattice(columns, step).len()
}

/// The window field (row-major, `rows` x `columns`) with only the lattice
/// of `step` kept and every other window interpolated between it.
pub fn interpolated_field(field: &[f64], rows: usize, columns: usize, step: usize) -> Vec<f64> {
    let (down, across) = (brackets(rows, step), brackets(columns, step));
    let mut values = Vec::with_capacity(rows * columns);
    for &(r0, r1, tr) in &down {
        for &(c0, c1, tc) in &across {
            let at = |r: usize, c: usize| field[r * columns + c];
            let top = at(r0, c0) * (1.0 - tc) + at(r0, c1) * tc;
            let bottom = at(r1, c0) * (1.0 - tc) + at(r1, c1) * tc;
            values.push(top * (1.0 - tr) + bottom * tr);
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plane_is_rebuilt_exactly_and_a_bump_between_the_lattice_is_lost() {
        // 7 x 8 cells, step 3: lattice rows 0, 3, 6 and columns 0, 3, 6, 7.
        assert_eq!(lattice_windows(7, 8, 3), 12);
        let plane: Vec<f64> = (0..56)
            .map(|i| (i / 8) as f64 * 2.0 + (i % 8) as f64)
            .collect();
        let rebuilt = interpolated_field(&plane, 7, 8, 3);
        for (a, b) in rebuilt.iter().zip(&plane) {
            assert!((a - b).abs() < 1e-12, "{rebuilt:?}");
        }
        // A bump at (1, 1), off the lattice, is interpolated away; one at
        // (3, 3), on it, is kept and spreads to its neighbours.
        let mut bumps = plane.clone();
        bumps[9] += 30.0;
        bumps[3 * 8 + 3] += 30.0;
        let estimated = interpolated_field(&bumps, 7, 8, 3);
        assert!((estimated[9] - (plane[9] + 30.0 / 9.0)).abs() < 1e-12);
        assert_eq!(estimated[3 * 8 + 3], bumps[3 * 8 + 3]);
    }
}
