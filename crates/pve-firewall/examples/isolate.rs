//! Fences students FIRST..=LAST off so they reach only ALLOWED_IP (and each other not at
//! all), verifies the fence, and prints what changed; `--undo` lifts it again and restores
//! every prior value.
//!
//! Environment (as pve-auth's `whoami` example):
//! - `PVE_HOST` (required): `pve1`, `https://pve1:8006`, or `http://127.0.0.1:8006` for the simulator
//! - `PVE_TOKEN` (`USER@REALM!TOKENID=SECRET`), or `PVE_USER` + `PVE_PASSWORD`
//! - at most one of `PVE_FINGERPRINT` (pin the certificate), `PVE_CA_FILE`, `PVE_INSECURE=1`
//! - `LAB` (default `exam`), `PVE_MANAGEMENT` (comma list of admin networks kept able to reach
//!   the hosts when the datacenter firewall is switched on), `TEACHER` (the teacher's VMID)
//!
//! Against the simulator (teacher 100 at 10.10.0.1; its running guests 200 and 201 serve as
//! students here, or clone your own first, e.g. with pve-vm's `lifecycle` example):
//!
//! ```text
//! PVE_SIM_PASSWORD=secret cargo run -p pve-sim -- --plain-http --time-scale 0.05
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-firewall --example isolate -- 200 201 10.10.0.1
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-firewall --example isolate -- 200 201 10.10.0.1 --undo
//! ```
//!
//! The first run prints 16 changes and `lab exam: isolated`; a second run prints `nothing to
//! change`; `--undo` restores every recorded value, and a second `--undo` changes nothing.

use anyhow::bail;
use clap::Parser;
use pve_firewall::isolation::{Isolation, IsolationOptions, LabName, Students};
use pve_firewall::Cidr;
use pve_vm::VmId;

/// Isolate (or, with --undo, un-isolate) a range of student guests.
#[derive(Parser)]
struct Args {
    /// First student VMID.
    first: u32,
    /// Last student VMID (inclusive).
    last: u32,
    /// The address (or network) students may reach: the teacher.
    allowed: Cidr,
    /// Lift the fence and restore the prior state.
    #[arg(long)]
    undo: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let students = Students::Range {
        first: VmId::new(args.first)?,
        last: VmId::new(args.last)?,
    };
    let mut options =
        IsolationOptions::new(LabName::new(&env("LAB").unwrap_or_else(|| "exam".into()))?);
    if let Some(nets) = env("PVE_MANAGEMENT") {
        options.management = nets.split(',').map(str::parse).collect::<Result<_, _>>()?;
    }
    if let Some(t) = env("TEACHER") {
        options.teacher = Some(t.parse()?);
    }
    let iso = Isolation::new(pve_auth::client_from_env()?);
    let allowed = [args.allowed];
    if args.undo {
        print!("{}", iso.unisolate(&students, &options).await?);
        return Ok(());
    }
    print!("{}", iso.isolate(&students, &allowed, &options).await?);
    let check = iso.verify(&students, &allowed, &options).await?;
    print!("{check}");
    if !check.is_isolated() {
        bail!("the fence is not complete; see above");
    }
    Ok(())
}
