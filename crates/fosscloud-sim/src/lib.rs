//! An embeddable simulator of the FOSS-Cloud REST API (vm-manager 1.3.2.1), held to the
//! server's source: the six GET routes with Yii's URL matching (realm suffix, query-string
//! realm, trailing slash, `.html` suffix, the HTML 404 for anything else), the check order,
//! the JSON envelope with PHP's `JSON_NUMERIC_CHECK`, every code, the VM status computation,
//! pool stubs, and the configuration switches `enable`, `defaultRealm`, `macByParameter` and
//! "FC4School installed". The directory (realms, users, pools, VMs, MAC mappings) lives in
//! memory and comes from [`Directory::builtin`] or a fixture file.
//!
//! HTTPS with a freshly generated CA (rcgen, ring) by default; plain HTTP on request. Servers
//! bind `127.0.0.1:0` unless told otherwise and stop when their handle is dropped.
//! Introspection lives outside the API's path space, at `/_sim/state`, and on the handle.
//!
//! ```no_run
//! # async fn run() -> Result<(), fosscloud_sim::SimError> {
//! let sim = fosscloud_sim::Simulator::builder().plain_http(true).start().await?;
//! println!("API at {}", sim.base_url()); // http://127.0.0.1:<port>/vm-manager
//! // ... point a client at it, then look at what it did:
//! for a in sim.assignments() {
//!     println!("{} has VM {} of pool {}", a.user, a.vm, a.pool);
//! }
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod directory;
mod php;
mod routes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub use directory::{
    ArpEntry, Config, Directory, Fixture, MappingEntry, NodeEntry, PoolEntry, PoolType, RealmEntry,
    UserEntry, VmEntry, VmType,
};

// The README's Rust example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The path the application is deployed under (Apache `RewriteBase /vm-manager/`).
pub const BASE_PATH: &str = "/vm-manager";

/// Errors starting the simulator or reading its fixture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The fixture file cannot be read or is inconsistent.
    #[error("fixture: {0}")]
    Fixture(String),
    /// The listening socket cannot be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or configuration cannot be built.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Entry point: `Simulator::builder()`.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// A builder with the built-in fixture, HTTPS, on `127.0.0.1:0`.
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            plain_http: false,
            fixture: Fixture::default(),
            tls_names: Vec::new(),
        }
    }
}

/// Configures and starts a simulator.
#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    listen: SocketAddr,
    plain_http: bool,
    fixture: Fixture,
    tls_names: Vec<String>,
}

impl SimulatorBuilder {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Serve plain HTTP instead of HTTPS.
    pub fn plain_http(mut self, plain: bool) -> Self {
        self.plain_http = plain;
        self
    }

    /// Configuration and directory together.
    pub fn fixture(mut self, fixture: Fixture) -> Self {
        self.fixture = fixture;
        self
    }

    /// The configuration switches.
    pub fn config(mut self, config: Config) -> Self {
        self.fixture.config = config;
        self
    }

    /// The directory (checked by [`Directory::validate`] at start).
    pub fn directory(mut self, directory: Directory) -> Self {
        self.fixture.directory = directory;
        self
    }

    /// One more DNS name or IP address for the TLS certificate (it always covers
    /// `localhost`, `127.0.0.1`, `::1` and the listen address).
    pub fn tls_name(mut self, name: impl Into<String>) -> Self {
        self.tls_names.push(name.into());
        self
    }

    /// Binds the socket and starts serving in a background task.
    pub async fn start(self) -> Result<SimulatorHandle, SimError> {
        self.fixture.directory.validate()?;
        let listener =
            std::net::TcpListener::bind(self.listen).map_err(|source| SimError::Listen {
                addr: self.listen,
                source,
            })?;
        let listen_err = |source| SimError::Listen {
            addr: self.listen,
            source,
        };
        listener.set_nonblocking(true).map_err(listen_err)?;
        let local = listener.local_addr().map_err(listen_err)?;
        let server_ip = if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        };

        let shared = Arc::new(Shared {
            server: Mutex::new(api::Server {
                config: self.fixture.config,
                directory: self.fixture.directory,
                ldap_failure: None,
            }),
            requests: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            server_ip,
        });
        let app = Router::new()
            .route("/_sim/state", get(state_handler))
            .fallback(api_handler)
            .with_state(Arc::clone(&shared));
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();

        let (scheme, ca_pem) = if self.plain_http {
            let server = axum_server::from_tcp(listener).handle(handle.clone());
            tokio::spawn(async move {
                if let Err(e) = server.serve(service).await {
                    tracing::error!(error = %e, "fosscloud-sim stopped");
                }
            });
            ("http", None)
        } else {
            let mut names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !local.ip().is_unspecified() {
                names.push(local.ip().to_string());
            }
            names.extend(self.tls_names);
            names.dedup();
            let (config, ca_pem) = tls::server_config(names)?;
            let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            let server =
                axum_server::tls_rustls::from_tcp_rustls(listener, config).handle(handle.clone());
            tokio::spawn(async move {
                if let Err(e) = server.serve(service).await {
                    tracing::error!(error = %e, "fosscloud-sim stopped");
                }
            });
            ("https", Some(ca_pem))
        };
        let url_addr = SocketAddr::new(server_ip, local.port());
        let base_url = format!("{scheme}://{url_addr}{BASE_PATH}");
        tracing::info!(%base_url, "fosscloud-sim listening");
        Ok(SimulatorHandle {
            base_url,
            local,
            ca_pem,
            shared,
            handle,
        })
    }
}

struct Shared {
    server: Mutex<api::Server>,
    requests: AtomicU64,
    sessions: AtomicU64,
    server_ip: IpAddr,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, api::Server> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One user under a dynamic VM's `ou=people`: who has which VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The VM's UUID.
    pub vm: String,
    /// The VM's pool.
    pub pool: String,
    /// The user's uid.
    pub user: String,
}

/// A running simulator. Dropping it stops the server.
pub struct SimulatorHandle {
    base_url: String,
    local: SocketAddr,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    handle: axum_server::Handle,
}

impl std::fmt::Debug for SimulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimulatorHandle {
    /// The application's base URL, e.g. `https://127.0.0.1:41234/vm-manager`; the API is at
    /// `<base>/api/...`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The PEM of the CA that signed the server certificate (HTTPS only): trust it in
    /// clients instead of turning verification off.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.shared.lock().config.clone()
    }

    /// Changes the configuration (takes effect with the next request).
    pub fn update_config(&self, change: impl FnOnce(&mut Config)) {
        change(&mut self.shared.lock().config);
    }

    /// A copy of the directory as it is now (assignments included).
    pub fn directory(&self) -> Directory {
        self.shared.lock().directory.clone()
    }

    /// Changes the directory.
    pub fn update_directory(&self, change: impl FnOnce(&mut Directory)) {
        change(&mut self.shared.lock().directory);
    }

    /// Makes every directory access fail with `message` (an LDAP outage), so requests that
    /// reach the directory get HTTP 400 / code 500000; `None` heals it.
    pub fn set_ldap_failure(&self, message: Option<String>) {
        self.shared.lock().ldap_failure = message;
    }

    /// Every user assigned to a dynamic VM, in directory order.
    pub fn assignments(&self) -> Vec<Assignment> {
        assignments(&self.shared.lock().directory)
    }

    /// How many requests reached the server (API and introspection alike).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops the server, letting open requests finish for a moment.
    pub async fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(Duration::from_millis(200)));
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn assignments(directory: &Directory) -> Vec<Assignment> {
    directory
        .vms
        .iter()
        .filter(|vm| vm.vm_type == VmType::Dynamic)
        .flat_map(|vm| {
            vm.people.iter().map(|user| Assignment {
                vm: vm.uuid.clone(),
                pool: vm.pool.clone(),
                user: user.clone(),
            })
        })
        .collect()
}

#[derive(Serialize)]
struct StateView {
    config: Config,
    ldap_failure: bool,
    requests: u64,
    assignments: Vec<Assignment>,
}

async fn state_handler(State(shared): State<Arc<Shared>>) -> Json<StateView> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let server = shared.lock();
    Json(StateView {
        config: server.config.clone(),
        ldap_failure: server.ldap_failure.is_some(),
        requests: shared.requests.load(Ordering::Relaxed),
        assignments: assignments(&server.directory),
    })
}

/// The part of `path` after the application's base URL (`/vm-manager` or
/// `/vm-manager/index.php`), or `None` when the path is outside it.
fn path_info(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(BASE_PATH)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    match rest.strip_prefix("/index.php") {
        Some(after) if after.is_empty() || after.starts_with('/') => Some(after),
        _ => Some(rest),
    }
}

async fn api_handler(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let path = uri.path();
    let reply = match path_info(path) {
        None => api::apache_not_found(path),
        Some(info) => {
            let request = api::Request {
                is_get: method == Method::GET,
                path_info: info,
                query: uri.query(),
                authorization: headers
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
                remote_ip: peer.ip(),
                server_ip: shared.server_ip,
            };
            shared.lock().handle(&request)
        }
    };
    tracing::debug!(%method, path, status = reply.status, "fosscloud-sim request");
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    if reply.session_cookie {
        let id = shared.sessions.fetch_add(1, Ordering::Relaxed);
        if let Ok(cookie) = HeaderValue::from_str(&format!("PHPSESSID=sim{id:029x}; path=/")) {
            headers.insert(header::SET_COOKIE, cookie);
        }
    }
    response
}

mod tls {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::SimError;

    fn err(e: impl std::fmt::Display) -> SimError {
        SimError::Tls(e.to_string())
    }

    /// A fresh CA and a server certificate it signed, for `names`; returns the rustls
    /// configuration (ring provider, no process-wide default needed) and the CA's PEM.
    pub(super) fn server_config(
        names: Vec<String>,
    ) -> Result<(rustls::ServerConfig, String), SimError> {
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fosscloud-sim test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).map_err(err)?;

        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(names).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "fosscloud-sim");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;

        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((config, ca.pem()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_strips_the_base_and_index_php() {
        assert_eq!(path_info("/vm-manager/api/vm/list"), Some("/api/vm/list"));
        assert_eq!(
            path_info("/vm-manager/index.php/api/vm/list"),
            Some("/api/vm/list")
        );
        assert_eq!(path_info("/vm-manager"), Some(""));
        assert_eq!(path_info("/vm-managerx/api"), None);
        assert_eq!(path_info("/api/vm/list"), None);
        assert_eq!(path_info("/vm-manager/index.phpx"), Some("/index.phpx"));
    }
}
