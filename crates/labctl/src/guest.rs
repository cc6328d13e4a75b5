//! `labctl vm exec|file-read|file-write|snapshot|link`: inside a VM through its guest agent
//! (`pve-agent`), and the snapshot and link state of a guest (`pve-vm`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use pve_agent::{AgentApi, AgentOptions, Exec, ExecOutput};
use pve_vm::{Guest, Snapshot, SnapshotName, SnapshotOptions, VmApi, VmId};
use serde::Serialize;

use crate::fail;
use crate::output::{or_dash, print_json, Format, Sheet};

/// `vm exec --help`: the argv rule.
pub const EXEC_ABOUT: &str = "\
Run a command in a VM through its QEMU guest agent and exit with the command's exit code.

The guest's stdout goes to stdout, its stderr to stderr. With -o json one object is printed
instead: {\"vmid\", \"argv\", \"exit_code\", \"stdout\", \"stderr\", \"truncated\", \"started\",
\"finished\"} (times in UTC, RFC 3339); the exit code is the guest's either way.

The argv rule: the agent runs no shell. Everything after `--` is the program and its
arguments, one word each, passed as they are: `-- ip -j addr` runs `ip` with `-j` and
`addr`. Quoting the whole command as one word (`-- 'ip -j addr'`) asks for a program named
`ip -j addr` and is refused. For pipes, redirections or variables run a shell yourself:
`-- /bin/sh -c 'ip -j addr | head'`.

If the agent does not answer (not configured, VM stopped, agent not running or hung), labctl
exits 1 with PVE's text within the timeout.";

/// `vm exec` examples.
pub const EXEC_HELP: &str = "\
Examples:
  labctl vm exec 5000 -- ip -j -d addr
  labctl vm exec 5000 -- cat /etc/hostname
  labctl vm exec 5000 --timeout 10 -- ping -c 1 -W 2 10.0.0.1
  labctl vm exec 5000 -- /bin/sh -c 'ip -j route | head -c 200'
  labctl vm exec 5000 --stdin answers.txt -- sha256sum
  labctl -o json vm exec 5000 -- hostname";

/// `vm exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The VM id (100-999999999).
    #[arg(value_name = "VMID")]
    vmid: String,
    /// Seconds to wait for the command, from sending it to reading its result.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// A file whose content is the command's standard input (text, at most 64 KiB; `-`
    /// reads labctl's own stdin).
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,
    /// The program and its arguments, after `--`, one word each (no shell).
    #[arg(value_name = "ARGV", required = true, num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    argv: Vec<String>,
}

/// `vm file-read`.
#[derive(Debug, Args)]
pub struct FileReadArgs {
    /// The VM id.
    #[arg(value_name = "VMID")]
    vmid: String,
    /// The file in the guest, e.g. /etc/hostname.
    #[arg(value_name = "PATH")]
    path: String,
    /// Write the bytes to this file instead of stdout (`-` is stdout); its directory must
    /// exist.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `vm file-write`.
#[derive(Debug, Args)]
pub struct FileWriteArgs {
    /// The VM id.
    #[arg(value_name = "VMID")]
    vmid: String,
    /// The file in the guest (created or replaced).
    #[arg(value_name = "PATH")]
    path: String,
    /// The local file to copy (`-` for stdin); at most 61440 bytes of ASCII text or 46080
    /// bytes of anything else.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
}

/// What `vm snapshot` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotAction {
    /// Take a snapshot (NAME defaults to snap-YYYYMMDD-HHMMSS, the UTC time).
    Create,
    /// List the snapshots.
    List,
    /// Return the guest to a snapshot (disks, config, RAM if saved); later changes are lost.
    Rollback,
    /// Delete a snapshot.
    Delete,
}

/// `vm snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The guest id.
    #[arg(value_name = "VMID")]
    vmid: String,
    /// create, list, rollback or delete.
    #[arg(value_enum, value_name = "ACTION")]
    action: SnapshotAction,
    /// The snapshot (a letter, then letters, digits, '_' or '-'; at most 40).
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// create: include the RAM, so a rollback resumes the running VM.
    #[arg(long)]
    vmstate: bool,
    /// create: a description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// rollback: start the VM afterwards (a snapshot with RAM starts it anyway).
    #[arg(long)]
    start: bool,
    /// create, rollback, delete: only show what would happen.
    #[arg(long)]
    dry_run: bool,
    /// rollback, delete: do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Link state of `vm link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkState {
    /// Plug the virtual cable in (`link_down` removed).
    Up,
    /// Pull the virtual cable (`link_down=1`), applied live.
    Down,
}

/// `vm link`.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The guest id.
    #[arg(value_name = "VMID")]
    vmid: String,
    /// up or down.
    #[arg(value_enum, value_name = "STATE")]
    state: LinkState,
    /// The network device.
    #[arg(long, value_name = "NET", default_value = "net0")]
    net: String,
    /// Only show what would happen.
    #[arg(long)]
    dry_run: bool,
    /// down: do not ask (up asks nothing).
    #[arg(long, short = 'y')]
    yes: bool,
}

fn vmid(s: &str) -> anyhow::Result<VmId> {
    // The error names the text as typed, also past u32 (exit 2: a usage error).
    Ok(s.parse::<VmId>()?)
}

impl ExecArgs {
    /// Checks what needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        format.not_csv("vm exec")?;
        vmid(&self.vmid)?;
        Exec::new(self.argv.clone()).check().map_err(agent_error)?;
        Ok(())
    }
}

impl FileReadArgs {
    /// Checks what needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        format.not_csv("vm file-read")?;
        vmid(&self.vmid)?;
        Ok(())
    }
}

impl FileWriteArgs {
    /// Checks what needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        format.not_csv("vm file-write")?;
        vmid(&self.vmid)?;
        Ok(())
    }
}

impl SnapshotArgs {
    /// Checks what needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        vmid(&self.vmid)?;
        if self.action != SnapshotAction::List {
            format.not_csv("vm snapshot")?;
        }
        if let Some(n) = &self.name {
            SnapshotName::new(n.clone())?;
        }
        let needs_name = matches!(
            self.action,
            SnapshotAction::Rollback | SnapshotAction::Delete
        );
        if needs_name && self.name.is_none() {
            return Err(fail::usage(format!(
                "vm snapshot {} needs the snapshot's NAME (see `labctl vm snapshot {} list`)",
                self.action_name(),
                self.vmid
            )));
        }
        let misplaced = [
            (self.vmstate, "--vmstate", SnapshotAction::Create),
            (
                self.description.is_some(),
                "--description",
                SnapshotAction::Create,
            ),
            (self.start, "--start", SnapshotAction::Rollback),
        ];
        for (given, flag, action) in misplaced {
            if given && self.action != action {
                return Err(fail::usage(format!(
                    "{flag} belongs to `vm snapshot VMID {}`",
                    action_name(action)
                )));
            }
        }
        if self.action == SnapshotAction::List {
            if let Some(n) = &self.name {
                return Err(fail::usage(format!(
                    "vm snapshot {} list takes no NAME (got {n:?}); it lists all snapshots",
                    self.vmid
                )));
            }
            if self.dry_run {
                return Err(fail::usage(
                    "--dry-run belongs to `vm snapshot VMID create|rollback|delete`; list \
                     changes nothing",
                ));
            }
        }
        if self.yes && matches!(self.action, SnapshotAction::List | SnapshotAction::Create) {
            return Err(fail::usage(format!(
                "--yes belongs to `vm snapshot VMID rollback|delete`; {} asks nothing",
                self.action_name()
            )));
        }
        Ok(())
    }

    fn action_name(&self) -> &'static str {
        action_name(self.action)
    }
}

fn action_name(a: SnapshotAction) -> &'static str {
    match a {
        SnapshotAction::Create => "create",
        SnapshotAction::List => "list",
        SnapshotAction::Rollback => "rollback",
        SnapshotAction::Delete => "delete",
    }
}

impl LinkArgs {
    /// Checks what needs no cluster.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        format.not_csv("vm link")?;
        vmid(&self.vmid)?;
        let ok = self
            .net
            .strip_prefix("net")
            .and_then(|i| i.parse::<u32>().ok())
            .is_some_and(|i| self.net == format!("net{i}"));
        if !ok {
            return Err(fail::usage(format!(
                "invalid --net {:?}: a network device is named net0, net1, …",
                self.net
            )));
        }
        Ok(())
    }
}

/// An agent error as labctl reports it: input errors are usage errors (exit 2); errors of
/// `pve-vm` and below keep their type so their exit codes apply (permission 3, not found
/// 4); everything else (lost result, refusal, unfinished) is exit 1.
fn agent_error(e: pve_agent::Error) -> anyhow::Error {
    match e {
        pve_agent::Error::Vm(v) => anyhow::Error::new(v),
        e @ pve_agent::Error::InvalidInput { .. } => fail::usage(e.to_string()),
        // As a shell reports it: 127 not found, 126 found but not executable.
        pve_agent::Error::SpawnFailed {
            program,
            not_found,
            detail,
            ..
        } => fail::with_code(
            if not_found { 127 } else { 126 },
            format!(
                "{program}: {} in the guest (the agent runs no shell; it said: {detail})",
                if not_found {
                    "command not found"
                } else {
                    "cannot be executed"
                }
            ),
        ),
        other => anyhow::Error::new(other),
    }
}

/// The agent API over `vms`, its waits matched to `LABCTL_TIME_SCALE`.
pub(crate) fn agent_api(vms: &VmApi) -> anyhow::Result<AgentApi> {
    let options = match crate::connect::time_scale()? {
        Some(f) => AgentOptions::default().scaled(f),
        None => AgentOptions::default(),
    };
    Ok(AgentApi::with_options(vms.clone(), options))
}

/// UTC time as RFC 3339 with seconds (`2026-07-01T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    lab_grade::time::rfc3339(t)
}

/// The bytes of local input file `path` given as `flag` (`-` is stdin). A file that
/// cannot be read is bad input (exit 2), named with the reason.
fn read_input(flag: &str, path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        return Ok(buf);
    }
    if path.is_dir() {
        return Err(fail::usage(format!(
            "{flag} {}: is a directory; give a file (or - for stdin)",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| {
        fail::usage(format!(
            "{flag} {}: cannot read it: {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

/// An I/O error's reason without the `(os error N)` tail.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// The guest's exit code as labctl's: 0–255 as is, anything else (Windows codes, negative
/// values) as 1 when its low byte would read as success.
fn exit_byte(code: i64) -> u8 {
    match u8::try_from(code) {
        Ok(c) => c,
        Err(_) => match (code & 0xff) as u8 {
            0 => 1,
            c => c,
        },
    }
}

/// What `vm exec -o json` prints.
#[derive(Debug, Serialize)]
struct ExecView<'a> {
    vmid: u32,
    argv: &'a [String],
    exit_code: i64,
    stdout: &'a str,
    stderr: &'a str,
    truncated: Truncated,
    started: String,
    finished: String,
}

#[derive(Debug, Serialize)]
struct Truncated {
    stdout: bool,
    stderr: bool,
}

fn exec_view(vmid: VmId, out: &ExecOutput) -> ExecView<'_> {
    ExecView {
        vmid: vmid.get(),
        argv: &out.argv,
        exit_code: out.code(),
        stdout: &out.stdout,
        stderr: &out.stderr,
        truncated: Truncated {
            stdout: out.out_truncated,
            stderr: out.err_truncated,
        },
        started: rfc3339(out.started),
        finished: rfc3339(out.finished),
    }
}

/// `vm exec`.
pub async fn exec(vms: &VmApi, a: &ExecArgs, format: Format) -> anyhow::Result<()> {
    let id = vmid(&a.vmid)?;
    let mut cmd = Exec::new(a.argv.clone()).timeout(Duration::from_secs(a.timeout));
    if let Some(path) = &a.stdin {
        let data = read_input("--stdin", path)?;
        let text = String::from_utf8(data).map_err(|_| {
            fail::usage(format!(
                "--stdin {}: the guest agent takes text as stdin (input-data); this file is \
                 not UTF-8. Copy it with `vm file-write` and redirect it with a shell instead",
                path.display()
            ))
        })?;
        cmd = cmd.stdin(text);
    }
    cmd.check().map_err(agent_error)?;
    let guest = vms.guest(id).await?;
    let agent = agent_api(vms)?;
    let out = match agent.exec(&guest, &cmd).await {
        Ok(out) => out,
        // Its message names the program already.
        Err(e @ pve_agent::Error::SpawnFailed { .. }) => return Err(agent_error(e)),
        Err(e) => {
            return Err(agent_error(e)).with_context(|| format!("vm exec {id} {}", cmd.display()))
        }
    };
    match format {
        Format::Json => print_json(&exec_view(id, &out))?,
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(out.stdout.as_bytes())?;
            stdout.flush()?;
            let mut stderr = std::io::stderr().lock();
            stderr.write_all(out.stderr.as_bytes())?;
            if out.out_truncated || out.err_truncated {
                writeln!(
                    stderr,
                    "labctl: note: the guest agent cut the command's {} at its output limit",
                    match (out.out_truncated, out.err_truncated) {
                        (true, true) => "stdout and stderr",
                        (true, false) => "stdout",
                        _ => "stderr",
                    }
                )?;
            }
            stderr.flush()?;
        }
    }
    match exit_byte(out.code()) {
        0 => Ok(()),
        c => Err(fail::silent(c)),
    }
}

/// Where `vm file-read --out` writes: `None` for stdout (no --out, or `--out -`). Refuses a
/// directory or a file in a missing directory before anything is read.
fn out_file(out: Option<&PathBuf>) -> anyhow::Result<Option<&PathBuf>> {
    let Some(out) = out.filter(|p| p.as_os_str() != "-") else {
        return Ok(None);
    };
    if out.is_dir() {
        return Err(fail::usage(format!(
            "--out {}: is a directory; give a file name (or - for stdout)",
            out.display()
        )));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(fail::usage(format!(
            "--out {}: the directory {} does not exist",
            out.display(),
            parent.display()
        )));
    }
    Ok(Some(out))
}

/// `vm file-read`.
pub async fn file_read(vms: &VmApi, a: &FileReadArgs, format: Format) -> anyhow::Result<()> {
    let id = vmid(&a.vmid)?;
    let out_path = out_file(a.out.as_ref())?;
    let guest = vms.guest(id).await?;
    let agent = agent_api(vms)?;
    // One read returns at most 16 MiB; longer files are read on from where it stopped.
    let mut data: Vec<u8> = Vec::new();
    loop {
        let part = agent
            .file_read_at(&guest, &a.path, data.len() as u64, None)
            .await
            .map_err(agent_error)
            .with_context(|| format!("vm file-read {id} {}", a.path))?;
        let got = part.data.len();
        data.extend_from_slice(&part.data);
        if !part.truncated {
            break;
        }
        if got == 0 {
            return Err(fail::with_code(
                fail::OTHER,
                format!(
                    "vm file-read {id} {}: the agent reported more data but returned none at \
                     offset {}; stopped",
                    a.path,
                    data.len()
                ),
            ));
        }
    }
    if let Some(out) = out_path {
        std::fs::write(out, &data).with_context(|| format!("writing {}", out.display()))?;
    }
    match format {
        Format::Json => {
            let text = std::str::from_utf8(&data).ok();
            let b64 = text.is_none().then(|| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&data)
            });
            print_json(&serde_json::json!({
                "vmid": id.get(),
                "path": a.path,
                "size": data.len(),
                "content": if out_path.is_none() { text } else { None },
                "content_base64": if out_path.is_none() { b64 } else { None },
                "out": out_path.map(|p| p.display().to_string()),
            }))?
        }
        _ if out_path.is_some() => {
            eprintln!("read {} bytes of {} from VM {id}", data.len(), a.path)
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&data)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// `vm file-write`.
pub async fn file_write(vms: &VmApi, a: &FileWriteArgs, format: Format) -> anyhow::Result<()> {
    let id = vmid(&a.vmid)?;
    let data = read_input("--from", &a.from)?;
    let guest = vms.guest(id).await?;
    let agent = agent_api(vms)?;
    agent
        .file_write(&guest, &a.path, &data)
        .await
        .map_err(agent_error)
        .with_context(|| format!("vm file-write {id} {}", a.path))?;
    match format {
        Format::Json => print_json(&serde_json::json!({
            "vmid": id.get(), "path": a.path, "size": data.len(), "written": true,
        }))?,
        _ => println!("wrote {} bytes to {} in VM {id}", data.len(), a.path),
    }
    Ok(())
}

/// A snapshot as `vm snapshot list` prints it.
#[derive(Debug, Serialize)]
struct SnapshotView {
    name: String,
    parent: Option<String>,
    time: Option<String>,
    vmstate: bool,
    description: Option<String>,
}

impl SnapshotView {
    fn of(s: &Snapshot) -> Self {
        Self {
            name: s.name.clone(),
            parent: s.parent.clone(),
            time: s
                .snaptime
                .map(|t| rfc3339(UNIX_EPOCH + Duration::from_secs(t))),
            vmstate: s.vmstate,
            description: s.description.clone().filter(|d| !d.is_empty()),
        }
    }
}

fn label(guest: &Guest) -> String {
    format!("{} {}", guest.kind().noun(), guest.vmid())
}

/// `vm snapshot`.
pub async fn snapshot(vms: &VmApi, a: &SnapshotArgs, format: Format) -> anyhow::Result<()> {
    let id = vmid(&a.vmid)?;
    let guest = vms.guest(id).await?;
    let name = a.name.clone().map(SnapshotName::new).transpose()?;
    match a.action {
        SnapshotAction::List => {
            let views: Vec<SnapshotView> = guest
                .snapshots()
                .await?
                .iter()
                .filter(|s| !s.is_current())
                .map(SnapshotView::of)
                .collect();
            let mut sheet = Sheet::new(&["NAME", "PARENT", "TIME", "VMSTATE", "DESCRIPTION"]);
            for v in &views {
                sheet.row(vec![
                    v.name.clone(),
                    or_dash(v.parent.as_ref()),
                    or_dash(v.time.as_ref()),
                    if v.vmstate { "yes" } else { "no" }.to_owned(),
                    or_dash(v.description.as_ref().map(|d| d.replace(['\n', '\r'], " "))),
                ]);
            }
            sheet.print(format, &views)?;
        }
        SnapshotAction::Create => {
            if a.vmstate {
                if guest.kind() != pve_vm::GuestKind::Qemu {
                    return Err(fail::usage(format!(
                        "--vmstate: {} is a container; container snapshots have no RAM state",
                        label(&guest)
                    )));
                }
                if !guest.status().await?.is_running() {
                    return Err(fail::usage(format!(
                        "--vmstate: {} is not running, so it has no RAM to save; leave out \
                         --vmstate (or start it first). Nothing changed",
                        label(&guest)
                    )));
                }
            }
            let name = match name {
                Some(n) => n,
                None => {
                    let taken: Vec<String> = guest
                        .snapshots()
                        .await?
                        .into_iter()
                        .map(|s| s.name)
                        .collect();
                    SnapshotName::new(unique_name(
                        &default_snapshot_name(SystemTime::now()),
                        &taken,
                    ))?
                }
            };
            let ram = if a.vmstate { " (with RAM)" } else { "" };
            if a.dry_run {
                match format {
                    Format::Json => print_json(&serde_json::json!({
                        "dry_run": true, "vmid": id.get(), "action": "create",
                        "snapshot": name.as_str(), "vmstate": a.vmstate, "created": false,
                    }))?,
                    _ => println!(
                        "would create snapshot {name} of {}{ram}\ndry run: nothing changed",
                        label(&guest)
                    ),
                }
                return Ok(());
            }
            let opts = SnapshotOptions {
                name: name.clone(),
                description: a.description.clone(),
                vmstate: a.vmstate,
            };
            guest
                .create_snapshot(&opts)
                .await
                .with_context(|| format!("snapshot {name} of {}", label(&guest)))?;
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "dry_run": false, "vmid": id.get(), "action": "create",
                    "snapshot": name.as_str(), "vmstate": a.vmstate, "created": true,
                }))?,
                _ => println!(
                    "created snapshot {name} of {}{}",
                    label(&guest),
                    if a.vmstate { " (with RAM)" } else { "" }
                ),
            }
        }
        SnapshotAction::Rollback | SnapshotAction::Delete => {
            let Some(name) = name else {
                return Err(fail::usage("a snapshot NAME is needed"));
            };
            let list = guest.snapshots().await?;
            let Some(snap) = list
                .iter()
                .find(|s| s.name == name.as_str() && !s.is_current())
            else {
                let known: Vec<&str> = list
                    .iter()
                    .filter(|s| !s.is_current())
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(fail::with_code(
                    fail::NOT_FOUND,
                    format!(
                        "{} has no snapshot {name} (it has: {}). Nothing changed",
                        label(&guest),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            };
            let view = SnapshotView::of(snap);
            let taken = view
                .time
                .clone()
                .unwrap_or_else(|| "unknown time".to_owned());
            let rollback = a.action == SnapshotAction::Rollback;
            // A snapshot without RAM leaves the guest stopped unless --start.
            let stops = rollback && !snap.vmstate && !a.start && guest.status().await?.is_running();
            let what = if rollback {
                format!(
                    "roll {} back to snapshot {name} (taken {taken}): its disks and config{} \
                     return to then, everything changed since is lost{}{}",
                    label(&guest),
                    if snap.vmstate { " and RAM" } else { "" },
                    if a.start { "; then start it" } else { "" },
                    if stops {
                        format!(
                            ". {} will be stopped (pass --start to start it after)",
                            label(&guest)
                        )
                    } else {
                        String::new()
                    }
                )
            } else {
                format!(
                    "delete snapshot {name} (taken {taken}) of {}",
                    label(&guest)
                )
            };
            if a.dry_run {
                match format {
                    Format::Json => print_json(&serde_json::json!({
                        "dry_run": true, "vmid": id.get(), "action": action_name(a.action),
                        "snapshot": view, "will_stop": stops,
                    }))?,
                    _ => println!("would {what}\ndry run: nothing changed"),
                }
                return Ok(());
            }
            eprintln!("will {what}");
            let question = if rollback {
                format!(
                    "Roll {} back to {name}{}?",
                    label(&guest),
                    if stops { " (it will be stopped)" } else { "" }
                )
            } else {
                format!("Delete snapshot {name} of {}?", label(&guest))
            };
            crate::confirm::confirm(&question, a.yes)?;
            if rollback {
                guest
                    .rollback(&name, a.start)
                    .await
                    .with_context(|| format!("rolling {} back to {name}", label(&guest)))?;
            } else {
                guest
                    .delete_snapshot(&name, false)
                    .await
                    .with_context(|| format!("deleting snapshot {name} of {}", label(&guest)))?;
            }
            let status = if rollback {
                Some(match guest.status().await?.status {
                    pve_vm::RunState::Running => "running".to_owned(),
                    pve_vm::RunState::Stopped => "stopped".to_owned(),
                    pve_vm::RunState::Other(s) => s,
                })
            } else {
                None
            };
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "dry_run": false, "vmid": id.get(), "action": action_name(a.action),
                    "snapshot": view, "done": true, "status": status,
                }))?,
                _ if rollback => println!(
                    "rolled {} back to {name}; it is {}{}",
                    label(&guest),
                    status.as_deref().unwrap_or("unknown"),
                    if status.as_deref() == Some("stopped") {
                        format!(" (start it with `labctl vm start {id}`)")
                    } else {
                        String::new()
                    }
                ),
                _ => println!("deleted snapshot {name} of {}", label(&guest)),
            }
        }
    }
    Ok(())
}

/// `base`, or `base-2`, `base-3`, … when `taken` has it (two creates in one second).
fn unique_name(base: &str, taken: &[String]) -> String {
    let free = |n: &String| !taken.iter().any(|t| t == n);
    let first = base.to_owned();
    if free(&first) {
        return first;
    }
    (2u32..)
        .map(|i| format!("{base}-{i}"))
        .find(free)
        .unwrap_or(first)
}

/// `snap-YYYYMMDD-HHMMSS` in UTC.
fn default_snapshot_name(t: SystemTime) -> String {
    let s = rfc3339(t);
    format!(
        "snap-{}-{}",
        s[..10].replace('-', ""),
        s[11..19].replace(':', "")
    )
}

/// `vm link`.
pub async fn link(vms: &VmApi, a: &LinkArgs, format: Format) -> anyhow::Result<()> {
    let id = vmid(&a.vmid)?;
    let guest = vms.guest(id).await?;
    let down = a.state == LinkState::Down;
    let state = if down { "down" } else { "up" };
    if guest.is_template().await? {
        return Err(fail::usage(format!(
            "{} is a template: every clone made from it would start with this link state. \
             Set the link of a clone instead. Nothing changed",
            label(&guest)
        )));
    }
    let config = guest.config().await?;
    let current = config.get(&a.net).ok_or_else(|| {
        fail::with_code(
            fail::NOT_FOUND,
            format!("{} has no network device {}", label(&guest), a.net),
        )
    })?;
    if a.dry_run || down {
        let nic = pve_vm::NetDevice::parse(&current)?;
        let what = format!(
            "set the link of {} (MAC {}) of {} {state}{}",
            a.net,
            nic.mac().unwrap_or("none"),
            label(&guest),
            if nic.link_down() == down {
                " (it is already)"
            } else {
                ""
            }
        );
        if a.dry_run {
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "dry_run": true, "vmid": id.get(), "net": a.net, "mac": nic.mac(),
                    "link": state, "changed": false, "would_change": nic.link_down() != down,
                }))?,
                _ => println!("would {what}\ndry run: nothing changed"),
            }
            return Ok(());
        }
        eprintln!("will {what}");
        crate::confirm::confirm(
            &format!("Pull the virtual cable of {} {}?", label(&guest), a.net),
            a.yes,
        )?;
    }
    let change = guest
        .set_link(&a.net, !down)
        .await
        .with_context(|| format!("setting the link of {} {} {state}", label(&guest), a.net))?;
    match format {
        Format::Json => print_json(&serde_json::json!({
            "dry_run": false, "vmid": id.get(), "net": change.net, "mac": change.mac,
            "link": state, "changed": change.changed(),
        }))?,
        _ => println!(
            "{} {} (MAC {}): link {state}{}",
            label(&guest),
            change.net,
            change.mac,
            if change.changed() { "" } else { " (unchanged)" }
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_and_names() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_782_907_205); // 2026-07-01T12:00:05Z
        assert_eq!(rfc3339(t), "2026-07-01T12:00:05Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(default_snapshot_name(t), "snap-20260701-120005");
        SnapshotName::new(default_snapshot_name(t)).unwrap();
    }

    #[test]
    fn default_names_skip_taken_ones() {
        let base = "snap-20260701-120005";
        assert_eq!(unique_name(base, &[]), base);
        let taken = vec![base.to_owned(), format!("{base}-2")];
        assert_eq!(unique_name(base, &taken), format!("{base}-3"));
        SnapshotName::new(unique_name(base, &taken)).unwrap();
    }

    #[test]
    fn exit_codes_keep_failure() {
        assert_eq!(exit_byte(0), 0);
        assert_eq!(exit_byte(127), 127);
        assert_eq!(exit_byte(256), 1);
        assert_eq!(exit_byte(-1), 255);
        assert_eq!(exit_byte(0x1_0002), 2);
    }
}
