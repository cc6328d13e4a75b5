//! HTTP-level tests with httpmock: exact paths, methods and bodies, and the order in which
//! rules are actually sent (POST inserts at position 0, acceptance 3).

mod common;

use common::{check_against_schema, Log};
use httpmock::prelude::*;
use pve_auth::{ApiToken, PveClient};
use pve_firewall::isolation::{Isolation, IsolationOptions, LabName, Students};
use pve_firewall::{Firewall, Rule, Scope};
use pve_vm::{GuestKind, NodeName, VmId};
use serde_json::json;

const TOKEN: &str = "root@pam!tester=11111111-2222-3333-4444-555555555555";

fn client(server: &MockServer, log: &Log) -> PveClient {
    let token: ApiToken = TOKEN.parse().expect("token");
    PveClient::builder(&format!("http://{}", server.address()))
        .token(token)
        .observer(log.observer())
        .build()
        .expect("client")
}

fn null() -> serde_json::Value {
    json!({ "data": null })
}

#[tokio::test]
async fn primitives_send_exact_paths_and_bodies() {
    let server = MockServer::start_async().await;
    let log = Log::default();
    let fw = Firewall::new(client(&server, &log));
    let scope = Scope::guest(
        NodeName::new("pve2").unwrap(),
        GuestKind::Lxc,
        VmId::new(105).unwrap(),
    );

    let create = server.mock(|when, then| {
        when.method(POST)
            .path("/api2/json/nodes/pve2/lxc/105/firewall/rules")
            .body("type=in&action=ACCEPT&source=10.0.0.0%2F24&proto=tcp&dport=22&enable=1&comment=ssh");
        then.json_body(null());
    });
    let moved = server.mock(|when, then| {
        when.method(PUT)
            .path("/api2/json/nodes/pve2/lxc/105/firewall/rules/3")
            .body("moveto=0&digest=d1");
        then.json_body(null());
    });
    let deleted = server.mock(|when, then| {
        // DELETE carries the digest in the query string: PVE refuses DELETE bodies.
        when.method(DELETE)
            .path("/api2/json/nodes/pve2/lxc/105/firewall/rules/0")
            .query_param("digest", "d2");
        then.json_body(null());
    });
    let entry = server.mock(|when, then| {
        when.method(DELETE)
            .path("/api2/json/cluster/firewall/ipset/iso-a-allowed/10.1.0.0%2F16");
        then.json_body(null());
    });
    let listed = server.mock(|when, then| {
        when.method(GET)
            .path("/api2/json/nodes/pve2/lxc/105/firewall/rules");
        then.json_body(json!({"data": [
            {"pos": 1, "type": "out", "action": "DROP", "enable": 1, "digest": "d3"},
            {"pos": 0, "type": "group", "action": "iso-a", "digest": "d3", "comment": "labctl:a"}
        ]}));
    });

    let rule = Rule::accept_in()
        .source(
            "10.0.0.77/24"
                .parse::<pve_firewall::Cidr>()
                .map(pve_firewall::AddrSpec::net)
                .unwrap(),
        )
        .proto("tcp".parse().unwrap())
        .dport("22".parse().unwrap())
        .comment("ssh");
    fw.create_rule(&scope, &rule).await.unwrap();
    fw.move_rule(&scope, 3, 0, Some("d1")).await.unwrap();
    fw.delete_rule(&scope, 0, Some("d2")).await.unwrap();
    let set = "iso-a-allowed".parse().unwrap();
    fw.delete_ipset_entry(&Scope::Cluster, &set, "10.1.0.0/16", None)
        .await
        .unwrap();
    let rules = fw.rules(&scope).await.unwrap();
    assert_eq!(
        rules.iter().map(|r| r.pos).collect::<Vec<_>>(),
        vec![0, 1],
        "sorted by position"
    );
    assert!(!rules[0].enable, "a listed rule without enable is disabled");
    for m in [&create, &moved, &deleted, &entry, &listed] {
        m.assert_calls(1);
    }
    // Invalid rules never leave the machine.
    let bad = Rule::accept_in().iface("vmbr0".parse().unwrap());
    let err = fw.create_rule(&scope, &bad).await.unwrap_err().to_string();
    assert!(err.contains("iface") && err.contains("vmbr0"), "{err}");
    assert_eq!(check_against_schema(&log.records()), 5);
}

/// A cluster with the firewall off, no sets, no groups, one QEMU student with one NIC.
fn mock_world(server: &MockServer) {
    let ok = |method: httpmock::Method, path: &str| {
        server.mock(|when, then| {
            when.method(method).path(format!("/api2/json{path}"));
            then.json_body(null());
        });
    };
    let get = |path: &str, data: serde_json::Value| {
        server.mock(|when, then| {
            when.method(GET).path(format!("/api2/json{path}"));
            then.json_body(json!({ "data": data }));
        });
    };
    get("/cluster/firewall/options", json!({"digest": "c0"}));
    get("/cluster/firewall/ipset", json!([]));
    get("/cluster/firewall/ipset/iso-lab1-allowed", json!([]));
    get("/cluster/firewall/ipset/iso-lab1-dns", json!([]));
    get("/cluster/firewall/groups", json!([]));
    get("/cluster/firewall/groups/iso-lab1", json!([]));
    get(
        "/cluster/resources",
        json!([{"vmid": 301, "node": "pve1", "type": "qemu", "status": "running"}]),
    );
    get(
        "/nodes/pve1/qemu/301/config",
        json!({"digest": "v0", "name": "stud-01", "net0": "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,tag=10"}),
    );
    get(
        "/nodes/pve1/qemu/301/firewall/options",
        json!({"digest": "o0", "dhcp": 0}),
    );
    get("/nodes/pve1/qemu/301/firewall/rules", json!([]));
    ok(POST, "/cluster/firewall/ipset");
    ok(POST, "/cluster/firewall/ipset/iso-lab1-allowed");
    ok(POST, "/cluster/firewall/ipset/iso-lab1-dns");
    ok(POST, "/cluster/firewall/groups");
    ok(POST, "/cluster/firewall/groups/iso-lab1");
    ok(POST, "/nodes/pve1/qemu/301/firewall/rules");
    ok(PUT, "/nodes/pve1/qemu/301/firewall/options");
    ok(PUT, "/nodes/pve1/qemu/301/config");
    ok(PUT, "/cluster/firewall/options");
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn isolate_sends_group_rules_in_reverse_and_everything_in_a_safe_order() {
    let server = MockServer::start_async().await;
    mock_world(&server);
    let log = Log::default();
    let iso = Isolation::new(client(&server, &log));
    let mut options = IsolationOptions::new(LabName::new("lab1").unwrap());
    options.dns = vec!["10.10.0.53".parse().unwrap()];
    let students = Students::List(vec![VmId::new(301).unwrap()]);
    let report = iso
        .isolate(&students, &["10.10.0.1".parse().unwrap()], &options)
        .await
        .unwrap();

    let writes = log.writes();
    let group_posts: Vec<String> = writes
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/cluster/firewall/groups/iso-lab1")
        .map(|(_, _, params)| {
            params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // Each POST lands at position 0, so the last one sent ends up first.
    assert_eq!(
        group_posts,
        vec![
            "type=out action=DROP enable=1 comment=labctl:lab1",
            "type=in action=DROP enable=1 comment=labctl:lab1",
            "type=out action=ACCEPT macro=DNS dest=+iso-lab1-dns enable=1 comment=labctl:lab1",
            "type=out action=ACCEPT dest=+iso-lab1-allowed enable=1 comment=labctl:lab1",
            "type=in action=ACCEPT source=+iso-lab1-allowed enable=1 comment=labctl:lab1",
        ]
    );

    let order: Vec<String> = writes.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    let at = |what: &str| {
        order
            .iter()
            .position(|o| o == what)
            .unwrap_or_else(|| panic!("{what} not sent: {order:#?}"))
    };
    // Sets before the rules that reference them; the marker (prior values) before any
    // guest change; the datacenter switch last.
    assert!(
        at("POST /cluster/firewall/ipset/iso-lab1-allowed")
            < at("POST /cluster/firewall/groups/iso-lab1")
    );
    assert!(
        at("POST /nodes/pve1/qemu/301/firewall/rules")
            < at("PUT /nodes/pve1/qemu/301/firewall/options")
    );
    assert!(
        at("PUT /nodes/pve1/qemu/301/firewall/options") < at("PUT /nodes/pve1/qemu/301/config")
    );
    assert_eq!(
        order.last().map(String::as_str),
        Some("PUT /cluster/firewall/options")
    );

    let (_, _, marker) = writes
        .iter()
        .find(|(_, p, _)| p == "/nodes/pve1/qemu/301/firewall/rules")
        .unwrap();
    assert_eq!(param(marker, "type"), Some("group"));
    assert_eq!(param(marker, "action"), Some("iso-lab1"));
    assert_eq!(param(marker, "enable"), Some("1"));
    assert_eq!(
        param(marker, "comment"),
        Some("labctl:lab1 dhcp=0 enable=- net0=-")
    );
    let (_, _, opts) = writes
        .iter()
        .find(|(m, p, _)| m == "PUT" && p.ends_with("/301/firewall/options"))
        .unwrap();
    assert_eq!(param(opts, "enable"), Some("1"));
    assert_eq!(param(opts, "dhcp"), Some("1"));
    assert_eq!(param(opts, "digest"), Some("o0"));
    let (_, _, cfg) = writes
        .iter()
        .find(|(_, p, _)| p.ends_with("/301/config"))
        .unwrap();
    assert_eq!(
        param(cfg, "net0"),
        Some("virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,tag=10,firewall=1"),
        "MAC kept"
    );
    assert_eq!(param(cfg, "digest"), Some("v0"));
    // Anti-lockout: enable=2 first, confirmed with enable=1.
    let cluster: Vec<Option<&str>> = writes
        .iter()
        .filter(|(m, p, _)| m == "PUT" && p == "/cluster/firewall/options")
        .map(|(_, _, params)| param(params, "enable"))
        .collect();
    assert_eq!(cluster, vec![Some("2"), Some("1")]);
    assert!(
        writes
            .iter()
            .all(|(_, _, p)| param(p, "policy_in").is_none()),
        "policy_in is never sent"
    );
    assert!(report.changes.len() >= 12, "{report}");
    check_against_schema(&log.records());
}

/// A GROUP rule that PVE's parser rejected is skipped by the firewall: the simulator
/// cannot produce one (its GROUP rules have no fields that can go stale), a mock can.
#[tokio::test]
async fn verify_reports_a_group_rule_that_pve_skips() {
    let server = MockServer::start_async().await;
    let get = |path: &str, data: serde_json::Value| {
        server.mock(|when, then| {
            when.method(GET).path(format!("/api2/json{path}"));
            then.json_body(json!({ "data": data }));
        });
    };
    get(
        "/cluster/firewall/options",
        json!({"enable": 1, "digest": "c0"}),
    );
    get(
        "/cluster/firewall/groups",
        json!([{"group": "iso-lab1", "comment": "labctl:lab1 cluster-enable=-", "digest": "g0"}]),
    );
    get("/cluster/firewall/groups/iso-lab1", json!([]));
    get(
        "/cluster/firewall/ipset/iso-lab1-allowed",
        json!([{"cidr": "10.10.0.1", "digest": "s0"}]),
    );
    get(
        "/cluster/resources",
        json!([{"vmid": 301, "node": "pve1", "type": "qemu", "status": "running"}]),
    );
    get(
        "/nodes/pve1/qemu/301/config",
        json!({"digest": "v0", "net0": "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1"}),
    );
    get(
        "/nodes/pve1/qemu/301/firewall/options",
        json!({"digest": "o0", "enable": 1}),
    );
    get(
        "/nodes/pve1/qemu/301/firewall/rules",
        json!([{
            "pos": 0, "type": "group", "action": "iso-lab1", "enable": 1, "digest": "r0",
            "comment": "labctl:lab1 enable=-",
            "errors": {"action": "no such security group 'iso-lab1'"}
        }]),
    );
    let log = Log::default();
    let iso = Isolation::new(client(&server, &log));
    let options = IsolationOptions::new(LabName::new("lab1").unwrap());
    let students = Students::List(vec![VmId::new(301).unwrap()]);
    let check = iso
        .verify(&students, &["10.10.0.1".parse().unwrap()], &options)
        .await
        .unwrap();
    let guest = &check.guests[0];
    assert!(!guest.group_rule_first, "{check}");
    assert_eq!(
        guest.problems,
        vec![
            "GROUP iso-lab1 rule is skipped by PVE: action: no such security group 'iso-lab1'"
                .to_owned()
        ],
        "{check}"
    );
    assert!(!check.is_isolated());
}
