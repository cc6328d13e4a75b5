//! Wire tests with httpmock: every call's method, path, query and body are pinned, the
//! lock token rides on every change and a batch is applied once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use httpmock::prelude::*;
use pve_auth::{PveClient, RetryPolicy};
use pve_sdn::{
    DhcpRange, Error, LockToken, NewSubnet, NewVnet, NewZone, PendingState, Sdn, VnetId,
    VnetUpdate, ZoneId, ZoneType,
};
use pve_vm::{Timing, VmApi};
use serde_json::json;

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const UPID: &str = "UPID:pve1:0000ABCD:00012345:65144CB7:reloadnetworkall::lab@pve!ci:";
const UPID_PATH: &str =
    "/api2/json/nodes/pve1/tasks/UPID%3Apve1%3A0000ABCD%3A00012345%3A65144CB7%3Areloadnetworkall%3A%3Alab%40pve%21ci%3A/status";

fn sdn(server: &MockServer) -> Sdn {
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    Sdn::with_vm_api(VmApi::with_timing(client, Timing::default().scaled(0.001)))
}

fn null() -> serde_json::Value {
    json!({ "data": null })
}

fn zone() -> ZoneId {
    ZoneId::new("zlab").unwrap()
}

fn vnet() -> VnetId {
    VnetId::new("va0001").unwrap()
}

#[tokio::test]
async fn a_batch_carries_the_lock_token_on_every_change_and_applies_once() {
    let server = MockServer::start_async().await;
    let sdn = sdn(&server);
    let lock = server.mock(|when, then| {
        when.method(POST)
            .path("/api2/json/cluster/sdn/lock")
            .body("allow-pending=1");
        then.json_body(json!({ "data": "tok-1" }));
    });
    let zone_m = server.mock(|when, then| {
        when.method(POST)
            .path("/api2/json/cluster/sdn/zones")
            .body("zone=zlab&type=simple&dhcp=dnsmasq&ipam=pve&lock-token=tok-1");
        then.json_body(null());
    });
    let vnet_m = server.mock(|when, then| {
        when.method(POST).path("/api2/json/cluster/sdn/vnets").body(
            "vnet=va0001&zone=zlab&tag=2001&alias=labctl%20exam1%20anna%20lan&lock-token=tok-1",
        );
        then.json_body(null());
    });
    let subnet_m = server.mock(|when, then| {
        when.method(POST)
            .path("/api2/json/cluster/sdn/vnets/va0001/subnets")
            .body(
                "subnet=10.1.2.0%2F24&type=subnet&dhcp-range=start-address%3D10.1.2.10%2Cend-address%3D10.1.2.200&lock-token=tok-1",
            );
        then.json_body(null());
    });
    let update_m = server.mock(|when, then| {
        when.method(PUT)
            .path("/api2/json/cluster/sdn/vnets/va0001")
            .body("alias=renamed&delete=tag&lock-token=tok-1");
        then.json_body(null());
    });
    let apply = server.mock(|when, then| {
        when.method(PUT)
            .path("/api2/json/cluster/sdn")
            .body("lock-token=tok-1&release-lock=1");
        then.json_body(json!({ "data": UPID }));
    });
    let task = server.mock(|when, then| {
        when.method(GET).path(UPID_PATH);
        then.json_body(json!({"data": {"status": "stopped", "exitstatus": "OK"}}));
    });

    let token = sdn.lock(true).await.unwrap();
    assert_eq!(format!("{token:?}"), "LockToken(***)");
    let mut z = NewZone::simple(zone());
    z.dhcp = true;
    z.ipam = Some("pve".into());
    sdn.create_zone(&z, Some(&token)).await.unwrap();
    let mut v = NewVnet::new(vnet(), zone());
    v.tag = Some(2001);
    v.alias = Some("labctl exam1 anna lan".into());
    sdn.create_vnet(&v, Some(&token)).await.unwrap();
    let mut s = NewSubnet::new("10.1.2.0/24".parse().unwrap());
    s.dhcp_range = vec![DhcpRange {
        start: "10.1.2.10".parse().unwrap(),
        end: "10.1.2.200".parse().unwrap(),
    }];
    sdn.create_subnet(&vnet(), &s, Some(&token)).await.unwrap();
    let update = VnetUpdate {
        alias: Some("renamed".into()),
        delete: vec!["tag".into()],
        ..VnetUpdate::default()
    };
    sdn.update_vnet(&vnet(), &update, Some(&token))
        .await
        .unwrap();
    let status = sdn.apply(&token, Duration::from_secs(5)).await.unwrap();
    assert_eq!(status.upid.as_str(), UPID);

    for m in [&lock, &zone_m, &vnet_m, &subnet_m, &update_m, &apply] {
        m.assert_calls(1);
    }
    task.assert();
}

#[tokio::test]
async fn teardown_deletes_with_the_token_in_the_query_and_unlock_releases() {
    let server = MockServer::start_async().await;
    let sdn = sdn(&server);
    let token = LockToken::new("tok-2");
    let subnet = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/sdn/vnets/va0001/subnets/zlab-10.1.2.0-24")
            .query_param("lock-token", "tok-2");
        then.json_body(null());
    });
    let vnet_m = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/sdn/vnets/va0001")
            .query_param("lock-token", "tok-2");
        then.json_body(null());
    });
    let zone_m = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/sdn/zones/zlab")
            .query_param("lock-token", "tok-2");
        then.json_body(null());
    });
    let unlock = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/sdn/lock")
            .query_param("lock-token", "tok-2");
        then.json_body(null());
    });
    let lock_plain = server.mock(|when, then| {
        when.method(POST)
            .path("/api2/json/cluster/sdn/lock")
            .body("");
        then.json_body(json!({ "data": "tok-3" }));
    });
    sdn.delete_subnet(&vnet(), "zlab-10.1.2.0-24", Some(&token))
        .await
        .unwrap();
    sdn.delete_vnet(&vnet(), Some(&token)).await.unwrap();
    sdn.delete_zone(&zone(), Some(&token)).await.unwrap();
    sdn.unlock(&token).await.unwrap();
    assert_eq!(sdn.lock(false).await.unwrap().as_str(), "tok-3");
    for m in [&subnet, &vnet_m, &zone_m, &unlock, &lock_plain] {
        m.assert_calls(1);
    }
}

#[tokio::test]
async fn pending_listings_ask_pending_and_read_states() {
    let server = MockServer::start_async().await;
    let sdn = sdn(&server);
    let vnets = server.mock(|when, then| {
        when.method(GET)
            .path("/api2/json/cluster/sdn/vnets")
            .query_param("pending", "1");
        then.json_body(json!({"data": [
            {"vnet": "va0001", "type": "vnet", "state": "new",
             "pending": {"zone": "zlab", "alias": "labctl exam1 anna lan", "tag": 2001}},
            {"vnet": "other", "type": "vnet", "zone": "campus", "alias": "x", "state": "deleted"},
            {"vnet": "applied", "type": "vnet", "zone": "campus"}
        ]}));
    });
    let zones = server.mock(|when, then| {
        when.method(GET)
            .path("/api2/json/cluster/sdn/zones")
            .query_param_count("pending", ".*", 0);
        then.json_body(json!({"data": [
            {"zone": "campus", "type": "vlan", "bridge": "vmbr0", "digest": "d"},
            {"zone": "zx", "type": "evpn"}
        ]}));
    });
    let subnets = server.mock(|when, then| {
        when.method(GET)
            .path("/api2/json/cluster/sdn/vnets/va0001/subnets")
            .query_param("pending", "1");
        then.json_body(json!({"data": [
            {"subnet": "zlab-10.1.2.0-24", "type": "subnet", "vnet": "va0001", "state": "new",
             "pending": {"dhcp-range": [{"start-address": "10.1.2.10", "end-address": "10.1.2.200"}]}}
        ]}));
    });
    let v = sdn.vnets(true).await.unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].zone.as_deref(), Some("zlab"));
    assert_eq!(v[0].tag, Some(2001));
    assert_eq!(v[0].state, Some(PendingState::New));
    assert_eq!(v[1].state, Some(PendingState::Deleted));
    assert_eq!(v[2].state, None);
    let z = sdn.zones(false).await.unwrap();
    assert_eq!(z[0].kind, ZoneType::Vlan);
    assert_eq!(z[0].bridge.as_deref(), Some("vmbr0"));
    assert_eq!(z[1].kind, ZoneType::Other("evpn".into()));
    let s = sdn.subnets(&vnet(), true).await.unwrap();
    assert_eq!(s[0].id, "zlab-10.1.2.0-24");
    assert_eq!(s[0].cidr.to_string(), "10.1.2.0/24");
    assert_eq!(s[0].dhcp_range.len(), 1);
    vnets.assert();
    zones.assert();
    subnets.assert();
}

#[tokio::test]
async fn a_failed_apply_is_a_task_error_with_its_exit_status() {
    let server = MockServer::start_async().await;
    let sdn = sdn(&server);
    server.mock(|when, then| {
        when.method(PUT).path("/api2/json/cluster/sdn");
        then.json_body(json!({ "data": UPID }));
    });
    server.mock(|when, then| {
        when.method(GET).path(UPID_PATH);
        then.json_body(
            json!({"data": {"status": "stopped", "exitstatus": "reload failed on pve2"}}),
        );
    });
    server.mock(|when, then| {
        when.method(GET).path_includes("/log");
        then.json_body(json!({"data": [{"n": 1, "t": "error: bridge vmbr9 missing"}]}));
    });
    let e = sdn
        .apply(&LockToken::new("t"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Task(_)), "{e:?}");
    assert!(e.to_string().contains("reload failed on pve2"), "{e}");
}

#[tokio::test]
async fn invalid_input_sends_nothing() {
    let server = MockServer::start_async().await;
    let sdn = sdn(&server);
    let any = server.mock(|when, then| {
        when.any_request();
        then.json_body(null());
    });
    let e = sdn
        .create_zone(
            &NewZone {
                bridge: None,
                ..NewZone::vlan(zone(), "vmbr0")
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bridge"), "{e}");
    let mut s = NewSubnet::new("10.1.2.0/24".parse().unwrap());
    s.gateway = Some("10.1.3.1".parse().unwrap());
    assert!(sdn.create_subnet(&vnet(), &s, None).await.is_err());
    s.gateway = None;
    s.dhcp_range = vec![DhcpRange {
        start: "10.1.2.200".parse().unwrap(),
        end: "10.1.2.10".parse().unwrap(),
    }];
    assert!(sdn.create_subnet(&vnet(), &s, None).await.is_err());
    let mut v = NewVnet::new(vnet(), zone());
    v.alias = Some("quote\"d".into());
    assert!(sdn.create_vnet(&v, None).await.is_err());
    any.assert_calls(0);
}
