//! Introspection outside the PVE path space (`/_sim/…`): state, request counts and the
//! reachability oracle. Never subject to faults or auth.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::firewall::{Host, Proto, Verdict};
use crate::state::{Shared, SimState};

/// The state as JSON: guests, pools, firewall, tasks and daemon load.
pub(crate) fn state_json(sh: &Shared) -> Value {
    let st = sh.lock();
    let guests: Vec<Value> = st
        .guests
        .values()
        .map(|g| {
            json!({
                "vmid": g.vmid, "type": g.kind.as_str(), "node": g.node, "name": g.name(),
                "status": if g.running { "running" } else { "stopped" },
                "template": g.is_template(), "lock": g.lock(), "pool": st.pool_of(g.vmid),
                "ipv4": g.ipv4.map(|i| i.to_string()), "linked_base": g.linked_base,
                "config": g.config.as_map(),
                "snapshots": g.snapshots.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "parent": g.parent,
            })
        })
        .collect();
    let pools: BTreeMap<&String, Value> = st
        .pools
        .iter()
        .map(|(n, p)| {
            (
                n,
                json!({"comment": p.comment, "vms": p.vms, "storage": p.storage}),
            )
        })
        .collect();
    let users: BTreeMap<&String, Value> = st
        .access
        .users
        .iter()
        .map(|(id, u)| {
            (
                id,
                json!({
                    "enable": u.enable, "expire": u.expire, "comment": u.comment,
                    "firstname": u.firstname, "lastname": u.lastname, "email": u.email,
                    "groups": u.groups, "has_password": u.password.is_some(),
                    "tokens": u.tokens.iter().map(|(tid, tk)| (tid.clone(), json!({
                        "privsep": tk.privsep, "expire": tk.expire, "comment": tk.comment,
                    }))).collect::<BTreeMap<String, Value>>(),
                }),
            )
        })
        .collect();
    let mut acl = Vec::new();
    for (path, entries) in &st.access.acl {
        for ((kind, ugid), roles) in entries {
            for (role, propagate) in roles {
                acl.push(json!({"path": path, "type": kind.as_str(), "ugid": ugid,
                    "roleid": role, "propagate": propagate}));
            }
        }
    }
    let consoles: Vec<Value> = st
        .tasks
        .all()
        .iter()
        .filter(|t| t.typ == "vncproxy" && t.end.is_none())
        .map(|t| json!({"upid": t.upid, "node": t.node, "vmid": t.id, "user": t.user, "tokenid": t.tokenid}))
        .collect();
    let groups: BTreeMap<&String, Value> = st
        .access
        .groups
        .iter()
        .map(|(g, grp)| (g, json!({"comment": grp.comment})))
        .collect();
    json!({
        "access": {
            "users": users,
            "groups": groups,
            "roles": st.access.roles,
            "acl": acl,
            "user_cfg_peak": st.user_cfg_peak,
            "user_cfg_writes": st.user_cfg_writes,
        },
        "consoles": consoles,
        "nodes": sh.cfg.nodes,
        "guests": guests,
        "pools": pools,
        "firewall": st.firewall.state(),
        "tasks": {"total": st.tasks.all().len(), "running": st.tasks.running()},
        "storage_clones": st.storage_clones,
        "backups": st.backups.iter().map(crate::guest::vzdump::Backup::to_json).collect::<Vec<_>>(),
        "daemon_peak": st.daemon_peak,
        "fault_rate": sh.faults.lock().unwrap_or_else(|e| e.into_inner()).rate(),
    })
}

/// `GET /_sim/state`.
pub(crate) async fn state(State(sh): State<Arc<Shared>>) -> Json<Value> {
    Json(state_json(&sh))
}

/// `GET /_sim/sdn`: the SDN configs (edited, running, applied) and the apply count.
pub(crate) async fn sdn(State(sh): State<Arc<Shared>>) -> Json<Value> {
    Json(sh.lock().sdn.to_json())
}

/// Request counts per `METHOD /template`.
pub(crate) fn requests_json(sh: &Shared) -> Value {
    json!(*sh.requests.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `GET /_sim/requests`.
pub(crate) async fn requests(State(sh): State<Arc<Shared>>) -> Json<Value> {
    Json(requests_json(&sh))
}

/// `DELETE /_sim/requests`: reset the counts.
pub(crate) async fn reset_requests(State(sh): State<Arc<Shared>>) -> StatusCode {
    sh.requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    StatusCode::NO_CONTENT
}

/// A reachability question: from a guest to a guest or an address.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ReachQuery {
    from: String,
    to: String,
    proto: Option<String>,
    port: Option<String>,
}

/// The firewall view of a guest, or why there is none.
fn guest_host(st: &SimState, vmid: u32) -> Result<Host, String> {
    let g = st
        .guests
        .get(&vmid)
        .ok_or_else(|| format!("guest {vmid} does not exist"))?;
    if !g.running {
        return Err(format!("guest {vmid} is not running"));
    }
    let ip = g
        .ipv4
        .ok_or_else(|| format!("guest {vmid} has no IPv4 address"))?;
    // link_down=1 on the NIC carrying the lease: the cable is pulled.
    if let Some((index, _)) = g
        .nets()
        .into_iter()
        .next()
        .filter(|(_, v)| crate::guest::net_option(v, "link_down") == Some("1"))
    {
        return Err(format!("guest {vmid}'s net{index} has link_down=1"));
    }
    Ok(Host {
        vmid: Some(vmid),
        ip: IpAddr::V4(ip),
        nics: g.nics(),
    })
}

/// Answer a reachability question; `Err` = bad question (400).
pub(crate) fn reach(
    sh: &Shared,
    from: &str,
    to: &str,
    proto: &str,
    port: Option<&str>,
) -> Result<Verdict, String> {
    let proto: Proto = proto.parse()?;
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("invalid port '{p}' (allowed: 1-65535)"))?,
        ),
    };
    if port.is_none() && proto != Proto::Icmp {
        return Err(format!("port is required for {proto}"));
    }
    let from_id: u32 = from
        .parse()
        .map_err(|_| format!("invalid 'from' '{from}' (allowed: a VMID)"))?;
    let st = sh.lock();
    let verdict = |allowed: bool, reason: String| Verdict { allowed, reason };
    let src = match guest_host(&st, from_id) {
        Ok(h) => h,
        Err(why) => return Ok(verdict(false, format!("not sent: {why}"))),
    };
    let dst = if let Ok(vmid) = to.parse::<u32>() {
        match guest_host(&st, vmid) {
            Ok(h) => h,
            Err(why) => return Ok(verdict(false, format!("not delivered: {why}"))),
        }
    } else {
        let ip: IpAddr = to
            .parse()
            .map_err(|_| format!("invalid 'to' '{to}' (allowed: a VMID or an IP address)"))?;
        let owner = st
            .guests
            .values()
            .find(|g| g.ipv4.map(IpAddr::V4) == Some(ip));
        match owner {
            Some(g) => match guest_host(&st, g.vmid) {
                Ok(h) => h,
                Err(why) => return Ok(verdict(false, format!("not delivered: {why}"))),
            },
            None => Host {
                vmid: None,
                ip,
                nics: Vec::new(),
            },
        }
    };
    // Layer 2: the NICs on the segment the two share (or that reach a routing guest);
    // the firewall then judges with those NICs' `firewall=` flags.
    let (mut src, mut dst) = (src, dst);
    let from_guest = st.guests.get(&from_id);
    match (from_guest, dst.vmid.and_then(|v| st.guests.get(&v))) {
        (Some(a), Some(b)) => match crate::sdn::segments::connect(&st, a, b) {
            Ok((ia, ib)) => {
                src.nics.retain(|n| n.index == ia);
                dst.nics.retain(|n| n.index == ib);
            }
            Err(why) => return Ok(verdict(false, format!("not delivered: {why}"))),
        },
        (Some(a), None) => match crate::sdn::segments::uplink(&st, a) {
            Ok(ia) => src.nics.retain(|n| n.index == ia),
            Err(why) => return Ok(verdict(false, format!("not sent: {why}"))),
        },
        _ => {}
    }
    Ok(st.firewall.reachability(&src, &dst, proto, port))
}

/// `GET /_sim/reachability?from=VMID&to=VMID_OR_IP&proto=tcp|udp|icmp&port=N`.
pub(crate) async fn reachability(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<ReachQuery>,
) -> Response {
    let proto = q.proto.as_deref().unwrap_or("tcp");
    match reach(&sh, &q.from, &q.to, proto, q.port.as_deref()) {
        Ok(v) => Json(json!({"allowed": v.allowed, "reason": v.reason})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}
