//! `labctl doctor [LAB.toml] [--boot-test]`: a checklist of what a real cluster needs before
//! an exam, each item ok / warn / FAIL with what to do. Reads only; `--boot-test` clones one
//! guest, boots it, waits for its agent and address, runs one agent command and destroys
//! it (also on an error or Ctrl-C), reporting each time taken.
//!
//! Exit 0 when nothing FAILs (warnings do not block), 1 when something does (the list says
//! what to do), 2 for usage errors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use pve_auth::{Params, PveClient};
use serde::Serialize;
use serde_json::Value;

use crate::labfile::{LabFile, Overrides};
use crate::operator::On;
use crate::output::{print_json, Format};

/// `labctl doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The lab file to check the template, ids, pool, firewall and memory for (without
    /// one only the connection, version, clock and privileges are checked).
    #[arg(value_name = "LAB.toml")]
    file: Option<PathBuf>,
    /// Also clone one guest from the template, start it, wait for its agent and address,
    /// run one agent command and destroy it, reporting each time taken (changes the
    /// cluster for a minute; the guest is removed also on an error or Ctrl-C).
    #[arg(long)]
    boot_test: bool,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Serialize)]
struct Item {
    check: &'static str,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// Seconds taken (boot test steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
}

#[derive(Debug, Default)]
struct Report {
    items: Vec<Item>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        self.items.push(Item {
            check,
            status,
            detail: detail.into(),
            fix: None,
            seconds: None,
        });
    }
    fn fix(
        &mut self,
        check: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.items.push(Item {
            check,
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
            seconds: None,
        });
    }
    fn blocked(&self) -> bool {
        self.items.iter().any(|i| i.status == Status::Fail)
    }
    fn print(&self, format: Format) -> anyhow::Result<()> {
        if format == Format::Json {
            return print_json(&serde_json::json!({
                "ok": !self.blocked(),
                "checks": self.items,
            }));
        }
        let width = self.items.iter().map(|i| i.check.len()).max().unwrap_or(0);
        let mut out = String::new();
        for i in &self.items {
            let took = i
                .seconds
                .map(|s| format!(" ({s:.1} s)"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<4}  {:<width$}  {}{took}\n",
                i.status.label(),
                i.check,
                crate::output::line_safe(&i.detail)
            ));
            if let Some(f) = &i.fix {
                out.push_str(&format!(
                    "{:<4}  {:<width$}  -> {}\n",
                    "",
                    "",
                    crate::output::line_safe(f)
                ));
            }
        }
        let fails = self
            .items
            .iter()
            .filter(|i| i.status == Status::Fail)
            .count();
        let warns = self
            .items
            .iter()
            .filter(|i| i.status == Status::Warn)
            .count();
        out.push_str(&if fails == 0 {
            format!("ready: nothing blocks ({warns} warning(s))\n")
        } else {
            format!("NOT READY: {fails} check(s) failed, {warns} warning(s); fix the FAIL lines first\n")
        });
        crate::output::write_stdout(&out)
    }
}

/// What the lab file says, for the checks that need it.
struct LabView {
    name: lab_core::LabName,
    template: u32,
    count: u32,
    first: u32,
    last: u32,
    teachers: bool,
    linked: bool,
    /// The lab's waits for the agent and the address (already scaled by
    /// `LABCTL_TIME_SCALE`).
    ready: Duration,
    address: Duration,
    /// The whole resolved spec (the memory check plans it as `lab plan` does).
    spec: lab_core::LabSpec,
}

fn lab_view(file: &std::path::Path) -> anyhow::Result<LabView> {
    let read = LabFile::read(file)?;
    let lab = crate::labfile::resolve(Some(&read), &Overrides::default())?;
    let spec = lab.spec.clone();
    Ok(LabView {
        name: spec.name.clone(),
        template: spec.template.get(),
        count: spec.count,
        first: spec.ids.first().get(),
        last: spec.ids.last().get(),
        teachers: !spec.teachers.is_empty(),
        linked: spec.clone_mode == lab_core::CloneMode::Linked,
        ready: spec.timeouts.ready,
        address: spec.timeouts.address,
        spec,
    })
}

/// `labctl doctor`.
pub async fn run(
    args: &DoctorArgs,
    connection: &crate::connect::Connection,
    format: Format,
) -> anyhow::Result<()> {
    format.not_csv("doctor")?;
    // Usage errors end before any check, exit 2 as for every command (README's table): a
    // lab file that is missing or does not parse, a FOSS-Cloud classroom (the wrong tool),
    // and a connection that cannot even be set up (no host, no credentials, an empty
    // secret, a config cluster's secret for another host, a fingerprint for http://).
    // Any other problem of the lab file is a FAIL line, so the checklist (and `-o json`)
    // is printed.
    if let Some(file) = args.file.as_deref() {
        if LabFile::read(file)?.0.is_fosscloud() {
            return Err(crate::fail::usage(format!(
                "{}: a FOSS-Cloud classroom; `labctl doctor` checks Proxmox VE labs",
                file.display()
            )));
        }
    }
    let client = match connection.client() {
        Err(e) if crate::fail::exit_code(&e) == crate::fail::USAGE => return Err(e),
        other => other,
    };
    let mut r = Report::default();
    let lab = match args.file.as_deref().map(lab_view).transpose() {
        Ok(lab) => lab,
        Err(e) => {
            r.fix(
                "lab file",
                Status::Fail,
                format!("{e:#}"),
                format!(
                    "correct {} (`labctl lab plan` on it names the same problem)",
                    args.file
                        .as_deref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default()
                ),
            );
            None
        }
    };
    let lab_failed = args.file.is_some() && lab.is_none();
    let client = match client {
        Ok(c) => Some(c),
        Err(e) => {
            r.fix(
                "reachable",
                Status::Fail,
                format!("{e:#}"),
                "set the cluster (PVE_HOST, --host or a config cluster) and its login",
            );
            None
        }
    };
    let ok = match &client {
        Some(client) => connect(client, connection, &mut r).await,
        None => false,
    };
    if let (true, Some(client)) = (ok, &client) {
        let node = first_node(client).await;
        clock(client, node.as_deref(), &mut r).await;
        let resources: Vec<Value> = client
            .get("/cluster/resources", &Params::new())
            .await
            .unwrap_or_default();
        privileges(client, lab.as_ref(), &resources, &mut r).await;
        match &lab {
            Some(lab) => {
                let tmpl = template(client, lab, &resources, &mut r).await;
                firewall(client, lab, &mut r).await;
                ids(lab, &resources, &mut r);
                pool_and_tag(lab, &resources, &mut r);
                memory(connection, lab, tmpl.as_ref(), &mut r).await;
                let vms = pve_vm::VmApi::with_timing(client.clone(), boot_timing());
                if args.boot_test {
                    boot_test(&vms, lab, tmpl.is_some(), &mut r).await;
                } else {
                    report_leftovers(&vms, lab, &mut r).await;
                }
            }
            None if lab_failed => {
                r.add(
                    "lab",
                    Status::Skipped,
                    "the lab file above did not load: template, firewall, ids, pool and \
                     memory not checked",
                );
            }
            None => {
                r.add(
                    "lab",
                    Status::Skipped,
                    "no lab file: template, firewall, ids, pool and memory not checked \
                     (`labctl doctor examples/exam.toml`)",
                );
                if args.boot_test {
                    r.fix(
                        "boot test",
                        Status::Skipped,
                        "needs a lab file (its template and ids)",
                        "labctl doctor LAB.toml --boot-test",
                    );
                }
            }
        }
    }
    r.print(format)?;
    if r.blocked() {
        return Err(crate::fail::silent(crate::fail::OTHER));
    }
    Ok(())
}

/// Reachable, TLS, login, version. `false` when nothing else can be checked.
async fn connect(
    client: &PveClient,
    connection: &crate::connect::Connection,
    r: &mut Report,
) -> bool {
    let url = client.base_url().clone();
    let shown = url.as_str().trim_end_matches("/api2/json").to_owned();
    match client.get::<Value>("/version", &Params::new()).await {
        Ok(v) => {
            r.add("reachable", Status::Ok, format!("{shown} answers"));
            if url.scheme() == "http" {
                r.fix(
                    "tls",
                    Status::Warn,
                    "plain http: nothing is encrypted (fine for a local simulator only)",
                    "use https://HOST:8006 with --fingerprint / PVE_FINGERPRINT",
                );
            } else if connection.insecure {
                r.fix(
                    "tls",
                    Status::Warn,
                    "--insecure: the certificate is not checked",
                    "pin it: --fingerprint / PVE_FINGERPRINT (Node > System > Certificates)",
                );
            } else {
                r.add("tls", Status::Ok, "the certificate is trusted");
            }
            r.add(
                "login",
                Status::Ok,
                format!("logged in as {}", client.auth_id()),
            );
            version(&v, r);
            true
        }
        Err(e) if e.is_tls() => {
            r.add(
                "reachable",
                Status::Ok,
                format!("{shown} accepts connections"),
            );
            r.fix(
                "tls",
                Status::Fail,
                format!("the certificate is not trusted: {e}"),
                "pin the node's certificate with --fingerprint / PVE_FINGERPRINT (SHA-256, \
                 shown under Node > System > Certificates, or `openssl x509 -in \
                 /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256` on the node) or \
                 trust the cluster CA with --ca-file /etc/pve/pve-root-ca.pem",
            );
            false
        }
        Err(e) if e.is_auth() || e.is_permission() => {
            r.add("reachable", Status::Ok, format!("{shown} answers"));
            r.fix(
                "login",
                Status::Fail,
                format!("refused: {e}"),
                "check PVE_TOKEN (USER@REALM!ID=SECRET) or --user / PVE_PASSWORD; \
                 `labctl setup operator` makes a token with the right privileges",
            );
            false
        }
        Err(e) => {
            r.fix(
                "reachable",
                Status::Fail,
                format!("{shown}: {e}"),
                "check the host and port (PVE listens on 8006), a firewall between you and \
                 the node, and that pveproxy runs (`systemctl status pveproxy`)",
            );
            false
        }
    }
}

fn version(v: &Value, r: &mut Report) {
    let text = v.get("version").and_then(Value::as_str).unwrap_or("?");
    let major: Option<u32> = text.split('.').next().and_then(|m| m.parse().ok());
    match major {
        Some(m) if m >= 9 => r.add("pve version", Status::Ok, format!("Proxmox VE {text}")),
        Some(8) => r.fix(
            "pve version",
            Status::Warn,
            format!("Proxmox VE {text}: labctl is checked against the 9.1 API"),
            "upgrade to PVE 9 when you can (8 works for the calls labctl makes)",
        ),
        _ => r.fix(
            "pve version",
            Status::Fail,
            format!("Proxmox VE {text}: older than 8"),
            "upgrade the cluster to Proxmox VE 8 or 9",
        ),
    }
}

async fn first_node(client: &PveClient) -> Option<String> {
    let nodes: Vec<Value> = client.get("/nodes", &Params::new()).await.ok()?;
    let mut names: Vec<String> = nodes
        .iter()
        .filter(|n| n.get("status").and_then(Value::as_str) != Some("offline"))
        .filter_map(|n| n.get("node").and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names.into_iter().next()
}

/// Seconds of clock difference above which tickets and TOTP codes go wrong.
const SKEW_WARN: u64 = 5;

async fn clock(client: &PveClient, node: Option<&str>, r: &mut Report) {
    let Some(node) = node else {
        r.add("clock", Status::Skipped, "no node is online to ask");
        return;
    };
    let path = pve_auth::api_path(&["nodes", node, "time"]);
    let before = SystemTime::now();
    let answer: Result<Value, _> = client.get(&path, &Params::new()).await;
    let after = SystemTime::now();
    let Some(server) = answer
        .ok()
        .and_then(|v| v.get("time").and_then(Value::as_u64))
    else {
        r.add(
            "clock",
            Status::Skipped,
            format!("{node} did not tell its time (needs Sys.Audit on /nodes/{node})"),
        );
        return;
    };
    let mid = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (lo, hi) = (mid(before), mid(after));
    let skew = if server < lo {
        lo - server
    } else {
        server.saturating_sub(hi)
    };
    if skew <= SKEW_WARN {
        r.add(
            "clock",
            Status::Ok,
            format!("{node} and this machine agree"),
        );
    } else {
        r.fix(
            "clock",
            Status::Warn,
            format!("{node}'s clock is {skew} s away from this machine's"),
            "run NTP on both (`timedatectl set-ntp true`): tickets, TOTP codes and the \
             evidence's times depend on it",
        );
    }
}

/// The concrete ACL path of a need's template for this lab.
fn concrete(path: &str, on: On, lab: Option<&LabView>, node: &str) -> String {
    let (template, student) = match lab {
        Some(l) => (l.template, l.first),
        None => (9000, 5000),
    };
    let pool = lab.map_or_else(|| "exam1".to_owned(), |l| l.name.pool());
    let vm = match on {
        On::Template => template,
        On::Student => student,
    };
    path.replace("{vmid}", &vm.to_string())
        .replace("{newid}", &student.to_string())
        .replace("{pool}", &pool)
        .replace("{poolid}", &pool)
        .replace("{node}", node)
        .replace("{realm}", "pve")
        .replace("{path}", &format!("/vms/{student}"))
        .replace("{storage}", "local-lvm")
        .replace("{bridge}", "vmbr0")
}

async fn privileges(
    client: &PveClient,
    lab: Option<&LabView>,
    resources: &[Value],
    r: &mut Report,
) {
    held_privileges(client, lab, resources, r).await;
    let who = client.auth_id();
    if who.contains('!') {
        for (name, sent) in crate::operator::token_refused() {
            r.fix(
                "privileges",
                Status::Warn,
                format!(
                    "`{name}` sends {} {}, which PVE refuses to API tokens",
                    sent.method, sent.path
                ),
                format!("run `{name}` with a password login (--user / PVE_PASSWORD)"),
            );
        }
    }
}

/// The login's own privileges, one `GET /access/permissions?path=` per distinct path
/// (`None` where it could not be read): what doctor and `lab reset` check needs against.
#[derive(Debug, Default)]
pub(crate) struct OwnPrivileges(BTreeMap<String, Option<BTreeSet<String>>>);

impl OwnPrivileges {
    /// What of `need` the login lacks on `path` (`VM.Clone on /vms/9000`), `None` when it
    /// holds it or its permissions there cannot be read.
    pub(crate) async fn lacking(
        &mut self,
        client: &PveClient,
        path: &str,
        need: &pve_schema::Need,
    ) -> Option<String> {
        if !self.0.contains_key(path) {
            let got: Result<BTreeMap<String, BTreeMap<String, Value>>, _> = client
                .get("/access/permissions", &Params::new().with("path", path))
                .await;
            let have = got.ok().map(|m| {
                m.get(path)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default()
            });
            self.0.insert(path.to_owned(), have);
        }
        let have = self.0.get(path)?.as_ref()?;
        if pve_schema::satisfied(need, have) {
            return None;
        }
        let what = if need.any {
            need.privs.join(" or ")
        } else {
            need.privs
                .iter()
                .filter(|p| !have.contains(*p))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        Some(format!("{what} on {path}"))
    }

    /// No path's permissions could be read (the login may not read its own).
    pub(crate) fn unreadable(&self) -> bool {
        self.0.values().all(Option::is_none)
    }
}

/// The login's privileges on the lab's paths against every command's needs.
async fn held_privileges(
    client: &PveClient,
    lab: Option<&LabView>,
    resources: &[Value],
    r: &mut Report,
) {
    let who = client.auth_id();
    if who == "root@pam" {
        r.fix(
            "privileges",
            Status::Ok,
            "root@pam may do everything",
            "for exams prefer the operator token of `labctl setup operator`: not least \
             privilege (it can grant itself any role), but it cannot shut nodes down, open \
             host consoles or edit realms by mistake",
        );
        return;
    }
    let needs = match crate::operator::all_needs() {
        Ok(n) => n,
        Err(e) => {
            r.add("privileges", Status::Warn, format!("not computed: {e:#}"));
            return;
        }
    };
    let node = lab
        .and_then(|l| {
            resources
                .iter()
                .find(|g| g.get("vmid").and_then(Value::as_u64) == Some(u64::from(l.template)))
                .and_then(|g| g.get("node").and_then(Value::as_str))
        })
        .unwrap_or("pve1")
        .to_owned();
    let mut held = OwnPrivileges::default();
    let mut missing: BTreeMap<(&str, bool), BTreeSet<String>> = BTreeMap::new();
    for (cmd, sent, need) in &needs {
        let path = concrete(&need.path, sent.on, lab, &node);
        if let Some(what) = held.lacking(client, &path, need).await {
            missing
                .entry((cmd.name, cmd.blocking))
                .or_default()
                .insert(what);
        }
    }
    if held.unreadable() {
        r.fix(
            "privileges",
            Status::Warn,
            format!("{who} may not read its own permissions"),
            "check the token or user in the web UI (Datacenter > Permissions)",
        );
        return;
    }
    if missing.is_empty() {
        r.add(
            "privileges",
            Status::Ok,
            format!("{who} holds every privilege labctl's commands need"),
        );
        return;
    }
    for ((name, blocking), what) in missing {
        let list: Vec<String> = what.into_iter().collect();
        r.fix(
            "privileges",
            if blocking { Status::Fail } else { Status::Warn },
            format!("{who} lacks for `{name}`: {}", list.join("; ")),
            "grant them (a role with exactly what labctl needs: `labctl setup operator \
             --dry-run` shows it), e.g. Datacenter > Permissions > Add on /",
        );
    }
}

/// The template was found and its config read (the memory check sizes the students by
/// what `lab plan` reads).
struct Template;

fn guest_entry(resources: &[Value], vmid: u32) -> Option<&Value> {
    resources.iter().find(|g| {
        g.get("vmid").and_then(Value::as_u64) == Some(u64::from(vmid))
            && matches!(g.get("type").and_then(Value::as_str), Some("qemu" | "lxc"))
    })
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s == "1",
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

/// Whether a disk's volume can be the base of a linked clone on its storage type.
fn linkable(plugintype: &str, volume: &str) -> bool {
    match plugintype {
        "lvmthin" | "zfspool" | "zfs" | "rbd" | "btrfs" => true,
        "dir" | "nfs" | "cifs" | "glusterfs" | "cephfs" => {
            volume.split(',').next().unwrap_or("").ends_with(".qcow2")
        }
        _ => false,
    }
}

const DISK_KEYS: [&str; 6] = ["scsi", "virtio", "sata", "ide", "efidisk", "rootfs"];

async fn template(
    client: &PveClient,
    lab: &LabView,
    resources: &[Value],
    r: &mut Report,
) -> Option<Template> {
    let id = lab.template;
    let Some(entry) = guest_entry(resources, id) else {
        r.fix(
            "template",
            Status::Fail,
            format!("guest {id} does not exist (or this login may not see it: VM.Audit)"),
            format!("set `template` in the lab file to your template's VMID, or grant VM.Audit on /vms/{id}"),
        );
        return None;
    };
    let node = entry.get("node").and_then(Value::as_str).unwrap_or("");
    let kind = entry.get("type").and_then(Value::as_str).unwrap_or("qemu");
    let path = pve_auth::api_path(&["nodes", node, kind, &id.to_string(), "config"]);
    let config: BTreeMap<String, Value> = match client.get(&path, &Params::new()).await {
        Ok(c) => c,
        Err(e) => {
            r.add(
                "template",
                Status::Fail,
                format!("reading {kind} {id}'s config: {e}"),
            );
            return None;
        }
    };
    if truthy(config.get("template")) {
        r.add(
            "template",
            Status::Ok,
            format!("{kind} {id} on {node} is a template"),
        );
    } else {
        r.fix(
            "template",
            Status::Fail,
            format!("{kind} {id} is not a template (linked clones need one)"),
            format!("shut it down and run `labctl vm template {id}` (or Convert to template in the web UI)"),
        );
    }
    if kind == "qemu" {
        let agent = config.get("agent").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let on = agent.as_deref().is_some_and(|a| {
            a.split(',').any(|part| {
                matches!(
                    part,
                    "1" | "enabled=1" | "enabled=yes" | "enabled=on" | "enabled=true"
                )
            })
        });
        if on {
            r.add("agent", Status::Ok, "the guest agent option is on");
        } else {
            r.fix(
                "agent",
                Status::Fail,
                format!("template {id} has no `agent: 1`: every `lab up` would wait for its timeout"),
                format!("`qm set {id} --agent enabled=1` on the node (and install qemu-guest-agent inside before converting)"),
            );
        }
    }
    let nics: Vec<(&String, &str)> = config
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
        .collect();
    match nics.iter().find_map(|(k, v)| {
        v.split(',')
            .find_map(|p| p.strip_prefix("bridge="))
            .map(|b| (k, b))
    }) {
        Some((k, b)) => r.add("nic", Status::Ok, format!("{k} is on bridge {b}")),
        None => r.fix(
            "nic",
            Status::Fail,
            format!("template {id} has no network card on a bridge: students get no address"),
            format!("add one: `qm set {id} --net0 virtio,bridge=vmbr0`"),
        ),
    }
    // Disks and their storage types.
    let storages: BTreeMap<&str, &str> = resources
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("storage"))
        .filter(|s| s.get("node").and_then(Value::as_str) == Some(node))
        .filter_map(|s| {
            Some((
                s.get("storage").and_then(Value::as_str)?,
                s.get("plugintype").and_then(Value::as_str)?,
            ))
        })
        .collect();
    let mut cloudinit = None;
    let mut unlinkable = Vec::new();
    let mut unknown = Vec::new();
    let mut disks = 0;
    for (k, v) in &config {
        let Some(v) = v.as_str() else { continue };
        let family = k.trim_end_matches(|c: char| c.is_ascii_digit());
        if !DISK_KEYS.contains(&family) || v.contains("media=cdrom") {
            continue;
        }
        let volume = v.split(',').next().unwrap_or("");
        let Some((storage, _)) = volume.split_once(':') else {
            continue;
        };
        if volume.contains("cloudinit") {
            cloudinit = Some(k.clone());
            continue;
        }
        disks += 1;
        match storages.get(storage) {
            Some(t) if linkable(t, volume) => {}
            Some(t) => unlinkable.push(format!("{k} on {storage} ({t})")),
            None => unknown.push(format!("{k} on {storage}")),
        }
    }
    if !lab.linked {
        r.add(
            "linked clones",
            Status::Ok,
            "the lab makes full clones (each copies the whole disk)",
        );
    } else if !unlinkable.is_empty() {
        r.fix(
            "linked clones",
            Status::Fail,
            format!(
                "the storage cannot make linked clones: {}",
                unlinkable.join(", ")
            ),
            "set `clone = \"full\"` in the lab file (each full clone copies the whole disk: \
             minutes for tens of GB), or move the template's disks to LVM-thin, ZFS or Ceph \
             (`qm disk move`)",
        );
    } else if !unknown.is_empty() {
        // Not knowing is not "ready": `lab up` fails on every student if the storage
        // cannot make linked clones.
        r.fix(
            "linked clones",
            Status::Fail,
            format!(
                "cannot tell whether the storage can make linked clones: its type is not \
                 shown to {} for {} (the cluster lists a storage only to holders of \
                 Datastore.Audit on it)",
                client.auth_id(),
                unknown.join(", ")
            ),
            "grant Datastore.Audit on /storage (the role of `labctl setup operator` holds \
             it), or set `clone = \"full\"` in the lab file",
        );
    } else if disks == 0 {
        r.add(
            "linked clones",
            Status::Warn,
            format!("template {id} has no disk"),
        );
    } else {
        r.add(
            "linked clones",
            Status::Ok,
            "the template's storage supports linked clones",
        );
    }
    match cloudinit {
        Some(k) => r.add(
            "cloud-init",
            Status::Ok,
            format!("cloud-init drive {k} present"),
        ),
        None => r.add(
            "cloud-init",
            Status::Ok,
            "no cloud-init drive (labctl needs none: the guests take DHCP)",
        ),
    }
    Some(Template)
}

/// The address this machine uses to reach the API (what the node's firewall sees).
async fn local_address(url: &url::Url) -> Option<IpAddr> {
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default()?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    let s = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .ok()?
        .ok()?;
    Some(s.local_addr().ok()?.ip())
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) => (n, l.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

async fn firewall(client: &PveClient, lab: &LabView, r: &mut Report) {
    let options: Value = match client
        .get("/cluster/firewall/options", &Params::new())
        .await
    {
        Ok(v) => v,
        Err(e) => {
            r.add(
                "firewall",
                Status::Warn,
                format!("datacenter options unreadable: {e}"),
            );
            return;
        }
    };
    let enabled = options
        .get("enable")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0)
        > 0;
    if !enabled && !lab.teachers {
        r.add(
            "firewall",
            Status::Ok,
            "datacenter firewall off; this lab has no fence (no teachers), so it stays off",
        );
        return;
    }
    let Some(me) = local_address(client.base_url()).await else {
        r.add(
            "firewall",
            Status::Warn,
            "could not tell which address this machine connects from",
        );
        return;
    };
    // What keeps host access (8006, SSH, consoles): the management set and local_network.
    let mut allowed: Vec<String> = Vec::new();
    let sets: Vec<Value> = client
        .get("/cluster/firewall/ipset", &Params::new())
        .await
        .unwrap_or_default();
    let has_set = sets
        .iter()
        .any(|s| s.get("name").and_then(Value::as_str) == Some("management"));
    if has_set {
        let entries: Vec<Value> = client
            .get("/cluster/firewall/ipset/management", &Params::new())
            .await
            .unwrap_or_default();
        allowed.extend(
            entries
                .iter()
                .filter(|e| !truthy(e.get("nomatch")))
                .filter_map(|e| e.get("cidr").and_then(Value::as_str).map(str::to_owned)),
        );
    }
    let aliases: Vec<Value> = client
        .get("/cluster/firewall/aliases", &Params::new())
        .await
        .unwrap_or_default();
    let local_network = aliases
        .iter()
        .find(|a| {
            a.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case("local_network"))
        })
        .and_then(|a| a.get("cidr").and_then(Value::as_str).map(str::to_owned));
    let covered = allowed
        .iter()
        .chain(local_network.iter())
        .any(|c| in_cidr(me, c));
    let state = if enabled {
        "on"
    } else {
        "off (lab up switches it on for the fence)"
    };
    // labctl has no command that edits `management` (`labctl firewall` only fences guests):
    // the GUI or pvesh on a node.
    let how = format!(
        "Datacenter > Firewall > IPSet > management > Add {me} (or on a node: {}`pvesh create \
         /cluster/firewall/ipset/management --cidr {me}`)",
        if has_set {
            ""
        } else {
            "`pvesh create /cluster/firewall/ipset --name management`, then "
        }
    );
    let fix = if enabled {
        format!(
            "the firewall is on now: add {me} to the datacenter IP set `management` at once, \
             from a session that still works: {how}"
        )
    } else {
        format!(
            "add {me} to the datacenter IP set `management` before `lab up` switches the \
             firewall on: {how}; keep an SSH session open while you try"
        )
    };
    if covered {
        r.add(
            "firewall",
            Status::Ok,
            format!("datacenter firewall {state}; {me} is in the management set or local_network"),
        );
    } else if local_network.is_some() || !allowed.is_empty() {
        r.fix(
            "firewall",
            if enabled { Status::Warn } else { Status::Fail },
            format!(
                "datacenter firewall {state}: {me} (this machine) is neither in `management` \
                 nor in local_network {}: {} would lose port 8006",
                local_network.as_deref().unwrap_or("(auto)"),
                if enabled {
                    "new connections"
                } else {
                    "enabling it, this machine"
                }
            ),
            fix,
        );
    } else {
        r.fix(
            "firewall",
            Status::Warn,
            format!(
                "datacenter firewall {state}: host access then comes only from local_network, \
                 which each node detects from its own route; labctl cannot read it, so whether \
                 {me} keeps port 8006 is unknown"
            ),
            fix,
        );
    }
}

fn resource_vms(resources: &[Value]) -> impl Iterator<Item = &Value> {
    resources
        .iter()
        .filter(|g| matches!(g.get("type").and_then(Value::as_str), Some("qemu" | "lxc")))
}

fn owned_by_lab(g: &Value, lab: &LabView) -> bool {
    let pool = lab.name.pool();
    let tag = lab.name.tag();
    g.get("pool").and_then(Value::as_str) == Some(pool.as_str())
        && g.get("tags")
            .and_then(Value::as_str)
            .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag))
}

fn ids(lab: &LabView, resources: &[Value], r: &mut Report) {
    let mut taken = 0u64;
    let mut ours = 0u64;
    for g in resource_vms(resources) {
        let Some(id) = g.get("vmid").and_then(Value::as_u64) else {
            continue;
        };
        if !(u64::from(lab.first)..=u64::from(lab.last)).contains(&id) {
            continue;
        }
        if owned_by_lab(g, lab) {
            ours += 1;
        } else {
            taken += 1;
        }
    }
    let size = u64::from(lab.last - lab.first) + 1;
    let usable = size - taken;
    let range = format!("{}-{}", lab.first, lab.last);
    if usable >= u64::from(lab.count) {
        r.add(
            "vmid range",
            Status::Ok,
            format!(
                "{usable} of {range} usable for {} students ({ours} already this lab's)",
                lab.count
            ),
        );
    } else {
        r.fix(
            "vmid range",
            Status::Fail,
            format!(
                "only {usable} ids of {range} are free for {} students ({taken} taken by other guests)",
                lab.count
            ),
            format!(
                "widen `ids` in the lab file (e.g. \"{}-{}\") or pick a free range \
                 (`labctl vm list` shows the ids in use)",
                lab.first,
                lab.last.saturating_add(u32::try_from(u64::from(lab.count) - usable).unwrap_or(0) + 100)
                    .min(999_999_999)
            ),
        );
    }
}

fn pool_and_tag(lab: &LabView, resources: &[Value], r: &mut Report) {
    let pool = lab.name.pool();
    let tag = lab.name.tag();
    let foreign_in_pool: Vec<u64> = resource_vms(resources)
        .filter(|g| g.get("pool").and_then(Value::as_str) == Some(pool.as_str()))
        .filter(|g| !owned_by_lab(g, lab))
        .filter_map(|g| g.get("vmid").and_then(Value::as_u64))
        .collect();
    let tagged_elsewhere: Vec<u64> = resource_vms(resources)
        .filter(|g| {
            g.get("tags")
                .and_then(Value::as_str)
                .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag))
        })
        .filter(|g| g.get("pool").and_then(Value::as_str) != Some(pool.as_str()))
        .filter_map(|g| g.get("vmid").and_then(Value::as_u64))
        .collect();
    if !foreign_in_pool.is_empty() {
        r.fix(
            "pool and tag",
            Status::Fail,
            format!("pool {pool} holds guests that are not this lab's: {foreign_in_pool:?}"),
            "give the lab another `name` (it names the pool and the tag)",
        );
    } else if !tagged_elsewhere.is_empty() {
        r.fix(
            "pool and tag",
            Status::Warn,
            format!("guests outside pool {pool} carry the tag {tag}: {tagged_elsewhere:?}"),
            "remove the tag from them or give the lab another `name`",
        );
    } else {
        r.add(
            "pool and tag",
            Status::Ok,
            format!("pool {pool} and tag {tag} are used by nothing else"),
        );
    }
}

/// The class planned exactly as `lab plan` plans it (the same per-node placement, the
/// file's `nodes` and `placement`; students already running are the lab's, already counted
/// in the nodes' used memory, and are not placed again): ready here ⇔ `lab plan` accepts.
async fn memory(
    connection: &crate::connect::Connection,
    lab: &LabView,
    tmpl: Option<&Template>,
    r: &mut Report,
) {
    if tmpl.is_none() {
        r.add(
            "memory",
            Status::Skipped,
            "no template to size the guests by",
        );
        return;
    }
    let hv = match connection.backend() {
        Ok(hv) => hv,
        Err(e) => {
            r.add("memory", Status::Fail, format!("{e:#}"));
            return;
        }
    };
    let spec = &lab.spec;
    let plan = match lab_core::plan_up(&hv, spec).await {
        Ok(p) => p,
        // Refused for a reason a line above already FAILs (too few ids, no template).
        Err(e) if r.blocked() => {
            r.add(
                "memory",
                Status::Skipped,
                format!("the class cannot be planned ({e}); fix the FAIL above first"),
            );
            return;
        }
        Err(e) => {
            r.fix(
                "memory",
                Status::Fail,
                format!("the class cannot be planned: {e}"),
                "`labctl lab plan LAB.toml` shows the same refusal; fix what it names",
            );
            return;
        }
    };
    let placed = match crate::lab::placement_of(&hv, spec, &plan).await {
        Ok(p) => p,
        Err(e) => {
            r.fix(
                "memory",
                Status::Fail,
                format!("{e:#}"),
                "correct `nodes`/`placement` in the lab file (`labctl lab plan` refuses it too)",
            );
            return;
        }
    };
    let Some(placed) = placed else {
        if plan.creates() > 0 {
            r.add(
                "memory",
                Status::Skipped,
                "the cluster did not tell where clones can go (no placement view)",
            );
            return;
        }
        r.add(
            "memory",
            Status::Ok,
            format!(
                "nothing to place: {} of {} students exist already",
                plan.students.len() - plan.creates(),
                plan.students.len()
            ),
        );
        return;
    };
    let used: Vec<String> = placed
        .nodes
        .iter()
        .filter(|n| !n.students.is_empty())
        .map(|n| {
            format!(
                "{} {} ({} of {} free)",
                n.node,
                n.students.len(),
                lab_core::mib(n.memory_needed),
                lab_core::mib(n.memory_free)
            )
        })
        .collect();
    let summary = format!(
        "{} new student(s) x {}, {}: {}",
        plan.creates(),
        lab_core::mib(placed.guest_memory),
        placed.policy,
        used.join(", ")
    );
    match placed.refusal() {
        None => r.add("memory", Status::Ok, summary),
        Some(e) => r.fix(
            "memory",
            Status::Fail,
            format!("{e}"),
            "give the template less memory, fewer students, more nodes (`labctl template \
             replicate`, `nodes` in the lab file), or `lab up --overcommit` if you accept it",
        ),
    }
}

/// The waits of the boot test's requests, scaled by `LABCTL_TIME_SCALE` as every command's.
fn boot_timing() -> pve_vm::Timing {
    match crate::connect::time_scale() {
        Ok(Some(f)) => pve_vm::Timing::default().scaled(f),
        _ => pve_vm::Timing::default(),
    }
}

/// The start of the boot test guest's description: a later run finds by it (and by the
/// guest's name `<lab>-doctor`) what a killed run or a second Ctrl-C left.
const BOOT_MARK: &str = "labctl doctor --boot-test of lab";

fn boot_description(lab: &LabView) -> String {
    format!("{BOOT_MARK} {} (removed when the test ends)", lab.name)
}

fn boot_name(lab: &LabView) -> String {
    format!("{}-doctor", lab.name)
}

/// Guests a boot test of this lab left behind (killed, or quit with a second Ctrl-C): in
/// the lab's ids, not the lab's own students, named `<lab>-doctor` and described by
/// [`boot_description`] (the config says; the listing may not show a fresh clone's name).
async fn boot_leftovers(vms: &pve_vm::VmApi, lab: &LabView) -> anyhow::Result<Vec<pve_vm::Guest>> {
    let pool = lab.name.pool();
    let tag = lab.name.tag();
    let mark = boot_description(lab);
    let mut out = Vec::new();
    for g in vms.list_guests().await? {
        let ours = g.pool.as_ref().is_some_and(|p| p.as_str() == pool)
            && g.tags
                .as_deref()
                .is_some_and(|t| t.split([';', ',', ' ']).any(|x| x == tag));
        if !(lab.first..=lab.last).contains(&g.vmid.get()) || ours || g.template == Some(true) {
            continue;
        }
        let guest = vms.guest_on(g.node.clone(), g.kind, g.vmid);
        let Ok(config) = guest.config().await else {
            continue;
        };
        if config.name().as_deref() == Some(boot_name(lab).as_str())
            && config.get("description").as_deref().map(str::trim) == Some(mark.as_str())
        {
            out.push(guest);
        }
    }
    Ok(out)
}

/// Without `--boot-test`: says which guests an earlier boot test left (doctor only reads).
async fn report_leftovers(vms: &pve_vm::VmApi, lab: &LabView, r: &mut Report) {
    let left = match boot_leftovers(vms, lab).await {
        Ok(l) => l,
        Err(e) => {
            r.add(
                "boot test",
                Status::Warn,
                format!("could not look for guests an earlier boot test left: {e}"),
            );
            return;
        }
    };
    if left.is_empty() {
        return;
    }
    let ids: Vec<String> = left.iter().map(|g| g.vmid().to_string()).collect();
    r.fix(
        "boot test",
        Status::Warn,
        format!(
            "guest(s) {} ({}) left by an interrupted `labctl doctor --boot-test`: running \
             outside the lab's pool and fence, taking ids of {}-{}",
            ids.join(", "),
            boot_name(lab),
            lab.first,
            lab.last
        ),
        format!(
            "`labctl doctor LAB.toml --boot-test` removes them first, or {}",
            ids.iter()
                .map(|id| format!("`labctl vm destroy {id} --stop --yes`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

fn destroy_options() -> pve_vm::DestroyOptions {
    pve_vm::DestroyOptions {
        purge: true,
        destroy_unreferenced_disks: true,
        stop_first: true,
        allow_template: false,
    }
}

/// `--boot-test`: one guest through its whole life, each step timed. What an earlier run
/// left is removed first. The clone is never cut off: a Ctrl-C during it lets it finish
/// (PVE's clone task would go on anyway, leaving a guest nobody removes), then the guest
/// is destroyed; a Ctrl-C later stops the step at once and destroys the guest.
async fn boot_test(vms: &pve_vm::VmApi, lab: &LabView, have_template: bool, r: &mut Report) {
    if !have_template {
        r.add("boot test", Status::Skipped, "no usable template");
        return;
    }
    let interrupt = lab_core::Interrupt::new();
    let _guard = crate::signals::on_interrupt(interrupt.clone(), "labctl doctor --boot-test");
    match boot_leftovers(vms, lab).await {
        Ok(left) => {
            for g in left {
                let start = Instant::now();
                match g.destroy(destroy_options()).await {
                    Ok(()) => timed(
                        r,
                        "boot: leftover",
                        format!("guest {} an interrupted boot test left: removed", g.vmid()),
                        start.elapsed().as_secs_f64(),
                    ),
                    Err(e) => r.fix(
                        "boot: leftover",
                        Status::Fail,
                        format!(
                            "guest {} an interrupted boot test left could not be removed: {e}",
                            g.vmid()
                        ),
                        format!("remove it: `labctl vm destroy {} --stop --yes`", g.vmid()),
                    ),
                }
            }
        }
        Err(e) => r.add(
            "boot: leftover",
            Status::Warn,
            format!("could not look for guests an earlier boot test left: {e}"),
        ),
    }
    let interrupted = || anyhow::anyhow!("interrupted (Ctrl-C)");
    let outcome = if interrupt.is_triggered() {
        Err(interrupted())
    } else {
        match boot_clone(vms, lab, r).await {
            Err(e) => Err(e),
            Ok(guest) => {
                let outcome = if interrupt.is_triggered() {
                    Err(interrupted())
                } else {
                    tokio::select! {
                        o = boot_steps(vms, lab, &guest, r) => o,
                        () = interrupt.triggered() => Err(interrupted()),
                    }
                };
                boot_destroy(&guest, r).await;
                outcome
            }
        }
    };
    if let Err(e) = outcome {
        r.fix(
            "boot test",
            Status::Fail,
            format!("{e:#}"),
            "the step above that failed is the slow or broken link; see its line",
        );
    }
}

async fn boot_destroy(guest: &pve_vm::Guest, r: &mut Report) {
    let start = Instant::now();
    let destroyed = guest.destroy(destroy_options()).await;
    let took = start.elapsed().as_secs_f64();
    match destroyed {
        Ok(()) => timed(
            r,
            "boot: destroy",
            format!("guest {} removed", guest.vmid()),
            took,
        ),
        Err(e) => r.fix(
            "boot: destroy",
            Status::Fail,
            format!("guest {} could not be removed: {e}", guest.vmid()),
            format!(
                "remove it: `labctl vm destroy {} --stop --yes`",
                guest.vmid()
            ),
        ),
    }
}

fn timed(r: &mut Report, check: &'static str, detail: String, secs: f64) {
    r.items.push(Item {
        check,
        status: Status::Ok,
        detail,
        fix: None,
        seconds: Some(secs),
    });
}

async fn boot_clone(
    vms: &pve_vm::VmApi,
    lab: &LabView,
    r: &mut Report,
) -> anyhow::Result<pve_vm::Guest> {
    let template = vms.guest(pve_vm::VmId::new(lab.template)?).await?;
    let first = pve_vm::VmId::new(lab.first)?;
    let last = pve_vm::VmId::new(lab.last)?;
    let start = Instant::now();
    let guest = template
        .clone_to(pve_vm::CloneOptions {
            newid: pve_vm::NewId::Within(first..=last),
            hostname: Some(boot_name(lab)),
            mode: if lab.linked {
                pve_vm::CloneMode::Linked
            } else {
                pve_vm::CloneMode::Full
            },
            description: Some(boot_description(lab)),
            ..pve_vm::CloneOptions::default()
        })
        .await?;
    timed(
        r,
        "boot: clone",
        format!("guest {} from {}", guest.vmid(), lab.template),
        start.elapsed().as_secs_f64(),
    );
    Ok(guest)
}

async fn boot_steps(
    vms: &pve_vm::VmApi,
    lab: &LabView,
    guest: &pve_vm::Guest,
    r: &mut Report,
) -> anyhow::Result<()> {
    let t = Instant::now();
    guest.start().await?;
    timed(
        r,
        "boot: start",
        "started".into(),
        t.elapsed().as_secs_f64(),
    );
    // A container has no QEMU guest agent: the node reads its addresses (as `lab up`
    // does), and no command is run inside.
    let container = guest.kind() == pve_vm::GuestKind::Lxc;
    let no_agent = "a container has no QEMU guest agent (labctl reads its addresses from the node)";
    if container {
        r.add("boot: agent", Status::Skipped, no_agent);
    } else {
        let t = Instant::now();
        guest
            .wait_agent(lab.ready)
            .await
            .map_err(|e| anyhow::anyhow!("the guest agent did not answer: {e}"))?;
        timed(
            r,
            "boot: agent",
            "the guest agent answers".into(),
            t.elapsed().as_secs_f64(),
        );
    }
    let t = Instant::now();
    let ip = pve_net::NetApi::new()
        .wait_for_ip(guest, lab.address)
        .await
        .map_err(|e| anyhow::anyhow!("no address: {e}"))?;
    timed(
        r,
        "boot: address",
        format!("{ip}"),
        t.elapsed().as_secs_f64(),
    );
    if container {
        r.add("boot: agent exec", Status::Skipped, no_agent);
        return Ok(());
    }
    let t = Instant::now();
    let agent = pve_agent::AgentApi::new(vms.clone());
    let out = agent
        .exec(guest, &pve_agent::Exec::new(["hostname"]))
        .await
        .map_err(|e| anyhow::anyhow!("agent exec: {e}"))?;
    if out.exitcode != Some(0) {
        anyhow::bail!(
            "`hostname` inside the guest ended with {:?} (signal {:?})",
            out.exitcode,
            out.signal
        );
    }
    timed(
        r,
        "boot: agent exec",
        format!("`hostname` ran inside: {}", out.stdout.trim()),
        t.elapsed().as_secs_f64(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(in_cidr(ip, "10.0.0.0/24"));
        assert!(in_cidr(ip, "10.0.0.7"));
        assert!(!in_cidr(ip, "10.0.1.0/24"));
        assert!(in_cidr(ip, "0.0.0.0/0"));
        assert!(!in_cidr(ip, "fe80::/10"));
        assert!(!in_cidr(ip, "not-an-ip"));
    }

    #[test]
    fn linked_clone_support_by_storage_type() {
        assert!(linkable("lvmthin", "local-lvm:base-9000-disk-0"));
        assert!(!linkable("lvm", "vg:base-9000-disk-0"));
        assert!(linkable("dir", "local:9000/base-9000-disk-0.qcow2,size=8G"));
        assert!(!linkable("dir", "local:9000/base-9000-disk-0.raw"));
    }
}
