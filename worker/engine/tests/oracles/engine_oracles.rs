//! Oracle tests of the engine: tiny hand-built models whose evidence can be
//! computed by hand, run through the real loop (real tch tensors, real
//! batching).
//!
//! - `region_model_*`: logit of class 0 is a x (sum of a fixed region), class 1
//!   is 0; evidence is exactly zero for windows that miss the region, and
//!   efficient PDA's map matches the hand-computed one.
//! - `pda_equals_efficient_when_every_sample_is_the_mean`
//! - `same_seed_same_map_bit_for_bit`, `batch_and_tile_sizes_never_change_the_map`,
//!   `draws_belong_to_the_window_not_to_the_batch`
//! - `device_batches_equal_host_built_batches`
//! - `tiles_are_final_and_cover_the_image_once`, `cancellation_stops_within_one_batch`
//! - `a_run_taken_over_computes_only_the_windows_after_those_reported`

use std::ops::ControlFlow;

use crate::common;

use common::*;
use std::sync::Arc;

use lens_engine::engine::{
    coverage, explain, inspect_window, read_window, windows, write_window, ConditionalGaussian,
    ConditionalPda, DeviceInput, EfficientPda, EngineError, ExplainParams, InputImage, InputShape,
    Laplace, MapClasses, MarginalSampler, Occlusion, PatchStatistics, Pda, Progress, Quantity,
    Rect, SampledMean, Schedule, Takeover, Target, WindowFill, WindowResults,
};

#[test]
fn region_model_gives_zero_evidence_away_from_the_region() {
    let region = Rect {
        x: 5,
        y: 4,
        width: 3,
        height: 2,
    };
    let model = RegionModel { region, gain: 0.7 };
    let sampler = varied_sampler(20);
    for (window, stride) in [(2, 1), (3, 2), (4, 4)] {
        let fill = Pda {
            sampler: &sampler,
            samples: 6,
        };
        let result = explain(
            &model,
            &test_image(),
            &fill,
            &params(window, stride, 16),
            &mut no_progress,
        )
        .unwrap();
        let all = windows(SHAPE.height, SHAPE.width, window, stride);
        for y in 0..SHAPE.height {
            for x in 0..SHAPE.width {
                let pixel = Rect {
                    x,
                    y,
                    width: 1,
                    height: 1,
                };
                let touches = all
                    .iter()
                    .any(|w| w.overlaps(&pixel) && w.overlaps(&region));
                let value = result.map()[y * SHAPE.width + x];
                let spread = result.sample_spread.as_ref().unwrap()[y * SHAPE.width + x];
                if !touches {
                    assert_eq!(value, 0.0, "k={window} s={stride} pixel ({x},{y})");
                    assert_eq!(spread, 0.0, "samples cannot disagree away from the region");
                }
            }
        }
        // Inside the region the samples do change the prediction, and differ.
        assert!(result.map()[5 * SHAPE.width + 6].abs() > 1e-3);
        assert!(result.sample_spread.as_ref().unwrap()[5 * SHAPE.width + 6] > 1e-4);
    }
}

#[test]
fn region_model_efficient_pda_matches_the_hand_computed_map() {
    let region = Rect {
        x: 3,
        y: 3,
        width: 4,
        height: 5,
    };
    let gain = 0.3;
    let model = RegionModel { region, gain };
    let sampler = varied_sampler(9);
    let image = test_image();
    let (window, stride) = (3, 2);
    let result = explain(
        &model,
        &image,
        &EfficientPda { sampler: &sampler },
        &params(window, stride, 5),
        &mut no_progress,
    )
    .unwrap();

    // By hand: P(0 | x) = sigmoid(gain * region sum); replacing a window by
    // the mean changes the region sum by (mean - x) over their overlap.
    let laplace = Laplace {
        training_images: TRAINING_IMAGES,
        classes: 2,
    };
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let at = |values: &[f32], x: usize, y: usize| values[y * SHAPE.width + x] as f64;
    let region_sum: f64 = (region.y..region.y + region.height)
        .flat_map(|y| (region.x..region.x + region.width).map(move |x| (x, y)))
        .map(|(x, y)| at(&image.values, x, y))
        .sum();
    let p_x = sigmoid(gain * region_sum);
    let all = windows(SHAPE.height, SHAPE.width, window, stride);
    let counts = coverage(SHAPE.height, SHAPE.width, &all);
    let mut expected = vec![0f64; SHAPE.pixels()];
    // Window by window (row by row, as the grid): P(0) without the window.
    assert_eq!(result.window_probabilities.len(), all.len());
    for (w, &p_without) in all.iter().zip(&result.window_probabilities) {
        let mut sum = region_sum;
        for y in w.y..w.y + w.size {
            for x in w.x..w.x + w.size {
                let inside = (region.x..region.x + region.width).contains(&x)
                    && (region.y..region.y + region.height).contains(&y);
                if inside {
                    sum += at(sampler.mean(), x, y) - at(&image.values, x, y);
                }
            }
        }
        let p_w = sigmoid(gain * sum);
        assert!(
            (p_without as f64 - p_w).abs() < 1e-6,
            "{w:?}: {p_without} vs {p_w}"
        );
        let evidence = laplace.weight_of_evidence(p_x, p_w);
        for y in w.y..w.y + w.size {
            for x in w.x..w.x + w.size {
                expected[y * SHAPE.width + x] += evidence;
            }
        }
    }
    for (i, e) in expected.iter().enumerate() {
        let e = e / counts[i] as f64;
        let got = result.map()[i] as f64;
        assert!((got - e).abs() < 1e-5, "pixel {i}: {got} vs {e}");
    }
    assert!(expected.iter().any(|e| e.abs() > 0.01));
}

#[test]
fn pda_equals_efficient_when_every_sample_is_the_mean() {
    let model = ConvModel::new();
    // Every training image is the same, so every sample equals the mean.
    let one: Vec<f32> = (0..SHAPE.values()).map(|i| (i % 5) as f32 / 4.0).collect();
    let sampler = MarginalSampler::new(SHAPE, one.repeat(8));
    let p = params(3, 1, 32);
    let pda = explain(
        &model,
        &test_image(),
        &Pda {
            sampler: &sampler,
            samples: 5,
        },
        &p,
        &mut no_progress,
    )
    .unwrap();
    let efficient = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &p,
        &mut no_progress,
    )
    .unwrap();
    assert_eq!(pda.forward_passes - 1, 5 * (efficient.forward_passes - 1));
    assert!(
        efficient.sample_spread.is_none(),
        "one sample has no spread"
    );
    let spread = pda.sample_spread.as_ref().unwrap();
    assert!(
        spread.iter().all(|s| s.abs() < 1e-6),
        "identical samples agree"
    );
    for class in 0..3 {
        for (a, b) in pda.maps[class].iter().zip(&efficient.maps[class]) {
            assert!((a - b).abs() < 1e-5, "class {class}: {a} vs {b}");
        }
    }
    assert!(efficient.map().iter().any(|v| v.abs() > 1e-4));
}

#[test]
fn same_seed_same_map_bit_for_bit() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let run = |seed| {
        let fill = Pda {
            sampler: &sampler,
            samples: 4,
        };
        let p = ExplainParams {
            seed,
            ..params(3, 1, 24)
        };
        explain(&model, &test_image(), &fill, &p, &mut no_progress).unwrap()
    };
    let (a, b, other) = (run(11), run(11), run(12));
    assert_eq!(a.maps, b.maps);
    assert_ne!(
        a.maps, other.maps,
        "a different seed draws different samples"
    );
}

/// Captum's habit: every case repeated over several batch sizes. Here the
/// maps must be bit-identical, over batch sizes and tile sizes, for every
/// window fill: draws belong to windows, evidence to grid cells.
#[test]
fn batch_and_tile_sizes_never_change_the_map() {
    let model = ConvModel::new();
    let conditional = ConditionalPda {
        gaussian: Arc::new(fitted_gaussian(4, 1)),
        samples: 3,
    };
    let check = |name: &str, fill: &dyn WindowFill| {
        let run = |batch_size, tile_size| {
            let p = ExplainParams {
                tile_size,
                ..params(4, 2, batch_size)
            };
            explain(&model, &test_image(), fill, &p, &mut no_progress).unwrap()
        };
        let reference = run(1, 1);
        assert!(reference.map().iter().any(|v| v.abs() > 1e-4), "{name}");
        for (batch_size, tile_size) in [(3, 4), (64, 12), (7, 5)] {
            let other = run(batch_size, tile_size);
            assert_eq!(
                reference.maps, other.maps,
                "{name}: batch {batch_size}, tile {tile_size}"
            );
            assert_eq!(reference.sample_spread, other.sample_spread, "{name}");
        }
    };
    with_every_window_fill(&check);
    check("conditional pda", &conditional);
}

/// A conditional sampler for `window` with a ring of `padding`, fitted to
/// shifted copies of the test image.
fn fitted_gaussian(window: usize, padding: usize) -> ConditionalGaussian {
    let images: Vec<InputImage> = (0..12)
        .map(|shift| InputImage {
            shape: SHAPE,
            values: (0..SHAPE.values())
                .map(|i| ((i * 37 + shift * 5) % 11) as f32 / 10.0)
                .collect(),
        })
        .collect();
    let stats = PatchStatistics::fit(&images, window + 2 * padding, 1).unwrap();
    ConditionalGaussian::new(stats, window, (0.0, 1.0), 1e-3).unwrap()
}

/// A window's draws are the same whichever windows share its batch: the
/// fill of every window at once equals each window's fill alone.
#[test]
fn draws_belong_to_the_window_not_to_the_batch() {
    let sampler = varied_sampler(30);
    let fill = Pda {
        sampler: &sampler,
        samples: 2,
    };
    let image = test_image();
    let input = DeviceInput::new(&image, 3, tch::Device::Cpu);
    let all = windows(SHAPE.height, SHAPE.width, 3, 3);
    let together = fill.fill_batch(&input, &all, 5).unwrap();
    for (i, w) in all.iter().enumerate() {
        let alone = fill.fill_batch(&input, &[*w], 5).unwrap();
        assert!(alone.equal(&together.narrow(0, 2 * i as i64, 2)), "{w:?}");
    }
    let other_seed = fill.fill_batch(&input, &all, 6).unwrap();
    assert!(!other_seed.equal(&together));
}

/// The batch built on the device equals the batch built the old way on the
/// host: a copy of the image per sample, the window overwritten in place.
#[test]
fn device_batches_equal_host_built_batches() {
    let three_channels = InputShape {
        channels: 3,
        height: 9,
        width: 11,
    };
    let colour = InputImage {
        shape: three_channels,
        values: (0..three_channels.values())
            .map(|i| ((i * 29) % 13) as f32 / 12.0)
            .collect(),
    };
    for image in [test_image(), colour] {
        let shape = image.shape;
        let all = windows(shape.height, shape.width, 5, 2);
        let samples = 3;
        let input = DeviceInput::new(&image, 5, tch::Device::Cpu);
        let values = shape.channels * 25;
        let replacement: Vec<f32> = (0..all.len() * samples * values)
            .map(|i| (i % 17) as f32 / 16.0)
            .collect();
        let on_device = input
            .perturbed(
                &all,
                samples,
                &tch::Tensor::from_slice(&replacement).view([-1, values as i64]),
            )
            .unwrap();
        assert_eq!(
            on_device.size(),
            [
                (all.len() * samples) as i64,
                shape.channels as i64,
                shape.height as i64,
                shape.width as i64
            ]
        );
        let mut on_host = Vec::new();
        for (row, chunk) in replacement.chunks(values).enumerate() {
            let mut copy = image.clone();
            write_window(&mut copy, all[row / samples], chunk);
            on_host.extend(copy.values);
        }
        assert_eq!(
            Vec::<f32>::try_from(on_device.contiguous().view([-1])).unwrap(),
            on_host
        );
        // And the window's own values read back through the same indices.
        let mut expected = vec![0f32; values];
        read_window(&image.values, shape, all[4], &mut expected);
        let read = input.values.take(&input.targets(&all[4..5])).view([-1]);
        assert_eq!(Vec::<f32>::try_from(read).unwrap(), expected);
    }
}

#[test]
fn tiles_are_final_and_cover_the_image_once() {
    let model = ConvModel::new();
    let sampler = varied_sampler(10);
    let mut seen = vec![0u32; SHAPE.pixels()];
    let mut tile_values = vec![f32::NAN; SHAPE.pixels()];
    let mut batches = 0;
    let result = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &params(3, 1, 7),
        &mut |progress| {
            if let Progress::Batch { tiles, .. } = progress {
                batches += 1;
                for tile in tiles {
                    let r = tile.rect;
                    for y in r.y..r.y + r.height {
                        for x in r.x..r.x + r.width {
                            seen[y * SHAPE.width + x] += 1;
                            tile_values[y * SHAPE.width + x] =
                                tile.values[(y - r.y) * r.width + (x - r.x)];
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert!(seen.iter().all(|&n| n == 1));
    assert_eq!(tile_values, result.map());
    assert_eq!(batches, 100usize.div_ceil(7));
}

#[test]
fn cancellation_stops_within_one_batch() {
    let model = ConvModel::new();
    let sampler = varied_sampler(10);
    let mut batches = 0;
    let outcome = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &params(2, 1, 4),
        &mut |progress| {
            if let Progress::Batch { .. } = progress {
                batches += 1;
                if batches == 2 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    );
    assert!(matches!(outcome, Err(EngineError::Cancelled)));
    assert_eq!(batches, 2);
}

#[test]
fn bad_parameters_are_refused_with_reasons() {
    let model = ConvModel::new();
    let sampler = varied_sampler(4);
    let run = |p: ExplainParams, samples| {
        explain(
            &model,
            &test_image(),
            &Pda {
                sampler: &sampler,
                samples,
            },
            &p,
            &mut no_progress,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(run(params(13, 1, 8), 2).contains("window 13 x 13 does not fit"));
    assert!(run(params(3, 4, 8), 2).contains("stride"));
    assert!(run(params(3, 1, 8), 0).contains("samples must be at least 1"));
    let p = ExplainParams {
        target: Target::Class(3),
        ..params(3, 1, 8)
    };
    assert!(run(p, 2).contains("class 3 does not exist"));
}

/// Coarse to fine: a complete coarse map first (the map of the windows that
/// cover the image once, here exactly the stride-k map), then final tiles,
/// and in the end the same map as the plain schedule, bit for bit.
#[test]
fn coarse_to_fine_gives_a_coarse_map_first_and_the_same_final_map() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let fill = Pda {
        sampler: &sampler,
        samples: 3,
    };
    let image = test_image();
    let run = |stride, schedule, events: &mut Vec<String>, coarse: &mut Option<Vec<f32>>| {
        let p = ExplainParams {
            schedule,
            ..params(3, stride, 8)
        };
        explain(&model, &image, &fill, &p, &mut |progress| {
            match progress {
                Progress::Started { .. } => events.push("started".into()),
                Progress::Coarse { values, .. } => {
                    events.push("coarse".into());
                    *coarse = Some(values);
                }
                Progress::Batch { tiles, .. } => {
                    events.extend(tiles.iter().map(|_| "tile".to_string()))
                }
                Progress::Windows(_) => events.push("windows".into()),
            }
            ControlFlow::Continue(())
        })
        .unwrap()
    };
    let (mut events, mut coarse) = (Vec::new(), None);
    let plain = run(1, Schedule::Plain, &mut events, &mut coarse);
    assert!(coarse.is_none() && !events.contains(&"coarse".to_string()));

    let (mut events, mut coarse) = (Vec::new(), None);
    let progressive = run(1, Schedule::CoarseToFine, &mut events, &mut coarse);
    assert_eq!(
        &events[..2],
        ["started", "coarse"],
        "coarse before any tile"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "tile").count(),
        9,
        "3 x 3 tiles"
    );
    assert_eq!(progressive.maps, plain.maps);
    assert_eq!(progressive.sample_spread, plain.sample_spread);

    let (mut events, mut unused) = (Vec::new(), None);
    let stride_k = run(3, Schedule::Plain, &mut events, &mut unused);
    assert_eq!(coarse.unwrap(), stride_k.map());
}

/// A worker that takes a run over restores the windows the first worker
/// reported and computes only the rest, in the batches an uninterrupted run
/// makes: the same explanation, bit for bit, with fewer passes.
#[test]
fn a_run_taken_over_computes_only_the_windows_after_those_reported() {
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
        ..params(3, 1, 24)
    };
    let mut reported = Vec::new();
    let mut tiles_of_whole = 0;
    let whole = explain(&model, &test_image(), &fill, &with(true, None), &mut |p| {
        match p {
            Progress::Windows(results) => reported.push(results),
            Progress::Batch { tiles, .. } => tiles_of_whole += tiles.len(),
            _ => {}
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(reported.len() > 3, "{} batches", reported.len());
    let first = |batches: usize| {
        let mut done = WindowResults::default();
        for results in reported.iter().take(batches).cloned() {
            done.extend(results);
        }
        done
    };
    let resume = |done: WindowResults| {
        let mut tiles = 0;
        let result = explain(
            &model,
            &test_image(),
            &fill,
            &with(false, Some(done)),
            &mut |p| {
                if let Progress::Batch { tiles: t, .. } = p {
                    tiles += t.len();
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        (result, tiles)
    };

    // The first worker stopped after three batches.
    let done = first(3);
    let (resumed, tiles) = resume(done.clone());
    assert_eq!(resumed.maps, whole.maps);
    assert_eq!(resumed.window_probabilities, whole.window_probabilities);
    assert_eq!(resumed.sample_spread, whole.sample_spread);
    assert_eq!(
        resumed.forward_passes,
        whole.forward_passes - 4 * done.cells.len(),
        "the reported windows are not computed again"
    );
    assert_eq!(tiles, tiles_of_whole, "every tile still goes out");

    // It stopped after its last batch: nothing left but its tiles.
    let (finished, tiles) = resume(first(reported.len()));
    assert_eq!(finished.maps, whole.maps);
    assert_eq!(finished.forward_passes, 1, "only the unperturbed pass");
    assert_eq!(tiles, tiles_of_whole);

    // Results that are not this run's first windows are not trusted.
    let mut shuffled = done;
    shuffled.cells.reverse();
    let (recomputed, _) = resume(shuffled);
    assert_eq!(recomputed.maps, whole.maps);
    assert_eq!(recomputed.forward_passes, whole.forward_passes);
}

/// The page switches between classes without a new run: the maps of the
/// other classes come from the explained class's forward passes, and each
/// must equal the map a run explaining that class alone makes.
#[test]
fn maps_of_several_classes_from_one_run_equal_single_class_runs_bit_for_bit() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let pda = Pda {
        sampler: &sampler,
        samples: 3,
    };
    let efficient = EfficientPda { sampler: &sampler };
    let fills: [(&str, &dyn WindowFill); 2] = [("pda", &pda), ("efficient pda", &efficient)];
    for (name, fill) in fills {
        for (maps, count) in [(MapClasses::All, 3), (MapClasses::Top(2), 2)] {
            let together = ExplainParams {
                target: Target::Predicted,
                maps,
                ..params(4, 2, 16)
            };
            let one_run =
                explain(&model, &test_image(), fill, &together, &mut no_progress).unwrap();
            assert_eq!(one_run.map_classes.len(), count, "{name}");
            assert_eq!(one_run.map_classes[0], one_run.predicted);
            for (class, map) in one_run.map_classes.iter().zip(&one_run.maps) {
                let alone = ExplainParams {
                    target: Target::Class(*class),
                    maps: MapClasses::Classes(Vec::new()),
                    ..params(4, 2, 16)
                };
                let single =
                    explain(&model, &test_image(), fill, &alone, &mut no_progress).unwrap();
                assert_eq!(single.maps.len(), 1);
                let bits = |m: &[f32]| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(map), bits(single.map()), "{name}: class {class}");
                assert!(map.iter().any(|v| v.abs() > 1e-4), "{name}: class {class}");
            }
        }
    }
}

/// "Look inside a window" recomputes one window; what it shows must be
/// what the run used: the window's evidence and P(class) without it, bit
/// for bit, for every window fill, over batches that split the windows.
#[test]
fn an_inspected_window_gives_the_runs_own_numbers() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let pda = Pda {
        sampler: &sampler,
        samples: 3,
    };
    let efficient = EfficientPda { sampler: &sampler };
    let mean = SampledMean {
        draws: Pda {
            sampler: &sampler,
            samples: 4,
        },
    };
    let occlusion = Occlusion { value: 0.5 };
    let fills: [(&str, &dyn WindowFill, Quantity); 4] = [
        ("pda", &pda, Quantity::LogOdds),
        ("efficient pda", &efficient, Quantity::LogOdds),
        ("sampled mean", &mean, Quantity::LogOdds),
        ("occlusion", &occlusion, Quantity::Probability),
    ];
    for (name, fill, quantity) in fills {
        let params = ExplainParams {
            quantity,
            takeover: Takeover {
                report: true,
                done: None,
            },
            ..params(4, 2, 7)
        };
        let mut reported = WindowResults::default();
        let run = explain(&model, &test_image(), fill, &params, &mut |p| {
            if let Progress::Windows(results) = p {
                reported.extend(results);
            }
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        let grid = lens_engine::engine::EvidenceGrid::new(12, 12, 4, 2, tch::Device::Cpu);
        for (x, y) in [(0, 0), (4, 2), (8, 8), (6, 4)] {
            let seen = inspect_window(&model, &test_image(), fill, &params, (x, y)).unwrap();
            let cell = grid.cell_of(&seen.window) as i64;
            let i = reported.cells.iter().position(|&c| c == cell).unwrap();
            let classes = run.map_classes.len();
            assert_eq!(
                seen.evidence.to_bits(),
                reported.evidence[i * classes].to_bits(),
                "{name} at ({x}, {y})"
            );
            assert_eq!(
                seen.p_without.to_bits(),
                reported.without[i].to_bits(),
                "{name}"
            );
            let samples = fill.samples_per_window();
            assert_eq!(seen.p_samples.len(), samples);
            assert_eq!(seen.replacements.len(), samples * 16, "S windows of 4 x 4");
            let average = seen.p_samples.iter().sum::<f64>() / samples as f64;
            assert!((average - seen.p_without).abs() < 1e-12, "{name}");
            let by_hand = match quantity {
                Quantity::LogOdds => seen.laplace.weight_of_evidence(seen.p_with, seen.p_without),
                _ => seen.p_with - seen.p_without,
            };
            assert!(
                (by_hand - seen.evidence).abs() < 1e-9,
                "{name}: the formula"
            );
        }
    }
    assert!(matches!(
        inspect_window(&model, &test_image(), &efficient, &params(4, 2, 7), (1, 0)),
        Err(EngineError::NoWindowAt { x: 1, y: 0 })
    ));
}
