//! `InspectWindow`: what one window of a stored explanation fed the
//! network, recomputed on the device from the explanation's own input and
//! settings (see `engine::inspect_window`), so the page can show the
//! replacements, the probabilities and the evidence the map was made of.

use lens_proto::v1::{self as proto, Method};

use lens_engine::engine::{inspect_window, Target};
use lens_engine::methods;
use lens_engine::models::LoadedModel;
use lens_store::Record;

use super::faithfulness::stored_input;
use super::registry::ModelSummary;
use super::request::settings_from_request;
use super::status::ServiceError;

/// The window at (`x`, `y`) of `record`, on `model`.
pub fn inspect_stored(
    model: &LoadedModel,
    summary: &ModelSummary,
    record: &Record,
    (x, y): (u32, u32),
) -> Result<proto::WindowInspection, ServiceError> {
    let (started, image) = stored_input(record)?;
    let Some(request) = &started.request else {
        return Err(ServiceError::Internal(format!(
            "{} was stored without its settings",
            record.id
        )));
    };
    let settings = settings_from_request(request, summary)?;
    let kind = settings.choice.kind;
    if kind.one_class_per_run() {
        return Err(ServiceError::NoWindows {
            method: format!("{kind:?}"),
        });
    }
    let mut params = settings.params;
    params.target = Target::Class(started.explained_class as usize);
    let fill = methods::window_fill(model, &settings.choice, params.window)?;
    let seen = inspect_window(
        model.classifier.as_ref(),
        &image,
        fill.as_ref(),
        &params,
        (x as usize, y as usize),
    )?;
    Ok(proto::WindowInspection {
        x: seen.window.x as u32,
        y: seen.window.y as u32,
        size: seen.window.size as u32,
        channels: image.shape.channels as u32,
        replacements: seen.replacements,
        explained_class: seen.explained as u32,
        p_with: seen.p_with,
        p_samples: seen.p_samples,
        p_without: seen.p_without,
        evidence: seen.evidence,
        training_images: seen.laplace.training_images as u64,
        classes: seen.laplace.classes as u32,
        method: Method::try_from(request.method).unwrap_or(Method::Unspecified) as i32,
    })
}
