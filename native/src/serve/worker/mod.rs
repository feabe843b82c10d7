//! The worker: training threads that claim jobs and run them (the same engine as `kiln
//! train`), the recorder that writes what they report, heartbeats, and this worker's identity.

pub mod claim_loop;
mod federation_tracking;
pub mod heartbeat;
mod identity;
pub mod listener;
pub mod recorder;
mod round_inputs;
pub mod rounds;
pub mod runner;
pub mod scheduler;
pub mod secure_rounds;

pub use identity::{WorkerIdentity, check_label, parse_label, worker_id};
