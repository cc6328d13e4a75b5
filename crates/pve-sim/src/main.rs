//! `pve-sim`: run the Proxmox VE API simulator standalone.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pve_sim::Simulator;

/// A faithful Proxmox VE 9.1 API simulator.
///
/// Serves /api2/json like a PVE cluster (nodes pve1..pveN, templates 9000 and 9001, the
/// teacher VM 100, production VMs 200/201) plus /_sim/state, /_sim/requests and
/// /_sim/reachability. Log in with POST /access/ticket (username, password) or an API
/// token header; every simulated duration is multiplied by --time-scale.
// No `Debug`: the arguments hold the password, the token secret and the TOTP secret.
#[derive(Parser)]
#[command(name = "pve-sim", version, about, long_about, after_long_help = EXAMPLES)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Number of cluster nodes (pve1..pveN).
    #[arg(long, value_name = "N", default_value_t = 3)]
    nodes: usize,
    /// The user that can log in.
    #[arg(long, value_name = "USER@REALM", default_value = "root@pam")]
    user: String,
    /// The user's password [default: generated and printed]. Prefer the
    /// PVE_SIM_PASSWORD environment variable: arguments are visible to other users.
    #[arg(
        long,
        value_name = "P",
        env = "PVE_SIM_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// An API token accepted as `Authorization: PVEAPIToken=USER@REALM!ID=SECRET`.
    #[arg(
        long,
        value_name = "USER@REALM!ID=SECRET",
        env = "PVE_SIM_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Require a TOTP second factor with this base32 secret [default: no TFA].
    #[arg(
        long,
        value_name = "B32",
        env = "PVE_SIM_TOTP_SECRET",
        hide_env_values = true
    )]
    totp_secret: Option<String>,
    /// Seed of MAC addresses, DHCP leases and injected faults.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Multiplies every simulated duration (0.01 = 100x faster: a 20 s boot takes 0.2 s).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    time_scale: f64,
    /// Probability (0..1) of an injected fault per request and per clone task.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    fault_rate: f64,
    /// Ticket lifetime in real seconds (not scaled).
    #[arg(long, value_name = "SECONDS", default_value_t = 7200)]
    ticket_lifetime: u64,
    /// Serve plain HTTP instead of HTTPS with a self-signed certificate.
    #[arg(long)]
    plain_http: bool,
}

const EXAMPLES: &str = "\
Examples:
  # HTTPS on the PVE port, generated password printed on stdout
  pve-sim
  # plain HTTP on another port, 20x faster (a linked clone takes 0.1 s, a boot 1 s)
  PVE_SIM_PASSWORD=secret pve-sim --listen 127.0.0.1:18006 --plain-http --time-scale 0.05
  # an API token and one node; then: curl -H 'Authorization: PVEAPIToken=root@pam!ci=s3cr3t' ...
  PVE_SIM_TOKEN='root@pam!ci=s3cr3t' pve-sim --nodes 1 --plain-http
  # seeded faults on 5 % of requests and clones (same seed, same faults)
  pve-sim --fault-rate 0.05 --seed 7

Log in:  curl -d username=root@pam -d password=secret http://127.0.0.1:18006/api2/json/access/ticket
Inspect: curl http://127.0.0.1:18006/_sim/state
Stop with Ctrl-C or SIGTERM (open requests are finished first).
The crate README walks through login, clone, start and the agent's IPv4 with curl.";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pve-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = Simulator::builder()
        .listen(args.listen)
        .nodes(args.nodes)
        .user(args.user)
        .seed(args.seed)
        .time_scale(args.time_scale)
        .fault_rate(args.fault_rate)
        .ticket_lifetime(Duration::from_secs(args.ticket_lifetime))
        .plain_http(args.plain_http);
    if let Some(p) = args.password {
        builder = builder.password(p);
    }
    if let Some(t) = args.token {
        builder = builder.token(t);
    }
    if let Some(s) = args.totp_secret {
        builder = builder.totp_secret(s);
    }
    let signals = StopSignals::install()?;
    let sim = builder.start().await?;
    println!(
        "listening on {} fingerprint {}",
        sim.url(),
        sim.fingerprint()
    );
    if sim.password_generated() {
        // The operator needs the generated password to log in; it goes to stdout only.
        println!("password {}", sim.password());
    }
    signals.wait().await?;
    sim.shutdown().await;
    Ok(())
}

/// Ctrl-C and (on Unix) SIGTERM, so `kill <pid>` also shuts down gracefully. The
/// handlers are installed when this is created: before the start line is printed, so a
/// signal sent right after it is not lost to the default action.
struct StopSignals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn wait(mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}
