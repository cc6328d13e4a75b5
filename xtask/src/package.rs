//! `cargo xtask package`: package every library crate (`cargo package`, as a registry
//! would receive it) and build and run an outside tool that depends on them **by version**
//! — `[patch.crates-io]` points each name at its unpacked `.crate`, so nothing of the
//! workspace's files is used: no `workspace = true` inheritance, no path into a sibling
//! crate, no file outside the package. The tool (`xtask/outside/main.rs`) is the three
//! small programs a new user writes from the READMEs, run against an in-process pve-sim.
//!
//! Offline: the registry crates come from cargo's cache (the workspace's `Cargo.lock` is
//! copied, so the versions are the ones the workspace was tested with).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The library crates, in no particular order (cargo packages them in dependency order).
pub const LIBRARIES: &[&str] = &[
    "lab-types",
    "pve-auth",
    "pve-schema",
    "pve-vm",
    "pve-net",
    "pve-agent",
    "pve-access",
    "pve-firewall",
    "pve-sdn",
    "pve-sim",
    "fosscloud-api",
    "fosscloud-sim",
    "lab-core",
    "lab-proxmox",
    "lab-grade",
];

/// The outside tool's direct dependencies on the packaged crates (with features).
const OUTSIDE_DEPS: &[(&str, &str)] = &[
    ("pve-vm", ""),
    ("pve-net", ""),
    ("pve-firewall", ""),
    ("pve-sim", ""),
    ("lab-core", r#", features = ["fake"]"#),
    ("lab-proxmox", ""),
];

/// Run the command.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("cargo xtask package takes no arguments (got {a:?})");
    }
    let target = crate::bench::target_dir(root)?;
    let version = workspace_version(root)?;
    let mut package = vec!["package", "--no-verify", "--allow-dirty"];
    for l in LIBRARIES {
        package.push("-p");
        package.push(l);
    }
    crate::cargo(&package)?;

    let work = target.join("outside");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let unpacked = work.join("crates");
    std::fs::create_dir_all(&unpacked)?;
    for l in LIBRARIES {
        let file = target.join("package").join(format!("{l}-{version}.crate"));
        // `-m`: the files get the time of unpacking, not the fixed time cargo writes
        // into packages; else a rebuild after a change would trust an older build of the
        // same path as fresh.
        let status = Command::new("tar")
            .arg("-xzmf")
            .arg(&file)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("could not unpack {}", file.display());
        }
    }
    let tool = work.join("tool");
    std::fs::create_dir_all(tool.join("src"))?;
    std::fs::copy(root.join("xtask/outside/main.rs"), tool.join("src/main.rs"))
        .context("copying xtask/outside/main.rs")?;
    std::fs::copy(root.join("Cargo.lock"), tool.join("Cargo.lock"))
        .context("copying Cargo.lock")?;
    std::fs::write(tool.join("Cargo.toml"), manifest(&version, &unpacked))?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["run", "--offline", "--quiet"])
        .current_dir(&tool)
        // The workspace's target: the registry crates, at the locked versions, are built
        // already; only the packaged crates (other paths) are compiled again.
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("running cargo for the outside tool")?;
    if !status.success() {
        bail!(
            "the outside tool did not build or run against the packaged crates ({status}); \
             its sources are in {}",
            tool.display()
        );
    }
    println!(
        "packaged {} library crates; an outside crate built against them by version and ran",
        LIBRARIES.len()
    );
    Ok(())
}

/// The outside tool's `Cargo.toml`: its own workspace, dependencies by version, patched
/// to the unpacked packages.
fn manifest(version: &str, unpacked: &Path) -> String {
    let mut s = String::from(
        "[package]\nname = \"outside\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [workspace]\n\n[dependencies]\nanyhow = \"1\"\n\
         tokio = { version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }\n",
    );
    for (name, extra) in OUTSIDE_DEPS {
        s.push_str(&format!("{name} = {{ version = \"{version}\"{extra} }}\n"));
    }
    s.push_str("\n[patch.crates-io]\n");
    for l in LIBRARIES {
        let dir: PathBuf = unpacked.join(format!("{l}-{version}"));
        s.push_str(&format!(
            "{l} = {{ path = {:?} }}\n",
            dir.display().to_string()
        ));
    }
    s
}

/// `version` of `[workspace.package]`.
fn workspace_version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package {
            if let Some(v) = line.strip_prefix("version") {
                let v = v
                    .trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"');
                return Ok(v.to_owned());
            }
        }
    }
    bail!("Cargo.toml has no [workspace.package] version")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_is_a_workspace_crate_with_a_version_on_its_dependency() {
        let root = crate::project_root();
        let ws = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        for l in LIBRARIES {
            assert!(
                root.join("crates").join(l).join("src/lib.rs").is_file(),
                "{l}"
            );
            assert!(
                ws.contains(&format!("{l} = {{ path = \"crates/{l}\", version = ")),
                "{l}: a workspace dependency without a version cannot be packaged"
            );
        }
        assert_eq!(workspace_version(&root).unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_library_crate_of_the_workspace_is_packaged() {
        let root = crate::project_root();
        let mut found: Vec<String> = std::fs::read_dir(root.join("crates"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("src/lib.rs").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        let mut listed: Vec<String> = LIBRARIES.iter().map(|l| (*l).to_owned()).collect();
        listed.sort();
        assert_eq!(
            found, listed,
            "a library crate added to crates/ must be packaged too"
        );
    }

    #[test]
    fn the_outside_manifest_patches_every_library_by_version() {
        let m = manifest("0.1.0", Path::new("/x/crates"));
        assert!(
            m.contains("lab-core = { version = \"0.1.0\", features = [\"fake\"] }"),
            "{m}"
        );
        for l in LIBRARIES {
            assert!(
                m.contains(&format!("{l} = {{ path = \"/x/crates/{l}-0.1.0\" }}")),
                "{m}"
            );
        }
        assert!(m.contains("[workspace]"), "its own workspace, not ours");
    }
}
