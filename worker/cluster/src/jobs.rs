//! The job queue that many workers share: a NATS JetStream stream with
//! work-queue retention, read through one durable pull consumer that every
//! worker binds to, so each job goes to one worker at a time.
//!
//! A worker acknowledges a job only when it is done (its explanation
//! stored); one that dies holding a job stops confirming it, and JetStream
//! hands the job to another worker `ack_wait` later. While a job runs its
//! worker confirms it every `ack_wait / 2` (`QueuedJob::keep_alive`).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use futures::StreamExt;

use super::{open_stream, publish_stored, ClusterError};

const STREAM: &str = "LENS_JOBS";
/// Each job on `lens.jobs.<address>.<browser>`: the stream then counts
/// every browser's and every address's jobs waiting or running, for limits
/// shared by all gateways.
const SUBJECTS: &str = "lens.jobs.>";
const CONSUMER: &str = "workers";
/// A job no worker finished after this many deliveries is dropped (a job
/// that kills every worker it reaches must not go round for ever).
pub const MAX_DELIVERIES: i64 = 5;

pub struct JobQueue {
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    /// Only where jobs are taken (`open`), not where they are submitted.
    consumer: Option<PullConsumer>,
    url: String,
}

/// Whose a job is: two subject tokens (letters, digits, `-` and `_`), the
/// address's and the browser's (`-` for a client without a browser id).
#[derive(Clone, Debug)]
pub struct Lane {
    pub address: String,
    pub browser: String,
}

/// Makes `text` one subject token.
fn token(text: &str) -> String {
    let token: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if token.is_empty() {
        "-".into()
    } else {
        token
    }
}

impl Lane {
    /// A key for the lane in a key-value bucket.
    pub fn key(&self) -> String {
        format!("{}.{}", token(&self.address), token(&self.browser))
    }

    fn subject(&self) -> String {
        format!(
            "lens.jobs.{}.{}",
            token(&self.address),
            token(&self.browser)
        )
    }

    /// Every job of the lane's address, whichever browser's.
    fn address_subjects(&self) -> String {
        format!("lens.jobs.{}.*", token(&self.address))
    }
}

/// A job taken from the queue; back in the queue after `ack_wait` unless
/// kept alive or done.
pub struct QueuedJob {
    message: jetstream::Message,
    pub payload: Bytes,
    /// 1 the first time the job is delivered, 2 after one worker lost it...
    pub attempt: i64,
}

impl JobQueue {
    /// Connects to NATS at `url` to take jobs (a worker), creating the
    /// stream and the shared consumer where they do not exist yet. The
    /// first worker's `ack_wait` stays with the consumer.
    pub async fn open(url: &str, ack_wait: Duration) -> Result<JobQueue, ClusterError> {
        let mut queue = Self::submitter(url).await?;
        let consumer = queue
            .stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    max_deliver: MAX_DELIVERIES,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ClusterError::jetstream(url, e))?;
        queue.consumer = Some(consumer);
        Ok(queue)
    }

    /// Connects to NATS at `url` only to submit and count jobs (a gateway):
    /// the workers' consumer, with their `ack_wait`, is theirs to make.
    pub async fn submitter(url: &str) -> Result<JobQueue, ClusterError> {
        let config = stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECTS.into()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_age: Duration::from_secs(24 * 3600),
            ..Default::default()
        };
        let (jetstream, stream) = open_stream(url, config).await?;
        Ok(JobQueue {
            jetstream,
            stream,
            consumer: None,
            url: url.to_string(),
        })
    }

    /// Adds a job in `lane`; returns once JetStream has stored it, with
    /// its sequence number (for `remove`).
    pub async fn submit(&self, lane: &Lane, payload: Bytes) -> Result<u64, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        publish_stored(&self.jetstream, lane.subject(), payload).await
    }

    /// Takes job `sequence` out of the queue (a run replaced while it
    /// waited), so it no longer counts; `false` when it is gone already.
    pub async fn remove(&self, sequence: u64) -> Result<bool, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        Ok(self.stream.delete_message(sequence).await.is_ok())
    }

    /// The lane's own jobs waiting or taken but not done.
    pub async fn outstanding_in(&self, lane: &Lane) -> Result<u64, ClusterError> {
        self.counted(lane.subject()).await
    }

    /// The jobs of the lane's address, whichever browser's.
    pub async fn outstanding_at_address(&self, lane: &Lane) -> Result<u64, ClusterError> {
        self.counted(lane.address_subjects()).await
    }

    /// Jobs waiting or taken on the subjects `filter` matches.
    async fn counted(&self, filter: String) -> Result<u64, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        let mut subjects = self
            .stream
            .info_with_subjects(filter)
            .await
            .map_err(ClusterError::nats)?;
        let mut jobs = 0;
        while let Some(counted) = subjects.next().await {
            jobs += counted.map_err(ClusterError::nats)?.1 as u64;
        }
        Ok(jobs)
    }

    /// The next job, waiting at most `wait` for one.
    pub async fn next(&self, wait: Duration) -> Result<Option<QueuedJob>, ClusterError> {
        let consumer = self
            .consumer
            .as_ref()
            .ok_or_else(|| ClusterError::Nats("a submitter takes no jobs".into()))?;
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(ClusterError::nats)?;
        let Some(message) = batch.next().await else {
            return Ok(None);
        };
        let message = message.map_err(ClusterError::nats)?;
        let attempt = message.info().map_err(ClusterError::nats)?.delivered;
        Ok(Some(QueuedJob {
            payload: message.payload.clone(),
            message,
            attempt,
        }))
    }

    /// Jobs waiting or taken but not done.
    pub async fn outstanding(&self) -> Result<u64, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        let mut stream = self.stream.clone();
        Ok(stream
            .info()
            .await
            .map_err(ClusterError::nats)?
            .state
            .messages)
    }
}

impl QueuedJob {
    /// Tells JetStream the job is still being worked on (restarts its
    /// `ack_wait`).
    pub async fn keep_alive(&self) -> Result<(), ClusterError> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(ClusterError::nats)
    }

    /// The job is finished: it leaves the queue for good.
    pub async fn done(&self) -> Result<(), ClusterError> {
        self.message.double_ack().await.map_err(ClusterError::nats)
    }

    /// This worker gives the job back to the queue, for another worker after
    /// `delay` (none: at once, as when this one is stopping).
    pub async fn give_back_after(&self, delay: Option<Duration>) -> Result<(), ClusterError> {
        self.message
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(ClusterError::nats)
    }
}
