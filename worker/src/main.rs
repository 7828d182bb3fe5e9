//! The `evidence-lens` binary: `serve` runs the product, `gateway` and
//! `worker` run it behind one address, `explain` and `evaluate` run the
//! engine for researchers, and the setup commands (`train-digits`,
//! `fit-patches`, `agreement`, `precompress`) make what the
//! product reads. The experiments have their own binary, `evidence-lens-lab`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lens_worker::digits::{self, mnist, train};
use lens_worker::models::{Placement, Precision, Runtime};
use lens_worker::store::{PostgresStore, SqliteStore, Store};
use lens_worker::{cluster, server};
use std::sync::Arc;

/// glibc raises its threshold for giving freed memory back to the system
/// to the largest block freed so far (up to 32 MB). After one large upload,
/// the decoder's 16-30 MB buffers then come from per-thread heaps that stay
/// resident: 24 uploads of 40 megapixels left 0.3 GB behind. A fixed
/// threshold of 16 MB keeps such blocks mapped only while in use (4 MB did
/// too, but made the engine's many 5 MB temporaries slower).
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
    }
}

#[derive(Parser)]
#[command(
    version,
    about = "Evidence Lens: see why an image classifier decided what it decided"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The models a serving process holds, and how it runs them.
#[derive(clap::Args)]
struct Held {
    /// Folder with the trained models.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Folder with the digits data (and the photos the page offers).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// `half` runs the networks in fp16 where safe (CUDA only).
    #[arg(long, value_enum, default_value_t = Precision::Full)]
    precision: Precision,
    /// What runs the window methods: `onnx` (ONNX Runtime, on the CPU) or
    /// `torch` (libtorch). Default: ONNX Runtime on a CPU where a model has
    /// an ONNX file, libtorch on CUDA. A cluster run is only taken over by a
    /// worker that computes it the same way (runtime, device, precision).
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the page, gRPC-Web and native gRPC on one port.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        held: Held,
        /// Folder with the built page (trunk's output).
        #[arg(long, default_value = "dist")]
        dist: PathBuf,
        #[command(flatten)]
        hosting: Hosting,
    },
    /// Hosting with several workers: serve the page and the API, queue the
    /// explanations for the workers (NATS JetStream) and relay their events;
    /// explanations are stored in PostgreSQL. Holds no device.
    Gateway {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Folder with the digits data and photos (the page's presets).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[arg(long, default_value = "dist")]
        dist: PathBuf,
        #[command(flatten)]
        cluster: Cluster,
        #[command(flatten)]
        hosting: Hosting,
    },
    /// Hosting with several workers: own this machine's device and run the
    /// explanations the gateways queue, one at a time.
    Worker {
        #[command(flatten)]
        held: Held,
        /// This worker's name among the workers (default: host name and
        /// process id).
        #[arg(long)]
        name: Option<String>,
        /// Seconds a job may go unconfirmed before another worker takes it
        /// over: how long a dead worker's run waits.
        #[arg(long, default_value_t = 10)]
        takeover_seconds: u64,
        #[command(flatten)]
        cluster: Cluster,
        /// The PostgreSQL database the gateways read
        /// (postgres://user@host:port/database).
        #[arg(long, env = "LENS_DATABASE_URL")]
        database_url: String,
        /// Serve Prometheus metrics at http://ADDRESS/metrics (a worker
        /// serves nothing else; `serve` and `gateway` have /metrics on
        /// their own port).
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Explain an image or a folder of images: .npy maps, overlay PNGs and a
    /// JSON summary line per image on stdout.
    Explain(lens_worker::cli::ExplainArgs),
    /// How faithful a map is: deletion and insertion curves (and their
    /// areas) beside a random and an edge baseline, as one JSON line.
    Evaluate(lens_worker::cli::EvaluateArgs),
    /// How closely each method follows PDA with many samples on a model
    /// (rank correlation, top-10% overlap): a table, and agreement.json in
    /// the model's folder for the page.
    Agreement(lens_worker::cli::AgreementArgs),
    /// Fit the Gaussian of l x l patches (all channels jointly) from photos, for
    /// the conditional sampler, and save it.
    FitPatches {
        /// Folder of PNG/JPEG photos.
        #[arg(long, default_value = "data/photos")]
        photos: PathBuf,
        /// Patch side l (window k + 2 x padding).
        #[arg(long, default_value_t = 18)]
        side: usize,
        /// Distance between patches.
        #[arg(long, default_value_t = 1)]
        stride: usize,
        /// Photos are cropped as for this model input side (ImageNet crop).
        #[arg(long, default_value_t = 224)]
        input: usize,
        #[arg(
            long,
            default_value = "models/efficientnet-lite0/patches-18.safetensors"
        )]
        out: PathBuf,
    },
    /// Write brotli and gzip copies beside the built page's files (./dev
    /// runs it after trunk), which the server sends to browsers that take them.
    Precompress {
        #[arg(default_value = "dist")]
        dist: PathBuf,
    },
    /// Train the digits network on the training split and report held-out accuracy.
    TrainDigits {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        #[arg(long, default_value_t = train::TrainConfig::default().epochs)]
        epochs: usize,
    },
}

/// Where the gateways and workers meet.
#[derive(clap::Args)]
struct Cluster {
    /// The NATS server (with JetStream: nats-server -js).
    #[arg(long, env = "LENS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

/// Where explanations are stored and the limits that keep a host alive.
#[derive(clap::Args)]
struct Hosting {
    /// Folder of the explanation store (one SQLite file).
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// Keep explanations in this PostgreSQL database instead
    /// (postgres://user@host:port/database), to share them among processes.
    #[arg(long, env = "LENS_DATABASE_URL")]
    database_url: Option<String>,
    /// Remove stored explanations after this many days (0: keep them).
    #[arg(long, default_value_t = 30)]
    retention_days: u64,
    /// Keep the stored explanations under this many megabytes, removing the
    /// oldest first (0: no cap).
    #[arg(long, default_value_t = 0)]
    max_store_mb: u64,
    /// Explanations running or queued at most; more are refused as busy.
    #[arg(long, default_value_t = server::Limits::default().jobs)]
    max_jobs: usize,
    /// Explanations one client (a browser, by the id its page sends; else
    /// an IP address) may have running or queued.
    #[arg(long, default_value_t = server::Limits::default().per_client)]
    per_client: usize,
    /// Explanations one IP address (a classroom behind a school's address)
    /// may have running or queued, all its browsers together.
    #[arg(long, default_value_t = server::Limits::default().per_address)]
    per_address: usize,
    /// Behind a reverse proxy: take the client's address from the first
    /// entry of X-Forwarded-For (only if the proxy sets it).
    #[arg(long)]
    trust_forwarded_for: bool,
    /// Live viewers of one explanation at most (its creator included).
    #[arg(long, default_value_t = server::Limits::default().viewers_per_run)]
    viewers_per_run: usize,
    /// Live streams one client (a browser, else an IP address) may have
    /// open at once.
    #[arg(long, default_value_t = server::Limits::default().watches_per_client)]
    watches_per_client: usize,
    /// Live streams one IP address may have open at once, all its browsers
    /// together.
    #[arg(long, default_value_t = server::Limits::default().watches_per_address)]
    watches_per_address: usize,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); phones on
    /// a local network need it for the camera. Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Hosting {
    fn limits(&self) -> server::Limits {
        server::Limits {
            jobs: self.max_jobs.max(1),
            per_client: self.per_client.max(1),
            per_address: self.per_address.max(1),
            trust_forwarded_for: self.trust_forwarded_for,
            viewers_per_run: self.viewers_per_run.max(1),
            watches_per_client: self.watches_per_client.max(1),
            watches_per_address: self.watches_per_address.max(1),
            ..server::Limits::default()
        }
    }
}

fn main() {
    return_large_blocks_to_the_system();
    // Logs go to stderr: stdout carries the `explain` command's JSON.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(error) = run(Cli::parse().command) {
        // One line, whatever the cause: `{:#}` joins the context chain.
        eprintln!("error: {error:#}");
        std::process::exit(2);
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            listen,
            held,
            dist,
            hosting,
        } => serve(listen, held, dist, hosting),
        Command::Gateway {
            listen,
            data,
            dist,
            cluster,
            hosting,
        } => gateway(listen, data, dist, cluster, hosting),
        Command::Worker {
            held,
            name,
            takeover_seconds,
            cluster,
            database_url,
            metrics_listen,
        } => {
            let options = cluster::WorkerOptions {
                nats_url: cluster.nats_url,
                name: name.unwrap_or_else(default_worker_name),
                ack_wait: std::time::Duration::from_secs(takeover_seconds.max(1)),
            };
            worker(held, options, database_url, metrics_listen)
        }
        Command::TrainDigits {
            data,
            models,
            epochs,
        } => train_digits(data, models, epochs),
        Command::Explain(args) => {
            let failed = lens_worker::cli::run(&args)?;
            if failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Evaluate(args) => lens_worker::cli::run_evaluate(&args),
        Command::Agreement(args) => lens_worker::cli::run_agreement(&args),
        Command::Precompress { dist } => {
            let (plain, brotli) = server::precompress(&dist)
                .with_context(|| format!("cannot compress the page in {}", dist.display()))?;
            println!("{}: {plain} bytes, {brotli} as brotli", dist.display());
            Ok(())
        }
        Command::FitPatches {
            photos,
            side,
            stride,
            input,
            out,
        } => fit_patches(photos, side, stride, input, out),
    }
}

fn serve(listen: SocketAddr, held: Held, dist: PathBuf, hosting: Hosting) -> anyhow::Result<()> {
    let (registry, device) = load_models(&held)?;
    if !dist.join("index.html").exists() {
        tracing::warn!(
            "{} has no index.html: the page is not built (./dev run builds it)",
            dist.display()
        );
    }
    let store: Arc<dyn Store> = match &hosting.database_url {
        Some(url) => Arc::new(PostgresStore::open(url)?),
        None => Arc::new(SqliteStore::open(&hosting.store)?),
    };
    let service = server::LensService::new(registry, store.clone(), hosting.limits());
    let stop = service.shutdown();
    tokio::runtime::Runtime::new()?.block_on(async {
        let router = server::router(service, &dist).await;
        listen_and_serve(
            listen,
            router,
            store,
            &hosting,
            stop,
            &format!("{device:?}"),
        )
        .await
    })?;
    // The service is gone with the router: it waited for the device's job.
    tracing::info!("stopped");
    Ok(())
}

fn gateway(
    listen: SocketAddr,
    data: PathBuf,
    dist: PathBuf,
    cluster: Cluster,
    hosting: Hosting,
) -> anyhow::Result<()> {
    let Some(url) = &hosting.database_url else {
        anyhow::bail!("a gateway needs --database-url: the PostgreSQL database its workers store explanations in");
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(url)?);
    tokio::runtime::Runtime::new()?.block_on(async {
        let gateway =
            cluster::gateway::start(&cluster.nats_url, store.clone(), &data, hosting.limits())
                .await?;
        let stop = gateway.shutdown();
        let router = server::router(gateway, &dist).await;
        listen_and_serve(listen, router, store, &hosting, stop, "none, a gateway").await
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves `router` on `listen` until SIGTERM or SIGINT, with the store's
/// retention running beside it.
async fn listen_and_serve(
    listen: SocketAddr,
    router: axum::Router,
    store: Arc<dyn Store>,
    hosting: &Hosting,
    stop: server::Shutdown,
    device: &str,
) -> anyhow::Result<()> {
    let retention = server::Retention {
        days: hosting.retention_days,
        max_bytes: hosting.max_store_mb * 1024 * 1024,
    };
    // Checked before anything listens: a bad file is the host's to fix.
    let tls = match (&hosting.tls_cert, &hosting.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::server_config(cert, key)?),
        _ => None,
    };
    server::spawn_retention(store, retention);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let (scheme, address) = (
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
    );
    tracing::info!("Evidence Lens on {scheme}://{address} (device: {device})");
    let stop = server::on_terminate(stop);
    match tls {
        Some(tls) => server::serve_tls_until(listener, tls, router, stop).await?,
        None => server::serve_until(listener, router, stop).await?,
    }
    Ok(())
}

fn worker(
    held: Held,
    options: cluster::WorkerOptions,
    database_url: String,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let (registry, device) = load_models(&held)?;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&database_url)?);
    tokio::runtime::Runtime::new()?.block_on(async {
        if let Some(listen) = metrics_listen {
            // Bound before the worker starts, so a taken port stops it.
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen} for metrics"))?;
            tokio::spawn(server::metrics::serve_metrics(listener));
        }
        let role = cluster::WorkerRole::start(registry, store, options).await?;
        tracing::info!(
            "worker ready (device: {device:?}, {} torch threads)",
            tch::get_num_threads()
        );
        let stop = server::Shutdown::default();
        role.run(server::on_terminate(stop)).await;
        anyhow::Ok(())
    })
}

/// The models on this machine's device (CUDA when present).
fn load_models(held: &Held) -> anyhow::Result<(server::Registry, tch::Device)> {
    let precision = held.precision;
    let device = tch::Device::cuda_if_available();
    if precision == Precision::Half && !device.is_cuda() {
        anyhow::bail!("--precision half runs on CUDA only, and no CUDA device is available");
    }
    let placement = Placement {
        device,
        precision,
        runtime: held.runtime,
    };
    let registry = server::Registry::load(&held.models, &held.data, placement);
    anyhow::ensure!(
        !registry.entries.is_empty(),
        "no model could be loaded from {} (run ./dev setup)",
        held.models.display()
    );
    Ok((registry, device))
}

/// The host's name and the process id: unique among running workers.
fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

fn train_digits(data: PathBuf, models: PathBuf, epochs: usize) -> anyhow::Result<()> {
    let device = tch::Device::cuda_if_available();
    let split = mnist::load_split(&data.join(digits::MNIST_FILE))?;
    let config = train::TrainConfig {
        epochs,
        ..Default::default()
    };
    println!(
        "training on {} digits, holding out {} ({device:?})",
        split.train.len(),
        split.held_out.len()
    );
    let (mut vs, net) = train::train(&split.train, &config, device, &mut |line| {
        println!("{line}")
    })?;
    let folder = models.join(lens_worker::models::DIGITS);
    digits::export(&mut vs, &net, &split.train, &folder)?;
    // Measured on the exported folder, so the export itself is checked.
    let model = lens_worker::models::LoadedModel::load(
        &folder.to_string_lossy(),
        &models,
        device,
        Precision::Full,
    )?;
    let accuracy = train::accuracy(model.classifier.as_ref(), &split.held_out);
    println!(
        "held-out accuracy: {:.2}% ({} digits)",
        accuracy * 100.0,
        split.held_out.len()
    );
    println!("saved {}", folder.display());
    Ok(())
}

fn fit_patches(
    photos: PathBuf,
    side: usize,
    stride: usize,
    input: usize,
    out: PathBuf,
) -> anyhow::Result<()> {
    let shape = lens_worker::engine::InputShape {
        channels: 3,
        height: input,
        width: input,
    };
    let mut images = Vec::new();
    let paths = lens_worker::input::image_files(&photos)
        .with_context(|| format!("cannot read {}", photos.display()))?;
    for path in &paths {
        let bytes = std::fs::read(path)?;
        images.push(
            lens_worker::input::photo_from_bytes(&bytes, shape)
                .with_context(|| format!("{}", path.display()))?,
        );
    }
    let stats = lens_worker::engine::PatchStatistics::fit(&images, side, stride)?;
    stats.save(&out)?;
    println!(
        "fitted {} x {} patches: {} patches from {} photos -> {}",
        side,
        side,
        stats.patches,
        images.len(),
        out.display()
    );
    Ok(())
}
