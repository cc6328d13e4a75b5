//! Prints the addresses of guest VMID: every interface, the primary IPv4 address, or the
//! host name when there is none.
//!
//! ```text
//! PVE_SIM_PASSWORD=secret cargo run -p pve-sim -- --plain-http --time-scale 0.05
//! PVE_HOST=http://127.0.0.1:8006 PVE_USER=root@pam PVE_PASSWORD=secret \
//!     cargo run -p pve-net --example ip -- 100
//! ```
//!
//! Environment: `PVE_HOST`; `PVE_TOKEN` or `PVE_USER` + `PVE_PASSWORD`; optionally one of
//! `PVE_FINGERPRINT`, `PVE_CA_FILE`, `PVE_INSECURE=1`.

use anyhow::Context;
use pve_net::NetApi;
use pve_vm::{VmApi, VmId};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let vmid: VmId = std::env::args()
        .nth(1)
        .context("usage: ip VMID (e.g. ip 100)")?
        .parse()?;
    let api = VmApi::new(pve_auth::client_from_env()?);
    let guest = api.guest(vmid).await?;
    let net = NetApi::new();
    println!("{} {} on {}", guest.kind(), guest.vmid(), guest.node());
    for iface in net.interfaces(&guest).await? {
        let addrs: Vec<String> = iface.addresses.iter().map(ToString::to_string).collect();
        println!(
            "  {:<10} {:<17} {}",
            iface.name,
            iface.mac.as_deref().unwrap_or("-"),
            addrs.join(" ")
        );
    }
    println!("address: {}", net.ip_or_hostname(&guest).await?);
    Ok(())
}
