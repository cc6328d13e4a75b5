//! The embedding API: [`Simulator::builder`] → [`SimulatorBuilder::start`] → [`SimHandle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::auth::base32_decode;
use crate::faults::Fault;
use crate::firewall::Verdict;
use crate::state::{Settings, Shared, TokenSpec};
use crate::Secret;
use crate::{introspect, server, tls};

/// A one-shot fault of [`SimHandle::fail_next_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestFault {
    /// Answer this HTTP status (400-599) and reason, e.g. `596`, `"Connection timed
    /// out"`, without running the request.
    Status(u16, &'static str),
    /// Close the connection without running the request or answering.
    Reset,
    /// Run the request, then close the connection instead of answering: the change
    /// happened, the client cannot know (what a real network loses).
    LostAnswer,
}

/// Why a simulator could not start or a handle call was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A builder setting is out of range; says which and what is allowed.
    #[error("invalid {setting}: {message}")]
    Config {
        /// The setting (`nodes`, `time scale`, …).
        setting: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Generating the certificate or the TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// The smallest node memory a simulator accepts (the host alone uses 2 GiB).
const MIN_NODE_MEMORY: u64 = 4 * 1024 * 1024 * 1024;

fn config_err(setting: &'static str, message: impl Into<String>) -> SimError {
    SimError::Config {
        setting,
        message: message.into(),
    }
}

/// Entry point of the simulator.
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

impl Simulator {
    /// A builder with the defaults of the `pve-sim` binary, except the listen address
    /// (`127.0.0.1:0`, a free port).
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }
}

/// Settings of a simulator; [`SimulatorBuilder::start`] checks them and starts serving.
#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    nodes: usize,
    user: String,
    password: Option<Secret>,
    token: Option<Secret>,
    totp_secret: Option<Secret>,
    seed: u64,
    time_scale: f64,
    fault_rate: f64,
    ticket_lifetime: Duration,
    plain_http: bool,
    listen: SocketAddr,
    node_memory: u64,
    node_cpus: u32,
    shared_storage: Option<String>,
    linked_clones: bool,
}

/// Default physical memory of a node: 2 TiB, enough for 500 running 2 GiB students on one
/// node (the largest benchmark), so memory only limits a simulator that is told to.
pub const DEFAULT_NODE_MEMORY: u64 = 2048 * 1024 * 1024 * 1024;
/// Default CPU threads of a node.
pub const DEFAULT_NODE_CPUS: u32 = 16;

impl Default for SimulatorBuilder {
    fn default() -> Self {
        Self {
            nodes: 3,
            user: "root@pam".into(),
            password: None,
            token: None,
            totp_secret: None,
            seed: 1,
            time_scale: 1.0,
            fault_rate: 0.0,
            ticket_lifetime: Duration::from_secs(7200),
            plain_http: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            node_memory: DEFAULT_NODE_MEMORY,
            node_cpus: DEFAULT_NODE_CPUS,
            shared_storage: None,
            linked_clones: true,
        }
    }
}

impl SimulatorBuilder {
    /// Number of nodes `pve1`…`pveN` (1..=32, default 3).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// The one user that can log in (`USER@REALM`, default `root@pam`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// The user's password (default: generated, see [`SimHandle::password`]).
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// An API token, `USER@REALM!ID=SECRET` (default: none).
    pub fn token(mut self, spec: impl Into<Secret>) -> Self {
        self.token = Some(spec.into());
        self
    }

    /// Require TOTP as second factor for the user, with this base32 secret (default: no TFA).
    pub fn totp_secret(mut self, base32: impl Into<Secret>) -> Self {
        self.totp_secret = Some(base32.into());
        self
    }

    /// Seed of MACs, DHCP leases and faults (default 1).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Factor applied to every simulated duration (task times, boot, 401 delay,
    /// pvestatd cycle); e.g. `0.01` for tests. Must be > 0 (default 1.0).
    pub fn time_scale(mut self, factor: f64) -> Self {
        self.time_scale = factor;
        self
    }

    /// Probability (0..=1) of an injected fault per API request and per clone (default 0).
    pub fn fault_rate(mut self, rate: f64) -> Self {
        self.fault_rate = rate;
        self
    }

    /// Ticket (and CSRF token) lifetime in **real** seconds, not scaled by the time
    /// scale; at least 1 s (default 7200 s, as PVE).
    pub fn ticket_lifetime(mut self, lifetime: Duration) -> Self {
        self.ticket_lifetime = lifetime;
        self
    }

    /// Serve plain HTTP instead of HTTPS (default: HTTPS with a self-signed certificate).
    pub fn plain_http(mut self, plain: bool) -> Self {
        self.plain_http = plain;
        self
    }

    /// `false` makes every node's `local-lvm` a thick LVM (`plugintype` `lvm` in
    /// `/cluster/resources`), on which PVE cannot make linked clones: a clone with
    /// `full=0` fails with `Linked clone feature is not supported for '<volid>' (scsi0)`
    /// as on a real cluster (default `true`: LVM-thin).
    pub fn linked_clones(mut self, supported: bool) -> Self {
        self.linked_clones = supported;
        self
    }

    /// The listen address (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Physical memory of every node in bytes (default `DEFAULT_NODE_MEMORY`, 2 TiB; at least
    /// 4 GiB). Running guests reserve their configured `memory`; a QEMU start that does not
    /// fit fails as on PVE (`start failed: QEMU exited with code 1`).
    pub fn node_memory(mut self, bytes: u64) -> Self {
        self.node_memory = bytes;
        self
    }

    /// CPU threads of every node, shown as `maxcpu` (1..=1024, default 16).
    pub fn node_cpus(mut self, cpus: u32) -> Self {
        self.node_cpus = cpus;
        self
    }

    /// Add a storage with this id on every node, `shared: 1` (default: none). An id with
    /// `rbd` or `ceph` in it is an RBD pool, any other an NFS export. Templates whose disks
    /// live there may be cloned to any node (`target`).
    pub fn shared_storage(mut self, id: impl Into<String>) -> Self {
        self.shared_storage = Some(id.into());
        self
    }

    fn check(&self) -> Result<(), SimError> {
        if self.node_memory < MIN_NODE_MEMORY {
            return Err(config_err(
                "node memory",
                format!(
                    "{} bytes (allowed: at least 4 GiB, {MIN_NODE_MEMORY} bytes)",
                    self.node_memory
                ),
            ));
        }
        if !(1..=1024).contains(&self.node_cpus) {
            return Err(config_err(
                "node cpus",
                format!("{} (allowed: 1 to 1024)", self.node_cpus),
            ));
        }
        if let Some(id) = &self.shared_storage {
            let ok = id.len() <= 64
                && id.starts_with(|c: char| c.is_ascii_alphabetic())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok || id == crate::state::LOCAL_STORAGE {
                return Err(config_err(
                    "shared storage",
                    format!("'{id}' (allowed: a storage id such as rbd or nfs-lab: a letter, then letters, digits, '-', '_', '.'; not local-lvm)"),
                ));
            }
        }
        if !(1..=32).contains(&self.nodes) {
            return Err(config_err(
                "nodes",
                format!("{} (allowed: 1 to 32)", self.nodes),
            ));
        }
        if !valid_userid(&self.user) {
            return Err(config_err(
                "user",
                format!("'{}' (allowed: USER@REALM)", self.user),
            ));
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(config_err(
                "time scale",
                format!("{} (allowed: a number > 0)", self.time_scale),
            ));
        }
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err(config_err(
                "fault rate",
                format!("{} (allowed: 0 to 1)", self.fault_rate),
            ));
        }
        if self.ticket_lifetime.as_secs() < 1 {
            return Err(config_err(
                "ticket lifetime",
                "below 1 s (allowed: whole seconds >= 1)",
            ));
        }
        if let Some(s) = &self.totp_secret {
            if base32_decode(s.expose()).is_none() {
                return Err(config_err(
                    "TOTP secret",
                    "not base32 (allowed: A-Z and 2-7)",
                ));
            }
        }
        Ok(())
    }

    /// Check the settings, bind, and start serving in the background.
    pub async fn start(self) -> Result<SimHandle, SimError> {
        self.check()?;
        let token = self
            .token
            .as_ref()
            .map(|t| parse_token(t.expose()))
            .transpose()?;
        let (password, generated) = match self.password {
            Some(p) => (p, false),
            None => {
                let p: String = rand::thread_rng()
                    .sample_iter(&Alphanumeric)
                    .take(16)
                    .map(char::from)
                    .collect();
                (Secret::new(p), true)
            }
        };
        let certificate = tls::generate(&self.listen.ip().to_string()).map_err(SimError::Tls)?;
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: self.listen,
            source,
        })?;
        let settings = Settings {
            nodes: (1..=self.nodes).map(|i| format!("pve{i}")).collect(),
            user: self.user,
            password: password.clone(),
            token,
            totp: self.totp_secret,
            seed: self.seed,
            time_scale: self.time_scale,
            fingerprint: certificate.fingerprint.clone(),
            ticket_lifetime: self.ticket_lifetime.as_secs(),
            cert_pem: certificate.pem.clone(),
            node_memory: self.node_memory,
            node_cpus: self.node_cpus,
            shared_storage: self.shared_storage,
            linked_clones: self.linked_clones,
        };
        let shared = Arc::new(Shared::new(settings, self.fault_rate));
        let (tx, rx) = watch::channel(false);
        let acceptor =
            (!self.plain_http).then(|| TlsAcceptor::from(Arc::clone(&certificate.config)));
        let app = server::router(Arc::clone(&shared));
        let server = tokio::spawn(server::serve(listener, acceptor, app, rx.clone()));
        tokio::spawn(pvestatd(Arc::clone(&shared), rx));
        Ok(SimHandle {
            addr,
            scheme: if self.plain_http { "http" } else { "https" },
            fingerprint: certificate.fingerprint,
            certificate_pem: certificate.pem,
            password,
            password_generated: generated,
            shared,
            shutdown: tx,
            server: Some(server),
        })
    }
}

/// pvestatd: refresh the `/cluster/resources` view every 10 s (scaled).
async fn pvestatd(sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let period = sh.scaled(10.0).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => sh.lock().refresh_rrd(),
            _ = shutdown.changed() => break,
        }
    }
}

fn valid_userid(u: &str) -> bool {
    u.split_once('@').is_some_and(|(name, realm)| {
        !name.is_empty() && !realm.is_empty() && !u.contains(['!', ':', ' '])
    })
}

/// Parse `USER@REALM!ID=SECRET`.
fn parse_token(spec: &str) -> Result<TokenSpec, SimError> {
    let bad = || config_err("token", "malformed (allowed: USER@REALM!ID=SECRET)");
    let (full, secret) = spec.split_once('=').ok_or_else(bad)?;
    let (user, id) = full.split_once('!').ok_or_else(bad)?;
    if !valid_userid(user) || id.is_empty() || secret.is_empty() {
        return Err(bad());
    }
    Ok(TokenSpec {
        user: user.to_owned(),
        id: id.to_owned(),
        secret: Secret::new(secret),
    })
}

/// A running simulator. Dropping it stops the server (in the background);
/// [`SimHandle::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    scheme: &'static str,
    fingerprint: String,
    certificate_pem: String,
    password: Secret,
    password_generated: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The API base, e.g. `https://127.0.0.1:41234/api2/json`.
    pub fn base_url(&self) -> String {
        format!("{}/api2/json", self.url())
    }

    /// The server root, e.g. `https://127.0.0.1:41234` (introspection lives under `/_sim/`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint of the certificate, `AA:BB:…` upper-case, as PVE shows it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The self-signed certificate (PEM), for clients that trust it as a root.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The login user (`root@pam` unless set).
    pub fn user(&self) -> &str {
        &self.shared.cfg.user
    }

    /// The user's password (the generated one when none was set).
    pub fn password(&self) -> &str {
        self.password.expose()
    }

    /// Was the password generated (and should be shown to the user)?
    pub fn password_generated(&self) -> bool {
        self.password_generated
    }

    /// What `GET /_sim/state` returns.
    pub fn state(&self) -> Value {
        introspect::state_json(&self.shared)
    }

    /// What `GET /_sim/requests` returns: counts per `METHOD /template`.
    pub fn requests(&self) -> Value {
        introspect::requests_json(&self.shared)
    }

    /// Reset the request counts (`DELETE /_sim/requests`).
    pub fn reset_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Change the fault rate of subsequent requests (0..=1).
    pub fn set_fault_rate(&self, rate: f64) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(config_err(
                "fault rate",
                format!("{rate} (allowed: 0 to 1)"),
            ));
        }
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_rate(rate);
        Ok(())
    }

    /// Take `node` offline (`online = false`) or bring it back. While offline its API
    /// answers 595 `No route to host` (pveproxy cannot forward to it), `/nodes` and
    /// `/cluster/resources` show it `offline` and its guests `unknown`; going offline
    /// powers its running guests off (the node lost power), coming back leaves them
    /// stopped. The client keeps talking to the cluster through another node.
    pub fn set_node_online(&self, node: &str, online: bool) -> Result<(), SimError> {
        if !self.shared.has_node(node) {
            return Err(config_err(
                "node",
                format!("'{node}' (allowed: {})", self.shared.cfg.nodes.join(", ")),
            ));
        }
        let mut st = self.shared.lock();
        if online {
            st.offline.remove(node);
        } else if st.offline.insert(node.to_owned()) {
            for g in st.guests.values_mut().filter(|g| g.node == node) {
                crate::lifecycle::power_off(g);
            }
        }
        Ok(())
    }

    /// Make the next clone task (QEMU or LXC) fail with `message` — e.g.
    /// `clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout` —
    /// after its disk phase, as a real one would; the partial guest is removed.
    pub fn fail_next_clone(&self, message: impl Into<String>) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue_clone_failure(message.into());
    }

    /// Make the next `method` request whose API path (after `/api2/json`) starts with
    /// `path_prefix` fail once as `fault` says. Other requests are unaffected and the
    /// seeded fault stream is not advanced by it.
    pub fn fail_next_request(
        &self,
        method: &str,
        path_prefix: &str,
        fault: RequestFault,
    ) -> Result<(), SimError> {
        let fault = match fault {
            RequestFault::Reset => Fault::Reset,
            RequestFault::LostAnswer => Fault::LostAnswer,
            RequestFault::Status(code, reason) => Fault::Status(
                http::StatusCode::from_u16(code)
                    .ok()
                    .filter(|c| c.is_client_error() || c.is_server_error())
                    .ok_or_else(|| {
                        config_err("fault status", format!("{code} (allowed: 400 to 599)"))
                    })?,
                reason,
            ),
        };
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue_request_fault(method.to_uppercase(), path_prefix.to_owned(), fault);
        Ok(())
    }

    /// The reachability oracle (as `/_sim/reachability`): can guest `from` open a new
    /// `proto` connection to `to` (a VMID or an IP address), port `port`?
    pub fn reachability(
        &self,
        from: u32,
        to: &str,
        proto: &str,
        port: Option<u16>,
    ) -> Result<Verdict, SimError> {
        let port = port.map(|p| p.to_string());
        introspect::reach(&self.shared, &from.to_string(), to, proto, port.as_deref())
            .map_err(|message| config_err("reachability query", message))
    }

    /// The SDN state (as `GET /_sim/sdn`): `applies` (count of `PUT /cluster/sdn`),
    /// `version`, `locked`, `pending`, and the zones/vnets/subnets of the edited
    /// `config`, the committed `running` config and what the nodes have `applied` (the
    /// running config as of the last finished `reloadnetworkall` task).
    pub fn sdn(&self) -> Value {
        self.shared.lock().sdn.to_json()
    }

    /// How many times SDN changes were applied (`PUT /cluster/sdn`).
    pub fn sdn_applies(&self) -> u64 {
        self.shared.lock().sdn.applies
    }

    /// Opens an established TCP session from guest `from` to guest `to` on `port` (as
    /// `POST /_sim/sessions`), if the firewall lets a new connection through now; answers
    /// the session (`id`, `alive`, …). It ends when either end's link goes down or its
    /// guest stops, is destroyed or rolled back — not when firewall rules change.
    pub fn open_session(&self, from: u32, to: u32, port: u16) -> Result<Value, SimError> {
        crate::guest::sessions::open(&self.shared, from, to, port)
            .map_err(|(_, message)| config_err("session", message))
    }

    /// One session as it is now (`alive`, and when and why it ended); `None` if unknown.
    pub fn session(&self, id: u64) -> Option<Value> {
        self.shared.lock().session(id)
    }

    /// Every session opened so far, as `GET /_sim/sessions` lists them.
    pub fn sessions(&self) -> Value {
        self.shared.lock().sessions_json()
    }

    /// What `GET /_sim/guests/{vmid}/state` returns: the inside of a QEMU guest.
    pub fn guest_state(&self, vmid: u32) -> Result<Value, SimError> {
        let st = self.shared.lock();
        let id = crate::guest::state_api::check(&st, &vmid.to_string())
            .map_err(|(_, message)| config_err("guest state", message))?;
        Ok(crate::guest::state_api::state_json(&st, id))
    }

    /// `PUT /_sim/guests/{vmid}/state`: change only what `changes` names (see the crate
    /// docs); returns the new state.
    pub fn put_guest_state(&self, vmid: u32, changes: Value) -> Result<Value, SimError> {
        let mut st = self.shared.lock();
        crate::guest::state_api::apply(&mut st, &vmid.to_string(), changes)
            .map_err(|(_, message)| config_err("guest state", message))
    }

    /// Stop accepting connections, let open requests finish, and wait for the server.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The RFC 6238 code (6 digits, 30 s steps, HMAC-SHA1) of a base32 secret at a Unix
/// time — what an authenticator app would show; for tests of the TFA flow.
pub fn totp_code(base32_secret: &str, unix_time: u64) -> Result<String, SimError> {
    let key = base32_decode(base32_secret)
        .ok_or_else(|| config_err("TOTP secret", "not base32 (allowed: A-Z and 2-7)"))?;
    Ok(crate::auth::totp(&key, unix_time / 30))
}
