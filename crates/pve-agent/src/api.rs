//! [`AgentApi`]: the guest agent calls, with a bounded number in flight per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use pve_auth::{Params, PveClient};
use pve_vm::{Guest, GuestKind, NodeName, Poll, PollPolicy, VmApi};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::exec::{Exec, ExecOutput, ExecStatus};
use crate::info::{AgentInfo, GuestUser, OsInfo};

/// Most bytes one `file-read` returns (qemu-ga's and PVE's cap, 16 MiB).
pub const MAX_FILE_READ: u64 = 16 * 1024 * 1024;
/// Longest `content` of a `file-write` (the schema's `maxLength`).
pub const MAX_FILE_WRITE_CONTENT: usize = 61_440;
/// Largest binary (non-ASCII) file `file-write` can take: its base64 form must fit
/// [`MAX_FILE_WRITE_CONTENT`].
pub const MAX_FILE_WRITE_BINARY: usize = MAX_FILE_WRITE_CONTENT / 4 * 3;

/// How [`AgentApi`] waits and how many calls it runs at once.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AgentOptions {
    /// Agent calls in flight per node. Each holds one of the node's pvedaemon workers (3 by
    /// default) — for ~3 s when the agent is dead — so keep this small (reference §9.4).
    pub per_node: usize,
    /// Polling of `exec-status` (100 ms growing to 2 s by default).
    pub exec_poll: PollPolicy,
    /// Longest wait for a command when [`Exec::timeout`] is not set (default 60 s).
    pub exec_timeout: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            per_node: 3,
            exec_poll: PollPolicy::new(Duration::from_millis(100), Duration::from_secs(2)),
            exec_timeout: Duration::from_secs(60),
        }
    }
}

impl AgentOptions {
    /// Agent calls in flight per node (at least 1).
    #[must_use]
    pub fn per_node(mut self, n: usize) -> Self {
        self.per_node = n.max(1);
        self
    }

    /// Polling and the default timeout multiplied by `scale` (a simulator's time scale);
    /// the count is unchanged.
    #[must_use]
    pub fn scaled(self, scale: f64) -> Self {
        let scale = if scale.is_finite() {
            scale.max(0.0)
        } else {
            1.0
        };
        Self {
            per_node: self.per_node,
            exec_poll: self.exec_poll.scaled(scale),
            exec_timeout: self.exec_timeout.mul_f64(scale),
        }
    }
}

/// A file's bytes as `file-read` returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileContent {
    /// The bytes read (binary-safe: read base64-encoded and decoded here).
    pub data: Vec<u8>,
    /// The read stopped before the end of the file (the 16 MiB cap or `count`).
    pub truncated: bool,
}

/// The read-only agent commands [`AgentApi::query_json`] sends.
pub const RAW_QUERIES: &[&str] = &[
    "info",
    "get-osinfo",
    "get-users",
    "network-get-interfaces",
    "get-host-name",
];

struct Inner {
    vms: VmApi,
    options: AgentOptions,
    slots: Mutex<HashMap<NodeName, Arc<Semaphore>>>,
}

/// The QEMU guest agent of PVE guests. Cheap to clone; clones share the per-node limits.
///
/// Every call goes through PVE (`/nodes/{node}/qemu/{vmid}/agent/…`) and holds one of at
/// most [`AgentOptions::per_node`] slots of the guest's node while its request is in
/// flight (not while waiting between polls).
#[derive(Clone)]
pub struct AgentApi {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AgentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentApi")
            .field("vms", &self.inner.vms)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Deserialize)]
struct Pid {
    #[serde(deserialize_with = "pve_auth::perl::i64")]
    pid: i64,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default, deserialize_with = "pve_auth::perl::string")]
    content: String,
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    truncated: bool,
}

#[derive(Deserialize)]
struct QgaError {
    #[serde(default, deserialize_with = "pve_auth::perl::string")]
    class: String,
    #[serde(default, deserialize_with = "pve_auth::perl::string")]
    desc: String,
}

impl AgentApi {
    /// With default [`AgentOptions`].
    pub fn new(vms: VmApi) -> Self {
        Self::with_options(vms, AgentOptions::default())
    }

    /// With explicit options.
    pub fn with_options(vms: VmApi, options: AgentOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                vms,
                options,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The guest API underneath.
    pub fn vms(&self) -> &VmApi {
        &self.inner.vms
    }

    /// The options.
    pub fn options(&self) -> &AgentOptions {
        &self.inner.options
    }

    fn client(&self) -> &PveClient {
        self.inner.vms.client()
    }

    async fn slot(&self, node: &NodeName) -> OwnedSemaphorePermit {
        let n = self.inner.options.per_node.max(1);
        let semaphore = lock(&self.inner.slots)
            .entry(node.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone();
        semaphore
            .acquire_owned()
            .await
            .expect("agent slot semaphores are never closed")
    }

    fn require_qemu(guest: &Guest, what: &str) -> Result<()> {
        match guest.kind() {
            GuestKind::Qemu => Ok(()),
            GuestKind::Lxc => Err(Error::InvalidInput {
                what: format!("{what} for CT {}", guest.vmid()),
                why: "containers have no QEMU guest agent".to_owned(),
            }),
        }
    }

    /// One agent request with a node slot held; `No QEMU guest agent configured` becomes
    /// [`pve_vm::Error::AgentNotConfigured`].
    async fn call<T: DeserializeOwned>(
        &self,
        guest: &Guest,
        method: pve_auth::Method,
        command: &str,
        params: &Params,
    ) -> Result<T> {
        Self::require_qemu(guest, command)?;
        let path = guest.path(&["agent", command]);
        let _slot = self.slot(guest.node()).await;
        self.client()
            .request(method, &path, params)
            .await
            .map_err(|e| Error::Vm(pve_vm::Error::from(e).for_agent_of(guest.vmid())))
    }

    /// A `GET agent/<command>` answering `{"result": …}`; an agent error inside an HTTP 200
    /// becomes [`Error::AgentRefused`].
    async fn result<T: DeserializeOwned>(&self, guest: &Guest, command: &str) -> Result<T> {
        let answer: serde_json::Value = self
            .call(guest, pve_auth::Method::GET, command, &Params::new())
            .await?;
        let result = answer.get("result").cloned().unwrap_or(answer);
        if let Some(err) = result.get("error") {
            let e: QgaError = serde_json::from_value(err.clone()).unwrap_or(QgaError {
                class: "Error".to_owned(),
                desc: err.to_string(),
            });
            return Err(Error::AgentRefused {
                vmid: guest.vmid(),
                command: command.to_owned(),
                class: e.class,
                desc: e.desc,
            });
        }
        serde_json::from_value(result).map_err(|e| Error::Unexpected {
            what: format!("GET {}", guest.path(&["agent", command])),
            why: e.to_string(),
        })
    }

    /// `GET agent/info`: the agent's version and commands.
    pub async fn info(&self, guest: &Guest) -> Result<AgentInfo> {
        self.result(guest, "info").await
    }

    /// `GET agent/get-osinfo`: the guest's operating system.
    pub async fn osinfo(&self, guest: &Guest) -> Result<OsInfo> {
        self.result(guest, "get-osinfo").await
    }

    /// `GET agent/get-users`: who is logged in.
    pub async fn users(&self, guest: &Guest) -> Result<Vec<GuestUser>> {
        self.result(guest, "get-users").await
    }

    /// The agent's answer to a read-only `GET agent/<command>` as raw JSON (the `result`),
    /// for callers that keep evidence as the agent gave it. `command` is one of
    /// [`RAW_QUERIES`]; anything else is refused before it is sent.
    pub async fn query_json(&self, guest: &Guest, command: &str) -> Result<serde_json::Value> {
        if !RAW_QUERIES.contains(&command) {
            return Err(Error::InvalidInput {
                what: format!("agent query {command:?}"),
                why: format!("allowed: {}", RAW_QUERIES.join(", ")),
            });
        }
        self.result(guest, command).await
    }

    /// Runs a command and returns its result: `POST agent/exec` with the argv as an array
    /// (the form key `command` repeated once per item) and `input-data`, then `GET
    /// agent/exec-status?pid=` with backoff per [`AgentOptions::exec_poll`] until it reports
    /// the end, all within the command's timeout.
    ///
    /// A non-zero exit code is a result, not an error. Errors: PVE's text when the agent
    /// does not answer ([`Error::is_agent_unavailable`]); [`Error::ResultLost`] when the
    /// one answer carrying the result was lost (qemu-ga then forgets the pid) — never a
    /// success; [`Error::Unfinished`] when the command still ran at the timeout.
    pub async fn exec(&self, guest: &Guest, cmd: &Exec) -> Result<ExecOutput> {
        cmd.check()?;
        Self::require_qemu(guest, "exec")?;
        let timeout = cmd
            .timeout_value()
            .unwrap_or(self.inner.options.exec_timeout);
        let begun = Instant::now();
        let started = SystemTime::now();
        let what = cmd.display();
        let pid = match tokio::time::timeout(timeout, self.exec_start(guest, cmd)).await {
            Ok(pid) => pid?,
            Err(_) => {
                return Err(Error::Vm(pve_vm::Error::Timeout {
                    what: format!("the guest agent of VM {} to accept {what}", guest.vmid()),
                    after: timeout,
                    last_error: None,
                }))
            }
        };
        let remaining = timeout.saturating_sub(begun.elapsed());
        let awaited = format!("{what} in VM {}", guest.vmid());
        let polled = self
            .inner
            .options
            .exec_poll
            .wait(&awaited, remaining, || async {
                match self.exec_status(guest, pid).await {
                    Ok(status) if status.exited => Ok(Poll::Ready((status, SystemTime::now()))),
                    Ok(_) => Ok(Poll::Pending(None)),
                    // The answer may have carried the result: the next poll tells.
                    Err(e) if e.is_transient() => Ok(Poll::Pending(Some(e.to_string()))),
                    Err(e) if forgot_pid(&e) => Err(Error::ResultLost {
                        vmid: guest.vmid(),
                        pid: Some(pid),
                        what: what.clone(),
                        detail: format!(
                            "the agent no longer knows the process, so the answer that \
                             reported its end was lost (or another client read it first): {e}"
                        ),
                    }),
                    Err(e) => Err(e),
                }
            })
            .await;
        let (status, finished) = match polled {
            Ok(v) => v,
            Err(Error::Vm(pve_vm::Error::Timeout { .. })) => {
                return Err(Error::Unfinished {
                    vmid: guest.vmid(),
                    pid,
                    what,
                    after: timeout,
                })
            }
            Err(e) => return Err(e),
        };
        Ok(ExecOutput {
            pid,
            argv: cmd.argv().to_vec(),
            exitcode: status.exitcode,
            signal: status.signal,
            stdout: status.out_data.unwrap_or_default(),
            stderr: status.err_data.unwrap_or_default(),
            out_truncated: status.out_truncated,
            err_truncated: status.err_truncated,
            started,
            finished,
        })
    }

    /// `POST agent/exec` alone: starts the command and answers the guest's pid. Read the
    /// result with [`AgentApi::exec_status`] (once: qemu-ga forgets a finished process
    /// after reporting it). A lost answer is [`Error::ResultLost`] without pid: the command
    /// may have started; it is never sent twice.
    pub async fn exec_start(&self, guest: &Guest, cmd: &Exec) -> Result<i64> {
        cmd.check()?;
        let mut params = Params::new();
        for arg in cmd.argv() {
            params.append("command", arg.as_str());
        }
        if let Some(stdin) = cmd.stdin_data() {
            params.insert("input-data", stdin);
        }
        match self
            .call::<Pid>(guest, pve_auth::Method::POST, "exec", &params)
            .await
        {
            Ok(p) => Ok(p.pid),
            Err(e) if e.is_transient() && !e.vm().is_some_and(pve_vm::Error::was_never_sent) => {
                Err(Error::ResultLost {
                    vmid: guest.vmid(),
                    pid: None,
                    what: cmd.display(),
                    detail: format!("the command may have started: {e}"),
                })
            }
            Err(e) if e.mentions("Failed to execute child process") => {
                let detail = e
                    .vm()
                    .and_then(pve_vm::Error::api)
                    .map(|a| match a {
                        pve_auth::Error::Api { message, .. } => message.trim().to_owned(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| e.to_string());
                Err(Error::SpawnFailed {
                    vmid: guest.vmid(),
                    program: cmd.argv().first().cloned().unwrap_or_default(),
                    not_found: e.mentions("No such file or directory"),
                    detail,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `GET agent/exec-status?pid=` once. `exited: false` means the command still runs.
    pub async fn exec_status(&self, guest: &Guest, pid: i64) -> Result<ExecStatus> {
        let params = Params::new().with("pid", pid);
        self.call(guest, pve_auth::Method::GET, "exec-status", &params)
            .await
    }

    /// Reads a whole file of up to 16 MiB (`GET agent/file-read`, fetched base64-encoded
    /// with `decode=0` so binary files arrive intact); `truncated` tells that the file is
    /// longer.
    pub async fn file_read(&self, guest: &Guest, path: &str) -> Result<FileContent> {
        self.file_read_at(guest, path, 0, None).await
    }

    /// Reads `count` bytes (at most 16 MiB; all up to the cap when `None`) from `offset`.
    pub async fn file_read_at(
        &self,
        guest: &Guest,
        path: &str,
        offset: u64,
        count: Option<u64>,
    ) -> Result<FileContent> {
        check_guest_path(path)?;
        if let Some(c) = count {
            if c == 0 || c > MAX_FILE_READ {
                return Err(Error::InvalidInput {
                    what: format!("count {c} of a read of {path:?}"),
                    why: format!("a read takes 1 to {MAX_FILE_READ} bytes"),
                });
            }
        }
        let mut params = Params::new().with("file", path);
        if offset > 0 {
            params.insert("offset", offset);
        }
        if let Some(c) = count {
            params.insert("count", c);
        }
        params.insert("decode", false);
        let raw: RawFile = self
            .call(guest, pve_auth::Method::GET, "file-read", &params)
            .await?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(raw.content.trim())
            .map_err(|e| Error::Unexpected {
                what: format!("GET {}", guest.path(&["agent", "file-read"])),
                why: format!("the content of {path:?} asked for with decode=0 is not base64: {e}"),
            })?;
        Ok(FileContent {
            data,
            truncated: raw.truncated,
        })
    }

    /// Writes a whole file (`POST agent/file-write`; the file is created or replaced).
    /// Printable ASCII text (with tabs and line breaks) of up to 61440 bytes is sent as it is (`encode=1`: PVE base64-encodes it
    /// for qemu-ga); anything else is base64-encoded here (`encode=0`), which fits files of
    /// up to 46080 bytes. Larger files are refused before anything is sent.
    pub async fn file_write(&self, guest: &Guest, path: &str, data: &[u8]) -> Result<()> {
        check_guest_path(path)?;
        let mut params = Params::new().with("file", path);
        if is_plain_text(data) && data.len() <= MAX_FILE_WRITE_CONTENT {
            // `encode` defaults to 1.
            params.insert("content", String::from_utf8_lossy(data).as_ref());
        } else if data.len() <= MAX_FILE_WRITE_BINARY {
            params.insert(
                "content",
                base64::engine::general_purpose::STANDARD.encode(data),
            );
            params.insert("encode", false);
        } else {
            return Err(Error::InvalidInput {
                what: format!("content of {path:?} ({} bytes)", data.len()),
                why: format!(
                    "file-write takes at most {MAX_FILE_WRITE_CONTENT} bytes of ASCII text or \
                     {MAX_FILE_WRITE_BINARY} bytes of other data (PVE's 61440-character \
                     limit, base64 for binary)"
                ),
            });
        }
        let _: serde_json::Value = self
            .call(guest, pve_auth::Method::POST, "file-write", &params)
            .await?;
        Ok(())
    }
}

/// An exec-status error saying the agent does not know the pid (qemu-ga: `Invalid parameter
/// 'pid'`), i.e. its result was already reported.
fn forgot_pid(e: &Error) -> bool {
    let Some(pve_auth::Error::Api {
        status, message, ..
    }) = e.vm().and_then(pve_vm::Error::api)
    else {
        return false;
    };
    *status == 500 && message.to_ascii_lowercase().contains("pid")
}

/// Printable ASCII plus tab, CR and LF: sent as it is, a form value that every PVE version
/// reads back byte for byte.
fn is_plain_text(data: &[u8]) -> bool {
    data.iter()
        .all(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
}

fn check_guest_path(path: &str) -> Result<()> {
    if path.is_empty() || path.contains('\0') {
        return Err(Error::InvalidInput {
            what: format!("guest path {path:?}"),
            why: "give a non-empty path without NUL bytes, e.g. /etc/hostname".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_scaling() {
        assert_eq!(MAX_FILE_WRITE_BINARY, 46_080);
        let o = AgentOptions::default().scaled(0.01).per_node(0);
        assert_eq!(o.per_node, 1);
        assert_eq!(o.exec_timeout, Duration::from_millis(600));
        assert_eq!(o.exec_poll.min(), Duration::from_millis(1));
        assert!(check_guest_path("").is_err() && check_guest_path("/a\0b").is_err());
        check_guest_path("/etc/hostname").unwrap();
        assert!(
            is_plain_text(b"a\tb\r\n~") && !is_plain_text(b"a\0") && !is_plain_text("ü".as_bytes())
        );
    }
}
