//! `fosscloud-sim`: runs the FOSS-Cloud REST API simulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use fosscloud_sim::{Fixture, Simulator};

/// A FOSS-Cloud REST API simulator (vm-manager 1.3.2.1) for tests and demos.
///
/// Without --fixture it serves the built-in directory (users alice, bob, teacher, dynvmuser,
/// carol, each with password `<name>-pw`; see the crate README).
#[derive(Debug, Parser)]
#[command(name = "fosscloud-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8448")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS with a generated certificate.
    #[arg(long)]
    plain_http: bool,
    /// Directory and configuration from a .toml or .json file.
    #[arg(long, value_name = "FILE")]
    fixture: Option<PathBuf>,
    /// Write the generated CA certificate (PEM) here, for clients to trust.
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
    /// Print the effective fixture as TOML and exit (a starting point for your own file).
    #[arg(long)]
    print_fixture: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fosscloud_sim=info".into()),
        )
        .init();
    let args = Args::parse();

    let mut fixture = match &args.fixture {
        Some(path) => Fixture::from_path(path)?,
        None => Fixture::default(),
    };
    let config = &mut fixture.config;
    config.enable &= !args.disable_api;
    config.mac_by_parameter |= args.mac_by_parameter;
    config.school_module &= !args.no_school_module;
    if let Some(realm) = &args.default_realm {
        config.default_realm.clone_from(realm);
    }
    if args.print_fixture {
        print!("{}", fixture.to_toml()?);
        return Ok(());
    }

    let mut builder = Simulator::builder()
        .listen(args.listen)
        .plain_http(args.plain_http)
        .fixture(fixture);
    for name in &args.tls_name {
        builder = builder.tls_name(name);
    }
    let sim = builder.start().await?;
    if let (Some(path), Some(pem)) = (&args.ca_out, sim.ca_certificate_pem()) {
        std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
        println!("CA certificate written to {}", path.display());
    }
    println!("FOSS-Cloud API simulator at {}", sim.base_url());
    // Over HTTPS curl must trust the generated CA, or the hint fails as printed.
    let trust = match (&args.ca_out, sim.ca_certificate_pem()) {
        (_, None) => String::new(),
        (Some(path), Some(_)) => format!("--cacert {} ", path.display()),
        (None, Some(_)) => "--cacert <the file written by --ca-out FILE> ".to_owned(),
    };
    println!(
        "try: curl {trust}-u alice:alice-pw {}/api/vm/list",
        sim.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
