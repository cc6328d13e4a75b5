//! Guest config: `GET`, `PUT` (synchronous) and, for QEMU, `POST` (a `qmconfig` task),
//! with `digest` checks, `delete=`, tag normalisation and MACs for new NICs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::guest::{has_mac, normalize_tags, random_mac, with_mac, Kind};
use crate::routing::Req;
use crate::state::Shared;
use crate::tasks::spawn_task;

/// Keys PVE's config reader returns as JSON numbers (the rest are strings).
const NUMERIC_KEYS: &[&str] = &[
    "cores",
    "sockets",
    "template",
    "onboot",
    "protection",
    "swap",
    "cpuunits",
    "balloon",
    "unprivileged",
    "numa",
    "vcpus",
    "tablet",
    "acpi",
    "kvm",
];

/// Parameters of the config endpoints that are not config keys.
const CONTROL: &[&str] = &[
    "delete",
    "digest",
    "revert",
    "skiplock",
    "background_delay",
    "node",
    "vmid",
];

/// `GET …/config`: the config keys plus `digest`.
pub(crate) fn get(sh: &Shared, kind: Kind, node: &str, vmid: u32) -> ApiResult<Value> {
    let st = sh.lock();
    let g = st.guest(kind, node, vmid)?;
    let mut m = Map::new();
    for (k, v) in &g.config {
        let value = match v.parse::<i64>() {
            Ok(n) if NUMERIC_KEYS.contains(&k.as_str()) => json!(n),
            _ => json!(v),
        };
        m.insert(k.clone(), value);
    }
    m.insert("digest".into(), json!(g.digest()));
    Ok(Value::Object(m))
}

/// The new config after applying `set` and `delete` to `old`.
fn apply(
    kind: Kind,
    old: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    delete: &[String],
    rng: &mut impl rand::Rng,
) -> ApiResult<BTreeMap<String, String>> {
    let mut new = old.clone();
    for key in delete {
        new.remove(key);
    }
    for (k, v) in set {
        let mut v = v.clone();
        if k == "tags" {
            v = normalize_tags(&v)?;
        }
        if k.strip_prefix("net")
            .is_some_and(|n| n.parse::<u32>().is_ok())
            && !has_mac(kind, &v)
        {
            // A netX without MAC gets a new random one (clients must resend the MAC).
            v = with_mac(kind, &v, &random_mac(rng));
        }
        if k == "tags" && v.is_empty() {
            new.remove(k);
        } else {
            new.insert(k.clone(), v);
        }
    }
    Ok(new)
}

/// `PUT …/config` (`asynchronous = false`) or `POST …/config` (QEMU, returns a UPID).
pub(crate) fn update(
    sh: &Arc<Shared>,
    r: &Req<'_>,
    kind: Kind,
    asynchronous: bool,
) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let delete: Vec<String> = r
        .param("delete")
        .map(|d| {
            d.split([',', ';', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let set: BTreeMap<String, String> = r
        .params
        .iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(both) = delete.iter().find(|k| set.contains_key(*k)) {
        return Err(ApiError::param(
            "delete",
            format!("cannot set and delete '{both}' at the same time"),
        ));
    }
    let new = {
        let mut guard = sh.lock();
        let st = &mut *guard;
        let g = st.guest(kind, &node, vmid)?;
        if let Some(digest) = r.param("digest") {
            if digest != g.digest() {
                return Err(ApiError::internal(
                    "checksum mismatch (file change by other user?)",
                ));
            }
        }
        if !r.flag("skiplock") {
            g.check_lock()?;
        }
        let old = g.config.as_map().clone();
        let new = apply(kind, &old, &set, &delete, &mut st.rng)?;
        if !asynchronous {
            st.guest_mut(kind, &node, vmid)?.config.replace(new);
            return Ok(Value::Null);
        }
        new
    };
    // POST: checks ran synchronously (as in qemu-server); the worker applies the change.
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        "qmconfig",
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |_| async move {
            let mut st = sh2.lock();
            st.guest_mut(kind, &node, vmid)
                .map_err(|e| e.message)?
                .config
                .replace(new);
            Ok(0)
        },
    );
    Ok(json!(upid))
}
