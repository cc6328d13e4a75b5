//! `labctl firewall isolate|unisolate|verify`: the seed's isolation of a VMID range
//! (`create_proxmox_vm_isolation_rules FIRST LAST ALLOWED_IP`), over
//! `pve_firewall::isolation`.
//!
//! A range is a set of ids, not of guests: ids with no guest are skipped and listed
//! (`skipped` in JSON), a range with no guest at all is "not found" (exit 4), and
//! `isolate` refuses (exit 1, before any change) a range holding a guest that another
//! fence already holds (it has a rule of another `iso-<name>` group): a guest belongs to
//! one fence, and the other one's `unisolate` would no longer restore it.

use clap::{Args, Subcommand};
use pve_firewall::isolation::{
    FenceNames, Isolation, IsolationOptions, LabName, Report, Students, Verification,
};
use pve_firewall::Cidr;
use pve_vm::{VmApi, VmId};
use serde_json::json;

use crate::fail;
use crate::output::{print_json, Format, Sheet};
use pve_firewall::Scope;

/// The firewall subcommands.
#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// Fence guests FIRST..=LAST so they reach only the --allow addresses and not each other.
    ///
    /// Idempotent; every prior value is recorded on the guest itself, so `unisolate`
    /// restores it exactly. The datacenter firewall is switched on last, if it is off.
    /// Ids without a guest are skipped and listed; a guest that another fence holds makes
    /// it refuse before changing anything.
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
    /// Check, per guest, the three switches and the rule; exit 1 if any guest is not
    /// fenced. Ids without a guest are skipped and listed.
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

fn report_json(report: &Report, dry_run: bool, skipped: &[VmId]) -> serde_json::Value {
    json!({
        "lab": report.lab,
        "dry_run": dry_run,
        "skipped": ids_json(skipped),
        "changes": report.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "notes": report.notes,
    })
}

fn verification_json(v: &Verification, skipped: &[VmId]) -> serde_json::Value {
    json!({
        "lab": v.lab,
        "fenced": v.is_isolated(),
        "cluster_enabled": v.cluster_enabled,
        "cluster_problems": v.cluster_problems,
        "guests": v.guests.iter().map(|g| json!({
            "vmid": g.vmid.get(),
            "fenced": g.is_isolated(),
            "firewall_enabled": g.firewall_enabled,
            "nics": g.nics.iter().map(|(i, on)| json!({"nic": format!("net{i}"), "firewall": on})).collect::<Vec<_>>(),
            "group_rule_first": g.group_rule_first,
            "problems": g.problems,
        })).collect::<Vec<_>>(),
        "skipped": ids_json(skipped),
    })
}

fn ids_json(ids: &[VmId]) -> Vec<u32> {
    ids.iter().map(|v| v.get()).collect()
}

/// `5003, 5005-5019`: ids, consecutive ones as ranges.
fn compact(ids: &[VmId]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1].get() == ids[j].get() + 1 {
            j += 1;
        }
        parts.push(if j > i + 1 {
            format!("{}-{}", ids[i], ids[j])
        } else if j == i + 1 {
            format!("{}, {}", ids[i], ids[j])
        } else {
            ids[i].to_string()
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// The range's ids that have a guest (as [`Students::List`]) and those that do not, said
/// on stderr in table mode. With `overlap`, refuses a guest that another fence holds.
async fn guests_of(
    iso: &Isolation,
    vms: &VmApi,
    range: &Range,
    options: &IsolationOptions,
    allowed: Option<&[Cidr]>,
    format: Format,
) -> anyhow::Result<(Students, Vec<VmId>)> {
    let (students, _) = range.students()?;
    let wanted = students.ids()?;
    let guests: std::collections::BTreeMap<VmId, pve_vm::GuestSummary> = vms
        .list_guests()
        .await?
        .into_iter()
        .map(|g| (g.vmid, g))
        .collect();
    let (present, skipped): (Vec<VmId>, Vec<VmId>) = wanted
        .iter()
        .copied()
        .partition(|id| guests.contains_key(id));
    // A template is never fenced: every clone made from it later would inherit the rule
    // (and keep it after `unisolate` of the range).
    let (templates, present): (Vec<VmId>, Vec<VmId>) = match allowed {
        Some(_) => present
            .into_iter()
            .partition(|id| guests[id].template == Some(true)),
        None => (Vec::new(), present),
    };
    if present.is_empty() && !templates.is_empty() {
        return Err(fail::usage(format!(
            "refusing to fence {}-{}: its only guests are templates ({}); a template is never \
             fenced, because its clones would inherit the rule. Fence the clones instead. \
             Nothing changed",
            range.first,
            range.last,
            compact(&templates)
        )));
    }
    if !templates.is_empty() && format.is_table() {
        eprintln!(
            "skipped {} templates (never fenced: their clones would inherit the rule): {}",
            templates.len(),
            compact(&templates)
        );
    }
    if present.is_empty() {
        return Err(fail::with_code(
            fail::NOT_FOUND,
            format!(
                "no guest has an id in {}-{}: nothing to do (check --first/--last with `labctl \
                 vm list`)",
                range.first, range.last
            ),
        ));
    }
    if !skipped.is_empty() && format.is_table() {
        eprintln!(
            "skipped {} ids with no guest: {}",
            skipped.len(),
            compact(&skipped)
        );
    }
    if allowed.is_some() {
        let ours = options.lab.group();
        let mut foreign: Vec<(VmId, String)> = Vec::new();
        for id in &present {
            let g = &guests[id];
            let scope = Scope::Guest {
                node: g.node.clone(),
                kind: g.kind,
                vmid: *id,
            };
            let rules = iso.firewall().rules(&scope).await?;
            if let Some(r) = rules.iter().find(|r| {
                r.kind == "group" && r.action.starts_with("iso-") && r.action != ours.as_str()
            }) {
                foreign.push((*id, r.action.clone()));
            }
        }
        if !foreign.is_empty() {
            let list: Vec<String> = foreign
                .iter()
                .map(|(id, group)| format!("{id} (group {group})"))
                .collect();
            let other = foreign[0].1.trim_start_matches("iso-").to_owned();
            return Err(fail::with_code(
                fail::OTHER,
                format!(
                    "refusing to fence {}-{} as {}: {} guests are already fenced by another \
                     fence: {}. A guest belongs to one fence; choose a range without them, or \
                     lift that fence first (e.g. `labctl firewall unisolate --first {} --last \
                     {} --lab {other}`, or `labctl lab down` for a lab). Nothing changed",
                    range.first,
                    range.last,
                    options.lab,
                    foreign.len(),
                    list.join(", "),
                    foreign[0].0,
                    foreign[foreign.len() - 1].0,
                ),
            ));
        }
    }
    if let Some(allowed) = allowed {
        fence_name_free(iso, &guests, &present, range, options, allowed).await?;
    }
    let mut skipped = skipped;
    skipped.extend(templates);
    skipped.sort();
    Ok((Students::List(present), skipped))
}

/// `isolate` under a fence name that is already in use (a lab's fence made by `lab up`, or
/// an earlier `firewall isolate`) must not rewrite it: refused if that fence allows other
/// addresses or holds guests outside this range. Re-running the same isolate is fine.
async fn fence_name_free(
    iso: &Isolation,
    guests: &std::collections::BTreeMap<VmId, pve_vm::GuestSummary>,
    present: &[VmId],
    range: &Range,
    options: &IsolationOptions,
    allowed: &[Cidr],
) -> anyhow::Result<()> {
    let group = options.lab.group();
    let fw = iso.firewall();
    if !fw.groups().await?.iter().any(|g| g.group == group.as_str()) {
        return Ok(());
    }
    let set = options.lab.allowed_set();
    let theirs: std::collections::BTreeSet<String> =
        match fw.ipset_entries(&Scope::Cluster, &set).await {
            Ok(entries) => entries
                .iter()
                .filter(|e| !e.nomatch)
                .map(|e| {
                    e.cidr
                        .parse::<Cidr>()
                        .map_or_else(|_| e.cidr.clone(), |c| c.to_string())
                })
                .collect(),
            Err(e) if e.is_not_found() => std::collections::BTreeSet::new(),
            Err(e) => return Err(e.into()),
        };
    let ours: std::collections::BTreeSet<String> =
        allowed.iter().map(ToString::to_string).collect();
    let mut members: Vec<VmId> = Vec::new();
    for (id, g) in guests {
        if present.contains(id) {
            continue;
        }
        let scope = Scope::Guest {
            node: g.node.clone(),
            kind: g.kind,
            vmid: *id,
        };
        let rules = match fw.rules(&scope).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        if rules
            .iter()
            .any(|r| r.kind == "group" && r.action == group.as_str())
        {
            members.push(*id);
        }
    }
    if theirs == ours && members.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if theirs != ours {
        why.push(format!(
            "it allows {} (not {})",
            if theirs.is_empty() {
                "nothing".to_owned()
            } else {
                theirs.iter().cloned().collect::<Vec<_>>().join(", ")
            },
            ours.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !members.is_empty() {
        why.push(format!(
            "it fences guests outside {}-{}: {}",
            range.first,
            range.last,
            compact(&members)
        ));
    }
    Err(fail::usage(format!(
        "refusing to fence {}-{} as {}: the fence {} already exists and {}. Isolating would \
         rewrite another fence (a lab's fence from `labctl lab up`, or an earlier isolate). \
         Choose another name with --lab, or change that fence with its own command (`labctl \
         lab down` for a lab, `labctl firewall unisolate --lab {}` otherwise). Nothing changed",
        range.first,
        range.last,
        options.lab,
        group,
        why.join(", and "),
        options.lab,
    )))
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
    let iso = Isolation::with_vm_api(vms.clone());
    match cmd {
        FirewallCommand::Isolate {
            range,
            allow,
            dry_run,
        } => {
            let (_, options) = range.students()?;
            let allowed = allow.cidrs()?;
            let (students, skipped) =
                guests_of(&iso, &vms, range, &options, Some(&allowed), format).await?;
            if *dry_run {
                let v = iso.verify(&students, &allowed, &options).await?;
                let plan = isolate_plan(&v);
                match format {
                    Format::Json => print_json(&json!({
                        "lab": v.lab, "dry_run": true, "plan": plan,
                        "skipped": ids_json(&skipped),
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
                Format::Json => print_json(&report_json(&report, false, &skipped))?,
                _ => print!("{report}"),
            }
        }
        FirewallCommand::Unisolate { range, dry_run } => {
            let (_, options) = range.students()?;
            let (students, skipped) = guests_of(&iso, &vms, range, &options, None, format).await?;
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
                        "skipped": ids_json(&skipped),
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
                Format::Json => print_json(&report_json(&report, false, &skipped))?,
                _ => print!("{report}"),
            }
        }
        FirewallCommand::Verify { range, allow } => {
            let (_, options) = range.students()?;
            let (students, skipped) = guests_of(&iso, &vms, range, &options, None, format).await?;
            let v = iso.verify(&students, &allow.cidrs()?, &options).await?;
            match format {
                Format::Json => print_json(&verification_json(&v, &skipped))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_ids_are_said_as_ranges() {
        let ids: Vec<VmId> = [5002, 5003, 5004, 5007, 5009, 5010]
            .into_iter()
            .map(|i| VmId::new(i).unwrap())
            .collect();
        assert_eq!(compact(&ids), "5002-5004, 5007, 5009, 5010");
        assert_eq!(compact(&[]), "");
    }
}
