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
//! | `backend` | `"proxmox"` or `"fosscloud"` (a classroom of thin clients, see below) | `"proxmox"` |
//! | `[snapshots] baseline` | `lab up` takes a disk snapshot `baseline` of every student once all are ready (a student that has one keeps it); `lab reset` goes back to it | `false` |
//! | `[snapshots] vmstate` | snapshots of `lab up` (baseline) and `lab freeze` (deadline) include the RAM of running guests (`lab freeze --vmstate` turns it on for one run) | `false` |
//! | `checks` | a file of `[exam]`, `[[probe]]` and `[[check]]` tables (what `lab collect`/`grade`/`check` evaluate; `crates/lab-grade/README.md`), relative to the lab file; or write those tables in the lab file itself | none |
//!
//! A FOSS-Cloud classroom (`backend = "fosscloud"`, `examples/classroom.toml`) needs only
//! `name` and a `[fosscloud]` table: `url` (the vm-manager base URL), `user` (FC4School's
//! dynvmuser; its password comes from `FC_PASSWORD` or a prompt), `pool` (the dynamic
//! pool's id), `macs` (the thin clients' MAC addresses, one seat each), and optionally
//! `realm`, `fingerprint`, `ca_file`, `allow_http`. `--url`, `--fingerprint`, `--ca-file`
//! and `--insecure` on the `lab` verbs override the file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lab_core::{CloneMode, HostnamePattern, IdRange, LabName, LabSpec, Timeouts, VmId};
use serde::Deserialize;

use crate::fail;
use crate::precedence::{self, pick, Origin, Sourced};
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
    /// Nodes new students may land on (default: every node holding the template).
    pub nodes: Option<Vec<String>>,
    /// `spread` (default) or `pack`.
    pub placement: Option<String>,
    /// Waits.
    #[serde(default)]
    pub timeouts: FileTimeouts,
    /// `[snapshots]`: the baseline `lab up` takes, RAM or not.
    #[serde(default)]
    pub snapshots: SnapshotSettings,
    /// Which backend runs the lab.
    pub backend: Option<BackendKind>,
    /// The FOSS-Cloud classroom (with `backend = "fosscloud"`).
    pub fosscloud: Option<FossCloudSection>,
    /// A file of `[exam]`, `[[probe]]` and `[[check]]` tables (relative to the lab file).
    pub checks: Option<PathBuf>,
    /// `[exam]` (evaluation settings), inline.
    pub exam: Option<toml::Table>,
    /// `[[probe]]` tables, inline.
    #[serde(default)]
    pub probe: Vec<toml::Table>,
    /// `[[check]]` tables, inline.
    #[serde(default)]
    pub check: Vec<toml::Table>,
    /// `[[machine]]`: several machines per student (a topology lab).
    #[serde(default)]
    pub machine: Vec<MachineSection>,
    /// `[[network]]`: every student's own networks.
    #[serde(default)]
    pub network: Vec<NetworkSection>,
    /// `[sdn]`: how the students' networks are made.
    pub sdn: Option<SdnSection>,
}

/// `[[machine]]`: one machine every student gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// `router`: the machine's host name is `<student>-router`.
    pub role: String,
    /// Its template (a VMID).
    pub template: u32,
    /// Its NICs in order (`net0` first): `"uplink"` or a `[[network]]`'s name.
    pub nics: Vec<String>,
    /// The role whose machine (of the same student) must be ready before this one
    /// starts.
    pub after: Option<String>,
}

/// `[[network]]`: one network every student gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// `lan`.
    pub name: String,
}

/// `[sdn]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdnSection {
    /// An existing zone to put the vnets in (default: the lab's own, made and removed
    /// with it).
    pub zone: Option<String>,
    /// `simple` (default) or `vlan`: the kind of zone the lab makes.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The bridge of a `vlan` zone (default `vmbr0`).
    pub bridge: Option<String>,
    /// VLAN tags the lab's vnets may take in a `vlan` zone (`2000-3999`).
    pub tags: Option<String>,
    /// A network carved into one /24 per student network, DHCP in a simple zone
    /// (`10.100.0.0/16`); leave out for networks without addresses.
    pub subnets: Option<String>,
}

/// `[snapshots]`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    /// `lab up` takes `baseline` of every student once all are ready (kept if present).
    #[serde(default)]
    pub baseline: bool,
    /// Snapshots of `lab up` and `lab freeze` include the RAM of running guests.
    #[serde(default)]
    pub vmstate: bool,
}

/// `backend = "proxmox" | "fosscloud"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Proxmox VE: clones, fence, the whole engine.
    Proxmox,
    /// FOSS-Cloud: desktops assigned from a dynamic pool.
    Fosscloud,
}

/// `[fosscloud]`: where the classroom's desktops come from and who sits where.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FossCloudSection {
    /// The vm-manager base URL.
    pub url: Option<String>,
    /// The dynvmuser (thin clients log in as it).
    pub user: Option<String>,
    /// Realm id.
    pub realm: Option<String>,
    /// The dynamic pool's id.
    pub pool: Option<String>,
    /// The thin clients' MAC addresses.
    #[serde(default)]
    pub macs: Vec<String>,
    /// Pinned SHA-256 certificate fingerprint.
    pub fingerprint: Option<String>,
    /// CA or server certificate (PEM), relative to the lab file.
    pub ca_file: Option<PathBuf>,
    /// Allow plain `http://` (simulators only).
    #[serde(default)]
    pub allow_http: bool,
}

impl LabFile {
    /// Whether this file describes a FOSS-Cloud classroom.
    pub fn is_fosscloud(&self) -> bool {
        self.backend == Some(BackendKind::Fosscloud)
    }
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
            .map_err(|e| fail::usage(format!("reading the lab file {}: {e}", path.display())))?;
        let file: LabFile = toml::from_str(&text)
            .map_err(|e| fail::usage(format!("lab file {}: {e}", path.display())))?;
        // The inline roster gets the checks of a roster CSV (names end up in tables,
        // hosts lines and spreadsheets).
        for (i, s) in file.students.iter().flatten().enumerate() {
            roster::check(s, &format!("students[{i}] (name {:?})", s.name))
                .map_err(|e| fail::usage(format!("lab file {}: {e}", path.display())))?;
        }
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
    /// `--full` (`Some(true)`) or `--linked` (`Some(false)`).
    pub full: Option<bool>,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
    /// `--ready-timeout`.
    pub ready_timeout: Option<u64>,
    /// `--nodes N1,N2`.
    pub nodes: Option<Vec<String>>,
    /// `--placement spread|pack`.
    pub placement: Option<String>,
    /// `--overcommit`.
    pub overcommit: bool,
}

/// A checked lab: the engine's spec, and who sits at which host name.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The spec for the engine.
    pub spec: LabSpec,
    /// Students with host names, when a roster was given (the sheet's STUDENT column).
    pub roster: Option<Vec<Named>>,
    /// The lab file's `[snapshots]` (defaults without a file).
    pub snapshots: SnapshotSettings,
}

fn secs(what: &'static str, v: u64) -> anyhow::Result<Duration> {
    if !(1..=86_400).contains(&v) {
        return Err(lab_core::Error::invalid(what, v.to_string(), "seconds, 1 to 86400").into());
    }
    Ok(Duration::from_secs(v))
}

/// The lab's name: `-n`, else the lab file's `name`, else `LABCTL_LAB` (for every verb).
pub fn lab_name(flag: Option<&str>, file: Option<&LabFile>) -> anyhow::Result<LabName> {
    let name = pick([
        (Origin::flag("-n/--name"), flag.map(str::to_owned)),
        (Origin::file("name"), file.and_then(|f| f.name.clone())),
        precedence::env("LABCTL_LAB"),
    ])
    .ok_or_else(|| {
        fail::usage("no lab name: give a lab file (LAB.toml) or -n/--name (or LABCTL_LAB)")
    })?;
    LabName::new(&name.value)
        .with_context(|| format!("the lab name from {}", name.from))
        .map_err(|e| fail::usage(format!("{e:#}")))
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
            (None, Some(s)) => {
                // Checked once more here for lab files not made by `read` (tests).
                for (i, st) in s.iter().enumerate() {
                    roster::check(st, &format!("students[{i}]"))
                        .map_err(|e| fail::usage(format!("the lab file's {e}")))?;
                }
                Some(s.clone())
            }
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
    // Each field: the flag, else the lab file, else the default (none of these has an
    // environment variable or a config-cluster value).
    let field = |flag: &'static str, file: &'static str| (Origin::flag(flag), Origin::file(file));
    let (ft, fi) = field("-t/--template", "template");
    let topology = topology(&f)?;
    let template: VmId = match (
        &topology,
        pick([
            (ft, o.template.clone()),
            (fi, f.template.map(|t| t.to_string())),
        ]),
    ) {
        (Some(_), Some(t)) => {
            return Err(fail::usage(format!(
                "{} is for labs with one machine per student: with [[machine]] tables each \
                 machine names its own template; drop it",
                t.from
            )))
        }
        (Some(t), None) => t.machines[0].template,
        (None, Some(t)) => t.value.parse()?,
        (None, None) => {
            return Err(fail::usage(
                "no template: give `template = VMID` in the lab file or -t/--template",
            ))
        }
    };
    let roster = roster_of(file, o.roster.as_deref())?;
    if roster.is_some() && o.hostname.is_some() {
        return Err(fail::usage(
            "--hostname is for labs without a roster: with a roster the host names are made \
             from the students' names (put `hostname_prefix = \"exam1-\"` in the lab file for \
             a prefix); drop --hostname or the roster",
        ));
    }
    let (fc, fic) = field("-c/--count", "count");
    let count = match (&roster, pick([(fc, o.count), (fic, f.count)])) {
        (Some(r), Some(c)) if c.value as usize != r.len() => {
            return Err(lab_core::Error::invalid(
                "count",
                c.value.to_string(),
                format!(
                    "the roster has {} students; drop count or make them agree",
                    r.len()
                ),
            )
            .into())
        }
        (Some(r), _) => u32::try_from(r.len()).unwrap_or(u32::MAX),
        (None, Some(c)) => c.value,
        (None, None) => return Err(fail::usage(
            "no students: give `count` or a `roster` in the lab file, or -c/--count or --roster",
        )),
    };
    let (a, b) = field("--ids", "ids");
    let ids: IdRange = pick([
        (a, o.ids.clone()),
        (b, f.ids.clone()),
        (Origin::default(), Some("5000-5999".to_owned())),
    ])
    .map(|s| s.value)
    .unwrap_or_default()
    .parse()?;
    let (a, b) = field("--hostname", "hostname");
    let hostname = HostnamePattern::new(
        &pick([
            (a, o.hostname.clone()),
            (b, f.hostname.clone()),
            (Origin::default(), Some(format!("{name}-{{n:02}}"))),
        ])
        .map(|s| s.value)
        .unwrap_or_default(),
    )?;
    let (a, b) = field("--full/--linked", "clone");
    let clone_mode = match pick([
        (a, o.full),
        (b, f.clone.map(|c| c == CloneKind::Full)),
        (Origin::default(), Some(false)),
    ]) {
        Some(Sourced { value: true, .. }) => CloneMode::Full,
        _ => CloneMode::Linked,
    };
    let mut timeouts = Timeouts::default();
    let (a, b) = field("--ready-timeout", "timeouts.ready");
    if let Some(r) = pick([(a, o.ready_timeout), (b, f.timeouts.ready)]) {
        timeouts.ready = secs("ready timeout", r.value)?;
    }
    if let Some(a) = f.timeouts.address {
        timeouts.address = secs("address timeout", a)?;
    }
    let (a, b) = field("--teacher", "teachers");
    let (c, d) = field("--concurrency", "concurrency");
    let spec = LabSpec {
        name,
        template,
        count,
        ids,
        hostname,
        names: roster
            .as_ref()
            .map(|r| r.iter().map(|n| n.hostname.clone()).collect()),
        teachers: pick([
            (a, Some(o.teachers.clone()).filter(|t| !t.is_empty())),
            (b, Some(f.teachers.clone()).filter(|t| !t.is_empty())),
        ])
        .map(|t| t.value)
        .unwrap_or_default(),
        clone_mode,
        concurrency: pick([
            (c, o.concurrency),
            (d, f.concurrency),
            (Origin::default(), Some(4)),
        ])
        .map_or(4, |c| c.value),
        timeouts: match crate::connect::time_scale()? {
            Some(s) => timeouts.scaled(s),
            None => timeouts,
        },
        nodes: Vec::new(),
        placement: lab_core::PlacementPolicy::Spread,
        overcommit: o.overcommit,
        topology,
    };
    let mut spec = spec;
    placement_keys(&mut spec, &f, o)?;
    spec.validate()?;
    Ok(Lab {
        spec,
        roster,
        snapshots: f.snapshots,
    })
}

/// The `[[machine]]`, `[[network]]` and `[sdn]` tables, checked; `None` without machines.
fn topology(f: &LabFile) -> anyhow::Result<Option<lab_core::Topology>> {
    use lab_core::{MachineSpec, NetworkPlan, NicSpec, Topology};
    if f.machine.is_empty() {
        if !f.network.is_empty() || f.sdn.is_some() {
            return Err(fail::usage(
                "[[network]] and [sdn] need [[machine]] tables: the machines every student \
                 gets and which networks their NICs are on (see examples/topology.toml)",
            ));
        }
        return Ok(None);
    }
    let mut machines = Vec::new();
    for (i, m) in f.machine.iter().enumerate() {
        let template = VmId::new(m.template).map_err(|_| {
            lab_core::Error::invalid(
                "template",
                format!("machine[{i}] ({}): {}", m.role, m.template),
                "a VMID (100..=999999999)",
            )
        })?;
        machines.push(MachineSpec {
            role: m.role.clone(),
            template,
            nics: m
                .nics
                .iter()
                .map(|n| {
                    if n == lab_core::UPLINK {
                        NicSpec::Uplink
                    } else {
                        NicSpec::Network(n.clone())
                    }
                })
                .collect(),
            after: m.after.clone(),
        });
    }
    let mut plan = NetworkPlan::default();
    if let Some(sdn) = &f.sdn {
        plan.zone.clone_from(&sdn.zone);
        if let Some(k) = &sdn.kind {
            plan.kind = k.parse()?;
        }
        if let Some(b) = &sdn.bridge {
            plan.bridge.clone_from(b);
        }
        if let Some(t) = &sdn.tags {
            let bad = || {
                lab_core::Error::invalid(
                    "vlan tags",
                    t.clone(),
                    "FIRST-LAST within 1-4094, e.g. 2000-3999",
                )
            };
            let (a, b) = t.split_once('-').ok_or_else(bad)?;
            plan.tags = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
        }
        if let Some(net) = &sdn.subnets {
            let bad = || {
                lab_core::Error::invalid(
                    "subnets",
                    net.clone(),
                    "an IPv4 network ADDRESS/PREFIX of /24 or wider, e.g. 10.100.0.0/16",
                )
            };
            let (a, p) = net.split_once('/').ok_or_else(bad)?;
            plan.subnets = Some((a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?));
        }
    }
    Ok(Some(Topology {
        machines,
        networks: f.network.iter().map(|n| n.name.clone()).collect(),
        plan,
    }))
}

/// `nodes` and `placement` (flag > file), checked: node names as PVE spells them.
fn placement_keys(spec: &mut LabSpec, f: &LabFile, o: &Overrides) -> Result<(), lab_core::Error> {
    let nodes = o.nodes.as_ref().or(f.nodes.as_ref());
    if let Some(nodes) = nodes {
        let mut seen = std::collections::BTreeSet::new();
        let mut checked = Vec::new();
        for n in nodes {
            let node = lab_core::NodeName::new(n.as_str()).map_err(|e| {
                lab_core::Error::invalid(
                    "node",
                    n.clone(),
                    format!(
                        "allowed: a node name (letters, digits, '-'): {}; e.g. nodes = \
                         [\"pve1\", \"pve2\"]",
                        e.allowed
                    ),
                )
            })?;
            if !seen.insert(n.clone()) {
                return Err(lab_core::Error::invalid("node", n.clone(), "listed twice"));
            }
            checked.push(node);
        }
        spec.nodes = checked;
    }
    if let Some(p) = o.placement.as_ref().or(f.placement.as_ref()) {
        spec.placement = p.parse()?;
    }
    Ok(())
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
            full: Some(true),
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

    #[test]
    fn snapshot_settings_default_off_and_unknown_keys_are_refused() {
        let f = file("name = \"x\"\ntemplate = 9000\ncount = 1\n");
        let lab = resolve(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(lab.snapshots, SnapshotSettings::default());
        assert!(!lab.snapshots.baseline && !lab.snapshots.vmstate);
        let f = file("name = \"x\"\ntemplate = 9000\ncount = 1\n[snapshots]\nbaseline = true\n");
        let lab = resolve(Some(&f), &Overrides::default()).unwrap();
        assert!(lab.snapshots.baseline && !lab.snapshots.vmstate);
        let e = toml::from_str::<LabFile>("name = \"x\"\n[snapshots]\nbaseline = true\nram = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `ram`"), "{e}");
        let e = toml::from_str::<LabFile>("name = \"x\"\n[snapshots]\nbaseline = \"yes\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("baseline"), "{e}");
    }
}
