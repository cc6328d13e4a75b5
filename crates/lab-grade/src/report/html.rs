//! The grade sheet as a static HTML report.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::escape::html as esc;
use super::{format_points, result, stats, title};
use crate::sheet::{CheckResult, Outcome, Sheet, StudentGrade};

/// The style of every page: inline, no external assets.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5em;color:#111;background:#fff}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#eee}\
td.n{text-align:right}\
.msg{white-space:pre-wrap}\
pre{margin:0;white-space:pre-wrap;max-width:60em}\
.pass{background:#d9f2d9}.fail{background:#f8d4d4}.error{background:#fde7b0}.skipped{background:#e4e4e4;color:#555}\
.warn{background:#fff3cd}\
code{font-size:.95em}";

/// Writes a static report of `sheet` into `dir` (created if missing) and returns the
/// files written, in this order:
///
/// - `index.html`: the class overview for the teacher: students × checks (points, `E`
///   for an error, `-` for skipped, coloured by outcome), totals, per-check statistics
///   and the warnings of [`stats`](super::stats());
/// - per student, `<hostname>.html`: the teacher's view of every check (outcome, points,
///   message, detail, the probe and its request) and the student's evidence problems;
/// - per student, `student/<hostname>.html`: the view to hand to the student, with each
///   check's title, outcome, points and message only, never its request or detail.
///
/// The pages need no JavaScript (they forbid it by a content security policy) and load
/// nothing from elsewhere; every value is HTML-escaped. The same sheet gives the same
/// bytes. Each file is written to a temporary name and renamed into place; files of an
/// earlier report that this sheet does not write are left alone.
///
/// # Errors
/// `InvalidInput`, before anything is written, when a host name cannot name a page: it
/// must be a DNS name (letters, digits, `-`, labels separated by `.`), must not be
/// `index` (the overview's name), and host names must differ ignoring case. Otherwise
/// the I/O error of the directory or file that failed.
pub fn html(sheet: &Sheet, dir: &Path) -> io::Result<Vec<PathBuf>> {
    check_hostnames(sheet)?;
    let student_dir = dir.join("student");
    fs::create_dir_all(&student_dir).map_err(|e| at(&student_dir, e))?;
    let mut written = Vec::with_capacity(1 + 2 * sheet.students.len());
    let index = dir.join("index.html");
    write(&index, &overview(sheet))?;
    written.push(index);
    for s in &sheet.students {
        let teacher = dir.join(format!("{}.html", s.hostname));
        write(&teacher, &teacher_page(sheet, s))?;
        written.push(teacher);
        let own = student_dir.join(format!("{}.html", s.hostname));
        write(&own, &student_page(sheet, s))?;
        written.push(own);
    }
    Ok(written)
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `text` to a temporary file beside `path` and renames it into place.
fn write(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    fs::write(&tmp, text).map_err(|e| at(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        at(path, e)
    })
}

/// Every host name names a page of its own inside the report directory.
fn check_hostnames(sheet: &Sheet) -> io::Result<()> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let mut seen = BTreeSet::new();
    for s in &sheet.students {
        let h = &s.hostname;
        let dns = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !dns {
            return Err(invalid(format!(
                "student {:?}: host name {h:?} cannot name a report page: allowed are \
                 letters, digits and '-', in labels of 1-63 separated by '.'",
                s.student
            )));
        }
        let key = h.to_ascii_lowercase();
        if key == "index" {
            return Err(invalid(format!(
                "student {:?}: host name {h:?} would overwrite the class overview \
                 index.html; rename the guest",
                s.student
            )));
        }
        if !seen.insert(key) {
            return Err(invalid(format!(
                "student {:?}: host name {h:?} is used by another student too (ignoring \
                 case); each student needs a page of their own",
                s.student
            )));
        }
    }
    Ok(())
}

/// A whole page around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// `points of max`.
fn of(points: f64, max: f64) -> String {
    format!("{} of {}", format_points(points), format_points(max))
}

/// The class overview.
fn overview(sheet: &Sheet) -> String {
    let st = stats(sheet);
    let mut b = String::new();
    let _ = writeln!(b, "<h1>{}: grades</h1>", esc(&sheet.lab));
    let max = sheet.checks.iter().map(|c| c.points).sum::<f64>();
    let _ = writeln!(
        b,
        "<p>{} students, {} checks, {} points possible, mean {} points.<br>\
         Spec sha256 <code>{}</code>.</p>",
        st.students,
        sheet.checks.len(),
        format_points(max),
        format_points(st.mean_points),
        esc(&sheet.spec_sha256)
    );
    if sheet.spec_sha256 != sheet.evidence_spec_sha256 {
        let _ = writeln!(
            b,
            "<p class=\"warn\">Re-graded: the evidence was collected with spec sha256 \
             <code>{}</code>.</p>",
            esc(&sheet.evidence_spec_sha256)
        );
    }
    if !st.warnings.is_empty() {
        b.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in &st.warnings {
            let _ = writeln!(b, "<li class=\"msg\">{}</li>", esc(w));
        }
        b.push_str("</ul>\n");
    }

    b.push_str(
        "<h2>Students</h2>\n<table>\n<thead><tr><th>Student</th><th>Host</th><th>VMID</th>\
         <th>Points</th><th>Errors</th>",
    );
    for c in &sheet.checks {
        let _ = write!(b, "<th title=\"{}\">{}</th>", esc(&c.title), esc(&c.id));
    }
    b.push_str("<th>Student view</th></tr></thead>\n<tbody>\n");
    for s in &sheet.students {
        let _ = write!(
            b,
            "<tr><td><a href=\"{h}.html\">{}</a></td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td>",
            esc(&s.student),
            esc(&s.hostname),
            s.vmid,
            of(s.points, s.max_points),
            s.errors,
            h = esc(&s.hostname),
        );
        for c in &sheet.checks {
            match result(s, &c.id) {
                Some(r) => {
                    let shown = match r.outcome {
                        Outcome::Error => "E".to_owned(),
                        Outcome::Skipped => "-".to_owned(),
                        Outcome::Pass | Outcome::Fail => format_points(r.points),
                    };
                    let _ = write!(
                        b,
                        "<td class=\"n {o}\" title=\"{o}: {}\">{shown}</td>",
                        esc(&r.message),
                        o = r.outcome,
                    );
                }
                None => b.push_str("<td class=\"n\" title=\"no result\">?</td>"),
            }
        }
        let _ = writeln!(
            b,
            "<td><a href=\"student/{}.html\">student view</a></td></tr>",
            esc(&s.hostname)
        );
    }
    b.push_str(
        "</tbody>\n</table>\n<p>Points per check; E = error (the probe could not run), \
         - = skipped.</p>\n",
    );

    b.push_str(
        "<h2>Checks</h2>\n<table>\n<thead><tr><th>Check</th><th>Title</th><th>Points</th>\
         <th>Pass</th><th>Fail</th><th>Error</th><th>Skipped</th></tr></thead>\n<tbody>\n",
    );
    for (c, info) in st.checks.iter().zip(&sheet.checks) {
        let pct = |k: usize, share: f64| format!("{k} ({:.0}%)", share * 100.0);
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&c.id),
            esc(&c.title),
            format_points(info.points),
            pct(c.pass, c.pass_share),
            pct(c.fail, c.fail_share),
            pct(c.error, c.error_share),
            pct(c.skipped, c.skipped_share),
        );
    }
    b.push_str("</tbody>\n</table>\n");
    page(&format!("{}: grades", sheet.lab), &b)
}

/// One student's page for the teacher: everything the sheet knows.
fn teacher_page(sheet: &Sheet, s: &StudentGrade) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>{}: {}</h1>\n<p><a href=\"index.html\">Class overview</a> · \
         <a href=\"student/{h}.html\">Student view</a></p>",
        esc(&sheet.lab),
        esc(&s.student),
        h = esc(&s.hostname),
    );
    let _ = writeln!(
        b,
        "<table>\n<tr><th>Student</th><td>{}</td></tr>\n<tr><th>Host</th><td>{}</td></tr>\n\
         <tr><th>VMID</th><td>{}</td></tr>\n<tr><th>Points</th><td>{}</td></tr>\n\
         <tr><th>Errors</th><td>{}</td></tr>\n</table>",
        esc(&s.student),
        esc(&s.hostname),
        s.vmid,
        of(s.points, s.max_points),
        s.errors
    );
    if !s.problems.is_empty() {
        b.push_str("<h2>Evidence problems</h2>\n<ul>\n");
        for p in &s.problems {
            let _ = writeln!(b, "<li class=\"msg\">{}</li>", esc(p));
        }
        b.push_str("</ul>\n");
    }
    b.push_str(
        "<h2>Checks</h2>\n<table>\n<thead><tr><th>Check</th><th>Outcome</th><th>Points</th>\
         <th>Message</th><th>Detail</th><th>Probe</th></tr></thead>\n<tbody>\n",
    );
    for r in &s.checks {
        let probe = match (&r.probe, &r.request) {
            (Some(p), Some(q)) => format!("{}<br><code>{}</code>", esc(p), esc(q)),
            (Some(p), None) => esc(p),
            (None, Some(q)) => format!("<code>{}</code>", esc(q)),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            b,
            "<tr class=\"{o}\"><td>{}<br>{}</td><td>{o}</td><td class=\"n\">{}</td>\
             <td class=\"msg\">{}</td><td><pre>{}</pre></td><td>{probe}</td></tr>",
            esc(&r.id),
            esc(title(sheet, &r.id)),
            of(r.points, r.max_points),
            esc(&r.message),
            esc(&r.detail),
            o = r.outcome,
        );
    }
    b.push_str("</tbody>\n</table>\n");
    page(&format!("{}: {}", sheet.lab, s.student), &b)
}

/// One student's page for the student: titles, outcomes, points and messages only.
fn student_page(sheet: &Sheet, s: &StudentGrade) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>{}: {}</h1>\n<p>Points: <strong>{}</strong>.</p>",
        esc(&sheet.lab),
        esc(&s.student),
        of(s.points, s.max_points)
    );
    b.push_str(
        "<table>\n<thead><tr><th>Task</th><th>Outcome</th><th>Points</th><th>Message</th>\
         </tr></thead>\n<tbody>\n",
    );
    for r in &s.checks {
        student_row(&mut b, sheet, r);
    }
    b.push_str(
        "</tbody>\n</table>\n<p>error: the task could not be checked (this is not a fail); \
         skipped: not checked because a task it builds on was not done.</p>\n",
    );
    page(&format!("{}: {}", sheet.lab, s.student), &b)
}

/// Only the fields a student may see: no id, probe, request or detail.
fn student_row(b: &mut String, sheet: &Sheet, r: &CheckResult) {
    let _ = writeln!(
        b,
        "<tr class=\"{o}\"><td>{}</td><td>{o}</td><td class=\"n\">{}</td>\
         <td class=\"msg\">{}</td></tr>",
        esc(title(sheet, &r.id)),
        of(r.points, r.max_points),
        esc(&r.message),
        o = r.outcome,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn render(sheet: &Sheet) -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let files = html(sheet, dir.path()).unwrap();
        (dir, files)
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn html_writes_an_overview_and_two_pages_per_student() {
        let (dir, files) = render(&fixture::class());
        let rel: Vec<_> = files
            .iter()
            .map(|f| {
                f.strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            rel,
            [
                "index.html",
                "pc01.html",
                "student/pc01.html",
                "pc02.html",
                "student/pc02.html",
                "pc03.html",
                "student/pc03.html"
            ]
        );
        let mut on_disk: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        assert_eq!(
            on_disk,
            [
                "index.html",
                "pc01.html",
                "pc02.html",
                "pc03.html",
                "student"
            ]
        );

        let index = read(&files[0]);
        assert!(index.starts_with("<!DOCTYPE html>\n"));
        assert!(index.ends_with("</html>\n"));
        assert!(
            !index.contains("<script") && !index.contains("src="),
            "no scripts, no assets"
        );
        assert!(!index.contains("http://") && !index.contains("https://"));
        assert!(index.contains("<h1>exam1: grades</h1>"));
        assert!(index.contains(
            "<tr><td><a href=\"pc02.html\">Bo Berg</a></td><td>pc02</td><td class=\"n\">5002</td>\
             <td class=\"n\">0 of 5.5</td><td class=\"n\">1</td>\
             <td class=\"n fail\" title=\"fail: ens18 has no static address\">0</td>\
             <td class=\"n fail\" title=\"fail: nginx is not running\">-0.5</td>\
             <td class=\"n error\" title=\"error: the probe could not run: exec status lost\">E</td>\
             <td class=\"n skipped\" title=\"skipped: requires web (error)\">-</td>\
             <td><a href=\"student/pc02.html\">student view</a></td></tr>"
        ), "{index}");
        assert!(
            index.contains(
                "<tr><td>web</td><td>the web server answers</td><td class=\"n\">1.5</td>\
             <td class=\"n\">1 (33%)</td><td class=\"n\">1 (33%)</td><td class=\"n\">1 (33%)</td>\
             <td class=\"n\">0 (0%)</td></tr>"
            ),
            "{index}"
        );
        assert!(index.contains(
            "<li class=\"msg\">check web: error for 1 student (Bo Berg): their evidence could not be judged</li>"
        ), "{index}");
        assert!(
            index.contains("5.5 points possible, mean 2.39 points"),
            "{index}"
        );

        let teacher = read(&files[3]);
        assert!(teacher.contains(
            "<tr class=\"error\"><td>web<br>the web server answers</td><td>error</td>\
             <td class=\"n\">0 of 1.5</td><td class=\"msg\">the probe could not run: exec status lost</td>\
             <td><pre>evidence web.json: exec status lost after 5 s</pre></td>\
             <td>web<br><code>curl --max-time 5 http://10.0.5.3/index.html</code></td></tr>"
        ), "{teacher}");
        let student = read(&files[4]);
        assert!(student.contains(
            "<tr class=\"fail\"><td>nginx is active</td><td>fail</td><td class=\"n\">-0.5 of 1</td>\
             <td class=\"msg\">nginx is not running</td></tr>"
        ), "{student}");
        assert!(
            student.contains("<p>Points: <strong>0 of 5.5</strong>.</p>"),
            "{student}"
        );
    }

    #[test]
    fn the_student_view_never_shows_a_request_detail_or_probe() {
        let mut sheet = fixture::class();
        for s in &mut sheet.students {
            s.problems = vec!["addr.json changed since collected".into()];
        }
        let (_dir, files) = render(&sheet);
        let students: Vec<_> = files
            .iter()
            .filter(|f| f.parent().is_some_and(|p| p.ends_with("student")))
            .collect();
        assert_eq!(students.len(), 3);
        for f in students {
            let page = read(f);
            for secret in fixture::REQUESTS.iter().chain(&fixture::DETAILS) {
                for shown in [secret.to_string(), esc(secret)] {
                    assert!(!page.contains(&shown), "{} shows {shown:?}", f.display());
                }
            }
            for word in [
                "dns.www",
                "<code>",
                "<pre>",
                "addr.json",
                "curl",
                "192.168.10.99",
            ] {
                assert!(!page.contains(word), "{} shows {word:?}", f.display());
            }
        }
        // The teacher's pages do show them.
        let teacher = read(&files[3]);
        assert!(teacher.contains(&esc(fixture::DETAILS[0])), "{teacher}");
        assert!(teacher.contains(fixture::REQUESTS[1]), "{teacher}");
        assert!(
            teacher.contains("addr.json changed since collected"),
            "{teacher}"
        );
    }

    #[test]
    fn html_escapes_names_and_messages_from_students() {
        let mut sheet = fixture::class();
        sheet.students[2].student = "<script>alert(\"x\")</script>\u{202e}\u{1b}".into();
        let (_dir, files) = render(&sheet);
        for f in &files {
            let page = read(f);
            assert!(!page.contains("<script"), "{}: {page}", f.display());
            assert!(!page.contains("Bad & "), "{}", f.display());
            assert!(!page.contains('\u{202e}') && !page.contains('\u{1b}'));
        }
        let index = read(&files[0]);
        assert!(index.contains(
            "<a href=\"pc03.html\">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\u{202e}\\u{1b}</a>"
        ), "{index}");
        assert!(
            index.contains(
                "title=\"fail: the page says &quot;Bad &amp; &#39;worse&#39;&quot;\nsecond line\""
            ),
            "{index}"
        );
        let own = read(&files[6]);
        assert!(own.contains(
            "<td class=\"msg\">the page says &quot;Bad &amp; &#39;worse&#39;&quot;\nsecond line</td>"
        ), "{own}");
        assert!(own.contains(
            "<title>exam1: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\u{202e}\\u{1b}</title>"
        ), "{own}");
    }

    #[test]
    fn host_names_that_cannot_name_a_page_are_refused_before_writing() {
        for (bad, why) in [
            ("../etc/passwd", "cannot name a report page"),
            ("pc/01", "cannot name a report page"),
            ("", "cannot name a report page"),
            ("pc..01", "cannot name a report page"),
            ("pc 01", "cannot name a report page"),
            ("INDEX", "overwrite the class overview"),
            ("PC01", "used by another student"),
        ] {
            let mut sheet = fixture::class();
            sheet.students[2].hostname = bad.into();
            let dir = tempfile::tempdir().unwrap();
            let e = html(&sheet, dir.path()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
            let msg = e.to_string();
            assert!(
                msg.contains(why) && msg.contains("<script>"),
                "{bad}: {msg}"
            );
            assert_eq!(
                fs::read_dir(dir.path()).unwrap().count(),
                0,
                "{bad}: nothing written"
            );
        }
    }

    #[test]
    fn a_regraded_sheet_says_so_on_the_overview() {
        let (_dir, files) = render(&fixture::class());
        assert!(!read(&files[0]).contains("Re-graded"));
        let mut sheet = fixture::class();
        sheet.evidence_spec_sha256 = "b".repeat(64);
        let (_dir, files) = render(&sheet);
        let index = read(&files[0]);
        assert!(
            index.contains(&format!(
                "<p class=\"warn\">Re-graded: the evidence was collected with spec sha256 <code>{}</code>.</p>",
                "b".repeat(64)
            )),
            "{index}"
        );
    }

    #[test]
    fn html_rewrites_an_existing_report_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut sheet = fixture::class();
        html(&sheet, dir.path()).unwrap();
        sheet.students[0].student = "Ana Álvarez-Díaz".into();
        let files = html(&sheet, dir.path()).unwrap();
        assert!(read(&files[1]).contains("Ana Álvarez-Díaz"));
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, "x").unwrap();
        let e = html(&fixture::class(), &file).unwrap_err();
        assert!(e.to_string().contains("a-file"), "{e}");
    }
}
