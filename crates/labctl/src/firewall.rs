//! `labctl firewall isolate|unisolate|verify`: the seed's isolation of a VMID range
//! (`create_proxmox_vm_isolation_rules FIRST LAST ALLOWED_IP`), over
//! `pve_firewall::isolation`.

use clap::{Args, Subcommand};
use pve_firewall::isolation::{
    Isolation, IsolationOptions, LabName, Report, Students, Verification,
};
use pve_firewall::Cidr;
use pve_vm::{VmApi, VmId};
use serde_json::json;

use crate::fail;
use crate::output::{print_json, Format, Sheet};

/// The firewall subcommands.
#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// Fence guests FIRST..=LAST so they reach only the --allow addresses and not each other.
    ///
    /// Idempotent; every prior value is recorded on the guest itself, so `unisolate`
    /// restores it exactly. The datacenter firewall is switched on last, if it is off.
    #[command(
        after_help = "Examples:\n  labctl firewall isolate --first 5000 --last 5019 --allow 10.10.0.1 --dry-run\n  labctl firewall isolate --first 5000 --last 5019 --allow 10.10.0.1,10.10.0.2"
    )]
    Isolate {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        allow: Allow,
        /// Only show what would change (reads only).
        #[arg(long)]
        dry_run: bool,
    },
    /// Lift the fence of FIRST..=LAST and restore every recorded prior value.
    #[command(
        after_help = "Examples:\n  labctl firewall unisolate --first 5000 --last 5019 --dry-run\n  labctl firewall unisolate --first 5000 --last 5019"
    )]
    Unisolate {
        #[command(flatten)]
        range: Range,
        /// Only show what would change (reads only).
        #[arg(long)]
        dry_run: bool,
    },
    /// Check, per guest, the three switches and the rule; exit 1 if any guest is not fenced.
    #[command(
        after_help = "Example:\n  labctl firewall verify --first 5000 --last 5019 --allow 10.10.0.1 -o json"
    )]
    Verify {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        allow: Allow,
    },
}

/// The guests.
#[derive(Debug, Args)]
pub struct Range {
    /// First guest id of the range.
    #[arg(long, value_name = "VMID")]
    first: String,
    /// Last guest id of the range (inclusive).
    #[arg(long, value_name = "VMID")]
    last: String,
    /// Name of the fence (security group iso-NAME, IP sets iso-NAME-…); 1-14 characters,
    /// a lower-case letter then lower-case letters, digits or '-'. Default: fw-FIRST.
    #[arg(long, value_name = "NAME")]
    lab: Option<String>,
}

/// The addresses the students may reach.
#[derive(Debug, Args)]
pub struct Allow {
    /// Addresses or networks the guests may reach (the teacher), comma-separated or repeated.
    #[arg(long, value_name = "IP[,IP…]", value_delimiter = ',', required = true)]
    allow: Vec<String>,
}

impl Range {
    fn students(&self) -> anyhow::Result<(Students, IsolationOptions)> {
        let first: VmId = self.first.parse()?;
        let last: VmId = self.last.parse()?;
        let students = Students::Range { first, last };
        students.ids()?;
        let lab = match &self.lab {
            Some(l) => LabName::new(l)?,
            None => LabName::new(&format!("fw-{first}"))?,
        };
        Ok((students, IsolationOptions::new(lab)))
    }
}

impl Allow {
    fn cidrs(&self) -> anyhow::Result<Vec<Cidr>> {
        Ok(self
            .allow
            .iter()
            .map(|a| a.trim().parse::<Cidr>())
            .collect::<Result<_, _>>()?)
    }
}

impl FirewallCommand {
    /// Checks the input that needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        match self {
            FirewallCommand::Isolate { range, allow, .. }
            | FirewallCommand::Verify { range, allow } => {
                range.students()?;
                allow.cidrs()?;
            }
            FirewallCommand::Unisolate { range, .. } => {
                range.students()?;
            }
        }
        if !matches!(self, FirewallCommand::Verify { .. }) {
            format.not_csv("firewall isolate/unisolate")?;
        }
        Ok(())
    }
}

fn report_json(report: &Report, dry_run: bool) -> serde_json::Value {
    json!({
        "lab": report.lab,
        "dry_run": dry_run,
        "changes": report.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "notes": report.notes,
    })
}

fn verification_json(v: &Verification) -> serde_json::Value {
    json!({
        "lab": v.lab,
        "isolated": v.is_isolated(),
        "cluster_enabled": v.cluster_enabled,
        "cluster_problems": v.cluster_problems,
        "guests": v.guests.iter().map(|g| json!({
            "vmid": g.vmid.get(),
            "isolated": g.is_isolated(),
            "firewall_enabled": g.firewall_enabled,
            "nics": g.nics.iter().map(|(i, on)| json!({"nic": format!("net{i}"), "firewall": on})).collect::<Vec<_>>(),
            "group_rule_first": g.group_rule_first,
            "problems": g.problems,
        })).collect::<Vec<_>>(),
    })
}

fn verification_sheet(v: &Verification) -> Sheet {
    let mut s = Sheet::new(&[
        "VMID",
        "FENCED",
        "GUEST_FW",
        "NICS_FW",
        "RULE_FIRST",
        "PROBLEMS",
    ]);
    let yn = |b: bool| if b { "yes" } else { "no" }.to_owned();
    for g in &v.guests {
        let nics = if g.nics.is_empty() {
            "-".to_owned()
        } else {
            g.nics
                .iter()
                .map(|(i, on)| format!("net{i}={}", if *on { 1 } else { 0 }))
                .collect::<Vec<_>>()
                .join(",")
        };
        s.row(vec![
            g.vmid.to_string(),
            yn(g.is_isolated()),
            yn(g.firewall_enabled),
            nics,
            yn(g.group_rule_first),
            if g.problems.is_empty() {
                "-".to_owned()
            } else {
                g.problems.join("; ")
            },
        ]);
    }
    s
}

/// What `isolate` would do, from `verify`'s reads: every switch or rule that is missing.
fn isolate_plan(v: &Verification) -> Vec<String> {
    let mut plan = Vec::new();
    for p in &v.cluster_problems {
        plan.push(format!("datacenter: fix: {p}"));
    }
    for g in &v.guests {
        if !g.group_rule_first {
            plan.push(format!(
                "guest {}: put the rule GROUP iso-{} first",
                g.vmid, v.lab
            ));
        }
        for (i, on) in &g.nics {
            if !on {
                plan.push(format!("guest {}: set firewall=1 on net{i}", g.vmid));
            }
        }
        if !g.firewall_enabled {
            plan.push(format!("guest {}: switch its firewall on", g.vmid));
        }
    }
    plan
}

/// Runs a firewall subcommand.
pub async fn run(cmd: &FirewallCommand, vms: VmApi, format: Format) -> anyhow::Result<()> {
    let iso = Isolation::with_vm_api(vms);
    match cmd {
        FirewallCommand::Isolate {
            range,
            allow,
            dry_run,
        } => {
            let (students, options) = range.students()?;
            let allowed = allow.cidrs()?;
            if *dry_run {
                let v = iso.verify(&students, &allowed, &options).await?;
                let plan = isolate_plan(&v);
                match format {
                    Format::Json => print_json(&json!({
                        "lab": v.lab, "dry_run": true, "plan": plan,
                    }))?,
                    _ => {
                        if plan.is_empty() {
                            println!("lab {}: already isolated, nothing to change", v.lab);
                        } else {
                            println!("lab {}: isolate would:", v.lab);
                            for p in &plan {
                                println!("  {p}");
                            }
                        }
                        println!("dry run: nothing changed");
                    }
                }
                return Ok(());
            }
            let report = iso.isolate(&students, &allowed, &options).await?;
            match format {
                Format::Json => print_json(&report_json(&report, false))?,
                _ => print!("{report}"),
            }
        }
        FirewallCommand::Unisolate { range, dry_run } => {
            let (students, options) = range.students()?;
            if *dry_run {
                // verify needs an allowed address; only the per-guest state is used here.
                let any: Vec<Cidr> = vec!["192.0.2.1".parse()?];
                let v = iso.verify(&students, &any, &options).await?;
                let fenced: Vec<u32> = v
                    .guests
                    .iter()
                    .filter(|g| g.group_rule_first)
                    .map(|g| g.vmid.get())
                    .collect();
                match format {
                    Format::Json => print_json(&json!({
                        "lab": v.lab, "dry_run": true, "unfence": fenced,
                    }))?,
                    _ => {
                        if fenced.is_empty() {
                            println!("lab {}: no guest of the range is fenced by it", v.lab);
                        } else {
                            for id in &fenced {
                                println!(
                                    "  guest {id}: remove the lab's rule, restore the recorded \
                                     firewall switches"
                                );
                            }
                            println!(
                                "  datacenter: remove group iso-{0} and its IP sets (and switch \
                                 the datacenter firewall back off if lab {0} switched it on)",
                                v.lab
                            );
                        }
                        println!("dry run: nothing changed");
                    }
                }
                return Ok(());
            }
            let report = iso.unisolate(&students, &options).await?;
            match format {
                Format::Json => print_json(&report_json(&report, false))?,
                _ => print!("{report}"),
            }
        }
        FirewallCommand::Verify { range, allow } => {
            let (students, options) = range.students()?;
            let v = iso.verify(&students, &allow.cidrs()?, &options).await?;
            match format {
                Format::Json => print_json(&verification_json(&v))?,
                Format::Csv => print!("{}", verification_sheet(&v).to_csv()?),
                Format::Table => {
                    print!("{}", verification_sheet(&v).to_table());
                    for p in &v.cluster_problems {
                        println!("datacenter: {p}");
                    }
                }
            }
            if !v.is_isolated() {
                let bad = v.guests.iter().filter(|g| !g.is_isolated()).count();
                return Err(fail::with_code(
                    fail::OTHER,
                    format!(
                        "lab {} is NOT isolated: {bad} of {} guests not fenced{}",
                        v.lab,
                        v.guests.len(),
                        if v.cluster_problems.is_empty() {
                            ""
                        } else {
                            ", and the datacenter has problems"
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}
