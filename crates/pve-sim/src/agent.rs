//! The QEMU guest agent (`agent/ping`, `agent/network-get-interfaces`,
//! `agent/get-host-name`) and LXC `/interfaces`.
//!
//! A started VM's agent answers after 20 s (scaled); its DHCP IPv4 shows up 3 s later,
//! the IPv6 link-local (from the MAC) with the agent. A CT has no agent; its IPv4 shows
//! up 3 s after start. Errors come in PVE's order: not configured → not running →
//! agent not answering (which costs the worker the 3 s ping timeout).

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};
use crate::guest::{link_local, net_mac, net_option, Guest, Kind};
use crate::routing::Req;
use crate::state::Shared;

/// What the agent of a running VM reports.
struct AgentView {
    name: String,
    nics: Vec<(String, String)>,
    ipv4: Option<Ipv4Addr>,
}

/// `(interface name, lower-case MAC)` per `netX`; QEMU guests see `ens18`, `ens19`, …
fn guest_nics(g: &Guest) -> Vec<(String, String)> {
    g.nets()
        .into_iter()
        .filter_map(|(i, v)| {
            let mac = net_mac(g.kind, v)?.to_lowercase();
            let name = match g.kind {
                Kind::Qemu => format!("ens{}", 18 + i),
                Kind::Lxc => net_option(v, "name").map_or_else(|| format!("eth{i}"), str::to_owned),
            };
            Some((name, mac))
        })
        .collect()
}

/// The three checks of `assert_agent_available` + `qga_check_running`.
async fn agent(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<AgentView> {
    let vmid = r.vmid();
    let ready = {
        let st = sh.lock();
        let g = st.guest(Kind::Qemu, r.node(), vmid)?;
        if !g.agent_enabled() {
            return Err(ApiError::internal("No QEMU guest agent configured"));
        }
        if !g.running {
            return Err(ApiError::internal(format!("VM {vmid} is not running")));
        }
        let now = Instant::now();
        if g.agent_ready_at.is_some_and(|t| now >= t) {
            Some(AgentView {
                name: g.name().unwrap_or_default().to_owned(),
                nics: guest_nics(g),
                ipv4: g.ipv4.filter(|_| g.ipv4_ready_at.is_some_and(|t| now >= t)),
            })
        } else {
            None
        }
    };
    match ready {
        Some(view) => Ok(view),
        None => {
            // guest-ping times out after 3 s, holding the pvedaemon worker.
            sh.sleep(3.0).await;
            Err(ApiError::internal("QEMU guest agent is not running"))
        }
    }
}

/// `POST …/agent/ping`.
pub(crate) async fn ping(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    agent(sh, r).await?;
    Ok(json!({"result": {}}))
}

/// `GET …/agent/get-host-name` (the guest took its VM name as host name at boot).
pub(crate) async fn host_name(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let view = agent(sh, r).await?;
    Ok(json!({"result": {"host-name": view.name}}))
}

fn addr(ip: impl ToString, typ: &str, prefix: u8) -> Value {
    json!({"ip-address": ip.to_string(), "ip-address-type": typ, "prefix": prefix})
}

/// `GET …/agent/network-get-interfaces`.
pub(crate) async fn interfaces(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let view = agent(sh, r).await?;
    let mut out = vec![json!({
        "name": "lo",
        "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [addr("127.0.0.1", "ipv4", 8), addr("::1", "ipv6", 128)],
        "statistics": {"rx-bytes": 6480, "rx-packets": 84, "tx-bytes": 6480, "tx-packets": 84,
                       "rx-errs": 0, "rx-dropped": 0, "tx-errs": 0, "tx-dropped": 0},
    })];
    for (i, (name, mac)) in view.nics.iter().enumerate() {
        let mut addrs = Vec::new();
        // DHCP runs on the first NIC only.
        if let Some(ip) = view.ipv4.filter(|_| i == 0) {
            addrs.push(addr(ip, "ipv4", 16));
        }
        if let Some(ll) = link_local(mac) {
            addrs.push(addr(ll, "ipv6", 64));
        }
        out.push(json!({"name": name, "hardware-address": mac, "ip-addresses": addrs}));
    }
    Ok(json!({"result": out}))
}

/// `GET /nodes/{node}/lxc/{vmid}/interfaces` (`null` while stopped).
pub(crate) fn lxc_interfaces(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let g = st.guest(Kind::Lxc, r.node(), r.vmid())?;
    if !g.running {
        return Ok(Value::Null);
    }
    let now = Instant::now();
    let ipv4 = g.ipv4.filter(|_| g.ipv4_ready_at.is_some_and(|t| now >= t));
    let mut out = vec![json!({
        "name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
        "inet": "127.0.0.1/8", "inet6": "::1/128",
        "ip-addresses": [addr("127.0.0.1", "inet", 8), addr("::1", "inet6", 128)],
    })];
    for (i, (name, mac)) in guest_nics(g).into_iter().enumerate() {
        let mut item = serde_json::Map::new();
        item.insert("name".into(), json!(name));
        item.insert("hwaddr".into(), json!(mac));
        item.insert("hardware-address".into(), json!(mac));
        let mut addrs = Vec::new();
        if let Some(ip) = ipv4.filter(|_| i == 0) {
            item.insert("inet".into(), json!(format!("{ip}/16")));
            addrs.push(addr(ip, "inet", 16));
        }
        if let Some(ll) = link_local(&mac) {
            item.insert("inet6".into(), json!(format!("{ll}/64")));
            addrs.push(addr(ll, "inet6", 64));
        }
        item.insert("ip-addresses".into(), Value::Array(addrs));
        out.push(Value::Object(item));
    }
    Ok(Value::Array(out))
}
