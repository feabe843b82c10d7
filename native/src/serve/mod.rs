//! `kiln serve`: the job API over HTTP (axum), with the registry in SQLite or PostgreSQL
//! (sqlx) and objects in `DATA_DIR` or a shared object store — one server, or a fleet of them.
//! Three layers: `http` (uses the other two), `worker` (training threads; uses the registry)
//! and `fleet` (the registry, leases, notifications, the object store); `server` starts them.

mod fleet;
mod http;
mod server;
mod worker;

use fleet::{
    datasets, federations, hub, invites, lease, mirror, model_store, objects, page, registry,
};
use http::{
    auth, body_limits, body_reader, connections, datasets_api, federations_api, head_limits,
    invites_api, jobs_api, models_api, openapi, pagination, predictions_api, problem, secure_api,
    state, ui, workers_api,
};
use worker::{claim_loop, heartbeat, listener, recorder, rounds, runner, scheduler, secure_rounds};

pub use server::{ServeOptions, serve};
pub use worker::parse_label;
