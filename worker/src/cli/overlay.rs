//! The map drawn over the input as a PNG, with a legend bar that shows the
//! symmetric scale's ends (+scale red, 0 white, -scale blue).

use image::{Rgb, RgbImage};
use lens_proto::palette::{diverging, symmetric_scale};

use crate::engine::InputImage;

/// Opacity of the map over the image.
const ALPHA: f32 = 0.6;

pub fn render(image: &InputImage, map: &[f32]) -> RgbImage {
    let s = image.shape;
    let zoom = (224 / s.height.min(s.width)).max(1) as u32;
    let (w, h) = (s.width as u32 * zoom, s.height as u32 * zoom);
    let legend = 90;
    let mut out = RgbImage::from_pixel(w + legend, h.max(120), Rgb([255, 255, 255]));
    let scale = symmetric_scale(map);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = ((x / zoom) as usize, (y / zoom) as usize);
            let i = sy * s.width + sx;
            let base: [f32; 3] = if s.channels >= 3 {
                [0, 1, 2].map(|c| image.values[c * s.pixels() + i])
            } else {
                [image.values[i]; 3]
            };
            let colour = diverging(map[i], scale);
            let mixed = [0, 1, 2].map(|c| {
                let v = (1.0 - ALPHA) * base[c] * 255.0 + ALPHA * colour[c] as f32;
                v.round().clamp(0.0, 255.0) as u8
            });
            out.put_pixel(x, y, Rgb(mixed));
        }
    }
    // Legend: a vertical bar from +scale (top) to -scale (bottom).
    let (bar_x, bar_top, bar_height) = (w + 10, 14u32, h.max(120) - 28);
    for dy in 0..bar_height {
        let value = scale * (1.0 - 2.0 * dy as f32 / (bar_height - 1) as f32);
        let c = diverging(value, scale);
        for dx in 0..14 {
            out.put_pixel(bar_x + dx, bar_top + dy, Rgb([c[0], c[1], c[2]]));
        }
    }
    let text_x = bar_x + 18;
    draw_text(&mut out, &format!("+{scale:.2}"), text_x, bar_top);
    draw_text(&mut out, "0", text_x, bar_top + bar_height / 2 - 5);
    draw_text(
        &mut out,
        &format!("-{scale:.2}"),
        text_x,
        bar_top + bar_height - 10,
    );
    out
}

/// 3 x 5 glyphs for the characters a legend needs, drawn at twice the size.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0, 0, 0, 0, 0b010],
        '+' => [0, 0b010, 0b111, 0b010, 0],
        '-' => [0, 0, 0b111, 0, 0],
        _ => [0; 5],
    }
}

fn draw_text(image: &mut RgbImage, text: &str, x: u32, y: u32) {
    for (n, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (px, py) = (x + n as u32 * 8 + col * 2 + dx, y + r as u32 * 2 + dy);
                        if px < image.width() && py < image.height() {
                            image.put_pixel(px, py, Rgb([30, 30, 30]));
                        }
                    }
                }
            }
        }
    }
}
