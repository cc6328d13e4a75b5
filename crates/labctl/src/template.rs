//! `labctl template replicate|list`: a copy of a template on each node's storage, so a
//! lab's linked clones can land on every node (placement, issue 21).

use clap::{Args, Subcommand};
use lab_core::VmId;
use lab_proxmox::ProxmoxLab;
use serde_json::json;

use crate::output::{line_safe, Format, Sheet};

/// The template subcommands.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Copy a QEMU template to other nodes (full clone, moved offline, made a template,
    /// tagged `labctl-replica.<TEMPLATE>`); `lab up` then spreads students over them.
    ///
    /// Refuses a guest that is not a template. Idempotent: nodes that have the template or
    /// a replica are kept, a copy an interrupted run left half made (Ctrl-C, a lost
    /// connection, a refused request) is found by its description and finished, not copied
    /// again. Creates only, never removes.
    #[command(after_help = "\
Examples:
  labctl template replicate 9000                   # every online node
  labctl template replicate 9000 --nodes pve2,pve3
  labctl template replicate 9000 --dry-run")]
    Replicate(ReplicateArgs),
    /// QEMU templates with their replicas (node:vmid) and whether they are on shared storage.
    #[command(after_help = "Examples:\n  labctl template list\n  labctl template list -o json")]
    List,
}

/// `template replicate`.
#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// The template's VMID.
    #[arg(value_name = "TEMPLATE")]
    template: u32,
    /// `all` (every online node) or node names, comma-separated.
    #[arg(long, value_name = "all|N1,N2", default_value = "all")]
    nodes: String,
    /// Show which nodes would get a copy; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl TemplateCommand {
    /// Checks the arguments before connecting.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        if let TemplateCommand::Replicate(a) = self {
            VmId::new(a.template)
                .map_err(|e| crate::fail::usage(format!("TEMPLATE {}: {e}", a.template)))?;
            nodes_of(&a.nodes)?;
            format.not_csv("template replicate").map(drop)?;
        }
        Ok(())
    }
}

/// `None` for `all`, else the names (each a node name, none twice).
fn nodes_of(text: &str) -> anyhow::Result<Option<Vec<String>>> {
    if text == "all" {
        return Ok(None);
    }
    let mut out: Vec<String> = Vec::new();
    for n in text.split(',') {
        let ok = !n.is_empty()
            && n.len() <= 63
            && !n.starts_with('-')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(crate::fail::usage(format!(
                "--nodes {text:?}: {n:?} is not a node name (allowed: all, or names such as \
                 pve1,pve2)"
            )));
        }
        if out.iter().any(|x| x == n) {
            return Err(crate::fail::usage(format!(
                "--nodes {text:?}: {n} is listed twice"
            )));
        }
        out.push(n.to_owned());
    }
    Ok(Some(out))
}

/// The first Ctrl-C (or SIGTERM on Unix); pending forever when neither can be listened for.
async fn interrupted() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut t) => {
                t.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                std::future::pending::<()>().await;
            }
        }
        () = term => {}
    }
}

/// The template a guest is a replica of (its tag `labctl-replica.<TEMPLATE>`).
fn replica_of(tags: Option<&str>, vmid: VmId) -> Option<u32> {
    tags?
        .split([';', ',', ' '])
        .filter_map(|t| t.strip_prefix("labctl-replica."))
        .filter_map(|n| n.parse::<u32>().ok())
        .find(|n| *n != vmid.get())
}

/// A replica given as TEMPLATE is refused (exit 2) with the original to give instead:
/// copies of a copy would land on the original's node and on nodes that have one.
async fn refuse_replica(vms: &pve_vm::VmApi, t: VmId) -> anyhow::Result<()> {
    let list = vms.list_guests().await?;
    let Some(g) = list.iter().find(|g| g.vmid == t) else {
        // Not found: `replicate` says so (exit 4).
        return Ok(());
    };
    if let Some(original) = replica_of(g.tags.as_deref(), t) {
        return Err(crate::fail::usage(format!(
            "TEMPLATE {t}: a replica of template {original} (tagged {}, on {}), not an \
             original; replicate the original instead: `labctl template replicate {original}` \
             (it keeps {t} as the copy on {})",
            lab_core::replica_tag(VmId::new(original)?),
            g.node,
            g.node
        )));
    }
    Ok(())
}

/// What holds a locked copy, in words.
fn lock_holder(lock: &str) -> String {
    match lock {
        "clone" => "its clone task".to_owned(),
        "migrate" => "its migration (qm migrate)".to_owned(),
        other => format!("a task holding the lock {other:?}"),
    }
}

/// The copies of `t` an earlier run left half made (described `labctl replica of <t> for
/// <node>`, not yet templates) that a task still holds locked: `(guest, node, lock)`.
async fn locked_copies(
    vms: &pve_vm::VmApi,
    t: VmId,
) -> anyhow::Result<Vec<(pve_vm::Guest, String, String)>> {
    let mark = format!("labctl replica of {t} for ");
    let mut out = Vec::new();
    for g in vms.list_guests().await? {
        if g.template == Some(true) || g.kind != pve_vm::GuestKind::Qemu || g.vmid == t {
            continue;
        }
        let tag = lab_core::replica_tag(t);
        let tagged = g
            .tags
            .as_deref()
            .is_some_and(|tags| tags.split([';', ',', ' ']).any(|x| x == tag));
        if g.lock.is_none() && !tagged {
            continue;
        }
        let guest = vms.guest_on(g.node.clone(), g.kind, g.vmid);
        let Ok(config) = guest.config().await else {
            continue;
        };
        let Some(node) = config
            .get("description")
            .and_then(|d| d.trim().strip_prefix(&mark).map(str::to_owned))
        else {
            continue;
        };
        if let Some(lock) = config.lock() {
            out.push((guest, node, lock));
        }
    }
    Ok(out)
}

/// How long a re-run waits for an earlier run's copy to be unlocked (a full clone of a
/// big disk takes minutes); scaled by `LABCTL_TIME_SCALE`.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Waits (bounded, said on stderr) until no half-made copy of `t` is locked by the task
/// an interrupted run left running; still locked after [`LOCK_WAIT`]: exit 1 naming the
/// copy, its lock and what holds it (a passing state, not a usage error).
async fn wait_for_copies(vms: &pve_vm::VmApi, t: VmId) -> anyhow::Result<()> {
    let scale = crate::connect::time_scale()?.unwrap_or(1.0);
    let limit = LOCK_WAIT.mul_f64(scale);
    let poll = std::time::Duration::from_secs(5).mul_f64(scale);
    let start = std::time::Instant::now();
    let mut said = std::collections::BTreeSet::new();
    loop {
        let locked = locked_copies(vms, t).await?;
        let Some((guest, node, lock)) = locked.first() else {
            return Ok(());
        };
        if start.elapsed() >= limit {
            return Err(crate::fail::with_code(
                crate::fail::OTHER,
                format!(
                    "VM {} (the copy of {t} for {node}) is still locked ({lock}) after {} s: \
                     {} is still running (the task list of its node {} shows it); run the \
                     same command again when it ends",
                    guest.vmid(),
                    limit.as_secs(),
                    lock_holder(lock),
                    guest.node()
                ),
            ));
        }
        for (g, node, lock) in &locked {
            if said.insert(g.vmid()) {
                eprintln!(
                    "template replicate: VM {} (the copy of {t} for {node}, left by an \
                     interrupted run) is locked ({lock}): waiting for {} to end (at most {} \
                     s), then it is finished",
                    g.vmid(),
                    lock_holder(lock),
                    limit.as_secs()
                );
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// The replication refusing a copy still locked (a dry run does not wait) is a passing
/// state, not a usage error: exit 1 with what holds the lock.
fn locked_is_not_usage(e: lab_core::Error, t: VmId) -> anyhow::Error {
    if let lab_core::Error::InvalidInput {
        what: "replica",
        input,
        allowed,
    } = &e
    {
        if let Some(lock) = allowed
            .split_once("still locked (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(lock, _)| lock.to_owned())
        {
            return crate::fail::with_code(
                crate::fail::OTHER,
                format!(
                    "VM {input}, a copy of {t} an interrupted run left, is locked ({lock}): {} \
                     is still running; run the same command again when it ends (without \
                     --dry-run it waits for it)",
                    lock_holder(&lock)
                ),
            );
        }
    }
    e.into()
}

/// Runs a template subcommand.
pub async fn run(cmd: &TemplateCommand, hv: &ProxmoxLab, format: Format) -> anyhow::Result<()> {
    match cmd {
        TemplateCommand::Replicate(a) => {
            let t = VmId::new(a.template)?;
            let nodes = nodes_of(&a.nodes)?;
            refuse_replica(hv.vm_api(), t).await?;
            let work = async {
                if !a.dry_run {
                    wait_for_copies(hv.vm_api(), t).await?;
                }
                hv.replicate(t, nodes.as_deref(), a.dry_run)
                    .await
                    .map_err(|e| locked_is_not_usage(e, t))
            };
            let done = tokio::select! {
                r = work => r?,
                () = interrupted() => {
                    eprintln!(
                        "\ntemplate replicate: interrupted. A full copy Proxmox is cloning goes \
                         on without labctl: it is the VM described \"labctl replica of {t} for \
                         <node>\" (tagged {tag} once its clone returned), not yet a template on \
                         its node. Run the same command again to finish it (it is found and \
                         completed, not copied again), or remove it with `qm destroy VMID` on \
                         its node.",
                        tag = lab_core::replica_tag(t),
                    );
                    return Err(crate::fail::silent(130));
                }
            };
            // A dry run's half-made copy (an id already) is finished, not created.
            let state = |r: &lab_proxmox::Replica| match (r.created, a.dry_run) {
                (false, _) => "kept",
                (true, false) => "created",
                (true, true) if r.vmid != 0 => "would finish",
                (true, true) => "would create",
            };
            let mut sheet = Sheet::new(&["NODE", "VMID", "REPLICA"]);
            for r in &done {
                sheet.row(vec![
                    line_safe(&r.node),
                    if r.vmid == 0 {
                        "-".to_owned()
                    } else {
                        r.vmid.to_string()
                    },
                    state(r).to_owned(),
                ]);
            }
            let data = json!({
                "template": a.template,
                "dry_run": a.dry_run,
                "replicas": done.iter().map(|r| json!({
                    "node": r.node,
                    "vmid": (r.vmid != 0).then_some(r.vmid),
                    "state": state(r),
                })).collect::<Vec<_>>(),
            });
            if done.is_empty() && format.is_table() {
                println!("template {}: no other node to copy it to", a.template);
                return Ok(());
            }
            sheet.print(format, &data)?;
            if a.dry_run && format.is_table() {
                println!("dry run: nothing changed");
            }
        }
        TemplateCommand::List => {
            let sets = hv.replica_sets().await?;
            let mut sheet = Sheet::new(&["TEMPLATE", "NAME", "NODE", "SHARED", "REPLICAS"]);
            for s in &sets {
                let replicas: Vec<String> = s
                    .replicas
                    .iter()
                    .map(|r| format!("{}:{}", r.node, r.vmid))
                    .collect();
                sheet.row(vec![
                    s.template.to_string(),
                    line_safe(s.name.as_deref().unwrap_or("-")),
                    line_safe(&s.node),
                    if s.shared { "yes" } else { "no" }.to_owned(),
                    if replicas.is_empty() {
                        "-".to_owned()
                    } else {
                        line_safe(&replicas.join(","))
                    },
                ]);
            }
            let data: Vec<_> = sets
                .iter()
                .map(|s| {
                    json!({
                        "template": s.template,
                        "name": s.name,
                        "node": s.node,
                        "shared": s.shared,
                        "replicas": s.replicas.iter().map(|r| json!({"node": r.node, "vmid": r.vmid})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            sheet.print(format, &data)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_names_its_original_and_a_lock_its_task() {
        let t = VmId::new(101).unwrap();
        assert_eq!(replica_of(Some("exam;labctl-replica.9000"), t), Some(9000));
        assert_eq!(replica_of(Some("labctl-replica.101"), t), None);
        assert_eq!(replica_of(None, t), None);
        assert_eq!(lock_holder("clone"), "its clone task");
        assert!(lock_holder("migrate").contains("migration"));
        assert!(lock_holder("backup").contains("\"backup\""));
    }

    #[test]
    fn nodes_are_all_or_distinct_names() {
        assert_eq!(nodes_of("all").unwrap(), None);
        assert_eq!(
            nodes_of("pve2,pve3").unwrap(),
            Some(vec!["pve2".to_owned(), "pve3".to_owned()])
        );
        for bad in ["", "pve1,,pve2", "pve 1", "pve1,pve1", "-x"] {
            assert!(nodes_of(bad).is_err(), "{bad:?}");
        }
    }
}
