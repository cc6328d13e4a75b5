//! The lab as a file: a TOML lab spec, merged with the flags (flags win).
//!
//! Every field, with its default (`examples/exam.toml` is a commented copy):
//!
//! | field | meaning | default |
//! |---|---|---|
//! | `name` | lab name: 1-14 characters, a lower-case letter then lower-case letters, digits or `-`; names the pool, the tag `labctl.<name>` and the fence | required |
//! | `template` | VMID of the template every student is cloned from | required |
//! | `count` | number of students, 1-500 (not with a roster) | required without a roster |
//! | `roster` | CSV file of students (a `name` column, optional `id`, `email`), relative to the TOML file | none |
//! | `students` | the roster inline: `[{ name = "Zoë Müller", email = "…" }, …]` | none |
//! | `hostname_prefix` | put in front of the host names made from a roster, e.g. `"exam1-"` | `""` |
//! | `ids` | ids the students may take, `FIRST-LAST`; the lowest free ones are used | `"5000-5999"` |
//! | `hostname` | host name pattern without a roster: letters, digits, `-` and `{n}` or `{n:02}` | `"<name>-{n:02}"` |
//! | `teachers` | addresses the students may reach; empty = not fenced | `[]` |
//! | `clone` | `"linked"` or `"full"` | `"linked"` |
//! | `concurrency` | students processed at the same time, 1-64 | `4` |
//! | `[timeouts] ready` | seconds to wait for a student's guest agent, 1-86400 | `300` |
//! | `[timeouts] address` | seconds to wait for its address once the agent answers, 1-86400 | `120` |

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lab_core::{CloneMode, HostnamePattern, IdRange, LabName, LabSpec, Timeouts, VmId};
use serde::Deserialize;

use crate::fail;
use crate::roster::{self, Named, Student};

/// The TOML file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    /// Lab name.
    pub name: Option<String>,
    /// Template VMID.
    pub template: Option<u32>,
    /// Number of students.
    pub count: Option<u32>,
    /// Roster CSV, relative to the file.
    pub roster: Option<PathBuf>,
    /// Inline roster.
    pub students: Option<Vec<Student>>,
    /// Prefix of roster host names.
    pub hostname_prefix: Option<String>,
    /// `FIRST-LAST`.
    pub ids: Option<String>,
    /// Host name pattern.
    pub hostname: Option<String>,
    /// Teacher addresses.
    #[serde(default)]
    pub teachers: Vec<IpAddr>,
    /// `linked` or `full`.
    pub clone: Option<CloneKind>,
    /// Concurrency.
    pub concurrency: Option<usize>,
    /// Waits.
    #[serde(default)]
    pub timeouts: FileTimeouts,
}

/// `clone = "linked" | "full"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloneKind {
    /// Linked clones.
    Linked,
    /// Full clones.
    Full,
}

/// `[timeouts]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    /// Seconds.
    pub ready: Option<u64>,
    /// Seconds.
    pub address: Option<u64>,
}

impl LabFile {
    /// Reads and parses a lab file; errors name the file and the field.
    pub fn read(path: &Path) -> anyhow::Result<(LabFile, PathBuf)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the lab file {}", path.display()))?;
        let file: LabFile = toml::from_str(&text)
            .map_err(|e| fail::usage(format!("lab file {}: {e}", path.display())))?;
        let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
        Ok((file, dir))
    }
}

/// The flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `-n`.
    pub name: Option<String>,
    /// `-t`.
    pub template: Option<String>,
    /// `-c`.
    pub count: Option<u32>,
    /// `--roster`.
    pub roster: Option<PathBuf>,
    /// `--ids`.
    pub ids: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--teacher` (replaces the file's list when given).
    pub teachers: Vec<IpAddr>,
    /// `--full`.
    pub full: bool,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
    /// `--ready-timeout`.
    pub ready_timeout: Option<u64>,
}

/// A checked lab: the engine's spec, and who sits at which host name.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The spec for the engine.
    pub spec: LabSpec,
    /// Students with host names, when a roster was given (the sheet's STUDENT column).
    pub roster: Option<Vec<Named>>,
}

fn secs(what: &'static str, v: u64) -> anyhow::Result<Duration> {
    if !(1..=86_400).contains(&v) {
        return Err(lab_core::Error::invalid(what, v.to_string(), "seconds, 1 to 86400").into());
    }
    Ok(Duration::from_secs(v))
}

/// Only the lab's name, from the flag or the file (for status, ips, down).
pub fn lab_name(flag: Option<&str>, file: Option<&LabFile>) -> anyhow::Result<LabName> {
    let name = flag
        .map(str::to_owned)
        .or_else(|| file.and_then(|f| f.name.clone()))
        .ok_or_else(|| {
            fail::usage("no lab name: give a lab file (LAB.toml) or -n/--name (or LABCTL_LAB)")
        })?;
    Ok(LabName::new(&name)?)
}

/// The students of the flag's or the file's roster, with host names.
pub fn roster_of(
    file: Option<&(LabFile, PathBuf)>,
    flag: Option<&Path>,
) -> anyhow::Result<Option<Vec<Named>>> {
    let prefix = file
        .and_then(|(f, _)| f.hostname_prefix.clone())
        .unwrap_or_default();
    let students = if let Some(p) = flag {
        Some(roster::read(p)?)
    } else if let Some((f, dir)) = file {
        match (&f.roster, &f.students) {
            (Some(_), Some(_)) => {
                return Err(fail::usage(
                    "the lab file gives both `roster` and `students`: keep one",
                ))
            }
            (Some(r), None) => Some(roster::read(&dir.join(r))?),
            (None, Some(s)) if s.is_empty() => {
                return Err(fail::usage("the lab file's `students` list is empty"))
            }
            (None, Some(s)) => Some(s.clone()),
            (None, None) => None,
        }
    } else {
        None
    };
    Ok(students.map(|s| roster::hostnames(&s, &prefix)))
}

/// Merges file and flags into a checked spec; fails on bad input before anything is
/// contacted.
pub fn resolve(file: Option<&(LabFile, PathBuf)>, o: &Overrides) -> anyhow::Result<Lab> {
    let f = file.map(|(f, _)| f.clone()).unwrap_or_default();
    let name = lab_name(o.name.as_deref(), file.map(|(f, _)| f))?;
    let template: VmId = match (&o.template, f.template) {
        (Some(t), _) => t.parse()?,
        (None, Some(t)) => VmId::new(t)?,
        (None, None) => {
            return Err(fail::usage(
                "no template: give `template = VMID` in the lab file or -t/--template",
            ))
        }
    };
    let roster = roster_of(file, o.roster.as_deref())?;
    let count = match (&roster, o.count.or(f.count)) {
        (Some(r), Some(c)) if c as usize != r.len() => {
            return Err(lab_core::Error::invalid(
                "count",
                c.to_string(),
                format!(
                    "the roster has {} students; drop count or make them agree",
                    r.len()
                ),
            )
            .into())
        }
        (Some(r), _) => u32::try_from(r.len()).unwrap_or(u32::MAX),
        (None, Some(c)) => c,
        (None, None) => return Err(fail::usage(
            "no students: give `count` or a `roster` in the lab file, or -c/--count or --roster",
        )),
    };
    let ids: IdRange = o
        .ids
        .clone()
        .or(f.ids.clone())
        .unwrap_or_else(|| "5000-5999".to_owned())
        .parse()?;
    let hostname = match o.hostname.clone().or(f.hostname.clone()) {
        Some(p) => HostnamePattern::new(&p)?,
        None => HostnamePattern::new(&format!("{name}-{{n:02}}"))?,
    };
    let clone_mode = if o.full || f.clone == Some(CloneKind::Full) {
        CloneMode::Full
    } else {
        CloneMode::Linked
    };
    let mut timeouts = Timeouts::default();
    if let Some(r) = o.ready_timeout.or(f.timeouts.ready) {
        timeouts.ready = secs("ready timeout", r)?;
    }
    if let Some(a) = f.timeouts.address {
        timeouts.address = secs("address timeout", a)?;
    }
    let spec = LabSpec {
        name,
        template,
        count,
        ids,
        hostname,
        names: roster
            .as_ref()
            .map(|r| r.iter().map(|n| n.hostname.clone()).collect()),
        teachers: if o.teachers.is_empty() {
            f.teachers.clone()
        } else {
            o.teachers.clone()
        },
        clone_mode,
        concurrency: o.concurrency.or(f.concurrency).unwrap_or(4),
        timeouts: match crate::connect::time_scale()? {
            Some(s) => timeouts.scaled(s),
            None => timeouts,
        },
    };
    spec.validate()?;
    Ok(Lab { spec, roster })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (LabFile, PathBuf) {
        (toml::from_str(text).unwrap(), PathBuf::from("."))
    }

    #[test]
    fn the_example_file_parses_and_flags_override_it() {
        let example = include_str!("../../../examples/exam.toml");
        let f = file(example);
        let lab = resolve(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(lab.spec.name.as_str(), "exam1");
        assert_eq!(lab.spec.template.get(), 9000);
        assert_eq!(lab.spec.teachers, ["10.10.0.1".parse::<IpAddr>().unwrap()]);
        let o = Overrides {
            count: Some(2),
            name: Some("other".into()),
            teachers: vec!["10.9.9.9".parse().unwrap()],
            full: true,
            ..Overrides::default()
        };
        let lab = resolve(Some(&f), &o).unwrap();
        assert_eq!(lab.spec.count, 2);
        assert_eq!(lab.spec.name.as_str(), "other");
        assert_eq!(lab.spec.teachers, ["10.9.9.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(lab.spec.clone_mode, CloneMode::Full);
    }

    #[test]
    fn inline_rosters_name_the_hosts_and_bad_fields_are_named() {
        let f = file(
            "name = \"exam2\"\ntemplate = 9000\nhostname_prefix = \"e2-\"\n\
             students = [{ name = \"Zoë Müller\" }, { name = \"Zoe Muller\", email = \"z@x\" }]\n",
        );
        let lab = resolve(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(lab.spec.count, 2);
        assert_eq!(
            lab.spec.names.as_deref().unwrap(),
            ["e2-zoe-muller", "e2-zoe-muller-2"]
        );
        assert_eq!(lab.roster.unwrap()[0].student.name, "Zoë Müller");
        let e = toml::from_str::<LabFile>("name = \"x\"\ntemplat = 9000\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `templat`"), "{e}");
        let f = file("name = \"x\"\ntemplate = 9000\ncount = 2\n[timeouts]\nready = 0\n");
        let e = resolve(Some(&f), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ready timeout") && e.contains("1 to 86400"),
            "{e}"
        );
        let f = file("name = \"x\"\ntemplate = 9000\n");
        let e = resolve(Some(&f), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no students"), "{e}");
    }
}
