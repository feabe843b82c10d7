//! Parsing configs from YAML, JSON or an already-parsed value, with errors that name the field.

use super::Config;
use super::aliases;
use super::guard;
use super::suggest::did_you_mean;
use super::yaml;
use crate::error::{KilnError, Result, cut_short};
use crate::limits::Limit;
use serde_json::Value;

/// JSON config text as a value (size, depth and NUL checked; duplicate keys refused).
fn json_value(text: &str) -> Result<Value> {
    guard::check_text(text)?;
    super::strict_json::parse(text).map_err(|e| {
        KilnError::Config(format!(
            "malformed JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// The embedded default config: an MLP on the embedded digits data set.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../configs/default.yaml");

impl Config {
    /// The embedded default (`configs/default.yaml`), equal to `Config::default()`: an MLP
    /// 64→128→10 on digits, Adam 1e-3, batch 32, 20 passes.
    pub fn embedded_default() -> Result<Self> {
        Self::from_yaml_str(DEFAULT_CONFIG_YAML)
    }

    /// Parses and validates a config written in YAML (JSON is valid YAML too).
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        guard::check_text(text)?;
        Self::from_value(yaml::parse(text)?)
    }

    /// The config as a YAML document that [`Config::from_yaml_str`] reads back to it.
    pub fn to_yaml(&self) -> Result<String> {
        // Through JSON text, so that `f32` fields keep their short form (0.001, not 0.0010000000474974513).
        let text = serde_json::to_string(self)
            .map_err(|e| KilnError::Internal(format!("cannot write config: {e}")))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| KilnError::Internal(format!("cannot write config: {e}")))?;
        yaml::to_string(&value)
    }

    /// Parses and validates a config written in JSON.
    pub fn from_json_str(text: &str) -> Result<Self> {
        Self::from_value(json_value(text)?)
    }

    /// Parses a config from text, as JSON when it starts with `{`, otherwise as YAML.
    pub fn from_str_auto(text: &str) -> Result<Self> {
        Self::from_value(Self::value_from_str_auto(text)?)
    }

    /// Config text (JSON when it starts with `{`, otherwise YAML) as the value that
    /// [`Config::from_value`] builds a config from; checked for size, depth, NUL bytes and
    /// duplicate keys, not yet validated.
    pub fn value_from_str_auto(text: &str) -> Result<Value> {
        if text.trim_start().starts_with('{') {
            json_value(text)
        } else {
            guard::check_text(text)?;
            yaml::parse(text)
        }
    }

    /// Reads, parses and validates a config file (`.json` as JSON, anything else as YAML).
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let bytes = crate::limits::read_limited(path, "config file", Limit::ConfigBytes)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            KilnError::Config(format!(
                "config file {}: not UTF-8 text (at byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        let is_json = path.extension().is_some_and(|ext| ext == "json");
        if is_json {
            Self::from_json_str(&text)
        } else {
            Self::from_yaml_str(&text)
        }
    }

    /// Builds and validates a config from a parsed JSON value (a JS object, say).
    /// A `null` or missing section takes its defaults.
    pub fn from_value(value: Value) -> Result<Self> {
        let value = match value {
            Value::Null => Value::Object(Default::default()),
            other => other,
        };
        guard::check_value_depth(&value)?;
        let mut value = value;
        let renamed = aliases::resolve(&mut value)?;
        let name_aliases = |e: KilnError| match e {
            KilnError::Config(message) => {
                KilnError::Config(aliases::name_aliases_in(message, &renamed))
            }
            other => other,
        };
        let given = value.clone();
        let config: Config = serde_path_to_error::deserialize(value)
            .map_err(|e| {
                let found = value_at(&given, e.path());
                let path = e.path().to_string();
                KilnError::Config(describe_serde_error(
                    &path,
                    &e.into_inner().to_string(),
                    found,
                ))
            })
            .map_err(name_aliases)?;
        config.validate().map_err(name_aliases)?;
        Ok(config)
    }

    /// The JSON Schema of the config file format, every alias listed beside its key.
    pub fn json_schema() -> Value {
        let mut schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or(Value::Null);
        aliases::document_in_schema(&mut schema);
        schema
    }
}

/// The value at a deserialisation error's path, when the path leads to one.
fn value_at<'a>(root: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    use serde_path_to_error::Segment;
    let mut at = root;
    for segment in path.iter() {
        at = match segment {
            Segment::Seq { index } => at.get(*index)?,
            Segment::Map { key } => at.get(key.as_str())?,
            Segment::Enum { .. } => at,
            Segment::Unknown => return None,
        };
    }
    Some(at)
}

/// What a message says a field holds: the value as JSON, cut short when long.
fn shown(value: &Value) -> String {
    cut_short(&value.to_string())
}

/// Turns a serde message into "path: what is wrong; did you mean ...", naming the value found.
fn describe_serde_error(path: &str, message: &str, found: Option<&Value>) -> String {
    let location = if path.is_empty() || path == "." {
        "(top level)".to_string()
    } else {
        cut_short(path)
    };
    for (marker, noun) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(marker) {
            let given = rest.split('`').next().unwrap_or_default();
            let allowed = backticked_names(message.split_once("expected").map_or("", |x| x.1));
            let parent = path.rsplit_once('.').map_or("", |(parent, _)| parent);
            let nested = (noun == "key" && given.len() <= 64)
                .then(|| aliases::key_one_level_down(parent, given))
                .flatten();
            let hint = nested
                .or_else(|| did_you_mean(given, &allowed))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            let given = cut_short(given);
            return format!("{location}: unknown {noun} `{given}`{hint} (allowed: {list})");
        }
    }
    if message.contains("untagged enum LabelColumn") {
        let got = found.map(shown).unwrap_or_default();
        return format!(
            "{location}: must be a column name (a string) or a 0-based column index (a whole \
             number >= 0), got {got}"
        );
    }
    if message.contains("untagged enum") {
        let got = found.map(shown).unwrap_or_default();
        return format!("{location}: {got} is not an allowed value ({message})");
    }
    if let Some(Value::String(text)) = found
        && message.starts_with("invalid type: string")
        && text.trim().parse::<f64>().is_ok_and(|f| f.is_infinite())
    {
        return format!(
            "{location}: `{text}` is out of the range of a 64-bit float (at most about 1.8e308)"
        );
    }
    format!("{location}: {message}")
}

/// The names between backticks in a serde "expected one of `a`, `b`" list.
fn backticked_names(list: &str) -> Vec<String> {
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Config::from_yaml_str(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error for {text}"),
        }
    }

    #[test]
    fn there_is_one_default_config() {
        let embedded = Config::embedded_default().unwrap();
        assert_eq!(embedded, Config::default());
        assert_eq!(Config::from_json_str("{}").unwrap(), Config::default());
        assert_eq!(Config::from_yaml_str("{}").unwrap(), Config::default());
        assert_eq!(Config::from_value(serde_json::json!({})).unwrap(), embedded);
    }

    #[test]
    fn unknown_key_suggests_the_close_one() {
        let e = err("training:\n  weight_optimization:\n    lerning_rate: 0.1\n");
        assert!(
            e.contains("training.weight_optimization.lerning_rate"),
            "{e}"
        );
        assert!(e.contains("did you mean `learning_rate`"), "{e}");
    }

    #[test]
    fn a_huge_unknown_key_is_named_short_and_not_compared() {
        let key = "k".repeat(200_000);
        let e = err(&format!("{{\"{key}\": 1}}"));
        assert!(e.len() < 1000, "{} bytes: {}", e.len(), &e[..200]);
        assert!(e.contains("unknown key `kkk") && e.contains("…"), "{e}");
        let allowed = ["name".to_string(), "seed".to_string()];
        assert_eq!(did_you_mean(&"n".repeat(65), &allowed), None);
        assert_eq!(did_you_mean("nmae", &allowed).as_deref(), Some("name"));
    }

    #[test]
    fn an_unknown_key_that_belongs_one_level_down_says_where() {
        let e = err("data: {source: text, max_len: 200, tokenizer: word}\n");
        assert!(
            e.contains("data.max_len: unknown key `max_len`; did you mean `data.text.max_len`?"),
            "{e}"
        );
        let e = err("num_passes: 3\n");
        assert!(e.contains("did you mean `training.num_passes`?"), "{e}");
    }

    #[test]
    fn unknown_variant_suggests_the_close_one() {
        let e = err("training:\n  weight_optimization:\n    optimization_method: adm\n");
        assert!(e.contains("did you mean `adam`"), "{e}");
    }

    #[test]
    fn written_yaml_reads_back_to_the_same_config() {
        let config = Config::from_yaml_str(
            "name: \"yes\"\nseed: 7\ntraining:\n  weight_optimization:\n    learning_rate: 0.003\n  \
             batch_size: 16\nmodel:\n  hidden: [64, 32]\n  dropout: 0.25\n",
        )
        .unwrap();
        let text = config.to_yaml().unwrap();
        assert!(text.contains("learning_rate: 0.003"), "{text}");
        assert_eq!(Config::from_yaml_str(&text).unwrap(), config, "{text}");
        let default = Config::default().to_yaml().unwrap();
        assert_eq!(Config::from_yaml_str(&default).unwrap(), Config::default());
    }

    #[test]
    fn malformed_yaml_names_line_and_column() {
        let e = err("training:\n  batch_size: [1, 2\n");
        assert!(e.contains("malformed YAML at line"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_path() {
        let e = err("training:\n  batch_size: lots\n");
        assert!(e.contains("training.batch_size"), "{e}");
    }

    #[test]
    fn epochs_is_an_alias_for_num_passes() {
        let config = Config::from_yaml_str("training:\n  epochs: 3\n").unwrap();
        assert_eq!(config.training.num_passes, 3);
    }

    #[test]
    fn json_is_accepted() {
        let config = Config::from_json_str(r#"{"training": {"batch_size": 8}}"#).unwrap();
        assert_eq!(config.training.batch_size, 8);
        let e = Config::from_json_str("{\"training\": ")
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed JSON at line 1"), "{e}");
    }

    #[test]
    fn every_distinguishes_steps_from_epochs() {
        use super::super::Every;
        let steps = Config::from_yaml_str("validation:\n  every: 50\n").unwrap();
        assert_eq!(steps.validation.every, Every::Steps(50));
        let epochs = Config::from_yaml_str("validation:\n  every: 0.5\n").unwrap();
        assert_eq!(epochs.validation.every, Every::Epochs(0.5));
    }
}
