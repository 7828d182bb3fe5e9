//! What every `EvidenceLens` service answers the same way, whoever runs
//! the explanations (`serve`'s own device, or the workers behind a
//! gateway): stored explanations, deletion, classes, model descriptions,
//! the client's address.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use lens_proto::v1::{
    explain_event::Event, ClassOpened, CloseClassRequest, CloseClassResponse, DeleteRequest,
    DeleteResponse, ExplainEvent, Finished, FollowClassRequest, MethodAgreement, ModelInfo,
    StoredExplanation, TeachRequest, TeachResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use lens_engine::agreement::ModelAgreement;
use lens_engine::methods;
use lens_store::{self as store, Deletion, Record, Store};

use super::classes::{self, Classes};
use super::estimate::defaults;
use super::registry::ModelSummary;
use super::request::wire_method;
use super::run_job::event;
use super::speed::Speeds;
use super::status::ServiceError;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<ExplainEvent, Status>> + Send>>;

/// Runs a store call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, store::StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|error| {
            super::metrics::metrics().store_errors.inc();
            ServiceError::from(error)
        })
}

/// The stored explanation `id`, if it is kept.
pub async fn stored(store: &Arc<dyn Store>, id: &str) -> Result<Option<Record>, ServiceError> {
    let (store, key) = (store.clone(), id.to_string());
    blocking(move || store.load(&key)).await
}

/// The stored explanation `id` (NOT_FOUND once it is gone).
pub async fn load_stored(store: &Arc<dyn Store>, id: &str) -> Result<Record, ServiceError> {
    stored(store, id)
        .await?
        .ok_or(ServiceError::NotFound { id: id.to_string() })
}

/// The stored explanation of an identical request made before, if any:
/// it is answered from the store instead of being computed again.
pub async fn answered_before(
    store: &Arc<dyn Store>,
    key: [u8; 32],
) -> Result<Option<Record>, ServiceError> {
    let store = store.clone();
    blocking(move || store.find(&key)?.map_or(Ok(None), |id| store.load(&id))).await
}

/// A stored explanation as a stream: Started, the whole map, the other
/// classes' maps, Finished.
pub fn replay(record: Record) -> EventStream {
    let StoredExplanation {
        started,
        map,
        finished,
        class_maps,
    } = record.explanation;
    let finished = finished.map(|f| Finished {
        replayed: true,
        ..f
    });
    let events: Vec<Result<ExplainEvent, Status>> =
        [started.map(Event::Started), map.map(Event::Tile)]
            .into_iter()
            .flatten()
            .chain(class_maps.into_iter().map(Event::ClassMap))
            .chain(finished.map(Event::Finished))
            .map(|e| Ok(event(e)))
            .collect();
    Box::pin(tokio_stream::iter(events))
}

/// Checks that `id` has the shape of a share link id, before any lookup
/// (INVALID_ARGUMENT otherwise).
pub fn check_id(id: &str) -> Result<(), Status> {
    if store::is_valid_id(id) {
        Ok(())
    } else {
        Err(ServiceError::BadId { id: id.to_string() }.into())
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

/// The client's address (for the per-client limits): the first address
/// of `X-Forwarded-For` where a proxy is trusted to set it, else the peer's.
pub fn client_of<T>(request: &Request<T>, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = || {
        let header = request.metadata().get("x-forwarded-for")?.to_str().ok()?;
        header.split(',').next()?.trim().parse().ok()
    };
    if trust_forwarded_for {
        if let Some(ip) = forwarded() {
            return Some(ip);
        }
    }
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .or_else(|| request.remote_addr().map(|a| a.ip()))
}

/// A model as the page sees it.
pub fn model_info(s: &ModelSummary, speeds: &Speeds) -> ModelInfo {
    let defaults = defaults(s, speeds);
    ModelInfo {
        id: s.id.clone(),
        name: s.name.clone(),
        channels: s.shape.channels as u32,
        width: s.shape.width as u32,
        height: s.shape.height as u32,
        class_names: s.class_names.clone(),
        default_window: defaults.window as u32,
        conditional_sampler: s.conditional_sampler,
        conditional_windows: s.conditional_windows.clone(),
        marginal_sampler: s.marginal_sampler,
        default_stride: defaults.stride as u32,
        default_method: wire_method(defaults.kind) as i32,
        default_samples: defaults.samples as u32,
        defaults_basis: defaults.basis,
        device: s.device.clone(),
        agreement: s.agreement.iter().flat_map(agreement_info).collect(),
        agreement_reference: s
            .agreement
            .as_ref()
            .map_or(String::new(), |a| a.reference.clone()),
        agreement_ceiling: s.agreement.as_ref().map_or(0.0, |a| a.ceiling),
    }
}

/// A model's measured agreement for the page (methods the worker does not
/// know are left out).
fn agreement_info(agreement: &ModelAgreement) -> Vec<MethodAgreement> {
    agreement
        .methods
        .iter()
        .filter_map(|m| {
            let kind = methods::MethodKind::from_name(&m.method)?;
            Some(MethodAgreement {
                method: wire_method(kind) as i32,
                samples: m.samples.unwrap_or(0) as u32,
                rank_correlation: m.rank_correlation,
                top_overlap: m.top_overlap,
            })
        })
        .collect()
}

/// Deletes a stored explanation, for its creator.
pub async fn delete(
    store: Arc<dyn Store>,
    request: DeleteRequest,
) -> Result<Response<DeleteResponse>, Status> {
    let DeleteRequest { id, owner_secret } = request;
    check_id(&id)?;
    let wanted = id.clone();
    match blocking(move || store.delete(&wanted, &owner_secret)).await? {
        Deletion::Deleted => Ok(Response::new(DeleteResponse {})),
        Deletion::NotFound => Err(ServiceError::NotFound { id }.into()),
        Deletion::WrongSecret => Err(ServiceError::WrongSecret { id }.into()),
    }
}

pub fn open_class(
    classes: &Classes,
    client: Option<IpAddr>,
) -> Result<Response<ClassOpened>, Status> {
    let opened = classes.open(client)?;
    Ok(Response::new(ClassOpened {
        code: opened.code,
        teacher_secret: opened.teacher_secret,
        link_token: opened.link_token,
    }))
}

pub fn teach(
    classes: &Classes,
    request: TeachRequest,
    client: Option<IpAddr>,
) -> Result<Response<TeachResponse>, Status> {
    let TeachRequest {
        code,
        teacher_secret,
        view,
    } = request;
    classes.teach(&code, &teacher_secret, view.unwrap_or_default(), client)?;
    Ok(Response::new(TeachResponse {}))
}

pub fn follow_class(
    classes: &Classes,
    request: FollowClassRequest,
    client: Option<IpAddr>,
) -> Result<Response<classes::ClassStream>, Status> {
    let FollowClassRequest {
        code,
        teacher_secret,
    } = request;
    let following = classes.follow(&code, &teacher_secret, client)?;
    Ok(Response::new(classes::stream(following)))
}

pub fn close_class(
    classes: &Classes,
    request: CloseClassRequest,
    client: Option<IpAddr>,
) -> Result<Response<CloseClassResponse>, Status> {
    let CloseClassRequest {
        code,
        teacher_secret,
    } = request;
    classes.close(&code, &teacher_secret, client)?;
    Ok(Response::new(CloseClassResponse {}))
}
