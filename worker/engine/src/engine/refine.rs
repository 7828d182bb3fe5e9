//! Adaptive refinement: the fine map for a share of the forward passes.
//!
//! A run's windows sit on a grid of `rows x columns` cells (`grid.rs`).
//! Lattice L holds the cells whose row and column are multiples of 2^L,
//! plus the last row and column, so that every cell lies between lattice
//! cells. A run with a budget below 1 computes the coarsest lattice first,
//! then goes down level by level to the requested stride: each level's new
//! cells (in lattice L, not in L + 1) are either computed or estimated by
//! bilinear interpolation between the cells of lattice L + 1 around them,
//! whose values are final by then. Computed are those the map's reading
//! depends on most: cells whose neighbours straddle the edge of the top or
//! bottom decile of the evidence, then those whose neighbours disagree most.
//! Each level gets the budget left in proportion to its new cells, a
//! coarser level's weighing `COARSE_WEIGHT` times a finer one's. The
//! covering lattice is itself computed sparsest part first (lattices L + 2
//! and L + 1), the whole map previewed after each part and each level.
//!
//! The map is then the per-pixel mean over every window, computed or
//! estimated, as a full run's is. Which cells are computed depends only on
//! computed values, and those only on the window and the seed, so a request
//! gives the same map whatever the batch size, tile size or device order.

use std::ops::ControlFlow;

use tch::{Kind, Tensor};

use super::device::{host_f32, host_f64, upload};
use super::error::EngineError;
use super::progress::{MapTile, Progress, WindowResults};
use super::window_run::{restore_cells, TileRelease, WindowRun};
use super::windows::{order_by_tiles, Rect, Window};

/// How much more of the budget a coarser level's cell gets than a finer
/// one's (measured on the digits, PDA and occlusion at 1/4 and 1/8 of the
/// windows: 1 gave rank 0.89 / top-10% 0.83 for PDA at 1/4, 10 gave
/// 0.93 / 0.91; computing whole coarse levels first, 0.94 / 0.88).
const COARSE_WEIGHT: f64 = 10.0;
/// Refinement follows the edges of the evidence above this quantile (and
/// below one minus it).
const EDGE_QUANTILE: f64 = 0.9;
/// How many lattices sparser than the covering one are computed first, each
/// previewed, so that a long run paints a map early (a sixteenth of a
/// photo's windows is the covering lattice alone: seconds on a CPU).
const SPARSER_PREVIEWS: u32 = 2;
/// A sparser lattice is previewed only with this many positions along each
/// axis at least (fewer say too little to be worth a map).
const PREVIEW_POSITIONS: usize = 3;

/// Which cells a budgeted run computes, level by level.
#[derive(Clone, Debug)]
pub struct Refinement {
    rows: usize,
    columns: usize,
    /// The coarsest lattice's level.
    top: u32,
    /// Cells to compute in all.
    target: usize,
}

/// A cell that may be estimated: the four cells of the coarser lattice
/// around it, with its bilinear weights (zero where it lies on their row
/// or column).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub cell: usize,
    pub corners: [usize; 4],
    pub weights: [f64; 4],
}

/// One level of the refinement.
#[derive(Clone, Debug)]
pub struct Level {
    /// The cells of the coarser lattice, final when this level starts.
    pub known: Vec<usize>,
    /// The cells this level adds.
    pub candidates: Vec<Candidate>,
}

/// Positions along an axis of `n` cells: every `step`-th, and the last.
pub fn lattice(n: usize, step: usize) -> Vec<usize> {
    let mut at: Vec<usize> = (0..n).step_by(step).collect();
    if at.last() != Some(&(n - 1)) {
        at.push(n - 1);
    }
    at
}

/// The lattice positions around `i`, and how far it lies from the first
/// towards the second.
pub fn bracket(i: usize, positions: &[usize]) -> (usize, usize, f64) {
    match positions.binary_search(&i) {
        Ok(_) => (i, i, 0.0),
        Err(after) => {
            let (low, high) = (positions[after - 1], positions[after]);
            (low, high, (i - low) as f64 / (high - low) as f64)
        }
    }
}

impl Refinement {
    /// The plan for `budget` (in (0, 1]) of the `rows x columns` cells of
    /// windows `window` pixels wide, `stride` apart. The coarsest lattice
    /// is the finest whose windows leave no pixel between them uncovered
    /// where they can (as `Schedule::CoarseToFine`'s): a field estimated
    /// from windows further apart misses whatever lies between them.
    pub fn new(rows: usize, columns: usize, window: usize, stride: usize, budget: f64) -> Self {
        let cells = rows * columns;
        let wanted = ((budget * cells as f64).ceil() as usize).clamp(1, cells);
        let longest = rows.max(columns);
        let covering = (window / stride).max(1);
        let mut top = 0;
        while (2usize << top) <= covering && (1usize << top) + 1 < longest {
            top += 1;
        }
        Refinement {
            rows,
            columns,
            top,
            target: wanted.max(lattice_cells(rows, columns, top)),
        }
    }

    /// Cells computed in all.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The coarsest lattice, computed first.
    pub fn coarse_cells(&self) -> Vec<usize> {
        self.cells(self.top)
    }

    fn cells(&self, level: u32) -> Vec<usize> {
        let columns = lattice(self.columns, 1 << level);
        lattice(self.rows, 1 << level)
            .into_iter()
            .flat_map(|r| columns.iter().map(move |c| r * self.columns + c))
            .collect()
    }

    /// The levels below the coarsest lattice, coarse first.
    pub fn levels(&self) -> Vec<Level> {
        self.levels_below(self.top)
    }

    /// The levels below lattice `level`, coarse first.
    fn levels_below(&self, level: u32) -> Vec<Level> {
        (0..level).rev().map(|l| self.level(l)).collect()
    }

    /// The lattices sparser than the covering one that are computed and
    /// previewed first (`SPARSER_PREVIEWS`), sparsest first.
    fn sparser(&self) -> Vec<u32> {
        let wide = |level: u32| {
            lattice(self.rows, 1 << level).len() >= PREVIEW_POSITIONS
                && lattice(self.columns, 1 << level).len() >= PREVIEW_POSITIONS
        };
        (self.top + 1..=self.top + SPARSER_PREVIEWS)
            .rev()
            .filter(|&level| wide(level))
            .collect()
    }

    fn level(&self, level: u32) -> Level {
        let (step, parent) = (1 << level, 2 << level);
        let (parent_rows, parent_columns) =
            (lattice(self.rows, parent), lattice(self.columns, parent));
        let columns = lattice(self.columns, step);
        let cell = |r: usize, c: usize| r * self.columns + c;
        let mut candidates = Vec::new();
        for r in lattice(self.rows, step) {
            for &c in &columns {
                let (r0, r1, wr) = bracket(r, &parent_rows);
                let (c0, c1, wc) = bracket(c, &parent_columns);
                if r0 == r1 && c0 == c1 {
                    continue; // on the coarser lattice
                }
                candidates.push(Candidate {
                    cell: cell(r, c),
                    corners: [cell(r0, c0), cell(r0, c1), cell(r1, c0), cell(r1, c1)],
                    weights: [
                        (1.0 - wr) * (1.0 - wc),
                        (1.0 - wr) * wc,
                        wr * (1.0 - wc),
                        wr * wc,
                    ],
                });
            }
        }
        Level {
            known: self.cells(level + 1),
            candidates,
        }
    }

    /// How many of each level's candidates are computed: the budget left
    /// after the coarsest lattice, shared in proportion to the candidates,
    /// each weighing `COARSE_WEIGHT` times as much as the next finer
    /// level's (a coarse cell's estimate feeds every finer one around it).
    pub fn shares(&self, levels: &[Level]) -> Vec<usize> {
        let mut left = self.target - lattice_cells(self.rows, self.columns, self.top);
        let weight = |i: usize| {
            levels[i].candidates.len() as f64 * COARSE_WEIGHT.powi((levels.len() - 1 - i) as i32)
        };
        let mut pending: f64 = (0..levels.len()).map(weight).sum();
        (0..levels.len())
            .map(|i| {
                let n = levels[i].candidates.len();
                // The finest level takes what is left (never more than it has).
                let take = if i + 1 == levels.len() {
                    left.min(n)
                } else {
                    ((left as f64 * weight(i) / pending).floor() as usize).min(n)
                };
                left -= take;
                pending -= weight(i);
                take
            })
            .collect()
    }
}

fn lattice_cells(rows: usize, columns: usize, level: u32) -> usize {
    lattice(rows, 1 << level).len() * lattice(columns, 1 << level).len()
}

/// The `count` candidates of `level` most worth computing (indices into
/// its candidates, increasing), by the explained class's evidence `field`
/// (one value per cell, final on the coarser lattice): first those whose
/// corners straddle the edge of the top or bottom decile of the known
/// cells, then by how much their corners disagree.
pub fn choose(level: &Level, field: &[f64], count: usize) -> Vec<usize> {
    let candidates = &level.candidates;
    if count >= candidates.len() {
        return (0..candidates.len()).collect();
    }
    let mut known: Vec<f64> = level.known.iter().map(|&c| field[c]).collect();
    known.sort_by(f64::total_cmp);
    let quantile = |q: f64| known[((known.len() - 1) as f64 * q).round() as usize];
    let (low_edge, high_edge) = (quantile(1.0 - EDGE_QUANTILE), quantile(EDGE_QUANTILE));
    let scored: Vec<(bool, f64)> = candidates
        .iter()
        .map(|candidate| {
            let around = candidate
                .corners
                .iter()
                .zip(candidate.weights)
                .filter(|(_, w)| *w > 0.0)
                .map(|(&corner, _)| field[corner]);
            let (low, high) = around.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            let straddles =
                (low < high_edge && high >= high_edge) || (low <= low_edge && high > low_edge);
            (straddles, high - low)
        })
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let ((edge_a, range_a), (edge_b, range_b)) = (scored[a], scored[b]);
        edge_b
            .cmp(&edge_a)
            .then(range_b.total_cmp(&range_a))
            .then(a.cmp(&b))
    });
    order.truncate(count);
    order.sort_unstable();
    order
}

/// Sets each candidate's cell, in every row of every `[rows, cells]`
/// tensor, to the weighted mean of its corners.
fn estimate(tensors: &[Tensor], candidates: &[&Candidate]) -> Result<(), EngineError> {
    let Some(first) = tensors.first() else {
        return Ok(());
    };
    if candidates.is_empty() {
        return Ok(());
    }
    let device = first.device();
    let n = candidates.len() as i64;
    let cells: Vec<i64> = candidates.iter().map(|c| c.cell as i64).collect();
    let corners: Vec<i64> = candidates
        .iter()
        .flat_map(|c| c.corners.map(|corner| corner as i64))
        .collect();
    let weights: Vec<f64> = candidates.iter().flat_map(|c| c.weights).collect();
    let (cells, corners) = (upload(&cells, device), upload(&corners, device));
    let weights = upload(&weights, device).f_view([1, n, 4])?;
    for tensor in tensors {
        let rows = tensor.size()[0];
        let values = tensor
            .f_index_select(1, &corners)?
            .f_view([rows, n, 4])?
            .f_mul(&weights)?
            .f_sum_dim_intlist([2i64].as_slice(), false, Kind::Double)?;
        let _ = tensor.shallow_clone().f_index_copy_(1, &cells, &values)?;
    }
    Ok(())
}

/// Runs `refinement` on `run`: computes its cells (those in `done`, from a
/// run taken over, are not computed again), estimates the rest, reports
/// the whole estimated map after each sparser lattice, once the covering
/// lattice is done and again after each level but the last (the page
/// repaints it as it sharpens), and each tile of `tiles` as it becomes
/// final during the last level.
/// Returns the estimated cells, increasing.
pub(super) fn refine(
    run: &mut WindowRun,
    refinement: &Refinement,
    done: Option<&WindowResults>,
    tiles: &[Rect],
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Vec<usize>, EngineError> {
    let device = run.input.device;
    let mut computed = vec![false; run.grid.cells()];
    if let Some(done) = done {
        if restore_cells(done, &mut run.results, device)? {
            for &cell in &done.cells {
                computed[cell as usize] = true;
            }
        }
    }
    let mut progress = Counter {
        // Cells taken over count as done from the start.
        done: computed.iter().filter(|&&c| c).count(),
        total: refinement.target(),
    };
    // Sparser lattices first, each previewed: part of the covering
    // lattice's cells, so nothing is computed twice.
    for level in refinement.sparser() {
        let cells = refinement.cells(level);
        compute(run, &cells, &[], &mut computed, &mut progress, on_progress)?;
        preview(run, &refinement.levels_below(level), &progress, on_progress)?;
    }
    compute(
        run,
        &refinement.coarse_cells(),
        &[],
        &mut computed,
        &mut progress,
        on_progress,
    )?;

    let levels = refinement.levels();
    // The whole map from the coarsest lattice alone.
    preview(run, &levels, &progress, on_progress)?;

    let mut estimated = Vec::new();
    for (i, (level, share)) in levels.iter().zip(refinement.shares(&levels)).enumerate() {
        let field = host_f64(&run.results.evidence.get(0))?;
        let chosen = choose(level, &field, share);
        let cells: Vec<usize> = chosen.iter().map(|&i| level.candidates[i].cell).collect();
        let mut chosen = chosen.into_iter().peekable();
        let rest: Vec<&Candidate> = (0..level.candidates.len())
            .filter(|&i| chosen.next_if_eq(&i).is_none())
            .map(|i| &level.candidates[i])
            .collect();
        // Estimated before the chosen cells are computed (their corners are
        // final already), so that on the last level each tile is final as
        // soon as the computed windows over it are.
        estimate(&run.results.all(), &rest)?;
        estimated.extend(rest.iter().map(|c| c.cell));
        let last = i + 1 == levels.len();
        let final_tiles = if last { tiles } else { &[] };
        compute(
            run,
            &cells,
            final_tiles,
            &mut computed,
            &mut progress,
            on_progress,
        )?;
        if !last {
            preview(run, &levels[i + 1..], &progress, on_progress)?;
        }
    }
    if levels.is_empty() {
        // The lattice was every window: every tile is final.
        compute(run, &[], tiles, &mut computed, &mut progress, on_progress)?;
    }
    estimated.sort_unstable();
    Ok(estimated)
}

/// Reports the whole map as it stands: the cells of the `finer` levels
/// (not known yet) estimated on a copy, level by level, since a level's
/// corners are the cells of the one before.
fn preview(
    run: &WindowRun,
    finer: &[Level],
    progress: &Counter,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let field = run.results.evidence.get(0).copy().unsqueeze(0);
    for level in finer {
        let candidates: Vec<&Candidate> = level.candidates.iter().collect();
        estimate(std::slice::from_ref(&field), &candidates)?;
    }
    let coarse = Progress::Coarse {
        values: host_f32(&run.grid.per_pixel_mean(&field.get(0)))?,
        windows_done: progress.done,
        total_windows: progress.total,
    };
    if on_progress(coarse).is_break() {
        return Err(EngineError::Cancelled);
    }
    Ok(())
}

/// Windows computed so far, of how many.
struct Counter {
    done: usize,
    total: usize,
}

/// Computes the cells not computed yet, in batches, reporting each. With
/// `tiles`, every other cell is final: the cells go tile by tile
/// (`order_by_tiles`) and each tile is sent as soon as no cell still to
/// compute covers it.
fn compute(
    run: &mut WindowRun,
    cells: &[usize],
    tiles: &[Rect],
    computed: &mut [bool],
    progress: &mut Counter,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let fresh: Vec<Window> = cells
        .iter()
        .filter(|&&cell| !computed[cell])
        .map(|&cell| run.grid.window_of(cell))
        .collect();
    let (ordered, ready) = if tiles.is_empty() {
        (fresh, Vec::new())
    } else {
        order_by_tiles(fresh, tiles, 0)
    };
    let mut release = TileRelease::new(&ready);
    let width = run.input.shape.width;
    // Tiles no window still to compute covers.
    let already = release.final_after(0, run.grid, width, &run.results.evidence)?;
    if !already.is_empty() {
        report_batch(already, progress, on_progress)?;
    }
    let mut windows_done = 0;
    for batch in ordered.chunks(run.windows_per_batch) {
        run.compute(batch, on_progress)?;
        progress.done += batch.len();
        windows_done += batch.len();
        let tiles = release.final_after(windows_done, run.grid, width, &run.results.evidence)?;
        report_batch(tiles, progress, on_progress)?;
    }
    for &cell in cells {
        computed[cell] = true;
    }
    Ok(())
}

fn report_batch(
    tiles: Vec<MapTile>,
    progress: &Counter,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let report = Progress::Batch {
        tiles,
        windows_done: progress.done,
        total_windows: progress.total,
    };
    match on_progress(report) {
        ControlFlow::Break(()) => Err(EngineError::Cancelled),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lattices_keep_the_last_cell_and_nest() {
        assert_eq!(lattice(25, 8), vec![0, 8, 16, 24]);
        assert_eq!(lattice(10, 4), vec![0, 4, 8, 9]);
        assert_eq!(lattice(1, 4), vec![0]);
        for step in [1, 2, 4, 8] {
            let coarse = lattice(23, 2 * step);
            let fine = lattice(23, step);
            assert!(coarse.iter().all(|p| fine.contains(p)), "step {step}");
        }
    }

    #[test]
    fn every_cell_is_computed_first_or_a_candidate_once() {
        let cases = [
            (25, 25, 4, 1, 0.25),
            (25, 25, 4, 1, 0.03),
            (7, 12, 8, 1, 0.5),
            (1, 9, 4, 1, 0.3),
            (108, 108, 10, 2, 0.125),
        ];
        for (rows, columns, window, stride, budget) in cases {
            let plan = Refinement::new(rows, columns, window, stride, budget);
            let mut seen = vec![0; rows * columns];
            for cell in plan.coarse_cells() {
                seen[cell] += 1;
            }
            let levels = plan.levels();
            for level in &levels {
                for candidate in &level.candidates {
                    seen[candidate.cell] += 1;
                    let sum: f64 = candidate.weights.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-12);
                    // Corners were decided before this level.
                    for corner in candidate.corners {
                        assert!(level.known.contains(&corner));
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{rows} x {columns}");
            let shares = plan.shares(&levels);
            let computed = plan.coarse_cells().len() + shares.iter().sum::<usize>();
            assert_eq!(computed, plan.target(), "{rows} x {columns} at {budget}");
            let wanted = (budget * (rows * columns) as f64).ceil() as usize;
            assert_eq!(plan.target(), wanted.max(plan.coarse_cells().len()));
        }
    }

    #[test]
    fn the_coarsest_lattice_is_the_finest_whose_windows_cover_the_image() {
        // The digits (k = 4, stride 1): every 4th window, 7 x 7 of 625.
        let plan = Refinement::new(25, 25, 4, 1, 0.25);
        assert_eq!(plan.coarse_cells().len(), 49);
        assert_eq!(plan.target(), 157);
        assert_eq!(plan.levels().len(), 2);
        // A budget below the lattice computes the lattice.
        assert_eq!(Refinement::new(25, 25, 4, 1, 0.01).target(), 49);
        // Photos at k = 10, stride 2: windows 5 cells apart, so every 4th
        // (a power of two: lattices nest).
        let plan = Refinement::new(108, 108, 10, 2, 0.25);
        assert_eq!(plan.coarse_cells().len(), 28 * 28);
        // Windows side by side already: nothing to refine.
        let plan = Refinement::new(10, 10, 4, 4, 0.25);
        assert!(plan.levels().is_empty());
        assert_eq!(plan.target(), 100);
    }

    #[test]
    fn a_cell_between_two_lattice_cells_is_their_mean() {
        let plan = Refinement::new(1, 5, 4, 1, 0.4);
        assert_eq!(plan.coarse_cells(), vec![0, 4]);
        let levels = plan.levels();
        let middle = &levels[0].candidates[0];
        assert_eq!(middle.cell, 2);
        let field = [1.0, 0.0, 0.0, 0.0, 3.0];
        let value: f64 = (middle.corners.iter())
            .zip(middle.weights)
            .map(|(&c, w)| field[c] * w)
            .sum();
        assert_eq!(value, 2.0);
    }

    #[test]
    fn refinement_goes_where_the_neighbours_straddle_an_edge() {
        // A step in a row of 17 cells between cells 9 and 10: of the
        // second level's candidates, the one between 8 and 12 straddles it.
        let plan = Refinement::new(1, 17, 8, 1, 0.3);
        let levels = plan.levels();
        let field: Vec<f64> = (0..17).map(|i| if i >= 10 { 1.0 } else { 0.0 }).collect();
        let level = levels
            .iter()
            .find(|l| l.candidates.iter().any(|c| c.cell == 10))
            .expect("a level with cell 10");
        let chosen = choose(level, &field, 1);
        assert_eq!(level.candidates[chosen[0]].cell, 10);
    }
}
