//! Curves drawn into a PNG or SVG file with plotters: one panel per metric, one line per run.

use super::RunCurves;
use kiln::{KilnError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Panels per row.
const COLUMNS: usize = 2;
/// One panel's size in pixels.
const PANEL: (u32, u32) = (640, 400);
/// The font every label is drawn in (embedded: no system fonts needed).
const FONT: &str = "sans-serif";

/// Draws `metrics` of `runs` into `out` (`.png` or `.svg`).
pub fn draw_chart(runs: &[RunCurves], metrics: &[String], out: &Path) -> Result<()> {
    register_font()?;
    let rows = metrics.len().div_ceil(COLUMNS).max(1);
    let columns = metrics.len().clamp(1, COLUMNS);
    let size = (PANEL.0 * columns as u32, PANEL.1 * rows as u32);
    let failed = |e: String| {
        KilnError::io(
            format!("cannot draw {}", out.display()),
            std::io::Error::other(e),
        )
    };
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => {
            let root = BitMapBackend::new(out, size).into_drawing_area();
            draw_panels(&root, runs, metrics, (rows, columns)).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))
        }
        Some("svg") => {
            let root = SVGBackend::new(out, size).into_drawing_area();
            draw_panels(&root, runs, metrics, (rows, columns)).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))
        }
        _ => Err(KilnError::InvalidArgument(format!(
            "--out {}: the file must end in .png or .svg",
            out.display()
        ))),
    }
}

fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| KilnError::Internal("the embedded font could not be read".into()))
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[RunCurves],
    metrics: &[String],
    grid: (usize, usize),
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly(grid);
    for (panel, metric) in panels.iter().zip(metrics) {
        draw_panel(panel, runs, metric).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The steps and values a panel spans, padded so lines do not touch the frame.
fn ranges(runs: &[RunCurves], metric: &str) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let points = runs.iter().filter_map(|r| r.series.get(metric)).flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(step, value) in points {
        x0 = x0.min(step as f64);
        x1 = x1.max(step as f64);
        y0 = y0.min(value);
        y1 = y1.max(value);
    }
    if x0 > x1 {
        return (0.0..1.0, 0.0..1.0);
    }
    // Halves first, so that a span like -1e308..1e308 stays finite; the axis is then kept
    // within ±f64::MAX / 4 so its length is finite too (plotters never ends laying out ticks
    // on an infinite axis). Values beyond that are clipped at the frame.
    let pad = ((y1 / 2.0 - y0 / 2.0) * 0.1).max(y1.abs() * 1e-3).max(1e-9);
    let bound = f64::MAX / 4.0;
    let (y0, y1) = ((y0 - pad).max(-bound), (y1 + pad).min(bound));
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    (x0..x1, y0..y1)
}

/// A value axis label: four decimals at most, scientific notation for the very large or small.
fn axis_label(value: f64) -> String {
    if value != 0.0 && !(1e-3..1e6).contains(&value.abs()) {
        return format!("{value:.2e}");
    }
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    runs: &[RunCurves],
    metric: &str,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, y) = ranges(runs, metric);
    let mut chart = ChartBuilder::on(panel)
        .caption(metric, (FONT, 22))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_label_formatter(&|value| axis_label(*value))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    for (index, run) in runs.iter().enumerate() {
        let Some(points) = run.series.get(metric) else {
            continue;
        };
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(s, v)| (s as f64, v)),
                color.stroke_width(2),
            ))?
            .label(run.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}
