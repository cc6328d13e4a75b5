//! Guest lifecycle shared by QEMU and LXC: list, `status/current`, start, stop,
//! shutdown, reboot, template conversion and destroy, with the synchronous checks and
//! task errors of §4 and §5.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::cluster::sizes;
use crate::error::{ApiError, ApiResult};
use crate::guest::{Guest, Kind};
use crate::routing::Req;
use crate::state::{unix_now, Shared, SimState};
use crate::tasks::{spawn_task, TaskOutcome};

/// Simulated durations in seconds (before `--time-scale`).
pub(crate) mod durations {
    pub const START: f64 = 2.0;
    pub const STOP: f64 = 1.0;
    pub const SHUTDOWN: f64 = 5.0;
    pub const DESTROY: f64 = 1.0;
    pub const TEMPLATE: f64 = 2.0;
    /// From "running" until the QEMU guest agent answers.
    pub const AGENT_BOOT: f64 = 20.0;
    /// From the agent answering until the DHCP IPv4 shows up (LXC: from start).
    pub const DHCP: f64 = 3.0;
}

/// Put a guest into the running state: boot clock, agent and DHCP timers, lease.
pub(crate) fn boot(sh: &Shared, st: &mut SimState, vmid: u32) {
    let lease = st.lease_for(vmid);
    let now = Instant::now();
    if let Some(g) = st.guests.get_mut(&vmid) {
        g.running = true;
        g.started_unix = unix_now();
        g.ipv4 = Some(lease);
        // A boot configures the network afresh (DHCP, the kernel's routes).
        g.os.runtime = crate::guest::os::Runtime::default();
        match g.kind {
            Kind::Qemu => {
                let agent = now + sh.scaled(durations::AGENT_BOOT);
                // Without `agent` in the config at start there is no agent device, so
                // enabling it later needs a restart (as on PVE); DHCP happens anyway.
                g.agent_ready_at = g.agent_enabled().then_some(agent);
                g.ipv4_ready_at = Some(agent + sh.scaled(durations::DHCP));
            }
            Kind::Lxc => {
                g.agent_ready_at = None;
                g.ipv4_ready_at = Some(now + sh.scaled(durations::DHCP));
            }
        }
    }
}

/// Power a guest off (stop, shutdown, destroy --force).
pub(crate) fn power_off(g: &mut Guest) {
    g.running = false;
    // Processes die with the machine; the agent comes back with the next boot.
    g.os.execs.clear();
    g.os.users.clear();
    g.os.agent = crate::guest::os::AgentState::Running;
    g.agent_ready_at = None;
    g.ipv4_ready_at = None;
}

fn common_status(g: &Guest) -> Map<String, Value> {
    let (maxmem, cores, maxdisk) = sizes(g);
    let mut m = Map::new();
    m.insert("vmid".into(), json!(g.vmid));
    if let Some(name) = g.name() {
        m.insert("name".into(), json!(name));
    }
    m.insert(
        "status".into(),
        json!(if g.running { "running" } else { "stopped" }),
    );
    if let Some(lock) = g.lock() {
        m.insert("lock".into(), json!(lock));
    }
    if g.is_template() {
        m.insert("template".into(), json!(1));
    }
    if let Some(tags) = g.config.get("tags") {
        m.insert("tags".into(), json!(tags));
    }
    let uptime = if g.running {
        unix_now().saturating_sub(g.started_unix)
    } else {
        0
    };
    m.insert("uptime".into(), json!(uptime));
    m.insert("cpus".into(), json!(cores));
    m.insert("cpu".into(), json!(if g.running { 0.0112 } else { 0.0 }));
    m.insert("maxmem".into(), json!(maxmem));
    m.insert("mem".into(), json!(if g.running { maxmem / 2 } else { 0 }));
    m.insert("maxdisk".into(), json!(maxdisk));
    m.insert("disk".into(), json!(0));
    for k in ["netin", "netout", "diskread", "diskwrite"] {
        m.insert(k.into(), json!(0));
    }
    if g.running {
        m.insert("pid".into(), json!(100_000 + g.vmid));
    }
    m
}

/// `GET /nodes/{node}/qemu` and `/lxc`.
pub(crate) fn list(sh: &Shared, kind: Kind, node: &str, caller: &crate::state::Caller) -> Value {
    let st = sh.lock();
    Value::Array(
        st.guests
            .values()
            .filter(|g| g.kind == kind && g.node == node)
            .filter(|g| crate::access::may(&st, caller, &format!("/vms/{}", g.vmid), &["VM.Audit"]))
            .map(|g| {
                let mut m = common_status(g);
                if kind == Kind::Lxc {
                    m.insert("type".into(), json!("lxc"));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// `GET …/{vmid}/status/current`.
pub(crate) fn status_current(sh: &Shared, kind: Kind, node: &str, vmid: u32) -> ApiResult<Value> {
    let st = sh.lock();
    let g = st.guest(kind, node, vmid)?;
    let mut m = common_status(g);
    m.insert("ha".into(), json!({"managed": 0}));
    match kind {
        Kind::Qemu => {
            m.insert(
                "qmpstatus".into(),
                json!(if g.running { "running" } else { "stopped" }),
            );
            if g.agent_enabled() {
                m.insert("agent".into(), json!(1));
            }
            if g.running {
                m.insert("running-machine".into(), json!("pc-i440fx-9.2+pve1"));
                m.insert("running-qemu".into(), json!("9.2.0"));
            }
        }
        Kind::Lxc => {
            m.insert("type".into(), json!("lxc"));
            m.insert("maxswap".into(), json!(512 * 1024 * 1024));
            m.insert("swap".into(), json!(0));
        }
    }
    Ok(Value::Object(m))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Start,
    Stop,
    Shutdown,
    Reboot,
}

/// Fork a power task; the checks a real node makes inside the worker fail the task.
fn power_task(sh: &Arc<Shared>, r: &Req<'_>, kind: Kind, op: Op) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    sh.lock().guest(kind, &node, vmid)?;
    let skiplock = r.flag("skiplock");
    // A guest needs SHUTDOWN seconds to power down; a shorter `timeout` runs out first.
    let short_timeout = r
        .param("timeout")
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| op == Op::Shutdown && kind == Kind::Qemu && *t < durations::SHUTDOWN);
    let force = r.flag("forceStop");
    let (typ, secs) = match (kind, op) {
        (Kind::Qemu, Op::Start) => ("qmstart", durations::START),
        (Kind::Qemu, Op::Stop) => ("qmstop", durations::STOP),
        (Kind::Qemu, Op::Shutdown) => ("qmshutdown", durations::SHUTDOWN),
        (Kind::Qemu, Op::Reboot) => ("qmreboot", durations::SHUTDOWN + durations::START),
        (Kind::Lxc, Op::Start) => ("vzstart", durations::START),
        (Kind::Lxc, Op::Stop) => ("vzstop", durations::STOP),
        (Kind::Lxc, Op::Shutdown) => ("vzshutdown", durations::SHUTDOWN),
        (Kind::Lxc, Op::Reboot) => ("vzreboot", durations::SHUTDOWN + durations::START),
    };
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        typ,
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |upid| async move {
            {
                let st = sh2.lock();
                let g = st.guest(kind, &node, vmid).map_err(|e| e.message)?;
                if !skiplock {
                    g.check_lock().map_err(|e| e.message)?;
                }
                if op == Op::Start {
                    if g.is_template() {
                        return Err(match kind {
                            Kind::Qemu => "you can't start a vm if it's a template".to_owned(),
                            Kind::Lxc => "you can't start a CT if it's a template".to_owned(),
                        });
                    }
                    if g.running {
                        return Err(format!("{} {vmid} already running", kind.prefix()));
                    }
                }
            }
            let was_running = sh2.lock().guest(kind, &node, vmid).is_ok_and(|g| g.running);
            if let Some(timeout) = short_timeout.filter(|_| was_running) {
                sh2.sleep(timeout).await;
                if !force {
                    return Err("VM quit/powerdown failed - got timeout".to_owned());
                }
                // forceStop: a `warn` in the worker, so the task ends with WARNINGS: 1.
                let mut st = sh2.lock();
                st.tasks.log(
                    &upid,
                    "VM quit/powerdown failed - terminating now with SIGTERM",
                );
                if let Ok(g) = st.guest_mut(kind, &node, vmid) {
                    power_off(g);
                }
                return Ok(1);
            }
            sh2.sleep(secs).await;
            let mut st = sh2.lock();
            let g = st.guest(kind, &node, vmid).map_err(|e| e.message)?;
            if op == Op::Start && kind == Kind::Qemu {
                // QEMU reserves the guest's memory at start; a node without it refuses.
                let need = sizes(g).0;
                let used = st.node_memory_used(&node);
                if used + need > sh2.cfg.node_memory {
                    st.tasks.log(
                        &upid,
                        "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory",
                    );
                    return Err("start failed: QEMU exited with code 1".to_owned());
                }
            }
            match op {
                Op::Start | Op::Reboot => boot(&sh2, &mut st, vmid),
                Op::Stop | Op::Shutdown => {
                    if let Ok(g) = st.guest_mut(kind, &node, vmid) {
                        power_off(g);
                    }
                }
            }
            TaskOutcome::Ok(0)
        },
    );
    Ok(json!(upid))
}

/// `POST …/status/start`.
pub(crate) fn start(sh: &Arc<Shared>, r: &Req<'_>, kind: Kind) -> ApiResult<Value> {
    if kind == Kind::Lxc {
        let st = sh.lock();
        let g = st.guest(kind, r.node(), r.vmid())?;
        if g.running {
            return Err(ApiError::internal(format!("CT {} already running", g.vmid)));
        }
    }
    power_task(sh, r, kind, Op::Start)
}

/// `POST …/status/stop` and `…/status/shutdown`.
pub(crate) fn stop(sh: &Arc<Shared>, r: &Req<'_>, kind: Kind, shutdown: bool) -> ApiResult<Value> {
    if kind == Kind::Lxc {
        // Unlike QEMU, stopping a stopped CT fails at once.
        let st = sh.lock();
        let g = st.guest(kind, r.node(), r.vmid())?;
        if !g.running {
            return Err(ApiError::internal(format!("CT {} not running", g.vmid)));
        }
    }
    power_task(sh, r, kind, if shutdown { Op::Shutdown } else { Op::Stop })
}

/// `POST …/status/reboot`.
pub(crate) fn reboot(sh: &Arc<Shared>, r: &Req<'_>, kind: Kind) -> ApiResult<Value> {
    {
        let st = sh.lock();
        let g = st.guest(kind, r.node(), r.vmid())?;
        if !g.running {
            return Err(ApiError::internal(format!(
                "{} {} not running",
                kind.prefix(),
                g.vmid
            )));
        }
    }
    power_task(sh, r, kind, Op::Reboot)
}

/// Rename `vm-<id>-disk-N` volumes to `base-<id>-disk-N` (template conversion).
fn to_base_volumes(g: &mut Guest) {
    let from = format!("vm-{}-disk-", g.vmid);
    let to = format!("base-{}-disk-", g.vmid);
    let disks: Vec<(String, String)> = g
        .config
        .iter()
        .filter(|(k, _)| {
            *k == "rootfs"
                || ["scsi", "virtio", "sata", "ide", "mp"]
                    .iter()
                    .any(|p| k.strip_prefix(p).is_some_and(|n| n.parse::<u32>().is_ok()))
        })
        .map(|(k, v)| (k.clone(), v.replace(&from, &to)))
        .collect();
    for (k, v) in disks {
        g.config.insert(k, v);
    }
}

/// `POST …/template`: QEMU returns the `qmtemplate` UPID, LXC returns `null` and converts
/// in a background `vztemplate` task.
pub(crate) fn template(sh: &Arc<Shared>, r: &Req<'_>, kind: Kind) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    {
        let mut st = sh.lock();
        let g = st.guest_mut(kind, &node, vmid)?;
        g.check_lock()?;
        if g.is_template() {
            return Err(ApiError::internal(
                "you can't convert a template to a template",
            ));
        }
        if kind == Kind::Qemu && !g.snapshots.is_empty() {
            return Err(ApiError::internal(
                "unable to create template, because VM contains snapshots",
            ));
        }
        if g.running {
            return Err(ApiError::internal(match kind {
                Kind::Qemu => "you can't convert a VM to template if VM is running",
                Kind::Lxc => "you can't convert a CT to template if the CT is running",
            }));
        }
        if kind == Kind::Qemu {
            // qemu-server writes the flag before forking; the worker converts the disks.
            g.config.insert("template".into(), "1".into());
        }
    }
    let typ = match kind {
        Kind::Qemu => "qmtemplate",
        Kind::Lxc => "vztemplate",
    };
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        typ,
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |_| async move {
            sh2.sleep(durations::TEMPLATE).await;
            let mut st = sh2.lock();
            let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
            to_base_volumes(g);
            g.config.insert("template".into(), "1".into());
            Ok(0)
        },
    );
    Ok(match kind {
        Kind::Qemu => json!(upid),
        Kind::Lxc => Value::Null,
    })
}

/// The volume id of a guest's first disk (`local-lvm:base-9000-disk-0`).
pub(crate) fn first_volume(g: &Guest) -> String {
    ["scsi0", "virtio0", "sata0", "ide0", "rootfs"]
        .iter()
        .find_map(|k| g.config.get(*k))
        .and_then(|d| d.split(',').next())
        .unwrap_or_default()
        .to_owned()
}

/// Remove a guest with everything that belongs to it (pool membership, firewall file).
pub(crate) fn remove_guest(st: &mut SimState, vmid: u32) {
    st.guests.remove(&vmid);
    st.rrd.remove(&vmid);
    for pool in st.pools.values_mut() {
        pool.vms.remove(&vmid);
    }
    st.firewall.remove_guest(vmid);
    crate::access::remove_vm_access(st, vmid);
}

/// `DELETE /nodes/{node}/{qemu|lxc}/{vmid}`.
pub(crate) fn destroy(sh: &Arc<Shared>, r: &Req<'_>, kind: Kind) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let force = r.flag("force");
    let skiplock = r.flag("skiplock");
    {
        let st = sh.lock();
        let g = st.guest(kind, &node, vmid)?;
        if g.running && !(kind == Kind::Lxc && force) {
            return Err(ApiError::internal(match kind {
                Kind::Qemu => format!("VM {vmid} is running - destroy failed"),
                Kind::Lxc => format!("unable to destroy CT {vmid} - container is running"),
            }));
        }
    }
    let typ = match kind {
        Kind::Qemu => "qmdestroy",
        Kind::Lxc => "vzdestroy",
    };
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        typ,
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |upid| async move {
            {
                let mut st = sh2.lock();
                let linked = st.guests.values().any(|c| c.linked_base == Some(vmid));
                let g = st.guest_mut(kind, &node, vmid).map_err(|e| e.message)?;
                if !skiplock {
                    g.check_lock().map_err(|e| e.message)?;
                }
                if linked {
                    return Err(format!(
                        "base volume '{}' is still in use by linked cloned",
                        first_volume(g)
                    ));
                }
                power_off(g);
                g.config.insert("lock".into(), "destroyed".into());
                let vol = first_volume(g);
                st.tasks.log(
                    &upid,
                    format!(
                        "  Logical volume \"{}\" successfully removed.",
                        vol.split(':').nth(1).unwrap_or_default()
                    ),
                );
            }
            sh2.sleep(durations::DESTROY).await;
            let mut st = sh2.lock();
            remove_guest(&mut st, vmid);
            Ok(0)
        },
    );
    Ok(json!(upid))
}

/// Seconds an offline migration takes when only the config moves (shared disks).
const MIGRATE_CONFIG: f64 = 1.0;

/// `POST /nodes/{node}/qemu/{vmid}/migrate` (`qmigrate`): offline, or online for a
/// running guest with `online=1`. Local disks are copied to the target's `local-lvm` (an
/// offline migration always may; a live one needs `with-local-disks`), shared disks stay.
pub(crate) fn migrate(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let target = r
        .param("target")
        .ok_or_else(|| ApiError::param("target", "property is missing and it is not optional"))?
        .to_owned();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    if !sh.has_node(&target) {
        return Err(ApiError::internal(format!(
            "no such cluster node '{target}'"
        )));
    }
    let online = r.flag("online");
    let with_local_disks = r.flag("with-local-disks");
    let local_disks = {
        let st = sh.lock();
        let g = st.guest(Kind::Qemu, &node, vmid)?;
        g.check_lock()?;
        crate::state::storage_of(&first_volume(g)).is_some_and(|s| !sh.is_shared_storage(s))
    };
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        "qmigrate",
        &vmid.to_string(),
        r.caller,
        Vec::new(),
        move |upid| async move {
            {
                let mut st = sh2.lock();
                let target_online = st.node_online(&target);
                let g = st
                    .guest_mut(Kind::Qemu, &node, vmid)
                    .map_err(|e| e.message)?;
                g.check_lock().map_err(|e| e.message)?;
                if g.running && !online {
                    return Err("can't migrate running VM without --online".to_owned());
                }
                if g.running && local_disks && !with_local_disks {
                    return Err(format!(
                        "can't live migrate attached local disks without with-local-disks option ({})",
                        first_volume(g)
                    ));
                }
                if !target_online {
                    // The reference does not give this text; ssh to a dead node fails so.
                    return Err(format!(
                        "migration aborted: Can't connect to destination address '{target}' using public key"
                    ));
                }
                g.config.insert("lock".into(), "migrate".into());
                st.tasks.log(
                    &upid,
                    format!("starting migration of VM {vmid} to node '{target}'"),
                );
            }
            sh2.sleep(if local_disks {
                crate::clone::FULL
            } else {
                MIGRATE_CONFIG
            })
            .await;
            let mut st = sh2.lock();
            let g = st
                .guests
                .get_mut(&vmid)
                .ok_or_else(|| format!("VM {vmid} vanished during migration"))?;
            g.config.remove("lock");
            g.node.clone_from(&target);
            st.tasks.log(&upid, "migration finished successfully");
            Ok(0)
        },
    );
    Ok(json!(upid))
}
