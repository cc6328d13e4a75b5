//! `cargo xtask bench [--quick] [--only GROUP]… [--json PATH]`: build `labctl-bench` in
//! release mode (and `labctl`, which its freeze group runs), run it, print its table and keep its JSON in
//! `<target dir>/bench/results.json`, and the exam report in
//! `<target dir>/bench/report.md` and `report.json`. The benchmarks measure; they never
//! fail on a figure (see `bench/src/main.rs` for the groups).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Run the command with the arguments after `bench` (passed on to `labctl-bench`).
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut bench_args: Vec<String> = args.to_vec();
    let out = target_dir(root)?.join("bench");
    if !has_flag(args, "--json") {
        bench_args.push("--json".to_owned());
        bench_args.push(out.join("results.json").to_string_lossy().into_owned());
    }
    if !has_flag(args, "--report-dir") {
        bench_args.push("--report-dir".to_owned());
        bench_args.push(out.to_string_lossy().into_owned());
    }
    // The freeze group runs the labctl binary it finds beside its own executable.
    crate::cargo(&["build", "--release", "--quiet", "-p", "labctl"])?;
    let mut cargo_args = vec!["run", "--release", "--quiet", "-p", "labctl-bench", "--"];
    cargo_args.extend(bench_args.iter().map(String::as_str));
    crate::cargo(&cargo_args)
}

/// Did the user give `flag` (`--flag VALUE` or `--flag=VALUE`)?
fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

/// The workspace's target directory as cargo resolves it (`CARGO_TARGET_DIR`,
/// `build.target-dir`, or `<root>/target`).
pub(crate) fn target_dir(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("could not run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    target_dir_of(&output.stdout)
}

/// `target_directory` of a `cargo metadata` answer.
fn target_dir_of(metadata: &[u8]) -> Result<PathBuf> {
    let value: serde_json::Value =
        serde_json::from_slice(metadata).context("cargo metadata printed invalid JSON")?;
    value["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_both_spellings() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_flag(&args(&["--quick", "--json", "x.json"]), "--json"));
        assert!(has_flag(&args(&["--json=x.json"]), "--json"));
        assert!(!has_flag(&args(&["--quick", "--only", "http"]), "--json"));
        assert!(!has_flag(&args(&["--jsonx=1"]), "--json"));
        assert!(has_flag(&args(&["--report-dir=/tmp/r"]), "--report-dir"));
    }

    #[test]
    fn target_directory_is_read_from_metadata() {
        let meta = br#"{"packages":[],"target_directory":"/w/target","version":1}"#;
        assert_eq!(target_dir_of(meta).unwrap(), PathBuf::from("/w/target"));
        assert!(target_dir_of(br#"{"version":1}"#).is_err());
        assert!(target_dir_of(b"not json").is_err());
    }
}
