//! The worker's messages as the page's own types and back, and a failed
//! call's status as a sentence.

use lens_proto::v1 as wire;
use tonic::{Code, Status};

use crate::domain::{Agreement, ModelChoice, RunSettings};
use crate::events::{Finished, MapTile, Picture, RunEvent, Started};
use crate::method::Method;

/// A status as a message for the page.
pub(super) fn readable(status: &Status) -> String {
    let detail = status.message();
    match status.code() {
        Code::InvalidArgument => format!("The request was not accepted: {detail}"),
        // A limit's refusal says what to do and for how long, as it is.
        Code::ResourceExhausted => sentence(detail),
        Code::Unavailable => format!("The worker is busy or unreachable, try again: {detail}"),
        Code::Cancelled => "The explanation was cancelled.".to_string(),
        _ => format!("The worker failed ({:?}): {detail}", status.code()),
    }
}

/// "too many ..." as "Too many ...".
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(super) fn said(status: Status) -> String {
    readable(&status)
}

pub(super) fn run_event(event: wire::explain_event::Event) -> RunEvent {
    use wire::explain_event::Event;
    match event {
        Event::Queued(q) => RunEvent::Queued {
            ahead: q.ahead,
            id: q.id,
            owner_secret: q.owner_secret,
        },
        Event::Started(s) => RunEvent::Started(Box::new(Started {
            input: s.input.as_ref().map(picture),
            settings: s.request.as_ref().map(settings_of),
            probabilities: s.probabilities,
            class_names: s.class_names,
            predicted: s.predicted_class,
            explained: s.explained_class,
            total_windows: s.total_windows,
            id: s.id,
            owner_secret: s.owner_secret,
        })),
        Event::Tile(t) => RunEvent::Tile(MapTile {
            x: t.x,
            y: t.y,
            width: t.width,
            height: t.height,
            values: t.values,
            windows_done: t.windows_done,
            total_windows: t.total_windows,
            coarse: t.coarse,
        }),
        Event::Finished(f) => RunEvent::Finished(Box::new(Finished {
            wall_seconds: f.wall_seconds,
            windows_per_second: f.windows_per_second,
            spread: f.sample_spread,
            replayed: f.replayed,
            window_probabilities: f.window_probabilities,
            estimated_windows: f.estimated_windows,
        })),
        Event::ClassMap(m) => RunEvent::ClassMap {
            class: m.class_index,
            values: m.values,
        },
        Event::Moved(_) => RunEvent::Moved,
    }
}

pub(super) fn explain_request(image: Vec<u8>, s: &RunSettings) -> wire::ExplainRequest {
    wire::ExplainRequest {
        image,
        method: method_to_wire(s.method) as i32,
        window: s.window,
        stride: s.stride,
        samples: Some(s.samples),
        class_index: s.class,
        model: s.model.clone(),
        // Gradient methods compute every pixel at once: no budget.
        budget: (s.budget < 1.0 && !s.method.needs_gradients()).then_some(s.budget),
        ..Default::default()
    }
}

fn settings_of(asked: &wire::ExplainRequest) -> RunSettings {
    RunSettings {
        model: asked.model.clone(),
        method: method_from_wire(asked.method),
        window: asked.window,
        stride: asked.stride,
        samples: asked.samples.unwrap_or(10),
        class: asked.class_index,
        budget: asked.budget.unwrap_or(1.0),
    }
}

pub(super) fn model(info: wire::ModelInfo) -> ModelChoice {
    ModelChoice {
        agreement: info
            .agreement
            .iter()
            .map(|a| Agreement {
                method: method_from_wire(a.method),
                samples: a.samples,
                rank_correlation: a.rank_correlation,
                top_overlap: a.top_overlap,
            })
            .collect(),
        id: info.id,
        name: info.name,
        channels: info.channels,
        conditional_windows: info.conditional_windows,
        default_method: method_from_wire(info.default_method),
        default_samples: info.default_samples,
        default_window: info.default_window,
        default_stride: info.default_stride,
        // 0 from a worker older than the field: every window.
        default_budget: Some(info.default_budget)
            .filter(|b| *b > 0.0 && *b <= 1.0)
            .unwrap_or(1.0),
        defaults_basis: info.defaults_basis,
        agreement_reference: info.agreement_reference,
        agreement_ceiling: info.agreement_ceiling,
        gradients_unavailable: info.gradients_unavailable,
    }
}

/// RGBA of a grey (1-channel) or RGB (3-channel, channel-major) picture.
fn picture(image: &wire::Picture) -> Picture {
    let pixels = (image.width * image.height) as usize;
    let level = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let rgba = (0..pixels)
        .flat_map(|i| {
            let channel = |c: usize| {
                let c = if image.channels >= 3 { c } else { 0 };
                level(image.values.get(c * pixels + i).copied().unwrap_or(0.0))
            };
            [channel(0), channel(1), channel(2), 255]
        })
        .collect();
    Picture {
        width: image.width,
        height: image.height,
        rgba,
    }
}

pub(super) fn method_to_wire(method: Method) -> wire::Method {
    match method {
        Method::EfficientPda => wire::Method::EfficientPda,
        Method::Pda => wire::Method::Pda,
        Method::SampledMean => wire::Method::SampledMean,
        Method::Gradient => wire::Method::Gradient,
        Method::Occlusion => wire::Method::Occlusion,
        Method::Saliency => wire::Method::Saliency,
        Method::GradCam => wire::Method::GradCam,
    }
}

/// Unspecified (the worker's default) reads as efficient PDA.
pub(super) fn method_from_wire(value: i32) -> Method {
    match wire::Method::try_from(value).unwrap_or(wire::Method::Unspecified) {
        wire::Method::Pda => Method::Pda,
        wire::Method::SampledMean => Method::SampledMean,
        wire::Method::Gradient => Method::Gradient,
        wire::Method::Occlusion => Method::Occlusion,
        wire::Method::Saliency => Method::Saliency,
        wire::Method::GradCam => Method::GradCam,
        wire::Method::EfficientPda | wire::Method::Unspecified => Method::EfficientPda,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limits_refusal_is_shown_as_the_worker_says_it() {
        let status = Status::resource_exhausted(
            "too many wrong class codes from this network: try again in 40 s, or scan the class's QR code (its link always works)",
        );
        assert_eq!(
            readable(&status),
            "Too many wrong class codes from this network: try again in 40 s, or scan the class's QR code (its link always works)"
        );
        let down = Status::unavailable("no worker is serving models now");
        assert!(readable(&down).starts_with("The worker is busy or unreachable"));
    }
}
