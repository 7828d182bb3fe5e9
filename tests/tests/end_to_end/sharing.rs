//! Share links, live viewing and the limits, over native gRPC against the
//! worker started in-process with the real digits network.
//!
//! - `a_late_viewer_gets_the_map_so_far_then_the_rest_live`
//! - `identical_requests_are_answered_from_the_store`
//! - `deleting_needs_the_creators_secret`
//! - `a_full_queue_and_a_busy_client_are_told_to_try_again`
//! - `live_viewers_are_limited_per_client_and_per_run`

use std::time::Duration;

use lens_proto::v1::{explain_event::Event, DeleteRequest, ExplainRequest, Method, WatchRequest};
use lens_tests::{
    assemble, collect_events, drain, native_client, preset, repo_root, start_worker,
    start_worker_configured, temp_folder, watch_events,
};
use lens_worker::server::Limits;

/// PDA with S = 10 on a digit: about a second and a half here, long enough
/// for a second viewer to join mid-run.
fn slow_request(image: Vec<u8>, seed: u64) -> ExplainRequest {
    ExplainRequest {
        image,
        method: Method::Pda as i32,
        window: 4,
        samples: Some(10),
        seed,
        batch_size: 16,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_viewer_gets_the_map_so_far_then_the_rest_live() {
    let address = start_worker().await;
    let mut creator = native_client(address).await;
    let image = preset(&mut creator, 3).await.png;
    let mut stream = creator
        .explain(slow_request(image, 1))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(Event::Started(started)) = &first.event else {
        panic!("Started comes first");
    };
    assert_eq!(started.id.len(), 32, "128 bits as hex");
    assert_eq!(
        started.owner_secret.len(),
        64,
        "the creator gets the secret"
    );
    let id = started.id.clone();
    // Wait for the first tile, then join as a second viewer.
    let second = stream.message().await.unwrap().unwrap();
    assert!(matches!(second.event, Some(Event::Tile(_))));
    let mut viewer = native_client(address).await;
    let watched = tokio::spawn(async move { watch_events(&mut viewer, &id).await.unwrap() });
    let mut rest = drain(stream).await.unwrap();
    let mut creator_events = vec![(tokio::time::Instant::now(), first)];
    creator_events.push((tokio::time::Instant::now(), second));
    creator_events.append(&mut rest);
    let watched = watched.await.unwrap();

    let mine = assemble(creator_events);
    // `assemble` checks that the viewer's tiles cover every pixel once: the
    // tiles from before it joined came too.
    let theirs = assemble(watched);
    assert_eq!(mine.map, theirs.map, "both viewers end with the same map");
    // What was final before the viewer joined came as compact tiles.
    assert!(theirs.tile_times.len() <= mine.tile_times.len());
    assert_eq!(
        theirs.started.owner_secret, "",
        "viewers never see the secret"
    );
    assert!(!theirs.finished.replayed, "the viewer watched the run live");

    // Once finished, the same link shows the stored result at once.
    let mut later = native_client(address).await;
    let stored = assemble(watch_events(&mut later, &mine.started.id).await.unwrap());
    assert!(stored.finished.replayed);
    assert_eq!(stored.map, mine.map);
    assert_eq!(stored.started.request, mine.started.request);
    assert_eq!(stored.finished.probabilities, mine.finished.probabilities);
}

#[tokio::test]
async fn identical_requests_are_answered_from_the_store() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 5).await.png;
    let request = ExplainRequest {
        image: image.clone(),
        method: Method::EfficientPda as i32,
        window: 4,
        stride: 2,
        ..Default::default()
    };
    let first = assemble(collect_events(&mut client, request.clone()).await.unwrap());
    assert!(!first.finished.replayed);
    assert_eq!(first.finished.id, first.started.id, "stored under its link");

    // Same image and settings; batch and tile size do not change the result.
    let same = ExplainRequest {
        batch_size: 3,
        tile_size: 14,
        ..request.clone()
    };
    let again = assemble(collect_events(&mut client, same).await.unwrap());
    assert!(again.finished.replayed, "answered from the store");
    assert_eq!(again.started.id, first.started.id);
    assert_eq!(again.map, first.map);
    assert_eq!(again.started.owner_secret, "", "only the creator deletes");

    // A different setting is a different explanation.
    let other = ExplainRequest {
        stride: 1,
        ..request
    };
    let computed = assemble(collect_events(&mut client, other).await.unwrap());
    assert!(!computed.finished.replayed);
    assert_ne!(computed.started.id, first.started.id);
}

#[tokio::test]
async fn deleting_needs_the_creators_secret() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 8).await.png;
    let request = ExplainRequest {
        image,
        method: Method::Gradient as i32,
        ..Default::default()
    };
    let made = assemble(collect_events(&mut client, request).await.unwrap());
    let id = made.started.id.clone();
    let secret = made.started.owner_secret.clone();

    let wrong = DeleteRequest {
        id: id.clone(),
        owner_secret: "0".repeat(64),
    };
    let refused = client.delete(wrong).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("only the creator"));
    let still_there = assemble(watch_events(&mut client, &id).await.unwrap());
    assert_eq!(still_there.map, made.map);

    let bad_id = DeleteRequest {
        id: "../../etc/passwd".into(),
        owner_secret: secret.clone(),
    };
    let refused = client.delete(bad_id).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let right = DeleteRequest {
        id: id.clone(),
        owner_secret: secret.clone(),
    };
    client.delete(right.clone()).await.unwrap();
    let gone = watch_events(&mut client, &id).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    let again = client.delete(right).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_and_a_busy_client_are_told_to_try_again() {
    let limits = Limits {
        jobs: 2,
        per_client: 1,
        ..Limits::default()
    };
    let models = repo_root().join("models");
    let address = start_worker_configured(&models, &temp_folder("store"), limits).await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 2).await.png;
    // Minutes of work unless cancelled.
    let long = |seed| ExplainRequest {
        samples: Some(1000),
        window: 1,
        ..slow_request(image.clone(), seed)
    };
    let mut running = client.explain(long(1)).await.unwrap().into_inner();
    running.message().await.unwrap().unwrap();

    // This client (127.0.0.1) already has its one run.
    let refused = collect_events(&mut client, long(2)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("wait for one to finish"),
        "{}",
        refused.message()
    );

    // A worker whose queue is full says so, whoever asks.
    let one_job = Limits {
        jobs: 1,
        per_client: 5,
        ..Limits::default()
    };
    let full = start_worker_configured(&models, &temp_folder("store"), one_job).await;
    let mut first = native_client(full).await;
    let mut queued = first.explain(long(3)).await.unwrap().into_inner();
    queued.message().await.unwrap().unwrap();
    let mut second = native_client(full).await;
    let busy = collect_events(&mut second, long(4)).await.unwrap_err();
    assert_eq!(busy.code(), tonic::Code::ResourceExhausted);
    assert!(busy.message().contains("try again"), "{}", busy.message());

    // Leaving frees the place; the worker keeps serving.
    drop(queued);
    drop(running);
    let short = ExplainRequest {
        method: Method::Gradient as i32,
        ..slow_request(image.clone(), 5)
    };
    // One batch here is 16 windows of 1000 samples (seconds, not tens of
    // seconds, even on a loaded machine): the run stops after it whether
    // or not the batch finished a tile.
    let events = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match collect_events(&mut second, short.clone()).await {
                Ok(events) => break events,
                // The cancelled run gives its place back after its batch.
                Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    })
    .await
    .expect("the place was never given back");
    assemble(events);
}

/// A run of minutes on a worker with these limits: its client and its
/// Started event.
async fn long_run_on(
    limits: Limits,
) -> (
    lens_proto::v1::evidence_lens_client::EvidenceLensClient<tonic::transport::Channel>,
    tonic::Streaming<lens_proto::v1::ExplainEvent>,
    lens_proto::v1::Started,
) {
    let models = repo_root().join("models");
    let address = start_worker_configured(&models, &temp_folder("store"), limits).await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 4).await.png;
    let long = ExplainRequest {
        samples: Some(1000),
        window: 1,
        ..slow_request(image, 9)
    };
    let mut running = client.explain(long).await.unwrap().into_inner();
    let Some(Event::Started(started)) = running.message().await.unwrap().unwrap().event else {
        panic!("the run starts");
    };
    (client, running, started)
}

/// Opens a live stream of the run `id`.
async fn watch_run(
    client: &lens_proto::v1::evidence_lens_client::EvidenceLensClient<tonic::transport::Channel>,
    id: &str,
) -> Result<tonic::Response<tonic::Streaming<lens_proto::v1::ExplainEvent>>, tonic::Status> {
    let request = WatchRequest { id: id.to_string() };
    client.clone().watch(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_viewers_are_limited_per_client_and_per_run() {
    // Per client: this client (127.0.0.1) may watch twice at once.
    let limits = Limits {
        watches_per_client: 2,
        ..Limits::default()
    };
    let (client, _running, started) = long_run_on(limits).await;
    let watch = || watch_run(&client, &started.id);
    let _first = watch().await.unwrap();
    let second = watch().await.unwrap();
    let refused = watch().await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("you already watch 2"),
        "{}",
        refused.message()
    );
    // Closing one gives its place back.
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _third = watch().await.unwrap();

    // Per run: its creator and one viewer, then no more.
    let limits = Limits {
        viewers_per_run: 2,
        ..Limits::default()
    };
    let (client, _running, started) = long_run_on(limits).await;
    let watch = || watch_run(&client, &started.id);
    let _viewer = watch().await.unwrap();
    let refused = watch().await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("already has 2 viewers"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_address_is_a_client() {
    let limits = Limits {
        per_client: 1,
        trust_forwarded_for: true,
        ..Limits::default()
    };
    let models = repo_root().join("models");
    let address = start_worker_configured(&models, &temp_folder("store"), limits).await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 5).await.png;
    // One connection (the proxy's), three people behind it.
    let from = |who: &str, seed| {
        let mut request = tonic::Request::new(ExplainRequest {
            samples: Some(1000),
            window: 1,
            ..slow_request(image.clone(), seed)
        });
        let header = format!("{who}, 10.0.0.1");
        request
            .metadata_mut()
            .insert("x-forwarded-for", header.parse().unwrap());
        request
    };
    let _alice = client.explain(from("192.0.2.1", 1)).await.unwrap();
    let _bob = client.explain(from("192.0.2.2", 2)).await.unwrap();
    let refused = client.explain(from("192.0.2.1", 3)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(refused.message().contains("wait for one to finish"));
}
