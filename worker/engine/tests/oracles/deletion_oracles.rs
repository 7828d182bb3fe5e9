//! Deletion and insertion on models whose answers are known by hand.
//!
//! - `a_region_model_falls_exactly_while_its_region_goes`
//! - `the_random_baseline_of_a_linear_probability_matches_its_closed_form`
//! - `bad_maps_and_classes_are_refused_with_reasons`

use crate::common;

use common::{RegionModel, SHAPE, TRAINING_IMAGES};
use lens_engine::engine::{
    area, deletion_insertion, Classifier, DeletionParams, InputImage, InputShape, Rect, Removal,
};
use tch::{Device, Kind, Tensor};

/// 144 pixels in 48 steps: 3 pixels a step.
fn grey_params(class: usize) -> DeletionParams {
    DeletionParams {
        steps: 48,
        ..DeletionParams::new(class, Removal::Grey, 40)
    }
}

#[test]
fn a_region_model_falls_exactly_while_its_region_goes() {
    // 12 pixels (4 steps) carry all the evidence for class 0.
    let region = Rect {
        x: 2,
        y: 5,
        width: 4,
        height: 3,
    };
    let model = RegionModel { region, gain: 0.5 };
    let inside = |i: usize| {
        let (x, y) = (i % SHAPE.width, i / SHAPE.width);
        (region.x..region.x + region.width).contains(&x)
            && (region.y..region.y + region.height).contains(&y)
    };
    let image = InputImage {
        shape: SHAPE,
        values: (0..SHAPE.values())
            .map(|i| if inside(i) { 1.0 } else { 0.1 })
            .collect(),
    };
    // The map knows where the evidence is.
    let map: Vec<f32> = (0..SHAPE.pixels())
        .map(|i| if inside(i) { 1.0 } else { 0.0 })
        .collect();
    let result = deletion_insertion(&model, &image, &map, &grey_params(0)).unwrap();
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    // Removing region pixels (1 -> 0.5) lowers the logit by 0.25 each.
    for step in 0..=48 {
        let removed = (3 * step).min(12) as f64;
        let expected = sigmoid(0.5 * (12.0 - removed * 0.5));
        let deletion = result.map.deletion[step] as f64;
        assert!(
            (deletion - expected).abs() < 1e-5,
            "deletion step {step}: {deletion} against {expected}"
        );
        // Insertion puts the region back first.
        let inserted = (3 * step).min(12) as f64;
        let expected = sigmoid(0.5 * (6.0 + inserted * 0.5));
        let insertion = result.map.insertion[step] as f64;
        assert!(
            (insertion - expected).abs() < 1e-5,
            "insertion step {step}: {insertion} against {expected}"
        );
    }
    // The baselines spread the region's removal over the whole curve.
    assert!(result.map.deletion_auc() < result.random.deletion_auc() - 0.01);
    assert!(result.map.insertion_auc() > result.random.insertion_auc() + 0.01);
    assert_eq!(result.random_orders, 4);
    assert_eq!(result.forward_passes, 6 * 2 * 49);
    // The edge order finds the region's border first: better than random.
    assert!(result.edges.deletion_auc() < result.random.deletion_auc());
}

/// Two classes with P(0) = the mean of the pixels, exactly: the logits are
/// the log-probabilities, which the softmax maps back.
struct MeanProbability;

impl Classifier for MeanProbability {
    fn input_shape(&self) -> InputShape {
        SHAPE
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn training_images(&self) -> usize {
        TRAINING_IMAGES
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn logits(&self, batch: &Tensor) -> Result<Tensor, tch::TchError> {
        let p = batch.f_mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float)?;
        Tensor::f_stack(&[p.log(), p.ones_like().f_sub(&p)?.log()], 1)
    }
}

#[test]
fn the_random_baseline_of_a_linear_probability_matches_its_closed_form() {
    let image = InputImage {
        shape: SHAPE,
        values: (0..SHAPE.values())
            .map(|i| ((i * 37 % 101) as f32 / 100.0).clamp(0.02, 0.98))
            .collect(),
    };
    let mean = image.values.iter().map(|&v| v as f64).sum::<f64>() / SHAPE.values() as f64;
    let map = vec![0.0; SHAPE.pixels()];
    let params = DeletionParams {
        random_orders: 64,
        ..grey_params(0)
    };
    let result = deletion_insertion(&MeanProbability, &image, &map, &params).unwrap();
    // Removing a random share f of the pixels moves P(0) to
    // (1 - f) mean + f 0.5 on average: a straight line from the image's
    // mean to 0.5 for deletion (and back for insertion), whose area is
    // the mean of its ends.
    let closed_form = (mean + 0.5) / 2.0;
    let (deletion, insertion) = (result.random.deletion_auc(), result.random.insertion_auc());
    assert!(
        (deletion - closed_form).abs() < 0.004,
        "deletion {deletion} against {closed_form}"
    );
    assert!(
        (insertion - closed_form).abs() < 0.004,
        "insertion {insertion} against {closed_form}"
    );
    // The ends are exact whatever the order.
    assert!((result.random.deletion[0] as f64 - mean).abs() < 1e-5);
    assert!((result.random.deletion[48] as f64 - 0.5).abs() < 1e-5);
    assert!((result.random.insertion[0] as f64 - 0.5).abs() < 1e-5);
    assert!((area(&[0.0, 1.0]) - 0.5).abs() < 1e-12);
}

#[test]
fn bad_maps_and_classes_are_refused_with_reasons() {
    let model = RegionModel {
        region: Rect {
            x: 0,
            y: 0,
            width: 2,
            height: 2,
        },
        gain: 1.0,
    };
    let image = common::test_image();
    let short = vec![0.0; 10];
    let error = deletion_insertion(&model, &image, &short, &grey_params(0)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the map has 10 values but the image has 144 pixels"
    );
    let map = vec![0.0; SHAPE.pixels()];
    let error = deletion_insertion(&model, &image, &map, &grey_params(2)).unwrap_err();
    assert!(
        error.to_string().contains("class 2 does not exist"),
        "{error}"
    );
}
