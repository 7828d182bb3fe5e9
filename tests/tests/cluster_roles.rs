//! Gateways and workers as real processes on loopback, with a private
//! PostgreSQL and a private NATS server: links across gateways, a worker
//! killed mid-run, jobs spread over workers, a gateway lost mid-run, and
//! NATS or PostgreSQL out of reach.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lens_proto::v1::{explain_event::Event, ExplainEvent, ExplainRequest, Method, WatchRequest};
use lens_tests::nats_server::NatsServer;
use lens_tests::postgres_server::PostgresServer;
use lens_tests::{
    assemble, collect_events, listening_address, native_client, preset, start_worker, watch_events,
    ChildProcess,
};
use tokio_stream::StreamExt;

struct Services {
    nats: NatsServer,
    database: PostgresServer,
}

impl Services {
    fn start() -> Services {
        Services {
            nats: NatsServer::start(),
            database: PostgresServer::start(),
        }
    }

    fn gateway(&self) -> (ChildProcess, SocketAddr) {
        let (nats, database) = (self.nats.url(), self.database.url());
        let arguments = [
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--nats-url",
            &nats,
            "--database-url",
            &database,
        ];
        let (child, line) = ChildProcess::start(&arguments, "Evidence Lens on http://");
        (child, listening_address(&line))
    }

    /// A worker that takes over a dead worker's job after `takeover` s.
    fn worker(&self, name: &str, takeover: u64) -> ChildProcess {
        let (nats, database) = (self.nats.url(), self.database.url());
        let takeover = takeover.to_string();
        let arguments = [
            "worker",
            "--name",
            name,
            "--takeover-seconds",
            &takeover,
            "--nats-url",
            &nats,
            "--database-url",
            &database,
        ];
        ChildProcess::start(&arguments, "worker ready").0
    }
}

/// A few seconds of work on a digit, streamed as many small tiles.
fn seconds_of_work(image: Vec<u8>, seed: u64) -> ExplainRequest {
    ExplainRequest {
        image,
        method: Method::Pda as i32,
        window: 2,
        samples: Some(40),
        tile_size: 4,
        seed,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_opens_through_either_gateway_live_and_after_the_end() {
    let services = Services::start();
    let _worker = services.worker("one", 10);
    let (_a, address_a) = services.gateway();
    let (_b, address_b) = services.gateway();
    let mut a = native_client(address_a).await;
    let mut b = native_client(address_b).await;
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
    let mut b = native_client(address_b).await;
    let stored = assemble(watch_events(&mut b, &created.started.id).await.unwrap());
    assert!(stored.finished.replayed);
    assert_eq!(stored.map, created.map);

    // The same map as one process makes.
    let mut single = native_client(start_worker().await).await;
    let alone = assemble(collect_events(&mut single, request).await.unwrap());
    assert_eq!(alone.map, created.map);
}
