//! Every multi-line message literal in the code joins its lines with `\`: a literal that runs
//! onto an indented next line without one puts runs of spaces into what users read.

use std::path::{Path, PathBuf};

/// Line numbers where a plain (non-raw) string literal continues onto a next line that starts
/// with two or more spaces, without a `\` line join. Code after the first `#[cfg(test)]` (test
/// modules) is not read.
fn unjoined_continuations(source: &str) -> Vec<usize> {
    let code = match source.find("#[cfg(test)]") {
        Some(cut) => &source[..cut],
        None => source,
    };
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let (mut i, mut line) = (0, 1);
    let next_line_indented = |from: usize| chars[from + 1..].iter().take(2).all(|&c| c == ' ');
    while i < chars.len() {
        let c = chars[i];
        let ahead = |n: usize| chars.get(i + n).copied().unwrap_or('\0');
        match c {
            '\n' => line += 1,
            '/' if ahead(1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if ahead(1) == '*' => {
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                i += 1;
            }
            'r' if (ahead(1) == '"' || ahead(1) == '#')
                && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = chars[j + 1..].iter().collect();
                let end = rest.find(&close).unwrap_or(rest.len());
                line += rest[..end].matches('\n').count();
                i = j + 1 + rest[..end].chars().count() + close.len();
                continue;
            }
            '\'' => {
                // A char literal ('x', '\n', '"'); a lifetime has no closing quote two ahead.
                if ahead(1) == '\\' {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                } else if ahead(2) == '\'' {
                    i += 2;
                }
            }
            '"' => {
                i += 1;
                let is_sql = is_sql_text(&chars[i..chars.len().min(i + 12)]);
                while i < chars.len() && chars[i] != '"' {
                    match chars[i] {
                        '\\' => {
                            if chars.get(i + 1) == Some(&'\n') {
                                line += 1;
                            }
                            i += 1;
                        }
                        '\n' => {
                            if next_line_indented(i) && !is_sql {
                                found.push(line);
                            }
                            line += 1;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Whether a literal is SQL (statements span lines freely; SQL ignores the spaces).
fn is_sql_text(start: &[char]) -> bool {
    let text: String = start.iter().collect();
    let first = text.split_whitespace().next().unwrap_or_default();
    [
        "SELECT", "UPDATE", "INSERT", "DELETE", "CREATE", "ALTER", "WITH", "DROP",
    ]
    .contains(&first)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_scanner_finds_an_unjoined_literal_and_passes_joined_ones() {
    let bad = "fn f() {\n    let s = \"one line,\n                 and the next\";\n}\n";
    assert_eq!(unjoined_continuations(bad), vec![2]);
    let good = "fn f() {\n    let s = \"one line, \\\n               and the next\";\n    let c = '\"';\n    let r = r#\"a\n    b\"#;\n}\n";
    assert!(unjoined_continuations(good).is_empty());
}

#[test]
fn no_message_literal_in_the_code_has_unjoined_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["crate/src", "native/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut problems = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for line in unjoined_continuations(&source) {
            problems.push(format!("{}:{line}", file.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "string literals that run onto an indented line without a `\\` join (users see runs of \
         spaces): {problems:?}"
    );
}
