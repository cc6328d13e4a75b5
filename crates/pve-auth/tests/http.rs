//! httpmock tests pinning what goes on the wire: login form and cookie, CSRF placement, the
//! token header, renewal by age and after a 401, error bodies, parameter placement, TFA.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use httpmock::prelude::*;
use pve_auth::{api_path, ApiToken, Error, Params, PveClient, RetryPolicy, Secret, TotpSource};
use serde_json::{json, Value};

const LOGIN_BODY: &str = "username=root%40pam&password=s3cret-Pa55";

fn login_answer(ticket: &str, csrf: &str) -> Value {
    json!({"data": {
        "username": "root@pam",
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "cap": {"vms": {"VM.PowerMgmt": 1}}
    }})
}

fn renew_body(ticket: &str) -> String {
    Params::new()
        .with("username", "root@pam")
        .with("password", ticket)
        .to_query()
}

fn cookie(ticket: &str) -> String {
    format!("PVEAuthCookie={ticket}")
}

fn password_client(server: &MockServer, clock: &Arc<TestClock>) -> PveClient {
    PveClient::builder(&format!("http://{}", server.address()))
        .password("root@pam", Secret::new(PASSWORD))
        .clock(clock.shared())
        .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn login_posts_the_form_and_sends_the_cookie_without_csrf_on_get() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    let login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .header("content-type", "application/x-www-form-urlencoded")
                .header_missing("cookie")
                .header_missing("CSRFPreventionToken")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let version = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/version")
                .header("cookie", cookie(&ticket_a))
                .header_missing("CSRFPreventionToken")
                .header_missing("authorization");
            then.status(200).json_body(
                json!({"data": {"version": "8.2.4", "release": "8.2", "repoid": "abc"}}),
            );
        })
        .await;

    let clock = TestClock::at(T0 + 60);
    let client = password_client(&server, &clock);
    let v: Value = client.get("/version", &Params::new()).await.unwrap();
    assert_eq!(v["version"], "8.2.4");
    let again: Value = client.get("/version", &Params::new()).await.unwrap();
    assert_eq!(again, v);

    login.assert_calls_async(1).await; // lazy login once, ticket reused
    version.assert_calls_async(2).await;
}

#[tokio::test]
async fn csrf_header_on_post_put_delete_and_params_where_pve_wants_them() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let base = "/api2/json/nodes/pve1/qemu/100";
    let get = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("{base}/status/current"))
                .query_param("full", "1")
                .header("cookie", cookie(&ticket_a))
                .header_missing("CSRFPreventionToken");
            then.status(200)
                .json_body(json!({"data": {"status": "running", "vmid": 100}}));
        })
        .await;
    let post = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("{base}/clone"))
                .query_param_count(".*", ".*", 0)
                .header("cookie", cookie(&ticket_a))
                .header("CSRFPreventionToken", CSRF_A)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("newid=101&full=0&name=exam-01");
            then.status(200).json_body(
                json!({"data": "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:100:root@pam:"}),
            );
        })
        .await;
    let put = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path(format!("{base}/config"))
                .header("CSRFPreventionToken", CSRF_A)
                .body("tags=exam%3Bstudent-07&onboot=1");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let delete = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path(base)
                .query_param("purge", "1")
                .query_param("destroy-unreferenced-disks", "1")
                .header("CSRFPreventionToken", CSRF_A)
                .body("");
            then.status(200).json_body(
                json!({"data": "UPID:pve1:0012D68D:8206F38D:65144CB8:qmdestroy:100:root@pam:"}),
            );
        })
        .await;

    let clock = TestClock::at(T0 + 60);
    let client = password_client(&server, &clock);
    let path = |rest: &[&str]| {
        let mut segs = vec!["nodes", "pve1", "qemu", "100"];
        segs.extend_from_slice(rest);
        api_path(&segs)
    };

    let status: Value = client
        .get(
            &path(&["status", "current"]),
            &Params::new().with("full", true),
        )
        .await
        .unwrap();
    assert_eq!(status["status"], "running");
    let upid: String = client
        .post(
            &path(&["clone"]),
            &Params::new()
                .with("newid", 101u32)
                .with("full", false)
                .with("name", "exam-01"),
        )
        .await
        .unwrap();
    assert!(upid.contains(":qmclone:100:"));
    let () = client
        .put(
            &path(&["config"]),
            &Params::new()
                .with("tags", "exam;student-07")
                .with("onboot", true),
        )
        .await
        .unwrap();
    let upid: Option<String> = client
        .delete(
            &path(&[]),
            &Params::new()
                .with("purge", true)
                .with("destroy-unreferenced-disks", true),
        )
        .await
        .unwrap();
    assert!(upid.unwrap().contains(":qmdestroy:"));

    get.assert_calls_async(1).await;
    post.assert_calls_async(1).await;
    put.assert_calls_async(1).await;
    delete.assert_calls_async(1).await;
}

#[tokio::test]
async fn api_token_sends_the_exact_header_and_never_logs_in() {
    let server = MockServer::start_async().await;
    let login = server
        .mock_async(|when, then| {
            when.path("/api2/json/access/ticket");
            then.status(500);
        })
        .await;
    let start = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/100/status/start")
                .header(
                    "authorization",
                    "PVEAPIToken=lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666",
                )
                .header_missing("CSRFPreventionToken")
                .header_missing("cookie");
            then.status(200)
                .json_body(json!({"data": "UPID:pve1:1:2:3:qmstart:100:lab@pve!runner:"}));
        })
        .await;
    let token: ApiToken = "lab@pve!runner=0b5e7a4c-1111-2222-3333-444455556666"
        .parse()
        .unwrap();
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .token(token)
        .build()
        .unwrap();
    assert_eq!(client.auth_id(), "lab@pve!runner");
    let upid: String = client
        .post(
            &api_path(&["nodes", "pve1", "qemu", "100", "status", "start"]),
            &Params::new(),
        )
        .await
        .unwrap();
    assert!(upid.ends_with(":lab@pve!runner:"));
    start.assert_calls_async(1).await;
    login.assert_calls_async(0).await;
}

#[tokio::test]
async fn ticket_is_renewed_by_age_and_the_new_csrf_replaces_the_old() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    let t1 = T0 + 5400; // 1.5 h later
    let ticket_b = ticket(t1, "BBBB");
    let login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let renew = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(renew_body(&ticket_a));
            then.status(200).json_body(login_answer(&ticket_b, CSRF_B));
        })
        .await;
    let get_a = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes")
                .header("cookie", cookie(&ticket_a));
            then.status(200)
                .json_body(json!({"data": [{"node": "pve1"}]}));
        })
        .await;
    let get_b = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes")
                .header("cookie", cookie(&ticket_b));
            then.status(200)
                .json_body(json!({"data": [{"node": "pve1"}]}));
        })
        .await;
    let post_b = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/100/status/stop")
                .header("cookie", cookie(&ticket_b))
                .header("CSRFPreventionToken", CSRF_B);
            then.status(200)
                .json_body(json!({"data": "UPID:pve1:1:2:3:qmstop:100:root@pam:"}));
        })
        .await;

    let clock = TestClock::at(T0 + 30);
    let client = password_client(&server, &clock);
    let _: Value = client.get("/nodes", &Params::new()).await.unwrap();
    clock.set(T0 + 5399); // just under 1.5 h: still fresh
    let _: Value = client.get("/nodes", &Params::new()).await.unwrap();
    renew.assert_calls_async(0).await;

    clock.set(T0 + 5400); // 1.5 h: renew before the next request
    let _: Value = client.get("/nodes", &Params::new()).await.unwrap();
    let _: String = client
        .post("/nodes/pve1/qemu/100/status/stop", &Params::new())
        .await
        .unwrap();

    login.assert_calls_async(1).await;
    renew.assert_calls_async(1).await;
    get_a.assert_calls_async(2).await;
    get_b.assert_calls_async(1).await;
    post_b.assert_calls_async(1).await;
}

#[tokio::test]
async fn an_expired_ticket_means_a_new_password_login() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    let login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let renew = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(renew_body(&ticket_a));
            then.status(500);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api2/json/version");
            then.status(200)
                .json_body(json!({"data": {"version": "8.2.4"}}));
        })
        .await;
    let clock = TestClock::at(T0);
    let client = password_client(&server, &clock);
    client.login().await.unwrap();
    clock.set(T0 + 7200); // 2 h: the server would refuse a renewal
    let _: Value = client.get("/version", &Params::new()).await.unwrap();
    login.assert_calls_async(2).await;
    renew.assert_calls_async(0).await;
}

#[tokio::test]
async fn ten_concurrent_callers_after_a_401_trigger_one_renewal() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    let ticket_b = ticket(T0 + 100, "BBBB");
    let login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let renew = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(renew_body(&ticket_a));
            // Slow enough that the other callers queue up behind the first renewal.
            then.status(200)
                .delay(Duration::from_millis(50))
                .json_body(login_answer(&ticket_b, CSRF_B));
        })
        .await;
    let rejected = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/resources")
                .header("cookie", cookie(&ticket_a));
            then.status(401).delay(Duration::from_millis(20));
        })
        .await;
    let accepted = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/cluster/resources")
                .query_param("type", "vm")
                .header("cookie", cookie(&ticket_b));
            then.status(200).json_body(json!({"data": []}));
        })
        .await;

    let clock = TestClock::at(T0 + 100);
    let client = password_client(&server, &clock);
    client.login().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let c = client.clone();
        tasks.spawn(async move {
            c.get::<Vec<Value>>("/cluster/resources", &Params::new().with("type", "vm"))
                .await
        });
    }
    while let Some(res) = tasks.join_next().await {
        assert!(res.unwrap().unwrap().is_empty());
    }
    login.assert_calls_async(1).await;
    renew.assert_calls_async(1).await;
    accepted.assert_calls_async(10).await;
    let first_tries = rejected.calls_async().await;
    assert!((1..=10).contains(&first_tries), "{first_tries}");
}

#[tokio::test]
async fn a_rejected_renewal_falls_back_to_the_password_and_a_second_401_fails() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    let ticket_b = ticket(T0 + 10, "BBBB");
    let mut login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let clock = TestClock::at(T0 + 10);
    let client = password_client(&server, &clock);
    client.login().await.unwrap();
    login.delete_async().await;
    login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_b, CSRF_B));
        })
        .await;
    let renew = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(renew_body(&ticket_a));
            then.status(401).json_body(json!({"data": null}));
        })
        .await;
    let get_a = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes")
                .header("cookie", cookie(&ticket_a));
            then.status(401);
        })
        .await;
    let get_b = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes")
                .header("cookie", cookie(&ticket_b));
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    let _: Vec<Value> = client.get("/nodes", &Params::new()).await.unwrap();
    renew.assert_calls_async(1).await;
    login.assert_calls_async(1).await;
    get_a.assert_calls_async(1).await;
    get_b.assert_calls_async(1).await;

    // Now even the fresh ticket is refused: one re-authentication, then the 401 is returned.
    let renew_b = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(renew_body(&ticket_b));
            then.status(200).json_body(login_answer(&ticket_b, CSRF_B));
        })
        .await;
    let stop_b = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/100/status/stop");
            then.status(401);
        })
        .await;
    let err = client
        .post::<String>("/nodes/pve1/qemu/100/status/stop", &Params::new())
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert_eq!(err.status(), Some(401));
    stop_b.assert_calls_async(2).await;
    renew_b.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_failed_login_is_an_auth_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api2/json/access/ticket");
            then.status(401)
                .json_body(json!({"data": null, "message": "authentication failure\n"}));
        })
        .await;
    let clock = TestClock::at(T0);
    let err = password_client(&server, &clock).login().await.unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert_eq!(err.message(), Some("authentication failure"));
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
}

#[tokio::test]
async fn a_400_errors_map_reaches_the_caller() {
    let server = MockServer::start_async().await;
    let token: ApiToken = "lab@pve!runner=0b5e7a4c".parse().unwrap();
    let clone = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/9000/clone");
            then.status(400).json_body(json!({
                "errors": {
                    "newid": "VM 200 already exists",
                    "name": "invalid format - value does not look like a valid DNS name\n"
                },
                "data": null,
                "message": "Parameter verification failed.\n"
            }));
        })
        .await;
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .token(token)
        .build()
        .unwrap();
    let err = client
        .post::<String>(
            "/nodes/pve1/qemu/9000/clone",
            &Params::new().with("newid", 200u32).with("name", "bad_name"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.message(), Some("Parameter verification failed."));
    let errors = err.param_errors().expect("errors map");
    assert_eq!(errors["newid"], "VM 200 already exists");
    assert_eq!(
        errors["name"],
        "invalid format - value does not look like a valid DNS name"
    );
    assert!(err.is_already_exists());
    assert!(!err.is_retryable());
    clone.assert_calls_async(1).await; // a POST is not repeated
}

#[tokio::test]
async fn a_post_is_not_retried_after_a_500_nor_a_503() {
    let server = MockServer::start_async().await;
    let token: ApiToken = "lab@pve!runner=0b5e7a4c".parse().unwrap();
    let start = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/100/status/start");
            then.status(500)
                .json_body(json!({"data": null, "message": "VM is locked (clone)\n"}));
        })
        .await;
    let stop = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/nodes/pve1/qemu/100/status/stop");
            then.status(503);
        })
        .await;
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .token(token)
        .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .build()
        .unwrap();
    let err = client
        .post::<String>("/nodes/pve1/qemu/100/status/start", &Params::new())
        .await
        .unwrap_err();
    assert!(err.is_locked(), "{err}");
    assert_eq!(err.message(), Some("VM is locked (clone)"));
    start.assert_calls_async(1).await;
    let err = client
        .post::<String>("/nodes/pve1/qemu/100/status/stop", &Params::new())
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    stop.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_login_is_repeated_after_a_503_but_the_tfa_step_is_not() {
    let server = MockServer::start_async().await;
    let busy = server
        .mock_async(|when, then| {
            when.method(POST).path("/api2/json/access/ticket");
            then.status(503);
        })
        .await;
    let clock = TestClock::at(T0);
    let client = password_client(&server, &clock);
    let err = client.login().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The whole policy (4 attempts), where any other POST is sent once.
    busy.assert_calls_async(4).await;
}

#[tokio::test]
async fn tfa_login_takes_two_steps() {
    let server = MockServer::start_async().await;
    let challenge = format!("PVE:!tfa!%7B%22totp%22%3Atrue%7D:{T0:08X}::chal+sig==");
    let full = ticket(T0, "FULL");
    let step1 = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(json!({"data": {
                "username": "root@pam", "ticket": challenge, "NeedTFA": 1,
                "CSRFPreventionToken": "64E10CBA:half"
            }}));
        })
        .await;
    let step2 = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .form_urlencoded_tuple("username", "root@pam")
                .form_urlencoded_tuple("tfa-challenge", &challenge)
                .form_urlencoded_tuple("password", "totp:123456")
                .form_urlencoded_tuple_missing("otp");
            then.status(200).json_body(login_answer(&full, CSRF_A));
        })
        .await;
    let version = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/version")
                .header("cookie", cookie(&full));
            then.status(200)
                .json_body(json!({"data": {"version": "8.2.4"}}));
        })
        .await;

    let log = Log::default();
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .password("root@pam", Secret::new(PASSWORD))
        .totp(TotpSource::callback(|| Secret::new("123456")))
        .clock(TestClock::at(T0 + 5).shared())
        .observer(log.observer())
        .build()
        .unwrap();
    let _: Value = client.get("/version", &Params::new()).await.unwrap();
    step1.assert_calls_async(1).await;
    step2.assert_calls_async(1).await;
    version.assert_calls_async(1).await;

    // The observer saw both login steps with the secrets redacted.
    let records = log.records();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].path, "/access/ticket");
    let params: Vec<(String, String)> = records[1].params.clone();
    assert!(params.contains(&("tfa-challenge".into(), "***".into())));
    assert!(params.contains(&("password".into(), "***".into())));
    assert!(params.contains(&("username".into(), "root@pam".into())));

    // Without a TOTP source the client says what is missing.
    let no_totp = PveClient::builder(&format!("http://{}", server.address()))
        .password("root@pam", Secret::new(PASSWORD))
        .build()
        .unwrap();
    let err = no_totp.login().await.unwrap_err();
    assert!(matches!(err, Error::TfaRequired { .. }), "{err}");
    assert!(err.is_auth());
}

#[tokio::test]
async fn observer_sees_every_request_with_method_path_and_params() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api2/json/access/ticket");
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path_prefix("/api2/json/nodes/");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let log = Log::default();
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .password("root@pam", Secret::new(PASSWORD))
        .clock(TestClock::at(T0).shared())
        .observer(log.observer())
        .build()
        .unwrap();
    let path = api_path(&["nodes", "pve1", "qemu", "100", "config"]);
    let () = client
        .put(
            &path,
            &Params::new()
                .with("cipassword", "student-pw")
                .with("cores", 2u8),
        )
        .await
        .unwrap();
    let () = client
        .delete(
            &path.replace("/config", ""),
            &Params::new().with("purge", true),
        )
        .await
        .unwrap();
    let r = log.records();
    let summary: Vec<(String, String, u32)> = r
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone(), r.attempt))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("POST".into(), "/access/ticket".into(), 1),
            ("PUT".into(), "/nodes/pve1/qemu/100/config".into(), 1),
            ("DELETE".into(), "/nodes/pve1/qemu/100".into(), 1),
        ]
    );
    assert_eq!(
        r[0].params,
        vec![
            ("username".into(), "root@pam".into()),
            ("password".into(), "***".into())
        ]
    );
    assert_eq!(
        r[1].params,
        vec![
            ("cipassword".into(), "***".into()),
            ("cores".into(), "2".into())
        ]
    );
    assert_eq!(r[2].params, vec![("purge".into(), "1".into())]);
}

#[tokio::test]
async fn bad_paths_and_builder_misuse_are_errors_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let token: ApiToken = "lab@pve!runner=0b5e7a4c".parse().unwrap();
    let client = PveClient::builder(&format!("http://{}", server.address()))
        .token(token.clone())
        .build()
        .unwrap();
    for bad in ["nodes", "/api2/json/nodes", "/nodes?type=vm"] {
        let err = client.get::<Value>(bad, &Params::new()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    any.assert_calls_async(0).await;

    let host = format!("http://{}", server.address());
    for (builder, want) in [
        (PveClient::builder(&host), "no credentials"),
        (
            PveClient::builder(&host)
                .token(token.clone())
                .password("root@pam", Secret::new("x")),
            "choose one",
        ),
        (
            PveClient::builder(&host)
                .token(token)
                .totp(TotpSource::fixed("123456")),
            "TOTP",
        ),
        (
            PveClient::builder(&host).password("root", Secret::new("x")),
            "\"root\"",
        ),
        (
            PveClient::builder("ftp://pve1").password("root@pam", Secret::new("x")),
            "ftp",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want}"
        );
    }
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_still_valid_ticket_and_tries_again_later() {
    let server = MockServer::start_async().await;
    let ticket_a = ticket(T0, "AAAA");
    let login = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(LOGIN_BODY);
            then.status(200).json_body(login_answer(&ticket_a, CSRF_A));
        })
        .await;
    let renew = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api2/json/access/ticket")
                .body(renew_body(&ticket_a));
            then.status(503);
        })
        .await;
    let get_a = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api2/json/nodes")
                .header("cookie", cookie(&ticket_a));
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    let clock = TestClock::at(T0);
    let client = password_client(&server, &clock);
    client.login().await.unwrap();
    clock.set(T0 + 6000); // due for renewal, still valid
    let _: Vec<Value> = client.get("/nodes", &Params::new()).await.unwrap();
    let _: Vec<Value> = client.get("/nodes", &Params::new()).await.unwrap();
    // Tried before each request, repeated like a read (a login changes nothing on the
    // server): 4 attempts of the default policy each time, then the valid ticket is kept.
    renew.assert_calls_async(8).await;
    get_a.assert_calls_async(2).await;
    login.assert_calls_async(1).await;
}
