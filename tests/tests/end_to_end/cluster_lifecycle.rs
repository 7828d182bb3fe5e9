//! What a host of the cluster roles meets around the runs themselves: a
//! worker busy with a long job still holds its models (gateways list them
//! and queue requests for them), a gateway answers a stored explanation
//! while no worker is live, and every role stops on SIGTERM or SIGINT with
//! exit status 0 and no panic, on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use lens_proto::v1::{explain_event::Event, ExplainRequest, ListModelsRequest, Method};
use lens_tests::cluster::Services;
use lens_tests::postgres_server::PostgresServer;
use lens_tests::{
    assemble, collect_events, long_run_started, native_client, parse_metrics, preset,
    scrape_metrics, temp_folder, ChildWorker,
};

/// A quick explanation of `image`, finished and stored before the test goes on.
fn quick(image: Vec<u8>, seed: u64) -> ExplainRequest {
    ExplainRequest {
        image,
        method: Method::EfficientPda as i32,
        window: 4,
        seed,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_worker_keeps_its_models_and_new_requests_wait_in_the_queue() {
    let services = Services::start();
    let metrics_port = lens_tests::free_port();
    let metrics_at = format!("127.0.0.1:{metrics_port}");
    let _worker = services.worker_with("busy", 10, &[], &["--metrics-listen", &metrics_at]);
    let (_gateway, address) = services.gateway();
    let mut client = native_client(address).await;
    let image = preset(&mut client, 4).await.png;
    let stored = assemble(
        collect_events(&mut client, quick(image.clone(), 1))
            .await
            .unwrap(),
    );

    // Minutes of work keep the only worker busy.
    // Held to the end: the gateway counts its viewer.
    let _long = long_run_started(&mut client, image.clone()).await;
    // Longer than an advertisement lives without renewal (15 s): the
    // models stay listed the whole time.
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(20) {
        let models = client
            .list_models(ListModelsRequest {})
            .await
            .expect("the gateway lists models while the worker is busy")
            .into_inner()
            .models;
        assert!(
            !models.is_empty(),
            "no models {:.1} s into a long run: the busy worker's advertisement lapsed",
            watching.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A new request waits for the busy worker, told its place.
    let mut waiting = client
        .explain(quick(image.clone(), 2))
        .await
        .expect("a request for a busy worker's model is queued, not refused")
        .into_inner();
    let first = waiting.message().await.unwrap().expect("an event");
    match first.event {
        Some(Event::Queued(queued)) => assert!(queued.ahead >= 1, "{queued:?}"),
        other => panic!("expected Queued, got {other:?}"),
    }

    // The stored one is answered at once.
    let again = assemble(collect_events(&mut client, quick(image, 1)).await.unwrap());
    assert!(again.finished.replayed);
    assert_eq!(again.map, stored.map);

    // The worker's metrics during the run: one job, a fresh advertisement,
    // the first run's forward passes; the gateway's: the two viewers.
    let scraped = scrape_metrics(metrics_at.parse().unwrap());
    println!("the busy worker's /metrics:\n{scraped}");
    let worker = parse_metrics(&scraped);
    assert_eq!(worker["lens_jobs_running"], 1.0);
    assert!(worker["lens_advertisement_age_seconds"] < 10.0, "{scraped}");
    assert_eq!(
        worker["lens_forward_passes_total{model=\"digits\"}"],
        stored.finished.forward_passes as f64
    );
    let gateway = parse_metrics(&scrape_metrics(address));
    assert_eq!(
        gateway["lens_live_viewers"], 2.0,
        "the long run and the waiting one"
    );
    assert!(gateway["lens_advertisement_age_seconds"] < 10.0);
    // The cluster's queue as the gateway counts it (every 5 s): the long
    // run on the worker and the one waiting.
    let counted = Instant::now();
    loop {
        let jobs = parse_metrics(&scrape_metrics(address))["lens_jobs_waiting"];
        if jobs == 2.0 {
            break;
        }
        assert!(counted.elapsed() < Duration::from_secs(12), "{jobs} jobs");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gateways_and_workers_stop_cleanly_and_stored_maps_outlive_the_workers() {
    let services = Services::start();
    let mut worker = services.worker("stopping", 10);
    let (mut gateway, address) = services.gateway();
    let mut client = native_client(address).await;
    let image = preset(&mut client, 2).await.png;
    let stored = assemble(
        collect_events(&mut client, quick(image.clone(), 3))
            .await
            .unwrap(),
    );

    // SIGTERM in the middle of a job: the job goes back, the worker exits 0.
    let long = long_run_started(&mut client, image.clone()).await;
    let exit = worker.stop("TERM").await;
    assert!(exit.success(), "worker after SIGTERM: {exit:?}");
    assert!(worker.logged("stopped"));

    // No live worker: a stored explanation is still answered...
    let again = assemble(
        collect_events(&mut client, quick(image.clone(), 3))
            .await
            .expect("a stored explanation needs no worker"),
    );
    assert!(again.finished.replayed);
    assert_eq!(again.map, stored.map);
    // ...and once the gateway sees that no worker is left (it trusts its
    // list of models for 2 s; a request in between waits in the queue for
    // a worker), a new one is refused with the reason.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .list_models(ListModelsRequest {})
        .await
        .map(|r| r.into_inner().models.is_empty())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the stopped worker's models stay listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        collect_events(&mut client, quick(image, 4)),
    )
    .await
    .expect("refused at once, not queued")
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    drop(long);

    let exit = gateway.stop("INT").await;
    assert!(exit.success(), "gateway after SIGINT: {exit:?}");
    let mut worker = services.worker("again", 10);
    let (mut gateway, _) = services.gateway();
    assert!(worker.stop("INT").await.success(), "worker after SIGINT");
    assert!(
        gateway.stop("TERM").await.success(),
        "gateway after SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_stops_cleanly_on_either_store() {
    let database = PostgresServer::start();
    let url = database.url();
    for (signal, options) in [
        ("TERM", vec![]),
        ("INT", vec![]),
        ("TERM", vec!["--database-url", url.as_str()]),
        ("INT", vec!["--database-url", url.as_str()]),
    ] {
        let mut serve = ChildWorker::start_with(&temp_folder("clean-stop"), &options);
        let mut client = native_client(serve.address).await;
        let image = preset(&mut client, 1).await.png;
        collect_events(&mut client, quick(image, 5)).await.unwrap();
        let exit = serve.child.stop(signal).await;
        assert!(
            exit.success(),
            "serve {options:?} after SIG{signal}: {exit:?}"
        );
    }
}
