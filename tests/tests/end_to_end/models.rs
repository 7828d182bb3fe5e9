//! Models as files, served over gRPC.
//!
//! - `lists_the_models_and_explains_a_photo_like_the_cli`: EfficientNet-Lite0
//!   from ./dev setup, the same map through gRPC and through `explain`.
//! - `a_dropped_in_model_is_listed_and_explained_and_broken_ones_are_reported`

use std::path::Path;

use lens_proto::v1::{ExplainRequest, ListModelsRequest, Method};
use lens_tests::{
    assemble, cli_map, collect_events, native_client, red_left_png, repo_root, start_worker,
    start_worker_with, temp_folder, write_traced_model, USER_MODEL_DESCRIPTION,
};
use tch::{Kind, Tensor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_models_and_explains_a_photo_like_the_cli() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let listed = client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.models.iter().map(|m| m.id.as_str()).collect();
    assert!(
        ids.contains(&"digits") && ids.contains(&"efficientnet-lite0"),
        "{ids:?}"
    );
    let lite0 = listed
        .models
        .iter()
        .find(|m| m.id == "efficientnet-lite0")
        .unwrap();
    assert_eq!((lite0.channels, lite0.width, lite0.height), (3, 224, 224));
    assert_eq!(lite0.class_names.len(), 1000);
    assert!(lite0.conditional_sampler && !lite0.marginal_sampler);
    // The default window (chosen by measurement) is one the sampler has.
    assert!(lite0.conditional_windows.contains(&lite0.default_window));

    // Algorithm 3 with the conditional mean, stride 2: one pass, quick.
    let photo = repo_root().join("data/photos/coffee.png");
    let request = ExplainRequest {
        image: std::fs::read(&photo).unwrap(),
        model: "efficientnet-lite0".into(),
        method: Method::Gradient as i32,
        stride: 2,
        ..Default::default()
    };
    let streamed = assemble(collect_events(&mut client, request).await.unwrap());
    let started = &streamed.started;
    assert_eq!(
        started.class_names[started.predicted_class as usize],
        "espresso"
    );
    let input = started.input.as_ref().unwrap();
    assert_eq!((input.channels, input.width, input.height), (3, 224, 224));

    let out = temp_folder("models-cli");
    let arguments = [
        photo.to_str().unwrap(),
        "--method",
        "gradient",
        "--stride",
        "2",
    ];
    assert_eq!(cli_map(&arguments, &out), streamed.map);
    std::fs::remove_dir_all(out).unwrap();
}

/// A user's model: 2 classes, "left" scores the mean of the left half of the
/// red channel, "right" the right half. Traced to TorchScript from Rust.
fn write_user_model(folder: &Path) {
    write_traced_model(folder, &mut |input| {
        let red = input.narrow(1, 0, 1);
        let left = red
            .narrow(3, 0, 16)
            .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float);
        let right = red
            .narrow(3, 16, 16)
            .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float);
        Tensor::stack(&[left, right], 1) * 10.0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_in_model_is_listed_and_explained_and_broken_ones_are_reported() {
    let models = std::env::temp_dir().join(format!("lens-user-models-{}", std::process::id()));
    write_user_model(&models.join("left-right"));
    // A description whose TorchScript file is garbage, and one missing a field.
    let garbage = models.join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("model.toml"), USER_MODEL_DESCRIPTION).unwrap();
    std::fs::write(garbage.join("classes.txt"), "a\nb\n").unwrap();
    std::fs::write(garbage.join("model.pt"), b"not torchscript").unwrap();
    let incomplete = models.join("incomplete");
    std::fs::create_dir_all(&incomplete).unwrap();
    std::fs::write(
        incomplete.join("model.toml"),
        "name = \"half a description\"\n",
    )
    .unwrap();

    let address = start_worker_with(&models).await;
    let mut client = native_client(address).await;
    let listed = client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let user = listed
        .models
        .iter()
        .find(|m| m.id == "left-right")
        .expect("listed");
    assert_eq!(user.class_names, vec!["left", "right"]);
    let reason = |folder: &str| {
        listed
            .broken
            .iter()
            .find(|b| b.folder.ends_with(folder))
            .map(|b| b.error.clone())
            .unwrap_or_else(|| panic!("{folder} not reported: {:?}", listed.broken))
    };
    assert!(
        reason("garbage").contains("cannot load the TorchScript file"),
        "{}",
        reason("garbage")
    );
    assert!(
        reason("incomplete").contains("missing field"),
        "{}",
        reason("incomplete")
    );

    // Full red on the left, half red on the right: the model says "left";
    // grey (0.5) windows lower P(left) on the left and change nothing on the right.
    let request = ExplainRequest {
        image: red_left_png(),
        model: "left-right".into(),
        method: Method::Occlusion as i32,
        window: 8,
        stride: 8,
        ..Default::default()
    };
    let streamed = assemble(collect_events(&mut client, request).await.unwrap());
    assert_eq!(streamed.started.predicted_class, 0, "left");
    let at = |x: usize, y: usize| streamed.map[y * 32 + x];
    assert!(
        at(4, 4) > 1e-3,
        "occluding red on the left lowers P(left): {}",
        at(4, 4)
    );
    assert!(
        at(28, 4).abs() < at(4, 4) / 100.0,
        "grey on grey: {}",
        at(28, 4)
    );
    // Efficient PDA needs a sampler this model does not have: a clear refusal.
    let refused = ExplainRequest {
        image: std::fs::read(repo_root().join("data/photos/coffee.png")).unwrap(),
        model: "left-right".into(),
        method: Method::EfficientPda as i32,
        window: 8,
        ..Default::default()
    };
    let status = collect_events(&mut client, refused).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("no training images"),
        "{status:?}"
    );
    std::fs::remove_dir_all(models).unwrap();
}
