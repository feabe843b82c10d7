//! Curves drawn in the terminal with braille characters (a quick look over SSH).

use super::RunCurves;
use textplots::{Chart, ColorPlot, Shape};

/// Colours of the runs' lines, in order (and their legend marks).
const COLOURS: [(u8, u8, u8); 6] = [
    (0, 170, 255),
    (255, 120, 0),
    (0, 200, 80),
    (220, 40, 200),
    (230, 200, 0),
    (160, 160, 160),
];

/// The charts as text: one per metric, every run's line in its colour (escape codes only when
/// `colour`), with a legend; `width` is in terminal columns.
pub fn draw_in_terminal(
    runs: &[RunCurves],
    metrics: &[String],
    width: usize,
    colour: bool,
) -> String {
    let dots_wide = ((width.saturating_sub(12)).clamp(32, 400) * 2) as u32;
    let mut text = String::new();
    for metric in metrics {
        let lines: Vec<(usize, Vec<(f32, f32)>)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let points = r.series.get(metric)?;
                Some((
                    i,
                    points.iter().map(|&(s, v)| (s as f32, v as f32)).collect(),
                ))
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let (x0, x1) = lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.0))
            .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        text.push_str(&format!("{metric}\n"));
        let shapes: Vec<(usize, Shape)> =
            lines.iter().map(|(i, p)| (*i, Shape::Lines(p))).collect();
        let mut chart = Chart::new(dots_wide, 48, x0, x1);
        let mut drawn: &mut Chart = &mut chart;
        for (index, shape) in &shapes {
            let (r, g, b) = COLOURS[index % COLOURS.len()];
            drawn = drawn.linecolorplot(shape, rgb::RGB8 { r, g, b });
        }
        drawn.axis();
        drawn.figures();
        text.push_str(&format!("{drawn}\n"));
        let legend: Vec<String> = lines
            .iter()
            .map(|(i, _)| {
                let (r, g, b) = COLOURS[i % COLOURS.len()];
                if colour {
                    format!("\u{1b}[38;2;{r};{g};{b}m━━\u{1b}[0m {}", runs[*i].name)
                } else {
                    format!("━━ {} ({})", runs[*i].name, i + 1)
                }
            })
            .collect();
        text.push_str(&format!("  {}   (x: step)\n\n", legend.join("   ")));
    }
    text
}
