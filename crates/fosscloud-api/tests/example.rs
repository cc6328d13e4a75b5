//! Acceptance 5: the `desktop` example's logic, run against the simulator.

#[path = "../examples/desktop.rs"]
#[allow(dead_code)] // the example's main() is not called here
mod desktop;

mod common;

use common::*;
use fosscloud_api::{Secret, VmStatus};
use fosscloud_sim::Simulator;

fn settings(url: &str, user: &str) -> desktop::Settings {
    desktop::Settings {
        url: url.to_owned(),
        user: user.to_owned(),
        password: Secret::new(format!("{user}-pw")),
        realm: None,
        insecure: false,
        ca_pem: None,
    }
}

#[tokio::test]
async fn lists_and_assigns_the_first_assignable_pool() {
    let sim = sim().await;
    let mut s = settings(sim.base_url(), "alice");
    s.insecure = true; // plain HTTP
    let outcome = desktop::run(s).await.unwrap();
    assert_eq!(outcome.vms.len(), 4);
    let vm = outcome.assigned.expect("Windows Exam was assignable");
    assert_eq!(vm.status, Some(VmStatus::Assigned));
    assert_eq!(vm.pool.as_ref().map(|p| p.as_str()), Some(WINDOWS_EXAM));
    let assignments = sim.assignments();
    assert!(assignments
        .iter()
        .any(|a| a.user == "4000100" && Some(&a.vm) == vm.uuid.as_ref()));
}

#[tokio::test]
async fn over_https_with_the_ca_file_and_nothing_to_assign() {
    let sim = Simulator::builder().start().await.unwrap();
    let mut s = settings(sim.base_url(), "teacher");
    s.ca_pem = Some(sim.ca_certificate_pem().unwrap().as_bytes().to_vec());
    let outcome = desktop::run(s).await.unwrap();
    // teacher's groups hold no dynamic pool; only the Staff desktop (persistent).
    assert!(outcome.assigned.is_none());
    assert!(outcome.vms.iter().all(|v| !v.is_assignable()));
    assert!(!outcome.vms.is_empty());

    // Plain HTTP is refused unless FC_INSECURE.
    let plain = Simulator::builder().plain_http(true).start().await.unwrap();
    let err = desktop::run(settings(plain.base_url(), "alice"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("allow_http"), "{err}");
    assert_eq!(plain.request_count(), 0, "nothing was sent");
}
