//! Numeric CSV: one sample per row, one label column, every other column a feature.

use super::dataset::{Dataset, dataset_from_labels};
use crate::config::{LabelColumn, Task};
use crate::error::{KilnError, Result, cut_short};

/// A parsed numeric CSV table.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    /// Column names, when the file has a header row.
    pub header: Option<Vec<String>>,
    /// The numeric rows, all of the same width.
    pub rows: Vec<Vec<f64>>,
    /// The 1-based line of the file each row came from.
    pub lines: Vec<usize>,
    /// What the table was read from (a file name), for messages.
    pub source: String,
}

fn split_line(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|cell| cell.trim().trim_matches('"').trim())
        .collect()
}

/// Parses CSV text whose cells are all numbers. Errors name the line and the column.
pub fn parse_table(text: &str, header: bool, what: &str) -> Result<CsvTable> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let names = if header {
        let (_, first) = lines
            .next()
            .ok_or_else(|| KilnError::Data(format!("{what}: the CSV is empty")))?;
        Some(
            split_line(first)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let mut width = names.as_ref().map(Vec::len);
    let mut rows = Vec::new();
    let mut row_lines = Vec::new();
    for (index, line) in lines {
        let line_no = index + 1;
        row_lines.push(line_no);
        let cells = split_line(line);
        let expected = *width.get_or_insert(cells.len());
        if cells.len() != expected {
            return Err(KilnError::Data(format!(
                "{what}: line {line_no} has {} columns, expected {expected} (ragged rows are not \
                 allowed)",
                cells.len()
            )));
        }
        let mut row = Vec::with_capacity(cells.len());
        for (col, cell) in cells.iter().enumerate() {
            let value: f64 = cell.parse().map_err(|_| {
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
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(KilnError::Data(format!("{what}: the CSV has no data rows")));
    }
    Ok(CsvTable {
        header: names,
        rows,
        lines: row_lines,
        source: what.to_string(),
    })
}

/// Parses CSV text with no header into numeric rows.
pub fn parse_numeric_rows(text: &str, header: bool, what: &str) -> Result<Vec<Vec<f64>>> {
    Ok(parse_table(text, header, what)?.rows)
}

impl CsvTable {
    /// The 0-based index of the label column (default: the last column).
    pub fn label_index(&self, column: Option<&LabelColumn>) -> Result<usize> {
        let width = self.rows[0].len();
        match column {
            None => Ok(width - 1),
            Some(LabelColumn::Index(i)) if *i < width => Ok(*i),
            Some(LabelColumn::Index(i)) => Err(KilnError::Config(format!(
                "data.label_column: must be a 0-based column index in 0..{width} ({} has {width} \
                 columns), got {i}",
                self.source
            ))),
            Some(LabelColumn::Name(name)) => {
                let header = self.header.as_ref().ok_or_else(|| {
                    KilnError::Config(format!(
                        "data.label_column: `{}` is a name, but data.header is false; give a \
                         0-based index instead",
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

    /// Splits the table into features and targets for the task.
    pub fn into_dataset(self, column: Option<&LabelColumn>, task: Task) -> Result<Dataset> {
        let label_at = self.label_index(column)?;
        let width = self.rows[0].len();
        if width < 2 {
            return Err(KilnError::Data(format!(
                "{}: the CSV needs at least one feature column besides the label",
                self.source
            )));
        }
        let mut features = Vec::with_capacity(self.rows.len() * (width - 1));
        let mut labels = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
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
