//! Each run's events on JetStream, on a real private NATS server:
//!
//! - `a_late_viewer_gets_the_run_from_its_first_event_then_live`: events
//!   published before the viewer came are replayed in order, then new ones
//!   follow; another run's events never mix in; a viewer on another
//!   connection (another process) sees the same.
//! - `a_run_keeps_only_its_newest_events_past_its_bound`
//! - `a_viewer_follows_on_from_where_it_was_when_nats_restarts`

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use lens_tests::nats_server::NatsServer;
use lens_worker::cluster::events::{EventLimits, RunEvents};

async fn next(
    events: &mut (impl futures::Stream<Item = Result<Bytes, lens_worker::cluster::ClusterError>>
              + Unpin),
) -> Bytes {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_viewer_gets_the_run_from_its_first_event_then_live() {
    let nats = NatsServer::start();
    let worker = RunEvents::open(&nats.url(), EventLimits::default())
        .await
        .unwrap();
    for i in 0..3 {
        worker
            .publish("run-a", Bytes::from(format!("a{i}")))
            .await
            .unwrap();
        worker
            .publish("run-b", Bytes::from(format!("b{i}")))
            .await
            .unwrap();
    }
    // A viewer on another connection, as on another gateway.
    let gateway = RunEvents::open(&nats.url(), EventLimits::default())
        .await
        .unwrap();
    let mut viewer = Box::pin(gateway.follow("run-a").await.unwrap());
    for i in 0..3 {
        assert_eq!(
            next(&mut viewer).await,
            format!("a{i}"),
            "replayed in order"
        );
    }
    worker.publish("run-b", Bytes::from("b3")).await.unwrap();
    worker.publish("run-a", Bytes::from("a3")).await.unwrap();
    assert_eq!(next(&mut viewer).await, "a3", "then live, only its own run");
    let mut second = Box::pin(worker.follow("run-b").await.unwrap());
    for i in 0..4 {
        assert_eq!(next(&mut second).await, format!("b{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_only_its_newest_events_past_its_bound() {
    let nats = NatsServer::start();
    let limits = EventLimits {
        per_run: 3,
        ..EventLimits::default()
    };
    let events = RunEvents::open(&nats.url(), limits).await.unwrap();
    for i in 0..5 {
        events
            .publish("long", Bytes::from(format!("e{i}")))
            .await
            .unwrap();
    }
    events.publish("short", Bytes::from("s0")).await.unwrap();
    let mut viewer = Box::pin(events.follow("long").await.unwrap());
    for i in 2..5 {
        assert_eq!(next(&mut viewer).await, format!("e{i}"), "the newest three");
    }
    let mut other = Box::pin(events.follow("short").await.unwrap());
    assert_eq!(next(&mut other).await, "s0", "another run keeps its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_follows_on_from_where_it_was_when_nats_restarts() {
    let mut nats = NatsServer::start();
    let worker = RunEvents::open(&nats.url(), EventLimits::default())
        .await
        .unwrap();
    let gateway = RunEvents::open(&nats.url(), EventLimits::default())
        .await
        .unwrap();
    for i in 0..2 {
        let event = Bytes::from(format!("e{i}"));
        worker.publish("run", event).await.unwrap();
    }
    let mut viewer = gateway.follow("run").await.unwrap();
    assert_eq!(next(&mut viewer).await, "e0");
    assert_eq!(next(&mut viewer).await, "e1");

    // NATS goes away (its consumers with it) and comes back.
    nats.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.start_again();
    let back = std::time::Instant::now();
    while worker.publish("run", Bytes::from("e2")).await.is_err() {
        assert!(back.elapsed() < Duration::from_secs(20), "NATS is back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.publish("run", Bytes::from("e3")).await.unwrap();
    // The viewer goes on after the last event it read: nothing twice,
    // nothing missed.
    for expected in ["e2", "e3"] {
        let event = tokio::time::timeout(Duration::from_secs(30), viewer.next())
            .await
            .expect("an event within 30 s of NATS coming back")
            .expect("the stream goes on")
            .expect("followed again, not ended with the error");
        assert_eq!(event, expected);
    }
}
