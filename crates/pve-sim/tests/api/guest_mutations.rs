//! The commands that change a simulated guest (issue 18: a check's mutant breaks one
//! thing on a clone of the reference): run through the agent's exec, they change what
//! `ip -j addr`, `systemctl is-active`, `cat`, the agent and the probes of ANOTHER guest
//! see, fail with the real tools' texts, and on a clone leave the source untouched.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::Api;
use crate::guest::{exec_json, get_state, put_state, run, running_vm};

/// (exit code, stdout, stderr) of `argv` run inside `vmid`.
async fn sh(api: &Api, vmid: u32, argv: &[&str]) -> (i64, String, String) {
    let done = run(api, vmid, argv).await;
    let text = |k: &str| done[k].as_str().unwrap_or_default().to_owned();
    (
        done["exitcode"].as_i64().unwrap(),
        text("out-data"),
        text("err-data"),
    )
}

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

/// The `local` addresses `ip -j addr show dev DEV` lists inside `vmid`.
async fn addrs(api: &Api, vmid: u32, dev: &str) -> Vec<String> {
    let (code, out, err) = sh(api, vmid, &["ip", "-j", "addr", "show", "dev", dev]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// The `dst` of every route `ip -j route` lists inside `vmid`.
async fn route_dsts(api: &Api, vmid: u32) -> Vec<String> {
    let (_, out, _) = sh(api, vmid, &["ip", "-j", "route"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["dst"].as_str().unwrap().to_owned())
        .collect()
}

/// Exit codes of `ping` and `nc -z PORT` from `from` to `ip`.
async fn reach(api: &Api, from: u32, ip: &str, port: &str) -> (i64, i64) {
    let (ping, _, _) = sh(api, from, &["ping", "-c", "1", "-W", "1", ip]).await;
    let (nc, _, _) = sh(api, from, &["nc", "-z", "-w", "2", ip, port]).await;
    (ping, nc)
}

#[tokio::test]
async fn files_change_through_rm_touch_mkdir_and_redirections() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let (code, _, err) = sh(&api, 150, &["rm", "/etc/motd"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "rm: cannot remove '/etc/motd': No such file or directory\n"
        )
    );
    assert_eq!(sh(&api, 150, &["rm", "-f", "/etc/motd"]).await.0, 0);

    // A redirection writes the file every reader sees: cat, the agent, the state API.
    let (code, _, err) = sh(
        &api,
        150,
        &[
            "/bin/sh",
            "-c",
            "mkdir -p /var/www/html && echo 'it works' > /var/www/html/index.html",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    sh(
        &api,
        150,
        &["sh", "-c", "echo again >> /var/www/html/index.html"],
    )
    .await;
    let (_, out, _) = sh(&api, 150, &["cat", "/var/www/html/index.html"]).await;
    assert_eq!(out, "it works\nagain\n");
    let read = api
        .get(
            "/nodes/pve1/qemu/150/agent/file-read",
            &[("file", "/var/www/html/index.html")],
        )
        .await;
    assert_eq!(read["content"], "it works\nagain\n");
    assert_eq!(
        get_state(&api, 150).await["files"]["/var/www/html/index.html"]["size"],
        15
    );
    assert_eq!(sh(&api, 150, &["test", "-d", "/var/www/html"]).await.0, 0);
    // `>` truncates; stderr can go to a file; /dev/null swallows.
    let (code, out, err) = sh(
        &api,
        150,
        &["sh", "-c", "cat /nope 2> /root/err.log; echo new > /var/www/html/index.html; cat /nope 2>/dev/null || echo fallback"],
    )
    .await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "fallback\n", ""));
    let (_, out, _) = sh(
        &api,
        150,
        &["cat", "/root/err.log", "/var/www/html/index.html"],
    )
    .await;
    assert_eq!(out, "cat: /nope: No such file or directory\nnew\n");

    // rm removes it for everyone; a directory needs -r.
    let (code, _, err) = sh(&api, 150, &["rm", "/var/www/html"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "rm: cannot remove '/var/www/html': Is a directory\n")
    );
    assert_eq!(
        sh(&api, 150, &["rm", "/var/www/html/index.html"]).await.0,
        0
    );
    let (code, _, err) = sh(&api, 150, &["cat", "/var/www/html/index.html"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "cat: /var/www/html/index.html: No such file or directory\n"
        )
    );
    let gone = api
        .call(
            Method::GET,
            "/nodes/pve1/qemu/150/agent/file-read",
            &[("file", "/var/www/html/index.html")],
        )
        .await;
    assert_eq!(gone.status, 500);
    assert!(get_state(&api, 150).await["files"]["/var/www/html/index.html"].is_null());
    // The directory made with mkdir is still there until rm -r.
    assert_eq!(get_state(&api, 150).await["dirs"], json!(["/var/www/html"]));
    sh(&api, 150, &["rm", "-r", "/var/www/html"]).await;
    assert_eq!(sh(&api, 150, &["test", "-d", "/var/www/html"]).await.0, 1);

    // touch makes an empty file; a missing directory is the tools' error.
    assert_eq!(sh(&api, 150, &["touch", "/root/flag"]).await.0, 0);
    assert_eq!(get_state(&api, 150).await["files"]["/root/flag"]["size"], 0);
    let (code, _, err) = sh(&api, 150, &["touch", "/nodir/flag"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "touch: cannot touch '/nodir/flag': No such file or directory\n"
        )
    );
    let (code, _, err) = sh(&api, 150, &["sh", "-c", "echo x > /nodir/f"]).await;
    assert_eq!(
        (code, err.as_str()),
        (2, "sh: 1: cannot create /nodir/f: Directory nonexistent\n")
    );
    // printf writes without the trailing newline echo adds.
    sh(
        &api,
        150,
        &["sh", "-c", "printf '%s=%d\\n' port 80 > /root/conf"],
    )
    .await;
    assert_eq!(sh(&api, 150, &["cat", "/root/conf"]).await.1, "port=80\n");
    // Patterns match the guest's files; one that matches nothing stays as it is.
    let (code, _, err) = sh(
        &api,
        150,
        &[
            "sh",
            "-c",
            "touch /tmp/a.log /tmp/b.log /tmp/keep.txt && rm /tmp/*.log",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let (_, out, _) = sh(&api, 150, &["sh", "-c", "echo /tmp/*"]).await;
    assert_eq!(out, "/tmp/keep.txt\n");
    let (code, _, err) = sh(&api, 150, &["sh", "-c", "rm /tmp/*.log"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "rm: cannot remove '/tmp/*.log': No such file or directory\n"
        )
    );
    let (code, _, err) = sh(&api, 150, &["bash", "-c", "echo x > /nodir/f"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "bash: line 1: /nodir/f: No such file or directory\n")
    );
}

#[tokio::test]
async fn systemctl_stop_closes_the_port_another_guest_connects_to() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let (st, _) = put_state(
        &api,
        150,
        json!({"services": {"tcp/80": {"unit": "nginx", "http": {"status": 200, "body": "hi"}}}}),
    )
    .await;
    assert_eq!(st, 200);
    let ip = ip_of(&api, 150);
    let url = format!("http://{ip}/");
    let curl = [
        "curl",
        "-s",
        "-m",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url.as_str(),
    ];
    assert_eq!(reach(&api, 100, &ip, "80").await, (0, 0));

    assert_eq!(sh(&api, 150, &["systemctl", "stop", "nginx"]).await.0, 0);
    let (code, out, _) = sh(&api, 150, &["systemctl", "is-active", "nginx"]).await;
    assert_eq!((code, out.as_str()), (3, "inactive\n"));
    assert_eq!(
        get_state(&api, 150).await["services"]["tcp/80"]["active"],
        false
    );
    // The teacher's guest: the host answers, the port is closed.
    assert_eq!(reach(&api, 100, &ip, "80").await, (0, 1));
    let (code, out, _) = sh(&api, 100, &curl).await;
    assert_eq!((code, out.as_str()), (7, "000"));

    // Masked, it cannot be started; unmasked and started it answers again.
    let (code, _, err) = sh(&api, 150, &["systemctl", "mask", "nginx"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            0,
            "Created symlink /etc/systemd/system/nginx.service \u{2192} /dev/null.\n"
        )
    );
    let (code, _, err) = sh(&api, 150, &["systemctl", "start", "nginx"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Failed to start nginx.service: Unit nginx.service is masked.\n"
        )
    );
    assert_eq!(
        get_state(&api, 150).await["services"]["tcp/80"]["unit_file"],
        "masked"
    );
    sh(&api, 150, &["systemctl", "unmask", "nginx"]).await;
    assert_eq!(
        sh(&api, 150, &["systemctl", "restart", "nginx.service"])
            .await
            .0,
        0
    );
    let (code, out, _) = sh(&api, 100, &curl).await;
    assert_eq!((code, out.as_str()), (0, "200"));
    // disable leaves it running (as systemd does); --now stops it too.
    let (code, _, err) = sh(&api, 150, &["systemctl", "disable", "nginx"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            0,
            "Removed \"/etc/systemd/system/multi-user.target.wants/nginx.service\".\n"
        )
    );
    let (code, out, _) = sh(&api, 150, &["systemctl", "is-active", "nginx"]).await;
    assert_eq!((code, out.as_str()), (0, "active\n"));
    let (code, out, _) = sh(&api, 150, &["systemctl", "is-enabled", "nginx"]).await;
    assert_eq!((code, out.as_str()), (1, "disabled\n"));
    sh(&api, 150, &["systemctl", "enable", "--now", "nginx"]).await;
    sh(&api, 150, &["systemctl", "disable", "--now", "nginx"]).await;
    assert_eq!(reach(&api, 100, &ip, "80").await, (0, 1));

    // Unknown units: systemd's texts and exit codes.
    let (code, _, err) = sh(&api, 150, &["systemctl", "stop", "apache2"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            5,
            "Failed to stop apache2.service: Unit apache2.service not loaded.\n"
        )
    );
    let (code, _, err) = sh(&api, 150, &["systemctl", "start", "apache2"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            5,
            "Failed to start apache2.service: Unit apache2.service not found.\n"
        )
    );
    let (code, _, err) = sh(&api, 150, &["systemctl", "enable", "apache2"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Failed to enable unit: Unit file apache2.service does not exist.\n"
        )
    );
}

#[tokio::test]
async fn stopping_the_guest_agent_leaves_an_agentless_guest() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let started = exec_json(&api, 150, &["systemctl", "stop", "qemu-guest-agent"]).await;
    assert_eq!(started.status, 200, "{started:?}");
    let status = api
        .call(
            Method::GET,
            "/nodes/pve1/qemu/150/agent/exec-status",
            &[("pid", &started.data()["pid"].to_string())],
        )
        .await;
    assert_eq!(
        (status.status, status.message()),
        (500, "QEMU guest agent is not running\n")
    );
    assert_eq!(get_state(&api, 150).await["agent"], "stopped");
    // A reboot brings it back.
    api.post_ok("/nodes/pve1/qemu/150/status/stop", &[]).await;
    api.post_ok("/nodes/pve1/qemu/150/status/start", &[]).await;
    api.wait_for("/nodes/pve1/qemu/150/agent/get-host-name", |a| {
        a.status == 200
    })
    .await;
}

#[tokio::test]
async fn ip_commands_change_addresses_links_and_routes() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let lease = ip_of(&api, 150);

    // ip addr add: ip -j addr shows it, the teacher reaches it; twice is EEXIST.
    let add = ["ip", "addr", "add", "192.168.50.1/24", "dev", "ens18"];
    assert_eq!(sh(&api, 150, &add).await, (0, String::new(), String::new()));
    assert!(addrs(&api, 150, "ens18")
        .await
        .contains(&"192.168.50.1/24".to_owned()));
    assert_eq!(reach(&api, 100, "192.168.50.1", "22").await, (0, 0));
    assert_eq!(
        sh(&api, 150, &add).await,
        (2, String::new(), "RTNETLINK answers: File exists\n".into())
    );
    assert_eq!(
        sh(
            &api,
            150,
            &["ip", "addr", "add", "192.168.50.1/24", "dev", "eth9"]
        )
        .await,
        (1, String::new(), "Cannot find device \"eth9\"\n".into())
    );
    assert_eq!(
        sh(
            &api,
            150,
            &["ip", "addr", "add", "300.1.1.1/24", "dev", "ens18"]
        )
        .await
        .2,
        "Error: any valid prefix is expected rather than \"300.1.1.1/24\".\n"
    );
    // ip addr del: gone for the teacher too; a second time EADDRNOTAVAIL.
    let del = ["ip", "addr", "del", "192.168.50.1/24", "dev", "ens18"];
    assert_eq!(sh(&api, 150, &del).await.0, 0);
    assert!(!addrs(&api, 150, "ens18")
        .await
        .contains(&"192.168.50.1/24".to_owned()));
    assert_eq!(reach(&api, 100, "192.168.50.1", "22").await, (1, 1));
    assert_eq!(
        sh(&api, 150, &del).await,
        (
            2,
            String::new(),
            "RTNETLINK answers: Cannot assign requested address\n".into()
        )
    );

    // ip route add/del with the kernel's answers.
    let add = [
        "ip",
        "route",
        "add",
        "192.168.60.0/24",
        "via",
        "10.10.255.254",
    ];
    assert_eq!(sh(&api, 150, &add).await.0, 0);
    assert!(route_dsts(&api, 150)
        .await
        .contains(&"192.168.60.0/24".to_owned()));
    assert_eq!(
        get_state(&api, 150).await["routes"]["192.168.60.0/24"],
        json!({"via": "10.10.255.254"})
    );
    assert_eq!(
        sh(&api, 150, &add).await.2,
        "RTNETLINK answers: File exists\n"
    );
    assert_eq!(
        sh(
            &api,
            150,
            &["ip", "route", "add", "10.99.0.0/16", "via", "172.16.0.1"]
        )
        .await,
        (
            2,
            String::new(),
            "Error: Nexthop has invalid gateway.\n".into()
        )
    );
    assert_eq!(
        sh(
            &api,
            150,
            &["ip", "route", "add", "10.99.0.1/16", "dev", "ens18"]
        )
        .await
        .2,
        "Error: Invalid prefix for given prefix length.\n"
    );
    assert_eq!(
        sh(&api, 150, &["ip", "route", "del", "10.98.0.0/16"]).await,
        (
            2,
            String::new(),
            "RTNETLINK answers: No such process\n".into()
        )
    );
    assert_eq!(
        sh(&api, 150, &["ip", "route", "del", "192.168.60.0/24"])
            .await
            .0,
        0
    );
    assert!(get_state(&api, 150).await["routes"]["192.168.60.0/24"].is_null());
    // The DHCP default route can go too: the lab network stays reachable, 8.8.8.8 not.
    assert!(route_dsts(&api, 150).await.contains(&"default".to_owned()));
    assert_eq!(sh(&api, 150, &["ip", "route", "del", "default"]).await.0, 0);
    assert!(!route_dsts(&api, 150).await.contains(&"default".to_owned()));
    let (ping, _, _) = sh(&api, 150, &["ping", "-c", "1", "-W", "1", "8.8.8.8"]).await;
    assert_eq!(ping, 2);
    let teacher = ip_of(&api, 100);
    assert_eq!(reach(&api, 150, &teacher, "22").await.0, 0);

    // ip link set down: the teacher loses the student; up again, it is back.
    assert_eq!(reach(&api, 100, &lease, "22").await, (0, 0));
    assert_eq!(
        sh(&api, 150, &["ip", "link", "set", "ens18", "down"])
            .await
            .0,
        0
    );
    assert_eq!(reach(&api, 100, &lease, "22").await, (1, 1));
    let (_, out, _) = sh(&api, 150, &["ip", "-j", "link", "show", "dev", "ens18"]).await;
    let link: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(link[0]["operstate"], "DOWN");
    assert_eq!(
        sh(&api, 150, &["ip", "link", "set", "dev", "ens18", "up"])
            .await
            .0,
        0
    );
    assert_eq!(reach(&api, 100, &lease, "22").await, (0, 0));
    assert_eq!(
        sh(&api, 150, &["ip", "link", "set", "eth9", "up"]).await,
        (1, String::new(), "Cannot find device \"eth9\"\n".into())
    );

    // ip addr flush takes the lease until the next boot.
    assert_eq!(
        sh(&api, 150, &["ip", "addr", "flush", "dev", "ens18"])
            .await
            .0,
        0
    );
    assert!(!addrs(&api, 150, "ens18")
        .await
        .contains(&format!("{lease}/16")));
    assert_eq!(reach(&api, 100, &lease, "22").await, (1, 1));
    api.post_ok("/nodes/pve1/qemu/150/status/reboot", &[]).await;
    api.wait_for("/nodes/pve1/qemu/150/agent/network-get-interfaces", |a| {
        a.status == 200 && a.data()["result"][1]["ip-addresses"][0]["ip-address"] == lease
    })
    .await;
    assert!(route_dsts(&api, 150).await.contains(&"default".to_owned()));
    assert_eq!(reach(&api, 100, &lease, "22").await, (0, 0));
}

#[tokio::test]
async fn ip_link_del_removes_an_added_interface_and_its_routes() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    let (st, body) = put_state(
        &api,
        150,
        json!({
            "interfaces": {"ens18.10": {"kind": "vlan", "vlan": 10, "addresses": ["192.168.10.1/24"]}},
            "routes": {"192.168.50.0/24": {"via": "192.168.10.254", "dev": "ens18.10"}},
        }),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(route_dsts(&api, 150)
        .await
        .contains(&"192.168.50.0/24".to_owned()));
    assert_eq!(
        sh(&api, 150, &["ip", "link", "del", "ens18"]).await,
        (
            2,
            String::new(),
            "RTNETLINK answers: Operation not supported\n".into()
        )
    );
    assert_eq!(sh(&api, 150, &["ip", "link", "del", "ens18.10"]).await.0, 0);
    let (code, _, err) = sh(&api, 150, &["ip", "-j", "addr", "show", "dev", "ens18.10"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Device \"ens18.10\" does not exist.\n")
    );
    let state = get_state(&api, 150).await;
    assert!(state["interfaces"]["ens18.10"].is_null());
    assert!(state["routes"]["192.168.50.0/24"].is_null());
    assert_eq!(
        sh(&api, 150, &["ip", "link", "del", "ens18.10"]).await,
        (1, String::new(), "Cannot find device \"ens18.10\"\n".into())
    );
}

#[tokio::test]
async fn hostnamectl_sets_the_name_every_reader_sees() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "stud").await;
    assert_eq!(
        sh(&api, 150, &["hostnamectl", "set-hostname", "web01"]).await,
        (0, String::new(), String::new())
    );
    assert_eq!(sh(&api, 150, &["cat", "/etc/hostname"]).await.1, "web01\n");
    assert_eq!(sh(&api, 150, &["hostname"]).await.1, "web01\n");
    let name = api
        .get("/nodes/pve1/qemu/150/agent/get-host-name", &[])
        .await;
    assert_eq!(name["result"]["host-name"], "web01");
    assert_eq!(sh(&api, 150, &["hostname", "web02"]).await.0, 0);
    assert_eq!(get_state(&api, 150).await["view"]["hostname"], "web02");
    let (code, _, err) = sh(&api, 150, &["hostnamectl", "set-hostname", "bad_name!"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("bad_name!"), "{err}");
    assert_eq!(sh(&api, 150, &["hostname"]).await.1, "web02\n");
}

/// The student work a reference guest carries: a file, a service, an address, a
/// directory made through the agent.
async fn solve(api: &Api, vmid: u32) {
    let (st, body) = put_state(
        api,
        vmid,
        json!({
            "files": {"/etc/motd": {"content": "exam\n"}},
            "services": {"tcp/80": {"unit": "nginx", "http": {"status": 200, "body": "ok"}}},
            "interfaces": {"ens18": {"addresses": ["192.168.70.1/24"]}},
        }),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (code, _, err) = sh(
        api,
        vmid,
        &[
            "sh",
            "-c",
            "mkdir -p /srv/exam && echo done > /srv/exam/flag",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
}

/// What of a guest's state a mutant could change.
fn inside(state: &Value) -> Value {
    json!({
        "files": state["files"],
        "dirs": state["dirs"],
        "services": state["services"],
        "interfaces": state["interfaces"],
        "routes": state["routes"],
        "agent": state["agent"],
    })
}

#[tokio::test]
async fn a_mutant_on_a_full_clone_of_a_running_guest_leaves_the_reference_unchanged() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "reference").await;
    solve(&api, 150).await;
    let before = inside(&get_state(&api, 150).await);

    // A full clone of the running reference carries its inside.
    api.post_ok(
        "/nodes/pve1/qemu/150/clone",
        &[("newid", "160"), ("name", "mutant"), ("full", "1")],
    )
    .await;
    api.post_ok("/nodes/pve1/qemu/160/status/start", &[]).await;
    api.wait_for("/nodes/pve1/qemu/160/agent/get-host-name", |a| {
        a.status == 200
    })
    .await;
    assert_eq!(sh(&api, 160, &["cat", "/srv/exam/flag"]).await.1, "done\n");
    assert_eq!(sh(&api, 160, &["cat", "/etc/motd"]).await.1, "exam\n");
    assert_eq!(
        sh(&api, 160, &["systemctl", "is-active", "nginx"]).await.0,
        0
    );
    assert!(addrs(&api, 160, "ens18")
        .await
        .contains(&"192.168.70.1/24".to_owned()));
    assert_eq!(sh(&api, 160, &["hostname"]).await.1, "mutant\n");

    // The mutants break the clone only.
    for mutant in [
        vec!["sh", "-c", "systemctl stop nginx && rm -r /srv/exam"],
        vec!["ip", "addr", "del", "192.168.70.1/24", "dev", "ens18"],
        vec!["sh", "-c", "echo tampered > /etc/motd"],
    ] {
        let (code, _, err) = sh(&api, 160, &mutant).await;
        assert_eq!((code, err.as_str()), (0, ""), "{mutant:?}");
    }
    assert_eq!(
        sh(&api, 160, &["systemctl", "is-active", "nginx"]).await.0,
        3
    );
    assert_eq!(sh(&api, 160, &["test", "-e", "/srv/exam/flag"]).await.0, 1);
    assert!(!addrs(&api, 160, "ens18")
        .await
        .contains(&"192.168.70.1/24".to_owned()));
    assert_ne!(inside(&get_state(&api, 160).await), before);

    assert_eq!(inside(&get_state(&api, 150).await), before);
    assert_eq!(sh(&api, 150, &["cat", "/srv/exam/flag"]).await.1, "done\n");
    assert_eq!(
        sh(&api, 150, &["systemctl", "is-active", "nginx"]).await.0,
        0
    );
    let ip = ip_of(&api, 150);
    assert_eq!(reach(&api, 100, &ip, "80").await, (0, 0));
}

#[tokio::test]
async fn a_clone_from_a_snapshot_carries_the_inside_the_snapshot_kept() {
    let api = Api::start(0.01).await;
    running_vm(&api, 150, "reference").await;
    solve(&api, 150).await;
    api.post_ok(
        "/nodes/pve1/qemu/150/snapshot",
        &[("snapname", "solved"), ("vmstate", "0")],
    )
    .await;
    // Changed after the snapshot: the clone must not see it.
    sh(
        &api,
        150,
        &["sh", "-c", "rm /etc/motd; echo later > /root/later"],
    )
    .await;

    api.post_ok(
        "/nodes/pve1/qemu/150/clone",
        &[
            ("newid", "161"),
            ("name", "from-snap"),
            ("snapname", "solved"),
            ("full", "1"),
        ],
    )
    .await;
    api.post_ok("/nodes/pve1/qemu/161/status/start", &[]).await;
    api.wait_for("/nodes/pve1/qemu/161/agent/get-host-name", |a| {
        a.status == 200
    })
    .await;
    assert_eq!(sh(&api, 161, &["cat", "/etc/motd"]).await.1, "exam\n");
    assert_eq!(sh(&api, 161, &["cat", "/srv/exam/flag"]).await.1, "done\n");
    assert_eq!(sh(&api, 161, &["test", "-e", "/root/later"]).await.0, 1);
    assert_eq!(
        sh(&api, 161, &["systemctl", "is-active", "nginx"]).await.0,
        0
    );
    assert_eq!(sh(&api, 161, &["hostname"]).await.1, "from-snap\n");
    // The source keeps its own later state.
    assert_eq!(sh(&api, 150, &["cat", "/root/later"]).await.1, "later\n");

    let missing = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/150/clone",
            &[("newid", "162"), ("snapname", "nope"), ("full", "1")],
        )
        .await;
    assert_eq!(
        (missing.status, missing.message()),
        (500, "snapshot 'nope' does not exist\n")
    );
}
