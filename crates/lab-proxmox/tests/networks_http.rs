//! The Networks capability on the wire (httpmock): what `ensure_networks` and
//! `remove_networks` send, that a batch takes one lock, carries its token on every change
//! and is applied once, that the lock is released on an error, and that a repeated call
//! sends nothing but the listings.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use httpmock::prelude::*;
use lab_core::{
    lab_zone_id, network_alias, vnet_id, LabName, NetworkPlan, Networks, StudentNetwork, ZoneKind,
};
use lab_proxmox::{ProxmoxLab, Timing};
use pve_auth::{PveClient, RetryPolicy};
use serde_json::{json, Value};

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const UPID: &str = "UPID:pve1:0000ABCD:00012345:65144CB7:reloadnetworkall::lab@pve!ci:";

fn hv(server: &MockServer) -> ProxmoxLab {
    hv_logged(server).0
}

/// The backend and the `METHOD path` of every request it sends, in order.
fn hv_logged(server: &MockServer) -> (ProxmoxLab, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .observer(Arc::new(move |r: &pve_auth::RequestRecord| {
            seen.lock()
                .unwrap()
                .push(format!("{} {}", r.method, r.path));
        }))
        .build()
        .unwrap();
    (
        ProxmoxLab::with_timing(client, Timing::default().scaled(0.001)),
        log,
    )
}

fn lab() -> LabName {
    LabName::new("exam1").unwrap()
}

/// Form encoding of a value, as pve-auth sends it.
fn enc(s: &str) -> String {
    s.replace(' ', "%20")
        .replace('/', "%2F")
        .replace('=', "%3D")
        .replace(',', "%2C")
}

fn wanted(subnets: bool) -> Vec<StudentNetwork> {
    ["anna", "ben"]
        .iter()
        .enumerate()
        .map(|(i, s)| StudentNetwork {
            id: vnet_id(&lab(), i as u32 + 1, 0),
            student: (*s).to_owned(),
            network: "lan".to_owned(),
            subnet: subnets.then_some((Ipv4Addr::new(10, 100, i as u8, 0), 24)),
        })
        .collect()
}

fn listing<'a>(server: &'a MockServer, path: &str, data: Value) -> httpmock::Mock<'a> {
    let path = format!("/api2/json{path}");
    server.mock(move |when, then| {
        when.method(GET).path(path).query_param("pending", "1");
        then.json_body(json!({ "data": data }));
    })
}

fn apply_mocks(server: &MockServer) -> (httpmock::Mock<'_>, httpmock::Mock<'_>) {
    let lock = server.mock(|when, then| {
        when.method(POST)
            .path("/api2/json/cluster/sdn/lock")
            .body("allow-pending=1");
        then.json_body(json!({ "data": "tok" }));
    });
    let apply = server.mock(|when, then| {
        when.method(PUT)
            .path("/api2/json/cluster/sdn")
            .body("lock-token=tok&release-lock=1");
        then.json_body(json!({ "data": UPID }));
    });
    server.mock(|when, then| {
        when.method(GET)
            .path_includes("/tasks/")
            .path_includes("/status");
        then.json_body(json!({"data": {"status": "stopped", "exitstatus": "OK"}}));
    });
    (lock, apply)
}

fn created<'a>(server: &'a MockServer, path: &str, body: String) -> httpmock::Mock<'a> {
    let path = format!("/api2/json{path}");
    server.mock(move |when, then| {
        when.method(POST).path(path).body(body);
        then.json_body(json!({ "data": null }));
    })
}

#[tokio::test]
async fn ensure_makes_zone_vnets_and_subnets_under_one_lock_and_applies_once() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    let zone = lab_zone_id(&lab());
    listing(&server, "/cluster/sdn/zones", json!([]));
    listing(&server, "/cluster/sdn/vnets", json!([]));
    let (lock, apply) = apply_mocks(&server);
    let zone_m = created(
        &server,
        "/cluster/sdn/zones",
        format!("zone={zone}&type=simple&dhcp=dnsmasq&ipam=pve&lock-token=tok"),
    );
    let mut vnets = Vec::new();
    let mut subnets = Vec::new();
    for (i, w) in wanted(true).iter().enumerate() {
        let alias = enc(&network_alias(&lab(), &w.student, "lan"));
        vnets.push(created(
            &server,
            "/cluster/sdn/vnets",
            format!("vnet={}&zone={zone}&alias={alias}&lock-token=tok", w.id),
        ));
        // No gateway: the node must not route between students.
        subnets.push(created(
            &server,
            &format!("/cluster/sdn/vnets/{}/subnets", w.id),
            format!(
                "subnet={}&type=subnet&dhcp-range={}&lock-token=tok",
                enc(&format!("10.100.{i}.0/24")),
                enc(&format!(
                    "start-address=10.100.{i}.10,end-address=10.100.{i}.200"
                ))
            ),
        ));
    }
    let unlock = server.mock(|when, then| {
        when.method(DELETE).path("/api2/json/cluster/sdn/lock");
        then.json_body(json!({ "data": null }));
    });

    let info = hv
        .ensure_networks(&lab(), &NetworkPlan::default(), wanted(true))
        .await
        .unwrap();
    assert_eq!(info.len(), 2);
    assert!(info.iter().all(|n| !n.pending && n.zone == zone));
    assert_eq!(info[0].subnet.as_deref(), Some("10.100.0.0/24"));
    lock.assert_calls(1);
    zone_m.assert_calls(1);
    for m in vnets.iter().chain(&subnets) {
        m.assert_calls(1);
    }
    apply.assert_calls(1);
    unlock.assert_calls(0);
}

#[tokio::test]
async fn a_repeated_ensure_sends_only_the_listings() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    let zone = lab_zone_id(&lab());
    let w = wanted(true);
    listing(
        &server,
        "/cluster/sdn/zones",
        json!([{"zone": zone, "type": "simple", "dhcp": "dnsmasq", "ipam": "pve"}]),
    );
    let vnets: Vec<Value> = w
        .iter()
        .map(|w| {
            json!({"vnet": w.id, "zone": zone, "type": "vnet",
                        "alias": network_alias(&lab(), &w.student, "lan")})
        })
        .collect();
    listing(&server, "/cluster/sdn/vnets", json!(vnets));
    for (i, w) in w.iter().enumerate() {
        listing(
            &server,
            &format!("/cluster/sdn/vnets/{}/subnets", w.id),
            json!([{"subnet": format!("{zone}-10.100.{i}.0-24"), "type": "subnet", "vnet": w.id}]),
        );
    }
    let writes = server.mock(|when, then| {
        when.method(POST);
        then.status(500);
    });
    let puts = server.mock(|when, then| {
        when.method(PUT);
        then.status(500);
    });
    let info = hv
        .ensure_networks(&lab(), &NetworkPlan::default(), w)
        .await
        .unwrap();
    assert_eq!(info.len(), 2);
    assert_eq!(info[1].subnet.as_deref(), Some("10.100.1.0/24"));
    writes.assert_calls(0);
    puts.assert_calls(0);
}

#[tokio::test]
async fn a_vnet_of_another_owner_is_refused_by_name_before_any_change() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    let w = wanted(false);
    listing(&server, "/cluster/sdn/zones", json!([]));
    listing(
        &server,
        "/cluster/sdn/vnets",
        json!([{"vnet": w[1].id, "zone": "campus", "alias": "printer lan"}]),
    );
    let writes = server.mock(|when, then| {
        when.method(POST);
        then.status(500);
    });
    let e = hv
        .ensure_networks(&lab(), &NetworkPlan::default(), w.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&w[1].id) && e.contains("printer lan"), "{e}");
    writes.assert_calls(0);
}

#[tokio::test]
async fn a_failed_change_releases_the_lock_and_applies_nothing() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    let zone = lab_zone_id(&lab());
    listing(&server, "/cluster/sdn/zones", json!([]));
    listing(&server, "/cluster/sdn/vnets", json!([]));
    let (lock, apply) = apply_mocks(&server);
    created(
        &server,
        "/cluster/sdn/zones",
        format!("zone={zone}&type=simple&lock-token=tok"),
    );
    server.mock(|when, then| {
        when.method(POST).path("/api2/json/cluster/sdn/vnets");
        then.status(400).json_body(
            json!({"data": null, "message": "create sdn vnet object failed: bad zone\n"}),
        );
    });
    let unlock = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/sdn/lock")
            .query_param("lock-token", "tok");
        then.json_body(json!({ "data": null }));
    });
    let e = hv
        .ensure_networks(&lab(), &NetworkPlan::default(), wanted(false))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("vnet"), "{e}");
    lock.assert_calls(1);
    unlock.assert_calls(1);
    apply.assert_calls(0);
}

#[tokio::test]
async fn a_named_vlan_zone_gets_free_tags_and_no_dhcp() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    listing(
        &server,
        "/cluster/sdn/zones",
        json!([
            {"zone": "campus", "type": "vlan", "bridge": "vmbr1"},
            {"zone": "admin", "type": "vlan", "bridge": "vmbr1"},
            {"zone": "lab2", "type": "vlan", "bridge": "vmbr2"}
        ]),
    );
    // 2000 is taken in the zone, 2001 by another zone on the same bridge; 2003 on
    // another bridge does not matter.
    listing(
        &server,
        "/cluster/sdn/vnets",
        json!([
            {"vnet": "office", "zone": "campus", "tag": 2000, "alias": "office"},
            {"vnet": "adm", "zone": "admin", "tag": 2001, "alias": "admins"},
            {"vnet": "other", "zone": "lab2", "tag": 2003, "alias": "x"}
        ]),
    );
    let (lock, apply) = apply_mocks(&server);
    let plan = NetworkPlan {
        zone: Some("campus".into()),
        kind: ZoneKind::Vlan,
        tags: (2000, 2010),
        ..NetworkPlan::default()
    };
    let mut mocks = Vec::new();
    for (i, w) in wanted(true).iter().enumerate() {
        let alias = enc(&network_alias(&lab(), &w.student, "lan"));
        mocks.push(created(
            &server,
            "/cluster/sdn/vnets",
            format!(
                "vnet={}&zone=campus&tag={}&alias={alias}&lock-token=tok",
                w.id,
                2002 + i
            ),
        ));
        mocks.push(created(
            &server,
            &format!("/cluster/sdn/vnets/{}/subnets", w.id),
            format!(
                "subnet={}&type=subnet&lock-token=tok",
                enc(&format!("10.100.{i}.0/24"))
            ),
        ));
    }
    let info = hv
        .ensure_networks(&lab(), &plan, wanted(true))
        .await
        .unwrap();
    assert_eq!(
        info.iter().map(|n| n.tag).collect::<Vec<_>>(),
        [Some(2002), Some(2003)]
    );
    for m in &mocks {
        m.assert_calls(1);
    }
    lock.assert_calls(1);
    apply.assert_calls(1);
}

#[tokio::test]
async fn a_missing_named_zone_is_not_found_and_nothing_is_sent() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    listing(&server, "/cluster/sdn/zones", json!([]));
    listing(&server, "/cluster/sdn/vnets", json!([]));
    let writes = server.mock(|when, then| {
        when.method(POST);
        then.status(500);
    });
    let plan = NetworkPlan {
        zone: Some("campus".into()),
        ..NetworkPlan::default()
    };
    let e = hv
        .ensure_networks(&lab(), &plan, wanted(false))
        .await
        .unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("campus"), "{e}");
    writes.assert_calls(0);
}

#[tokio::test]
async fn remove_goes_subnets_vnets_own_zone_then_one_apply_and_spares_the_rest() {
    let server = MockServer::start_async().await;
    let (hv, log) = hv_logged(&server);
    let zone = lab_zone_id(&lab());
    let w = wanted(true);
    listing(
        &server,
        "/cluster/sdn/zones",
        json!([{"zone": zone, "type": "simple"}, {"zone": "campus", "type": "vlan"}]),
    );
    listing(
        &server,
        "/cluster/sdn/vnets",
        json!([
            {"vnet": w[0].id, "zone": zone, "alias": network_alias(&lab(), "anna", "lan")},
            {"vnet": w[1].id, "zone": zone, "alias": network_alias(&lab(), "ben", "lan")},
            {"vnet": "office", "zone": "campus", "alias": "labctl exam12 x lan"}
        ]),
    );
    listing(
        &server,
        &format!("/cluster/sdn/vnets/{}/subnets", w[0].id),
        json!([{"subnet": format!("{zone}-10.100.0.0-24"), "vnet": w[0].id}]),
    );
    listing(
        &server,
        &format!("/cluster/sdn/vnets/{}/subnets", w[1].id),
        json!([]),
    );
    let (lock, apply) = apply_mocks(&server);
    let del = |path: String| {
        server.mock(move |when, then| {
            when.method(DELETE)
                .path(format!("/api2/json{path}"))
                .query_param("lock-token", "tok");
            then.json_body(json!({ "data": null }));
        })
    };
    let subnet = del(format!(
        "/cluster/sdn/vnets/{}/subnets/{zone}-10.100.0.0-24",
        w[0].id
    ));
    let v0 = del(format!("/cluster/sdn/vnets/{}", w[0].id));
    let v1 = del(format!("/cluster/sdn/vnets/{}", w[1].id));
    let z = del(format!("/cluster/sdn/zones/{zone}"));
    server.mock(|when, then| {
        when.method(GET).path("/api2/json/cluster/resources");
        then.json_body(json!({ "data": [] }));
    });
    let removed = hv.remove_networks(&lab()).await.unwrap();
    assert_eq!(removed.vnets, [w[0].id.clone(), w[1].id.clone()]);
    assert_eq!(removed.zone.as_deref(), Some(zone.as_str()));
    assert!(removed.applied);
    for m in [&subnet, &v0, &v1, &z, &lock, &apply] {
        m.assert_calls(1);
    }
    // Subnets before their vnet (PVE refuses the other order), the zone last, then the
    // apply; nothing of the other lab's.
    let changes: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("GET"))
        .cloned()
        .collect();
    assert_eq!(
        changes,
        [
            "POST /cluster/sdn/lock".to_owned(),
            format!(
                "DELETE /cluster/sdn/vnets/{}/subnets/{zone}-10.100.0.0-24",
                w[0].id
            ),
            format!("DELETE /cluster/sdn/vnets/{}", w[0].id),
            format!("DELETE /cluster/sdn/vnets/{}", w[1].id),
            format!("DELETE /cluster/sdn/zones/{zone}"),
            "PUT /cluster/sdn".to_owned(),
        ]
    );
}

#[tokio::test]
async fn remove_with_nothing_of_the_lab_applies_nothing() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    listing(
        &server,
        "/cluster/sdn/zones",
        json!([{"zone": "campus", "type": "vlan"}]),
    );
    listing(
        &server,
        "/cluster/sdn/vnets",
        json!([{"vnet": "office", "zone": "campus", "alias": "office", "state": "new"}]),
    );
    let writes = server.mock(|when, then| {
        when.method(POST);
        then.status(500);
    });
    let removed = hv.remove_networks(&lab()).await.unwrap();
    assert_eq!(removed, lab_core::NetworksRemoved::default());
    writes.assert_calls(0);
}

#[tokio::test]
async fn foreign_pending_changes_are_not_applied_with_the_lab() {
    let server = MockServer::start_async().await;
    let hv = hv(&server);
    listing(&server, "/cluster/sdn/zones", json!([]));
    listing(
        &server,
        "/cluster/sdn/vnets",
        json!([{"vnet": "office", "type": "vnet", "state": "new", "pending": {"zone": "campus"}}]),
    );
    // Looked at under the lock (another batch holding it would still be at work), then
    // the lock is released and nothing is created.
    let locked = server.mock(|when, then| {
        when.method(POST).path("/api2/json/cluster/sdn/lock");
        then.json_body(json!({ "data": "the-token" }));
    });
    let released = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/sdn/lock")
            .query_param("lock-token", "the-token");
        then.json_body(json!({ "data": null }));
    });
    let writes = server.mock(|when, then| {
        when.method(POST).path("/api2/json/cluster/sdn/vnets");
        then.status(500);
    });
    let zones = server.mock(|when, then| {
        when.method(POST).path("/api2/json/cluster/sdn/zones");
        then.status(500);
    });
    let e = hv
        .ensure_networks(&lab(), &NetworkPlan::default(), wanted(false))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("vnet office") && e.contains("pending"), "{e}");
    locked.assert_calls(1);
    released.assert_calls(1);
    writes.assert_calls(0);
    zones.assert_calls(0);
}

/// `remove_networks` with these listings: the `METHOD path`s it sent besides listings.
async fn removal(zones: Value, vnets: Value) -> (lab_core::NetworksRemoved, Vec<String>) {
    let server = MockServer::start_async().await;
    let (hv, log) = hv_logged(&server);
    listing(&server, "/cluster/sdn/zones", zones);
    for v in vnets.as_array().unwrap() {
        let path = format!("/cluster/sdn/vnets/{}/subnets", v["vnet"].as_str().unwrap());
        listing(&server, &path, json!([]));
    }
    listing(&server, "/cluster/sdn/vnets", vnets);
    apply_mocks(&server);
    // No guest is left on the lab's vnets (the check reads the guest list first).
    server.mock(|when, then| {
        when.method(GET).path("/api2/json/cluster/resources");
        then.json_body(json!({ "data": [] }));
    });
    let zone = lab_zone_id(&lab());
    server.mock(move |when, then| {
        when.method(DELETE)
            .path(format!("/api2/json/cluster/sdn/zones/{zone}"));
        then.json_body(json!({ "data": null }));
    });
    let removed = hv.remove_networks(&lab()).await.unwrap();
    let sent = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("GET"))
        .cloned()
        .collect();
    (removed, sent)
}

#[tokio::test]
async fn an_interrupted_removal_is_applied_and_an_empty_own_zone_removed() {
    let zone = lab_zone_id(&lab());
    let id = vnet_id(&lab(), 1, 0);
    let alias = network_alias(&lab(), "anna", "lan");
    let applied = ["POST /cluster/sdn/lock", "PUT /cluster/sdn"];
    // The lab's vnet was deleted but not applied: applying is what is left.
    let (r, sent) = removal(
        json!([]),
        json!([{"vnet": id, "zone": zone, "alias": alias, "state": "deleted"}]),
    )
    .await;
    assert!(r.applied && r.vnets.is_empty() && r.zone.is_none(), "{r:?}");
    assert_eq!(sent, applied);
    // The lab's own zone was deleted but not applied.
    let (r, sent) = removal(
        json!([{"zone": zone, "type": "simple", "state": "deleted"}]),
        json!([]),
    )
    .await;
    assert!(r.applied, "{r:?}");
    assert_eq!(sent, applied);
    // The lab's own zone is left, empty: it goes.
    let (r, sent) = removal(json!([{"zone": zone, "type": "simple"}]), json!([])).await;
    assert_eq!(r.zone.as_deref(), Some(zone.as_str()));
    assert_eq!(
        sent,
        [
            "POST /cluster/sdn/lock".to_owned(),
            format!("DELETE /cluster/sdn/zones/{zone}"),
            "PUT /cluster/sdn".to_owned()
        ]
    );
    // Another zone's pending deletion is not the lab's: nothing to do, nothing applied.
    let (r, sent) = removal(
        json!([{"zone": "campus", "type": "vlan", "state": "deleted"},
               {"zone": zone, "type": "simple"}]),
        json!([{"vnet": "office", "zone": zone, "alias": "office"}]),
    )
    .await;
    assert_eq!(r, lab_core::NetworksRemoved::default());
    assert!(sent.is_empty(), "{sent:?}");
}
