//! The `explain` command line on the real digits network (from ./dev setup):
//! a folder with one good digit and one broken file gives a JSON line and
//! files for the good one, a one-line report for the broken one, exit code 1;
//! the .npy holds exactly the map the engine computes.

use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;

use lens_tests::{read_npy, repo_root, worker_binary};
use lens_worker::digits::DigitsKit;
use lens_worker::engine::{
    explain, ExplainParams, MapClasses, Occlusion, Pda, Quantity, Schedule, Target,
};
use lens_worker::input::{digit_from_bytes, grey_png};

#[test]
fn explains_a_folder_reports_bad_files_and_matches_the_engine() {
    let root = repo_root();
    let kit = DigitsKit::load(&root.join("models"), &root.join("data"), tch::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}: run ./dev setup first"));
    let work = std::env::temp_dir().join(format!("lens-cli-{}", std::process::id()));
    let (inputs, out) = (work.join("in"), work.join("out"));
    std::fs::create_dir_all(&inputs).unwrap();
    let (_, pixels) = &kit.presets[6];
    let png = grey_png(pixels, 28, 28);
    std::fs::write(inputs.join("six.png"), &png).unwrap();
    std::fs::write(inputs.join("broken.png"), b"not really a png").unwrap();

    let output = Command::new(worker_binary())
        .current_dir(&root)
        .args([
            "explain",
            inputs.to_str().unwrap(),
            "--model",
            "digits",
            "--method",
            "pda",
        ])
        .args([
            "--samples",
            "4",
            "--seed",
            "9",
            "--batch-size",
            "40",
            "--classes",
            "top-3",
        ])
        .args(["--device", "cpu", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "one image failed: {stderr}");
    assert!(
        stderr.contains("broken.png: the bytes are not a PNG or JPEG image"),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON line per explained image: {stdout}"
    );
    let summary: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let maps = summary["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 3, "top-3 classes");
    assert_eq!(summary["forward_passes"], 1 + 625 * 4);

    // The explained map is the engine's, bit for bit.
    let expected = explain(
        kit.classifier(),
        &digit_from_bytes(&png).unwrap(),
        &Pda {
            sampler: kit.sampler(),
            samples: 4,
        },
        &ExplainParams {
            window: 4,
            stride: 1,
            batch_size: 40,
            tile_size: 4,
            seed: 9,
            target: Target::Predicted,
            quantity: Quantity::LogOdds,
            maps: MapClasses::Top(3),
            schedule: Schedule::Plain,
            takeover: Default::default(),
            budget: 1.0,
        },
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(summary["explained"], expected.explained);
    for (m, map) in maps.iter().enumerate() {
        assert_eq!(map["class"], expected.map_classes[m]);
        let (shape, values) = read_npy(Path::new(map["npy"].as_str().unwrap()));
        assert_eq!(shape, vec![28, 28]);
        assert_eq!(values, expected.maps[m]);
        let overlay = image::open(map["png"].as_str().unwrap()).unwrap();
        assert!(overlay.width() > 224 && overlay.height() >= 224);
    }
    let (_, spread) = read_npy(Path::new(summary["sample_spread"].as_str().unwrap()));
    assert_eq!(Some(spread), expected.sample_spread);
    std::fs::remove_dir_all(work).unwrap();
}

/// `--budget`: a quarter of the windows computed, the rest estimated, as
/// the JSON line says; the map is the engine's for the same budget.
#[test]
fn a_budget_computes_that_share_of_the_windows() {
    let root = repo_root();
    let kit = DigitsKit::load(&root.join("models"), &root.join("data"), tch::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}: run ./dev setup first"));
    let work = std::env::temp_dir().join(format!("lens-cli-budget-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let (_, pixels) = &kit.presets[3];
    let png = grey_png(pixels, 28, 28);
    let input = work.join("three.png");
    std::fs::write(&input, &png).unwrap();
    let output = Command::new(worker_binary())
        .current_dir(&root)
        .args(["explain", input.to_str().unwrap(), "--model", "digits"])
        .args([
            "--method",
            "occlusion",
            "--budget",
            "0.25",
            "--device",
            "cpu",
        ])
        .args(["--out", work.join("out").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["parameters"]["budget"], 0.25);
    assert_eq!(summary["windows"], 625);
    assert_eq!(summary["windows_computed"], 157);
    assert_eq!(summary["windows_estimated"], 625 - 157);
    assert_eq!(summary["forward_passes"], 1 + 157);

    let expected = explain(
        kit.classifier(),
        &digit_from_bytes(&png).unwrap(),
        &Occlusion { value: 0.5 },
        &ExplainParams {
            window: 4,
            stride: 1,
            batch_size: 16,
            tile_size: 4,
            seed: 0,
            target: Target::Predicted,
            quantity: Quantity::Probability,
            maps: MapClasses::Classes(Vec::new()),
            schedule: Schedule::Plain,
            takeover: Default::default(),
            budget: 0.25,
        },
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    let map = &summary["maps"][0];
    let (_, values) = read_npy(Path::new(map["npy"].as_str().unwrap()));
    assert_eq!(values, expected.maps[0]);
    std::fs::remove_dir_all(work).unwrap();
}

#[test]
fn bad_arguments_give_one_line_and_a_non_zero_exit() {
    let root = repo_root();
    for args in [
        vec!["explain", "data/no-such-image.png", "--model", "digits"],
        vec![
            "explain",
            "data/photos/coffee.png",
            "--model",
            "digits",
            "--window",
            "40",
        ],
        vec![
            "explain",
            "data/photos/coffee.png",
            "--model",
            "no-such-model",
        ],
        vec![
            "explain",
            "data/photos/coffee.png",
            "--model",
            "digits",
            "--classes",
            "zebra",
        ],
        vec![
            "explain",
            "data/photos/coffee.png",
            "--model",
            "digits",
            "--budget",
            "0",
        ],
        vec![
            "explain",
            "data/photos/coffee.png",
            "--model",
            "digits",
            "--method",
            "gradient",
            "--budget",
            "0.5",
        ],
    ] {
        let output = Command::new(worker_binary())
            .current_dir(&root)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[test]
fn half_precision_on_the_cpu_is_refused_with_the_reason() {
    let output = Command::new(worker_binary())
        .current_dir(repo_root())
        .args(["explain", "data/photos/coffee.png", "--model", "digits"])
        .args(["--device", "cpu", "--precision", "half"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("half precision runs on CUDA only"),
        "{stderr}"
    );
}
