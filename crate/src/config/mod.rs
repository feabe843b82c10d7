//! The run configuration: schema, loading (YAML / JSON / values) and validation.

mod guard;
mod load;
mod schema;
mod validate;

pub use load::DEFAULT_CONFIG_YAML;
pub use schema::*;
pub use validate::task_name;
