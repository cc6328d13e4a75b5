//! Acceptance 1: every code, produced by the simulator for its documented cause and read
//! back by the client as the right typed value. Codes the typed client cannot provoke by
//! construction (an unknown list type, an unknown action) are requested raw and classified
//! with the client's own `read_answer`.

mod common;

use common::*;
use fosscloud_api::{Code, Error, MacAddr, VmKind, VmStatus};

fn mac(text: &str) -> MacAddr {
    text.parse().expect("valid MAC")
}

// ---- successes ----

#[tokio::test]
async fn login_ok_200001() {
    let sim = sim().await;
    user(&sim, "alice").login().await.expect("alice logs in");
    // Login names are LDAP values: case-insensitive.
    fosscloud_api::FossCloudClient::builder(sim.base_url())
        .allow_http(true)
        .credentials("ALICE", "alice-pw")
        .build()
        .unwrap()
        .login()
        .await
        .expect("case-insensitive login name");
}

#[tokio::test]
async fn realms_ok_200011_without_credentials() {
    let sim = sim().await;
    let realms = anonymous(&sim).realms().await.unwrap();
    let listed: Vec<(&str, bool)> = realms.iter().map(|r| (r.uid.as_str(), r.default)).collect();
    assert_eq!(listed, [("4000013", true), ("4000020", false)]);
    assert_eq!(
        realms[0].display_name.as_deref(),
        Some("Customer Virtual Machines")
    );
}

#[tokio::test]
async fn list_ok_200031() {
    let sim = sim().await;
    let vms = user(&sim, "alice").list_vms(VmKind::Owner).await.unwrap();
    let names: Vec<_> = vms
        .iter()
        .map(|v| (v.name.as_deref().unwrap_or(""), v.status.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("Windows Exam", Some(VmStatus::Assignable)),
            ("Linux Lab", Some(VmStatus::Assignable)),
            ("Web Server", Some(VmStatus::Online)),
            ("4711", Some(VmStatus::Offline)),
        ]
    );
}

#[tokio::test]
async fn assign_ok_200041() {
    let sim = sim().await;
    let vm = user(&sim, "alice")
        .assign(&pool(WINDOWS_EXAM))
        .await
        .unwrap();
    assert_eq!(vm.status, Some(VmStatus::Assigned));
    assert_eq!(
        vm.name.as_deref(),
        Some("Windows Exam"),
        "dynamic VMs carry the pool name"
    );
    assert_eq!(vm.spice_endpoint(), Some(("192.0.2.11", 5901)));
}

#[tokio::test]
async fn mapping_list_ok_200051_by_arp() {
    let sim = sim().await;
    // No MAC: the server finds 127.0.0.1 in its ARP table.
    let vm = user(&sim, "dynvmuser").mapping_list(None).await.unwrap();
    assert_eq!(vm.status, Some(VmStatus::Assignable));
    assert_eq!(vm.name.as_deref(), Some("Classroom"));
    assert_eq!(vm.pool.as_ref().map(|p| p.as_str()), Some(CLASSROOM));
    assert_eq!(
        vm.uuid, None,
        "unassigned mapped VM is shown as the pool stub"
    );
}

#[tokio::test]
async fn mapping_assign_ok_200061_then_listed_as_assigned() {
    let sim = sim_with(|f| f.config.mac_by_parameter = true).await;
    let dyn_user = user(&sim, "dynvmuser");
    let vm = dyn_user
        .mapping_assign(&pool(CLASSROOM), Some(mac(MAC_CLASS_02)))
        .await
        .unwrap();
    assert_eq!(vm.status, Some(VmStatus::Assigned));
    assert_eq!(
        vm.uuid.as_deref(),
        Some("8b000000-0000-4000-8000-00000000c002")
    );
    let listed = dyn_user
        .mapping_list(Some(mac(MAC_CLASS_02)))
        .await
        .unwrap();
    assert_eq!(listed.status, Some(VmStatus::Assigned));
    assert_eq!(listed.uuid, vm.uuid);
}

// ---- authentication (every authenticated call) ----

#[tokio::test]
async fn http_auth_missing_400002() {
    let sim = sim().await;
    assert_api_error(anonymous(&sim).login().await, Code::HttpAuthMissing, 400);
}

#[tokio::test]
async fn credentials_empty_400005() {
    let sim = sim().await;
    let client = fosscloud_api::FossCloudClient::builder(sim.base_url())
        .allow_http(true)
        .credentials("alice", " \t")
        .build()
        .unwrap();
    assert_api_error(
        client.list_vms(VmKind::Owner).await,
        Code::CredentialsEmpty,
        400,
    );
}

#[tokio::test]
async fn credentials_incorrect_401003() {
    let sim = sim().await;
    let wrong = fosscloud_api::FossCloudClient::builder(sim.base_url())
        .allow_http(true)
        .credentials("alice", "bob-pw")
        .build()
        .unwrap();
    let err = wrong.login().await;
    assert!(err.as_ref().is_err_and(Error::is_auth));
    assert_api_error(err, Code::CredentialsIncorrect, 401);
    assert_api_error(
        user(&sim, "mallory").login().await,
        Code::CredentialsIncorrect,
        401,
    );
}

#[tokio::test]
async fn realm_incorrect_401004() {
    let sim = sim().await;
    let unknown = user(&sim, "alice").with_realm(Some("4000099".parse().unwrap()));
    assert_api_error(unknown.login().await, Code::RealmIncorrect, 401);
    // alice exists, but belongs to another customer than realm 4000020.
    let foreign = user(&sim, "alice").with_realm(Some("4000020".parse().unwrap()));
    assert_api_error(
        foreign.assign(&pool(WINDOWS_EXAM)).await,
        Code::RealmIncorrect,
        401,
    );
    assert!(
        sim.assignments().iter().all(|a| a.user != "4000100"),
        "nothing assigned"
    );
}

// ---- /vm/list ----

#[tokio::test]
async fn unknown_list_type_400032() {
    let sim = sim().await;
    let answer = raw_answer(&sim, "/api/vm/list/everything", Some(("alice", "alice-pw"))).await;
    assert_api_error(answer, Code::UnknownListType, 400);
    // The type is checked after authentication.
    let answer = raw_answer(&sim, "/api/vm/list/everything", None).await;
    assert_api_error(answer, Code::HttpAuthMissing, 400);
}

#[tokio::test]
async fn list_all_forbidden_403033() {
    let sim = sim().await;
    assert_api_error(
        user(&sim, "alice").list_vms(VmKind::All).await,
        Code::ListAllForbidden,
        403,
    );
    let all = user(&sim, "teacher").list_vms(VmKind::All).await.unwrap();
    assert_eq!(
        all.len(),
        12,
        "9 dynamic (golden image included) + 3 persistent"
    );
}

// ---- /vm/assign ----

#[tokio::test]
async fn pool_not_found_400042() {
    let sim = sim().await;
    let err = user(&sim, "alice").assign(&pool("no-such-pool")).await;
    assert!(err.as_ref().is_err_and(Error::is_pool_unavailable));
    assert_api_error(err, Code::PoolNotFound, 400);
}

#[tokio::test]
async fn no_free_vm_500043() {
    let sim = sim().await;
    assert_api_error(
        user(&sim, "alice").assign(&pool(FULL_POOL)).await,
        Code::NoFreeVm,
        500,
    );
    // A persistent pool has no dynamic Desktop VMs either.
    assert_api_error(
        user(&sim, "alice").assign(&pool(SERVERS)).await,
        Code::NoFreeVm,
        500,
    );
}

// ---- /vm/mapping/list ----

#[tokio::test]
async fn mapping_list_no_school_module_500052() {
    let sim = sim_with(|f| f.config.school_module = false).await;
    assert_api_error(
        user(&sim, "dynvmuser").mapping_list(None).await,
        Code::MappingListNoSchoolModule,
        500,
    );
}

#[tokio::test]
async fn mapping_list_not_dynvmuser_400053() {
    let sim = sim().await;
    assert_api_error(
        user(&sim, "alice").mapping_list(None).await,
        Code::MappingListNotDynvmuser,
        400,
    );
}

#[tokio::test]
async fn mapping_list_no_vm_for_mac_400054() {
    let sim = sim_with(|f| f.config.mac_by_parameter = true).await;
    assert_api_error(
        user(&sim, "dynvmuser")
            .mapping_list(Some(mac("02:00:00:00:00:99")))
            .await,
        Code::MappingListNoVmForMac,
        400,
    );
}

#[tokio::test]
async fn mapping_list_invalid_mac_400055_when_not_local() {
    // The client refuses malformed MACs itself, so the server-side cause reachable through it
    // is "could not determine the MAC": no ARP entry for the caller.
    let sim = sim_with(|f| f.directory.arp.clear()).await;
    assert_api_error(
        user(&sim, "dynvmuser").mapping_list(None).await,
        Code::MappingListInvalidMac,
        400,
    );
    // A malformed MAC in the URL (raw) gets the same code.
    let sim = sim_with(|f| f.config.mac_by_parameter = true).await;
    let answer = raw_answer(
        &sim,
        "/api/vm/mapping/list/52-54-00-00-00-01",
        Some(("dynvmuser", "dynvmuser-pw")),
    )
    .await;
    assert_api_error(answer, Code::MappingListInvalidMac, 400);
}

#[tokio::test]
async fn mapping_list_mac_param_disabled_403056() {
    let sim = sim().await;
    assert_api_error(
        user(&sim, "dynvmuser")
            .mapping_list(Some(mac(MAC_CLASS_01)))
            .await,
        Code::MappingListMacParamDisabled,
        403,
    );
}

// ---- /vm/mapping/assign ----

#[tokio::test]
async fn mapping_assign_no_school_module_500062() {
    let sim = sim_with(|f| f.config.school_module = false).await;
    assert_api_error(
        user(&sim, "dynvmuser")
            .mapping_assign(&pool(CLASSROOM), None)
            .await,
        Code::MappingAssignNoSchoolModule,
        500,
    );
}

#[tokio::test]
async fn mapping_assign_not_dynvmuser_400063() {
    let sim = sim().await;
    assert_api_error(
        user(&sim, "alice")
            .mapping_assign(&pool(CLASSROOM), None)
            .await,
        Code::MappingAssignNotDynvmuser,
        400,
    );
}

#[tokio::test]
async fn mapping_assign_no_vm_for_mac_400064() {
    let sim = sim_with(|f| f.config.mac_by_parameter = true).await;
    assert_api_error(
        user(&sim, "dynvmuser")
            .mapping_assign(&pool(CLASSROOM), Some(mac("02:00:00:00:00:99")))
            .await,
        Code::MappingAssignNoVmForMac,
        400,
    );
}

#[tokio::test]
async fn mapping_assign_invalid_mac_400065_when_not_local() {
    let sim = sim_with(|f| f.directory.arp.clear()).await;
    assert_api_error(
        user(&sim, "dynvmuser")
            .mapping_assign(&pool(CLASSROOM), None)
            .await,
        Code::MappingAssignInvalidMac,
        400,
    );
}

#[tokio::test]
async fn mapping_assign_pool_invalid_400066() {
    let sim = sim().await;
    assert_api_error(
        user(&sim, "dynvmuser")
            .mapping_assign(&pool(WINDOWS_EXAM), None)
            .await,
        Code::MappingAssignPoolInvalid,
        400,
    );
}

#[tokio::test]
async fn mapping_assign_already_assigned_400067() {
    let sim = sim().await;
    let dyn_user = user(&sim, "dynvmuser");
    dyn_user
        .mapping_assign(&pool(CLASSROOM), None)
        .await
        .unwrap();
    assert_api_error(
        dyn_user.mapping_assign(&pool(CLASSROOM), None).await,
        Code::MappingAssignAlreadyAssigned,
        400,
    );
    assert_eq!(
        sim.assignments().len(),
        3,
        "bob, teacher and one dynvmuser assignment"
    );
}

#[tokio::test]
async fn mapping_assign_mac_param_disabled_403066() {
    let sim = sim().await;
    let err = user(&sim, "dynvmuser")
        .mapping_assign(&pool(CLASSROOM), Some(mac(MAC_CLASS_01)))
        .await;
    assert_api_error(err, Code::MappingAssignMacParamDisabled, 403);
}

// ---- general codes ----

#[tokio::test]
async fn unknown_action_404000() {
    let sim = sim().await;
    assert_api_error(
        raw_answer(&sim, "/api/api/vmDelete", None).await,
        Code::UnknownAction,
        404,
    );
}

#[tokio::test]
async fn internal_error_500000_is_http_400() {
    let sim = sim().await;
    sim.set_ldap_failure(Some(
        "ldap_bind to ldaps://localhost failt (-1): Can't contact LDAP server".into(),
    ));
    match user(&sim, "alice").login().await {
        Err(e @ Error::ServerInternal { .. }) => {
            assert_eq!(e.status(), Some(400));
            assert_eq!(e.code(), Some(Code::InternalError));
            assert!(e
                .dev_description()
                .is_some_and(|d| d.contains("Can't contact LDAP")));
        }
        other => panic!("expected ServerInternal, got {other:?}"),
    }
    // Checks before the directory still answer normally.
    assert_api_error(anonymous(&sim).login().await, Code::HttpAuthMissing, 400);
    sim.set_ldap_failure(None);
    user(&sim, "alice").login().await.expect("healed");
}

#[tokio::test]
async fn api_disabled_500022_even_for_realms() {
    let sim = sim_with(|f| f.config.enable = false).await;
    assert_api_error(anonymous(&sim).realms().await, Code::ApiDisabled, 500);
    assert_api_error(user(&sim, "alice").login().await, Code::ApiDisabled, 500);
    // beforeAction also guards the error action.
    assert_api_error(
        raw_answer(&sim, "/api/api/nothing", None).await,
        Code::ApiDisabled,
        500,
    );
}

#[tokio::test]
async fn default_realm_missing_500023() {
    for empty in ["", "0"] {
        let sim = sim_with(|f| f.config.default_realm = empty.into()).await;
        assert_api_error(
            user(&sim, "alice").login().await,
            Code::DefaultRealmMissing,
            500,
        );
    }
}
