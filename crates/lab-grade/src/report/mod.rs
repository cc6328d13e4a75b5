//! Grade sheets in every format: a terminal [`table`], [`json`], [`csv`](fn@csv), [`junit`] XML and
//! a static [`html`] report, plus the class statistics ([`stats`]) they show.
//!
//! Every function here is pure and deterministic: the same [`Sheet`] gives the same bytes
//! (no timestamps, no hash-map order). Text from a sheet is data, never markup or a
//! formula: student names are arbitrary Unicode and messages come from student machines,
//! so each format escapes for its own reader (control and bidirectional-text characters
//! for terminals, formula guards for spreadsheets, entities for XML and HTML).
//!
//! Points are printed by one function, [`format_points`]: at most two decimals, trailing
//! zeros trimmed (`2`, `1.5`, `0.33`).
//!
//! ```no_run
//! use lab_grade::{report, Sheet};
//! // In labctl the sheet comes from `lab_grade::grade`.
//! let sheet = Sheet {
//!     lab: "exam1".into(),
//!     spec_sha256: String::new(),
//!     evidence_spec_sha256: String::new(),
//!     checks: Vec::new(),
//!     students: Vec::new(),
//! };
//! print!("{}", report::table(&sheet));
//! std::fs::write("grades.csv", report::csv(&sheet))?;
//! report::html(&sheet, std::path::Path::new("report"))?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod escape;
mod html;
mod json;
mod junit;
mod spreadsheet;
mod stats;
mod table;

pub use html::html;
pub use json::json;
pub use junit::junit;
pub use spreadsheet::csv;
pub use stats::{stats, CheckStats, ClassStats};
pub use table::table;

use crate::sheet::{CheckResult, Sheet, StudentGrade};

/// Points as every report prints them: rounded to at most two decimals, trailing zeros
/// (and a trailing `.`) trimmed, never `-0`: `2`, `1.5`, `0.33`, `-1`. A value that is not
/// finite (a broken sheet) is printed as Rust prints it (`NaN`, `inf`).
pub fn format_points(points: f64) -> String {
    if !points.is_finite() {
        return points.to_string();
    }
    let mut s = format!("{points:.2}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" {
        s.remove(0);
    }
    s
}

/// The points as the reports print them, as a number again (for JSON), so every format
/// shows the same value.
fn rounded_points(points: f64) -> f64 {
    format_points(points).parse().unwrap_or(points)
}

/// A student's result for the check `id` (the first, if a broken sheet has several).
fn result<'a>(student: &'a StudentGrade, id: &str) -> Option<&'a CheckResult> {
    student.checks.iter().find(|c| c.id == id)
}

/// The title of the check `id`, else the id.
fn title<'a>(sheet: &'a Sheet, id: &'a str) -> &'a str {
    sheet
        .checks
        .iter()
        .find(|c| c.id == id)
        .map_or(id, |c| c.title.as_str())
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_have_at_most_two_decimals_and_no_trailing_zeros() {
        for (v, want) in [
            (2.0, "2"),
            (1.5, "1.5"),
            (1.0 / 3.0, "0.33"),
            (2.0 / 3.0, "0.67"),
            (0.0, "0"),
            (-0.0, "0"),
            (-0.001, "0"),
            (-1.0, "-1"),
            (-0.25, "-0.25"),
            (10.0, "10"),
            (100.10, "100.1"),
            (0.999, "1"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_points(v), want, "{v}");
        }
    }

    #[test]
    fn the_same_sheet_gives_the_same_bytes_in_every_format() {
        let a = fixture::class();
        let b = a.clone();
        assert_eq!(table(&a), table(&b));
        assert_eq!(json(&a), json(&b));
        assert_eq!(csv(&a), csv(&b));
        assert_eq!(junit(&a), junit(&b));
        assert_eq!(stats(&a), stats(&b));
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fa = html(&a, da.path()).unwrap();
        let fb = html(&b, db.path()).unwrap();
        assert_eq!(fa.len(), 7);
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(
                x.strip_prefix(da.path()).unwrap(),
                y.strip_prefix(db.path()).unwrap()
            );
            assert_eq!(
                std::fs::read(x).unwrap(),
                std::fs::read(y).unwrap(),
                "{}",
                x.display()
            );
        }
        // Rendering again into the same directory changes no byte either.
        let again = html(&a, da.path()).unwrap();
        for (x, y) in again.iter().zip(&fb) {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
    }

    #[test]
    fn a_changed_check_changes_its_column_only() {
        let a = fixture::class();
        let mut b = a.clone();
        b.students[1].checks[1].points = -1.0;
        let (ca, cb) = (csv(&a), csv(&b));
        let diff: Vec<_> = ca.lines().zip(cb.lines()).filter(|(x, y)| x != y).collect();
        assert_eq!(
            diff,
            [(
                "Bo Berg,pc02,5002,0,5.5,1,0,-0.5,error,skipped",
                "Bo Berg,pc02,5002,0,5.5,1,0,-1,error,skipped"
            )]
        );
    }

    #[test]
    fn json_numbers_are_the_printed_points() {
        assert_eq!(rounded_points(1.0 / 3.0), 0.33);
        assert_eq!(rounded_points(-0.001), 0.0);
        assert_eq!(rounded_points(7.0), 7.0);
    }
}
