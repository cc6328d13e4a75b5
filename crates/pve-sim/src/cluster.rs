//! Discovery: `/version`, `/nodes`, `/cluster/resources`, `/cluster/nextid`,
//! `/cluster/status`, `/nodes/{node}/time`.

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::guest::Guest;
use crate::state::{unix_now, Caller, Shared, SimState};

/// The simulated PVE release.
pub(crate) const VERSION: &str = "9.1.2";
/// `/etc/pve/.version`-style cluster name (only reported with more than one node).
pub(crate) const CLUSTER_NAME: &str = "labsim";
const GIB: u64 = 1024 * 1024 * 1024;

/// `GET /version`.
pub(crate) fn version() -> Value {
    json!({"version": VERSION, "release": "9.1", "repoid": "c5cd20c5"})
}

/// `GET /nodes`: an offline node keeps only its name, status and fingerprint (pvestatd
/// has no fresh figures for it).
pub(crate) fn nodes(sh: &Shared) -> Value {
    let st = sh.lock();
    Value::Array(
        sh.cfg
            .nodes
            .iter()
            .map(|n| {
                let mut e = json!({
                    "node": n, "id": format!("node/{n}"), "type": "node",
                    "level": "", "ssl_fingerprint": sh.cfg.fingerprint,
                });
                node_figures(sh, &st, n, &mut e);
                e
            })
            .collect(),
    )
}

/// Status and, for an online node, `cpu`, `maxcpu`, `mem`, `maxmem`, `disk`, `maxdisk`,
/// `uptime` (memory in use = the host's plus what its running guests reserve).
fn node_figures(sh: &Shared, st: &SimState, node: &str, e: &mut Value) {
    if !st.node_online(node) {
        e["status"] = json!("offline");
        return;
    }
    e["status"] = json!("online");
    e["cpu"] = json!(0.031);
    e["maxcpu"] = json!(sh.cfg.node_cpus);
    e["mem"] = json!(st.node_memory_used(node));
    e["maxmem"] = json!(sh.cfg.node_memory);
    e["disk"] = json!(12 * GIB);
    e["maxdisk"] = json!(100 * GIB);
    e["uptime"] = json!(86_400 * 3);
}

/// Size in bytes of a disk spec such as `local-lvm:vm-100-disk-0,size=32G`.
fn disk_size(spec: &str) -> u64 {
    let Some(size) = crate::guest::net_option(spec, "size") else {
        return 0;
    };
    let (num, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let n: u64 = num.parse().unwrap_or(0);
    match unit {
        "T" => n * 1024 * GIB,
        "G" => n * GIB,
        "M" => n * 1024 * 1024,
        "K" => n * 1024,
        _ => n,
    }
}

/// Max memory (bytes), cores and disk size of a guest, from its config.
pub(crate) fn sizes(g: &Guest) -> (u64, u64, u64) {
    let mem = g
        .config
        .get("memory")
        .and_then(|m| m.split(',').next())
        .and_then(|m| m.trim_start_matches("current=").parse::<u64>().ok())
        .unwrap_or(512)
        * 1024
        * 1024;
    let cores = g
        .config
        .get("cores")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let disk = ["scsi0", "virtio0", "sata0", "ide0", "rootfs"]
        .iter()
        .find_map(|k| g.config.get(*k))
        .map_or(0, |d| disk_size(d));
    (mem, cores, disk)
}

/// A guest as `/cluster/resources` (and pool member lists) show it: status, name and
/// template from pvestatd's last cycle; tags, lock and pool fresh.
pub(crate) fn guest_resource(st: &SimState, g: &Guest) -> Value {
    let (maxmem, cores, maxdisk) = sizes(g);
    let mut m = Map::new();
    m.insert(
        "id".into(),
        json!(format!("{}/{}", g.kind.as_str(), g.vmid)),
    );
    m.insert("type".into(), json!(g.kind.as_str()));
    m.insert("vmid".into(), json!(g.vmid));
    m.insert("node".into(), json!(g.node));
    let rrd = st.rrd.get(&g.vmid);
    // A guest on an offline node has no fresh status.
    let status = rrd
        .filter(|_| st.node_online(&g.node))
        .map_or("unknown", |r| r.status);
    m.insert("status".into(), json!(status));
    if let Some(r) = rrd {
        if let Some(name) = &r.name {
            m.insert("name".into(), json!(name));
        }
        m.insert("template".into(), json!(u8::from(r.template)));
    }
    let running = status == "running";
    let uptime = if running {
        unix_now().saturating_sub(g.started_unix)
    } else {
        0
    };
    m.insert("uptime".into(), json!(uptime));
    m.insert("cpu".into(), json!(if running { 0.012 } else { 0.0 }));
    m.insert("maxcpu".into(), json!(cores));
    m.insert("mem".into(), json!(if running { maxmem / 2 } else { 0 }));
    m.insert("maxmem".into(), json!(maxmem));
    m.insert("disk".into(), json!(0));
    m.insert("maxdisk".into(), json!(maxdisk));
    for k in ["netin", "netout", "diskread", "diskwrite"] {
        m.insert(k.into(), json!(0));
    }
    if let Some(tags) = g.config.get("tags") {
        m.insert("tags".into(), json!(tags));
    }
    if let Some(lock) = g.lock() {
        m.insert("lock".into(), json!(lock));
    }
    if let Some(pool) = st.pool_of(g.vmid) {
        m.insert("pool".into(), json!(pool));
    }
    Value::Object(m)
}

/// `GET /nodes/{node}/time`: the node's clock (the simulator's host clock, UTC; the
/// router has already refused unknown nodes).
pub(crate) fn time() -> Value {
    let now = unix_now();
    json!({"time": now, "localtime": now, "timezone": "UTC"})
}

/// A node's `local-lvm` storage entry.
pub(crate) fn storage_resource(node: &str) -> Value {
    json!({
        "id": format!("storage/{node}/local-lvm"), "type": "storage", "storage": "local-lvm",
        "node": node, "status": "available", "plugintype": "lvmthin",
        "content": "images,rootdir", "shared": 0, "disk": 20 * GIB, "maxdisk": 400 * GIB,
    })
}

/// The shared storage's entry for one node (`rbd`/`ceph` ids are RBD pools, others NFS).
pub(crate) fn shared_storage_resource(node: &str, storage: &str) -> Value {
    let plugin = if storage.contains("rbd") || storage.contains("ceph") {
        "rbd"
    } else {
        "nfs"
    };
    json!({
        "id": format!("storage/{node}/{storage}"), "type": "storage", "storage": storage,
        "node": node, "status": "available", "plugintype": plugin,
        "content": "images,rootdir", "shared": 1, "disk": 50 * GIB, "maxdisk": 4096 * GIB,
    })
}

/// `GET /cluster/resources[?type=vm|storage|node|sdn]`.
///
/// A caller sees only guests with `VM.Audit`, nodes with `Sys.Audit`, storage with
/// `Datastore.Audit` and pools with `Pool.Audit` on their paths.
pub(crate) fn resources(sh: &Shared, typ: Option<&str>, caller: &Caller) -> Value {
    let st = sh.lock();
    let want = |t: &str| typ.is_none_or(|w| w == t);
    let may = |path: String, privs: &[&str]| crate::access::may(&st, caller, &path, privs);
    let mut out = Vec::new();
    if want("vm") {
        out.extend(
            st.guests
                .values()
                .filter(|g| may(format!("/vms/{}", g.vmid), &["VM.Audit"]))
                .map(|g| guest_resource(&st, g)),
        );
    }
    if want("node") {
        for n in sh
            .cfg
            .nodes
            .iter()
            .filter(|n| may(format!("/nodes/{n}"), &["Sys.Audit"]))
        {
            let mut e = json!({
                "id": format!("node/{n}"), "type": "node", "node": n,
                "level": "", "cgroup-mode": 2,
            });
            node_figures(sh, &st, n, &mut e);
            out.push(e);
        }
    }
    if want("storage") {
        out.extend(
            sh.cfg
                .nodes
                .iter()
                .filter(|n| {
                    may("/storage/local-lvm".to_owned(), &["Datastore.Audit"])
                        && may(format!("/nodes/{n}"), &["Sys.Audit", "Datastore.Audit"])
                })
                .map(|n| {
                    let mut s = storage_resource(n);
                    if !sh.cfg.linked_clones {
                        s["plugintype"] = json!("lvm");
                    }
                    s
                }),
        );
        if let Some(shared) = &sh.cfg.shared_storage {
            out.extend(
                sh.cfg
                    .nodes
                    .iter()
                    .filter(|n| {
                        may(format!("/storage/{shared}"), &["Datastore.Audit"])
                            && may(format!("/nodes/{n}"), &["Sys.Audit", "Datastore.Audit"])
                    })
                    .map(|n| shared_storage_resource(n, shared)),
            );
        }
    }
    if typ.is_none() {
        for name in st
            .pools
            .keys()
            .filter(|p| may(format!("/pool/{p}"), &["Pool.Audit"]))
        {
            out.push(json!({"id": format!("/pool/{name}"), "type": "pool", "pool": name}));
        }
    }
    Value::Array(out)
}

/// `GET /cluster/nextid[?vmid=N]` — always a JSON string; reserves nothing.
pub(crate) fn nextid(sh: &Shared, vmid: Option<&str>) -> ApiResult<Value> {
    let st = sh.lock();
    if let Some(v) = vmid {
        let n: u32 = v.parse().map_err(|_| {
            ApiError::param("vmid", format!("type check ('integer') failed - got '{v}'"))
        })?;
        if st.guests.contains_key(&n) {
            return Err(ApiError::param("vmid", format!("VM {n} already exists")));
        }
        return Ok(json!(v));
    }
    (100..1_000_000u32)
        .find(|id| !st.guests.contains_key(id))
        .map(|id| json!(id.to_string()))
        .ok_or_else(|| ApiError::internal("unable to get any free VMID in range [100, 999999]"))
}

/// `GET /cluster/status`.
pub(crate) fn status(sh: &Shared) -> Value {
    let st = sh.lock();
    let n = sh.cfg.nodes.len();
    let online = sh.cfg.nodes.iter().filter(|x| st.node_online(x)).count();
    let mut out = Vec::new();
    if n > 1 {
        out.push(
            json!({"type": "cluster", "id": "cluster", "name": CLUSTER_NAME,
                        "nodes": n, "version": n + 2, "quorate": u8::from(online * 2 > n)}),
        );
    }
    for (i, node) in sh.cfg.nodes.iter().enumerate() {
        out.push(json!({
            "type": "node", "id": format!("node/{node}"), "name": node,
            "nodeid": if n > 1 { i + 1 } else { 0 },
            "ip": format!("192.168.100.{}", 11 + i), "local": u8::from(i == 0),
            "online": u8::from(st.node_online(node)), "level": "",
        }));
    }
    Value::Array(out)
}
