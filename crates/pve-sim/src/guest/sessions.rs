//! Established TCP sessions between guests (e.g. the teacher's guest and a student's), a
//! test and demo surface outside the PVE API (`/_sim/sessions`, [`crate::SimHandle`]):
//! what an open SSH login from the teacher would feel at the deadline.
//!
//! A session is opened only when the firewall oracle lets a **new** connection through
//! (both guests running, links up, rules allowing it). Once open it lives until either
//! end's guest loses its wire or its running state: `link_down=1` on the NIC that carries
//! its address, the guest stopped, destroyed, or rolled back (the RAM and the kernel's
//! connection table go back to the snapshot's). A change of firewall rules does **not**
//! end it: pve-firewall accepts `RELATED,ESTABLISHED` in `PVEFW-FORWARD` before any guest
//! chain, so already-open connections survive new DROP rules until they end (reference
//! `fosscloud-and-firewall.md` B.9, `exam-features.md` §4: "established flows survive via
//! conntrack. `link_down` drops everything at once").
//!
//! Sessions are checked after every API request and whenever they are read, so a link
//! taken down and up again between two reads still ends them. Nothing here counts as a
//! request.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::state::{unix_now, Shared, SimState};

/// One session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: u64,
    pub from: u32,
    pub to: u32,
    pub port: u16,
    pub opened: u64,
    /// Each end's `started_unix` when opened (a restart in between ends it too).
    boots: [u64; 2],
    /// When and why it ended.
    pub closed: Option<(u64, String)>,
}

impl Session {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id, "from": self.from, "to": self.to, "port": self.port,
            "opened": self.opened,
            "alive": self.closed.is_none(),
            "closed": self.closed.as_ref().map(|(t, _)| *t),
            "reason": self.closed.as_ref().map(|(_, r)| r.clone()),
        })
    }
}

/// Every session ever opened (closed ones stay, with their reason).
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    next: u64,
    list: BTreeMap<u64, Session>,
}

/// Why guest `vmid` cannot hold a session now, if it cannot.
fn broken(st: &SimState, vmid: u32, boot: u64) -> Option<String> {
    let Some(g) = st.guests.get(&vmid) else {
        return Some(format!("guest {vmid} was destroyed"));
    };
    if !g.running {
        return Some(format!("guest {vmid} stopped"));
    }
    if g.started_unix != boot {
        return Some(format!("guest {vmid} was restarted"));
    }
    if let Some((index, _)) = g
        .nets()
        .into_iter()
        .next()
        .filter(|(_, v)| super::net_option(v, "link_down") == Some("1"))
    {
        return Some(format!("guest {vmid}'s net{index} has link_down=1"));
    }
    None
}

impl SimState {
    /// Ends every open session whose ends no longer hold it (see the module docs).
    pub(crate) fn sweep_sessions(&mut self) {
        if self.sessions.list.values().all(|s| s.closed.is_some()) {
            return;
        }
        let now = unix_now();
        let mut ended = Vec::new();
        for s in self.sessions.list.values().filter(|s| s.closed.is_none()) {
            let why = broken(self, s.from, s.boots[0]).or_else(|| broken(self, s.to, s.boots[1]));
            if let Some(why) = why {
                ended.push((s.id, why));
            }
        }
        for (id, why) in ended {
            if let Some(s) = self.sessions.list.get_mut(&id) {
                s.closed = Some((now, why));
            }
        }
    }

    /// Ends the open sessions of `vmid` for `why` (a rollback: the guest's connections go
    /// back to the snapshot's).
    pub(crate) fn end_sessions_of(&mut self, vmid: u32, why: &str) {
        let now = unix_now();
        for s in self
            .sessions
            .list
            .values_mut()
            .filter(|s| s.closed.is_none() && (s.from == vmid || s.to == vmid))
        {
            s.closed = Some((now, format!("guest {vmid} {why}")));
        }
    }

    /// The session `id`, checked now.
    pub(crate) fn session(&mut self, id: u64) -> Option<Value> {
        self.sweep_sessions();
        self.sessions.list.get(&id).map(Session::to_json)
    }

    /// Every session, checked now.
    pub(crate) fn sessions_json(&mut self) -> Value {
        self.sweep_sessions();
        Value::Array(self.sessions.list.values().map(Session::to_json).collect())
    }
}

/// Opens a TCP session from guest `from` to guest `to` on `port` if the firewall lets a
/// new connection through now; `Err((status, reason))` otherwise.
pub(crate) fn open(sh: &Shared, from: u32, to: u32, port: u16) -> Result<Value, (u16, String)> {
    let verdict = crate::introspect::reach(
        sh,
        &from.to_string(),
        &to.to_string(),
        "tcp",
        Some(&port.to_string()),
    )
    .map_err(|e| (400, e))?;
    if !verdict.allowed {
        return Err((
            409,
            format!(
                "no connection from {from} to {to} port {port}: {}",
                verdict.reason
            ),
        ));
    }
    let mut st = sh.lock();
    let boot = |vmid: u32| st.guests.get(&vmid).map_or(0, |g| g.started_unix);
    let boots = [boot(from), boot(to)];
    st.sessions.next += 1;
    let id = st.sessions.next;
    let s = Session {
        id,
        from,
        to,
        port,
        opened: unix_now(),
        boots,
        closed: None,
    };
    let v = s.to_json();
    st.sessions.list.insert(id, s);
    Ok(v)
}

fn error(status: u16, msg: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({"error": msg}))).into_response()
}

/// `POST /_sim/sessions` `{"from": VMID, "to": VMID, "port": N}`.
pub(crate) async fn post(State(sh): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, format!("the body is not JSON: {e}")),
    };
    let id = |k: &str| {
        body[k]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("'{k}' must be a VMID (a number 100-999999999)"))
    };
    let port = body["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| "'port' must be a number 1-65535".to_owned());
    match (id("from"), id("to"), port) {
        (Ok(f), Ok(t), Ok(p)) => match open(&sh, f, t, p) {
            Ok(v) => Json(v).into_response(),
            Err((status, msg)) => error(status, msg),
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => error(400, e),
    }
}

/// `GET /_sim/sessions`.
pub(crate) async fn list(State(sh): State<Arc<Shared>>) -> Json<Value> {
    Json(sh.lock().sessions_json())
}

/// `GET /_sim/sessions/{id}`.
pub(crate) async fn get(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<u64>() else {
        return error(
            400,
            format!("invalid session id '{id}' (allowed: a number)"),
        );
    };
    match sh.lock().session(n) {
        Some(v) => Json(v).into_response(),
        None => error(404, format!("session {n} does not exist")),
    }
}

#[cfg(test)]
mod tests {
    use crate::Simulator;
    use serde_json::json;

    async fn sim() -> crate::SimHandle {
        Simulator::builder()
            .plain_http(true)
            .password("secret")
            .time_scale(0.01)
            .start()
            .await
            .unwrap()
    }

    /// One authenticated API call as root (form body).
    async fn call(
        sim: &crate::SimHandle,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) {
        let client = reqwest::Client::new();
        let ticket: serde_json::Value = client
            .post(format!("{}/access/ticket", sim.base_url()))
            .form(&[("username", "root@pam"), ("password", "secret")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let t = ticket["data"]["ticket"].as_str().unwrap();
        let csrf = ticket["data"]["CSRFPreventionToken"].as_str().unwrap();
        let r = client
            .request(method, format!("{}{path}", sim.base_url()))
            .header("Cookie", format!("PVEAuthCookie={t}"))
            .header("CSRFPreventionToken", csrf)
            .form(form)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }

    fn net0(sim: &crate::SimHandle, vmid: u64) -> String {
        sim.state()["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["vmid"] == vmid)
            .unwrap()["config"]["net0"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_session_lives_through_rule_changes_and_dies_with_the_link() {
        let sim = sim().await;
        // The teacher (100, pve1) and prod-db (200, pve2) run from the start.
        let s = sim.open_session(100, 200, 22).unwrap();
        assert_eq!(s["alive"], true, "{s}");
        let id = s["id"].as_u64().unwrap();
        // The firewall turned on for 200 with everything inbound dropped: a new connection
        // is refused, the established one stays (conntrack).
        let put = reqwest::Method::PUT;
        call(
            &sim,
            put.clone(),
            "/cluster/firewall/options",
            &[("enable", "1")],
        )
        .await;
        call(
            &sim,
            put.clone(),
            "/nodes/pve2/qemu/200/firewall/options",
            &[("enable", "1"), ("policy_in", "DROP")],
        )
        .await;
        let fenced = format!("{},firewall=1", net0(&sim, 200));
        call(
            &sim,
            put.clone(),
            "/nodes/pve2/qemu/200/config",
            &[("net0", &fenced)],
        )
        .await;
        let blocked = sim.reachability(100, "200", "tcp", Some(22)).unwrap();
        assert!(
            !blocked.allowed,
            "a new connection is refused now: {}",
            blocked.reason
        );
        assert_eq!(sim.session(id).unwrap()["alive"], true);
        assert!(sim.open_session(100, 200, 22).is_err());
        // The cable is pulled: it ends, and stays ended with the link back up.
        let down = format!("{fenced},link_down=1");
        call(
            &sim,
            put.clone(),
            "/nodes/pve2/qemu/200/config",
            &[("net0", &down)],
        )
        .await;
        call(
            &sim,
            put,
            "/nodes/pve2/qemu/200/config",
            &[("net0", &fenced)],
        )
        .await;
        let s = sim.session(id).unwrap();
        assert_eq!(s["alive"], false, "{s}");
        assert!(s["reason"].as_str().unwrap().contains("link_down=1"), "{s}");
        assert_eq!(sim.sessions()[0]["id"], json!(id));
        assert!(sim.session(99).is_none());
        assert!(sim.open_session(100, 7, 22).is_err(), "no guest 7");
    }

    /// Waits (bounded) until session `id` has ended; its reason.
    async fn ended(sim: &crate::SimHandle, id: u64) -> String {
        for _ in 0..1000 {
            let s = sim.session(id).unwrap();
            if s["alive"] == false {
                return s["reason"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("session {id} never ended: {}", sim.session(id).unwrap());
    }

    #[tokio::test]
    async fn a_rollback_or_a_stop_ends_the_sessions_of_that_guest_only() {
        let sim = sim().await;
        let post = reqwest::Method::POST;
        call(
            &sim,
            post.clone(),
            "/nodes/pve2/qemu/200/snapshot",
            &[("snapname", "s1")],
        )
        .await;
        // The snapshot task ends before the session opens (a lock would refuse the rollback).
        for _ in 0..1000 {
            if sim.state()["guests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["vmid"] == 200 && g["lock"].is_null() && g["snapshots"][0] == "s1")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let a = sim.open_session(100, 200, 22).unwrap()["id"]
            .as_u64()
            .unwrap();
        let b = sim.open_session(100, 201, 22).unwrap()["id"]
            .as_u64()
            .unwrap();
        call(
            &sim,
            post.clone(),
            "/nodes/pve2/qemu/200/snapshot/s1/rollback",
            &[],
        )
        .await;
        let why = ended(&sim, a).await;
        assert!(why.contains("guest 200"), "{why}");
        assert_eq!(
            sim.session(b).unwrap()["alive"],
            true,
            "the other guest's session lives"
        );
        let node = sim.state()["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["vmid"] == 201)
            .unwrap()["node"]
            .as_str()
            .unwrap()
            .to_owned();
        call(
            &sim,
            post,
            &format!("/nodes/{node}/qemu/201/status/stop"),
            &[],
        )
        .await;
        assert_eq!(ended(&sim, b).await, "guest 201 stopped");
    }
}
