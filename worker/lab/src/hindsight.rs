//! How far the refinement's scheme can go: the same covering lattice,
//! levels, share per level and bilinear estimates as `engine/refine.rs`,
//! but each level computes the windows whose estimate is furthest from
//! their true value, known in hindsight from a full run's window field.
//! No rule sees those errors before computing, so this column is a
//! ceiling in practice for any choice of windows under the scheme (greedy
//! level by level, so not a proof): where a target lies above it, no
//! better rule reaches it, only another scheme.

use lens_engine::engine::Refinement;

/// The window field the refinement would make with `refinement`'s budget
/// if it chose, at each level, the windows worst estimated in `field`.
pub fn hindsight_field(field: &[f64], refinement: &Refinement) -> Vec<f64> {
    let mut values = vec![f64::NAN; field.len()];
    for cell in refinement.coarse_cells() {
        values[cell] = field[cell];
    }
    let levels = refinement.levels();
    for (level, share) in levels.iter().zip(refinement.shares(&levels)) {
        let estimates: Vec<f64> = (level.candidates.iter())
            .map(|c| {
                (c.corners.iter().zip(c.weights))
                    .map(|(&k, w)| values[k] * w)
                    .sum()
            })
            .collect();
        let misses: Vec<f64> = (level.candidates.iter().zip(&estimates))
            .map(|(c, estimate)| (field[c.cell] - estimate).abs())
            .collect();
        let mut worst: Vec<usize> = (0..misses.len()).collect();
        worst.sort_by(|&a, &b| misses[b].total_cmp(&misses[a]).then(a.cmp(&b)));
        let mut computed = vec![false; misses.len()];
        for &i in worst.iter().take(share) {
            computed[i] = true;
        }
        for ((candidate, estimate), computed) in
            level.candidates.iter().zip(estimates).zip(computed)
        {
            values[candidate.cell] = if computed {
                field[candidate.cell]
            } else {
                estimate
            };
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_computed_are_those_worst_estimated() {
        // One row of 17 cells at window 8, stride 1: lattice 0, 8, 16, then
        // levels of step 4, 2 and 1. A line is estimated exactly but for
        // one bump at cell 5, which no coarser cell sees.
        let field: Vec<f64> = (0..17)
            .map(|i| i as f64 + if i == 5 { 10.0 } else { 0.0 })
            .collect();
        // 7 windows: the lattice, both of step 4, one of step 2 (every
        // estimate there exact) and one of step 1, which must be the bump.
        let plan = Refinement::new(1, 17, 8, 1, 0.4);
        assert_eq!(plan.target(), 7);
        assert_eq!(hindsight_field(&field, &plan), field);
        // The lattice alone estimates the bump from its neighbours.
        let lattice_only = hindsight_field(&field, &Refinement::new(1, 17, 8, 1, 0.1));
        assert_eq!(lattice_only[5], 5.0);
    }
}
