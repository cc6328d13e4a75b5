//! Grading: a pure function of the spec and the evidence. It reads nothing else (no
//! clock, no environment, no network), so the same input gives an equal [`Sheet`].

use std::cell::OnceCell;

use crate::evidence::StudentEvidence;
use crate::matcher::{cut, Doc, Judged};
use crate::probe::PlannedProbe;
use crate::sheet::{CheckResult, Outcome, Sheet, StudentGrade};
use crate::spec::{CheckSpec, Spec};
use crate::template::Vars;

/// The manifest file and the student record: a problem with either touches every probe.
const WHOLE_STUDENT: [&str; 2] = ["MANIFEST.sha256", "student.json"];

/// Points are kept to a thousandth, so sums of partial credit do not show float noise
/// (`0.1 + 0.2`) and every format prints the same number.
fn round(x: f64) -> f64 {
    let r = (x * 1000.0).round() / 1000.0;
    if r == 0.0 {
        0.0 // no "-0"
    } else {
        r
    }
}

/// Grades every student on the spec's checks.
///
/// `lab` names the lab on the sheet; `evidence_spec_sha256` is the spec hash the
/// evidence was collected with ([`crate::CollectMeta::spec_sha256`]), kept beside this
/// spec's so a re-grade with a changed spec shows. Students are sorted by host name;
/// checks keep the spec's order.
pub fn grade(
    spec: &Spec,
    lab: &str,
    evidence_spec_sha256: &str,
    students: &[StudentEvidence],
) -> Sheet {
    let mut sorted: Vec<&StudentEvidence> = students.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.info.hostname, &a.info.key, &a.info.name).cmp(&(
            &b.info.hostname,
            &b.info.key,
            &b.info.name,
        ))
    });
    Sheet {
        lab: lab.to_owned(),
        spec_sha256: spec.sha256(),
        evidence_spec_sha256: evidence_spec_sha256.to_owned(),
        checks: spec.check_infos(),
        students: sorted.into_iter().map(|s| grade_student(spec, s)).collect(),
    }
}

type Planned = Result<PlannedProbe, (String, String)>;

fn grade_student(spec: &Spec, s: &StudentEvidence) -> StudentGrade {
    let vars = Vars::of(&s.info);
    // Per probe, shared by every check on it: the planned request and the parsed JSON.
    let docs: Vec<Doc> = spec.probes.iter().map(|_| Doc::default()).collect();
    let plans: Vec<OnceCell<Planned>> = spec.probes.iter().map(|_| OnceCell::new()).collect();
    let mut results: Vec<Option<CheckResult>> = vec![None; spec.checks.len()];
    for &i in &spec.order {
        let c = &spec.checks[i];
        let planned =
            plans[c.probe_idx].get_or_init(|| spec.plan_probe(&spec.probes[c.probe_idx], &vars));
        let r = grade_check(spec, c, s, &vars, &results, planned, &docs[c.probe_idx]);
        results[i] = Some(r);
    }
    let checks: Vec<CheckResult> = results.into_iter().flatten().collect();
    let sum: f64 = checks.iter().map(|c| c.points).sum();
    StudentGrade {
        student: s.info.name.clone(),
        hostname: s.info.hostname.clone(),
        vmid: s.info.vmid,
        points: round(sum.max(spec.exam.floor)),
        max_points: round(spec.checks.iter().map(|c| c.points).sum()),
        errors: checks
            .iter()
            .filter(|c| c.outcome == Outcome::Error)
            .count(),
        checks,
        problems: s
            .problems
            .iter()
            .map(|(f, why)| format!("{f}: {why}"))
            .collect(),
    }
}

fn grade_check(
    spec: &Spec,
    c: &CheckSpec,
    s: &StudentEvidence,
    vars: &Vars,
    done: &[Option<CheckResult>],
    planned: &Planned,
    doc: &Doc,
) -> CheckResult {
    let p = &spec.probes[c.probe_idx];
    let mut r = CheckResult {
        id: c.id.clone(),
        outcome: Outcome::Error,
        points: 0.0,
        max_points: c.points,
        message: String::new(),
        detail: String::new(),
        probe: Some(p.id.clone()),
        request: None,
    };
    let error = |mut r: CheckResult, message: String| {
        r.outcome = Outcome::Error;
        r.points = 0.0;
        r.detail = match &r.request {
            Some(req) => format!("{message} (probe {}: {req})", p.id),
            None => format!("{message} (probe {})", p.id),
        };
        r.message = message;
        r
    };

    // The probe as this spec plans it for this student.
    let planned = match planned {
        Ok(pp) => pp,
        Err((field, why)) => {
            return error(
                r,
                format!(
                    "the spec does not fit this student: probe {} `{field}`: {why}",
                    p.id
                ),
            )
        }
    };
    r.request = Some(planned.request.to_string());

    // Can the evidence be judged at all? If not: error, whatever the expectations say.
    let Some(ev) = s.probes.get(&p.id) else {
        return error(
            r,
            format!(
                "no evidence of probe {} (not collected: run `labctl lab collect` again)",
                p.id
            ),
        );
    };
    let file = format!("{}.json", p.id);
    if let Some((f, why)) = s
        .problems
        .iter()
        .find(|(f, _)| *f == file || WHOLE_STUDENT.contains(&f.as_str()))
    {
        return error(r, format!("the evidence cannot be trusted: {f}: {why}"));
    }
    if let Err(why) = ev.usable() {
        return error(r, format!("probe {} could not run: {why}", p.id));
    }
    if ev.request != planned.request || ev.source != planned.source {
        return error(
            r,
            format!(
                "the evidence is of another request ({} from {}): the probe changed since collecting; collect again",
                ev.request, ev.source
            ),
        );
    }

    // Gates.
    let blocked: Vec<String> = c
        .requires_idx
        .iter()
        .filter_map(|&j| {
            let o = done[j].as_ref().map_or(Outcome::Skipped, |d| d.outcome);
            (o != Outcome::Pass).then(|| format!("{} ({o})", spec.checks[j].id))
        })
        .collect();
    if !blocked.is_empty() {
        r.outcome = Outcome::Skipped;
        r.message = format!("requires {}", blocked.join(", "));
        return r;
    }

    // Messages and expectations with the student's values.
    let texts = (|| -> Result<_, String> {
        let pass = c.pass.as_ref().map(|t| t.render(vars)).transpose();
        let fail = c.fail.as_ref().map(|t| t.render(vars)).transpose();
        let pass = pass.map_err(|m| format!("`pass`: {m}"))?;
        let fail = fail.map_err(|m| format!("`fail`: {m}"))?;
        let exps = c
            .expect
            .iter()
            .enumerate()
            .map(|(k, e)| {
                e.prepare(vars)
                    .map_err(|m| format!("expect[{}]: {m}", k + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((pass, fail, exps))
    })();
    let (pass, fail, exps) = match texts {
        Ok(t) => t,
        Err(m) => return error(r, format!("the spec does not fit this student: {m}")),
    };

    let kind = p.request.kind();
    let judged: Vec<Judged> = exps.iter().map(|e| e.judge_in(ev, kind, doc)).collect();
    let held = judged.iter().filter(|j| j.held).count();
    if held == judged.len() {
        r.outcome = Outcome::Pass;
        r.points = round(c.points);
        r.message = pass.unwrap_or_else(|| "ok".to_owned());
        return r;
    }
    let failing: Vec<&Judged> = judged.iter().filter(|j| !j.held).collect();
    let share = if c.partial {
        c.points * held as f64 / judged.len() as f64
    } else {
        0.0
    };
    r.outcome = Outcome::Fail;
    r.points = round(share - c.penalty);
    r.message = match fail {
        Some(f) => f,
        None => failing
            .first()
            .map(|j| one_line(&j.message))
            .unwrap_or_default(),
    };
    let request = r.request.clone().unwrap_or_default();
    r.detail = failing
        .iter()
        .map(|j| format!("{} (probe {}: {request}, {})", j.message, p.id, j.selector))
        .collect::<Vec<_>>()
        .join("; ");
    r
}

/// A message on one line (found values are JSON-quoted already; this guards the rest).
fn one_line(s: &str) -> String {
    cut(&s.replace(['\n', '\r'], " "), 400)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::evidence::{sha256_hex, Blob, ErrorKind, Evidence, ProbeError, StudentInfo, Target};
    use crate::probe::{Request, Source};

    const SPEC: &str = r#"
        [exam]
        teacher = 100
        floor = 0

        [[probe]]
        id = "addr"
        exec = ["ip", "-j", "addr"]

        [[probe]]
        id = "nginx"
        exec = ["systemctl", "is-active", "nginx"]

        [[probe]]
        id = "web"
        http = "http://{{ip}}/"

        [[check]]
        id = "static-ip"
        title = "ens18 has 192.168.{{vlan}}.10/24"
        probe = "addr"
        expect = [
          { json = "$[?(@.ifname=='ens18')].addr_info[*].local", includes = ["192.168.{{vlan}}.10"] },
        ]
        points = 2
        fail = "ens18 has no static address"

        [[check]]
        id = "nginx-active"
        uses = "nginx"
        expect = [{ equals = "active" }, { exit = 0 }]
        points = 3
        partial = true
        penalty = 1

        [[check]]
        id = "web-page"
        probe = "web"
        requires = ["nginx-active"]
        expect = [{ status = 200 }, { contains = "{{hostname}}" }]
        points = 1
    "#;

    fn info(host: &str, vlan: &str) -> StudentInfo {
        StudentInfo {
            key: host.into(),
            name: format!("Student {host}"),
            hostname: host.into(),
            vmid: 5000,
            node: "pve1".into(),
            vars: BTreeMap::from([
                ("vlan".to_owned(), vlan.to_owned()),
                ("ip".to_owned(), format!("192.168.{vlan}.10")),
            ]),
        }
    }

    fn evidence(
        host: &str,
        probe: &str,
        request: Request,
        source: Source,
        out: &str,
        exit: i64,
    ) -> Evidence {
        Evidence {
            probe: probe.into(),
            student: host.into(),
            source,
            request,
            target: Target {
                vmid: Some(5000),
                node: Some("pve1".into()),
                name: host.into(),
            },
            start: "2026-12-05T10:00:00.000Z".into(),
            end: "2026-12-05T10:00:00.100Z".into(),
            attempts: 1,
            exit: Some(exit),
            signal: None,
            stdout: Blob::from(out),
            stderr: Blob::default(),
            truncated: false,
            sha256: sha256_hex(out.as_bytes()),
            error: None,
        }
    }

    fn ip_json(addr: &str) -> String {
        format!(
            r#"[{{"ifindex":1,"ifname":"lo","addr_info":[{{"family":"inet","local":"127.0.0.1","prefixlen":8}}]}},{{"ifindex":2,"ifname":"ens18","mtu":1500,"addr_info":[{{"family":"inet","local":"{addr}","prefixlen":24,"scope":"global","label":"ens18"}}]}}]"#
        )
    }

    /// A student with a chosen state: address, nginx state, web answer.
    fn student(
        host: &str,
        vlan: &str,
        addr: &str,
        nginx: (&str, i64),
        web: &str,
    ) -> StudentEvidence {
        let i = info(host, vlan);
        let mut probes = BTreeMap::new();
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        probes.insert(
            "addr".into(),
            evidence(
                host,
                "addr",
                Request::Exec {
                    argv: argv(&["ip", "-j", "addr"]),
                },
                Source::Guest,
                &ip_json(addr),
                0,
            ),
        );
        probes.insert(
            "nginx".into(),
            evidence(
                host,
                "nginx",
                Request::Exec {
                    argv: argv(&["systemctl", "is-active", "nginx"]),
                },
                Source::Guest,
                nginx.0,
                nginx.1,
            ),
        );
        probes.insert(
            "web".into(),
            evidence(
                host,
                "web",
                Request::Http {
                    url: format!("http://192.168.{vlan}.10/"),
                },
                Source::Teacher,
                web,
                0,
            ),
        );
        StudentEvidence {
            info: i,
            probes,
            problems: Vec::new(),
        }
    }

    fn spec() -> Spec {
        Spec::parse(SPEC, "exam.toml").unwrap()
    }

    fn outcomes(g: &StudentGrade) -> Vec<(&str, Outcome, f64)> {
        g.checks
            .iter()
            .map(|c| (c.id.as_str(), c.outcome, c.points))
            .collect()
    }

    #[test]
    fn a_student_who_did_everything_gets_every_point() {
        let s = student(
            "s01",
            "10",
            "192.168.10.10",
            ("active\n", 0),
            "<h1>s01</h1>\n200",
        );
        let sheet = grade(&spec(), "exam1", "abc", &[s]);
        let g = &sheet.students[0];
        assert_eq!(
            outcomes(g),
            [
                ("static-ip", Outcome::Pass, 2.0),
                ("nginx-active", Outcome::Pass, 3.0),
                ("web-page", Outcome::Pass, 1.0)
            ]
        );
        assert_eq!((g.points, g.max_points, g.errors), (6.0, 6.0, 0));
        assert_eq!(g.checks[0].message, "ok");
        assert_eq!(
            g.checks[2].request.as_deref(),
            Some("http http://192.168.10.10/")
        );
        assert!(g.checks.iter().all(|c| c.detail.is_empty()));
    }

    #[test]
    fn a_fail_says_the_checks_text_and_the_teacher_sees_expected_found_and_where() {
        let s = student(
            "s02",
            "20",
            "192.168.20.99",
            ("active\n", 0),
            "<h1>s02</h1>\n200",
        );
        let sheet = grade(&spec(), "exam1", "abc", &[s]);
        let c = &sheet.students[0].checks[0];
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(c.message, "ens18 has no static address");
        assert_eq!(
            c.detail,
            "expected includes [\"192.168.20.10\"], found \"192.168.20.99\" (probe addr: ip -j addr, json $[?(@.ifname=='ens18')].addr_info[*].local)"
        );
    }

    #[test]
    fn partial_credit_and_penalty_apply_on_a_fail_and_requires_skips() {
        // nginx prints "active" but exits 3: one of two expectations holds.
        let s = student(
            "s03",
            "30",
            "192.168.30.10",
            ("active\n", 3),
            "<h1>s03</h1>\n200",
        );
        let sheet = grade(&spec(), "exam1", "abc", &[s]);
        let g = &sheet.students[0];
        // 3 × 1/2 − 1 = 0.5
        assert_eq!(g.checks[1].outcome, Outcome::Fail);
        assert_eq!(g.checks[1].points, 0.5);
        assert_eq!(g.checks[1].message, "expected exit 0, found 3");
        assert_eq!(g.checks[2].outcome, Outcome::Skipped);
        assert_eq!(g.checks[2].message, "requires nginx-active (fail)");
        assert_eq!(g.checks[2].points, 0.0);
        assert_eq!(g.points, 2.5);
    }

    #[test]
    fn penalties_stop_at_the_floor() {
        let s = student("s04", "40", "10.9.9.9", ("failed\n", 3), "\n000");
        let sheet = grade(&spec(), "exam1", "abc", std::slice::from_ref(&s));
        let g = &sheet.students[0];
        assert_eq!(g.checks[1].points, -1.0);
        assert_eq!(g.points, 0.0, "floor 0");
        let low = SPEC.replace("floor = 0", "floor = -5");
        let sheet = grade(&Spec::parse(&low, "x").unwrap(), "exam1", "abc", &[s]);
        assert_eq!(sheet.students[0].points, -1.0);
    }

    #[test]
    fn an_agent_down_probe_is_an_error_not_a_fail_whatever_not_says() {
        let mut s = student(
            "s05",
            "50",
            "192.168.50.10",
            ("active\n", 0),
            "<h1>s05</h1>\n200",
        );
        for ev in s.probes.values_mut().filter(|e| e.probe != "web") {
            ev.exit = None;
            ev.stdout = Blob::default();
            ev.sha256 = sha256_hex(b"");
            ev.error = Some(ProbeError {
                kind: ErrorKind::AgentDown,
                message: "QEMU guest agent is not running".into(),
            });
        }
        let negated = SPEC.replace(
            "expect = [{ equals = \"active\" }, { exit = 0 }]",
            "expect = [{ equals = \"inactive\", not = true }]",
        );
        for text in [SPEC, negated.as_str()] {
            let sheet = grade(
                &Spec::parse(text, "x").unwrap(),
                "exam1",
                "abc",
                std::slice::from_ref(&s),
            );
            let g = &sheet.students[0];
            assert_eq!(
                outcomes(g)[..2],
                [
                    ("static-ip", Outcome::Error, 0.0),
                    ("nginx-active", Outcome::Error, 0.0)
                ]
            );
            assert_eq!(
                g.checks[1].message,
                "probe nginx could not run: agent_down: QEMU guest agent is not running"
            );
            // No penalty on an error; the dependent is skipped, not failed.
            assert_eq!(g.checks[2].outcome, Outcome::Skipped);
            assert_eq!(g.checks[2].message, "requires nginx-active (error)");
            assert_eq!((g.points, g.errors), (0.0, 2));
        }
    }

    #[test]
    fn truncated_changed_or_missing_evidence_is_an_error() {
        let good = student(
            "s06",
            "60",
            "192.168.60.10",
            ("active\n", 0),
            "<h1>s06</h1>\n200",
        );
        let mut s = good.clone();
        if let Some(e) = s.probes.get_mut("addr") {
            e.truncated = true;
        }
        s.probes.remove("web");
        s.problems
            .push(("nginx.json".into(), "changed since it was collected".into()));
        let g = grade(&spec(), "l", "h", &[s]).students.remove(0);
        assert_eq!(
            g.checks.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            [Outcome::Error; 3]
        );
        assert!(
            g.checks[0].message.contains("truncated"),
            "{}",
            g.checks[0].message
        );
        assert!(
            g.checks[1].message.contains("nginx.json: changed"),
            "{}",
            g.checks[1].message
        );
        assert!(
            g.checks[2].message.contains("no evidence of probe web"),
            "{}",
            g.checks[2].message
        );
        assert_eq!(g.problems, ["nginx.json: changed since it was collected"]);
        // A missing manifest touches every probe.
        let mut m = good;
        m.problems
            .push(("MANIFEST.sha256".into(), "missing".into()));
        let g = grade(&spec(), "l", "h", &[m]).students.remove(0);
        assert_eq!(g.errors, 3);
    }

    #[test]
    fn evidence_of_a_changed_probe_is_an_error() {
        let s = student(
            "s07",
            "70",
            "192.168.70.10",
            ("active\n", 0),
            "<h1>s07</h1>\n200",
        );
        let changed = SPEC.replace(
            "[\"systemctl\", \"is-active\", \"nginx\"]",
            "[\"systemctl\", \"is-active\", \"apache2\"]",
        );
        let g = grade(&Spec::parse(&changed, "x").unwrap(), "l", "h", &[s])
            .students
            .remove(0);
        assert_eq!(g.checks[1].outcome, Outcome::Error);
        assert!(
            g.checks[1]
                .message
                .contains("another request (systemctl is-active nginx from guest)"),
            "{}",
            g.checks[1].message
        );
    }

    #[test]
    fn a_value_the_student_lacks_is_an_error_naming_it() {
        let mut s = student(
            "s08",
            "80",
            "192.168.80.10",
            ("active\n", 0),
            "<h1>s08</h1>\n200",
        );
        s.info.vars.remove("vlan");
        let g = grade(&spec(), "l", "h", &[s]).students.remove(0);
        assert_eq!(g.checks[0].outcome, Outcome::Error);
        assert!(
            g.checks[0].message.contains("{{vlan}}"),
            "{}",
            g.checks[0].message
        );
        assert_eq!(g.checks[1].outcome, Outcome::Pass);
    }

    #[test]
    fn the_same_input_gives_an_equal_sheet_and_the_same_bytes() {
        let class = vec![
            student(
                "s10",
                "10",
                "192.168.10.10",
                ("active\n", 0),
                "<h1>s10</h1>\n200",
            ),
            student("s02", "20", "192.168.20.10", ("inactive\n", 3), "\n000"),
            student("s05", "50", "1.2.3.4", ("active\n", 3), "<h1>s05</h1>\n404"),
        ];
        let a = grade(&spec(), "exam1", "abc", &class);
        let mut reversed = class.clone();
        reversed.reverse();
        let b = grade(&spec(), "exam1", "abc", &reversed);
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap()
        );
        let hosts: Vec<&str> = a.students.iter().map(|s| s.hostname.as_str()).collect();
        assert_eq!(hosts, ["s02", "s05", "s10"]);
        assert_eq!(a.spec_sha256, spec().sha256());
        assert_eq!(a.evidence_spec_sha256, "abc");
    }

    #[test]
    fn changing_one_checks_points_changes_only_that_column_and_the_totals() {
        let class = vec![
            student(
                "s01",
                "10",
                "192.168.10.10",
                ("active\n", 0),
                "<h1>s01</h1>\n200",
            ),
            student(
                "s02",
                "20",
                "192.168.20.10",
                ("active\n", 3),
                "<h1>s02</h1>\n200",
            ),
            student("s03", "30", "10.0.0.1", ("inactive\n", 3), "\n000"),
        ];
        let before = grade(&spec(), "exam1", "abc", &class);
        let edited = SPEC.replace("points = 3", "points = 5");
        let after = grade(&Spec::parse(&edited, "x").unwrap(), "exam1", "abc", &class);
        assert_ne!(before.spec_sha256, after.spec_sha256);
        for (b, a) in before.students.iter().zip(&after.students) {
            for (cb, ca) in b.checks.iter().zip(&a.checks) {
                if cb.id == "nginx-active" {
                    assert_eq!(cb.outcome, ca.outcome);
                    assert_eq!(ca.max_points, 5.0);
                } else {
                    assert_eq!(cb, ca, "{} {}", b.hostname, cb.id);
                }
            }
            assert_eq!(a.max_points - b.max_points, 2.0);
        }
        let totals: Vec<(f64, f64)> = before
            .students
            .iter()
            .zip(&after.students)
            .map(|(b, a)| (b.points, a.points))
            .collect();
        assert_eq!(totals, [(6.0, 8.0), (2.5, 3.5), (0.0, 0.0)]);
        // s01 passes (+2), s02 has half (+1), s03 fails with the penalty (0).
        let deltas: Vec<f64> = before
            .students
            .iter()
            .zip(&after.students)
            .map(|(b, a)| a.checks[1].points - b.checks[1].points)
            .collect();
        assert_eq!(deltas, [2.0, 1.0, 0.0]);
    }

    #[test]
    fn requires_may_point_at_a_later_check() {
        let text = r#"
            [[probe]]
            id = "p"
            exec = ["true"]
            [[check]]
            id = "b"
            probe = "p"
            requires = ["a"]
            expect = [{ exit = 0 }]
            [[check]]
            id = "a"
            probe = "p"
            expect = [{ exit = 1 }]
        "#;
        let sp = Spec::parse(text, "x").unwrap();
        let mut probes = BTreeMap::new();
        probes.insert(
            "p".into(),
            evidence(
                "h",
                "p",
                Request::Exec {
                    argv: vec!["true".into()],
                },
                Source::Guest,
                "",
                0,
            ),
        );
        let s = StudentEvidence {
            info: info("h", "1"),
            probes,
            problems: vec![],
        };
        let g = grade(&sp, "l", "h", &[s]).students.remove(0);
        assert_eq!(
            outcomes(&g),
            [("b", Outcome::Skipped, 0.0), ("a", Outcome::Fail, 0.0)]
        );
        assert_eq!(g.checks[0].message, "requires a (fail)");
    }

    #[test]
    fn pass_and_fail_texts_take_the_students_values() {
        let text = r#"
            [[probe]]
            id = "h"
            file = "/etc/hostname"
            [[check]]
            id = "hostname"
            probe = "h"
            expect = [{ equals = "{{hostname}}" }]
            pass = "host name is {{hostname}}"
            fail = "/etc/hostname should say {{hostname}}"
        "#;
        let sp = Spec::parse(text, "x").unwrap();
        let mk = |out: &str| {
            let mut probes = BTreeMap::new();
            probes.insert(
                "h".into(),
                evidence(
                    "s01",
                    "h",
                    Request::File {
                        path: "/etc/hostname".into(),
                    },
                    Source::Guest,
                    out,
                    0,
                ),
            );
            StudentEvidence {
                info: info("s01", "1"),
                probes,
                problems: vec![],
            }
        };
        let g = grade(&sp, "l", "h", &[mk("s01\n")]).students.remove(0);
        assert_eq!(g.checks[0].message, "host name is s01");
        let g = grade(&sp, "l", "h", &[mk("debian\n")]).students.remove(0);
        assert_eq!(g.checks[0].message, "/etc/hostname should say s01");
    }

    #[test]
    fn partial_thirds_are_rounded_to_a_thousandth() {
        assert_eq!(round(2.0 / 3.0), 0.667);
        assert_eq!(round(0.1 + 0.2), 0.3);
        assert_eq!(round(-0.0001).to_string(), "0");
    }

    /// The README's example on a reference student, and on the state its nginx mutant
    /// leaves: exactly the mutant's `breaks` stop passing.
    #[test]
    fn the_readme_example_grades_a_reference_student_and_its_mutant() {
        let spec = Spec::parse(crate::readme_example(), "README.md").unwrap();
        let mut i = info("s01", "10");
        i.vars.insert("domain".into(), "s01.lab".into());
        let outputs = |nginx: (&str, i64)| -> BTreeMap<&'static str, (String, i64)> {
            BTreeMap::from([
                ("addr", (r#"[{"ifname":"ens18","addr_info":[{"family":"inet","local":"192.168.10.10","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#.to_owned(), 0)),
                ("nginx", (nginx.0.to_owned(), nginx.1)),
                ("resolv", ("# generated\nnameserver 192.168.10.1\n".to_owned(), 0)),
                ("web", ("<h1>s01</h1>\n200".to_owned(), 0)),
                ("www", ("192.168.10.10\n".to_owned(), 0)),
                ("ssh", ("Connection to 192.168.10.10 22 port [tcp/ssh] succeeded!\n".to_owned(), 0)),
                ("telnet", ("nc: connect to 192.168.10.10 port 23 (tcp) failed: Connection refused\n".to_owned(), 1)),
            ])
        };
        let class = |nginx: (&str, i64)| {
            let outs = outputs(nginx);
            let probes = spec
                .plan(&i)
                .unwrap()
                .into_iter()
                .map(|p| {
                    let (out, exit) = &outs[p.id.as_str()];
                    (
                        p.id.clone(),
                        evidence("s01", &p.id, p.request, p.source, out, *exit),
                    )
                })
                .collect();
            vec![StudentEvidence {
                info: i.clone(),
                probes,
                problems: vec![],
            }]
        };
        let reference = grade(&spec, "exam1", "x", &class(("active\n", 0)));
        let g = &reference.students[0];
        assert!(
            g.checks.iter().all(|c| c.outcome == Outcome::Pass),
            "{:#?}",
            g.checks
        );
        assert_eq!((g.points, g.max_points, g.errors), (10.0, 10.0, 0));

        let mutant = &spec.mutants()[1];
        assert_eq!(mutant.check, "nginx-running");
        let broken = grade(&spec, "exam1", "x", &class(("inactive\n", 3)));
        let not_passing: BTreeSet<String> = broken.students[0]
            .checks
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(not_passing, mutant.breaks);
        assert_eq!(broken.students[0].checks[1].outcome, Outcome::Fail);
        assert_eq!(broken.students[0].checks[2].outcome, Outcome::Skipped);
    }
}
