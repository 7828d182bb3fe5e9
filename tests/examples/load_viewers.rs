//! Load check: one run watched by 30 live viewers over gRPC-Web against the
//! same kind of run watched by its creator alone, alternated over a few
//! rounds, side by side in one process. Prints each run's own compute time
//! (Finished.wall_seconds) and the ratio of the medians.
//!
//! cargo run --release -p lens-tests --example load_viewers -- [VIEWERS] [ROUNDS] [SAMPLES]

use std::time::Instant;

use lens_proto::v1::{explain_event::Event, ExplainRequest, Method};
use lens_tests::{
    assemble, drain, preset, repo_root, start_worker_configured, temp_folder, web_client,
};
use lens_worker::server::Limits;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: VIEWERS ROUNDS SAMPLES"))
        .collect();
    let viewers = args.first().copied().unwrap_or(30);
    let rounds = args.get(1).copied().unwrap_or(3);
    let samples = args.get(2).copied().unwrap_or(40) as u32;
    let address = start_worker_configured(
        &repo_root().join("models"),
        &temp_folder("load-store"),
        Limits::default(),
    )
    .await;
    let mut creator = web_client(address);
    let image = preset(&mut creator, 8).await.png;
    println!(
        "digits PDA, k = 4, S = {samples}, {} torch threads; {viewers} gRPC-Web viewers vs 1",
        tch::get_num_threads()
    );
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    let mut seed = 0;
    for round in 0..rounds {
        for crowd in [0, viewers] {
            seed += 1; // a new seed: never answered from the store
            let request = ExplainRequest {
                image: image.clone(),
                method: Method::Pda as i32,
                window: 4,
                samples: Some(samples),
                seed,
                ..Default::default()
            };
            let began = Instant::now();
            let mut stream = creator.explain(request).await.unwrap().into_inner();
            let first = stream.message().await.unwrap().unwrap();
            let Some(Event::Started(started)) = &first.event else {
                panic!("Started first");
            };
            let watchers: Vec<_> = (0..crowd)
                .map(|_| {
                    let id = started.id.clone();
                    tokio::spawn(async move {
                        let mut client = web_client(address);
                        let request = lens_proto::v1::WatchRequest { id };
                        let stream = client.watch(request).await.unwrap().into_inner();
                        assemble(drain(stream).await.unwrap()).map
                    })
                })
                .collect();
            let mut events = vec![(tokio::time::Instant::now(), first)];
            events.extend(drain(stream).await.unwrap());
            let mine = assemble(events);
            for watcher in watchers {
                assert_eq!(
                    watcher.await.unwrap(),
                    mine.map,
                    "every viewer sees the same map"
                );
            }
            let compute = mine.finished.wall_seconds;
            println!(
                "round {round}: {:>2} viewers + creator: run {compute:.3} s, creator's stream {:.3} s",
                crowd,
                began.elapsed().as_secs_f64()
            );
            if crowd == 0 { &mut alone } else { &mut watched }.push(compute);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, many) = (median(&mut alone), median(&mut watched));
    println!(
        "median run time: 1 viewer {one:.3} s, {viewers} viewers {many:.3} s, slowdown {:.3}x",
        many / one
    );
}
