//! The baseline a budgeted map is compared with: a hierarchical occlusion
//! of the same cost, refining as HiPe does (Cooper et al., "Believe the
//! HiPe: Hierarchical perturbation for fast, robust, and model-agnostic
//! saliency mapping", Pattern Recognition 2022), read onto our window grid.
//! From the covering lattice down, level by level, a window is computed
//! only where the coarser windows around it have evidence above the mean of
//! that level's known windows (HiPe refines the salient regions), the
//! highest first, within the same share of the budget per level as the
//! refinement's (what a level leaves goes to the next); a window not
//! computed takes the value of the nearest coarser window (HiPe upsamples
//! its coarse map: no interpolation).
//!
//! Made from a full run's window field: draws are keyed by window, so a
//! window has the value it would have in a run of its own.

use lens_engine::engine::Refinement;

/// The window field HiPe's rule would make with `refinement`'s budget, and
/// how many windows it computed.
pub fn hierarchical_field(field: &[f64], refinement: &Refinement) -> (Vec<f64>, usize) {
    let mut values = vec![f64::NAN; field.len()];
    let coarse = refinement.coarse_cells();
    for &cell in &coarse {
        values[cell] = field[cell];
    }
    let mut computed = coarse.len();
    let levels = refinement.levels();
    let mut left_over = 0;
    for (level, share) in levels.iter().zip(refinement.shares(&levels)) {
        let known: Vec<f64> = level.known.iter().map(|&c| values[c]).collect();
        let threshold = known.iter().sum::<f64>() / known.len().max(1) as f64;
        // Each candidate's highest coarser neighbour.
        let highest: Vec<f64> = (level.candidates.iter())
            .map(|candidate| {
                (candidate.corners.iter().zip(candidate.weights))
                    .filter(|(_, w)| *w > 0.0)
                    .map(|(&corner, _)| values[corner])
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        let mut salient: Vec<usize> = (0..highest.len())
            .filter(|&i| highest[i] > threshold)
            .collect();
        salient.sort_by(|&a, &b| highest[b].total_cmp(&highest[a]).then(a.cmp(&b)));
        salient.truncate(share + left_over);
        left_over = share + left_over - salient.len();
        computed += salient.len();
        let mut chosen = vec![false; level.candidates.len()];
        for &i in &salient {
            chosen[i] = true;
        }
        for (candidate, chosen) in level.candidates.iter().zip(chosen) {
            values[candidate.cell] = if chosen {
                field[candidate.cell]
            } else {
                values[candidate.corners[nearest_corner(&candidate.weights)]]
            };
        }
    }
    (values, computed)
}

/// The corner with the largest weight, the first of equals (top left
/// before bottom right).
fn nearest_corner(weights: &[f64; 4]) -> usize {
    (1..4).fold(
        0,
        |best, i| if weights[i] > weights[best] { i } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_computed_where_the_evidence_is_high_and_copied_elsewhere() {
        // 9 x 9 cells at window 4, stride 1: the covering lattice is every
        // 4th cell (0, 4, 8); one level of step 2, then one of step 1.
        let (rows, columns) = (9, 9);
        let bump = |r: usize, c: usize| {
            if r >= 6 && c >= 6 {
                10.0
            } else {
                r as f64 * 0.01
            }
        };
        let field: Vec<f64> = (0..rows * columns)
            .map(|i| bump(i / columns, i % columns))
            .collect();
        let plan = Refinement::new(rows, columns, 4, 1, 0.5);
        let (values, computed) = hierarchical_field(&field, &plan);
        assert!(computed <= plan.target(), "never over the budget");
        assert!(computed > plan.coarse_cells().len());
        // Every cell has a value; those computed equal the field.
        assert!(values.iter().all(|v| v.is_finite()));
        // The bump's corner (8, 8) is known; the cells next to it lie
        // between it and the rest, above the mean: computed exactly.
        assert_eq!(values[6 * columns + 8], field[6 * columns + 8]);
        assert_eq!(values[8 * columns + 7], field[8 * columns + 7]);
        // Far from the bump nothing is refined: a cell takes the value of
        // the nearest coarser one, not an interpolation.
        assert_eq!(values[columns + 1], field[0]);
    }
}
