//! Resource pools (`/pools`, and the legacy `/pools/{poolid}`), stored like `user.cfg`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::cluster::{guest_resource, storage_resource};
use crate::error::{ApiError, ApiResult};
use crate::routing::Req;
use crate::state::{Pool, Shared, SimState};

fn not_found(poolid: &str) -> ApiError {
    ApiError::internal(format!("pool '{poolid}' does not exist"))
}

/// The member entries of a pool (guests as in `/cluster/resources`, plus storage).
fn members(st: &SimState, nodes: &[String], pool: &Pool, typ: Option<&str>) -> Vec<Value> {
    let mut out: Vec<Value> = pool
        .vms
        .iter()
        .filter_map(|id| st.guests.get(id))
        .filter(|g| typ.is_none_or(|t| t == g.kind.as_str()))
        .map(|g| guest_resource(st, g))
        .collect();
    if typ.is_none_or(|t| t == "storage") {
        for s in &pool.storage {
            for n in nodes {
                let mut e = storage_resource(n);
                e["storage"] = json!(s);
                e["id"] = json!(format!("storage/{n}/{s}"));
                out.push(e);
            }
        }
    }
    out
}

/// `GET /pools[?poolid=x[&type=qemu|lxc|storage]]`.
pub(crate) fn list(
    sh: &Shared,
    poolid: Option<&str>,
    typ: Option<&str>,
    caller: &crate::state::Caller,
) -> ApiResult<Value> {
    let st = sh.lock();
    let mut out = Vec::new();
    for (name, pool) in &st.pools {
        if poolid.is_some_and(|p| p != name) {
            continue;
        }
        if !crate::access::may(&st, caller, &format!("/pool/{name}"), &["Pool.Audit"]) {
            continue;
        }
        let mut m = Map::new();
        m.insert("poolid".into(), json!(name));
        if let Some(c) = &pool.comment {
            m.insert("comment".into(), json!(c));
        }
        if poolid.is_some() {
            m.insert(
                "members".into(),
                Value::Array(members(&st, &sh.cfg.nodes, pool, typ)),
            );
        }
        out.push(Value::Object(m));
    }
    if let Some(p) = poolid {
        if out.is_empty() {
            return Err(not_found(p));
        }
    }
    Ok(Value::Array(out))
}

/// `GET /pools/{poolid}` (legacy): `{comment?, members}`.
pub(crate) fn get_legacy(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let poolid = r.pp.get("poolid").map_or("", String::as_str);
    let st = sh.lock();
    let pool = st.pools.get(poolid).ok_or_else(|| not_found(poolid))?;
    let mut m = Map::new();
    if let Some(c) = &pool.comment {
        m.insert("comment".into(), json!(c));
    }
    m.insert(
        "members".into(),
        Value::Array(members(&st, &sh.cfg.nodes, pool, r.param("type"))),
    );
    Ok(Value::Object(m))
}

fn poolid<'a>(r: &'a Req<'_>) -> ApiResult<&'a str> {
    r.pp.get("poolid")
        .map(String::as_str)
        .or_else(|| r.param("poolid"))
        .ok_or_else(|| ApiError::param("poolid", "property is missing and it is not optional"))
}

/// `POST /pools`.
pub(crate) fn create(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = poolid(r)?;
    let mut st = sh.lock();
    if st.pools.contains_key(id) {
        return Err(ApiError::internal(format!(
            "create pool failed: pool '{id}' already exists"
        )));
    }
    if let Some((parent, _)) = id.rsplit_once('/') {
        if !st.pools.contains_key(parent) {
            return Err(ApiError::internal(format!(
                "create pool failed: parent '{parent}' does not exist"
            )));
        }
    }
    st.pools.insert(
        id.to_owned(),
        Pool {
            comment: r.param("comment").map(str::to_owned),
            ..Pool::default()
        },
    );
    Ok(Value::Null)
}

fn split_list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split([',', ';', ' ', '\0'])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// `PUT /pools` and `PUT /pools/{poolid}`: comment, add/remove `vms` and `storage`.
pub(crate) fn update(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let id = poolid(r)?.to_owned();
    let delete = r.flag("delete");
    let allow_move = r.flag("allow-move");
    let mut st = sh.lock();
    let fail = |msg: String| ApiError::internal(format!("update pools failed: {msg}"));
    if !st.pools.contains_key(&id) {
        return Err(fail(format!("pool '{id}' does not exist")));
    }
    // Work on a copy so a failing member leaves user.cfg unchanged.
    let mut pools = st.pools.clone();
    for v in split_list(r.param("vms")) {
        let vmid: u32 = v.parse().map_err(|_| {
            ApiError::param(
                "vms",
                format!("value '{v}' does not look like a valid VM ID"),
            )
        })?;
        let current = pools
            .iter()
            .find(|(_, p)| p.vms.contains(&vmid))
            .map(|(n, _)| n.clone());
        if delete {
            if current.as_deref() != Some(id.as_str()) {
                return Err(fail(format!("VM {vmid} is not a pool member")));
            }
            if let Some(p) = pools.get_mut(&id) {
                p.vms.remove(&vmid);
            }
            continue;
        }
        if current.as_deref() == Some(id.as_str()) {
            return Err(fail(format!("VM {vmid} is already a pool member")));
        }
        if !st.guests.contains_key(&vmid) {
            return Err(fail(format!("VM {vmid} does not exist")));
        }
        if let Some(other) = current {
            if !allow_move {
                return Err(fail(format!(
                    "VM {vmid} belongs already to pool '{other}' and 'allow-move' is not set"
                )));
            }
            if let Some(p) = pools.get_mut(&other) {
                p.vms.remove(&vmid);
            }
        }
        if let Some(p) = pools.get_mut(&id) {
            p.vms.insert(vmid);
        }
    }
    for s in split_list(r.param("storage")) {
        let p = pools
            .get_mut(&id)
            .ok_or_else(|| fail(format!("pool '{id}' does not exist")))?;
        if delete {
            if !p.storage.remove(&s) {
                return Err(fail(format!("storage '{s}' is not a pool member")));
            }
        } else {
            if s != "local-lvm" {
                return Err(fail(format!("storage '{s}' does not exist")));
            }
            if !p.storage.insert(s.clone()) {
                return Err(fail(format!("storage '{s}' is already a pool member")));
            }
        }
    }
    if let Some(c) = r.param("comment") {
        if let Some(p) = pools.get_mut(&id) {
            p.comment = if c.is_empty() {
                None
            } else {
                Some(c.to_owned())
            };
        }
    }
    st.pools = pools;
    Ok(Value::Null)
}

/// `DELETE /pools?poolid=x` and `DELETE /pools/{poolid}`: only when empty.
pub(crate) fn delete(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = poolid(r)?;
    let mut st = sh.lock();
    let fail = |msg: String| ApiError::internal(format!("delete pool failed: {msg}"));
    let pool = st
        .pools
        .get(id)
        .ok_or_else(|| fail(format!("pool '{id}' does not exist")))?;
    if let Some(vmid) = pool.vms.iter().next() {
        return Err(fail(format!(
            "pool '{id}' is not empty (contains VM {vmid})"
        )));
    }
    if let Some(s) = pool.storage.iter().next() {
        return Err(fail(format!(
            "pool '{id}' is not empty (contains storage '{s}')"
        )));
    }
    if st.pools.keys().any(|k| k.starts_with(&format!("{id}/"))) {
        return Err(fail(format!(
            "pool '{id}' is not empty (contains child pools)"
        )));
    }
    st.pools.remove(id);
    Ok(Value::Null)
}
