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

/// Runs a template subcommand.
pub async fn run(cmd: &TemplateCommand, hv: &ProxmoxLab, format: Format) -> anyhow::Result<()> {
    match cmd {
        TemplateCommand::Replicate(a) => {
            let t = VmId::new(a.template)?;
            let nodes = nodes_of(&a.nodes)?;
            let done = tokio::select! {
                r = hv.replicate(t, nodes.as_deref(), a.dry_run) => r?,
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
            let state = |created: bool| match (created, a.dry_run) {
                (false, _) => "kept",
                (true, false) => "created",
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
                    state(r.created).to_owned(),
                ]);
            }
            let data = json!({
                "template": a.template,
                "dry_run": a.dry_run,
                "replicas": done.iter().map(|r| json!({
                    "node": r.node,
                    "vmid": (r.vmid != 0).then_some(r.vmid),
                    "state": state(r.created),
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
