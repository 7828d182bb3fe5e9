//! The shared job queue on a real NATS JetStream server (private, per test):
//!
//! - `each_job_goes_to_one_worker_and_leaves_when_done`
//! - `a_job_whose_worker_dies_goes_to_another_worker`: the first worker
//!   takes the job and disappears without finishing it; the second gets it
//!   `ack_wait` later, as its second delivery, though a gateway (which only
//!   submits) was there first.
//! - `a_job_kept_alive_is_not_handed_on`: confirmed every half `ack_wait`,
//!   a job longer than `ack_wait` stays with its worker.
//! - `each_clients_jobs_are_counted_until_done`: the per-browser and
//!   per-address counts that every gateway reads, and a browser's further
//!   jobs held until it has none where workers take them.
//! - `an_unreachable_nats_is_reported_with_its_address`

use std::time::{Duration, Instant};

use bytes::Bytes;
use lens_tests::nats_server::NatsServer;
use lens_worker::cluster::jobs::{JobQueue, Lane};
use lens_worker::cluster::ClusterError;

const ACK_WAIT: Duration = Duration::from_secs(2);

fn lane(address: &str, browser: &str) -> Lane {
    Lane {
        address: address.into(),
        browser: browser.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_clients_jobs_are_counted_until_done() {
    let nats = NatsServer::start();
    let (gateway, worker) = (
        JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap(),
        JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap(),
    );
    let (school, browser, other) = (
        lane("0a000001", "browser-a"),
        lane("0a000001", "browser-b"),
        lane("0a000002", "-"),
    );
    for _ in 0..3 {
        gateway
            .submit(&school, Bytes::from_static(b"a"))
            .await
            .unwrap();
    }
    gateway
        .submit(&browser, Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(gateway.outstanding_in(&school).await.unwrap(), 3);
    assert_eq!(gateway.outstanding_in(&browser).await.unwrap(), 1);
    assert_eq!(gateway.outstanding_at_address(&browser).await.unwrap(), 4);
    assert_eq!(gateway.outstanding_in(&other).await.unwrap(), 0);
    assert_eq!(gateway.outstanding_at_address(&other).await.unwrap(), 0);
    let taken = worker.next(ACK_WAIT).await.unwrap().unwrap();
    assert_eq!(taken.payload, Bytes::from_static(b"a"), "oldest first");
    assert_eq!(
        gateway.outstanding_in(&school).await.unwrap(),
        3,
        "running counts"
    );
    taken.done().await.unwrap();
    assert_eq!(gateway.outstanding_in(&school).await.unwrap(), 2);
    assert_eq!(gateway.outstanding_at_address(&school).await.unwrap(), 3);
    assert_eq!(gateway.outstanding().await.unwrap(), 3);
    // A browser has one job where workers take them; its others are held
    // until it has none there, then queue behind the other browsers' jobs.
    let b = worker.next(ACK_WAIT).await.unwrap().unwrap();
    assert_eq!(b.payload, Bytes::from_static(b"b"));
    assert!(
        worker
            .next(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "held, not taken"
    );
    let promoted = gateway.promote_held().await.unwrap();
    assert_eq!(
        promoted.len(),
        1,
        "one held job of the browser with none ready"
    );
    assert_eq!(
        gateway.promote_held().await.unwrap().len(),
        0,
        "one at a time"
    );
    let a = worker.next(ACK_WAIT).await.unwrap().unwrap();
    assert_eq!(a.payload, Bytes::from_static(b"a"));
    assert_eq!(gateway.outstanding().await.unwrap(), 3, "moved, not copied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_goes_to_one_worker_and_leaves_when_done() {
    let nats = NatsServer::start();
    let (first, second) = (
        JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap(),
        JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap(),
    );
    for i in 0..4u8 {
        first
            .submit(&lane("one", "-"), Bytes::from(vec![i]))
            .await
            .unwrap();
    }
    assert_eq!(first.outstanding().await.unwrap(), 4);
    let mut seen = Vec::new();
    for queue in [&first, &second, &first, &second] {
        let job = queue.next(ACK_WAIT).await.unwrap().expect("a job waits");
        assert_eq!(job.attempt, 1);
        seen.push(job.payload[0]);
        job.done().await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3], "each job exactly once");
    assert!(second
        .next(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    assert_eq!(first.outstanding().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_dies_goes_to_another_worker() {
    let nats = NatsServer::start();
    // A gateway up before any worker leaves the takeover time to them.
    let gateway = JobQueue::submitter(&nats.url()).await.unwrap();
    gateway
        .submit(&lane("one", "-"), Bytes::from_static(b"job"))
        .await
        .unwrap();
    assert!(
        gateway.next(ACK_WAIT).await.is_err(),
        "a submitter takes no jobs"
    );
    let survivor = JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap();
    {
        let doomed = JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap();
        let taken = doomed.next(ACK_WAIT).await.unwrap().expect("a job waits");
        assert_eq!(taken.attempt, 1);
        // The worker dies here: neither done nor kept alive.
    }
    let lost_at = Instant::now();
    let job = survivor
        .next(3 * ACK_WAIT)
        .await
        .unwrap()
        .expect("the lost job comes back");
    let after = lost_at.elapsed();
    assert_eq!(&job.payload[..], b"job");
    assert_eq!(job.attempt, 2, "its second delivery");
    assert!(
        after <= ACK_WAIT + Duration::from_secs(1),
        "after {after:?}"
    );
    job.done().await.unwrap();
    assert_eq!(survivor.outstanding().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_kept_alive_is_not_handed_on() {
    let nats = NatsServer::start();
    let (worker, other) = (
        JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap(),
        JobQueue::open(&nats.url(), ACK_WAIT).await.unwrap(),
    );
    worker
        .submit(&lane("one", "-"), Bytes::from_static(b"long"))
        .await
        .unwrap();
    let job = worker.next(ACK_WAIT).await.unwrap().expect("a job waits");
    // Three times ack_wait of work, confirmed every half ack_wait, while
    // the other worker asks for jobs all along.
    let watching = tokio::spawn(async move { other.next(3 * ACK_WAIT).await });
    for _ in 0..6 {
        tokio::time::sleep(ACK_WAIT / 2).await;
        job.keep_alive().await.unwrap();
    }
    let stolen = watching.await.unwrap().unwrap();
    assert!(stolen.is_none(), "a kept-alive job was handed on");
    job.done().await.unwrap();
    assert_eq!(worker.outstanding().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_nats_is_reported_with_its_address() {
    let url = format!("nats://127.0.0.1:{}", lens_tests::free_port());
    match JobQueue::open(&url, ACK_WAIT).await {
        Err(error @ ClusterError::Unavailable { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&format!("cannot reach NATS at {url}")),
                "{message}"
            );
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("nothing listens on {url}"),
    }
}
