//! Helpers of the end-to-end tests of the `labctl` binary: the binary with a clean
//! environment, the simulator, a loopback server that records what reached it, and runs
//! that must end with a given exit code.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use pve_sim::{SimHandle, Simulator, SimulatorBuilder};
use tokio::process::Command;

pub const SCALE: &str = "0.01";

/// Every test's own limit: a run of labctl that hangs fails instead of blocking the suite.
pub const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// `labctl` with a clean environment: nothing from the developer's shell (PVE_*, FC_*,
/// LABCTL_*, a config file) leaks in; HOME and XDG_CONFIG_HOME point to an empty place.
pub fn labctl(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_")
            || k.starts_with("FC_")
            || k.starts_with("LABCTL_")
            || k == "RUST_LOG"
        {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .current_dir(home)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    c
}

/// `labctl` pointed at the simulator as root.
pub fn against(home: &Path, sim: &SimHandle) -> Command {
    let mut c = labctl(home);
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE);
    c
}

/// The simulator as [`sim`] starts it (plain HTTP, root's password `secret`, time scale
/// 0.01), to be given more before it starts.
pub fn sim_builder() -> SimulatorBuilder {
    Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
}

pub async fn sim() -> SimHandle {
    sim_builder().start().await.unwrap()
}

/// An API client of the simulator as root, to prepare a situation through the API itself.
pub fn root(sim: &SimHandle) -> pve_auth::PveClient {
    pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap()
}

/// Runs `c` with `args`: (exit code, stdout, stderr).
pub async fn run(mut c: Command, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = tokio::time::timeout(RUN_TIMEOUT, c.args(args).output())
        .await
        .unwrap_or_else(|_| panic!("labctl {args:?} did not finish"))
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `$home/config/labctl/config.toml`.
pub fn config(home: &Path, text: &str) {
    let dir = home.join("config").join("labctl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
    // Whatever the umask: labctl refuses a config file others may write.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("config.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
}

/// Writes `text` to the file `name` in `dir`: its path, as labctl's arguments take it.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Writes an owner-only secret file and returns its path.
pub fn secret_file(home: &Path, name: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = home.join(name);
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// A loopback HTTP server that answers every request with 401 and records each request's
/// head and body: whatever reached it, secrets included.
pub struct Recorder {
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line
                        .to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(str::trim)
                        .map(str::to_owned)
                    {
                        length = v.parse().unwrap_or(0);
                    }
                    let end = line == "\r\n";
                    head.push_str(&line);
                    if end {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                head.push_str(&String::from_utf8_lossy(&body));
                log.lock().unwrap().push(head);
                let reply = "{\"data\":null}";
                let _ = write!(
                    stream,
                    "HTTP/1.1 401 authentication failure\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Recorder { url, seen }
    }

    /// Everything received so far.
    pub fn received(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// What one run of labctl gave; `Display` shows all of it for assertion messages.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `c` with `args` within [`RUN_TIMEOUT`], failing the test on a panic of labctl.
pub async fn output(c: Command, args: &[&str]) -> Out {
    let (code, stdout, stderr) = run(c, args).await;
    let out = Out {
        code,
        stdout,
        stderr,
    };
    assert!(
        out.code != Some(101) && !out.stderr.contains("panicked"),
        "labctl {args:?} panicked\n{out}"
    );
    out
}

/// Runs labctl against the simulator as root with `args` (see [`output`]), failing the test
/// unless it exits with `code`.
pub async fn exits(home: &Path, sim: &SimHandle, code: i32, args: &[&str]) -> Out {
    let out = output(against(home, sim), args).await;
    assert_eq!(out.code, Some(code), "labctl {args:?}\n{out}");
    out
}

/// Sends `child` SIGINT, as Ctrl-C in its terminal would.
pub fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("the child still runs").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -INT {pid}: {sent}");
}

/// The guests of the pool `pool` in the simulator's `state`.
pub fn pool_guests(state: &serde_json::Value, pool: &str) -> Vec<serde_json::Value> {
    state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pool"] == pool)
        .cloned()
        .collect()
}

/// `text` parsed as JSON, failing the test with the text when it is not.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The JSON file at `path`.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    json(&text)
}
