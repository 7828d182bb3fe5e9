//! One port for everything: the built page (static files), gRPC-Web over
//! HTTP/1.1 for the browser and native gRPC over HTTP/2 for programs.
//!
//! The gRPC-Web layer sits on the gRPC routes only (as a route layer); on the
//! whole server it would answer plain page requests with 400.

mod registry;
mod request;
mod service;
mod status;

use std::path::Path;

use lens_proto::v1::evidence_lens_server::EvidenceLensServer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower_http::services::ServeDir;

pub use registry::{ModelSummary, Registry};
pub use request::{DEFAULT_BATCH, DEFAULT_PADDING, DEFAULT_SAMPLES, DEFAULT_STRIDE, DEFAULT_TILE};
pub use service::LensService;
pub use status::ServiceError;

/// The whole HTTP surface: gRPC (both flavours) and the page from `dist`.
pub fn router(service: LensService, dist: &Path) -> axum::Router {
    // Room for the largest image the input checks accept, so that an image
    // just over the limit gets their clear message rather than tonic's.
    let server = EvidenceLensServer::new(service)
        .max_decoding_message_size(crate::input::MAX_BYTES + 64 * 1024);
    Routes::new(server)
        .into_axum_router()
        .route_layer(GrpcWebLayer::new())
        .fallback_service(ServeDir::new(dist))
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, router: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
