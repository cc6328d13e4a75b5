//! Per-student networks against the simulator's SDN (real HTTP on 127.0.0.1): one apply
//! per ensure and per removal, nothing sent but listings when nothing is missing, a vnet
//! of another owner refused and left alone, and a topology lab brought up by the engine
//! with its NICs on the students' vnets.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::{sim, spec};
use lab_core::{
    apply, no_progress, vnet_id, Fencing, Inventory, LabName, MachineSpec, NetworkPlan, Networks,
    NicSpec, StudentNetwork, Topology, VmId,
};
use pve_sdn::{NewVnet, Sdn, VnetId, ZoneId};
use serde_json::Value;

/// Raw SDN calls on the simulator, as root (another hand than the lab's).
fn raw(sim: &pve_sim::SimHandle) -> Sdn {
    let client = pve_auth::PveClient::builder(&sim.url())
        .password("root@pam", pve_auth::Secret::new("secret"))
        .build()
        .unwrap();
    Sdn::with_vm_api(pve_vm::VmApi::with_timing(
        client,
        pve_vm::Timing::default().scaled(common::SCALE),
    ))
}

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
    let sdn = raw(&sim);
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
                after: None,
            },
            MachineSpec {
                role: "host1".into(),
                template,
                nics: vec![NicSpec::Network("lan".into())],
                after: None,
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

    // Fenced again as an adopted or reset guest is (not fresh, no plugs), and the whole
    // lab fenced again by `isolate`: the uplink keeps its fence, the NICs on the
    // students' vnets are left alone (a re-fence must not cut a student's LAN).
    let ids: Vec<VmId> = report.students.iter().map(|g| g.vmid).collect();
    for st in &report.students {
        let guest = hv.guest(st.vmid).await.unwrap();
        hv.secure(
            guest,
            lab_core::Secure {
                lab: l.clone(),
                fresh: false,
                fence: true,
                nics: Vec::new(),
            },
        )
        .await
        .unwrap();
    }
    hv.isolate(&l, ids, vec!["10.10.0.1".parse().unwrap()])
        .await
        .unwrap();
    let state = sim.state();
    for g in state["guests"].as_array().unwrap() {
        let name = g["name"].as_str().unwrap_or_default();
        if !name.starts_with("stud-") {
            continue;
        }
        for (key, value) in g["config"].as_object().unwrap() {
            let Some(v) = value.as_str().filter(|_| key.starts_with("net")) else {
                continue;
            };
            if v.contains("bridge=vmbr0") {
                assert!(v.contains("firewall=1"), "{name} {key}: {v}");
            } else {
                assert!(!v.contains("firewall=1"), "{name} {key} re-fenced: {v}");
            }
        }
    }
    let first_host = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "stud-01-host1")
        .unwrap()["vmid"]
        .as_u64()
        .unwrap() as u32;
    let router = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "stud-01-router")
        .unwrap()["vmid"]
        .as_u64()
        .unwrap() as u32;
    let v = sim
        .reachability(first_host, &router.to_string(), "icmp", None)
        .unwrap();
    assert!(v.allowed, "the host still reaches its router: {}", v.reason);
}

#[tokio::test]
async fn a_vlan_zone_of_the_labs_own_tags_each_network_on_the_bridge() {
    let (sim, hv) = sim().await;
    let l = lab("vlan1");
    let plan = NetworkPlan {
        kind: lab_core::ZoneKind::Vlan,
        tags: (3000, 3010),
        ..plan()
    };
    let made = hv.ensure_networks(&l, &plan, wanted(&l)).await.unwrap();
    assert_eq!(
        made.iter().map(|n| n.tag).collect::<Vec<_>>(),
        [Some(3000), Some(3001)]
    );
    let state = sim.sdn();
    let zone = &state["running"]["zones"][lab_core::lab_zone_id(&l)];
    assert_eq!(zone["type"], "vlan", "{state:#}");
    assert_eq!(zone["bridge"], "vmbr0", "{state:#}");
    // No DHCP in a vlan zone: the subnets carry no range.
    for s in state["running"]["subnets"].as_object().unwrap().values() {
        assert!(s.get("dhcp-range").is_none(), "{s}");
    }
    assert_eq!(sim.sdn_applies(), 1);
    hv.remove_networks(&l).await.unwrap();
    assert_eq!(sim.sdn_applies(), 2);
}

#[tokio::test]
async fn a_lost_answer_mid_batch_releases_the_lock_and_a_rerun_completes_with_one_apply() {
    let (sim, hv) = sim().await;
    let l = lab("lost1");
    sim.fail_next_request(
        "POST",
        "/cluster/sdn/vnets",
        pve_sim::RequestFault::LostAnswer,
    )
    .unwrap();
    let e = hv
        .ensure_networks(&l, &plan(), wanted(&l))
        .await
        .unwrap_err();
    assert!(matches!(e, lab_core::Error::Busy { .. }), "{e:?}");
    assert_eq!(sim.sdn_applies(), 0);
    assert_eq!(sim.sdn()["locked"], false, "the lock was released");
    // The first vnet was made (pending) though its answer was lost: the rerun keeps it.
    let made = hv.ensure_networks(&l, &plan(), wanted(&l)).await.unwrap();
    assert_eq!(made.len(), 2);
    assert!(made.iter().all(|n| !n.pending));
    assert_eq!(sim.sdn_applies(), 1);
}

#[tokio::test]
async fn a_lock_held_by_another_hand_is_busy_and_changes_nothing() {
    let (sim, hv) = sim().await;
    let l = lab("busy1");
    let other = raw(&sim);
    let token = other.lock(false).await.unwrap();
    let e = hv
        .ensure_networks(&l, &plan(), wanted(&l))
        .await
        .unwrap_err();
    assert!(matches!(e, lab_core::Error::Busy { .. }), "{e:?}");
    assert!(other.vnets(true).await.unwrap().is_empty());
    other.unlock(&token).await.unwrap();
    hv.ensure_networks(&l, &plan(), wanted(&l)).await.unwrap();
    assert_eq!(sim.sdn_applies(), 1);
}

#[tokio::test]
async fn securing_a_guest_that_ran_keeps_its_mac_and_creates_missing_nics() {
    let (sim, hv) = sim().await;
    let l = lab("plug1");
    let w = wanted(&l);
    hv.ensure_networks(&l, &plan(), w[..1].to_vec())
        .await
        .unwrap();
    let vmid = VmId::new(200).unwrap();
    let config_of = |state: &Value| -> String {
        let g = state["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["vmid"] == 200)
            .unwrap()
            .clone();
        serde_json::to_string(&g["config"]).unwrap()
    };
    let before = config_of(&sim.state());
    let mac = before
        .split("virtio=")
        .nth(1)
        .map(|s| s[..17].to_owned())
        .unwrap();
    let guest = lab_core::Inventory::guest(&hv, vmid).await.unwrap();
    let vnet = w[0].id.clone();
    let how = lab_core::Secure {
        lab: l.clone(),
        fresh: false,
        fence: false,
        nics: vec![
            lab_core::NicPlug {
                index: 0,
                bridge: Some(vnet.clone()),
            },
            lab_core::NicPlug {
                index: 1,
                bridge: Some(vnet.clone()),
            },
        ],
    };
    sim.reset_requests();
    lab_core::Fencing::secure(&hv, guest, how).await.unwrap();
    let requests = sim.requests();
    assert_eq!(
        requests["PUT /nodes/{node}/qemu/{vmid}/config"], 1,
        "one config write: {requests:#}"
    );
    let state = sim.state();
    let g = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 200)
        .unwrap();
    let net0 = g["config"]["net0"].as_str().unwrap();
    let net1 = g["config"]["net1"].as_str().unwrap();
    assert_eq!(net0, format!("virtio={mac},bridge={vnet},firewall=0"));
    assert!(
        net1.starts_with("virtio=") && net1.ends_with(&format!(",bridge={vnet}")),
        "{net1}"
    );
}
