//! The HTTP layer: accept loop (plain or TLS) on hyper, the axum router, and the request
//! pipeline every `/api2/json` call goes through:
//! count → fault → body check (501) → auth (401) → schema route (501) → parameters (400) →
//! pvedaemon worker slot (protected calls) → handler → envelope.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::error::{ApiError, Params};
use crate::faults::Fault;
use crate::routing::{self, Reply, Req};
use crate::state::{Shared, DAEMON_WORKERS};
use crate::{auth, introspect};

/// Idle keep-alive connections are closed after this long.
const KEEP_ALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Seconds pveproxy waits for pvedaemon before answering 596.
const DAEMON_TIMEOUT: f64 = 30.0;

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Largest `PUT /_sim/guests/{vmid}/state` body (room for files above the 16 MiB caps).
const MAX_STATE_BODY: usize = 64 * 1024 * 1024;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
struct ResetMarker;

/// The error that makes hyper drop a connection without answering.
#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated connection reset")
    }
}

impl std::error::Error for ConnectionReset {}

/// The router: introspection under `/_sim/`, everything else through [`api`].
pub(crate) fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/state", get(introspect::state))
        .route(
            "/_sim/requests",
            get(introspect::requests).delete(introspect::reset_requests),
        )
        .route("/_sim/reachability", get(introspect::reachability))
        .route("/_sim/sdn", get(introspect::sdn))
        .route(
            "/_sim/sessions",
            get(crate::guest::sessions::list).post(crate::guest::sessions::post),
        )
        .route("/_sim/sessions/{id}", get(crate::guest::sessions::get))
        .route(
            "/_sim/guests/{vmid}/state",
            get(crate::guest::state_api::get)
                .put(crate::guest::state_api::put)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_STATE_BODY)),
        )
        .fallback(api)
        .with_state(sh)
}

/// Serve connections until `shutdown` turns true, then let open connections finish
/// their current request.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                let rx = shutdown.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            // A client that never finishes the handshake is dropped.
                            let handshake = tokio::time::timeout(KEEP_ALIVE_IDLE, acceptor.accept(stream));
                            match handshake.await {
                                Ok(Ok(stream)) => serve_conn(stream, app, rx).await,
                                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                        None => serve_conn(stream, app, rx).await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    // Open connections got the signal; give them a moment to finish, then drop them.
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

async fn serve_conn<I>(io: I, app: Router, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tower = TowerToHyperService::new(app);
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let fut = hyper::service::Service::call(&tower, req);
        async move {
            let resp: Response = match fut.await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            if resp.extensions().get::<ResetMarker>().is_some() {
                Err(ConnectionReset)
            } else {
                Ok(resp)
            }
        }
    });
    // pve-http-server drops idle keep-alive connections after 5 s (real time).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(KEEP_ALIVE_IDLE)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// How the body of an error answer looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorBody {
    /// `{"data":null,"message":"…\n"[,"errors":{…}]}` (handler errors).
    Json,
    /// Nothing (auth-stage 401s).
    Empty,
    /// The text (errors of the HTTP layer itself).
    Plain,
}

/// The HTTP answer for an error: reason phrase = first line of the message.
fn error_response(err: &ApiError, style: ErrorBody) -> Response {
    let body = match style {
        ErrorBody::Json => {
            let mut m = Map::new();
            m.insert("data".into(), Value::Null);
            m.insert("message".into(), json!(format!("{}\n", err.message)));
            if let Some(errors) = &err.errors {
                m.insert("errors".into(), json!(errors));
            }
            Body::from(Value::Object(m).to_string())
        }
        ErrorBody::Empty => Body::empty(),
        ErrorBody::Plain => Body::from(format!("{}\n", err.message)),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = err.status;
    let ctype = match style {
        ErrorBody::Json => "application/json;charset=UTF-8",
        _ => "text/plain;charset=UTF-8",
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    // PVE disables keep-alive after any answer >= 400.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    let first_line = err.message.lines().next().unwrap_or_default().to_owned();
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(first_line) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

/// `{"data": …}` (+ `total`).
fn ok_response(reply: Reply) -> Response {
    let mut m = Map::new();
    m.insert("data".into(), reply.data);
    if let Some(total) = reply.total {
        m.insert("total".into(), json!(total));
    }
    let mut resp = Response::new(Body::from(Value::Object(m).to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}

fn reset_response() -> Response {
    let mut resp = Response::new(Body::empty());
    resp.extensions_mut().insert(ResetMarker);
    resp
}

/// Convert a JSON body value to the string PVE's parameter checker sees.
fn json_param(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Merge query string and body (form or JSON) into one parameter map.
///
/// Parameters of type `array` (named in `arrays`) collect every value given for the key
/// (a form repeats the key; JSON sends an array; a single value is a one-item list, as
/// PVE normalises it) and reach the handler as one JSON array text, e.g. `["ip","-j"]`.
fn parse_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &Bytes,
    arrays: &[&str],
) -> Result<Params, ApiError> {
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut params = Params::new();
    if let Some(q) = query {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).map_err(|e| {
            ApiError::status(
                StatusCode::BAD_REQUEST,
                format!("unable to parse query string - {e}"),
            )
        })?;
        for (k, v) in pairs {
            if arrays.contains(&k.as_str()) {
                lists.entry(k).or_default().push(v);
            } else {
                params.insert(k, v);
            }
        }
    }
    let finish = |mut params: Params, lists: BTreeMap<String, Vec<String>>| {
        for (k, items) in lists {
            params.insert(k, Value::from(items).to_string());
        }
        params
    };
    if body.is_empty() {
        return Ok(finish(params, lists));
    }
    let is_json = content_type.is_some_and(|c| c.starts_with("application/json"));
    let body_pairs: Vec<(String, String)> = if is_json {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::status(
                StatusCode::BAD_REQUEST,
                format!("unable to parse JSON request body - {e}"),
            )
        })?;
        let Value::Object(obj) = v else {
            return Err(ApiError::status(
                StatusCode::BAD_REQUEST,
                "unable to parse JSON request body - expected an object",
            ));
        };
        let mut pairs = Vec::new();
        for (k, v) in &obj {
            match v {
                Value::Array(items) if arrays.contains(&k.as_str()) => {
                    let list = lists.entry(k.clone()).or_default();
                    list.extend(items.iter().filter_map(json_param));
                }
                _ => {
                    if let Some(s) = json_param(v) {
                        pairs.push((k.clone(), s));
                    }
                }
            }
        }
        pairs
    } else {
        serde_urlencoded::from_bytes(body).map_err(|e| {
            ApiError::status(
                StatusCode::BAD_REQUEST,
                format!("unable to parse request body - {e}"),
            )
        })?
    };
    for (k, v) in body_pairs {
        if arrays.contains(&k.as_str()) {
            lists.entry(k).or_default().push(v);
            continue;
        }
        if params.get(&k).is_some_and(|old| *old != v) {
            return Err(ApiError::status(
                StatusCode::BAD_REQUEST,
                "duplicate parameter (already defined in URI) with conflicting values!",
            ));
        }
        params.insert(k, v);
    }
    Ok(finish(params, lists))
}

/// The fallback handler: the PVE API.
async fn api(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(rel) = parts.uri.path().strip_prefix("/api2/json") else {
        let err = ApiError::status(StatusCode::NOT_FOUND, "Not Found");
        return error_response(&err, ErrorBody::Plain);
    };
    let rel = if rel.is_empty() { "/" } else { rel }.to_owned();
    let method = parts.method.clone();
    let schema = pve_schema::schema();
    let route = schema.find(method.as_str(), &rel);
    {
        let key = match &route {
            Some(m) => format!("{method} {}", m.endpoint.path),
            None => format!("{method} {rel}"),
        };
        let mut counts = sh.requests.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key).or_insert(0) += 1;
    }

    let fault = sh
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .draw_for(method.as_str(), &rel);
    if let Some(f) = &fault {
        tracing::debug!(%method, path = %rel, "injected fault: {f:?}");
    }
    let lose_answer = matches!(fault, Some(Fault::LostAnswer));
    match fault {
        Some(Fault::Reset) => return reset_response(),
        Some(Fault::LostAnswer) => {}
        Some(Fault::Status(status, text)) => {
            return error_response(&ApiError::status(status, text), ErrorBody::Json)
        }
        Some(Fault::Latency(secs)) => sh.sleep(secs).await,
        None => {}
    }

    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let err = ApiError::status(
                StatusCode::BAD_REQUEST,
                format!("unable to read request body - {e}"),
            );
            return error_response(&err, ErrorBody::Plain);
        }
    };
    if (method == Method::GET || method == Method::DELETE) && !bytes.is_empty() {
        let err = ApiError::status(
            StatusCode::NOT_IMPLEMENTED,
            format!("Unexpected content for method '{method}'"),
        );
        return error_response(&err, ErrorBody::Plain);
    }
    // pve-http-server authenticates before it looks for a handler (only the login and
    // the realm list are open), so an unknown path without credentials is a 401.
    let is_login = rel == "/access/ticket";
    let caller = if is_login || rel == "/access/domains" {
        None
    } else {
        match auth::authenticate(&sh, &parts.headers, &method) {
            Ok(c) => Some(c),
            Err(e) => {
                sh.sleep(3.0).await;
                return error_response(&e, ErrorBody::Empty);
            }
        }
    };
    let Some(route) = route else {
        return error_response(&routing::not_implemented(&method, &rel), ErrorBody::Json);
    };
    let template = route.endpoint.path.as_str();

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let arrays: Vec<&str> = route
        .endpoint
        .parameters
        .iter()
        .filter(|(_, p)| p.ty == Some(pve_schema::ParamType::Array))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut params = match parse_params(parts.uri.query(), content_type, &bytes, &arrays) {
        Ok(p) => p,
        Err(e) => return error_response(&e, ErrorBody::Json),
    };
    params.remove("_dc");
    let mut all: BTreeMap<String, String> = params.clone();
    all.extend(route.path_params.clone());
    if let Err(errors) = route.endpoint.validate(&all) {
        return error_response(&ApiError::params(errors), ErrorBody::Json);
    }

    // Protected calls run in one of the node's 3 pvedaemon workers; the rest wait.
    let daemon_node = route
        .path_params
        .get("node")
        .filter(|n| sh.has_node(n))
        .cloned()
        .unwrap_or_else(|| sh.cfg.nodes.first().cloned().unwrap_or_default());
    // The permit is held until the handler's future ends or is dropped (client gone).
    let mut permit = None;
    if let Some(sem) = sh
        .daemons
        .get(&daemon_node)
        .filter(|_| route.endpoint.protected)
    {
        // pveproxy gives up on a busy pvedaemon after 30 s of inactivity: 596.
        match tokio::time::timeout(sh.scaled(DAEMON_TIMEOUT), Arc::clone(sem).acquire_owned()).await
        {
            Ok(p) => permit = p.ok(),
            Err(_) => {
                let status = StatusCode::from_u16(596).expect("596 is a valid status code");
                return error_response(
                    &ApiError::status(status, "Connection timed out"),
                    ErrorBody::Json,
                );
            }
        }
        let busy = DAEMON_WORKERS.saturating_sub(sem.available_permits());
        sh.lock().note_daemon_busy(&daemon_node, busy);
    }

    let result = match &caller {
        None if is_login && method == Method::POST => {
            auth::create_ticket(&sh, &params, auth::has_token(&parts.headers))
                .map(|data| Reply { data, total: None })
        }
        None => Err(routing::not_implemented(&method, &rel)),
        Some(caller) => {
            let req = Req {
                method: &method,
                template,
                path: &rel,
                pp: &route.path_params,
                params: &params,
                caller,
            };
            routing::dispatch(&sh, &req).await
        }
    };

    drop(permit);
    // A link pulled, a guest stopped or gone: its established sessions end now.
    sh.lock().sweep_sessions();
    if lose_answer {
        return reset_response();
    }

    match &result {
        Ok(_) => tracing::debug!(%method, path = %rel, "200"),
        Err(e) => tracing::debug!(%method, path = %rel, "{e}"),
    }
    match result {
        Ok(reply) => ok_response(reply),
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                sh.sleep(3.0).await;
            }
            error_response(&e, ErrorBody::Json)
        }
    }
}
