//! The grade sheet: what grading decided, per student and check.

use serde::{Deserialize, Serialize};

/// The four outcomes of a check (grading.md's `blocked` is `skipped` with a message
/// naming the check it requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every expectation held.
    Pass,
    /// The probe ran and an expectation did not hold.
    Fail,
    /// The probe could not run (agent down, timeout, result lost, truncated, evidence
    /// missing or changed): never points, never a fail.
    Error,
    /// Not judged: a check it `requires` did not pass, or it was left out (`--only`).
    Skipped,
}

impl Outcome {
    /// `pass`, `fail`, `error` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check of one student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's id.
    pub id: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Points earned (negative for a penalty).
    pub points: f64,
    /// What the check is worth.
    pub max_points: f64,
    /// For the student: the check's `fail`/`pass` text or what went wrong, in one line.
    pub message: String,
    /// For the teacher: what was expected, what was found and where (empty on a pass).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The probe judged (its id), for the teacher's view and the evidence link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// The probe's request as one line (the command; hidden in the student view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// One student's grades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentGrade {
    /// The student (roster name, else the host name).
    pub student: String,
    /// The host name (the key of their evidence).
    pub hostname: String,
    /// The guest.
    pub vmid: u32,
    /// Points earned (after penalties, floored at 0 unless the spec says otherwise).
    pub points: f64,
    /// Points possible.
    pub max_points: f64,
    /// Checks with the outcome `error`.
    pub errors: usize,
    /// Every check, in the spec's order.
    pub checks: Vec<CheckResult>,
    /// Evidence problems (files changed since collected, missing manifest), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A check as the sheet lists it (its columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// Id.
    pub id: String,
    /// Title (with no student values in it).
    pub title: String,
    /// Points on a pass.
    pub points: f64,
    /// Points lost on a fail.
    #[serde(default)]
    pub penalty: f64,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The grade sheet of a class: a pure function of the spec and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sheet {
    /// The lab.
    pub lab: String,
    /// sha256 of the spec graded with.
    pub spec_sha256: String,
    /// sha256 of the spec the evidence was collected with (differs after a re-grade with
    /// a changed spec).
    pub evidence_spec_sha256: String,
    /// The checks (the columns), in the spec's order.
    pub checks: Vec<CheckInfo>,
    /// The students, sorted by host name.
    pub students: Vec<StudentGrade>,
}
