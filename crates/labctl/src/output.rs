//! Output formats: aligned tables for people, JSON and CSV for scripts.
//!
//! Everything a command prints as data goes through [`Sheet`] (lists) or [`print_json`]
//! (objects), so `-o json|csv` behaves the same everywhere. Messages about what happened
//! go to stderr or, in table mode, under the table.
//!
//! Outputs are data: table cells and other line-based output show control characters
//! escaped ([`line_safe`]), and CSV cells that a spreadsheet would evaluate as a formula
//! get a leading `'` ([`csv_safe`]). JSON escapes by itself.

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;

/// `-o, --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Aligned columns (stable headers, so `awk` works too).
    #[default]
    Table,
    /// JSON: one object, or one array for lists.
    Json,
    /// CSV with a header line (lists only).
    Csv,
}

impl Format {
    /// `true` for the human format.
    pub fn is_table(self) -> bool {
        self == Format::Table
    }

    /// Refuses CSV for a command whose output is not a list.
    pub fn not_csv(self, command: &str) -> anyhow::Result<Self> {
        if self == Format::Csv {
            return Err(crate::fail::usage(format!(
                "-o csv is for lists; `{command}` prints one object: use -o table or -o json"
            )));
        }
        Ok(self)
    }
}

/// Pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encoding the output as JSON")?;
    text.push('\n');
    write_stdout(&text)
}

/// Writes to stdout and flushes, returning the failure (a closed pipe, a full disk) as the
/// error `main` reports instead of the panic `print!` would raise.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(crate::fail::stdout)
}

/// A list: headers and rows of cells, rendered as a table or CSV; JSON comes from the
/// caller's typed rows (so field types stay numbers and booleans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Sheet {
    /// An empty sheet with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per header).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// Aligned columns, two spaces apart; the last column is not padded. Widths are
    /// terminal columns (`李` takes two), so names in any script stay aligned.
    pub fn to_table(&self) -> String {
        use unicode_width::UnicodeWidthStr;
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| line_safe(c)).collect())
            .collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.width()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.width());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            let cells: Vec<&str> = cells.collect();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(c);
                } else {
                    let pad = widths[i] - c.width();
                    out.push_str(c);
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(&mut self.headers.iter().copied());
        for r in &rows {
            out.push_str(&line(&mut r.iter().map(String::as_str)));
        }
        out
    }

    /// CSV with a header line (quoted where needed, by the `csv` crate).
    pub fn to_csv(&self) -> anyhow::Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.headers)?;
        for r in &self.rows {
            // `-` is the table's placeholder for "no value": an empty cell in CSV.
            w.write_record(
                r.iter()
                    .map(|c| if c == "-" { String::new() } else { csv_safe(c) }),
            )?;
        }
        let bytes = w.into_inner().context("writing CSV")?;
        String::from_utf8(bytes).context("CSV output is not UTF-8")
    }

    /// Prints the sheet as `format` says; `json` is what `-o json` prints.
    pub fn print(&self, format: Format, json: &impl Serialize) -> anyhow::Result<()> {
        match format {
            Format::Table => write_stdout(&self.to_table())?,
            Format::Csv => write_stdout(&self.to_csv()?)?,
            Format::Json => print_json(json)?,
        }
        Ok(())
    }
}

/// Text for line-based output (tables, `/etc/hosts` lines, messages): control characters
/// (newline, tab, ESC, DEL, C1) escaped as `\n`, `\t`, `\u{1b}`, so a value can neither
/// start a new line nor send terminal codes.
pub fn line_safe(s: &str) -> String {
    pve_access::sheet::line_cell(s)
}

/// A CSV cell a spreadsheet will show as text: a leading `=`, `+`, `-`, `@`, tab or
/// carriage return (a formula to a spreadsheet) gets a leading `'`.
pub fn csv_safe(s: &str) -> String {
    pve_access::sheet::csv_cell(s)
}

/// `-` for an absent value in tables.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_csv_quotes() {
        let mut s = Sheet::new(&["STUDENT", "VMID"]);
        s.row(vec!["Zoë Müller, jr.".into(), "5000".into()]);
        s.row(vec!["Al".into(), "5001".into()]);
        assert_eq!(
            s.to_table(),
            "STUDENT          VMID\nZoë Müller, jr.  5000\nAl               5001\n"
        );
        assert_eq!(
            s.to_csv().unwrap(),
            "STUDENT,VMID\n\"Zoë Müller, jr.\",5000\nAl,5001\n"
        );
    }

    #[test]
    fn wide_characters_count_as_two_columns() {
        let mut s = Sheet::new(&["STUDENT", "VMID"]);
        s.row(vec!["李 小龍".into(), "5000".into()]);
        s.row(vec!["Al".into(), "5001".into()]);
        assert_eq!(
            s.to_table(),
            "STUDENT  VMID\n李 小龍  5000\nAl       5001\n"
        );
    }

    #[test]
    fn formulas_and_control_characters_do_not_reach_spreadsheets_or_lines() {
        let mut s = Sheet::new(&["STUDENT", "VMID"]);
        s.row(vec!["=HYPERLINK(\"x\")".into(), "5000".into()]);
        s.row(vec!["a\nb\t\u{1b}[31m".into(), "5001".into()]);
        s.row(vec!["-2+3".into(), "@SUM(A1)".into()]);
        let csv = s.to_csv().unwrap();
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
        assert!(csv.contains("'-2+3,'@SUM(A1)"), "{csv}");
        let table = s.to_table();
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(table.contains("a\\nb\\t\\u{1b}[31m"), "{table}");
        assert!(!table.contains('\u{1b}'));
    }
}
