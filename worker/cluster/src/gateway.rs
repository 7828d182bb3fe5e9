//! The `gateway` role: serves the page and the API like `serve`, but holds
//! no device. It checks and admits a request, answers it from the shared
//! store when it can, and otherwise queues it for the workers (NATS
//! JetStream) and relays the run's events from the run's subject. Any
//! gateway relays any run, so a link opens through every gateway, live or
//! after the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use lens_proto::v1::{
    explain_event::Event, ClassOpened, CloseClassRequest, CloseClassResponse, ExplainEvent,
    ExplainRequest, FaithfulnessRequest, FaithfulnessResult, FollowClassRequest,
    ListModelsResponse, ModelInfo, Queued, TeachRequest, TeachResponse, WindowInspection,
};
use prost::Message;
use tonic::{Response, Status};

use crate::events::{EventLimits, RunEvents};
use crate::jobs::{JobQueue, Lane};
use crate::messages::{AdvertisedModel, ClusterJob, CurvesJob, RunEntry};
use crate::model_board::ModelBoard;
use crate::quotas::{Place, Quotas};
use crate::run_board::RunBoard;
use crate::ClusterError;
use lens_engine::engine::Removal;
use lens_engine::models::{Precision, Resize, Runtime, DIGITS};
use lens_store::{self as store, Record, Store};

use crate::gateway_classrooms::GatewayClassrooms;
use crate::run_viewers::RunViewers;
use lens_server::admission::Limits;
use lens_server::classrooms::{ClassroomStream, Classrooms};
use lens_server::client::{address_hex, Client};
use lens_server::lens::{Backend, EstimateBasis, Lens, Run};
use lens_server::limits::{self, Limit};
use lens_server::metrics;
use lens_server::presets::Presets;
use lens_server::registry::ModelSummary;
use lens_server::request::Job;
use lens_server::run_job::event;
use lens_server::speed::Speeds;
use lens_server::status::{ServiceError, CANCELLED_BY_CREATOR, REPLACED_BY_NEWER};
use lens_server::stored::EventStream;
use lens_server::Shutdown;

/// How long a gateway trusts the list of models the workers hold.
const MODELS_FRESH_FOR: Duration = Duration::from_secs(2);

/// The service of the `gateway` role.
pub type Gateway = Lens<Cluster>;

/// A gateway's backend: the workers behind NATS.
pub struct Cluster {
    queue: JobQueue,
    events: RunEvents,
    board: ModelBoard,
    presets: Presets,
    limits: Limits,
    classrooms: Arc<Classrooms>,
    /// The classrooms, shared with the other gateways.
    gateway_classrooms: Arc<GatewayClassrooms>,
    /// Which run identical requests join, cluster-wide.
    runs: RunBoard,
    /// Who watches each run through this gateway, told to the workers.
    viewers: Arc<RunViewers>,
    /// Live streams per client and viewers per run, counted cluster-wide.
    quotas: Arc<Quotas>,
    shutdown: Shutdown,
    /// The workers' models as last read, and when.
    models: Mutex<Option<(Instant, Arc<Vec<AdvertisedModel>>)>>,
    /// Every model a worker has advertised since this gateway started: a
    /// stored explanation is answered from them while no worker is live.
    known: Mutex<HashMap<String, AdvertisedModel>>,
}

/// A gateway connected to NATS at `nats_url`; the presets come from `data`.
pub async fn start(
    nats_url: &str,
    store: Arc<dyn Store>,
    data: &std::path::Path,
    limits: Limits,
) -> Result<Gateway, ClusterError> {
    let classrooms = Arc::new(Classrooms::new(limits.class_idle));
    let runs = RunBoard::open(nats_url).await?;
    let name = store::new_id();
    let quotas = Quotas::open(nats_url, name.clone()).await?;
    count_jobs(JobQueue::submitter(nats_url).await?);
    promote_held_jobs(JobQueue::submitter(nats_url).await?, runs.clone());
    let cluster = Cluster {
        viewers: RunViewers::start(runs.clone(), name.clone()),
        runs,
        gateway_classrooms: GatewayClassrooms::open(
            nats_url,
            classrooms.clone(),
            quotas.clone(),
            name,
        )
        .await?,
        quotas,
        queue: JobQueue::submitter(nats_url).await?,
        events: RunEvents::open(nats_url, EventLimits::default()).await?,
        board: ModelBoard::open(nats_url).await?,
        presets: Presets::load(data),
        limits,
        classrooms,
        shutdown: Shutdown::default(),
        models: Mutex::default(),
        known: Mutex::default(),
    };
    Ok(Lens::over(cluster, store, limits.trust_forwarded_for))
}

impl Cluster {
    /// The models the live workers hold (one entry per model id); while
    /// NATS cannot be reached, those last advertised (the page keeps its
    /// models through an outage; a new run is refused further on).
    async fn models(&self) -> Result<Arc<Vec<AdvertisedModel>>, ServiceError> {
        if let Some((read, models)) = &*self.models.lock().unwrap_or_else(|e| e.into_inner()) {
            if read.elapsed() < MODELS_FRESH_FOR {
                return Ok(models.clone());
            }
        }
        let workers = match self.board.current().await {
            Ok(workers) => workers,
            Err(error) => {
                let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
                if known.is_empty() {
                    return Err(error.into());
                }
                let mut models: Vec<AdvertisedModel> = known.values().cloned().collect();
                models.sort_by(|a, b| id_of(a).cmp(id_of(b)));
                return Ok(Arc::new(models));
            }
        };
        let mut models: Vec<AdvertisedModel> = Vec::new();
        for worker in workers {
            for model in worker.models {
                if !models.iter().any(|m| id_of(m) == id_of(&model)) {
                    models.push(model);
                }
            }
        }
        models.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        if !models.is_empty() {
            metrics::metrics().advertised_now();
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for model in &models {
            known.insert(id_of(model).to_string(), model.clone());
        }
        drop(known);
        let models = Arc::new(models);
        *self.models.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), models.clone()));
        Ok(models)
    }

    /// The model a request names (empty: the digits), as a worker holds it.
    async fn model(&self, id: &str) -> Result<(ModelSummary, AdvertisedModel), ServiceError> {
        let id = if id.is_empty() { DIGITS } else { id };
        let models = self.models().await?;
        if models.is_empty() {
            return Err(ServiceError::NoWorkers);
        }
        let Some(model) = models.iter().find(|m| id_of(m) == id) else {
            let ids: Vec<_> = models.iter().map(id_of).collect();
            return Err(ServiceError::UnknownModel {
                id: id.to_string(),
                available: ids.join(", "),
            });
        };
        Ok((summary_of(model), model.clone()))
    }

    /// The model a request names as the live workers hold it or, while none
    /// does (or NATS is out of reach), as a worker last advertised it:
    /// enough to key a request and answer it from the store.
    async fn known_model(&self, id: &str) -> Result<ModelSummary, ServiceError> {
        let live = match self.model(id).await {
            Ok((summary, _)) => return Ok(summary),
            Err(error) => error,
        };
        let wanted = if id.is_empty() { DIGITS } else { id };
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(wanted).map(summary_of).ok_or(live)
    }

    /// Admission across all gateways: the queue itself counts the jobs
    /// waiting or running, in all, per client and per address. The
    /// client's lane in the queue and the other clients' jobs ahead.
    async fn admit(&self, client: &Client) -> Result<(Lane, usize), ServiceError> {
        let lane = lane_of(client);
        let waiting = self.queue.outstanding().await? as usize;
        if waiting >= self.limits.jobs {
            return Err(ServiceError::Busy { jobs: waiting });
        }
        let own = self.queue.outstanding_in(&lane).await? as usize;
        if own >= self.limits.per_client {
            let limit = self.limits.per_client;
            return Err(ServiceError::TooManyRuns { limit });
        }
        if self.queue.outstanding_at_address(&lane).await? as usize >= self.limits.per_address {
            let limit = self.limits.per_address;
            return Err(ServiceError::TooManyRunsFromNetwork { limit });
        }
        Ok((lane, waiting - own_counted_apart(client, own)))
    }

    /// The jobs waiting or running that are not `client`'s own.
    async fn others_outstanding(&self, client: &Client) -> Result<usize, ServiceError> {
        let all = self.queue.outstanding().await? as usize;
        let own = self.queue.outstanding_in(&lane_of(client)).await? as usize;
        Ok(all.saturating_sub(own_counted_apart(client, own)))
    }

    /// Ends the browser's run still waiting if only its creator watches it
    /// (a new stroke replaces the last one, as on `serve`), and takes its
    /// job out of the queue so it no longer counts. The newer run queues
    /// at the end: the cluster's queue keeps JetStream's order.
    async fn replace_waiting(&self, lane: &Lane) -> Result<(), ServiceError> {
        let Some((id, sequence)) = self.runs.waiting_in(&lane.key()).await? else {
            return Ok(());
        };
        let entries = self.events.so_far(&id).await?;
        let only_queued = entries.iter().all(|e| {
            RunEntry::decode(e.clone()).is_ok_and(|entry| {
                !entry.ends_run()
                    && matches!(entry.event.and_then(|e| e.event), Some(Event::Queued(_)))
            })
        });
        let viewers = Limit::viewers(self.limits.viewers_per_run, &id);
        if entries.is_empty() || !only_queued || self.quotas.taken(viewers.key()).await? > 1 {
            return Ok(());
        }
        let replaced = RunEntry::cancelled(REPLACED_BY_NEWER);
        self.events.publish(&id, replaced.encoded()).await?;
        // A worker that took it meanwhile sees it cancelled and stops.
        self.queue.remove(sequence).await?;
        Ok(())
    }

    /// Whether run `id` has begun and not yet ended (its events say).
    async fn is_running(&self, id: &str) -> Result<bool, ServiceError> {
        let entries = self.events.so_far(id).await?;
        let ended = entries
            .iter()
            .any(|e| RunEntry::decode(e.clone()).is_ok_and(|entry| entry.ends_run()));
        Ok(!entries.is_empty() && !ended)
    }

    /// A place among the client's live streams and the run's viewers,
    /// both counted over every gateway; the creator of a run takes only the
    /// run's first place.
    async fn places(
        &self,
        client: &Client,
        run: &str,
        creator: bool,
    ) -> Result<(Vec<Place>, Place), ServiceError> {
        let watches = match creator {
            true => Vec::new(),
            false => limits::take_watch(&self.quotas, client, &self.limits).await?,
        };
        let limit = Limit::viewers(self.limits.viewers_per_run, run);
        let refusal = match limits::take(&self.quotas, limit).await {
            Ok(viewer) => return Ok((watches, viewer)),
            Err(refusal) => refusal,
        };
        for watch in watches {
            watch.release().await;
        }
        Err(refusal)
    }

    async fn relay(
        &self,
        id: &str,
        hold: impl Send + 'static,
    ) -> Result<EventStream, ServiceError> {
        let entries = self.events.follow(id).await?;
        let viewer = metrics::Counted::new(&metrics::metrics().live_viewers);
        Ok(Box::pin(relayed(
            entries,
            self.shutdown.clone(),
            (hold, viewer),
        )))
    }
}

/// The client's own jobs that places and estimates leave out: a browser's;
/// none for a client without a browser id (it may be several programs).
fn own_counted_apart(client: &Client, own: usize) -> usize {
    if client.browser.is_some() {
        own
    } else {
        0
    }
}

/// Where `client`'s jobs queue: its address (hex) and its browser.
fn lane_of(client: &Client) -> Lane {
    let address = client.address.map_or("unknown".into(), address_hex);
    Lane {
        address,
        browser: client.browser.clone().unwrap_or_else(|| "-".into()),
    }
}

/// Moves browsers' held jobs to the workers' queue in turn, every 200 ms
/// (`JobQueue::promote_held`), keeping the note of each browser's waiting
/// run on the job's new place so a newer run can still replace it.
fn promote_held_jobs(queue: JobQueue, runs: RunBoard) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            every.tick().await;
            let Ok(promoted) = queue.promote_held().await else {
                continue;
            };
            for moved in promoted {
                let Ok(job) = ClusterJob::decode(moved.payload) else {
                    continue;
                };
                let key = moved.lane.key();
                let noted = runs.waiting_in(&key).await.ok().flatten();
                if noted.is_some_and(|(id, _)| id == job.id) {
                    let _ = runs.set_waiting(&key, &job.id, moved.sequence).await;
                }
            }
        }
    });
}

/// Keeps the metric of jobs in the cluster's queue (waiting or on a
/// worker) up to date, every 5 s.
fn count_jobs(queue: JobQueue) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            if let Ok(jobs) = queue.outstanding().await {
                metrics::metrics().jobs_waiting.set(jobs as i64);
            }
        }
    });
}

fn id_of(model: &AdvertisedModel) -> &str {
    model.info.as_ref().map_or("", |i| i.id.as_str())
}

/// What checking and keying a request needs, from a worker's advertisement.
fn summary_of(model: &AdvertisedModel) -> ModelSummary {
    let info = model.info.clone().unwrap_or_default();
    ModelSummary {
        id: info.id,
        name: info.name,
        shape: lens_engine::engine::InputShape {
            channels: info.channels as usize,
            height: info.height as usize,
            width: info.width as usize,
        },
        class_names: info.class_names,
        resize: if model.imagenet_crop {
            Resize::ImagenetCrop
        } else {
            Resize::MnistDigit
        },
        conditional_sampler: info.conditional_sampler,
        conditional_windows: info.conditional_windows,
        marginal_sampler: info.marginal_sampler,
        default_batch: model.default_batch as usize,
        precision: if model.half_precision {
            Precision::Half
        } else {
            Precision::Full
        },
        runtime: Runtime::from_name(&model.runtime).unwrap_or(Runtime::Torch),
        runtime_version: info.runtime,
        gradients: info.gradients_unavailable.is_empty(),
        device: info.device,
        agreement: None,
        defaults: None,
    }
}

/// A run's entries as its viewers' events: the stream ends after
/// Finished, with the run's failure, or when this gateway stops (the viewer
/// reconnects through another).
fn relayed(
    entries: impl Stream<Item = Result<bytes::Bytes, ClusterError>> + Send + 'static,
    shutdown: Shutdown,
    hold: impl Send + 'static,
) -> impl Stream<Item = Result<ExplainEvent, Status>> + Send + 'static {
    let state = (Box::pin(entries), shutdown, hold);
    futures::stream::unfold(Some(state), |state| async move {
        let (mut entries, shutdown, hold) = state?;
        loop {
            let next = tokio::select! {
                next = entries.next() => next,
                _ = shutdown.stopped() => {
                    return Some((Err(ServiceError::ShuttingDown.into()), None));
                }
            };
            let bytes = match next {
                None => return None,
                Some(Err(error)) => return Some((Err(ServiceError::from(error).into()), None)),
                Some(Ok(bytes)) => bytes,
            };
            let Ok(entry) = RunEntry::decode(bytes) else {
                tracing::error!("an entry that is not a RunEntry was skipped");
                continue;
            };
            if let Some(failure) = entry.failure {
                return Some((Err(failure.status()), None));
            }
            let Some(event) = entry.event else {
                continue;
            };
            let last = matches!(event.event, Some(Event::Finished(_)));
            let state = (!last).then_some((entries, shutdown, hold));
            return Some((Ok(event), state));
        }
    })
}

impl Backend for Cluster {
    const LIVE_BEFORE_STORE: bool = false;
    const INSPECTS_WINDOWS: bool = false;

    fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    fn classrooms(&self) -> Arc<Classrooms> {
        self.classrooms.clone()
    }

    fn presets(&self) -> &Presets {
        &self.presets
    }

    async fn summary(&self, model: &str) -> Result<ModelSummary, ServiceError> {
        self.known_model(model).await
    }

    async fn list_models(&self) -> Result<ListModelsResponse, ServiceError> {
        let models: Vec<ModelInfo> = self
            .models()
            .await?
            .iter()
            .filter_map(|m| m.info.clone())
            .collect();
        Ok(ListModelsResponse {
            models,
            broken: Vec::new(),
        })
    }

    async fn estimate_basis(
        &self,
        model: &str,
        client: &Client,
    ) -> Result<EstimateBasis, ServiceError> {
        let (summary, advertised) = self.model(model).await?;
        let speeds = Speeds::default();
        if advertised.passes_per_second > 0.0 {
            speeds.set_network(&summary.id, advertised.passes_per_second);
        }
        Ok(EstimateBasis {
            model: summary,
            speeds: Arc::new(speeds),
            // Other clients' jobs only; an estimate while NATS is out of
            // reach counts no queue.
            jobs_ahead: self.others_outstanding(client).await.unwrap_or(0),
        })
    }

    async fn run(
        &self,
        job: Job,
        asked: ExplainRequest,
        client: Client,
        secret_hash: [u8; 32],
    ) -> Result<Run, ServiceError> {
        // A new run needs a live worker for the model (a busy one counts:
        // the job waits in the queue).
        self.model(&asked.model).await?;
        // An identical request in progress anywhere is joined.
        let id = store::new_id();
        let key = store::hex(&job.key);
        if let Some(running) = self.runs.claim(&key, &id).await? {
            if self.is_running(&running).await? {
                let places = self.places(&client, &running, false).await?;
                let watching = self.viewers.watching(&running);
                return Ok(Run::Joined(self.relay(&running, (places, watching)).await?));
            }
            self.runs.reclaim(&key, &id).await?;
        }
        if client.browser.is_some() {
            self.replace_waiting(&lane_of(&client)).await?;
        }
        let (lane, waiting) = self.admit(&client).await?;
        let places = self.places(&client, &id, true).await?;
        // The run's first entry, before the job exists: a worker that takes
        // the job finds the run's place in the order, and a cancel on any
        // gateway finds the creator's hash.
        let queued = RunEntry {
            event: Some(event(Event::Queued(Queued {
                ahead: waiting as u32,
                id: id.clone(),
                owner_secret: String::new(),
            }))),
            secret_hash: secret_hash.to_vec(),
            ..Default::default()
        };
        self.events.publish(&id, queued.encoded()).await?;
        let job = ClusterJob {
            id: id.clone(),
            secret_hash: secret_hash.to_vec(),
            request: Some(ExplainRequest {
                image: job.upload,
                ..asked
            }),
            curves: None,
        };
        let sequence = self.queue.submit(&lane, job.encode_to_vec().into()).await?;
        if client.browser.is_some() {
            self.runs.set_waiting(&lane.key(), &id, sequence).await?;
        }
        let watching = self.viewers.watching(&id);
        Ok(Run::Created(self.relay(&id, (places, watching)).await?))
    }

    async fn watch_live(
        &self,
        id: &str,
        client: Client,
    ) -> Result<Option<EventStream>, ServiceError> {
        if self.events.first(id).await?.is_none() {
            return Ok(None);
        }
        let places = self.places(&client, id, false).await?;
        let watching = self.viewers.watching(id);
        Ok(Some(self.relay(id, (places, watching)).await?))
    }

    async fn owner_of(&self, id: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        let entries: Vec<RunEntry> = (self.events.so_far(id).await?)
            .into_iter()
            .filter_map(|e| RunEntry::decode(e).ok())
            .collect();
        if entries.iter().any(RunEntry::ends_run) {
            return Ok(None);
        }
        Ok(entries.into_iter().next().map(|first| first.secret_hash))
    }

    async fn cancel(&self, id: &str) -> Result<(), ServiceError> {
        // The worker stops at this entry; the viewers hear it as in `serve`.
        let cancelled = RunEntry::cancelled(CANCELLED_BY_CREATOR);
        self.events.publish(id, cancelled.encoded()).await?;
        Ok(())
    }

    async fn curves(
        &self,
        client: Client,
        request: FaithfulnessRequest,
        _removal: Removal,
        record: Record,
    ) -> Result<FaithfulnessResult, Status> {
        self.model(&record.model).await?;
        let (lane, _) = self.admit(&client).await?;
        // A worker computes and stores the curves and answers on a subject
        // of its own.
        let reply = store::new_id();
        let mut answers = self.events.follow(&reply).await?;
        let job = ClusterJob {
            id: reply,
            curves: Some(CurvesJob {
                id: request.id,
                removal: request.removal,
            }),
            ..Default::default()
        };
        self.queue.submit(&lane, job.encode_to_vec().into()).await?;
        loop {
            let next = tokio::select! {
                next = answers.next() => next,
                _ = self.shutdown.stopped() => return Err(ServiceError::ShuttingDown.into()),
            };
            let bytes = match next {
                Some(bytes) => bytes?,
                None => return Err(ServiceError::Internal("no answer".into()).into()),
            };
            let entry = RunEntry::decode(bytes)
                .map_err(|e| ServiceError::Internal(format!("an unreadable answer: {e}")))?;
            if let Some(failure) = entry.failure {
                return Err(failure.status());
            }
            if let Some(result) = entry.curves {
                return Ok(result);
            }
        }
    }

    async fn inspect(
        &self,
        _client: Client,
        _record: Record,
        _at: (u32, u32),
    ) -> Result<WindowInspection, ServiceError> {
        Err(ServiceError::NotOnGateway)
    }

    async fn open_class(&self, client: Client) -> Result<Response<ClassOpened>, Status> {
        self.gateway_classrooms.open_class(client).await
    }

    async fn teach(
        &self,
        request: TeachRequest,
        client: Client,
    ) -> Result<Response<TeachResponse>, Status> {
        self.gateway_classrooms.teach(request, client).await
    }

    async fn follow_class(
        &self,
        request: FollowClassRequest,
        client: Client,
    ) -> Result<Response<ClassroomStream>, Status> {
        self.gateway_classrooms.follow_class(request, client).await
    }

    async fn close_class(
        &self,
        request: CloseClassRequest,
        client: Client,
    ) -> Result<Response<CloseClassResponse>, Status> {
        self.gateway_classrooms.close_class(request, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lens_proto::v1::{Finished, Started, Tile};

    fn entry(event: Event) -> Result<bytes::Bytes, ClusterError> {
        Ok(RunEntry::event(super::event(event)).encoded())
    }

    async fn relay_all(
        entries: Vec<Result<bytes::Bytes, ClusterError>>,
    ) -> Vec<Result<ExplainEvent, Status>> {
        let stream = relayed(futures::stream::iter(entries), Shutdown::default(), ());
        stream.collect().await
    }

    #[tokio::test]
    async fn the_stream_ends_after_finished() {
        let events = relay_all(vec![
            entry(Event::Queued(Queued::default())),
            entry(Event::Started(Started::default())),
            entry(Event::Tile(Tile::default())),
            entry(Event::Finished(Finished::default())),
            entry(Event::Tile(Tile::default())),
        ])
        .await;
        assert_eq!(events.len(), 4, "nothing after Finished");
        let events: Vec<_> = events.into_iter().map(|e| e.unwrap().event).collect();
        assert!(matches!(&events[0], Some(Event::Queued(_))));
        assert!(matches!(&events[3], Some(Event::Finished(_))));
    }

    #[tokio::test]
    async fn a_failure_or_a_lost_connection_ends_the_stream_with_its_status() {
        let failed = RunEntry::failure(&Status::resource_exhausted("out of memory"));
        let events = relay_all(vec![
            entry(Event::Started(Started::default())),
            Ok(failed.encoded()),
            entry(Event::Tile(Tile::default())),
        ])
        .await;
        assert_eq!(events.len(), 2);
        let status = events[1].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "out of memory");

        let lost = ClusterError::Nats("connection lost".into());
        let events = relay_all(vec![Err(lost)]).await;
        let status = events[0].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }

    #[test]
    fn a_request_is_checked_against_what_the_worker_advertised() {
        let advertised = AdvertisedModel {
            info: Some(ModelInfo {
                id: "photos".into(),
                channels: 3,
                width: 224,
                height: 224,
                class_names: vec!["a".into(); 1000],
                runtime: "ONNX Runtime 1.32.0".into(),
                gradients_unavailable: "an ONNX file".into(),
                ..Default::default()
            }),
            imagenet_crop: true,
            half_precision: true,
            default_batch: 256,
            passes_per_second: 100.0,
            runtime: "onnx".into(),
        };
        let summary = summary_of(&advertised);
        assert_eq!(summary.resize, Resize::ImagenetCrop);
        assert_eq!(
            summary.precision,
            Precision::Half,
            "half precision keys differently"
        );
        assert_eq!((summary.shape.width, summary.shape.channels), (224, 3));
        assert_eq!(summary.default_batch, 256);
        assert_eq!(
            summary.runtime,
            Runtime::Onnx,
            "ONNX Runtime keys differently"
        );
        assert_eq!(summary.runtime_version, "ONNX Runtime 1.32.0");
        assert!(!summary.gradients);
    }
}
