//! The `Faithfulness` RPC against the in-process worker, and the
//! `evaluate` command on a map that `explain` wrote.
//!
//! - `a_stored_explanation_gets_its_curves_once_and_keeps_them`
//! - `evaluate_reads_a_map_from_explain_and_agrees_with_explain_evaluate`
//! - `evaluate_stored_keeps_its_result_where_the_page_finds_it`
//! - `the_agreement_command_measures_every_method_against_the_reference`
//! - `list_models_reports_the_agreement_kept_beside_a_model`

use lens_proto::v1::{
    DeleteRequest, ExplainRequest, FaithfulnessRequest, FaithfulnessResult, Method, Removal,
};
use lens_tests::{assemble, collect_events, native_client, preset, run_command, start_worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_explanation_gets_its_curves_once_and_keeps_them() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 3).await.png;
    let request = ExplainRequest {
        image,
        method: Method::EfficientPda as i32,
        window: 4,
        seed: 5,
        ..Default::default()
    };
    let run = assemble(collect_events(&mut client, request).await.unwrap());
    let id = run.started.id.clone();
    let ask = |removal: Removal| FaithfulnessRequest {
        id: id.clone(),
        removal: removal as i32,
    };
    let first = client
        .faithfulness(ask(Removal::Blur))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    assert_eq!(first.removal, Removal::Blur as i32);
    assert_eq!(first.explained_class, run.started.explained_class);
    let curves = |result: &FaithfulnessResult| {
        let map = result.map.clone().unwrap();
        (map, result.random.clone().unwrap())
    };
    let (map, random) = curves(&first);
    assert_eq!(map.deletion.len(), 51, "50 steps of 2%");
    // Nothing removed yet: P(explained class) of the explanation itself.
    let p = run.started.probabilities[run.started.explained_class as usize];
    assert!(
        (map.deletion[0] - p).abs() < 1e-4,
        "{} against {p}",
        map.deletion[0]
    );
    assert!((map.insertion[50] - p).abs() < 1e-4);
    // The digits network reads its evidence where efficient PDA puts it.
    assert!(
        map.deletion_auc < random.deletion_auc,
        "deletion {} against random {}",
        map.deletion_auc,
        random.deletion_auc
    );
    assert!(map.insertion_auc > random.insertion_auc);

    // Kept: the second answer comes from the store, unchanged.
    let again = client
        .faithfulness(ask(Removal::Blur))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(curves(&again), curves(&first));
    // Another removal is another measurement.
    let grey = client
        .faithfulness(ask(Removal::Grey))
        .await
        .unwrap()
        .into_inner();
    assert!(!grey.replayed);
    assert_eq!(grey.blur_sigma, 0.0);
    assert_ne!(curves(&grey).0.deletion, map.deletion);

    // Bad requests say what is wrong.
    let status = client
        .faithfulness(FaithfulnessRequest {
            id: id.clone(),
            removal: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("unknown removal 9"), "{status:?}");
    let status = client
        .faithfulness(FaithfulnessRequest {
            id: "nope".into(),
            removal: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Deleting the explanation takes its curves with it.
    client
        .delete(DeleteRequest {
            id: id.clone(),
            owner_secret: run.started.owner_secret.clone(),
        })
        .await
        .unwrap();
    let status = client.faithfulness(ask(Removal::Blur)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

#[test]
fn evaluate_reads_a_map_from_explain_and_agrees_with_explain_evaluate() {
    let out = lens_tests::temp_folder("evaluate");
    let digit = out.join("digit.png");
    let kit = lens_tests::load_kit();
    let values = &kit.presets.iter().find(|(l, _)| *l == 2).unwrap().1;
    std::fs::write(&digit, lens_worker::input::grey_png(values, 28, 28)).unwrap();
    let digit_arg = digit.to_str().unwrap();
    let run = |command: &str, arguments: &[&str]| -> serde_json::Value {
        let mut all = vec![command, digit_arg, "--model", "digits", "--device", "cpu"];
        all.extend(arguments);
        serde_json::from_str(&run_command(&all)).unwrap()
    };
    let out_arg = out.to_str().unwrap();
    let explained = run(
        "explain",
        &[
            "--method",
            "occlusion",
            "--window",
            "4",
            "--evaluate",
            "grey",
            "--out",
            out_arg,
        ],
    );
    let map = explained["maps"][0]["npy"].as_str().unwrap().to_string();
    let evaluated = run("evaluate", &["--map", &map, "--removal", "grey"]);
    let area = |v: &serde_json::Value, curve: &str| {
        v["faithfulness"][0][curve]["deletion_auc"]
            .as_f64()
            .unwrap()
    };
    for curve in ["map", "random", "edges"] {
        assert!(
            (area(&explained, curve) - area(&evaluated, curve)).abs() < 1e-9,
            "{curve}: {explained} against {evaluated}"
        );
    }
    assert_eq!(evaluated["class"], explained["explained"]);
    assert_eq!(evaluated["faithfulness"][0]["removal"], "grey");
    std::fs::remove_dir_all(out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_stored_keeps_its_result_where_the_page_finds_it() {
    let store = lens_tests::temp_folder("evaluate-stored");
    let models = lens_tests::repo_root().join("models");
    let address = lens_tests::start_worker_configured(
        &models,
        &store,
        lens_worker::server::Limits::default(),
    )
    .await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 6).await.png;
    let request = ExplainRequest {
        image,
        method: Method::Occlusion as i32,
        window: 4,
        ..Default::default()
    };
    let id = assemble(collect_events(&mut client, request).await.unwrap())
        .started
        .id;
    let store_arg = store.to_str().unwrap();
    let arguments = ["evaluate", "--stored", &id, "--store", store_arg];
    let stdout = run_command(&[&arguments[..], &["--removal", "grey", "--device", "cpu"]].concat());
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["model"], "digits");
    let kept = client
        .faithfulness(FaithfulnessRequest {
            id,
            removal: Removal::Grey as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.replayed, "the command's result, from the store");
    let area = printed["faithfulness"][0]["map"]["deletion_auc"]
        .as_f64()
        .unwrap();
    // (JSON's text loses the last bit.)
    assert!((kept.map.unwrap().deletion_auc - area).abs() < 1e-12);
}

#[test]
fn the_agreement_command_measures_every_method_against_the_reference() {
    let out = lens_tests::temp_folder("agreement").join("agreement.json");
    let table = run_command(&[
        "agreement",
        "--model",
        "digits",
        "--device",
        "cpu",
        "--count",
        "2",
        "--window",
        "7",
        "--stride",
        "7",
        "--reference-samples",
        "4",
        "--pda-samples",
        "2",
        "--mean-samples",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("| pda (S = 2) |"), "{table}");
    let written: lens_worker::agreement::ModelAgreement =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written.reference, "PDA, S = 4");
    // One digit of each label, in label order.
    assert_eq!(written.images.len(), 2);
    assert!(written.images[0].ends_with("(a 0)"), "{:?}", written.images);
    assert!(written.images[1].ends_with("(a 1)"), "{:?}", written.images);
    let names: Vec<_> = written.methods.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(
        names,
        [
            "efficient-pda",
            "sampled-mean",
            "gradient",
            "occlusion",
            "pda"
        ]
    );
    for m in &written.methods {
        assert!((-1.0..=1.0).contains(&m.rank_correlation), "{m:?}");
        assert!((0.0..=1.0).contains(&m.top_overlap), "{m:?}");
    }
    let half = written.split_half;
    assert!((written.ceiling - 2.0 * half / (1.0 + half)).abs() < 1e-12);
    // Two sampled maps of the same windows agree more than chance.
    assert!(half > 0.3, "split half {half}");
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_models_reports_the_agreement_kept_beside_a_model() {
    let models = lens_tests::digits_with_agreement(&lens_tests::sample_agreement());
    let address = lens_tests::start_worker_with(&models).await;
    let mut client = native_client(address).await;
    let listed = client
        .list_models(lens_proto::v1::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let digits = &listed.models[0];
    assert_eq!(digits.agreement_reference, "PDA, S = 32");
    assert_eq!(digits.agreement_ceiling, 0.98);
    // The unknown method is left out; PDA keeps one entry per S.
    let entries: Vec<_> = digits
        .agreement
        .iter()
        .map(|a| (a.method, a.samples, a.rank_correlation))
        .collect();
    assert_eq!(
        entries,
        [
            (Method::EfficientPda as i32, 0, 0.787),
            (Method::Pda as i32, 4, 0.949),
            (Method::Pda as i32, 10, 0.969),
        ]
    );
    std::fs::remove_dir_all(models).unwrap();
}
