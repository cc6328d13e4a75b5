//! Helpers shared by the integration tests: a plain-HTTP simulator on 127.0.0.1:0, clients
//! for its built-in users, raw requests, and code assertions.
#![allow(dead_code)] // each test binary uses a different subset

use fosscloud_api::{Code, Error, FossCloudClient, PoolId};
use fosscloud_sim::{Fixture, Simulator, SimulatorHandle};

/// The built-in directory's pools.
pub const WINDOWS_EXAM: &str = "57e3bd10-1934-4b4f-3d4c-6e31473bddab";
pub const LINUX_LAB: &str = "6a1c2e3f-0000-4000-8000-00000000a002";
pub const FULL_POOL: &str = "6a1c2e3f-0000-4000-8000-00000000a003";
pub const CLASSROOM: &str = "6a1c2e3f-0000-4000-8000-00000000a004";
pub const SERVERS: &str = "57501ac5-3a14-41cb-b225-8e787c41505a";
/// MACs of the built-in FC4School mappings (the first is also 127.0.0.1's ARP entry).
pub const MAC_CLASS_01: &str = "52:54:00:00:00:01";
pub const MAC_CLASS_02: &str = "52:54:00:00:00:02";

pub async fn sim() -> SimulatorHandle {
    sim_with(|_| {}).await
}

pub async fn sim_with(change: impl FnOnce(&mut Fixture)) -> SimulatorHandle {
    let mut fixture = Fixture::default();
    change(&mut fixture);
    Simulator::builder()
        .plain_http(true)
        .fixture(fixture)
        .start()
        .await
        .expect("simulator starts")
}

/// A client for a built-in user (password `<name>-pw`).
pub fn user(sim: &SimulatorHandle, name: &str) -> FossCloudClient {
    FossCloudClient::builder(sim.base_url())
        .allow_http(true)
        .credentials(name, format!("{name}-pw"))
        .build()
        .expect("client builds")
}

pub fn anonymous(sim: &SimulatorHandle) -> FossCloudClient {
    FossCloudClient::builder(sim.base_url())
        .allow_http(true)
        .build()
        .expect("client builds")
}

pub fn pool(id: &str) -> PoolId {
    id.parse().expect("valid pool id")
}

/// A raw GET below the base URL, optionally with Basic credentials; returns what
/// `read_answer` needs.
pub async fn raw(
    sim: &SimulatorHandle,
    path_and_query: &str,
    auth: Option<(&str, &str)>,
) -> (String, u16, Option<String>, Vec<u8>) {
    let url = format!("{}{}", sim.base_url(), path_and_query);
    let mut request = reqwest::Client::new().get(&url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("simulator answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.expect("body").to_vec();
    (url, status, content_type, body)
}

/// Classifies a raw answer with the client's own reader.
pub async fn raw_answer(
    sim: &SimulatorHandle,
    path_and_query: &str,
    auth: Option<(&str, &str)>,
) -> fosscloud_api::Result<fosscloud_api::Answer> {
    let (url, status, content_type, body) = raw(sim, path_and_query, auth).await;
    fosscloud_api::read_answer(&url, status, content_type.as_deref(), &body)
}

/// Asserts an API error with this code and HTTP status, and returns its devDescription.
#[track_caller]
pub fn assert_api_error<T: std::fmt::Debug>(
    result: fosscloud_api::Result<T>,
    code: Code,
    status: u16,
) -> Option<String> {
    match result {
        Err(Error::Api {
            status: s,
            code: c,
            raw_code,
            dev_description,
        }) => {
            assert_eq!((c, s), (code, status), "code and HTTP status");
            assert_eq!(raw_code, code.number());
            if let Some(text) = code.server_text() {
                assert_eq!(dev_description.as_deref(), Some(text), "devDescription");
            }
            dev_description
        }
        other => panic!("expected API error {code:?}, got {other:?}"),
    }
}
