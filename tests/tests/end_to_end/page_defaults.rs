//! Issue 21: the page starts each model with the defaults the worker chose
//! from its measurement (method, S, window, stride, the share of windows
//! computed), says why, and offers
//! them again once the settings differ. A real headless Chromium.

use fantoccini::{Client, Locator};
use lens_proto::v1::{ListModelsRequest, Method, ModelInfo};
use lens_tests::browser::{
    open_browser, run_anyway_if_asked, save_screenshot, set_viewport, start_chromedriver, status,
    text_of, wait_for, wait_for_text, wait_until_not_running,
};
use lens_tests::{native_client, start_worker, temp_folder};

/// The page's name for a method (its picker's option value).
fn page_value(method: Method) -> &'static str {
    match method {
        Method::Pda => "pda",
        Method::EfficientPda | Method::Unspecified => "efficient",
        Method::SampledMean => "sampled-mean",
        Method::Gradient => "gradient",
        Method::Occlusion => "occlusion",
        Method::Saliency => "saliency",
        Method::GradCam => "grad-cam",
    }
}

async fn value_of(client: &Client, testid: &str) -> String {
    wait_for(client, testid)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The page's settings are the model's defaults.
async fn shows_defaults_of(client: &Client, model: &ModelInfo) {
    // The "Windows computed" choice (0 would be every window).
    let budget = if model.default_budget > 0.0 {
        model.default_budget
    } else {
        1.0
    };
    let wanted = [
        ("method", page_value(model.default_method()).to_string()),
        ("window", model.default_window.to_string()),
        ("stride", model.default_stride.to_string()),
        ("budget", budget.to_string()),
    ];
    for (testid, value) in wanted {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while value_of(client, testid).await != value {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {testid} is {} not {value}",
                model.id,
                value_of(client, testid).await
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    if matches!(model.default_method(), Method::Pda | Method::SampledMean) {
        assert_eq!(
            value_of(client, "samples").await,
            model.default_samples.to_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_starts_with_the_measured_defaults_and_offers_them_again() {
    let address = start_worker().await;
    let mut worker = native_client(address).await;
    let models = worker
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let model = |id: &str| models.iter().find(|m| m.id == id).unwrap().clone();
    let (digits, photos) = (model("digits"), model("efficientnet-lite0"));

    let driver = start_chromedriver();
    let client = open_browser(&driver, &temp_folder("chromium-defaults")).await;
    client.goto(&format!("http://{address}/")).await.unwrap();
    shows_defaults_of(&client, &digits).await;
    let note = wait_for_text(&client, "defaults", |t| t.contains("chosen by measurement")).await;
    assert!(note.contains(&digits.defaults_basis), "{note}");

    // Another stride: the note offers the defaults again, and they return.
    let stride = wait_for(&client, "stride").await;
    stride.clear().await.unwrap();
    stride
        .send_keys(&(digits.default_stride + 1).to_string())
        .await
        .unwrap();
    wait_for(&client, "use-defaults")
        .await
        .click()
        .await
        .unwrap();
    shows_defaults_of(&client, &digits).await;
    assert!(client
        .find(Locator::Css("[data-testid=use-defaults]"))
        .await
        .is_err());

    // Another model starts with its own defaults.
    let picker = wait_for(&client, "model").await;
    picker.select_by_value(&photos.id).await.unwrap();
    shows_defaults_of(&client, &photos).await;
    let note = wait_for_text(&client, "defaults", |t| t.contains(&photos.defaults_basis)).await;
    assert_eq!(
        note.contains("of the windows computed"),
        photos.default_budget < 1.0,
        "the note says a budgeted default's share: {note}"
    );

    // A photo at the default, as a visitor would run it: it finishes, and
    // a budgeted map says how much of it was computed.
    wait_for(&client, "preset-chelsea.png")
        .await
        .click()
        .await
        .unwrap();
    run_anyway_if_asked(&client).await;
    assert_eq!(wait_until_not_running(&client).await, "done");
    let done = text_of(&client, "status").await;
    let first_map = status(&client, "data-coarse-ms").await;
    println!(
        "chelsea.png at the photo default on the page: {done}; first map after {first_map} ms"
    );
    if photos.default_budget < 1.0 {
        let computed = text_of(&client, "legend-computed").await;
        assert!(
            computed.contains("windows computed, the rest estimated"),
            "{computed}"
        );
    }
    for (width, height) in [(1920, 1080), (1280, 720), (390, 844)] {
        set_viewport(&client, width, height).await;
        save_screenshot(&client, &format!("defaults-{width}x{height}")).await;
    }
    client.close().await.unwrap();
}

/// Issue 30: a model that is only an `.onnx` file (built at test time, see
/// `tests/models/left_right.py`) offers the window methods, greys out the
/// gradient methods with the reason, and explains a digit with occlusion.
#[tokio::test(flavor = "multi_thread")]
async fn an_onnx_only_model_greys_out_the_gradient_methods_and_explains_a_digit() {
    let models = temp_folder("onnx-only-page");
    let root = lens_tests::repo_root();
    let status = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/models/left_right.py"))
        .arg(models.join("left-right"))
        .status()
        .unwrap();
    assert!(status.success(), "left_right.py failed");
    std::os::unix::fs::symlink(root.join("models/digits"), models.join("digits")).unwrap();
    let address = lens_tests::start_worker_with(&models).await;

    let driver = start_chromedriver();
    let client = open_browser(&driver, &temp_folder("chromium-onnx-only")).await;
    client.goto(&format!("http://{address}/")).await.unwrap();
    let gradient_option = "[data-testid=method] option[value=gradient]";
    let disabled = |client: &Client| {
        let client = client.clone();
        async move {
            let option = client.find(Locator::Css(gradient_option)).await.unwrap();
            option.attr("disabled").await.unwrap().is_some()
        }
    };
    wait_for(&client, "preset-3").await;
    assert!(!disabled(&client).await, "the digits network has gradients");

    let picker = wait_for(&client, "model").await;
    picker.select_by_value("left-right").await.unwrap();
    let note = wait_for_text(&client, "gradients-unavailable", |t| {
        t.contains("greyed out")
    })
    .await;
    assert!(note.contains("an ONNX file"), "{note}");
    assert!(disabled(&client).await, "gradient is greyed out");
    for method in ["saliency", "grad-cam"] {
        let css = format!("[data-testid=method] option[value={method}]");
        let option = client.find(Locator::Css(&css)).await.unwrap();
        assert!(option.attr("disabled").await.unwrap().is_some(), "{method}");
        let title = option.attr("title").await.unwrap().unwrap_or_default();
        assert!(title.contains("needs gradients"), "{method}: {title:?}");
    }

    wait_for(&client, "method")
        .await
        .select_by_value("occlusion")
        .await
        .unwrap();
    wait_for(&client, "preset-3").await.click().await.unwrap();
    lens_tests::browser::run_anyway_if_asked(&client).await;
    let state = lens_tests::browser::wait_until_not_running(&client).await;
    assert_eq!(state, "done", "the page reported an error");
    for (width, height) in [(1920, 1080), (1280, 720), (390, 844)] {
        set_viewport(&client, width, height).await;
        save_screenshot(&client, &format!("onnx-only-{width}x{height}")).await;
    }
    client.close().await.unwrap();
}
