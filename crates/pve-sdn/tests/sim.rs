//! Against the embedded simulator (real HTTP on 127.0.0.1, port 0): a batch under one
//! lock applied once, pending listings before and after, the lock's refusals, and the
//! teardown order PVE enforces.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pve_auth::{PveClient, Secret};
use pve_sdn::{
    DhcpRange, NewSubnet, NewVnet, NewZone, PendingState, Sdn, VnetId, VnetUpdate, ZoneId, ZoneType,
};
use pve_sim::{SimHandle, Simulator};
use pve_vm::{Timing, VmApi};

const SCALE: f64 = 0.02;

async fn sim() -> (SimHandle, Sdn) {
    let sim = Simulator::builder()
        .plain_http(true)
        .password("secret")
        .time_scale(SCALE)
        .start()
        .await
        .unwrap();
    let client = PveClient::builder(&sim.url())
        .password("root@pam", Secret::new("secret"))
        .build()
        .unwrap();
    let sdn = Sdn::with_vm_api(VmApi::with_timing(client, Timing::default().scaled(SCALE)));
    (sim, sdn)
}

fn zone() -> ZoneId {
    ZoneId::new("zlab").unwrap()
}

fn vnet(n: u32) -> VnetId {
    VnetId::new(format!("vs{n:02}")).unwrap()
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_batch_stays_pending_until_one_apply() {
    let (sim, sdn) = sim().await;
    let token = sdn.lock(false).await.unwrap();
    let mut z = NewZone::simple(zone());
    z.dhcp = true;
    z.ipam = Some("pve".into());
    sdn.create_zone(&z, Some(&token)).await.unwrap();
    for n in 1..=2 {
        let mut v = NewVnet::new(vnet(n), zone());
        v.alias = Some(format!("labctl exam1 stud-{n:02} lan"));
        sdn.create_vnet(&v, Some(&token)).await.unwrap();
        let cidr: pve_sdn::Cidr = format!("10.100.{n}.0/24").parse().unwrap();
        let mut s = NewSubnet::new(cidr);
        s.dhcp_range = vec![DhcpRange {
            start: cidr.host(10),
            end: cidr.host(200),
        }];
        sdn.create_subnet(&vnet(n), &s, Some(&token)).await.unwrap();
    }
    // Pending: listed as new, not yet running.
    let pending = sdn.vnets(true).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|v| v.state == Some(PendingState::New)));
    assert_eq!(pending[0].zone.as_deref(), Some("zlab"));
    assert_eq!(
        pending[0].alias.as_deref(),
        Some("labctl exam1 stud-01 lan")
    );
    let subnets = sdn.subnets(&vnet(1), true).await.unwrap();
    assert_eq!(subnets[0].id, "zlab-10.100.1.0-24");
    assert_eq!(subnets[0].state, Some(PendingState::New));
    assert_eq!(subnets[0].dhcp_range[0].start.to_string(), "10.100.1.10");
    assert_eq!(sim.sdn_applies(), 0);

    let status = sdn.apply(&token, WAIT).await.unwrap();
    assert!(status.succeeded());
    assert_eq!(sim.sdn_applies(), 1);
    let applied = sdn.vnets(true).await.unwrap();
    assert!(applied.iter().all(|v| v.state.is_none()), "{applied:?}");
    let zones = sdn.zones(true).await.unwrap();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].kind, ZoneType::Simple);
    assert_eq!(zones[0].dhcp.as_deref(), Some("dnsmasq"));
    assert!(zones[0].state.is_none());
    // The apply released the lock: a new one can be taken without allow-pending.
    let again = sdn.lock(false).await.unwrap();
    sdn.unlock(&again).await.unwrap();
}

#[tokio::test]
async fn the_lock_refuses_other_writers_and_pending_changes() {
    let (_sim, sdn) = sim().await;
    let token = sdn.lock(false).await.unwrap();
    // Another writer without the token is refused while the lock is held.
    let e = sdn
        .create_zone(&NewZone::simple(zone()), None)
        .await
        .unwrap_err();
    assert!(e.is_locked(), "{e:?}");
    sdn.create_zone(&NewZone::simple(zone()), Some(&token))
        .await
        .unwrap();
    sdn.unlock(&token).await.unwrap();
    // The zone is pending now: a lock is refused unless pending changes are allowed.
    assert!(sdn.lock(false).await.is_err());
    let token = sdn.lock(true).await.unwrap();
    sdn.apply(&token, WAIT).await.unwrap();
}

#[tokio::test]
async fn teardown_goes_subnets_then_vnet_then_zone_then_one_apply() {
    let (sim, sdn) = sim().await;
    let token = sdn.lock(false).await.unwrap();
    sdn.create_zone(&NewZone::simple(zone()), Some(&token))
        .await
        .unwrap();
    let mut v = NewVnet::new(vnet(1), zone());
    v.alias = Some("old".into());
    sdn.create_vnet(&v, Some(&token)).await.unwrap();
    sdn.create_subnet(
        &vnet(1),
        &NewSubnet::new("10.100.1.0/24".parse().unwrap()),
        Some(&token),
    )
    .await
    .unwrap();
    sdn.update_vnet(
        &vnet(1),
        &VnetUpdate {
            alias: Some("new".into()),
            ..VnetUpdate::default()
        },
        Some(&token),
    )
    .await
    .unwrap();
    sdn.apply(&token, WAIT).await.unwrap();
    assert_eq!(
        sdn.vnet(&vnet(1), false).await.unwrap().alias.as_deref(),
        Some("new")
    );

    let token = sdn.lock(false).await.unwrap();
    // PVE refuses to delete a vnet that still has subnets.
    assert!(sdn.delete_vnet(&vnet(1), Some(&token)).await.is_err());
    let subnets = sdn.subnets(&vnet(1), false).await.unwrap();
    for s in &subnets {
        sdn.delete_subnet(&vnet(1), &s.id, Some(&token))
            .await
            .unwrap();
    }
    sdn.delete_vnet(&vnet(1), Some(&token)).await.unwrap();
    sdn.delete_zone(&zone(), Some(&token)).await.unwrap();
    let pending = sdn.vnets(true).await.unwrap();
    assert_eq!(pending[0].state, Some(PendingState::Deleted));
    sdn.apply(&token, WAIT).await.unwrap();
    assert!(sdn.vnets(true).await.unwrap().is_empty());
    assert!(sdn.zones(true).await.unwrap().is_empty());
    assert_eq!(sim.sdn_applies(), 2);
    let e = sdn.vnet(&vnet(1), false).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}
