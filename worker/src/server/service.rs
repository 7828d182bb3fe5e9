//! The `EvidenceLens` gRPC service. `Explain` validates a request, answers
//! it from the store or joins an identical run when it can, and otherwise
//! admits a job: its upload is decoded on the blocking pool, then it queues
//! for the one device thread (one job at a time, in order), which runs the
//! engine and publishes events to the run's viewers, the creator first among
//! them. The finished explanation is stored before `Finished`
//! goes out. When every viewer has left, the engine stops after the batch in
//! flight.

use std::ops::ControlFlow;
use std::sync::Arc;

use lens_proto::v1::{
    evidence_lens_server::EvidenceLens, BrokenModel, CancelRequest, CancelResponse, ClassOpened,
    CloseClassRequest, CloseClassResponse, DeleteRequest, DeleteResponse, EstimateResponse,
    ExplainEvent, ExplainRequest, FaithfulnessRequest, FaithfulnessResult, FollowClassRequest,
    InspectWindowRequest, ListModelsRequest, ListModelsResponse, ListPresetsRequest,
    ListPresetsResponse, OpenClassRequest, TeachRequest, TeachResponse, WatchRequest,
    WindowInspection,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::engine::EngineError;
use crate::store::{self, Store};

use super::admission::{Admission, Limits, PixelBudget, WatchTicket, DECODE_BUDGET};
use super::classes::{self, Classes};
use super::device_queue::DeviceQueue;
use super::estimate::estimate;
use super::faithfulness;
use super::inspect;
use super::live::{LiveRun, LiveRuns};
use super::registry::Registry;
use super::request::{job_from_request, model_by_id, settings_from_request, Job};
use super::run_job::{guarded, run_job, RunInfo, RunSink};
use super::shared::{
    self, add_owner_secret, answered_before, check_id, client_of, load_stored, model_info, replay,
    EventStream,
};
use super::speed::Speeds;
use super::status::ServiceError;

pub struct LensService {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    live: Arc<LiveRuns>,
    admission: Arc<Admission>,
    decoding: Arc<PixelBudget>,
    device: DeviceQueue,
    speeds: Arc<Speeds>,
    classes: Arc<Classes>,
    trust_forwarded_for: bool,
    shutdown: Shutdown,
}

/// Stops a service: no new explanations, the runs in progress end with a
/// clear status (UNAVAILABLE, "shutting down"), jobs still queued end the
/// same way without running, and the process can wait until no job touches
/// the device (libtorch must not be torn down under a running job).
#[derive(Clone, Default)]
pub struct Shutdown {
    begun: Arc<std::sync::atomic::AtomicBool>,
    live: Arc<LiveRuns>,
    /// Jobs admitted and not yet finished, and a signal when one finishes.
    jobs: Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
    /// Told once when shutting down begins (for the health service).
    announced: Arc<tokio::sync::Notify>,
    /// Told to everyone waiting in `stopped` (streams relayed by a gateway).
    stopping: Arc<tokio::sync::Notify>,
}

/// A job in flight; dropping it counts the job as finished.
struct JobInFlight(Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>);

impl Drop for JobInFlight {
    fn drop(&mut self) {
        let (count, finished) = &*self.0;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        finished.notify_all();
    }
}

impl Shutdown {
    pub fn begin(&self) {
        self.begun.store(true, std::sync::atomic::Ordering::SeqCst);
        self.live.end_all(ServiceError::ShuttingDown.into());
        // A permit for the one waiter, also if it is not waiting yet.
        self.announced.notify_one();
        self.stopping.notify_waiters();
    }

    /// Completes once shutting down has begun (any number of waiters).
    pub async fn stopped(&self) {
        let notified = self.stopping.notified();
        tokio::pin!(notified);
        // Registered before the check, so a `begin` in between is not missed.
        notified.as_mut().enable();
        if !self.has_begun() {
            notified.await;
        }
    }

    /// Returns once shutting down has begun (one waiter: the health task).
    pub async fn begun(&self) {
        self.announced.notified().await;
    }

    pub fn has_begun(&self) -> bool {
        self.begun.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn job_started(&self) -> JobInFlight {
        *self.jobs.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        JobInFlight(self.jobs.clone())
    }

    /// Waits (blocking) until no job is in flight, or `limit` has passed;
    /// whether none is left.
    fn wait_for_jobs(&self, limit: std::time::Duration) -> bool {
        let (count, finished) = &*self.jobs;
        let count = count.lock().unwrap_or_else(|e| e.into_inner());
        let (count, _) = finished
            .wait_timeout_while(count, limit, |jobs| *jobs > 0)
            .unwrap_or_else(|e| e.into_inner());
        *count == 0
    }
}

impl LensService {
    pub fn new(registry: Registry, store: Arc<dyn Store>, limits: Limits) -> Self {
        let live = Arc::new(LiveRuns::new(limits));
        let device = DeviceQueue::start();
        let speeds = Arc::<Speeds>::default();
        // The first estimates come from the network's own speed, measured
        // before any job runs.
        let models: Vec<_> = registry
            .entries
            .iter()
            .map(|e| {
                (
                    e.summary.id.clone(),
                    e.summary.default_batch,
                    e.model.clone(),
                )
            })
            .collect();
        let calibrating = speeds.clone();
        let (done, calibrated) = std::sync::mpsc::channel();
        device.run_quietly(move || {
            for (id, batch, model) in models {
                let model = model.lock().unwrap_or_else(|e| e.into_inner());
                calibrating.calibrate(&id, model.classifier.as_ref(), batch);
            }
            let _ = done.send(());
        });
        // Under a second per model; then the first page already gets
        // estimates and defaults for this device.
        let _ = calibrated.recv();
        LensService {
            registry: Arc::new(registry),
            store,
            shutdown: Shutdown {
                live: live.clone(),
                ..Shutdown::default()
            },
            live,
            admission: Admission::new(limits),
            decoding: PixelBudget::new(DECODE_BUDGET),
            device,
            speeds,
            classes: Arc::new(Classes::new(limits.class_idle)),
            trust_forwarded_for: limits.trust_forwarded_for,
        }
    }
}

impl LensService {
    /// What stops this service (for SIGTERM / SIGINT).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The classes, for the task that ends those left idle.
    pub fn classes(&self) -> Arc<Classes> {
        self.classes.clone()
    }
}

impl Drop for LensService {
    /// The device thread outlives the service; left inside libtorch when
    /// the process exits, it crashes the process. So the service's end
    /// stops its jobs and waits for the one running (it stops after its
    /// batch).
    fn drop(&mut self) {
        self.shutdown.begin();
        if !self
            .shutdown
            .wait_for_jobs(std::time::Duration::from_secs(60))
        {
            tracing::warn!("a job was still running 60 s after the service ended");
        }
    }
}

/// A live run as a stream, for a viewer holding `watch` (its place among
/// its client's live streams) or for the run's creator (`None`).
fn watch_live(run: &LiveRun, watch: Option<WatchTicket>) -> Result<EventStream, ServiceError> {
    Ok(Box::pin(run.subscribe(watch)?))
}

#[tonic::async_trait]
impl EvidenceLens for LensService {
    type ExplainStream = EventStream;
    type WatchStream = EventStream;
    type FollowClassStream = classes::ClassStream;

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        if self.shutdown.has_begun() {
            return Err(ServiceError::ShuttingDown.into());
        }
        let entry = model_by_id(&self.registry, &request.get_ref().model)?;
        // Hashing the upload and reading its header are CPU work: not on the
        // async executor, which must stay free to answer everyone else.
        let summary = entry.summary.clone();
        let request = request.into_inner();
        let job = tokio::task::spawn_blocking(move || job_from_request(request, &summary))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        if let Some(record) = answered_before(&self.store, job.key).await? {
            return Ok(Response::new(replay(record)));
        }
        let id = store::new_id();
        let secret = store::new_secret();
        let secret_hash = store::hash_secret(&secret);
        let (run, is_new) = self.live.join_or_start(&id, job.key, secret_hash);
        if !is_new {
            let watch = self.admission.watch(client)?;
            return Ok(Response::new(watch_live(&run, watch)?));
        }
        let ticket = match self.admission.admit(client) {
            Ok(ticket) => ticket,
            Err(error) => {
                self.live.remove(&id);
                return Err(error.into());
            }
        };
        // The run holds its place in the admission count until it ends
        // (finished, failed or cancelled), not until its job leaves the
        // queue: a cancelled run frees its place at once.
        run.hold(ticket);
        let creator = watch_live(&run, None)?;
        let context = JobContext {
            info: RunInfo {
                id: id.clone(),
                secret_hash,
                class_names: entry.summary.class_names.clone(),
                store: self.store.clone(),
                speeds: self.speeds.clone(),
                created_unix: store::now_unix(),
            },
            run,
            live: self.live.clone(),
        };
        let (model, device) = (entry.model.clone(), self.device.clone());
        let decoding = self.decoding.clone();
        // Decoded after admission, on the blocking pool, within the budget;
        // then the job queues for the device thread.
        let in_flight = self.shutdown.job_started();
        let shutdown = self.shutdown.clone();
        tokio::task::spawn_blocking(move || {
            let image = guarded(|| {
                let _pixels = decoding.take(job.pixels);
                Ok(job.input()?)
            });
            match image {
                Err(error) => finish(&job, &context, Err(error)),
                Ok(image) => device.run(&context.info.id.clone(), context.run.clone(), move || {
                    let _in_flight = in_flight;
                    let outcome = guarded(|| {
                        if shutdown.has_begun() {
                            return Err(ServiceError::ShuttingDown);
                        }
                        // Cancelled, or left by every viewer, while it waited.
                        if context.run.is_cancelled() || !context.run.has_viewers() {
                            return Err(EngineError::Cancelled.into());
                        }
                        let model = model.lock().unwrap_or_else(|e| e.into_inner());
                        run_job(&model, &job, &image, &context.info, &context)
                    });
                    finish(&job, &context, outcome);
                }),
            }
        });
        // Only the creator's stream carries the secret (delete, cancel).
        let with_secret = creator.map(move |item| {
            item.map(|mut e| {
                add_owner_secret(&mut e, &secret);
                e
            })
        });
        Ok(Response::new(Box::pin(with_secret)))
    }

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<EventStream>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        let id = request.into_inner().id;
        check_id(&id)?;
        if let Some(run) = self.live.get(&id) {
            let watch = self.admission.watch(client)?;
            return Ok(Response::new(watch_live(&run, watch)?));
        }
        Ok(Response::new(replay(load_stored(&self.store, &id).await?)))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        shared::delete(self.store.clone(), request.into_inner()).await
    }

    async fn list_presets(
        &self,
        request: Request<ListPresetsRequest>,
    ) -> Result<Response<ListPresetsResponse>, Status> {
        let entry = model_by_id(&self.registry, &request.get_ref().model)?;
        let presets = self.registry.presets.for_model(entry.summary.resize);
        Ok(Response::new(ListPresetsResponse { presets }))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        let models = self
            .registry
            .entries
            .iter()
            .map(|e| model_info(&e.summary, &self.speeds))
            .collect();
        let broken = self
            .registry
            .broken
            .iter()
            .map(|(folder, error)| BrokenModel {
                folder: folder.clone(),
                error: error.clone(),
            })
            .collect();
        Ok(Response::new(ListModelsResponse { models, broken }))
    }

    async fn estimate(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<EstimateResponse>, Status> {
        let request = request.into_inner();
        let entry = model_by_id(&self.registry, &request.model)?;
        let settings = settings_from_request(&request, &entry.summary)?;
        let response = estimate(&settings, &entry.summary, &self.speeds, self.device.jobs());
        Ok(Response::new(response))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelResponse>, Status> {
        let CancelRequest { id, owner_secret } = request.into_inner();
        check_id(&id)?;
        let Some(run) = self.live.get(&id) else {
            return Err(ServiceError::NotRunning { id }.into());
        };
        if !run.is_owned_by(&store::hash_secret(&owner_secret)) {
            return Err(ServiceError::WrongSecret { id }.into());
        }
        run.cancel();
        self.live.remove(&id);
        Ok(Response::new(CancelResponse {}))
    }

    async fn faithfulness(
        &self,
        request: Request<FaithfulnessRequest>,
    ) -> Result<Response<FaithfulnessResult>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        if self.shutdown.has_begun() {
            return Err(ServiceError::ShuttingDown.into());
        }
        let FaithfulnessRequest { id, removal } = request.into_inner();
        check_id(&id)?;
        let removal = faithfulness::removal_of(removal)?;
        if let Some(kept) = faithfulness::kept(&self.store, &id, removal).await? {
            return Ok(Response::new(kept));
        }
        let record = load_stored(&self.store, &id).await?;
        let model = model_by_id(&self.registry, &record.model)?.model.clone();
        let result = self
            .on_device(client, move || {
                faithfulness::measure_stored(&model, &record, removal)
            })
            .await?;
        faithfulness::keep(&self.store, &id, removal, &result).await?;
        Ok(Response::new(result))
    }

    async fn inspect_window(
        &self,
        request: Request<InspectWindowRequest>,
    ) -> Result<Response<WindowInspection>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        if self.shutdown.has_begun() {
            return Err(ServiceError::ShuttingDown.into());
        }
        let InspectWindowRequest { id, x, y } = request.into_inner();
        check_id(&id)?;
        let record = load_stored(&self.store, &id).await?;
        let entry = model_by_id(&self.registry, &record.model)?;
        let (model, summary) = (entry.model.clone(), entry.summary.clone());
        let seen = self
            .on_device(client, move || {
                let model = model.lock().unwrap_or_else(|e| e.into_inner());
                inspect::inspect_stored(&model, &summary, &record, (x, y))
            })
            .await?;
        Ok(Response::new(seen))
    }

    async fn open_class(
        &self,
        request: Request<OpenClassRequest>,
    ) -> Result<Response<ClassOpened>, Status> {
        shared::open_class(&self.classes, client_of(&request, self.trust_forwarded_for))
    }

    async fn teach(
        &self,
        request: Request<TeachRequest>,
    ) -> Result<Response<TeachResponse>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        shared::teach(&self.classes, request.into_inner(), client)
    }

    async fn follow_class(
        &self,
        request: Request<FollowClassRequest>,
    ) -> Result<Response<classes::ClassStream>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        shared::follow_class(&self.classes, request.into_inner(), client)
    }

    async fn close_class(
        &self,
        request: Request<CloseClassRequest>,
    ) -> Result<Response<CloseClassResponse>, Status> {
        let client = client_of(&request, self.trust_forwarded_for);
        shared::close_class(&self.classes, request.into_inner(), client)
    }
}

impl LensService {
    /// Runs `work` on the device thread after the jobs queued so far, as a
    /// job like an explanation: it counts against the same limits while it
    /// waits and runs, and shutdown waits for it.
    async fn on_device<T: Send + 'static>(
        &self,
        client: Option<std::net::IpAddr>,
        work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let ticket = self.admission.admit(client)?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let in_flight = self.shutdown.job_started();
        self.device.run_unlisted(move || {
            let (_ticket, _in_flight) = (ticket, in_flight);
            let _ = answer.send(guarded(work));
        });
        answered
            .await
            .map_err(|_| ServiceError::Internal("the device thread stopped".into()))?
    }
}

/// A job of this process: its run in the live table.
struct JobContext {
    info: RunInfo,
    run: Arc<LiveRun>,
    live: Arc<LiveRuns>,
}

impl RunSink for JobContext {
    fn publish(&self, event: ExplainEvent) -> ControlFlow<()> {
        self.run.publish(event);
        self.wanted()
    }

    fn wanted(&self) -> ControlFlow<()> {
        if self.run.has_viewers() && !self.run.is_cancelled() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    /// The link opens the stored result from now on; whoever subscribed
    /// before still gets Finished from the run.
    fn stored(&self) {
        self.live.remove(&self.info.id);
    }
}

/// Ends a job's run: viewers get the error, if any, and the run leaves the
/// live table, so the next identical request starts afresh.
fn finish(job: &Job, context: &JobContext, outcome: Result<(), ServiceError>) {
    match outcome {
        Ok(()) | Err(ServiceError::Engine(EngineError::Cancelled)) => context.run.end(None),
        Err(error) => {
            tracing::warn!("explanation with {} failed: {error}", job.model);
            context.run.end(Some(error.into()));
        }
    }
    context.live.remove(&context.info.id);
}
