//! The one precedence rule, through the `labctl` binary, as a matrix: for every setting and
//! every level it can come from, a test gives that level and every weaker one a value of
//! its own and checks that the level's value wins (flag > the lab file named on the
//! command line > environment > config cluster > default). Plus the rule that a secret
//! belongs to its host, and the defects that led to both, each named after what the user did.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{against, config, labctl, run, secret_file, sim, Recorder};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Flag,
    File,
    Env,
    Cluster,
    Default,
}

use Level::*;

// ---------------------------------------------------------------------------------------
// Lab settings: observed in `lab plan -o json` against the simulator.

/// A lab setting and its value at each level it exists at, with what `lab plan -o json`
/// then shows (`observe`).
struct LabSetting {
    /// The lab-file key this setting is (kept out of the base file).
    key: &'static str,
    flag: Option<(&'static [&'static str], &'static str)>,
    file: Option<(&'static str, &'static str)>,
    env: Option<(&'static str, &'static str, &'static str)>,
    default: Option<&'static str>,
    observe: fn(&Value) -> String,
}

fn first_student(v: &Value, key: &str) -> String {
    v["students"][0][key]
        .to_string()
        .trim_matches('"')
        .to_owned()
}

const BASE: &[(&str, &str)] = &[
    ("name", "name = \"base\""),
    ("template", "template = 9000"),
    ("count", "count = 1"),
];

fn lab_setting(name: &str) -> LabSetting {
    match name {
        "name" => LabSetting {
            key: "name",
            flag: Some((&["-n", "nflag"], "nflag")),
            file: Some(("name = \"nfile\"", "nfile")),
            env: Some(("LABCTL_LAB", "nenv", "nenv")),
            default: None,
            observe: |v| v["lab"].as_str().unwrap().to_owned(),
        },
        "template" => LabSetting {
            key: "template",
            flag: Some((&["-t", "9001"], "9001")),
            file: Some(("template = 9000", "9000")),
            env: None,
            default: None,
            observe: |v| v["template"].to_string(),
        },
        "count" => LabSetting {
            key: "count",
            flag: Some((&["-c", "2"], "2")),
            file: Some(("count = 3", "3")),
            env: None,
            default: None,
            observe: |v| v["students"].as_array().unwrap().len().to_string(),
        },
        "roster" => LabSetting {
            key: "roster",
            flag: Some((&["--roster", "flag.csv"], "Flag Person")),
            file: Some(("roster = \"file.csv\"", "File Person")),
            env: None,
            default: Some("null"),
            observe: |v| first_student(v, "student"),
        },
        "ids" => LabSetting {
            key: "ids",
            flag: Some((&["--ids", "6000-6099"], "6000")),
            file: Some(("ids = \"7000-7099\"", "7000")),
            env: None,
            default: Some("5000"),
            observe: |v| first_student(v, "vmid"),
        },
        "hostname" => LabSetting {
            key: "hostname",
            flag: Some((&["--hostname", "f-{n}"], "f-1")),
            file: Some(("hostname = \"l-{n}\"", "l-1")),
            env: None,
            default: Some("base-01"),
            observe: |v| first_student(v, "hostname"),
        },
        "teachers" => LabSetting {
            key: "teachers",
            flag: Some((&["--teacher", "10.0.0.1"], "10.0.0.1")),
            file: Some(("teachers = [\"10.0.0.2\"]", "10.0.0.2")),
            env: None,
            default: Some("none"),
            observe: |v| {
                let f = v["teachers"].to_string();
                ["10.0.0.1", "10.0.0.2"]
                    .into_iter()
                    .find(|ip| f.contains(ip))
                    .unwrap_or("none")
                    .to_owned()
            },
        },
        "clone" => LabSetting {
            key: "clone",
            flag: Some((&["--linked"], "linked")),
            file: Some(("clone = \"full\"", "full")),
            env: None,
            default: Some("linked"),
            observe: |v| v["clone_mode"].as_str().unwrap().to_owned(),
        },
        "concurrency" => LabSetting {
            key: "concurrency",
            flag: Some((&["--concurrency", "7"], "7")),
            file: Some(("concurrency = 6", "6")),
            env: None,
            default: Some("4"),
            observe: |v| v["concurrency"].to_string(),
        },
        "ready" => LabSetting {
            key: "timeouts",
            flag: Some((&["--ready-timeout", "100"], "100.0")),
            file: Some(("[timeouts]\nready = 200", "200.0")),
            env: None,
            default: Some("300.0"),
            observe: |v| v["timeouts"]["ready"].to_string(),
        },
        other => panic!("no lab setting {other}"),
    }
}

/// One cell: `setting` given at `level` and at every weaker level; `level`'s value wins.
async fn lab_cell(setting: &str, level: Level) {
    let s = lab_setting(setting);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(dir.join("flag.csv"), "name\nFlag Person\n").unwrap();
    std::fs::write(dir.join("file.csv"), "name\nFile Person\n").unwrap();
    let sim = sim().await;
    let mut c = against(dir, &sim);
    // Waits as written, not scaled to the simulator.
    c.env_remove("LABCTL_TIME_SCALE");
    let mut args: Vec<String> = vec!["lab".into(), "plan".into(), "-o".into(), "json".into()];
    let mut lines: Vec<String> = BASE
        .iter()
        .filter(|(k, _)| *k != s.key && !(s.key == "roster" && *k == "count" && level <= File))
        .map(|(_, l)| (*l).to_owned())
        .collect();
    let mut expect = None;
    if level <= Flag {
        if let Some((a, e)) = s.flag {
            args.extend(a.iter().map(|x| (*x).to_owned()));
            expect = expect.or(Some(e));
        }
    }
    if level <= File {
        if let Some((l, e)) = s.file {
            lines.push(l.to_owned());
            expect = expect.or(Some(e));
        }
    }
    if level <= Env {
        if let Some((var, value, e)) = s.env {
            c.env(var, value);
            expect = expect.or(Some(e));
        }
    }
    if level <= Default {
        expect = expect.or(s.default);
    }
    let expect = expect.unwrap_or_else(|| panic!("{setting} has no {level:?} level"));
    // Tables go last in TOML.
    lines.sort_by_key(|l| l.starts_with('['));
    std::fs::write(dir.join("lab.toml"), lines.join("\n") + "\n").unwrap();
    args.insert(2, "lab.toml".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(c, &argv).await;
    assert_eq!(code, Some(0), "{argv:?}\n{out}\n{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (s.observe)(&plan),
        expect,
        "{setting} at {level:?}: {argv:?}\n{out}"
    );
    sim.shutdown().await;
}

macro_rules! lab_cells {
    ($($test:ident: $setting:literal, $level:ident;)*) => {$(
        #[tokio::test]
        async fn $test() {
            lab_cell($setting, $level).await;
        }
    )*};
}

lab_cells! {
    name_flag_beats_lab_file_and_env: "name", Flag;
    name_lab_file_beats_env: "name", File;
    name_env_applies_without_flag_or_file: "name", Env;
    template_flag_beats_lab_file: "template", Flag;
    template_lab_file_applies: "template", File;
    count_flag_beats_lab_file: "count", Flag;
    count_lab_file_applies: "count", File;
    roster_flag_beats_lab_file: "roster", Flag;
    roster_lab_file_beats_default: "roster", File;
    roster_default_is_none: "roster", Default;
    ids_flag_beats_lab_file: "ids", Flag;
    ids_lab_file_beats_default: "ids", File;
    ids_default: "ids", Default;
    hostname_flag_beats_lab_file: "hostname", Flag;
    hostname_lab_file_beats_default: "hostname", File;
    hostname_default: "hostname", Default;
    teachers_flag_beats_lab_file: "teachers", Flag;
    teachers_lab_file_beats_default: "teachers", File;
    teachers_default_is_none: "teachers", Default;
    clone_flag_beats_lab_file: "clone", Flag;
    clone_lab_file_beats_default: "clone", File;
    clone_default_is_linked: "clone", Default;
    concurrency_flag_beats_lab_file: "concurrency", Flag;
    concurrency_lab_file_beats_default: "concurrency", File;
    concurrency_default: "concurrency", Default;
    ready_timeout_flag_beats_lab_file: "ready", Flag;
    ready_timeout_lab_file_beats_default: "ready", File;
    ready_timeout_default: "ready", Default;
}

// ---------------------------------------------------------------------------------------
// Connection settings: observed at loopback servers that record what reached them.

/// Host: one recorder per level; the one that was contacted tells which level won.
async fn host_cell(level: Level) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (flag, env, cluster) = (Recorder::start(), Recorder::start(), Recorder::start());
    config(
        dir,
        &format!(
            "default = \"c\"\n[clusters.c]\nhost = \"{}\"\nuser = \"root@pam\"\n",
            cluster.url
        ),
    );
    let mut c = labctl(dir);
    c.env("PVE_PASSWORD", "pw-env");
    let mut args = vec!["vm", "status", "100"];
    if level <= Flag {
        args.extend(["--host", flag.url.as_str()]);
    }
    if level <= Env {
        c.env("PVE_HOST", &env.url);
    }
    if level > Cluster {
        config(dir, "");
    }
    let (code, _, err) = run(c, &args).await;
    let hit: Vec<usize> = [&flag, &env, &cluster]
        .iter()
        .map(|r| r.requests())
        .collect();
    let want = match level {
        Flag => [1, 0, 0],
        Env => [0, 1, 0],
        Cluster => [0, 0, 1],
        _ => [0, 0, 0],
    };
    assert_eq!(
        hit.iter().map(|n| usize::from(*n > 0)).collect::<Vec<_>>(),
        want,
        "{level:?}: {err}"
    );
    if level == Default {
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("no Proxmox VE host"), "{err}");
    }
}

#[tokio::test]
async fn host_flag_beats_env_and_cluster() {
    host_cell(Flag).await;
}
#[tokio::test]
async fn host_env_beats_cluster() {
    host_cell(Env).await;
}
#[tokio::test]
async fn host_cluster_applies() {
    host_cell(Cluster).await;
}
#[tokio::test]
async fn host_default_is_none_and_says_so() {
    host_cell(Default).await;
}

/// Who logs in: `--user` > `PVE_TOKEN` (> `PVE_USER`) > the cluster's `token_id` / `user`.
async fn login_cell(level: Level) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let server = Recorder::start();
    let file = secret_file(dir, "tok", "cluster-token-secret");
    if level <= Cluster {
        config(
            dir,
            &format!(
                "default = \"c\"\n[clusters.c]\nhost = \"{}\"\ntoken_id = \"ucl@pve!t1\"\n\
                 token_secret_file = \"{file}\"\n",
                server.url
            ),
        );
    }
    let mut c = labctl(dir);
    c.env("PVE_HOST", &server.url).env("PVE_PASSWORD", "pw-env");
    let mut args = vec!["vm", "status", "100"];
    if level <= Flag {
        args.extend(["--user", "uflag@pve"]);
    }
    if level <= Env {
        c.env("PVE_TOKEN", "uenv@pve!t2=env-token-secret");
    }
    let (code, _, err) = run(c, &args).await;
    let seen = server.received();
    match level {
        Flag => assert!(seen.contains("username=uflag%40pve"), "{seen}\n{err}"),
        Env => assert!(
            seen.contains("uenv@pve!t2=env-token-secret"),
            "{seen}\n{err}"
        ),
        Cluster => assert!(
            seen.contains("ucl@pve!t1=cluster-token-secret"),
            "{seen}\n{err}"
        ),
        _ => {
            assert_eq!(code, Some(2), "{err}");
            assert!(err.contains("no credentials"), "{err}");
            assert_eq!(server.requests(), 0);
        }
    }
}

#[tokio::test]
async fn login_user_flag_beats_env_token_and_cluster_token() {
    login_cell(Flag).await;
}
#[tokio::test]
async fn login_env_token_beats_cluster_token() {
    login_cell(Env).await;
}
#[tokio::test]
async fn login_cluster_token_applies() {
    login_cell(Cluster).await;
}
#[tokio::test]
async fn login_default_is_none_and_says_so() {
    login_cell(Default).await;
}

/// The password: `PVE_PASSWORD` > the cluster's `password_file` (on its own host) > a
/// prompt (none off a terminal: refused).
async fn password_cell(level: Level) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let server = Recorder::start();
    let file = secret_file(dir, "pw", "pw-file");
    config(
        dir,
        &format!(
            "default = \"c\"\n[clusters.c]\nhost = \"{}\"\nuser = \"root@pam\"\n{}",
            server.url,
            if level <= Cluster {
                format!("password_file = \"{file}\"\n")
            } else {
                String::new()
            }
        ),
    );
    let mut c = labctl(dir);
    if level <= Env {
        c.env("PVE_PASSWORD", "pw-env");
    }
    let (code, _, err) = run(c, &["vm", "status", "100"]).await;
    let seen = server.received();
    match level {
        Env => assert!(
            seen.contains("password=pw-env") && !seen.contains("pw-file"),
            "{seen}"
        ),
        Cluster => assert!(seen.contains("password=pw-file"), "{seen}\n{err}"),
        _ => {
            assert_eq!(code, Some(2), "{err}");
            assert!(err.contains("no password for root@pam"), "{err}");
            assert_eq!(server.requests(), 0);
        }
    }
}

#[tokio::test]
async fn password_env_beats_cluster_password_file() {
    password_cell(Env).await;
}
#[tokio::test]
async fn password_cluster_file_applies() {
    password_cell(Cluster).await;
}
#[tokio::test]
async fn password_default_is_a_prompt_and_off_a_terminal_none() {
    password_cell(Default).await;
}

/// Which config cluster: `--cluster` > `LABCTL_CLUSTER` > the file's `default`.
async fn cluster_cell(level: Level) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let r: Vec<Recorder> = (0..3).map(|_| Recorder::start()).collect();
    config(
        dir,
        &format!(
            "{}[clusters.a]\nhost = \"{}\"\nuser = \"root@pam\"\n[clusters.b]\nhost = \"{}\"\n\
             user = \"root@pam\"\n[clusters.c]\nhost = \"{}\"\nuser = \"root@pam\"\n",
            if level <= Cluster {
                "default = \"c\"\n"
            } else {
                ""
            },
            r[0].url,
            r[1].url,
            r[2].url
        ),
    );
    let mut c = labctl(dir);
    c.env("PVE_PASSWORD", "pw-env");
    let mut args = vec!["vm", "status", "100"];
    if level <= Flag {
        args.extend(["--cluster", "a"]);
    }
    if level <= Env {
        c.env("LABCTL_CLUSTER", "b");
    }
    let (code, _, err) = run(c, &args).await;
    let hit: Vec<bool> = r.iter().map(|x| x.requests() > 0).collect();
    let want = match level {
        Flag => [true, false, false],
        Env => [false, true, false],
        Cluster => [false, false, true],
        _ => [false, false, false],
    };
    assert_eq!(hit, want, "{level:?}: {err}");
    if level == Default {
        assert_eq!(code, Some(2), "{err}");
    }
}

#[tokio::test]
async fn cluster_flag_beats_env_and_config_default() {
    cluster_cell(Flag).await;
}
#[tokio::test]
async fn cluster_env_beats_config_default() {
    cluster_cell(Env).await;
}
#[tokio::test]
async fn cluster_config_default_applies() {
    cluster_cell(Cluster).await;
}
#[tokio::test]
async fn cluster_default_is_none() {
    cluster_cell(Default).await;
}

/// TLS choice against the simulator over HTTPS: the winning level pins the right
/// fingerprint and every weaker one a wrong one, so only the right winner connects.
async fn tls_cell(level: Level) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let sim = pve_sim::Simulator::builder()
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    let right = sim.fingerprint().to_owned();
    let wrong = "AB:".repeat(31) + "AB";
    let pin = |l: Level| {
        if l == level {
            right.clone()
        } else {
            wrong.clone()
        }
    };
    config(
        dir,
        &format!(
            "default = \"c\"\n[clusters.c]\nhost = \"{}\"\nuser = \"root@pam\"\n{}",
            sim.url(),
            if level <= Cluster {
                format!("fingerprint = \"{}\"\n", pin(Cluster))
            } else {
                String::new()
            }
        ),
    );
    let mut c = labctl(dir);
    c.env("PVE_PASSWORD", "secret");
    let flag_pin = pin(Flag);
    let mut args = vec!["vm", "status", "100"];
    if level <= Flag {
        args.extend(["--fingerprint", flag_pin.as_str()]);
    }
    if level <= Env {
        c.env("PVE_FINGERPRINT", pin(Env));
    }
    let (code, _, err) = run(c, &args).await;
    // Default: the system roots, which do not know the simulator's self-signed certificate.
    let want = if level == Default { Some(3) } else { Some(0) };
    assert_eq!(code, want, "{level:?}: {err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_flag_beats_env_and_cluster() {
    tls_cell(Flag).await;
}
#[tokio::test]
async fn tls_env_beats_cluster() {
    tls_cell(Env).await;
}
#[tokio::test]
async fn tls_cluster_applies() {
    tls_cell(Cluster).await;
}
#[tokio::test]
async fn tls_default_is_the_system_roots() {
    tls_cell(Default).await;
}

// ---------------------------------------------------------------------------------------
// The defects, as the user met them.

/// Config with a default cluster whose password is an owner-only file, on `host`.
fn school_cluster(dir: &Path, host: &str, extra: &str) -> String {
    let pw = secret_file(dir, "school.pw", "pw-Sch00l-cluster");
    config(
        dir,
        &format!(
            "default = \"school\"\n[clusters.school]\nhost = \"{host}\"\nuser = \"root@pam\"\n\
             password_file = \"{pw}\"\n{extra}"
        ),
    );
    pw
}

#[tokio::test]
async fn pve_host_over_a_default_cluster_never_gets_the_clusters_password() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let sim = sim().await;
    school_cluster(dir, &sim.url(), "");
    let other = Recorder::start();
    let mut c = labctl(dir);
    c.env("PVE_HOST", &other.url);
    let (code, _, err) = run(c, &["vm", "status", "100"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(other.requests(), 0, "{}", other.received());
    assert!(
        err.contains(&other.url) && err.contains(&sim.url()) && err.contains("PVE_HOST"),
        "names both hosts and the source: {err}"
    );
    assert!(!err.contains("pw-Sch00l-cluster"), "{err}");
    // Its own secret goes to the other host.
    let mut c = labctl(dir);
    c.env("PVE_HOST", &other.url)
        .env("PVE_PASSWORD", "pw-other");
    let (code, _, err) = run(c, &["vm", "status", "100"]).await;
    assert_eq!(code, Some(3), "{err}");
    let seen = other.received();
    assert!(
        seen.contains("password=pw-other") && !seen.contains("pw-Sch00l"),
        "{seen}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn host_flag_over_a_default_cluster_never_gets_the_clusters_token() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let sim = sim().await;
    let tok = secret_file(dir, "tok", "0b5e7a4c-7777-4444-9999-1234567890ab");
    config(
        dir,
        &format!(
            "default = \"school\"\n[clusters.school]\nhost = \"{}\"\ntoken_id = \
             \"root@pam!ci\"\ntoken_secret_file = \"{tok}\"\n",
            sim.url()
        ),
    );
    let other = Recorder::start();
    let (code, _, err) = run(labctl(dir), &["vm", "list", "--host", &other.url]).await;
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(other.requests(), 0, "{}", other.received());
    assert!(err.contains("--host") && err.contains(&sim.url()), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_http_override_of_a_pinned_cluster_sends_nothing_in_clear_text() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let pinned = pve_sim::Simulator::builder()
        .password("secret")
        .start()
        .await
        .unwrap();
    school_cluster(
        dir,
        &pinned.url(),
        &format!("fingerprint = \"{}\"\n", pinned.fingerprint()),
    );
    let plain = Recorder::start();
    let (code, _, err) = run(labctl(dir), &["vm", "status", "100", "--host", &plain.url]).await;
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(plain.requests(), 0, "{}", plain.received());
    // A pin chosen for an http:// host is refused rather than silently unused.
    let mut c = labctl(dir);
    c.env("PVE_PASSWORD", "pw-env");
    let (code, _, err) = run(
        c,
        &[
            "vm",
            "status",
            "100",
            "--host",
            &plain.url,
            "--fingerprint",
            pinned.fingerprint(),
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plain http"), "{err}");
    assert_eq!(plain.requests(), 0, "{}", plain.received());
    pinned.shutdown().await;
}

#[tokio::test]
async fn labctl_lab_env_does_not_override_the_lab_file_on_lab_down() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let sim = sim().await;
    for lab in ["a", "b"] {
        let (code, out, err) = run(
            against(dir, &sim),
            &[
                "lab",
                "up",
                "-n",
                lab,
                "-t",
                "9000",
                "-c",
                "1",
                "--ids",
                if lab == "a" { "5000-5099" } else { "6000-6099" },
            ],
        )
        .await;
        assert_eq!(code, Some(0), "{out}\n{err}");
    }
    std::fs::write(
        dir.join("b.toml"),
        "name = \"b\"\ntemplate = 9000\ncount = 1\n",
    )
    .unwrap();
    let mut c = against(dir, &sim);
    c.env("LABCTL_LAB", "a");
    let (code, out, err) = run(c, &["lab", "down", "b.toml", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let pools = sim.state()["pools"].clone();
    assert!(pools.get("a").is_some(), "lab a was destroyed: {pools}");
    assert!(pools.get("b").is_none(), "lab b is still there: {pools}");
    sim.shutdown().await;
}

#[tokio::test]
async fn empty_secrets_are_refused_not_sent() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let server = Recorder::start();
    let cases: Vec<(&str, &str, &str)> = vec![
        ("PVE_PASSWORD", "", "PVE_PASSWORD"),
        ("PVE_PASSWORD", "  ", "PVE_PASSWORD"),
        ("PVE_TOKEN", "root@pam!ci=", "secret is empty"),
        ("PVE_TOKEN", "", "PVE_TOKEN"),
    ];
    for (var, value, says) in cases {
        let mut c = labctl(dir);
        c.env("PVE_HOST", &server.url)
            .env("PVE_USER", "root@pam")
            .env(var, value);
        let (code, _, err) = run(c, &["vm", "status", "100"]).await;
        assert_eq!(code, Some(2), "{var}={value:?}: {err}");
        assert!(err.contains(says), "{var}={value:?}: {err}");
    }
    // An empty secret file.
    let pw = secret_file(dir, "empty.pw", "");
    config(
        dir,
        &format!(
            "[clusters.c]\nhost = \"{}\"\nuser = \"root@pam\"\npassword_file = \"{pw}\"\n",
            server.url
        ),
    );
    let (code, _, err) = run(labctl(dir), &["vm", "status", "100", "--cluster", "c"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is empty"), "{err}");
    assert_eq!(server.requests(), 0, "{}", server.received());
}

// ---------------------------------------------------------------------------------------
// Classroom labs: FC_* apply, PVE_* never reach the FOSS-Cloud server.

const CLASSROOM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/classroom.toml");

#[tokio::test]
async fn classroom_lab_verbs_trust_fc_ca_file_and_ignore_pve_ones() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let mut fixture = fosscloud_sim::Fixture::default();
    fixture.config.mac_by_parameter = true;
    let fc = fosscloud_sim::Simulator::builder()
        .fixture(fixture)
        .start()
        .await
        .unwrap();
    let ca = dir.join("fc-ca.pem");
    std::fs::write(&ca, fc.ca_certificate_pem().unwrap()).unwrap();
    let status = |var: &'static str| {
        let mut c = labctl(dir);
        c.env("FC_PASSWORD", "dynvmuser-pw").env(var, &ca);
        c
    };
    let (code, _, err) = run(
        status("FC_CA_FILE"),
        &["lab", "status", CLASSROOM, "--url", fc.base_url()],
    )
    .await;
    assert_eq!(code, Some(0), "FC_CA_FILE applies: {err}");
    let (code, _, err) = run(
        status("PVE_CA_FILE"),
        &["lab", "status", CLASSROOM, "--url", fc.base_url()],
    )
    .await;
    assert_eq!(code, Some(3), "PVE_CA_FILE must not apply: {err}");
    fc.shutdown().await;
}

#[tokio::test]
async fn classroom_lab_up_with_teacher_is_refused_naming_the_flag() {
    let home = tempfile::tempdir().unwrap();
    for (flag, named) in [
        (&["--teacher", "10.10.0.1"][..], "--teacher"),
        (&["-c", "3"], "--count"),
        (&["--host", "pve1"], "--host"),
        (&["--full"], "--full"),
    ] {
        let mut args = vec!["lab", "up", CLASSROOM];
        args.extend(flag);
        let (code, _, err) = run(labctl(home.path()), &args).await;
        assert_eq!(code, Some(2), "{flag:?}: {err}");
        assert!(err.contains(named), "{flag:?}: {err}");
    }
    // PVE_HOST in the environment is not a flag given to this command: no refusal for it.
    let mut c = labctl(home.path());
    c.env("PVE_HOST", "pve1");
    let (_, _, err) = run(c, &["lab", "down", CLASSROOM, "--dry-run"]).await;
    assert!(!err.contains("for Proxmox labs"), "{err}");
}
