//! Fault and load program (issue 8): one worker, run as its own process
//! (`evidence-lens serve`), tried as hostile or unlucky clients would.
//!
//! 1. 24 concurrent explanations of a 39.7-megapixel PNG while `ListModels`
//!    is timed every 20 ms; the worker's peak resident memory (VmHWM), and
//!    the same for a small PNG first, to tell decoding from the runs.
//! 2. One run watched by 200 live viewers plus 20 stalled ones (each on its
//!    own connection, reading nothing until the run ends) against the same
//!    kind of run with its creator alone, alternated; each run's own compute
//!    time (Finished.wall_seconds).
//! 3. A model that raises after a number of calls, with 50 viewers on the
//!    failing run: when each viewer's error status arrives, measured from the
//!    creator's, and from the last progress any of them saw.
//! 4. SIGKILL mid-run and a restart on the same store: how long until it
//!    serves again, and whether every finished explanation is still there.
//!
//! Build the worker first (`cargo build --release -p lens-worker`), then:
//! cargo run --release -p lens-tests --example fault_load -- [PARTS] [ROUNDS]
//! where PARTS is a comma-separated choice of uploads, viewers, faulty,
//! kill (default: all four) and ROUNDS the alternations of part 2 (3).

use std::path::Path;
use std::time::{Duration, Instant};

use lens_proto::v1::{
    evidence_lens_client::EvidenceLensClient, explain_event::Event, ExplainEvent, ExplainRequest,
    ListModelsRequest, Method, WatchRequest,
};
use lens_tests::{
    assemble, collect_events, drain, minutes_of_work, native_client, preset, red_left_png,
    repo_root, temp_folder, watch_events, ChildWorker, USER_MODEL_DESCRIPTION,
};
use tonic::transport::Channel;

type Client = EvidenceLensClient<Channel>;

/// Calls the faulty model answers before it raises: its load check, the
/// worker's timing of the network and a few seconds of the run.
const FAULTY_CALLS: u32 = 400;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let parts = std::env::args()
        .nth(1)
        .unwrap_or("uploads,viewers,faulty,kill".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .map_or(3, |a| a.parse().expect("a number of rounds"));
    let part = |name: &str| parts.split(',').any(|p| p == name);
    let models = temp_folder("fault-load-models");
    for shipped in ["digits", "efficientnet-lite0"] {
        std::os::unix::fs::symlink(
            repo_root().join("models").join(shipped),
            models.join(shipped),
        )
        .unwrap();
    }
    write_faulty_model(&models.join("faulty"));
    let store = temp_folder("fault-load-store");
    let options = [
        "--models",
        models.to_str().unwrap(),
        "--max-jobs",
        "32",
        "--per-client",
        "32",
        "--viewers-per-run",
        "256",
        "--watches-per-client",
        "512",
    ];
    let worker = ChildWorker::start_with(&store, &options);
    println!(
        "worker pid {}, {} cores here; client and worker share them",
        worker.child.process.id(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut finished_ids = Vec::new();
    if part("uploads") {
        finished_ids.extend(uploads(&worker).await);
    }
    if part("viewers") {
        finished_ids.extend(viewers(worker.address, rounds).await);
    }
    if part("faulty") {
        faulty_model(worker.address).await;
    }
    if part("kill") {
        kill_and_restart(worker, &store, &options, &finished_ids).await;
    }
    std::fs::remove_dir_all(models).unwrap();
    std::fs::remove_dir_all(store).unwrap();
}

/// Part 1: the same 24 gradient runs on a small photo first (what the runs
/// themselves take), then on the large one (what decoding adds). Returns the
/// ids of the explanations that finished.
async fn uploads(worker: &ChildWorker) -> Vec<String> {
    let pid = worker.child.process.id();
    println!(
        "\n1. 24 concurrent uploads, gradient on EfficientNet-Lite0; worker resident memory at start: {}",
        memory(pid, "VmRSS")
    );
    let mut ids = Vec::new();
    for side in [300, 6300] {
        // Peak resident memory from here on (Linux: 5 resets VmHWM).
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        ids.extend(concurrent_uploads(worker.address, side, 24).await);
        println!(
            "   worker peak resident memory meanwhile (VmHWM): {}; after: {}",
            memory(pid, "VmHWM"),
            memory(pid, "VmRSS")
        );
    }
    ids
}

async fn concurrent_uploads(address: std::net::SocketAddr, side: u32, count: u64) -> Vec<String> {
    let client = native_client(address).await;
    let png = {
        let photo = image::RgbImage::from_pixel(side, side, image::Rgb([200, 120, 40]));
        let mut png = Vec::new();
        photo
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    };
    println!(
        "   {side} x {side} PNG ({:.1} megapixels, {} KB):",
        (side * side) as f64 / 1e6,
        png.len() / 1024
    );
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(time_list_models(client.clone()).await);
    }
    let uploads: Vec<_> = (0..count)
        .map(|seed| {
            let mut client = client.clone();
            let request = ExplainRequest {
                image: png.clone(),
                model: "efficientnet-lite0".into(),
                method: Method::Gradient as i32,
                seed: seed + side as u64 * 1000, // never answered from the store
                ..Default::default()
            };
            tokio::spawn(async move { collect_events(&mut client, request).await })
        })
        .collect();
    let began = Instant::now();
    let mut loaded = Vec::new();
    while uploads.iter().any(|u| !u.is_finished()) {
        loaded.push(time_list_models(client.clone()).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_done = began.elapsed();
    let (mut ids, mut refused) = (Vec::new(), Vec::new());
    for upload in uploads {
        match upload.await.unwrap() {
            Ok(events) => ids.push(assemble(events).started.id),
            Err(status) => refused.push(status.message().to_string()),
        }
    }
    print_latencies("   ListModels idle", idle);
    print_latencies("   ListModels during the uploads", loaded);
    println!(
        "   uploads explained: {}, refused: {}, all ended after {:.1} s",
        ids.len(),
        refused.len(),
        all_done.as_secs_f64()
    );
    if let Some(first) = refused.first() {
        println!("     for example: {first}");
    }
    ids
}

/// Part 2. Returns the ids of the runs.
async fn viewers(address: std::net::SocketAddr, rounds: usize) -> Vec<String> {
    let (fast, stalled) = (200, 20);
    let mut creator = native_client(address).await;
    let photo = std::fs::read(repo_root().join("data/photos/chelsea.png")).unwrap();
    // The stride the page offers by default: a run of about 10 s here.
    let models = creator.list_models(ListModelsRequest {}).await.unwrap();
    let stride = models
        .into_inner()
        .models
        .into_iter()
        .find(|m| m.id == "efficientnet-lite0")
        .expect("EfficientNet-Lite0 is served")
        .default_stride;
    println!(
        "\n2. efficient PDA of chelsea.png on EfficientNet-Lite0 (stride {stride}, the worker's \
         default, tiles of 4), {fast} live viewers + {stalled} stalled ones against the creator alone"
    );
    let (mut alone, mut watched, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    let mut seed = 100;
    for round in 0..rounds {
        for crowd in [false, true] {
            seed += 1; // a new seed: never answered from the store
            let request = ExplainRequest {
                image: photo.clone(),
                model: "efficientnet-lite0".into(),
                method: Method::EfficientPda as i32,
                stride,
                tile_size: 4,
                seed,
                ..Default::default()
            };
            let mut stream = creator.explain(request).await.unwrap().into_inner();
            let first = stream.message().await.unwrap().unwrap();
            let id = started_id(&first);
            let run_ended = tokio::sync::watch::channel(false);
            let (mut fast_viewers, mut stalled_viewers) = (Vec::new(), Vec::new());
            if crowd {
                // Twenty viewers share a connection, as tabs of one browser.
                for _ in 0..fast / 20 {
                    let channel = native_client(address).await;
                    for _ in 0..20 {
                        let (mut client, id) = (channel.clone(), id.clone());
                        fast_viewers.push(tokio::spawn(async move {
                            let events = watch_events(&mut client, &id).await?;
                            Ok::<_, tonic::Status>(assemble(events).map)
                        }));
                    }
                }
                for _ in 0..stalled {
                    let mut client = native_client(address).await;
                    let (id, mut ended) = (id.clone(), run_ended.1.clone());
                    stalled_viewers.push(tokio::spawn(async move {
                        let request = WatchRequest { id };
                        let mut stream = client.watch(request).await?.into_inner();
                        stream.message().await?;
                        let _ = ended.wait_for(|e| *e).await;
                        let mut read = 1;
                        while stream.message().await?.is_some() {
                            read += 1;
                        }
                        Ok::<_, tonic::Status>(read)
                    }));
                }
            }
            let mut events = vec![(tokio::time::Instant::now(), first)];
            events.extend(drain(stream).await.unwrap());
            let mine = assemble(events);
            run_ended.0.send(true).unwrap();
            let mut same_map = 0;
            for viewer in fast_viewers {
                if viewer.await.unwrap().is_ok_and(|map| map == mine.map) {
                    same_map += 1;
                }
            }
            let (mut caught_up, mut dropped) = (0, Vec::new());
            for viewer in stalled_viewers {
                match viewer.await.unwrap() {
                    Ok(_) => caught_up += 1,
                    Err(status) => dropped.push(status),
                }
            }
            let compute = mine.finished.wall_seconds;
            print!(
                "   round {round}: {:>3} viewers: run {compute:.2} s, {} tiles",
                if crowd { fast + stalled } else { 0 },
                mine.tile_times.len()
            );
            if crowd {
                print!(
                    "; {same_map}/{fast} live viewers got the creator's map; stalled: \
                     {caught_up} caught up after the end, {} dropped",
                    dropped.len()
                );
                if let Some(status) = dropped.first() {
                    print!(" ({:?}: {})", status.code(), status.message());
                }
            }
            println!();
            if crowd { &mut watched } else { &mut alone }.push(compute);
            ids.push(id);
        }
    }
    let (one, many) = (median(alone), median(watched));
    println!(
        "   median run: creator alone {one:.2} s, with {} viewers {many:.2} s: slowdown {:+.1}%",
        fast + stalled,
        (many / one - 1.0) * 100.0
    );
    ids
}

/// Part 3.
async fn faulty_model(address: std::net::SocketAddr) {
    let count = 50;
    println!(
        "\n3. a model that raises on its call {}, occlusion (k = 1, batches of 2), {count} viewers",
        FAULTY_CALLS + 1
    );
    let mut creator = native_client(address).await;
    // 1024 windows in batches of 2: the model raises about 400 calls in.
    let request = ExplainRequest {
        image: red_left_png(),
        model: "faulty".into(),
        method: Method::Occlusion as i32,
        window: 1,
        batch_size: 2,
        ..Default::default()
    };
    let began = Instant::now();
    let mut stream = creator.explain(request.clone()).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let id = started_id(&first);
    let channel = native_client(address).await;
    let watchers: Vec<_> = (0..count)
        .map(|_| {
            let (mut client, id) = (channel.clone(), id.clone());
            tokio::spawn(async move { last_progress_and_end(&mut client, &id).await })
        })
        .collect();
    let mut last_progress = Instant::now();
    let creator_status = loop {
        match stream.message().await {
            Ok(Some(_)) => last_progress = Instant::now(),
            Ok(None) => panic!("the faulty model's run finished"),
            Err(status) => break status,
        }
    };
    let creator_end = Instant::now();
    println!(
        "   creator: {:?} after {:.2} s: {}",
        creator_status.code(),
        (creator_end - began).as_secs_f64(),
        creator_status.message()
    );
    let mut after_creator = Vec::new();
    let mut same_status = 0;
    for watcher in watchers {
        let (progress, end, status) = watcher.await.unwrap();
        last_progress = last_progress.max(progress);
        after_creator.push(end.saturating_duration_since(creator_end));
        if status.code() == creator_status.code() && status.message() == creator_status.message() {
            same_status += 1;
        }
    }
    let latest = *after_creator.iter().max().unwrap();
    println!(
        "   {same_status}/{count} viewers got the same status; the last of them {:.1} ms after \
         the creator, {:.1} ms after the last progress anyone saw",
        latest.as_secs_f64() * 1e3,
        (creator_end + latest - last_progress).as_secs_f64() * 1e3
    );
    let again = Instant::now();
    let status = collect_events(&mut creator, request).await.unwrap_err();
    println!(
        "   the identical request again: {:?} after {:.2} s (a new run of a model still raising)",
        status.code(),
        again.elapsed().as_secs_f64()
    );
    print_latencies(
        "   ListModels afterwards",
        vec![time_list_models(creator).await],
    );
}

/// Part 4.
async fn kill_and_restart(
    worker: ChildWorker,
    store: &Path,
    options: &[&str],
    finished: &[String],
) {
    println!(
        "\n4. SIGKILL mid-run, then a restart on the same store ({} finished explanations in it)",
        finished.len()
    );
    let mut client = native_client(worker.address).await;
    let digit = preset(&mut client, 7).await.png;
    let mut stream = client
        .explain(minutes_of_work(digit))
        .await
        .unwrap()
        .into_inner();
    let killed_id = started_id(&stream.message().await.unwrap().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.kill();
    let killed_at = Instant::now();
    let creator = stream.message().await;
    let worker = ChildWorker::start_with(store, options);
    let listening = killed_at.elapsed();
    let mut client = native_client(worker.address).await;
    client.list_models(ListModelsRequest {}).await.unwrap();
    let serving = killed_at.elapsed();
    println!(
        "   the creator's stream: {}",
        match creator {
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
            Ok(event) => format!("{event:?}"),
        }
    );
    println!(
        "   restarted: listening {:.2} s after the kill, answering ListModels after {:.2} s",
        listening.as_secs_f64(),
        serving.as_secs_f64()
    );
    let mut kept = 0;
    for id in finished {
        if let Ok(events) = watch_events(&mut client, id).await {
            if assemble(events).finished.replayed {
                kept += 1;
            }
        }
    }
    println!(
        "   finished explanations kept: {kept}/{}; the killed run's link: {}",
        finished.len(),
        match watch_events(&mut client, &killed_id).await {
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
            Ok(events) => format!("{} events", events.len()),
        }
    );
}

/// A viewer of `id` until its stream ends with an error: when it last saw
/// progress, when the error came, and the error.
async fn last_progress_and_end(client: &mut Client, id: &str) -> (Instant, Instant, tonic::Status) {
    let request = WatchRequest { id: id.to_string() };
    let mut stream = client.watch(request).await.unwrap().into_inner();
    let mut last = Instant::now();
    loop {
        match stream.message().await {
            Ok(Some(_)) => last = Instant::now(),
            Ok(None) => panic!("a viewer saw the faulty run finish"),
            Err(status) => return (last, Instant::now(), status),
        }
    }
}

/// A TorchScript model (scripted in Python: a module that counts its calls)
/// that compares the red of the left and right halves of a 32 x 32 image,
/// spends about 10 ms per batch of 16 in matrix products, and raises
/// after `FAULTY_CALLS` calls, as a user's model with a bug would.
fn write_faulty_model(folder: &Path) {
    std::fs::create_dir_all(folder).unwrap();
    let script = format!(
        r#"
import sys, torch
class Faulty(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0
        self.weight = torch.nn.Parameter(torch.randn(3072, 3072) / 55.0)
    def forward(self, x):
        self.calls += 1
        if self.calls > {FAULTY_CALLS}:
            raise RuntimeError("faulty model: call " + str(self.calls) + " failed on purpose")
        busy = x.flatten(1)
        for _ in range(2):
            busy = torch.tanh(busy @ self.weight)
        red = x[:, 0]
        halves = torch.stack([red[:, :, :16].mean((1, 2)), red[:, :, 16:].mean((1, 2))], 1)
        return halves * 10.0 + busy.mean(1, keepdim=True) * 0.0
torch.manual_seed(0)
torch.jit.script(Faulty()).save(sys.argv[1])
"#
    );
    // TorchScript reads the module's source, so the script must be a file.
    let script_file = folder.join("make_faulty.py");
    std::fs::write(&script_file, script).unwrap();
    let python = repo_root().join(".venv/bin/python");
    let output = std::process::Command::new(python)
        .arg(&script_file)
        .arg(folder.join("model.pt"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(folder.join("classes.txt"), "left\nright\n").unwrap();
    std::fs::write(folder.join("model.toml"), USER_MODEL_DESCRIPTION).unwrap();
}

fn started_id(event: &ExplainEvent) -> String {
    match &event.event {
        Some(Event::Started(started)) => started.id.clone(),
        other => panic!("Started first, not {other:?}"),
    }
}

async fn time_list_models(mut client: Client) -> Duration {
    let start = Instant::now();
    client.list_models(ListModelsRequest {}).await.unwrap();
    start.elapsed()
}

fn print_latencies(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: {} calls, median {:.1} ms, worst {:.1} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
}

/// A line of /proc/PID/status (VmRSS, VmHWM).
fn memory(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map_or("?".into(), |v| v.trim_start_matches(':').trim().to_string())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
