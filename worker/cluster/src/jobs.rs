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
/// Each job on `lens.jobs.<client>`: the stream then counts every client's
/// jobs waiting or running, for a per-client limit shared by all gateways.
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

/// The subject of `client`'s jobs (one subject token, whatever the address).
fn subject_of(client: &str) -> String {
    format!("lens.jobs.{}", client.replace(['.', '*', '>', ' '], "-"))
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

    /// Adds a job of `client` (its address, or any name); returns once
    /// JetStream has stored it.
    pub async fn submit(&self, client: &str, payload: Bytes) -> Result<(), ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        publish_stored(&self.jetstream, subject_of(client), payload).await
    }

    /// `client`'s jobs waiting or taken but not done.
    pub async fn outstanding_for(&self, client: &str) -> Result<u64, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        let mut subjects = self
            .stream
            .info_with_subjects(subject_of(client))
            .await
            .map_err(ClusterError::nats)?;
        let counted = subjects
            .next()
            .await
            .transpose()
            .map_err(ClusterError::nats)?;
        Ok(counted.map_or(0, |(_, jobs)| jobs as u64))
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
