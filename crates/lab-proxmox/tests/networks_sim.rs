//! Per-student networks against the simulator's SDN (real HTTP on 127.0.0.1): one apply
//! per ensure and per removal, nothing sent but listings when nothing is missing, a vnet
//! of another owner refused and left alone, and a topology lab brought up by the engine
//! with its NICs on the students' vnets.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::{sim, spec};
use lab_core::{
    apply, no_progress, vnet_id, Fencing, LabName, MachineSpec, NetworkPlan, Networks, NicSpec,
    StudentNetwork, Topology, VmId,
};
use pve_sdn::{NewVnet, Sdn, VnetId, ZoneId};
use serde_json::Value;

fn lab(s: &str) -> LabName {
    LabName::new(s).unwrap()
}

fn plan() -> NetworkPlan {
    NetworkPlan {
        subnets: Some((Ipv4Addr::new(10, 100, 0, 0), 16)),
        ..NetworkPlan::default()
    }
}

fn wanted(l: &LabName) -> Vec<StudentNetwork> {
    (1..=2)
        .map(|n| StudentNetwork {
            id: vnet_id(l, n, 0),
            student: format!("stud-{n:02}"),
            network: "lan".into(),
            subnet: Some((Ipv4Addr::new(10, 100, n as u8 - 1, 0), 24)),
        })
        .collect()
}

/// Requests other than `GET`s since the last reset.
fn writes(requests: &Value) -> Vec<String> {
    requests
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| !k.starts_with("GET") && v.as_u64().unwrap_or(0) > 0)
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn ensure_applies_once_then_only_lists_and_remove_cleans_up_once() {
    let (sim, hv) = sim().await;
    let l = lab("net1");
    let made = hv.ensure_networks(&l, &plan(), wanted(&l)).await.unwrap();
    assert_eq!(sim.sdn_applies(), 1);
    assert_eq!(made.len(), 2);
    assert!(made.iter().all(|n| !n.pending), "{made:?}");
    assert_eq!(made[0].subnet.as_deref(), Some("10.100.0.0/24"));
    let listed = hv.lab_networks(&l).await.unwrap();
    assert_eq!(listed, made);
    let state = sim.sdn();
    let zone = lab_core::lab_zone_id(&l);
    let dhcp = &state["running"]["zones"][&zone]["dhcp"];
    assert_eq!(dhcp, "dnsmasq", "{state:#}");
    for s in state["running"]["subnets"].as_object().unwrap().values() {
        assert!(s.get("gateway").is_none(), "a gateway routes: {s}");
    }

    sim.reset_requests();
    let again = hv.ensure_networks(&l, &plan(), wanted(&l)).await.unwrap();
    assert_eq!(again, made);
    assert_eq!(sim.sdn_applies(), 1);
    assert!(writes(&sim.requests()).is_empty(), "{:#}", sim.requests());

    let removed = hv.remove_networks(&l).await.unwrap();
    assert!(removed.applied);
    assert_eq!(removed.vnets.len(), 2);
    assert_eq!(removed.zone.as_deref(), Some(zone.as_str()));
    assert_eq!(sim.sdn_applies(), 2);
    assert!(hv.lab_networks(&l).await.unwrap().is_empty());
    let again = hv.remove_networks(&l).await.unwrap();
    assert!(!again.applied && again.vnets.is_empty() && again.zone.is_none());
    assert_eq!(sim.sdn_applies(), 2);
}

#[tokio::test]
async fn a_foreign_vnet_is_refused_and_survives_the_labs_removal() {
    let (sim, hv) = sim().await;
    let l = lab("net2");
    let w = wanted(&l);
    // Someone else's vnet with the id the lab wants, in a zone of their own.
    let client = pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap();
    let sdn = Sdn::with_vm_api(pve_vm::VmApi::with_timing(
        client,
        pve_vm::Timing::default().scaled(common::SCALE),
    ));
    let token = sdn.lock(false).await.unwrap();
    let other = ZoneId::new("other").unwrap();
    sdn.create_zone(&pve_sdn::NewZone::simple(other.clone()), Some(&token))
        .await
        .unwrap();
    let mut v = NewVnet::new(VnetId::new(w[1].id.clone()).unwrap(), other);
    v.alias = Some("printer lan".into());
    sdn.create_vnet(&v, Some(&token)).await.unwrap();
    sdn.apply(&token, std::time::Duration::from_secs(30))
        .await
        .unwrap();

    let e = hv
        .ensure_networks(&l, &plan(), w.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&w[1].id) && e.contains("printer lan"), "{e}");
    assert_eq!(sim.sdn_applies(), 1, "nothing applied for the refused lab");
    // Without the clashing network the lab gets its own; removing it spares the other.
    hv.ensure_networks(&l, &plan(), w[..1].to_vec())
        .await
        .unwrap();
    let removed = hv.remove_networks(&l).await.unwrap();
    assert_eq!(removed.vnets, [w[0].id.clone()]);
    let left = sdn.vnets(true).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].alias.as_deref(), Some("printer lan"));
    assert!(sdn
        .zones(false)
        .await
        .unwrap()
        .iter()
        .any(|z| z.zone.as_str() == "other"));
}

#[tokio::test]
async fn a_topology_lab_comes_up_with_nics_on_the_students_vnets() {
    let (sim, hv) = sim().await;
    let mut s = spec("topo", 2);
    let template = VmId::new(9000).unwrap();
    s.topology = Some(Topology {
        machines: vec![
            MachineSpec {
                role: "router".into(),
                template,
                nics: vec![NicSpec::Uplink, NicSpec::Network("lan".into())],
            },
            MachineSpec {
                role: "host1".into(),
                template,
                nics: vec![NicSpec::Network("lan".into())],
            },
        ],
        networks: vec!["lan".into()],
        plan: plan(),
    });
    let report = apply(&hv, &s, &no_progress).await.unwrap();
    assert_eq!(sim.sdn_applies(), 1);
    let l = s.name.clone();
    let state = sim.state();
    let guests = state["guests"].as_array().unwrap();
    let config = |name: &str| -> Value {
        guests
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("no guest {name}: {state:#}"))
            .clone()
    };
    for (n, student) in ["stud-01", "stud-02"].iter().enumerate() {
        let vnet = vnet_id(&l, n as u32 + 1, 0);
        let router = config(&format!("{student}-router"));
        let net0 = router["config"]["net0"].as_str().unwrap();
        let net1 = router["config"]["net1"].as_str().unwrap();
        assert!(
            net0.contains("bridge=vmbr0") && net0.contains("firewall=1"),
            "{net0}"
        );
        assert!(
            net1.starts_with("virtio") && net1.contains(&format!("bridge={vnet}")),
            "{net1}"
        );
        assert!(!net1.contains("firewall=1"), "{net1}");
        let host = config(&format!("{student}-host1"));
        let net0 = host["config"]["net0"].as_str().unwrap();
        assert!(
            net0.contains(&format!("bridge={vnet}")) && net0.contains("firewall=0"),
            "{net0}"
        );
        let vmid = VmId::new(host["vmid"].as_u64().unwrap() as u32).unwrap();
        assert!(
            hv.fenced(&l, vmid).await.unwrap(),
            "{student}-host1 on its own vnet counts as fenced"
        );
    }
    assert!(!report.students.is_empty());
}
