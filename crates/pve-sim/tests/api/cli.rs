//! The `pve-sim` binary: help, the start line, a generated password, bad flags, SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pve-sim");

fn sim() -> Command {
    let mut c = Command::new(BIN);
    // Never inherit a developer's settings.
    for var in ["PVE_SIM_PASSWORD", "PVE_SIM_TOKEN", "PVE_SIM_TOTP_SECRET"] {
        c.env_remove(var);
    }
    c.kill_on_drop(true);
    c
}

/// Start the binary on a free loopback port; returns it and its stdout lines so far.
async fn spawn(args: &[&str], password_env: Option<&str>) -> (Child, Vec<String>) {
    let mut cmd = sim();
    cmd.args(["--listen", "127.0.0.1:0", "--plain-http"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = password_env {
        cmd.env("PVE_SIM_PASSWORD", p);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the start line comes")
        .unwrap()
        .expect("stdout is open");
    out.push(first);
    if password_env.is_none() {
        out.push(lines.next_line().await.unwrap().expect("password line"));
    }
    (child, out)
}

#[tokio::test]
async fn help_teaches_defaults_and_examples() {
    let out = sim().arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "[default: 127.0.0.1:8006]",
        "[default: 3]",
        "[default: root@pam]",
        "[default: 7200]",
        "[env: PVE_SIM_PASSWORD]",
        "Examples:",
        "--time-scale 0.05",
        "PVEAPIToken=",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[tokio::test]
async fn bad_flags_exit_with_an_error_naming_the_setting() {
    let out = sim()
        .args(["--listen", "127.0.0.1:0", "--nodes", "0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("invalid nodes: 0 (allowed: 1 to 32)"), "{err}");
}

#[tokio::test]
async fn prints_the_start_line_and_serves_with_the_env_password() {
    let (mut child, lines) = spawn(&["--nodes", "1"], Some("from-env")).await;
    let line = &lines[0];
    let rest = line
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("start line: {line}"));
    let (port, fp) = rest.split_once(" fingerprint ").unwrap();
    let port: u16 = port.parse().unwrap();
    assert_eq!(fp.split(':').count(), 32, "SHA-256 in AA:BB form: {fp}");
    assert!(fp
        .chars()
        .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase()));
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api2/json/access/ticket"))
        .form(&[("username", "root@pam"), ("password", "from-env")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_generated_password_is_printed_and_works() {
    let (mut child, lines) = spawn(&[], None).await;
    let port = lines[0]
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|r| r.split_once(' '))
        .map(|(p, _)| p.to_owned())
        .unwrap();
    let password = lines[1].strip_prefix("password ").unwrap();
    assert_eq!(password.len(), 16);
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api2/json/access/ticket"))
        .form(&[("username", "root@pam"), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let (mut child, _) = spawn(&["--nodes", "1"], Some("x")).await;
    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
