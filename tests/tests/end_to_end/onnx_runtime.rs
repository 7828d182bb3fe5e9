//! ONNX Runtime beside libtorch: the shipped models, exported to ONNX at
//! setup from the same weights, give the same logits on either runtime, and
//! the window methods the same maps.

use lens_tests::repo_root;
use lens_worker::cli::{plain_map, MapSetting};
use lens_worker::digits::held_out_presets;
use lens_worker::engine::{Classifier, InputImage, Target};
use lens_worker::methods::MethodKind;
use lens_worker::models::{LoadedModel, OnnxModel, Precision, TorchScriptModel};
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

#[test]
fn window_methods_map_a_digit_alike_on_both_runtimes() {
    let root = repo_root();
    let mut model =
        LoadedModel::load("digits", &root.join("models"), Device::Cpu, Precision::Full).unwrap();
    let (_, values) = held_out_presets(&root.join("data")).unwrap().remove(3);
    let image = InputImage {
        shape: model.classifier.input_shape(),
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
    let methods = [
        MethodKind::EfficientPda,
        MethodKind::Occlusion,
        MethodKind::Pda,
    ];
    let on_torch: Vec<_> = methods
        .iter()
        .map(|&kind| plain_map(&model, kind, &setting, &image).unwrap())
        .collect();
    model.classifier = Box::new(onnx("digits"));
    for (kind, torch) in methods.into_iter().zip(on_torch) {
        let onnx = plain_map(&model, kind, &setting, &image).unwrap();
        assert_eq!(onnx.explained, torch.explained, "{kind:?}");
        let difference = onnx.maps[0]
            .iter()
            .zip(&torch.maps[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // Bits for the PDA methods (the paper's figures show tenths), a
        // probability for occlusion.
        assert!(difference <= 1e-4, "{kind:?}: maps differ by {difference}");
        assert!(
            torch.maps[0].iter().any(|v| *v != 0.0),
            "{kind:?}: an empty map"
        );
    }
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
