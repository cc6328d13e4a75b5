//! Acceptance 3 and the listing semantics: `/vm/assign` is not idempotent, the simulator's
//! state shows every assignment, an exhausted pool answers 500043; status computation, pool
//! stubs, the numeric check and HTTPS with the simulator's CA.

mod common;

use common::*;
use fosscloud_api::{Code, FossCloudClient, Secret, VmKind, VmStatus, VmType};
use fosscloud_sim::Simulator;

const ALICE_UID: &str = "4000100";

#[tokio::test]
async fn assign_twice_takes_two_vms_then_the_pool_is_exhausted() {
    let sim = sim().await;
    let alice = user(&sim, "alice");
    let windows = pool(WINDOWS_EXAM);

    let first = alice.assign(&windows).await.unwrap();
    let second = alice.assign(&windows).await.unwrap();
    assert_ne!(first.uuid, second.uuid, "each call grabs another free VM");

    let mine: Vec<String> = sim
        .assignments()
        .into_iter()
        .filter(|a| a.user == ALICE_UID)
        .map(|a| {
            assert_eq!(a.pool, WINDOWS_EXAM);
            a.vm
        })
        .collect();
    assert_eq!(
        mine,
        [first.uuid.clone().unwrap(), second.uuid.clone().unwrap()]
    );

    // The introspection endpoint shows the same.
    let state: serde_json::Value =
        reqwest::get(sim.base_url().replace("/vm-manager", "/_sim/state"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let from_http = state["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["user"] == ALICE_UID)
        .count();
    assert_eq!(from_http, 2);

    // The third Desktop VM goes to bob; the Golden-Image is never handed out.
    user(&sim, "bob").assign(&windows).await.unwrap();
    assert_api_error(alice.assign(&windows).await, Code::NoFreeVm, 500);

    // Both assigned VMs are listed, with the pool's name; no stub any more.
    let listed = alice.list_vms(VmKind::Dynamic).await.unwrap();
    let windows_entries: Vec<_> = listed
        .iter()
        .filter(|v| v.pool.as_ref().map(|p| p.as_str()) == Some(WINDOWS_EXAM))
        .collect();
    assert_eq!(windows_entries.len(), 2);
    assert!(
        windows_entries
            .iter()
            .all(|v| v.status == Some(VmStatus::Assigned)
                && v.name.as_deref() == Some("Windows Exam"))
    );
}

#[tokio::test]
async fn stubs_statuses_and_numeric_check() {
    let sim = sim().await;
    let alice = user(&sim, "alice");
    let stub = alice
        .list_vms(VmKind::Dynamic)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.name.as_deref() == Some("Windows Exam"))
        .unwrap();
    assert!(stub.is_assignable());
    assert_eq!(
        (
            &stub.uuid,
            &stub.ip,
            &stub.node,
            stub.port,
            &stub.password,
            &stub.subtype,
            &stub.os
        ),
        (&None, &None, &None, None, &None, &None, &None)
    );
    assert_eq!(stub.vm_type, Some(VmType::Dynamic));

    // win-exam-02 has the all-digit SPICE password 20170525, which the server's
    // JSON_NUMERIC_CHECK sends as a number; the client still reads it as text.
    alice.assign(&pool(WINDOWS_EXAM)).await.unwrap();
    let second = alice.assign(&pool(WINDOWS_EXAM)).await.unwrap();
    assert_eq!(
        second.password.as_ref().map(Secret::expose),
        Some("20170525")
    );
    assert!(
        !format!("{second:?}").contains("20170525"),
        "redacted in Debug"
    );
    let (_, _, _, body) = raw(&sim, "/api/vm/list/dynamic", Some(("alice", "alice-pw"))).await;
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("\"password\": 20170525"),
        "numeric on the wire: {body}"
    );
    assert!(body.contains("\"port\": 5902"), "{body}");

    // Persistent VM named "4711" arrives as a number and is read as a name.
    let persistent = alice.list_vms(VmKind::Persistent).await.unwrap();
    let names: Vec<_> = persistent
        .iter()
        .map(|v| v.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["Web Server", "4711"]);
}

#[tokio::test]
async fn all_listing_shows_foreign_assignments_and_golden_image_nulls() {
    let sim = sim().await;
    let all = user(&sim, "teacher").list_vms(VmKind::All).await.unwrap();
    let bobs = all
        .iter()
        .find(|v| v.uuid.as_deref() == Some("8b000000-0000-4000-8000-00000000b001"))
        .unwrap();
    assert_eq!(
        bobs.status,
        Some(VmStatus::Assigned),
        "assigned to somebody else"
    );
    assert_eq!(
        bobs.name.as_deref(),
        Some("linux-lab-01"),
        "VM name, not pool name"
    );
    let golden = all
        .iter()
        .find(|v| v.subtype.as_deref() == Some("Golden-Image"))
        .unwrap();
    assert_eq!(
        (
            &golden.ip,
            &golden.node,
            golden.port,
            &golden.password,
            &golden.status
        ),
        (&None, &None, None, &None, &None)
    );
    // A pool whose VMs are all taken by others is left out of the owner listing.
    let alice = user(&sim, "alice").list_vms(VmKind::Owner).await.unwrap();
    assert!(alice.iter().all(|v| v.name.as_deref() != Some("Full Pool")));
}

#[tokio::test]
async fn https_with_the_simulators_ca() {
    let sim = Simulator::builder().start().await.unwrap();
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let pem = sim.ca_certificate_pem().unwrap().to_owned();

    let trusted = FossCloudClient::builder(sim.base_url())
        .add_root_certificate_pem(pem)
        .credentials("alice", "alice-pw")
        .build()
        .unwrap();
    trusted.login().await.expect("TLS with the simulator's CA");

    let untrusted = FossCloudClient::builder(sim.base_url())
        .credentials("alice", "alice-pw")
        .build()
        .unwrap();
    let err = untrusted.login().await.unwrap_err();
    assert!(
        matches!(err, fosscloud_api::Error::Network { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("alice-pw"));

    let insecure = FossCloudClient::builder(sim.base_url())
        .danger_accept_invalid_certs(true)
        .credentials("alice", "alice-pw")
        .build()
        .unwrap();
    insecure.login().await.expect("verification off on request");
    assert_eq!(
        sim.request_count(),
        2,
        "the untrusted handshake never reached the API"
    );
}
