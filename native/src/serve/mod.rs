//! `kiln serve`: the job API over HTTP (axum), with the registry in SQLite (sqlx).

mod auth;
mod datasets;
mod datasets_api;
mod hub;
mod jobs_api;
mod models_api;
mod openapi;
mod predictions_api;
mod problem;
mod recorder;
mod registry;
mod runner;
mod scheduler;
mod server;
mod state;
mod ui;

pub use server::{ServeOptions, serve};
