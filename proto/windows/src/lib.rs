//! Where the k x k windows of a map sit along an axis: shared by the worker
//! (which computes them) and the page (which reads the map under the
//! pointer), so both count the same windows.
//!
//! Positions along an axis of length n are 0, s, 2s, ... up to n - k; when
//! the stride does not land on n - k, the last position n - k is added as
//! well, so that the right and bottom borders are covered too.

/// Window start positions along an axis (empty when the window does not
/// fit or the stride is 0).
pub fn positions(length: usize, window: usize, stride: usize) -> Vec<usize> {
    if window == 0 || window > length || stride == 0 {
        return Vec::new();
    }
    let last = length - window;
    let mut starts: Vec<usize> = (0..=last).step_by(stride).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    starts
}

/// The windows along an axis that contain `pixel`: a range of indices into
/// `starts`.
pub fn covering(starts: &[usize], window: usize, pixel: usize) -> std::ops::Range<usize> {
    let first = starts.partition_point(|&s| s + window <= pixel);
    let end = starts.partition_point(|&s| s <= pixel);
    first..end.max(first)
}

/// The index in `starts` of the window whose centre lies nearest `pixel`.
pub fn nearest(starts: &[usize], window: usize, pixel: usize) -> Option<usize> {
    let centre = |s: usize| 2 * s + window; // twice the centre, to stay in integers
    (0..starts.len()).min_by_key(|&i| centre(starts[i]).abs_diff(2 * pixel + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_position_covers_the_border() {
        assert_eq!(positions(10, 4, 3), vec![0, 3, 6]);
        assert_eq!(positions(10, 4, 4), vec![0, 4, 6]);
        assert_eq!(positions(4, 4, 1), vec![0]);
        assert!(positions(3, 4, 1).is_empty());
    }

    #[test]
    fn covering_windows_by_hand() {
        // k = 4, stride 1 on 28 pixels: 25 windows; pixel 14 lies in the
        // windows starting at 11, 12, 13, 14; pixel 0 only in the first.
        let starts = positions(28, 4, 1);
        assert_eq!(covering(&starts, 4, 14), 11..15);
        assert_eq!(covering(&starts, 4, 0), 0..1);
        assert_eq!(covering(&starts, 4, 27), 24..25);
        // Stride 4 on 10: windows at 0, 4, 6; pixel 5 in the middle one,
        // pixel 6 in the last two.
        let starts = positions(10, 4, 4);
        assert_eq!(covering(&starts, 4, 5), 1..2);
        assert_eq!(covering(&starts, 4, 6), 1..3);
        assert_eq!(nearest(&starts, 4, 0), Some(0));
        assert_eq!(nearest(&starts, 4, 9), Some(2));
    }
}
