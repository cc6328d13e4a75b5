//! `cargo xtask dist [--debug]`: the `labctl` release as a Debian package, a tarball with
//! the same files, and their SHA-256 sums, in `target/dist/`:
//!
//! - `labctl_<version>_amd64.deb` (built with `dpkg-deb --build --root-owner-group`, no
//!   cargo-deb needed) holding `/usr/bin/labctl`, one man page per command generated from
//!   the CLI definition (`labctl manpages`, clap_mangen) in `/usr/share/man/man1`, bash, zsh
//!   and fish completions in Debian's paths, the examples, the README and the licence
//!   (`/usr/share/doc/labctl/copyright`);
//! - `labctl-<version>-x86_64-linux.tar.gz`, the same tree under `labctl-<version>/`;
//! - `SHA256SUMS`.
//!
//! Then it checks what it made: unpacks the .deb with `dpkg-deb -x`, runs the packaged
//! `labctl --version`, renders the packaged man page with `man -l`, and reads
//! `dpkg-deb -I` (package, version, architecture, maintainer, description). `--debug`
//! packages the debug build the workspace tests use instead of a release build, packed with
//! fast compression (CI: the tests built it already, so nothing is compiled again).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "labctl";

/// What `cargo xtask dist` accepts.
struct Options {
    debug: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options { debug: false };
    for a in args {
        match a.as_str() {
            "--debug" => o.debug = true,
            other => bail!("cargo xtask dist: unknown argument '{other}' (allowed: --debug)"),
        }
    }
    Ok(o)
}

/// The workspace version from the root `Cargo.toml` (`[workspace.package] version`).
fn version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[workspace.package]";
            continue;
        }
        if inside {
            if let Some(v) = l.strip_prefix("version") {
                let v = v
                    .trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"');
                if !v.is_empty() {
                    return Ok(v.to_owned());
                }
            }
        }
    }
    bail!("no version in [workspace.package] of Cargo.toml")
}

fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("could not run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Debian's machine-readable copyright file for the workspace licence.
fn copyright() -> String {
    "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: labctl
Source: the labctl workspace (crates/labctl)

Files: *
Copyright: the labctl authors
License: MIT or Apache-2.0

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 THE SOFTWARE.
"
    .to_owned()
}

/// Total size of the files under `dir`, in KiB rounded up (`Installed-Size`).
fn size_kib(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            size_kib(&entry.path())? * 1024
        } else {
            meta.len()
        };
    }
    Ok(total.div_ceil(1024))
}

/// Builds the package tree under `root` (`usr/…`), from the built binary `bin`.
fn stage(project: &Path, bin: &Path, root: &Path) -> Result<()> {
    let usr = root.join("usr");
    let dest = usr.join("bin").join(PACKAGE);
    copy(bin, &dest)?;
    // Debug builds carry tens of MB of symbols a user does not need.
    run(Command::new("strip").arg(&dest))?;
    let labctl = |args: &[&str]| run(Command::new(&dest).args(args));

    let man = usr.join("share/man/man1");
    labctl(&["manpages", man.to_str().context("non-UTF-8 path")?])?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    if !pages.iter().any(|p| p.ends_with("labctl.1")) {
        bail!("`labctl manpages` wrote no labctl.1");
    }
    for p in &pages {
        // -n: no name or time stamp, so the same input packs to the same bytes.
        run(Command::new("gzip").args(["-9", "-n", "-f"]).arg(p))?;
    }

    for (shell, path) in [
        ("bash", "share/bash-completion/completions/labctl"),
        ("zsh", "share/zsh/vendor-completions/_labctl"),
        ("fish", "share/fish/vendor_completions.d/labctl.fish"),
    ] {
        write(&usr.join(path), &labctl(&["completions", shell])?)?;
    }

    let doc = usr.join("share/doc").join(PACKAGE);
    write(&doc.join("copyright"), &copyright())?;
    copy(&project.join("README.md"), &doc.join("README.md"))?;
    let mut examples: Vec<PathBuf> = std::fs::read_dir(project.join("examples"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    examples.sort();
    for e in examples.iter().filter(|e| e.is_file()) {
        let name = e.file_name().context("an example without a name")?;
        copy(e, &doc.join("examples").join(name))?;
    }
    Ok(())
}

fn control(version: &str, installed_kib: u64) -> String {
    format!(
        "\
Package: {PACKAGE}
Version: {version}
Architecture: amd64
Maintainer: labctl maintainers <labctl@localhost>
Installed-Size: {installed_kib}
Depends: libc6 (>= 2.34)
Section: admin
Priority: optional
Homepage: https://www.proxmox.com/en/proxmox-virtual-environment
Description: exam labs on Proxmox VE from the command line
 labctl clones a class of student machines from a template, starts them, waits
 for their guest agents, reads their addresses and fences them with the Proxmox
 VE firewall; after the exam it collects evidence, grades, and destroys exactly
 the lab. `labctl doctor` checks a cluster before the first exam and
 `labctl setup operator` creates a least-privilege API token.
"
    )
}

/// `cargo xtask dist`.
pub fn run_dist(project: &Path, args: &[String]) -> Result<()> {
    let o = options(args)?;
    let version = version(project)?;
    let target = crate::bench::target_dir(project)?;
    let profile = if o.debug { "debug" } else { "release" };
    let started = Instant::now();
    if o.debug {
        // The binary the workspace tests run (`CARGO_BIN_EXE_labctl`): after `cargo xtask
        // test` this builds nothing, where `cargo build -p labctl` would rebuild the
        // dependencies with other features.
        crate::cargo(&["test", "--workspace", "--locked", "--no-run"])?;
    } else {
        crate::cargo(&["build", "--locked", "--release", "-p", PACKAGE])?;
    }
    let bin = target.join(profile).join(PACKAGE);
    let built = started.elapsed();

    let dist = target.join("dist");
    let root = dist.join(format!("{PACKAGE}_{version}_amd64"));
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    stage(project, &bin, &root)?;
    let kib = size_kib(&root)?;
    write(&root.join("DEBIAN/control"), &control(&version, kib))?;
    let deb = dist.join(format!("{PACKAGE}_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        // A release is packed small; the CI's debug check only needs it fast.
        .arg(if o.debug { "-Zgzip" } else { "-Zxz" })
        .arg(if o.debug { "-z1" } else { "-z6" })
        .arg(&root)
        .arg(&deb))?;

    // The tarball: the same files (not the DEBIAN control directory).
    let tar_name = format!("{PACKAGE}-{version}-x86_64-linux.tar.gz");
    let tarball = dist.join(&tar_name);
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .args(["--owner=0", "--group=0", "--numeric-owner", "--sort=name"])
        .arg(format!("--transform=s,^usr,{PACKAGE}-{version}/usr,"))
        .arg("-C")
        .arg(&root)
        .arg("usr"))?;
    let deb_name = deb
        .file_name()
        .and_then(|n| n.to_str())
        .context("package name")?
        .to_owned();
    let sums = run(Command::new("sha256sum")
        .arg(&deb_name)
        .arg(&tar_name)
        .current_dir(&dist))?;
    write(&dist.join("SHA256SUMS"), &sums)?;

    check(&deb, &version)?;
    println!(
        "xtask dist: {} ({} KiB installed), {}, SHA256SUMS in {} (build {:.0} s, packaging and \
         checks {:.0} s)",
        deb.display(),
        kib,
        tar_name,
        dist.display(),
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    Ok(())
}

/// Unpacks the package and checks its binary, man page and metadata.
fn check(deb: &Path, version: &str) -> Result<()> {
    let info = run(Command::new("dpkg-deb").arg("-I").arg(deb))?;
    for want in [
        format!("Package: {PACKAGE}"),
        format!("Version: {version}"),
        "Architecture: amd64".to_owned(),
        "Maintainer: ".to_owned(),
        "Description: ".to_owned(),
    ] {
        if !info.contains(&want) {
            bail!("dpkg-deb -I {} lacks {want:?}:\n{info}", deb.display());
        }
    }
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    for want in [
        "root/root",
        "./usr/bin/labctl",
        "./usr/share/man/man1/labctl.1.gz",
        "./usr/share/man/man1/labctl-doctor.1.gz",
        "./usr/share/bash-completion/completions/labctl",
        "./usr/share/zsh/vendor-completions/_labctl",
        "./usr/share/fish/vendor_completions.d/labctl.fish",
        "./usr/share/doc/labctl/copyright",
        "./usr/share/doc/labctl/examples/exam.toml",
    ] {
        if !contents.contains(want) {
            bail!("{} lacks {want}:\n{contents}", deb.display());
        }
    }
    let unpacked = deb.with_extension("unpacked");
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    let shown = run(Command::new(unpacked.join("usr/bin/labctl")).arg("--version"))?;
    // `labctl 0.1.0 (<commit>)`: the version and the commit it was built from.
    let shown = shown.trim();
    let commit = shown
        .strip_prefix(&format!("{PACKAGE} {version} ("))
        .and_then(|rest| rest.strip_suffix(')'));
    if commit.is_none_or(|c| c.is_empty() || c.contains(char::is_whitespace)) {
        bail!(
            "the packaged labctl --version says {shown:?}, expected \"{PACKAGE} {version} (COMMIT)\""
        );
    }
    let page = run(Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(unpacked.join("usr/share/man/man1/labctl-doctor.1.gz"))
        .env("MANWIDTH", "80"))?;
    if !page.contains("labctl doctor") || !page.contains("--boot-test") {
        bail!("the packaged man page labctl-doctor(1) does not render:\n{page}");
    }
    // Looked up by name, as a user would, through MANPATH.
    let by_name = run(Command::new("man")
        .args(["-P", "cat", "labctl"])
        .env("MANPATH", unpacked.join("usr/share/man"))
        .env("MANWIDTH", "80"))?;
    if !by_name.contains("labctl") || !by_name.contains("SYNOPSIS") {
        bail!("`man labctl` with the package's MANPATH finds no page:\n{by_name}");
    }
    std::fs::remove_dir_all(&unpacked)?;
    println!(
        "xtask dist: checked {}: dpkg-deb -I metadata, contents, packaged labctl --version \
         ({}), man labctl-doctor and man labctl",
        deb.display(),
        shown.trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_workspace_version() {
        let v = version(&crate::project_root()).unwrap();
        assert!(v.split('.').count() == 3, "{v}");
    }

    #[test]
    fn unknown_arguments_are_refused() {
        assert!(options(&["--release".to_owned()]).is_err());
        assert!(options(&["--debug".to_owned()]).unwrap().debug);
    }

    #[test]
    fn control_has_the_fields_dpkg_needs() {
        let c = control("1.2.3", 42);
        for f in [
            "Package: labctl\n",
            "Version: 1.2.3\n",
            "Architecture: amd64\n",
            "Installed-Size: 42\n",
            "Maintainer: ",
            "Description: ",
        ] {
            assert!(c.contains(f), "{f}");
        }
        assert!(c.ends_with('\n'));
    }
}
