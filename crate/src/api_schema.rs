//! The JSON Schemas of what the API reads and writes — the config, job statuses, events,
//! results and model summaries — from which client types are generated (the npm package's
//! `types.d.ts`, via `kiln schema --api`).

use crate::config::Config;
use crate::jobs::{JobStatus, TrainRunInfo};
use crate::model::ModelSummary;
use crate::train::{HistoryEntry, Progress, TrainEvent};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// One schema document whose `$defs` hold every API type, under the names the JS API uses
/// (`TrainConfig` for the config, `ModelInfo` for a model summary).
pub fn api_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    generator.subschema_for::<Config>();
    generator.subschema_for::<JobStatus>();
    generator.subschema_for::<Progress>();
    generator.subschema_for::<HistoryEntry>();
    generator.subschema_for::<TrainEvent>();
    generator.subschema_for::<TrainRunInfo>();
    generator.subschema_for::<ModelSummary>();
    let defs: Map<String, Value> = generator.take_definitions(true);
    let mut config_schema = serde_json::json!({ "$ref": "#/$defs/Config", "$defs": defs });
    crate::config::document_aliases_in_schema(&mut config_schema);
    let mut defs = match config_schema.get_mut("$defs").map(Value::take) {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    if let Some(config) = defs.remove("Config") {
        defs.insert("TrainConfig".into(), config);
    }
    let mut document = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Kiln API types",
        "$defs": defs,
    });
    rename_refs(&mut document, "#/$defs/Config", "#/$defs/TrainConfig");
    document
}

fn rename_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref" && child.as_str() == Some(from) {
                    *child = Value::String(to.into());
                } else {
                    rename_refs(child, from, to);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rename_refs(item, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_type_has_a_definition() {
        let schema = api_schema();
        let defs = schema["$defs"].as_object().expect("$defs");
        for name in [
            "TrainConfig",
            "JobStatus",
            "Progress",
            "HistoryEntry",
            "TrainEvent",
            "TrainRunInfo",
            "ModelInfo",
            "LayerSpec",
            "Metric",
        ] {
            assert!(defs.contains_key(name), "{name} missing: {:?}", defs.keys());
        }
        assert!(!schema.to_string().contains("#/$defs/Config\""));
        let run_info = defs["TrainRunInfo"].to_string();
        assert!(
            run_info.contains("finalMetrics") && run_info.contains("modelId"),
            "{run_info}"
        );
    }
}
