//! The `lab-core` conformance suite against `FossCloudLab` on the embedded simulator
//! (real HTTP on 127.0.0.1): desktop assignment for thin clients (FC4School, MAC seats)
//! and for users (dynamic pools), and `Unsupported` for everything FOSS-Cloud cannot do.
#![allow(clippy::unwrap_used)]

mod common;

use common::{sim_with, user, CLASSROOM, WINDOWS_EXAM};
use fosscloud_api::FossCloudLab;
use lab_core::conformance::{self, Fixture};
use lab_core::{Assignment, Desktops, Seat};

fn macs() -> Vec<Seat> {
    ["52:54:00:00:00:01", "52:54:00:00:00:02"]
        .iter()
        .map(|m| Seat::mac(m).unwrap())
        .collect()
}

#[tokio::test]
async fn thin_clients_get_their_mapped_desktop_once() {
    let sim = sim_with(|f| f.config.mac_by_parameter = true).await;
    let lab = FossCloudLab::for_thin_clients(user(&sim, "dynvmuser"));
    let before = sim.assignments().len();
    conformance::desktops(&lab, &macs(), CLASSROOM)
        .await
        .unwrap();
    assert_eq!(
        sim.assignments().len(),
        before + 2,
        "one assignment per MAC, none twice"
    );
    // Each MAC got the VM FC4School maps it to.
    let d = lab
        .assigned(Seat::mac("52:54:00:00:00:02").unwrap(), CLASSROOM.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id, "8b000000-0000-4000-8000-00000000c002");
    assert_eq!(d.spice, Some(("192.0.2.12".to_owned(), 5932)));
    // The server itself answers 400067 to a repeat; the lab reads it as "already".
    let again = user(&sim, "dynvmuser")
        .mapping_assign(
            &CLASSROOM.parse().unwrap(),
            Some("52:54:00:00:00:01".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        again.code(),
        Some(fosscloud_api::Code::MappingAssignAlreadyAssigned)
    );
    let seat = Seat::mac("52:54:00:00:00:01").unwrap();
    assert!(matches!(
        lab.assign(seat, CLASSROOM.into()).await.unwrap(),
        Assignment::Existing(d) if d.id == "8b000000-0000-4000-8000-00000000c001"
    ));
}

#[tokio::test]
async fn users_get_one_desktop_of_a_dynamic_pool() {
    let sim = sim_with(|_| {}).await;
    let lab = FossCloudLab::for_users()
        .with_user("alice", user(&sim, "alice"))
        .with_user("bob", user(&sim, "bob"));
    let seats = [Seat::user("alice").unwrap(), Seat::user("bob").unwrap()];
    conformance::desktops(&lab, &seats, WINDOWS_EXAM)
        .await
        .unwrap();
    // A seat the lab has no credentials for is refused by name, not sent.
    let e = lab
        .assign(Seat::user("mallory").unwrap(), WINDOWS_EXAM.into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("mallory"), "{e}");
}

#[tokio::test]
async fn what_fosscloud_cannot_do_is_typed_unsupported() {
    let sim = sim_with(|_| {}).await;
    let lab = FossCloudLab::for_thin_clients(user(&sim, "dynvmuser"));
    assert!(!lab_core::Backend::capabilities(&lab).is_hypervisor());
    conformance::unsupported_is_typed(&lab, &Fixture::new(9000, [5000, 5001], "conform"))
        .await
        .unwrap();
    // Nothing was sent for the unsupported calls.
    let before = sim.request_count();
    assert!(
        lab_core::Provisioning::prepare_lab(&lab, &lab_core::LabName::new("x").unwrap())
            .await
            .is_err()
    );
    assert_eq!(sim.request_count(), before);
}
