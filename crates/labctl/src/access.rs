//! `labctl lab access grant|sheet|verify|revoke`: each student's PVE login, reaching
//! only their own guest, for the duration of the exam (see `pve_access::exam`).
//!
//! The students are the lab's guests as `lab status` lists them. The login is made from
//! the guest's host name (`<host name>@<realm>`, stable and DNS-safe); the sheet's
//! `student` is the roster's name when the lab has a roster (the lab file's or
//! `--roster`), else the host name.
//!
//! One sheet model: the cluster says which users exist, the sheet only what their passwords
//! are, and only where its stamp matches the user's (see `pve_access::exam`). Replacing a
//! password is destructive (the old one stops working): it is asked for with
//! `--reset-password`, shown by `--dry-run`, asked on a terminal and needs `--yes` off one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use lab_core::{status, LabName};
use lab_proxmox::ProxmoxLab;
use pve_access::exam::{self, GrantOptions, Outcome, Realm, Reset, RevokeOptions, Seat};
use pve_access::{AccessApi, Sheet, Userid, VmId};
use pve_auth::{PveClient, Secret};
use pve_vm::Timing;
use serde_json::json;

use crate::connect::Connection;
use crate::fail;
use crate::output::{print_json, Format, Sheet as Table};
use crate::roster::Named;

/// The access subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Create one login per student that reaches only their own guest, and write the
    /// credential sheet (0600). Safe to re-run: missing users are created, existing
    /// users and their passwords are never changed unless --reset-password names them.
    #[command(after_help = "\
Examples:
  labctl lab access grant -n exam1 --dry-run
  labctl lab access grant -n exam1 --console-host pve.school.example
  labctl lab access grant -n exam1 --realm school          # LDAP/AD realm: no passwords
  labctl lab access grant -n exam1 --reset-password --dry-run   # who would get a new one
  labctl lab access grant -n exam1 --reset-password 'Zoë Müller' --yes

Students get the role LabctlExam (VM.Audit, VM.Console, VM.PowerMgmt) on their own
guest only; users carry the comment `labctl lab <LAB> sheet:<STAMP>`. The sheet holds a
password only where its stamp matches the user's: a user whose password is not on the
sheet (a lost or stale sheet, another directory) is listed, its row left without a
password, and the command exits 1 — nothing is replaced until you ask with
--reset-password (without names: every such student).")]
    Grant(GrantArgs),
    /// Print the credential sheet: student, login, password, VMID, host name, IP, node,
    /// console link.
    #[command(
        after_help = "Examples:\n  labctl lab access sheet -n exam1\n  labctl lab access sheet -n exam1 -o csv > exam1.csv\n\nCSV cells that a spreadsheet would run as a formula get a leading '."
    )]
    Sheet(SheetArgs),
    /// Log in as every student and check: own guest only, console opens, neighbour 403;
    /// with --revoked: every login refused and no console of the lab open.
    #[command(
        after_help = "Examples:\n  labctl lab access verify -n exam1\n  labctl lab access verify -n exam1 --revoked -o json"
    )]
    Verify(VerifyArgs),
    /// Disable the lab's users, remove their ACL entries, stop every open console of the
    /// lab's guests. Shows the list and asks on a terminal; without one it needs --yes.
    #[command(
        after_help = "Examples:\n  labctl lab access revoke -n exam1 --dry-run\n  labctl lab access revoke -n exam1 --yes"
    )]
    Revoke(RevokeArgs),
}

/// Lab and sheet.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    lab: crate::lab::SelectArgs,
    /// The credential sheet (JSON, created 0600). Default: `<LAB>-credentials.json` in
    /// the current directory.
    #[arg(long, value_name = "PATH")]
    sheet: Option<PathBuf>,
    /// Realm of the students' logins: `pve` (labctl makes passwords) or a directory realm
    /// (LDAP/AD/OpenID: students use their own password).
    #[arg(long, default_value = "pve", value_name = "REALM")]
    realm: String,
}

/// `access grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    common: Common,
    /// Host name for the console links on the sheet (default: the guest's node).
    #[arg(long, value_name = "HOST")]
    console_host: Option<String>,
    /// Give these existing students a new password (the old one stops working): roster
    /// names, host names or logins. Without names: every student whose password is not
    /// on the sheet. Asks first (--yes off a terminal).
    #[arg(long, value_name = "STUDENT", num_args = 0.., value_delimiter = ',')]
    reset_password: Option<Vec<String>>,
    /// Only show what would change (never asks).
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before replacing passwords.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// `access sheet`.
#[derive(Debug, Args)]
pub struct SheetArgs {
    #[command(flatten)]
    common: Common,
}

/// `access verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    common: Common,
    /// Check that access is revoked instead.
    #[arg(long)]
    revoked: bool,
}

/// `access revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    common: Common,
    /// Only show what would change (never asks).
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

impl Common {
    fn lab(&self) -> anyhow::Result<(LabName, Option<Vec<Named>>)> {
        self.lab.resolve()
    }

    fn sheet_path(&self, lab: &LabName) -> PathBuf {
        match &self.sheet {
            Some(p) => p.clone(),
            None => PathBuf::from(format!("{lab}-credentials.json")),
        }
    }

    fn realm(&self) -> anyhow::Result<Realm> {
        let ok = self.realm.len() >= 2
            && self.realm.starts_with(|c: char| c.is_ascii_alphabetic())
            && self
                .realm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(fail::usage(format!(
                "invalid realm {:?}: a letter, then letters, digits, '.', '-' or '_' (e.g. pve)",
                self.realm
            )));
        }
        Ok(match self.realm.as_str() {
            "pve" => Realm::Pve,
            other => Realm::Directory(other.to_owned()),
        })
    }
}

impl AccessCommand {
    fn common(&self) -> &Common {
        match self {
            AccessCommand::Grant(a) => &a.common,
            AccessCommand::Sheet(a) => &a.common,
            AccessCommand::Verify(a) => &a.common,
            AccessCommand::Revoke(a) => &a.common,
        }
    }

    /// Checks the input that needs no cluster.
    pub fn check(&self) -> anyhow::Result<()> {
        let c = self.common();
        if c.lab.url().is_some() {
            return Err(fail::usage(
                "--url is for FOSS-Cloud classrooms; `lab access` gives Proxmox VE logins and \
                 takes --host",
            ));
        }
        if let Some(f) = c.lab.file() {
            if crate::classroom::read_if_fosscloud(Some(f))?.is_some() {
                return Err(fail::usage(format!(
                    "lab access is for Proxmox labs: {} is a FOSS-Cloud classroom (backend = \
                     \"fosscloud\"), whose desktops have no Proxmox logins",
                    f.display()
                )));
            }
        }
        c.lab()?;
        let realm = c.realm()?;
        if let AccessCommand::Grant(g) = self {
            if g.reset_password.is_some() && realm != Realm::Pve {
                return Err(fail::usage(format!(
                    "--reset-password is for realm pve; students of realm {} use their own \
                     directory password",
                    c.realm
                )));
            }
        }
        Ok(())
    }
}

/// The lab's students as seats: one per guest. The login comes from the host name, the
/// student's name from the roster (else the host name).
async fn seats(
    client: &PveClient,
    lab: &LabName,
    roster: Option<&[Named]>,
    realm: &Realm,
    sheet: &Sheet,
    after_down: bool,
) -> anyhow::Result<Vec<Seat>> {
    let hv = match crate::connect::time_scale()? {
        Some(f) => ProxmoxLab::with_timing(client.clone(), Timing::default().scaled(f)),
        None => ProxmoxLab::new(client.clone()),
    };
    let rows = status(&hv, lab).await?;
    if rows.is_empty() && after_down {
        let users = exam::lab_users(&AccessApi::new(client.clone()), lab.as_str()).await?;
        let seats: Vec<Seat> = sheet
            .rows
            .iter()
            .filter(|r| users.iter().any(|u| u.userid.as_str() == r.userid))
            .filter_map(|r| {
                let mut s =
                    Seat::new(r.hostname.as_deref()?, realm, VmId::new(r.vmid).ok()?).ok()?;
                if s.userid.as_str() != r.userid {
                    return None;
                }
                s.student.clone_from(&r.student);
                s.hostname.clone_from(&r.hostname);
                Some(s)
            })
            .collect();
        if !seats.is_empty() || !users.is_empty() {
            return Ok(seats);
        }
    }
    if rows.is_empty() {
        return Err(fail::with_code(
            fail::NOT_FOUND,
            format!("lab {lab} has no students (run `labctl lab up -n {lab}` first)"),
        ));
    }
    let names: BTreeMap<&str, &str> = roster
        .unwrap_or_default()
        .iter()
        .map(|n| (n.hostname.as_str(), n.student.name.as_str()))
        .collect();
    rows.iter()
        .map(|r| {
            let mut s = Seat::new(&r.hostname, realm, r.vmid)?;
            if let Some(name) = names.get(r.hostname.as_str()) {
                (*name).clone_into(&mut s.student);
            } else if roster.is_none() {
                // No roster given: keep the name the sheet has for this login and guest.
                if let Some(row) = sheet
                    .rows
                    .iter()
                    .find(|c| c.userid == s.userid.as_str() && c.vmid == r.vmid.get())
                {
                    s.student.clone_from(&row.student);
                }
            }
            s.hostname = Some(r.hostname.clone());
            s.address = r.primary_address();
            Ok(s)
        })
        .collect()
}

/// `--reset-password [STUDENT…]` against the seats: roster name, host name, login, or the
/// login without its realm.
fn reset_of(names: Option<&[String]>, seats: &[Seat]) -> anyhow::Result<Reset> {
    let Some(names) = names else {
        return Ok(Reset::Nobody);
    };
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(Reset::Unknown);
    }
    let mut set = BTreeSet::new();
    for n in names {
        let hit = seats.iter().find(|s| {
            s.student == n
                || s.hostname.as_deref() == Some(n)
                || s.userid.as_str() == n
                || s.userid.as_str().split('@').next() == Some(n)
        });
        match hit {
            Some(s) => {
                set.insert(s.userid.clone());
            }
            None => {
                let known: Vec<&str> = seats.iter().map(|s| s.student.as_str()).collect();
                return Err(fail::usage(format!(
                    "--reset-password {n:?}: no such student in this lab (students: {}; a \
                     host name or login works too)",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(Reset::These(set))
}

fn outcome_key(o: &Outcome) -> &'static str {
    match o {
        Outcome::Done => "done",
        Outcome::AlreadyDone => "already_done",
        Outcome::WouldDo => "would_do",
        Outcome::Unknown => "unknown",
    }
}

/// The steps of a grant or revoke as `-o` says: lines, a CSV list, or part of a JSON object.
fn steps_table(report: &exam::Report) -> Table {
    let mut t = Table::new(&["ACTION", "TARGET", "OUTCOME"]);
    for s in &report.steps {
        t.row(vec![
            s.action.to_owned(),
            s.target.clone(),
            outcome_key(&s.outcome).to_owned(),
        ]);
    }
    t
}

fn steps_json(report: &exam::Report) -> Vec<serde_json::Value> {
    report
        .steps
        .iter()
        .map(
            |s| json!({"action": s.action, "target": s.target, "outcome": outcome_key(&s.outcome)}),
        )
        .collect()
}

fn print_steps(
    report: &exam::Report,
    format: Format,
    json: serde_json::Value,
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            for s in &report.steps {
                println!("{}", crate::output::line_safe(&s.to_string()));
            }
            Ok(())
        }
        Format::Csv => {
            print!("{}", steps_table(report).to_csv()?);
            Ok(())
        }
        Format::Json => print_json(&json),
    }
}

/// Runs an access subcommand; `format` is the global `-o`.
pub async fn run(cmd: &AccessCommand, conn: &Connection, format: Format) -> anyhow::Result<()> {
    cmd.check()?;
    let common = cmd.common();
    let (lab, roster) = common.lab()?;
    let realm = common.realm()?;
    let sheet_path = common.sheet_path(&lab);
    if let AccessCommand::Sheet(_) = cmd {
        let mut sheet = Sheet::load(&sheet_path)?;
        if sheet.rows.is_empty() {
            return Err(fail::with_code(
                fail::NOT_FOUND,
                format!(
                    "no credential sheet at {} (run `labctl lab access grant -n {lab}`, or \
                     give --sheet)",
                    sheet_path.display()
                ),
            ));
        }
        // The cluster says which passwords work: a row counts only if its user is this
        // lab's, enabled, and carries the row's stamp.
        let api = AccessApi::new(conn.client()?);
        let doubts = check_sheet(&api, &lab, &sheet_path, &mut sheet).await?;
        let fmt = match format {
            Format::Table => pve_access::Format::Table,
            Format::Csv => pve_access::Format::Csv,
            Format::Json => pve_access::Format::Json,
        };
        print!("{}", sheet.render(fmt)?);
        if format == Format::Json {
            println!();
        }
        let missing = sheet
            .rows
            .iter()
            .filter(|r| r.password.is_none() && realm == Realm::Pve)
            .count();
        if missing > 0 {
            eprintln!(
                "note: {missing} rows have no password (not known to this sheet); give those \
                 students new ones with `labctl lab access grant -n {lab} --reset-password`"
            );
        }
        if !doubts.is_empty() {
            for d in &doubts {
                eprintln!("labctl: {}", crate::output::line_safe(d));
            }
            return Err(fail::with_code(
                fail::OTHER,
                format!(
                    "{} passwords on the sheet {} do not work on the cluster (shown without \
                     a password)",
                    doubts.len(),
                    sheet_path.display()
                ),
            ));
        }
        return Ok(());
    }
    if let AccessCommand::Grant(_) = cmd {
        // A grant would give frozen students their access back behind the freeze's back.
        let manifest = crate::freeze::default_manifest(&lab, common.lab.file());
        if let Some(since) = crate::freeze::frozen_since(conn, &manifest, &lab).await? {
            return Err(fail::with_code(
                fail::OTHER,
                format!(
                    "lab {lab} is frozen since {since}: unfreeze first (`labctl lab unfreeze`; \
                     manifest {})",
                    manifest.display()
                ),
            ));
        }
    }
    let client = conn.client()?;
    let api = AccessApi::new(client.clone());
    let prior = Sheet::load(&sheet_path)?;
    // `verify --revoked` and `revoke` work after `lab down` too: the users outlive the
    // guests, and the sheet says which guest was whose.
    let after_down = matches!(cmd, AccessCommand::Revoke(_))
        || matches!(cmd, AccessCommand::Verify(v) if v.revoked);
    let seats = seats(&client, &lab, roster.as_deref(), &realm, &prior, after_down).await?;
    match cmd {
        AccessCommand::Grant(a) => grant(a, &api, &lab, realm, sheet_path, &seats, format).await,
        AccessCommand::Verify(a) => {
            let sheet = Sheet::load(&sheet_path)?;
            let (host, tls) = conn.endpoint()?;
            let login = move |u: &Userid, pw: &Secret| -> pve_access::Result<PveClient> {
                Ok(PveClient::builder(&host)
                    .tls(tls.clone())
                    .password(u.as_str(), pw.clone())
                    .build()?)
            };
            let report = if a.revoked {
                exam::verify_revoked(&api, &sheet, &seats, &login).await?
            } else {
                exam::verify(&api, &sheet, &seats, &login).await?
            };
            match format {
                Format::Json => print_json(&json!({
                    "lab": lab.as_str(),
                    "revoked": a.revoked,
                    "passed": report.passed(),
                    "checks": report.checks.iter().map(|c| json!({
                        "userid": c.userid, "check": c.what, "ok": c.ok, "detail": c.detail,
                    })).collect::<Vec<_>>(),
                }))?,
                _ => {
                    let mut t = Table::new(&["RESULT", "USERID", "CHECK", "DETAIL"]);
                    for c in &report.checks {
                        t.row(vec![
                            if c.ok { "ok" } else { "FAIL" }.to_owned(),
                            c.userid.clone(),
                            c.what.clone(),
                            c.detail.clone(),
                        ]);
                    }
                    if format == Format::Csv {
                        print!("{}", t.to_csv()?);
                    } else {
                        print!("{}", t.to_table());
                    }
                }
            }
            if !report.passed() {
                return Err(fail::with_code(
                    fail::OTHER,
                    format!(
                        "{} of {} checks failed",
                        report.failures().len(),
                        report.checks.len()
                    ),
                ));
            }
            if format.is_table() {
                println!("all {} checks passed", report.checks.len());
            }
            Ok(())
        }
        AccessCommand::Revoke(a) => revoke(a, &api, &lab, &seats, format).await,
        AccessCommand::Sheet(_) => Ok(()),
    }
}

/// Checks a sheet against the cluster: refuses a sheet none of whose users is lab
/// `lab`'s (another lab's sheet, exit 2); blanks every password whose user is gone, not
/// the lab's, disabled or carries another stamp, and says why (one line each).
async fn check_sheet(
    api: &AccessApi,
    lab: &LabName,
    path: &std::path::Path,
    sheet: &mut Sheet,
) -> anyhow::Result<Vec<String>> {
    let users: BTreeMap<String, pve_access::UserInfo> = api
        .users()
        .await?
        .into_iter()
        .map(|u| (u.userid.to_string(), u))
        .collect();
    let ours = |id: &str| {
        users
            .get(id)
            .filter(|u| exam::is_marked(u.comment.as_deref(), lab.as_str()))
    };
    if !sheet.rows.iter().any(|r| ours(&r.userid).is_some()) {
        let others: BTreeSet<String> = sheet
            .rows
            .iter()
            .filter_map(|r| users.get(&r.userid)?.comment.clone())
            .filter_map(|c| {
                c.strip_prefix("labctl lab ")
                    .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
            })
            .collect();
        return Err(fail::usage(format!(
            "the sheet {} is not lab {lab}'s: none of its {} users is a user of lab {lab} on \
             the cluster{}; give lab {lab}'s sheet with --sheet",
            path.display(),
            sheet.rows.len(),
            if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (they belong to lab {})",
                    others.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut doubts = Vec::new();
    for r in &mut sheet.rows {
        if r.password.is_none() {
            continue;
        }
        let why = match ours(&r.userid) {
            None => Some(format!(
                "{} is not a user of lab {lab} on the cluster",
                r.userid
            )),
            Some(u) if !u.usable_at(now) => Some(format!(
                "{} is disabled on the cluster (access revoked); its password does not work",
                r.userid
            )),
            Some(u) if exam::stamp_of(u.comment.as_deref()) != r.stamp.as_deref() => Some(format!(
                "the password of {} on this sheet was replaced on the cluster (stamp {} \
                     here, {} there); find the newer sheet or run `labctl lab access grant -n \
                     {lab} --reset-password {}`",
                r.userid,
                r.stamp.as_deref().unwrap_or("(none)"),
                exam::stamp_of(u.comment.as_deref()).unwrap_or("(none)"),
                r.userid
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            r.password = None;
            r.stamp = None;
            doubts.push(why);
        }
    }
    Ok(doubts)
}

async fn grant(
    a: &GrantArgs,
    api: &AccessApi,
    lab: &LabName,
    realm: Realm,
    sheet_path: PathBuf,
    seats: &[Seat],
    format: Format,
) -> anyhow::Result<()> {
    let mut opts = GrantOptions {
        lab: lab.to_string(),
        realm,
        sheet: sheet_path.clone(),
        console_host: a.console_host.clone(),
        reset: reset_of(a.reset_password.as_deref(), seats)?,
        dry_run: true,
    };
    // Replacing passwords is destructive: show who, then ask (or need --yes).
    if opts.reset != Reset::Nobody && !a.dry_run && !a.yes {
        let plan = exam::grant(api, &opts, seats)
            .await
            .with_context(|| format!("lab access grant {lab}"))?;
        let replaced: Vec<&str> = plan
            .report
            .steps
            .iter()
            .filter(|s| s.action == "replace password")
            .map(|s| s.target.as_str())
            .collect();
        if !replaced.is_empty() {
            eprintln!(
                "will give {} students a new password (their old one stops working): {}",
                replaced.len(),
                replaced.join(", ")
            );
            crate::confirm::confirm(
                &format!("Replace {} passwords of lab {lab}?", replaced.len()),
                a.yes,
            )?;
        }
    }
    opts.dry_run = a.dry_run;
    let out = exam::grant(api, &opts, seats)
        .await
        .with_context(|| format!("lab access grant {lab}"))?;
    let json = json!({
        "lab": lab.as_str(),
        "dry_run": a.dry_run,
        "sheet": sheet_path.display().to_string(),
        "steps": steps_json(&out.report),
        "unknown": out.unknown.iter().map(|(u, why)| json!({"userid": u.as_str(), "reason": why})).collect::<Vec<_>>(),
    });
    print_steps(&out.report, format, json)?;
    if format.is_table() {
        if a.dry_run {
            println!("dry run: nothing changed");
        } else {
            println!(
                "{} students; credential sheet written to {} (readable by you only); print it \
                 with `labctl lab access sheet -n {lab}`",
                out.sheet.rows.len(),
                sheet_path.display()
            );
        }
    }
    if !out.unknown.is_empty() {
        for (_, why) in &out.unknown {
            eprintln!("labctl: {why}");
        }
        let who: Vec<&str> = out.unknown.iter().map(|(u, _)| u.as_str()).collect();
        return Err(fail::with_code(
            fail::OTHER,
            format!(
                "the passwords of {} students are not known to the sheet {} ({}): their rows \
                 have no password and their passwords were left as they are{}. If you have the right sheet, \
                 pass it with --sheet; otherwise give them new passwords (the old ones stop \
                 working): labctl lab access grant -n {lab} --reset-password",
                who.len(),
                sheet_path.display(),
                who.join(", "),
                match out
                    .report
                    .steps
                    .iter()
                    .filter(|s| s.action == "replace password" && s.outcome == Outcome::Done)
                    .count()
                {
                    0 => String::new(),
                    n => format!(" ({n} other passwords were replaced as asked)"),
                }
            ),
        ));
    }
    Ok(())
}

async fn revoke(
    a: &RevokeArgs,
    api: &AccessApi,
    lab: &LabName,
    seats: &[Seat],
    format: Format,
) -> anyhow::Result<()> {
    let dry = RevokeOptions {
        lab: lab.to_string(),
        dry_run: true,
    };
    if !a.dry_run && !a.yes {
        let plan = exam::revoke(api, &dry, seats).await?;
        if plan.changes() > 0 {
            for s in plan.steps.iter().filter(|s| s.outcome == Outcome::WouldDo) {
                eprintln!("{}", crate::output::line_safe(&s.to_string()));
            }
            crate::confirm::confirm(
                &format!(
                    "Revoke access of lab {lab} as listed ({} changes)?",
                    plan.changes()
                ),
                a.yes,
            )?;
        }
    }
    let opts = RevokeOptions {
        dry_run: a.dry_run,
        ..dry
    };
    let report = exam::revoke(api, &opts, seats)
        .await
        .with_context(|| format!("lab access revoke {lab}"))?;
    let json = json!({
        "lab": lab.as_str(),
        "dry_run": a.dry_run,
        "steps": steps_json(&report),
    });
    print_steps(&report, format, json)?;
    if format.is_table() {
        if a.dry_run {
            println!("dry run: nothing changed");
        } else if report.changes() == 0 {
            println!("nothing to revoke");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: AccessCommand,
    }

    fn parse(args: &[&str]) -> AccessCommand {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    #[test]
    fn input_is_checked_before_any_connection() {
        assert!(parse(&["grant", "-n", "exam1"]).check().is_ok());
        let e = parse(&["grant", "-n", "Exam 1"]).check().unwrap_err();
        assert!(e.to_string().contains("Exam 1"), "{e}");
        let e = parse(&["verify", "-n", "exam1", "--realm", "1x"])
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("invalid realm"), "{e}");
        let e = parse(&[
            "grant",
            "-n",
            "exam1",
            "--realm",
            "school",
            "--reset-password",
        ])
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("realm pve"), "{e}");
        let e = parse(&[
            "sheet",
            "-n",
            "exam1",
            "--url",
            "https://fc.example/vm-manager",
        ])
        .check()
        .unwrap_err();
        assert_eq!(fail::exit_code(&e), fail::USAGE, "{e}");
        let cmd = parse(&["revoke", "-n", "exam1", "--realm", "school"]);
        assert_eq!(
            cmd.common().realm().unwrap(),
            Realm::Directory("school".into())
        );
        let lab = cmd.common().lab().unwrap().0;
        assert_eq!(
            cmd.common().sheet_path(&lab),
            PathBuf::from("exam1-credentials.json")
        );
    }

    #[test]
    fn reset_names_resolve_by_roster_name_host_name_or_login() {
        let mut a = Seat::new("exam1-01", &Realm::Pve, VmId::new(5000).unwrap()).unwrap();
        a.student = "Zoë Müller".into();
        a.hostname = Some("exam1-01".into());
        let b = Seat::new("exam1-02", &Realm::Pve, VmId::new(5001).unwrap()).unwrap();
        let seats = [a, b];
        assert_eq!(reset_of(None, &seats).unwrap(), Reset::Nobody);
        assert_eq!(reset_of(Some(&[][..]), &seats).unwrap(), Reset::Unknown);
        for n in ["Zoë Müller", "exam1-01", "exam1-01@pve"] {
            let Reset::These(set) = reset_of(Some(&[n.to_owned()][..]), &seats).unwrap() else {
                panic!("{n}");
            };
            assert_eq!(
                set.iter().map(Userid::as_str).collect::<Vec<_>>(),
                ["exam1-01@pve"]
            );
        }
        let e = reset_of(Some(&["nobody".to_owned()][..]), &seats).unwrap_err();
        assert!(e.to_string().contains("Zoë Müller"), "{e}");
        assert_eq!(fail::exit_code(&e), fail::USAGE);
    }
}
