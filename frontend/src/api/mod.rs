//! The worker, as seen from the page: one gRPC-Web client on the page's own
//! origin, every call the page makes, and the only place where the worker's
//! messages (generated protobuf types) become the page's own types and back
//! (`convert.rs`; a run's and a class's streams in `feeds.rs`). Errors come
//! back as sentences a person can act on.

mod convert;
mod feeds;

use lens_proto::v1 as wire;
use lens_proto::v1::evidence_lens_client::EvidenceLensClient;
use tonic::service::interceptor::InterceptedService;
use tonic_web_wasm_client::Client;

use crate::domain::{
    Curves, Estimate, Faithfulness, Image, ModelChoice, OpenedClass, Removal, RunRequest,
    RunSettings, TeacherView, WindowLook,
};
use convert::{explain_request, method_from_wire, method_to_wire, model, said};
pub use feeds::{each_event, ClassFeed, RunFeed};

type WithBrowserId = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;
type Worker = EvidenceLensClient<InterceptedService<Client, WithBrowserId>>;

fn worker() -> Worker {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    EvidenceLensClient::with_interceptor(Client::new(origin), with_browser_id as WithBrowserId)
}

/// Every call names this browser (`x-lens-browser`), so the worker's
/// limits count it apart from its classmates behind the same address.
fn with_browser_id(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(id) = crate::link::browser_id().and_then(|id| id.parse().ok()) {
        request.metadata_mut().insert("x-lens-browser", id);
    }
    Ok(request)
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
        budget: (s.budget < 1.0).then_some(s.budget),
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
