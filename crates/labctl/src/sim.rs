//! `labctl sim [pve|fosscloud]`: an embedded simulator in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use pve_sim::Simulator;

/// `labctl sim`: `pve` (also the default without a subcommand) or `fosscloud`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    which: Option<SimCommand>,
    #[command(flatten)]
    pve: PveSimArgs,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// The Proxmox VE simulator (3 nodes, template 9000 and LXC template 9001, teacher 100
    /// at 10.10.0.1, production VMs 200/201).
    #[command(after_help = "\
Example (two shells):
  PVE_SIM_PASSWORD=secret labctl sim pve --plain-http --time-scale 0.05
  PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \\
    LABCTL_TIME_SCALE=0.05 labctl lab up examples/exam.toml
Play a student inside VM N: GET/PUT /_sim/guests/N/state (files, interfaces, routes, services, commands, agent running|stopped|hung; see the README)")]
    Pve(PveSimArgs),
    /// The FOSS-Cloud REST API simulator (users alice, bob, teacher, dynvmuser, carol with
    /// password `<name>-pw`).
    #[command(after_help = "\
Example (two shells):
  labctl sim fosscloud --ca-out /tmp/fc-ca.pem --mac-by-parameter
  FC_URL=https://127.0.0.1:8448/vm-manager FC_CA_FILE=/tmp/fc-ca.pem FC_USER=alice \\
    FC_PASSWORD=alice-pw labctl fosscloud list")]
    Fosscloud(FcSimArgs),
}

/// `labctl sim pve` options.
#[derive(Debug, Args)]
pub struct PveSimArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8006", value_name = "ADDR")]
    listen: SocketAddr,
    /// Number of nodes pve1…pveN (1-32).
    #[arg(long, default_value_t = 3, value_name = "N")]
    nodes: usize,
    /// The user that can log in (its password: PVE_SIM_PASSWORD, else generated and
    /// printed; an API token: PVE_SIM_TOKEN=USER@REALM!ID=SECRET; a TOTP second factor:
    /// PVE_SIM_TOTP_SECRET; secrets are never taken from arguments).
    #[arg(long, value_name = "USER@REALM", default_value = "root@pam")]
    user: String,
    /// Seed of MAC addresses, DHCP leases and injected faults.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Ticket lifetime in real seconds (not scaled).
    #[arg(long, value_name = "SECONDS", default_value_t = 7200,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ticket_lifetime: u64,
    /// Simulated time factor (0.05: a 20 s boot takes 1 s).
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    time_scale: f64,
    /// Serve plain HTTP instead of HTTPS with a self-signed certificate.
    #[arg(long)]
    plain_http: bool,
    /// Probability (0-1) of an injected fault per request.
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    fault_rate: f64,
    /// Memory of every node in GiB (running guests reserve their `memory`; a start that
    /// does not fit fails as on PVE). Default 2048.
    #[arg(long, value_name = "GIB", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(4..=1_048_576))]
    node_memory: u64,
    /// CPU threads of every node (`maxcpu`).
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    node_cpus: u32,
    /// Add a storage with this id on every node, shared (e.g. `rbd`, `nfs`): templates on
    /// it may be cloned to any node.
    #[arg(long, value_name = "ID")]
    shared_storage: Option<String>,
    /// Make every node's `local-lvm` a thick LVM, on which linked clones are impossible
    /// (what `labctl doctor` reports on such a cluster).
    #[arg(long)]
    no_linked_clones: bool,
}

/// `labctl sim fosscloud` options (those of the `fosscloud-sim` binary).
#[derive(Debug, Args)]
pub struct FcSimArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8448", value_name = "ADDR")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS with a generated certificate.
    #[arg(long)]
    plain_http: bool,
    /// Directory and configuration from a .toml or .json file.
    #[arg(long, value_name = "FILE")]
    fixture: Option<PathBuf>,
    /// Write the generated CA certificate (PEM) here, for clients to trust (--ca-file).
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// Extra DNS name or IP address for the certificate (repeatable).
    #[arg(long, value_name = "NAME")]
    tls_name: Vec<String>,
    /// Set `enable` to false (every call answers 500022).
    #[arg(long)]
    disable_api: bool,
    /// Set `macByParameter` to true (MAC addresses accepted in mapping URLs).
    #[arg(long)]
    mac_by_parameter: bool,
    /// Pretend the FC4School module is not installed.
    #[arg(long)]
    no_school_module: bool,
    /// Override `defaultRealm`.
    #[arg(long, value_name = "ID")]
    default_realm: Option<String>,
}

/// Serves until Ctrl-C.
pub async fn run(args: &SimArgs) -> anyhow::Result<()> {
    match &args.which {
        None => pve(&args.pve).await,
        Some(SimCommand::Pve(a)) => pve(a).await,
        Some(SimCommand::Fosscloud(a)) => fosscloud(a).await,
    }
}

async fn pve(args: &PveSimArgs) -> anyhow::Result<()> {
    // Bad arguments are usage errors (exit 2), said before anything starts.
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        return Err(crate::fail::usage(format!(
            "--time-scale {}: allowed: a number above 0 (1 = real time, 0.05 = twenty times \
             faster)",
            args.time_scale
        )));
    }
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(crate::fail::usage(format!(
            "--fault-rate {}: allowed: a probability from 0 to 1 (0.1 = one request in ten \
             fails)",
            args.fault_rate
        )));
    }
    let mut builder = Simulator::builder()
        .listen(args.listen)
        .nodes(args.nodes)
        .user(args.user.clone())
        .seed(args.seed)
        .ticket_lifetime(std::time::Duration::from_secs(args.ticket_lifetime))
        .time_scale(args.time_scale)
        .fault_rate(args.fault_rate)
        .plain_http(args.plain_http)
        .node_memory(args.node_memory * 1024 * 1024 * 1024)
        .node_cpus(args.node_cpus)
        .linked_clones(!args.no_linked_clones);
    if let Some(id) = &args.shared_storage {
        builder = builder.shared_storage(id.clone());
    }
    // The password comes from the environment only (argv is visible to other users).
    if let Ok(p) = std::env::var("PVE_SIM_PASSWORD") {
        builder = builder.password(p);
    }
    if let Ok(t) = std::env::var("PVE_SIM_TOKEN") {
        builder = builder.token(t);
    }
    if let Ok(t) = std::env::var("PVE_SIM_TOTP_SECRET") {
        builder = builder.totp_secret(t);
    }
    let sim = builder.start().await?;
    println!(
        "pve-sim listening on {} fingerprint {}",
        sim.url(),
        sim.fingerprint()
    );
    let tls = if args.plain_http {
        String::new()
    } else {
        format!(" PVE_FINGERPRINT={}", sim.fingerprint())
    };
    if sim.password_generated() {
        println!("generated password for {}: {}", sim.user(), sim.password());
    }
    println!(
        "try: PVE_HOST={} PVE_USER={} PVE_PASSWORD=…{tls} LABCTL_TIME_SCALE={} \\\n       labctl lab up examples/exam.toml",
        sim.url(),
        sim.user(),
        args.time_scale
    );
    println!("Ctrl-C stops the simulator");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}

async fn fosscloud(args: &FcSimArgs) -> anyhow::Result<()> {
    let mut fixture = match &args.fixture {
        Some(path) => fosscloud_sim::Fixture::from_path(path)?,
        None => fosscloud_sim::Fixture::default(),
    };
    let config = &mut fixture.config;
    config.enable &= !args.disable_api;
    config.mac_by_parameter |= args.mac_by_parameter;
    config.school_module &= !args.no_school_module;
    if let Some(realm) = &args.default_realm {
        config.default_realm.clone_from(realm);
    }
    let mut builder = fosscloud_sim::Simulator::builder()
        .listen(args.listen)
        .plain_http(args.plain_http)
        .fixture(fixture);
    for name in &args.tls_name {
        builder = builder.tls_name(name);
    }
    let sim = builder.start().await?;
    println!("fosscloud-sim listening on {}", sim.base_url());
    let mut env = format!("FC_URL={}", sim.base_url());
    if let Some(pem) = sim.ca_certificate_pem() {
        if let Some(path) = &args.ca_out {
            std::fs::write(path, pem)
                .with_context(|| format!("writing the CA certificate to {}", path.display()))?;
            env.push_str(&format!(" FC_CA_FILE={}", path.display()));
        } else {
            println!("(--ca-out FILE writes its CA certificate for --ca-file)");
        }
    } else {
        env.push_str(" (add --allow-http)");
    }
    println!("try: {env} FC_USER=alice FC_PASSWORD=alice-pw labctl fosscloud list");
    println!("Ctrl-C stops the simulator");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
