//! The job queue that many workers share: a NATS JetStream stream with
//! work-queue retention, read through one durable pull consumer that every
//! worker binds to, so each job goes to one worker at a time.
//!
//! Clients are served in turn: a browser has at most one job where the
//! workers take them (`lens.jobs.ready.<address>.<browser>`); its further
//! jobs wait under `lens.jobs.held.<address>.<browser>` and a gateway moves
//! the oldest to the end of the ready ones once the browser has none there
//! (`promote_held`), behind every classmate's first. Both stages are in the
//! one stream, so its counts per browser and per address see every job.
//! A client without a browser id (a program) goes straight to ready.
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
/// Each job on `lens.jobs.<stage>.<address>.<browser>`: the stream then
/// counts every browser's and every address's jobs waiting or running, for
/// limits shared by all gateways.
const SUBJECTS: &str = "lens.jobs.>";
/// The stage the workers take jobs from, and the one a browser's further
/// jobs wait in.
const READY: &str = "ready";
const HELD: &str = "held";
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

    fn subject(&self, stage: &str) -> String {
        format!(
            "lens.jobs.{stage}.{}.{}",
            token(&self.address),
            token(&self.browser)
        )
    }

    /// Every job of the lane, ready or held.
    fn own_subjects(&self) -> String {
        self.subject("*")
    }

    /// Every job of the lane's address, whichever browser's.
    fn address_subjects(&self) -> String {
        format!("lens.jobs.*.{}.*", token(&self.address))
    }

    fn is_browser(&self) -> bool {
        token(&self.browser) != "-"
    }

    /// The lane of subject `lens.jobs.<stage>.<address>.<browser>`.
    fn of_subject(subject: &str) -> Option<Lane> {
        let mut tokens = subject.strip_prefix("lens.jobs.")?.split('.').skip(1);
        let (address, browser) = (tokens.next()?, tokens.next()?);
        Some(Lane {
            address: address.into(),
            browser: browser.into(),
        })
    }
}

/// A browser's held job moved to the ready ones: its lane, the job and its
/// new sequence number.
pub struct Promoted {
    pub lane: Lane,
    pub payload: Bytes,
    pub sequence: u64,
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
                    // Held jobs wait where no worker takes them.
                    filter_subject: format!("lens.jobs.{READY}.>"),
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

    /// Adds a job in `lane` (held if the lane is a browser's with a job
    /// ready already); returns once JetStream has stored it, with its
    /// sequence number (for `remove`).
    pub async fn submit(&self, lane: &Lane, payload: Bytes) -> Result<u64, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        let waits = lane.is_browser() && self.counted(lane.subject(READY)).await? > 0;
        let stage = if waits { HELD } else { READY };
        publish_stored(&self.jetstream, lane.subject(stage), payload).await
    }

    /// Moves each browser's oldest held job to the end of the ready ones,
    /// where that browser has none ready. Several gateways may sweep at
    /// once: deleting the held job first decides which one moves it.
    pub async fn promote_held(&self) -> Result<Vec<Promoted>, ClusterError> {
        let held = self.counts(format!("lens.jobs.{HELD}.>")).await?;
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let ready: std::collections::HashSet<String> =
            (self.counts(format!("lens.jobs.{READY}.>")).await?)
                .into_iter()
                .filter_map(|(subject, _)| Lane::of_subject(&subject).map(|lane| lane.key()))
                .collect();
        let mut promoted = Vec::new();
        for (subject, _) in held {
            let Some(lane) = Lane::of_subject(&subject).filter(|l| !ready.contains(&l.key()))
            else {
                continue;
            };
            let Ok(oldest) = self.stream.get_next_raw_message_by_subject(&subject).await else {
                continue;
            };
            if !self
                .stream
                .delete_message(oldest.sequence)
                .await
                .unwrap_or(false)
            {
                continue;
            }
            let sequence =
                publish_stored(&self.jetstream, lane.subject(READY), oldest.payload.clone())
                    .await?;
            promoted.push(Promoted {
                lane,
                payload: oldest.payload,
                sequence,
            });
        }
        Ok(promoted)
    }

    /// Takes job `sequence` out of the queue (a run replaced while it
    /// waited), so it no longer counts; `false` when it is gone already.
    pub async fn remove(&self, sequence: u64) -> Result<bool, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        Ok(self.stream.delete_message(sequence).await.is_ok())
    }

    /// The lane's own jobs waiting or taken but not done.
    pub async fn outstanding_in(&self, lane: &Lane) -> Result<u64, ClusterError> {
        self.counted(lane.own_subjects()).await
    }

    /// The jobs of the lane's address, whichever browser's.
    pub async fn outstanding_at_address(&self, lane: &Lane) -> Result<u64, ClusterError> {
        self.counted(lane.address_subjects()).await
    }

    /// Jobs waiting or taken on the subjects `filter` matches.
    async fn counted(&self, filter: String) -> Result<u64, ClusterError> {
        let counts = self.counts(filter).await?;
        Ok(counts.iter().map(|(_, jobs)| *jobs as u64).sum())
    }

    /// Each subject `filter` matches that holds jobs, with how many.
    async fn counts(&self, filter: String) -> Result<Vec<(String, usize)>, ClusterError> {
        super::check_connected(&self.jetstream, &self.url)?;
        let mut subjects = self
            .stream
            .info_with_subjects(filter)
            .await
            .map_err(ClusterError::nats)?;
        let mut counts = Vec::new();
        while let Some(counted) = subjects.next().await {
            counts.push(counted.map_err(ClusterError::nats)?);
        }
        Ok(counts)
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
