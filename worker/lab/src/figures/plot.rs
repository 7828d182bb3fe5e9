//! Line charts for the experiment figures, drawn once for a PNG (through
//! `image`) and once for an SVG, from the same description.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One line (or, with `points_only`, one set of markers).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub points_only: bool,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    /// Where the legend goes: a corner the curves leave free.
    pub legend: SeriesLabelPosition,
}

const SIZE: (u32, u32) = (800, 500);
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(90, 90, 90),
];

/// Registers the TrueType font every label is drawn with (once per process:
/// plotters keeps it for the rest of the run).
pub fn use_font(path: &Path) -> anyhow::Result<()> {
    static FONT: OnceLock<&'static [u8]> = OnceLock::new();
    if FONT.get().is_some() {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the font {}: {e} (./dev setup copies it)",
            path.display()
        )
    })?;
    let bytes: &'static [u8] = FONT.get_or_init(|| Box::leak(bytes.into_boxed_slice()));
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a TrueType font", path.display()))?;
    Ok(())
}

/// Writes `<stem>.png` and `<stem>.svg`.
pub fn save(chart: &Chart, stem: &Path) -> anyhow::Result<()> {
    let svg = stem.with_extension("svg");
    draw(chart, SVGBackend::new(&svg, SIZE).into_drawing_area())?;
    let mut pixels = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        chart,
        BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
    )?;
    image::RgbImage::from_raw(SIZE.0, SIZE.1, pixels)
        .expect("the buffer has the chart's size")
        .save(stem.with_extension("png"))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(chart: &Chart, root: DrawingArea<DB, Shift>) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let all = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    // A little room around the data; logarithmic axes need positive ends.
    let pad = |lo: f64, hi: f64, log: bool| {
        if log {
            (lo.max(1e-12) / 1.5, hi.max(1e-12) * 1.5)
        } else {
            let span = (hi - lo).max(1e-12);
            (lo - 0.05 * span, hi + 0.05 * span)
        }
    };
    let (x0, x1) = pad(x0, x1, chart.log_x);
    let (y0, y1) = pad(y0, y1, chart.log_y);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    // Four axis kinds are four coordinate types in plotters.
    match (chart.log_x, chart.log_y) {
        (false, false) => {
            let context = builder.build_cartesian_2d(x0..x1, y0..y1);
            series_on(chart, context.map_err(plot_error)?)
        }
        (true, false) => {
            let context = builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1);
            series_on(chart, context.map_err(plot_error)?)
        }
        (false, true) => {
            let context = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale());
            series_on(chart, context.map_err(plot_error)?)
        }
        (true, true) => {
            let context = builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale());
            series_on(chart, context.map_err(plot_error)?)
        }
    }?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn series_on<'a, DB, X, Y>(
    chart: &Chart,
    mut context: ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    context
        .configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&|v| compact(*v))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    for (index, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let legend = if series.points_only {
            context
                .draw_series(
                    series
                        .points
                        .iter()
                        .map(|&point| Circle::new(point, 3, colour.filled())),
                )
                .map_err(plot_error)?
        } else {
            context
                .draw_series(LineSeries::new(
                    series.points.clone(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_error)?
        };
        legend.label(series.name.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
        });
    }
    context
        .configure_series_labels()
        .position(chart.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// A tick label without trailing zeros: 10, 0.5, 1e-5.
fn compact(value: f64) -> String {
    if value != 0.0 && (value.abs() < 1e-3 || value.abs() >= 1e5) {
        format!("{value:.0e}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    error: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow::anyhow!("drawing a figure: {error}")
}
