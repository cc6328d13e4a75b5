//! `labctl sim`: the embedded Proxmox VE simulator in the foreground.

use std::net::SocketAddr;

use clap::Args;
use pve_sim::Simulator;

/// `labctl sim` options.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8006", value_name = "ADDR")]
    listen: SocketAddr,
    /// Number of nodes pve1…pveN (1-32).
    #[arg(long, default_value_t = 3, value_name = "N")]
    nodes: usize,
    /// Simulated time factor (0.05: a 20 s boot takes 1 s).
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    time_scale: f64,
    /// Serve plain HTTP instead of HTTPS with a self-signed certificate.
    #[arg(long)]
    plain_http: bool,
    /// Probability (0-1) of an injected fault per request.
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    fault_rate: f64,
}

/// Serves until Ctrl-C.
pub async fn run(args: &SimArgs) -> anyhow::Result<()> {
    let mut builder = Simulator::builder()
        .listen(args.listen)
        .nodes(args.nodes)
        .time_scale(args.time_scale)
        .fault_rate(args.fault_rate)
        .plain_http(args.plain_http);
    // The password comes from the environment only (argv is visible to other users).
    if let Ok(p) = std::env::var("PVE_SIM_PASSWORD") {
        builder = builder.password(p);
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
        "try: PVE_HOST={} PVE_USER={} PVE_PASSWORD=…{tls} LABCTL_TIME_SCALE={} \\\n       labctl lab up -n exam1 -t 9000 -c 3 --teacher 10.10.0.1",
        sim.url(),
        sim.user(),
        args.time_scale
    );
    println!("Ctrl-C stops the simulator");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
