//! Software-defined networking (`/cluster/sdn`): zones, vnets and subnets as
//! `pve-network` keeps them.
//!
//! Three copies of the configuration exist, as on a real cluster:
//! - `config`: `/etc/pve/sdn/{zones,vnets,subnets}.cfg`, what every create/update/delete
//!   edits (the plain `GET` lists show it);
//! - `running`: `/etc/pve/sdn/.running-config`, written by `PUT /cluster/sdn` (the
//!   `running=1` lists; `pending=1` shows the difference as `state` and `pending`);
//! - `live`: what the nodes' networking runs, copied from `running` when the
//!   `reloadnetworkall` task of an apply finishes. Only `live` vnets exist as bridges
//!   (see [`segments`]).
//!
//! Only `simple` and `vlan` zones are modelled beyond their configuration.

pub(crate) mod api;
pub(crate) mod segments;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

/// One section of a `*.cfg` (without its id): `type` and the options.
pub(crate) type Obj = Map<String, Value>;

/// The three section configs of SDN.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cfg {
    pub zones: BTreeMap<String, Obj>,
    pub vnets: BTreeMap<String, Obj>,
    pub subnets: BTreeMap<String, Obj>,
}

/// Which section config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Zones,
    Vnets,
    Subnets,
}

impl Cfg {
    pub(crate) fn section(&self, s: Section) -> &BTreeMap<String, Obj> {
        match s {
            Section::Zones => &self.zones,
            Section::Vnets => &self.vnets,
            Section::Subnets => &self.subnets,
        }
    }

    /// As `SimHandle::sdn` and `/_sim/sdn` show it.
    pub(crate) fn to_json(&self) -> Value {
        json!({"zones": self.zones, "vnets": self.vnets, "subnets": self.subnets})
    }

    /// The subnets of vnet `vnet`, by id.
    pub(crate) fn subnets_of<'a>(
        &'a self,
        vnet: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Obj)> + 'a {
        self.subnets
            .iter()
            .filter(move |(_, o)| o.get("vnet").and_then(Value::as_str) == Some(vnet))
    }
}

/// The SDN state of the cluster.
#[derive(Debug, Default)]
pub(crate) struct Sdn {
    pub config: Cfg,
    pub running: Cfg,
    /// `version` of the running config (bumped by every apply).
    pub version: u64,
    /// Only ever changed together with a larger `live_version`: the guests' network view
    /// is recomputed when `live_version` moves (see `SimState::net_key`).
    pub live: Cfg,
    /// The running `version` that `live` is.
    pub live_version: u64,
    /// The global lock token (`/etc/pve/sdn/.lock`).
    pub lock: Option<String>,
    /// Applies (`PUT /cluster/sdn`) so far.
    pub applies: u64,
    /// Leases handed out from subnets' DHCP ranges: `(subnet id, MAC)` → address.
    pub leases: BTreeMap<(String, String), Ipv4Addr>,
    /// Reload tasks whose work has finished (the `live` copy is that recent).
    pub reloads_done: u64,
    tokens: u64,
}

impl Sdn {
    /// A fresh lock token (PVE makes a UUID v7; here a deterministic UUID-shaped one).
    pub(crate) fn new_token(&mut self, seed: u64) -> String {
        self.tokens += 1;
        let mut h = Sha1::new();
        h.update(seed.to_le_bytes());
        h.update(self.tokens.to_le_bytes());
        let d = hex::encode(h.finalize());
        format!(
            "019{}-{}-7{}-8{}-{}",
            &d[0..5],
            &d[5..9],
            &d[9..12],
            &d[12..15],
            &d[15..27]
        )
    }

    /// `has_pending_changes`: does any object differ between config and running?
    pub(crate) fn has_pending(&self) -> bool {
        [Section::Zones, Section::Vnets, Section::Subnets]
            .into_iter()
            .any(|s| {
                pending_config(self.running.section(s), self.config.section(s))
                    .values()
                    .any(|o| o.contains_key("pending"))
            })
    }

    /// As `SimHandle::sdn` and `/_sim/sdn` show it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "applies": self.applies,
            "version": self.version,
            "locked": self.lock.is_some(),
            "pending": self.has_pending(),
            "config": self.config.to_json(),
            "running": self.running.to_json(),
            "applied": self.live.to_json(),
        })
    }
}

/// The digest of a section config (SHA-1 of its content, as SectionConfig's digest is
/// of the file).
pub(crate) fn digest(section: &BTreeMap<String, Obj>) -> String {
    let mut h = Sha1::new();
    h.update(serde_json::to_vec(section).unwrap_or_default());
    hex::encode(h.finalize())
}

/// `PVE::Network::SDN::pending_config`: the running objects with `state`
/// (`new`/`changed`/`deleted`) and `pending` (the values that differ, `deleted` for
/// removed keys).
pub(crate) fn pending_config(
    running: &BTreeMap<String, Obj>,
    config: &BTreeMap<String, Obj>,
) -> BTreeMap<String, Obj> {
    let mut out: BTreeMap<String, Obj> = BTreeMap::new();
    let empty = Obj::new();
    for (id, robj) in running {
        let cobj = config.get(id).unwrap_or(&empty);
        let p = out.entry(id.clone()).or_default();
        for (k, rv) in robj {
            p.insert(k.clone(), rv.clone());
            if cobj.is_empty() {
                p.insert("state".into(), "deleted".into());
            } else if !cobj.contains_key(k) {
                pending_mut(p).insert(k.clone(), "deleted".into());
                p.insert("state".into(), "changed".into());
            } else if cobj.get(k) != Some(rv) {
                p.insert("state".into(), "changed".into());
            }
        }
        if p.contains_key("state") && !p.contains_key("pending") {
            p.insert("pending".into(), json!({}));
        }
    }
    for (id, cobj) in config {
        let robj = running.get(id).unwrap_or(&empty);
        let p = out.entry(id.clone()).or_default();
        for (k, cv) in cobj {
            let rv = robj.get(k);
            if k == "type" || k == "vnet" {
                p.insert(k.clone(), cv.clone());
            } else if rv != Some(cv) {
                pending_mut(p).insert(k.clone(), cv.clone());
            }
            if robj.is_empty() {
                p.insert("state".into(), "new".into());
            } else if rv.is_none() {
                p.insert("state".into(), "changed".into());
            }
        }
        if p.contains_key("state") && !p.contains_key("pending") {
            p.insert("pending".into(), json!({}));
        }
    }
    out
}

fn pending_mut(p: &mut Obj) -> &mut Obj {
    let v = p.entry("pending").or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

/// A zone or vnet id (`pve-sdn-zone-id`/`pve-sdn-vnet-id`: pattern
/// `[a-zA-Z][a-zA-Z0-9]*[a-zA-Z0-9]`, 2 to 8 characters): JSONSchema's message.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    let n = id.chars().count();
    if n > 8 {
        return Err("value may only be 8 characters long".into());
    }
    if n < 2 {
        return Err("value must be at least 2 characters long".into());
    }
    let mut cs = id.chars();
    let first_ok = cs.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("value does not match the regex pattern".into());
    }
    Ok(())
}

/// An IPv4 CIDR `a.b.c.d/p`.
pub(crate) fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, p) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    (p <= 32).then_some((ip, p))
}

/// The network address of `ip/prefix`.
pub(crate) fn network_of(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(u32::from(ip) & mask)
}

/// Is `ip` inside `net/prefix`?
pub(crate) fn in_net(net: Ipv4Addr, prefix: u8, ip: Ipv4Addr) -> bool {
    network_of(ip, prefix) == network_of(net, prefix)
}

/// `start-address=A,end-address=B` of a `dhcp-range` item.
pub(crate) fn parse_range(s: &str) -> Option<(String, String)> {
    let mut start = None;
    let mut end = None;
    for part in s.split(',') {
        let (k, v) = part.split_once('=')?;
        match k.trim() {
            "start-address" => start = Some(v.trim().to_owned()),
            "end-address" => end = Some(v.trim().to_owned()),
            _ => return None,
        }
    }
    Some((start?, end?))
}

/// The DHCP ranges of a subnet object, parsed.
pub(crate) fn ranges(o: &Obj) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    o.get("dhcp-range")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(parse_range)
                .filter_map(|(s, e)| Some((s.parse().ok()?, e.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Obj {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn ids_follow_the_pve_sdn_id_pattern() {
        assert!(check_id("zlab").is_ok());
        assert!(check_id("s07a1").is_ok());
        assert_eq!(
            check_id("student07").unwrap_err(),
            "value may only be 8 characters long"
        );
        assert_eq!(
            check_id("7lab").unwrap_err(),
            "value does not match the regex pattern"
        );
        assert_eq!(
            check_id("a-b").unwrap_err(),
            "value does not match the regex pattern"
        );
        assert_eq!(
            check_id("a").unwrap_err(),
            "value must be at least 2 characters long"
        );
    }

    #[test]
    fn pending_config_marks_new_changed_and_deleted() {
        let running: BTreeMap<String, Obj> = [
            (
                "a".to_owned(),
                obj(json!({"type": "vnet", "zone": "z", "tag": 5})),
            ),
            ("b".to_owned(), obj(json!({"type": "vnet", "zone": "z"}))),
            ("c".to_owned(), obj(json!({"type": "vnet", "zone": "z"}))),
        ]
        .into();
        let config: BTreeMap<String, Obj> = [
            (
                "a".to_owned(),
                obj(json!({"type": "vnet", "zone": "z", "tag": 6})),
            ),
            ("c".to_owned(), obj(json!({"type": "vnet", "zone": "z"}))),
            ("d".to_owned(), obj(json!({"type": "vnet", "zone": "z"}))),
        ]
        .into();
        let p = pending_config(&running, &config);
        assert_eq!(p["a"]["state"], "changed");
        assert_eq!(p["a"]["pending"]["tag"], 6);
        assert_eq!(p["a"]["tag"], 5);
        assert_eq!(p["b"]["state"], "deleted");
        assert!(!p["c"].contains_key("state"));
        assert!(!p["c"].contains_key("pending"));
        assert_eq!(p["d"]["state"], "new");
        assert_eq!(p["d"]["pending"]["zone"], "z");
        assert_eq!(p["d"]["type"], "vnet");
    }
}
