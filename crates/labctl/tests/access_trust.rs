//! `labctl lab access …` as a teacher uses it on exam day, through the binary against an
//! embedded simulator: the sheet prints, a lost or stale sheet never locks students out
//! silently, a password is replaced only when asked for (and confirmed), the sheet names
//! the roster's students, and `-o` is honoured.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pve_sim::{SimHandle, Simulator};
use serde_json::Value;
use tokio::process::Command;

/// Every run ends within this (a hang is a failure, not a stuck CI job).
const RUN_LIMIT: Duration = Duration::from_secs(120);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
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

async fn sim() -> SimHandle {
    Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap()
}

/// `labctl` in `dir`, against `sim`, without a terminal (stdin is /dev/null).
async fn labctl(sim: &SimHandle, dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_") || k.starts_with("LABCTL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("PVE_HOST", sim.url())
        .env("PVE_USER", "root@pam")
        .env("PVE_PASSWORD", "secret")
        .env("LABCTL_TIME_SCALE", "0.01")
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .args(args);
    let out = tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap_or_else(|_| panic!("labctl {args:?} did not finish within {RUN_LIMIT:?}"))
        .unwrap();
    let out = Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.code != Some(101) && !out.stderr.contains("panicked"),
        "labctl {args:?} panicked\n{out}"
    );
    out
}

async fn ok(sim: &SimHandle, dir: &Path, args: &[&str]) -> Out {
    let out = labctl(sim, dir, args).await;
    assert!(out.ok(), "labctl {args:?}\n{out}");
    out
}

/// Users of lab `lab` on the simulator: userid → comment.
fn lab_users(sim: &SimHandle, lab: &str) -> Vec<(String, String)> {
    let mark = format!("labctl lab {lab}");
    let mut v: Vec<(String, String)> = sim.state()["access"]["users"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(id, u)| {
            let c = u["comment"].as_str()?;
            c.starts_with(&mark).then(|| (id.clone(), c.to_owned()))
        })
        .collect();
    v.sort();
    v
}

fn writes(sim: &SimHandle) -> u64 {
    sim.state()["access"]["user_cfg_writes"].as_u64().unwrap()
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"))
}

async fn lab_of_two(sim: &SimHandle, dir: &Path, lab: &str) {
    ok(
        sim,
        dir,
        &[
            "lab",
            "up",
            "-n",
            lab,
            "-t",
            "9000",
            "-c",
            "2",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
}

#[tokio::test]
async fn grant_then_sheet_prints_the_credentials_in_every_format() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    lab_of_two(&sim, dir.path(), "shp").await;
    ok(&sim, dir.path(), &["lab", "access", "grant", "-n", "shp"]).await;

    let table = ok(&sim, dir.path(), &["lab", "access", "sheet", "-n", "shp"]).await;
    assert!(table.stdout.starts_with("student"), "{table}");
    assert_eq!(table.stdout.lines().count(), 3, "{table}");
    let rows = json(
        &ok(
            &sim,
            dir.path(),
            &["lab", "access", "sheet", "-n", "shp", "-o", "json"],
        )
        .await,
    );
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["password"].as_str().unwrap().len(), 16);
    let csv = ok(
        &sim,
        dir.path(),
        &["lab", "access", "sheet", "-n", "shp", "-o", "csv"],
    )
    .await;
    assert!(
        csv.stdout
            .starts_with("student,userid,password,vmid,hostname,ip,node,console\n"),
        "{csv}"
    );
}

#[tokio::test]
async fn grant_from_another_directory_replaces_no_password_and_says_why() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    lab_of_two(&sim, home.path(), "lost").await;
    ok(&sim, home.path(), &["lab", "access", "grant", "-n", "lost"]).await;
    let users = lab_users(&sim, "lost");
    assert_eq!(users.len(), 2, "{users:?}");
    let before = writes(&sim);

    // The teacher runs grant again from another directory: no sheet there.
    let out = labctl(
        &sim,
        elsewhere.path(),
        &["lab", "access", "grant", "-n", "lost"],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("not known to the sheet") && out.stderr.contains("--reset-password"),
        "{out}"
    );
    for (u, _) in &users {
        assert!(out.stderr.contains(u.as_str()), "{u} not named\n{out}");
    }
    assert_eq!(writes(&sim), before, "no user was touched");
    assert_eq!(lab_users(&sim, "lost"), users, "same users, same stamps");

    // Pointing --sheet at the wrong file changes nothing either.
    let wrong = elsewhere.path().join("other.json");
    std::fs::write(&wrong, "[]").unwrap();
    let out = labctl(
        &sim,
        home.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "lost",
            "--sheet",
            wrong.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(writes(&sim), before);

    // The right sheet still works: every student logs in with it.
    ok(
        &sim,
        home.path(),
        &["lab", "access", "verify", "-n", "lost"],
    )
    .await;
}

#[tokio::test]
async fn grant_with_a_stale_sheet_says_so_and_keeps_no_dead_password() {
    let sim = sim().await;
    let home = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    lab_of_two(&sim, home.path(), "stale").await;
    ok(
        &sim,
        home.path(),
        &["lab", "access", "grant", "-n", "stale"],
    )
    .await;
    std::fs::copy(
        home.path().join("stale-credentials.json"),
        copy.path().join("stale-credentials.json"),
    )
    .unwrap();
    // New passwords for everyone (asked for, confirmed with --yes): the copy is now stale.
    let out = ok(
        &sim,
        home.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "stale",
            "--reset-password",
            "stale-01,stale-02",
            "--yes",
        ],
    )
    .await;
    assert_eq!(out.stdout.matches("replace password").count(), 2, "{out}");

    let out = labctl(
        &sim,
        copy.path(),
        &["lab", "access", "grant", "-n", "stale"],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("stale"), "{out}");
    assert_eq!(out.stdout.matches("UNKNOWN").count(), 2, "{out}");
    let sheet: Value = serde_json::from_str(
        &std::fs::read_to_string(copy.path().join("stale-credentials.json")).unwrap(),
    )
    .unwrap();
    for row in sheet.as_array().unwrap() {
        assert!(row["password"].is_null(), "a dead password was kept: {row}");
    }
    // The fresh sheet works.
    ok(
        &sim,
        home.path(),
        &["lab", "access", "verify", "-n", "stale"],
    )
    .await;
}

#[tokio::test]
async fn reset_password_is_shown_by_dry_run_and_needs_yes_off_a_terminal() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    lab_of_two(&sim, dir.path(), "rst").await;
    ok(&sim, dir.path(), &["lab", "access", "grant", "-n", "rst"]).await;
    let users = lab_users(&sim, "rst");
    let sheet_before = std::fs::read_to_string(dir.path().join("rst-credentials.json")).unwrap();
    let before = writes(&sim);

    let dry = ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "rst",
            "--reset-password",
            "rst-01",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        dry.stdout.contains("replace password") && dry.stdout.contains("would do"),
        "{dry}"
    );
    assert!(dry.stdout.contains("rst-01@pve"), "{dry}");
    let no = labctl(
        &sim,
        dir.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "rst",
            "--reset-password",
            "rst-01",
        ],
    )
    .await;
    assert_eq!(no.code, Some(2), "{no}");
    assert!(no.stderr.contains("--yes"), "{no}");
    assert_eq!(writes(&sim), before, "nothing changed");
    assert_eq!(lab_users(&sim, "rst"), users);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rst-credentials.json")).unwrap(),
        sheet_before
    );
    let bad = labctl(
        &sim,
        dir.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "rst",
            "--reset-password",
            "nobody",
            "--yes",
        ],
    )
    .await;
    assert_eq!(bad.code, Some(2), "{bad}");

    ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "rst",
            "--reset-password",
            "rst-01",
            "-y",
        ],
    )
    .await;
    let after = lab_users(&sim, "rst");
    assert_ne!(after[0].1, users[0].1, "rst-01 has a new stamp");
    assert_eq!(after[1], users[1], "rst-02 untouched");
    ok(&sim, dir.path(), &["lab", "access", "verify", "-n", "rst"]).await;
}

#[tokio::test]
async fn sheet_names_the_roster_student_not_the_host() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("class.csv"),
        "name,email\nZoë Müller,zoe@school.example\nÅsa Berg,\n",
    )
    .unwrap();
    ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "up",
            "-n",
            "ros",
            "-t",
            "9000",
            "--roster",
            "class.csv",
            "--teacher",
            "10.10.0.1",
        ],
    )
    .await;
    ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "ros",
            "--roster",
            "class.csv",
        ],
    )
    .await;
    let rows = json(
        &ok(
            &sim,
            dir.path(),
            &["lab", "access", "sheet", "-n", "ros", "-o", "json"],
        )
        .await,
    );
    let mut pairs: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["student"].as_str().unwrap().to_owned(),
                r["hostname"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(pairs[0].0, "Zoë Müller", "{rows}");
    assert_eq!(pairs[1].0, "Åsa Berg", "{rows}");
    assert!(pairs.iter().all(|(s, h)| s != h), "{rows}");
    // A roster name picks the student to reset.
    let dry = ok(
        &sim,
        dir.path(),
        &[
            "lab",
            "access",
            "grant",
            "-n",
            "ros",
            "--roster",
            "class.csv",
            "--reset-password",
            "Zoë Müller",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(dry.stdout.matches("replace password").count(), 1, "{dry}");
}

#[tokio::test]
async fn access_verbs_honour_output_formats() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    lab_of_two(&sim, dir.path(), "fmt").await;
    let grant = json(
        &ok(
            &sim,
            dir.path(),
            &["lab", "access", "grant", "-n", "fmt", "-o", "json"],
        )
        .await,
    );
    assert_eq!(grant["dry_run"], false);
    assert!(grant["steps"].as_array().unwrap().len() >= 4, "{grant}");
    let table = ok(&sim, dir.path(), &["lab", "access", "grant", "-n", "fmt"]).await;
    let csv = ok(
        &sim,
        dir.path(),
        &["lab", "access", "grant", "-n", "fmt", "-o", "csv"],
    )
    .await;
    assert!(csv.stdout.starts_with("ACTION,TARGET,OUTCOME\n"), "{csv}");
    assert_ne!(csv.stdout, table.stdout);

    let v = json(
        &ok(
            &sim,
            dir.path(),
            &["lab", "access", "verify", "-n", "fmt", "-o", "json"],
        )
        .await,
    );
    assert_eq!(v["passed"], true, "{v}");
    let v = ok(
        &sim,
        dir.path(),
        &["lab", "access", "verify", "-n", "fmt", "-o", "csv"],
    )
    .await;
    assert!(v.stdout.starts_with("RESULT,USERID,CHECK,DETAIL\n"), "{v}");

    let r = json(
        &ok(
            &sim,
            dir.path(),
            &[
                "lab",
                "access",
                "revoke",
                "-n",
                "fmt",
                "--dry-run",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(r["dry_run"], true);
    assert!(
        r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["outcome"] == "would_do"),
        "{r}"
    );
}

#[tokio::test]
async fn revoke_off_a_terminal_needs_yes_and_dry_run_changes_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    lab_of_two(&sim, dir.path(), "rvk").await;
    ok(&sim, dir.path(), &["lab", "access", "grant", "-n", "rvk"]).await;
    let before = writes(&sim);
    ok(
        &sim,
        dir.path(),
        &["lab", "access", "revoke", "-n", "rvk", "--dry-run"],
    )
    .await;
    let no = labctl(&sim, dir.path(), &["lab", "access", "revoke", "-n", "rvk"]).await;
    assert_eq!(no.code, Some(2), "{no}");
    assert!(no.stderr.contains("--yes"), "{no}");
    assert_eq!(writes(&sim), before, "nothing changed");
    ok(
        &sim,
        dir.path(),
        &["lab", "access", "revoke", "-n", "rvk", "-y"],
    )
    .await;
    ok(
        &sim,
        dir.path(),
        &["lab", "access", "verify", "-n", "rvk", "--revoked"],
    )
    .await;
}
