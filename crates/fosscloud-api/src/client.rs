//! The HTTP client: one builder, one request path, one place that reads the envelope.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use url::Url;

use crate::code::Code;
use crate::error::{Error, Result};
use crate::tls::{certificates_from_pem, client_config, Fingerprint, Trust};
use crate::types::{MacAddr, PoolId, Realm, RealmId, Secret, Vm, VmKind};

/// How long one request may take unless [`ClientBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one FOSS-Cloud server's REST API.
///
/// Cheap to clone (the HTTP connection pool and credentials are shared) and safe to use from
/// many tasks. Credentials travel only in an `Authorization: Basic` header, never in a URL.
#[derive(Clone)]
pub struct FossCloudClient {
    inner: Arc<Inner>,
    // Outside the Arc so `with_realm` is cheap.
    realm: Option<RealmId>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    credentials: Option<(String, Secret)>,
}

impl fmt::Debug for FossCloudClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FossCloudClient")
            .field("base", &self.inner.base.as_str())
            .field("user", &self.inner.credentials.as_ref().map(|(u, _)| u))
            .field("password", &self.inner.credentials.as_ref().map(|(_, p)| p))
            .field("realm", &self.realm)
            .finish()
    }
}

/// Builds a [`FossCloudClient`]; see [`FossCloudClient::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    credentials: Option<(String, Secret)>,
    realm: Option<RealmId>,
    allow_http: bool,
    root_pems: Vec<Vec<u8>>,
    pin: Option<Fingerprint>,
    accept_invalid_certs: bool,
    timeout: Duration,
}

impl ClientBuilder {
    /// The user name and password sent with every call that needs authentication.
    ///
    /// Without credentials those calls are sent without an `Authorization` header and the
    /// server answers [`Code::HttpAuthMissing`]. Empty values are sent as they are: the server
    /// answers [`Code::CredentialsEmpty`], and this crate does not second-guess it.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The realm appended to every authenticated call as `/realm/<id>`; without it the server
    /// uses its default realm.
    pub fn realm(mut self, realm: RealmId) -> Self {
        self.realm = Some(realm);
        self
    }

    /// Allows a plain `http://` base URL. Off by default: Basic credentials over plain HTTP
    /// can be read by anyone on the path. Meant for a local simulator.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Trusts the certificates of a PEM bundle, in addition to the system roots: each one is
    /// accepted as the server's own certificate when the server presents exactly it (a
    /// self-signed server certificate, even one marked `CA:TRUE`), and as a CA that issued
    /// the server's certificate otherwise (a school's own CA, the simulator's).
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// Accepts exactly the server certificate with this SHA-256 fingerprint and nothing else
    /// (host name and expiry are not checked, as with Proxmox VE's fingerprint pinning).
    /// Takes precedence over [`ClientBuilder::add_root_certificate_pem`].
    pub fn pin_fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.pin = Some(fingerprint);
        self
    }

    /// Accepts any server certificate, including self-signed and expired ones.
    ///
    /// Dangerous: anyone on the path can then read the credentials. Prefer
    /// [`ClientBuilder::add_root_certificate_pem`].
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// The time one request may take, connection included (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// Fails when the base URL does not parse, is not `https://` (unless
    /// [`ClientBuilder::allow_http`]), carries credentials, a query or a fragment, when the user
    /// name contains `:` (Basic authentication cannot carry it) or a CA PEM does not parse.
    pub fn build(self) -> Result<FossCloudClient> {
        let base = parse_base_url(&self.base_url, self.allow_http)?;
        if let Some((user, _)) = &self.credentials {
            if user.contains(':') {
                return Err(Error::invalid_input(
                    "user name",
                    user,
                    "a name without ':' (HTTP Basic authentication cannot carry it)",
                ));
            }
        }
        let trust = if self.accept_invalid_certs {
            Trust::Insecure
        } else if let Some(pin) = self.pin {
            Trust::Pinned(pin)
        } else {
            let mut certs = Vec::new();
            for pem in &self.root_pems {
                certs.extend(certificates_from_pem(pem)?);
            }
            Trust::Roots(certs)
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(client_config(&trust)?)
            .timeout(self.timeout)
            // A redirect would be answered by an HTML page anyway; not following it keeps the
            // Basic header on the host it was meant for.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("labctl-fosscloud-api/", env!("CARGO_PKG_VERSION")));
        let http = http.build().map_err(|e| Error::InvalidInput {
            what: "HTTP client settings",
            value: e.to_string(),
            allowed: "settings the TLS stack accepts",
        })?;
        Ok(FossCloudClient {
            inner: Arc::new(Inner {
                http,
                base,
                credentials: self.credentials,
            }),
            realm: self.realm,
        })
    }
}

fn parse_base_url(text: &str, allow_http: bool) -> Result<Url> {
    let url = Url::parse(text).map_err(|_| {
        Error::invalid_input(
            "base URL",
            text,
            "an absolute URL such as https://fc.example.org/vm-manager",
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        // Never echo the credentials back.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(Error::InvalidInput {
            what: "base URL",
            value: shown.to_string(),
            allowed: "a URL without user or password (pass them to .credentials())",
        });
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(Error::invalid_input(
                "base URL",
                text,
                "an https:// URL (plain http:// sends the password readable on the wire; allow it with .allow_http(true) for a local simulator)",
            ))
        }
        _ => {
            return Err(Error::invalid_input(
                "base URL",
                text,
                "an https:// URL",
            ))
        }
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::invalid_input(
            "base URL",
            text,
            "a URL with a host, such as https://fc.example.org/vm-manager",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid_input(
            "base URL",
            text,
            "a URL without query or fragment",
        ));
    }
    if let Some(url::Host::Ipv4(addr)) = url.host() {
        // The URL standard reads `10.1`, `010.0.0.1` or `0x0a000001` as 10.0.0.1, 8.0.0.1,
        // 10.0.0.1: a typo such as `192.168.1` would send the credentials to another machine.
        let authority = text.split_once("://").map_or("", |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if host != addr.to_string() {
            return Err(Error::invalid_input(
                "base URL",
                text,
                "an IPv4 host written as a dotted quad (all four decimal parts, e.g. https://10.0.0.5/vm-manager) or a host name that does not end in a number",
            ));
        }
    }
    Ok(url)
}

impl FossCloudClient {
    /// Starts building a client for the vm-manager at `base_url`, e.g.
    /// `https://fc.example.org/vm-manager` (the API lives under `<base>/api/...`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            credentials: None,
            realm: None,
            allow_http: false,
            root_pems: Vec::new(),
            pin: None,
            accept_invalid_certs: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The base URL the client was built with.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The realm appended to authenticated calls, if any.
    pub fn realm(&self) -> Option<&RealmId> {
        self.realm.as_ref()
    }

    /// A client sharing this one's connections and credentials, with another realm (`None`:
    /// the server's default realm).
    pub fn with_realm(&self, realm: Option<RealmId>) -> Self {
        FossCloudClient {
            inner: Arc::clone(&self.inner),
            realm,
        }
    }

    /// Checks the credentials (`GET /api/user/login`, code 200001).
    pub async fn login(&self) -> Result<()> {
        self.call(&["user", "login"], true, Code::LoginOk).await?;
        Ok(())
    }

    /// Lists the server's realms (`GET /api/server/realms`). Needs no authentication, so no
    /// credentials are sent.
    pub async fn realms(&self) -> Result<Vec<Realm>> {
        self.call(&["server", "realms"], false, Code::RealmsOk)
            .await?
            .take("realms")
    }

    /// Lists VMs (`GET /api/vm/list[/<kind>]`, code 200031).
    ///
    /// Dynamic pools with a free VM show as one [`VmStatus::Assignable`](crate::VmStatus)
    /// stub each; assign one with [`FossCloudClient::assign`].
    pub async fn list_vms(&self, kind: VmKind) -> Result<Vec<Vm>> {
        let mut segments = vec!["vm", "list"];
        segments.extend(kind.segment());
        self.call(&segments, true, Code::ListOk).await?.take("vms")
    }

    /// Assigns a free Desktop VM of a dynamic pool to the user (`GET /api/vm/assign/<pool>`,
    /// code 200041) and returns it.
    ///
    /// Not idempotent: every call takes another free VM, as the real server does, even when
    /// the user already has one of the pool. Check [`FossCloudClient::list_vms`] first.
    pub async fn assign(&self, pool: &PoolId) -> Result<Vm> {
        self.call(&["vm", "assign", pool.as_str()], true, Code::AssignOk)
            .await?
            .take("vm")
    }

    /// The VM mapped to a MAC address (FC4School, `GET /api/vm/mapping/list[/<mac>]`, code
    /// 200051); call it as the dynvmuser.
    ///
    /// Without a MAC the server looks up the caller's address in its ARP table, which works
    /// only from its local network; with one, the server must allow `macByParameter`.
    pub async fn mapping_list(&self, mac: Option<MacAddr>) -> Result<Vm> {
        let mac = mac.map(|m| m.to_string());
        let mut segments = vec!["vm", "mapping", "list"];
        segments.extend(mac.as_deref());
        self.call(&segments, true, Code::MappingListOk)
            .await?
            .take("vm")
    }

    /// Assigns the VM mapped to a MAC address (FC4School, `GET
    /// /api/vm/mapping/assign/<pool>[/<mac>]`, code 200061); call it as the dynvmuser.
    pub async fn mapping_assign(&self, pool: &PoolId, mac: Option<MacAddr>) -> Result<Vm> {
        let mac = mac.map(|m| m.to_string());
        let mut segments = vec!["vm", "mapping", "assign", pool.as_str()];
        segments.extend(mac.as_deref());
        self.call(&segments, true, Code::MappingAssignOk)
            .await?
            .take("vm")
    }

    fn url(&self, segments: &[&str], with_realm: bool) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("build() refuses base URLs that cannot be a base");
            path.pop_if_empty().push("api").extend(segments);
            if let (true, Some(realm)) = (with_realm, &self.realm) {
                path.push("realm").push(realm.as_str());
            }
        }
        url
    }

    /// Sends one GET and checks that the answer carries the expected success code.
    async fn call(&self, segments: &[&str], authenticated: bool, expected: Code) -> Result<Answer> {
        // The realm is meaningless (and ignored by the server) on unauthenticated calls.
        let url = self.url(segments, authenticated);
        let mut request = self
            .inner
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if authenticated {
            if let Some((user, password)) = &self.inner.credentials {
                // reqwest marks this header sensitive, so it is not logged either.
                request = request.basic_auth(user, Some(password.expose()));
            }
        }
        let network = |source: reqwest::Error| Error::Network {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(network)?;
        let answer = read_answer(url.as_str(), status, content_type.as_deref(), &bytes);
        tracing::debug!(
            path = url.path(),
            status,
            code = answer.as_ref().ok().map(|a| a.code.number()),
            "FOSS-Cloud API call"
        );
        let answer = answer?;
        if answer.code != expected {
            return Err(answer.decode_error(&format!(
                "expected code {}, got {}",
                expected.number(),
                answer.code.number()
            )));
        }
        Ok(answer)
    }
}

/// One successful API answer: the envelope's code and the data keys next to it.
///
/// `Debug` shows the keys, not the values (a VM's SPICE password is among them).
#[derive(Clone)]
pub struct Answer {
    /// The URL that was requested.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The envelope's code (a success code).
    pub code: Code,
    data: Map<String, Value>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("url", &self.url)
            .field("status", &self.status)
            .field("code", &self.code)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Answer {
    /// Reads the data key `key` (`vms`, `vm`, `realms`) as `T`.
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let Some(value) = self.data.get(key) else {
            return Err(self.decode_error(&format!("the answer has no \"{key}\"")));
        };
        T::deserialize(value).map_err(|e| self.decode_error(&format!("\"{key}\": {e}")))
    }

    fn decode_error(&self, message: &str) -> Error {
        decode_error(&self.url, self.status, message, &self.data)
    }
}

/// Classifies one HTTP answer of the API without doing any IO: the only place that decides
/// between success, API error, server-internal error and "not the API at all".
///
/// - not a JSON object (the server's HTML 404 for unmatched paths) → [`Error::NotApi`];
/// - code 500000 (sent with HTTP 400) → [`Error::ServerInternal`];
/// - an HTTP error status or a non-success code → [`Error::Api`];
/// - no numeric `code` → [`Error::Decode`].
pub fn read_answer(
    url: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Answer> {
    let data = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        _ => {
            let text = String::from_utf8_lossy(body);
            return Err(Error::NotApi {
                status,
                url: url.to_owned(),
                content_type: content_type.map(str::to_owned),
                body_start: text.chars().take(256).collect(),
            });
        }
    };
    let Some(raw_code) = data.get("code").and_then(number) else {
        return Err(decode_error(
            url,
            status,
            "the answer has no numeric \"code\"",
            &data,
        ));
    };
    let code = Code::from_number(raw_code);
    let dev_description = data.get("devDescription").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    });
    if code == Code::InternalError {
        return Err(Error::ServerInternal {
            status,
            dev_description,
        });
    }
    if !(200..300).contains(&status) || !code.is_success() {
        return Err(Error::Api {
            status,
            code,
            raw_code,
            dev_description,
        });
    }
    Ok(Answer {
        url: url.to_owned(),
        status,
        code,
        data,
    })
}

/// Reads an integer sent as a number or numeric string.
fn number(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decode_error(url: &str, status: u16, message: &str, body: &Map<String, Value>) -> Error {
    let mut redacted = Value::Object(body.clone());
    redact(&mut redacted);
    Error::Decode {
        status,
        url: url.to_owned(),
        message: message.to_owned(),
        redacted_body: redacted.to_string(),
    }
}

/// Replaces every `password` value (any depth) by `"***"`.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key.eq_ignore_ascii_case("password") {
                    *inner = Value::String("***".into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> FossCloudClient {
        FossCloudClient::builder(base)
            .credentials("alice", "alice-pw")
            .build()
            .unwrap()
    }

    #[test]
    fn urls_append_segments_and_realm() {
        let c = client("https://fc.example.org/vm-manager");
        assert_eq!(
            c.url(&["vm", "list"], true).as_str(),
            "https://fc.example.org/vm-manager/api/vm/list"
        );
        let c = c.with_realm(Some("4000020".parse().unwrap()));
        assert_eq!(
            c.url(&["vm", "assign", "p-1"], true).as_str(),
            "https://fc.example.org/vm-manager/api/vm/assign/p-1/realm/4000020"
        );
        assert_eq!(
            c.url(&["server", "realms"], false).as_str(),
            "https://fc.example.org/vm-manager/api/server/realms"
        );
        let c = client("https://fc.example.org/vm-manager/");
        assert_eq!(
            c.url(&["user", "login"], true).as_str(),
            "https://fc.example.org/vm-manager/api/user/login"
        );
    }

    #[test]
    fn base_url_rules() {
        let err = FossCloudClient::builder("http://fc.example.org/vm-manager")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("allow_http"), "{err}");
        assert!(FossCloudClient::builder("http://127.0.0.1:1/vm-manager")
            .allow_http(true)
            .build()
            .is_ok());

        let err = FossCloudClient::builder("https://alice:s3cret@fc.example.org/vm-manager")
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("alice"), "{text}");
        assert!(text.contains(".credentials()"), "{text}");

        for bad in [
            "fc.example.org",
            "ftp://fc.example.org/",
            "https://fc.example.org/vm-manager?x=1",
            "https://fc.example.org/vm-manager#top",
        ] {
            assert!(FossCloudClient::builder(bad).build().is_err(), "{bad}");
        }
        // Shorthand IPv4 forms the URL standard expands to another address.
        for bad in [
            "https://192.168.1/vm-manager",
            "https://010.0.0.1/vm-manager",
            "https://0x7f.1:8443/",
            "https://3/",
        ] {
            let err = FossCloudClient::builder(bad)
                .build()
                .unwrap_err()
                .to_string();
            assert!(err.contains("dotted quad") && err.contains(bad), "{err}");
        }
        for good in ["https://10.0.0.5/vm-manager", "https://10.0.0.5:8443/"] {
            assert!(FossCloudClient::builder(good).build().is_ok(), "{good}");
        }
        let err = FossCloudClient::builder("https://fc.example.org/")
            .credentials("a:b", "pw")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("':'"), "{err}");
        let err = FossCloudClient::builder("https://fc.example.org/")
            .add_root_certificate_pem(b"not a pem".to_vec())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("PEM"), "{err}");
    }

    #[test]
    fn client_is_shareable_across_tasks() {
        fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync_clone::<FossCloudClient>();
        let a = client("https://fc.example.org/vm-manager");
        let b = a.with_realm(Some("4000020".parse().unwrap()));
        assert!(
            Arc::ptr_eq(&a.inner, &b.inner),
            "clones share one connection pool"
        );
        assert_eq!(a.realm(), None);
        assert_eq!(b.realm().map(RealmId::as_str), Some("4000020"));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = client("https://fc.example.org/vm-manager");
        let text = format!("{c:?}");
        assert!(!text.contains("alice-pw"), "{text}");
        assert!(text.contains("***"), "{text}");
    }

    #[test]
    fn read_answer_classifies() {
        let ok = read_answer(
            "u",
            200,
            Some("application/json"),
            br#"{"status":200,"code":200041,"vm":{"password":"s3cr3t"}}"#,
        )
        .unwrap();
        assert_eq!(ok.code, Code::AssignOk);
        assert!(!format!("{ok:?}").contains("s3cr3t"));
        let e = read_answer(
            "u",
            400,
            None,
            br#"{"status":400,"code":500000,"devDescription":"ldap down"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::ServerInternal { status: 400, .. }),
            "{e:?}"
        );
        let e = read_answer("u", 403, None, br#"{"status":403,"code":"400068"}"#).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Api {
                    code: Code::MappingAssignMacParamDisabled,
                    raw_code: 400_068,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = read_answer("u", 404, Some("text/html"), b"<html>Error 404</html>").unwrap_err();
        assert!(matches!(e, Error::NotApi { status: 404, .. }), "{e:?}");
        let e = read_answer(
            "u",
            200,
            None,
            br#"{"status":200,"vm":{"password":"s3cr3t"}}"#,
        )
        .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            matches!(e, Error::Decode { .. }) && !text.contains("s3cr3t"),
            "{text}"
        );
        let ok = read_answer("u", 200, None, br#"{"status":200,"code":200031,"vms":5}"#).unwrap();
        let e = ok.take::<Vec<crate::Vm>>("vms").unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    }

    #[test]
    fn redaction_reaches_nested_passwords() {
        let mut v: Value =
            serde_json::json!({"vms":[{"password":"x1"},{"Password":5}],"password":"y"});
        redact(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("x1") && !text.contains(":5") && !text.contains("\"y\""),
            "{text}"
        );
    }
}
