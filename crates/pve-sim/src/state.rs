//! The simulated cluster: settings, the mutable state behind one lock, and the initial
//! inventory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::access::{Access, User, ROOT};
use crate::auth::Keys;
use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::firewall::Firewall;
use crate::guest::{random_mac, random_uuid, Guest, Kind, NetEpoch};
use crate::tasks::TaskTable;
use crate::Secret;

/// `Configuration file 'nodes/<node>/qemu-server/<vmid>.conf' does not exist`.
pub(crate) fn missing_config(kind: Kind, node: &str, vmid: u32) -> ApiError {
    ApiError::internal(format!(
        "Configuration file '{}' does not exist",
        Guest::config_path(kind, node, vmid)
    ))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// `user@realm`.
    pub user: String,
    /// The token id (after `!`) when authenticated with an API token.
    pub tokenid: Option<String>,
}

impl Caller {
    /// The user field of a UPID (`lab@pve!runner` for tokens).
    pub(crate) fn upid_user(&self) -> String {
        match &self.tokenid {
            Some(t) => format!("{}!{t}", self.user),
            None => self.user.clone(),
        }
    }
}

/// `--token USER@REALM!ID=SECRET`.
#[derive(Debug, Clone)]
pub(crate) struct TokenSpec {
    pub user: String,
    pub id: String,
    pub secret: Secret,
}

/// Immutable settings of one simulator.
#[derive(Debug)]
pub(crate) struct Settings {
    pub nodes: Vec<String>,
    pub user: String,
    pub password: Secret,
    pub token: Option<TokenSpec>,
    /// Base32 TOTP secret (RFC 6238) of `user`; `None` = no TFA.
    pub totp: Option<Secret>,
    pub seed: u64,
    pub time_scale: f64,
    /// SHA-256 fingerprint of the node certificate (shown in `/nodes`).
    pub fingerprint: String,
    pub ticket_lifetime: u64,
    /// The node certificate (PEM), as `vncproxy` returns it.
    pub cert_pem: String,
    /// Physical memory of every node (bytes).
    pub node_memory: u64,
    /// CPU threads of every node (`maxcpu`).
    pub node_cpus: u32,
    /// A storage present on every node with `shared: 1` (e.g. `rbd`, `nfs`), if any.
    pub shared_storage: Option<String>,
    /// `false`: the nodes' `local-lvm` is thick LVM (`plugintype` `lvm`), where PVE cannot
    /// make linked clones.
    pub linked_clones: bool,
}

/// Memory the host itself uses on every node (bytes): what a node reports as `mem` with
/// no guest running.
pub(crate) const HOST_MEMORY: u64 = 2 * 1024 * 1024 * 1024;

/// Everything shared by the request handlers and the simulated workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Settings,
    pub keys: Keys,
    state: Mutex<SimState>,
    /// pvedaemon workers per node (3 each).
    pub daemons: BTreeMap<String, Arc<Semaphore>>,
    pub faults: Mutex<Faults>,
    /// Request counts per `METHOD /template`.
    pub requests: Mutex<BTreeMap<String, u64>>,
    /// The cluster-wide `user.cfg` lock (one write at a time).
    pub user_cfg: tokio::sync::Mutex<()>,
    /// Writes waiting for or holding the `user.cfg` lock right now.
    pub user_cfg_waiting: std::sync::atomic::AtomicUsize,
}

/// pvedaemon's `max_workers`.
pub(crate) const DAEMON_WORKERS: usize = 3;

impl Shared {
    pub(crate) fn new(cfg: Settings, fault_rate: f64) -> Self {
        let daemons = cfg
            .nodes
            .iter()
            .map(|n| (n.clone(), Arc::new(Semaphore::new(DAEMON_WORKERS))))
            .collect();
        let state = SimState::new(&cfg);
        let faults = Faults::new(cfg.seed, fault_rate);
        Self {
            keys: Keys::generate(),
            state: Mutex::new(state),
            daemons,
            faults: Mutex::new(faults),
            requests: Mutex::new(BTreeMap::new()),
            user_cfg: tokio::sync::Mutex::new(()),
            user_cfg_waiting: std::sync::atomic::AtomicUsize::new(0),
            cfg,
        }
    }

    /// The state lock. A panic while holding it cannot leave a half-written invariant we
    /// rely on, so a poisoned lock is used as is.
    ///
    /// The guests' network view (carrier, lab lease NIC, subnet leases) is brought up to
    /// date first when anything it is computed from changed since the last time: a guest
    /// inserted or removed, a `netX` of a config written, an apply's reload finishing.
    /// Debug builds check that a view kept as it was is the one a recompute would give.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let key = st.net_key();
        if st.net_view != Some(key) {
            crate::sdn::segments::refresh(&mut st);
            st.net_view = Some(key);
        } else {
            debug_assert!(
                crate::sdn::segments::is_fresh(&st),
                "the guests' network view is stale: a change of a NIC, the guest table or \
                 the applied SDN config was not counted on the NetEpoch"
            );
        }
        st
    }

    /// A simulated duration of `secs` seconds, times `--time-scale`.
    pub(crate) fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.cfg.time_scale).max(0.0))
    }

    /// Sleep for a simulated duration.
    pub(crate) async fn sleep(&self, secs: f64) {
        let d = self.scaled(secs);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    pub(crate) fn has_node(&self, node: &str) -> bool {
        self.cfg.nodes.iter().any(|n| n == node)
    }

    /// Is `name` a storage the simulator has (`local-lvm` on every node, the shared one)?
    pub(crate) fn has_storage(&self, name: &str) -> bool {
        name == LOCAL_STORAGE || self.is_shared_storage(name)
    }

    /// Is `name` the shared storage?
    pub(crate) fn is_shared_storage(&self, name: &str) -> bool {
        self.cfg.shared_storage.as_deref() == Some(name)
    }
}

/// The node-local storage of every node.
pub(crate) const LOCAL_STORAGE: &str = "local-lvm";

/// The storage id of a volume spec (`local-lvm:base-9000-disk-0,size=8G` → `local-lvm`).
pub(crate) fn storage_of(volume: &str) -> Option<&str> {
    volume
        .split(',')
        .next()
        .and_then(|v| v.split_once(':'))
        .map(|(s, _)| s)
}

impl SimState {
    /// Memory in use on `node` (bytes): the host's own plus the configured memory of every
    /// guest running there (QEMU reserves it at start).
    pub(crate) fn node_memory_used(&self, node: &str) -> u64 {
        HOST_MEMORY
            + self
                .guests
                .values()
                .filter(|g| g.node == node && g.running)
                .map(|g| crate::cluster::sizes(g).0)
                .sum::<u64>()
    }

    /// Is `node` online (not taken offline with `SimHandle::set_node_online`)?
    pub(crate) fn node_online(&self, node: &str) -> bool {
        !self.offline.contains(node)
    }
}

/// A guest as `/cluster/resources` last saw it (pvestatd's RRD cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RrdEntry {
    pub status: &'static str,
    pub name: Option<String>,
    pub template: bool,
}

/// A resource pool (`user.cfg`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool {
    pub comment: Option<String>,
    pub vms: BTreeSet<u32>,
    pub storage: BTreeSet<String>,
}

/// The guests by vmid. Reads go through `Deref` to the map; inserting and removing
/// count on the [`NetEpoch`] (and attach the guest's config to it), so the network view
/// is recomputed after them.
#[derive(Debug, Default)]
pub(crate) struct Guests {
    map: BTreeMap<u32, Guest>,
    epoch: NetEpoch,
}

impl Guests {
    pub(crate) fn insert(&mut self, vmid: u32, mut g: Guest) -> Option<Guest> {
        g.config.attach(&self.epoch);
        self.epoch.bump();
        self.map.insert(vmid, g)
    }

    pub(crate) fn remove(&mut self, vmid: &u32) -> Option<Guest> {
        let g = self.map.remove(vmid);
        if g.is_some() {
            self.epoch.bump();
        }
        g
    }

    pub(crate) fn get_mut(&mut self, vmid: &u32) -> Option<&mut Guest> {
        self.map.get_mut(vmid)
    }

    pub(crate) fn values_mut(&mut self) -> std::collections::btree_map::ValuesMut<'_, u32, Guest> {
        self.map.values_mut()
    }

    /// Changes of the guest table and of its guests' NICs so far.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.get()
    }
}

impl std::ops::Deref for Guests {
    type Target = BTreeMap<u32, Guest>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<'a> IntoIterator for &'a Guests {
    type Item = (&'a u32, &'a Guest);
    type IntoIter = std::collections::btree_map::Iter<'a, u32, Guest>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

/// The mutable part of the cluster.
#[derive(Debug)]
pub(crate) struct SimState {
    pub guests: Guests,
    pub pools: BTreeMap<String, Pool>,
    pub tasks: TaskTable,
    pub firewall: Firewall,
    /// pvestatd's view, refreshed every 10 s (scaled).
    pub rrd: BTreeMap<u32, RrdEntry>,
    /// Clones currently holding each node's `local-lvm` allocation lock.
    pub storage_clones: BTreeMap<String, u32>,
    /// Randomness of MACs and UUIDs (seeded; separate from the fault stream).
    pub rng: ChaCha8Rng,
    pub seed: u64,
    /// The most protected requests seen executing at once, per node.
    pub daemon_peak: BTreeMap<String, usize>,
    /// Users, groups, roles, ACL (`user.cfg`).
    pub access: Access,
    /// The most `user.cfg` writes ever seen waiting at once (1 = serialised).
    pub user_cfg_peak: usize,
    /// Successful `user.cfg` writes.
    pub user_cfg_writes: u64,
    /// Backup volumes `vzdump` left.
    pub backups: Vec<crate::guest::vzdump::Backup>,
    /// Established TCP sessions between guests (`/_sim/sessions`).
    pub sessions: crate::guest::sessions::Sessions,
    /// Nodes taken offline (their API answers 595, their guests are stopped).
    pub offline: BTreeSet<String>,
    /// Software-defined networking: zones, vnets, subnets, the lock, applies.
    pub sdn: crate::sdn::Sdn,
    /// The [`SimState::net_key`] the guests' network view was last computed at.
    pub net_view: Option<(u64, u64)>,
}

impl SimState {
    /// What the guests' network view was computed from, as counters: the guest table's
    /// [`NetEpoch`] and the applied SDN config's version.
    pub(crate) fn net_key(&self) -> (u64, u64) {
        (self.guests.epoch(), self.sdn.live_version)
    }

    fn new(cfg: &Settings) -> Self {
        let mut st = Self {
            guests: Guests::default(),
            pools: BTreeMap::new(),
            tasks: TaskTable::default(),
            firewall: {
                let mut fw = Firewall::new();
                fw.set_anti_lockout_window(std::time::Duration::from_secs_f64(
                    (60.0 * cfg.time_scale).max(0.0),
                ));
                fw
            },
            rrd: BTreeMap::new(),
            storage_clones: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            seed: cfg.seed,
            daemon_peak: BTreeMap::new(),
            access: Access::default(),
            user_cfg_peak: 0,
            user_cfg_writes: 0,
            backups: Vec::new(),
            sessions: crate::guest::sessions::Sessions::default(),
            offline: BTreeSet::new(),
            sdn: crate::sdn::Sdn::default(),
            net_view: None,
        };
        st.seed_access(cfg);
        st.build_inventory(&cfg.nodes);
        st.refresh_rrd();
        st
    }

    /// `root@pam`, and the command-line user and token owner with `Administrator` on `/`
    /// (so they behave as before access control existed).
    fn seed_access(&mut self, cfg: &Settings) {
        let mut root = User::new();
        root.comment = Some("Superuser".into());
        self.access.users.insert(ROOT.to_owned(), root);
        let mut admins = vec![cfg.user.clone()];
        if let Some(t) = &cfg.token {
            admins.push(t.user.clone());
            self.access.cli_token = Some((t.user.clone(), t.id.clone()));
        }
        for admin in admins.into_iter().filter(|u| u != ROOT) {
            self.access
                .users
                .entry(admin.clone())
                .or_insert_with(User::new);
            self.access
                .acl
                .entry("/".to_owned())
                .or_default()
                .entry((crate::access::UgType::User, admin))
                .or_default()
                .insert("Administrator".to_owned(), true);
        }
    }

    /// The initial inventory documented in the README.
    fn build_inventory(&mut self, nodes: &[String]) {
        let node = |i: usize| {
            nodes
                .get(i)
                .or_else(|| nodes.first())
                .cloned()
                .unwrap_or_default()
        };
        let pve1 = node(0);
        let now = Instant::now();
        let boot = unix_now().saturating_sub(86_400);

        let qemu = |st: &mut SimState, name: &str, disk: &str, extra: &[(&str, &str)]| {
            let mac = random_mac(&mut st.rng);
            let mut c: BTreeMap<String, String> = [
                ("boot", "order=scsi0;net0".to_owned()),
                ("cores", "2".to_owned()),
                ("memory", "2048".to_owned()),
                ("name", name.to_owned()),
                ("net0", format!("virtio={mac},bridge=vmbr0")),
                ("ostype", "l26".to_owned()),
                ("scsi0", disk.to_owned()),
                ("scsihw", "virtio-scsi-single".to_owned()),
                ("smbios1", format!("uuid={}", random_uuid(&mut st.rng))),
                ("vmgenid", random_uuid(&mut st.rng)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            for (k, v) in extra {
                c.insert((*k).to_owned(), (*v).to_owned());
            }
            c
        };

        let c = qemu(
            self,
            "debian-12-tmpl",
            "local-lvm:base-9000-disk-0,size=8G",
            &[("agent", "1"), ("template", "1")],
        );
        self.guests
            .insert(9000, Guest::new(9000, Kind::Qemu, &pve1, c));

        let mac = random_mac(&mut self.rng);
        let ct: BTreeMap<String, String> = [
            ("arch", "amd64".to_owned()),
            ("cores", "1".to_owned()),
            ("hostname", "alpine-ct-tmpl".to_owned()),
            ("memory", "512".to_owned()),
            (
                "net0",
                format!("name=eth0,bridge=vmbr0,hwaddr={mac},ip=dhcp,type=veth"),
            ),
            ("ostype", "alpine".to_owned()),
            ("rootfs", "local-lvm:base-9001-disk-0,size=2G".to_owned()),
            ("swap", "512".to_owned()),
            ("template", "1".to_owned()),
            ("unprivileged", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.guests
            .insert(9001, Guest::new(9001, Kind::Lxc, &pve1, ct));

        let running = [
            (100, "teacher", node(0), Some(Ipv4Addr::new(10, 10, 0, 1))),
            (200, "prod-db", node(1), None),
            (201, "prod-web", node(2), None),
        ];
        for (vmid, name, on, ip) in running {
            let disk = format!("local-lvm:vm-{vmid}-disk-0,size=32G");
            let c = qemu(self, name, &disk, &[("agent", "1"), ("onboot", "1")]);
            let mut g = Guest::new(vmid, Kind::Qemu, &on, c);
            g.running = true;
            g.started_unix = boot;
            g.agent_ready_at = Some(now);
            g.ipv4_ready_at = Some(now);
            g.ipv4 = ip;
            self.guests.insert(vmid, g);
        }
        for vmid in [200, 201] {
            let ip = self.lease_for(vmid);
            if let Some(g) = self.guests.get_mut(&vmid) {
                g.ipv4 = Some(ip);
            }
        }
    }

    /// pvestatd cycle: copy status, name and template into the resources view.
    pub(crate) fn refresh_rrd(&mut self) {
        self.rrd = self
            .guests
            .iter()
            .map(|(id, g)| {
                (
                    *id,
                    RrdEntry {
                        status: if g.running { "running" } else { "stopped" },
                        name: g.name().map(str::to_owned),
                        template: g.is_template(),
                    },
                )
            })
            .collect();
    }

    /// The guest `vmid` of `kind` whose config lives on `node`, or PVE's
    /// `Configuration file '…' does not exist`.
    pub(crate) fn guest(&self, kind: Kind, node: &str, vmid: u32) -> ApiResult<&Guest> {
        match self.guests.get(&vmid) {
            Some(g) if g.kind == kind && g.node == node => Ok(g),
            _ => Err(missing_config(kind, node, vmid)),
        }
    }

    /// Mutable [`SimState::guest`].
    pub(crate) fn guest_mut(&mut self, kind: Kind, node: &str, vmid: u32) -> ApiResult<&mut Guest> {
        match self.guests.get_mut(&vmid) {
            Some(g) if g.kind == kind && g.node == node => Ok(g),
            _ => Err(missing_config(kind, node, vmid)),
        }
    }

    /// The pool a guest belongs to.
    pub(crate) fn pool_of(&self, vmid: u32) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, p)| p.vms.contains(&vmid))
            .map(|(name, _)| name.as_str())
    }

    /// The DHCP lease of a guest: a deterministic address in 10.10.0.0/16 derived from the
    /// seed, the vmid and the MAC (10.10.0.1 is the teacher's), unique among leases.
    pub(crate) fn lease_for(&self, vmid: u32) -> Ipv4Addr {
        if let Some(ip) = self.guests.get(&vmid).and_then(|g| g.ipv4) {
            return ip;
        }
        let mac = self
            .guests
            .get(&vmid)
            .and_then(Guest::primary_mac)
            .unwrap_or_default();
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(vmid.to_le_bytes());
        h.update(mac.as_bytes());
        let d = h.finalize();
        let taken: BTreeSet<Ipv4Addr> = self.guests.values().filter_map(|g| g.ipv4).collect();
        // Hosts 10.10.0.2 … 10.10.255.254, skipping .0 and .255 octets.
        let span = 65_000u32;
        let mut n = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) % span;
        loop {
            let host = n + 2;
            let ip = Ipv4Addr::new(10, 10, (host >> 8) as u8, (host & 0xff) as u8);
            let last = host & 0xff;
            if last != 0 && last != 255 && !taken.contains(&ip) {
                return ip;
            }
            n = (n + 1) % span;
        }
    }

    /// Record that `busy` protected requests are executing on `node` right now.
    pub(crate) fn note_daemon_busy(&mut self, node: &str, busy: usize) {
        let peak = self.daemon_peak.entry(node.to_owned()).or_insert(0);
        *peak = (*peak).max(busy);
    }
}
