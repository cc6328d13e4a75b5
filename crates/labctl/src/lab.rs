//! `labctl lab plan|up|status|ips|down [LAB.toml]`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use lab_core::{
    apply_with, plan_down, plan_up, status, teardown_planned, DownOptions, Hypervisor, Interrupt,
    LabName, LabReport, LabSpec, StudentAction, StudentStatus, Timeouts,
};
use serde::Serialize;
use serde_json::json;

use crate::labfile::{self, Lab, LabFile, Overrides};
use crate::output::{line_safe, print_json, Format, Sheet};
use crate::progress::{half_done, Bars};
use crate::roster::Named;

/// The lab subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Show what `up` would create, start, fence and leave alone (reads only).
    #[command(after_help = "\
Examples:
  labctl lab plan examples/exam.toml
  labctl lab plan examples/exam.toml -c 20 -o json
  labctl lab plan -n exam1 -t 9000 --roster students.csv --teacher 10.10.0.1")]
    Plan(SpecArgs),
    /// Clone, start and wait for the students, read their addresses, fence them.
    ///
    /// Re-running is safe: students that exist (same lab, same host name) are kept or
    /// started, missing ones are cloned, and the fence is brought up to date.
    #[command(after_help = "\
Examples:
  labctl lab up examples/exam.toml
  labctl lab up examples/exam.toml --dry-run                          # the plan only
  labctl lab up -n exam1 -t 9000 -c 20 --hostname 'pc-{n:02}' --teacher 10.10.0.1
  labctl lab up -n exam1 -t 9000 --roster students.csv --teacher 10.10.0.1

Students get the lowest free ids of --ids, join pool <LAB> and carry the tag labctl.<LAB>;
`lab down <LAB.toml>` later removes exactly them.")]
    Up(UpArgs),
    /// The student sheet: student, host name, VMID, node, state, addresses.
    #[command(
        after_help = "Examples:\n  labctl lab status examples/exam.toml\n  labctl lab status -n exam1 -o csv > sheet.csv"
    )]
    Status(SelectArgs),
    /// `IP<TAB>HOSTNAME` per student (ready for /etc/hosts); -o json|csv: the sheet.
    #[command(
        after_help = "Examples:\n  labctl lab ips -n exam1 | sudo tee -a /etc/hosts\n  labctl lab ips examples/roster.toml -o json"
    )]
    Ips(SelectArgs),
    /// Lift the fence, stop and destroy the lab's students, remove its pool.
    ///
    /// Only guests in the lab's pool AND carrying its tag `labctl.<lab>` are touched,
    /// never a template; anything else is listed and left alone. Shows the list and asks on
    /// a terminal; without a terminal it needs --yes.
    #[command(after_help = "\
Examples:
  labctl lab down examples/exam.toml --dry-run   # lists what would be destroyed and what is kept
  labctl lab down -n exam1
  labctl lab down -n exam1 --yes                 # in scripts

If a guest fails, the others are still destroyed and labctl lists what was done; run the
same command again to finish.")]
    Down(DownArgs),
    /// Student logins on their own guests: grant, sheet, verify, revoke.
    #[command(subcommand)]
    Access(crate::access::AccessCommand),
    /// Run every probe of the lab's checks once per student and keep the raw evidence.
    ///
    /// Inside probes go through each student's guest agent, outside probes through the
    /// teacher's guest (`[exam] teacher`) or from this machine. The evidence directory
    /// (default `<lab>-evidence`) holds per student and probe the request, UTC times, exit
    /// code, output and a sha256, sealed by a MANIFEST.sha256. Killed or interrupted, run
    /// it again: finished probes are kept.
    #[command(after_help = "\
Examples:
  labctl lab collect examples/exam.toml
  labctl lab collect examples/exam.toml --evidence /srv/exam1/evidence
  labctl lab collect examples/exam.toml --redo-errors     # once a stopped agent answers again

The checks language: crates/lab-grade/README.md; a working example: examples/exam.toml.")]
    Collect(crate::evaluate::CollectArgs),
    /// Grade the stored evidence: a pure function of the checks and the evidence.
    ///
    /// Sends no request and needs no cluster: the same checks and evidence give the same
    /// bytes. Fix a check, grade again, the whole class is re-graded offline. Exit 1 when
    /// a check could not be judged for someone (outcome `error`: no points, not a fail).
    #[command(after_help = "\
Examples:
  labctl lab grade examples/exam.toml
  labctl lab grade examples/exam.toml -o csv > grades.csv
  labctl lab grade examples/exam.toml -o json --junit grades.xml --html report/")]
    Grade(crate::evaluate::GradeArgs),
    /// Collect, then grade (`lab collect` + `lab grade`).
    #[command(after_help = "\
Examples:
  labctl lab check examples/exam.toml
  labctl lab check examples/exam.toml -o json --html report/")]
    Check(crate::evaluate::CheckArgs),
    /// Find mistakes in the checks before the exam (no cluster needed).
    ///
    /// Unknown probes, regexes and JSON paths that do not compile, `requires` that are
    /// unknown or circular, `{{values}}` a roster row lacks, checks worth no points.
    #[command(
        after_help = "Examples:\n  labctl lab lint examples/exam.toml\n  labctl lab lint examples/exam.toml -o json"
    )]
    Lint(crate::evaluate::LintArgs),
    /// Prove the checks: a reference guest passes them all, and each check's mutant (a
    /// command that breaks exactly that task, run on a full clone of the reference) fails
    /// exactly that check and those that require it.
    ///
    /// The reference is never changed; each clone is destroyed afterwards. Exit 1 naming
    /// each check that does not hold.
    #[command(after_help = "\
Examples:
  labctl lab selftest examples/exam.toml --reference 4000
  labctl lab selftest examples/roster.toml --reference 4000 --as 'Zoë Müller' -o json")]
    Selftest(crate::evaluate::SelftestArgs),
    /// Take a named snapshot of every student (e.g. `baseline` right after `up`).
    ///
    /// A student that has a snapshot of that name keeps it (reported `kept`): running it
    /// again never takes a second one. Asks on a terminal (on ZFS a newer snapshot makes
    /// older ones unreachable for a rollback); without one it needs --yes.
    #[command(after_help = "\
Examples:
  labctl lab snapshot examples/exam.toml baseline --yes
  labctl lab snapshot examples/exam.toml before-part2 --vmstate --dry-run")]
    Snapshot(crate::freeze::SnapshotArgs),
    /// The deadline: cut every student's access at the same moment, collect the checks'
    /// evidence, snapshot `deadline-<utc>`, then take every link down (MAC kept).
    ///
    /// Access goes for the whole class with one write (the exam role's privileges), then
    /// users are disabled, ACL entries removed and open consoles stopped. The manifest
    /// (`<lab>-freeze.json`) records every step of every student with its UTC time and
    /// task ids, and the measured access-cut spread. Killed or failed, run it again: only
    /// missing steps run, and no student gets a second snapshot.
    #[command(after_help = "\
Examples:
  labctl lab freeze examples/exam.toml --dry-run
  labctl lab freeze examples/exam.toml --at 14:30 --yes     # UTC; Ctrl-C before it cancels
  labctl lab freeze examples/exam.toml --yes --stop --vmstate
  labctl lab status examples/exam.toml                      # FROZEN shows when")]
    Freeze(crate::freeze::FreezeArgs),
    /// Give frozen students their rights and links back: to one (an extension) or to all
    /// (the exam continues). With --minutes, count down and freeze them again.
    #[command(after_help = "\
Examples:
  labctl lab unfreeze examples/exam.toml --yes                               # everyone
  labctl lab unfreeze examples/exam.toml --student 'Zoë Müller' --minutes 10 --yes
      # counts down 10 minutes, then freezes her again (Ctrl-C: at once)")]
    Unfreeze(crate::freeze::UnfreezeArgs),
    /// Put students' guests back to a snapshot (default `baseline`) keeping their id, MAC
    /// (so address), name, tags, pool, fence and ACL.
    ///
    /// Per student: a rollback where the storage reaches the snapshot (LVM-thin: any; ZFS:
    /// only the most recent), otherwise destroy and re-clone from the template; the plan
    /// says which and why. Frozen students are refused (unfreeze first). Asks on a
    /// terminal, needs --yes off one. Killed or interrupted, run it again: an unfinished
    /// re-clone is completed from `<lab>-reset.json`.
    #[command(after_help = "\
Examples:
  labctl lab reset examples/exam.toml exam1-03 --dry-run
  labctl lab reset examples/exam.toml 'Zoë Müller' --yes
  labctl lab reset examples/exam.toml exam1-03 exam1-07 --to before-part2 --yes -o json")]
    Reset(crate::reset::ResetArgs),
}

/// The spec: a lab file and/or flags (flags win).
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The lab file (TOML; see examples/exam.toml for every field).
    #[arg(value_name = "LAB.toml")]
    file: Option<PathBuf>,
    /// FOSS-Cloud classrooms (`backend = "fosscloud"`): the vm-manager URL, instead of the
    /// file's `[fosscloud] url`.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Lab name: 1-14 characters, a lower-case letter, then lower-case letters, digits or
    /// `-`. Names the pool, the tag `labctl.<lab>` and the firewall group `iso-<lab>`.
    /// Beats the lab file's `name`, which beats LABCTL_LAB.
    #[arg(long, short = 'n', value_name = "LAB")]
    name: Option<String>,
    /// Template to clone from (a VMID).
    #[arg(long, short = 't', value_name = "VMID")]
    template: Option<String>,
    /// Number of students (1-500).
    #[arg(long, short = 'c', value_name = "N")]
    count: Option<u32>,
    /// Roster CSV of students (a `name` column, optional `id` and `email`): host names are
    /// made from the names.
    #[arg(long, value_name = "CSV")]
    roster: Option<PathBuf>,
    /// Ids the students may take; the lowest free ones are used. Default 5000-5999.
    #[arg(long, value_name = "FIRST-LAST")]
    ids: Option<String>,
    /// Host name pattern: letters, digits and `-` around the student number (from 1),
    /// written as n in braces, or `{n:02}` to zero-pad to 2 digits (`{n:03}`: 3, …).
    /// Default: `<lab>-{n:02}`. Not with a roster (its names make the host names).
    #[arg(long, value_name = "PATTERN")]
    hostname: Option<String>,
    /// Address students may reach (the teacher's machine); repeat for several. Without it
    /// (and without `teachers` in the file) the students are not fenced.
    #[arg(long = "teacher", value_name = "IP")]
    teachers: Vec<IpAddr>,
    /// Full clones (independent disks) instead of linked clones.
    #[arg(long, conflicts_with = "linked")]
    full: bool,
    /// Linked clones (the default; beats `clone = "full"` in the lab file).
    #[arg(long)]
    linked: bool,
    /// Write requests in flight per node, 1-64 (default 4: a node has 3 API workers, one
    /// more waits queued). Clones are limited by the storage's capacity and waits for
    /// agents and addresses by nothing, whatever this says. (`lab down --concurrency`
    /// counts guests instead.)
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Longest wait for a student's guest agent, in seconds (1-86400). Default 300.
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ready_timeout: Option<u64>,
    /// Nodes new students may land on, comma-separated (default: every node that holds
    /// the template, a replica of it, or its shared storage). Lab file: `nodes = [...]`.
    #[arg(long, value_name = "N1,N2", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// `spread` (default: each student to the node with the most free memory) or `pack`
    /// (fill one node first). Lab file: `placement = "..."`.
    #[arg(long, value_name = "POLICY")]
    placement: Option<String>,
    /// Clone even when the class does not fit the nodes' free memory (starts may fail).
    #[arg(long)]
    overcommit: bool,
}

/// `lab up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Only show what would be created, started and fenced (same as `lab plan`).
    #[arg(long)]
    dry_run: bool,
}

/// Which lab: a file or a name (and a roster for the sheet's names).
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// The lab file (its name and roster are used).
    #[arg(value_name = "LAB.toml")]
    file: Option<PathBuf>,
    /// FOSS-Cloud classrooms (`backend = "fosscloud"`): the vm-manager URL, instead of the
    /// file's `[fosscloud] url`.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Lab name: beats the lab file's `name`, which beats LABCTL_LAB.
    #[arg(long, short = 'n', value_name = "LAB")]
    name: Option<String>,
    /// Roster CSV, so the sheet shows the students' names.
    #[arg(long, value_name = "CSV")]
    roster: Option<PathBuf>,
}

/// `lab down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    lab: SelectArgs,
    /// Guests torn down at the same time, 1-64 (default 16); write requests in flight per
    /// node stay at 4 (what `lab up --concurrency` sets).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Only show what would be destroyed and what would be left alone.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

impl DownArgs {
    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(DOWN_CONCURRENCY)
    }
}

/// Guests torn down at the same time unless `--concurrency` says otherwise.
const DOWN_CONCURRENCY: usize = 16;

/// What the checks found, handed to [`run`].
#[derive(Debug)]
pub enum Checked {
    /// `plan`/`up`: the whole spec.
    Spec(Box<Lab>),
    /// `status`/`ips`/`down`: the name and, if known, the roster.
    Select(LabName, Option<Vec<Named>>),
}

impl SpecArgs {
    fn resolve(&self) -> anyhow::Result<Lab> {
        let file = self.file.as_deref().map(LabFile::read).transpose()?;
        labfile::resolve(
            file.as_ref(),
            &Overrides {
                name: self.name.clone(),
                template: self.template.clone(),
                count: self.count,
                roster: self.roster.clone(),
                ids: self.ids.clone(),
                hostname: self.hostname.clone(),
                teachers: self.teachers.clone(),
                full: if self.full {
                    Some(true)
                } else if self.linked {
                    Some(false)
                } else {
                    None
                },
                concurrency: self.concurrency,
                ready_timeout: self.ready_timeout,
                nodes: self.nodes.clone(),
                placement: self.placement.clone(),
                overcommit: self.overcommit,
            },
        )
    }
}

impl SelectArgs {
    /// `--url`, which only FOSS-Cloud classrooms take.
    pub(crate) fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The lab's name only (the roster, even if named, is not read).
    pub(crate) fn resolve_name(&self) -> anyhow::Result<LabName> {
        let file = self.file.as_deref().map(LabFile::read).transpose()?;
        labfile::lab_name(self.name.as_deref(), file.as_ref().map(|(f, _)| f))
    }

    /// The lab file, if one was given.
    pub(crate) fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// The lab's name and, if known, its roster.
    pub(crate) fn resolve(&self) -> anyhow::Result<(LabName, Option<Vec<Named>>)> {
        let file = self.file.as_deref().map(LabFile::read).transpose()?;
        let name = labfile::lab_name(self.name.as_deref(), file.as_ref().map(|(f, _)| f))?;
        let roster = labfile::roster_of(file.as_ref(), self.roster.as_deref())?;
        Ok((name, roster))
    }
}

impl LabCommand {
    /// A FOSS-Cloud classroom (the lab file says `backend = "fosscloud"`): the verb and
    /// the checked classroom; `None` for a Proxmox lab. `--fingerprint`, `--ca-file` and
    /// `--insecure` apply to the FOSS-Cloud server (over the file and `FC_*`); a flag that
    /// only a Proxmox lab has is refused, never silently dropped.
    pub fn classroom(
        &self,
        conn: &crate::connect::Connection,
    ) -> anyhow::Result<Option<(crate::classroom::Verb, crate::classroom::Classroom)>> {
        use crate::classroom::{self, Verb};
        let (verb, file, url, name) = match self {
            LabCommand::Plan(a) => (Verb::Plan, &a.file, &a.url, &a.name),
            LabCommand::Up(u) => (
                if u.dry_run { Verb::Plan } else { Verb::Up },
                &u.spec.file,
                &u.spec.url,
                &u.spec.name,
            ),
            LabCommand::Status(s) => (Verb::Status, &s.file, &s.url, &s.name),
            LabCommand::Ips(s) => (Verb::Ips, &s.file, &s.url, &s.name),
            LabCommand::Down(d) => (Verb::Down, &d.lab.file, &d.lab.url, &d.lab.name),
            LabCommand::Access(_)
            | LabCommand::Collect(_)
            | LabCommand::Grade(_)
            | LabCommand::Check(_)
            | LabCommand::Lint(_)
            | LabCommand::Selftest(_)
            | LabCommand::Snapshot(_)
            | LabCommand::Freeze(_)
            | LabCommand::Unfreeze(_)
            | LabCommand::Reset(_) => return Ok(None),
        };
        let Some(room) = classroom::read_if_fosscloud(file.as_deref())? else {
            if url.is_some() {
                return Err(crate::fail::usage(
                    "--url is for FOSS-Cloud classrooms (backend = \"fosscloud\"); a Proxmox \
                     lab takes --host",
                ));
            }
            return Ok(None);
        };
        let given = self.proxmox_flags(conn);
        if !given.is_empty() {
            let flags = given.join(", ");
            return Err(crate::fail::usage(format!(
                "{flags}: {} for Proxmox labs, but {} is a FOSS-Cloud classroom (backend = \
                 \"fosscloud\"), which takes its seats from [fosscloud] macs and its server \
                 from [fosscloud] url / --url: drop {flags}",
                if given.len() == 1 { "a flag" } else { "flags" },
                file.as_deref()
                    .map_or_else(String::new, |p| p.display().to_string()),
            )));
        }
        let o = classroom::Overrides {
            url: url.clone(),
            name: name.clone(),
            fingerprint: conn.fingerprint.clone(),
            ca_file: conn.ca_file.clone(),
            insecure: conn.insecure,
        };
        Ok(Some((verb, classroom::resolve(&room, &o)?)))
    }

    /// The Proxmox-only flags given on the command line.
    fn proxmox_flags(&self, conn: &crate::connect::Connection) -> Vec<&'static str> {
        let mut given = Vec::new();
        let mut flag = |name: &'static str, on: bool| {
            if on {
                given.push(name);
            }
        };
        flag("--host", conn.host.is_some());
        flag("--user", conn.user.is_some());
        flag("--cluster", conn.cluster.is_some());
        match self {
            LabCommand::Plan(a) | LabCommand::Up(UpArgs { spec: a, .. }) => {
                flag("--template", a.template.is_some());
                flag("--count", a.count.is_some());
                flag("--roster", a.roster.is_some());
                flag("--ids", a.ids.is_some());
                flag("--hostname", a.hostname.is_some());
                flag("--teacher", !a.teachers.is_empty());
                flag("--full", a.full);
                flag("--linked", a.linked);
                flag("--concurrency", a.concurrency.is_some());
                flag("--ready-timeout", a.ready_timeout.is_some());
            }
            LabCommand::Status(s) | LabCommand::Ips(s) => flag("--roster", s.roster.is_some()),
            LabCommand::Down(d) => {
                flag("--roster", d.lab.roster.is_some());
                flag("--concurrency", d.concurrency.is_some());
            }
            LabCommand::Access(_)
            | LabCommand::Collect(_)
            | LabCommand::Grade(_)
            | LabCommand::Check(_)
            | LabCommand::Lint(_)
            | LabCommand::Selftest(_)
            | LabCommand::Snapshot(_)
            | LabCommand::Freeze(_)
            | LabCommand::Unfreeze(_)
            | LabCommand::Reset(_) => {}
        }
        given
    }

    /// Checks the input that needs no cluster (so typos fail before a password prompt).
    pub fn check(&self, format: Format) -> anyhow::Result<Checked> {
        Ok(match self {
            LabCommand::Plan(a) | LabCommand::Up(UpArgs { spec: a, .. }) => {
                if format == Format::Csv && !matches!(self, LabCommand::Up(u) if !u.dry_run) {
                    format.not_csv("lab plan")?;
                }
                Checked::Spec(Box::new(a.resolve()?))
            }
            LabCommand::Status(s) | LabCommand::Ips(s) => {
                let (n, r) = s.resolve()?;
                Checked::Select(n, r)
            }
            LabCommand::Down(d) => {
                format.not_csv("lab down")?;
                check_concurrency(d.concurrency())?;
                // Teardown needs the name only: a deleted roster must not stop it.
                Checked::Select(d.lab.resolve_name()?, None)
            }
            LabCommand::Access(_)
            | LabCommand::Collect(_)
            | LabCommand::Grade(_)
            | LabCommand::Check(_)
            | LabCommand::Lint(_)
            | LabCommand::Selftest(_)
            | LabCommand::Snapshot(_)
            | LabCommand::Freeze(_)
            | LabCommand::Unfreeze(_)
            | LabCommand::Reset(_) => {
                anyhow::bail!("internal: `lab access` and the evaluation verbs are dispatched before the other lab verbs")
            }
        })
    }
}

fn check_concurrency(n: usize) -> anyhow::Result<()> {
    if !(1..=lab_core::MAX_CONCURRENCY).contains(&n) {
        return Err(lab_core::Error::invalid(
            "concurrency",
            n.to_string(),
            format!("between 1 and {}", lab_core::MAX_CONCURRENCY),
        )
        .into());
    }
    Ok(())
}

/// Waits matched to a simulator's time scale (`LABCTL_TIME_SCALE`), else as given.
fn scaled(t: Timeouts) -> anyhow::Result<Timeouts> {
    Ok(match crate::connect::time_scale()? {
        Some(f) => t.scaled(f),
        None => t,
    })
}

/// One line of the student sheet. A new column is one field here and one cell in
/// [`sheet`] (the lead's `fenced` goes next to `addresses`).
#[derive(Debug, Serialize)]
struct SheetRow {
    student: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    student_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    hostname: String,
    vmid: u32,
    node: String,
    state: String,
    addresses: Vec<IpAddr>,
    /// Whether the lab's fence holds (`null`: not checked).
    fenced: Option<bool>,
    /// When `lab freeze` took the student's links down (UTC; from `<lab>-freeze.json` in
    /// the current directory), `null` when not frozen.
    frozen: Option<String>,
    /// A topology lab: the student's own networks as `name=vnet` (left out otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    networks: Vec<String>,
}

/// Fills each row's networks: the lab's vnets whose alias names the row's student (a
/// machine `<student>-<role>`). A backend without networks leaves them empty.
async fn with_networks(
    hv: &dyn lab_core::Hypervisor,
    lab: &LabName,
    rows: &mut [SheetRow],
) -> anyhow::Result<()> {
    let nets = match hv.lab_networks(lab).await {
        Err(lab_core::Error::Unsupported { .. }) => return Ok(()),
        other => other?,
    };
    for r in rows.iter_mut() {
        r.networks = nets
            .iter()
            .filter(|n| {
                r.hostname
                    .strip_prefix(n.student.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .map(|n| {
                let pending = if n.pending { " (pending)" } else { "" };
                format!("{}={}{pending}", n.network, n.id)
            })
            .collect();
    }
    Ok(())
}

fn sheet_rows(rows: &[StudentStatus], roster: Option<&[Named]>) -> Vec<SheetRow> {
    let by_host: BTreeMap<&str, &Named> = roster
        .unwrap_or_default()
        .iter()
        .map(|n| (n.hostname.as_str(), n))
        .collect();
    let mut out: Vec<SheetRow> = rows
        .iter()
        .map(|r| {
            // A topology lab's machines are `<student>-<role>`: the longest roster host
            // name the machine's name continues.
            let who = by_host.get(r.hostname.as_str()).or_else(|| {
                by_host
                    .iter()
                    .filter(|(h, _)| {
                        r.hostname
                            .strip_prefix(**h)
                            .is_some_and(|rest| rest.starts_with('-'))
                    })
                    .max_by_key(|(h, _)| h.len())
                    .map(|(_, n)| n)
            });
            SheetRow {
                student: who.map(|n| n.student.name.clone()),
                student_id: who.and_then(|n| n.student.id.clone()),
                email: who.and_then(|n| n.student.email.clone()),
                hostname: r.hostname.clone(),
                vmid: r.vmid.get(),
                node: r.node.to_string(),
                state: r.status.to_string(),
                fenced: r.fenced,
                frozen: None,
                networks: Vec::new(),
                // Primary first, then the rest in the backend's order.
                addresses: {
                    let mut a = r.addresses.clone();
                    if let Some(p) = r.primary_address() {
                        a.retain(|x| *x != p);
                        a.insert(0, p);
                    }
                    a
                },
            }
        })
        .collect();
    out.sort_by_key(|r| r.vmid);
    out
}

fn sheet(rows: &[SheetRow]) -> Sheet {
    let networks = rows.iter().any(|r| !r.networks.is_empty());
    let mut head = vec![
        "STUDENT",
        "HOSTNAME",
        "VMID",
        "NODE",
        "STATE",
        "FENCED",
        "ADDRESSES",
        "FROZEN",
    ];
    if networks {
        head.push("NETWORKS");
    }
    let mut s = Sheet::new(&head);
    for r in rows {
        let mut cells = vec![
            r.student.clone().unwrap_or_else(|| "-".to_owned()),
            r.hostname.clone(),
            r.vmid.to_string(),
            r.node.clone(),
            r.state.clone(),
            match r.fenced {
                Some(true) => "yes".to_owned(),
                Some(false) => "NO".to_owned(),
                None => "-".to_owned(),
            },
            if r.addresses.is_empty() {
                "-".to_owned()
            } else {
                r.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            r.frozen.clone().unwrap_or_else(|| "-".to_owned()),
        ];
        if networks {
            cells.push(if r.networks.is_empty() {
                "-".to_owned()
            } else {
                r.networks.join(" ")
            });
        }
        s.row(cells);
    }
    s
}

fn print_plan(
    lab: &Lab,
    plan: &lab_core::Plan,
    placed: Option<&lab_core::PlacementPlan>,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Json {
        let names: BTreeMap<&str, &Named> = lab
            .roster
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|n| (n.hostname.as_str(), n))
            .collect();
        let action = |a: StudentAction| match a {
            StudentAction::Create => "create",
            StudentAction::Start => "start",
            StudentAction::Keep => "keep",
        };
        return print_json(&json!({
            "lab": plan.lab.as_str(),
            "dry_run": true,
            "template": plan.template.get(),
            "clone_mode": match plan.clone_mode { lab_core::CloneMode::Full => "full", _ => "linked" },
            "pool": plan.lab.pool(),
            "tag": plan.lab.tag(),
            "students": plan.students.iter().map(|s| {
                let mut row = json!({
                    "number": s.number,
                    "student": names.get(s.student()).map(|n| n.student.name.clone()),
                    "hostname": s.hostname,
                    "vmid": s.vmid.get(),
                    "action": action(s.action),
                    "fenced": !plan.fence.is_empty(),
                });
                if let Some(role) = &s.role {
                    row["role"] = json!(role);
                    row["template"] = json!(s.template.get());
                    row["networks"] = s
                        .nics
                        .iter()
                        .map(|n| n.bridge.clone().unwrap_or_else(|| lab_core::UPLINK.to_owned()))
                        .collect();
                }
                row
            }).collect::<Vec<_>>(),
            "networks": plan.networks.iter().map(|n| json!({
                "vnet": n.id,
                "student": n.student,
                "network": n.network,
                "subnet": n.subnet.map(|(a, p)| format!("{a}/{p}")),
            })).collect::<Vec<_>>(),
            "left_alone": plan.extra.iter().map(|g| json!({
                "vmid": g.vmid.get(), "name": g.name, "node": g.node.to_string(),
                "reason": "not a student of this plan",
            })).collect::<Vec<_>>(),
            "teachers": plan.fence,
            "creates": plan.creates(),
            "concurrency": lab.spec.concurrency,
            "timeouts": {
                "ready": lab.spec.timeouts.ready.as_secs_f64(),
                "address": lab.spec.timeouts.address.as_secs_f64(),
            },
            "placement": placed.map(placement_json),
        }));
    }
    print!("{plan}");
    if let Some(p) = placed {
        print!("{}", placement_table(p));
    }
    if let Some(r) = &lab.roster {
        println!("  students (host name: name):");
        for n in r {
            println!(
                "    {:<20} {}",
                line_safe(&n.hostname),
                line_safe(&n.student.name)
            );
        }
    }
    Ok(())
}

/// Brings the lab up. The one call of [`lab_core::apply`]: Ctrl-C or SIGTERM stops it
/// gracefully (in-flight steps settle), a second one ends the process at once.
async fn up(hv: &dyn Hypervisor, spec: &LabSpec) -> anyhow::Result<LabReport> {
    let bars = Bars::new();
    let interrupt = Interrupt::new();
    let _signals = crate::signals::on_interrupt(interrupt.clone(), "lab up");
    let result = apply_with(hv, spec, &|e| bars.event(e), &interrupt).await;
    bars.finish();
    if let Err(e) = &result {
        if let lab_core::Error::Interrupted { unfinished, .. } = e {
            eprintln!("interrupted; where each unfinished student stands:");
            for f in unfinished {
                eprintln!("  {}: {}", f.subject, f.message);
            }
            eprintln!(
                "to resume, run the same command again (it adopts what exists and clones \
                 nothing twice):\n  {}",
                resume_command()
            );
        }
        let done = bars.done();
        if !done.is_empty() {
            eprint!("{}", half_done("brought up", &done));
        }
    }
    result.with_context(|| format!("lab up {}", spec.name))
}

/// The command line as typed, shell-quoted where needed (argv holds no secrets: they come
/// only from the environment, a prompt or a file).
fn resume_command() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+{}".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lock one `lab up` or `lab down` holds on a lab while it changes it, so two runs on
/// this machine never clone (or destroy) the same students at once. It is an advisory
/// lock (`flock`) on a file under `$XDG_RUNTIME_DIR` (else the temp directory), keyed by
/// the cluster's address and the lab; the operating system releases it when the process
/// ends, however it ends. Two machines driving the same lab at once are not covered.
pub(crate) struct LabLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl LabLock {
    /// Takes the lock of `lab` on `host`, or fails (exit 1) naming the run that holds it.
    pub(crate) fn take(host: &str, lab: &LabName, verb: &str) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir)
            .join("labctl-locks");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the lock directory {}", dir.display()))?;
        let path = dir.join(format!("{}-{lab}.lock", lock_key(host)));
        match try_lock_file(&path)? {
            Ok(mut lock) => {
                // Who holds it, for the run that finds it taken (no secrets: argv has none).
                let note = format!("pid {}: {}\n", std::process::id(), resume_command());
                let _ = lock.set_len(0);
                let _ = lock.seek(std::io::SeekFrom::Start(0));
                let _ = lock.write_all(note.as_bytes());
                let _ = lock.flush();
                Ok(Self { _lock: lock })
            }
            Err(mut file) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
                let who = line_safe(who.trim());
                Err(crate::fail::with_code(
                    crate::fail::OTHER,
                    format!(
                        "lab {verb} {lab}: another labctl run is changing lab {lab} on {host} \
                         right now ({}); wait for it to finish, then run this again (lock {})",
                        if who.is_empty() {
                            "its pid is not known yet"
                        } else {
                            &who
                        },
                        path.display()
                    ),
                ))
            }
        }
    }
}

/// Opens `path` (created if missing) and takes an exclusive advisory lock (`flock`)
/// without waiting: the lock, or `Err(file)` when another process holds it. The
/// operating system releases it when the process ends, however it ends.
pub(crate) fn try_lock_file(
    path: &std::path::Path,
) -> anyhow::Result<Result<nix::fcntl::Flock<std::fs::File>, std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Ok(lock)),
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(file)),
        Err((_, e)) => Err(anyhow::anyhow!("locking {}: {e}", path.display())),
    }
}

/// A file-name-safe key for a cluster address (`https://pve1:8006` → `https-pve1-8006`).
pub(crate) fn lock_key(host: &str) -> String {
    let mut out: String = host
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.truncate(120);
    out
}

/// Runs a lab subcommand against `hv`; `checked` is what [`LabCommand::check`] returned.
pub async fn run(
    cmd: &LabCommand,
    checked: Checked,
    hv: &dyn Hypervisor,
    access: Option<&pve_access::AccessApi>,
    format: Format,
) -> anyhow::Result<()> {
    match (cmd, checked) {
        (LabCommand::Plan(_), Checked::Spec(lab))
        | (LabCommand::Up(UpArgs { dry_run: true, .. }), Checked::Spec(lab)) => {
            let plan = plan_up(hv, &lab.spec).await?;
            let placed = placement_of(hv, &lab.spec, &plan).await?;
            print_plan(&lab, &plan, placed.as_ref(), format)?;
            if format.is_table() {
                println!("dry run: nothing changed");
            }
            // A class that does not fit: exit 2 naming each short node (as `up` refuses).
            if let Some(refusal) = placed
                .as_ref()
                .filter(|_| !lab.spec.overcommit)
                .and_then(lab_core::PlacementPlan::refusal)
            {
                return Err(refusal.into());
            }
        }
        (LabCommand::Up(u), Checked::Spec(lab)) => {
            let _lock = LabLock::take(&host_of(access), &lab.spec.name, "up")?;
            if let Some(note) = crate::reset::pending_note(&lab.spec.name, u.spec.file.as_deref()) {
                eprintln!("{note}");
            }
            let report = match up(hv, &lab.spec).await {
                Ok(r) => r,
                Err(e) => {
                    // Incomplete: where each student stands, as the cluster shows it.
                    if let Ok(now) = status(hv, &lab.spec.name).await {
                        let rows = sheet_rows(&now, lab.roster.as_deref());
                        if !rows.is_empty() || !format.is_table() {
                            sheet(&rows).print(format, &rows)?;
                        }
                        let running = rows.iter().filter(|r| r.state == "running").count();
                        let (wanted, what) = match &lab.spec.topology {
                            Some(t) => (lab.spec.count as usize * t.machines.len(), "machines"),
                            None => (lab.spec.count as usize, "students"),
                        };
                        eprintln!(
                            "lab {}: {} of {wanted} {what} exist, {running} running; run the \
                             same command again to finish",
                            lab.spec.name,
                            rows.len(),
                        );
                    }
                    return Err(e);
                }
            };
            if lab.snapshots.baseline {
                let client = access.map(|a| a.client().clone()).ok_or_else(|| {
                    anyhow::anyhow!("internal: lab up with a baseline needs the PVE client")
                })?;
                let pl = crate::reset::backend_over(&client)?;
                let (taken, kept) = crate::reset::take_baseline(
                    &pl,
                    &report
                        .students
                        .iter()
                        .map(|s| (s.vmid, s.hostname.clone()))
                        .collect::<Vec<_>>(),
                    lab.snapshots.vmstate,
                )
                .await?;
                eprintln!(
                    "snapshot baseline{}: {taken} taken, {kept} kept (a student that has one \
                     keeps it)",
                    if lab.snapshots.vmstate {
                        " with RAM"
                    } else {
                        ""
                    }
                );
            }
            // Without a teacher address the fence is left as it is: show it as the
            // cluster has it (an earlier run may have fenced the students).
            let students = if report.fenced {
                report.students.clone()
            } else {
                status(hv, &lab.spec.name).await?
            };
            let mut rows = sheet_rows(&students, lab.roster.as_deref());
            with_networks(hv, &lab.spec.name, &mut rows).await?;
            sheet(&rows).print(format, &rows)?;
            let fenced_before = rows.iter().filter(|r| r.fenced == Some(true)).count();
            if format.is_table() {
                if !report.fenced && fenced_before > 0 {
                    println!(
                        "fence left as it was (no teacher address given): {fenced_before} of \
                         {} students fenced",
                        rows.len()
                    );
                } else if report.fenced {
                    let allowed: Vec<String> =
                        lab.spec.teachers.iter().map(ToString::to_string).collect();
                    println!(
                        "fenced: students reach only {} and not each other",
                        allowed.join(", ")
                    );
                } else {
                    println!("not fenced (no teacher address given)");
                }
            }
        }
        (LabCommand::Status(s), Checked::Select(name, roster)) => {
            let list = status(hv, &name).await?;
            let mut rows = sheet_rows(&list, roster.as_deref());
            with_networks(hv, &name, &mut rows).await?;
            let manifest = crate::freeze::default_manifest(&name, s.file());
            let frozen = match access {
                Some(a) => {
                    let vms = pve_vm::VmApi::new(a.client().clone());
                    crate::freeze::frozen_now(&vms, &manifest, &list).await
                }
                None => crate::freeze::frozen_at(&manifest),
            };
            for r in &mut rows {
                r.frozen = frozen.get(&r.hostname).cloned();
            }
            if let Some(note) = crate::reset::pending_note(&name, s.file()) {
                eprintln!("{note}");
            }
            if rows.is_empty() && format.is_table() {
                println!("lab {name}: no students");
            } else {
                sheet(&rows).print(format, &rows)?;
            }
            if rows.is_empty() {
                return Err(no_such_lab(&name));
            }
        }
        (LabCommand::Ips(_), Checked::Select(name, roster)) => {
            let rows = sheet_rows(&status(hv, &name).await?, roster.as_deref());
            if rows.is_empty() {
                if !format.is_table() {
                    sheet(&rows).print(format, &rows)?;
                }
                return Err(no_such_lab(&name));
            }
            if format.is_table() {
                print!("{}", hosts_lines(&rows));
            } else {
                sheet(&rows).print(format, &rows)?;
            }
        }
        (LabCommand::Down(args), Checked::Select(lab, _)) => {
            let _lock = (!args.dry_run)
                .then(|| LabLock::take(&host_of(access), &lab, "down"))
                .transpose()?;
            down(hv, access, args, &lab, format).await?;
            // The guests an interrupted re-clone recorded are gone with the lab.
            crate::reset::set_aside_record(&lab, args.lab.file(), args.dry_run)?;
        }
        _ => anyhow::bail!("internal: lab command and its checked input disagree"),
    }
    Ok(())
}

/// The cluster's address (the lock's key); the same for every run against one cluster.
fn host_of(access: Option<&pve_access::AccessApi>) -> String {
    access.map_or_else(
        || "local".to_owned(),
        |a| a.client().base_url().as_str().to_owned(),
    )
}

/// `status`/`ips` of a lab no guest belongs to: most often a typo, so exit 4, not an
/// empty success.
fn no_such_lab(name: &LabName) -> anyhow::Error {
    crate::fail::with_code(
        crate::fail::NOT_FOUND,
        format!(
            "lab {name} not found: no guest carries its marks (pool {}, tag {}); check the \
             name (`labctl vm list` shows pools and tags)",
            name.pool(),
            name.tag()
        ),
    )
}

/// `lab ips` as `/etc/hosts` lines: `IP<TAB>HOSTNAME[<TAB># student]`. A host name that
/// is not a DNS name (it came from the cluster, where anyone may rename a guest) is left
/// out and said on stderr; the student's name is a comment with control characters
/// escaped, so no value can start a line of its own.
fn hosts_lines(rows: &[SheetRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let Some(a) = r.addresses.first() else {
            eprintln!("# no address: {} ({})", line_safe(&r.hostname), r.vmid);
            continue;
        };
        if pve_vm::validate_hostname(&r.hostname).is_err() {
            eprintln!(
                "labctl: left out guest {} of the hosts lines: its name {:?} is not a host name",
                r.vmid, r.hostname
            );
            continue;
        }
        match &r.student {
            Some(s) => out.push_str(&format!("{a}\t{}\t# {}\n", r.hostname, line_safe(s))),
            None => out.push_str(&format!("{a}\t{}\n", r.hostname)),
        }
    }
    out
}

async fn down(
    hv: &dyn Hypervisor,
    access: Option<&pve_access::AccessApi>,
    args: &DownArgs,
    lab: &LabName,
    format: Format,
) -> anyhow::Result<()> {
    let plan = plan_down(hv, lab).await?;
    // Student logins of the lab (`lab access grant`) go first: an open console outlives
    // its guest's fence, and a student must not reach anything while the lab comes down.
    let revoke = |dry_run| pve_access::exam::RevokeOptions {
        lab: lab.to_string(),
        dry_run,
    };
    let pending_access = match access {
        // Reads only: a lost answer costs a retry, not the teardown.
        Some(api) => crate::freeze::again("reading the lab's student logins", || async {
            Ok(pve_access::exam::revoke(api, &revoke(true), &[]).await?)
        })
        .await
        .with_context(|| format!("lab down {lab}: reading the lab's student logins"))?
        .changes(),
        None => 0,
    };
    let plan_json = |plan: &lab_core::TeardownPlan| {
        json!({
            "lab": lab.as_str(),
            "dry_run": args.dry_run,
            "destroyed": plan.destroy.iter().map(|g| json!({
                "vmid": g.vmid.get(), "name": g.name, "node": g.node.to_string(),
                "status": g.status.to_string(),
            })).collect::<Vec<_>>(),
            "left_alone": plan.skipped.iter().map(|(g, why)| json!({
                "vmid": g.vmid.get(), "name": g.name, "node": g.node.to_string(),
                "reason": why,
            })).collect::<Vec<_>>(),
            // The lab's networks (kept while a guest that is not the lab's is left).
            "networks": plan.networks.iter().map(|n| json!({
                "vnet": n.id, "zone": n.zone, "student": n.student, "network": n.network,
                "subnet": n.subnet,
                "removed": plan.skipped.is_empty(),
            })).collect::<Vec<_>>(),
        })
    };
    if args.dry_run {
        if format == Format::Json {
            print_json(&plan_json(&plan))?;
        } else {
            if pending_access > 0 {
                println!("revoke the lab's student logins first ({pending_access} steps)");
            }
            print!("{plan}");
            println!("dry run: nothing changed");
        }
        return Ok(());
    }
    let networks = if plan.skipped.is_empty() {
        plan.networks.len()
    } else {
        0
    };
    if plan.destroy.is_empty() && pending_access == 0 && networks == 0 {
        // Still removes an empty pool left by an interrupted run; nothing to ask about.
        tracing::debug!("lab {lab}: no guests to destroy");
    } else if !args.yes {
        if pending_access > 0 {
            eprintln!("revoke the lab's student logins first ({pending_access} steps)");
        }
        eprint!("{plan}");
        let question = if plan.destroy.is_empty() {
            format!("Remove the {networks} networks of lab {lab}?")
        } else if networks > 0 {
            format!(
                "Destroy these {} guests and remove the {networks} networks of lab {lab}?",
                plan.destroy.len()
            )
        } else {
            format!("Destroy these {} guests of lab {lab}?", plan.destroy.len())
        };
        crate::confirm::confirm(&question, args.yes)?;
    }
    if let (Some(api), true) = (access, pending_access > 0) {
        // Every step of revoke is idempotent (it deletes what may be gone): run again
        // after a transient failure.
        let report = crate::freeze::again("revoking the lab's student logins", || async {
            Ok(pve_access::exam::revoke(api, &revoke(false), &[]).await?)
        })
        .await
        .with_context(|| format!("lab down {lab}: revoking the lab's student logins"))?;
        eprintln!(
            "lab {lab}: student logins revoked ({} changes)",
            report.changes()
        );
    }
    let bars = Bars::new();
    let options = DownOptions {
        concurrency: args.concurrency(),
        retry: scaled(Timeouts::default())?.retry,
    };
    let interrupt = Interrupt::new();
    let _signals = crate::signals::on_interrupt(interrupt.clone(), "lab down");
    let result = teardown_planned(hv, plan.clone(), &options, &|e| bars.event(e), &interrupt).await;
    if let Err(lab_core::Error::Interrupted { .. }) = &result {
        eprintln!("interrupted; run the same `labctl lab down` again to finish");
    }
    bars.finish();
    if result.is_err() {
        eprint!("{}", half_done("destroyed", &bars.done()));
    }
    // Once destroying began, a failure leaves the lab part-way down: run it again (exit 5),
    // unless the failure has a meaning of its own (permission: 3).
    let done = result
        .map_err(crate::fail::started)
        .with_context(|| format!("lab down {lab}"))?;
    if format == Format::Json {
        print_json(&plan_json(&done))?;
    } else if done.destroy.is_empty()
        && done.skipped.is_empty()
        && pending_access == 0
        && networks == 0
    {
        println!("lab {lab}: nothing to do (no guest carries its marks)");
    } else {
        print!("{done}");
        if networks > 0 {
            println!(
                "lab {lab} is down: {} guests destroyed, {networks} networks removed",
                done.destroy.len()
            );
        } else {
            println!("lab {lab} is down: {} guests destroyed", done.destroy.len());
        }
    }
    Ok(())
}

// ---- Placement (issue 21): where `up` puts the new students ----

/// Where `up` would put the new students: `None` when nothing is created or the backend
/// cannot place (everything lands where the template is).
pub(crate) async fn placement_of(
    hv: &dyn Hypervisor,
    spec: &LabSpec,
    plan: &lab_core::Plan,
) -> anyhow::Result<Option<lab_core::PlacementPlan>> {
    if plan.creates() == 0 {
        return Ok(None);
    }
    let view = match hv.placement(spec.template, spec.clone_mode).await {
        Ok(v) => v,
        Err(lab_core::Error::Unsupported { .. }) if spec.nodes.is_empty() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The lab's guests: the stopped ones start where they are (one listing).
    let listed = hv.lab_members(&spec.name).await?;
    Ok(Some(lab_core::place_plan(spec, plan, &listed, &view)?))
}

fn placement_json(p: &lab_core::PlacementPlan) -> serde_json::Value {
    json!({
        "policy": p.policy.to_string(),
        "guest_memory": p.guest_memory,
        "fits": p.fits(),
        "nodes": p.nodes.iter().map(|n| json!({
            "node": n.node.to_string(),
            "template": n.source.template.get(),
            "target": n.source.target,
            "students": n.students,
            "memory_needed": n.memory_needed,
            "memory_free": n.memory_free,
            "shortfall": n.shortfall(),
        })).collect::<Vec<_>>(),
    })
}

/// The per-node table of `lab plan`.
fn placement_table(p: &lab_core::PlacementPlan) -> String {
    let mut out = format!(
        "  placement ({}, {} per student):\n    {:<12} {:>8}  {:>12}  {:>12}  {}\n",
        p.policy,
        lab_core::mib(p.guest_memory),
        "NODE",
        "STUDENTS",
        "NEEDS",
        "FREE",
        "FROM"
    );
    for n in &p.nodes {
        let from = if n.source.target {
            format!("template {} (shared storage)", n.source.template)
        } else {
            format!("template {}", n.source.template)
        };
        out.push_str(&format!(
            "    {:<12} {:>8}  {:>12}  {:>12}  {from}{}\n",
            line_safe(n.node.as_str()),
            n.students.len(),
            lab_core::mib(n.memory_needed),
            lab_core::mib(n.memory_free),
            if n.shortfall() > 0 {
                format!("  SHORT OF {}", lab_core::mib(n.shortfall()))
            } else {
                String::new()
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, student: Option<&str>, ip: Option<&str>) -> SheetRow {
        SheetRow {
            student: student.map(str::to_owned),
            student_id: None,
            email: None,
            hostname: host.to_owned(),
            vmid: 5000,
            node: "pve1".into(),
            state: "running".into(),
            addresses: ip.map(|i| i.parse().unwrap()).into_iter().collect(),
            fenced: None,
            frozen: None,
            networks: Vec::new(),
        }
    }

    #[test]
    fn hosts_lines_cannot_be_forged_by_names() {
        let rows = [
            row(
                "exam-01",
                Some("Zoë\n10.0.0.66 bank.example"),
                Some("10.10.3.4"),
            ),
            row("exam-02\n10.0.0.66\tbank", None, Some("10.10.3.5")),
            row("exam-03", None, None),
            row("exam-04", None, Some("10.10.3.7")),
        ];
        let text = hosts_lines(&rows);
        assert_eq!(
            text,
            "10.10.3.4\texam-01\t# Zoë\\n10.0.0.66 bank.example\n10.10.3.7\texam-04\n"
        );
    }
}
