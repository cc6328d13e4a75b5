//! `cargo xtask soak [--debug] [--runs R] [--vms N] [--fault-rate F] [--seed S] [--time-scale X]`:
//! build `labctl` and `labctl-bench` in release mode (`--debug`: the debug build, as CI has
//! it already), then run `labctl-bench soak` with
//! the `labctl` binary it should drive (the simulator lives in `labctl-bench`, so xtask
//! stays free of it). Exits with `labctl-bench`'s status: non-zero when a run failed.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Run the command with the arguments after `soak` (passed on to `labctl-bench soak`).
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    if args
        .iter()
        .any(|a| a == "--labctl" || a.starts_with("--labctl="))
    {
        bail!("cargo xtask soak builds and passes --labctl itself; run labctl-bench soak directly to choose another binary");
    }
    let debug = args.iter().any(|a| a == "--debug");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--debug").collect();
    let mut build = vec!["build", "--quiet", "-p", "labctl", "-p", "labctl-bench"];
    if !debug {
        build.push("--release");
    }
    crate::cargo(&build)?;
    let release = crate::bench::target_dir(root)?.join(if debug { "debug" } else { "release" });
    let bench = release.join(exe("labctl-bench"));
    let labctl = release.join(exe("labctl"));
    let status = Command::new(&bench)
        .arg("soak")
        .arg("--labctl")
        .arg(&labctl)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("could not run {}", bench.display()))?;
    if !status.success() {
        // labctl-bench printed the failed runs and the summary last; keep it last.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// A binary's file name on this platform.
fn exe(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_labctl_is_refused_before_building() {
        let e = run(
            Path::new("/nonexistent"),
            &["--labctl=/bin/true".to_owned()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("builds and passes --labctl"), "{e}");
    }
}
