//! The store with the real worker binary as a child process: explanations
//! survive a restart unchanged, and a worker killed with SIGKILL while it
//! writes leaves a database that opens cleanly, holds only whole rows and
//! keeps every explanation whose end a client saw.
//!
//! - `a_stored_explanation_survives_a_restart_unchanged`
//! - `a_kill_mid_write_leaves_whole_rows_only`
//! - `retention_removes_old_explanations_at_start_and_keeps_new_ones`
//! - `a_size_cap_removes_the_oldest_explanations_first`
//! - `workers_sharing_postgres_serve_each_others_links`: two worker
//!   processes on one PostgreSQL database; a link made on one opens on the
//!   other, and while the database is down the other answers UNAVAILABLE
//!   with the reason, then recovers.

use std::time::Duration;

use lens_proto::v1::{ExplainRequest, ListModelsRequest, Method};
use lens_tests::{
    assemble, collect_events, native_client, preset, temp_folder, watch_events, ChildWorker,
};
use lens_worker::store::{now_unix, Record, SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_explanation_survives_a_restart_unchanged() {
    let store = temp_folder("store");
    let worker = ChildWorker::start(&store);
    let mut client = native_client(worker.address).await;
    let image = preset(&mut client, 4).await.png;
    let request = ExplainRequest {
        image,
        method: Method::Pda as i32,
        window: 4,
        samples: Some(3),
        seed: 11,
        ..Default::default()
    };
    let original = assemble(collect_events(&mut client, request.clone()).await.unwrap());
    worker.kill();

    let restarted = ChildWorker::start(&store);
    let mut client = native_client(restarted.address).await;
    let reopened = assemble(
        watch_events(&mut client, &original.started.id)
            .await
            .unwrap(),
    );
    assert!(reopened.finished.replayed, "no recomputation");
    assert_eq!(reopened.map, original.map, "bit for bit");
    assert_eq!(reopened.started.input, original.started.input);
    assert_eq!(reopened.started.request, original.started.request);
    assert_eq!(
        reopened.started.probabilities,
        original.started.probabilities
    );
    assert_eq!(
        reopened.finished.sample_spread,
        original.finished.sample_spread
    );
    assert_eq!(
        reopened.finished.wall_seconds,
        original.finished.wall_seconds
    );
    // The same request after the restart is answered from the store too.
    let again = assemble(collect_events(&mut client, request).await.unwrap());
    assert!(again.finished.replayed);
    assert_eq!(again.started.id, original.started.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_write_leaves_whole_rows_only() {
    let store = temp_folder("store");
    let mut acknowledged = Vec::new();
    // Kill after different delays, so the kills land at different points of
    // the write cycle (between runs, mid-run, mid-commit).
    for (round, kill_after_ms) in [350u64, 800, 1300].into_iter().enumerate() {
        let worker = ChildWorker::start(&store);
        let mut client = native_client(worker.address).await;
        let image = preset(&mut client, round as u32).await.png;
        // Quick, distinct explanations (a new seed each): one stored row
        // every few milliseconds.
        let writer = tokio::spawn(async move {
            let mut seen = Vec::new();
            for seed in 0.. {
                let request = ExplainRequest {
                    image: image.clone(),
                    method: Method::SampledMean as i32,
                    window: 4,
                    stride: 4,
                    samples: Some(2),
                    seed,
                    ..Default::default()
                };
                match collect_events(&mut client, request).await {
                    Ok(events) => seen.push(assemble(events).finished.id),
                    Err(_) => break, // the worker is gone
                }
            }
            seen
        });
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        worker.kill();
        let seen = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("the client notices the kill")
            .unwrap();
        assert!(!seen.is_empty(), "round {round}: some runs finished");
        acknowledged.extend(seen);

        let opened = SqliteStore::open(&store).unwrap();
        assert_eq!(opened.integrity_check().unwrap(), "ok");
        let ids = opened.ids().unwrap();
        for id in &acknowledged {
            assert!(ids.contains(id), "a run whose end was seen is stored");
        }
        for id in &ids {
            let record = opened.load(id).unwrap().expect("listed rows load");
            let stored = record.explanation;
            let started = stored.started.expect("whole row: Started");
            let map = stored.map.expect("whole row: map");
            let finished = stored.finished.expect("whole row: Finished");
            assert_eq!(map.values.len(), 28 * 28);
            assert_eq!(started.id, *id);
            assert_eq!(finished.id, *id);
            assert!(map.values.iter().all(|v| v.is_finite()));
        }
    }
    // And the worker starts and serves on the store it was killed over.
    let worker = ChildWorker::start(&store);
    let mut client = native_client(worker.address).await;
    client.list_models(ListModelsRequest {}).await.unwrap();
    let last = acknowledged.last().unwrap();
    let reopened = assemble(watch_events(&mut client, last).await.unwrap());
    assert!(reopened.finished.replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_explanations_at_start_and_keeps_new_ones() {
    let store = temp_folder("store");
    let worker = ChildWorker::start(&store);
    let mut client = native_client(worker.address).await;
    let image = preset(&mut client, 6).await.png;
    let mut ids = Vec::new();
    for seed in 0..2 {
        let request = ExplainRequest {
            image: image.clone(),
            method: Method::Gradient as i32,
            seed,
            ..Default::default()
        };
        ids.push(
            assemble(collect_events(&mut client, request).await.unwrap())
                .started
                .id,
        );
    }
    worker.kill();
    // Age the first explanation by ten days, as if made then.
    let opened = SqliteStore::open(&store).unwrap();
    let mut old = opened.load(&ids[0]).unwrap().unwrap();
    old.created_unix = now_unix() - 10 * 24 * 3600;
    opened.save(&old).unwrap();
    drop(opened);

    let worker = ChildWorker::start_with(&store, &["--retention-days", "7"]);
    let mut client = native_client(worker.address).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match watch_events(&mut client, &ids[0]).await {
            Err(status) if status.code() == tonic::Code::NotFound => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "the ten-day-old explanation outlived a 7-day retention"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = assemble(watch_events(&mut client, &ids[1]).await.unwrap());
    assert!(kept.finished.replayed, "the new one stays");
}

/// A stored explanation of about `megabytes` (its map), made at `created_unix`.
fn synthetic_record(megabytes: f64, created_unix: i64, salt: u8) -> Record {
    let values = (megabytes * 1024.0 * 1024.0 / 4.0) as usize;
    lens_tests::synthetic_record(values, created_unix, salt, [0; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_cap_removes_the_oldest_explanations_first() {
    // Four explanations of 0.4 MB, a day apart; a cap of 1 MB keeps the
    // newest two.
    let store = temp_folder("store");
    let opened = SqliteStore::open(&store).unwrap();
    let records: Vec<Record> = (0..4)
        .map(|i| synthetic_record(0.4, now_unix() - (4 - i) * 24 * 3600, i as u8))
        .collect();
    for record in &records {
        opened.save(record).unwrap();
    }
    drop(opened);

    let worker = ChildWorker::start_with(&store, &["--max-store-mb", "1"]);
    let mut client = native_client(worker.address).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for old in &records[..2] {
        loop {
            match watch_events(&mut client, &old.id).await {
                Err(status) if status.code() == tonic::Code::NotFound => break,
                _ => assert!(
                    std::time::Instant::now() < deadline,
                    "an old explanation outlived the cap"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for new in &records[2..] {
        assert!(
            watch_events(&mut client, &new.id).await.is_ok(),
            "the newest stay"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_postgres_serve_each_others_links() {
    let database = lens_tests::postgres_server::PostgresServer::start();
    let url = database.url();
    let shared = ["--database-url", url.as_str()];
    let first = ChildWorker::start_with(&temp_folder("store-a"), &shared);
    let second = ChildWorker::start_with(&temp_folder("store-b"), &shared);
    let mut client = native_client(first.address).await;
    let request = ExplainRequest {
        image: preset(&mut client, 2).await.png,
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let original = assemble(collect_events(&mut client, request).await.unwrap());

    let mut other = native_client(second.address).await;
    let opened = assemble(
        watch_events(&mut other, &original.started.id)
            .await
            .unwrap(),
    );
    assert!(opened.finished.replayed, "read from the shared database");
    assert_eq!(opened.map, original.map);

    database.stop();
    let status = watch_events(&mut other, &original.started.id)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("cannot reach PostgreSQL"),
        "{status:?}"
    );
    database.start_again();
    let again = assemble(
        watch_events(&mut other, &original.started.id)
            .await
            .unwrap(),
    );
    assert_eq!(again.map, original.map, "recovered");
}
