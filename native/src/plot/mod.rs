//! `kiln plot`: a run's curves (losses, accuracy, gradient norm, learning rate) from its
//! `metrics.jsonl`, as a PNG or SVG chart or in the terminal.

mod curves;
mod chart;
mod terminal;

pub use curves::{RunCurves, pick_metrics};
pub use chart::draw_chart;
pub use terminal::draw_in_terminal;
