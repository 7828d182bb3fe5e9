//! The worker, as seen from the page: one gRPC-Web client on the page's own
//! origin, every call the page makes, and the only place where the worker's
//! messages (generated protobuf types) become the page's own types and back.
//! Errors come back as sentences a person can act on.

use lens_proto::v1 as wire;
use lens_proto::v1::evidence_lens_client::EvidenceLensClient;
use tonic::{Code, Status, Streaming};
use tonic_web_wasm_client::Client;

use crate::domain::{
    Agreement, ClassNews, Curves, Estimate, Faithfulness, Image, ModelChoice, OpenedClass, Removal,
    RunRequest, RunSettings, TeacherView, WindowLook,
};
use crate::method::Method;
use crate::stream::{Broken, Finished, MapTile, Picture, RunEvent, Started};

fn worker() -> EvidenceLensClient<Client> {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    EvidenceLensClient::new(Client::new(origin))
}

/// A status as a message for the page.
fn readable(status: &Status) -> String {
    let detail = status.message();
    match status.code() {
        Code::InvalidArgument => format!("The request was not accepted: {detail}"),
        Code::ResourceExhausted | Code::Unavailable => {
            format!("The worker is busy or unreachable, try again: {detail}")
        }
        Code::Cancelled => "The explanation was cancelled.".to_string(),
        _ => format!("The worker failed ({:?}): {detail}", status.code()),
    }
}

fn said(status: Status) -> String {
    readable(&status)
}

pub async fn models() -> Result<Vec<ModelChoice>, String> {
    let response = worker()
        .list_models(wire::ListModelsRequest {})
        .await
        .map_err(said)?;
    Ok(response
        .into_inner()
        .models
        .into_iter()
        .map(model)
        .collect())
}

/// The model's presets: held-out digits, or the sample photos.
pub async fn presets(model: String) -> Result<Vec<Image>, String> {
    let response = worker()
        .list_presets(wire::ListPresetsRequest { model })
        .await
        .map_err(said)?;
    Ok(response
        .into_inner()
        .presets
        .into_iter()
        .map(|p| {
            let mime = if p.png.starts_with(b"\x89PNG") {
                "image/png"
            } else {
                "image/jpeg"
            };
            Image {
                url: crate::export::object_url(&p.png, mime),
                name: p.name,
                bytes: p.png,
                credit: p.credit,
                label: p.label,
            }
        })
        .collect())
}

pub async fn estimate(settings: RunSettings) -> Result<Estimate, String> {
    let request = explain_request(Vec::new(), &settings);
    let e = worker().estimate(request).await.map_err(said)?.into_inner();
    Ok(Estimate {
        windows: e.windows,
        forward_passes: e.forward_passes,
        seconds: e.seconds,
        device: e.device,
        jobs_ahead: e.jobs_ahead,
        suggested_stride: e.suggested_stride,
        suggested_seconds: e.suggested_seconds,
    })
}

/// A new run's events.
pub async fn explain(request: RunRequest) -> Result<RunFeed, String> {
    let request = explain_request(request.image, &request.settings);
    let stream = worker().explain(request).await.map_err(said)?;
    Ok(RunFeed(stream.into_inner()))
}

/// A shared run's events: live if it is still going, else the stored result.
pub async fn watch(id: String) -> Result<RunFeed, String> {
    let stream = worker()
        .watch(wire::WatchRequest { id })
        .await
        .map_err(said)?;
    Ok(RunFeed(stream.into_inner()))
}

pub async fn cancel(id: String, owner_secret: String) -> Result<(), String> {
    worker()
        .cancel(wire::CancelRequest { id, owner_secret })
        .await
        .map(drop)
        .map_err(said)
}

pub async fn delete(id: String, owner_secret: String) -> Result<(), String> {
    worker()
        .delete(wire::DeleteRequest { id, owner_secret })
        .await
        .map(drop)
        .map_err(said)
}

pub async fn faithfulness(id: String, removal: Removal) -> Result<Faithfulness, String> {
    let removal = match removal {
        Removal::Blur => wire::Removal::Blur,
        Removal::Grey => wire::Removal::Grey,
    };
    let request = wire::FaithfulnessRequest {
        id,
        removal: removal as i32,
    };
    let r = worker()
        .faithfulness(request)
        .await
        .map_err(said)?
        .into_inner();
    let curves = |c: Option<wire::Curves>| {
        let c = c.unwrap_or_default();
        Curves {
            deletion: c.deletion,
            insertion: c.insertion,
            deletion_auc: c.deletion_auc,
            insertion_auc: c.insertion_auc,
        }
    };
    Ok(Faithfulness {
        removal: if r.removal == wire::Removal::Grey as i32 {
            Removal::Grey
        } else {
            Removal::Blur
        },
        blur_sigma: r.blur_sigma,
        steps: r.steps,
        map: curves(r.map),
        random: curves(r.random),
        random_orders: r.random_orders,
        edges: curves(r.edges),
    })
}

/// What the window at (`x`, `y`) of explanation `id` fed the network.
pub async fn inspect_window(id: String, x: u32, y: u32) -> Result<WindowLook, String> {
    let seen = worker()
        .inspect_window(wire::InspectWindowRequest { id, x, y })
        .await
        .map_err(said)?
        .into_inner();
    Ok(WindowLook {
        method: method_from_wire(seen.method),
        x: seen.x,
        y: seen.y,
        size: seen.size,
        channels: seen.channels,
        replacements: seen.replacements,
        explained: seen.explained_class,
        p_with: seen.p_with,
        p_samples: seen.p_samples,
        p_without: seen.p_without,
        evidence: seen.evidence,
        training_images: seen.training_images,
        classes: seen.classes,
    })
}

/// Opens a class: its code, the teacher's secret and the link token.
pub async fn open_class() -> Result<OpenedClass, String> {
    let opened = worker()
        .open_class(wire::OpenClassRequest {})
        .await
        .map_err(said)?
        .into_inner();
    Ok(OpenedClass {
        code: opened.code,
        secret: opened.teacher_secret,
        link_token: opened.link_token,
    })
}

pub async fn close_class(code: String, teacher_secret: String) -> Result<(), String> {
    worker()
        .close_class(wire::CloseClassRequest {
            code,
            teacher_secret,
        })
        .await
        .map(drop)
        .map_err(said)
}

/// Tells the class what the teacher shows now.
pub async fn teach(code: String, teacher_secret: String, view: TeacherView) -> Result<(), String> {
    let s = &view.settings;
    let view = wire::ClassView {
        explanation_id: view.explanation.clone(),
        model: s.model.clone(),
        method: method_to_wire(s.method) as i32,
        window: s.window,
        stride: s.stride,
        samples: s.samples,
        class_index: s.class,
        see: view.see.clone(),
    };
    let request = wire::TeachRequest {
        code,
        teacher_secret,
        view: Some(view),
    };
    worker().teach(request).await.map(drop).map_err(said)
}

/// Follows a class (the teacher with its secret, to count the followers).
pub async fn follow_class(code: String, teacher_secret: String) -> Result<ClassFeed, String> {
    let request = wire::FollowClassRequest {
        code,
        teacher_secret,
    };
    let stream = worker().follow_class(request).await.map_err(said)?;
    Ok(ClassFeed(stream.into_inner()))
}

/// A followed class's events, as the page's own.
pub struct ClassFeed(Streaming<wire::ClassEvent>);

impl ClassFeed {
    pub async fn next(&mut self) -> Result<Option<ClassNews>, String> {
        let Some(event) = self.0.message().await.map_err(said)? else {
            return Ok(None);
        };
        let view = event.view.map(|v| TeacherView {
            see: v.see.clone(),
            explanation: v.explanation_id.clone(),
            settings: RunSettings {
                model: v.model.clone(),
                method: method_from_wire(v.method),
                window: v.window,
                stride: v.stride,
                samples: v.samples,
                class: v.class_index,
            },
        });
        Ok(Some(ClassNews {
            view,
            followers: event.followers,
            ended: event.ended,
            code: event.code,
        }))
    }
}

/// A run's events, as the page's own.
pub struct RunFeed(Streaming<wire::ExplainEvent>);

impl RunFeed {
    /// The next event; None when the stream ended.
    pub async fn next(&mut self) -> Result<Option<RunEvent>, Broken> {
        loop {
            let message = self.0.message().await.map_err(|status| Broken {
                cancelled: status.code() == Code::Cancelled,
                message: readable(&status),
            })?;
            let Some(message) = message else {
                return Ok(None);
            };
            if let Some(event) = message.event {
                return Ok(Some(run_event(event)));
            }
        }
    }
}

fn run_event(event: wire::explain_event::Event) -> RunEvent {
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
        })),
        Event::ClassMap(m) => RunEvent::ClassMap {
            class: m.class_index,
            values: m.values,
        },
        Event::Moved(_) => RunEvent::Moved,
    }
}

fn explain_request(image: Vec<u8>, s: &RunSettings) -> wire::ExplainRequest {
    wire::ExplainRequest {
        image,
        method: method_to_wire(s.method) as i32,
        window: s.window,
        stride: s.stride,
        samples: Some(s.samples),
        class_index: s.class,
        model: s.model.clone(),
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
    }
}

fn model(info: wire::ModelInfo) -> ModelChoice {
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
        defaults_basis: info.defaults_basis,
        agreement_reference: info.agreement_reference,
        agreement_ceiling: info.agreement_ceiling,
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

fn method_to_wire(method: Method) -> wire::Method {
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
fn method_from_wire(value: i32) -> Method {
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
