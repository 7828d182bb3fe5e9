//! Adaptive refinement (a budget below 1): which windows it computes, how
//! well it estimates the rest, and that it changes nothing it must not.

use std::ops::ControlFlow;
use std::sync::Arc;

use lens_engine::engine::{
    explain, Classifier, EngineError, ExplainParams, Explanation, InputImage, InputShape,
    MapClasses, Occlusion, Pda, Progress, Quantity, Takeover, Target, WindowResults,
};
use tch::{Device, Kind, Tensor};

use crate::common::{
    no_progress, params, test_image, varied_sampler, with_every_window_fill, ConvModel,
};

const SIDE: usize = 40;
const WINDOW: usize = 4;
/// Windows along each axis at stride 1.
const CELLS: usize = SIDE - WINDOW + 1;
/// The first column of the step.
const EDGE: usize = 21;

/// Two classes, logit 0 = sum of w(y, x) x(y, x) with a weight that rises
/// gently across the image and steps up by 1 at column `EDGE`; logit 1 = 0.
/// Occluding a window of an image of ones with zeros takes the window's
/// weights out of logit 0: its evidence (logit quantity) is the sum of the
/// weights under it, linear in the window's position except where the
/// window covers the step.
struct SmoothWithEdge {
    weight: Tensor,
}

fn weight(y: usize, x: usize) -> f64 {
    0.01 * x as f64 + 0.02 * y as f64 + if x >= EDGE { 1.0 } else { 0.0 }
}

impl SmoothWithEdge {
    fn new() -> Self {
        let values: Vec<f32> = (0..SIDE * SIDE)
            .map(|i| weight(i / SIDE, i % SIDE) as f32)
            .collect();
        SmoothWithEdge {
            weight: Tensor::from_slice(&values).view([1, 1, SIDE as i64, SIDE as i64]),
        }
    }
}

impl Classifier for SmoothWithEdge {
    fn input_shape(&self) -> InputShape {
        InputShape {
            channels: 1,
            height: SIDE,
            width: SIDE,
        }
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn training_images(&self) -> usize {
        100
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn logits(&self, batch: &Tensor) -> Result<Tensor, tch::TchError> {
        let logit = (batch.to_kind(Kind::Double) * self.weight.to_kind(Kind::Double))
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double);
        Ok(Tensor::stack(&[logit.shallow_clone(), logit.zeros_like()], 1).to_kind(Kind::Float))
    }
}

/// The map worked out by hand: each window's evidence is the sum of the
/// weights under it, each pixel's value the mean over its windows.
fn map_by_hand() -> Vec<f64> {
    let evidence = |wy: usize, wx: usize| -> f64 {
        (wy..wy + WINDOW)
            .flat_map(|y| (wx..wx + WINDOW).map(move |x| weight(y, x)))
            .sum()
    };
    let mut map = vec![0.0; SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let covering = |p: usize| (p.saturating_sub(WINDOW - 1))..=p.min(CELLS - 1);
            let (mut sum, mut count) = (0.0, 0.0);
            for wy in covering(y) {
                for wx in covering(x) {
                    sum += evidence(wy, wx);
                    count += 1.0;
                }
            }
            map[y * SIDE + x] = sum / count;
        }
    }
    map
}

fn largest_difference(map: &[f32], by_hand: &[f64]) -> f64 {
    map.iter()
        .zip(by_hand)
        .map(|(&got, want)| (got as f64 - want).abs())
        .fold(0.0, f64::max)
}

fn edge_params(budget: f64) -> ExplainParams {
    ExplainParams {
        tile_size: 8,
        target: Target::Class(0),
        quantity: Quantity::Logit,
        maps: MapClasses::Classes(Vec::new()),
        budget,
        ..params(WINDOW, 1, 64)
    }
}

/// Occlusion with zeros of an image of ones on `SmoothWithEdge`, computing
/// `budget` of the windows.
fn explain_edge(
    budget: f64,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Explanation {
    let model = SmoothWithEdge::new();
    let ones = InputImage {
        shape: model.input_shape(),
        values: vec![1.0; SIDE * SIDE],
    };
    let fill = Occlusion { value: 0.0 };
    explain(&model, &ones, &fill, &edge_params(budget), on_progress).unwrap()
}

/// The oracle: where the evidence is linear in the window's position,
/// interpolation is exact, so a budget that covers the windows around the
/// step gives the hand-computed map with most windows estimated; the
/// windows whose box just reaches the step (a kink of the window field,
/// columns EDGE - 4 and EDGE) are computed, not estimated.
#[test]
fn refinement_computes_the_windows_at_the_edge_and_estimates_the_smooth_rest() {
    let mut total_windows = 0;
    let result = explain_edge(0.45, &mut |p| {
        if let Progress::Started {
            total_windows: n, ..
        } = p
        {
            total_windows = n;
        }
        ControlFlow::Continue(())
    });
    let windows = CELLS * CELLS;
    assert_eq!(result.windows, windows);
    let computed = windows - result.estimated_windows.len();
    let budget = (0.45 * windows as f64).ceil() as usize;
    assert_eq!(computed, budget, "the budget is spent exactly");
    assert_eq!(
        total_windows, budget,
        "Started announces the windows computed"
    );
    assert_eq!(result.forward_passes, budget + 1);

    for cell in &result.estimated_windows {
        let column = cell % CELLS;
        assert!(
            column != EDGE - WINDOW && column != EDGE,
            "window ({column}, {}) reaches the step: it must be computed",
            cell / CELLS
        );
    }
    let by_hand = map_by_hand();
    let worst = largest_difference(result.map(), &by_hand);
    // A kink left to interpolation would be off by 2 (half the step under
    // a window's 4 rows); float logits of about 800 round at 1e-4.
    assert!(
        worst < 1e-2,
        "largest difference from the map by hand: {worst}"
    );

    // Too small a budget must estimate across the step: the map is then
    // visibly wrong there, which is what the budget above avoided.
    let starved = explain_edge(0.08, &mut no_progress);
    let worst_starved = largest_difference(starved.map(), &by_hand);
    assert!(worst_starved > 0.1, "{worst_starved}");
}

/// The map as it sharpens: a preview after each of two lattices sparser
/// than the covering one (part of it, computed first), after the covering
/// lattice and after each level but the last; each is the hand-computed
/// map wherever the window field is linear between the known windows
/// (bilinear interpolation is exact there), and the last is no further
/// from it than the first.
#[test]
fn a_budgeted_run_previews_the_whole_map_as_it_sharpens() {
    let mut previews = Vec::new();
    let result = explain_edge(0.45, &mut |p| {
        if let Progress::Coarse {
            values,
            windows_done,
            ..
        } = p
        {
            previews.push((values, windows_done));
        }
        ControlFlow::Continue(())
    });
    // 37 cells a side at window 4: lattices of step 16 (4 x 4 cells with
    // the last) and 8 (6 x 6) first, then the covering one of step 4
    // (10 x 10), then levels of step 2 and 1: a preview after each but
    // the last.
    let done: Vec<usize> = previews.iter().map(|p| p.1).collect();
    assert_eq!(&done[..3], [16, 36, 100], "sparsest lattice first");
    assert_eq!(previews.len(), 4);
    let by_hand = map_by_hand();
    // The field bends where a window reaches the step (columns EDGE - 4 =
    // 17 and EDGE = 21), inside the lattices' brackets; pixels left of
    // column 17 read windows in [0, 16] only, exact from every lattice,
    // and from the covering one on, pixels right of 26 (windows in [24,
    // 36]) too.
    let exact = |pixel: usize, preview: usize| {
        let x = pixel % SIDE;
        x <= 16 || (preview >= 2 && x >= 27)
    };
    for (i, (preview, _)) in previews.iter().enumerate() {
        for (pixel, (&got, want)) in preview.iter().zip(&by_hand).enumerate() {
            if exact(pixel, i) {
                assert!(
                    (got as f64 - want).abs() < 1e-2,
                    "preview {i}, pixel ({}, {}): {got} against {want}",
                    pixel % SIDE,
                    pixel / SIDE
                );
            }
        }
    }
    let first = largest_difference(&previews[0].0, &by_hand);
    let last = largest_difference(&previews[3].0, &by_hand);
    assert!(last <= first, "the preview sharpens: {first} then {last}");
    assert!(largest_difference(result.map(), &by_hand) < 1e-2);
}

/// On the last level, each tile goes out as soon as the windows computed
/// over it are done (the rest of its windows are final or estimated by
/// then), not all at the end: the first before the last window, each
/// once, after every preview, and with the finished map's own values.
#[test]
fn a_budgeted_run_sends_each_tile_as_it_becomes_final() {
    let (mut sent, mut coarse_after_tile) = (Vec::new(), false);
    let mut tile_events = 0;
    let result = explain_edge(0.45, &mut |p| match p {
        Progress::Batch {
            tiles,
            windows_done,
            ..
        } if !tiles.is_empty() => {
            tile_events += 1;
            sent.extend(tiles.into_iter().map(|t| (t, windows_done)));
            ControlFlow::Continue(())
        }
        Progress::Coarse { .. } => {
            coarse_after_tile |= !sent.is_empty();
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    });
    let computed = CELLS * CELLS - result.estimated_windows.len();
    // 40 x 40 pixels in tiles of 8.
    assert_eq!(sent.len(), 25, "every tile once");
    assert!(!coarse_after_tile, "previews come before the final tiles");
    assert!(
        sent[0].1 < computed,
        "the first tile after {} of {computed} windows",
        sent[0].1
    );
    assert!(tile_events > 2, "tiles in {tile_events} reports");
    let mut map = vec![f32::NAN; SIDE * SIDE];
    for (tile, _) in &sent {
        let r = tile.rect;
        for (i, &v) in tile.values.iter().enumerate() {
            map[(r.y + i / r.width) * SIDE + r.x + i % r.width] = v;
        }
    }
    assert_eq!(map, result.map(), "the tiles are the finished map");
}

fn same_run(a: &Explanation, b: &Explanation, what: &str) {
    assert_eq!(a.maps, b.maps, "{what}");
    assert_eq!(a.sample_spread, b.sample_spread, "{what}");
    assert_eq!(a.window_probabilities, b.window_probabilities, "{what}");
    assert_eq!(a.estimated_windows, b.estimated_windows, "{what}");
}

/// A budget whose share rounds up to every window computes every window
/// through the refinement's own path, and gives the full run's map (and
/// everything else) bit for bit.
#[test]
fn a_budget_of_every_window_is_the_full_map_bit_for_bit() {
    let model = ConvModel::new();
    with_every_window_fill(&|name, fill| {
        let run = |budget| {
            let p = ExplainParams {
                budget,
                ..params(3, 1, 16)
            };
            explain(&model, &test_image(), fill, &p, &mut no_progress).unwrap()
        };
        let full = run(1.0);
        // 100 windows: 0.999 of them rounds up to all.
        let refined = run(0.999);
        assert!(refined.estimated_windows.is_empty(), "{name}");
        same_run(&full, &refined, name);
        assert_eq!(full.forward_passes, refined.forward_passes, "{name}");
    });
}

/// Which windows are computed depends on computed values alone, so
/// neither batches nor tiles change a budgeted map.
#[test]
fn a_budgeted_map_is_the_same_whatever_the_batch_and_tile() {
    let model = ConvModel::new();
    with_every_window_fill(&|name, fill| {
        let run = |batch_size, tile_size| {
            let p = ExplainParams {
                tile_size,
                budget: 0.5,
                ..params(3, 1, batch_size)
            };
            explain(&model, &test_image(), fill, &p, &mut no_progress).unwrap()
        };
        let reference = run(1, 1);
        assert_eq!(reference.estimated_windows.len(), 50, "{name}");
        assert!(reference.map().iter().any(|v| v.abs() > 1e-4), "{name}");
        for (batch_size, tile_size) in [(3, 4), (64, 12), (7, 5)] {
            let what = format!("{name}: batch {batch_size}, tile {tile_size}");
            same_run(&reference, &run(batch_size, tile_size), &what);
        }
        let full = explain(
            &model,
            &test_image(),
            fill,
            &params(3, 1, 16),
            &mut no_progress,
        )
        .unwrap();
        assert_ne!(
            full.maps, reference.maps,
            "{name}: half the windows were estimated"
        );
    });
}

/// A budgeted run taken over computes only the windows not reported
/// before, and ends with the same map.
#[test]
fn a_budgeted_run_taken_over_keeps_the_windows_done() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let fill = Pda {
        sampler: &sampler,
        samples: 4,
    };
    let with = |report: bool, done: Option<WindowResults>| ExplainParams {
        takeover: Takeover {
            report,
            done: done.map(Arc::new),
        },
        budget: 0.4,
        ..params(3, 1, 8)
    };
    let mut reported = Vec::new();
    let whole = explain(&model, &test_image(), &fill, &with(true, None), &mut |p| {
        if let Progress::Windows(results) = p {
            reported.push(results);
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    let mut first_half = WindowResults::default();
    for results in reported.iter().take(reported.len() / 2) {
        first_half.extend(results.clone());
    }
    let taken_over = explain(
        &model,
        &test_image(),
        &fill,
        &with(false, Some(first_half.clone())),
        &mut no_progress,
    )
    .unwrap();
    same_run(&whole, &taken_over, "taken over");
    assert_eq!(
        taken_over.forward_passes,
        whole.forward_passes - 4 * first_half.cells.len()
    );
}

#[test]
fn a_budget_outside_zero_to_one_is_refused() {
    let model = ConvModel::new();
    for budget in [0.0, -0.5, 1.5, f64::NAN] {
        let p = ExplainParams {
            budget,
            ..params(3, 1, 16)
        };
        let error = explain(
            &model,
            &test_image(),
            &Occlusion { value: 0.5 },
            &p,
            &mut no_progress,
        )
        .unwrap_err();
        assert!(
            matches!(error, EngineError::BadBudget { .. }),
            "{budget}: {error}"
        );
        assert!(error.is_invalid_argument());
        assert!(error.to_string().contains("budget"), "{error}");
    }
}
