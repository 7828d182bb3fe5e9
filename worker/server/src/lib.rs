//! The one gRPC service (`lens`) with `serve`'s backend (`local`: one
//! process with its device), and its hosting: one port for everything: the built page (static files), gRPC-Web over
//! HTTP/1.1 for the browser and native gRPC over HTTP/2 for programs.
//!
//! The gRPC-Web layer sits on the gRPC routes only (as a route layer); on the
//! whole server it would answer plain page requests with 400. Beside the
//! service run the standard `grpc.health.v1` health check (for load
//! balancers), server reflection (so `grpcurl` needs no `.proto` file) and
//! `/metrics` (Prometheus text).

pub mod admission;
pub mod classrooms;
pub mod client;
mod device_queue;
pub mod estimate;
pub mod faithfulness;
mod inspect;
pub mod lens;
pub mod limits;
mod live;
mod local;
pub mod metrics;
pub mod misses;
pub mod presets;
pub mod registry;
pub mod request;
pub mod run_job;
mod shutdown;
mod site;
pub mod speed;
pub mod status;
pub mod stored;
pub mod tls;

use std::path::Path;

use lens_proto::v1::evidence_lens_server::EvidenceLensServer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;

pub use admission::Limits;
pub use classrooms::CLASSROOMS_PER_CLIENT;
pub use estimate::{DEFAULT_RUN_SECONDS, LESSON_SECONDS};
pub use lens::{Backend, Lens, Run};
pub use local::{LensService, Local};
pub use misses::MISSES_PER_PERIOD;
pub use registry::{ModelSummary, Registry};
pub use request::{
    job_from_request, settings_from_request, Job, Settings, DEFAULT_PADDING, DEFAULT_SAMPLES,
    DEFAULT_STRIDE, DEFAULT_TILE,
};
pub use shutdown::Shutdown;
pub use site::precompress;
pub use status::ServiceError;

/// The whole HTTP surface: gRPC (both flavours) and the page from `dist`,
/// for `serve` or a gateway.
pub async fn router<B: Backend>(service: Lens<B>, dist: &Path) -> axum::Router {
    let (classrooms, stopping) = (service.classrooms(), service.shutdown());
    // Classrooms whose teacher left end even when nobody asks about them.
    tokio::spawn(async move {
        let mut minutes = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            minutes.tick().await;
            classrooms.sweep();
        }
    });
    // Room for the largest image the input checks accept, so that an image
    // just over the limit gets their clear message rather than tonic's.
    let server = EvidenceLensServer::new(service)
        .max_decoding_message_size(lens_engine::input::MAX_BYTES + 64 * 1024);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<EvidenceLensServer<Lens<B>>>().await;
    // Load balancers stop sending work as soon as shutting down begins.
    let reporter = health.clone();
    tokio::spawn(async move {
        stopping.begun().await;
        reporter
            .set_not_serving::<EvidenceLensServer<Lens<B>>>()
            .await;
    });
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lens_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // grpcurl asks v1 first and older clients v1alpha.
    let (Ok(reflection_v1), Ok(reflection_v1alpha)) =
        (reflection().build_v1(), reflection().build_v1alpha())
    else {
        unreachable!("the descriptors compiled into the binary are valid");
    };
    Routes::new(server)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .route_layer(GrpcWebLayer::new())
        .merge(metrics::route())
        .fallback_service(site::page(dist))
}

/// Serves until the process ends. The client's address travels with each
/// request (for the per-client limit).
pub async fn serve(listener: TcpListener, router: axum::Router) -> std::io::Result<()> {
    serve_until(listener, router, std::future::pending()).await
}

/// Serves until `stop` completes, then finishes the requests in flight (the
/// caller ends their streams, see `Shutdown`) and returns.
pub async fn serve_until(
    listener: TcpListener,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a small answer waits for the client's delayed
    // acknowledgement: every small call took 44 ms instead of about 1 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!("TCP_NODELAY could not be set: {error}");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

/// `serve_until` over HTTPS (HTTP/2 or HTTP/1.1, as the client offers).
pub async fn serve_tls_until(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Tapped only so that axum hands each request the client's address.
    let listener = tls::TlsListener::new(listener, tls)?.tap_io(|_| {});
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

/// Completes on SIGTERM or SIGINT, after `shutdown` has begun.
pub async fn on_terminate(shutdown: Shutdown) {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: no new explanations, ending the runs in progress");
    shutdown.begin();
}

/// How long stored explanations stay and how much room they may take.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Explanations older than this many days go (0: kept for ever).
    pub days: u64,
    /// The oldest go first once the store holds more (0: no cap).
    pub max_bytes: u64,
}

/// Applies `retention` to the store now and every ten minutes.
pub fn spawn_retention(store: std::sync::Arc<dyn lens_store::Store>, retention: Retention) {
    let max_age = (retention.days * 24 * 3600) as i64;
    tokio::spawn(async move {
        loop {
            let store = store.clone();
            let cutoff = lens_store::now_unix() - max_age;
            let housekeeping = move || -> Result<usize, lens_store::StoreError> {
                let mut removed = 0;
                if retention.days > 0 {
                    removed += store.remove_older_than(cutoff)?;
                }
                if retention.max_bytes > 0 {
                    removed += store.shrink_to(retention.max_bytes)?;
                }
                Ok(removed)
            };
            match tokio::task::spawn_blocking(housekeeping).await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!("retention: removed {removed} explanations"),
                Ok(Err(error)) => tracing::error!("retention: {error}"),
                Err(error) => tracing::error!("retention: {error}"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    });
}
