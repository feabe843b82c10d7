//! Numeric CSV: one sample per row, one label column, every other column a feature.

use super::csv_records::{Record, records};
use super::dataset::{Dataset, dataset_from_labels};
use crate::config::{LabelColumn, Task};
use crate::error::{KilnError, Result, cut_short};

/// A parsed numeric CSV table.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    /// Column names, when the file has a header row.
    pub header: Option<Vec<String>>,
    /// The cells, row-major (`width` a row): one flat buffer, not a vector per row.
    pub values: Vec<f64>,
    /// Cells per row.
    pub width: usize,
    /// The 1-based line of the file each row came from.
    pub lines: Vec<usize>,
    /// What the table was read from (a file name), for messages.
    pub source: String,
}

/// Reads CSV text (RFC 4180: quoted cells may hold commas and line breaks) whose cells are all
/// numbers, one row at a time: `each(line, row)` sees every row, nothing is kept. Returns the
/// header names (when `header`) and the width. Errors name the line and the column.
pub fn for_each_row(
    text: &str,
    header: bool,
    what: &str,
    mut each: impl FnMut(usize, &[f64]) -> Result<()>,
) -> Result<(Option<Vec<String>>, usize)> {
    let mut records = records(text, what);
    let names = if header {
        let first = records
            .next()
            .ok_or_else(|| KilnError::Data(format!("{what}: the CSV is empty")))??;
        Some(
            first
                .cells
                .into_iter()
                .map(|c| c.into_owned())
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let mut width = names.as_ref().map(Vec::len);
    let mut row = Vec::new();
    let mut any = false;
    for record in records {
        let Record {
            line: line_no,
            cells,
        } = record?;
        let expected = *width.get_or_insert(cells.len());
        if cells.len() != expected {
            return Err(KilnError::Data(format!(
                "{what}: line {line_no} has {} columns, expected {expected} (ragged rows are not \
                 allowed)",
                cells.len()
            )));
        }
        row.clear();
        for (col, cell) in cells.iter().enumerate() {
            let value: f64 = cell.trim().parse().map_err(|_| {
                let name = names
                    .as_ref()
                    .and_then(|n| n.get(col))
                    .map(|n| format!(" (`{}`)", cut_short(n)))
                    .unwrap_or_default();
                KilnError::Data(format!(
                    "{what}: line {line_no}, column {}{name}: `{}` is not a number",
                    col + 1,
                    cut_short(cell)
                ))
            })?;
            if !value.is_finite() {
                return Err(KilnError::Data(format!(
                    "{what}: line {line_no}, column {}: `{}` is not a finite number",
                    col + 1,
                    cut_short(cell)
                )));
            }
            row.push(value);
        }
        each(line_no, &row)?;
        any = true;
    }
    if !any {
        return Err(KilnError::Data(format!("{what}: the CSV has no data rows")));
    }
    Ok((names, width.unwrap_or(0)))
}

/// Parses CSV text whose cells are all numbers into a table (see [`for_each_row`]).
pub fn parse_table(text: &str, header: bool, what: &str) -> Result<CsvTable> {
    let mut values = Vec::new();
    let mut lines = Vec::new();
    let (header, width) = for_each_row(text, header, what, |line, row| {
        values.extend_from_slice(row);
        lines.push(line);
        Ok(())
    })?;
    Ok(CsvTable {
        header,
        values,
        width,
        lines,
        source: what.to_string(),
    })
}

/// Whether CSV text's first record looks like a header: one of its cells is not a number.
pub fn first_record_is_header(text: &str) -> bool {
    records(text, "").next().is_some_and(|first| {
        first
            .map(|r| r.cells.iter().any(|c| c.trim().parse::<f64>().is_err()))
            .unwrap_or(false)
    })
}

/// The 0-based index of the label `column` (default: the last) in a table of `width` columns
/// with `header` names; `source` names the table in errors.
pub fn label_index(
    header: Option<&[String]>,
    width: usize,
    column: Option<&LabelColumn>,
    source: &str,
) -> Result<usize> {
    match column {
        None => Ok(width.saturating_sub(1)),
        Some(LabelColumn::Index(i)) if *i < width => Ok(*i),
        Some(LabelColumn::Index(i)) => Err(KilnError::Config(format!(
            "data.label_column: must be a 0-based column index in 0..{width} ({source} has \
             {width} columns), got {i}"
        ))),
        Some(LabelColumn::Name(name)) => {
            let header = header.ok_or_else(|| {
                KilnError::Config(format!(
                    "data.label_column: `{}` is a name, but data.header is false; give a 0-based \
                     index instead",
                    cut_short(name)
                ))
            })?;
            header.iter().position(|h| h == name).ok_or_else(|| {
                KilnError::Config(format!(
                    "data.label_column: no column named `{}` (columns: {})",
                    cut_short(name),
                    cut_short(&header.join(", "))
                ))
            })
        }
    }
}

impl CsvTable {
    /// The rows, each `width` cells.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.values.chunks_exact(self.width.max(1))
    }

    /// How many rows the table has.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the table has no rows (a parsed table always has one).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The 0-based index of the label column (default: the last column).
    pub fn label_index(&self, column: Option<&LabelColumn>) -> Result<usize> {
        label_index(self.header.as_deref(), self.width, column, &self.source)
    }

    /// Splits the table into features and targets for the task.
    pub fn into_dataset(self, column: Option<&LabelColumn>, task: Task) -> Result<Dataset> {
        let label_at = self.label_index(column)?;
        let width = self.width;
        if width < 2 {
            return Err(KilnError::Data(format!(
                "{}: the CSV needs at least one feature column besides the label",
                self.source
            )));
        }
        let mut features = Vec::with_capacity(self.len() * (width - 1));
        let mut labels = Vec::with_capacity(self.len());
        for row in self.rows() {
            for (i, v) in row.iter().enumerate() {
                if i == label_at {
                    labels.push(*v);
                } else {
                    features.push(*v as f32);
                }
            }
        }
        let line_of = |i: usize| {
            let line = self.lines.get(i).copied().unwrap_or(i + 1);
            format!("{}: line {line}, column {}", self.source, label_at + 1)
        };
        dataset_from_labels(features, vec![width - 1], &labels, task, &line_of)
    }
}

/// Reads a CSV file into a data set.
pub fn load_csv_file(
    path: &std::path::Path,
    header: bool,
    column: Option<&LabelColumn>,
    task: Task,
) -> Result<Dataset> {
    let text = read_text_file(path, "CSV")?;
    parse_table(&text, header, &path.display().to_string())?.into_dataset(column, task)
}

/// Reads a text file within the file-size limit; text that is not UTF-8 is an error naming the
/// file, the line and the column.
pub fn read_text_file(path: &std::path::Path, what: &str) -> Result<String> {
    let bytes = crate::limits::read_file_limited(path, what)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let valid = &e.as_bytes()[..at];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        KilnError::Data(format!(
            "{}: line {line}, column {column}: not UTF-8 text",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;

    #[test]
    fn a_quote_opened_and_never_closed_is_an_error_not_ignored() {
        let e = parse_table("a,b,label\n1,2,0\n\"3,4,1\n5,6,1\n7,8,0\n", true, "t.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.csv: line 3: a quoted cell opened"), "{e}");
        let t = parse_table("\"a,1\",b\n\"1\",2\n", true, "t.csv").unwrap();
        assert_eq!(t.header.unwrap(), vec!["a,1".to_string(), "b".into()]);
        assert_eq!((t.values, t.width), (vec![1.0, 2.0], 2));
    }

    #[test]
    fn a_byte_order_mark_is_not_a_header() {
        assert!(!first_record_is_header("\u{feff}1.5,2\n3,4\n"));
        assert!(first_record_is_header("\u{feff}x,y\n3,4\n"));
        let t = parse_table("\u{feff}1.5,2\n", false, "t").unwrap();
        assert_eq!(t.values, vec![1.5, 2.0]);
    }

    #[test]
    fn ragged_row_is_named() {
        let e = parse_table("a,b,c\n1,2,3\n4,5\n", true, "t.csv").unwrap_err();
        assert!(
            e.to_string().contains("line 3 has 2 columns, expected 3"),
            "{e}"
        );
    }

    #[test]
    fn non_numeric_cell_names_row_and_column() {
        let e = parse_table("a,b\n1,x\n", true, "t.csv").unwrap_err();
        assert!(e.to_string().contains("line 2, column 2 (`b`): `x`"), "{e}");
    }

    #[test]
    fn label_by_name() {
        let t = parse_table("y,a,b\n1,2,3\n0,5,6\n", true, "t").unwrap();
        let d = t
            .into_dataset(Some(&LabelColumn::Name("y".into())), Task::Classification)
            .unwrap();
        assert_eq!(d.features, vec![2.0, 3.0, 5.0, 6.0]);
        assert_eq!(d.targets, Targets::Classes(vec![1, 0]));
    }

    #[test]
    fn negative_label_is_out_of_range() {
        let t = parse_table("a,y\n1,-1\n2,1\n", true, "t").unwrap();
        let e = t.into_dataset(None, Task::Classification).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }
}
