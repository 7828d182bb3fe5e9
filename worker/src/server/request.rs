//! Wire request -> domain values, with the defaults the contract documents.

use lens_proto::v1::{ExplainRequest, Method as WireMethod};

use crate::engine::{ExplainParams, InputImage, MapClasses, Quantity, Target};
use crate::input;

use super::status::ServiceError;

pub const DEFAULT_WINDOW: usize = 4;
pub const DEFAULT_STRIDE: usize = 1;
pub const DEFAULT_SAMPLES: usize = 10;
pub const DEFAULT_BATCH: usize = 64;
pub const DEFAULT_TILE: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Pda { samples: usize },
    EfficientPda,
}

impl Method {
    pub fn samples_per_window(&self) -> usize {
        match self {
            Method::Pda { samples } => *samples,
            Method::EfficientPda => 1,
        }
    }
}

#[derive(Debug)]
pub struct Job {
    pub image: InputImage,
    pub method: Method,
    pub params: ExplainParams,
}

fn or_default(value: u32, default: usize) -> usize {
    if value == 0 {
        default
    } else {
        value as usize
    }
}

/// Decodes the image and fills in defaults; the engine validates the numbers.
pub fn job_from_request(request: &ExplainRequest) -> Result<Job, ServiceError> {
    let image = input::digit_from_bytes(&request.image)?;
    let method = match request.method() {
        WireMethod::Pda => Method::Pda {
            samples: request.samples.map_or(DEFAULT_SAMPLES, |s| s as usize),
        },
        WireMethod::EfficientPda | WireMethod::Unspecified => Method::EfficientPda,
    };
    let params = ExplainParams {
        window: or_default(request.window, DEFAULT_WINDOW),
        stride: or_default(request.stride, DEFAULT_STRIDE),
        batch_size: or_default(request.batch_size, DEFAULT_BATCH),
        tile_size: or_default(request.tile_size, DEFAULT_TILE),
        seed: request.seed,
        target: request
            .class_index
            .map_or(Target::Predicted, |c| Target::Class(c as usize)),
        quantity: Quantity::LogOdds,
        maps: MapClasses::All,
    };
    Ok(Job {
        image,
        method,
        params,
    })
}
