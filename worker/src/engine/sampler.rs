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

    /// Copies the window from a training image drawn uniformly at random.
    pub fn sample_into(&self, image: &mut InputImage, window: Window, rng: &mut ChaCha8Rng) {
        let pick = rng.random_range(0..self.len());
        let per_image = self.shape.values();
        copy_window(
            &self.images[pick * per_image..(pick + 1) * per_image],
            image,
            window,
        );
    }

    /// Copies the window from the per-pixel mean.
    pub fn mean_into(&self, image: &mut InputImage, window: Window) {
        copy_window(&self.mean, image, window);
    }
}

/// Copies the window's pixels, every channel, from `source` (same shape).
fn copy_window(source: &[f32], image: &mut InputImage, window: Window) {
    let InputShape {
        channels,
        height,
        width,
    } = image.shape;
    for c in 0..channels {
        for row in window.y..window.y + window.size {
            let start = c * height * width + row * width + window.x;
            let span = start..start + window.size;
            image.values[span.clone()].copy_from_slice(&source[span]);
        }
    }
}
