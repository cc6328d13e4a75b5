//! Project automation, run as `cargo xtask <command>` (see `cargo xtask help`).
//!
//! The only entry point for CI and for developers: `.ci/run` calls `cargo xtask ci`,
//! the README's test command is `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod bench;
mod dist;
mod fuzz;
mod mutants;
mod package;
mod schema;
mod soak;

const HELP: &str = "\
cargo xtask <command>

Commands:
  ci      fmt check, schema extract check, clippy (all targets, -D warnings), tests,
          the packaged crates used from outside, a small fault soak, rustdoc (warnings
          denied)
  test    run every test of the workspace (unit, httpmock, simulator, end-to-end)
  schema  regenerate crates/pve-schema/schema/extract.json from the full PVE API schema
          (--check: fail if the committed extract is out of date; --schema PATH)
  bench   build labctl-bench in release mode and run it: schema checks, firewall oracle,
          simulator over HTTP, lab bring-up, memory; table on stdout, JSON in
          target/bench/results.json (--quick: small counts; --only GROUP; --json PATH);
          group exam (lab up/down of 10-500 students vs the simulator's bound) writes
          target/bench/report.md and report.json
  soak    repeated labctl lab up + down against pve-sim with faults, expiring tickets,
          a racing client and SIGKILLs; checks the cluster state after every run
          (--runs R, --vms N, --fault-rate F, --seed S, --time-scale X); prints
          soak runs=R ok=K and fails if a run failed
  fuzz    run the cargo-fuzz targets of fuzz/ one after another on the nightly toolchain
          (--time S: seconds per target, default 60; --runs N: at most N inputs each;
          --target T: only T, repeatable); see fuzz/README.md
  mutants mutation testing (cargo-mutants) of the files that decide safety, each with the
          test packages that exercise it; prints viable, caught, missed, timeouts and the
          score per file (--file PATH: only these; --list; --iterate: only the mutants
          earlier runs did not catch; --shard K/N: every N-th mutant from the K-th, a
          sample; --jobs N; --timeout S; --min-score P: fail below P %); output in
          target/mutants/; see CONTRIBUTING.md
  package package every library crate and build + run an outside crate that depends on
          them by version ([patch.crates-io] to the unpacked .crate files), offline
  dist    build labctl in release mode (--debug: the debug build) and package it in
          target/dist/: labctl_<version>_amd64.deb (binary, man pages, completions,
          examples, licence), a tarball of the same files, SHA256SUMS; then unpack the
          .deb and check its labctl --version, man page and dpkg-deb -I metadata
  fmt     format the whole workspace
  help    print this text
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "help".to_owned());
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "ci" => ci(),
        "test" => test(&rest),
        "schema" => schema::run(&project_root(), &rest),
        "bench" => bench::run(&project_root(), &rest),
        "fuzz" => fuzz::run(&project_root(), &rest),
        "soak" => soak::run(&project_root(), &rest),
        "mutants" => mutants::run(&project_root(), &rest),
        "package" => package::run(&project_root(), &rest),
        "dist" => dist::run_dist(&project_root(), &rest),
        "fmt" => cargo(&["fmt", "--all"]),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown xtask command '{other}'\n\n{HELP}"),
    }
}

fn ci() -> Result<()> {
    step("fmt", || cargo(&["fmt", "--all", "--", "--check"]))?;
    step("schema extract up to date", || {
        schema::run(&project_root(), &["--check".to_owned()])
    })?;
    step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("test", || test(&[]))?;
    // The library crates as a registry would receive them, used by an outside crate by
    // version (issue 23).
    step("package", || package::run(&project_root(), &[]))?;
    // A small fault soak (issue 10): 2 runs of 10 students with 10 % faults, a racing
    // client, expiring tickets and kills, each checked against the simulator.
    step("soak", || {
        soak::run(
            &project_root(),
            &[
                "--debug",
                "--runs",
                "2",
                "--vms",
                "10",
                "--fault-rate",
                "0.1",
            ]
            .map(String::from),
        )
    })?;
    step("doc", || {
        cargo_env(
            &["doc", "--workspace", "--no-deps", "--locked"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    println!("xtask ci: all steps passed");
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    let mut args = vec!["test", "--workspace", "--locked"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> xtask: {name}");
    f().with_context(|| format!("xtask step '{name}' failed"))
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(project_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} exited with {status}", args.join(" "));
    }
    Ok(())
}

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
