//! `labctl lab access grant|sheet|verify|revoke`: each student's PVE login, reaching
//! only their own guest, for the duration of the exam (see `pve_access::exam`).
//!
//! The students are the lab's guests as `lab status` lists them: the host name is the
//! student's name, the login `<host name>@<realm>`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use lab_core::{status, LabName};
use lab_proxmox::ProxmoxLab;
use pve_access::exam::{self, GrantOptions, Realm, RevokeOptions, Seat};
use pve_access::{AccessApi, Format, Sheet, Userid, VmId};
use pve_auth::{PveClient, Secret};
use pve_vm::Timing;

use crate::connect::Connection;

/// The access subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Create one login per student that reaches only their own guest, and write the
    /// credential sheet (0600). Safe to re-run: nothing that exists is changed.
    #[command(after_help = "\
Examples:
  labctl lab access grant -n exam1 --dry-run
  labctl lab access grant -n exam1 --console-host pve.school.example
  labctl lab access grant -n exam1 --realm school   # LDAP/AD realm: no passwords

Students get the role LabctlExam (VM.Audit, VM.Console, VM.PowerMgmt) on their own
guest only; users carry the comment `labctl lab <LAB>`. Keep the sheet: a lab user whose
password is not on it is re-created with a new password.")]
    Grant(GrantArgs),
    /// Print the credential sheet: student, login, password, VMID, host name, IP, node,
    /// console link.
    #[command(
        after_help = "Examples:\n  labctl lab access sheet -n exam1\n  labctl lab access sheet -n exam1 -o csv > exam1.csv"
    )]
    Sheet(SheetArgs),
    /// Log in as every student and check: own guest only, console opens, neighbour 403;
    /// with --revoked: every login refused and no console of the lab open.
    #[command(
        after_help = "Examples:\n  labctl lab access verify -n exam1\n  labctl lab access verify -n exam1 --revoked"
    )]
    Verify(VerifyArgs),
    /// Disable the lab's users, remove their ACL entries, stop every open console of the
    /// lab's guests. Asks first unless --yes.
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
    /// The credential sheet (JSON, created 0600). Default: `<LAB>-credentials.json`.
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
    /// Only show what would change.
    #[arg(long)]
    dry_run: bool,
}

/// `access sheet`.
#[derive(Debug, Args)]
pub struct SheetArgs {
    #[command(flatten)]
    common: Common,
    /// Output format: table, csv or json.
    #[arg(long, short = 'o', default_value = "table", value_name = "FORMAT")]
    output: String,
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
    /// Only show what would change.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
}

impl Common {
    fn lab(&self) -> anyhow::Result<LabName> {
        Ok(self.lab.resolve()?.0)
    }

    fn sheet_path(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.sheet {
            Some(p) => p.clone(),
            None => PathBuf::from(format!("{}-credentials.json", self.lab()?)),
        })
    }

    fn realm(&self) -> anyhow::Result<Realm> {
        let ok = self.realm.len() >= 2
            && self.realm.starts_with(|c: char| c.is_ascii_alphabetic())
            && self
                .realm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            bail!(
                "invalid realm {:?}: a letter, then letters, digits, '.', '-' or '_' (e.g. pve)",
                self.realm
            );
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
        c.lab()?;
        c.realm()?;
        if let AccessCommand::Sheet(s) = self {
            s.output.parse::<Format>()?;
        }
        Ok(())
    }
}

/// The lab's students as seats: one per guest, named by host name.
async fn seats(client: &PveClient, lab: &LabName, realm: &Realm) -> anyhow::Result<Vec<Seat>> {
    let hv = match crate::connect::time_scale()? {
        Some(f) => ProxmoxLab::with_timing(client.clone(), Timing::default().scaled(f)),
        None => ProxmoxLab::new(client.clone()),
    };
    let rows = status(&hv, lab).await?;
    if rows.is_empty() {
        bail!("lab {lab} has no students (run `labctl lab up -n {lab}` first)");
    }
    rows.iter()
        .map(|r| {
            let mut s = Seat::new(&r.hostname, realm, VmId::new(r.vmid.get())?)?;
            s.hostname = Some(r.hostname.clone());
            s.address = r.primary_address();
            Ok(s)
        })
        .collect()
}

fn print_steps(report: &exam::Report) {
    for s in &report.steps {
        println!("{s}");
    }
}

/// Runs an access subcommand.
pub async fn run(cmd: &AccessCommand, conn: &Connection) -> anyhow::Result<()> {
    cmd.check()?;
    let common = cmd.common();
    let lab = common.lab()?;
    let realm = common.realm()?;
    let sheet_path = common.sheet_path()?;
    if let AccessCommand::Sheet(a) = cmd {
        let sheet = Sheet::load(&sheet_path)?;
        if sheet.rows.is_empty() {
            bail!(
                "no credential sheet at {} (run `labctl lab access grant -n {lab}`)",
                sheet_path.display()
            );
        }
        print!("{}", sheet.render(a.output.parse()?)?);
        if a.output == "json" {
            println!();
        }
        return Ok(());
    }
    let client = conn.client()?;
    let api = AccessApi::new(client.clone());
    let seats = seats(&client, &lab, &realm).await?;
    match cmd {
        AccessCommand::Grant(a) => {
            let opts = GrantOptions {
                lab: lab.to_string(),
                realm,
                sheet: sheet_path.clone(),
                console_host: a.console_host.clone(),
                dry_run: a.dry_run,
            };
            let out = exam::grant(&api, &opts, &seats)
                .await
                .with_context(|| format!("lab access grant {lab}"))?;
            print_steps(&out.report);
            if a.dry_run {
                println!("dry run: nothing changed");
            } else {
                println!(
                    "{} students; credential sheet written to {} (readable by you only); \
                     print it with `labctl lab access sheet -n {lab}`",
                    out.sheet.rows.len(),
                    sheet_path.display()
                );
            }
        }
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
            for c in &report.checks {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                println!("{mark} {:<24} {:<44} {}", c.userid, c.what, c.detail);
            }
            if !report.passed() {
                bail!("{} checks failed", report.failures().len());
            }
            println!("all {} checks passed", report.checks.len());
        }
        AccessCommand::Revoke(a) => {
            let dry = RevokeOptions {
                lab: lab.to_string(),
                dry_run: true,
            };
            if !a.dry_run && !a.yes {
                let plan = exam::revoke(&api, &dry, &seats).await?;
                print_steps(&plan);
                if plan.changes() == 0 {
                    println!("nothing to revoke");
                    return Ok(());
                }
                if !confirm(&format!("Revoke access of lab {lab} as listed? [y/N] "))? {
                    bail!("not confirmed; nothing changed (use --yes to skip the question)");
                }
            }
            let opts = RevokeOptions {
                dry_run: a.dry_run,
                ..dry
            };
            let report = exam::revoke(&api, &opts, &seats)
                .await
                .with_context(|| format!("lab access revoke {lab}"))?;
            print_steps(&report);
            if a.dry_run {
                println!("dry run: nothing changed");
            }
        }
        AccessCommand::Sheet(_) => {}
    }
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return Err(crate::fail::usage(
            "refusing to revoke without confirmation: stdin is not a terminal; pass --yes",
        ));
    }
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
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
        let e = parse(&["sheet", "-n", "exam1", "-o", "yaml"])
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("table, csv, json"), "{e}");
        let e = parse(&["verify", "-n", "exam1", "--realm", "1x"])
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("invalid realm"), "{e}");
        let cmd = parse(&["revoke", "-n", "exam1", "--realm", "school"]);
        assert_eq!(
            cmd.common().realm().unwrap(),
            Realm::Directory("school".into())
        );
        assert_eq!(
            cmd.common().sheet_path().unwrap(),
            PathBuf::from("exam1-credentials.json")
        );
    }
}
