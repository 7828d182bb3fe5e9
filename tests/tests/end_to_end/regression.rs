//! Regression tests, each named after the issue it guards.
//!
//! - `issue_8_a_failing_model_ends_its_run_with_a_clear_status`: a user's
//!   model that raises on larger batches, and one that returns the wrong
//!   shape, end their runs (no stream hangs, an identical request starts
//!   afresh) and the worker keeps serving.
//! - `issue_8_sigterm_ends_runs_with_a_status_and_keeps_the_store`: the
//!   worker binary stops on SIGTERM: the run in progress ends with
//!   UNAVAILABLE, the process exits 0, and what it stored opens after a
//!   restart.

use std::time::Duration;

use lens_proto::v1::{ExplainRequest, ListModelsRequest, Method};
use lens_tests::{
    assemble, collect_events, drain, minutes_of_work, native_client, preset, red_left_png,
    start_worker_with, temp_folder, watch_events, write_traced_model, ChildWorker,
};
use tch::{Kind, Tensor};

/// Left half against right half of the red channel, as in the models test.
fn left_right(input: &Tensor) -> Tensor {
    let red = input.narrow(1, 0, 1);
    let half = |start| {
        red.narrow(3, start, 16)
            .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float)
    };
    Tensor::stack(&[half(0), half(16)], 1) * 10.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_failing_model_ends_its_run_with_a_clear_status() {
    let models = temp_folder("failing-models");
    // Works on one image (so it loads and predicts), raises on any larger
    // batch: the expand to batch 1 is traced as a constant.
    write_traced_model(&models.join("one-at-a-time"), &mut |input| {
        left_right(&input.expand([1, 3, 32, 32], false))
    });
    // Runs on any batch but always answers with one row.
    write_traced_model(&models.join("one-row"), &mut |input| {
        left_right(&input.narrow(0, 0, 1))
    });
    let address = start_worker_with(&models).await;
    let mut client = native_client(address).await;
    let request = |model: &str, batch_size| ExplainRequest {
        image: red_left_png(),
        model: model.into(),
        method: Method::Occlusion as i32,
        window: 8,
        stride: 8,
        batch_size,
        ..Default::default()
    };
    let run = |request| {
        let mut client = client.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(60),
                collect_events(&mut client, request),
            )
            .await
            .expect("the stream ends instead of hanging")
        }
    };

    // Twice: the second identical request must not join the failed run.
    for attempt in 0..2 {
        let status = run(request("one-at-a-time", 16)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal, "attempt {attempt}");
        assert!(
            status
                .message()
                .contains("the model failed on a batch of 16 images")
                && status.message().contains("expanded size"),
            "attempt {attempt}: {}",
            status.message()
        );
    }
    let status = run(request("one-row", 16)).await.unwrap_err();
    assert!(
        status.message().contains("returned shape [1, 2]"),
        "{}",
        status.message()
    );

    // The worker keeps serving: the failed jobs freed their places, and the
    // same model explains with batches it can take.
    let streamed = assemble(run(request("one-at-a-time", 1)).await.unwrap());
    assert_eq!(streamed.started.predicted_class, 0, "left");
    assert!(streamed.map[4 * 32 + 4] > 1e-3, "occluding red on the left");
    let listed = client.list_models(ListModelsRequest {}).await.unwrap();
    assert_eq!(listed.into_inner().models.len(), 2);
    std::fs::remove_dir_all(models).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_sigterm_ends_runs_with_a_status_and_keeps_the_store() {
    let store = temp_folder("sigterm");
    let mut worker = ChildWorker::start(&store);
    let mut client = native_client(worker.address).await;
    let image = preset(&mut client, 3).await.png;
    let quick = ExplainRequest {
        image: image.clone(),
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let stored = assemble(collect_events(&mut client, quick).await.unwrap());
    // Minutes of work, stopped by the signal.
    let mut stream = client
        .explain(minutes_of_work(image))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("Started");

    let stopping = tokio::spawn(async move {
        let exit = worker.child.stop("TERM").await;
        (worker, exit)
    });
    let ended = tokio::time::timeout(Duration::from_secs(60), drain(stream))
        .await
        .expect("the run ends instead of hanging");
    let status = ended.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    let (_worker, exit) = stopping.await.unwrap();
    assert!(exit.success(), "{exit:?}");

    let restarted = ChildWorker::start(&store);
    let mut client = native_client(restarted.address).await;
    let reopened = assemble(watch_events(&mut client, &stored.started.id).await.unwrap());
    assert!(reopened.finished.replayed);
    assert_eq!(reopened.map, stored.map);
}
