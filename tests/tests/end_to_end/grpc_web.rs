//! The worker over gRPC-Web (HTTP/1.1), the protocol the page speaks.
//!
//! - `grpc_web_streams_tiles_progressively`
//! - `grpc_web_reports_each_bad_input_and_keeps_serving`

use lens_proto::v1::{ExplainRequest, Method};
use lens_tests::{
    assemble, collect_events, preset, refuses_each_bad_request, start_worker, web_client,
};

#[tokio::test]
async fn grpc_web_streams_tiles_progressively() {
    let address = start_worker().await;
    let mut client = web_client(address);
    let four = preset(&mut client, 4).await;
    let request = ExplainRequest {
        image: four.png,
        method: Method::Pda as i32,
        window: 4,
        samples: Some(20),
        batch_size: 32,
        ..Default::default()
    };
    let streamed = assemble(collect_events(&mut client, request).await.unwrap());
    assert!(streamed.tile_times.len() >= 16);
    // 12,500 forward passes take seconds; if HTTP/1.1 buffered the response,
    // every tile would arrive together with the end.
    let spread = *streamed.tile_times.last().unwrap() - streamed.tile_times[0];
    assert!(spread.as_millis() > 50, "tiles arrived within {spread:?}");
    assert!(streamed.map.iter().all(|v| v.is_finite()));
}

#[tokio::test]
async fn grpc_web_reports_each_bad_input_and_keeps_serving() {
    let address = start_worker().await;
    let mut client = web_client(address);
    let good = preset(&mut client, 8).await.png;
    refuses_each_bad_request(&mut client, &good).await;
    let ok = ExplainRequest {
        image: good,
        method: Method::EfficientPda as i32,
        ..Default::default()
    };
    assemble(collect_events(&mut client, ok).await.unwrap());
}
