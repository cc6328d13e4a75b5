//! The simulator over real HTTP: exact envelope bytes, headers, introspection, runtime
//! switches, fixtures and the `fosscloud-sim` binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use fosscloud_sim::{Config, Directory, Fixture, Simulator, SimulatorHandle};

async fn plain() -> SimulatorHandle {
    Simulator::builder()
        .plain_http(true)
        .start()
        .await
        .expect("simulator starts")
}

async fn get(url: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.expect("simulator answers")
}

#[tokio::test]
async fn envelopes_are_php_json_byte_for_byte() {
    let sim = plain().await;
    let response = get(&format!("{}/api/server/realms", sim.base_url()), None).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no login, no session"
    );
    assert_eq!(
        response.text().await.unwrap(),
        "{\n    \"status\": 200,\n    \"code\": 200011,\n    \"realms\": [\n        {\n            \"uid\": 4000013,\n            \"displayName\": \"Customer Virtual Machines\",\n            \"default\": true\n        },\n        {\n            \"uid\": 4000020,\n            \"displayName\": \"School Active Directory\",\n            \"default\": false\n        }\n    ]\n}"
    );

    let response = get(
        &format!("{}/api/user/login", sim.base_url()),
        Some(("alice", "wrong")),
    )
    .await;
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        "{\n    \"status\": 401,\n    \"code\": 401003,\n    \"devDescription\": \"Incorrect credentials\"\n}"
    );

    let response = get(
        &format!("{}/index.php/api/user/login", sim.base_url()),
        Some(("alice", "alice-pw")),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("PHPSESSID="));
    assert_eq!(
        response.text().await.unwrap(),
        "{\n    \"status\": 200,\n    \"code\": 200001\n}"
    );
}

#[tokio::test]
async fn vm_entries_have_eleven_keys_in_order_and_escaped_slashes() {
    let sim = plain().await;
    sim.update_directory(|d| d.vms[9].display_name = Some("web/01".into()));
    let text = get(
        &format!("{}/api/vm/list/persistent", sim.base_url()),
        Some(("alice", "alice-pw")),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.contains("\"name\": \"web\\/01\""), "{text}");
    let first = text.split("{\n            ").nth(1).expect("one VM object");
    let keys: Vec<&str> = first
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    assert_eq!(
        keys[..11],
        [
            "uuid", "name", "ip", "node", "port", "password", "status", "type", "subtype", "os",
            "pool"
        ]
    );
}

#[tokio::test]
async fn introspection_and_runtime_switches() {
    let sim = plain().await;
    let state_url = sim.base_url().replace("/vm-manager", "/_sim/state");
    let state: serde_json::Value = get(&state_url, None).await.json().await.unwrap();
    assert_eq!(state["config"]["enable"], true);
    assert_eq!(state["config"]["defaultRealm"], "4000013");
    assert_eq!(state["assignments"].as_array().unwrap().len(), 2);
    assert!(
        !state.to_string().contains("-pw"),
        "no passwords in the state view"
    );

    sim.update_config(|c| c.enable = false);
    let response = get(&format!("{}/api/server/realms", sim.base_url()), None).await;
    assert_eq!(response.status().as_u16(), 500);
    assert!(response.text().await.unwrap().contains("500022"));
    assert!(!sim.config().enable);
    assert_eq!(sim.request_count(), 2);
}

#[tokio::test]
async fn spice_ip_zero_means_the_servers_own_address() {
    let sim = plain().await;
    sim.update_directory(|d| d.nodes[0].spice_ip = "0.0.0.0".into());
    let text = get(
        &format!("{}/api/vm/list/persistent", sim.base_url()),
        Some(("alice", "alice-pw")),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.contains("\"ip\": \"127.0.0.1\""), "{text}");
    sim.update_config(|c| c.spice_by_name = true);
    let text = get(
        &format!("{}/api/vm/list/persistent", sim.base_url()),
        Some(("alice", "alice-pw")),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.contains("\"ip\": \"node-01\""), "{text}");
}

#[tokio::test]
async fn invalid_directories_are_refused_at_start() {
    let mut directory = Directory::builtin();
    directory.vms[0].pool = "nope".into();
    let err = Simulator::builder()
        .plain_http(true)
        .directory(directory)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let sim = plain().await;
    let url = format!("{}/api/server/realms", sim.base_url());
    assert_eq!(get(&url, None).await.status().as_u16(), 200);
    drop(sim);
    // A fresh client (no pooled connection) must be refused once the server has stopped.
    let mut refused = false;
    for _ in 0..50 {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        if client.get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "server still answering after drop");
}

#[test]
fn binary_prints_its_fixture_and_serves_a_custom_one() {
    let exe = env!("CARGO_BIN_EXE_fosscloud-sim");

    let out = Command::new(exe)
        .args(["--print-fixture", "--mac-by-parameter"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed =
        Fixture::from_str_with_format(&String::from_utf8(out.stdout).unwrap(), "toml").unwrap();
    assert!(printed.config.mac_by_parameter);
    assert_eq!(printed.directory, Directory::builtin());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.json");
    let fixture = Fixture {
        config: Config {
            default_realm: "4000020".into(),
            ..Config::default()
        },
        directory: Directory::builtin(),
    };
    std::fs::write(&path, serde_json::to_string(&fixture).unwrap()).unwrap();
    let mut child = KillOnDrop(
        Command::new(exe)
            .args(["--plain-http", "--listen", "127.0.0.1:0", "--fixture"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("FOSS-Cloud API simulator at "))
        .expect("the binary prints its URL");
    let base = line
        .trim_start_matches("FOSS-Cloud API simulator at ")
        .to_owned();
    let body = blocking_get(&format!("{base}/api/server/realms"));
    drop(child);
    assert!(body.contains("\"uid\": 4000020,\n            \"displayName\": \"School Active Directory\",\n            \"default\": true"), "{body}");
}

/// Kills the spawned simulator however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking GET for the binary test (it runs outside any runtime).
fn blocking_get(url: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::get(url)
            .await
            .expect("binary answers")
            .text()
            .await
            .expect("body")
    })
}
