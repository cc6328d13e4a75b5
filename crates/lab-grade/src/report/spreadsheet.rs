//! The grade sheet as CSV.

use super::escape::csv_cell;
use super::{format_points, result};
use crate::sheet::{Outcome, Sheet};

/// The sheet as CSV (RFC 4180 quoting, `\n` line ends): the header
/// `student,hostname,vmid,points,max_points,errors,<check id>…`, then one row per
/// student with the points of each check, `error` or `skipped` for those outcomes, and
/// an empty cell when the sheet has no result. Points are printed by
/// [`format_points`](super::format_points). A cell a spreadsheet would run as a formula
/// (starting with `=`, `+`, `@`, tab, carriage return, or `-` when not a number) gets a
/// leading `'`; a penalty's `-0.5` stays a number.
pub fn csv(sheet: &Sheet) -> String {
    let mut header: Vec<String> = [
        "student",
        "hostname",
        "vmid",
        "points",
        "max_points",
        "errors",
    ]
    .map(String::from)
    .to_vec();
    header.extend(sheet.checks.iter().map(|c| c.id.clone()));
    let mut rows = vec![header];
    for s in &sheet.students {
        let mut row = vec![
            s.student.clone(),
            s.hostname.clone(),
            s.vmid.to_string(),
            format_points(s.points),
            format_points(s.max_points),
            s.errors.to_string(),
        ];
        row.extend(sheet.checks.iter().map(|c| match result(s, &c.id) {
            Some(r) => match r.outcome {
                Outcome::Error => "error".to_owned(),
                Outcome::Skipped => "skipped".to_owned(),
                Outcome::Pass | Outcome::Fail => format_points(r.points),
            },
            None => String::new(),
        }));
        rows.push(row);
    }
    let mut w = ::csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Records of strings into memory: the writer cannot fail.
        w.write_record(row.iter().map(|c| csv_cell(c)))
            .expect("writing CSV into memory");
    }
    let bytes = w.into_inner().expect("flushing CSV into memory");
    // The records were UTF-8 strings, so the bytes are.
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn csv_has_the_header_and_one_row_per_student() {
        assert_eq!(
            csv(&fixture::class()),
            "student,hostname,vmid,points,max_points,errors,addr,svc,web,dns\n\
             Ana Álvarez,pc01,5001,5.5,5.5,0,2,1,1.5,1\n\
             Bo Berg,pc02,5002,0,5.5,1,0,-0.5,error,skipped\n\
             <script>alert(1)</script>,pc03,5003,1.67,5.5,0,0.67,1,0,skipped\n"
        );
    }

    #[test]
    fn csv_cells_that_look_like_formulas_get_a_quote() {
        let mut sheet = fixture::class();
        sheet.students[0].student = "=HYPERLINK(\"http://x\",\"y\")".into();
        sheet.students[1].student = "-2+3".into();
        sheet.students[2].student = "@SUM(A1:A9)".into();
        sheet.students[2].hostname = "+pc03".into();
        sheet.checks[0].id = "=cmd".into();
        let text = csv(&sheet);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0],
            "student,hostname,vmid,points,max_points,errors,'=cmd,svc,web,dns"
        );
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",pc01,5001,5.5,5.5,0,,1,1.5,1"
        );
        assert!(lines[2].starts_with("'-2+3,pc02,"), "{text}");
        assert!(
            lines[2].contains(",-0.5,"),
            "a penalty stays a number: {text}"
        );
        assert!(lines[3].starts_with("'@SUM(A1:A9),'+pc03,"), "{text}");
    }

    #[test]
    fn csv_quotes_separators_and_newlines() {
        let mut sheet = fixture::class();
        sheet.students[0].student = "Berg, Bo \"the\nsecond\"".into();
        sheet.students[1].student = "\tTab".into();
        let text = csv(&sheet);
        assert!(
            text.contains("\n\"Berg, Bo \"\"the\nsecond\"\"\",pc01,"),
            "{text}"
        );
        assert!(text.contains("\n'\tTab,pc02,"), "{text}");
        let mut r = ::csv::Reader::from_reader(text.as_bytes());
        let names: Vec<String> = r.records().map(|rec| rec.unwrap()[0].to_owned()).collect();
        assert_eq!(names[0], "Berg, Bo \"the\nsecond\"");
        assert_eq!(names[1], "'\tTab");
    }
}
