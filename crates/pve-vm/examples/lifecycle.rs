//! Clones TEMPLATE as HOSTNAME, starts it, waits for the guest agent (QEMU), prints its
//! addresses, stops and destroys it, printing each step and its duration.
//!
//! ```text
//! PVE_SIM_PASSWORD=secret cargo run -p pve-sim -- --plain-http --time-scale 0.05
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-vm --example lifecycle -- 9000 stud-01
//! ```
//!
//! Environment: `PVE_HOST`; `PVE_TOKEN` or `PVE_USER` + `PVE_PASSWORD`; optionally one of
//! `PVE_FINGERPRINT`, `PVE_CA_FILE`, `PVE_INSECURE=1`.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use pve_net::NetApi;
use pve_vm::{CloneOptions, DestroyOptions, Guest, GuestKind, VmApi, VmId};

async fn step<T, F: Future<Output = anyhow::Result<T>>>(what: &str, f: F) -> anyhow::Result<T> {
    let started = Instant::now();
    println!("{what} …");
    let out = f.await;
    let took = started.elapsed();
    match &out {
        Ok(_) => println!("{what}: done in {took:.2?}"),
        Err(e) => println!("{what}: FAILED after {took:.2?}: {e:#}"),
    }
    out
}

async fn run(student: &Guest) -> anyhow::Result<()> {
    step("start", async { Ok(student.start().await?) }).await?;
    if student.kind() == GuestKind::Qemu {
        step("wait for the guest agent", async {
            Ok(student.wait_agent(Duration::from_secs(300)).await?)
        })
        .await?;
    }
    let net = NetApi::new();
    let ip = step("wait for an IPv4 address", async {
        Ok(net.wait_for_ip(student, Duration::from_secs(300)).await?)
    })
    .await?;
    println!("primary address: {ip}");
    for iface in net.interfaces(student).await? {
        let addrs: Vec<String> = iface.addresses.iter().map(ToString::to_string).collect();
        println!(
            "  {:<10} {:<17} {}",
            iface.name,
            iface.mac.as_deref().unwrap_or("-"),
            addrs.join(" ")
        );
    }
    step("stop", async { Ok(student.stop().await?) }).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: lifecycle TEMPLATE HOSTNAME (e.g. lifecycle 9000 stud-01)";
    let template: VmId = args.next().context(usage)?.parse()?;
    let hostname = args.next().context(usage)?;

    let api = VmApi::new(pve_auth::client_from_env()?);
    let total = Instant::now();
    let template = step("look up the template", async {
        Ok(api.guest(template).await?)
    })
    .await?;
    println!(
        "template {} is a {} on {}",
        template.vmid(),
        template.kind(),
        template.node()
    );
    let student = step("clone", async {
        Ok(template
            .clone_to(CloneOptions {
                hostname: Some(hostname.clone()),
                ..CloneOptions::default()
            })
            .await?)
    })
    .await?;
    println!(
        "new guest {} ({hostname}) on {}",
        student.vmid(),
        student.node()
    );

    let outcome = run(&student).await;
    // Whatever happened, remove what this program created.
    step("destroy", async {
        Ok(student
            .destroy(DestroyOptions {
                purge: true,
                destroy_unreferenced_disks: true,
                stop_first: true,
                allow_template: false,
            })
            .await?)
    })
    .await?;
    println!("total {:.2?}", total.elapsed());
    outcome
}
