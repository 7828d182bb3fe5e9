//! ONNX Runtime beside libtorch: the shipped models, exported to ONNX at
//! setup from the same weights, give the same logits on either runtime, and
//! the window methods the same maps.

use lens_tests::repo_root;
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
        assert!(difference <= 1e-4, "{model} {kind:?}: maps differ by {difference}");
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
