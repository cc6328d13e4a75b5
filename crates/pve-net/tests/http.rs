//! Wire tests with httpmock: method, path, query, headers of every call, and the answer
//! shapes (agent errors at HTTP 200, missing `ip-addresses`, LXC `null`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::prelude::*;
use httpmock::HttpMockResponse;
use pve_auth::{PveClient, RetryPolicy};
use pve_net::{Error, HostAddress, NetApi};
use pve_vm::{Guest, GuestKind, NodeName, PollPolicy, Timing, VmApi, VmId};
use serde_json::json;

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const AUTH: &str = "PVEAPIToken=lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";

fn guest(server: &MockServer, kind: GuestKind, id: u32) -> Guest {
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    VmApi::with_timing(client, Timing::default().scaled(0.001)).guest_on(
        NodeName::new("pve1").unwrap(),
        kind,
        VmId::new(id).unwrap(),
    )
}

fn data(value: serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(json!({ "data": value }).to_string())
        .build()
}

fn pve_error(message: &str) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(500)
        .header("content-type", "application/json")
        .body(json!({"data": null, "message": format!("{message}\n")}).to_string())
        .build()
}

async fn get_mock<'a>(
    server: &'a MockServer,
    path: &str,
    respond: impl Fn(usize) -> HttpMockResponse + Send + Sync + 'static,
) -> httpmock::Mock<'a> {
    let n = Arc::new(AtomicUsize::new(0));
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api2/json{path}"))
                .header("authorization", AUTH)
                .query_param_count(".*", ".*", 0);
            then.respond_with(move |_| respond(n.fetch_add(1, Ordering::SeqCst)));
        })
        .await
}

fn qga_interfaces(ipv4: Option<&str>) -> serde_json::Value {
    let mut addrs = vec![
        json!({"ip-address":"fe80::be24:11ff:fe11:750e","ip-address-type":"ipv6","prefix":64}),
    ];
    if let Some(ip) = ipv4 {
        addrs.push(json!({"ip-address": ip, "ip-address-type": "ipv4", "prefix": 24}));
    }
    json!({"result": [
        {"name":"lo","hardware-address":"00:00:00:00:00:00",
         "ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8},
                         {"ip-address":"::1","ip-address-type":"ipv6","prefix":128}]},
        {"name":"docker0","hardware-address":"02:42:ac:11:00:01",
         "ip-addresses":[{"ip-address":"172.17.0.1","ip-address-type":"ipv4","prefix":16}]},
        {"name":"ens18","hardware-address":"bc:24:11:11:75:0e","ip-addresses": addrs},
        {"name":"ens19","hardware-address":"bc:24:11:11:75:0f"}
    ]})
}

fn qemu_config() -> serde_json::Value {
    json!({"digest":"d","name":"stud-01","agent":"1",
           "net0":"virtio=BC:24:11:11:75:0E,bridge=vmbr0,firewall=1",
           "net1":"virtio=BC:24:11:11:75:0F,bridge=vmbr1"})
}

#[tokio::test]
async fn qemu_interfaces_and_primary_address_prefer_the_guests_own_nic() {
    let server = MockServer::start_async().await;
    let ifaces = get_mock(
        &server,
        "/nodes/pve1/qemu/101/agent/network-get-interfaces",
        |_| data(qga_interfaces(Some("192.168.200.139"))),
    )
    .await;
    let config = get_mock(&server, "/nodes/pve1/qemu/101/config", |_| {
        data(qemu_config())
    })
    .await;
    let g = guest(&server, GuestKind::Qemu, 101);
    let net = NetApi::new();
    let list = net.interfaces(&g).await.unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["lo", "docker0", "ens18", "ens19"]);
    assert!(list[3].addresses.is_empty());
    // docker0 comes first in the list, but ens18 carries net0's MAC.
    assert_eq!(
        net.primary_ipv4(&g).await.unwrap(),
        Some("192.168.200.139".parse().unwrap())
    );
    ifaces.assert_calls_async(2).await;
    config.assert_calls_async(1).await;
}

#[tokio::test]
async fn agent_rejection_at_http_200_falls_back_to_the_host_name() {
    let server = MockServer::start_async().await;
    get_mock(
        &server,
        "/nodes/pve1/qemu/101/agent/network-get-interfaces",
        |_| {
            data(json!({"result":{"error":{"class":"Unsupported",
            "desc":"this feature or command is not currently supported"}}}))
        },
    )
    .await;
    get_mock(&server, "/nodes/pve1/qemu/101/config", |_| {
        data(qemu_config())
    })
    .await;
    let host = get_mock(&server, "/nodes/pve1/qemu/101/agent/get-host-name", |_| {
        data(json!({"result": {"host-name": "student07"}}))
    })
    .await;
    let g = guest(&server, GuestKind::Qemu, 101);
    let net = NetApi::new();
    let err = net.interfaces(&g).await.unwrap_err();
    assert!(
        matches!(&err, Error::AgentCommand { class, .. } if class == "Unsupported"),
        "{err}"
    );
    assert!(err.to_string().contains("not currently supported"));
    let answer = net.ip_or_hostname(&g).await.unwrap();
    assert_eq!(answer, HostAddress::Hostname("student07".into()));
    host.assert_calls_async(1).await;
    // Waiting cannot help when the agent refuses the command.
    let err = net
        .wait_for_ip(&g, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AgentCommand { .. }), "{err}");
}

#[tokio::test]
async fn lxc_interfaces_null_when_stopped_and_old_fields() {
    let server = MockServer::start_async().await;
    let ifaces = get_mock(&server, "/nodes/pve1/lxc/102/interfaces", |n| {
        if n == 0 {
            data(json!(null))
        } else {
            data(json!([
                {"name":"lo","hwaddr":"00:00:00:00:00:00","inet":"127.0.0.1/8","inet6":"::1/128"},
                {"name":"eth0","hwaddr":"BC:24:11:AA:BB:CC","inet":"10.0.0.5/24","inet6":"fe80::1/64"}
            ]))
        }
    })
    .await;
    get_mock(&server, "/nodes/pve1/lxc/102/config", |_| {
        data(json!({"digest":"d","hostname":"ct-01",
                    "net0":"name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth"}))
    })
    .await;
    let g = guest(&server, GuestKind::Lxc, 102);
    let net = NetApi::new();
    let err = net.interfaces(&g).await.unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    assert_eq!(
        net.ip_or_hostname(&g).await.unwrap(),
        HostAddress::Ip("10.0.0.5".parse().unwrap())
    );
    assert_eq!(net.hostname(&g).await.unwrap(), "ct-01");
    ifaces.assert_calls_async(2).await;
}

#[tokio::test]
async fn wait_for_ip_waits_through_boot_and_link_local_only() {
    let server = MockServer::start_async().await;
    let ifaces = get_mock(
        &server,
        "/nodes/pve1/qemu/101/agent/network-get-interfaces",
        |n| match n {
            0 => pve_error("VM 101 is not running"),
            1 => pve_error("QEMU guest agent is not running"),
            2 => {
                pve_error("VM 101 qga command 'guest-network-get-interfaces' failed - got timeout")
            }
            3 => data(qga_interfaces(None)),
            _ => data(qga_interfaces(Some("10.9.8.7"))),
        },
    )
    .await;
    get_mock(&server, "/nodes/pve1/qemu/101/config", |_| {
        data(qemu_config())
    })
    .await;
    let g = guest(&server, GuestKind::Qemu, 101);
    let net = NetApi::new().with_poll(PollPolicy::new(
        Duration::from_millis(1),
        Duration::from_millis(2),
    ));
    // Without net0's MAC preference docker0's 172.17.0.1 would have been taken at n == 3.
    let ip = net.wait_for_ip(&g, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ip, "10.9.8.7".parse::<std::net::Ipv4Addr>().unwrap());
    ifaces.assert_calls_async(5).await;
}

#[tokio::test]
async fn wait_for_ip_fails_fast_without_agent_and_times_out_with_the_reason() {
    let server = MockServer::start_async().await;
    let none = get_mock(
        &server,
        "/nodes/pve1/qemu/101/agent/network-get-interfaces",
        |_| pve_error("No QEMU guest agent configured"),
    )
    .await;
    get_mock(&server, "/nodes/pve1/qemu/101/config", |_| {
        data(qemu_config())
    })
    .await;
    let booting = get_mock(
        &server,
        "/nodes/pve1/qemu/102/agent/network-get-interfaces",
        |_| pve_error("QEMU guest agent is not running"),
    )
    .await;
    get_mock(&server, "/nodes/pve1/qemu/102/config", |_| {
        data(qemu_config())
    })
    .await;
    let net = NetApi::new().with_poll(PollPolicy::new(
        Duration::from_millis(5),
        Duration::from_millis(5),
    ));
    let err = net
        .wait_for_ip(
            &guest(&server, GuestKind::Qemu, 101),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Vm(pve_vm::Error::AgentNotConfigured { .. })),
        "{err}"
    );
    none.assert_calls_async(1).await;

    let err = net
        .wait_for_ip(
            &guest(&server, GuestKind::Qemu, 102),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("timed out") && text.contains("QEMU guest agent is not running"),
        "{text}"
    );
    assert!(booting.calls_async().await >= 2);
}
