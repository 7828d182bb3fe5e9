//! The worker over gRPC-Web (HTTP/1.1), the protocol the page speaks.
//!
//! - `grpc_web_streams_tiles_progressively`
//! - `grpc_web_reports_bad_input`

use lens_proto::v1::{ExplainRequest, Method};
use lens_tests::{assemble, collect_events, preset, start_worker, web_client};
use tonic::Code;

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
async fn grpc_web_reports_bad_input() {
    let address = start_worker().await;
    let mut client = web_client(address);
    let request = ExplainRequest {
        image: b"definitely not a picture".to_vec(),
        ..Default::default()
    };
    let status = collect_events(&mut client, request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("not a PNG or JPEG"), "{status:?}");
}
