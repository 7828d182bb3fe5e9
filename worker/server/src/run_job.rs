//! One explanation on the device: the engine's progress becomes events
//! (Started, the coarse map where the schedule has one, final tiles, the
//! other classes' maps), the finished explanation is stored, then Finished
//! goes out. Shared by `serve`
//! (events to the live table) and the cluster worker (events to JetStream).

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use lens_proto::v1::{
    explain_event::Event, ClassMap, ExplainEvent, Finished, Picture, Started, StoredExplanation,
    Tile,
};

use lens_engine::engine::{InputImage, Progress, WindowResults};
use lens_engine::methods;
use lens_engine::models::LoadedModel;
use lens_store::{Record, Store};

use super::metrics::metrics;
use super::request::Job;
use super::speed::Speeds;
use super::status::ServiceError;

/// Where a run's events go.
pub trait RunSink {
    /// Sends `event` to the run's viewers; `Break` stops the engine after
    /// its batch (cancelled, nobody watching, shutting down).
    fn publish(&self, event: ExplainEvent) -> ControlFlow<()>;
    /// Whether the run should go on, asked after every batch (a batch may
    /// finish no tile, and a run left by its viewers must still stop).
    fn wanted(&self) -> ControlFlow<()>;
    /// The explanation is stored: from now on its link opens the record.
    fn stored(&self) {}
    /// A batch's window results (only when the job's params ask for them).
    fn windows(&self, _results: WindowResults) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// What a run needs beyond the model and the request.
pub struct RunInfo {
    pub id: String,
    pub secret_hash: [u8; 32],
    pub class_names: Vec<String>,
    pub store: Arc<dyn Store>,
    pub speeds: Arc<Speeds>,
    /// When the run started (for a run taken over: when it first started).
    pub created_unix: i64,
}

pub fn event(event: Event) -> ExplainEvent {
    ExplainEvent { event: Some(event) }
}

/// The last line of defence: a panic in a job (a model or libtorch call
/// without an error path) becomes an error like any other, so no viewer
/// waits forever on a dead run.
pub fn guarded<T>(work: impl FnOnce() -> Result<T, ServiceError>) -> Result<T, ServiceError> {
    std::panic::catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(ServiceError::Panicked(panic_message(panic.as_ref()))))
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}

/// Runs `job` on `model` and sends its events to `sink`: Started, the
/// coarse map where the schedule has one, the final tiles, and Finished
/// once the explanation is stored.
pub fn run_job(
    model: &LoadedModel,
    job: &Job,
    image: &InputImage,
    context: &RunInfo,
    sink: &dyn RunSink,
) -> Result<(), ServiceError> {
    let fill = methods::window_fill(model, &job.choice, job.params.window)?;
    let publish = |e: Event| sink.publish(event(e));
    let shape = image.shape;
    let created_unix = context.created_unix;
    let runtime = model.computed_by(job.choice.kind.needs_gradients());
    let mut started_event = None;
    let mut on_progress = |progress: Progress| match progress {
        Progress::Started {
            probabilities,
            predicted,
            explained,
            total_windows,
        } => {
            let started = Started {
                input: Some(Picture {
                    width: shape.width as u32,
                    height: shape.height as u32,
                    channels: shape.channels as u32,
                    values: image.values.clone(),
                }),
                probabilities: probabilities.to_vec(),
                predicted_class: predicted as u32,
                explained_class: explained as u32,
                total_windows: total_windows as u64,
                class_names: context.class_names.clone(),
                id: context.id.clone(),
                owner_secret: String::new(),
                request: Some(job.resolved.clone()),
                created_unix,
                runtime: runtime.clone(),
            };
            started_event = Some(started.clone());
            publish(Event::Started(started))
        }
        Progress::Coarse {
            values,
            windows_done,
            total_windows,
        } => publish(Event::Tile(Tile {
            x: 0,
            y: 0,
            width: shape.width as u32,
            height: shape.height as u32,
            values,
            windows_done: windows_done as u64,
            total_windows: total_windows as u64,
            coarse: true,
        })),
        Progress::Windows(results) => sink.windows(results),
        Progress::Batch {
            tiles,
            windows_done,
            total_windows,
        } => {
            for tile in tiles {
                publish(Event::Tile(Tile {
                    x: tile.rect.x as u32,
                    y: tile.rect.y as u32,
                    width: tile.rect.width as u32,
                    height: tile.rect.height as u32,
                    values: tile.values,
                    windows_done: windows_done as u64,
                    total_windows: total_windows as u64,
                    coarse: false,
                }))?;
            }
            sink.wanted()
        }
    };
    let explanation = methods::run(
        model,
        job.choice.kind,
        fill.as_ref(),
        image,
        &job.params,
        &mut on_progress,
    )?;
    context.speeds.record(
        &job.model,
        job.choice.kind,
        explanation.forward_passes,
        explanation.wall_seconds,
    );
    let method = format!("{:?}", job.choice.kind);
    metrics()
        .run_seconds
        .with_label_values(&[job.model.as_str(), method.as_str()])
        .observe(explanation.wall_seconds);
    metrics()
        .forward_passes
        .with_label_values(&[job.model.as_str()])
        .inc_by(explanation.forward_passes as u64);
    // The other classes' maps, after the last tile (their viewers may have
    // left: they are stored all the same).
    let class_maps: Vec<ClassMap> = explanation.map_classes[1..]
        .iter()
        .zip(&explanation.maps[1..])
        .map(|(&class, values)| ClassMap {
            class_index: class as u32,
            values: values.clone(),
        })
        .collect();
    for class_map in &class_maps {
        let _ = publish(Event::ClassMap(class_map.clone()));
    }
    let map = explanation.map();
    let computed = explanation.windows_computed();
    let mut finished = Finished {
        wall_seconds: explanation.wall_seconds,
        windows_per_second: computed as f64 / explanation.wall_seconds.max(1e-9),
        forward_passes: explanation.forward_passes as u64,
        min_value: map.iter().copied().fold(f32::INFINITY, f32::min),
        max_value: map.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        probabilities: explanation.probabilities.clone(),
        explained_class: explanation.explained as u32,
        sample_spread: explanation.sample_spread.clone().unwrap_or_default(),
        window_probabilities: explanation.window_probabilities.clone(),
        estimated_windows: (explanation.estimated_windows.iter())
            .map(|&cell| cell as u32)
            .collect(),
        replayed: false,
        id: context.id.clone(),
    };
    let record = Record {
        id: context.id.clone(),
        request_key: job.key,
        secret_hash: context.secret_hash,
        created_unix,
        model: job.model.clone(),
        method: format!("{:?}", job.choice.kind),
        explanation: StoredExplanation {
            started: started_event,
            map: Some(Tile {
                x: 0,
                y: 0,
                width: shape.width as u32,
                height: shape.height as u32,
                values: map.to_vec(),
                // As Started announced them: the windows computed.
                windows_done: computed as u64,
                total_windows: computed as u64,
                coarse: false,
            }),
            finished: Some(finished.clone()),
            class_maps,
        },
    };
    // Stored before Finished goes out: a client that saw Finished can rely
    // on the link.
    if let Err(error) = context.store.save(&record) {
        tracing::error!("could not store explanation {}: {error}", context.id);
        metrics().store_errors.inc();
        finished.id.clear();
    }
    sink.stored();
    let _ = publish(Event::Finished(finished));
    Ok(())
}
