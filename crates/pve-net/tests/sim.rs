//! Against `pve-sim`: addresses of QEMU (guest agent) and LXC (host) guests, waiting through
//! boot and DHCP, host names. Every request is checked against the schema extract.
#![allow(clippy::unwrap_used)]

#[path = "../../pve-vm/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::Lab;
use pve_net::{Error, HostAddress, NetApi};
use pve_vm::{CloneOptions, VmId};

fn vmid(n: u32) -> VmId {
    VmId::new(n).unwrap()
}

#[tokio::test]
async fn running_teacher_has_its_address() {
    let lab = Lab::start().await;
    let api = lab.api();
    let teacher = api.guest(vmid(100)).await.unwrap();
    let net = NetApi::new();
    assert_eq!(
        net.primary_ipv4(&teacher).await.unwrap(),
        Some("10.10.0.1".parse().unwrap())
    );
    let list = net.interfaces(&teacher).await.unwrap();
    assert_eq!(list[0].name, "lo");
    let own = teacher.config().await.unwrap().nics()[0]
        .1
        .mac()
        .unwrap()
        .to_ascii_lowercase();
    assert!(list.iter().any(|i| i.mac.as_deref() == Some(own.as_str())));
    assert_eq!(net.hostname(&teacher).await.unwrap(), "teacher");
    assert_eq!(
        net.ip_or_hostname(&teacher).await.unwrap(),
        HostAddress::Ip("10.10.0.1".parse().unwrap())
    );
    lab.check_schema();
}

#[tokio::test]
async fn qemu_clone_gets_an_address_after_boot() {
    let lab = Lab::start().await;
    let api = lab.api();
    let vm = api
        .guest(vmid(9000))
        .await
        .unwrap()
        .clone_to(CloneOptions {
            hostname: Some("stud-07".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    let net = NetApi::new();
    let err = net.interfaces(&vm).await.unwrap_err();
    assert!(err.to_string().contains("is not running"), "{err}");
    vm.start().await.unwrap();
    let ip = net.wait_for_ip(&vm, Duration::from_secs(30)).await.unwrap();
    assert!(!ip.is_loopback() && !ip.is_link_local());
    let state = lab.guests();
    assert_eq!(state[&u64::from(vm.vmid().get())]["ipv4"], ip.to_string());
    assert_eq!(net.hostname(&vm).await.unwrap(), "stud-07");
    lab.check_schema();
}

#[tokio::test]
async fn lxc_clone_is_null_when_stopped_then_gets_an_address() {
    let lab = Lab::start().await;
    let api = lab.api();
    let ct = api
        .guest(vmid(9001))
        .await
        .unwrap()
        .clone_to(CloneOptions {
            hostname: Some("ct-07".into()),
            ..CloneOptions::default()
        })
        .await
        .unwrap();
    let net = NetApi::new();
    let err = net.interfaces(&ct).await.unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    ct.start().await.unwrap();
    let ip = net.wait_for_ip(&ct, Duration::from_secs(30)).await.unwrap();
    let state = lab.guests();
    assert_eq!(state[&u64::from(ct.vmid().get())]["ipv4"], ip.to_string());
    assert_eq!(net.hostname(&ct).await.unwrap(), "ct-07");
    lab.check_schema();
}
