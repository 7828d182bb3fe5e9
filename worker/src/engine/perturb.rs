//! Batches built where the model runs. The image goes to the model's device
//! once; a batch is that image expanded to B x S copies with each window's
//! replacement values scattered in by precomputed indices. The host only
//! says which windows; it never copies an image per window.

use tch::{Device, Kind, TchError, Tensor};

use super::classifier::{InputImage, InputShape};
use super::windows::Window;

/// The unperturbed input on the model's device, with the index arithmetic
/// of one window size.
pub struct DeviceInput {
    pub shape: InputShape,
    pub window: usize,
    pub device: Device,
    /// The image, flat `[C * H * W]` f32 (channel, row, column).
    pub values: Tensor,
    /// Where a window's `C x k x k` values sit relative to its top-left
    /// pixel in the flat image, in `read_window`'s order: `[C * k * k]` i64.
    offsets: Tensor,
}

impl DeviceInput {
    pub fn new(image: &InputImage, window: usize, device: Device) -> Self {
        let InputShape {
            channels,
            height,
            width,
        } = image.shape;
        let offsets: Vec<i64> = (0..channels)
            .flat_map(|c| {
                (0..window).flat_map(move |r| {
                    (0..window).map(move |q| (c * height * width + r * width + q) as i64)
                })
            })
            .collect();
        DeviceInput {
            shape: image.shape,
            window,
            device,
            values: Tensor::from_slice(&image.values).to_device(device),
            offsets: Tensor::from_slice(&offsets).to_device(device),
        }
    }

    /// Values of one window: `C * k * k`.
    pub fn window_values(&self) -> usize {
        self.shape.channels * self.window * self.window
    }

    /// The image as a batch of one, `[1, C, H, W]`.
    pub fn batch_of_one(&self) -> Tensor {
        self.values.view(self.dims(1))
    }

    /// Flat image indices of each window's values: `[B, C * k * k]` i64.
    pub fn targets(&self, windows: &[Window]) -> Tensor {
        let starts: Vec<i64> = windows
            .iter()
            .map(|w| (w.y * self.shape.width + w.x) as i64)
            .collect();
        Tensor::from_slice(&starts)
            .to_device(self.device)
            .unsqueeze(1)
            + self.offsets.unsqueeze(0)
    }

    /// B x S copies of the image, the S copies of window b with rows
    /// `b * S .. (b + 1) * S` of `replacement` (`[B * S, C * k * k]`)
    /// written into the window: `[B * S, C, H, W]`.
    pub fn perturbed(
        &self,
        windows: &[Window],
        samples: usize,
        replacement: &Tensor,
    ) -> Result<Tensor, TchError> {
        let rows = (windows.len() * samples) as i64;
        let targets = self.targets(windows).f_repeat_interleave_self_int(
            samples as i64,
            Some(0),
            None::<i64>,
        )?;
        // `repeat` always copies (an expand made contiguous would alias the
        // input itself when there is one row).
        let mut batch = self.values.unsqueeze(0).f_repeat([rows, 1])?;
        let _ = batch.f_scatter_(1, &targets, &replacement.f_to_kind(Kind::Float)?)?;
        batch.f_view(self.dims(rows))
    }

    fn dims(&self, batch: i64) -> [i64; 4] {
        let s = self.shape;
        [batch, s.channels as i64, s.height as i64, s.width as i64]
    }
}
