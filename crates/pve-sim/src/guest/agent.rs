//! The QEMU guest agent API (`…/qemu/{vmid}/agent/…`) and LXC `/interfaces`, answered
//! from the guest model.
//!
//! A started VM's agent answers after 20 s (scaled); its DHCP IPv4 shows up 3 s later,
//! the IPv6 link-local (from the MAC) with the agent. A CT has no agent; its IPv4 shows
//! up 3 s after start. Errors come in PVE's order: not configured → not running →
//! agent not answering (`guest-ping` times out after 3 s, holding the pvedaemon
//! worker) → a hung agent (answers `guest-ping`, then the command times out after
//! [`QGA_TIMEOUT`] s: `VM <id> qga command 'guest-<cmd>' failed - got timeout`).
//!
//! Request and response shapes (paths below `/api2/json/nodes/{node}/qemu/{vmid}`):
//!
//! | call | parameters | `data` |
//! |---|---|---|
//! | `POST agent/exec` | `command` (array: program, args…; a form repeats `command=`), `input-data` (≤ 64 KiB, stdin) | `{"pid": 1201}` |
//! | `GET agent/exec-status` | `pid` | running: `{"exited": 0}`; then ONCE `{"exited": 1, "exitcode": 0, "out-data": "…", "out-truncated": 0, "err-data": "…", "err-truncated": 0}` (`*-data`/`*-truncated` only with output; truncated at 16 MiB); a later poll of the pid: 500 `Agent error: Invalid parameter 'pid'` |
//! | `GET agent/file-read` | `file`, `offset` (0), `count` (≤ 16 MiB), `decode` (1; 0 = base64) | `{"content": "…"}` + `"truncated": 1` when the end was not reached |
//! | `POST agent/file-write` | `file`, `content` (≤ 61440 chars), `encode` (1; 0 = content is base64) | `null` |
//! | `GET agent/info` | | `{"result": {"version": "7.2.15", "supported_commands": [{"name", "enabled", "success-response"}…]}}` |
//! | `GET agent/get-osinfo` | | `{"result": {"id", "name", "pretty-name", "version", "version-id", "kernel-release", "kernel-version", "machine"}}` |
//! | `GET agent/get-users` | | `{"result": [{"user": "student", "login-time": 1733353200.5}]}` |
//!
//! A program that cannot be spawned (e.g. `["ip -j addr"]`, one string with spaces)
//! answers 500 `Agent error: Guest agent command failed, error was 'Failed to execute
//! child process “ip -j addr” (No such file or directory)'`; a missing file 500
//! `Agent error: failed to open file '/x' (mode: 'r'): No such file or directory`.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::exec;
use super::os::{AgentState, Exec, File};
use super::{link_local, net, net_mac, net_option, Guest, Kind};
use crate::error::{ApiError, ApiResult};
use crate::routing::Req;
use crate::state::Shared;

/// Seconds PVE waits for a qga command other than `guest-ping` (the ping waits 3):
/// `PVE::QMPClient`'s default timeout.
pub(crate) const QGA_TIMEOUT: f64 = 5.0;
/// `GUEST_EXEC_MAX_OUTPUT` of qemu-ga: captured stdout/stderr per command.
pub(crate) const EXEC_MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// `$MAX_READ_SIZE` of PVE's file-read.
pub(crate) const FILE_READ_MAX: usize = 16 * 1024 * 1024;

/// The version `guest-info` reports (Debian 12's qemu-guest-agent).
const QGA_VERSION: &str = "7.2.15";

/// The commands `guest-info` lists.
const QGA_COMMANDS: &[&str] = &[
    "guest-exec",
    "guest-exec-status",
    "guest-file-close",
    "guest-file-open",
    "guest-file-read",
    "guest-file-write",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
    "guest-get-host-name",
    "guest-get-osinfo",
    "guest-get-users",
    "guest-info",
    "guest-network-get-interfaces",
    "guest-ping",
    "guest-shutdown",
];

fn agent_error(desc: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("Agent error: {desc}"))
}

/// The checks of `assert_agent_available` + `qga_check_running`, then (for any
/// command but the ping) a hung agent's timeout. `cmd` is the qga command without
/// `guest-`.
async fn available(sh: &Arc<Shared>, r: &Req<'_>, cmd: &str) -> ApiResult<()> {
    let vmid = r.vmid();
    let state = {
        let st = sh.lock();
        let g = st.guest(Kind::Qemu, r.node(), vmid)?;
        if !g.agent_enabled() {
            return Err(ApiError::internal("No QEMU guest agent configured"));
        }
        if !g.running {
            return Err(ApiError::internal(format!("VM {vmid} is not running")));
        }
        let booted = g.agent_ready_at.is_some_and(|t| Instant::now() >= t);
        if booted {
            g.os.agent
        } else {
            AgentState::Stopped
        }
    };
    match state {
        AgentState::Running => Ok(()),
        AgentState::Hung if cmd == "ping" => Ok(()),
        AgentState::Stopped => {
            // guest-ping times out after 3 s, holding the pvedaemon worker.
            sh.sleep(3.0).await;
            Err(ApiError::internal("QEMU guest agent is not running"))
        }
        AgentState::Hung => {
            sh.sleep(QGA_TIMEOUT).await;
            Err(ApiError::internal(format!(
                "VM {vmid} qga command 'guest-{cmd}' failed - got timeout"
            )))
        }
    }
}

/// Run `f` on the guest of the request (after [`available`]).
fn with_guest<T>(
    sh: &Shared,
    r: &Req<'_>,
    f: impl FnOnce(&mut Guest) -> ApiResult<T>,
) -> ApiResult<T> {
    let mut st = sh.lock();
    let g = st.guest_mut(Kind::Qemu, r.node(), r.vmid())?;
    f(g)
}

/// `POST …/agent/ping`.
pub(crate) async fn ping(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    available(sh, r, "ping").await?;
    Ok(json!({"result": {}}))
}

/// `GET …/agent/get-host-name` (from `/etc/hostname`).
pub(crate) async fn host_name(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    available(sh, r, "get-host-name").await?;
    with_guest(sh, r, |g| {
        Ok(json!({"result": {"host-name": g.os.hostname()}}))
    })
}

/// `GET …/agent/network-get-interfaces`.
pub(crate) async fn interfaces(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    available(sh, r, "network-get-interfaces").await?;
    with_guest(sh, r, |g| {
        Ok(json!({"result": net::agent_json(&net::interfaces(g, Instant::now()))}))
    })
}

/// `GET …/agent/info`.
pub(crate) async fn info(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    available(sh, r, "info").await?;
    let cmds: Vec<Value> = QGA_COMMANDS
        .iter()
        .map(|c| json!({"name": c, "enabled": true, "success-response": *c != "guest-shutdown"}))
        .collect();
    Ok(json!({"result": {"version": QGA_VERSION, "supported_commands": cmds}}))
}

/// `GET …/agent/get-osinfo` (from `/etc/os-release`).
pub(crate) async fn osinfo(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    available(sh, r, "get-osinfo").await?;
    with_guest(sh, r, |g| {
        let rel = g.os.os_release();
        let mut m = serde_json::Map::new();
        for (key, field) in [
            ("id", "ID"),
            ("name", "NAME"),
            ("pretty-name", "PRETTY_NAME"),
            ("version", "VERSION"),
            ("version-id", "VERSION_ID"),
        ] {
            if let Some(v) = rel.get(field) {
                m.insert(key.into(), json!(v));
            }
        }
        m.insert("kernel-release".into(), json!(super::os::KERNEL_RELEASE));
        m.insert("kernel-version".into(), json!(super::os::KERNEL_VERSION));
        m.insert("machine".into(), json!("x86_64"));
        Ok(json!({"result": m}))
    })
}

/// `GET …/agent/get-users`.
pub(crate) async fn users(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    available(sh, r, "get-users").await?;
    with_guest(sh, r, |g| {
        let list: Vec<Value> =
            g.os.users
                .iter()
                .map(|u| json!({"user": u.user, "login-time": u.login_time}))
                .collect();
        Ok(json!({"result": list}))
    })
}

/// The `command` parameter: the server hands array parameters over as JSON array text.
fn argv(r: &Req<'_>) -> ApiResult<Vec<String>> {
    let raw = r
        .param("command")
        .ok_or_else(|| ApiError::param("command", "property is missing and it is not optional"))?;
    // A plain value is a one-item list (PVE reads a single form value so).
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(items)) => Ok(items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect()),
        _ => Ok(vec![raw.to_owned()]),
    }
}

/// `POST …/agent/exec`.
pub(crate) async fn exec(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let argv = argv(r)?;
    if argv.is_empty() && r.param("input-data").is_none() {
        // qemu-server's qemu_exec, before asking the agent.
        return Err(ApiError::internal(
            "command or input-data (or both) required",
        ));
    }
    let stdin = r
        .param("input-data")
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    available(sh, r, "exec").await?;
    let now = Instant::now();
    let mut st = sh.lock();
    st.guest(Kind::Qemu, r.node(), r.vmid())?;
    let outcome = exec::run(&mut st, r.vmid(), &argv, &stdin, now).map_err(agent_error)?;
    let done_at = now + sh.scaled(outcome.run_time);
    let g = st.guest_mut(Kind::Qemu, r.node(), r.vmid())?;
    let pid = g.os.start_exec(Exec {
        done_at,
        exit_code: outcome.exit_code,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
    });
    Ok(json!({"pid": pid}))
}

fn capped(bytes: &[u8]) -> (String, bool) {
    let truncated = bytes.len() > EXEC_MAX_OUTPUT;
    let kept = &bytes[..bytes.len().min(EXEC_MAX_OUTPUT)];
    (String::from_utf8_lossy(kept).into_owned(), truncated)
}

/// `GET …/agent/exec-status`: `exited: 0` while running, then the result once.
pub(crate) async fn exec_status(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let pid: u32 = r
        .param("pid")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| agent_error("Invalid parameter 'pid'"))?;
    available(sh, r, "exec-status").await?;
    with_guest(sh, r, |g| {
        let Some(e) = g.os.execs.get(&pid) else {
            return Err(agent_error("Invalid parameter 'pid'"));
        };
        if Instant::now() < e.done_at {
            return Ok(json!({"exited": 0}));
        }
        // qemu-ga forgets the process the first time it reports it finished.
        let e =
            g.os.execs
                .remove(&pid)
                .ok_or_else(|| agent_error("Invalid parameter 'pid'"))?;
        let mut m = serde_json::Map::new();
        m.insert("exited".into(), json!(1));
        m.insert("exitcode".into(), json!(e.exit_code));
        for (data, trunc, bytes) in [
            ("out-data", "out-truncated", &e.stdout),
            ("err-data", "err-truncated", &e.stderr),
        ] {
            if !bytes.is_empty() {
                let (text, truncated) = capped(bytes);
                m.insert(data.into(), json!(text));
                m.insert(trunc.into(), json!(u8::from(truncated)));
            }
        }
        Ok(Value::Object(m))
    })
}

fn open_error(path: &str, mode: &str, why: &str) -> ApiError {
    agent_error(format!(
        "failed to open file '{path}' (mode: '{mode}'): {why}"
    ))
}

/// `GET …/agent/file-read`.
pub(crate) async fn file_read(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let path = r.param("file").unwrap_or_default().to_owned();
    let offset: usize = r.param("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let count: usize = r
        .param("count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(FILE_READ_MAX)
        .min(FILE_READ_MAX);
    let decode = r.param("decode") != Some("0");
    available(sh, r, "file-open").await?;
    with_guest(sh, r, |g| {
        let Some(f) = g.os.files.get(&path) else {
            let why = if g.os.is_dir(&path) {
                "Is a directory"
            } else if g.os.parent_is_file(&path) {
                "Not a directory"
            } else {
                "No such file or directory"
            };
            return Err(open_error(&path, "r", why));
        };
        if f.mode & 0o444 == 0 {
            return Err(open_error(&path, "r", "Permission denied"));
        }
        let start = offset.min(f.content.len());
        let end = start.saturating_add(count).min(f.content.len());
        let bytes = &f.content[start..end];
        let content = if decode {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        let mut m = serde_json::Map::new();
        m.insert("content".into(), json!(content));
        if end < f.content.len() {
            m.insert("truncated".into(), json!(1));
        }
        Ok(Value::Object(m))
    })
}

/// `POST …/agent/file-write`.
pub(crate) async fn file_write(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let path = r.param("file").unwrap_or_default().to_owned();
    let content = r.param("content").unwrap_or_default();
    let bytes = if r.param("encode") == Some("0") {
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|_| {
                agent_error("Guest agent command failed, error was 'Base64 data is not valid'")
            })?
    } else {
        content.as_bytes().to_vec()
    };
    available(sh, r, "file-open").await?;
    with_guest(sh, r, |g| {
        if !path.starts_with('/') {
            return Err(open_error(&path, "wb", "No such file or directory"));
        }
        if g.os.is_dir(&path) {
            return Err(open_error(&path, "wb", "Is a directory"));
        }
        if g.os.parent_is_file(&path) {
            return Err(open_error(&path, "wb", "Not a directory"));
        }
        if !g.os.parent_exists(&path) {
            return Err(open_error(&path, "wb", "No such file or directory"));
        }
        let mode = g.os.files.get(&path).map_or(0o644, |f| f.mode);
        g.os.files.insert(
            path.clone(),
            File {
                content: bytes,
                mode,
            },
        );
        Ok(Value::Null)
    })
}

/// `(interface name, lower-case MAC)` per `netX` of a container.
fn ct_nics(g: &Guest) -> Vec<(String, String)> {
    g.nets()
        .into_iter()
        .filter_map(|(i, v)| {
            let mac = net_mac(g.kind, v)?.to_lowercase();
            let name = net_option(v, "name").map_or_else(|| format!("eth{i}"), str::to_owned);
            Some((name, mac))
        })
        .collect()
}

fn addr(ip: impl ToString, typ: &str, prefix: u8) -> Value {
    json!({"ip-address": ip.to_string(), "ip-address-type": typ, "prefix": prefix})
}

/// `GET /nodes/{node}/lxc/{vmid}/interfaces` (`null` while stopped).
pub(crate) fn lxc_interfaces(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let g = st.guest(Kind::Lxc, r.node(), r.vmid())?;
    if !g.running {
        return Ok(Value::Null);
    }
    let now = Instant::now();
    let ipv4 = g.ipv4.filter(|_| g.ipv4_ready_at.is_some_and(|t| now >= t));
    let mut out = vec![json!({
        "name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
        "inet": "127.0.0.1/8", "inet6": "::1/128",
        "ip-addresses": [addr("127.0.0.1", "inet", 8), addr("::1", "inet6", 128)],
    })];
    for (i, (name, mac)) in ct_nics(g).into_iter().enumerate() {
        let mut item = serde_json::Map::new();
        item.insert("name".into(), json!(name));
        item.insert("hwaddr".into(), json!(mac));
        item.insert("hardware-address".into(), json!(mac));
        let mut addrs = Vec::new();
        if let Some(ip) = ipv4.filter(|_| i == 0) {
            item.insert("inet".into(), json!(format!("{ip}/16")));
            addrs.push(addr(ip, "inet", 16));
        }
        if let Some(ll) = link_local(&mac) {
            item.insert("inet6".into(), json!(format!("{ll}/64")));
            addrs.push(addr(ll, "inet6", 64));
        }
        item.insert("ip-addresses".into(), Value::Array(addrs));
        out.push(Value::Object(item));
    }
    Ok(Value::Array(out))
}
