//! Each run's events on its own JetStream subject (`lens.events.<run id>`),
//! and beside them its window results (`lens.windows.<run id>`),
//! kept while the run may still be watched: a viewer who opens a link on any
//! process reads the run's events from the first and then follows the new
//! ones as the worker publishes them. Bounded per run (events kept) and in
//! all (bytes, age); the oldest go first.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::{
    self, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{open_stream, publish_stored, ClusterError};

/// How long a follower of a run's events tries to follow again after its
/// consumer broke (NATS restarting takes a few seconds).
const FOLLOW_AGAIN_FOR: Duration = Duration::from_secs(30);

/// How long, how many and how much is kept.
#[derive(Clone, Copy, Debug)]
pub struct EventLimits {
    /// A run's events are kept this long after they were published.
    pub max_age: Duration,
    /// Events kept per run (a run publishes a few hundred tiles).
    pub per_run: i64,
    /// All runs' events together.
    pub max_bytes: i64,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_age: Duration::from_secs(3600),
            per_run: 20_000,
            max_bytes: 1 << 30,
        }
    }
}

#[derive(Clone)]
pub struct RunEvents {
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    url: String,
    /// `lens.events` or `lens.windows`: a run's subject is `<prefix>.<run>`.
    prefix: &'static str,
}

impl RunEvents {
    /// Connects to NATS at `url` and creates the events stream where it is
    /// missing: what viewers see (`LENS_EVENTS`).
    pub async fn open(url: &str, limits: EventLimits) -> Result<RunEvents, ClusterError> {
        Self::open_on(url, "LENS_EVENTS", "lens.events", limits).await
    }

    /// The same for the window results a worker reports after each batch,
    /// for a worker that takes the run over (`LENS_WINDOWS`): on subjects of
    /// their own, so that viewers never receive them.
    pub async fn open_windows(url: &str, limits: EventLimits) -> Result<RunEvents, ClusterError> {
        Self::open_on(url, "LENS_WINDOWS", "lens.windows", limits).await
    }

    async fn open_on(
        url: &str,
        name: &str,
        prefix: &'static str,
        limits: EventLimits,
    ) -> Result<RunEvents, ClusterError> {
        let config = stream::Config {
            name: name.into(),
            subjects: vec![format!("{prefix}.*")],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            max_age: limits.max_age,
            max_messages_per_subject: limits.per_run,
            max_bytes: limits.max_bytes,
            discard: DiscardPolicy::Old,
            ..Default::default()
        };
        let (jetstream, stream) = open_stream(url, config).await?;
        Ok(RunEvents {
            jetstream,
            stream,
            url: url.to_string(),
            prefix,
        })
    }

    fn subject(&self, run: &str) -> String {
        format!("{}.{run}", self.prefix)
    }

    /// Forgets `run`'s entries (a finished run's window results).
    pub async fn forget(&self, run: &str) -> Result<(), ClusterError> {
        self.stream
            .purge()
            .filter(self.subject(run))
            .await
            .map_err(ClusterError::nats)?;
        Ok(())
    }

    /// Publishes one event of `run`; returns once JetStream stored it.
    pub async fn publish(&self, run: &str, event: Bytes) -> Result<(), ClusterError> {
        publish_stored(&self.jetstream, self.subject(run), event).await?;
        Ok(())
    }

    /// `run`'s events from the first one kept, then each new one as it is
    /// published; the stream never ends by itself (the reader stops at the
    /// run's last event). A broken consumer (NATS restarted, a lost
    /// connection) is made again from the event after the last one read,
    /// for up to `FOLLOW_AGAIN_FOR`, before the stream ends with the error.
    pub async fn follow(
        &self,
        run: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ClusterError>>, ClusterError> {
        let messages = self.messages(run, DeliverPolicy::All).await?;
        let state = (self.clone(), run.to_string(), messages, 0u64);
        Ok(futures::stream::unfold(Some(state), |state| async move {
            let (events, run, mut messages, mut last) = state?;
            let mut broken_since: Option<std::time::Instant> = None;
            loop {
                let error = match messages.next().await {
                    Some(Ok(message)) => {
                        if let Ok(info) = message.info() {
                            last = info.stream_sequence;
                        }
                        let payload = message.payload.clone();
                        return Some((Ok(payload), Some((events, run, messages, last))));
                    }
                    Some(Err(error)) => ClusterError::nats(error),
                    None => ClusterError::Nats("the events' consumer ended".into()),
                };
                let broken_for = broken_since.get_or_insert_with(std::time::Instant::now);
                if broken_for.elapsed() >= FOLLOW_AGAIN_FOR {
                    return Some((Err(error), None));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let from = DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                };
                if let Ok(again) = events.messages(&run, from).await {
                    messages = again;
                }
            }
        })
        .boxed())
    }

    /// The first event of `run` still kept; `None` for a run nobody started
    /// (or one whose events have all expired).
    pub async fn first(&self, run: &str) -> Result<Option<Bytes>, ClusterError> {
        self.check_connected()?;
        match self
            .stream
            .get_first_raw_message_by_subject(self.subject(run), 0)
            .await
        {
            Ok(message) => Ok(Some(message.payload)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ClusterError::nats(e)),
        }
    }

    /// Every event of `run` kept now, in order (for a worker that takes
    /// over a run: what its viewers already have).
    pub async fn so_far(&self, run: &str) -> Result<Vec<Bytes>, ClusterError> {
        self.check_connected()?;
        let last = match self
            .stream
            .get_last_raw_message_by_subject(&self.subject(run))
            .await
        {
            Ok(message) => message.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(Vec::new()),
            Err(e) => return Err(ClusterError::nats(e)),
        };
        let mut messages = self.messages(run, DeliverPolicy::All).await?;
        let mut events = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(ClusterError::nats)?;
            let sequence = message.info().map_err(ClusterError::nats)?.stream_sequence;
            events.push(message.payload.clone());
            if sequence >= last {
                break;
            }
        }
        Ok(events)
    }

    /// An error at once while the connection is down (requests would wait
    /// for their timeout first).
    pub fn check_connected(&self) -> Result<(), ClusterError> {
        super::check_connected(&self.jetstream, &self.url)
    }

    async fn messages(
        &self,
        run: &str,
        deliver_policy: DeliverPolicy,
    ) -> Result<pull::Ordered, ClusterError> {
        self.check_connected()?;
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subject(run),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(ClusterError::nats)?;
        consumer.messages().await.map_err(ClusterError::nats)
    }
}
