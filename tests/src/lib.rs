//! Shared pieces of the end-to-end tests: the real worker started in-process
//! on a free port (real digits network, real data, the built page), clients
//! for both gRPC flavours, and hand-made bad inputs.
//!
//! The worker needs what `./dev setup` produces (models/, data/) and the
//! browser test the page that `./dev test` builds (dist/).

pub mod browser;
pub mod cluster;
pub mod nats_server;
pub mod postgres_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lens_proto::v1::evidence_lens_client::EvidenceLensClient;
use lens_proto::v1::{ExplainEvent, ExplainRequest, ListPresetsRequest, Preset};
use lens_worker::digits::DigitsKit;
use lens_worker::models::Precision;
use lens_worker::server::{router, serve, LensService, Limits, Registry};
use lens_worker::store::SqliteStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;
use tonic::transport::Channel;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// Loads the digits kit from the repository's models/ and data/.
pub fn load_kit() -> DigitsKit {
    let root = repo_root();
    DigitsKit::load(&root.join("models"), &root.join("data"), tch::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}: run ./dev setup first"))
}

/// Starts the worker on 127.0.0.1:0 in the current runtime with the
/// repository's models (digits, EfficientNet-Lite0); returns its address.
pub async fn start_worker() -> SocketAddr {
    let root = repo_root();
    start_worker_with(&root.join("models")).await
}

/// Starts the worker with the models of `models` (and the repository's
/// data), a fresh store and the default limits.
pub async fn start_worker_with(models: &std::path::Path) -> SocketAddr {
    start_worker_configured(models, &temp_folder("store"), Limits::default()).await
}

/// Starts the worker in-process with this store folder and these limits.
pub async fn start_worker_configured(
    models: &std::path::Path,
    store: &Path,
    limits: Limits,
) -> SocketAddr {
    let registry = Registry::load(
        models,
        &repo_root().join("data"),
        tch::Device::Cpu,
        Precision::Full,
    );
    let store = Arc::new(SqliteStore::open(store).unwrap());
    let app = router(
        LensService::new(registry, store, limits),
        &repo_root().join("dist"),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { serve(listener, app).await.unwrap() });
    address
}

/// A new empty folder under the system's temporary folder.
pub fn temp_folder(what: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let folder = std::env::temp_dir().join(format!(
        "lens-{what}-{}-{}-{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// A role of the `evidence-lens` binary as a separate process (for tests
/// that restart or kill it), its log kept for the test to read.
pub struct ChildProcess {
    pub process: std::process::Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildProcess {
    /// Starts `evidence-lens ARGUMENTS` in the repository and waits until it
    /// logs a line containing `ready`; returns that line too.
    pub fn start(arguments: &[&str], ready: &str) -> (ChildProcess, String) {
        Self::start_with_env(arguments, &[], ready)
    }

    /// The same with more environment variables.
    pub fn start_with_env(
        arguments: &[&str],
        env: &[(&str, &str)],
        ready: &str,
    ) -> (ChildProcess, String) {
        use std::io::BufRead;
        let mut process = std::process::Command::new(worker_binary())
            .current_dir(repo_root())
            .args(arguments)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(process.stderr.take().unwrap()).lines();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let line = loop {
            let line = match lines.next() {
                Some(line) => line.unwrap(),
                None => panic!(
                    "evidence-lens {arguments:?} exited before logging {ready:?}: {:?}",
                    log.lock().unwrap()
                ),
            };
            log.lock().unwrap().push(line.clone());
            if line.contains(ready) {
                break line;
            }
        };
        // Keep reading its log so it never blocks on a full pipe.
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        (ChildProcess { process, log }, line)
    }

    /// Whether it has logged a line containing `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    /// Sends `signal` ("TERM", "INT") and waits up to a minute for the
    /// process to exit; its exit status. Panics if it logged a panic.
    pub async fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.process.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let exit = loop {
            if let Some(exit) = self.process.try_wait().unwrap() {
                break exit;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within a minute of SIG{signal}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        // The log reader may still hold the last lines.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !self.logged("panicked"),
            "a panic after SIG{signal}: {:?}",
            self.log.lock().unwrap()
        );
        exit
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The address in a line "Evidence Lens on http://ADDRESS ...".
pub fn listening_address(line: &str) -> SocketAddr {
    let rest = line.split("Evidence Lens on http://").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// The worker as a separate process (the `evidence-lens serve` binary), for
/// tests that restart or kill it.
pub struct ChildWorker {
    pub child: ChildProcess,
    pub address: SocketAddr,
}

impl ChildWorker {
    /// Starts `evidence-lens serve` on a free port with this store folder.
    pub fn start(store: &Path) -> ChildWorker {
        Self::start_with(store, &[])
    }

    /// The same, with more `serve` options.
    pub fn start_with(store: &Path, options: &[&str]) -> ChildWorker {
        let store = store.to_str().unwrap();
        let mut arguments = vec!["serve", "--listen", "127.0.0.1:0", "--store", store];
        arguments.extend_from_slice(options);
        let (child, line) = ChildProcess::start(&arguments, "Evidence Lens on http://");
        ChildWorker {
            child,
            address: listening_address(&line),
        }
    }

    /// The same, with more environment variables (`OMP_NUM_THREADS`...).
    pub fn start_with_env(store: &Path, options: &[&str], env: &[(&str, &str)]) -> ChildWorker {
        let store = store.to_str().unwrap();
        let mut arguments = vec!["serve", "--listen", "127.0.0.1:0", "--store", store];
        arguments.extend_from_slice(options);
        let (child, line) =
            ChildProcess::start_with_env(&arguments, env, "Evidence Lens on http://");
        ChildWorker {
            child,
            address: listening_address(&line),
        }
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(mut self) {
        self.child.kill();
    }
}

pub async fn native_client(address: SocketAddr) -> EvidenceLensClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    EvidenceLensClient::new(channel)
}

pub type WebService = tonic_web::GrpcWebClientService<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        tonic_web::GrpcWebCall<tonic::body::Body>,
    >,
>;

/// A client that speaks gRPC-Web over HTTP/1.1, as the browser does.
pub fn web_client(address: SocketAddr) -> EvidenceLensClient<WebService> {
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let service = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    EvidenceLensClient::with_origin(service, format!("http://{address}").parse().unwrap())
}

/// The preset digit with this label, fetched over gRPC.
pub async fn preset<T>(client: &mut EvidenceLensClient<T>, label: u32) -> Preset
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let presets = client
        .list_presets(ListPresetsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .presets;
    assert_eq!(presets.len(), 10, "one preset per digit class");
    presets.into_iter().find(|p| p.label == label).unwrap()
}

/// Every event of one explanation with the time it arrived.
pub async fn collect_events<T>(
    client: &mut EvidenceLensClient<T>,
    request: ExplainRequest,
) -> Result<Vec<(Instant, ExplainEvent)>, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let stream = client.explain(request).await?.into_inner();
    drain(stream).await
}

/// Every event of a share link (live or stored) with the time it arrived.
pub async fn watch_events<T>(
    client: &mut EvidenceLensClient<T>,
    id: &str,
) -> Result<Vec<(Instant, ExplainEvent)>, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let request = lens_proto::v1::WatchRequest { id: id.to_string() };
    let stream = client.watch(request).await?.into_inner();
    drain(stream).await
}

/// Reads a stream to its end, noting when each event arrived.
pub async fn drain(
    mut stream: tonic::Streaming<ExplainEvent>,
) -> Result<Vec<(Instant, ExplainEvent)>, tonic::Status> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push((Instant::now(), event));
    }
    Ok(events)
}

/// A PNG that claims `width x height` pixels but holds no pixel data (an
/// empty IDAT): only a worker that checks the header before decoding rejects
/// it for its size rather than for being truncated.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, no interlace
    for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IDAT", &[]), (b"IEND", &[])] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc.sum().to_be_bytes());
    }
    png
}

/// The parts of a finished stream, checked for shape on the way.
pub struct Streamed {
    pub started: lens_proto::v1::Started,
    pub finished: lens_proto::v1::Finished,
    /// The map assembled from the tiles (28 x 28, row-major).
    pub map: Vec<f32>,
    /// The other classes' maps (sent after the last tile).
    pub class_maps: Vec<lens_proto::v1::ClassMap>,
    /// The coarse map and when it arrived, if the run streamed one.
    pub coarse: Option<(Instant, Vec<f32>)>,
    /// When each final tile arrived.
    pub tile_times: Vec<Instant>,
    pub finished_at: Instant,
}

/// Checks the order of events (places in the queue if any, Started, an
/// optional coarse map covering the whole image, tiles, the other classes'
/// maps, Finished), that the
/// final tiles cover the image exactly once with growing progress, and
/// assembles the map.
pub fn assemble(events: Vec<(Instant, ExplainEvent)>) -> Streamed {
    use lens_proto::v1::explain_event::Event;
    // A run that waited for the device says so first; one that moved to
    // another worker (hosted with several) says so where it moved.
    let mut events = events
        .into_iter()
        .filter(|(_, e)| !matches!(e.event, Some(Event::Moved(_))))
        .skip_while(|(_, e)| matches!(e.event, Some(Event::Queued(_))));
    let Some((
        _,
        ExplainEvent {
            event: Some(Event::Started(started)),
        },
    )) = events.next()
    else {
        panic!("the first event must be Started");
    };
    let input = started.input.clone().expect("Started carries the input");
    let (width, height) = (input.width as usize, input.height as usize);
    let mut map = vec![f32::NAN; width * height];
    let mut covered = vec![0u32; width * height];
    let mut tile_times = Vec::new();
    let mut coarse = None;
    let mut last_done = 0;
    let mut class_maps = Vec::new();
    for (at, event) in events {
        match event.event {
            Some(Event::Tile(tile)) if tile.coarse => {
                assert!(
                    tile_times.is_empty() && coarse.is_none(),
                    "one coarse map, first"
                );
                assert_eq!((tile.x, tile.y), (0, 0));
                assert_eq!((tile.width, tile.height), (input.width, input.height));
                last_done = tile.windows_done;
                coarse = Some((at, tile.values));
            }
            Some(Event::Tile(tile)) => {
                assert!(class_maps.is_empty(), "other classes' maps come last");
                assert!(tile.windows_done >= last_done, "progress only grows");
                assert_eq!(tile.total_windows, started.total_windows);
                last_done = tile.windows_done;
                tile_times.push(at);
                for row in 0..tile.height as usize {
                    for col in 0..tile.width as usize {
                        let i = (tile.y as usize + row) * width + tile.x as usize + col;
                        covered[i] += 1;
                        map[i] = tile.values[row * tile.width as usize + col];
                    }
                }
            }
            Some(Event::ClassMap(class_map)) => {
                assert_eq!(class_map.values.len(), width * height);
                assert_ne!(class_map.class_index, started.explained_class);
                class_maps.push(class_map);
            }
            Some(Event::Finished(finished)) => {
                assert!(
                    covered.iter().all(|&n| n == 1),
                    "tiles cover every pixel once"
                );
                assert_eq!(last_done, started.total_windows);
                return Streamed {
                    started,
                    finished,
                    map,
                    class_maps,
                    coarse,
                    tile_times,
                    finished_at: at,
                };
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    panic!("the stream ended without Finished");
}

/// Requests that must each be refused with INVALID_ARGUMENT, with what the
/// message must say: (what is wrong, request, expected words).
pub fn bad_requests(good_png: &[u8]) -> Vec<(&'static str, ExplainRequest, &'static str)> {
    use lens_proto::v1::Method;
    let base = ExplainRequest {
        image: good_png.to_vec(),
        method: Method::Pda as i32,
        window: 4,
        samples: Some(2),
        ..Default::default()
    };
    let with_image = |image: Vec<u8>| ExplainRequest {
        image,
        ..base.clone()
    };
    vec![
        (
            "not an image",
            with_image(b"GIF? no, plain text".to_vec()),
            "not a PNG or JPEG",
        ),
        ("empty upload", with_image(Vec::new()), "empty"),
        (
            "too many bytes",
            with_image(vec![0x89; lens_worker::input::MAX_BYTES + 1]),
            "limit is",
        ),
        (
            "too many pixels",
            with_image(png_header_only(100_000, 100_000)),
            "100000 x 100000 pixels",
        ),
        (
            "an unknown method",
            ExplainRequest {
                method: 99,
                ..base.clone()
            },
            "unknown method 99",
        ),
        (
            "tiles too small",
            ExplainRequest {
                tile_size: 1,
                ..base.clone()
            },
            "tile size must be at least 4",
        ),
        (
            "window larger than the image",
            ExplainRequest {
                window: 29,
                ..base.clone()
            },
            "window 29 x 29 does not fit",
        ),
        (
            "no samples",
            ExplainRequest {
                samples: Some(0),
                ..base.clone()
            },
            "samples must be at least 1",
        ),
        (
            "no such class",
            ExplainRequest {
                class_index: Some(10),
                ..base.clone()
            },
            "class 10 does not exist",
        ),
    ]
}

/// The `evidence-lens` binary of this build (cargo builds it for the
/// worker's own tests, next to this test binary's folder).
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("evidence-lens");
    assert!(
        binary.exists(),
        "{} is missing: cargo build --release -p lens-worker",
        binary.display()
    );
    binary
}

/// Sends every request of `bad_requests` and checks each is refused with
/// INVALID_ARGUMENT and a message that names the problem.
pub async fn refuses_each_bad_request<T>(client: &mut EvidenceLensClient<T>, good_png: &[u8])
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    for (what, request, expected) in bad_requests(good_png) {
        let status = collect_events(client, request).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
        assert!(
            status.message().contains(expected),
            "{what}: {:?}",
            status.message()
        );
    }
}

/// The description of the 2-class, 3 x 32 x 32 models the tests trace.
pub const USER_MODEL_DESCRIPTION: &str = r#"
name = "Left or right"
file = "model.pt"
classes = "classes.txt"
channels = 3
height = 32
width = 32
normalise = "inside"
output = "logits"
training_images = 100
resize = "imagenet-crop"
"#;

/// Writes a model folder (TorchScript, classes "left" and "right", the
/// description above) whose forward pass is `forward`, traced from Rust on
/// one 3 x 32 x 32 input.
pub fn write_traced_model(folder: &Path, forward: &mut dyn FnMut(&tch::Tensor) -> tch::Tensor) {
    std::fs::create_dir_all(folder).unwrap();
    let example = tch::Tensor::rand([1, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
    let module = tch::CModule::create_by_tracing("user", "forward", &[example], &mut |inputs| {
        vec![forward(&inputs[0])]
    })
    .unwrap();
    module.save(folder.join("model.pt")).unwrap();
    std::fs::write(folder.join("classes.txt"), "left\nright\n").unwrap();
    std::fs::write(folder.join("model.toml"), USER_MODEL_DESCRIPTION).unwrap();
}

/// The float32 values of an `.npy` file the CLI wrote.
pub fn read_npy_values(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Runs the `evidence-lens` binary in the repository with these arguments,
/// checks that it succeeded (its stderr otherwise) and returns its stdout.
pub fn run_command<S: AsRef<std::ffi::OsStr>>(arguments: &[S]) -> String {
    let output = std::process::Command::new(worker_binary())
        .current_dir(repo_root())
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `evidence-lens explain` on the CPU with these arguments (the image
/// first) into `out`, and returns the first map it wrote.
pub fn cli_map(arguments: &[&str], out: &Path) -> Vec<f32> {
    let mut all = vec!["explain"];
    all.extend(arguments);
    all.extend(["--device", "cpu", "--out", out.to_str().unwrap()]);
    let summary: serde_json::Value = serde_json::from_str(&run_command(&all)).unwrap();
    read_npy_values(Path::new(summary["maps"][0]["npy"].as_str().unwrap()))
}

/// A 64 x 64 PNG, full red on the left half and half red on the right.
pub fn red_left_png() -> Vec<u8> {
    let mut photo = image::RgbImage::new(64, 64);
    for (x, _, p) in photo.enumerate_pixels_mut() {
        *p = image::Rgb([if x < 32 { 255 } else { 128 }, 0, 0]);
    }
    let mut png = Vec::new();
    photo
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// About 800,000 forward passes on a digit (PDA, k = 1, S = 1000): minutes
/// of work, for tests that stop a run.
pub fn minutes_of_work(image: Vec<u8>) -> ExplainRequest {
    ExplainRequest {
        image,
        method: lens_proto::v1::Method::Pda as i32,
        window: 1,
        samples: Some(1000),
        batch_size: 256,
        ..Default::default()
    }
}

/// A models folder holding the shipped digits model (its files linked) with
/// `agreement` as its measured agreement.
pub fn digits_with_agreement(agreement: &lens_worker::agreement::ModelAgreement) -> PathBuf {
    let json = serde_json::to_string(agreement).unwrap();
    digits_with(lens_worker::agreement::AGREEMENT_FILE, Some(&json))
}

/// A models folder holding the shipped digits model (its files linked),
/// with `file` holding `contents`, or without `file` when `None`.
pub fn digits_with(file: &str, contents: Option<&str>) -> PathBuf {
    let models = temp_folder("digits-models");
    let digits = models.join("digits");
    std::fs::create_dir_all(&digits).unwrap();
    for entry in std::fs::read_dir(repo_root().join("models/digits")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != file {
            std::os::unix::fs::symlink(entry.path(), digits.join(entry.file_name())).unwrap();
        }
    }
    if let Some(contents) = contents {
        std::fs::write(digits.join(file), contents).unwrap();
    }
    models
}

/// An agreement as `evidence-lens agreement` would write it, with figures
/// a test can recognise.
pub fn sample_agreement() -> lens_worker::agreement::ModelAgreement {
    use lens_worker::agreement::{MethodAgreement, ModelAgreement};
    let method = |method: &str, samples, rank_correlation, top_overlap| MethodAgreement {
        method: method.into(),
        samples,
        rank_correlation,
        top_overlap,
        seconds: 0.1,
    };
    ModelAgreement {
        reference: "PDA, S = 32".into(),
        reference_samples: 32,
        images: vec!["held-out digit 0".into()],
        window: 4,
        stride: 1,
        split_half: 0.97,
        ceiling: 0.98,
        methods: vec![
            method("efficient-pda", None, 0.787, 0.703),
            method("pda", Some(4), 0.949, 0.869),
            method("pda", Some(10), 0.969, 0.91),
            method("no-such-method", None, 0.5, 0.5),
        ],
        device: "Cpu".into(),
        measured_unix: 0,
    }
}

/// A finished explanation to store directly: a map of `values` floats (one
/// row), made at `created_unix`, with request key `[key; 32]`.
pub fn synthetic_record(
    values: usize,
    created_unix: i64,
    key: u8,
    secret_hash: [u8; 32],
) -> lens_worker::store::Record {
    use lens_proto::v1::{Finished, Started, StoredExplanation, Tile};
    lens_worker::store::Record {
        id: lens_worker::store::new_id(),
        request_key: [key; 32],
        secret_hash,
        created_unix,
        model: "digits".into(),
        method: "EfficientPda".into(),
        explanation: StoredExplanation {
            started: Some(Started::default()),
            map: Some(Tile {
                width: values as u32,
                height: 1,
                values: (0..values).map(|i| i as f32 * 0.5).collect(),
                ..Default::default()
            }),
            finished: Some(Finished::default()),
            class_maps: Vec::new(),
        },
    }
}

/// A loopback port nothing listens on (for a server this test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the loopback `port`;
/// panics, naming `what`, after `within`.
pub fn wait_until_listening(port: u16, within: std::time::Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM
/// files; the certificate's DER for the client to trust.
pub fn test_certificate() -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    let folder = temp_folder("tls");
    let (cert, key) = (folder.join("cert.pem"), folder.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (cert, key, made.cert.der().to_vec())
}

/// `evidence-lens serve` over HTTPS with a fresh test certificate, as a
/// child process: it, its address and the certificate's DER to trust.
pub fn start_https_serve() -> (ChildProcess, SocketAddr, Vec<u8>) {
    let (cert, key, der) = test_certificate();
    let store = temp_folder("tls-store");
    let arguments = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (serve, line) = ChildProcess::start(&arguments, "Evidence Lens on https://");
    let address = listening_address(&line.replace("https://", "http://"));
    (serve, address, der)
}

/// `GET /metrics` from `address`: the Prometheus text, checked for its
/// content type.
pub fn scrape_metrics(address: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the metrics port answers");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// A field of /proc/PID/status ("VmHWM", "VmRSS"), as written there
/// ("123456 kB"); `None` once the process is gone.
pub fn process_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        Some(value.trim().to_string())
    })
}

/// Prometheus text as samples (`name{labels}` as written, to its value).
/// Panics on a line that is not a comment or `name[{labels}] value`, and
/// on a sample whose metric has no `# TYPE` line before it.
pub fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert_eq!(series.contains('{'), series.ends_with('}'), "{line}");
        let family = ["_bucket", "_sum", "_count", ""].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            typed.contains(base).then_some(base)
        });
        assert!(family.is_some(), "no # TYPE before {line}");
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Starts minutes of work on `image` and reads its stream up to Started
/// (the run is on the device), for tests that act while a run goes on;
/// dropping the stream leaves the run.
pub async fn long_run_started<T>(
    client: &mut EvidenceLensClient<T>,
    image: Vec<u8>,
) -> tonic::Streaming<ExplainEvent>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    use lens_proto::v1::explain_event::Event;
    let mut stream = client
        .explain(minutes_of_work(image))
        .await
        .unwrap()
        .into_inner();
    loop {
        let event = stream
            .message()
            .await
            .unwrap()
            .expect("the long run starts");
        if matches!(event.event, Some(Event::Started(_))) {
            return stream;
        }
    }
}
