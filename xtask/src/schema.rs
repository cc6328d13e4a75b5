//! `cargo xtask schema [--check] [--schema PATH]`: regenerate (or verify) the committed
//! extract `crates/pve-schema/schema/extract.json` from the full PVE API schema and
//! `crates/pve-schema/schema/endpoints.txt`. The generator itself lives in `pve-schema`
//! (`pve_schema::build_extract`), so the crate's tests can prove the extract is current.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask schema [--check] [--schema PATH]";

/// Run the command with the arguments after `schema`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut check = false;
    let mut schema_path = root.join("../shared/reference/pve-api-schema.json");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--schema" => {
                let value = iter
                    .next()
                    .with_context(|| format!("--schema needs a path\n{USAGE}"))?;
                schema_path = PathBuf::from(value);
            }
            other => bail!("unknown argument '{other}' for xtask schema\n{USAGE}"),
        }
    }

    let dir = root.join("crates/pve-schema/schema");
    let list_path = dir.join("endpoints.txt");
    let extract_path = dir.join("extract.json");

    let full_text = std::fs::read_to_string(&schema_path).with_context(|| {
        format!(
            "could not read the full PVE API schema at {} (pass --schema PATH)",
            schema_path.display()
        )
    })?;
    let full: serde_json::Value = serde_json::from_str(&full_text)
        .with_context(|| format!("{} is not valid JSON", schema_path.display()))?;
    let list = std::fs::read_to_string(&list_path)
        .with_context(|| format!("could not read {}", list_path.display()))?;
    let fresh = pve_schema::build_extract(&full, &list)
        .with_context(|| format!("building the extract from {}", list_path.display()))?;
    let endpoints = pve_schema::parse_endpoint_list(&list)?.len();

    if check {
        let committed = std::fs::read_to_string(&extract_path).unwrap_or_default();
        if committed != fresh {
            bail!(
                "{} is out of date with {} and {}; run `cargo xtask schema` and commit the result",
                extract_path.display(),
                list_path.display(),
                schema_path.display()
            );
        }
        println!(
            "xtask schema: {} is up to date ({endpoints} endpoints)",
            extract_path.display()
        );
    } else {
        std::fs::write(&extract_path, &fresh)
            .with_context(|| format!("could not write {}", extract_path.display()))?;
        println!(
            "xtask schema: wrote {} ({endpoints} endpoints, {} bytes)",
            extract_path.display(),
            fresh.len()
        );
    }
    Ok(())
}
