//! The worker over native gRPC (HTTP/2), started in-process with the real
//! digits network.
//!
//! - `streams_tiles_before_the_end_and_matches_the_engine`
//! - `bad_input_is_invalid_argument_and_the_worker_keeps_serving`
//! - `a_cancelled_stream_stops_the_computation`
//! - `health_and_reflection_answer_standard_clients`: `grpc.health.v1` and
//!   server reflection, as load balancers and grpcurl use them.
//! - `server_and_cli_give_the_same_pda_map_for_a_seed`: the server streams
//!   7 x 7 tiles, the CLI k x k ones; a seed still names one map.

use std::ops::ControlFlow;
use std::time::Duration;

use lens_proto::v1::{explain_event::Event, ExplainRequest, Method};
use lens_tests::{
    assemble, cli_map, collect_events, load_kit, minutes_of_work, native_client, preset,
    refuses_each_bad_request, start_worker, temp_folder,
};
use lens_worker::engine::{
    explain, ExplainParams, MapClasses, Occlusion, Pda, Quantity, Schedule, Target,
};
use lens_worker::input::digit_from_bytes;

#[tokio::test]
async fn streams_tiles_before_the_end_and_matches_the_engine() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let seven = preset(&mut client, 7).await;
    let request = ExplainRequest {
        image: seven.png.clone(),
        method: Method::Pda as i32,
        window: 4,
        samples: Some(10),
        seed: 5,
        ..Default::default()
    };
    let streamed = assemble(collect_events(&mut client, request).await.unwrap());

    let started = &streamed.started;
    assert_eq!(started.total_windows, 25 * 25);
    assert_eq!(started.probabilities.len(), 10);
    let sum: f32 = started.probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4);
    assert_eq!(started.explained_class, started.predicted_class);
    assert!(streamed.tile_times.len() >= 16, "28 x 28 in 7 x 7 tiles");
    // A run this long first streams a coarse map (the 7 x 7 windows that
    // cover the digit once), then final tiles while the work goes on.
    let (coarse_at, coarse) = streamed.coarse.as_ref().expect("a coarse map first");
    assert!(*coarse_at <= streamed.tile_times[0]);
    assert!(coarse.iter().all(|v| v.is_finite()));
    assert_ne!(
        coarse, &streamed.map,
        "the final map refines the coarse one"
    );
    assert!(streamed.tile_times[0] < streamed.finished_at);
    assert!(streamed.finished.windows_per_second > 0.0);
    assert_eq!(streamed.finished.forward_passes, 1 + 625 * 10);

    // The same request run on the engine directly gives the same map, bit for bit.
    let kit = load_kit();
    let image = digit_from_bytes(&seven.png).unwrap();
    let direct = explain(
        kit.classifier(),
        &image,
        &Pda {
            sampler: kit.sampler(),
            samples: 10,
        },
        &ExplainParams {
            window: 4,
            stride: 1,
            batch_size: lens_worker::engine::default_batch_size(tch::Device::Cpu),
            tile_size: 7,
            seed: 5,
            target: Target::Predicted,
            quantity: Quantity::LogOdds,
            maps: MapClasses::All,
            schedule: Schedule::Plain,
            takeover: Default::default(),
            budget: 1.0,
        },
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(direct.map(), streamed.map.as_slice());
    assert!(
        direct.map().iter().any(|v| *v > 0.0),
        "some pixels speak for the predicted class"
    );
}

/// A quarter of the windows: the coarse estimate first, then the map as
/// the engine makes it for that budget; the estimated windows named in
/// Finished; the same budget replayed from the store, another one run anew.
#[tokio::test]
async fn a_budgeted_run_says_what_it_estimated_and_is_kept_apart() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let four = preset(&mut client, 4).await;
    let request = |budget: f64| ExplainRequest {
        image: four.png.clone(),
        method: Method::Occlusion as i32,
        window: 4,
        budget: Some(budget),
        ..Default::default()
    };
    let streamed = assemble(collect_events(&mut client, request(0.25)).await.unwrap());
    assert_eq!(
        streamed.started.total_windows, 157,
        "a quarter of 625, rounded up"
    );
    assert_eq!(
        streamed.started.request.as_ref().unwrap().budget,
        Some(0.25)
    );
    assert!(
        streamed.coarse.is_some(),
        "the lattice's estimate comes first"
    );
    let finished = &streamed.finished;
    assert_eq!(finished.forward_passes, 1 + 157);
    assert_eq!(finished.estimated_windows.len(), 625 - 157);
    assert!(finished.estimated_windows.iter().all(|&w| w < 625));

    let kit = load_kit();
    let direct = explain(
        kit.classifier(),
        &digit_from_bytes(&four.png).unwrap(),
        &Occlusion { value: 0.5 },
        &ExplainParams {
            window: 4,
            stride: 1,
            batch_size: 16,
            tile_size: 7,
            seed: 0,
            target: Target::Predicted,
            quantity: Quantity::Probability,
            maps: MapClasses::All,
            schedule: Schedule::Plain,
            takeover: Default::default(),
            budget: 0.25,
        },
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(direct.map(), streamed.map.as_slice());
    let estimated: Vec<u32> = direct.estimated_windows.iter().map(|&w| w as u32).collect();
    assert_eq!(finished.estimated_windows, estimated);

    let again = assemble(collect_events(&mut client, request(0.25)).await.unwrap());
    assert!(
        again.finished.replayed,
        "the same budget is the same explanation"
    );
    assert_eq!(again.started.id, streamed.started.id);
    assert_eq!(again.finished.estimated_windows, finished.estimated_windows);
    let other = assemble(collect_events(&mut client, request(0.125)).await.unwrap());
    assert!(
        !other.finished.replayed,
        "another budget is another explanation"
    );
    assert_ne!(other.started.id, streamed.started.id);
    assert_eq!(other.started.total_windows, 79);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_the_worker_keeps_serving() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let good = preset(&mut client, 3).await.png;
    refuses_each_bad_request(&mut client, &good).await;
    // Still serving.
    let ok = ExplainRequest {
        image: good,
        method: Method::EfficientPda as i32,
        ..Default::default()
    };
    assemble(collect_events(&mut client, ok).await.unwrap());
}

#[tokio::test]
async fn a_cancelled_stream_stops_the_computation() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 1).await.png;
    let long = minutes_of_work(image.clone());
    let mut stream = client.explain(long).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Started(_))));
    drop(stream);

    // The device is free again within a batch: a short job finishes quickly.
    let short = ExplainRequest {
        image,
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let events = tokio::time::timeout(Duration::from_secs(60), collect_events(&mut client, short))
        .await
        .expect("the cancelled job still holds the device")
        .unwrap();
    assemble(events);
}

#[tokio::test]
async fn server_and_cli_give_the_same_pda_map_for_a_seed() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let two = preset(&mut client, 2).await.png;
    let request = ExplainRequest {
        image: two.clone(),
        method: Method::Pda as i32,
        window: 4,
        samples: Some(5),
        seed: 12345,
        ..Default::default()
    };
    let streamed = assemble(collect_events(&mut client, request).await.unwrap());

    let work = temp_folder("same-seed");
    let digit = work.join("two.png");
    std::fs::write(&digit, &two).unwrap();
    let arguments = [
        digit.to_str().unwrap(),
        "--model",
        "digits",
        "--method",
        "pda",
    ];
    let settings = ["--window", "4", "--samples", "5", "--seed", "12345"];
    let from_cli = cli_map(&[&arguments[..], &settings].concat(), &work.join("out"));
    assert_eq!(from_cli, streamed.map);
    std::fs::remove_dir_all(work).unwrap();
}

#[tokio::test]
async fn health_says_not_serving_once_shutting_down_begins() {
    use std::sync::Arc;
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let root = lens_tests::repo_root();
    let registry = lens_worker::server::Registry::load(
        &root.join("models"),
        &root.join("data"),
        lens_worker::models::Placement::on(tch::Device::Cpu),
    );
    let store = Arc::new(lens_worker::store::SqliteStore::open(&temp_folder("store")).unwrap());
    let service = lens_worker::server::LensService::new(registry, store, Default::default());
    let stop = service.shutdown();
    let app = lens_worker::server::router(service, &root.join("dist")).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { lens_worker::server::serve(listener, app).await.unwrap() });
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let status = |health: &mut HealthClient<_>| {
        let mut health = health.clone();
        async move {
            let request = HealthCheckRequest {
                service: "evidence_lens.v1.EvidenceLens".into(),
            };
            health.check(request).await.unwrap().into_inner().status
        }
    };
    assert_eq!(status(&mut health).await, ServingStatus::Serving as i32);
    stop.begin();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status(&mut health).await != ServingStatus::NotServing as i32 {
        assert!(std::time::Instant::now() < deadline, "still serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_and_reflection_answer_standard_clients() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let address = start_worker().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", "evidence_lens.v1.EvidenceLens"] {
        let answer = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health.check(check("no.such.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // What grpcurl does: list the services, then fetch the file that
    // defines one and read its methods from it.
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = [
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "evidence_lens.v1.EvidenceLens".into(),
        )),
    ];
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("a list of services");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"evidence_lens.v1.EvidenceLens"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("the file that defines the service");
    };
    let file = String::from_utf8_lossy(&files.file_descriptor_proto[0]).into_owned();
    for method in ["Explain", "Watch", "ListModels", "Delete"] {
        assert!(file.contains(method), "{method} in the descriptor");
    }
}
