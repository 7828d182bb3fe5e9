//! The one `EvidenceLens` service. It does what every request needs the
//! same way whoever computes the maps: the client's address, the shutdown
//! check, share-id checks, answers from the store, the creator's secret,
//! deletion, the kept faithfulness curves. What differs between `serve` (one
//! process with its device) and a gateway (workers behind NATS) sits behind
//! `Backend`: `Local` (`local.rs`) and `Cluster` (`gateway.rs`).

use std::future::Future;
use std::sync::Arc;

use lens_proto::v1::{
    evidence_lens_server::EvidenceLens, explain_event::Event, CancelRequest, CancelResponse,
    ClassOpened, CloseClassRequest, CloseClassResponse, DeleteRequest, DeleteResponse,
    EstimateResponse, ExplainEvent, ExplainRequest, FaithfulnessRequest, FaithfulnessResult,
    FollowClassRequest, InspectWindowRequest, ListModelsRequest, ListModelsResponse,
    ListPresetsRequest, ListPresetsResponse, OpenClassRequest, TeachRequest, TeachResponse,
    WatchRequest, WindowInspection,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use lens_engine::engine::Removal;
use lens_store::{self as store, Record, Store};

use super::classrooms::{ClassroomStream, Classrooms};
use super::client::{client_of, Client};
use super::estimate::estimate;
use super::faithfulness;
use super::presets::Presets;
use super::registry::ModelSummary;
use super::request::{job_from_request, settings_from_request, Job};
use super::shutdown::Shutdown;
use super::speed::Speeds;
use super::status::ServiceError;
use super::stored::{self, answered_before, check_id, load_stored, replay, stored, EventStream};

/// A new explanation's stream: the creator's own run, or one identical
/// request's run in progress that it joined (no secret for a joiner).
pub enum Run {
    Created(EventStream),
    Joined(EventStream),
}

/// What an estimate needs: the model, the speeds it runs at and the jobs
/// ahead of a new one.
pub struct EstimateBasis {
    pub model: ModelSummary,
    pub speeds: Arc<Speeds>,
    pub jobs_ahead: usize,
}

/// Where the runs happen. Each method is one step the service cannot do
/// itself; the checks before it and the answers after it are the service's.
pub trait Backend: Send + Sync + 'static {
    /// Whether a watched run is looked for among the live runs before the
    /// store: a process's run leaves its live table once stored, while a
    /// cluster's run events outlive the run, so a gateway asks the store
    /// first.
    const LIVE_BEFORE_STORE: bool;
    /// Whether it can look inside a window (it needs the model at hand).
    const INSPECTS_WINDOWS: bool;

    fn shutdown(&self) -> &Shutdown;
    /// The classrooms open here, for the task that ends idle ones.
    fn classrooms(&self) -> Arc<Classrooms>;
    fn presets(&self) -> &Presets;
    /// The model a request names (empty: the digits), enough to check and
    /// key the request.
    fn summary(
        &self,
        model: &str,
    ) -> impl Future<Output = Result<ModelSummary, ServiceError>> + Send;
    fn list_models(&self) -> impl Future<Output = Result<ListModelsResponse, ServiceError>> + Send;
    fn estimate_basis(
        &self,
        model: &str,
        client: &Client,
    ) -> impl Future<Output = Result<EstimateBasis, ServiceError>> + Send;
    /// Starts the run of a checked request not answered before (or joins an
    /// identical one in progress). `asked` is the request as it came,
    /// without its image.
    fn run(
        &self,
        job: Job,
        asked: ExplainRequest,
        client: Client,
        secret_hash: [u8; 32],
    ) -> impl Future<Output = Result<Run, ServiceError>> + Send;
    /// A viewer's stream of run `id` while it runs (`None`: not running).
    fn watch_live(
        &self,
        id: &str,
        client: Client,
    ) -> impl Future<Output = Result<Option<EventStream>, ServiceError>> + Send;
    /// The hash of the secret of run `id`'s creator while it runs.
    fn owner_of(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ServiceError>> + Send;
    fn cancel(&self, id: &str) -> impl Future<Output = Result<(), ServiceError>> + Send;
    /// Measures a stored explanation's curves, and keeps them.
    fn curves(
        &self,
        client: Client,
        request: FaithfulnessRequest,
        removal: Removal,
        record: Record,
    ) -> impl Future<Output = Result<FaithfulnessResult, Status>> + Send;
    fn inspect(
        &self,
        client: Client,
        record: Record,
        at: (u32, u32),
    ) -> impl Future<Output = Result<WindowInspection, ServiceError>> + Send;
    fn open_class(
        &self,
        client: Client,
    ) -> impl Future<Output = Result<Response<ClassOpened>, Status>> + Send;
    fn teach(
        &self,
        request: TeachRequest,
        client: Client,
    ) -> impl Future<Output = Result<Response<TeachResponse>, Status>> + Send;
    fn follow_class(
        &self,
        request: FollowClassRequest,
        client: Client,
    ) -> impl Future<Output = Result<Response<ClassroomStream>, Status>> + Send;
    fn close_class(
        &self,
        request: CloseClassRequest,
        client: Client,
    ) -> impl Future<Output = Result<Response<CloseClassResponse>, Status>> + Send;
}

/// The service over backend `B`.
pub struct Lens<B> {
    backend: B,
    store: Arc<dyn Store>,
    trust_forwarded_for: bool,
}

impl<B: Backend> Lens<B> {
    pub fn over(backend: B, store: Arc<dyn Store>, trust_forwarded_for: bool) -> Self {
        Lens {
            backend,
            store,
            trust_forwarded_for,
        }
    }

    /// What stops this service (for SIGTERM / SIGINT).
    pub fn shutdown(&self) -> Shutdown {
        self.backend.shutdown().clone()
    }

    /// The classrooms, for the task that ends those left idle.
    pub fn classrooms(&self) -> Arc<Classrooms> {
        self.backend.classrooms()
    }

    fn client<T>(&self, request: &Request<T>) -> Result<Client, ServiceError> {
        client_of(request, self.trust_forwarded_for)
    }

    fn refuse_when_stopping(&self) -> Result<(), ServiceError> {
        if self.backend.shutdown().has_begun() {
            return Err(ServiceError::ShuttingDown);
        }
        Ok(())
    }
}

/// Gives an event of the creator's stream the delete secret: only the
/// creator's Started and Queued carry it (delete, cancel).
pub fn add_owner_secret(event: &mut ExplainEvent, secret: &str) {
    match &mut event.event {
        Some(Event::Started(started)) => started.owner_secret = secret.to_string(),
        Some(Event::Queued(queued)) => queued.owner_secret = secret.to_string(),
        _ => {}
    }
}

/// The creator's stream: its Queued and Started carry the secret that
/// deletes or cancels the run.
fn with_owner_secret(events: EventStream, secret: String) -> EventStream {
    Box::pin(events.map(move |item| {
        item.map(|mut event| {
            add_owner_secret(&mut event, &secret);
            event
        })
    }))
}

#[tonic::async_trait]
impl<B: Backend> EvidenceLens for Lens<B> {
    type ExplainStream = EventStream;
    type WatchStream = EventStream;
    type FollowClassStream = ClassroomStream;

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let client = self.client(&request)?;
        self.refuse_when_stopping()?;
        let mut request = request.into_inner();
        let summary = self.backend.summary(&request.model).await?;
        // A cluster's workers fill in their own defaults (their batch size):
        // they get the request as it came.
        let image = std::mem::take(&mut request.image);
        let asked = request.clone();
        request.image = image;
        // Hashing the upload and reading its header are CPU work: not on the
        // async executor, which must stay free to answer everyone else.
        let job = tokio::task::spawn_blocking(move || job_from_request(request, &summary))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        if let Some(record) = answered_before(&self.store, job.key).await? {
            return Ok(Response::new(replay(record)));
        }
        let secret = store::new_secret();
        let secret_hash = store::hash_secret(&secret);
        let events = match self.backend.run(job, asked, client, secret_hash).await? {
            Run::Joined(events) => events,
            Run::Created(events) => with_owner_secret(events, secret),
        };
        Ok(Response::new(events))
    }

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<EventStream>, Status> {
        let client = self.client(&request)?;
        let id = request.into_inner().id;
        check_id(&id)?;
        let events = if B::LIVE_BEFORE_STORE {
            match self.backend.watch_live(&id, client).await? {
                Some(live) => live,
                None => replay(load_stored(&self.store, &id).await?),
            }
        } else {
            match stored(&self.store, &id).await? {
                Some(record) => replay(record),
                None => (self.backend.watch_live(&id, client).await?)
                    .ok_or(ServiceError::NotFound { id })?,
            }
        };
        Ok(Response::new(events))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        stored::delete(self.store.clone(), request.into_inner()).await
    }

    async fn list_presets(
        &self,
        request: Request<ListPresetsRequest>,
    ) -> Result<Response<ListPresetsResponse>, Status> {
        let summary = self.backend.summary(&request.get_ref().model).await?;
        let presets = self.backend.presets().for_model(summary.resize);
        Ok(Response::new(ListPresetsResponse { presets }))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        Ok(Response::new(self.backend.list_models().await?))
    }

    async fn estimate(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<EstimateResponse>, Status> {
        let client = self.client(&request)?;
        let request = request.into_inner();
        let basis = self.backend.estimate_basis(&request.model, &client).await?;
        let settings = settings_from_request(&request, &basis.model)?;
        Ok(Response::new(estimate(
            &settings,
            &basis.model,
            &basis.speeds,
            basis.jobs_ahead,
        )))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelResponse>, Status> {
        let CancelRequest { id, owner_secret } = request.into_inner();
        check_id(&id)?;
        let Some(owner) = self.backend.owner_of(&id).await? else {
            return Err(ServiceError::NotRunning { id }.into());
        };
        if owner != store::hash_secret(&owner_secret) {
            return Err(ServiceError::WrongSecret { id }.into());
        }
        self.backend.cancel(&id).await?;
        Ok(Response::new(CancelResponse {}))
    }

    async fn faithfulness(
        &self,
        request: Request<FaithfulnessRequest>,
    ) -> Result<Response<FaithfulnessResult>, Status> {
        let client = self.client(&request)?;
        self.refuse_when_stopping()?;
        let request = request.into_inner();
        check_id(&request.id)?;
        let removal = faithfulness::removal_of(request.removal)?;
        if let Some(kept) = faithfulness::kept(&self.store, &request.id, removal).await? {
            return Ok(Response::new(kept));
        }
        let record = load_stored(&self.store, &request.id).await?;
        let result = self
            .backend
            .curves(client, request, removal, record)
            .await?;
        Ok(Response::new(result))
    }

    async fn inspect_window(
        &self,
        request: Request<InspectWindowRequest>,
    ) -> Result<Response<WindowInspection>, Status> {
        if !B::INSPECTS_WINDOWS {
            return Err(ServiceError::NotOnGateway.into());
        }
        let client = self.client(&request)?;
        self.refuse_when_stopping()?;
        let InspectWindowRequest { id, x, y } = request.into_inner();
        check_id(&id)?;
        let record = load_stored(&self.store, &id).await?;
        let seen = self.backend.inspect(client, record, (x, y)).await?;
        Ok(Response::new(seen))
    }

    async fn open_class(
        &self,
        request: Request<OpenClassRequest>,
    ) -> Result<Response<ClassOpened>, Status> {
        self.backend.open_class(self.client(&request)?).await
    }

    async fn teach(
        &self,
        request: Request<TeachRequest>,
    ) -> Result<Response<TeachResponse>, Status> {
        let client = self.client(&request)?;
        self.backend.teach(request.into_inner(), client).await
    }

    async fn follow_class(
        &self,
        request: Request<FollowClassRequest>,
    ) -> Result<Response<ClassroomStream>, Status> {
        let client = self.client(&request)?;
        self.backend
            .follow_class(request.into_inner(), client)
            .await
    }

    async fn close_class(
        &self,
        request: Request<CloseClassRequest>,
    ) -> Result<Response<CloseClassResponse>, Status> {
        let client = self.client(&request)?;
        self.backend.close_class(request.into_inner(), client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lens_proto::v1::{explain_event::Event, ExplainEvent, Finished, Queued, Started, Tile};

    fn events() -> EventStream {
        let events = [
            Event::Queued(Queued::default()),
            Event::Started(Started::default()),
            Event::Tile(Tile::default()),
            Event::Finished(Finished::default()),
        ];
        Box::pin(tokio_stream::iter(
            events.map(|e| Ok(ExplainEvent { event: Some(e) })),
        ))
    }

    #[tokio::test]
    async fn only_the_creators_queued_and_started_carry_the_secret() {
        let created: Vec<_> = with_owner_secret(events(), "s3cret".into())
            .map(|e| e.unwrap().event)
            .collect()
            .await;
        assert!(matches!(&created[0], Some(Event::Queued(q)) if q.owner_secret == "s3cret"));
        assert!(matches!(&created[1], Some(Event::Started(s)) if s.owner_secret == "s3cret"));
        assert!(
            matches!(&created[3], Some(Event::Finished(_))),
            "every event passes"
        );
    }
}
