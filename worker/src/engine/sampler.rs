//! The marginal sampler: P(x_w) approximated by the same pixels of training
//! images (the paper's choice for MNIST, whose neighbouring pixels are weakly
//! dependent). Its mean is the per-pixel mean of the training images.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::classifier::{InputImage, InputShape};
use super::windows::Window;

pub struct MarginalSampler {
    shape: InputShape,
    /// Training images, each `shape.values()` long, back to back.
    images: Vec<f32>,
    mean: Vec<f32>,
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

    /// Writes the window's values (all channels, row-major, `C x k x k`) of a
    /// training image drawn uniformly at random into `out`.
    pub fn draw(&self, window: Window, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let pick = rng.random_range(0..self.len());
        let per_image = self.shape.values();
        read_window(
            &self.images[pick * per_image..(pick + 1) * per_image],
            self.shape,
            window,
            out,
        );
    }

    /// Writes the window's values of the per-pixel mean into `out`.
    pub fn mean_window(&self, window: Window, out: &mut [f32]) {
        read_window(&self.mean, self.shape, window, out);
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
