//! Networks as layer-2 segments: applied vnets are bridges, guests on different vnets
//! do not reach each other unless a guest routes, a NIC on a missing bridge has no
//! carrier, subnets with a DHCP range hand out leases.

use serde_json::Value;

use crate::common::Api;

const VNETS: &str = "/cluster/sdn/vnets";

/// Zone `zlab` (simple, dnsmasq) with vnets `s01`, `s02` and a /24 with a DHCP range
/// on each; applied.
async fn two_vnets(api: &Api) {
    api.post(
        "/cluster/sdn/zones",
        &[
            ("zone", "zlab"),
            ("type", "simple"),
            ("dhcp", "dnsmasq"),
            ("ipam", "pve"),
        ],
    )
    .await;
    for (vnet, n) in [("s01", "1"), ("s02", "2")] {
        api.post(VNETS, &[("vnet", vnet), ("zone", "zlab")]).await;
        api.post(
            &format!("{VNETS}/{vnet}/subnets"),
            &[
                ("subnet", &format!("10.100.{n}.0/24")),
                ("type", "subnet"),
                ("gateway", &format!("10.100.{n}.1")),
                (
                    "dhcp-range",
                    &format!("start-address=10.100.{n}.100,end-address=10.100.{n}.200"),
                ),
            ],
        )
        .await;
    }
    apply(api).await;
}

async fn apply(api: &Api) {
    let upid = api.put("/cluster/sdn", &[]).await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
}

/// Clone 9000 to `vmid` with its NICs on `bridges` (net0, net1, …) and start it.
async fn guest_on(api: &Api, vmid: u32, bridges: &[&str]) {
    api.clone_vm(vmid, &format!("g{vmid}")).await;
    let path = format!("/nodes/pve1/qemu/{vmid}/config");
    let mut params: Vec<(String, String)> = Vec::new();
    for (i, b) in bridges.iter().enumerate() {
        let mac = format!("BC:24:11:{:02X}:{:02X}:{i:02X}", vmid / 256, vmid % 256);
        params.push((format!("net{i}"), format!("virtio={mac},bridge={b}")));
    }
    let p: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    api.put(&path, &p).await;
    api.post_ok(&format!("/nodes/pve1/qemu/{vmid}/status/start"), &[])
        .await;
}

async fn reach(api: &Api, from: u32, to: &str) -> Value {
    let v = api.sim.reachability(from, to, "tcp", Some(22)).unwrap();
    serde_json::json!({"allowed": v.allowed, "reason": v.reason})
}

/// The IPv4 addresses the agent reports, per interface name (waits for the agent).
async fn agent_ipv4(api: &Api, vmid: u32) -> Vec<(String, String)> {
    let path = format!("/nodes/pve1/qemu/{vmid}/agent/network-get-interfaces");
    let a = api
        .wait_for(&path, |a| {
            a.status == 200
                && a.data()["result"].as_array().is_some_and(|ifs| {
                    ifs.iter()
                        .skip(1)
                        .any(|i| i.to_string().contains("\"ipv4\""))
                })
        })
        .await;
    let mut out = Vec::new();
    for i in a.data()["result"].as_array().unwrap() {
        for ip in i["ip-addresses"].as_array().into_iter().flatten() {
            if ip["ip-address-type"] == "ipv4" {
                out.push((
                    i["name"].as_str().unwrap().to_owned(),
                    format!("{}/{}", ip["ip-address"].as_str().unwrap(), ip["prefix"]),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn students_on_different_vnets_do_not_reach_each_other_on_the_same_vnet_they_do() {
    let api = Api::start(0.01).await;
    two_vnets(&api).await;
    guest_on(&api, 150, &["s01"]).await;
    guest_on(&api, 151, &["s01"]).await;
    guest_on(&api, 152, &["s02"]).await;
    assert_eq!(reach(&api, 150, "151").await["allowed"], true);
    let v = reach(&api, 150, "152").await;
    assert_eq!(v["allowed"], false, "{v}");
    let why = v["reason"].as_str().unwrap();
    assert!(why.contains("share no network segment"), "{why}");
    assert!(
        why.contains("net0 on s01 on pve1") && why.contains("net0 on s02 on pve1"),
        "{why}"
    );
    // Nor do they reach the teacher on the uplink.
    assert_eq!(reach(&api, 150, "100").await["allowed"], false);
    // A router with a NIC on each vnet and forwarding on joins them.
    guest_on(&api, 153, &["s01", "s02"]).await;
    assert_eq!(reach(&api, 150, "152").await["allowed"], false);
    api.sim
        .put_guest_state(
            153,
            serde_json::json!({"files": {"/proc/sys/net/ipv4/ip_forward": {"content": "1\n"}}}),
        )
        .unwrap();
    assert_eq!(reach(&api, 150, "152").await["allowed"], true);
}

#[tokio::test]
async fn a_guest_on_a_vnet_not_yet_applied_has_no_carrier_until_the_apply() {
    let api = Api::start(0.01).await;
    api.post(
        "/cluster/sdn/zones",
        &[("zone", "zlab"), ("type", "simple")],
    )
    .await;
    api.post(VNETS, &[("vnet", "s03"), ("zone", "zlab")]).await;
    guest_on(&api, 160, &["vmbr0", "s03"]).await;
    let view = api.sim.guest_state(160).unwrap()["view"]["interfaces"].clone();
    let ens19 = view
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "ens19")
        .unwrap()
        .clone();
    assert!(ens19["flags"].to_string().contains("NO-CARRIER"), "{ens19}");
    guest_on(&api, 161, &["s03"]).await;
    let v = reach(&api, 161, "100").await;
    assert_eq!(v["allowed"], false);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("no NIC with carrier"),
        "{v}"
    );
    apply(&api).await;
    let view = api.sim.guest_state(160).unwrap()["view"]["interfaces"].clone();
    assert!(!view.to_string().contains("NO-CARRIER"), "{view}");
    // Both now sit on s03 on pve1.
    assert_eq!(reach(&api, 161, "160").await["allowed"], true);
}

#[tokio::test]
async fn nics_get_leases_from_their_subnets_dhcp_range_and_the_uplink_keeps_the_lab_lease() {
    let api = Api::start(0.01).await;
    two_vnets(&api).await;
    guest_on(&api, 170, &["vmbr0", "s01"]).await;
    guest_on(&api, 171, &["s01"]).await;
    let a = agent_ipv4(&api, 170).await;
    assert!(
        a.iter()
            .any(|(n, ip)| n == "ens18" && ip.starts_with("10.10.") && ip.ends_with("/16")),
        "{a:?}"
    );
    assert!(
        a.contains(&("ens19".to_owned(), "10.100.1.100/24".to_owned())),
        "{a:?}"
    );
    let b = agent_ipv4(&api, 171).await;
    assert!(
        b.contains(&("ens18".to_owned(), "10.100.1.101/24".to_owned())),
        "{b:?}"
    );
    assert!(!b.iter().any(|(_, ip)| ip.starts_with("10.10.")), "{b:?}");
    // The lease is kept across a restart.
    api.post_ok("/nodes/pve1/qemu/171/status/stop", &[]).await;
    api.post_ok("/nodes/pve1/qemu/171/status/start", &[]).await;
    let b = agent_ipv4(&api, 171).await;
    assert!(
        b.contains(&("ens18".to_owned(), "10.100.1.101/24".to_owned())),
        "{b:?}"
    );
}

/// The flags of interface `ifname` in the guest's view (`NO-CARRIER` when its bridge
/// does not exist).
fn flags(api: &Api, vmid: u32, ifname: &str) -> String {
    let view = api.sim.guest_state(vmid).unwrap()["view"]["interfaces"].clone();
    view.as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == ifname)
        .unwrap_or_else(|| panic!("no {ifname} in {view}"))["flags"]
        .to_string()
}

/// The carrier, the lab lease and the subnet leases follow a NIC whose bridge the
/// config API changes (synchronous `PUT`, the `POST` task, `delete`, a snapshot's
/// rollback): the simulator recomputes the network view on each of these changes.
#[tokio::test]
async fn carrier_and_leases_follow_a_nic_moved_through_the_config_api() {
    let api = Api::start(0.01).await;
    two_vnets(&api).await;
    let path = "/nodes/pve1/qemu/180/config";
    guest_on(&api, 180, &["vmbr0", "s01"]).await;
    let mac1 = "BC:24:11:00:B4:01";
    assert!(!flags(&api, 180, "ens19").contains("NO-CARRIER"));
    let a = agent_ipv4(&api, 180).await;
    assert!(
        a.contains(&("ens19".to_owned(), "10.100.1.100/24".to_owned())),
        "{a:?}"
    );
    api.post_ok(
        "/nodes/pve1/qemu/180/snapshot",
        &[("snapname", "on-s01"), ("vmstate", "0")],
    )
    .await;

    // PUT: onto a bridge that does not exist: no carrier, no subnet lease.
    api.put(path, &[("net1", &format!("virtio={mac1},bridge=nope"))])
        .await;
    assert!(flags(&api, 180, "ens19").contains("NO-CARRIER"));
    let a = agent_ipv4(&api, 180).await;
    assert!(!a.iter().any(|(n, _)| n == "ens19"), "{a:?}");

    // POST (a qmconfig task): onto s02, a lease from its range.
    api.post_ok(path, &[("net1", &format!("virtio={mac1},bridge=s02"))])
        .await;
    assert!(!flags(&api, 180, "ens19").contains("NO-CARRIER"));
    let a = agent_ipv4(&api, 180).await;
    assert!(
        a.contains(&("ens19".to_owned(), "10.100.2.100/24".to_owned())),
        "{a:?}"
    );

    // The uplink NIC moves off vmbr0: the lab lease goes with it.
    api.put(
        path,
        &[("net0", "virtio=BC:24:11:00:B4:00,bridge=vmbr0,tag=7")],
    )
    .await;
    let a = agent_ipv4(&api, 180).await;
    assert!(!a.iter().any(|(_, ip)| ip.starts_with("10.10.")), "{a:?}");
    assert_eq!(reach(&api, 180, "100").await["allowed"], false);

    // delete: the NIC is gone, and so is its lease.
    api.put(path, &[("delete", "net1")]).await;
    let view = api.sim.guest_state(180).unwrap()["view"].to_string();
    assert!(
        !view.contains("ens19") && !view.contains("10.100."),
        "{view}"
    );

    // Rollback: the snapshot's NICs, carrier and leases again.
    let upid = api
        .post("/nodes/pve1/qemu/180/snapshot/on-s01/rollback", &[])
        .await;
    assert_eq!(api.wait_task(&upid).await["exitstatus"], "OK");
    api.post_ok("/nodes/pve1/qemu/180/status/start", &[]).await;
    assert!(!flags(&api, 180, "ens19").contains("NO-CARRIER"));
    assert_eq!(reach(&api, 180, "100").await["allowed"], true);
    let a = agent_ipv4(&api, 180).await;
    assert!(
        a.contains(&("ens19".to_owned(), "10.100.1.100/24".to_owned())),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|(n, ip)| n == "ens18" && ip.starts_with("10.10.")),
        "{a:?}"
    );
}
