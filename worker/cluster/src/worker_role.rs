//! The `worker` role: owns one device, takes explanations one at a time
//! from the job queue that every worker shares, and publishes each run's
//! events on the run's JetStream subject, where any gateway relays them.
//!
//! A job is acknowledged only after its explanation is stored and Finished
//! published. A worker that dies stops confirming its job, and JetStream
//! hands the job to another worker. That worker first reads what the run's
//! viewers already have and the results of the windows the first worker
//! computed (published after each batch). It computes only the windows
//! after those, in the batches an uninterrupted run makes, and sends only
//! what was not sent (Moved first): the map depends only on the request and
//! its seed, so the stored explanation is the one an uninterrupted run
//! stores.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lens_proto::v1::{
    explain_event::Event, ExplainEvent, FaithfulnessResult, Moved, Started, Tile,
};
use prost::Message;
use tokio::sync::mpsc;

use crate::events::{EventLimits, RunEvents};
use crate::jobs::{JobQueue, QueuedJob, MAX_DELIVERIES};
use crate::messages::{
    AdvertisedModel, ClusterJob, CurvesJob, RunEntry, WindowBatch, WorkerModels,
};
use crate::model_board::{ModelBoard, ADVERT_EVERY};
use crate::run_board::RunBoard;
use crate::ClusterError;
use lens_engine::engine::{EngineError, Takeover, WindowResults};
use lens_engine::models::{Precision, Resize};
use lens_store::{self as store, Store};

use lens_server::estimate::model_info;
use lens_server::faithfulness;
use lens_server::metrics::{metrics, Counted};
use lens_server::registry::Registry;
use lens_server::request::{job_from_request, model_by_id, settings_from_request};
use lens_server::run_job::{event, guarded, run_job, RunInfo, RunSink};
use lens_server::speed::Speeds;
use lens_server::status::ServiceError;
use lens_server::stored::load_stored;

/// How a worker joins the cluster.
pub struct WorkerOptions {
    pub nats_url: String,
    /// Its name among the workers (in the model board and the logs).
    pub name: String,
    /// How long a job may go unconfirmed before another worker gets it:
    /// the time from a worker's death to its job running elsewhere.
    pub ack_wait: Duration,
}

pub struct WorkerRole {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    queue: JobQueue,
    events: Arc<RunEvents>,
    /// Each run's window results, batch after batch.
    windows: Arc<RunEvents>,
    board: ModelBoard,
    /// Who watches each run, as the gateways tell it.
    runs: RunBoard,
    speeds: Arc<Speeds>,
    options: WorkerOptions,
    stopping: Arc<AtomicBool>,
}

/// A run nobody has watched for this long stops after its batch, as in
/// `serve` (its creator may have closed the page before it started).
const UNWATCHED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What to do with a job once this worker is through with it.
enum Settled {
    /// Finished, failed for good or cancelled: it leaves the queue.
    Done,
    /// This worker is stopping: another one may take it now.
    GiveBack,
    /// Another worker started it and computes it another way: one that
    /// computes it the same way may take it after `ack_wait`.
    Elsewhere,
    /// NATS trouble: left unconfirmed, it comes back after `ack_wait`.
    Retry,
}

impl WorkerRole {
    /// Connects to NATS, measures the device's speed with each model and
    /// starts advertising them.
    pub async fn start(
        registry: Registry,
        store: Arc<dyn Store>,
        options: WorkerOptions,
    ) -> Result<WorkerRole, ClusterError> {
        let url = &options.nats_url;
        let queue = JobQueue::open(url, options.ack_wait).await?;
        let events = Arc::new(RunEvents::open(url, EventLimits::default()).await?);
        let windows = Arc::new(RunEvents::open_windows(url, EventLimits::default()).await?);
        let board = ModelBoard::open(url).await?;
        let runs = RunBoard::open(url).await?;
        let registry = Arc::new(registry);
        let speeds = Arc::<Speeds>::default();
        let (calibrating, models) = (speeds.clone(), registry.clone());
        let _ = tokio::task::spawn_blocking(move || {
            for entry in &models.entries {
                let model = entry.model.lock().unwrap_or_else(|e| e.into_inner());
                let (id, batch) = (&entry.summary.id, entry.summary.default_batch);
                calibrating.calibrate(id, model.classifier.as_ref(), batch);
            }
        })
        .await;
        Ok(WorkerRole {
            registry,
            store,
            queue,
            events,
            windows,
            board,
            runs,
            speeds,
            options,
            stopping: Arc::default(),
        })
    }

    /// Renews this worker's advertisement every `ADVERT_EVERY` on a task of
    /// its own, whatever the worker is running: a worker busy with a long
    /// job still holds its models, and gateways queue requests for them.
    fn keep_advertising(&self) -> tokio::task::JoinHandle<()> {
        let (board, registry, speeds) = (
            self.board.clone(),
            self.registry.clone(),
            self.speeds.clone(),
        );
        let name = self.options.name.clone();
        tokio::spawn(async move {
            loop {
                match board
                    .advertise(&name, &advertisement(&registry, &speeds))
                    .await
                {
                    Ok(()) => metrics().advertised_now(),
                    Err(error) => {
                        metrics().queue_errors.inc();
                        tracing::warn!("cannot advertise the models: {error}");
                    }
                }
                tokio::time::sleep(ADVERT_EVERY).await;
            }
        })
    }

    /// Takes jobs until `stop` completes; a job in progress then goes back
    /// to the queue for another worker.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let stopped = Arc::new(tokio::sync::Notify::new());
        let (stopping, told) = (self.stopping.clone(), stopped.clone());
        tokio::spawn(async move {
            stop.await;
            stopping.store(true, Ordering::SeqCst);
            told.notify_waiters();
        });
        let name = self.options.name.clone();
        tracing::info!("worker {name} takes jobs from {}", self.options.nats_url);
        let advertising = self.keep_advertising();
        while !self.stopping.load(Ordering::SeqCst) {
            let next = tokio::select! {
                _ = stopped.notified() => break,
                next = self.queue.next(ADVERT_EVERY) => next,
            };
            match next {
                Ok(Some(job)) => self.take(Arc::new(job)).await,
                Ok(None) => {}
                Err(error) => {
                    metrics().queue_errors.inc();
                    tracing::warn!("cannot take jobs: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        advertising.abort();
        if let Err(error) = self.board.withdraw(&name).await {
            tracing::warn!("cannot withdraw the models: {error}");
        }
        tracing::info!("worker {name} stopped");
    }

    async fn take(&self, queued: Arc<QueuedJob>) {
        let _running = Counted::new(&metrics().jobs_running);
        // Confirms the job while it runs, so that nobody else takes it.
        let confirming = queued.clone();
        let every = self.options.ack_wait / 2;
        let keep_alive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = confirming.keep_alive().await {
                    tracing::warn!("cannot confirm a job: {error}");
                }
            }
        });
        let settled = match ClusterJob::decode(queued.payload.clone()) {
            Ok(ClusterJob {
                id,
                curves: Some(curves),
                ..
            }) => self.measure(&id, curves).await,
            Ok(job) => self.work_on(job, queued.attempt).await,
            Err(error) => {
                tracing::error!("a job that is not a ClusterJob was dropped: {error}");
                Settled::Done
            }
        };
        keep_alive.abort();
        let answered = match settled {
            Settled::Done => queued.done().await,
            Settled::GiveBack => queued.give_back_after(None).await,
            Settled::Elsewhere => queued.give_back_after(Some(self.options.ack_wait)).await,
            Settled::Retry => Ok(()),
        };
        if let Err(error) = answered {
            tracing::warn!("cannot settle a job: {error}");
        }
    }

    async fn work_on(&self, job: ClusterJob, attempt: i64) -> Settled {
        let id = job.id.clone();
        // What the run's viewers already have: a run taken over from a
        // worker that died, or one cancelled while it waited.
        let (sent, done) = match self.so_far(&id).await {
            Ok(so_far) => so_far,
            Err(error) => {
                tracing::warn!("cannot read the events of {id}: {error}");
                return Settled::Retry;
            }
        };
        if sent.ended {
            return Settled::Done;
        }
        if let Some(theirs) = self.computed_otherwise(&job, &sent) {
            // Its viewers' tiles and its stored map must come from one
            // runtime, device and precision, not a mix of two roundings.
            if attempt < MAX_DELIVERIES {
                tracing::info!(
                    "worker {} leaves {id} to a worker on {theirs}",
                    self.options.name
                );
                return Settled::Elsewhere;
            }
            let status = tonic::Status::unavailable(format!(
                "the worker computing this explanation stopped, and no worker that computes it the same way ({theirs}) took it over: ask again"
            ));
            let publisher = Publisher::start(self.events.clone(), self.windows.clone(), id);
            publisher.send(RunEntry::failure(&status));
            return match publisher.finish().await {
                true => Settled::Done,
                false => Settled::Retry,
            };
        }
        let publisher = Publisher::start(self.events.clone(), self.windows.clone(), id.clone());
        tracing::info!("worker {} runs {id} (attempt {attempt})", self.options.name);
        if attempt > 1 {
            publisher.send(RunEntry::event(event(Event::Moved(Moved {
                attempt: attempt as u32,
            }))));
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        let watching = self.watch_for_cancel(&id, cancelled.clone());
        let unwatched = Arc::new(AtomicBool::new(false));
        let counting = self.watch_for_viewers(&id, unwatched.clone(), cancelled.clone());
        let outcome = self.explain(job, sent, done, &publisher, cancelled).await;
        watching.abort();
        counting.abort();
        let settled = match outcome {
            Ok(()) => Settled::Done,
            Err(ServiceError::Engine(EngineError::Cancelled))
                if self.stopping.load(Ordering::SeqCst) =>
            {
                Settled::GiveBack
            }
            Err(ServiceError::Engine(EngineError::Cancelled))
                if unwatched.load(Ordering::SeqCst) =>
            {
                tracing::info!("{id} stopped: nobody watched it");
                let status = tonic::Status::aborted(
                    "the explanation stopped after its batch: nobody was watching it",
                );
                publisher.send(RunEntry::failure(&status));
                Settled::Done
            }
            // The gateway that cancelled it told the viewers.
            Err(ServiceError::Engine(EngineError::Cancelled)) => Settled::Done,
            Err(error) => {
                tracing::warn!("explanation {id} failed: {error}");
                publisher.send(RunEntry::failure(&error.into()));
                Settled::Done
            }
        };
        if !publisher.finish().await {
            return Settled::Retry;
        }
        if matches!(settled, Settled::Done) {
            // Only a worker taking the run over needed them.
            if let Err(error) = self.windows.forget(&id).await {
                tracing::warn!("cannot forget the window results of {id}: {error}");
            }
        }
        settled
    }

    /// What computed the run so far, when a worker started it that computes
    /// it another way than this one would (runtime, device or precision).
    fn computed_otherwise(&self, job: &ClusterJob, sent: &Sent) -> Option<String> {
        let theirs = &sent.started.as_ref()?.runtime;
        let request = job.request.as_ref()?;
        let entry = model_by_id(&self.registry, &request.model).ok()?;
        let kind = settings_from_request(request, &entry.summary)
            .ok()?
            .choice
            .kind;
        // Runs started before the runtime was recorded say nothing.
        (!theirs.is_empty() && theirs != entry.computed_by(kind)).then(|| theirs.clone())
    }

    /// What the run's viewers already have, and the results of the windows
    /// computed before (a run taken over, or one cancelled while it waited).
    async fn so_far(&self, id: &str) -> Result<(Sent, WindowResults), ClusterError> {
        let sent = Sent::from_entries(&self.events.so_far(id).await?);
        let mut done = WindowResults::default();
        for batch in self.windows.so_far(id).await? {
            let batch =
                WindowBatch::decode(batch).map_err(|e| ClusterError::Nats(e.to_string()))?;
            done.extend(batch.into());
        }
        Ok((sent, done))
    }

    /// Computes and stores the deletion and insertion curves of a stored
    /// explanation; the answer goes to subject `reply`.
    async fn measure(&self, reply: &str, curves: CurvesJob) -> Settled {
        let answer = match self.curves(curves).await {
            Ok(result) => RunEntry {
                curves: Some(result),
                ..Default::default()
            },
            Err(error) => RunEntry::failure(&error.into()),
        };
        match self.events.publish(reply, answer.encoded()).await {
            Ok(()) => Settled::Done,
            Err(error) => {
                tracing::warn!("cannot answer {reply}: {error}");
                Settled::Retry
            }
        }
    }

    async fn curves(&self, curves: CurvesJob) -> Result<FaithfulnessResult, ServiceError> {
        let removal = faithfulness::removal_of(curves.removal)?;
        let record = load_stored(&self.store, &curves.id).await?;
        let model = model_by_id(&self.registry, &record.model)?.model.clone();
        let result = tokio::task::spawn_blocking(move || {
            guarded(|| faithfulness::measure_stored(&model, &record, removal))
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        faithfulness::keep(&self.store, &curves.id, removal, &result).await?;
        Ok(result)
    }

    /// Runs the explanation on the device; its events go to `publisher`.
    async fn explain(
        &self,
        job: ClusterJob,
        sent: Sent,
        done: WindowResults,
        publisher: &Publisher,
        cancelled: Arc<AtomicBool>,
    ) -> Result<(), ServiceError> {
        let request = job
            .request
            .ok_or_else(|| ServiceError::Internal("a job without a request".into()))?;
        let entry = model_by_id(&self.registry, &request.model)?;
        let secret_hash = <[u8; 32]>::try_from(job.secret_hash.as_slice())
            .map_err(|_| ServiceError::Internal("a job without its secret's hash".into()))?;
        let info = RunInfo {
            id: job.id,
            secret_hash,
            class_names: entry.summary.class_names.clone(),
            store: self.store.clone(),
            speeds: self.speeds.clone(),
            created_unix: sent
                .started
                .as_ref()
                .map_or_else(store::now_unix, |s| s.created_unix),
        };
        // The windows the first worker reported are not computed again.
        let takeover = Takeover {
            report: true,
            done: (!done.cells.is_empty()).then(|| Arc::new(done)),
        };
        let sink = ClusterSink {
            sent,
            outgoing: publisher.outgoing.clone(),
            cancelled,
            stopping: self.stopping.clone(),
        };
        let (summary, model) = (entry.summary.clone(), entry.model.clone());
        tokio::task::spawn_blocking(move || {
            guarded(|| {
                let mut job = job_from_request(request, &summary)?;
                job.params.takeover = takeover;
                let image = job.input()?;
                let model = model.lock().unwrap_or_else(|e| e.into_inner());
                run_job(&model, &job, &image, &info, &sink)
            })
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
    }

    /// Sets `unwatched`, and stops the run, once no gateway has had a
    /// viewer of it for `UNWATCHED_GRACE`.
    fn watch_for_viewers(
        &self,
        id: &str,
        unwatched: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let (runs, id) = (self.runs.clone(), id.to_string());
        tokio::spawn(async move {
            runs.until_unwatched(&id, UNWATCHED_GRACE).await;
            unwatched.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        })
    }

    /// Sets `cancelled` when a gateway cancels the run.
    fn watch_for_cancel(
        &self,
        id: &str,
        cancelled: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let (events, id) = (self.events.clone(), id.to_string());
        tokio::spawn(async move {
            let Ok(mut entries) = events.follow(&id).await else {
                return;
            };
            while let Some(Ok(bytes)) = entries.next().await {
                if RunEntry::decode(bytes).is_ok_and(|entry| entry.cancelled) {
                    cancelled.store(true, Ordering::SeqCst);
                    return;
                }
            }
        })
    }
}

/// What a worker tells the gateways about its models.
fn advertisement(registry: &Registry, speeds: &Speeds) -> WorkerModels {
    let models = registry.entries.iter().map(|entry| {
        let summary = &entry.summary;
        AdvertisedModel {
            info: Some(model_info(summary, speeds)),
            imagenet_crop: summary.resize == Resize::ImagenetCrop,
            half_precision: summary.precision == Precision::Half,
            default_batch: summary.default_batch as u32,
            passes_per_second: speeds.network(&summary.id).unwrap_or(0.0),
            runtime: summary.runtime.name().into(),
        }
    });
    WorkerModels {
        models: models.collect(),
    }
}

/// What a run's viewers already received.
#[derive(Default)]
struct Sent {
    started: Option<Started>,
    coarse: bool,
    /// Final tiles, by (x, y, width, height).
    tiles: HashSet<(u32, u32, u32, u32)>,
    /// The other classes' maps, by class.
    class_maps: HashSet<u32>,
    /// Finished, failed or cancelled.
    ended: bool,
}

fn tile_key(tile: &Tile) -> (u32, u32, u32, u32) {
    (tile.x, tile.y, tile.width, tile.height)
}

impl Sent {
    fn from_entries(entries: &[bytes::Bytes]) -> Sent {
        let mut sent = Sent::default();
        for entry in entries
            .iter()
            .filter_map(|e| RunEntry::decode(e.clone()).ok())
        {
            sent.ended |= entry.ends_run();
            match entry.event.and_then(|e| e.event) {
                Some(Event::Started(started)) => sent.started = Some(started),
                Some(Event::Tile(tile)) if tile.coarse => sent.coarse = true,
                Some(Event::Tile(tile)) => {
                    sent.tiles.insert(tile_key(&tile));
                }
                Some(Event::ClassMap(map)) => {
                    sent.class_maps.insert(map.class_index);
                }
                _ => {}
            }
        }
        sent
    }

    fn has(&self, event: &ExplainEvent) -> bool {
        match &event.event {
            Some(Event::Started(_)) => self.started.is_some(),
            Some(Event::Tile(tile)) if tile.coarse => self.coarse,
            Some(Event::Tile(tile)) => self.tiles.contains(&tile_key(tile)),
            Some(Event::ClassMap(map)) => self.class_maps.contains(&map.class_index),
            _ => false,
        }
    }
}

/// The engine's events, minus what the viewers already have, and its
/// window results, to the publisher.
struct ClusterSink {
    sent: Sent,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    cancelled: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl RunSink for ClusterSink {
    fn publish(&self, event: ExplainEvent) -> ControlFlow<()> {
        self.wanted()?;
        if !self.sent.has(&event) {
            let _ = self
                .outgoing
                .send(Outgoing::Entry(Box::new(RunEntry::event(event))));
        }
        ControlFlow::Continue(())
    }

    /// Not when the run was cancelled (or left by every viewer), nor when
    /// this worker is stopping.
    fn wanted(&self) -> ControlFlow<()> {
        if self.cancelled.load(Ordering::SeqCst) || self.stopping.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn windows(&self, results: WindowResults) -> ControlFlow<()> {
        self.wanted()?;
        let _ = self.outgoing.send(Outgoing::Windows(results.into()));
        ControlFlow::Continue(())
    }
}

/// What a worker publishes about a run.
enum Outgoing {
    /// For the viewers (and the gateways); boxed: an entry is large.
    Entry(Box<RunEntry>),
    /// For a worker that may take the run over.
    Windows(WindowBatch),
}

/// Publishes a run's entries and window results in order, from any thread,
/// without making the engine wait for NATS.
struct Publisher {
    outgoing: mpsc::UnboundedSender<Outgoing>,
    task: tokio::task::JoinHandle<bool>,
}

impl Publisher {
    fn start(events: Arc<RunEvents>, windows: Arc<RunEvents>, id: String) -> Publisher {
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let task = tokio::spawn(async move {
            while let Some(item) = queue.recv().await {
                let published = match item {
                    Outgoing::Entry(entry) => events.publish(&id, entry.encoded()).await,
                    Outgoing::Windows(batch) => {
                        windows.publish(&id, batch.encode_to_vec().into()).await
                    }
                };
                if let Err(error) = published {
                    // Anything after a gap would mislead the viewers (or a
                    // worker taking over): stop, and let the job come back.
                    tracing::warn!("cannot publish the events of {id}: {error}");
                    return false;
                }
            }
            true
        });
        Publisher { outgoing, task }
    }

    fn send(&self, entry: RunEntry) {
        let _ = self.outgoing.send(Outgoing::Entry(Box::new(entry)));
    }

    /// Waits until everything sent is published; whether all of it was.
    async fn finish(self) -> bool {
        drop(self.outgoing);
        self.task.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(x: u32, coarse: bool) -> ExplainEvent {
        event(Event::Tile(Tile {
            x,
            width: 4,
            height: 4,
            coarse,
            ..Default::default()
        }))
    }

    fn entries(events: &[ExplainEvent]) -> Vec<bytes::Bytes> {
        events
            .iter()
            .map(|e| RunEntry::event(e.clone()).encoded())
            .collect()
    }

    #[test]
    fn a_run_taken_over_sends_only_what_its_viewers_lack() {
        let started = event(Event::Started(Started {
            created_unix: 7,
            ..Default::default()
        }));
        let sent = Sent::from_entries(&entries(&[started.clone(), tile(0, true), tile(4, false)]));
        assert!(!sent.ended);
        assert_eq!(sent.started.as_ref().unwrap().created_unix, 7);
        assert!(
            sent.has(&started),
            "Started again would clear the page's map"
        );
        assert!(sent.has(&tile(0, true)), "the coarse map was sent");
        assert!(sent.has(&tile(4, false)));
        assert!(!sent.has(&tile(8, false)), "a tile not sent yet");
        let finished = event(Event::Finished(Default::default()));
        assert!(!sent.has(&finished));

        let fresh = Sent::from_entries(&[]);
        assert!(!fresh.has(&started) && !fresh.has(&tile(0, true)));
    }

    #[test]
    fn a_finished_failed_or_cancelled_run_is_not_run_again() {
        let finished = event(Event::Finished(Default::default()));
        assert!(Sent::from_entries(&entries(&[finished])).ended);
        let failed = RunEntry::failure(&tonic::Status::internal("broken"));
        assert!(Sent::from_entries(&[failed.encoded()]).ended);
        let cancelled = RunEntry {
            cancelled: true,
            ..Default::default()
        };
        assert!(Sent::from_entries(&[cancelled.encoded()]).ended);
    }
}
