//! The fence's less travelled paths, against the simulator (real HTTP on 127.0.0.1): fresh
//! clones fenced from a template baseline, a datacenter firewall that is already on, left
//! off or half-way through PVE's anti-lockout step, objects of the lab's name that labctl
//! did not make, a group body cut short, every way `verify` finds a student escaping, a
//! student that cannot be fenced or read, a student destroyed meanwhile, an admin's own
//! `management` set, and inputs refused before any request.

mod common;

use std::future::Future;
use std::time::Duration;

use common::{check_against_schema, fw_state, Log};
use pve_auth::{ApiToken, PveClient};
use pve_firewall::isolation::{Change, Isolation, IsolationOptions, LabName, Students};
use pve_firewall::{
    Cidr, Error, Firewall, GroupName, Iface, IpSetName, OptionsUpdate, PortSpec, Proto, Rule, Scope,
};
use pve_sim::{RequestFault, SimHandle, Simulator};
use pve_vm::{
    CloneMode, CloneOptions, ConfigUpdate, DestroyOptions, Guest, NewId, Timing, VmApi, VmId,
};
use serde_json::{json, Value};

const TOKEN: &str = "root@pam!tester=11111111-2222-3333-4444-555555555555";
const SCALE: f64 = 0.01;
const TEACHER_IP: &str = "10.10.0.1";
const TEMPLATE: u32 = 9000;

/// Fails the test, naming what it waited for, instead of hanging.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 120 s"))
}

async fn sim_at(seed: u64, scale: f64) -> SimHandle {
    Simulator::builder()
        .token(TOKEN)
        .plain_http(true)
        .time_scale(scale)
        .seed(seed)
        .start()
        .await
        .expect("simulator starts")
}

async fn sim(seed: u64) -> SimHandle {
    sim_at(seed, SCALE).await
}

fn client(sim: &SimHandle, log: &Log) -> PveClient {
    let token: ApiToken = TOKEN.parse().expect("token");
    PveClient::builder(&sim.url())
        .token(token)
        .observer(log.observer())
        .build()
        .expect("client")
}

fn vms(client: &PveClient) -> VmApi {
    VmApi::with_timing(client.clone(), Timing::default().scaled(SCALE))
}

fn iso(client: &PveClient) -> Isolation {
    Isolation::with_vm_api(vms(client))
}

fn id(n: u32) -> VmId {
    VmId::new(n).expect("valid id")
}

fn lab(name: &str) -> LabName {
    LabName::new(name).expect("lab name")
}

fn allowed() -> Vec<Cidr> {
    vec![TEACHER_IP.parse().expect("ip")]
}

/// Clones stopped students `ids` from the QEMU template, one at a time.
async fn clones(client: &PveClient, ids: &[u32]) -> Vec<Guest> {
    let template = vms(client).guest(id(TEMPLATE)).await.expect("template");
    let mut out = Vec::new();
    for &vmid in ids {
        let g = template
            .clone_to(CloneOptions {
                newid: NewId::Exact(id(vmid)),
                hostname: Some(format!("stud-{vmid}")),
                mode: CloneMode::Linked,
                ..CloneOptions::default()
            })
            .await
            .expect("clone");
        out.push(g);
    }
    out
}

fn list(ids: &[u32]) -> Students {
    Students::List(ids.iter().map(|&n| id(n)).collect())
}

fn guest_scope(g: &Guest) -> Scope {
    Scope::guest(g.node().clone(), g.kind(), g.vmid())
}

fn group_scope(lab: &LabName) -> Scope {
    Scope::Group(GroupName::new(&format!("iso-{lab}")).expect("group"))
}

/// The guest's firewall options as the simulator holds them.
fn guest_options(sim: &SimHandle, vmid: u32) -> Value {
    sim.state()["firewall"]["guests"][vmid.to_string()]["options"].clone()
}

fn cluster_enable(sim: &SimHandle) -> Value {
    sim.state()["firewall"]["cluster"]["options"]["enable"].clone()
}

/// The `netX` strings of a guest's config.
fn nic(sim: &SimHandle, vmid: u32, key: &str) -> String {
    let state = sim.state();
    let g = state["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .find(|g| g["vmid"] == json!(vmid))
        .unwrap_or_else(|| panic!("guest {vmid} in the simulator"))
        .clone();
    g["config"][key].as_str().unwrap_or_default().to_owned()
}

/// Requests counted by the simulator for one `METHOD /template`.
fn count(sim: &SimHandle, key: &str) -> u64 {
    sim.requests()[key].as_u64().unwrap_or(0)
}

fn notes_mention(notes: &[String], what: &str) -> bool {
    notes.iter().any(|n| n.contains(what))
}

#[tokio::test]
async fn a_fresh_clone_is_fenced_from_its_template_baseline_and_restored_exactly() {
    within("fencing a clone from a baseline", async {
        let sim = sim(41).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let iso = iso(&client);
        let opts = IsolationOptions::new(lab("cl"));
        let guests = clones(&client, &[301]).await;
        let before = fw_state(&sim);
        let nic_before = nic(&sim, 301, "net0");

        let prepared = iso.prepare(&allowed(), &opts).await.expect("prepare");
        assert_eq!(prepared.lab, "cl", "the report names the lab");
        assert!(
            prepared.changes.contains(&Change::ClusterFirewall {
                from: None,
                to: Some("1".into())
            }),
            "{prepared}"
        );
        assert!(
            !iso.holds(id(301), &lab("cl")).await.expect("holds"),
            "an unfenced clone does not hold the fence"
        );

        let baseline = iso
            .clone_baseline(id(TEMPLATE), &lab("cl"))
            .await
            .expect("baseline");
        assert_eq!(baseline.template(), id(TEMPLATE));
        let nics: Vec<u32> = baseline.nics().iter().map(|(i, _)| *i).collect();
        assert_eq!(nics, vec![0], "the template's one NIC");
        assert!(!baseline.nics()[0].1.firewall());

        sim.reset_requests();
        let update = iso
            .fence_clone(&guests[0], &baseline, &opts)
            .await
            .expect("fence clone")
            .expect("an unmarked template gives a NIC update");
        // Two requests and no reads: the marker rule, then the options.
        assert_eq!(
            count(&sim, "POST /nodes/{node}/qemu/{vmid}/firewall/rules"),
            1
        );
        assert_eq!(
            count(&sim, "PUT /nodes/{node}/qemu/{vmid}/firewall/options"),
            1
        );
        assert_eq!(
            count(&sim, "GET /nodes/{node}/qemu/{vmid}/firewall/rules"),
            0
        );
        let rules = &sim.state()["firewall"]["guests"]["301"]["rules"];
        assert_eq!(
            rules[0]["comment"], "labctl:cl dhcp=- enable=- net0=-",
            "the marker records the template's values: {rules}"
        );
        let options = guest_options(&sim, 301);
        assert_eq!(options["enable"], json!(1), "{options}");
        assert_eq!(options["dhcp"], json!(1), "{options}");
        assert!(
            !iso.holds(id(301), &lab("cl")).await.expect("holds"),
            "the NICs are the caller's to send: without them the fence does not hold"
        );
        guests[0].update_config(&update).await.expect("NIC update");
        assert!(
            nic(&sim, 301, "net0").contains("firewall=1"),
            "{}",
            nic(&sim, 301, "net0")
        );
        assert!(iso.holds(id(301), &lab("cl")).await.expect("holds"));
        let check = iso
            .verify(&list(&[301]), &allowed(), &opts)
            .await
            .expect("verify");
        assert!(check.is_isolated(), "{check}");

        let undo = iso
            .unisolate(&list(&[301]), &opts)
            .await
            .expect("unisolate");
        assert_eq!(undo.lab, "cl", "the report names the lab");
        assert_eq!(fw_state(&sim).0, before.0, "firewall restored exactly");
        let nic_after = nic(&sim, 301, "net0");
        assert!(
            !nic_after.contains("firewall"),
            "{nic_before} -> {nic_after}"
        );
        assert!(!iso.holds(id(301), &lab("cl")).await.expect("holds"));
        check_against_schema(&log.records());
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn with_dhcp_off_students_get_their_firewall_on_and_their_dhcp_option_left_alone() {
    within("fencing with dhcp off", async {
        let sim = sim(42).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let iso = iso(&client);
        let mut opts = IsolationOptions::new(lab("nodhcp"));
        opts.dhcp = false;
        let guests = clones(&client, &[301, 302]).await;
        let before = fw_state(&sim);
        iso.prepare(&allowed(), &opts).await.expect("prepare");

        // 301: a fresh clone, fenced from the baseline.
        let baseline = iso
            .clone_baseline(id(TEMPLATE), &opts.lab)
            .await
            .expect("baseline");
        let update = iso
            .fence_clone(&guests[0], &baseline, &opts)
            .await
            .expect("fence clone")
            .expect("NIC update");
        guests[0].update_config(&update).await.expect("NIC update");
        // 302: fenced in whatever state it is.
        let one = iso.isolate_one(id(302), &opts).await.expect("isolate one");
        assert_eq!(one.lab, "nodhcp", "the report names the lab");
        assert!(
            one.changes.iter().any(|c| matches!(
                c,
                Change::GuestOption { key, .. } if key == "enable"
            )),
            "{one}"
        );
        for vmid in [301, 302] {
            let options = guest_options(&sim, vmid);
            assert_eq!(options["enable"], json!(1), "guest {vmid}: {options}");
            assert!(
                options.get("dhcp").is_none(),
                "guest {vmid}: dhcp is not ours to set: {options}"
            );
            assert!(iso.holds(id(vmid), &opts.lab).await.expect("holds"));
        }
        // Destroyed students need no restore: lifting the lab removes the rest.
        for g in &guests {
            g.destroy(DestroyOptions::default()).await.expect("destroy");
        }
        let lifted = iso.lift_lab(&opts).await.expect("lift lab");
        assert_eq!(lifted.lab, "nodhcp", "the report names the lab");
        assert!(!lifted.is_unchanged());
        let after = fw_state(&sim);
        assert_eq!(
            after.0["cluster"], before.0["cluster"],
            "datacenter restored exactly"
        );
        check_against_schema(&log.records());
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_datacenter_firewall_already_on_is_left_on_and_not_claimed() {
    within("isolating with the datacenter on", async {
        let sim = sim(43).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let fw = Firewall::new(client.clone());
        fw.set_options(&Scope::Cluster, &OptionsUpdate::new().enable(true))
            .await
            .expect("datacenter on");
        clones(&client, &[301]).await;
        let before = fw_state(&sim);
        let iso = iso(&client);
        let opts = IsolationOptions::new(lab("on"));
        sim.reset_requests();
        let report = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("isolate");
        assert_eq!(report.lab, "on", "the report names the lab");
        assert_eq!(
            count(&sim, "PUT /cluster/firewall/options"),
            0,
            "an enabled datacenter firewall is not written"
        );
        assert!(
            !report
                .changes
                .iter()
                .any(|c| matches!(c, Change::ClusterFirewall { .. })),
            "{report}"
        );
        assert!(
            !notes_mention(&report.notes, "datacenter firewall"),
            "nothing to say about a switch that was on: {report}"
        );
        let groups = &sim.state()["firewall"]["cluster"]["groups"];
        assert_eq!(
            groups["iso-on"]["comment"], "labctl:on cluster-enable=1",
            "the group records the switch as it was: {groups}"
        );
        let undo = iso
            .unisolate(&list(&[301]), &opts)
            .await
            .expect("unisolate");
        assert_eq!(undo.lab, "on");
        assert_eq!(cluster_enable(&sim), json!(1), "still on");
        assert_eq!(fw_state(&sim), before);
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn with_enable_cluster_off_an_off_datacenter_is_reported_and_left_off() {
    within("isolating with enable_cluster false", async {
        let sim = sim(44).await;
        let log = Log::default();
        let client = client(&sim, &log);
        clones(&client, &[301]).await;
        let iso = iso(&client);
        let mut opts = IsolationOptions::new(lab("off"));
        opts.enable_cluster = false;
        let report = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("isolate");
        assert_eq!(cluster_enable(&sim), Value::Null, "left as it was");
        assert!(
            notes_mention(&report.notes, "NOT in force"),
            "the caller is told: {report}"
        );
        let check = iso
            .verify(&list(&[301]), &allowed(), &opts)
            .await
            .expect("verify");
        assert!(!check.cluster_enabled);
        assert!(
            check.guests.iter().all(|g| g.is_isolated()),
            "the student's own part is in place: {check}"
        );
        assert!(
            !check.is_isolated(),
            "a fence without the datacenter switch is not in force: {check}"
        );
        assert!(check.to_string().contains("NOT isolated"), "{check}");
        assert!(
            check
                .to_string()
                .contains("datacenter: datacenter firewall is disabled"),
            "{check}"
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_pending_anti_lockout_switch_is_confirmed_with_one_write() {
    // Real time: the pending `enable=2` expires after 60 s, far longer than this test.
    within("confirming a pending switch", async {
        let sim = sim_at(45, 1.0).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let fw = Firewall::new(client.clone());
        fw.set_options(&Scope::Cluster, &OptionsUpdate::new().set("enable", 2u8))
            .await
            .expect("someone's anti-lockout step");
        let iso = Isolation::new(client.clone());
        let opts = IsolationOptions::new(lab("pend"));
        sim.reset_requests();
        let report = iso.prepare(&allowed(), &opts).await.expect("prepare");
        let writes: Vec<Option<String>> = log
            .writes()
            .into_iter()
            .filter(|(m, p, _)| m == "PUT" && p == "/cluster/firewall/options")
            .map(|(_, _, params)| {
                params
                    .iter()
                    .find(|(k, _)| k == "enable")
                    .map(|(_, v)| v.clone())
            })
            .collect();
        assert_eq!(
            writes.last(),
            Some(&Some("1".to_owned())),
            "confirmed: {writes:?}"
        );
        assert_eq!(
            count(&sim, "PUT /cluster/firewall/options"),
            1,
            "no second anti-lockout step: {writes:?}"
        );
        assert_eq!(cluster_enable(&sim), json!(1));
        assert!(
            report
                .changes
                .iter()
                .any(|c| matches!(c, Change::ClusterFirewall { .. })),
            "{report}"
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn objects_of_the_labs_name_that_labctl_did_not_make_stop_isolate_and_stay() {
    within("foreign objects of the lab's name", async {
        let sim = sim(46).await;
        let log = Log::default();
        let client = client(&sim, &log);
        clones(&client, &[301]).await;
        let fw = Firewall::new(client.clone());
        let iso = iso(&client);
        let opts = IsolationOptions::new(lab("fx"));
        let set = IpSetName::new("iso-fx-allowed").expect("set");
        fw.create_ipset(&Scope::Cluster, &set, Some("the admin's"))
            .await
            .expect("foreign set");
        let err = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect_err("a foreign set stops isolate");
        assert!(matches!(err, Error::Inconsistent { .. }), "{err}");
        assert!(err.to_string().contains("IP set iso-fx-allowed"), "{err}");
        assert!(
            sim.state()["firewall"]["cluster"]["groups"]
                .get("iso-fx")
                .is_none(),
            "nothing built on a foreign set"
        );
        fw.delete_ipset(&Scope::Cluster, &set, true)
            .await
            .expect("admin removes the set");

        let group = GroupName::new("iso-fx").expect("group");
        fw.create_group(&group, Some("the admin's group"))
            .await
            .expect("foreign group");
        let err = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect_err("a foreign group stops isolate");
        assert!(matches!(err, Error::Inconsistent { .. }), "{err}");
        assert!(err.to_string().contains("security group iso-fx"), "{err}");
        assert!(
            err.to_string().contains("choose another lab name"),
            "the teacher is told the way out: {err}"
        );
        assert!(
            sim.state()["firewall"]["guests"]["301"]["rules"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "no student touched"
        );
        // Lifting the lab removes what it made and leaves the admin's group alone.
        iso.unisolate(&list(&[301]), &opts)
            .await
            .expect("unisolate");
        let groups = &sim.state()["firewall"]["cluster"]["groups"];
        assert_eq!(groups["iso-fx"]["comment"], "the admin's group", "{groups}");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_group_body_cut_short_is_completed_with_only_the_missing_rules() {
    within("completing a cut-short group body", async {
        let sim = sim(47).await;
        let log = Log::default();
        let client = client(&sim, &log);
        clones(&client, &[301]).await;
        let fw = Firewall::new(client.clone());
        let iso = iso(&client);
        let opts = IsolationOptions::new(lab("cut"));
        iso.isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("isolate");
        let clean = sim.state()["firewall"]["cluster"]["groups"]["iso-cut"].clone();
        // An earlier run sends the body bottom-up; cut off after its first rule, only the
        // last DROP is there.
        let scope = group_scope(&opts.lab);
        for _ in 0..3 {
            fw.delete_rule(&scope, 0, None).await.expect("cut");
        }
        assert_eq!(fw.rules(&scope).await.expect("rules").len(), 1);
        sim.reset_requests();
        let report = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("re-run");
        assert_eq!(
            count(&sim, "POST /cluster/firewall/groups/{group}"),
            3,
            "the three missing rules, nothing sent twice: {report}"
        );
        assert_eq!(
            count(&sim, "DELETE /cluster/firewall/groups/{group}/{pos}"),
            0
        );
        assert_eq!(
            count(&sim, "GET /cluster/firewall/groups/{group}"),
            1,
            "the body is read once"
        );
        assert_eq!(
            sim.state()["firewall"]["cluster"]["groups"]["iso-cut"],
            clean
        );

        // A rule left below the body (a hand edit): verify sees it, a re-run removes it.
        fw.create_rule(&scope, &Rule::accept_in().comment("stale"))
            .await
            .expect("extra rule");
        fw.move_rule(&scope, 0, 5, None)
            .await
            .expect("to the bottom");
        let check = iso
            .verify(&list(&[301]), &allowed(), &opts)
            .await
            .expect("verify");
        assert!(
            check
                .cluster_problems
                .iter()
                .any(|p| p.contains("group iso-cut rules are")),
            "{check}"
        );
        assert!(!check.is_isolated());
        let report = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("re-run");
        assert_eq!(
            sim.state()["firewall"]["cluster"]["groups"]["iso-cut"],
            clean,
            "{report}"
        );
        assert!(
            report.changes.iter().any(|c| matches!(
                c,
                Change::RuleDeleted { rule, .. } if rule.contains("stale")
            )),
            "{report}"
        );
        let check = iso
            .verify(&list(&[301]), &allowed(), &opts)
            .await
            .expect("verify");
        assert!(check.is_isolated(), "{check}");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn verify_names_each_way_a_student_escapes_the_fence() {
    within("verifying tampered students", async {
        let sim = sim(48).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let ids = [301, 302, 303, 304, 305, 306];
        let guests = clones(&client, &ids).await;
        // 306 has no network device at all.
        guests[5]
            .update_config(&ConfigUpdate::new().delete("net0"))
            .await
            .expect("remove NIC");
        let fw = Firewall::new(client.clone());
        let iso = iso(&client);
        let opts = IsolationOptions::new(lab("esc"));
        let students = list(&ids);
        let report = iso
            .isolate(&students, &allowed(), &opts)
            .await
            .expect("isolate");
        let no_nic: Vec<&String> = report
            .notes
            .iter()
            .filter(|n| n.contains("guest 306 has no network devices"))
            .collect();
        assert_eq!(no_nic.len(), 1, "noted once: {report}");
        let check = iso
            .verify(&students, &allowed(), &opts)
            .await
            .expect("verify");
        assert!(check.cluster_problems.is_empty(), "{check}");
        let text = check.to_string();
        assert!(
            text.starts_with("lab esc: NOT isolated"),
            "a student without NICs is not fenced: {text}"
        );
        assert!(text.contains("guest 301: ok"), "{text}");
        assert!(
            text.contains("guest 306: guest has no network devices"),
            "{text}"
        );

        let scope = |i: usize| guest_scope(&guests[i]);
        let marker = |rules: &[pve_firewall::RuleEntry]| {
            rules
                .iter()
                .find(|r| {
                    r.comment
                        .as_deref()
                        .is_some_and(|c| c.starts_with("labctl:esc"))
                })
                .cloned()
                .expect("marker rule")
        };
        let group = GroupName::new("iso-esc").expect("group");
        // 301: its NIC bypasses the firewall.
        let mut net0 = guests[0].config().await.expect("config").nics()[0]
            .1
            .clone();
        net0.set("firewall", "0");
        guests[0]
            .update_config(&ConfigUpdate::new().set("net0", net0.to_string()))
            .await
            .expect("NIC");
        // 302: a rule above the group's.
        fw.create_rule(
            &scope(1),
            &Rule::accept_in()
                .proto("tcp".parse::<Proto>().expect("proto"))
                .dport("22".parse::<PortSpec>().expect("port")),
        )
        .await
        .expect("rule above");
        // 303: the group's rule disabled.
        let m = marker(&fw.rules(&scope(2)).await.expect("rules"));
        let comment = m.comment.clone().expect("comment");
        fw.update_rule(
            &scope(2),
            m.pos,
            &Rule::group(group.clone()).comment(&comment).disabled(),
            None,
        )
        .await
        .expect("disable");
        // 304: the group's rule bound to one NIC.
        let m = marker(&fw.rules(&scope(3)).await.expect("rules"));
        let comment = m.comment.clone().expect("comment");
        fw.update_rule(
            &scope(3),
            m.pos,
            &Rule::group(group.clone())
                .comment(&comment)
                .iface(Iface::net(0)),
            None,
        )
        .await
        .expect("iface");
        // 305: its firewall switched off.
        fw.set_options(&scope(4), &OptionsUpdate::new().enable(false))
            .await
            .expect("off");

        let check = iso
            .verify(&students, &allowed(), &opts)
            .await
            .expect("verify");
        assert!(check.cluster_problems.is_empty(), "{check}");
        assert!(!check.is_isolated(), "{check}");
        let problems = |vmid: u32| -> String {
            check
                .guests
                .iter()
                .find(|g| g.vmid == id(vmid))
                .map(|g| g.problems.join(" | "))
                .unwrap_or_else(|| panic!("guest {vmid} checked"))
        };
        let expect = [
            (301, "net0 lacks firewall=1"),
            (
                302,
                "GROUP iso-esc rule is at position 1, after: IN ACCEPT -p tcp -dport 22",
            ),
            (303, "GROUP iso-esc rule at position 0 is disabled"),
            (304, "GROUP iso-esc rule applies only to net0"),
            (305, "guest firewall option enable is 0 (needs 1)"),
            (306, "guest has no network devices"),
        ];
        for (vmid, want) in expect {
            let got = problems(vmid);
            assert!(got.contains(want), "guest {vmid}: {got:?} lacks {want:?}");
            let g = check
                .guests
                .iter()
                .find(|g| g.vmid == id(vmid))
                .expect("guest");
            assert!(!g.is_isolated());
            assert!(text_of(&check).contains(&format!("guest {vmid}: {want}")));
        }
        let g302 = check
            .guests
            .iter()
            .find(|g| g.vmid == id(302))
            .expect("302");
        assert!(!g302.group_rule_first && g302.firewall_enabled);
        let g301 = check
            .guests
            .iter()
            .find(|g| g.vmid == id(301))
            .expect("301");
        assert_eq!(g301.nics, vec![(0, false)]);
        assert!(g301.group_rule_first);
        for vmid in [301, 302, 303, 304, 305] {
            assert!(
                !problems(vmid).contains("marker rule"),
                "guest {vmid} still has its record"
            );
        }

        // A student destroyed meanwhile is a problem, not an error.
        guests[0]
            .destroy(DestroyOptions::default())
            .await
            .expect("destroy");
        // The allowed set removed by hand: the group's rules are skipped by PVE.
        fw.delete_ipset(
            &Scope::Cluster,
            &IpSetName::new("iso-esc-allowed").expect("set"),
            true,
        )
        .await
        .expect("delete set");
        let check = Isolation::with_vm_api(vms(&client))
            .verify(&students, &allowed(), &opts)
            .await
            .expect("verify");
        assert!(
            problems_of(&check, 301).contains("guest does not exist"),
            "{check}"
        );
        let cluster = check.cluster_problems.join(" | ");
        assert!(
            cluster.contains("IP set iso-esc-allowed does not exist"),
            "{cluster}"
        );
        assert!(
            cluster.contains("group iso-esc rule 0 is skipped by PVE"),
            "{cluster}"
        );

        // A read that fails is an error, never "does not exist".
        let fresh = Isolation::with_vm_api(vms(&client)).retry(no_retry());
        sim.fail_next_request(
            "GET",
            "/cluster/firewall/ipset/iso-esc-allowed",
            RequestFault::Status(403, "Permission check failed"),
        )
        .expect("queue fault");
        let err = fresh
            .verify(&students, &allowed(), &opts)
            .await
            .expect_err("unreadable set");
        assert!(
            err.to_string().contains("403") || err.is_permission(),
            "{err}"
        );
        sim.fail_next_request(
            "GET",
            "/cluster/resources",
            RequestFault::Status(403, "Permission check failed"),
        )
        .expect("queue fault");
        let err = Isolation::with_vm_api(vms(&client))
            .retry(no_retry())
            .holds(id(302), &opts.lab)
            .await
            .expect_err("unreadable guest list");
        assert!(!err.is_not_found(), "{err}");
        sim.shutdown().await;
    })
    .await;
}

fn text_of(v: &pve_firewall::isolation::Verification) -> String {
    v.to_string()
}

fn problems_of(v: &pve_firewall::isolation::Verification, vmid: u32) -> String {
    v.guests
        .iter()
        .find(|g| g.vmid == id(vmid))
        .map(|g| g.problems.join(" | "))
        .unwrap_or_default()
}

fn no_retry() -> pve_vm::Backoff {
    pve_vm::Backoff {
        initial: Duration::ZERO,
        max: Duration::ZERO,
        budget: Duration::ZERO,
        max_retries: 0,
    }
}

#[tokio::test]
async fn a_student_that_cannot_be_fenced_is_named_and_the_datacenter_stays_off() {
    within("isolating with one refusing student", async {
        let sim = sim(49).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let guests = clones(&client, &[301, 302]).await;
        let iso = iso(&client);
        let opts = IsolationOptions::new(lab("half"));
        let node = guests[1].node().to_string();
        sim.fail_next_request(
            "POST",
            &format!("/nodes/{node}/qemu/302/firewall/rules"),
            RequestFault::Status(403, "Permission check failed"),
        )
        .expect("queue fault");
        let err = iso
            .isolate(&list(&[301, 302]), &allowed(), &opts)
            .await
            .expect_err("one student refused");
        let Error::Incomplete {
            report, failures, ..
        } = &err
        else {
            panic!("not Incomplete: {err}");
        };
        let failed: Vec<Option<u32>> = failures.iter().map(|(v, _)| *v).collect();
        assert_eq!(failed, vec![Some(302)], "{err}");
        assert!(
            report.changes.iter().any(|c| matches!(
                c,
                Change::NicFirewall { vmid, .. } if *vmid == id(301)
            )),
            "the other student is fenced: {report}"
        );
        assert_eq!(cluster_enable(&sim), Value::Null, "not switched on");
        iso.isolate(&list(&[301, 302]), &allowed(), &opts)
            .await
            .expect("a re-run completes");
        assert_eq!(cluster_enable(&sim), json!(1));

        // Unisolate: a student that cannot be looked up fails, named; one destroyed
        // meanwhile is noted and needs nothing.
        sim.fail_next_request(
            "GET",
            "/cluster/resources",
            RequestFault::Status(403, "Permission check failed"),
        )
        .expect("queue fault");
        let err = Isolation::with_vm_api(vms(&client))
            .retry(no_retry())
            .unisolate(&list(&[302]), &opts)
            .await
            .expect_err("guest list unreadable");
        assert!(matches!(err, Error::Incomplete { .. }), "{err}");
        assert!(err.to_string().contains("guest 302"), "{err}");

        guests[1]
            .destroy(DestroyOptions::default())
            .await
            .expect("destroy");
        // A fresh process: nothing cached about where 302 lived.
        let undo = Isolation::with_vm_api(vms(&client))
            .unisolate(&list(&[301, 302]), &opts)
            .await
            .expect("unisolate");
        assert!(
            notes_mention(&undo.notes, "guest 302 does not exist; nothing to restore"),
            "{undo}"
        );
        assert_eq!(cluster_enable(&sim), Value::Null, "restored");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn bad_inputs_are_refused_before_any_request() {
    within("refusing bad inputs", async {
        let sim = sim(50).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let iso = iso(&client);
        let students = list(&[301]);
        let good = IsolationOptions::new(lab("bad"));
        let everything: Cidr = "0.0.0.0/0".parse().expect("cidr");
        let mut dns_everywhere = good.clone();
        dns_everywhere.dns = vec![everything];
        let mut nobody_at_once = good.clone();
        nobody_at_once.concurrency = 0;
        let cases = [
            (Vec::new(), good.clone(), "allowed"),
            (vec![everything], good.clone(), "/0"),
            (allowed(), dns_everywhere, "/0"),
            (allowed(), nobody_at_once, "concurrency"),
        ];
        for (allowed, opts, field) in cases {
            for err in [
                iso.isolate(&students, &allowed, &opts).await.map(drop),
                iso.verify(&students, &allowed, &opts).await.map(drop),
                iso.prepare(&allowed, &opts).await.map(drop),
            ]
            .into_iter()
            .map(|r| r.expect_err("refused"))
            {
                assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
                assert!(err.to_string().contains(field), "{err} lacks {field}");
            }
        }
        assert!(
            log.records().is_empty(),
            "nothing was sent: {:?}",
            log.records().len()
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_teacher_whose_nics_bypass_its_own_firewall_is_left_unchanged() {
    within("isolating beside an unfiltered teacher", async {
        let sim = sim(51).await;
        let log = Log::default();
        let client = client(&sim, &log);
        clones(&client, &[301]).await;
        let teacher = vms(&client).guest(id(100)).await.expect("teacher");
        let fw = Firewall::new(client.clone());
        // Its firewall is on, but no NIC has firewall=1: nothing filters its traffic.
        fw.set_options(&guest_scope(&teacher), &OptionsUpdate::new().enable(true))
            .await
            .expect("teacher firewall on");
        let before = fw_state(&sim);
        let mut opts = IsolationOptions::new(lab("tnic"));
        opts.teacher = Some(id(100));
        let iso = iso(&client);
        let report = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("no student addresses needed");
        assert!(
            notes_mention(
                &report.notes,
                "teacher 100: its firewall does not filter inbound traffic"
            ),
            "{report}"
        );
        assert!(
            sim.state()["firewall"]["guests"]["100"]["rules"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "the teacher gets no rule"
        );

        // Lifting: a teacher whose rules cannot be read fails the call; one that is gone
        // is noted and the rest is lifted.
        let node = teacher.node().to_string();
        let rules = format!("/nodes/{node}/qemu/100/firewall/rules");
        sim.fail_next_request(
            "GET",
            &rules,
            RequestFault::Status(403, "Permission check failed"),
        )
        .expect("queue fault");
        let strict = Isolation::with_vm_api(vms(&client)).retry(no_retry());
        let err = strict
            .unisolate(&list(&[301]), &opts)
            .await
            .expect_err("teacher unreadable");
        assert!(!err.is_not_found(), "{err}");
        sim.fail_next_request("GET", &rules, RequestFault::Status(404, "no such guest"))
            .expect("queue fault");
        let undo = strict
            .unisolate(&list(&[301]), &opts)
            .await
            .expect("a vanished teacher is no reason to keep the fence");
        assert!(
            notes_mention(&undo.notes, "teacher 100 not found"),
            "{undo}"
        );
        assert_eq!(fw_state(&sim), before);
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_admins_management_set_is_reused_and_keeps_its_own_entries() {
    within("sharing the management set", async {
        let sim = sim(52).await;
        let log = Log::default();
        let client = client(&sim, &log);
        clones(&client, &[301]).await;
        let fw = Firewall::new(client.clone());
        let set = IpSetName::new("management").expect("set");
        fw.create_ipset(&Scope::Cluster, &set, None)
            .await
            .expect("admin's set");
        let office: Cidr = "192.168.1.0/24".parse().expect("cidr");
        fw.add_ipset_entry(&Scope::Cluster, &set, &office, false, None)
            .await
            .expect("admin's entry");
        let before = fw_state(&sim);
        let mut opts = IsolationOptions::new(lab("mg"));
        opts.management = vec!["192.168.50.0/24".parse().expect("cidr"), office];
        let iso = iso(&client);
        sim.reset_requests();
        let report = iso
            .isolate(&list(&[301]), &allowed(), &opts)
            .await
            .expect("isolate");
        assert_eq!(
            count(&sim, "POST /cluster/firewall/ipset"),
            1,
            "only the lab's allowed set is created: {report}"
        );
        let entries = fw
            .ipset_entries(&Scope::Cluster, &set)
            .await
            .expect("entries");
        let mut seen: Vec<(String, Option<String>)> = entries
            .iter()
            .map(|e| (e.cidr.clone(), e.comment.clone()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("192.168.1.0/24".to_owned(), None),
                ("192.168.50.0/24".to_owned(), Some("labctl:mg".to_owned())),
            ],
            "the admin's entry untouched, ours marked"
        );
        iso.unisolate(&list(&[301]), &opts)
            .await
            .expect("unisolate");
        assert_eq!(fw_state(&sim), before, "the admin's set as it was");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_lab_that_recorded_the_datacenter_off_keeps_that_record_when_another_is_lifted() {
    within(
        "lifting one of two labs that found the datacenter off",
        async {
            let sim = sim(53).await;
            let log = Log::default();
            let client = client(&sim, &log);
            let fw = Firewall::new(client.clone());
            let iso = iso(&client);
            let mut first = IsolationOptions::new(lab("ha"));
            first.enable_cluster = false;
            iso.prepare(&allowed(), &first).await.expect("prepare ha");
            // The admin switches the datacenter firewall explicitly off; the second lab
            // records that.
            fw.set_options(&Scope::Cluster, &OptionsUpdate::new().enable(false))
                .await
                .expect("explicitly off");
            let mut second = IsolationOptions::new(lab("hb"));
            second.enable_cluster = false;
            iso.prepare(&allowed(), &second).await.expect("prepare hb");
            let groups = &sim.state()["firewall"]["cluster"]["groups"];
            assert_eq!(groups["iso-hb"]["comment"], "labctl:hb cluster-enable=0");

            let lifted = iso.lift_lab(&first).await.expect("lift ha");
            assert_eq!(lifted.lab, "ha");
            let groups = &sim.state()["firewall"]["cluster"]["groups"];
            assert!(groups.get("iso-ha").is_none(), "{groups}");
            assert_eq!(
                groups["iso-hb"]["comment"], "labctl:hb cluster-enable=0",
                "hb found it off and restores it off: {lifted}"
            );
            assert_eq!(cluster_enable(&sim), json!(0));
            sim.shutdown().await;
        },
    )
    .await;
}

#[tokio::test]
async fn a_management_set_that_cannot_be_created_stops_the_lab_with_the_servers_reason() {
    within("creating the management set", async {
        let sim = sim(54).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let iso = iso(&client).retry(no_retry());
        let mut opts = IsolationOptions::new(lab("mref"));
        opts.management = vec!["192.168.50.0/24".parse().expect("cidr")];
        sim.fail_next_request(
            "POST",
            "/cluster/firewall/ipset",
            RequestFault::Status(403, "Permission check failed"),
        )
        .expect("queue fault");
        let err = iso
            .prepare(&allowed(), &opts)
            .await
            .expect_err("no management set");
        assert!(
            err.to_string().contains("Permission check failed"),
            "the server's reason, not a later symptom: {err}"
        );
        let state = sim.state();
        assert!(
            state["firewall"]["cluster"]["groups"]
                .get("iso-mref")
                .is_none(),
            "nothing else is built: {}",
            state["firewall"]["cluster"]
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn with_dhcp_off_a_dhcp_option_the_teacher_turns_on_during_the_exam_survives_the_lift() {
    within("lifting a fence put up with dhcp off", async {
        let sim = sim(47).await;
        let log = Log::default();
        let client = client(&sim, &log);
        let iso = iso(&client);
        let fw = Firewall::new(client.clone());
        let mut opts = IsolationOptions::new(lab("keepdhcp"));
        opts.dhcp = false;
        let guests = clones(&client, &[302]).await;
        iso.prepare(&allowed(), &opts).await.expect("prepare");
        iso.isolate_one(id(302), &opts).await.expect("isolate");
        assert!(guest_options(&sim, 302).get("dhcp").is_none());
        // The fence did not touch dhcp, so it is not the fence's to put back.
        fw.set_options(&guest_scope(&guests[0]), &OptionsUpdate::new().dhcp(true))
            .await
            .expect("the teacher turns dhcp on");
        let undo = iso
            .unisolate(&list(&[302]), &opts)
            .await
            .expect("unisolate");
        let options = guest_options(&sim, 302);
        assert_eq!(options["dhcp"], json!(1), "{options}\n{undo}");
        assert!(
            !undo.changes.iter().any(|c| matches!(
                c,
                Change::GuestOption { key, .. } if key == "dhcp"
            )),
            "the lift changes no dhcp option: {undo}"
        );
        check_against_schema(&log.records());
        sim.shutdown().await;
    })
    .await;
}
