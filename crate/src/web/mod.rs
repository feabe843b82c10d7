//! The JavaScript API (wasm-bindgen): `Kiln`, `TrainingJob` and `Model`. This folder is the
//! only place that knows about JS; everything it calls is the target-agnostic engine.

mod checkpoints;
mod convert;
mod device;
mod federation;
mod job;
mod kiln;
mod model;
mod panic;
mod secure_round;
mod startup;
mod store;

pub use job::TrainingJob;
pub use kiln::Kiln;
pub use model::Model;
pub use secure_round::SecureRound;
