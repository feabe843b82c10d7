//! YAML config text to JSON values and back, on yaml-rust2 (safe Rust): its event parser is
//! read here into `serde_json::Value`s directly, so that aliases are expanded under a budget
//! (a few bytes of `&a`/`*a` can never become gigabytes), duplicate keys are refused, and
//! numbers JSON cannot hold are named by their field path.

use crate::error::{KilnError, Result, cut_short};
use crate::limits::{Limit, Limits};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Yaml, YamlEmitter};

/// Parses YAML text (one document; none is `null`) into a JSON value.
pub fn parse(text: &str) -> Result<Value> {
    let limits = Limits::current();
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        values: 0,
        max_values: limits.max_config_bytes.max(1),
        max_depth: limits.max_config_depth,
        path: Vec::new(),
    };
    reader.document()
}

/// Writes a JSON value as a YAML document.
pub fn to_string(value: &Value) -> Result<String> {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&to_yaml(value))
        .map_err(|e| KilnError::Internal(format!("cannot write YAML: {e:?}")))?;
    out.push('\n');
    Ok(out)
}

fn to_yaml(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(map) => Yaml::Hash(
            map.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

struct Reader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Anchored values by the parser's anchor id.
    anchors: HashMap<usize, Value>,
    /// Values made so far, aliases' copies included.
    values: usize,
    max_values: usize,
    max_depth: usize,
    /// Where the reader is: `.key` and `[index]` segments.
    path: Vec<String>,
}

fn at(marker: &Marker) -> String {
    format!("line {}, column {}", marker.line(), marker.col() + 1)
}

fn malformed(marker: &Marker, what: impl std::fmt::Display) -> KilnError {
    KilnError::Config(format!("malformed YAML at {}: {what}", at(marker)))
}

impl Reader<'_> {
    fn next(&mut self) -> Result<(Event, Marker)> {
        self.parser.next_token().map_err(|e| {
            let info = e.info();
            let info = info.strip_suffix('.').unwrap_or(info);
            malformed(e.marker(), info)
        })
    }

    fn document(&mut self) -> Result<Value> {
        let mut value = Value::Null;
        let mut documents = 0;
        loop {
            let (event, marker) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(value),
                Event::DocumentStart => {
                    documents += 1;
                    if documents > 1 {
                        return Err(malformed(
                            &marker,
                            "a config is one YAML document, this is a second one",
                        ));
                    }
                    let (event, marker) = self.next()?;
                    value = self.node(event, marker, 0)?;
                }
                other => {
                    return Err(malformed(
                        &marker,
                        format!("unexpected {}", cut_short(&format!("{other:?}"))),
                    ));
                }
            }
        }
    }

    fn path(&self) -> String {
        let joined = self.path.concat();
        match joined.strip_prefix('.') {
            Some(rest) => rest.to_string(),
            None if joined.is_empty() => "(top level)".to_string(),
            None => joined,
        }
    }

    /// Counts `count` more values against the budget.
    fn spend(&mut self, count: usize, marker: &Marker) -> Result<()> {
        self.values = self.values.saturating_add(count);
        if self.values > self.max_values {
            return Err(malformed(
                marker,
                format!(
                    "aliases expand the config to more than {} values, the most its size limit \
                     allows (one per byte; raise it with KILN_MAX_CONFIG_BYTES=N natively or \
                     Kiln.create({{ limits: {{ maxConfigBytes: N }} }}) in JS)",
                    self.max_values
                ),
            ));
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize, marker: &Marker) -> Result<()> {
        if depth > self.max_depth {
            return Err(Limits::exceeded(
                &format!("config ({})", at(marker)),
                "its nesting",
                Limit::ConfigDepth,
            ));
        }
        Ok(())
    }

    /// Keeps a copy of `value` under its anchor (0: none) for the aliases that follow.
    fn anchored(&mut self, anchor: usize, value: Value) -> Value {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        value
    }

    /// Reads the node that `event` starts, at nesting `depth`.
    fn node(&mut self, event: Event, marker: Marker, depth: usize) -> Result<Value> {
        self.check_depth(depth, &marker)?;
        let value = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.spend(1, &marker)?;
                let value = self.scalar(text, style, tag.as_ref(), &marker)?;
                self.anchored(anchor, value)
            }
            Event::Alias(id) => {
                let Some(found) = self.anchors.get(&id) else {
                    return Err(malformed(&marker, "an alias to an unknown anchor"));
                };
                // Checked before the copy is made: the budget bounds the copying too.
                let (height, count) = (height(found), count_values(found));
                self.check_depth(depth + height, &marker)?;
                self.spend(count, &marker)?;
                self.anchors[&id].clone()
            }
            Event::SequenceStart(anchor, _) => {
                self.spend(1, &marker)?;
                let mut items = Vec::new();
                loop {
                    let (event, marker) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    self.path.push(format!("[{}]", items.len()));
                    items.push(self.node(event, marker, depth + 1)?);
                    self.path.pop();
                }
                self.anchored(anchor, Value::Array(items))
            }
            Event::MappingStart(anchor, _) => {
                self.spend(1, &marker)?;
                let mut map = Map::new();
                loop {
                    let (event, key_marker) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = self.key(event, &key_marker)?;
                    if map.contains_key(&key) {
                        self.path.push(format!(".{key}"));
                        let message = format!("{}: the key is given twice", self.path());
                        return Err(malformed(&key_marker, message));
                    }
                    let (event, marker) = self.next()?;
                    self.path.push(format!(".{key}"));
                    let item = self.node(event, marker, depth + 1)?;
                    self.path.pop();
                    map.insert(key, item);
                }
                self.anchored(anchor, Value::Object(map))
            }
            other => {
                return Err(malformed(
                    &marker,
                    format!("unexpected {}", cut_short(&format!("{other:?}"))),
                ));
            }
        };
        Ok(value)
    }

    /// A mapping key: a scalar (numbers and booleans are taken as their text).
    fn key(&mut self, event: Event, marker: &Marker) -> Result<String> {
        match self.node(event, *marker, 0)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(KilnError::Config(format!(
                "{}: keys must be names, got {}",
                self.path(),
                cut_short(&other.to_string())
            ))),
        }
    }

    /// A scalar's value: plain ones by YAML 1.2's core schema (null, booleans, integers,
    /// floats), quoted and block ones as text; the core tags (`!!str`, `!!int`…) are honoured.
    fn scalar(
        &self,
        text: String,
        style: TScalarStyle,
        tag: Option<&Tag>,
        marker: &Marker,
    ) -> Result<Value> {
        let core = tag
            .filter(|t| t.handle == "tag:yaml.org,2002:" || t.handle == "!!")
            .map(|t| t.suffix.as_str());
        let resolved = match core {
            Some("str") => return Ok(Value::String(text)),
            Some("null") => return Ok(Value::Null),
            _ if style != TScalarStyle::Plain && core.is_none() => {
                return Ok(Value::String(text));
            }
            _ => Yaml::from_str(&text),
        };
        let wrong_tag = |tag: &str| {
            malformed(
                marker,
                format!("{}: `{}` is not a !!{tag}", self.path(), cut_short(&text)),
            )
        };
        match (core, resolved) {
            (Some("bool"), Yaml::Boolean(b)) | (None, Yaml::Boolean(b)) => Ok(Value::Bool(b)),
            (Some("int" | "float"), Yaml::Integer(i)) | (None, Yaml::Integer(i)) => {
                Ok(Value::from(i))
            }
            (Some("float") | None, Yaml::Real(real)) => self.float(&real),
            (None, Yaml::Null) => Ok(Value::Null),
            (None, _) => Ok(Value::String(text)),
            (Some(tag @ ("bool" | "int" | "float")), _) => Err(wrong_tag(tag)),
            // Other tags (`!custom`, `!!binary`…) are ignored: the value is read as untagged.
            (Some(_), _) => Ok(Value::String(text)),
        }
    }

    /// A float; `.nan` and `.inf` are refused by field path, a literal too large for a
    /// 64-bit float stays text (so that its field's message quotes it).
    fn float(&self, real: &str) -> Result<Value> {
        let f = Yaml::Real(real.to_string()).as_f64().unwrap_or(f64::NAN);
        if let Some(n) = Number::from_f64(f) {
            return Ok(Value::Number(n));
        }
        let spelled = real.trim_start_matches(['+', '-']).to_ascii_lowercase();
        if f.is_infinite() && spelled != ".inf" {
            return Ok(Value::String(real.to_string()));
        }
        let shown = if f.is_nan() {
            ".nan"
        } else if f > 0.0 {
            ".inf"
        } else {
            "-.inf"
        };
        Err(KilnError::Config(format!(
            "{}: must be a finite number, got {shown}",
            self.path()
        )))
    }
}

/// How many levels below `value` its deepest value is (a scalar or an empty list: 0).
fn height(value: &Value) -> usize {
    let below = |v: &Value| 1 + height(v);
    match value {
        Value::Array(items) => items.iter().map(below).max().unwrap_or(0),
        Value::Object(map) => map.values().map(below).max().unwrap_or(0),
        _ => 0,
    }
}

/// How many values `value` holds, itself included.
fn count_values(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_values).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_values).sum::<usize>(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(v) => panic!("expected an error for {text:?}, got {v}"),
        }
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let v = parse(
            "a: 1\nb: -2.5\nc: true\nd: ~\ne: null\nf: text\ng: '1'\nh: \"true\"\ni: 0x10\n\
             j: 1e3\nk:\nl: !!str 12\nm: !!float 3\nn: yes\no: |\n  two\n  lines\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": -2.5, "c": true, "d": null, "e": null, "f": "text", "g": "1",
                   "h": "true", "i": 16, "j": 1000.0, "k": null, "l": "12", "m": 3, "n": "yes",
                   "o": "two\nlines\n"})
        );
        assert_eq!(parse("").unwrap(), Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap(), Value::Null);
        assert_eq!(parse("[1, {a: b}]").unwrap(), json!([1, {"a": "b"}]));
    }

    #[test]
    fn numbers_and_booleans_are_key_names() {
        let v = parse("z: 1\n3: x\ntrue: y\n").unwrap();
        assert_eq!(v, json!({"z": 1, "3": "x", "true": "y"}));
        let e = error("a:\n  [1, 2]: x\n");
        assert!(e.contains("a: keys must be names, got [1,2]"), "{e}");
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let v = parse("base: &b {lr: 0.1, sizes: [1, 2]}\nother: *b\nn: &n 3\nm: *n\n").unwrap();
        assert_eq!(v["other"], v["base"]);
        assert_eq!(v["m"], json!(3));
        let e = error("a: *nowhere\n");
        assert!(e.contains("malformed YAML at line 1"), "{e}");
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        let mut text = String::from("a0: &a0 [1]\n");
        for i in 1..40 {
            text.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
        }
        let e = error(&text);
        assert!(e.contains("KILN_MAX_CONFIG_DEPTH"), "{e}");
    }

    #[test]
    fn duplicate_keys_and_second_documents_are_refused() {
        let e = error("training:\n  batch_size: 1\n  batch_size: 2\n");
        assert!(
            e.contains("line 3, column 3")
                && e.contains("training.batch_size: the key is given twice"),
            "{e}"
        );
        let e = error("a: 1\n---\nb: 2\n");
        assert!(e.contains("line 2") && e.contains("second one"), "{e}");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = error("training:\n  batch_size: [1, 2\n");
        assert!(
            e.starts_with("config error: malformed YAML at line 3"),
            "{e}"
        );
        let e = error("a: b: c\n");
        assert!(e.contains("malformed YAML at line 1, column 5"), "{e}");
    }

    #[test]
    fn numbers_json_cannot_hold_are_named_by_path() {
        let e = error("training:\n  weight_optimization:\n    learning_rate: .nan\n");
        assert!(
            e.contains(
                "training.weight_optimization.learning_rate: must be a finite number, got .nan"
            ),
            "{e}"
        );
        let e = error("x: [1, -.inf]\n");
        assert!(
            e.contains("x[1]: must be a finite number, got -.inf"),
            "{e}"
        );
        assert_eq!(parse("x: 1e400\n").unwrap(), json!({"x": "1e400"}));
        let e = error("x: !!int abc\n");
        assert!(e.contains("x: `abc` is not a !!int"), "{e}");
        let e = error(&format!("x: !!int {}\n", "a".repeat(100_000)));
        assert!(e.len() < 300, "{e}");
        let e = error(&format!("? [{}]\n: 1\n", vec!["1"; 50_000].join(", ")));
        assert!(e.len() < 300 && e.contains("keys must be names"), "{e}");
    }

    #[test]
    fn written_yaml_reads_back_the_same() {
        let value = json!({"name": "run", "data": {"source": "csv", "columns": ["1", "true", "a: b", ""]},
            "training": {"lr": 0.001, "passes": 20, "nothing": null, "flag": false, "multi": "a\nb"},
            "empty": {}, "list": [], "nested": [[1, 2], {"k": -3.5e-8}]});
        let text = to_string(&value).unwrap();
        assert_eq!(parse(&text).unwrap(), value, "{text}");
        assert!(text.contains("lr: 0.001"), "{text}");
    }
}
