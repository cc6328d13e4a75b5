//! What labctl's commands send, kept in ONE place ([`COMMANDS`]), the privileges that needs
//! — computed from the schema's `permissions` of each request (`pve_schema::Rule`), never
//! a hand-kept privilege list — and `labctl setup operator`, which creates a role with
//! exactly that set and a user or API token holding it.
//!
//! The table is checked two ways by tests: every request is in the schema extract, and
//! `lab up`/`lab down` against the simulator send nothing the table lacks.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use clap::{Args, Subcommand};
use pve_auth::{Params, PveClient};
use pve_schema::Need;
use serde::Serialize;
use serde_json::Value;

use crate::output::{print_json, Format};

/// Which guest a request's `{vmid}` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum On {
    /// A student's guest (or a guest of the lab).
    Student,
    /// The template students are cloned from.
    Template,
}

/// One request a command sends: method, path template, the parameters it carries (they
/// decide `or` branches such as the clone's `pool`, and which config keys are written).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub method: &'static str,
    pub path: &'static str,
    pub params: &'static [&'static str],
    pub on: On,
}

const fn s(method: &'static str, path: &'static str) -> Sent {
    Sent {
        method,
        path,
        params: &[],
        on: On::Student,
    }
}

const fn p(method: &'static str, path: &'static str, params: &'static [&'static str]) -> Sent {
    Sent {
        method,
        path,
        params,
        on: On::Student,
    }
}

const fn t(method: &'static str, path: &'static str) -> Sent {
    Sent {
        method,
        path,
        params: &[],
        on: On::Template,
    }
}

/// A command (or family) and whether an exam is blocked without it.
#[derive(Debug)]
pub(crate) struct Command {
    pub name: &'static str,
    /// `true`: without these privileges no lab can run (`lab up`, `lab down`).
    pub blocking: bool,
    pub sends: &'static [Sent],
}

const Q: &str = "/nodes/{node}/qemu/{vmid}";

/// Every request of the commands the operator role serves. Order does not matter.
pub(crate) const COMMANDS: &[Command] = &[
    Command {
        name: "lab up",
        blocking: true,
        sends: &[
            s("GET", "/version"),
            s("GET", "/nodes"),
            s("GET", "/cluster/resources"),
            s("GET", "/cluster/status"),
            s("GET", "/pools"),
            p("POST", "/pools", &["poolid", "comment"]),
            s("GET", "/pools/{poolid}"),
            t("GET", "/nodes/{node}/qemu/{vmid}/config"),
            Sent {
                method: "POST",
                path: "/nodes/{node}/qemu/{vmid}/clone",
                params: &["newid", "name", "pool", "full", "description"],
                on: On::Template,
            },
            s("GET", "/nodes/{node}/tasks"),
            s("GET", "/nodes/{node}/tasks/{upid}/status"),
            s("GET", "/nodes/{node}/tasks/{upid}/log"),
            s("GET", "/nodes/{node}/qemu/{vmid}/config"),
            p("PUT", "/nodes/{node}/qemu/{vmid}/config", &["tags", "net0"]),
            s("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
            s("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
            s("POST", "/nodes/{node}/qemu/{vmid}/agent/ping"),
            s(
                "GET",
                "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
            ),
            s("GET", "/cluster/firewall/options"),
            p("PUT", "/cluster/firewall/options", &["enable"]),
            s("GET", "/cluster/firewall/groups"),
            s("POST", "/cluster/firewall/groups"),
            s("GET", "/cluster/firewall/groups/{group}"),
            s("POST", "/cluster/firewall/groups/{group}"),
            s("PUT", "/cluster/firewall/groups/{group}/{pos}"),
            s("DELETE", "/cluster/firewall/groups/{group}/{pos}"),
            s("GET", "/cluster/firewall/ipset"),
            s("POST", "/cluster/firewall/ipset"),
            s("GET", "/cluster/firewall/ipset/{name}"),
            s("POST", "/cluster/firewall/ipset/{name}"),
            s("PUT", "/cluster/firewall/ipset/{name}/{cidr}"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/options"),
            s("PUT", "/nodes/{node}/qemu/{vmid}/firewall/options"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/rules"),
            s("POST", "/nodes/{node}/qemu/{vmid}/firewall/rules"),
            s("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/ipset"),
            s("POST", "/nodes/{node}/qemu/{vmid}/firewall/ipset"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
            s("POST", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
            // A lab with several machines per student: its networks (SDN), and the
            // lab's networks listed for `lab status`/`up`'s NETWORKS column.
            s("GET", "/cluster/sdn/zones"),
            s("GET", "/cluster/sdn/vnets"),
            s("GET", "/cluster/sdn/vnets/{vnet}/subnets"),
            s("POST", "/cluster/sdn/lock"),
            s("DELETE", "/cluster/sdn/lock"),
            p(
                "POST",
                "/cluster/sdn/zones",
                &["zone", "type", "dhcp", "ipam", "bridge", "lock-token"],
            ),
            p(
                "POST",
                "/cluster/sdn/vnets",
                &["vnet", "zone", "alias", "tag", "lock-token"],
            ),
            p(
                "POST",
                "/cluster/sdn/vnets/{vnet}/subnets",
                &["subnet", "type", "dhcp-range", "lock-token"],
            ),
            p("PUT", "/cluster/sdn", &["lock-token", "release-lock"]),
        ],
    },
    Command {
        name: "lab down",
        blocking: true,
        sends: &[
            s("GET", "/nodes"),
            s("GET", "/cluster/resources"),
            s("GET", "/nodes/{node}/tasks"),
            p("DELETE", "/pools", &["poolid"]),
            s("GET", "/pools"),
            s("GET", "/pools/{poolid}"),
            p("DELETE", "/pools/{poolid}", &["poolid"]),
            s("GET", "/nodes/{node}/tasks/{upid}/status"),
            s("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
            s("GET", "/nodes/{node}/qemu/{vmid}/config"),
            s("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
            p("DELETE", Q, &["purge", "destroy-unreferenced-disks"]),
            s("GET", "/access/acl"),
            s("GET", "/access/users"),
            p("PUT", "/access/users/{userid}", &["enable"]),
            p("PUT", "/access/acl", &["path", "roles", "users", "delete"]),
            s("GET", "/cluster/firewall/options"),
            p("PUT", "/cluster/firewall/options", &["enable"]),
            s("GET", "/cluster/firewall/groups"),
            s("GET", "/cluster/firewall/groups/{group}"),
            s("DELETE", "/cluster/firewall/groups/{group}"),
            s("DELETE", "/cluster/firewall/groups/{group}/{pos}"),
            s("GET", "/cluster/firewall/ipset"),
            s("GET", "/cluster/firewall/ipset/{name}"),
            s("DELETE", "/cluster/firewall/ipset/{name}"),
            s("DELETE", "/cluster/firewall/ipset/{name}/{cidr}"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/rules"),
            s("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}"),
            s("PUT", "/nodes/{node}/qemu/{vmid}/firewall/options"),
            // A lab with several machines per student: its networks (SDN).
            s("GET", "/cluster/sdn/zones"),
            s("GET", "/cluster/sdn/vnets"),
            s("GET", "/cluster/sdn/vnets/{vnet}/subnets"),
            s("POST", "/cluster/sdn/lock"),
            s("DELETE", "/cluster/sdn/lock"),
            s("DELETE", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"),
            s("DELETE", "/cluster/sdn/vnets/{vnet}"),
            s("DELETE", "/cluster/sdn/zones/{zone}"),
            p("PUT", "/cluster/sdn", &["lock-token", "release-lock"]),
        ],
    },
    Command {
        name: "lab access",
        blocking: false,
        sends: &[
            s("GET", "/access/users"),
            p("POST", "/access/users", &["userid", "comment", "expire"]),
            p("PUT", "/access/users/{userid}", &["enable", "expire"]),
            s("GET", "/access/roles"),
            s("GET", "/access/roles/{roleid}"),
            p("POST", "/access/roles", &["roleid", "privs"]),
            s("GET", "/access/acl"),
            p("PUT", "/access/acl", &["path", "roles", "users"]),
            // `--reset-password` deletes and re-creates the user: the only way that also
            // works with an API token (PVE refuses `PUT /access/password` to tokens, and
            // labctl never sends it).
            s("DELETE", "/access/users/{userid}"),
            p("PUT", "/access/roles/{roleid}", &["privs"]),
            p("POST", "/nodes/{node}/qemu/{vmid}/vncproxy", &["websocket"]),
            s("GET", "/nodes/{node}/tasks"),
            s("DELETE", "/nodes/{node}/tasks/{upid}"),
        ],
    },
    Command {
        name: "lab freeze / snapshot",
        blocking: false,
        sends: &[
            s("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
            p("POST", "/nodes/{node}/qemu/{vmid}/snapshot", &["snapname"]),
            s("GET", "/nodes/{node}/qemu/{vmid}/config"),
            p("PUT", "/nodes/{node}/qemu/{vmid}/config", &["net0"]),
            s("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"),
            s("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status"),
        ],
    },
    Command {
        name: "lab check / collect",
        blocking: false,
        sends: &[
            s("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"),
            s("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status"),
            s("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read"),
            s("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name"),
            s(
                "GET",
                "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
            ),
        ],
    },
    Command {
        name: "vm",
        blocking: false,
        sends: &[
            s("GET", "/cluster/nextid"),
            s("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
            s("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
            s("POST", "/nodes/{node}/qemu/{vmid}/template"),
            s("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write"),
            s("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
            s(
                "POST",
                "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
            ),
        ],
    },
    Command {
        name: "firewall",
        blocking: false,
        sends: &[
            s("GET", "/cluster/firewall/options"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/options"),
            s("GET", "/nodes/{node}/qemu/{vmid}/firewall/rules"),
            s("GET", "/cluster/firewall/aliases"),
        ],
    },
    Command {
        name: "template replicate",
        blocking: false,
        sends: &[
            s("GET", "/cluster/resources"),
            t("GET", "/nodes/{node}/qemu/{vmid}/config"),
            s("GET", "/cluster/nextid"),
            Sent {
                method: "POST",
                path: "/nodes/{node}/qemu/{vmid}/clone",
                params: &["newid", "full", "name", "description"],
                on: On::Template,
            },
            s("GET", "/nodes/{node}/tasks/{upid}/status"),
            s("GET", "/nodes/{node}/qemu/{vmid}/config"),
            p("PUT", "/nodes/{node}/qemu/{vmid}/config", &["tags"]),
            p("POST", "/nodes/{node}/qemu/{vmid}/migrate", &["target"]),
            s("POST", "/nodes/{node}/qemu/{vmid}/template"),
        ],
    },
    Command {
        name: "doctor",
        blocking: false,
        sends: &[
            s("GET", "/cluster/resources"),
            s("GET", "/nodes/{node}/time"),
            s("GET", "/access/permissions"),
            s("GET", "/cluster/firewall/aliases"),
            s("GET", "/cluster/firewall/ipset/{name}"),
        ],
    },
];

/// What a listing shows only to holders of a privilege: `(command, request, ACL path
/// template, privilege)`. The schema gives these requests `user: all`, so no `check` says
/// it; the server filters the answer. Doctor reads the storages' types from
/// `GET /cluster/resources`, which lists a storage only to holders of `Datastore.Audit` on
/// it (API2/Cluster.pm `resources`, and the simulator alike): without it doctor cannot tell
/// whether the template's storage makes linked clones.
const FILTERED: &[(&str, Sent, &str, &str)] = &[(
    "doctor",
    s("GET", "/cluster/resources"),
    "/storage/{storage}",
    "Datastore.Audit",
)];

/// The guest config keys whose privilege is narrower than the schema's `any` list
/// (reference `pve-api.md`, PUT config: "Permissions depend on the key").
fn config_key_privilege(key: &str) -> Option<&'static str> {
    if key.starts_with("net") {
        Some("VM.Config.Network")
    } else if matches!(
        key,
        "name" | "tags" | "description" | "onboot" | "protection" | "template"
    ) {
        Some("VM.Config.Options")
    } else {
        None
    }
}

/// Path parameters of a template (`{node}`, `{vmid}`, …).
fn path_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// What one request needs, from the schema.
pub(crate) fn needs_of(sent: &Sent) -> anyhow::Result<Vec<Need>> {
    let ep = pve_schema::schema()
        .endpoint(sent.method, sent.path)
        .with_context(|| {
            format!(
                "internal: {} {} is not in the schema extract (add it to endpoints.txt)",
                sent.method, sent.path
            )
        })?;
    let params: BTreeSet<String> = sent
        .params
        .iter()
        .copied()
        .chain(path_params(sent.path))
        .map(str::to_owned)
        .collect();
    let mut needs = ep
        .permission_rule()
        .with_context(|| format!("the permissions of {} {}", sent.method, sent.path))?
        .needs(&params);
    // A config write checks each key's own privilege, not "any of the list".
    if sent.path.ends_with("/config") && sent.method != "GET" {
        let keyed: BTreeSet<&str> = sent
            .params
            .iter()
            .filter_map(|k| config_key_privilege(k))
            .collect();
        if !keyed.is_empty() {
            for n in needs.iter_mut().filter(|n| n.any) {
                n.privs = keyed.iter().map(|p| (*p).to_owned()).collect();
                n.any = false;
            }
        }
    }
    needs.extend(ep.also_needed());
    Ok(needs)
}

/// The requests of each command that PVE refuses to API tokens (`allowtoken => 0` in the
/// schema), e.g. `lab access` setting passwords.
pub(crate) fn token_refused() -> Vec<(&'static str, &'static Sent)> {
    COMMANDS
        .iter()
        .flat_map(|c| c.sends.iter().map(move |s| (c.name, s)))
        .filter(|(_, s)| {
            pve_schema::schema()
                .endpoint(s.method, s.path)
                .is_some_and(|e| !e.allowtoken)
        })
        .collect()
}

/// Every need of every command, with the command and request that has it.
pub(crate) fn all_needs() -> anyhow::Result<Vec<(&'static Command, Sent, Need)>> {
    let mut out = Vec::new();
    for c in COMMANDS {
        for sent in c.sends {
            for n in needs_of(sent)? {
                out.push((c, *sent, n));
            }
        }
    }
    for (name, sent, path, privilege) in FILTERED {
        let c = COMMANDS
            .iter()
            .find(|c| c.name == *name)
            .with_context(|| format!("internal: no command {name} for a filtered listing"))?;
        out.push((
            c,
            *sent,
            Need {
                path: (*path).to_owned(),
                privs: vec![(*privilege).to_owned()],
                any: false,
            },
        ));
    }
    Ok(out)
}

/// The operator role's privileges: the smallest set meeting every command's needs.
pub(crate) fn operator_privileges() -> anyhow::Result<BTreeSet<String>> {
    let needs: Vec<Need> = all_needs()?.into_iter().map(|(_, _, n)| n).collect();
    Ok(pve_schema::privilege_set(&needs))
}

/// Why each privilege of the role is there: the first request (by command) needing it.
pub(crate) fn privilege_reasons() -> anyhow::Result<BTreeMap<String, String>> {
    let set = operator_privileges()?;
    let mut out = BTreeMap::new();
    let mut needs = all_needs()?;
    // A privilege some request needs outright is explained by that request, not by one
    // that would take any of several.
    needs.sort_by_key(|(_, _, n)| n.any && n.privs.len() > 1);
    for (c, sent, n) in needs {
        for p in &n.privs {
            if set.contains(p) && !out.contains_key(p) {
                out.insert(
                    p.clone(),
                    format!("{}: {} {} on {}", c.name, sent.method, sent.path, n.path),
                );
            }
        }
    }
    Ok(out)
}

/// `labctl setup …`.
#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Create an operator: a role with exactly the privileges labctl's commands need
    /// (computed from the API schema; `--privileges` lists them with the request that needs
    /// each), a user or API token holding it on `/`, and print the token secret once
    /// (stdout only).
    ///
    /// NOT least privilege, and as powerful as root in effect: `lab access` and `lab down`
    /// need Permissions.Modify, Realm.AllocateUser and User.Modify, and the fence needs
    /// Sys.Modify, all on `/` propagated; with Permissions.Modify on `/` the token can grant
    /// itself (or any user) the Administrator role. Keep its secret as you keep root's, and
    /// remove the token (`pveum user token remove labctl@pve labctl`) when the exam season
    /// is over.
    #[command(after_help = "\
Examples:
  labctl setup operator --privileges                  # what the role holds and why
  labctl setup operator --dry-run                     # the requests, nothing changes
  PVE_USER=root@pam labctl setup operator --yes       # user labctl@pve, token labctl
  export PVE_TOKEN='labctl@pve!labctl=<the printed secret>'")]
    Operator(OperatorArgs),
}

/// `labctl setup operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The user to create (or reuse), realm `pve`.
    #[arg(
        long = "operator-user",
        value_name = "USER@REALM",
        default_value = "labctl@pve"
    )]
    operator_user: String,
    /// The API token id to create for the user (its secret is printed once). `none`: no
    /// token (give the user a password in the web UI).
    #[arg(long, value_name = "NAME", default_value = "labctl")]
    token: String,
    /// The role's name.
    #[arg(long, value_name = "ROLE", default_value = "LabctlOperator")]
    role: String,
    /// Only print the privileges with the request that needs each; no cluster needed.
    #[arg(long, conflicts_with = "requests")]
    privileges: bool,
    /// Only print every request of every command the role serves (what the privileges
    /// are computed from); no cluster needed.
    #[arg(long)]
    requests: bool,
    /// Show the requests; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

#[derive(Debug, Serialize)]
struct PrivRow {
    privilege: String,
    needed_by: String,
}

/// The privileges with their reasons, as `--privileges` prints them.
fn print_privileges(format: Format) -> anyhow::Result<()> {
    let rows: Vec<PrivRow> = privilege_reasons()?
        .into_iter()
        .map(|(privilege, needed_by)| PrivRow {
            privilege,
            needed_by,
        })
        .collect();
    let mut sheet = crate::output::Sheet::new(&["PRIVILEGE", "NEEDED BY"]);
    for r in &rows {
        sheet.row(vec![r.privilege.clone(), r.needed_by.clone()]);
    }
    sheet.print(format, &rows)
}

/// A request `--dry-run` shows: method, path, parameters.
type Planned = (String, String, Vec<(String, String)>);

#[derive(Debug, Serialize)]
struct RequestRow {
    command: &'static str,
    method: &'static str,
    path: &'static str,
}

fn print_requests(format: Format) -> anyhow::Result<()> {
    let rows: Vec<RequestRow> = COMMANDS
        .iter()
        .flat_map(|c| {
            c.sends.iter().map(|s| RequestRow {
                command: c.name,
                method: s.method,
                path: s.path,
            })
        })
        .collect();
    let mut sheet = crate::output::Sheet::new(&["COMMAND", "METHOD", "PATH"]);
    for r in &rows {
        sheet.row(vec![r.command.into(), r.method.into(), r.path.into()]);
    }
    sheet.print(format, &rows)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `labctl setup operator`.
pub async fn run(
    cmd: &SetupCommand,
    connection: &crate::connect::Connection,
    format: Format,
) -> anyhow::Result<()> {
    let SetupCommand::Operator(a) = cmd;
    if a.privileges {
        return print_privileges(format);
    }
    if a.requests {
        return print_requests(format);
    }
    format.not_csv("setup operator")?;
    let Some((name, realm)) = a.operator_user.split_once('@') else {
        return Err(crate::fail::usage(format!(
            "--operator-user {:?}: give USER@REALM, e.g. labctl@pve",
            a.operator_user
        )));
    };
    if !valid_name(name) || realm != "pve" {
        return Err(crate::fail::usage(format!(
            "--operator-user {:?}: a name of letters, digits, '-' and '_' in realm pve (labctl \
             creates the user; users of other realms come from their directory), e.g. \
             labctl@pve",
            a.operator_user
        )));
    }
    let token = (a.token != "none").then_some(a.token.as_str());
    if let Some(t) = token {
        // PVE's token id pattern, checked as PVE_TOKEN is parsed (before any request: a
        // token id the server refuses would leave the role, user and ACL made).
        let pve_accepts =
            pve_auth::ApiToken::new(&a.operator_user, t, pve_auth::Secret::new("-")).is_ok();
        if !pve_accepts || !valid_name(t) {
            return Err(crate::fail::usage(format!(
                "--token {t:?}: a letter, then at least one more of letters, digits, '-' or \
                 '_' (2 to 64 in all, e.g. labctl), or `none` for no token"
            )));
        }
    }
    if !valid_name(&a.role) {
        return Err(crate::fail::usage(format!(
            "--role {:?}: a letter, then letters, digits, '-' or '_'",
            a.role
        )));
    }
    let privs = operator_privileges()?;
    let privs_text = privs.iter().cloned().collect::<Vec<_>>().join(",");
    let user = a.operator_user.as_str();
    let mut plan: Vec<Planned> = vec![
        (
            "POST".into(),
            "/access/roles".into(),
            vec![
                ("roleid".into(), a.role.clone()),
                ("privs".into(), privs_text.clone()),
            ],
        ),
        (
            "POST".into(),
            "/access/users".into(),
            vec![
                ("userid".into(), user.to_owned()),
                ("comment".into(), "labctl operator".into()),
            ],
        ),
        (
            "PUT".into(),
            "/access/acl".into(),
            vec![
                ("path".into(), "/".into()),
                ("roles".into(), a.role.clone()),
                ("users".into(), user.to_owned()),
                ("propagate".into(), "1".into()),
            ],
        ),
    ];
    if let Some(t) = token {
        plan.push((
            "POST".into(),
            format!("/access/users/{user}/token/{t}"),
            vec![
                ("privsep".into(), "0".into()),
                ("comment".into(), "labctl operator".into()),
            ],
        ));
    }
    if a.dry_run {
        let shown: Vec<Value> = plan
            .iter()
            .map(|(m, p, params)| {
                serde_json::json!({"method": m, "path": p, "params": params
                    .iter().map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect::<serde_json::Map<_, _>>()})
            })
            .collect();
        if format == Format::Json {
            return print_json(&serde_json::json!({"dry_run": true, "requests": shown}));
        }
        println!(
            "would send ({} privileges, the same role whatever the lab):",
            privs.len()
        );
        for (m, p, params) in &plan {
            let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("  {m} {p} {}", params.join(" "));
        }
        println!("nothing was changed (dry run)");
        return Ok(());
    }
    let q = format!(
        "Create role {} ({} privileges), user {user}{} with it on / ?",
        a.role,
        privs.len(),
        token
            .map(|t| format!(" and token {user}!{t}"))
            .unwrap_or_default()
    );
    crate::confirm::confirm(&q, a.yes)?;
    let client = connection.client()?;
    apply(&client, a, user, token, &privs_text, format).await
}

async fn apply(
    client: &PveClient,
    a: &OperatorArgs,
    user: &str,
    token: Option<&str>,
    privs: &str,
    format: Format,
) -> anyhow::Result<()> {
    // Role: created, or brought to exactly the set when it exists.
    let roles: Vec<Value> = client.get("/access/roles", &Params::new()).await?;
    let exists = roles
        .iter()
        .any(|r| r.get("roleid").and_then(Value::as_str) == Some(a.role.as_str()));
    let role_params = Params::new().with("privs", privs);
    if exists {
        let path = pve_auth::api_path(&["access", "roles", &a.role]);
        let _: Value = client.put(&path, &role_params).await?;
    } else {
        let _: Value = client
            .post(
                "/access/roles",
                &role_params.clone().with("roleid", a.role.as_str()),
            )
            .await
            .with_context(|| format!("creating role {}", a.role))?;
    }
    let users: Vec<Value> = client.get("/access/users", &Params::new()).await?;
    if !users
        .iter()
        .any(|u| u.get("userid").and_then(Value::as_str) == Some(user))
    {
        let _: Value = client
            .post(
                "/access/users",
                &Params::new()
                    .with("userid", user)
                    .with("comment", "labctl operator"),
            )
            .await
            .with_context(|| format!("creating user {user}"))?;
    }
    let _: Value = client
        .put(
            "/access/acl",
            &Params::new()
                .with("path", "/")
                .with("roles", a.role.as_str())
                .with("users", user)
                .with("propagate", true),
        )
        .await
        .context("granting the role on /")?;
    let mut out = serde_json::json!({
        "role": a.role, "user": user, "privileges": privs.split(',').collect::<Vec<_>>(),
    });
    if let Some(t) = token {
        let path = pve_auth::api_path(&["access", "users", user, "token", t]);
        let created: Value = client
            .post(
                &path,
                &Params::new()
                    .with("privsep", false)
                    .with("comment", "labctl operator"),
            )
            .await
            .with_context(|| {
                format!(
                    "creating token {user}!{t} (if it exists, delete it in the web UI or pick \
                     another --token: a token's secret is only shown when it is made)"
                )
            })?;
        let secret = created
            .get("value")
            .and_then(Value::as_str)
            .context("the server's answer has no token secret (`value`)")?;
        let full = created
            .get("full-tokenid")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{user}!{t}"), str::to_owned);
        out["token"] = Value::from(full.clone());
        out["secret"] = Value::from(secret);
        if format != Format::Json {
            println!(
                "role {} ({} privileges) on / for {user}; token {full} created.",
                a.role,
                privs.split(',').count()
            );
            println!("The secret is shown only now; keep it like a password:");
            println!("PVE_TOKEN={full}={secret}");
            return Ok(());
        }
    } else if format != Format::Json {
        println!(
            "role {} ({} privileges) on / for {user}; set its password in the web UI \
             (Datacenter > Permissions > Users)",
            a.role,
            privs.split(',').count()
        );
        return Ok(());
    }
    print_json(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_of_the_table_is_in_the_schema_and_its_rule_parses() {
        for c in COMMANDS {
            for sent in c.sends {
                needs_of(sent).unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
            }
        }
    }

    #[test]
    fn the_role_holds_what_an_exam_needs_and_nothing_of_root() {
        let set = operator_privileges().unwrap();
        for p in [
            "VM.Clone",
            "VM.Allocate",
            "VM.PowerMgmt",
            "VM.Audit",
            "VM.Config.Network",
            "VM.Config.Options",
            "Pool.Allocate",
            "Sys.Modify",
            "Datastore.AllocateSpace",
            "SDN.Use",
            "VM.Migrate",
        ] {
            assert!(set.contains(p), "{p} missing from {set:?}");
        }
        for p in ["Sys.PowerMgmt", "Realm.Allocate", "Sys.Console"] {
            assert!(!set.contains(p), "{p} in {set:?}");
        }
        // Every privilege has a reason.
        assert_eq!(privilege_reasons().unwrap().len(), set.len());
    }

    #[test]
    fn no_command_sends_what_pve_refuses_to_tokens() {
        // `lab access` sets passwords when it creates users and resets them by re-creating
        // (PVE refuses `PUT /access/password` to tokens, reference exam-features.md).
        let refused: Vec<(&str, &str)> = token_refused()
            .into_iter()
            .map(|(c, s)| (c, s.path))
            .collect();
        assert!(refused.is_empty(), "{refused:?}");
    }

    #[test]
    fn the_role_sees_the_storages_doctor_reads() {
        let set = operator_privileges().unwrap();
        assert!(set.contains("Datastore.Audit"), "{set:?}");
        assert!(privilege_reasons().unwrap()["Datastore.Audit"]
            .starts_with("doctor: GET /cluster/resources on /storage/{storage}"));
    }

    #[test]
    fn config_writes_need_the_keys_privileges_not_the_first_of_the_list() {
        let needs = needs_of(&p(
            "PUT",
            "/nodes/{node}/qemu/{vmid}/config",
            &["tags", "net0"],
        ))
        .unwrap();
        assert_eq!(needs.len(), 1);
        assert_eq!(needs[0].privs, ["VM.Config.Network", "VM.Config.Options"]);
        assert!(!needs[0].any);
    }
}
