//! `cargo xtask fuzz [--time S] [--runs N] [--target T]...`: run the cargo-fuzz targets of
//! `fuzz/` one after another (never in parallel: CI machines have two cores), each for `S`
//! seconds (default 60) or `N` inputs, whichever comes first, and print one summary line per
//! target. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); see
//! `fuzz/README.md` for reproducing a crash.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask fuzz [--time SECONDS] [--runs N] [--target NAME]...";

/// Default seconds per target.
const DEFAULT_TIME: u64 = 60;

/// What one target did.
struct Outcome {
    target: String,
    runs: Option<u64>,
    seconds: Option<u64>,
    ok: bool,
}

/// Run the command with the arguments after `fuzz`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut time = DEFAULT_TIME;
    let mut runs: Option<u64> = None;
    let mut wanted: Vec<String> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--time" => time = positive("--time", &value("--time")?)?,
            "--runs" => runs = Some(positive("--runs", &value("--runs")?)?),
            "--target" => wanted.push(value("--target")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument '{other}' for xtask fuzz\n{USAGE}"),
        }
    }

    let all = list_targets(root)?;
    for t in &wanted {
        if !all.contains(t) {
            bail!(
                "unknown fuzz target '{t}'; the targets are: {}",
                all.join(", ")
            );
        }
    }
    let targets = if wanted.is_empty() { all } else { wanted };

    let mut outcomes = Vec::new();
    for target in &targets {
        println!("==> xtask fuzz: {target} (up to {time} s)");
        outcomes.push(run_target(root, target, time, runs)?);
    }
    println!();
    for o in &outcomes {
        println!(
            "fuzz target={} runs={} seconds={} result={}",
            o.target,
            o.runs.map_or("?".to_owned(), |r| r.to_string()),
            o.seconds.map_or("?".to_owned(), |s| s.to_string()),
            if o.ok { "ok" } else { "CRASH" }
        );
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzz targets crashed: {} (inputs are in fuzz/artifacts/<target>/; see fuzz/README.md)",
            crashed.join(", ")
        );
    }
    Ok(())
}

fn positive(flag: &str, value: &str) -> Result<u64> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{flag} {value:?} is not a positive whole number\n{USAGE}"),
    }
}

/// `cargo +nightly fuzz …` in the project root, without the stable toolchain's overrides
/// that `cargo xtask` put into the environment.
fn cargo_fuzz(root: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

fn list_targets(root: &Path) -> Result<Vec<String>> {
    let out = cargo_fuzz(root).arg("list").output().context(
        "could not run `rustup run nightly cargo fuzz list`; install rustup's nightly toolchain \
         and cargo-fuzz (`cargo install cargo-fuzz`)",
    )?;
    if !out.status.success() {
        bail!(
            "`cargo +nightly fuzz list` failed ({}): {}\ninstall the nightly toolchain \
             (`rustup toolchain install nightly`) and cargo-fuzz (`cargo install cargo-fuzz`)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("fuzz/ has no targets");
    }
    Ok(targets)
}

fn run_target(root: &Path, target: &str, time: u64, runs: Option<u64>) -> Result<Outcome> {
    let mut cmd = cargo_fuzz(root);
    cmd.args(["run", "-O", target]);
    // Committed seeds (example answers) start the search from valid inputs; new inputs go
    // into the first directory, the uncommitted corpus.
    let seeds = root.join("fuzz/seeds").join(target);
    if seeds.is_dir() {
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("could not create {}", corpus.display()))?;
        cmd.arg(&corpus).arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={time}"))
        .arg("-print_final_stats=1");
    if let Some(n) = runs {
        cmd.arg(format!("-runs={n}"));
    }
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start the fuzz target {target}"))?;
    let mut outcome = Outcome {
        target: target.to_owned(),
        runs: None,
        seconds: None,
        ok: false,
    };
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading the fuzzer's output")?;
            eprintln!("{line}");
            if let Some((n, s)) = parse_done(&line) {
                outcome.runs = Some(n);
                outcome.seconds = Some(s);
            }
        }
    }
    let status = child.wait().context("waiting for the fuzzer")?;
    outcome.ok = status.success();
    Ok(outcome)
}

/// libFuzzer's last line: `Done 1000000 runs in 12 second(s)`.
fn parse_done(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("Done ")?;
    let (runs, rest) = rest.split_once(" runs in ")?;
    let secs = rest.split_whitespace().next()?;
    Some((runs.parse().ok()?, secs.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzers_summary_line() {
        assert_eq!(
            parse_done("Done 1000000 runs in 12 second(s)"),
            Some((1_000_000, 12))
        );
        assert_eq!(parse_done("#1000 NEW cov: 12"), None);
        assert_eq!(parse_done("Done x runs in 1 second(s)"), None);
    }

    #[test]
    fn flags_need_positive_numbers() {
        assert_eq!(positive("--time", "30").unwrap(), 30);
        for bad in ["0", "-1", "ten", ""] {
            let e = positive("--time", bad).unwrap_err().to_string();
            assert!(
                e.contains("--time") && e.contains(&format!("{bad:?}")),
                "{e}"
            );
        }
    }
}
