//! Many large uploads at once, and how long a cheap call takes meanwhile.
//!
//! Starts the worker in-process with room for every upload (32 jobs, 32 per
//! client), measures `ListModels` when idle, then sends 24 different
//! explanations (seeds 0 to 23) of a 39.7-megapixel PNG at once (under
//! 1 MB each: small on the wire, large once decoded) while calling
//! `ListModels` every 20 ms, and prints the call's latency, how the uploads
//! ended and the process's peak resident memory.
//!
//! cargo run --release -p lens-tests --example upload_load -- [UPLOADS]

use std::time::{Duration, Instant};

use lens_proto::v1::{ExplainRequest, ListModelsRequest, Method};
use lens_tests::{collect_events, native_client, repo_root, start_worker_configured, temp_folder};
use lens_worker::server::Limits;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let uploads: usize = std::env::args()
        .nth(1)
        .map_or(24, |a| a.parse().expect("a number of uploads"));
    let limits = Limits {
        jobs: 32,
        per_client: 32,
        ..Limits::default()
    };
    let models = repo_root().join("models");
    let address = start_worker_configured(&models, &temp_folder("upload-load"), limits).await;
    let client = native_client(address).await;
    let side = 6300; // 39.7 megapixels, under the 40-megapixel limit
    let png = {
        let photo = image::RgbImage::from_pixel(side, side, image::Rgb([200, 120, 40]));
        let mut png = Vec::new();
        photo
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    };
    println!(
        "upload: {side} x {side} PNG, {} KB; {uploads} at once",
        png.len() / 1024
    );

    let list = |mut client: lens_proto::v1::evidence_lens_client::EvidenceLensClient<_>| async move {
        let start = Instant::now();
        client.list_models(ListModelsRequest {}).await.unwrap();
        start.elapsed()
    };
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(list(client.clone()).await);
    }

    let uploads: Vec<_> = (0..uploads)
        .map(|seed| {
            let mut client = client.clone();
            let request = ExplainRequest {
                image: png.clone(),
                model: "efficientnet-lite0".into(),
                method: Method::Gradient as i32,
                seed: seed as u64,
                ..Default::default()
            };
            tokio::spawn(async move { collect_events(&mut client, request).await })
        })
        .collect();
    let mut loaded = Vec::new();
    while uploads.iter().any(|u| !u.is_finished()) {
        loaded.push(list(client.clone()).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut explained, mut refused) = (0, Vec::new());
    for upload in uploads {
        match upload.await.unwrap() {
            Ok(_) => explained += 1,
            Err(status) => refused.push(status.message().to_string()),
        }
    }
    let show = |name: &str, mut times: Vec<Duration>| {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "ListModels {name}: {} calls, median {:.1} ms, max {:.1} ms",
            times.len(),
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap())
        );
    };
    show("idle", idle);
    show("during the uploads", loaded);
    println!("uploads explained: {explained}, refused: {}", refused.len());
    if let Some(first) = refused.first() {
        println!("  for example: {first}");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(peak) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!(
            "peak resident memory: {}",
            peak.trim_start_matches("VmHWM:").trim()
        );
    }
}
