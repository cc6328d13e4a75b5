//! `labctl lab collect|grade|check|lint|selftest LAB.toml`: evaluate an exam.
//!
//! *Probes* collect, *checks* judge (the language: `crates/lab-grade/README.md`). `collect`
//! runs every probe once per student and keeps the raw evidence in a directory; `grade`
//! is a pure function of the checks and that evidence (it contacts nothing); `check` does
//! both; `lint` finds mistakes in the checks before the exam; `selftest` proves the checks
//! on a reference guest and its mutants.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use lab_core::{status, LabName, StudentStatus};
use lab_grade::collect::{collect, CollectOptions, CollectReport};
use lab_grade::{
    grade, report, CollectMeta, Evidence, Finding, Level, Sheet, Spec, Store, StudentEvidence,
    StudentInfo,
};
use pve_vm::VmId;
use serde_json::json;

use crate::connect::Connection;
use crate::fail;
use crate::labfile::LabFile;
use crate::output::{line_safe, print_json, write_stdout, Format};
use crate::roster::Named;

/// Where the lab and its evidence are.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The lab file: its name, roster and checks (`[[probe]]`/`[[check]]` tables or
    /// `checks = FILE`).
    #[arg(value_name = "LAB.toml")]
    file: PathBuf,
    /// The evidence directory. Default: `<lab>-evidence` in the current directory.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
}

impl EvalArgs {
    /// The lab file and an evidence directory, for a collection started by another verb
    /// (`lab freeze`).
    pub(crate) fn new(file: PathBuf, evidence: PathBuf) -> Self {
        Self {
            file,
            evidence: Some(evidence),
        }
    }
}

/// `lab collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    opts: CollectFlags,
}

/// The flags of a collection.
#[derive(Debug, Args, Default)]
pub struct CollectFlags {
    /// Run again the probes whose evidence records an error (agent down, timeout, lost
    /// result). Without it a second collect runs only what is missing.
    #[arg(long)]
    redo_errors: bool,
    /// Probes in flight at once, 1-256 (agent calls stay bounded per node). Default 256.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    probes_in_flight: Option<u16>,
}

/// `lab grade`.
#[derive(Debug, Args)]
pub struct GradeArgs {
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    out: SheetFlags,
}

/// Where the sheet goes besides stdout.
#[derive(Debug, Args)]
pub struct SheetFlags {
    /// Also write the sheet as JUnit XML (one test case per student and check).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a static HTML report: index.html, a page per student, and
    /// `student/<host>.html` pages without the checks' commands (for the students).
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
}

impl SheetFlags {
    /// Refuses a `--junit`/`--html` target that would overwrite the lab's own files: the
    /// lab file, its checks, its roster or the evidence.
    fn check(
        &self,
        lab_path: &Path,
        lab: &LabFile,
        dir: &Path,
        evidence: &Path,
    ) -> anyhow::Result<()> {
        let real = |p: &Path| -> PathBuf {
            // The parent resolved (the file itself may not exist yet).
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            let base = parent
                .map_or_else(|| std::fs::canonicalize("."), std::fs::canonicalize)
                .unwrap_or_else(|_| parent.map_or_else(PathBuf::new, Path::to_path_buf));
            p.file_name().map_or(base.clone(), |n| base.join(n))
        };
        let mut inputs = vec![real(lab_path)];
        inputs.extend(lab.checks.iter().map(|c| real(&dir.join(c))));
        inputs.extend(lab.roster.iter().map(|r| real(&dir.join(r))));
        let evidence = std::fs::canonicalize(evidence).unwrap_or_else(|_| real(evidence));
        if let Some(j) = &self.junit {
            if j.as_os_str() == "-" {
                return Err(fail::usage(
                    "--junit -: the sheet already goes to stdout; give a file name for the JUnit XML",
                ));
            }
            if j.is_dir() {
                return Err(fail::usage(format!(
                    "--junit {}: a directory; give a file name",
                    j.display()
                )));
            }
            let r = real(j);
            if inputs.contains(&r) || r.starts_with(&evidence) {
                return Err(fail::usage(format!(
                    "--junit {}: that is the lab's own file or evidence; give another file name",
                    j.display()
                )));
            }
        }
        if let Some(h) = &self.html {
            let r = std::fs::canonicalize(h).unwrap_or_else(|_| real(h));
            if r.starts_with(&evidence) {
                return Err(fail::usage(format!(
                    "--html {}: inside the evidence; give another directory",
                    h.display()
                )));
            }
        }
        Ok(())
    }
}

/// `lab check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    opts: CollectFlags,
    #[command(flatten)]
    out: SheetFlags,
}

/// `lab lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// The lab file.
    #[arg(value_name = "LAB.toml")]
    file: PathBuf,
}

/// The lab file's checks, read and parsed; errors are usage errors naming the file.
pub fn load_spec(file: &Path) -> anyhow::Result<(LabFile, PathBuf, Spec)> {
    let (lab, dir, spec) = read_spec(file)?;
    let spec = spec.map_err(|e| fail::usage(e.to_string()))?;
    if spec.is_empty() {
        return Err(fail::usage(format!(
            "the checks of {} have no [[check]]: nothing to grade",
            file.display()
        )));
    }
    Ok((lab, dir, spec))
}

/// The lab file and its checks; the checks' own problems are returned, not raised, so
/// `lint` can print them as findings.
fn read_spec(
    file: &Path,
) -> anyhow::Result<(LabFile, PathBuf, Result<Spec, lab_grade::SpecError>)> {
    let (lab, dir) = LabFile::read(file)?;
    if lab.is_fosscloud() {
        return Err(fail::usage(format!(
            "{} is a FOSS-Cloud classroom (backend = \"fosscloud\"): its desktops have no \
             guest agent to probe; collect, grade, check and lint are for Proxmox labs",
            file.display()
        )));
    }
    let inline = lab.exam.is_some() || !lab.probe.is_empty() || !lab.check.is_empty();
    let spec = match (&lab.checks, inline) {
        (Some(_), true) => {
            return Err(fail::usage(format!(
                "lab file {}: it names a checks file (`checks = …`) and also has [exam], \
                 [[probe]] or [[check]] tables: keep one",
                file.display()
            )))
        }
        (Some(p), false) => {
            let path = dir.join(p);
            // Only a TOML file: a parse error quotes the offending line, which must never
            // be a line of some other file named by mistake (a key, a password file).
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                return Err(fail::usage(format!(
                    "lab file {}: checks = {:?}: the checks file must be a .toml file",
                    file.display(),
                    p.display()
                )));
            }
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail::usage(format!(
                    "reading the checks file {} (named by {}): {e}",
                    path.display(),
                    file.display()
                ))
            })?;
            Spec::parse(&text, &path.display().to_string())
        }
        (None, true) => {
            let mut t = toml::Table::new();
            if let Some(e) = &lab.exam {
                t.insert("exam".into(), toml::Value::Table(e.clone()));
            }
            let arr = |v: &[toml::Table]| {
                toml::Value::Array(v.iter().cloned().map(toml::Value::Table).collect())
            };
            t.insert("probe".into(), arr(&lab.probe));
            t.insert("check".into(), arr(&lab.check));
            Spec::from_table(&t, &file.display().to_string())
        }
        (None, false) => {
            return Err(fail::usage(format!(
                "lab file {} declares no checks: add [[probe]] and [[check]] tables, or \
                 `checks = \"FILE.toml\"` (see crates/lab-grade/README.md and \
                 examples/exam-checks.toml)",
                file.display()
            )))
        }
    };
    Ok((lab, dir, spec))
}

/// The lab's name, from the file only: the evidence belongs to the file's lab, whatever
/// `LABCTL_LAB` says.
fn lab_name(lab: &LabFile, file: &Path) -> anyhow::Result<LabName> {
    let Some(name) = &lab.name else {
        return Err(fail::usage(format!(
            "lab file {} has no `name`: the evaluation verbs take the lab from its file",
            file.display()
        )));
    };
    LabName::new(name).map_err(|e| fail::usage(format!("lab file {}: {e}", file.display())))
}

fn roster(lab: &LabFile, dir: &Path) -> anyhow::Result<Option<Vec<Named>>> {
    crate::labfile::roster_of(Some(&(lab.clone(), dir.to_path_buf())), None)
}

fn evidence_dir(args: &EvalArgs, lab: &LabName) -> PathBuf {
    args.evidence
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{lab}-evidence")))
}

/// Where a student's guest is, for the values `{{…}}` may use.
struct Place<'a> {
    hostname: &'a str,
    vmid: u32,
    node: &'a str,
    ip: Option<std::net::IpAddr>,
    /// The guest's identity (its `smbios1` UUID), when known.
    instance: Option<String>,
}

impl<'a> From<&'a StudentStatus> for Place<'a> {
    fn from(r: &'a StudentStatus) -> Self {
        Place {
            hostname: &r.hostname,
            vmid: r.vmid.get(),
            node: r.node.as_str(),
            ip: r.addresses.iter().find(|a| a.is_ipv4()).copied(),
            instance: None,
        }
    }
}

/// The values labctl fills in for every student; a roster column of the same name is
/// shadowed by them.
const BUILT_IN: &[&str] = &[
    "student",
    "hostname",
    "vmid",
    "node",
    "ip",
    "teacher_ip",
    "instance",
    "id",
    "email",
];

/// Roster columns that the built-in values hide, once per column (for a warning).
fn shadowed(roster: Option<&[Named]>) -> Vec<String> {
    let mut cols: Vec<String> = roster
        .unwrap_or_default()
        .iter()
        .flat_map(|n| n.student.extra.keys().cloned())
        .filter(|k| BUILT_IN.contains(&k.as_str()))
        .collect();
    cols.sort();
    cols.dedup();
    cols
}

/// The values `{{…}}` may use for the student on guest `row` (identity not read): what
/// the demo grades with, the same values `lab collect` fills in.
pub(crate) fn student_of(
    row: &StudentStatus,
    who: Option<&Named>,
    teacher_ip: Option<std::net::IpAddr>,
) -> StudentInfo {
    student_info(&row.into(), who, teacher_ip)
}

/// The values `{{…}}` may use for one student.
fn student_info(
    at: &Place<'_>,
    who: Option<&Named>,
    teacher_ip: Option<std::net::IpAddr>,
) -> StudentInfo {
    let name = who.map_or_else(|| at.hostname.to_owned(), |n| n.student.name.clone());
    let mut vars: BTreeMap<String, String> =
        who.map(|n| n.student.extra.clone()).unwrap_or_default();
    if let Some(n) = who {
        if let Some(id) = &n.student.id {
            vars.insert("id".into(), id.clone());
        }
        if let Some(e) = &n.student.email {
            vars.insert("email".into(), e.clone());
        }
    }
    for (k, v) in [
        ("student", name.clone()),
        ("hostname", at.hostname.to_owned()),
        ("vmid", at.vmid.to_string()),
        ("node", at.node.to_owned()),
        ("ip", at.ip.map(|i| i.to_string()).unwrap_or_default()),
        (
            "teacher_ip",
            teacher_ip.map(|t| t.to_string()).unwrap_or_default(),
        ),
    ] {
        vars.insert(k.to_owned(), v);
    }
    if let Some(i) = &at.instance {
        vars.insert("instance".into(), i.clone());
    }
    StudentInfo {
        key: at.hostname.to_owned(),
        name,
        hostname: at.hostname.to_owned(),
        vmid: at.vmid,
        node: at.node.to_owned(),
        vars,
    }
}

/// The lab's students as the checks see them.
async fn students(
    conn: &Connection,
    lab: &LabName,
    file: &LabFile,
    dir: &Path,
    only: Option<&std::collections::BTreeSet<String>>,
) -> anyhow::Result<Vec<StudentInfo>> {
    let hv = conn.backend()?;
    let mut rows = status(&hv, lab).await?;
    if let Some(only) = only {
        rows.retain(|r| only.contains(&r.hostname));
    }
    if rows.is_empty() {
        return Err(fail::with_code(
            fail::NOT_FOUND,
            format!("lab {lab} has no students (run `labctl lab up` with this lab file first)"),
        ));
    }
    let roster = roster(file, dir)?;
    let by_host: BTreeMap<&str, &Named> = roster
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|n| (n.hostname.as_str(), n))
        .collect();
    for col in shadowed(roster.as_deref()) {
        eprintln!(
            "warning: the roster's column `{col}` is hidden by labctl's own value `{{{{{col}}}}}`; \
             rename the column to use it in the checks"
        );
    }
    let teacher = file.teachers.first().copied();
    let vms = conn.vm_api()?;
    let instances = instances(&vms, &rows).await;
    Ok(rows
        .iter()
        .zip(instances)
        .map(|(r, instance)| {
            let mut at = Place::from(r);
            at.instance = instance;
            student_info(&at, by_host.get(r.hostname.as_str()).copied(), teacher)
        })
        .collect())
}

/// Each guest's `smbios1` UUID (its identity across a `lab down` and `lab up` that reuse
/// its id), 16 config reads at a time; `None` where it cannot be read.
async fn instances(vms: &pve_vm::VmApi, rows: &[StudentStatus]) -> Vec<Option<String>> {
    use futures::stream::{self, StreamExt};
    stream::iter(rows)
        .map(|r| async move {
            let cfg = vms
                .guest_on(r.node.clone(), pve_vm::GuestKind::Qemu, r.vmid)
                .config()
                .await
                .ok()?;
            let smbios = cfg.get("smbios1")?;
            smbios
                .split(',')
                .find_map(|kv| kv.strip_prefix("uuid="))
                .map(str::to_owned)
        })
        .buffered(16)
        .collect()
        .await
}

/// Runs the collection (of the students whose host names are in `only`, else of all);
/// prints progress on stderr.
pub(crate) async fn run_collect(
    conn: &Connection,
    args: &EvalArgs,
    flags: &CollectFlags,
    only: Option<&std::collections::BTreeSet<String>>,
) -> anyhow::Result<(LabName, Spec, Store, CollectReport)> {
    let (file, dir, spec) = load_spec(&args.file)?;
    let lab = lab_name(&file, &args.file)?;
    lint_or_fail(&spec, &args.file)?;
    let students = students(conn, &lab, &file, &dir, only).await?;
    // A value a student's row lacks is the spec's (or roster's) mistake: stop here. A value
    // that is empty for some students (no address while their agent is down) only costs
    // those students those probes, which grade then shows as `error`.
    let lacking: Vec<String> = spec
        .lint(&students)
        .into_iter()
        .filter(|f| f.level == Level::Error && f.message.contains("has no value"))
        .map(|f| format!("{}: {}", f.at, f.message))
        .collect();
    if !lacking.is_empty() {
        return Err(fail::usage(format!(
            "the checks of {} name values the students lack: {}",
            args.file.display(),
            lacking.join("; ")
        )));
    }
    let scale = crate::connect::time_scale()?;
    let mut plans = Vec::with_capacity(students.len());
    for s in &students {
        let mut ok = Vec::new();
        let mut not_run = Vec::new();
        for (id, r) in spec.plan_each(s) {
            match r {
                Ok(p) => ok.push(p),
                Err(e) => not_run.push((id, e.to_string())),
            }
        }
        if !not_run.is_empty() {
            let ids: Vec<&str> = not_run.iter().map(|(id, _)| id.as_str()).collect();
            let hint = if s.vars.get("ip").is_some_and(String::is_empty) {
                " (no address is known for it: its guest agent does not answer)"
            } else {
                ""
            };
            eprintln!(
                "warning: {}: probes {} cannot run{hint}; grade shows their checks as error: {}",
                s.hostname,
                ids.join(", "),
                line_safe(&not_run[0].1)
            );
        }
        plans.push((s.clone(), scaled(ok, scale)));
    }
    let root = evidence_dir(args, &lab);
    let store = Store::create(&root)
        .map_err(|e| anyhow::anyhow!("creating the evidence directory: {e}"))?;
    let mut lock = EvidenceLock::take(&root)?;
    // A finished collection is kept as it is, under its start time; this one starts anew.
    // (An unfinished one, or --redo-errors, is completed instead.)
    let store = match store.meta() {
        Ok(Some(m)) if m.finished.is_some() && m.lab == lab.as_str() && !flags.redo_errors => {
            let old = archive_name(&root, &m.started);
            drop(lock);
            std::fs::rename(&root, &old).with_context(|| {
                format!(
                    "keeping the earlier collection {} as {}",
                    root.display(),
                    old.display()
                )
            })?;
            eprintln!(
                "the earlier collection (started {}) is kept in {}",
                m.started,
                old.display()
            );
            let store = Store::create(&root)
                .map_err(|e| anyhow::anyhow!("creating the evidence directory: {e}"))?;
            lock = EvidenceLock::take(&root)?;
            store
        }
        _ => store,
    };
    let _lock = lock;
    let started = match store.meta() {
        Ok(Some(m)) if m.lab != lab.as_str() => {
            return Err(fail::usage(format!(
                "{} holds the evidence of lab {}, not {lab}: give another --evidence",
                root.display(),
                m.lab
            )))
        }
        Ok(Some(m)) => m.started,
        Ok(None) => lab_grade::time::rfc3339(SystemTime::now()),
        Err(e) => return Err(fail::usage(e.to_string())),
    };
    let mut meta = CollectMeta {
        lab: lab.to_string(),
        spec_sha256: spec.sha256(),
        tool: format!("labctl {}", env!("CARGO_PKG_VERSION")),
        started,
        finished: None,
    };
    store
        .write_meta(&meta)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let agent = crate::guest::agent_api(&conn.vm_api()?)?;
    let teacher = match spec.teacher() {
        Some(t) => Some(VmId::new(t).map_err(|e| fail::usage(format!("[exam] teacher: {e}")))?),
        None => None,
    };
    let runner = lab_proxmox::probes::PveRunner::new(agent, teacher);
    let total: usize = plans.iter().map(|(_, p)| p.len()).sum();
    let bar = progress(total as u64, "collecting");
    let options = scaled_options(
        CollectOptions {
            concurrency: flags
                .probes_in_flight
                .map_or(CollectOptions::default().concurrency, usize::from),
            redo_errors: flags.redo_errors,
            ..CollectOptions::default()
        },
        scale,
    );
    let settled = |s: &StudentInfo, ev: &Evidence| spec.settled(s, ev);
    let report = collect(&runner, &store, &plans, settled, &options, |s, ev| {
        bar.inc(1);
        if let Some(e) = &ev.error {
            let from = match (ev.source, ev.target.vmid) {
                (lab_grade::Source::Teacher, Some(v)) => {
                    format!(" (run from the teacher's guest {v})")
                }
                (lab_grade::Source::Teacher, None) => " (run from the teacher's guest)".into(),
                (lab_grade::Source::Host, _) => " (run from this machine)".into(),
                (lab_grade::Source::Guest, _) => String::new(),
            };
            bar.suspend(|| {
                tracing::warn!(
                    "{} {}{from}: {}: {}",
                    s.hostname,
                    ev.probe,
                    e.kind.as_str(),
                    line_safe(&e.message)
                )
            });
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("writing evidence: {e}"))?;
    bar.finish_and_clear();
    meta.finished = Some(lab_grade::time::rfc3339(SystemTime::now()));
    store
        .write_meta(&meta)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !report.stale.is_empty() {
        eprintln!(
            "note: the evidence kept from before was not used for {} (another guest since, or \
             files changed after collection): collected anew",
            report.stale.join(", ")
        );
    }
    eprintln!(
        "collected lab {lab}: {} students, {} probe runs, {} kept from before, {} with an \
         error; evidence in {}",
        students.len(),
        report.runs,
        report.kept,
        report.errors,
        store.root().display()
    );
    Ok((lab, spec, store, report))
}

/// Retry-until waits matched to a simulator's time scale (`LABCTL_TIME_SCALE`): labctl
/// waits them in real time. Probe timeouts are not scaled: they go to the tools in the
/// guest, which the simulator already runs on its own clock.
pub(crate) fn scaled(
    mut plan: Vec<lab_grade::PlannedProbe>,
    scale: Option<f64>,
) -> Vec<lab_grade::PlannedProbe> {
    if let Some(f) = scale {
        for p in &mut plan {
            if let Some(r) = &mut p.retry {
                r.within = r.within.mul_f64(f);
                r.every = r.every.mul_f64(f);
            }
        }
    }
    plan
}

/// The collector's own pauses matched to the time scale, like [`scaled`].
pub(crate) fn scaled_options(mut o: CollectOptions, scale: Option<f64>) -> CollectOptions {
    if let Some(f) = scale {
        o.error_pause = o.error_pause.mul_f64(f);
    }
    o
}

fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} probes {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Grades the evidence in `store` with `spec` (no request is sent).
fn run_grade(spec: &Spec, store: &Store, lab_hint: &str) -> anyhow::Result<Sheet> {
    let meta = store
        .meta()
        .map_err(|e| fail::usage(e.to_string()))?
        .ok_or_else(|| {
            fail::usage(format!(
                "{} holds no evidence (run `labctl lab collect` first)",
                store.root().display()
            ))
        })?;
    if meta.lab != lab_hint {
        return Err(fail::usage(format!(
            "{} holds the evidence of lab {}, not {lab_hint}",
            store.root().display(),
            meta.lab
        )));
    }
    let mut all: Vec<StudentEvidence> = Vec::new();
    for s in store.students().map_err(|e| anyhow::anyhow!("{e}"))? {
        all.push(store.load(&s).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    if all.is_empty() {
        return Err(fail::with_code(
            fail::NOT_FOUND,
            format!(
                "{} holds no student's evidence (run `labctl lab collect` first)",
                store.root().display()
            ),
        ));
    }
    Ok(grade(spec, &meta.lab, &meta.spec_sha256, &all))
}

/// Prints the sheet and writes the extra files; exit 1 when a check could not be judged.
fn emit(sheet: &Sheet, format: Format, out: &SheetFlags) -> anyhow::Result<()> {
    match format {
        Format::Table => write_stdout(&report::table(sheet))?,
        Format::Json => write_stdout(&report::json(sheet))?,
        Format::Csv => write_stdout(&report::csv(sheet))?,
    }
    if let Some(p) = &out.junit {
        lab_grade::write_atomic(p, report::junit(sheet).as_bytes())
            .map_err(|e| anyhow::anyhow!("writing --junit: {e}"))?;
    }
    if let Some(d) = &out.html {
        report::html(sheet, d)
            .with_context(|| format!("writing the HTML report to {}", d.display()))?;
    }
    let stats = report::stats(sheet);
    for w in &stats.warnings {
        eprintln!("warning: {}", line_safe(w));
    }
    let errors: usize = sheet.students.iter().map(|s| s.errors).sum();
    if errors > 0 {
        let who: Vec<&str> = sheet
            .students
            .iter()
            .filter(|s| s.errors > 0)
            .map(|s| s.hostname.as_str())
            .collect();
        let problems = sheet.students.iter().any(|s| !s.problems.is_empty());
        return Err(fail::with_code(
            fail::OTHER,
            format!(
                "{errors} checks could not be judged (outcome `error`, no points; each one's \
                 message says why) for {}: {}",
                who.join(", "),
                if problems {
                    "evidence files were changed or are unreadable (see the warnings); collect \
                     again into a new --evidence directory"
                } else {
                    "run `labctl lab collect --redo-errors` once their guests answer, then \
                     grade again"
                }
            ),
        ));
    }
    Ok(())
}

/// `lab collect`.
pub async fn collect_cmd(
    args: &CollectArgs,
    conn: &Connection,
    format: Format,
) -> anyhow::Result<()> {
    format.not_csv("lab collect")?;
    let (lab, spec, store, report) = run_collect(conn, &args.eval, &args.opts, None).await?;
    let incomplete = (report.errors > 0).then(|| {
        fail::with_code(
            fail::INCOMPLETE,
            format!(
                "{} probes could not run (see the warnings; `lab grade` shows their checks as \
                 error): run `labctl lab collect {} --redo-errors` once the guests answer",
                report.errors,
                args.eval.file.display()
            ),
        )
    });
    if format == Format::Json {
        print_json(&json!({
            "lab": lab.as_str(),
            "evidence": store.root(),
            "spec_sha256": spec.sha256(),
            "runs": report.runs,
            "written": report.written,
            "kept": report.kept,
            "errors": report.errors,
        }))?;
    }
    match incomplete {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Where an earlier collection is kept: `<dir>-<its start, as 20261205T103000Z>`, or
/// with `-2`, `-3`, … if that exists.
fn archive_name(root: &Path, started: &str) -> PathBuf {
    let stamp: String = started.chars().filter(|c| *c != '-' && *c != ':').collect();
    let base = format!(
        "{}-{stamp}",
        root.file_name().map_or_else(
            || "evidence".to_owned(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    let parent = root.parent().unwrap_or_else(|| Path::new("."));
    let mut candidate = parent.join(&base);
    let mut n = 2;
    while candidate.exists() {
        candidate = parent.join(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// `lab grade`: no connection at all.
pub fn grade_cmd(args: &GradeArgs, format: Format) -> anyhow::Result<()> {
    let (file, dir, spec) = load_spec(&args.eval.file)?;
    let lab = lab_name(&file, &args.eval.file)?;
    let root = evidence_dir(&args.eval, &lab);
    args.out.check(&args.eval.file, &file, &dir, &root)?;
    let store = Store::open(&root).map_err(|e| {
        // `lab freeze` collects into `<evidence>/deadline-<utc>`: point there.
        let mut deadlines: Vec<String> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("deadline-"))
            .collect();
        deadlines.sort();
        match deadlines.last() {
            Some(d) => fail::usage(format!(
                "{} holds no collection of its own, but the evidence `lab freeze` kept: grade \
                 it with --evidence {}",
                root.display(),
                root.join(d).display()
            )),
            None => fail::usage(e.to_string()),
        }
    })?;
    let sheet = run_grade(&spec, &store, lab.as_str())?;
    emit(&sheet, format, &args.out)
}

/// `lab check`: collect, then grade.
pub async fn check_cmd(args: &CheckArgs, conn: &Connection, format: Format) -> anyhow::Result<()> {
    {
        let (file, dir, _) = read_spec(&args.eval.file)?;
        let lab = lab_name(&file, &args.eval.file)?;
        args.out.check(
            &args.eval.file,
            &file,
            &dir,
            &evidence_dir(&args.eval, &lab),
        )?;
    }
    let (lab, spec, store, _) = run_collect(conn, &args.eval, &args.opts, None).await?;
    let sheet = run_grade(&spec, &store, lab.as_str())?;
    emit(&sheet, format, &args.out)
}

/// `lab lint`: the checks against the roster, no connection.
pub fn lint_cmd(args: &LintArgs, format: Format) -> anyhow::Result<()> {
    format.not_csv("lab lint")?;
    let (file, dir, spec) = read_spec(&args.file)?;
    let lab = lab_name(&file, &args.file)?;
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            // The checks do not parse: every problem is an error finding.
            let findings: Vec<Finding> = e
                .problems
                .iter()
                .map(|p| Finding {
                    level: Level::Error,
                    at: match &p.field {
                        Some(f) => format!("{} {f}", p.at),
                        None => p.at.clone(),
                    },
                    message: p.message.clone(),
                })
                .collect();
            print_findings(&lab, None, &findings, format, None)?;
            return Err(fail::usage(format!(
                "the checks of {} have {} errors",
                args.file.display(),
                findings.len()
            )));
        }
    };
    let roster = roster(&file, &dir)?;
    let teacher = file.teachers.first().copied();
    // The values known before `lab up`: names, host names and roster columns; the
    // cluster's (VMID, node, address) stand in as placeholders.
    let rows: Vec<StudentInfo> = match &roster {
        Some(r) => r
            .iter()
            .map(|n| student_info(&placeholder(&n.hostname), Some(n), teacher))
            .collect(),
        None => {
            let host = format!("{lab}-01");
            vec![student_info(&placeholder(&host), None, teacher)]
        }
    };
    let mut findings = spec.lint(&rows);
    for col in shadowed(roster.as_deref()) {
        findings.push(Finding {
            level: Level::Warning,
            at: "roster".into(),
            message: format!(
                "the column `{col}` is hidden by labctl's own value `{{{{{col}}}}}`: rename it \
                 to use it in the checks"
            ),
        });
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let checks = spec.check_infos();
    print_findings(
        &lab,
        Some(&spec.sha256()),
        &findings,
        format,
        Some((checks.len(), checks.iter().map(|c| c.points).sum())),
    )?;
    if errors > 0 {
        return Err(fail::usage(format!(
            "the checks of {} have {errors} errors",
            args.file.display()
        )));
    }
    Ok(())
}

/// A student before `lab up`: the cluster's values stand in as documentation addresses.
/// Prints lint's findings: JSON, or a line each and a summary.
fn print_findings(
    lab: &LabName,
    sha: Option<&str>,
    findings: &[Finding],
    format: Format,
    checks: Option<(usize, f64)>,
) -> anyhow::Result<()> {
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    if format == Format::Json {
        return print_json(&json!({
            "lab": lab.as_str(),
            "spec_sha256": sha,
            "findings": findings.iter().map(|f| json!({
                "level": f.level.as_str(),
                "at": f.at,
                "message": f.message,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}: {}: {}\n",
            f.level.as_str(),
            line_safe(&f.at),
            line_safe(&f.message)
        ));
    }
    match checks {
        Some((n, points)) => out.push_str(&format!(
            "{n} checks worth {} points, {errors} errors, {} warnings\n",
            report::format_points(points),
            findings.len() - errors
        )),
        None => out.push_str(&format!("the checks do not parse: {errors} errors\n")),
    }
    write_stdout(&out)
}

fn placeholder(hostname: &str) -> Place<'_> {
    Place {
        hostname,
        vmid: 100,
        node: "node",
        ip: Some(std::net::IpAddr::from([192, 0, 2, 1])),
        instance: None,
    }
}

/// The evidence directory's lock: one collection at a time writes it.
struct EvidenceLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl EvidenceLock {
    fn take(root: &Path) -> anyhow::Result<Self> {
        match crate::lab::try_lock_file(&root.join(".lock"))? {
            Ok(lock) => Ok(EvidenceLock { _lock: lock }),
            Err(_) => Err(fail::with_code(
                fail::OTHER,
                format!(
                    "another labctl collects into {} right now; wait for it to finish (or give \
                     another --evidence)",
                    root.display()
                ),
            )),
        }
    }
}

/// `lab selftest`.
#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// The lab file (its checks).
    #[arg(value_name = "LAB.toml")]
    file: PathBuf,
    /// The reference guest: a machine with every task done right (never changed: each
    /// mutant runs on a full clone of it, destroyed afterwards).
    #[arg(long, value_name = "VMID")]
    reference: String,
    /// The roster student whose values (`{{vlan}}`, …) the reference was set up with
    /// (name, or host name). Default: the first of the roster.
    #[arg(long = "as", value_name = "STUDENT")]
    as_student: Option<String>,
    /// Where the selftest keeps its evidence. Default: `<lab>-selftest` in the current
    /// directory (one sub-directory per run).
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Longest wait for a clone's agent and address, in seconds. Default: the lab file's
    /// `[timeouts] ready`, else 300.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ready_timeout: Option<u64>,
}

/// What a mutant did to the checks.
#[derive(Debug, serde::Serialize)]
struct MutantResult {
    check: String,
    argv: Vec<String>,
    /// The clone it ran on.
    vmid: Option<u32>,
    /// Checks that should break (the check and those that require it).
    expected: Vec<String>,
    /// Checks that passed on the unchanged clone and did not after the mutant.
    broke: Vec<String>,
    /// Checks that fail on an unchanged clone too (bound to the reference's address or
    /// id): they cannot be proven by a clone.
    identity_bound: Vec<String>,
    ok: bool,
    message: String,
}

/// `lab selftest`: the reference passes every check; each mutant breaks exactly its check.
pub async fn selftest_cmd(
    args: &SelftestArgs,
    conn: &Connection,
    format: Format,
) -> anyhow::Result<()> {
    use lab_core::Readiness;
    format.not_csv("lab selftest")?;
    let reference = VmId::new(args.reference.parse::<u32>().map_err(|_| {
        fail::usage(format!(
            "invalid --reference {:?}: a VMID (100-999999999)",
            args.reference
        ))
    })?)
    .map_err(|e| fail::usage(format!("--reference: {e}")))?;
    let (file, dir, spec) = load_spec(&args.file)?;
    let lab = lab_name(&file, &args.file)?;
    lint_or_fail(&spec, &args.file)?;
    let roster = roster(&file, &dir)?;
    let who: Option<Named> = match (&args.as_student, &roster) {
        (Some(s), Some(r)) => Some(
            r.iter()
                .find(|n| n.student.name == *s || n.hostname == *s)
                .cloned()
                .ok_or_else(|| {
                    fail::usage(format!(
                        "--as {s:?}: no such student in the roster (give a name or host name)"
                    ))
                })?,
        ),
        (Some(s), None) => {
            return Err(fail::usage(format!(
                "--as {s:?}: the lab file has no roster to take the values from"
            )))
        }
        (None, r) => r.as_ref().and_then(|r| r.first().cloned()),
    };
    let teacher_ip = file.teachers.first().copied();
    let ready =
        std::time::Duration::from_secs(args.ready_timeout.or(file.timeouts.ready).unwrap_or(300));
    let ready = match crate::connect::time_scale()? {
        Some(f) => ready.mul_f64(f),
        None => ready,
    };
    let vms = conn.vm_api()?;
    let hv = conn.backend()?;
    let ref_guest = vms.guest(reference).await?;
    let ref_status = ref_guest.status().await?;
    if ref_status.template {
        return Err(fail::usage(format!(
            "--reference {reference} is a template: selftest needs a running guest with every \
             task done (clone the template, start it, do the tasks, give its VMID)"
        )));
    }
    if ref_status.status != pve_vm::RunState::Running {
        return Err(fail::with_code(
            fail::OTHER,
            format!(
                "the reference {reference} is not running: start it (`labctl vm start \
                 {reference}`) and run selftest again"
            ),
        ));
    }
    if !ref_guest.agent_running().await.unwrap_or(false) {
        return Err(fail::with_code(
            fail::OTHER,
            format!(
                "the guest agent of the reference {reference} does not answer: selftest looks \
                 inside it through the agent (is qemu-guest-agent running, `agent: 1` set?)"
            ),
        ));
    }
    let ref_name = ref_guest
        .config()
        .await?
        .name()
        .unwrap_or_else(|| format!("vm{reference}"));
    // Clones an interrupted selftest of this reference left behind are destroyed first.
    cleanup_leftovers(&vms, reference, &ref_name).await;
    let interrupt = lab_core::Interrupt::new();
    let _guard = crate::signals::on_interrupt(interrupt.clone(), "lab selftest");
    let ref_ip = hv
        .addresses(reference)
        .await?
        .into_iter()
        .find(std::net::IpAddr::is_ipv4);
    let info_of = |vmid: u32, node: &str, ip: Option<std::net::IpAddr>| {
        let mut i = student_info(
            &Place {
                hostname: &ref_name,
                vmid,
                node,
                ip,
                instance: None,
            },
            who.as_ref(),
            teacher_ip,
        );
        i.key = format!("vm{vmid}");
        i
    };
    let root = args
        .evidence
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{lab}-selftest")))
        .join(lab_grade::time::rfc3339(SystemTime::now()).replace(':', ""));
    let agent = crate::guest::agent_api(&vms)?;
    let teacher = match spec.teacher() {
        Some(t) => Some(VmId::new(t).map_err(|e| fail::usage(format!("[exam] teacher: {e}")))?),
        None => None,
    };
    let runner = lab_proxmox::probes::PveRunner::new(agent.clone(), teacher);
    let judge = |name: &str, info: StudentInfo| {
        let spec = &spec;
        let runner = &runner;
        let root = root.join(name);
        let lab = lab.to_string();
        async move {
            let scale = crate::connect::time_scale()?;
            let plan = scaled(
                spec.plan(&info).map_err(|e| fail::usage(e.to_string()))?,
                scale,
            );
            let store = Store::create(&root).map_err(|e| anyhow::anyhow!("{e}"))?;
            let meta = CollectMeta {
                lab: lab.clone(),
                spec_sha256: spec.sha256(),
                tool: format!("labctl {}", env!("CARGO_PKG_VERSION")),
                started: lab_grade::time::rfc3339(SystemTime::now()),
                finished: None,
            };
            store
                .write_meta(&meta)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let settled = |s: &StudentInfo, ev: &Evidence| spec.settled(s, ev);
            collect(
                runner,
                &store,
                &[(info.clone(), plan)],
                settled,
                &scaled_options(CollectOptions::default(), scale),
                |_, _| {},
            )
            .await
            .map_err(|e| anyhow::anyhow!("writing evidence: {e}"))?;
            let ev = store.load(&info.key).map_err(|e| anyhow::anyhow!("{e}"))?;
            let sheet = grade(spec, &lab, &meta.spec_sha256, &[ev]);
            let outcomes: BTreeMap<String, lab_grade::Outcome> = sheet
                .students
                .first()
                .map(|s| s.checks.iter().map(|c| (c.id.clone(), c.outcome)).collect())
                .unwrap_or_default();
            anyhow::Ok((sheet, outcomes))
        }
    };

    eprintln!("selftest of lab {lab}: the reference guest {reference} ({ref_name})");
    let (ref_sheet, ref_outcomes) = judge(
        "reference",
        info_of(reference.get(), ref_guest.node().as_str(), ref_ip),
    )
    .await?;
    let not_passing: Vec<String> = ref_outcomes
        .iter()
        .filter(|(_, o)| **o != lab_grade::Outcome::Pass)
        .map(|(id, o)| format!("{id} ({o})"))
        .collect();

    let mut results = Vec::new();
    for m in spec.mutants() {
        if interrupt.is_triggered() {
            return Err(fail::with_code(
                130,
                "lab selftest: interrupted; no clone is left (run it again)",
            ));
        }
        eprintln!("  mutant of {}: {}", m.check, m.argv.join(" "));
        let r = run_mutant(
            &hv,
            &agent,
            &ref_guest,
            &ref_name,
            &m,
            ready,
            |stage, vmid, node, ip| {
                let info = info_of(vmid, node, ip);
                judge(&format!("mutant-{}/{stage}", m.check), info)
            },
            &interrupt,
        )
        .await;
        results.push(r);
    }

    let broken: Vec<&MutantResult> = results.iter().filter(|r| !r.ok).collect();
    if format == Format::Json {
        print_json(&json!({
            "lab": lab.as_str(),
            "reference": reference.get(),
            "reference_checks": ref_sheet.students.first().map(|s| &s.checks),
            "reference_ok": not_passing.is_empty(),
            "mutants": results,
            "evidence": root,
        }))?;
    } else {
        let mut out = String::new();
        out.push_str(&format!(
            "reference {reference}: {}\n",
            if not_passing.is_empty() {
                "every check passes".to_owned()
            } else {
                format!("NOT PASSING: {}", not_passing.join(", "))
            }
        ));
        for r in &results {
            out.push_str(&format!(
                "mutant of {:<16} {}  {}\n",
                r.check,
                if r.ok { "ok    " } else { "BROKEN" },
                line_safe(&r.message)
            ));
        }
        if results.is_empty() {
            out.push_str("no check declares a mutant (`mutant = [argv]`)\n");
        }
        write_stdout(&out)?;
    }
    if !not_passing.is_empty() || !broken.is_empty() {
        let mut why = Vec::new();
        if !not_passing.is_empty() {
            why.push(format!(
                "the reference does not pass {}",
                not_passing.join(", ")
            ));
        }
        for b in &broken {
            why.push(format!("check {}: {}", b.check, b.message));
        }
        return Err(fail::with_code(
            fail::OTHER,
            format!("selftest failed: {}", why.join("; ")),
        ));
    }
    Ok(())
}

/// Refuses checks with lint errors of their own (exit 2, naming each), before any request.
fn lint_or_fail(spec: &Spec, file: &Path) -> anyhow::Result<()> {
    let errors: Vec<Finding> = spec
        .lint(&[])
        .into_iter()
        .filter(|f| f.level == Level::Error)
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(fail::usage(format!(
        "the checks of {} have errors (run `labctl lab lint {}`): {}",
        file.display(),
        file.display(),
        errors
            .iter()
            .map(|f| format!("{}: {}", f.at, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    )))
}

/// Clones the reference, judges the unchanged clone, runs the mutant, judges again,
/// destroys the clone (always).
#[allow(clippy::too_many_arguments)]
async fn run_mutant<J, F>(
    hv: &lab_proxmox::ProxmoxLab,
    agent: &pve_agent::AgentApi,
    reference: &pve_vm::Guest,
    name: &str,
    m: &lab_grade::Mutant,
    ready: std::time::Duration,
    judge: J,
    interrupt: &lab_core::Interrupt,
) -> MutantResult
where
    J: Fn(&'static str, u32, &str, Option<std::net::IpAddr>) -> F,
    F: std::future::Future<Output = anyhow::Result<(Sheet, BTreeMap<String, lab_grade::Outcome>)>>,
{
    use lab_core::Readiness;
    let mut result = MutantResult {
        check: m.check.clone(),
        argv: m.argv.clone(),
        vmid: None,
        expected: m.breaks.iter().cloned().collect(),
        broke: Vec::new(),
        identity_bound: Vec::new(),
        ok: false,
        message: String::new(),
    };
    let opts = pve_vm::CloneOptions {
        hostname: Some(name.to_owned()),
        mode: pve_vm::CloneMode::Full,
        description: Some(format!(
            "{SELFTEST_MARK} {}: mutant of check {} (a full clone of the reference; destroyed \
             after the test)",
            reference.vmid(),
            m.check,
        )),
        ..pve_vm::CloneOptions::default()
    };
    let clone = match reference.clone_to(opts).await {
        Ok(c) => c,
        Err(e) => {
            result.message = format!("could not clone the reference: {e}");
            return result;
        }
    };
    result.vmid = Some(clone.vmid().get());
    let work = async {
        clone.start().await?;
        clone.wait_agent(ready).await?;
        let deadline = tokio::time::Instant::now() + ready;
        let ip = loop {
            let a = hv.addresses(clone.vmid()).await.unwrap_or_default();
            if let Some(ip) = a.into_iter().find(std::net::IpAddr::is_ipv4) {
                break Some(ip);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        let node = clone.node().to_string();
        let (_, before) = judge("unchanged", clone.vmid().get(), &node, ip).await?;
        let out = agent
            .exec(&clone, &pve_agent::Exec::new(m.argv.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("the mutant command failed to run: {e}"))?;
        if out.code() != 0 {
            anyhow::bail!(
                "the mutant command exited {}: {}",
                out.code(),
                out.stderr.trim()
            );
        }
        let (_, after) = judge("mutated", clone.vmid().get(), &node, ip).await?;
        let pass = lab_grade::Outcome::Pass;
        result.identity_bound = before
            .iter()
            .filter(|(_, o)| **o != pass)
            .map(|(id, _)| id.clone())
            .collect();
        result.broke = before
            .iter()
            .filter(|(id, o)| **o == pass && after.get(*id) != Some(&pass))
            .map(|(id, _)| id.clone())
            .collect();
        let provable: Vec<&String> = result
            .expected
            .iter()
            .filter(|id| !result.identity_bound.contains(id))
            .collect();
        let missed: Vec<&String> = provable
            .iter()
            .copied()
            .filter(|id| !result.broke.contains(id))
            .collect();
        let extra: Vec<&String> = result
            .broke
            .iter()
            .filter(|id| !result.expected.contains(id))
            .collect();
        result.ok = missed.is_empty() && extra.is_empty() && !provable.is_empty();
        result.message = if result.ok {
            format!("breaks exactly {}", result.broke.join(", "))
        } else if provable.is_empty() {
            format!(
                "{} fails on an unchanged clone already (bound to the reference's address or \
                 id), so a clone cannot prove it",
                m.check
            )
        } else {
            let mut parts = Vec::new();
            if !missed.is_empty() {
                parts.push(format!(
                    "still passes {} on the mutant (the check does not see the break)",
                    join(&missed)
                ));
            }
            if !extra.is_empty() {
                parts.push(format!("also breaks {}", join(&extra)));
            }
            parts.join("; ")
        };
        if !result.identity_bound.is_empty() {
            result.message.push_str(&format!(
                " (not judged: {} fail on an unchanged clone too)",
                result.identity_bound.join(", ")
            ));
        }
        anyhow::Ok(())
    };
    // Ctrl-C: stop judging, but destroy the clone before going.
    let outcome: anyhow::Result<()> = tokio::select! {
        r = work => r,
        () = interrupt.triggered() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(e) = outcome {
        result.ok = false;
        result.message = format!("{e:#}");
    }
    let destroy = pve_vm::DestroyOptions {
        purge: true,
        destroy_unreferenced_disks: true,
        stop_first: true,
        allow_template: false,
    };
    if let Err(e) = clone.destroy(destroy).await {
        result.message.push_str(&format!(
            "; the clone {} could not be destroyed ({e}): destroy it with `labctl vm destroy {} --stop`",
            clone.vmid(),
            clone.vmid()
        ));
    }
    result
}

/// The start of the description of a selftest's clone: `labctl selftest of <reference>`.
const SELFTEST_MARK: &str = "labctl selftest of";

/// Destroys clones an interrupted selftest of `reference` left (their description starts
/// with the mark and names the reference); best effort, each one said on stderr.
async fn cleanup_leftovers(vms: &pve_vm::VmApi, reference: VmId, name: &str) {
    let Ok(list) = vms.list_guests().await else {
        return;
    };
    let mark = format!("{SELFTEST_MARK} {reference}:");
    // Clones carry the reference's name; only those are looked at.
    for g in list.into_iter().filter(|g| {
        g.vmid != reference && g.template != Some(true) && g.name.as_deref() == Some(name)
    }) {
        let guest = vms.guest_on(g.node.clone(), g.kind, g.vmid);
        let Ok(cfg) = guest.config().await else {
            continue;
        };
        if !cfg.get("description").is_some_and(|d| d.starts_with(&mark)) {
            continue;
        }
        let destroy = pve_vm::DestroyOptions {
            purge: true,
            destroy_unreferenced_disks: true,
            stop_first: true,
            allow_template: false,
        };
        match guest.destroy(destroy).await {
            Ok(()) => eprintln!(
                "destroyed {}, a clone an interrupted selftest of {reference} left",
                g.vmid
            ),
            Err(e) => eprintln!(
                "warning: {} is a clone an interrupted selftest left; destroying it failed: {e}",
                g.vmid
            ),
        }
    }
}

fn join(ids: &[&String]) -> String {
    ids.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
