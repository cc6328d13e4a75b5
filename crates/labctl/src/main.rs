//! `labctl`: exam labs on Proxmox VE from the command line.
//!
//! Clones N student machines from a template with proper host names, starts them, waits
//! for their guest agents, reads their addresses and fences them with the Proxmox
//! firewall so each reaches only the teacher; after the exam lifts the fence and destroys
//! exactly the lab. `labctl demo` shows all of it against an embedded simulator, and
//! `labctl sim` serves that simulator for your own experiments.
//!
//! ```text
//! labctl demo
//! export PVE_HOST=https://pve1:8006 PVE_USER=root@pam PVE_FINGERPRINT=AA:BB:…
//! labctl lab up --name exam1 --template 9000 --count 20 --hostname 'exam-{n:02}' \
//!     --teacher 10.10.0.1 --dry-run
//! labctl lab down --name exam1 --dry-run
//! ```

mod access;
mod connect;
mod demo;
mod fosscloud;
mod lab;
mod progress;
mod sim;
mod table;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Exam labs on Proxmox VE: clone, start, wait, read IPs, fence — and tear down exactly
/// the lab afterwards.
///
/// Connection: --host/PVE_HOST, then either PVE_TOKEN=USER@REALM!ID=SECRET or
/// --user/PVE_USER with PVE_PASSWORD (or a prompt). Secrets are never accepted as
/// arguments. Trust: --fingerprint (pin), --ca-file, or the system roots.
///
/// No cluster at hand? `labctl demo` runs everything against an embedded simulator.
#[derive(Debug, Parser)]
#[command(name = "labctl", version, about, long_about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten, next_help_heading = "Connection")]
    connection: connect::Connection,

    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  labctl demo                                  # the whole story against a simulator
  labctl sim --listen 127.0.0.1:8006           # a simulator to point labctl at
  PVE_HOST=https://pve1:8006 PVE_USER=root@pam PVE_FINGERPRINT=AA:BB:... \\
    labctl lab up -n exam1 -t 9000 -c 20 --hostname 'exam-{n:02}' --teacher 10.10.0.1
  labctl lab ips -n exam1
  labctl lab down -n exam1 --dry-run           # what would be destroyed
  labctl lab down -n exam1
  FC_USER=alice labctl fosscloud --url https://fc.example.org/vm-manager list

Environment:
  PVE_HOST, PVE_USER, PVE_FINGERPRINT, PVE_CA_FILE   same as the flags
  PVE_PASSWORD        password of PVE_USER (else a prompt on a terminal)
  PVE_TOKEN           API token USER@REALM!TOKENID=SECRET (instead of a password)
  FC_URL, FC_USER, FC_REALM, FC_CA_FILE, FC_PASSWORD   the same for `fosscloud`
  LABCTL_LAB          default for --name
  LABCTL_TIME_SCALE   scale labctl's waits to a simulator's --time-scale
  RUST_LOG            log filter (e.g. lab_proxmox=debug)";

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage an exam lab: up, status, ips, down.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Run the embedded Proxmox VE simulator in the foreground (Ctrl-C stops it).
    ///
    /// It prints its URL, certificate fingerprint and the environment to point `labctl lab`
    /// at it. Its password comes from PVE_SIM_PASSWORD (else one is generated and printed).
    #[command(after_help = "\
Example (two shells):
  PVE_SIM_PASSWORD=secret labctl sim --plain-http --time-scale 0.05
  PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \\
    LABCTL_TIME_SCALE=0.05 labctl lab up -n exam1 -t 9000 -c 3 --teacher 10.10.0.1")]
    Sim(sim::SimArgs),
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

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "labctl=info,warn",
        1 => "labctl=debug,lab_core=debug,lab_proxmox=debug,info",
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
    match &cli.command {
        Command::Lab(lab::LabCommand::Access(cmd)) => access::run(cmd, &cli.connection).await,
        Command::Lab(cmd) => {
            cmd.check()?;
            let hv = cli.connection.backend()?;
            lab::run(cmd, &hv).await
        }
        Command::Sim(args) => sim::run(args).await,
        Command::Fosscloud(args) => fosscloud::run(args).await,
        Command::Demo(args) => tokio::time::timeout(demo::DEMO_TIMEOUT, demo::run(args))
            .await
            .map_err(|_| {
                anyhow::anyhow!("the demo did not finish within {:?}", demo::DEMO_TIMEOUT)
            })?,
    }
}

/// The error and its causes on one line, skipping causes the message already contains
/// (wrappers often repeat their source), plus a hint for the usual TLS trouble.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    if msg.contains("TLS handshake") {
        msg.push_str(
            "\nhint: pin the node's certificate with --fingerprint / PVE_FINGERPRINT \
             (shown in the PVE web UI under the node's System > Certificates) or trust the \
             cluster CA with --ca-file",
        );
    }
    msg
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labctl: error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
