//! The grade sheet as JSON.

use serde::Serialize;

use super::{rounded_points, title};
use crate::sheet::{Outcome, Sheet};

/// One student, as [`json`] writes it (fields in this order).
#[derive(Serialize)]
struct Student<'a> {
    student: &'a str,
    hostname: &'a str,
    vmid: u32,
    points: f64,
    max_points: f64,
    errors: usize,
    lab: &'a str,
    spec_sha256: &'a str,
    evidence_spec_sha256: &'a str,
    problems: &'a [String],
    checks: Vec<Check<'a>>,
}

/// One check of one student.
#[derive(Serialize)]
struct Check<'a> {
    id: &'a str,
    title: &'a str,
    outcome: Outcome,
    points: f64,
    max_points: f64,
    message: &'a str,
    detail: &'a str,
    probe: Option<&'a str>,
    request: Option<&'a str>,
}

/// The sheet as a pretty-printed JSON list (with a trailing newline) of one object per
/// student, in the sheet's order:
///
/// ```json
/// [{"student": "Ana", "hostname": "pc01", "vmid": 5001, "points": 5.5, "max_points": 6,
///   "errors": 0, "lab": "exam1", "spec_sha256": "…", "evidence_spec_sha256": "…",
///   "problems": [],
///   "checks": [{"id": "addr", "title": "…", "outcome": "pass", "points": 2, "max_points": 2,
///               "message": "ok", "detail": "", "probe": "addr", "request": "ip -j addr"}]}]
/// ```
///
/// `outcome` is `pass`, `fail`, `error` or `skipped`; every key is always present
/// (`probe` and `request` may be `null`, `detail` empty); points are rounded as
/// [`format_points`](super::format_points) prints them. This is the teacher's view:
/// it holds the checks' requests and details.
pub fn json(sheet: &Sheet) -> String {
    let list: Vec<Student<'_>> = sheet
        .students
        .iter()
        .map(|s| Student {
            student: &s.student,
            hostname: &s.hostname,
            vmid: s.vmid,
            points: rounded_points(s.points),
            max_points: rounded_points(s.max_points),
            errors: s.errors,
            lab: &sheet.lab,
            spec_sha256: &sheet.spec_sha256,
            evidence_spec_sha256: &sheet.evidence_spec_sha256,
            problems: &s.problems,
            checks: s
                .checks
                .iter()
                .map(|c| Check {
                    id: &c.id,
                    title: title(sheet, &c.id),
                    outcome: c.outcome,
                    points: rounded_points(c.points),
                    max_points: rounded_points(c.max_points),
                    message: &c.message,
                    detail: &c.detail,
                    probe: c.probe.as_deref(),
                    request: c.request.as_deref(),
                })
                .collect(),
        })
        .collect();
    // Serialising these plain structs cannot fail (string keys, no maps); non-finite
    // points become `null`.
    let mut out = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;
    use serde_json::Value;

    #[test]
    fn json_is_a_list_of_students_with_every_check() {
        let text = json(&fixture::class());
        assert!(
            text.ends_with("]\n") && text.starts_with("[\n  {\n"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 3);
        let bo = &list[1];
        assert_eq!(bo["student"], "Bo Berg");
        assert_eq!(bo["hostname"], "pc02");
        assert_eq!(bo["vmid"], 5002);
        assert_eq!(bo["points"], 0.0);
        assert_eq!(bo["max_points"], 5.5);
        assert_eq!(bo["errors"], 1);
        assert_eq!(bo["lab"], "exam1");
        assert_eq!(bo["spec_sha256"], "a".repeat(64));
        let outcomes: Vec<_> = bo["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["fail", "fail", "error", "skipped"]);
        let svc = &bo["checks"][1];
        assert_eq!(svc["id"], "svc");
        assert_eq!(svc["title"], "nginx is active");
        assert_eq!(svc["points"], -0.5);
        assert_eq!(svc["max_points"], 1.0);
        assert_eq!(svc["message"], "nginx is not running");
        assert_eq!(svc["detail"], fixture::DETAILS[1]);
        assert_eq!(svc["probe"], "svc");
        assert_eq!(svc["request"], fixture::REQUESTS[1]);
        let dns = &bo["checks"][3];
        assert_eq!(
            (&dns["probe"], &dns["detail"]),
            (&Value::Null, &Value::from(""))
        );
        // Partial credit is rounded as the other formats print it.
        assert_eq!(list[2]["checks"][0]["points"], 0.67);
        assert_eq!(list[2]["points"], 1.67);
        assert_eq!(
            list[2]["checks"][2]["message"],
            "the page says \"Bad & 'worse'\"\nsecond line"
        );
        assert_eq!(list[2]["student"], "<script>alert(1)</script>");
        // JSON escapes for JSON: quotes and the newline, and nothing else.
        assert!(
            text.contains(r#""message": "the page says \"Bad & 'worse'\"\nsecond line","#),
            "{text}"
        );
        let mut sheet = fixture::class();
        sheet.students[0].student = "a\u{1b}[2J\u{0}".into();
        assert!(json(&sheet).contains(r#""student": "a\u001b[2J\u0000","#));
    }

    #[test]
    fn json_keys_come_in_a_fixed_order() {
        let text = json(&fixture::class());
        let keys = [
            "\"student\"",
            "\"hostname\"",
            "\"vmid\"",
            "\"points\"",
            "\"max_points\"",
            "\"errors\"",
            "\"lab\"",
            "\"spec_sha256\"",
            "\"evidence_spec_sha256\"",
            "\"problems\"",
            "\"checks\"",
            "\"id\"",
            "\"title\"",
            "\"outcome\"",
        ];
        let at: Vec<_> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn an_empty_class_is_an_empty_list() {
        let mut sheet = fixture::class();
        sheet.students.clear();
        assert_eq!(json(&sheet), "[]\n");
    }
}
