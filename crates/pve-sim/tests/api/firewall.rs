//! Firewall endpoints over HTTP, the clone/destroy life of `<vmid>.fw`, the reachability
//! oracle, and the other introspection endpoints.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{enc, Api};

async fn reach(api: &Api, from: u32, to: &str, proto: &str, port: Option<u16>) -> Value {
    let mut q = vec![
        ("from", from.to_string()),
        ("to", to.to_owned()),
        ("proto", proto.to_owned()),
    ];
    if let Some(p) = port {
        q.push(("port", p.to_string()));
    }
    let r = api
        .http
        .get(format!("{}/_sim/reachability", api.sim.url()))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn firewall_nic(api: &Api, vmid: u32) {
    let path = format!("/nodes/pve1/qemu/{vmid}/config");
    let net0 = api.get(&path, &[]).await["net0"]
        .as_str()
        .unwrap()
        .to_owned();
    api.put(&path, &[("net0", &format!("{net0},firewall=1"))])
        .await;
}

#[tokio::test]
async fn student_isolation_through_the_api_and_the_oracle() {
    let api = Api::start(0.01).await;
    for id in [150, 151] {
        api.clone_vm(id, &format!("stud-{id}")).await;
        api.post_ok(&format!("/nodes/pve1/qemu/{id}/status/start"), &[])
            .await;
    }
    // Nothing filters while the cluster firewall is off.
    let v = reach(&api, 100, "150", "tcp", Some(22)).await;
    assert_eq!(v["allowed"], true, "{v}");
    api.put("/cluster/firewall/options", &[("enable", "1")])
        .await;
    let opts = api.get("/cluster/firewall/options", &[]).await;
    assert_eq!(opts["enable"], 1);
    assert_eq!(opts["digest"].as_str().unwrap().len(), 40);
    // Guest enable + NIC flag: default policy_in DROP, policy_out ACCEPT.
    for id in [150, 151] {
        firewall_nic(&api, id).await;
        api.put(
            &format!("/nodes/pve1/qemu/{id}/firewall/options"),
            &[("enable", "1")],
        )
        .await;
    }
    assert_eq!(
        reach(&api, 100, "150", "tcp", Some(22)).await["allowed"],
        false
    );
    assert_eq!(
        reach(&api, 150, "100", "tcp", Some(22)).await["allowed"],
        true
    );
    // The recommended security group (B.10); POST inserts at position 0, so in reverse.
    api.post("/cluster/firewall/ipset", &[("name", "iso-teacher")])
        .await;
    api.post(
        "/cluster/firewall/ipset/iso-teacher",
        &[("cidr", "10.10.0.1")],
    )
    .await;
    api.post("/cluster/firewall/groups", &[("group", "iso-student")])
        .await;
    for (typ, action, key, value) in [
        ("out", "DROP", "", ""),
        ("in", "DROP", "", ""),
        ("out", "ACCEPT", "dest", "+iso-teacher"),
        ("in", "ACCEPT", "source", "+iso-teacher"),
    ] {
        let mut p = vec![("type", typ), ("action", action), ("enable", "1")];
        if !key.is_empty() {
            p.push((key, value));
        }
        api.post("/cluster/firewall/groups/iso-student", &p).await;
    }
    let group = api.get("/cluster/firewall/groups/iso-student", &[]).await;
    assert_eq!(group.as_array().unwrap().len(), 4);
    assert_eq!(group[0]["source"], "+iso-teacher");
    for id in [150, 151] {
        api.post(
            &format!("/nodes/pve1/qemu/{id}/firewall/rules"),
            &[
                ("type", "group"),
                ("action", "iso-student"),
                ("enable", "1"),
                ("comment", "labctl"),
            ],
        )
        .await;
    }
    let rules = api.get("/nodes/pve1/qemu/150/firewall/rules", &[]).await;
    assert_eq!(rules[0]["pos"], 0);
    assert_eq!(rules[0]["comment"], "labctl");
    let d = rules[0]["digest"].as_str().unwrap().to_owned();
    api.put(
        "/nodes/pve1/qemu/150/firewall/rules/0",
        &[("comment", "labctl exam"), ("digest", &d)],
    )
    .await;
    let one = api.get("/nodes/pve1/qemu/150/firewall/rules/0", &[]).await;
    assert_eq!(one["comment"], "labctl exam");
    let rules = api.get("/nodes/pve1/qemu/150/firewall/rules", &[]).await;
    // Students reach the teacher and back, not each other, not the outside.
    assert_eq!(
        reach(&api, 150, "100", "tcp", Some(22)).await["allowed"],
        true
    );
    assert_eq!(
        reach(&api, 100, "150", "tcp", Some(22)).await["allowed"],
        true
    );
    let v = reach(&api, 150, "151", "tcp", Some(22)).await;
    assert_eq!(v["allowed"], false, "{v}");
    assert!(!v["reason"].as_str().unwrap().is_empty());
    assert_eq!(
        reach(&api, 150, "8.8.8.8", "icmp", None).await["allowed"],
        false
    );
    // The handle gives the same answer; addresses of guests resolve to the guest.
    let ip151 = api.sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 151)
        .unwrap()["ipv4"]
        .as_str()
        .unwrap()
        .to_owned();
    let verdict = api.sim.reachability(150, &ip151, "tcp", Some(22)).unwrap();
    assert!(!verdict.allowed);
    // A stopped guest answers nothing.
    api.post_ok("/nodes/pve1/qemu/151/status/stop", &[]).await;
    let v = reach(&api, 100, "151", "icmp", None).await;
    assert_eq!(v["allowed"], false);
    assert!(v["reason"].as_str().unwrap().contains("not running"), "{v}");
    // Bad questions are 400.
    let r = api
        .http
        .get(format!(
            "{}/_sim/reachability?from=x&to=100&proto=tcp&port=22",
            api.sim.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(api.sim.reachability(150, "100", "sctp", Some(1)).is_err());
    // Removing the rule by position with the list digest lifts the fence.
    let digest = rules[0]["digest"].as_str().unwrap().to_owned();
    api.delete(
        "/nodes/pve1/qemu/150/firewall/rules/0",
        &[("digest", &digest)],
    )
    .await;
    assert_eq!(
        reach(&api, 150, "100", "tcp", Some(22)).await["allowed"],
        true
    );
    let a = api
        .call(
            Method::DELETE,
            "/nodes/pve1/qemu/150/firewall/rules/0",
            &[("digest", &digest)],
        )
        .await;
    assert_eq!(a.status, 500, "stale digest or no rule: {a:?}");
}

#[tokio::test]
async fn guest_firewall_file_is_copied_on_clone_and_removed_on_destroy() {
    let api = Api::start(0.01).await;
    api.put(
        "/nodes/pve1/qemu/9000/firewall/options",
        &[("enable", "1"), ("dhcp", "1")],
    )
    .await;
    api.post(
        "/nodes/pve1/qemu/9000/firewall/rules",
        &[
            ("type", "in"),
            ("action", "ACCEPT"),
            ("macro", "SSH"),
            ("enable", "1"),
            ("comment", "from-template"),
        ],
    )
    .await;
    api.clone_vm(150, "fwcopy").await;
    let rules = api.get("/nodes/pve1/qemu/150/firewall/rules", &[]).await;
    assert_eq!(rules[0]["comment"], "from-template");
    assert_eq!(
        api.get("/nodes/pve1/qemu/150/firewall/options", &[]).await["enable"],
        1
    );
    assert!(api.sim.state()["firewall"]["guests"].get("150").is_some());
    let upid = api.delete("/nodes/pve1/qemu/150", &[]).await;
    api.wait_task(&upid).await;
    assert!(api.sim.state()["firewall"]["guests"].get("150").is_none());
    // Firewall paths check that the guest lives on the node.
    let a = api
        .call(Method::GET, "/nodes/pve2/qemu/9000/firewall/rules", &[])
        .await;
    assert_eq!(
        a.message(),
        "Configuration file 'nodes/pve2/qemu-server/9000.conf' does not exist\n"
    );
    // LXC and node level, IP set entries with a slash in the path.
    api.put("/nodes/pve1/lxc/9001/firewall/options", &[("enable", "1")])
        .await;
    assert_eq!(
        api.get("/nodes/pve1/lxc/9001/firewall/options", &[]).await["enable"],
        1
    );
    api.put("/nodes/pve2/firewall/options", &[("enable", "0")])
        .await;
    assert_eq!(
        api.get("/nodes/pve2/firewall/options", &[]).await["enable"],
        0
    );
    api.post("/cluster/firewall/ipset", &[("name", "nets")])
        .await;
    api.post("/cluster/firewall/ipset/nets", &[("cidr", "10.20.0.0/24")])
        .await;
    let e = api
        .get(
            &format!("/cluster/firewall/ipset/nets/{}", enc("10.20.0.0/24")),
            &[],
        )
        .await;
    assert_eq!(e["cidr"], "10.20.0.0/24");
    api.post(
        "/cluster/firewall/aliases",
        &[("name", "Teacher"), ("cidr", "10.10.0.1")],
    )
    .await;
    assert_eq!(
        api.get("/cluster/firewall/aliases/teacher", &[]).await["cidr"],
        "10.10.0.1"
    );
}

#[tokio::test]
async fn request_counts_and_state() {
    let api = Api::start(0.01).await;
    api.get("/nodes/pve1/qemu/100/status/current", &[]).await;
    api.get("/nodes/pve2/qemu/200/status/current", &[]).await;
    api.get("/version", &[]).await;
    let _ = api.call(Method::GET, "/nope", &[]).await;
    let url = format!("{}/_sim/requests", api.sim.url());
    let counts: Value = api
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["GET /nodes/{node}/qemu/{vmid}/status/current"], 2);
    assert_eq!(counts["GET /version"], 1);
    assert_eq!(counts["GET /nope"], 1);
    assert_eq!(counts, api.sim.requests());
    let r = api.http.delete(&url).send().await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(api.sim.requests(), json!({}));
    let state: Value = api
        .http
        .get(format!("{}/_sim/state", api.sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["nodes"], json!(["pve1", "pve2", "pve3"]));
    let teacher = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 100)
        .unwrap();
    assert_eq!(
        (teacher["ipv4"].as_str(), teacher["status"].as_str()),
        (Some("10.10.0.1"), Some("running"))
    );
    assert!(state["firewall"]["cluster"].is_object());
    assert_eq!(state["pools"], json!({}));
}

#[tokio::test]
async fn switches_defaults_disabled_new_rules_first_match_aliases_and_digests() {
    let api = Api::start(0.01).await;
    api.clone_vm(150, "stud-150").await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    let rules = "/nodes/pve1/qemu/150/firewall/rules";
    let opts = "/nodes/pve1/qemu/150/firewall/options";
    let ssh = || reach(&api, 100, "150", "tcp", Some(22));
    let allowed = |v: Value| v["allowed"].as_bool().unwrap();

    // Cluster and guest switched on, but the NIC lacks firewall=1: nothing filters.
    api.put("/cluster/firewall/options", &[("enable", "1")])
        .await;
    api.put(opts, &[("enable", "1")]).await;
    assert!(allowed(ssh().await), "NIC without firewall=1 is untouched");
    // All three switches: the default policy_in DROP applies (GET shows set keys only).
    firewall_nic(&api, 150).await;
    let o = api.get(opts, &[]).await;
    assert_eq!(o["enable"], 1);
    assert!(o.get("policy_in").is_none(), "{o}");
    assert!(!allowed(ssh().await), "default policy_in is DROP");
    assert!(
        allowed(reach(&api, 150, "100", "tcp", Some(22)).await),
        "default policy_out is ACCEPT"
    );

    // A rule created without enable=1 is disabled.
    api.post(
        rules,
        &[
            ("type", "in"),
            ("action", "ACCEPT"),
            ("proto", "tcp"),
            ("dport", "22"),
        ],
    )
    .await;
    let list = api.get(rules, &[]).await;
    assert_eq!(list[0]["enable"], 0, "{list}");
    assert!(!allowed(ssh().await), "a disabled rule does not match");
    let digest = list[0]["digest"].as_str().unwrap().to_owned();
    api.put(
        &format!("{rules}/0"),
        &[("enable", "1"), ("digest", &digest)],
    )
    .await;
    assert!(allowed(ssh().await));
    assert!(!allowed(reach(&api, 100, "150", "udp", Some(53)).await));

    // New rules go to position 0, and the first match wins.
    api.post(
        rules,
        &[
            ("type", "in"),
            ("action", "DROP"),
            ("source", "10.10.0.1"),
            ("enable", "1"),
        ],
    )
    .await;
    let list = api.get(rules, &[]).await;
    assert_eq!(
        (list[0]["action"].as_str(), list[1]["action"].as_str()),
        (Some("DROP"), Some("ACCEPT"))
    );
    assert_eq!(
        (list[0]["pos"].as_u64(), list[1]["pos"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(!allowed(ssh().await), "DROP at 0 shadows ACCEPT at 1");

    // Aliases are keyed case-insensitively (the file parser lower-cases the key) and
    // usable as a rule source.
    api.post(
        "/cluster/firewall/aliases",
        &[("name", "Teacher"), ("cidr", "10.10.0.1")],
    )
    .await;
    let alias = api.get("/cluster/firewall/aliases/teacher", &[]).await;
    assert_eq!(alias["cidr"], "10.10.0.1");
    api.post(
        rules,
        &[
            ("type", "in"),
            ("action", "ACCEPT"),
            ("source", "teacher"),
            ("proto", "tcp"),
            ("dport", "22"),
            ("enable", "1"),
        ],
    )
    .await;
    assert!(allowed(ssh().await));

    // Digests: a stale one is refused with the firewall text, rules and options alike.
    let stale = list[0]["digest"].as_str().unwrap();
    let a = api
        .call(
            Method::PUT,
            &format!("{rules}/1"),
            &[("comment", "x"), ("digest", stale)],
        )
        .await;
    let changed = "detected modified configuration - file changed by other user? Try again.\n";
    assert_eq!((a.status, a.message()), (500, changed));
    let a = api.call(Method::DELETE, &format!("{rules}/9"), &[]).await;
    assert_eq!((a.status, a.message()), (500, "no rule at position 9\n"));
    let a = api
        .call(
            Method::PUT,
            opts,
            &[("dhcp", "1"), ("digest", &"0".repeat(40))],
        )
        .await;
    assert_eq!((a.status, a.message()), (500, changed));

    // Switching the cluster firewall off lifts everything.
    api.put("/cluster/firewall/options", &[("enable", "0")])
        .await;
    assert!(allowed(reach(&api, 100, "150", "udp", Some(53)).await));
}

/// The cluster `enable` as GET options reads it.
async fn cluster_enable(api: &Api) -> i64 {
    api.get("/cluster/firewall/options", &[]).await["enable"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn an_unconfirmed_anti_lockout_enable_expires_and_a_confirmed_one_stays() {
    let on = |v: &Value| v["reason"] != "accepted: cluster firewall disabled";
    // Time scale 1: within the 60 s window the write reads back as its Unix time, on.
    let slow = Api::start(1.0).await;
    slow.put("/cluster/firewall/options", &[("enable", "2")])
        .await;
    let stamp = cluster_enable(&slow).await;
    assert!(stamp > 1_700_000_000, "{stamp}");
    assert!(on(&reach(&slow, 100, "100", "icmp", None).await));

    // Time scale 0.001: the window is 60 ms. Unconfirmed, it reads back as 0 once the
    // window has passed: off for the oracle too.
    let api = Api::start(0.001).await;
    api.put("/cluster/firewall/options", &[("enable", "2")])
        .await;
    let mut polls = 0;
    while cluster_enable(&api).await != 0 {
        polls += 1;
        assert!(polls < 2000, "enable=2 never expired");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!on(&reach(&api, 100, "100", "icmp", None).await));
    // The digest is of the file as written: a PUT with it is still accepted.
    let digest = api.get("/cluster/firewall/options", &[]).await["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // Anti-lockout again, confirmed with enable=1: stays on past the window.
    api.put(
        "/cluster/firewall/options",
        &[("enable", "2"), ("digest", &digest)],
    )
    .await;
    api.put("/cluster/firewall/options", &[("enable", "1")])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(cluster_enable(&api).await, 1);
    assert!(on(&reach(&api, 100, "100", "icmp", None).await));
}
