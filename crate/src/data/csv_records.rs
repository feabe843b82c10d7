//! CSV records as RFC 4180 reads them: a quoted field may hold commas, line breaks and `""` (a
//! quote); a quote that is never closed is an error naming the line where it opened. Lines that
//! are blank outside quotes are skipped, a leading byte-order mark is ignored, and unquoted
//! cells are trimmed of surrounding spaces.

use crate::error::{KilnError, Result};
use std::borrow::Cow;

/// One record: its cells and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    /// The 1-based line of the file where the record starts.
    pub line: usize,
    /// The cells, borrowed from the text unless a `""` had to be unescaped.
    pub cells: Vec<Cow<'a, str>>,
}

/// The records of CSV `text`, in order; `what` names the text in errors.
pub fn records<'a>(text: &'a str, what: &'a str) -> Records<'a> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Records {
        text,
        at: 0,
        line: 1,
        what,
    }
}

/// The iterator [`records`] returns.
#[derive(Debug)]
pub struct Records<'a> {
    text: &'a str,
    at: usize,
    line: usize,
    what: &'a str,
}

impl<'a> Records<'a> {
    /// Skips blank lines; true when a record starts at `self.at`.
    fn skip_blank_lines(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        loop {
            let rest = &bytes[self.at..];
            let end = rest.iter().position(|&b| b == b'\n');
            let line = &rest[..end.unwrap_or(rest.len())];
            if !line.iter().all(|b| b.is_ascii_whitespace()) {
                return true;
            }
            match end {
                Some(end) => {
                    self.at += end + 1;
                    self.line += 1;
                }
                None => {
                    self.at = bytes.len();
                    return false;
                }
            }
        }
    }

    /// Reads one field starting at `self.at`; returns it and the byte that ended it (`,`,
    /// `\n`, or `None` at the end of the text).
    fn field(&mut self, record_line: usize) -> Result<(Cow<'a, str>, Option<u8>)> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut i = start;
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'"' {
            return self.quoted_field(i + 1, record_line);
        }
        while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'\n' {
            i += 1;
        }
        let cell = self.text[start..i].trim();
        let end = bytes.get(i).copied();
        self.at = i + 1;
        if end == Some(b'\n') {
            self.line += 1;
        }
        Ok((Cow::Borrowed(cell), end))
    }

    /// A quoted field whose content starts at byte `content`.
    fn quoted_field(
        &mut self,
        content: usize,
        record_line: usize,
    ) -> Result<(Cow<'a, str>, Option<u8>)> {
        let bytes = self.text.as_bytes();
        let opened_on = self.line;
        let mut i = content;
        let mut owned: Option<String> = None;
        let mut piece = content;
        loop {
            match bytes.get(i) {
                None => {
                    return Err(KilnError::Data(format!(
                        "{}: line {opened_on}: a quoted cell opened here is never closed (a \
                         quote inside a quoted cell is written \"\")",
                        self.what
                    )));
                }
                Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(&self.text[piece..=i]);
                    i += 2;
                    piece = i;
                }
                Some(b'"') => break,
                Some(b'\n') => {
                    self.line += 1;
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
        let cell = match owned {
            Some(mut text) => {
                text.push_str(&self.text[piece..i]);
                Cow::Owned(text)
            }
            None => Cow::Borrowed(&self.text[content..i]),
        };
        i += 1; // the closing quote
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t' || bytes[i] == b'\r') {
            i += 1;
        }
        let end = bytes.get(i).copied();
        match end {
            None | Some(b',') | Some(b'\n') => {}
            Some(_) => {
                return Err(KilnError::Data(format!(
                    "{}: line {}: text after a closing quote (a record from line {record_line}); \
                     a quote inside a quoted cell is written \"\"",
                    self.what, self.line
                )));
            }
        }
        self.at = i + usize::from(end.is_some());
        if end == Some(b'\n') {
            self.line += 1;
        }
        Ok((cell, end))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.text.len() || !self.skip_blank_lines() {
            return None;
        }
        let line = self.line;
        let mut cells = Vec::new();
        loop {
            match self.field(line) {
                Ok((cell, Some(b','))) => cells.push(cell),
                Ok((cell, _)) => {
                    cells.push(cell);
                    return Some(Ok(Record { line, cells }));
                }
                Err(e) => {
                    self.at = self.text.len();
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<(usize, Vec<String>)>> {
        records(text, "t.csv")
            .map(|r| r.map(|r| (r.line, r.cells.iter().map(|c| c.to_string()).collect())))
            .collect()
    }

    #[test]
    fn quoted_cells_hold_commas_line_breaks_and_doubled_quotes() {
        let rows = read("a,b\r\n\"1,5\",\"x\ny\"\n\"say \"\"hi\"\"\", 2 \n\n3,4").unwrap();
        assert_eq!(
            rows,
            vec![
                (1, vec!["a".into(), "b".into()]),
                (2, vec!["1,5".into(), "x\ny".into()]),
                (4, vec!["say \"hi\"".into(), "2".into()]),
                (6, vec!["3".into(), "4".into()]),
            ]
        );
    }

    #[test]
    fn an_unterminated_quote_names_the_line_it_opened_on() {
        let e = read("a,b,label\n1,2,0\n\"3,4,1\n5,6,1\n7,8,0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.csv: line 3: a quoted cell opened here is never closed"),
            "{e}"
        );
        let e = read("a\n\"x3\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error() {
        let e = read("\"a\"b,1\n").unwrap_err().to_string();
        assert!(e.contains("text after a closing quote"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_and_empty_cells_and_trailing_commas() {
        assert_eq!(
            read("\u{feff}1,,\n").unwrap(),
            vec![(1, vec!["1".into(), "".into(), "".into()])]
        );
        assert_eq!(read("").unwrap(), vec![]);
        assert_eq!(read("\n \n").unwrap(), vec![]);
    }
}
