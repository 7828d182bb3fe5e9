//! Load check for hosting with several workers: 100 explanations of digits
//! sent at once through one gateway, first with one worker, then with two
//! (each with one torch thread, as this 2-core machine allows), on a private
//! NATS server and PostgreSQL. Prints, for each, the throughput and how long
//! the explanations waited in the queue (request sent -> Started, when a
//! worker began it), median and 95th percentile.
//!
//! cargo run --release -p lens-tests --example load_cluster -- [JOBS] [SAMPLES]

use std::time::Instant;

use lens_proto::v1::{explain_event::Event, ExplainRequest, Method};
use lens_tests::cluster::Services;
use lens_tests::{native_client, preset};
use tokio_stream::StreamExt;

/// One explanation's times, seconds from the moment it was sent.
struct Timing {
    started: f64,
    finished: f64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: JOBS SAMPLES"))
        .collect();
    let jobs = args.first().copied().unwrap_or(100);
    let samples = args.get(1).copied().unwrap_or(4) as u32;
    let services = Services::start();
    println!("{jobs} digits explanations at once (PDA, k = 4, S = {samples}), one gateway");
    println!("workers  wall s  jobs/s  queue wait p50 / p95 s  run p50 s");
    let mut seed = 0;
    for workers in [1, 2] {
        let names = ["first", "second"];
        let _workers: Vec<_> = names[..workers]
            .iter()
            .map(|name| services.worker_with_env(name, 10, &[("OMP_NUM_THREADS", "1")]))
            .collect();
        let limit = (2 * jobs).to_string();
        let (_gateway, address) =
            services.gateway_with(&["--max-jobs", &limit, "--per-client", &limit]);
        let mut client = native_client(address).await;
        let image = preset(&mut client, 6).await.png;
        let began = Instant::now();
        let runs: Vec<_> = (0..jobs)
            .map(|_| {
                seed += 1; // a new seed: never answered from the store
                let request = ExplainRequest {
                    image: image.clone(),
                    method: Method::Pda as i32,
                    window: 4,
                    samples: Some(samples),
                    seed,
                    ..Default::default()
                };
                let mut client = client.clone();
                tokio::spawn(async move { timed(&mut client, request).await })
            })
            .collect();
        let mut timings = Vec::new();
        for run in runs {
            timings.push(run.await.unwrap());
        }
        let wall = began.elapsed().as_secs_f64();
        let mut waits: Vec<f64> = timings.iter().map(|t| t.started).collect();
        let mut runs: Vec<f64> = timings.iter().map(|t| t.finished - t.started).collect();
        println!(
            "{workers:>7}  {wall:>6.1}  {:>6.2}  {:>10.1} / {:<10.1}  {:>9.2}",
            jobs as f64 / wall,
            percentile(&mut waits, 0.5),
            percentile(&mut waits, 0.95),
            percentile(&mut runs, 0.5),
        );
    }
}

/// Sends `request` and times its Started and Finished.
async fn timed(
    client: &mut lens_proto::v1::evidence_lens_client::EvidenceLensClient<
        tonic::transport::Channel,
    >,
    request: ExplainRequest,
) -> Timing {
    let sent = Instant::now();
    let mut stream = client.explain(request).await.unwrap().into_inner();
    let mut started = None;
    while let Some(event) = stream.next().await {
        match event.unwrap().event {
            Some(Event::Started(_)) => started = Some(sent.elapsed().as_secs_f64()),
            Some(Event::Finished(_)) => {
                return Timing {
                    started: started.expect("Started before Finished"),
                    finished: sent.elapsed().as_secs_f64(),
                }
            }
            _ => {}
        }
    }
    panic!("the stream ended without Finished");
}

/// The `q` quantile (nearest rank).
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
