//! The `/cluster/sdn` handlers (`PVE::API2::Network::SDN`, `…::Zones`, `…::Vnets`,
//! `…::Subnets`) with pve-network's checks and texts.
//!
//! Every edit runs inside `lock_sdn_config`: an error there is wrapped as pve-network
//! wraps it, `<what> failed: error during cfs-locked 'domain-sdn' operation: <die>` for
//! a plain `die`, `<what> failed: 400 Parameter verification failed.\n<key>: <msg>`
//! for a `raise_param_exc` (both a 500).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{check_id, digest, in_net, parse_cidr, parse_range, pending_config, Cfg, Obj, Section};
use crate::error::{ApiError, ApiResult};
use crate::routing::Req;
use crate::state::{Shared, SimState};
use crate::tasks::spawn_task;

/// Simulated seconds a node needs to reload its network (`ifreload -a`).
pub(crate) const RELOAD: f64 = 2.0;

/// An error inside `lock_sdn_config`.
enum Fail {
    Die(String),
    Param(&'static str, String),
}

fn wrap(what: &str, f: Fail) -> ApiError {
    match f {
        Fail::Die(m) => ApiError::internal(format!(
            "{what}: error during cfs-locked 'domain-sdn' operation: {m}"
        )),
        Fail::Param(k, m) => ApiError::internal(format!(
            "{what}: 400 Parameter verification failed.\n{k}: {m}"
        )),
    }
}

/// The lock token check of `lock_sdn_config`.
fn check_token(st: &SimState, token: Option<&str>) -> Result<(), Fail> {
    match &st.sdn.lock {
        Some(t) if token != Some(t.as_str()) => Err(Fail::Die(
            "invalid lock token provided! at /usr/share/perl5/PVE/Network/SDN.pm line 291.".into(),
        )),
        _ => Ok(()),
    }
}

/// Parameters that are not options of the object.
const NOT_OPTIONS: &[&str] = &[
    "zone",
    "vnet",
    "subnet",
    "type",
    "lock-token",
    "digest",
    "delete",
    "pending",
    "running",
];

const INT_KEYS: &[&str] = &["tag", "mtu", "dp-id", "vrf-vxlan"];
const BOOL_KEYS: &[&str] = &[
    "isolate-ports",
    "vlanaware",
    "snat",
    "advertise-subnets",
    "bridge-disable-mac-learning",
    "disable-arp-nd-suppression",
    "exitnodes-local-routing",
];

/// A parameter as the section config stores it.
fn typed(key: &str, v: &str) -> Value {
    if INT_KEYS.contains(&key) || BOOL_KEYS.contains(&key) {
        v.parse::<i64>()
            .map_or_else(|_| Value::from(v), Value::from)
    } else if key == "dhcp-range" {
        match serde_json::from_str::<Value>(v) {
            Ok(Value::Array(items)) => Value::Array(
                items
                    .into_iter()
                    .map(|i| match i {
                        Value::String(s) => Value::String(s),
                        other => Value::String(other.to_string()),
                    })
                    .collect(),
            ),
            _ => json!([v]),
        }
    } else {
        Value::from(v)
    }
}

/// The options a request sets.
fn options(r: &Req<'_>) -> Obj {
    r.params
        .iter()
        .filter(|(k, _)| !NOT_OPTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), typed(k, v)))
        .collect()
}

/// The keys of `delete` (a `pve-configid-list`).
fn deletes(r: &Req<'_>) -> Vec<String> {
    r.param("delete")
        .map(|d| {
            d.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `assert_if_modified`.
fn check_digest(r: &Req<'_>, section: &BTreeMap<String, Obj>) -> Result<(), Fail> {
    match r.param("digest") {
        Some(d) if !d.is_empty() && d != digest(section) => Err(Fail::Die(
            "detected modified configuration - file changed by other user? Try again.".into(),
        )),
        _ => Ok(()),
    }
}

/// The options each modelled zone type accepts (`options` of the zone plugins).
fn zone_options(typ: &str) -> Option<&'static [&'static str]> {
    match typ {
        "simple" => Some(&[
            "nodes",
            "mtu",
            "dns",
            "reversedns",
            "dnszone",
            "ipam",
            "dhcp",
        ]),
        "vlan" => Some(&[
            "nodes",
            "bridge",
            "bridge-disable-mac-learning",
            "mtu",
            "dns",
            "reversedns",
            "dnszone",
            "ipam",
        ]),
        _ => None,
    }
}

/// SectionConfig `check_config` of a zone: unknown options and required ones.
fn check_zone_config(typ: &str, o: &Obj, create: bool) -> Result<(), String> {
    if let Some(allowed) = zone_options(typ) {
        if let Some(k) = o
            .keys()
            .find(|k| k.as_str() != "type" && !allowed.contains(&k.as_str()))
        {
            return Err(format!("unexpected property '{k}'"));
        }
    }
    if create && typ == "vlan" && !o.contains_key("bridge") {
        return Err("missing value for required option 'bridge'".into());
    }
    Ok(())
}

fn check_zone_refs(o: &Obj) -> Result<(), Fail> {
    if let Some(ipam) = o.get("ipam").and_then(Value::as_str) {
        if ipam != "pve" {
            return Err(Fail::Param("ipam", format!("{ipam} not existing")));
        }
    }
    if o.contains_key("dnszone") && !o.contains_key("dns") {
        return Err(Fail::Param("dnszone", "missing dns server".into()));
    }
    Ok(())
}

/// Which copy a GET reads: `pending=1`, `running=1`, else the edited config.
fn view(st: &SimState, r: &Req<'_>, s: Section) -> BTreeMap<String, Obj> {
    let sdn = &st.sdn;
    if r.flag("pending") {
        pending_config(sdn.running.section(s), sdn.config.section(s))
    } else if r.flag("running") {
        sdn.running.section(s).clone()
    } else {
        sdn.config.section(s).clone()
    }
}

fn item(mut o: Obj, idkey: &str, id: &str, dig: &str) -> Value {
    o.insert(idkey.to_owned(), Value::from(id));
    o.insert("digest".into(), Value::from(dig));
    Value::Object(o)
}

fn subnet_item(mut o: Obj, id: &str, dig: &str) -> Value {
    let mut parts = id.splitn(3, '-');
    if let (Some(zone), Some(net), Some(mask)) = (parts.next(), parts.next(), parts.next()) {
        o.insert("cidr".into(), Value::from(format!("{net}/{mask}")));
        o.insert("zone".into(), Value::from(zone));
        o.insert("network".into(), Value::from(net));
        o.insert("mask".into(), Value::from(mask));
    }
    let ranges: Vec<Value> = o
        .get("dhcp-range")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(parse_range)
                .map(|(s, e)| json!({"start-address": s, "end-address": e}))
                .collect()
        })
        .unwrap_or_default();
    o.insert("dhcp-range".into(), Value::Array(ranges));
    item(o, "subnet", id, dig)
}

fn pp<'a>(r: &'a Req<'_>, k: &str) -> &'a str {
    r.pp.get(k).map_or("", String::as_str)
}

fn may(st: &SimState, r: &Req<'_>, path: &str) -> bool {
    crate::access::may(st, r.caller, path, &["SDN.Audit", "SDN.Allocate"])
}

/// `GET /cluster/sdn`.
pub(crate) fn index() -> Value {
    json!([
        {"id": "vnets"}, {"id": "zones"}, {"id": "controllers"},
        {"id": "ipams"}, {"id": "dns"}, {"id": "fabrics"}
    ])
}

// ---- zones ----

pub(crate) fn list_zones(sh: &Shared, r: &Req<'_>) -> Value {
    let st = sh.lock();
    let cfg = view(&st, r, Section::Zones);
    let dig = digest(&st.sdn.config.zones);
    let want = r.param("type");
    cfg.into_iter()
        .filter(|(id, _)| may(&st, r, &format!("/sdn/zones/{id}")))
        .filter(|(_, o)| want.is_none() || o.get("type").and_then(Value::as_str) == want)
        .map(|(id, o)| item(o, "zone", &id, &dig))
        .collect()
}

pub(crate) fn get_zone(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let id = pp(r, "zone");
    let cfg = view(&st, r, Section::Zones);
    let o = cfg
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("sdn '{id}' does not exist")))?;
    Ok(item(o, "zone", id, &digest(&st.sdn.config.zones)))
}

pub(crate) fn create_zone(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = r.param("zone").unwrap_or_default();
    check_id(id).map_err(|m| ApiError::param("zone", m))?;
    let typ = r.param("type").unwrap_or_default();
    let mut o = options(r);
    o.insert("type".into(), Value::from(typ));
    check_zone_config(typ, &o, true).map_err(ApiError::internal)?;
    let what = "create sdn zone object failed";
    let mut st = sh.lock();
    (|| {
        check_token(&st, r.param("lock-token"))?;
        if st.sdn.config.zones.contains_key(id) {
            return Err(Fail::Die(format!(
                "sdn zone object ID '{id}' already defined"
            )));
        }
        check_zone_refs(&o)?;
        st.sdn.config.zones.insert(id.to_owned(), o);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

pub(crate) fn update_zone(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "zone");
    let what = "update sdn zone object failed";
    let mut st = sh.lock();
    (|| {
        check_token(&st, r.param("lock-token"))?;
        check_digest(r, &st.sdn.config.zones)?;
        let mut o = st
            .sdn
            .config
            .zones
            .get(id)
            .cloned()
            .ok_or_else(|| Fail::Die(format!("sdn '{id}' does not exist")))?;
        for k in deletes(r) {
            o.remove(&k);
        }
        o.extend(options(r));
        let typ = o
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        check_zone_config(&typ, &o, true).map_err(Fail::Die)?;
        check_zone_refs(&o)?;
        st.sdn.config.zones.insert(id.to_owned(), o);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

pub(crate) fn delete_zone(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "zone");
    let what = "delete sdn zone object failed";
    let mut st = sh.lock();
    (|| {
        check_token(&st, r.param("lock-token"))?;
        if !st.sdn.config.zones.contains_key(id) {
            return Err(Fail::Die(format!("sdn '{id}' does not exist")));
        }
        if let Some((v, _)) = st
            .sdn
            .config
            .vnets
            .iter()
            .find(|(_, o)| o.get("zone").and_then(Value::as_str) == Some(id))
        {
            return Err(Fail::Die(format!(
                "zone {id} is used by vnet {v} at /usr/share/perl5/PVE/Network/SDN/Zones/Plugin.pm line 148."
            )));
        }
        st.sdn.config.zones.remove(id);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

// ---- vnets ----

pub(crate) fn list_vnets(sh: &Shared, r: &Req<'_>) -> Value {
    let st = sh.lock();
    let cfg = view(&st, r, Section::Vnets);
    let dig = digest(&st.sdn.config.vnets);
    cfg.into_iter()
        .filter(|(id, o)| {
            let zone = o
                .get("zone")
                .or_else(|| o.get("pending").and_then(|p| p.get("zone")))
                .and_then(Value::as_str)
                .unwrap_or("");
            may(&st, r, &format!("/sdn/zones/{zone}/{id}"))
        })
        .map(|(id, o)| item(o, "vnet", &id, &dig))
        .collect()
}

/// `$check_vnet_access`: the vnet must exist in the config (a plain 500 otherwise).
fn vnet_exists(st: &SimState, id: &str) -> ApiResult<()> {
    if st.sdn.config.vnets.contains_key(id) {
        Ok(())
    } else {
        Err(ApiError::internal(format!(
            "sdn vnet '{id}' does not exist"
        )))
    }
}

pub(crate) fn get_vnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let id = pp(r, "vnet");
    let cfg = view(&st, r, Section::Vnets);
    let o = cfg
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("sdn vnet '{id}' does not exist")))?;
    Ok(item(o, "vnet", id, &digest(&st.sdn.config.vnets)))
}

/// The zone plugin's `vnet_update_hook` and the vnet plugin's `on_update_hook`.
fn vnet_hooks(cfg: &Cfg, id: &str, o: &Obj) -> Result<(), Fail> {
    let zone_id = o.get("zone").and_then(Value::as_str).unwrap_or("");
    let typ = cfg
        .zones
        .get(zone_id)
        .and_then(|z| z.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let tag = o.get("tag").and_then(Value::as_i64);
    match typ {
        "" => return Err(Fail::Die("unknown section type ''".into())),
        "simple" if o.contains_key("tag") => {
            return Err(Fail::Param(
                "tag",
                "vlan tag is not allowed on simple zone".into(),
            ))
        }
        "vlan" => {
            let Some(tag) = tag else {
                return Err(Fail::Param("tag", "missing vlan tag".into()));
            };
            if tag > 4096 {
                return Err(Fail::Param("tag", "vlan tag max value is 4096".into()));
            }
            if let Some((other, _)) = cfg.vnets.iter().find(|(oid, ov)| {
                oid.as_str() != id
                    && ov.get("zone").and_then(Value::as_str) == Some(zone_id)
                    && ov.get("tag").and_then(Value::as_i64) == Some(tag)
            }) {
                return Err(Fail::Param(
                    "tag",
                    format!("tag {tag} already exist in vnet {other}"),
                ));
            }
        }
        _ => {}
    }
    let vlanaware = o.get("vlanaware").and_then(Value::as_i64).unwrap_or(0) != 0;
    if vlanaware && cfg.subnets_of(id).next().is_some() {
        return Err(Fail::Param(
            "vlanaware",
            "vlanaware vnet is not compatible with subnets".into(),
        ));
    }
    Ok(())
}

pub(crate) fn create_vnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = r.param("vnet").unwrap_or_default();
    check_id(id).map_err(|m| ApiError::param("vnet", m))?;
    let mut o = options(r);
    if let Some(z) = r.param("zone") {
        o.insert("zone".into(), Value::from(z));
    }
    o.insert("type".into(), Value::from("vnet"));
    let what = "create sdn vnet object failed";
    let mut st = sh.lock();
    (|| {
        check_token(&st, r.param("lock-token"))?;
        if st.sdn.config.vnets.contains_key(id) {
            return Err(Fail::Die(format!(
                "sdn vnet object ID '{id}' already defined"
            )));
        }
        vnet_hooks(&st.sdn.config, id, &o)?;
        st.sdn.config.vnets.insert(id.to_owned(), o);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

pub(crate) fn update_vnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "vnet");
    let what = "update sdn vnet object failed";
    let mut st = sh.lock();
    vnet_exists(&st, id)?;
    (|| {
        check_token(&st, r.param("lock-token"))?;
        check_digest(r, &st.sdn.config.vnets)?;
        let mut o = st.sdn.config.vnets.get(id).cloned().unwrap_or_default();
        let old_zone = o.get("zone").cloned();
        for k in deletes(r) {
            o.remove(&k);
        }
        o.extend(options(r));
        if let Some(z) = r.param("zone") {
            o.insert("zone".into(), Value::from(z));
        }
        let new_zone = o.get("zone").cloned();
        if new_zone.is_none() {
            return Err(Fail::Param("zone", "cannot delete zone".into()));
        }
        if st.sdn.config.subnets_of(id).next().is_some() && old_zone != new_zone {
            return Err(Fail::Param(
                "zone",
                "can't change zone if subnets exist".into(),
            ));
        }
        vnet_hooks(&st.sdn.config, id, &o)?;
        st.sdn.config.vnets.insert(id.to_owned(), o);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

pub(crate) fn delete_vnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "vnet");
    let what = "delete sdn vnet object failed";
    let mut st = sh.lock();
    vnet_exists(&st, id)?;
    (|| {
        check_token(&st, r.param("lock-token"))?;
        if st.sdn.config.subnets_of(id).next().is_some() {
            return Err(Fail::Param(
                "vnet",
                "Can't delete vnet if subnets exists".into(),
            ));
        }
        st.sdn.config.vnets.remove(id);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

// ---- subnets ----

pub(crate) fn list_subnets(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let vnet = pp(r, "vnet");
    vnet_exists(&st, vnet)?;
    let cfg = view(&st, r, Section::Subnets);
    let dig = digest(&st.sdn.config.subnets);
    Ok(cfg
        .into_iter()
        .filter(|(_, o)| o.get("vnet").and_then(Value::as_str) == Some(vnet))
        .map(|(id, o)| subnet_item(o, &id, &dig))
        .collect())
}

pub(crate) fn get_subnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let vnet = pp(r, "vnet");
    vnet_exists(&st, vnet)?;
    let id = pp(r, "subnet");
    let cfg = view(&st, r, Section::Subnets);
    let o = cfg
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("sdn subnet '{id}' does not exist")))?;
    if o.get("vnet").and_then(Value::as_str) != Some(vnet) {
        return Err(ApiError::param("vnet", "wrong vnet"));
    }
    Ok(subnet_item(o, id, &digest(&st.sdn.config.subnets)))
}

/// `SubnetPlugin::on_update_hook`: vnet, gateway and DHCP ranges.
fn subnet_hooks(cfg: &Cfg, cidr: (Ipv4Addr, u8), o: &Obj) -> Result<(), Fail> {
    let cidr_text = format!("{}/{}", cidr.0, cidr.1);
    if let Some(vnet) = o.get("vnet").and_then(Value::as_str) {
        let Some(v) = cfg.vnets.get(vnet) else {
            return Err(Fail::Param("vnet", format!("{vnet} don't exist")));
        };
        if v.get("vlanaware").and_then(Value::as_i64).unwrap_or(0) != 0 {
            return Err(Fail::Param(
                "vnet",
                "you can't add a subnet on a vlanaware vnet".into(),
            ));
        }
    }
    if let Some(gw) = o.get("gateway").and_then(Value::as_str) {
        let inside = gw
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| in_net(cidr.0, cidr.1, ip));
        if !inside && cidr.1 != 32 {
            return Err(Fail::Param(
                "gateway",
                format!("{gw} is not in subnet {cidr_text}"),
            ));
        }
    }
    let mut seen: Vec<(u32, u32)> = Vec::new();
    for item in o
        .get("dhcp-range")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let (s, e) = parse_range(item).ok_or_else(|| {
            Fail::Param("dhcp-range", format!("unable to parse dhcp-range '{item}'"))
        })?;
        let start: Ipv4Addr = s.parse().map_err(|_| {
            Fail::Param("dhcp-range", format!("start-address is not a valid IP {s}"))
        })?;
        let end: Ipv4Addr = e
            .parse()
            .map_err(|_| Fail::Param("dhcp-range", format!("end-address is not a valid IP {e}")))?;
        if u32::from(start) > u32::from(end) {
            return Err(Fail::Param(
                "dhcp-range",
                format!("start-address {s} must be smaller than end-address {e}"),
            ));
        }
        if !in_net(cidr.0, cidr.1, start) {
            return Err(Fail::Param(
                "dhcp-range",
                format!("start-address {s} is not in subnet {cidr_text}"),
            ));
        }
        if !in_net(cidr.0, cidr.1, end) {
            return Err(Fail::Param(
                "dhcp-range",
                format!("end-address {e} is not in subnet {cidr_text}"),
            ));
        }
        let (a, b) = (u32::from(start), u32::from(end));
        if seen.iter().any(|&(x, y)| a <= y && x <= b) {
            return Err(Fail::Param(
                "dhcp-range",
                "dhcp ranges must not overlap".into(),
            ));
        }
        seen.push((a, b));
    }
    Ok(())
}

/// The CIDR of a subnet id `<zone>-<ip>-<prefix>`.
fn cidr_of_id(id: &str) -> Option<(Ipv4Addr, u8)> {
    let mut parts = id.splitn(3, '-');
    let (_, ip, mask) = (parts.next()?, parts.next()?, parts.next()?);
    parse_cidr(&format!("{ip}/{mask}"))
}

pub(crate) fn create_subnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let vnet = pp(r, "vnet").to_owned();
    let given = r.param("subnet").unwrap_or_default();
    let cidr = parse_cidr(given).ok_or_else(|| {
        ApiError::param(
            "subnet",
            "invalid format - value does not look like a valid CIDR network\n",
        )
    })?;
    let mut o = options(r);
    o.insert("type".into(), Value::from("subnet"));
    o.insert("vnet".into(), Value::from(vnet.clone()));
    let what = "create sdn subnet object failed";
    let mut st = sh.lock();
    vnet_exists(&st, &vnet)?;
    (|| {
        check_token(&st, r.param("lock-token"))?;
        let zone = st
            .sdn
            .config
            .vnets
            .get(&vnet)
            .and_then(|v| v.get("zone"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let id = format!("{zone}-{}", given.replace('/', "-"));
        if st.sdn.config.subnets.contains_key(&id) {
            return Err(Fail::Die(format!(
                "sdn subnet object ID '{id}' already defined"
            )));
        }
        subnet_hooks(&st.sdn.config, cidr, &o)?;
        st.sdn.config.subnets.insert(id, o);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

pub(crate) fn update_subnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let vnet = pp(r, "vnet");
    let id = pp(r, "subnet");
    let what = "update sdn subnet object failed";
    let mut st = sh.lock();
    vnet_exists(&st, vnet)?;
    (|| {
        check_token(&st, r.param("lock-token"))?;
        check_digest(r, &st.sdn.config.subnets)?;
        let mut o = st
            .sdn
            .config
            .subnets
            .get(id)
            .cloned()
            .ok_or_else(|| Fail::Die(format!("sdn subnet '{id}' does not exist")))?;
        if o.get("vnet").and_then(Value::as_str) != Some(vnet) {
            return Err(Fail::Param("vnet", "wrong vnet".into()));
        }
        for k in deletes(r) {
            o.remove(&k);
        }
        o.extend(options(r));
        let cidr = cidr_of_id(id).unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        subnet_hooks(&st.sdn.config, cidr, &o)?;
        st.sdn.config.subnets.insert(id.to_owned(), o);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

pub(crate) fn delete_subnet(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let vnet = pp(r, "vnet");
    let id = pp(r, "subnet");
    let what = "delete sdn subnet object failed";
    let mut st = sh.lock();
    vnet_exists(&st, vnet)?;
    (|| {
        check_token(&st, r.param("lock-token"))?;
        match st.sdn.config.subnets.get(id) {
            None => return Err(Fail::Die(format!("sdn subnet '{id}' does not exist"))),
            Some(o) if o.get("vnet").and_then(Value::as_str) != Some(vnet) => {
                return Err(Fail::Param("vnet", "wrong vnet".into()))
            }
            Some(_) => {}
        }
        st.sdn.config.subnets.remove(id);
        Ok(Value::Null)
    })()
    .map_err(|f| wrap(what, f))
}

// ---- lock and apply ----

/// `POST /cluster/sdn/lock`.
pub(crate) fn lock(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let mut st = sh.lock();
    (|| {
        check_token(&st, None)?;
        if !r.flag("allow-pending") && st.sdn.has_pending() {
            return Err(Fail::Die(
                "configuration has pending changes at /usr/share/perl5/PVE/API2/Network/SDN.pm line 149."
                    .into(),
            ));
        }
        let seed = st.seed;
        let token = st.sdn.new_token(seed);
        st.sdn.lock = Some(token.clone());
        Ok(Value::from(token))
    })()
    .map_err(|f| wrap("could not acquire lock for SDN config", f))
}

/// `DELETE /cluster/sdn/lock`.
pub(crate) fn release_lock(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let mut st = sh.lock();
    if !r.flag("force") {
        check_token(&st, r.param("lock-token")).map_err(|f| wrap("could not release lock", f))?;
    }
    st.sdn.lock = None;
    Ok(Value::Null)
}

/// `PUT /cluster/sdn`: commit the config as the running config (at once, as
/// `commit_config` does) and fork `reloadnetworkall`; the nodes run the new networks
/// when it ends.
pub(crate) fn apply(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let token = r.param("lock-token");
    let release = r.param("release-lock") != Some("0");
    let snapshot = {
        let mut st = sh.lock();
        check_token(&st, token).map_err(|f| wrap("could not commit SDN config", f))?;
        st.sdn.running = st.sdn.config.clone();
        st.sdn.version += 1;
        st.sdn.applies += 1;
        if token.is_some_and(|t| !t.is_empty()) && release {
            st.sdn.lock = None;
        }
        (st.sdn.version, st.sdn.running.clone())
    };
    let nodes = sh.cfg.nodes.clone();
    let node = nodes.first().cloned().unwrap_or_default();
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node,
        "reloadnetworkall",
        "",
        r.caller,
        Vec::new(),
        move |upid| async move {
            for n in &nodes {
                sh2.lock()
                    .tasks
                    .log(&upid, format!("{n}: reloading network config"));
            }
            sh2.sleep(RELOAD).await;
            let mut st = sh2.lock();
            let (version, cfg) = snapshot;
            if version > st.sdn.live_version {
                st.sdn.live = cfg;
                st.sdn.live_version = version;
            }
            st.sdn.reloads_done += 1;
            Ok(0)
        },
    );
    Ok(Value::from(upid))
}
