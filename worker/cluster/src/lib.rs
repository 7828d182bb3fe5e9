//! Several workers behind one page, through NATS JetStream: the `gateway`
//! role (the one service over the `Cluster` backend: it admits requests
//! and relays events), the `worker` role (owns a device and runs the queued
//! jobs) and what they share: the job queue (`jobs`), each run's events
//! (`events`), the workers' models (`models`), which run identical requests
//! join (`runs`), cluster-wide limits (`quotas`) and classes (`classes`).
//! See docs/scaling-out.md.

pub mod classroom_board;
pub mod events;
pub mod gateway;
mod gateway_classrooms;
pub mod jobs;
pub mod messages;
pub mod model_board;
pub mod quotas;
pub mod run_board;
mod run_viewers;
pub mod worker_role;

pub use gateway::{Cluster, Gateway};
pub use worker_role::{WorkerOptions, WorkerRole};

use lens_server::metrics::metrics;
use lens_server::status::ServiceError;
use tonic::Status;

use std::time::Duration;

/// A NATS problem, said so that an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS (or its JetStream) cannot be reached now: worth trying again.
    #[error("cannot reach NATS at {url}: {message}")]
    Unavailable { url: String, message: String },
    #[error("NATS: {0}")]
    Nats(String),
}

impl From<ClusterError> for ServiceError {
    fn from(error: ClusterError) -> ServiceError {
        ServiceError::Unavailable(error.to_string())
    }
}

/// Where a NATS problem becomes a request's status, it is counted.
impl From<ClusterError> for Status {
    fn from(error: ClusterError) -> Status {
        metrics().queue_errors.inc();
        ServiceError::from(error).into()
    }
}

impl ClusterError {
    fn jetstream(url: &str, error: impl std::fmt::Display) -> ClusterError {
        ClusterError::Unavailable {
            url: url.to_string(),
            message: format!("JetStream: {error} (is nats-server running with -js?)"),
        }
    }

    fn nats(error: impl std::fmt::Display) -> ClusterError {
        ClusterError::Nats(error.to_string())
    }
}

/// Connects to NATS at `url` and opens the stream `config` describes,
/// creating it where it is missing.
async fn open_stream(
    url: &str,
    config: async_nats::jetstream::stream::Config,
) -> Result<
    (
        async_nats::jetstream::Context,
        async_nats::jetstream::stream::Stream,
    ),
    ClusterError,
> {
    let jetstream = async_nats::jetstream::new(connect(url).await?);
    let stream = jetstream
        .get_or_create_stream(config)
        .await
        .map_err(|e| ClusterError::jetstream(url, e))?;
    Ok((jetstream, stream))
}

/// Publishes `payload` on `subject`; returns once JetStream stored it,
/// with its sequence number in the stream.
async fn publish_stored(
    jetstream: &async_nats::jetstream::Context,
    subject: String,
    payload: bytes::Bytes,
) -> Result<u64, ClusterError> {
    let stored = jetstream
        .publish(subject, payload)
        .await
        .map_err(ClusterError::nats)?
        .await
        .map_err(ClusterError::nats)?;
    Ok(stored.sequence)
}

/// `ClusterError::Unavailable` at once while the connection is down.
fn check_connected(
    jetstream: &async_nats::jetstream::Context,
    url: &str,
) -> Result<(), ClusterError> {
    match jetstream.client().connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        state => Err(ClusterError::Unavailable {
            url: url.to_string(),
            message: format!("the connection is {state:?}"),
        }),
    }
}

/// A client that reconnects by itself after a lost connection; the first
/// connection must succeed within a few seconds.
async fn connect(url: &str) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .name("evidence-lens")
        .connection_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| ClusterError::Unavailable {
            url: url.to_string(),
            message: e.to_string(),
        })
}

/// A key-value bucket's stream whose entries last `lifetime`, made by
/// hand: async-nats's `create_key_value` cannot talk to nats-server 2.9
/// (Debian's).
fn bucket_stream(bucket: &str, lifetime: Duration) -> async_nats::jetstream::stream::Config {
    async_nats::jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: lifetime,
        storage: async_nats::jetstream::stream::StorageType::File,
        allow_rollup: true,
        allow_direct: true,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Opens the key-value bucket `name`, making it where it is missing.
pub(crate) async fn key_value_bucket(
    jetstream: &async_nats::jetstream::Context,
    url: &str,
    name: &str,
    lifetime: Duration,
) -> Result<async_nats::jetstream::kv::Store, ClusterError> {
    jetstream
        .get_or_create_stream(bucket_stream(name, lifetime))
        .await
        .map_err(|e| ClusterError::jetstream(url, e))?;
    jetstream
        .get_key_value(name)
        .await
        .map_err(|e| ClusterError::jetstream(url, e))
}

/// Every gateway's count under `NAME.GATEWAY` in `bucket`, now and at each
/// change: (gateway, count). Ends when the watch breaks.
pub(crate) async fn watch_counts(
    bucket: &async_nats::jetstream::kv::Store,
    name: &str,
) -> Result<impl futures::Stream<Item = (String, u32)> + Send + Unpin + use<>, ClusterError> {
    use futures::StreamExt;
    let entries = bucket
        .watch_with_history(format!("{name}.*"))
        .await
        .map_err(ClusterError::nats)?;
    let prefix = format!("{name}.");
    Ok(entries
        .take_while(|entry| futures::future::ready(entry.is_ok()))
        .filter_map(move |entry| {
            let counted = entry.ok().and_then(|e| {
                let gateway = e.key.strip_prefix(&prefix)?.to_string();
                let count = std::str::from_utf8(&e.value).ok()?.parse().ok()?;
                Some((gateway, count))
            });
            futures::future::ready(counted)
        }))
}
