//! The client: builder, authentication state, request execution, envelope unwrapping.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use crate::credentials::{ApiToken, TotpSource, Userid};
use crate::error::{Error, Result, RETRYABLE_STATUS};
use crate::params::Params;
use crate::retry::RetryPolicy;
use crate::ticket::{self, freshness, Freshness, LoginOutcome, Session, SharedClock, SystemClock};
use crate::tls::{find_pin_mismatch, find_tls_error, walk_chain, TlsOptions};
use crate::uri::base_uri;
use crate::Secret;

/// Path of the login call.
const TICKET_PATH: &str = "/access/ticket";
/// Idle pooled connections are dropped before PVE's 5 s keep-alive timeout closes them.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Longest body excerpt kept in an error.
const BODY_EXCERPT: usize = 512;

/// One request as it was sent, given to the observer (see [`PveClientBuilder::observer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// HTTP method.
    pub method: Method,
    /// Path relative to `/api2/json`, as sent (percent-encoded segments, no query).
    pub path: String,
    /// Parameter names and values in order; secret values (`password`, `tfa-challenge`, …)
    /// are `***`.
    pub params: Vec<(String, String)>,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
}

/// A function called once per attempt, just before it is sent (retries and logins included).
pub type Observer = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

enum Auth {
    Ticket {
        user: Userid,
        password: Secret,
        totp: Option<TotpSource>,
    },
    Token(ApiToken),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Ticket { user, totp, .. } => f
                .debug_struct("Ticket")
                .field("user", &user.as_str())
                .field("password", &"***")
                .field("totp", &totp.is_some())
                .finish(),
            Auth::Token(t) => f.debug_tuple("Token").field(t).finish(),
        }
    }
}

/// Builds a [`PveClient`]; see [`PveClient::builder`].
#[must_use]
pub struct PveClientBuilder {
    host: String,
    password: Option<(String, Secret)>,
    totp: Option<TotpSource>,
    token: Option<ApiToken>,
    tls: TlsOptions,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    observer: Option<Observer>,
    clock: SharedClock,
}

impl fmt::Debug for PveClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PveClientBuilder")
            .field("host", &self.host)
            .field("user", &self.password.as_ref().map(|(u, _)| u))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("totp", &self.totp)
            .field("token", &self.token)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl PveClientBuilder {
    fn new(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            password: None,
            totp: None,
            token: None,
            tls: TlsOptions::default(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            observer: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Log in with user (`name@realm`) and password; tickets are renewed automatically.
    pub fn password(mut self, user: &str, password: impl Into<Secret>) -> Self {
        self.password = Some((user.to_owned(), password.into()));
        self
    }

    /// The second factor for users with TOTP enabled (two-step TFA login).
    pub fn totp(mut self, totp: TotpSource) -> Self {
        self.totp = Some(totp);
        self
    }

    /// Authenticate with an API token (no login, no CSRF token).
    pub fn token(mut self, token: ApiToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Certificate checking policy (default: system roots).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Per-request timeout, from sending to the full answer (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Timeout for establishing a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retry policy for transient failures (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Called once per attempt, just before it is sent (retries and logins included), with
    /// secrets redacted; tests use it to check requests against the PVE schema.
    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The clock used to age tickets (default: system clock); tests inject their own.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and builds the client. Nothing is sent yet.
    pub fn build(self) -> Result<PveClient> {
        let base = base_uri(&self.host)?;
        let auth = match (self.password, self.token) {
            (Some(_), Some(_)) => {
                return Err(Error::Config {
                    message: "both a password and an API token were given; choose one".to_owned(),
                })
            }
            (None, None) => {
                return Err(Error::Config {
                    message: "no credentials: call .password(user, password) or .token(token)"
                        .to_owned(),
                })
            }
            (Some((user, password)), None) => Auth::Ticket {
                user: user.parse()?,
                password,
                totp: self.totp,
            },
            (None, Some(token)) => {
                if self.totp.is_some() {
                    return Err(Error::Config {
                        message: "a TOTP source only applies to password logins, not API tokens"
                            .to_owned(),
                    });
                }
                Auth::Token(token)
            }
        };
        // Plain http (simulators, proxies) never uses TLS: redirects are off, so skip loading
        // the system's CA store.
        let tls = if base.scheme() == "http" {
            TlsOptions::unused_config()?
        } else {
            self.tls.client_config()?
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .connect_timeout(self.connect_timeout)
            // PVE never redirects; following one could carry credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("labctl-pve-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(PveClient {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                timeout: self.timeout,
                retry: self.retry,
                observer: self.observer,
                clock: self.clock,
                session: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

/// A ticket in use, with a generation number so concurrent callers that saw the same
/// rejected ticket trigger a single renewal.
struct TicketState {
    session: Session,
    generation: u64,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    timeout: Duration,
    retry: RetryPolicy,
    observer: Option<Observer>,
    clock: SharedClock,
    session: RwLock<Option<Arc<TicketState>>>,
    /// Held while logging in or renewing: one renewal at a time.
    refresh: tokio::sync::Mutex<()>,
}

/// A PVE API client: cheap to clone, safe to share between tasks.
///
/// Paths are relative to `/api2/json` and start with `/`; build them with
/// [`api_path`](crate::api_path). Answers are unwrapped from PVE's `{"data": …}` envelope into
/// `T` (`serde_json::Value`, `()` and `Option<T>` for `{"data":null}` work).
#[derive(Clone)]
pub struct PveClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for PveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PveClient")
            .field("base_url", &self.inner.base.as_str())
            .field("auth", &self.inner.auth)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// Authentication headers for one request.
struct AuthHeaders {
    cookie: Option<Secret>,
    csrf: Option<Secret>,
    authorization: Option<Secret>,
    /// The ticket generation used, `None` for tokens and the login call.
    generation: Option<u64>,
}

impl AuthHeaders {
    fn none() -> Self {
        Self {
            cookie: None,
            csrf: None,
            authorization: None,
            generation: None,
        }
    }
}

fn sensitive(value: &Secret) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value.expose()).map_err(|_| Error::InvalidInput {
        what: "header value",
        input: "***".to_owned(),
        reason: "it contains characters not allowed in an HTTP header".to_owned(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn is_body_method(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT
}

fn check_path(path: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidInput {
        what: "API path",
        input: path.to_owned(),
        reason: format!("{reason}; build paths with pve_auth::api_path(&[\"nodes\", node, …])"),
    };
    if !path.starts_with('/') {
        return Err(bad("it must start with '/'"));
    }
    if path.starts_with("/api2/") {
        return Err(bad("it is relative to /api2/json, leave that prefix out"));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "it contains '?', '#' or whitespace (parameters go in Params)",
        ));
    }
    Ok(())
}

impl PveClient {
    /// Starts building a client for `host` (anything [`base_uri`](crate::base_uri) accepts).
    pub fn builder(host: &str) -> PveClientBuilder {
        PveClientBuilder::new(host)
    }

    /// The API base URL, `https://host:port/api2/json`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The user the client acts as (for tokens: the token's user).
    pub fn userid(&self) -> &Userid {
        match &self.inner.auth {
            Auth::Ticket { user, .. } => user,
            Auth::Token(t) => t.userid(),
        }
    }

    /// The id PVE records as task owner: `user@realm`, or `user@realm!tokenid` for tokens.
    pub fn auth_id(&self) -> String {
        match &self.inner.auth {
            Auth::Ticket { user, .. } => user.to_string(),
            Auth::Token(t) => t.full_id(),
        }
    }

    /// Logs in now (password clients: a fresh ticket, including the TFA step; token clients:
    /// `GET /version` to check the token). Without it the first request logs in lazily.
    pub async fn login(&self) -> Result<()> {
        match &self.inner.auth {
            Auth::Token(_) => self
                .get::<serde_json::Value>("/version", &Params::new())
                .await
                .map(drop),
            Auth::Ticket { .. } => {
                let _guard = self.inner.refresh.lock().await;
                let session = self.full_login().await?;
                self.store(session);
                Ok(())
            }
        }
    }

    /// `GET path` with `params` in the query string.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T> {
        self.request(Method::GET, path, params).await
    }

    /// `POST path` with `params` form-encoded.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T> {
        self.request(Method::POST, path, params).await
    }

    /// `PUT path` with `params` form-encoded.
    pub async fn put<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T> {
        self.request(Method::PUT, path, params).await
    }

    /// `DELETE path` with `params` in the query string (PVE rejects a DELETE body).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T> {
        self.request(Method::DELETE, path, params).await
    }

    /// Any of the four methods; the others are shorthands for this.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<T> {
        if ![Method::GET, Method::POST, Method::PUT, Method::DELETE].contains(&method) {
            return Err(Error::InvalidInput {
                what: "HTTP method",
                input: method.to_string(),
                reason: "PVE's API uses GET, POST, PUT and DELETE only".to_owned(),
            });
        }
        check_path(path)?;
        let body = self.send_authenticated(&method, path, params).await?;
        unwrap_envelope(&method, path, &body)
    }

    async fn send_authenticated(
        &self,
        method: &Method,
        path: &str,
        params: &Params,
    ) -> Result<Vec<u8>> {
        let mut renewed = false;
        loop {
            let headers = self.auth_headers(method).await?;
            match self.send_with_retries(method, path, params, &headers).await {
                Err(e) if e.status() == Some(401) && !renewed => {
                    let Some(generation) = headers.generation else {
                        return Err(e);
                    };
                    // Re-authenticate once, then fail.
                    renewed = true;
                    tracing::debug!(path, "got 401 with a ticket; renewing it once");
                    self.reauthenticate(generation).await?;
                }
                other => return other,
            }
        }
    }

    async fn auth_headers(&self, method: &Method) -> Result<AuthHeaders> {
        match &self.inner.auth {
            Auth::Token(token) => Ok(AuthHeaders {
                authorization: Some(token.header_value()),
                ..AuthHeaders::none()
            }),
            Auth::Ticket { .. } => {
                let state = self.current_session().await?;
                Ok(AuthHeaders {
                    cookie: Some(Secret::new(format!(
                        "PVEAuthCookie={}",
                        state.session.ticket.expose()
                    ))),
                    // PVE wants the CSRF token on every non-GET request.
                    csrf: (*method != Method::GET).then(|| state.session.csrf.clone()),
                    authorization: None,
                    generation: Some(state.generation),
                })
            }
        }
    }

    fn snapshot(&self) -> Option<Arc<TicketState>> {
        match self.inner.session.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, session: Session) -> Arc<TicketState> {
        let mut guard = match self.inner.session.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let generation = guard.as_ref().map_or(1, |s| s.generation + 1);
        let state = Arc::new(TicketState {
            session,
            generation,
        });
        *guard = Some(state.clone());
        state
    }

    fn freshness_of(&self, state: &TicketState) -> Freshness {
        freshness(state.session.age(self.inner.clock.now()))
    }

    /// A usable ticket: the current one if fresh, else renewed or newly logged in (once, even
    /// with many concurrent callers).
    async fn current_session(&self) -> Result<Arc<TicketState>> {
        if let Some(state) = self.snapshot() {
            if self.freshness_of(&state) == Freshness::Fresh {
                return Ok(state);
            }
        }
        let _guard = self.inner.refresh.lock().await;
        let current = self.snapshot();
        if let Some(state) = &current {
            if self.freshness_of(state) == Freshness::Fresh {
                return Ok(state.clone()); // another caller renewed it while we waited
            }
        }
        let session = self.renew_or_login(current.as_deref()).await?;
        Ok(self.store(session))
    }

    /// After a 401 with ticket generation `seen`: renew unless someone already did.
    async fn reauthenticate(&self, seen: u64) -> Result<()> {
        let _guard = self.inner.refresh.lock().await;
        let current = self.snapshot();
        if let Some(state) = &current {
            if state.generation != seen {
                return Ok(());
            }
        }
        let session = self.renew_or_login(current.as_deref()).await?;
        self.store(session);
        Ok(())
    }

    async fn renew_or_login(&self, current: Option<&TicketState>) -> Result<Session> {
        let Auth::Ticket { user, .. } = &self.inner.auth else {
            return Err(Error::Config {
                message: "internal: ticket renewal on a token client".to_owned(),
            });
        };
        if let Some(state) = current {
            if self.freshness_of(state) != Freshness::Expired {
                let form = ticket::renew_form(user.as_str(), &state.session.ticket);
                match self.post_login(&form).await.and_then(ticket::parse_login) {
                    Ok(LoginOutcome::Done(session)) => {
                        tracing::debug!(user = %user, "PVE ticket renewed");
                        return Ok(session);
                    }
                    Ok(LoginOutcome::NeedTfa { .. }) => {
                        tracing::debug!("ticket renewal asked for TFA; logging in again")
                    }
                    Err(e) if e.is_auth() => {
                        tracing::debug!("ticket renewal rejected; logging in with the password")
                    }
                    // The ticket still works for up to half an hour: a passing network or
                    // gateway problem must not fail the caller's request. Renewal is retried
                    // before the next request.
                    Err(e)
                        if e.is_retryable()
                            || matches!(e, Error::Timeout { .. } | Error::Transport { .. }) =>
                    {
                        tracing::warn!(error = %e, "ticket renewal failed; keeping the current ticket for now");
                        return Ok(state.session.clone());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.full_login().await
    }

    async fn full_login(&self) -> Result<Session> {
        let Auth::Ticket {
            user,
            password,
            totp,
        } = &self.inner.auth
        else {
            return Err(Error::Config {
                message: "internal: password login on a token client".to_owned(),
            });
        };
        let first = self
            .post_login(&ticket::login_form(user.as_str(), password))
            .await?;
        let session = match ticket::parse_login(first)? {
            LoginOutcome::Done(session) => session,
            LoginOutcome::NeedTfa { challenge, .. } => {
                let Some(totp) = totp else {
                    return Err(Error::TfaRequired {
                        user: user.to_string(),
                    });
                };
                let code = totp.code()?;
                let second = self
                    .post_login(&ticket::tfa_form(user.as_str(), &challenge, &code))
                    .await?;
                match ticket::parse_login(second)? {
                    LoginOutcome::Done(session) => session,
                    LoginOutcome::NeedTfa { .. } => {
                        return Err(Error::Api {
                            method: "POST".to_owned(),
                            path: TICKET_PATH.to_owned(),
                            status: 401,
                            message: "the second factor was not accepted".to_owned(),
                            errors: BTreeMap::new(),
                        })
                    }
                }
            }
        };
        tracing::debug!(user = %user, "logged in to PVE");
        Ok(session)
    }

    async fn post_login(&self, form: &Params) -> Result<serde_json::Value> {
        let body = self
            .send_with_retries(&Method::POST, TICKET_PATH, form, &AuthHeaders::none())
            .await?;
        unwrap_envelope(&Method::POST, TICKET_PATH, &body)
    }

    async fn send_with_retries(
        &self,
        method: &Method,
        path: &str,
        params: &Params,
        headers: &AuthHeaders,
    ) -> Result<Vec<u8>> {
        let policy = &self.inner.retry;
        let started = tokio::time::Instant::now();
        // A password login or ticket renewal changes nothing on the server (tickets are
        // signed, not stored), so it is repeated like a read; the TFA step is not (its
        // one-time code may be refused the second time).
        let idempotent = *method == Method::GET
            || (path == TICKET_PATH && params.get("tfa-challenge").is_none());
        let mut attempt = 1;
        loop {
            let err = match self.send_once(method, path, params, headers, attempt).await {
                Ok(body) => return Ok(body),
                Err(e) => e,
            };
            let may_retry = match &err {
                // Never reached the server: safe for every method.
                Error::Connect { .. } => true,
                Error::Transport { closed: true, .. } => idempotent,
                // The daemon could not fork the task worker: nothing was started, so
                // repeating is safe for every method (bpg's client does the same).
                Error::Api { .. } if err.mentions("got no worker upid") => true,
                Error::Api { status, .. } => idempotent && RETRYABLE_STATUS.contains(status),
                _ => false,
            };
            if !may_retry || attempt >= policy.attempts() {
                return Err(err);
            }
            let delay = policy.delay(attempt);
            if started.elapsed() + delay > policy.time_budget() {
                return Err(err);
            }
            tracing::debug!(%method, path, attempt, ?delay, error = %err, "retrying PVE request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn url_for(&self, path: &str, query: Option<&Params>) -> Result<Url> {
        let base = self.inner.base.as_str().trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}{path}")).map_err(|e| Error::InvalidInput {
            what: "API path",
            input: path.to_owned(),
            reason: format!("it does not form a valid URL ({e})"),
        })?;
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.set_query(Some(&q.to_query()));
        }
        Ok(url)
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        params: &Params,
        headers: &AuthHeaders,
        attempt: u32,
    ) -> Result<Vec<u8>> {
        let body_method = is_body_method(method);
        let url = self.url_for(path, (!body_method).then_some(params))?;
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .timeout(self.inner.timeout);
        if let Some(cookie) = &headers.cookie {
            req = req.header(COOKIE, sensitive(cookie)?);
        }
        if let Some(csrf) = &headers.csrf {
            req = req.header("CSRFPreventionToken", sensitive(csrf)?);
        }
        if let Some(authorization) = &headers.authorization {
            req = req.header(AUTHORIZATION, sensitive(authorization)?);
        }
        if body_method {
            req = req
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(params.to_query());
        }
        if let Some(observer) = &self.inner.observer {
            observer(&RequestRecord {
                method: method.clone(),
                path: path.to_owned(),
                params: params.redacted(),
                attempt,
            });
        }
        tracing::debug!(%method, path, attempt, "PVE request");

        let response = req
            .send()
            .await
            .map_err(|e| self.transport_error(e, method, path, &url))?;
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .and_then(|r| std::str::from_utf8(r.as_bytes()).ok())
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, method, path, &url))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let err = api_error(method, path, status, reason, &body);
        tracing::debug!(%method, path, status = status.as_u16(), error = %err, "PVE request failed");
        Err(err)
    }

    fn transport_error(&self, e: reqwest::Error, method: &Method, path: &str, url: &Url) -> Error {
        // Show scheme, host and path only: never the query.
        let mut shown = url.clone();
        shown.set_query(None);
        let shown = shown.to_string();
        if let Some(mismatch) = find_pin_mismatch(&e) {
            return Error::FingerprintMismatch {
                url: shown,
                expected: mismatch.expected.to_string(),
                presented: mismatch.presented.to_string(),
            };
        }
        if let Some(message) = find_tls_error(&e) {
            return Error::Tls {
                url: shown,
                message,
            };
        }
        let message = chain_text(&e);
        if e.is_connect() {
            return Error::Connect {
                url: shown,
                message,
            };
        }
        if e.is_timeout() {
            return Error::Timeout {
                method: method.to_string(),
                path: path.to_owned(),
                after: self.inner.timeout,
            };
        }
        Error::Transport {
            method: method.to_string(),
            path: path.to_owned(),
            closed: is_closed(&e),
            message,
        }
    }
}

/// The error chain as one line, without the URL reqwest adds.
fn chain_text(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let top = format!("{}", ReqwestNoUrl(e));
    parts.push(top);
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last().is_none_or(|l| !l.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

struct ReqwestNoUrl<'a>(&'a reqwest::Error);

impl fmt::Display for ReqwestNoUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_connect() {
            f.write_str("connect error")
        } else if self.0.is_timeout() {
            f.write_str("timed out")
        } else if self.0.is_body() || self.0.is_decode() {
            f.write_str("error reading the answer")
        } else {
            f.write_str("error sending the request")
        }
    }
}

/// The server closed or reset the connection before answering.
fn is_closed(e: &reqwest::Error) -> bool {
    let mut closed = false;
    walk_chain(e, &mut |err| {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            closed |= h.is_incomplete_message() || h.is_closed() || h.is_canceled();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            closed |= matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            );
        }
    });
    closed
}

/// Builds the error for a non-success answer: message from the reason phrase, else the JSON
/// `message`, else the raw body, else the standard phrase.
fn api_error(
    method: &Method,
    path: &str,
    status: reqwest::StatusCode,
    reason: Option<String>,
    body: &[u8],
) -> Error {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let json_message = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(|m| m.as_str())
        .map(|m| m.trim_end().to_owned())
        .filter(|m| !m.is_empty());
    let errors: BTreeMap<String, String> = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(|e| e.as_object())
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.trim_end().to_owned(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    let raw = if json.is_none() {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        (!text.is_empty()).then(|| excerpt(text))
    } else {
        None
    };
    let message = reason
        .or(json_message)
        .or(raw)
        .or_else(|| status.canonical_reason().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    Error::Api {
        method: method.to_string(),
        path: path.to_owned(),
        status: status.as_u16(),
        message,
        errors,
    }
}

fn excerpt(text: &str) -> String {
    if text.len() <= BODY_EXCERPT {
        return text.to_owned();
    }
    let mut end = BODY_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The one place the `{"data": …}` envelope is unwrapped.
fn unwrap_envelope<T: DeserializeOwned>(method: &Method, path: &str, body: &[u8]) -> Result<T> {
    let decode = |source: serde_json::Error| Error::Decode {
        method: method.to_string(),
        path: path.to_owned(),
        source,
        body: if path == TICKET_PATH {
            "<login answer redacted>".to_owned()
        } else {
            excerpt(&String::from_utf8_lossy(body))
        },
    };
    let mut envelope: serde_json::Value = serde_json::from_slice(body).map_err(decode)?;
    let data = match envelope.get_mut("data") {
        Some(data) => data.take(),
        None => serde_json::Value::Null,
    };
    serde_json::from_value(data).map_err(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_unwraps_into_value_unit_option_and_structs() {
        let m = Method::GET;
        let v: serde_json::Value =
            unwrap_envelope(&m, "/version", br#"{"data":{"version":"8.2"}}"#).unwrap();
        assert_eq!(v["version"], "8.2");
        let () = unwrap_envelope(&m, "/x", br#"{"data":null}"#).unwrap();
        let o: Option<String> = unwrap_envelope(&m, "/x", br#"{"data":null}"#).unwrap();
        assert_eq!(o, None);
        let o: Option<String> = unwrap_envelope(&m, "/x", br#"{}"#).unwrap();
        assert_eq!(o, None);
        let s: String = unwrap_envelope(
            &m,
            "/x",
            br#"{"data":"UPID:pve1:1:2:3:qmstart:100:root@pam:","total":1}"#,
        )
        .unwrap();
        assert!(s.starts_with("UPID:"));
        let err = unwrap_envelope::<u32>(&m, "/x", br#"{"data":"abc"}"#).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }));
        assert!(err.to_string().contains(r#"{\"data\":\"abc\"}"#), "{err}");
        let err = unwrap_envelope::<u32>(
            &Method::POST,
            TICKET_PATH,
            br#"{"data":{"ticket":"PVE:secret"}}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("PVE:secret"));
    }

    #[test]
    fn api_error_prefers_reason_then_message_then_body() {
        let st = reqwest::StatusCode::INTERNAL_SERVER_ERROR;
        let body = br#"{"data":null,"message":"VM is locked (clone)\n"}"#;
        let e = api_error(&Method::POST, "/p", st, Some("from reason".into()), body);
        assert_eq!(e.message(), Some("from reason"));
        let e = api_error(&Method::POST, "/p", st, None, body);
        assert_eq!(e.message(), Some("VM is locked (clone)"));
        let e = api_error(
            &Method::DELETE,
            "/p",
            reqwest::StatusCode::NOT_IMPLEMENTED,
            None,
            b"Unexpected content for method 'DELETE'\n",
        );
        assert_eq!(e.message(), Some("Unexpected content for method 'DELETE'"));
        let e = api_error(
            &Method::GET,
            "/p",
            reqwest::StatusCode::UNAUTHORIZED,
            None,
            b"",
        );
        assert_eq!(e.message(), Some("Unauthorized"));
        let e = api_error(
            &Method::GET,
            "/p",
            reqwest::StatusCode::UNAUTHORIZED,
            None,
            br#"{"data":null}"#,
        );
        assert_eq!(e.message(), Some("Unauthorized"));
        let e = api_error(
            &Method::GET,
            "/p",
            reqwest::StatusCode::from_u16(596).unwrap(),
            None,
            b"",
        );
        assert_eq!(e.message(), Some("HTTP 596"));
        assert!(e.is_retryable());
    }

    #[test]
    fn paths_are_checked() {
        check_path("/nodes/pve1/qemu").unwrap();
        for bad in ["nodes", "/api2/json/nodes", "/nodes?x=1", "/a b", "/a#b"] {
            let err = check_path(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
