//! `{{name}}` values in a spec's strings (probe requests, titles, messages, expectations).
//!
//! A template is parsed once, when the spec is read, so a `{{` without its `}}` is a spec
//! error before any student is seen; it is rendered per student from [`StudentInfo::vars`]
//! (plus `student`, `hostname`, `vmid` and `node` from the [`StudentInfo`] itself when the
//! map lacks them). `{{{{` writes a literal `{{` (for a program's own templates, e.g.
//! `docker inspect -f '{{{{.State.Status}}'`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::evidence::StudentInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A string with `{{name}}` holes, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    raw: String,
    parts: Vec<Part>,
}

/// A value the template names that the student does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    /// The name between the braces.
    pub name: String,
    /// The names that exist, for the message.
    pub known: Vec<String>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value {{{{{}}}}} (known: {}; write `{{{{{{{{` for a literal `{{{{`)",
            self.name,
            if self.known.is_empty() {
                "none".to_owned()
            } else {
                self.known.join(", ")
            }
        )
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl Template {
    /// Parses `raw`; the error says where the unclosed or empty `{{` is.
    pub(crate) fn parse(raw: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < raw.len() {
            let rest = &raw[i..];
            if rest.starts_with("{{{{") {
                lit.push_str("{{");
                i += 4;
            } else if rest.starts_with("{{{") {
                // `{{{name}}}`: the first brace is text, the hole starts at the next one.
                lit.push('{');
                i += 1;
            } else if let Some(after) = rest.strip_prefix("{{") {
                let Some(end) = after.find("}}") else {
                    return Err(format!(
                        "`{{{{` at character {} has no closing `}}}}` (write `{{{{{{{{` for a literal `{{{{`)",
                        raw[..i].chars().count() + 1
                    ));
                };
                let name = after[..end].trim();
                if name.is_empty() || name.contains('{') {
                    return Err(format!(
                        "`{{{{{}}}}}` at character {} does not name a value (a roster column, student, hostname, vmid, node, ip, teacher_ip)",
                        &after[..end],
                        raw[..i].chars().count() + 1
                    ));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(name.to_owned()));
                i += 2 + end + 2;
            } else {
                let c = rest.chars().next().unwrap_or_default();
                lit.push(c);
                i += c.len_utf8().max(1);
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            raw: raw.to_owned(),
            parts,
        })
    }

    /// The empty text.
    pub(crate) fn empty() -> Template {
        Template {
            raw: String::new(),
            parts: Vec::new(),
        }
    }

    /// The text as written in the spec.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether no `{{name}}` occurs (the text is the same for every student).
    pub(crate) fn is_literal(&self) -> bool {
        !self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// The names used, in order of appearance.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(n) => Some(n.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// The text with every `{{name}}` replaced by its value.
    pub(crate) fn render(&self, vars: &Vars) -> Result<String, Missing> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(n) => match vars.0.get(n) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(Missing {
                            name: n.clone(),
                            known: vars.0.keys().cloned().collect(),
                        })
                    }
                },
            }
        }
        Ok(out)
    }

    /// The text of a template without holes (its literal parts joined).
    pub(crate) fn literal(&self) -> String {
        self.render(&Vars::default())
            .unwrap_or_else(|_| self.raw.clone())
    }
}

/// The values a student's templates are filled from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Vars(BTreeMap<String, String>);

impl Vars {
    /// The student's `vars`, plus `student`, `hostname`, `vmid` and `node` from the
    /// record itself where `vars` lacks them.
    pub(crate) fn of(s: &StudentInfo) -> Vars {
        let mut m = s.vars.clone();
        m.entry("student".into()).or_insert_with(|| s.name.clone());
        m.entry("hostname".into())
            .or_insert_with(|| s.hostname.clone());
        m.entry("vmid".into()).or_insert_with(|| s.vmid.to_string());
        m.entry("node".into()).or_insert_with(|| s.node.clone());
        Vars(m)
    }

    /// Whether a value of this name exists.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn parsing_any_shape_of_braces_finishes_and_a_hang_names_its_input() {
        // The parser walks indices by hand: a slip there loops forever. Each input is
        // parsed on its own thread under this test's own limit, so a hang fails here,
        // naming the input, instead of stalling the suite.
        let inputs = [
            "",
            "{",
            "}",
            "{{",
            "}}",
            "{{}}",
            "{{{",
            "}}}",
            "{{{{",
            "{{{{{",
            "a{{b",
            "a{{b}}c",
            "{{a}}{{b}}",
            "{{ a }}",
            "{{{a}}}",
            "{{{{a}}",
            "x}}y{{z",
            "é{{ä}}ö",
            "{{a}",
        ];
        for input in inputs {
            let (tx, rx) = std::sync::mpsc::channel();
            let owned = input.to_owned();
            std::thread::spawn(move || {
                let _ = tx.send(Template::parse(&owned).is_ok());
            });
            assert!(
                rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
                "Template::parse({input:?}) did not finish within 10 s"
            );
        }
    }

    #[test]
    fn names_are_replaced_by_the_students_values() {
        let t = Template::parse("192.168.{{vlan}}.{{ host }}/24").unwrap();
        assert!(!t.is_literal());
        assert_eq!(t.names().collect::<Vec<_>>(), ["vlan", "host"]);
        let v = vars(&[("vlan", "10"), ("host", "5")]);
        assert_eq!(t.render(&v).unwrap(), "192.168.10.5/24");
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it_and_the_known_ones() {
        let t = Template::parse("www.{{domain}}").unwrap();
        let e = t.render(&vars(&[("vlan", "10")])).unwrap_err();
        assert_eq!(e.name, "domain");
        let msg = e.to_string();
        assert!(msg.contains("{{domain}}") && msg.contains("vlan"), "{msg}");
    }

    #[test]
    fn an_unclosed_or_empty_hole_is_a_parse_error() {
        let e = Template::parse("a {{vlan").unwrap_err();
        assert!(e.contains("character 3") && e.contains("no closing"), "{e}");
        assert!(Template::parse("a {{ }} b").is_err());
    }

    #[test]
    fn four_braces_write_two_and_single_braces_are_text() {
        let t = Template::parse("docker inspect -f '{{{{.State.Status}}'").unwrap();
        assert!(t.is_literal());
        assert_eq!(
            t.render(&Vars::default()).unwrap(),
            "docker inspect -f '{{.State.Status}}'"
        );
        let j = Template::parse("{\"vlan\":{{{vlan}}}}").unwrap();
        assert_eq!(j.render(&vars(&[("vlan", "7")])).unwrap(), "{\"vlan\":{7}}");
        let plain = Template::parse("} { x }").unwrap();
        assert_eq!(plain.literal(), "} { x }");
    }

    #[test]
    fn student_fields_fill_in_when_vars_lack_them() {
        let s = StudentInfo {
            key: "s01".into(),
            name: "Ada".into(),
            hostname: "s01".into(),
            vmid: 5001,
            node: "pve1".into(),
            vars: BTreeMap::from([("student".to_owned(), "Ada L.".to_owned())]),
        };
        let t = Template::parse("{{student}} {{hostname}} {{vmid}} {{node}}").unwrap();
        assert_eq!(t.render(&Vars::of(&s)).unwrap(), "Ada L. s01 5001 pve1");
    }
}
