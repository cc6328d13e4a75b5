//! The exit-code contract of the README ("Everywhere" table) as a table: each code with the
//! situations that must give it, each run through the `labctl` binary against the simulator
//! (or a loopback server) on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{against, labctl, run, secret_file, sim, Recorder};
use pve_auth::{Params, PveClient};
use pve_sim::SimHandle;

/// What a user did.
#[derive(Debug, Clone, Copy)]
enum Situation {
    /// `vm status 100`.
    ReadAGuest,
    /// `lab down -n gone --yes` of a lab that is not (or no longer) there.
    TakeDownALabThatIsAlreadyGone,
    /// `vm is-template 100` of a guest that is not one: the check answers no.
    AskACheckThatAnswersNo,
    /// A flag that does not exist.
    MistypeAFlag,
    /// No host anywhere.
    ForgetTheHost,
    /// `lab down -n x` from a script, without `--yes`.
    TakeDownALabOffATerminalWithoutYes,
    /// `lab access revoke -n x` from a script, without `--yes`.
    RevokeLoginsOffATerminalWithoutYes,
    /// A lab file that is not TOML.
    GiveAnUnparseableLabFile,
    /// A lab file that does not exist.
    GiveAMissingLabFile,
    /// A roster CSV without a `name` column.
    GiveABadRoster,
    /// A roster file that does not exist.
    GiveAMissingRoster,
    /// A config file that is not TOML.
    HaveABrokenConfigFile,
    /// `PVE_PASSWORD=""`.
    SetAnEmptyPassword,
    /// `PVE_HOST=other` over a default cluster whose password file is the secret.
    OverrideTheHostOfAClusterWithAPasswordFile,
    /// `--teacher` on a FOSS-Cloud classroom.
    GiveAProxmoxFlagToAClassroom,
    /// A wrong password.
    LogInWithAWrongPassword,
    /// `vm start 100` as a user who may only look (HTTP 403).
    StartAGuestWithoutThePrivilege,
    /// `lab up` as a user who may only look (HTTP 403).
    BringUpALabWithoutThePrivilege,
    /// `vm status 4242`.
    ReadAGuestThatDoesNotExist,
    /// `lab up -t 9999`.
    CloneFromATemplateThatDoesNotExist,
    /// `lab status -n typo`.
    AskTheStatusOfAMistypedLab,
    /// `lab ips -n typo`.
    AskTheAddressesOfAMistypedLab,
    /// `lab up` while one clone fails.
    BringUpALabWhileACloneFails,
    /// `lab down` while the pool cannot be removed (it holds a storage).
    TakeDownALabWhoseLastStepFails,
}

use Situation::*;

/// The README's table, row by row.
const CONTRACT: &[(i32, &[Situation])] = &[
    (0, &[ReadAGuest, TakeDownALabThatIsAlreadyGone]),
    (1, &[AskACheckThatAnswersNo]),
    (
        2,
        &[
            MistypeAFlag,
            ForgetTheHost,
            TakeDownALabOffATerminalWithoutYes,
            RevokeLoginsOffATerminalWithoutYes,
            GiveAnUnparseableLabFile,
            GiveAMissingLabFile,
            GiveABadRoster,
            GiveAMissingRoster,
            HaveABrokenConfigFile,
            SetAnEmptyPassword,
            OverrideTheHostOfAClusterWithAPasswordFile,
            GiveAProxmoxFlagToAClassroom,
        ],
    ),
    (
        3,
        &[
            LogInWithAWrongPassword,
            StartAGuestWithoutThePrivilege,
            BringUpALabWithoutThePrivilege,
        ],
    ),
    (
        4,
        &[
            ReadAGuestThatDoesNotExist,
            CloneFromATemplateThatDoesNotExist,
            AskTheStatusOfAMistypedLab,
            AskTheAddressesOfAMistypedLab,
        ],
    ),
    (
        5,
        &[BringUpALabWhileACloneFails, TakeDownALabWhoseLastStepFails],
    ),
];

/// Root's client of the simulator, to arrange what a situation needs.
fn root(sim: &SimHandle) -> PveClient {
    PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret".to_owned()))
        .build()
        .unwrap()
}

/// A user `ta@pve` (password `ta-pw`) who may look at everything and change nothing.
async fn auditor(sim: &SimHandle) {
    let c = root(sim);
    // Several situations of a row ask for the same user: the second creation is refused.
    let _ = c
        .post::<serde_json::Value>(
            "/access/users",
            &Params::new()
                .with("userid", "ta@pve")
                .with("password", "ta-password"),
        )
        .await;
    let _: serde_json::Value = c
        .put(
            "/access/acl",
            &Params::new()
                .with("path", "/")
                .with("roles", "PVEAuditor")
                .with("users", "ta@pve"),
        )
        .await
        .unwrap();
}

fn as_auditor(home: &Path, sim: &SimHandle) -> tokio::process::Command {
    let mut c = against(home, sim);
    c.env("PVE_USER", "ta@pve")
        .env("PVE_PASSWORD", "ta-password");
    c
}

async fn up(home: &Path, sim: &SimHandle, lab: &str, count: &str) {
    let (code, out, err) = run(
        against(home, sim),
        &["lab", "up", "-n", lab, "-t", "9000", "-c", count],
    )
    .await;
    assert_eq!(code, Some(0), "lab up {lab}: {out}\n{err}");
}

/// Runs what the user did; (exit code, stdout, stderr).
async fn act(s: Situation, home: &Path, sim: &SimHandle) -> (Option<i32>, String, String) {
    match s {
        ReadAGuest => run(against(home, sim), &["vm", "status", "100"]).await,
        TakeDownALabThatIsAlreadyGone => {
            let r = run(against(home, sim), &["lab", "down", "-n", "gone", "--yes"]).await;
            assert!(r.1.contains("nothing to do"), "{r:?}");
            r
        }
        AskACheckThatAnswersNo => run(against(home, sim), &["vm", "is-template", "100"]).await,
        MistypeAFlag => run(against(home, sim), &["lab", "up", "--no-such-flag"]).await,
        ForgetTheHost => run(labctl(home), &["vm", "status", "100"]).await,
        TakeDownALabOffATerminalWithoutYes => {
            up(home, sim, "offterm", "1").await;
            let r = run(against(home, sim), &["lab", "down", "-n", "offterm"]).await;
            assert!(r.2.contains("--yes"), "{r:?}");
            r
        }
        RevokeLoginsOffATerminalWithoutYes => {
            up(home, sim, "logins", "1").await;
            let (code, out, err) = run(
                against(home, sim),
                &["lab", "access", "grant", "-n", "logins"],
            )
            .await;
            assert_eq!(code, Some(0), "grant: {out}\n{err}");
            run(
                against(home, sim),
                &["lab", "access", "revoke", "-n", "logins"],
            )
            .await
        }
        GiveAnUnparseableLabFile => {
            std::fs::write(home.join("broken.toml"), "name = \n").unwrap();
            run(against(home, sim), &["lab", "plan", "broken.toml"]).await
        }
        GiveAMissingLabFile => run(against(home, sim), &["lab", "plan", "missing.toml"]).await,
        GiveABadRoster => {
            std::fs::write(home.join("bad.csv"), "who,mail\nZoe,z@x\n").unwrap();
            run(
                against(home, sim),
                &[
                    "lab", "plan", "-n", "r1", "-t", "9000", "--roster", "bad.csv",
                ],
            )
            .await
        }
        GiveAMissingRoster => {
            run(
                against(home, sim),
                &[
                    "lab", "plan", "-n", "r1", "-t", "9000", "--roster", "none.csv",
                ],
            )
            .await
        }
        HaveABrokenConfigFile => {
            let broken = home.join("broken-config");
            std::fs::create_dir_all(broken.join("labctl")).unwrap();
            std::fs::write(broken.join("labctl/config.toml"), "[clusters.a\n").unwrap();
            let mut c = against(home, sim);
            c.env("XDG_CONFIG_HOME", &broken);
            run(c, &["vm", "status", "100"]).await
        }
        SetAnEmptyPassword => {
            let mut c = against(home, sim);
            c.env("PVE_PASSWORD", "");
            run(c, &["vm", "status", "100"]).await
        }
        OverrideTheHostOfAClusterWithAPasswordFile => {
            let other = Recorder::start();
            let pw = secret_file(home, "school.pw", "pw-of-the-school-cluster");
            let cfg = home.join("cfg-secret");
            std::fs::create_dir_all(cfg.join("labctl")).unwrap();
            std::fs::write(
                cfg.join("labctl/config.toml"),
                format!(
                    "default = \"school\"\n[clusters.school]\nhost = \"{}\"\nuser = \
                     \"root@pam\"\npassword_file = \"{pw}\"\n",
                    sim.url()
                ),
            )
            .unwrap();
            let mut c = labctl(home);
            c.env("XDG_CONFIG_HOME", &cfg).env("PVE_HOST", &other.url);
            let r = run(c, &["vm", "status", "100"]).await;
            assert_eq!(other.requests(), 0, "{}", other.received());
            r
        }
        GiveAProxmoxFlagToAClassroom => {
            let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/classroom.toml");
            let r = run(labctl(home), &["lab", "up", file, "--teacher", "10.10.0.1"]).await;
            assert!(r.2.contains("--teacher"), "{r:?}");
            r
        }
        LogInWithAWrongPassword => {
            let mut c = against(home, sim);
            c.env("PVE_PASSWORD", "wrong");
            run(c, &["vm", "list"]).await
        }
        StartAGuestWithoutThePrivilege => {
            auditor(sim).await;
            run(as_auditor(home, sim), &["vm", "start", "200"]).await
        }
        BringUpALabWithoutThePrivilege => {
            auditor(sim).await;
            run(
                as_auditor(home, sim),
                &["lab", "up", "-n", "noperm", "-t", "9000", "-c", "2"],
            )
            .await
        }
        ReadAGuestThatDoesNotExist => run(against(home, sim), &["vm", "status", "4242"]).await,
        CloneFromATemplateThatDoesNotExist => {
            run(
                against(home, sim),
                &["lab", "up", "-n", "x1", "-t", "9999", "-c", "1"],
            )
            .await
        }
        AskTheStatusOfAMistypedLab => {
            up(home, sim, "exam1", "1").await;
            let r = run(against(home, sim), &["lab", "status", "-n", "exam11"]).await;
            assert!(r.2.contains("exam11 not found"), "{r:?}");
            r
        }
        AskTheAddressesOfAMistypedLab => {
            run(against(home, sim), &["lab", "ips", "-n", "exam11"]).await
        }
        BringUpALabWhileACloneFails => {
            sim.fail_next_clone("clone failed: disk image quota exceeded");
            run(
                against(home, sim),
                &["lab", "up", "-n", "x2", "-t", "9000", "-c", "2"],
            )
            .await
        }
        TakeDownALabWhoseLastStepFails => {
            up(home, sim, "stuck", "1").await;
            let _: serde_json::Value = root(sim)
                .put("/pools/stuck", &Params::new().with("storage", "local-lvm"))
                .await
                .unwrap();
            let r = run(against(home, sim), &["lab", "down", "-n", "stuck", "--yes"]).await;
            assert!(r.2.contains("not empty"), "{r:?}");
            r
        }
    }
}

/// Runs every situation of `code`'s row, each in a fresh home against one simulator, and
/// fails listing every situation that gave another code.
async fn row(code: i32) {
    let (_, situations) = CONTRACT.iter().find(|(c, _)| *c == code).unwrap();
    let sim = sim().await;
    let mut wrong = Vec::new();
    for s in *situations {
        let home = tempfile::tempdir().unwrap();
        let (got, out, err) = act(*s, home.path(), &sim).await;
        if got != Some(code) {
            wrong.push(format!(
                "{s:?}: exit {got:?}, want {code}\n  stdout: {out}\n  stderr: {err}"
            ));
        }
    }
    sim.shutdown().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn exit_0_success() {
    row(0).await;
}

#[tokio::test]
async fn exit_1_any_other_failure() {
    row(1).await;
}

#[tokio::test]
async fn exit_2_usage_bad_input_or_no_confirmation() {
    row(2).await;
}

#[tokio::test]
async fn exit_3_authentication_permission_or_tls() {
    row(3).await;
}

#[tokio::test]
async fn exit_4_not_found() {
    row(4).await;
}

#[tokio::test]
async fn exit_5_incomplete() {
    row(5).await;
}

/// The table above is the README's: the same codes, no more, no fewer; and `--help` shows
/// them too.
#[tokio::test]
async fn the_contract_is_the_readme_table_and_the_help() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("| code | meaning |")
        .expect("README exit-code table");
    let documented: Vec<i32> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap().trim().parse().unwrap())
        .collect();
    let tested: Vec<i32> = CONTRACT.iter().map(|(c, _)| *c).collect();
    assert_eq!(documented, tested);
    let home = tempfile::tempdir().unwrap();
    let (_, help, _) = run(labctl(home.path()), &["--help"]).await;
    for code in tested {
        assert!(
            help.contains(&format!("\n  {code}  ")),
            "{code} not in --help:\n{help}"
        );
    }
}
