//! The marginal sampler: P(x_w) approximated by the same pixels of training
//! images (the paper's choice for MNIST, whose neighbouring pixels are weakly
//! dependent). Its mean is the per-pixel mean of the training images.

use std::sync::Mutex;

use tch::{Device, Tensor};

use super::classifier::{InputImage, InputShape};
use super::draws;
use super::perturb::DeviceInput;
use super::windows::Window;

pub struct MarginalSampler {
    shape: InputShape,
    /// Training images, each `shape.values()` long, back to back.
    images: Vec<f32>,
    mean: Vec<f32>,
    /// The images and the mean on the device last used, both flat.
    on_device: Mutex<Option<(Device, Tensor, Tensor)>>,
}

impl MarginalSampler {
    /// `images` holds whole images of `shape`, back to back (at least one).
    pub fn new(shape: InputShape, images: Vec<f32>) -> Self {
        let per_image = shape.values();
        assert!(!images.is_empty() && images.len().is_multiple_of(per_image));
        let count = images.len() / per_image;
        let mut sum = vec![0f64; per_image];
        for image in images.chunks_exact(per_image) {
            for (s, v) in sum.iter_mut().zip(image) {
                *s += *v as f64;
            }
        }
        let mean = sum.iter().map(|s| (s / count as f64) as f32).collect();
        MarginalSampler {
            shape,
            images,
            mean,
            on_device: Mutex::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.images.len() / self.shape.values()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The training images and their mean on `device` (uploaded once).
    fn tensors(&self, device: Device) -> (Tensor, Tensor) {
        let mut cached = self.on_device.lock().unwrap_or_else(|e| e.into_inner());
        match cached.as_ref() {
            Some((d, images, mean)) if *d == device => {
                (images.shallow_clone(), mean.shallow_clone())
            }
            _ => {
                let images = Tensor::from_slice(&self.images).to_device(device);
                let mean = Tensor::from_slice(&self.mean).to_device(device);
                *cached = Some((device, images.shallow_clone(), mean.shallow_clone()));
                (images, mean)
            }
        }
    }

    /// S draws per window: the window's pixels (all channels) of a training
    /// image picked uniformly at random from the window's own stream,
    /// `[B * S, C * k * k]` on the input's device.
    pub fn draw_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        samples: usize,
        seed: u64,
    ) -> Tensor {
        let (images, _) = self.tensors(input.device);
        let picks = draws::picks(seed, windows, samples, self.len(), input.device);
        let first_value = (picks * self.shape.values() as i64).unsqueeze(1);
        let targets =
            input
                .targets(windows)
                .repeat_interleave_self_int(samples as i64, Some(0), None::<i64>);
        images.take(&(first_value + targets))
    }

    /// The per-pixel mean over each window, `[B, C * k * k]`.
    pub fn mean_batch(&self, input: &DeviceInput, windows: &[Window]) -> Tensor {
        let (_, mean) = self.tensors(input.device);
        mean.take(&input.targets(windows))
    }
}

/// Copies the window's values (every channel) of a `shape` image into `out`.
pub fn read_window(source: &[f32], shape: InputShape, window: Window, out: &mut [f32]) {
    let k = window.size;
    for c in 0..shape.channels {
        for (r, row) in (window.y..window.y + k).enumerate() {
            let start = c * shape.pixels() + row * shape.width + window.x;
            out[(c * k + r) * k..(c * k + r + 1) * k].copy_from_slice(&source[start..start + k]);
        }
    }
}

/// Overwrites the window of `image` with `values` (as `read_window` lays them out).
pub fn write_window(image: &mut InputImage, window: Window, values: &[f32]) {
    let shape = image.shape;
    let k = window.size;
    for c in 0..shape.channels {
        for (r, row) in (window.y..window.y + k).enumerate() {
            let start = c * shape.pixels() + row * shape.width + window.x;
            image.values[start..start + k]
                .copy_from_slice(&values[(c * k + r) * k..(c * k + r + 1) * k]);
        }
    }
}
