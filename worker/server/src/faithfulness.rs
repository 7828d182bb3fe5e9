//! `Faithfulness`: the deletion and insertion curves of a stored
//! explanation's map (see `engine::deletion`). They are computed on the
//! device thread like any job, from the model's input as it was explained
//! (kept with the explanation), and stored beside it, so a second request
//! is answered at once.

use std::sync::Arc;

use lens_proto::v1::{self as proto, FaithfulnessResult};

use lens_engine::engine::{
    default_batch_size, deletion_insertion, Curves, DeletionParams, Faithfulness, InputImage,
    InputShape, Removal,
};
use lens_engine::models::LoadedModel;
use lens_store::{Record, Store};

use super::status::ServiceError;
use super::stored::blocking;

/// The curves already kept for explanation `id` and `removal`, marked as
/// replayed (the service answers them without measuring again).
pub async fn kept(
    store: &Arc<dyn Store>,
    id: &str,
    removal: Removal,
) -> Result<Option<FaithfulnessResult>, ServiceError> {
    let (store, id) = (store.clone(), id.to_string());
    let kept = blocking(move || store.load_faithfulness(&id, removal.name())).await?;
    Ok(kept.map(|kept| FaithfulnessResult {
        replayed: true,
        ..kept
    }))
}

/// Keeps measured curves beside their explanation (deleted with it).
pub async fn keep(
    store: &Arc<dyn Store>,
    id: &str,
    removal: Removal,
    result: &FaithfulnessResult,
) -> Result<(), ServiceError> {
    let (store, id, result) = (store.clone(), id.to_string(), result.clone());
    blocking(move || store.save_faithfulness(&id, removal.name(), &result)).await?;
    Ok(())
}

/// The request's removal; unspecified means blur (RISE's choice).
pub fn removal_of(value: i32) -> Result<Removal, ServiceError> {
    match proto::Removal::try_from(value) {
        Ok(proto::Removal::Unspecified | proto::Removal::Blur) => Ok(Removal::Blur),
        Ok(proto::Removal::Grey) => Ok(Removal::Grey),
        Err(_) => Err(ServiceError::UnknownRemoval { value }),
    }
}

fn damaged(record: &Record, what: &str) -> ServiceError {
    ServiceError::Internal(format!("{} {what}", record.id))
}

/// A stored explanation's start and the model's input as it was explained.
pub fn stored_input(record: &Record) -> Result<(&proto::Started, InputImage), ServiceError> {
    let started = record
        .explanation
        .started
        .as_ref()
        .ok_or_else(|| damaged(record, "was stored without its input"))?;
    let picture = started
        .input
        .as_ref()
        .ok_or_else(|| damaged(record, "was stored without its input"))?;
    let image = InputImage {
        shape: InputShape {
            channels: picture.channels as usize,
            height: picture.height as usize,
            width: picture.width as usize,
        },
        values: picture.values.clone(),
    };
    Ok((started, image))
}

/// Deletion and insertion of the stored map of its explained class, from
/// the model's input as it was explained.
pub fn of_stored(
    model: &LoadedModel,
    record: &Record,
    removal: Removal,
) -> Result<Faithfulness, ServiceError> {
    let (started, image) = stored_input(record)?;
    let map = record
        .explanation
        .map
        .as_ref()
        .ok_or_else(|| damaged(record, "was stored without its map"))?;
    let class = started.explained_class as usize;
    let batch_size = default_batch_size(model.classifier.device());
    let params = DeletionParams::new(class, removal, batch_size);
    Ok(deletion_insertion(
        model.classifier.as_ref(),
        &image,
        &map.values,
        &params,
    )?)
}

/// `of_stored` on the model behind `model`'s lock, timed, as the page and
/// the store take it (call it on the device's thread, or a blocking one).
pub fn measure_stored(
    model: &std::sync::Mutex<LoadedModel>,
    record: &Record,
    removal: Removal,
) -> Result<FaithfulnessResult, ServiceError> {
    let began = std::time::Instant::now();
    let model = model.lock().unwrap_or_else(|e| e.into_inner());
    let result = of_stored(&model, record, removal)?;
    Ok(to_proto(&result, began.elapsed().as_secs_f64()))
}

/// The curves as the page and the store take them.
pub fn to_proto(result: &Faithfulness, wall_seconds: f64) -> FaithfulnessResult {
    let curves = |c: &Curves| proto::Curves {
        deletion: c.deletion.clone(),
        insertion: c.insertion.clone(),
        deletion_auc: c.deletion_auc(),
        insertion_auc: c.insertion_auc(),
    };
    FaithfulnessResult {
        removal: match result.removal {
            Removal::Blur => proto::Removal::Blur,
            Removal::Grey => proto::Removal::Grey,
        } as i32,
        blur_sigma: result.blur_sigma,
        steps: result.steps as u32,
        explained_class: result.class as u32,
        map: Some(curves(&result.map)),
        random: Some(curves(&result.random)),
        random_orders: result.random_orders as u32,
        edges: Some(curves(&result.edges)),
        wall_seconds,
        replayed: false,
    }
}
