//! Moving values between the host and the model's device.
//!
//! Uploads do not wait for the device: libtorch's ordinary copy to a CUDA
//! device synchronises with its stream, so one such copy per batch (window
//! positions, draws) would make the host wait for every batch to finish
//! before it could queue the next. A copy from pageable host memory made
//! `non_blocking` is staged at once and never waits for queued work.
//! Downloads (finished tiles, the final maps) are the only points where the
//! host waits for the device.

use tch::{Device, Kind, Tensor};

use super::classifier::InputShape;
use super::error::EngineError;

/// Images per forward pass when a request does not say, per kind of device:
/// from `bench_engine`'s sweep on EfficientNet-Lite0. Two CPU cores: 14.7
/// ms per image at 16, 15.6 at 8, 17.3 at 32, 21.4 at 64. An H200: 0.079
/// ms at 64, 0.071 at 256, 0.068 at 1024; 256 is within 5% of the best and
/// brings the first tiles four times sooner than 1024.
pub fn default_batch_size(device: Device) -> usize {
    if device.is_cuda() {
        256
    } else {
        16
    }
}

/// A batch of random images of `shape` on `device` (for timing a network),
/// laid out channels-last as the engine builds its batches, or contiguous.
pub fn random_batch(
    shape: InputShape,
    batch: usize,
    device: Device,
    channels_last: bool,
) -> Tensor {
    let (b, c, h, w) = (
        batch as i64,
        shape.channels as i64,
        shape.height as i64,
        shape.width as i64,
    );
    if channels_last {
        Tensor::rand([b, h, w, c], (Kind::Float, device)).permute([0, 3, 1, 2])
    } else {
        Tensor::rand([b, c, h, w], (Kind::Float, device))
    }
}

/// Host values as a tensor on `device`, without waiting for the device.
pub fn upload<T: tch::kind::Element>(values: &[T], device: Device) -> Tensor {
    let host = Tensor::from_slice(values);
    if device == Device::Cpu {
        host
    } else {
        host.to_device_(device, host.kind(), true, false)
    }
}

/// A tensor's values as f32 on the host, flattened (waits for the device).
pub fn host_f32(t: &Tensor) -> Result<Vec<f32>, EngineError> {
    host(t, Kind::Float)
}

/// `t` on the host as f64 values, flattened.
pub fn host_f64(t: &Tensor) -> Result<Vec<f64>, EngineError> {
    host(t, Kind::Double)
}

fn host<T>(t: &Tensor, kind: Kind) -> Result<Vec<T>, EngineError>
where
    Vec<T>: TryFrom<Tensor, Error = tch::TchError>,
{
    Ok(Vec::<T>::try_from(
        t.f_to_kind(kind)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?
            .f_view([-1])?,
    )?)
}
