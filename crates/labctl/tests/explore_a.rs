//! What an exploratory tester did, each through the `labctl` binary against the simulator on
//! 127.0.0.1, and what must (not) happen: another fence is never rewritten, templates are
//! never fenced, interrupting and irreversible `vm` actions ask first or refuse up front,
//! a failing stdout never panics, CSV has no placeholder, bad input exits 2 without
//! echoing a password.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{against, labctl, run, sim, RUN_TIMEOUT};
use pve_auth::{Params, PveClient};
use pve_sim::SimHandle;
use serde_json::Value;

fn root(sim: &SimHandle) -> PveClient {
    PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret".to_owned()))
        .build()
        .unwrap()
}

async fn ok(home: &Path, sim: &SimHandle, args: &[&str]) -> String {
    let (code, out, err) = run(against(home, sim), args).await;
    assert_eq!(code, Some(0), "labctl {args:?}: {out}\n{err}");
    out
}

/// The node a guest lives on, from `/cluster/resources`.
async fn node_of(sim: &SimHandle, vmid: u32) -> String {
    let list: Vec<Value> = root(sim)
        .get("/cluster/resources", &Params::new().with("type", "vm"))
        .await
        .unwrap();
    list.iter()
        .find(|g| g["vmid"].as_u64() == Some(u64::from(vmid)))
        .and_then(|g| g["node"].as_str())
        .unwrap()
        .to_owned()
}

async fn guest_rules(sim: &SimHandle, vmid: u32) -> Vec<Value> {
    let node = node_of(sim, vmid).await;
    root(sim)
        .get(
            &format!("/nodes/{node}/qemu/{vmid}/firewall/rules"),
            &Params::new(),
        )
        .await
        .unwrap()
}

fn no_panic(code: Option<i32>, err: &str) {
    assert_ne!(code, Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
}

#[tokio::test]
async fn isolating_other_guests_under_a_running_labs_fence_name_is_refused() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(
        h,
        &sim,
        &[
            "lab",
            "up",
            "-n",
            "exam1",
            "-t",
            "9000",
            "-c",
            "1",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
    ok(
        h,
        &sim,
        &["vm", "clone", "9000", "--name", "other", "--newid", "7300"],
    )
    .await;
    let (code, out, err) = run(
        against(h, &sim),
        &[
            "firewall",
            "isolate",
            "--first",
            "7300",
            "--last",
            "7300",
            "--allow",
            "10.10.0.99",
            "--lab",
            "exam1",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("iso-exam1") && err.contains("Nothing changed"),
        "{err}"
    );
    assert!(
        err.contains("10.10.0.1"),
        "names what the fence allows: {err}"
    );
    // Nothing changed: the lab still allows its teacher, guest 7300 has no rule.
    let allowed: Vec<Value> = root(&sim)
        .get("/cluster/firewall/ipset/iso-exam1-allowed", &Params::new())
        .await
        .unwrap();
    let cidrs: Vec<&str> = allowed.iter().filter_map(|e| e["cidr"].as_str()).collect();
    assert!(
        cidrs.iter().any(|c| c.starts_with("10.10.0.1")),
        "{cidrs:?}"
    );
    assert!(
        !cidrs.iter().any(|c| c.starts_with("10.10.0.99")),
        "{cidrs:?}"
    );
    assert!(guest_rules(&sim, 7300).await.is_empty());
    // The same allow list under the lab's name is still refused: the fence holds the
    // lab's student, outside 7300-7300.
    let (code, _, err) = run(
        against(h, &sim),
        &[
            "firewall",
            "isolate",
            "--first",
            "7300",
            "--last",
            "7300",
            "--allow",
            "10.10.0.1",
            "--lab",
            "exam1",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("outside"), "{err}");
    assert!(guest_rules(&sim, 7300).await.is_empty());
    // Its own fence name works, and a re-run of the same isolate too.
    for _ in 0..2 {
        ok(
            h,
            &sim,
            &[
                "firewall",
                "isolate",
                "--first",
                "7300",
                "--last",
                "7300",
                "--allow",
                "10.10.0.99",
            ],
        )
        .await;
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn isolating_a_range_with_a_template_never_fences_the_template() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (code, out, err) = run(
        against(h, &sim),
        &[
            "firewall",
            "isolate",
            "--first",
            "9000",
            "--last",
            "9000",
            "--allow",
            "10.10.0.1",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("template") && err.contains("9000"), "{err}");
    assert!(guest_rules(&sim, 9000).await.is_empty());
    // In a range with other guests the template is skipped and listed.
    ok(
        h,
        &sim,
        &["vm", "clone", "9000", "--name", "s1", "--newid", "8999"],
    )
    .await;
    let (code, out, err) = run(
        against(h, &sim),
        &[
            "firewall",
            "isolate",
            "--first",
            "8999",
            "--last",
            "9000",
            "--allow",
            "10.10.0.1",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["skipped"], serde_json::json!([9000]), "{v}");
    assert!(guest_rules(&sim, 9000).await.is_empty());
    assert!(!guest_rules(&sim, 8999).await.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn rebooting_a_guest_from_a_script_needs_yes_and_dry_run_only_looks() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (code, out, err) = run(against(h, &sim), &["vm", "reboot", "100"]).await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("--yes") && err.contains("nothing changed"),
        "{err}"
    );
    let out = ok(h, &sim, &["vm", "reboot", "100", "--dry-run"]).await;
    assert!(out.contains("would reboot"), "{out}");
    let out = ok(h, &sim, &["vm", "reboot", "100", "--yes"]).await;
    assert!(out.contains("reboot done"), "{out}");
    sim.shutdown().await;
}

#[tokio::test]
async fn destroying_a_running_guest_without_vm_allocate_stops_nothing() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(
        h,
        &sim,
        &["vm", "clone", "9000", "--name", "victim", "--newid", "6000"],
    )
    .await;
    ok(h, &sim, &["vm", "start", "6000"]).await;
    let c = root(&sim);
    let _: Value = c
        .post(
            "/access/users",
            &Params::new()
                .with("userid", "vmuser@pve")
                .with("password", "vmuser-password"),
        )
        .await
        .unwrap();
    let _: Value = c
        .put(
            "/access/acl",
            &Params::new()
                .with("path", "/")
                .with("roles", "PVEVMUser")
                .with("users", "vmuser@pve"),
        )
        .await
        .unwrap();
    let mut as_user = against(h, &sim);
    as_user
        .env("PVE_USER", "vmuser@pve")
        .env("PVE_PASSWORD", "vmuser-password");
    let (code, out, err) = run(as_user, &["vm", "destroy", "6000", "--stop", "--yes"]).await;
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(
        err.contains("VM.Allocate") && err.contains("nothing was stopped"),
        "{err}"
    );
    let out = ok(h, &sim, &["vm", "status", "6000", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "running", "{v}");
    // Root may: stopped and destroyed.
    ok(h, &sim, &["vm", "destroy", "6000", "--stop", "--yes"]).await;
    sim.shutdown().await;
}

/// Runs labctl with stdout on `/dev/full`.
async fn to_dev_full(mut c: tokio::process::Command, args: &[&str]) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    // Not `output()`: it would pipe stdout again.
    c.stdout(Stdio::from(full)).stderr(Stdio::piped());
    let child = c.args(args).spawn().unwrap();
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn writing_output_to_a_full_disk_or_a_closed_pipe_never_panics() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    for args in [
        &["vm", "list"][..],
        &["vm", "list", "-o", "csv"],
        &["vm", "status", "100", "-o", "json"],
        &["completions", "bash"],
    ] {
        let (code, err) = to_dev_full(against(h, &sim), args).await;
        no_panic(code, &err);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains("labctl: error: writing to stdout: No space left on device"),
            "{args:?}: {err}"
        );
    }
    // lab up: the lab is up, only its report was lost, and the user is told so.
    let (code, err) = to_dev_full(
        against(h, &sim),
        &["lab", "up", "-n", "full", "-t", "9000", "-c", "1"],
    )
    .await;
    no_panic(code, &err);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let out = ok(h, &sim, &["lab", "status", "-n", "full", "-o", "json"]).await;
    assert!(out.contains("running"), "{out}");
    // A reader that is gone: quiet, no panic.
    for args in [&["completions", "bash"][..], &["vm", "list"]] {
        let mut c = against(h, &sim);
        c.stdout(Stdio::piped()).stderr(Stdio::piped()).args(args);
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        no_panic(out.status.code(), &err);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn listing_guests_as_csv_leaves_missing_values_empty() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let out = ok(home.path(), &sim, &["vm", "list", "-o", "csv"]).await;
    assert!(!out.contains("'-"), "{out}");
    let teacher = out.lines().find(|l| l.starts_with("100,")).unwrap();
    assert!(teacher.ends_with(",,"), "{teacher}");
    let table = ok(home.path(), &sim, &["vm", "list"]).await;
    assert!(table.contains(" -"), "tables keep the placeholder: {table}");
    // The same in `lab status` (no roster: no student names) and `firewall verify`.
    ok(
        home.path(),
        &sim,
        &["lab", "up", "-n", "csv", "-t", "9000", "-c", "1"],
    )
    .await;
    let out = ok(
        home.path(),
        &sim,
        &["lab", "status", "-n", "csv", "-o", "csv"],
    )
    .await;
    assert!(!out.contains("'-"), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with(','), "{out}");
    let (_, out, err) = run(
        against(home.path(), &sim),
        &[
            "firewall",
            "verify",
            "--first",
            "100",
            "--last",
            "100",
            "--allow",
            "10.10.0.1",
            "-o",
            "csv",
        ],
    )
    .await;
    assert!(
        out.lines().count() == 2 && !out.contains("'-"),
        "{out}\n{err}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn making_a_template_of_a_running_guest_is_refused_even_in_a_dry_run() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(
        h,
        &sim,
        &["vm", "clone", "9000", "--name", "t", "--newid", "7100"],
    )
    .await;
    ok(h, &sim, &["vm", "start", "7100"]).await;
    for extra in ["--dry-run", "--yes"] {
        let (code, out, err) = run(against(h, &sim), &["vm", "template", "7100", extra]).await;
        assert_eq!(code, Some(1), "{extra}: {out}\n{err}");
        assert!(
            err.contains("it is running") && err.contains("stop it first"),
            "{err}"
        );
        assert!(!out.contains("would"), "{out}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn starting_a_simulator_with_a_bad_time_scale_or_fault_rate_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &[
            "sim",
            "pve",
            "--plain-http",
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "0",
        ][..],
        &[
            "sim",
            "pve",
            "--plain-http",
            "--listen",
            "127.0.0.1:0",
            "--fault-rate",
            "2",
        ],
    ] {
        let (code, out, err) = run(labctl(home.path()), args).await;
        assert_eq!(code, Some(2), "{args:?}: {out}\n{err}");
        assert!(err.contains("allowed"), "{err}");
    }
}

#[tokio::test]
async fn a_host_with_a_password_in_it_is_refused_without_echoing_the_password() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let host = sim.url().replace("http://", "http://root:pw123@");
    let (code, out, err) = run(against(home.path(), &sim), &["vm", "list", "--host", &host]).await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(!err.contains("pw123") && !out.contains("pw123"), "{err}");
    assert!(
        err.contains("PVE_USER") && err.contains("PVE_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("builder"), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_config_file_others_may_write_is_refused_when_it_names_a_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let pw = common::secret_file(h, "sim.pw", "secret");
    common::config(
        h,
        &format!(
            "[clusters.sim]\nhost = \"{}\"\nuser = \"root@pam\"\npassword_file = \"{pw}\"\n",
            sim.url()
        ),
    );
    let file = h.join("config").join("labctl").join("config.toml");
    for mode in [0o666, 0o664] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut c = labctl(h);
        c.env("LABCTL_TIME_SCALE", common::SCALE);
        let (code, out, err) = run(c, &["vm", "status", "100", "--cluster", "sim"]).await;
        assert_eq!(code, Some(2), "{mode:o}: {out}\n{err}");
        assert!(
            err.contains("chmod 600") && err.contains("chmod 644"),
            "{err}"
        );
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = labctl(h);
    c.env("LABCTL_TIME_SCALE", common::SCALE);
    let (code, out, err) = run(c, &["vm", "status", "100", "--cluster", "sim"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn reading_the_help_names_lab_access_and_elvish_completions() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, _) = run(labctl(home.path()), &["--help"]).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("ips, access, down"), "{out}");
    assert!(out.contains("powershell or elvish"), "{out}");
    let (code, out, _) = run(labctl(home.path()), &["completions", "elvish"]).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("labctl"), "{out}");
}
