//! `labctl lab reset LAB.toml STUDENT… [--to NAME]`: a student's guest back to a snapshot
//! (default `baseline`), keeping everything that makes it the student's.
//!
//! Per student the path is chosen and said (the plan, also with `--dry-run`):
//! - **rollback** when the snapshot exists and the storage reaches it (LVM-thin and
//!   directory storage: any snapshot; ZFS: only the most recent one). PVE's rollback keeps
//!   the id, the firewall file (the fence) and the ACLs and restores the config of that
//!   moment (MACs, tags; reference `exam-features.md` §2).
//! - **re-clone** otherwise (no `baseline`, or newer snapshots in the way on ZFS): the
//!   guest is destroyed and cloned again from the lab's template under the same id, with
//!   the same name and marks (pool, description), every NIC's MAC (so the same DHCP
//!   address), its tags, its fence (before it first runs) and the ACL entries of its
//!   `/vms/<id>` path, which PVE deletes with the guest (`remove_vm_access`, with or
//!   without `purge`; reference `pve-api.md` §4.5). The student's user is not touched by
//!   a destroy and is kept as it is.
//!
//! Either way the guest is started and the command waits until its agent answers with an
//! address, as `lab up` does.
//!
//! A re-clone destroys every snapshot of the guest (the plan and the question name them);
//! one that would destroy a `deadline-…` snapshot is refused without `--discard-evidence`.
//! An explicit `--to` the student does not have is refused: only `baseline` is what a
//! fresh clone gives back.
//!
//! A re-clone stops the guest, then records what it must give back (`<lab>-reset.json`
//! beside the lab file: MACs, tags, fence, ACL entries) and only then destroys; a run that
//! was killed or interrupted at any point is completed by running the same command again,
//! which takes the record (not the half-made guest) as the truth. A frozen student (the
//! manifest says so, or every NIC's link is down) is refused: a reset would throw away
//! what the deadline kept; `lab unfreeze` first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use lab_core::{
    plan_reset, reclone, status, wait_ready, Capability, CloneSource, GuestIdentity, LabName,
    NicLink, Reclone, ResetPath, Snapshots, StudentStatus, VmKind,
};
use lab_proxmox::ProxmoxLab;
use pve_access::{AccessApi, AclEntry, AclPath, GroupId, RoleId, Subject, Userid};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::connect::Connection;
use crate::fail;
use crate::journal;
use crate::labfile::{LabFile, Overrides};
use crate::output::{line_safe, print_json, Format, Sheet};
use crate::roster::Named;

/// `lab reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The lab file (its name, template, clone mode and roster).
    #[arg(value_name = "LAB.toml")]
    file: PathBuf,
    /// The students to reset: roster name, host name or login.
    #[arg(value_name = "STUDENT", required = true, num_args = 1..)]
    students: Vec<String>,
    /// The snapshot to go back to.
    #[arg(long, value_name = "NAME", default_value = "baseline")]
    to: String,
    /// The freeze manifest that says who is frozen. Default: `<lab>-freeze.json` beside
    /// the lab file.
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Allow a re-clone that destroys a `deadline-…` snapshot (what `lab freeze` kept as
    /// evidence); without it such a reset is refused.
    #[arg(long)]
    discard_evidence: bool,
    /// Only show the plan: which path each student takes and why (never asks, changes
    /// nothing).
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// The record of re-clones in progress and done (`<lab>-reset.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Record {
    lab: String,
    /// Re-clones begun and not yet finished, by host name: what to give back.
    #[serde(default)]
    pending: BTreeMap<String, Intent>,
    /// Resets done, oldest first.
    #[serde(default)]
    done: Vec<Done>,
}

/// What a re-clone gives back, recorded before the guest is destroyed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Intent {
    vmid: u32,
    to: String,
    /// When it was recorded (UTC).
    since: String,
    nics: Vec<Nic>,
    tags: Vec<String>,
    fenced: bool,
    acl: Vec<Acl>,
    /// The `smbios1` UUID of the guest the record was made of (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    /// `since` in seconds since the epoch (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_unix: Option<u64>,
    /// The node the guest was on: the re-clone lands there again (absent in older
    /// records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Nic {
    net: String,
    mac: String,
}

/// One ACL entry on the guest's path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Acl {
    path: String,
    /// `user`, `group` or `token`.
    kind: String,
    who: String,
    role: String,
    propagate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Done {
    hostname: String,
    vmid: u32,
    path: String,
    to: String,
    at: String,
}

impl Acl {
    fn of(e: &AclEntry) -> Self {
        let (kind, who) = match &e.subject {
            Subject::User(u) => ("user", u.to_string()),
            Subject::Group(g) => ("group", g.to_string()),
            Subject::Token(t) => ("token", t.clone()),
        };
        Acl {
            path: e.path.as_str().to_owned(),
            kind: kind.into(),
            who,
            role: e.role.as_str().to_owned(),
            propagate: e.propagate,
        }
    }

    fn entry(&self) -> anyhow::Result<AclEntry> {
        let subject = match self.kind.as_str() {
            "user" => Subject::User(self.who.parse::<Userid>()?),
            "group" => Subject::Group(GroupId::new(self.who.as_str())?),
            "token" => Subject::Token(self.who.clone()),
            other => anyhow::bail!("ACL entry of kind {other:?} (allowed: user, group, token)"),
        };
        Ok(AclEntry {
            path: AclPath::new(&self.path)?,
            subject,
            role: RoleId::new(self.role.as_str())?,
            propagate: self.propagate,
        })
    }
}

/// The record on disk, rewritten atomically on every change.
type Journal = journal::Journal<Record>;

impl journal::LabRecord for Record {
    const WHAT: &'static str = "reset record";
    const UNREADABLE: &'static str =
        "it holds the MACs and ACLs of interrupted re-clones: repair it or move it away";
    const OTHER_LAB: &'static str = "";
    fn lab(&self) -> &str {
        &self.lab
    }
    fn empty(lab: &LabName) -> Self {
        Record {
            lab: lab.to_string(),
            ..Record::default()
        }
    }
}

/// `<lab>-reset.json` beside the lab file.
fn record_path(lab: &LabName, file: &Path) -> PathBuf {
    journal::beside(lab, Some(file), "reset")
}

/// The students of the reset record beside `file` whose re-clone is pending (an
/// interrupted `lab reset`), with when it began; empty when there is no record or it
/// cannot be read (`lab reset` itself says why).
fn pending_of(lab: &LabName, file: Option<&Path>) -> (PathBuf, Vec<(String, String)>) {
    let path = journal::beside(lab, file, "reset");
    let pending = Journal::open(path.clone(), lab)
        .map(|j| {
            j.snapshot()
                .pending
                .into_iter()
                .map(|(h, i)| (h, i.since))
                .collect()
        })
        .unwrap_or_default();
    (path, pending)
}

/// A note for `lab up`/`lab status` when the reset record beside the lab file holds an
/// interrupted re-clone: who, since when, and how to complete it.
pub(crate) fn pending_note(lab: &LabName, file: Option<&Path>) -> Option<String> {
    let (path, pending) = pending_of(lab, file);
    if pending.is_empty() {
        return None;
    }
    let hosts: Vec<&str> = pending.iter().map(|(h, _)| h.as_str()).collect();
    Some(format!(
        "note: a `lab reset` of {} was interrupted ({}) and is pending in {}: complete it \
         with `labctl lab reset {} {} --yes` (it gives back the recorded MACs, tags, fence \
         and ACL)",
        hosts.join(", "),
        pending
            .iter()
            .map(|(h, since)| format!("{h} since {since}"))
            .collect::<Vec<_>>()
            .join(", "),
        path.display(),
        file.map_or_else(|| "LAB.toml".to_owned(), |f| f.display().to_string()),
        hosts.join(" ")
    ))
}

/// `lab down` of the lab: the guests an interrupted re-clone recorded are gone, so the
/// reset record beside the lab file is set aside (renamed to
/// `<lab>-reset.set-aside-<time>.json`, never deleted) and said, as a later `lab up`'s
/// guests are others; with `dry_run` only said.
pub(crate) fn set_aside_record(
    lab: &LabName,
    file: Option<&Path>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let (path, pending) = pending_of(lab, file);
    if pending.is_empty() {
        return Ok(());
    }
    let hosts: Vec<&str> = pending.iter().map(|(h, _)| h.as_str()).collect();
    let stamp = now().replace([':', '.'], "").replace('-', "");
    let aside = path.with_file_name(format!("{lab}-reset.set-aside-{stamp}.json"));
    if dry_run {
        eprintln!(
            "would set the reset record {} aside as {} (its pending re-clone of {} is of \
             guests this destroys)",
            path.display(),
            aside.display(),
            hosts.join(", ")
        );
        return Ok(());
    }
    std::fs::rename(&path, &aside).with_context(|| {
        format!(
            "setting the reset record {} aside as {}",
            path.display(),
            aside.display()
        )
    })?;
    eprintln!(
        "note: the reset record {} held an interrupted re-clone of {} (guests now destroyed): \
         set aside as {}; a later `lab up` makes new guests and `lab reset` begins afresh",
        path.display(),
        hosts.join(", "),
        aside.display()
    );
    Ok(())
}

fn now() -> String {
    lab_grade::time::rfc3339_millis(SystemTime::now())
}

/// One student's plan.
struct Planned {
    host: String,
    /// The student's roster name, when the lab has a roster.
    student: Option<String>,
    vmid: u32,
    /// The node the guest is on (a re-clone lands there again); `None` when unknown (a
    /// guest destroyed by an interrupted re-clone of an older record).
    node: Option<String>,
    /// The guest's kind (a re-clone needs a template of the same kind).
    kind: Option<VmKind>,
    /// Where a re-clone comes from (decided by [`preflight`]).
    source: Option<CloneSource>,
    path: ResetPath,
    why: String,
    /// An interrupted re-clone of this student is completed.
    resume: Option<Intent>,
    /// The snapshots a re-clone destroys with the guest.
    lost: Vec<String>,
}

/// Host names of `names` (roster name, host name, or login with or without realm) among
/// `hosts`; an unknown name is refused naming the allowed ones.
fn resolve(
    names: &[String],
    hosts: &[String],
    roster: Option<&[Named]>,
    lab: &LabName,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in names.iter().map(|n| n.trim()) {
        let by_roster = roster
            .unwrap_or_default()
            .iter()
            .find(|r| r.student.name == n)
            .map(|r| r.hostname.clone());
        let login = n.split('@').next().unwrap_or(n);
        let host = by_roster.filter(|h| hosts.contains(h)).or_else(|| {
            hosts
                .iter()
                .find(|h| h.as_str() == n || h.as_str() == login)
                .cloned()
        });
        match host {
            Some(h) if !out.contains(&h) => out.push(h),
            Some(_) => {}
            None => {
                let mut allowed: Vec<String> = hosts.to_vec();
                if let Some(r) = roster {
                    allowed.extend(
                        r.iter()
                            .filter(|r| hosts.contains(&r.hostname))
                            .map(|r| format!("{:?}", r.student.name)),
                    );
                }
                return Err(fail::usage(format!(
                    "{:?} is not a student of lab {lab} (give a roster name, host name or \
                     login; students: {})",
                    line_safe(n),
                    allowed.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// `lab reset`.
pub async fn reset_cmd(args: &ResetArgs, conn: &Connection, format: Format) -> anyhow::Result<()> {
    format.not_csv("lab reset")?;
    let to = pve_vm::SnapshotName::new(args.to.as_str())
        .map_err(|e| fail::usage(format!("lab reset --to: {e}")))?
        .as_str()
        .to_owned();
    let (file, dir) = LabFile::read(&args.file)?;
    if file.is_fosscloud() {
        return Err(fail::usage(format!(
            "{} is a FOSS-Cloud classroom: lab reset is for Proxmox labs",
            args.file.display()
        )));
    }
    let lab = crate::labfile::resolve(Some(&(file, dir)), &Overrides::default())
        .with_context(|| format!("lab file {}", args.file.display()))?;
    let spec = lab.spec.clone();
    let name = spec.name.clone();
    let hv = conn.backend()?;
    lab_core::Backend::capabilities(&hv).require(
        Capability::Snapshots,
        "lab reset",
        lab_core::Backend::backend(&hv),
    )?;
    let journal = Journal::open(record_path(&name, &args.file), &name)?;
    // A clone of an interrupted run may still be landing (its guest joins the pool when
    // the task ends): wait for it before the lab is listed, or the listing would take
    // that guest for one that is not the lab's.
    if let Err(e) = lab_core::Inventory::quiesce(&hv, Some(spec.template)).await {
        let e = anyhow::Error::new(e);
        // A login refused is said as it is (the first request logs in).
        return Err(if fail::exit_code(&e) == fail::AUTH {
            e
        } else {
            e.context("waiting for clones of an earlier run to land")
        });
    }
    let rows: Vec<StudentStatus> = status(&hv, &name).await?;
    let by_host: BTreeMap<String, StudentStatus> = rows
        .iter()
        .map(|r| (r.hostname.clone(), r.clone()))
        .collect();
    let pending = stale_dropped(&hv, &journal, &name, &by_host, args.dry_run).await?;
    // A student whose re-clone was interrupted between destroy and clone has no guest:
    // the record still names them.
    let mut hosts: Vec<String> = by_host.keys().cloned().collect();
    hosts.extend(
        pending
            .keys()
            .filter(|h| !by_host.contains_key(*h))
            .cloned(),
    );
    hosts.sort();
    if hosts.is_empty() {
        return Err(fail::with_code(
            fail::NOT_FOUND,
            format!("lab {name} has no students (run `labctl lab up` with this lab file first)"),
        ));
    }
    // The lab's own host names too: a student whose guest is gone is still a student.
    for h in spec.hostnames() {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts.sort();
    let chosen = resolve(&args.students, &hosts, lab.roster.as_deref(), &name)?;
    let gone: Vec<&str> = chosen
        .iter()
        .filter(|h| !by_host.contains_key(*h) && !pending.contains_key(*h))
        .map(String::as_str)
        .collect();
    if !gone.is_empty() {
        return Err(fail::with_code(
            fail::NOT_FOUND,
            format!(
                "lab {name}: {} has no guest and {} holds no interrupted re-clone of it; if \
                 a `lab reset` of it was interrupted, run that again with the lab file it was \
                 run with (its record {name}-reset.json lies beside that file), else run \
                 `labctl lab up {}` (it makes the missing guests), then reset",
                gone.join(", "),
                journal.path().display(),
                args.file.display()
            ),
        ));
    }
    // A pending re-clone completes to the snapshot it was begun for.
    let conflicts: Vec<String> = chosen
        .iter()
        .filter_map(|h| {
            pending
                .get(h)
                .filter(|i| i.to != to)
                .map(|i| format!("{h} (to {}, begun at {})", i.to, i.since))
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(fail::usage(format!(
            "lab {name}: an interrupted re-clone is pending for {} in {}: run the same \
             command with its --to to complete it first",
            conflicts.join(", "),
            journal.path().display()
        )));
    }

    // Frozen students keep their deadline state.
    if let Some(m) = &args.manifest {
        if !m.exists() {
            return Err(fail::usage(format!(
                "lab reset --manifest {}: no such file (give the freeze manifest `lab freeze` \
                 wrote, or leave --manifest out for {})",
                m.display(),
                crate::freeze::default_manifest(&name, Some(&args.file)).display()
            )));
        }
    }
    let manifest = args
        .manifest
        .clone()
        .unwrap_or_else(|| crate::freeze::default_manifest(&name, Some(&args.file)));
    let frozen = crate::freeze::frozen_now(hv.vm_api(), &manifest, &rows).await;
    let mut refused: Vec<String> = chosen
        .iter()
        .filter_map(|h| frozen.get(h).map(|t| format!("{h} (frozen at {t})")))
        .collect();
    let mut frozen_hosts: Vec<&str> = chosen
        .iter()
        .filter(|h| frozen.contains_key(*h))
        .map(String::as_str)
        .collect();
    let by_manifest = !frozen_hosts.is_empty();
    // The cluster's view too (a manifest moved away, another machine's freeze): a guest
    // whose every link is down was cut.
    for h in &chosen {
        if frozen.contains_key(h) {
            continue;
        }
        let Some(row) = by_host.get(h) else { continue };
        let identity = hv
            .identity(row.vmid)
            .await
            .with_context(|| format!("reading the NICs of {h} (VM {})", row.vmid))?;
        if !identity.nics.is_empty() && identity.nics.iter().all(|n| n.down) {
            refused.push(format!("{h} (every NIC's link is down)"));
            frozen_hosts.push(h);
        }
    }
    if !refused.is_empty() {
        let students: String = frozen_hosts
            .iter()
            .map(|h| format!(" --student {h}"))
            .collect();
        return Err(fail::usage(format!(
            "lab {name}: {} frozen: a reset would throw away what the deadline kept; give the \
             student back first with `labctl lab unfreeze {}{students} --yes`{}, or reset \
             someone else",
            refused.join(", "),
            args.file.display(),
            if by_manifest {
                String::new()
            } else {
                format!(
                    ", run with the lab file whose freeze manifest recorded the freeze (there \
                     is none at {})",
                    manifest.display()
                )
            }
        )));
    }

    let roster_name = |host: &str| {
        lab.roster
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|r| r.hostname == host)
            .map(|r| r.student.name.clone())
    };
    let mut plan = Vec::new();
    let mut missing = Vec::new();
    let mut evidence = Vec::new();
    for host in &chosen {
        if let Some(intent) = pending.get(host) {
            plan.push(Planned {
                host: host.clone(),
                student: roster_name(host),
                vmid: intent.vmid,
                node: by_host
                    .get(host)
                    .map(|r| r.node.to_string())
                    .or_else(|| intent.node.clone()),
                kind: None,
                source: None,
                path: ResetPath::Reclone,
                why: format!(
                    "a re-clone begun at {} was interrupted: completing it with the recorded \
                     MACs, tags, fence and ACL",
                    intent.since
                ),
                resume: Some(intent.clone()),
                lost: Vec::new(),
            });
            continue;
        }
        let row = &by_host[host];
        let choice = plan_reset(&hv, row.vmid, &to)
            .await
            .with_context(|| format!("reading the snapshots of {host} (VM {})", row.vmid))?;
        // Only `baseline` is what a fresh clone of the template gives back; another
        // snapshot that is not there cannot be gone back to.
        if !choice.found && to != BASELINE {
            missing.push(format!(
                "{host} has {}",
                if choice.snapshots.is_empty() {
                    "no snapshots".to_owned()
                } else {
                    format!("the snapshots {}", choice.snapshots.join(", "))
                }
            ));
            continue;
        }
        if choice.path == ResetPath::Reclone && !args.discard_evidence {
            let kept: Vec<&str> = choice
                .snapshots
                .iter()
                .filter(|s| s.starts_with("deadline-"))
                .map(String::as_str)
                .collect();
            if !kept.is_empty() {
                evidence.push(format!("{host} ({})", kept.join(", ")));
            }
        }
        let why = if choice.path == ResetPath::Reclone && to == BASELINE && lab.snapshots.baseline {
            format!(
                "{}; then a new {BASELINE} snapshot (the lab keeps one)",
                choice.why
            )
        } else {
            choice.why
        };
        plan.push(Planned {
            host: host.clone(),
            student: roster_name(host),
            vmid: row.vmid.get(),
            node: Some(row.node.to_string()),
            kind: None,
            source: None,
            path: choice.path,
            why,
            resume: None,
            lost: if choice.path == ResetPath::Reclone {
                choice.snapshots.clone()
            } else {
                Vec::new()
            },
        });
    }

    if !missing.is_empty() {
        return Err(fail::usage(format!(
            "lab {name}: no snapshot {to} to go back to: {}; give one of them with --to, or \
             leave --to out for {BASELINE}",
            missing.join("; ")
        )));
    }
    if !evidence.is_empty() {
        return Err(fail::usage(format!(
            "lab {name}: a re-clone of {} would destroy the deadline snapshot kept as \
             evidence; add --discard-evidence if it is no longer needed",
            evidence.join(", ")
        )));
    }
    // Everything a re-clone or rollback needs is checked before anything is stopped or
    // destroyed (also with --dry-run): the template, where the clone lands, the rights.
    preflight(&hv, &spec, lab.snapshots.baseline, &mut plan).await?;
    print_plan(&name, &to, &plan, args.dry_run, format)?;
    if args.dry_run {
        return Ok(());
    }
    let lost: Vec<String> = plan
        .iter()
        .filter(|p| !p.lost.is_empty())
        .map(|p| format!("{}: {}", p.host, p.lost.join(", ")))
        .collect();
    crate::confirm::confirm(
        &format!(
            "Reset {} of lab {name} to {to}? What they changed since is lost{}",
            plan.iter()
                .map(|p| p.host.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if lost.is_empty() {
                String::new()
            } else {
                format!(
                    ", and the re-clone destroys these snapshots: {}",
                    lost.join("; ")
                )
            }
        ),
        args.yes,
    )?;

    // No `lab up`/`down`/`freeze` of this lab on this machine meanwhile: an `up` could
    // take the id a re-clone has freed for a moment.
    let _lock =
        crate::lab::LabLock::take(hv.vm_api().client().base_url().as_str(), &name, "reset")?;
    let access = AccessApi::new(hv.vm_api().client().clone());
    let interrupt = lab_core::Interrupt::new();
    let _signals = crate::signals::on_interrupt(interrupt.clone(), "lab reset");
    let mut results = Vec::new();
    for p in &plan {
        if interrupt.is_triggered() {
            results.push((p, Ended::NotStarted));
            continue;
        }
        // Ctrl-C ends the student's reset where it stands: a re-clone's record (written
        // right before the destroy) lets the next run complete it; a clone task in
        // flight is waited for by the next run.
        let r = tokio::select! {
            r = reset_one(&hv, &access, &journal, &spec, lab.snapshots, &to, p) => match r {
                Ok(o) => Ended::Done(o),
                Err(e) => Ended::Failed(e),
            },
            () = interrupt.triggered() => Ended::Interrupted {
                recorded: journal.snapshot().pending.contains_key(&p.host),
            },
        };
        results.push((p, r));
    }
    report(&name, &to, &results, format)?;
    // A re-clone cut off before its record (so before the destroy) may have stopped the
    // guest already: say so.
    for (p, r) in &results {
        if p.path != ResetPath::Reclone
            || matches!(r, Ended::Done(_) | Ended::NotStarted)
            || journal.snapshot().pending.contains_key(&p.host)
        {
            continue;
        }
        let Ok(vmid) = lab_core::VmId::new(p.vmid) else {
            continue;
        };
        if let Ok(g) = lab_core::Inventory::guest(&hv, vmid).await {
            if !g.status.is_running() {
                eprintln!(
                    "labctl: {}: VM {vmid} was stopped for the re-clone and is left stopped \
                     (not destroyed, nothing recorded): the next reset re-clones it, or start \
                     it with `labctl vm start {vmid}`",
                    line_safe(&p.host)
                );
            }
        }
    }
    let open: Vec<&str> = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ended::Done(_)))
        .map(|(p, _)| p.host.as_str())
        .collect();
    if open.is_empty() && !interrupt.is_triggered() {
        return Ok(());
    }
    let done: Vec<&str> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ended::Done(_)))
        .map(|(p, _)| p.host.as_str())
        .collect();
    // Only the students not reset are named in the command to run again: a student who
    // was reset works on the guest by now, and a second reset would throw that away.
    let next = if open.is_empty() {
        String::new()
    } else {
        let recorded: Vec<&str> = {
            let pending = journal.snapshot().pending;
            open.iter()
                .copied()
                .filter(|h| pending.contains_key(*h))
                .collect()
        };
        format!(
            "; run `labctl lab reset {} {}{} --yes` for them{}{}",
            args.file.display(),
            open.join(" "),
            if to == BASELINE {
                String::new()
            } else {
                format!(" --to {to}")
            },
            if recorded.is_empty() {
                String::new()
            } else {
                format!(
                    " (it completes the interrupted re-clone of {} from {})",
                    recorded.join(", "),
                    journal.path().display()
                )
            },
            if done.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} {} reset: leave {} out",
                    done.join(", "),
                    if done.len() == 1 { "is" } else { "are" },
                    if done.len() == 1 { "it" } else { "them" }
                )
            }
        )
    };
    if interrupt.is_triggered() {
        return Err(fail::with_code(
            fail::INCOMPLETE,
            format!(
                "interrupted: {} not reset yet{next}",
                if open.is_empty() {
                    "every student is done, none".to_owned()
                } else {
                    open.join(", ")
                },
            ),
        ));
    }
    // A permission refused (HTTP 403) is not mended by running again: exit 3.
    let denied = results
        .iter()
        .any(|(_, r)| matches!(r, Ended::Failed(e) if fail::exit_code(e) == fail::AUTH));
    Err(fail::with_code(
        if denied { fail::AUTH } else { fail::INCOMPLETE },
        format!(
            "{} of {} resets failed ({}){}{next}",
            open.len(),
            results.len(),
            open.join(", "),
            if denied {
                ": a privilege is missing (see above); grant it first"
            } else {
                ""
            }
        ),
    ))
}

/// Where one student stands after the run.
enum Ended {
    Done(Outcome),
    Failed(anyhow::Error),
    /// Cut off by Ctrl-C or SIGTERM; `recorded`: a re-clone's record is pending.
    Interrupted {
        recorded: bool,
    },
    /// Not begun: the run was interrupted before.
    NotStarted,
}

/// What one reset ended with.
struct Outcome {
    addresses: Vec<String>,
    macs: Vec<String>,
    task: Option<String>,
    /// A new `baseline` was taken of the fresh clone.
    rebased: bool,
}

async fn reset_one(
    hv: &ProxmoxLab,
    access: &AccessApi,
    journal: &Journal,
    spec: &lab_core::LabSpec,
    settings: crate::labfile::SnapshotSettings,
    to: &str,
    p: &Planned,
) -> anyhow::Result<Outcome> {
    let vmid = lab_core::VmId::new(p.vmid)?;
    let mut task = None;
    match p.path {
        ResetPath::Rollback => {
            task = hv
                .rollback(vmid, to.to_owned())
                .await
                .with_context(|| format!("{}: rollback to {to}", p.host))?;
            // A disk-only snapshot leaves the guest stopped.
            let running = lab_core::Inventory::guest(hv, vmid)
                .await
                .with_context(|| format!("{}: reading VM {vmid} after the rollback", p.host))?
                .status
                .is_running();
            if !running {
                lab_core::Power::start(hv, vmid).await.with_context(|| {
                    format!(
                        "{}: rolled back to {to}, but VM {vmid} is left stopped: starting it \
                         failed (start it with `labctl vm start {vmid}`)",
                        p.host
                    )
                })?;
            }
        }
        ResetPath::Reclone => {
            let intent = match &p.resume {
                Some(i) => i.clone(),
                None => {
                    let mut intent = read_intent(hv, access, spec, vmid, to).await?;
                    intent.node.clone_from(&p.node);
                    // Stopped first: a stop that fails leaves the guest and no record.
                    if lab_core::Inventory::guest(hv, vmid)
                        .await
                        .with_context(|| format!("{}: reading VM {vmid}", p.host))?
                        .status
                        .is_running()
                    {
                        lab_core::Power::stop(hv, vmid).await.with_context(|| {
                            format!(
                                "{}: stopping VM {vmid} (not destroyed, nothing recorded; if \
                                 the stop went through it is left stopped: the next reset \
                                 re-clones it, or start it with `labctl vm start {vmid}`)",
                                p.host
                            )
                        })?;
                    }
                    // Recorded right before the destroy.
                    journal.update(|r| {
                        r.pending.insert(p.host.clone(), intent.clone());
                    })?;
                    intent
                }
            };
            let r = Reclone {
                lab: spec.name.clone(),
                template: spec.template,
                mode: spec.clone_mode,
                vmid,
                hostname: p.host.clone(),
                identity: GuestIdentity {
                    nics: intent
                        .nics
                        .iter()
                        .map(|n| NicLink {
                            net: n.net.clone(),
                            mac: n.mac.clone(),
                            was_down: false,
                            down: false,
                        })
                        .collect(),
                    tags: intent.tags.clone(),
                },
                fence: intent.fenced,
                source: p.source.clone(),
            };
            reclone(hv, &r)
                .await
                .with_context(|| format!("{}: re-clone of VM {vmid}", p.host))?;
            for a in &intent.acl {
                let entry = a.entry()?;
                access
                    .grant(&entry)
                    .await
                    .with_context(|| format!("{}: giving back the ACL entry {}", p.host, a.path))?;
            }
        }
    }
    let t = &spec.timeouts;
    let probe = wait_ready(hv, vmid, t.address_hint, t.ready + t.address)
        .await
        .with_context(|| format!("{}: waiting for the guest agent after the reset", p.host))?;
    let mut rebased = false;
    if p.path == ResetPath::Reclone && to == BASELINE && settings.baseline {
        // The lab keeps a baseline: the fresh clone gets it again, so the next reset of
        // this student can roll back.
        take_baseline(hv, &[(vmid, p.host.clone())], settings.vmstate).await?;
        rebased = true;
    }
    let macs = hv
        .identity(vmid)
        .await
        .map(|i| i.nics.into_iter().map(|n| n.mac).collect())
        .unwrap_or_default();
    journal.update(|r| {
        r.pending.remove(&p.host);
        r.done.push(Done {
            hostname: p.host.clone(),
            vmid: p.vmid,
            path: p.path.as_str().to_owned(),
            to: to.to_owned(),
            at: now(),
        });
    })?;
    Ok(Outcome {
        addresses: probe.addresses.iter().map(ToString::to_string).collect(),
        macs,
        task,
        rebased,
    })
}

/// The `smbios1` UUID of `vmid`'s guest; `None` when there is no guest or none is set.
async fn guest_uuid(hv: &ProxmoxLab, vmid: u32) -> anyhow::Result<Option<String>> {
    let id = pve_vm::VmId::new(vmid)?;
    let guest = match hv.vm_api().guest(id).await {
        Ok(g) => g,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("finding VM {vmid}"))),
    };
    let cfg = match guest.config().await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("reading the config of VM {vmid}")))
        }
    };
    Ok(cfg.get("smbios1").and_then(|s| {
        s.split(',')
            .find_map(|kv| kv.strip_prefix("uuid="))
            .map(str::to_owned)
    }))
}

/// The pending re-clones of the record that still belong to this lab's guests; the others
/// are dropped from the record (and said): the lab was taken down (no guest, no pool), or
/// the id now holds another guest (a new `lab up`: another UUID and none of the recorded
/// MACs) that a resume would destroy.
async fn stale_dropped(
    hv: &ProxmoxLab,
    journal: &Journal,
    lab: &LabName,
    by_host: &BTreeMap<String, StudentStatus>,
    dry_run: bool,
) -> anyhow::Result<BTreeMap<String, Intent>> {
    let pending = journal.snapshot().pending;
    if pending.is_empty() {
        return Ok(pending);
    }
    let mut stale: Vec<(String, String)> = Vec::new();
    let lab_down = if by_host.is_empty() {
        let pools: Vec<serde_json::Value> = hv
            .vm_api()
            .client()
            .get("/pools", &pve_auth::Params::new())
            .await
            .context("reading the pools (is the lab still up?)")?;
        let pool = lab.pool();
        !pools
            .iter()
            .any(|p| p["poolid"].as_str() == Some(pool.as_str()))
    } else {
        false
    };
    for (host, intent) in &pending {
        if lab_down {
            stale.push((host.clone(), "the lab was taken down".into()));
            continue;
        }
        let Some(row) = by_host.get(host) else {
            continue;
        };
        if row.vmid.get() != intent.vmid {
            stale.push((
                host.clone(),
                format!("{host} is VM {} now, not {}", row.vmid, intent.vmid),
            ));
            continue;
        }
        let Some(was) = &intent.uuid else { continue };
        let Some(now) = guest_uuid(hv, intent.vmid).await? else {
            continue;
        };
        if now.eq_ignore_ascii_case(was) {
            continue;
        }
        // A half-made re-clone (killed during its clone) has another UUID and fresh MACs
        // too, and only the record can give it back: it is resumed. A guest of a new
        // `lab up` is told apart when it has none of the recorded MACs and a snapshot
        // taken after the record (the `baseline` of that `up`; a re-clone takes its own
        // only after giving the MACs back).
        let macs: Vec<String> = hv
            .identity(row.vmid)
            .await
            .map(|i| {
                i.nics
                    .into_iter()
                    .map(|n| n.mac.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let ours = intent
            .nics
            .iter()
            .any(|n| macs.contains(&n.mac.to_ascii_lowercase()));
        // A re-clone gives the MACs and the tags back in one config write: a guest that
        // carries the lab's tag but none of the recorded MACs was made by `lab up`.
        let tagged = !intent.nics.is_empty()
            && lab_core::Inventory::guest(hv, row.vmid)
                .await
                .is_ok_and(|g| g.tags.contains(&lab.tag()));
        let later = match intent.since_unix {
            Some(since) => hv
                .snapshots(row.vmid)
                .await
                .with_context(|| format!("reading the snapshots of {host} (VM {})", row.vmid))?
                .iter()
                .any(|s| s.taken.is_some_and(|t| t > since)),
            None => false,
        };
        if !ours && (later || tagged) {
            stale.push((
                host.clone(),
                format!(
                    "VM {} is another guest now (UUID {now}, not {was})",
                    intent.vmid
                ),
            ));
        }
    }
    if stale.is_empty() {
        return Ok(pending);
    }
    let mut pending = pending;
    for (h, _) in &stale {
        pending.remove(h);
    }
    if !dry_run {
        journal.update(|r| {
            for (h, _) in &stale {
                r.pending.remove(h);
            }
        })?;
    }
    for (h, why) in &stale {
        eprintln!(
            "labctl: {} the pending re-clone of {} from {}: {}",
            if dry_run { "would drop" } else { "dropped" },
            line_safe(h),
            journal.path().display(),
            line_safe(why)
        );
    }
    Ok(pending)
}

/// Checks, before anything is stopped or destroyed, what the plan's resets need: for a
/// re-clone the template (it exists, is a template, of the guest's kind) and a copy of it
/// on the guest's node (the re-clone lands where `up` put the student: the template, its
/// replica or shared storage there; the source is set in the plan); for every reset the
/// login's privileges on the paths its requests touch (`GET /access/permissions`, as
/// `labctl doctor` asks). Refuses with exit 4 (no template), 2 (a wrong template, no copy
/// on the node) or 3 (a privilege missing), naming the students and saying nothing was
/// changed.
async fn preflight(
    hv: &ProxmoxLab,
    spec: &lab_core::LabSpec,
    baseline: bool,
    plan: &mut [Planned],
) -> anyhow::Result<()> {
    let name = &spec.name;
    let t = spec.template;
    let reclones: Vec<String> = plan
        .iter()
        .filter(|p| p.path == ResetPath::Reclone)
        .map(|p| p.host.clone())
        .collect();
    let mut template_config = None;
    if !reclones.is_empty() {
        let hosts = reclones.join(", ");
        let template = match lab_core::Inventory::guest(hv, t).await {
            Ok(g) => g,
            Err(e) if e.is_not_found() => {
                return Err(fail::with_code(
                    fail::NOT_FOUND,
                    format!(
                        "lab {name}: template {t} not found: the re-clone of {hosts} clones it; \
                         nothing was changed (set the lab's `template` to the template its \
                         students were cloned from)"
                    ),
                ))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "lab {name}: reading template {t} (nothing was changed)"
                )))
            }
        };
        for p in plan.iter_mut().filter(|p| p.path == ResetPath::Reclone) {
            let vmid = lab_core::VmId::new(p.vmid)?;
            p.kind = match lab_core::Inventory::guest(hv, vmid).await {
                Ok(g) => Some(g.kind),
                Err(e) if e.is_not_found() => None,
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("{}: reading VM {vmid}", p.host))
                    )
                }
            };
            lab_core::check_reclone_template(
                &template,
                p.kind.unwrap_or(template.kind),
                spec.clone_mode,
            )
            .map_err(|e| {
                fail::usage(format!(
                    "lab {name}: the re-clone of {} cannot be made: {e}; nothing was changed",
                    p.host
                ))
            })?;
        }
        let sources = match lab_core::Placement::placement(hv, t, spec.clone_mode).await {
            Ok(v) => Some(v.sources),
            Err(lab_core::Error::Unsupported { .. }) => None,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "lab {name}: reading where copies of template {t} are (nothing was changed)"
                )))
            }
        };
        if let Some(sources) = sources {
            let mut nowhere = Vec::new();
            for p in plan.iter_mut().filter(|p| p.path == ResetPath::Reclone) {
                let Some(node) = &p.node else { continue };
                let node = lab_core::NodeName::new(node.as_str())?;
                match lab_core::reclone_source(&sources, &node) {
                    Some(src) => p.source = Some(src),
                    None => nowhere.push(format!("{} (on {node})", p.host)),
                }
            }
            if !nowhere.is_empty() {
                return Err(fail::usage(format!(
                    "lab {name}: no copy of template {t} reaches the node of {}: a re-clone \
                     would move the student to another node; make one there with `labctl \
                     template replicate {t}` first; nothing was changed",
                    nowhere.join(", ")
                )));
            }
        }
        let id = pve_vm::VmId::new(t.get())?;
        template_config = match hv.vm_api().guest(id).await {
            Ok(g) => g.config().await.ok(),
            Err(_) => None,
        };
    }
    privileges(hv, spec, baseline, plan, template_config.as_ref()).await
}

/// The storages of a guest's disks and the bridges of its NICs (what a clone allocates
/// on and plugs into).
fn storages_and_bridges(cfg: &pve_vm::GuestConfig) -> (Vec<String>, Vec<String>) {
    let mut storages = Vec::new();
    let mut bridges = Vec::new();
    for (key, value) in &cfg.raw {
        let Some(value) = value.as_str() else {
            continue;
        };
        let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
        if base.len() == key.len() {
            continue;
        }
        if matches!(
            base,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate" | "rootfs" | "mp"
        ) || key == "rootfs"
        {
            if value.contains("media=cdrom") {
                continue;
            }
            if let Some((storage, _)) = value.split_once(':') {
                if !storage.is_empty() && !storages.iter().any(|s| s == storage) {
                    storages.push(storage.to_owned());
                }
            }
        } else if base == "net" {
            if let Some(b) = value
                .split(',')
                .find_map(|kv| kv.strip_prefix("bridge="))
                .filter(|b| !bridges.iter().any(|x| x == b))
            {
                bridges.push(b.to_owned());
            }
        }
    }
    (storages, bridges)
}

/// Refuses (exit 3) when the login lacks a privilege a planned reset needs, before
/// anything changes; `root@pam` holds every one. Permissions that cannot be read are not
/// guessed at (the reset's own requests then tell).
async fn privileges(
    hv: &ProxmoxLab,
    spec: &lab_core::LabSpec,
    baseline: bool,
    plan: &[Planned],
    template_config: Option<&pve_vm::GuestConfig>,
) -> anyhow::Result<()> {
    use crate::operator::{On, Sent};
    let client = hv.vm_api().client();
    let who = client.auth_id();
    if who == "root@pam" || plan.is_empty() {
        return Ok(());
    }
    const Q: &str = "/nodes/{node}/qemu/{vmid}";
    const fn s(method: &'static str, path: &'static str, params: &'static [&'static str]) -> Sent {
        Sent {
            method,
            path,
            params,
            on: On::Student,
        }
    }
    let (storages, bridges) = template_config
        .map(storages_and_bridges)
        .unwrap_or_default();
    let pool = spec.name.pool();
    let access = AccessApi::new(client.clone());
    let acl_paths: Vec<String> = match access.acl().await {
        Ok(list) => list.iter().map(|e| e.path.as_str().to_owned()).collect(),
        Err(_) => Vec::new(),
    };
    // (host, ACL path) → the privileges it needs there.
    let mut wanted: Vec<(String, String, pve_schema::Need)> = Vec::new();
    for p in plan {
        let mut sends = vec![s("POST", "/nodes/{node}/qemu/{vmid}/status/start", &[])];
        let clone_source = p
            .source
            .as_ref()
            .map_or(spec.template.get(), |s| s.template.get());
        match p.path {
            ResetPath::Rollback => sends.push(s(
                "POST",
                "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
                &[],
            )),
            ResetPath::Reclone => {
                sends.extend([
                    s("POST", "/nodes/{node}/qemu/{vmid}/status/stop", &[]),
                    s("DELETE", Q, &["purge", "destroy-unreferenced-disks"]),
                    Sent {
                        method: "POST",
                        path: "/nodes/{node}/qemu/{vmid}/clone",
                        params: &["newid", "name", "pool", "full", "description"],
                        on: On::Template,
                    },
                    s("PUT", "/nodes/{node}/qemu/{vmid}/config", &["tags", "net0"]),
                    s("PUT", "/nodes/{node}/qemu/{vmid}/firewall/options", &[]),
                    s("POST", "/nodes/{node}/qemu/{vmid}/firewall/rules", &[]),
                ]);
                if baseline {
                    sends.push(s(
                        "POST",
                        "/nodes/{node}/qemu/{vmid}/snapshot",
                        &["snapname"],
                    ));
                }
                let guest_path = format!("/vms/{}", p.vmid);
                if p.resume
                    .as_ref()
                    .map_or_else(|| acl_paths.contains(&guest_path), |i| !i.acl.is_empty())
                {
                    sends.push(s("PUT", "/access/acl", &["path", "roles", "users"]));
                }
            }
        }
        for sent in &sends {
            let vm = match sent.on {
                On::Template => clone_source,
                On::Student => p.vmid,
            };
            for need in crate::operator::needs_of(sent)? {
                let path = need
                    .path
                    .replace("{vmid}", &vm.to_string())
                    .replace("{newid}", &p.vmid.to_string())
                    .replace("{pool}", pool.as_str())
                    .replace("{poolid}", pool.as_str())
                    .replace("{path}", &format!("/vms/{}", p.vmid))
                    .replace("{node}", p.node.as_deref().unwrap_or("localhost"));
                let expand = |key: &str, values: &[String]| -> Vec<String> {
                    if path.contains(key) {
                        values.iter().map(|v| path.replace(key, v)).collect()
                    } else {
                        vec![path.clone()]
                    }
                };
                let paths: Vec<String> = expand("{storage}", &storages)
                    .into_iter()
                    .flat_map(|p| {
                        if p.contains("{bridge}") {
                            bridges.iter().map(|b| p.replace("{bridge}", b)).collect()
                        } else {
                            vec![p]
                        }
                    })
                    .collect();
                for path in paths.into_iter().filter(|p| !p.contains('{')) {
                    wanted.push((p.host.clone(), path, need.clone()));
                }
            }
        }
    }
    let mut held = crate::doctor::OwnPrivileges::default();
    let mut missing: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (host, path, need) in &wanted {
        if let Some(what) = held.lacking(client, path, need).await {
            missing.entry(host.clone()).or_default().insert(what);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(h, w)| format!("{h}: {}", w.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    Err(fail::with_code(
        fail::AUTH,
        format!(
            "lab {}: {who} lacks privileges the reset needs ({}); nothing was changed: grant \
             them (`labctl setup operator --dry-run` shows the role labctl needs) or reset \
             with a login that holds them",
            spec.name,
            list.join("; ")
        ),
    ))
}

/// What a re-clone must give back, read from the guest before it is destroyed.
async fn read_intent(
    hv: &ProxmoxLab,
    access: &AccessApi,
    spec: &lab_core::LabSpec,
    vmid: lab_core::VmId,
    to: &str,
) -> anyhow::Result<Intent> {
    use lab_core::Fencing;
    let identity = hv
        .identity(vmid)
        .await
        .with_context(|| format!("reading the NICs and tags of VM {vmid}"))?;
    let fenced = hv
        .fenced(&spec.name, vmid)
        .await
        .with_context(|| format!("reading the fence of VM {vmid}"))?;
    let path = AclPath::vm(vmid);
    let acl = access
        .acl()
        .await
        .context("reading the ACL (the student's rights on the guest are given back)")?
        .iter()
        .filter(|e| e.path == path)
        .map(Acl::of)
        .collect();
    Ok(Intent {
        vmid: vmid.get(),
        to: to.to_owned(),
        since: now(),
        nics: identity
            .nics
            .into_iter()
            .map(|n| Nic {
                net: n.net,
                mac: n.mac,
            })
            .collect(),
        tags: identity.tags,
        fenced,
        acl,
        uuid: guest_uuid(hv, vmid.get()).await?,
        node: None,
        since_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
    })
}

fn print_plan(
    lab: &LabName,
    to: &str,
    plan: &[Planned],
    dry_run: bool,
    format: Format,
) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = plan
        .iter()
        .map(|p| {
            json!({"hostname": p.host, "student": p.student, "vmid": p.vmid, "node": p.node,
                   "how": p.path.as_str(), "why": p.why})
        })
        .collect();
    if format == Format::Json {
        if dry_run {
            print_json(&json!({"lab": lab.as_str(), "to": to, "dry_run": true, "plan": rows}))?;
        }
        return Ok(());
    }
    let mut sheet = Sheet::new(&["HOSTNAME", "STUDENT", "VMID", "NODE", "HOW", "WHY"]);
    for p in plan {
        sheet.row(vec![
            line_safe(&p.host),
            p.student
                .as_deref()
                .map_or_else(|| "-".to_owned(), line_safe),
            p.vmid.to_string(),
            p.node.clone().unwrap_or_else(|| "-".to_owned()),
            p.path.as_str().to_owned(),
            line_safe(&p.why),
        ]);
    }
    if dry_run {
        sheet.print(format, &rows)?;
        println!("dry run: nothing changed");
    } else {
        eprint!("{}", sheet.to_table());
    }
    Ok(())
}

/// An error and its causes, each said once: a cause whose text an outer error already
/// carries (a backend error quoting the HTTP error it wraps) is not repeated.
fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn report(
    lab: &LabName,
    to: &str,
    results: &[(&Planned, Ended)],
    format: Format,
) -> anyhow::Result<()> {
    let mut sheet = Sheet::new(&[
        "HOSTNAME",
        "STUDENT",
        "VMID",
        "NODE",
        "HOW",
        "OUTCOME",
        "ADDRESSES",
        "MACS",
    ]);
    let mut rows = Vec::new();
    for (p, r) in results {
        let (outcome, addresses, macs, task, error) = match r {
            Ended::Done(o) => (
                "done",
                o.addresses.clone(),
                o.macs.clone(),
                o.task.clone(),
                None,
            ),
            Ended::Failed(e) => ("failed", Vec::new(), Vec::new(), None, Some(chain_text(e))),
            Ended::Interrupted { recorded } => (
                "interrupted",
                Vec::new(),
                Vec::new(),
                None,
                Some(format!(
                    "{}: interrupted{}",
                    p.host,
                    if *recorded {
                        " after the re-clone was recorded: the next run completes it"
                    } else if p.path == ResetPath::Rollback {
                        " during the rollback (a rollback task in flight still finishes): \
                         the next run rolls back again"
                    } else {
                        " before its guest was destroyed"
                    }
                )),
            ),
            Ended::NotStarted => ("not started", Vec::new(), Vec::new(), None, None),
        };
        let rebased = matches!(r, Ended::Done(o) if o.rebased);
        sheet.row(vec![
            line_safe(&p.host),
            p.student
                .as_deref()
                .map_or_else(|| "-".to_owned(), line_safe),
            p.vmid.to_string(),
            p.node.clone().unwrap_or_else(|| "-".to_owned()),
            p.path.as_str().to_owned(),
            if rebased {
                "done (new baseline)".to_owned()
            } else {
                outcome.to_owned()
            },
            if addresses.is_empty() {
                "-".into()
            } else {
                addresses.join(" ")
            },
            if macs.is_empty() {
                "-".into()
            } else {
                macs.join(" ")
            },
        ]);
        if let Some(e) = &error {
            eprintln!("labctl: {}", line_safe(e));
        }
        rows.push(json!({
            "hostname": p.host, "student": p.student, "vmid": p.vmid, "node": p.node,
            "how": p.path.as_str(), "why": p.why,
            "outcome": outcome, "new_baseline": rebased, "addresses": addresses, "macs": macs,
            "task": task, "error": error,
        }));
    }
    if format == Format::Json {
        print_json(&json!({"lab": lab.as_str(), "to": to, "dry_run": false, "students": rows}))
    } else {
        sheet.print(format, &rows)
    }
}

/// The lab backend over `client`, with waits matched to `LABCTL_TIME_SCALE`.
pub(crate) fn backend_over(client: &pve_auth::PveClient) -> anyhow::Result<ProxmoxLab> {
    Ok(match crate::connect::time_scale()? {
        Some(f) => ProxmoxLab::with_timing(client.clone(), pve_vm::Timing::default().scaled(f)),
        None => ProxmoxLab::new(client.clone()),
    })
}

/// `lab up` with `[snapshots] baseline = true`: snapshot `baseline` of every student that
/// has none (a student that has one keeps it, so a second `up` takes none); answers
/// (taken, kept). A guest locked by a task still running is asked again a few times.
pub(crate) async fn take_baseline(
    hv: &ProxmoxLab,
    students: &[(lab_core::VmId, String)],
    vmstate: bool,
) -> anyhow::Result<(usize, usize)> {
    use futures::stream::{self, StreamExt};
    let results: Vec<(String, lab_core::Result<bool>)> = stream::iter(students)
        .map(|(vmid, hostname)| async move {
            // Taken once every student is ready; a guest still booting is snapshotted as
            // it is (disk only unless `vmstate`).
            let mut tries = 0;
            let r = loop {
                match hv.snapshots(*vmid).await {
                    Ok(l) if l.iter().any(|x| x.name == BASELINE) => break Ok(false),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
                match hv.snapshot(*vmid, BASELINE.to_owned(), vmstate).await {
                    Ok(_) => break Ok(true),
                    Err(lab_core::Error::AlreadyExists { .. }) => break Ok(false),
                    Err(lab_core::Error::Busy { .. }) if tries < 30 => {
                        tries += 1;
                        tokio::time::sleep(scaled(std::time::Duration::from_secs(2))).await;
                    }
                    Err(e) => break Err(e),
                }
            };
            (hostname.clone(), r)
        })
        .buffered(8)
        .collect()
        .await;
    let mut failed = Vec::new();
    let (mut taken, mut kept) = (0, 0);
    for (host, r) in results {
        match r {
            Ok(true) => taken += 1,
            Ok(false) => kept += 1,
            Err(e) => failed.push(format!(
                "{}: {}",
                line_safe(&host),
                line_safe(&e.to_string())
            )),
        }
    }
    if !failed.is_empty() {
        return Err(fail::with_code(
            fail::INCOMPLETE,
            format!(
                "the lab is up, but the snapshot {BASELINE} failed for {} students ({}); run \
                 `lab up` again (students that have it keep it)",
                failed.len(),
                failed.join("; ")
            ),
        ));
    }
    Ok((taken, kept))
}

/// The snapshot `lab up` takes and `lab reset` goes back to by default.
pub(crate) const BASELINE: &str = "baseline";

fn scaled(d: std::time::Duration) -> std::time::Duration {
    match crate::connect::time_scale() {
        Ok(Some(f)) => d.mul_f64(f),
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn students_resolve_by_host_login_or_roster_name_and_unknown_ones_are_named() {
        let lab = LabName::new("rst").unwrap();
        let hosts = vec!["rst-01".to_owned(), "rst-02".to_owned()];
        let got = resolve(
            &["rst-02".into(), "rst-01@pve".into(), "rst-02".into()],
            &hosts,
            None,
            &lab,
        )
        .unwrap();
        assert_eq!(got, ["rst-02", "rst-01"]);
        let e = resolve(&["nobody".into()], &hosts, None, &lab)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nobody\"") && e.contains("rst-01, rst-02"),
            "{e}"
        );
    }

    #[test]
    fn an_acl_record_round_trips_and_a_bad_kind_is_refused() {
        let a = Acl {
            path: "/vms/5000".into(),
            kind: "user".into(),
            who: "rst-01@pve".into(),
            role: "LabctlExam".into(),
            propagate: true,
        };
        assert_eq!(Acl::of(&a.entry().unwrap()), a);
        let bad = Acl {
            kind: "robot".into(),
            ..a
        };
        assert!(bad.entry().unwrap_err().to_string().contains("robot"));
    }
}
