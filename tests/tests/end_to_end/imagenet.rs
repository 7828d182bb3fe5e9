//! EfficientNet-Lite0, exported to TorchScript at setup, on the photos that
//! ship in the packages: the model folder loads through its description and
//! the ImageNet crop gives the classes a person would expect.

use lens_tests::repo_root;
use lens_worker::engine::Classifier;
use lens_worker::input::photo_from_bytes;
use lens_worker::models::{Resize, TorchScriptModel};
use tch::{Device, Tensor};

fn top_classes(model: &TorchScriptModel, photo: &str, n: usize) -> Vec<(String, f32)> {
    let bytes = std::fs::read(repo_root().join("data/photos").join(photo)).unwrap();
    let image = photo_from_bytes(&bytes, model.input_shape()).unwrap();
    let s = model.input_shape();
    let batch = Tensor::from_slice(&image.values).view([
        1,
        s.channels as i64,
        s.height as i64,
        s.width as i64,
    ]);
    let _guard = tch::no_grad_guard();
    let probabilities =
        Vec::<f32>::try_from(model.probabilities(&batch).unwrap().view([-1])).unwrap();
    let mut ranked: Vec<(usize, f32)> = probabilities.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .take(n)
        .map(|(c, p)| (model.class_names()[c].clone(), p))
        .collect()
}

#[test]
fn efficientnet_lite0_recognises_the_shipped_photos() {
    let model = TorchScriptModel::load(&repo_root().join("models/efficientnet-lite0"), Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}: run ./dev setup first"));
    let description = model.description();
    assert_eq!(
        (description.height, description.width, description.channels),
        (224, 224, 3)
    );
    assert_eq!(description.resize, Resize::ImagenetCrop);
    assert_eq!(model.num_classes(), 1000);
    assert_eq!(model.class_names()[285], "Egyptian cat");

    let cat = top_classes(&model, "chelsea.png", 3);
    assert!(
        ["tiger cat", "Egyptian cat", "tabby"].contains(&cat[0].0.as_str()),
        "chelsea.png: {cat:?}"
    );
    // The exported module exposes its last convolutional features (Grad-CAM).
    let probe = Tensor::zeros([1, 3, 224, 224], (tch::Kind::Float, Device::Cpu));
    let features = model
        .features(&probe)
        .unwrap()
        .expect("features for Grad-CAM");
    assert_eq!(features.size(), vec![1, 1280, 7, 7]);

    let coffee = top_classes(&model, "coffee.png", 3);
    assert_eq!(coffee[0].0, "espresso", "coffee.png: {coffee:?}");
    assert!(coffee[0].1 > 0.5);
}

/// The conditional sampler works for the window sizes the page offers;
/// another size is refused with the sizes there are; the statistics setup
/// fitted are those a fit from scratch makes.
#[test]
fn the_conditional_sampler_takes_every_offered_window_size() {
    use lens_worker::models::{LoadedModel, Precision};
    let model = LoadedModel::load(
        "efficientnet-lite0",
        &repo_root().join("models"),
        Device::Cpu,
        Precision::Full,
    )
    .unwrap();
    assert_eq!(model.conditional_windows(4), vec![6, 10, 16, 24]);
    for window in [6, 10, 16, 24] {
        let sampler = model.conditional(window, 4).unwrap();
        assert_eq!(sampler.window(), window);
    }
    let Err(refused) = model.conditional(20, 4) else {
        panic!("window 20 has no statistics");
    };
    let refused = refused.to_string();
    assert!(
        refused.contains("28 x 28 patches") && refused.contains("windows 6, 10, 16 and 24"),
        "{refused}"
    );

    let fresh = lens_tests::temp_folder("fit-14").join("patches-14.safetensors");
    lens_tests::run_command(&[
        "fit-patches",
        "--photos",
        "data/photos",
        "--side",
        "14",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&fresh).unwrap()
            == std::fs::read(repo_root().join("models/efficientnet-lite0/patches-14.safetensors"))
                .unwrap(),
        "a fit from scratch gives the shipped statistics"
    );
}
