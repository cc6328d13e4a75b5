//! The grade sheet as a terminal table.

use std::fmt::Write as _;

use super::escape::line;
use super::{format_points, result, stats};
use crate::sheet::{Outcome, Sheet};

/// The sheet as plain, aligned text for a terminal or a printout (no colours):
/// one row per student (student, host, VMID, points/max, errors, then one column per
/// check with its points, `E` for an error, `-` for skipped, `?` for no result), a legend,
/// the class statistics per check, and the warnings of [`stats`](super::stats()). Every
/// value is shown on one line, with control and bidirectional-text characters escaped.
pub fn table(sheet: &Sheet) -> String {
    let mut out = String::new();

    let mut header = vec!["STUDENT", "HOST", "VMID", "POINTS", "ERRORS"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    header.extend(sheet.checks.iter().map(|c| line(&c.id)));
    let mut right = vec![false, false, true, true, true];
    right.extend(sheet.checks.iter().map(|_| true));
    let mut rows = vec![header];
    for s in &sheet.students {
        let mut row = vec![
            line(&s.student),
            line(&s.hostname),
            s.vmid.to_string(),
            format!(
                "{}/{}",
                format_points(s.points),
                format_points(s.max_points)
            ),
            s.errors.to_string(),
        ];
        row.extend(sheet.checks.iter().map(|c| match result(s, &c.id) {
            Some(r) => match r.outcome {
                Outcome::Error => "E".to_owned(),
                Outcome::Skipped => "-".to_owned(),
                Outcome::Pass | Outcome::Fail => format_points(r.points),
            },
            None => "?".to_owned(),
        }));
        rows.push(row);
    }
    render(&mut out, &rows, &right);
    out.push_str("(points per check; E = error: the probe could not run; - = skipped)\n");

    let st = stats(sheet);
    if !st.checks.is_empty() {
        out.push('\n');
        let pct = |k: usize, share: f64| format!("{k} ({:.0}%)", share * 100.0);
        let mut rows = vec![["CHECK", "PASS", "FAIL", "ERROR", "SKIPPED", "TITLE"]
            .map(String::from)
            .to_vec()];
        for c in &st.checks {
            rows.push(vec![
                line(&c.id),
                pct(c.pass, c.pass_share),
                pct(c.fail, c.fail_share),
                pct(c.error, c.error_share),
                pct(c.skipped, c.skipped_share),
                line(&c.title),
            ]);
        }
        render(&mut out, &rows, &[false, true, true, true, true, false]);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{}: {} students, mean {} points",
        line(&sheet.lab),
        st.students,
        format_points(st.mean_points)
    );
    if sheet.spec_sha256 != sheet.evidence_spec_sha256 {
        let _ = writeln!(
            out,
            "note: graded with spec sha256 {}, evidence collected with spec sha256 {}",
            line(&sheet.spec_sha256),
            line(&sheet.evidence_spec_sha256)
        );
    }
    for w in &st.warnings {
        let _ = writeln!(out, "warning: {}", line(w));
    }
    out
}

/// Rows as columns two spaces apart, each column as wide as its widest cell (in
/// characters); `right[i]` aligns column `i` to the right. No trailing spaces.
fn render(out: &mut String, rows: &[Vec<String>], right: &[bool]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut l = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = width[i].saturating_sub(cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn table_shows_every_outcome_aligned_with_statistics_and_warnings() {
        let t = table(&fixture::class());
        let want = "\
STUDENT                    HOST  VMID    POINTS  ERRORS  addr   svc  web  dns
Ana Álvarez                pc01  5001   5.5/5.5       0     2     1  1.5    1
Bo Berg                    pc02  5002     0/5.5       1     0  -0.5    E    -
<script>alert(1)</script>  pc03  5003  1.67/5.5       0  0.67     1    0    -
(points per check; E = error: the probe could not run; - = skipped)

CHECK     PASS     FAIL    ERROR  SKIPPED  TITLE
addr   1 (33%)  2 (67%)   0 (0%)   0 (0%)  ens18 has 192.168.10.10/24
svc    2 (67%)  1 (33%)   0 (0%)   0 (0%)  nginx is active
web    1 (33%)  1 (33%)  1 (33%)   0 (0%)  the web server answers
dns    1 (33%)   0 (0%)   0 (0%)  2 (67%)  www resolves to the web server

exam1: 3 students, mean 2.39 points
warning: check web: error for 1 student (Bo Berg): their evidence could not be judged
";
        assert_eq!(t, want, "\n{t}");
    }

    #[test]
    fn table_values_stay_on_their_line() {
        let mut sheet = fixture::class();
        sheet.students[1].student = "Eve\n\u{1b}[2Jpc09  9999 5.5/5.5\u{202e}".into();
        sheet.evidence_spec_sha256 = "b".repeat(64);
        let t = table(&sheet);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{202e}'), "{t}");
        assert!(
            t.contains("Eve\\n\\u{1b}[2Jpc09  9999 5.5/5.5\\u{202e}  pc02"),
            "{t}"
        );
        let plain = table(&fixture::class());
        assert_eq!(
            t.lines().count(),
            plain.lines().count() + 1,
            "one more: the note\n{t}"
        );
        assert!(t.lines().nth(2).unwrap().starts_with("Eve\\n"), "{t}");
        assert!(t.contains(&format!(
            "note: graded with spec sha256 {}, evidence collected with spec sha256 {}",
            "a".repeat(64),
            "b".repeat(64)
        )));
    }

    #[test]
    fn an_empty_sheet_still_makes_a_table() {
        let mut sheet = fixture::class();
        sheet.students.clear();
        sheet.checks.clear();
        assert_eq!(
            table(&sheet),
            "STUDENT  HOST  VMID  POINTS  ERRORS\n\
             (points per check; E = error: the probe could not run; - = skipped)\n\n\
             exam1: 0 students, mean 0 points\n"
        );
    }
}
