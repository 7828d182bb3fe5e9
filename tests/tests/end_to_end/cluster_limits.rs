//! Issue 22: the limits per client and per run hold across gateways. A
//! client that spreads its streams, its classes or its guessed class codes
//! over two gateways meets the same limits as through one; places given
//! back through one gateway are free through the other. Real processes:
//! two gateways, one worker, a private NATS and a private PostgreSQL.

use std::time::Duration;

use lens_proto::v1::{
    explain_event::Event, ClassView, CloseClassRequest, ExplainEvent, FollowClassRequest,
    OpenClassRequest, TeachRequest, WatchRequest,
};
use lens_tests::cluster::Services;
use lens_tests::{minutes_of_work, native_client, preset, ChildProcess};
use tonic::Code;

type Client = lens_proto::v1::evidence_lens_client::EvidenceLensClient<tonic::transport::Channel>;
type Events = tonic::Streaming<ExplainEvent>;

/// Two gateways with the same options, one worker.
struct Cluster {
    _services: Services,
    _processes: Vec<ChildProcess>,
    a: Client,
    b: Client,
}

impl Cluster {
    async fn start(options: &[&str]) -> Cluster {
        let services = Services::start();
        let worker = services.worker("one", 10);
        let (first, address_a) = services.gateway_with(options);
        let (second, address_b) = services.gateway_with(options);
        Cluster {
            a: native_client(address_a).await,
            b: native_client(address_b).await,
            _services: services,
            _processes: vec![worker, first, second],
        }
    }
}

/// Starts a long run of `seed` and returns its stream and id.
async fn long_run(client: &mut Client, image: &[u8], seed: u64) -> (Events, String) {
    let request = lens_proto::v1::ExplainRequest {
        seed,
        ..minutes_of_work(image.to_vec())
    };
    let mut stream = client.explain(request).await.unwrap().into_inner();
    loop {
        match stream.message().await.unwrap().unwrap().event {
            Some(Event::Queued(queued)) => return (stream, queued.id),
            Some(Event::Started(started)) => return (stream, started.id),
            _ => continue,
        }
    }
}

async fn watch(client: &mut Client, id: &str) -> Result<Events, tonic::Status> {
    let request = WatchRequest { id: id.into() };
    client.watch(request).await.map(|r| r.into_inner())
}

/// Tries `attempt` every 200 ms for up to 10 s until it succeeds (a place
/// given back reaches the other gateway through NATS).
async fn soon<T, F: std::future::Future<Output = Result<T, tonic::Status>>>(
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(status) if tokio::time::Instant::now() < deadline => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("still refused after 10 s: {status:?}"),
        }
    }
}

fn refused(result: Result<impl Sized, tonic::Status>, saying: &str) -> tonic::Status {
    let Err(status) = result else {
        panic!("not refused ({saying})");
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(saying), "{status:?}");
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_per_run_and_streams_per_client_count_over_both_gateways() {
    let cluster = Cluster::start(&["--viewers-per-run", "3", "--watches-per-client", "3"]).await;
    let (a, b) = (&mut cluster.a.clone(), &mut cluster.b.clone());
    let digit = preset(a, 3).await.png;

    // Run X: its creator through A, a viewer through B, one through A: the
    // three places of the run are taken, whichever gateway is asked.
    let (_creator, x) = long_run(a, &digit, 1).await;
    let _x_via_b = watch(b, &x).await.unwrap();
    let x_via_a = watch(a, &x).await.unwrap();
    refused(watch(b, &x).await, "already has 3 viewers");
    refused(watch(a, &x).await, "already has 3 viewers");

    // Run Y (waiting behind X): this client watches two runs already; its
    // third stream is its last, through either gateway.
    let (_creator_y, y) = long_run(b, &digit, 2).await;
    let _y_via_b = watch(b, &y).await.unwrap();
    refused(watch(a, &y).await, "you already watch 3");
    refused(watch(b, &y).await, "you already watch 3");

    // A stream closed through A frees a place for a stream through B, and
    // the run's place for another viewer.
    drop(x_via_a);
    let _y_again = soon(|| {
        let mut b = b.clone();
        let y = y.clone();
        async move { watch(&mut b, &y).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn open_classes_and_guessed_codes_count_over_both_gateways() {
    let cluster = Cluster::start(&[]).await;
    let (a, b) = (&mut cluster.a.clone(), &mut cluster.b.clone());

    // Five classes at once per client: the sixth is refused through the
    // other gateway too, until one is closed (through B, opened via A).
    let mut opened = Vec::new();
    for n in 0..5 {
        let mut through = if n % 2 == 0 { a.clone() } else { b.clone() };
        let class = through.open_class(OpenClassRequest {}).await.unwrap();
        opened.push(class.into_inner());
    }
    refused(b.open_class(OpenClassRequest {}).await, "classes");
    refused(a.open_class(OpenClassRequest {}).await, "classes");
    let first = opened.remove(0);
    b.close_class(CloseClassRequest {
        code: first.code.clone(),
        teacher_secret: first.teacher_secret.clone(),
    })
    .await
    .unwrap();
    soon(|| {
        let mut b = b.clone();
        async move { b.open_class(OpenClassRequest {}).await }
    })
    .await;

    // Codes that match nothing: a period's worth through A, then the next
    // look-up through B is refused with the wait, even of a code that
    // exists; a class link (its long token) still works, and so do the
    // teacher's calls with the class's secret, through either gateway.
    let follow = |code: &str| FollowClassRequest {
        code: code.into(),
        teacher_secret: String::new(),
    };
    let open = &opened[0];
    for guess in 0..lens_worker::server::MISSES_PER_PERIOD {
        let missed = a
            .follow_class(follow(&format!("Z{guess:05}")))
            .await
            .unwrap_err();
        assert_eq!(missed.code(), Code::NotFound, "{missed:?}");
    }
    let status = refused(b.follow_class(follow(&open.code)).await, "try again in");
    let wait: u64 = status
        .message()
        .split("try again in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the wait in seconds");
    assert!((1..=600).contains(&wait), "{status:?}");
    b.follow_class(follow(&open.link_token)).await.unwrap();
    let teach = |secret: &str| TeachRequest {
        code: open.code.clone(),
        teacher_secret: secret.into(),
        view: Some(ClassView::default()),
    };
    refused(b.teach(teach("a guess")).await, "try again in");
    b.teach(teach(&open.teacher_secret)).await.unwrap();
    a.close_class(CloseClassRequest {
        code: open.code.clone(),
        teacher_secret: open.teacher_secret.clone(),
    })
    .await
    .unwrap();
}
