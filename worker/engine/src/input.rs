//! From uploaded bytes to the model's input, with limits checked before the
//! image is decoded in full (the header is read first), so a hostile upload
//! cannot make the worker allocate gigabytes.
//!
//! Digits are converted the way MNIST digits look: grey, light ink on a dark
//! background, the ink's bounding box scaled to fit 20 x 20 and placed in a
//! 28 x 28 frame with its centre of mass at the centre. A 28 x 28 image that
//! already has a dark background is taken as it is.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GenericImageView, ImageBuffer, ImageReader, Luma, Rgb, RgbImage};

use crate::engine::InputShape;

use crate::engine::InputImage;

/// MNIST's side: digits are converted to 28 x 28 grey images.
pub const DIGIT_SIDE: usize = 28;
/// The input of a digits model (one grey channel, 28 x 28).
pub const DIGIT_SHAPE: InputShape = InputShape {
    channels: 1,
    height: DIGIT_SIDE,
    width: DIGIT_SIDE,
};

pub const MAX_BYTES: usize = 16 * 1024 * 1024;
pub const MAX_PIXELS: u64 = 40_000_000;
/// How many times longer one side may be than the other. A photo is scaled
/// so that its short side fits the model before it is cropped: a 64524 x 12
/// JPEG (found by fuzzing) would have become 1.4 million x 256 pixels,
/// gigabytes for an upload of a few hundred bytes.
pub const MAX_ASPECT: u32 = 32;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("the image is {bytes} bytes; the limit is {max} bytes")]
    TooManyBytes { bytes: usize, max: usize },
    #[error("the bytes are not a PNG or JPEG image")]
    NotAnImage,
    #[error("the image is {width} x {height} pixels; the limit is {max} pixels")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error(
        "the image is {width} x {height} pixels: one side is more than {max} times the other; \
         crop it closer to a square"
    )]
    Elongated { width: u32, height: u32, max: u32 },
    #[error("the image could not be decoded: {0}")]
    Decode(String),
}

/// Decodes an upload, checking the size limits first.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, InputError> {
    check_upload(bytes)?;
    image_reader(bytes)?
        .decode()
        .map_err(|e| InputError::Decode(e.to_string()))
}

fn image_reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, InputError> {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| InputError::Decode(e.to_string()))
}

/// The limits an upload must meet, read from its size and header only
/// (cheap: nothing is decoded); returns its width x height in pixels.
pub fn check_upload(bytes: &[u8]) -> Result<u64, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(InputError::TooManyBytes {
            bytes: bytes.len(),
            max: MAX_BYTES,
        });
    }
    let format = image_reader(bytes)?.format();
    if !matches!(
        format,
        Some(image::ImageFormat::Png) | Some(image::ImageFormat::Jpeg)
    ) {
        return Err(InputError::NotAnImage);
    }
    let (width, height) = image_reader(bytes)?
        .into_dimensions()
        .map_err(|e| InputError::Decode(e.to_string()))?;
    let pixels = width as u64 * height as u64;
    if pixels > MAX_PIXELS {
        return Err(InputError::TooManyPixels {
            width,
            height,
            max: MAX_PIXELS,
        });
    }
    let (short, long) = (width.min(height) as u64, width.max(height) as u64);
    if long > short * MAX_ASPECT as u64 {
        return Err(InputError::Elongated {
            width,
            height,
            max: MAX_ASPECT,
        });
    }
    Ok(pixels)
}

/// An upload as a 28 x 28 MNIST-style digit.
pub fn digit_from_bytes(bytes: &[u8]) -> Result<InputImage, InputError> {
    let grey = decode(bytes)?.to_luma32f();
    Ok(InputImage {
        shape: DIGIT_SHAPE,
        values: mnist_style(grey).into_raw(),
    })
}

/// An RGB image scaled so that its shorter side is 256/224 of the input side
/// (and neither side is shorter than the input).
fn scale_to_cover<I>(rgb: &I, shape: InputShape) -> ImageBuffer<Rgb<f32>, Vec<f32>>
where
    I: GenericImageView<Pixel = Rgb<f32>>,
{
    let (w, h) = rgb.dimensions();
    let target = (shape.height.max(shape.width) as f64 * 256.0 / 224.0).round();
    let scale = target / w.min(h) as f64;
    let (sw, sh) = (
        ((w as f64 * scale).round() as u32).max(shape.width as u32),
        ((h as f64 * scale).round() as u32).max(shape.height as u32),
    );
    imageops::resize(rgb, sw, sh, FilterType::Triangle)
}

/// An 8-bit RGB image seen as floats in [0, 1], converted as each pixel is
/// read (as `image`'s own conversion does: v / 255).
struct AsFloat<'a>(&'a RgbImage);

impl GenericImageView for AsFloat<'_> {
    type Pixel = Rgb<f32>;
    fn dimensions(&self) -> (u32, u32) {
        self.0.dimensions()
    }
    fn get_pixel(&self, x: u32, y: u32) -> Rgb<f32> {
        Rgb(self
            .0
            .get_pixel(x, y)
            .0
            .map(|v| (v as f32 / 255.0).clamp(0.0, 1.0)))
    }
}

/// An upload as an RGB photo of `shape` (values in [0, 1], channel-major),
/// the way ImageNet is evaluated: the shorter side scaled to 256/224 of the
/// input side, then the centre cropped to the input size.
pub fn photo_from_bytes(bytes: &[u8], shape: InputShape) -> Result<InputImage, InputError> {
    let decoded = decode(bytes)?;
    // 8-bit images are scaled straight from their bytes (read as floats
    // pixel by pixel, the same values a float copy would hold), so a
    // 40-megapixel upload never has a float copy: 0.48 GB saved.
    let scaled = match decoded {
        DynamicImage::ImageRgb8(rgb) => scale_to_cover(&AsFloat(&rgb), shape),
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgba8(_) => {
            let rgb = decoded.to_rgb8();
            drop(decoded);
            scale_to_cover(&AsFloat(&rgb), shape)
        }
        other => scale_to_cover(&other.to_rgb32f(), shape),
    };
    let (sw, sh) = scaled.dimensions();
    let (left, top) = (
        (sw - shape.width as u32) / 2,
        (sh - shape.height as u32) / 2,
    );
    let crop = imageops::crop_imm(&scaled, left, top, shape.width as u32, shape.height as u32);
    let mut values = vec![0f32; shape.values()];
    for (x, y, pixel) in crop.to_image().enumerate_pixels() {
        let at = y as usize * shape.width + x as usize;
        if shape.channels == 3 {
            for c in 0..3 {
                values[c * shape.pixels() + at] = pixel.0[c].clamp(0.0, 1.0);
            }
        } else {
            // Grey models take the mean of the channels in every channel.
            let grey = pixel.0.iter().sum::<f32>() / 3.0;
            for c in 0..shape.channels {
                values[c * shape.pixels() + at] = grey.clamp(0.0, 1.0);
            }
        }
    }
    Ok(InputImage { shape, values })
}

fn mnist_style(mut grey: ImageBuffer<Luma<f32>, Vec<f32>>) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    if border_mean(&grey) > 0.5 {
        for p in grey.pixels_mut() {
            p.0[0] = 1.0 - p.0[0];
        }
    }
    let side = DIGIT_SIDE as u32;
    if grey.dimensions() == (side, side) {
        return grey;
    }
    let Some((x0, y0, x1, y1)) = ink_box(&grey) else {
        return imageops::resize(&grey, side, side, FilterType::Triangle);
    };
    let ink = imageops::crop_imm(&grey, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let scale = 20.0 / ink.width().max(ink.height()) as f32;
    let w = ((ink.width() as f32 * scale).round() as u32).max(1);
    let h = ((ink.height() as f32 * scale).round() as u32).max(1);
    let digit = imageops::resize(&ink, w, h, FilterType::Triangle);
    let (cx, cy) = centre_of_mass(&digit);
    let left = (14.0 - cx).round().clamp(0.0, (side - w) as f32) as i64;
    let top = (14.0 - cy).round().clamp(0.0, (side - h) as f32) as i64;
    let mut frame = ImageBuffer::new(side, side);
    imageops::overlay(&mut frame, &digit, left, top);
    for p in frame.pixels_mut() {
        p.0[0] = p.0[0].clamp(0.0, 1.0);
    }
    frame
}

fn border_mean(grey: &ImageBuffer<Luma<f32>, Vec<f32>>) -> f32 {
    let (w, h) = grey.dimensions();
    let mut sum = 0.0;
    let mut n = 0;
    for (x, y, p) in grey.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            sum += p.0[0];
            n += 1;
        }
    }
    sum / n as f32
}

/// Bounding box (inclusive) of pixels brighter than a fifth of the brightest.
fn ink_box(grey: &ImageBuffer<Luma<f32>, Vec<f32>>) -> Option<(u32, u32, u32, u32)> {
    let max = grey.pixels().map(|p| p.0[0]).fold(0.0, f32::max);
    if max <= 0.05 {
        return None;
    }
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in grey.enumerate_pixels() {
        if p.0[0] > 0.2 * max {
            let b = bounds.get_or_insert((x, y, x, y));
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
    }
    bounds
}

fn centre_of_mass(grey: &ImageBuffer<Luma<f32>, Vec<f32>>) -> (f32, f32) {
    let (mut sx, mut sy, mut total) = (0.0, 0.0, 0.0);
    for (x, y, p) in grey.enumerate_pixels() {
        sx += x as f32 * p.0[0];
        sy += y as f32 * p.0[0];
        total += p.0[0];
    }
    if total == 0.0 {
        return (grey.width() as f32 / 2.0, grey.height() as f32 / 2.0);
    }
    (sx / total + 0.5, sy / total + 0.5)
}

/// PNG bytes of a grey image with values in [0, 1].
pub fn grey_png(values: &[f32], width: u32, height: u32) -> Vec<u8> {
    let bytes: Vec<u8> = values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let image = ImageBuffer::<Luma<u8>, _>::from_raw(width, height, bytes)
        .expect("values match width x height");
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    png
}

/// The PNG and JPEG files directly in `folder`, sorted by name.
pub fn image_files(folder: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(folder)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            ["png", "jpg", "jpeg"].contains(&ext.to_ascii_lowercase().as_str())
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_floats_scale_exactly_as_a_float_copy() {
        let rgb = RgbImage::from_fn(301, 203, |x, y| {
            Rgb([(x * 7 + y) as u8, (x * y) as u8, (x ^ y) as u8])
        });
        let shape = InputShape {
            channels: 3,
            height: 64,
            width: 64,
        };
        let direct = scale_to_cover(&AsFloat(&rgb), shape);
        let copied = scale_to_cover(&DynamicImage::ImageRgb8(rgb).to_rgb32f(), shape);
        assert_eq!(direct.dimensions(), (108, 73));
        assert_eq!(direct.as_raw(), copied.as_raw(), "bit for bit");
    }

    #[test]
    fn rejects_bad_bytes_with_reasons() {
        assert_eq!(digit_from_bytes(&[]).unwrap_err(), InputError::Empty);
        assert_eq!(
            digit_from_bytes(b"hello, not an image").unwrap_err(),
            InputError::NotAnImage
        );
        let huge = vec![0u8; MAX_BYTES + 1];
        assert!(matches!(
            digit_from_bytes(&huge).unwrap_err(),
            InputError::TooManyBytes { .. }
        ));
    }

    #[test]
    fn a_mnist_digit_round_trips_through_png() {
        let values: Vec<f32> = (0..DIGIT_SIDE * DIGIT_SIDE)
            .map(|i| if (300..500).contains(&i) { 1.0 } else { 0.0 })
            .collect();
        let png = grey_png(&values, DIGIT_SIDE as u32, DIGIT_SIDE as u32);
        let digit = digit_from_bytes(&png).unwrap();
        assert_eq!(digit.values, values);
    }

    #[test]
    fn dark_ink_on_white_is_inverted_and_centred() {
        // A black bar on white, off-centre in a 100 x 60 image.
        let mut image = ImageBuffer::from_pixel(100, 60, Luma([255u8]));
        for y in 5..45 {
            for x in 10..20 {
                image.put_pixel(x, y, Luma([0u8]));
            }
        }
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let digit = digit_from_bytes(&png).unwrap();
        // Background black, ink bright, ink centred at about (14, 14).
        assert!(digit.values[0] < 0.01);
        let at = |x: usize, y: usize| digit.values[y * DIGIT_SIDE + x];
        assert!(at(14, 14) > 0.9);
        assert!(at(3, 14) < 0.01 && at(25, 14) < 0.01);
        // The 40-pixel-tall bar now spans 20 rows.
        let lit_rows = (0..DIGIT_SIDE).filter(|&y| at(14, y) > 0.5).count();
        assert!((19..=21).contains(&lit_rows), "{lit_rows} rows");
    }
}
