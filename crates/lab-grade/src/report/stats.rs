//! Class statistics: per check, how many students passed, failed, errored, were skipped;
//! and warnings about checks to look at before publishing the grades.

use serde::{Deserialize, Serialize};

use crate::sheet::{Outcome, Sheet};

/// At most this many students are named in one warning; the rest are counted.
const NAMED: usize = 10;

/// The statistics of one check over the class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStats {
    /// The check's id.
    pub id: String,
    /// The check's title.
    pub title: String,
    /// Students with the outcome `pass`.
    pub pass: usize,
    /// Students with the outcome `fail`.
    pub fail: usize,
    /// Students with the outcome `error`.
    pub error: usize,
    /// Students with the outcome `skipped`.
    pub skipped: usize,
    /// Students the sheet has no result of this check for (0 for a sheet from `grade`).
    pub missing: usize,
    /// `pass` / students (0 for an empty class).
    pub pass_share: f64,
    /// `fail` / students.
    pub fail_share: f64,
    /// `error` / students.
    pub error_share: f64,
    /// `skipped` / students.
    pub skipped_share: f64,
}

/// The statistics of a class: what [`stats`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Students on the sheet.
    pub students: usize,
    /// Their mean points (0 for an empty class).
    pub mean_points: f64,
    /// One entry per check, in the sheet's order.
    pub checks: Vec<CheckStats>,
    /// What to look at before publishing, one line each, in the sheet's order of checks
    /// (then of students): a check that errors for anyone (their evidence could not be
    /// judged), a check that passes for every student or fails for every student (with
    /// at least 2 students: it may test nothing or be wrong), a check without results for
    /// some students, and students whose evidence has problems.
    pub warnings: Vec<String>,
}

/// The class statistics of `sheet`.
pub fn stats(sheet: &Sheet) -> ClassStats {
    let n = sheet.students.len();
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let mut checks = Vec::with_capacity(sheet.checks.len());
    let mut warnings = Vec::new();
    for info in &sheet.checks {
        let mut by: [Vec<&str>; 5] = Default::default();
        for s in &sheet.students {
            let slot = match super::result(s, &info.id).map(|r| r.outcome) {
                Some(Outcome::Pass) => 0,
                Some(Outcome::Fail) => 1,
                Some(Outcome::Error) => 2,
                Some(Outcome::Skipped) => 3,
                None => 4,
            };
            by[slot].push(&s.student);
        }
        let [pass, fail, error, skipped, missing] = by.each_ref().map(Vec::len);
        let id = &info.id;
        if error > 0 {
            warnings.push(format!(
                "check {id}: error for {} ({}): their evidence could not be judged",
                students(error),
                names(&by[2])
            ));
        }
        if n >= 2 && pass == n {
            warnings.push(format!(
                "check {id}: passes for every student ({n}): does it test anything?"
            ));
        }
        if n >= 2 && fail == n {
            warnings.push(format!(
                "check {id}: fails for every student ({n}): is the check or the task wrong?"
            ));
        }
        if missing > 0 {
            warnings.push(format!(
                "check {id}: no result for {} ({})",
                students(missing),
                names(&by[4])
            ));
        }
        checks.push(CheckStats {
            id: id.clone(),
            title: info.title.clone(),
            pass,
            fail,
            error,
            skipped,
            missing,
            pass_share: share(pass),
            fail_share: share(fail),
            error_share: share(error),
            skipped_share: share(skipped),
        });
    }
    for s in &sheet.students {
        if let Some(first) = s.problems.first() {
            let more = match s.problems.len() {
                1 => String::new(),
                k => format!(" (and {} more)", k - 1),
            };
            warnings.push(format!(
                "student {} ({}): evidence problem: {first}{more}",
                s.student, s.hostname
            ));
        }
    }
    let mean_points = if n == 0 {
        0.0
    } else {
        sheet.students.iter().map(|s| s.points).sum::<f64>() / n as f64
    };
    ClassStats {
        students: n,
        mean_points,
        checks,
        warnings,
    }
}

fn students(k: usize) -> String {
    if k == 1 {
        "1 student".into()
    } else {
        format!("{k} students")
    }
}

/// The first [`NAMED`] names, then how many more.
fn names(names: &[&str]) -> String {
    let mut s = names[..names.len().min(NAMED)].join(", ");
    if names.len() > NAMED {
        s.push_str(&format!(" and {} more", names.len() - NAMED));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, check, result, student};
    use crate::sheet::Outcome::{Error, Fail, Pass, Skipped};

    fn one_check(outcomes: &[Outcome]) -> Sheet {
        Sheet {
            lab: "l".into(),
            spec_sha256: String::new(),
            evidence_spec_sha256: String::new(),
            checks: vec![check("c", "C", 1.0, 0.0)],
            students: outcomes
                .iter()
                .enumerate()
                .map(|(i, &o)| {
                    let p = if o == Pass { 1.0 } else { 0.0 };
                    student(
                        &format!("s{}", i + 1),
                        &format!("pc{i:02}"),
                        5000 + i as u32,
                        vec![result("c", o, p, 1.0, "m", "", None)],
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn counts_and_shares_per_check() {
        let st = stats(&fixture::class());
        assert_eq!(st.students, 3);
        assert!((st.mean_points - (5.5 + 0.0 + 1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-9);
        let ids: Vec<_> = st.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["addr", "svc", "web", "dns"]);
        let web = &st.checks[2];
        assert_eq!((web.pass, web.fail, web.error, web.skipped), (1, 1, 1, 0));
        assert_eq!(web.title, "the web server answers");
        let dns = &st.checks[3];
        assert_eq!((dns.pass, dns.fail, dns.error, dns.skipped), (1, 0, 0, 2));
        assert!((dns.skipped_share - 2.0 / 3.0).abs() < 1e-9);
        assert!((dns.pass_share - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(dns.fail_share, 0.0);
        assert_eq!(st.checks[1].fail_share, 1.0 / 3.0);
        assert_eq!(web.error_share, 1.0 / 3.0);
        assert_eq!(
            st.warnings,
            ["check web: error for 1 student (Bo Berg): their evidence could not be judged"]
        );
    }

    #[test]
    fn a_check_erroring_for_anyone_is_named_with_its_students() {
        let st = stats(&one_check(&[Error, Pass, Error, Fail, Error]));
        assert_eq!(
            st.warnings,
            ["check c: error for 3 students (s1, s3, s5): their evidence could not be judged"]
        );
    }

    #[test]
    fn a_long_list_of_students_is_cut_after_ten() {
        let st = stats(&one_check(&[Error; 12]));
        assert_eq!(
            st.warnings,
            ["check c: error for 12 students (s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 and 2 more): their evidence could not be judged"]
        );
    }

    #[test]
    fn ten_students_are_all_named() {
        let st = stats(&one_check(&[Error; 10]));
        assert_eq!(
            st.warnings,
            ["check c: error for 10 students (s1, s2, s3, s4, s5, s6, s7, s8, s9, s10): their evidence could not be judged"]
        );
    }

    #[test]
    fn a_check_passing_for_everyone_is_flagged() {
        let st = stats(&one_check(&[Pass, Pass, Pass]));
        assert_eq!(
            st.warnings,
            ["check c: passes for every student (3): does it test anything?"]
        );
        assert_eq!(st.checks[0].pass_share, 1.0);
    }

    #[test]
    fn a_check_failing_for_everyone_is_flagged() {
        let st = stats(&one_check(&[Fail, Fail]));
        assert_eq!(
            st.warnings,
            ["check c: fails for every student (2): is the check or the task wrong?"]
        );
    }

    #[test]
    fn one_student_or_a_mixed_class_gives_no_unanimity_warning() {
        assert!(stats(&one_check(&[Pass])).warnings.is_empty());
        assert!(stats(&one_check(&[Fail])).warnings.is_empty());
        assert!(stats(&one_check(&[Pass, Fail])).warnings.is_empty());
        assert!(stats(&one_check(&[Fail, Fail, Skipped]))
            .warnings
            .is_empty());
        let empty = stats(&one_check(&[]));
        assert!(empty.warnings.is_empty());
        assert_eq!((empty.students, empty.mean_points), (0, 0.0));
        assert_eq!(empty.checks[0].pass_share, 0.0);
    }

    #[test]
    fn missing_results_and_evidence_problems_are_warned_in_order() {
        let mut sheet = one_check(&[Pass, Error, Fail]);
        sheet.students[2].checks.clear();
        sheet.students[0].problems = vec!["c.json changed since collected".into()];
        sheet.students[1].problems = vec!["MANIFEST.sha256 missing".into(), "x".into()];
        let st = stats(&sheet);
        assert_eq!(st.checks[0].missing, 1);
        assert_eq!(
            st.warnings,
            [
                "check c: error for 1 student (s2): their evidence could not be judged",
                "check c: no result for 1 student (s3)",
                "student s1 (pc00): evidence problem: c.json changed since collected",
                "student s2 (pc01): evidence problem: MANIFEST.sha256 missing (and 1 more)",
            ]
        );
    }

    #[test]
    fn stats_serialise_with_their_field_names() {
        let v = serde_json::to_value(stats(&fixture::class())).unwrap();
        assert_eq!(v["students"], 3);
        assert_eq!(v["checks"][2]["id"], "web");
        assert_eq!(v["checks"][2]["error"], 1);
        assert!(v["checks"][0]["pass_share"].is_f64());
        assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    }
}
