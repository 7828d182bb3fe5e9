//! The conditional Gaussian for a whole batch of windows at once, on the
//! model's device: the ring values gathered by index, the conditional means
//! as one matrix product per border case, samples as mean + L z.
//!
//! Every window's ring is gathered at full size (all `n2` ring positions of
//! the l x l patch); a ring pixel outside the image reads 0 and its column
//! of the case's gain matrix is 0, so one layout serves every border case.
//! The matrices of each case are the host's (`Conditioner`), computed once,
//! padded to that layout and kept on the device. Everything is f64, so the
//! means agree with the per-window path to its precision, whatever the
//! batch.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::{Clip, ConditionalGaussian};
use crate::engine::classifier::InputShape;
use crate::engine::device::upload;
use crate::engine::draws;
use crate::engine::error::EngineError;
use crate::engine::perturb::DeviceInput;
use crate::engine::windows::Window;

/// What the bulk path keeps on one device.
pub(super) struct DeviceCache {
    device: Device,
    /// mu of the window's positions, `[n1]`.
    window_mean: Tensor,
    /// mu of the full ring, `[n2]`.
    ring_mean: Tensor,
    /// Channel, row and column of each ring position relative to the
    /// window's top-left pixel, `[n2]` i64 each.
    ring_channel: Tensor,
    ring_dy: Tensor,
    ring_dx: Tensor,
    /// Per border case: Sigma_12 Sigma_22^-1 transposed and padded to the
    /// full ring, `[n2, n1]`, and L^T, `[n1, n1]`.
    cases: HashMap<Clip, (Tensor, Tensor)>,
}

impl ConditionalGaussian {
    /// Patch indices (channel, row, column) of the window and of the full ring.
    fn layout(&self) -> (Vec<usize>, Vec<usize>) {
        let (p, l, k) = (self.padding, self.stats.side, self.window);
        let (mut window, mut ring) = (Vec::new(), Vec::new());
        for index in 0..self.stats.dimension() {
            let (r, q) = ((index / l) % l, index % l);
            if (p..p + k).contains(&r) && (p..p + k).contains(&q) {
                window.push(index);
            } else {
                ring.push(index);
            }
        }
        (window, ring)
    }

    fn new_cache(&self, device: Device) -> DeviceCache {
        let (window, ring) = self.layout();
        let (p, l) = (self.padding as i64, self.stats.side);
        let mean = |indices: &[usize]| {
            let values: Vec<f64> = indices.iter().map(|&i| self.stats.mean[i]).collect();
            Tensor::from_slice(&values).to_device(device)
        };
        let part = |f: &dyn Fn(usize) -> i64| {
            let values: Vec<i64> = ring.iter().map(|&i| f(i)).collect();
            Tensor::from_slice(&values).to_device(device)
        };
        DeviceCache {
            device,
            window_mean: mean(&window),
            ring_mean: mean(&ring),
            ring_channel: part(&|i| (i / (l * l)) as i64),
            ring_dy: part(&|i| ((i / l) % l) as i64 - p),
            ring_dx: part(&|i| (i % l) as i64 - p),
            cases: HashMap::new(),
        }
    }

    /// The gain (transposed, padded to the full ring) and L^T of a case.
    fn case_matrices(&self, cache: &DeviceCache, clip: Clip) -> (Tensor, Tensor) {
        let host = self.conditioner(clip);
        let (window, ring) = self.layout();
        let (n1, n2) = (window.len(), ring.len());
        let column: HashMap<usize, usize> = ring.iter().enumerate().map(|(j, &i)| (i, j)).collect();
        let visible = host.ring.len();
        let mut gain = vec![0f64; n2 * n1];
        for (i, row) in host.gain.chunks_exact(visible.max(1)).enumerate().take(n1) {
            for (g, patch_index) in row.iter().zip(&host.ring) {
                gain[column[patch_index] * n1 + i] = *g;
            }
        }
        let to_device = |values: &[f64], rows: usize, columns: usize| {
            Tensor::from_slice(values)
                .view([rows as i64, columns as i64])
                .to_device(cache.device)
        };
        let cholesky = to_device(&host.cholesky, n1, n1).tr().contiguous();
        (to_device(&gain, n2, n1), cholesky)
    }

    /// Runs `f` with the device cache, (re)built for `device` when needed,
    /// holding the matrices of `clips`.
    fn with_cache<T>(
        &self,
        device: Device,
        clips: &[Clip],
        f: impl FnOnce(&DeviceCache) -> T,
    ) -> T {
        let mut slot = self.on_device.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|c| c.device != device) {
            *slot = Some(self.new_cache(device));
        }
        let cache = slot.as_mut().expect("just built");
        for &clip in clips {
            if !cache.cases.contains_key(&clip) {
                let matrices = self.case_matrices(cache, clip);
                cache.cases.insert(clip, matrices);
            }
        }
        f(cache)
    }

    /// Windows grouped by border case, in order of first appearance.
    fn groups(&self, shape: InputShape, windows: &[Window]) -> Vec<(Clip, Vec<i64>)> {
        let mut groups: Vec<(Clip, Vec<i64>)> = Vec::new();
        for (row, &window) in windows.iter().enumerate() {
            let clip = self.clip(shape, window);
            match groups.iter_mut().find(|(c, _)| *c == clip) {
                Some((_, rows)) => rows.push(row as i64),
                None => groups.push((clip, vec![row as i64])),
            }
        }
        groups
    }

    /// x_2 - mu_2 of every window's full ring, 0 outside the image: `[B, n2]`.
    fn ring_deviation(
        &self,
        cache: &DeviceCache,
        input: &DeviceInput,
        windows: &[Window],
    ) -> Tensor {
        let device = input.device;
        let column = |f: &dyn Fn(&Window) -> i64| {
            let values: Vec<i64> = windows.iter().map(f).collect();
            upload(&values, device).unsqueeze(1)
        };
        let (height, width) = (input.shape.height as i64, input.shape.width as i64);
        let rows = column(&|w| w.y as i64) + cache.ring_dy.unsqueeze(0);
        let columns = column(&|w| w.x as i64) + cache.ring_dx.unsqueeze(0);
        let inside = rows
            .ge(0)
            .logical_and(&rows.lt(height))
            .logical_and(&columns.ge(0))
            .logical_and(&columns.lt(width));
        let index = (cache.ring_channel.unsqueeze(0) * (height * width) + &rows * width + &columns)
            .where_scalarother(&inside, 0);
        let values = input.values.take(&index).to_kind(Kind::Double);
        (values - cache.ring_mean.unsqueeze(0)) * inside.to_kind(Kind::Double)
    }

    /// Applies each group's matrix (`pick` chooses it from the case) to its
    /// rows of `rows_by_window` (`[B, ...]`): `[B, ..., n1]`.
    fn per_case(
        &self,
        cache: &DeviceCache,
        groups: &[(Clip, Vec<i64>)],
        rows_by_window: &Tensor,
        pick: impl Fn(&(Tensor, Tensor)) -> &Tensor,
    ) -> Tensor {
        if let [(clip, _)] = groups {
            return rows_by_window.matmul(pick(&cache.cases[clip]));
        }
        let mut size = rows_by_window.size();
        *size.last_mut().expect("a matrix") = cache.window_mean.size()[0];
        let mut out = Tensor::zeros(size.as_slice(), (Kind::Double, cache.device));
        for (clip, rows) in groups {
            let rows = upload(rows, cache.device);
            let part = rows_by_window
                .index_select(0, &rows)
                .matmul(pick(&cache.cases[clip]));
            let _ = out.index_copy_(0, &rows, &part);
        }
        out
    }

    /// mu_1|2 of every window given its visible ring: `[B, n1]` f64 on the
    /// input's device, laid out like `read_window`.
    pub fn mean_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
    ) -> Result<Tensor, EngineError> {
        self.check_input(input)?;
        let groups = self.groups(input.shape, windows);
        let clips: Vec<Clip> = groups.iter().map(|(c, _)| *c).collect();
        Ok(self.with_cache(input.device, &clips, |cache| {
            self.mean_with(cache, &groups, input, windows)
        }))
    }

    fn mean_with(
        &self,
        cache: &DeviceCache,
        groups: &[(Clip, Vec<i64>)],
        input: &DeviceInput,
        windows: &[Window],
    ) -> Tensor {
        let deviation = self.ring_deviation(cache, input, windows);
        self.per_case(cache, groups, &deviation, |(gain, _)| gain) + cache.window_mean.unsqueeze(0)
    }

    /// S samples per window, mu_1|2 + L z with z from the window's own
    /// stream, clipped to the data range: `[B * S, n1]` f64.
    pub fn sample_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        samples: usize,
        seed: u64,
    ) -> Result<Tensor, EngineError> {
        let n1 = self.window_values();
        let z = draws::normals(seed, windows, samples, n1, input.device);
        self.samples_from(input, windows, &z)
    }

    /// mu_1|2 + L z, clipped to the data range, for given standard-normal
    /// coordinates `z` (`[B * S, n1]`, the S rows of each window together):
    /// `[B * S, n1]` f64. How z is drawn is the estimator's choice.
    pub fn samples_from(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        z: &Tensor,
    ) -> Result<Tensor, EngineError> {
        self.check_input(input)?;
        let n1 = self.window_values() as i64;
        let rows = z.size()[0];
        let (b, samples) = (windows.len() as i64, rows / (windows.len().max(1) as i64));
        let groups = self.groups(input.shape, windows);
        let clips: Vec<Clip> = groups.iter().map(|(c, _)| *c).collect();
        let z = z.f_to_kind(Kind::Double)?.f_view([b, samples, n1])?;
        Ok(self.with_cache(input.device, &clips, |cache| {
            let mean = self.mean_with(cache, &groups, input, windows);
            let noise = self.per_case(cache, &groups, &z, |(_, cholesky_t)| cholesky_t);
            (mean.unsqueeze(1) + noise)
                .clamp(self.range.0 as f64, self.range.1 as f64)
                .view([rows, n1])
        }))
    }

    /// Values of one window (channels x k x k).
    pub fn window_values(&self) -> usize {
        self.window * self.window * self.stats.channels
    }

    fn check_input(&self, input: &DeviceInput) -> Result<(), EngineError> {
        if input.shape.channels != self.stats.channels || input.window != self.window {
            return Err(EngineError::Statistics(format!(
                "fitted for {}-channel {1} x {1} windows, asked for {2}-channel {3} x {3}",
                self.stats.channels, self.window, input.shape.channels, input.window
            )));
        }
        Ok(())
    }
}
