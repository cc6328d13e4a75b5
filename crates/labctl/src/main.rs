//! `labctl`: exam labs on Proxmox VE and desktops on FOSS-Cloud from the command line.
//!
//! Command families, one module each: `vm` (one guest at a time, the seed's functions),
//! `firewall` (fence a VMID range), `lab` (the lab from a TOML file or flags, with rosters:
//! plan, up, status, ips, access, down), `fosscloud` (every REST call), `sim` (the simulators),
//! `completions`, `demo`. Every command that prints data takes `-o table|json|csv`; exit
//! codes are in [`fail`]; named clusters in [`config`].
//!
//! ```text
//! labctl demo
//! export PVE_HOST=https://pve1:8006 PVE_USER=root@pam PVE_FINGERPRINT=AA:BB:…
//! labctl vm status 100 -o json
//! labctl lab plan examples/exam.toml
//! labctl lab up examples/exam.toml
//! labctl lab down examples/exam.toml --dry-run
//! ```

// The standard print macros panic when the stream is closed or full (`labctl … 2>&1 | head
// -1`); these never do: a message that cannot be written is lost, nothing else. Data goes
// through `output::write_stdout`, which reports a full disk. Defined before the modules so
// every module uses them.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod access;
mod classroom;
mod config;
mod confirm;
mod connect;
mod demo;
mod doctor;
mod evaluate;
mod fail;
mod firewall;
mod fosscloud;
mod freeze;
mod guest;
mod journal;
mod lab;
mod labfile;
mod operator;
mod output;
mod precedence;
mod progress;
mod reset;
mod roster;
mod signals;
mod sim;
mod table;
mod template;
mod vm;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// `labctl --version`: the package version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LABCTL_COMMIT"), ")");

/// Exam labs on Proxmox VE: clone, start, wait, read IPs, fence — and tear down exactly
/// the lab afterwards.
///
/// Connection: --host/PVE_HOST, then either PVE_TOKEN=USER@REALM!ID=SECRET or
/// --user/PVE_USER with PVE_PASSWORD (or a prompt). Secrets are never accepted as
/// arguments. Trust: --fingerprint (pin), --ca-file, or the system roots.
///
/// No cluster at hand? `labctl demo` runs everything against an embedded simulator.
#[derive(Debug, Parser)]
#[command(name = "labctl", version = VERSION, about, long_about, after_help = after_help())]
struct Cli {
    /// Output format of commands that print data: table, json, or csv (lists only).
    #[arg(short, long, global = true, value_enum, default_value_t = output::Format::Table)]
    output: output::Format,

    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides. Secrets are
    /// never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", fail::HELP)
}

const EXAMPLES: &str = "\
Examples:
  labctl demo                                  # the whole story against a simulator
  labctl sim pve --listen 127.0.0.1:8006       # a simulator to point labctl at
  labctl vm status 100 -o json
  labctl vm clone 9000 --name stud-01
  labctl firewall isolate --first 5000 --last 5019 --allow 10.10.0.1
  labctl lab up examples/exam.toml
  PVE_HOST=https://pve1:8006 PVE_USER=root@pam PVE_FINGERPRINT=AA:BB:... \\
    labctl lab up -n exam1 -t 9000 -c 20 --hostname 'exam-{n:02}' --teacher 10.10.0.1
  labctl lab ips -n exam1
  labctl lab down -n exam1 --dry-run           # what would be destroyed
  labctl lab down -n exam1
  FC_USER=alice labctl fosscloud --url https://fc.example.org/vm-manager list

Environment (a flag beats its variable; the order for every setting is flag > lab file >
environment > config cluster > default):
  LABCTL_CLUSTER      a cluster of the config file (under --cluster)
  PVE_HOST, PVE_USER, PVE_FINGERPRINT, PVE_CA_FILE   under --host, --user, --fingerprint,
                      --ca-file
  PVE_PASSWORD        password of the user (else a prompt on a terminal); never empty
  PVE_TOKEN           API token USER@REALM!TOKENID=SECRET (instead of a password; --user
                      beats it)
  PVE_TOKEN_SECRET    the secret of a config cluster's token_id
  FC_URL, FC_USER, FC_REALM, FC_CA_FILE, FC_FINGERPRINT, FC_PASSWORD   the same for
                      `fosscloud` and for classroom lab files (never PVE_*)
  LABCTL_LAB          the lab name when neither -n nor a lab file gives one
  LABCTL_TIME_SCALE   scale labctl's waits to a simulator's --time-scale
  RUST_LOG            log filter (e.g. lab_proxmox=debug)

Config file: $XDG_CONFIG_HOME/labctl/config.toml (else ~/.config/labctl/config.toml): named
clusters (host, user or token_id, password_file or token_secret_file, fingerprint or ca_file)
chosen with --cluster or LABCTL_CLUSTER; a cluster's secrets are only ever sent to its own
host. The README shows an example.";

// One variant per command family; each family lives in its own module with a `run`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Manage an exam lab, from a TOML file or flags: plan, up, status, ips, access, down.
    Lab(Pve<lab::LabCommand>),
    /// One guest at a time: list, next-id, status, clone, start/stop/shutdown/reboot,
    /// agent, is-template, template, destroy, ip, exec, file-read/-write, snapshot, link.
    Vm(Pve<vm::VmCommand>),
    /// Fence a range of guests so they reach only given addresses: isolate, unisolate, verify.
    Firewall(Pve<firewall::FirewallCommand>),
    /// Template copies on every node, so a lab spreads over the cluster: replicate, list.
    Template(Pve<template::TemplateCommand>),
    /// Run a simulator in the foreground (Ctrl-C stops it): `sim pve` (the default) or
    /// `sim fosscloud`.
    ///
    /// It prints its URL, certificate fingerprint and the environment to point labctl at
    /// it. The PVE simulator's password comes from PVE_SIM_PASSWORD (else one is generated
    /// and printed).
    #[command(after_help = "\
Examples (two shells):
  PVE_SIM_PASSWORD=secret labctl sim pve --plain-http --time-scale 0.05
  PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \\
    LABCTL_TIME_SCALE=0.05 labctl lab up examples/exam.toml
  labctl sim fosscloud --ca-out /tmp/fc-ca.pem")]
    Sim(sim::SimArgs),
    /// Check a cluster before an exam: connection, TLS, version, clock, the login's
    /// privileges, and with a lab file its template, firewall, ids, pool and memory.
    ///
    /// Changes nothing (except --boot-test). Exit 0 when nothing blocks, 1 when a check
    /// FAILs (each says what to do), 2 before any check for usage errors (a lab file that
    /// is missing or does not parse, no host, no credentials, a secret that cannot be sent).
    #[command(after_help = "\
Examples:
  labctl doctor                                # connection, version, clock, privileges
  labctl doctor examples/exam.toml             # and everything the lab needs
  labctl doctor examples/exam.toml --boot-test # and one guest cloned, booted, removed
  labctl doctor examples/exam.toml -o json")]
    Doctor(DoctorCli),
    /// Prepare a cluster for labctl: `setup operator` creates a role with what labctl's
    /// commands need (not least privilege: see `setup operator --help`), a user and an API
    /// token.
    Setup(Pve<operator::SetupCommand>),
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    #[command(after_help = "\
Examples:
  labctl completions bash > ~/.local/share/bash-completion/completions/labctl
  labctl completions zsh > ~/.zfunc/_labctl
  labctl completions fish > ~/.config/fish/completions/labctl.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (labctl.1, labctl-lab.1, labctl-lab-up.1, …) generated from this
    /// command line into DIR; `cargo xtask dist` packages them.
    #[command(hide = true)]
    Manpages {
        /// The directory to write into (created if missing).
        dir: std::path::PathBuf,
    },
    /// FOSS-Cloud VDI: realms, a user's VMs, taking a desktop from a dynamic pool.
    Fosscloud(fosscloud::FossCloudArgs),
    /// Show a whole lab cycle against an embedded simulator: up, IPs, fence verdicts,
    /// down, and proof that nothing else was touched.
    ///
    /// Needs no cluster and no credentials; exits non-zero if any guarantee broke.
    #[command(after_help = "\
Examples:
  labctl demo
  labctl demo --students 12 --hostname 'pc-{n:02}'
  labctl demo --fault-rate 0.1   # one request in ten fails: watch the retries")]
    Demo(demo::DemoArgs),
}

/// A command family that talks to Proxmox VE: the connection flags, then its subcommands.
#[derive(Debug, clap::Args)]
struct Pve<C: Subcommand> {
    #[command(flatten, next_help_heading = "Connection")]
    connection: connect::Connection,
    #[command(subcommand)]
    command: C,
}

/// `labctl doctor`: the connection flags and the doctor's own.
#[derive(Debug, clap::Args)]
struct DoctorCli {
    #[command(flatten, next_help_heading = "Connection")]
    connection: connect::Connection,
    #[command(flatten)]
    args: doctor::DoctorArgs,
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "labctl=info,warn",
        1 => {
            "labctl=debug,lab_core=debug,lab_proxmox=debug,pve_auth=debug,pve_vm=debug,\
             pve_agent=debug,pve_net=debug,pve_firewall=debug,fosscloud_api=debug,info"
        }
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let format = cli.output;
    match &cli.command {
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Access(cmd),
        }) => {
            cmd.check()?;
            access::run(cmd, connection, format).await
        }
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Collect(args),
        }) => evaluate::collect_cmd(args, connection, format).await,
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Check(args),
        }) => evaluate::check_cmd(args, connection, format).await,
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Selftest(args),
        }) => evaluate::selftest_cmd(args, connection, format).await,
        Command::Lab(Pve {
            command: lab::LabCommand::Grade(args),
            ..
        }) => evaluate::grade_cmd(args, format),
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Snapshot(args),
        }) => freeze::snapshot_cmd(args, connection, format).await,
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Freeze(args),
        }) => freeze::freeze_cmd(args, connection, format).await,
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Unfreeze(args),
        }) => freeze::unfreeze_cmd(args, connection, format).await,
        Command::Lab(Pve {
            connection,
            command: lab::LabCommand::Reset(args),
        }) => reset::reset_cmd(args, connection, format).await,
        Command::Lab(Pve {
            command: lab::LabCommand::Lint(args),
            ..
        }) => evaluate::lint_cmd(args, format),
        Command::Lab(Pve {
            connection,
            command,
        }) => {
            if let Some((verb, room)) = command.classroom(connection)? {
                return classroom::run(verb, &room, format).await;
            }
            let checked = command.check(format)?;
            let hv = match &checked {
                lab::Checked::Spec(lab) => connection.backend()?.write_limit(lab.spec.concurrency),
                lab::Checked::Select(..) => connection.backend()?,
            };
            let access = pve_access::AccessApi::new(hv.vm_api().client().clone());
            lab::run(command, checked, &hv, Some(&access), format).await
        }
        Command::Vm(Pve {
            connection,
            command,
        }) => {
            command.check(format)?;
            vm::run(command, &connection.vm_api()?, format).await
        }
        Command::Firewall(Pve {
            connection,
            command,
        }) => {
            command.check(format)?;
            firewall::run(command, connection.vm_api()?, format).await
        }
        Command::Template(Pve {
            connection,
            command,
        }) => {
            command.check(format)?;
            template::run(command, &connection.backend()?, format).await
        }
        Command::Doctor(d) => doctor::run(&d.args, &d.connection, format).await,
        Command::Setup(Pve {
            connection,
            command,
        }) => operator::run(command, connection, format).await,
        Command::Sim(args) => {
            no_output_format(format, "sim")?;
            sim::run(args).await
        }
        Command::Fosscloud(args) => fosscloud::run(args, format).await,
        Command::Completions { shell } => {
            no_output_format(format, "completions")?;
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "labctl", &mut script);
            output::write_stdout(&String::from_utf8_lossy(&script))
        }
        Command::Manpages { dir } => {
            no_output_format(format, "manpages")?;
            let mut cmd = <Cli as clap::CommandFactory>::command();
            cmd.build();
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {}", dir.display(), e))?;
            write_manpages(&cmd, "labctl", dir)
        }
        Command::Demo(args) => {
            no_output_format(format, "demo")?;
            demo_run(args).await
        }
    }
}

/// One page per command, named by its path (`labctl-lab-up.1`); hidden commands get none.
fn write_manpages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let page = cmd
        .clone()
        .display_name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, text)
        .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e))?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_manpages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

/// `-o json|csv` is honoured or refused, never ignored: these commands print no data.
fn no_output_format(format: output::Format, command: &str) -> anyhow::Result<()> {
    if format.is_table() {
        return Ok(());
    }
    Err(fail::usage(format!(
        "`labctl {command}` prints no data to format: leave out -o (it is for commands that \
         print tables, JSON or CSV)"
    )))
}

async fn demo_run(args: &demo::DemoArgs) -> anyhow::Result<()> {
    tokio::time::timeout(demo::DEMO_TIMEOUT, demo::run(args))
        .await
        .map_err(|_| anyhow::anyhow!("the demo did not finish within {:?}", demo::DEMO_TIMEOUT))?
}

/// The error and its causes on one line, skipping causes the message already contains
/// (wrappers often repeat their source), plus a hint for the usual TLS trouble.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    let mut fosscloud_tls = false;
    for (i, cause) in e.chain().enumerate() {
        if i > 0 {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        // fosscloud-api's messages already carry the TLS verdict; what lies below is the
        // same again in rustls' debug spelling.
        if let Some(f) = cause.downcast_ref::<fosscloud_api::Error>() {
            fosscloud_tls = f.is_tls();
            break;
        }
    }
    // Library errors name their Rust API; a CLI user needs the flag or variable.
    for (api, cli) in [
        (
            "(TlsOptions::fingerprint)",
            "(--fingerprint / PVE_FINGERPRINT)",
        ),
        ("(TlsOptions::ca_file)", "(--ca-file / PVE_CA_FILE)"),
        (
            "use TlsOptions::fingerprint or TlsOptions::ca_file",
            "use --fingerprint / PVE_FINGERPRINT or --ca-file / PVE_CA_FILE",
        ),
        (
            "(pass credentials to the builder)",
            "(give the user with --user / PVE_USER and the password with PVE_PASSWORD)",
        ),
        (
            "allow it with .allow_http(true) for a local simulator",
            "use https://",
        ),
    ] {
        msg = msg.replace(api, cli);
    }
    if fosscloud_tls {
        msg.push_str(
            "\nhint: trust the FOSS-Cloud server with --fingerprint / FC_FINGERPRINT (its \
             SHA-256 fingerprint, checked out of band, e.g. `openssl x509 -noout -fingerprint \
             -sha256` on the server) or with --ca-file / FC_CA_FILE (its certificate or CA, PEM)",
        );
    } else if msg.contains("TLS handshake") {
        msg.push_str(
            "\nhint: pin the node's certificate with --fingerprint / PVE_FINGERPRINT \
             (shown in the PVE web UI under the node's System > Certificates) or trust the \
             cluster CA with --ca-file",
        );
    }
    msg
}

/// Output goes through [`output::write_stdout`] where it can (the error then reaches
/// `main`); a `println!` elsewhere panics when stdout fails. Never show that panic: a closed
/// pipe (`labctl lab plan … | head -1`) leaves quietly (exit 1), as tools killed by SIGPIPE
/// do; any other failure (a full disk) is said in one line and exits 1.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(reason) = msg.strip_prefix("failed printing to stdout: ") {
            if !reason.contains("Broken pipe") {
                let reason = reason.split(" (os error").next().unwrap_or(reason);
                eprintln!(
                    "labctl: error: writing to stdout: {reason} (what the command did before \
                     is done; only its output was lost)"
                );
            }
            std::process::exit(i32::from(fail::OTHER));
        }
        default(info);
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !fail::is_silent(&e) {
                eprintln!("labctl: error: {}", describe(&e));
            }
            ExitCode::from(fail::exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks over the whole tree (every subcommand, not only the
    /// ones a run happens to build): duplicate flags, a subcommand's argument shadowing a
    /// global one, bad defaults. The tree walk through the binary is in
    /// `tests/command_tree.rs`.
    #[test]
    fn the_command_tree_passes_clap_debug_assert() {
        let mut cmd = super::Cli::command();
        cmd.build();
        cmd.clone().debug_assert();
        fn walk(c: &clap::Command, path: &mut Vec<String>, ids: &mut Vec<String>) {
            for a in c.get_arguments() {
                // A subcommand that defines `output` again (as `lab access sheet` once did)
                // panics when the global `-o` is read.
                if a.get_id() == "output" {
                    assert!(
                        a.is_global_set() || path.is_empty(),
                        "{path:?} redefines --output"
                    );
                }
            }
            ids.push(path.join(" "));
            for s in c.get_subcommands() {
                path.push(s.get_name().to_owned());
                walk(s, path, ids);
                path.pop();
            }
        }
        let mut ids = Vec::new();
        walk(&cmd, &mut Vec::new(), &mut ids);
        assert!(ids.iter().any(|p| p == "lab access sheet"), "{ids:?}");
    }
}
