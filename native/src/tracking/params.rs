//! A config as MLflow params: one `section.key` per value, as MLflow's limits allow.

use kiln::Config;
use serde_json::Value;

/// MLflow's longest param key.
const MAX_KEY_CHARS: usize = 250;
/// MLflow's longest param value (6000 characters since MLflow 2.x).
const MAX_VALUE_CHARS: usize = 6000;

/// The resolved config flattened to `(key, value)` params: nested sections joined with `.`,
/// lists of sections by index (`model.layers.0.type`), lists of plain values as JSON text
/// (`data.split = [0.7,0.1,0.2]`). Characters MLflow does not allow in keys become `_`; values
/// longer than MLflow allows are cut (ending in `…`).
pub fn flatten_config(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(config) {
        flatten("", &value, &mut out);
    }
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten(&join(key), child, out);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            for (index, child) in items.iter().enumerate() {
                flatten(&join(&index.to_string()), child, out);
            }
        }
        Value::Null => {}
        Value::String(text) => out.push((param_key(prefix), param_value(text))),
        other => out.push((param_key(prefix), param_value(&other.to_string()))),
    }
}

fn param_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-. :/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_KEY_CHARS)
        .collect()
}

fn param_value(text: &str) -> String {
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_layers_become_dotted_keys() {
        let config = Config::from_yaml_str(
            "model:\n  layers: [{type: linear, out: 32}, relu, linear]\ndata:\n  source: text\n  \
             path: x.csv\n  text:\n    labels: {\"spam/ham\": \"1\"}\n",
        )
        .unwrap();
        let params: std::collections::BTreeMap<String, String> =
            flatten_config(&config).into_iter().collect();
        assert_eq!(params["model.layers.0.type"], "linear");
        assert_eq!(params["model.layers.0.out"], "32");
        assert_eq!(params["model.layers.1.type"], "relu");
        assert_eq!(params["data.split"], "[0.7,0.1,0.2]");
        assert_eq!(
            params["training.weight_optimization.learning_rate"],
            "0.001"
        );
        assert_eq!(params["data.text.labels.spam/ham"], "1");
        assert!(
            params
                .keys()
                .all(|k| !k.is_empty() && k.len() <= MAX_KEY_CHARS)
        );
    }

    #[test]
    fn long_values_are_cut_to_mlflows_limit() {
        let long = "x".repeat(7000);
        let value = param_value(&long);
        assert_eq!(value.chars().count(), MAX_VALUE_CHARS);
        assert!(value.ends_with('…'));
        assert_eq!(param_key("a\"b\nc"), "a_b_c");
    }
}
