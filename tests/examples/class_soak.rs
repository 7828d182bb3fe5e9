//! Class-sized soak with faults (issue 22, item 6): two gateways and two
//! workers (one torch thread each) on a private NATS server and PostgreSQL,
//! a class of 30 students, and faults on the way.
//!
//! The teacher opens a class through gateway A and, every 20-30 s, explains
//! a digit or a photo (alternately) and teaches it. Each student follows the
//! class through A or B (half each), watches every explanation the class
//! shows to its end (timing its first tile), and now and then makes a small
//! call (ListModels, ListPresets, Estimate); five of them also start a digit
//! run of their own (a new seed each time) every minute or two. A client
//! whose stream or call fails carries on through the other gateway. Each
//! live gateway is asked for its models every 200 ms throughout.
//!
//! Faults, at fractions of the duration: 20% SIGKILL a worker (one that is
//! running something, if any; a new one at 30%), 40% SIGKILL gateway B (a new
//! B at 50%), 60% NATS stopped for 5 s, 80% PostgreSQL stopped for 5 s. At
//! 50%, during a run, every process's /metrics goes to
//! target/class-soak-metrics.txt.
//!
//! At the end: requests served, errors by gRPC code and kind, latency of the
//! small calls and time to the first tile (p50/p95/p99), runs lost (accepted
//! but never finished, even when watched again at the end), maps that differ
//! from a single `evidence-lens serve`'s (one torch thread, as the workers)
//! for the same request, each process's peak memory, the longest stretch a
//! gateway listed no models, and each gateway's and worker's exit status on
//! SIGTERM.
//!
//! Build the worker first (`cargo build --release -p lens-worker --bin
//! evidence-lens`), then:
//! cargo run --release -p lens-tests --example class_soak -- [SECONDS]
//! (default 600).

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lens_proto::v1::{
    evidence_lens_client::EvidenceLensClient, explain_event::Event, ClassEvent, ClassOpened,
    ClassView, CloseClassRequest, ExplainEvent, ExplainRequest, FollowClassRequest,
    ListModelsRequest, ListPresetsRequest, Method, OpenClassRequest, TeachRequest, WatchRequest,
};
use lens_tests::cluster::Services;
use lens_tests::{
    assemble, collect_events, free_port, process_status, repo_root, scrape_metrics, temp_folder,
    watch_events, ChildProcess, ChildWorker,
};
use tokio::sync::oneshot;
use tokio::task::{block_in_place, JoinHandle};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tonic::transport::Channel;
use tonic::Status;

type Client = EvidenceLensClient<Channel>;

const STUDENTS: u64 = 30;
/// Students who also start runs of their own.
const RUNNING_STUDENTS: u64 = 5;
const TAKEOVER_SECONDS: u64 = 5;
/// Every client shares 127.0.0.1, so the per-client limits must allow a
/// whole class.
const GATEWAY_OPTIONS: [&str; 8] = [
    "--max-jobs",
    "256",
    "--per-client",
    "256",
    "--viewers-per-run",
    "256",
    "--watches-per-client",
    "1024",
];
const GATEWAY_NAMES: [&str; 2] = ["A", "B"];
/// The longest a unary call or the opening of a stream may take.
const CALL: Duration = Duration::from_secs(60);
/// The longest a run's stream may stay silent (a takeover and a queue
/// behind a photo run included).
const SILENCE: Duration = Duration::from_secs(120);
const WATCH_TRIES: usize = 4;
/// Requests compared with a single `serve` at the end, at most.
const COMPARED: usize = 10;
const METRICS_FILE: &str = "target/class-soak-metrics.txt";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(600, |a| a.parse().expect("SECONDS, a number"));
    let mut services = Services::start();
    let mut workers = vec![
        start_worker(&services, "first"),
        start_worker(&services, "second"),
    ];
    let mut gateways = vec![start_gateway(&services), start_gateway(&services)];
    let addresses = [gateways[0].1, gateways[1].1];
    let soak = Arc::new(Soak::prepare(addresses, Duration::from_secs(seconds)).await);
    println!(
        "class soak for {seconds} s: {STUDENTS} students ({} through each gateway, \
         {RUNNING_STUDENTS} running their own), 2 gateways, 2 workers (takeover after \
         {TAKEOVER_SECONDS} s), {} cores",
        STUDENTS / 2,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "lessons alternate: {}; {}",
        describe(&soak.lesson_request(1)),
        describe(&soak.lesson_request(2))
    );

    let mut teachers = Person::new(soak.clone(), 0);
    let opened = call(&mut teachers, "OpenClass", 5, |mut c| async move {
        c.open_class(OpenClassRequest {}).await
    })
    .await
    .expect("the class opens")
    .0;
    soak.say(&format!("class {} opened through gateway A", opened.code));
    let mut tasks = start_class(&soak, &opened);
    let pollers: Vec<_> = (0..2)
        .map(|slot| tokio::spawn(poll_models(soak.clone(), slot)))
        .collect();

    let mut retired = Vec::new();
    let at = |fraction: f64| soak.began + soak.duration.mul_f64(fraction);
    sleep_until(at(0.2)).await;
    kill_a_busy_worker(&soak, &mut workers, &mut retired).await;
    sleep_until(at(0.3)).await;
    workers.push(start_worker(&services, "third"));
    soak.say("a new worker (third) is ready");
    sleep_until(at(0.4)).await;
    soak.gateways.set(1, None); // new calls go to A from now on
    retire(&mut retired, "gateway B (killed)", gateways.remove(1).0);
    soak.say("FAULT: SIGKILL gateway B");
    sleep_until(at(0.5)).await;
    gateways.push(start_gateway(&services));
    soak.gateways.set(1, Some(gateways[1].1));
    soak.say(&format!("a new gateway B is ready on {}", gateways[1].1));
    tasks.push(scrape_during_a_run(&soak, &workers, &gateways).await);
    sleep_until(at(0.6)).await;
    soak.say("FAULT: NATS stopped");
    block_in_place(|| services.nats.stop());
    sleep(Duration::from_secs(5)).await;
    block_in_place(|| services.nats.start_again());
    soak.say("NATS started again");
    sleep_until(at(0.8)).await;
    soak.say("FAULT: PostgreSQL stopped");
    block_in_place(|| services.database.stop());
    sleep(Duration::from_secs(5)).await;
    block_in_place(|| services.database.start_again());
    soak.say("PostgreSQL started again");
    sleep_until(soak.end).await;

    soak.say("the soak is over: closing the class");
    soak.class_closed.store(true, Ordering::SeqCst);
    close_class(&mut teachers, &opened).await;
    let unfinished = finish(tasks, Duration::from_secs(180)).await;
    soak.say(&format!(
        "clients done ({unfinished} still busy were stopped)"
    ));
    soak.polling_done.store(true, Ordering::SeqCst);
    finish(pollers, Duration::from_secs(10)).await;

    let runs = check_runs(&soak).await;
    let maps = compare_with_serve(&soak).await;
    let mut peaks: Vec<(String, Option<String>)> = retired
        .iter()
        .map(|r: &Retired| (r.label.clone(), r.peak.clone()))
        .collect();
    for (index, (child, _)) in gateways.iter().enumerate() {
        peaks.push((format!("gateway {}", GATEWAY_NAMES[index]), peak(child)));
    }
    for worker in &workers {
        peaks.push((format!("worker {}", worker.name), peak(&worker.child)));
    }
    peaks.push(("nats-server".into(), services.nats.pid().and_then(vm_hwm)));
    peaks.push(("postgres".into(), services.database.pid().and_then(vm_hwm)));
    print_report(&soak, &runs, &maps, &peaks);
    stop_everything(gateways, workers, &retired).await;
}

/// What every client shares: the clock, the gateways, what happened.
struct Soak {
    began: Instant,
    duration: Duration,
    end: Instant,
    gateways: Gateways,
    stats: Stats,
    runs: Runs,
    /// The digits presets, by label.
    digits: Vec<Vec<u8>>,
    photo: Vec<u8>,
    /// The photo model's window (one its sampler has statistics for).
    photo_window: u32,
    seeds: AtomicU64,
    followers: AtomicU64,
    class_closed: AtomicBool,
    polling_done: AtomicBool,
}

impl Soak {
    /// Fetches the presets and the photo model's windows through A.
    async fn prepare(addresses: [SocketAddr; 2], duration: Duration) -> Soak {
        let mut client = lazy_client(addresses[0]);
        let mut digits = client
            .list_presets(ListPresetsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .presets;
        digits.sort_by_key(|p| p.label);
        let photos = ListPresetsRequest {
            model: "efficientnet-lite0".into(),
        };
        let photos = client.list_presets(photos).await.unwrap().into_inner();
        let models = client.list_models(ListModelsRequest {}).await.unwrap();
        let windows = models
            .into_inner()
            .models
            .into_iter()
            .find(|m| m.id == "efficientnet-lite0")
            .expect("EfficientNet-Lite0 is served")
            .conditional_windows;
        let began = Instant::now();
        Soak {
            began,
            duration,
            end: began + duration,
            gateways: Gateways {
                addresses: Mutex::new(addresses.map(Some)),
            },
            stats: Stats::default(),
            runs: Runs::default(),
            digits: digits.into_iter().map(|p| p.png).collect(),
            photo: photos.presets[0].png.clone(),
            photo_window: windows
                .iter()
                .copied()
                .find(|&w| w == 24)
                .unwrap_or(windows[0]),
            seeds: AtomicU64::new(1000),
            followers: AtomicU64::new(0),
            class_closed: AtomicBool::new(false),
            polling_done: AtomicBool::new(false),
        }
    }

    fn over(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Sleeps `pause`, or until the soak is over if that comes first.
    async fn pause(&self, pause: Duration) {
        sleep_until((Instant::now() + pause).min(self.end)).await;
    }

    fn seconds(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    fn say(&self, what: &str) {
        println!("[{:>6.1} s] {what}", self.seconds());
    }

    fn new_seed(&self) -> u64 {
        self.seeds.fetch_add(1, Ordering::Relaxed)
    }

    /// Lesson `lesson`'s explanation: odd ones a digit (PDA, a few
    /// seconds), even ones the photo (efficient PDA, coarse windows).
    fn lesson_request(&self, lesson: u64) -> ExplainRequest {
        if lesson % 2 == 1 {
            ExplainRequest {
                image: self.digits[(lesson as usize / 2) % self.digits.len()].clone(),
                method: Method::Pda as i32,
                window: 4,
                samples: Some(8),
                tile_size: 4,
                seed: lesson,
                ..Default::default()
            }
        } else {
            ExplainRequest {
                image: self.photo.clone(),
                model: "efficientnet-lite0".into(),
                method: Method::EfficientPda as i32,
                window: self.photo_window,
                stride: self.photo_window * 2 / 3,
                tile_size: 32,
                seed: lesson,
                ..Default::default()
            }
        }
    }

    /// A student's own run: a digit, with a seed never used before so the
    /// store cannot answer it.
    fn own_request(&self, student: u64) -> ExplainRequest {
        ExplainRequest {
            image: self.digits[student as usize % self.digits.len()].clone(),
            method: Method::Pda as i32,
            window: 3,
            samples: Some(4),
            seed: self.new_seed(),
            ..Default::default()
        }
    }
}

fn describe(request: &ExplainRequest) -> String {
    let model = if request.model.is_empty() {
        "digits"
    } else {
        &request.model
    };
    let method = Method::try_from(request.method).map_or("?", |m| m.as_str_name());
    format!(
        "{model} {method} k = {} stride {} S = {}",
        request.window,
        request.stride.max(1),
        request.samples.unwrap_or(0)
    )
}

/// The two gateways' addresses; `None` while one is down on purpose.
struct Gateways {
    addresses: Mutex<[Option<SocketAddr>; 2]>,
}

impl Gateways {
    fn address(&self, slot: usize) -> Option<SocketAddr> {
        self.addresses.lock().unwrap()[slot]
    }

    fn set(&self, slot: usize, address: Option<SocketAddr>) {
        self.addresses.lock().unwrap()[slot] = address;
    }
}

/// A client that connects on its first call (and again after a failure),
/// so that a gateway going away never panics the client.
fn lazy_client(address: SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    EvidenceLensClient::new(channel)
}

/// Someone in the class: their gateway and a connection to each gateway
/// they used, as a browser keeps one.
#[derive(Clone)]
struct Person {
    soak: Arc<Soak>,
    home: usize,
    connections: [Option<(SocketAddr, Client)>; 2],
}

impl Person {
    fn new(soak: Arc<Soak>, home: usize) -> Person {
        Person {
            soak,
            home,
            connections: [None, None],
        }
    }

    /// Their gateway now: their own if it is up, else the other.
    fn gateway(&mut self) -> Option<(usize, Client)> {
        for slot in [self.home, 1 - self.home] {
            if let Some(address) = self.soak.gateways.address(slot) {
                return Some((slot, self.connection(slot, address)));
            }
        }
        None
    }

    fn connection(&mut self, slot: usize, address: SocketAddr) -> Client {
        match &self.connections[slot] {
            Some((known, client)) if *known == address => client.clone(),
            _ => {
                let client = lazy_client(address);
                self.connections[slot] = Some((address, client.clone()));
                client
            }
        }
    }

    /// After a failure through `slot`: the other gateway from now on, if
    /// it is up.
    fn move_away(&mut self, slot: usize) {
        if self.soak.gateways.address(1 - slot).is_some() {
            self.home = 1 - slot;
        }
    }
}

/// Counts of what happened, shared by every client.
#[derive(Default)]
struct Stats {
    tally: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    served: BTreeMap<&'static str, u64>,
    /// (gRPC code, kind of request) -> (count, first message).
    errors: BTreeMap<(String, &'static str), (u64, String)>,
    small_calls_ms: Vec<f64>,
    first_tile_s: Vec<f64>,
    retries: BTreeMap<&'static str, u64>,
    models: [Polling; 2],
}

/// ListModels polls of one gateway.
#[derive(Default)]
struct Polling {
    polls: u64,
    failed: u64,
    longest_empty: Duration,
    /// When the longest empty stretch began (seconds into the soak).
    longest_at: f64,
    first_failure: String,
}

impl Stats {
    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap()
    }

    fn served(&self, kind: &'static str) {
        *self.tally().served.entry(kind).or_default() += 1;
    }

    fn failed(&self, kind: &'static str, status: &Status) {
        let code = format!("{:?}", status.code());
        let mut tally = self.tally();
        let entry = tally
            .errors
            .entry((code, kind))
            .or_insert_with(|| (0, status.message().to_string()));
        entry.0 += 1;
    }

    fn retried(&self, what: &'static str) {
        *self.tally().retries.entry(what).or_default() += 1;
    }
}

fn no_answer() -> Status {
    Status::deadline_exceeded(format!("no answer within {CALL:?} (client's limit)"))
}

/// Every run started during the soak.
#[derive(Default)]
struct Runs {
    list: Mutex<Vec<Run>>,
}

#[derive(Clone)]
struct Run {
    who: &'static str,
    request: ExplainRequest,
    /// Its share id, once a Queued or Started named it (it was accepted).
    id: Option<String>,
    finished: bool,
}

impl Runs {
    fn add(&self, who: &'static str, request: ExplainRequest) -> usize {
        let mut list = self.list.lock().unwrap();
        list.push(Run {
            who,
            request,
            id: None,
            finished: false,
        });
        list.len() - 1
    }

    fn accepted(&self, index: usize, id: &str) {
        self.list.lock().unwrap()[index].id = Some(id.to_string());
    }

    fn finished(&self, index: usize) {
        self.list.lock().unwrap()[index].finished = true;
    }

    fn all(&self) -> Vec<Run> {
        self.list.lock().unwrap().clone()
    }

    /// The ids of runs accepted and not finished yet.
    fn going(&self) -> Vec<String> {
        let list = self.list.lock().unwrap();
        list.iter()
            .filter(|r| !r.finished)
            .filter_map(|r| r.id.clone())
            .collect()
    }
}

/// A pause between `low` and `high` seconds, the same for the same `key`
/// (no random generator among this crate's dependencies).
fn jitter(key: u64, low: u64, high: u64) -> Duration {
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    let span = (high - low) * 1000;
    Duration::from_millis(low * 1000 + hasher.finish() % span.max(1))
}

/// One unary call through the person's gateway; after a failure, again
/// through the other gateway, `tries` times in all. The answer and how
/// long the call that gave it took.
async fn call<T, F, Fut>(
    person: &mut Person,
    kind: &'static str,
    tries: usize,
    make: F,
) -> Option<(T, Duration)>
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let soak = person.soak.clone();
    for attempt in 0..tries {
        if attempt > 0 {
            soak.stats.retried("call again through the other gateway");
            sleep(Duration::from_millis(500)).await;
        }
        let Some((slot, client)) = person.gateway() else {
            soak.stats
                .failed(kind, &Status::unavailable("no gateway up"));
            continue;
        };
        let sent = Instant::now();
        match timeout(CALL, make(client)).await {
            Ok(Ok(response)) => {
                soak.stats.served(kind);
                return Some((response.into_inner(), sent.elapsed()));
            }
            Ok(Err(status)) => soak.stats.failed(kind, &status),
            Err(_) => soak.stats.failed(kind, &no_answer()),
        }
        person.move_away(slot);
    }
    None
}

/// How one Explain or Watch stream went.
struct Streamed {
    id: Option<String>,
    first_tile: Option<Duration>,
    end: Result<(), Status>,
}

/// Reads a run's stream to its Finished. Notes the id in `runs` (as
/// `run`) as soon as it is named, and sends it to `started` on Started.
async fn read_run(
    soak: &Soak,
    run: Option<usize>,
    mut stream: tonic::Streaming<ExplainEvent>,
    sent: Instant,
    started: &mut Option<oneshot::Sender<String>>,
) -> Streamed {
    let mut seen = Streamed {
        id: None,
        first_tile: None,
        end: Ok(()),
    };
    loop {
        let event = match next_event(&mut stream).await {
            Ok(event) => event,
            Err(status) => {
                seen.end = Err(status);
                return seen;
            }
        };
        let id = match event.event {
            Some(Event::Queued(queued)) => queued.id,
            Some(Event::Started(begun)) => {
                if let Some(started) = started.take() {
                    let _ = started.send(begun.id.clone());
                }
                begun.id
            }
            Some(Event::Tile(_)) => {
                seen.first_tile.get_or_insert(sent.elapsed());
                continue;
            }
            Some(Event::Finished(_)) => return seen,
            _ => continue,
        };
        if let (Some(run), None) = (run, &seen.id) {
            soak.runs.accepted(run, &id);
        }
        seen.id = Some(id);
    }
}

/// The next event of a run's stream; its end before Finished, or a long
/// silence, as an error.
async fn next_event(stream: &mut tonic::Streaming<ExplainEvent>) -> Result<ExplainEvent, Status> {
    match timeout(SILENCE, stream.message()).await {
        Ok(Ok(Some(event))) => Ok(event),
        Ok(Ok(None)) => Err(Status::internal("the stream ended without Finished")),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no event for {SILENCE:?} (client's limit)"
        ))),
    }
}

/// Sends `request` through the person's gateway and reads the run to its
/// end; when the stream breaks after the run was accepted, watches it again
/// through the other gateway. The run's id if it finished.
async fn explain_to_end(
    person: &mut Person,
    kind: &'static str,
    request: ExplainRequest,
    mut started: Option<oneshot::Sender<String>>,
) -> Option<String> {
    let soak = person.soak.clone();
    let run = soak.runs.add(kind, request.clone());
    let Some((slot, mut client)) = person.gateway() else {
        soak.stats
            .failed(kind, &Status::unavailable("no gateway up"));
        return None;
    };
    let sent = Instant::now();
    let stream = match timeout(CALL, client.explain(request)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(no_answer()),
    };
    let seen = match stream {
        Ok(stream) => read_run(&soak, Some(run), stream, sent, &mut started).await,
        Err(status) => Streamed {
            id: None,
            first_tile: None,
            end: Err(status),
        },
    };
    match (seen.end, seen.id) {
        (Ok(()), id) => {
            soak.stats.served(kind);
            soak.runs.finished(run);
            id
        }
        (Err(status), id) => {
            soak.stats.failed(kind, &status);
            person.move_away(slot);
            // Accepted: its creator opens it again by its id.
            let id = id?;
            soak.stats
                .retried("own run watched again after its stream broke");
            if !watch_to_end(person, &id).await {
                return None;
            }
            soak.runs.finished(run);
            Some(id)
        }
    }
}

/// Watches `id` to its Finished, through the other gateway after each
/// failure; whether it finished. Notes the time to the first tile.
async fn watch_to_end(person: &mut Person, id: &str) -> bool {
    let soak = person.soak.clone();
    for attempt in 0..WATCH_TRIES {
        if attempt > 0 {
            soak.stats.retried("Watch again through the other gateway");
            sleep(Duration::from_secs(1)).await;
        }
        let Some((slot, mut client)) = person.gateway() else {
            soak.stats
                .failed("Watch", &Status::unavailable("no gateway up"));
            continue;
        };
        let sent = Instant::now();
        let request = WatchRequest { id: id.to_string() };
        let end = match timeout(CALL, client.watch(request)).await {
            Ok(Ok(response)) => {
                let seen = read_run(&soak, None, response.into_inner(), sent, &mut None).await;
                if let Some(first_tile) = seen.first_tile {
                    soak.stats
                        .tally()
                        .first_tile_s
                        .push(first_tile.as_secs_f64());
                }
                seen.end
            }
            Ok(Err(status)) => Err(status),
            Err(_) => Err(no_answer()),
        };
        match end {
            Ok(()) => {
                soak.stats.served("Watch");
                return true;
            }
            Err(status) => {
                soak.stats.failed("Watch", &status);
                person.move_away(slot);
            }
        }
    }
    false
}

/// Follows the class until it ends, following again (through the other
/// gateway) whenever the stream breaks; `on_event` sees every event.
async fn follow_class(
    person: &mut Person,
    code: &str,
    secret: &str,
    mut on_event: impl FnMut(&Person, &ClassEvent),
) {
    let soak = person.soak.clone();
    for attempt in 0.. {
        if attempt > 0 {
            soak.stats
                .retried("FollowClass again through the other gateway");
            sleep(Duration::from_secs(1)).await;
        }
        let Some((slot, mut client)) = person.gateway() else {
            continue;
        };
        let request = FollowClassRequest {
            code: code.into(),
            teacher_secret: secret.into(),
        };
        let status = match timeout(CALL, client.follow_class(request)).await {
            Ok(Ok(response)) => {
                soak.stats.served("FollowClass");
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(event)) if event.ended => return,
                        Ok(Some(event)) => on_event(person, &event),
                        Ok(None) => {
                            break Status::internal("the class stream ended before `ended`")
                        }
                        Err(status) => break status,
                    }
                }
            }
            Ok(Err(status)) => status,
            Err(_) => no_answer(),
        };
        let closed = soak.class_closed.load(Ordering::SeqCst);
        if closed && status.code() == tonic::Code::NotFound {
            return; // it closed while this one was away
        }
        soak.stats.failed("FollowClass", &status);
        person.move_away(slot);
    }
}

/// A student: follows the class and watches each explanation it shows.
async fn student(mut person: Person, code: String) {
    let mut shown = String::new();
    let mut watches = Vec::new();
    follow_class(&mut person, &code, "", |person, event| {
        let Some(view) = &event.view else { return };
        if view.explanation_id.is_empty() || view.explanation_id == shown {
            return;
        }
        shown = view.explanation_id.clone();
        let (mut person, id) = (person.clone(), shown.clone());
        watches.push(tokio::spawn(async move {
            watch_to_end(&mut person, &id).await;
        }));
    })
    .await;
    for watch in watches {
        let _ = watch.await;
    }
}

/// The teacher's own page of the class: counts the followers.
async fn teachers_page(mut person: Person, opened: ClassOpened) {
    let soak = person.soak.clone();
    follow_class(
        &mut person,
        &opened.code,
        &opened.teacher_secret,
        |_, event| {
            soak.followers
                .store(event.followers as u64, Ordering::Relaxed);
        },
    )
    .await;
}

/// The teacher: a lesson every 20-30 s, explained and then taught as soon
/// as it runs, read to its end.
async fn teacher(mut person: Person, opened: ClassOpened) {
    let soak = person.soak.clone();
    let mut lesson = 0;
    while soak.end.saturating_duration_since(Instant::now()) > Duration::from_secs(15) {
        lesson += 1;
        let began = Instant::now();
        let request = soak.lesson_request(lesson);
        let view = |id: String| ClassView {
            explanation_id: id,
            model: if request.model.is_empty() {
                "digits".into()
            } else {
                request.model.clone()
            },
            method: request.method,
            window: request.window,
            stride: request.stride,
            samples: request.samples.unwrap_or(0),
            ..Default::default()
        };
        let (started, id) = oneshot::channel();
        let mut explainer = person.clone();
        let asked = request.clone();
        let run = tokio::spawn(async move {
            explain_to_end(&mut explainer, "Explain (teacher)", asked, Some(started)).await
        });
        if let Ok(id) = id.await {
            teach(&mut person, &opened, view(id.clone())).await;
            soak.say(&format!(
                "lesson {lesson} ({}): {id} taught to {} followers",
                if lesson % 2 == 1 { "digit" } else { "photo" },
                soak.followers.load(Ordering::Relaxed)
            ));
        } else {
            soak.say(&format!("lesson {lesson}: the explanation did not start"));
        }
        let _ = run.await;
        sleep_until(began + jitter(lesson, 20, 30)).await;
    }
}

async fn teach(person: &mut Person, opened: &ClassOpened, view: ClassView) {
    let request = TeachRequest {
        code: opened.code.clone(),
        teacher_secret: opened.teacher_secret.clone(),
        view: Some(view),
    };
    call(person, "Teach", 5, |mut c| {
        let request = request.clone();
        async move { c.teach(request).await }
    })
    .await;
}

async fn close_class(person: &mut Person, opened: &ClassOpened) {
    let request = CloseClassRequest {
        code: opened.code.clone(),
        teacher_secret: opened.teacher_secret.clone(),
    };
    call(person, "CloseClass", 5, |mut c| {
        let request = request.clone();
        async move { c.close_class(request).await }
    })
    .await;
}

/// ListModels, ListPresets and Estimate in turn, every 8-20 s; the
/// latency of each answered one.
async fn small_calls(mut person: Person, who: u64) {
    let soak = person.soak.clone();
    soak.pause(jitter(who, 0, 10)).await;
    for turn in 0.. {
        if soak.over() {
            break;
        }
        let latency = match turn % 3 {
            0 => call(&mut person, "ListModels", 2, |mut c| async move {
                c.list_models(ListModelsRequest {}).await
            })
            .await
            .map(|(_, latency)| latency),
            1 => call(&mut person, "ListPresets", 2, |mut c| async move {
                c.list_presets(ListPresetsRequest::default()).await
            })
            .await
            .map(|(_, latency)| latency),
            _ => call(&mut person, "Estimate", 2, |mut c| async move {
                let lesson = ExplainRequest {
                    method: Method::Pda as i32,
                    window: 4,
                    samples: Some(8),
                    ..Default::default()
                };
                c.estimate(lesson).await
            })
            .await
            .map(|(_, latency)| latency),
        };
        if let Some(latency) = latency {
            let ms = latency.as_secs_f64() * 1e3;
            soak.stats.tally().small_calls_ms.push(ms);
        }
        soak.pause(jitter(who * 1000 + turn, 8, 20)).await;
    }
}

/// A student's runs of their own, every one to two minutes.
async fn own_runs(mut person: Person, who: u64) {
    let soak = person.soak.clone();
    soak.pause(jitter(who + 77, 10, 40)).await;
    for turn in 0.. {
        if soak.over() {
            break;
        }
        let request = soak.own_request(who);
        explain_to_end(&mut person, "Explain (student)", request, None).await;
        soak.pause(jitter(who * 1000 + turn + 77, 60, 120)).await;
    }
}

/// The teacher and the students, each as tasks.
fn start_class(soak: &Arc<Soak>, opened: &ClassOpened) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(teacher(Person::new(soak.clone(), 0), opened.clone())),
        tokio::spawn(teachers_page(Person::new(soak.clone(), 0), opened.clone())),
        tokio::spawn(small_calls(Person::new(soak.clone(), 0), 0)),
    ];
    for who in 1..=STUDENTS {
        let home = (who % 2) as usize;
        let person = Person::new(soak.clone(), home);
        tasks.push(tokio::spawn(student(person.clone(), opened.code.clone())));
        tasks.push(tokio::spawn(small_calls(person.clone(), who)));
        if who <= RUNNING_STUDENTS {
            tasks.push(tokio::spawn(own_runs(person, who)));
        }
    }
    tasks
}

/// ListModels through gateway `slot` every 200 ms while it is up: the
/// longest stretch in which it answered no models (or an error).
async fn poll_models(soak: Arc<Soak>, slot: usize) {
    let mut connection: Option<(SocketAddr, Client)> = None;
    let mut empty_since: Option<(Instant, f64)> = None;
    while !soak.polling_done.load(Ordering::SeqCst) {
        sleep(Duration::from_millis(200)).await;
        let Some(address) = soak.gateways.address(slot) else {
            empty_since = None; // down on purpose: not a gateway without models
            continue;
        };
        if connection
            .as_ref()
            .is_none_or(|(known, _)| *known != address)
        {
            connection = Some((address, lazy_client(address)));
        }
        let mut client = connection.as_ref().unwrap().1.clone();
        let answer = timeout(
            Duration::from_secs(2),
            client.list_models(ListModelsRequest {}),
        )
        .await;
        let failure = match answer {
            Ok(Ok(response)) if !response.get_ref().models.is_empty() => None,
            Ok(Ok(_)) => Some("no models".to_string()),
            Ok(Err(status)) => Some(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Some("no answer within 2 s".to_string()),
        };
        // The gateway may have been taken down during the call.
        if soak.gateways.address(slot) != Some(address) {
            continue;
        }
        let mut tally = soak.stats.tally();
        let polling = &mut tally.models[slot];
        polling.polls += 1;
        if let Some(failure) = failure {
            polling.failed += 1;
            if polling.first_failure.is_empty() {
                polling.first_failure = format!("{failure} (at {:.1} s)", soak.seconds());
            }
            empty_since.get_or_insert((Instant::now(), soak.seconds()));
        } else if let Some((since, at)) = empty_since.take() {
            note_empty_stretch(polling, since.elapsed(), at);
        }
    }
    if let Some((since, at)) = empty_since {
        note_empty_stretch(&mut soak.stats.tally().models[slot], since.elapsed(), at);
    }
}

fn note_empty_stretch(polling: &mut Polling, stretch: Duration, at: f64) {
    if stretch > polling.longest_empty {
        polling.longest_empty = stretch;
        polling.longest_at = at;
    }
}

struct Worker {
    name: String,
    child: ChildProcess,
    metrics: SocketAddr,
}

/// A worker with one torch thread and its metrics on a port of its own.
fn start_worker(services: &Services, name: &str) -> Worker {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listen = metrics.to_string();
    let child = block_in_place(|| {
        services.worker_with(
            name,
            TAKEOVER_SECONDS,
            &[("OMP_NUM_THREADS", "1")],
            &["--metrics-listen", &listen],
        )
    });
    Worker {
        name: name.to_string(),
        child,
        metrics,
    }
}

fn start_gateway(services: &Services) -> (ChildProcess, SocketAddr) {
    block_in_place(|| services.gateway_with(&GATEWAY_OPTIONS))
}

/// A process killed during the soak, kept for its log and peak memory.
struct Retired {
    label: String,
    peak: Option<String>,
    child: ChildProcess,
}

/// SIGKILLs `child`, its peak memory read just before.
fn retire(retired: &mut Vec<Retired>, label: &str, mut child: ChildProcess) {
    let peak = peak(&child);
    child.kill();
    retired.push(Retired {
        label: label.to_string(),
        peak,
        child,
    });
}

/// SIGKILLs a worker that is running something (waiting up to 20 s for
/// one to be), else the first.
async fn kill_a_busy_worker(soak: &Soak, workers: &mut Vec<Worker>, retired: &mut Vec<Retired>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (index, running) = loop {
        let going = soak.runs.going();
        let busy = workers.iter().enumerate().find_map(|(index, worker)| {
            let id = going
                .iter()
                .find(|id| worker.child.logged(&format!("runs {id}")))?;
            Some((index, Some(id.clone())))
        });
        if let Some(busy) = busy {
            break busy;
        }
        if Instant::now() > deadline {
            break (0, None);
        }
        sleep(Duration::from_millis(100)).await;
    };
    let worker = workers.remove(index);
    let label = format!("worker {} (killed)", worker.name);
    retire(retired, &label, worker.child);
    soak.say(&format!(
        "FAULT: SIGKILL worker {} ({})",
        worker.name,
        running.map_or("idle".into(), |id| format!("running {id}"))
    ));
}

/// Starts a run of some seconds, and once it runs scrapes every worker's
/// and gateway's /metrics into METRICS_FILE; prints a few lines. The run
/// goes on in the task returned.
async fn scrape_during_a_run(
    soak: &Arc<Soak>,
    workers: &[Worker],
    gateways: &[(ChildProcess, SocketAddr)],
) -> JoinHandle<()> {
    let request = ExplainRequest {
        image: soak.digits[8].clone(),
        method: Method::Pda as i32,
        window: 2,
        samples: Some(60),
        tile_size: 4,
        seed: soak.new_seed(),
        ..Default::default()
    };
    let (started, id) = oneshot::channel();
    let mut person = Person::new(soak.clone(), 0);
    let run = tokio::spawn(async move {
        explain_to_end(&mut person, "Explain (metrics run)", request, Some(started)).await;
    });
    let id = timeout(Duration::from_secs(90), id)
        .await
        .ok()
        .and_then(Result::ok);
    let runner = id.as_ref().and_then(|id| {
        workers
            .iter()
            .find(|w| w.child.logged(&format!("runs {id}")))
    });
    soak.say(&format!(
        "scraping /metrics during run {} (on worker {})",
        id.as_deref().unwrap_or("(none started within 90 s)"),
        runner.map_or("?", |w| &w.name)
    ));
    let mut text = String::new();
    let mut shown = Vec::new();
    let sources = workers
        .iter()
        .map(|w| (format!("worker {}", w.name), w.metrics))
        .chain(
            gateways
                .iter()
                .enumerate()
                .map(|(i, (_, address))| (format!("gateway {}", GATEWAY_NAMES[i]), *address)),
        );
    for (label, address) in sources {
        let scraped = block_in_place(|| std::panic::catch_unwind(|| scrape_metrics(address)));
        let body = scraped.unwrap_or_else(|_| "# the scrape failed\n".into());
        text.push_str(&format!("# ---- {label} ({address}) ----\n{body}"));
        shown.extend(
            body.lines()
                .filter(|l| {
                    l.starts_with("lens_jobs_running") || l.starts_with("lens_live_viewers")
                })
                .map(|l| format!("{label}: {l}")),
        );
    }
    let path = repo_root().join(METRICS_FILE);
    std::fs::write(&path, text).unwrap();
    println!("           wrote {}; for example:", path.display());
    for line in shown.iter().take(8) {
        println!("             {line}");
    }
    run
}

/// Waits for `tasks` up to `within`, then stops the rest; how many it
/// stopped.
async fn finish(tasks: Vec<JoinHandle<()>>, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut stopped = 0;
    for mut task in tasks {
        if timeout(
            deadline.saturating_duration_since(Instant::now()),
            &mut task,
        )
        .await
        .is_err()
        {
            task.abort();
            stopped += 1;
        }
    }
    stopped
}

/// What became of the runs.
struct RunsSummary {
    runs: Vec<Run>,
    /// Accepted, not finished in their own streams, finished when
    /// watched again at the end.
    recovered: usize,
    lost: Vec<Run>,
}

/// Watches again through gateway A every run that was accepted and never
/// seen finishing: those that still do not finish are lost.
async fn check_runs(soak: &Arc<Soak>) -> RunsSummary {
    let runs = soak.runs.all();
    let mut person = Person::new(soak.clone(), 0);
    let (mut recovered, mut lost) = (0, Vec::new());
    for run in runs.iter().filter(|r| !r.finished) {
        let Some(id) = &run.id else { continue };
        if watch_to_end(&mut person, id).await {
            recovered += 1;
        } else {
            lost.push(run.clone());
        }
    }
    RunsSummary {
        runs,
        recovered,
        lost,
    }
}

/// The maps compared with a single `serve`'s: (what, verdict) each.
struct MapsSummary {
    compared: Vec<(String, String)>,
    differing: usize,
}

/// Runs up to COMPARED distinct finished requests again on a single
/// `evidence-lens serve` and compares its maps, bit for bit, with the
/// cluster's stored ones (Watch through A).
async fn compare_with_serve(soak: &Arc<Soak>) -> MapsSummary {
    let mut distinct: Vec<Run> = Vec::new();
    for run in soak.runs.all() {
        let fresh = !distinct.iter().any(|c| c.request == run.request);
        if run.finished && run.id.is_some() && fresh {
            distinct.push(run);
        }
    }
    // Spread over the whole soak, so that runs made across the faults are
    // among them.
    let every = distinct.len().div_ceil(COMPARED).max(1);
    let chosen: Vec<Run> = distinct.into_iter().step_by(every).collect();
    let store = temp_folder("class-soak-serve");
    // One torch thread, as the workers have: the same arithmetic.
    let mut serve =
        block_in_place(|| ChildWorker::start_with_env(&store, &[], &[("OMP_NUM_THREADS", "1")]));
    soak.say(&format!(
        "comparing {} maps with a single serve ({}, one torch thread)",
        chosen.len(),
        serve.address
    ));
    let mut single = lazy_client(serve.address);
    let mut cluster = lazy_client(soak.gateways.address(0).expect("gateway A is up"));
    let mut summary = MapsSummary {
        compared: Vec::new(),
        differing: 0,
    };
    for run in chosen {
        let id = run.id.clone().unwrap();
        let stored = watch_events(&mut cluster, &id).await.map(assembled);
        let alone = collect_events(&mut single, run.request.clone())
            .await
            .map(assembled);
        let verdict = match (stored, alone) {
            (Ok(Some(stored)), Ok(Some(alone))) => compare_maps(&stored, &alone),
            (stored, alone) => format!(
                "not compared: cluster {:?}, serve {:?}",
                stored.map(|m| m.map(|m| m.len())),
                alone.map(|m| m.map(|m| m.len()))
            ),
        };
        if verdict != "same" {
            summary.differing += 1;
        }
        let what = format!(
            "{} {} seed {} ({id})",
            run.who,
            describe(&run.request),
            run.request.seed
        );
        summary.compared.push((what, verdict));
    }
    println!(
        "           serve stopped: {}",
        serve.child.stop("TERM").await
    );
    let _ = std::fs::remove_dir_all(store);
    summary
}

/// The map of a finished stream; `None` (and the reason on stderr) if its
/// events are out of shape.
fn assembled(events: Vec<(Instant, ExplainEvent)>) -> Option<Vec<f32>> {
    std::panic::catch_unwind(|| assemble(events).map).ok()
}

fn compare_maps(cluster: &[f32], single: &[f32]) -> String {
    if cluster.len() != single.len() {
        return format!("DIFFERS: {} values against {}", cluster.len(), single.len());
    }
    let differing: Vec<f32> = cluster
        .iter()
        .zip(single)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .map(|(a, b)| (a - b).abs())
        .collect();
    if differing.is_empty() {
        return "same".into();
    }
    format!(
        "DIFFERS in {} of {} values, by up to {:e}",
        differing.len(),
        cluster.len(),
        differing.iter().copied().fold(0.0, f32::max)
    )
}

fn vm_hwm(pid: u32) -> Option<String> {
    process_status(pid, "VmHWM")
}

fn peak(child: &ChildProcess) -> Option<String> {
    vm_hwm(child.process.id())
}

/// The `q` quantile of `values` (nearest rank), or NaN when empty.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn quantiles(values: &mut [f64]) -> String {
    format!(
        "p50 {:.3}  p95 {:.3}  p99 {:.3}  ({} samples)",
        quantile(values, 0.5),
        quantile(values, 0.95),
        quantile(values, 0.99),
        values.len()
    )
}

fn print_report(
    soak: &Soak,
    runs: &RunsSummary,
    maps: &MapsSummary,
    peaks: &[(String, Option<String>)],
) {
    let mut tally = soak.stats.tally();
    println!(
        "\n==== class soak: {:.0} s ====",
        soak.duration.as_secs_f64()
    );
    println!("requests served, by kind:");
    for (kind, count) in &tally.served {
        println!("  {kind:<24} {count}");
    }
    println!("errors, by gRPC code and kind (first message):");
    let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
    for ((code, kind), (count, message)) in &tally.errors {
        *by_code.entry(code).or_default() += count;
        println!("  {code:<18} {kind:<24} {count:>5}  {message:.110}");
    }
    println!("errors, by gRPC code: {by_code:?}");
    println!("retries: {:?}", tally.retries);
    println!(
        "small calls (ListModels, ListPresets, Estimate), ms: {}",
        quantiles(&mut tally.small_calls_ms)
    );
    println!(
        "time to the first tile of a watched explanation, s: {}",
        quantiles(&mut tally.first_tile_s)
    );
    let accepted = runs.runs.iter().filter(|r| r.id.is_some()).count();
    let in_stream = runs.runs.iter().filter(|r| r.finished).count();
    println!(
        "runs: {} asked, {accepted} accepted, {in_stream} finished for their creator, {} finished \
         only when watched again at the end, {} never accepted",
        runs.runs.len(),
        runs.recovered,
        runs.runs.len() - accepted
    );
    println!("RUNS LOST: {} (target 0)", runs.lost.len());
    for run in &runs.lost {
        println!(
            "  lost: {} {} id {:?}",
            run.who,
            describe(&run.request),
            run.id
        );
    }
    println!(
        "MAPS DIFFERING FROM A SINGLE SERVE: {} of {} compared (target 0)",
        maps.differing,
        maps.compared.len()
    );
    for (what, verdict) in &maps.compared {
        println!("  {what}: {verdict}");
    }
    println!("peak memory (VmHWM):");
    for (label, peak) in peaks {
        println!("  {label:<26} {}", peak.as_deref().unwrap_or("?"));
    }
    for (slot, polling) in tally.models.iter().enumerate() {
        println!(
            "LONGEST EMPTY LISTMODELS STRETCH, gateway {}: {:.1} s (from {:.1} s; {} polls, {} \
             without models{}{})",
            GATEWAY_NAMES[slot],
            polling.longest_empty.as_secs_f64(),
            polling.longest_at,
            polling.polls,
            polling.failed,
            if polling.first_failure.is_empty() {
                ""
            } else {
                "; first: "
            },
            polling.first_failure
        );
    }
}

/// SIGTERM to every gateway and worker, with their exit statuses; notes
/// any process that logged a panic (killed ones included).
async fn stop_everything(
    gateways: Vec<(ChildProcess, SocketAddr)>,
    workers: Vec<Worker>,
    retired: &[Retired],
) {
    println!("stopping (SIGTERM):");
    let named = gateways
        .into_iter()
        .enumerate()
        .map(|(i, (child, _))| (format!("gateway {}", GATEWAY_NAMES[i]), child))
        .chain(
            workers
                .into_iter()
                .map(|w| (format!("worker {}", w.name), w.child)),
        );
    for (label, mut child) in named {
        if child.logged("panicked") {
            println!("  {label}: LOGGED A PANIC; killed");
            child.kill();
            continue;
        }
        println!("  {label}: {}", child.stop("TERM").await);
    }
    for process in retired {
        if process.child.logged("panicked") {
            println!("  {}: LOGGED A PANIC", process.label);
        }
    }
}
