//! Runs across gateways. Identical requests join one run wherever they
//! arrive: the first gateway claims the request's key (`k.KEY` -> the run's
//! id, an atomic create in a key-value bucket) and the others follow that
//! run. And a run nobody watches stops: each gateway puts how many of its
//! clients watch a run under `RUN.GATEWAY` in a second bucket, renewed while
//! they watch; the worker stops a run whose counts are all zero or lapsed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::jetstream::{self};
use futures::{Stream, StreamExt};

use super::{connect, key_value_bucket, ClusterError};

const KEYS: &str = "LENS_RUN_KEYS";
const VIEWERS: &str = "LENS_RUN_VIEWERS";
/// A claim outlives any run (a run's events are kept an hour).
const CLAIM_LIFETIME: Duration = Duration::from_secs(3600);
/// A gateway's count of a run's viewers lasts this long unless renewed.
pub const VIEWERS_LIFETIME: Duration = Duration::from_secs(20);
/// How often a gateway renews its counts.
pub const VIEWERS_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct RunBoard {
    keys: kv::Store,
    viewers: kv::Store,
}

impl RunBoard {
    /// Connects to NATS at `url`; creates the buckets where they are missing.
    pub async fn open(url: &str) -> Result<RunBoard, ClusterError> {
        let jetstream = jetstream::new(connect(url).await?);
        Ok(RunBoard {
            keys: key_value_bucket(&jetstream, url, KEYS, CLAIM_LIFETIME).await?,
            viewers: key_value_bucket(&jetstream, url, VIEWERS, VIEWERS_LIFETIME).await?,
        })
    }

    /// Claims the request key `key` (hex) for run `id`; the id of the run
    /// that claimed it first, if another did.
    pub async fn claim(&self, key: &str, id: &str) -> Result<Option<String>, ClusterError> {
        let name = format!("k.{key}");
        match self.keys.create(&name, id.to_string().into()).await {
            Ok(_) => Ok(None),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let holder = self.keys.get(name).await.map_err(ClusterError::nats)?;
                Ok(holder.map(|id| String::from_utf8_lossy(&id).into_owned()))
            }
            Err(e) => Err(ClusterError::nats(e)),
        }
    }

    /// Claims `key` for run `id` in place of a run that ended.
    /// Notes run `id` (job `sequence` in the queue) as the latest waiting
    /// run of browser lane `lane`.
    pub async fn set_waiting(
        &self,
        lane: &str,
        id: &str,
        sequence: u64,
    ) -> Result<(), ClusterError> {
        self.keys
            .put(format!("w.{lane}"), format!("{id} {sequence}").into())
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// The run last noted as lane `lane`'s waiting one, and its job's
    /// sequence number.
    pub async fn waiting_in(&self, lane: &str) -> Result<Option<(String, u64)>, ClusterError> {
        let noted = self
            .keys
            .get(format!("w.{lane}"))
            .await
            .map_err(ClusterError::nats)?;
        Ok(noted.and_then(|value| {
            let text = String::from_utf8_lossy(&value).into_owned();
            let (id, sequence) = text.split_once(' ')?;
            Some((id.to_string(), sequence.parse().ok()?))
        }))
    }

    pub async fn reclaim(&self, key: &str, id: &str) -> Result<(), ClusterError> {
        self.keys
            .put(format!("k.{key}"), id.to_string().into())
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// Says how many of `gateway`'s clients watch run `id`.
    pub async fn viewing(&self, id: &str, gateway: &str, viewers: u32) -> Result<(), ClusterError> {
        self.viewers
            .put(format!("{id}.{gateway}"), viewers.to_string().into())
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// Every gateway's count of run `id`'s viewers, now and at each change.
    async fn watch_viewers(
        &self,
        id: &str,
    ) -> Result<impl Stream<Item = (String, u32)> + Send + Unpin + use<>, ClusterError> {
        super::watch_counts(&self.viewers, id).await
    }

    /// Returns once run `id` has had no viewer anywhere for `grace` (counts
    /// all zero, or lapsed with their gateway); never while NATS cannot
    /// tell (a run is not stopped for an outage).
    pub async fn until_unwatched(&self, id: &str, grace: Duration) {
        let mut counts: HashMap<String, (u32, Instant)> = HashMap::new();
        let mut unwatched_since = Instant::now();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let mut entries = None;
        loop {
            if entries.is_none() {
                entries = self.watch_viewers(id).await.ok();
            }
            tokio::select! {
                entry = async { entries.as_mut()?.next().await }, if entries.is_some() => {
                    match entry {
                        Some((gateway, viewers)) => {
                            counts.insert(gateway, (viewers, Instant::now()));
                        }
                        // The watch broke: watch again, and count from now.
                        None => {
                            entries = None;
                            unwatched_since = Instant::now();
                        }
                    }
                }
                _ = check.tick() => {}
            }
            counts.retain(|_, (_, at)| at.elapsed() < VIEWERS_LIFETIME);
            if entries.is_none() || counts.values().any(|(n, _)| *n > 0) {
                unwatched_since = Instant::now();
            } else if unwatched_since.elapsed() >= grace {
                return;
            }
        }
    }
}
