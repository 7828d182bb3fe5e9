//! One run of a window method: its results per grid cell, each batch of
//! windows through the network and its reduction on the device, windows
//! restored from a run taken over, and final tiles read back to the host.
//! `explain` (every window) and `refine` (a budget) both drive it.

use std::ops::ControlFlow;

use tch::{Device, Kind, Tensor};

use super::classifier::{logits_of, Classifier};
use super::device::{host_f32, host_f64, upload};
use super::error::EngineError;
use super::evidence::{Laplace, Quantity};
use super::fill::WindowFill;
use super::grid::EvidenceGrid;
use super::perturb::DeviceInput;
use super::progress::{MapTile, Progress, WindowResults};
use super::windows::{Rect, Window};

/// What a run knows of its windows so far, one value per grid cell.
pub(super) struct RunResults {
    /// Evidence of every mapped class, `[M, cells]` f64.
    pub(super) evidence: Tensor,
    /// P(explained class) without each window, `[cells]` f64.
    pub(super) without: Tensor,
    /// How much the S samples of a window disagree (S > 1 only), `[cells]`.
    pub(super) spread: Option<Tensor>,
}

impl RunResults {
    pub(super) fn new(classes: usize, cells: usize, samples: usize, device: Device) -> Self {
        let double = (Kind::Double, device);
        RunResults {
            evidence: Tensor::zeros([classes as i64, cells as i64], double),
            without: Tensor::zeros([cells as i64], double),
            spread: (samples > 1).then(|| Tensor::zeros([cells as i64], double)),
        }
    }

    /// Each tensor as `[rows, cells]` (the same memory).
    pub(super) fn all(&self) -> Vec<Tensor> {
        let cells = self.without.size()[0];
        let mut all = vec![self.evidence.shallow_clone(), self.without.view([1, cells])];
        all.extend(self.spread.iter().map(|s| s.view([1, cells])));
        all
    }
}

/// One run of a window method: what each batch needs, and the results.
pub(super) struct WindowRun<'a> {
    pub(super) model: &'a dyn Classifier,
    pub(super) fill: &'a dyn WindowFill,
    pub(super) input: &'a DeviceInput,
    pub(super) outputs: &'a ClassOutputs<'a>,
    /// value(c | x) of every mapped class, `[1, M]`.
    pub(super) value_x: &'a Tensor,
    pub(super) grid: &'a EvidenceGrid,
    pub(super) windows_per_batch: usize,
    pub(super) seed: u64,
    /// Report each batch's results (`Progress::Windows`).
    pub(super) report: bool,
    pub(super) results: RunResults,
    pub(super) forward_passes: usize,
}

impl WindowRun<'_> {
    /// Computes the windows of one batch into their cells.
    pub(super) fn compute(
        &mut self,
        batch: &[Window],
        on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<(), EngineError> {
        let device = self.input.device;
        let BatchOutcome {
            per_window,
            p,
            p_without,
            ..
        } = self.outputs.run_batch(
            self.model,
            self.fill,
            self.input,
            self.value_x,
            batch,
            self.windows_per_batch,
            self.seed,
        )?;
        let samples = self.fill.samples_per_window();
        self.forward_passes += batch.len() * samples;
        let results = &mut self.results;
        let cells = self.grid.cell_indices(batch, device);
        // `[windows, M]` as `[M, windows]` for the grid.
        let _ = results
            .evidence
            .f_index_copy_(1, &cells, &per_window.f_tr()?)?;
        let _ = results.without.f_index_copy_(0, &cells, &p_without)?;
        let deviation = match results.spread.as_mut() {
            Some(spread) => {
                let deviation = p.f_std_correction([1i64].as_slice(), 1, false)?;
                let _ = spread.f_index_copy_(0, &cells, &deviation)?;
                Some(deviation)
            }
            None => None,
        };
        if self.report {
            let results = WindowResults {
                cells: batch.iter().map(|w| self.grid.cell_of(w) as i64).collect(),
                evidence: host_f64(&per_window)?,
                without: host_f64(&p_without)?,
                spread: deviation.as_ref().map_or(Ok(Vec::new()), host_f64)?,
            };
            if on_progress(Progress::Windows(results)).is_break() {
                return Err(EngineError::Cancelled);
            }
        }
        Ok(())
    }
}

/// Writes the results of windows computed before into their cells, if
/// they are complete (every value of every window); whether they were.
pub(super) fn restore_cells(
    done: &WindowResults,
    results: &mut RunResults,
    device: Device,
) -> Result<bool, EngineError> {
    let n = done.cells.len();
    let classes = results.evidence.size()[0] as usize;
    let complete = done.evidence.len() == n * classes
        && done.without.len() == n
        && done.spread.len() == if results.spread.is_some() { n } else { 0 };
    if n == 0 || !complete {
        return Ok(false);
    }
    let cells = upload(&done.cells, device);
    let values = upload(&done.evidence, device).f_view([n as i64, classes as i64])?;
    let _ = results.evidence.f_index_copy_(1, &cells, &values.f_tr()?)?;
    let _ = results
        .without
        .f_index_copy_(0, &cells, &upload(&done.without, device))?;
    if let Some(spread) = results.spread.as_mut() {
        let _ = spread.f_index_copy_(0, &cells, &upload(&done.spread, device))?;
    }
    Ok(true)
}

/// The windows of one batch. On CUDA a short last batch is filled up with
/// copies of its last window (their rows are dropped after the pass), so
/// every pass of a run has the same shape: the first pass of each new shape
/// costs seconds there (TorchScript specialises its graph and cuDNN plans
/// its convolutions for it; measured 2.4 s on an H200), which a run's odd
/// last batch would otherwise pay anew for almost every request.
fn same_shape_batch(batch: &[Window], windows_per_batch: usize, device: Device) -> Vec<Window> {
    let mut windows = batch.to_vec();
    if device.is_cuda() {
        windows.resize(windows_per_batch.max(batch.len()), batch[batch.len() - 1]);
    }
    windows
}

/// The outputs of the mapped classes, reduced on the device.
pub(super) struct ClassOutputs<'a> {
    pub(super) laplace: Laplace,
    pub(super) quantity: Quantity,
    /// The mapped classes, `[M]` i64.
    pub(super) classes: &'a Tensor,
    /// The fill's weights of a window's S samples, `[S]` f64 (`None`: the
    /// plain mean).
    pub(super) weights: Option<Tensor>,
}

/// The fill's sample weights on the device, checked: one per sample,
/// summing to 1.
pub(super) fn sample_weights(
    fill: &dyn WindowFill,
    device: Device,
) -> Result<Option<Tensor>, EngineError> {
    let Some(weights) = fill.sample_weights() else {
        return Ok(None);
    };
    let sum: f64 = weights.iter().sum();
    if weights.len() != fill.samples_per_window() || (sum - 1.0).abs() > 1e-9 {
        return Err(EngineError::Statistics(format!(
            "the fill gives {} weights summing to {sum} for {} samples",
            weights.len(),
            fill.samples_per_window()
        )));
    }
    Ok(Some(upload(&weights, device)))
}

/// One batch of windows through the network: what the map (and the window
/// panel, `inspect.rs`) take from it.
pub(super) struct BatchOutcome {
    /// The fill's replacements, `[windows * S, C * k * k]` (rows of windows
    /// added to fill a CUDA batch up included).
    pub(super) replacement: Tensor,
    /// Evidence per window and mapped class, `[windows, M]` f64.
    pub(super) per_window: Tensor,
    /// P(explained class) with each sample, `[windows, S]` f64.
    pub(super) p: Tensor,
    /// Its average per window (weighted as the fill weighs), `[windows]`.
    pub(super) p_without: Tensor,
}

impl ClassOutputs<'_> {
    /// Fills, perturbs and classifies `batch` (filled up to
    /// `windows_per_batch` on CUDA) and reduces the outputs; `value_x` is
    /// the unperturbed image's value, `[1, M]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_batch(
        &self,
        model: &dyn Classifier,
        fill: &dyn WindowFill,
        input: &DeviceInput,
        value_x: &Tensor,
        batch: &[Window],
        windows_per_batch: usize,
        seed: u64,
    ) -> Result<BatchOutcome, EngineError> {
        let samples = fill.samples_per_window();
        let padded = same_shape_batch(batch, windows_per_batch, model.device());
        let replacement = fill.fill_batch(input, &padded, seed)?;
        let images = input.perturbed(&padded, samples, &replacement)?;
        let logits = logits_of(model, &images)?.f_narrow(0, 0, (batch.len() * samples) as i64)?;
        // One softmax per batch serves the map, the windows' P(c) and the spread.
        let probabilities = self.probabilities(&logits)?;
        let value = self.value(&logits, &probabilities, batch.len(), samples)?;
        let per_window = (value_x - value).f_contiguous()?;
        let p = probabilities
            .f_select(1, 0)?
            .f_view([batch.len() as i64, samples as i64])?;
        let p_without = self
            .average(&p, batch.len(), samples)?
            .f_view([batch.len() as i64])?;
        Ok(BatchOutcome {
            replacement,
            per_window,
            p,
            p_without,
        })
    }

    /// The mean of each window's S rows of `t` (`[windows * S, ...]` or
    /// `[windows, S, ...]`), weighted when the fill weighs its samples:
    /// `[windows, X]` f64.
    pub(super) fn average(
        &self,
        t: &Tensor,
        windows: usize,
        samples: usize,
    ) -> Result<Tensor, EngineError> {
        let t = t.f_view([windows as i64, samples as i64, -1])?;
        Ok(match &self.weights {
            Some(w) if samples > 1 => t
                .f_to_kind(Kind::Double)?
                .f_mul(&w.f_view([1, samples as i64, 1])?)?
                .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?,
            _ => t.f_mean_dim([1i64].as_slice(), false, Kind::Double)?,
        })
    }

    /// P(c | image) of the mapped classes, `[rows, M]` f64.
    pub(super) fn probabilities(&self, logits: &Tensor) -> Result<Tensor, EngineError> {
        Ok(logits
            .f_softmax(-1, Kind::Float)?
            .f_index_select(1, self.classes)?
            .f_to_kind(Kind::Double)?)
    }

    /// The quantity of every mapped class per window, `[windows, M]` f64:
    /// probabilities (`self.probabilities(logits)`) averaged over the S
    /// samples of a window (Algorithm 1 line 9), logits likewise for the
    /// logit quantity.
    pub(super) fn value(
        &self,
        logits: &Tensor,
        probabilities: &Tensor,
        windows: usize,
        samples: usize,
    ) -> Result<Tensor, EngineError> {
        let per_window = |t: Tensor| self.average(&t, windows, samples);
        let p = per_window(probabilities.shallow_clone())?;
        Ok(match self.quantity {
            Quantity::Probability => p,
            Quantity::LogOdds => self.laplace.log2_odds_tensor(&p),
            Quantity::Logit => per_window(
                logits
                    .f_index_select(1, self.classes)?
                    .f_to_kind(Kind::Double)?,
            )?,
        })
    }
}

/// Tiles, each with the number of windows after which it is final, sent
/// once each as they become final.
pub(super) struct TileRelease<'a> {
    tiles: &'a [(Rect, usize)],
    next: usize,
}

impl<'a> TileRelease<'a> {
    pub(super) fn new(tiles: &'a [(Rect, usize)]) -> Self {
        TileRelease { tiles, next: 0 }
    }

    /// The tiles final once `windows_done` windows are, not sent yet, read
    /// from the explained class's window `evidence`.
    pub(super) fn final_after(
        &mut self,
        windows_done: usize,
        grid: &EvidenceGrid,
        width: usize,
        evidence: &Tensor,
    ) -> Result<Vec<MapTile>, EngineError> {
        let start = self.next;
        while self.next < self.tiles.len() && self.tiles[self.next].1 <= windows_done {
            self.next += 1;
        }
        if self.next == start {
            return Ok(Vec::new());
        }
        let finished: Vec<Rect> = self.tiles[start..self.next].iter().map(|t| t.0).collect();
        read_tiles(&grid.per_pixel_mean(&evidence.get(0)), width, &finished)
    }
}

/// The values of each rectangle of an `[H, W]` map, in one copy to the host.
fn read_tiles(map: &Tensor, width: usize, rects: &[Rect]) -> Result<Vec<MapTile>, EngineError> {
    let pixels: Vec<i64> = rects
        .iter()
        .flat_map(|r| {
            (r.y..r.y + r.height)
                .flat_map(move |y| (r.x..r.x + r.width).map(move |x| (y * width + x) as i64))
        })
        .collect();
    let index = upload(&pixels, map.device());
    let values = host_f32(&map.f_view([-1])?.f_take(&index)?)?;
    let mut rest = values.as_slice();
    Ok(rects
        .iter()
        .map(|&rect| {
            let (mine, after) = rest.split_at(rect.width * rect.height);
            rest = after;
            MapTile {
                rect,
                values: mine.to_vec(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_last_batch_is_filled_up_on_cuda_only() {
        let window = |x| Window { x, y: 0, size: 2 };
        let short = [window(0), window(1)];
        assert_eq!(same_shape_batch(&short, 4, Device::Cpu), short.to_vec());
        assert_eq!(
            same_shape_batch(&short, 4, Device::Cuda(0)),
            vec![window(0), window(1), window(1), window(1)]
        );
        let full = [window(0), window(1), window(2), window(3)];
        assert_eq!(same_shape_batch(&full, 4, Device::Cuda(0)), full.to_vec());
    }
}
