//! The registry and what a fleet shares: jobs, datasets and events in SQLite or PostgreSQL,
//! leases, notifications between servers, the object store and what lives in it.

pub mod datasets;
pub mod federations;
pub mod hub;
pub mod invites;
pub mod lease;
pub mod mirror;
pub mod model_store;
pub mod objects;
pub mod page;
pub mod registry;
