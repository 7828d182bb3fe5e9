//! ONNX Runtime beside libtorch: the shipped models, exported to ONNX at
//! setup from the same weights, give the same logits on either runtime, and
//! the window methods the same maps; a model that is only an `.onnx` file
//! (built here with the `onnx` package) is listed, explained as computed by
//! hand, and refused the gradient methods with the reason; a broken one is
//! listed as broken while the others serve.

use std::path::Path;

use lens_proto::v1::{ExplainRequest, ListModelsRequest, Method};
use lens_tests::{
    assemble, collect_events, native_client, read_npy, repo_root, start_worker_with, worker_binary,
};
use lens_worker::cli::{plain_map, MapSetting};
use lens_worker::digits::held_out_presets;
use lens_worker::engine::{Classifier, InputImage, Target};
use lens_worker::methods::MethodKind;
use lens_worker::models::{LoadedModel, OnnxModel, Placement, Runtime, TorchScriptModel};
use tch::{Device, Kind, Tensor};

fn onnx(model: &str) -> OnnxModel {
    OnnxModel::load(&repo_root().join("models").join(model), 1).unwrap()
}

fn largest_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn the_shipped_models_give_the_same_logits_on_onnx_runtime() {
    tch::manual_seed(7);
    let _guard = tch::no_grad_guard();
    for model in ["digits", "efficientnet-lite0"] {
        let torch =
            TorchScriptModel::load(&repo_root().join("models").join(model), Device::Cpu).unwrap();
        let onnx = onnx(model);
        let s = torch.input_shape();
        assert_eq!(onnx.input_shape(), s);
        assert_eq!(onnx.num_classes(), torch.num_classes());
        let batch = Tensor::rand(
            [3, s.channels as i64, s.height as i64, s.width as i64],
            (Kind::Float, Device::Cpu),
        );
        let expected = torch.logits(&batch).unwrap();
        let got = onnx.logits(&batch).unwrap();
        assert_eq!(got.size(), expected.size());
        let difference = largest_difference(&got, &expected);
        assert!(difference < 1e-4, "{model}: logits differ by {difference}");
        // The engine builds photo batches channels-last: the same logits.
        let channels_last = batch
            .permute([0, 2, 3, 1])
            .contiguous()
            .permute([0, 3, 1, 2]);
        let again = onnx.logits(&channels_last).unwrap();
        assert_eq!(largest_difference(&again, &got), 0.0, "{model}");
    }
}

/// `model` loaded on `runtime` (CPU, full precision).
fn on(model: &str, runtime: Runtime) -> LoadedModel {
    let placement = Placement {
        runtime: Some(runtime),
        ..Placement::on(Device::Cpu)
    };
    LoadedModel::load_on(model, &repo_root().join("models"), placement).unwrap()
}

/// Every window method maps `image` alike on both runtimes: at most 1e-4
/// apart (bits for the PDA methods, whose figures show tenths; a
/// probability for occlusion).
fn window_methods_agree(model: &str, image: &InputImage, setting: &MapSetting) {
    let (torch, onnx) = (on(model, Runtime::Torch), on(model, Runtime::Onnx));
    assert_eq!(torch.runtime, Runtime::Torch);
    assert_eq!(onnx.runtime, Runtime::Onnx);
    for kind in [
        MethodKind::EfficientPda,
        MethodKind::Occlusion,
        MethodKind::Pda,
        MethodKind::SampledMean,
    ] {
        let expected = plain_map(&torch, kind, setting, image).unwrap();
        let got = plain_map(&onnx, kind, setting, image).unwrap();
        assert_eq!(got.explained, expected.explained, "{model} {kind:?}");
        assert_eq!(got.forward_passes, expected.forward_passes);
        let difference = got.maps[0]
            .iter()
            .zip(&expected.maps[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{model} {kind:?}: maps differ by at most {difference:.2e}");
        assert!(
            difference <= 1e-4,
            "{model} {kind:?}: maps differ by {difference}"
        );
        assert!(
            expected.maps[0].iter().any(|v| *v != 0.0),
            "{model} {kind:?}: an empty map"
        );
    }
}

#[test]
fn window_methods_map_a_digit_alike_on_both_runtimes() {
    let root = repo_root();
    let (_, values) = held_out_presets(&root.join("data")).unwrap().remove(3);
    let image = InputImage {
        shape: lens_worker::digits::SHAPE,
        values,
    };
    let setting = MapSetting {
        window: 4,
        stride: 2,
        samples: 4,
        batch_size: 64,
        seed: 1,
        target: Target::Predicted,
    };
    window_methods_agree("digits", &image, &setting);
}

#[test]
fn window_methods_map_a_photo_alike_on_both_runtimes() {
    let photo = std::fs::read(repo_root().join("data/photos/chelsea.png")).unwrap();
    let image = on("efficientnet-lite0", Runtime::Onnx)
        .input_from_bytes(&photo)
        .unwrap();
    // Windows of 24 px side by side (the conditional sampler has their
    // statistics): a hundred windows, a few seconds on libtorch.
    let setting = MapSetting {
        window: 24,
        stride: 24,
        samples: 2,
        batch_size: 32,
        seed: 1,
        target: Target::Predicted,
    };
    window_methods_agree("efficientnet-lite0", &image, &setting);
}

#[test]
fn a_folder_without_an_onnx_file_or_with_a_broken_one_says_so() {
    let folder = lens_tests::temp_folder("onnx-missing");
    for file in ["model.toml", "classes.txt"] {
        let from = repo_root().join("models/digits").join(file);
        std::fs::copy(from, folder.join(file)).unwrap();
    }
    let description = std::fs::read_to_string(folder.join("model.toml")).unwrap();
    let without: String = description
        .lines()
        .filter(|l| !l.starts_with("onnx ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(folder.join("model.toml"), &without).unwrap();
    let error = OnnxModel::load(&folder, 1).err().unwrap().to_string();
    assert!(error.contains("names no ONNX file"), "{error}");

    std::fs::write(
        folder.join("model.toml"),
        without + "onnx = \"model.onnx\"\n",
    )
    .unwrap();
    std::fs::write(folder.join("model.onnx"), b"not a model").unwrap();
    let error = OnnxModel::load(&folder, 1).err().unwrap().to_string();
    assert!(error.contains("cannot open the ONNX file"), "{error}");
    assert!(error.contains("model.onnx"), "{error}");
}

/// The left-or-right model (`tests/models/left_right.py`, made with the
/// `onnx` package at test time) in `folder`; `extra` for its variants.
fn build_left_right(folder: &Path, extra: &[&str]) {
    let root = repo_root();
    let status = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/models/left_right.py"))
        .arg(folder)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success(), "left_right.py failed");
}

/// Occlusion of the left-or-right model by hand, for windows of `window`
/// px side by side (each pixel in one window): logits (s, -s) with s the
/// left half's pixels minus the right half's, times 0.02, so P(left) =
/// sigmoid(2 s); each pixel gets the drop in P(predicted) when its window
/// turns grey (0.5). The predicted class and the map.
fn occlusion_by_hand(values: &[f32], window: usize) -> (usize, Vec<f32>) {
    let side = 28;
    let s = |x: &[f32]| -> f64 {
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                if i % side < side / 2 {
                    v as f64
                } else {
                    -(v as f64)
                }
            })
            .sum::<f64>()
            * 0.02
    };
    let p_left = |x: &[f32]| 1.0 / (1.0 + (-2.0 * s(x)).exp());
    let predicted = if p_left(values) >= 0.5 { 0 } else { 1 };
    let p = |x: &[f32]| match predicted {
        0 => p_left(x),
        _ => 1.0 - p_left(x),
    };
    let mut map = vec![0.0f32; side * side];
    for top in (0..side).step_by(window) {
        for left in (0..side).step_by(window) {
            let inside = |i: usize| {
                (top..top + window).contains(&(i / side))
                    && (left..left + window).contains(&(i % side))
            };
            let grey: Vec<f32> = (0..values.len())
                .map(|i| if inside(i) { 0.5 } else { values[i] })
                .collect();
            let drop = (p(values) - p(&grey)) as f32;
            for (i, value) in map.iter_mut().enumerate() {
                if inside(i) {
                    *value = drop;
                }
            }
        }
    }
    (predicted, map)
}

fn largest_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A held-out three as an upload, and the input the worker makes of it.
fn three() -> (Vec<u8>, Vec<f32>) {
    let (_, values) = held_out_presets(&repo_root().join("data"))
        .unwrap()
        .remove(3);
    let png = lens_worker::input::grey_png(&values, 28, 28);
    let input = lens_worker::input::digit_from_bytes(&png).unwrap().values;
    (png, input)
}

#[test]
fn the_cli_explains_an_onnx_only_model_as_computed_by_hand() {
    let work = lens_tests::temp_folder("onnx-only-cli");
    let model = work.join("left-right");
    build_left_right(&model, &[]);
    let (png, input) = three();
    let image = work.join("three.png");
    std::fs::write(&image, png).unwrap();
    let explain = |method: &str| {
        std::process::Command::new(worker_binary())
            .current_dir(repo_root())
            .args(["explain", image.to_str().unwrap(), "--device", "cpu"])
            .args(["--model", model.to_str().unwrap(), "--method", method])
            .args(["--window", "4", "--stride", "4"])
            .args(["--out", work.join("out").to_str().unwrap()])
            .output()
            .unwrap()
    };
    let occlusion = explain("occlusion");
    assert!(
        occlusion.status.success(),
        "{}",
        String::from_utf8_lossy(&occlusion.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&occlusion.stdout).unwrap();
    assert!(
        summary["runtime"]
            .as_str()
            .unwrap()
            .starts_with("ONNX Runtime 1."),
        "{summary}"
    );
    let (predicted, expected) = occlusion_by_hand(&input, 4);
    assert_eq!(summary["predicted"], predicted);
    let (shape, map) = read_npy(Path::new(summary["maps"][0]["npy"].as_str().unwrap()));
    assert_eq!(shape, vec![28, 28]);
    let gap = largest_gap(&map, &expected);
    assert!(gap <= 1e-5, "the map is {gap} from the hand's");
    assert!(
        expected.iter().any(|v| v.abs() > 1e-3),
        "a map with evidence"
    );

    // Efficient PDA with the folder's training images (the marginal sampler).
    let efficient = explain("efficient-pda");
    assert!(
        efficient.status.success(),
        "{}",
        String::from_utf8_lossy(&efficient.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&efficient.stdout).unwrap();
    assert_eq!(summary["forward_passes"], 1 + 49);

    let gradient = explain("gradient");
    assert!(!gradient.status.success());
    let stderr = String::from_utf8_lossy(&gradient.stderr);
    assert!(
        stderr.contains("gradient needs the network's gradients")
            && stderr.contains("without TorchScript"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onnx_only_model_is_served_beside_the_digits_and_a_broken_one_is_listed() {
    let models = lens_tests::temp_folder("onnx-only-models");
    build_left_right(&models.join("left-right"), &[]);
    build_left_right(&models.join("rank-two"), &["--input-rank", "2"]);
    std::os::unix::fs::symlink(repo_root().join("models/digits"), models.join("digits")).unwrap();
    let mut client = native_client(start_worker_with(&models).await).await;
    let listed = client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["digits", "left-right"]);
    let user = &listed.models[1];
    assert!(
        user.runtime.starts_with("ONNX Runtime 1."),
        "{}",
        user.runtime
    );
    assert!(user.gradients_unavailable.contains("ONNX file"), "{user:?}");
    assert!(listed.models[0].gradients_unavailable.is_empty());
    let [broken] = listed.broken.as_slice() else {
        panic!("one broken model: {:?}", listed.broken)
    };
    assert!(broken.folder.ends_with("rank-two"));
    assert!(broken.error.contains("has rank 2"), "{}", broken.error);

    let (png, input) = three();
    let ask = |method: Method| ExplainRequest {
        image: png.clone(),
        model: "left-right".into(),
        method: method as i32,
        window: 4,
        stride: 4,
        ..Default::default()
    };
    let streamed = assemble(
        collect_events(&mut client, ask(Method::Occlusion))
            .await
            .unwrap(),
    );
    assert_eq!(streamed.started.input.as_ref().unwrap().values, input);
    assert!(streamed.started.runtime.starts_with("ONNX Runtime 1."));
    let (predicted, expected) = occlusion_by_hand(&input, 4);
    assert_eq!(streamed.started.predicted_class as usize, predicted);
    let gap = largest_gap(&streamed.map, &expected);
    assert!(gap <= 1e-5, "the map is {gap} from the hand's");

    let efficient = assemble(
        collect_events(&mut client, ask(Method::EfficientPda))
            .await
            .unwrap(),
    );
    assert_eq!(efficient.finished.forward_passes, 1 + 49);

    for method in [Method::Gradient, Method::Saliency, Method::GradCam] {
        let refused = collect_events(&mut client, ask(method)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{method:?}");
        assert!(
            refused.message().contains("without TorchScript"),
            "{}",
            refused.message()
        );
    }
    // The digits still serve, gradients included (their TorchScript).
    let digit = ExplainRequest {
        image: png.clone(),
        method: Method::Gradient as i32,
        ..Default::default()
    };
    let gradient = assemble(collect_events(&mut client, digit).await.unwrap());
    assert!(
        gradient.started.runtime.starts_with("libtorch"),
        "{}",
        gradient.started.runtime
    );
}
