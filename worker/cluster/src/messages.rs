//! The messages gateways and workers exchange through NATS (protobuf, as
//! the public contract; declared here because no page or client sees them).

use lens_proto::v1::{ClassView, ExplainEvent, ExplainRequest, FaithfulnessResult, ModelInfo};

use lens_engine::engine::WindowResults;

/// Work for a worker, as a gateway queues it: an explanation to run, or
/// the deletion and insertion curves of a stored one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterJob {
    /// Where the answer goes: the share link's id of a new explanation
    /// (chosen by the gateway), or a fresh id for curves.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The hash of the creator's secret (who may delete or cancel it).
    #[prost(bytes = "vec", tag = "2")]
    pub secret_hash: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub request: Option<ExplainRequest>,
    #[prost(message, optional, tag = "4")]
    pub curves: Option<CurvesJob>,
}

/// The deletion and insertion curves of stored explanation `id`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CurvesJob {
    #[prost(string, tag = "1")]
    pub id: String,
    /// As in FaithfulnessRequest.
    #[prost(int32, tag = "2")]
    pub removal: i32,
}

/// One entry on a run's subject: an event for its viewers, or how the run
/// ended when it did not finish, or a note between gateways and workers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunEntry {
    #[prost(message, optional, tag = "1")]
    pub event: Option<ExplainEvent>,
    /// The run failed: its viewers get this status.
    #[prost(message, optional, tag = "2")]
    pub failure: Option<Failure>,
    /// The creator cancelled it: the worker stops, viewers' streams end.
    #[prost(bool, tag = "3")]
    pub cancelled: bool,
    /// On the gateway's first entry only: the hash of the creator's secret,
    /// so that any gateway can check a cancel.
    #[prost(bytes = "vec", tag = "4")]
    pub secret_hash: Vec<u8>,
    /// The answer to a `CurvesJob`.
    #[prost(message, optional, tag = "5")]
    pub curves: Option<FaithfulnessResult>,
}

/// The results of a batch of windows (see `engine::WindowResults`), on the
/// run's window subject, for a worker that takes the run over.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WindowBatch {
    #[prost(int64, repeated, tag = "1")]
    pub cells: Vec<i64>,
    #[prost(double, repeated, tag = "2")]
    pub evidence: Vec<f64>,
    #[prost(double, repeated, tag = "3")]
    pub without: Vec<f64>,
    #[prost(double, repeated, tag = "4")]
    pub spread: Vec<f64>,
}

impl From<WindowResults> for WindowBatch {
    fn from(r: WindowResults) -> WindowBatch {
        WindowBatch {
            cells: r.cells,
            evidence: r.evidence,
            without: r.without,
            spread: r.spread,
        }
    }
}

impl From<WindowBatch> for WindowResults {
    fn from(b: WindowBatch) -> WindowResults {
        WindowResults {
            cells: b.cells,
            evidence: b.evidence,
            without: b.without,
            spread: b.spread,
        }
    }
}

/// A gRPC status, as it travels between processes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Failure {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// What one worker offers, renewed while it lives.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerModels {
    #[prost(message, repeated, tag = "1")]
    pub models: Vec<AdvertisedModel>,
}

/// A model as gateways need it: what the page shows, and what checking and
/// keying a request needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdvertisedModel {
    #[prost(message, optional, tag = "1")]
    pub info: Option<ModelInfo>,
    /// Photos are cropped as for ImageNet; else a digit.
    #[prost(bool, tag = "2")]
    pub imagenet_crop: bool,
    #[prost(bool, tag = "3")]
    pub half_precision: bool,
    #[prost(uint32, tag = "4")]
    pub default_batch: u32,
    /// The network's speed on the worker's device (for estimates).
    #[prost(double, tag = "5")]
    pub passes_per_second: f64,
    /// What runs its window methods ("torch", "onnx"; empty: torch).
    #[prost(string, tag = "6")]
    pub runtime: String,
}

/// A class as every gateway sees it: who teaches it (the hash of the
/// teacher's secret), the link token, what the teacher shows, whether it
/// has ended.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClassRecord {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(bytes = "vec", tag = "2")]
    pub teacher_hash: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub view: Option<ClassView>,
    #[prost(bool, tag = "4")]
    pub ended: bool,
}

impl RunEntry {
    pub fn event(event: ExplainEvent) -> RunEntry {
        RunEntry {
            event: Some(event),
            ..Default::default()
        }
    }

    pub fn failure(status: &tonic::Status) -> RunEntry {
        RunEntry {
            failure: Some(Failure {
                code: status.code() as i32,
                message: status.message().to_string(),
            }),
            ..Default::default()
        }
    }

    /// A cancel: the worker stops at it, and viewers hear CANCELLED with
    /// `why` (its creator cancelled it, or a newer run replaced it).
    pub fn cancelled(why: &str) -> RunEntry {
        RunEntry {
            cancelled: true,
            ..RunEntry::failure(&tonic::Status::cancelled(why))
        }
    }

    /// Whether the run ends here: Finished, a failure or a cancel.
    pub fn ends_run(&self) -> bool {
        let finished = self.event.as_ref().and_then(|e| e.event.as_ref());
        self.cancelled
            || self.failure.is_some()
            || matches!(
                finished,
                Some(lens_proto::v1::explain_event::Event::Finished(_))
            )
    }

    pub fn encoded(&self) -> bytes::Bytes {
        prost::Message::encode_to_vec(self).into()
    }
}

impl Failure {
    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(tonic::Code::from_i32(self.code), self.message.clone())
    }
}
