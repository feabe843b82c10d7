//! The names other trainers use for Kiln's settings (`training.lr`, `run.seed`, `precision: 16`),
//! read as Kiln's own keys before a config is parsed. A config that sets a key and one of its
//! aliases (or two aliases of one key) is an error naming both.

use crate::error::{KilnError, Result};
use serde_json::{Map, Value};

/// One alternative name: `alias` is read as `key` (both dotted paths from the config's root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    /// The alternative name, e.g. `training.lr`.
    pub alias: &'static str,
    /// Kiln's key it stands for, e.g. `training.weight_optimization.learning_rate`.
    pub key: &'static str,
}

/// Every alias, grouped by the key they stand for.
pub const ALIASES: &[Alias] = &[
    alias("training.epochs", "training.num_passes"),
    alias("training.num_epochs", "training.num_passes"),
    alias(
        "training.optimizer",
        "training.weight_optimization.optimization_method",
    ),
    alias("training.lr", "training.weight_optimization.learning_rate"),
    alias("training.checkpoint_at", "checkpoint.every_epochs"),
    alias("training.early_stop_patience", "early_stopping.patience"),
    alias("training.validation_steps", "validation.every"),
    alias("run.experiment_name", "name"),
    alias("run.output_dir", "output_dir"),
    alias("run.run_id", "tracking.mlflow.run_id"),
    alias("run.seed", "seed"),
];

const fn alias(alias: &'static str, key: &'static str) -> Alias {
    Alias { alias, key }
}

/// The section that holds nothing but aliases; it is removed once they are moved.
const ALIAS_ONLY_SECTION: &str = "run";

/// The aliases of `key`, e.g. `["training.epochs", "training.num_epochs"]` for
/// `training.num_passes`.
pub fn aliases_of(key: &str) -> Vec<&'static str> {
    ALIASES
        .iter()
        .filter(|a| a.key == key)
        .map(|a| a.alias)
        .collect()
}

/// An alias that was read as its key: error messages about the key name the alias the user wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// What the config said.
    pub alias: &'static str,
    /// The key it was moved to.
    pub key: &'static str,
}

/// Moves every alias in `config` to its key and spells `precision: 16|32` as `f16|f32`.
/// Returns what was moved; errors when a key is set twice (by itself and an alias, or by two
/// aliases) or when the `run` section holds anything but its aliases.
pub fn resolve(config: &mut Value) -> Result<Vec<Renamed>> {
    let mut renamed = Vec::new();
    let mut keys: Vec<&'static str> = ALIASES.iter().map(|a| a.key).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let mut setters: Vec<&'static str> = Vec::new();
        if get(config, key).is_some() {
            setters.push(key);
        }
        setters.extend(
            aliases_of(key)
                .into_iter()
                .filter(|a| get(config, a).is_some()),
        );
        if setters.len() > 1 {
            return Err(KilnError::Config(format!(
                "{} and {} both set `{key}`: keep one of them",
                setters[..setters.len() - 1].join(", "),
                setters[setters.len() - 1]
            )));
        }
        let Some(&alias) = setters.first().filter(|&&s| s != key) else {
            continue;
        };
        if let Some(value) = take(config, alias) {
            put(config, key, value)?;
            renamed.push(Renamed { alias, key });
        }
    }
    check_alias_section(config)?;
    spell_precision(config)?;
    Ok(renamed)
}

/// The `run` section may hold only its aliases; once they have moved it must be empty.
fn check_alias_section(config: &mut Value) -> Result<()> {
    let Some(root) = config.as_object_mut() else {
        return Ok(());
    };
    let Some(section) = root.remove(ALIAS_ONLY_SECTION) else {
        return Ok(());
    };
    let allowed: Vec<String> = ALIASES
        .iter()
        .filter_map(|a| a.alias.strip_prefix("run."))
        .map(str::to_string)
        .collect();
    let leftover = match &section {
        Value::Object(map) => map.keys().next().cloned(),
        Value::Null => None,
        other => {
            return Err(KilnError::Config(format!(
                "run: must be a mapping of {}, got {other}",
                allowed.join(", ")
            )));
        }
    };
    match leftover {
        None => Ok(()),
        Some(name) => {
            let hint = super::suggest::did_you_mean(&name, &allowed)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let name = crate::error::cut_short(&name);
            Err(KilnError::Config(format!(
                "run.{name}: unknown key `{name}`{hint} (allowed: {})",
                allowed.join(", ")
            )))
        }
    }
}

/// `training.precision: 16` / `32` (numbers or strings) read as `f16` / `f32`.
fn spell_precision(config: &mut Value) -> Result<()> {
    let Some(precision) = config
        .get_mut("training")
        .and_then(|t| t.get_mut("precision"))
    else {
        return Ok(());
    };
    let bits = match &*precision {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match bits {
        Some(16.0) => *precision = Value::from("f16"),
        Some(32.0) => *precision = Value::from("f32"),
        Some(_) => {
            return Err(KilnError::Config(format!(
                "training.precision: {precision} is not allowed (allowed: f32, f16, 32, 16)"
            )));
        }
        None => {}
    }
    Ok(())
}

fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |at, segment| at.as_object()?.get(segment))
}

fn take(root: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (
            parent
                .split('.')
                .try_fold(root, |at, s| at.as_object_mut()?.get_mut(s))?,
            last,
        ),
        None => (root, path),
    };
    parent.as_object_mut()?.remove(last)
}

/// Writes `value` at `path`, making the sections on the way (a `null` section counts as empty).
fn put(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let mut at = root;
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments.split_last().unwrap_or((&"", &[]));
    for (depth, segment) in parents.iter().enumerate() {
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        let Some(map) = at.as_object_mut() else {
            return Err(KilnError::Config(format!(
                "{}: must be a mapping",
                segments[..depth].join(".")
            )));
        };
        at = map
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if at.is_null() {
        *at = Value::Object(Map::new());
    }
    match at.as_object_mut() {
        Some(map) => {
            map.insert(last.to_string(), value);
            Ok(())
        }
        None => Err(KilnError::Config(format!(
            "{}: must be a mapping",
            parents.join(".")
        ))),
    }
}

/// Adds every alias to the config's JSON Schema beside its key: the key's own schema, described
/// as an alias (so editors and the generated TypeScript types accept both names).
pub fn document_in_schema(schema: &mut Value) {
    for alias in ALIASES {
        let Some(key_schema) = schema_at(schema, alias.key).cloned() else {
            continue;
        };
        let (parent, name) = alias.alias.rsplit_once('.').unwrap_or(("", alias.alias));
        let mut documented = key_schema;
        if let Some(map) = documented.as_object_mut() {
            map.insert(
                "description".into(),
                Value::from(format!("Alias of `{}`.", alias.key)),
            );
            map.remove("default");
        }
        if let Some(properties) = properties_at(schema, parent) {
            properties.insert(name.to_string(), documented);
        }
        let (key_parent, key_name) = alias.key.rsplit_once('.').unwrap_or(("", alias.key));
        if let Some(key) = properties_at(schema, key_parent).and_then(|p| p.get_mut(key_name))
            && let Some(map) = key.as_object_mut()
        {
            let described = map
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let line = format!("Alias: `{}`.", alias.alias);
            let joined = if described.is_empty() {
                line
            } else {
                format!("{described} {line}")
            };
            map.insert("description".into(), Value::from(joined));
        }
    }
}

/// Says which alias the user wrote when a message is about the key it stands for:
/// `training.lr (read as training.weight_optimization.learning_rate): ...`.
pub fn name_aliases_in(message: String, renamed: &[Renamed]) -> String {
    for r in renamed {
        if let Some(rest) = message.strip_prefix(r.key)
            && (rest.starts_with(':') || rest.starts_with('[') || rest.starts_with('.'))
        {
            return format!("{} (read as {}){rest}", r.alias, r.key);
        }
    }
    message
}

/// Where an unknown `key` under the object at `parent` ("" for the top level) is a valid key one
/// level down: `data` + `max_len` → `data.text.max_len`. The first such section, if any.
pub(crate) fn key_one_level_down(parent: &str, key: &str) -> Option<String> {
    let root = super::Config::json_schema();
    let object = if parent.is_empty() {
        object_schema(&root, &root)?
    } else {
        object_schema(&root, schema_at(&root, parent)?)?
    };
    object
        .get("properties")?
        .as_object()?
        .iter()
        .find(|(_, child)| {
            object_schema(&root, child)
                .and_then(|o| o.get("properties"))
                .is_some_and(|p| p.get(key).is_some())
        })
        .map(|(section, _)| match parent {
            "" => format!("{section}.{key}"),
            _ => format!("{parent}.{section}.{key}"),
        })
}

/// The schema of the property at `path`, following `$ref`s and optional (`anyOf` with null)
/// wrappers.
fn schema_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = root;
    for segment in path.split('.') {
        at = object_schema(root, at)?.get("properties")?.get(segment)?;
    }
    Some(at)
}

/// The object schema a (possibly `$ref`d or optional) schema stands for.
fn object_schema<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/$defs/")?;
        return object_schema(root, root.get("$defs")?.get(name)?);
    }
    if let Some(choices) = schema.get("anyOf").and_then(Value::as_array) {
        return choices.iter().find_map(|c| object_schema(root, c));
    }
    schema.get("properties").map(|_| schema)
}

/// The `properties` map of the object at `path` (the root for ""), creating the alias-only
/// `run` section's object.
fn properties_at<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Map<String, Value>> {
    if path == ALIAS_ONLY_SECTION {
        let properties = holder_mut(root, "")?
            .get_mut("properties")?
            .as_object_mut()?;
        let section = properties
            .entry(ALIAS_ONLY_SECTION.to_string())
            .or_insert_with(|| {
                serde_json::json!({
                    "description": "Other trainers' run settings, each an alias of a Kiln key.",
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {}
                })
            });
        return section.get_mut("properties")?.as_object_mut();
    }
    holder_mut(root, path)?
        .get_mut("properties")?
        .as_object_mut()
}

/// The object schema at `path`: its `$defs` entry, or the root itself.
fn holder_mut<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    match definition_name(root, path)? {
        None => Some(root),
        Some(name) => root.get_mut("$defs")?.get_mut(&name),
    }
}

/// The `$defs` name of the object schema at `path`, or `None` for a root that is not a `$ref`.
fn definition_name(root: &Value, path: &str) -> Option<Option<String>> {
    if path.is_empty() {
        return Some(reference_name(root));
    }
    let field = schema_at(root, path)?;
    Some(Some(reference_name(field)?))
}

/// The `$defs` name a schema refers to (itself or its optional form's).
fn reference_name(schema: &Value) -> Option<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.strip_prefix("#/$defs/").map(str::to_string);
    }
    schema
        .get("anyOf")?
        .as_array()?
        .iter()
        .find_map(reference_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Every, OptimizationMethod, Precision};

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    fn error(yaml: &str) -> String {
        match Config::from_yaml_str(yaml) {
            Ok(_) => panic!("expected an error for {yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_alias_sets_its_key() {
        let c = config(
            "training:\n  num_epochs: 3\n  optimizer: sgd\n  lr: 0.05\n  checkpoint_at: 2\n  \
             early_stop_patience: 4\n  validation_steps: 25\n  precision: 32\n\
             run:\n  experiment_name: spam\n  output_dir: out/runs\n  run_id: abc123\n  seed: 7\n",
        );
        assert_eq!(c.training.num_passes, 3);
        assert_eq!(
            c.training.weight_optimization.optimization_method,
            OptimizationMethod::Sgd
        );
        assert_eq!(c.training.weight_optimization.learning_rate, 0.05);
        assert_eq!(c.checkpoint.every_epochs, 2);
        let stop = c
            .early_stopping
            .expect("early_stop_patience turns early stopping on");
        assert_eq!(stop.patience, 4);
        assert_eq!(stop.tasks[0].metric, "val_loss");
        assert_eq!(c.validation.every, Every::Steps(25));
        assert_eq!(c.training.precision, Precision::F32);
        assert_eq!(c.name, "spam");
        assert_eq!(c.output_dir.as_deref(), Some("out/runs"));
        let mlflow = c.tracking.mlflow.expect("run_id makes an mlflow section");
        assert_eq!(mlflow.run_id.as_deref(), Some("abc123"));
        assert_eq!(c.seed, 7);
    }

    #[test]
    fn validation_steps_may_be_a_fraction_of_an_epoch() {
        let c = config("training:\n  validation_steps: 0.25\n");
        assert_eq!(c.validation.every, Every::Epochs(0.25));
    }

    #[test]
    fn precision_by_bits() {
        assert_eq!(
            config("training:\n  precision: 16\n").training.precision,
            Precision::F16
        );
        assert_eq!(
            config("training:\n  precision: \"32\"\n")
                .training
                .precision,
            Precision::F32
        );
        let e = error("training:\n  precision: 8\n");
        assert!(e.contains("training.precision: 8 is not allowed"), "{e}");
        assert!(e.contains("f32, f16, 32, 16"), "{e}");
    }

    #[test]
    fn a_key_and_its_alias_together_are_an_error_naming_both() {
        let e = error("training:\n  lr: 0.1\n  weight_optimization:\n    learning_rate: 0.2\n");
        assert!(
            e.contains("training.weight_optimization.learning_rate"),
            "{e}"
        );
        assert!(e.contains("training.lr"), "{e}");
        let e = error("training:\n  epochs: 2\n  num_epochs: 3\n");
        assert!(
            e.contains("training.epochs") && e.contains("training.num_epochs"),
            "{e}"
        );
        let e = error("seed: 1\nrun:\n  seed: 2\n");
        assert!(e.contains("seed and run.seed both set"), "{e}");
    }

    #[test]
    fn the_run_section_holds_only_aliases() {
        let e = error("run:\n  sed: 2\n");
        assert!(e.contains("run.sed: unknown key `sed`"), "{e}");
        assert!(e.contains("did you mean `seed`"), "{e}");
    }

    #[test]
    fn a_wrong_value_names_the_alias_that_was_written() {
        let e = error("training:\n  lr: fast\n");
        assert!(e.contains("training.lr"), "{e}");
    }

    #[test]
    fn the_schema_lists_every_alias_beside_its_key() {
        let schema = Config::json_schema();
        for a in ALIASES {
            let documented = schema_at(&schema, a.alias)
                .unwrap_or_else(|| panic!("{} missing from the schema", a.alias));
            let text = documented["description"].as_str().unwrap_or_default();
            assert!(text.contains(a.key), "{}: {text}", a.alias);
        }
        let key = schema_at(&schema, "training.weight_optimization.learning_rate").unwrap();
        let text = key["description"].as_str().unwrap_or_default();
        assert!(text.contains("training.lr"), "{text}");
    }
}
