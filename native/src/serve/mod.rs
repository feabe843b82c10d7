//! `kiln serve`: the job API over HTTP (axum), with the registry in SQLite or PostgreSQL
//! (sqlx) and objects in `DATA_DIR` or a shared object store — one server, or a fleet of them.

mod auth;
mod body_limits;
mod claim_loop;
mod connections;
mod datasets;
mod datasets_api;
mod head_limits;
mod heartbeat;
mod hub;
mod jobs_api;
mod lease;
mod listener;
mod mirror;
mod model_store;
mod models_api;
mod objects;
mod openapi;
mod pagination;
mod predictions_api;
mod problem;
mod recorder;
mod registry;
mod runner;
mod scheduler;
mod server;
mod state;
mod ui;
mod worker;
mod workers_api;

pub use server::{ServeOptions, serve};
pub use worker::parse_label;
