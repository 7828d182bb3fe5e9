//! The `EvidenceLens` gRPC service: validates a request against the model it
//! names, runs the engine on a blocking thread that holds the model while it
//! works, and streams events through a channel. A failed send means the
//! client left, so the engine stops after the batch in flight.

use std::ops::ControlFlow;
use std::sync::Arc;

use lens_proto::v1::{
    evidence_lens_server::EvidenceLens, explain_event::Event, BrokenModel, ExplainEvent,
    ExplainRequest, Finished, ListModelsRequest, ListModelsResponse, ListPresetsRequest,
    ListPresetsResponse, ModelInfo, Picture, Preset, Started, Tile,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::digits::SHAPE as DIGIT_SHAPE;
use crate::engine::{EngineError, Progress};
use crate::input::grey_png;
use crate::methods;
use crate::models::{LoadedModel, Resize};

use super::registry::Registry;
use super::request::{job_from_request, model_by_id, Job};
use super::status::ServiceError;

/// Events buffered between the engine and a slow client.
const STREAM_BUFFER: usize = 64;

pub struct LensService {
    registry: Arc<Registry>,
    presets: Vec<Preset>,
}

impl LensService {
    pub fn new(registry: Registry) -> Self {
        let presets = registry
            .digit_presets
            .iter()
            .map(|(label, values)| Preset {
                name: format!("digit {label}"),
                label: *label as u32,
                png: grey_png(values, DIGIT_SHAPE.width as u32, DIGIT_SHAPE.height as u32),
                credit: "MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0), held out".into(),
            })
            .collect();
        LensService {
            registry: Arc::new(registry),
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
        let entry = model_by_id(&self.registry, &request.get_ref().model)?;
        let job = job_from_request(request.get_ref(), &entry.summary)?;
        let class_names = entry.summary.class_names.clone();
        let model = entry.model.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::task::spawn_blocking(move || {
            let model = model
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = run_job(&model, &job, &class_names, &tx) {
                if !matches!(error, ServiceError::Engine(EngineError::Cancelled)) {
                    tracing::warn!("explanation with {} failed: {error}", job.model);
                    let _ = tx.blocking_send(Err(error.into()));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_presets(
        &self,
        request: Request<ListPresetsRequest>,
    ) -> Result<Response<ListPresetsResponse>, Status> {
        let entry = model_by_id(&self.registry, &request.get_ref().model)?;
        let presets = match entry.summary.resize {
            Resize::MnistDigit => self.presets.clone(),
            Resize::ImagenetCrop => self
                .registry
                .photos
                .iter()
                .map(|(name, bytes, credit)| Preset {
                    name: name.clone(),
                    label: 0,
                    png: bytes.clone(),
                    credit: credit.clone(),
                })
                .collect(),
        };
        Ok(Response::new(ListPresetsResponse { presets }))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        let models = self
            .registry
            .entries
            .iter()
            .map(|e| {
                let s = &e.summary;
                ModelInfo {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    channels: s.shape.channels as u32,
                    width: s.shape.width as u32,
                    height: s.shape.height as u32,
                    class_names: s.class_names.clone(),
                    default_window: s.default_window() as u32,
                    conditional_sampler: s.conditional_sampler,
                    marginal_sampler: s.marginal_sampler,
                }
            })
            .collect();
        let broken = self
            .registry
            .broken
            .iter()
            .map(|(folder, error)| BrokenModel {
                folder: folder.clone(),
                error: error.clone(),
            })
            .collect();
        Ok(Response::new(ListModelsResponse { models, broken }))
    }
}

fn run_job(
    model: &LoadedModel,
    job: &Job,
    class_names: &[String],
    tx: &EventSender,
) -> Result<(), ServiceError> {
    let fill = methods::window_fill(model, &job.choice, job.params.window)?;
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
    let shape = job.image.shape;
    let mut on_progress = |progress: Progress| match progress {
        Progress::Started {
            probabilities,
            predicted,
            explained,
            total_windows,
        } => send(Event::Started(Started {
            input: Some(Picture {
                width: shape.width as u32,
                height: shape.height as u32,
                channels: shape.channels as u32,
                values: job.image.values.clone(),
            }),
            probabilities: probabilities.to_vec(),
            predicted_class: predicted as u32,
            explained_class: explained as u32,
            total_windows: total_windows as u64,
            class_names: class_names.to_vec(),
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
    let explanation = methods::run(
        model,
        job.choice.kind,
        fill.as_ref(),
        &job.image,
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
        sample_spread: explanation.sample_spread.clone().unwrap_or_default(),
    }));
    Ok(())
}
