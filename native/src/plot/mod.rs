//! `kiln plot`: a run's curves (losses, accuracy, gradient norm, learning rate) from its
//! `metrics.jsonl`, or a federation's rounds from its server, as a PNG or SVG chart or in the
//! terminal.

mod chart;
mod curves;
mod federation;
mod terminal;

pub use chart::draw_chart;
pub use curves::{RunCurves, pick_metrics};
pub use federation::federation_curves;
pub use terminal::draw_in_terminal;
