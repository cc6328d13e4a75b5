//! Dispatch of schema-matched requests to the handlers, by endpoint template.
//!
//! The server has already matched the request against the `pve-schema` extract (501 for
//! anything else), authenticated it and validated its parameters; here the template
//! string selects the handler. [`SERVED`] lists every template this dispatcher handles,
//! and the conformance test checks it against the extract in both directions.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::access::{self, api as acc};
use crate::console::{self, Console};
use crate::error::{ApiError, ApiResult, Params};
use crate::guest::Kind;
use crate::guest::{agent, snapshot, vzdump};
use crate::sdn::api as sdn;
use crate::state::{Caller, Shared};
use crate::{clone, cluster, config, firewall_api, lifecycle, pools, tasks};

/// A request after routing, auth and parameter checks.
#[derive(Debug)]
pub(crate) struct Req<'a> {
    pub method: &'a Method,
    /// The endpoint template, e.g. `/nodes/{node}/qemu/{vmid}/clone`.
    pub template: &'a str,
    /// The concrete path relative to `/api2/json`, as sent (not decoded).
    pub path: &'a str,
    /// Decoded path parameters.
    pub pp: &'a BTreeMap<String, String>,
    /// Query and body parameters (without path parameters and `_dc`).
    pub params: &'a Params,
    pub caller: &'a Caller,
}

impl Req<'_> {
    pub(crate) fn node(&self) -> &str {
        self.pp.get("node").map_or("", String::as_str)
    }

    /// The `{vmid}` path parameter (validated by the schema as 100..999999999).
    pub(crate) fn vmid(&self) -> u32 {
        self.pp
            .get("vmid")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// A boolean parameter (the schema has already restricted it to 0/1).
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.param(key) == Some("1")
    }
}

/// What a handler answers: `data` and, for some lists, `total`.
#[derive(Debug)]
pub(crate) struct Reply {
    pub data: Value,
    pub total: Option<usize>,
}

impl From<Value> for Reply {
    fn from(data: Value) -> Self {
        Self { data, total: None }
    }
}

/// `501 Method 'GET /foo' not implemented`.
pub(crate) fn not_implemented(method: &Method, path: &str) -> ApiError {
    ApiError::status(
        StatusCode::NOT_IMPLEMENTED,
        format!("Method '{method} {path}' not implemented"),
    )
}

/// Every `(method, template)` the dispatcher serves, besides the firewall templates
/// (every `…/firewall/…` template of the extract, handed to the firewall model).
pub const SERVED: &[(&str, &str)] = &[
    ("POST", "/access/ticket"),
    ("GET", "/version"),
    ("GET", "/nodes"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/nextid"),
    ("GET", "/cluster/status"),
    ("GET", "/nodes/{node}/time"),
    ("GET", "/nodes/{node}/tasks"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("DELETE", "/nodes/{node}/tasks/{upid}"),
    ("GET", "/nodes/{node}/qemu"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("POST", "/nodes/{node}/qemu/{vmid}/migrate"),
    ("POST", "/nodes/{node}/qemu/{vmid}/template"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/info"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-users"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    ),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/lxc/{vmid}/snapshot"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
    (
        "POST",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    ),
    ("POST", "/nodes/{node}/vzdump"),
    ("GET", "/nodes/{node}/lxc"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/lxc/{vmid}/clone"),
    ("POST", "/nodes/{node}/lxc/{vmid}/template"),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"),
    ("GET", "/access/users"),
    ("POST", "/access/users"),
    ("GET", "/access/users/{userid}"),
    ("PUT", "/access/users/{userid}"),
    ("DELETE", "/access/users/{userid}"),
    ("GET", "/access/users/{userid}/token"),
    ("GET", "/access/users/{userid}/token/{tokenid}"),
    ("POST", "/access/users/{userid}/token/{tokenid}"),
    ("PUT", "/access/users/{userid}/token/{tokenid}"),
    ("DELETE", "/access/users/{userid}/token/{tokenid}"),
    ("GET", "/access/groups"),
    ("POST", "/access/groups"),
    ("GET", "/access/groups/{groupid}"),
    ("PUT", "/access/groups/{groupid}"),
    ("DELETE", "/access/groups/{groupid}"),
    ("GET", "/access/roles"),
    ("POST", "/access/roles"),
    ("GET", "/access/roles/{roleid}"),
    ("PUT", "/access/roles/{roleid}"),
    ("DELETE", "/access/roles/{roleid}"),
    ("GET", "/access/acl"),
    ("PUT", "/access/acl"),
    ("PUT", "/access/password"),
    ("GET", "/access/permissions"),
    ("POST", "/nodes/{node}/qemu/{vmid}/vncproxy"),
    ("POST", "/nodes/{node}/qemu/{vmid}/termproxy"),
    ("POST", "/nodes/{node}/lxc/{vmid}/vncproxy"),
    ("POST", "/nodes/{node}/lxc/{vmid}/termproxy"),
    ("GET", "/pools"),
    ("POST", "/pools"),
    ("PUT", "/pools"),
    ("DELETE", "/pools"),
    ("GET", "/pools/{poolid}"),
    ("PUT", "/pools/{poolid}"),
    ("DELETE", "/pools/{poolid}"),
    ("GET", "/cluster/sdn"),
    ("PUT", "/cluster/sdn"),
    ("POST", "/cluster/sdn/lock"),
    ("DELETE", "/cluster/sdn/lock"),
    ("GET", "/cluster/sdn/zones"),
    ("POST", "/cluster/sdn/zones"),
    ("GET", "/cluster/sdn/zones/{zone}"),
    ("PUT", "/cluster/sdn/zones/{zone}"),
    ("DELETE", "/cluster/sdn/zones/{zone}"),
    ("GET", "/cluster/sdn/vnets"),
    ("POST", "/cluster/sdn/vnets"),
    ("GET", "/cluster/sdn/vnets/{vnet}"),
    ("PUT", "/cluster/sdn/vnets/{vnet}"),
    ("DELETE", "/cluster/sdn/vnets/{vnet}"),
    ("GET", "/cluster/sdn/vnets/{vnet}/subnets"),
    ("POST", "/cluster/sdn/vnets/{vnet}/subnets"),
    ("GET", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"),
    ("PUT", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"),
    ("DELETE", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}"),
];

/// Parameters only `root@pam` (logged in with a ticket, not through a token) may set:
/// the guest handlers answer `raise_param_exc({ <p> => "Only root may use this option." })`
/// when one is set (true or non-empty) by anyone else (§4.2).
const ROOT_ONLY: &[&str] = &[
    "skiplock",
    "keepActive",
    "migratedfrom",
    "migration_type",
    "migration_network",
    "stateuri",
    "targetstorage",
    "force-cpu",
    "nets-host-mtu",
];

/// 400 `Only root may use this option.` for the first root-only parameter a caller
/// other than `root@pam` sets.
fn check_root_only(r: &Req<'_>) -> ApiResult<()> {
    let is_root = r.caller.user == "root@pam" && r.caller.tokenid.is_none();
    if is_root {
        return Ok(());
    }
    match ROOT_ONLY
        .iter()
        .find(|p| r.param(p).is_some_and(|v| !v.is_empty() && v != "0"))
    {
        Some(p) => Err(ApiError::param(*p, "Only root may use this option.")),
        None => Ok(()),
    }
}

/// Is `(method, template)` served by this simulator?
pub fn is_served(method: &str, template: &str) -> bool {
    SERVED.contains(&(method, template)) || firewall_api::is_firewall(template)
}

/// Run the handler of a routed request.
pub(crate) async fn dispatch(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Reply> {
    if r.pp.contains_key("node") && !sh.has_node(r.node()) {
        // pveproxy tries to resolve an unknown node name to forward the call.
        let n = r.node();
        return Err(ApiError::internal(format!(
            "hostname lookup '{n}' failed - failed to get address info for: {n}: Name or service not known"
        )));
    }
    if r.pp.contains_key("node") && !sh.lock().node_online(r.node()) {
        // pveproxy cannot forward to a node that is down (AnyEvent's connect error).
        return Err(ApiError::status(
            http::StatusCode::from_u16(595).unwrap_or(http::StatusCode::BAD_GATEWAY),
            "No route to host",
        ));
    }
    {
        let mut all = r.params.clone();
        all.extend(r.pp.iter().map(|(k, v)| (k.clone(), v.clone())));
        let st = sh.lock();
        access::authorize(&st, r.caller, r.method.as_str(), r.template, &all)?;
    }
    if firewall_api::is_firewall(r.template) {
        return firewall_api::handle(sh, r).map(Reply::from);
    }
    check_root_only(r)?;
    let kind = if r.template.contains("/lxc") {
        Kind::Lxc
    } else {
        Kind::Qemu
    };
    let data: Value = match (r.method.as_str(), r.template) {
        ("GET", "/version") => cluster::version(),
        ("GET", "/nodes") => cluster::nodes(sh),
        ("GET", "/cluster/resources") => cluster::resources(sh, r.param("type"), r.caller),
        ("GET", "/cluster/nextid") => cluster::nextid(sh, r.param("vmid"))?,
        ("GET", "/cluster/status") => cluster::status(sh),
        ("GET", "/nodes/{node}/time") => cluster::time(),
        ("GET", "/nodes/{node}/tasks") => {
            let (data, total) = tasks::list(sh, r.node(), r.params, r.caller);
            return Ok(Reply {
                data,
                total: Some(total),
            });
        }
        ("GET", "/nodes/{node}/tasks/{upid}/status") => {
            tasks::status(sh, r.node(), upid(r), r.caller)?
        }
        ("GET", "/nodes/{node}/tasks/{upid}/log") => {
            let (data, total) = tasks::log(sh, r.node(), upid(r), r.params, r.caller)?;
            return Ok(Reply {
                data,
                total: Some(total),
            });
        }
        ("DELETE", "/nodes/{node}/tasks/{upid}") => tasks::stop(sh, r.node(), upid(r), r.caller)?,
        ("GET", "/nodes/{node}/qemu" | "/nodes/{node}/lxc") => {
            lifecycle::list(sh, kind, r.node(), r.caller)
        }
        (
            "GET",
            "/nodes/{node}/qemu/{vmid}/status/current" | "/nodes/{node}/lxc/{vmid}/status/current",
        ) => lifecycle::status_current(sh, kind, r.node(), r.vmid())?,
        (
            "POST",
            "/nodes/{node}/qemu/{vmid}/status/start" | "/nodes/{node}/lxc/{vmid}/status/start",
        ) => lifecycle::start(sh, r, kind)?,
        (
            "POST",
            "/nodes/{node}/qemu/{vmid}/status/stop" | "/nodes/{node}/lxc/{vmid}/status/stop",
        ) => lifecycle::stop(sh, r, kind, false)?,
        (
            "POST",
            "/nodes/{node}/qemu/{vmid}/status/shutdown"
            | "/nodes/{node}/lxc/{vmid}/status/shutdown",
        ) => lifecycle::stop(sh, r, kind, true)?,
        (
            "POST",
            "/nodes/{node}/qemu/{vmid}/status/reboot" | "/nodes/{node}/lxc/{vmid}/status/reboot",
        ) => lifecycle::reboot(sh, r, kind)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/template" | "/nodes/{node}/lxc/{vmid}/template") => {
            lifecycle::template(sh, r, kind)?
        }
        ("DELETE", "/nodes/{node}/qemu/{vmid}" | "/nodes/{node}/lxc/{vmid}") => {
            lifecycle::destroy(sh, r, kind)?
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/clone") => clone::qemu(sh, r)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/migrate") => lifecycle::migrate(sh, r)?,
        ("POST", "/nodes/{node}/lxc/{vmid}/clone") => clone::lxc(sh, r)?,
        ("GET", "/nodes/{node}/qemu/{vmid}/config" | "/nodes/{node}/lxc/{vmid}/config") => {
            config::get(sh, kind, r.node(), r.vmid())?
        }
        ("PUT", "/nodes/{node}/qemu/{vmid}/config" | "/nodes/{node}/lxc/{vmid}/config") => {
            config::update(sh, r, kind, false)?
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/config") => config::update(sh, r, kind, true)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping") => agent::ping(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces") => {
            agent::interfaces(sh, r).await?
        }
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name") => agent::host_name(sh, r).await?,
        ("GET", "/nodes/{node}/lxc/{vmid}/interfaces") => agent::lxc_interfaces(sh, r)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec") => agent::exec(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status") => agent::exec_status(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read") => agent::file_read(sh, r).await?,
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write") => agent::file_write(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/info") => agent::info(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo") => agent::osinfo(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-users") => agent::users(sh, r).await?,
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot") => snapshot::list(sh, r)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/snapshot") => snapshot::create(sh, r)?,
        ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}") => snapshot::delete(sh, r)?,
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config") => snapshot::config(sh, r)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback") => {
            snapshot::rollback(sh, r)?
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot") => snapshot::list(sh, r)?,
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot") => snapshot::create(sh, r)?,
        ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}") => snapshot::delete(sh, r)?,
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config") => snapshot::config(sh, r)?,
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback") => {
            snapshot::rollback(sh, r)?
        }
        ("POST", "/nodes/{node}/vzdump") => vzdump::start(sh, r)?,
        ("GET", "/access/users") => acc::list_users(sh, r),
        ("POST", "/access/users") => acc::create_user(sh, r).await?,
        ("GET", "/access/users/{userid}") => acc::get_user(sh, r)?,
        ("PUT", "/access/users/{userid}") => acc::update_user(sh, r).await?,
        ("DELETE", "/access/users/{userid}") => acc::delete_user(sh, r).await?,
        ("GET", "/access/users/{userid}/token") => acc::list_tokens(sh, r)?,
        ("GET", "/access/users/{userid}/token/{tokenid}") => acc::get_token(sh, r)?,
        ("POST", "/access/users/{userid}/token/{tokenid}") => acc::create_token(sh, r).await?,
        ("PUT", "/access/users/{userid}/token/{tokenid}") => acc::update_token(sh, r).await?,
        ("DELETE", "/access/users/{userid}/token/{tokenid}") => acc::delete_token(sh, r).await?,
        ("GET", "/access/groups") => acc::list_groups(sh, r),
        ("POST", "/access/groups") => acc::create_group(sh, r).await?,
        ("GET", "/access/groups/{groupid}") => acc::get_group(sh, r)?,
        ("PUT", "/access/groups/{groupid}") => acc::update_group(sh, r).await?,
        ("DELETE", "/access/groups/{groupid}") => acc::delete_group(sh, r).await?,
        ("GET", "/access/roles") => acc::list_roles(sh),
        ("POST", "/access/roles") => acc::create_role(sh, r).await?,
        ("GET", "/access/roles/{roleid}") => acc::get_role(sh, r)?,
        ("PUT", "/access/roles/{roleid}") => acc::update_role(sh, r).await?,
        ("DELETE", "/access/roles/{roleid}") => acc::delete_role(sh, r).await?,
        ("GET", "/access/acl") => acc::list_acl(sh, r),
        ("PUT", "/access/acl") => acc::update_acl(sh, r).await?,
        ("PUT", "/access/password") => acc::change_password(sh, r).await?,
        ("GET", "/access/permissions") => acc::get_permissions(sh, r)?,
        ("POST", "/nodes/{node}/qemu/{vmid}/vncproxy" | "/nodes/{node}/lxc/{vmid}/vncproxy") => {
            console::open(sh, r, kind, Console::Vnc)?
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/termproxy" | "/nodes/{node}/lxc/{vmid}/termproxy") => {
            console::open(sh, r, kind, Console::Term)?
        }
        ("GET", "/pools") => pools::list(sh, r.param("poolid"), r.param("type"), r.caller)?,
        ("POST", "/pools") => pools::create(sh, r)?,
        ("PUT", "/pools" | "/pools/{poolid}") => pools::update(sh, r)?,
        ("DELETE", "/pools" | "/pools/{poolid}") => pools::delete(sh, r)?,
        ("GET", "/pools/{poolid}") => pools::get_legacy(sh, r)?,
        ("GET", "/cluster/sdn") => sdn::index(),
        ("PUT", "/cluster/sdn") => sdn::apply(sh, r)?,
        ("POST", "/cluster/sdn/lock") => sdn::lock(sh, r)?,
        ("DELETE", "/cluster/sdn/lock") => sdn::release_lock(sh, r)?,
        ("GET", "/cluster/sdn/zones") => sdn::list_zones(sh, r),
        ("POST", "/cluster/sdn/zones") => sdn::create_zone(sh, r)?,
        ("GET", "/cluster/sdn/zones/{zone}") => sdn::get_zone(sh, r)?,
        ("PUT", "/cluster/sdn/zones/{zone}") => sdn::update_zone(sh, r)?,
        ("DELETE", "/cluster/sdn/zones/{zone}") => sdn::delete_zone(sh, r)?,
        ("GET", "/cluster/sdn/vnets") => sdn::list_vnets(sh, r),
        ("POST", "/cluster/sdn/vnets") => sdn::create_vnet(sh, r)?,
        ("GET", "/cluster/sdn/vnets/{vnet}") => sdn::get_vnet(sh, r)?,
        ("PUT", "/cluster/sdn/vnets/{vnet}") => sdn::update_vnet(sh, r)?,
        ("DELETE", "/cluster/sdn/vnets/{vnet}") => sdn::delete_vnet(sh, r)?,
        ("GET", "/cluster/sdn/vnets/{vnet}/subnets") => sdn::list_subnets(sh, r)?,
        ("POST", "/cluster/sdn/vnets/{vnet}/subnets") => sdn::create_subnet(sh, r)?,
        ("GET", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}") => sdn::get_subnet(sh, r)?,
        ("PUT", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}") => sdn::update_subnet(sh, r)?,
        ("DELETE", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}") => sdn::delete_subnet(sh, r)?,
        _ => return Err(not_implemented(r.method, r.path)),
    };
    Ok(Reply::from(data))
}

fn upid<'a>(r: &'a Req<'_>) -> &'a str {
    r.pp.get("upid").map_or("", String::as_str)
}
