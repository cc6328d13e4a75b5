//! Wire tests with httpmock: method, path, query and body of every agent call are pinned.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::prelude::*;
use httpmock::{HttpMockRequest, HttpMockResponse};
use pve_agent::{AgentApi, AgentOptions, Error, Exec};
use pve_auth::{PveClient, RetryPolicy};
use pve_vm::{Guest, GuestKind, NodeName, Timing, VmApi, VmId};
use serde_json::json;

const TOKEN: &str = "lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const AUTH: &str = "PVEAPIToken=lab@pve!ci=0b5e7a4c-1111-2222-3333-444455556666";
const FORM: &str = "application/x-www-form-urlencoded";
const AGENT: &str = "/api2/json/nodes/pve1/qemu/100/agent";

fn setup(server: &MockServer) -> (AgentApi, Guest) {
    let client = PveClient::builder(&server.base_url())
        .token(TOKEN.parse().unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let vms = VmApi::with_timing(client, Timing::default().scaled(0.001));
    let guest = vms.guest_on(
        NodeName::new("pve1").unwrap(),
        GuestKind::Qemu,
        VmId::new(100).unwrap(),
    );
    let agent = AgentApi::with_options(vms, AgentOptions::default().scaled(0.001));
    (agent, guest)
}

fn data(value: serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(json!({ "data": value }).to_string())
        .build()
}

fn pve_error(status: u16, message: &str) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(json!({"data": null, "message": format!("{message}\n")}).to_string())
        .build()
}

/// An exec mock answering pid 4711 to exactly `body`.
async fn exec_mock<'a>(server: &'a MockServer, body: &str) -> httpmock::Mock<'a> {
    let body = body.to_owned();
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path(format!("{AGENT}/exec"))
                .header("authorization", AUTH)
                .header("content-type", FORM)
                .body(body);
            then.status(200).json_body(json!({"data": {"pid": 4711}}));
        })
        .await
}

/// An exec-status mock for pid 4711 answering from `answers` in turn (the last one again
/// after the end, as a qemu-ga that had forgotten the pid would not — tests assert counts).
async fn status_mock(server: &MockServer, answers: Vec<HttpMockResponse>) -> httpmock::Mock<'_> {
    let n = Arc::new(AtomicUsize::new(0));
    server
        .mock_async(move |when, then| {
            when.method(GET)
                .path(format!("{AGENT}/exec-status"))
                .header("authorization", AUTH)
                .query_param("pid", "4711")
                .query_param_count(".*", ".*", 1);
            then.respond_with(move |_req: &HttpMockRequest| {
                let i = n.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
                answers[i].clone()
            });
        })
        .await
}

#[tokio::test]
async fn exec_sends_the_argv_as_an_array_and_polls_the_pid_until_it_exited() {
    let server = MockServer::start_async().await;
    let exec = exec_mock(
        &server,
        "command=ip&command=-j&command=-d&command=addr&input-data=hello%20world%0A",
    )
    .await;
    let status = status_mock(
        &server,
        vec![
            data(json!({"exited": 0})),
            data(json!({"exited": 0})),
            data(
                json!({"exited": 1, "exitcode": 0, "out-data": "[{\"ifname\":\"lo\"}]\n",
                        "err-data": "warn\n"}),
            ),
        ],
    )
    .await;
    let (agent, guest) = setup(&server);
    let cmd = Exec::new(["ip", "-j", "-d", "addr"]).stdin("hello world\n");
    let out = agent.exec(&guest, &cmd).await.unwrap();
    assert_eq!(out.pid, 4711);
    assert_eq!(out.argv, ["ip", "-j", "-d", "addr"]);
    assert_eq!(out.exitcode, Some(0));
    assert!(out.success() && !out.truncated());
    assert_eq!(out.stdout, "[{\"ifname\":\"lo\"}]\n");
    assert_eq!(out.stderr, "warn\n");
    assert!(out.finished >= out.started);
    exec.assert_calls_async(1).await;
    // Two "still running" answers, then the one result: no poll after it.
    status.assert_calls_async(3).await;
}

#[tokio::test]
async fn a_single_word_command_is_one_command_key_and_a_failure_is_a_result() {
    let server = MockServer::start_async().await;
    let exec = exec_mock(&server, "command=false").await;
    let status = status_mock(&server, vec![data(json!({"exited": 1, "exitcode": 1}))]).await;
    let (agent, guest) = setup(&server);
    let out = agent.exec(&guest, &Exec::new(["false"])).await.unwrap();
    assert_eq!(out.code(), 1);
    assert!(!out.success());
    assert_eq!(out.stdout, "");
    exec.assert_calls_async(1).await;
    status.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_shell_string_is_refused_before_anything_is_sent() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let (agent, guest) = setup(&server);
    let err = agent
        .exec(&guest, &Exec::new(["ip -j addr"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(
        err.to_string().contains("[\"ip\",\"-j\",\"addr\"]"),
        "{err}"
    );
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_forgotten_pid_is_a_lost_result_never_a_success() {
    let server = MockServer::start_async().await;
    exec_mock(&server, "command=cat&command=%2Fetc%2Fhostname").await;
    // Still running, then qemu-ga no longer knows the pid: the answer that carried the
    // result went somewhere else.
    let status = status_mock(
        &server,
        vec![
            data(json!({"exited": 0})),
            pve_error(
                500,
                "VM 100 qmp command 'guest-exec-status' failed - Invalid parameter 'pid'",
            ),
        ],
    )
    .await;
    let (agent, guest) = setup(&server);
    let err = agent
        .exec(&guest, &Exec::new(["cat", "/etc/hostname"]))
        .await
        .unwrap_err();
    match &err {
        Error::ResultLost { pid, vmid, .. } => {
            assert_eq!((*pid, vmid.get()), (Some(4711), 100));
        }
        other => panic!("expected ResultLost, got {other}"),
    }
    assert!(err.is_result_lost() && !err.is_transient());
    assert!(err.to_string().contains("Invalid parameter 'pid'"), "{err}");
    status.assert_calls_async(2).await;
}

#[tokio::test]
async fn truncation_flags_are_surfaced() {
    let server = MockServer::start_async().await;
    exec_mock(&server, "command=journalctl").await;
    status_mock(
        &server,
        vec![data(
            json!({"exited": "1", "exitcode": "0", "out-data": "x",
                         "out-truncated": 1, "err-truncated": "0"}),
        )],
    )
    .await;
    let (agent, guest) = setup(&server);
    let out = agent
        .exec(&guest, &Exec::new(["journalctl"]))
        .await
        .unwrap();
    assert!(out.out_truncated && !out.err_truncated && out.truncated());
}

#[tokio::test]
async fn a_stopped_agent_fails_with_pves_text_and_is_not_polled() {
    let server = MockServer::start_async().await;
    let exec = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("{AGENT}/exec"));
            then.status(500)
                .header("content-type", "application/json")
                .body(r#"{"data":null,"message":"QEMU guest agent is not running\n"}"#);
        })
        .await;
    let status = status_mock(&server, vec![data(json!({"exited": 0}))]).await;
    let (agent, guest) = setup(&server);
    let err = agent
        .exec(&guest, &Exec::new(["hostname"]))
        .await
        .unwrap_err();
    assert!(err.is_agent_unavailable() && !err.is_result_lost(), "{err}");
    assert!(
        err.to_string().contains("QEMU guest agent is not running"),
        "{err}"
    );
    exec.assert_calls_async(1).await;
    status.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_command_running_past_its_timeout_is_unfinished() {
    let server = MockServer::start_async().await;
    exec_mock(&server, "command=sleep&command=100").await;
    let status = status_mock(&server, vec![data(json!({"exited": 0}))]).await;
    let (agent, guest) = setup(&server);
    let cmd = Exec::new(["sleep", "100"]).timeout(Duration::from_millis(30));
    let err = agent.exec(&guest, &cmd).await.unwrap_err();
    match err {
        Error::Unfinished { pid, .. } => assert_eq!(pid, 4711),
        other => panic!("expected Unfinished, got {other}"),
    }
    // At least the first poll and the last one at the deadline.
    assert!(status.calls_async().await >= 2);
}

#[tokio::test]
async fn file_read_asks_for_base64_and_decodes_binary() {
    let server = MockServer::start_async().await;
    let read = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("{AGENT}/file-read"))
                .query_param("file", "/bin/true")
                .query_param("decode", "0")
                .query_param_count(".*", ".*", 2);
            // 0x7f 'E' 'L' 'F' 0x00 0xff
            then.status(200)
                .json_body(json!({"data": {"content": "f0VMRgD/", "truncated": 1}}));
        })
        .await;
    let (agent, guest) = setup(&server);
    let f = agent.file_read(&guest, "/bin/true").await.unwrap();
    assert_eq!(f.data, [0x7f, b'E', b'L', b'F', 0, 0xff]);
    assert!(f.truncated);
    read.assert_calls_async(1).await;

    let at = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("{AGENT}/file-read"))
                .query_param("file", "/var/log/big")
                .query_param("offset", "16777216")
                .query_param("count", "10")
                .query_param("decode", "0")
                .query_param_count(".*", ".*", 4);
            then.status(200)
                .json_body(json!({"data": {"content": "aGVsbG8="}}));
        })
        .await;
    let f = agent
        .file_read_at(&guest, "/var/log/big", 16_777_216, Some(10))
        .await
        .unwrap();
    assert_eq!((f.data.as_slice(), f.truncated), (&b"hello"[..], false));
    at.assert_calls_async(1).await;
    let err = agent
        .file_read_at(&guest, "/x", 0, Some(16_777_217))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 to 16777216"), "{err}");
}

#[tokio::test]
async fn file_write_sends_text_as_is_binary_as_base64_and_refuses_too_much() {
    let server = MockServer::start_async().await;
    let text = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("{AGENT}/file-write"))
                .header("content-type", FORM)
                .body("file=%2Froot%2Fa.txt&content=hello%0A");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let binary = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("{AGENT}/file-write"))
                .body("file=%2Froot%2Fb.bin&content=AP9C&encode=0");
            then.status(200).json_body(json!({"data": null}));
        })
        .await;
    let (agent, guest) = setup(&server);
    agent
        .file_write(&guest, "/root/a.txt", b"hello\n")
        .await
        .unwrap();
    agent
        .file_write(&guest, "/root/b.bin", &[0x00, 0xff, 0x42])
        .await
        .unwrap();
    text.assert_calls_async(1).await;
    binary.assert_calls_async(1).await;

    let max_text = vec![b'a'; pve_agent::MAX_FILE_WRITE_CONTENT + 1];
    let err = agent
        .file_write(&guest, "/root/c", &max_text)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("61440"), "{err}");
    let max_bin = vec![0u8; pve_agent::MAX_FILE_WRITE_BINARY + 1];
    let err = agent
        .file_write(&guest, "/root/d", &max_bin)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("46080"), "{err}");
    text.assert_calls_async(1).await;
    binary.assert_calls_async(1).await;
}

#[tokio::test]
async fn info_osinfo_users_and_a_refusal_inside_http_200() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{AGENT}/info"));
            then.status(200).json_body(json!({"data": {"result": {
                "version": "9.0.0",
                "supported_commands": [{"name": "guest-exec", "enabled": true}]}}}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{AGENT}/get-osinfo"));
            then.status(200).json_body(json!({"data": {"result": {
                "id": "debian", "pretty-name": "Debian GNU/Linux 12 (bookworm)"}}}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{AGENT}/get-users"));
            then.status(200)
                .json_body(json!({"data": {"result": {"error": {
                "class": "Unsupported",
                "desc": "this feature or command is not currently supported"}}}}));
        })
        .await;
    let (agent, guest) = setup(&server);
    let info = agent.info(&guest).await.unwrap();
    assert_eq!(info.version, "9.0.0");
    assert!(info.supports("guest-exec"));
    let os = agent.osinfo(&guest).await.unwrap();
    assert_eq!(os.id.as_deref(), Some("debian"));
    let err = agent.users(&guest).await.unwrap_err();
    match &err {
        Error::AgentRefused { class, command, .. } => {
            assert_eq!(
                (class.as_str(), command.as_str()),
                ("Unsupported", "get-users")
            )
        }
        other => panic!("expected AgentRefused, got {other}"),
    }
}

#[tokio::test]
async fn containers_have_no_agent() {
    let server = MockServer::start_async().await;
    let (agent, guest) = setup(&server);
    let ct = guest
        .api()
        .guest_on(guest.node().clone(), GuestKind::Lxc, guest.vmid());
    let err = agent.exec(&ct, &Exec::new(["true"])).await.unwrap_err();
    assert!(err.to_string().contains("containers"), "{err}");
}
