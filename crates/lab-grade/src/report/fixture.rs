//! Sheets built by hand for the report tests.

use crate::sheet::{CheckInfo, CheckResult, Outcome, Sheet, StudentGrade};

/// The probes' requests: none may reach a student's view.
pub(crate) const REQUESTS: [&str; 4] = [
    "/usr/sbin/ip -j addr show dev ens18",
    "systemctl is-active nginx.service",
    "curl --max-time 5 http://10.0.5.3/index.html",
    "dig +short @10.0.5.1 www.lab.example A",
];

/// The teacher's details: none may reach a student's view.
pub(crate) const DETAILS: [&str; 4] = [
    "expected includes [\"192.168.10.10\"], found [\"192.168.10.99\"] (probe addr, json)",
    "expected equals \"active\", found \"inactive\" (probe svc, stdout)",
    "evidence web.json: exec status lost after 5 s",
    "expected status 200, found 500 (probe web, status)",
];

pub(crate) fn check(id: &str, title: &str, points: f64, penalty: f64) -> CheckInfo {
    CheckInfo {
        id: id.into(),
        title: title.into(),
        points,
        penalty,
        tags: Vec::new(),
    }
}

pub(crate) fn result(
    id: &str,
    outcome: Outcome,
    points: f64,
    max_points: f64,
    message: &str,
    detail: &str,
    probe: Option<(&str, &str)>,
) -> CheckResult {
    CheckResult {
        id: id.into(),
        outcome,
        points,
        max_points,
        message: message.into(),
        detail: detail.into(),
        probe: probe.map(|(p, _)| p.into()),
        request: probe.map(|(_, r)| r.into()),
    }
}

pub(crate) fn student(
    student: &str,
    hostname: &str,
    vmid: u32,
    checks: Vec<CheckResult>,
) -> StudentGrade {
    let points = checks.iter().map(|c| c.points).sum::<f64>().max(0.0);
    StudentGrade {
        student: student.into(),
        hostname: hostname.into(),
        vmid,
        points,
        max_points: checks.iter().map(|c| c.max_points).sum(),
        errors: checks
            .iter()
            .filter(|c| c.outcome == Outcome::Error)
            .count(),
        checks,
        problems: Vec::new(),
    }
}

/// Three students, four checks, every outcome: pc01 passes everything; pc02 fails two
/// (one with a penalty), errors on `web` and so skips `dns`; pc03 (named `<script>`) has a
/// partial fail and a message with `"&'` and a newline.
pub(crate) fn class() -> Sheet {
    use Outcome::{Error, Fail, Pass, Skipped};
    let addr = Some(("addr", REQUESTS[0]));
    let svc = Some(("svc", REQUESTS[1]));
    let web = Some(("web", REQUESTS[2]));
    let dns = Some(("dns.www", REQUESTS[3]));
    Sheet {
        lab: "exam1".into(),
        spec_sha256: "a".repeat(64),
        evidence_spec_sha256: "a".repeat(64),
        checks: vec![
            check("addr", "ens18 has 192.168.10.10/24", 2.0, 0.0),
            check("svc", "nginx is active", 1.0, 0.5),
            check("web", "the web server answers", 1.5, 0.0),
            check("dns", "www resolves to the web server", 1.0, 0.0),
        ],
        students: vec![
            student(
                "Ana Álvarez",
                "pc01",
                5001,
                vec![
                    result("addr", Pass, 2.0, 2.0, "static address set", "", addr),
                    result("svc", Pass, 1.0, 1.0, "ok", "", svc),
                    result("web", Pass, 1.5, 1.5, "ok", "", web),
                    result("dns", Pass, 1.0, 1.0, "ok", "", dns),
                ],
            ),
            student(
                "Bo Berg",
                "pc02",
                5002,
                vec![
                    result(
                        "addr",
                        Fail,
                        0.0,
                        2.0,
                        "ens18 has no static address",
                        DETAILS[0],
                        addr,
                    ),
                    result(
                        "svc",
                        Fail,
                        -0.5,
                        1.0,
                        "nginx is not running",
                        DETAILS[1],
                        svc,
                    ),
                    result(
                        "web",
                        Error,
                        0.0,
                        1.5,
                        "the probe could not run: exec status lost",
                        DETAILS[2],
                        web,
                    ),
                    result("dns", Skipped, 0.0, 1.0, "requires web (error)", "", None),
                ],
            ),
            student(
                "<script>alert(1)</script>",
                "pc03",
                5003,
                vec![
                    result(
                        "addr",
                        Fail,
                        2.0 / 3.0,
                        2.0,
                        "one of three addresses set",
                        DETAILS[0],
                        addr,
                    ),
                    result("svc", Pass, 1.0, 1.0, "ok", "", svc),
                    result(
                        "web",
                        Fail,
                        0.0,
                        1.5,
                        "the page says \"Bad & 'worse'\"\nsecond line",
                        DETAILS[3],
                        web,
                    ),
                    result("dns", Skipped, 0.0, 1.0, "requires web (fail)", "", None),
                ],
            ),
        ],
    }
}
