//! End-to-end, through the binary: what an exploratory tester did with `labctl vm
//! exec|file-read|file-write|snapshot|link` against the simulator, and what it must answer.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::Command;

const SCALE: &str = "0.01";
/// A guard against a hanging binary, not a measurement.
const GUARD: Duration = Duration::from_secs(120);

/// `labctl` with a clean environment: no PVE_* from the developer's shell leaks in.
fn labctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.kill_on_drop(true);
    c
}

async fn run(sim: &SimHandle, args: &[&str]) -> (Output, String, String) {
    let mut c = labctl();
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(GUARD, c.args(args).output())
        .await
        .unwrap_or_else(|_| panic!("labctl {args:?} hung"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

async fn ok(sim: &SimHandle, args: &[&str]) -> String {
    let (out, stdout, stderr) = run(sim, args).await;
    assert!(
        out.status.success(),
        "labctl {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Runs `args`, expects exit `code`, returns stdout and stderr.
async fn fails(sim: &SimHandle, args: &[&str], code: i32) -> (String, String) {
    let (out, stdout, stderr) = run(sim, args).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "labctl {args:?}:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// A simulator with VM 5000 cloned from 9000, running, its agent answering.
async fn lab() -> SimHandle {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    ok(
        &sim,
        &[
            "vm", "clone", "9000", "--name", "stud-01", "--newid", "5000",
        ],
    )
    .await;
    ok(&sim, &["vm", "start", "5000"]).await;
    ok(&sim, &["vm", "agent", "5000", "--wait", "60"]).await;
    sim
}

fn guest_of(sim: &SimHandle, vmid: u64) -> Value {
    sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"].as_u64() == Some(vmid))
        .unwrap()
        .clone()
}

async fn snapshot_names(sim: &SimHandle, vmid: &str) -> Vec<String> {
    let list: Value =
        serde_json::from_str(&ok(sim, &["-o", "json", "vm", "snapshot", vmid, "list"]).await)
            .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn snapshot_create_dry_run_creates_nothing() {
    let sim = lab().await;
    let stdout = ok(
        &sim,
        &["vm", "snapshot", "5000", "create", "drytest", "--dry-run"],
    )
    .await;
    assert!(stdout.contains("would create snapshot drytest"), "{stdout}");
    assert!(snapshot_names(&sim, "5000").await.is_empty());
    // Flags that mean nothing for an action are refused, not ignored.
    fails(&sim, &["vm", "snapshot", "5000", "list", "--dry-run"], 2).await;
    fails(&sim, &["vm", "snapshot", "5000", "create", "s", "--yes"], 2).await;
    assert!(snapshot_names(&sim, "5000").await.is_empty());
}

#[tokio::test]
async fn link_on_a_template_is_refused_and_dry_run_reports_would_change() {
    let sim = lab().await;
    let before = guest_of(&sim, 9000)["config"]["net0"].clone();
    let (_, stderr) = fails(&sim, &["vm", "link", "9000", "down", "--yes"], 2).await;
    assert!(stderr.contains("template"), "{stderr}");
    assert_eq!(guest_of(&sim, 9000)["config"]["net0"], before);

    let out: Value = serde_json::from_str(
        &ok(
            &sim,
            &["-o", "json", "vm", "link", "5000", "down", "--dry-run"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(out["dry_run"], true, "{out}");
    assert_eq!(out["changed"], false, "{out}");
    assert_eq!(out["would_change"], true, "{out}");
    let net0 = guest_of(&sim, 5000)["config"]["net0"].clone();
    assert!(!net0.as_str().unwrap().contains("link_down"), "{net0}");
}

#[tokio::test]
async fn exec_of_a_program_the_guest_cannot_spawn_exits_127() {
    let sim = lab().await;
    // The simulated qemu-ga fails the spawn of a program path that does not exist.
    let (_, stderr) = fails(&sim, &["vm", "exec", "5000", "--", "/opt/x y"], 127).await;
    assert!(
        stderr.contains("/opt/x y: command not found in the guest"),
        "{stderr}"
    );
}

#[tokio::test]
async fn link_of_a_missing_nic_is_not_found_up_and_down() {
    let sim = lab().await;
    let (_, up) = fails(&sim, &["vm", "link", "5000", "up", "--net", "net1"], 4).await;
    let (_, down) = fails(
        &sim,
        &["vm", "link", "5000", "down", "--net", "net1", "--yes"],
        4,
    )
    .await;
    assert!(up.contains("has no network device net1"), "{up}");
    assert!(down.contains("has no network device net1"), "{down}");
}

#[tokio::test]
async fn missing_or_unreadable_local_input_files_are_bad_input() {
    let sim = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexist");
    let missing = missing.to_str().unwrap();
    let here = dir.path().to_str().unwrap();
    for args in [
        vec!["vm", "exec", "5000", "--stdin", missing, "--", "cat"],
        vec!["vm", "exec", "5000", "--stdin", here, "--", "cat"],
        vec!["vm", "file-write", "5000", "/root/a", "--from", missing],
    ] {
        let (_, stderr) = fails(&sim, &args, 2).await;
        let named = if args.contains(&here) { here } else { missing };
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn rollback_of_a_running_vm_to_a_disk_snapshot_says_it_stops() {
    let sim = lab().await;
    ok(&sim, &["vm", "snapshot", "5000", "create", "baseline"]).await;
    let dry = ok(
        &sim,
        &[
            "vm",
            "snapshot",
            "5000",
            "rollback",
            "baseline",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        dry.contains("VM 5000 will be stopped (pass --start to start it after)"),
        "{dry}"
    );
    let (_, stdout, stderr) = run(
        &sim,
        &["vm", "snapshot", "5000", "rollback", "baseline", "--yes"],
    )
    .await;
    assert!(
        stderr.contains("will be stopped (pass --start"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("it is stopped"), "{stdout}\n{stderr}");
    assert_eq!(guest_of(&sim, 5000)["status"], "stopped");
}

#[tokio::test]
async fn snapshot_with_vmstate_of_a_stopped_vm_is_refused() {
    let sim = lab().await;
    ok(
        &sim,
        &[
            "vm", "clone", "9000", "--name", "stud-02", "--newid", "5001",
        ],
    )
    .await;
    let (_, stderr) = fails(
        &sim,
        &["vm", "snapshot", "5001", "create", "vs", "--vmstate"],
        2,
    )
    .await;
    assert!(stderr.contains("not running"), "{stderr}");
    assert!(snapshot_names(&sim, "5001").await.is_empty());
}

#[tokio::test]
async fn snapshot_list_with_a_name_is_refused() {
    let sim = lab().await;
    fails(&sim, &["vm", "snapshot", "5000", "list", "extra"], 2).await;
}

#[tokio::test]
async fn default_snapshot_names_do_not_collide() {
    let sim = lab().await;
    ok(&sim, &["vm", "snapshot", "5000", "create"]).await;
    ok(&sim, &["vm", "snapshot", "5000", "create"]).await;
    let names = snapshot_names(&sim, "5000").await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert_ne!(names[0], names[1]);
}

#[tokio::test]
async fn file_read_out_dash_is_stdout_and_a_missing_out_directory_is_refused_first() {
    let sim = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = labctl();
    c.current_dir(dir.path())
        .env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", SCALE)
        .stdin(std::process::Stdio::null())
        .args(["vm", "file-read", "5000", "/etc/hostname", "--out", "-"]);
    let out = tokio::time::timeout(GUARD, c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stud-01\n");
    assert!(!dir.path().join("-").exists());

    let target = dir.path().join("nodir").join("hostname");
    sim.reset_requests();
    let (_, stderr) = fails(
        &sim,
        &[
            "vm",
            "file-read",
            "5000",
            "/etc/hostname",
            "--out",
            target.to_str().unwrap(),
        ],
        2,
    )
    .await;
    assert!(stderr.contains("does not exist"), "{stderr}");
    let sent = sim.requests();
    assert!(
        !sent.to_string().contains("file-read"),
        "nothing is read: {sent}"
    );
}

#[tokio::test]
async fn oversized_stdin_and_out_of_range_ids_say_what_is_wrong() {
    let sim = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(70_000)).unwrap();
    let (_, stderr) = fails(
        &sim,
        &[
            "vm",
            "exec",
            "5000",
            "--stdin",
            big.to_str().unwrap(),
            "--",
            "sha256sum",
        ],
        2,
    )
    .await;
    assert!(stderr.contains("stdin too large"), "{stderr}");
    assert!(stderr.contains("65536"), "{stderr}");
    let (_, stderr) = fails(
        &sim,
        &["vm", "exec", "99999999999999999999", "--", "true"],
        2,
    )
    .await;
    assert!(
        stderr.contains("invalid VMID \"99999999999999999999\""),
        "{stderr}"
    );
    assert!(stderr.contains("100 to 999999999"), "{stderr}");
}

#[tokio::test]
async fn sh_dash_c_runs_a_simple_pipe_as_the_help_shows() {
    let sim = lab().await;
    for sh in ["/bin/sh", "sh"] {
        let stdout = ok(
            &sim,
            &[
                "vm",
                "exec",
                "5000",
                "--",
                sh,
                "-c",
                "cat /etc/hostname | head -c 4",
            ],
        )
        .await;
        assert_eq!(stdout, "stud", "{sh}");
    }
    let stdout = ok(
        &sim,
        &[
            "vm",
            "exec",
            "5000",
            "--",
            "/bin/sh",
            "-c",
            "ip -j route | head -c 200",
        ],
    )
    .await;
    assert!(stdout.starts_with('['), "{stdout}");
}

#[tokio::test]
async fn file_write_into_a_missing_directory_fails_as_qga_does() {
    let sim = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x.txt");
    std::fs::write(&src, "x\n").unwrap();
    let (_, stderr) = fails(
        &sim,
        &[
            "vm",
            "file-write",
            "5000",
            "/nonexistdir/x",
            "--from",
            src.to_str().unwrap(),
        ],
        1,
    )
    .await;
    assert!(
        stderr.contains(
            "failed to open file '/nonexistdir/x' (mode: 'wb'): No such file or directory"
        ),
        "{stderr}"
    );
    ok(
        &sim,
        &[
            "vm",
            "file-write",
            "5000",
            "/root/x",
            "--from",
            src.to_str().unwrap(),
        ],
    )
    .await;
}

#[tokio::test]
async fn container_snapshots_create_list_rollback_and_delete() {
    let sim = lab().await;
    ok(
        &sim,
        &["vm", "clone", "9001", "--name", "ct-01", "--newid", "5100"],
    )
    .await;
    ok(&sim, &["vm", "snapshot", "5100", "create", "s1"]).await;
    assert_eq!(snapshot_names(&sim, "5100").await, vec!["s1".to_owned()]);
    fails(
        &sim,
        &["vm", "snapshot", "5100", "create", "s2", "--vmstate"],
        2,
    )
    .await;
    ok(
        &sim,
        &[
            "vm", "snapshot", "5100", "rollback", "s1", "--yes", "--start",
        ],
    )
    .await;
    assert_eq!(guest_of(&sim, 5100)["status"], "running");
    ok(&sim, &["vm", "snapshot", "5100", "delete", "s1", "--yes"]).await;
    assert!(snapshot_names(&sim, "5100").await.is_empty());
}
