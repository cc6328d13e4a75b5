//! The command tree as data: the tree is read from the binary's own `--help` (every
//! `Commands:` section, recursively), then every leaf is run with `--help` and with each
//! `-o` value against simulators on 127.0.0.1. It fails on a panic, on an `-o` that is
//! accepted and ignored (JSON that does not parse, CSV that is the table), on help text
//! that names a command that does not exist or a Rust type, and on a JSON key that the
//! README's "JSON keys" section does not document. (`Command::debug_assert` runs in the
//! binary's own unit tests, `main.rs`.)
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

const RUN_LIMIT: Duration = Duration::from_secs(120);
const FORMATS: [&str; 3] = ["table", "json", "csv"];
const WINDOWS_EXAM: &str = "57e3bd10-1934-4b4f-3d4c-6e31473bddab";
const CLASSROOM: &str = "6a1c2e3f-0000-4000-8000-00000000a004";
const CLASS_01_MAC: &str = "52:54:00:00:00:01";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
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

async fn labctl(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PVE_")
            || k.starts_with("LABCTL_")
            || k.starts_with("FC_")
            || k == "RUST_LOG"
        {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .args(args);
    let out = tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap_or_else(|_| panic!("labctl {args:?} did not finish within {RUN_LIMIT:?}"))
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn no_panic(args: &[&str], out: &Out) {
    assert!(
        out.code != Some(101) && !out.stderr.contains("panicked"),
        "labctl {args:?} panicked\n{out}"
    );
}

/// The subcommands a `--help` lists (its `Commands:` section), without `help`.
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() {
            break;
        }
        // "  name  description"; wrapped descriptions are indented further.
        if line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// The whole tree: path → children (empty for a leaf), and every help text.
async fn tree(
    dir: &Path,
) -> (
    BTreeMap<Vec<String>, Vec<String>>,
    BTreeMap<Vec<String>, String>,
) {
    let mut children = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = labctl(dir, &[], &args).await;
        no_panic(&args, &out);
        assert_eq!(out.code, Some(0), "labctl {args:?}\n{out}");
        let subs = subcommands(&out.stdout);
        for s in &subs {
            let mut p = path.clone();
            p.push(s.clone());
            todo.push(p);
        }
        children.insert(path.clone(), subs);
        helps.insert(path, out.stdout);
    }
    (children, helps)
}

/// Every `labctl …` a help text mentions must resolve: while the node has subcommands, the
/// next word is one of them (or a flag).
fn check_mentions(
    path: &[String],
    help: &str,
    children: &BTreeMap<Vec<String>, Vec<String>>,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, _) in help.match_indices("labctl ") {
        // A command, not prose ("labctl makes passwords"): in backticks, or at the start
        // of an example line.
        let line_start = help[..i].rfind('\n').map_or(0, |n| n + 1);
        let before = &help[line_start..i];
        if !(before.ends_with('`') || before.trim().is_empty()) {
            continue;
        }
        let rest = &help[i + "labctl ".len()..];
        let mut node: Vec<String> = Vec::new();
        for word in rest.split_whitespace() {
            let w = word.trim_matches(|c: char| "`'\",.;:()".contains(c));
            let subs = &children[&node];
            // A flag or a placeholder (`[OPTIONS]`, `<COMMAND>`) ends the command words.
            if subs.is_empty() || w.is_empty() || w.starts_with(['-', '[', '<', '$', '|', '#']) {
                break;
            }
            if subs.iter().any(|s| s == w) {
                node.push(w.to_owned());
            } else {
                let line = rest.lines().next().unwrap_or_default();
                bad.push(format!(
                    "`labctl {}` help names `labctl {line}`: no command `{w}` under `labctl {}`",
                    path.join(" "),
                    node.join(" ")
                ));
                break;
            }
        }
    }
    // Rust, not the user's language.
    for needle in [
        "::",
        "[`",
        "Option<",
        "Vec<",
        "anyhow",
        "lab_core",
        "pve_access",
        "pve_vm",
        "crate::",
    ] {
        if help.contains(needle) {
            bad.push(format!(
                "`labctl {}` help contains {needle:?}",
                path.join(" ")
            ));
        }
    }
    bad
}

/// What a leaf is run with: arguments, extra environment, and whether it serves forever
/// (then only the refusal of `-o json|csv` is run).
struct Leaf {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    serves: bool,
    /// Not repeatable against one server (FOSS-Cloud answers 400067 to a second mapping
    /// assign): each format runs against a fresh FOSS-Cloud simulator.
    fresh_fc: bool,
}

fn leaf(args: &[&str]) -> Leaf {
    Leaf {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        serves: false,
        fresh_fc: false,
    }
}

/// The arguments each leaf runs with against the simulators. A leaf missing here fails the
/// test: a new command must be added, so it is walked too.
fn leaves(fc_url: &str) -> BTreeMap<&'static str, Leaf> {
    let fc = |args: &[&str], user: &str| Leaf {
        args: args
            .iter()
            .map(|s| (*s).to_owned())
            .chain(["--allow-http".to_owned()])
            .collect(),
        env: vec![
            ("FC_URL", fc_url.to_owned()),
            ("FC_USER", user.to_owned()),
            ("FC_PASSWORD", format!("{user}-pw")),
        ],
        serves: false,
        fresh_fc: false,
    };
    let serve = |args: &[&str]| Leaf {
        serves: true,
        ..leaf(args)
    };
    BTreeMap::from([
        (
            "lab plan",
            leaf(&[
                "lab",
                "plan",
                "-n",
                "tree",
                "-t",
                "9000",
                "-c",
                "2",
                "--teacher",
                "10.10.0.1",
            ]),
        ),
        (
            "lab up",
            leaf(&[
                "lab",
                "up",
                "-n",
                "tree",
                "-t",
                "9000",
                "-c",
                "2",
                "--teacher",
                "10.10.0.1",
            ]),
        ),
        ("lab status", leaf(&["lab", "status", "-n", "tree"])),
        ("lab collect", leaf(&["lab", "collect", "tree.toml"])),
        ("lab grade", leaf(&["lab", "grade", "tree.toml"])),
        ("lab check", leaf(&["lab", "check", "tree.toml"])),
        ("lab lint", leaf(&["lab", "lint", "tree.toml"])),
        (
            "lab selftest",
            leaf(&["lab", "selftest", "tree.toml", "--reference", "5000"]),
        ),
        ("lab ips", leaf(&["lab", "ips", "-n", "tree"])),
        (
            "lab snapshot",
            leaf(&["lab", "snapshot", "tree.toml", "baseline", "--yes"]),
        ),
        (
            "lab freeze",
            leaf(&["lab", "freeze", "tree.toml", "--dry-run"]),
        ),
        (
            "lab unfreeze",
            leaf(&["lab", "unfreeze", "tree.toml", "--dry-run"]),
        ),
        (
            "lab reset",
            leaf(&["lab", "reset", "tree.toml", "tree-01", "--dry-run"]),
        ),
        (
            "lab down",
            leaf(&["lab", "down", "-n", "tree", "--dry-run"]),
        ),
        (
            "lab access grant",
            leaf(&["lab", "access", "grant", "-n", "tree"]),
        ),
        (
            "lab access sheet",
            leaf(&["lab", "access", "sheet", "-n", "tree"]),
        ),
        (
            "lab access verify",
            leaf(&["lab", "access", "verify", "-n", "tree"]),
        ),
        (
            "lab access revoke",
            leaf(&["lab", "access", "revoke", "-n", "tree", "--dry-run"]),
        ),
        ("template list", leaf(&["template", "list"])),
        (
            "template replicate",
            leaf(&[
                "template",
                "replicate",
                "9000",
                "--nodes",
                "pve2",
                "--dry-run",
            ]),
        ),
        ("vm list", leaf(&["vm", "list"])),
        ("vm next-id", leaf(&["vm", "next-id", "--from", "5000"])),
        ("vm status", leaf(&["vm", "status", "5000"])),
        (
            "vm clone",
            leaf(&["vm", "clone", "9000", "--name", "extra"]),
        ),
        ("vm start", leaf(&["vm", "start", "5000"])),
        ("vm stop", leaf(&["vm", "stop", "5000", "--dry-run"])),
        (
            "vm shutdown",
            leaf(&["vm", "shutdown", "5000", "--dry-run"]),
        ),
        ("vm reboot", leaf(&["vm", "reboot", "5001", "--yes"])),
        ("vm agent", leaf(&["vm", "agent", "5000"])),
        ("vm is-template", leaf(&["vm", "is-template", "9000"])),
        (
            "vm template",
            // A stopped guest: a running one is refused (exit 1) even in a dry run.
            leaf(&["vm", "template", "9000", "--dry-run"]),
        ),
        (
            "vm destroy",
            leaf(&["vm", "destroy", "5000", "--stop", "--dry-run"]),
        ),
        ("vm ip", leaf(&["vm", "ip", "5000"])),
        ("vm exec", leaf(&["vm", "exec", "5000", "--", "hostname"])),
        (
            "vm file-read",
            leaf(&["vm", "file-read", "5000", "/etc/hostname"]),
        ),
        (
            "vm file-write",
            leaf(&[
                "vm",
                "file-write",
                "5000",
                "/tmp/labctl-tree",
                "--from",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            ]),
        ),
        ("vm snapshot", leaf(&["vm", "snapshot", "5000", "list"])),
        (
            "vm link",
            leaf(&["vm", "link", "5000", "down", "--dry-run"]),
        ),
        (
            "firewall isolate",
            leaf(&[
                "firewall",
                "isolate",
                "--first",
                "5000",
                "--last",
                "5001",
                "--lab",
                "tree",
                "--allow",
                "10.10.0.1",
                "--dry-run",
            ]),
        ),
        (
            "firewall unisolate",
            leaf(&[
                "firewall",
                "unisolate",
                "--first",
                "5000",
                "--last",
                "5001",
                "--lab",
                "tree",
                "--dry-run",
            ]),
        ),
        (
            "firewall verify",
            leaf(&[
                "firewall",
                "verify",
                "--first",
                "5000",
                "--last",
                "5001",
                "--lab",
                "tree",
                "--allow",
                "10.10.0.1",
            ]),
        ),
        ("sim", serve(&["sim"])),
        ("sim pve", serve(&["sim", "pve"])),
        ("sim fosscloud", serve(&["sim", "fosscloud"])),
        ("completions", leaf(&["completions", "bash"])),
        ("doctor", leaf(&["doctor", "tree.toml"])),
        (
            "setup operator",
            leaf(&["setup", "operator", "--privileges"]),
        ),
        ("demo", serve(&["demo"])),
        ("fosscloud login", fc(&["fosscloud", "login"], "alice")),
        ("fosscloud realms", fc(&["fosscloud", "realms"], "alice")),
        ("fosscloud list", fc(&["fosscloud", "list"], "alice")),
        (
            "fosscloud assign",
            fc(&["fosscloud", "assign", WINDOWS_EXAM], "alice"),
        ),
        (
            "fosscloud mapping list",
            fc(&["fosscloud", "mapping", "list", CLASS_01_MAC], "dynvmuser"),
        ),
        (
            "fosscloud mapping assign",
            Leaf {
                fresh_fc: true,
                ..fc(
                    &["fosscloud", "mapping", "assign", CLASSROOM, CLASS_01_MAC],
                    "dynvmuser",
                )
            },
        ),
    ])
}

/// The lab `lab up` made, as a file with checks that every student passes.
const TREE_LAB: &str = r#"
name = "tree"
template = 9000
count = 2
teachers = ["10.10.0.1"]

[exam]
teacher = 100

[[probe]]
id = "host"
file = "/etc/hostname"

[[probe]]
id = "ssh"
tcp = "{{ip}}:22"

[[check]]
id = "hostname"
probe = "host"
expect = [{ equals = "{{hostname}}" }]

[[check]]
id = "ssh"
probe = "ssh"
expect = [{ reachable = true }]
"#;

/// The keys the README documents: the first column of the table under "### JSON keys".
fn documented_keys() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("### JSON keys")
        .expect("the README documents the JSON keys under \"### JSON keys\"");
    let section = &readme[start..];
    let end = section[3..].find("\n#").map_or(section.len(), |e| e + 3);
    let mut keys = BTreeSet::new();
    for line in section[..end].lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or_default();
        for k in cell.split('`').skip(1).step_by(2) {
            keys.insert(k.to_owned());
        }
    }
    keys
}

fn json_keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                json_keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| json_keys(x, out)),
        _ => {}
    }
}

async fn fc_sim() -> fosscloud_sim::SimulatorHandle {
    fosscloud_sim::Simulator::builder()
        .plain_http(true)
        .config(fosscloud_sim::Config {
            mac_by_parameter: true,
            ..fosscloud_sim::Config::default()
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_command_runs_its_help_and_every_output_format_without_panic_or_ignoring_it() {
    let dir = tempfile::tempdir().unwrap();
    let (children, helps) = tree(dir.path()).await;

    // 1. Help texts name only commands that exist, and no Rust.
    let mut bad = Vec::new();
    for (path, help) in &helps {
        bad.extend(check_mentions(path, help, &children));
    }
    assert!(bad.is_empty(), "help text problems:\n{}", bad.join("\n"));

    // 2. Every leaf with every -o value, against the simulators.
    let pve = pve_sim::Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    let fc = fc_sim().await;
    let pve_env = vec![
        ("PVE_HOST", pve.url()),
        ("PVE_USER", "root@pam".to_owned()),
        ("PVE_PASSWORD", "secret".to_owned()),
        ("LABCTL_TIME_SCALE", "0.01".to_owned()),
    ];
    let table = leaves(fc.base_url());
    let found: Vec<String> = children
        .iter()
        .filter(|(_, c)| c.is_empty())
        .map(|(p, _)| p.join(" "))
        .collect();
    let missing: Vec<&String> = found
        .iter()
        .filter(|p| !table.contains_key(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "leaves without arguments in this test: {missing:?}"
    );
    let nodes: Vec<String> = children.keys().map(|p| p.join(" ")).collect();
    let gone: Vec<&&str> = table
        .keys()
        .filter(|k| !nodes.iter().any(|f| f == *k))
        .collect();
    assert!(
        gone.is_empty(),
        "the test lists commands that do not exist: {gone:?}"
    );
    // Leaves, plus the inner commands that run by themselves (`sim` runs `sim pve`).
    let found: Vec<String> = nodes
        .into_iter()
        .filter(|n| table.contains_key(n.as_str()))
        .collect();

    // The lab first, so the leaves have students, guests and a sheet to work on.
    let up = labctl(
        dir.path(),
        &pve_env,
        &table["lab up"]
            .args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(up.code, Some(0), "{up}");
    let grant = labctl(
        dir.path(),
        &pve_env,
        &["lab", "access", "grant", "-n", "tree"],
    )
    .await;
    assert_eq!(grant.code, Some(0), "{grant}");

    // The lab as a file with checks, for the evaluation verbs.
    std::fs::write(dir.path().join("tree.toml"), TREE_LAB).unwrap();

    let mut keys = BTreeSet::new();
    let mut problems = Vec::new();
    for path in &found {
        let leaf = &table[path.as_str()];
        let mut env = pve_env.clone();
        env.extend(leaf.env.iter().cloned());
        let mut table_out: Option<String> = None;
        for format in FORMATS {
            if leaf.serves && format == "table" {
                continue; // runs until stopped; its --help ran above
            }
            let mut args: Vec<&str> = leaf.args.iter().map(String::as_str).collect();
            // After `--` every word is the guest's (`vm exec`): -o goes before it.
            let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
            args.splice(at..at, ["-o", format]);
            let mut env = env.clone();
            let _fresh = if leaf.fresh_fc {
                let sim = fc_sim().await;
                env.push(("FC_URL", sim.base_url().to_owned()));
                Some(sim)
            } else {
                None
            };
            let out = labctl(dir.path(), &env, &args).await;
            no_panic(&args, &out);
            match (format, out.code) {
                ("table", Some(0)) => table_out = Some(out.stdout.clone()),
                (_, Some(2)) if format != "table" => {
                    // Refused: must say so, and print nothing as data.
                    if !out.stderr.contains("-o")
                        && !out.stderr.contains("csv")
                        && !out.stderr.contains("json")
                    {
                        problems.push(format!("labctl {args:?} exits 2 without naming -o\n{out}"));
                    }
                }
                ("json", Some(0)) => match serde_json::from_str::<Value>(&out.stdout) {
                    Ok(v) => {
                        if !path.starts_with("fosscloud") {
                            json_keys(&v, &mut keys);
                        }
                    }
                    Err(e) => problems.push(format!(
                        "labctl {args:?}: -o json printed no JSON ({e})\n{out}"
                    )),
                },
                ("csv", Some(0)) => {
                    if table_out.as_deref() == Some(out.stdout.as_str()) {
                        problems.push(format!("labctl {args:?}: -o csv printed the table\n{out}"));
                    }
                }
                _ => problems.push(format!("labctl {args:?} failed\n{out}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    // 3. Every JSON key is documented, in one place.
    let documented = documented_keys();
    let undocumented: Vec<&String> = keys.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "JSON keys not in the README's \"JSON keys\" table: {undocumented:?}"
    );
    pve.shutdown().await;
}
