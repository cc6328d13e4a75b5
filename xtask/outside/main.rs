//! An outside tool built by `cargo xtask package` against the *packaged* library crates
//! (by version, through `[patch.crates-io]` to the unpacked `.crate` files), never the
//! workspace's sources: the three small tools a new user writes from the READMEs, run
//! against an in-process pve-sim on 127.0.0.1.
//!
//! 1. clone a template with a host name, start it, wait for the agent and read its IP
//!    (`pve-vm`, `pve-net`), then destroy it;
//! 2. fence a range of guests so they reach only the teacher, verify, lift it again
//!    (`pve-firewall`);
//! 3. a lab of three students through `lab-core`'s engine on `lab-proxmox`, then down,
//!    and the same on the in-memory fake.
//!
//! Ids, node and lab names are one type in every crate (`lab_types`, re-exported): the
//! engine's result goes straight into `pve-vm`, the lab's name straight into `pve-firewall`.

use std::time::Duration;

use anyhow::ensure;
use lab_core::fake::FakeHypervisor;
use lab_core::{apply, no_progress, teardown, DownOptions, LabName, LabSpec};
use lab_proxmox::{PveClient, ProxmoxLab, Secret, Timing};
use pve_firewall::isolation::{Isolation, IsolationOptions, Students};
use pve_firewall::{Cidr, VmId};
use pve_net::NetApi;
use pve_vm::{CloneOptions, DestroyOptions, NewId, VmApi};

const SCALE: f64 = 0.01;

fn client(base: &str) -> anyhow::Result<PveClient> {
    Ok(PveClient::builder(base)
        .password("root@pam", Secret::new("outside"))
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = pve_sim::Simulator::builder()
        .plain_http(true)
        .password("outside")
        .time_scale(SCALE)
        .start()
        .await?;
    let base = sim.base_url();
    let before = sim.state()["guests"].as_array().map_or(0, Vec::len);

    // 1. Clone, start, agent, IP, destroy.
    let vms = VmApi::with_timing(client(&base)?, Timing::default().scaled(SCALE));
    let template = vms.guest(VmId::new(9000)?).await?;
    let student = template
        .clone_to(CloneOptions {
            newid: NewId::Exact(VmId::new(7001)?),
            hostname: Some("outside-01".into()),
            ..CloneOptions::default()
        })
        .await?;
    student.start().await?;
    student.wait_agent(Duration::from_secs(30)).await?;
    let ip = NetApi::new()
        .wait_for_ip(&student, Duration::from_secs(30))
        .await?;
    println!("1. clone and IP: {} has {ip}", student.vmid());

    // 2. The fence of a range, verified, then lifted.
    let iso = Isolation::new(client(&base)?);
    let students = Students::Range {
        first: VmId::new(7001)?,
        last: VmId::new(7001)?,
    };
    let lab = LabName::new("outside")?;
    let options = IsolationOptions::new(lab.clone());
    let allowed: [Cidr; 1] = ["10.10.0.1/32".parse()?];
    iso.isolate(&students, &allowed, &options).await?;
    let check = iso.verify(&students, &allowed, &options).await?;
    ensure!(check.is_isolated(), "the fence does not hold: {check}");
    iso.unisolate(&students, &options).await?;
    println!("2. fence: isolated, verified, lifted");
    student
        .destroy(DestroyOptions {
            stop_first: true,
            purge: true,
            ..DestroyOptions::default()
        })
        .await?;

    // 3. A lab through the engine, on the simulator and on the fake.
    let mut spec = LabSpec::new(lab.clone(), template.vmid(), 3)?;
    spec.ids = "7100-7199".parse()?;
    spec.teachers = vec!["10.10.0.1".parse()?];
    spec.timeouts = spec.timeouts.scaled(SCALE);
    let hv = ProxmoxLab::with_timing(client(&base)?, Timing::default().scaled(SCALE));
    let report = apply(&hv, &spec, &no_progress).await?;
    ensure!(report.students.len() == 3, "three students up");
    // The engine's row goes into pve-vm as it is: one VmId, one NodeName.
    let first = &report.students[0];
    let guest = vms.guest(first.vmid).await?;
    ensure!(guest.node() == &first.node, "{} is on {}", first.vmid, first.node);
    teardown(&hv, &lab, &DownOptions::new(4), &no_progress).await?;
    let fake = FakeHypervisor::new().with_template(9000, "pve1");
    let report = apply(&fake, &spec, &no_progress).await?;
    ensure!(report.students.len() == 3, "three students up on the fake");
    println!("3. lab: three students up and down");

    let after = sim.state()["guests"].as_array().map_or(0, Vec::len);
    ensure!(after == before, "the cluster has {after} guests after, {before} before");
    sim.shutdown().await;
    println!("outside tool: ok");
    Ok(())
}
