//! Acceptance 2 of issue 17: probes from the teacher's guest (`ping`, `nc -z`, `dig`,
//! `curl`) to a fenced student answer as the firewall oracle and the student's
//! services say, and change when the fence or `link_down` changes.

use serde_json::{json, Value};

use crate::common::Api;
use crate::guest::{put_state, run, running_vm};

fn ip_of(api: &Api, vmid: u32) -> String {
    api.sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == vmid)
        .unwrap()["ipv4"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The lab fence of `fosscloud-and-firewall.md` B.10: students reach the teacher
/// (10.10.0.1) and back, nothing else.
async fn fence(api: &Api, students: &[u32]) {
    api.put("/cluster/firewall/options", &[("enable", "1")])
        .await;
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
    for id in students {
        let path = format!("/nodes/pve1/qemu/{id}/config");
        let net0 = api.get(&path, &[]).await["net0"]
            .as_str()
            .unwrap()
            .to_owned();
        api.put(&path, &[("net0", &format!("{net0},firewall=1"))])
            .await;
        api.put(
            &format!("/nodes/pve1/qemu/{id}/firewall/options"),
            &[("enable", "1")],
        )
        .await;
        api.post(
            &format!("/nodes/pve1/qemu/{id}/firewall/rules"),
            &[
                ("type", "group"),
                ("action", "iso-student"),
                ("enable", "1"),
            ],
        )
        .await;
    }
}

/// (exit code, stdout) of `argv` run inside `vmid`.
async fn sh(api: &Api, vmid: u32, argv: &[&str]) -> (i64, String) {
    let done = run(api, vmid, argv).await;
    (
        done["exitcode"].as_i64().unwrap(),
        done["out-data"].as_str().unwrap_or_default().to_owned(),
    )
}

/// ping, TCP connect, DNS and HTTP from `from` to `ip`: the four exit codes and the
/// dig and curl outputs.
async fn probe(api: &Api, from: u32, ip: &str) -> (Vec<i64>, String, String) {
    let (ping, _) = sh(api, from, &["ping", "-c", "2", "-W", "1", ip]).await;
    let (nc, _) = sh(api, from, &["nc", "-z", "-w", "2", ip, "80"]).await;
    let server = format!("@{ip}");
    let (dig, dig_out) = sh(api, from, &["dig", "+short", &server, "www.lab", "A"]).await;
    let url = format!("http://{ip}/");
    let (curl, curl_out) = sh(
        api,
        from,
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ],
    )
    .await;
    (vec![ping, nc, dig, curl], dig_out, curl_out)
}

#[tokio::test]
async fn teacher_probes_reach_a_fenced_student_and_a_neighbour_is_refused() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud-150").await;
    running_vm(&api, 151, "stud-151").await;
    let (st, _) = put_state(
        &api,
        150,
        json!({"services": {
            "tcp/80": {"unit": "nginx", "http": {"status": 200, "body": "<h1>150</h1>"}},
            "udp/53": {"unit": "bind9", "dns": {"www.lab": {"A": ["10.10.0.1"]}}},
        }}),
    )
    .await;
    assert_eq!(st, 200);
    fence(&api, &[150, 151]).await;
    let ip150 = ip_of(&api, 150);

    // The teacher is let in: every probe answers from the student's services.
    let (codes, dig, curl) = probe(&api, 100, &ip150).await;
    assert_eq!(codes, vec![0, 0, 0, 0]);
    assert_eq!((dig.as_str(), curl.as_str()), ("10.10.0.1\n", "200"));
    // A closed port is refused at once.
    let (nc81, _) = sh(&api, 100, &["nc", "-z", "-w", "2", &ip150, "81"]).await;
    assert_eq!(nc81, 1);
    // The neighbour is dropped: no reply, connect and HTTP time out, DNS gives up.
    let (codes, dig, curl) = probe(&api, 151, &ip150).await;
    assert_eq!(codes, vec![1, 1, 9, 28]);
    assert!(dig.contains("timed out"), "{dig}");
    assert_eq!(curl, "000");

    // The fence changes: lifted on both students, the neighbour gets through.
    for id in [150, 151] {
        api.put(
            &format!("/nodes/pve1/qemu/{id}/firewall/options"),
            &[("enable", "0")],
        )
        .await;
    }
    let (codes, _, _) = probe(&api, 151, &ip150).await;
    assert_eq!(codes, vec![0, 0, 0, 0]);

    // link_down=1 on the student's NIC: nothing passes, not even from the teacher.
    let path = "/nodes/pve1/qemu/150/config";
    let net0 = api.get(path, &[]).await["net0"]
        .as_str()
        .unwrap()
        .to_owned();
    api.put(path, &[("net0", &format!("{net0},link_down=1"))])
        .await;
    let (codes, _, curl) = probe(&api, 100, &ip150).await;
    assert_eq!(codes, vec![1, 1, 9, 28]);
    assert_eq!(curl, "000");
    let oracle: Value = api
        .http
        .get(format!("{}/_sim/reachability", api.sim.url()))
        .query(&[("from", "100"), ("to", "150"), ("proto", "icmp")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oracle["allowed"], false, "{oracle}");
    // Inside, the NIC has lost its carrier.
    let (_, link) = sh(&api, 150, &["ip", "-j", "link", "show", "dev", "ens18"]).await;
    let link: Value = serde_json::from_str(&link).unwrap();
    assert_eq!(link[0]["operstate"], "DOWN");
    assert!(link[0]["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("NO-CARRIER")));
    // Plugged back in (link_down=0 explicitly), the teacher gets through again.
    api.put(path, &[("net0", &format!("{net0},link_down=0"))])
        .await;
    let (codes, _, _) = probe(&api, 100, &ip150).await;
    assert_eq!(codes, vec![0, 0, 0, 0]);
}

#[tokio::test]
async fn link_down_keeps_the_mac_when_the_whole_value_is_resent() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "s").await;
    let path = "/nodes/pve1/qemu/150/config";
    let cfg = api.get(path, &[]).await;
    let net0 = cfg["net0"].as_str().unwrap().to_owned();
    let mac = net0.split(',').next().unwrap().to_owned(); // virtio=BC:24:11:…
    api.put(
        path,
        &[
            ("net0", &format!("{net0},link_down=1")),
            ("digest", cfg["digest"].as_str().unwrap()),
        ],
    )
    .await;
    let after = api.get(path, &[]).await["net0"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(after.starts_with(&mac), "{after}");
    assert!(after.contains("link_down=1"), "{after}");
    // The agent still sees the same MAC.
    let ifs = api
        .get("/nodes/pve1/qemu/150/agent/network-get-interfaces", &[])
        .await;
    assert_eq!(
        ifs["result"][1]["hardware-address"].as_str().unwrap(),
        mac.trim_start_matches("virtio=").to_lowercase()
    );
    // Without the MAC, PVE generates a new one.
    api.put(path, &[("net0", "model=virtio,bridge=vmbr0,link_down=1")])
        .await;
    let fresh = api.get(path, &[]).await["net0"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fresh.starts_with("virtio=BC:24:11:"), "{fresh}");
    assert!(!fresh.starts_with(&mac), "{fresh} kept {mac}");
}
