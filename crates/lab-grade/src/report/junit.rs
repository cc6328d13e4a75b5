//! The grade sheet as JUnit XML.

use std::fmt::Write as _;

use super::escape::xml;
use super::{format_points, result, title};
use crate::sheet::{CheckResult, Outcome, Sheet};

/// The sheet as JUnit XML, for CI dashboards and tools that read test reports:
/// `<testsuites>` holding one `<testsuite name="student" hostname="…">` per student with
/// its points as properties, and in it one `<testcase classname="hostname"
/// name="check id: title">` per check of the sheet. A fail holds
/// `<failure message="message">detail</failure>`, an error `<error message=…>detail</error>`,
/// a skipped check `<skipped message=…/>`; the probe and its request are in
/// `<system-out>`. `tests`, `failures`, `errors` and `skipped` are counted on both levels
/// (a check the sheet has no result for counts as an error). Every value is escaped, and
/// characters XML 1.0 cannot carry are shown as `\u{1b}`. This is the teacher's view.
pub fn junit(sheet: &Sheet) -> String {
    let mut suites = String::new();
    let mut total = Counts::default();
    for s in &sheet.students {
        let mut cases = String::new();
        let mut counts = Counts::default();
        for info in &sheet.checks {
            let r = result(s, &info.id);
            counts.add(r.map(|r| r.outcome));
            let name = format!("{}: {}", info.id, title(sheet, &info.id));
            let _ = write!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&s.hostname),
                xml(&name)
            );
            match r {
                Some(r) => case_body(&mut cases, r),
                None => cases.push_str(
                    ">\n      <error message=\"the sheet has no result of this check\"/>\n    </testcase>\n",
                ),
            }
        }
        total.merge(&counts);
        let _ = write!(
            suites,
            "  <testsuite name=\"{}\" hostname=\"{}\" {}>\n    <properties>\n",
            xml(&s.student),
            xml(&s.hostname),
            counts.attrs()
        );
        for (k, v) in [
            ("vmid", s.vmid.to_string()),
            ("points", format_points(s.points)),
            ("max_points", format_points(s.max_points)),
        ] {
            let _ = writeln!(
                suites,
                "      <property name=\"{k}\" value=\"{}\"/>",
                xml(&v)
            );
        }
        for p in &s.problems {
            let _ = writeln!(
                suites,
                "      <property name=\"problem\" value=\"{}\"/>",
                xml(p)
            );
        }
        suites.push_str("    </properties>\n");
        suites.push_str(&cases);
        suites.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" {}>\n{suites}</testsuites>\n",
        xml(&sheet.lab),
        total.attrs()
    )
}

/// The rest of a `<testcase` element for one result.
fn case_body(out: &mut String, r: &CheckResult) {
    let element = match r.outcome {
        Outcome::Pass => None,
        Outcome::Fail => Some("failure"),
        Outcome::Error => Some("error"),
        Outcome::Skipped => Some("skipped"),
    };
    let probe = match (&r.probe, &r.request) {
        (Some(p), Some(q)) => format!("probe {p}: {q}"),
        (Some(p), None) => format!("probe {p}"),
        (None, Some(q)) => q.clone(),
        (None, None) => String::new(),
    };
    if element.is_none() && probe.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    if let Some(e) = element {
        let _ = write!(out, "      <{e} message=\"{}\"", xml(&r.message));
        if r.detail.is_empty() {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(out, ">{}</{e}>", xml(&r.detail));
        }
    }
    if !probe.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&probe));
    }
    out.push_str("    </testcase>\n");
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl Counts {
    fn add(&mut self, outcome: Option<Outcome>) {
        self.tests += 1;
        match outcome {
            Some(Outcome::Pass) => {}
            Some(Outcome::Fail) => self.failures += 1,
            Some(Outcome::Error) | None => self.errors += 1,
            Some(Outcome::Skipped) => self.skipped += 1,
        }
    }

    fn merge(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }

    fn attrs(&self) -> String {
        format!(
            "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
            self.tests, self.failures, self.errors, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn junit_has_a_suite_per_student_and_a_case_per_check() {
        let x = junit(&fixture::class());
        assert!(x.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <testsuites name=\"exam1\" tests=\"12\" failures=\"4\" errors=\"1\" skipped=\"2\">\n"
        ));
        assert!(x.ends_with("</testsuites>\n"));
        assert_eq!(x.matches("<testsuite ").count(), 3);
        assert_eq!(x.matches("<testcase ").count(), 12);
        let bo = [
            "  <testsuite name=\"Bo Berg\" hostname=\"pc02\" tests=\"4\" failures=\"2\" errors=\"1\" skipped=\"1\">",
            "    <properties>",
            "      <property name=\"vmid\" value=\"5002\"/>",
            "      <property name=\"points\" value=\"0\"/>",
            "      <property name=\"max_points\" value=\"5.5\"/>",
            "    </properties>",
            "    <testcase classname=\"pc02\" name=\"addr: ens18 has 192.168.10.10/24\">",
            "      <failure message=\"ens18 has no static address\">expected includes [&quot;192.168.10.10&quot;], found [&quot;192.168.10.99&quot;] (probe addr, json)</failure>",
            "      <system-out>probe addr: /usr/sbin/ip -j addr show dev ens18</system-out>",
            "    </testcase>",
        ]
        .join("\n");
        assert!(x.contains(&bo), "{x}");
        assert!(x.contains(
            "      <error message=\"the probe could not run: exec status lost\">evidence web.json: exec status lost after 5 s</error>\n"
        ), "{x}");
        assert!(x.contains(
            "    <testcase classname=\"pc02\" name=\"dns: www resolves to the web server\">\n      <skipped message=\"requires web (error)\"/>\n    </testcase>\n"
        ), "{x}");
        assert!(x.contains(
            "    <testcase classname=\"pc01\" name=\"svc: nginx is active\">\n      <system-out>probe svc: systemctl is-active nginx.service</system-out>\n    </testcase>\n"
        ), "{x}");
    }

    #[test]
    fn junit_escapes_markup_quotes_and_control_characters() {
        let x = junit(&fixture::class());
        assert!(
            x.contains("<testsuite name=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
            "{x}"
        );
        assert!(x.contains(
            "<failure message=\"the page says &quot;Bad &amp; &apos;worse&apos;&quot;&#xa;second line\">"
        ), "{x}");
        let mut sheet = fixture::class();
        sheet.students[0].student = "<&>\"'\u{0}\u{1b}\u{7f}\t]]>".into();
        sheet.students[0].checks[0].outcome = Outcome::Fail;
        sheet.students[0].checks[0].detail = "a</failure><x>\u{8}".into();
        let x = junit(&sheet);
        assert!(
            x.contains("name=\"&lt;&amp;&gt;&quot;&apos;\\u{0}\\u{1b}&#x7f;&#x9;]]&gt;\""),
            "{x}"
        );
        assert!(
            x.contains(">a&lt;/failure&gt;&lt;x&gt;\\u{8}</failure>"),
            "{x}"
        );
        assert!(!x.contains('\u{0}') && !x.contains('\u{1b}') && !x.contains('\u{8}'));
    }

    #[test]
    fn junit_counts_a_missing_result_as_an_error() {
        let mut sheet = fixture::class();
        sheet.students[0].checks.pop();
        let x = junit(&sheet);
        assert!(x.contains("<testsuites name=\"exam1\" tests=\"12\" failures=\"4\" errors=\"2\" skipped=\"2\">"), "{x}");
        assert!(
            x.contains("<error message=\"the sheet has no result of this check\"/>"),
            "{x}"
        );
    }
}
