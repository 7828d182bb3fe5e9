//! `/metrics` on `serve`: Prometheus text that parses, names every metric,
//! and moves when a class opens, a student follows and a run is made.

use std::collections::HashMap;

use lens_proto::v1::{ExplainRequest, FollowClassRequest, Method, OpenClassRequest};
use lens_tests::{
    assemble, collect_events, long_run_started, native_client, parse_metrics, preset,
    scrape_metrics, start_worker,
};

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} in {samples:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_classes_and_runs() {
    let address = start_worker().await;
    let before = parse_metrics(&scrape_metrics(address));
    for gauge in [
        "lens_jobs_waiting",
        "lens_jobs_running",
        "lens_live_viewers",
        "lens_classes_open",
        "lens_class_followers",
        "lens_store_errors_total",
        "lens_queue_errors_total",
    ] {
        assert_eq!(value(&before, gauge), 0.0, "{gauge}");
    }
    assert!(value(&before, "lens_advertisement_age_seconds").is_nan());

    // A class with one student.
    let mut client = native_client(address).await;
    let opened = client
        .open_class(OpenClassRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut following = client
        .follow_class(FollowClassRequest {
            code: opened.code.clone(),
            teacher_secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    following.message().await.unwrap();
    let in_class = parse_metrics(&scrape_metrics(address));
    assert_eq!(value(&in_class, "lens_classes_open"), 1.0);
    assert_eq!(value(&in_class, "lens_class_followers"), 1.0);
    drop(following);

    // A run: its forward passes and time are counted.
    let image = preset(&mut client, 3).await.png;
    let request = ExplainRequest {
        image: image.clone(),
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let run = assemble(collect_events(&mut client, request).await.unwrap());
    let after = parse_metrics(&scrape_metrics(address));
    assert_eq!(
        value(&after, "lens_forward_passes_total{model=\"digits\"}"),
        run.finished.forward_passes as f64
    );
    assert_eq!(
        value(
            &after,
            "lens_run_seconds_count{method=\"EfficientPda\",model=\"digits\"}"
        ),
        1.0
    );
    assert_eq!(value(&after, "lens_live_viewers"), 0.0, "the viewer left");

    // While a long run streams: one job running, one viewer.
    let long = long_run_started(&mut client, image).await;
    let running = parse_metrics(&scrape_metrics(address));
    assert_eq!(value(&running, "lens_jobs_running"), 1.0);
    assert_eq!(value(&running, "lens_live_viewers"), 1.0);
    drop(long);
}
