//! Checks on config input before it is parsed: its size and its nesting, so that a few bytes
//! can never cost minutes of CPU or gigabytes.

use crate::error::Result;
use crate::limits::{Limit, Limits};

/// Rejects config text over the size limit or nested deeper than the depth limit. The scan is
/// one linear pass over the text (flow brackets outside quotes and comments, and block
/// indentation levels), so it is cheap on any input.
pub fn check_text(text: &str) -> Result<()> {
    let limits = Limits::current();
    if text.len() > limits.max_config_bytes {
        return Err(Limits::exceeded(
            "config",
            format!("{} bytes", text.len()),
            Limit::ConfigBytes,
        ));
    }
    if let Some(offset) = text.find('\0') {
        return Err(crate::error::KilnError::Config(format!(
            "config: a NUL byte at byte offset {offset}; a config is text without NUL bytes \
             (was a binary file passed?)"
        )));
    }
    if let Some((line, column)) = too_deep(text, limits.max_config_depth) {
        return Err(Limits::exceeded(
            &format!("config (line {line}, column {column})"),
            "its nesting",
            Limit::ConfigDepth,
        ));
    }
    Ok(())
}

/// The 1-based line and column where flow (`[`, `{`) or block (indentation) nesting first
/// exceeds `max_depth`, if it does.
fn too_deep(text: &str, max_depth: usize) -> Option<(usize, usize)> {
    let mut flow = 0usize;
    // Indentation of the enclosing block levels, innermost last.
    let mut indents: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    for (line_index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches([' ', '-']);
        let indent = line.len() - trimmed.len();
        if quote.is_none() && flow == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - x` opens one block sequence per dash on the same line.
            let dashes = line[..indent].matches('-').count();
            if indents.len() + dashes > max_depth {
                return Some((line_index + 1, indent + 1));
            }
        }
        let mut previous = ' ';
        for (column, c) in line.chars().enumerate() {
            match quote {
                Some(q) if c == q && previous != '\\' => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' if previous.is_whitespace() => break,
                    '[' | '{' => {
                        flow += 1;
                        if flow + indents.len() > max_depth {
                            return Some((line_index + 1, column + 1));
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            previous = c;
        }
        // A single-quoted YAML scalar may span lines; a double quote too. Keep the state.
    }
    None
}

/// Rejects a parsed value nested deeper than the depth limit (a JS object, say).
pub fn check_value_depth(value: &serde_json::Value) -> Result<()> {
    let max = Limits::current().max_config_depth;
    fn depth(value: &serde_json::Value, at: usize, max: usize) -> bool {
        if at > max {
            return false;
        }
        match value {
            serde_json::Value::Array(items) => items.iter().all(|v| depth(v, at + 1, max)),
            serde_json::Value::Object(map) => map.values().all(|v| depth(v, at + 1, max)),
            _ => true,
        }
    }
    if depth(value, 0, max) {
        Ok(())
    } else {
        Err(Limits::exceeded(
            "config",
            "its nesting",
            Limit::ConfigDepth,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_found_fast() {
        let text = "[".repeat(100_000);
        let start = web_time::Instant::now();
        let e = check_text(&text).unwrap_err().to_string();
        assert!(start.elapsed().as_secs_f64() < 1.0);
        assert!(
            e.contains("line 1, column 32") && e.contains("KILN_MAX_CONFIG_DEPTH"),
            "{e}"
        );
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!("name: \"{}\"  # {}\n", "[".repeat(100), "{".repeat(100));
        check_text(&text).expect("quoted and commented brackets are text");
    }

    #[test]
    fn deep_block_nesting_is_found() {
        let text: String = (0..40)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let e = check_text(&text).unwrap_err().to_string();
        assert!(e.contains("line 33"), "{e}");
    }

    #[test]
    fn a_nul_byte_is_refused_naming_its_offset_not_cut_off() {
        let text = "seed: 7\0\ntraining: {num_passes: 1}\n";
        let e = check_text(text).unwrap_err().to_string();
        assert!(e.contains("NUL byte at byte offset 7"), "{e}");
        let e = crate::Config::from_yaml_str(text).unwrap_err().to_string();
        assert!(e.contains("byte offset 7"), "{e}");
        let e = crate::Config::from_str_auto("{\"seed\": 7}\0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("byte offset 11"), "{e}");
    }

    #[test]
    fn duplicate_keys_in_a_json_config_are_refused_like_yaml_ones() {
        let e = crate::Config::from_json_str(r#"{"training": {"num_passes": 1, "num_passes": 5}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key `num_passes`"), "{e}");
        let e = crate::Config::from_str_auto(r#"{"seed": 1, "seed": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key `seed`"), "{e}");
    }
}
