//! Lint: what is legal but probably wrong in a spec, and what breaks for some student of
//! the roster. Problems that make a spec unreadable are parse errors; [`SpecError::findings`]
//! turns them into findings so `labctl lab lint` lists both the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evidence::StudentInfo;
use crate::probe::Source;
use crate::spec::{Spec, SpecError};
use crate::template::{Template, Vars};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The spec cannot grade (some student) correctly.
    Error,
    /// Legal, but probably not what was meant.
    Warning,
}

impl Level {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// Where: `check static-ip`, `probe addr`, `[exam]`, or a parse problem's table.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.level.as_str(), self.at, self.message)
    }
}

impl SpecError {
    /// The problems as error findings (for a lint of a spec that does not parse).
    pub fn findings(&self) -> Vec<Finding> {
        self.problems
            .iter()
            .map(|p| Finding {
                level: Level::Error,
                at: p.at.clone(),
                message: match &p.field {
                    Some(f) => format!("`{f}`: {}", p.message),
                    None => p.message.clone(),
                },
            })
            .collect()
    }
}

fn who(s: &StudentInfo) -> String {
    if s.name == s.hostname {
        s.hostname.clone()
    } else {
        format!("{} ({})", s.name, s.hostname)
    }
}

/// Students grouped under one message, so a column missing for the whole class is one
/// finding, not one per student.
#[derive(Default)]
struct Grouped(
    BTreeMap<(String, String), Vec<String>>,
    Vec<(String, String)>,
);

impl Grouped {
    fn add(&mut self, at: String, message: String, student: String) {
        let key = (at, message);
        if !self.0.contains_key(&key) {
            self.1.push(key.clone());
        }
        self.0.entry(key).or_default().push(student);
    }

    fn into_findings(mut self, out: &mut Vec<Finding>) {
        for key in self.1 {
            let students = self.0.remove(&key).unwrap_or_default();
            let (at, message) = key;
            let list = if students.len() > 5 {
                format!(
                    "{} and {} more",
                    students[..5].join(", "),
                    students.len() - 5
                )
            } else {
                students.join(", ")
            };
            out.push(Finding {
                level: Level::Error,
                at,
                message: format!(
                    "{message} for student{} {list}",
                    if students.len() == 1 { "" } else { "s" }
                ),
            });
        }
    }
}

impl Spec {
    /// Findings about the spec and about each student's values (pass the roster's
    /// students; an empty slice lints the spec alone). Errors first are not promised:
    /// findings come in the spec's order.
    pub fn lint(&self, students: &[StudentInfo]) -> Vec<Finding> {
        let mut out = Vec::new();
        let at_probe = |id: &str| format!("probe {id}");
        let at_check = |id: &str| format!("check {id}");
        if self.checks.is_empty() {
            out.push(Finding {
                level: Level::Warning,
                at: self.origin.clone(),
                message: "no [[check]]: nothing would be graded".into(),
            });
        }
        let used: Vec<bool> = self
            .probes
            .iter()
            .map(|p| self.checks.iter().any(|c| c.probe_idx == p.index))
            .collect();
        for p in &self.probes {
            if !used[p.index] {
                out.push(Finding {
                    level: Level::Warning,
                    at: at_probe(&p.id),
                    message: "no check uses this probe (it is not collected)".into(),
                });
            }
            if p.from == Source::Teacher && self.exam.teacher.is_none() {
                out.push(Finding {
                    level: Level::Error,
                    at: at_probe(&p.id),
                    message: "runs from the teacher, but [exam] names no teacher = VMID".into(),
                });
            }
        }
        let most: f64 = self.checks.iter().map(|c| c.points).sum();
        if self.floor() > most {
            out.push(Finding {
                level: Level::Error,
                at: "[exam]".into(),
                message: format!(
                    "floor = {} is above the most a student can earn ({most}): every student \
                     would get the floor",
                    self.floor()
                ),
            });
        }
        for c in &self.checks {
            if c.points == 0.0 && c.penalty == 0.0 {
                out.push(Finding {
                    level: Level::Warning,
                    at: at_check(&c.id),
                    message: "is worth nothing: points = 0 and penalty = 0".into(),
                });
            }
            if c.partial && c.expect.len() < 2 {
                out.push(Finding {
                    level: Level::Warning,
                    at: at_check(&c.id),
                    message: "partial = true has no effect with one expectation".into(),
                });
            }
        }

        // Per student: values the templates name, then what only the values can break.
        let mut missing = Grouped::default();
        let mut broken = Vec::new();
        for s in students {
            let vars = Vars::of(s);
            let lacks = |t: &Template| -> Vec<String> {
                t.names()
                    .filter(|n| !vars.has(n))
                    .map(str::to_owned)
                    .collect()
            };
            for p in self.probes.iter().filter(|p| used[p.index]) {
                let names: Vec<String> =
                    p.request.templates().into_iter().flat_map(&lacks).collect();
                for n in dedup(names.clone()) {
                    missing.add(at_probe(&p.id), format!("{{{{{n}}}}} has no value"), who(s));
                }
                if names.is_empty() {
                    if let Err((field, why)) = self.plan_probe(p, &vars) {
                        broken.push(Finding {
                            level: Level::Error,
                            at: at_probe(&p.id),
                            message: format!("`{field}`: {why} for student {}", who(s)),
                        });
                    }
                }
            }
            for c in &self.checks {
                let mut ts: Vec<&Template> = vec![&c.title];
                ts.extend(c.fail.iter());
                ts.extend(c.pass.iter());
                ts.extend(c.mutant.iter().flatten());
                let mut names: Vec<String> = ts.into_iter().flat_map(&lacks).collect();
                for (k, e) in c.expect.iter().enumerate() {
                    let en: Vec<String> = e.templates().into_iter().flat_map(&lacks).collect();
                    if en.is_empty() {
                        if let Err(why) = e.prepare(&vars) {
                            broken.push(Finding {
                                level: Level::Error,
                                at: at_check(&c.id),
                                message: format!(
                                    "`expect[{}]`: {why} for student {}",
                                    k + 1,
                                    who(s)
                                ),
                            });
                        }
                    }
                    names.extend(en);
                }
                for n in dedup(names) {
                    missing.add(at_check(&c.id), format!("{{{{{n}}}}} has no value"), who(s));
                }
            }
        }
        missing.into_findings(&mut out);
        out.extend(broken);
        out
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|n| seen.insert(n.clone()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn student(host: &str, vars: &[(&str, &str)]) -> StudentInfo {
        StudentInfo {
            key: host.into(),
            name: host.into(),
            hostname: host.into(),
            vmid: 5000,
            node: "pve1".into(),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    const SPEC: &str = r#"
        [[probe]]
        id = "addr"
        exec = ["ip", "-j", "addr"]

        [[probe]]
        id = "gw"
        ping = "{{gateway}}"
        from = "teacher"

        [[probe]]
        id = "unused"
        file = "/etc/hostname"

        [[check]]
        id = "vlan"
        probe = "addr"
        expect = [{ json = "$[?(@.ifname=='eth1.{{vlan}}')]", exists = true }, { regex = "{{pattern}}" }]
        partial = true

        [[check]]
        id = "gw"
        probe = "gw"
        expect = [{ reachable = true }]
        points = 0
    "#;

    fn lint(students: &[StudentInfo]) -> Vec<String> {
        Spec::parse(SPEC, "x")
            .unwrap()
            .lint(students)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_spec_alone_warns_of_worthless_checks_and_unused_probes() {
        let f = lint(&[]);
        assert_eq!(
            f,
            [
                "error: probe gw: runs from the teacher, but [exam] names no teacher = VMID",
                "warning: probe unused: no check uses this probe (it is not collected)",
                "warning: check gw: is worth nothing: points = 0 and penalty = 0",
            ]
        );
    }

    #[test]
    fn a_value_some_roster_rows_lack_is_one_error_naming_the_students() {
        let ok = [("vlan", "10"), ("gateway", "10.0.0.1"), ("pattern", "^x")];
        let f = lint(&[
            student("s01", &ok),
            student("s02", &[("gateway", "10.0.0.1"), ("pattern", "^x")]),
            student("s03", &[("gateway", "10.0.0.1"), ("pattern", "^x")]),
        ]);
        assert!(
            f.contains(
                &"error: check vlan: {{vlan}} has no value for students s02, s03".to_owned()
            ),
            "{f:#?}"
        );
        assert!(!f.iter().any(|l| l.contains("s01")), "{f:#?}");
    }

    #[test]
    fn values_that_break_a_pattern_or_a_request_name_the_student() {
        let f = lint(&[student(
            "s01",
            &[("vlan", "10"), ("gateway", "-x"), ("pattern", "(")],
        )]);
        assert!(
            f.iter().any(|l| l
                .starts_with("error: probe gw: `ping`: the host \"-x\" is not a host name")
                && l.ends_with("for student s01")),
            "{f:#?}"
        );
        assert!(
            f.iter().any(|l| l
                .starts_with("error: check vlan: `expect[2]`: regex \"(\" does not compile")
                && l.ends_with("for student s01")),
            "{f:#?}"
        );
    }

    #[test]
    fn parse_errors_become_error_findings() {
        let e = Spec::parse(
            "[[check]]\nid = \"c\"\nprobe = \"nope\"\nexpect = [{ exit = 0 }]\n",
            "x",
        )
        .unwrap_err();
        let f = e.findings();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Error);
        assert_eq!(f[0].at, "[[check]] #1 \"c\"");
        assert_eq!(
            f[0].message,
            "`probe`: \"nope\" is not a [[probe]] id (known: none)"
        );
    }

    #[test]
    fn a_floor_above_the_most_points_is_an_error() {
        let spec = Spec::parse(
            "[exam]\nfloor = 100\n[[probe]]\nid = \"p\"\nexec = [\"true\"]\n[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{ exit = 0 }]\npoints = 2\n",
            "t.toml",
        )
        .unwrap();
        let f = spec.lint(&[]);
        assert!(
            f.iter()
                .any(|f| f.level == Level::Error && f.message.contains("floor = 100")),
            "{f:?}"
        );
    }

    #[test]
    fn partial_with_one_expectation_is_a_warning() {
        let spec = Spec::parse(
            "[[probe]]\nid = \"p\"\nexec = [\"true\"]\n[[check]]\nid = \"c\"\nprobe = \"p\"\npartial = true\nexpect = [{ exit = 0 }]\n",
            "x",
        )
        .unwrap();
        let f = spec.lint(&[]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "warning: check c: partial = true has no effect with one expectation"
        );
    }
}
