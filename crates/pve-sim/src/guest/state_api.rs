//! `GET`/`PUT /_sim/guests/{vmid}/state`: read and change the inside of a QEMU guest
//! (outside the PVE API: no auth, no faults), so tests and demos can play a student.
//! See the crate docs for the shape and an example.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{net, Kind};
use crate::state::{Shared, SimState};

fn error(status: StatusCode, msg: String) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

/// The guest of the path, or (status, reason) saying why there is none.
pub(crate) fn check(st: &SimState, vmid: &str) -> Result<u32, (StatusCode, String)> {
    let id: u32 = vmid.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("invalid vmid '{vmid}' (allowed: a number 100-999999999)"),
        )
    })?;
    match st.guests.get(&id) {
        None => Err((StatusCode::NOT_FOUND, format!("guest {id} does not exist"))),
        Some(g) if g.kind != Kind::Qemu => Err((
            StatusCode::BAD_REQUEST,
            format!("guest {id} is a container; only QEMU guests have a simulated inside"),
        )),
        Some(_) => Ok(id),
    }
}

/// The state of one guest: what can be PUT, plus the read-only `view` (what `ip -j
/// addr` and `ip -j route` print right now, and the host name).
pub(crate) fn state_json(st: &SimState, vmid: u32) -> Value {
    let Some(g) = st.guests.get(&vmid) else {
        return Value::Null;
    };
    let mut v = g.os.to_json();
    let view = if g.running {
        let ifs = net::interfaces(g, Instant::now());
        let routes = net::routes(g, &ifs);
        json!({
            "running": true,
            "hostname": g.os.hostname(),
            "interfaces": net::ip_json(&ifs, true, true, None),
            "routes": net::route_json(&routes),
        })
    } else {
        json!({"running": false, "hostname": g.os.hostname()})
    };
    if let Some(m) = v.as_object_mut() {
        m.insert("vmid".into(), json!(vmid));
        m.insert("view".into(), view);
    }
    v
}

/// `PUT` semantics on the state: change only what `body` names; the new state, or
/// (status, reason).
pub(crate) fn apply(
    st: &mut SimState,
    vmid: &str,
    mut body: Value,
) -> Result<Value, (StatusCode, String)> {
    let id = check(st, vmid)?;
    if let Some(m) = body.as_object_mut() {
        m.remove("vmid");
        m.remove("view");
    }
    let Some(g) = st.guests.get_mut(&id) else {
        return Err((StatusCode::NOT_FOUND, format!("guest {id} does not exist")));
    };
    g.os.apply_json(&body)
        .map_err(|m| (StatusCode::BAD_REQUEST, m))?;
    Ok(state_json(st, id))
}

/// `GET /_sim/guests/{vmid}/state`.
pub(crate) async fn get(State(sh): State<Arc<Shared>>, Path(vmid): Path<String>) -> Response {
    let st = sh.lock();
    match check(&st, &vmid) {
        Ok(id) => Json(state_json(&st, id)).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}

/// `PUT /_sim/guests/{vmid}/state`: change only what the body names; answers the new
/// state. `vmid` and `view` in the body are ignored (so a GET can be sent back).
pub(crate) async fn put(
    State(sh): State<Arc<Shared>>,
    Path(vmid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    let mut st = sh.lock();
    match apply(&mut st, &vmid, body) {
        Ok(v) => Json(v).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}
