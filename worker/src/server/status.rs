//! The one place where worker errors become gRPC statuses.

use tonic::Status;

use crate::engine::EngineError;
use crate::input::InputError;
use crate::methods::MethodError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Method(#[from] MethodError),
    #[error("there is no model {id:?}; the models are: {available}")]
    UnknownModel { id: String, available: String },
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        let message = error.to_string();
        match error {
            ServiceError::Input(_) => Status::invalid_argument(message),
            ServiceError::Engine(e) if e.is_invalid_argument() => Status::invalid_argument(message),
            ServiceError::Engine(EngineError::Cancelled) => Status::cancelled(message),
            ServiceError::Engine(_) => Status::internal(message),
            ServiceError::Method(MethodError::Engine(e)) if !e.is_invalid_argument() => {
                Status::internal(message)
            }
            ServiceError::Method(_) | ServiceError::UnknownModel { .. } => {
                Status::invalid_argument(message)
            }
        }
    }
}
