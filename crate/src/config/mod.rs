//! The run configuration: schema, loading (YAML / JSON / values) and validation.

mod aliases;
mod guard;
#[cfg(test)]
mod layer_forms_tests;
mod load;
mod metric_name;
mod names;
mod schema;
mod strict_json;
mod suggest;
mod tracking;
mod validate;
mod yaml;

pub use aliases::{ALIASES, Alias, aliases_of, document_in_schema as document_aliases_in_schema};
pub use load::DEFAULT_CONFIG_YAML;
pub use metric_name::{LEARNING_RATE, MetricName, Split, direction_of};
pub use names::{from_serde_name, serde_name};
pub use schema::*;
pub use strict_json::{StrictValue, optional_strict_value};
