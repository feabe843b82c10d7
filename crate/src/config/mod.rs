//! The run configuration: schema, loading (YAML / JSON / values) and validation.

mod guard;
mod layer_forms;
mod load;
mod names;
mod schema;
mod validate;

pub use load::DEFAULT_CONFIG_YAML;
pub use names::{from_serde_name, serde_name};
pub use schema::*;
