//! Which models the running workers hold: each worker puts its list under
//! its own name in a NATS key-value bucket and renews it every few seconds;
//! an entry not renewed for `ADVERT_LIFETIME` expires, so a dead worker's
//! models disappear by themselves. Gateways read the bucket to list models
//! and to refuse requests for a model no worker holds.

use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use prost::Message;

use super::messages::WorkerModels;
use super::{connect, ClusterError};

const BUCKET: &str = "LENS_WORKERS";
/// How long an advertisement lasts unless renewed.
pub const ADVERT_LIFETIME: Duration = Duration::from_secs(15);
/// How often a worker renews it.
pub const ADVERT_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ModelBoard {
    bucket: kv::Store,
    jetstream: jetstream::Context,
    url: String,
}

/// The bucket's stream, made by hand: async-nats's `create_key_value`
/// cannot talk to nats-server 2.9 (Debian's).
fn bucket_stream() -> stream::Config {
    stream::Config {
        name: format!("KV_{BUCKET}"),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: ADVERT_LIFETIME,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

impl ModelBoard {
    /// Connects to NATS at `url`; creates the bucket where it is missing.
    pub async fn open(url: &str) -> Result<ModelBoard, ClusterError> {
        let jetstream = jetstream::new(connect(url).await?);
        jetstream
            .get_or_create_stream(bucket_stream())
            .await
            .map_err(|e| ClusterError::jetstream(url, e))?;
        let bucket = jetstream
            .get_key_value(BUCKET)
            .await
            .map_err(|e| ClusterError::jetstream(url, e))?;
        Ok(ModelBoard {
            bucket,
            jetstream,
            url: url.to_string(),
        })
    }

    /// Puts (or renews) `worker`'s list; makes the bucket again if the
    /// server lost it (a NATS server started afresh).
    pub async fn advertise(&self, worker: &str, models: &WorkerModels) -> Result<(), ClusterError> {
        let encoded = bytes::Bytes::from(models.encode_to_vec());
        if self.bucket.put(worker, encoded.clone()).await.is_ok() {
            return Ok(());
        }
        self.jetstream
            .get_or_create_stream(bucket_stream())
            .await
            .map_err(|e| ClusterError::jetstream(&self.url, e))?;
        self.bucket
            .put(worker, encoded)
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// Takes `worker`'s list down at once (a worker stopping cleanly).
    pub async fn withdraw(&self, worker: &str) -> Result<(), ClusterError> {
        self.bucket.purge(worker).await.map_err(ClusterError::nats)
    }

    /// Every live worker's list.
    pub async fn current(&self) -> Result<Vec<WorkerModels>, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        let names: Vec<String> = self
            .bucket
            .keys()
            .await
            .map_err(ClusterError::nats)?
            .try_collect()
            .await
            .map_err(ClusterError::nats)?;
        let mut lists = Vec::new();
        for name in names {
            if let Some(bytes) = self.bucket.get(name).await.map_err(ClusterError::nats)? {
                lists.push(WorkerModels::decode(bytes).map_err(ClusterError::nats)?);
            }
        }
        Ok(lists)
    }
}
