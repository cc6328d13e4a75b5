//! End-to-end: `labctl fosscloud …` against an embedded FOSS-Cloud simulator on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use fosscloud_sim::Simulator;
use tokio::process::Command;

fn labctl(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FC_") || k.starts_with("PVE_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("FC_URL", url).kill_on_drop(true);
    c
}

async fn run(mut c: Command, args: &[&str]) -> (bool, String, String) {
    let out = c.args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn realms_list_and_assign() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let url = sim.base_url().to_owned();

    let (ok, out, err) = run(labctl(&url), &["fosscloud", "--allow-http", "realms"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("4000013") && out.contains("yes"), "{out}");
    assert!(out.contains("School Active Directory"), "{out}");

    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "alice-pw");
    let (ok, out, err) = run(c, &["fosscloud", "--allow-http", "list"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("Windows Exam") && out.contains("assignable"),
        "{out}"
    );
    let pool = out
        .lines()
        .find(|l| l.starts_with("Windows Exam") && l.contains("assignable"))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.len() == 36 && w.contains('-'))
        })
        .unwrap()
        .to_owned();

    assert!(sim.assignments().iter().all(|a| a.pool != pool));
    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "alice-pw");
    let (ok, out, err) = run(c, &["fosscloud", "--allow-http", "assign", &pool]).await;
    assert!(ok, "{err}");
    assert!(out.contains("spice://192.0.2."), "{out}");
    // The SPICE password stays hidden unless asked for.
    assert!(out.contains("spice password: ***"), "{out}");
    assert_eq!(
        sim.assignments().iter().filter(|a| a.pool == pool).count(),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn plain_http_and_missing_credentials_are_refused_with_a_hint() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let url = sim.base_url().to_owned();
    let (ok, _, err) = run(labctl(&url), &["fosscloud", "realms"]).await;
    assert!(!ok);
    assert!(err.to_lowercase().contains("http"), "{err}");
    let (ok, _, err) = run(labctl(&url), &["fosscloud", "--allow-http", "list"]).await;
    assert!(!ok);
    assert!(err.contains("FC_USER"), "{err}");
    let mut c = labctl(&url);
    c.env("FC_USER", "alice").env("FC_PASSWORD", "alice-pw");
    let (ok, _, err) = run(
        c,
        &["fosscloud", "--allow-http", "list", "--kind", "everything"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("owner, dynamic, persistent or all"), "{err}");
    assert_eq!(sim.request_count(), 0, "nothing reached the server");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_missing_password_names_the_variable_and_never_prompts_without_a_terminal() {
    let sim = Simulator::builder().plain_http(true).start().await.unwrap();
    let mut c = labctl(sim.base_url());
    c.env("FC_USER", "alice").stdin(std::process::Stdio::null());
    let (ok, _, err) = run(c, &["fosscloud", "--allow-http", "list"]).await;
    assert!(!ok, "no password must fail");
    assert!(
        err.contains("no password for alice: set FC_PASSWORD"),
        "{err}"
    );
    assert_eq!(sim.request_count(), 0, "nothing sent without a password");
}
