//! Where the k x k windows sit, how many windows cover each pixel, and the
//! order in which windows are computed so that the map can be streamed in
//! tiles whose values are final.
//!
//! Positions along an axis come from `lens_windows` (0, s, 2s, ...,
//! and n - k so that the borders are covered): every pixel is covered by
//! at least one window and the per-pixel mean is always defined (strides
//! larger than the window would skip pixels; requests are validated
//! against that).

/// A window, in image pixels: top-left corner and side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub size: usize,
}

impl Window {
    /// Whether the window overlaps the rectangle.
    pub fn overlaps(&self, rect: &Rect) -> bool {
        self.x < rect.x + rect.width
            && rect.x < self.x + self.size
            && self.y < rect.y + rect.height
            && rect.y < self.y + self.size
    }
}

/// A rectangle of the image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// Window start positions along one axis of `length` pixels (the page
/// reads maps with the same function).
pub fn positions(length: usize, window: usize, stride: usize) -> Vec<usize> {
    assert!(window >= 1 && window <= length && stride >= 1);
    lens_windows::positions(length, window, stride)
}

/// A covering subset of `starts` with as little overlap as the grid allows:
/// from the first start, each next one is the furthest that leaves no gap.
/// When the stride divides the window these windows do not overlap.
pub fn coarse_positions(starts: &[usize], window: usize) -> Vec<usize> {
    let mut chosen = vec![starts[0]];
    let last = starts[starts.len() - 1];
    while let Some(&current) = chosen.last().filter(|&&c| c != last) {
        let furthest = starts.iter().rev().find(|&&p| p <= current + window);
        // With a stride above the window a gap cannot be avoided: the next.
        let next = furthest
            .filter(|&&p| p > current)
            .or_else(|| starts.iter().find(|&&p| p > current))
            .expect("the last start lies ahead");
        chosen.push(*next);
    }
    chosen
}

/// All windows of an image, row by row.
pub fn windows(height: usize, width: usize, window: usize, stride: usize) -> Vec<Window> {
    let xs = positions(width, window, stride);
    positions(height, window, stride)
        .into_iter()
        .flat_map(|y| xs.iter().map(move |&x| Window { x, y, size: window }))
        .collect()
}

/// How many windows contain each pixel (row-major, height x width).
pub fn coverage(height: usize, width: usize, windows: &[Window]) -> Vec<u32> {
    let mut counts = vec![0u32; height * width];
    for w in windows {
        for row in w.y..w.y + w.size {
            for count in &mut counts[row * width + w.x..row * width + w.x + w.size] {
                *count += 1;
            }
        }
    }
    counts
}

/// The order windows are computed in. Neither changes the map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Tile by tile in raster order.
    #[default]
    Plain,
    /// First a set of windows that covers the image once (`coarse_positions`
    /// on both axes), which gives a complete coarse map at a fraction of the
    /// cost; then the others, tile by tile, refining it.
    CoarseToFine,
}

/// The image cut into `tile` x `tile` squares (smaller at the right and
/// bottom edges), in raster order.
pub fn tile_rects(height: usize, width: usize, tile: usize) -> Vec<Rect> {
    (0..height)
        .step_by(tile)
        .flat_map(|y| {
            (0..width).step_by(tile).map(move |x| Rect {
                x,
                y,
                width: tile.min(width - x),
                height: tile.min(height - y),
            })
        })
        .collect()
}

/// Windows in the order they are computed, grouped by the tile they finish.
///
/// Tiles are visited in raster order; each takes every window overlapping it
/// that no earlier tile took. Once a tile's windows and all earlier ones are
/// done, no later window touches the tile, so its values are final. With
/// `Schedule::CoarseToFine` the coarse windows come before all tiles.
#[derive(Debug)]
pub struct TileSchedule {
    /// Every window exactly once, in computation order.
    pub windows: Vec<Window>,
    /// Each tile with the number of windows (a prefix of `windows`) after
    /// which it is final, in nondecreasing order.
    pub tiles: Vec<(Rect, usize)>,
    /// How many windows come first to make the coarse map (0 when plain).
    pub coarse: usize,
}

impl TileSchedule {
    pub fn new(
        height: usize,
        width: usize,
        window: usize,
        stride: usize,
        tile: usize,
        schedule: Schedule,
    ) -> Self {
        let mut pending = windows(height, width, window, stride);
        let mut ordered = Vec::with_capacity(pending.len());
        if schedule == Schedule::CoarseToFine {
            let ys = coarse_positions(&positions(height, window, stride), window);
            let xs = coarse_positions(&positions(width, window, stride), window);
            let (coarse, rest): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|w| ys.contains(&w.y) && xs.contains(&w.x));
            ordered.extend(coarse);
            pending = rest;
        }
        let coarse = ordered.len();
        let (by_tile, tiles) = order_by_tiles(pending, &tile_rects(height, width, tile), coarse);
        ordered.extend(by_tile);
        TileSchedule {
            windows: ordered,
            tiles,
            coarse,
        }
    }
}

/// `pending` windows grouped by the tile they finish: each of `rects` in
/// turn takes the windows overlapping it that no earlier one took (in
/// their order), and is final once `before` windows and its own and all
/// earlier ones are done.
pub fn order_by_tiles(
    mut pending: Vec<Window>,
    rects: &[Rect],
    before: usize,
) -> (Vec<Window>, Vec<(Rect, usize)>) {
    let mut ordered = Vec::with_capacity(pending.len());
    let mut tiles = Vec::with_capacity(rects.len());
    for &rect in rects {
        let (mine, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|w| w.overlaps(&rect));
        ordered.extend(mine);
        pending = rest;
        tiles.push((rect, before + ordered.len()));
    }
    debug_assert!(pending.is_empty(), "every window overlaps some tile");
    (ordered, tiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_cover_the_last_pixel() {
        assert_eq!(positions(10, 4, 1), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(positions(10, 4, 3), vec![0, 3, 6]);
        assert_eq!(positions(10, 4, 4), vec![0, 4, 6]);
        assert_eq!(positions(4, 4, 2), vec![0]);
    }

    #[test]
    fn coverage_counts_at_border_and_middle() {
        // Stride 1, k = 3 on 7 x 7: a corner pixel is in 1 window, an edge
        // pixel in the middle of the top row in 3, a centre pixel in 3 x 3.
        let w = windows(7, 7, 3, 1);
        let c = coverage(7, 7, &w);
        assert_eq!(c[0], 1);
        assert_eq!(c[3], 3);
        assert_eq!(c[3 * 7 + 3], 9);
        assert_eq!(c[6 * 7 + 6], 1);
        assert_eq!(c[6], 1);

        // k = 4, stride 1 on 28 x 28 (the digits default): the middle pixel is
        // in 16 windows, the pixel at (1, 1) in 2 x 2.
        let w = windows(28, 28, 4, 1);
        assert_eq!(w.len(), 25 * 25);
        let c = coverage(28, 28, &w);
        assert_eq!(c[14 * 28 + 14], 16);
        assert_eq!(c[28 + 1], 4);
        assert_eq!(c[27 * 28], 1);

        // k = 4, stride 3 on 10 x 10: starts 0, 3, 6. Column counts per axis are
        // [1,1,1,2,1,1,2,1,1,1]; a pixel's count is the product of its row and
        // column counts.
        let w = windows(10, 10, 4, 3);
        let c = coverage(10, 10, &w);
        let axis = [1, 1, 1, 2, 1, 1, 2, 1, 1, 1];
        for y in 0..10 {
            for x in 0..10 {
                assert_eq!(c[y * 10 + x], axis[y] * axis[x], "pixel ({x}, {y})");
            }
        }

        // Any stride up to k leaves no pixel uncovered (strides above k are
        // rejected by the request validation for that reason).
        for (k, s) in [(2, 2), (3, 2), (5, 5), (4, 3)] {
            let c = coverage(11, 9, &windows(11, 9, k, s));
            assert!(c.iter().all(|&n| n >= 1), "k = {k}, stride = {s}");
        }
    }

    #[test]
    fn coarse_positions_cover_the_axis_once_where_they_can() {
        // Stride divides the window: non-overlapping, plus the last start.
        assert_eq!(
            coarse_positions(&positions(28, 4, 1), 4),
            vec![0, 4, 8, 12, 16, 20, 24]
        );
        assert_eq!(coarse_positions(&positions(224, 10, 2), 10).len(), 23);
        assert_eq!(coarse_positions(&positions(10, 4, 2), 4), vec![0, 4, 6]);
        // Stride 3 with k = 4: the furthest start that leaves no gap.
        assert_eq!(coarse_positions(&positions(13, 4, 3), 4), vec![0, 3, 6, 9]);
        assert_eq!(coarse_positions(&positions(4, 4, 1), 4), vec![0]);
    }

    #[test]
    fn schedule_takes_every_window_once_and_tiles_are_final() {
        let cases = [(28, 4, 1, 7), (28, 5, 2, 8), (10, 10, 1, 3), (13, 3, 4, 5)];
        for ((n, k, s, t), schedule) in cases
            .into_iter()
            .flat_map(|c| [(c, Schedule::Plain), (c, Schedule::CoarseToFine)])
        {
            let kind = schedule;
            let schedule = TileSchedule::new(n, n, k, s, t, kind);
            if kind == Schedule::CoarseToFine && s <= k {
                // The coarse windows alone cover every pixel.
                let first = coverage(n, n, &schedule.windows[..schedule.coarse]);
                assert!(first.iter().all(|&c| c >= 1), "n {n} k {k} s {s}");
                if (n, k, s) == (28, 4, 1) {
                    assert_eq!(schedule.coarse, 7 * 7, "non-overlapping 4 x 4 windows");
                }
            }
            let all = windows(n, n, k, s);
            assert_eq!(schedule.windows.len(), all.len());
            for w in &all {
                assert_eq!(schedule.windows.iter().filter(|o| *o == w).count(), 1);
            }
            let mut previous = 0;
            for (rect, done) in &schedule.tiles {
                assert!(*done >= previous);
                previous = *done;
                // No window after the tile's prefix touches the tile.
                assert!(schedule.windows[*done..].iter().all(|w| !w.overlaps(rect)));
            }
            assert_eq!(previous, all.len());
        }
    }
}
