//! `kiln plot`: a run's curves (losses, accuracy, gradient norm, learning rate) from its
//! `metrics.jsonl`, as a PNG or SVG chart or in the terminal.

mod chart;
mod curves;
mod terminal;

pub use chart::draw_chart;
pub use curves::{RunCurves, pick_metrics};
pub use terminal::draw_in_terminal;
