//! Acceptance 4 (httpmock): the exact requests the client sends — paths, the
//! `Authorization: Basic` header, no credentials in any URL — and how it reads answers the
//! simulator cannot produce (the documentation's numbers, unknown codes, odd envelopes).

use std::sync::{Arc, Mutex};

use fosscloud_api::{Code, Error, FossCloudClient, MacAddr, PoolId, VmKind};
use httpmock::prelude::*;

/// base64("alice:alice-pw")
const ALICE_BASIC: &str = "Basic YWxpY2U6YWxpY2UtcHc=";

fn client(server: &MockServer) -> FossCloudClient {
    FossCloudClient::builder(server.url("/vm-manager"))
        .allow_http(true)
        .credentials("alice", "alice-pw")
        .realm("4000020".parse().expect("valid realm"))
        .build()
        .expect("client builds")
}

fn json(status: u16, body: &str) -> impl FnOnce(httpmock::Then) {
    let body = body.to_owned();
    move |then| {
        then.status(status)
            .header("content-type", "application/json")
            .body(body);
    }
}

#[tokio::test]
async fn every_call_sends_basic_auth_on_the_documented_path() {
    let server = MockServer::start_async().await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let spy = Arc::clone(&seen);
    // Records every URI; never matches, so the specific mocks below answer.
    server
        .mock_async(move |when, then| {
            when.is_true(move |req| {
                spy.lock().unwrap().push(req.uri().to_string());
                false
            });
            then.status(599);
        })
        .await;

    let pool = "57e3bd10-1934-4b4f-3d4c-6e31473bddab";
    let vm = r#"{"uuid":"u1","name":"Exam","ip":"192.0.2.11","node":"node-01","port":5901,
                "password":"spice-secret","status":"assigned","type":"dynamic","subtype":"Desktop",
                "os":"windows","pool":"57e3bd10-1934-4b4f-3d4c-6e31473bddab"}"#;
    let cases: Vec<(String, String)> = vec![
        (
            "/vm-manager/api/user/login/realm/4000020".into(),
            r#"{"status":200,"code":200001}"#.into(),
        ),
        (
            "/vm-manager/api/vm/list/realm/4000020".into(),
            format!(r#"{{"status":200,"code":200031,"vms":[{vm}]}}"#),
        ),
        (
            "/vm-manager/api/vm/list/all/realm/4000020".into(),
            r#"{"status":200,"code":200031,"vms":[]}"#.into(),
        ),
        (
            format!("/vm-manager/api/vm/assign/{pool}/realm/4000020"),
            format!(r#"{{"status":200,"code":200041,"vm":{vm}}}"#),
        ),
        (
            "/vm-manager/api/vm/mapping/list/realm/4000020".into(),
            format!(r#"{{"status":200,"code":200051,"vm":{vm}}}"#),
        ),
        (
            "/vm-manager/api/vm/mapping/list/52:54:00:ab:cd:ef/realm/4000020".into(),
            format!(r#"{{"status":200,"code":200051,"vm":{vm}}}"#),
        ),
        (
            format!("/vm-manager/api/vm/mapping/assign/{pool}/52:54:00:ab:cd:ef/realm/4000020"),
            format!(r#"{{"status":200,"code":200061,"vm":{vm}}}"#),
        ),
    ];
    let mut mocks = Vec::new();
    for (path, body) in &cases {
        let path = path.clone();
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path(path)
                        .header("authorization", ALICE_BASIC)
                        .header("accept", "application/json")
                        .query_param_missing("realm");
                    json(200, body)(then);
                })
                .await,
        );
    }
    let realms = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/vm-manager/api/server/realms")
                .header_missing("authorization");
            json(200, r#"{"status":200,"code":200011,"realms":[{"uid":4000013,"displayName":null,"default":true}]}"#)(then);
        })
        .await;

    let c = client(&server);
    let pool: PoolId = pool.parse().unwrap();
    let mac: MacAddr = "52:54:00:AB:CD:EF".parse().unwrap();
    c.login().await.unwrap();
    let vms = c.list_vms(VmKind::Owner).await.unwrap();
    assert_eq!(vms[0].password.as_ref().unwrap().expose(), "spice-secret");
    c.list_vms(VmKind::All).await.unwrap();
    c.assign(&pool).await.unwrap();
    c.mapping_list(None).await.unwrap();
    c.mapping_list(Some(mac)).await.unwrap();
    c.mapping_assign(&pool, Some(mac)).await.unwrap();
    let r = c.realms().await.unwrap();
    assert_eq!(r[0].uid.as_str(), "4000013");

    for mock in &mocks {
        assert_eq!(mock.calls_async().await, 1);
    }
    assert_eq!(realms.calls_async().await, 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8);
    for uri in seen.iter() {
        assert!(!uri.contains("alice"), "user name in URL: {uri}");
        assert!(!uri.contains("alice-pw"), "password in URL: {uri}");
        assert!(!uri.contains('@'), "userinfo in URL: {uri}");
        assert!(!uri.contains('?'), "query string in URL: {uri}");
    }
}

#[tokio::test]
async fn documentation_numbers_and_unknown_codes_are_typed() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/vm-manager/api/vm/mapping/assign/p1/realm/4000020");
            json(400, r#"{"status":400,"code":400068,"devDescription":"MacByParameter is disabled in config"}"#)(then);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/vm-manager/api/user/login/realm/4000020");
            json(
                401,
                r#"{"status":401,"code":401002,"devDescription":"HTTP-Auth missing"}"#,
            )(then);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/vm-manager/api/vm/assign/p1/realm/4000020");
            json(
                409,
                r#"{"status":409,"code":"409077","devDescription":"new in a later server"}"#,
            )(then);
        })
        .await;
    let c = client(&server);
    let pool: PoolId = "p1".parse().unwrap();

    match c.mapping_assign(&pool, None).await {
        Err(Error::Api {
            status,
            code,
            raw_code,
            ..
        }) => {
            assert_eq!(
                (status, code, raw_code),
                (400, Code::MappingAssignMacParamDisabled, 400_068)
            );
        }
        other => panic!("{other:?}"),
    }
    match c.login().await {
        Err(e @ Error::Api { .. }) => {
            assert_eq!(e.code(), Some(Code::HttpAuthMissing));
            assert!(e.is_auth());
        }
        other => panic!("{other:?}"),
    }
    match c.assign(&pool).await {
        Err(Error::Api {
            status,
            code,
            dev_description,
            ..
        }) => {
            assert_eq!((status, code), (409, Code::Unknown(409_077)));
            assert_eq!(dev_description.as_deref(), Some("new in a later server"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn internal_error_html_and_odd_envelopes_get_clear_errors() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/vm-manager/api/user/login/realm/4000020");
            json(400, r#"{"status":400,"code":500000,"devDescription":"CLdapException: ldap_search failt"}"#)(then);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/vm-manager/api/vm/list/realm/4000020");
            then.status(404)
                .header("content-type", "text/html; charset=UTF-8")
                .body("<html><body><h2>Error 404</h2>Unable to resolve the request</body></html>");
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/vm-manager/api/vm/assign/p1/realm/4000020");
            // Right HTTP status, wrong success code: a misrouted request.
            json(
                200,
                r#"{"status":200,"code":200031,"vms":[{"password":"leak-me"}]}"#,
            )(then);
        })
        .await;
    let c = client(&server);

    let err = c.login().await.unwrap_err();
    assert!(
        matches!(err, Error::ServerInternal { status: 400, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("500000") && text.contains("ldap_search failt"),
        "{text}"
    );

    let err = c.list_vms(VmKind::Owner).await.unwrap_err();
    assert!(matches!(err, Error::NotApi { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("text/html"), "{err}");

    let err = c.assign(&"p1".parse().unwrap()).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Decode { .. }), "{text}");
    assert!(text.contains("expected code 200041"), "{text}");
    assert!(!text.contains("leak-me"), "passwords are redacted: {text}");
}
