//! Topology labs (several machines per student on networks of their own) on the fake
//! backend: names, id blocks, NIC plugs, one apply for every network, teardown, a crash
//! and a re-run.

use std::time::Duration;

use crate::fake::FakeHypervisor;
use crate::*;

const LIMIT: Duration = Duration::from_secs(4 * 3600);

fn topology_spec(count: u32) -> LabSpec {
    let mut s = crate::test_spec::spec_in(count, "5000-5999");
    s.topology = Some(Topology {
        machines: vec![
            MachineSpec {
                role: "router".into(),
                template: VmId::new(9000).unwrap(),
                nics: vec![NicSpec::Uplink, NicSpec::Network("lan".into())],
                after: None,
            },
            MachineSpec {
                role: "host1".into(),
                template: VmId::new(9001).unwrap(),
                nics: vec![NicSpec::Network("lan".into())],
                after: None,
            },
            MachineSpec {
                role: "host2".into(),
                template: VmId::new(9001).unwrap(),
                nics: vec![NicSpec::Network("lan".into())],
                after: None,
            },
        ],
        networks: vec!["lan".into()],
        plan: NetworkPlan::default(),
    });
    s.validate().unwrap();
    s
}

fn fake() -> FakeHypervisor {
    FakeHypervisor::new()
        .with_template(9000, "pve1")
        .with_template(9001, "pve1")
}

async fn up(hv: &FakeHypervisor, spec: &LabSpec) -> Result<LabReport> {
    crate::test_spec::guarded("lab up of a topology", LIMIT, apply(hv, spec, &no_progress)).await
}

fn lab_guests(hv: &FakeHypervisor) -> Vec<(u32, String)> {
    hv.guests()
        .into_iter()
        .filter(|g| !g.template)
        .map(|g| (g.vmid.get(), g.name.unwrap_or_default()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn every_student_gets_its_machines_in_an_id_block_on_its_own_network_with_one_apply() {
    let hv = fake();
    let spec = topology_spec(3);
    let report = up(&hv, &spec).await.unwrap();
    assert_eq!(report.students.len(), 9);
    let guests = lab_guests(&hv);
    let want: Vec<(u32, String)> = [
        (5000, "exam-01-router"),
        (5001, "exam-01-host1"),
        (5002, "exam-01-host2"),
        (5010, "exam-02-router"),
        (5011, "exam-02-host1"),
        (5012, "exam-02-host2"),
        (5020, "exam-03-router"),
        (5021, "exam-03-host1"),
        (5022, "exam-03-host2"),
    ]
    .into_iter()
    .map(|(i, n)| (i, n.to_owned()))
    .collect();
    assert_eq!(guests, want);
    assert_eq!(hv.network_applies(), 1, "every network in one apply");
    let lab = spec.name.clone();
    let nets = hv.lab_networks(&lab).await.unwrap();
    assert_eq!(nets.len(), 3);
    assert!(nets.iter().all(|n| n.network == "lan" && !n.pending));
    // The router keeps net0 on the uplink and has net1 on its student's lan; the hosts'
    // net0 is on the same lan; no two students share one.
    let lan_of = |student: u32| vnet_id(&lab, student, 0);
    assert_eq!(hv.plugs(5000).get(&0), None);
    assert_eq!(hv.plugs(5000).get(&1), Some(&lan_of(1)));
    assert_eq!(hv.plugs(5001).get(&0), Some(&lan_of(1)));
    assert_eq!(hv.plugs(5012).get(&0), Some(&lan_of(2)));
    assert_ne!(lan_of(1), lan_of(2));
    assert_eq!(
        nets.iter()
            .find(|n| n.id == lan_of(2))
            .map(|n| n.student.as_str()),
        Some("exam-02")
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_up_changes_nothing_and_applies_nothing() {
    let hv = fake();
    let spec = topology_spec(2);
    up(&hv, &spec).await.unwrap();
    let clones = hv.clones();
    up(&hv, &spec).await.unwrap();
    assert_eq!(hv.clones(), clones);
    assert_eq!(hv.network_applies(), 1);
}

#[tokio::test(start_paused = true)]
async fn down_removes_the_machines_then_the_networks_and_the_lab_zone_with_one_apply() {
    let hv = fake();
    let spec = topology_spec(2);
    up(&hv, &spec).await.unwrap();
    let plan = plan_down(&hv, &spec.name).await.unwrap();
    assert_eq!(plan.destroy.len(), 6);
    assert_eq!(plan.networks.len(), 2);
    assert!(plan.to_string().contains("remove (subnets, vnet"), "{plan}");
    crate::test_spec::guarded(
        "lab down of a topology",
        LIMIT,
        teardown(&hv, &spec.name, &DownOptions::new(4), &no_progress),
    )
    .await
    .unwrap();
    assert!(lab_guests(&hv).is_empty());
    assert!(hv.lab_networks(&spec.name).await.unwrap().is_empty());
    assert!(hv.zones().is_empty(), "the lab's own zone goes with it");
    assert_eq!(hv.network_applies(), 2, "one apply up, one down");
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_up_and_a_rerun_complete_every_student_without_duplicates() {
    for crash_at in [1, 3, 6, 10, 15] {
        let hv = fake();
        let spec = topology_spec(3);
        hv.crash_after(crash_at);
        assert!(up(&hv, &spec).await.is_err(), "crash at {crash_at}");
        hv.heal();
        up(&hv, &spec).await.unwrap();
        let names: Vec<String> = lab_guests(&hv).into_iter().map(|g| g.1).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), 9, "crash at {crash_at}: {names:?}");
        assert_eq!(unique, names, "crash at {crash_at}: no duplicate");
        assert_eq!(hv.lab_networks(&spec.name).await.unwrap().len(), 3);
        // And down after it leaves nothing.
        teardown(&hv, &spec.name, &DownOptions::new(4), &no_progress)
            .await
            .unwrap();
        assert!(lab_guests(&hv).is_empty());
        assert!(hv.lab_networks(&spec.name).await.unwrap().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_vnet_of_the_same_id_that_is_not_the_labs_stops_up_before_any_guest_starts() {
    let hv = fake();
    let spec = topology_spec(2);
    // Another lab's vnet with the id this lab would use.
    let other = StudentNetwork {
        id: vnet_id(&spec.name, 1, 0),
        student: "x".into(),
        network: "lan".into(),
        subnet: None,
    };
    hv.ensure_networks(
        &LabName::new("other").unwrap(),
        &NetworkPlan::default(),
        vec![other],
    )
    .await
    .unwrap();
    let e = up(&hv, &spec).await.unwrap_err().to_string();
    assert!(
        e.contains("networks could not be made") && e.contains("not lab exam1's"),
        "{e}"
    );
    assert!(
        hv.guests().iter().all(|g| !g.status.is_running()),
        "no guest runs off its network"
    );
}

#[test]
fn a_topology_needs_its_templates_and_refuses_nodes() {
    let mut spec = topology_spec(2);
    spec.nodes = vec![NodeName::new("pve2").unwrap()];
    assert!(spec.validate().unwrap_err().to_string().contains("nodes"));
    let spec = topology_spec(2);
    let current = vec![GuestInfo {
        template: true,
        ..fake().guests()[0].clone()
    }];
    let e = plan(&spec, &current).unwrap_err().to_string();
    assert!(e.contains("template 9001") && e.contains("host1"), "{e}");
}

fn with_hosts_after_the_router(mut spec: LabSpec) -> LabSpec {
    let t = spec.topology.as_mut().unwrap();
    for m in &mut t.machines[1..] {
        m.after = Some("router".into());
    }
    spec.validate().unwrap();
    spec
}

#[tokio::test(start_paused = true)]
async fn hosts_that_start_after_the_router_start_once_it_is_ready() {
    let ready_after = Duration::from_secs(40);
    let hv = fake().with_quirk(
        None,
        crate::fake::Quirk {
            ready_after,
            ..crate::fake::Quirk::default()
        },
    );
    let spec = with_hosts_after_the_router(topology_spec(2));
    up(&hv, &spec).await.unwrap();
    for (router, hosts) in [(5000, [5001, 5002]), (5010, [5011, 5012])] {
        let r = hv.started_at(router).unwrap();
        for h in hosts {
            let h = hv.started_at(h).unwrap();
            assert!(
                h >= r + ready_after,
                "host {h:?} started before its router was ready ({r:?} + {ready_after:?})"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_after_a_students_machines_start_together() {
    let hv = fake().with_quirk(
        None,
        crate::fake::Quirk {
            ready_after: Duration::from_secs(40),
            ..crate::fake::Quirk::default()
        },
    );
    let spec = topology_spec(1);
    up(&hv, &spec).await.unwrap();
    let r = hv.started_at(5000).unwrap();
    let h = hv.started_at(5002).unwrap();
    assert!(
        h < r + Duration::from_secs(40),
        "the host did not wait for the router"
    );
}

#[tokio::test(start_paused = true)]
async fn when_a_router_fails_its_hosts_are_held_named_and_the_other_students_finish() {
    let hv = fake().with_quirk(
        Some("exam-02-router"),
        crate::fake::Quirk {
            clone_fails: true,
            ..crate::fake::Quirk::default()
        },
    );
    let spec = with_hosts_after_the_router(topology_spec(2));
    let e = up(&hv, &spec).await.unwrap_err();
    let Error::Incomplete { failures, .. } = e else {
        panic!("not incomplete: {e}")
    };
    let subjects: Vec<&str> = failures.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["exam-02-router", "exam-02-host1", "exam-02-host2"]
    );
    assert!(
        failures[1].message.contains("starts after exam-02-router"),
        "{failures:?}"
    );
    for v in [5000, 5001, 5002] {
        assert!(hv.started_at(v).is_some(), "student 1's machine {v} runs");
    }
    assert!(hv.started_at(5011).is_none(), "a held host is not started");
}

/// Found by a hurried teacher: hosts on a student network without DHCP never get an
/// address from the cluster (the student gives them one), and `up` waited for it until
/// its timeout.
#[tokio::test(start_paused = true)]
async fn hosts_on_a_network_without_dhcp_are_ready_with_their_agent_alone() {
    let hv = fake().with_quirk(
        Some("exam-01-host1"),
        crate::fake::Quirk {
            no_address: true,
            ..crate::fake::Quirk::default()
        },
    );
    // Several students, so that looks exploring the shared schedule meet hosts that
    // return without an address (a look that kept its exploring turn hung the others).
    let spec = topology_spec(4);
    let plan = plan(&spec, &hv.guests()).unwrap();
    assert!(plan.students[0].wait_address && !plan.students[1].wait_address);
    assert!(
        plan.to_string()
            .contains("exam-01-host1        clone, mark, fence, start, wait for agent\n"),
        "{plan}"
    );
    let report = up(&hv, &spec).await.unwrap();
    assert_eq!(report.students.len(), 12);

    // With DHCP on the student's networks, a host without an address is a failure.
    let hv = fake().with_quirk(
        Some("exam-01-host1"),
        crate::fake::Quirk {
            no_address: true,
            ..crate::fake::Quirk::default()
        },
    );
    let mut spec = topology_spec(1);
    spec.topology.as_mut().unwrap().plan.subnets =
        Some((std::net::Ipv4Addr::new(10, 100, 0, 0), 16));
    let e = up(&hv, &spec).await.unwrap_err().to_string();
    assert!(e.contains("exam-01-host1") && e.contains("address"), "{e}");
}

/// Found by a hurried teacher: subnets holding the teacher's address were accepted, a
/// nodes error showed a count, and a host name too long named no student.
#[test]
fn a_topology_spec_names_the_values_it_refuses() {
    let mut spec = topology_spec(2);
    spec.topology.as_mut().unwrap().plan.subnets =
        Some((std::net::Ipv4Addr::new(10, 10, 0, 0), 16));
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.contains("10.10.0.0/16") && e.contains("10.10.0.1"), "{e}");
    let mut spec = topology_spec(2);
    spec.nodes = vec![
        NodeName::new("pve2").unwrap(),
        NodeName::new("pve3").unwrap(),
    ];
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.contains("pve2,pve3"), "{e}");
    let mut spec = topology_spec(2);
    let long = "a".repeat(60);
    spec.names = Some(vec!["anna".into(), long.clone()]);
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.contains(&format!("{long}-router")), "{e}");
}
