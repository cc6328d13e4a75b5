//! The student roster: a CSV with a `name` column (optional `id` and `email` columns), and
//! the DNS-safe host names made from the names.
//!
//! Host names fold accents and other scripts to ASCII (`deunicode`: "Zoë Müller" →
//! `zoe-muller`, "Łukasz" → `lukasz`), keep letters and digits, turn everything else into
//! single `-`, and are at most 63 characters. Equal results are numbered in roster order
//! (`zoe-muller`, `zoe-muller-2`, …). The sheet keeps the original names.
//!
//! Names, ids and e-mail addresses end up in line-based output (`lab ips` for
//! `/etc/hosts`, tables) and in spreadsheets (CSV), so they are checked here: no control
//! characters (newline, tab, ESC, …) and no leading `=`, `+`, `-` or `@` (a spreadsheet
//! formula). The outputs escape as well, for values that come from elsewhere.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// One student as the roster gives them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Student {
    /// The name as written (accents and all).
    pub name: String,
    /// A school id, if the roster has one.
    #[serde(default)]
    pub id: Option<String>,
    /// An e-mail address, if the roster has one.
    #[serde(default)]
    pub email: Option<String>,
    /// Every other column (header lower-cased → value), for the checks' `{{column}}`
    /// values; not shown in the sheets.
    #[serde(flatten, default, skip_serializing, deserialize_with = "scalars")]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// Inline roster values (`vlan = 10`, `domain = "s1.lab"`) as text; a table or list is
/// refused naming the key.
fn scalars<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let raw = std::collections::BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "student value `{k}` is a {}; allowed: text, a number or true/false",
                        other.type_str()
                    )))
                }
            };
            Ok((k.to_lowercase(), text))
        })
        .collect()
}

/// A student with the host name made for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    /// The student.
    #[serde(flatten)]
    pub student: Student,
    /// Their machine's host name.
    pub hostname: String,
}

/// Reads a roster CSV: a header line with a `name` column (any case); `id` and `email` are
/// optional; other columns (a VLAN, a domain, an address per student) are kept as the
/// checks' `{{column}}` values, the header lower-cased.
pub fn read(path: &Path) -> anyhow::Result<Vec<Student>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::fail::usage(format!("reading the roster {}: {e}", path.display())))?;
    parse(&text).map_err(|e| crate::fail::usage(format!("roster {}: {e}", path.display())))
}

/// Parses roster CSV text (see [`read`]).
pub fn parse(text: &str) -> Result<Vec<Student>, String> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = r.headers().map_err(|e| e.to_string())?.clone();
    let col = |want: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(want))
    };
    let name = col("name").ok_or_else(|| {
        format!(
            "no `name` column (columns: {}); the first line must name the columns, e.g. \
             name,id,email",
            headers.iter().collect::<Vec<_>>().join(", ")
        )
    })?;
    let (id, email) = (col("id"), col("email"));
    let mut students = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("line {}: {e}", i + 2))?;
        let get = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(n) = get(Some(name)) else {
            return Err(format!("line {}: the name is empty", i + 2));
        };
        let line = rec
            .position()
            .and_then(|p| usize::try_from(p.line()).ok())
            .unwrap_or(i + 2);
        let extra = headers
            .iter()
            .enumerate()
            .filter(|(c, _)| ![Some(name), id, email].contains(&Some(*c)))
            // An empty cell is no value (as for `id` and `email`): a check that needs it
            // says so for that student instead of using "".
            .filter(|(c, _)| rec.get(*c).is_some_and(|v| !v.is_empty()))
            .map(|(c, h)| {
                let key = h.trim_start_matches('\u{feff}').trim().to_lowercase();
                (key, rec.get(c).unwrap_or_default().to_owned())
            })
            .collect();
        let student = Student {
            name: n,
            id: get(id),
            email: get(email),
            extra,
        };
        check(&student, &format!("line {line}"))?;
        students.push(student);
    }
    if students.is_empty() {
        return Err("no students (only a header line)".to_owned());
    }
    Ok(students)
}

/// Checks one student's name, id and e-mail (see the module's notes); `at` says where the
/// student is written (`line 3`, `students[2]`).
pub fn check(student: &Student, at: &str) -> Result<(), String> {
    check_text("name", &student.name, at)?;
    for (what, v) in [("id", &student.id), ("email", &student.email)] {
        if let Some(v) = v {
            check_text(what, v, at)?;
        }
    }
    Ok(())
}

/// A character that may not be in a roster value: a control character (newline, tab,
/// ESC, …) or a bidirectional-text control (U+202E and friends), which reorders what a
/// terminal or spreadsheet shows.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || pve_access::sheet::is_bidi_control(c)
}

/// A roster value that is safe in line-based output and in a spreadsheet.
fn check_text(what: &str, value: &str, at: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{at}: the {what} is empty"));
    }
    if let Some(c) = value.chars().find(|c| is_forbidden(*c)) {
        return Err(format!(
            "{at}: the {what} {value:?} contains the control character {:?}; names \
             may not contain newlines, tabs, escape or text-direction characters",
            c
        ));
    }
    if value.starts_with(['=', '+', '-', '@']) {
        return Err(format!(
            "{at}: the {what} {value:?} starts with {:?}, which a spreadsheet runs as a \
             formula; remove it",
            value.chars().next().unwrap_or_default()
        ));
    }
    Ok(())
}

/// The DNS label for a name, before collisions are numbered.
fn label(name: &str) -> String {
    let ascii = deunicode::deunicode(name).to_ascii_lowercase();
    let mut out = String::new();
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_owned();
    out.truncate(MAX_LABEL);
    out.trim_end_matches('-').to_owned()
}

/// Host names for the students, in order: folded, cleaned, collisions numbered; a name with
/// nothing left (`"???"`) becomes `student-<n>`. `prefix` (e.g. `exam1-`) goes in front.
pub fn hostnames(students: &[Student], prefix: &str) -> Vec<Named> {
    let mut used = BTreeSet::new();
    let mut out = Vec::with_capacity(students.len());
    for (i, s) in students.iter().enumerate() {
        let mut base = format!("{prefix}{}", label(&s.name));
        if base.is_empty() || base.ends_with('-') {
            base = format!("{prefix}student-{}", i + 1);
        }
        base.truncate(MAX_LABEL);
        let base = base.trim_end_matches('-').to_owned();
        let mut candidate = base.clone();
        let mut n = 2;
        while used.contains(&candidate) {
            let suffix = format!("-{n}");
            let mut stem = base.clone();
            stem.truncate(MAX_LABEL - suffix.len());
            candidate = format!("{}{suffix}", stem.trim_end_matches('-'));
            n += 1;
        }
        used.insert(candidate.clone());
        out.push(Named {
            student: s.clone(),
            hostname: candidate,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_distinct_dns_labels() {
        let students = parse(
            "Name,Email,Id\nZoë Müller,zoe@school.example,17\nZoe Muller,,\n\"O'Brien, Seán\",,\n\
             ???,,\nŁukasz Żółć,,\nZoë Müller,,\n",
        )
        .unwrap();
        assert_eq!(students[0].email.as_deref(), Some("zoe@school.example"));
        assert_eq!(students[0].id.as_deref(), Some("17"));
        assert_eq!(students[1].email, None);
        let names: Vec<String> = hostnames(&students, "")
            .into_iter()
            .map(|n| n.hostname)
            .collect();
        assert_eq!(
            names,
            [
                "zoe-muller",
                "zoe-muller-2",
                "o-brien-sean",
                "student-4",
                "lukasz-zolc",
                "zoe-muller-3"
            ]
        );
        let long = Student {
            name: "a".repeat(80),
            id: None,
            email: None,
            extra: Default::default(),
        };
        let two = hostnames(&[long.clone(), long], "x-");
        assert_eq!(two[0].hostname.len(), 63);
        assert!(two[1].hostname.ends_with("-2") && two[1].hostname.len() == 63);
    }

    #[test]
    fn bad_rosters_say_what_is_wrong() {
        assert!(parse("email\na@b\n")
            .unwrap_err()
            .contains("no `name` column"));
        assert!(parse("name\n").unwrap_err().contains("no students"));
        assert!(parse("name,id\nAl,1\n,2\n").unwrap_err().contains("line 3"));
        let e = parse("name\nAl\n\"Eve\nEvil\"\n").unwrap_err();
        assert!(
            e.contains("line 3") && e.contains("control character"),
            "{e}"
        );
        let e = parse("name\nAl\tTab\n").unwrap_err();
        assert!(e.contains("control character '\\t'"), "{e}");
        let e = parse("name\n\u{1b}[31mRed\n").unwrap_err();
        assert!(e.contains("control character"), "{e}");
        let e = parse("name,email\n=HYPERLINK(\"http://x\"),\n").unwrap_err();
        assert!(e.contains("formula"), "{e}");
        let e = parse("name,email\nAl,@evil\n").unwrap_err();
        assert!(e.contains("email"), "{e}");
        let e = parse("name\nAl\u{202e}fdp.exe\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("control character"),
            "{e}"
        );
    }
}
