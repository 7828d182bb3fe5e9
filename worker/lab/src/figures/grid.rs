//! Figures made of map tiles: a grid of images with the column titles above
//! and the row labels on the left, drawn with the figures' font.

use image::{Rgb, RgbImage};
use plotters::prelude::*;

/// The header's height for one line of titles, and each further line's.
const HEADER: u32 = 34;
const TITLE_LINE: u32 = 22;
const LABELS: u32 = 170;

/// One row of a tiled figure: its label and its tiles, one per column.
pub struct Row {
    pub label: String,
    pub tiles: Vec<RgbImage>,
}

/// The tiles in a grid (each cell as large as the largest tile) under the
/// column titles (a title may break into lines at '\n'), each row labelled
/// on the left.
pub fn titled(columns: &[&str], rows: &[Row]) -> anyhow::Result<RgbImage> {
    let all = rows.iter().flat_map(|r| r.tiles.iter());
    let (cell_w, cell_h) = all.fold((1, 1), |(w, h), t| (w.max(t.width()), h.max(t.height())));
    let header = header_height(columns);
    let width = LABELS + columns.len() as u32 * cell_w;
    let height = header + rows.len() as u32 * cell_h;
    let mut grid = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.tiles.iter().enumerate() {
            let (x, y) = (LABELS + c as u32 * cell_w, header + r as u32 * cell_h);
            image::imageops::replace(&mut grid, tile, x as i64, y as i64);
        }
    }
    let mut pixels = grid.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        let font = ("sans-serif", 18).into_font().color(&BLACK);
        let draw = |text: &str, x: u32, y: u32| {
            if text.is_empty() {
                return Ok(());
            }
            root.draw(&Text::new(
                text.to_string(),
                (x as i32, y as i32),
                font.clone(),
            ))
            .map_err(|e| anyhow::anyhow!("drawing a label: {e}"))
        };
        for (c, title) in columns.iter().enumerate() {
            for (l, line) in title.lines().enumerate() {
                let y = 8 + l as u32 * TITLE_LINE;
                draw(line, LABELS + c as u32 * cell_w + 8, y)?;
            }
        }
        for (r, row) in rows.iter().enumerate() {
            draw(&row.label, 8, header + r as u32 * cell_h + cell_h / 2 - 9)?;
        }
        root.present()
            .map_err(|e| anyhow::anyhow!("drawing the labels: {e}"))?;
    }
    Ok(RgbImage::from_raw(width, height, pixels).expect("the buffer has the grid's size"))
}

/// Room for the longest title, one line more for each '\n'.
fn header_height(columns: &[&str]) -> u32 {
    let lines = columns.iter().map(|c| c.lines().count()).max().unwrap_or(1);
    HEADER + lines.saturating_sub(1) as u32 * TITLE_LINE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_in_their_cells_below_the_titles_and_beside_the_labels() {
        let red = RgbImage::from_pixel(20, 10, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(20, 10, Rgb([0, 0, 255]));
        let rows = [
            Row {
                label: String::new(),
                tiles: vec![red.clone(), blue.clone()],
            },
            Row {
                label: String::new(),
                tiles: vec![blue, red],
            },
        ];
        let grid = titled(&["", ""], &rows).unwrap();
        assert_eq!(grid.dimensions(), (LABELS + 40, HEADER + 20));
        assert_eq!(grid.get_pixel(LABELS + 5, HEADER + 5), &Rgb([255, 0, 0]));
        assert_eq!(grid.get_pixel(LABELS + 25, HEADER + 5), &Rgb([0, 0, 255]));
        assert_eq!(grid.get_pixel(LABELS + 5, HEADER + 15), &Rgb([0, 0, 255]));
        assert_eq!(grid.get_pixel(5, HEADER + 5), &Rgb([255, 255, 255]));
        assert_eq!(
            header_height(&["before: PDA\nk 10, stride 5", "now"]),
            HEADER + TITLE_LINE,
            "a title of two lines"
        );
    }
}
