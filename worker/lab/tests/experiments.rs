//! The experiment commands end to end on small settings. `sanity`:
//! cascading randomisation through the digits network's named weights and
//! through EfficientNet-Lite0's TorchScript parameters, the data
//! randomisation test, and the errors for a model whose parameters cannot
//! be re-drawn. `estimators`: every few-pass design against PDA on a small
//! model with its own patch statistics.
//!
//! - `digits_cascade_goes_from_the_top_layer_down_and_the_shuffled_labels_run`
//! - `grad_cam_changes_when_efficientnets_classifier_is_randomised`
//! - `a_model_without_named_parameters_is_refused_with_the_reason`
//! - `estimators_compares_every_design_with_the_reference`
//! - `figures_draws_each_figure_with_its_data`: Figs. 11, 13 and 16 on a
//!   few images and samples.
//! - `photo_maps_come_from_stored_maps_and_timings_from_the_engine`: Figs.
//!   14/15/19 take the maps `explain --out` left (a map and its negation
//!   give -1) and compute the missing ones; Table 1 and Fig. 12 time the
//!   digits network at three strides.
//! - `adaptive_compares_budgeted_maps_with_the_full_map_and_a_plain_stride`:
//!   a budget of every window agrees with the full map exactly; smaller
//!   ones less, and no plain stride is offered where the window is the
//!   stride.
//! - `held_out_statistics_change_nothing_when_a_copy_of_the_photo_stays`:
//!   the fitting folder holds a copy of the explained photo, so leaving the
//!   photo out leaves its statistics as they were, and the maps with them.

use lens_lab::{AdaptiveReport, Comparison, EstimatorReport, HeldOutReport, SanityReport};
use lens_tests::{run_binary, temp_folder, write_traced_model, USER_MODEL_DESCRIPTION};
use std::path::Path;

use lens_worker::engine::{InputImage, InputShape, PatchStatistics};
use lens_worker::models::{input_for, Resize};

fn lab_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_evidence-lens-lab"))
}

/// Runs `evidence-lens-lab` in the repository with these arguments and
/// returns its stdout (its stderr when it fails).
fn run_lab(arguments: &[&str]) -> String {
    run_binary(lab_binary(), arguments)
}

fn report(arguments: &[&str], name: &str) -> SanityReport {
    let out = temp_folder(name).join("sanity.json");
    let mut all = vec!["sanity", "--device", "cpu", "--out", out.to_str().unwrap()];
    all.extend(arguments);
    let table = run_lab(&all);
    assert!(table.contains("| randomised |"), "{table}");
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

fn within_bounds(comparison: &Comparison) {
    for s in &comparison.methods {
        for figure in [s.rank_correlation, s.rank_correlation_of_magnitudes, s.ssim] {
            assert!((-1.0..=1.0).contains(&figure), "{s:?}");
        }
    }
}

#[test]
fn digits_cascade_goes_from_the_top_layer_down_and_the_shuffled_labels_run() {
    let report = report(
        &[
            "--model",
            "digits",
            "--method",
            "efficient-pda,gradient",
            "--count",
            "2",
            "--stride",
            "4",
            "--shuffled-label-epochs",
            "1",
        ],
        "sanity-digits",
    );
    let changed: Vec<&str> = report.cascade.iter().map(|c| c.changed.as_str()).collect();
    assert_eq!(changed, ["fc2", "fc1", "conv2", "conv1"]);
    assert_eq!(report.methods, ["efficient-pda", "gradient"]);
    assert_eq!(report.images.len(), 2);
    report.cascade.iter().for_each(within_bounds);
    // With every layer random, no method's map is the trained one's.
    for s in &report.cascade[3].methods {
        assert!(s.rank_correlation < 0.9, "{s:?}");
    }
    let data = report.data_randomisation.expect("asked for");
    assert_eq!(data.epochs, 1);
    assert!((0.0..=1.0).contains(&data.training_accuracy));
    within_bounds(&data.comparison);
}

#[test]
fn grad_cam_changes_when_efficientnets_classifier_is_randomised() {
    let report = report(
        &[
            "--model",
            "efficientnet-lite0",
            "--method",
            "grad-cam",
            "--count",
            "1",
            "--layers",
            "2",
        ],
        "sanity-lite0",
    );
    let changed: Vec<&str> = report.cascade.iter().map(|c| c.changed.as_str()).collect();
    assert_eq!(changed, ["net._fc", "net._bn1"]);
    // Grad-CAM weighs the feature maps by the classifier's weights: random
    // weights, another map.
    let first = &report.cascade[0].methods[0];
    assert_eq!(first.method, "grad-cam");
    assert!(first.rank_correlation < 0.5, "{first:?}");
}

#[test]
fn a_model_without_named_parameters_is_refused_with_the_reason() {
    let models = temp_folder("sanity-models");
    let traced = |folder: &std::path::Path| {
        write_traced_model(folder, &mut |input| {
            input
                .mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float)
                .narrow(1, 0, 2)
        })
    };
    traced(&models.join("no-file"));
    traced(&models.join("frozen"));
    std::fs::write(
        models.join("frozen").join("model.toml"),
        format!("{USER_MODEL_DESCRIPTION}parameters = \"model.pt\"\n"),
    )
    .unwrap();
    std::fs::write(models.join("photo.png"), lens_tests::red_left_png()).unwrap();
    for (model, expected) in [
        ("no-file", "names no `parameters` file"),
        ("frozen", "has no named parameters"),
    ] {
        let output = std::process::Command::new(lab_binary())
            .args([
                "sanity",
                "--device",
                "cpu",
                "--method",
                "occlusion",
                "--stride",
                "8",
            ])
            .args(["--models", models.to_str().unwrap(), "--model", model])
            .args(["--images", models.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{model}: {stderr}"
        );
    }
}

/// A 3 x 32 x 32 model whose P(left) grows with the square of the red in
/// the middle (curved, so the estimators differ from the conditional
/// mean), with these patch statistics for its conditional sampler.
fn curved_model_with_statistics(model: &Path, statistics: &PatchStatistics) {
    write_traced_model(model, &mut |input| {
        let middle = input.narrow(1, 0, 1).narrow(2, 8, 16).narrow(3, 8, 16);
        let red = middle.mean_dim([1i64, 2, 3].as_slice(), false, tch::Kind::Float);
        tch::Tensor::stack(&[&red * &red * 8.0, red.zeros_like()], 1)
    });
    let file = format!("patches-{}.safetensors", statistics.side);
    statistics.save(&model.join(&file)).unwrap();
    std::fs::write(
        model.join("model.toml"),
        format!("{USER_MODEL_DESCRIPTION}statistics = \"{file}\"\n"),
    )
    .unwrap();
}

#[test]
fn estimators_compares_every_design_with_the_reference() {
    let folder = temp_folder("estimators");
    let model = folder.join("model");
    // Statistics of 10 x 10 patches (window 2, ring 4) from smooth images.
    let shape = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let images: Vec<InputImage> = (0..6)
        .map(|n| InputImage {
            shape,
            values: (0..shape.values())
                .map(|i| {
                    let (y, x) = ((i / 32) % 32, i % 32);
                    (0.5 + 0.4
                        * ((x as f32 + n as f32) / 5.0).sin()
                        * ((y * (n + 1)) as f32 / 9.0).cos())
                    .clamp(0.0, 1.0)
                })
                .collect(),
        })
        .collect();
    curved_model_with_statistics(&model, &PatchStatistics::fit(&images, 10, 2).unwrap());
    let photos = folder.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("red.png"), lens_tests::red_left_png()).unwrap();

    let out = folder.join("estimators.json");
    let table = run_lab(&[
        "estimators",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--images",
        photos.to_str().unwrap(),
        "--window",
        "2",
        "--stride",
        "2",
        "--passes",
        "1,2",
        "--reference-samples",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("| sigma pairs | 3 |"), "{table}");
    let report: EstimatorReport =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report.reference, "PDA, S = 8");
    let rows: Vec<(&str, usize)> = report
        .estimators
        .iter()
        .map(|e| (e.estimator.as_str(), e.passes))
        .collect();
    assert_eq!(
        rows,
        [
            ("conditional mean (efficient PDA)", 1),
            ("independent (PDA)", 1),
            ("Latin hypercube", 1),
            ("independent (PDA)", 2),
            ("antithetic pairs", 2),
            ("Latin hypercube", 2),
            ("orthogonal pairs", 2),
            ("sigma pairs", 3),
        ]
    );
    for e in &report.estimators {
        assert!((-1.0..=1.0).contains(&e.rank_correlation), "{e:?}");
        assert!((0.0..=1.0).contains(&e.top_overlap), "{e:?}");
    }
    assert!(report.ceiling >= report.split_half);
}

#[test]
fn held_out_statistics_change_nothing_when_a_copy_of_the_photo_stays() {
    let folder = temp_folder("held-out");
    let (photos, fitting) = (folder.join("photos"), folder.join("fitting"));
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::create_dir_all(&fitting).unwrap();
    let png = lens_tests::red_left_png();
    std::fs::write(photos.join("red.png"), &png).unwrap();
    std::fs::write(fitting.join("red-copy.png"), &png).unwrap();
    let shape = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let image = input_for(Resize::ImagenetCrop, shape, &png).unwrap();
    // l = 18: the default window 10 with the default ring 4.
    let model = folder.join("model");
    curved_model_with_statistics(&model, &PatchStatistics::fit(&[image], 18, 1).unwrap());
    let out = folder.join("held-out.json");
    let table = run_lab(&[
        "held-out-statistics",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--photos",
        photos.to_str().unwrap(),
        "--fitting-photos",
        fitting.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("| red.png |"), "{table}");
    let report: HeldOutReport =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report.fitted_on, ["red.png", "red-copy.png"]);
    let photo = &report.photos[0];
    assert!(
        (photo.efficient_rank_correlation - 1.0).abs() < 1e-9,
        "{photo:?}"
    );
    assert!((photo.pda_rank_correlation - 1.0).abs() < 1e-9, "{photo:?}");
    assert!(photo.pda_redrawn_rank_correlation < 1.0 - 1e-6, "{photo:?}");
}

#[test]
fn figures_draws_each_figure_with_its_data() {
    let out = temp_folder("figures");
    let table = run_lab(&[
        "figures",
        "--which",
        "11,13,16",
        "--device",
        "cpu",
        "--digits",
        "3",
        "--samples",
        "40",
        "--photo-variants",
        "1",
        "--photo-samples",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    for figure in ["Fig. 11", "Fig. 13", "Fig. 16"] {
        assert!(table.contains(figure), "{table}");
    }
    for chart in ["fig11-mean-vs-samples", "fig16-error-vs-samples"] {
        let png = image::open(out.join(format!("{chart}.png"))).unwrap();
        assert_eq!((png.width(), png.height()), (800, 500));
        let svg = std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("samples"),
            "{chart}"
        );
    }
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let fig11 = read("fig11-mean-vs-samples.json");
    let images = fig11["images"].as_array().unwrap();
    let sets: Vec<&str> = images.iter().map(|i| i["set"].as_str().unwrap()).collect();
    assert_eq!(sets, ["digits", "digits", "digits", "photos"]);
    for image in images {
        for key in ["p_at_mean", "mean_p"] {
            assert!(
                (0.0..=1.0).contains(&image[key].as_f64().unwrap()),
                "{image}"
            );
        }
        assert!(image["standard_error"].as_f64().unwrap() > 0.0, "{image}");
    }
    let fig13 = read("fig13-digits-pda-and-ours.json");
    assert_eq!(fig13["digits"].as_array().unwrap().len(), 10);
    let grid = image::open(out.join("fig13-digits-pda-and-ours.png")).unwrap();
    // Ten rows of two maps (each a little wider than tall, with its legend),
    // under the column titles and beside the row labels.
    assert!(
        grid.height() > 2 * grid.width(),
        "{} x {}",
        grid.width(),
        grid.height()
    );
    let fig16 = read("fig16-error-vs-samples.json");
    let cases: Vec<&str> = fig16["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["digit 8", "chelsea"]);
}

#[test]
fn photo_maps_come_from_stored_maps_and_timings_from_the_engine() {
    let out = temp_folder("photo-figures");
    let maps = temp_folder("photo-figures-maps");
    // A ramp as PDA's map and its negation as efficient PDA's, named as
    // `explain --out` names them; the other two columns are computed.
    let ramp: Vec<f32> = (0..224 * 224).map(|i| (i % 224 + i / 224) as f32).collect();
    let negated: Vec<f32> = ramp.iter().map(|v| -v).collect();
    let npy = lens_worker::cli::npy::write_f32;
    npy(&maps.join("astronaut-pda-450-bobsled.npy"), &ramp, 224, 224).unwrap();
    npy(
        &maps.join("astronaut-efficient-pda-450-bobsled.npy"),
        &negated,
        224,
        224,
    )
    .unwrap();
    let printed = run_lab(&[
        "figures",
        "--which",
        "12,14",
        "--device",
        "cpu",
        "--timing-models",
        "digits",
        "--photo-count",
        "1",
        "--stride",
        "10",
        "--map-samples",
        "1",
        "--maps",
        maps.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("Table 1") && printed.contains("Fig. 12"),
        "{printed}"
    );
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let photos = read("fig14-15-19-photo-maps.json");
    let astronaut = &photos["photos"][0];
    assert_eq!(astronaut["photo"], "astronaut.png");
    let with_pda: Vec<f64> = astronaut["rank_correlation_with_pda"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(with_pda.len(), 3);
    assert!((with_pda[0] + 1.0).abs() < 1e-9, "{with_pda:?}");
    assert!(with_pda[1..].iter().all(|r| r.abs() < 1.0), "{with_pda:?}");
    let grid = image::open(out.join("fig14-15-19-photo-maps.png")).unwrap();
    // One row of four maps.
    assert!(
        grid.width() > 4 * grid.height(),
        "{} x {}",
        grid.width(),
        grid.height()
    );

    let timing = read("fig12-time-per-image.json");
    assert!(
        timing["table1"][0]["seconds"].as_f64().unwrap() > 0.0,
        "{timing}"
    );
    let runs = timing["fig12"].as_array().unwrap();
    let windows: Vec<u64> = runs
        .iter()
        .map(|r| r["windows"].as_u64().unwrap())
        .collect();
    // PDA, then efficient PDA, each at strides 1, 2 and 4 over 28 x 28 with window 4.
    assert_eq!(windows, [625, 169, 49, 625, 169, 49]);
    for run in runs {
        let passes = run["forward_passes"].as_u64().unwrap();
        assert!(passes > run["windows"].as_u64().unwrap(), "{run}");
        assert!(run["seconds"].as_f64().unwrap() > 0.0, "{run}");
    }
    let png = image::open(out.join("fig12-time-per-image.png")).unwrap();
    assert_eq!((png.width(), png.height()), (800, 500));
    assert!(
        std::fs::read_to_string(out.join("fig12-time-per-image.svg"))
            .unwrap()
            .contains("seconds per image")
    );
}

#[test]
fn adaptive_compares_budgeted_maps_with_the_full_map_and_a_plain_stride() {
    let out = temp_folder("adaptive").join("adaptive.json");
    let table = run_lab(&[
        "adaptive",
        "--device",
        "cpu",
        "--count",
        "2",
        "--methods",
        "occlusion",
        "--budgets",
        "1,0.25,0.0625",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("| occlusion | 1/4 ("), "{table}");
    let report: AdaptiveReport =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report.images.len(), 2);
    let [every, quarter, sixteenth] = &report.rows[..] else {
        panic!("one row per budget: {table}");
    };
    // Every window computed is the full map itself, at the full cost.
    assert!(every.rank.worst > 1.0 - 1e-9, "{every:?}");
    assert!(every.top_overlap.worst > 1.0 - 1e-9, "{every:?}");
    assert_eq!(every.passes_share, 1.0);
    // A quarter: 157 of 625 windows (+1 pass on the image, of 626).
    assert!(
        (quarter.passes_share - 158.0 / 626.0).abs() < 1e-9,
        "{quarter:?}"
    );
    assert!(
        quarter.rank.mean < 1.0 && quarter.rank.mean > 0.5,
        "{quarter:?}"
    );
    // Stride 2 costs 169 windows, the nearest to 157.
    assert_eq!(quarter.plain_stride, Some(2));
    assert!(quarter.plain_rank.mean < 1.0, "{quarter:?}");
    // The interpolated stride 2 at a quarter; at a sixteenth the refinement
    // computes only its covering lattice (every 4th window), which is the
    // plain stride 4 interpolated: the same map (up to rounding, which may
    // order tied pixels differently).
    assert_eq!(quarter.interpolated_stride, Some(2));
    assert!(
        quarter.interpolated_rank.mean > 0.5 && quarter.interpolated_rank.mean < 1.0,
        "{quarter:?}"
    );
    assert_eq!(sixteenth.interpolated_stride, Some(4));
    eprintln!("{sixteenth:?}");
    assert_eq!(sixteenth.interpolated_rank.mean, sixteenth.rank.mean);
    assert_eq!(
        sixteenth.interpolated_top_overlap.mean,
        sixteenth.top_overlap.mean
    );
    // HiPe's rule never spends more than the budget, and its map is a map
    // of the same image (it refines only the salient windows).
    assert!(
        quarter.hierarchical_passes_share <= quarter.passes_share + 1e-9,
        "{quarter:?}"
    );
    assert!(
        quarter.hierarchical_rank.mean > 0.3 && quarter.hierarchical_rank.mean < 1.0,
        "{quarter:?}"
    );
    // Chosen in hindsight: every window at a budget of 1 (the full map),
    // a map of the same image at a quarter.
    assert!(every.hindsight_rank.worst > 1.0 - 1e-9, "{every:?}");
    assert!(
        quarter.hindsight_rank.mean > 0.5 && quarter.hindsight_top_overlap.mean > 0.5,
        "{quarter:?}"
    );
    // Deletion and insertion: the full map and the map of every window are
    // the same map.
    assert_eq!(every.gap_refined, every.gap_full);
    assert!(
        every.gap_full > 0.0,
        "a faithful map inserts better than it deletes"
    );
}
