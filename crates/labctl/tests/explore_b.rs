//! What an exploratory tester did to `labctl lab …` and `lab access …`, through the
//! binary against an embedded simulator on 127.0.0.1: each test is named after what the
//! user did and checks what they must see.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{sim, Out};
use pve_sim::SimHandle;
use tokio::process::Command;

async fn labctl(sim: &SimHandle, dir: &Path, args: &[&str]) -> Out {
    let mut c = common::against(dir, sim);
    // Locks under `dir/run`, not the machine's runtime directory.
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    c.env("XDG_RUNTIME_DIR", &run);
    common::output(c, args).await
}

async fn ok(sim: &SimHandle, dir: &Path, args: &[&str]) -> Out {
    let out = labctl(sim, dir, args).await;
    assert_eq!(out.code, Some(0), "labctl {args:?}\n{out}");
    out
}

/// Guests whose name starts with `prefix`.
fn guests(sim: &SimHandle, prefix: &str) -> usize {
    let s = sim.state().to_string();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    let mut n = 0;
    walk(&v, &mut |o| {
        if o.get("vmid").is_some()
            && o.get("name")
                .and_then(|x| x.as_str())
                .is_some_and(|x| x.starts_with(prefix))
        {
            n += 1;
        }
    });
    n
}

fn walk(v: &serde_json::Value, f: &mut dyn FnMut(&serde_json::Map<String, serde_json::Value>)) {
    match v {
        serde_json::Value::Object(o) => {
            f(o);
            o.values().for_each(|x| walk(x, f));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_up_while_another_lab_up_of_the_same_lab_runs_refuses_and_clones_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // `lab down` of the (empty) lab makes the lab's lock file; the other run then holds
    // it, as a `lab up` in progress does.
    ok(&sim, dir.path(), &["lab", "down", "-n", "dup", "--yes"]).await;
    let locks: Vec<_> = std::fs::read_dir(dir.path().join("run/labctl-locks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(
        locks[0].to_string_lossy().ends_with("-dup.lock"),
        "{locks:?}"
    );
    let file = std::fs::File::open(&locks[0]).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let args = [
        "lab",
        "up",
        "-n",
        "dup",
        "-t",
        "9000",
        "-c",
        "2",
        "--ids",
        "8200-8299",
    ];
    let out = labctl(&sim, dir.path(), &args).await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("another labctl run"), "{out}");
    assert_eq!(guests(&sim, "dup-"), 0, "{out}");
    // Once the other run ended, the lab comes up, each student once.
    drop(held);
    ok(&sim, dir.path(), &args).await;
    ok(&sim, dir.path(), &args).await;
    assert_eq!(guests(&sim, "dup-"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_plan_with_inline_students_carrying_newlines_formulas_or_bidi_is_refused() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    for (bad, what) in [
        ("name = \"Eve\\nEvil\"", "control character"),
        ("name = \"\\u001b[31mRed\"", "control character"),
        ("name = \"=HYPERLINK(\\\"http://x\\\")\"", "formula"),
        ("name = \"Al\", email = \"@evil\"", "formula"),
        ("name = \"Al\", id = \"-1+2\"", "formula"),
        ("name = \"Ann\\u202Etxt.exe\"", "control character"),
    ] {
        let text = format!(
            "name = \"inl\"\ntemplate = 9000\nstudents = [{{ name = \"Bo\" }}, {{ {bad} }}]\n"
        );
        std::fs::write(dir.path().join("inl.toml"), &text).unwrap();
        let out = labctl(&sim, dir.path(), &["lab", "plan", "inl.toml"]).await;
        assert_eq!(out.code, Some(2), "{text}\n{out}");
        assert!(
            out.stderr.contains("inl.toml")
                && out.stderr.contains("students[1]")
                && out.stderr.contains(what),
            "{text}\n{out}"
        );
    }
}

/// The password of `user` on the sheet at `path`.
fn password(path: &Path, user: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rows = v
        .as_array()
        .cloned()
        .or_else(|| v["rows"].as_array().cloned())
        .unwrap();
    rows.iter()
        .find(|r| r["userid"] == user)
        .and_then(|r| r["password"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_down_then_lab_up_then_grant_gives_new_passwords_not_last_exams() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = [
        "lab",
        "up",
        "-n",
        "re",
        "-t",
        "9000",
        "-c",
        "2",
        "--ids",
        "8300-8399",
    ];
    ok(&sim, d, &up).await;
    ok(&sim, d, &["lab", "access", "grant", "-n", "re"]).await;
    let sheet = d.join("re-credentials.json");
    let old = password(&sheet, "re-01@pve").unwrap();
    ok(&sim, d, &["lab", "down", "-n", "re", "--yes"]).await;
    ok(&sim, d, &up).await;
    let out = ok(&sim, d, &["lab", "access", "grant", "-n", "re"]).await;
    assert!(out.stdout.contains("new password"), "{out}");
    let new = password(&sheet, "re-01@pve").unwrap();
    assert_ne!(old, new, "{out}");
    // The sheet's password is the one that works now, the old one does not come back.
    ok(&sim, d, &["lab", "access", "verify", "-n", "re"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_access_on_a_fosscloud_classroom_file_is_refused_without_contacting_anything() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/classroom.toml");
    let file = example.to_str().unwrap();
    let before = sim.requests();
    for verb in ["grant", "sheet", "revoke", "verify"] {
        let out = labctl(&sim, dir.path(), &["lab", "access", verb, file]).await;
        assert_eq!(out.code, Some(2), "{verb}\n{out}");
        assert!(
            out.stderr.contains("lab access is for Proxmox labs"),
            "{verb}\n{out}"
        );
    }
    assert_eq!(sim.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_up_dry_run_json_says_dry_run() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "up",
            "-n",
            "lc",
            "-t",
            "9000",
            "-c",
            "2",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["dry_run"], true, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_up_without_teacher_on_a_fenced_lab_reports_the_fence_the_cluster_has() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = [
        "lab",
        "up",
        "-n",
        "fz",
        "-t",
        "9000",
        "-c",
        "2",
        "--ids",
        "8400-8499",
    ];
    let mut fenced = up.to_vec();
    fenced.extend(["--teacher", "10.10.0.1"]);
    ok(&sim, d, &fenced).await;
    let out = ok(&sim, d, &up).await;
    assert!(!out.stdout.contains("not fenced"), "{out}");
    assert!(out.stdout.contains("fence left as it was"), "{out}");
    let mut json = up.to_vec();
    json.extend(["-o", "json"]);
    let out = ok(&sim, d, &json).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|r| r["fenced"] == true),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_ips_with_a_stopped_student_names_it_on_stderr() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &sim,
        d,
        &[
            "lab",
            "up",
            "-n",
            "ip",
            "-t",
            "9000",
            "-c",
            "2",
            "--ids",
            "8500-8599",
        ],
    )
    .await;
    ok(&sim, d, &["vm", "stop", "8500", "--yes"]).await;
    let out = ok(&sim, d, &["lab", "ips", "-n", "ip"]).await;
    assert!(out.stderr.contains("# no address: ip-01 (8500)"), "{out}");
    assert!(
        out.stdout.contains("ip-02") && !out.stdout.contains("ip-01"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_down_of_a_lab_file_whose_roster_was_deleted_still_tears_down() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.csv"), "name\nAnn\nBo\n").unwrap();
    std::fs::write(
        d.join("lab.toml"),
        "name = \"rd\"\ntemplate = 9000\nroster = \"s.csv\"\nids = \"8600-8699\"\n",
    )
    .unwrap();
    ok(&sim, d, &["lab", "up", "lab.toml"]).await;
    std::fs::remove_file(d.join("s.csv")).unwrap();
    let out = ok(&sim, d, &["lab", "down", "lab.toml", "--yes"]).await;
    assert!(out.stdout.contains("2 guests destroyed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_up_json_that_ends_incomplete_still_prints_where_each_student_stands() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // A second of waiting for agents (10 ms at the test's time scale) runs out before
    // the simulated guests boot.
    let out = labctl(
        &sim,
        dir.path(),
        &[
            "lab",
            "up",
            "-n",
            "inc",
            "-t",
            "9000",
            "-c",
            "2",
            "--ids",
            "8700-8799",
            "--ready-timeout",
            "1",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, Some(5), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(v.as_array().unwrap().len(), 2, "{out}");
    assert!(!out.stderr.contains("nothing was brought up"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_access_sheet_after_a_reset_elsewhere_or_of_another_lab_does_not_show_dead_passwords() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (lab, ids) in [("ra", "8800-8849"), ("exam2", "8850-8899")] {
        ok(
            &sim,
            d,
            &[
                "lab", "up", "-n", lab, "-t", "9000", "-c", "2", "--ids", ids,
            ],
        )
        .await;
        ok(&sim, d, &["lab", "access", "grant", "-n", lab]).await;
    }
    // Another lab's sheet is refused.
    let out = labctl(
        &sim,
        d,
        &[
            "lab",
            "access",
            "sheet",
            "-n",
            "exam2",
            "--sheet",
            "ra-credentials.json",
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("not lab exam2's") && out.stderr.contains("lab ra"),
        "{out}"
    );
    assert!(!out.stdout.contains("ra-01"), "{out}");
    // A password replaced with its new sheet elsewhere: the default sheet's is dead.
    let old = password(&d.join("ra-credentials.json"), "ra-01@pve").unwrap();
    let out = labctl(
        &sim,
        d,
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "ra",
            "--reset-password",
            "ra-01",
            "--yes",
            "--sheet",
            "elsewhere.json",
        ],
    )
    .await;
    // The sheet elsewhere knows no other password (exit 1) but says ra-01's was replaced.
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("1 other passwords were replaced"),
        "{out}"
    );
    assert!(password(&d.join("elsewhere.json"), "ra-01@pve").is_some());
    let out = labctl(
        &sim,
        d,
        &["lab", "access", "sheet", "-n", "ra", "-o", "json"],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!out.stdout.contains(&old), "{out}");
    assert!(
        out.stderr.contains("ra-01@pve") && out.stderr.contains("replaced"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_access_verify_revoked_after_lab_down_checks_the_users() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.csv"), "name\nAnn Lee\nBo Li\n").unwrap();
    let up = [
        "lab",
        "up",
        "-n",
        "lv",
        "-t",
        "9000",
        "--roster",
        "s.csv",
        "--ids",
        "8900-8949",
    ];
    ok(&sim, d, &up).await;
    ok(
        &sim,
        d,
        &["lab", "access", "grant", "-n", "lv", "--roster", "s.csv"],
    )
    .await;
    // Re-running grant without the roster keeps the sheet's names.
    ok(&sim, d, &["lab", "access", "grant", "-n", "lv"]).await;
    let sheet = std::fs::read_to_string(d.join("lv-credentials.json")).unwrap();
    assert!(sheet.contains("Ann Lee"), "{sheet}");
    ok(&sim, d, &["lab", "down", "-n", "lv", "--yes"]).await;
    let out = ok(
        &sim,
        d,
        &[
            "lab",
            "access",
            "verify",
            "-n",
            "lv",
            "--revoked",
            "-o",
            "json",
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["passed"], true, "{out}");
    let checks = v["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["userid"] == "ann-lee@pve" && c["check"] == "login refused"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_plan_with_roster_and_hostname_pattern_is_refused() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("students.csv"), "name\nZoë Müller\n").unwrap();
    let before = sim.requests();
    let out = labctl(
        &sim,
        d,
        &[
            "lab",
            "plan",
            "-n",
            "exam2",
            "-t",
            "9000",
            "--roster",
            "students.csv",
            "--hostname",
            "e2-{n}",
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("--hostname is for labs without a roster"),
        "{out}"
    );
    assert_eq!(sim.requests(), before, "{out}");
}

#[test]
fn fosscloud_with_set_but_empty_fc_variables_treats_them_as_unset() {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k.starts_with("FC_") {
            c.env_remove(k);
        }
    }
    for v in [
        "FC_URL",
        "FC_USER",
        "FC_REALM",
        "FC_CA_FILE",
        "FC_FINGERPRINT",
    ] {
        c.env(v, "");
    }
    let out = c
        .args(["fosscloud", "realms"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Not a clap error about an empty value: the one thing missing is the server.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no FOSS-Cloud server"), "{stderr}");
}

#[tokio::test]
async fn vm_status_with_a_set_but_empty_labctl_time_scale_treats_it_as_unset() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k.starts_with("FC_") {
            c.env_remove(k);
        }
    }
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", "")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .args(["vm", "status", "100"]);
    let out = tokio::time::timeout(common::RUN_TIMEOUT, c.output())
        .await
        .expect("labctl vm status did not finish")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    sim.shutdown().await;
}
