//! Text data: reading labelled texts (class folders or a CSV column), a vocabulary built from
//! the training split, and encoding texts as fixed-length token ids.

#[cfg(not(target_family = "wasm"))]
use crate::config::LabelColumn;
use crate::config::{TextConfig, Tokenizer};
use crate::error::{KilnError, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The padding token's id.
pub const PAD: u32 = 0;
/// The id of tokens outside the vocabulary.
pub const UNKNOWN: u32 = 1;

/// Texts with their labels, as read from the source.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledTexts {
    /// One text per sample.
    pub texts: Vec<String>,
    /// Each sample's class index into `classes`.
    pub classes: Vec<u32>,
    /// The class names, sorted; a class's index is its position.
    pub class_names: Vec<String>,
}

impl LabelledTexts {
    /// Texts and their label names (at least two classes).
    pub fn new(texts: Vec<String>, labels: Vec<String>) -> Result<Self> {
        if texts.len() != labels.len() {
            return Err(KilnError::InvalidArgument(format!(
                "{} texts but {} labels",
                texts.len(),
                labels.len()
            )));
        }
        let class_names: Vec<String> = labels
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if class_names.len() < 2 {
            return Err(KilnError::InvalidArgument(format!(
                "texts of at least two classes are needed, found {} texts of {:?}",
                texts.len(),
                class_names
            )));
        }
        let class_of: BTreeMap<&str, u32> = class_names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u32))
            .collect();
        let classes = labels
            .iter()
            .map(|l| class_of.get(l.as_str()).copied().unwrap_or_default())
            .collect();
        Ok(Self {
            texts,
            classes,
            class_names,
        })
    }
}

/// The vocabulary and settings that turn a text into token ids; saved with the model so
/// prediction tokenises exactly as training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// How texts are split.
    pub tokenizer: Tokenizer,
    /// Lower-case first.
    pub lowercase: bool,
    /// Token ids per sample.
    pub max_len: usize,
    /// Tokens by id: `<pad>`, `<unk>`, then the training split's most frequent tokens.
    pub tokens: Vec<String>,
    /// The class names by class index.
    pub class_names: Vec<String>,
}

/// Splits `text` into tokens.
fn tokens<'t>(text: &'t str, tokenizer: Tokenizer) -> Box<dyn Iterator<Item = &'t str> + 't> {
    match tokenizer {
        Tokenizer::Word => Box::new(
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty()),
        ),
        Tokenizer::Char => Box::new(
            text.char_indices()
                .map(move |(i, c)| &text[i..i + c.len_utf8()]),
        ),
    }
}

impl Vocabulary {
    /// The `config.vocab_size - 2` most frequent tokens of `texts` (ties broken by the token),
    /// after `<pad>` and `<unk>`.
    pub fn fit<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        config: &TextConfig,
        class_names: Vec<String>,
    ) -> Self {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in texts {
            let text = normalise(text, config.lowercase);
            for token in tokens(&text, config.tokenizer) {
                *counts.entry(token.to_string()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut tokens = vec!["<pad>".to_string(), "<unk>".to_string()];
        let room = config.vocab_size.saturating_sub(tokens.len());
        tokens.extend(ranked.into_iter().take(room).map(|(token, _)| token));
        Self {
            tokenizer: config.tokenizer,
            lowercase: config.lowercase,
            max_len: config.max_len,
            tokens,
            class_names,
        }
    }

    /// Token ids (including `<pad>` and `<unk>`).
    pub fn size(&self) -> usize {
        self.tokens.len()
    }

    /// The first `max_len` token ids of `text`, left-padded with `<pad>`, as floats (exact:
    /// ids stay far below 2^24).
    pub fn encode(&self, text: &str) -> Vec<f32> {
        self.encode_all([text])
    }

    /// Encodes every text, one after another.
    pub fn encode_all<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Vec<f32> {
        let index: HashMap<&str, u32> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        texts
            .into_iter()
            .flat_map(|text| self.encode_with(&index, text))
            .collect()
    }

    fn encode_with(&self, index: &HashMap<&str, u32>, text: &str) -> Vec<f32> {
        let text = normalise(text, self.lowercase);
        let ids: Vec<u32> = tokens(&text, self.tokenizer)
            .take(self.max_len)
            .map(|t| index.get(t).copied().unwrap_or(UNKNOWN))
            .collect();
        let mut out = vec![PAD as f32; self.max_len - ids.len()];
        out.extend(ids.into_iter().map(|id| id as f32));
        out
    }
}

fn normalise(text: &str, lowercase: bool) -> std::borrow::Cow<'_, str> {
    if lowercase {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Reads `path`: a directory with one folder of `.txt` files per class (mapped through
/// `config.labels` when given), or a CSV file with a text column (`config.column`, default the
/// first) and a label column (`label_column`, default the last).
#[cfg(not(target_family = "wasm"))]
pub fn load_texts(
    path: &std::path::Path,
    config: &TextConfig,
    label_column: Option<&LabelColumn>,
    header: bool,
) -> Result<LabelledTexts> {
    let (texts, labels) = if path.is_dir() {
        read_class_folders(path, config.labels.as_ref(), config.lines)?
    } else {
        read_csv_texts(path, config.column.as_ref(), label_column, header)?
    };
    LabelledTexts::new(texts, labels)
        .map_err(|e| KilnError::Data(format!("{}: {e}", path.display())))
}

#[cfg(not(target_family = "wasm"))]
fn read_class_folders(
    root: &std::path::Path,
    map: Option<&BTreeMap<String, String>>,
    lines: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let unreadable = |p: &std::path::Path, e: std::io::Error| {
        KilnError::Data(format!("cannot read {}: {e}", p.display()))
    };
    let mut folders: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| unreadable(root, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    if let Some(map) = map
        && let Some(missing) = map.keys().find(|k| !root.join(k).is_dir())
    {
        return Err(KilnError::Config(format!(
            "data.text.labels: there is no folder `{missing}` in {}",
            root.display()
        )));
    }
    let (mut texts, mut labels) = (Vec::new(), Vec::new());
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = match map {
            Some(map) => match map.get(&name) {
                Some(label) => label.clone(),
                None => continue,
            },
            None => name,
        };
        let mut files = Vec::new();
        text_files(&folder, &mut files)?;
        files.sort();
        for file in files {
            let bytes = crate::limits::read_file_limited(&file, "text")?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if lines {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    texts.push(line.to_string());
                    labels.push(label.clone());
                }
            } else {
                texts.push(text);
                labels.push(label.clone());
            }
        }
    }
    Ok((texts, labels))
}

/// Every `.txt` file under `dir` (sub-folders included; links are not followed).
#[cfg(not(target_family = "wasm"))]
fn text_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| KilnError::Data(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let (path, kind) = (entry.path(), entry.file_type());
        match kind {
            Ok(kind) if kind.is_dir() => text_files(&path, found)?,
            Ok(kind) if kind.is_file() && path.extension().is_some_and(|e| e == "txt") => {
                found.push(path)
            }
            _ => {}
        }
    }
    Ok(())
}

/// A CSV file's header names (empty without a header) and rows.
#[cfg(not(target_family = "wasm"))]
fn read_csv_rows(path: &std::path::Path, header: bool) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let content = super::read_text_file(path, "CSV")?;
    let what = path.display().to_string();
    let mut rows = super::records(&content, &what)
        .map(|record| record.map(|r| r.cells.into_iter().map(|c| c.into_owned()).collect()))
        .collect::<Result<Vec<Vec<String>>>>()?;
    let names = if header && !rows.is_empty() {
        rows.remove(0)
    } else {
        Vec::new()
    };
    Ok((names, rows))
}

/// The index of `column` (a header name or an index) among `width` columns named `names`.
#[cfg(not(target_family = "wasm"))]
fn column_index(
    column: Option<&LabelColumn>,
    default: usize,
    names: &[String],
    width: usize,
    field: &str,
) -> Result<usize> {
    match column {
        None => Ok(default),
        Some(LabelColumn::Index(i)) if *i < width => Ok(*i),
        Some(LabelColumn::Name(name)) => names.iter().position(|n| n == name).ok_or_else(|| {
            KilnError::Config(format!(
                "{field}: no column `{}` (columns: {})",
                crate::error::cut_short(name),
                crate::error::cut_short(&names.join(", "))
            ))
        }),
        Some(LabelColumn::Index(i)) => Err(KilnError::Config(format!(
            "{field}: column {i} does not exist (the file has {width} columns)"
        ))),
    }
}

#[cfg(not(target_family = "wasm"))]
fn read_csv_texts(
    path: &std::path::Path,
    text_column: Option<&LabelColumn>,
    label_column: Option<&LabelColumn>,
    header: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let (names, rows) = read_csv_rows(path, header)?;
    let width = rows.first().map_or(names.len(), Vec::len);
    let text_at = column_index(text_column, 0, &names, width, "data.text.column")?;
    let label_default = width.saturating_sub(1);
    let label_at = column_index(
        label_column,
        label_default,
        &names,
        width,
        "data.label_column",
    )?;
    Ok(rows
        .into_iter()
        .map(|mut row| {
            (
                std::mem::take(&mut row[text_at]),
                std::mem::take(&mut row[label_at]),
            )
        })
        .unzip())
}

/// One column of texts from a CSV file with a header: the column named `text`, else the first.
#[cfg(not(target_family = "wasm"))]
pub fn read_text_column(path: &std::path::Path) -> Result<Vec<String>> {
    let (names, rows) = read_csv_rows(path, true)?;
    let at = names.iter().position(|n| n == "text").unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|mut row| std::mem::take(&mut row[at]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tokenizer: Tokenizer, max_len: usize, vocab_size: usize) -> TextConfig {
        TextConfig {
            tokenizer,
            max_len,
            vocab_size,
            ..TextConfig::default()
        }
    }

    #[test]
    fn the_vocabulary_keeps_the_most_frequent_training_tokens() {
        let texts = [
            "Buy cheap pills, buy now!",
            "Meeting notes: buy milk",
            "now now",
        ];
        let vocab = Vocabulary::fit(texts, &config(Tokenizer::Word, 4, 5), vec![]);
        assert_eq!(vocab.tokens, ["<pad>", "<unk>", "buy", "now", "cheap"]);
        // Left-padded; unknown words are <unk>; only the first max_len tokens are kept.
        assert_eq!(vocab.encode("BUY milk"), [0.0, 0.0, 2.0, 1.0]);
        assert_eq!(vocab.encode("now buy cheap buy now"), [3.0, 2.0, 4.0, 2.0]);
        assert_eq!(
            vocab.encode_all(["now", "x"]),
            [0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn characters_tokenise_one_by_one() {
        let vocab = Vocabulary::fit(["anna", "ann"], &config(Tokenizer::Char, 5, 10), vec![]);
        assert_eq!(vocab.tokens, ["<pad>", "<unk>", "n", "a"]);
        assert_eq!(vocab.encode("nab"), [0.0, 0.0, 2.0, 3.0, 1.0]);
    }
}
