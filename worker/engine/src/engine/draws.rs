//! Randomness that belongs to the window, not to the schedule.
//!
//! Every random number a window uses comes from its own ChaCha8 stream,
//! selected by the seed and the window's position (never by its place in a
//! batch, a tile or a schedule). Within the stream the samples are drawn in
//! order, so draw s of window (x, y) is a function of (seed, x, y, s) alone:
//! batch size, tile size, schedule and process (server or CLI) cannot change
//! a map. The draws are made on the host and uploaded with the batch; they
//! are the same for a CPU and a GPU run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use super::windows::Window;

/// The random stream of one window.
pub fn window_stream(seed: u64, window: Window) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((window.y as u64) << 32) | window.x as u64);
    rng
}

/// A standard normal by Box-Muller from two uniforms of the stream.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `samples` draws of `n` standard normals per window: `[B * S, n]` f64 on
/// `device`, the samples of a window one after another.
pub fn normals(seed: u64, windows: &[Window], samples: usize, n: usize, device: Device) -> Tensor {
    let mut values = Vec::with_capacity(windows.len() * samples * n);
    for &window in windows {
        let mut rng = window_stream(seed, window);
        values.extend((0..samples * n).map(|_| standard_normal(&mut rng)));
    }
    upload(
        &values,
        &[(windows.len() * samples) as i64, n as i64],
        device,
    )
}

/// `samples` indices below `count` per window (which training image each
/// sample copies): `[B * S]` i64 on `device`.
pub fn picks(
    seed: u64,
    windows: &[Window],
    samples: usize,
    count: usize,
    device: Device,
) -> Tensor {
    let mut values = Vec::with_capacity(windows.len() * samples);
    for &window in windows {
        let mut rng = window_stream(seed, window);
        values.extend((0..samples).map(|_| rng.random_range(0..count) as i64));
    }
    upload(&values, &[values.len() as i64], device)
}

fn upload<T: tch::kind::Element>(values: &[T], shape: &[i64], device: Device) -> Tensor {
    super::device::upload(values, device).view(shape)
}
