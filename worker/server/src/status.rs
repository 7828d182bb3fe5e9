//! The one place where worker errors become gRPC statuses.

use tonic::Status;

use lens_engine::engine::EngineError;
use lens_engine::input::InputError;
use lens_engine::methods::MethodError;

/// What the viewers of a run its creator cancelled are told (CANCELLED).
pub const CANCELLED_BY_CREATOR: &str = "the explanation was cancelled by its creator";
/// What the viewers of a waiting run are told when a newer run of the same
/// browser takes its place (CANCELLED).
pub const REPLACED_BY_NEWER: &str =
    "a newer explanation from the same browser took this one's place in the queue";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A method a model cannot run (its engine errors become `Engine`).
    #[error(transparent)]
    Method(MethodError),
    #[error("unknown method {value}: the methods are 1 to 7 (see the Method enum)")]
    UnknownMethod { value: i32 },
    #[error("unknown removal {value}: the removals are 1 (blur) and 2 (grey)")]
    UnknownRemoval { value: i32 },
    #[error("tile size must be at least {min} (got {tile})")]
    TileTooSmall { tile: usize, min: usize },
    #[error("there is no model {id:?}; the models are: {available}")]
    UnknownModel { id: String, available: String },
    #[error("the worker is busy ({jobs} explanations running or queued): try again in a minute")]
    Busy { jobs: usize },
    #[error("you already have {limit} explanations running: wait for one to finish")]
    TooManyRuns { limit: usize },
    #[error(
        "this network already has {limit} explanations running or queued: wait for one to finish"
    )]
    TooManyRunsFromNetwork { limit: usize },
    #[error(
        "the browser id in x-lens-browser must be 8 to 64 letters, digits, '-' or '_' (got {id:?})"
    )]
    BadBrowserId { id: String },
    #[error("{id:?} is not a share link id (32 hex digits)")]
    BadId { id: String },
    #[error("there is no explanation {id} (it may have been deleted or expired)")]
    NotFound { id: String },
    #[error("only the creator of {id} can delete or cancel it: the secret does not match")]
    WrongSecret { id: String },
    #[error("no explanation {id} is running or queued (it may have finished)")]
    NotRunning { id: String },
    #[error("there is no class {code} (it may have ended)")]
    NoClassroom { code: String },
    #[error("only the teacher of class {code} can do that: the secret does not match")]
    NotTeacher { code: String },
    #[error("the class is full ({limit} students follow it)")]
    ClassroomFull { limit: usize },
    #[error("{limit} classes are open on this worker: try again later")]
    TooManyClassrooms { limit: usize },
    #[error("{method} replaces no window: only PDA, efficient PDA, the sampled mean and occlusion have windows to look inside")]
    NoWindows { method: String },
    #[error("looking inside a window is done by `serve`, not yet by the gateway and worker roles")]
    NotOnGateway,
    #[error("this address has {limit} classes open already: close one first")]
    TooManyClassroomsOpened { limit: usize },
    #[error("too many wrong class codes from this network: try again in {wait_seconds} s, or scan the class's QR code (its link always works)")]
    TooManyMisses { wait_seconds: u64 },
    #[error("the class shown must be a class number or two joined by '-' (got {see:?})")]
    BadShownClass { see: String },
    #[error("a model id has at most {limit} characters")]
    ModelIdTooLong { limit: usize },
    #[error("this explanation already has {limit} viewers: try again later")]
    TooManyViewers { limit: usize },
    #[error("you already watch {limit} explanations live: close one first")]
    TooManyWatches { limit: usize },
    #[error("this network already watches {limit} explanations live: close one first")]
    TooManyWatchesFromNetwork { limit: usize },
    #[error(transparent)]
    Store(#[from] lens_store::StoreError),
    /// A backend's shared services (the cluster's NATS) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    #[error("no worker is serving models now: start one (evidence-lens worker) or try again in a minute")]
    NoWorkers,
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the worker is shutting down: try again in a minute")]
    ShuttingDown,
    #[error("the explanation stopped unexpectedly: {0}")]
    Panicked(String),
}

/// The engine's own errors (a cancelled run, out of memory) keep their
/// meaning whichever way they came.
impl From<MethodError> for ServiceError {
    fn from(error: MethodError) -> Self {
        match error {
            MethodError::Engine(error) => ServiceError::Engine(error),
            other => ServiceError::Method(other),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        let message = error.to_string();
        match error {
            ServiceError::Input(_) => Status::invalid_argument(message),
            ServiceError::Engine(e) if e.is_invalid_argument() => Status::invalid_argument(message),
            ServiceError::Engine(EngineError::Cancelled) => Status::cancelled(message),
            ServiceError::Engine(EngineError::OutOfMemory { .. }) => {
                Status::resource_exhausted(message)
            }
            ServiceError::Engine(_) => Status::internal(message),
            ServiceError::Method(_)
            | ServiceError::UnknownMethod { .. }
            | ServiceError::UnknownRemoval { .. }
            | ServiceError::TileTooSmall { .. }
            | ServiceError::UnknownModel { .. }
            | ServiceError::BadId { .. }
            | ServiceError::BadBrowserId { .. } => Status::invalid_argument(message),
            ServiceError::Busy { .. }
            | ServiceError::TooManyRuns { .. }
            | ServiceError::TooManyRunsFromNetwork { .. } => Status::resource_exhausted(message),
            ServiceError::NotFound { .. }
            | ServiceError::NotRunning { .. }
            | ServiceError::NoClassroom { .. } => Status::not_found(message),
            ServiceError::NotTeacher { .. } => Status::permission_denied(message),
            ServiceError::ClassroomFull { .. }
            | ServiceError::TooManyClassrooms { .. }
            | ServiceError::TooManyClassroomsOpened { .. }
            | ServiceError::TooManyMisses { .. }
            | ServiceError::TooManyViewers { .. }
            | ServiceError::TooManyWatches { .. }
            | ServiceError::TooManyWatchesFromNetwork { .. } => Status::resource_exhausted(message),
            ServiceError::ModelIdTooLong { .. }
            | ServiceError::NoWindows { .. }
            | ServiceError::BadShownClass { .. } => Status::invalid_argument(message),
            ServiceError::NotOnGateway => Status::unimplemented(message),
            ServiceError::ShuttingDown
            | ServiceError::Unavailable(_)
            | ServiceError::NoWorkers
            | ServiceError::Store(lens_store::StoreError::Unavailable { .. }) => {
                Status::unavailable(message)
            }
            ServiceError::WrongSecret { .. } => Status::permission_denied(message),
            ServiceError::Store(_) | ServiceError::Internal(_) | ServiceError::Panicked(_) => {
                Status::internal(message)
            }
        }
    }
}
