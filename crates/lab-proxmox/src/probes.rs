//! The grader's probes on Proxmox VE ([`PveRunner`], a [`lab_grade::collect::Runner`]):
//! runs a planned probe for real: inside a guest through its agent (the student's, or
//! the teacher's for `from = "teacher"`), or on this machine (`from = "host"`).
//!
//! Every result is raw: exit code, stdout, stderr. On the host, `ping` and `dns` run the
//! machine's own `ping` and `dig` with the argv a guest would run (so one parser reads
//! both), `tcp` is a connect and `http` a GET whose stdout is shaped like curl's
//! `-w '\n%{http_code}'`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lab_grade::collect::{Raw, Runner};
use lab_grade::{AgentQuery, ErrorKind, PlannedProbe, Request, Source, StudentInfo, Target};
use pve_agent::{AgentApi, Exec};
use pve_vm::{Guest, GuestKind, NodeName, VmApi, VmId};
use tokio::sync::OnceCell;

/// Runs `lab-grade` probes on a Proxmox VE cluster (what `labctl lab collect` uses).
pub struct PveRunner {
    agent: AgentApi,
    vms: VmApi,
    teacher: Option<VmId>,
    teacher_guest: OnceCell<Result<Guest, String>>,
    http: Option<reqwest::Client>,
}

impl PveRunner {
    /// A runner over `agent`; `teacher` is the VMID of the teacher's guest, if any.
    pub fn new(agent: AgentApi, teacher: Option<VmId>) -> Self {
        let vms = agent.vms().clone();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok();
        PveRunner {
            agent,
            vms,
            teacher,
            teacher_guest: OnceCell::new(),
            http,
        }
    }

    async fn teacher(&self) -> Result<Guest, String> {
        let Some(id) = self.teacher else {
            return Err(
                "the probe runs from the teacher's guest, but the checks name none ([exam] \
                 teacher = VMID)"
                    .to_owned(),
            );
        };
        self.teacher_guest
            .get_or_init(|| async move {
                self.vms
                    .guest(id)
                    .await
                    .map_err(|e| format!("the teacher's guest {id}: {e}"))
            })
            .await
            .clone()
    }

    /// The guest a probe runs in, and how the evidence names it.
    async fn guest_of(
        &self,
        student: &StudentInfo,
        source: Source,
    ) -> Result<(Guest, Target), (Target, ErrorKind, String)> {
        match source {
            Source::Guest => {
                let target = Target {
                    vmid: Some(student.vmid),
                    node: Some(student.node.clone()),
                    name: student.hostname.clone(),
                };
                let ids = VmId::new(student.vmid)
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        NodeName::new(student.node.clone())
                            .map(|n| (v, n))
                            .map_err(|e| e.to_string())
                    });
                match ids {
                    Ok((vmid, node)) => {
                        Ok((self.vms.guest_on(node, GuestKind::Qemu, vmid), target))
                    }
                    Err(e) => Err((target, ErrorKind::Missing, e)),
                }
            }
            Source::Teacher => {
                let fallback = Target {
                    vmid: self.teacher.map(VmId::get),
                    node: None,
                    name: "teacher".to_owned(),
                };
                match self.teacher().await {
                    Ok(g) => {
                        let target = Target {
                            vmid: Some(g.vmid().get()),
                            node: Some(g.node().to_string()),
                            name: "teacher".to_owned(),
                        };
                        Ok((g, target))
                    }
                    Err(e) => Err((fallback, ErrorKind::Missing, e)),
                }
            }
            Source::Host => Err((host_target(), ErrorKind::Unsupported, String::new())),
        }
    }

    async fn in_guest(&self, student: &StudentInfo, probe: &PlannedProbe) -> Raw {
        let start = SystemTime::now();
        let (guest, target) = match self.guest_of(student, probe.source).await {
            Ok(g) => g,
            Err((target, kind, why)) => return Raw::failed(target, start, kind, why),
        };
        match &probe.request {
            Request::File { path } => match self.agent.file_read(&guest, path).await {
                Ok(f) => Raw {
                    target,
                    start,
                    end: SystemTime::now(),
                    exit: Some(0),
                    signal: None,
                    stdout: f.data,
                    stderr: Vec::new(),
                    truncated: f.truncated,
                    error: None,
                },
                // A missing file is an answer (the student did not make it), as `cat` says it.
                Err(e) if e.mentions("No such file or directory") => Raw {
                    target,
                    start,
                    end: SystemTime::now(),
                    exit: Some(1),
                    signal: None,
                    stdout: Vec::new(),
                    stderr: format!("{path}: No such file or directory\n").into_bytes(),
                    truncated: false,
                    error: None,
                },
                Err(e) => failed(target, start, &e),
            },
            Request::Agent { query } => {
                let command = match query {
                    AgentQuery::Info => "info",
                    AgentQuery::Osinfo => "get-osinfo",
                    AgentQuery::Users => "get-users",
                    AgentQuery::Network => "network-get-interfaces",
                    AgentQuery::Hostname => "get-host-name",
                };
                match self.agent.query_json(&guest, command).await {
                    Ok(v) => {
                        let mut out = serde_json::to_vec(&v).unwrap_or_default();
                        out.push(b'\n');
                        Raw {
                            target,
                            start,
                            end: SystemTime::now(),
                            exit: Some(0),
                            signal: None,
                            stdout: out,
                            stderr: Vec::new(),
                            truncated: false,
                            error: None,
                        }
                    }
                    Err(e) => failed(target, start, &e),
                }
            }
            other => {
                let Some(argv) = other.guest_argv(probe.timeout) else {
                    return Raw::failed(
                        target,
                        start,
                        ErrorKind::Unsupported,
                        format!("{other} cannot run in a guest"),
                    );
                };
                // The agent's own timeout a little above the tool's, so the tool's answer
                // (a refused or timed-out connection) is what gets recorded.
                let cmd = Exec::new(argv).timeout(probe.timeout + Duration::from_secs(5));
                match self.agent.exec(&guest, &cmd).await {
                    Ok(out) => Raw {
                        target,
                        start: out.started,
                        end: out.finished,
                        exit: out.exitcode,
                        signal: out.signal,
                        stdout: out.stdout.into_bytes(),
                        stderr: out.stderr.into_bytes(),
                        truncated: out.out_truncated || out.err_truncated,
                        error: None,
                    },
                    Err(e) => failed(target, start, &e),
                }
            }
        }
    }

    async fn on_host(&self, probe: &PlannedProbe) -> Raw {
        let start = SystemTime::now();
        let target = host_target();
        let t = probe.timeout;
        match &probe.request {
            Request::Ping { .. } | Request::Dns { .. } => {
                let Some(argv) = probe.request.guest_argv(t) else {
                    return Raw::failed(target, start, ErrorKind::Unsupported, String::new());
                };
                local_command(target, start, &argv, t + Duration::from_secs(5)).await
            }
            Request::Tcp { host, port } => {
                let addr = format!("{}:{port}", bracket(host));
                let r = tokio::time::timeout(t, tokio::net::TcpStream::connect(&addr)).await;
                let (exit, err) = match r {
                    Ok(Ok(_)) => (0, String::new()),
                    Ok(Err(e)) => (1, format!("connect to {addr}: {e}\n")),
                    Err(_) => (1, format!("connect to {addr}: timed out after {t:?}\n")),
                };
                ran(target, start, exit, Vec::new(), err.into_bytes())
            }
            Request::Http { url } => {
                let Some(client) = &self.http else {
                    return Raw::failed(
                        target,
                        start,
                        ErrorKind::Unsupported,
                        "no HTTP client on this machine (TLS roots could not be loaded)".into(),
                    );
                };
                match client.get(url).timeout(t).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let mut body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                        body.extend_from_slice(format!("\n{status:03}").as_bytes());
                        ran(target, start, 0, body, Vec::new())
                    }
                    Err(e) => {
                        // curl's codes: 28 timeout, 7 no connection, 1 anything else.
                        let code = if e.is_timeout() {
                            28
                        } else if e.is_connect() {
                            7
                        } else {
                            1
                        };
                        ran(
                            target,
                            start,
                            code,
                            b"\n000".to_vec(),
                            format!("{url}: {e}\n").into_bytes(),
                        )
                    }
                }
            }
            other => Raw::failed(
                target,
                start,
                ErrorKind::Unsupported,
                format!(
                    "`{}` probes run inside a guest (from = \"guest\" or \"teacher\"), not on \
                     the host",
                    other.kind()
                ),
            ),
        }
    }
}

#[async_trait]
impl Runner for PveRunner {
    async fn run(&self, student: &StudentInfo, probe: &PlannedProbe) -> Raw {
        match probe.source {
            Source::Host => self.on_host(probe).await,
            Source::Guest | Source::Teacher => self.in_guest(student, probe).await,
        }
    }
}

fn host_target() -> Target {
    Target {
        vmid: None,
        node: None,
        name: "labctl host".to_owned(),
    }
}

/// `[v6]` for an IPv6 literal in `host:port`.
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn ran(target: Target, start: SystemTime, exit: i64, stdout: Vec<u8>, stderr: Vec<u8>) -> Raw {
    Raw {
        target,
        start,
        end: SystemTime::now(),
        exit: Some(exit),
        signal: None,
        stdout,
        stderr,
        truncated: false,
        error: None,
    }
}

/// Runs `argv` on this machine (no shell), killed after `limit`.
async fn local_command(target: Target, start: SystemTime, argv: &[String], limit: Duration) -> Raw {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(out)) => {
            use std::os::unix::process::ExitStatusExt;
            Raw {
                target,
                start,
                end: SystemTime::now(),
                exit: out.status.code().map(i64::from),
                signal: out.status.signal().map(i64::from),
                stdout: out.stdout,
                stderr: out.stderr,
                truncated: false,
                error: None,
            }
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Raw::failed(
            target,
            start,
            ErrorKind::SpawnFailed,
            format!(
                "`{}` is not installed on this machine (install it, e.g. `apt install {}`, or \
                 run the probe from = \"teacher\")",
                argv[0],
                if argv[0] == "dig" {
                    "bind9-dnsutils"
                } else {
                    "iputils-ping"
                }
            ),
        ),
        Ok(Err(e)) => Raw::failed(
            target,
            start,
            ErrorKind::SpawnFailed,
            format!("{}: {e}", argv[0]),
        ),
        Err(_) => Raw::failed(
            target,
            start,
            ErrorKind::Timeout,
            format!("{} did not finish within {limit:?}", argv[0]),
        ),
    }
}

/// An agent error as evidence: which kind, and PVE's text.
fn failed(target: Target, start: SystemTime, e: &pve_agent::Error) -> Raw {
    Raw::failed(target, start, error_kind(e), e.to_string())
}

/// The evidence's kind of an agent error.
pub fn error_kind(e: &pve_agent::Error) -> ErrorKind {
    use pve_agent::Error as E;
    match e {
        E::ResultLost { .. } => ErrorKind::ResultLost,
        E::Unfinished { .. } => ErrorKind::Timeout,
        E::SpawnFailed { .. } => ErrorKind::SpawnFailed,
        E::AgentRefused { .. } => ErrorKind::AgentDown,
        E::InvalidInput { .. } => ErrorKind::Unsupported,
        _ if e.mentions("not running") && !e.mentions("agent") => ErrorKind::NotRunning,
        _ if e.is_agent_unavailable() => ErrorKind::AgentDown,
        E::Vm(v) if v.is_not_found() => ErrorKind::Missing,
        _ => ErrorKind::Api,
    }
}
