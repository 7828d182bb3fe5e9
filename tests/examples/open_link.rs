//! Time to open the share link of a stored 224 x 224 explanation over
//! gRPC-Web (Watch until Finished, the map complete), as the page does.
//!
//! cargo run --release -p lens-tests --example open_link -- [PHOTO] [TIMES]

use std::time::Instant;

use lens_proto::v1::{ExplainRequest, Method};
use lens_tests::{
    assemble, collect_events, repo_root, start_worker_configured, temp_folder, watch_events,
    web_client,
};
use lens_worker::server::Limits;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let photo = args
        .first()
        .map_or("data/photos/chelsea.png", String::as_str);
    let times: usize = args.get(1).map_or(20, |t| t.parse().expect("TIMES"));
    let address = start_worker_configured(
        &repo_root().join("models"),
        &temp_folder("open-link-store"),
        Limits::default(),
    )
    .await;
    let mut client = web_client(address);
    // Any method gives a stored 224 x 224 map; the gradient is quickest.
    let request = ExplainRequest {
        image: std::fs::read(repo_root().join(photo)).expect("photo"),
        method: Method::Gradient as i32,
        model: "efficientnet-lite0".into(),
        window: 10,
        ..Default::default()
    };
    let made = assemble(collect_events(&mut client, request).await.unwrap());
    let id = made.started.id.clone();
    let mut millis = Vec::new();
    for _ in 0..times {
        let began = Instant::now();
        let opened = assemble(watch_events(&mut client, &id).await.unwrap());
        millis.push(began.elapsed().as_secs_f64() * 1000.0);
        assert!(opened.finished.replayed);
        assert_eq!(opened.map, made.map);
    }
    millis.sort_by(f64::total_cmp);
    println!(
        "{photo}: stored 224 x 224 explanation opened {times} times over gRPC-Web: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        millis[times / 2],
        millis[0],
        millis[times - 1]
    );
}
