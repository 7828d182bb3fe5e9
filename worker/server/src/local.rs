//! `serve`'s backend: one process with its device. A new run is admitted
//! and its upload decoded on the blocking pool, then it queues for the one
//! device thread (one job at a time, in order), which runs the engine and
//! publishes events to the run's viewers, the creator first among them.
//! The finished explanation is stored before `Finished` goes out. When
//! every viewer has left, the engine stops after the batch in flight.

use std::ops::ControlFlow;
use std::sync::Arc;

use lens_proto::v1::{
    BrokenModel, ClassOpened, CloseClassRequest, CloseClassResponse, ExplainEvent, ExplainRequest,
    FaithfulnessRequest, FaithfulnessResult, FollowClassRequest, ListModelsResponse, TeachRequest,
    TeachResponse, WindowInspection,
};
use tonic::{Response, Status};

use lens_engine::engine::{EngineError, Removal};
use lens_store::{self as store, Record, Store};

use super::admission::{Admission, Limits, PixelBudget, DECODE_BUDGET};
use super::classrooms::{self, ClassroomStream, Classrooms};
use super::client::Client;
use super::device_queue::DeviceQueue;
use super::estimate::model_info;
use super::faithfulness;
use super::inspect;
use super::lens::{Backend, EstimateBasis, Lens, Run};
use super::limits::{self, LocalPlace, LocalPlaces};
use super::live::{LiveRun, LiveRuns};
use super::presets::Presets;
use super::registry::{ModelSummary, Registry};
use super::request::{model_by_id, Job};
use super::run_job::{guarded, run_job, RunInfo, RunSink};
use super::shutdown::Shutdown;
use super::speed::Speeds;
use super::status::ServiceError;
use super::stored::EventStream;

/// The service of `serve`.
pub type LensService = Lens<Local>;

pub struct Local {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    live: Arc<LiveRuns>,
    admission: Arc<Admission>,
    /// Clients' and addresses' live streams.
    watches: Arc<LocalPlaces>,
    limits: Limits,
    decoding: Arc<PixelBudget>,
    device: DeviceQueue,
    speeds: Arc<Speeds>,
    classrooms: Arc<Classrooms>,
    shutdown: Shutdown,
}

impl Lens<Local> {
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
        let local = Local {
            registry: Arc::new(registry),
            store: store.clone(),
            shutdown: Shutdown::ending(live.clone()),
            live,
            admission: Admission::new(limits),
            watches: Arc::default(),
            limits,
            decoding: PixelBudget::new(DECODE_BUDGET),
            device,
            speeds,
            classrooms: Arc::new(Classrooms::new(limits.class_idle)),
        };
        Lens::over(local, store, limits.trust_forwarded_for)
    }
}

impl Drop for Local {
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

/// A live run as a stream, for a viewer holding `watch` (its places among
/// live streams) or for the run's creator (none).
fn watch_live(run: &LiveRun, watch: Vec<LocalPlace>) -> Result<EventStream, ServiceError> {
    Ok(Box::pin(run.subscribe(watch)?))
}

impl Backend for Local {
    const LIVE_BEFORE_STORE: bool = true;
    const INSPECTS_WINDOWS: bool = true;

    fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    fn classrooms(&self) -> Arc<Classrooms> {
        self.classrooms.clone()
    }

    fn presets(&self) -> &Presets {
        &self.registry.presets
    }

    async fn summary(&self, model: &str) -> Result<ModelSummary, ServiceError> {
        Ok(model_by_id(&self.registry, model)?.summary.clone())
    }

    async fn list_models(&self) -> Result<ListModelsResponse, ServiceError> {
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
        Ok(ListModelsResponse { models, broken })
    }

    async fn estimate_basis(
        &self,
        model: &str,
        client: &Client,
    ) -> Result<EstimateBasis, ServiceError> {
        Ok(EstimateBasis {
            model: model_by_id(&self.registry, model)?.summary.clone(),
            speeds: self.speeds.clone(),
            jobs_ahead: self.device.ahead_of(client),
        })
    }

    async fn run(
        &self,
        job: Job,
        _asked: ExplainRequest,
        client: Client,
        secret_hash: [u8; 32],
    ) -> Result<Run, ServiceError> {
        let entry = model_by_id(&self.registry, &job.model)?;
        let id = store::new_id();
        let (run, is_new) = self.live.join_or_start(&id, job.key, secret_hash);
        if !is_new {
            let watch = self.watch(&client).await?;
            return Ok(Run::Joined(watch_live(&run, watch)?));
        }
        // A browser's new run takes the place of its own run still waiting
        // (a new stroke): that one ends and gives back its admission first.
        let place = self.device.take_place(&client);
        let ticket = match self.admission.admit(&client) {
            Ok(ticket) => ticket,
            Err(error) => {
                self.live.remove(&id);
                return Err(error);
            }
        };
        // The run holds its place in the admission count until it ends
        // (finished, failed or cancelled), not until its job leaves the
        // queue: a cancelled run frees its place at once.
        run.hold(ticket);
        let creator = watch_live(&run, Vec::new())?;
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
                Ok(image) => device.run(
                    &context.info.id.clone(),
                    context.run.clone(),
                    &client,
                    place,
                    move || {
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
                    },
                ),
            }
        });
        Ok(Run::Created(creator))
    }

    async fn watch_live(
        &self,
        id: &str,
        client: Client,
    ) -> Result<Option<EventStream>, ServiceError> {
        let Some(run) = self.live.get(id) else {
            return Ok(None);
        };
        let watch = self.watch(&client).await?;
        Ok(Some(watch_live(&run, watch)?))
    }

    async fn owner_of(&self, id: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        Ok(self.live.get(id).map(|run| run.owner().to_vec()))
    }

    async fn cancel(&self, id: &str) -> Result<(), ServiceError> {
        if let Some(run) = self.live.get(id) {
            run.cancel();
        }
        self.live.remove(id);
        Ok(())
    }

    async fn curves(
        &self,
        client: Client,
        request: FaithfulnessRequest,
        removal: Removal,
        record: Record,
    ) -> Result<FaithfulnessResult, Status> {
        let model = model_by_id(&self.registry, &record.model)?.model.clone();
        let result = self
            .on_device(client, move || {
                faithfulness::measure_stored(&model, &record, removal)
            })
            .await?;
        faithfulness::keep(&self.store, &request.id, removal, &result).await?;
        Ok(result)
    }

    async fn inspect(
        &self,
        client: Client,
        record: Record,
        at: (u32, u32),
    ) -> Result<WindowInspection, ServiceError> {
        let entry = model_by_id(&self.registry, &record.model)?;
        let (model, summary) = (entry.model.clone(), entry.summary.clone());
        self.on_device(client, move || {
            let model = model.lock().unwrap_or_else(|e| e.into_inner());
            inspect::inspect_stored(&model, &summary, &record, at)
        })
        .await
    }

    async fn open_class(&self, client: Client) -> Result<Response<ClassOpened>, Status> {
        classrooms::open_class(&self.classrooms, &client)
    }

    async fn teach(
        &self,
        request: TeachRequest,
        client: Client,
    ) -> Result<Response<TeachResponse>, Status> {
        classrooms::teach(&self.classrooms, request, &client)
    }

    async fn follow_class(
        &self,
        request: FollowClassRequest,
        client: Client,
    ) -> Result<Response<ClassroomStream>, Status> {
        classrooms::follow_class(&self.classrooms, request, &client)
    }

    async fn close_class(
        &self,
        request: CloseClassRequest,
        client: Client,
    ) -> Result<Response<CloseClassResponse>, Status> {
        classrooms::close_class(&self.classrooms, request, &client)
    }
}

impl Local {
    /// A place among `client`'s and its address's live streams.
    async fn watch(&self, client: &Client) -> Result<Vec<LocalPlace>, ServiceError> {
        limits::take_watch(&self.watches, client, &self.limits).await
    }

    /// Runs `work` on the device thread after the jobs queued so far, as a
    /// job like an explanation: it counts against the same limits while it
    /// waits and runs, and shutdown waits for it.
    async fn on_device<T: Send + 'static>(
        &self,
        client: Client,
        work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let ticket = self.admission.admit(&client)?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let in_flight = self.shutdown.job_started();
        self.device.run_unlisted(&client, move || {
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
