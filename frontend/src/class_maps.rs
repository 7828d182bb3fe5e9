//! Which map is on screen: the explained class's (streamed tile by tile),
//! another class's (sent with the run, from the same forward passes), or
//! the contrast of two classes ("why A rather than B?": A's weight of
//! evidence minus B's, in bits). Switching is instant: no new run.

use crate::heatmap::Heatmap;
use crate::run_view::RunView;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MapView {
    /// The class the run explains.
    #[default]
    Explained,
    Class(u32),
    /// Evidence for the first class minus evidence for the second.
    Contrast(u32, u32),
}

impl MapView {
    /// As the address holds it (`see=`): "3", or "3-5" for a contrast.
    pub fn to_link(self) -> Option<String> {
        match self {
            MapView::Explained => None,
            MapView::Class(c) => Some(c.to_string()),
            MapView::Contrast(a, b) => Some(format!("{a}-{b}")),
        }
    }

    pub fn from_link(text: &str) -> MapView {
        let number = |t: &str| t.parse::<u32>().ok();
        match text.split_once('-') {
            Some((a, b)) => match (number(a), number(b)) {
                (Some(a), Some(b)) if a != b => MapView::Contrast(a, b),
                _ => MapView::Explained,
            },
            None => number(text).map_or(MapView::Explained, MapView::Class),
        }
    }

    /// The class the view shows the map of (the first one of a contrast).
    pub fn class(self, run: &RunView) -> u32 {
        match self {
            MapView::Explained => run.explained,
            MapView::Class(c) | MapView::Contrast(c, _) => c,
        }
    }
}

/// The values of `class`'s map, once the run has one for it.
fn class_values<'a>(run: &'a RunView, explained: &'a Heatmap, class: u32) -> Option<&'a [f32]> {
    if class == run.explained {
        return Some(&explained.values);
    }
    run.class_maps
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, values)| values.as_slice())
}

/// Whether the run has a map of `class` (the page shows it instantly).
pub fn has_map(run: &RunView, explained: &Heatmap, class: u32) -> bool {
    class_values(run, explained, class).is_some()
}

/// The map the view shows; the explained one where the run has no map for
/// the view's classes (yet).
pub fn displayed(view: MapView, run: &RunView, explained: &Heatmap) -> Heatmap {
    let with = |values: Vec<f32>| Heatmap {
        width: explained.width,
        height: explained.height,
        values,
    };
    let shown = match view {
        MapView::Explained => None,
        MapView::Class(c) => class_values(run, explained, c).map(|v| with(v.to_vec())),
        MapView::Contrast(a, b) => {
            match (
                class_values(run, explained, a),
                class_values(run, explained, b),
            ) {
                (Some(a), Some(b)) => Some(with(a.iter().zip(b).map(|(a, b)| a - b).collect())),
                _ => None,
            }
        }
    };
    shown.unwrap_or_else(|| explained.clone())
}

/// The view that can be shown: `view`, or the explained class's where the
/// run lacks a map it needs.
pub fn available(view: MapView, run: &RunView, explained: &Heatmap) -> MapView {
    let ok = match view {
        MapView::Explained => true,
        MapView::Class(c) => has_map(run, explained, c),
        MapView::Contrast(a, b) => has_map(run, explained, a) && has_map(run, explained, b),
    };
    if ok {
        view
    } else {
        MapView::Explained
    }
}

/// The line under the map.
pub fn caption(view: MapView, run: &RunView) -> String {
    match view {
        MapView::Contrast(a, b) => format!(
            "Why {} rather than {}?",
            run.class_name(a),
            run.class_name(b)
        ),
        _ => format!("Evidence for {}", run.class_name(view.class(run))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with_maps() -> (RunView, Heatmap) {
        let run = RunView {
            explained: 1,
            class_maps: vec![(0, vec![1.0, 2.0]), (2, vec![0.5, -1.0])],
            ..Default::default()
        };
        let explained = Heatmap {
            width: 2,
            height: 1,
            values: vec![3.0, 4.0],
        };
        (run, explained)
    }

    #[test]
    fn links_name_a_class_or_a_contrast() {
        for view in [MapView::Class(3), MapView::Contrast(3, 5)] {
            assert_eq!(MapView::from_link(&view.to_link().unwrap()), view);
        }
        assert_eq!(MapView::Explained.to_link(), None);
        for bad in ["", "x", "3-3", "3-", "-3"] {
            assert_eq!(MapView::from_link(bad), MapView::Explained, "{bad}");
        }
    }

    #[test]
    fn a_contrast_is_the_difference_of_two_maps() {
        let (run, explained) = run_with_maps();
        assert_eq!(
            displayed(MapView::Contrast(1, 2), &run, &explained).values,
            vec![2.5, 5.0]
        );
        assert_eq!(
            displayed(MapView::Contrast(0, 1), &run, &explained).values,
            vec![-2.0, -2.0]
        );
        assert_eq!(
            displayed(MapView::Class(2), &run, &explained).values,
            vec![0.5, -1.0]
        );
    }

    #[test]
    fn a_class_without_a_map_shows_the_explained_one() {
        let (run, explained) = run_with_maps();
        assert_eq!(
            available(MapView::Class(7), &run, &explained),
            MapView::Explained
        );
        assert_eq!(
            available(MapView::Contrast(0, 7), &run, &explained),
            MapView::Explained
        );
        assert_eq!(
            displayed(MapView::Class(7), &run, &explained).values,
            vec![3.0, 4.0]
        );
        assert_eq!(
            available(MapView::Contrast(0, 2), &run, &explained),
            MapView::Contrast(0, 2)
        );
    }
}
