//! Acceptance 2: URL handling as Yii 1.1 does it for the vm-manager rules: realm suffix,
//! realm in the query string, trailing slash, `.html`, extra segments (HTML 404, not JSON),
//! and `vm/list/realm` read as a type.

mod common;

use common::*;
use fosscloud_api::{Code, Error, VmKind, VmStatus};

const ALICE: Option<(&str, &str)> = Some(("alice", "alice-pw"));
const CAROL: Option<(&str, &str)> = Some(("carol", "carol-pw"));

#[tokio::test]
async fn realm_suffix_selects_the_realm() {
    let sim = sim().await;
    let realm = Some("4000020".parse().unwrap());
    user(&sim, "carol")
        .with_realm(realm.clone())
        .login()
        .await
        .expect("carol belongs to realm 4000020");
    assert_api_error(user(&sim, "carol").login().await, Code::RealmIncorrect, 401);
    assert_api_error(
        user(&sim, "alice").with_realm(realm).login().await,
        Code::RealmIncorrect,
        401,
    );
    raw_answer(&sim, "/api/vm/list/dynamic/realm/4000020", CAROL)
        .await
        .expect("type and realm together");
    // The realm segment of /server/realms is accepted and ignored.
    let answer = raw_answer(&sim, "/api/server/realms/realm/4000099", None).await;
    assert_eq!(answer.unwrap().code, Code::RealmsOk);
}

#[tokio::test]
async fn realm_in_the_query_string() {
    let sim = sim().await;
    let answer = raw_answer(&sim, "/api/user/login?realm=4000020", CAROL).await;
    assert_eq!(answer.unwrap().code, Code::LoginOk);
    assert_api_error(
        raw_answer(&sim, "/api/user/login?realm=4000020", ALICE).await,
        Code::RealmIncorrect,
        401,
    );
    // A realm in the path overrides the query's.
    let answer = raw_answer(&sim, "/api/user/login/realm/4000013?realm=4000020", ALICE).await;
    assert_eq!(answer.unwrap().code, Code::LoginOk);
    // Realm "0" is empty() in PHP: the default realm is used.
    let answer = raw_answer(&sim, "/api/user/login?realm=0", ALICE).await;
    assert_eq!(answer.unwrap().code, Code::LoginOk);
}

#[tokio::test]
async fn type_in_the_query_string_only_without_path_groups() {
    let sim = sim().await;
    // No type and no realm segment: the query's type is used.
    assert_api_error(
        raw_answer(&sim, "/api/vm/list?type=all", ALICE).await,
        Code::ListAllForbidden,
        403,
    );
    // A realm segment sets the (unmatched) type group to "", overriding the query.
    let answer = raw_answer(&sim, "/api/vm/list/realm/4000013?type=all", ALICE).await;
    assert_eq!(answer.unwrap().code, Code::ListOk);
}

#[tokio::test]
async fn trailing_slash_and_html_suffix() {
    let sim = sim().await;
    let plain: Vec<fosscloud_api::Vm> = raw_answer(&sim, "/api/vm/list", ALICE)
        .await
        .unwrap()
        .take("vms")
        .unwrap();
    for variant in [
        "/api/vm/list/",
        "/api/vm/list.html",
        "/api/vm/list.html/",
        "//api/vm/list//",
    ] {
        let vms: Vec<fosscloud_api::Vm> = raw_answer(&sim, variant, ALICE)
            .await
            .unwrap_or_else(|e| panic!("{variant}: {e}"))
            .take("vms")
            .unwrap();
        assert_eq!(vms, plain, "{variant}");
    }
    // The suffix is stripped before the pool is captured.
    let answer = raw_answer(&sim, &format!("/api/vm/assign/{WINDOWS_EXAM}.html"), ALICE).await;
    let vm: fosscloud_api::Vm = answer.unwrap().take("vm").unwrap();
    assert_eq!(vm.pool.unwrap().as_str(), WINDOWS_EXAM);
    // "/.html" leaves an empty segment behind: no rule matches.
    let err = raw_answer(&sim, "/api/vm/list/.html", ALICE)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotApi { status: 404, .. }), "{err:?}");
}

#[tokio::test]
async fn extra_segment_is_an_html_404_not_json() {
    let sim = sim().await;
    let (_, status, content_type, body) = raw(&sim, "/api/vm/list/dynamic/extra", ALICE).await;
    assert_eq!(status, 404);
    assert!(content_type.unwrap().starts_with("text/html"));
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("Unable to resolve the request"));
    for path in [
        "/api/vm/list/dynamic/extra",
        "/api/vm/assign/realm/4000020",
        "/api/vm/list/all-vms",
        "/api/user/login/realm/4000013/x",
    ] {
        let err = raw_answer(&sim, path, ALICE).await.unwrap_err();
        match &err {
            Error::NotApi {
                status,
                content_type,
                ..
            } => {
                assert_eq!(*status, 404, "{path}");
                assert!(content_type
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("text/html"));
                assert!(err.to_string().contains("base URL"), "{err}");
            }
            other => panic!("{path}: expected NotApi, got {other:?}"),
        }
    }
    // A client with a wrong base URL gets the same clear error.
    let wrong = fosscloud_api::FossCloudClient::builder(format!("{}/x", sim.base_url()))
        .allow_http(true)
        .credentials("alice", "alice-pw")
        .build()
        .unwrap();
    assert!(matches!(
        wrong.login().await,
        Err(Error::NotApi { status: 404, .. })
    ));
}

#[tokio::test]
async fn only_get_matches_the_api_rules() {
    let sim = sim().await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/vm/list", sim.base_url()))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn list_realm_is_read_as_a_type() {
    let sim = sim().await;
    assert_api_error(
        raw_answer(&sim, "/api/vm/list/realm", ALICE).await,
        Code::UnknownListType,
        400,
    );
    // With an id after it, "realm" is the realm suffix and the type stays empty (owner).
    let vms: Vec<fosscloud_api::Vm> = raw_answer(&sim, "/api/vm/list/realm/4000013", ALICE)
        .await
        .unwrap()
        .take("vms")
        .unwrap();
    assert_eq!(vms.len(), 4);
}

#[tokio::test]
async fn generic_route_reaches_the_controller_with_any_method() {
    let sim = sim().await;
    let answer = raw_answer(&sim, "/api/api/vmList/type/persistent", ALICE)
        .await
        .unwrap();
    let vms: Vec<fosscloud_api::Vm> = answer.take("vms").unwrap();
    assert!(vms
        .iter()
        .all(|v| matches!(v.status, Some(VmStatus::Online | VmStatus::Offline))));
    assert_eq!(vms.len(), 2);
    // The error action called directly: HTTP 400 / 500000 without a devDescription.
    match raw_answer(&sim, "/api/api/error", None).await {
        Err(Error::ServerInternal {
            status: 400,
            dev_description: None,
        }) => {}
        other => panic!("expected a bare 500000, got {other:?}"),
    }
    // The typed list for comparison.
    let typed = user(&sim, "alice")
        .list_vms(VmKind::Persistent)
        .await
        .unwrap();
    assert_eq!(vms, typed);
}

#[tokio::test]
async fn paths_outside_the_application_are_apache_404s() {
    let sim = sim().await;
    let url = sim.base_url().replace("/vm-manager", "/api/vm/list");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body = response.text().await.unwrap();
    assert!(body.contains("was not found on this server"), "{body}");
}
