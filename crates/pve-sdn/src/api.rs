//! The SDN API: zones, vnets, subnets, the lock and the apply.

use std::fmt;
use std::time::Duration;

use pve_auth::{api_path, Params, PveClient};
use pve_vm::{TaskStatus, Upid, VmApi};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ids::{Cidr, VnetId, ZoneId};

/// How an object differs from the running (applied) configuration, in a listing with
/// `pending=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingState {
    /// Created, not yet applied.
    New,
    /// Changed, not yet applied.
    Changed,
    /// Deleted, not yet applied (still running).
    Deleted,
    /// A state a newer server may name.
    Other(String),
}

impl PendingState {
    fn parse(s: &str) -> Self {
        match s {
            "new" => PendingState::New,
            "changed" => PendingState::Changed,
            "deleted" => PendingState::Deleted,
            other => PendingState::Other(other.to_owned()),
        }
    }
}

/// The kind of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneType {
    /// `simple`: bridges of one node, no VLAN.
    Simple,
    /// `vlan`: VLAN tags on a bridge.
    Vlan,
    /// `qinq`, `vxlan`, `evpn`, `faucet` or a type a newer server may name.
    Other(String),
}

impl ZoneType {
    /// PVE's name of it.
    pub fn as_str(&self) -> &str {
        match self {
            ZoneType::Simple => "simple",
            ZoneType::Vlan => "vlan",
            ZoneType::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "simple" => ZoneType::Simple,
            "vlan" => ZoneType::Vlan,
            other => ZoneType::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ZoneType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads one listed object as it will be once applied: the running values with the
/// `pending` ones laid over them (a pending value `"deleted"` removes the key), and its
/// pending state.
fn effective(mut raw: Map<String, Value>) -> (Map<String, Value>, Option<PendingState>) {
    let state = raw
        .remove("state")
        .and_then(|s| s.as_str().map(PendingState::parse));
    if let Some(Value::Object(pending)) = raw.remove("pending") {
        for (k, v) in pending {
            if v.as_str() == Some("deleted") {
                raw.remove(&k);
            } else {
                raw.insert(k, v);
            }
        }
    }
    (raw, state)
}

fn decode<T: DeserializeOwned>(what: &str, raw: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(raw)).map_err(|e| Error::Inconsistent {
        object: what.to_owned(),
        message: format!("cannot read it: {e}"),
    })
}

#[derive(Deserialize)]
struct RawZone {
    zone: ZoneId,
    #[serde(
        rename = "type",
        default,
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    kind: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    bridge: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    dhcp: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    ipam: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    nodes: Option<String>,
}

/// A zone as listed (with `pending=1`: as it will be once applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Its id.
    pub zone: ZoneId,
    /// Its type.
    pub kind: ZoneType,
    /// The bridge of a `vlan` zone.
    pub bridge: Option<String>,
    /// The DHCP backend (`dnsmasq`).
    pub dhcp: Option<String>,
    /// The IPAM (`pve`).
    pub ipam: Option<String>,
    /// The nodes it is limited to.
    pub nodes: Option<String>,
    /// Not yet applied, when listed with `pending=1`.
    pub state: Option<PendingState>,
}

impl Zone {
    fn read(raw: Map<String, Value>) -> Result<Self> {
        let (raw, state) = effective(raw);
        let r: RawZone = decode("SDN zone", raw)?;
        Ok(Zone {
            zone: r.zone,
            kind: ZoneType::parse(r.kind.as_deref().unwrap_or("")),
            bridge: r.bridge,
            dhcp: r.dhcp,
            ipam: r.ipam,
            nodes: r.nodes,
            state,
        })
    }
}

#[derive(Deserialize)]
struct RawVnet {
    vnet: VnetId,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    zone: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    alias: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u32")]
    tag: Option<u32>,
    #[serde(
        rename = "isolate-ports",
        default,
        deserialize_with = "pve_auth::perl::opt_bool"
    )]
    isolate_ports: Option<bool>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_bool")]
    vlanaware: Option<bool>,
}

/// A vnet as listed (with `pending=1`: as it will be once applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnet {
    /// Its id, the bridge name guests are plugged into.
    pub vnet: VnetId,
    /// Its zone.
    pub zone: Option<String>,
    /// Its alias (a free-text name).
    pub alias: Option<String>,
    /// VLAN tag (vlan, qinq zones) or VNI (vxlan, evpn).
    pub tag: Option<u32>,
    /// Every port of the bridge isolated from the others.
    pub isolate_ports: bool,
    /// VLANs pass through.
    pub vlanaware: bool,
    /// Not yet applied, when listed with `pending=1`.
    pub state: Option<PendingState>,
}

impl Vnet {
    fn read(raw: Map<String, Value>) -> Result<Self> {
        let (raw, state) = effective(raw);
        let r: RawVnet = decode("SDN vnet", raw)?;
        Ok(Vnet {
            vnet: r.vnet,
            zone: r.zone,
            alias: r.alias,
            tag: r.tag,
            isolate_ports: r.isolate_ports.unwrap_or(false),
            vlanaware: r.vlanaware.unwrap_or(false),
            state,
        })
    }
}

#[derive(Deserialize)]
struct RawSubnet {
    #[serde(deserialize_with = "pve_auth::perl::string")]
    subnet: String,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    cidr: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    gateway: Option<String>,
    #[serde(default)]
    snat: Option<Value>,
    #[serde(rename = "dhcp-range", default)]
    dhcp_range: Option<Value>,
}

/// One DHCP range of a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpRange {
    /// First address handed out.
    pub start: std::net::Ipv4Addr,
    /// Last address handed out.
    pub end: std::net::Ipv4Addr,
}

impl DhcpRange {
    /// The wire form: `start-address=…,end-address=…`.
    pub fn to_param(&self) -> String {
        format!("start-address={},end-address={}", self.start, self.end)
    }

    /// Reads the wire form or the object form PVE lists.
    fn read(v: &Value) -> Option<Self> {
        let (mut start, mut end) = (None, None);
        match v {
            Value::String(s) => {
                for kv in s.split(',') {
                    match kv.split_once('=') {
                        Some(("start-address", a)) => start = a.trim().parse().ok(),
                        Some(("end-address", a)) => end = a.trim().parse().ok(),
                        _ => {}
                    }
                }
            }
            Value::Object(o) => {
                start = o.get("start-address")?.as_str()?.parse().ok();
                end = o.get("end-address")?.as_str()?.parse().ok();
            }
            _ => {}
        }
        Some(DhcpRange {
            start: start?,
            end: end?,
        })
    }
}

/// A subnet as listed (with `pending=1`: as it will be once applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Its id, `<zone>-<address>-<prefix>` (the path segment to delete it).
    pub id: String,
    /// The network.
    pub cidr: Cidr,
    /// Its gateway (set on the vnet's bridge in layer-3 zones: the node routes).
    pub gateway: Option<String>,
    /// Masquerade out of it.
    pub snat: bool,
    /// Its DHCP ranges.
    pub dhcp_range: Vec<DhcpRange>,
    /// Not yet applied, when listed with `pending=1`.
    pub state: Option<PendingState>,
}

impl Subnet {
    fn read(raw: Map<String, Value>) -> Result<Self> {
        let (raw, state) = effective(raw);
        let r: RawSubnet = decode("SDN subnet", raw)?;
        let cidr = match r.cidr.as_deref().map(str::parse::<Cidr>) {
            Some(Ok(c)) => c,
            _ => Cidr::from_subnet_id(&r.subnet)
                .map(|(_, c)| c)
                .ok_or_else(|| Error::Inconsistent {
                    object: format!("SDN subnet {}", r.subnet),
                    message: "its id is not <zone>-<address>-<prefix> and it has no cidr".into(),
                })?,
        };
        let dhcp_range = match &r.dhcp_range {
            Some(Value::Array(a)) => a.iter().filter_map(DhcpRange::read).collect(),
            Some(v) => DhcpRange::read(v).into_iter().collect(),
            None => Vec::new(),
        };
        let snat = matches!(&r.snat, Some(Value::Bool(true)))
            || r.snat.as_ref().and_then(Value::as_u64) == Some(1)
            || r.snat.as_ref().and_then(Value::as_str) == Some("1");
        Ok(Subnet {
            id: r.subnet,
            cidr,
            gateway: r.gateway,
            snat,
            dhcp_range,
            state,
        })
    }
}

/// A new zone (`POST /cluster/sdn/zones`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewZone {
    /// Its id.
    pub zone: ZoneId,
    /// Its type.
    pub kind: ZoneType,
    /// The bridge (required by `vlan` zones, refused by `simple` ones).
    pub bridge: Option<String>,
    /// `dnsmasq` to hand out addresses from subnets' DHCP ranges (`simple` zones).
    pub dhcp: bool,
    /// The IPAM (`pve`), needed with DHCP; `None`: PVE's default.
    pub ipam: Option<String>,
}

impl NewZone {
    /// A `simple` zone, without DHCP.
    pub fn simple(zone: ZoneId) -> Self {
        Self {
            zone,
            kind: ZoneType::Simple,
            bridge: None,
            dhcp: false,
            ipam: None,
        }
    }

    /// A `vlan` zone on `bridge`.
    pub fn vlan(zone: ZoneId, bridge: impl Into<String>) -> Self {
        Self {
            zone,
            kind: ZoneType::Vlan,
            bridge: Some(bridge.into()),
            dhcp: false,
            ipam: None,
        }
    }

    fn params(&self) -> Result<Params> {
        match (&self.kind, &self.bridge) {
            (ZoneType::Vlan, None) => {
                return Err(Error::invalid(
                    "bridge",
                    "",
                    format!("zone {}: a vlan zone needs the bridge it tags", self.zone),
                ))
            }
            (ZoneType::Simple, Some(b)) => {
                return Err(Error::invalid(
                    "bridge",
                    b.clone(),
                    format!("zone {}: a simple zone has no bridge", self.zone),
                ))
            }
            _ => {}
        }
        Ok(Params::new()
            .with("zone", &self.zone)
            .with("type", self.kind.as_str())
            .opt("bridge", self.bridge.as_deref())
            .opt("dhcp", self.dhcp.then_some("dnsmasq"))
            .opt("ipam", self.ipam.as_deref()))
    }
}

/// A new vnet (`POST /cluster/sdn/vnets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVnet {
    /// Its id (the bridge name).
    pub vnet: VnetId,
    /// Its zone.
    pub zone: ZoneId,
    /// VLAN tag or VNI (vlan, qinq, vxlan, evpn zones).
    pub tag: Option<u32>,
    /// A free-text name (at most 256 characters).
    pub alias: Option<String>,
    /// Isolate every port of the bridge from the others.
    pub isolate_ports: bool,
}

impl NewVnet {
    /// A vnet in `zone` without tag or alias.
    pub fn new(vnet: VnetId, zone: ZoneId) -> Self {
        Self {
            vnet,
            zone,
            tag: None,
            alias: None,
            isolate_ports: false,
        }
    }

    fn params(&self) -> Result<Params> {
        if let Some(a) = &self.alias {
            check_alias(a)?;
        }
        Ok(Params::new()
            .with("vnet", &self.vnet)
            .with("zone", &self.zone)
            .opt("tag", self.tag)
            .opt("alias", self.alias.as_deref())
            .opt("isolate-ports", self.isolate_ports.then_some(true)))
    }
}

/// The alias pattern of the schema: `[()-_.\w\d\s]{0,256}`.
fn check_alias(a: &str) -> Result<()> {
    let ok = a.chars().count() <= 256
        && a.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || ('('..='_').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "alias",
            a,
            "at most 256 letters, digits, spaces and ()*+,-./:;<=>?@[\\]^_",
        ))
    }
}

/// A change of a vnet (`PUT /cluster/sdn/vnets/{vnet}`): `None` leaves a setting as it
/// is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VnetUpdate {
    /// Move it to another zone.
    pub zone: Option<ZoneId>,
    /// New tag.
    pub tag: Option<u32>,
    /// New alias.
    pub alias: Option<String>,
    /// Settings to remove (`tag`, `alias`, …).
    pub delete: Vec<String>,
}

/// A new subnet (`POST /cluster/sdn/vnets/{vnet}/subnets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubnet {
    /// The network.
    pub cidr: Cidr,
    /// The gateway: `None` keeps the node from routing into (and between) subnets.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Masquerade out of it.
    pub snat: bool,
    /// DHCP ranges (zones with `dhcp=dnsmasq`).
    pub dhcp_range: Vec<DhcpRange>,
}

impl NewSubnet {
    /// A subnet without gateway, SNAT or DHCP.
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            gateway: None,
            snat: false,
            dhcp_range: Vec::new(),
        }
    }
}

/// The token of the SDN lock (`POST /cluster/sdn/lock`): every change while it is held
/// carries it. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    /// A token read elsewhere.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(***)")
    }
}

/// The SDN API over a [`PveClient`]. Cheap to clone.
///
/// Changes stay pending until [`Sdn::apply`], which reloads the network of every node:
/// make all of a batch's changes under one [`Sdn::lock`], passing its token to each, and
/// apply once.
#[derive(Debug, Clone)]
pub struct Sdn {
    vm: VmApi,
}

fn token_params(token: Option<&LockToken>) -> Params {
    Params::new().opt("lock-token", token.map(LockToken::as_str))
}

fn with_token(mut p: Params, token: Option<&LockToken>) -> Params {
    if let Some(t) = token {
        p.insert("lock-token", t.as_str());
    }
    p
}

fn listing(pending: bool) -> Params {
    Params::new().opt("pending", pending.then_some(true))
}

impl Sdn {
    /// Over `client`, waiting for the apply task with `pve-vm`'s default timing.
    pub fn new(client: PveClient) -> Self {
        Self {
            vm: VmApi::new(client),
        }
    }

    /// Over a `VmApi`: its client, and its timing for waiting on the apply task.
    pub fn with_vm_api(vm: VmApi) -> Self {
        Self { vm }
    }

    /// The underlying client.
    pub fn client(&self) -> &PveClient {
        self.vm.client()
    }

    async fn list<T>(
        &self,
        path: &str,
        pending: bool,
        read: fn(Map<String, Value>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let raw: Vec<Map<String, Value>> = self.client().get(path, &listing(pending)).await?;
        raw.into_iter().map(read).collect()
    }

    async fn change(&self, method: pve_auth::Method, path: &str, params: Params) -> Result<()> {
        let _: Value = self.client().request(method, path, &params).await?;
        Ok(())
    }

    /// Every zone (`GET /cluster/sdn/zones`); with `pending`, as they will be once
    /// applied, each with its [`PendingState`].
    pub async fn zones(&self, pending: bool) -> Result<Vec<Zone>> {
        self.list("/cluster/sdn/zones", pending, Zone::read).await
    }

    /// One zone.
    pub async fn zone(&self, zone: &ZoneId, pending: bool) -> Result<Zone> {
        let path = api_path(&["cluster", "sdn", "zones", zone.as_str()]);
        Zone::read(self.client().get(&path, &listing(pending)).await?)
    }

    /// Creates a zone (pending until applied).
    pub async fn create_zone(&self, zone: &NewZone, token: Option<&LockToken>) -> Result<()> {
        let params = with_token(zone.params()?, token);
        self.change(pve_auth::Method::POST, "/cluster/sdn/zones", params)
            .await
    }

    /// Deletes a zone (pending until applied); PVE refuses while vnets are in it.
    pub async fn delete_zone(&self, zone: &ZoneId, token: Option<&LockToken>) -> Result<()> {
        let path = api_path(&["cluster", "sdn", "zones", zone.as_str()]);
        self.change(pve_auth::Method::DELETE, &path, token_params(token))
            .await
    }

    /// Every vnet (`GET /cluster/sdn/vnets`); with `pending`, as they will be once applied.
    pub async fn vnets(&self, pending: bool) -> Result<Vec<Vnet>> {
        self.list("/cluster/sdn/vnets", pending, Vnet::read).await
    }

    /// One vnet.
    pub async fn vnet(&self, vnet: &VnetId, pending: bool) -> Result<Vnet> {
        let path = api_path(&["cluster", "sdn", "vnets", vnet.as_str()]);
        Vnet::read(self.client().get(&path, &listing(pending)).await?)
    }

    /// Creates a vnet (pending until applied).
    pub async fn create_vnet(&self, vnet: &NewVnet, token: Option<&LockToken>) -> Result<()> {
        let params = with_token(vnet.params()?, token);
        self.change(pve_auth::Method::POST, "/cluster/sdn/vnets", params)
            .await
    }

    /// Changes a vnet (pending until applied).
    pub async fn update_vnet(
        &self,
        vnet: &VnetId,
        update: &VnetUpdate,
        token: Option<&LockToken>,
    ) -> Result<()> {
        if let Some(a) = &update.alias {
            check_alias(a)?;
        }
        let delete = (!update.delete.is_empty()).then(|| update.delete.join(","));
        let params = Params::new()
            .opt("zone", update.zone.as_ref())
            .opt("tag", update.tag)
            .opt("alias", update.alias.as_deref())
            .opt("delete", delete);
        let path = api_path(&["cluster", "sdn", "vnets", vnet.as_str()]);
        self.change(pve_auth::Method::PUT, &path, with_token(params, token))
            .await
    }

    /// Deletes a vnet (pending until applied); PVE refuses while it has subnets.
    pub async fn delete_vnet(&self, vnet: &VnetId, token: Option<&LockToken>) -> Result<()> {
        let path = api_path(&["cluster", "sdn", "vnets", vnet.as_str()]);
        self.change(pve_auth::Method::DELETE, &path, token_params(token))
            .await
    }

    /// The subnets of a vnet; with `pending`, as they will be once applied.
    pub async fn subnets(&self, vnet: &VnetId, pending: bool) -> Result<Vec<Subnet>> {
        let path = api_path(&["cluster", "sdn", "vnets", vnet.as_str(), "subnets"]);
        self.list(&path, pending, Subnet::read).await
    }

    /// Creates a subnet of a vnet (pending until applied); its id will be
    /// [`Cidr::subnet_id`] of the vnet's zone.
    pub async fn create_subnet(
        &self,
        vnet: &VnetId,
        subnet: &NewSubnet,
        token: Option<&LockToken>,
    ) -> Result<()> {
        if let Some(gw) = subnet.gateway {
            if !contains(&subnet.cidr, gw) {
                return Err(Error::invalid(
                    "gateway",
                    gw.to_string(),
                    format!("an address inside {}", subnet.cidr),
                ));
            }
        }
        let mut params = Params::new()
            .with("subnet", subnet.cidr.to_string())
            .with("type", "subnet")
            .opt("gateway", subnet.gateway.map(|g| g.to_string()))
            .opt("snat", subnet.snat.then_some(true));
        for r in &subnet.dhcp_range {
            if !contains(&subnet.cidr, r.start) || !contains(&subnet.cidr, r.end) || r.start > r.end
            {
                return Err(Error::invalid(
                    "dhcp-range",
                    r.to_param(),
                    format!("a range of addresses inside {}, first ≤ last", subnet.cidr),
                ));
            }
            params.append("dhcp-range", r.to_param());
        }
        let path = api_path(&["cluster", "sdn", "vnets", vnet.as_str(), "subnets"]);
        self.change(pve_auth::Method::POST, &path, with_token(params, token))
            .await
    }

    /// Deletes a subnet by its id (`<zone>-<address>-<prefix>`, [`Subnet::id`]).
    pub async fn delete_subnet(
        &self,
        vnet: &VnetId,
        subnet_id: &str,
        token: Option<&LockToken>,
    ) -> Result<()> {
        let path = api_path(&[
            "cluster",
            "sdn",
            "vnets",
            vnet.as_str(),
            "subnets",
            subnet_id,
        ]);
        self.change(pve_auth::Method::DELETE, &path, token_params(token))
            .await
    }

    /// Takes the SDN lock (`POST /cluster/sdn/lock`) and answers its token.
    /// `allow_pending`: take it even though changes are pending (they will be applied
    /// with this batch's).
    pub async fn lock(&self, allow_pending: bool) -> Result<LockToken> {
        let params = Params::new().opt("allow-pending", allow_pending.then_some(true));
        let token: String = self.client().post("/cluster/sdn/lock", &params).await?;
        Ok(LockToken(token))
    }

    /// Releases the lock without applying (`DELETE /cluster/sdn/lock`).
    pub async fn unlock(&self, token: &LockToken) -> Result<()> {
        self.change(
            pve_auth::Method::DELETE,
            "/cluster/sdn/lock",
            token_params(Some(token)),
        )
        .await
    }

    /// Applies every pending change (`PUT /cluster/sdn` with the token and
    /// `release-lock=1`), waits up to `timeout` for the task and answers its status. The
    /// lock is released when the apply succeeds.
    pub async fn apply(&self, token: &LockToken, timeout: Duration) -> Result<TaskStatus> {
        let params = token_params(Some(token)).with("release-lock", true);
        let upid: Upid = self.client().put("/cluster/sdn", &params).await?;
        tracing::info!(%upid, "SDN apply");
        self.vm.wait_task(&upid, timeout).await.map_err(Error::Task)
    }
}

fn contains(net: &Cidr, a: std::net::Ipv4Addr) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix()))
        .unwrap_or(0);
    a.to_bits() & mask == net.addr().to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_pending_listing_reads_as_it_will_be_once_applied() {
        let v = Vnet::read(obj(json!({
            "vnet": "va", "type": "vnet", "state": "new",
            "pending": {"zone": "z1", "alias": "labctl x a lan", "tag": "2001"}
        })))
        .unwrap();
        assert_eq!(v.zone.as_deref(), Some("z1"));
        assert_eq!(v.tag, Some(2001));
        assert_eq!(v.state, Some(PendingState::New));
        let v = Vnet::read(obj(json!({
            "vnet": "va", "zone": "z1", "alias": "old", "state": "changed",
            "pending": {"alias": "deleted"}
        })))
        .unwrap();
        assert_eq!(v.alias, None);
        assert_eq!(v.state, Some(PendingState::Changed));
        let v = Vnet::read(obj(json!({"vnet": "va", "zone": "z1"}))).unwrap();
        assert_eq!(v.state, None);
    }

    #[test]
    fn subnets_read_ids_and_both_range_forms() {
        let s = Subnet::read(obj(json!({
            "subnet": "z1-10.1.2.0-24", "type": "subnet", "vnet": "va",
            "dhcp-range": [{"start-address": "10.1.2.10", "end-address": "10.1.2.200"}]
        })))
        .unwrap();
        assert_eq!(s.cidr.to_string(), "10.1.2.0/24");
        assert_eq!(s.dhcp_range[0].end.to_string(), "10.1.2.200");
        let s = Subnet::read(obj(json!({
            "subnet": "z1-10.1.2.0-24", "cidr": "10.1.2.0/24", "snat": 1,
            "dhcp-range": ["start-address=10.1.2.10,end-address=10.1.2.20"]
        })))
        .unwrap();
        assert!(s.snat);
        assert_eq!(s.dhcp_range[0].start.to_string(), "10.1.2.10");
        assert!(Subnet::read(obj(json!({"subnet": "garbage"}))).is_err());
    }

    #[test]
    fn aliases_follow_the_schema() {
        assert!(check_alias("labctl exam1 stud-01 lan").is_ok());
        assert!(check_alias("a\"b").is_err());
        assert!(check_alias(&"a".repeat(257)).is_err());
    }

    #[test]
    fn containment_of_addresses() {
        let c: Cidr = "10.1.2.0/24".parse().unwrap();
        assert!(contains(&c, "10.1.2.200".parse().unwrap()));
        assert!(!contains(&c, "10.1.3.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(contains(&all, "10.1.3.1".parse().unwrap()));
    }
}
