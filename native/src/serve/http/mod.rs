//! The HTTP layer: connections, routes' handlers, authentication, limits, errors as
//! problem+json, the dashboard. It uses the worker and the registry; neither uses it.

pub mod auth;
pub mod body_limits;
pub mod body_reader;
pub mod connections;
pub mod datasets_api;
pub mod federations_api;
pub mod head_limits;
pub mod invites_api;
pub mod jobs_api;
pub mod models_api;
pub mod openapi;
pub mod pagination;
pub mod predictions_api;
pub mod problem;
pub mod secure_api;
pub mod state;
pub mod ui;
pub mod workers_api;
