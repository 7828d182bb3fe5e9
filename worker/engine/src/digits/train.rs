//! Trains the digits network once at setup (seeded) on the training split.
//! Random small rotations, scalings and shifts stand in for the data the
//! 4,000-digit subset lacks; without them held-out accuracy stays below 98%.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::mnist::{Digits, PIXELS, SIDE};
use super::net::DigitsNet;
use crate::engine::Classifier;

pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Random rotations, scalings and shifts of every batch. Off for the
    /// sanity check's shuffled labels, which the network must memorise.
    pub augment: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 2017,
            augment: true,
        }
    }
}

/// Trains a fresh network; `log` receives one line per epoch.
pub fn train(
    digits: &Digits,
    config: &TrainConfig,
    device: Device,
    log: &mut dyn FnMut(String),
) -> Result<(nn::VarStore, DigitsNet), tch::TchError> {
    tch::manual_seed(config.seed as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let vs = nn::VarStore::new(device);
    let net = DigitsNet::new(&vs.root());
    let mut optimizer = nn::Adam::default().build(&vs, config.learning_rate)?;
    let mut order: Vec<usize> = (0..digits.len()).collect();
    for epoch in 0..config.epochs {
        // Cosine decay to zero: large steps first, fine ones at the end.
        let progress = epoch as f64 / config.epochs as f64;
        optimizer
            .set_lr(config.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(config.batch_size) {
            let images = if config.augment {
                augmented_batch(digits, chunk, &mut rng)
            } else {
                batch_of(digits, chunk)
            }
            .to_device(device);
            let labels: Vec<i64> = chunk.iter().map(|&i| digits.labels[i] as i64).collect();
            let labels = Tensor::from_slice(&labels).to_device(device);
            let loss = net
                .forward_t(&images, true)
                .cross_entropy_for_logits(&labels);
            optimizer.backward_step(&loss);
            loss_sum += loss.double_value(&[]);
            batches += 1;
        }
        log(format!(
            "epoch {:>2}: mean training loss {:.4}",
            epoch + 1,
            loss_sum / batches as f64
        ));
    }
    Ok((vs, net))
}

/// Fraction of `digits` the classifier gets right.
pub fn accuracy(classifier: &dyn Classifier, digits: &Digits) -> f64 {
    let device = classifier.device();
    let _guard = tch::no_grad_guard();
    let mut correct = 0i64;
    for start in (0..digits.len()).step_by(500) {
        let end = (start + 500).min(digits.len());
        let images = Tensor::from_slice(&digits.pixels[start * PIXELS..end * PIXELS])
            .view([(end - start) as i64, 1, SIDE as i64, SIDE as i64])
            .to_device(device);
        let labels: Vec<i64> = digits.labels[start..end]
            .iter()
            .map(|&l| l as i64)
            .collect();
        let predicted = classifier
            .logits(&images)
            .expect("the digits network runs on its own training data")
            .argmax(-1, false)
            .to_device(Device::Cpu);
        correct += predicted
            .eq_tensor(&Tensor::from_slice(&labels))
            .sum(Kind::Int64)
            .int64_value(&[]);
    }
    correct as f64 / digits.len() as f64
}

/// The chosen digits as they are.
fn batch_of(digits: &Digits, chunk: &[usize]) -> Tensor {
    let values: Vec<f32> = chunk
        .iter()
        .flat_map(|&index| digits.image(index).iter().copied())
        .collect();
    Tensor::from_slice(&values).view([chunk.len() as i64, 1, SIDE as i64, SIDE as i64])
}

/// The same digits with their labels shuffled (seeded): the data
/// randomisation test's training set, where no image predicts its label.
pub fn with_shuffled_labels(digits: &Digits, seed: u64) -> Digits {
    let mut shuffled = digits.clone();
    shuffled
        .labels
        .shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    shuffled
}

/// The chosen digits, each randomly rotated (up to 12 degrees), scaled
/// (0.9-1.1) and shifted (up to 2 pixels), with background 0 where the
/// transformed frame uncovers the border.
fn augmented_batch(digits: &Digits, chunk: &[usize], rng: &mut ChaCha8Rng) -> Tensor {
    let mut values = Vec::with_capacity(chunk.len() * PIXELS);
    let mut thetas = Vec::with_capacity(chunk.len() * 6);
    for &index in chunk {
        values.extend_from_slice(digits.image(index));
        let angle = rng.random_range(-12f32..=12.0).to_radians();
        let scale = rng.random_range(0.9f32..=1.1);
        // Shifts in grid_sampler's normalised coordinates ([-1, 1] spans 28 px).
        let (tx, ty) = (
            rng.random_range(-2f32..=2.0) * 2.0 / SIDE as f32,
            rng.random_range(-2f32..=2.0) * 2.0 / SIDE as f32,
        );
        let (c, s) = (angle.cos() / scale, angle.sin() / scale);
        thetas.extend_from_slice(&[c, -s, tx, s, c, ty]);
    }
    let n = chunk.len() as i64;
    let images = Tensor::from_slice(&values).view([n, 1, SIDE as i64, SIDE as i64]);
    let theta = Tensor::from_slice(&thetas).view([n, 2, 3]);
    let grid = Tensor::affine_grid_generator(&theta, [n, 1, SIDE as i64, SIDE as i64], false);
    // Bilinear interpolation, zeros outside, as the pixels are centred.
    images.grid_sampler(&grid, 0, 0, false)
}
