//! `cargo xtask mutants [--file PATH]… [--list] [--jobs N] [--timeout S] [--min-score P]`:
//! mutation testing of the files that decide safety, with `cargo-mutants`.
//!
//! Each file is mutated on its own (in a scratch copy of the tree: the checkout is never
//! changed) and every mutant is tested with the test packages that exercise that file —
//! the engine's files with `lab-core` (the fake backend: its guests can misbehave, so every
//! failure path is reachable in milliseconds), the fence with `pve-firewall` on the
//! simulator, and so on ([`SAFETY_FILES`]). Unit and integration tests run, doctests do not
//! (they are examples, and building them costs minutes per mutant). Per file it
//! prints viable mutants, caught, missed, timeouts and the score `caught / viable`, then
//! the missed mutants, and keeps cargo-mutants' full output in
//! `<target dir>/mutants/<file>/mutants.out` (`outcomes.json`, `missed.txt`, logs).
//!
//! A timeout counts as *caught* only when a test's own limit reported it (a failing test
//! naming what it waited for); cargo-mutants' own timeouts are listed apart and not caught.
//!
//! The mutants are built in their own target directory, `<target dir>/mutants/target`,
//! without debug info: sharing the checkout's would let cargo take a mutated build for the
//! checkout's (workspace crates get the same artifact names in both trees).
//! `--iterate` re-tests only the mutants not caught by the earlier runs of the same file;
//! the table still counts every mutant of the file (the last outcome of each, kept in
//! `<target dir>/mutants/<file>/ledger.json`; a mutant whose line changed since is
//! dropped from it, its successor tested anew). `--shard K/N` tests every N-th mutant from
//! the K-th: a sample of a file too large for one sitting; shards add up in the ledger.
//!
//! It needs `cargo-mutants` (`cargo install --locked cargo-mutants`); it is too slow for
//! every CI run (minutes per file on two cores).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A file that decides safety and the packages whose tests exercise it.
pub struct SafetyFile {
    /// Path from the workspace root.
    pub path: &'static str,
    /// Test packages run against each mutant.
    pub tests: &'static [&'static str],
    /// Why it is on the list.
    pub why: &'static str,
}

/// The files `cargo xtask mutants` mutates by default (issue 24).
pub const SAFETY_FILES: &[SafetyFile] = &[
    SafetyFile {
        path: "crates/lab-core/src/up.rs",
        tests: &["lab-core"],
        why: "the engine's bring-up: timeouts, retry budgets, the probe schedule",
    },
    SafetyFile {
        path: "crates/lab-core/src/down.rs",
        tests: &["lab-core"],
        why: "teardown: only owned guests, the fence lifted last",
    },
    SafetyFile {
        path: "crates/lab-core/src/engine.rs",
        tests: &["lab-core"],
        why: "planning, the retry loop and teardown ownership checks",
    },
    SafetyFile {
        path: "crates/pve-firewall/src/isolation.rs",
        tests: &["pve-firewall"],
        why: "the fence: isolate and unisolate a range",
    },
    SafetyFile {
        path: "crates/pve-access/src/exam.rs",
        tests: &["pve-access"],
        why: "exam access: grants and revocation",
    },
    SafetyFile {
        path: "crates/lab-grade/src/grade.rs",
        tests: &["lab-grade"],
        why: "the grade sheet's outcomes and points",
    },
    SafetyFile {
        path: "crates/lab-grade/src/matcher.rs",
        tests: &["lab-grade"],
        why: "what counts as a pass",
    },
];

/// What `cargo xtask mutants` was asked.
#[derive(Debug, Default, PartialEq)]
struct Options {
    files: Vec<String>,
    list: bool,
    iterate: bool,
    shard: Option<(u32, u32)>,
    jobs: Option<u32>,
    timeout: Option<u32>,
    min_score: Option<f64>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        match flag {
            "--file" | "-f" => o.files.push(value("--file")?),
            "--list" => o.list = true,
            "--iterate" => o.iterate = true,
            "--shard" => o.shard = Some(shard(&value("--shard")?)?),
            "--jobs" | "-j" => o.jobs = Some(number(&value("--jobs")?, "--jobs", 1, 64)?),
            "--timeout" => o.timeout = Some(number(&value("--timeout")?, "--timeout", 1, 3600)?),
            "--min-score" => {
                let v = value("--min-score")?;
                let p = v
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .with_context(|| format!("--min-score {v:?}: a percentage from 0 to 100"))?;
                o.min_score = Some(p);
            }
            other => bail!(
                "cargo xtask mutants: unknown argument {other:?} (allowed: --file PATH, --list, \
                 --iterate, --shard K/N, --jobs N, --timeout SECONDS, --min-score PERCENT)"
            ),
        }
    }
    Ok(o)
}

/// `K/N`: shard K (from 0) of N.
fn shard(v: &str) -> Result<(u32, u32)> {
    v.split_once('/')
        .and_then(|(k, n)| Some((k.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
        .filter(|(k, n)| *n > 0 && k < n)
        .with_context(|| format!("--shard {v:?}: K/N with 0 <= K < N, e.g. 0/4"))
}

fn number(v: &str, name: &str, lo: u32, hi: u32) -> Result<u32> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .with_context(|| format!("{name} {v:?}: a whole number from {lo} to {hi}"))
}

/// The safety files asked for (all by default); a file not on the list is tested with
/// its own package's tests.
fn selected(root: &Path, files: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    if files.is_empty() {
        return Ok(SAFETY_FILES
            .iter()
            .map(|f| (f.path.to_owned(), owned(f.tests)))
            .collect());
    }
    files
        .iter()
        .map(|f| {
            let rel = f.trim_start_matches("./").to_owned();
            if !root.join(&rel).is_file() {
                bail!("--file {f:?}: no such file in the workspace (paths are from its root, e.g. crates/lab-core/src/up.rs)");
            }
            let tests = match SAFETY_FILES.iter().find(|s| s.path == rel) {
                Some(s) => owned(s.tests),
                None => vec![package_of(&rel)?],
            };
            Ok((rel, tests))
        })
        .collect()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `crates/<pkg>/…` → `<pkg>`.
fn package_of(rel: &str) -> Result<String> {
    let mut parts = rel.split('/');
    match (parts.next(), parts.next()) {
        (Some("crates"), Some(pkg)) if !pkg.is_empty() => Ok(pkg.to_owned()),
        _ => bail!("--file {rel:?}: not under crates/<package>/, so its tests are unknown"),
    }
}

/// Counts of one file's run.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tally {
    caught: u64,
    missed: u64,
    timeout: u64,
    unviable: u64,
    missed_names: Vec<String>,
}

impl Tally {
    fn viable(&self) -> u64 {
        self.caught + self.missed + self.timeout
    }

    /// Caught over viable, in per cent (a file without viable mutants scores 100).
    fn score(&self) -> f64 {
        if self.viable() == 0 {
            100.0
        } else {
            self.caught as f64 * 100.0 / self.viable() as f64
        }
    }
}

/// Every mutant of one file and its last outcome, kept across `--iterate` runs in
/// `<out>/ledger.json`: cargo-mutants' own `outcomes.json` holds only the mutants of its
/// latest run, so after `--iterate` the mutants caught earlier would vanish from the count.
type Ledger = std::collections::BTreeMap<String, String>;

/// Adds the outcomes of one run (cargo-mutants' `outcomes.json`) to the ledger; a run
/// of the whole file (not `--iterate`, not `--shard`) starts it afresh.
fn record(ledger: &mut Ledger, outcomes: &Value, add: bool) -> Result<()> {
    let list = outcomes["outcomes"]
        .as_array()
        .context("outcomes.json has no \"outcomes\" list")?;
    if !add {
        ledger.clear();
    }
    for o in list {
        if o["scenario"] == "Baseline" {
            continue;
        }
        let name = o["scenario"]["Mutant"]["name"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                o["scenario"]["Mutant"]
                    .as_object()
                    .map(|m| format!("{m:?}"))
            })
            .unwrap_or_default();
        let summary = o["summary"].as_str().unwrap_or("").to_owned();
        ledger.insert(name, summary);
    }
    Ok(())
}

/// The names of the mutants cargo-mutants makes of `file` now (`--list`: no build).
fn list_mutants(root: &Path, file: &str) -> Result<std::collections::BTreeSet<String>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["mutants", "--list", "--file", file])
        .current_dir(root)
        .output()
        .context("running cargo mutants --list")?;
    if !out.status.success() {
        bail!(
            "cargo mutants --list --file {file} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Counts the ledger.
fn tally(ledger: &Ledger) -> Result<Tally> {
    let mut t = Tally::default();
    for (name, summary) in ledger {
        match summary.as_str() {
            "CaughtMutant" => t.caught += 1,
            "MissedMutant" => {
                t.missed += 1;
                t.missed_names.push(name.clone());
            }
            "Timeout" => t.timeout += 1,
            "Unviable" => t.unviable += 1,
            other => bail!("outcomes.json: unexpected outcome {other:?} for {name}"),
        }
    }
    Ok(t)
}

/// Run the command.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let files = selected(root, &o.files)?;
    if o.list {
        for (f, tests) in &files {
            let why = SAFETY_FILES
                .iter()
                .find(|s| s.path == f)
                .map_or("", |s| s.why);
            println!("{f}\ttests: {}\t{why}", tests.join(", "));
        }
        return Ok(());
    }
    let have = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["mutants", "--version"])
        .output();
    if !have.is_ok_and(|o| o.status.success()) {
        bail!(
            "cargo xtask mutants needs cargo-mutants: cargo install --locked cargo-mutants \
             (tested with 27.1.0)"
        );
    }
    let out_root = crate::bench::target_dir(root)?.join("mutants");
    let mutants_target = out_root.join("target");
    let mut rows = Vec::new();
    for (file, tests) in &files {
        let out = out_root.join(file.replace('/', "_"));
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        eprintln!("cargo xtask mutants: {file} (tests: {})", tests.join(", "));
        let mut args: Vec<String> = vec![
            "mutants".into(),
            "--file".into(),
            file.clone(),
            "--no-shuffle".into(),
            "--cargo-test-arg=--lib".into(),
            "--cargo-test-arg=--tests".into(),
            // Above the tests' own hang guards (30 s of real time per guarded test,
            // 120 s in pve-firewall's fence tests; lab-core's watchdog, set to 60 s
            // below, ends a hung test process saying so), so that a hang is reported by
            // the tests and counts as caught.
            "--minimum-test-timeout=150".into(),
            "--output".into(),
            out.to_string_lossy().into_owned(),
        ];
        if o.iterate {
            args.push("--iterate".into());
        }
        if let Some((k, n)) = o.shard {
            // Every N-th mutant from the K-th on: a sample spread over the whole file.
            args.push(format!("--shard={k}/{n}"));
            args.push("--sharding=round-robin".into());
        }
        for t in tests {
            args.push("--test-package".into());
            args.push(t.clone());
        }
        if let Some(j) = o.jobs {
            args.push("--jobs".into());
            args.push(j.to_string());
        }
        if let Some(t) = o.timeout {
            args.push("--timeout".into());
            args.push(t.to_string());
        }
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(&args)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &mutants_target)
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_PROFILE_TEST_DEBUG", "0")
            .env("LABCTL_TEST_WATCHDOG_SECS", "60")
            .status()
            .context("running cargo mutants")?;
        // 0: all caught; 2: missed; 3: timeouts; anything else: it could not run.
        if !matches!(status.code(), Some(0 | 2 | 3)) {
            bail!(
                "cargo mutants on {file} failed ({status}); see {}",
                out.display()
            );
        }
        let path = out.join("mutants.out").join("outcomes.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let ledger_path = out.join("ledger.json");
        let mut ledger: Ledger = match std::fs::read_to_string(&ledger_path) {
            Ok(t) if o.iterate || o.shard.is_some() => serde_json::from_str(&t)
                .with_context(|| format!("{} is not a ledger", ledger_path.display()))?,
            _ => Ledger::new(),
        };
        let add = o.iterate || o.shard.is_some();
        if add {
            // Mutants named by an earlier run whose code has changed since (names carry
            // line and column) are gone; their successors were tested in this run.
            let current = list_mutants(root, file)?;
            ledger.retain(|name, _| current.contains(name));
        }
        record(&mut ledger, &value, add)?;
        std::fs::write(&ledger_path, serde_json::to_string_pretty(&ledger)?)
            .with_context(|| format!("writing {}", ledger_path.display()))?;
        rows.push((file.clone(), tally(&ledger)?));
    }
    print!("{}", table(&rows));
    if let Some(min) = o.min_score {
        let low: Vec<&str> = rows
            .iter()
            .filter(|(_, t)| t.score() < min)
            .map(|(f, _)| f.as_str())
            .collect();
        if !low.is_empty() {
            bail!("below {min} %: {}", low.join(", "));
        }
    }
    Ok(())
}

fn table(rows: &[(String, Tally)]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let w = rows.iter().map(|(f, _)| f.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        s,
        "{:w$}  {:>6}  {:>6}  {:>6}  {:>8}  {:>8}  {:>6}",
        "file", "viable", "caught", "missed", "timeouts", "unviable", "score"
    );
    for (f, t) in rows {
        let _ = writeln!(
            s,
            "{f:w$}  {:>6}  {:>6}  {:>6}  {:>8}  {:>8}  {:>5.1}%",
            t.viable(),
            t.caught,
            t.missed,
            t.timeout,
            t.unviable,
            t.score()
        );
    }
    for (f, t) in rows.iter().filter(|(_, t)| !t.missed_names.is_empty()) {
        let _ = writeln!(s, "\nmissed in {f}:");
        for m in &t.missed_names {
            let _ = writeln!(s, "  {m}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_in_both_spellings_and_bad_values_named() {
        let o = parse(&args(&[
            "--file",
            "a.rs",
            "--file=b.rs",
            "-j",
            "2",
            "--min-score=90",
            "--iterate",
        ]))
        .unwrap();
        assert!(o.iterate);
        assert_eq!(o.files, ["a.rs", "b.rs"]);
        assert_eq!((o.jobs, o.min_score), (Some(2), Some(90.0)));
        let e = parse(&args(&["--jobs", "0"])).unwrap_err().to_string();
        assert!(e.contains("--jobs") && e.contains("1 to 64"), "{e}");
        let e = parse(&args(&["--min-score", "101"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 to 100"), "{e}");
        assert_eq!(
            parse(&args(&["--shard", "1/4"])).unwrap().shard,
            Some((1, 4))
        );
        for bad in ["4/4", "1/0", "1", "a/4"] {
            let e = parse(&args(&["--shard", bad])).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("K/N"), "{e}");
        }
        let e = parse(&args(&["--bogus"])).unwrap_err().to_string();
        assert!(e.contains("--bogus") && e.contains("--file"), "{e}");
        assert!(parse(&args(&["--file"])).is_err());
    }

    #[test]
    fn every_safety_file_exists_and_names_its_test_packages() {
        let root = crate::project_root();
        for f in SAFETY_FILES {
            assert!(root.join(f.path).is_file(), "{} is gone", f.path);
            assert!(!f.tests.is_empty());
            for t in f.tests {
                assert!(
                    root.join("crates").join(t).join("Cargo.toml").is_file(),
                    "{}: no package {t}",
                    f.path
                );
            }
        }
    }

    #[test]
    fn a_file_off_the_list_uses_its_own_package_and_a_missing_one_is_refused() {
        let root = crate::project_root();
        let s = selected(&root, &args(&["crates/pve-vm/src/lib.rs"])).unwrap();
        assert_eq!(
            s,
            [("crates/pve-vm/src/lib.rs".to_owned(), args(&["pve-vm"]))]
        );
        let s = selected(&root, &args(&["./crates/lab-core/src/up.rs"])).unwrap();
        assert_eq!(s[0].1, args(&["lab-core"]));
        let e = selected(&root, &args(&["crates/nope.rs"])).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }

    #[test]
    fn outcomes_are_tallied_and_scored_over_viable_mutants() {
        let v = json!({"outcomes": [
            {"scenario": "Baseline", "summary": "Success"},
            {"scenario": {"Mutant": {"name": "a"}}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": {"name": "b"}}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": {"name": "c"}}, "summary": "MissedMutant"},
            {"scenario": {"Mutant": {"name": "d"}}, "summary": "Timeout"},
            {"scenario": {"Mutant": {"name": "e"}}, "summary": "Unviable"},
        ]});
        let mut ledger = Ledger::new();
        record(&mut ledger, &v, false).unwrap();
        let t = tally(&ledger).unwrap();
        assert_eq!((t.caught, t.missed, t.timeout, t.unviable), (2, 1, 1, 1));
        assert_eq!(t.viable(), 4);
        assert!((t.score() - 50.0).abs() < 1e-9);
        assert_eq!(t.missed_names, ["c"]);
        let out = table(&[("f.rs".into(), t)]);
        assert!(
            out.contains("50.0%") && out.contains("missed in f.rs:\n  c"),
            "{out}"
        );
        let mut weird = Ledger::new();
        record(
            &mut weird,
            &json!({"outcomes": [{"scenario": {"Mutant": {}}, "summary": "Weird"}]}),
            false,
        )
        .unwrap();
        assert!(tally(&weird).is_err());
        assert!(record(&mut weird, &json!({}), false).is_err());
    }

    #[test]
    fn an_iterate_run_keeps_what_earlier_runs_caught_and_a_full_run_starts_afresh() {
        let first = json!({"outcomes": [
            {"scenario": {"Mutant": {"name": "a"}}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": {"name": "b"}}, "summary": "MissedMutant"},
            {"scenario": {"Mutant": {"name": "c"}}, "summary": "Timeout"},
            {"scenario": {"Mutant": {"name": "u"}}, "summary": "Unviable"},
        ]});
        // --iterate re-tests only b and c: b is caught now, c still times out.
        let again = json!({"outcomes": [
            {"scenario": "Baseline", "summary": "Success"},
            {"scenario": {"Mutant": {"name": "b"}}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": {"name": "c"}}, "summary": "Timeout"},
        ]});
        let mut ledger = Ledger::new();
        record(&mut ledger, &first, false).unwrap();
        record(&mut ledger, &again, true).unwrap();
        let t = tally(&ledger).unwrap();
        assert_eq!((t.caught, t.missed, t.timeout, t.unviable), (2, 0, 1, 1));
        record(&mut ledger, &again, false).unwrap();
        let t = tally(&ledger).unwrap();
        assert_eq!((t.caught, t.timeout, t.unviable), (1, 1, 0));
    }
}
