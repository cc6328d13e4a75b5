//! `labctl vm …`: one guest at a time, QEMU VMs and LXC containers alike (the seed's
//! functions one to one), over `pve-vm` and `pve-net`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use pve_net::NetApi;
use pve_vm::{
    CloneMode, CloneOptions, DestroyOptions, Guest, GuestKind, GuestSummary, NewId, NodeName, Poll,
    PoolId, ShutdownOptions, VmApi, VmId,
};
use serde::Serialize;

use crate::fail;
use crate::output::{line_safe, or_dash, print_json, Format, Sheet};

/// The vm subcommands.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// List guests (VMs and containers), optionally of one pool or with one tag.
    #[command(
        after_help = "Examples:\n  labctl vm list\n  labctl vm list --pool exam1 -o json\n  labctl vm list --tag labctl.exam1 -o csv"
    )]
    List {
        /// Only guests in this pool.
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// Only guests carrying this tag.
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
    },
    /// Print the lowest free guest id (from 100, or from --from).
    #[command(after_help = "Example:\n  labctl vm next-id --from 5000")]
    NextId {
        /// Search from this id on.
        #[arg(long, value_name = "VMID", default_value = "100")]
        from: String,
    },
    /// Show one guest: node, type, state, template flag, name, tags, pool, lock.
    #[command(after_help = "Example:\n  labctl vm status 100 -o json")]
    Status(VmIdArg),
    /// Clone a template (or any guest) to a new guest with a host name.
    #[command(
        after_help = "Examples:\n  labctl vm clone 9000 --name stud-01\n  labctl vm clone 9000 --name stud-02 --newid 5002 --full --pool exam1"
    )]
    Clone(CloneArgs),
    /// Start a guest and wait for the start task.
    #[command(after_help = "Example:\n  labctl vm start 5000")]
    Start(VmIdArg),
    /// Stop a guest hard (like pulling the plug) and wait for it: unsaved work in it is
    /// lost.
    ///
    /// Shows the guest and asks on a terminal; without a terminal it needs --yes.
    #[command(
        after_help = "Examples:\n  labctl vm stop 5000 --dry-run\n  labctl vm stop 5000 --yes"
    )]
    Stop {
        #[command(flatten)]
        vm: VmIdArg,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Ask a guest to shut down (ACPI / the container's init) and wait for it.
    ///
    /// Shows the guest and asks on a terminal; without a terminal it needs --yes.
    #[command(
        after_help = "Examples:\n  labctl vm shutdown 5000 --dry-run\n  labctl vm shutdown 5000 --timeout 120 --force --yes"
    )]
    Shutdown {
        #[command(flatten)]
        vm: VmIdArg,
        #[command(flatten)]
        confirm: Confirm,
        /// Seconds to wait for the guest to shut down.
        #[arg(long, value_name = "SECONDS",
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: Option<u64>,
        /// Stop it hard if it has not shut down within the timeout.
        #[arg(long)]
        force: bool,
    },
    /// Reboot a running guest: what runs in it is interrupted.
    ///
    /// Shows the guest and asks on a terminal; without a terminal it needs --yes.
    #[command(
        after_help = "Examples:\n  labctl vm reboot 5000 --dry-run\n  labctl vm reboot 5000 --yes"
    )]
    Reboot {
        #[command(flatten)]
        vm: VmIdArg,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Exit 0 only if the guest runs and its QEMU guest agent answers (containers: runs).
    #[command(
        after_help = "Examples:\n  labctl vm agent 5000\n  labctl vm agent 5000 --wait 120 && echo ready"
    )]
    Agent {
        #[command(flatten)]
        vm: VmIdArg,
        /// Wait up to this many seconds for the agent.
        #[arg(long, value_name = "SECONDS",
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        wait: Option<u64>,
    },
    /// Exit 0 if the guest is a template, 1 if it is not.
    #[command(after_help = "Example:\n  labctl vm is-template 9000 && echo template")]
    IsTemplate(VmIdArg),
    /// Convert a (stopped) guest into a template. This cannot be undone: a template
    /// cannot be started again, only cloned.
    ///
    /// Shows the guest and asks on a terminal; without a terminal it needs --yes.
    #[command(
        after_help = "Examples:\n  labctl vm template 5000 --dry-run\n  labctl vm template 5000 --yes"
    )]
    Template {
        #[command(flatten)]
        vm: VmIdArg,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Destroy a guest (and its disks). Refuses templates and running guests unless told.
    ///
    /// Shows what it will destroy and asks on a terminal; without a terminal it needs --yes.
    #[command(
        after_help = "Examples:\n  labctl vm destroy 5000 --dry-run\n  labctl vm destroy 5000 --yes\n  labctl vm destroy 5000 --stop --yes   # stop it first if it runs"
    )]
    Destroy {
        #[command(flatten)]
        vm: VmIdArg,
        /// Only show what would be destroyed.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Stop the guest first if it runs (otherwise a running guest is refused).
        #[arg(long)]
        stop: bool,
        /// Destroy it even if it is a template (its linked clones break).
        #[arg(long)]
        allow_template: bool,
    },
    /// The guest's addresses (IPv4 first, no loopback or link-local), else its host name.
    #[command(
        after_help = "Examples:\n  labctl vm ip 5000\n  labctl vm ip 5000 --wait 120 -o json"
    )]
    Ip {
        #[command(flatten)]
        vm: VmIdArg,
        /// Wait up to this many seconds for an IPv4 address.
        #[arg(long, value_name = "SECONDS",
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        wait: Option<u64>,
    },
    /// Run a command in a VM through its guest agent (argv after `--`, no shell); exits
    /// with the command's exit code.
    #[command(long_about = crate::guest::EXEC_ABOUT, after_help = crate::guest::EXEC_HELP)]
    Exec(crate::guest::ExecArgs),
    /// Read a file from a VM through its guest agent (to stdout or --out).
    #[command(
        after_help = "Examples:\n  labctl vm file-read 5000 /etc/hostname\n  labctl vm file-read 5000 /var/log/syslog --out syslog-5000.txt"
    )]
    FileRead(crate::guest::FileReadArgs),
    /// Write a local file into a VM through its guest agent (created or replaced).
    #[command(
        after_help = "Examples:\n  labctl vm file-write 5000 /root/task.txt --from task.txt\n  echo hello | labctl vm file-write 5000 /tmp/hello --from -"
    )]
    FileWrite(crate::guest::FileWriteArgs),
    /// Snapshots of a guest: create, list, rollback, delete.
    ///
    /// rollback and delete show what they will do, ask on a terminal, need --yes without
    /// one, and take --dry-run.
    #[command(
        after_help = "Examples:\n  labctl vm snapshot 5000 create baseline\n  labctl vm snapshot 5000 create deadline --vmstate\n  labctl vm snapshot 5000 list -o json\n  labctl vm snapshot 5000 rollback baseline --dry-run\n  labctl vm snapshot 5000 rollback baseline --yes\n  labctl vm snapshot 5000 delete baseline --yes"
    )]
    Snapshot(crate::guest::SnapshotArgs),
    /// Plug a guest's virtual network cable in or pull it (live; the MAC is kept).
    ///
    /// down shows what it will do, asks on a terminal, needs --yes without one, and takes
    /// --dry-run.
    #[command(
        after_help = "Examples:\n  labctl vm link 5000 down --yes\n  labctl vm link 5000 down --net net1 --dry-run\n  labctl vm link 5000 up"
    )]
    Link(crate::guest::LinkArgs),
}

/// `--dry-run` and `--yes` of the commands that destroy, interrupt or cannot be undone.
#[derive(Debug, Args)]
pub struct Confirm {
    /// Only show what would be done (never asks).
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// A guest id argument.
#[derive(Debug, Args)]
pub struct VmIdArg {
    /// The guest id (100-999999999).
    #[arg(value_name = "VMID")]
    vmid: String,
}

impl VmIdArg {
    fn id(&self) -> anyhow::Result<VmId> {
        Ok(self.vmid.parse::<VmId>()?)
    }
}

/// `vm clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The template (or guest) to clone.
    #[arg(value_name = "TEMPLATE")]
    template: String,
    /// Host name of the new guest (a DNS name).
    #[arg(long, value_name = "HOST")]
    name: String,
    /// Id of the new guest (default: the lowest free one).
    #[arg(long, value_name = "VMID")]
    newid: Option<String>,
    /// Full clone (independent disks) instead of a linked clone.
    #[arg(long)]
    full: bool,
    /// Node to create the clone on (all disks on shared storage).
    #[arg(long, value_name = "NODE")]
    target: Option<String>,
    /// Pool the new guest joins.
    #[arg(long, value_name = "POOL")]
    pool: Option<String>,
    /// Storage for the new disks (full clones only).
    #[arg(long, value_name = "STORAGE")]
    storage: Option<String>,
}

impl VmCommand {
    /// Checks the input that needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        match self {
            VmCommand::List { pool, .. } => {
                if let Some(p) = pool {
                    PoolId::new(p.clone())?;
                }
            }
            VmCommand::NextId { from } => {
                from.parse::<VmId>()?;
                format.not_csv("vm next-id")?;
            }
            VmCommand::Clone(c) => {
                format.not_csv("vm clone")?;
                c.options()?;
                c.template.parse::<VmId>()?;
            }
            VmCommand::Status(v)
            | VmCommand::Start(v)
            | VmCommand::Stop { vm: v, .. }
            | VmCommand::Reboot { vm: v, .. }
            | VmCommand::IsTemplate(v)
            | VmCommand::Template { vm: v, .. }
            | VmCommand::Shutdown { vm: v, .. }
            | VmCommand::Agent { vm: v, .. }
            | VmCommand::Ip { vm: v, .. }
            | VmCommand::Destroy { vm: v, .. } => {
                v.id()?;
                format.not_csv("vm")?;
            }
            VmCommand::Exec(a) => a.check(format)?,
            VmCommand::FileRead(a) => a.check(format)?,
            VmCommand::FileWrite(a) => a.check(format)?,
            VmCommand::Snapshot(a) => a.check(format)?,
            VmCommand::Link(a) => a.check(format)?,
        }
        Ok(())
    }
}

impl CloneArgs {
    fn options(&self) -> anyhow::Result<CloneOptions> {
        pve_vm::validate_hostname(&self.name)?;
        Ok(CloneOptions {
            newid: match &self.newid {
                Some(n) => NewId::Exact(n.parse()?),
                None => NewId::default(),
            },
            hostname: Some(self.name.clone()),
            mode: if self.full {
                CloneMode::Full
            } else {
                CloneMode::Auto
            },
            target: self.target.as_deref().map(NodeName::new).transpose()?,
            pool: self.pool.clone().map(PoolId::new).transpose()?,
            storage: self.storage.clone(),
            ..CloneOptions::default()
        })
    }
}

/// A guest as `vm status` and `vm list` print it (`-o json`).
#[derive(Debug, Serialize)]
struct VmView {
    vmid: u32,
    node: String,
    #[serde(rename = "type")]
    kind: &'static str,
    status: String,
    template: bool,
    name: Option<String>,
    tags: Vec<String>,
    pool: Option<String>,
    lock: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime: Option<u64>,
}

fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.unwrap_or_default()
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

impl VmView {
    fn of_summary(g: &GuestSummary) -> Self {
        Self {
            vmid: g.vmid.get(),
            node: g.node.to_string(),
            kind: g.kind.as_str(),
            status: g.status.clone().unwrap_or_else(|| "unknown".to_owned()),
            template: g.template.unwrap_or(false),
            name: g.name.clone(),
            tags: split_tags(g.tags.as_deref()),
            pool: g.pool.as_ref().map(|p| p.as_str().to_owned()),
            lock: g.lock.clone(),
            agent: None,
            uptime: None,
        }
    }
}

fn vm_sheet(views: &[VmView]) -> Sheet {
    let mut s = Sheet::new(&[
        "VMID", "NODE", "TYPE", "STATUS", "TEMPLATE", "NAME", "POOL", "LOCK", "TAGS",
    ]);
    for v in views {
        s.row(vec![
            v.vmid.to_string(),
            v.node.clone(),
            v.kind.to_owned(),
            v.status.clone(),
            if v.template { "yes" } else { "no" }.to_owned(),
            or_dash(v.name.as_ref()),
            or_dash(v.pool.as_ref()),
            or_dash(v.lock.as_ref()),
            if v.tags.is_empty() {
                "-".to_owned()
            } else {
                v.tags.join(";")
            },
        ]);
    }
    s
}

/// One guest, looked up in one listing (node, type, pool) plus its current status.
async fn status_view(vms: &VmApi, vmid: VmId) -> anyhow::Result<(Guest, VmView)> {
    let list = vms.list_guests().await?;
    let summary = list
        .iter()
        .find(|g| g.vmid == vmid)
        .ok_or(pve_vm::Error::GuestNotFound { vmid })?;
    let guest = vms.guest_on(summary.node.clone(), summary.kind, vmid);
    let st = guest.status().await?;
    let mut view = VmView::of_summary(summary);
    view.status = match &st.status {
        pve_vm::RunState::Running => "running".to_owned(),
        pve_vm::RunState::Stopped => "stopped".to_owned(),
        pve_vm::RunState::Other(s) => s.clone(),
    };
    view.template = st.template;
    view.name = st.name.or(view.name);
    view.lock = st.lock;
    if st.tags.is_some() {
        view.tags = split_tags(st.tags.as_deref());
    }
    view.agent = Some(st.agent);
    view.uptime = st.uptime;
    Ok((guest, view))
}

/// What `vm ip` prints.
#[derive(Debug, Serialize)]
struct IpView {
    vmid: u32,
    addresses: Vec<IpAddr>,
    hostname: Option<String>,
}

/// Usable addresses of all non-loopback interfaces: IPv4 first, then IPv6, without
/// loopback, link-local, unspecified, multicast or duplicates.
fn usable_addresses(ifaces: &[pve_net::Interface]) -> Vec<IpAddr> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in ifaces
        .iter()
        .filter(|i| !i.is_loopback())
        .flat_map(|i| &i.addresses)
    {
        match a.ip {
            IpAddr::V4(ip)
                if !(ip.is_loopback()
                    || ip.is_link_local()
                    || ip.is_unspecified()
                    || ip.is_broadcast()
                    || ip.is_multicast()) =>
            {
                v4.push(a.ip)
            }
            IpAddr::V6(ip)
                if !(ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || (ip.segments()[0] & 0xffc0) == 0xfe80) =>
            {
                v6.push(a.ip)
            }
            _ => {}
        }
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in v4.into_iter().chain(v6) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Runs a vm subcommand.
pub async fn run(cmd: &VmCommand, vms: &VmApi, format: Format) -> anyhow::Result<()> {
    match cmd {
        VmCommand::List { pool, tag } => {
            let pool = pool.clone().map(PoolId::new).transpose()?;
            let mut list = vms.list_guests().await?;
            list.sort_by_key(|g| g.vmid);
            let views: Vec<VmView> = list
                .iter()
                .filter(|g| pool.as_ref().is_none_or(|p| g.pool.as_ref() == Some(p)))
                .map(VmView::of_summary)
                .filter(|v| tag.as_ref().is_none_or(|t| v.tags.iter().any(|x| x == t)))
                .collect();
            vm_sheet(&views).print(format, &views)?;
        }
        VmCommand::NextId { from } => {
            let id = vms.next_free_id(from.parse()?).await?;
            match format {
                Format::Json => print_json(&serde_json::json!({ "vmid": id.get() }))?,
                _ => println!("{id}"),
            }
        }
        VmCommand::Status(v) => {
            let (_, view) = status_view(vms, v.id()?).await?;
            match format {
                Format::Json => print_json(&view)?,
                _ => print!("{}", vm_sheet(std::slice::from_ref(&view)).to_table()),
            }
        }
        VmCommand::Clone(c) => {
            let opts = c.options()?;
            let template = vms.guest(c.template.parse()?).await?;
            let new = template.clone_to(opts).await?;
            let out = serde_json::json!({
                "vmid": new.vmid().get(),
                "node": new.node().to_string(),
                "name": c.name,
            });
            match format {
                Format::Json => print_json(&out)?,
                _ => println!(
                    "cloned {} {} to {} {} on {}",
                    template.kind().noun(),
                    template.vmid(),
                    new.kind().noun(),
                    new.vmid(),
                    new.node()
                ),
            }
        }
        VmCommand::Start(v) => power(vms, v, format, Power::Start).await?,
        VmCommand::Stop { vm, confirm } => {
            if ask(vms, vm.id()?, confirm, ("stop", "stop"), "Stop", format).await? {
                power(vms, vm, format, Power::Stop).await?;
            }
        }
        VmCommand::Reboot { vm, confirm } => {
            if ask(
                vms,
                vm.id()?,
                confirm,
                ("reboot", "reboot"),
                "Reboot",
                format,
            )
            .await?
            {
                power(vms, vm, format, Power::Reboot).await?;
            }
        }
        VmCommand::Shutdown {
            vm,
            confirm,
            timeout,
            force,
        } => {
            let what = ("shutdown", "shut down");
            if !ask(vms, vm.id()?, confirm, what, "Shut down", format).await? {
                return Ok(());
            }
            let guest = vms.guest(vm.id()?).await?;
            guest
                .shutdown(ShutdownOptions {
                    timeout: timeout.map(Duration::from_secs),
                    force_stop: *force,
                })
                .await?;
            done(&guest, format, "shutdown")?;
        }
        VmCommand::Agent { vm, wait } => agent(vms, vm.id()?, *wait, format).await?,
        VmCommand::IsTemplate(v) => {
            let guest = vms.guest(v.id()?).await?;
            let template = guest.is_template().await?;
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "vmid": guest.vmid().get(), "template": template
                }))?,
                _ => println!(
                    "{} {} is {}a template",
                    guest.kind().noun(),
                    guest.vmid(),
                    if template { "" } else { "not " }
                ),
            }
            if !template {
                return Err(fail::silent(fail::OTHER));
            }
        }
        VmCommand::Template { vm, confirm } => {
            let what = ("template", "turn into a template (cannot be undone)");
            // PVE refuses to convert a running guest; say so before (and in) a dry run.
            let (guest, view) = status_view(vms, vm.id()?).await?;
            if view.status == "running" {
                return Err(fail::with_code(
                    fail::OTHER,
                    format!(
                        "refusing to turn {} {} into a template: it is running; stop it first \
                         (`labctl vm shutdown {}` or `labctl vm stop {}`). Nothing changed",
                        guest.kind().noun(),
                        guest.vmid(),
                        guest.vmid(),
                        guest.vmid()
                    ),
                ));
            }
            if !ask(vms, vm.id()?, confirm, what, "Make a template of", format).await? {
                return Ok(());
            }
            let guest = vms.guest(vm.id()?).await?;
            guest.make_template().await?;
            done(&guest, format, "template")?;
        }
        VmCommand::Destroy {
            vm,
            dry_run,
            yes,
            stop,
            allow_template,
        } => {
            destroy(
                vms,
                vm.id()?,
                *dry_run,
                *yes,
                *stop,
                *allow_template,
                format,
            )
            .await?
        }
        VmCommand::Ip { vm, wait } => ip(vms, vm.id()?, *wait, format).await?,
        VmCommand::Exec(a) => crate::guest::exec(vms, a, format).await?,
        VmCommand::FileRead(a) => crate::guest::file_read(vms, a, format).await?,
        VmCommand::FileWrite(a) => crate::guest::file_write(vms, a, format).await?,
        VmCommand::Snapshot(a) => crate::guest::snapshot(vms, a, format).await?,
        VmCommand::Link(a) => crate::guest::link(vms, a, format).await?,
    }
    Ok(())
}

/// The one confirmation rule for `vm stop|shutdown|reboot|template`: show the guest, then
/// `--dry-run` prints what would be done and returns `false`; otherwise the question is
/// asked on a terminal (or `--yes` is needed) and `true` means go ahead.
async fn ask(
    vms: &VmApi,
    vmid: VmId,
    confirm: &Confirm,
    (action, what): (&str, &str),
    question: &str,
    format: Format,
) -> anyhow::Result<bool> {
    if confirm.yes && !confirm.dry_run {
        return Ok(true);
    }
    let (guest, view) = status_view(vms, vmid).await?;
    let label = format!(
        "{} {} ({}) on {}, {}{}",
        guest.kind().noun(),
        vmid,
        line_safe(view.name.as_deref().unwrap_or("no name")),
        view.node,
        view.status,
        if view.template { ", a template" } else { "" }
    );
    if confirm.dry_run {
        match format {
            Format::Json => print_json(&serde_json::json!({
                "vmid": vmid.get(),
                "node": view.node,
                "type": view.kind,
                "action": action,
                "dry_run": true,
                "done": false,
            }))?,
            _ => println!("would {what}: {label}\ndry run: nothing changed"),
        }
        return Ok(false);
    }
    eprintln!("will {what}: {label}");
    crate::confirm::confirm(
        &format!("{question} {} {vmid}?", guest.kind().noun()),
        confirm.yes,
    )?;
    Ok(true)
}

/// The power actions that take nothing but the guest.
#[derive(Debug, Clone, Copy)]
enum Power {
    Start,
    Stop,
    Reboot,
}

async fn power(vms: &VmApi, v: &VmIdArg, format: Format, action: Power) -> anyhow::Result<()> {
    let guest = vms.guest(v.id()?).await?;
    let name = match action {
        Power::Start => {
            guest.start().await?;
            "start"
        }
        Power::Stop => {
            guest.stop().await?;
            "stop"
        }
        Power::Reboot => {
            guest.reboot().await?;
            "reboot"
        }
    };
    done(&guest, format, name)
}

fn done(guest: &Guest, format: Format, action: &str) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&serde_json::json!({
            "vmid": guest.vmid().get(),
            "node": guest.node().to_string(),
            "type": guest.kind().as_str(),
            "action": action,
            "dry_run": false,
            "done": true,
        })),
        _ => {
            println!(
                "{} {} on {}: {action} done",
                guest.kind().noun(),
                guest.vmid(),
                guest.node()
            );
            Ok(())
        }
    }
}

async fn agent(vms: &VmApi, vmid: VmId, wait: Option<u64>, format: Format) -> anyhow::Result<()> {
    let guest = vms.guest(vmid).await?;
    let label = format!("{} {}", guest.kind().noun(), vmid);
    let (running, agent, why): (bool, Option<bool>, Option<String>) = match guest.kind() {
        GuestKind::Lxc => {
            let running = match wait {
                Some(secs) => {
                    let what = format!("{label} to run");
                    let waited = guest
                        .api()
                        .timing()
                        .agent_poll
                        .wait(&what, Duration::from_secs(secs), || async {
                            Poll::tolerate(guest.status().await.map(|s| {
                                if s.is_running() {
                                    Poll::Ready(())
                                } else {
                                    Poll::Pending(Some(format!("{label} is not running")))
                                }
                            }))
                        })
                        .await;
                    match waited {
                        Ok(()) => true,
                        Err(pve_vm::Error::Timeout { .. }) => false,
                        Err(e) => return Err(e.into()),
                    }
                }
                None => guest.status().await?.is_running(),
            };
            let why = (!running).then(|| format!("{label} is not running"));
            (running, None, why)
        }
        GuestKind::Qemu => {
            let result = match wait {
                Some(secs) => guest
                    .wait_agent(Duration::from_secs(secs))
                    .await
                    .map(|()| true),
                None => guest.is_up().await,
            };
            match result {
                Ok(true) => (true, Some(true), None),
                Ok(false) => {
                    let running = guest.status().await?.is_running();
                    let why = if running {
                        format!("{label} runs but its QEMU guest agent does not answer (yet)")
                    } else {
                        format!("{label} is not running")
                    };
                    (running, Some(false), Some(why))
                }
                Err(e @ pve_vm::Error::Timeout { .. }) => {
                    let running = guest.status().await?.is_running();
                    (running, Some(false), Some(e.to_string()))
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    match format {
        Format::Json => print_json(&serde_json::json!({
            "vmid": vmid.get(),
            "type": guest.kind().as_str(),
            "running": running,
            "agent": agent,
            "ready": why.is_none(),
        }))?,
        _ if why.is_none() => match agent {
            Some(_) => println!("{label} runs and its guest agent answers"),
            None => println!("{label} runs (containers have no guest agent)"),
        },
        _ => {}
    }
    match why {
        None => Ok(()),
        Some(w) => Err(fail::with_code(fail::OTHER, w)),
    }
}

async fn destroy(
    vms: &VmApi,
    vmid: VmId,
    dry_run: bool,
    yes: bool,
    stop: bool,
    allow_template: bool,
    format: Format,
) -> anyhow::Result<()> {
    let (guest, view) = status_view(vms, vmid).await?;
    let label = format!(
        "{} {} ({}) on {}, {}{}",
        guest.kind().noun(),
        vmid,
        line_safe(view.name.as_deref().unwrap_or("no name")),
        view.node,
        view.status,
        if view.template { ", a template" } else { "" }
    );
    if view.template && !allow_template {
        return Err(fail::with_code(
            fail::OTHER,
            format!(
                "refusing to destroy {label}: its linked clones would break; pass \
                 --allow-template to destroy it anyway. Nothing changed"
            ),
        ));
    }
    let running = view.status == "running";
    if running && !stop {
        return Err(fail::with_code(
            fail::OTHER,
            format!(
                "refusing to destroy {label}: it is running; pass --stop to stop it first. \
                 Nothing changed"
            ),
        ));
    }
    let what = format!(
        "destroy {label}{} and its disks",
        if running { " (stopping it first)" } else { "" }
    );
    if dry_run {
        match format {
            Format::Json => print_json(&serde_json::json!({
                "dry_run": true, "destroyed": [view],
            }))?,
            _ => println!("would {what}\ndry run: nothing changed"),
        }
        return Ok(());
    }
    eprintln!("will {what}");
    crate::confirm::confirm(&format!("Destroy {} {vmid}?", guest.kind().noun()), yes)?;
    if running {
        // Stopping first and then failing on the DELETE would leave the guest stopped for
        // nothing: check the privilege the DELETE needs before anything changes.
        may_allocate(vms, vmid, &label).await?;
        guest.stop().await.with_context(|| {
            format!(
                "stopping {label} before destroying it (it may have stopped; nothing was \
                 destroyed)"
            )
        })?;
    }
    guest
        .destroy(DestroyOptions {
            purge: true,
            destroy_unreferenced_disks: true,
            stop_first: stop,
            allow_template,
        })
        .await
        .with_context(|| {
            if running {
                format!(
                    "{} {vmid} WAS STOPPED (it ran before), but destroying it failed; it stays \
                     stopped (`labctl vm start {vmid}` starts it again)",
                    guest.kind().noun()
                )
            } else {
                format!("destroying {} {vmid}", guest.kind().noun())
            }
        })?;
    match format {
        Format::Json => print_json(&serde_json::json!({
            "dry_run": false, "destroyed": [view],
        }))?,
        _ => println!("destroyed {label}"),
    }
    Ok(())
}

/// Refuses (exit 3, nothing changed) unless the caller holds `VM.Allocate` on the guest,
/// which PVE's DELETE needs; asked with `GET /access/permissions?path=/vms/<id>`.
async fn may_allocate(vms: &VmApi, vmid: VmId, label: &str) -> anyhow::Result<()> {
    let access = pve_access::AccessApi::new(vms.client().clone());
    let path = pve_access::AclPath::vm(vmid);
    let map = access
        .permissions(None, Some(&path))
        .await
        .with_context(|| format!("reading your privileges on {path} (nothing changed)"))?;
    let has = map
        .get(&path.to_string())
        .is_some_and(|p| p.contains(&pve_access::Privilege::VmAllocate));
    if has {
        return Ok(());
    }
    Err(fail::with_code(
        fail::AUTH,
        format!(
            "refusing to destroy {label}: you lack the privilege VM.Allocate on {path}, which \
             destroying needs; nothing was stopped or changed (ask an administrator for a role \
             with VM.Allocate, e.g. PVEVMAdmin, on the guest)"
        ),
    ))
}

async fn ip(vms: &VmApi, vmid: VmId, wait: Option<u64>, format: Format) -> anyhow::Result<()> {
    let guest = vms.guest(vmid).await?;
    let net = NetApi::new();
    if let Some(secs) = wait {
        net.wait_for_ip(&guest, Duration::from_secs(secs)).await?;
    }
    let addresses = match net.interfaces(&guest).await {
        Ok(ifaces) => usable_addresses(&ifaces),
        Err(e) if e.is_pending() || matches!(e, pve_net::Error::AgentCommand { .. }) => {
            tracing::debug!("no interfaces of {vmid}: {e}");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let hostname = match net.hostname(&guest).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::debug!("no host name from the guest {vmid}: {e}");
            guest.config().await.ok().and_then(|c| c.name())
        }
    };
    let view = IpView {
        vmid: vmid.get(),
        addresses,
        hostname,
    };
    match format {
        Format::Json => print_json(&view)?,
        _ => {
            if view.addresses.is_empty() {
                match &view.hostname {
                    Some(h) => println!("{h}"),
                    None => {
                        return Err(fail::with_code(
                            fail::OTHER,
                            format!(
                                "{} {vmid} reports no address and no host name",
                                guest.kind().noun()
                            ),
                        ))
                    }
                }
            }
            for a in &view.addresses {
                println!("{a}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pve_net::{Address, Interface};

    fn iface(name: &str, ips: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            mac: None,
            addresses: ips
                .iter()
                .map(|i| Address {
                    ip: i.parse().unwrap(),
                    prefix: None,
                })
                .collect(),
        }
    }

    #[test]
    fn addresses_put_ipv4_first_and_drop_loopback_and_link_local() {
        let ifaces = [
            iface("lo", &["127.0.0.1", "::1"]),
            iface(
                "ens18",
                &["fe80::1", "2001:db8::5", "169.254.1.1", "10.0.0.7"],
            ),
            iface("ens19", &["10.0.1.7", "10.0.0.7"]),
        ];
        let got: Vec<String> = usable_addresses(&ifaces)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.7", "10.0.1.7", "2001:db8::5"]);
        assert_eq!(split_tags(Some("a;b,c")), ["a", "b", "c"]);
    }
}
