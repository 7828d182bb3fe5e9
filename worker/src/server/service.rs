//! The `EvidenceLens` gRPC service: validates a request, runs the engine on a
//! blocking thread that owns the model while it works, and streams events
//! through a channel. A failed send means the client left, so the engine
//! stops after the batch in flight.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use lens_proto::v1::{
    evidence_lens_server::EvidenceLens, explain_event::Event, ExplainEvent, ExplainRequest,
    Finished, GreyImage, ListPresetsRequest, ListPresetsResponse, Preset, Started, Tile,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::digits::{mnist::CLASSES, DigitsKit, SHAPE};
use crate::engine::{self, EfficientPda, Pda, Progress, WindowFill};
use crate::input::grey_png;

use super::request::{job_from_request, Job, Method};
use super::status::ServiceError;

/// Events buffered between the engine and a slow client.
const STREAM_BUFFER: usize = 64;

pub struct LensService {
    /// The model and its data; the lock makes one job at a time own the device.
    kit: Arc<Mutex<DigitsKit>>,
    presets: Vec<Preset>,
}

impl LensService {
    pub fn new(kit: DigitsKit) -> Self {
        let presets = kit
            .presets
            .iter()
            .map(|(label, values)| Preset {
                name: format!("digit {label}"),
                label: *label as u32,
                png: grey_png(values, SHAPE.width as u32, SHAPE.height as u32),
            })
            .collect();
        LensService {
            kit: Arc::new(Mutex::new(kit)),
            presets,
        }
    }
}

type EventSender = mpsc::Sender<Result<ExplainEvent, Status>>;

#[tonic::async_trait]
impl EvidenceLens for LensService {
    type ExplainStream = ReceiverStream<Result<ExplainEvent, Status>>;

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<Self::ExplainStream>, Status> {
        let job = job_from_request(request.get_ref())?;
        job.params
            .validate(SHAPE, CLASSES, job.method.samples_per_window())
            .map_err(ServiceError::from)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let kit = self.kit.clone();
        tokio::task::spawn_blocking(move || {
            let kit = kit.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = run_job(&kit, &job, &tx) {
                if !matches!(error, engine::EngineError::Cancelled) {
                    tracing::warn!("explanation failed: {error}");
                    let _ = tx.blocking_send(Err(ServiceError::from(error).into()));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_presets(
        &self,
        _request: Request<ListPresetsRequest>,
    ) -> Result<Response<ListPresetsResponse>, Status> {
        Ok(Response::new(ListPresetsResponse {
            presets: self.presets.clone(),
        }))
    }
}

fn run_job(kit: &DigitsKit, job: &Job, tx: &EventSender) -> Result<(), engine::EngineError> {
    let fill: Box<dyn WindowFill> = match job.method {
        Method::Pda { samples } => Box::new(Pda {
            sampler: &kit.sampler,
            samples,
        }),
        Method::EfficientPda => Box::new(EfficientPda {
            sampler: &kit.sampler,
        }),
    };
    let send = |event: Event| {
        if tx
            .blocking_send(Ok(ExplainEvent { event: Some(event) }))
            .is_ok()
        {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let mut on_progress = |progress: Progress| match progress {
        Progress::Started {
            probabilities,
            predicted,
            explained,
            total_windows,
        } => send(Event::Started(Started {
            input: Some(GreyImage {
                width: SHAPE.width as u32,
                height: SHAPE.height as u32,
                values: job.image.values.clone(),
            }),
            probabilities: probabilities.to_vec(),
            predicted_class: predicted as u32,
            explained_class: explained as u32,
            total_windows: total_windows as u64,
            class_names: (0..CLASSES).map(|c| c.to_string()).collect(),
        })),
        Progress::Batch {
            tiles,
            windows_done,
            total_windows,
        } => {
            for tile in tiles {
                send(Event::Tile(Tile {
                    x: tile.rect.x as u32,
                    y: tile.rect.y as u32,
                    width: tile.rect.width as u32,
                    height: tile.rect.height as u32,
                    values: tile.values,
                    windows_done: windows_done as u64,
                    total_windows: total_windows as u64,
                }))?;
            }
            if tx.is_closed() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    };
    let explanation = engine::explain(
        &kit.model,
        &job.image,
        fill.as_ref(),
        &job.params,
        &mut on_progress,
    )?;
    let map = explanation.map();
    let _ = send(Event::Finished(Finished {
        wall_seconds: explanation.wall_seconds,
        windows_per_second: explanation.windows as f64 / explanation.wall_seconds.max(1e-9),
        forward_passes: explanation.forward_passes as u64,
        min_value: map.iter().copied().fold(f32::INFINITY, f32::min),
        max_value: map.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        probabilities: explanation.probabilities.clone(),
        explained_class: explanation.explained as u32,
    }));
    Ok(())
}
