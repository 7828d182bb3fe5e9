//! Explanations in the store as the service answers them: a stored one
//! replayed as a stream, an identical request's earlier answer, deletion
//! by its creator, and the share-id check before any look-up.

use std::pin::Pin;
use std::sync::Arc;

use lens_proto::v1::{
    explain_event::Event, DeleteRequest, DeleteResponse, ExplainEvent, Finished, StoredExplanation,
};
use lens_store::{self as store, Deletion, Record, Store};
use tokio_stream::Stream;
use tonic::{Response, Status};

use super::run_job::event;
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
