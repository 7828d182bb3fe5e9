//! Gateways and workers as real processes on loopback, with a private
//! PostgreSQL and a private NATS server: links across gateways, a worker
//! killed mid-run, jobs spread over workers, a gateway lost mid-run, and
//! NATS or PostgreSQL out of reach, a cancel through another gateway.

use std::time::{Duration, Instant};

use lens_proto::v1::{explain_event::Event, ExplainEvent, ExplainRequest, Method};
use lens_tests::cluster::Services;
use lens_tests::{
    assemble, collect_events, native_client, preset, start_worker, watch_events, ChildProcess,
};
use tokio_stream::StreamExt;

type Client = lens_proto::v1::evidence_lens_client::EvidenceLensClient<tonic::transport::Channel>;

/// One worker behind two gateways, with a client of each.
struct TwoGateways {
    _services: Services,
    _worker: ChildProcess,
    gateways: [ChildProcess; 2],
    a: Client,
    b: Client,
}

impl TwoGateways {
    async fn start() -> TwoGateways {
        let services = Services::start();
        let worker = services.worker("one", 10);
        let ((first, address_a), (second, address_b)) = (services.gateway(), services.gateway());
        TwoGateways {
            a: native_client(address_a).await,
            b: native_client(address_b).await,
            _services: services,
            _worker: worker,
            gateways: [first, second],
        }
    }
}

/// A few seconds of work on a digit, streamed as many small tiles.
fn seconds_of_work(image: Vec<u8>, seed: u64) -> ExplainRequest {
    ExplainRequest {
        image,
        method: Method::Pda as i32,
        window: 2,
        samples: Some(60),
        tile_size: 4,
        seed,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_opens_through_either_gateway_live_and_after_the_end() {
    let cluster = TwoGateways::start().await;
    let (mut a, mut b) = (cluster.a.clone(), cluster.b.clone());
    let request = seconds_of_work(preset(&mut a, 7).await.png, 1);

    let mut creator = a.explain(request.clone()).await.unwrap().into_inner();
    let mut created = Vec::new();
    let id = loop {
        let event = creator.next().await.unwrap().unwrap();
        created.push((tokio::time::Instant::now(), event.clone()));
        if let Some(Event::Started(started)) = &event.event {
            break started.id.clone();
        }
    };
    // Opened through the other gateway while it runs.
    let live = tokio::spawn(async move { watch_events(&mut b, &id).await.unwrap() });
    while let Some(event) = creator.next().await {
        created.push((tokio::time::Instant::now(), event.unwrap()));
    }
    let created = assemble(created);
    let live = assemble(live.await.unwrap());
    assert!(!live.finished.replayed, "watched live");
    assert_eq!(live.map, created.map);

    // And after the end, from the store.
    let mut b = cluster.b.clone();
    let stored = assemble(watch_events(&mut b, &created.started.id).await.unwrap());
    assert!(stored.finished.replayed);
    assert_eq!(stored.map, created.map);

    // The same map as one process makes.
    let mut single = native_client(start_worker().await).await;
    let alone = assemble(collect_events(&mut single, request).await.unwrap());
    assert_eq!(alone.map, created.map);
}

/// The worker that logged taking run `id`, among `workers`.
fn runner<'w>(workers: &'w mut [ChildProcess], id: &str) -> Option<&'w mut ChildProcess> {
    workers.iter_mut().find(|w| w.logged(&format!("runs {id}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_worker_is_killed_finishes_on_another_with_the_same_map() {
    // Killed once some final tiles are out.
    let final_tile = |e: &ExplainEvent| matches!(&e.event, Some(Event::Tile(t)) if !t.coarse);
    killed_mid_run_finishes_elsewhere(|image| seconds_of_work(image, 5), final_tile, 3).await;
}

/// Issue 28: a budgeted run sends its final tiles at the end; killed after
/// its second preview, it finishes elsewhere with the same map and the
/// same windows estimated.
#[tokio::test(flavor = "multi_thread")]
async fn a_budgeted_run_whose_worker_is_killed_finishes_on_another_with_the_same_map() {
    let budgeted = |image| ExplainRequest {
        budget: Some(0.5),
        ..seconds_of_work(image, 6)
    };
    let preview = |e: &ExplainEvent| matches!(&e.event, Some(Event::Tile(t)) if t.coarse);
    killed_mid_run_finishes_elsewhere(budgeted, preview, 2).await;
}

/// Starts the request on one of two workers, kills that worker after
/// `count` events that `kill_after` picks, and checks the run finishes on
/// the other with the map, windows and draws of an uninterrupted run,
/// without computing again what was done.
async fn killed_mid_run_finishes_elsewhere(
    request_for: impl Fn(Vec<u8>) -> ExplainRequest,
    kill_after: impl Fn(&ExplainEvent) -> bool,
    count: usize,
) {
    let services = Services::start();
    let takeover = 2;
    let mut workers = [
        services.worker("left", takeover),
        services.worker("right", takeover),
    ];
    let (_gateway, address) = services.gateway();
    let mut client = native_client(address).await;
    let request = request_for(preset(&mut client, 3).await.png);

    let began = Instant::now();
    let mut stream = client.explain(request.clone()).await.unwrap().into_inner();
    let mut events = Vec::new();
    let mut seen = 0;
    while seen < count {
        let event = stream.next().await.unwrap().unwrap();
        seen += kill_after(&event) as usize;
        events.push((tokio::time::Instant::now(), event));
    }
    let id = match &events.iter().find_map(|(_, e)| match &e.event {
        Some(Event::Started(s)) => Some(s.id.clone()),
        _ => None,
    }) {
        Some(id) => id.clone(),
        None => panic!("no Started before the tiles"),
    };
    runner(&mut workers, &id).expect("a worker runs it").kill();
    let killed = Instant::now();
    let mut moved_after = None;
    while let Some(event) = stream.next().await {
        let event = event.expect("a move is not an error");
        if let Some(Event::Moved(moved)) = &event.event {
            assert_eq!(moved.attempt, 2);
            moved_after = Some(killed.elapsed());
        }
        events.push((tokio::time::Instant::now(), event));
    }
    let moved_after = moved_after.expect("the viewer is told the run moved");
    let finished_after = killed.elapsed();
    // `assemble` checks that every pixel came exactly once.
    let failed_over = assemble(events);
    eprintln!(
        "run of {:.1} s in all; worker killed after {:.1} s; running again elsewhere {:.2} s \
         after the kill (takeover after {takeover} s); finished {:.1} s after the kill",
        began.elapsed().as_secs_f64(),
        (killed - began).as_secs_f64(),
        moved_after.as_secs_f64(),
        finished_after.as_secs_f64(),
    );
    assert!(
        moved_after < Duration::from_secs(takeover + 3),
        "taken over within the takeover time: {moved_after:?}"
    );

    let mut single = native_client(start_worker().await).await;
    let alone = assemble(collect_events(&mut single, request).await.unwrap());
    assert_eq!(
        failed_over.map, alone.map,
        "bit-identical to an uninterrupted run"
    );
    let (moved, whole) = (&failed_over.finished, &alone.finished);
    assert_eq!(moved.window_probabilities, whole.window_probabilities);
    assert_eq!(moved.sample_spread, whole.sample_spread);
    assert_eq!(moved.estimated_windows, whole.estimated_windows);
    eprintln!(
        "forward passes after the move: {} of {}",
        moved.forward_passes, whole.forward_passes
    );
    assert!(
        moved.forward_passes < whole.forward_passes,
        "the windows done before the kill are not computed again"
    );
    let stored = assemble(watch_events(&mut client, &id).await.unwrap());
    assert!(stored.finished.replayed);
    assert_eq!(stored.map, alone.map, "the stored map too");
}

/// Issue 30: a run started on libtorch is not continued on ONNX Runtime
/// (its viewers' tiles and its stored map would mix two roundings): the
/// other worker gives it back each time, and at the last delivery ends it
/// with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_not_taken_over_by_a_worker_on_another_runtime() {
    let services = Services::start();
    let takeover = 1;
    let mut torch = services.worker_with("torch", takeover, &[], &["--runtime", "torch"]);
    let (_gateway, address) = services.gateway();
    let mut client = native_client(address).await;
    let request = seconds_of_work(preset(&mut client, 3).await.png, 5);
    let mut stream = client.explain(request).await.unwrap().into_inner();
    let mut started = None;
    let mut tiles = 0;
    while tiles < 2 {
        let event = stream.next().await.unwrap().unwrap();
        match event.event {
            Some(Event::Started(s)) => started = Some(s),
            Some(Event::Tile(t)) if !t.coarse => tiles += 1,
            _ => {}
        }
    }
    let started = started.expect("Started before the tiles");
    assert!(
        started.runtime.starts_with("libtorch") && started.runtime.ends_with("on CPU"),
        "{}",
        started.runtime
    );
    // The first worker dies mid-run (two tiles of many), then the other
    // (ONNX Runtime, the CPU's default) comes up and is offered the run.
    torch.kill();
    let onnx = services.worker("onnx", takeover);
    let mut ended = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => assert!(
                !matches!(
                    event.event,
                    Some(Event::Tile(_) | Event::Finished(_) | Event::Moved(_))
                ),
                "no tile computed on the other runtime: {event:?}"
            ),
            Err(status) => {
                ended = Some(status);
                break;
            }
        }
    }
    let ended = ended.expect("the run ends with the reason");
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert!(
        ended.message().contains(&started.runtime) && ended.message().contains("ask again"),
        "{}",
        ended.message()
    );
    assert!(onnx.logged(&format!("leaves {} to a worker on libtorch", started.id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_jobs_are_spread_over_two_workers() {
    let services = Services::start();
    let workers = [services.worker("left", 10), services.worker("right", 10)];
    let (_gateway, address) = services.gateway_with(&["--max-jobs", "40", "--per-client", "20"]);
    let mut client = native_client(address).await;
    let digit = preset(&mut client, 4).await.png;
    let request = |seed: u64| ExplainRequest {
        image: digit.clone(),
        method: Method::SampledMean as i32,
        window: 3,
        seed,
        ..Default::default()
    };
    let runs: Vec<_> = (0..20)
        .map(|seed| {
            let (mut client, request) = (client.clone(), request(seed));
            tokio::spawn(async move { collect_events(&mut client, request).await })
        })
        .collect();
    let mut finished = Vec::new();
    for run in runs {
        finished.push(assemble(run.await.unwrap().unwrap()));
    }
    let ids: std::collections::HashSet<_> = finished.iter().map(|f| f.started.id.clone()).collect();
    assert_eq!(ids.len(), 20, "twenty runs");
    let ran_on = |worker: &ChildProcess| {
        ids.iter()
            .filter(|id| worker.logged(&format!("runs {id}")))
            .count()
    };
    let (left, right) = (ran_on(&workers[0]), ran_on(&workers[1]));
    eprintln!("left ran {left}, right ran {right}");
    assert_eq!(left + right, 20, "each job ran once");
    assert!(
        left > 0 && right > 0,
        "both workers took jobs: {left} and {right}"
    );

    // Each the map one process makes.
    let mut single = native_client(start_worker().await).await;
    for (seed, run) in finished.iter().enumerate() {
        let alone = assemble(
            collect_events(&mut single, request(seed as u64))
                .await
                .unwrap(),
        );
        assert_eq!(run.map, alone.map, "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_of_a_gateway_that_dies_reconnects_through_another_and_loses_nothing() {
    let mut cluster = TwoGateways::start().await;
    let mut a = cluster.a.clone();
    let request = seconds_of_work(preset(&mut a, 9).await.png, 11);
    let mut stream = a.explain(request.clone()).await.unwrap().into_inner();
    let mut id = String::new();
    let mut tiles = 0;
    while tiles < 2 {
        match stream.next().await.unwrap().unwrap().event {
            Some(Event::Started(started)) => id = started.id,
            Some(Event::Tile(tile)) if !tile.coarse => tiles += 1,
            _ => {}
        }
    }
    cluster.gateways[0].kill();
    assert!(
        stream.next().await.is_none_or(|e| e.is_err()),
        "the gateway is gone"
    );

    let mut b = cluster.b.clone();
    let reconnected = assemble(watch_events(&mut b, &id).await.unwrap());
    assert_eq!(reconnected.started.id, id);
    assert!(!reconnected.finished.replayed, "the rest came live");
    let mut single = native_client(start_worker().await).await;
    let alone = assemble(collect_events(&mut single, request).await.unwrap());
    assert_eq!(reconnected.map, alone.map);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_nats_or_postgresql_a_gateway_says_unavailable_and_recovers() {
    let mut services = Services::start();
    let _worker = services.worker("one", 10);
    let (_gateway, address) = services.gateway();
    let mut client = native_client(address).await;
    let digit = preset(&mut client, 1).await.png;
    let request = |seed: u64| ExplainRequest {
        image: digit.clone(),
        method: Method::EfficientPda as i32,
        seed,
        ..Default::default()
    };
    assemble(collect_events(&mut client, request(0)).await.unwrap());

    services.nats.stop();
    // The page keeps its models through the outage (those last advertised;
    // the gateway's own copy of the list is older than it keeps it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let models = client
        .list_models(lens_proto::v1::ListModelsRequest {})
        .await
        .expect("models listed while NATS is away")
        .into_inner()
        .models;
    assert!(models.iter().any(|m| m.id == "digits"), "{models:?}");
    let status = within_a_minute(collect_events(&mut client, request(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("NATS"), "{status:?}");
    services.nats.start_again();
    let recovered = until_it_works(&mut client, || request(2)).await;
    eprintln!("NATS: explanations again {recovered:.1} s after it restarted");

    services.database.stop();
    let status = within_a_minute(collect_events(&mut client, request(3)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("cannot reach PostgreSQL"),
        "{status:?}"
    );
    services.database.start_again();
    let recovered = until_it_works(&mut client, || request(4)).await;
    eprintln!("PostgreSQL: explanations again {recovered:.1} s after it restarted");
}

/// Asks until an explanation finishes (at most 30 s); seconds it took.
async fn until_it_works(
    client: &mut lens_proto::v1::evidence_lens_client::EvidenceLensClient<
        tonic::transport::Channel,
    >,
    request: impl Fn() -> ExplainRequest,
) -> f64 {
    let began = Instant::now();
    loop {
        match within_a_minute(collect_events(client, request())).await {
            Ok(events) => {
                assemble(events);
                return began.elapsed().as_secs_f64();
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "not back: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// `work`'s answer; a hang fails the test instead of stalling the run.
async fn within_a_minute<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("no answer within a minute")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_creator_cancels_through_any_gateway_and_the_worker_moves_on() {
    let cluster = TwoGateways::start().await;
    let (mut a, mut b) = (cluster.a.clone(), cluster.b.clone());
    let digit = preset(&mut a, 2).await.png;
    let mut stream = a
        .explain(lens_tests::minutes_of_work(digit.clone()))
        .await
        .unwrap()
        .into_inner();
    let (id, secret) = loop {
        if let Some(Event::Started(started)) = stream.next().await.unwrap().unwrap().event {
            break (started.id, started.owner_secret);
        }
    };
    let wrong = lens_proto::v1::CancelRequest {
        id: id.clone(),
        owner_secret: "not the secret".into(),
    };
    let status = b.cancel(wrong).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    let request = lens_proto::v1::CancelRequest {
        id: id.clone(),
        owner_secret: secret,
    };
    b.cancel(request.clone()).await.unwrap();
    let ended = within_a_minute(async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => break status,
                None => panic!("ended without saying why"),
            }
        }
    })
    .await;
    assert_eq!(ended.code(), tonic::Code::Cancelled, "{ended:?}");
    let status = a.cancel(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "no longer running");
    // The worker stopped minutes of work and takes the next job.
    let quick = ExplainRequest {
        image: digit,
        method: Method::EfficientPda as i32,
        ..Default::default()
    };
    assemble(
        within_a_minute(collect_events(&mut b, quick))
            .await
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workers_deletion_curves_are_served_by_every_gateway() {
    use lens_proto::v1::{FaithfulnessRequest, Removal};
    let cluster = TwoGateways::start().await;
    let (mut a, mut b) = (cluster.a.clone(), cluster.b.clone());
    let request = ExplainRequest {
        image: preset(&mut a, 5).await.png,
        method: Method::EfficientPda as i32,
        window: 4,
        seed: 3,
        ..Default::default()
    };
    let run = assemble(collect_events(&mut a, request.clone()).await.unwrap());
    let ask = |id: &str| FaithfulnessRequest {
        id: id.to_string(),
        removal: Removal::Blur as i32,
    };
    let measured = within_a_minute(b.faithfulness(ask(&run.started.id)))
        .await
        .unwrap()
        .into_inner();
    assert!(!measured.replayed, "computed by the worker");
    let kept = a
        .faithfulness(ask(&run.started.id))
        .await
        .unwrap()
        .into_inner();
    assert!(
        kept.replayed,
        "stored by the worker, read by the other gateway"
    );
    assert_eq!(kept.map, measured.map);

    // The curves one process computes for the same map.
    let mut single = native_client(start_worker().await).await;
    let alone = assemble(collect_events(&mut single, request).await.unwrap());
    let expected = single
        .faithfulness(ask(&alone.started.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(measured.map, expected.map);
    assert_eq!(measured.random, expected.random);

    let missing = b.faithfulness(ask(&"0".repeat(32))).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
}

/// The id a run's stream names first (Queued or Started).
async fn run_id(stream: &mut tonic::Streaming<lens_proto::v1::ExplainEvent>) -> String {
    within_a_minute(async {
        loop {
            match stream.next().await.unwrap().unwrap().event {
                Some(Event::Queued(queued)) => break queued.id,
                Some(Event::Started(started)) => break started.id,
                _ => continue,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_requests_through_two_gateways_run_once() {
    let cluster = TwoGateways::start().await;
    let (mut a, mut b) = (cluster.a.clone(), cluster.b.clone());
    let digit = preset(&mut a, 4).await.png;
    let request = lens_tests::minutes_of_work(digit);
    let mut first = a.explain(request.clone()).await.unwrap().into_inner();
    let id = run_id(&mut first).await;
    // The same request through the other gateway follows the same run,
    // without its creator's secret.
    let mut second = b.explain(request.clone()).await.unwrap().into_inner();
    let joined = within_a_minute(async {
        loop {
            match second.next().await.unwrap().unwrap().event {
                Some(Event::Queued(queued)) => break (queued.id, queued.owner_secret),
                Some(Event::Started(started)) => break (started.id, started.owner_secret),
                _ => continue,
            }
        }
    })
    .await;
    assert_eq!(joined.0, id, "the second request joined the first run");
    assert!(joined.1.is_empty(), "only the creator gets the secret");
    // A different request is a run of its own.
    let other = ExplainRequest {
        seed: 99,
        ..request
    };
    let mut third = b.explain(other).await.unwrap().into_inner();
    assert_ne!(run_id(&mut third).await, id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_nobody_watches_stops_after_its_batch() {
    let cluster = TwoGateways::start().await;
    let (mut a, mut b) = (cluster.a.clone(), cluster.b.clone());
    let digit = preset(&mut a, 6).await.png;
    let mut long = a
        .explain(lens_tests::minutes_of_work(digit.clone()))
        .await
        .unwrap()
        .into_inner();
    let id = run_id(&mut long).await;
    // Its creator leaves: the only worker is free again within seconds
    // (the run would take minutes), and a new run finishes.
    drop(long);
    let quick = ExplainRequest {
        image: digit,
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let finished = within_a_minute(collect_events(&mut b, quick))
        .await
        .unwrap();
    assert!(!assemble(finished).finished.replayed);
    // The link says why the run ended.
    let ended = within_a_minute(watch_events(&mut b, &id))
        .await
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Aborted, "{ended:?}");
    assert!(ended.message().contains("nobody was watching"), "{ended:?}");
}
