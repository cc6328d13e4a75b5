//! Worker tasks: UPIDs in the real format, the per-node task list, status and log.
//!
//! A task is registered when the API call forks it (the UPID is returned at once) and
//! finished by the tokio task that simulates the work. Failures are visible only in
//! `exitstatus` and the last log line, as on a real node.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::task::AbortHandle;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult, Params};
use crate::state::{unix_now, Caller, Shared};

/// One worker task.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u32,
    pub starttime: u64,
    pub typ: String,
    pub id: String,
    pub user: String,
    pub tokenid: Option<String>,
    pub log: Vec<String>,
    /// `(endtime, exitstatus)` once stopped.
    pub end: Option<(u64, String)>,
}

/// How a simulated task ended: `Ok(n)` = OK (n = 0) or `WARNINGS: n`; `Err(text)` = error.
pub(crate) type TaskOutcome = Result<u32, String>;

/// All tasks of the cluster (each belongs to its node).
#[derive(Debug, Default)]
pub(crate) struct TaskTable {
    tasks: Vec<Task>,
    next_pid: u32,
    /// How to stop the simulated worker of each running task.
    aborts: BTreeMap<String, AbortHandle>,
}

/// The parts of a UPID string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u32,
    pub starttime: u64,
    pub typ: String,
    pub id: String,
    pub user: String,
}

/// Parse `UPID:<node>:<pid 8 hex>:<pstart 8-9 hex>:<starttime 8 hex>:<type>:<id>:<user>:`.
pub(crate) fn parse_upid(s: &str) -> Option<Upid> {
    let rest = s.strip_prefix("UPID:")?.strip_suffix(':')?;
    let f: Vec<&str> = rest.split(':').collect();
    if f.len() != 7 {
        return None;
    }
    let hex_of = |v: &str, min: usize, max: usize| -> Option<u64> {
        if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(v, 16).ok()
    };
    let node_ok = !f[0].is_empty()
        && f[0].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !f[0].starts_with('-')
        && !f[0].ends_with('-');
    let typ_ok = !f[4].is_empty() && !f[4].contains(['/', ' ']);
    let user_ok = !f[6].is_empty() && !f[6].contains(['/', ' ']);
    if !node_ok || !typ_ok || !user_ok || f[5].contains(['/', ' ']) {
        return None;
    }
    Some(Upid {
        node: f[0].to_owned(),
        pid: u32::try_from(hex_of(f[1], 8, 8)?).ok()?,
        pstart: u32::try_from(hex_of(f[2], 8, 9)?).ok()?,
        starttime: hex_of(f[3], 8, 8)?,
        typ: f[4].to_owned(),
        id: f[5].to_owned(),
        user: f[6].to_owned(),
    })
}

impl TaskTable {
    /// Register a running task and return its UPID.
    pub(crate) fn create(&mut self, node: &str, typ: &str, id: &str, caller: &Caller) -> String {
        // Fake pids start where a freshly booted node's would and keep growing.
        self.next_pid = self.next_pid.max(0x0001_2000) + 1 + (self.tasks.len() as u32 % 7);
        let pid = self.next_pid;
        let pstart = 0x0820_0000 + pid.wrapping_mul(13);
        let starttime = unix_now();
        let user = caller.upid_user();
        let upid = format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{typ}:{id}:{user}:");
        self.tasks.push(Task {
            upid: upid.clone(),
            node: node.to_owned(),
            pid,
            pstart,
            starttime,
            typ: typ.to_owned(),
            id: id.to_owned(),
            user: caller.user.clone(),
            tokenid: caller.tokenid.clone(),
            log: Vec::new(),
            end: None,
        });
        upid
    }

    fn get_mut(&mut self, upid: &str) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.upid == upid)
    }

    pub(crate) fn get(&self, upid: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.upid == upid)
    }

    /// Append a log line to a running task.
    pub(crate) fn log(&mut self, upid: &str, line: impl Into<String>) {
        if let Some(t) = self.get_mut(upid) {
            t.log.push(line.into());
        }
    }

    /// Remember how to stop the worker of a still running task.
    fn set_abort(&mut self, upid: &str, handle: AbortHandle) {
        if self.get(upid).is_some_and(|t| t.end.is_none()) {
            self.aborts.insert(upid.to_owned(), handle);
        }
    }

    /// Stop a task with its outcome; writes the final `TASK …` line.
    pub(crate) fn finish(&mut self, upid: &str, outcome: TaskOutcome) {
        self.aborts.remove(upid);
        if let Some(t) = self.get_mut(upid) {
            if t.end.is_some() {
                return;
            }
            let exit = match outcome {
                Ok(0) => {
                    t.log.push("TASK OK".into());
                    "OK".to_owned()
                }
                Ok(n) => {
                    t.log.push(format!("TASK WARNINGS: {n}"));
                    format!("WARNINGS: {n}")
                }
                Err(e) => {
                    // Task log lines carry the error; the exit status is its last line.
                    let e = e.trim_end().to_owned();
                    t.log.push(format!("TASK ERROR: {e}"));
                    e
                }
            };
            t.end = Some((unix_now(), exit));
        }
    }

    /// Running tasks (for `/_sim/state`).
    pub(crate) fn running(&self) -> usize {
        self.tasks.iter().filter(|t| t.end.is_none()).count()
    }

    /// All tasks (for `/_sim/state`).
    pub(crate) fn all(&self) -> &[Task] {
        &self.tasks
    }
}

impl Task {
    /// The fields the status object and the list items share (the decoded UPID).
    fn upid_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("upid".into(), json!(self.upid));
        m.insert("node".into(), json!(self.node));
        m.insert("pid".into(), json!(self.pid));
        m.insert("pstart".into(), json!(self.pstart));
        m.insert("starttime".into(), json!(self.starttime));
        m.insert("type".into(), json!(self.typ));
        m.insert("id".into(), json!(self.id));
        m.insert("user".into(), json!(self.user));
        if let Some(t) = &self.tokenid {
            m.insert("tokenid".into(), json!(t));
        }
        m
    }

    /// The object of `GET …/tasks/{upid}/status`.
    pub(crate) fn status_json(&self) -> Value {
        let mut m = self.upid_fields();
        match &self.end {
            None => {
                m.insert("status".into(), json!("running"));
            }
            Some((_, exit)) => {
                m.insert("status".into(), json!("stopped"));
                m.insert("exitstatus".into(), json!(exit));
            }
        }
        Value::Object(m)
    }

    /// An item of `GET /nodes/{node}/tasks` (`status` here is the exit status).
    fn list_json(&self) -> Value {
        let mut m = self.upid_fields();
        if let Some((end, exit)) = &self.end {
            m.insert("endtime".into(), json!(end));
            m.insert("status".into(), json!(exit));
        }
        Value::Object(m)
    }

    /// `ok`, `warning`, `error` or `running` for `statusfilter`.
    fn status_class(&self) -> &'static str {
        match &self.end {
            None => "running",
            Some((_, e)) if e == "OK" => "ok",
            Some((_, e)) if e.starts_with("WARNINGS") => "warning",
            Some(_) => "error",
        }
    }
}

/// Fork a simulated worker: register the task, return its UPID and run `work` in the
/// background; its outcome becomes the exit status.
pub(crate) fn spawn_task<F>(
    sh: &Arc<Shared>,
    node: &str,
    typ: &str,
    id: &str,
    caller: &Caller,
    first_lines: Vec<String>,
    work: impl FnOnce(String) -> F,
) -> String
where
    F: Future<Output = TaskOutcome> + Send + 'static,
{
    let upid = {
        let mut st = sh.lock();
        let upid = st.tasks.create(node, typ, id, caller);
        for line in first_lines {
            st.tasks.log(&upid, line);
        }
        upid
    };
    let fut = work(upid.clone());
    let sh2 = Arc::clone(sh);
    let upid2 = upid.clone();
    let handle = tokio::spawn(async move {
        let outcome = fut.await;
        sh2.lock().tasks.finish(&upid2, outcome);
    });
    sh.lock().tasks.set_abort(&upid, handle.abort_handle());
    upid
}

/// Look a task up for `…/tasks/{upid}/…` on `node`.
fn find<'a>(tasks: &'a TaskTable, node: &str, upid: &str) -> ApiResult<&'a Task> {
    let parsed =
        parse_upid(upid).ok_or_else(|| ApiError::param("upid", "unable to parse worker upid"))?;
    match tasks.get(upid) {
        Some(t) if parsed.node == node => Ok(t),
        _ => Err(ApiError::param("upid", "no such task")),
    }
}

/// The owner of a task may read and stop it; others need `priv` on `/nodes/<node>`.
fn check_owner(
    st: &crate::state::SimState,
    task: &Task,
    caller: &Caller,
    node: &str,
    privilege: &str,
) -> ApiResult<()> {
    if task.upid_user() == caller.upid_user() {
        return Ok(());
    }
    let p = crate::access::Principal::of(caller);
    if p == crate::access::Principal::Root {
        return Ok(());
    }
    crate::access::check(st, &p, &format!("/nodes/{node}"), &[privilege], false)
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
pub(crate) fn status(sh: &Shared, node: &str, upid: &str, caller: &Caller) -> ApiResult<Value> {
    let st = sh.lock();
    let task = find(&st.tasks, node, upid)?;
    check_owner(&st, task, caller, node, "Sys.Audit")?;
    Ok(task.status_json())
}

/// `GET /nodes/{node}/tasks/{upid}/log` → (lines, total).
pub(crate) fn log(
    sh: &Shared,
    node: &str,
    upid: &str,
    params: &Params,
    caller: &Caller,
) -> ApiResult<(Value, usize)> {
    let st = sh.lock();
    let task = find(&st.tasks, node, upid)?;
    check_owner(&st, task, caller, node, "Sys.Audit")?;
    let start = param_usize(params, "start", 0);
    let limit = param_usize(params, "limit", 50);
    let lines: Vec<Value> = task
        .log
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, t)| json!({"n": i + 1, "t": t}))
        .collect();
    Ok((Value::Array(lines), task.log.len()))
}

/// `DELETE /nodes/{node}/tasks/{upid}`: stop a running task. The worker is killed
/// (its guards undo half-done work, e.g. a partial clone) and the task ends with
/// `interrupted by signal`; stopping a finished task changes nothing.
pub(crate) fn stop(sh: &Shared, node: &str, upid: &str, caller: &Caller) -> ApiResult<Value> {
    let handle = {
        let mut st = sh.lock();
        let task = find(&st.tasks, node, upid)?;
        check_owner(&st, task, caller, node, "Sys.Modify")?;
        let handle = st.tasks.aborts.get(upid).cloned();
        if handle.is_some() {
            st.tasks.finish(upid, Err("interrupted by signal".into()));
        }
        handle
    };
    // Abort outside the lock: dropping the worker runs guards that take it.
    if let Some(h) = handle {
        h.abort();
    }
    Ok(Value::Null)
}

fn param_usize(params: &Params, key: &str, default: usize) -> usize {
    params
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn param_bool(params: &Params, key: &str) -> bool {
    params.get(key).is_some_and(|v| v == "1")
}

/// `GET /nodes/{node}/tasks` → (items, total). Newest first, like PVE.
pub(crate) fn list(sh: &Shared, node: &str, params: &Params, caller: &Caller) -> (Value, usize) {
    let st = sh.lock();
    let all_visible = crate::access::may(&st, caller, &format!("/nodes/{node}"), &["Sys.Audit"]);
    let me = caller.upid_user();
    let source = params.get("source").map_or("archive", String::as_str);
    let statusfilter: Option<Vec<&str>> = params
        .get("statusfilter")
        .map(|s| s.split([',', ';', ' ']).filter(|p| !p.is_empty()).collect());
    let since = params.get("since").and_then(|v| v.parse::<u64>().ok());
    let until = params.get("until").and_then(|v| v.parse::<u64>().ok());
    let mut matching: Vec<&Task> = st
        .tasks
        .all()
        .iter()
        .filter(|t| t.node == node)
        .filter(|t| all_visible || t.upid_user() == me)
        .filter(|t| match source {
            "active" => t.end.is_none(),
            "all" => true,
            _ => t.end.is_some(),
        })
        .filter(|t| params.get("vmid").is_none_or(|v| &t.id == v))
        .filter(|t| params.get("typefilter").is_none_or(|v| &t.typ == v))
        .filter(|t| {
            params
                .get("userfilter")
                .is_none_or(|u| t.upid_user().to_lowercase().contains(&u.to_lowercase()))
        })
        .filter(|t| !param_bool(params, "errors") || t.status_class() == "error")
        .filter(|t| {
            statusfilter
                .as_ref()
                .is_none_or(|f| f.contains(&t.status_class()))
        })
        .filter(|t| since.is_none_or(|s| t.starttime >= s))
        .filter(|t| until.is_none_or(|u| t.starttime <= u))
        .collect();
    matching.sort_by(|a, b| b.starttime.cmp(&a.starttime).then(b.pid.cmp(&a.pid)));
    let total = matching.len();
    let start = param_usize(params, "start", 0);
    let limit = param_usize(params, "limit", 50);
    let items = matching
        .into_iter()
        .skip(start)
        .take(limit)
        .map(Task::list_json)
        .collect();
    (Value::Array(items), total)
}

impl Task {
    fn upid_user(&self) -> String {
        match &self.tokenid {
            Some(t) => format!("{}!{t}", self.user),
            None => self.user.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_round_trip() {
        let u = parse_upid("UPID:pve-srv:0012D68C:8206F38C:65144CB7:qmclone:501:lab@pve!runner:")
            .unwrap();
        assert_eq!(u.node, "pve-srv");
        assert_eq!(u.pid, 0x0012_D68C);
        assert_eq!(u.starttime, 0x6514_4CB7);
        assert_eq!(u.typ, "qmclone");
        assert_eq!(u.id, "501");
        assert_eq!(u.user, "lab@pve!runner");
        assert!(parse_upid("UPID:pve1:12:8206F38C:65144CB7:qmclone:501:root@pam:").is_none());
        assert!(parse_upid("UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:501:root@pam").is_none());
        assert!(parse_upid("nonsense").is_none());
    }

    #[test]
    fn created_upids_parse_and_finish_writes_the_last_line() {
        let mut t = TaskTable::default();
        let caller = Caller {
            user: "root@pam".into(),
            tokenid: Some("ci".into()),
        };
        let upid = t.create("pve1", "qmstart", "100", &caller);
        let p = parse_upid(&upid).unwrap();
        assert_eq!(
            (
                p.node.as_str(),
                p.typ.as_str(),
                p.id.as_str(),
                p.user.as_str()
            ),
            ("pve1", "qmstart", "100", "root@pam!ci")
        );
        t.finish(&upid, Ok(2));
        let task = t.get(&upid).unwrap();
        assert_eq!(task.log.last().unwrap(), "TASK WARNINGS: 2");
        assert_eq!(task.status_json()["exitstatus"], "WARNINGS: 2");
        // A second finish does not overwrite the first outcome.
        t.finish(&upid, Err("late".into()));
        assert_eq!(t.get(&upid).unwrap().end.as_ref().unwrap().1, "WARNINGS: 2");
    }
}
